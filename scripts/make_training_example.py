#!/usr/bin/env python3
"""Draw the small procedural training set the "train Pix2Pix from folders" workflow uses (no download).

    python scripts/make_training_example.py      # -> workflows/inputs/gan_pack_train_outlines/train/*.png

Each file is an aligned pair as the reference's pix2pix data sets are: ``A|B`` side by side, A an outline
drawing of circles, rectangles and triangles, B the same drawing filled (circles red, rectangles blue, triangles
green) -- the task of the bundled example Pix2Pix model, drawn by ``scripts/train_translators.py``'s
``outline_pair`` at the same absolute shape sizes, so a model trained on it translates
``workflows/inputs/gan_pack_outlines.png``. Deterministic from ``--seed``; about 60 KB in all.
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.train_translators import outline_pair  # noqa: E402

OUT = REPO / "workflows" / "inputs" / "gan_pack_train_outlines"


def make(out: Path = OUT, count: int = 24, size: int = 80, seed: int = 20261204) -> Path:
    folder = out / "train"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for i in range(count):
        src, dst = outline_pair(np.random.RandomState([seed, i]), size=(size, size))
        pair = Image.new("RGB", (2 * size, size))
        pair.paste(src, (0, 0))
        pair.paste(dst, (size, 0))
        pair.save(folder / f"{i:03d}.png", optimize=True)
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--size", type=int, default=80, help="side of each half (A and B), pixels")
    ap.add_argument("--seed", type=int, default=20261204)
    ns = ap.parse_args()
    folder = make(Path(ns.out), ns.count, ns.size, ns.seed)
    total = sum(p.stat().st_size for p in folder.iterdir())
    print(f"wrote {ns.count} pairs to {folder} ({total / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
