"""StyleGAN2-ADA / StyleGAN3 nodes (engine: ``models.stylegan``): seeds -> W+ latents -> images, style mixing,
latent walks, projection of real images, and conversion of any supported file to a safe ``.safetensors``.

``STYLEGAN_LATENT`` is a dict (all tensors float32 on the CPU):

* ``ws`` ``[N, num_ws, w_dim]`` -- the W+ latents;
* ``z`` ``[N, z_dim]`` when the latents came straight from seeds (else ``None``), for walks in Z;
* ``labels`` -- one string per latent (``"seed 5"``, ``"seed 1 x seed 7"`` ...);
* ``psi``, ``cutoff``, ``class_index`` -- the truncation/class the ws were mapped with (Z walks re-map with them);
* ``num_ws``, ``w_dim`` -- to refuse a latent made for another model;
* ``grid`` -- ``{"rows", "columns", "blank"}`` when the batch is a style-mixing grid (``blank``: indices of cells
  left empty, like the top-left corner of the reference figure).
"""
from __future__ import annotations

import collections
import os
import re
import threading
import time
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F

import folder_paths

from ..models import image as gan_image
from ..models import stylegan as sg
from ..models import validate
from .common import (Progress, list_models, prepare_device, release, report, resolve_model, reuse_result_when,
                     seed_input)
from .paths import BUNDLED_DIR

CATEGORY = "GAN/StyleGAN"
MODEL = "STYLEGAN"
LATENT = "STYLEGAN_LATENT"
FOLDERS = ("stylegan",)

SEEDS_TOOLTIP = ("Seeds: one number, a list and/or ranges, e.g. 1,5,10-12 (one latent per seed, in that order). "
                 "A seed gives the same image as the reference StyleGAN tools.")
PSI_TOOLTIP = ("Truncation psi: 1 = no truncation; lower values pull the latents towards the average image "
               "(less variety, fewer artefacts); 0 = the average image.")


# --------------------------------------------------------------------------------------------- helpers
def make_latent(ws, *, z=None, labels=None, psi=1.0, cutoff=None, class_index=0, grid=None) -> Dict:
    ws = ws.detach().float().cpu()
    return {"ws": ws, "z": None if z is None else z.detach().float().cpu(),
            "labels": list(labels) if labels is not None else [str(i) for i in range(ws.shape[0])],
            "psi": float(psi), "cutoff": cutoff, "class_index": int(class_index),
            "num_ws": int(ws.shape[1]), "w_dim": int(ws.shape[2]), "grid": grid}


def check_latent(G, latent, what="latent") -> None:
    if not isinstance(latent, dict) or "ws" not in latent:
        raise ValueError(f"{what} is not a STYLEGAN_LATENT")
    ws = latent["ws"]
    if tuple(ws.shape[1:]) != (G.num_ws, G.w_dim):
        raise ValueError(f"{what} has {ws.shape[1]} ws of size {ws.shape[2]} but this model needs {G.num_ws} of "
                         f"size {G.w_dim}: the latent was made with another StyleGAN")


def _cutoff(value) -> Optional[int]:
    return None if value is None or int(value) <= 0 else int(value)


def _class_vector(G, class_index: int, n: int, device) -> Optional[torch.Tensor]:
    """One-hot classes for a conditional model (the engine validates the index); None for unconditional ones."""
    if not G.c_dim:
        return None
    return sg.class_to_c(G, int(class_index), batch=n).to(device=device, dtype=torch.float32)


def _map(G, z, psi, cutoff, class_index, device):
    with torch.inference_mode():
        c = _class_vector(G, class_index, z.shape[0], device)
        return G.mapping(z.to(device), c, truncation_psi=psi, truncation_cutoff=_cutoff(cutoff)).float().cpu()


