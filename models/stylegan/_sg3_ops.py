"""Low-level operations of the StyleGAN3 synthesis network, written for this pack from the published math.

* :func:`design_lowpass_filter` -- the Kaiser-windowed sinc (separable) and windowed jinc (radial) low-pass
  filters the alias-free generator uses, computed in float64 with numpy and returned as float32 tensors.
* :func:`filtered_lrelu_reference` -- the straightforward definition of the filtered leaky ReLU
  (bias, zero-insertion upsampling, padding, FIR filter, gain/leaky-ReLU/clamp, FIR filter, decimation).
* :func:`filtered_lrelu_fast` -- the same function computed without the wasted work: polyphase upsampling
  (the zero samples are never multiplied), the downsampling filter evaluated only at the kept samples, all
  as dense matrix products on contiguous memory. It agrees with the reference to float32 round-off.

Filters follow the convolution convention (the filter is flipped against the signal), like the definition.
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence, Tuple

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
        x = torch.where(x >= 0, x, x * slope)
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


def _upsample_matrix_1d(f: Optional[torch.Tensor], up: int) -> Tuple[torch.Tensor, int]:
    """Polyphase matrix ``G[k, r]`` for upsampling with filter ``f`` (gain ``up`` per axis).

    With ``P = taps / up`` taps per phase, the full convolution of the zero-stuffed signal satisfies
    ``full[q*up + r] = sum_k x[q - (P-1) + k] * G[k, r]`` where ``G[k, r] = up * f[(P-1-k)*up + r]``."""
    if f is None:
        f = torch.ones([1], dtype=torch.float32)
    taps = int(f.shape[0])
    if taps % up:
        f = F.pad(f, [0, up - taps % up])  # trailing zero taps change nothing
    phases = f.shape[0] // up
    g = (f.double() * up).view(phases, up).flip(0)  # g[k, r] = f[(P-1-k)*up + r] * up
    return g, phases


def _upfir_axis(x: torch.Tensor, g: torch.Tensor, phases: int, up: int, taps: int, pad0: int, out_len: int,
                axis: int) -> torch.Tensor:
    """Upsample+filter along ``axis`` (-1 or -2): samples ``0 .. out_len-1`` of the padded, filtered signal."""
    length = x.shape[axis]
    shift = taps - 1 - pad0  # output j is full-convolution index j + shift
    q0 = math.floor(shift / up)
    q1 = (shift + out_len - 1) // up
    lo = phases - 1 - q0
    hi = q1 + 1 - length
    if axis == -1:
        xs = F.pad(x, [lo, hi])
        win = xs.unfold(-1, phases, 1)  # [..., nq, P]
        y = torch.matmul(win, g)  # [..., nq, up]
        y = y.flatten(-2)
        start = shift - q0 * up
        return y[..., start:start + out_len]
    # axis -2: contract the windows of rows, keeping rows contiguous
    xs = F.pad(x, [0, 0, lo, hi])
    nq = q1 - q0 + 1
    w = x.shape[-1]
    # [..., nq, P, W] windows -> out [..., nq, up, W] = sum_k g[k, r] * win[..., k, :]
    win = xs.unfold(-2, phases, 1)  # [..., nq, W, P]
    y = torch.matmul(g.t(), win.transpose(-1, -2))  # [up, P] @ [..., nq, P, W] -> [..., nq, up, W]
    y = y.reshape(*x.shape[:-2], nq * up, w)
    start = shift - q0 * up
    return y[..., start:start + out_len, :]


def _downfir_axis(x: torch.Tensor, f: torch.Tensor, down: int, out_len: int, axis: int) -> torch.Tensor:
    """FIR along ``axis`` evaluated only at the kept samples ``0, down, 2 down, ...``."""
    taps = int(f.shape[0])
    fl = f.flip(0)
    need = (out_len - 1) * down + taps
    if axis == -1:
        xs = x[..., :need]
        win = xs.unfold(-1, taps, down)  # [..., out, T]
        return torch.matmul(win, fl.view(taps, 1)).squeeze(-1)
    xs = x[..., :need, :]
    win = xs.unfold(-2, taps, down)  # [..., out, W, T]
    return torch.matmul(fl.view(1, taps), win.transpose(-1, -2)).squeeze(-2)


def filtered_lrelu_fast(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                        b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding=0,
                        gain: float = math.sqrt(2), slope: float = 0.2,
                        clamp: Optional[float] = None) -> torch.Tensor:
    """Same result as :func:`filtered_lrelu_reference` (to float32 round-off) with far less work."""
    px0, px1, py0, py1 = _parse_padding(padding)
    n, c, h, w = x.shape
    out_h, out_w = filtered_lrelu_output_size(h, w, fu, fd, up, down, padding)
    if b is not None:
        x = x + b.to(x.dtype).view(1, -1, 1, 1)
    if fu is not None and fu.ndim != 1:
        # a non-separable upsampling filter never occurs in the generator; use the definition
        x = _fir_reference(x, fu, up=up, padding=padding, gain=up ** 2)
    else:
        fu_w, fu_h = _filter_size(fu)
        fd_w, fd_h = _filter_size(fd)
        mid_w = w * up + px0 + px1 - (fu_w - 1)
        mid_h = h * up + py0 + py1 - (fu_h - 1)
        # only the samples the downsampling filter reads are needed
        mid_w = min(mid_w, (out_w - 1) * down + fd_w)
        mid_h = min(mid_h, (out_h - 1) * down + fd_h)
        if fu is None and up == 1:
            x = F.pad(x, [px0, px1, py0, py1])[..., :mid_h, :mid_w]
        else:
            g, phases = _upsample_matrix_1d(fu.cpu() if fu is not None else None, up)
            g = g.to(device=x.device, dtype=x.dtype)
            x = _upfir_axis(x, g, phases, up, fu_w, px0, mid_w, axis=-1)
            x = _upfir_axis(x, g, phases, up, fu_h, py0, mid_h, axis=-2)
    x = _activate(x, gain, slope, clamp)
    if fd is None:
        x = x[..., ::down, ::down] if down > 1 else x
    elif fd.ndim == 1:
        fdd = fd.to(x.dtype)
        x = _downfir_axis(x, fdd, down, out_w, axis=-1)
        x = _downfir_axis(x, fdd, down, out_h, axis=-2)
    else:
        taps_h, taps_w = fd.shape
        x = x[..., :(out_h - 1) * down + taps_h, :(out_w - 1) * down + taps_w]
        cc = x.shape[1]
        x = F.conv2d(x, fd.to(x.dtype).flip([0, 1]).expand(cc, 1, taps_h, taps_w), stride=down, groups=cc)
    return x[..., :out_h, :out_w].contiguous()
