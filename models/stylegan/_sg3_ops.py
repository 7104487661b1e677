"""Low-level operations of the StyleGAN3 synthesis network, written for this pack from the published math.

* :func:`design_lowpass_filter` -- the Kaiser-windowed sinc (separable) and windowed jinc (radial) low-pass
  filters the alias-free generator uses, computed in float64 with numpy and returned as float32 tensors.
* :func:`filtered_lrelu_reference` -- the straightforward definition of the filtered leaky ReLU
  (bias, zero-insertion upsampling, padding, FIR filter, gain/leaky-ReLU/clamp, FIR filter, decimation).
* :func:`filtered_lrelu_fast` -- the same function computed without the wasted work: polyphase upsampling
  by strided transposed convolution (the inserted zeros are never multiplied), the downsampling filter
  evaluated only at the kept samples (strided convolution), separable passes, depthwise kernels on
  channels_last memory, channel chunks. It agrees with the reference to float32 round-off.

Filters follow the convolution convention (the filter is flipped against the signal), like the definition.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

# ------------------------------------------------------------------------------------------------ filters


def _kaiser_beta_for(numtaps: int, width_rel_nyquist: float) -> float:
    """Kaiser window beta for a filter of ``numtaps`` taps and transition width (relative to Nyquist).

    Kaiser's empirical formulas: attenuation A = 2.285 (N-1) pi dw + 7.95 dB, then beta from A."""
    atten = 2.285 * (numtaps - 1) * math.pi * width_rel_nyquist + 7.95
    if atten > 50:
        return 0.1102 * (atten - 8.7)
    if atten > 21:
        return 0.5842 * (atten - 21) ** 0.4 + 0.07886 * (atten - 21)
    return 0.0


def _bessel_j1(x: np.ndarray) -> np.ndarray:
    return torch.special.bessel_j1(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


def design_lowpass_filter(numtaps: int, cutoff: float, width: float, fs: float,
                          radial: bool = False) -> Optional[torch.Tensor]:
    """Low-pass FIR filter: ``None`` for one tap (identity), else a float32 tensor.

    Separable: the ideal low-pass impulse response (a sinc at ``cutoff``) times a Kaiser window whose beta is
    chosen for transition width ``width``, normalised to unit DC gain; shape ``[numtaps]``.
    Radial: the 2-D circularly symmetric ideal low-pass (a jinc) times the outer product of the same Kaiser
    window, normalised to unit sum; shape ``[numtaps, numtaps]``.
    """
    if numtaps < 1:
        raise ValueError(f"numtaps must be >= 1, got {numtaps}")
    if numtaps == 1:
        return None
    nyquist = fs / 2
    beta = _kaiser_beta_for(numtaps, width / nyquist)
    window = np.kaiser(numtaps, beta)
    if not radial:
        c = cutoff / nyquist
        m = np.arange(numtaps) - (numtaps - 1) / 2
        h = c * np.sinc(c * m) * window
        h = h / h.sum()
        return torch.as_tensor(h, dtype=torch.float32)
    t = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
    r = np.hypot(*np.meshgrid(t, t))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = _bessel_j1(2 * math.pi * cutoff * r) / (math.pi * r)
    h = np.where(r == 0, cutoff, h)  # limit of J1(2 pi c r) / (pi r) at r = 0
    h = h * np.outer(window, window)
    h = h / h.sum()
    return torch.as_tensor(h, dtype=torch.float32)


def _parse_padding(padding) -> Tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    padding = [int(p) for p in padding]
    if len(padding) == 2:
        return padding[0], padding[0], padding[1], padding[1]
    px0, px1, py0, py1 = padding
    return px0, px1, py0, py1


def _filter_size(f: Optional[torch.Tensor]) -> Tuple[int, int]:
    """(width, height) of a filter; 1-D filters are separable (same taps on both axes)."""
    if f is None:
        return 1, 1
    return int(f.shape[-1]), int(f.shape[0])


def filtered_lrelu_output_size(in_h: int, in_w: int, fu, fd, up: int, down: int, padding) -> Tuple[int, int]:
    px0, px1, py0, py1 = _parse_padding(padding)
    fu_w, fu_h = _filter_size(fu)
    fd_w, fd_h = _filter_size(fd)
    out_w = (in_w * up + px0 + px1 - (fu_w - 1) - (fd_w - 1) + (down - 1)) // down
    out_h = (in_h * up + py0 + py1 - (fu_h - 1) - (fd_h - 1) + (down - 1)) // down
    return out_h, out_w


def _activate(x: torch.Tensor, gain: float, slope: float, clamp: Optional[float]) -> torch.Tensor:
    if slope != 1:
        x = F.leaky_relu(x, slope)
    if gain != 1:
        x = x * gain
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# ------------------------------------------------------------------------------------- reference path


def _fir_reference(x: torch.Tensor, f: Optional[torch.Tensor], up: int = 1, down: int = 1,
                   padding=(0, 0, 0, 0), gain: float = 1.0) -> torch.Tensor:
    """Zero-insertion upsampling, zero padding (negative = crop), FIR convolution, decimation."""
    n, c, h, w = x.shape
    px0, px1, py0, py1 = _parse_padding(padding)
    if up > 1:
        z = x.new_zeros(n, c, h * up, w * up)
        z[:, :, ::up, ::up] = x
        x = z
    x = F.pad(x, [px0, px1, py0, py1])
    if f is None:
        f = torch.ones([1, 1], dtype=torch.float32, device=x.device)
    f = (f * gain ** (f.ndim / 2)).to(x.dtype).flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f.expand(c, 1, *f.shape), groups=c)
    else:
        taps = f.shape[0]
        x = F.conv2d(x, f.view(1, 1, 1, taps).expand(c, 1, 1, taps), groups=c)
        x = F.conv2d(x, f.view(1, 1, taps, 1).expand(c, 1, taps, 1), groups=c)
    if down > 1:
        x = x[:, :, ::down, ::down]
    return x


