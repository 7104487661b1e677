"""Translator generators through spandrel's ModelLoader (what ComfyUI's core Load Upscale Model uses)."""
from __future__ import annotations

import pytest
import torch

from models.translator import load_translator, translate
from models.translator.spandrel_arch import ARCH_ID, install

spandrel = pytest.importorskip("spandrel")


def test_install_is_idempotent_and_loads_fixtures(pix2pix_fixtures):
    assert install() and install()
    assert ARCH_ID in spandrel.MAIN_REGISTRY
    assert sum(a.architecture.id == ARCH_ID for a in spandrel.MAIN_REGISTRY) == 1
    for stem in ("a_resnet9_in_ngf16", "c_unet256_bn_dropout_ngf8"):
        sd = torch.load(pix2pix_fixtures / f"{stem}_latest_net_G.pth", weights_only=True)
        desc = spandrel.ModelLoader().load_from_state_dict(sd).eval()
        assert isinstance(desc, spandrel.ImageModelDescriptor)
        assert desc.architecture.id == ARCH_ID and desc.scale == 1
        io = torch.load(pix2pix_fixtures / f"{stem}_io.pt", weights_only=True)
        x01 = (io["input"].float() + 1) / 2
        with torch.no_grad():
            out = desc(x01)
        assert (out - (io["output_eval"] + 1) / 2).abs().max() <= 1e-5
        # odd size: spandrel pads to the model's multiple itself and crops back
        small = x01[:, :, :37, :45]
        with torch.no_grad():
            got = desc(small)
        assert got.shape == small.shape and got.min() >= 0 and got.max() <= 1
    # a "module." prefixed file goes through spandrel's canonicalisation too
    sd = torch.load(pix2pix_fixtures / "a_resnet9_in_ngf16_latest_net_G.pth", weights_only=True)
    desc = spandrel.ModelLoader().load_from_state_dict({"module." + k: v for k, v in sd.items()})
    assert desc.architecture.id == ARCH_ID
    # a CycleGAN pair file runs its A->B generator
    pair = {"G_A": sd, "G_B": {k: v * 0 for k, v in sd.items()}}
    desc = spandrel.ModelLoader().load_from_state_dict(pair)
    assert desc.architecture.id == ARCH_ID
    assert torch.equal(desc.model.model[1].weight, sd["model.1.weight"])


def test_saved_translator_file_through_spandrel(tmp_path):
    install()
    from safetensors.torch import load_file

    from models.translator import UnetGenerator, save_translator

    torch.manual_seed(0)
    u = UnetGenerator(3, 3, depth=5, ngf=4, norm="batch").eval()
    path = save_translator(u, tmp_path / "u.safetensors")
    desc = spandrel.ModelLoader().load_from_state_dict(load_file(str(path)))  # what ComfyUI's loader passes
    assert desc.architecture.id == ARCH_ID and desc.size_requirements.multiple_of == 1  # the call pads itself
    x = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        assert (desc(x) - (u(x * 2 - 1) + 1) / 2).abs().max() <= 1e-6


def test_real_upscalers_are_not_taken():
    install()
    import importlib

    RRDBNet = importlib.import_module("spandrel.architectures.ESRGAN.__arch.RRDB").RRDBNet
    SRVGGNetCompact = importlib.import_module("spandrel.architectures.Compact.__arch.SRVGG").SRVGGNetCompact

    for net in (RRDBNet(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=2),
                SRVGGNetCompact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2)):
        desc = spandrel.ModelLoader().load_from_state_dict(net.state_dict())
        assert desc.architecture.id != ARCH_ID
    bogus = {"conv.weight": torch.zeros(8, 3, 7, 7), "fc.weight": torch.zeros(4, 4)}
    with pytest.raises(spandrel.UnsupportedModelError):
        spandrel.ModelLoader().load_from_state_dict(bogus)


def test_gray_model_and_rgb_images_through_spandrel():
    install()
    from models.translator import ResnetGenerator

    torch.manual_seed(0)
    g = ResnetGenerator(1, 1, ngf=4, n_blocks=1, norm="instance").eval()
    desc = spandrel.ModelLoader().load_from_state_dict(g.state_dict())
    x = torch.rand(1, 3, 20, 24)
    with torch.no_grad():
        out = desc(x)
    assert out.shape == (1, 3, 20, 24)
    ref = translate(load_translator(g.state_dict()), x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    assert (out - ref).abs().max() <= 1e-5
