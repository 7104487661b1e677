"""``translate``: run a translator on ComfyUI IMAGE batches of any size, tiled or not, in bounded memory.

Contract (NHWC float in [0, 1] in and out):

* **Any H x W.** The frame is padded to the architecture's multiple (4 for ResNet, ``2**depth`` for U-Net) and
  at least to its minimum size, by reflection -- or by edge replication where the image is too small to
  reflect (e.g. 1x1) -- and the result is cropped back.
* **Channels.** 1, 3 or 4 (and 2 = gray + alpha) channels. Gray is repeated to RGB, RGB reduced to luma
  when the model wants 1 channel; an alpha channel is passed through untouched (unless the model itself
  takes exactly as many channels as the image has). A 1-channel model output is repeated to RGB. Any other
  channel count raises ``ValueError``.
* **NaN / inf pixels** are replaced before the network (NaN -> 0, +inf -> 1, -inf -> 0) and the input is
  clamped to [0, 1]; the output is always finite and in [0, 1].
* **Tiling** (``tile_size > 0``): tiles aligned to the architecture's multiple, overlapping by
  ``tile_overlap`` (0 = automatic, from the receptive field), blended with weights that ramp across the
  middle half of each overlap and sum to one. Normalisation layers that need image statistics (every
  InstanceNorm; BatchNorm in ``mode="reference"``) get those of the **whole frame**: they are computed in
  stages, one extra pass over the tiles per such layer, each pass stopping at the layer it collects (see
  ``layers.py``); ResNets keep small intermediate activations (e.g. the bottleneck) frame-sized in host
  memory between passes, so a 9-block generator costs about 3 forwards instead of ~25. The device holds one
  tile's activations at a time; the frame, kept activations and the blended output live in host memory.
* ``mode="eval"`` (default): BatchNorm on its running statistics, dropout off (deterministic).
  ``mode="reference"``: what the reference ``test.py`` does without ``--eval`` (batch size 1): BatchNorm on the
  statistics of each image, dropout active with a mask drawn from ``seed`` -- reproducible, independent of
  tiling and batch chunking, and the model's stored running statistics are never touched.
* **Exactness of tiling.** With an overlap that covers the receptive field, tiled output equals untiled
  output up to float round-off (ResNets: the automatic overlap is twice the receptive radius, capped at
  half the tile). A U-Net's innermost layers see its whole ``2**depth`` window, so no tile overlap could
  make it exact: tiled U-Nets are instead run level by level in row strips of about ``tile_size**2``
  pixels (``stream.py``) -- exact in every mode, skip connections kept in host memory. Other
  architectures (e.g. written with torch's own layers) use the overlapping tiles.
* ``resize_to_train_size``: resize to the model's square training size (``translator.train_size``, 256 when
  unknown), translate, resize back (bicubic, antialiased) -- the reference's default preprocessing.
* ``batch_size`` images are processed at a time; ``dtype`` ``torch.float16``/``torch.bfloat16`` runs under
  autocast (normalisation statistics stay float32); on CUDA the network runs channels-last.
* ``progress(done, total)`` after every tile forward (stat passes included); ``check_interrupt()`` before
  every tile -- it raises to cancel.
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .base import Translator
from .layers import FrameContext, StopForward, frame_context, frame_stat_layers
from .stream import stream_passes, stream_unet, unet_levels

_MODES = ("eval", "reference")


def _round_up(v: int, m: int) -> int:
    return -(-int(v) // m) * m


def _pad_frame(x: torch.Tensor, ph: int, pw: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Pad NCHW ``x`` to ``ph x pw`` (centred); reflection where possible, edge replication otherwise."""
    h, w = x.shape[-2:]
    top, left = (ph - h) // 2, (pw - w) // 2
    bottom, right = ph - h - top, pw - w - left
    if top == bottom == left == right == 0:
        return x, (0, 0)
    if max(top, bottom) < h and max(left, right) < w:
        return F.pad(x, (left, right, top, bottom), mode="reflect"), (top, left)
    return F.pad(x, (left, right, top, bottom), mode="replicate"), (top, left)