def synthesize_latent(G, latent, *, noise_mode="const", seed=0, batch_size=4, progress=None,
                      check_interrupt=None) -> torch.Tensor:
    """W+ latents -> IMAGE ``[N, H, W, 3]`` in [0, 1] (``(x + 1) / 2`` clamped, as the reference saves images),
    on the generator's device. Grid cells listed as blank stay black and are not rendered. ``random`` noise is
    drawn per image from ``seed + index`` (the engine's rule), so the pixels do not depend on ``batch_size``."""
    ws = latent["ws"]
    n = ws.shape[0]
    blank = set((latent.get("grid") or {}).get("blank") or [])
    todo = [i for i in range(n) if i not in blank]
    out = torch.zeros(n, G.img_resolution, G.img_resolution, 3)
    if todo:
        def report(done, total):
            if progress:
                progress(done + len(blank), n)

        img = sg.synthesize(G, ws[todo], noise_mode=noise_mode, seed=seed, batch_size=batch_size,
                            progress=report, check_interrupt=check_interrupt)
        out[todo] = gan_image.gan_to_image(gan_image.convert_channels(img[:, :3], 3))
    return out


# --------------------------------------------------------------------------------------------- model cache
_CACHE: "collections.OrderedDict[tuple, torch.nn.Module]" = collections.OrderedDict()
_CACHE_SIZE = 2
_CACHE_LOCK = threading.Lock()


def load_model(model_name: str):
    """The generator of a dropdown choice, cached by path + modification time + size (a changed file reloads)."""
    path = resolve_model(model_name, FOLDERS)
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    # ComfyUI runs nodes under torch.inference_mode(); tensors made there could never take part in autograd,
    # which Project Image needs, so the cached model is built outside it
    with torch.inference_mode(False):
        G = sg.load_stylegan(path, device="cpu")
    G.eval()
    for p in G.parameters():
        p.requires_grad_(False)
    with _CACHE_LOCK:
        for k in [k for k in _CACHE if k[0] == key[0]]:
            del _CACHE[k]
        _CACHE[key] = G
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return G


def validate_model_name(model_name: str):
    """``VALIDATE_INPUTS`` of the model dropdowns: a missing file is refused before anything runs, with a message
    that names the file and the folders it belongs in (a shared workflow tells its new owner what to do)."""
    try:
        resolve_model(model_name, FOLDERS)
    except FileNotFoundError as e:
        return str(e)
    return True


def _model_mtime(model_name: str) -> str:
    try:
        path = resolve_model(model_name, FOLDERS)
        st = os.stat(path)
        return f"{path}:{st.st_mtime_ns}:{st.st_size}"
    except (FileNotFoundError, OSError):
        return model_name


def _model_input(tooltip="Generator file from ComfyUI/models/stylegan (or the pack's bundled model)."):
    return (list_models(FOLDERS, prefixed=False), {"tooltip": tooltip})


# --------------------------------------------------------------------------------------------- nodes
class LoadStyleGAN:
    DESCRIPTION = ("Loads a StyleGAN2-ADA or StyleGAN3 (-T/-R) generator from ComfyUI/models/stylegan: official "
                   "network pickles (read safely: nothing stored in the file is executed; a pickle that asks for "
                   "anything else is refused), rosinality .pt files, bare state dicts, or the pack's .safetensors. "
                   "The pack's bundled 64x64 islands model works with no download.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("stylegan",)
    OUTPUT_TOOLTIPS = ("The generator (G_ema), for StyleGAN Latent, Synthesize, Style Mix, Interpolate and Project.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": _model_input()}}

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        return validate_model_name(model_name)

    @classmethod
    def IS_CHANGED(cls, model_name):
        return _model_mtime(model_name)

    def load(self, model_name):
        return (load_model(model_name),)


