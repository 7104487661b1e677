"""``style_transfer``: the one entry point, on ComfyUI IMAGE tensors (NHWC RGB in [0, 1]).

Methods: ``"gatys"`` (optimisation, :mod:`.gatys`), ``"adain"`` (:mod:`.adain`), ``"fast"`` (:mod:`.fast`).
Batches are frame sequences. For feed-forward methods ``consistency=True`` gives every frame the same
mapping: AdaIN's content statistics are pooled over the whole sequence and the style statistics computed
once; TransformerNet's instance-norm statistics are pooled over a few evenly spaced frames and then frozen.
``temporal_blend`` (any method) additionally carries the previous output over in static regions.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ..image import split_image_alpha
from .adain import AdaIN, ENCODER_LAYER, calc_mean_std
from .base import StyleNetwork, prepared
from .checkpoint import Source
from .color import check_preserve_color, luminance_transfer, match_color
from .errors import StyleNetworkLoadError
from .fast import TransformerNet
from .gatys import GatysOptions, gatys_transfer, resize_long_side
from .loader import load_adain, load_style_network
from .tiles import (adain_tile_counts, decode_tiled, encode_tiled, fast_apply_tiled, fast_decode_tiled,
                    fast_stats_tiled, fast_tile_counts)
from .vgg import VGG19Features

METHODS = ("gatys", "adain", "fast")
Progress = Optional[Callable[[int, int, Optional[float]], None]]
Interrupt = Optional[Callable[[], None]]


# ---------------------------------------------------------------------------------------------- helpers
def _to_nchw(images: torch.Tensor, what: str) -> Tuple[torch.Tensor, Optional[torch.Tensor], int]:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{what} must be an IMAGE tensor [N, H, W, C], got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[-1] not in (1, 2, 3, 4):
        raise ValueError(f"{what} must be an IMAGE tensor [N, H, W, C] with 1-4 channels, got {tuple(images.shape)}")
    channels = images.shape[-1]
    rgb, alpha = split_image_alpha(images.float())
    return rgb.permute(0, 3, 1, 2).contiguous(), (alpha if channels in (2, 4) else None), channels


def _to_image(nchw: torch.Tensor, alpha: Optional[torch.Tensor], channels: int) -> torch.Tensor:
    out = nchw.clamp(0, 1).permute(0, 2, 3, 1)
    if channels in (1, 2):
        out = (0.299 * out[..., :1] + 0.587 * out[..., 1:2] + 0.114 * out[..., 2:3])
    if alpha is not None:
        out = torch.cat([out, alpha.to(out).unsqueeze(-1)], -1)
    return out.contiguous()


def _pad_to(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def _resize_to(x: torch.Tensor, size: Tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = x.shape[-2] > size[0]
    return F.interpolate(x, size=size, mode="bilinear" if shrink else "bicubic", align_corners=False, antialias=shrink)


def _style_for(style: torch.Tensor, i: int) -> torch.Tensor:
    return style[i:i + 1] if style.shape[0] > 1 else style[:1]


def static_mask(prev: torch.Tensor, cur: torch.Tensor, threshold: float = 0.02, radius: int = 4) -> torch.Tensor:
    """``[N, 1, H, W]`` in [0, 1]: 1 where the input did not change between frames (soft, with the change
    dilated by ``radius`` pixels so that outputs near moving things are not held back)."""
    d = (cur - prev).abs().amax(dim=1, keepdim=True)
    if radius > 0:
        d = F.max_pool2d(d, 2 * radius + 1, stride=1, padding=radius)
    return (1.0 - d / max(threshold, 1e-6)).clamp(0.0, 1.0)


def temporal_blend(outputs: torch.Tensor, inputs: torch.Tensor, blend: float, threshold: float = 0.02,
                   radius: int = 4) -> torch.Tensor:
    """Recursive blend ``out'_t = m*blend*out'_{t-1} + (1 - m*blend)*out_t`` with ``m`` the static mask of the
    inputs (NCHW, same size). ``blend=0`` returns ``outputs``; ``blend=1`` freezes static regions."""
    if blend <= 0 or outputs.shape[0] < 2:
        return outputs
    if not 0.0 <= blend <= 1.0:
        raise ValueError(f"temporal_blend must be in [0, 1], got {blend}")
    res = [outputs[:1]]
    for t in range(1, outputs.shape[0]):
        m = static_mask(inputs[t - 1:t], inputs[t:t + 1], threshold, radius) * blend
        res.append(m * res[-1] + (1.0 - m) * outputs[t:t + 1])
    return torch.cat(res, 0)


def _sample_indices(n: int, k: int) -> List[int]:
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _resolve_network(method: str, network, decoder) -> Union[VGG19Features, AdaIN, TransformerNet]:
    if method == "adain":
        if isinstance(network, AdaIN):
            return network
        if isinstance(network, (tuple, list)) and len(network) == 2:
            return load_adain(network[0], network[1])
        if network is not None and decoder is not None:
            return load_adain(network, decoder)
        raise ValueError("method='adain' needs network=AdaIN (see load_adain) or network=vgg_normalised + decoder=decoder")
    if network is None:
        raise ValueError(f"method={method!r} needs a network "
                         f"({'a VGG-19 feature extractor' if method == 'gatys' else 'a fast_style TransformerNet'}); "
                         "see required_files()")
    if not isinstance(network, StyleNetwork):
        network = load_style_network(network)
    if method == "gatys" and not isinstance(network, VGG19Features):
        raise StyleNetworkLoadError(f"method='gatys' needs a VGG-19 (vgg19 or adain_encoder), got a {network.kind} network")
    if method == "fast" and not isinstance(network, TransformerNet):
        raise StyleNetworkLoadError(f"method='fast' needs a fast_style TransformerNet, got a {network.kind} network")
    return network


class _TileTicks:
    """Progress of a tiled run in tile steps: :meth:`tick` (handed to the tile functions as their
    ``check_interrupt``) checks Cancel and advances the bar by one tile; :meth:`frames_done` puts it exactly at
    the end of the first ``k`` units of work (chunks or frames, ``sizes[i]`` tiles each, after ``before``
    tiles of preparation), so a count that is off never drifts."""

    def __init__(self, progress: Progress, check_interrupt: Interrupt, sizes: Sequence[int], before: int = 0):
        self.progress, self.check = progress, check_interrupt
        self.ends = [int(before)]
        for size in sizes:
            self.ends.append(self.ends[-1] + int(size))
        self.total = max(1, self.ends[-1])
        self.done = 0

    def tick(self) -> None:
        if self.check is not None:
            self.check()
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total - 1), self.total, None)

    def frames_done(self, k: int) -> None:
        self.done = self.ends[k]
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total, None)


# ---------------------------------------------------------------------------------------------- feed-forward
def adain_frames(pair: AdaIN, content: torch.Tensor, style: torch.Tensor, alpha: float = 1.0,
                 consistency: bool = False, batch_size: int = 4, progress: Progress = None,
                 check_interrupt: Interrupt = None, tile_size: int = 0) -> torch.Tensor:
    """AdaIN on NCHW [0, 1] frames (style batch 1 = shared, or one per frame); returns NCHW [0, 1].

    Frames stay where ``content`` is (e.g. CPU memory) and go to the network's device ``batch_size`` at a
    time, so device memory is bounded by one chunk whatever the sequence length; the result is written
    into one preallocated tensor on ``content``'s device. ``tile_size`` > 0: images larger than that run in
    tiles (:mod:`.tiles`: exact, the device holds one tile; the relu4_1 features, 1/8 of the size, are
    assembled where the frames are), so 4K frames fit a small GPU."""
    dev = next(pair.parameters()).device
    n = content.shape[0]
    h, w = content.shape[-2:]
    tile = int(tile_size or 0)
    chunks = -(-n // batch_size)
    # tiled: the progress bar moves per tile (a 4K frame takes a while on a CPU)
    enc_tiles, dec_tiles = adain_tile_counts(h + (-h) % 8, w + (-w) % 8, tile) if tile > 0 else (0, 0)
    ticks = None
    if enc_tiles:
        sh, sw = style.shape[-2:]
        per_style = 0 if style.shape[0] == 1 or consistency else adain_tile_counts(sh + (-sh) % 8, sw + (-sw) % 8,
                                                                                 tile)[0]
        sizes = [enc_tiles + dec_tiles + per_style * min(batch_size, n - i) for i in range(0, n, batch_size)]
        ticks = _TileTicks(progress, check_interrupt, sizes, chunks * enc_tiles if consistency else 0)

    def tiled(t: torch.Tensor) -> bool:
        return tile > 0 and max(t.shape[-2:]) > tile

    def encode(t: torch.Tensor, counted: bool = True) -> torch.Tensor:
        """relu4_1 features of host/device frames ``t`` (padded to a multiple of 8)."""
        if tiled(t):
            check = ticks.tick if ticks is not None and counted else check_interrupt
            return encode_tiled(pair, t, tile, device=dev, check_interrupt=check)
        return pair.encode(t.to(dev))

    def decode(feat: torch.Tensor) -> torch.Tensor:
        if tile > 0 and 8 * max(feat.shape[-2:]) > tile:
            return decode_tiled(pair, feat, tile, device=dev,
                                check_interrupt=ticks.tick if ticks is not None else check_interrupt)
        return pair.decoder(feat.to(dev))

    def frames(i: int) -> torch.Tensor:
        chunk = content[i:i + batch_size]
        return _pad_to(chunk if tiled(chunk) else chunk.to(dev), 8)[0]

    def style_frame(j: int) -> torch.Tensor:
        one = style[j:j + 1]
        return _pad_to(one if tiled(one) else one.to(dev), 8)[0]

    with torch.no_grad():
        if style.shape[0] == 1 or consistency:
            # style statistics once: pooled over all style images when several are given with consistency
            fs = torch.cat([encode(style_frame(j), counted=False).to(dev) for j in range(style.shape[0])], 0)
            s_mean = fs.mean(dim=(0, 2, 3), keepdim=True)
            s_std = (fs.var(dim=(0, 2, 3), keepdim=True) + 1e-5).sqrt()
            shared = (s_mean, s_std)
            del fs
        else:
            shared = None
        c_stats = None
        if consistency:
            total, total_sq, count = 0.0, 0.0, 0
            for i in range(0, n, batch_size):
                f = encode(frames(i)).to(dev).double()
                total = total + f.sum(dim=(0, 2, 3), keepdim=True)
                total_sq = total_sq + f.pow(2).sum(dim=(0, 2, 3), keepdim=True)
                count += f.shape[0] * f.shape[2] * f.shape[3]
                if check_interrupt is not None:
                    check_interrupt()
            mean = total / count
            var = (total_sq - count * mean.pow(2)) / max(count - 1, 1)
            c_stats = (mean.float(), (var.clamp_min(0) + 1e-5).sqrt().float())
        out: Optional[torch.Tensor] = None
        for i in range(0, n, batch_size):
            chunk = frames(i)
            fc = encode(chunk)
            if shared is not None:
                s_mean, s_std = shared
            else:
                s_mean, s_std = calc_mean_std(torch.cat([encode(style_frame(j)).to(dev)
                                                         for j in range(i, i + chunk.shape[0])], 0))
            fd = fc.device
            t = pair.stylize_features(fc, s_mean.to(fd), s_std.to(fd), alpha,
                                      None if c_stats is None else tuple(v.to(fd) for v in c_stats))
            del fc
            y = decode(t)[..., :h, :w].float()
            if out is None:
                out = torch.empty((n, y.shape[1], h, w), dtype=torch.float32, device=content.device)
            out[i:i + chunk.shape[0]] = y.to(content.device)
            if ticks is not None:
                ticks.frames_done(i // batch_size + 1)
            elif progress is not None:
                progress(min(i + batch_size, n), n, None)
            if check_interrupt is not None:
                check_interrupt()
    return out


def fast_frames(net: TransformerNet, content: torch.Tensor, consistency: bool = False, stat_frames: int = 4,
                batch_size: int = 4, progress: Progress = None, check_interrupt: Interrupt = None,
                tile_size: int = 0) -> torch.Tensor:
    """TransformerNet on NCHW [0, 1] frames; with ``consistency`` the instance-norm statistics are pooled over
    up to ``stat_frames`` evenly spaced frames and shared by all frames. Frames move to the network's device
    ``batch_size`` at a time; the result is preallocated on ``content``'s device. ``tile_size`` > 0: frames
    larger than that run in exact tiles (:func:`.tiles.fast_stats_tiled`: staged whole-frame statistics; the
    device holds a tile, or the 1/4-scale bottleneck of the frames being measured)."""
    dev = next(net.parameters()).device
    n = content.shape[0]
    h, w = content.shape[-2:]
    tile = int(tile_size or 0)
    tiled = tile > 0 and max(h, w) > tile
    kw = dict(device=dev, check_interrupt=check_interrupt)
    if tiled:   # the progress bar moves per tile (a 4K frame takes a while on a CPU)
        stats_tiles, decode_tiles, apply_tiles = fast_tile_counts(net, h + (-h) % 4, w + (-w) % 4, tile)
        ticks = _TileTicks(progress, check_interrupt, [apply_tiles if consistency else stats_tiles + decode_tiles] * n,
                           stats_tiles if consistency else 0)
        kw = dict(device=dev, check_interrupt=ticks.tick)
    with torch.no_grad():
        stats = None
        if consistency:
            sample = content[_sample_indices(n, stat_frames)]
            if tiled:
                stats, _ = fast_stats_tiled(net, _pad_to(sample, 4)[0], tile, **kw)
            else:
                stats = net.norm_stats(_pad_to(sample.to(dev), 4)[0])
        out: Optional[torch.Tensor] = None
        step = 1 if tiled else batch_size
        for i in range(0, n, step):
            if not tiled:
                y = net(_pad_to(content[i:i + batch_size].to(dev), 4)[0], stats)
            elif stats is not None:
                y = fast_apply_tiled(net, _pad_to(content[i:i + 1], 4)[0], stats, tile, **kw)
            else:   # per-frame statistics: measure this frame, then decode its bottleneck
                frame_stats, z = fast_stats_tiled(net, _pad_to(content[i:i + 1], 4)[0], tile, **kw)
                y = fast_decode_tiled(net, z, frame_stats, tile, **kw)
                del z
            y = y[..., :h, :w].float()
            if out is None:
                out = torch.empty((n, y.shape[1], h, w), dtype=torch.float32, device=content.device)
            out[i:i + y.shape[0]] = y.to(content.device)
            if tiled:
                ticks.frames_done(i + 1)
            elif progress is not None:
                progress(min(i + step, n), n, None)
            if check_interrupt is not None:
                check_interrupt()
    return out


# ---------------------------------------------------------------------------------------------- entry point
def style_transfer(content: torch.Tensor, style: Optional[torch.Tensor] = None, *, method: str = "gatys",
                   network: Union[StyleNetwork, AdaIN, Source, Sequence, None] = None,
                   decoder: Union[StyleNetwork, Source, None] = None,
                   strength: float = 1.0, alpha: Optional[float] = None, iterations: int = 300,
                   size: Optional[int] = None, seed: int = 0, preserve_color: Optional[str] = None,
                   consistency: bool = False, temporal_blend_weight: float = 0.0, static_threshold: float = 0.02,
                   options: Optional[GatysOptions] = None, progress: Progress = None,
                   check_interrupt: Interrupt = None, device: Union[str, torch.device, None] = None,
                   batch_size: int = 4, tile_size: int = 0, **gatys_kwargs) -> torch.Tensor:
    """Stylise ``content`` (IMAGE ``[N, H, W, C]`` in [0, 1], a batch = frames) with ``style`` (IMAGE, batch 1
    shared by all frames or one per frame; unused by ``"fast"``). Returns an IMAGE of the content's shape.

    * ``method``: ``"gatys"`` (``network`` = VGG-19 or AdaIN encoder), ``"adain"`` (``network`` = :class:`AdaIN`
      from :func:`load_adain`, a ``(vgg, decoder)`` pair, or ``network=vgg`` + ``decoder=``), ``"fast"``
      (``network`` = TransformerNet). Networks may also be given as paths or state dicts.
    * ``strength``: gatys - multiplies the style weight; adain - ``alpha`` (``alpha=`` overrides); fast - blend
      of stylised and content pixels.
    * ``iterations`` (gatys, per scale), ``size`` (processing long side; output is resized back), ``seed``
      (gatys noise init; frame ``i`` uses ``seed + i``), ``options``/``**gatys_kwargs``: :class:`GatysOptions`
      fields (``style_layers``, ``content_layers``, ``optimizer``, ``init``, ``pool``, ``scales``, ``tv_weight``...).
    * ``preserve_color``: ``None``, ``"luminance"`` (stylised luma, content chroma in YUV) or ``"histogram"``
      (style recoloured to the content's Lab mean/std before stylising).
    * ``consistency`` (adain/fast): one mapping for all frames (see module doc). ``temporal_blend_weight`` in
      [0, 1]: carry the previous output over where the input is static (change below ``static_threshold``).
    * ``progress(step, total, loss)``, ``check_interrupt()`` (may raise to abort), ``device`` (default: the
      network's device). Output is on the content's device.
    * ``tile_size`` (adain, fast): images larger than this many pixels run in exact tiles (see
      :func:`adain_frames`, :func:`fast_frames`); 0 = whole images.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    mode = check_preserve_color(preserve_color)
    c, c_alpha, channels = _to_nchw(content, "content")
    out_device = content.device
    if method != "fast":
        if style is None:
            raise ValueError(f"method={method!r} needs a style image")
        s, _, _ = _to_nchw(style, "style")
        if s.shape[0] not in (1, c.shape[0]):
            raise ValueError(f"style batch must be 1 or match the content's {c.shape[0]} frames, got {s.shape[0]}")
    else:
        s = None
    if method != "gatys" and gatys_kwargs:
        raise TypeError(f"style_transfer got option(s) {sorted(gatys_kwargs)} that only apply to method='gatys'")
    net = _resolve_network(method, network, decoder)
    dev = torch.device(device) if device is not None else next(net.parameters()).device
    if method != "gatys":
        net = prepared(net, dev, autograd=False)
    n, _, H, W = c.shape
    # frames stay on the content's device; each method moves one frame / chunk at a time to ``dev``
    work = resize_long_side(c, int(size)) if size and int(size) != max(H, W) else c
    if s is not None and mode == "histogram":
        s = match_color(s, work)

    if method == "gatys":
        opts = options or GatysOptions()
        unknown = sorted(set(gatys_kwargs) - set(GatysOptions.__dataclass_fields__))
        if unknown:
            raise TypeError(f"style_transfer got unknown option(s) {unknown}; Gatys options are "
                            f"{sorted(GatysOptions.__dataclass_fields__)}")
        if gatys_kwargs:
            opts = GatysOptions(**{**opts.__dict__, **gatys_kwargs})
        opts = GatysOptions(**{**opts.__dict__, "style_weight": opts.style_weight * float(strength)}).validate()
        net_dev = prepared(net, dev)
        from .gatys import _scale_sizes
        per_frame = iterations * len(_scale_sizes(*work.shape[-2:], opts))
        outs = []
        for i in range(n):
            if check_interrupt is not None:
                check_interrupt()
            outs.append(gatys_transfer(work[i:i + 1].to(dev), _style_for(s, i).to(dev), net_dev, iterations=iterations,
                                       options=opts, seed=seed + i, progress=progress, check_interrupt=check_interrupt,
                                       step_offset=i * per_frame, total_steps=n * per_frame).to(c.device))
        out = torch.cat(outs, 0)
    elif method == "adain":
        a = float(strength if alpha is None else alpha)
        out = adain_frames(net, work, s, a, consistency, batch_size, progress, check_interrupt, tile_size=tile_size)
    else:
        out = fast_frames(net, work, consistency, batch_size=batch_size, progress=progress,
                          check_interrupt=check_interrupt, tile_size=tile_size)
        if strength != 1.0:
            out = float(strength) * out + (1.0 - float(strength)) * work
    out = _resize_to(out.clamp(0, 1), (H, W)).clamp(0, 1)
    if mode == "luminance":
        out = luminance_transfer(out, c)
    if temporal_blend_weight > 0:
        out = temporal_blend(out, c, temporal_blend_weight, static_threshold)
    return _to_image(out.to(out_device), c_alpha, channels)
