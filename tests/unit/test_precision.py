"""The shared accuracy criterion (models/precision.py): the measures, the calibration frames, the verdict
cache (memory and file) and which precision ``auto`` asks for on which device."""
from __future__ import annotations

import math

import pytest
import torch

from models import precision


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GAN_PACK_CACHE_DIR", str(tmp_path / "cache"))
    precision.clear_cache()
    yield
    precision.clear_cache()


def test_measure_counts_pixels_off_by_more_than_two_levels():
    ref = torch.full((1, 3, 100, 100), 100 / 255)
    assert precision.measure(ref.clone(), ref) == (math.inf, 0.0, 0.0)
    out = ref.clone()
    out[0, 0, 0, :5] += 3 / 255          # 5 pixels off by 3 levels in one channel
    out[0, :, 1, :2] += 3 / 255          # 2 pixels off in all channels
    out[0, 1, 2, :7] += 2 / 255          # 7 pixels off by exactly 2 levels: allowed
    psnr, frac, err = precision.measure(out, ref)
    assert frac == pytest.approx(7 / 10000)
    assert err == pytest.approx(3.0, abs=1e-3)
    mse = float((out - ref).double().square().mean())
    assert psnr == pytest.approx(10 * math.log10(1 / mse))
    # [-1, 1] images (GAN outputs) are measured on the same 8-bit scale
    psnr2, frac2, err2 = precision.measure(out * 2 - 1, ref * 2 - 1, value_range=(-1, 1))
    assert (frac2, round(err2, 3)) == (frac, round(err, 3)) and psnr2 == pytest.approx(psnr)
    # channel-last images
    assert precision.measure(out.permute(0, 2, 3, 1), ref.permute(0, 2, 3, 1), channel_dim=-1)[1] == frac


def test_judge_applies_both_thresholds_and_rejects_overflow():
    ref = torch.rand(1, 3, 200, 200, generator=torch.Generator().manual_seed(0))
    small = ref + 0.5 / 255                       # PSNR ~54 dB, nothing over 2/255
    v = precision.judge(small, ref, "bfloat16")
    assert v.accepted and 50 < v.psnr_db < 60 and v.fraction_over == 0
    spots = ref.clone()
    spots[0, :, :3, :3] = 1 - spots[0, :, :3, :3]  # 9 of 40,000 pixels wildly off: 0.0225 % > 0.01 %
    v = precision.judge(spots, ref, "float16")
    assert not v.accepted and v.fraction_over == pytest.approx(9 / 40000)
    few = ref.clone()
    few[0, 0, 0, :4] += 0.1                       # 4 pixels (0.01 %) off: still accepted
    assert precision.judge(few, ref, "float16").accepted
    noisy = ref + 2 / 255 * torch.sin(torch.arange(200.0))  # PSNR < 50 dB although nothing is > 2/255
    v = precision.judge(noisy, ref, "bfloat16")
    assert not v.accepted and v.psnr_db < 50 and v.fraction_over == 0
    bad = ref.clone()
    bad[0, 0, 0, 0] = float("nan")
    assert not precision.judge(bad, ref, "float16").accepted
    v = precision.judge(small, ref, "float16", rel_err_limit=1e-4)   # StyleGAN's extra relative bound
    assert not v.accepted and v.rel_err > 1e-4
    assert "rejected" in v.summary() and "PSNR" in v.summary()


def test_calibration_frames_are_deterministic_images_not_noise():
    f = precision.calibration_frames(3, 128)
    assert f.shape == (3, 3, 128, 128) and f.dtype == torch.float32
    assert torch.equal(f, precision.calibration_frames(3, 128))
    assert float(f.min()) >= 0 and float(f.max()) <= 1
    dx = (f[..., :, 1:] - f[..., :, :-1]).abs()
    # mostly smooth (the median neighbour step is tiny, unlike noise) ...
    assert float(dx.median()) < 0.02
    noise = torch.rand(3, 3, 128, 128, generator=torch.Generator().manual_seed(0))
    assert float((noise[..., 1:] - noise[..., :-1]).abs().median()) > 0.2
    # ... with hard edges (steps of more than half the range) and a wide range of values in every frame
    assert float(dx.amax(dim=(1, 2, 3))[1]) > 0.5
    for frame in f:
        assert float(frame.max() - frame.min()) > 0.5 and float(frame.std()) > 0.1
    assert precision.calibration_frames(1, 64).shape == (3, 1, 64, 64)
    assert precision.calibration_frames(4, 64).shape == (3, 4, 64, 64)


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())


def _verdict(accepted=True):
    return precision.Verdict(precision="bfloat16", accepted=accepted, psnr_db=60.0, fraction_over=0.0,
                             max_err_255=1.5)


def test_verdict_cached_in_memory_and_in_the_cache_file():
    calls = []
    key = {"family": "test", "device": "cpu", "precision": "bfloat16"}
    compute = lambda: calls.append(1) or _verdict()  # noqa: E731
    net = _net()
    v = precision.calibrated_verdict(net, key, compute)
    assert v.accepted and v.source == "measured" and len(calls) == 1
    assert precision.calibrated_verdict(net, key, compute).source == "memory" and len(calls) == 1
    path = precision.cache_file()
    assert path.is_file() and len(__import__("json").loads(path.read_text())) == 1
    # a fresh process (nothing in memory) with the same weights in another module object: from the file
    precision.clear_cache()
    v = precision.calibrated_verdict(_net(), key, compute)
    assert v.source == "disk" and v.psnr_db == 60.0 and len(calls) == 1
    # other weights, another key, or another criterion: measured again
    precision.calibrated_verdict(_net(seed=1), key, compute)
    precision.calibrated_verdict(net, dict(key, precision="float16"), compute)
    assert len(calls) == 3
    with torch.no_grad():
        net[0].weight.add_(1.0)
    precision.calibrated_verdict(net, key, compute)
    assert len(calls) == 4
    precision.clear_cache()
    old = precision.PSNR_MIN_DB
    try:
        precision.PSNR_MIN_DB = 55.0
        precision.calibrated_verdict(_net(), key, compute)
    finally:
        precision.PSNR_MIN_DB = old
    assert len(calls) == 5


