"""Translator checkpoint detection and loading: layouts, wrappers, formats, and every bad file refused clearly."""
from __future__ import annotations

import os
import pickle
import re
import warnings
from collections import OrderedDict

import pytest
import torch

import models
from models.translator import ResnetGenerator, TranslatorLoadError, UnetGenerator, load_translator, save_translator

RESNET = "a_resnet9_in_ngf16"
UNET = "c_unet256_bn_dropout_ngf8"


@pytest.fixture
def resnet_sd(pix2pix_fixtures):
    return torch.load(pix2pix_fixtures / f"{RESNET}_latest_net_G.pth", weights_only=True)


@pytest.fixture
def unet_sd(pix2pix_fixtures):
    return torch.load(pix2pix_fixtures / f"{UNET}_latest_net_G.pth", weights_only=True)


@pytest.fixture
def x():
    return torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _same(a, b, x, tol=1e-6):
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item() <= tol


def _randomize(model):
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.1)
        for name, b in model.named_buffers():
            if name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
            elif name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.1)
    return model.eval()


def _expect(fn, *patterns):
    with pytest.raises(TranslatorLoadError) as info:
        fn()
    msg = str(info.value)
    for p in patterns:
        assert re.search(p, msg, re.I), f"{p!r} not in {msg!r}"
    return msg


# ------------------------------------------------------------------------------------------ accepted layouts

def test_prefix_and_wrappers(resnet_sd, x):
    ref = load_translator(resnet_sd)
    variants = {
        "module": OrderedDict(("module." + k, v) for k, v in resnet_sd.items()),
        "state_dict": {"state_dict": resnet_sd, "epoch": 200},
        "netG": {"netG": OrderedDict(("module." + k, v) for k, v in resnet_sd.items()), "optimizer": {"lr": 1}},
        "model": {"model": {"generator": resnet_sd}},
        "flat_prefixed": OrderedDict([(f"netG_A.{k}", v) for k, v in resnet_sd.items()]
                                     + [("netD_A.model.0.weight", torch.zeros(16, 3, 4, 4))]),
    }
    for name, sd in variants.items():
        m = load_translator(sd)
        assert m.config() == ref.config(), name
        assert _same(m, ref, x), name


def test_cyclegan_pair_direction(resnet_sd, x):
    other = OrderedDict((k, v.flip(0) if v.ndim == 1 else v * 0.5) for k, v in resnet_sd.items())
    pair = {"G_A": resnet_sd, "G_B": other}
    a = load_translator(pair)
    a2 = load_translator(pair, direction="AtoB")
    b = load_translator(pair, direction="BtoA")
    assert _same(a, a2, x) and not _same(a, b, x)
    assert _same(b, load_translator(other), x)
    with pytest.raises(ValueError):
        load_translator(pair, direction="sideways")


def test_old_instance_norm_running_stats_dropped(resnet_sd, x):
    ref = load_translator(resnet_sd)
    old = OrderedDict()
    for k, v in resnet_sd.items():
        old[k] = v
        if k.endswith(".bias") and (k.startswith("model.1.") or ".conv_block." in k):
            prefix = k.rsplit(".", 2)[0]
            idx = int(k.rsplit(".", 2)[1]) + 1
            c = v.shape[0]
            old[f"{prefix}.{idx}.running_mean"] = torch.randn(c)
            old[f"{prefix}.{idx}.running_var"] = torch.rand(c) + 0.5
            old[f"{prefix}.{idx}.num_batches_tracked"] = torch.tensor(7)
    assert len(old) > len(resnet_sd) + 30
    m = load_translator(old)
    assert m.norm == "instance" and _same(m, ref, x)


def test_third_party_affine_instance_norm_renamed_container(x):
    mine = _randomize(ResnetGenerator(3, 3, ngf=8, n_blocks=3, norm="instance", affine=True))
    # a third-party naming: stem / down / res_blocks.N.block / up / head
    rename = OrderedDict()
    for k, v in mine.state_dict().items():
        parts = k.split(".")
        i = int(parts[1])
        if 10 <= i < 13:
            new = f"res_blocks.{i - 10}.block.{'.'.join(parts[3:])}"
        elif i < 10:
            new = f"encoder.layer{i}.{parts[-1]}"
        else:
            new = f"decoder.l{i}.{parts[-1]}"
        rename[new] = v
    m = load_translator(rename)
    assert (m.arch, m.n_blocks, m.norm, m.affine, m.ngf) == ("resnet", 3, "instance", True, 8)
    assert _same(m, mine, x)


