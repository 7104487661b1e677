"""Common type of the networks the style-transfer engine loads (VGG-19 features, AdaIN halves, fast nets)."""
from __future__ import annotations

import copy
from typing import Any, Dict

import torch
from torch import nn


class StyleNetwork(nn.Module):
    """Base class. ``kind`` is one of ``"vgg19" | "adain_encoder" | "adain_decoder" | "fast_style"``.

    Every network takes and returns NCHW tensors with RGB in ``[0, 1]`` (each subclass applies its own
    input convention internally). ``config()`` gives JSON-serialisable constructor arguments and
    ``public_state_dict()`` the weights in the layout of the public release the class reproduces, so
    ``save_style_network`` writes files the original projects (and this loader) can read.
    """

    kind: str = "unknown"
    name: str = ""          # display name (file stem), set by loaders
    layout: str = ""        # the public key layout the weights came in, e.g. "torchvision", "caffe (jcjohnson)"

    def config(self) -> Dict[str, Any]:
        raise NotImplementedError

    def public_state_dict(self) -> Dict[str, torch.Tensor]:
        raise NotImplementedError

    def freeze(self) -> "StyleNetwork":
        """Eval mode, no parameter gradients (the engine never trains a loaded network)."""
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        return self

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def extra_repr(self) -> str:
        return f"kind={self.kind}, name={self.name!r}, layout={self.layout!r}"


def prepared(module: nn.Module, device: torch.device, autograd: bool = True) -> nn.Module:
    """A version of ``module`` on ``device`` (whose tensors can take part in autograd when ``autograd``).

    ComfyUI runs nodes under ``torch.inference_mode()``; weights created there are inference tensors that
    autograd refuses. When the module already fits, it is returned as is (a cached model is never
    mutated); otherwise a copy is made outside inference mode.
    """
    tensors = list(module.parameters()) + list(module.buffers())
    needs_copy = any(t.device != device for t in tensors) or (autograd and any(t.is_inference() for t in tensors))
    if not needs_copy:
        return module
    with torch.inference_mode(False):
        return copy.deepcopy(module).to(device)  # deepcopy outside inference mode yields normal tensors
