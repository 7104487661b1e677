"""Layout and colour conversions between ComfyUI's IMAGE tensors and the GAN convention.

ComfyUI passes images as float tensors ``[N, H, W, C]`` in ``[0, 1]``; the GANs in this pack take
``[N, C, H, W]`` in ``[-1, 1]``. These helpers convert between the two and adapt channel counts
(grayscale <-> RGB with the ITU-R BT.601 luma weights kornia uses, RGBA alpha split off and put back).
"""
from __future__ import annotations

from typing import Optional, Tuple

import kornia
import torch


def image_to_gan(images: torch.Tensor) -> torch.Tensor:
    """``[N, H, W, C]`` in [0, 1] -> ``[N, C, H, W]`` in [-1, 1] (a 3-D ``[H, W, C]`` image is batched)."""
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ValueError(f"expected an IMAGE tensor [N, H, W, C], got shape {tuple(images.shape)}")
    return images.permute(0, 3, 1, 2).float().mul(2.0).sub(1.0)


def gan_to_image(tensor: torch.Tensor, clamp: bool = True) -> torch.Tensor:
    """``[N, C, H, W]`` in [-1, 1] -> ``[N, H, W, C]`` in [0, 1] (clamped unless ``clamp=False``)."""
    if tensor.ndim != 4:
        raise ValueError(f"expected a tensor [N, C, H, W], got shape {tuple(tensor.shape)}")
    out = tensor.add(1.0).mul(0.5)
    if clamp:
        out = out.clamp(0.0, 1.0)
    return out.permute(0, 2, 3, 1).contiguous()


def split_alpha(nchw: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Split a 2- or 4-channel tensor into colour and alpha; other counts come back with ``None``."""
    c = nchw.shape[1]
    if c in (2, 4):
        return nchw[:, : c - 1], nchw[:, c - 1 :]
    return nchw, None


def convert_channels(nchw: torch.Tensor, channels: int) -> torch.Tensor:
    """Adapt a 1- or 3-channel NCHW tensor (any value range) to ``channels`` (1 or 3).

    Grayscale is repeated to RGB; RGB becomes luma (``kornia.color.rgb_to_grayscale``). Other counts raise
    ``ValueError`` with the shapes involved.
    """
    c = nchw.shape[1]
    if c == channels:
        return nchw
    if c == 1 and channels == 3:
        return nchw.expand(-1, 3, -1, -1).contiguous()
    if c == 3 and channels == 1:
        return kornia.color.rgb_to_grayscale(nchw)
    raise ValueError(f"cannot convert a {c}-channel image to {channels} channels (supported: 1, 3, plus alpha)")


def rgb_to_gray_image(images: torch.Tensor) -> torch.Tensor:
    """IMAGE ``[N, H, W, 3]`` -> IMAGE ``[N, H, W, 3]`` holding the luma in all three channels."""
    nchw = images.permute(0, 3, 1, 2)
    gray = kornia.color.rgb_to_grayscale(nchw[:, :3])
    return gray.expand(-1, 3, -1, -1).permute(0, 2, 3, 1).contiguous()


def split_image_alpha(images: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """IMAGE ``[N, H, W, C]`` (C = 1, 2, 3 or 4) -> (RGB IMAGE ``[N, H, W, 3]``, alpha MASK ``[N, H, W]``).

    Without an alpha channel the mask is all ones (fully opaque)."""
    if images.ndim != 4 or images.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"expected an IMAGE [N, H, W, C] with 1-4 channels, got shape {tuple(images.shape)}")
    c = images.shape[-1]
    if c in (2, 4):
        colour, alpha = images[..., : c - 1], images[..., c - 1]
    else:
        colour, alpha = images, torch.ones(images.shape[:3], dtype=images.dtype, device=images.device)
    if colour.shape[-1] == 1:
        colour = colour.expand(-1, -1, -1, 3)
    return colour.contiguous(), alpha.contiguous()


def image_grid(images: torch.Tensor, columns: int, fill: float = 1.0) -> torch.Tensor:
    """Tile an IMAGE batch ``[N, H, W, C]`` row by row into one IMAGE ``[1, rows*H, columns*W, C]``;
    empty cells of the last row are ``fill``."""
    n, h, w, c = images.shape
    columns = max(1, min(columns, n))
    rows = (n + columns - 1) // columns
    padded = torch.full((rows * columns, h, w, c), fill, dtype=images.dtype, device=images.device)
    padded[:n] = images
    grid = padded.view(rows, columns, h, w, c).permute(0, 2, 1, 3, 4).reshape(rows * h, columns * w, c)
    return grid.unsqueeze(0)
