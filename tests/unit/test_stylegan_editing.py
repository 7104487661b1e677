"""StyleGAN semantic editing (models.stylegan.editing): SeFa and GANSpace against independent computations on the
shared reference fixtures, edits, direction files and the directions cache."""
from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pytest
import torch

from models.stylegan import editing as ed
from models.stylegan.sg2 import StyleGAN2Generator
from models.stylegan.sg3 import StyleGAN3Generator


def _load(name, cls):
    from conftest import fixture_dir

    d = fixture_dir(name)
    kwargs = json.loads((d / "generator_kwargs.json").read_text())
    sd = torch.load(d / "G_ema_state_dict.pt", weights_only=True)
    G = cls(**kwargs)
    G.load_state_dict(sd, strict=True)
    return G.eval(), sd


@pytest.fixture(scope="module")
def sg2():
    return _load("stylegan2_small", StyleGAN2Generator)


@pytest.fixture(scope="module")
def sg3():
    return _load("stylegan3t_small", StyleGAN3Generator)


# ------------------------------------------------------------------------------------------ SeFa
def _sefa_reference(sd, keys):
    """The paper's recipe straight from the state dict, in numpy: rows = style channels, each row unit length,
    eigenvectors of A^T A (general eigen-solver, sorted by eigenvalue, largest first)."""
    A = np.concatenate([sd[k].double().numpy() for k in keys])
    A = A / np.linalg.norm(A, axis=1, keepdims=True)
    values, vectors = np.linalg.eig(A.T @ A)
    order = np.argsort(-values.real)
    return vectors.real[:, order].T, values.real[order]


def _sg2_conv_keys(sd, ws=None):
    """Modulated convs of a StyleGAN2 state dict and the ws each reads: b4.conv1 -> 0; b(2^k).conv0 -> 2k-5,
    conv1 -> 2k-4 (k >= 3). ToRGB affines are not listed."""
    out = []
    for k in sd:
        m = re.fullmatch(r"synthesis\.b(\d+)\.conv([01])\.affine\.weight", k)
        if m:
            level, j = int(np.log2(int(m.group(1)))), int(m.group(2))
            w = 0 if level == 2 else 2 * level - 5 + j
            out.append((w, k))
    return [k for w, k in sorted(out) if ws is None or w in ws]


def _sg3_conv_keys(sd, ws=None):
    """StyleGAN3: layer L<i> reads ws[i + 1]; the highest-numbered layer is the ToRGB (left out)."""
    found = {}
    for k in sd:
        m = re.fullmatch(r"synthesis\.L(\d+)_\d+_\d+\.affine\.weight", k)
        if m:
            found[int(m.group(1))] = k
    last = max(found)
    return [found[i] for i in sorted(found) if i != last and (ws is None or i + 1 in ws)]


def _assert_same_directions(d, ref_d, values, ref_values, top):
    assert torch.allclose(values.double(), torch.from_numpy(ref_values), rtol=1e-4, atol=1e-5)
    gaps = np.diff(ref_values[:top + 1])
    assert (np.abs(gaps) > 1e-3 * ref_values[0]).all(), "fixture eigenvalues too close to compare vectors"
    cos = np.abs((d[:top].double().numpy() * ref_d[:top]).sum(1))
    assert cos.min() > 1 - 1e-5, f"|cos| with the reference directions: {cos}"


@pytest.mark.parametrize("family", ["sg2", "sg3"])
def test_sefa_matches_independent_computation_from_state_dict(family, sg2, sg3):
    G, sd = sg2 if family == "sg2" else sg3
    keys = (_sg2_conv_keys if family == "sg2" else _sg3_conv_keys)(sd)
    assert len(keys) == (9 if family == "sg2" else G.synthesis.num_layers)
    ref_d, ref_v = _sefa_reference(sd, keys)
    d, v = ed.sefa_directions(G)
    assert d.shape == (G.w_dim, G.w_dim) and v.shape == (G.w_dim,)
    _assert_same_directions(d, ref_d, v, ref_v, top=8)
    assert (v[:-1] >= v[1:]).all(), "eigenvalues must come largest first"


