"""StyleGAN file formats: official-style network pickles read without executing anything, malicious pickles
refused before anything runs, rosinality checkpoints, bare state dicts, gan-pack safetensors, the converter."""
from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
import textwrap
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from models.stylegan import StyleGAN2Generator, StyleGANLoadError, load_stylegan, save_stylegan, seeds_to_z

REPO = Path(__file__).resolve().parents[2]

_MODULE_KEYS = ("training", "_parameters", "_buffers", "_non_persistent_buffers_set", "_modules", "_backward_hooks",
                "_forward_hooks", "_forward_pre_hooks", "_state_dict_hooks", "_load_state_dict_pre_hooks")

# What a reference module's source would be; the loader must never execute it. If it ran, it would write MARKER.
_EVIL_SRC = "open({marker!r}, 'w').write('module source was executed')\n"


def _tiny_generator(seed=0, c_dim=0):
    torch.manual_seed(seed)
    G = StyleGAN2Generator(z_dim=16, c_dim=c_dim, w_dim=16, img_resolution=16, img_channels=3,
                           mapping_kwargs={"num_layers": 2}, synthesis_kwargs={"channel_base": 256, "channel_max": 16})
    with torch.no_grad():
        G.mapping.w_avg.normal_()
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    return G


def _reference_kwargs(G, easydict):
    cfg = G.config()
    kwargs = easydict(z_dim=cfg["z_dim"], w_dim=cfg["w_dim"], c_dim=cfg["c_dim"], img_resolution=cfg["img_resolution"],
                      img_channels=cfg["img_channels"], mapping_kwargs=easydict(num_layers=2),
                      synthesis_kwargs=easydict(channel_base=256, channel_max=16, num_fp16_res=4, conv_clamp=None))
    return kwargs


def make_network_pickle(tmp_path, G, *, protocol=4, marker=None, extra=None, drop_weights=False, class_name=None):
    """A pickle with the structure of an NVlabs training snapshot, made with a stand-in for the reference's
    torch_utils.persistence / dnnlib modules that is removed again before the loader runs."""
    pkg = tmp_path / "fake_reference"
    (pkg / "torch_utils").mkdir(parents=True, exist_ok=True)
    (pkg / "dnnlib").mkdir(parents=True, exist_ok=True)
    (pkg / "torch_utils" / "__init__.py").write_text("")
    (pkg / "torch_utils" / "persistence.py").write_text(textwrap.dedent("""
        def _reconstruct_persistent_obj(meta):
            raise RuntimeError("the reference reconstruct hook must never run")
    """))
    (pkg / "dnnlib" / "__init__.py").write_text("")
    (pkg / "dnnlib" / "util.py").write_text(textwrap.dedent("""
        class EasyDict(dict):
            def __getattr__(self, name):
                try:
                    return self[name]
                except KeyError:
                    raise AttributeError(name)
            def __setattr__(self, name, value):
                self[name] = value
    """))
    sys.path.insert(0, str(pkg))
    try:
        import importlib

        persistence = importlib.import_module("torch_utils.persistence")
        util = importlib.import_module("dnnlib.util")
        src = _EVIL_SRC.format(marker=str(marker)) if marker else "# reference module source\n"
        top_kwargs = _reference_kwargs(G, util.EasyDict)

        class RefPickler(pickle.Pickler):
            def reducer_override(self, obj):
                if not isinstance(obj, torch.nn.Module):
                    return NotImplemented
                state = {k: obj.__dict__[k] for k in _MODULE_KEYS if k in obj.__dict__}
                for k in ("_parameters", "_buffers", "_modules"):
                    state[k] = OrderedDict(state[k])
                if drop_weights:
                    state["_parameters"], state["_buffers"], state["_modules"] = OrderedDict(), OrderedDict(), OrderedDict()
                state["_init_args"] = ()
                state["_init_kwargs"] = top_kwargs if obj is G else util.EasyDict()
                state["img_resolution_np"] = np.int64(16)  # numpy scalars/arrays as stored by SG3 layers
                state["size_np"] = np.asarray([16, 16])
                # the reference stores the bare class name; its module is only in module_src
                name = class_name if (obj is G and class_name) else ("Generator" if obj is G else type(obj).__name__)
                meta = dict(type="class", version=6, module_src=src, class_name=name, state=state)
                return persistence._reconstruct_persistent_obj, (meta,)

        snapshot = dict(G=G, D=None, G_ema=G, augment_pipe=None,
                        training_set_kwargs=util.EasyDict(class_name="training.dataset.ImageFolderDataset", path="x.zip",
                                                          resolution=16, use_labels=False, max_size=None, xflip=False))
        if extra is not None:
            snapshot["extra"] = extra
        buf = io.BytesIO()
        RefPickler(buf, protocol=protocol).dump(snapshot)
    finally:
        sys.path.remove(str(pkg))
        for mod in ("torch_utils.persistence", "torch_utils", "dnnlib.util", "dnnlib"):
            sys.modules.pop(mod, None)
    path = tmp_path / "network-snapshot.pkl"
    path.write_bytes(buf.getvalue())
    return path


