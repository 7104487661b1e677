"""StyleGAN2-ADA / StyleGAN3 nodes (engine: ``models.stylegan``): seeds -> W+ latents -> images, style mixing,
latent walks, projection, and conversion of pickles to safetensors.

The latent type ``STYLEGAN_LATENT`` is a dict: ``ws`` [N, num_ws, w_dim] float32 on the CPU, ``z`` [N, z_dim]
when the latents came from seeds (else ``None``), ``labels`` (one string per latent, e.g. the seed) and
``blank`` (indices of grid cells to leave empty).
"""
from __future__ import annotations

import os

import torch

import folder_paths

from .. import models as engine
from ..models import image as gan_image
from ..models import stylegan as sg
from .common import Progress, list_models, prepare_device, release, resolve_model, seed_input

CATEGORY = "GAN/stylegan"
MODEL = "STYLEGAN"
LATENT = "STYLEGAN_LATENT"
FOLDERS = ("stylegan",)


def _latent(ws, z=None, labels=None, blank=()):
    return {"ws": ws.detach().float().cpu(), "z": None if z is None else z.detach().float().cpu(),
            "labels": list(labels or [str(i) for i in range(ws.shape[0])]), "blank": list(blank)}


def _check_model_latent(G, latent):
    ws = latent["ws"]
    if ws.shape[1:] != (G.num_ws, G.w_dim):
        raise ValueError(f"latent shape {tuple(ws.shape[1:])} does not fit this model (num_ws={G.num_ws}, "
                         f"w_dim={G.w_dim}): the latent was made with another StyleGAN")


def _class_vector(G, class_index, n, device):
    if G.c_dim == 0:
        return None
    if not 0 <= class_index < G.c_dim:
        raise ValueError(f"this model is conditional with {G.c_dim} classes; class_index must be 0..{G.c_dim - 1}")
    c = torch.zeros(n, G.c_dim, device=device)
    c[:, class_index] = 1
    return c


def _map(G, z, psi, cutoff, class_index, device):
    with torch.inference_mode():
        c = _class_vector(G, class_index, z.shape[0], device)
        return G.mapping(z.to(device), c, truncation_psi=psi, truncation_cutoff=cutoff or None)


def _synthesize(G, latent, noise_mode, seed, device, progress, batch=4):
    ws = latent["ws"]
    blank = set(latent.get("blank") or [])
    out = []
    gen = torch.Generator(device="cpu").manual_seed(seed)
    with torch.inference_mode():
        for i in range(0, ws.shape[0], batch):
            Progress.check_interrupt()
            chunk = ws[i:i + batch].to(device)
            if noise_mode == "random":  # random noise driven by the node's seed, reproducible on any device
                torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            img = G.synthesis(chunk, noise_mode=noise_mode)
            out.append(gan_image.gan_to_image(gan_image.convert_channels(img.float(), 3)).cpu())
            progress(min(i + batch, ws.shape[0]), ws.shape[0])
    images = torch.cat(out)
    for b in blank:
        images[b] = 1.0
    return images


class LoadStyleGAN:
    DESCRIPTION = ("Loads a StyleGAN2-ADA or StyleGAN3 (-T/-R) generator: official network pickles (read safely: "
                   "nothing in the file is executed), rosinality .pt files, bare state dicts, or the pack's "
                   ".safetensors.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("stylegan",)
    OUTPUT_TOOLTIPS = ("The generator (G_ema), for the StyleGAN Latent / Synthesize nodes.",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model_name": (list_models(FOLDERS, prefixed=False), {
            "tooltip": "Generator file from ComfyUI/models/stylegan (or the pack's bundled default)."})}}

    def load(self, model_name):
        G = engine.load_stylegan(resolve_model(model_name, FOLDERS))
        G.name = os.path.splitext(os.path.basename(model_name))[0]
        return (G,)


