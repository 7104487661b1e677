"""Colour management node (engine: ``models.colour``, OpenColorIO): scene-linear plates to display and back."""
from __future__ import annotations

import logging
import os

import folder_paths

from ..models import colour
from .common import Progress

log = logging.getLogger("comfyui-gan-pack")
CATEGORY = "GAN/Colour"
CONFIG_FOLDER = "ocio"  # ComfyUI/models/ocio/<show>/config.ocio
CONFIG_EXTENSIONS = {".ocio", ".ocioz"}
DEFAULT = "default ($OCIO, else built-in studio config)"
BUILT_IN = ["ocio://studio-config-latest", "ocio://cg-config-latest"]


def _register_folder() -> None:
    default = os.path.join(folder_paths.models_dir, CONFIG_FOLDER)
    entry = folder_paths.folder_names_and_paths.get(CONFIG_FOLDER)
    if entry is None:
        folder_paths.folder_names_and_paths[CONFIG_FOLDER] = ([default], set(CONFIG_EXTENSIONS))
    else:
        dirs, exts = entry
        if default not in dirs:
            dirs.append(default)
        folder_paths.folder_names_and_paths[CONFIG_FOLDER] = (dirs, set(exts) | CONFIG_EXTENSIONS)


_register_folder()


def config_choices():
    try:
        files = folder_paths.get_filename_list(CONFIG_FOLDER)
    except KeyError:
        files = []
    return [DEFAULT] + BUILT_IN + list(files)


def config_path(choice: str):
    """The engine's ``config`` argument for a dropdown choice (None = $OCIO or the built-in default)."""
    choice = (choice or "").strip()
    if not choice or choice == DEFAULT:
        return None
    if choice.startswith("ocio://"):
        return choice
    path = folder_paths.get_full_path(CONFIG_FOLDER, choice)
    if path is None or not os.path.isfile(path):
        where = "\n  ".join(folder_paths.get_folder_paths(CONFIG_FOLDER))
        raise FileNotFoundError(f"OCIO config '{choice}' not found. Put the config (with its LUT folder) in one "
                                f"of:\n  {where}")
    return path


def space_choices():
    """Colour spaces and display/views of the default config and of every config in models/ocio (one list:
    the node checks the choice against the config actually picked)."""
    names, seen = [], set()
    for choice in [DEFAULT] + config_choices()[len(BUILT_IN) + 1:]:
        try:
            found = colour.list_colourspaces(config_path(choice))
        except Exception as e:  # a broken $OCIO or config file must not hide the node
            log.warning("comfyui-gan-pack: cannot list colour spaces of OCIO config %s: %s", choice, e)
            found = colour.list_colourspaces(colour.DEFAULT_CONFIG) if choice == DEFAULT else []
        for n in found:
            if n not in seen:
                seen.add(n)
                names.append(n)
    return names


class ColourTransform:
    DESCRIPTION = (
        "Converts images between two colour spaces of an OpenColorIO config (e.g. an ACEScg EXR plate to "
        "sRGB - Display for a network, and the network's output back to ACEScg). The config is $OCIO when set, "
        "a config picked here (ComfyUI/models/ocio), or OCIO's built-in studio config. Source or target may also be "
        "a '<display> / <view>' (e.g. the ACES 2.0 SDR view, which tone-maps highlights into 0-1; as the source, "
        "its inverse). Nothing is clamped: a colorimetric display space keeps scene values above 1 above 1 (the "
        "networks clamp their input, so highlights brighter than display white are what they cannot see); going "
        "back to scene-linear applies the exact inverse. Alpha is never converted.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The converted images (float32, unclamped).",)
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        spaces = space_choices()
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Images or frames to convert (values outside 0-1 are kept)."}),
            "source": (spaces, {"default": "ACEScg", "tooltip":
                       "Colour space the images are in (a name, alias or role of the config), or a "
                       "'<display> / <view>' to undo that view."}),
            "target": (spaces, {"default": "sRGB - Display", "tooltip":
                       "Colour space to convert to, or a '<display> / <view>' to apply that view (tone mapping)."}),
            "config": (config_choices(), {"default": DEFAULT, "tooltip":
                       "OCIO config: default = the OCIO environment variable when set, else OCIO's built-in "
                       "studio config (ACEScg, ACES2065-1, Linear Rec.709 (sRGB), sRGB - Display, camera logs). "
                       "Show configs go in ComfyUI/models/ocio/<name>/config.ocio."}),
        }, "optional": {
            "alpha": ("MASK", {"tooltip": "Alpha of the images (e.g. from Load Image Sequence), used only when "
                                          "premultiplied is on; never converted."}),
            "premultiplied": ("BOOLEAN", {"default": False, "tooltip":
                              "The colour is premultiplied by alpha (EXR convention): divide by alpha before the "
                              "transform and multiply back after, so edges convert correctly."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, source, target, config):
        # checked against the config actually picked (the dropdowns list the spaces of every config)
        try:
            colour.colour_processor(source, target, config_path(config))
        except (colour.ColourError, FileNotFoundError) as e:
            return str(e)
        return True

    def convert(self, images, source, target, config, alpha=None, premultiplied=False):
        if premultiplied and alpha is None and images.shape[-1] != 4:
            raise ValueError("premultiplied is on but no alpha is connected: connect the alpha MASK of the plate "
                             "(Load Image Sequence's alpha output) or turn premultiplied off")
        if alpha is not None and tuple(alpha.shape[-2:]) != tuple(images.shape[1:3]):
            raise ValueError(f"alpha {tuple(alpha.shape)} and images {tuple(images.shape)} differ in size")
        if alpha is not None and alpha.ndim == 3 and alpha.shape[0] == 1 and images.shape[0] > 1:
            alpha = alpha.expand(images.shape[0], -1, -1)
        out = colour.convert_colourspace(images, source, target, config=config_path(config),
                                         alpha=alpha if premultiplied else None, premultiplied=bool(premultiplied),
                                         progress=Progress(images.shape[0]),
                                         check_interrupt=Progress.check_interrupt)
        return (out,)


NODE_CLASS_MAPPINGS = {"GANPackColourTransform": ColourTransform}
NODE_DISPLAY_NAME_MAPPINGS = {"GANPackColourTransform": "Colour Transform (OCIO)"}