def _same_output(G, H, seeds=(1, 2)):
    z = seeds_to_z(list(seeds), G.z_dim)
    with torch.no_grad():
        return torch.equal(G(z, None, truncation_psi=0.7), H(z, None, truncation_psi=0.7))


@pytest.mark.parametrize("protocol", [3, 4])
def test_network_pickle_loads_without_reference_code(tmp_path, protocol):
    G = _tiny_generator()
    marker = tmp_path / "pwned.txt"
    path = make_network_pickle(tmp_path, G, protocol=protocol, marker=marker)
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    H = load_stylegan(path)
    assert not marker.exists(), "the module source stored in the pickle was executed"
    assert "torch_utils" not in sys.modules and "dnnlib" not in sys.modules
    assert H.family == "stylegan2" and H.config()["synthesis_kwargs"]["num_fp16_res"] == 4
    for k, v in G.state_dict().items():
        assert torch.equal(v, H.state_dict()[k]), k
    assert _same_output(G, H)


def test_stylegan3_repo_stylegan2_with_flat_kwargs(tmp_path, monkeypatch):
    """The stylegan3 repository's StyleGAN2 stores its synthesis kwargs flat, with fused_modconv_default."""
    G = _tiny_generator(1)

    def flat_kwargs(G_, easydict):
        return easydict(z_dim=16, w_dim=16, c_dim=0, img_resolution=16, img_channels=3,
                        mapping_kwargs=easydict(num_layers=2), channel_base=256, channel_max=16, num_fp16_res=4,
                        conv_clamp=256, fused_modconv_default="inference_only")

    monkeypatch.setattr(sys.modules[__name__], "_reference_kwargs", flat_kwargs)
    H = load_stylegan(make_network_pickle(tmp_path, G))
    assert H.config()["synthesis_kwargs"]["conv_clamp"] == 256
    assert _same_output(G, H)


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


class _EvalPayload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"open({str(self.marker)!r}, 'w').write('x')",))


@pytest.mark.parametrize("payload_cls,global_name", [(_Payload, "system"), (_EvalPayload, "eval")])
def test_code_executing_pickle_is_refused_before_anything_runs(tmp_path, payload_cls, global_name):
    G = _tiny_generator()
    marker = tmp_path / "payload_ran.txt"
    # the payload sits after a genuine G_ema: the static scan must refuse before any object is built
    path = make_network_pickle(tmp_path, G, extra=payload_cls(marker))
    with pytest.raises(StyleGANLoadError, match=global_name):
        load_stylegan(path)
    assert not marker.exists()
    # a bare payload pickle too
    bare = tmp_path / "bare.pkl"
    bare.write_bytes(pickle.dumps(payload_cls(marker)))
    with pytest.raises(StyleGANLoadError, match="nothing from the file was executed"):
        load_stylegan(bare)
    assert not marker.exists()


