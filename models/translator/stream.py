"""Exact, bounded-memory U-Net inference: the network is run level by level over row strips.

A U-Net's innermost layers see its whole ``2**depth`` window, so overlapping tiles can never reproduce the
untiled result exactly (and in reference mode the deepest layers' batch statistics would come from tiles).
Instead, every convolution is applied to the whole frame in horizontal strips: the input rows a strip needs
(its halo: a few rows, read with the frame's own zero padding at the borders) are moved to the device, the
convolution runs there, and the output rows come back to host memory. Element-wise layers (activations,
normalisation with known statistics, seeded dropout) are fused into the next strip pass; a normalisation
layer that needs whole-frame statistics gets them from one extra strip pass over its input. Skip connections
are kept frame-sized in host memory, except the largest decoder outputs (the second and third levels', as big as
the first and second skips), which are computed strip by strip while the decoder of the next level out reads
them and are never stored. The result equals the untiled network up to float round-off, in every mode; the
device holds one strip of one layer at a time.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .layers import FrameContext, _needs_frame_stats

_CONVS = (nn.Conv2d, nn.ConvTranspose2d)


def unet_levels(translator: nn.Module) -> Optional[List[Tuple[List[nn.Module], List[nn.Module]]]]:
    """[(encoder ops, decoder ops)] from the outermost level inwards, or None when ``translator`` is not a
    U-Net of nested skip blocks (``model`` Sequentials holding the next block)."""
    from .arch_unet import UnetSkipBlock

    block = getattr(translator, "model", None)
    if not isinstance(block, UnetSkipBlock):
        return None
    levels = []
    while block is not None:
        layers = list(block.model)
        sub = next((i for i, m in enumerate(layers) if isinstance(m, UnetSkipBlock)), None)
        if sub is None:
            first_conv = next(i for i, m in enumerate(layers) if isinstance(m, _CONVS))
            levels.append((layers[: first_conv + 1], layers[first_conv + 1:]))
            block = None
        else:
            levels.append((layers[:sub], layers[sub + 1:]))
            block = layers[sub]
    return levels


class _ChannelCat:
    """The channel concatenation of frame-sized tensors, without materialising it: a U-Net's skip connection
    joined with the decoder output. Strips are concatenated when they are read, so the decoder never holds a
    third frame-sized tensor (at 4K, 128 float32 channels at half resolution would be another 1 GB)."""

    def __init__(self, *parts: torch.Tensor):
        self.parts = parts
        n, _, h, w = parts[0].shape
        self.shape = torch.Size((n, sum(t.shape[1] for t in parts), h, w))

    def __getitem__(self, key) -> torch.Tensor:
        strips = [t[key] for t in self.parts]
        device = strips[-1].device
        return torch.cat([t.to(device) for t in strips], dim=1)


class _LazyConv:
    """Rows of ``post(op(pre(x)))`` computed on demand (see :meth:`_Streamer.lazy`); indexed like a level
    tensor, ``t[:, :, lo:hi]``, and returns a fresh float32 tensor on the device."""

    def __init__(self, st: "_Streamer", pre, op, x, post):
        self.st, self.pre, self.op, self.x, self.post = st, pre, op, x, post
        n, _, h, w = x.shape
        h_out = st.out_rows(op, h)
        k, s, p = op.kernel_size[1], op.stride[1], op.padding[1]
        if isinstance(op, nn.Conv2d):
            w_out = (w + 2 * p - k) // s + 1
        else:
            w_out = (w - 1) * s - 2 * p + k + op.output_padding[1]
        self.shape = torch.Size((n, op.out_channels, h_out, w_out))

    def __getitem__(self, key) -> torch.Tensor:
        rows = key[2]
        r0, r1, _ = rows.indices(self.shape[2])
        y = self.st.conv_rows(self.pre, self.op, self.x, r0, r1)
        return self.st._elementwise(self.post, y, r0, self.shape[2])


class _Streamer:
    def __init__(self, ctx: FrameContext, device, dtype, pixels: int, autocast, use_cl: bool,
                 tick: Callable[[], None], check_interrupt: Optional[Callable[[], None]], frame_h: int):
        self.ctx, self.device, self.dtype = ctx, device, dtype
        self.pixels = max(1, int(pixels))
        self.autocast, self.use_cl = autocast, use_cl
        self.tick, self.check_interrupt = tick, check_interrupt
        self.frame_h = frame_h

    # ------------------------------------------------------------------ helpers
    def _rows(self, width: int, channels: int) -> int:
        """Rows per strip so a strip holds about ``pixels`` values per channel of the widest layer."""
        return max(1, self.pixels // max(1, width))

    def _geometry(self, row0: int, rows: int, h_level: int, width: int) -> None:
        scale = self.frame_h / h_level
        self.ctx.tile_origin = (int(round(row0 * scale)), 0)
        self.ctx.tile_size = (int(round(rows * scale)), int(round(width * scale)))

    def _elementwise(self, ops: Sequence[nn.Module], t: torch.Tensor, row0: int, h_level: int) -> torch.Tensor:
        if ops:
            self._geometry(row0, t.shape[-2], h_level, t.shape[-1])
            for op in ops:
                t = op(t)
        return t

    def _strip_in(self, x: torch.Tensor, a: int, b: int, pre: Sequence[nn.Module]) -> torch.Tensor:
        """Rows [a, b) of the level tensor ``x`` (zeros outside the frame) after the element-wise ``pre``."""
        h = x.shape[-2]
        lo, hi = max(a, 0), min(b, h)
        t = x[:, :, lo:hi]
        # a join or a lazy level returns a fresh strip; a plain tensor's strip is copied (layers act in place)
        t = t.to(self.device) if isinstance(x, (_ChannelCat, _LazyConv)) else t.to(self.device, copy=True)
        t = self._elementwise(pre, t, lo, h)
        if lo > a or hi < b:
            t = F.pad(t, (0, 0, lo - a, b - hi))
        return t

    # ------------------------------------------------------------------ one convolution over the frame
    @staticmethod
    def out_rows(op: nn.Module, h: int) -> int:
        k, s, p = op.kernel_size[0], op.stride[0], op.padding[0]
        if isinstance(op, nn.Conv2d):
            return (h + 2 * p - k) // s + 1
        return (h - 1) * s - 2 * p + k + op.output_padding[0]

    def conv_rows(self, pre: Sequence[nn.Module], op: nn.Module, x, r0: int, r1: int) -> torch.Tensor:
        """Output rows [r0, r1) of ``op(pre(x))`` as a float32 tensor on the device; reads only the input
        rows those need (their halo), with the frame's own zero padding at the borders."""
        h = x.shape[-2]
        k, s, p = op.kernel_size[0], op.stride[0], op.padding[0]
        with self.autocast():
            if isinstance(op, nn.Conv2d):
                t = self._strip_in(x, s * r0 - p, s * (r1 - 1) - p + k, pre)
                if self.use_cl:
                    t = t.contiguous(memory_format=torch.channels_last)
                y = F.conv2d(t, op.weight, op.bias, stride=op.stride, padding=(0, op.padding[1]),
                             dilation=op.dilation, groups=op.groups)
            else:
                i0 = max(0, math.ceil((r0 + p - k + 1) / s))
                i1 = min(h, (r1 - 1 + p) // s + 1)
                t = self._strip_in(x, i0, i1, pre)
                if self.use_cl:
                    t = t.contiguous(memory_format=torch.channels_last)
                y = F.conv_transpose2d(t, op.weight, op.bias, stride=op.stride, padding=(0, op.padding[1]),
                                       output_padding=(0, op.output_padding[1]), groups=op.groups,
                                       dilation=op.dilation)
                a = r0 - s * i0 + p
                need = a + (r1 - r0)
                if need > y.shape[-2]:  # rows that only receive the bias (output padding)
                    extra = torch.zeros(y.shape[0], y.shape[1], need - y.shape[-2], y.shape[-1],
                                        dtype=y.dtype, device=y.device)
                    if op.bias is not None:
                        extra += op.bias.to(y.dtype)[None, :, None, None]
                    y = torch.cat([y, extra], dim=-2)
                y = y[:, :, a:need]
        return y.float()

    def conv(self, pre: Sequence[nn.Module], op: nn.Module, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        h_out = self.out_rows(op, h)
        out = None
        rows = self._rows(max(w, 1) * (1 if isinstance(op, nn.Conv2d) else op.stride[0]), op.out_channels)
        for r0 in range(0, h_out, rows):
            if self.check_interrupt is not None:
                self.check_interrupt()
            r1 = min(h_out, r0 + rows)
            y = self.conv_rows(pre, op, x, r0, r1)
            if out is None:
                out = torch.empty((n, y.shape[1], h_out, y.shape[-1]), dtype=torch.float32)
            out[:, :, r0:r1] = y.to(out.device)
            del y
        self.tick()
        return out

    def lazy(self, ops: Sequence[nn.Module], x) -> Optional["_LazyConv"]:
        """``ops`` (one convolution with element-wise layers around it) over ``x`` as a lazily computed level
        tensor: rows are computed when they are read, so the frame-sized result is never held. Whole-frame
        statistics its normalisation layers need are gathered first, from one extra computation of the rows.
        None when ``ops`` is not of that shape (then the caller materialises it with :meth:`run`)."""
        convs = [i for i, op in enumerate(ops) if isinstance(op, _CONVS)]
        if len(convs) != 1:
            return None
        i = convs[0]
        pre, op, post = list(ops[:i]), ops[i], list(ops[i + 1:])
        if any(isinstance(o, (nn.BatchNorm2d, nn.InstanceNorm2d)) and _needs_frame_stats(o, self.ctx)
               for o in pre):
            return None
        raw = _LazyConv(self, pre, op, x, [])
        for j, o in enumerate(post):
            if isinstance(o, (nn.BatchNorm2d, nn.InstanceNorm2d)) and _needs_frame_stats(o, self.ctx) \
                    and o.layer_id not in self.ctx.stats:
                self.stats(post[:j], o, raw)
        self.tick()
        return _LazyConv(self, pre, op, x, post)

    def stats(self, pre: Sequence[nn.Module], layer: nn.Module, x: torch.Tensor) -> None:
        """Whole-frame per-image, per-channel mean/var of ``pre(x)`` for the normalisation ``layer``."""
        n, c, h, w = x.shape
        s = torch.zeros((n, c), dtype=torch.float64)
        sq = torch.zeros((n, c), dtype=torch.float64)
        rows = self._rows(w, c)
        for r0 in range(0, h, rows):
            if self.check_interrupt is not None:
                self.check_interrupt()
            t = self._strip_in(x, r0, min(h, r0 + rows), pre).double()
            s += t.sum(dim=(2, 3)).cpu()
            sq += t.square().sum(dim=(2, 3)).cpu()
        mean = s / (h * w)
        var = (sq / (h * w) - mean.square()).clamp_min(0.0)
        self.ctx.stats[layer.layer_id] = (mean.float().to(self.device), var.float().to(self.device))
        self.tick()

    def finish(self, pre: Sequence[nn.Module], x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
        """``pre`` (element-wise: norm, activation, dropout) applied to the whole level tensor, strip by strip.
        With ``inplace`` (``x`` is a convolution output owned by the caller) the strips are written back into
        ``x``: each strip reads only its own rows, and no second frame-sized tensor is allocated."""
        if not pre:
            return x
        n, c, h, w = x.shape
        out = None
        rows = self._rows(w, c)
        for r0 in range(0, h, rows):
            t = self._strip_in(x, r0, min(h, r0 + rows), pre).float()
            if out is None:
                out = x if inplace and isinstance(x, torch.Tensor) and t.shape[1] == c \
                    and x.dtype == torch.float32 else torch.empty((n, t.shape[1], h, w), dtype=torch.float32)
            out[:, :, r0:r0 + t.shape[-2]] = t.to(out.device)
        return out

    # ------------------------------------------------------------------ a sequence of layers
    def run(self, ops: Sequence[nn.Module], x: torch.Tensor) -> torch.Tensor:
        pending: List[nn.Module] = []
        owned = False  # True once x is a convolution output of this run (safe to overwrite)
        for op in ops:
            if isinstance(op, _CONVS):
                x = self.conv(pending, op, x)
                pending = []
                owned = True
            else:
                if isinstance(op, (nn.BatchNorm2d, nn.InstanceNorm2d)) and _needs_frame_stats(op, self.ctx) \
                        and op.layer_id not in self.ctx.stats:
                    self.stats(pending, op, x)
                pending.append(op)
        return self.finish(pending, x, inplace=owned)


LAZY_DEPTHS = (1, 2)


def stream_passes(levels) -> int:
    """Progress steps of :func:`stream_unet`: one per convolution and per statistics pass."""
    count = 0
    for enc, dec in levels:
        for op in list(enc) + list(dec):
            if isinstance(op, _CONVS) or (isinstance(op, (nn.BatchNorm2d, nn.InstanceNorm2d))
                                          and _needs_frame_stats(op, op.__dict__.get("frame_ctx"))):
                count += 1
    return count


def stream_unet(levels, x: torch.Tensor, ctx: FrameContext, *, device, dtype, pixels: int, autocast, use_cl: bool,
                tick, check_interrupt) -> torch.Tensor:
    """Run a U-Net (``unet_levels``) on the padded frame ``x`` (NCHW, host memory) strip by strip.

    ``x`` may be given as a one-element list that is emptied here: then the frame is released as soon as the
    first level has read it (the outermost level never concatenates its input), not at the end."""
    if isinstance(x, list):
        x = x.pop()
    st = _Streamer(ctx, device, dtype, pixels, autocast, use_cl, tick, check_interrupt, frame_h=x.shape[-2])
    skips = [x]
    del x
    for enc, _ in levels:
        skips.append(st.run(enc, skips[-1]))
        skips[0] = None  # only the first level reads the frame itself
    h = skips.pop()
    for depth in range(len(levels) - 1, -1, -1):
        # the second and third levels' decoder outputs are the largest tensors a U-Net holds (as big as the
        # first and second skips): they are computed strip by strip as the next level out decodes them, never
        # stored. Only their halo rows are computed twice. Deeper levels are small and their strips short, so
        # recomputing them would cost more than they take.
        y = st.lazy(levels[depth][1], h) if depth in LAZY_DEPTHS else None
        if y is None:
            y = st.run(levels[depth][1], h)
        h = _ChannelCat(skips[depth], y) if depth > 0 else y
        skips[depth] = None
    return h