class StyleGANLatent:
    DESCRIPTION = ("Seeds -> W+ latents, exactly as the reference scripts draw z (the same seed gives the same "
                   "image as the official tools), with truncation and, for conditional models, a class. Feed the "
                   "result to Synthesize, Style Mix or Interpolate.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("One W+ latent per seed, in the order given.",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator the latents are for (its mapping network is used)."}),
            "seeds": ("STRING", {"default": "1-4", "tooltip": SEEDS_TOOLTIP}),
            "truncation_psi": ("FLOAT", {"default": 0.7, "min": -2.0, "max": 2.0, "step": 0.05,
                                         "tooltip": PSI_TOOLTIP}),
            "truncation_cutoff": ("INT", {"default": 0, "min": -1, "max": 64, "tooltip":
                                  "Truncate only the first N layers (the coarse ones); 0 or -1 = truncate all "
                                  "layers, like the reference default."}),
            "class_index": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip":
                            "Class for conditional models (e.g. CIFAR-10: 0-9); ignored by unconditional models."}),
        }}

    def make(self, stylegan, seeds, truncation_psi, truncation_cutoff, class_index):
        seed_list = sg.parse_seeds(seeds)
        z = sg.seeds_to_z(seed_list, stylegan.z_dim)
        z = torch.as_tensor(z, dtype=torch.float32)
        device = prepare_device(stylegan)
        try:
            ws = _map(stylegan, z, truncation_psi, truncation_cutoff, class_index, device)
        finally:
            release(stylegan)
        return (make_latent(ws, z=z, labels=[f"seed {s}" for s in seed_list], psi=truncation_psi,
                            cutoff=_cutoff(truncation_cutoff), class_index=class_index),)


LAYER_PRESETS = ["coarse", "middle", "fine", "custom"]


class StyleMix:
    DESCRIPTION = ("Style mixing: the row latents keep their own layers except the chosen ones, which are copied "
                   "from the column latents. Coarse layers carry pose, shape and layout; middle layers features; "
                   "fine layers colour and texture. Presets scale with the model's number of layers (coarse = the "
                   "reference default 0-6 of an 18-layer model). grid: every row with every column plus the "
                   "originals as a header row and column, like the reference style-mixing figure (arrange it with "
                   "Image Grid (GAN) using grid_columns); pairwise: row i with column i.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT, "INT")
    RETURN_NAMES = ("latent", "grid_columns")
    OUTPUT_TOOLTIPS = ("The mixed latents, row-major (grid: header row first, the top-left cell left empty).",
                       "Images per row of the grid (pairwise: the number of pairs), for Image Grid (GAN).")
    FUNCTION = "mix"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator (for its number of layers)."}),
            "row_latent": (LATENT, {"tooltip": "Latents that keep their layers outside the chosen range (the "
                                               "left column of the grid)."}),
            "column_latent": (LATENT, {"tooltip": "Latents whose chosen layers are copied into the rows (the top "
                                                  "row of the grid)."}),
            "layers": (LAYER_PRESETS, {"default": "coarse", "tooltip":
                       "Which layers come from the columns: coarse (layout/pose), middle, fine (colour/texture), "
                       "or the indices in custom_layers."}),
            "custom_layers": ("STRING", {"default": "0-6", "tooltip":
                              "Layer indices for 'custom', e.g. 0-6 or 0,1,2,8 (0 = the coarsest layer)."}),
            "mode": (["grid", "pairwise"], {"default": "grid", "tooltip":
                     "grid: all rows x all columns with the originals as header row/column. pairwise: row i with "
                     "column i (the shorter list decides the count)."}),
        }}

    def mix(self, stylegan, row_latent, column_latent, layers, custom_layers, mode):
        check_latent(stylegan, row_latent, "row_latent")
        check_latent(stylegan, column_latent, "column_latent")
        spec = custom_layers if layers == "custom" else layers
        try:
            idx = sg.parse_layers(spec, stylegan.num_ws)
        except ValueError as e:
            raise ValueError(f"layers '{spec}': {e} (this model has layers 0-{stylegan.num_ws - 1})") from None
        rows, cols = row_latent["ws"], column_latent["ws"]
        if mode == "grid":  # the whole grid, header row and column included, before anything is allocated
            validate.check_count((rows.shape[0] + 1) * (cols.shape[0] + 1), validate.max_grid_cells(),
                                 f"grid cells ({rows.shape[0]} rows x {cols.shape[0]} columns plus headers)",
                                 node="Style Mix", hint="mix fewer latents at a time (GAN_PACK_MAX_GRID_CELLS)")
        rl, cl = row_latent["labels"], column_latent["labels"]
        meta = dict(psi=row_latent.get("psi", 1.0), cutoff=row_latent.get("cutoff"),
                    class_index=row_latent.get("class_index", 0))
        if mode == "pairwise":
            n = min(rows.shape[0], cols.shape[0])
            mixed = sg.style_mix(rows[:n], cols[:n], idx)  # [n, n, num_ws, w_dim]
            ws = mixed[torch.arange(n), torch.arange(n)]
            labels = [f"{a} x {b}" for a, b in zip(rl[:n], cl[:n])]
            return (make_latent(ws, labels=labels, **meta), n)
        mixed = sg.style_mix(rows, cols, idx)  # [R, C, num_ws, w_dim]
        R, C = mixed.shape[:2]
        header = torch.cat([cols[:1] * 0, cols])  # top-left cell (blank), then the column originals
        body = torch.cat([rows[:, None], mixed], dim=1).reshape(R * (C + 1), *rows.shape[1:])
        ws = torch.cat([header, body])
        labels = [""] + list(cl) + [lab for r in range(R) for lab in [rl[r]] + [f"{rl[r]} x {c}" for c in cl]]
        grid = {"rows": R + 1, "columns": C + 1, "blank": [0]}
        return (make_latent(ws, labels=labels, grid=grid, **meta), C + 1)