@pytest.mark.parametrize("family,layers", [("sg2", "0-3"), ("sg2", "fine"), ("sg3", "0-3"), ("sg3", [5, 9])])
def test_sefa_on_chosen_layers_uses_exactly_their_readers(family, layers, sg2, sg3):
    from models.stylegan import parse_layers

    G, sd = sg2 if family == "sg2" else sg3
    ws = set(parse_layers(layers, G.num_ws))
    keys = (_sg2_conv_keys if family == "sg2" else _sg3_conv_keys)(sd, ws)
    if family == "sg2" and layers == "0-3":
        assert keys == ["synthesis.b4.conv1.affine.weight", "synthesis.b8.conv0.affine.weight",
                        "synthesis.b8.conv1.affine.weight", "synthesis.b16.conv0.affine.weight"]
    ref_d, ref_v = _sefa_reference(sd, keys)
    d, v = ed.sefa_directions(G, layers)
    _assert_same_directions(d, ref_d, v, ref_v, top=4)
    # rank: at most as many non-zero eigenvalues as stacked style channels
    rows = sum(sd[k].shape[0] for k in keys)
    if rows < G.w_dim:
        assert v[rows:].abs().max() < 1e-4 * v[0]


@pytest.mark.parametrize("family", ["sg2", "sg3"])
def test_directions_are_orthonormal_and_deterministic(family, sg2, sg3):
    G, _ = sg2 if family == "sg2" else sg3
    d, v = ed.sefa_directions(G)
    assert torch.allclose(d @ d.T, torch.eye(G.w_dim), atol=1e-5)
    d2, v2 = ed.sefa_directions(G)
    assert torch.equal(d, d2) and torch.equal(v, v2)
    # eigenvalues sum to the trace of A^T A = number of unit rows
    rows = sum(e[2].weight.shape[0] for e in ed.style_layers(G) if not e[3])
    assert abs(float(v.double().sum()) - rows) < 1e-3 * rows
    comps, stds, _ = ed.ganspace_directions(G, 500, seed=1)
    assert torch.allclose(comps @ comps.T, torch.eye(comps.shape[0]), atol=1e-5)


def test_sefa_refuses_layers_read_only_by_torgb(sg2, sg3):
    G, _ = sg2
    with pytest.raises(ValueError, match="ToRGB"):
        ed.sefa_directions(G, [G.num_ws - 1])  # the last w feeds only the final ToRGB
    d, v = ed.sefa_directions(G, [G.num_ws - 1], include_torgb=True)
    assert v[0] > 0
    G3, _ = sg3
    with pytest.raises(ValueError, match="modulated"):
        ed.sefa_directions(G3, [0])  # StyleGAN3's ws[0] only moves the Fourier input


# ------------------------------------------------------------------------------------------ GANSpace
@pytest.mark.parametrize("family", ["sg2", "sg3"])
def test_ganspace_matches_pca_of_the_same_samples(family, sg2, sg3):
    G, _ = sg2 if family == "sg2" else sg3
    n = 3000
    W = ed.sample_w(G, n, seed=5, batch_size=700)
    # the samples are mapping(z) at psi 1 for z drawn from RandomState(seed)
    z = torch.from_numpy(np.random.RandomState(5).randn(n, G.z_dim)).float()
    with torch.no_grad():
        assert torch.allclose(W, G.mapping(z, None)[:, 0], atol=1e-5)
    comps, stds, mean = ed.ganspace_directions(G, n, seed=5, batch_size=1000)
    assert comps.shape == (G.w_dim, G.w_dim) and stds.shape == (G.w_dim,) and mean.shape == (G.w_dim,)
    X = W.double()
    assert torch.allclose(mean.double(), X.mean(0), atol=1e-5)
    U, S, Vh = torch.linalg.svd(X - X.mean(0), full_matrices=False)
    ref_std = S / np.sqrt(n - 1)
    assert torch.allclose(stds.double(), ref_std, rtol=1e-4, atol=1e-6)
    top = 6
    cos = (comps[:top].double() * Vh[:top]).sum(1).abs()
    assert cos.min() > 1 - 1e-5, cos
    _, S2, V2 = torch.pca_lowrank(X, q=G.w_dim, center=True, niter=4)  # q = full rank: exact up to round-off
    cos2 = (comps[:top].double() * V2[:, :top].T).sum(1).abs()
    assert cos2.min() > 1 - 1e-5, cos2
    assert torch.allclose(stds[:top].double(), S2[:top] / np.sqrt(n - 1), rtol=1e-4)
    # strengths in sigma units: projecting the centred samples on component i has std stds[i]
    proj = (X - X.mean(0)) @ comps[:top].double().T
    assert torch.allclose(proj.std(0), stds[:top].double(), rtol=1e-4)


