"""Temporal stability of rendered shots: a flicker measure and a flicker-reducing blend.

Flicker
    ``flicker(outputs, inputs)`` = (sum over frames and pixels of |out[t] - out[t-1]|) /
    (sum over frames and pixels of |in[t] - in[t-1]|), i.e. the mean frame-to-frame change of the output
    relative to the mean frame-to-frame change of the input. An output that changes exactly as much as its input
    (the identity) scores 1; a stylisation that adds per-frame noise scores higher; one that amplifies contrast
    scores higher too, so compare a render's figure with its ground truth's (or another render's), not with 1.
    Values are in the tensors' own units, both sequences are taken over all channels; the outputs may have a
    different channel count than the inputs.

Temporal blend
    ``temporal_blend(frames_out, frames_in, strength, threshold)`` walks the shot in order and, per pixel,
    blends the current output toward the previous *blended* output where the input did not change (neither
    since the previous frame nor, by slow drift, since the frames the blended value was built from: the change
    is max(|in[t] - in[t-1]|, |in[t] - blended input|), averaged over channels and max-pooled over a 3x3
    neighbourhood), and keeps the current output where it did. Static regions then
    converge to a stable value (flicker removed), while moving regions are exactly the per-frame render (no
    ghosting trails). The blend weight falls smoothly from ``strength`` (no input change) to 0 (change >=
    ``threshold``), so there is no visible seam at the edge of moving regions.

Layouts: NCHW (engine) or NHWC (ComfyUI IMAGE) tensors of a sequence, N = frames. The layout is detected
(NHWC when the last dimension is 1, 3 or 4 and the second is not) or given with ``channels_last``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

__all__ = ["flicker", "temporal_blend"]


def _is_nhwc(t: torch.Tensor, channels_last: Optional[bool]) -> bool:
    if channels_last is not None:
        return bool(channels_last)
    return t.shape[-1] in (1, 3, 4) and t.shape[1] not in (1, 3, 4)


def _check_seq(t: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor) or t.ndim != 4:
        raise ValueError(f"{what} must be a 4-D tensor of frames (NCHW or NHWC)")
    return t


def flicker(outputs: torch.Tensor, inputs: torch.Tensor, *, eps: float = 1e-8) -> float:
    """Mean frame-to-frame change of ``outputs`` divided by that of ``inputs`` (see the module docstring).

    Needs at least 2 frames; returns ``inf`` when the output changes but the input never does, 0 when neither
    changes."""
    outputs = _check_seq(outputs, "outputs").float()
    inputs = _check_seq(inputs, "inputs").float()
    if outputs.shape[0] != inputs.shape[0]:
        raise ValueError(f"outputs have {outputs.shape[0]} frames but inputs {inputs.shape[0]}")
    if outputs.shape[0] < 2:
        raise ValueError("flicker needs at least 2 frames")
    d_out = (outputs[1:] - outputs[:-1]).abs().mean().item()
    d_in = (inputs[1:] - inputs[:-1]).abs().mean().item()
    if d_in <= eps:
        return 0.0 if d_out <= eps else float("inf")
    return d_out / d_in


def temporal_blend(frames_out: torch.Tensor, frames_in: torch.Tensor, strength: float = 0.8,
                   threshold: float = 0.02, *, channels_last: Optional[bool] = None,
                   spread: int = 1) -> torch.Tensor:
    """Reduce flicker on static regions without ghosting on moving ones (see the module docstring).

    frames_out: the rendered shot; frames_in: the source frames (same N, H, W; any channel counts; same
    layout). strength in [0, 1): how much of the previous blended output a fully static pixel keeps (0 turns
    the blend off; 0.8 averages over about 5 frames). threshold: input change (mean over channels, in the
    tensors' units; 0.02 is 1% of the [-1, 1] range) at and above which a pixel counts as moving.
    spread: the input-change map is max-pooled over a (2 * spread + 1)^2 window, so pixels right next to a
    moving edge count as moving too. Returns a new tensor like ``frames_out``."""
    frames_out = _check_seq(frames_out, "frames_out")
    frames_in = _check_seq(frames_in, "frames_in")
    if not 0.0 <= float(strength) < 1.0:
        raise ValueError("strength must be in [0, 1)")
    if float(threshold) <= 0:
        raise ValueError("threshold must be > 0")
    nhwc = _is_nhwc(frames_out, channels_last)
    o = frames_out.permute(0, 3, 1, 2) if nhwc else frames_out
    i = frames_in.permute(0, 3, 1, 2) if nhwc else frames_in
    if o.shape[0] != i.shape[0] or o.shape[-2:] != i.shape[-2:]:
        raise ValueError(f"frames_out {tuple(o.shape)} and frames_in {tuple(i.shape)} (as NCHW) must match in "
                         f"frame count and size")
    if strength == 0 or o.shape[0] < 2:
        return frames_out.clone()
    result = torch.empty_like(o)
    prev = o[0].float()
    ref = i[0].float()          # the input the blended state stands for (blended like the output)
    result[0] = o[0]
    for t in range(1, o.shape[0]):
        cur_in = i[t].float()
        # a pixel counts as changed when its input moved since the previous frame, or drifted (slowly, below
        # the threshold per frame) away from the input the blended state was built from
        change = torch.maximum((cur_in - i[t - 1].float()).abs(), (cur_in - ref).abs()).mean(0, keepdim=True)[None]
        if spread > 0:
            change = F.max_pool2d(change, 2 * spread + 1, stride=1, padding=spread)
        weight = float(strength) * (1.0 - change[0] / float(threshold)).clamp(0.0, 1.0)     # 1,H,W
        cur = o[t].float()
        prev = cur + weight * (prev - cur)
        ref = cur_in + weight * (ref - cur_in)
        result[t] = prev.to(o.dtype)
    return result.permute(0, 2, 3, 1) if nhwc else result
