"""Style transfer nodes inside a real ComfyUI server: missing-file errors, public weight layouts accepted (and
other files refused) through the loader node, node output equal to the engine, Cancel during Gatys.

Weight files are tiny random stand-ins in the public key layouts (:mod:`integration.style_files`)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.comfy_client import ComfyExecutionError, ComfyPromptRejected
from scripts.workflow_api import load_workflow, ui_to_api

import integration.workflow_checks  # noqa: F401  (imports checks_style the circular-import-safe way)
from integration import style_files
from integration.checks_style import CHECKS, assert_matches_engine, load_png

REPO = Path(__file__).resolve().parents[2]
INPUTS = REPO / "workflows" / "inputs"
CROP = dict(width=64, height=48, x=200, y=150)  # a textured 64 x 48 piece of the example image (exact 8-bit values)


def transfer_prompt(network_name: str, prefix: str, *, method: str = "auto", iterations: int = 3, seed: int = 0,
                    style: bool = True, nid: str = "") -> dict:
    """LoadImage -> ImageCrop (content) + LoadImage (style) -> Load Style Network -> Style Transfer -> SaveImage."""
    p = {
        f"{nid}src": {"class_type": "LoadImage", "inputs": {"image": "gan_pack_example.png"}},
        f"{nid}crop": {"class_type": "ImageCrop", "inputs": {"image": [f"{nid}src", 0], **CROP}},
        f"{nid}style": {"class_type": "LoadImage", "inputs": {"image": "gan_pack_style.png"}},
        f"{nid}net": {"class_type": "GANPackLoadStyleNetwork",
                      "inputs": {"network_name": network_name, "adain_partner": "auto", "vgg_convention": "auto"}},
        f"{nid}run": {"class_type": "GANPackStyleTransfer", "inputs": {
            "style_network": [f"{nid}net", 0], "content": [f"{nid}crop", 0], "method": method, "strength": 1.0,
            "iterations": iterations, "size": 0, "preserve_color": "none", "frame_consistency": True,
            "temporal_blend": 0.0, "seed": seed, "precision": "auto"}},
        f"{nid}save": {"class_type": "SaveImage", "inputs": {"images": [f"{nid}run", 0], "filename_prefix": prefix}},
    }
    if style:
        p[f"{nid}run"]["inputs"]["style"] = [f"{nid}style", 0]
    return p


def content_image() -> torch.Tensor:
    img = load_png(INPUTS / "gan_pack_example.png")
    return img[:, CROP["y"]:CROP["y"] + CROP["height"], CROP["x"]:CROP["x"] + CROP["width"]]


def run_error(server, prompt) -> str:
    with pytest.raises(ComfyExecutionError) as info:
        server.run(prompt, timeout=300)
    return str(info.value)


def test_style_nodes_listed_without_weight_files(object_info):
    load, run = object_info["GANPackLoadStyleNetwork"], object_info["GANPackStyleTransfer"]
    assert load["category"] == run["category"] == "GAN/Style"
    assert load["output"] == ["GAN_STYLE_NETWORK"] and run["output"] == ["IMAGE"]
    assert isinstance(load["input"]["required"]["network_name"][0], list)
    assert run["input"]["required"]["method"][0] == ["auto", "gatys", "adain", "fast"]
    assert "style" in run["input"]["optional"]


def test_missing_file_names_file_and_folder_and_server_keeps_serving(comfy_server, models_root):
    folder = models_root / "style_transfer"
    with pytest.raises(ComfyPromptRejected) as info:
        comfy_server.queue(transfer_prompt("udnie.pth", "sty_missing/x"))
    msg = str(info.value)
    assert "'udnie.pth'" in msg and "ComfyUI/models/style_transfer/" in msg and str(folder) in msg, msg
    assert "fast_neural_style" in msg, msg  # where the file comes from
    # the standard names carry their source and, for torch.hub names, the SHA-256 prefix they embed
    with pytest.raises(ComfyPromptRejected) as info:
        comfy_server.queue(transfer_prompt("vgg19-d01eb7cb.pth", "sty_missing/y"))
    msg = str(info.value)
    assert "'vgg19-d01eb7cb.pth'" in msg and "SHA-256 starts with d01eb7cb" in msg and "jcjohnson" in msg, msg
    # an AdaIN decoder without its encoder beside it: the error names the encoder file and that folder
    style_files.write(folder / "lonely", "decoder.pth")
    msg = run_error(comfy_server, transfer_prompt("lonely/decoder.pth", "sty_missing/z"))
    assert "vgg_normalised.pth" in msg and "ComfyUI/models/style_transfer/lonely/" in msg, msg
    # the server keeps serving: a valid prompt runs right after
    assert comfy_server.alive()
    style_files.install(models_root, "candy.pth")
    entry = comfy_server.run(transfer_prompt("candy.pth", "sty_after_missing/ok"), timeout=300)
    assert len(comfy_server.output_files(entry)) == 1


def test_public_layouts_load_through_the_node_and_match_the_engine(comfy_server, models_root):
    from models.style import load_adain, load_style_network, style_transfer

    folder = models_root / "style_transfer" / "layouts"
    files = {
        "tv": style_files.write(folder, "vgg19-dcbb9e9d.pth", style_files.vgg19_torchvision()),
        "caffe": style_files.write(folder, "vgg19-d01eb7cb.pth", style_files.vgg19_caffe_jcjohnson()),
        "named": style_files.write(folder, "vgg_conv.safetensors", style_files.vgg19_named()),
        "adain": style_files.write(folder, "decoder.pth", style_files.adain_decoder()),
        "fast": style_files.write(folder, "mosaic.pth", style_files.transformer_net()),
    }
    style_files.write(folder, "vgg_normalised.pth", style_files.adain_vgg_normalised())
    prompt = {}
    for tag, path in files.items():
        prompt.update(transfer_prompt(f"layouts/{path.name}", f"sty_layouts/{tag}", nid=f"{tag}_"))
    entry = comfy_server.run(prompt, timeout=600)
    outputs = {f.name.split("_")[0]: np.asarray(Image.open(f))
               for f in comfy_server.output_files(entry)}
    assert set(outputs) == set(files), sorted(outputs)

    content, style = content_image(), load_png(INPUTS / "gan_pack_style.png")
    common = dict(iterations=3, seed=0, consistency=True, batch_size=1)
    nets = {tag: load_style_network(path) for tag, path in files.items()}
    assert (nets["tv"].kind, nets["tv"].convention) == ("vgg19", "torchvision")
    assert (nets["caffe"].kind, nets["caffe"].convention) == ("vgg19", "caffe")
    assert (nets["named"].kind, nets["named"].convention) == ("vgg19", "caffe")
    assert nets["adain"].kind == "adain_decoder" and nets["fast"].kind == "fast_style"
    pair = load_adain(folder / "vgg_normalised.pth", nets["adain"])
    expected = {tag: style_transfer(content, style, method="gatys", network=nets[tag], size=64, **common)
                for tag in ("tv", "caffe", "named")}
    expected["adain"] = style_transfer(content, style, method="adain", network=pair, **common)
    expected["fast"] = style_transfer(content, method="fast", network=nets["fast"], **common)
    for tag, out in outputs.items():
        assert_matches_engine([out], expected[tag], content, f"{tag} ({files[tag].name})")
    # the caffe file really ran with the caffe input convention (the torchvision reading gives other pixels)
    wrong = style_transfer(content, style, method="gatys",
                           network=load_style_network(files["caffe"], convention="torchvision"), size=64, **common)
    assert np.abs(outputs["caffe"][..., :3] / 255.0 - wrong[0].numpy()).max() > 4 / 255


def test_other_files_refused_clearly_through_the_node(comfy_server, models_root):
    folder = models_root / "style_transfer" / "not_style"
    style_files.write(folder, "latest_net_G.pth", style_files.pix2pix_resnet_generator())
    style_files.write(folder, "vgg16-397923af.pth", style_files.vgg16_torchvision())
    (folder / "broken.pth").write_bytes(bytes(range(256)) * 8)
    expectations = {"latest_net_G.pth": "Pix2Pix/CycleGAN ResNet generator",
                    "vgg16-397923af.pth": r"VGG-like but 13 conv layers (VGG-16?)",
                    "broken.pth": "not a PyTorch checkpoint or .safetensors file"}
    for name, text in expectations.items():
        msg = run_error(comfy_server, transfer_prompt(f"not_style/{name}", "sty_refused/x"))
        assert "GANPackLoadStyleNetwork" in msg and text in msg, (name, msg)
    # the right kind of file for the wrong method, and a method that needs a style image without one
    style_files.install(models_root, "mosaic.pth")
    msg = run_error(comfy_server, transfer_prompt("mosaic.pth", "sty_refused/y", method="gatys"))
    assert "vgg19-dcbb9e9d.pth" in msg and "ComfyUI/models/style_transfer/" in msg, msg
    style_files.install(models_root, "vgg19-dcbb9e9d.pth")
    msg = run_error(comfy_server, transfer_prompt("vgg19-dcbb9e9d.pth", "sty_refused/z", style=False))
    assert "connect an IMAGE to 'style'" in msg, msg
    assert comfy_server.alive()


def test_cancel_stops_gatys_between_iterations(comfy_server, models_root):
    style_files.install(models_root, "vgg19-dcbb9e9d.pth")
    # 10000 iterations would run for most of an hour: only Cancel can end this prompt in time
    pid = comfy_server.queue(transfer_prompt("vgg19-dcbb9e9d.pth", "sty_cancel/x", iterations=10000, seed=12345))
    comfy_server.wait_running(pid, poll=0.5)
    time.sleep(2.0)  # inside the optimisation loop by now
    entry = comfy_server.cancel(pid, timeout=60, poll=1.0)
    assert entry is not None, "Cancel did not stop the Gatys optimisation within 60 s"
    kinds = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds, kinds
    assert comfy_server.alive()


def test_progress_per_iteration_and_per_frame(comfy_server, models_root):
    style_files.install(models_root, "vgg19-dcbb9e9d.pth", "mosaic.pth")
    gatys = transfer_prompt("vgg19-dcbb9e9d.pth", "sty_progress/g", iterations=5, seed=777)
    assert comfy_server.run_with_progress(gatys, "run")[1] == [(i, 5) for i in range(1, 6)]
    frames = transfer_prompt("mosaic.pth", "sty_progress/f", style=False)
    frames["rep"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["crop", 0], "amount": 3}}
    frames["run"]["inputs"]["content"] = ["rep", 0]
    assert comfy_server.run_with_progress(frames, "run")[1] == [(1, 3), (2, 3), (3, 3)]


def test_half_precision_option_runs_feed_forward_networks(comfy_server, models_root):
    from models.style import load_style_network, style_transfer

    style_files.install(models_root, "mosaic.pth")
    prompt = transfer_prompt("mosaic.pth", "sty_bf16/x", style=False)
    prompt["run"]["inputs"]["precision"] = "bfloat16"
    entry = comfy_server.run(prompt, timeout=300)
    (out,) = [np.asarray(Image.open(f))[..., :3] / 255.0 for f in comfy_server.output_files(entry)]
    import torch

    from models.style.precision import style_precision

    content = content_image()
    network = load_style_network(models_root / "style_transfer" / "mosaic.pth")
    full = style_transfer(content, method="fast", network=network, consistency=True, batch_size=1)[0].numpy()
    err = np.abs(out - full)
    # half precision runs only where the shared accuracy criterion accepts it for this network (the verdict is
    # deterministic: the same calibration here as in the server); otherwise the node runs exact float32
    dtype, verdict = style_precision(network, "fast", "cpu", torch.bfloat16)
    if dtype is None:
        assert err.max() <= 1 / 255 + 1e-6, (err.max() * 255, verdict)
    else:
        assert 0 < err.mean() < 2 / 255, (err.mean() * 255, verdict)
    assert np.abs(out - content[0].numpy()).mean() > 4 * err.mean() + 1e-3  # the stylised result, not the input


def run_whole_example_in_tiles(server, network_name: str, prefix: str, tile: int, style: bool = True):
    """Style Transfer on the whole 512x384 example image with ``tile_size=tile``; the saved PNGs as arrays."""
    prompt = transfer_prompt(network_name, prefix, style=style)
    prompt["crop"]["inputs"].update(width=512, height=384, x=0, y=0)
    prompt["run"]["inputs"]["tile_size"] = tile
    entry = server.run(prompt, timeout=300)
    return [np.asarray(Image.open(f)) for f in server.output_files(entry)]


def test_adain_tiles_through_the_node_equal_the_whole_image(comfy_server, models_root):
    """tile_size through the node: a 512x384 image in 128-pixel tiles gives the whole-image engine result
    (tiling is exact); the engine's tiled run, checked here, never shows the encoder more than a tile and
    its margins."""
    from models.style import load_adain, style_transfer

    paths = style_files.install(models_root, "vgg_normalised.pth", "decoder.pth")
    saved = run_whole_example_in_tiles(comfy_server, "decoder.pth", "sty_tiles/x", 128)
    content, style = load_png(INPUTS / "gan_pack_example.png"), load_png(INPUTS / "gan_pack_style.png")
    pair = load_adain(paths["vgg_normalised.pth"], paths["decoder.pth"])
    seen = []
    hook = pair.encoder.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape[-2:])))
    try:
        whole = style_transfer(content, style, method="adain", network=pair, consistency=True, batch_size=1)
        assert max(h * w for h, w in seen) == 384 * 512
        seen.clear()
        tiled = style_transfer(content, style, method="adain", network=pair, consistency=True, batch_size=1,
                               tile_size=128)
        assert max(h * w for h, w in seen) <= (128 + 2 * 48) ** 2, seen   # the 256² style image is tiled too
    finally:
        hook.remove()
    assert float((tiled - whole).abs().max()) < 1e-4
    assert_matches_engine(saved, whole, content, "adain, 128 px tiles")


def test_fast_network_tiles_through_the_node_equal_the_whole_image(comfy_server, models_root):
    """The same for a fast network, whose 15 instance norms need whole-frame statistics (staged tile passes)."""
    from models.style import load_style_network, style_transfer

    paths = style_files.install(models_root, "mosaic.pth")
    saved = run_whole_example_in_tiles(comfy_server, "mosaic.pth", "sty_tiles_fast/x", 128, style=False)
    content = load_png(INPUTS / "gan_pack_example.png")
    net = load_style_network(paths["mosaic.pth"])
    whole = style_transfer(content, method="fast", network=net, consistency=True, batch_size=1)
    tiled = style_transfer(content, method="fast", network=net, consistency=True, batch_size=1, tile_size=128)
    assert float((tiled - whole).abs().max()) < 1e-4
    assert_matches_engine(saved, whole, content, "fast, 128 px tiles")


def test_workflow_saved_before_tile_size_existed_still_runs(comfy_server, object_info):
    """Style Transfer gained the optional tile_size widget: a copy of style_transfer_frames as saved before
    (one widget value fewer) converts without it, runs on the default, and passes the same pixel check."""
    wf = load_workflow(REPO / "workflows" / "style_transfer_frames.json")
    (node,) = [n for n in wf["nodes"] if n["type"] == "GANPackStyleTransfer"]
    assert node["widgets_values"][-1] == 0       # today's file: tile_size last, automatic
    node["widgets_values"] = node["widgets_values"][:-1]
    prompt = ui_to_api(wf, object_info)
    (run,) = [v for v in prompt.values() if v["class_type"] == "GANPackStyleTransfer"]
    assert "tile_size" not in run["inputs"] and run["inputs"]["precision"] == "auto"
    check = CHECKS["style_transfer_frames"]
    check.prepare(comfy_server, prompt)
    entry = comfy_server.run(prompt, timeout=600)
    files = comfy_server.output_files(entry)
    check.check(comfy_server, prompt, files, [np.asarray(Image.open(f)) for f in files])