class StyleGANLatent:
    DESCRIPTION = ("Turns seeds into W+ latents exactly as the reference scripts do (the same seed gives the same "
                   "image as the official tools), with truncation and, for conditional models, a class.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("One W+ latent per seed.",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator the latents are for."}),
            "seeds": ("STRING", {"default": "1-4", "tooltip": "Seeds: a list and/or ranges, e.g. 1,5,10-12."}),
            "truncation_psi": ("FLOAT", {"default": 0.7, "min": -2.0, "max": 2.0, "step": 0.05, "tooltip":
                               "Truncation: 1 = no truncation, lower = closer to the average image (less variety, "
                               "fewer artefacts)."}),
            "truncation_cutoff": ("INT", {"default": 0, "min": 0, "max": 64, "tooltip":
                                  "Truncate only the first N layers (0 = all layers)."}),
            "class_index": ("INT", {"default": 0, "min": 0, "max": 100000, "tooltip":
                            "Class for conditional models (ignored by unconditional ones)."}),
        }}

    def make(self, stylegan, seeds, truncation_psi, truncation_cutoff, class_index):
        seed_list = sg.parse_seeds(seeds)
        z = torch.from_numpy(engine.seeds_to_z(seed_list, stylegan.z_dim))
        ws = _map(stylegan, z, truncation_psi, truncation_cutoff, class_index, torch.device("cpu"))
        return (_latent(ws, z, [f"seed {s}" for s in seed_list]),)


class StyleMix:
    DESCRIPTION = ("Style mixing: the rows' latents with the columns' latents copied in at the chosen layers. "
                   "Coarse layers carry pose and shape, middle layers features, fine layers colour and texture. "
                   "Presets scale with the model's number of layers. Grid mode lays out the reference "
                   "style-mixing figure: column sources on top, row sources on the left, mixes in between.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT, "INT")
    RETURN_NAMES = ("latent", "grid_columns")
    OUTPUT_TOOLTIPS = ("The mixed latents (row-major; with grid on, including the header row and column).",
                       "Columns of the grid, for Image Grid (GAN).")
    FUNCTION = "mix"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator (for the layer count)."}),
            "rows": (LATENT, {"tooltip": "Latents that keep their layers outside the chosen range."}),
            "columns": (LATENT, {"tooltip": "Latents whose chosen layers are copied into the rows."}),
            "layers": (["coarse", "middle", "fine", "custom"], {"default": "coarse", "tooltip":
                       "Which layers come from the columns. coarse = the reference default 0-6 on an 18-layer "
                       "model, scaled to this model's layer count."}),
            "custom_layers": ("STRING", {"default": "0-6", "tooltip": "Layer indices for 'custom', e.g. 0-3,8."}),
            "grid": ("BOOLEAN", {"default": True, "tooltip":
                     "On: every row with every column, plus the sources as header row/column. Off: row i with "
                     "column i (pairs)."}),
        }}

    def mix(self, stylegan, rows, columns, layers, custom_layers, grid):
        _check_model_latent(stylegan, rows)
        _check_model_latent(stylegan, columns)
        idx = sg.layer_indices(layers if layers != "custom" else custom_layers, stylegan.num_ws)
        if grid:
            ws, labels, blank, ncols = sg.style_mix_grid(rows["ws"], columns["ws"], idx,
                                                        rows["labels"], columns["labels"])
            return (_latent(ws, None, labels, blank), ncols)
        n = min(rows["ws"].shape[0], columns["ws"].shape[0])
        ws = engine.style_mix(rows["ws"][:n], columns["ws"][:n], idx)
        labels = [f"{a} x {b}" for a, b in zip(rows["labels"], columns["labels"])]
        return (_latent(ws, None, labels), n)


