"""Few-shot keyframe stylisation: learn a painted look from a few (frame, painted frame) pairs.

``train_from_keyframes`` trains a compact ``keyframe`` translator (``models/translator/arch_keyframe.py``: a
patch network, each output pixel a function of the 5x5 input patch around it) on random *pixels* of the
keyframe pairs, with an L1 + squared-error loss. Half of each batch is drawn where the painted target has
strong local contrast (contours, ink lines: where the errors are), the other half uniformly; masks restrict
both to painted regions. No pretrained network or download is involved. The result is an ordinary
:class:`~models.translator.base.Translator` in eval mode, so the Translate node (or ``models.translate``)
applies it to a whole shot and ``save_translator`` stores it as ``.safetensors``.

Cost: each step costs the same whatever the keyframe size (``batch_size`` pixels); the default
(``DEFAULT_STEPS`` steps of 4096 pixels) is about a minute of one CPU core, seconds on a GPU. Training on a CPU
uses one thread by default (option ``threads``): the per-step matrices are small, so a second thread gains
little on an idle machine and loses several-fold when the cores are shared (OpenMP threads waiting on each
other); rendering afterwards uses all threads as usual.

Determinism: the initial weights come from ``seed`` and the pixel positions from a ``torch.Generator`` seeded
with it, so the same inputs, seed, options and device give the same weights (on CUDA, cuDNN is put in
deterministic mode for the duration of the training).
"""
from __future__ import annotations

import math
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, Optional

import torch
import torch.nn.functional as F

from . import validate
from .translator.arch_keyframe import KeyframeTranslator
from .translator.base import Translator

__all__ = ["train_from_keyframes", "DEFAULT_OPTIONS", "DEFAULT_STEPS"]

DEFAULT_STEPS = 2000

# Training options (``**options`` of train_from_keyframes); architecture options go to KeyframeTranslator.
DEFAULT_OPTIONS: Dict[str, Any] = {
    "batch_size": 4096,      # pixels (with their patches) per step
    "lr": 1e-2,              # Adam learning rate (cosine-decayed to lr * final_lr_fraction)
    "final_lr_fraction": 0.02,
    "warmup_steps": 50,
    "l2_weight": 2.0,        # weight of an added squared-error term (MSE: soft, PSNR-optimal at ambiguous pixels)
    "input_noise": 0.0,      # std of Gaussian noise added to the input patches (robustness to grain)
    "edge_focus": 0.5,       # fraction of each batch drawn where the painted target has strong local contrast
    "max_seconds": None,     # stop early (at a step boundary) after this much training time
    "threads": 1,            # CPU threads while training (0: keep torch's setting); see train_from_keyframes
}
ARCH_OPTIONS = ("kernel", "ngf", "depth", "slope")


class KeyframeTrainingError(validate.InputError):
    """Invalid keyframe inputs (shapes, ranges, masks)."""


