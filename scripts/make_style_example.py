"""Make ``workflows/inputs/gan_pack_style.png``: a small procedurally painted style image for the style
transfer workflows (thick brush strokes that follow swirling flow lines over a warm/cool ground, in the spirit
of post-impressionist paintings). Deterministic: the same file for the same seed and Pillow version.

    python scripts/make_style_example.py [--size 256] [--seed 5] [--out workflows/inputs/gan_pack_style.png]
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "workflows" / "inputs" / "gan_pack_style.png"

# ultramarine, cobalt, sky, cream, ochre, cadmium orange, viridian, deep blue
PALETTE = np.array([(28, 48, 120), (40, 86, 168), (104, 150, 206), (236, 224, 170), (214, 170, 60),
                    (226, 120, 40), (46, 120, 96), (16, 24, 64)], dtype=np.float64)


def flow_angle(x: float, y: float, vortices) -> float:
    """Direction of the swirl field at (x, y): a sum of vortices plus a gentle horizontal drift."""
    vx, vy = 0.6, 0.15 * math.sin(y * 0.05)
    for cx, cy, strength, radius in vortices:
        dx, dy = x - cx, y - cy
        r2 = dx * dx + dy * dy + 1.0
        falloff = strength * math.exp(-r2 / (2 * radius * radius))
        vx += -dy / math.sqrt(r2) * falloff
        vy += dx / math.sqrt(r2) * falloff
    return math.atan2(vy, vx)


def paint(size: int = 256, seed: int = 5) -> Image.Image:
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    # ground: cool sky at the top, warm earth at the bottom
    top, bottom = PALETTE[1], PALETTE[4]
    ground = (1 - yy)[..., None] * top + yy[..., None] * bottom
    img = Image.fromarray(ground.clip(0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    vortices = [(size * 0.3, size * 0.3, 2.5, size * 0.18), (size * 0.72, size * 0.42, -2.0, size * 0.15),
                (size * 0.5, size * 0.8, 1.5, size * 0.22)]
    for _ in range(int(size * size / 55)):
        x, y = rng.uniform(0, size), rng.uniform(0, size)
        # colour: mostly by height (sky / horizon / field), with neighbours on the palette mixed in
        band = min(len(PALETTE) - 1, int(rng.normal(y / size * 5.0, 1.2)) % len(PALETTE))
        colour = PALETTE[band] * rng.uniform(0.8, 1.15) + rng.normal(0, 12, 3)
        colour = tuple(int(c) for c in colour.clip(0, 255))
        width = int(rng.randint(2, 6))
        points = [(x, y)]
        for _ in range(int(rng.randint(4, 12))):
            a = flow_angle(x, y, vortices) + rng.normal(0, 0.15)
            x, y = x + 2.5 * math.cos(a), y + 2.5 * math.sin(a)
            points.append((x, y))
        draw.line(points, fill=colour, width=width, joint="curve")
    # a light blur softens the pixel edges of the strokes like paint, then a little canvas grain
    img = img.filter(ImageFilter.GaussianBlur(0.6))
    grain = rng.normal(0, 4, (size, size, 1))
    return Image.fromarray((np.asarray(img, dtype=np.float64) + grain).clip(0, 255).astype(np.uint8), "RGB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    paint(args.size, args.seed).save(args.out, optimize=True)
    print("wrote", args.out, args.out.stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
