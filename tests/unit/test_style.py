"""Style-transfer engine (models.style): loaders on public key layouts, Gatys / AdaIN / fast algorithms,
colour preservation, frame consistency, determinism. Weights are random tensors built here (small widths
except where a full-size layout is the point); no file is downloaded."""
from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path

import kornia
import pytest
import torch

import models
from models.style import (AdaIN, AdaINDecoder, AdaINEncoder, GatysOptions, StyleNetworkLoadError, TransformerNet,
                          VGG19Features, adaptive_instance_norm, calc_mean_std, gram, load_adain, load_style_network,
                          match_color, missing_files, required_files, save_style_network, style_transfer)
from models.style.adain import DECODER_INDICES
from models.style.gatys import StyleLoss, gatys_transfer
from models.style.vgg import ADAIN_INDICES, TORCHVISION_INDICES, VGG19_WIDTHS, layer_names

REPO = Path(__file__).resolve().parents[2]
SMALL = [8, 8, 16, 16, 24, 24, 24, 24, 32, 32, 32, 32, 32, 32, 32, 32]
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


def seeded(fn, seed=0):
    torch.manual_seed(seed)
    return fn()


def small_vgg(pool="max", convention="torchvision") -> VGG19Features:
    net = seeded(lambda: VGG19Features(SMALL, convention=convention, pool=pool))
    # He-like init keeps activations alive through 16 random layers
    with torch.no_grad():
        for conv in net.convs.values():
            torch.nn.init.kaiming_normal_(conv.weight, generator=torch.Generator().manual_seed(conv.in_channels))
            conv.bias.zero_()
    return net


def lively(net, seed, last=None, out_std=0.2, out_mean=0.5):
    """He-initialise every conv (zero bias) so random activations neither vanish nor explode; scale the
    output conv ``last`` so the network's images vary around ``out_mean`` by about ``out_std``."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, generator=g)
                m.bias.zero_()
        if last is not None:
            fan_in = last.weight[0].numel()
            last.weight.mul_(out_std / (2.0 / fan_in) ** 0.5 / fan_in ** 0.5)
            last.bias.fill_(out_mean)
    return net


def small_adain() -> AdaIN:
    enc = lively(AdaINEncoder(SMALL[:9]), 1)
    dec = AdaINDecoder(32, [16, 16, 16, 16, 16, 16, 8, 8, 3])
    return AdaIN(enc, lively(dec, 2, dec.convs[-1]))


def small_fast(widths=(8, 16, 16), n_res=2, seed=11) -> TransformerNet:
    net = TransformerNet(widths, n_res)
    return lively(net, seed, net.deconv3.conv2d, out_std=0.2 * 255, out_mean=0.5 * 255)


def images(n=1, h=48, w=48, seed=0):
    """Smooth content-like IMAGE tensors [n, h, w, 3] in [0.2, 0.8]."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 6, 6, generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return (0.2 + 0.6 * img).permute(0, 2, 3, 1).contiguous()


def stripes(h=48, w=48):
    y = torch.arange(h).view(h, 1).float()
    x = torch.arange(w).view(1, w).float()
    a = (torch.sin(x * 0.9 + y * 0.4) > 0).float()
    img = torch.stack([a, 1 - a, (0.5 + 0.5 * torch.cos(y * 0.7)).expand(h, w)], -1)
    return img.unsqueeze(0)


def nchw(img):
    return img.permute(0, 3, 1, 2).contiguous()


def refuses(source, match, **kw):
    with pytest.raises(StyleNetworkLoadError, match=match) as info:
        load_style_network(source, **kw)
    assert isinstance(info.value, ValueError)
    return str(info.value)


# ------------------------------------------------------------------------------------------ public layouts
def test_public_layout_indices():
    assert TORCHVISION_INDICES == [0, 2, 5, 7, 10, 12, 14, 16, 19, 21, 23, 25, 28, 30, 32, 34]
    assert ADAIN_INDICES == [2, 5, 9, 12, 16, 19, 22, 25, 29, 32, 35, 38, 42, 45, 48, 51]
    assert DECODER_INDICES == [1, 5, 8, 11, 14, 18, 21, 25, 28]
    names = layer_names()
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"] and names[-1] == "pool5"
    assert {"relu4_2", "conv4_2", "relu5_1"} <= set(names)


