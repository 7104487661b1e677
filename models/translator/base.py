"""The common type of every image-to-image translator the pack runs (Pix2Pix, CycleGAN, keyframe-trained).

A translator maps NCHW tensors in [-1, 1] to NCHW tensors in [-1, 1]. Besides ``forward`` it describes what
it needs from the inference helper (``size_multiple``, ``train_size``, whether its normalisation layers need
whole-frame statistics when tiled) and how to rebuild itself (``config()`` + the architecture registry), so a
trained or converted network can be saved as ``.safetensors`` with its architecture in the metadata.
"""
from __future__ import annotations

from typing import Any, Callable, Dict

import torch
from torch import nn

# architecture name -> callable(**config) -> Translator
_ARCHITECTURES: Dict[str, Callable[..., "Translator"]] = {}


def register_architecture(name: str, builder: Callable[..., "Translator"]) -> None:
    """Make ``builder(**config)`` the constructor of translators whose ``config()['arch'] == name``."""
    _ARCHITECTURES[name] = builder


def _import_architectures() -> None:
    """Import every ``arch_*.py`` module of this package; each registers its architectures on import."""
    import importlib
    import pkgutil
    from pathlib import Path

    for mod in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if mod.name.startswith("arch_"):
            importlib.import_module(f"{__package__}.{mod.name}")


def architecture_builder(name: str) -> Callable[..., "Translator"]:
    if name not in _ARCHITECTURES:
        _import_architectures()
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        known = ", ".join(sorted(_ARCHITECTURES)) or "none"
        raise KeyError(f"unknown translator architecture {name!r} (known: {known})") from None


class Translator(nn.Module):
    """Base class. Subclasses set the attributes below in ``__init__`` and implement ``forward``/``config``."""

    arch: str = "unknown"        # registry name, e.g. "resnet", "unet", "keyframe"
    input_nc: int = 3
    output_nc: int = 3
    ngf: int = 64
    norm: str = "none"           # "batch" | "instance" | "none"
    size_multiple: int = 1       # H and W must be multiples of this (the helper pads with reflection)
    train_size: int | None = None  # the square size the model was trained at, when known (e.g. 256)
    name: str = ""               # display name (file stem), set by loaders

    @property
    def uses_instance_norm(self) -> bool:
        """True when tiles must share whole-frame normalisation statistics to avoid per-tile colour casts."""
        return self.norm == "instance"

    def config(self) -> Dict[str, Any]:
        """JSON-serialisable constructor arguments, including ``arch``; ``architecture_builder(arch)(**rest)``
        must rebuild an identical module (weights aside)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"arch={self.arch}, in={self.input_nc}, out={self.output_nc}, ngf={self.ngf}, norm={self.norm}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