def _as_nchw(t: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise KeyframeTrainingError(f"{what} must be a torch tensor, got {type(t).__name__}")
    if t.ndim == 3:
        t = t.unsqueeze(0)
    if t.ndim != 4:
        raise KeyframeTrainingError(f"{what} must be NCHW (got shape {tuple(t.shape)})")
    if not torch.is_floating_point(t):
        raise KeyframeTrainingError(f"{what} must be a float tensor in [-1, 1]")
    return t


def _prepare_masks(masks: Optional[torch.Tensor], n: int, h: int, w: int) -> Optional[torch.Tensor]:
    if masks is None:
        return None
    m = masks.detach().float().cpu()
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[:, None]
    elif m.ndim == 4 and m.shape[1] != 1:
        if m.shape[-1] == 1:      # N,H,W,1
            m = m.permute(0, 3, 1, 2)
        else:
            m = m.mean(dim=1, keepdim=True)
    if m.shape[-2:] != (h, w):
        m = F.interpolate(m, size=(h, w), mode="bilinear", align_corners=False)
    if m.shape[0] == 1 and n > 1:
        m = m.expand(n, -1, -1, -1)
    if m.shape[0] != n:
        raise KeyframeTrainingError(f"got {m.shape[0]} masks for {n} keyframes")
    m = m.clamp(0, 1)
    if float(m.sum()) < 1.0:
        raise KeyframeTrainingError("the masks are empty: paint at least part of one keyframe")
    return m.contiguous()


@contextmanager
def _deterministic(device: torch.device) -> Iterator[None]:
    if device.type != "cuda":
        yield
        return
    old = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old


def _contrast(t: torch.Tensor) -> torch.Tensor:
    """Local contrast of painted targets (N,C,H,W -> N,1,H,W): max abs difference to the 4 neighbours."""
    p = F.pad(t, (1, 1, 1, 1), mode="replicate")
    c = torch.zeros_like(t[:, :1])
    for dy, dx in ((0, 1), (2, 1), (1, 0), (1, 2)):
        c = torch.maximum(c, (p[:, :, dy:dy + t.shape[2], dx:dx + t.shape[3]] - t).abs().amax(1, keepdim=True))
    return c


def train_from_keyframes(inputs: torch.Tensor, targets: torch.Tensor, *, steps: int = DEFAULT_STEPS,
                         seed: int = 0, masks: Optional[torch.Tensor] = None,
                         progress: Optional[Callable[[int, int, float], None]] = None,
                         check_interrupt: Optional[Callable[[], None]] = None,
                         device: Optional[torch.device | str] = None, **options: Any) -> Translator:
    """Train a ``keyframe`` translator that maps ``inputs`` to ``targets``.

    inputs, targets: NCHW float tensors in [-1, 1], the same N, H and W (a few keyframes and their painted
    versions; channels may differ, e.g. RGB in, RGB out). masks: optional N1HW / NHW (or one mask for all
    keyframes) in [0, 1]; training pixels are drawn in proportion to the mask, so only painted (mask > 0)
    pixels count. steps: optimisation steps (``DEFAULT_STEPS`` trains in about a minute on one CPU core; each step costs
    the same whatever the keyframe size). progress(step, steps, loss) is called after every step and
    check_interrupt() before every step (raise from it to cancel; nothing is returned then). device: where to
    train (default: CUDA when available, else CPU). options: see ``DEFAULT_OPTIONS`` plus the architecture
    options kernel, ngf, depth, slope (``KeyframeTranslator``). Returns the translator in eval mode on
    ``device``, with ``requires_grad`` off.
    """
    steps = int(steps)
    if steps < 1:
        raise KeyframeTrainingError("steps must be >= 1")
    unknown = set(options) - set(DEFAULT_OPTIONS) - set(ARCH_OPTIONS)
    if unknown:
        raise KeyframeTrainingError(f"unknown keyframe training options: {', '.join(sorted(unknown))}")
    opts = {**DEFAULT_OPTIONS, **{k: v for k, v in options.items() if k in DEFAULT_OPTIONS}}
    arch_opts = {k: v for k, v in options.items() if k in ARCH_OPTIONS}

    x = _as_nchw(inputs, "inputs").detach().float().cpu()    # sampling tables live on the CPU
    y = _as_nchw(targets, "targets").detach().float().cpu()
    if x.shape[0] != y.shape[0] or x.shape[-2:] != y.shape[-2:]:
        raise KeyframeTrainingError(
            f"inputs {tuple(x.shape)} and targets {tuple(y.shape)} must have the same count and size")
    n, _, h, w = x.shape
    # before step 1: NaN/inf pixels (e.g. a float TIFF) would train a model whose weights are all NaN
    for t, what in ((x, "keyframes"), (y, "painted keyframes"), (masks, "mask")):
        if isinstance(t, torch.Tensor):
            try:
                validate.check_image_finite(t.detach().cpu() if t is masks else t, what,
                                            node="keyframe training")
            except validate.InputError as e:
                raise KeyframeTrainingError(str(e)) from None
    m = _prepare_masks(masks, n, h, w)

    if device is None:
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        model = KeyframeTranslator(input_nc=x.shape[1], output_nc=y.shape[1], **arch_opts)
    model.name = "keyframe"
    batch = max(1, int(opts["batch_size"]))

    # where pixels are drawn from: uniformly (or in proportion to the mask), and a fraction `edge_focus` of
    # each batch in proportion to the target's local contrast (contours and ink lines are where errors are)
    base = torch.ones(n, 1, h, w, dtype=torch.float64) if m is None else m.double()
    focus = min(max(float(opts["edge_focus"]), 0.0), 1.0)
    cdfs = []
    for weights in (base, base * _contrast(y).double()):
        cdf = torch.cumsum(weights.reshape(-1), 0)
        cdfs.append(cdf / cdf[-1] if float(cdf[-1]) > 0 else None)
    if cdfs[1] is None:
        focus = 0.0
    n_focus = int(round(batch * focus))

    model = model.to(device).train()
    with torch.no_grad():
        padded, edges = model.pixel_inputs(x.to(device))
    yd = y.to(device)
    xd = x.to(device)
    c_in, c_out = x.shape[1], y.shape[1]
    k = model.kernel
    hp, wp = padded.shape[-2:]
    # flat offsets of a pixel's patch in the padded keyframes, in F.unfold order (channel, row, column)
    ch = torch.arange(c_in).view(-1, 1, 1) * (hp * wp)
    patch_off = (ch + torch.arange(k).view(1, -1, 1) * wp + torch.arange(k).view(1, 1, -1)).reshape(-1).to(device)
    edge_off = (torch.arange(edges.shape[1]) * (h * w)).to(device)
    in_off = (torch.arange(c_in) * (h * w)).to(device)
    out_off = (torch.arange(c_out) * (h * w)).to(device)
    padded_flat, edges_flat = padded.reshape(-1), edges.reshape(-1)
    x_flat, y_flat = xd.reshape(-1), yd.reshape(-1)

    gen = torch.Generator().manual_seed(int(seed) + 0x5EED)
    lr = float(opts["lr"])
    optim = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.99))
    warm = max(0, int(opts["warmup_steps"]))
    final = float(opts["final_lr_fraction"])
    max_seconds = opts["max_seconds"]
    l2_weight = float(opts["l2_weight"])
    input_noise = float(opts["input_noise"])

    threads = int(opts["threads"] or 0)
    old_threads = torch.get_num_threads()
    if device.type == "cpu" and threads > 0:
        torch.set_num_threads(threads)
    try:
        with _deterministic(device):
            t0 = time.perf_counter()
            for step in range(steps):
                if check_interrupt is not None:
                    check_interrupt()
                if max_seconds is not None and time.perf_counter() - t0 > float(max_seconds):
                    break
                # learning-rate schedule: linear warm-up, cosine decay
                if step < warm:
                    f = (step + 1) / warm
                else:
                    p = (step - warm) / max(1, steps - warm - 1)
                    f = final + (1 - final) * 0.5 * (1 + math.cos(math.pi * min(1.0, p)))
                for grp in optim.param_groups:
                    grp["lr"] = lr * f

                u = torch.rand(batch, generator=gen, dtype=torch.float64)
                idx = torch.searchsorted(cdfs[0], u[n_focus:])
                if n_focus:
                    idx = torch.cat([torch.searchsorted(cdfs[1], u[:n_focus]), idx])
                idx = idx.clamp(max=n * h * w - 1)
                kf, rem = idx // (h * w), idx % (h * w)
                py, px = rem // w, rem % w
                pbase = (kf * (c_in * hp * wp) + py * wp + px).to(device)
                patches = padded_flat[pbase[:, None] + patch_off[None]]
                pix = (py * w + px).to(device)
                kd = kf.to(device)
                e = edges_flat[(kd * (edges.shape[1] * h * w) + pix)[:, None] + edge_off[None]]
                centre = x_flat[(kd * (c_in * h * w) + pix)[:, None] + in_off[None]]
                target = y_flat[(kd * (c_out * h * w) + pix)[:, None] + out_off[None]]
                if input_noise:
                    patches = patches + input_noise * torch.randn(patches.shape, generator=gen).to(device)
                pred = model.forward_pixels(patches, e, centre)
                diff = pred - target
                loss = diff.abs().mean()
                if l2_weight:
                    loss = loss + l2_weight * (diff * diff).mean()
                if not bool(torch.isfinite(loss.detach())):
                    raise KeyframeTrainingError(
                        f"keyframe training: the loss became {float(loss.detach())} at step {step + 1} of {steps}; "
                        f"training stopped and no model was returned (lower the learning rate or check the "
                        f"keyframes for extreme values)")
                optim.zero_grad(set_to_none=True)
                loss.backward()
                optim.step()
                if progress is not None:
                    progress(step + 1, steps, float(loss.detach()))
    finally:
        torch.set_num_threads(old_threads)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:  # the last update could still have overflowed
        validate.check_tensors_finite(model.state_dict(), "keyframe training")
    except validate.InputError as e:
        raise KeyframeTrainingError(str(e)) from None
    return model
