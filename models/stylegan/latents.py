"""Latent-space utilities: seeds -> z, layer selections, style mixing, latent walks, class vectors.

* :func:`seeds_to_z` draws z exactly as the reference scripts do (``np.random.RandomState(seed).randn(z_dim)``),
  so a seed gives the same image as the NVlabs tools.
* :func:`parse_layers` turns "coarse" / "middle" / "fine" (scaled to the generator's ``num_ws``), ranges
  ("0-6"), lists ("0,2,4") and combinations ("coarse,10-11") into sorted W+ indices.
* :func:`style_mix` builds the reference ``style_mixing.py`` grid: each row's ws with the column's ws copied in
  at the chosen layers.
* :func:`interpolate_latents` walks through keyframes in W (lerp) or Z (slerp, then mapped), with linear or
  smooth easing and seamless loops.
"""
from __future__ import annotations

import math
import re
from typing import Callable, Iterable, List, Optional, Sequence, Union

import numpy as np
import torch

__all__ = ["parse_seeds", "seeds_to_z", "parse_layers", "layer_presets", "style_mix", "interpolate_latents",
           "slerp", "class_to_c"]

_MAX_SEED = 2 ** 32 - 1
_MAX_SPEC_CHARS = 65_536


def _parse_int_list(spec: str, what: str, lo: int, hi: int) -> List[int]:
    """Numbers and ranges; at most ``validate.max_items()`` values in all (the cap is per request, not per range)."""
    from .. import validate

    limit = validate.max_items()
    if len(spec) > _MAX_SPEC_CHARS:
        raise validate.InputError(f"the {what} list is {len(spec)} characters long (at most {_MAX_SPEC_CHARS})")
    out: List[int] = []
    for part in spec.replace(";", ",").replace(" ", ",").split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)\s*(?:-|\.\.)\s*(\d+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if b < a:
                raise ValueError(f"{what} range {part!r} runs backwards (write {b}-{a})")
            values = range(a, b + 1)
        elif re.fullmatch(r"\d+", part):
            values = [int(part)]
        else:
            raise ValueError(f"cannot read {what} {part!r}: use numbers, ranges like 5-7, separated by commas")
        if len(out) + len(values) > limit:
            raise validate.InputError(
                f"{what}s {spec if len(spec) <= 60 else spec[:57] + '...'!r}: more than {limit} {what}s in all "
                f"(the limit per node; GAN_PACK_MAX_ITEMS); render them in several batches")
        for v in values:
            if not lo <= v <= hi:
                raise ValueError(f"{what} {v} is out of range {lo}..{hi}")
            out.append(v)
    if not out:
        raise ValueError(f"no {what}s given")
    return out


def parse_seeds(seeds: Union[str, int, Iterable[int]]) -> List[int]:
    """``"1,3,5-7"`` -> [1, 3, 5, 6, 7]; ints and lists pass through (validated as 0..2**32-1)."""
    if isinstance(seeds, str):
        return _parse_int_list(seeds, "seed", 0, _MAX_SEED)
    if isinstance(seeds, (int, np.integer)):
        seeds = [int(seeds)]
    out = [int(s) for s in seeds]
    for s in out:
        if not 0 <= s <= _MAX_SEED:
            raise ValueError(f"seed {s} is out of range 0..{_MAX_SEED}")
    if not out:
        raise ValueError("no seeds given")
    return out


def seeds_to_z(seeds: Union[str, int, Iterable[int]], z_dim: int) -> torch.Tensor:
    """z [N, z_dim] float32, row i = ``np.random.RandomState(seed_i).randn(z_dim)`` (the reference scripts' z)."""
    rows = [np.random.RandomState(s).randn(int(z_dim)) for s in parse_seeds(seeds)]
    return torch.from_numpy(np.stack(rows)).to(torch.float32)


def layer_presets(num_ws: int) -> dict:
    """coarse / middle / fine W+ index ranges scaled from the StyleGAN paper's 18-layer split (0-3, 4-7, 8-17)."""
    if num_ws < 3:
        raise ValueError(f"num_ws={num_ws} is too small for coarse/middle/fine presets")
    c = min(max(1, int(round(num_ws * 4 / 18))), num_ws - 2)
    m = min(max(c + 1, int(round(num_ws * 8 / 18))), num_ws - 1)
    return {"coarse": list(range(0, c)), "middle": list(range(c, m)), "fine": list(range(m, num_ws)),
            "all": list(range(num_ws))}


def parse_layers(spec: Union[str, int, Iterable[int]], num_ws: int) -> List[int]:
    """W+ layer indices from a spec: "coarse" | "middle" | "fine" | "all" | "0-6" | "0,1,2" | "coarse,8-9" ...

    Presets scale with ``num_ws`` (StyleGAN2: 2*log2(resolution)-2, StyleGAN3: 16). Indices are validated
    against ``num_ws``; the result is sorted and unique.
    """
    num_ws = int(num_ws)
    if isinstance(spec, (int, np.integer)):
        spec = [int(spec)]
    if not isinstance(spec, str):
        out = sorted({int(i) for i in spec})
        for i in out:
            if not 0 <= i < num_ws:
                raise ValueError(f"layer {i} is out of range 0..{num_ws - 1}")
        if not out:
            raise ValueError("no layers given")
        return out
    presets = None
    out = set()
    rest = []
    for token in re.split(r"[,\s;+]+", spec.strip().lower()):
        if not token:
            continue
        if token in ("coarse", "middle", "fine", "all"):
            presets = presets or layer_presets(num_ws)
            out.update(presets[token])
        else:
            rest.append(token)
    if rest:
        out.update(_parse_int_list(",".join(rest), "layer", 0, num_ws - 1))
    if not out:
        raise ValueError(f"no layers in {spec!r}: use coarse, middle, fine, all, ranges like 0-6 or lists like 0,1,2")
    return sorted(out)


def style_mix(row_ws: torch.Tensor, col_ws: torch.Tensor, layers: Union[str, Sequence[int]] = "0-6") -> torch.Tensor:
    """Style-mixing grid [R, C, num_ws, w_dim]: entry (r, c) = row r's ws with column c's ws at ``layers``.

    Same semantics as stylegan2-ada-pytorch ``style_mixing.py`` (whose ws are truncated before mixing: pass
    ws from ``mapping(z, c, truncation_psi)``). ``layers`` is a :func:`parse_layers` spec or index list.
    """
    if row_ws.ndim != 3 or col_ws.ndim != 3 or row_ws.shape[1:] != col_ws.shape[1:]:
        raise ValueError(f"row and column ws must be [N, num_ws, w_dim] of the same generator, got "
                         f"{tuple(row_ws.shape)} and {tuple(col_ws.shape)}")
    idx = parse_layers(layers, row_ws.shape[1])
    col_ws = col_ws.to(device=row_ws.device, dtype=row_ws.dtype)
    R, C = row_ws.shape[0], col_ws.shape[0]
    from .. import validate

    validate.check_count(R * C, validate.max_grid_cells(), f"style-mixing cells ({R} x {C})", node="style mix",
                         hint="mix fewer rows or columns at a time (GAN_PACK_MAX_GRID_CELLS)")
    grid = row_ws.unsqueeze(1).repeat(1, C, 1, 1)
    grid[:, :, idx] = col_ws[:, idx].unsqueeze(0).expand(R, -1, -1, -1)
    return grid


def slerp(a: torch.Tensor, b: torch.Tensor, t: Union[float, torch.Tensor]) -> torch.Tensor:
    """Spherical interpolation of directions along the last dim, with the norm interpolated linearly."""
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device)
    while t.ndim < a.ndim:
        t = t.unsqueeze(-1)
    na = a.norm(dim=-1, keepdim=True)
    nb = b.norm(dim=-1, keepdim=True)
    ua = a / na.clamp_min(1e-12)
    ub = b / nb.clamp_min(1e-12)
    cos = (ua * ub).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    small = so.abs() < 1e-6
    safe = torch.where(small, torch.ones_like(so), so)
    wa = torch.where(small, 1 - t, torch.sin((1 - t) * omega) / safe)
    wb = torch.where(small, t, torch.sin(t * omega) / safe)
    direction = wa * ua + wb * ub
    return direction * ((1 - t) * na + t * nb)