def test_ganspace_sample_count_and_seed(sg2):
    G, _ = sg2
    a = ed.ganspace_directions(G, 200, seed=0)
    b = ed.ganspace_directions(G, 200, seed=0, batch_size=33)
    for x, y in zip(a, b):
        assert torch.allclose(x, y, atol=1e-5)
    c = ed.ganspace_directions(G, 200, seed=1)
    assert not torch.allclose(a[2], c[2])
    assert ed.ganspace_directions(G, 10)[0].shape[0] == 9  # rank of 10 centred samples
    with pytest.raises(ValueError, match="at least 2"):
        ed.ganspace_directions(G, 1)


# ------------------------------------------------------------------------------------------ edits
def test_edit_on_coarse_layers_leaves_the_rest_unchanged(sg2):
    G, _ = sg2
    d, _ = ed.sefa_directions(G)
    with torch.no_grad():
        ws = G.mapping(torch.randn(3, G.z_dim, generator=torch.Generator().manual_seed(0)), None)
    out = ed.edit_latent(ws, d[0], 2.5, layers="0-3")
    assert torch.equal(out[:, 4:], ws[:, 4:])
    assert torch.allclose(out[:, :4], ws[:, :4] + 2.5 * d[0], atol=1e-6)
    assert not torch.equal(out[:, :4], ws[:, :4])
    assert torch.equal(ed.edit_latent(ws, d[0], 2.5, layers=[0, 1, 2, 3]), out)
    # default: every layer
    assert torch.allclose(ed.edit_latent(ws, d[1], -1.0), ws - d[1], atol=1e-6)
    # one latent [num_ws, w_dim] and per-latent strengths
    assert torch.equal(ed.edit_latent(ws[1], d[0], 2.5, "0-3"), out[1])
    per = ed.edit_latent(ws, d[0], torch.tensor([0.0, 1.0, -2.0]))
    assert torch.equal(per[0], ws[0]) and torch.allclose(per[2], ws[2] - 2 * d[0], atol=1e-6)
    # the image changes, and only through those layers (the synthesis of untouched layers is unchanged upstream)
    with torch.no_grad():
        a, b = G.synthesis(ws[:1]), G.synthesis(out[:1])
    assert (a - b).abs().mean() > 1e-3


def test_strength_zero_is_the_identity(sg2):
    G, _ = sg2
    d, _ = ed.sefa_directions(G)
    ws = torch.randn(2, G.num_ws, G.w_dim)
    for kw in ({}, {"renormalize": True, "center": G.w_avg}):
        assert torch.equal(ed.edit_latent(ws, d[0], 0.0, **kw), ws)
        assert torch.equal(ed.edit_latent(ws, d[3], 0, "coarse", **kw), ws)
    sweep = ed.edit_sweep(ws, d[:2], [-1.0, 0.0, 1.0], "0-3")
    assert sweep.shape == (2, 2, 3, G.num_ws, G.w_dim)
    assert torch.equal(sweep[:, :, 1], ws[:, None].expand(-1, 2, -1, -1))
    assert torch.allclose(sweep[1, 1, 2, :4], ws[1, :4] + d[1], atol=1e-6)


