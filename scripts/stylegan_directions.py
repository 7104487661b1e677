"""What do a StyleGAN's first editing directions do? Measures it on rendered pictures.

For each of the first ``--count`` SeFa (or GANSpace) directions, every seed's latent is moved by -s and +s
(sigma units: s standard deviations of the model's W along the direction) and rendered; printed per direction:

* the eigenvalue (SeFa) / sigma (GANSpace) and where the direction acts: the share of the style change
  ``|A_l d|^2`` that falls in the coarse / middle / fine layers;
* ``change``: mean absolute pixel change ([0, 1] units) from the original picture at +s;
* for two-colour pictures (the bundled islands model): the picture split into a bright (land) and a dark (sea)
  colour by 2-means; ``land`` = change of the land fraction from -s to +s (percentage points), ``land rgb`` /
  ``sea rgb`` = change of the two colours from -s to +s, ``IoU`` = layout similarity (IoU of the land masks) of the
  -s and +s pictures (1 = same layout).

Usage::

    python scripts/stylegan_directions.py models/bundled/stylegan/gan_pack_islands64.safetensors --count 6
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from models.stylegan import layer_presets, load_stylegan, seeds_to_ws  # noqa: E402
from models.stylegan import editing as ed  # noqa: E402


def render(G, ws: torch.Tensor) -> np.ndarray:
    """ws -> float pictures [N, H, W, 3] in [0, 1] ((x + 1) / 2 clamped, as the nodes output them)."""
    with torch.no_grad():
        img = G.synthesis(ws, noise_mode="const")[:, :3]
    return ((img + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy().astype(np.float64)


def land_sea(img: np.ndarray, pool: int = 2):
    """(land mask [h, w] bool, land colour [3], sea colour [3]) by 2-means on pooled pixels; land = the brighter."""
    h, w = img.shape[0] // pool, img.shape[1] // pool
    x = img[:h * pool, :w * pool].reshape(h, pool, w, pool, 3).mean((1, 3)).reshape(-1, 3)
    lum = x.sum(1)
    centres = np.stack([x[lum.argmin()], x[lum.argmax()]])
    for _ in range(20):
        label = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([x[label == k].mean(0) if (label == k).any() else centres[k] for k in range(2)])
    bright = int(centres.sum(1).argmax())
    return (label == bright).reshape(h, w), centres[bright], centres[1 - bright]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def layer_shares(G, direction: torch.Tensor) -> dict:
    """Share of the style change |A_l d|^2 (rows unit-normalised, like SeFa) in each preset's layers."""
    energy = np.zeros(G.num_ws)
    for ws_index, _, affine, is_torgb in ed.style_layers(G):
        if is_torgb:
            continue
        A = affine.weight.detach().double()
        A = A / A.norm(dim=1, keepdim=True).clamp_min(1e-30)
        energy[ws_index] += float(((A @ direction.double()) ** 2).sum())
    total = energy.sum() or 1.0
    return {k: float(energy[v].sum() / total) for k, v in layer_presets(G.num_ws).items() if k != "all"}


def measure(G, method: str = "sefa", count: int = 4, seeds: str = "0-63", strength: float = 3.0,
            n_samples: int = 10000, layers=None, cache_dir=None) -> list:
    """One dict of figures per direction; ``layers``: SeFa computed on (and edits applied to) those ws only."""
    r = ed.cached_directions(G, method, layers=layers, n_samples=n_samples, cache_dir=cache_dir)
    _, ws = seeds_to_ws(G, seeds, truncation_psi=1.0)
    base = render(G, ws)
    rows = []
    for i in range(count):
        d = r["directions"][i] * r["sigmas"][i]
        lo = render(G, ed.edit_latent(ws, d, -strength, layers))
        hi = render(G, ed.edit_latent(ws, d, strength, layers))
        stats = []
        for a, b in zip(lo, hi):
            ma, la, sa = land_sea(a)
            mb, lb, sb = land_sea(b)
            stats.append((mb.mean() - ma.mean(), *(lb - la), *(sb - sa), iou(ma, mb)))
        s = np.array(stats)
        rows.append({"index": i, "value": float(r["values"][i]), "sigma": float(r["sigmas"][i]),
                     "layers": layer_shares(G, r["directions"][i]), "change": float(np.abs(hi - base).mean()),
                     "land": float(s[:, 0].mean()), "land_rgb": s[:, 1:4].mean(0), "sea_rgb": s[:, 4:7].mean(0),
                     "iou": float(s[:, 7].mean()), "land_sd": float(s[:, 0].std())})
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="StyleGAN file (.pkl, .pt, .safetensors)")
    ap.add_argument("--method", choices=["sefa", "ganspace"], default="sefa")
    ap.add_argument("--count", type=int, default=4, help="directions to measure (the first ones)")
    ap.add_argument("--seeds", default="0-63", help="latents to edit (seeds, psi 1)")
    ap.add_argument("--strength", type=float, default=3.0, help="edit strength in sigma units (-s and +s)")
    ap.add_argument("--layers", default=None, help="SeFa on these ws only (coarse, fine, 0-3 ...), edits too")
    ap.add_argument("--samples", type=int, default=10000, help="W samples for sigma units / GANSpace")
    ns = ap.parse_args(argv)
    G = load_stylegan(ns.model, device="cpu")
    rows = measure(G, ns.method, ns.count, ns.seeds, ns.strength, ns.samples, ns.layers)
    where = f" on ws {ns.layers}" if ns.layers else ""
    print(f"{ns.method} directions{where} of {Path(ns.model).name}, seeds {ns.seeds}, strength +-{ns.strength:g} "
          f"sigma")
    print("| dir | value | sigma | style change coarse/middle/fine | change at +s | land fraction -s->+s (pp) | "
          "land rgb -s->+s | sea rgb -s->+s | layout IoU -s/+s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        sh = r["layers"]
        rgb = lambda v: " ".join(f"{x:+.3f}" for x in v)  # noqa: E731
        print(f"| {r['index']} | {r['value']:.3g} | {r['sigma']:.3g} | {sh['coarse']:.2f}/{sh['middle']:.2f}/"
              f"{sh['fine']:.2f} | {r['change']:.3f} | {100 * r['land']:+.1f} (sd {100 * r['land_sd']:.1f}) | "
              f"{rgb(r['land_rgb'])} | {rgb(r['sea_rgb'])} | {r['iou']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
