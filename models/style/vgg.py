"""VGG-19 feature extractor for style transfer, loading the widely distributed ImageNet weight layouts.

Layouts read (detected from keys, metadata and, last, the file name):

* **torchvision** (``vgg19-dcbb9e9d.pth``): ``features.{0,2,5,7,10,...,34}.weight/bias`` (+ ``classifier.0/3/6``,
  ignored). Input RGB in [0, 1] normalised by the ImageNet mean/std.
* **caffe, torchvision-style keys** (jcjohnson's ``vgg19-d01eb7cb.pth`` used by neural-style ports): the same
  ``features.*`` keys; the original upload has ``classifier.1/.4/.6`` (neural-style-pt re-saves it with
  ``classifier.0/.3/.6``). Input BGR in [0, 255] minus the mean ``(103.939, 116.779, 123.68)``.
* **caffe, named convolutions** (``conv1_1.weight`` ... ``conv5_4.weight``, e.g. Gatys' ``vgg_conv.pth``):
  caffe input convention.
* **AdaIN** ``vgg_normalised.pth`` (an ``nn.Sequential``: ``0`` = 1x1 conv 3->3 that does the preprocessing,
  then ReflectionPad/Conv/ReLU triples, ceil-mode max pools): see :mod:`.adain`, built by this same class
  with ``convention="adain"``.

Whatever the layout, :class:`VGG19Features` takes RGB in [0, 1] and applies the convention itself.
"""
from __future__ import annotations

import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import StyleNetwork
from .errors import StyleNetworkLoadError

# convolutions per block for the VGG family (Simonyan & Zisserman configurations A, B, D, E)
BLOCKS = {"VGG-11": (1, 1, 2, 2, 2), "VGG-13": (2, 2, 2, 2, 2), "VGG-16": (2, 2, 3, 3, 3), "VGG-19": (2, 2, 4, 4, 4)}
VGG19_BLOCKS = BLOCKS["VGG-19"]
VGG19_WIDTHS = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
CONV_NAMES: Tuple[str, ...] = tuple(f"conv{b + 1}_{i + 1}" for b, n in enumerate(VGG19_BLOCKS) for i in range(n))

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
CONVENTIONS = ("torchvision", "caffe", "adain")


def sequential_conv_indices(blocks: Sequence[int]) -> List[int]:
    """Indices of the convolutions in torchvision's ``features`` Sequential for a VGG configuration."""
    out, idx = [], 0
    for n in blocks:
        for _ in range(n):
            out.append(idx)
            idx += 2  # conv, relu
        idx += 1  # pool
    return out


def adain_conv_indices() -> List[int]:
    """Indices of the 3x3 convolutions in pytorch-AdaIN's ``vgg`` Sequential (index 0 is the 1x1 conv)."""
    out, idx = [], 1
    for n in VGG19_BLOCKS:
        for _ in range(n):
            out.append(idx + 1)
            idx += 3  # pad, conv, relu
        idx += 1  # pool
    return out


TORCHVISION_INDICES = sequential_conv_indices(VGG19_BLOCKS)
ADAIN_INDICES = adain_conv_indices()


def layer_names(n_convs: int = 16) -> List[str]:
    """All feature names of the first ``n_convs`` convolutions: ``conv1_1, relu1_1, ..., pool1, ...``."""
    names: List[str] = []
    count = 0
    for b, n in enumerate(VGG19_BLOCKS):
        for i in range(n):
            if count == n_convs:
                return names
            names += [f"conv{b + 1}_{i + 1}", f"relu{b + 1}_{i + 1}"]
            count += 1
        names.append(f"pool{b + 1}")
    return names


