"""Pressing Run again re-runs nothing: the pack's seeds are never randomised after a run (no "control after
generate" widget), an unchanged prompt is served from ComfyUI's cache, and changing a seed that the node's
mode does not use (Translate Image in eval mode, Synthesize with const noise, Style Transfer with a fast
network) does not run the network again. Checked on a real server: ``execution_cached`` in /history and the
progress messages each node sends while it computes."""
from __future__ import annotations

import copy
import re

import numpy as np
from PIL import Image

from integration import style_files
from integration.translator_reference import BUNDLED

PIX2PIX = "pix2pix/" + (BUNDLED / "pix2pix" / "outlines2shapes_unet5_bn.safetensors").name


def _run(server, prompt: dict, node: str):
    """(history entry, progress messages of ``node``, ids of the nodes served from the cache)."""
    entry, progress = server.run_with_progress(prompt, node)
    cached = set()
    for kind, data in entry["status"]["messages"]:
        if kind == "execution_cached":
            cached |= set(data["nodes"])
    return entry, progress, cached


def _pixels(server, entry, prefix: str) -> np.ndarray:
    files = [f for f in server.output_files(entry) if re.fullmatch(re.escape(prefix.split("/")[-1]) + r"_\d+_\.png", f.name)]
    assert len(files) == 1, files
    return np.asarray(Image.open(files[0])).astype(int)


def _with(prompt: dict, node: str, prefix: str, **inputs) -> dict:
    p = copy.deepcopy(prompt)
    p[node]["inputs"].update(inputs)
    p["save"]["inputs"]["filename_prefix"] = prefix
    return p


def test_no_pack_seed_is_randomised_after_a_run(object_info):
    seeds = {(name, key): spec for name, d in object_info.items() if name.startswith("GANPack")
             for group in ("required", "optional") for key, spec in (d["input"].get(group) or {}).items()
             if "seed" in key and spec[0] == "INT"}
    assert len(seeds) >= 5, sorted(seeds)  # translate, train, synthesize, project, style transfer
    randomised = [k for k, spec in seeds.items() if spec[1].get("control_after_generate", True) is not False]
    assert not randomised, f"seed inputs that the frontend would randomise after every run: {randomised}"


def test_translate_reruns_nothing_and_ignores_the_seed_in_eval_mode(comfy_server):
    prompt = {
        "img": {"class_type": "LoadImage", "inputs": {"image": "gan_pack_outlines.png"}},
        "load": {"class_type": "GANPackLoadTranslator", "inputs": {"model_name": PIX2PIX, "direction": "auto"}},
        "run": {"class_type": "GANPackTranslate", "inputs": {
            "translator": ["load", 0], "image": ["img", 0], "tile_size": 0, "tile_overlap": 0, "mode": "eval",
            "seed": 0, "resize_to_train_size": False, "precision": "float32", "batch_size": 4}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["run", 0], "filename_prefix": "rerun/eval0"}},
    }
    first, progress, _ = _run(comfy_server, prompt, "run")
    assert progress, "Translate Image sent no progress while translating"
    # the same prompt again: every node comes from the cache, nothing computes
    _, progress, cached = _run(comfy_server, prompt, "run")
    assert cached == set(prompt) and not progress, (cached, progress)
    # another seed in eval mode: the node is asked again (its input changed) but hands back the last result
    second, progress, cached = _run(comfy_server, _with(prompt, "run", "rerun/eval7", seed=7), "run")
    assert {"img", "load"} <= cached and "run" not in cached, cached
    assert progress == [], f"eval mode translated again for a new seed: {progress}"
    assert np.array_equal(_pixels(comfy_server, second, "rerun/eval7"), _pixels(comfy_server, first, "rerun/eval0"))
    # reference mode uses the seed (dropout): a new seed runs the network again
    _, progress, _ = _run(comfy_server, _with(prompt, "run", "rerun/ref7", mode="reference", seed=7), "run")
    assert progress
    _, progress, _ = _run(comfy_server, _with(prompt, "run", "rerun/ref8", mode="reference", seed=8), "run")
    assert progress, "reference mode did not run again for a new seed"
    # and back in eval mode with an unchanged image the result is computed again (the reference run replaced it)
    _, progress, _ = _run(comfy_server, _with(prompt, "run", "rerun/eval9", seed=9), "run")
    assert progress


def test_synthesize_ignores_the_seed_unless_noise_is_random(comfy_server):
    prompt = {
        "model": {"class_type": "GANPackLoadStyleGAN", "inputs": {"model_name": "gan_pack_islands64.safetensors"}},
        "lat": {"class_type": "GANPackStyleGANLatent", "inputs": {
            "stylegan": ["model", 0], "seeds": "1-2", "truncation_psi": 1.0, "truncation_cutoff": 0,
            "class_index": 0}},
        "run": {"class_type": "GANPackStyleGANSynthesize", "inputs": {
            "stylegan": ["model", 0], "latent": ["lat", 0], "noise_mode": "const", "seed": 0, "batch_size": 8}},
        "grid": {"class_type": "GANPackStyleGANImageGrid", "inputs": {"images": ["run", 0], "columns": 2,
                                                                       "fill": 0.0}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["grid", 0], "filename_prefix": "rerun/c0"}},
    }
    first, progress, _ = _run(comfy_server, prompt, "run")
    assert progress
    second, progress, cached = _run(comfy_server, _with(prompt, "run", "rerun/c5", seed=5), "run")
    assert "run" not in cached and progress == [], progress
    assert np.array_equal(_pixels(comfy_server, second, "rerun/c5"), _pixels(comfy_server, first, "rerun/c0"))
    _, progress, _ = _run(comfy_server, _with(prompt, "run", "rerun/r5", noise_mode="random", seed=5), "run")
    assert progress
    _, progress, _ = _run(comfy_server, _with(prompt, "run", "rerun/r6", noise_mode="random", seed=6), "run")
    assert progress, "random noise did not run again for a new seed"


def test_style_transfer_ignores_the_seed_of_a_fast_network(comfy_server, models_root):
    style_files.install(models_root, "mosaic.pth")
    prompt = {
        "img": {"class_type": "LoadImage", "inputs": {"image": "gan_pack_outlines.png"}},
        "net": {"class_type": "GANPackLoadStyleNetwork",
                "inputs": {"network_name": "mosaic.pth", "adain_partner": "auto", "vgg_convention": "auto"}},
        "run": {"class_type": "GANPackStyleTransfer", "inputs": {
            "style_network": ["net", 0], "content": ["img", 0], "method": "auto", "strength": 1.0,
            "iterations": 3, "size": 64, "preserve_color": "none", "frame_consistency": True,
            "temporal_blend": 0.0, "seed": 0, "precision": "auto"}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["run", 0], "filename_prefix": "rerun/f0"}},
    }
    _, progress, _ = _run(comfy_server, prompt, "run")
    assert progress
    _, progress, cached = _run(comfy_server, _with(prompt, "run", "rerun/f3", seed=3), "run")
    assert "run" not in cached and progress == [], progress
    # a setting the method does use runs it again
    _, progress, _ = _run(comfy_server, _with(prompt, "run", "rerun/f3s", seed=3, strength=0.5), "run")
    assert progress
