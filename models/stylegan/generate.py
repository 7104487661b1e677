"""Batch helpers on top of a loaded generator: seeds -> ws, and ws -> images in bounded batches.

Both are reproducible independently of batch size: z comes from the seed alone (:func:`seeds_to_z`), and
random noise (StyleGAN2 ``noise_mode='random'``) is drawn per image from a generator seeded with
``seed + image_index``, so rendering 8 images in batches of 2 or of 8 gives the same pixels.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import torch

from .latents import class_to_c, seeds_to_z

__all__ = ["seeds_to_ws", "synthesize"]


def _device_of(G) -> torch.device:
    return next(iter(G.parameters())).device


def seeds_to_ws(G, seeds: Union[str, int, Sequence[int]], *, truncation_psi: float = 1.0,
                truncation_cutoff: Optional[int] = None, class_index=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(z [N, z_dim], ws [N, num_ws, w_dim]) for seeds, both float32 on the CPU.

    ``class_index`` (int or list) is required for conditional generators and ignored for unconditional ones.
    ``truncation_cutoff`` None or 0 truncates all layers.
    """
    z = seeds_to_z(seeds, G.z_dim)
    c = class_to_c(G, class_index if G.c_dim else 0, batch=z.shape[0])
    device = _device_of(G)
    with torch.no_grad():
        ws = G.mapping(z.to(device), c.to(device), truncation_psi=truncation_psi,
                       truncation_cutoff=truncation_cutoff or None)
    return z, ws.float().cpu()


def synthesize(G, ws: torch.Tensor, *, noise_mode: str = "const", seed: int = 0, batch_size: int = 4,
               progress: Optional[Callable[[int, int], None]] = None,
               check_interrupt: Optional[Callable[[], None]] = None, force_fp32: bool = True) -> torch.Tensor:
    """Images [N, C, R, R] (float32, CPU, not clamped: ~[-1, 1]) from ws [N, num_ws, w_dim] in batches.

    ``progress(done, total)`` after each batch; ``check_interrupt()`` before each batch (raise to cancel).
    """
    if ws.ndim != 3:
        raise ValueError(f"ws must be [N, num_ws, w_dim], got {tuple(ws.shape)}")
    n = ws.shape[0]
    batch_size = max(1, int(batch_size))
    device = _device_of(G)
    out = []
    for start in range(0, n, batch_size):
        if check_interrupt is not None:
            check_interrupt()
        chunk = ws[start:start + batch_size].to(device)
        kwargs = {"noise_mode": noise_mode}
        if noise_mode == "random":
            kwargs["generator"] = [torch.Generator(device="cpu").manual_seed(int(seed) + start + i)
                                   for i in range(chunk.shape[0])]
        if force_fp32 is not True:
            kwargs["force_fp32"] = force_fp32
        with torch.no_grad():
            out.append(G.synthesis(chunk, **kwargs).float().cpu())
        if progress is not None:
            progress(min(start + batch_size, n), n)
    return torch.cat(out) if out else torch.zeros([0, G.img_channels, G.img_resolution, G.img_resolution])
