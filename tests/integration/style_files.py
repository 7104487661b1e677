"""Tiny style-transfer weight files in the PUBLIC layouts, built here from the documented key lists.

Nothing is downloaded: every file is made from seeded random tensors (He-initialised so that activations
neither vanish nor explode through the random layers, with the output convolutions scaled so the images vary
around mid-grey). Channel widths are reduced for CPU speed; the KEY NAMES, index positions and the extra keys
of the published files are those of the public releases:

* torchvision ``vgg19-dcbb9e9d.pth``: ``features.{0,2,5,7,10,12,14,16,19,21,23,25,28,30,32,34}.weight/bias``
  (+ ``classifier.{0,3,6}`` which the loader ignores);
* caffe conversions: jcjohnson's ``vgg19-d01eb7cb.pth`` (same ``features.N`` keys plus ``classifier.1/.4/.6``)
  and the ``conv1_1.weight`` ... ``conv5_4.weight`` naming;
* pytorch-AdaIN ``vgg_normalised.pth`` (``nn.Sequential``: ``0`` = 1x1 conv 3->3, 3x3 convs at
  ``2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51``) and ``decoder.pth`` (convs at
  ``1, 5, 8, 11, 14, 18, 21, 25, 28``, the last one 64->3);
* pytorch/examples fast_neural_style ``TransformerNet`` (``conv1.conv2d.*``, ``in1.weight/bias``, ...,
  ``res1..res5.{conv1,in1,conv2,in2}``, ``deconv1..3``) including the legacy ``in*.running_mean/var`` keys
  the published candy/mosaic/udnie/rain_princess files carry.

Used by the integration tests and by the workflow pixel checks' ``prepare`` (which installs these files under
the standard names into the test server's ``models_root/style_transfer``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Sequence

import torch

VGG_INDICES = [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
VGG_NAMES = [f"conv{b}_{i}" for b, n in enumerate((2, 2, 4, 4, 4), 1) for i in range(1, n + 1)]
ADAIN_INDICES = [2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51]
DECODER_INDICES = [1, 5, 8, 11, 14, 18, 21, 25, 28]
SMALL_VGG = [8, 8, 16, 16, 24, 24, 24, 24, 32, 32, 32, 32, 32, 32, 32, 32]
SMALL_DECODER = [16, 16, 16, 16, 16, 16, 8, 8, 3]
FAST_WIDTHS = (8, 16, 16)


def _conv(g: torch.Generator, c_out: int, c_in: int, k: int, gain: float = 1.0) -> torch.Tensor:
    return torch.randn(c_out, c_in, k, k, generator=g) * gain * (2.0 / (c_in * k * k)) ** 0.5


def vgg19_torchvision(seed: int = 0, widths: Sequence[int] = SMALL_VGG, classifier: bool = True) -> Dict[str, torch.Tensor]:
    """``features.N`` layout of torchvision's ``vgg19`` (reduced widths), with a tiny classifier head."""
    g = torch.Generator().manual_seed(seed)
    sd, c_in = {}, 3
    for idx, c_out in zip(VGG_INDICES, widths):
        sd[f"features.{idx}.weight"] = _conv(g, c_out, c_in, 3)
        sd[f"features.{idx}.bias"] = torch.zeros(c_out)
        c_in = c_out
    if classifier:  # shapes of a head only; the loader ignores it as it ignores the real 4096-wide one
        for i in (0, 3, 6):
            sd[f"classifier.{i}.weight"] = torch.randn(4, 4, generator=g)
            sd[f"classifier.{i}.bias"] = torch.zeros(4)
    return sd


def vgg19_caffe_jcjohnson(seed: int = 0) -> Dict[str, torch.Tensor]:
    """jcjohnson's caffe conversion: ``features.N`` plus ``classifier.1/.4/.6`` (caffe input convention)."""
    sd = vgg19_torchvision(seed, classifier=False)
    g = torch.Generator().manual_seed(seed + 1)
    for i in (1, 4, 6):
        sd[f"classifier.{i}.weight"] = torch.randn(4, 4, generator=g)
        sd[f"classifier.{i}.bias"] = torch.zeros(4)
    return sd


def vgg19_named(seed: int = 0) -> Dict[str, torch.Tensor]:
    """``conv1_1.weight`` ... ``conv5_4.weight`` naming (Gatys' ``vgg_conv.pth``-style caffe conversions)."""
    tv = vgg19_torchvision(seed, classifier=False)
    return {f"{n}.{p}": tv[f"features.{i}.{p}"] for n, i in zip(VGG_NAMES, VGG_INDICES) for p in ("weight", "bias")}


def adain_vgg_normalised(seed: int = 1, widths: Sequence[int] = SMALL_VGG) -> Dict[str, torch.Tensor]:
    """pytorch-AdaIN ``vgg_normalised.pth``: the whole Sequential to relu5_4 (reduced widths)."""
    g = torch.Generator().manual_seed(seed)
    # the 1x1 preprocessing conv: identity-ish colour mixing, like the caffe mean/scale it replaces
    sd = {"0.weight": (torch.eye(3) + 0.1 * torch.randn(3, 3, generator=g)).view(3, 3, 1, 1),
          "0.bias": torch.zeros(3)}
    c_in = 3
    for idx, c_out in zip(ADAIN_INDICES, widths):
        sd[f"{idx}.weight"] = _conv(g, c_out, c_in, 3)
        sd[f"{idx}.bias"] = torch.zeros(c_out)
        c_in = c_out
    return sd


