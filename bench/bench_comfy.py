"""End to end through ComfyUI: workflow wall time vs the model time alone (= node overhead).

Starts a real ComfyUI server (``scripts.comfy_client.ComfyServer``, CPU, its own temp folders; ComfyUI from
``COMFYUI_DIR``, as ``scripts/dev.py bench`` sets it), runs ``workflows/pix2pix_image.json`` (Load Image ->
Load Translator -> Translate -> Save Image; the bundled example model) and times:

* ``workflow cold``: the first run (server warm, model loaded from disk inside the run);
* ``workflow warm``: later runs with a changed seed so ComfyUI re-executes the translate and save nodes
  (the model stays cached in the loader node);
* ``model only``: ``translate`` on the same image and model in this process.

Overhead = warm workflow wall time - model time (queueing, websocket/history polling, image conversion,
PNG encoding and writing). Without the pack's translator nodes the ``image_channels`` workflow is timed.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.run import REPO, Row, emit, group


def _comfy_dir() -> Path:
    from scripts.comfy_client import default_comfy_dir

    env = os.environ.get("COMFYUI_DIR")
    if env:
        return Path(env)
    local = REPO / ".comfyui" / "ComfyUI"
    return local if local.is_dir() else default_comfy_dir()


def _bump_seed(prompt: dict, i: int) -> bool:
    changed = False
    for node in prompt.values():
        if node.get("class_type", "").startswith("GANPack") and "seed" in node.get("inputs", {}):
            node["inputs"]["seed"] = i
            changed = True
    return changed


@group("comfy")
def run(args, device):
    from scripts.comfy_client import ComfyServer
    from scripts.workflow_api import load_workflow, ui_to_api

    comfy = _comfy_dir()
    if not (comfy / "main.py").is_file():
        print(f"  comfy: skipped -- no ComfyUI at {comfy} (run `python3 scripts/dev.py setup` or set COMFYUI_DIR)")
        return
    workdir = Path(tempfile.mkdtemp(prefix="gan-pack-bench-"))
    server = ComfyServer(comfy, workdir=workdir, cpu=device.type != "cuda")
    try:
        t0 = time.perf_counter()
        server.start()
        startup = time.perf_counter() - t0
        for f in (REPO / "workflows" / "inputs").glob("*"):
            if f.is_file() and not (server.input_dir / f.name).exists():
                shutil.copy(f, server.input_dir / f.name)
        info = server.object_info()
        name = "pix2pix_image" if "GANPackTranslate" in info else "image_channels"
        prompt = ui_to_api(load_workflow(REPO / "workflows" / f"{name}.json"), info)
        model_fn, size = None, "example"
        if name == "pix2pix_image":
            from PIL import Image

            from models import load_translator, translate

            load = next(n for n in prompt.values() if n["class_type"] == "GANPackLoadTranslator")
            model_name = next(v for v in load["inputs"].values() if isinstance(v, str) and v.endswith(".safetensors"))
            net = load_translator(REPO / "models" / "bundled" / model_name)
            img_node = next(n for n in prompt.values() if n["class_type"] == "LoadImage")
            img = np.array(Image.open(server.input_dir / img_node["inputs"]["image"]).convert("RGB"))
            images = torch.from_numpy(img).float()[None] / 255
            size = f"{img.shape[1]}x{img.shape[0]}"
            model_fn = lambda: translate(net, images)  # noqa: E731
            model_fn()  # prepared copy made outside the timings
        # interleaved: workflow run, then the model alone, so load changes hit both alike
        walls, models = [], []
        for i in range(3 if args.quick else 5):
            _bump_seed(prompt, 1000 + i)
            t0 = time.perf_counter()
            server.run(json.loads(json.dumps(prompt)))
            walls.append(time.perf_counter() - t0)
            if model_fn is not None:
                t0 = time.perf_counter()
                model_fn()
                models.append(time.perf_counter() - t0)
        cold, warm = walls[0], min(walls[1:])
        model_t = min(models[1:]) if models else None
        note = f"server start {startup:.0f} s; cold run (model load) {cold:.2f} s"
        if model_t is not None:
            note += f"; model alone {model_t * 1000:.0f} ms; node overhead {max(0.0, warm - model_t) * 1000:.0f} ms"
        emit(Row("comfy", f"{name} {size}", "workflow", 1 / warm, float("nan"),
                 None, note=note,
                 extra={"workflow_warm_s": warm, "workflow_cold_s": cold,
                        "model_s": model_t if model_t is not None else float("nan")}))
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
