"""Keyframe stylisation nodes: learn a painted look from a few keyframes, save it as a translator file.

Engine: ``models.keyframe.train_from_keyframes`` and ``models.translator.save_translator``. The trained network
is an ordinary ``GAN_TRANSLATOR``, so the translator family's **Translate Image** node applies it to a shot.
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections import OrderedDict

import torch

import comfy.model_management as mm
import folder_paths

from ..models import validate
from ..models.image import image_to_gan
from .common import Progress, offload_device, seed_input, send_text, torch_device

log = logging.getLogger("comfyui-gan-pack")

CATEGORY = "GAN/Shots"
TRANSLATOR = "GAN_TRANSLATOR"
MODEL_FOLDER = "pix2pix"
CACHE_SIZE = 4

try:  # the engine's default, shown in the UI; the node still loads if the engine cannot be imported yet
    from ..models.keyframe import DEFAULT_STEPS
except Exception:  # pragma: no cover - reported when the node runs
    DEFAULT_STEPS = 1500

# (inputs, steps, seed, device) -> trained translator; re-queuing a workflow (or the renderer's next chunk)
# reuses the training instead of repeating minutes of work
_CACHE: "OrderedDict[str, torch.nn.Module]" = OrderedDict()


def _hash_tensor(h, t) -> None:
    if t is None:
        h.update(b"none")
        return
    t = t.detach().to("cpu").contiguous()
    h.update(f"{tuple(t.shape)}{t.dtype}".encode())
    h.update(t.numpy().tobytes())


def cache_key(keyframes, painted, mask, steps, seed, device) -> str:
    h = hashlib.sha256()
    for t in (keyframes, painted, mask):
        _hash_tensor(h, t)
    h.update(f"steps={steps};seed={seed};device={device}".encode())
    return h.hexdigest()


class TrainTranslatorFromKeyframes:
    DESCRIPTION = ("Learns a painted look from a few keyframes: give the original frames and the same frames "
                   "painted (graded, inked, retouched) and it trains a compact image-to-image network on patches "
                   "of those pairs, from scratch (no download). Apply the result to the whole shot with Translate "
                   "Image (Pix2Pix/CycleGAN) and keep it with Save Translator. Training takes minutes on a CPU "
                   "(much less on a GPU), shows the loss live and can be cancelled; the result is cached, so "
                   "re-queuing with the same keyframes, steps and seed does not train again. The same inputs and "
                   "seed give the same network on a given device.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (TRANSLATOR,)
    RETURN_NAMES = ("translator",)
    OUTPUT_TOOLTIPS = ("The trained translator: connect it to Translate Image or Save Translator.",)
    FUNCTION = "train"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "keyframes": ("IMAGE", {"tooltip": "The original frames that were painted (1-4 keyframes as a batch)."}),
            "painted_keyframes": ("IMAGE", {"tooltip":
                                  "The same frames painted in the target look, in the same order and size."}),
            "steps": ("INT", {"default": DEFAULT_STEPS, "min": 1, "max": 100_000, "tooltip":
                      "Training steps. The default learns a look in a few minutes on a CPU; more steps sharpen "
                      "details. Each step costs the same whatever the keyframe size."}),
            "seed": seed_input("Seed of the initial weights and the patch sampling; same seed, same network."),
        }, "optional": {
            "mask": ("MASK", {"tooltip": "Where the keyframes were painted (white = painted). Without it every "
                              "pixel of the painted keyframes is learned."}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    def train(self, keyframes, painted_keyframes, steps, seed, mask=None, unique_id=None):
        from ..models.keyframe import train_from_keyframes

        if keyframes.shape[0] != painted_keyframes.shape[0]:
            raise ValueError(f"{keyframes.shape[0]} keyframes but {painted_keyframes.shape[0]} painted keyframes: "
                             f"give one painted version per keyframe, in the same order")
        if keyframes.shape[1:3] != painted_keyframes.shape[1:3]:
            raise ValueError(f"keyframes are {keyframes.shape[2]}x{keyframes.shape[1]} but painted keyframes are "
                             f"{painted_keyframes.shape[2]}x{painted_keyframes.shape[1]}: paint at the frame size")
        device = torch_device()
        key = cache_key(keyframes[..., :3], painted_keyframes[..., :3], mask, steps, seed, device)
        if key in _CACHE:
            _CACHE.move_to_end(key)
            send_text(unique_id, "trained translator reused from the cache")
            log.info("keyframe training: reused the cached translator (same keyframes, steps, seed)")
            return (_CACHE[key],)

        inputs = image_to_gan(keyframes[..., :3])
        targets = image_to_gan(painted_keyframes[..., :3])
        masks = None
        if mask is not None:
            masks = mask if mask.ndim == 3 else mask.reshape(-1, *mask.shape[-2:])
            if masks.shape[-2:] != inputs.shape[-2:]:
                masks = torch.nn.functional.interpolate(masks[:, None].float(), size=inputs.shape[-2:],
                                                        mode="bilinear", align_corners=False)[:, 0]
            masks = masks[:, None]
        bar = Progress(steps)
        t0 = time.monotonic()
        state = {"sent": 0.0, "logged": -1}

        def progress(step, total, loss):
            bar(step, total)
            now = time.monotonic()
            if now - state["sent"] > 0.5 or step == total:
                state["sent"] = now
                send_text(unique_id, f"step {step}/{total}  loss {loss:.4f}  ({now - t0:.0f} s)")
            tenth = step * 10 // max(1, total)
            if tenth != state["logged"]:
                state["logged"] = tenth
                log.info("keyframe training: step %d/%d loss %.4f (%.0f s)", step, total, loss, now - t0)

        mm.free_memory(256 * 1024 * 1024, device)
        # ComfyUI runs nodes under torch.inference_mode(): training needs autograd back, and tensors made
        # outside inference mode (inference tensors cannot take part in autograd)
        with torch.inference_mode(False), torch.enable_grad():
            inputs, targets = inputs.clone(), targets.clone()
            masks = masks.clone() if masks is not None else None
            translator = train_from_keyframes(inputs, targets, steps=steps, seed=seed, masks=masks,
                                              progress=progress, check_interrupt=Progress.check_interrupt,
                                              device=device)
        translator.to(offload_device())
        mm.soft_empty_cache()
        _CACHE[key] = translator
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return (translator,)


def _safe_filename(name: str) -> str:
    """``name.safetensors`` for a plain file name (models.validate: length, characters, not hidden)."""
    full = validate.check_file_name(name if isinstance(name, str) else str(name), what="filename",
                                    extension=".safetensors", node="Save Translator")
    stem = full[:-len(".safetensors")]
    if not re.fullmatch(r"[\w][\w .\-]*", stem):
        raise validate.InputError(f"Save Translator: filename {stem[:60]!r} is not usable: use letters, digits, "
                                  f"'_', '-', '.' and spaces (no folders; the file goes into models/{MODEL_FOLDER}/)")
    return full


class SaveTranslator:
    DESCRIPTION = ("Saves a translator (e.g. one trained from keyframes) as a .safetensors file in ComfyUI's "
                   "models/pix2pix folder, with its architecture in the file, so Load Translator lists it by name "
                   "and a shared workflow finds it on another machine.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("model_name",)
    OUTPUT_TOOLTIPS = ("The file name to pick in Load Translator.",)
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "translator": (TRANSLATOR, {"tooltip": "The translator to save (from Train Translator from Keyframes)."}),
            "filename": ("STRING", {"default": "keyframe_look", "tooltip":
                         "File name (without folder); .safetensors is added. Saved in the first models/pix2pix folder."}),
            "overwrite": ("BOOLEAN", {"default": True, "tooltip":
                          "Replace a file of the same name; off: stop with an error instead."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, filename=None):
        if isinstance(filename, str):
            try:
                _safe_filename(filename)
            except ValueError as e:
                return str(e)
        return True

    def save(self, translator, filename, overwrite):
        from ..models.translator import save_translator

        name = _safe_filename(filename)
        folder = folder_paths.get_folder_paths(MODEL_FOLDER)[0]
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, name)
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} already exists; choose another file name or turn overwrite on")
        save_translator(translator, path, metadata={"saved_by": "GANPackSaveTranslator"})  # atomic
        log.info("saved translator to %s", path)
        return {"ui": {"text": [f"saved {name} in {folder}"]}, "result": (name,)}


NODE_CLASS_MAPPINGS = {
    "GANPackTrainTranslatorFromKeyframes": TrainTranslatorFromKeyframes,
    "GANPackSaveTranslator": SaveTranslator,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GANPackTrainTranslatorFromKeyframes": "Train Translator from Keyframes (GAN)",
    "GANPackSaveTranslator": "Save Translator (GAN)",
}
