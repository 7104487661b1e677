"""Temporal stability helpers (models.temporal): the flicker measure and the flicker-reducing blend."""
from __future__ import annotations

import pytest
import torch

import models
from models.shots import make_demo_shot
from models.temporal import flicker, temporal_blend


@pytest.fixture(scope="module")
def static_shot():
    # locked-off camera: the background never changes, the shapes move
    frames, truth = make_demo_shot(10, 96, seed=3, pan=0.0)
    return frames, truth


def noisy(truth: torch.Tensor, amount: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (truth + amount * torch.randn(truth.shape, generator=g)).clamp(-1, 1)


def test_public_names():
    assert models.flicker is flicker and models.temporal_blend is temporal_blend


def test_flicker_of_identity_is_one_and_noise_raises_it(static_shot):
    frames, truth = static_shot
    assert flicker(frames, frames) == pytest.approx(1.0)
    clean = flicker(truth, frames)
    assert flicker(noisy(truth, 0.1), frames) > clean * 1.5
    # a constant output does not flicker at all; a sequence scaled by 2 flickers twice as much
    assert flicker(torch.zeros_like(frames), frames) == 0.0
    assert flicker(frames * 2, frames) == pytest.approx(2.0, rel=1e-5)


def test_flicker_layouts_and_errors(static_shot):
    frames, truth = static_shot
    nhwc = flicker(truth.permute(0, 2, 3, 1), frames.permute(0, 2, 3, 1))
    assert nhwc == pytest.approx(flicker(truth, frames), rel=1e-6)
    still = frames[:1].expand(4, -1, -1, -1)
    assert flicker(still, still) == 0.0
    assert flicker(truth[:4], still) == float("inf")
    with pytest.raises(ValueError):
        flicker(truth[:1], frames[:1])
    with pytest.raises(ValueError):
        flicker(truth[:3], frames[:4])


def test_temporal_blend_reduces_flicker_without_ghosting(static_shot):
    frames, truth = static_shot
    render = noisy(truth, 0.04, seed=1)              # a render whose static areas shimmer frame to frame
    blended = temporal_blend(render, frames, strength=0.8, threshold=0.02)
    assert blended.shape == render.shape
    f_truth, f_render, f_blend = flicker(truth, frames), flicker(render, frames), flicker(blended, frames)
    # most of the flicker the noise added (over the clean render's own) is gone
    assert f_blend - f_truth < 0.4 * (f_render - f_truth), (f_truth, f_render, f_blend)

    change = (frames[1:] - frames[:-1]).abs().mean(1)            # N-1, H, W
    moving = torch.cat([torch.zeros_like(change[:1]), change])[:, None].expand_as(render) > 0.02
    static = ~torch.cat([torch.zeros_like(change[:1]), change])[:, None].expand_as(render).gt(0)
    static[0] = False
    assert moving.sum() > 1000 and static.sum() > 1000
    # moving pixels keep the current frame's render: no trail of the previous position (no ghosting)
    err_render = (render - truth).abs()[moving].mean()
    err_blend = (blended - truth).abs()[moving].mean()
    assert err_blend <= err_render * 1.02, (err_render, err_blend)
    assert torch.equal(blended[moving], render[moving])
    # static pixels converge toward the clean value (temporal denoising)
    assert (blended - truth).abs()[static].mean() < 0.8 * (render - truth).abs()[static].mean()


def test_temporal_blend_without_noise_leaves_a_clean_render_alone(static_shot):
    frames, truth = static_shot
    blended = temporal_blend(truth, frames)
    change = (frames[1:] - frames[:-1]).abs().mean(1)
    still = torch.cat([torch.zeros_like(change[:1]), change])[:, None].expand_as(truth) == 0
    moving = torch.cat([torch.zeros_like(change[:1]), change])[:, None].expand_as(truth) > 0.02
    # a clean render is identical where it moves and barely changed overall: only where a sub-threshold input
    # change flipped the posterised look (antialiased edge tails) does the blend smooth the jump over a few frames
    assert ((blended - truth)[still].abs() > 0.05).float().mean() < 0.01
    assert torch.equal(blended[moving], truth[moving])
    assert (blended - truth).abs().mean() < 0.003


def test_temporal_blend_layouts_and_arguments(static_shot):
    frames, truth = static_shot
    render = noisy(truth, 0.04)
    a = temporal_blend(render, frames, 0.7, 0.03)
    b = temporal_blend(render.permute(0, 2, 3, 1), frames.permute(0, 2, 3, 1), 0.7, 0.03)
    assert torch.allclose(a, b.permute(0, 3, 1, 2), atol=1e-6)
    assert torch.equal(temporal_blend(render, frames, strength=0.0), render)
    with pytest.raises(ValueError):
        temporal_blend(render, frames, strength=1.0)
    with pytest.raises(ValueError):
        temporal_blend(render, frames, threshold=0.0)
    with pytest.raises(ValueError):
        temporal_blend(render, frames[:, :, :50])
