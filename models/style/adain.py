"""AdaIN arbitrary style transfer (Huang & Belongie 2017) in the layout of the pytorch-AdaIN release.

* ``vgg_normalised.pth``: an ``nn.Sequential`` whose module ``0`` is a 1x1 conv 3->3 (it turns RGB [0, 1]
  into the caffe input), followed by ReflectionPad/Conv/ReLU triples and ceil-mode max pools up to relu5_4;
  the 3x3 convolutions sit at indices 2, 5, 9, 12, 16, ..., 51. AdaIN uses the first 31 modules (up to
  relu4_1, conv index 29); files cut there are accepted.
* ``decoder.pth``: an ``nn.Sequential`` mirroring the encoder to relu4_1 with nearest upsampling; its
  convolutions sit at indices 1, 5, 8, 11, 14, 18, 21, 25, 28 (the last, 64->3, without ReLU).

The encoder takes RGB in [0, 1]; the decoder returns RGB in ~[0, 1].
"""
from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import StyleNetwork
from .errors import StyleNetworkLoadError
from .vgg import ADAIN_INDICES, CONV_NAMES, VGG19Features, _check_chain, _conv_entries, _fill

# decoder plan: "c" = ReflectionPad + Conv (+ ReLU unless last), "u" = nearest x2 upsampling
_DECODER_PLAN = ("c", "u", "c", "c", "c", "c", "u", "c", "c", "u", "c", "c")
DECODER_WIDTHS = (256, 256, 256, 256, 128, 128, 64, 64, 3)
ENCODER_LAYER = "relu4_1"


def _decoder_indices() -> List[int]:
    out, idx = [], 0
    for op in _DECODER_PLAN:
        if op == "u":
            idx += 1
        else:
            out.append(idx + 1)
            idx += 3
    return out


DECODER_INDICES = _decoder_indices()  # [1, 5, 8, 11, 14, 18, 21, 25, 28]


def calc_mean_std(feat: torch.Tensor, eps: float = 1e-5, dims: Sequence[int] = (2, 3)) -> Tuple[torch.Tensor, torch.Tensor]:
    """Channel mean and std over ``dims`` (unbiased variance + ``eps``, as in the reference), shaped to broadcast."""
    mean = feat.mean(dim=tuple(dims), keepdim=True)
    var = feat.var(dim=tuple(dims), keepdim=True, unbiased=True) + eps
    return mean, var.sqrt()


