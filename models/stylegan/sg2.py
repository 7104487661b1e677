"""StyleGAN2-ADA generator in plain PyTorch, with the reference's module and parameter names.

Written for this pack from the published architecture (Karras et al., "Analyzing and Improving the Image
Quality of StyleGAN" and "Training Generative Adversarial Networks with Limited Data"). The state-dict keys
equal the reference implementation's (``mapping.fc0.weight``, ``synthesis.b64.conv0.affine.bias``,
``synthesis.b4.const`` ...), so the ``G_ema`` weights of official network pickles load directly, and the
constructor takes the reference's stored init kwargs::

    G = StyleGAN2Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=1024, img_channels=3,
                           mapping_kwargs={"num_layers": 8}, synthesis_kwargs={"channel_base": 32768, ...})

Differences that are deliberate: modules always stay in eval mode, the mapping network never updates
``w_avg``, and blocks that the reference runs in float16 (``num_fp16_res``) run in float32 unless
``synthesis(..., force_fp32=False)`` is asked for on a CUDA device.
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, Mapping, Optional

import numpy as np
import torch
from torch import nn

from .base import StyleGAN
from .ops import activation_gain, bias_act, modulated_conv2d, conv2d_resample, normalize_2nd_moment, setup_filter, upsample2d

__all__ = ["StyleGAN2Generator", "MappingNetwork", "SynthesisNetwork", "infer_sg2_config"]

MAPPING_DEFAULTS = dict(num_layers=8, embed_features=None, layer_features=None, activation="lrelu",
                        lr_multiplier=0.01, w_avg_beta=0.995)
SYNTHESIS_DEFAULTS = dict(channel_base=32768, channel_max=512, num_fp16_res=0, conv_clamp=None, architecture="skip",
                          resample_filter=[1, 3, 3, 1], use_noise=True, activation="lrelu")
# accepted for compatibility with stored kwargs; they only change speed/memory layout in the reference
_IGNORED_KWARGS = {"fp16_channels_last", "channels_last", "fused_modconv_default"}


class FullyConnectedLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: Optional[int], num_layers: int = 8,
                 embed_features: Optional[int] = None, layer_features: Optional[int] = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: Optional[float] = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        if embed_features is None:
            embed_features = w_dim
        if c_dim == 0:
            embed_features = 0
        if layer_features is None:
            layer_features = w_dim
        features = [z_dim + embed_features] + [layer_features] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], activation=activation,
                                                         lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: Optional[torch.Tensor], c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0,
                truncation_cutoff: Optional[int] = None, **_ignored) -> torch.Tensor:
        x = None
        device = self.fc0.weight.device
        if self.z_dim > 0:
            if z is None or z.ndim != 2 or z.shape[1] != self.z_dim:
                raise ValueError(f"z must have shape [N, {self.z_dim}], got {None if z is None else tuple(z.shape)}")
            x = normalize_2nd_moment(z.to(device=device, dtype=torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim:
                raise ValueError(f"this generator is conditional: c must have shape [N, {self.c_dim}] "
                                 f"(one-hot class), got {None if c is None else tuple(c.shape)}")
            y = normalize_2nd_moment(self.embed(c.to(device=device, dtype=torch.float32)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            if not hasattr(self, "w_avg"):
                raise ValueError("truncation needs w_avg, which this mapping network does not have")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                head = self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi)
                x = torch.cat([head, x[:, truncation_cutoff:]], dim=1)
        return x


def random_noise(shape, generator, device) -> torch.Tensor:
    """Gaussian noise [N, ...]; ``generator`` is None, one torch.Generator for the batch, or a sequence of N
    generators (one per sample: the noise of a sample then does not depend on what else is in the batch)."""
    if generator is None or isinstance(generator, torch.Generator):
        gen_device = generator.device if generator is not None else device
        return torch.randn(shape, generator=generator, device=gen_device).to(device)
    gens = list(generator)
    if len(gens) != shape[0]:
        raise ValueError(f"{len(gens)} noise generators for a batch of {shape[0]}")
    return torch.cat([torch.randn([1, *shape[1:]], generator=g, device=g.device) for g in gens]).to(device)


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, kernel_size: int = 3,
                 up: int = 1, use_noise: bool = True, activation: str = "lrelu", resample_filter=(1, 3, 3, 1),
                 conv_clamp: Optional[float] = None):
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.act_gain = activation_gain(activation)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x, w, noise_mode="const", generator=None, fused=True, gain=1.0):
        styles = self.affine(w)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = random_noise([x.shape[0], 1, self.resolution, self.resolution], generator, x.device)
            noise = noise * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=(self.up == 1), fused=fused)
        act_gain = self.act_gain * gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=act_gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, kernel_size: int = 1,
                 conv_clamp: Optional[float] = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)

    def forward(self, x, w, fused=True):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class Conv2dLayer(nn.Module):
    """Plain equalised-lr convolution (used by the 'resnet' architecture's 1x1 upsampling skip)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", up: int = 1, resample_filter=(1, 3, 3, 1), conv_clamp=None):
        super().__init__()
        self.activation, self.up, self.conv_clamp = activation, up, conv_clamp
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.act_gain = activation_gain(activation)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x, gain=1.0):
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w.to(x.dtype), f=self.resample_filter, up=self.up, padding=self.padding,
                            flip_weight=(self.up == 1))
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        b = self.bias.to(x.dtype) if self.bias is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", resample_filter=(1, 3, 3, 1), conv_clamp=None,
                 use_fp16: bool = False, **layer_kwargs):
        super().__init__()
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"unknown StyleGAN2 architecture {architecture!r} (orig, skip or resnet)")
        self.in_channels, self.resolution, self.is_last = in_channels, resolution, is_last
        self.architecture, self.use_fp16 = architecture, use_fp16
        self.register_buffer("resample_filter", setup_filter(resample_filter))
        self.num_conv = 0
        self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2,
                                        resample_filter=resample_filter, conv_clamp=conv_clamp, **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                    **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1
        if in_channels != 0 and architecture == "resnet":
            self.skip = Conv2dLayer(in_channels, out_channels, kernel_size=1, bias=False, up=2,
                                    resample_filter=resample_filter)

    def forward(self, x, img, ws, noise_mode="const", generator=None, force_fp32=True):
        w_iter = iter(ws.unbind(dim=1))
        dtype = torch.float16 if (self.use_fp16 and not force_fp32 and ws.device.type == "cuda") else torch.float32
        # the reference fuses the modulation into a grouped convolution in eval mode for float32 (or batch 1)
        fused = dtype == torch.float32 or ws.shape[0] == 1
        kw = dict(noise_mode=noise_mode, generator=generator, fused=fused)
        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
            x = self.conv1(x, next(w_iter), **kw)
        elif self.architecture == "resnet":
            x = x.to(dtype)
            y = self.skip(x, gain=np.sqrt(0.5))
            x = self.conv0(x, next(w_iter), **kw)
            x = self.conv1(x, next(w_iter), gain=np.sqrt(0.5), **kw)
            x = y + x
        else:
            x = x.to(dtype)
            x = self.conv0(x, next(w_iter), **kw)
            x = self.conv1(x, next(w_iter), **kw)
        if img is not None:
            img = upsample2d(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w_iter), fused=fused).to(torch.float32)
            img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs):
        super().__init__()
        log2 = int(np.log2(img_resolution)) if img_resolution >= 4 else 0
        if img_resolution < 4 or 2 ** log2 != img_resolution:
            raise ValueError(f"img_resolution must be a power of two >= 4, got {img_resolution}")
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            in_channels = channels[res // 2] if res > 4 else 0
            is_last = res == img_resolution
            block = SynthesisBlock(in_channels, channels[res], w_dim, res, img_channels, is_last,
                                   use_fp16=res >= fp16_resolution, **block_kwargs)
            self.num_ws += block.num_conv
            if is_last:
                self.num_ws += block.num_torgb
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", generator: Optional[torch.Generator] = None,
                force_fp32: bool = True, **_ignored) -> torch.Tensor:
        if noise_mode not in ("const", "random", "none"):
            raise ValueError(f"noise_mode must be 'const', 'random' or 'none', got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}] for this generator, "
                             f"got {tuple(ws.shape)}")
        ws = ws.to(device=self.b4.const.device, dtype=torch.float32)
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            w_idx += block.num_conv
            x, img = block(x, img, block_ws, noise_mode=noise_mode, generator=generator, force_fp32=force_fp32)
        return img


