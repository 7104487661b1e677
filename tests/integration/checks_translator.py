"""Pixel checks of the translator workflows (pix2pix_image, cyclegan_frames, translator_to_diffusion).

Each compares what the server saved with the engine run directly in this process on the same input
(``models.load_translator`` + ``models.translate``, 8-bit round-off of SaveImage included), and checks that the
bundled model does what its card says against the recipe's own ground truth for the example inputs.
"""
from __future__ import annotations

import numpy as np
import torch

from integration.diffusion import diffusion_to_taesd, install_random_taesd
from integration.translator_reference import BUNDLED, assert_close_8bit, engine_translate, load_image, \
    models_root_of, nodes_of, recipe, to_png8
from integration.workflow_checks import Check


# ------------------------------------------------------------------------------------------ pix2pix_image
def _check_pix2pix(server, prompt, files, images):
    (out,) = images
    (load,) = nodes_of(prompt, "LoadImage")
    (trans,) = nodes_of(prompt, "GANPackTranslate")
    (loader,) = nodes_of(prompt, "GANPackLoadTranslator")
    src = load_image(server.input_dir / prompt[load]["inputs"]["image"])
    folder, name = prompt[loader]["inputs"]["model_name"].split("/", 1)
    opts = prompt[trans]["inputs"]
    expected = engine_translate(BUNDLED / folder / name, src, tile_size=opts["tile_size"],
                                tile_overlap=opts["tile_overlap"], mode=opts["mode"], seed=opts["seed"],
                                resize_to_train_size=opts["resize_to_train_size"], batch_size=opts["batch_size"])
    assert_close_8bit(out[..., :3], to_png8(expected)[0], 1, "pix2pix_image")
    # what the model card promises: the example's shapes filled by kind (recipe ground truth of that drawing)
    _, target = recipe().outline_pair(np.random.RandomState([7, 1]), (320, 256), count=14)
    err = np.abs(out[..., :3].astype(np.float64) - np.asarray(target, dtype=np.float64)).mean() / 255
    assert err < 0.04, f"pix2pix example: mean error {err:.3f} against the filled drawing"
    coloured = (out[..., :3].max(-1).astype(int) - out[..., :3].min(-1)) > 100
    assert coloured.mean() > 0.05, "the outlines were not filled with colour"


# ------------------------------------------------------------------------------------------ cyclegan_frames
def _check_cyclegan(server, prompt, files, images):
    loads = sorted(nodes_of(prompt, "LoadImage"), key=int)
    (trans,) = nodes_of(prompt, "GANPackTranslate")
    (loader,) = nodes_of(prompt, "GANPackLoadTranslator")
    frames = torch.cat([load_image(server.input_dir / prompt[k]["inputs"]["image"]) for k in loads])
    assert len(images) == len(loads) == 3, f"expected 3 frames, got {len(images)}"
    folder, name = prompt[loader]["inputs"]["model_name"].split("/", 1)
    opts = prompt[trans]["inputs"]
    expected = to_png8(engine_translate(BUNDLED / folder / name, frames, tile_size=opts["tile_size"],
                                        tile_overlap=opts["tile_overlap"], batch_size=opts["batch_size"]))
    for i, out in enumerate(images):
        assert_close_8bit(out[..., :3], expected[i], 1, f"cyclegan frame {i}")
    # day -> night: much darker than the input, and close to the recipe's night rendering of the same scene
    for i, out in enumerate(images):
        _, night = recipe().day_night_pair(np.random.RandomState([11, i]), (256, 160))
        err = np.abs(out[..., :3].astype(np.float64) - np.asarray(night, dtype=np.float64)).mean() / 255
        assert err < 0.05, f"frame {i}: mean error {err:.3f} against the night rendering"
        assert out[..., :3].mean() < 0.5 * frames[i].mean().item() * 255, f"frame {i} is not darker"


# ------------------------------------------------------------------------------------------ translator_to_diffusion
def _prepare_diffusion(server, prompt):
    """Random TAESD instead of the checkpoint; also save the translator output and an untranslated branch
    through the same VAE, so the check can prove the translated tensor is what reached the diffusion nodes."""
    install_random_taesd(models_root_of(server))
    diffusion_to_taesd(prompt)
    (trans,) = nodes_of(prompt, "GANPackTranslate")
    (enc,) = nodes_of(prompt, "VAEEncode")
    (dec,) = nodes_of(prompt, "VAEDecode")
    vae = prompt[enc]["inputs"]["vae"]
    load = prompt[trans]["inputs"]["image"]
    prompt["9001"] = {"class_type": "SaveImage", "inputs": {"images": [trans, 0], "filename_prefix": "zz_translated"}}
    prompt["9002"] = {"class_type": "VAEEncode", "inputs": {"pixels": load, "vae": vae}}
    prompt["9003"] = {"class_type": "VAEDecode", "inputs": {"samples": ["9002", 0], "vae": vae}}
    prompt["9004"] = {"class_type": "SaveImage", "inputs": {"images": ["9003", 0], "filename_prefix": "zz_untranslated"}}
    assert prompt[dec]["inputs"]["vae"] == vae


def _check_diffusion(server, prompt, files, images):
    by_prefix = {}
    for f, img in zip(files, images):
        by_prefix[f.name.split("_0")[0]] = img[..., :3].astype(np.float64)
    translated, untranslated = by_prefix.pop("zz_translated"), by_prefix.pop("zz_untranslated")
    (decoded,) = by_prefix.values()
    (trans,) = nodes_of(prompt, "GANPackTranslate")
    (loader,) = nodes_of(prompt, "GANPackLoadTranslator")
    load = prompt[trans]["inputs"]["image"][0]
    src = load_image(server.input_dir / prompt[load]["inputs"]["image"])
    folder, name = prompt[loader]["inputs"]["model_name"].split("/", 1)
    expected = to_png8(engine_translate(BUNDLED / folder / name, src))[0]
    assert_close_8bit(translated.astype(np.uint8), expected, 1, "translator output")
    # TAESD keeps the size (x8 down, x8 up); the decoded picture depends on what was encoded: the
    # translated frame gives a different picture than the untranslated one through the same VAE.
    assert decoded.shape == translated.shape == untranslated.shape
    change = np.abs(decoded - untranslated).mean()
    assert change > 2.0, f"the VAE output does not depend on the translator's output (mean change {change:.2f})"


CHECKS = {
    "pix2pix_image": Check(_check_pix2pix),
    "cyclegan_frames": Check(_check_cyclegan),
    "translator_to_diffusion": Check(_check_diffusion, _prepare_diffusion),
}
