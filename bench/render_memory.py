#!/usr/bin/env python3
"""Peak memory of a headless shot render does not depend on the shot's length.

Generates a procedural 1080p shot (moving shapes over a gradient, PNG frames) in a temporary folder, then renders
its first 100 and all 500 frames through ``scripts/render.py`` (a fresh local ComfyUI server per run, chunks of
``--chunk`` frames) with a cheap workflow: Load Image Sequence -> a small ResNet translator (Load Translator +
Translate Image) -> Save Image Sequence (``--workflow invert`` uses Image Channels instead, for a faster run).
Prints, per shot length, the peak resident memory (VmHWM) of the ComfyUI server process and of the renderer,
frames/s and a check that every frame was written and decodes.

    python bench/render_memory.py                       # 100 vs 500 frames at 1920x1080
    python bench/render_memory.py --lengths 50,200 --size 1280x720 --workflow invert
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def make_shot(folder: Path, count: int, width: int, height: int) -> None:
    """Procedural frames: a drifting colour gradient with moving discs (cheap, deterministic, not flat)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= width
    y /= height
    for i in range(count):
        name = folder / f"plate_{i + 1:04d}.png"
        if name.exists():
            continue
        t = i / 24.0
        img = np.stack([0.5 + 0.5 * np.sin(6.28 * (x + 0.1 * t)), 0.5 + 0.5 * np.sin(6.28 * (y * 1.3 - 0.07 * t)),
                        0.5 + 0.5 * np.cos(6.28 * (x * y + 0.05 * t))], axis=-1)
        for k in range(4):
            cx = 0.5 + 0.35 * math.cos(t * (0.6 + 0.2 * k) + k)
            cy = 0.5 + 0.35 * math.sin(t * (0.5 + 0.15 * k) + 2 * k)
            disc = ((x - cx) * width / height) ** 2 + (y - cy) ** 2 < (0.05 + 0.02 * k) ** 2
            img[disc] = (k / 4.0, 1 - k / 4.0, 0.5)
        Image.fromarray((img * 255).astype(np.uint8)).save(name, compress_level=1)


def make_translator(models_root: Path) -> str:
    import torch

    from models.translator import ResnetGenerator, save_translator

    torch.manual_seed(0)
    g = ResnetGenerator(ngf=4, n_blocks=1, norm="instance").eval()
    (models_root / "pix2pix").mkdir(parents=True, exist_ok=True)
    save_translator(g, models_root / "pix2pix" / "bench_small.safetensors")
    return "bench_small.safetensors"


def workflow(kind: str, shot: Path, out: str) -> dict:
    """API prompt; inputs of the translator nodes that are not set here take their defaults (filled by the
    renderer's UI->API path when the workflow is given in UI format, so this one fills them from object_info)."""
    wf = {"1": {"class_type": "GANPackLoadImageSequence",
                "inputs": {"folder": str(shot), "pattern": "plate_%04d.png", "first_frame": -1, "last_frame": -1,
                           "step": 1}},
          "9": {"class_type": "GANPackSaveImageSequence",
                "inputs": {"images": ["3", 0], "frame_numbers": ["1", 1], "folder": out, "pattern": "out_%04d.png",
                           "bit_depth": "8", "skip_existing": True, "start_number": 1}}}
    if kind == "invert":
        wf["3"] = {"class_type": "GANPackImageChannels", "inputs": {"image": ["1", 0], "mode": "invert"}}
    else:
        wf["2"] = {"class_type": "GANPackLoadTranslator", "inputs": {"model_name": "pix2pix/bench_small.safetensors"}}
        wf["3"] = {"class_type": "GANPackTranslate", "inputs": {"translator": ["2", 0], "image": ["1", 0]}}
    return wf


