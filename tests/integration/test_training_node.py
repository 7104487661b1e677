"""Train node in a real ComfyUI server: Cancel keeps the last saved checkpoint (loadable, consistent with its
state), continue_training carries on from it, and a bad data folder is a clear error (server keeps serving)."""
from __future__ import annotations

import time

import pytest
import torch

from scripts.comfy_client import ComfyExecutionError

NAME = "ci_train_cancel"


def _prompt(iterations: int, continue_training: bool, data_folder: str = "gan_pack_train_outlines") -> dict:
    return {
        "1": {"class_type": "GANPackTrainFromFolders", "inputs": {
            "model": "cyclegan" if data_folder != "gan_pack_train_outlines" else "pix2pix",
            "data_folder": data_folder, "name": NAME, "iterations": iterations, "netG": "unet_64", "ngf": 4,
            "ndf": 4, "load_size": 72, "crop_size": 64, "batch_size": 1, "lr": 0.0002, "save_every": 3,
            "preview_every": 1000, "seed": 1, "continue_training": continue_training, "options": ""}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 1]}},
    }


def test_cancel_keeps_the_last_save_and_continue_resumes(comfy_server):
    run = comfy_server.output_dir / "gan_training" / NAME
    pid = comfy_server.queue(_prompt(100_000, False))
    comfy_server.wait_running(pid, poll=0.3)
    deadline = time.monotonic() + 120
    while not (run / "train_state.pt").is_file() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert (run / "train_state.pt").is_file(), "no state saved within 120 s"
    entry = comfy_server.cancel(pid, timeout=60, poll=0.5)
    assert entry is not None, "Cancel did not stop the training within 60 s"
    assert "execution_interrupted" in [m[0] for m in entry["status"]["messages"]]
    assert comfy_server.alive()
    state = torch.load(run / "train_state.pt", weights_only=True)
    saved = state["total_iters"]
    assert saved > 0 and saved % 3 == 0
    g = torch.load(run / "latest_net_G.pth", weights_only=True)
    assert torch.equal(g["model.model.0.weight"], state["trainer"]["nets"]["G"]["model.model.0.weight"])
    # continue_training: two more iterations from the saved state
    comfy_server.run(_prompt(2, True), timeout=300)
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert state["total_iters"] == saved + 2
    # queueing the very same prompt again trains further (not ComfyUI's cached result): the state changed
    comfy_server.run(_prompt(2, True), timeout=300)
    assert torch.load(run / "train_state.pt", weights_only=True)["total_iters"] == saved + 4
    # Load Translator finds the exported generator by name and Translate Image runs it
    entry = comfy_server.run({
        "1": {"class_type": "LoadImage", "inputs": {"image": "gan_pack_outlines.png"}},
        "2": {"class_type": "GANPackLoadTranslator", "inputs": {"model_name": f"pix2pix/{NAME}/latest_net_G.pth",
                                                               "direction": "auto"}},
        "3": {"class_type": "GANPackTranslate", "inputs": {
            "translator": ["2", 0], "image": ["1", 0], "tile_size": 0, "tile_overlap": 0, "mode": "eval", "seed": 0,
            "resize_to_train_size": False, "precision": "float32", "batch_size": 1}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "ci_trained"}},
    }, timeout=120)
    (out,) = comfy_server.output_files(entry)
    from PIL import Image

    assert Image.open(out).size == (320, 256)


def test_bad_data_folder_is_a_clear_error(comfy_server):
    with pytest.raises(ComfyExecutionError, match="trainA"):
        comfy_server.run(_prompt(2, False, data_folder="gan_pack_train_outlines/train"), timeout=120)
    assert comfy_server.alive()
