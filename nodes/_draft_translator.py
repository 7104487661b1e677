"""Pix2Pix / CycleGAN translator nodes (engine: ``models.translator``)."""
from __future__ import annotations

import os
import re

from .. import models as engine
from .common import Progress, autocast_dtype, list_models, precision_input, prepare_device, release, \
    resolve_model, seed_input, with_oom_retry

FOLDERS = ("pix2pix", "cyclegan")
TRANSLATOR = "GAN_TRANSLATOR"
CATEGORY = "GAN/translate"


def _sibling_for_direction(path: str, direction: str) -> str:
    """``latest_net_G_A.pth`` with direction BtoA -> ``latest_net_G_B.pth`` (and vice versa) when it exists."""
    want = {"AtoB": "A", "BtoA": "B"}.get(direction)
    if want is None:
        return path
    folder, name = os.path.split(path)
    m = re.search(r"(?i)(G_)([AB])(\.[^.]+)$", name)
    if not m or m.group(2).upper() == want:
        return path
    other = os.path.join(folder, name[: m.start(2)] + want + name[m.end(2):])
    if not os.path.isfile(other):
        raise FileNotFoundError(f"direction {direction} needs '{os.path.basename(other)}' beside '{name}' in {folder}")
    return other


class LoadTranslator:
    DESCRIPTION = ("Loads a Pix2Pix or CycleGAN generator (reference checkpoints such as latest_net_G.pth, "
                   "latest_net_G_A.pth, the official pretrained models, .safetensors conversions and keyframe-"
                   "trained translators). The architecture (ResNet or U-Net, blocks, depth, normalisation, "
                   "channels) is read from the file itself.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (TRANSLATOR,)
    RETURN_NAMES = ("translator",)
    OUTPUT_TOOLTIPS = ("The loaded generator, for the Translate Image node.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (list_models(FOLDERS), {
                "tooltip": "Generator file from ComfyUI/models/pix2pix or ComfyUI/models/cyclegan (or the pack's "
                           "bundled defaults)."}),
            "direction": (["auto", "AtoB", "BtoA"], {
                "default": "auto",
                "tooltip": "CycleGAN direction. auto: the file as it is (for a checkpoint holding both G_A and G_B: "
                           "G_A). AtoB/BtoA: pick G_A or G_B from a combined checkpoint, or the G_A/G_B file beside "
                           "the chosen one."}),
        }}

    def load(self, model_name, direction):
        path = _sibling_for_direction(resolve_model(model_name, FOLDERS), direction)
        kwargs = {} if direction == "auto" else {"direction": direction}
        translator = engine.load_translator(path, **kwargs)
        translator.name = os.path.splitext(os.path.basename(path))[0]
        return (translator,)


class TranslateImage:
    DESCRIPTION = ("Runs a Pix2Pix/CycleGAN generator on an IMAGE batch of any size. Large frames are tiled with "
                   "overlap and feathered blending; InstanceNorm generators (every CycleGAN) use whole-frame "
                   "normalisation statistics so tiles share one colour balance. Alpha passes through untouched; "
                   "grayscale models get the luma.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The translated images, same size and count as the input.",)
    FUNCTION = "translate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "translator": (TRANSLATOR, {"tooltip": "A generator from Load Translator or Train Translator from Keyframes."}),
            "image": ("IMAGE", {"tooltip": "Image batch (frames) to translate; any size, 1/3/4 channels."}),
            "tile_size": ("INT", {"default": 0, "min": 0, "max": 8192, "step": 64, "tooltip":
                          "Tile edge in pixels. 0 = automatic: whole frames when they fit in memory, tiles otherwise "
                          "(and smaller tiles after an out-of-memory error)."}),
            "tile_overlap": ("INT", {"default": 0, "min": 0, "max": 1024, "step": 8, "tooltip":
                             "Overlap between tiles, blended with a feathered ramp. 0 = automatic (from the "
                             "network's receptive field)."}),
            "mode": (["eval", "reference"], {"default": "eval", "tooltip":
                     "eval: deterministic inference (stored BatchNorm statistics, no dropout). reference: what the "
                     "reference pix2pix test.py does without --eval (batch statistics, dropout on, driven by the "
                     "seed); the loaded model is never modified."}),
            "seed": seed_input("Seed for the dropout of reference mode; unused in eval mode."),
            "resize": (["keep size", "train size"], {"default": "keep size", "tooltip":
                       "keep size: run at the input resolution (padded to the multiple the network needs). "
                       "train size: resize to the model's training size (e.g. 256x256) and back, like the "
                       "reference's default preprocessing."}),
            "precision": precision_input(),
        }}

    def translate(self, translator, image, tile_size, tile_overlap, mode, seed, resize, precision):
        progress = Progress(image.shape[0])
        device = prepare_device(translator)
        try:
            def run(tile):
                return engine.translate(
                    translator, image, tile_size=tile, tile_overlap=tile_overlap, mode=mode, seed=seed,
                    resize_to_train_size=(resize == "train size"), device=device,
                    dtype=autocast_dtype(precision, device), progress=progress,
                    check_interrupt=Progress.check_interrupt)

            out = with_oom_retry(run, tile_size)
        finally:
            release(translator)
        return (out.cpu(),)


NODE_CLASS_MAPPINGS = {
    "GANPackLoadTranslator": LoadTranslator,
    "GANPackTranslate": TranslateImage,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GANPackLoadTranslator": "Load Translator (Pix2Pix/CycleGAN)",
    "GANPackTranslate": "Translate Image (Pix2Pix/CycleGAN)",
}
