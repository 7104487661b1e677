"""Normalisation and dropout layers of the translator generators, with a hook for frame-level inference.

The layers behave exactly like ``torch.nn.BatchNorm2d`` / ``InstanceNorm2d`` / ``Dropout`` (their state-dict
keys are the same) until :func:`frame_context` attaches a :class:`FrameContext` to a network. Inside that
context (used by :func:`models.translator.translate`):

* ``mode="eval"``: BatchNorm uses its stored running statistics (so it is per-pixel and tiles compose exactly);
  InstanceNorm uses the statistics of the whole frame (not of the tile); dropout is off.
* ``mode="reference"``: like the reference ``test.py`` without ``--eval`` (which runs one image per batch):
  BatchNorm normalises with the statistics of the whole frame (computed, never written into the running
  buffers), and dropout is active with a mask that is a pure function of ``(seed, layer, image index, channel,
  frame position)`` -- reproducible, and identical whether the frame is tiled or not.

Under a context, normalisation layers compute and return float32 even inside a float16/bfloat16 autocast
region, so residual streams and skip connections keep full precision; only convolutions run in low precision.

Whole-frame statistics of a tiled frame are obtained in stages: every pass over the tiles stops at the first
normalisation layer whose statistics are still unknown (:class:`StopForward`), accumulating its per-channel sum
and sum of squares over the part of the frame each tile owns; the next pass uses them and collects the next
layer. The result equals the untiled network up to round-off whenever the tile overlap covers the receptive
field.
"""
from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field
from typing import Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn


class StopForward(Exception):
    """Raised inside a statistics pass once the layer being collected has seen its input."""