class Synthesize:
    DESCRIPTION = ("Renders W+ latents to images with the StyleGAN synthesis network, in chunks of batch_size, "
                   "with a progress bar and Cancel between chunks. Output like the reference: (x + 1) / 2 "
                   "clamped to [0, 1].")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("One image per latent, at the model's resolution (grid cells left empty are black).",)
    FUNCTION = "synthesize"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator the latents were made for."}),
            "latent": (LATENT, {"tooltip": "W+ latents from StyleGAN Latent, Style Mix, Interpolate or Project."}),
            "noise_mode": (["const", "random", "none"], {"default": "const", "tooltip":
                           "StyleGAN2's per-pixel noise: const = the model's fixed noise (reproducible, the "
                           "reference default), random = fresh noise from the seed, none = no noise. StyleGAN3 "
                           "has no noise inputs."}),
            "seed": seed_input("Seed of the random noise mode (image i uses seed + i); unused otherwise."),
            "batch_size": ("INT", {"default": 8, "min": 1, "max": 256, "tooltip":
                           "Latents rendered at once; lower it if you run out of memory (the pixels do not "
                           "depend on it)."}),
        }}

    @reuse_result_when(lambda inputs: () if inputs["noise_mode"] == "random" else ("seed",))
    def synthesize(self, stylegan, latent, noise_mode, seed, batch_size):
        check_latent(stylegan, latent)
        n = latent["ws"].shape[0]
        validate.check_count(n, validate.max_items(), "latents", node="Synthesize",
                             hint="render them in several batches (GAN_PACK_MAX_ITEMS)")
        res = int(stylegan.img_resolution)
        validate.check_memory(n * res * res * 3 * 4 + batch_size * 64 * res * res * 4,
                              f"{n} images of {res}x{res}", node="Synthesize")
        t0 = time.perf_counter()
        device = prepare_device(stylegan, working_bytes=batch_size * 64 * stylegan.img_resolution ** 2 * 4)
        try:
            images = synthesize_latent(stylegan, latent, noise_mode=noise_mode, seed=seed, batch_size=batch_size,
                                       progress=Progress(n), check_interrupt=Progress.check_interrupt)
        finally:
            release(stylegan)
        # what ran, and the settings that had no effect
        has_noise = any(name.endswith("noise_const") for name, _ in stylegan.named_buffers())
        ignored = []
        if not has_noise and noise_mode != "const":
            ignored.append(f"noise_mode {noise_mode}: this generator has no noise inputs (StyleGAN3)")
        if seed not in (0, None) and not (has_noise and noise_mode == "random"):
            ignored.append(f"seed {seed}: used only by noise_mode random")
        res = stylegan.img_resolution
        lines = [f"{n} image(s) at {res}x{res}, noise {noise_mode if has_noise else 'none (StyleGAN3)'}, "
                 f"batch {batch_size}, float32 on {device} ({time.perf_counter() - t0:.1f} s)"]
        return {"ui": report("StyleGAN Synthesize", None, lines, ignored), "result": (images,)}


