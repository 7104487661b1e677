#!/usr/bin/env python3
"""Training recipe of the bundled StyleGAN2 (``models/bundled/stylegan/gan_pack_islands64.safetensors``).

The bundled model exists so the StyleGAN workflows run with no download and show what style mixing does: the
coarse ws decide the layout (where the islands are, their outlines), the fine ws decide the colours.

The generator is the pack's ``StyleGAN2Generator`` (reference StyleGAN2-ADA architecture: modulated/demodulated
convolutions, skip architecture, FIR up-sampling), 64x64, z_dim = w_dim = 64, a two-layer mapping, 16 channels,
10 ws. It starts from random initialisation and is trained by gradient descent (Adam) to regress procedurally
rendered targets; there is no discriminator and no data set:

* target renderer (:func:`render`): a 4x4 layout field from z dimensions 0-15 (mean removed, normalised),
  bicubically up-sampled to 64 px, through a sigmoid -> a soft island mask; island colour from z dims 16-18,
  sea colour from z dims 19-21; ``image = fg * mask + bg * (1 - mask)`` in [-1, 1];
* loss: L1 at 64 px plus L1 of 2x, 4x and 8x average-pooled images (multi-scale);
* style-mixing regularisation: half of every batch is two latents z1, z2 with ws from z1 up to a crossover
  layer and from z2 after it (crossover 2, 3 or 4: the end of the ``coarse`` preset for 10 ws, or inside
  ``middle``); the target of such a sample is z1's layout in z2's colours. So the coarse ws (0-1) must carry the
  layout and the fine ws (4-9) the colours; the other half is plain (ws all from z1, target z1's picture).

After training ``w_avg`` is set to the mean of the mapping over 10 000 latents (for truncation). Deterministic
for a given ``--seed`` and ``--threads`` (CPU)::

    python scripts/train_stylegan.py --out models/bundled/stylegan/gan_pack_islands64.safetensors
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
RES = 64
Z_DIM = W_DIM = 64
LAYOUT_DIMS = slice(0, 16)   # 4x4 layout field
FG_DIMS = slice(16, 19)      # island colour
BG_DIMS = slice(19, 22)      # sea colour
CROSSOVERS = (2, 3, 4)       # mixing crossover layers (coarse = ws 0-1 for 10 ws; middle = ws 2-3)

GENERATOR_KWARGS = {
    "z_dim": Z_DIM, "c_dim": 0, "w_dim": W_DIM, "img_resolution": RES, "img_channels": 3,
    "mapping_kwargs": {"num_layers": 2, "activation": "lrelu", "lr_multiplier": 1.0},
    "synthesis_kwargs": {"channel_base": 512, "channel_max": 16, "num_fp16_res": 0, "conv_clamp": 256},
}


def render(z_layout: torch.Tensor, z_colour: torch.Tensor, res: int = RES) -> torch.Tensor:
    """Target pictures [N, 3, res, res] in [-1, 1]: the islands of ``z_layout`` in the colours of ``z_colour``."""
    f = z_layout[:, LAYOUT_DIMS]
    f = f - f.mean(1, keepdim=True)
    f = f / f.norm(dim=1, keepdim=True) * 4
    f = F.interpolate(f.view(-1, 1, 4, 4), size=(res, res), mode="bicubic", align_corners=False)
    m = torch.sigmoid(6 * f)
    fg = (0.65 + 0.2 * z_colour[:, FG_DIMS]).clamp(0, 1)[:, :, None, None]
    bg = (0.25 + 0.12 * z_colour[:, BG_DIMS]).clamp(0, 1)[:, :, None, None]
    return 2 * (fg * m + bg * (1 - m)) - 1


def build_generator(seed: int):
    sys.path.insert(0, str(REPO))
    from models.stylegan.sg2 import StyleGAN2Generator

    torch.manual_seed(seed)
    return StyleGAN2Generator(**json.loads(json.dumps(GENERATOR_KWARGS)))


def multiscale_l1(img: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
    return (img - tgt).abs().mean() + sum((F.avg_pool2d(img, k) - F.avg_pool2d(tgt, k)).abs().mean()
                                          for k in (2, 4, 8))


def train(*, seed: int = 0, steps: int = 10000, batch: int = 16, lr: float = 3e-3, log_every: int = 50,
          checkpoint=None, log=print):
    G = build_generator(seed)
    # noise strengths stay at their initial 0: the model has no per-pixel noise, so the noise modes (const,
    # random, none) give the same picture and a seed is the whole picture
    for name, p in G.named_parameters():
        if name.endswith("noise_strength"):
            p.requires_grad_(False)
    opt = torch.optim.Adam([p for p in G.parameters() if p.requires_grad], lr=lr, betas=(0.9, 0.99))
    # cosine decay of the learning rate to a tenth over the run
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.1 + 0.45 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    gen = torch.Generator().manual_seed(seed + 1)
    half = batch // 2
    plain = (torch.arange(batch) >= half)  # second half of the batch: no mixing
    layer = torch.arange(G.num_ws)[None]
    curve = []
    t0 = time.time()
    for step in range(steps + 1):
        z1 = torch.randn(batch, Z_DIM, generator=gen)
        z2 = torch.randn(batch, Z_DIM, generator=gen)
        ws1, ws2 = G.mapping(z1, None), G.mapping(z2, None)
        cross = torch.tensor(CROSSOVERS)[torch.randint(0, len(CROSSOVERS), (batch,), generator=gen)]
        from_z1 = (layer < cross[:, None]) | plain[:, None]
        ws = torch.where(from_z1[:, :, None], ws1, ws2)
        tgt = render(z1, torch.where(plain[:, None], z1, z2))
        img = G.synthesis(ws, noise_mode="const")
        loss = multiscale_l1(img, tgt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % log_every == 0:
            l1 = (img - tgt).abs().mean().item()
            curve.append((step, round(loss.item(), 4), round(l1, 4), round(time.time() - t0, 1)))
            log(f"step {step:5d}  loss {loss.item():.4f}  L1 {l1:.4f}  {time.time() - t0:.0f} s")
            if checkpoint is not None and step % 500 == 0 and step:
                checkpoint(G, step)
    return G, curve


@torch.no_grad()
def set_w_avg(G, seed: int, n: int = 10000) -> None:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed + 2))
    G.mapping.w_avg.copy_(G.mapping(z, None)[:, 0].mean(0))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "models" / "bundled" / "stylegan" / "gan_pack_islands64.safetensors"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--checkpoints", default="", help="folder for a state-dict checkpoint every 500 steps (optional)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO))
    from models.stylegan import save_stylegan

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def checkpoint(G, step):
        folder = Path(args.checkpoints)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(G.state_dict(), folder / f"{out.stem}.step{step}.pt")

    t0 = time.time()
    G, curve = train(seed=args.seed, steps=args.steps, batch=args.batch, lr=args.lr, checkpoint=checkpoint if args.checkpoints else None)
    set_w_avg(G, args.seed)
    G.eval()
    save_stylegan(G, out)
    print(json.dumps({"out": str(out), "seconds": round(time.time() - t0, 1), "num_ws": G.num_ws,
                      "parameters": sum(p.numel() for p in G.parameters()), "final": curve[-1]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