class Synthesize:
    DESCRIPTION = "Renders W+ latents to images with the StyleGAN synthesis network."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("One image per latent, at the model's resolution.",)
    FUNCTION = "synthesize"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator."}),
            "latent": (LATENT, {"tooltip": "W+ latents from StyleGAN Latent, Style Mix, Interpolate or Project."}),
            "noise_mode": (["const", "random", "none"], {"default": "const", "tooltip":
                           "Per-pixel noise of StyleGAN2: const = the model's fixed noise (reproducible), random = "
                           "new noise from the seed, none = no noise. StyleGAN3 has no noise."}),
            "seed": seed_input("Seed of the random noise mode."),
        }}

    def synthesize(self, stylegan, latent, noise_mode, seed):
        _check_model_latent(stylegan, latent)
        device = prepare_device(stylegan)
        try:
            images = _synthesize(stylegan, latent, noise_mode, seed, device, Progress(latent["ws"].shape[0]))
        finally:
            release(stylegan)
        return (images,)


class Interpolate:
    DESCRIPTION = ("A smooth latent walk through the given latents (as keyframes) for animation: slerp in Z or "
                   "lerp in W, with easing, optionally looping back to the first for a seamless cycle.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("frames latents along the walk.",)
    FUNCTION = "interpolate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator (maps Z walks through its mapping network)."}),
            "latent": (LATENT, {"tooltip": "Keyframe latents, in order (at least two)."}),
            "frames": ("INT", {"default": 48, "min": 2, "max": 100000, "tooltip": "Frames in the whole walk."}),
            "space": (["W", "Z"], {"default": "W", "tooltip":
                      "W: linear in W+ (keeps truncation, smooth). Z: spherical in Z, re-mapped each frame "
                      "(needs latents made from seeds)."}),
            "easing": (["linear", "smoothstep", "cosine"], {"default": "smoothstep", "tooltip":
                       "Speed profile between keyframes; smoothstep/cosine ease in and out of each keyframe."}),
            "loop": ("BOOLEAN", {"default": True, "tooltip":
                     "Return to the first keyframe for a seamless loop (the first frame is not repeated at the end)."}),
            "truncation_psi": ("FLOAT", {"default": 0.7, "min": -2.0, "max": 2.0, "step": 0.05, "tooltip":
                               "Truncation applied when re-mapping a Z walk (unused for W)."}),
        }}

    def interpolate(self, stylegan, latent, frames, space, easing, loop, truncation_psi):
        _check_model_latent(stylegan, latent)
        if space == "Z":
            if latent.get("z") is None:
                raise ValueError("a Z walk needs latents made from seeds (StyleGAN Latent); use space W for these")
            z = engine.interpolate_latents(latent["z"], frames, space="z", easing=easing, loop=loop)
            ws = _map(stylegan, z, truncation_psi, None, 0, torch.device("cpu"))
            return (_latent(ws, z),)
        ws = engine.interpolate_latents(latent["ws"], frames, space="w", easing=easing, loop=loop)
        return (_latent(ws),)


class ProjectImage:
    DESCRIPTION = ("Finds a W+ latent whose image matches a real image (optimisation against pixel and structural "
                   "losses; no download needed). Edit it with Style Mix or Interpolate, then Synthesize.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT, "IMAGE")
    RETURN_NAMES = ("latent", "reconstruction")
    OUTPUT_TOOLTIPS = ("One W+ latent per input image.", "The images of those latents.")
    FUNCTION = "project"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator to project into."}),
            "image": ("IMAGE", {"tooltip": "Images to project (resized to the model's resolution)."}),
            "steps": ("INT", {"default": 200, "min": 1, "max": 10000, "tooltip": "Optimisation steps per image."}),
            "seed": seed_input("Seed of the optimisation (noise of the start point)."),
        }}

    def project(self, stylegan, image, steps, seed):
        device = prepare_device(stylegan)
        progress = Progress(steps * image.shape[0])
        try:
            ws = engine.project_image(stylegan, image, steps=steps, seed=seed, device=device, progress=progress,
                                      check_interrupt=Progress.check_interrupt)
            latent = _latent(ws)
            recon = _synthesize(stylegan, latent, "const", 0, device, lambda *a: None)
        finally:
            release(stylegan)
        return (latent, recon)


