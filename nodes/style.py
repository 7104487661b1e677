"""Artistic style transfer nodes (engine: ``models.style``): Load Style Network and Style Transfer.

The weight files (VGG-19, AdaIN's vgg_normalised + decoder, fast_neural_style networks) cannot be downloaded
at run time, so the loader names the exact file and folder whenever one is missing. The nodes load (and are
listed by the server) without any of these files.
"""
from __future__ import annotations

import contextlib
import os
import re
import time
from typing import List, Optional, Sequence

import torch

import folder_paths

from ..models import style as engine
from .common import (CPU_MEMORY_BUDGET, PRECISIONS, Progress, autocast_dtype, log, mm, prepare_device, release,
                     report, reuse_result_when, seed_input, with_oom_retry)

FOLDER = engine.FOLDER  # "style_transfer"
NETWORK = "GAN_STYLE_NETWORK"
CATEGORY = "GAN/Style"
METHODS = ["auto", "gatys", "adain", "fast"]
GATYS_AUTO_SIZE = 512  # optimisation cost grows with the pixel count: "size 0" means at most this for gatys


# ------------------------------------------------------------------------------------------ file messages
def _folders() -> List[str]:
    try:
        return list(folder_paths.get_folder_paths(FOLDER))
    except KeyError:
        return [os.path.join(folder_paths.models_dir, FOLDER)]


def _files() -> List[str]:
    try:
        return list(folder_paths.get_filename_list(FOLDER))
    except KeyError:
        return []


def _which_files() -> str:
    """One line per method: the files it needs (from the engine's table)."""
    table = engine.required_files()
    lines = [
        "gatys: ONE of " + ", ".join(f.filename for f in table["gatys"]),
        "adain: BOTH " + " + ".join(f.filename for f in table["adain"]),
        "fast: ONE of " + ", ".join(f.filename for f in table["fast"]) + " (one style per file)",
    ]
    return "\n  ".join(lines)


def missing_file_message(name: str, role: str = "") -> str:
    """The error for a style network file that is not on disk: which file, where it goes, where it comes from."""
    known = {f.filename: f for files in engine.required_files().values() for f in files}
    base = os.path.basename(name or "")
    stem = re.sub(r"\.(safetensors|pth|pt|ckpt)$", "", base)
    info = known.get(base) or next((f for f in known.values() if f.filename.rsplit(".", 1)[0] == stem), None)
    where = "\n  ".join(_folders())
    what = f" ({role})" if role else ""
    sub = os.path.dirname(name or "").replace(os.sep, "/")
    text = (f"Style transfer network file '{name}'{what} is missing. Put '{base}' into "
            f"ComfyUI/models/{FOLDER}/{sub + '/' if sub else ''} - this ComfyUI looks in:\n  {where}\n")
    if info is not None:
        text += f"'{info.filename}' is the {info.role}, published by {info.source}."
        if info.sha256_prefix:
            text += f" Its SHA-256 starts with {info.sha256_prefix} (the hex in the file name)."
        text += "\n"
    text += (f"Files each method needs (nothing is downloaded automatically; see the README section "
             f"'Artistic style transfer'):\n  {_which_files()}")
    return text


def _path(name: str, role: str = "") -> str:
    path = folder_paths.get_full_path(FOLDER, name) if name else None
    if path is None or not os.path.isfile(path):
        raise FileNotFoundError(missing_file_message(name or "<no file selected>", role))
    return path


def _find_partner(kind: str, chosen: str) -> Optional[str]:
    """For an AdaIN half, the other half in the same folder by its usual name (vgg_normalised / decoder)."""
    pattern = r"vgg_normali[sz]ed" if kind == "adain_decoder" else r"(^|[/_-])decoder"
    folder = os.path.dirname(chosen)  # a pair lives together (same subfolder of style_transfer)
    names = [f for f in _files() if f != chosen and os.path.dirname(f) == folder
             and re.search(pattern, os.path.basename(f).lower())]
    return sorted(names)[0] if names else None


