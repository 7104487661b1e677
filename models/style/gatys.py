"""Optimisation-based style transfer (Gatys, Ecker & Bethge 2016) on any :class:`VGG19Features`.

The image itself is optimised (L-BFGS or Adam) to minimise

    content_weight * sum_l  |F_l(x) - F_l(c)|^2 / |F_l(c)|^2
  + style_weight   * sum_l w_l |G_l(x) - G_l(s)|^2 / |G_l(s)|^2
  + tv_weight      * total_variation(x)

with Gram matrices ``G = F F^T / (C H W)``. Content and style terms are relative errors (divided by the
target's mean square), so the default weights mean the same thing whatever the input convention of the
VGG weights (caffe activations are ~100x larger than torchvision's). Coarse-to-fine: with ``scales > 1`` the
image is first optimised at 1/2^(scales-1) of the size, upsampled and refined.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .base import prepared
from .vgg import VGG19Features

Progress = Optional[Callable[[int, int, Optional[float]], None]]
Interrupt = Optional[Callable[[], None]]

DEFAULT_STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
DEFAULT_CONTENT_LAYERS = ("relu4_2",)
RANGE_WEIGHT = 1e3  # L-BFGS is unconstrained: keep the optimised image inside [0, 1] (Adam clamps instead)


@dataclass
class GatysOptions:
    """Knobs of :func:`gatys_transfer` (all optional)."""

    content_layers: Sequence[str] = DEFAULT_CONTENT_LAYERS
    style_layers: Sequence[str] = DEFAULT_STYLE_LAYERS
    style_layer_weights: Optional[Sequence[float]] = None  # default: equal, normalised to sum 1
    content_weight: float = 1.0
    style_weight: float = 100.0
    tv_weight: float = 1.0
    optimizer: str = "lbfgs"            # "lbfgs" | "adam"
    lr: Optional[float] = None          # default 1.0 for L-BFGS, 0.02 for Adam (pixel values in [0, 1])
    init: str = "content"               # "content" | "noise" | "style"
    pool: Optional[str] = None          # None: the network's default; "avg" as Gatys et al. suggest
    scales: int = 1                     # coarse-to-fine levels (each halves the size)
    min_size: int = 64                  # coarsest level's long side is not made smaller than this
    style_scale: float = 1.0            # style image long side relative to the content's at each level

    def validate(self) -> "GatysOptions":
        if self.optimizer not in ("lbfgs", "adam"):
            raise ValueError(f"optimizer must be 'lbfgs' or 'adam', got {self.optimizer!r}")
        if self.init not in ("content", "noise", "style"):
            raise ValueError(f"init must be 'content', 'noise' or 'style', got {self.init!r}")
        if self.pool not in (None, "max", "avg"):
            raise ValueError(f"pool must be None, 'max' or 'avg', got {self.pool!r}")
        if self.scales < 1 or not self.style_layers:
            raise ValueError("scales must be >= 1 and style_layers non-empty")
        if self.style_layer_weights is not None and len(self.style_layer_weights) != len(self.style_layers):
            raise ValueError("style_layer_weights needs one weight per style layer")
        return self


def gram(feat: torch.Tensor) -> torch.Tensor:
    """Gram matrices ``[N, C, C]`` of ``[N, C, H, W]`` features, normalised by ``C * H * W``."""
    n, c, h, w = feat.shape
    f = feat.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of horizontally and vertically adjacent pixels."""
    return (x[..., 1:, :] - x[..., :-1, :]).pow(2).mean() + (x[..., :, 1:] - x[..., :, :-1]).pow(2).mean()


def resize_long_side(x: torch.Tensor, long_side: int) -> torch.Tensor:
    """Resize NCHW so that max(H, W) == ``long_side`` (aspect kept; antialiased when shrinking)."""
    h, w = x.shape[-2:]
    s = long_side / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    if size == (h, w):
        return x
    return F.interpolate(x, size=size, mode="bicubic" if s > 1 else "bilinear", align_corners=False,
                         antialias=s < 1).clamp(0, 1)