def test_cache_file_can_be_turned_off_and_survives_damage(monkeypatch):
    path = precision.cache_file()
    path.parent.mkdir(parents=True)
    path.write_text("{ not json")
    calls = []
    compute = lambda: calls.append(1) or _verdict(False)  # noqa: E731
    assert not precision.calibrated_verdict(_net(), {"k": 1}, compute).accepted
    assert len(calls) == 1 and path.read_text().startswith("{")
    monkeypatch.setenv("GAN_PACK_PRECISION_CACHE", "0")
    assert precision.cache_file() is None
    precision.clear_cache()
    precision.calibrated_verdict(_net(), {"k": 1}, compute)
    assert len(calls) == 2


def test_content_hash_follows_the_weights():
    a, b = _net(), _net()
    assert precision.content_hash(a) == precision.content_hash(b)
    assert precision.content_hash(a) != precision.content_hash(_net(seed=1))
    assert precision.content_hash(a) != precision.content_hash(_net().to(torch.bfloat16))


def test_auto_asks_for_bfloat16_only_on_amx_cpus(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert precision.auto_dtypes("cpu") == [] and precision.resolve_precision("auto", "cpu") is None
    assert precision.native_low_precision("cpu", torch.bfloat16)
    assert not precision.native_low_precision("cpu", torch.float16)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512_bf16", "amx_bf16", "amx_tile"}))
    assert precision.resolve_precision("auto", "cpu") == torch.bfloat16
    assert precision.resolve_precision("float32", "cpu") is None
    assert precision.resolve_precision("float16", "cpu") == torch.float16
    with pytest.raises(ValueError, match="unknown precision"):
        precision.resolve_precision("int8", "cpu")


def test_style_networks_use_the_criterion(monkeypatch):
    from models.style.fast import TransformerNet
    from models.style.precision import style_precision

    torch.manual_seed(0)
    net = TransformerNet((8, 8, 8), 1).eval()
    monkeypatch.setattr(precision, "native_low_precision", lambda device, dtype: True)
    dtype, v = style_precision(net, "fast", "cpu", torch.bfloat16)
    assert v.source == "measured" and (dtype == torch.bfloat16) == v.accepted
    assert math.isfinite(v.psnr_db) and 0 <= v.fraction_over <= 1
    assert style_precision(net, "fast", "cpu", torch.bfloat16)[1].source == "memory"
    assert style_precision(net, "gatys", "cpu", torch.bfloat16) == (None, None)
    monkeypatch.setattr(precision, "PSNR_MIN_DB", 1000.0)
    dtype, v = style_precision(net, "fast", "cpu", torch.bfloat16)
    assert dtype is None and not v.accepted and v.source == "measured"
    monkeypatch.setattr(precision, "native_low_precision", lambda device, dtype: False)
    assert style_precision(net, "fast", "cpu", torch.float16) == (None, None)


def _small_sg2(c_dim=0):
    from models.stylegan.sg2 import StyleGAN2Generator

    torch.manual_seed(0)
    return StyleGAN2Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=32, img_channels=3,
                              mapping_kwargs={"num_layers": 2},
                              synthesis_kwargs={"channel_base": 512, "channel_max": 32}).eval()


def test_synthesize_equals_bare_synthesis_and_gates_low_precision(monkeypatch):
    from models.stylegan import seeds_to_ws, stylegan_precision, synthesize

    G = _small_sg2()
    _, ws = seeds_to_ws(G, "0-4")
    with torch.no_grad():
        bare = G.synthesis(ws, noise_mode="const")
    done = []
    out = synthesize(G, ws, batch_size=5, progress=lambda d, n: done.append((d, n)))
    assert torch.equal(out, bare) and out.dtype == torch.float32 and done == [(5, 5)]
    assert torch.equal(synthesize(G, ws, batch_size=5, dtype=torch.float32), bare)
    # the low-precision path runs only where native and where the criterion (with StyleGAN's relative-error
    # bound) accepts it; its verdict is measured once
    monkeypatch.setattr(precision, "native_low_precision", lambda device, dtype: dtype == torch.bfloat16)
    assert stylegan_precision(G, "cpu", torch.float16) == (None, None)
    dt, v = stylegan_precision(G, "cpu", torch.bfloat16)
    assert v.rel_err is not None and (dt == torch.bfloat16) == v.accepted
    assert v.accepted == (v.psnr_db >= 50 and v.fraction_over <= 1e-4 and v.rel_err <= precision.STYLEGAN_REL_ERR)
    fast = synthesize(G, ws, batch_size=5, dtype=torch.bfloat16)
    assert stylegan_precision(G, "cpu", torch.bfloat16)[1].source == "memory"
    if v.accepted:
        psnr, frac, _ = precision.measure(fast, bare, value_range=(-1, 1))
        assert psnr > 40 and not torch.equal(fast, bare)
    else:
        assert torch.equal(fast, bare)
    monkeypatch.setattr(precision, "STYLEGAN_REL_ERR", 0.0)   # nothing passes: exact float32
    precision.clear_cache()
    assert torch.equal(synthesize(G, ws, batch_size=5, dtype=torch.bfloat16), bare)
