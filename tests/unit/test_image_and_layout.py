"""models.image conversions, and that the engine imports without ComfyUI."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import models
from models import image as gi

REPO = Path(__file__).resolve().parents[2]


def test_gan_range_round_trip_and_layout():
    img = torch.rand(2, 5, 7, 3)
    g = gi.image_to_gan(img)
    assert g.shape == (2, 3, 5, 7) and g.min() >= -1 and g.max() <= 1
    assert torch.allclose(g[1, 2, 4, 6], img[1, 4, 6, 2] * 2 - 1)
    assert torch.allclose(gi.gan_to_image(g), img, atol=1e-6)
    assert gi.gan_to_image(torch.full((1, 3, 2, 2), 5.0)).max() == 1.0
    assert gi.gan_to_image(torch.full((1, 3, 2, 2), 5.0), clamp=False).max() == 3.0


def test_channel_conversion_uses_bt601_luma():
    rgb = torch.tensor([1.0, 0.5, 0.25]).view(1, 3, 1, 1)
    gray = gi.convert_channels(rgb, 1)
    assert gray.shape == (1, 1, 1, 1)
    assert gray.item() == pytest.approx(0.299 + 0.587 * 0.5 + 0.114 * 0.25, abs=1e-6)
    assert torch.equal(gi.convert_channels(gray, 3), gray.expand(1, 3, 1, 1))
    with pytest.raises(ValueError, match="5-channel"):
        gi.convert_channels(torch.zeros(1, 5, 2, 2), 3)


def test_split_image_alpha():
    rgba = torch.rand(1, 4, 4, 4)
    rgb, alpha = gi.split_image_alpha(rgba)
    assert torch.equal(rgb, rgba[..., :3]) and torch.equal(alpha, rgba[..., 3])
    gray = torch.rand(1, 4, 4, 1)
    rgb, alpha = gi.split_image_alpha(gray)
    assert rgb.shape == (1, 4, 4, 3) and torch.equal(rgb[..., 2], gray[..., 0]) and alpha.min() == 1
    with pytest.raises(ValueError):
        gi.split_image_alpha(torch.rand(1, 4, 4, 5))


def test_public_api_is_lazy_and_complete():
    for name in models.__all__:
        assert name in dir(models)
    with pytest.raises(AttributeError):
        models.does_not_exist


def test_engine_imports_without_comfyui():
    code = ("import sys; sys.path.insert(0, '.'); import models, models.image; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('comfy', 'folder_paths', 'comfy_api', 'nodes')]; "
            "assert not bad, bad; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    offenders = []
    for path in (REPO / "models").rglob("*.py"):
        for line in path.read_text().splitlines():
            s = line.strip()
            if s.startswith(("import ", "from ")) and s.split()[1].split(".")[0] in (
                    "comfy", "folder_paths", "comfy_api", "comfy_extras", "server", "nodes"):
                offenders.append(f"{path.relative_to(REPO)}: {s}")
    assert not offenders, offenders


def test_image_grid_layout():
    imgs = torch.stack([torch.full((2, 3, 3), float(i) / 10) for i in range(5)])
    grid = gi.image_grid(imgs, 3)
    assert grid.shape == (1, 4, 9, 3)
    assert grid[0, 0, 0, 0] == 0.0 and grid[0, 0, 3, 0] == pytest.approx(0.1) and grid[0, 0, 6, 0] == pytest.approx(0.2)
    assert grid[0, 2, 0, 0] == pytest.approx(0.3) and grid[0, 2, 3, 0] == pytest.approx(0.4)
    assert grid[0, 3, 8, 2] == 1.0  # empty cell


def test_batch_images_order_channels_and_sizes():
    torch.manual_seed(0)
    a, b = torch.rand(2, 8, 12, 3), torch.rand(1, 8, 12, 4)
    out = gi.batch_images([a, None, b])
    assert out.shape == (3, 8, 12, 4)
    assert torch.equal(out[:2, ..., :3], a) and torch.equal(out[:2, ..., 3], torch.ones(2, 8, 12))
    assert torch.equal(out[2], b[0])
    gray = gi.batch_images([a[:1], torch.full((1, 8, 12, 1), 0.25)])
    assert torch.equal(gray[1], torch.full((8, 12, 3), 0.25))
    # another size: scaled to cover (aspect kept) and centre-cropped. A 16 x 32 picture of vertical stripes
    # (constant per column) covers 8 x 12 at half size (8 x 16), from which columns 2..13 are kept.
    stripes = torch.arange(32.0).repeat(16, 1)[None, ..., None].expand(1, 16, 32, 3) / 32
    fitted = gi.batch_images([a[:1], stripes])[1]
    half = torch.nn.functional.interpolate(stripes.permute(0, 3, 1, 2), size=(8, 16), mode="bilinear",
                                           antialias=True, align_corners=False).permute(0, 2, 3, 1)[0]
    assert torch.allclose(fitted, half[:, 2:14]), (fitted[0, :, 0], half[0, :, 0])
    with pytest.raises(ValueError, match="image 2 is 32x16 but image 1 is 12x8"):
        gi.batch_images([a, stripes], resize="error")
    with pytest.raises(ValueError, match="no images"):
        gi.batch_images([None])
