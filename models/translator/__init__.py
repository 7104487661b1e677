"""Pix2Pix / CycleGAN translators: generators, checkpoint loading/saving and tiled inference.

Public API::

    load_translator(path_or_state_dict, *, device=None, direction=None, name=None, **overrides) -> Translator
    save_translator(translator, path, *, metadata=None) -> Path
    translate(translator, images, *, tile_size=0, tile_overlap=0, mode="eval", seed=0,
              resize_to_train_size=False, batch_size=4, device=None, dtype=None,
              progress=None, check_interrupt=None) -> images
    plan_translation(translator, shape, *, tile_size=0, ...) -> TranslationPlan  (what translate will do:
        whole frame or tiles, passes, precision that runs, progress steps, estimated peak memory; str() = report)
    TranslatorLoadError(ValueError)
    auto_tile_size(translator, height, width, *, free_bytes, batch_size=1, dtype=None) -> int (0 = untiled)
    ResnetGenerator(...), UnetGenerator(...)   (architectures "resnet" and "unet")

Modules: ``arch_resnet`` / ``arch_unet`` (generators in the reference key layout), ``layers`` (norm/dropout
layers and the frame context that gives tiles whole-frame statistics), ``loader`` (detection, loading,
saving), ``infer`` (``translate``: padding, channels, tiling with staged whole-frame statistics), ``stream``
(exact strip-wise U-Net inference), ``spandrel_arch`` (``install()``: registration with spandrel, so
ComfyUI's core upscale-model nodes can run translators).

Everything here is plain PyTorch; nothing imports ComfyUI.
"""
from __future__ import annotations

from .arch_resnet import ResnetGenerator
from .arch_unet import UnetGenerator
from .base import Translator, architecture_builder, register_architecture
from .infer import activation_bytes_per_pixel, auto_tile_overlap, auto_tile_size, translate
from .plan import TranslationPlan, available_memory, plan_translation
from .loader import TranslatorLoadError, load_translator, save_translator, translator_from_state_dict

__all__ = [
    "Translator", "ResnetGenerator", "UnetGenerator", "TranslatorLoadError", "load_translator",
    "save_translator", "translate", "translator_from_state_dict", "auto_tile_overlap", "auto_tile_size",
    "activation_bytes_per_pixel", "register_architecture",
    "architecture_builder", "plan_translation", "TranslationPlan", "available_memory",
]
