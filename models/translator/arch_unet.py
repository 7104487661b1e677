"""U-Net generator (pix2pix), written for this pack.

Reproduces the reference's (junyanz/pytorch-CycleGAN-and-pix2pix ``UnetGenerator``) nested key layout: the
generator's ``model`` is the outermost skip block, and every block keeps its layers in a Sequential ``model``:

    outermost:  [down conv, submodule, relu, up conv-transpose (bias), tanh]        -> model.model.0 / .1 / .3
    middle:     [lrelu, down conv, norm, submodule, relu, up conv-transpose, norm (, dropout)]
                                                                                    -> .model.1 / .2 / .3 / .5 / .6
    innermost:  [lrelu, down conv, relu, up conv-transpose, norm]                   -> .model.1 / .3 / .4

Every down/up conv is 4x4 with stride 2, so ``depth`` downsamplings need sides that are multiples of
``2**depth`` (unet_128: depth 7, unet_256: depth 8). Channels: ngf, 2ngf, 4ngf, then 8ngf for the rest.
Middle blocks at 8ngf get dropout when ``use_dropout``; dropout adds no keys, so it cannot be read from a
checkpoint (pix2pix's default is on). Convs before a norm have biases when ``use_bias`` (reference rule:
``norm == "instance"``); the outermost up-conv always has one.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn

from .base import Translator, register_architecture
from .layers import Dropout, make_norm, number_layers


class UnetSkipBlock(nn.Module):
    def __init__(self, outer_nc: int, inner_nc: int, input_nc: Optional[int] = None,
                 submodule: Optional[nn.Module] = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "batch", use_dropout: bool = False, use_bias: bool = False, affine: bool = False):
        super().__init__()
        self.outermost = outermost
        input_nc = outer_nc if input_nc is None else input_nc
        down = nn.Conv2d(input_nc, inner_nc, 4, stride=2, padding=1, bias=use_bias)
        if outermost:
            layers = [down, submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1), nn.Tanh()]
        elif innermost:
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner_nc, outer_nc, 4, stride=2, padding=1, bias=use_bias),
                      make_norm(norm, outer_nc, affine)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, make_norm(norm, inner_nc, affine), submodule, nn.ReLU(True),
                      nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, stride=2, padding=1, bias=use_bias),
                      make_norm(norm, outer_nc, affine)]
            if use_dropout:
                layers.append(Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(Translator):
    """U-Net generator mapping NCHW [-1, 1] -> NCHW [-1, 1].

    Args: input_nc, output_nc, depth (number of downsamplings, >= 5), ngf, norm ("batch" | "instance" |
    "none"), use_dropout, use_bias (None = reference rule), affine (InstanceNorm with parameters),
    train_size (default ``2**depth``: 128 for unet_128, 256 for unet_256).
    """

    arch = "unet"

    def __init__(self, input_nc: int = 3, output_nc: int = 3, depth: int = 8, ngf: int = 64, norm: str = "batch",
                 use_dropout: bool = True, use_bias: Optional[bool] = None, affine: bool = False,
                 train_size: Optional[int] = None):
        super().__init__()
        if depth < 5:
            raise ValueError(f"U-Net depth must be >= 5 (got {depth})")
        if use_bias is None:
            use_bias = norm == "instance"
        self.input_nc, self.output_nc, self.ngf, self.depth = int(input_nc), int(output_nc), int(ngf), int(depth)
        self.norm, self.use_dropout, self.use_bias, self.affine = norm, bool(use_dropout), bool(use_bias), bool(affine)
        self.size_multiple = 2 ** self.depth
        self.min_size = self.size_multiple
        self.train_size = int(train_size) if train_size else 2 ** self.depth
        kw = dict(norm=norm, use_bias=use_bias, affine=affine)
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, **kw)
        for _ in range(depth - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout, **kw)
        block = UnetSkipBlock(ngf * 4, ngf * 8, submodule=block, **kw)
        block = UnetSkipBlock(ngf * 2, ngf * 4, submodule=block, **kw)
        block = UnetSkipBlock(ngf, ngf * 2, submodule=block, **kw)
        self.model = UnetSkipBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True, **kw)
        number_layers(self)

    @property
    def receptive_radius(self) -> int:
        """Theoretical context radius: the innermost level sees the whole ``2**depth`` window."""
        return 3 * 2 ** self.depth

    def config(self) -> Dict[str, Any]:
        return {"arch": "unet", "input_nc": self.input_nc, "output_nc": self.output_nc, "depth": self.depth,
                "ngf": self.ngf, "norm": self.norm, "use_dropout": self.use_dropout, "use_bias": self.use_bias,
                "affine": self.affine, "train_size": self.train_size}

    def extra_repr(self) -> str:
        return super().extra_repr() + f", depth={self.depth}, dropout={self.use_dropout}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


register_architecture("unet", UnetGenerator)
