"""Artistic style transfer engine: Gatys optimisation, AdaIN and Johnson fast networks, in pure PyTorch.

Typical use (IMAGE tensors are ComfyUI's NHWC RGB in [0, 1])::

    from models.style import load_style_network, load_adain, style_transfer

    vgg = load_style_network("vgg19-dcbb9e9d.pth")                 # kind "vgg19"
    out = style_transfer(content, style, method="gatys", network=vgg, iterations=300, seed=0)

    pair = load_adain("vgg_normalised.pth", "decoder.pth")
    out = style_transfer(frames, style, method="adain", network=pair, strength=0.8, consistency=True)

    candy = load_style_network("candy.pth")                        # kind "fast_style"
    out = style_transfer(frames, method="fast", network=candy, consistency=True, temporal_blend_weight=0.5)

``required_files()`` lists the files each method needs in ``models/style_transfer/``. Loaders raise
:class:`StyleNetworkLoadError` (a ``ValueError``) with a readable reason for anything unusable.
"""
from __future__ import annotations

from .adain import AdaIN, AdaINDecoder, AdaINEncoder, adaptive_instance_norm, calc_mean_std
from .base import StyleNetwork
from .color import luminance_transfer, match_color
from .errors import StyleNetworkLoadError
from .fast import TransformerNet
from .files import FOLDER, RequiredFile, missing_files, required_files
from .gatys import GatysOptions, gatys_transfer, gram, total_variation
from .loader import detect_kind, load_adain, load_style_network, save_style_network
from .tiles import auto_tile_size
from .transfer import adain_frames, fast_frames, static_mask, style_transfer, temporal_blend
from .vgg import VGG19Features, layer_names

__all__ = [
    "AdaIN", "AdaINDecoder", "AdaINEncoder", "FOLDER", "GatysOptions", "RequiredFile", "StyleNetwork",
    "StyleNetworkLoadError", "TransformerNet", "VGG19Features", "adain_frames", "adaptive_instance_norm", "auto_tile_size",
    "calc_mean_std", "detect_kind", "fast_frames", "gatys_transfer", "gram", "layer_names", "load_adain",
    "load_style_network", "luminance_transfer", "match_color", "missing_files", "required_files",
    "save_style_network", "static_mask", "style_transfer", "temporal_blend", "total_variation",
]
