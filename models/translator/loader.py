"""Loading and saving translator generators (Pix2Pix / CycleGAN and compatible third-party checkpoints).

``load_translator`` infers the architecture from the tensors alone (names are only a hint): it lists the
convolution and normalisation layers in network order, matches their shapes against the ResNet and U-Net
generators (any block count / depth, any channel counts), reads the norm type from the norm layers' tensors
and the conv biases (the reference gives convs a bias exactly when the norm is InstanceNorm), and rebuilds
the network in this pack's own modules. Files are read with ``torch.load(weights_only=True,
map_location="cpu")`` or safetensors -- code inside a pickle is never executed.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

import torch

from .._files import save_safetensors_atomic
from ..validate import InputError, check_declared_architecture, refused_pickle_message, unsafe_pickle_global
from .base import Translator, architecture_builder

FORMAT = "gan-pack-translator"
FORMAT_VERSION = 1
METADATA_KEY = "gan_pack"


class TranslatorLoadError(ValueError):
    """A file or state dict that is not a translator generator this pack can run; the message says what it is."""


# ---------------------------------------------------------------------------------------------- file reading

def _describe_bytes(head: bytes) -> str:
    printable = sum(32 <= b < 127 for b in head) / max(1, len(head))
    if head.startswith(b"\x93NUMPY"):
        return "a NumPy array file, not a PyTorch checkpoint"
    if head.startswith(b"\x89PNG") or head[:3] == b"\xff\xd8\xff":
        return "an image file, not a model"
    if head.startswith(b"<") or printable > 0.95:
        return "a text file, not a model"
    return "random bytes / an unknown format (neither a PyTorch checkpoint nor safetensors)"


def _looks_like_stylegan_bytes(path: Path) -> bool:
    with open(path, "rb") as f:
        blob = f.read(4 << 20)
    return any(s in blob for s in (b"torch_utils", b"dnnlib", b"training.networks", b"mapping.fc0"))


def _read_safetensors(path: Path) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    try:
        from safetensors import safe_open

        tensors: Dict[str, torch.Tensor] = OrderedDict()
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
    except Exception as exc:  # safetensors raises its own error types for every kind of damage
        raise TranslatorLoadError(
            f"{path.name}: not a readable safetensors file (truncated or corrupt?): {exc}") from None
    return tensors, metadata


def _read_torch(path: Path, head: bytes) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        if "Weights only load failed" in msg or "Unsupported global" in msg or "unsupported" in msg.lower():
            if _looks_like_stylegan_bytes(path):
                raise TranslatorLoadError(
                    f"{path.name}: looks like a StyleGAN network pickle (it contains Python code); "
                    "load it with the StyleGAN loader, not as a Pix2Pix/CycleGAN translator. "
                    "Pickled code is never executed.") from None
            found = re.search(r"GLOBAL ([\w.]+)", msg)
            raise TranslatorLoadError(refused_pickle_message(
                path.name, unsafe_pickle_global(path) or (found.group(1) if found else None),
                "Only weights-only checkpoints are loaded; re-save it with torch.save(model.state_dict()) or as "
                ".safetensors.")) from None
        raise TranslatorLoadError(f"{path.name}: {_describe_bytes(head)} ({msg.splitlines()[0] if msg else type(exc).__name__})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, IndexError, KeyError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "TorchScript" in msg:
            raise TranslatorLoadError(
                f"{path.name}: a TorchScript archive (compiled code) -- refused; only weights are loaded. "
                "Save the generator's state_dict() (.pth) or .safetensors instead.") from None
        if head.startswith(b"PK") or head[:1] == b"\x80":
            raise TranslatorLoadError(
                f"{path.name}: truncated or corrupt PyTorch checkpoint ({msg})") from None
        raise TranslatorLoadError(f"{path.name}: {_describe_bytes(head)} ({msg})") from None


def _read_file(path: Path) -> Tuple[Any, Dict[str, str]]:
    if not path.is_file():
        raise FileNotFoundError(f"translator file not found: {path}")
    size = path.stat().st_size
    if size == 0:
        raise TranslatorLoadError(f"{path.name}: empty file (0 bytes) -- an interrupted download or copy?")
    with open(path, "rb") as f:
        head = f.read(64)
    suffix = path.suffix.lower()
    if suffix in (".onnx",):
        raise TranslatorLoadError(f"{path.name}: ONNX models are not supported; use the .pth/.safetensors weights")
    is_st = False
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        is_st = head[8:9] == b"{" and 0 < n < size
    if suffix == ".safetensors" or is_st:
        if not is_st:
            raise TranslatorLoadError(f"{path.name}: not a safetensors file: {_describe_bytes(head)}")
        return _read_safetensors(path)
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):
        raise TranslatorLoadError(f"{path.name}: {_describe_bytes(head)}")
    return _read_torch(path, head), {}


# ---------------------------------------------------------------------------------------------- unwrapping

_A2B = ("G_A", "netG_A", "G_AB", "netG_AB", "genA2B", "gen_a2b", "G_A2B", "generator_a2b", "netG_A2B", "GA", "g_a")
_B2A = ("G_B", "netG_B", "G_BA", "netG_BA", "genB2A", "gen_b2a", "G_B2A", "generator_b2a", "netG_B2A", "GB", "g_b")
_GEN_NAME = re.compile(r"(^|_)(net)?g(en(erator)?)?($|_)", re.I)
_SINGLE = ("netG", "G", "generator", "gen", "net_g", "model", "state_dict", "model_state_dict", "params",
           "params_ema", "net", "weights", "module", "g_ema", "ema")


def _direction_keys(direction: Optional[str]) -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    d = (direction or "AtoB").replace("_", "").replace("-", "").replace(" ", "").lower()
    if d in ("atob", "a2b", "ab", "a", "ga", "forward"):
        return _A2B, _B2A
    if d in ("btoa", "b2a", "ba", "b", "gb", "backward", "reverse"):
        return _B2A, _A2B
    raise ValueError(f"direction must be 'AtoB' or 'BtoA' (got {direction!r})")


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _unwrap(obj: Any, direction: Optional[str], depth: int = 0) -> Dict[str, torch.Tensor]:
    if isinstance(obj, torch.nn.Module):  # only possible for in-memory callers
        return obj.state_dict()
    if not isinstance(obj, Mapping):
        raise TranslatorLoadError(f"expected a state dict (mapping of names to tensors), found {type(obj).__name__}")
    if _is_tensor_dict(obj):
        return OrderedDict(obj)
    want, other = _direction_keys(direction)
    nested = {k: v for k, v in obj.items() if isinstance(v, Mapping)}
    if depth < 4:
        for key in want + _SINGLE:
            if key in nested:
                return _unwrap(nested[key], direction, depth + 1)
        if direction is not None:
            for key in other:
                if key in nested:
                    raise TranslatorLoadError(f"checkpoint has {key!r} but no generator for direction {direction!r}")
        gens = [k for k in nested if _GEN_NAME.search(k)]
        if len(gens) == 1:
            return _unwrap(nested[gens[0]], direction, depth + 1)
    tensors = OrderedDict((k, v) for k, v in obj.items() if isinstance(v, torch.Tensor))
    if tensors:
        return tensors
    keys = ", ".join(map(str, list(obj)[:12]))
    raise TranslatorLoadError(f"no generator state dict found in the checkpoint (top-level keys: {keys})")


def generators_in(obj: Any, depth: int = 0) -> set:
    """Which CycleGAN directions a loaded checkpoint object names: a subset of {"AtoB", "BtoA"} (empty for a
    file holding one generator, which translates one way only whatever direction is asked for)."""
    found = set()
    if not isinstance(obj, Mapping) or depth > 4:
        return found
    names = set(str(k) for k in obj)
    names |= {str(k).split(".", 1)[0] for k in obj if isinstance(k, str) and "." in k}
    if names & set(_A2B):
        found.add("AtoB")
    if names & set(_B2A):
        found.add("BtoA")
    for v in obj.values():
        if isinstance(v, Mapping) and not _is_tensor_dict(v):
            found |= generators_in(v, depth + 1)
    return found


def _strip_prefixes(sd: Dict[str, torch.Tensor], direction: Optional[str]) -> Dict[str, torch.Tensor]:
    def strip(k: str) -> str:
        while k.startswith("module.") or k.startswith("_orig_mod."):
            k = k.split(".", 1)[1]
        return k.replace(".module.", ".")

    sd = OrderedDict((strip(k), v) for k, v in sd.items())
    # several networks in one flat dict (netG_A.*, netG_B.*, netD_A.*): pick the generator
    firsts = OrderedDict()
    for k in sd:
        firsts.setdefault(k.split(".", 1)[0], []).append(k)
    def netlike(p: str) -> bool:
        return (p in _A2B + _B2A + _SINGLE or bool(_GEN_NAME.search(p))
                or bool(re.search(r"(^|_)(net)?(d|disc|discriminator)(_?[ab]|_?[ab]2[ab])?$", p, re.I)))

    # only when every top-level name is a network name (a generator's own submodules are left alone)
    if len(firsts) > 1 and all("." in k for k in sd) and all(netlike(p) for p in firsts):
        want, _ = _direction_keys(direction)
        pick = next((p for p in want + _SINGLE if p in firsts), None)
        if pick is None:
            gens = [p for p in firsts if _GEN_NAME.search(p)]
            pick = gens[0] if len(gens) == 1 else None
        if pick is not None and not pick.isdigit():
            sd = OrderedDict((k[len(pick) + 1:], v) for k, v in sd.items() if k.startswith(pick + "."))
    return sd


# ---------------------------------------------------------------------------------------------- structure

class _Layer:
    __slots__ = ("prefix", "params", "kind")

    def __init__(self, prefix: str, params: Dict[str, torch.Tensor]):
        self.prefix, self.params = prefix, params
        w = params.get("weight")
        if w is not None and w.ndim == 4:
            self.kind = "conv"
        elif (w is not None and w.ndim == 1) or "running_mean" in params:
            self.kind = "norm"
        else:
            self.kind = "other"

    @property
    def shape(self) -> Tuple[int, ...]:
        return tuple(self.params["weight"].shape)

    def __repr__(self) -> str:
        return f"{self.prefix}({', '.join(f'{k}{tuple(v.shape)}' for k, v in self.params.items())})"


def _natural_key(key: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", key)]


def _layers(sd: Mapping[str, torch.Tensor], order: str) -> List[_Layer]:
    groups: Dict[str, Dict[str, torch.Tensor]] = OrderedDict()
    keys = list(sd) if order == "insertion" else sorted(sd, key=_natural_key)
    for k in keys:
        prefix, _, param = k.rpartition(".")
        groups.setdefault(prefix, OrderedDict())[param] = sd[k]
    return [_Layer(p, g) for p, g in groups.items()]


_NORM_PARAMS = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"}


def _norm_kind(norms: List[_Layer], conv_bias: bool) -> Tuple[str, bool]:
    """(norm, affine) from the norm layers' tensors and whether the convs before them have biases."""
    if not norms:
        return ("instance" if conv_bias else "none"), False
    odd = [n for n in norms if set(n.params) - _NORM_PARAMS]
    if odd:
        raise TranslatorLoadError(f"unsupported norm layer {odd[0]!r}")
    has_w = {("weight" in n.params) for n in norms}
    has_rs = {("running_mean" in n.params) for n in norms}
    if len(has_w) > 1 or len(has_rs) > 1:
        raise TranslatorLoadError(f"mixed norm layers (e.g. {norms[0]!r} and {norms[-1]!r}) -- unsupported")
    has_w, has_rs = has_w.pop(), has_rs.pop()
    if has_rs and not has_w:
        # old (PyTorch < 0.4) InstanceNorm checkpoints carry running stats that the reference drops, and their
        # convs have biases; BatchNorm without affine parameters has biasless convs
        return ("instance" if conv_bias else "batch"), False
    if has_rs:
        return "batch", False  # ``affine`` concerns InstanceNorm only; BatchNorm layers always have parameters
    return "instance", True