class _Axis:
    """Tile layout along one axis: starts, owned segments [b0, b1) and blend weights."""

    def __init__(self, length: int, tile: int, overlap: int, multiple: int):
        if length <= tile:
            self.starts, self.size = [0], length
            self.bounds = [0, length]
            self.ramps = [0.0, 0.0]
            return
        self.size = tile
        step = max(multiple, tile - overlap)
        n = math.ceil((length - tile) / step) + 1
        starts = sorted({int(round((length - tile) * i / (n - 1) / multiple)) * multiple for i in range(n)})
        self.starts = starts
        bounds, ramps = [0], [0.0]
        for a, b in zip(starts, starts[1:]):
            end_a = a + tile
            # owned segments meet mid-overlap; tile starts are multiples of the architecture's multiple, so
            # every feature scale splits a boundary the same way from both sides (see FrameContext)
            mid = (b + end_a) // 2
            bounds.append(mid)
            ramps.append(max(0.0, min((end_a - b) / 4.0, mid - b, end_a - mid)))
        bounds.append(length)
        ramps.append(0.0)
        # neighbouring ramps must not overlap, or the weights would no longer sum to one
        for i in range(1, len(bounds) - 1):
            ramps[i] = min(ramps[i], (bounds[i] - bounds[i - 1]) / 2.0, (bounds[i + 1] - bounds[i]) / 2.0)
        self.bounds, self.ramps = bounds, ramps

    def __len__(self) -> int:
        return len(self.starts)

    def weights(self, i: int, samples: Optional[int] = None) -> torch.Tensor:
        """Blend weights of tile ``i`` at ``samples`` evenly spaced positions (default: one per pixel)."""
        s = self.starts[i]
        samples = samples or self.size
        p = s + (torch.arange(samples, dtype=torch.float64) + 0.5) * (self.size / samples)
        w = torch.ones_like(p)
        lo, hi = self.bounds[i], self.bounds[i + 1]
        r_lo, r_hi = self.ramps[i], self.ramps[i + 1]
        if i > 0:
            w *= ((p - (lo - r_lo)) / (2 * r_lo)).clamp(0, 1) if r_lo > 0 else (p >= lo).double()
        if i < len(self.starts) - 1:
            w *= (((hi + r_hi) - p) / (2 * r_hi)).clamp(0, 1) if r_hi > 0 else (p < hi).double()
        return w.float()

    def owned(self, i: int) -> Tuple[int, int]:
        s = self.starts[i]
        return self.bounds[i] - s, self.bounds[i + 1] - s


# elements per input pixel up to which an intermediate activation is kept frame-sized (on the images'
# device) so later statistics passes start from it instead of from the input; e.g. a ResNet bottleneck
# (4 ngf channels at 1/4 resolution) is 16 per pixel for ngf=64
_CHECKPOINT_ELEMENTS_PER_PIXEL = 16


def _stages(translator: Translator) -> List[torch.nn.Module]:
    fn = getattr(translator, "frame_stages", None)
    return list(fn()) if callable(fn) else [translator]


def _probe(translator: Translator, stages: Sequence[torch.nn.Module], size: int, device
           ) -> List[Tuple[int, float, bool]]:
    """(channels, scale, proportional) of every stage's output, from tiny plain forwards at two sizes: scale =
    input side / feature side; proportional = the output so far is a pure rescaling of the input (False after
    a padding layer, whose output is a few pixels larger whatever the input: no place to store an activation
    for later tile passes, whose tile geometry assumes a pure scale)."""
    size = max(16, int(size))
    sides = []
    with torch.inference_mode():
        for s in (size, 2 * size):
            h = torch.zeros((1, translator.input_nc, s, s), device=device)
            out = []
            for st in stages:
                h = st(h)
                out.append((int(h.shape[1]), int(h.shape[-2])))
            sides.append(out)
    return [(c, size / float(a), b == 2 * a) for (c, a), (_, b) in zip(*sides)]


