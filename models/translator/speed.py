"""Fast-path helpers for translator inference: a prepared, cached inference copy of a network.

:func:`inference_copy` returns a copy of a translator made for inference on one device and precision, and
caches it (per model, device, dtype and mode; rebuilt when a parameter or buffer of the model changes):

* **BatchNorm folded into the convolution before it** (``conv -> BN`` and ``conv-transpose -> BN``) when the
  BatchNorm runs on its running statistics (``mode="eval"``): ``W' = W * g / sqrt(var + eps)``,
  ``b' = (b - mean) * g / sqrt(var + eps) + beta``; exact up to float round-off. In ``mode="reference"``
  BatchNorm uses image statistics and nothing is folded.
* **Layout** per device and architecture (:func:`channels_last_for`): channels_last weights and activations
  on the CPU (oneDNN's channels_last convolutions are faster than NCHW in float32 and much faster in
  bfloat16, measured on a 2-core AVX-512 EPYC); on CUDA NCHW for ResNets (channels_last measured slower there)
  and channels_last for U-Nets.
* **Low precision with native weights** (``dtype`` float16/bfloat16): every convolution except the first and
  the last holds its weights in ``dtype`` and casts its input to it, instead of autocast re-casting float32
  weights on every call. Normalisation layers (InstanceNorm statistics and output, under translate's frame
  context) and the residual/skip streams they feed stay float32; the first convolution (sees the raw image)
  and the last one (before ``tanh``, i.e. the output) run in float32 with autocast disabled.

* **Calibrated by the shared criterion** (``models.precision``): a low-precision copy is used only when, on
  the shared calibration frames (smooth scene, hard edges, texture), its output is within PSNR >= 50 dB of
  the float32 copy with at most 0.01 % of 8-bit pixels off by more than 2/255; otherwise that model runs
  float32. The verdict is kept per model content, device and precision, in memory and in a small cache file
  (no second calibration, not even in the next session). :func:`effective_precision` says what a request
  really runs and why (the verdict's PSNR, fraction of pixels > 2/255, max error).

Measured on a 2-core AVX512-BF16 EPYC without AMX (1 thread, 256-512 px): this bfloat16 copy runs as fast as
naive ``torch.autocast("cpu", torch.bfloat16)`` on channels_last and faster than autocast on NCHW (U-Net-256
512²: 2.0x eager vs 1.6x), and is more accurate than either (float32 normalisation and first/last layers).

``native_low_precision(device, dtype)`` says whether a device computes ``dtype`` natively (CPU: the
``avx512_bf16`` / ``amx_bf16`` flags for bfloat16, ``amx_fp16`` for float16; CUDA: bf16 support / any GPU for
fp16). ``auto_dtype(device)`` is the first low precision ``precision: auto`` tries: float16 on CUDA, bfloat16
on CPUs with AMX-BF16, float32 (None) elsewhere -- an AVX512-BF16 CPU without AMX gains at most ~2x per
convolution, too little to leave bit-exact float32 by default.
"""
from __future__ import annotations

import contextlib
import copy
import threading
import weakref
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .. import precision as _precision
from .layers import InstanceNorm2d

_LOW = (torch.float16, torch.bfloat16)


# ------------------------------------------------------------------------------------------ device support
cpu_flags = _precision.cpu_flags
native_low_precision = _precision.native_low_precision


def auto_dtype(device) -> Optional[torch.dtype]:
    """The first precision ``precision: auto`` asks for on ``device`` (None = float32): CUDA float16, an
    AMX-BF16 CPU bfloat16, other CPUs float32 (see ``models.precision.auto_dtypes``)."""
    cands = _precision.auto_dtypes(device)
    return cands[0] if cands else None


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


def channels_last_for(translator: nn.Module, device) -> bool:
    """Memory layout of the prepared copy: channels_last on the CPU (oneDNN's channels_last convolutions are
    faster, measured in float32 and bfloat16); on CUDA NCHW for ResNets (measured on an H200: channels_last
    made ResNet-9 slower, TF32 40 -> 56 ms at 1080p, 156 -> 273 ms at 4K: its time is in memory-bound
    padding/normalisation passes that cuDNN runs faster on NCHW) and channels_last for the rest (U-Nets: the
    fast layout of cuDNN's half-precision convolutions)."""
    device = torch.device(device)
    if device.type != "cuda":
        return True
    return getattr(translator, "arch", "") != "resnet"


