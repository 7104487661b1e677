"""Hostile and broken input through the real server (issue 12): every request gets a clear error, the server keeps
serving (``/object_info`` answers), its memory stays bounded, files are written with the umask's mode, and nothing
poisoned (NaN pixels, NaN weights) is ever saved."""
from __future__ import annotations

import os
import pickle
import shutil
import stat
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts.comfy_client import ComfyExecutionError, ComfyPromptRejected

REPO = Path(__file__).resolve().parents[2]
BUNDLED = REPO / "models" / "bundled"
STYLEGAN = "gan_pack_islands64.safetensors"
CYCLEGAN = "cyclegan/day2night_resnet6_in.safetensors"


def rss_mb(server) -> float:
    with open(f"/proc/{server.proc.pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def still_serving(server) -> None:
    assert server.alive()
    assert "GANPackSaveImageSequence" in server.get_json("/object_info/GANPackSaveImageSequence")


def rejected(server, prompt) -> str:
    with pytest.raises(ComfyPromptRejected) as info:
        server.queue(prompt)
    still_serving(server)
    return str(info.value)


def failed(server, prompt) -> str:
    with pytest.raises(ComfyExecutionError) as info:
        server.run(prompt, timeout=300)
    still_serving(server)
    return str(info.value)


def empty_image(w=32, h=32, batch=1, color=0x336699):
    return {"class_type": "EmptyImage", "inputs": {"width": w, "height": h, "batch_size": batch, "color": color}}


def save_sequence(images, pattern="f_%04d.png", folder="hostile/seq"):
    return {"class_type": "GANPackSaveImageSequence", "inputs": {
        "images": images, "folder": folder, "pattern": pattern, "bit_depth": "8", "skip_existing": False,
        "start_number": 1}}


def translate(translator, image, tile_size=0, tile_overlap=0):
    return {"class_type": "GANPackTranslate", "inputs": {
        "translator": translator, "image": image, "tile_size": tile_size, "tile_overlap": tile_overlap,
        "mode": "eval", "seed": 0, "resize_to_train_size": False, "precision": "float32", "batch_size": 1}}


def load_translator(name=CYCLEGAN):
    return {"class_type": "GANPackLoadTranslator", "inputs": {"model_name": name, "direction": "auto"}}


def preview(images):
    return {"class_type": "PreviewImage", "inputs": {"images": images}}


def latent(seeds, psi=0.7):
    return {"class_type": "GANPackStyleGANLatent", "inputs": {
        "stylegan": ["g", 0], "seeds": seeds, "truncation_psi": psi, "truncation_cutoff": 0, "class_index": 0}}


def synthesize(lat):
    return {"class_type": "GANPackStyleGANSynthesize", "inputs": {
        "stylegan": ["g", 0], "latent": lat, "noise_mode": "const", "seed": 0, "batch_size": 8}}


LOAD_G = {"class_type": "GANPackLoadStyleGAN", "inputs": {"model_name": STYLEGAN}}


# ------------------------------------------------------------------------------------------ patterns and names
def test_huge_frame_width_and_bad_patterns_are_refused_before_anything_runs(comfy_server):
    before = rss_mb(comfy_server)
    # the translation upstream never runs: the pattern is refused when the prompt is queued
    prompt = {"1": empty_image(), "2": load_translator(), "3": translate(["2", 0], ["1", 0]),
              "4": save_sequence(["3", 0], pattern="f_%0200000000d.png")}
    text = rejected(comfy_server, prompt)
    assert "frame-number width 200000000 is too wide (at most 9 digits" in text, text
    assert rss_mb(comfy_server) - before < 100
    prompt["4"]["inputs"]["pattern"] = "%s%04d.png"
    assert "'%s' is not a frame-number field" in rejected(comfy_server, prompt)
    prompt["4"]["inputs"]["pattern"] = "....%d"
    assert "hidden file" in rejected(comfy_server, prompt)
    prompt["4"]["inputs"]["pattern"] = "frame.png"
    assert "needs a frame-number field" in rejected(comfy_server, prompt)
    prompt["4"]["inputs"].update(pattern="f_%04d.png", folder="../escape")
    assert "outside ComfyUI's output directory" in rejected(comfy_server, prompt)
    assert not (comfy_server.output_dir / "hostile").exists()
    assert not (comfy_server.output_dir.parent / "escape").exists()


def test_model_names_are_checked_when_queued(comfy_server):
    text = rejected(comfy_server, {"1": load_translator(), "2": {"class_type": "GANPackSaveTranslator", "inputs": {
        "translator": ["1", 0], "filename": "x" * 300, "overwrite": True}}})
    assert "is 300 bytes long (at most 200)" in text, text
    text = rejected(comfy_server, {"1": {"class_type": "GANPackConvertStyleGAN", "inputs": {
        "model_name": STYLEGAN, "output_name": "...", "overwrite": True}}})
    assert "hidden file" in text, text


# ------------------------------------------------------------------------------------------ NaN
def test_nan_pixels_and_numbers_are_refused_naming_node_input_and_frame(comfy_server, models_root):
    shot = comfy_server.input_dir / "hostile_nan"
    shot.mkdir(exist_ok=True)
    clean = np.random.default_rng(0).random((24, 24), dtype=np.float32)
    poisoned = clean.copy()
    poisoned[5, 7] = np.nan
    Image.fromarray(clean, mode="F").save(shot / "k_0001.tif")
    Image.fromarray(poisoned, mode="F").save(shot / "k_0002.tif")
    load = {"class_type": "GANPackLoadImageSequence", "inputs": {
        "folder": "hostile_nan", "pattern": "k_%04d.tif", "first_frame": -1, "last_frame": -1, "step": 1}}
    train = {"class_type": "GANPackTrainTranslatorFromKeyframes", "inputs": {
        "keyframes": ["1", 0], "painted_keyframes": ["1", 0], "steps": 5, "seed": 0}}
    save = {"class_type": "GANPackSaveTranslator", "inputs": {
        "translator": ["2", 0], "filename": "hostile_nan_model", "overwrite": True}}
    text = failed(comfy_server, {"1": load, "2": train, "3": save})
    assert "Train Translator from Keyframes (GAN): keyframes: 3 NaN or infinite values in frame 1 of the batch " \
           "(counting from 0, of 2)" in text, text
    assert not list(models_root.glob("*/hostile_nan_model*"))

    text = failed(comfy_server, {"1": load, "2": {"class_type": "GANPackImageChannels", "inputs": {
        "image": ["1", 0], "mode": "grayscale"}}, "3": preview(["2", 0])})
    assert "Image Channels (GAN): image: 3 NaN or infinite values in frame 1 of the batch" in text, text

    text = failed(comfy_server, {"g": LOAD_G, "1": latent("1-2", psi=float("nan")), "2": synthesize(["1", 0]),
                                 "3": preview(["2", 0])})
    assert "StyleGAN Latent (seeds): truncation_psi is nan; give a finite number" in text, text
    text = failed(comfy_server, {"1": empty_image(), "2": {"class_type": "GANPackTemporalBlend", "inputs": {
        "images": ["1", 0], "source": ["1", 0], "strength": float("nan"), "threshold": 0.01}},
        "3": preview(["2", 0])})
    assert "Temporal Blend (reduce flicker): strength is nan" in text, text


# ------------------------------------------------------------------------------------------ file modes
def test_files_get_the_mode_core_save_image_gives(comfy_server, models_root):
    umask = os.umask(0o022)
    os.umask(umask)
    expected = 0o666 & ~umask    # the server inherits this process's umask
    entry = comfy_server.run({"1": empty_image(color=0x123456), "2": save_sequence(["1", 0], folder="hostile/modes"),
                              "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0],
                                                                          "filename_prefix": "hostile_core"}}})
    files = comfy_server.output_files(entry)
    modes = {f.name: stat.S_IMODE(f.stat().st_mode) for f in files}
    assert len(modes) == 2 and set(modes.values()) == {expected}, modes

    entry = comfy_server.run({"1": load_translator(), "2": {"class_type": "GANPackSaveTranslator", "inputs": {
        "translator": ["1", 0], "filename": "hostile_mode", "overwrite": True}},
        "3": {"class_type": "GANPackConvertStyleGAN", "inputs": {
            "model_name": STYLEGAN, "output_name": "hostile_mode", "overwrite": True}}})
    written = list(models_root.glob("*/hostile_mode.safetensors"))
    assert len(written) == 2, written
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == expected, (path, oct(path.stat().st_mode))
        path.unlink()


