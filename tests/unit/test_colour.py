"""Colour management (models.colour): results against OCIO's own processors built here independently, against
published reference numbers (the AP1 -> Rec.709 matrix, the sRGB curve), values outside [0, 1], alpha and
premultiplication, config selection ($OCIO, a file, the built-in default) and clear errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

OCIO = pytest.importorskip("PyOpenColorIO")

from models import colour  # noqa: E402
from models.colour import ColourError, convert_colourspace  # noqa: E402

VIEW = "sRGB - Display / ACES 2.0 - SDR 100 nits (Rec.709)"


def _pixels(seed=0, shape=(2, 33, 47, 3)) -> torch.Tensor:
    """Scene-linear test pixels: mostly 0..4 with negatives down to -0.5 and highlights up to 100."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g) * 4.5 - 0.5
    x.view(-1)[:6] = torch.tensor([100.0, 50.0, 16.0, 0.0, -0.5, 1.0])
    return x


def _ocio_reference(x: np.ndarray, source: str, target: str) -> np.ndarray:
    cfg = OCIO.Config.CreateFromFile("ocio://studio-config-latest")
    if " / " in target:
        d, v = target.split(" / ")
        proc = cfg.getProcessor(OCIO.DisplayViewTransform(src=source, display=d, view=v))
    elif " / " in source:
        d, v = source.split(" / ")
        proc = cfg.getProcessor(OCIO.DisplayViewTransform(src=target, display=d, view=v,
                                                          direction=OCIO.TRANSFORM_DIR_INVERSE))
    else:
        proc = cfg.getProcessor(source, target)
    flat = np.ascontiguousarray(x.reshape(-1, 3), dtype=np.float32).copy()
    proc.getDefaultCPUProcessor().applyRGB(flat)
    return flat.reshape(x.shape)


@pytest.mark.parametrize("source,target", [
    ("ACEScg", "sRGB - Display"), ("sRGB - Display", "ACEScg"), ("ACEScg", "ACES2065-1"),
    ("ACEScg", "ACEScct"), ("Linear Rec.709 (sRGB)", "ACEScg"), ("ACEScg", VIEW), (VIEW, "ACEScg"),
])
def test_equals_ocio_processor(monkeypatch, source, target):
    monkeypatch.delenv("OCIO", raising=False)
    x = _pixels()
    before = x.clone()
    y = convert_colourspace(x, source, target)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.shape == x.shape
    assert torch.equal(x, before), "the input must not be changed"
    ref = _ocio_reference(x.numpy(), source, target)
    assert np.abs(y.numpy() - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())