# ------------------------------------------------------------------------------------------ the network value
class StyleNetworkBundle:
    """What ``GAN_STYLE_NETWORK`` carries: whichever of a VGG-19 (gatys), an AdaIN pair and a fast network the
    chosen files provide. ``methods`` lists the methods it can run, ``default_method`` what ``auto`` picks."""

    def __init__(self, name: str, vgg=None, adain=None, fast=None, files: Sequence[str] = ()):
        self.name, self.vgg, self.adain, self.fast, self.files = name, vgg, adain, fast, list(files)

    @property
    def methods(self) -> List[str]:
        return [m for m, net in (("fast", self.fast), ("adain", self.adain), ("gatys", self.vgg)) if net is not None]

    @property
    def default_method(self) -> str:
        return self.methods[0]

    def module(self, method: str) -> torch.nn.Module:
        net = {"gatys": self.vgg, "adain": self.adain, "fast": self.fast}[method]
        if net is None:
            raise ValueError(self._cannot(method))
        return net

    def _cannot(self, method: str) -> str:
        have = ", ".join(self.methods)
        need = {"gatys": "a VGG-19 file (vgg19-dcbb9e9d.pth, vgg19-d01eb7cb.pth or vgg_normalised.pth)",
                "adain": "AdaIN's decoder.pth together with its vgg_normalised.pth",
                "fast": "a fast_neural_style network (candy.pth, mosaic.pth, rain_princess.pth, udnie.pth)"}[method]
        return (f"method '{method}' needs {need} in ComfyUI/models/{FOLDER}/, loaded with Load Style Network; "
                f"'{self.name}' ({', '.join(self.files)}) can run: {have}")

    def describe(self) -> str:
        return f"{self.name}: methods {', '.join(self.methods)}"


