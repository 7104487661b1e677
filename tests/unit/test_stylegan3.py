"""StyleGAN3 (-T and -R) generator of this pack: reference conformance on the shared SG3-T fixture, config
inference, filter design, the fast filtered leaky ReLU against its definition, truncation cutoff, an -R case
(rotation equivariance), and inference-only behaviour (no buffer ever changes)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from models.stylegan.base import StyleGAN
from models.stylegan._sg3_ops import (design_lowpass_filter, filtered_lrelu_fast, filtered_lrelu_output_size,
                                      filtered_lrelu_reference)
from models.stylegan.sg3 import StyleGAN3Generator, infer_sg3_config


def rel_err(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a - ref).abs().max() / ref.abs().max())


def small_kwargs(radial: bool = False, res: int = 32, c_dim: int = 0):
    kw = dict(z_dim=32, c_dim=c_dim, w_dim=32, img_resolution=res, img_channels=3,
              mapping_kwargs={"num_layers": 2}, channel_base=512, channel_max=32, magnitude_ema_beta=0.999)
    if radial:
        kw.update(conv_kernel=1, use_radial_filters=True)
    return kw


def perturbed(G: StyleGAN3Generator, seed: int = 0) -> StyleGAN3Generator:
    """Random biases, input affine and magnitude EMAs so every parameter matters (like the fixture)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("bias") or name == "synthesis.input.affine.weight":
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        for name, b in G.named_buffers():
            if name.endswith("magnitude_ema"):
                b.fill_(float(torch.rand([], generator=gen)) * 2 + 0.5)
        G.mapping.w_avg.copy_(torch.randn(G.w_dim, generator=gen) * 0.3)
    return G


def build(seed: int = 0, **kw) -> StyleGAN3Generator:
    torch.manual_seed(seed)
    return perturbed(StyleGAN3Generator(**kw), seed)


@pytest.fixture(scope="module")
def fixture_data():
    from conftest import fixture_dir

    d = fixture_dir("stylegan3t_small")
    kwargs = json.loads((d / "generator_kwargs.json").read_text())
    sd = torch.load(d / "G_ema_state_dict.pt", weights_only=True)
    ref = torch.load(d / "z_ws_img_psi0.7_const.pt", weights_only=True)
    G = StyleGAN3Generator(**kwargs)
    G.load_state_dict(sd, strict=True)
    return kwargs, sd, ref, G


# ------------------------------------------------------------------------------------------ conformance


def test_fixture_mapping_and_image_match_reference(fixture_data):
    kwargs, sd, ref, G = fixture_data
    assert isinstance(G, StyleGAN) and G.family == "stylegan3-t"
    assert (G.z_dim, G.c_dim, G.w_dim, G.num_ws, G.img_resolution, G.img_channels) == (64, 0, 64, 16, 64, 3)
    ws = G.mapping(ref["z"], None, truncation_psi=0.7)
    assert rel_err(ws, ref["ws"]) < 1e-5
    img = G(ref["z"][:2], None, truncation_psi=0.7, noise_mode="const")
    assert img.shape == (2, 3, 64, 64)
    assert rel_err(img, ref["img"][:2]) < 1e-4


def test_fixture_reference_path_and_batch_independence(fixture_data):
    _, _, ref, G = fixture_data
    try:
        G.set_impl("reference")
        img_ref = G.synthesis(ref["ws"][2:], noise_mode="none")
    finally:
        G.set_impl("fast")
    assert rel_err(img_ref, ref["img"][2:]) < 1e-4
    # one image alone equals the same image inside a batch (per-sample modulation)
    single = G.synthesis(ref["ws"][3:4], noise_mode="random")
    assert rel_err(single, ref["img"][3:4]) < 1e-4


def test_fixture_filters_designed_like_reference(fixture_data):
    kwargs, sd, _, _ = fixture_data
    fresh = StyleGAN3Generator(**kwargs).state_dict()
    filters = [k for k in sd if k.endswith("_filter")]
    assert len(filters) == 28
    for k in filters:
        assert fresh[k].shape == sd[k].shape, k
        assert torch.allclose(fresh[k], sd[k], rtol=0, atol=2e-7), k
    assert set(fresh) == set(sd)


def test_infer_config_rebuilds_fixture(fixture_data):
    kwargs, sd, ref, G = fixture_data
    cfg = infer_sg3_config(sd)
    for key in ("z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "mapping_kwargs", "channel_base",
                "channel_max"):
        assert cfg[key] == kwargs[key], key
    G2 = StyleGAN3Generator(**cfg)
    G2.load_state_dict(sd, strict=True)
    assert G2.family == "stylegan3-t"
    img = G2.synthesis(ref["ws"][:1])
    assert rel_err(img, ref["img"][:1]) < 1e-4