class StyleLoss:
    """Targets (content features, style Grams) for one frame at one scale, and the loss of an image."""

    def __init__(self, net: VGG19Features, content: torch.Tensor, style: torch.Tensor, opts: GatysOptions):
        self.net, self.opts = net, opts
        self.layers = list(dict.fromkeys(list(opts.content_layers) + list(opts.style_layers)))
        weights = list(opts.style_layer_weights) if opts.style_layer_weights is not None else [1.0] * len(opts.style_layers)
        total = sum(weights)
        self.style_w = [w / total for w in weights]
        with torch.no_grad():
            fc = net(content, opts.content_layers, pool=opts.pool)
            fs = net(style, opts.style_layers, pool=opts.pool)
            self.content_t = {l: fc[l] for l in opts.content_layers}
            self.gram_t = {l: gram(fs[l]) for l in opts.style_layers}
            self.content_n = {l: t.pow(2).mean() + 1e-8 for l, t in self.content_t.items()}
            self.gram_n = {l: g.pow(2).mean() + 1e-12 for l, g in self.gram_t.items()}

    def parts(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        feats = self.net(x, self.layers, pool=self.opts.pool)
        content = sum((feats[l] - t).pow(2).mean() / self.content_n[l] for l, t in self.content_t.items())
        style = sum(w * (gram(feats[l]) - self.gram_t[l]).pow(2).mean() / self.gram_n[l]
                    for w, l in zip(self.style_w, self.opts.style_layers))
        return {"content": content, "style": style, "tv": total_variation(x)}

    def __call__(self, x: torch.Tensor, range_weight: float = 0.0) -> Tuple[torch.Tensor, Dict[str, torch.Tensor]]:
        """Total loss of ``x``. With ``range_weight`` > 0 the terms are evaluated on ``x`` clamped to [0, 1] (so the
        optimum is that of the image actually returned) plus ``range_weight`` x the mean squared excess outside
        [0, 1], which pulls stray pixels back where the clamp would otherwise freeze them."""
        if range_weight > 0:
            inside = x.clamp(0, 1)
            p = self.parts(inside)
            p["range"] = (x - inside).pow(2).mean()
        else:
            p = self.parts(x)
            p["range"] = x.new_zeros(())
        o = self.opts
        total = o.content_weight * p["content"] + o.style_weight * p["style"] + o.tv_weight * p["tv"]
        return total + range_weight * p["range"], p


def _scale_sizes(h: int, w: int, opts: GatysOptions) -> List[int]:
    long = max(h, w)
    sizes = [max(min(opts.min_size, long), round(long / 2 ** (opts.scales - 1 - i))) for i in range(opts.scales)]
    return sorted(set(sizes))


def gatys_transfer(content: torch.Tensor, style: torch.Tensor, network: VGG19Features, *,
                   iterations: int = 300, options: Optional[GatysOptions] = None, seed: int = 0,
                   progress: Progress = None, check_interrupt: Interrupt = None, step_offset: int = 0,
                   total_steps: Optional[int] = None, history: Optional[List[Dict[str, float]]] = None) -> torch.Tensor:
    """Stylise ONE image. ``content`` ``[1, 3, H, W]`` and ``style`` ``[1, 3, h, w]`` RGB [0, 1] on the network's
    device; returns ``[1, 3, H, W]`` in [0, 1]. ``iterations`` per scale; ``progress(step, total, loss)`` and
    ``check_interrupt()`` run after each iteration (for L-BFGS: before each function evaluation, so an
    interrupt lands within one line search; ``step_offset``/``total_steps`` let callers count across frames). ``history`` (a list) receives ``{"loss", "content", "style", "tv"}`` per iteration.
    Deterministic for a ``seed`` (noise init) on a given device.
    """
    opts = (options or GatysOptions()).validate()
    if int(iterations) < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    iterations = int(iterations)
    device = network.device
    h, w = content.shape[-2:]
    sizes = _scale_sizes(h, w, opts)
    total = total_steps if total_steps is not None else iterations * len(sizes)
    step = step_offset
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    with torch.inference_mode(False), torch.enable_grad():
        net = prepared(network, device)
        content = content.detach().clone().to(device)
        style = style.detach().clone().to(device)
        x: Optional[torch.Tensor] = None
        for level, size in enumerate(sizes):
            c = resize_long_side(content, size) if size != max(h, w) else content
            s = resize_long_side(style, max(1, round(size * opts.style_scale)))
            loss_fn = StyleLoss(net, c, s, opts)
            if x is None:
                if opts.init == "content":
                    x0 = c.clone()
                elif opts.init == "style":
                    x0 = F.interpolate(s, size=c.shape[-2:], mode="bilinear", align_corners=False)
                else:
                    x0 = torch.rand(c.shape, generator=gen).to(device)
            else:
                x0 = F.interpolate(x.detach(), size=c.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
            x = x0.detach().clone().requires_grad_(True)
            last: Dict[str, float] = {}
            done = [0]  # iterations reported for this level

            def report(k: int) -> None:
                nonlocal step
                while done[0] < k:
                    done[0] += 1
                    step += 1
                    if history is not None:
                        history.append(dict(last))
                    if progress is not None:
                        progress(step, total, last.get("loss"))

            if opts.optimizer == "lbfgs":
                # one step() call runs all iterations so L-BFGS keeps its curvature pairs and line-search state
                # (calling it once per iteration with max_iter=1 stalls); progress is reported from the closure
                # whenever L-BFGS starts a new iteration.
                optim = torch.optim.LBFGS([x], lr=opts.lr or 1.0, max_iter=iterations, max_eval=iterations * 3,
                                          history_size=50, tolerance_grad=1e-9, tolerance_change=1e-12,
                                          line_search_fn="strong_wolfe")
                state = optim.state[x]

                def closure():
                    report(min(state.get("n_iter", 0) - 1, iterations))
                    if check_interrupt is not None:
                        check_interrupt()
                    optim.zero_grad(set_to_none=True)
                    loss, parts = loss_fn(x, RANGE_WEIGHT)
                    loss.backward()
                    last.update(loss=float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()})
                    return loss

                optim.step(closure)
                report(iterations)  # the last iteration, and any skipped by early convergence
            else:
                optim = torch.optim.Adam([x], lr=opts.lr or 0.02)
                for i in range(iterations):
                    optim.zero_grad(set_to_none=True)
                    loss, parts = loss_fn(x)
                    loss.backward()
                    last.update(loss=float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()})
                    optim.step()
                    with torch.no_grad():
                        x.clamp_(0, 1)
                    report(i + 1)
                    if check_interrupt is not None:
                        check_interrupt()
        return x.detach().clamp(0, 1)
