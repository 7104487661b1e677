"""Projection of real images into a StyleGAN's W+ space by optimisation (no downloads).

The loss is made of things that need no pretrained network:

* pixel L1 (or L2) between the synthesized and target image at several scales (full, 1/2, 1/4 ...),
* a structural term ``1 - SSIM`` (Gaussian-window SSIM written here, differentiable),
* a small regulariser that keeps the per-layer ws close to their mean (W+ that stays near W),
* optionally a perceptual term: ``feature_net`` is any callable the caller supplies (e.g. a VGG loaded from a
  file the user has) mapping NCHW images in [-1, 1] to a tensor or list of tensors; the squared distance of
  the features is added with ``feature_weight``.

Optimisation starts at ``w_avg`` with a little exploration noise that decays over the first 3/4 of the run
(seeded: same seed, same result), Adam with a short warm-up and a cosine ramp-down of the learning rate.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F

__all__ = ["ProjectionResult", "project_image", "ssim"]


@dataclass
class ProjectionResult:
    ws: torch.Tensor                      # [N, num_ws, w_dim] best latents found (CPU float32)
    image: torch.Tensor                   # [N, C, R, R] synthesis of ``ws`` (const noise), CPU float32
    losses: List[float] = field(default_factory=list)  # mean total loss per step


def _gaussian_window(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def ssim(a: torch.Tensor, b: torch.Tensor, *, data_range: float = 2.0, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Mean SSIM per image ([N]) of NCHW tensors, Gaussian window (shrunk for small images), valid region."""
    n, c, h, w = a.shape
    size = max(3, min(window, h, w) // 2 * 2 + 1 if min(h, w) < window else window)
    size = min(size, h, w)
    g = _gaussian_window(size, sigma * size / window if size < window else sigma, a.device, a.dtype)
    kx = g.reshape(1, 1, 1, -1).expand(c, 1, 1, size)
    ky = g.reshape(1, 1, -1, 1).expand(c, 1, size, 1)

    def blur(x):
        return F.conv2d(F.conv2d(x, kx, groups=c), ky, groups=c)

    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    mu_a, mu_b = blur(a), blur(b)
    saa = blur(a * a) - mu_a ** 2
    sbb = blur(b * b) - mu_b ** 2
    sab = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (saa + sbb + c2))
    return s.flatten(1).mean(dim=1)


def _prepare_target(image: torch.Tensor, G, device) -> torch.Tensor:
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4:
        raise ValueError(f"image must be NCHW, got shape {tuple(image.shape)}")
    x = image.to(device=device, dtype=torch.float32)
    C = int(G.img_channels)
    if x.shape[1] != C:
        if x.shape[1] == 1:
            x = x.expand(-1, C, -1, -1)
        elif C == 1:
            x = x[:, :3].mean(dim=1, keepdim=True)
        elif x.shape[1] == 4 and C == 3:
            x = x[:, :3]
        else:
            raise ValueError(f"image has {x.shape[1]} channels, the generator makes {C}")
    R = int(G.img_resolution)
    if x.shape[-2:] != (R, R):
        x = F.interpolate(x, size=(R, R), mode="bilinear", align_corners=False, antialias=True)
    return x.contiguous()


def _features(net, x):
    out = net(x)
    if isinstance(out, torch.Tensor):
        return [out]
    return list(out)


