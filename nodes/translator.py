"""Pix2Pix / CycleGAN translator nodes (engine: ``models.translator``).

Importing this module also registers the translator architectures with spandrel (when ComfyUI's spandrel is
importable), so translator files in ``models/upscale_models`` run through the core upscale-model nodes too.
"""
from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections import OrderedDict

import comfy.model_management as mm

from .. import models as engine
from ..models.translator import activation_bytes_per_pixel, auto_tile_size as engine_auto_tile_size
from .common import Progress, autocast_dtype, list_models, precision_input, prepare_device, release, report, \
    resolve_model, reuse_result_when, seed_input, torch_device, with_oom_retry

log = logging.getLogger("comfyui-gan-pack")

FOLDERS = ("pix2pix", "cyclegan")
TRANSLATOR = "GAN_TRANSLATOR"
CATEGORY = "GAN/Translate"
DIRECTIONS = ["auto", "AtoB", "BtoA"]


def _install_spandrel() -> bool:
    """Register the translator architectures in spandrel's registry (guarded: the nodes work without it)."""
    try:
        from ..models.translator import spandrel_arch
    except Exception as exc:  # noqa: BLE001 - an engine without the spandrel bridge is not fatal
        log.info("comfyui-gan-pack: spandrel bridge not available (%s)", exc)
        return False
    try:
        return spandrel_arch.install() is not False
    except Exception:  # noqa: BLE001 - a spandrel API change must not take the nodes down
        log.exception("comfyui-gan-pack: could not register the translator architectures with spandrel")
        return False


SPANDREL_INSTALLED = _install_spandrel()


# ------------------------------------------------------------------------------------------ loading
_GAB = re.compile(r"(?i)(G_)([AB])(?=\.[^.]+$)")


def sibling_for_direction(path: str, direction: str) -> tuple[str, bool]:
    """(file to load, whether the file name itself decided the direction).

    ``latest_net_G_A.pth`` with direction BtoA -> ``latest_net_G_B.pth`` beside it (and vice versa); a file
    whose name has no ``G_A``/``G_B`` is returned as is (the engine picks the generator inside it)."""
    want = {"AtoB": "A", "BtoA": "B"}.get(direction)
    folder, name = os.path.split(path)
    m = _GAB.search(name)
    if want is None or not m:
        return path, False
    if m.group(2).upper() == want:
        return path, True
    other_name = name[: m.start(2)] + (want if m.group(2).isupper() else want.lower()) + name[m.end(2):]
    other = os.path.join(folder, other_name)
    if not os.path.isfile(other):
        raise FileNotFoundError(
            f"direction {direction} needs the generator '{other_name}' beside '{name}' in {folder}: a CycleGAN "
            f"checkpoint's G_A translates A->B and its G_B translates B->A. Put '{other_name}' there, or choose "
            f"direction auto to use '{name}' as it is.")
    return other, True


class _Cache:
    """Loaded translators by (path, mtime, size, direction); a few entries, most recent last."""

    def __init__(self, capacity: int = 4):
        self.capacity = capacity
        self.items: "OrderedDict[tuple, object]" = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key):
        with self.lock:
            value = self.items.get(key)
            if value is not None:
                self.items.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        with self.lock:
            self.items[key] = value
            self.items.move_to_end(key)
            while len(self.items) > self.capacity:
                self.items.popitem(last=False)


CACHE = _Cache()