def filtered_lrelu_reference(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                             b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding=0,
                             gain: float = math.sqrt(2), slope: float = 0.2,
                             clamp: Optional[float] = None) -> torch.Tensor:
    """Filtered leaky ReLU by its definition (slow: filters the zero-stuffed signal, then discards samples)."""
    if b is not None:
        x = x + b.to(x.dtype).view(1, -1, 1, 1)
    x = _fir_reference(x, fu, up=up, padding=padding, gain=up ** 2)
    x = _activate(x, gain, slope, clamp)
    x = _fir_reference(x, fd, down=down)
    return x


# ------------------------------------------------------------------------------------------ fast path
#
# Per axis, with upsampling factor U, the padded and filtered zero-stuffed signal is z[j] = full[j + s],
# s = taps_u - 1 - pad0, where full = (zero-stuffed x) * (U fu) is the full convolution. A transposed
# convolution with stride U computes exactly that full convolution without ever multiplying the inserted zeros
# (it is the polyphase form), and its `padding` crops the first samples; the input is zero-extended on the left
# when s < 0 and trimmed on the right to the samples that reach the needed outputs. The decimating filter is a
# strided correlation with the flipped fd, so only the kept samples are computed. All filters are depthwise
# (one filter per channel, channel multiplier 1) on channels_last tensors, which the CPU convolution backend runs
# as vectorised kernels; channels are processed in chunks so the upsampled intermediate stays cache-sized and
# memory is bounded. Same function as the reference path, different summation order (float32 round-off).

# upsampled elements per chunk (images x channels x rows x columns). On the CPU a cache-sized block; chunks
# split the channels of one image first and only then group images, so a batch of 8 runs the same blocks as
# 8 single images (splitting the channels of a batch instead made batch 8 1.35x slower per image than batch 1,
# measured on a 2-core EPYC at 128²). On a GPU the bound only limits memory: large blocks, few kernel launches.
FAST_CHUNK_ELEMENTS = 1 << 22
FAST_CHUNK_ELEMENTS_CUDA = 1 << 27


