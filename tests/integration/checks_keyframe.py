"""Pixel checks of the shots workflows (keyframe stylisation of the bundled shot)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from integration.workflow_checks import Check
from integration.server_paths import models_root_of

REPO = Path(__file__).resolve().parents[2]
SHOT = REPO / "workflows" / "inputs" / "gan_pack_shot"
CI_STEPS = 300      # of the workflow's default; enough to show the look is learned
CI_LAST_FRAME = 8   # frames 1-8 of the 24: keyframe 6 and seven unseen frames


def _node(prompt, class_type):
    (node,) = [v for v in prompt.values() if v["class_type"] == class_type]
    return node


def _prepare(server, prompt):
    _node(prompt, "GANPackTrainTranslatorFromKeyframes")["inputs"]["steps"] = CI_STEPS
    _node(prompt, "GANPackLoadImageSequence")["inputs"]["last_frame"] = CI_LAST_FRAME
    _node(prompt, "GANPackSaveTranslator")["inputs"]["filename"] = "ci_keyframe_look"


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return 10 * float(torch.log10(1 / torch.mean((a.double() - b.double()) ** 2)))


def _check_keyframe_stylize_shot(server, prompt, files, images):
    from models.sequence import load_image_sequence
    from models.translator import load_translator, translate
    from scripts.wf_builders.keyframe import KEYFRAMES, painted_look

    src, numbers = load_image_sequence(SHOT, "frame_%04d.png", last=CI_LAST_FRAME)
    assert [f.name for f in files] == [f"frame_{n:04d}.png" for n in numbers]
    out = torch.from_numpy(np.stack([img[..., :3] for img in images]).astype(np.float32) / 255)
    truth = painted_look(src)
    unseen = torch.tensor([n not in KEYFRAMES for n in numbers])
    styled, unstyled = _psnr(out[unseen], truth[unseen]), _psnr(src[unseen], truth[unseen])
    # the learned look is far closer to the painted look than the plain frames are (a few hundred steps)
    assert styled > unstyled + 5.0, (styled, unstyled)
    assert _psnr(out[~unseen], truth[~unseen]) > styled - 1.0  # the painted keyframe itself is reproduced
    # Save Translator wrote a file Load Translator lists, which reproduces the rendered frames
    assert "ci_keyframe_look.safetensors" in server.get_json("/models/pix2pix")
    translator = load_translator(models_root_of(server) / "pix2pix" / "ci_keyframe_look.safetensors")
    again = translate(translator, src[:2])
    assert (again - out[:2]).abs().max().item() <= 1.5 / 255


CHECKS = {"keyframe_stylize_shot": Check(_check_keyframe_stylize_shot, _prepare)}
