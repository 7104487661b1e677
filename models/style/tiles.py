"""Exact tiled application of the fully convolutional halves of AdaIN (encoder to relu4_1, decoder).

Both halves are translation-equivariant away from the frame border: a convolution reads a few neighbours, a
pooling or upsampling step keeps a fixed grid. So a tile that is given its neighbours' pixels as a halo of at
least the network's receptive radius, and whose origin sits on the network's grid (a multiple of 8 pixels
for the encoder's three poolings), computes its core exactly as the whole frame would; the halo's own
outputs (where the tile's padding differs from the frame's) are cropped away. At the frame border a tile
starts at the border, so the layers' own reflection padding happens there just as on the whole frame.

Receptive radii, measured in input pixels: the encoder to relu4_1 reads 37 (1x1 conv, 2 convs at full size,
2 at 1/2, 4 at 1/4, 1 at 1/8, with the poolings' offsets); the decoder reads under 4 feature pixels (1 conv at
1/8 scale, 4 at 1/4, 2 at 1/2, 2 at full size, measured in 1/8-scale units). The halos below are rounded up
to the grid.
"""
from __future__ import annotations

import math
from typing import Callable, List, Optional, Tuple

import torch

ENCODER_HALO = 48       # input pixels, a multiple of the encoder's 8-pixel grid, >= its 37-pixel radius
DECODER_HALO = 6        # feature pixels (48 output pixels), >= the decoder's radius of under 4
MIN_TILE = 64
FAST_HALO = 64          # input pixels, on the 4-pixel grid, >= a fast network's radius of 57 (see below)
FAST_DECODER_HALO = 4   # bottleneck pixels (16 output pixels), >= a fast network decoder's radius of under 2


def _spans(length: int, tile: int, multiple: int) -> List[Tuple[int, int]]:
    """Cores covering ``[0, length)``: equal sizes (multiples of ``multiple``), no sliver at the end."""
    count = max(1, math.ceil(length / max(tile, multiple)))
    size = math.ceil(math.ceil(length / count) / multiple) * multiple
    return [(a, min(length, a + size)) for a in range(0, length, size)]