# path variant of the low-precision copy (part of the calibration cache key: a new variant is re-measured)
_VARIANT = "native-weights-v1"


def calibration_frames(translator: nn.Module, device) -> torch.Tensor:
    """The shared calibration frames (``models.precision.calibration_frames``) as NCHW [-1, 1] input for
    ``translator``: 3 frames, side 256 or the model's minimum size, rounded up to its size multiple."""
    m = int(getattr(translator, "size_multiple", 1) or 1)
    side = max(256, int(getattr(translator, "min_size", m) or m))
    side = -(-side // m) * m
    c = int(getattr(translator, "input_nc", 3) or 3)
    return (_precision.calibration_frames(c, side) * 2 - 1).to(device)


def _forward_whole(net: nn.Module, x: torch.Tensor, mode: str, dtype: Optional[torch.dtype],
                   channels_last: bool = True) -> torch.Tensor:
    from .layers import FrameContext, frame_context

    h, w = x.shape[-2:]
    outs = []
    for i in range(x.shape[0]):   # one frame at a time: calibration memory stays that of one frame
        ctx = FrameContext(mode=mode, seed=0, staged=False, image_index=torch.arange(i, i + 1))
        ctx.tile_origin, ctx.tile_size, ctx.owned = (0, 0), (h, w), (0, h, 0, w)
        with frame_context(net, ctx), torch.inference_mode():
            xi = x[i:i + 1].clone()
            if channels_last:
                xi = xi.contiguous(memory_format=torch.channels_last)
            with (torch.autocast(x.device.type, dtype=dtype) if dtype in _LOW else contextlib.nullcontext()):
                outs.append(net(xi).float())
    return torch.cat(outs)


def calibrate(reference: nn.Module, candidate: nn.Module, translator: nn.Module, device, mode: str,
              dtype: Optional[torch.dtype], channels_last: bool = True) -> _precision.Verdict:
    """The shared accuracy criterion (``models.precision``) for ``candidate`` (low precision) against
    ``reference`` (the float32 copy) on :func:`calibration_frames`."""
    x = calibration_frames(translator, device)
    ref = _forward_whole(reference, x, mode, None, channels_last)
    out = _forward_whole(candidate, x, mode, dtype, channels_last)
    return _precision.judge(out, ref, _precision.dtype_name(dtype), value_range=(-1.0, 1.0))


_VERDICTS: "weakref.WeakKeyDictionary[nn.Module, Dict[tuple, _precision.Verdict]]" = weakref.WeakKeyDictionary()


def inference_copy(translator: nn.Module, device, dtype: Optional[torch.dtype], mode: str = "eval"
                   ) -> Tuple[nn.Module, bool, Optional[torch.dtype]]:
    """(network to run, feed channels_last input?, autocast dtype or None) for ``translate``.

    The network is a cached prepared copy (see the module docstring) or, for modules without plain
    convolutions, the translator itself (then channels_last only on CUDA and autocast as requested).
    A low-precision copy is used only when the shared criterion (``models.precision``: PSNR >= 50 dB and at
    most 0.01 % of pixels off by more than 2/255 from the float32 copy) accepts it on the calibration frames
    (verdict cached in memory and on disk); otherwise the float32 copy runs (see :func:`effective_precision`)."""
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
            return hit[1], hit[3], hit[2]
    fuse = mode == "eval"
    cl = channels_last_for(translator, device)
    if dtype in _LOW and not _precision.native_low_precision(device, dtype):
        # emulated half precision is slower than float32 (a float16 3x3 convolution on this pack's AVX512-BF16
        # EPYC without AMX-FP16 ran 200x slower than float32) and less exact: float32 runs instead
        with _LOCK:
            _VERDICTS.setdefault(translator, {}).pop(key, None)
        dtype = None
    if dtype in _LOW:
        ref, _, _ = inference_copy(translator, device, None, mode)
        built = {}

        def measure() -> _precision.Verdict:
            built["net"] = build_inference_copy(translator, device, dtype, fuse=fuse, channels_last=cl)
            return calibrate(ref, built["net"], translator, device, mode, dtype, cl)

        verdict = _precision.calibrated_verdict(
            translator, {"family": "translator", "device": _precision.device_description(device),
                         "precision": _precision.dtype_name(dtype), "mode": mode, "variant": _VARIANT,
                         "channels_last": cl}, measure)
        with _LOCK:
            _VERDICTS.setdefault(translator, {})[key] = verdict
        if verdict.accepted:
            net = built.get("net") or build_inference_copy(translator, device, dtype, fuse=fuse, channels_last=cl)
            amp = dtype
        else:
            net, amp = ref, None     # the low-precision copy is not accurate enough for this model
    else:
        net, amp = build_inference_copy(translator, device, None, fuse=fuse, channels_last=cl), None
    with _LOCK:
        per = _CACHE.setdefault(translator, {})
        per.pop(key, None)
        while len(per) >= _MAX_PER_MODEL + 1:
            per.pop(next(iter(per)))
        per[key] = (fp, net, amp, cl)
    # the copy's convolutions carry their own precision; autocast covers any other layer of the architecture
    return net, cl, amp


def effective_dtype(translator: nn.Module, device, dtype: Optional[torch.dtype], mode: str = "eval"
                    ) -> Optional[torch.dtype]:
    """The precision ``translate(..., dtype=dtype)`` really runs ``translator`` in (None = float32): a
    low-precision request falls back to float32 when the calibration rejects it."""
    return inference_copy(translator, device, dtype, mode)[2]


def effective_precision(translator: nn.Module, device, dtype: Optional[torch.dtype], mode: str = "eval"
                        ) -> Dict[str, object]:
    """What ``translate(translator, ..., device=device, dtype=dtype, mode=mode)`` runs, for reports:
    ``{"requested": "bfloat16", "precision": "float32", "layout": "channels_last", "verdict": {...} or None,
    "reason": "..."}`` -- ``verdict`` holds the calibration's PSNR (dB), fraction of pixels > 2/255, max
    error and whether it was measured now or came from the memory/disk cache. Cheap after the first call
    (the prepared copy and the verdict are cached)."""
    device = torch.device(device)
    if dtype == torch.float32:
        dtype = None
    _, cl, amp = inference_copy(translator, device, dtype, mode)
    with _LOCK:
        verdict = _VERDICTS.get(translator, {}).get((str(device), dtype, mode == "eval"))
    requested, ran = _precision.dtype_name(dtype), _precision.dtype_name(amp)
    if dtype is None:
        reason = "float32 requested"
    elif not _precision.native_low_precision(device, dtype):
        reason = f"{requested} is not computed natively on this {device.type} (slower than float32): float32 ran"
    elif verdict is None:
        reason = f"{requested} runs without calibration (this architecture has no prepared copy)"
    elif verdict.accepted:
        reason = f"calibration accepted {verdict.summary().split(': ', 1)[1]}"
    else:
        reason = (f"calibration rejected {requested} ({verdict.summary().split(': ', 1)[1]}; needs PSNR >= "
                  f"{_precision.PSNR_MIN_DB:g} dB and <= {_precision.MAX_FRACTION_OVER * 100:g} % of pixels "
                  f"> {_precision.OVER_LEVELS}/255): exact float32 ran")
    return {"requested": requested, "precision": ran, "layout": "channels_last" if cl else "NCHW",
            "verdict": verdict.as_dict() if verdict is not None else None, "reason": reason}


def last_verdict(translator: nn.Module, device="cpu", dtype: Optional[torch.dtype] = torch.bfloat16,
                 mode: str = "eval") -> Optional[_precision.Verdict]:
    """The calibration verdict of the last ``dtype`` request of ``translator`` on ``device``, if any."""
    with _LOCK:
        return _VERDICTS.get(translator, {}).get((str(torch.device(device)), dtype, mode == "eval"))


def last_calibration_error(translator: nn.Module) -> Optional[float]:
    """Largest deviation (1/255) the last low-precision calibration of ``translator`` measured, if any."""
    with _LOCK:
        verdicts = list(_VERDICTS.get(translator, {}).values())
    return verdicts[-1].max_err_255 if verdicts else None


def clear_cache() -> None:
    with _LOCK:
        _CACHE.clear()
        _VERDICTS.clear()
    _precision.clear_cache()