def load_translator_file(path: str, direction: str = "auto"):
    """Load (or reuse) the translator in ``path`` for ``direction``; errors say which file and what is wrong."""
    path, by_name = sibling_for_direction(path, direction)
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size, direction)
    cached = CACHE.get(key)
    if cached is not None:
        return cached
    kwargs = {} if by_name or direction == "auto" else {"direction": direction}
    try:
        translator = engine.load_translator(path, device="cpu", name=os.path.splitext(os.path.basename(path))[0],
                                            **kwargs)
    except engine.TranslatorLoadError as exc:
        raise engine.TranslatorLoadError(f"{exc}\n(file: {path})") from exc
    translator.eval()
    for p in translator.parameters():
        p.requires_grad_(False)
    # what the chosen direction really did, for the nodes' reports
    held = list(getattr(translator, "directions_in_file", []) or [])
    base = os.path.basename(path)
    notes = []
    if by_name:
        used = f"{direction} ({base})"
    elif direction in held:
        used = f"{direction} (generator {'G_A' if direction == 'AtoB' else 'G_B'} in {base})"
    elif held:
        used = f"AtoB (G_A in {base})"
    else:
        used = f"the only generator in {base}"
        if direction == "BtoA":
            notes.append(f"direction BtoA: {base} holds a single generator, which translates one way only; it "
                         f"was used as it is (for B->A choose a file trained that way, e.g. latest_net_G_B.pth)")
    translator.gan_pack_direction = used
    translator.gan_pack_notes = notes
    CACHE.put(key, translator)
    return translator


