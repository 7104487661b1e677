"""Pixel checks of the training workflow: the Train node runs a handful of iterations in a real server, saves the
reference-layout files where Load Translator finds them, and its translator output is what those files give."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from integration.server_paths import models_root_of
from integration.workflow_checks import Check

REPO = Path(__file__).resolve().parents[2]
OUTLINES = REPO / "workflows" / "inputs" / "gan_pack_outlines.png"
CI_ITERATIONS = 8
CI_BATCH = 4  # the workflow's
CI_NAME = "ci_train_outlines"


def _node(prompt, class_type):
    (node,) = [v for v in prompt.values() if v["class_type"] == class_type]
    return node


def _prepare(server, prompt):
    train = _node(prompt, "GANPackTrainFromFolders")["inputs"]
    train.update(iterations=CI_ITERATIONS, save_every=5, preview_every=4, name=CI_NAME)


def _check_train_pix2pix_folders(server, prompt, files, images):
    from PIL import Image

    from models.translator import load_translator, translate

    src = np.asarray(Image.open(OUTLINES).convert("RGB"))
    outs = [img for f, img in zip(files, images) if f.name.startswith("trained_pix2pix")]
    assert len(outs) == 1 and outs[0].shape[:2] == src.shape[:2]
    # the generator went to models/pix2pix/<name>/ (listed for Load Translator) ...
    assert f"{CI_NAME}/latest_net_G.pth" in server.get_json("/models/pix2pix")
    g_file = models_root_of(server) / "pix2pix" / CI_NAME / "latest_net_G.pth"
    # ... and the whole run in the reference layout under output/gan_training/<name>/
    run = server.output_dir / "gan_training" / CI_NAME
    for name in ("latest_net_G.pth", "latest_net_D.pth", "train_state.pt", "train_opt.txt", "loss_log.txt"):
        assert (run / name).is_file(), name
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert state["total_iters"] == CI_ITERATIONS * CI_BATCH and state["trainer"]["steps"] == CI_ITERATIONS
    assert torch.equal(torch.load(g_file, weights_only=True)["model.model.0.weight"],
                       state["trainer"]["nets"]["G"]["model.model.0.weight"])
    assert len(list((run / "samples").glob("*.png"))) == CI_ITERATIONS // 4
    # the node's translator output is the saved generator: Translate Image gave what the file gives
    g = load_translator(g_file)
    assert g.arch == "unet" and g.depth == 6 and g.ngf == 16 and g.norm == "batch"
    again = translate(g, torch.from_numpy(src.astype(np.float32) / 255)[None])
    assert np.abs(again[0].numpy() * 255 - outs[0][..., :3].astype(np.float32)).max() <= 1.5
    # trained weights (not the seed's initial ones), and the drawing's structure comes through
    from models.training import GANTrainer

    init = GANTrainer("pix2pix", netG="unet_64", ngf=16, ndf=16, seed=0).nets["G"].eval()
    untrained = translate(init, torch.from_numpy(src.astype(np.float32) / 255)[None])[0].numpy() * 255
    assert np.abs(untrained - again[0].numpy() * 255).mean() > 5.0
    grey = outs[0][..., :3].astype(np.float64).mean(-1)
    assert np.corrcoef(grey.ravel(), src.mean(-1).ravel())[0, 1] > 0.2  # 0.44 measured after the 8 iterations


CHECKS = {"train_pix2pix_folders": Check(_check_train_pix2pix_folders, _prepare)}