def test_renormalize_keeps_the_distance_from_the_average(sg2):
    G, _ = sg2
    d, _ = ed.sefa_directions(G)
    ws = torch.randn(4, G.num_ws, G.w_dim)
    c = G.w_avg
    out = ed.edit_latent(ws, d[0], 5.0, "fine", renormalize=True, center=c)
    idx = ed.parse_layers("fine", G.num_ws)
    assert torch.allclose((out[:, idx] - c).norm(dim=-1), (ws[:, idx] - c).norm(dim=-1), rtol=1e-5)
    assert torch.equal(out[:, :idx[0]], ws[:, :idx[0]])
    moved = ((out[:, idx] - ws[:, idx]) @ d[0]).mean()
    assert moved > 0.5, "renormalised edit must still move along the direction"
    with pytest.raises(ValueError, match="center"):
        ed.edit_latent(ws, d[0], 1.0, renormalize=True)


def test_edit_shapes_refused_with_clear_message(sg2):
    G, _ = sg2
    ws = torch.randn(2, G.num_ws, G.w_dim)
    with pytest.raises(ValueError, match=r"\[64\], \[1, 64\] or \[10, 64\]"):
        ed.edit_latent(ws, torch.randn(1, 32), 1.0)
    with pytest.raises(ValueError, match="one per latent"):
        ed.edit_latent(ws, torch.randn(64), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="out of range"):
        ed.edit_latent(ws, torch.randn(64), 1.0, layers=[12])


# ------------------------------------------------------------------------------------------ direction files
def test_direction_files_of_both_shapes(sg2, tmp_path):
    G, _ = sg2
    ws = torch.randn(2, G.num_ws, G.w_dim)
    one = np.random.RandomState(0).randn(1, G.w_dim).astype(np.float32)
    per_layer = np.random.RandomState(1).randn(G.num_ws, G.w_dim).astype(np.float32)
    np.save(tmp_path / "smile.npy", one)  # InterFaceGAN boundary layout
    np.save(tmp_path / "per_layer.npy", per_layer)
    torch.save(torch.from_numpy(one)[None], tmp_path / "age.pt")  # [1, 1, w_dim]
    torch.save({"direction": torch.from_numpy(per_layer)}, tmp_path / "dict.pt")
    from safetensors.torch import save_file

    save_file({"direction": torch.from_numpy(one)}, str(tmp_path / "st.safetensors"))
    for name in ("smile.npy", "age.pt", "st.safetensors"):
        d = ed.load_direction(tmp_path / name, G.num_ws, G.w_dim)
        assert d.shape == (1, G.w_dim) and np.array_equal(d.numpy(), one), name
        out = ed.edit_latent(ws, d, 1.5)
        assert torch.allclose(out, ws + 1.5 * torch.from_numpy(one), atol=1e-6)
    for name in ("per_layer.npy", "dict.pt"):
        d = ed.load_direction(tmp_path / name, G.num_ws, G.w_dim)
        assert d.shape == (G.num_ws, G.w_dim) and np.array_equal(d.numpy(), per_layer), name
        out = ed.edit_latent(ws, d, 2.0, layers="0-3")
        assert torch.allclose(out[:, :4], ws[:, :4] + 2 * torch.from_numpy(per_layer[:4]), atol=1e-6)
        assert torch.equal(out[:, 4:], ws[:, 4:])


def test_wrong_direction_files_refused_with_clear_message(sg2, tmp_path):
    G, _ = sg2
    np.save(tmp_path / "ffhq_smile.npy", np.zeros((1, 512), np.float32) + 1)
    with pytest.raises(ed.DirectionFileError) as err:
        ed.load_direction(tmp_path / "ffhq_smile.npy", G.num_ws, G.w_dim)
    msg = str(err.value)
    assert "ffhq_smile.npy" in msg and "[1, 512]" in msg and "[1, 64]" in msg and "[10, 64]" in msg, msg
    np.save(tmp_path / "wrong_layers.npy", np.ones((18, 64), np.float32))
    with pytest.raises(ed.DirectionFileError, match=r"wrong_layers.npy.*\[18, 64\].*\[10, 64\]"):
        ed.load_direction(tmp_path / "wrong_layers.npy", G.num_ws, G.w_dim)
    np.save(tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ed.DirectionFileError, match="objects.npy.*refused"):
        ed.load_direction(tmp_path / "objects.npy", G.num_ws, G.w_dim)
    np.save(tmp_path / "zeros.npy", np.zeros((1, 64), np.float32))
    with pytest.raises(ed.DirectionFileError, match="all zeros"):
        ed.load_direction(tmp_path / "zeros.npy", G.num_ws, G.w_dim)
    np.save(tmp_path / "nan.npy", np.full((1, 64), np.nan, np.float32))
    with pytest.raises(ed.DirectionFileError, match="NaN"):
        ed.load_direction(tmp_path / "nan.npy", G.num_ws, G.w_dim)


