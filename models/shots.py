"""Procedural test/demo shots with a known, hidden stylisation.

``make_demo_shot(num_frames, size, seed)`` renders a short moving scene (antialiased shapes that drift and rotate
along smooth paths over a textured, optionally panning, background) and the same frames through a hidden
"painted look": a colour grade, per-channel posterisation and edge inking. It is what the keyframe benchmark and
tests train on (two stylised frames as keyframes, the rest as unseen ground truth) and what the bundled demo shot
is made of. Everything is analytic (signed distance functions, sums of sinusoids), so the scene is resolution
independent: the same seed at 128 px and at 1080 px shows the same picture.

Tensors are NCHW float32 in [-1, 1] (the engine's GAN layout); ``models.gan_to_image`` turns them into ComfyUI
IMAGE batches.
"""
from __future__ import annotations

import math
from typing import List, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

Size = Union[int, Tuple[int, int], Sequence[int]]

__all__ = ["make_demo_shot", "render_demo_scene", "demo_stylisation"]


def _hw(size: Size) -> Tuple[int, int]:
    if isinstance(size, int):
        return size, size
    h, w = (int(v) for v in size)
    return h, w


def _grid(h: int, w: int) -> Tuple[torch.Tensor, torch.Tensor, float]:
    """Pixel-centre coordinates in scene units: y in [-1, 1] over the height, x scaled by the aspect ratio.
    Returns (x, y, pixel size in scene units)."""
    px = 2.0 / h
    ys = (torch.arange(h, dtype=torch.float64) + 0.5) * px - 1.0
    xs = (torch.arange(w, dtype=torch.float64) + 0.5) * px - w / h
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return x, y, px


def _rand(g: torch.Generator, *shape: int, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    return torch.rand(*shape, generator=g, dtype=torch.float64) * (hi - lo) + lo


class _Scene:
    """Random scene description drawn once from the seed; ``render(t)`` draws it at time t in [0, 1]."""

    def __init__(self, seed: int, num_shapes: int, pan: float):
        g = torch.Generator().manual_seed(int(seed))
        self.pan = pan
        # background: a smooth colour field plus a finer texture, both sums of oriented sinusoids
        self.bg_base = _rand(g, 3, lo=0.25, hi=0.7)
        n_low, n_tex = 6, 14

        def wave(lo_f, hi_f, lum, chroma):
            amp = _rand(g, 1, lo=-lum, hi=lum) * torch.ones(3, dtype=torch.float64) + _rand(g, 3, lo=-chroma, hi=chroma)
            return (_rand(g, 1).item() * math.pi, _rand(g, 1, lo=lo_f, hi=hi_f).item(), _rand(g, 1).item() * 6.283, amp)

        # mostly-luminance waves with a little chroma: a painted-wall look rather than a rainbow
        self.low = [wave(0.6, 2.2, 0.16, 0.06) for _ in range(n_low)]
        self.tex = [wave(5.0, 16.0, 0.04, 0.012) for _ in range(n_tex)]
        # shapes
        self.shapes = []
        palette = torch.tensor([[0.85, 0.25, 0.2], [0.2, 0.55, 0.9], [0.95, 0.8, 0.2], [0.3, 0.8, 0.4],
                                [0.75, 0.35, 0.85], [0.95, 0.55, 0.15], [0.15, 0.2, 0.35], [0.9, 0.9, 0.85]],
                               dtype=torch.float64)
        for i in range(num_shapes):
            kind = ["circle", "box", "polygon", "ring"][int(_rand(g, 1).item() * 4) % 4]
            colour = palette[int(_rand(g, 1).item() * len(palette)) % len(palette)]
            colour = (colour + _rand(g, 3, lo=-0.08, hi=0.08)).clamp(0.02, 0.98)
            self.shapes.append(dict(
                kind=kind,
                colour=colour,
                shade=_rand(g, 3, lo=-0.25, hi=0.25),            # linear shading across the shape
                shade_dir=_rand(g, 1).item() * 6.283,
                radius=_rand(g, 1, lo=0.12, hi=0.3).item(),
                aspect=_rand(g, 1, lo=0.5, hi=1.0).item(),
                sides=3 + int(_rand(g, 1).item() * 4),
                centre=_rand(g, 2, lo=-0.55, hi=0.55),
                amp=_rand(g, 2, lo=0.1, hi=0.35),
                freq=_rand(g, 2, lo=0.5, hi=1.5),
                phase=_rand(g, 2, hi=6.283),
                angle=_rand(g, 1).item() * 6.283,
                spin=_rand(g, 1, lo=-2.5, hi=2.5).item(),
            ))

    def _background(self, x: torch.Tensor, y: torch.Tensor, t: float) -> torch.Tensor:
        x = x + self.pan * t
        out = self.bg_base.view(3, 1, 1).expand(3, *x.shape).clone()
        for ang, freq, ph, amp in self.low + self.tex:
            u = x * math.cos(ang) + y * math.sin(ang)
            out = out + amp.view(3, 1, 1) * torch.sin(u * freq * math.pi + ph)
        return out

    @staticmethod
    def _sdf(s: dict, lx: torch.Tensor, ly: torch.Tensor) -> torch.Tensor:
        r = s["radius"]
        if s["kind"] == "circle":
            return torch.sqrt(lx * lx + ly * ly) - r
        if s["kind"] == "ring":
            return (torch.sqrt(lx * lx + ly * ly) - r * 0.75).abs() - r * 0.25
        if s["kind"] == "box":
            bx, by = r, r * s["aspect"]
            qx, qy = lx.abs() - bx, ly.abs() - by
            outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
            return outside + torch.minimum(torch.maximum(qx, qy), torch.zeros_like(qx))
        # regular polygon: max over edge half-planes (exact enough inside, a slight overestimate near corners)
        n = s["sides"]
        d = None
        for k in range(n):
            a = 2 * math.pi * k / n
            e = lx * math.cos(a) + ly * math.sin(a) - r * math.cos(math.pi / n)
            d = e if d is None else torch.maximum(d, e)
        return d

    def render(self, t: float, h: int, w: int) -> torch.Tensor:
        x, y, px = _grid(h, w)
        img = self._background(x, y, t)
        for s in self.shapes:
            c = s["centre"] + s["amp"] * torch.sin(2 * math.pi * s["freq"] * t + s["phase"])
            a = s["angle"] + s["spin"] * t
            dx, dy = x - c[0].item(), y - c[1].item()
            lx = dx * math.cos(a) + dy * math.sin(a)
            ly = -dx * math.sin(a) + dy * math.cos(a)
            alpha = (0.5 - self._sdf(s, lx, ly) / px).clamp(0.0, 1.0)   # one-pixel antialiasing
            sd = s["shade_dir"]
            shade = (lx * math.cos(sd) + ly * math.sin(sd)) / s["radius"]
            colour = s["colour"].view(3, 1, 1) + s["shade"].view(3, 1, 1) * shade
            img = img * (1 - alpha) + colour * alpha
        return img.clamp(0.0, 1.0)


def render_demo_scene(num_frames: int = 24, size: Size = 256, seed: int = 0, *, num_shapes: int = 6,
                      pan: float = 0.0, duration: float = 1.0) -> torch.Tensor:
    """The unstyled frames of the procedural shot: NCHW float32 in [-1, 1].

    ``pan`` moves the background by that many scene units (the frame height is 2) over ``duration``; 0 is a
    locked-off camera. Frame i is drawn at time ``duration * i / max(num_frames - 1, 1)``."""
    if num_frames < 1:
        raise ValueError("num_frames must be >= 1")
    h, w = _hw(size)
    if h < 8 or w < 8:
        raise ValueError("size must be at least 8 pixels")
    scene = _Scene(seed, num_shapes, pan)
    frames: List[torch.Tensor] = []
    for i in range(num_frames):
        t = duration * i / max(num_frames - 1, 1)
        frames.append(scene.render(t, h, w))
    return (torch.stack(frames).float() * 2.0 - 1.0).contiguous()


# ---- the hidden stylisation ----------------------------------------------------------------------------------

_GRADE = torch.tensor([[1.10, 0.15, -0.10],
                       [0.05, 0.85, 0.15],
                       [-0.15, 0.20, 0.80]])


def _gauss_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype) / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    x = F.pad(x, (r, r, r, r), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, 1, -1).expand(c, 1, 1, -1).contiguous(), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).expand(c, 1, -1, 1).contiguous(), groups=c)