def test_restricted_unpickler_refuses_even_when_scan_is_bypassed(tmp_path):
    from models.stylegan.safe_pickle import UnsafePickleError, _RestrictedUnpickler

    data = pickle.dumps(_Payload(tmp_path / "m"))
    with pytest.raises(UnsafePickleError, match="system"):
        _RestrictedUnpickler(io.BytesIO(data)).load()
    assert not (tmp_path / "m").exists()


def test_extension_codes_and_persistent_ids_are_refused(tmp_path):
    from models.stylegan.safe_pickle import UnsafePickleError, safe_load_pickle

    for data in (b"\x80\x02\x82\x01.", b"\x80\x02X\x01\x00\x00\x00aQ."):  # EXT1 1; BINPERSID 'a'
        with pytest.raises(UnsafePickleError):
            safe_load_pickle(data)


def test_record_without_weights_is_an_error(tmp_path):
    path = make_network_pickle(tmp_path, _tiny_generator(), drop_weights=True)
    with pytest.raises(StyleGANLoadError, match="no weights"):
        load_stylegan(path)


def test_unknown_network_class_is_named(tmp_path):
    path = make_network_pickle(tmp_path, _tiny_generator(), class_name="Discriminator")
    with pytest.raises(StyleGANLoadError, match="Discriminator"):
        load_stylegan(path)


# ------------------------------------------------------------------------------------------- rosinality

def to_rosinality(G) -> dict:
    """rosinality/stylegan2-pytorch Generator state-dict layout of a reference-layout generator."""
    sd = G.state_dict()
    out = {}
    for i in range(G.mapping.num_layers):
        out[f"style.{i + 1}.weight"] = sd[f"mapping.fc{i}.weight"]
        out[f"style.{i + 1}.bias"] = sd[f"mapping.fc{i}.bias"]
    blur = torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1]))
    blur = blur / blur.sum()

    def styled(dst, src, noise_idx, up):
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.noise.weight"] = sd[f"{src}.noise_strength"].reshape(1)
        out[f"{dst}.activate.bias"] = sd[f"{src}.bias"]
        out[f"noises.noise_{noise_idx}"] = sd[f"{src}.noise_const"][None, None]
        if up:
            out[f"{dst}.conv.blur.kernel"] = blur * 4

    def rgb(dst, src, up):
        out[f"{dst}.conv.weight"] = sd[f"{src}.weight"][None]
        out[f"{dst}.conv.modulation.weight"] = sd[f"{src}.affine.weight"]
        out[f"{dst}.conv.modulation.bias"] = sd[f"{src}.affine.bias"]
        out[f"{dst}.bias"] = sd[f"{src}.bias"].reshape(1, -1, 1, 1)
        if up:
            out[f"{dst}.upsample.kernel"] = blur * 4

    out["input.input"] = sd["synthesis.b4.const"][None]
    styled("conv1", "synthesis.b4.conv1", 0, False)
    rgb("to_rgb1", "synthesis.b4.torgb", False)
    for k, res in enumerate(G.synthesis.block_resolutions[1:]):
        styled(f"convs.{2 * k}", f"synthesis.b{res}.conv0", 2 * k + 1, True)
        styled(f"convs.{2 * k + 1}", f"synthesis.b{res}.conv1", 2 * k + 2, False)
        rgb(f"to_rgbs.{k}", f"synthesis.b{res}.torgb", True)
    return out