def test_padding_dropout_and_unet_variants_detected(x):
    cases = [
        ResnetGenerator(3, 3, ngf=8, n_blocks=6, norm="instance", padding_type="zero", use_dropout=True),
        ResnetGenerator(1, 3, ngf=8, n_blocks=2, norm="batch", use_dropout=True),
        ResnetGenerator(3, 1, ngf=4, n_blocks=0, norm="none"),
        UnetGenerator(3, 3, depth=7, ngf=4, norm="instance", use_dropout=False),
        UnetGenerator(1, 2, depth=9, ngf=2, norm="batch"),
        UnetGenerator(3, 3, depth=5, ngf=4, norm="none", use_dropout=False),
    ]
    for net in cases:
        net = _randomize(net)
        m = load_translator(net.state_dict())
        cfg = net.config()
        if cfg["arch"] == "unet":
            cfg["use_dropout"] = m.use_dropout  # dropout leaves no trace in a U-Net's weights
        assert m.config() == cfg, cfg
        size = 2 ** getattr(net, "depth", 3)
        xi = torch.rand(1, net.input_nc, size, size) * 2 - 1
        assert _same(m, net, xi)


def test_safetensors_and_gpu_saved_files(tmp_path, resnet_sd, unet_sd, x, pix2pix_fixtures, monkeypatch):
    from safetensors.torch import save_file

    for name, sd in (("r", resnet_sd), ("u", unet_sd)):
        ref = load_translator(sd)
        p = tmp_path / f"{name}_plain.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(p))  # keys come back sorted alphabetically
        m = load_translator(p)
        assert m.config() == ref.config() and m.name == f"{name}_plain"
        xi = torch.rand(1, 3, 256, 256) * 2 - 1 if name == "u" else x
        assert _same(m, ref, xi)
    # a checkpoint whose storages were saved on a GPU loads on CPU (map_location)
    import torch.serialization as ser

    monkeypatch.setattr(ser, "location_tag", lambda storage: "cuda:0")
    gpu = tmp_path / "gpu_latest_net_G.pth"
    torch.save(resnet_sd, gpu)
    monkeypatch.undo()
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError):
            torch.load(gpu, weights_only=True)
    m = load_translator(gpu)
    assert _same(m, load_translator(resnet_sd), x)


def test_own_format_round_trip(tmp_path, unet_sd):
    m = load_translator(unet_sd, use_dropout=False, train_size=512)
    path = save_translator(m, tmp_path / "sub" / "facades_like.safetensors", metadata={"card": {"steps": 3}})
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    assert '"format": "gan-pack-translator"' in meta["gan_pack"] and meta["card"] == '{"steps": 3}'
    back = load_translator(path)
    assert back.config() == m.config() and back.name == "facades_like" and not back.training
    xi = torch.rand(1, 3, 256, 256) * 2 - 1
    assert _same(back, m, xi, tol=0)
    assert not list(tmp_path.glob("sub/*.tmp"))
    assert load_translator(path, name="Facades").name == "Facades"


def test_public_api_lazy_names():
    for name in ("Translator", "load_translator", "save_translator", "translate", "TranslatorLoadError"):
        assert getattr(models, name) is not None
    assert issubclass(models.TranslatorLoadError, ValueError)
    from models.translator.base import architecture_builder

    assert architecture_builder("resnet") is ResnetGenerator and architecture_builder("unet") is UnetGenerator


# ------------------------------------------------------------------------------------------ refused inputs