def demo_stylisation(frames: torch.Tensor, *, levels: int = 5, ink_threshold: float = 0.06,
                     ink_softness: float = 0.05, ink_strength: float = 0.9) -> torch.Tensor:
    """The demo shot's hidden look, applied per frame: NCHW [-1, 1] -> NCHW [-1, 1].

    1. colour grade: a channel-mixing matrix, a contrast curve and a warm lift;
    2. posterisation of each graded channel to ``levels`` levels;
    3. edge inking: dark blue-black lines where the blurred luminance of the *input* has a strong gradient
       (Sobel magnitude, soft threshold), so lines follow shape outlines and strong texture edges."""
    x = (frames.float().clamp(-1, 1) + 1) * 0.5
    g = torch.einsum("ij,njhw->nihw", _GRADE.to(x), x)
    g = g.clamp(0, 1)
    g = g * g * (3 - 2 * g)                                   # S-curve contrast
    g = (g * 0.92 + torch.tensor([0.06, 0.03, 0.0]).to(x).view(1, 3, 1, 1)).clamp(0, 1)
    q = torch.round(g * (levels - 1)) / (levels - 1)
    lum = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    lum = _gauss_blur(lum, 1.0)
    gx = lum[..., :, 2:] - lum[..., :, :-2]
    gy = lum[..., 2:, :] - lum[..., :-2, :]
    gx = F.pad(gx, (1, 1, 0, 0), mode="replicate")
    gy = F.pad(gy, (0, 0, 1, 1), mode="replicate")
    mag = torch.sqrt(gx * gx + gy * gy)
    ink = ((mag - ink_threshold) / ink_softness).clamp(0, 1)
    ink = ink * ink * (3 - 2 * ink) * ink_strength
    ink_colour = torch.tensor([0.05, 0.05, 0.12]).to(x).view(1, 3, 1, 1)
    out = q * (1 - ink) + ink_colour * ink
    return (out * 2 - 1).clamp(-1, 1)


def make_demo_shot(num_frames: int = 24, size: Size = 256, seed: int = 0, *, num_shapes: int = 6,
                   pan: float = 0.0) -> Tuple[torch.Tensor, torch.Tensor]:
    """(frames, stylised ground truth) of a moving procedural shot, both NCHW float32 in [-1, 1].

    The stylisation is :func:`demo_stylisation` (colour grade + posterisation + edge inking). A keyframe
    workflow paints (here: takes the ground truth of) a few frames and must reproduce the look on the others."""
    frames = render_demo_scene(num_frames, size, seed, num_shapes=num_shapes, pan=pan)
    return frames, demo_stylisation(frames)
