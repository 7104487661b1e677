"""Loading and saving StyleGAN generators from every supported file layout.

``load_stylegan(path_or_state_dict)`` accepts:

* official NVlabs network pickles (``.pkl``, snapshot dict with ``G_ema``) — read by the restricted unpickler
  of :mod:`.safe_pickle`: nothing stored in the file is executed;
* rosinality ``stylegan2-pytorch`` checkpoints (``.pt`` with ``g_ema`` and optionally ``latent_avg``);
* a bare reference-layout state dict (``.pt``/``.pth``/``.safetensors`` or an in-memory dict; the config is
  inferred from keys and shapes, StyleGAN3 through ``sg3.infer_sg3_config``);
* this pack's ``.safetensors`` (weights + config JSON in the metadata key ``"gan_pack"``), written by
  :func:`save_stylegan`.
"""
from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

from .._files import save_safetensors_atomic
from .base import StyleGAN
from .safe_pickle import PersistentRecord, UnsafePickleError, safe_load_pickle
from .sg2 import StyleGAN2Generator, infer_sg2_config

__all__ = ["StyleGANLoadError", "load_stylegan", "save_stylegan", "build_stylegan", "describe_stylegan", "FORMAT_NAME"]

FORMAT_NAME = "gan-pack-stylegan"
FORMAT_VERSION = 1
_TORCH_LEGACY_MAGIC = bytes.fromhex("6cfc9c46f9206aa85019")


class StyleGANLoadError(ValueError):
    """The file or state dict is not a StyleGAN generator this pack can load (message says why)."""


# --------------------------------------------------------------------------------------------- construction

def _sg3_module():
    try:
        from . import sg3
    except ImportError as exc:
        raise StyleGANLoadError(f"this is a StyleGAN3 generator but StyleGAN3 support (models/stylegan/sg3.py) "
                                f"is not available: {exc}") from exc
    return sg3


def build_stylegan(config: Mapping[str, Any]) -> StyleGAN:
    """A generator (random weights) from ``G.config()`` (``family`` + the reference init kwargs)."""
    config = dict(config)
    family = str(config.pop("family", "stylegan2"))
    config.pop("name", None)
    try:
        if family == "stylegan2":
            return StyleGAN2Generator(**config)
        if family.startswith("stylegan3"):
            return _sg3_module().StyleGAN3Generator(**config)
    except (TypeError, ValueError) as exc:
        raise StyleGANLoadError(f"cannot build a {family} generator from config {config}: {exc}") from exc
    raise StyleGANLoadError(f"unknown StyleGAN family {family!r}")


def _merge_config(base: Dict[str, Any], override: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    out = dict(base)
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _with_weights(G: StyleGAN, state_dict: Mapping[str, torch.Tensor], what: str,
                  fill_missing: Tuple[str, ...] = ()) -> StyleGAN:
    own = G.state_dict()
    state_dict = dict(state_dict)
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    really_missing = [k for k in missing if not k.endswith(fill_missing)] if fill_missing else missing
    if really_missing or unexpected:
        raise StyleGANLoadError(f"{what}: weights do not fit the generator built for them "
                                f"(missing {really_missing[:6]}{'...' if len(really_missing) > 6 else ''}, "
                                f"unexpected {unexpected[:6]}{'...' if len(unexpected) > 6 else ''})")
    for key in missing:
        state_dict[key] = own[key]
    bad = [k for k in own if tuple(own[k].shape) != tuple(state_dict[k].shape)]
    if bad:
        k = bad[0]
        raise StyleGANLoadError(f"{what}: shape of {k} is {tuple(state_dict[k].shape)}, the generator expects "
                                f"{tuple(own[k].shape)}")
    G.load_state_dict(state_dict, strict=True)
    G.requires_grad_(False)
    G.eval()
    return G


# ------------------------------------------------------------------------------------------------- formats

def _strip_prefix(sd: Mapping[str, Any], prefix: str) -> Dict[str, Any]:
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix):]: v for k, v in sd.items()}
    return dict(sd)


def _tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(isinstance(v, torch.Tensor) for v in obj.values())


_TRANSLATOR_KEYS = re.compile(r"^(module\.)?(model\.\d+|model\.model\.|netG|net_G|down\d|up\d|encoder\.|decoder\.)")