def _tiles(h: int, w: int, tile: int, halo: int, num: int, den: int, multiple: int):
    """(source rows/cols with halo, core crop within the tile's output, core place in the frame's output)."""
    if h % multiple or w % multiple or halo % multiple or (halo * num) % den or multiple % den:
        raise ValueError(f"frame {h}x{w} and halo {halo} must sit on the {multiple}-pixel grid")
    for y0, y1 in _spans(h, tile, multiple):
        for x0, x1 in _spans(w, tile, multiple):
            ys, ye, xs, xe = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
            crop = (slice((y0 - ys) * num // den, (y1 - ys) * num // den),
                    slice((x0 - xs) * num // den, (x1 - xs) * num // den))
            place = (slice(y0 * num // den, y1 * num // den), slice(x0 * num // den, x1 * num // den))
            yield (slice(ys, ye), slice(xs, xe)), crop, place


def tile_count(h: int, w: int, tile: int, multiple: int) -> int:
    """How many tiles :func:`tiled_apply` / :func:`tiled_channel_stats` use for an ``h`` x ``w`` input."""
    return len(_spans(h, tile, multiple)) * len(_spans(w, tile, multiple))


def tiled_apply(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, tile: int, halo: int,
                num: int, den: int, multiple: int, device: Optional[torch.device] = None,
                out_device: Optional[torch.device] = None,
                check_interrupt: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """``fn(x)`` computed tile by tile: ``fn`` maps an ``[N, C, h, w]`` region to ``[N, C', h*num/den,
    w*num/den]`` and must be translation-equivariant on a ``multiple``-pixel grid with a receptive radius of
    at most ``halo`` input pixels. ``x`` stays where it is; each tile (core ``tile`` pixels plus its halo) is
    moved to ``device`` and its core's output written into the result on ``out_device`` (default:
    ``x``'s device). Returns the same values as ``fn(x)`` up to float round-off."""
    n, _, h, w = x.shape
    device = device if device is not None else x.device
    out_device = out_device if out_device is not None else x.device
    out: Optional[torch.Tensor] = None
    for (rows, cols), (cr, cc), (pr, pc) in _tiles(h, w, tile, halo, num, den, multiple):
        if check_interrupt is not None:
            check_interrupt()
        y = fn(x[:, :, rows, cols].to(device))
        if out is None:
            out = torch.empty((n, y.shape[1], h * num // den, w * num // den), dtype=y.dtype, device=out_device)
        out[:, :, pr, pc] = y[:, :, cr, cc].to(out_device)
        del y
    return out


def tiled_channel_stats(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, tile: int, halo: int,
                        num: int, den: int, multiple: int, device: Optional[torch.device] = None,
                        check_interrupt: Optional[Callable[[], None]] = None
                        ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and (biased) variance of ``fn(x)`` over images and pixels, ``[1, C, 1, 1]`` each,
    computed tile by tile like :func:`tiled_apply` (sums in float64) without ever holding ``fn(x)``."""
    n, _, h, w = x.shape
    device = device if device is not None else x.device
    total = total_sq = None
    count = 0
    for (rows, cols), (cr, cc), _ in _tiles(h, w, tile, halo, num, den, multiple):
        if check_interrupt is not None:
            check_interrupt()
        y = fn(x[:, :, rows, cols].to(device))[:, :, cr, cc].double()
        s, sq = y.sum(dim=(0, 2, 3)), y.square().sum(dim=(0, 2, 3))
        total, total_sq = (s, sq) if total is None else (total + s, total_sq + sq)
        count += y.shape[0] * y.shape[2] * y.shape[3]
        del y
    mean = total / count
    var = (total_sq / count - mean.square()).clamp_min(0.0)
    return mean.float().view(1, -1, 1, 1), var.float().view(1, -1, 1, 1)


def encode_tiled(pair, x: torch.Tensor, tile: int, **kw) -> torch.Tensor:
    """AdaIN relu4_1 features of ``x`` (sides multiples of 8) in ``tile``-pixel tiles."""
    return tiled_apply(pair.encode, x, tile=max(MIN_TILE, tile), halo=ENCODER_HALO, num=1, den=8, multiple=8, **kw)


def decode_tiled(pair, feat: torch.Tensor, tile: int, **kw) -> torch.Tensor:
    """AdaIN decoder output of relu4_1-level ``feat`` in tiles of ``tile`` output pixels."""
    return tiled_apply(pair.decoder, feat, tile=max(MIN_TILE, tile) // 8, halo=DECODER_HALO, num=8, den=1,
                       multiple=1, **kw)


# activations per image pixel at full resolution, float32, a few layers live: AdaIN's first encoder/decoder
# blocks have 64 channels, a fast network's first/last 32
BYTES_PER_PIXEL = {"adain": 64 * 4 * 6, "fast": 32 * 4 * 6}


def auto_tile_size(height: int, width: int, *, free_bytes: int, batch_size: int = 1, dtype=None,
                   method: str = "adain") -> int:
    """``tile_size`` for ``method`` (adain / fast) that fits half of ``free_bytes``: 0 (whole images) when a
    ``batch_size`` batch of ``height`` x ``width`` images fits, else the largest tile (a multiple of 64, at
    least 128) whose tile plus margins fits."""
    half = dtype in (torch.float16, torch.bfloat16)
    per_px = BYTES_PER_PIXEL[method] * max(1, int(batch_size)) * (0.5 if half else 1)
    budget = max(0.0, float(free_bytes) * 0.5)
    if height * width * per_px <= budget:
        return 0
    margin = 2 * (ENCODER_HALO if method == "adain" else FAST_HALO)
    side = int(math.sqrt(budget / per_px)) - margin
    return max(2 * MIN_TILE, side // MIN_TILE * MIN_TILE)


# ---------------------------------------------------------------------------------------------- fast networks
# A TransformerNet (fast_neural_style) normalises with whole-frame instance-norm statistics, 15 layers deep.
# Given all of them the network is translation-equivariant on a 4-pixel grid (two stride-2 convolutions) with
# a receptive radius of 57 px: 9x9 conv (4), two strided 3x3 (1 + 2, with grid offsets 3), ten 3x3 at 1/4
# scale (40), two upsampling 3x3 (2 + 1), 9x9 (4). The statistics come from staged tile passes: each encoder
# norm from a pass over the layers before it (earlier statistics known), the residual blocks (1/4 scale,
# ``widths[2]`` channels: 8 values per pixel) on the whole assembled bottleneck, each decoder norm from a pass
# over the bottleneck's tiles. The decoder's radius is under 2 bottleneck pixels.


def _scale_of(steps) -> Tuple[int, int]:
    num = den = 1
    for kind, arg in steps:
        if kind == "conv":
            num *= int(getattr(arg, "upsample", 1) or 1)
            den *= int(arg.conv2d.stride[0])
    g = math.gcd(num, den)
    return num // g, den // g


def fast_stats_tiled(net, frames: torch.Tensor, tile: int, *, device=None,
                     check_interrupt: Optional[Callable[[], None]] = None):
    """``(stats, bottleneck)``: every norm layer's statistics pooled over ``frames`` (NCHW [0, 1], sides
    multiples of 4) -- what ``net.norm_stats(frames)`` gives, up to round-off -- computed in ``tile``-pixel
    tiles, and the residual blocks' output for ``frames`` (1/4 scale, on ``frames``' device), from which
    :func:`fast_decode_tiled` renders those frames."""
    device = device if device is not None else frames.device
    tile = max(MIN_TILE, int(tile))
    steps = net.steps()
    r0, r1 = net.sections()
    stats = {}
    kw = dict(device=device, check_interrupt=check_interrupt)
    for i, (kind, key) in enumerate(steps[:r0]):
        if kind == "norm":
            num, den = _scale_of(steps[:i])
            stats[key] = tiled_channel_stats(lambda t, i=i: net.run_steps(t, 0, i, stats), frames, tile=tile,
                                             halo=FAST_HALO, num=num, den=den, multiple=4, **kw)
    num, den = _scale_of(steps[:r0])
    bottleneck = tiled_apply(lambda t: net.run_steps(t, 0, r0, stats), frames, tile=tile, halo=FAST_HALO,
                             num=num, den=den, multiple=4, **kw)
    record = {}
    z = net.run_steps(bottleneck.to(device), r0, r1, record=record).to(frames.device)
    del bottleneck
    stats.update(record)
    btile = max(1, tile * num // den)
    for i, (kind, key) in enumerate(steps[r1:], start=r1):
        if kind == "norm":
            up, down = _scale_of(steps[r1:i])
            stats[key] = tiled_channel_stats(lambda t, i=i: net.run_steps(t, r1, i, stats), z, tile=btile,
                                             halo=FAST_DECODER_HALO, num=up, den=down, multiple=1, **kw)
    return stats, z


def fast_decode_tiled(net, bottleneck: torch.Tensor, stats, tile: int, *, device=None, out_device=None,
                      check_interrupt: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """The decoder of ``net`` on ``bottleneck`` (from :func:`fast_stats_tiled`) in tiles of ``tile`` output
    pixels; returns NCHW [0, 1]-scaled images 4x the bottleneck's size."""
    r1 = net.sections()[1]
    num, den = _scale_of(net.steps()[r1:])
    return tiled_apply(lambda t: net.run_steps(t, r1, None, stats), bottleneck,
                       tile=max(1, max(MIN_TILE, int(tile)) * den // num), halo=FAST_DECODER_HALO, num=num, den=den,
                       multiple=1, device=device, out_device=out_device, check_interrupt=check_interrupt)


def fast_apply_tiled(net, frames: torch.Tensor, stats, tile: int, *, device=None, out_device=None,
                     check_interrupt: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """``net(frames, stats)`` (all statistics given) in ``tile``-pixel tiles with a 64-pixel margin."""
    return tiled_apply(lambda t: net.run_steps(t, stats=stats), frames, tile=max(MIN_TILE, int(tile)),
                       halo=FAST_HALO, num=1, den=1, multiple=4, device=device, out_device=out_device,
                       check_interrupt=check_interrupt)


def adain_tile_counts(h: int, w: int, tile: int) -> Tuple[int, int]:
    """Tiles of :func:`encode_tiled` and :func:`decode_tiled` for one ``h`` x ``w`` image (sides multiples of
    8), 0 where the image is not larger than ``tile`` and runs whole."""
    t = max(MIN_TILE, int(tile))
    enc = tile_count(h, w, t, 8) if max(h, w) > tile else 0
    dec = tile_count(h // 8, w // 8, t // 8, 1) if max(h, w) > tile else 0
    return enc, dec


def fast_tile_counts(net, h: int, w: int, tile: int) -> Tuple[int, int, int]:
    """Tiles of :func:`fast_stats_tiled`, :func:`fast_decode_tiled` and :func:`fast_apply_tiled` for one
    ``h`` x ``w`` image (sides multiples of 4)."""
    t = max(MIN_TILE, int(tile))
    steps = net.steps()
    r0, r1 = net.sections()
    norms_before = sum(1 for kind, _ in steps[:r0] if kind == "norm")
    norms_after = sum(1 for kind, _ in steps[r1:] if kind == "norm")
    full = tile_count(h, w, t, 4)
    bottleneck = tile_count(h // 4, w // 4, max(1, t // 4), 1)
    return (norms_before + 1) * full + norms_after * bottleneck, bottleneck, full
