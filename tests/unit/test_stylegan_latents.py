"""Latent utilities: seeds, layer specs, style mixing, interpolation, class vectors, projection."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from models.stylegan import (StyleGAN2Generator, class_to_c, interpolate_latents, layer_presets, parse_layers,
                             parse_seeds, project_image, seeds_to_z, slerp, ssim, style_mix)


def test_seeds_to_z_equals_numpy():
    z = seeds_to_z("1,3,5-7", 512)
    assert z.shape == (5, 512) and z.dtype == torch.float32
    for row, seed in zip(z, [1, 3, 5, 6, 7]):
        assert torch.equal(row, torch.from_numpy(np.random.RandomState(seed).randn(512)).float())
    assert torch.equal(seeds_to_z(7, 8), seeds_to_z([7], 8))
    assert parse_seeds(" 2, 0-1 ") == [2, 0, 1]
    for bad in ("", "a", "5-3", "-1", str(2 ** 32)):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def test_parse_layers_presets_scale_with_num_ws():
    p18 = layer_presets(18)
    assert p18["coarse"] == [0, 1, 2, 3] and p18["middle"] == [4, 5, 6, 7] and p18["fine"] == list(range(8, 18))
    for num_ws in (8, 10, 12, 14, 16, 18):  # SG2 32px..1024px and SG3's 16
        p = layer_presets(num_ws)
        together = p["coarse"] + p["middle"] + p["fine"]
        assert together == list(range(num_ws)) and all(p[k] for k in ("coarse", "middle", "fine"))
        assert parse_layers("fine", num_ws)[-1] == num_ws - 1
    assert parse_layers("0-6", 18) == list(range(7))
    assert parse_layers("0,2, 4", 10) == [0, 2, 4]
    assert parse_layers("coarse,9", 10) == [0, 1, 9]
    assert parse_layers([3, 1, 1], 10) == [1, 3]
    with pytest.raises(ValueError):
        parse_layers("0-17", 16)  # SG3 has 16 ws: index 17 does not exist
    with pytest.raises(ValueError):
        parse_layers("sideways", 16)


def test_style_mix_equals_manual_assembly():
    torch.manual_seed(0)
    rows, cols = torch.randn(3, 10, 8), torch.randn(2, 10, 8)
    grid = style_mix(rows, cols, "0-6")
    assert grid.shape == (3, 2, 10, 8)
    for r in range(3):
        for c in range(2):
            w = rows[r].clone()
            w[[0, 1, 2, 3, 4, 5, 6]] = cols[c][[0, 1, 2, 3, 4, 5, 6]]
            assert torch.equal(grid[r, c], w)
    assert torch.equal(rows[0], rows[0].clone())  # inputs untouched
    fine = style_mix(rows, cols, "fine")
    assert torch.equal(fine[1, 0, :4], rows[1, :4]) and torch.equal(fine[1, 0, -1], cols[0, -1])


def test_style_mix_through_generator_matches_reference_recipe():
    """style_mixing.py recipe: truncate all, copy the column's ws in at the layers, synthesize."""
    torch.manual_seed(0)
    G = StyleGAN2Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                           mapping_kwargs={"num_layers": 2}, synthesis_kwargs={"channel_base": 256, "channel_max": 16})
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        all_w = G.mapping(seeds_to_z([1, 2, 3], 16), None)
        w_avg = G.mapping.w_avg
        all_w = w_avg + (all_w - w_avg) * 0.7
        ws = G.mapping(seeds_to_z([1, 2, 3], 16), None, truncation_psi=0.7)
        assert torch.allclose(ws, all_w, atol=1e-6)
        grid = style_mix(ws[:2], ws[2:], "0-3")
        manual = all_w[1].clone()
        manual[[0, 1, 2, 3]] = all_w[2][[0, 1, 2, 3]]
        a = G.synthesis(grid[1, 0][None])
        b = G.synthesis(manual[None])
    assert torch.allclose(a, b, atol=1e-5)


def test_interpolation_endpoints_loop_and_easing():
    torch.manual_seed(0)
    keys = torch.randn(3, 6, 4)
    walk = interpolate_latents(keys, 12, space="w", loop=True)
    assert walk.shape == (12, 6, 4)
    assert torch.equal(walk[0], keys[0]) and torch.equal(walk[4], keys[1]) and torch.equal(walk[8], keys[2])
    # seamless: the step from the last frame back to frame 0 equals a regular step of the last segment
    step_last = walk[0] - walk[11]
    step_prev = walk[11] - walk[10]
    assert torch.allclose(step_last, step_prev, atol=1e-5)
    straight = interpolate_latents(keys, 9, space="w", loop=False)
    assert torch.equal(straight[0], keys[0]) and torch.equal(straight[-1], keys[-1]) and torch.equal(straight[4], keys[1])
    smooth = interpolate_latents(keys, 9, space="w", loop=False, easing="smooth")
    assert torch.equal(smooth[4], keys[1])
    # smooth easing slows down near keyframes
    assert (smooth[1] - smooth[0]).norm() < (straight[1] - straight[0]).norm()
    assert interpolate_latents(keys[:1], 5).shape == (5, 6, 4)