def _looks_like_translator(sd: Mapping[str, Any]) -> bool:
    keys = [k for k in sd if isinstance(k, str)]
    if not keys:
        return False
    hits = sum(1 for k in keys if _TRANSLATOR_KEYS.match(k))
    return hits >= max(1, len(keys) // 2) or any(k in ("netG_A", "netG_B", "G_A", "G_B") for k in keys)


def _from_reference_state_dict(sd: Mapping[str, torch.Tensor], what: str, config: Optional[Mapping[str, Any]]) -> StyleGAN:
    sd = _strip_prefix(sd, "module.")
    if "synthesis.input.affine.weight" in sd:
        sg3 = _sg3_module()
        try:
            kwargs = sg3.infer_sg3_config(sd)
        except (KeyError, ValueError) as exc:
            raise StyleGANLoadError(f"{what}: looks like StyleGAN3 but its shapes are not understood: {exc}") from exc
        G = build_stylegan({"family": "stylegan3", **_merge_config(kwargs, config)})
        return _with_weights(G, sd, what)
    if "synthesis.b4.const" in sd or "mapping.fc0.weight" in sd:
        try:
            kwargs = infer_sg2_config(sd)
        except (KeyError, ValueError) as exc:
            raise StyleGANLoadError(f"{what}: looks like StyleGAN2 but its shapes are not understood: {exc}") from exc
        G = build_stylegan({"family": "stylegan2", **_merge_config(kwargs, config)})
        return _with_weights(G, sd, what, fill_missing=("resample_filter",))
    if "style.1.weight" in sd and "input.input" in sd:
        return _from_rosinality(sd, None, what, config)
    raise _unrecognised(sd, what)


def _unrecognised(sd: Mapping[str, Any], what: str) -> StyleGANLoadError:
    if _looks_like_translator(sd):
        return StyleGANLoadError(f"{what} looks like a Pix2Pix/CycleGAN generator, not a StyleGAN: load it with "
                                 f"the translator loader (Load Translator node) instead")
    keys = [str(k) for k in list(sd)[:8]]
    return StyleGANLoadError(f"{what} is not a StyleGAN generator this pack knows (keys: {keys}); supported: "
                             f"NVlabs network pickles (.pkl), rosinality stylegan2-pytorch checkpoints, reference "
                             f"state dicts and this pack's .safetensors")


# rosinality/stylegan2-pytorch layout -> reference layout

def _rosinality_to_reference(g: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    g = _strip_prefix(g, "module.")
    out: Dict[str, torch.Tensor] = {}
    n_mlp = 0
    while f"style.{n_mlp + 1}.weight" in g:
        out[f"mapping.fc{n_mlp}.weight"] = g[f"style.{n_mlp + 1}.weight"]
        out[f"mapping.fc{n_mlp}.bias"] = g[f"style.{n_mlp + 1}.bias"]
        n_mlp += 1
    if n_mlp == 0:
        raise StyleGANLoadError("rosinality checkpoint without mapping layers (style.1.weight)")

    def styled(src: str, dst: str, noise_idx: int):
        out[f"{dst}.weight"] = g[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = g[f"{src}.activate.bias"]
        if f"{src}.noise.weight" in g:
            out[f"{dst}.noise_strength"] = g[f"{src}.noise.weight"].reshape([])
            noise = g.get(f"noises.noise_{noise_idx}")
            if noise is None:
                res = 2 ** ((noise_idx + 5) // 2)
                noise = torch.zeros([res, res])  # no stored noise: const noise is zero
            out[f"{dst}.noise_const"] = noise.reshape(noise.shape[-2:])

    def torgb(src: str, dst: str):
        out[f"{dst}.weight"] = g[f"{src}.conv.weight"][0]
        out[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        out[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]
        out[f"{dst}.bias"] = g[f"{src}.bias"].reshape(-1)

    out["synthesis.b4.const"] = g["input.input"][0]
    styled("conv1", "synthesis.b4.conv1", 0)
    torgb("to_rgb1", "synthesis.b4.torgb")
    k = 0
    while f"to_rgbs.{k}.conv.weight" in g:
        res = 2 ** (k + 3)
        styled(f"convs.{2 * k}", f"synthesis.b{res}.conv0", 2 * k + 1)
        styled(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", 2 * k + 2)
        torgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb")
        k += 1
    return out


def _rosinality_filter(g: Mapping[str, torch.Tensor]):
    kernel = g.get("convs.0.conv.blur.kernel")
    if kernel is None:
        return None
    f = kernel.float() / kernel.float().sum()
    row = f.sum(dim=0)
    if not torch.allclose(torch.outer(row, row), f, atol=1e-6):
        raise StyleGANLoadError("rosinality checkpoint with a non-separable blur kernel is not supported")
    row = row / row[0]
    return [round(float(v), 6) for v in row]


def _from_rosinality(g: Mapping[str, torch.Tensor], latent_avg: Optional[torch.Tensor], what: str,
                     config: Optional[Mapping[str, Any]]) -> StyleGAN:
    try:
        sd = _rosinality_to_reference(g)
    except KeyError as exc:
        raise StyleGANLoadError(f"{what}: incomplete rosinality stylegan2-pytorch generator (missing {exc})") from exc
    kwargs = infer_sg2_config(sd)
    taps = _rosinality_filter(g)
    if taps is not None and taps != [1.0, 3.0, 3.0, 1.0]:
        kwargs["synthesis_kwargs"]["resample_filter"] = taps
    G = build_stylegan({"family": "stylegan2", **_merge_config(kwargs, config)})
    if latent_avg is not None:
        sd["mapping.w_avg"] = latent_avg.reshape(-1)[: G.w_dim].float()
    G = _with_weights(G, sd, what, fill_missing=("resample_filter", "w_avg"))
    if latent_avg is None:  # like rosinality's mean_latent(): mean W of random z (fixed seed: reproducible)
        with torch.no_grad():
            z = torch.randn([4096, G.z_dim], generator=torch.Generator().manual_seed(0))
            G.mapping.w_avg.copy_(G.mapping(z, None)[:, 0].mean(dim=0))
    return G


def _from_record(record: PersistentRecord, what: str, config: Optional[Mapping[str, Any]]) -> StyleGAN:
    # The reference stores the bare class name ("Generator") next to its module source; which generator it is
    # follows from the weights (SG3: synthesis.input.*, SG2: synthesis.b4.*), never from running the source.
    class_name = record.class_name
    if class_name.rsplit(".", 1)[-1] != "Generator":
        raise StyleGANLoadError(f"{what}: network class {class_name!r} is not a StyleGAN2-ADA/StyleGAN3 generator")
    sd = record.state_dict()
    if not sd:
        raise StyleGANLoadError(f"{what}: the network record ({class_name}) holds no weights")
    kwargs = _merge_config(dict(record.init_kwargs), config)
    args = record.init_args
    if "synthesis.input.affine.weight" in sd:
        family = "stylegan3"
        ctor = _sg3_module().StyleGAN3Generator
    elif "synthesis.b4.const" in sd:
        family = "stylegan2"
        ctor = StyleGAN2Generator
    else:
        raise StyleGANLoadError(f"{what}: the {class_name} record has neither StyleGAN2 nor StyleGAN3 weights "
                                f"(keys: {list(sd)[:6]})")
    try:
        G = ctor(*args, **kwargs)
    except (TypeError, ValueError) as exc:
        raise StyleGANLoadError(f"{what}: cannot build a {family} generator from the stored arguments {kwargs}: "
                                f"{exc}") from exc
    return _with_weights(G, sd, what)


def _from_object(obj: Any, what: str, config: Optional[Mapping[str, Any]]) -> StyleGAN:
    if isinstance(obj, StyleGAN):
        return obj
    if isinstance(obj, PersistentRecord):
        return _from_record(obj, what, config)
    if not isinstance(obj, Mapping):
        raise StyleGANLoadError(f"{what} holds a {type(obj).__name__}, not a StyleGAN generator or state dict")
    for key in ("G_ema", "G"):
        value = obj.get(key)
        if isinstance(value, PersistentRecord):
            return _from_record(value, what, config)
        if _tensor_dict(value):
            return _from_reference_state_dict(value, what, config)
    if _tensor_dict(obj.get("g_ema")):
        return _from_rosinality(obj["g_ema"], obj.get("latent_avg"), what, config)
    for key in ("state_dict", "model", "generator"):
        if _tensor_dict(obj.get(key)):
            return _from_reference_state_dict(obj[key], what, config)
    if _tensor_dict(obj):
        return _from_reference_state_dict(obj, what, config)
    raise _unrecognised(obj, what)


# ---------------------------------------------------------------------------------------------- file reading

def _torch_load(path: Path, what: str) -> Any:
    safe = [argparse.Namespace]  # rosinality checkpoints store their command-line args
    try:
        ctx = torch.serialization.safe_globals(safe)
    except AttributeError:  # older torch
        ctx = None
    try:
        if ctx is not None:
            with ctx:
                return torch.load(str(path), map_location="cpu", weights_only=True)
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except __import__("pickle").UnpicklingError as exc:
        from ..validate import refused_pickle_message, unsafe_pickle_global

        raise StyleGANLoadError(refused_pickle_message(
            what, unsafe_pickle_global(path),
            "Save a state dict (or convert the model with Convert StyleGAN) instead.")) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise StyleGANLoadError(f"{what} is corrupt or truncated (torch checkpoint could not be read: {exc})") from exc


def _read_safetensors(path: Path, what: str) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise StyleGANLoadError(f"{what} is not a readable .safetensors file (corrupt or truncated: {exc})") from exc
    return tensors, meta


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    n = int.from_bytes(head[:8], "little")
    return 0 < n <= size - 8 and head[8:9] == b"{"


def _load_path(path: Path, config: Optional[Mapping[str, Any]]) -> StyleGAN:
    what = f"'{path.name}'"
    if not path.is_file():
        raise FileNotFoundError(f"StyleGAN file not found: {path}")
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(16)
    if size == 0:
        raise StyleGANLoadError(f"{what} is empty")
    if _looks_like_safetensors(head, size) or path.suffix.lower() == ".safetensors":
        tensors, meta = _read_safetensors(path, what)
        if "gan_pack" in meta:
            try:
                info = json.loads(meta["gan_pack"])
            except json.JSONDecodeError as exc:
                raise StyleGANLoadError(f"{what}: unreadable gan_pack metadata ({exc})") from exc
            fmt = info.get("format")
            if fmt != FORMAT_NAME:
                hint = (" — it looks like a Pix2Pix/CycleGAN generator: use the translator loader"
                        if "translator" in str(fmt) else "")
                raise StyleGANLoadError(f"{what} is a gan-pack file of format {fmt!r}, not a StyleGAN{hint}")
            from ..validate import InputError, check_declared_architecture

            merged = _merge_config(info["config"], config)
            try:  # shapes first, on the meta device: forged metadata must not allocate before it is refused
                check_declared_architecture(lambda: build_stylegan(merged), merged, tensors, what)
            except InputError as exc:
                raise StyleGANLoadError(str(exc)) from None
            G = build_stylegan(merged)
            G = _with_weights(G, tensors, what)
            G.name = info.get("name") or path.stem
            return G
        return _from_reference_state_dict(tensors, what, config)
    if head[:4] == b"PK\x03\x04":
        return _from_object(_torch_load(path, what), what, config)
    if head[:1] == b"\x80":
        if head[2:4] == b"\x8a\x0a" and head[4:14] == _TORCH_LEGACY_MAGIC:
            return _from_object(_torch_load(path, what), what, config)
        data = path.read_bytes()
        try:
            obj = safe_load_pickle(data)
        except UnsafePickleError as exc:
            raise StyleGANLoadError(f"{what}: {exc}") from exc
        except (EOFError, ValueError, IndexError, KeyError, TypeError, __import__("pickle").UnpicklingError,
                RuntimeError) as exc:
            raise StyleGANLoadError(f"{what} is corrupt or truncated (pickle could not be read: "
                                    f"{type(exc).__name__}: {exc})") from exc
        return _from_object(obj, what, config)
    raise StyleGANLoadError(f"{what} is not a StyleGAN file: unrecognised format (first bytes {head[:8].hex()}); "
                            f"expected a network pickle (.pkl), a torch checkpoint (.pt/.pth) or .safetensors")


def load_stylegan(path_or_state_dict: Union[str, os.PathLike, Mapping[str, Any]], *, device=None,
                  config: Optional[Mapping[str, Any]] = None, name: Optional[str] = None) -> StyleGAN:
    """Load a StyleGAN2-ADA / StyleGAN3 generator (eval mode, float32, no gradients) from a file or dict.

    ``config`` overrides/extends the stored or inferred init kwargs (e.g. ``{"synthesis_kwargs":
    {"conv_clamp": 256}}`` for a bare state dict of an official config). Raises :class:`StyleGANLoadError`
    for anything that is not a loadable StyleGAN, ``FileNotFoundError`` for a missing file.
    """
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        path = Path(path_or_state_dict)
        G = _load_path(path, config)
        G.name = name or getattr(G, "name", "") or path.stem
    else:
        G = _from_object(path_or_state_dict, "the state dict", config)
        if name:
            G.name = name
    G = G.float()
    if device is not None:
        G = G.to(device)
    return G.eval()


def describe_stylegan(G: StyleGAN) -> str:
    """One line for logs and UIs: family, resolution, dims, conditioning, num_ws, parameter count."""
    n_params = sum(p.numel() for p in G.parameters())
    return (f"{G.family} generator: {G.img_resolution}x{G.img_resolution}x{G.img_channels}, z_dim={G.z_dim}, "
            f"w_dim={G.w_dim}, c_dim={G.c_dim} ({'conditional' if G.c_dim else 'unconditional'}), "
            f"num_ws={G.num_ws}, {n_params / 1e6:.2f}M parameters")


def save_stylegan(G: StyleGAN, path: Union[str, os.PathLike], *, metadata: Optional[Mapping[str, str]] = None) -> Path:
    """Write ``G`` as ``.safetensors`` (weights + ``{"format", "version", "config", "name"}`` JSON under metadata
    key ``"gan_pack"``); the write is atomic (temp file + rename). Returns the path."""

    path = Path(path)
    info = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": G.config(), "name": getattr(G, "name", "")}
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    meta["gan_pack"] = json.dumps(info)
    return save_safetensors_atomic(G.state_dict(), path, meta)