def test_stylegan_and_discriminator_state_dicts_are_named():
    sg = OrderedDict([("mapping.fc0.weight", torch.zeros(8, 8)), ("mapping.fc0.bias", torch.zeros(8)),
                      ("synthesis.b4.const", torch.zeros(8, 4, 4)),
                      ("synthesis.b4.conv1.weight", torch.zeros(8, 8, 3, 3))])
    _expect(lambda: load_translator(sg), "StyleGAN")
    d = OrderedDict([("model.0.weight", torch.zeros(8, 3, 4, 4)), ("model.0.bias", torch.zeros(8)),
                     ("model.2.weight", torch.zeros(16, 8, 4, 4)), ("model.3.weight", torch.ones(16)),
                     ("model.3.bias", torch.zeros(16)), ("model.3.running_mean", torch.zeros(16)),
                     ("model.3.running_var", torch.ones(16)), ("model.5.weight", torch.zeros(1, 16, 4, 4)),
                     ("model.5.bias", torch.zeros(1))])
    _expect(lambda: load_translator(d), "discriminator")
    _expect(lambda: load_translator({"epoch": 3, "lr": 0.1}), "no generator")
    lin = OrderedDict([("fc.weight", torch.zeros(4, 4, 3)), ("fc.bias", torch.zeros(4))])
    _expect(lambda: load_translator(lin), "unsupported layer|not a ResNet")


def test_unsupported_norm_is_described(unet_sd):
    bad = OrderedDict()
    for k, v in unet_sd.items():
        bad[k] = v
        if k.endswith("running_var"):
            bad[k.replace("running_var", "gamma_scale")] = torch.ones_like(v)
    _expect(lambda: load_translator(bad), r"U-Net with 8 downsamplings", "unsupported norm layer", "gamma_scale")


def test_truncated_random_text_and_empty_files(tmp_path, pix2pix_fixtures):
    blob = (pix2pix_fixtures / f"{RESNET}_latest_net_G.pth").read_bytes()
    cases = {
        "trunc.pth": (blob[: len(blob) // 2], r"truncated|corrupt"),
        "random.pth": (os.urandom(4096).replace(b"PK", b"pk").lstrip(b"\x80") or b"x", r"random bytes|unknown"),
        "empty.ckpt": (b"", r"empty"),
        "notes.pt": (b"hello, this is not a model\n" * 10, r"text file"),
        "cut.safetensors": (b"\x40\x00\x00\x00\x00\x00\x00\x00{\"a\": {\"dtype\"", r"safetensors"),
    }
    for name, (data, pattern) in cases.items():
        (tmp_path / name).write_bytes(data)
        _expect(lambda: load_translator(tmp_path / name), pattern, re.escape(name))
    with pytest.raises(FileNotFoundError):
        load_translator(tmp_path / "missing.pth")
    scripted = torch.jit.script(torch.nn.Conv2d(3, 3, 3))
    scripted.save(str(tmp_path / "scripted.pt"))
    with warnings.catch_warnings():  # torch warns about TorchScript archives before refusing them
        warnings.simplefilter("ignore")
        _expect(lambda: load_translator(tmp_path / "scripted.pt"), "TorchScript", "refused")
    torch.save([torch.zeros(3)], tmp_path / "list.pth")
    _expect(lambda: load_translator(tmp_path / "list.pth"), "state dict", "list")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickle_with_code_is_refused_and_never_runs(tmp_path, resnet_sd):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil_latest_net_G.pth"
    torch.save({"state_dict": resnet_sd, "hook": _Evil(marker)}, path)
    _expect(lambda: load_translator(path), "refused to load", "nothing from the file was executed")
    assert not marker.exists()
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps({"G_ema": _Evil(marker), "note": "torch_utils.persistence"}))
    _expect(lambda: load_translator(raw), "StyleGAN|code")
    assert not marker.exists()


def test_other_gan_pack_files_are_named(tmp_path):
    from safetensors.torch import save_file

    p = tmp_path / "ffhq_small.safetensors"
    save_file({"mapping.fc0.weight": torch.zeros(4, 4)}, str(p),
              metadata={"gan_pack": '{"format": "gan-pack-stylegan", "version": 1, "config": {"arch": "sg2"}}'})
    _expect(lambda: load_translator(p), "StyleGAN", "not a Pix2Pix/CycleGAN translator")


def test_generator_submodule_names_are_not_mistaken_for_wrappers(x):
    mine = _randomize(ResnetGenerator(3, 3, ngf=8, n_blocks=2, norm="instance"))
    sd = mine.state_dict()
    # "model.*" for the body but the last conv under another name: nothing may be dropped
    renamed = OrderedDict((k if not k.startswith("model.19.") else k.replace("model.19.", "head."), v)
                          for k, v in sd.items())
    assert any(k.startswith("head.") for k in renamed)
    m = load_translator(renamed)
    assert _same(m, mine, x)