@pytest.mark.parametrize("res,base,cmax,radial", [(256, 32768, 512, False), (1024, 32768, 512, False),
                                                  (512, 65536, 1024, True), (1024, 65536, 1024, True)])
def test_infer_config_official_shapes(res, base, cmax, radial):
    kw = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=res, img_channels=3, mapping_kwargs={"num_layers": 2},
              channel_base=base, channel_max=cmax, magnitude_ema_beta=0.999)
    if radial:
        kw.update(conv_kernel=1, use_radial_filters=True)
    with torch.device("meta"):
        G = StyleGAN3Generator(**kw)
    sd = G.state_dict()
    assert G.family == ("stylegan3-r" if radial else "stylegan3-t") and G.num_ws == 16
    first = "synthesis.L0_36_%d" % cmax
    assert sd[first + ".weight"].shape[-1] == (1 if radial else 3)
    assert sd[first + ".down_filter"].ndim == (2 if radial else 1)
    last = [k for k in sd if k.startswith("synthesis.L14_")]
    assert f"synthesis.L14_{res}_3.weight" in last
    cfg = infer_sg3_config(sd)
    expected = {k: v for k, v in kw.items() if k != "magnitude_ema_beta"}
    assert cfg == expected


def test_infer_config_conditional_and_rejects_other_layouts():
    G = build(**small_kwargs(c_dim=5))
    cfg = infer_sg3_config(G.state_dict())
    assert cfg["c_dim"] == 5 and cfg["z_dim"] == 32
    with pytest.raises(ValueError):
        infer_sg3_config({"mapping.fc0.weight": torch.zeros(4, 4)})
    with pytest.raises(ValueError, match="conditional"):
        G.mapping(torch.randn(1, 32), None)
    c = torch.nn.functional.one_hot(torch.tensor([2]), 5).float()
    assert G.mapping(torch.randn(1, 32), c).shape == (1, 16, 32)


# ------------------------------------------------------------------------------------------ truncation


def test_truncation_psi_and_cutoff(fixture_data):
    _, _, ref, G = fixture_data
    z = ref["z"]
    w1 = G.mapping(z, None)
    assert torch.equal(w1, w1[:, :1].expand_as(w1))  # broadcast to all 16 ws
    assert torch.equal(G.mapping(z, None, truncation_psi=1, truncation_cutoff=4), w1)
    w_avg = G.w_avg
    for cutoff in (0, 4, 8, None):
        wt = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=cutoff)
        k = 16 if cutoff is None else cutoff
        assert torch.allclose(wt[:, :k], w_avg + 0.5 * (w1[:, :k] - w_avg), atol=1e-6)
        assert torch.equal(wt[:, k:], w1[:, k:])
    # psi = 0 gives the average w on the truncated layers; psi 0.7 / cutoff None is the fixture's ws
    w0 = G.mapping(z, None, truncation_psi=0.0, truncation_cutoff=3)
    assert torch.allclose(w0[:, :3], w_avg.expand(4, 3, -1))
    assert rel_err(G.mapping(z, None, truncation_psi=0.7, truncation_cutoff=None), ref["ws"]) < 1e-5
    # cutoff changes the image only through the later layers
    img_c = G(z[:1], None, truncation_psi=0.7, truncation_cutoff=8)
    assert 1e-3 < rel_err(img_c, ref["img"][:1]) < 1.0


# ---------------------------------------------------------------------------------- filtered leaky ReLU