def project_image(G, image_nchw: torch.Tensor, *, steps: int = 300, seed: int = 0,
                  progress: Optional[Callable[..., None]] = None, check_interrupt: Optional[Callable[[], None]] = None,
                  lr: float = 0.05, c: Optional[torch.Tensor] = None, pixel_loss: str = "l1",
                  pixel_weight: float = 1.0, scales: Sequence[int] = (1, 2, 4), ssim_weight: float = 1.0,
                  w_plus_reg: float = 0.01, initial_noise: float = 0.05, noise_ramp: float = 0.75,
                  feature_net: Optional[Callable] = None, feature_weight: float = 1.0,
                  init_ws: Optional[torch.Tensor] = None, device=None) -> ProjectionResult:
    """Find W+ latents whose synthesis (const noise) reproduces ``image_nchw`` (N images, [-1, 1]).

    The target is resized to the generator's resolution (antialiased) and its channels adapted. ``progress``
    is called as ``progress(step, steps, loss)``; ``check_interrupt()`` is called every step and may raise to
    cancel. Returns :class:`ProjectionResult` with the best ws per image (lowest loss seen).
    """
    steps = int(steps)
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if pixel_loss not in ("l1", "l2"):
        raise ValueError("pixel_loss must be 'l1' or 'l2'")
    device = next(iter(G.parameters())).device  # optimise where the generator is (``device`` kept for callers)
    target = _prepare_target(image_nchw, G, device)
    n = target.shape[0]
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    if c is None:
        c = torch.zeros([n, int(G.c_dim)])
    c = c.to(device=device, dtype=torch.float32)
    if c.shape[0] == 1 and n > 1:
        c = c.expand(n, -1)

    with torch.no_grad():  # W statistics for the noise scale and the regulariser
        z = torch.randn([1000, int(G.z_dim)], generator=gen).to(device)
        cs = c[:1].expand(1000, -1) if c.shape[1] else None
        w_samples = G.mapping(z, cs)[:, 0]
        w_std = float(((w_samples - G.w_avg.to(device)) ** 2).sum(dim=1).mean().sqrt())
        w_std = max(w_std, 1e-8)
    num_ws, w_dim = int(G.num_ws), int(G.w_dim)
    if init_ws is not None:
        start = init_ws.to(device=device, dtype=torch.float32).expand(n, num_ws, w_dim).clone()
    else:
        start = G.w_avg.to(device).reshape(1, 1, w_dim).repeat(n, num_ws, 1)
    ws = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([ws], lr=lr, betas=(0.9, 0.999))
    target_feats = None
    if feature_net is not None:
        with torch.no_grad():
            target_feats = [f.detach() for f in _features(feature_net, target)]
    pooled_targets = {s: (F.avg_pool2d(target, s) if s > 1 else target) for s in scales if target.shape[-1] // s >= 1}

    best_loss = torch.full([n], float("inf"), device=device)
    best_ws = start.detach().clone()
    losses: List[float] = []
    for step in range(steps):
        if check_interrupt is not None:
            check_interrupt()
        t = step / steps
        ramp_down = 0.5 - 0.5 * math.cos(min(1.0, (1.0 - t) / 0.25) * math.pi)
        ramp_up = min(1.0, (step + 1) / max(1.0, 0.05 * steps))
        lr_ramp = ramp_down * ramp_up
        for group in opt.param_groups:
            group["lr"] = lr * lr_ramp
        noise_scale = w_std * initial_noise * max(0.0, 1.0 - t / noise_ramp) ** 2
        noise = torch.randn(ws.shape, generator=gen).to(device) * noise_scale if noise_scale > 0 else 0.0
        img = G.synthesis(ws + noise, noise_mode="const")
        per = torch.zeros([n], device=device)
        for s, tgt in pooled_targets.items():
            x = F.avg_pool2d(img, s) if s > 1 else img
            d = (x - tgt).abs() if pixel_loss == "l1" else (x - tgt) ** 2
            per = per + pixel_weight * d.flatten(1).mean(dim=1) / len(pooled_targets)
        if ssim_weight:
            per = per + ssim_weight * (1 - ssim(img, target))
        if w_plus_reg:
            per = per + w_plus_reg * ((ws - ws.mean(dim=1, keepdim=True)) ** 2).sum(dim=2).mean(dim=1) / w_std ** 2
        if target_feats is not None:
            for fa, fb in zip(_features(feature_net, img), target_feats):
                per = per + feature_weight * ((fa - fb) ** 2).flatten(1).mean(dim=1)
        loss = per.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            improved = per.detach() < best_loss
            best_loss = torch.where(improved, per.detach(), best_loss)
            best_ws[improved] = ws.detach()[improved]
        opt.step()
        losses.append(float(per.detach().mean()))
        if progress is not None:
            progress(step + 1, steps, losses[-1])
    with torch.no_grad():
        image = G.synthesis(best_ws, noise_mode="const")
    return ProjectionResult(ws=best_ws.detach().float().cpu(), image=image.float().cpu(), losses=losses)