def _shapes(model: torch.nn.Module) -> Tuple[List[Tuple[int, ...]], List[int]]:
    convs, norms = [], []
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            convs.append(tuple(m.weight.shape))
        elif isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)):
            norms.append(m.num_features)
    return convs, norms


def _resnet_config(convs: List[_Layer], names: List[str]) -> Optional[Dict[str, Any]]:
    s = [c.shape for c in convs]
    if len(s) < 5 or s[0][2:] != (7, 7) or s[-1][2:] != (7, 7):
        return None
    ngf, input_nc, output_nc = s[0][0], s[0][1], s[-1][0]
    nd = 0
    while 1 + nd < len(s) and s[1 + nd] == (ngf * 2 ** (nd + 1), ngf * 2 ** nd, 3, 3):
        nd += 1
    n_inner = len(s) - 2 - 2 * nd
    if nd == 0 or n_inner < 0 or n_inner % 2:
        return None
    cfg: Dict[str, Any] = dict(input_nc=input_nc, output_nc=output_nc, ngf=ngf, n_blocks=n_inner // 2,
                               n_downsampling=nd, padding_type="reflect", use_dropout=False)
    # padding and dropout can be read from the reference's numbered conv_block (names are a hint only)
    if n_inner:
        m0 = re.search(r"(\d+)$", names[1 + nd])
        m1 = re.search(r"(\d+)$", names[2 + nd])
        if m0 and m1 and names[1 + nd][: m0.start()] == names[2 + nd][: m1.start()]:
            i0, i1 = int(m0.group(1)), int(m1.group(1))
            if i0 == 0:
                cfg["padding_type"] = "zero"
            cfg["use_dropout"] = (i1 - i0) == (3 if i0 == 0 else 4) + 1
    return cfg


