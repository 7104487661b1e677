"""``load_style_network``: detect which style network a weight file holds and build it.

Detection is by key layout and tensor shapes (never by trying ``load_state_dict`` and reporting its trace):

=====================  =========================================================  ===================
kind                   recognised by                                              class
=====================  =========================================================  ===================
``"vgg19"``            ``features.N.weight`` at VGG-19's indices, or ``conv1_1``..  :class:`VGG19Features`
``"adain_encoder"``    ``0.weight`` 1x1 conv 3->3, ``2.weight`` 3x3 conv            :class:`VGG19Features`
``"adain_decoder"``    Sequential convs at 1, 5, 8, ..., 28 ending in 3 channels    :class:`AdaINDecoder`
``"fast_style"``       ``conv1.conv2d.weight``, ``res1.*``, ``deconv3.*``           :class:`TransformerNet`
=====================  =========================================================  ===================

Anything else raises :class:`StyleNetworkLoadError` naming what it looks like.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch

from .adain import (AdaIN, decoder_from_state_dict, encoder_from_state_dict, is_adain_decoder_layout,
                    is_adain_encoder_layout)
from .base import StyleNetwork
from .checkpoint import Source, read_state_dict, save_state_dict
from .errors import StyleNetworkLoadError
from .fast import is_transformer_layout, transformer_from_state_dict
from .vgg import vgg_from_state_dict

KINDS = ("vgg19", "adain_encoder", "adain_decoder", "fast_style")


def _describe_other(sd: Mapping[str, torch.Tensor], name: str) -> StyleNetworkLoadError:
    """An error naming the model family a non-style state dict looks like."""
    keys = list(sd)

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    what = ""
    if has("mapping.") and has("synthesis."):
        what = "looks like a StyleGAN generator (mapping/synthesis networks) - load it with the StyleGAN loader"
    elif has("model.model.0") or has("model.model.1.model"):
        what = "looks like a Pix2Pix/CycleGAN U-Net generator - load it with the translator loader"
    elif (w := sd.get("model.1.weight")) is not None and w.ndim == 4 and tuple(w.shape[2:]) == (7, 7):
        what = "looks like a Pix2Pix/CycleGAN ResNet generator - load it with the translator loader"
    elif (w := sd.get("model.0.weight")) is not None and w.ndim == 4 and tuple(w.shape[2:]) == (4, 4):
        what = "looks like a PatchGAN discriminator (Pix2Pix/CycleGAN training), not a style network"
    elif has("layer1.0.") and "fc.weight" in sd:
        what = "looks like a ResNet classifier, not VGG-19"
    elif has("classifier.") and not has("features."):
        what = "holds only a classifier head (classifier.*) without the VGG convolutions (features.*)"
    elif has("encoder.") and has("decoder."):
        what = "an encoder/decoder model of an unknown layout (AdaIN expects vgg_normalised.pth and decoder.pth as two files)"
    else:
        convs = [k for k, v in sd.items() if v.ndim == 4]
        what = f"unrecognised layout ({len(sd)} tensors, {len(convs)} conv weights; first keys {keys[:4]})"
    return StyleNetworkLoadError(f"{name}: not a style-transfer network: {what}")


def detect_kind(sd: Mapping[str, torch.Tensor]) -> Optional[str]:
    """The style network kind a state dict's layout matches, or ``None``."""
    if is_transformer_layout(sd):
        return "fast_style"
    if any(re.fullmatch(r"features\.\d+\.weight", k) for k in sd) or "conv1_1.weight" in sd:
        return "vgg19"
    if is_adain_encoder_layout(sd):
        return "adain_encoder"
    if is_adain_decoder_layout(sd):
        return "adain_decoder"
    return None