# ------------------------------------------------------------------------------------------ caps
def _huge_png(path: Path, w: int, h: int) -> None:
    """A valid black RGB PNG of w x h pixels written row by row (a few hundred KB, no big array)."""
    comp = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * w)
    idat = b"".join(comp.compress(row) for _ in range(h)) + comp.flush()

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def test_request_caps_give_clear_errors(comfy_server, models_root):
    text = failed(comfy_server, {"g": LOAD_G, "1": latent("0-99999,100000-199999"), "2": synthesize(["1", 0]),
                                 "3": preview(["2", 0])})
    assert "more than 10000 seeds in all" in text, text

    mix = {"class_type": "GANPackStyleMix", "inputs": {"stylegan": ["g", 0], "row_latent": ["1", 0],
           "column_latent": ["1", 0], "layers": "coarse", "custom_layers": "0-6", "mode": "grid"}}
    text = failed(comfy_server, {"g": LOAD_G, "1": latent("0-299"), "2": mix, "3": synthesize(["2", 0]),
                                 "4": preview(["3", 0])})
    assert "90601 grid cells (300 rows x 300 columns plus headers) requested, more than the limit of 4096" in text

    walk = {"class_type": "GANPackStyleGANInterpolate", "inputs": {"stylegan": ["g", 0], "keyframes": ["1", 0],
            "frames": 100000, "space": "w", "easing": "linear", "loop": True}}
    text = failed(comfy_server, {"g": LOAD_G, "1": latent("1,2"), "2": walk, "3": synthesize(["2", 0]),
                                 "4": preview(["3", 0])})
    assert "100000 interpolation frames requested, more than the limit of 10000" in text, text

    text = failed(comfy_server, {"1": empty_image(200, 200), "2": load_translator(),
                                 "3": translate(["2", 0], ["1", 0], tile_size=64, tile_overlap=2048),
                                 "4": preview(["3", 0])})
    assert "tile_overlap 2048 must be smaller than tile_size 64" in text, text

    # a frame folder whose batch could never fit: refused from the first frame's header, nothing decoded
    shot = comfy_server.input_dir / "hostile_huge"
    shot.mkdir(exist_ok=True)
    _huge_png(shot / "h_00001.png", 8192, 8192)
    for i in range(2, 2001):
        os.link(shot / "h_00001.png", shot / f"h_{i:05d}.png")
    before = rss_mb(comfy_server)
    load = {"class_type": "GANPackLoadImageSequence", "inputs": {
        "folder": "hostile_huge", "pattern": "*.png", "first_frame": -1, "last_frame": -1, "step": 1}}
    text = failed(comfy_server, {"1": load, "2": preview(["1", 0])})
    assert "Load Image Sequence: loading 2000 frames of 8192x8192 would need 1.5 TB of memory, more than the " \
           "limit of" in text, text
    assert rss_mb(comfy_server) - before < 300
    shutil.rmtree(shot)


