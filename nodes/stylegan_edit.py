"""StyleGAN semantic editing nodes (engine: ``models.stylegan.editing``): directions found in the model (SeFa,
GANSpace) or read from InterFaceGAN / encoder4editing direction files, edits of latents, and strength sweeps.

``STYLEGAN_DIRECTIONS`` is a dict (tensors float32 on the CPU):

* ``directions`` ``[k, w_dim]`` unit rows, the most important first; ``values`` ``[k]`` (SeFa eigenvalues or
  GANSpace standard deviations); ``sigmas`` ``[k]`` (standard deviation of the model's W along each direction, for
  strengths in sigma units); ``mean`` ``[w_dim]``;
* ``method`` ("sefa" | "ganspace"), ``layers`` (the W+ indices SeFa factorised, ``None`` = all), ``num_ws``,
  ``w_dim`` (to refuse directions of another model).

Direction files live in ``ComfyUI/models/stylegan_directions`` (``.npy``, ``.pt``/``.pth`` read with
``weights_only=True``, ``.safetensors``).
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

import torch

import folder_paths

from ..models import stylegan as sg
from ..models.stylegan import editing as ed
from .common import Progress, prepare_device, release, seed_input
from .paths import model_path
from .stylegan import CATEGORY, LATENT, MODEL, check_latent, make_latent

DIRECTIONS = "STYLEGAN_DIRECTIONS"
DIRECTION_FOLDER = "stylegan_directions"
NO_FILE = "(none)"
SIGMA_SAMPLES = 10000  # W samples behind sigma units of SeFa directions and files (the engine caches them)


def register_direction_folder() -> None:
    """``models/stylegan_directions`` with the direction file types, kept beside any extra_model_paths.yaml entry."""
    default = os.path.join(folder_paths.models_dir, DIRECTION_FOLDER)
    entry = folder_paths.folder_names_and_paths.get(DIRECTION_FOLDER)
    if entry is None:
        folder_paths.folder_names_and_paths[DIRECTION_FOLDER] = ([default], set(ed.DIRECTION_EXTENSIONS))
    else:
        dirs, exts = entry
        if default not in dirs:
            dirs.append(default)
        folder_paths.folder_names_and_paths[DIRECTION_FOLDER] = (dirs, set(exts) | set(ed.DIRECTION_EXTENSIONS))


register_direction_folder()


def _direction_files() -> List[str]:
    try:
        return [NO_FILE] + folder_paths.get_filename_list(DIRECTION_FOLDER)
    except KeyError:
        return [NO_FILE]


def _validate_file(direction_file: str):
    if direction_file in (None, "", NO_FILE):
        return True
    try:
        model_path(DIRECTION_FOLDER, direction_file)
    except FileNotFoundError as e:
        return str(e).replace("model file", "direction file")
    return True


def _file_stamp(direction_file: str) -> str:
    if direction_file in (None, "", NO_FILE):
        return NO_FILE
    try:
        path = model_path(DIRECTION_FOLDER, direction_file)
        st = os.stat(path)
        return f"{path}:{st.st_mtime_ns}:{st.st_size}"
    except (FileNotFoundError, OSError):
        return direction_file


def _layers_of(G, preset: str, custom: str, directions: Optional[Dict]) -> Optional[List[int]]:
    if preset == "as computed":
        return None if directions is None else directions.get("layers")
    spec = custom if preset == "custom" else preset
    try:
        return sg.parse_layers(spec, G.num_ws)
    except ValueError as e:
        raise ValueError(f"layers '{spec}': {e} (this model has layers 0-{G.num_ws - 1})") from None


def _w_cov(G) -> torch.Tensor:
    prepare_device(G)
    try:
        _, cov = ed.w_statistics(G, SIGMA_SAMPLES, 0, check_interrupt=Progress.check_interrupt)
    finally:
        release(G)
    return cov


def _resolve(G, directions: Optional[Dict], indices, direction_file: str, units: str) -> List[Tuple[torch.Tensor, str]]:
    """[(direction [1 or num_ws, w_dim] scaled for the units, label)] for the chosen indices or the file."""
    if direction_file not in (None, "", NO_FILE):
        path = model_path(DIRECTION_FOLDER, direction_file)
        d = ed.load_direction(path, G.num_ws, G.w_dim)
        if units == "sigma":
            d = ed.sigma_scaled(d, _w_cov(G))
        return [(d, os.path.splitext(os.path.basename(direction_file))[0])]
    if directions is None:
        raise ValueError("no direction: connect StyleGAN Directions (SeFa/GANSpace) to 'directions', or choose a "
                         f"direction_file from ComfyUI/models/{DIRECTION_FOLDER}")
    if not isinstance(directions, dict) or "directions" not in directions:
        raise ValueError("'directions' is not a STYLEGAN_DIRECTIONS")
    if (directions["num_ws"], directions["w_dim"]) != (G.num_ws, G.w_dim):
        raise ValueError(f"these directions were computed for a model with {directions['num_ws']} ws of size "
                         f"{directions['w_dim']}, but this model has {G.num_ws} of size {G.w_dim}")
    k = directions["directions"].shape[0]
    out = []
    for i in ed.parse_direction_indices(indices, k):
        d = directions["directions"][i:i + 1]
        if units == "sigma":
            d = d * directions["sigmas"][i]
        out.append((d, f"{directions['method']} {i}"))
    return out


LAYER_CHOICES = ["as computed", "all", "coarse", "middle", "fine", "custom"]


def _common_inputs():
    return {
        "direction_file": (_direction_files(), {"tooltip":
                           f"A direction file from ComfyUI/models/{DIRECTION_FOLDER} (InterFaceGAN / "
                           "encoder4editing boundaries: .npy, .pt, .safetensors of shape [1, w_dim] or "
                           "[num_ws, w_dim]); used instead of 'directions' when set. (none) = use 'directions'."}),
        "units": (["sigma", "raw"], {"default": "sigma", "tooltip":
                  "sigma: strength 1 moves the latent by one standard deviation of the model's own latents along "
                  "the direction (comparable across directions and models). raw: strength times the direction as "
                  "stored (SeFa/GANSpace directions and InterFaceGAN boundaries are unit vectors)."}),
        "layers": (LAYER_CHOICES, {"default": "as computed", "tooltip":
                   "W+ layers the edit changes; the others stay as they are. as computed: the layers SeFa was "
                   "computed on (all for GANSpace and files); coarse: layout/pose; middle: features; fine: colour "
                   "and texture (scaled to the model like Style Mix); custom: custom_layers."}),
        "custom_layers": ("STRING", {"default": "0-3", "tooltip":
                          "Layer indices for 'custom', e.g. 0-3 or 0,1,8 (0 = the coarsest layer)."}),
        "renormalize": ("BOOLEAN", {"default": False, "tooltip":
                        "Keep each edited w at its original distance from the model's average w: long edits "
                        "turn the latent instead of pushing it where the model makes artefacts."}),
    }


def _optional_directions():
    return {"directions": (DIRECTIONS, {"tooltip": "Directions from StyleGAN Directions (SeFa/GANSpace); not needed "
                                                   "when a direction_file is chosen."})}


def _edited_latent(latent, ws, labels, grid=None):
    return make_latent(ws, labels=labels, psi=latent.get("psi", 1.0), cutoff=latent.get("cutoff"),
                       class_index=latent.get("class_index", 0), grid=grid)


# --------------------------------------------------------------------------------------------- nodes
class StyleGANDirections:
    DESCRIPTION = ("Finds editing directions in the model itself, with no data set and no download. SeFa "
                   "(closed-form factorisation): the directions that change the chosen layers' styles most, from the "
                   "weights alone (deterministic, instant). GANSpace: principal components of the model's latents "
                   "over n_samples seeded samples. Direction 0 is the strongest. Results are cached per model.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (DIRECTIONS, "STRING")
    RETURN_NAMES = ("directions", "summary")
    OUTPUT_TOOLTIPS = ("Unit directions in W, the strongest first, for Edit Latent and Edit Sweep.",
                       "The first directions' strengths (eigenvalue or sigma) as text.")
    FUNCTION = "compute"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator to find directions in."}),
            "method": (["sefa", "ganspace"], {"default": "sefa", "tooltip":
                       "sefa: eigenvectors of the style-affine weights (Shen & Zhou 2021), from the chosen layers. "
                       "ganspace: principal components of W = mapping(z) (Harkonen et al. 2020)."}),
            "layers": (["all", "coarse", "middle", "fine", "custom"], {"default": "all", "tooltip":
                       "SeFa only: whose style layers are factorised (coarse finds layout/pose directions, fine "
                       "colour/texture ones). Edit Latent's 'as computed' edits these layers."}),
            "custom_layers": ("STRING", {"default": "0-3", "tooltip": "Layer indices for 'custom', e.g. 0-3."}),
            "n_samples": ("INT", {"default": 10000, "min": 100, "max": 1000000, "step": 100, "tooltip":
                          "Seeded latents sampled for GANSpace's PCA and for sigma units (more = more stable; "
                          "10000 takes about a second on a CPU for a 512-wide mapping)."}),
            "seed": seed_input("Seed of those samples (the same seed gives the same directions)."),
        }}

    def compute(self, stylegan, method, layers, custom_layers, n_samples, seed):
        G = stylegan
        idx = None
        if method == "sefa" and layers != "all":
            idx = _layers_of(G, "custom" if layers == "custom" else layers, custom_layers, None)
        bar = Progress(n_samples)
        prepare_device(G)
        try:
            r = ed.cached_directions(G, method, layers=idx, n_samples=n_samples, seed=seed, progress=bar,
                                     check_interrupt=Progress.check_interrupt)
        finally:
            release(G)
        result = {"method": method, "directions": r["directions"].float().cpu(), "values": r["values"].float().cpu(),
                  "sigmas": r["sigmas"].float().cpu(), "mean": r["mean"].float().cpu(), "layers": idx,
                  "num_ws": int(G.num_ws), "w_dim": int(G.w_dim)}
        what = "eigenvalue" if method == "sefa" else "sigma"
        head = ", ".join(f"{i}: {float(v):.3g}" for i, v in enumerate(result["values"][:8]))
        where = "all modulated layers" if idx is None else f"ws {idx}"
        summary = (f"{method} on {where}: {result['directions'].shape[0]} directions; {what} {head}; "
                   f"sigma of W along 0-3: " + ", ".join(f"{float(s):.3g}" for s in result["sigmas"][:4])
                   + f" ({ed.layer_reader_summary(G)})")
        return (result, summary)


class _DirectionFileChecks:
    """Edit Latent and Edit Sweep: a chosen direction file is checked before the prompt runs, and a changed file
    makes the node run again."""

    @classmethod
    def VALIDATE_INPUTS(cls, direction_file):
        return _validate_file(direction_file)

    @classmethod
    def IS_CHANGED(cls, direction_file, **_):
        return _file_stamp(direction_file)


class EditLatent(_DirectionFileChecks):
    DESCRIPTION = ("Moves latents along a semantic direction: ws + strength x direction on the chosen layers only. "
                   "The direction is one of StyleGAN Directions' (by index) or a direction file (InterFaceGAN / "
                   "encoder4editing boundary). Works on any latent: seeds, Project Image, Style Mix, Interpolate.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT,)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The edited latents (one per input latent), for Synthesize.",)
    FUNCTION = "edit"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator the latents are for."}),
            "latent": (LATENT, {"tooltip": "Latents to edit (from StyleGAN Latent, Project Image, Style Mix ...)."}),
            "direction_index": ("INT", {"default": 0, "min": 0, "max": 4095, "tooltip":
                                "Which of the connected directions (0 = the strongest)."}),
            "strength": ("FLOAT", {"default": 2.0, "min": -100.0, "max": 100.0, "step": 0.1, "tooltip":
                         "How far to move (negative = the opposite way); in sigma or raw units (see units). "
                         "0 leaves the latents unchanged."}),
            **_common_inputs(),
        }, "optional": _optional_directions()}

    def edit(self, stylegan, latent, direction_index, strength, direction_file, units, layers, custom_layers,
             renormalize, directions=None):
        G = stylegan
        check_latent(G, latent)
        ((d, label),) = _resolve(G, directions, [int(direction_index)] if direction_file in (None, "", NO_FILE)
                                 else None, direction_file, units)
        idx = _layers_of(G, layers, custom_layers, None if direction_file not in (None, "", NO_FILE) else directions)
        ws = ed.edit_latent(latent["ws"], d, float(strength), idx, renormalize=renormalize,
                            center=G.w_avg.detach().float().cpu())
        labels = [f"{lab} | {label} {float(strength):+g}" for lab in latent["labels"]]
        # one output per input: a Style Mix grid stays a grid (its blank cells stay blank)
        return (_edited_latent(latent, ws, labels, grid=latent.get("grid")),)


class EditSweep(_DirectionFileChecks):
    DESCRIPTION = ("A batch of edits across strengths: every latent along every chosen direction at steps strengths "
                   "from strength_min to strength_max, in rows (one per latent and direction) of steps images. "
                   "Synthesize it and tile it with Image Grid (columns = grid_columns) for a contact sheet, or use "
                   "one direction as animation frames.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (LATENT, "INT", "STRING")
    RETURN_NAMES = ("latent", "grid_columns", "strengths")
    OUTPUT_TOOLTIPS = ("latents x directions x steps edited latents, row-major.",
                       "Images per row (= steps), for Image Grid.",
                       "The strengths of the columns, comma-separated.")
    FUNCTION = "sweep"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "stylegan": (MODEL, {"tooltip": "The generator the latents are for."}),
            "latent": (LATENT, {"tooltip": "Latents to edit (each gets its own rows)."}),
            "direction_indices": ("STRING", {"default": "0-3", "tooltip":
                                  "Directions to sweep, one row each: e.g. 0-3, 0,2,5 or all (ignored when a "
                                  "direction_file is chosen)."}),
            "strength_min": ("FLOAT", {"default": -3.0, "min": -100.0, "max": 100.0, "step": 0.1, "tooltip":
                             "Strength of the first column."}),
            "strength_max": ("FLOAT", {"default": 3.0, "min": -100.0, "max": 100.0, "step": 0.1, "tooltip":
                             "Strength of the last column."}),
            "steps": ("INT", {"default": 7, "min": 1, "max": 10000, "tooltip":
                      "Strengths per row, evenly spaced from min to max (odd counts include the unedited latent "
                      "when the range is symmetric)."}),
            **_common_inputs(),
        }, "optional": _optional_directions()}

    def sweep(self, stylegan, latent, direction_indices, strength_min, strength_max, steps, direction_file, units,
              layers, custom_layers, renormalize, directions=None):
        G = stylegan
        check_latent(G, latent)
        use_file = direction_file not in (None, "", NO_FILE)
        chosen = _resolve(G, directions, None if use_file else direction_indices, direction_file, units)
        idx = _layers_of(G, layers, custom_layers, None if use_file else directions)
        strengths = torch.linspace(float(strength_min), float(strength_max), int(steps)).tolist()
        if len(chosen) * len(strengths) * latent["ws"].shape[0] > 100000:
            raise ValueError("the sweep would make more than 100000 latents; use fewer directions or steps")
        grid = ed.edit_sweep(latent["ws"], [d for d, _ in chosen], strengths, idx, renormalize=renormalize,
                             center=G.w_avg.detach().float().cpu())  # [N, D, S, num_ws, w_dim]
        ws = grid.reshape(-1, G.num_ws, G.w_dim)
        labels = [f"{lab} | {name} {s:+.3g}" for lab in latent["labels"] for _, name in chosen for s in strengths]
        return (_edited_latent(latent, ws, labels), len(strengths), ", ".join(f"{s:.4g}" for s in strengths))


NODE_CLASS_MAPPINGS = {
    "GANPackStyleGANDirections": StyleGANDirections,
    "GANPackStyleGANEditLatent": EditLatent,
    "GANPackStyleGANEditSweep": EditSweep,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GANPackStyleGANDirections": "StyleGAN Directions (SeFa/GANSpace)",
    "GANPackStyleGANEditLatent": "Edit Latent (StyleGAN)",
    "GANPackStyleGANEditSweep": "Edit Sweep (StyleGAN)",
}
