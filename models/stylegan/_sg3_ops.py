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
# Polyphase formulation, per axis. Let the upsampling factor be U, the downsampling factor D (D divides U),
# E = U / D output phases. With the zero-stuffed signal filtered by fu (gain U), the full convolution is
#     full[q U + r] = A_r[q] = sum_k x[q - (P-1) + k] G[k, r],   G[k, r] = U fu[(P-1-k) U + r],  P = taps / U
# i.e. U short convolutions of the *input* (the inserted zeros are never multiplied). The padded, filtered
# signal is z[j] = full[j + s] with s = taps_u - 1 - pad0. The activation is pointwise, so it is applied to
# the phases A_r directly, and the decimated output o[i] = sum_k z[i D + k] fd'[k] (fd' = fd flipped), written
# with i = a E + e, is a sum over phases r of short correlations of A_r:
#     o_e[a] = sum_r sum_m A_r[a + m_lo + m] H[e, r, m]
# so only the kept output samples are ever computed. Both axes use grouped convolutions (one group per channel
# and phase); channels are processed in chunks so the upsampled intermediate stays small (cache-friendly,
# bounded memory). The result is the same function; only the summation order differs (float32 round-off).


class _AxisPlan:
    """Index bookkeeping and kernels of the polyphase up/down filtering along one axis."""

    def __init__(self, length: int, fu: Optional[torch.Tensor], fd: Optional[torch.Tensor], up: int, down: int,
                 pad0: int, out_len: int):
        taps_u = 1 if fu is None else int(fu.shape[0])
        fu64 = torch.ones([1], dtype=torch.float64) if fu is None else fu.detach().double().cpu()
        if taps_u % up:
            fu64 = F.pad(fu64, [0, up - taps_u % up])
        self.P = fu64.shape[0] // up
        # G[k, r] = U * fu[(P-1-k) U + r]
        self.G = (fu64 * up).view(self.P, up).flip(0)  # [P, U]
        self.U, self.D, self.E = up, down, up // down
        s = taps_u - 1 - pad0
        self.out_len = out_len
        self.na = -(-out_len // self.E)
        if fd is None:
            fdf = torch.ones([1], dtype=torch.float64)
        else:
            fdf = fd.detach().double().cpu()
            fdf = fdf.flip(list(range(fdf.ndim)))
        self.taps_d = int(fdf.shape[-1])
        self.s = s
        self.m_lo = math.floor(s / up)
        m_hi = ((self.E - 1) * down + self.taps_d - 1 + s) // up
        self.Kd = m_hi - self.m_lo + 1
        self.nq = self.na + self.Kd - 1
        # input padding so that the windows of x give A_r[q] for q in [m_lo, m_lo + nq)
        self.lo = self.P - 1 - self.m_lo
        self.hi = self.nq + self.P - 1 - length - self.lo
        # separable down kernel H[e, r, m]
        if fdf.ndim == 1:
            self.H = self._down_kernel(fdf)

    def taps_index(self, e: int, k: int) -> Tuple[int, int]:
        t = e * self.D + k + self.s
        m = t // self.U
        return t - m * self.U, m - self.m_lo  # (phase r, tap m')

    def _down_kernel(self, fdf: torch.Tensor) -> torch.Tensor:
        H = torch.zeros(self.E, self.U, self.Kd, dtype=torch.float64)
        for e in range(self.E):
            for k in range(fdf.shape[0]):
                r, m = self.taps_index(e, k)
                H[e, r, m] += fdf[k]
        return H


def _radial_down_kernel(py: _AxisPlan, px: _AxisPlan, fd: torch.Tensor) -> torch.Tensor:
    """2-D polyphase kernel [Ey, Ex, Uy, Ux, Kdy, Kdx] of a non-separable downsampling filter."""
    fdf = fd.detach().double().cpu().flip([0, 1])
    H = torch.zeros(py.E, px.E, py.U, px.U, py.Kd, px.Kd, dtype=torch.float64)
    for ey in range(py.E):
        for ky in range(fdf.shape[0]):
            ry, my = py.taps_index(ey, ky)
            for ex in range(px.E):
                for kx in range(fdf.shape[1]):
                    rx, mx = px.taps_index(ex, kx)
                    H[ey, ex, ry, rx, my, mx] += fdf[ky, kx]
    return H


def _fast_supported(fu, fd, up: int, down: int) -> bool:
    return up % down == 0 and (fu is None or fu.ndim == 1) and (fd is None or fd.ndim in (1, 2))


# intermediate (upsampled) elements per channel chunk: keeps the working set near the cache size
FAST_CHUNK_ELEMENTS = 1 << 21


def filtered_lrelu_fast(x: torch.Tensor, fu: Optional[torch.Tensor] = None, fd: Optional[torch.Tensor] = None,
                        b: Optional[torch.Tensor] = None, up: int = 1, down: int = 1, padding=0,
                        gain: float = math.sqrt(2), slope: float = 0.2,
                        clamp: Optional[float] = None) -> torch.Tensor:
    """Same result as :func:`filtered_lrelu_reference` (to float32 round-off) with far less work."""
    if not _fast_supported(fu, fd, up, down):
        return filtered_lrelu_reference(x, fu, fd, b, up, down, padding, gain, slope, clamp)
    px0, px1, py0, py1 = _parse_padding(padding)
    n, c, h, w = x.shape
    out_h, out_w = filtered_lrelu_output_size(h, w, fu, fd, up, down, padding)
    if b is not None:
        x = x + b.to(x.dtype).view(1, -1, 1, 1)
    if fu is None and fd is None and up == 1 and down == 1:  # ToRGB: bias, activation, clamp
        return _activate(F.pad(x, [px0, px1, py0, py1]), gain, slope, clamp)
    fd_y = fd if fd is None or fd.ndim == 1 else fd[:, 0]  # only the tap count matters for the plan
    fd_x = fd if fd is None or fd.ndim == 1 else fd[0]
    py = _AxisPlan(h, fu, fd_y, up, down, py0, out_h)
    px = _AxisPlan(w, fu, fd_x, up, down, px0, out_w)
    U, E = up, up // down
    dt, dev = x.dtype, x.device
    gy = py.G.t().reshape(U, 1, py.P, 1).to(dev, dt)  # [U(ry), 1, P, 1]
    gx = px.G.t().reshape(U, 1, 1, px.P).to(dev, dt)  # [U(rx), 1, 1, P]
    radial = fd is not None and fd.ndim == 2
    if radial:
        h2 = _radial_down_kernel(py, px, fd).reshape(E * E, U * U, py.Kd, px.Kd).to(dev, dt)
    else:
        hx = px.H.reshape(E, U, 1, px.Kd).to(dev, dt)  # [(ex), rx, 1, Kd]
        hy = py.H.reshape(E, U, py.Kd, 1).to(dev, dt)  # [(ey), ry, Kd, 1]
    per_channel = n * U * U * py.nq * px.nq
    chunk = max(1, min(c, FAST_CHUNK_ELEMENTS // max(per_channel, 1)))
    xp = F.pad(x, [px.lo, px.hi, py.lo, py.hi])
    up_mode = STRATEGY["up"] if STRATEGY["up"] != "auto" else ("2d" if U >= 4 else "sep")
    down_mode = STRATEGY["down"] if STRATEGY["down"] != "auto" else ("dw2d" if radial and E == 1 else "sep")
    if up_mode == "2d":
        g2 = (py.G.t().reshape(U, 1, py.P, 1) * px.G.t().reshape(1, U, 1, px.P)).reshape(U * U, 1, py.P, px.P)
        g2 = g2.to(dev, dt)
    if down_mode == "dw2d":
        if radial:
            d2 = _radial_down_kernel(py, px, fd)  # [Ey, Ex, Uy, Ux, Ky, Kx]
        else:
            d2 = py.H.view(E, 1, U, 1, py.Kd, 1) * px.H.view(1, E, 1, U, 1, px.Kd)
        d2 = d2.permute(2, 3, 0, 1, 4, 5).reshape(U * U * E * E, 1, py.Kd, px.Kd).to(dev, dt)
    fmt = torch.channels_last if STRATEGY["channels_last"] else torch.contiguous_format
    out = torch.empty((n, c, out_h, out_w), dtype=dt, device=dev, memory_format=fmt)
    for c0 in range(0, c, chunk):
        xc = xp[:, c0:c0 + chunk].contiguous(memory_format=fmt)
        cc = xc.shape[1]
        # polyphase upsampling -> channels (c, ry, rx)
        if up_mode == "2d":
            t = F.conv2d(xc, g2.repeat(cc, 1, 1, 1), groups=cc)
        else:
            t = F.conv2d(xc, gy.repeat(cc, 1, 1, 1), groups=cc)
            t = F.conv2d(t, gx.repeat(cc * U, 1, 1, 1), groups=cc * U)
        t = _activate_(t, gain, slope, clamp)
        if down_mode == "dw2d":
            o = F.conv2d(t, d2.repeat(cc, 1, 1, 1), groups=cc * U * U)  # (c, ry, rx, ey, ex)
            o = o.view(n, cc, U * U, E, E, py.na, px.na).sum(2).permute(0, 1, 4, 2, 5, 3)
        elif radial:
            o = F.conv2d(t, h2.repeat(cc, 1, 1, 1), groups=cc)  # (c, ey, ex)
            o = o.view(n, cc, E, E, py.na, px.na).permute(0, 1, 4, 2, 5, 3)
        else:
            o = F.conv2d(t, hx.repeat(cc * U, 1, 1, 1), groups=cc * U)  # (c, ry, ex)
            if E > 1:
                o = o.view(n, cc, U, E, py.nq, px.na).transpose(2, 3).reshape(n, cc * E * U, py.nq, px.na)
            o = F.conv2d(o, hy.repeat(cc * E, 1, 1, 1), groups=cc * E)  # (c, ex, ey)
            o = o.view(n, cc, E, E, py.na, px.na).permute(0, 1, 4, 3, 5, 2)
        out[:, c0:c0 + cc] = o.reshape(n, cc, py.na * E, px.na * E)[:, :, :out_h, :out_w]
    return out


# How the fast path maps onto grouped convolutions (all choices give the same result; measured fastest on CPU):
# up "sep" (rows then columns) or "2d" (one 2-D polyphase kernel); down "sep" (grouped over phases) or "dw2d"
# (depthwise 2-D kernels summed over phases); "auto" picks per layer.
STRATEGY = {"up": "auto", "down": "auto", "channels_last": True}


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