def _unet_config(convs: List[_Layer]) -> Optional[Dict[str, Any]]:
    s = [c.shape for c in convs]
    if len(s) < 10 or len(s) % 2 or any(x[2:] != (4, 4) for x in s):
        return None
    return dict(input_nc=s[0][1], output_nc=s[-1][1], ngf=s[0][0], depth=len(s) // 2)


def _describe(layers: List[_Layer]) -> str:
    convs = [l for l in layers if l.kind == "conv"]
    if not convs:
        return f"{len(layers)} tensors groups, no convolution weights"
    ks = sorted({f"{c.shape[2]}x{c.shape[3]}" for c in convs})
    return (f"{len(convs)} conv layers (kernels {', '.join(ks)}; first {convs[0].prefix} {convs[0].shape}, "
            f"last {convs[-1].prefix} {convs[-1].shape})")


def _family_hint(sd: Mapping[str, torch.Tensor]) -> Optional[str]:
    keys = " ".join(list(sd)[:400])
    if ("mapping." in keys and "synthesis." in keys) or "style.weight" in keys or "to_rgb" in keys.lower() \
            or "torgb" in keys.lower():
        return "looks like a StyleGAN state dict (mapping/synthesis networks), not a Pix2Pix/CycleGAN generator"
    if any(k.startswith(("encoder.", "decoder.")) and "vgg" in k.lower() for k in sd):
        return "looks like a style-transfer network, not a Pix2Pix/CycleGAN generator"
    return None


def _discriminator_hint(convs: List[_Layer]) -> Optional[str]:
    if convs and all(c.shape[2:] == (4, 4) for c in convs) and convs[-1].shape[0] == 1 and len(convs) <= 8:
        return ("looks like a PatchGAN discriminator (latest_net_D*.pth: 4x4 convs ending in 1 channel), "
                "not a generator -- use the latest_net_G*.pth file")
    return None


def _build_and_fill(arch: str, cfg: Dict[str, Any], convs: List[_Layer], norms: List[_Layer]) -> Translator:
    try:
        model = architecture_builder(arch)(**cfg)
    except (TypeError, ValueError) as exc:
        raise TranslatorLoadError(f"cannot build a {arch} generator with {cfg}: {exc}") from None
    my_convs = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    my_norms = [m for m in model.modules()
                if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.InstanceNorm2d)) and m.affine]
    if len(my_convs) != len(convs):
        raise TranslatorLoadError(f"{arch} generator {cfg} has {len(my_convs)} convs, the file {len(convs)}")
    file_norms = norms if my_norms else []
    if my_norms and len(file_norms) != len(my_norms):
        raise TranslatorLoadError(
            f"{arch} generator with {cfg.get('norm')} norm expects {len(my_norms)} norm layers, the file has "
            f"{len(norms)}")
    with torch.no_grad():
        for mine, theirs in zip(my_convs, convs):
            w = theirs.params["weight"]
            if tuple(mine.weight.shape) != tuple(w.shape):
                raise TranslatorLoadError(
                    f"{arch} generator: layer {theirs.prefix} has shape {tuple(w.shape)}, expected "
                    f"{tuple(mine.weight.shape)}")
            mine.weight.copy_(w.float())
            b = theirs.params.get("bias")
            if mine.bias is not None:
                if b is None:
                    mine.bias.zero_()   # a missing bias is a zero bias
                else:
                    if b.shape != mine.bias.shape:
                        raise TranslatorLoadError(f"{arch} generator: bias of {theirs.prefix} has shape "
                                                  f"{tuple(b.shape)}, expected {tuple(mine.bias.shape)}")
                    mine.bias.copy_(b.float())
            elif b is not None and bool(b.abs().max() > 0):
                raise TranslatorLoadError(f"{arch} generator: unexpected bias on {theirs.prefix}")
        for mine, theirs in zip(my_norms, file_norms):
            p = theirs.params
            n = mine.num_features
            for key, default in (("weight", 1.0), ("bias", 0.0)):
                t = p.get(key)
                if t is not None and t.shape != (n,):
                    raise TranslatorLoadError(f"norm layer {theirs.prefix} has {key} {tuple(t.shape)}, expected ({n},)")
                getattr(mine, key).copy_(t.float() if t is not None else torch.full((n,), default))
            if isinstance(mine, torch.nn.BatchNorm2d):
                for key in ("running_mean", "running_var"):
                    t = p.get(key)
                    if t is None or t.shape != (n,):
                        raise TranslatorLoadError(f"BatchNorm layer {theirs.prefix} lacks a valid {key}")
                    getattr(mine, key).copy_(t.float())
                if "num_batches_tracked" in p:
                    mine.num_batches_tracked.copy_(p["num_batches_tracked"].long().reshape(()))
    return model


