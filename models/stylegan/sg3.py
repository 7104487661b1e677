"""StyleGAN3 ("Alias-Free GAN") generator, -T and -R configurations, written for this pack in plain PyTorch.

Built from the published architecture (Karras et al. 2021) so that the parameter and buffer names, shapes and
the computed function are those of the official networks: a reference ``G_ema.state_dict()`` loads with
``strict=True`` and gives the same images to float32 round-off.

    G = StyleGAN3Generator(z_dim=512, w_dim=512, c_dim=0, img_resolution=1024, img_channels=3,
                           mapping_kwargs={"num_layers": 2}, channel_base=65536, channel_max=1024,
                           conv_kernel=1, use_radial_filters=True, magnitude_ema_beta=0.999)   # an -R config
    ws = G.mapping(z, None, truncation_psi=0.7)         # [N, 16, w_dim]
    img = G.synthesis(ws, noise_mode="const")           # [N, 3, R, R]

``StyleGAN3Generator(**kwargs)`` takes the reference's flat constructor arguments (what an official network
pickle stores) and :func:`infer_sg3_config` recovers them from a bare state dict.

The modules stay in eval mode and never update their buffers (``w_avg``, ``magnitude_ema``): the reference
only does that during training. The filtered leaky ReLU has two exact implementations: ``"fast"`` (default;
polyphase, computes only kept samples) and ``"reference"`` (the definition); see :mod:`._sg3_ops`
(``G.set_impl("reference")`` switches). One deliberate difference: the style pre-normalisation before weight
demodulation is per sample (the reference divides by the RMS over the whole batch); demodulation cancels that
factor, so results equal the reference to round-off, and an image no longer depends on its batch mates.
Everything runs in float32 (the reference's fp16 layers only run on CUDA).
"""
from __future__ import annotations

import math
import re
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import torch
from torch import nn

from ._sg3_ops import design_lowpass_filter, filtered_lrelu_fast, filtered_lrelu_reference
from .base import StyleGAN

__all__ = ["StyleGAN3Generator", "infer_sg3_config", "SG3_FAMILIES"]

SG3_FAMILIES = ("stylegan3-t", "stylegan3-r")

# reference defaults of the synthesis network / layers and the mapping network
_SYNTHESIS_DEFAULTS: Dict[str, Any] = dict(
    channel_base=32768, channel_max=512, num_layers=14, num_critical=2, first_cutoff=2, first_stopband=2 ** 2.1,
    last_stopband_rel=2 ** 0.3, margin_size=10, output_scale=0.25, num_fp16_res=4,
)
_LAYER_DEFAULTS: Dict[str, Any] = dict(
    conv_kernel=3, filter_size=6, lrelu_upsampling=2, use_radial_filters=False, conv_clamp=256,
    magnitude_ema_beta=0.999,
)
_MAPPING_DEFAULTS: Dict[str, Any] = dict(num_layers=2, lr_multiplier=0.01, w_avg_beta=0.998, freeze_layers=0,
                                          freeze_embed=False)

SQRT2 = math.sqrt(2.0)


def _lrelu(x: torch.Tensor, slope: float = 0.2, gain: float = SQRT2) -> torch.Tensor:
    return torch.where(x >= 0, x, x * slope) * gain


# -------------------------------------------------------------------------------------------- mapping


