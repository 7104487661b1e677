"""Residual blocks of a tiled ResNet run "flat": each convolution output computed once, stage by stage.

A tiled frame needs whole-frame normalisation statistics. Run as passes over tiles, a residual block costs
five convolutions (a pass stopping at its first norm, one stopping at its second, one computing its output)
instead of two. Here the block's input is the frame-sized bottleneck activation kept in host memory (small:
for a ResNet 4 x ngf channels at a quarter of the resolution), and the block is applied to it one convolution
at a time, in full-width row strips with a halo of the convolution's radius:

1. ``y = conv1(pad(x))`` into a new frame-sized tensor; the statistics the next norm needs are summed over
   the strips as they are produced (float64, like the tile passes), so they are exact whole-frame statistics.
2. ``y = conv2(pad(relu(norm1(y))))`` **in place** over ``y``: each strip keeps the few original rows the next
   strip's halo still needs; statistics of ``norm2`` again summed on the fly.
3. ``x += norm2(y)`` strip by strip, in place; ``y`` is freed.

Reflection/replication/zero padding at the frame border is what the whole frame gets (a strip at the top or
bottom edge is padded by the block's own padding layer, its interior rows come from the halo), so the result
equals the untiled network up to float round-off. Host memory: two bottleneck-sized tensors; the device holds
one strip. Element-wise layers (norm with known statistics, ReLU, seeded dropout) see the strip's position in
the frame through the :class:`~models.translator.layers.FrameContext`, so dropout masks match the untiled run.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .layers import FrameContext, _needs_frame_stats, channel_sums

_PADS = (nn.ReflectionPad2d, nn.ReplicationPad2d, nn.ZeroPad2d)
_CONVS = (nn.Conv2d,)
_NORMS = (nn.BatchNorm2d, nn.InstanceNorm2d)


def _same_size_conv(pad: Optional[nn.Module], conv: nn.Module) -> Optional[int]:
    """Radius of a stride-1 convolution (with its padding layer) that keeps the spatial size, else None."""
    if not isinstance(conv, _CONVS) or isinstance(conv, nn.ConvTranspose2d):
        return None
    k = conv.kernel_size
    if k[0] != k[1] or k[0] % 2 == 0 or tuple(conv.stride) != (1, 1) or tuple(conv.dilation) != (1, 1):
        return None
    r = (k[0] - 1) // 2
    if pad is not None:
        p = pad.padding if isinstance(pad.padding, tuple) else (pad.padding,) * 4
        if tuple(conv.padding) != (0, 0) or any(v != r for v in p):
            return None
    elif tuple(conv.padding) != (r, r) or conv.padding_mode != "zeros":
        return None
    return r


def block_segments(block: nn.Module):
    """``[(pre ops, pad, conv, radius)], tail ops`` of a residual block ``x + conv_block(x)``, or None when the
    block is not of that shape (only element-wise layers between same-size convolutions, at most one
    normalisation layer per element-wise run and it comes first)."""
    from .arch_resnet import ResnetBlock

    if type(block) is not ResnetBlock:
        return None
    segs, pending, pad = [], [], None
    for op in block.conv_block:
        if isinstance(op, _PADS):
            if pad is not None:
                return None
            pad = op
        elif isinstance(op, (nn.Conv2d, nn.ConvTranspose2d)):
            r = _same_size_conv(pad, op)
            if r is None:
                return None
            segs.append((pending, pad, op, r))
            pending, pad = [], None
        elif isinstance(op, _NORMS + (nn.ReLU, nn.LeakyReLU, nn.Dropout, nn.Identity, nn.Tanh)):
            pending.append(op)
        else:
            return None
    if pad is not None or not segs:
        return None
    for ops in [s[0] for s in segs] + [pending]:
        if any(isinstance(op, _NORMS) for op in ops[1:]):
            return None
    return segs, pending


def flat_strips(height: int, rows: int) -> List[Tuple[int, int]]:
    rows = max(1, int(rows))
    return [(r, min(height, r + rows)) for r in range(0, height, rows)]


class FlatBlockRunner:
    """Applies residual blocks to a frame-sized activation (see the module docstring)."""

    def __init__(self, ctx: FrameContext, device, frame_hw: Tuple[int, int], rows: int, autocast, use_cl: bool,
                 tick: Callable[[], None], check_interrupt: Optional[Callable[[], None]]):
        self.ctx, self.device, self.frame_hw = ctx, device, frame_hw
        self.rows, self.autocast, self.use_cl = rows, autocast, use_cl
        self.tick, self.check_interrupt = tick, check_interrupt

    # ------------------------------------------------------------------ helpers
    def _geometry(self, x: torch.Tensor, lo: int, hi: int) -> None:
        ph, pw = self.frame_hw
        sy, sx = ph / x.shape[-2], pw / x.shape[-1]
        self.ctx.tile_origin = (int(round(lo * sy)), 0)
        self.ctx.tile_size = (int(round((hi - lo) * sy)), pw)
        self.ctx.owned = (0, self.ctx.tile_size[0], 0, pw)

    def _stat_layer(self, ops: Sequence[nn.Module]) -> Optional[nn.Module]:
        if ops and isinstance(ops[0], _NORMS) and _needs_frame_stats(ops[0], self.ctx) \
                and ops[0].layer_id not in self.ctx.stats:
            return ops[0]
        return None

    def _finish_stats(self, layer: nn.Module, acc) -> None:
        s, sq, n = acc
        mean = s / n
        var = (sq / n - mean.square()).clamp_min(0.0)
        self.ctx.stats[layer.layer_id] = (mean.float(), var.float())

    def _conv(self, src: torch.Tensor, pre, pad, conv, radius: int, *, out: Optional[torch.Tensor],
              stat_layer: Optional[nn.Module]) -> torch.Tensor:
        """``conv(pad(pre(src)))`` strip by strip into ``out`` (None: in place over ``src``)."""
        h = src.shape[-2]
        in_place = out is None
        carry: Optional[torch.Tensor] = None   # original rows [r0 - radius, r0) of src (in place only)
        acc = [0.0, 0.0, 0]
        for r0, r1 in flat_strips(h, self.rows):
            if self.check_interrupt is not None:
                self.check_interrupt()
            lo, hi = max(0, r0 - radius), min(h, r1 + radius)
            if in_place and carry is not None and carry.shape[-2]:
                t = torch.cat([carry, src[:, :, r0:hi]], dim=2).to(self.device)
            else:
                t = src[:, :, lo:hi].to(self.device, copy=True)   # a copy: layers may work in place
            if in_place:
                carry = src[:, :, max(0, r1 - radius):r1].clone()
            if self.use_cl:
                t = t.contiguous(memory_format=torch.channels_last)
            self._geometry(src, lo, hi)
            with self.autocast():
                for op in pre:
                    t = op(t)
                if pad is not None:
                    t = pad(t)
                t = conv(t)
            t = t[:, :, r0 - lo:r1 - lo].float()
            if stat_layer is not None:
                s, sq = channel_sums(t)
                acc[0] = acc[0] + s
                acc[1] = acc[1] + sq
                acc[2] += t.shape[-2] * t.shape[-1]
            (src if in_place else out)[:, :, r0:r1] = t.to(src.device)
            del t
            self.tick()
        if stat_layer is not None:
            self._finish_stats(stat_layer, acc)
        return src if in_place else out

    def _add_tail(self, x: torch.Tensor, y: torch.Tensor, tail) -> None:
        """``x += tail(y)`` strip by strip (no halo: the tail is element-wise)."""
        for r0, r1 in flat_strips(x.shape[-2], max(self.rows, 1)):
            t = y[:, :, r0:r1].to(self.device, copy=True)
            if self.use_cl:
                t = t.contiguous(memory_format=torch.channels_last)
            self._geometry(x, r0, r1)
            with self.autocast():
                for op in tail:
                    t = op(t)
            x[:, :, r0:r1] += t.float().to(x.device)
            del t

    # ------------------------------------------------------------------ public
    def run(self, block: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``x + block.conv_block(x)`` with ``x`` frame-sized; ``x`` is updated in place and returned."""
        segs, tail = block_segments(block)
        y: Optional[torch.Tensor] = None
        for i, (pre, pad, conv, radius) in enumerate(segs):
            nxt = segs[i + 1][0] if i + 1 < len(segs) else tail
            stat = self._stat_layer(nxt)
            if i == 0:
                if self._stat_layer(pre) is not None:   # pragma: no cover - a block starts with its conv
                    raise RuntimeError("flat residual block: a normalisation before the first convolution")
                n, _, h, w = x.shape
                y = torch.empty((n, conv.out_channels, h, w), dtype=torch.float32, device=x.device)
                if self.use_cl:   # the layout the convolutions compute in: strips are plain copies
                    y = y.contiguous(memory_format=torch.channels_last)
                self._conv(x, pre, pad, conv, radius, out=y, stat_layer=stat)
            else:
                self._conv(y, pre, pad, conv, radius, out=None, stat_layer=stat)
        self._add_tail(x, y, tail)
        del y
        return x

