"""Translator fast paths (models/translator/speed.py): exactness of the float32 inference copy, the shared
accuracy criterion (models/precision.py) on the reference fixtures and bundled models, fallback, caching."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models import precision

from models.translator import ResnetGenerator, UnetGenerator, load_translator, translate
from models.translator import speed
from models.translator.layers import FrameContext, InstanceNorm2d, frame_context


@pytest.fixture(autouse=True)
def _own_verdict_cache(tmp_path, monkeypatch):
    """Each test calibrates for real: verdicts go to a cache file of its own, not the user's."""
    monkeypatch.setenv("GAN_PACK_CACHE_DIR", str(tmp_path / "cache"))
    speed.clear_cache()
    yield
    speed.clear_cache()


def _randomise(net):
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                m.weight.normal_(0.0, 0.02, generator=g)
                if m.bias is not None:
                    m.bias.normal_(0.0, 0.02, generator=g)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.weight.normal_(1.0, 0.1, generator=g)
                m.bias.normal_(0.0, 0.1, generator=g)
                m.running_mean.normal_(0.0, 0.05, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
    return net.eval()


def _images(n, h, w, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, c, max(2, h // 16), max(2, w // 16), generator=g)
    img = F.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return img.permute(0, 2, 3, 1).contiguous()


def _plain(net, images):
    with torch.no_grad():
        y = net(images.permute(0, 3, 1, 2) * 2 - 1)
    return ((y + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)


def test_batchnorm_folding_is_exact_and_original_untouched():
    net = _randomise(UnetGenerator(ngf=8, depth=6, norm="batch", use_dropout=True))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    copy = speed.build_inference_copy(net, "cpu", None)
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in copy.modules()) == 0
    assert n_bn > 0
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        ref = net(x)
        out = copy(x.contiguous(memory_format=torch.channels_last))
    assert float((out - ref).abs().max()) < 1e-5
    # the user's model is neither folded nor converted
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == n_bn
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]) and v.is_contiguous(), k


def test_quality_path_equals_plain_float32():
    for net in (_randomise(ResnetGenerator(ngf=8, n_blocks=2)), _randomise(UnetGenerator(ngf=8, depth=6))):
        images = _images(2, 64, 128)
        out = translate(net, images)
        assert float((out - _plain(net, images)).abs().max()) < 1e-5


def test_fast_instance_norm_matches_torch():
    for affine in (False, True):
        norm = InstanceNorm2d(16, affine=affine)
        if affine:
            with torch.no_grad():
                norm.weight.uniform_(0.5, 1.5)
                norm.bias.uniform_(-0.5, 0.5)
        x = torch.randn(2, 16, 20, 24) * 3 + 1.5
        ref = F.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=norm.eps)
        norm.__class__ = speed._FastInstanceNorm2d
        ctx = FrameContext(mode="eval")
        with frame_context(norm, ctx), torch.inference_mode():
            for inp in (x.clone(), x.clone().contiguous(memory_format=torch.channels_last), x.bfloat16()):
                out = norm(inp)
                tol = 1e-4 if inp.dtype == torch.float32 else 0.05
                assert out.dtype == torch.float32
                assert float((out - ref).abs().max()) < tol