def fill_defaults(prompt: dict, object_info: dict) -> dict:
    for node in prompt.values():
        spec = object_info[node["class_type"]]["input"]
        for group in ("required", "optional"):
            for name, s in (spec.get(group) or {}).items():
                if name in node["inputs"]:
                    continue
                opts = s[1] if len(s) > 1 and isinstance(s[1], dict) else {}
                if isinstance(s[0], list) and s[0]:
                    if name == "model_name":
                        continue
                    node["inputs"][name] = opts.get("default", s[0][0])
                elif "default" in opts:
                    node["inputs"][name] = opts["default"]
    return prompt


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", default="100,500", help="shot lengths to compare")
    ap.add_argument("--size", default="1920x1080", help="frame size WxH")
    ap.add_argument("--chunk", type=int, default=8, help="frames per prompt")
    ap.add_argument("--workflow", choices=["translator", "invert"], default="translator")
    ap.add_argument("--workdir", help="keep frames here (default: a temporary folder, removed afterwards)")
    ap.add_argument("--json", help="write the figures here")
    ns = ap.parse_args(argv)
    lengths = [int(v) for v in ns.lengths.split(",")]
    width, height = (int(v) for v in ns.size.lower().split("x"))
    work = Path(ns.workdir) if ns.workdir else Path(tempfile.mkdtemp(prefix="gan-pack-render-bench-"))
    shot = work / "shot"
    t = time.monotonic()
    make_shot(shot, max(lengths), width, height)
    print(f"[bench] {max(lengths)} frames of {width}x{height} in {shot} ({time.monotonic() - t:.0f} s)", flush=True)

    extra = []
    if ns.workflow == "translator":
        models_root = work / "models"
        make_translator(models_root)
        yaml = work / "extra_model_paths.yaml"
        yaml.write_text(f"bench:\n    base_path: {models_root}\n    pix2pix: pix2pix\n")
        extra = ["--extra-model-paths", str(yaml)]

    from scripts.comfy_client import ComfyServer

    with ComfyServer(extra_model_paths=[work / "extra_model_paths.yaml"] if extra else None) as s:
        info = s.object_info()
    results = []
    try:
        for n in lengths:
            out = f"out_{n}"
            wf = work / f"wf_{n}.json"
            wf.write_text(json.dumps(fill_defaults(workflow(ns.workflow, shot, out), info)))
            summary = work / f"summary_{n}.json"
            shutil.rmtree(work / "render" / "output" / out, ignore_errors=True)
            cmd = [sys.executable, str(REPO / "scripts" / "render.py"), str(wf), "--local-servers", "1",
                   "--chunk", str(ns.chunk), "--last", str(n), "--workdir", str(work / "render"),
                   "--summary-json", str(summary), "--cpu", *extra]
            t = time.monotonic()
            proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if proc.returncode != 0:
                print(proc.stdout[-4000:])
                raise SystemExit(f"render of {n} frames failed ({proc.returncode})")
            r = json.loads(summary.read_text())
            from models.sequence import existing_frames, read_image

            out_dir = Path(r["output"])
            frames = existing_frames(out_dir, "out_%04d.png")
            for f in sorted(frames)[:: max(1, len(frames) // 10)]:
                read_image(out_dir / f"out_{f:04d}.png")
            (server_peak,) = r["server_peak_rss_mb"].values()
            row = {"frames": n, "written": len(frames), "server_peak_rss_mb": round(server_peak, 1),
                   "renderer_peak_rss_mb": round(r["renderer_peak_rss_mb"], 1), "frames_per_second":
                   r["frames_per_second"], "seconds": round(time.monotonic() - t, 1)}
            results.append(row)
            print(f"[bench] {n:4d} frames: server peak RSS {row['server_peak_rss_mb']:7.1f} MiB, renderer "
                  f"{row['renderer_peak_rss_mb']:6.1f} MiB, {row['frames_per_second']:.2f} frames/s, "
                  f"{len(frames)} frames written", flush=True)
            shutil.rmtree(out_dir, ignore_errors=True)
    finally:
        if not ns.workdir:
            shutil.rmtree(work, ignore_errors=True)
    a, b = results[0], results[-1]
    growth = b["server_peak_rss_mb"] - a["server_peak_rss_mb"]
    print(f"[bench] {ns.workflow} workflow, {width}x{height}, chunks of {ns.chunk}: server peak {a['server_peak_rss_mb']}"
          f" MiB for {a['frames']} frames vs {b['server_peak_rss_mb']} MiB for {b['frames']} frames "
          f"({growth:+.1f} MiB for {b['frames'] / a['frames']:.0f}x the frames)")
    if ns.json:
        Path(ns.json).write_text(json.dumps({"workflow": ns.workflow, "size": [width, height], "chunk": ns.chunk,
                                             "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
