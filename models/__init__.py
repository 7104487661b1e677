"""comfyui-gan-pack engine: GAN architectures, checkpoint detection/loading and inference helpers.

Pure PyTorch (+ numpy, safetensors, kornia, pillow; openexr and opencolorio for VFX plates). Nothing here imports ComfyUI, so the engine can be
used and tested on its own::

    import sys; sys.path.insert(0, "/path/to/comfyui-gan-pack")
    import models
    g = models.load_translator("latest_net_G.pth")

Inside the package every import is relative: ComfyUI has top-level modules called ``nodes`` and ``models``
of its own, so the pack never relies on its own package names being importable by absolute name.

The public API is resolved lazily (PEP 562) so ``import models`` stays cheap and one family's optional
dependencies never break another's.
"""
from __future__ import annotations

import importlib

# public name -> submodule (relative to this package) that defines it
_API = {
    # image layout helpers (ComfyUI IMAGE <-> GAN NCHW [-1, 1])
    "image_to_gan": ".image",
    "gan_to_image": ".image",
    "convert_channels": ".image",
    "batch_images": ".image",
    # Pix2Pix / CycleGAN translators
    "Translator": ".translator",
    "load_translator": ".translator",
    "translate": ".translator",
    "save_translator": ".translator",
    "TranslatorLoadError": ".translator",
    "ResnetGenerator": ".translator",
    "UnetGenerator": ".translator",
    "install_spandrel": ".translator.spandrel_arch",
    "effective_precision": ".translator.speed",
    # the shared accuracy criterion of every low-precision path
    "Verdict": ".precision",
    "calibration_frames": ".precision",
    "resolve_precision": ".precision",
    "plan_translation": ".translator",
    "TranslationPlan": ".translator",
    # StyleGAN2-ADA / StyleGAN3
    "StyleGAN": ".stylegan",
    "load_stylegan": ".stylegan",
    "save_stylegan": ".stylegan",
    "StyleGANLoadError": ".stylegan",
    "seeds_to_z": ".stylegan",
    "style_mix": ".stylegan",
    "interpolate_latents": ".stylegan",
    "project_image": ".stylegan",
    "ProjectionResult": ".stylegan",
    "parse_seeds": ".stylegan",
    "parse_layers": ".stylegan",
    "layer_presets": ".stylegan",
    "class_to_c": ".stylegan",
    "build_stylegan": ".stylegan",
    "describe_stylegan": ".stylegan",
    "seeds_to_ws": ".stylegan",
    "synthesize": ".stylegan",
    "stylegan_precision": ".stylegan",
    # StyleGAN semantic editing (SeFa, GANSpace, direction files)
    "sefa_directions": ".stylegan.editing",
    "ganspace_directions": ".stylegan.editing",
    "edit_latent": ".stylegan.editing",
    "edit_sweep": ".stylegan.editing",
    "load_direction": ".stylegan.editing",
    "cached_directions": ".stylegan.editing",
    "sample_w": ".stylegan.editing",
    "DirectionFileError": ".stylegan.editing",

    "StyleGAN3Generator": ".stylegan.sg3",
    "infer_sg3_config": ".stylegan.sg3",
    # keyframe stylisation and frame sequences
    "train_from_keyframes": ".keyframe",
    "flicker": ".temporal",
    "temporal_blend": ".temporal",
    "make_demo_shot": ".shots",
    "load_image_sequence": ".sequence",
    "save_image_sequence": ".sequence",
    "list_image_sequence": ".sequence",
    "existing_frames": ".sequence",
    "SequenceError": ".sequence",
    # OpenEXR frames and OpenColorIO colour management (VFX plates)
    "read_exr": ".io.exr",
    "encode_exr": ".io.exr",
    "exr_channels": ".io.exr",
    "ExrError": ".io.exr",
    "convert_colourspace": ".colour",
    "colour_processor": ".colour",
    "list_colourspaces": ".colour",
    "ColourError": ".colour",
    # artistic style transfer
    "load_style_network": ".style",
    "load_adain": ".style",
    "style_transfer": ".style",
    "required_files": ".style",
    "missing_files": ".style",
    "StyleNetworkLoadError": ".style",
    # training Pix2Pix / CycleGAN by the reference recipes
    "GANTrainer": ".training",
    "NonFiniteLossError": ".training",
    "train_folders": ".training",
    "DataFolderError": ".training",
    # validation of names, frame patterns, numbers and request sizes (models/validate.py)
    "InputError": ".validate",
    "check_file_name": ".validate",
    "check_frame_pattern": ".validate",
    "check_finite": ".validate",
    "check_image_finite": ".validate",
    "check_tensors_finite": ".validate",
    "check_memory": ".validate",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    try:
        module = _API[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_API))
