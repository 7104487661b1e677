#!/usr/bin/env python3
"""Recipe of the bundled StyleGAN2 (``models/bundled/stylegan/gan_pack_islands64.safetensors``).

The bundled model exists so the style-mixing workflow runs with no download and shows what style mixing does:
the coarse layers decide the layout (where the islands are and their shapes), the fine layers decide the
colours. Adversarial training of a StyleGAN on two CPU cores collapses or takes hours, so this recipe trains the
generator by *disentangled regression* against a procedural renderer instead:

* every latent ``z`` maps deterministically to a parameter vector, read from the first dimensions of the
  normalised ``zn = z / rms(z)`` (the mapping network normalises ``z`` the same way, so the parameters are a
  function of what the network sees). Coarse parameters: 16 values forming a 4x4 height field (the layout).
  Fine parameters (through the normal CDF, in (0, 1)): island hue and brightness, background hue and
  brightness. The remaining ``z`` dimensions are ignored.
* :func:`render` draws the image of a parameter vector: the height field bicubically upsampled to 64x64 and
  softly thresholded into islands; coloured islands on a coloured background.
* the reference StyleGAN2 architecture (this pack's ``StyleGAN2Generator``: mapping + synthesis) is trained
  with an L1 loss at 64, 32 and 16 pixels. Half of every batch is *style-mixed*: two latents, the ws of the
  first below the crossover layer ``k`` (the pack's ``coarse`` preset) and of the second from ``k`` on; the
  target is the image with the *coarse* parameters of the first and the *fine* parameters of the second. That
  is what forces the coarse ws to carry the layout and the fine ws to carry colour and texture.
* afterwards ``w_avg`` is set to the mean of the mapping over 10 000 latents, so truncation pulls towards the
  average, and the generator is saved with ``save_stylegan`` (weights + config, no code).

Deterministic from ``--seed`` on one machine (fixed steps, seeded generators, 2 threads)::

    python scripts/train_stylegan.py --out models/bundled/stylegan/gan_pack_islands64.safetensors
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Dict

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
RES = 64
Z_DIM = 64
W_DIM = 64

# z dimensions that carry the parameters (everything else is ignored): a 4x4 layout field (coarse) and the
# colours (fine)
LAYOUT = 4
COARSE = tuple(f"layout{i}" for i in range(LAYOUT * LAYOUT))
FINE = ("fg_hue", "fg_val", "bg_hue", "bg_val")
PARAMS = COARSE + FINE

GENERATOR_KWARGS = {
    "z_dim": Z_DIM, "c_dim": 0, "w_dim": W_DIM, "img_resolution": RES, "img_channels": 3,
    "mapping_kwargs": {"num_layers": 4},
    "synthesis_kwargs": {"channel_base": 512, "channel_max": 64, "num_fp16_res": 0, "conv_clamp": None},
}


# ------------------------------------------------------------------------------------------- parameters
def z_to_params(z: torch.Tensor) -> Dict[str, torch.Tensor]:
    """``[N, z_dim]`` -> ``{name: [N]}``: the normalised latent's first dimensions; layout values stay Gaussian,
    colour values go through the normal CDF to (0, 1)."""
    zn = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
    u = 0.5 * (1 + torch.erf(zn / math.sqrt(2)))
    return {name: (zn if name in COARSE else u)[:, i] for i, name in enumerate(PARAMS)}


def _hsv(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """HSV (each [N]) -> RGB [N, 3] in [0, 1]."""
    k = torch.stack([(5 + h * 6) % 6, (3 + h * 6) % 6, (1 + h * 6) % 6], dim=1)
    return v[:, None] - v[:, None] * s[:, None] * (torch.minimum(k, 4 - k).clamp(0, 1))


def render(coarse: Dict[str, torch.Tensor], fine: Dict[str, torch.Tensor], res: int = RES) -> torch.Tensor:
    """Procedural image ``[N, 3, res, res]`` in [-1, 1]: the coarse params form a 4x4 height field, smoothly
    (bicubic) upsampled and softly thresholded into islands (the layout); the fine params colour the islands and
    the background."""
    field = torch.stack([coarse[k] for k in COARSE], dim=1).reshape(-1, 1, LAYOUT, LAYOUT)
    height = F.interpolate(field, size=(res, res), mode="bicubic", align_corners=False)
    mask = torch.sigmoid(6.0 * (height - 0.25))
    fg = _hsv(fine["fg_hue"], torch.full_like(fine["fg_hue"], 0.85), 0.55 + 0.45 * fine["fg_val"])
    bg = _hsv(fine["bg_hue"], torch.full_like(fine["bg_hue"], 0.4), 0.1 + 0.5 * fine["bg_val"])
    img = mask * fg[:, :, None, None] + (1 - mask) * bg[:, :, None, None]
    return img * 2 - 1


def target_images(z_coarse: torch.Tensor, z_fine: torch.Tensor, res: int = RES) -> torch.Tensor:
    pc, pf = z_to_params(z_coarse), z_to_params(z_fine)
    return render({k: pc[k] for k in COARSE}, {k: pf[k] for k in FINE}, res)


# ------------------------------------------------------------------------------------------- training
def coarse_boundary(num_ws: int) -> int:
    """First ws index that is *not* coarse: the end of the pack's ``coarse`` preset for this model."""
    from models.stylegan import parse_layers

    layers = parse_layers("coarse", num_ws)
    assert layers == list(range(len(layers))), f"coarse preset is not a prefix: {layers}"
    return len(layers)


def build_generator(seed: int):
    from models.stylegan.sg2 import StyleGAN2Generator

    torch.manual_seed(seed)
    return StyleGAN2Generator(**json.loads(json.dumps(GENERATOR_KWARGS)))