def test_reference_numbers_and_nothing_clipped_on_the_way_back(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    # ACEScg (AP1) -> linear Rec.709: the published AP1 -> sRGB/Rec.709 primaries matrix (D60 -> D65 Bradford)
    m = np.array([[1.70505, -0.62179, -0.08326], [-0.13026, 1.14080, -0.01055], [-0.02400, -0.12897, 1.15297]])
    x = np.random.default_rng(0).random((64, 3)).astype(np.float32) * 3
    y = convert_colourspace(x, "ACEScg", "Linear Rec.709 (sRGB)")
    assert isinstance(y, np.ndarray)
    assert np.abs(y - x @ m.T).max() < 2e-4
    # linear Rec.709 mid grey 0.18 -> the sRGB curve's 0.46135 (display-encoded)
    grey = convert_colourspace(np.full((1, 1, 3), 0.18, np.float32), "Linear Rec.709 (sRGB)", "sRGB - Display")
    assert abs(float(grey[0, 0, 0]) - (1.055 * 0.18 ** (1 / 2.4) - 0.055)) < 1e-4
    # colorimetric display space: scene values above 1 stay above 1 (unclamped), and come back exactly
    hi = np.array([[[4.0, 10.0, 100.0], [-0.2, 0.5, 2.0]]], np.float32)
    disp = convert_colourspace(hi, "ACEScg", "sRGB - Display")
    assert disp.max() > 1.5
    back = convert_colourspace(disp, "sRGB - Display", "ACEScg")
    assert np.abs(back - hi).max() <= 2e-4 * 100
    # the ACES 2.0 SDR view tone-maps highlights into [0, 1) and its inverse brings greys back
    greys = np.array([[[0.18] * 3, [1.0] * 3, [10.0] * 3]], np.float32)
    shown = convert_colourspace(greys, "ACEScg", VIEW)
    assert shown.max() < 1.0 and (np.diff(shown[0, :, 0]) > 0).all()
    assert np.allclose(convert_colourspace(shown, VIEW, "ACEScg"), greys, rtol=2e-3)


def test_alpha_passes_through_and_premultiplied(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    rgb = _pixels(1, (1, 16, 20, 3)).clamp(min=0)
    a = torch.rand(1, 16, 20)
    a[0, 0, :4] = 0.0
    rgba = torch.cat([rgb * a[..., None], a[..., None]], -1)  # premultiplied, EXR style
    plain = convert_colourspace(rgba, "ACEScg", "sRGB - Display")
    assert torch.equal(plain[..., 3], a), "alpha is never converted"
    ref = _ocio_reference(rgba[..., :3].numpy(), "ACEScg", "sRGB - Display")
    assert np.abs(plain[..., :3].numpy() - ref).max() <= 1e-5 * np.abs(ref).max()
    pre = convert_colourspace(rgba, "ACEScg", "sRGB - Display", premultiplied=True)
    straight = _ocio_reference(rgb.numpy(), "ACEScg", "sRGB - Display")
    expected = np.where(a[..., None].numpy() > 0, straight * a[..., None].numpy(), ref)
    assert np.abs(pre[..., :3].numpy() - expected).max() <= 1e-5 * np.abs(expected).max()
    # the same with alpha given separately (a MASK) and three-channel images
    sep = convert_colourspace(rgba[..., :3], "ACEScg", "sRGB - Display", alpha=a, premultiplied=True)
    assert torch.allclose(sep, pre[..., :3], atol=0, rtol=0)


def test_threads_do_not_change_the_result(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    x = _pixels(2, (1, 300, 40, 3))
    one = convert_colourspace(x, "ACEScg", VIEW, threads=1)
    many = convert_colourspace(x, "ACEScg", VIEW, threads=4)
    assert torch.equal(one, many)


def test_names_aliases_roles_and_clear_errors(monkeypatch):
    monkeypatch.delenv("OCIO", raising=False)
    x = _pixels(3, (1, 4, 4, 3))
    assert torch.equal(convert_colourspace(x, "lin_ap1", "ACEScct"), convert_colourspace(x, "scene_linear", "ACEScct"))
    with pytest.raises(ColourError, match=r"'ACEScgg' is neither.*Did you mean 'ACEScg'"):
        convert_colourspace(x, "ACEScgg", "ACEScct")
    with pytest.raises(ColourError, match="does not exist"):
        convert_colourspace(x, "ACEScg", "ACEScct", config="/nonexistent/config.ocio")
    with pytest.raises(ColourError, match=r"expected images \[N, H, W, 3\|4\]"):
        convert_colourspace(torch.zeros(1, 4, 4, 2), "ACEScg", "ACEScct")
    spaces = colour.list_colourspaces()
    assert {"ACEScg", "ACES2065-1", "Linear Rec.709 (sRGB)", "sRGB - Display", VIEW} <= set(spaces)


def test_config_from_ocio_environment_and_from_a_file(tmp_path, monkeypatch):
    cg = OCIO.Config.CreateFromFile("ocio://cg-config-latest")
    path = tmp_path / "show" / "config.ocio"
    path.parent.mkdir()
    path.write_text(cg.serialize())
    cg_spaces = [c.getName() for c in cg.getColorSpaces()]
    monkeypatch.delenv("OCIO", raising=False)
    studio = colour.colourspaces()
    assert studio != cg_spaces and "ARRI LogC4" in studio and "ARRI LogC4" not in cg_spaces
    assert colour.colourspaces(path) == cg_spaces
    monkeypatch.setenv("OCIO", str(path))
    assert colour.colourspaces() == cg_spaces, "$OCIO is the default config when set"
    with pytest.raises(ColourError, match="ARRI LogC4"):
        convert_colourspace(np.zeros((1, 1, 3), np.float32), "ARRI LogC4", "ACEScg")
    monkeypatch.setenv("OCIO", str(tmp_path / "missing.ocio"))
    with pytest.raises(ColourError, match="from the OCIO environment variable"):
        colour.colourspaces()
