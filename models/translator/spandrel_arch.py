"""Make Pix2Pix / CycleGAN generators loadable by spandrel (ComfyUI's "Load Upscale Model" and other tools).

``install()`` adds one architecture, ``GANPackTranslator``, to ``spandrel.MAIN_REGISTRY`` -- the same way
``spandrel_extra_arches`` adds its architectures. A translator file (reference ``latest_net_G*.pth``, plain
or this pack's ``.safetensors``) placed in ``models/upscale_models`` then loads as a spandrel
``ImageModelDescriptor`` with scale 1 whose call maps [0, 1] images to [0, 1] images, so core "Upscale Image
(using Model)" runs it. Detection is the loader's full structural match (every conv shape of a ResNet or
U-Net generator), so real upscalers are never taken for translators; the architecture is appended last, so
spandrel's own architectures are tried first.

Note: ComfyUI's core path tiles at 512 px with its own blending and runs InstanceNorm per tile; the pack's
own translate node (``models.translator.translate``) uses whole-frame statistics instead.
"""
from __future__ import annotations

from typing import Any, Dict

import torch

from .base import Translator
from .infer import _pad_frame
from .loader import TranslatorLoadError, _unwrap, translator_from_state_dict

ARCH_ID = "GANPackTranslator"


def _call(model: Translator, image: torch.Tensor) -> torch.Tensor:
    """spandrel call: NCHW [0, 1] -> NCHW [0, 1], adapting gray/RGB/RGBA inputs to the model's channels."""
    x = image
    c = x.shape[1]
    if c != model.input_nc:
        if c in (2, 4):
            x = x[:, : c - 1]
            c -= 1
        if c == 1 and model.input_nc == 3:
            x = x.expand(-1, 3, -1, -1)
        elif c == 3 and model.input_nc == 1:
            x = 0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    # pad exactly as the pack's own translate does (centred reflection to the size multiple) and crop back,
    # so the core upscale nodes give the Translate node's pixels at any size
    h, w = x.shape[-2:]
    m = int(model.size_multiple)
    lo = int(getattr(model, "min_size", m) or m)
    ph, pw = max(lo, -(-h // m) * m), max(lo, -(-w // m) * m)
    xp, (top, left) = _pad_frame(x * 2.0 - 1.0, ph, pw)
    y = model(xp)[..., top:top + h, left:left + w].add(1.0).mul(0.5)
    if y.shape[1] == 1:
        y = y.repeat(1, 3, 1, 1)  # spandrel clamps in place: no expanded views
    return y


def _make_architecture():
    from spandrel import Architecture, ImageModelDescriptor, ModelTiling, SizeRequirements

    class TranslatorArchitecture(Architecture[Translator]):
        def __init__(self) -> None:
            super().__init__(id=ARCH_ID, name="Pix2Pix/CycleGAN translator (comfyui-gan-pack)",
                             detect=self._detect)

        @staticmethod
        def _detect(state_dict: Dict[str, Any]) -> bool:
            try:
                state_dict = _unwrap(state_dict, None)  # e.g. a CycleGAN {"G_A": ..., "G_B": ...} pair: G_A
            except (TranslatorLoadError, ValueError):
                return False
            # cheap pre-checks before the full structural match: conv weights with the first one 7x7 (ResNet)
            # or 4x4 (U-Net), and only conv / norm tensors
            first = next((v for v in state_dict.values() if isinstance(v, torch.Tensor) and v.ndim == 4), None)
            if first is None or tuple(first.shape[2:]) not in ((7, 7), (4, 4)):
                return False
            if any(isinstance(v, torch.Tensor) and v.ndim not in (0, 1, 4) for v in state_dict.values()):
                return False
            try:
                translator_from_state_dict(state_dict)
            except (TranslatorLoadError, ValueError, KeyError, TypeError, RuntimeError):
                return False
            return True

        def load(self, state_dict: Dict[str, Any]):
            model = translator_from_state_dict(_unwrap(state_dict, None)).eval()
            tags = [model.arch, f"ngf{model.ngf}", model.norm]
            if model.arch == "resnet":
                tags.insert(1, f"{model.n_blocks}blocks")
            else:
                tags.insert(1, f"depth{model.depth}")
            tiling = ModelTiling.SUPPORTED if (model.norm != "instance" and model.arch == "resnet") \
                else ModelTiling.DISCOURAGED
            return ImageModelDescriptor(
                # spandrel loads the given state dict into the model: hand it the model's own (the file's
                # names and layout -- wrappers, third-party names, old InstanceNorm stats -- were mapped already)
                model, model.state_dict(), architecture=self, purpose="Restoration", tags=tags,
                supports_half=True, supports_bfloat16=True, scale=1,
                input_channels=model.input_nc, output_channels=max(3, model.output_nc),
                size_requirements=SizeRequirements(minimum=1, multiple_of=1),  # _call pads and crops
                tiling=tiling, call_fn=_call)

    return TranslatorArchitecture()


def install() -> bool:
    """Register the translator architecture in ``spandrel.MAIN_REGISTRY``. Idempotent; returns False when
    spandrel is not importable (nothing to do) and True when the architecture is registered."""
    try:
        from spandrel import MAIN_REGISTRY, ArchSupport
    except ImportError:
        return False
    if ARCH_ID not in MAIN_REGISTRY:
        MAIN_REGISTRY.add(ArchSupport.from_architecture(_make_architecture()), ignore_duplicates=True)
    return True


install_spandrel = install