def adaptive_instance_norm(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                           content_stats: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
    """Normalise ``content`` per channel (its own statistics, or ``content_stats``) and give it the style's."""
    c_mean, c_std = content_stats if content_stats is not None else calc_mean_std(content)
    return (content - c_mean) / c_std * style_std + style_mean


def AdaINEncoder(widths: Sequence[int] = (64, 64, 128, 128, 256, 256, 256, 256, 512, 512, 512, 512, 512, 512, 512, 512)
                 ) -> VGG19Features:
    """The ``vgg_normalised`` encoder: a :class:`VGG19Features` with the learned 1x1 preprocessing conv,
    reflection padding and ceil-mode pooling (``kind="adain_encoder"``)."""
    return VGG19Features(widths, convention="adain", padding="reflect", ceil_mode=True, kind="adain_encoder")


class AdaINDecoder(StyleNetwork):
    """pytorch-AdaIN's decoder: relu4_1 features -> RGB image 8x larger (``kind="adain_decoder"``)."""

    kind = "adain_decoder"

    def __init__(self, in_channels: int = 512, widths: Sequence[int] = DECODER_WIDTHS):
        super().__init__()
        if len(widths) != len(DECODER_INDICES) or widths[-1] != 3:
            raise ValueError(f"the decoder has {len(DECODER_INDICES)} convolutions ending in 3 channels, got {widths}")
        self.in_channels = int(in_channels)
        self.widths = [int(w) for w in widths]
        self.convs = nn.ModuleList()
        c = self.in_channels
        for w in self.widths:
            self.convs.append(nn.Conv2d(c, w, 3))
            c = w
        self.freeze()

    def config(self) -> Dict[str, object]:
        return {"kind": self.kind, "in_channels": self.in_channels, "widths": list(self.widths)}

    def public_state_dict(self) -> Dict[str, torch.Tensor]:
        out = {}
        for idx, conv in zip(DECODER_INDICES, self.convs):
            out[f"{idx}.weight"], out[f"{idx}.bias"] = conv.weight.detach(), conv.bias.detach()
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = 0
        for op in _DECODER_PLAN:
            if op == "u":
                x = F.interpolate(x, scale_factor=2, mode="nearest")
                continue
            x = self.convs[i](F.pad(x, (1, 1, 1, 1), mode="reflect"))
            i += 1
            if i < len(self.convs):
                x = F.relu(x)
        return x


class AdaIN(nn.Module):
    """An encoder/decoder pair; ``forward(content, style, alpha)`` maps NCHW RGB [0, 1] to NCHW RGB [0, 1].

    ``alpha`` in [0, 1] interpolates between the content's relu4_1 features (0) and the AdaIN target (1).
    """

    kind = "adain"

    def __init__(self, encoder: VGG19Features, decoder: AdaINDecoder):
        super().__init__()
        if getattr(encoder, "kind", None) != "adain_encoder":
            raise StyleNetworkLoadError(
                f"AdaIN needs the vgg_normalised encoder its decoder was trained with; got a "
                f"{getattr(encoder, 'kind', type(encoder).__name__)} network ({getattr(encoder, 'layout', '')})")
        if getattr(decoder, "kind", None) != "adain_decoder":
            raise StyleNetworkLoadError(f"AdaIN needs an adain_decoder network, got {getattr(decoder, 'kind', type(decoder).__name__)}")
        if ENCODER_LAYER not in encoder.layers:
            raise StyleNetworkLoadError(f"the AdaIN encoder ({encoder.name or 'vgg'}) stops before relu4_1 "
                                        f"({len(encoder.widths)} convolutions) - truncated vgg_normalised file?")
        if encoder.channels(ENCODER_LAYER) != decoder.in_channels:
            raise StyleNetworkLoadError(
                f"encoder relu4_1 has {encoder.channels(ENCODER_LAYER)} channels but the decoder expects "
                f"{decoder.in_channels} - the two files do not belong together")
        self.encoder = encoder
        self.decoder = decoder
        self.name = "+".join(n for n in (encoder.name, decoder.name) if n) or "adain"
        self.size_multiple = 8

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x, (ENCODER_LAYER,))[ENCODER_LAYER]

    @staticmethod
    def stylize_features(content_feat: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
                         alpha: float = 1.0,
                         content_stats: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        """AdaIN target at relu4_1: ``alpha * AdaIN(content, style) + (1 - alpha) * content``."""
        t = adaptive_instance_norm(content_feat, style_mean, style_std, content_stats)
        return alpha * t + (1.0 - alpha) * content_feat

    def style_stats(self, style: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Channel mean/std of the style image(s)' relu4_1 features, ``[N, C, 1, 1]`` each."""
        return calc_mean_std(self.encode(style))

    def forward(self, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0) -> torch.Tensor:
        mean, std = self.style_stats(style)
        return self.decoder(self.stylize_features(self.encode(content), mean, std, alpha))


# ---------------------------------------------------------------------------------------------- loading
def is_adain_encoder_layout(sd: Mapping[str, torch.Tensor]) -> bool:
    w = sd.get("0.weight")
    return w is not None and tuple(w.shape) == (3, 3, 1, 1) and "2.weight" in sd and sd["2.weight"].ndim == 4


def is_adain_decoder_layout(sd: Mapping[str, torch.Tensor]) -> bool:
    w = sd.get("1.weight")
    return w is not None and w.ndim == 4 and tuple(w.shape[2:]) == (3, 3) and "0.weight" not in sd


def encoder_from_state_dict(sd: Mapping[str, torch.Tensor], name: str = "<state dict>") -> VGG19Features:
    entries = _conv_entries(sd, r"(\d+)\.weight")
    pre = entries.pop(0, None)
    indices = sorted(entries)
    if pre is None or pre[1] is None:
        raise StyleNetworkLoadError(f"{name}: AdaIN vgg_normalised layout needs the 1x1 conv '0.weight'/'0.bias'")
    if indices != ADAIN_INDICES[: len(indices)] or not indices:
        raise StyleNetworkLoadError(
            f"{name}: starts like AdaIN's vgg_normalised (1x1 conv at 0) but its convolutions sit at {indices[:20]}, "
            f"expected {ADAIN_INDICES} (or a prefix) - different network or damaged file")
    weights = [entries[i][0] for i in indices]
    biases = [entries[i][1] for i in indices]
    _check_chain(weights, 3, name)
    net = AdaINEncoder([w.shape[0] for w in weights])
    _fill(net, weights, biases, pre=pre)
    net.layout = "pytorch-AdaIN vgg_normalised (Sequential)"
    return net


def decoder_from_state_dict(sd: Mapping[str, torch.Tensor], name: str = "<state dict>") -> AdaINDecoder:
    entries = _conv_entries(sd, r"(\d+)\.weight")
    indices = sorted(entries)
    if indices != DECODER_INDICES:
        missing = [i for i in DECODER_INDICES if i not in entries]
        extra = [i for i in indices if i not in DECODER_INDICES]
        raise StyleNetworkLoadError(
            f"{name}: looks like an AdaIN decoder but its convolutions do not match pytorch-AdaIN's decoder.pth "
            f"(missing layers {missing}, unexpected {extra}) - truncated file or a different decoder")
    weights = [entries[i][0] for i in indices]
    c = weights[0].shape[1]
    for idx, w in zip(indices, weights):
        if tuple(w.shape[1:]) != (c, 3, 3):
            raise StyleNetworkLoadError(f"{name}: decoder layer {idx} has shape {tuple(w.shape)}, expected [C, {c}, 3, 3]")
        c = w.shape[0]
    if c != 3:
        raise StyleNetworkLoadError(f"{name}: the decoder's last layer outputs {c} channels, expected 3 (RGB)")
    net = AdaINDecoder(weights[0].shape[1], [w.shape[0] for w in weights])
    with torch.no_grad():
        for conv, idx in zip(net.convs, indices):
            conv.weight.copy_(entries[idx][0].float())
            b = entries[idx][1]
            conv.bias.copy_(b.float().reshape(-1)) if b is not None else conv.bias.zero_()
    net.layout = "pytorch-AdaIN decoder (Sequential)"
    return net
