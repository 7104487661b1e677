"""The translation plan (models.plan_translation): computed once, printable, what translate executes; flat
residual blocks (each convolution once) exact against the whole frame; progress inside a whole frame."""
from __future__ import annotations

import torch

import models
from models.translator import ResnetGenerator
from models.translator.infer import execute_plan


def _net(ngf=8, n_blocks=3, norm="instance", dropout=False, seed=0):
    torch.manual_seed(seed)
    g = ResnetGenerator(3, 3, ngf=ngf, n_blocks=n_blocks, norm=norm, use_dropout=dropout).eval()
    for m in g.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, 0.0, 0.05)
            if m.bias is not None:
                torch.nn.init.normal_(m.bias, 0.0, 0.05)
        elif isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return g


def _image(h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, h, w, 3, generator=g)


def test_plan_whole_frame_and_tiles_are_described():
    g = _net(ngf=16)
    whole = models.plan_translation(g, (2, 100, 140, 3), batch_size=1)
    assert whole.layout == "whole frame" and not whole.tiled and whole.tiles == (1, 1)
    assert whole.padded == (100, 140) and whole.chunks == 2 and whole.precision == "float32"
    # whole frames report progress per convolution: 1 + 2 + 2 x 3 blocks + 2 + 1
    assert whole.steps == 2 * 12 and whole.peak_bytes > 100 * 140 * 4 * 16
    text = str(whole)
    assert "140x100 x2: whole frame; float32 on cpu; eval mode" in text, text

    tiled = models.plan_translation(g, (1, 200, 264, 3), tile_size=128)
    kinds = [p.kind for p in tiled.passes]
    assert tiled.layout == "tiles" and tiled.tiles == (2, 3) and tiled.tile == 128
    assert kinds.count("block") == 3 and "collect" in kinds and kinds[-1] == "final"
    # every residual block runs flat: no statistics pass stops inside a block (stages 10..12)
    assert not [p for p in tiled.passes if p.kind == "collect" and 10 <= p.first < 13 and p.last <= 13]
    assert "6 tiles (2x3) of at most 128 px" in str(tiled) and "3 residual blocks run flat" in str(tiled), str(tiled)
    d = tiled.as_dict()
    assert d["layout"] == "tiles" and d["steps"] == tiled.steps == sum(p.steps for p in tiled.passes)
    # the plan is what translate runs: same pixels, and the progress steps it announced
    x = _image(200, 264, seed=1)
    calls = []
    out = execute_plan(tiled, x, progress=lambda d_, t: calls.append((d_, t)))
    assert calls[-1] == (tiled.steps, tiled.steps) and len(calls) == tiled.steps
    assert torch.equal(out, models.translate(g, x, tile_size=128))
    assert (out - models.translate(g, x)).abs().max() < 0.01 / 255


def test_ignored_settings_are_named():
    g = _net()
    p = models.plan_translation(g, (1, 64, 64, 3), tile_size=512)
    assert not p.tiled and any("fits in one tile" in n for n in p.notes), p.notes
    p = models.plan_translation(g, (1, 64, 64, 3), tile_overlap=32)
    assert any("tile_overlap" in n for n in p.notes), p.notes
    # a float16 request on the CPU: calibration decides; when it falls back the plan says so
    p = models.plan_translation(g, (1, 64, 64, 3), dtype=torch.float16)
    assert (p.precision == "float16") == (not p.notes), (p.precision, p.notes)
    if p.notes:
        assert "float16 requested but ran float32" in p.notes[0] and "(float16 requested)" in str(p)


def test_flat_blocks_in_many_strips_match_the_whole_frame():
    """Residual blocks on the stored bottleneck, in strips of a few rows (each keeps the rows its neighbour's
    halo still needs while writing in place): exact in eval and in reference mode (seeded dropout, BatchNorm
    on frame statistics), with reflection and zero padding."""
    x = _image(112, 150, seed=3)
    cases = [(_net(ngf=20, n_blocks=2), "eval"), (_net(ngf=8, n_blocks=2, norm="batch", dropout=True), "reference")]
    zero = ResnetGenerator(3, 3, ngf=8, n_blocks=2, norm="instance", padding_type="zero").eval()
    cases.append((zero, "eval"))
    for g, mode in cases:
        full = models.translate(g, x, mode=mode, seed=4)
        for rows in (2,):
            plan = models.plan_translation(g, tuple(x.shape), tile_size=80, mode=mode)
            assert [p.kind for p in plan.passes].count("block") == 2
            plan.strip_rows = rows
            out = execute_plan(plan, x, seed=4)
            assert (out - full).abs().max() < 0.05 / 255, (mode, rows, float((out - full).abs().max()) * 255)


def test_whole_frame_progress_per_convolution_and_cancel():
    g = _net(ngf=8, n_blocks=2)
    x = _image(64, 96)
    calls = []
    out = models.translate(g, x, progress=lambda d, t: calls.append((d, t)))
    assert [d for d, _ in calls] == list(range(1, 11)) and calls[-1] == (10, 10)   # 1 + 2 + 4 + 2 + 1 convs
    assert torch.equal(out, models.translate(g, x))   # hooks do not change the pixels
    for m in g.modules():
        assert not getattr(m, "_forward_hooks", None), "progress hooks must be removed"
