"""StyleGAN2-ADA / StyleGAN3 generators, safe loading of official pickles, and latent utilities.

Public API (also re-exported lazily from ``models``)::

    G = load_stylegan("ffhq.pkl")                     # or rosinality .pt, state dict, gan-pack .safetensors
    z = seeds_to_z("1,3,5-7", G.z_dim)                # reference-identical z per seed
    ws = G.mapping(z, None, truncation_psi=0.7)       # [N, num_ws, w_dim]
    img = G.synthesis(ws, noise_mode="const")         # [N, C, R, R] in ~[-1, 1]
    grid = style_mix(row_ws, col_ws, "coarse")        # [R, C, num_ws, w_dim]
    save_stylegan(G, "ffhq.safetensors")
"""
from __future__ import annotations

from .base import StyleGAN
from .latents import (class_to_c, interpolate_latents, layer_presets, parse_layers, parse_seeds, seeds_to_z, slerp,
                      style_mix)
from .generate import seeds_to_ws, stylegan_precision, synthesize
from .projection import ProjectionResult, project_image, ssim
from .loading import StyleGANLoadError, build_stylegan, describe_stylegan, load_stylegan, save_stylegan
from .safe_pickle import UnsafePickleError
from .sg2 import StyleGAN2Generator, infer_sg2_config
from .editing import (DirectionFileError, cached_directions, edit_latent, edit_sweep, ganspace_directions,
                      load_direction, sample_w, sefa_directions)

__all__ = ["StyleGAN", "StyleGAN2Generator", "infer_sg2_config", "StyleGANLoadError", "UnsafePickleError",
           "load_stylegan", "save_stylegan", "build_stylegan", "describe_stylegan", "seeds_to_z", "parse_seeds",
           "parse_layers",
           "layer_presets", "style_mix", "interpolate_latents", "slerp", "class_to_c", "project_image",
           "ProjectionResult", "ssim", "seeds_to_ws", "synthesize", "sefa_directions", "ganspace_directions",
           "edit_latent", "edit_sweep", "load_direction", "cached_directions", "sample_w", "DirectionFileError",
           "stylegan_precision"]
