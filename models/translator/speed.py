"""Fast-path helpers for translator inference: a prepared, cached inference copy of a network.

:func:`inference_copy` returns a copy of a translator made for inference on one device and precision, and
caches it (per model, device, dtype and mode; rebuilt when a parameter or buffer of the model changes):

* **BatchNorm folded into the convolution before it** (``conv -> BN`` and ``conv-transpose -> BN``) when the
  BatchNorm runs on its running statistics (``mode="eval"``): ``W' = W * g / sqrt(var + eps)``,
  ``b' = (b - mean) * g / sqrt(var + eps) + beta``; exact up to float round-off. In ``mode="reference"``
  BatchNorm uses image statistics and nothing is folded.
* **channels_last** weights (activations follow: ``translate`` feeds channels_last input). Measured on a
  2-core AVX-512 EPYC, oneDNN's channels_last convolutions are faster than NCHW in float32 and much faster in
  bfloat16.
* **Low precision with native weights** (``dtype`` float16/bfloat16): every convolution except the first and
  the last holds its weights in ``dtype`` and casts its input to it, instead of autocast re-casting float32
  weights on every call. Normalisation layers (InstanceNorm statistics and output, under translate's frame
  context) and the residual/skip streams they feed stay float32; the first convolution (sees the raw image)
  and the last one (before ``tanh``, i.e. the output) run in float32 with autocast disabled.

* **Calibrated, never less accurate than promised**: a low-precision copy is used only when its output on
  two deterministic calibration frames stays within ``CALIBRATION_LIMIT_255`` (1/255) of the float32 copy;
  otherwise that model runs in float32 (measured: bfloat16 U-Nets deviate ~0.06/255, bfloat16 ResNets with
  InstanceNorm 4-10/255 -- every layer group tried in float32 alone still left > 2.5/255 -- so ResNets fall
  back). :func:`effective_dtype` says which precision a request really gets.

``native_low_precision(device, dtype)`` says whether a device computes ``dtype`` natively (CPU: the
``avx512_bf16`` / ``amx_bf16`` flags for bfloat16, never float16; CUDA: bf16 support / any GPU for fp16).
``auto_dtype(device)`` is the measured default of ``precision: auto``: float32 on CPU (README "Performance":
bfloat16 on an AVX512-BF16 CPU without AMX is at most ~2x per convolution and ResNets fall back to float32
anyway), float16 on CUDA.
"""
from __future__ import annotations

import contextlib
import copy
import threading
import weakref
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .layers import InstanceNorm2d

_LOW = (torch.float16, torch.bfloat16)


# ------------------------------------------------------------------------------------------ device support
def cpu_flags() -> frozenset:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_low_precision(device, dtype: Optional[torch.dtype]) -> bool:
    """True when ``device`` computes ``dtype`` (float16/bfloat16) convolutions natively (fast)."""
    device = torch.device(device)
    if dtype not in _LOW:
        return False
    if device.type == "cuda":
        return dtype == torch.float16 or torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        flags = cpu_flags()
        if dtype == torch.bfloat16:
            return bool({"avx512_bf16", "amx_bf16"} & flags)
        return "amx_fp16" in flags
    return False


def auto_dtype(device) -> Optional[torch.dtype]:
    """The default precision of ``precision: auto`` (None = float32)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.float16
    return None


# ------------------------------------------------------------------------------------------ layers
_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


class _LowConv2d(nn.Conv2d):
    """Conv2d with low-precision weights: the input is cast to the weights' dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x.to(self.weight.dtype), self.weight, self.bias)


class _LowConvTranspose2d(nn.ConvTranspose2d):
    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        return nn.ConvTranspose2d.forward(self, x.to(self.weight.dtype), output_size)