# ------------------------------------------------------------------------------------------ wrong files
def test_wrong_and_malicious_files_say_what_they_are(comfy_server, models_root, tmp_path):
    import torch

    shutil.copyfile(BUNDLED / "stylegan" / STYLEGAN, models_root / "pix2pix" / "hostile_sg.safetensors")
    text = failed(comfy_server, {"1": empty_image(), "2": load_translator("pix2pix/hostile_sg.safetensors"),
                                 "3": translate(["2", 0], ["1", 0]), "4": preview(["3", 0])})
    assert "hostile_sg.safetensors: looks like a StyleGAN model saved by comfyui-gan-pack" in text, text

    # a 400-byte file whose metadata claims a ResNet with ngf 384 (1.5 GB if built before checking)
    from safetensors.torch import save_file
    import json

    meta = {"gan_pack": json.dumps({"format": "gan-pack-translator", "version": 1, "config": {
        "arch": "resnet", "input_nc": 3, "output_nc": 3, "ngf": 384, "n_blocks": 9, "norm": "instance",
        "use_dropout": False, "padding_type": "reflect", "use_bias": True, "affine": False, "n_downsampling": 2}})}
    save_file({"w": torch.zeros(3)}, str(models_root / "pix2pix" / "hostile_forged.safetensors"), metadata=meta)
    before = rss_mb(comfy_server)
    text = failed(comfy_server, {"1": empty_image(), "2": load_translator("pix2pix/hostile_forged.safetensors"),
                                 "3": translate(["2", 0], ["1", 0]), "4": preview(["3", 0])})
    assert "the metadata declares n_blocks = 9, but the file holds only 1 tensors" in text, text
    assert rss_mb(comfy_server) - before < 300

    sentinel = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {sentinel}",))

    (models_root / "cyclegan" / "hostile_evil.pth").write_bytes(pickle.dumps({"w": Evil()}, protocol=4))
    torch.save({"w": Evil()}, models_root / "style_transfer" / "hostile_evil.pth")
    text = failed(comfy_server, {"1": empty_image(), "2": load_translator("cyclegan/hostile_evil.pth"),
                                 "3": translate(["2", 0], ["1", 0]), "4": preview(["3", 0])})
    assert f"the pickle references {os.system.__module__}.system" in text and "nothing from the file was " \
           "executed" in text, text
    style = {"class_type": "GANPackLoadStyleNetwork", "inputs": {"network_name": "hostile_evil.pth",
             "adain_partner": "auto", "vgg_convention": "auto"}}
    text = failed(comfy_server, {"1": empty_image(), "2": style, "3": {"class_type": "GANPackStyleTransfer", "inputs": {
        "style_network": ["2", 0], "content": ["1", 0], "method": "fast", "strength": 1.0, "iterations": 1,
        "size": 0, "preserve_color": "none", "frame_consistency": True, "temporal_blend": 0.0, "seed": 0,
        "precision": "auto"}}, "4": preview(["3", 0])})
    assert f"the pickle references {os.system.__module__}.system" in text and "nothing from the file was " \
           "executed" in text, text
    assert not sentinel.exists()
    for p in ("pix2pix/hostile_sg.safetensors", "pix2pix/hostile_forged.safetensors", "cyclegan/hostile_evil.pth",
              "style_transfer/hostile_evil.pth"):
        (models_root / p).unlink()