@dataclass
class FrameContext:
    mode: str = "eval"                       # "eval" | "reference"
    seed: int = 0
    staged: bool = False                     # True when the frame is processed as several tiles
    stats: Dict[int, Tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)  # layer -> (mean, var) [N, C]
    collecting: Optional[int] = None         # layer being accumulated in this pass
    accum: Dict[int, list] = field(default_factory=dict)    # layer -> [sum, sumsq, count] (float64)
    # geometry of the current tile, in input pixels of the padded frame
    tile_origin: Tuple[int, int] = (0, 0)
    tile_size: Tuple[int, int] = (0, 0)
    owned: Tuple[int, int, int, int] = (0, 0, 0, 0)  # y0, y1, x0, x1 in tile coordinates
    image_index: Optional[torch.Tensor] = None        # [N] global image indices of the batch chunk

    # -------------------------------------------------------------- statistics
    def _feature_box(self, x: torch.Tensor) -> Tuple[int, int, int, int]:
        th, tw = self.tile_size
        h, w = x.shape[-2:]
        y0, y1, x0, x1 = self.owned
        return (y0 * h // th, y1 * h // th, x0 * w // tw, x1 * w // tw)

    def normalize(self, layer_id: int, x: torch.Tensor, weight, bias, eps: float) -> torch.Tensor:
        """Normalise ``x`` per image and channel with whole-frame statistics (see module docstring)."""
        if layer_id in self.stats:
            mean, var = self.stats[layer_id]
            xf = x.float()
            y = (xf - mean[:, :, None, None]) * torch.rsqrt(var[:, :, None, None] + eps)
            if weight is not None:
                y = y * weight.float()[None, :, None, None] + bias.float()[None, :, None, None]
            return y
        if not self.staged:
            # the input is the whole frame: exactly the reference computation
            return F.instance_norm(x.float(), None, None,
                                   None if weight is None else weight.float(),
                                   None if bias is None else bias.float(), True, 0.0, eps)
        if self.collecting is None:
            self.collecting = layer_id
        if self.collecting != layer_id:  # pragma: no cover - guarded by StopForward ordering
            raise RuntimeError("frame statistics collected out of order")
        y0, y1, x0, x1 = self._feature_box(x)
        region = x[:, :, y0:y1, x0:x1]
        acc = self.accum.setdefault(layer_id, [0.0, 0.0, 0])
        s, sq = channel_sums(region)
        acc[0] = acc[0] + s
        acc[1] = acc[1] + sq
        acc[2] += region.shape[-1] * region.shape[-2]
        raise StopForward

    def finish_pass(self) -> bool:
        """Turn the accumulated sums of this pass into statistics; False when nothing was collected."""
        layer = self.collecting
        if layer is None:
            return False
        s, sq, n = self.accum.pop(layer)
        mean = s / n
        var = (sq / n - mean.square()).clamp_min(0.0)
        self.stats[layer] = (mean.float(), var.float())
        self.collecting = None
        return True

    # -------------------------------------------------------------- dropout
    def dropout(self, layer_id: int, x: torch.Tensor, p: float) -> torch.Tensor:
        """Dropout whose mask is a hash of (seed, layer, image, channel, frame row, frame column)."""
        n, c, h, w = x.shape
        th, tw = self.tile_size
        oy = self.tile_origin[0] * h // th
        ox = self.tile_origin[1] * w // tw
        dev = x.device
        img = self.image_index.to(dev) if self.image_index is not None else torch.arange(n, device=dev)
        seed = int(self.seed)
        seed64 = seed & 0xFFFFFFFFFFFFFFFF  # ComfyUI seeds go up to 2**64 - 1
        seed32 = ((seed64 & 0xFFFFFFFF) ^ (((seed64 >> 32) * 0x9E3779B1 + 0x7F4A7C15) & 0xFFFFFFFF))
        key = img.long() * 0x9E3779B1 + ((layer_id * 0x85EBCA77) & 0xFFFFFFFF) + ((seed32 * 0xC2B2AE3D) & 0xFFFFFFFF)
        cc = torch.arange(c, device=dev, dtype=torch.long)
        yy = torch.arange(oy, oy + h, device=dev, dtype=torch.long)
        xx = torch.arange(ox, ox + w, device=dev, dtype=torch.long)
        hsh = (key[:, None, None, None] + cc[None, :, None, None] * 0x27D4EB2F
               + yy[None, None, :, None] * 0x165667B1 + xx[None, None, None, :] * 0x61C88647)
        hsh = _mix32(hsh)
        u = hsh.double() / 4294967296.0
        keep = (u >= p).to(x.dtype)
        return x * keep * (1.0 / (1.0 - p))


def channel_sums(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per image and channel sum and sum of squares of ``x`` [N, C, H, W] as float64 [N, C]: float32
    (cascade) sums over this region, accumulated in float64 across tiles/strips by the caller. Reduces over a
    contiguous view of channels_last tensors (8x faster than converting the region to float64 first)."""
    xf = x.float()
    n, c = xf.shape[:2]
    cl = xf.is_contiguous(memory_format=torch.channels_last) and not xf.is_contiguous()
    flat = xf.permute(0, 2, 3, 1).reshape(n, -1, c) if cl else xf.reshape(n, c, -1)   # [N, HW, C] / [N, C, HW]
    dim = 1 if cl else 2
    s = torch.zeros((n, c), dtype=torch.float64, device=x.device)
    sq = torch.zeros((n, c), dtype=torch.float64, device=x.device)
    # GEMVs against a ones vector (~8x a plain sum over a strided dimension), in chunks of pixels so the
    # squares stay small and each float32 partial sum short
    for part in flat.split(16384, dim=dim):
        ones = part.new_ones((n, 1, part.shape[1]) if cl else (n, part.shape[2], 1))
        sq_part = part * part
        if cl:
            s += torch.bmm(ones, part)[:, 0].double()
            sq += torch.bmm(ones, sq_part)[:, 0].double()
        else:
            s += torch.bmm(part, ones)[:, :, 0].double()
            sq += torch.bmm(sq_part, ones)[:, :, 0].double()
    return s, sq


def _mix32(h: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (murmur3 style) on int64 tensors, values kept in [0, 2**32)."""
    m = 0xFFFFFFFF
    h = h & m
    h = h ^ (h >> 16)
    h = (h * 0x85EBCA6B) & m
    h = h ^ (h >> 13)
    h = (h * 0xC2B2AE35) & m
    h = h ^ (h >> 16)
    return h


def _needs_frame_stats(m: nn.Module, ctx: Optional[FrameContext]) -> bool:
    if ctx is None:
        return False
    if isinstance(m, nn.InstanceNorm2d):
        # torch's InstanceNorm with tracked running statistics uses them in eval mode (per-pixel)
        return not (m.track_running_stats and m.running_mean is not None)
    if isinstance(m, nn.BatchNorm2d):
        return ctx.mode == "reference" or m.running_mean is None
    return False


def _ctx_forward(m: nn.Module, ctx: FrameContext, x: torch.Tensor) -> torch.Tensor:
    """Forward of a norm / dropout layer under ``ctx`` (works for this module's layers and torch's own)."""
    if isinstance(m, nn.Dropout):
        if ctx.mode != "reference" or m.p == 0:
            return x
        return ctx.dropout(m.layer_id, x, m.p)
    if _needs_frame_stats(m, ctx):
        return ctx.normalize(m.layer_id, x, m.weight, m.bias, m.eps)
    # per-pixel: BatchNorm in eval mode (or an old InstanceNorm that uses its running statistics)
    return F.batch_norm(x.float(), m.running_mean.float(), m.running_var.float(),
                        None if m.weight is None else m.weight.float(),
                        None if m.bias is None else m.bias.float(), False, 0.0, m.eps)


class _FrameAware:
    """Mixin of the layers below: the torch layer's own forward, or the :class:`FrameContext`'s behaviour (whole-
    frame statistics, hashed dropout masks) when one is attached."""

    frame_ctx: Optional[FrameContext] = None
    layer_id: int = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ctx = self.frame_ctx
        if ctx is None:
            return self._plain_forward(x)
        return _ctx_forward(self, ctx, x)

    def _plain_forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x)


class BatchNorm2d(_FrameAware, nn.BatchNorm2d):
    """``nn.BatchNorm2d`` (same keys) that follows the attached :class:`FrameContext` when there is one."""


class InstanceNorm2d(_FrameAware, nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` without running statistics (instance statistics always, as the reference's test
    mode); under a :class:`FrameContext` the statistics are those of the whole frame."""

    def __init__(self, num_features: int, affine: bool = False, eps: float = 1e-5):
        super().__init__(num_features, eps=eps, affine=affine, track_running_stats=False)

    def _plain_forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.instance_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)


class Dropout(_FrameAware, nn.Dropout):
    """``nn.Dropout`` (no keys); in reference mode under a :class:`FrameContext` it uses a hashed mask."""


_OWN = (BatchNorm2d, InstanceNorm2d, Dropout)
_AWARE = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.Dropout)


def make_norm(norm: str, channels: int, affine: bool = False) -> nn.Module:
    if norm == "batch":
        return BatchNorm2d(channels)
    if norm == "instance":
        return InstanceNorm2d(channels, affine=affine)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r} (expected 'batch', 'instance' or 'none')")


def make_pad(padding_type: str, amount: int) -> Optional[nn.Module]:
    if padding_type == "reflect":
        return nn.ReflectionPad2d(amount)
    if padding_type == "replicate":
        return nn.ReplicationPad2d(amount)
    if padding_type == "zero":
        return None
    raise ValueError(f"unknown padding_type {padding_type!r} (expected 'reflect', 'replicate' or 'zero')")


def number_layers(module: nn.Module) -> None:
    """Give every context-aware layer a stable id (its order among such layers in ``module.modules()``)."""
    for i, m in enumerate(m for m in module.modules() if isinstance(m, _AWARE)):
        m.layer_id = i


def frame_stat_layers(module: nn.Module) -> int:
    """How many layers need whole-frame statistics under the currently attached context."""
    return sum(1 for m in module.modules()
               if isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and _needs_frame_stats(m, m.__dict__.get("frame_ctx")))


@contextlib.contextmanager
def frame_context(module: nn.Module, ctx: FrameContext) -> Iterator[FrameContext]:
    """Attach ``ctx`` to every norm / dropout layer of ``module`` for the duration of the block.

    This pack's layers consult it directly; torch's own ``BatchNorm2d`` / ``InstanceNorm2d`` / ``Dropout``
    (e.g. in architectures written elsewhere) get a temporary instance-level ``forward`` that does the same,
    so every translator gets whole-frame statistics and seeded dropout.
    """
    layers = [m for m in module.modules() if isinstance(m, _AWARE)]
    saved = [{k: m.__dict__[k] for k in ("frame_ctx", "layer_id", "forward") if k in m.__dict__} for m in layers]
    for i, m in enumerate(layers):
        m.__dict__["frame_ctx"] = ctx
        m.__dict__["layer_id"] = i
        if not isinstance(m, _OWN):
            m.__dict__["forward"] = functools.partial(_ctx_forward, m, ctx)
    try:
        yield ctx
    finally:
        for m, prev in zip(layers, saved):
            for k in ("frame_ctx", "layer_id", "forward"):
                m.__dict__.pop(k, None)
            m.__dict__.update(prev)