class ImageGrid:
    DESCRIPTION = ("Tiles an IMAGE batch into one image, row by row: e.g. a style-mixing grid from Style Mix "
                   "(connect its grid_columns output to columns).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("grid",)
    OUTPUT_TOOLTIPS = ("The grid as a single image.",)
    FUNCTION = "grid"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Images of one size, in row-major order."}),
            "columns": ("INT", {"default": 4, "min": 1, "max": 1024, "tooltip":
                        "Images per row (Style Mix's grid_columns output fits its grid)."}),
            "fill": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                     "Grey level of empty cells in an incomplete last row (0 = black, 1 = white)."}),
        }}

    def grid(self, images, columns, fill):
        n, h, w, c = (int(x) for x in images.shape)
        cols = min(int(columns), max(n, 1))
        rows = -(-n // cols)
        validate.check_memory(rows * cols * h * w * c * 4, f"a grid of {rows}x{cols} images of {w}x{h}",
                              node="Image Grid")
        return (gan_image.image_grid(images, columns, fill=fill),)


class Interpolate:
    DESCRIPTION = ("A smooth latent walk through the given latents as keyframes, for animation: linear in W "
                   "(keeps the truncation) or spherical in Z (re-mapped each frame with the keyframes' truncation; "
                   "needs latents made from seeds), with easing, and optionally looping back to the first "
                   "keyframe for a seamless cycle (the first frame is not repeated at the end).")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("frames latents along the walk, in order; Synthesize them into a frame batch.",)
    FUNCTION = "interpolate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator (its mapping network re-maps a Z walk)."}),
            "keyframes": (LATENT, {"tooltip": "Keyframe latents in order (at least two), e.g. StyleGAN Latent "
                                              "with seeds 1,2,3."}),
            "frames": ("INT", {"default": 48, "min": 2, "max": 100000, "tooltip": "Frames in the whole walk."}),
            "space": (["w", "z"], {"default": "w", "tooltip":
                      "w: linear interpolation in W+ (smooth, keeps truncation). z: spherical interpolation of "
                      "the seeds' z, mapped each frame (follows the model's latent distribution)."}),
            "easing": (["linear", "smooth"], {"default": "smooth", "tooltip":
                       "Speed between keyframes: linear = constant, smooth = ease in and out of every keyframe."}),
            "loop": ("BOOLEAN", {"default": True, "tooltip":
                     "Walk back to the first keyframe so the animation loops seamlessly."}),
        }}

    def interpolate(self, stylegan, keyframes, frames, space, easing, loop):
        check_latent(stylegan, keyframes, "keyframes")
        if keyframes["ws"].shape[0] < 2:
            raise ValueError("Interpolate needs at least two keyframe latents (e.g. seeds 1,2)")
        if space == "z":
            if keyframes.get("z") is None:
                raise ValueError("a walk in z needs latents made from seeds (StyleGAN Latent); these were mixed or "
                                 "projected, so use space w")
            psi, cutoff, ci = keyframes.get("psi", 1.0), keyframes.get("cutoff"), keyframes.get("class_index", 0)
            device = prepare_device(stylegan)
            try:
                def mapping(z):
                    return _map(stylegan, z, psi, cutoff, ci, device)

                ws = sg.interpolate_latents(keyframes["z"], frames, space="z", easing=easing, loop=loop,
                                            mapping=mapping)
            finally:
                release(stylegan)
            return (make_latent(ws, labels=[f"frame {i}" for i in range(frames)], psi=psi, cutoff=cutoff,
                                class_index=ci),)
        ws = sg.interpolate_latents(keyframes["ws"], frames, space="w", easing=easing, loop=loop)
        return (make_latent(ws, labels=[f"frame {i}" for i in range(frames)], psi=keyframes.get("psi", 1.0),
                            cutoff=keyframes.get("cutoff"), class_index=keyframes.get("class_index", 0)),)