def _plan(stat_counts: Sequence[int], shapes: Sequence[Tuple[int, float, bool]]) -> List[Tuple[str, int, int]]:
    """Passes over the tiles: ("collect", first, last) stops at the next unknown statistics layer,
    ("advance", first, last) stores the output of stages[first:last] frame-sized, ("final", first, end)."""
    plan: List[Tuple[str, int, int]] = []
    cur, end = 0, len(stat_counts)
    for j, count in enumerate(stat_counts):
        if not count:
            continue
        best = cur
        for i in range(cur + 1, j + 1):
            c, scale, proportional = shapes[i - 1]
            if proportional and c / (scale * scale) <= _CHECKPOINT_ELEMENTS_PER_PIXEL:
                best = i
        if best > cur:
            plan.append(("advance", cur, best))
            cur = best
        plan += [("collect", cur, j + 1)] * count   # a collect pass stops inside stage j
    plan.append(("final", cur, end))
    return plan


def _stages_radius(stages: Sequence[torch.nn.Module], scale: float) -> float:
    """Receptive radius, in input pixels of the frame, of ``stages`` run on an activation whose pixels are
    ``scale`` frame pixels wide: each convolution adds half its extent at the scale it runs at, strides and
    poolings coarsen the scale, transposed convolutions and upsampling refine it (layers in module order,
    which is execution order for this pack's architectures)."""
    r = 0.0
    for st in stages:
        for m in st.modules():
            if isinstance(m, torch.nn.Conv2d):
                r += math.ceil(m.dilation[0] * (m.kernel_size[0] - 1) / 2) * scale
                scale *= m.stride[0]
            elif isinstance(m, torch.nn.ConvTranspose2d):
                scale /= m.stride[0]
                r += math.ceil(m.dilation[0] * (m.kernel_size[0] - 1) / 2) * scale
            elif isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
                k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
                st_ = m.stride if isinstance(m.stride, int) else m.stride[0]
                r += (k - 1) / 2 * scale
                scale *= st_ or k
            elif isinstance(m, torch.nn.Upsample):
                f = m.scale_factor if not isinstance(m.scale_factor, tuple) else m.scale_factor[0]
                scale /= float(f or 1)
    return r


def _tile_pass(stages, src: torch.Tensor, ph: int, pw: int, ay: _Axis, ax: _Axis, ctx: FrameContext, device,
               dtype, use_cl: bool, *, collect: bool, tick, check_interrupt) -> Optional[torch.Tensor]:
    """Run ``stages`` over every tile of the frame-sized activation ``src``; blend the outputs into a
    frame-sized tensor on ``src``'s device (None for a statistics pass, which stops inside the stages)."""
    out: Optional[torch.Tensor] = None
    sy_in = ph / src.shape[-2]
    sx_in = pw / src.shape[-1]
    for iy in range(len(ay)):
        for ix in range(len(ax)):
            if check_interrupt is not None:
                check_interrupt()
            sy, sx, th, tw = ay.starts[iy], ax.starts[ix], ay.size, ax.size
            oy, ox = ay.owned(iy), ax.owned(ix)
            ctx.tile_origin, ctx.tile_size = (sy, sx), (th, tw)
            ctx.owned = (oy[0], oy[1], ox[0], ox[1])
            y0, y1 = int(round(sy / sy_in)), int(round((sy + th) / sy_in))
            x0, x1 = int(round(sx / sx_in)), int(round((sx + tw) / sx_in))
            h = src[:, :, y0:y1, x0:x1].to(device, copy=True)  # a copy: layers may work in place
            if use_cl:
                h = h.contiguous(memory_format=torch.channels_last)
            try:
                with _autocast(device, dtype):
                    for st in stages:
                        h = st(h)
            except StopForward:
                tick()
                continue
            if collect:  # pragma: no cover - a collect pass always stops
                raise RuntimeError("statistics pass ran to the end")
            h = h.float()
            fh, fw = h.shape[-2:]
            oh, ow = int(round(ph * fh / th)), int(round(pw * fw / tw))
            if out is None:
                out = torch.zeros((h.shape[0], h.shape[1], oh, ow), dtype=torch.float32, device=src.device)
            wy = ay.weights(iy, fh).to(h.device)
            wx = ax.weights(ix, fw).to(h.device)
            fy0, fx0 = int(round(sy * fh / th)), int(round(sx * fw / tw))
            out[:, :, fy0:fy0 + fh, fx0:fx0 + fw] += (h * (wy[:, None] * wx[None, :])).to(out.device)
            del h
            tick()
    return out


