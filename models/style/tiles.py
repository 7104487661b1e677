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


def _spans(length: int, tile: int, multiple: int) -> List[Tuple[int, int]]:
    """Cores covering ``[0, length)``: equal sizes (multiples of ``multiple``), no sliver at the end."""
    count = max(1, math.ceil(length / max(tile, multiple)))
    size = math.ceil(math.ceil(length / count) / multiple) * multiple
    return [(a, min(length, a + size)) for a in range(0, length, size)]


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
    if h % multiple or w % multiple or halo % multiple or (halo * num) % den:
        raise ValueError(f"frame {h}x{w} and halo {halo} must sit on the {multiple}-pixel grid")
    device = device if device is not None else x.device
    out_device = out_device if out_device is not None else x.device
    out: Optional[torch.Tensor] = None
    for y0, y1 in _spans(h, tile, multiple):
        for x0, x1 in _spans(w, tile, multiple):
            if check_interrupt is not None:
                check_interrupt()
            ys, ye, xs, xe = max(0, y0 - halo), min(h, y1 + halo), max(0, x0 - halo), min(w, x1 + halo)
            y = fn(x[:, :, ys:ye, xs:xe].to(device))
            a, b = (y0 - ys) * num // den, (y1 - ys) * num // den
            c, d = (x0 - xs) * num // den, (x1 - xs) * num // den
            if out is None:
                out = torch.empty((n, y.shape[1], h * num // den, w * num // den), dtype=y.dtype, device=out_device)
            out[:, :, y0 * num // den:y1 * num // den, x0 * num // den:x1 * num // den] = \
                y[:, :, a:b, c:d].to(out_device)
            del y
    return out


def encode_tiled(pair, x: torch.Tensor, tile: int, **kw) -> torch.Tensor:
    """AdaIN relu4_1 features of ``x`` (sides multiples of 8) in ``tile``-pixel tiles."""
    return tiled_apply(pair.encode, x, tile=max(MIN_TILE, tile), halo=ENCODER_HALO, num=1, den=8, multiple=8, **kw)


def decode_tiled(pair, feat: torch.Tensor, tile: int, **kw) -> torch.Tensor:
    """AdaIN decoder output of relu4_1-level ``feat`` in tiles of ``tile`` output pixels."""
    return tiled_apply(pair.decoder, feat, tile=max(MIN_TILE, tile) // 8, halo=DECODER_HALO, num=8, den=1,
                       multiple=1, **kw)


# activations of AdaIN's first encoder/decoder blocks per image pixel: ~64 float32 channels, a few layers live
ADAIN_BYTES_PER_PIXEL = 64 * 4 * 6


def auto_tile_size(height: int, width: int, *, free_bytes: int, batch_size: int = 1, dtype=None) -> int:
    """``tile_size`` for AdaIN that fits half of ``free_bytes``: 0 (whole images) when a ``batch_size`` batch of
    ``height`` x ``width`` images fits, else the largest tile (a multiple of 64, at least 128) whose tile plus
    halo fits."""
    per_px = ADAIN_BYTES_PER_PIXEL * max(1, int(batch_size)) * (0.5 if dtype in (torch.float16, torch.bfloat16) else 1)
    budget = max(0.0, float(free_bytes) * 0.5)
    if height * width * per_px <= budget:
        return 0
    side = int(math.sqrt(budget / per_px)) - 2 * ENCODER_HALO
    return max(2 * MIN_TILE, side // MIN_TILE * MIN_TILE)
