"""Pixel checks of the style transfer workflows: the node's output must be what the engine computes.

``prepare`` installs tiny random weight files under the standard names (built by :mod:`style_files` in the
public layouts) into the test server's ``models_root/style_transfer``; the diffusion workflow is rewritten
to a random TAESD (:mod:`diffusion`). ``check`` runs ``models.style.style_transfer`` directly in this process on
the same inputs and requires the saved pixels to match within 1/255, and the output to differ from the content.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import torch
from PIL import Image

from integration import style_files

from integration.diffusion import diffusion_to_taesd, install_random_taesd
from integration.workflow_checks import REPO, Check
from integration.server_paths import models_root_of

INPUTS = REPO / "workflows" / "inputs"
STYLE_NODE = "GANPackStyleTransfer"
LOADER_NODE = "GANPackLoadStyleNetwork"


# ------------------------------------------------------------------------------------------ helpers
def load_png(path: Path) -> torch.Tensor:
    """A PNG as ComfyUI's LoadImage reads it: RGB float32 value/255, ``[1, H, W, 3]``."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).astype(np.float32) / 255.0)[None]


def node_of(prompt: Dict, class_type: str) -> Dict:
    (node,) = [v for v in prompt.values() if v["class_type"] == class_type]
    return node


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """What SaveImage writes: clip(255 * x) truncated to uint8 after numpy's float conversion."""
    return np.clip(255.0 * img.cpu().numpy(), 0, 255).astype(np.uint8)


def assert_matches_engine(saved: List[np.ndarray], expected: torch.Tensor, content: torch.Tensor, what: str) -> None:
    exp = to_uint8(expected)
    assert len(saved) == exp.shape[0], (what, len(saved), exp.shape)
    for i, out in enumerate(saved):
        out = out[..., :3].astype(np.int16)
        assert out.shape == exp[i].shape, (what, out.shape, exp[i].shape)
        err = np.abs(out - exp[i].astype(np.int16))
        assert err.max() <= 1, f"{what} frame {i}: differs from the engine by up to {err.max()}/255 " \
                               f"(mean {err.mean():.3f})"
        moved = np.abs(out / 255.0 - content[i].numpy()).mean()
        assert moved > 2 / 255, f"{what} frame {i}: output hardly differs from the content ({moved * 255:.2f}/255)"


def style_args(node: Dict) -> Dict:
    """``style_transfer`` keyword arguments equal to what the Style Transfer node passes for these widgets."""
    i = node["inputs"]
    return dict(strength=float(i["strength"]), iterations=int(i["iterations"]), seed=int(i["seed"]),
                preserve_color=None if i["preserve_color"] == "none" else i["preserve_color"],
                consistency=bool(i["frame_consistency"]), temporal_blend_weight=float(i["temporal_blend"]),
                batch_size=1)


# ------------------------------------------------------------------------------------------ diffusion -> gatys
GATYS_ITERATIONS = 8