def auto_tile_overlap(translator: Translator, tile_size: int) -> int:
    """Overlap used for ``tile_overlap=0``: twice the receptive radius (capped at half the tile), rounded up
    to the architecture's multiple. When the receptive field is wider than the tile anyway (U-Nets, whose
    innermost layer sees everything), a quarter of the tile: the far context contributes little."""
    m = int(getattr(translator, "size_multiple", 1) or 1)
    radius = int(getattr(translator, "receptive_radius", 32))
    if 2 * radius > tile_size:
        return max(m, _round_up(tile_size // 4, m))
    return min(_round_up(2 * radius, m), max(m, _round_up(tile_size // 2, m)))



def activation_bytes_per_pixel(translator: Translator, dtype: Optional[torch.dtype] = None) -> float:
    """Rough peak activation memory of one forward, in bytes per input pixel per image (with a safety margin).

    ResNets peak at full resolution (input, ``ngf``-channel conv output and its normalised copy); U-Nets also
    keep every skip connection alive, about ``4 * ngf`` values per pixel. Architectures may override with an
    ``activation_elements_per_pixel`` attribute.
    """
    per = getattr(translator, "activation_elements_per_pixel", None)
    if per is None:
        ngf = int(getattr(translator, "ngf", 64) or 64)
        per = (4 if getattr(translator, "arch", "") == "unet" else 3) * ngf + translator.input_nc
    size = 2 if dtype in (torch.float16, torch.bfloat16) else 4
    return float(per) * size * 1.5


def auto_tile_size(translator: Translator, height: int, width: int, *, free_bytes: int, batch_size: int = 1,
                   dtype: Optional[torch.dtype] = None) -> int:
    """Tile size for ``translate(tile_size=...)`` that fits half of ``free_bytes`` of device memory: 0 (no
    tiling) when the whole ``batch_size`` x ``height`` x ``width`` batch fits, else the largest square tile
    (a multiple of the architecture's multiple, at least two of them) whose estimate fits."""
    m = int(getattr(translator, "size_multiple", 1) or 1)
    per_px = activation_bytes_per_pixel(translator, dtype) * max(1, int(batch_size))
    budget = max(0.0, float(free_bytes) * 0.5)
    ph, pw = _round_up(height, m), _round_up(width, m)
    if ph * pw * per_px <= budget:
        return 0
    side = int(math.sqrt(budget / per_px)) // m * m
    floor = max(2 * m, _round_up(int(getattr(translator, "min_size", m) or m), m))
    return max(side, floor)


def _device_of(module: torch.nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be None, torch.float32, torch.float16 or torch.bfloat16 (got {dtype})")
    return torch.autocast(device_type=device.type, dtype=dtype)


def _prepare_channels(images: torch.Tensor, input_nc: int) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """NHWC [0, 1] -> (NCHW [-1, 1] with ``input_nc`` channels, alpha NHWC or None)."""
    c = images.shape[-1]
    alpha = None
    colour = images
    if c != input_nc and c in (2, 4):
        colour, alpha = images[..., : c - 1], images[..., c - 1:]
    cc = colour.shape[-1]
    x = colour.permute(0, 3, 1, 2)
    if cc != input_nc:
        if cc == 1 and input_nc == 3:
            x = x.expand(-1, 3, -1, -1)
        elif cc == 3 and input_nc == 1:
            x = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
        else:
            raise ValueError(f"the translator takes {input_nc} channel(s); cannot feed an image with {c} channels")
    return x * 2.0 - 1.0, alpha


def translate(translator: Translator, images: torch.Tensor, *, tile_size: int = 0, tile_overlap: int = 0,
              mode: str = "eval", seed: int = 0, resize_to_train_size: bool = False, batch_size: int = 4,
              device=None, dtype: Optional[torch.dtype] = None,
              progress: Optional[Callable[[int, int], None]] = None,
              check_interrupt: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """Translate an IMAGE batch ``[N, H, W, C]`` in [0, 1] and return ``[N, H, W, C']`` in [0, 1] on the
    images' device (C' = 3, or 4 when an alpha channel was passed through). See the module docstring.

    ``tile_size``: 0 = whole frame; otherwise the tile side in pixels (rounded up to the architecture's
    multiple). ``tile_overlap``: 0 = automatic; at most three quarters of the tile is used (larger values are
    clamped, so tiles advance by at least a quarter tile and the cost stays bounded). ``device``: where the network runs (the translator is moved
    there); None = where it is. ``dtype``: None/float32, or float16/bfloat16 under autocast.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor [N, H, W, C], got {type(images).__name__}")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ValueError(f"expected an IMAGE tensor [N, H, W, C], got shape {tuple(images.shape)}")
    n, h, w, c = images.shape
    if c not in (1, 2, 3, 4) and c != translator.input_nc:
        raise ValueError(f"images have {c} channels; supported are 1 (gray), 2 (gray + alpha), 3 (RGB) and "
                         f"4 (RGBA) (the translator takes {translator.input_nc})")
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES} (got {mode!r})")
    if h < 1 or w < 1:
        raise ValueError(f"empty image ({h}x{w})")
    batch_size = max(1, int(batch_size))
    out_device = images.device
    if device is not None:
        device = torch.device(device)
        if _device_of(translator) != device:
            translator.to(device)
    device = _device_of(translator)
    _autocast(device, dtype)  # validates dtype early
    translator.eval()
    # --- fast path (models/translator/speed.py): a cached inference copy ``net`` (BatchNorm folded in eval
    # mode, channels_last weights, native low-precision conv weights when calibrated accurate enough);
    # ``use_cl``: feed channels_last input; ``amp``: the dtype the copy really runs (None = float32)
    from .speed import inference_copy
    net, use_cl, amp = inference_copy(translator, device, dtype, mode)
    # --- end fast path

    m = int(getattr(translator, "size_multiple", 1) or 1)
    min_size = _round_up(max(int(getattr(translator, "min_size", m) or m), m), m)
    if resize_to_train_size:
        ts = int(translator.train_size or 256)
        fh = fw = ts
    else:
        fh, fw = h, w
    ph, pw = max(_round_up(fh, m), min_size), max(_round_up(fw, m), min_size)
    tiled = tile_size and tile_size > 0 and (ph > tile_size or pw > tile_size)
    if tiled:
        # at least two multiples, so neighbouring tiles can overlap (a U-Net-256 tiles in 512s)
        tile = max(_round_up(int(tile_size), m), min_size, 2 * m)
        overlap = int(tile_overlap) if tile_overlap and tile_overlap > 0 else auto_tile_overlap(translator, tile)
        # at most three quarters of the tile: tiles then advance by at least a quarter tile, so an overlap near
        # the tile size cannot multiply the tile count (a 200 px frame in 64 px tiles with a 2048 px overlap
        # would otherwise advance 4 px at a time: 1,156 tiles instead of at most 100)
        overlap = min(overlap, max(m, (tile * 3 // 4) // m * m))
        ay, ax = _Axis(ph, tile, overlap, m), _Axis(pw, tile, overlap, m)
    else:
        ay, ax = _Axis(ph, ph, 0, m), _Axis(pw, pw, 0, m)
    n_tiles = len(ay) * len(ax)
    staged = n_tiles > 1

    stages = _stages(net)
    levels = unet_levels(net) if staged else None
    with frame_context(net, FrameContext(mode=mode)):
        stat_counts = [frame_stat_layers(st) for st in stages]
        stream_steps = stream_passes(levels) if levels else 0
    layouts = None
    if levels:
        plan = [("stream", 0, 0)] * stream_steps
    elif staged and sum(stat_counts):
        shapes = _probe(net, stages, min_size, device)
        plan = _plan(stat_counts, shapes)
        if not (tile_overlap and tile_overlap > 0):
            # automatic overlap: each pass only needs the context of the stages it runs (a residual block's
            # pass, from the stored bottleneck, needs a few pixels, not the whole network's radius), so its
            # tiles overlap by twice that radius -- never more than the whole-network overlap
            layouts = []
            for _, first, last in plan:
                radius = _stages_radius(stages[first:last], shapes[first - 1][1] if first > 0 else 1.0)
                ov = min(overlap, max(m, _round_up(int(math.ceil(2 * radius)), m)))
                layouts.append((_Axis(ph, tile, ov, m), _Axis(pw, tile, ov, m)))
    else:
        plan = [("final", 0, len(stages))]
    if layouts is None:
        layouts = [(ay, ax)] * len(plan)
    chunks = math.ceil(n / batch_size)
    total = chunks * (len(plan) if levels else sum(len(a) * len(b) for a, b in layouts))
    done = [0]

    def tick():
        done[0] += 1
        if progress is not None:
            progress(min(done[0], total), total)

    result: Optional[torch.Tensor] = None   # filled chunk by chunk (no second copy of a long batch)
    for ci in range(chunks):
        lo, hi = ci * batch_size, min(n, (ci + 1) * batch_size)
        chunk = torch.nan_to_num(images[lo:hi].float(), nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)
        x, alpha = _prepare_channels(chunk, translator.input_nc)
        del chunk  # frame-sized; alpha, when present, keeps what it needs
        if resize_to_train_size:
            x = F.interpolate(x, size=(fh, fw), mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
        x, (top, left) = _pad_frame(x.contiguous(), ph, pw)
        if staged:
            # the frame, kept activations and the blended output live in host memory; the device holds tiles
            x = x.cpu()
        ctx = FrameContext(mode=mode, seed=int(seed), staged=staged,
                           image_index=torch.arange(lo, hi, dtype=torch.long))
        with frame_context(net, ctx), torch.inference_mode():
            if not staged:
                ctx.tile_origin, ctx.tile_size, ctx.owned = (0, 0), (ph, pw), (0, ph, 0, pw)
                if check_interrupt is not None:
                    check_interrupt()
                xt = x.to(device)
                if use_cl:
                    xt = xt.contiguous(memory_format=torch.channels_last)
                with _autocast(device, amp):
                    out = net(xt).float()
                tick()
            elif levels:
                frame, x = [x], None  # handed over, so the frame is freed once the first level has read it
                out = stream_unet(levels, frame, ctx, device=device, dtype=amp, pixels=ay.size * ax.size,
                                  autocast=lambda: _autocast(device, amp), use_cl=use_cl, tick=tick,
                                  check_interrupt=check_interrupt)
            else:
                src, src_stage = x, 0   # a frame-sized activation (on the images' device) and its stage
                out = None
                for (kind, first, last), (pay, pax) in zip(plan, layouts):
                    if first != src_stage:  # pragma: no cover - the plan advances explicitly
                        raise RuntimeError("inconsistent tiling plan")
                    produced = _tile_pass(stages[first:last], src, ph, pw, pay, pax, ctx, device, amp, use_cl,
                                        collect=(kind == "collect"), tick=tick, check_interrupt=check_interrupt)
                    if kind == "collect":
                        if not ctx.finish_pass():  # pragma: no cover - plan and layers agree
                            raise RuntimeError("statistics pass collected nothing")
                    elif kind == "advance":
                        src, src_stage = produced, last
                    else:
                        out = produced
        y = out[:, :, top:top + fh, left:left + fw]
        if resize_to_train_size:
            y = F.interpolate(y, size=(h, w), mode="bicubic", align_corners=False, antialias=True)
        y = y.to(out_device).add(1.0).mul_(0.5).clamp_(0.0, 1.0).permute(0, 2, 3, 1)
        if y.shape[-1] == 1:
            y = y.expand(-1, -1, -1, 3)
        if alpha is not None:
            y = torch.cat([y, alpha.to(y)], dim=-1)
        if result is None:
            result = torch.empty((n, h, w, y.shape[-1]), dtype=torch.float32, device=out_device)
        result[lo:hi] = y
        del out, y, x
    return result