def translator_from_state_dict(sd: Mapping[str, torch.Tensor], *, direction: Optional[str] = None,
                               **overrides) -> Translator:
    """Infer the architecture of a generator state dict and return the loaded :class:`Translator` (CPU)."""
    sd = _strip_prefixes(OrderedDict((str(k), v) for k, v in sd.items() if isinstance(v, torch.Tensor)), direction)
    if not sd:
        raise TranslatorLoadError("the state dict holds no tensors")
    hint = _family_hint(sd)
    if hint:
        raise TranslatorLoadError(hint)
    first_error: Optional[str] = None
    for order in ("insertion", "natural"):
        layers = _layers(sd, order)
        other = [l for l in layers if l.kind == "other"]
        if other:
            raise TranslatorLoadError(f"unsupported layer {other[0]!r} in a {_describe(layers)} network")
        convs = [l for l in layers if l.kind == "conv"]
        norms = [l for l in layers if l.kind == "norm"]
        for arch, cfg in (("resnet", _resnet_config(convs, [c.prefix for c in convs])),
                          ("unet", _unet_config(convs))):
            if cfg is None:
                continue
            inner = convs[1]  # a conv followed by a norm: it has a bias exactly when use_bias
            try:
                norm, affine = _norm_kind(norms, "bias" in inner.params)
            except TranslatorLoadError as exc:
                desc = (f"ResNet generator with {cfg['n_blocks']} blocks" if arch == "resnet"
                        else f"U-Net with {cfg['depth']} downsamplings")
                raise TranslatorLoadError(f"{desc}: {exc}") from None
            cfg.update(norm=norm, affine=affine, use_bias="bias" in inner.params)
            if arch == "unet":
                cfg["use_dropout"] = norm == "batch"  # pix2pix's default; dropout leaves no trace in the weights
            cfg.update(overrides)
            try:
                return _build_and_fill(arch, cfg, convs, norms)
            except TranslatorLoadError as exc:
                first_error = first_error or str(exc)
    layers = _layers(sd, "natural")
    convs = [l for l in layers if l.kind == "conv"]
    hint = _discriminator_hint(convs)
    if hint:
        raise TranslatorLoadError(hint)
    msg = f"not a ResNet or U-Net generator: found {_describe(layers)}"
    if first_error:
        msg += f"; closest match failed: {first_error}"
    raise TranslatorLoadError(msg)


