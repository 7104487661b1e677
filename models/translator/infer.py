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
  memory between passes, and run their residual blocks on it flat, one convolution at a time in row strips
  (``flat.py``), so every block convolution is computed once and a 9-block generator costs about 1.1
  forwards instead of ~25. The device holds one tile's (or strip's) activations at a time; the frame, kept
  activations and the blended output live in host memory.
* ``mode="eval"`` (default): BatchNorm on its running statistics, dropout off (deterministic).
  ``mode="reference"``: what the reference ``test.py`` does without ``--eval`` (batch size 1): BatchNorm on the
  statistics of each image, dropout active with a mask drawn from ``seed`` -- reproducible, independent of
  tiling and batch chunking, and the model's stored running statistics are never touched.
* **Exactness of tiling.** With an overlap that covers the receptive field, tiled output equals untiled
  output up to float round-off (ResNets, automatic overlap: each pass's tiles overlap by twice the radius
  of the layers it runs plus two output pixels and are cut mid-overlap without a blending ramp, so both
  sides of every cut are exact; residual blocks run flat in row strips with a halo). A U-Net's innermost layers see its whole ``2**depth`` window, so no tile overlap could
  make it exact: tiled U-Nets are instead run level by level in row strips of about ``tile_size**2``
  pixels (``stream.py``) -- exact in every mode, skip connections kept in host memory. Other
  architectures (e.g. written with torch's own layers) use the overlapping tiles.
* ``resize_to_train_size``: resize to the model's square training size (``translator.train_size``, 256 when
  unknown), translate, resize back (bicubic, antialiased) -- the reference's default preprocessing.
* ``batch_size`` images are processed at a time; ``dtype`` ``torch.float16``/``torch.bfloat16`` runs under
  autocast (normalisation statistics stay float32); on CUDA the network runs channels-last.
* ``progress(done, total)`` after every tile forward (stat passes included), every strip of a flat residual
  block or U-Net strip pass, and -- for whole frames -- after every convolution, so a long single frame
  reports progress too; ``check_interrupt()`` before every tile / strip -- it raises to cancel.
* :func:`plan_translation` (``plan.py``) computes the plan of a call without running it: whole frame or
  tiles, passes, the precision that really runs, progress steps, estimated peak memory; ``translate`` runs
  it with :func:`execute_plan`.
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F

from .base import Translator
from .layers import FrameContext, StopForward, frame_context
from .plan import (_Axis, _autocast, _pad_frame, activation_bytes_per_pixel, auto_tile_overlap,  # noqa: F401
                   auto_tile_size, plan_translation, TranslationPlan)
from .stream import stream_unet


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
                # the layout the network computes in, so storing and re-reading tiles are plain copies
                out = torch.zeros((h.shape[0], h.shape[1], oh, ow), dtype=torch.float32, device=src.device)
                if use_cl:
                    out = out.contiguous(memory_format=torch.channels_last)
            wy = ay.weights(iy, fh).to(h.device)
            wx = ax.weights(ix, fw).to(h.device)
            fy0, fx0 = int(round(sy * fh / th)), int(round(sx * fw / tw))
            out[:, :, fy0:fy0 + fh, fx0:fx0 + fw] += (h * (wy[:, None] * wx[None, :])).to(out.device)
            del h
            tick()
    return out


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


def _check_images(translator: Translator, images) -> torch.Tensor:
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
    if h < 1 or w < 1:
        raise ValueError(f"empty image ({h}x{w})")
    return images