def test_z_slerp_walk():
    z = seeds_to_z([1, 2], 64)
    calls = []

    def mapping(zz):
        calls.append(zz.shape)
        return zz[:, None, :].repeat(1, 4, 1)

    walk = interpolate_latents(z, 8, space="z", loop=False, mapping=mapping)
    assert walk.shape == (8, 4, 64) and calls == [(8, 64)]
    assert torch.equal(walk[0, 0], z[0]) and torch.equal(walk[-1, 0], z[1])
    mid = slerp(z[0], z[1], 0.5)
    # slerp keeps the norm on the interpolated sphere; lerp would shrink it
    assert abs(mid.norm() - (z[0].norm() + z[1].norm()) / 2) < 1e-3
    assert torch.lerp(z[0], z[1], 0.5).norm() < mid.norm()
    zs = interpolate_latents(z, 4, space="z", easing="cosine")  # no mapping: the z walk itself
    assert zs.shape == (4, 64) and torch.equal(zs[0], z[0])
    with pytest.raises(ValueError, match="easing"):
        interpolate_latents(z, 4, space="z", easing="bouncy")


def test_class_to_c():
    class Fake:
        c_dim = 4

    c = class_to_c(Fake, 2, batch=3)
    assert c.shape == (3, 4) and torch.equal(c[:, 2], torch.ones(3)) and c.sum() == 3
    assert class_to_c(Fake, [0, 3]).argmax(1).tolist() == [0, 3]
    with pytest.raises(ValueError):
        class_to_c(Fake, 4)

    class Uncond:
        c_dim = 0

    assert class_to_c(Uncond, 0, batch=2).shape == (2, 0)


def test_ssim_identity_and_sensitivity():
    torch.manual_seed(0)
    a = torch.rand(2, 3, 16, 16) * 2 - 1
    assert torch.allclose(ssim(a, a), torch.ones(2), atol=1e-5)
    assert (ssim(a, a + 0.3 * torch.randn_like(a)) < 0.9).all()


def test_projection_reconstructs_generated_image():
    torch.manual_seed(0)
    G = StyleGAN2Generator(z_dim=32, c_dim=0, w_dim=32, img_resolution=16, img_channels=3,
                           mapping_kwargs={"num_layers": 2}, synthesis_kwargs={"channel_base": 256, "channel_max": 32})
    with torch.no_grad():
        G.mapping.w_avg.copy_(G.mapping(torch.randn(2000, 32), None)[:, 0].mean(0))
        target = G.synthesis(G.mapping(seeds_to_z([3, 4], 32), None, truncation_psi=0.7))
        start = G.synthesis(G.w_avg.reshape(1, 1, -1).repeat(2, G.num_ws, 1))
    seen = []
    res = project_image(G, target, steps=80, seed=0, lr=0.1, progress=lambda s, n, loss: seen.append((s, n)))
    assert seen[-1] == (80, 80) and len(res.losses) == 80
    assert res.ws.shape == (2, G.num_ws, 32) and res.image.shape == target.shape
    assert min(res.losses[-5:]) < 0.25 * res.losses[0]
    err = (res.image - target).abs().mean()
    assert err < 0.3 * (start - target).abs().mean()
    # deterministic for a seed
    again = project_image(G, target, steps=5, seed=1)
    again2 = project_image(G, target, steps=5, seed=1)
    assert torch.equal(again.ws, again2.ws)

    def cancel():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        project_image(G, target, steps=5, seed=0, check_interrupt=cancel)


def test_seeds_to_ws_and_batched_synthesis_are_batch_invariant():
    from models.stylegan import seeds_to_ws, synthesize

    torch.manual_seed(0)
    G = StyleGAN2Generator(z_dim=16, c_dim=2, w_dim=16, img_resolution=16, img_channels=3,
                           mapping_kwargs={"num_layers": 2}, synthesis_kwargs={"channel_base": 256, "channel_max": 16})
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.3)
    z, ws = seeds_to_ws(G, "4-8", truncation_psi=0.5, class_index=1)
    assert z.shape == (5, 16) and ws.shape == (5, G.num_ws, 16)
    with torch.no_grad():
        direct = G.mapping(z, class_to_c(G, 1, batch=5), truncation_psi=0.5)
    assert torch.equal(ws, direct)
    done = []
    a = synthesize(G, ws, noise_mode="random", seed=3, batch_size=2, progress=lambda d, n: done.append((d, n)))
    b = synthesize(G, ws, noise_mode="random", seed=3, batch_size=5)
    c = synthesize(G, ws[2:3], noise_mode="random", seed=5, batch_size=1)
    assert done == [(2, 5), (4, 5), (5, 5)]
    # same noise per image whatever the batching (convolution kernels may differ in float round-off only)
    assert torch.allclose(a, b, atol=1e-4) and torch.allclose(a[2:3], c, atol=1e-4)
    assert not torch.allclose(synthesize(G, ws, noise_mode="random", seed=4), a, atol=1e-2)
    const = synthesize(G, ws, batch_size=3)
    with torch.no_grad():
        assert torch.allclose(const, G.synthesis(ws), atol=1e-5)
