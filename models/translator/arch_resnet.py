"""ResNet generator (CycleGAN, and pix2pix with ``--netG resnet_*blocks``), written for this pack.

The module tree reproduces the state-dict key layout of the reference implementation
(junyanz/pytorch-CycleGAN-and-pix2pix, ``ResnetGenerator``): one ``model`` Sequential holding

    pad(3), conv 7x7 -> ngf, norm, relu,
    2 x [conv 3x3 stride 2 (x2 channels), norm, relu],
    n_blocks x ResnetBlock(4*ngf)            (each: ``conv_block`` = pad, conv, norm, relu, [dropout], pad, conv, norm)
    2 x [conv-transpose 3x3 stride 2 (/2 channels), norm, relu],
    pad(3), conv 7x7 -> output_nc, tanh

so reference checkpoints load with their own keys (``model.1.weight``, ``model.10.conv_block.1.weight``...).
With ``padding_type="zero"`` the pad modules are absent (keys shift: ``conv_block.0``); dropout shifts the
block's second conv from ``conv_block.5`` to ``conv_block.6``. Convolutions followed by a norm carry a bias
when ``use_bias`` (default: the reference rule, ``norm == "instance"``); the last conv always has one.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from .base import Translator, register_architecture
from .layers import Dropout, make_norm, make_pad, number_layers


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, padding_type: str, norm: str, use_dropout: bool, use_bias: bool, affine: bool):
        super().__init__()
        layers = []
        for second in (False, True):
            pad = make_pad(padding_type, 1)
            if pad is not None:
                layers.append(pad)
            layers.append(nn.Conv2d(dim, dim, 3, padding=0 if pad is not None else 1, bias=use_bias))
            layers.append(make_norm(norm, dim, affine))
            if not second:
                layers.append(nn.ReLU(True))
                if use_dropout:
                    layers.append(Dropout(0.5))
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(Translator):
    """ResNet generator mapping NCHW [-1, 1] -> NCHW [-1, 1] (tanh output).

    Args: input_nc, output_nc, ngf, n_blocks (any >= 0; 6 and 9 are the reference's), norm ("batch" |
    "instance" | "none"), use_dropout, padding_type ("reflect" | "replicate" | "zero"), use_bias (None = the
    reference rule), affine (InstanceNorm with learnable scale/shift, as some third-party generators have),
    n_downsampling (2 in the reference), train_size (square training size, default 256 = the reference crop).
    """

    arch = "resnet"

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", use_dropout: bool = False, padding_type: str = "reflect",
                 use_bias: Optional[bool] = None, affine: bool = False, n_downsampling: int = 2,
                 train_size: Optional[int] = 256):
        super().__init__()
        if n_blocks < 0 or n_downsampling < 0:
            raise ValueError("n_blocks and n_downsampling must be >= 0")
        if use_bias is None:
            use_bias = norm == "instance"
        self.input_nc, self.output_nc, self.ngf = int(input_nc), int(output_nc), int(ngf)
        self.n_blocks, self.norm, self.use_dropout = int(n_blocks), norm, bool(use_dropout)
        self.padding_type, self.use_bias, self.affine = padding_type, bool(use_bias), bool(affine)
        self.n_downsampling = int(n_downsampling)
        self.size_multiple = 2 ** self.n_downsampling
        self.train_size = train_size
        # the bottleneck must be >= 2 pixels for the blocks' reflection padding of 1
        self.min_size = self.size_multiple * (2 if padding_type == "reflect" and n_blocks else 1)

        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, padding=0, bias=use_bias),
                 make_norm(norm, ngf, affine), nn.ReLU(True)]
        for i in range(self.n_downsampling):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=use_bias),
                      make_norm(norm, ngf * mult * 2, affine), nn.ReLU(True)]
        mult = 2 ** self.n_downsampling
        model += [ResnetBlock(ngf * mult, padding_type, norm, use_dropout, use_bias, affine) for _ in range(n_blocks)]
        for i in range(self.n_downsampling):
            mult = 2 ** (self.n_downsampling - i)
            model += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                         bias=use_bias),
                      make_norm(norm, ngf * mult // 2, affine), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)
        number_layers(self)

    @property
    def receptive_radius(self) -> int:
        """Pixels of context each output pixel depends on, on each side (the tiling halo for exactness)."""
        s = self.size_multiple
        r = 3 + sum(2 ** i for i in range(self.n_downsampling))  # stem + strided convs
        r += 2 * self.n_blocks * s                                  # two 3x3 convs per block at the bottleneck
        r += sum(2 ** (self.n_downsampling - i) for i in range(self.n_downsampling)) + 3
        return r

    def frame_stages(self):
        """The top-level layers in order, so tiled inference can keep intermediate activations between them."""
        return list(self.model)

    def config(self) -> Dict[str, Any]:
        return {"arch": "resnet", "input_nc": self.input_nc, "output_nc": self.output_nc, "ngf": self.ngf,
                "n_blocks": self.n_blocks, "norm": self.norm, "use_dropout": self.use_dropout,
                "padding_type": self.padding_type, "use_bias": self.use_bias, "affine": self.affine,
                "n_downsampling": self.n_downsampling, "train_size": self.train_size}

    def extra_repr(self) -> str:
        return super().extra_repr() + f", n_blocks={self.n_blocks}, padding={self.padding_type}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


register_architecture("resnet", ResnetGenerator)