class ProjectImage:
    DESCRIPTION = ("Finds a W+ latent whose image matches a real image, by optimisation against pixel and "
                   "structural losses (no download needed). The image is resized to the model's resolution. Edit "
                   "the latent with Style Mix or Interpolate, then Synthesize. Progress per step; Cancel works.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT, "IMAGE")
    RETURN_NAMES = ("latent", "reconstruction")
    OUTPUT_TOOLTIPS = ("One W+ latent per input image.", "The model's image of each projected latent.")
    FUNCTION = "project"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator to project into."}),
            "image": ("IMAGE", {"tooltip": "Images to project (any size: resized to the model's resolution)."}),
            "steps": ("INT", {"default": 300, "min": 1, "max": 10000, "tooltip":
                      "Optimisation steps per image (more = closer match, slower)."}),
            "seed": seed_input("Seed of the optimisation's random start; the same seed gives the same latent."),
        }}

    def project(self, stylegan, image, steps, seed):
        res = stylegan.img_resolution
        x = gan_image.image_to_gan(gan_image.split_image_alpha(image)[0])
        if x.shape[-2:] != (res, res):
            x = F.interpolate(x, size=(res, res), mode="bilinear", align_corners=False, antialias=True)
        x = gan_image.convert_channels(x, stylegan.img_channels) if stylegan.img_channels in (1, 3) else x
        n = x.shape[0]
        bar = Progress(steps * n)
        device = prepare_device(stylegan)
        ws_out, img_out = [], []
        try:
            for i in range(n):
                Progress.check_interrupt()
                # optimisation needs autograd, which ComfyUI's inference mode switches off around every node
                with torch.inference_mode(False), torch.enable_grad():
                    target = x[i:i + 1].clone().to(device)
                    result = sg.project_image(stylegan, target, steps=steps, seed=seed,
                                              progress=lambda done, total, *a, i=i: bar(i * steps + done, steps * n),
                                              check_interrupt=Progress.check_interrupt)
                ws = result.ws.detach().float().cpu()
                ws_out.append(ws.reshape(1, stylegan.num_ws, stylegan.w_dim) if ws.ndim != 3 else ws)
            latent = make_latent(torch.cat(ws_out), labels=[f"projected {i}" for i in range(n)])
            images = synthesize_latent(stylegan, latent, noise_mode="const")
        finally:
            release(stylegan)
        return (latent, images)