class LoadStyleNetwork:
    DESCRIPTION = ("Loads a style-transfer network from ComfyUI/models/style_transfer, detected from its weights: "
                   "a VGG-19 (torchvision vgg19-dcbb9e9d.pth or the caffe-converted vgg19-d01eb7cb.pth) for Gatys "
                   "optimisation with any style image; AdaIN's decoder.pth with its encoder vgg_normalised.pth for "
                   "fast arbitrary style transfer; or a fast_neural_style network (candy, mosaic, udnie, "
                   "rain_princess) that paints its one trained style. Nothing is downloaded: a missing file is "
                   "reported with its name and the folder to put it in.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (NETWORK,)
    RETURN_NAMES = ("style_network",)
    OUTPUT_TOOLTIPS = ("The loaded network(s), for the Style Transfer node.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        files = _files()
        return {"required": {
            "network_name": (files, {
                "tooltip": "Weight file from ComfyUI/models/style_transfer. VGG-19 (gatys), AdaIN decoder.pth or "
                           "vgg_normalised.pth (adain; the other half is found beside it), or a fast style network "
                           "such as mosaic.pth (fast). The kind is detected from the weights, not the name."}),
            "adain_partner": (["auto", "none"] + files, {
                "default": "auto",
                "tooltip": "Only for AdaIN: the other half of the pair. auto: for decoder.pth the vgg_normalised "
                           "file in the same folder, for vgg_normalised.pth a decoder file if there is one. none: "
                           "the file alone (vgg_normalised.pth then serves as the VGG for gatys)."}),
            "vgg_convention": (["auto", "torchvision", "caffe"], {
                "default": "auto",
                "tooltip": "Input convention of a VGG-19 file. auto: from metadata, keys and the standard file names "
                           "(vgg19-dcbb9e9d = torchvision, vgg19-d01eb7cb = caffe). Set it for renamed files."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, network_name, adain_partner):
        # checked here (instead of ComfyUI's generic "value not in list") so a shared workflow tells its new
        # owner which file to get and where to put it, before anything upstream runs
        for name, role in ((network_name, "network"), (adain_partner, "AdaIN partner")):
            if name in ("auto", "none") and role != "network":
                continue
            path = folder_paths.get_full_path(FOLDER, name) if name else None
            if path is None or not os.path.isfile(path):
                return missing_file_message(name or "<no file selected>", role)
        return True

    def load(self, network_name, adain_partner="auto", vgg_convention="auto"):
        path = _path(network_name)
        convention = None if vgg_convention == "auto" else vgg_convention
        net = engine.load_style_network(path, convention=convention)
        files = [network_name]
        stem = net.name or os.path.splitext(os.path.basename(network_name))[0]
        if net.kind == "fast_style":
            return (StyleNetworkBundle(stem, fast=net, files=files),)
        if net.kind == "vgg19":
            return (StyleNetworkBundle(stem, vgg=net, files=files),)
        # an AdaIN half: find and load the other one
        partner = None
        if adain_partner == "auto":
            partner = _find_partner(net.kind, network_name)
            if partner is None and net.kind == "adain_decoder":
                encoder = os.path.join(os.path.dirname(network_name), "vgg_normalised.pth")
                raise FileNotFoundError(missing_file_message(
                    encoder, f"the AdaIN encoder that {network_name} was trained with; it must sit in the same "
                             "folder as the decoder"))
        elif adain_partner != "none":
            partner = adain_partner
        if partner is None:
            if net.kind == "adain_decoder":
                raise ValueError(f"{network_name} is an AdaIN decoder; it needs its encoder: set adain_partner to "
                                 f"vgg_normalised.pth (or auto)")
            return (StyleNetworkBundle(stem, vgg=net, files=files),)
        other = engine.load_style_network(_path(partner, "AdaIN partner"))
        pair = engine.load_adain(net, other)
        files.append(partner)
        return (StyleNetworkBundle(pair.name, vgg=pair.encoder, adain=pair, files=files),)


# ------------------------------------------------------------------------------------------ transfer
def _gatys_layers(vgg) -> dict:
    """Gatys' default layers, restricted to those the file's weights reach (a vgg_normalised cut at relu4_1)."""
    have = set(vgg.layers)
    style = [l for l in ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1") if l in have]
    content = next(l for l in ("relu4_2", "relu4_1", "relu3_2", "relu3_1", "relu2_2", "relu2_1", "relu1_1")
                   if l in have)
    return {"style_layers": tuple(style), "content_layers": (content,)}


def _working_bytes(image: torch.Tensor, size: int, method: str, tile: int = 0) -> int:
    h, w = image.shape[1:3]
    if size:
        s = size / max(h, w)
        h, w = round(h * s), round(w * s)
    if tile:
        margins = 2 * (engine.tiles.FAST_HALO if method == "fast" else engine.tiles.ENCODER_HALO)
        h, w = min(h, tile + margins), min(w, tile + margins)   # one tile and its margins
    # one frame at a time; activations of the first VGG / TransformerNet blocks dominate (~64 channels at full
    # size, a few layers kept; gatys also keeps them for the backward pass)
    return int(h * w * 64 * 4 * (12 if method == "gatys" else 6))


class StyleTransfer:
    DESCRIPTION = ("Restyles the content image(s) after a style image, with the network from Load Style Network. "
                   "gatys: optimises the picture itself to match the style's VGG-19 feature statistics (best quality, "
                   "any style image, slow: one optimisation per frame). adain: one pass through AdaIN's encoder/decoder "
                   "(any style image, fast, suited to frames). fast: a fast_neural_style network paints its own "
                   "trained style (no style image needed, fastest). Batches are frames, processed one at a time with "
                   "a progress bar; Cancel stops between iterations/frames. The output has the content's size.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The stylised images: same size, frame count and channels as the content.",)
    FUNCTION = "stylize"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "style_network": (NETWORK, {"tooltip": "From Load Style Network."}),
                "content": ("IMAGE", {"tooltip": "Image or frame batch to restyle (any size; alpha passes through)."}),
                "method": (METHODS, {
                    "default": "auto",
                    "tooltip": "auto: what the loaded network is for (fast network -> fast, AdaIN pair -> adain, "
                               "VGG-19 -> gatys). gatys also runs on an AdaIN pair's encoder."}),
                "strength": ("FLOAT", {
                    "default": 1.0, "min": 0.0, "max": 10.0, "step": 0.05,
                    "tooltip": "How much style. gatys: multiplies the style weight (1 = the default balance). adain: "
                               "blend of content and style features (0 = content, 1 = full style). fast: blend of the "
                               "stylised and the original pixels. Above 1 exaggerates (adain/fast extrapolate)."}),
                "iterations": ("INT", {
                    "default": 300, "min": 1, "max": 10000,
                    "tooltip": "gatys only: L-BFGS optimisation iterations (per frame). 100-300 is typical; more "
                               "costs time linearly. adain/fast ignore it."}),
                "size": ("INT", {
                    "default": 0, "min": 0, "max": 8192, "step": 8,
                    "tooltip": "Long side (pixels) the stylisation runs at; the result is resized back to the "
                               "content's size. Style features are scale dependent: smaller = coarser strokes. "
                               f"0 = automatic: at most {GATYS_AUTO_SIZE} for gatys, the content's own size for "
                               "adain/fast."}),
                "preserve_color": (["none", "luminance", "histogram"], {
                    "default": "none",
                    "tooltip": "none: take the style's colours. luminance: keep the content's colours, take only "
                               "the stylised brightness. histogram: recolour the style image to the content's colour "
                               "statistics first."}),
                "frame_consistency": ("BOOLEAN", {
                    "default": True,
                    "tooltip": "adain/fast on frame batches: one colour mapping for all frames (normalisation "
                               "statistics pooled over the sequence) instead of per frame, which removes most "
                               "flicker. No effect on a single image or on gatys."}),
                "temporal_blend": ("FLOAT", {
                    "default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05,
                    "tooltip": "Frames: carry the previous output over where the content did not change (1 = "
                               "static areas stay fixed, 0 = off)."}),
                "seed": seed_input("gatys: seed of the optimisation (frame i uses seed + i); the same seed gives the "
                                   "same pixels. adain/fast are deterministic and ignore it."),
                "precision": (PRECISIONS, {
                    "default": "auto",
                    "tooltip": "auto/float32 (recommended): full precision, bit-for-bit reproducible on one device; "
                               "these networks are small enough to be fast in float32. bfloat16/float16: half "
                               "precision for adain/fast on large frame batches on a GPU; it runs only if this "
                               "network's output on built-in calibration images stays at PSNR >= 50 dB against "
                               "float32 with at most 0.01 % of pixels off by more than 2/255 (checked once, "
                               "remembered), else float32 runs; the console says which. gatys always optimises in "
                               "float32."}),
            },
            "optional": {
                "style": ("IMAGE", {
                    "tooltip": "Style image (gatys, adain). One image for all frames, or one per frame. Not used by "
                               "fast networks, which carry their style in the weights."}),
                "tile_size": ("INT", {
                    "default": 0, "min": 0, "max": 16384, "step": 64,
                    "tooltip": "adain/fast: images larger than this run in tiles of this many pixels. Tiling is "
                               "exact: each tile gets its neighbours' pixels as a margin wider than the network can "
                               "see and normalisation statistics are taken over the whole frame, so there are no "
                               "seams and the pixels equal the untiled result. 0 = automatic: whole images when "
                               "they fit in free device memory (on the CPU within ~4 GiB), else the largest tile that "
                               "fits; after an out-of-memory error the node retries with half the tile, and finishes "
                               "on the CPU if even small tiles do not fit. gatys runs whole images."}),
            },
        }

    @reuse_result_when(lambda inputs: () if _resolved_method(inputs) == "gatys" else ("seed",))
    def stylize(self, style_network, content, method, strength, iterations, size, preserve_color,
                frame_consistency, temporal_blend, seed, precision, style=None, tile_size=0):
        if not isinstance(style_network, StyleNetworkBundle):
            raise TypeError("style_network must come from Load Style Network")
        method = style_network.default_method if method == "auto" else method
        module = style_network.module(method)
        if method != "fast" and style is None:
            raise ValueError(f"method '{method}' paints the style of a style image: connect an IMAGE to 'style' "
                             f"(or load a fast_neural_style network such as mosaic.pth, which needs none)")
        h, w = content.shape[1:3]
        t0 = time.perf_counter()
        work_size = int(size) if size else (min(GATYS_AUTO_SIZE, max(h, w)) if method == "gatys" else 0)
        progress = Progress(content.shape[0] * (int(iterations) if method == "gatys" else 1))
        tile = _choose_tile(method, content, work_size, int(tile_size or 0), precision)
        device = prepare_device(module, _working_bytes(content, work_size, method, tile))
        # Gatys optimises in float32 (L-BFGS on half precision losses is unreliable); feed-forward nets autocast
        # only when asked to (auto = float32: half precision moves these networks' pixels by several levels)
        dtype = autocast_dtype(precision, device) if method != "gatys" and precision != "auto" else None
        if dtype is not None:   # half precision only where the shared accuracy criterion accepts it
            from ..models.style.precision import style_precision

            dtype, verdict = style_precision(module, method, device, dtype, strength=float(strength))
            log.info("Style Transfer: %s ran (%s)", "float32" if dtype is None else str(dtype).split(".")[-1],
                     verdict.summary() if verdict is not None else "half precision not native on this device")
        kwargs = _gatys_layers(module) if method == "gatys" else {}

        def run(tile_px: int, on: torch.device, dt: Optional[torch.dtype] = dtype) -> torch.Tensor:
            autocast = torch.autocast(on.type, dtype=dt) if dt is not None else contextlib.nullcontext()
            with autocast:
                return engine.style_transfer(
                    content, style, method=method, network=module, strength=float(strength),
                    iterations=int(iterations), size=work_size or None, seed=int(seed),
                    preserve_color=None if preserve_color == "none" else preserve_color,
                    consistency=bool(frame_consistency), temporal_blend_weight=float(temporal_blend),
                    progress=progress, check_interrupt=Progress.check_interrupt, device=on, batch_size=1,
                    tile_size=tile_px, **kwargs)

        try:
            if method == "gatys":
                out = run(0, device)
            else:
                try:
                    out = with_oom_retry(lambda t: run(t, device), tile, smallest=128)
                except mm.OOM_EXCEPTION:
                    if device.type == "cpu":
                        raise
                    # even the smallest tiles did not fit next to what else is loaded: finish on the CPU
                    mm.soft_empty_cache(True)
                    log.warning("style transfer: out of GPU memory for %dx%d frames, continuing on the CPU", w, h)
                    module.to("cpu")
                    cpu = torch.device("cpu")   # float32 there: half precision is a GPU speed option
                    out = run(_choose_tile(method, content, work_size, int(tile_size or 0), "float32", cpu), cpu,
                              None)
        finally:
            release(module)
        # what ran, and the settings that had no effect
        ignored = []
        if method != "gatys" and int(iterations) != 300:
            ignored.append(f"iterations {iterations}: only gatys optimises")
        if method == "fast" and style is not None:
            ignored.append("style image: a fast network paints the one style it was trained on")
        if method == "gatys" and int(tile_size or 0) > 0:
            ignored.append(f"tile_size {tile_size}: gatys runs whole images")
        if method == "gatys" and precision not in ("auto", "float32"):
            ignored.append(f"precision {precision}: gatys optimises in float32")
        ran = ("whole images" if method == "gatys" or not tile or tile >= max(h, w)
               else f"tiles of {tile} px")
        lines = [f"{method}, {content.shape[0]} frame(s) of {w}x{h}, {ran}, "
                 f"{'float32' if dtype is None else str(dtype).replace('torch.', '')} "
                 f"({time.perf_counter() - t0:.1f} s)"]
        return {"ui": report("Style Transfer", None, lines, ignored), "result": (out.float().cpu(),)}


def _resolved_method(inputs: dict) -> str:
    net = inputs.get("style_network")
    method = inputs.get("method")
    return getattr(net, "default_method", "gatys") if method == "auto" else method


def _choose_tile(method: str, content: torch.Tensor, work_size: int, tile_size: int, precision: str,
                 device: Optional[torch.device] = None) -> int:
    """tile_size 0 (adain, fast): whole images when one fits in half the free device memory (on the CPU
    within ~4 GiB, so 4K frames do not take all RAM), else the largest tile that fits. gatys: never tiled."""
    if method == "gatys":
        return 0
    if tile_size > 0:
        return tile_size
    device = device if device is not None else mm.get_torch_device()
    free = mm.get_free_memory(device)
    if device.type == "cpu":
        free = min(free, CPU_MEMORY_BUDGET)
    h, w = content.shape[1:3]
    if work_size:
        s = work_size / max(h, w)
        h, w = round(h * s), round(w * s)
    return engine.auto_tile_size(int(h), int(w), free_bytes=free, method=method,
                                 dtype=autocast_dtype(precision, device) if precision != "auto" else None)


NODE_CLASS_MAPPINGS = {
    "GANPackLoadStyleNetwork": LoadStyleNetwork,
    "GANPackStyleTransfer": StyleTransfer,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GANPackLoadStyleNetwork": "Load Style Network (VGG / AdaIN / fast)",
    "GANPackStyleTransfer": "Style Transfer (Gatys / AdaIN / fast)",
}
