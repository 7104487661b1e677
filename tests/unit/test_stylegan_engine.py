"""StyleGAN2-ADA engine: reference conformance on the stylegan2_small fixture, truncation, noise, config inference."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from models.stylegan import StyleGAN2Generator, infer_sg2_config, load_stylegan, seeds_to_z
from models.stylegan.ops import upfirdn2d, setup_filter


def _fixture(d):
    sd = torch.load(d / "G_ema_state_dict.pt", weights_only=True)
    kwargs = json.loads((d / "generator_kwargs.json").read_text())
    ref = torch.load(d / "z_ws_img_psi0.7_const.pt", weights_only=True)
    return sd, kwargs, ref


def _tol(ref):
    return 1e-5 * float(ref.abs().max()) + 1e-6


def test_sg2_matches_reference_fixture(stylegan2_fixtures):
    sd, kwargs, ref = _fixture(stylegan2_fixtures)
    G = StyleGAN2Generator(**kwargs)
    G.load_state_dict(sd)
    assert G.num_ws == 10 == ref["ws"].shape[1]
    with torch.no_grad():
        ws = G.mapping(ref["z"], None, truncation_psi=0.7)
        img = G.synthesis(ws, noise_mode="const")
        img2 = G(ref["z"], None, truncation_psi=0.7, noise_mode="const")
    assert (ws - ref["ws"]).abs().max() <= _tol(ref["ws"])
    assert (img - ref["img"]).abs().max() <= _tol(ref["img"])
    assert torch.equal(img, img2)


def test_seeds_match_fixture_z(stylegan2_fixtures):
    _, _, ref = _fixture(stylegan2_fixtures)
    z = seeds_to_z("1-4", 64)
    assert z.dtype == torch.float32
    assert torch.equal(z, ref["z"].float())


def test_inferred_config_loads_and_matches(stylegan2_fixtures):
    sd, kwargs, ref = _fixture(stylegan2_fixtures)
    cfg = infer_sg2_config(sd)
    assert cfg["z_dim"] == 64 and cfg["img_resolution"] == 64 and cfg["mapping_kwargs"]["num_layers"] == 2
    assert cfg["synthesis_kwargs"]["channel_base"] == 2048 and cfg["synthesis_kwargs"]["channel_max"] == 64
    G = load_stylegan(stylegan2_fixtures / "G_ema_state_dict.pt")
    assert G.family == "stylegan2" and not G.training
    assert all(not p.requires_grad for p in G.parameters())
    with torch.no_grad():
        img = G(ref["z"], None, truncation_psi=0.7)
    assert (img - ref["img"]).abs().max() <= _tol(ref["img"])


def test_truncation_cutoff_and_w_avg_untouched(stylegan2_fixtures):
    sd, kwargs, ref = _fixture(stylegan2_fixtures)
    G = load_stylegan(sd)
    w_avg = G.w_avg.clone()
    G.train()  # must stay eval; mapping must never update w_avg
    assert not G.training
    with torch.no_grad():
        full = G.mapping(ref["z"], None)
        cut = G.mapping(ref["z"], None, truncation_psi=0.5, truncation_cutoff=3)
    assert torch.equal(G.w_avg, w_avg)
    expected_head = w_avg + (full[:, :3] - w_avg) * 0.5
    assert torch.allclose(cut[:, :3], expected_head, atol=1e-5)
    assert torch.equal(cut[:, 3:], full[:, 3:])
    # psi=0 gives w_avg everywhere
    with torch.no_grad():
        zero = G.mapping(ref["z"], None, truncation_psi=0.0)
    assert torch.allclose(zero, w_avg.expand_as(zero))


def test_noise_modes(stylegan2_fixtures):
    sd, _, ref = _fixture(stylegan2_fixtures)
    G = load_stylegan(sd)
    with torch.no_grad():
        sd_noise = {k: v for k, v in G.state_dict().items() if k.endswith("noise_strength")}
        for k in sd_noise:  # fixture noise strengths are zero-initialised: make noise visible
            G.get_parameter(k).fill_(0.5)
        ws = G.mapping(ref["z"][:2], None)
        const1 = G.synthesis(ws, noise_mode="const")
        const2 = G.synthesis(ws, noise_mode="const")
        none = G.synthesis(ws, noise_mode="none")
        r1 = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(5))
        r2 = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(5))
        r3 = G.synthesis(ws, noise_mode="random", generator=torch.Generator().manual_seed(6))
    assert torch.equal(const1, const2) and torch.equal(r1, r2)
    assert not torch.allclose(const1, none) and not torch.allclose(r1, r3)
    with pytest.raises(ValueError):
        G.synthesis(ws, noise_mode="bogus")
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesis(ws[:, :5])


@pytest.mark.parametrize("architecture", ["orig", "resnet"])
def test_other_architectures_and_conditioning(architecture):
    torch.manual_seed(0)
    G = StyleGAN2Generator(z_dim=16, c_dim=3, w_dim=16, img_resolution=16, img_channels=3,
                           mapping_kwargs={"num_layers": 2},
                           synthesis_kwargs={"channel_base": 256, "channel_max": 16, "architecture": architecture,
                                             "conv_clamp": 256, "num_fp16_res": 2})
    cfg = infer_sg2_config(G.state_dict())
    assert cfg["synthesis_kwargs"]["architecture"] == architecture and cfg["c_dim"] == 3
    G2 = load_stylegan(G.state_dict(), config={"synthesis_kwargs": {"conv_clamp": 256}})
    z = torch.randn(2, 16)
    c = torch.eye(3)[:2]
    with torch.no_grad():
        a, b = G(z, c), G2(z, c)
    assert a.shape == (2, 3, 16, 16) and torch.equal(a, b)
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(z, None)


def test_upfirdn2d_matches_direct_definition():
    # zero-insert x2, pad, correlate with the flipped filter: compare with a naive loop
    torch.manual_seed(1)
    x = torch.randn(1, 1, 5, 4)
    f = setup_filter([1, 3, 3, 1])
    y = upfirdn2d(x, f, up=2, padding=[2, 1, 2, 1], gain=4)
    up = torch.zeros(1, 1, 10, 8)
    up[:, :, ::2, ::2] = x
    padded = torch.nn.functional.pad(up, [2, 1, 2, 1])
    ff = (f * 4).flip([0, 1])
    ref = torch.zeros(1, 1, 10, 8)
    for i in range(10):
        for j in range(8):
            ref[0, 0, i, j] = (padded[0, 0, i:i + 4, j:j + 4] * ff).sum()
    assert y.shape == (1, 1, 10, 8) and torch.allclose(y, ref, atol=1e-6)