class Generate:
    DESCRIPTION = "One node for beginners: seeds in, StyleGAN images out (truncation 0.7, constant noise)."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("One image per seed.",)
    FUNCTION = "generate"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (list_models(FOLDERS, prefixed=False), {"tooltip": "Generator file from ComfyUI/models/stylegan."}),
            "seeds": ("STRING", {"default": "1-4", "tooltip": "Seeds: a list and/or ranges, e.g. 1,5,10-12."}),
            "truncation_psi": ("FLOAT", {"default": 0.7, "min": -2.0, "max": 2.0, "step": 0.05,
                               "tooltip": "1 = no truncation; lower = closer to the average image."}),
        }}

    def generate(self, model_name, seeds, truncation_psi):
        (G,) = LoadStyleGAN().load(model_name)
        (latent,) = StyleGANLatent().make(G, seeds, truncation_psi, 0, 0)
        return Synthesize().synthesize(G, latent, "const", 0)


class ConvertStyleGAN:
    DESCRIPTION = ("Writes a StyleGAN file (pickle, rosinality .pt, state dict) as the pack's .safetensors in "
                   "ComfyUI/models/stylegan: a safe file to share (weights and config only, no code).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_TOOLTIPS = ("Where the .safetensors file was written.",)
    OUTPUT_NODE = True
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_name": (list_models(FOLDERS, prefixed=False), {"tooltip": "File to convert."}),
            "output_name": ("STRING", {"default": "", "tooltip":
                            "File name for the result (empty = the input's name with .safetensors)."}),
        }}

    def convert(self, model_name, output_name):
        src = resolve_model(model_name, FOLDERS)
        name = output_name.strip() or os.path.splitext(os.path.basename(model_name))[0] + ".safetensors"
        if not name.endswith(".safetensors"):
            name += ".safetensors"
        dest = os.path.join(folder_paths.get_folder_paths("stylegan")[0], os.path.basename(name))
        engine.save_stylegan(engine.load_stylegan(src), dest)
        return {"ui": {"text": [dest]}, "result": (dest,)}


class ImageGrid:
    DESCRIPTION = "Tiles an IMAGE batch into one image, row by row (e.g. a style-mixing grid)."
    CATEGORY = "GAN/image"
    RETURN_TYPES = ("IMAGE",)
    OUTPUT_TOOLTIPS = ("The grid as a single image.",)
    FUNCTION = "grid"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Images of one size."}),
            "columns": ("INT", {"default": 4, "min": 1, "max": 256, "tooltip": "Images per row."}),
        }}

    def grid(self, images, columns):
        return (gan_image.image_grid(images, columns),)


NODE_CLASS_MAPPINGS = {
    "GANPackLoadStyleGAN": LoadStyleGAN,
    "GANPackStyleGANLatent": StyleGANLatent,
    "GANPackStyleMix": StyleMix,
    "GANPackSynthesize": Synthesize,
    "GANPackInterpolateLatents": Interpolate,
    "GANPackProjectImage": ProjectImage,
    "GANPackGenerate": Generate,
    "GANPackConvertStyleGAN": ConvertStyleGAN,
    "GANPackImageGrid": ImageGrid,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GANPackLoadStyleGAN": "Load StyleGAN",
    "GANPackStyleGANLatent": "StyleGAN Latent (seeds)",
    "GANPackStyleMix": "Style Mix (StyleGAN)",
    "GANPackSynthesize": "Synthesize (StyleGAN)",
    "GANPackInterpolateLatents": "Interpolate Latents (StyleGAN)",
    "GANPackProjectImage": "Project Image (StyleGAN)",
    "GANPackGenerate": "Generate (StyleGAN)",
    "GANPackConvertStyleGAN": "Convert StyleGAN to safetensors",
    "GANPackImageGrid": "Image Grid (GAN)",
}