def test_fixtures_fast_and_quality_within_bounds(pix2pix_fixtures):
    for stem in ("a_resnet9_in_ngf16", "c_unet256_bn_dropout_ngf8"):
        net = load_translator(pix2pix_fixtures / f"{stem}_latest_net_G.pth")
        io = torch.load(pix2pix_fixtures / f"{stem}_io.pt", weights_only=True)
        images = ((io["input"].float() + 1) / 2).permute(0, 2, 3, 1)
        ref = ((io["output_eval"].float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
        quality = translate(net, images)
        assert float((quality - ref).abs().max()) * 255 < 0.01, stem
        for dtype in (torch.bfloat16, torch.float16):
            fast = translate(net, images, dtype=dtype)
            err = float((fast - ref).abs().max()) * 255
            assert err <= 2.0, (stem, dtype, err)
            # tiled (ResNet: staged statistics passes; U-Net: streamed) keeps the bound too
            tiled = translate(net, images, dtype=dtype, tile_size=128)
            assert float((tiled - ref).abs().max()) * 255 <= 2.0, (stem, dtype, "tiled")


def test_low_precision_used_when_accurate_and_falls_back_otherwise(pix2pix_fixtures, monkeypatch):
    # the calibration logic under test, whatever this CPU computes natively
    native = precision.native_low_precision
    monkeypatch.setattr(precision, "native_low_precision", lambda device, dtype: True)
    unet = load_translator(pix2pix_fixtures / "c_unet256_bn_dropout_ngf8_latest_net_G.pth")
    assert speed.effective_dtype(unet, "cpu", torch.bfloat16) == torch.bfloat16
    v = speed.last_verdict(unet, "cpu", torch.bfloat16)
    assert v.accepted and v.psnr_db >= precision.PSNR_MIN_DB and v.fraction_over <= precision.MAX_FRACTION_OVER
    convs = [m for m in speed.inference_copy(unet, "cpu", torch.bfloat16)[0].modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs[0].weight.dtype == torch.float32 and convs[-1].weight.dtype == torch.float32
    assert all(c.weight.dtype == torch.bfloat16 for c in convs[1:-1])
    # the ResNet fixture (InstanceNorm) in bfloat16 puts ~2 % of its pixels more than 2/255 away (PSNR ~51 dB):
    # rejected, it runs float32 (float16, 3 more mantissa bits, passes: PSNR 69 dB -- emulated on most CPUs,
    # too slow to check here)
    resnet = load_translator(pix2pix_fixtures / "a_resnet9_in_ngf16_latest_net_G.pth")
    assert speed.effective_dtype(resnet, "cpu", torch.bfloat16) is None
    v = speed.last_verdict(resnet, "cpu", torch.bfloat16)
    assert not v.accepted and v.fraction_over > precision.MAX_FRACTION_OVER, v
    report = speed.effective_precision(resnet, "cpu", torch.bfloat16)
    assert report["requested"] == "bfloat16" and report["precision"] == "float32"
    assert "rejected" in report["reason"] and report["verdict"]["accepted"] is False
    # a precision the device only emulates (float16 on most CPUs: 200x slower) runs float32 uncalibrated
    monkeypatch.setattr(precision, "native_low_precision", lambda device, dtype: dtype == torch.bfloat16)
    speed.clear_cache()
    report = speed.effective_precision(resnet, "cpu", torch.float16)
    assert report["precision"] == "float32" and "not computed natively" in report["reason"], report
    monkeypatch.setattr(precision, "native_low_precision", native)
    assert speed.effective_precision(resnet, "cpu", None) == {
        "requested": "float32", "precision": "float32", "layout": "channels_last", "verdict": None,
        "reason": "float32 requested"}


def test_calibration_forces_fallback_when_criterion_is_strict(monkeypatch):
    net = _randomise(UnetGenerator(ngf=8, depth=6))
    monkeypatch.setattr(precision, "PSNR_MIN_DB", 1000.0)
    assert speed.effective_dtype(net, "cpu", torch.bfloat16) is None
    images = _images(1, 64, 64)
    assert float((translate(net, images, dtype=torch.bfloat16) - _plain(net, images)).abs().max()) < 1e-5


def test_calibration_runs_once_per_model_content(monkeypatch, pix2pix_fixtures):
    """The verdict is measured once: a second request (memory), and the same file loaded again in a fresh
    session (cache file, keyed by the weights' content) do not calibrate again; changed weights do."""
    calls = []
    real = speed.calibrate
    monkeypatch.setattr(speed, "calibrate", lambda *a, **k: calls.append(1) or real(*a, **k))
    path = pix2pix_fixtures / "c_unet256_bn_dropout_ngf8_latest_net_G.pth"
    net = load_translator(path)
    assert speed.effective_dtype(net, "cpu", torch.bfloat16) == torch.bfloat16
    assert len(calls) == 1 and speed.last_verdict(net).source == "measured"
    speed.effective_dtype(net, "cpu", torch.bfloat16)
    assert len(calls) == 1
    speed.clear_cache()                       # a new session: nothing in memory
    again = load_translator(path)
    assert speed.effective_dtype(again, "cpu", torch.bfloat16) == torch.bfloat16
    assert len(calls) == 1 and speed.last_verdict(again).source == "disk"
    assert precision.cache_file().is_file()
    with torch.no_grad():
        next(again.parameters()).mul_(1.01)   # fine-tuned: another model
    speed.effective_dtype(again, "cpu", torch.bfloat16)
    assert len(calls) == 2


def test_cache_reused_and_invalidated_by_weight_changes():
    net = _randomise(ResnetGenerator(ngf=8, n_blocks=1))
    a = speed.inference_copy(net, "cpu", None)[0]
    assert speed.inference_copy(net, "cpu", None)[0] is a
    images = _images(1, 32, 32)
    before = translate(net, images)
    with torch.no_grad():
        net.model[1].weight.mul_(-1.0)   # in place: same storage, new version
    b = speed.inference_copy(net, "cpu", None)[0]
    assert b is not a
    after = translate(net, images)
    assert float((after - _plain(net, images)).abs().max()) < 1e-5
    assert float((after - before).abs().max()) > 1e-3
    # reference mode (BatchNorm on image statistics) gets an unfolded copy of its own
    unet = _randomise(UnetGenerator(ngf=8, depth=6))
    ref_copy = speed.inference_copy(unet, "cpu", None, "reference")[0]
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in ref_copy.modules())


def test_bundled_models_low_precision_meets_the_criterion():
    """The bundled translators on the bundled example frames: a low-precision request either runs float32
    (calibration rejects bfloat16 for both: ~1 % of pixels > 2/255; float16 where the CPU only emulates it) or
    meets the criterion on these real frames too (float16 where native: calibration PSNR 75-81 dB)."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    repo = Path(__file__).resolve().parents[2]
    models = sorted(p for folder in ("pix2pix", "cyclegan")
                    for p in (repo / "models" / "bundled" / folder).glob("*.safetensors"))
    frames = [repo / "workflows" / "inputs" / n for n in ("gan_pack_day_00.png", "gan_pack_outlines.png")]
    frames = [f for f in frames if f.exists()]
    if not models or not frames:
        pytest.skip("no bundled translators / example frames in this checkout")
    fp16 = precision.native_low_precision("cpu", torch.float16)   # only CPUs with AMX-FP16 run it
    for path in models:
        net = load_translator(path)
        assert speed.effective_dtype(net, "cpu", torch.bfloat16) is None, path.name
        assert speed.effective_dtype(net, "cpu", torch.float16) == (torch.float16 if fp16 else None), path.name
        for f in frames:
            img = torch.from_numpy(np.array(Image.open(f).convert("RGB"))).float()[None] / 255
            quality = translate(net, img)
            assert torch.equal(translate(net, img, dtype=torch.bfloat16), quality), (path.name, f.name)
            if fp16:
                psnr, frac, err = precision.measure(translate(net, img, dtype=torch.float16), quality,
                                                    channel_dim=-1)
                assert psnr >= precision.PSNR_MIN_DB and frac <= precision.MAX_FRACTION_OVER, (path.name, psnr)


def test_layout_per_device_and_architecture(monkeypatch):
    """CPU: channels_last; CUDA: NCHW for ResNets (measured faster there), channels_last for U-Nets. The NCHW
    copy (exercised here on the CPU) gives the float32 result too."""
    resnet = _randomise(ResnetGenerator(ngf=8, n_blocks=2))
    unet = _randomise(UnetGenerator(ngf=8, depth=6))
    assert speed.channels_last_for(resnet, "cpu") and speed.channels_last_for(unet, "cpu")
    assert not speed.channels_last_for(resnet, torch.device("cuda")) and speed.channels_last_for(unet, "cuda")
    monkeypatch.setattr(speed, "channels_last_for", lambda translator, device: False)
    for net in (resnet, unet):
        net_copy, use_cl, _ = speed.inference_copy(net, "cpu", None)
        assert not use_cl and all(m.weight.is_contiguous() for m in net_copy.modules()
                                  if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))
        images = _images(2, 64, 128)
        assert float((translate(net, images) - _plain(net, images)).abs().max()) < 1e-5
        assert speed.effective_precision(net, "cpu", None)["layout"] == "NCHW"