class _FloatConv2d(nn.Conv2d):
    """Conv2d kept in float32 even inside an autocast region."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return self._conv_forward(x.float(), self.weight, self.bias)


class _FloatConvTranspose2d(nn.ConvTranspose2d):
    def forward(self, x: torch.Tensor, output_size=None) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return nn.ConvTranspose2d.forward(self, x.float(), output_size)


class _FastInstanceNorm2d(InstanceNorm2d):
    """This pack's InstanceNorm2d for a whole (untiled) frame, computed on channels_last activations without
    the layout copies of ``F.instance_norm``: two-pass float32 statistics (mean, then mean of squared
    deviations) and in-place normalisation of the float32 input (the preceding convolution's fresh output)
    or of its float32 copy (low-precision input). Tiled frames and collected statistics use the parent's path."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.__dict__.get("frame_ctx")
        if ctx is not None and self.layer_id in ctx.stats and x.dtype == torch.float32:
            # tiles / strips with whole-frame statistics: normalise the fresh convolution output in place
            mean, var = ctx.stats[self.layer_id]
            scale = torch.rsqrt(var + self.eps)
            if self.weight is not None:
                scale = scale * self.weight.float()[None, :]
            x.sub_(mean[:, :, None, None]).mul_(scale[:, :, None, None])
            if self.bias is not None:
                x.add_(self.bias.float()[None, :, None, None])
            return x
        if ctx is None or ctx.staged or self.layer_id in ctx.stats:
            return super().forward(x)
        xf = x if x.dtype == torch.float32 else x.float()
        n, c = xf.shape[:2]
        if xf.is_contiguous(memory_format=torch.channels_last) and not xf.is_contiguous():
            flat, dim = xf.permute(0, 2, 3, 1).reshape(n, -1, c), 1     # a view: [N, HW, C]
        else:
            flat, dim = xf.reshape(n, c, -1), 2                          # a view: [N, C, HW]
        mean = flat.mean(dim)                                            # two-pass statistics, float32
        xf.sub_(mean[:, :, None, None])
        scale = torch.rsqrt(flat.square().mean(dim) + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.float()[None, :]
        xf.mul_(scale[:, :, None, None])
        if self.bias is not None:
            xf.add_(self.bias.float()[None, :, None, None])
        return xf


def _fast_norms(net: nn.Module) -> int:
    """Swap this pack's InstanceNorm2d layers that directly follow a convolution (so their input is a fresh
    tensor nobody else holds) for :class:`_FastInstanceNorm2d`."""
    count = 0
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        mods = list(seq._modules.values())
        for a, b in zip(mods, mods[1:]):
            if isinstance(a, _CONVS) and type(b) is InstanceNorm2d:
                b.__class__ = _FastInstanceNorm2d
                count += 1
    return count


def _is_running_bn(m: nn.Module) -> bool:
    return (isinstance(m, nn.BatchNorm2d) and m.running_mean is not None and m.running_var is not None
            and not m.__dict__.get("frame_ctx"))


@torch.no_grad()
def fuse_batchnorm(net: nn.Module) -> int:
    """Fold every BatchNorm2d (with running statistics) that directly follows a Conv2d/ConvTranspose2d in a
    Sequential into that convolution; the BatchNorm becomes ``nn.Identity``. Returns the number folded.
    Only valid where the BatchNorm would use its running statistics (eval)."""
    count = 0
    for seq in [m for m in net.modules() if isinstance(m, nn.Sequential)]:
        names = list(seq._modules)
        for a, b in zip(names, names[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if not (type(conv) in _CONVS and conv.groups == 1 and _is_running_bn(bn)):
                continue
            w = conv.weight
            scale = (bn.weight.double() if bn.weight is not None else torch.ones_like(bn.running_var, dtype=torch.float64))
            scale = scale / torch.sqrt(bn.running_var.double() + bn.eps)
            shift = bn.bias.double() if bn.bias is not None else torch.zeros_like(scale)
            bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
            if isinstance(conv, nn.ConvTranspose2d):   # weight [in, out, kh, kw]
                new_w = w.double() * scale[None, :, None, None]
            else:                                      # weight [out, in, kh, kw]
                new_w = w.double() * scale[:, None, None, None]
            conv.weight = nn.Parameter(new_w.to(w.dtype), requires_grad=False)
            conv.bias = nn.Parameter(((bias - bn.running_mean.double()) * scale + shift).to(w.dtype),
                                     requires_grad=False)
            seq._modules[b] = nn.Identity()
            count += 1
    return count


def _convert(net: nn.Module, device: torch.device, dtype: Optional[torch.dtype], channels_last: bool) -> None:
    convs = [m for m in net.modules() if type(m) in _CONVS]
    low = dtype in _LOW
    for i, m in enumerate(convs):
        keep_float = not low or i == 0 or i == len(convs) - 1
        if isinstance(m, nn.ConvTranspose2d):
            m.__class__ = _FloatConvTranspose2d if keep_float else _LowConvTranspose2d
        else:
            m.__class__ = _FloatConv2d if keep_float else _LowConv2d
        if not keep_float:
            m.to(dtype)
    net.to(device)
    if channels_last:
        for m in convs:
            if m.weight.dim() == 4:
                m.weight.data = m.weight.data.contiguous(memory_format=torch.channels_last)


def build_inference_copy(translator: nn.Module, device, dtype: Optional[torch.dtype] = None, *,
                         fuse: bool = True, channels_last: bool = True) -> nn.Module:
    """An independent inference copy of ``translator`` (see the module docstring); the original is untouched."""
    device = torch.device(device)
    with torch.no_grad():
        net = copy.deepcopy(translator).eval()
        for p in net.parameters():
            p.requires_grad_(False)
        if fuse:
            fuse_batchnorm(net)
        _fast_norms(net)
        _convert(net, device, dtype, channels_last)
    net.gan_pack_inference_copy = True
    return net


# ------------------------------------------------------------------------------------------ cache
_CACHE: "weakref.WeakKeyDictionary[nn.Module, Dict[tuple, Tuple[tuple, nn.Module]]]" = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()
_MAX_PER_MODEL = 2   # prepared copies kept per model (plus one)


def _fingerprint(module: nn.Module) -> tuple:
    """Changes whenever a parameter/buffer is replaced, moved or modified in place."""
    out = []
    for t in list(module.parameters()) + list(module.buffers()):
        try:
            version = t._version
        except RuntimeError:  # inference tensors have no version counter
            version = -1
        out.append((t.data_ptr(), version, t.dtype, str(t.device)))
    return tuple(out)


def _enabled(translator: nn.Module) -> bool:
    # only translators built from plain torch convolutions benefit; anything else runs as it is
    return any(type(m) in _CONVS for m in translator.modules())


# largest output deviation (in 1/255 of the 8-bit image) a low-precision copy may show on the calibration
# frames; half of the 2/255 the fast path promises, as a margin for other content
CALIBRATION_LIMIT_255 = 1.0
_CALIBRATION: "weakref.WeakKeyDictionary[nn.Module, float]" = weakref.WeakKeyDictionary()


def calibration_frames(translator: nn.Module, device) -> torch.Tensor:
    """Deterministic NCHW [-1, 1] test frames (2 x C x S x S, S = 256 or the model's minimum size): a smooth
    colour field and the same with fine noise -- the kind of content a frame has, generated locally."""
    m = int(getattr(translator, "size_multiple", 1) or 1)
    side = max(256, int(getattr(translator, "min_size", m) or m))
    side = -(-side // m) * m
    c = int(getattr(translator, "input_nc", 3) or 3)
    g = torch.Generator().manual_seed(20261201)
    low = torch.rand(1, c, 8, 8, generator=g)
    smooth = torch.nn.functional.interpolate(low, size=(side, side), mode="bicubic", align_corners=False)
    noisy = smooth + 0.15 * torch.randn(1, c, side, side, generator=g)
    return (torch.cat([smooth, noisy]).clamp(0, 1) * 2 - 1).to(device)


def _forward_whole(net: nn.Module, x: torch.Tensor, mode: str, dtype: Optional[torch.dtype]) -> torch.Tensor:
    from .layers import FrameContext, frame_context

    h, w = x.shape[-2:]
    ctx = FrameContext(mode=mode, seed=0, staged=False, image_index=torch.arange(x.shape[0]))
    ctx.tile_origin, ctx.tile_size, ctx.owned = (0, 0), (h, w), (0, h, 0, w)
    with frame_context(net, ctx), torch.inference_mode():
        x = x.contiguous(memory_format=torch.channels_last)
        with (torch.autocast(x.device.type, dtype=dtype) if dtype in _LOW else contextlib.nullcontext()):
            return net(x).float()


def calibrate(reference: nn.Module, candidate: nn.Module, translator: nn.Module, device, mode: str,
              dtype: Optional[torch.dtype]) -> float:
    """Largest |candidate - reference| output difference on :func:`calibration_frames`, in 1/255 of [0, 1]."""
    x = calibration_frames(translator, device)
    ref = _forward_whole(reference, x, mode, None)
    out = _forward_whole(candidate, x, mode, dtype)
    return float((out - ref).abs().max()) * 127.5


def inference_copy(translator: nn.Module, device, dtype: Optional[torch.dtype], mode: str = "eval"
                   ) -> Tuple[nn.Module, bool, Optional[torch.dtype]]:
    """(network to run, feed channels_last input?, autocast dtype or None) for ``translate``.

    The network is a cached prepared copy (see the module docstring) or, for modules without plain
    convolutions, the translator itself (then channels_last only on CUDA and autocast as requested).
    A low-precision copy is used only if its output stays within ``CALIBRATION_LIMIT_255`` of the float32
    copy on :func:`calibration_frames`; otherwise the float32 copy runs (see :func:`effective_dtype`)."""
    device = torch.device(device)
    if dtype == torch.float32:
        dtype = None
    if getattr(translator, "gan_pack_inference_copy", False) or not _enabled(translator):
        return translator, device.type == "cuda", dtype
    key = (str(device), dtype, mode == "eval")
    fp = _fingerprint(translator)
    with _LOCK:
        per = _CACHE.setdefault(translator, {})
        hit = per.get(key)
        if hit is not None and hit[0] == fp:
            return hit[1], True, hit[2]
    fuse = mode == "eval"
    if dtype in _LOW:
        ref, _, _ = inference_copy(translator, device, None, mode)
        net = build_inference_copy(translator, device, dtype, fuse=fuse)
        err = calibrate(ref, net, translator, device, mode, dtype)
        _CALIBRATION[translator] = err
        if err > CALIBRATION_LIMIT_255:
            net, amp = ref, None     # the low-precision copy is not accurate enough for this model
        else:
            amp = dtype
    else:
        net, amp = build_inference_copy(translator, device, None, fuse=fuse), None
    with _LOCK:
        per = _CACHE.setdefault(translator, {})
        per.pop(key, None)
        while len(per) >= _MAX_PER_MODEL + 1:
            per.pop(next(iter(per)))
        per[key] = (fp, net, amp)
    # the copy's convolutions carry their own precision; autocast covers any other layer of the architecture
    return net, True, amp


def effective_dtype(translator: nn.Module, device, dtype: Optional[torch.dtype], mode: str = "eval"
                    ) -> Optional[torch.dtype]:
    """The precision ``translate(..., dtype=dtype)`` really runs ``translator`` in (None = float32): a
    low-precision request falls back to float32 when calibration shows more than the allowed deviation."""
    return inference_copy(translator, device, dtype, mode)[2]


def last_calibration_error(translator: nn.Module) -> Optional[float]:
    """Deviation (1/255) the last low-precision calibration of ``translator`` measured, if any."""
    return _CALIBRATION.get(translator)


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
        _CALIBRATION.clear()
