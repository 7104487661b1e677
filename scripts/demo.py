"""The pack's main job on its bundled defaults, headless: render the shipped workflows through a real ComfyUI
and collect the results in ``output/demo/``.

Run it through ``python3 scripts/dev.py demo`` (which provisions ComfyUI first).
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.comfy_client import ComfyServer  # noqa: E402
from scripts.workflow_api import load_workflow, ui_to_api  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(REPO / "output" / "demo"), help="where the results go")
    ap.add_argument("workflows", nargs="*", help="workflow files (default: every file in workflows/)")
    ns = ap.parse_args(argv)
    out = Path(ns.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in ns.workflows] or sorted((REPO / "workflows").glob("*.json"))
    t0 = time.monotonic()
    written = []
    with ComfyServer() as server:
        info = server.object_info()
        for path in paths:
            t = time.monotonic()
            entry = server.run(ui_to_api(load_workflow(path), info), timeout=3600)
            for f in server.output_files(entry):
                dest = out / path.stem / f.name
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
                written.append(dest)
            print(f"[demo] {path.name}: {time.monotonic() - t:.1f} s", flush=True)
    print(f"[demo] {len(written)} images from {len(paths)} workflows in {time.monotonic() - t0:.0f} s -> {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