def full_vgg19_features(dtype=torch.float16):
    g = torch.Generator().manual_seed(0)
    sd, c_in = {}, 3
    for idx, c_out in zip(TORCHVISION_INDICES, VGG19_WIDTHS):
        sd[f"features.{idx}.weight"] = (torch.randn(c_out, c_in, 3, 3, generator=g) * (2 / (9 * c_in)) ** 0.5).to(dtype)
        sd[f"features.{idx}.bias"] = torch.zeros(c_out, dtype=dtype)
        c_in = c_out
    return sd


def test_full_size_vgg19_torchvision_layout(tmp_path):
    # real shapes (features only: the 4096-wide classifier is ignored by the loader and would cost ~500 MB)
    sd = full_vgg19_features()
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(sd, path)
    net = load_style_network(path)
    assert net.name == "vgg19-dcbb9e9d"
    assert net.kind == "vgg19" and net.widths == list(VGG19_WIDTHS) and net.convention == "torchvision"
    assert torch.equal(net.convs["conv5_4"].weight, sd["features.34.weight"].float())
    feats = net(torch.rand(1, 3, 32, 32), ["relu1_1", "conv4_2", "relu4_2", "relu5_1"])
    assert feats["relu5_1"].shape == (1, 512, 2, 2) and feats["conv4_2"].shape == (1, 512, 4, 4)
    assert torch.equal(feats["relu4_2"], feats["conv4_2"].clamp_min(0))
    # the public layout round-trips
    back = net.public_state_dict()
    assert set(back) == set(sd) and torch.equal(back["features.0.weight"], sd["features.0.weight"].float())
    # torchvision convention: conv1_1 sees (x - mean) / std
    x = torch.rand(1, 3, 8, 8)
    ref = torch.nn.functional.conv2d((x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
                                     / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
                                     net.convs["conv1_1"].weight, net.convs["conv1_1"].bias, padding=1)
    assert torch.allclose(net(x, ["conv1_1"])["conv1_1"], ref, atol=1e-5)


def test_caffe_layout_detection_and_input_convention(tmp_path):
    base = {k: v.float() for k, v in small_vgg().public_state_dict().items()}
    # jcjohnson's original upload: classifier.1 / .4 / .6 (only shapes of a head; never used)
    caffe = dict(base, **{"classifier.1.weight": torch.zeros(4, 4), "classifier.4.weight": torch.zeros(4, 4),
                          "classifier.6.weight": torch.zeros(2, 4)})
    net = load_style_network(caffe)
    assert net.convention == "caffe" and "classifier" in net.convention_source
    # caffe convention: BGR in [0, 255] minus the mean
    x = torch.rand(1, 3, 4, 4)
    expected = x[:, [2, 1, 0]] * 255 - torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)
    assert torch.allclose(net.preprocess(x), expected, atol=1e-4)
    # neural-style-pt's re-saved copy (torchvision-like keys) recognised by its file name
    path = tmp_path / "vgg19-d01eb7cb.pth"
    torch.save(base, path)
    assert load_style_network(path).convention == "caffe"
    plain = tmp_path / "vgg19-dcbb9e9d.pth"
    torch.save(base, plain)
    assert load_style_network(plain).convention == "torchvision"
    assert load_style_network(plain, convention="caffe").convention == "caffe"
    # conv1_1-style names (Gatys' vgg_conv.pth) -> caffe
    named = {f"{n}.{p}": base[f"features.{i}.{p}"] for n, i in zip([l for l in layer_names() if l.startswith("conv")],
                                                                      TORCHVISION_INDICES) for p in ("weight", "bias")}
    assert load_style_network(named).convention == "caffe"
    # safetensors metadata decides, and save_style_network writes it
    st = tmp_path / "renamed.safetensors"
    save_style_network(net, st)
    again = load_style_network(st)
    assert again.convention == "caffe" and again.name == "renamed"
    assert torch.equal(again.convs["conv3_1"].weight, net.convs["conv3_1"].weight)