class VGG19Features(StyleNetwork):
    """The convolutional part of VGG-19, returning activations at named layers.

    ``widths`` lists the output channels of the convolutions present (a prefix of the 16 is allowed, e.g. a
    file cut at ``relu4_1``; tests use reduced widths). ``convention`` is the input convention of the weights
    (``"torchvision"``, ``"caffe"`` or ``"adain"`` - the latter adds the learned 1x1 ``pre`` conv);
    ``padding`` is ``"zeros"`` (ImageNet VGG) or ``"reflect"`` (AdaIN); ``pool`` ``"max"`` or ``"avg"``
    (Gatys et al. suggest average pooling for image synthesis; ``forward(pool=...)`` overrides per call).
    """

    def __init__(self, widths: Sequence[int] = VGG19_WIDTHS, convention: str = "torchvision",
                 padding: str = "zeros", pool: str = "max", ceil_mode: bool = False, kind: str = "vgg19"):
        super().__init__()
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        if not 1 <= len(widths) <= 16:
            raise ValueError(f"VGG-19 has 1..16 convolutions, got {len(widths)} widths")
        if pool not in ("max", "avg") or padding not in ("zeros", "reflect"):
            raise ValueError(f"pool must be 'max'/'avg' and padding 'zeros'/'reflect' (got {pool!r}, {padding!r})")
        self.kind = kind
        self.widths = [int(w) for w in widths]
        self.convention = convention
        self.padding = padding
        self.pool = pool
        self.ceil_mode = bool(ceil_mode)
        self.pre = nn.Conv2d(3, 3, 1) if convention == "adain" else None
        self.convs = nn.ModuleDict()
        c_in = 3
        for name, c_out in zip(CONV_NAMES, self.widths):
            self.convs[name] = nn.Conv2d(c_in, c_out, 3, padding=1 if padding == "zeros" else 0)
            c_in = c_out
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("caffe_mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1), persistent=False)
        self.freeze()

    # ------------------------------------------------------------------ description
    @property
    def layers(self) -> List[str]:
        """Names of every feature this network can return."""
        return layer_names(len(self.widths))

    def channels(self, layer: str) -> int:
        """Channel count of feature ``layer``."""
        self._check_layers([layer])
        m = re.fullmatch(r"(conv|relu)(\d)_(\d)", layer)
        if m:
            return self.widths[CONV_NAMES.index(f"conv{m.group(2)}_{m.group(3)}")]
        block = int(layer[4:])
        return self.widths[sum(VGG19_BLOCKS[:block]) - 1]

    def config(self) -> Dict[str, object]:
        return {"kind": self.kind, "widths": list(self.widths), "convention": self.convention,
                "padding": self.padding, "pool": self.pool, "ceil_mode": self.ceil_mode}

    def public_state_dict(self) -> Dict[str, torch.Tensor]:
        """Weights in the torchvision ``features.N`` layout, or pytorch-AdaIN's Sequential layout."""
        out: Dict[str, torch.Tensor] = {}
        if self.convention == "adain":
            out["0.weight"], out["0.bias"] = self.pre.weight, self.pre.bias
            indices = ADAIN_INDICES
            fmt = "{}.{}"
        else:
            indices = TORCHVISION_INDICES
            fmt = "features.{}.{}"
        for idx, name in zip(indices, self.convs):
            conv = self.convs[name]
            out[fmt.format(idx, "weight")] = conv.weight
            out[fmt.format(idx, "bias")] = conv.bias
        return {k: v.detach() for k, v in out.items()}

    # ------------------------------------------------------------------ forward
    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """RGB [0, 1] -> the input the weights expect."""
        if self.convention == "torchvision":
            return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        if self.convention == "caffe":
            return x.flip(1) * 255.0 - self.caffe_mean.to(x.dtype)
        return self.pre(x)

    def _check_layers(self, layers: Iterable[str]) -> None:
        known = self.layers
        bad = [l for l in layers if l not in known]
        if bad:
            everything = layer_names(16)
            deeper = [l for l in bad if l in everything]
            if deeper:
                raise ValueError(f"layer(s) {deeper} are deeper than this network's weights reach "
                                 f"(it ends at {known[-1] if known[-1].startswith('relu') else known[-2]})")
            raise ValueError(f"unknown VGG layer(s) {bad}; known: conv/relu<block>_<n> and pool<block>, e.g. relu4_2")

    def forward(self, x: torch.Tensor, layers: Sequence[str] = ("relu4_1",),
                pool: Optional[str] = None) -> Dict[str, torch.Tensor]:
        """``x``: NCHW RGB in [0, 1]. Returns ``{layer: activation}`` for each requested layer, computing
        only as deep as needed. ``pool`` overrides the pooling type (``"max"``/``"avg"``) for this call."""
        layers = list(dict.fromkeys(layers))
        self._check_layers(layers)
        wanted = set(layers)
        remaining = len(wanted)
        pool = pool or self.pool
        out: Dict[str, torch.Tensor] = {}
        h = self.preprocess(x)
        i = 0
        for b, n in enumerate(VGG19_BLOCKS):
            for j in range(n):
                if i == len(self.widths):
                    return out
                name = f"{b + 1}_{j + 1}"
                if self.padding == "reflect":
                    h = F.pad(h, (1, 1, 1, 1), mode="reflect")
                h = self.convs["conv" + name](h)
                if "conv" + name in wanted:
                    out["conv" + name] = h
                    remaining -= 1
                h = F.relu(h)
                if "relu" + name in wanted:
                    out["relu" + name] = h
                    remaining -= 1
                i += 1
                if remaining == 0:
                    return out
            if pool == "max":
                h = F.max_pool2d(h, 2, 2, ceil_mode=self.ceil_mode)
            else:
                h = F.avg_pool2d(h, 2, 2, ceil_mode=self.ceil_mode)
            if f"pool{b + 1}" in wanted:
                out[f"pool{b + 1}"] = h
                remaining -= 1
                if remaining == 0:
                    return out
        return out


# ---------------------------------------------------------------------------------------------- loading
def _conv_entries(sd: Mapping[str, torch.Tensor], pattern: str) -> Dict[int, Tuple[torch.Tensor, Optional[torch.Tensor]]]:
    rx = re.compile(pattern)
    found: Dict[int, Tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
    for k, v in sd.items():
        m = rx.fullmatch(k)
        if m and v.ndim == 4:
            found[int(m.group(1))] = (v, sd.get(k[: -len("weight")] + "bias"))
    return found


def _check_chain(weights: List[torch.Tensor], first_in: int, what: str) -> None:
    c_in = first_in
    for i, w in enumerate(weights):
        if tuple(w.shape[1:]) != (c_in, 3, 3):
            raise StyleNetworkLoadError(
                f"{what}: convolution {CONV_NAMES[i]} has shape {tuple(w.shape)}, expected [C, {c_in}, 3, 3] - "
                "not a VGG-19 (or a damaged file)")
        c_in = w.shape[0]


def guess_family(indices: Sequence[int]) -> str:
    """Name the VGG configuration whose torchvision ``features`` indices these are (``"VGG-19"``, ``"VGG-16"``...)."""
    for fam, blocks in BLOCKS.items():
        if list(indices) == sequential_conv_indices(blocks):
            return fam
    return ""


def _vgg_error(indices: Sequence[int], name: str) -> StyleNetworkLoadError:
    fam = guess_family(indices)
    hint = f" ({fam}?)" if fam else ""
    return StyleNetworkLoadError(
        f"{name}: VGG-like but {len(indices)} conv layers{hint}; style transfer needs VGG-19 (16 conv layers, "
        "e.g. torchvision's vgg19-dcbb9e9d.pth or the caffe-converted vgg19-d01eb7cb.pth)")


def _fill(net: VGG19Features, weights: List[torch.Tensor], biases: List[Optional[torch.Tensor]],
          pre: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> VGG19Features:
    with torch.no_grad():
        for conv, w, b in zip(net.convs.values(), weights, biases):
            conv.weight.copy_(w.float())
            if b is None:
                conv.bias.zero_()
            else:
                conv.bias.copy_(b.float().reshape(-1))
        if pre is not None:
            net.pre.weight.copy_(pre[0].float())
            net.pre.bias.copy_(pre[1].float().reshape(-1))
    return net


def detect_convention(sd: Mapping[str, torch.Tensor], meta: Mapping[str, str], name: str) -> Tuple[str, str]:
    """``(convention, why)`` for a torchvision-layout VGG file: metadata, then keys, then the file name."""
    for key in ("input_convention", "convention", "gan_pack_convention"):
        value = str(meta.get(key, "")).lower()
        if value in ("torchvision", "caffe"):
            return value, f"metadata {key}={value}"
    if any(k.startswith(("classifier.1.", "classifier.4.")) for k in sd):
        return "caffe", "classifier.1/.4 keys of jcjohnson's caffe conversion"
    low = name.lower()
    if "d01eb7cb" in low or "00b39a1b" in low or "caffe" in low:
        return "caffe", "file name of the caffe-converted weights"
    if "dcbb9e9d" in low:
        return "torchvision", "torchvision file name"
    return "torchvision", "default (keys alone cannot tell torchvision from caffe weights; pass convention='caffe' if needed)"


def vgg_from_state_dict(sd: Mapping[str, torch.Tensor], meta: Mapping[str, str] = {}, name: str = "<state dict>",
                        convention: Optional[str] = None, pool: str = "max") -> VGG19Features:
    """Build :class:`VGG19Features` from a torchvision-layout (``features.N``) or named-conv (``conv1_1``) dict."""
    if any(re.fullmatch(r"features\.\d+\.running_mean", k) for k in sd):
        raise StyleNetworkLoadError(f"{name}: VGG with batch normalisation (vgg19_bn?) - use the plain VGG-19 "
                                    "weights (vgg19-dcbb9e9d.pth) instead")
    named = {k: v for k, v in sd.items() if re.fullmatch(r"conv\d_\d\.weight", k)}
    if named:
        present = [n for n in CONV_NAMES if f"{n}.weight" in sd]
        extra = sorted(k[:-7] for k in named if k[:-7] not in CONV_NAMES)
        if extra or present != list(CONV_NAMES[: len(present)]):
            per_block = [sum(1 for k in named if k.startswith(f"conv{b}_")) for b in range(1, 6)]
            fam = next((f for f, blocks in BLOCKS.items() if tuple(per_block) == blocks), "")
            raise StyleNetworkLoadError(
                f"{name}: VGG-like but {len(named)} conv layers{f' ({fam}?)' if fam else ''} (per block {per_block}); "
                "style transfer needs VGG-19's conv1_1..conv5_4")
        weights = [sd[f"{n}.weight"] for n in present]
        biases = [sd.get(f"{n}.bias") for n in present]
        conv, why = (convention, "argument") if convention else ("caffe", "conv1_1-style keys (caffe conversions)")
        for key in ("input_convention", "convention"):
            if not convention and str(meta.get(key, "")).lower() in ("torchvision", "caffe"):
                conv, why = str(meta[key]).lower(), f"metadata {key}"
        layout = "named convolutions (conv1_1 ...)"
    else:
        entries = _conv_entries(sd, r"features\.(\d+)\.weight")
        indices = sorted(entries)
        if not indices:
            raise StyleNetworkLoadError(f"{name}: no VGG convolution weights found")
        if indices != TORCHVISION_INDICES[: len(indices)]:
            raise _vgg_error(indices, name)
        weights = [entries[i][0] for i in indices]
        biases = [entries[i][1] for i in indices]
        conv, why = (convention, "argument") if convention else detect_convention(sd, meta, name)
        layout = "caffe (jcjohnson, features.N)" if conv == "caffe" else "torchvision (features.N)"
    if conv not in ("torchvision", "caffe"):
        raise ValueError(f"convention must be 'torchvision' or 'caffe', got {conv!r}")
    _check_chain(weights, 3, name)
    net = VGG19Features([w.shape[0] for w in weights], convention=conv, pool=pool)
    _fill(net, weights, biases)
    net.layout = layout
    net.convention_source = why
    return net