@pytest.mark.parametrize("case", [
    dict(up=2, down=2, taps_u=12, taps_d=12, radial=False, size=20, pad=None),
    dict(up=4, down=2, taps_u=24, taps_d=12, radial=False, size=18, pad=None),
    dict(up=2, down=2, taps_u=12, taps_d=12, radial=True, size=20, pad=None),
    dict(up=4, down=2, taps_u=24, taps_d=12, radial=True, size=13, pad=(7, 2, -3, 5)),
    dict(up=2, down=1, taps_u=12, taps_d=1, radial=False, size=16, pad=(-4, 9, 3, -1)),
    dict(up=1, down=1, taps_u=1, taps_d=1, radial=False, size=9, pad=(0, 0, 0, 0)),
    dict(up=1, down=2, taps_u=1, taps_d=12, radial=False, size=30, pad=(1, 2, 3, 4)),
    dict(up=2, down=2, taps_u=1, taps_d=12, radial=False, size=10, pad=(3, 1, 2, 0)),
    dict(up=2, down=1, taps_u=24, taps_d=1, radial=False, size=7, pad=(30, 40, 25, 2)),
])
def test_fast_filtered_lrelu_equals_definition(case):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 5, case["size"], case["size"] + 3, generator=gen) * 3
    b = torch.randn(5, generator=gen)
    fs = 64.0
    fu = design_lowpass_filter(case["taps_u"], 9.0, 6.0, fs)
    fd = design_lowpass_filter(case["taps_d"], 7.0, 8.0, fs, radial=case["radial"])
    pad = case["pad"]
    if pad is None:  # the generator's own padding rule for equal in/out size
        tot = (case["size"] - 1) * case["down"] + 1 - (case["size"] + 2) * case["up"] + case["taps_u"] + case["taps_d"] - 2
        lo = (tot + case["up"]) // 2
        pad = (lo, tot - lo, lo, tot - lo)
    for clamp in (None, 1.5):
        args = dict(fu=fu, fd=fd, b=b, up=case["up"], down=case["down"], padding=list(pad), gain=math.sqrt(2),
                    slope=0.2, clamp=clamp)
        ref = filtered_lrelu_reference(x, **args)
        fast = filtered_lrelu_fast(x, **args)
        assert ref.shape == fast.shape == (2, 5, *filtered_lrelu_output_size(x.shape[2], x.shape[3], fu, fd,
                                                                              case["up"], case["down"], pad))
        assert rel_err(fast, ref) < 2e-6
        if b is not None:
            x_before = x.clone()
            filtered_lrelu_fast(x, fu=fu, fd=fd, b=None, up=case["up"], down=case["down"], padding=list(pad))
            assert torch.equal(x, x_before)  # never writes into its input


def test_lowpass_filter_design_matches_scipy():
    signal = pytest.importorskip("scipy.signal")
    special = pytest.importorskip("scipy.special")
    for numtaps, cutoff, width, fs in [(12, 2.0, 6.5, 32.0), (24, 5.04, 4.2, 64.0), (12, 45.25, 30.0, 256.0)]:
        ours = design_lowpass_filter(numtaps, cutoff, width, fs)
        theirs = signal.firwin(numtaps=numtaps, cutoff=cutoff, width=width, fs=fs)
        np.testing.assert_allclose(ours.numpy(), theirs, rtol=0, atol=1e-7)
        # radial: windowed jinc, independent formulation with scipy's Bessel function
        rad = design_lowpass_filter(numtaps, cutoff, width, fs, radial=True).double().numpy()
        t = (np.arange(numtaps) - (numtaps - 1) / 2) / fs
        r = np.sqrt(t[:, None] ** 2 + t[None, :] ** 2)
        h = special.j1(2 * np.pi * cutoff * r) / (np.pi * r)
        win = signal.get_window(("kaiser", signal.kaiser_beta(signal.kaiser_atten(numtaps, width / (fs / 2)))),
                                numtaps, fftbins=False)
        h = h * np.outer(win, win)
        np.testing.assert_allclose(rad, h / h.sum(), rtol=0, atol=1e-7)
        assert np.allclose(rad, rad.T) and abs(rad.sum() - 1) < 1e-6
    assert design_lowpass_filter(1, 1.0, 1.0, 8.0) is None


# ----------------------------------------------------------------------------------------- StyleGAN3-R