def _whole_frame(plan: TranslationPlan, x: torch.Tensor, tick) -> torch.Tensor:
    """One forward of the whole (padded) frame; ``tick`` after every convolution (progress inside a long
    single frame), topped up to the plan's step count at the end."""
    net, device = plan.net, plan.device
    xt = x.to(device)
    if plan.use_cl:
        xt = xt.contiguous(memory_format=torch.channels_last)
    counted = [0]

    def hook(*_):
        if counted[0] < plan.conv_steps:
            counted[0] += 1
            tick()

    hooks = [mod.register_forward_hook(hook) for mod in net.modules()
             if isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    try:
        with _autocast(device, plan.dtype):
            out = net(xt).float()
    finally:
        for hk in hooks:
            hk.remove()
    while counted[0] < plan.conv_steps:
        counted[0] += 1
        tick()
    return out


def execute_plan(plan: TranslationPlan, images: torch.Tensor, *, seed: int = 0,
                 progress: Optional[Callable[[int, int], None]] = None,
                 check_interrupt: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """Run ``plan`` (from :func:`plan_translation` for ``images``' shape) on ``images`` ``[N, H, W, C]``."""
    from .flat import FlatBlockRunner

    n, h, w = plan.frames, plan.height, plan.width
    if tuple(images.shape[:3]) != (n, h, w):
        raise ValueError(f"the plan is for {n} frame(s) of {w}x{h}, got images of shape {tuple(images.shape)}")
    ph, pw = plan.padded
    fh, fw = plan.work_size
    net, device, amp, use_cl = plan.net, plan.device, plan.dtype, plan.use_cl
    stages, staged = plan.stages, plan.tiled
    out_device = images.device
    batch_size, total = plan.batch_size, plan.steps
    done = [0]

    def tick():
        done[0] += 1
        if progress is not None:
            progress(min(done[0], total), total)

    result: Optional[torch.Tensor] = None   # filled chunk by chunk (no second copy of a long batch)
    for ci in range(plan.chunks):
        lo, hi = ci * batch_size, min(n, (ci + 1) * batch_size)
        chunk = torch.nan_to_num(images[lo:hi].float(), nan=0.0, posinf=1.0, neginf=0.0).clamp_(0.0, 1.0)
        x, alpha = _prepare_channels(chunk, plan.input_nc)
        del chunk  # frame-sized; alpha, when present, keeps what it needs
        if plan.resize:
            x = F.interpolate(x, size=(fh, fw), mode="bicubic", align_corners=False, antialias=True).clamp(-1, 1)
        x, (top, left) = _pad_frame(x.contiguous(), ph, pw)
        if staged:
            # the frame, kept activations and the blended output live in host memory; the device holds tiles
            x = x.cpu()
        ctx = FrameContext(mode=plan.mode, seed=int(seed), staged=staged,
                           image_index=torch.arange(lo, hi, dtype=torch.long))
        with frame_context(net, ctx), torch.inference_mode():
            if not staged:
                ctx.tile_origin, ctx.tile_size, ctx.owned = (0, 0), (ph, pw), (0, ph, 0, pw)
                if check_interrupt is not None:
                    check_interrupt()
                out = _whole_frame(plan, x, tick)
            elif plan.levels:
                frame, x = [x], None  # handed over, so the frame is freed once the first level has read it
                out = stream_unet(plan.levels, frame, ctx, device=device, dtype=amp, pixels=plan.tile * plan.tile,
                                  autocast=lambda: _autocast(device, amp), use_cl=use_cl, tick=tick,
                                  check_interrupt=check_interrupt)
            else:
                src, src_stage = x, 0   # a frame-sized activation (on the images' device) and its stage
                out = None
                flat = FlatBlockRunner(ctx, device, (ph, pw), plan.strip_rows, lambda: _autocast(device, amp),
                                       use_cl, tick, check_interrupt)
                for p in plan.passes:
                    if p.first != src_stage:  # pragma: no cover - the plan advances explicitly
                        raise RuntimeError("inconsistent tiling plan")
                    if p.kind == "block":
                        src, src_stage = flat.run(stages[p.first], src), p.last
                        continue
                    pay, pax = p.axes
                    produced = _tile_pass(stages[p.first:p.last], src, ph, pw, pay, pax, ctx, device, amp, use_cl,
                                          collect=(p.kind == "collect"), tick=tick, check_interrupt=check_interrupt)
                    if p.kind == "collect":
                        if not ctx.finish_pass():  # pragma: no cover - plan and layers agree
                            raise RuntimeError("statistics pass collected nothing")
                    elif p.kind == "advance":
                        src, src_stage = produced, p.last
                    else:
                        out = produced
                del src
        y = out[:, :, top:top + fh, left:left + fw]
        if plan.resize:
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


def translate(translator: Translator, images: torch.Tensor, *, tile_size: int = 0, tile_overlap: int = 0,
              mode: str = "eval", seed: int = 0, resize_to_train_size: bool = False, batch_size: int = 4,
              device=None, dtype: Optional[torch.dtype] = None,
              progress: Optional[Callable[[int, int], None]] = None,
              check_interrupt: Optional[Callable[[], None]] = None,
              plan: Optional[TranslationPlan] = None) -> torch.Tensor:
    """Translate an IMAGE batch ``[N, H, W, C]`` in [0, 1] and return ``[N, H, W, C']`` in [0, 1] on the
    images' device (C' = 3, or 4 when an alpha channel was passed through). See the module docstring.

    ``tile_size``: 0 = whole frame; otherwise the tile side in pixels (rounded up to the architecture's
    multiple). ``tile_overlap``: 0 = automatic; at most three quarters of the tile is used (larger values are
    clamped, so tiles advance by at least a quarter tile). ``device``: where the network runs (the translator is
    moved there); None = where it is. ``dtype``: None/float32, or float16/bfloat16 under autocast. ``plan``: a
    :func:`plan_translation` made for these images and settings (then the other settings are not read again).
    """
    images = _check_images(translator, images)
    if plan is None:
        plan = plan_translation(translator, tuple(images.shape), tile_size=tile_size, tile_overlap=tile_overlap,
                                mode=mode, resize_to_train_size=resize_to_train_size, batch_size=batch_size,
                                device=device, dtype=dtype)
    return execute_plan(plan, images, seed=seed, progress=progress, check_interrupt=check_interrupt)