def _prepare_diffusion(server, prompt):
    root = models_root_of(server)
    install_random_taesd(root)
    style_files.install(root, "vgg19-dcbb9e9d.pth")
    diffusion_to_taesd(prompt)
    (vae_id,) = [k for k, v in prompt.items() if v["class_type"] == "VAELoader"]
    # a zero latent decodes to a nearly flat picture through a random TAESD: encode the example image instead,
    # so the "diffusion output" has structure to restyle (64 x 48 px for CPU speed)
    (latent_id,) = [k for k, v in prompt.items() if v["class_type"] == "EmptyLatentImage"]
    prompt["sty_src"] = {"class_type": "LoadImage", "inputs": {"image": "gan_pack_example.png"}}
    prompt["sty_small"] = {"class_type": "ImageScale", "inputs": {"image": ["sty_src", 0], "upscale_method": "area",
                                                                  "width": 64, "height": 48, "crop": "disabled"}}
    prompt[latent_id] = {"class_type": "VAEEncode", "inputs": {"pixels": ["sty_small", 0], "vae": [vae_id, 0]}}
    # The content reaches the check only as an 8-bit PNG, and Gatys optimisation amplifies a half-level
    # rounding difference in its input far beyond 1/255. So the TEST quantises the decoded picture to exact
    # 8-bit values (core ImageQuantize, 256 colours, no dither) before both the preview and Style Transfer:
    # the saved preview is then exactly the content the node optimised.
    (decode_id,) = [k for k, v in prompt.items() if v["class_type"] == "VAEDecode"]
    prompt["sty_q"] = {"class_type": "ImageQuantize", "inputs": {"image": [decode_id, 0], "colors": 256,
                                                                 "dither": "none"}}
    for k, node in prompt.items():
        if k == "sty_q":
            continue
        for name, val in node["inputs"].items():
            if isinstance(val, list) and val == [decode_id, 0]:
                node["inputs"][name] = ["sty_q", 0]
    node = node_of(prompt, STYLE_NODE)
    node["inputs"].update(iterations=GATYS_ITERATIONS, size=0)
    # the preview of the diffusion output becomes a saved file (the harness reads output files)
    (preview_id,) = [k for k, v in prompt.items() if v["class_type"] == "PreviewImage"]
    prompt[preview_id] = {"class_type": "SaveImage", "inputs": {"images": prompt[preview_id]["inputs"]["images"],
                                                                "filename_prefix": "gan_pack/style_content"}}


def _check_diffusion(server, prompt, files, images):
    from models.style import load_style_network, style_transfer

    previews = [im for f, im in zip(files, images) if "style_content" in f.name]
    styled = [im for f, im in zip(files, images) if "style_diffusion" in f.name]
    assert len(previews) == 1 and len(styled) == 1, [f.name for f in files]
    content = torch.from_numpy(previews[0][..., :3].astype(np.float32) / 255.0)[None]
    assert content.shape[1:3] == (48, 64)
    node = node_of(prompt, STYLE_NODE)
    loader = node_of(prompt, LOADER_NODE)
    vgg = load_style_network(models_root_of(server) / "style_transfer" / loader["inputs"]["network_name"])
    assert vgg.kind == "vgg19" and vgg.convention == "torchvision"
    style = load_png(INPUTS / "gan_pack_style.png")
    expected = style_transfer(content, style, method="gatys", network=vgg, size=64, **style_args(node))
    assert_matches_engine(styled, expected, content, "style_transfer_diffusion")


# ------------------------------------------------------------------------------------------ frames -> fast
def _eval_frames(prompt: Dict, ref) -> torch.Tensor:
    """The frames Load Image Sequence feeds to ``ref`` (read here with the engine's own reader)."""
    from models.sequence import load_image_sequence

    node = prompt[ref[0]]
    assert node["class_type"] == "GANPackLoadImageSequence", node["class_type"]
    i = node["inputs"]
    frames, _ = load_image_sequence(INPUTS / i["folder"], i["pattern"], first=i["first_frame"],
                                    last=i["last_frame"], step=i["step"])
    return frames


def _prepare_frames(server, prompt):
    style_files.install(models_root_of(server), node_of(prompt, LOADER_NODE)["inputs"]["network_name"])


def _check_frames(server, prompt, files, images):
    from models.style import load_style_network, style_transfer

    node = node_of(prompt, STYLE_NODE)
    frames = _eval_frames(prompt, node["inputs"]["content"])
    assert frames.shape[0] == 8 and len(images) == 8
    assert [f.name for f in files] == [f"frame_{n:04d}.png" for n in range(1, 9)]
    net = load_style_network(models_root_of(server) / "style_transfer" / node_of(prompt, LOADER_NODE)["inputs"]["network_name"])
    assert net.kind == "fast_style"
    expected = style_transfer(frames, method="fast", network=net, **style_args(node))
    assert_matches_engine(images, expected, frames, "style_transfer_frames")
    # the shot moves: the stylised frames differ from each other
    assert np.abs(images[0].astype(np.int16) - images[3].astype(np.int16)).mean() > 2


CHECKS = {
    "style_transfer_diffusion": Check(_check_diffusion, _prepare_diffusion),
    "style_transfer_frames": Check(_check_frames, _prepare_frames),
}