class Generate:
    DESCRIPTION = ("One node for beginners: pick a StyleGAN file and seeds, get images (truncation as set, the "
                   "model's constant noise). Same pixels for the same seeds, like the reference tools.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("One image per seed, at the model's resolution.",)
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": _model_input(),
            "seeds": ("STRING", {"default": "1-4", "tooltip": SEEDS_TOOLTIP}),
            "truncation_psi": ("FLOAT", {"default": 0.7, "min": -2.0, "max": 2.0, "step": 0.05,
                                         "tooltip": PSI_TOOLTIP}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, model_name):
        return validate_model_name(model_name)

    @classmethod
    def IS_CHANGED(cls, model_name, seeds, truncation_psi):
        return f"{_model_mtime(model_name)}|{seeds}|{truncation_psi}"

    def generate(self, model_name, seeds, truncation_psi):
        G = load_model(model_name)
        (latent,) = StyleGANLatent().make(G, seeds, truncation_psi, 0, 0)
        return Synthesize().synthesize(G, latent, "const", 0, 8)


class ConvertStyleGAN:
    DESCRIPTION = ("Writes a StyleGAN file (official pickle, rosinality .pt, state dict) as the pack's "
                   ".safetensors in ComfyUI/models/stylegan: weights and config only, no code, the same pixels. "
                   "Share that file instead of the pickle. Command line: scripts/convert_stylegan.py.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Where the .safetensors file was written.",)
    OUTPUT_NODE = True
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": _model_input("File to convert, from ComfyUI/models/stylegan."),
            "output_name": ("STRING", {"default": "", "tooltip":
                            "File name of the result (empty = the input's name with .safetensors)."}),
            "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace an existing file of that name."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, model_name, output_name=None):
        if isinstance(output_name, str) and output_name.strip():
            try:
                validate.check_file_name(output_name, what="output_name", extension=".safetensors",
                                         node="Convert StyleGAN")
            except validate.InputError as e:
                return str(e)
        return validate_model_name(model_name)

    def convert(self, model_name, output_name, overwrite):
        src = resolve_model(model_name, FOLDERS)
        name = (output_name or "").strip() or os.path.splitext(os.path.basename(model_name))[0]
        # plain, visible, not too long (a hidden '....safetensors' would never appear in the dropdown)
        name = validate.check_file_name(name, what="output_name", extension=".safetensors", node="Convert StyleGAN")
        folders = [d for d in folder_paths.get_folder_paths("stylegan")
                   if os.path.realpath(d) != os.path.realpath(os.path.join(BUNDLED_DIR, "stylegan"))]
        target_dir = next((d for d in folders if os.path.isdir(d) and os.access(d, os.W_OK)), folders[0])
        os.makedirs(target_dir, exist_ok=True)
        dest = os.path.join(target_dir, name)
        if os.path.realpath(dest) == os.path.realpath(src):
            raise ValueError(f"output_name '{name}' is the input file itself; choose another name")
        if os.path.exists(dest) and not overwrite:
            raise FileExistsError(f"'{dest}' exists; set overwrite to replace it or choose another output_name")
        G = load_model(model_name)
        tmp = dest + ".tmp"
        sg.save_stylegan(G, tmp)
        os.replace(tmp, dest)
        return {"ui": {"text": [dest]}, "result": (dest,)}


NODE_CLASS_MAPPINGS = {
    "GANPackLoadStyleGAN": LoadStyleGAN,
    "GANPackStyleGANLatent": StyleGANLatent,
    "GANPackStyleMix": StyleMix,
    "GANPackStyleGANSynthesize": Synthesize,
    "GANPackStyleGANImageGrid": ImageGrid,
    "GANPackStyleGANInterpolate": Interpolate,
    "GANPackStyleGANProject": ProjectImage,
    "GANPackStyleGANGenerate": Generate,
    "GANPackConvertStyleGAN": ConvertStyleGAN,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GANPackLoadStyleGAN": "Load StyleGAN",
    "GANPackStyleGANLatent": "StyleGAN Latent (seeds)",
    "GANPackStyleMix": "Style Mix (StyleGAN)",
    "GANPackStyleGANSynthesize": "Synthesize (StyleGAN)",
    "GANPackStyleGANImageGrid": "Image Grid (StyleGAN mixing)",
    "GANPackStyleGANInterpolate": "Interpolate Latents (StyleGAN)",
    "GANPackStyleGANProject": "Project Image to Latent (StyleGAN)",
    "GANPackStyleGANGenerate": "Generate (StyleGAN)",
    "GANPackConvertStyleGAN": "Convert StyleGAN to safetensors",
}