def test_sg3r_builds_loads_runs_and_is_rotation_equivariant():
    kw = small_kwargs(radial=True)
    G = build(**kw)
    assert G.family == "stylegan3-r" and G.config()["family"] == "stylegan3-r"
    sd = G.state_dict()
    assert sd["synthesis.L0_36_32.weight"].shape[-2:] == (1, 1)
    radial = [k for k, v in sd.items() if k.endswith("down_filter") and v.ndim == 2]
    assert len(radial) == 12  # all but the two critically sampled layers (and ToRGB, which has none)
    cfg = infer_sg3_config(sd)
    assert cfg["conv_kernel"] == 1 and cfg["use_radial_filters"] is True
    G2 = StyleGAN3Generator(**cfg)
    G2.load_state_dict(sd, strict=True)
    torch.manual_seed(5)
    ws = G.mapping(torch.randn(2, 32), None, truncation_psi=0.8)
    img = G.synthesis(ws)
    assert img.shape == (2, 3, 32, 32) and torch.isfinite(img).all() and img.std() > 1e-3
    assert torch.equal(G2.synthesis(ws), img)
    G.set_impl("reference")
    assert rel_err(G.synthesis(ws), img) < 1e-5
    G.set_impl("fast")

    def rotated(G, k_quarter):
        th = math.pi / 2 * k_quarter
        rot = torch.tensor([[math.cos(th), -math.sin(th), 0], [math.sin(th), math.cos(th), 0], [0, 0, 1.0]])
        G.synthesis.input.transform.copy_(rot)
        try:
            return G.synthesis(ws)
        finally:
            G.synthesis.input.transform.copy_(torch.eye(3))

    # -R: a 90-degree rotation of the input transform rotates the image exactly (up to float round-off)
    assert rel_err(rotated(G, 1), torch.rot90(img, 1, [2, 3])) < 1e-4
    assert rel_err(rotated(G, 2), torch.rot90(img, 2, [2, 3])) < 1e-4
    # -T with the same widths (3x3 kernels, separable filters) is not rotation equivariant
    T = build(**small_kwargs(radial=False))
    img_t = T.synthesis(ws)
    assert rel_err(rotated(T, 1), torch.rot90(img_t, 1, [2, 3])) > 0.05


# --------------------------------------------------------------------------------- inference-only module


def test_never_mutates_buffers_and_stays_in_eval(fixture_data):
    _, sd, ref, G = fixture_data
    before = {k: v.clone() for k, v in G.state_dict().items()}
    G.train()
    assert not G.training and not G.synthesis.training
    G(ref["z"][:1], None, truncation_psi=0.5)
    after = G.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_config_round_trip_and_argument_errors(fixture_data):
    kwargs, sd, ref, G = fixture_data
    cfg = G.config()
    assert cfg["family"] == "stylegan3-t"
    assert {k: v for k, v in cfg.items() if k != "family"} == kwargs
    json.dumps(cfg)
    G2 = StyleGAN3Generator(**cfg)
    G2.load_state_dict(sd, strict=True)
    with pytest.raises(TypeError, match="unknown"):
        StyleGAN3Generator(**kwargs, not_an_argument=1)
    with pytest.raises(ValueError, match="family"):
        StyleGAN3Generator(**dict(kwargs, family="stylegan3-r"))
    with pytest.raises(ValueError, match="ws must have shape"):
        G.synthesis(torch.zeros(1, 14, 64))
    with pytest.raises(ValueError, match="noise_mode"):
        G.synthesis(ref["ws"][:1], noise_mode="bogus")


def test_gradients_through_fast_path_match_reference(fixture_data):
    """Projection optimises ws through the synthesis network: the fast path must be differentiable."""
    _, _, ref, G = fixture_data
    target = ref["img"][:1]
    grads = {}
    for impl in ("reference", "fast"):
        ws = ref["ws"][:1].clone().requires_grad_(True)
        G.set_impl(impl)
        loss = (G.synthesis(ws) - target.flip(-1)).square().mean()
        loss.backward()
        grads[impl] = ws.grad
    G.set_impl("fast")
    assert grads["fast"].abs().max() > 0
    assert rel_err(grads["fast"], grads["reference"]) < 1e-3  # round-off can flip a few lrelu kinks


@pytest.mark.parametrize("extra", [dict(channel_base=16384, channel_max=512, img_resolution=128),
                                   dict(channel_base=3000, channel_max=200, img_resolution=64, num_layers=10),
                                   dict(channel_base=8192, channel_max=256, img_resolution=128, conv_kernel=1,
                                        use_radial_filters=True, c_dim=10, mapping_kwargs={"num_layers": 4})])
def test_infer_config_custom_trainings_rebuild_same_layout(extra):
    kw = dict(z_dim=128, c_dim=0, w_dim=96, img_resolution=64, img_channels=3, mapping_kwargs={"num_layers": 2})
    kw.update(extra)
    with torch.device("meta"):
        sd = StyleGAN3Generator(**kw).state_dict()
        cfg = infer_sg3_config(sd)
        rebuilt = StyleGAN3Generator(**cfg).state_dict()
    assert {k: tuple(v.shape) for k, v in rebuilt.items()} == {k: tuple(v.shape) for k, v in sd.items()}
    assert cfg["mapping_kwargs"] == kw["mapping_kwargs"] and cfg["c_dim"] == kw["c_dim"]
    assert cfg.get("num_layers", 14) == kw.get("num_layers", 14)
