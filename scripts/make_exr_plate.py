#!/usr/bin/env python3
"""Make the small procedural EXR plate shipped with ``workflows/exr_plate_translate.json``.

``workflows/inputs/gan_pack_plate/plate.1001.exr`` ... ``plate.1004.exr``: a daylight landscape (the scenes the
bundled day-to-night translator knows: sky, sun, hills, houses) with a slow camera pan, stored as a VFX plate:
scene-linear **ACEScg**, half float, ZIP, R G B A, frame numbers from 1001. The sun is a real highlight
(about 8x diffuse white, far above display white) and the sky near it goes above 1.0, so the plate exercises
what a display-referred network cannot see. Deterministic; no download.

    python scripts/make_exr_plate.py            # writes the plate when it is missing
    python scripts/make_exr_plate.py --force    # rewrites it
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

PLATE_FOLDER = "gan_pack_plate"
PLATE_PATTERN = "plate.####.exr"
FIRST_FRAME = 1001
FRAMES = 4
SIZE = (256, 160)   # width, height of a frame
PAN = 6             # pixels the camera moves per frame
SUN_GAIN = 8.0      # scene-linear value of the sun's core (display white is 1.0)
DEFAULT_ROOT = REPO / "workflows" / "inputs"


def plate_paths(root: Path = DEFAULT_ROOT) -> List[Path]:
    return [root / PLATE_FOLDER / f"plate.{FIRST_FRAME + i:04d}.exr" for i in range(FRAMES)]


def make_plate_frames():
    """(ACEScg frames float32 [N, H, W, 3], alpha [N, H, W]) of the plate."""
    import numpy as np
    import torch

    from models.colour import convert_colourspace
    from scripts.train_translators import day_night_pair

    w, h = SIZE
    day, _ = day_night_pair(np.random.RandomState([11, 0]), (w + PAN * (FRAMES - 1), h))
    display = np.asarray(day, dtype=np.float32) / 255.0                        # sRGB-encoded display values
    # where the painted sun is: the warm disc of the picture (bright red and green, little blue)
    sun = (display[..., 0] > 0.95) & (display[..., 1] > 0.75) & (display[..., 2] < 0.4)
    linear = convert_colourspace(display, "sRGB - Display", "ACEScg")         # display -> scene-linear ACEScg
    if sun.any():
        ys, xs = np.nonzero(sun)
        cy, cx, r = ys.mean(), xs.mean(), max(2.0, np.sqrt(sun.sum() / np.pi))
        yy, xx = np.mgrid[0:linear.shape[0], 0:linear.shape[1]]
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) / r
        glow = (SUN_GAIN - 1.0) * np.exp(-0.5 * (d / 0.6) ** 2) + 0.6 * np.exp(-0.5 * (d / 3.0) ** 2)
        sky = linear[..., 2] > linear[..., 1]                                  # bloom on the sky and the sun only
        linear = linear * (1.0 + glow[..., None] * (sky | sun)[..., None])
    frames = np.stack([linear[:, i * PAN:i * PAN + w] for i in range(FRAMES)])
    frames = torch.from_numpy(np.ascontiguousarray(frames.astype(np.float16).astype(np.float32)))
    alpha = torch.ones(frames.shape[:3])
    return frames, alpha


def make_plate(root: Path = DEFAULT_ROOT, force: bool = False) -> List[Path]:
    from models.sequence import save_image_sequence

    paths = plate_paths(root)
    if not force and all(p.is_file() for p in paths):
        return paths
    frames, alpha = make_plate_frames()
    return save_image_sequence(frames, root / PLATE_FOLDER, PLATE_PATTERN,
                               frame_numbers=range(FIRST_FRAME, FIRST_FRAME + FRAMES), alpha=alpha, bit_depth=16,
                               compression="zip")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--force", action="store_true", help="rewrite the plate even when it exists")
    ap.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="input folder to write gan_pack_plate/ into")
    ns = ap.parse_args(argv)
    paths = make_plate(ns.root, ns.force)
    total = sum(p.stat().st_size for p in paths)
    for p in paths:
        print(f"{p.relative_to(REPO) if p.is_relative_to(REPO) else p}  {p.stat().st_size / 1024:.1f} KiB")
    print(f"{len(paths)} frames, {total / 1024:.1f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