_EASINGS = {
    "linear": lambda t: t,
    "smooth": lambda t: t * t * (3 - 2 * t),  # smoothstep: zero velocity at each keyframe
    "smoothstep": lambda t: t * t * (3 - 2 * t),
    "cosine": lambda t: 0.5 - 0.5 * math.cos(math.pi * t),
}


def interpolate_latents(keyframes: torch.Tensor, num_frames: int, *, space: str = "w", easing: str = "linear",
                        loop: bool = True, mapping: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
    """Latent walk through ``keyframes`` -> [num_frames, num_ws, w_dim].

    ``space="w"``: keyframes are ws [K, num_ws, w_dim] (or [K, w_dim]), interpolated linearly.
    ``space="z"``: keyframes are z [K, z_dim], interpolated by slerp and then passed through ``mapping``
    (a callable z [N, z_dim] -> ws [N, num_ws, w_dim], e.g. ``lambda z: G.mapping(z, c, truncation_psi=0.7)``);
    without ``mapping`` the interpolated z [num_frames, z_dim] are returned.
    ``loop=True`` wraps from the last keyframe back to the first without repeating frame 0 (a seamless cycle);
    otherwise the first and last frames are the first and last keyframes.
    ``easing``: "linear" | "smooth" (= "smoothstep") | "cosine" (both ease in and out of every keyframe).
    """
    if space not in ("w", "z"):
        raise ValueError(f"space must be 'w' or 'z', got {space!r}")
    if easing not in _EASINGS:
        raise ValueError(f"easing must be one of {sorted(_EASINGS)}, got {easing!r}")
    num_frames = int(num_frames)
    if num_frames < 1:
        raise ValueError("num_frames must be at least 1")
    from .. import validate

    validate.check_count(num_frames, validate.max_items(), "interpolation frames", node="latent walk",
                         hint="make the walk in several parts (GAN_PACK_MAX_ITEMS)")
    K = keyframes.shape[0]
    if K < 1:
        raise ValueError("at least one keyframe is needed")
    if space == "z" and keyframes.ndim != 2:
        raise ValueError(f"Z keyframes must be [K, z_dim], got {tuple(keyframes.shape)}")
    segments = K if (loop and K > 1) else max(K - 1, 1)
    frames = []
    for f in range(num_frames):
        if K == 1:
            pos = 0.0
        elif loop:
            pos = f * K / num_frames
        else:
            pos = f * (K - 1) / (num_frames - 1) if num_frames > 1 else 0.0
        i = min(int(math.floor(pos)), segments - 1) if K > 1 else 0
        t = pos - i
        a = keyframes[i % K]
        b = keyframes[(i + 1) % K] if K > 1 else a
        te = float(_EASINGS[easing](t))
        if te == 0.0:
            frames.append(a.clone())
        elif te == 1.0:
            frames.append(b.clone())
        elif space == "w":
            frames.append(torch.lerp(a, b, te))
        else:
            frames.append(slerp(a, b, te))
    out = torch.stack(frames)
    if space == "z" and mapping is not None:
        out = mapping(out)
    return out


def class_to_c(G, class_index: Union[int, Sequence[int], None], batch: Optional[int] = None) -> torch.Tensor:
    """One-hot class vectors c [N, c_dim] for a conditional generator (c_dim=0: a [N, 0] tensor).

    ``class_index`` is an int or a list (one per sample); ``batch`` repeats a single index N times.
    """
    c_dim = int(G.c_dim)
    indices = [class_index] if class_index is None or isinstance(class_index, (int, np.integer)) else list(class_index)
    if batch is not None and len(indices) == 1:
        indices = indices * int(batch)
    if c_dim == 0:
        return torch.zeros([len(indices), 0])
    c = torch.zeros([len(indices), c_dim])
    for row, idx in enumerate(indices):
        if idx is None:
            raise ValueError(f"this generator is conditional ({c_dim} classes): give a class index")
        idx = int(idx)
        if not 0 <= idx < c_dim:
            raise ValueError(f"class index {idx} is out of range 0..{c_dim - 1} for this generator")
        c[row, idx] = 1
    return c
