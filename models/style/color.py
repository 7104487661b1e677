"""Colour preservation for style transfer (Gatys, Bethge, Hertzmann & Shechtman 2016, "Preserving color in
neural artistic style transfer"): keep the content's chroma and take only the stylised luminance, or
recolour the style image to the content's colour statistics before stylising. All tensors NCHW RGB [0, 1].
"""
from __future__ import annotations

from typing import Optional

import kornia
import torch

PRESERVE_COLOR = (None, "none", "luminance", "histogram")


def luminance_transfer(stylised: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """Y (BT.601 luma) of ``stylised`` with the U/V chroma of ``content`` (same size), clamped to [0, 1]."""
    if stylised.shape != content.shape:
        raise ValueError(f"luminance transfer needs equal shapes, got {tuple(stylised.shape)} and {tuple(content.shape)}")
    y = kornia.color.rgb_to_yuv(stylised)[:, :1]
    uv = kornia.color.rgb_to_yuv(content)[:, 1:]
    return kornia.color.yuv_to_rgb(torch.cat([y, uv], 1)).clamp(0.0, 1.0)


def match_color(source: torch.Tensor, reference: torch.Tensor, space: str = "lab",
                eps: float = 1e-5) -> torch.Tensor:
    """``source`` with the per-channel mean/std of ``reference`` in CIE Lab (``space="lab"``) or YUV.

    Statistics are pooled over the whole ``reference`` batch, so every frame of a sequence maps alike.
    """
    to, back = {"lab": (kornia.color.rgb_to_lab, kornia.color.lab_to_rgb),
                "yuv": (kornia.color.rgb_to_yuv, kornia.color.yuv_to_rgb)}[space]
    s, r = to(source.clamp(0, 1)), to(reference.clamp(0, 1))
    s_std, s_mean = torch.std_mean(s, dim=(0, 2, 3), keepdim=True)
    r_std, r_mean = torch.std_mean(r, dim=(0, 2, 3), keepdim=True)
    out = (s - s_mean) / (s_std + eps) * r_std + r_mean
    return back(out).clamp(0.0, 1.0)


def check_preserve_color(mode: Optional[str]) -> Optional[str]:
    if mode not in PRESERVE_COLOR:
        raise ValueError(f"preserve_color must be one of {PRESERVE_COLOR}, got {mode!r}")
    return None if mode in (None, "none") else mode