def _plain(obj):
    """Deep copy of dict-like / list-like kwargs as plain JSON types."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


class StyleGAN2Generator(StyleGAN):
    """StyleGAN2-ADA generator; constructor = the reference's stored init kwargs.

    Also accepts the flat form of the stylegan3 repository's StyleGAN2 (synthesis kwargs given at top level).
    """

    family = "stylegan2"

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: Optional[Mapping[str, Any]] = None, synthesis_kwargs: Optional[Mapping[str, Any]] = None,
                 **flat_synthesis_kwargs):
        super().__init__()
        mapping_kwargs = dict(_plain(mapping_kwargs or {}))
        synthesis_kwargs = dict(_plain(synthesis_kwargs or {}))
        synthesis_kwargs.update(_plain(flat_synthesis_kwargs))
        for key in list(synthesis_kwargs):
            if key in _IGNORED_KWARGS:
                synthesis_kwargs.pop(key)
        for key in list(mapping_kwargs):
            if key in _IGNORED_KWARGS:
                mapping_kwargs.pop(key)
        unknown = set(synthesis_kwargs) - set(SYNTHESIS_DEFAULTS)
        if unknown:
            raise TypeError(f"unsupported StyleGAN2 synthesis options: {sorted(unknown)}")
        unknown = set(mapping_kwargs) - set(MAPPING_DEFAULTS) - {"num_ws"}
        if unknown:
            raise TypeError(f"unsupported StyleGAN2 mapping options: {sorted(unknown)}")
        mapping_kwargs.pop("num_ws", None)
        self.mapping_kwargs = {**MAPPING_DEFAULTS, **mapping_kwargs}
        self.synthesis_kwargs = {**SYNTHESIS_DEFAULTS, **synthesis_kwargs}
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.synthesis = SynthesisNetwork(w_dim=self.w_dim, img_resolution=self.img_resolution,
                                          img_channels=self.img_channels, **self.synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                                      **self.mapping_kwargs)
        if not hasattr(self.mapping, "w_avg"):
            raise ValueError("mapping_kwargs w_avg_beta=None (no w_avg) is not supported")
        self.eval()

    def train(self, mode: bool = True):
        """Always eval: the reference's training mode would update w_avg and change convolution fusing."""
        return super().train(False)

    def config(self) -> Dict[str, Any]:
        return {"family": self.family, "z_dim": self.z_dim, "c_dim": self.c_dim, "w_dim": self.w_dim,
                "img_resolution": self.img_resolution, "img_channels": self.img_channels,
                "mapping_kwargs": dict(self.mapping_kwargs), "synthesis_kwargs": dict(self.synthesis_kwargs)}


