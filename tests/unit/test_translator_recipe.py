"""The bundled translator models and their recipe (scripts/train_translators.py): deterministic data, the
reference key layout the engine loads, files within the size limit with a model card."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from scripts import train_translators as recipe

import models

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(recipe.RECIPES))
def test_recipe_data_is_deterministic(name):
    r = recipe.RECIPES[name]
    x1, y1 = recipe.batch_at(r, 5)
    x2, y2 = recipe.batch_at(r, 5)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = recipe.batch_at(r, 6)
    assert not torch.equal(x1, x3)
    assert x1.shape == (r["batch"], 3, r["train_size"], r["train_size"])
    assert x1.min() >= -1 and x1.max() <= 1 and (x1 - y1).abs().mean() > 0.01  # the target differs from the input


@pytest.mark.parametrize("name", sorted(recipe.RECIPES))
def test_recipe_networks_have_the_reference_layout(name):
    """The recipe's networks, as a bare state dict, are recognised by the engine and give the same output."""
    torch.manual_seed(0)
    net = recipe.RECIPES[name]["build"]()
    recipe._init_weights(net)
    for p in net.parameters():
        p.data.normal_(0, 0.1)
    net.eval()
    sd = {k: v for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    translator = models.load_translator(sd)
    expect = {"pix2pix": ("unet", "batch"), "cyclegan": ("resnet", "instance")}[name]
    assert (translator.arch, translator.norm) == expect
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert (translator(x) - net(x)).abs().max() < 1e-5


@pytest.mark.parametrize("name", sorted(recipe.RECIPES))
def test_bundled_model_files(name):
    r = recipe.RECIPES[name]
    path = REPO / "models" / "bundled" / r["folder"] / r["file"]
    if not path.exists():
        pytest.skip(f"{path.name} not trained yet (python scripts/train_translators.py {name})")
    assert path.stat().st_size <= 5_000_000
    card = path.with_suffix(".md").read_text()
    for word in ("What it does", "Data", "Training", "steps", "minutes", "Reproduce"):
        assert word in card, f"model card of {path.name} lacks {word!r}"
    t = models.load_translator(str(path))
    assert t.train_size == r["train_size"]
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        stats = json.loads(f.metadata()["gan_pack_recipe"])
    assert stats["steps"] == r["steps"] and stats["held_out_l1"] < 0.05
    # what the card promises, on a held-out drawing/scene
    hx, hy = recipe.held_out(r, 4)
    with torch.no_grad():
        err = (t(hx) - hy).abs().mean().item()
    assert err < 0.05, f"{path.name}: held-out L1 {err:.3f}"