def test_vgg_refusals(tmp_path):
    g = torch.Generator().manual_seed(0)
    vgg16, c_in = {}, 3
    for idx, c_out in zip([0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28], [4] * 13):
        vgg16[f"features.{idx}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g)
        c_in = c_out
    msg = refuses(vgg16, r"VGG-like but 13 conv layers \(VGG-16\?\)")
    assert "VGG-19" in msg
    bn = dict(vgg16, **{"features.1.running_mean": torch.zeros(4)})
    refuses(bn, "batch normalisation")
    named16 = {f"conv{b}_{i}.weight": torch.zeros(4, 4, 3, 3) for b, n in enumerate((2, 2, 3, 3, 3), 1)
               for i in range(1, n + 1)}
    refuses(named16, r"13 conv layers \(VGG-16\?\)")
    # a torchvision layout whose channel chain is broken
    broken = {k: v.float() for k, v in small_vgg().public_state_dict().items()}
    broken["features.5.weight"] = torch.zeros(16, 7, 3, 3)
    refuses(broken, "conv2_1 has shape")
    # the right family but the wrong role
    refuses(small_vgg().public_state_dict(), "expected fast_style", expect="fast_style")


def test_other_families_refused_clearly():
    pix2pix = {"model.1.weight": torch.zeros(64, 3, 7, 7), "model.1.bias": torch.zeros(64),
               "model.4.weight": torch.zeros(128, 64, 3, 3)}
    refuses(pix2pix, "Pix2Pix/CycleGAN ResNet generator")
    unet = {"model.model.0.weight": torch.zeros(64, 3, 4, 4), "model.model.1.model.1.weight": torch.zeros(8, 64, 4, 4)}
    refuses(unet, "U-Net generator")
    stylegan = {"mapping.fc0.weight": torch.zeros(4, 4), "synthesis.b4.const": torch.zeros(4, 4, 4)}
    refuses(stylegan, "StyleGAN generator")
    refuses({"foo.weight": torch.zeros(3)}, "unrecognised layout")
    refuses({"classifier.0.weight": torch.zeros(4, 4)}, "only a classifier head")


def test_file_level_refusals(tmp_path):
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    legacy = tmp_path / "payload_legacy.pth"
    legacy.write_bytes(pickle.dumps({"features.0.weight": Payload()}, protocol=2))
    refuses(legacy, "refused to load")
    zipped = tmp_path / "payload_zip.pth"
    torch.save({"features.0.weight": torch.zeros(1), "x": Payload()}, zipped)
    refuses(zipped, "refused to load")
    assert not marker.exists()

    good = tmp_path / "good.pth"
    torch.save(TransformerNet((4, 4, 4), 1).public_state_dict(), good)
    data = good.read_bytes()
    trunc = tmp_path / "truncated.pth"
    trunc.write_bytes(data[: len(data) // 2])
    refuses(trunc, "truncated")
    st = tmp_path / "good.safetensors"
    save_style_network(TransformerNet((4, 4, 4), 1), st)
    trunc_st = tmp_path / "truncated.safetensors"
    trunc_st.write_bytes(st.read_bytes()[:-40])
    refuses(trunc_st, "truncated or corrupt")
    noise = tmp_path / "noise.pth"
    noise.write_bytes(bytes(torch.randint(0, 256, (4096,), generator=torch.Generator().manual_seed(1)).tolist()))
    refuses(noise, "not a PyTorch checkpoint or .safetensors")
    noise.write_bytes(b"\x80" + noise.read_bytes())  # garbage that starts like a pickle
    refuses(noise, "not a valid PyTorch checkpoint")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    refuses(empty, "empty file")
    refuses(tmp_path / "absent.pth", "not found")


# ------------------------------------------------------------------------------------------ AdaIN
def adain_encoder_full_sd(n_convs=16, widths=SMALL):
    g = torch.Generator().manual_seed(3)
    sd = {"0.weight": torch.randn(3, 3, 1, 1, generator=g), "0.bias": torch.randn(3, generator=g)}
    c_in = 3
    for idx, c_out in zip(ADAIN_INDICES[:n_convs], widths[:n_convs]):
        sd[f"{idx}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g) * (2 / (9 * c_in)) ** 0.5
        sd[f"{idx}.bias"] = torch.zeros(c_out)
        c_in = c_out
    return sd


def decoder_sd(c_in=512, widths=(256, 256, 256, 256, 128, 128, 64, 64, 3)):
    g = torch.Generator().manual_seed(4)
    sd = {}
    for idx, c_out in zip(DECODER_INDICES, widths):
        sd[f"{idx}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g) * 0.01
        sd[f"{idx}.bias"] = torch.zeros(c_out)
        c_in = c_out
    return sd


def test_adain_loaders_on_public_layouts(tmp_path):
    enc = load_style_network(adain_encoder_full_sd())  # whole vgg_normalised (to relu5_4), reduced widths
    assert enc.kind == "adain_encoder" and enc.layers[-1] == "pool5" and "relu5_1" in enc.layers
    full_dec = load_style_network(decoder_sd())       # full-size decoder shapes
    assert full_dec.kind == "adain_decoder" and full_dec.in_channels == 512
    cut = load_style_network(adain_encoder_full_sd(9))  # first 31 modules only (to relu4_1)
    assert cut.layers[-1] == "relu4_1"
    dec = load_style_network(decoder_sd(32, (16, 16, 16, 16, 16, 16, 8, 8, 3)))
    pair = load_adain(cut, dec)
    assert pair.encoder.kind == "adain_encoder"
    load_adain(dec, cut)  # swapped arguments are fine
    # the 1x1 preprocessing conv is the network's first operation
    x = torch.rand(1, 3, 8, 8)
    assert torch.allclose(enc.preprocess(x), torch.nn.functional.conv2d(x, enc.pre.weight, enc.pre.bias))
    with pytest.raises(StyleNetworkLoadError, match="stops before relu4_1"):
        load_adain(adain_encoder_full_sd(7), dec)
    with pytest.raises(StyleNetworkLoadError, match="vgg_normalised"):
        load_adain(small_vgg().public_state_dict(), dec)
    with pytest.raises(StyleNetworkLoadError, match="do not belong together"):
        load_adain(cut, full_dec)
    missing = decoder_sd()
    del missing["28.weight"], missing["28.bias"]
    refuses(missing, r"missing layers \[28\]")
    p = tmp_path / "decoder.safetensors"
    save_style_network(dec, p)
    assert load_style_network(p).kind == "adain_decoder"


def test_adain_matches_style_statistics_and_alpha_zero_keeps_content():
    pair = small_adain()
    content, style = nchw(images(1, 40, 40, seed=1)), nchw(stripes(40, 40))
    with torch.no_grad():
        fc, fs = pair.encode(content), pair.encode(style)
        s_mean, s_std = calc_mean_std(fs)
        t = pair.stylize_features(fc, s_mean, s_std, alpha=1.0)
        t_mean, t_std = calc_mean_std(t, eps=0.0)
        assert torch.allclose(t_mean, s_mean, atol=1e-4)
        # std matches wherever content and style channels are alive (eps only matters for dead channels)
        live = (calc_mean_std(fc, eps=0.0)[1] > 0.05) & (calc_mean_std(fs, eps=0.0)[1] > 0.05)
        assert live.float().mean() > 0.5
        assert torch.allclose(t_std[live], s_std[live], rtol=1e-2)
        assert ((calc_mean_std(fc)[0] - s_mean).abs().mean() > 0.1 * s_mean.abs().mean())
        assert torch.equal(pair.stylize_features(fc, s_mean, s_std, alpha=0.0), fc)
        half = pair.stylize_features(fc, s_mean, s_std, alpha=0.5)
        assert torch.allclose(half, 0.5 * t + 0.5 * fc, atol=1e-5)
        # end to end: alpha=0 decodes the content's own features
        out = style_transfer(images(1, 40, 40, seed=1), stripes(40, 40), method="adain", network=pair, strength=0.0)
        assert torch.allclose(nchw(out), pair.decoder(fc).clamp(0, 1), atol=1e-5)
    assert torch.allclose(adaptive_instance_norm(fc, s_mean, s_std), t)


# ------------------------------------------------------------------------------------------ fast networks
def fast_full_sd():
    ref = seeded(lambda: TransformerNet(), 5)
    sd = dict(ref.public_state_dict())
    assert sd["conv1.conv2d.weight"].shape == (32, 3, 9, 9) and sd["deconv1.conv2d.weight"].shape == (64, 128, 3, 3)
    assert sd["res5.in2.bias"].shape == (128,) and sd["deconv3.conv2d.weight"].shape == (3, 32, 9, 9)
    for k in [k for k in sd if k.endswith(".weight") and ".in" in f".{k}" and sd[k].ndim == 1]:
        stem = k[: -len("weight")]
        sd[stem + "running_mean"] = torch.zeros_like(sd[k])
        sd[stem + "running_var"] = torch.ones_like(sd[k])
    return ref, sd


def test_transformer_net_layout_with_legacy_running_stats(tmp_path):
    ref, sd = fast_full_sd()
    assert "in1.running_mean" in sd and "res3.in2.running_var" in sd
    net = load_style_network(sd)
    assert net.kind == "fast_style" and net.widths == [32, 64, 128] and net.n_residual == 5
    x = torch.rand(1, 3, 32, 36)
    with torch.no_grad():
        assert torch.allclose(net(x), ref(x), atol=1e-5)
    bad = dict(sd)
    del bad["res2.conv1.conv2d.weight"]
    refuses(bad, "missing")
    p = tmp_path / "candy.pth"
    torch.save(sd, p)
    assert load_style_network(p).name == "candy"


# ------------------------------------------------------------------------------------------ Gatys
def test_gatys_lowers_style_loss_and_moves_grams_toward_style():
    net = small_vgg(pool="avg")
    content, style = nchw(images(1, 48, 48, seed=2)), nchw(stripes())
    opts = GatysOptions(style_layers=STYLE_LAYERS, content_layers=("relu3_2",), style_weight=100.0, tv_weight=0.0)
    losses = StyleLoss(net, content, style, opts)
    history = []
    out = gatys_transfer(content, style, net, iterations=25, options=opts, history=history)
    with torch.no_grad():
        before, after = losses.parts(content), losses.parts(out)
        assert float(after["style"]) < 0.3 * float(before["style"])
        fs, f0, f1 = (net(x, STYLE_LAYERS) for x in (style, content, out))
        for layer in STYLE_LAYERS:
            d0 = (gram(f0[layer]) - gram(fs[layer])).norm()
            d1 = (gram(f1[layer]) - gram(fs[layer])).norm()
            assert d1 < 0.7 * d0, (layer, float(d0), float(d1))
    assert history[-1]["style"] < history[0]["style"] and out.min() >= 0 and out.max() <= 1
    # more L-BFGS iterations keep improving the image actually returned (clamped to [0, 1]); this caught a
    # stalled L-BFGS (one step() per iteration) and an optimum lost to the final clamp
    total = lambda img: float(losses(img)[0])
    longer = gatys_transfer(content, style, net, iterations=60, options=opts)
    assert total(longer) < 0.9 * total(out)
    assert abs(total(out) - history[-1]["loss"]) < 0.02 * total(out)


def test_gatys_adam_multiscale_progress_and_interrupt():
    net = small_vgg()
    calls = []
    out = style_transfer(images(1, 40, 56), stripes(32, 32), method="gatys", network=net, iterations=6,
                         optimizer="adam", scales=2, min_size=16, style_layers=STYLE_LAYERS,
                         content_layers=("relu2_2",), progress=lambda s, t, l: calls.append((s, t, l)))
    assert out.shape == (1, 40, 56, 3)
    assert [c[0] for c in calls] == list(range(1, 13)) and all(c[1] == 12 for c in calls)
    assert calls[-1][2] < calls[0][2]

    class Stop(Exception):
        pass

    seen = []

    def interrupt():
        if len(seen) >= 3:
            raise Stop
    with pytest.raises(Stop):
        style_transfer(images(2, 32, 32), stripes(32, 32), method="gatys", network=net, iterations=50,
                       style_layers=STYLE_LAYERS, progress=lambda s, t, l: seen.append(s), check_interrupt=interrupt)
    assert seen == [1, 2, 3]


def test_gatys_deterministic_for_seed_and_runs_under_inference_mode():
    kw = dict(method="gatys", iterations=4, init="noise", style_layers=STYLE_LAYERS, content_layers=("relu2_2",))
    content, style = images(1, 32, 32), stripes(32, 32)
    with torch.inference_mode():  # how ComfyUI executes nodes, network created there too
        net = small_vgg()
        a = style_transfer(content, style, network=net, seed=7, **kw)
    b = style_transfer(content, style, network=small_vgg(), seed=7, **kw)
    c = style_transfer(content, style, network=small_vgg(), seed=8, **kw)
    assert torch.equal(a, b) and not torch.allclose(a, c)


# ------------------------------------------------------------------------------------------ colour, layout
def chroma(img):
    return kornia.color.rgb_to_yuv(nchw(img[..., :3]))[:, 1:]


def test_colour_preservation_keeps_content_chroma():
    fast = small_fast((8, 8, 8), 1, seed=6)
    content = images(2, 32, 32, seed=3)
    plain = style_transfer(content, method="fast", network=fast)
    kept = style_transfer(content, method="fast", network=fast, preserve_color="luminance")
    err_plain = (chroma(plain) - chroma(content)).abs().mean()
    err_kept = (chroma(kept) - chroma(content)).abs().mean()
    assert err_kept < 0.01 and err_kept < 0.2 * err_plain
    y = lambda im: kornia.color.rgb_to_yuv(nchw(im))[:, :1]
    assert (y(kept) - y(plain)).abs().mean() < 0.02  # the stylised luminance is what is kept
    # histogram matching gives the style image the content's Lab statistics
    matched = match_color(nchw(stripes()), nchw(content))
    s_lab, c_lab = kornia.color.rgb_to_lab(matched), kornia.color.rgb_to_lab(nchw(content))
    assert torch.allclose(s_lab.mean(dim=(0, 2, 3)), c_lab.mean(dim=(0, 2, 3)), atol=1.5)
    out = style_transfer(content, stripes(), method="adain", network=small_adain(), preserve_color="histogram")
    assert out.shape == content.shape


def test_any_size_batches_and_channel_layouts():
    pair = small_adain()
    rgba = torch.cat([images(3, 37, 29), torch.rand(3, 37, 29, 1)], -1)
    out = style_transfer(rgba, stripes(20, 24), method="adain", network=pair)
    assert out.shape == (3, 37, 29, 4) and torch.equal(out[..., 3], rgba[..., 3])
    gray = images(1, 23, 31)[..., :1]
    assert style_transfer(gray, method="fast", network=TransformerNet((4, 4, 4), 1)).shape == (1, 23, 31, 1)
    small = style_transfer(images(2, 40, 40), stripes(), method="adain", network=pair, size=24)
    assert small.shape == (2, 40, 40, 3)
    per_frame = style_transfer(images(2, 24, 24), torch.cat([stripes(24, 24), images(1, 24, 24)]), method="adain",
                               network=pair)
    assert not torch.allclose(per_frame[0], per_frame[1])
    with pytest.raises(ValueError, match="style batch"):
        style_transfer(images(2, 24, 24), stripes().repeat(3, 1, 1, 1), method="adain", network=pair)
    with pytest.raises(ValueError, match="needs a style image"):
        style_transfer(images(1), method="adain", network=pair)
    with pytest.raises(StyleNetworkLoadError, match="fast_style"):
        style_transfer(images(1), method="fast", network=small_vgg())


# ------------------------------------------------------------------------------------------ sequences
def static_sequence(n=6, h=96, w=128, size=16, step=8):
    """A fixed textured background with a bright square moving along the top edge."""
    bg = images(1, h, w, seed=9)[0]
    frames = bg.unsqueeze(0).repeat(n, 1, 1, 1)
    for t in range(n):
        frames[t, 2:2 + size, 4 + step * t: 4 + size + step * t] = torch.tensor([1.0, 0.9, 0.1])
    return frames


def frame_change(frames_out, frames_in, far):
    """Mean absolute frame-to-frame output change over pixels farther than ``far`` px from any input change."""
    moving = (frames_in[1:] - frames_in[:-1]).abs().amax(-1, keepdim=True).amax(0)  # [H, W, 1]
    moving = torch.nn.functional.max_pool2d(moving.permute(2, 0, 1)[None], 2 * far + 1, 1, far)[0, 0] > 0
    static = ~moving
    assert static.float().mean() > 0.3
    return (frames_out[1:] - frames_out[:-1]).abs().amax(-1)[:, static].mean().item()


def test_frame_consistency_reduces_flicker_on_static_background():
    # Per-frame instance norm / AdaIN statistics change with the moving square, so the whole frame shifts;
    # with consistency=True one mapping serves all frames and static regions change only within the
    # networks' receptive field of the square.
    seq = static_sequence()
    fast = small_fast()
    base = frame_change(style_transfer(seq, method="fast", network=fast), seq, far=24)
    stable = frame_change(style_transfer(seq, method="fast", network=fast, consistency=True), seq, far=24)
    assert base > 1e-3 and stable < 0.1 * base, (base, stable)
    # temporal blending on top holds static regions exactly (even inside the receptive field)
    near = frame_change(style_transfer(seq, method="fast", network=fast, consistency=True), seq, far=4)
    held = frame_change(style_transfer(seq, method="fast", network=fast, consistency=True,
                                       temporal_blend_weight=1.0), seq, far=4)
    half = frame_change(style_transfer(seq, method="fast", network=fast, consistency=True,
                                       temporal_blend_weight=0.5), seq, far=4)
    assert held < 1e-6 and half < 0.75 * near, (near, half, held)

    pair = small_adain()  # VGG to relu4_1 + decoder: a receptive field of ~70 px, hence the larger frames
    seq = static_sequence(5, 160, 160, 24, 10)
    base = frame_change(style_transfer(seq, stripes(), method="adain", network=pair), seq, far=64)
    stable = frame_change(style_transfer(seq, stripes(), method="adain", network=pair, consistency=True), seq, far=64)
    assert base > 1e-4 and stable < 0.05 * base, (base, stable)
    a = style_transfer(seq[:2], stripes(), method="adain", network=pair, consistency=True)
    assert torch.equal(a, style_transfer(seq[:2], stripes(), method="adain", network=pair, consistency=True))


# ------------------------------------------------------------------------------------------ files, API
def test_required_files_and_missing_files():
    table = required_files()
    assert set(table) == {"gatys", "adain", "fast"}
    names = {m: [f.filename for f in files] for m, files in table.items()}
    assert "vgg19-dcbb9e9d.pth" in names["gatys"] and names["adain"] == ["vgg_normalised.pth", "decoder.pth"]
    assert "candy.pth" in names["fast"]
    tv = table["gatys"][0]
    assert tv.sha256_prefix == "dcbb9e9d" and tv.filename.split("-")[1].startswith(tv.sha256_prefix)
    assert all(f.sha256 is None and f.source for files in table.values() for f in files)
    assert [f.filename for f in missing_files("adain", ["vgg_normalised.pth"])] == ["decoder.pth"]
    assert missing_files("gatys", ["x/vgg19-d01eb7cb.pth"]) == [] and missing_files("fast", []) != []


def test_public_api_and_import_hygiene():
    assert models.load_style_network is load_style_network and models.style_transfer is style_transfer
    code = ("import sys; sys.path.insert(0, %r); import models.style, models; models.style_transfer; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('torchvision', 'comfy', 'nodes', 'folder_paths')]; "
            "assert not bad, bad" % str(REPO))
    subprocess.run([sys.executable, "-c", code], check=True)
    allowed = {"torch", "numpy", "safetensors", "kornia", "PIL"} | set(sys.stdlib_module_names)
    for path in (REPO / "models" / "style").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                roots = [] if node.level else [node.module.split(".")[0]]  # relative imports are fine
            else:
                continue
            assert set(roots) <= allowed, (path.name, roots)