# ---------------------------------------------------------------------------------------- config from a state dict

_BLOCK_KEY = re.compile(r"^synthesis\.b(\d+)\.")
_FC_KEY = re.compile(r"^mapping\.fc(\d+)\.weight$")


def infer_sg2_config(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """Reference init kwargs of a StyleGAN2-ADA generator from its state dict (keys and shapes).

    What the shapes cannot tell takes the reference defaults: mapping ``lr_multiplier=0.01``,
    ``activation='lrelu'``, ``conv_clamp=None``, ``num_fp16_res=0`` (only a speed setting here),
    ``resample_filter=[1, 3, 3, 1]``.
    """
    sd = state_dict
    fcs = sorted(int(m.group(1)) for k in sd for m in [_FC_KEY.match(k)] if m)
    if not fcs or fcs != list(range(len(fcs))):
        raise ValueError("not a StyleGAN2 state dict: mapping.fc0.weight ... missing")
    num_layers = len(fcs)
    fc0 = sd["mapping.fc0.weight"]
    last = sd[f"mapping.fc{num_layers - 1}.weight"]
    w_dim = int(last.shape[0])
    layer_features = int(fc0.shape[0]) if num_layers > 1 else None
    c_dim, embed_features = 0, 0
    if "mapping.embed.weight" in sd:
        embed_features, c_dim = (int(s) for s in sd["mapping.embed.weight"].shape)
    z_dim = int(fc0.shape[1]) - embed_features
    resolutions = sorted({int(m.group(1)) for k in sd for m in [_BLOCK_KEY.match(k)] if m})
    if not resolutions or resolutions[0] != 4:
        raise ValueError("not a StyleGAN2 state dict: synthesis.b4.* missing")
    img_resolution = resolutions[-1]
    expected = [2 ** i for i in range(2, int(np.log2(img_resolution)) + 1)]
    if resolutions != expected:
        raise ValueError(f"StyleGAN2 synthesis blocks {resolutions} are not the sequence {expected}")
    channels = {res: int(sd[f"synthesis.b{res}.conv1.weight"].shape[0]) for res in resolutions}
    img_channels = int(sd[f"synthesis.b{img_resolution}.torgb.weight"].shape[0])
    has_torgb = [f"synthesis.b{res}.torgb.weight" in sd for res in resolutions]
    if any(f"synthesis.b{res}.skip.weight" in sd for res in resolutions):
        architecture = "resnet"
    elif all(has_torgb):
        architecture = "skip"
    else:
        architecture = "orig"
    channel_max = max(channels.values())
    below = [res for res in resolutions if channels[res] < channel_max]
    channel_base = channels[below[0]] * below[0] if below else channel_max * img_resolution
    if any(min(channel_base // res, channel_max) != channels[res] for res in resolutions):
        raise ValueError(f"StyleGAN2 channel counts {channels} do not follow min(channel_base // res, channel_max)")
    use_noise = f"synthesis.b4.conv1.noise_strength" in sd
    mapping_kwargs: Dict[str, Any] = {"num_layers": num_layers}
    if layer_features is not None and layer_features != w_dim:
        mapping_kwargs["layer_features"] = layer_features
    if c_dim and embed_features != w_dim:
        mapping_kwargs["embed_features"] = embed_features
    synthesis_kwargs: Dict[str, Any] = {"channel_base": channel_base, "channel_max": channel_max,
                                        "architecture": architecture}
    if not use_noise:
        synthesis_kwargs["use_noise"] = False
    return {"z_dim": z_dim, "c_dim": c_dim, "w_dim": w_dim, "img_resolution": img_resolution,
            "img_channels": img_channels, "mapping_kwargs": mapping_kwargs, "synthesis_kwargs": synthesis_kwargs}
