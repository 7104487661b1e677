"""Translator fast paths (models/translator/speed.py): exactness of the float32 inference copy, the 2/255
bound of the low-precision path on the reference fixtures, fallback, caching."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.translator import ResnetGenerator, UnetGenerator, load_translator, translate
from models.translator import speed
from models.translator.layers import FrameContext, InstanceNorm2d, frame_context


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


def test_low_precision_used_when_accurate_and_falls_back_otherwise(pix2pix_fixtures):
    unet = load_translator(pix2pix_fixtures / "c_unet256_bn_dropout_ngf8_latest_net_G.pth")
    assert speed.effective_dtype(unet, "cpu", torch.bfloat16) == torch.bfloat16
    assert speed.last_calibration_error(unet) <= speed.CALIBRATION_LIMIT_255
    convs = [m for m in speed.inference_copy(unet, "cpu", torch.bfloat16)[0].modules()
             if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs[0].weight.dtype == torch.float32 and convs[-1].weight.dtype == torch.float32
    assert all(c.weight.dtype == torch.bfloat16 for c in convs[1:-1])
    # a ResNet with InstanceNorm deviates by several 1/255 in bfloat16: it must run float32 instead
    resnet = load_translator(pix2pix_fixtures / "a_resnet9_in_ngf16_latest_net_G.pth")
    assert speed.effective_dtype(resnet, "cpu", torch.bfloat16) is None
    assert speed.last_calibration_error(resnet) > speed.CALIBRATION_LIMIT_255
    assert speed.effective_dtype(resnet, "cpu", None) is None


def test_calibration_forces_fallback_when_limit_is_strict(monkeypatch):
    net = _randomise(UnetGenerator(ngf=8, depth=6))
    speed.clear_cache()
    monkeypatch.setattr(speed, "CALIBRATION_LIMIT_255", 0.0)
    assert speed.effective_dtype(net, "cpu", torch.bfloat16) is None
    images = _images(1, 64, 64)
    assert float((translate(net, images, dtype=torch.bfloat16) - _plain(net, images)).abs().max()) < 1e-5
    speed.clear_cache()


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


def test_bundled_models_fast_path_within_two_levels():
    """The bundled translators on the bundled example frames: a low-precision request stays within 2/255 of
    float32 (bfloat16 deviates more on them, so they fall back to float32 -- asserted through the bound)."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    repo = Path(__file__).resolve().parents[2]
    models = sorted(p for folder in ("pix2pix", "cyclegan")
                    for p in (repo / "models" / "bundled" / folder).glob("*.safetensors"))
    frames = [repo / "workflows" / "inputs" / n for n in ("gan_pack_day_00.png", "gan_pack_outlines.png")]
    frames = [f for f in frames if f.exists()]
    if not models or not frames:
        import pytest

        pytest.skip("no bundled translators / example frames in this checkout")
    for path in models:
        net = load_translator(path)
        for f in frames:
            img = torch.from_numpy(np.array(Image.open(f).convert("RGB"))).float()[None] / 255
            quality = translate(net, img)
            for dtype in (torch.bfloat16, torch.float16):
                err = float((translate(net, img, dtype=dtype) - quality).abs().max()) * 255
                assert err <= 2.0, (path.name, f.name, dtype, err)