# ------------------------------------------------------------------------------------------ confined reading
def test_operator_can_confine_load_image_sequence_to_input(comfy_server, tmp_path):
    """Without the variable Load Image Sequence reads absolute paths like core Load Image; with
    GAN_PACK_CONFINE_INPUT=1 only folders inside input/ (symlinks resolved) are read."""
    from conftest import _comfy_dir
    from scripts.comfy_client import ComfyServer

    outside = tmp_path / "outside"
    outside.mkdir()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(outside / "o_0001.png")
    server = ComfyServer(_comfy_dir(), workdir=tmp_path / "confined",
                         env={**os.environ, "GAN_PACK_CONFINE_INPUT": "1"})
    server.start()
    try:
        (server.input_dir / "shot").mkdir()
        Image.new("RGB", (8, 8), (10, 200, 10)).save(server.input_dir / "shot" / "s_0001.png")
        os.symlink(outside, server.input_dir / "escape")

        def prompt(folder):  # noqa: E306
            return {"1": {"class_type": "GANPackLoadImageSequence", "inputs": {
                "folder": folder, "pattern": "*.png", "first_frame": -1, "last_frame": -1, "step": 1}},
                "2": preview(["1", 0])}

        # the default server reads an absolute folder, like core Load Image
        assert comfy_server.output_files(comfy_server.run(prompt(str(outside)), timeout=120))
        for folder in (str(outside), "escape", "../" + outside.name, "/etc"):
            text = rejected(server, prompt(folder))
            assert "is outside" in text and "GAN_PACK_CONFINE_INPUT" in text, text
        entry = server.run(prompt("shot"), timeout=120)
        assert server.output_files(entry)
    finally:
        server.cleanup()