def test_rosinality_checkpoint(tmp_path):
    G = _tiny_generator(2)
    g_ema = to_rosinality(G)
    path = tmp_path / "550000.pt"
    torch.save({"g_ema": g_ema, "latent_avg": G.w_avg.clone(), "g": g_ema, "d": {}}, path)
    H = load_stylegan(path)
    assert torch.equal(H.w_avg, G.w_avg)
    z = seeds_to_z([5, 6], 16)
    with torch.no_grad():
        a, b = G(z, None, 0.7), H(z, None, 0.7)
    assert torch.allclose(a, b, atol=1e-5 * float(a.abs().max()))
    # train.py checkpoints: no latent_avg (w_avg estimated from the mapping), argparse args stored
    import argparse

    torch.save({"g_ema": g_ema, "args": argparse.Namespace(size=16, latent=16, n_mlp=2)}, path)
    H2 = load_stylegan(path)
    with torch.no_grad():
        expected = G.mapping(torch.randn(4096, 16, generator=torch.Generator().manual_seed(0)), None)[:, 0].mean(0)
    assert torch.allclose(H2.w_avg, expected, atol=1e-5)


def _rosinality_forward(g: dict, z: torch.Tensor, latent_avg: torch.Tensor, truncation: float) -> torch.Tensor:
    """A clean-room statement of rosinality's Generator.forward (single style, stored noise), written from its
    published definition, independent of models.stylegan: PixelNorm + EqualLinear(lr_mul 0.01, fused lrelu)
    mapping; modulated convs with demodulation; up-convs as conv_transpose2d (stride 2, no padding) followed
    by a [1,3,3,1] blur (x4) padded (1, 1); ToRGB 1x1 without demodulation plus the skip upsampled by
    zero-insertion and the same blur padded (2, 1); FusedLeakyReLU = leaky_relu(x + b, 0.2) * sqrt(2)."""
    import math

    import torch.nn.functional as F

    def lrelu(x, b):
        return F.leaky_relu(x + b.reshape(1, -1, *([1] * (x.dim() - 2))), 0.2) * math.sqrt(2)

    kern = torch.outer(torch.tensor([1., 3, 3, 1]), torch.tensor([1., 3, 3, 1]))
    kern = kern / kern.sum() * 4

    def blur(x, pad0, pad1):
        c = x.shape[1]
        x = F.pad(x, (pad0, pad1, pad0, pad1))
        return F.conv2d(x, kern.flip([0, 1]).expand(c, 1, 4, 4), groups=c)

    def modconv(name, x, w, demod=True, up=False):
        W = g[f"{name}.conv.weight"][0]
        out_c, in_c, k, _ = W.shape
        mw, mb = g[f"{name}.conv.modulation.weight"], g[f"{name}.conv.modulation.bias"]
        style = F.linear(w, mw / math.sqrt(mw.shape[1]), mb)
        ys = []
        for b in range(x.shape[0]):
            wt = W / math.sqrt(in_c * k * k) * style[b][None, :, None, None]
            if demod:
                wt = wt * torch.rsqrt(wt.pow(2).sum([1, 2, 3], keepdim=True) + 1e-8)
            if up:
                ys.append(blur(F.conv_transpose2d(x[b:b + 1], wt.transpose(0, 1), stride=2), 1, 1))
            else:
                ys.append(F.conv2d(x[b:b + 1], wt, padding=k // 2))
        return torch.cat(ys)

    def styled(name, x, w, noise, up=False):
        y = modconv(name, x, w, up=up) + g[f"{name}.noise.weight"] * noise
        return lrelu(y, g[f"{name}.activate.bias"])

    def to_rgb(name, x, w, skip):
        y = modconv(name, x, w, demod=False) + g[f"{name}.bias"]
        if skip is not None:
            up = torch.zeros(skip.shape[0], skip.shape[1], 2 * skip.shape[2], 2 * skip.shape[3])
            up[:, :, ::2, ::2] = skip
            y = y + blur(up, 2, 1)
        return y

    w = z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    i = 1
    while f"style.{i}.weight" in g:
        W, b = g[f"style.{i}.weight"], g[f"style.{i}.bias"]
        w = lrelu(F.linear(w, W * (0.01 / math.sqrt(W.shape[1]))), b * 0.01)
        i += 1
    w = latent_avg + truncation * (w - latent_avg)
    x = g["input.input"].repeat(z.shape[0], 1, 1, 1)
    x = styled("conv1", x, w, g["noises.noise_0"])
    skip = to_rgb("to_rgb1", x, w, None)
    k = 0
    while f"to_rgbs.{k}.conv.weight" in g:
        x = styled(f"convs.{2 * k}", x, w, g[f"noises.noise_{2 * k + 1}"], up=True)
        x = styled(f"convs.{2 * k + 1}", x, w, g[f"noises.noise_{2 * k + 2}"])
        skip = to_rgb(f"to_rgbs.{k}", x, w, skip)
        k += 1
    return skip


def test_rosinality_checkpoint_renders_what_rosinality_renders(tmp_path):
    """Independent of the key mapping's own round trip: a rosinality-layout checkpoint renders, through
    load_stylegan, the image rosinality's forward (restated in ``_rosinality_forward``) renders from the same
    tensors. This pins the up-convolution's weight orientation: rosinality's and NVlabs' converters both flip
    TF's Conv0_up kernels, so the two PyTorch layouts store them alike and the loader must not flip."""
    G = _tiny_generator(4)
    g_ema = to_rosinality(G)
    torch.manual_seed(1)
    for k, v in g_ema.items():   # break symmetries a flip could hide: random, asymmetric up-conv kernels
        if k.startswith("convs.") and k.endswith(".conv.weight"):
            g_ema[k] = torch.randn_like(v)
    latent_avg = G.w_avg.clone()
    path = tmp_path / "ros.pt"
    torch.save({"g_ema": g_ema, "latent_avg": latent_avg}, path)
    H = load_stylegan(path)
    z = seeds_to_z([3, 4], 16)
    with torch.no_grad():
        ours = H(z, None, 0.7, noise_mode="const")
        theirs = _rosinality_forward(g_ema, z, latent_avg, 0.7)
    assert ours.shape == theirs.shape == (2, 3, 16, 16)
    assert float((ours - theirs).abs().max()) < 1e-4 * float(theirs.abs().max())
    flipped = {k: (v.flip([-2, -1]) if k.startswith("convs.0.") and k.endswith("conv.weight") else v)
               for k, v in g_ema.items()}
    with torch.no_grad():
        wrong = _rosinality_forward(flipped, z, latent_avg, 0.7)
    assert float((ours - wrong).abs().max()) > 1e-2 * float(theirs.abs().max())   # the test can tell


# ------------------------------------------------------------------------------ state dicts and safetensors

def test_bare_state_dict_files_and_gan_pack_roundtrip(tmp_path):
    G = _tiny_generator(3)
    pt = tmp_path / "G.pth"
    torch.save({"G_ema": G.state_dict()}, pt)
    assert _same_output(G, load_stylegan(pt))
    from safetensors.torch import save_file

    st = tmp_path / "bare.safetensors"
    save_file({k: v.contiguous() for k, v in G.state_dict().items()}, str(st))
    assert _same_output(G, load_stylegan(st))
    G.name = "tiny"
    ours = save_stylegan(G, tmp_path / "ours.safetensors")
    H = load_stylegan(ours)
    assert H.config() == G.config() and H.name == "tiny"
    for k, v in G.state_dict().items():
        assert torch.equal(v, H.state_dict()[k])
    save_stylegan(H, tmp_path / "again.safetensors")
    assert (tmp_path / "again.safetensors").read_bytes() == ours.read_bytes()


def test_converter_cli_roundtrips_bit_exactly(tmp_path):
    G = _tiny_generator(4)
    pkl = make_network_pickle(tmp_path, G)
    out = tmp_path / "converted.safetensors"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_stylegan.py"), str(pkl), str(out),
                           "--verify"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "stylegan2 generator: 16x16x3" in proc.stdout and "weights identical" in proc.stdout
    H = load_stylegan(out)
    for k, v in G.state_dict().items():
        assert torch.equal(v, H.state_dict()[k])
    assert _same_output(G, H)
    bad = subprocess.run([sys.executable, str(REPO / "scripts" / "convert_stylegan.py"), str(tmp_path / "nope.pkl")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 1 and "not found" in bad.stderr


def test_clear_errors(tmp_path):
    G = _tiny_generator(5)
    # a Pix2Pix/CycleGAN generator checkpoint
    trans = {"model.0.weight": torch.zeros(8, 3, 7, 7), "model.1.weight": torch.zeros(8),
             "model.1.bias": torch.zeros(8), "model.4.weight": torch.zeros(16, 8, 3, 3)}
    p = tmp_path / "latest_net_G.pth"
    torch.save(trans, p)
    with pytest.raises(StyleGANLoadError, match="Pix2Pix/CycleGAN"):
        load_stylegan(p)
    # random bytes
    rnd = tmp_path / "random.pkl"
    rnd.write_bytes(np.random.RandomState(0).bytes(4096))
    with pytest.raises(StyleGANLoadError):
        load_stylegan(rnd)
    # truncated files of each format
    pkl = make_network_pickle(tmp_path, G)
    data = pkl.read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(StyleGANLoadError, match="truncated"):
        load_stylegan(tmp_path / "cut.pkl")
    st = save_stylegan(G, tmp_path / "g.safetensors")
    sdata = st.read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(sdata[: len(sdata) // 2])
    with pytest.raises(StyleGANLoadError, match="truncated"):
        load_stylegan(tmp_path / "cut.safetensors")
    pt = tmp_path / "g.pt"
    torch.save(G.state_dict(), pt)
    pdata = pt.read_bytes()
    (tmp_path / "cut.pt").write_bytes(pdata[: len(pdata) // 2])
    with pytest.raises(StyleGANLoadError, match="truncated"):
        load_stylegan(tmp_path / "cut.pt")
    with pytest.raises(FileNotFoundError):
        load_stylegan(tmp_path / "missing.pkl")
    # a torch.save of a whole pickled module is refused by the weights-only load
    torch.save(G, tmp_path / "module.pt")
    with pytest.raises(StyleGANLoadError, match="refused to load: the pickle references models.stylegan.sg2"):
        load_stylegan(tmp_path / "module.pt")


# ------------------------------------------------------------------ StyleGAN3 through the same loaders

def test_stylegan3_fixture_through_loaders(tmp_path, stylegan3t_fixtures, monkeypatch):
    pytest.importorskip("models.stylegan.sg3", reason="StyleGAN3 module not present in this checkout")
    import json

    ref = torch.load(stylegan3t_fixtures / "z_ws_img_psi0.7_const.pt", weights_only=True)
    tol = 1e-5 * float(ref["img"].abs().max()) + 1e-6
    G = load_stylegan(stylegan3t_fixtures / "G_ema_state_dict.pt")  # bare state dict: config inferred
    assert G.family.startswith("stylegan3") and G.num_ws == 16
    with torch.no_grad():
        assert (G(ref["z"], None, truncation_psi=0.7) - ref["img"]).abs().max() <= tol
    H = load_stylegan(save_stylegan(G, tmp_path / "sg3.safetensors"))
    assert all(torch.equal(v, H.state_dict()[k]) for k, v in G.state_dict().items())
    kwargs = json.loads((stylegan3t_fixtures / "generator_kwargs.json").read_text())

    def sg3_kwargs(G_, easydict):
        return easydict(**{k: easydict(**v) if isinstance(v, dict) else v for k, v in kwargs.items()})

    monkeypatch.setattr(sys.modules[__name__], "_reference_kwargs", sg3_kwargs)
    P = load_stylegan(make_network_pickle(tmp_path, G))
    with torch.no_grad():
        assert (P(ref["z"], None, truncation_psi=0.7) - ref["img"]).abs().max() <= tol