class _Payload:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


def test_pt_direction_is_loaded_with_weights_only(sg2, tmp_path):
    G, _ = sg2
    marker = tmp_path / "ran"
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"direction": _Payload(marker)}, f, protocol=4)
    with pytest.raises(ed.DirectionFileError, match="evil.pt.*weights_only"):
        ed.load_direction(tmp_path / "evil.pt", G.num_ws, G.w_dim)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------ cache
def test_directions_cache_per_model_weights(sg2, tmp_path, monkeypatch):
    G, sd = sg2
    first = ed.cached_directions(G, "sefa", n_samples=300, cache_dir=tmp_path)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.endswith(".safetensors") for f in files), files
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 200_000

    def boom(*a, **k):
        raise AssertionError("recomputed although cached")

    monkeypatch.setattr(ed, "sefa_directions", boom)
    monkeypatch.setattr(ed, "_w_moments", boom)
    again = ed.cached_directions(G, "sefa", n_samples=300, cache_dir=tmp_path)
    for k in first:
        assert torch.equal(first[k], again[k]), k
    # a changed model (other weights, same shapes) is not served from the cache
    monkeypatch.undo()
    G2, _ = _load("stylegan2_small", StyleGAN2Generator)
    with torch.no_grad():
        G2.synthesis.b4.conv1.affine.weight.mul_(-1).add_(0.5)
    other = ed.cached_directions(G2, "sefa", n_samples=300, cache_dir=tmp_path)
    assert not torch.allclose(other["values"], first["values"])
    assert len(list(tmp_path.iterdir())) == 3  # one new SeFa entry; the W statistics (mapping unchanged) reused
    # sigma units: sigmas are the std of W along each direction over the seeded samples
    W = ed.sample_w(G, 300, 0).double()
    proj = (W - W.mean(0)) @ first["directions"][:4].double().T
    assert torch.allclose(proj.std(0).float(), first["sigmas"][:4], rtol=1e-4)
    gs = ed.cached_directions(G, "ganspace", n_samples=300, cache_dir=tmp_path)
    ref = ed.ganspace_directions(G, 300, 0)
    assert torch.allclose(gs["directions"], ref[0], atol=1e-5) and torch.allclose(gs["values"], ref[1], rtol=1e-5)


def test_sigma_units_and_direction_indices(sg2):
    G, _ = sg2
    W = ed.sample_w(G, 400, seed=2).double()
    cov = torch.cov(W.T)
    d = torch.zeros(G.num_ws, G.w_dim)
    d[0, 3] = 5.0  # along one axis of W: sigma = that coordinate's std, whatever the stored length
    d[1] = torch.randn(G.w_dim)
    scaled = ed.sigma_scaled(d, cov)
    assert torch.allclose(scaled[0, 3], W[:, 3].std().float(), rtol=1e-5)
    proj = W @ (d[1] / d[1].norm()).double()
    assert torch.allclose(scaled[1].norm(), proj.std().float(), rtol=1e-4)
    assert torch.equal(scaled[2:], torch.zeros_like(scaled[2:]))  # rows of zeros stay zero
    assert ed.parse_direction_indices("3,0-1", 8) == [3, 0, 1]
    assert ed.parse_direction_indices("all", 3) == [0, 1, 2]
    with pytest.raises(ValueError, match="out of range 0..7"):
        ed.parse_direction_indices("2-9", 8)
