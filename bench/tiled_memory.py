#!/usr/bin/env python3
"""Peak host memory of one tiled 3840x2160 translation, measured in a fresh process.

A process that has already run other cases holds freed memory it can reuse, so its resident-set growth
understates what a render job needs; this script is started on its own (by the benchmark's translator group,
or by hand) and prints one JSON line:

    python bench/tiled_memory.py --arch unet256 --tile 512 [--exact]

``peak_mb``: resident-set high-water mark (VmHWM) above the level after the model and the input frame were
made (what the translation itself adds: the inference copy of the weights, kept activations, strips, the
output). ``--exact`` then also runs the untiled network on the same frame and reports the largest output
difference in 1/255 (after the peak was read, so it does not count towards it).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", choices=("resnet9", "unet256"), default="unet256")
    ap.add_argument("--tile", type=int, default=512)
    ap.add_argument("--size", default="3840x2160", help="WIDTHxHEIGHT")
    ap.add_argument("--exact", action="store_true", help="also compare with the untiled result")
    args = ap.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))

    import torch

    from bench.bench_translator import build, frames
    from models import translate

    net = build(args.arch)
    images = frames(1, h, w)
    Path("/proc/self/clear_refs").write_text("5")   # reset VmHWM to the current resident set
    start = _kb("VmRSS")
    t0 = time.perf_counter()
    tiled = translate(net, images, tile_size=args.tile)
    seconds = time.perf_counter() - t0
    peak_mb = (_kb("VmHWM") - start) / 1024
    result = {"arch": args.arch, "size": f"{w}x{h}", "tile": args.tile, "seconds": seconds, "peak_mb": peak_mb,
              "threads": torch.get_num_threads()}
    if args.exact:
        full = translate(net, images)
        result["max_err_255"] = float((tiled - full).abs().max()) * 255
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
