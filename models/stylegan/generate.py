"""Batch helpers on top of a loaded generator: seeds -> ws, and ws -> images in bounded batches.

Both are reproducible independently of batch size: z comes from the seed alone (:func:`seeds_to_z`), and
random noise (StyleGAN2 ``noise_mode='random'``) is drawn per image from a generator seeded with
``seed + image_index``, so rendering 8 images in batches of 2 or of 8 gives the same pixels.
"""
from __future__ import annotations

from typing import Callable, Optional, Sequence, Tuple, Union

import torch

from .latents import class_to_c, seeds_to_z

__all__ = ["seeds_to_ws", "synthesize", "stylegan_precision"]


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


def stylegan_precision(G, device, dtype: Optional[torch.dtype]):
    """(dtype to run or None = float32, verdict or None) for a low-precision request of ``G`` on ``device``.

    StyleGAN2 has a low-precision path: autocast to ``dtype`` (on CUDA with float16 also the reference's own
    float16 blocks, ``num_fp16_res``). It runs only where the device computes ``dtype`` natively and the
    shared accuracy criterion (``models.precision``) accepts it on four calibration images (seeds 0-3, psi 0.7):
    PSNR >= 50 dB, at most 0.01 % of 8-bit pixels off by more than 2/255 and relative L2 error <= 5e-3
    against float32. StyleGAN3 always runs float32 (no low-precision path)."""
    from .. import precision as _precision

    device = torch.device(device)
    if dtype not in (torch.float16, torch.bfloat16) or hasattr(G, "set_impl"):
        return None, None
    if not _precision.native_low_precision(device, dtype):
        return None, None

    def measure():
        _, ws = seeds_to_ws(G, [0, 1, 2, 3], truncation_psi=0.7)
        ref = torch.cat([_run(G, ws[i:i + 2].to(device), None, {"noise_mode": "const"}).float().cpu()
                         for i in (0, 2)])
        out = torch.cat([_run(G, ws[i:i + 2].to(device), dtype, {"noise_mode": "const"}).float().cpu()
                         for i in (0, 2)])
        return _precision.judge(out, ref, _precision.dtype_name(dtype), value_range=(-1.0, 1.0),
                                rel_err_limit=_precision.STYLEGAN_REL_ERR)

    verdict = _precision.calibrated_verdict(
        G, {"family": "stylegan", "device": _precision.device_description(device),
            "precision": _precision.dtype_name(dtype), "variant": "autocast-v1"}, measure)
    return (dtype if verdict.accepted else None), verdict


def _run(G, chunk: torch.Tensor, dtype: Optional[torch.dtype], kwargs: dict) -> torch.Tensor:
    """One synthesis call in float32 or, with ``dtype``, under autocast (plus the reference's float16 blocks)."""
    with torch.inference_mode():
        if dtype is None:
            return G.synthesis(chunk, **kwargs)
        kw = dict(kwargs)
        if dtype == torch.float16 and chunk.device.type == "cuda":
            kw["force_fp32"] = False
        with torch.autocast(chunk.device.type, dtype=dtype):
            return G.synthesis(chunk, **kw)


def synthesize(G, ws: torch.Tensor, *, noise_mode: str = "const", seed: int = 0, batch_size: int = 4,
               progress: Optional[Callable[[int, int], None]] = None,
               check_interrupt: Optional[Callable[[], None]] = None, force_fp32: bool = True,
               dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """Images [N, C, R, R] (float32, CPU, not clamped: ~[-1, 1]) from ws [N, num_ws, w_dim] in batches.

    ``progress(done, total)`` after each batch; ``check_interrupt()`` before each batch (raise to cancel).
    ``dtype`` float16/bfloat16: the low-precision path where :func:`stylegan_precision` accepts it, else
    float32 (the default, exact).

    No per-call overhead beyond ``G.synthesis`` itself: the result is allocated once (no concatenation), the
    synthesis runs under ``inference_mode``, and on CUDA each batch is copied to the host asynchronously through
    a pinned staging buffer while the next batch computes (two buffers; the host waits for a batch only when
    its buffer is needed again).
    """
    if ws.ndim != 3:
        raise ValueError(f"ws must be [N, num_ws, w_dim], got {tuple(ws.shape)}")
    n = ws.shape[0]
    batch_size = max(1, int(batch_size))
    device = _device_of(G)
    amp, _ = stylegan_precision(G, device, dtype) if dtype is not None else (None, None)
    result = None
    cuda = device.type == "cuda"
    stages, pending = [], []   # CUDA: pinned buffers and (event, buffer index, start, count) in flight

    def drain(keep: int) -> None:
        while len(pending) > keep:
            event, idx, lo, cnt = pending.pop(0)
            event.synchronize()
            result[lo:lo + cnt].copy_(stages[idx][:cnt])
            if progress is not None:
                progress(min(lo + cnt, n), n)

    for start in range(0, n, batch_size):
        if check_interrupt is not None:
            check_interrupt()
        chunk = ws[start:start + batch_size].to(device, non_blocking=True)
        kwargs = {"noise_mode": noise_mode}
        if noise_mode == "random":
            kwargs["generator"] = [torch.Generator(device="cpu").manual_seed(int(seed) + start + i)
                                   for i in range(chunk.shape[0])]
        if force_fp32 is not True:
            kwargs["force_fp32"] = force_fp32
        img = _run(G, chunk, amp, kwargs)
        if img.dtype != torch.float32:
            img = img.float()
        if result is None:
            result = torch.empty((n, *img.shape[1:]), dtype=torch.float32)
        b = img.shape[0]
        if not cuda:
            result[start:start + b] = img
            if progress is not None:
                progress(min(start + b, n), n)
            continue
        drain(1)   # at most one batch in flight besides this one: its staging buffer is free again
        idx = (start // batch_size) % 2
        if len(stages) <= idx:
            stages.append(torch.empty((batch_size, *img.shape[1:]), dtype=torch.float32, pin_memory=True))
        stages[idx][:b].copy_(img, non_blocking=True)
        event = torch.cuda.Event()
        event.record()
        pending.append((event, idx, start, b))
    if cuda:
        drain(0)
    if result is None:
        return torch.zeros([0, G.img_channels, G.img_resolution, G.img_resolution])
    return result