# ---------------------------------------------------------------------------------------------- public API

def _from_gan_pack(meta: str, tensors: Dict[str, torch.Tensor], overrides: Dict[str, Any], where: str) -> Translator:
    try:
        info = json.loads(meta)
        fmt = str(info.get("format")) if isinstance(info, dict) else ""
    except (ValueError, TypeError) as exc:
        raise TranslatorLoadError(f"{where}: damaged '{METADATA_KEY}' metadata ({exc})") from None
    if fmt != FORMAT:  # the format first: a StyleGAN file has no 'arch' and must say what it is
        kind, where_to = (("a StyleGAN model", "; load it with Load StyleGAN from models/stylegan")
                          if "stylegan" in fmt.lower() else ("a style-transfer network", "")
                          if "style" in fmt.lower() else (f"a {fmt!r} file", ""))
        raise TranslatorLoadError(f"{where}: looks like {kind} saved by comfyui-gan-pack, not a "
                                  f"Pix2Pix/CycleGAN translator{where_to}")
    try:
        config = dict(info["config"])
        arch = config.pop("arch")
    except (ValueError, KeyError, TypeError) as exc:
        raise TranslatorLoadError(f"{where}: damaged '{METADATA_KEY}' metadata ({exc})") from None
    if int(info.get("version", 1)) > FORMAT_VERSION:
        raise TranslatorLoadError(f"{where}: written by a newer gan-pack (format version {info.get('version')})")
    config.update(overrides)
    try:
        builder = architecture_builder(arch)
    except KeyError as exc:
        raise TranslatorLoadError(f"{where}: {exc.args[0]}") from None
    try:  # shapes first, on the meta device: forged metadata must not allocate before it is refused
        check_declared_architecture(lambda: builder(**config), config, tensors, where)
    except InputError as exc:
        raise TranslatorLoadError(str(exc)) from None
    except (TypeError, ValueError) as exc:
        raise TranslatorLoadError(f"{where}: cannot rebuild {arch!r} from {config}: {exc}") from None
    try:
        model = builder(**config)
    except KeyError as exc:
        raise TranslatorLoadError(f"{where}: {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise TranslatorLoadError(f"{where}: cannot rebuild {arch!r} from {config}: {exc}") from None
    result = model.load_state_dict(tensors, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise TranslatorLoadError(f"{where}: weights do not fit the stored {arch!r} config (missing "
                                  f"{result.missing_keys[:4]}, unexpected {result.unexpected_keys[:4]})")
    return model


def load_translator(path_or_state_dict: Union[str, os.PathLike, Mapping[str, Any]], *, device=None,
                    direction: Optional[str] = None, name: Optional[str] = None, **overrides) -> Translator:
    """Load a Pix2Pix / CycleGAN generator and return it as a :class:`Translator` in eval mode.

    ``path_or_state_dict``: a ``.pth/.pt/.ckpt`` (read with ``torch.load(weights_only=True,
    map_location="cpu")``, so GPU-saved files load anywhere and pickled code is refused), a ``.safetensors``
    (this pack's own format with a ``gan_pack`` metadata entry, or bare weights), or an in-memory state dict.
    Accepted layouts: the reference's ``ResnetGenerator`` / ``UnetGenerator`` (current and pre-0.4
    InstanceNorm checkpoints with running statistics, which are dropped as the reference does), a
    ``module.`` prefix, wrapper dicts (``state_dict``, ``G_A``/``G_B``, ``netG``, ``model``, ``generator``...),
    third-party ResNet generators with affine InstanceNorm or other module names (matched by tensor shapes).

    ``direction``: ``"AtoB"`` (default; ``G_A``) or ``"BtoA"`` (``G_B``) for files holding both CycleGAN
    generators. ``name``: display name (default: the file stem). ``overrides``: constructor arguments that
    the weights cannot reveal, e.g. ``use_dropout`` (reference mode only), ``padding_type``, ``train_size``.

    Raises :class:`TranslatorLoadError` (a ``ValueError``) naming what the file is when it is not a usable
    generator, ``FileNotFoundError`` for a missing path.
    """
    stem = ""
    metadata: Dict[str, str] = {}
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = Path(path_or_state_dict)
        stem = path.stem
        obj, metadata = _read_file(path)
        where = path.name
    elif isinstance(path_or_state_dict, Mapping):
        obj, where = path_or_state_dict, "state dict"
    else:
        raise TypeError(f"load_translator expects a path or a state dict, got {type(path_or_state_dict).__name__}")
    if METADATA_KEY in metadata:
        model = _from_gan_pack(metadata[METADATA_KEY], obj, overrides, where)
    else:
        try:
            sd = _unwrap(obj, direction)
            model = translator_from_state_dict(sd, direction=direction, **overrides)
        except TranslatorLoadError as exc:
            raise TranslatorLoadError(f"{where}: {exc}" if where != "state dict" else str(exc)) from None
    # the directions the file holds (empty: one generator, used whatever ``direction`` says)
    model.directions_in_file = sorted(generators_in(obj)) if METADATA_KEY not in metadata else []
    model.name = name or stem or model.arch
    model.eval().requires_grad_(False)
    if device is not None:
        model.to(device)
    return model


def save_translator(translator: Translator, path: Union[str, os.PathLike], *,
                    metadata: Optional[Mapping[str, Any]] = None) -> Path:
    """Write ``translator`` as ``.safetensors`` with its config under the metadata key ``"gan_pack"``.

    ``metadata``: extra string entries (e.g. a model card); non-string values are JSON-encoded. The file is
    written atomically (temporary file + rename). Returns the path.
    """

    path = Path(path)
    meta = {str(k): (v if isinstance(v, str) else json.dumps(v)) for k, v in (metadata or {}).items()}
    meta[METADATA_KEY] = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "config": translator.config()})
    return save_safetensors_atomic(translator.state_dict(), path, meta)