class LoadTranslator:
    DESCRIPTION = ("Loads a Pix2Pix or CycleGAN generator: reference checkpoints (latest_net_G.pth, "
                   "latest_net_G_A.pth / latest_net_G_B.pth), the official pretrained models (facades, "
                   "edges2shoes, maps, horse2zebra, monet2photo, style_monet, ...), .safetensors conversions and "
                   "the pack's bundled examples. The architecture (ResNet or U-Net, blocks, depth, normalisation, "
                   "channels) is read from the file itself. Put files in ComfyUI/models/pix2pix or "
                   "ComfyUI/models/cyclegan.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (TRANSLATOR,)
    RETURN_NAMES = ("translator",)
    OUTPUT_TOOLTIPS = ("The loaded generator, for Translate Image (Pix2Pix/CycleGAN).",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (list_models(FOLDERS), {
                "tooltip": "Generator file: pix2pix/... from ComfyUI/models/pix2pix, cyclegan/... from "
                           "ComfyUI/models/cyclegan (also the extra_model_paths.yaml keys pix2pix: and cyclegan:), "
                           "plus the pack's bundled examples. .pth/.pt/.ckpt (read without running code) or "
                           ".safetensors."}),
            "direction": (DIRECTIONS, {
                "default": "auto",
                "tooltip": "CycleGAN direction. auto: the chosen file as it is (a checkpoint holding both G_A and "
                           "G_B gives G_A). AtoB / BtoA: for latest_net_G_A.pth / latest_net_G_B.pth the file of "
                           "that direction beside the chosen one (G_A: A->B, G_B: B->A); for one file holding "
                           "both generators, the one inside it. A file with a single generator (e.g. "
                           "horse2zebra.pth) only goes one way and is used as it is (the node says so)."}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    @classmethod
    def VALIDATE_INPUTS(cls, model_name, direction):
        # Checked here instead of by the combo list so a shared workflow with a missing model says which file
        # is missing and which folder it goes in (ComfyUI's own message would only say "not in list").
        try:
            path = resolve_model(model_name, FOLDERS)
            sibling_for_direction(path, direction)
        except FileNotFoundError as exc:
            return str(exc)
        if direction not in DIRECTIONS:
            return f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}"
        return True

    @classmethod
    def IS_CHANGED(cls, model_name, direction, **_hidden):
        try:
            path, _ = sibling_for_direction(resolve_model(model_name, FOLDERS), direction)
            st = os.stat(path)
            return f"{path}:{st.st_mtime_ns}:{st.st_size}"
        except OSError:
            return ""

    def load(self, model_name, direction, unique_id=None):
        translator = load_translator_file(resolve_model(model_name, FOLDERS), direction)
        t = translator
        lines = [f"{getattr(t, 'arch', '?')} generator, direction: {getattr(t, 'gan_pack_direction', direction)}"]
        ui = report("Load Translator", unique_id, lines, getattr(t, "gan_pack_notes", []))
        return {"ui": ui, "result": (translator,)}


class TranslateImage:
    DESCRIPTION = ("Runs a Pix2Pix/CycleGAN generator on an IMAGE batch of any size and aspect. Sizes the network "
                   "cannot take are padded by reflection and cropped back; large frames are tiled with overlap "
                   "and feathered blending; InstanceNorm generators (every CycleGAN) use whole-frame "
                   "normalisation statistics so all tiles share one colour balance. Alpha passes through "
                   "untouched; 1-channel models get the luma. Memory stays bounded on long batches.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The translated images: same size and count as the input.",)
    FUNCTION = "translate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "translator": (TRANSLATOR, {"tooltip": "A generator from Load Translator (Pix2Pix/CycleGAN)."}),
            "image": ("IMAGE", {"tooltip": "Image batch (frames) to translate: any size, 1, 3 or 4 channels."}),
            "tile_size": ("INT", {"default": 0, "min": 0, "max": 16384, "step": 8, "tooltip":
                          "Tile edge in pixels. 0 = automatic (recommended): whole frames when they fit in the "
                          "memory available now (GPU memory, or the computer's free RAM on the CPU), else the "
                          "largest tiles that fit; the node's text says which ran. Tiles give the same pixels as "
                          "the whole frame and cost about 1.1-1.4x its time. After an out-of-memory error the node "
                          "retries with half the tile size."}),
            "tile_overlap": ("INT", {"default": 0, "min": 0, "max": 2048, "step": 8, "tooltip":
                             "Overlap between neighbouring tiles, blended with a feathered ramp so no seam shows. "
                             "0 = automatic (from the network's receptive field). Must be smaller than the tile; "
                             "at most three quarters of the tile is used (larger values are clamped, so tiles "
                             "advance by at least a quarter tile and the cost stays bounded)."}),
            "mode": (["eval", "reference"], {"default": "eval", "tooltip":
                     "eval: deterministic inference (stored BatchNorm statistics, no dropout). reference: what "
                     "the reference pix2pix test.py does without --eval (BatchNorm on the batch's statistics, "
                     "dropout active, driven by the seed so it is reproducible); the loaded model is never "
                     "modified. Makes no difference to InstanceNorm generators without dropout."}),
            "seed": seed_input("Seed for the dropout of reference mode; unused in eval mode."),
            "resize_to_train_size": ("BOOLEAN", {"default": False, "tooltip":
                                     "off: run at the input's own resolution (recommended; padded to the multiple "
                                     "the network needs). on: resize to the model's training size (e.g. 256x256) "
                                     "and back, like the reference's default test-time preprocessing."}),
            "precision": precision_input(),
            "batch_size": ("INT", {"default": 4, "min": 1, "max": 256, "tooltip":
                           "Frames sent through the network at once. Larger is faster on a GPU, smaller needs "
                           "less memory; the output does not depend on it in eval mode."}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    @reuse_result_when(lambda inputs: ("seed",) if inputs["mode"] == "eval" else ())
    def translate(self, translator, image, tile_size, tile_overlap, mode, seed, resize_to_train_size, precision,
                  batch_size, unique_id=None):
        if tile_size > 0 and tile_overlap >= tile_size:
            raise ValueError(f"Translate Image: tile_overlap {tile_overlap} must be smaller than tile_size "
                             f"{tile_size} (at most three quarters of the tile is used; 0 = automatic)")
        if image.ndim != 4:
            raise ValueError(f"Translate Image expects an IMAGE batch [frames, height, width, channels], got "
                             f"shape {tuple(image.shape)}")
        t0 = time.perf_counter()
        progress = Progress(image.shape[0])
        device = torch_device()
        dtype = autocast_dtype(precision, device)
        free = int(mm.get_free_memory(device))
        tile = choose_tile_size(translator, image, tile_size, batch_size, device, dtype, free=free)
        device = prepare_device(translator, working_bytes=working_bytes(translator, image, tile, batch_size, dtype))
        plans = []
        try:
            def run(tile):
                plan = engine.plan_translation(
                    translator, tuple(image.shape), tile_size=tile, tile_overlap=tile_overlap, mode=mode,
                    resize_to_train_size=bool(resize_to_train_size), batch_size=batch_size, device=device,
                    dtype=dtype)
                plans.append(plan)
                return engine.translate(translator, image, seed=seed, progress=progress,
                                        check_interrupt=Progress.check_interrupt, plan=plan)

            out = with_oom_retry(run, tile)
            log_precision(translator, device, dtype, mode)
        finally:
            release(translator)
        plan = plans[-1]
        seconds = time.perf_counter() - t0
        lines = [f"{plan} ({seconds:.1f} s)",
                 f"direction: {getattr(translator, 'gan_pack_direction', 'as loaded')}; precision {precision} -> "
                 f"{plan.precision}"]
        if tile_size == 0:
            need = engine.plan_translation(translator, tuple(image.shape), tile_size=0, mode=mode,
                                           resize_to_train_size=bool(resize_to_train_size), batch_size=batch_size,
                                           dtype=dtype).peak_bytes if plan.tiled else plan.peak_bytes
            lines.append(f"tile_size auto: {'tiles' if plan.tiled else 'whole frame'} (whole frame needs about "
                         f"{need / 2 ** 30:.1f} GB, {free / 2 ** 30:.1f} GB available on {device})")
        if len(plans) > 1:
            lines.append(f"out of memory with larger tiles: retried with {plan.tile} px tiles")
        ignored = list(getattr(translator, "gan_pack_notes", [])) + list(plan.notes)
        if mode == "eval" and seed not in (0, None):
            ignored.append(f"seed {seed}: eval mode draws nothing at random (the seed drives reference-mode dropout)")
        ui = report("Translate Image", unique_id, lines, ignored)
        return {"ui": ui, "result": (out.cpu().float(),)}




def log_precision(translator, device, dtype, mode) -> None:
    """One console line: which precision ran and why (the engine's cached calibration verdict)."""
    try:
        info = engine.effective_precision(translator, device, dtype, mode)
    except Exception as exc:  # a report must never fail a render
        log.debug("precision report unavailable: %s", exc)
        return
    log.info("Translate Image: %s ran (%s requested; %s)", info["precision"], info["requested"], info["reason"])


def choose_tile_size(translator, image, tile_size: int, batch_size: int, device, dtype, free=None) -> int:
    """tile_size 0: the fastest plan that fits -- whole frames when a batch of them fits in half the memory
    available now (ComfyUI's estimate: free device memory on a GPU, the system's available memory on the CPU),
    else the largest tile that fits (tiles cost ~1.1-1.4x the whole frame, see the README)."""
    if tile_size > 0:
        return tile_size
    if free is None:
        free = mm.get_free_memory(device)
    return engine_auto_tile_size(translator, int(image.shape[1]), int(image.shape[2]), free_bytes=int(free),
                                 batch_size=min(batch_size, int(image.shape[0])), dtype=dtype)


def working_bytes(translator, image, tile_size: int, batch_size: int, dtype) -> int:
    """Activation memory of one chunk of frames (or tiles), for ComfyUI to make room before we run."""
    h, w = int(image.shape[1]), int(image.shape[2])
    if tile_size:
        h, w = min(h, tile_size), min(w, tile_size)
    per_px = activation_bytes_per_pixel(translator, dtype)
    return int(h * w * per_px * min(batch_size, int(image.shape[0])))


NODE_CLASS_MAPPINGS = {
    "GANPackLoadTranslator": LoadTranslator,
    "GANPackTranslate": TranslateImage,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GANPackLoadTranslator": "Load Translator (Pix2Pix/CycleGAN)",
    "GANPackTranslate": "Translate Image (Pix2Pix/CycleGAN)",
}
