"""The "keyframe" translator: a compact patch network for few-shot, example-based stylisation.

Each output pixel is a learned function of the input patch around it (``kernel`` x ``kernel`` pixels) plus two
fixed, parameter-free edge features of that pixel (per-channel gradient magnitude at two scales), computed as
one ``kernel`` x ``kernel`` convolution followed by a per-pixel MLP (1x1 convolutions) and a linear colour path:

* a local window is what a painted look mostly is (colour mapping, posterised contours, ink lines along edges,
  local texture), and it generalises across frames where the content moves;
* the network is exactly a function of pixels, so ``train_from_keyframes`` trains it on random *pixels*
  (their patches gathered into a matrix, matrix products instead of small convolutions: several times faster
  on a CPU than training a convolutional stack on patches), and the same weights then run as convolutions on
  whole frames;
* no normalisation layers (``norm = "none"``) and replicate padding: any tiling with an overlap of at least
  ``receptive_radius`` gives the same pixels as the whole frame, and batch composition never changes a frame.

Outputs are NCHW in [-1, 1] (clamped in eval mode, unclamped while training so an L1 loss keeps its gradient).
"""
from __future__ import annotations

from typing import Any, Dict, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import Translator, register_architecture

EDGE_FEATURE_RADIUS = 3   # binomial 3x3 blur (1) + wide central difference (2)


def edge_features(x: torch.Tensor) -> torch.Tensor:
    """Per-channel gradient magnitude at pixel scale and after a 3x3 binomial blur: NCHW -> N(2C)HW.

    Replicate padding; depends on at most ``EDGE_FEATURE_RADIUS`` pixels around each pixel."""
    xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
    dx = (xp[:, :, 1:-1, 2:] - xp[:, :, 1:-1, :-2]) * 0.5
    dy = (xp[:, :, 2:, 1:-1] - xp[:, :, :-2, 1:-1]) * 0.5
    b = (xp[:, :, :, :-2] + 2 * xp[:, :, :, 1:-1] + xp[:, :, :, 2:]) * 0.25
    b = (b[:, :, :-2] + 2 * b[:, :, 1:-1] + b[:, :, 2:]) * 0.25
    bp = F.pad(b, (2, 2, 2, 2), mode="replicate")
    bdx = (bp[:, :, 2:-2, 4:] - bp[:, :, 2:-2, :-4]) * 0.25
    bdy = (bp[:, :, 4:, 2:-2] - bp[:, :, :-4, 2:-2]) * 0.25
    mag = torch.sqrt(dx * dx + dy * dy + 1e-6) * 4.0
    bmag = torch.sqrt(bdx * bdx + bdy * bdy + 1e-6) * 4.0
    return torch.cat([mag, bmag], dim=1)


class KeyframeTranslator(Translator):
    arch = "keyframe"

    def __init__(self, input_nc: int = 3, output_nc: int = 3, kernel: int = 5, ngf: int = 128, depth: int = 4,
                 train_size: int | None = None, slope: float = 0.05, **unused: Any):
        super().__init__()
        if unused:
            raise TypeError(f"unknown keyframe translator options: {', '.join(sorted(unused))}")
        if int(kernel) < 1 or int(kernel) % 2 == 0:
            raise ValueError("kernel must be odd and >= 1")
        if int(depth) < 1:
            raise ValueError("depth must be >= 1")
        self.input_nc, self.output_nc = int(input_nc), int(output_nc)
        self.kernel, self.ngf, self.depth = int(kernel), int(ngf), int(depth)
        self.slope = float(slope)
        self.norm = "none"
        self.size_multiple = 1
        self.train_size = None if train_size is None else int(train_size)
        c, w = self.input_nc, self.ngf
        self.patch = nn.Conv2d(c, w, self.kernel, padding=self.kernel // 2, padding_mode="replicate")
        self.edges = nn.Conv2d(2 * c, w, 1, bias=False)
        self.hidden = nn.ModuleList([nn.Conv2d(w, w, 1) for _ in range(self.depth - 1)])
        self.out = nn.Conv2d(w, self.output_nc, 1)
        self.colour = nn.Conv2d(c, self.output_nc, 1)     # linear colour path (the global grade)
        nn.init.zeros_(self.colour.weight)
        nn.init.zeros_(self.colour.bias)

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output pixel depends on (a tile overlap of this much makes tiling exact)."""
        return max(self.kernel // 2, EDGE_FEATURE_RADIUS)

    def config(self) -> Dict[str, Any]:
        return {"arch": self.arch, "input_nc": self.input_nc, "output_nc": self.output_nc, "kernel": self.kernel,
                "ngf": self.ngf, "depth": self.depth, "train_size": self.train_size, "slope": self.slope}

    def extra_repr(self) -> str:
        return super().extra_repr() + f", kernel={self.kernel}, depth={self.depth}"

    def _mlp(self, h: torch.Tensor, linear: bool) -> torch.Tensor:
        for layer in self.hidden:
            w = layer.weight.flatten(1) if linear else layer.weight
            h = F.leaky_relu(F.linear(h, w, layer.bias) if linear else layer(h), self.slope)
        return F.linear(h, self.out.weight.flatten(1), self.out.bias) if linear else self.out(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.patch(x) + self.edges(edge_features(x)), self.slope)
        out = self._mlp(h, linear=False) + self.colour(x)
        if not self.training:
            out = out.clamp(-1.0, 1.0)
        return out

    def forward_pixels(self, patches: torch.Tensor, edges: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
        """The same function on gathered pixels (training): patches [B, C*k*k] in ``F.unfold`` order
        (channel, row, column), edges [B, 2C] = ``edge_features`` at the pixel, centre [B, C] = the pixel.
        Returns [B, output_nc] (unclamped)."""
        h = F.linear(patches, self.patch.weight.flatten(1), self.patch.bias)
        h = F.leaky_relu(h + F.linear(edges, self.edges.weight.flatten(1)), self.slope)
        return self._mlp(h, linear=True) + F.linear(centre, self.colour.weight.flatten(1), self.colour.bias)

    def pixel_inputs(self, frames: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """What ``forward_pixels`` gathers from: (frames replicate-padded by kernel // 2, edge features)."""
        r = self.kernel // 2
        padded = F.pad(frames, (r, r, r, r), mode="replicate") if r else frames
        return padded, edge_features(frames)


register_architecture("keyframe", KeyframeTranslator)