class _unfused_modconv:
    """During training only: the synthesis layers run the modulated convolution unfused (scale the input, one
    shared convolution, demodulate the output). That is the reference's training-mode form: the same function
    as the fused grouped convolution used for inference, and about twice as fast to back-propagate on a CPU."""

    def __enter__(self):
        from models.stylegan import sg2

        self.sg2, self.orig = sg2, sg2.modulated_conv2d
        sg2.modulated_conv2d = lambda *a, **k: self.orig(*a, **{**k, "fused": False})

    def __exit__(self, *exc):
        self.sg2.modulated_conv2d = self.orig


def multiscale_l1(img: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    loss = (img - target).abs().mean()
    for k in (2, 4):
        loss = loss + (F.avg_pool2d(img, k) - F.avg_pool2d(target, k)).abs().mean()
    return loss


def _noise_parameters(G):
    return [p for n, p in G.named_parameters() if n.endswith("noise_strength")]


def train(G, *, steps: int, seed: int, batch: int = 8, lr: float = 0.008, mapping_lr_mult: float = 100.0,
          mix_prob: float = 0.5, log_every: int = 50, log=print):
    """Disentangled regression (see the module docstring). Returns a list of (step, loss) records."""
    k = coarse_boundary(G.num_ws)
    gen = torch.Generator().manual_seed(seed)
    # noise strengths stay at zero: the targets are deterministic, and const/random/none then agree
    for p in _noise_parameters(G):
        p.requires_grad_(False)
        p.data.zero_()
    map_params = [p for p in G.mapping.parameters() if p.requires_grad]
    syn_params = [p for p in G.synthesis.parameters() if p.requires_grad]
    # the reference mapping has a learning-rate multiplier of 0.01 (weights stored 100x larger); Adam's step
    # is scale-free, so its learning rate is raised by the same factor to train it at the synthesis's pace
    opt = torch.optim.Adam([{"params": syn_params, "lr": lr},
                            {"params": map_params, "lr": lr * mapping_lr_mult}], betas=(0.9, 0.99))
    base = [g["lr"] for g in opt.param_groups]
    history = []
    t0, c0 = time.time(), time.process_time()
    running = None
    G.train(False)  # eval mode throughout: the mapping never updates w_avg on its own
    with _unfused_modconv():
        for step in range(1, steps + 1):
            running = _step(G, opt, base, gen, step, steps, batch, k, mix_prob, running)
            if step % log_every == 0 or step == steps:
                history.append((step, round(running, 5)))
                log(f"step {step}/{steps} loss {running:.4f} ({time.time() - t0:.0f} s wall, "
                    f"{time.process_time() - c0:.0f} s CPU)")
    return history


def _step(G, opt, base, gen, step, steps, batch, k, mix_prob, running):
    # cosine decay over the last half
    frac = max(0.0, (step - steps / 2) / (steps / 2))
    for g, b in zip(opt.param_groups, base):
        g["lr"] = b * (0.55 + 0.45 * math.cos(math.pi * frac)) if frac > 0 else b
    z1 = torch.randn(batch, G.z_dim, generator=gen)
    z2 = torch.randn(batch, G.z_dim, generator=gen)
    mixed = torch.rand(batch, generator=gen) < mix_prob
    z2 = torch.where(mixed[:, None], z2, z1)
    ws = G.mapping(torch.cat([z1, z2]), None)
    ws1, ws2 = ws[:batch], ws[batch:]
    ws_mix = torch.cat([ws1[:, :k], ws2[:, k:]], dim=1)
    img = G.synthesis(ws_mix, noise_mode="const")
    loss = multiscale_l1(img, target_images(z1, z2, G.img_resolution))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item() if running is None else 0.95 * running + 0.05 * loss.item()


@torch.no_grad()
def set_w_avg(G, seed: int, n: int = 10000) -> None:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed + 1))
    w = G.mapping(z, None)[:, 0]
    G.mapping.w_avg.copy_(w.mean(0))


@torch.no_grad()
def evaluate(G, seed: int, n: int = 64) -> Dict[str, float]:
    """L1 (in [0, 1] units) of plain and style-mixed images against the renderer, on fresh latents."""
    k = coarse_boundary(G.num_ws)
    gen = torch.Generator().manual_seed(seed + 2)
    z1, z2 = torch.randn(n, G.z_dim, generator=gen), torch.randn(n, G.z_dim, generator=gen)
    ws1, ws2 = G.mapping(z1, None), G.mapping(z2, None)
    plain = G.synthesis(ws1, noise_mode="const")
    mix = G.synthesis(torch.cat([ws1[:, :k], ws2[:, k:]], 1), noise_mode="const")
    return {"l1_plain": ((plain - target_images(z1, z1, G.img_resolution)).abs().mean() / 2).item(),
            "l1_mixed": ((mix - target_images(z1, z2, G.img_resolution)).abs().mean() / 2).item(),
            "crossover_layer": k}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "models" / "bundled" / "stylegan" / "gan_pack_islands64.safetensors"))
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    torch.set_num_threads(args.threads)
    from models.stylegan import save_stylegan

    t0 = time.time()
    G = build_generator(args.seed)
    history = train(G, steps=args.steps, seed=args.seed, batch=args.batch)
    set_w_avg(G, args.seed)
    G.eval()
    for p in G.parameters():
        p.requires_grad_(False)
    stats = evaluate(G, args.seed)
    stats.update(steps=args.steps, batch=args.batch, seed=args.seed, threads=args.threads,
                 train_seconds=round(time.time() - t0, 1), final_loss=history[-1][1],
                 torch=torch.__version__)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_stylegan(G, args.out)
    print(json.dumps(stats, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
