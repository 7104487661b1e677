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


def batch_images(images, resize: str = "first") -> torch.Tensor:
    """Join IMAGE batches ``[N_i, H_i, W_i, C_i]`` into one ``[sum N_i, H, W, C]``, in order.

    Sizes: ``resize="first"`` scales every batch whose size differs from the first one's to cover it (bilinear,
    aspect kept) and crops the centre, as core Batch Images does; ``resize="error"`` refuses different sizes
    with a message naming them. Channels: gray (1) becomes RGB; if any batch has alpha, the others get an
    opaque alpha channel.
    """
    images = [im if im.ndim == 4 else im.unsqueeze(0) for im in images if im is not None]
    if not images:
        raise ValueError("no images to batch")
    for i, im in enumerate(images):
        if im.ndim != 4 or im.shape[-1] not in (1, 3, 4):
            raise ValueError(f"image {i + 1}: expected an IMAGE [N, H, W, C] with 1, 3 or 4 channels, got shape "
                             f"{tuple(im.shape)}")
    h, w = images[0].shape[1:3]
    alpha = any(im.shape[-1] == 4 for im in images)
    out = []
    for i, im in enumerate(images):
        im = im.to(images[0].device, torch.float32)
        if im.shape[-1] == 1:
            im = im.expand(-1, -1, -1, 3)
        if alpha and im.shape[-1] == 3:
            im = torch.cat([im, torch.ones_like(im[..., :1])], -1)
        if im.shape[1:3] != (h, w):
            if resize == "error":
                raise ValueError(f"image {i + 1} is {im.shape[2]}x{im.shape[1]} but image 1 is {w}x{h}: batched "
                                 f"frames must have one size")
            im = _cover_resize(im, h, w)
        out.append(im)
    return torch.cat(out)


def _cover_resize(images: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Scale ``[N, H, W, C]`` to cover ``h x w`` (bilinear, aspect kept), then crop the centre."""
    ih, iw = images.shape[1:3]
    s = max(h / ih, w / iw)
    sh, sw = max(h, round(ih * s)), max(w, round(iw * s))
    x = torch.nn.functional.interpolate(images.permute(0, 3, 1, 2), size=(sh, sw), mode="bilinear",
                                        align_corners=False, antialias=s < 1)
    top, left = (sh - h) // 2, (sw - w) // 2
    return x[:, :, top:top + h, left:left + w].permute(0, 2, 3, 1).contiguous()
