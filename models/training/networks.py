"""Networks of the reference training recipes: generators by their reference names, PatchGAN discriminators and
the reference weight initialisation.

Generators are the pack's own :class:`~models.translator.ResnetGenerator` / :class:`~models.translator.UnetGenerator`
(already in the reference key layout). The discriminators below are written for this pack and reproduce the
reference's module trees, so their state dicts use the reference keys:

* ``NLayerDiscriminator`` (``netD basic`` = 3 layers, ``netD n_layers`` = ``n_layers_D``): one ``model``
  Sequential of 4x4 convolutions with padding 1 -- a stride-2 conv (bias) + LeakyReLU 0.2, then ``n_layers - 1``
  stride-2 convs each followed by a norm and LeakyReLU (channels ``ndf * min(2**n, 8)``), a stride-1 conv + norm +
  LeakyReLU at ``ndf * min(2**n_layers, 8)``, and a stride-1 conv to one channel (bias). With 3 layers the
  receptive field is 70x70 (the "70x70 PatchGAN"). Keys: ``model.0``, ``model.2``/``model.3`` (conv/norm), ...
* ``PixelDiscriminator`` (``netD pixel``): ``net`` Sequential of 1x1 convs: ndf (bias), LeakyReLU, 2ndf, norm,
  LeakyReLU, 1.

As in the reference, convolutions followed by a norm have a bias only with InstanceNorm; BatchNorm layers are
affine with running statistics, InstanceNorm layers have neither.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ..translator.arch_resnet import ResnetGenerator
from ..translator.arch_unet import UnetGenerator
from ..translator.base import Translator
from ..translator.layers import make_norm, number_layers

GENERATORS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")
DISCRIMINATORS = ("basic", "n_layers", "pixel")
NORMS = ("batch", "instance", "none")
INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator: NCHW image(s) -> N x 1 x h x w map of real/fake scores (logits)."""

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch"):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers_D must be >= 1 (got {n_layers})")
        bias = norm == "instance"
        layers = [nn.Conv2d(input_nc, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2 ** n, 8)
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=bias),
                       make_norm(norm, ndf * mult), nn.LeakyReLU(0.2, True)]
        prev, mult = mult, min(2 ** n_layers, 8)
        layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=bias),
                   make_norm(norm, ndf * mult), nn.LeakyReLU(0.2, True),
                   nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1)]
        self.model = nn.Sequential(*layers)
        self.n_layers = n_layers
        number_layers(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN ("pixelGAN"): one real/fake score per pixel."""

    def __init__(self, input_nc: int, ndf: int = 64, norm: str = "batch"):
        super().__init__()
        bias = norm == "instance"
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, 1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias), make_norm(norm, ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias))
        number_layers(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _check_norm(norm: str) -> None:
    if norm not in NORMS:
        raise ValueError(f"norm must be one of {', '.join(NORMS)} (got {norm!r})")


def define_G(input_nc: int, output_nc: int, ngf: int, netG: str, norm: str = "batch", use_dropout: bool = False,
             train_size: Optional[int] = None) -> Translator:
    """Generator by its reference name (``resnet_9blocks``, ``resnet_6blocks``, ``unet_256``, ``unet_128``;
    also ``resnet_<n>blocks`` and ``unet_<2**d>`` for other depths)."""
    _check_norm(norm)
    name = str(netG)
    if name.startswith("resnet_") and name.endswith("blocks"):
        try:
            blocks = int(name[len("resnet_"):-len("blocks")])
        except ValueError:
            blocks = -1
        if blocks >= 0:
            return ResnetGenerator(input_nc, output_nc, ngf=ngf, n_blocks=blocks, norm=norm, use_dropout=use_dropout,
                                   train_size=train_size or 256)
    if name.startswith("unet_"):
        try:
            size = int(name[len("unet_"):])
        except ValueError:
            size = 0
        depth = size.bit_length() - 1
        if size >= 32 and size == 2 ** depth:
            return UnetGenerator(input_nc, output_nc, depth=depth, ngf=ngf, norm=norm, use_dropout=use_dropout,
                                 train_size=train_size or size)
    raise ValueError(f"unknown netG {netG!r}: use one of {', '.join(GENERATORS)} (or resnet_<n>blocks, unet_<2^d>)")


def define_D(input_nc: int, ndf: int, netD: str, n_layers_D: int = 3, norm: str = "batch") -> nn.Module:
    """Discriminator by its reference name: ``basic`` (70x70 PatchGAN), ``n_layers``, ``pixel``."""
    _check_norm(norm)
    if netD == "basic":
        return NLayerDiscriminator(input_nc, ndf, 3, norm)
    if netD == "n_layers":
        return NLayerDiscriminator(input_nc, ndf, int(n_layers_D), norm)
    if netD == "pixel":
        return PixelDiscriminator(input_nc, ndf, norm)
    raise ValueError(f"unknown netD {netD!r}: use one of {', '.join(DISCRIMINATORS)}")


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02,
                 generator: Optional[torch.Generator] = None) -> None:
    """The reference initialisation: every conv / transposed conv / linear weight from ``init_type`` (normal:
    N(0, gain); xavier: Xavier-normal with gain; kaiming: Kaiming-normal fan_in, a=0; orthogonal with gain), its
    bias 0; BatchNorm weights N(1, gain), biases 0. Modules are visited in ``net.modules()`` order (the
    reference's ``net.apply`` visits children first, which only changes which random numbers go where)."""
    if init_type not in INIT_TYPES:
        raise ValueError(f"init_type must be one of {', '.join(INIT_TYPES)} (got {init_type!r})")
    gain = float(init_gain)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                w = m.weight
                if init_type == "normal":
                    nn.init.normal_(w, 0.0, gain, generator=generator)
                elif init_type == "xavier":
                    nn.init.xavier_normal_(w, gain=gain, generator=generator)
                elif init_type == "kaiming":
                    nn.init.kaiming_normal_(w, a=0, mode="fan_in", generator=generator)
                else:
                    nn.init.orthogonal_(w, gain=gain, generator=generator)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, gain, generator=generator)
                nn.init.zeros_(m.bias)


def set_requires_grad(nets, requires_grad: bool) -> None:
    """Switch gradient computation of every parameter of ``nets`` on or off (the reference freezes the
    discriminators while the generators are updated)."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(requires_grad)