def _up_axis_plan(length: int, taps: int, up: int, pad0: int, need: int) -> Tuple[int, int, int, int]:
    """(zeros prepended, front crop, input length, output length) for one axis of the transposed convolution."""
    s = taps - 1 - pad0
    left = -(s // up) if s < 0 else 0  # prepend zeros: shifts the full-convolution index by left * up
    crop = s + left * up  # samples cropped at the front (0 <= crop, and crop < up when left > 0)
    n_in = (crop + need - 1) // up + 1  # later input samples do not reach the needed outputs
    n_in = max(n_in, -(-(need + 2 * crop - taps) // up) + 1)  # long enough after the symmetric crop
    out_len = (n_in - 1) * up + taps - 2 * crop
    return left, crop, n_in, out_len


def filtered_lrelu_fast(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                        b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding=0,
                        gain: float = math.sqrt(2), slope: float = 0.2,
                        clamp: Optional[float] = None) -> torch.Tensor:
    """Same result as :func:`filtered_lrelu_reference` (to float32 round-off) with far less work.

    Returns a channels_last tensor (the layout the next convolution wants)."""
    if fu is not None and fu.ndim != 1:  # non-separable upsampling never occurs in the generator
        return filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    px0, px1, py0, py1 = _parse_padding(padding)
    n, c, h, w = x.shape
    out_h, out_w = filtered_lrelu_output_size(h, w, fu, fd, up, down, padding)
    fu_w, fu_h = _filter_size(fu)
    fd_w, fd_h = _filter_size(fd)
    ly0, cy, ny, ly = _up_axis_plan(h, fu_h, up, py0, (out_h - 1) * down + fd_h)
    lx0, cx, nx, lx = _up_axis_plan(w, fu_w, up, px0, (out_w - 1) * down + fd_w)
    cl = torch.channels_last
    dt, dev = x.dtype, x.device
    if b is not None:
        x = x + b.to(dt).view(1, -1, 1, 1)
    x = F.pad(x, [lx0, nx - lx0 - w, ly0, ny - ly0 - h])
    fu1 = None if fu is None else fu.to(dev, dt) * up
    out = torch.empty((n, c, out_h, out_w), dtype=dt, device=dev, memory_format=cl)
    budget = FAST_CHUNK_ELEMENTS_CUDA if dev.type == "cuda" else FAST_CHUNK_ELEMENTS
    chunk = max(1, min(c, budget // max(ly * lx, 1)))            # channels of one image per block
    images = max(1, min(n, budget // max(chunk * ly * lx, 1)))   # images per block
    blocks = [(n0, c0) for n0 in range(0, n, images) for c0 in range(0, c, chunk)]
    for n0, c0 in blocks:
        t = x[n0:n0 + images, c0:c0 + chunk].contiguous(memory_format=cl)
        nn_, cc = t.shape[0], t.shape[1]
        if fu1 is not None:
            taps = fu1.shape[0]
            t = F.conv_transpose2d(t, fu1.view(1, 1, taps, 1).expand(cc, 1, taps, 1).contiguous(), stride=(up, 1),
                                   padding=(cy, 0), groups=cc)
            t = F.conv_transpose2d(t, fu1.view(1, 1, 1, taps).expand(cc, 1, 1, taps).contiguous(), stride=(1, up),
                                   padding=(0, cx), groups=cc)
        elif up > 1:  # identity filter: plain zero insertion
            z = t.new_zeros(nn_, cc, t.shape[2] * up, t.shape[3] * up).contiguous(memory_format=cl)
            z[:, :, ::up, ::up] = t * (up * up)
            t = z[:, :, cy:, cx:]
        # in place only on a tensor made here (the chunk may alias the caller's input otherwise)
        t = _activate_(t, gain, slope, clamp) if (fu1 is not None or up > 1) else _activate(t, gain, slope, clamp)
        if fd is None:
            o = t[:, :, ::down, ::down] if down > 1 else t
        elif fd.ndim == 2:  # radial (non-separable) downsampling filter
            o = F.conv2d(t, fd.to(dev, dt).flip([0, 1]).expand(cc, 1, fd_h, fd_w).contiguous(), stride=down, groups=cc)
        else:
            fdf = fd.to(dev, dt).flip(0)
            o = F.conv2d(t, fdf.view(1, 1, 1, fd_w).expand(cc, 1, 1, fd_w).contiguous(), stride=(1, down), groups=cc)
            o = F.conv2d(o, fdf.view(1, 1, fd_h, 1).expand(cc, 1, fd_h, 1).contiguous(), stride=(down, 1), groups=cc)
        out[n0:n0 + nn_, c0:c0 + cc] = o[:, :, :out_h, :out_w]
    return out


def _activate_(x: torch.Tensor, gain: float, slope: float, clamp: Optional[float]) -> torch.Tensor:
    """In-place leaky ReLU, gain and clamp (same values as :func:`_activate`); out of place under autograd."""
    if x.requires_grad and torch.is_grad_enabled():
        return _activate(x, gain, slope, clamp)
    if slope != 1:
        F.leaky_relu_(x, slope)
    if gain != 1:
        x.mul_(gain)
    if clamp is not None and clamp >= 0:
        x.clamp_(-clamp, clamp)
    return x