def adain_decoder(seed: int = 2, in_channels: int = SMALL_VGG[8], widths: Sequence[int] = SMALL_DECODER,
                  out_std: float = 1.0, out_mean: float = 0.5) -> Dict[str, torch.Tensor]:
    """pytorch-AdaIN ``decoder.pth`` layout (reduced widths; ``in_channels`` = the encoder's relu4_1 width)."""
    g = torch.Generator().manual_seed(seed)
    sd, c_in = {}, in_channels
    for n, (idx, c_out) in enumerate(zip(DECODER_INDICES, widths)):
        last = n == len(widths) - 1
        w = _conv(g, c_out, c_in, 3)
        if last:  # output varies around out_mean by about out_std
            w = w * out_std / (2.0 ** 0.5)
        sd[f"{idx}.weight"] = w
        sd[f"{idx}.bias"] = torch.full((c_out,), out_mean) if last else torch.zeros(c_out)
        c_in = c_out
    return sd


def transformer_net(seed: int = 3, widths: Sequence[int] = FAST_WIDTHS, n_residual: int = 5,
                    legacy_running_stats: bool = True) -> Dict[str, torch.Tensor]:
    """pytorch/examples fast_neural_style ``TransformerNet`` layout (reduced widths, 5 residual blocks)."""
    g = torch.Generator().manual_seed(seed)
    c1, c2, c3 = widths
    sd: Dict[str, torch.Tensor] = {}

    def conv(name, c_out, c_in, k, gain=1.0):
        sd[f"{name}.conv2d.weight"] = _conv(g, c_out, c_in, k, gain)
        sd[f"{name}.conv2d.bias"] = torch.zeros(c_out)

    def norm(name, c):
        sd[f"{name}.weight"] = 1.0 + 0.1 * torch.randn(c, generator=g)
        sd[f"{name}.bias"] = 0.1 * torch.randn(c, generator=g)
        if legacy_running_stats:
            sd[f"{name}.running_mean"] = torch.zeros(c)
            sd[f"{name}.running_var"] = torch.ones(c)

    conv("conv1", c1, 3, 9), norm("in1", c1)
    conv("conv2", c2, c1, 3), norm("in2", c2)
    conv("conv3", c3, c2, 3), norm("in3", c3)
    for i in range(1, n_residual + 1):
        conv(f"res{i}.conv1", c3, c3, 3), norm(f"res{i}.in1", c3)
        conv(f"res{i}.conv2", c3, c3, 3, gain=0.5), norm(f"res{i}.in2", c3)
    conv("deconv1", c2, c3, 3), norm("in4", c2)
    conv("deconv2", c1, c2, 3), norm("in5", c1)
    # output in [0, 255] around 127 with a spread of ~50 (the network works on 0-255 pixel values)
    conv("deconv3", 3, c1, 9, gain=50.0 / (2.0 ** 0.5))
    sd["deconv3.conv2d.bias"] = torch.full((3,), 127.0)
    return sd


def pix2pix_resnet_generator(seed: int = 4) -> Dict[str, torch.Tensor]:
    """A file that is NOT a style network: the start of a Pix2Pix/CycleGAN ResNet generator's keys."""
    g = torch.Generator().manual_seed(seed)
    return {"model.1.weight": torch.randn(8, 3, 7, 7, generator=g), "model.1.bias": torch.zeros(8),
            "model.4.weight": torch.randn(16, 8, 3, 3, generator=g), "model.4.bias": torch.zeros(16)}


def vgg16_torchvision(seed: int = 5) -> Dict[str, torch.Tensor]:
    """A VGG-16 ``features.N`` layout (13 convs) - VGG-like but not the VGG-19 style transfer needs."""
    g = torch.Generator().manual_seed(seed)
    sd, c_in = {}, 3
    for idx in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28):
        sd[f"features.{idx}.weight"] = _conv(g, 8, c_in, 3)
        sd[f"features.{idx}.bias"] = torch.zeros(8)
        c_in = 8
    return sd


# the standard file names of the public releases -> builders of tiny stand-ins
STANDARD = {
    "vgg19-dcbb9e9d.pth": vgg19_torchvision,
    "vgg19-d01eb7cb.pth": vgg19_caffe_jcjohnson,
    "vgg_normalised.pth": adain_vgg_normalised,
    "decoder.pth": adain_decoder,
    "mosaic.pth": transformer_net,
    "candy.pth": lambda: transformer_net(seed=7),
}


def write(folder: Path, name: str, sd: Dict[str, torch.Tensor] | None = None) -> Path:
    """Save ``sd`` (default: the stand-in for a standard name) as ``folder/name`` with ``torch.save``, like the
    public releases (a plain state dict); ``.safetensors`` names are written as safetensors."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if sd is None:
        sd = STANDARD[name]()
    path = folder / name
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in sd.items()}, str(tmp))
    else:
        torch.save(sd, tmp)
    tmp.replace(path)
    return path


def install(models_root: Path, *names: str) -> Dict[str, Path]:
    """Write the stand-ins of the given standard names into ``models_root/style_transfer`` (idempotent)."""
    folder = Path(models_root) / "style_transfer"
    out = {}
    for name in names:
        path = folder / name
        out[name] = path if path.exists() else write(folder, name)
    return out