def load_style_network(source: Source, *, convention: Optional[str] = None, expect: Optional[str] = None,
                       pool: str = "max", device: Union[str, torch.device, None] = None) -> StyleNetwork:
    """Load a style network from a file path (``.safetensors`` / ``.pth`` / ``.pt``) or a state dict.

    Returns a frozen, eval-mode :class:`StyleNetwork` whose ``kind`` is ``"vgg19"``, ``"adain_encoder"``,
    ``"adain_decoder"`` or ``"fast_style"``; ``name`` is the file stem and ``layout`` the detected layout.

    ``convention`` forces the input convention of a VGG-19 file (``"torchvision"`` or ``"caffe"``) when
    metadata, keys and file name cannot tell (see :func:`.vgg.detect_convention`). ``expect`` (a kind)
    turns a valid file of another kind into an error saying so. ``pool`` sets the default VGG pooling.
    Pickled checkpoints are read with ``weights_only=True``: files that would run code are refused.
    Raises :class:`StyleNetworkLoadError` for anything unusable.
    """
    if expect is not None and expect not in KINDS:
        raise ValueError(f"expect must be one of {KINDS}, got {expect!r}")
    if isinstance(source, StyleNetwork):  # already loaded: pass through (after the same kind check)
        if expect is not None and source.kind != expect:
            raise StyleNetworkLoadError(f"{source.name or 'network'}: this is a {source.kind} network, expected {expect}")
        return source.to(device) if device is not None else source
    sd, meta, name = read_state_dict(source)
    kind = detect_kind(sd)
    if kind is None:
        raise _describe_other(sd, name)
    meta_kind = meta.get("gan_pack_kind")
    if meta_kind and meta_kind != kind:
        raise StyleNetworkLoadError(f"{name}: metadata says {meta_kind!r} but the weights are laid out as {kind!r}")
    try:
        if kind == "vgg19":
            net: StyleNetwork = vgg_from_state_dict(sd, meta, name, convention=convention, pool=pool)
        elif kind == "adain_encoder":
            net = encoder_from_state_dict(sd, name)
            net.pool = pool
        elif kind == "adain_decoder":
            net = decoder_from_state_dict(sd, name)
        else:
            net = transformer_from_state_dict(sd, name)
    except StyleNetworkLoadError:
        raise
    except (KeyError, IndexError, RuntimeError, TypeError, AttributeError) as exc:  # never leak a raw trace
        raise StyleNetworkLoadError(f"{name}: {kind} layout but the tensors are inconsistent "
                                    f"({type(exc).__name__}: {exc})") from None
    if expect is not None and net.kind != expect:
        raise StyleNetworkLoadError(f"{name}: this is a {net.kind} network ({net.layout}), expected {expect}")
    net.name = Path(name).stem if name != "<state dict>" else ""
    if device is not None:
        net.to(device)
    return net


def load_adain(vgg: Union[Source, StyleNetwork], decoder: Union[Source, StyleNetwork], *,
               device: Union[str, torch.device, None] = None) -> AdaIN:
    """An :class:`AdaIN` pair from ``vgg_normalised.pth`` and ``decoder.pth`` (paths, state dicts or loaded
    networks). Raises :class:`StyleNetworkLoadError` when a file is not the right half or they do not match."""
    enc = vgg if isinstance(vgg, StyleNetwork) else load_style_network(vgg, device=device)
    dec = decoder if isinstance(decoder, StyleNetwork) else load_style_network(decoder, device=device)
    if enc.kind == "adain_decoder" and dec.kind == "adain_encoder":
        enc, dec = dec, enc  # swapped arguments are harmless
    if enc.kind != "adain_encoder":
        hint = (" - torchvision/caffe VGG-19 files do not fit AdaIN's decoder; use pytorch-AdaIN's vgg_normalised.pth"
                if enc.kind == "vgg19" else "")
        raise StyleNetworkLoadError(f"{enc.name or 'vgg'}: expected AdaIN's vgg_normalised encoder, got a {enc.kind} network{hint}")
    if dec.kind != "adain_decoder":
        raise StyleNetworkLoadError(f"{dec.name or 'decoder'}: expected AdaIN's decoder, got a {dec.kind} network")
    pair = AdaIN(enc, dec)
    if device is not None:
        pair.to(device)
    return pair


def save_style_network(net: StyleNetwork, path: Union[str, os.PathLike]) -> None:
    """Save in the public layout of the network's family (``.safetensors`` gets kind/config/convention metadata)."""
    meta = {"gan_pack_kind": net.kind, "gan_pack_config": json.dumps(net.config())}
    convention = getattr(net, "convention", None)
    if convention in ("torchvision", "caffe"):
        meta["input_convention"] = convention
    save_state_dict(net.public_state_dict(), path, meta)