class _Dense(nn.Module):
    """Fully connected layer with equalised learning rate (runtime weight gain ``lr / sqrt(fan_in)``)."""

    def __init__(self, in_features: int, out_features: int, *, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: Any = 0.0):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.activation = activation
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        init = np.broadcast_to(np.asarray(bias_init, dtype=np.float32), [out_features]) / lr_multiplier
        self.bias = nn.Parameter(torch.from_numpy(np.array(init, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype)
        if self.bias_gain != 1:
            b = b * self.bias_gain
        if self.activation == "linear":
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return _lrelu(x.matmul(w.t()) + b.unsqueeze(0))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, activation={self.activation}"


def _normalize_2nd_moment(x: torch.Tensor) -> torch.Tensor:
    return x * (x.square().mean(1, keepdim=True) + 1e-8).rsqrt()


class SG3Mapping(nn.Module):
    """z (+ class embedding) -> w, broadcast to ``num_ws`` and truncated towards ``w_avg``."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 2,
                 lr_multiplier: float = 0.01, w_avg_beta: float = 0.998, freeze_layers: int = 0,
                 freeze_embed: bool = False):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers = num_layers
        self.w_avg_beta = w_avg_beta
        self.embed = _Dense(c_dim, w_dim) if c_dim > 0 else None
        features = [z_dim + (w_dim if c_dim > 0 else 0)] + [w_dim] * num_layers
        for idx in range(num_layers):
            setattr(self, f"fc{idx}", _Dense(features[idx], features[idx + 1], activation="lrelu",
                                             lr_multiplier=lr_multiplier))
        self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1,
                truncation_cutoff: Optional[int] = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"z must have shape [N, {self.z_dim}], got {list(z.shape)}")
        x = _normalize_2nd_moment(z.to(torch.float32))
        if self.c_dim > 0:
            if c is None or c.ndim != 2 or c.shape[1] != self.c_dim or c.shape[0] != z.shape[0]:
                got = None if c is None else list(c.shape)
                raise ValueError(f"this generator is conditional: c must have shape [{z.shape[0]}, {self.c_dim}], "
                                 f"got {got}")
            y = _normalize_2nd_moment(self.embed(c.to(torch.float32)))
            x = torch.cat([x, y], dim=1)
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            cutoff = self.num_ws if truncation_cutoff is None else int(truncation_cutoff)
            w_avg = self.w_avg.to(x.dtype)
            x[:, :cutoff] = w_avg.lerp(x[:, :cutoff], truncation_psi)
        return x

    def extra_repr(self) -> str:
        return f"z_dim={self.z_dim}, c_dim={self.c_dim}, w_dim={self.w_dim}, num_ws={self.num_ws}"


# ------------------------------------------------------------------------------------------ synthesis


class SG3Input(nn.Module):
    """Fourier-feature input: sinusoids at fixed frequencies/phases, rotated and translated by an affine of w."""

    def __init__(self, w_dim: int, channels: int, size: int, sampling_rate: float, bandwidth: float):
        super().__init__()
        self.w_dim = w_dim
        self.channels = channels
        self.size = [int(size), int(size)]  # width, height
        self.sampling_rate = float(sampling_rate)
        self.bandwidth = float(bandwidth)
        # frequencies drawn from a disc of radius `bandwidth` (Gaussian direction, radius ~ re-weighted)
        freqs = torch.randn([channels, 2])
        radii = freqs.square().sum(dim=1, keepdim=True).sqrt()
        freqs = freqs / (radii * radii.square().exp().pow(0.25)) * bandwidth
        phases = torch.rand([channels]) - 0.5
        self.weight = nn.Parameter(torch.randn([channels, channels]))
        self.affine = _Dense(w_dim, 4, bias_init=[1, 0, 0, 0])
        nn.init.zeros_(self.affine.weight)
        self.register_buffer("transform", torch.eye(3, 3))  # user inverse transform of the image
        self.register_buffer("freqs", freqs)
        self.register_buffer("phases", phases)

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        n = w.shape[0]
        t = self.affine(w)  # (r_c, r_s, t_x, t_y)
        t = t / t[:, :2].norm(dim=1, keepdim=True)
        rot = torch.eye(3, device=w.device, dtype=w.dtype).repeat(n, 1, 1)
        rot[:, 0, 0] = t[:, 0]
        rot[:, 0, 1] = -t[:, 1]
        rot[:, 1, 0] = t[:, 1]
        rot[:, 1, 1] = t[:, 0]
        tra = torch.eye(3, device=w.device, dtype=w.dtype).repeat(n, 1, 1)
        tra[:, 0, 2] = -t[:, 2]
        tra[:, 1, 2] = -t[:, 3]
        transforms = rot @ tra @ self.transform.to(w.dtype).unsqueeze(0)
        freqs = self.freqs.to(w.dtype).unsqueeze(0)  # [1, C, 2]
        phases = self.phases.to(w.dtype).unsqueeze(0) + (freqs @ transforms[:, :2, 2:]).squeeze(2)  # [N, C]
        freqs = freqs @ transforms[:, :2, :2]  # [N, C, 2]
        amplitudes = (1 - (freqs.norm(dim=2) - self.bandwidth)
                      / (self.sampling_rate / 2 - self.bandwidth)).clamp(0, 1)  # damp out-of-band
        # sample positions (pixel centres) in units of the sampling rate
        sw, sh = self.size
        theta = torch.zeros(1, 2, 3, device=w.device, dtype=w.dtype)
        theta[0, 0, 0] = 0.5 * sw / self.sampling_rate
        theta[0, 1, 1] = 0.5 * sh / self.sampling_rate
        grid = nn.functional.affine_grid(theta, [1, 1, sh, sw], align_corners=False)  # [1, H, W, 2]
        x = (grid.unsqueeze(3) @ freqs.permute(0, 2, 1).unsqueeze(1).unsqueeze(2)).squeeze(3)  # [N, H, W, C]
        x = torch.sin((x + phases.unsqueeze(1).unsqueeze(2)) * (2 * math.pi))
        x = x * amplitudes.unsqueeze(1).unsqueeze(2)
        x = x @ (self.weight.to(w.dtype) / math.sqrt(self.channels)).t()
        return x.permute(0, 3, 1, 2)

    def extra_repr(self) -> str:
        return (f"w_dim={self.w_dim}, channels={self.channels}, size={self.size}, "
                f"sampling_rate={self.sampling_rate:g}, bandwidth={self.bandwidth:g}")


class SG3Layer(nn.Module):
    """Modulated convolution followed by the filtered (alias-suppressed) leaky ReLU; also the ToRGB layer."""

    def __init__(self, w_dim: int, is_torgb: bool, is_critically_sampled: bool, use_fp16: bool,
                 in_channels: int, out_channels: int, in_size: int, out_size: int,
                 in_sampling_rate: float, out_sampling_rate: float, in_cutoff: float, out_cutoff: float,
                 in_half_width: float, out_half_width: float, conv_kernel: int = 3, filter_size: int = 6,
                 lrelu_upsampling: int = 2, use_radial_filters: bool = False, conv_clamp: Optional[float] = 256,
                 magnitude_ema_beta: float = 0.999):
        super().__init__()
        self.w_dim = w_dim
        self.is_torgb = is_torgb
        self.is_critically_sampled = is_critically_sampled
        self.use_fp16 = use_fp16
        self.in_channels, self.out_channels = in_channels, out_channels
        self.in_size, self.out_size = int(in_size), int(out_size)
        self.in_sampling_rate, self.out_sampling_rate = in_sampling_rate, out_sampling_rate
        self.tmp_sampling_rate = max(in_sampling_rate, out_sampling_rate) * (1 if is_torgb else lrelu_upsampling)
        self.in_cutoff, self.out_cutoff = in_cutoff, out_cutoff
        self.in_half_width, self.out_half_width = in_half_width, out_half_width
        self.conv_kernel = 1 if is_torgb else conv_kernel
        self.conv_clamp = conv_clamp
        self.magnitude_ema_beta = magnitude_ema_beta

        self.affine = _Dense(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, self.conv_kernel, self.conv_kernel]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.register_buffer("magnitude_ema", torch.ones([]))

        self.up_factor = int(round(self.tmp_sampling_rate / in_sampling_rate))
        if in_sampling_rate * self.up_factor != self.tmp_sampling_rate:
            raise ValueError("StyleGAN3 layer: the upsampling factor is not an integer")
        self.up_taps = filter_size * self.up_factor if self.up_factor > 1 and not is_torgb else 1
        self.register_buffer("up_filter", design_lowpass_filter(
            self.up_taps, in_cutoff, in_half_width * 2, self.tmp_sampling_rate))
        self.down_factor = int(round(self.tmp_sampling_rate / out_sampling_rate))
        if out_sampling_rate * self.down_factor != self.tmp_sampling_rate:
            raise ValueError("StyleGAN3 layer: the downsampling factor is not an integer")
        self.down_taps = filter_size * self.down_factor if self.down_factor > 1 and not is_torgb else 1
        self.down_radial = bool(use_radial_filters and not is_critically_sampled)
        self.register_buffer("down_filter", design_lowpass_filter(
            self.down_taps, out_cutoff, out_half_width * 2, self.tmp_sampling_rate, radial=self.down_radial))

        # padding of the upsampled signal, placing samples symmetrically (Alias-Free GAN, appendix C.3)
        pad_total = (self.out_size - 1) * self.down_factor + 1
        pad_total -= (self.in_size + self.conv_kernel - 1) * self.up_factor
        pad_total += self.up_taps + self.down_taps - 2
        pad_lo = (pad_total + self.up_factor) // 2
        pad_hi = pad_total - pad_lo
        self.padding = [int(pad_lo), int(pad_hi), int(pad_lo), int(pad_hi)]
        self.impl = "fast"

    def _styles(self, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w)
        if self.is_torgb:
            styles = styles * (1 / math.sqrt(self.in_channels * self.conv_kernel ** 2))
        return styles

    def _modulated_conv_reference(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """Per-sample modulated/demodulated weights, one grouped convolution (the textbook form)."""
        n = x.shape[0]
        w = self.weight.to(x.dtype)
        s = styles
        demodulate = not self.is_torgb
        if demodulate:  # pre-normalisation (keeps the fp16 range sane; cancels out in the demodulation)
            w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
            s = s * s.square().mean(1, keepdim=True).rsqrt()
        wm = w.unsqueeze(0) * s.view(n, 1, -1, 1, 1)  # [N, O, I, k, k]
        if demodulate:
            wm = wm * (wm.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt().view(n, -1, 1, 1, 1)
        wm = wm * self.magnitude_ema.to(x.dtype).rsqrt()
        k = self.conv_kernel
        y = nn.functional.conv2d(x.reshape(1, -1, *x.shape[2:]), wm.reshape(-1, self.in_channels, k, k),
                                 padding=k - 1, groups=n)
        return y.reshape(n, -1, *y.shape[2:])

    def _modulated_conv_fast(self, x: torch.Tensor, styles: torch.Tensor) -> torch.Tensor:
        """Same function with modulation applied to the activations: one shared-weight convolution."""
        w = self.weight.to(x.dtype)
        s = styles
        demodulate = not self.is_torgb
        gain = self.magnitude_ema.to(x.dtype).rsqrt()
        if demodulate:
            w = w * w.square().mean([1, 2, 3], keepdim=True).rsqrt()
            s = s * s.square().mean(1, keepdim=True).rsqrt()
        k = self.conv_kernel
        if demodulate:
            d = ((w.square().sum(dim=[2, 3]).unsqueeze(0) * s.square().unsqueeze(1)).sum(dim=2) + 1e-8).rsqrt()
        if x.shape[0] == 1:
            # one image: modulate the weights (smaller than the activations) and run a plain convolution
            wm = w * (s[0] * gain).view(1, -1, 1, 1)
            if demodulate:
                wm = wm * d[0].view(-1, 1, 1, 1)
            return nn.functional.conv2d(x.contiguous(memory_format=torch.channels_last), wm, padding=k - 1)
        x = (x * (s * gain).view(*s.shape, 1, 1)).contiguous(memory_format=torch.channels_last)
        y = nn.functional.conv2d(x, w, padding=k - 1)
        if demodulate:
            y = y * d.view(*d.shape, 1, 1)
        return y

    def forward(self, x: torch.Tensor, w: torch.Tensor, impl: Optional[str] = None) -> torch.Tensor:
        impl = impl or self.impl
        styles = self._styles(w)
        if impl == "reference":
            x = self._modulated_conv_reference(x, styles)
            op = filtered_lrelu_reference
        else:
            x = self._modulated_conv_fast(x, styles)
            op = filtered_lrelu_fast
        gain = 1.0 if self.is_torgb else SQRT2
        slope = 1.0 if self.is_torgb else 0.2
        return op(x, fu=self.up_filter, fd=self.down_filter, b=self.bias, up=self.up_factor, down=self.down_factor,
                  padding=self.padding, gain=gain, slope=slope, clamp=self.conv_clamp)

    def extra_repr(self) -> str:
        return (f"is_torgb={self.is_torgb}, in_channels={self.in_channels}, out_channels={self.out_channels}, "
                f"in_size={self.in_size}, out_size={self.out_size}, up={self.up_factor}, down={self.down_factor}, "
                f"radial={self.down_radial}")


def synthesis_geometry(img_resolution: int, img_channels: int, channel_base: float, channel_max: int,
                       num_layers: int, num_critical: int, first_cutoff: float, first_stopband: float,
                       last_stopband_rel: float, margin_size: int) -> Dict[str, np.ndarray]:
    """Per-layer cutoffs, stopbands, sampling rates, transition half-widths, sizes and channels.

    Cutoffs and stopbands follow a geometric progression from the first layer to the last non-critical one;
    sampling rates are the smallest powers of two above twice the stopband (capped at the image resolution)."""
    last_cutoff = img_resolution / 2
    last_stopband = last_cutoff * last_stopband_rel
    exponents = np.minimum(np.arange(num_layers + 1) / (num_layers - num_critical), 1)
    cutoffs = first_cutoff * (last_cutoff / first_cutoff) ** exponents
    stopbands = first_stopband * (last_stopband / first_stopband) ** exponents
    sampling_rates = np.exp2(np.ceil(np.log2(np.minimum(stopbands * 2, img_resolution))))
    half_widths = np.maximum(stopbands, sampling_rates / 2) - cutoffs
    sizes = sampling_rates + margin_size * 2
    sizes[-2:] = img_resolution
    channels = np.rint(np.minimum((channel_base / 2) / cutoffs, channel_max))
    channels[-1] = img_channels
    return dict(cutoffs=cutoffs, stopbands=stopbands, sampling_rates=sampling_rates, half_widths=half_widths,
                sizes=sizes, channels=channels)


class SG3Synthesis(nn.Module):
    """Fourier input, ``num_layers`` modulated layers and a ToRGB layer; one w per layer (num_layers + 2)."""

    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: float = 32768,
                 channel_max: int = 512, num_layers: int = 14, num_critical: int = 2, first_cutoff: float = 2,
                 first_stopband: float = 2 ** 2.1, last_stopband_rel: float = 2 ** 0.3, margin_size: int = 10,
                 output_scale: float = 0.25, num_fp16_res: int = 4, **layer_kwargs):
        super().__init__()
        self.w_dim = w_dim
        self.num_ws = num_layers + 2
        self.img_resolution = img_resolution
        self.img_channels = img_channels
        self.num_layers = num_layers
        self.num_critical = num_critical
        self.margin_size = margin_size
        self.output_scale = output_scale
        self.num_fp16_res = num_fp16_res
        geo = synthesis_geometry(img_resolution, img_channels, channel_base, channel_max, num_layers, num_critical,
                                 first_cutoff, first_stopband, last_stopband_rel, margin_size)
        cut, sr, hw, sizes, ch = (geo[k] for k in ("cutoffs", "sampling_rates", "half_widths", "sizes", "channels"))
        self.input = SG3Input(w_dim, int(ch[0]), int(sizes[0]), sr[0], cut[0])
        self.layer_names: List[str] = []
        for idx in range(num_layers + 1):
            prev = max(idx - 1, 0)
            layer = SG3Layer(
                w_dim=w_dim, is_torgb=(idx == num_layers), is_critically_sampled=(idx >= num_layers - num_critical),
                use_fp16=bool(sr[idx] * (2 ** num_fp16_res) > img_resolution),
                in_channels=int(ch[prev]), out_channels=int(ch[idx]), in_size=int(sizes[prev]),
                out_size=int(sizes[idx]), in_sampling_rate=int(sr[prev]), out_sampling_rate=int(sr[idx]),
                in_cutoff=cut[prev], out_cutoff=cut[idx], in_half_width=hw[prev], out_half_width=hw[idx],
                **layer_kwargs)
            name = f"L{idx}_{layer.out_size}_{layer.out_channels}"
            setattr(self, name, layer)
            self.layer_names.append(name)

    def set_impl(self, impl: str) -> None:
        if impl not in ("fast", "reference"):
            raise ValueError(f"impl must be 'fast' or 'reference', got {impl!r}")
        for name in self.layer_names:
            getattr(self, name).impl = impl

    def forward(self, ws: torch.Tensor, noise_mode: str = "const", generator: Optional[torch.Generator] = None,
                impl: Optional[str] = None, **_ignored) -> torch.Tensor:
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', got {noise_mode!r}")
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must have shape [N, {self.num_ws}, {self.w_dim}], got {list(ws.shape)}")
        ws = ws.to(torch.float32).unbind(dim=1)
        x = self.input(ws[0])
        for name, w in zip(self.layer_names, ws[1:]):
            x = getattr(self, name)(x, w, impl=impl)
        if self.output_scale != 1:
            x = x * self.output_scale
        return x.to(torch.float32).contiguous()


# ------------------------------------------------------------------------------------------ generator


def _plain(value: Any) -> Any:
    """JSON-friendly copy (numpy scalars -> Python numbers, mappings -> dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


class StyleGAN3Generator(StyleGAN):
    """StyleGAN3 generator taking the reference's flat constructor arguments."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: Optional[Mapping[str, Any]] = None, family: Optional[str] = None,
                 **synthesis_kwargs):
        super().__init__()
        allowed = set(_SYNTHESIS_DEFAULTS) | set(_LAYER_DEFAULTS)
        unknown = sorted(set(synthesis_kwargs) - allowed)
        if unknown:
            raise TypeError(f"StyleGAN3Generator: unknown argument(s) {unknown}")
        mapping_kwargs = dict(mapping_kwargs or {})
        unknown = sorted(set(mapping_kwargs) - set(_MAPPING_DEFAULTS))
        if unknown:
            raise TypeError(f"StyleGAN3Generator: unknown mapping_kwargs {unknown}")
        own_family = "stylegan3-r" if synthesis_kwargs.get("use_radial_filters", False) else "stylegan3-t"
        if family is not None and family != own_family:
            raise ValueError(f"StyleGAN3Generator: family {family!r} does not match the arguments ({own_family})")
        self.family = own_family
        self._kwargs = _plain(dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                   img_channels=img_channels, mapping_kwargs=mapping_kwargs, **synthesis_kwargs))
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.img_resolution, self.img_channels = int(img_resolution), int(img_channels)
        self.synthesis = SG3Synthesis(w_dim=self.w_dim, img_resolution=self.img_resolution,
                                      img_channels=self.img_channels, **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.mapping = SG3Mapping(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                                  **mapping_kwargs)
        self.eval()
        self.requires_grad_(False)

    def train(self, mode: bool = True):
        # inference-only: the reference changes w_avg / magnitude_ema in training; this module never does
        return super().train(False)

    def config(self) -> Dict[str, Any]:
        cfg = dict(self._kwargs)
        cfg["mapping_kwargs"] = dict(cfg["mapping_kwargs"])
        cfg["family"] = self.family
        return cfg

    def set_impl(self, impl: str) -> "StyleGAN3Generator":
        """Choose the filtered-activation implementation: ``"fast"`` (default) or ``"reference"``."""
        self.synthesis.set_impl(impl)
        return self


# ------------------------------------------------------------------------------------ config inference

_LAYER_RE = re.compile(r"^synthesis\.L(\d+)_(\d+)_(\d+)\.weight$")


def infer_sg3_config(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, Any]:
    """Reference constructor arguments of the StyleGAN3 generator a state dict belongs to.

    Read from keys and shapes: z_dim/c_dim/w_dim and the mapping depth from the mapping layers; resolution,
    channels and the number of layers from the layer names (``L{idx}_{size}_{channels}``) and weights; T vs
    R from the convolution kernel (1x1 in -R) and 2-D (radial) downsampling filters; the filter size from the
    filter lengths; ``channel_base``/``channel_max`` as the values that reproduce every layer's channel count
    (official values preferred). What shapes cannot tell takes the reference default (mapping learning-rate
    multiplier 0.01, conv_clamp 256, magnitude_ema_beta 0.999, margin 10, output scale 0.25, ...).
    """
    sd = state_dict
    if "synthesis.input.freqs" not in sd or "mapping.fc0.weight" not in sd:
        raise ValueError("not a StyleGAN3 generator state dict (no synthesis.input.freqs / mapping.fc0.weight)")
    layers = {}
    for key in sd:
        m = _LAYER_RE.match(key)
        if m:
            layers[int(m.group(1))] = (int(m.group(2)), int(m.group(3)), key[:-len(".weight")])
    if not layers or sorted(layers) != list(range(len(layers))):
        raise ValueError("StyleGAN3 state dict: synthesis layers L0..Ln are missing or not contiguous")
    num_layers = len(layers) - 1
    torgb_size, img_channels, torgb = layers[num_layers]
    img_resolution = torgb_size
    w_dim = int(sd[f"{torgb}.affine.weight"].shape[1])

    n_map = 0
    while f"mapping.fc{n_map}.weight" in sd:
        n_map += 1
    c_dim = int(sd["mapping.embed.weight"].shape[1]) if "mapping.embed.weight" in sd else 0
    z_dim = int(sd["mapping.fc0.weight"].shape[1]) - (w_dim if c_dim > 0 else 0)

    first = layers[0][2]
    conv_kernel = int(sd[f"{first}.weight"].shape[-1])
    radial = any(sd[f"{name}.down_filter"].ndim == 2 for _, _, name in layers.values()
                 if f"{name}.down_filter" in sd)
    # filter size: taps / factor, read from the first layer (up = down = lrelu_upsampling there)
    lrelu_upsampling = 2
    filter_size = 6
    if f"{first}.down_filter" in sd:
        filter_size = int(sd[f"{first}.down_filter"].shape[-1]) // lrelu_upsampling
    # margin: size of the first layers minus their sampling rate (a power of two)
    size0 = layers[0][0]
    margin_size = _DEFAULT_MARGIN
    rate0 = 2 ** int(math.floor(math.log2(max(size0 - 2 * _DEFAULT_MARGIN, 1))))
    if size0 - rate0 != 2 * _DEFAULT_MARGIN:
        margin_size = (size0 - rate0) // 2
    channels = [layers[i][1] for i in range(num_layers + 1)]
    in_ch0 = int(sd["synthesis.input.weight"].shape[0])
    num_critical = _SYNTHESIS_DEFAULTS["num_critical"]

    cfg: Dict[str, Any] = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                               img_channels=img_channels, mapping_kwargs=dict(num_layers=n_map))
    base, cmax = _fit_channels(img_resolution, img_channels, num_layers, num_critical, margin_size,
                               [in_ch0] + channels)
    cfg["channel_base"] = base
    cfg["channel_max"] = cmax
    if num_layers != _SYNTHESIS_DEFAULTS["num_layers"]:
        cfg["num_layers"] = num_layers
    if margin_size != _DEFAULT_MARGIN:
        cfg["margin_size"] = margin_size
    if conv_kernel != _LAYER_DEFAULTS["conv_kernel"]:
        cfg["conv_kernel"] = conv_kernel
    if radial:
        cfg["use_radial_filters"] = True
    if filter_size != _LAYER_DEFAULTS["filter_size"]:
        cfg["filter_size"] = filter_size
    return cfg


_DEFAULT_MARGIN = _SYNTHESIS_DEFAULTS["margin_size"]
_OFFICIAL_CHANNELS = [(32768, 512), (65536, 1024), (16384, 256), (8192, 128), (32768, 1024), (65536, 512)]


def _fit_channels(img_resolution: int, img_channels: int, num_layers: int, num_critical: int, margin_size: int,
                  observed: List[int]):
    """channel_base / channel_max reproducing the observed channel counts (input, L0 .. ToRGB)."""
    d = _SYNTHESIS_DEFAULTS

    def channels_for(base, cmax):
        geo = synthesis_geometry(img_resolution, img_channels, base, cmax, num_layers, num_critical,
                                 d["first_cutoff"], d["first_stopband"], d["last_stopband_rel"], margin_size)
        ch = [int(c) for c in geo["channels"]]
        return [ch[0]] + ch

    for base, cmax in _OFFICIAL_CHANNELS:
        if channels_for(base, cmax) == observed:
            return base, cmax
    # channel_max is the largest count when it caps the first layers; channel_base from the unclamped layers
    cmax = max(observed[:-1])
    geo = synthesis_geometry(img_resolution, img_channels, 1.0, 1e30, num_layers, num_critical,
                             d["first_cutoff"], d["first_stopband"], d["last_stopband_rel"], margin_size)
    cutoffs = geo["cutoffs"]
    candidates = set()
    for c, cut in zip(observed[1:-1], cutoffs[:-1]):
        if c < cmax:
            candidates.add(int(round(c * 2 * cut)))
    for base in sorted(candidates) + [2 ** k for k in range(6, 20)]:
        for cand in (base, 1 << int(round(math.log2(base))) if base > 0 else base):
            if cand > 0 and channels_for(cand, cmax) == observed:
                return cand, cmax
    raise ValueError(f"StyleGAN3 state dict: cannot find channel_base/channel_max for channels {observed}")
