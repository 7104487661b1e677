"""Frame batches stream through the feed-forward style networks: the network only ever sees ``batch_size``
frames at a time (bounded device memory on long sequences), whatever the chunking the results agree, and the
sequence-wide statistics of ``consistency`` are still pooled over every frame."""
from __future__ import annotations

import torch

from models.style import AdaIN, AdaINDecoder, AdaINEncoder, TransformerNet, style_transfer

from test_style import lively as _lively  # He-initialised random weights, zero biases


def _frames(n=5, h=40, w=36, seed=0):
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 5, 5, generator=g)
    return torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic").clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def _record_batches(module):
    seen = []
    module.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    return seen


def test_fast_network_sees_one_chunk_at_a_time_and_chunking_does_not_change_pixels():
    net = _lively(TransformerNet((4, 8, 8), 1), 1)
    with torch.no_grad():
        net.deconv3.conv2d.bias.fill_(127.0)
    frames = _frames()
    seen = _record_batches(net.conv1)
    for consistency in (False, True):
        seen.clear()
        one = style_transfer(frames, method="fast", network=net, batch_size=1, consistency=consistency)
        # with consistency the statistics pass sees the sampled frames (<= 4) once, then one frame at a time
        assert max(seen[1:] if consistency else seen) == 1 and seen.count(1) >= 5, seen
        four = style_transfer(frames, method="fast", network=net, batch_size=4, consistency=consistency)
        assert one.shape == frames.shape and one.device == frames.device
        assert torch.allclose(one, four, atol=1e-5)


def test_adain_streams_frames_and_pools_statistics_over_all_of_them():
    enc = _lively(AdaINEncoder([4, 4, 8, 8, 8, 8, 8, 8, 8]), 2)
    dec = _lively(AdaINDecoder(8, [8, 8, 8, 8, 8, 8, 4, 4, 3]), 3)
    with torch.no_grad():
        dec.convs[-1].bias.fill_(0.5)
    pair = AdaIN(enc, dec)
    frames, style = _frames(6), _frames(1, 32, 32, seed=9)
    seen = _record_batches(enc.pre)
    a = style_transfer(frames, style, method="adain", network=pair, batch_size=1, consistency=True)
    assert max(seen) == 1 and len(seen) == 1 + 6 + 6  # style once, the statistics pass, the stylising pass
    b = style_transfer(frames, style, method="adain", network=pair, batch_size=6, consistency=True)
    assert torch.allclose(a, b, atol=1e-4)
    # pooled statistics: the result for the first frames depends on the later ones
    c = style_transfer(frames[:3], style, method="adain", network=pair, batch_size=1, consistency=True)
    assert not torch.allclose(a[:3], c, atol=1e-4)


def test_adain_tiles_are_exact_and_bounded():
    """``tile_size``: large frames run in tiles with a receptive-field halo, on the pooling grid, so the result
    equals the whole-frame one (float round-off) while no layer sees more than a tile plus its halo. A frame
    whose side is not a multiple of 8 and a style image larger than the tile are included; per-tile statistics
    (what a naive tiler would do) are far off."""
    from models.style.tiles import DECODER_HALO, ENCODER_HALO

    enc = _lively(AdaINEncoder([4, 4, 8, 8, 8, 8, 8, 8, 8]), 2)
    dec = _lively(AdaINDecoder(8, [8, 8, 8, 8, 8, 8, 4, 4, 3]), 3)
    with torch.no_grad():
        dec.convs[-1].bias.fill_(0.5)
    pair = AdaIN(enc, dec)
    g = torch.Generator().manual_seed(4)
    frames = torch.rand(2, 203, 290, 3, generator=g)       # noise: every pixel matters
    style = _frames(1, 150, 170, seed=9)
    areas = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: areas.append(out.shape[-2] * out.shape[-1]))
             for m in list(enc.modules()) + list(dec.modules()) if isinstance(m, torch.nn.Conv2d)]
    try:
        for consistency in (False, True):
            full = style_transfer(frames, style, method="adain", network=pair, consistency=consistency)
            areas.clear()
            tiled = style_transfer(frames, style, method="adain", network=pair, consistency=consistency,
                                   tile_size=64)
            assert tiled.shape == full.shape
            assert (tiled - full).abs().max() < 1e-4, consistency
            assert max(areas) <= (64 + 2 * max(ENCODER_HALO, 8 * DECODER_HALO)) ** 2, max(areas)
    finally:
        for h in hooks:
            h.remove()
    naive = torch.cat([torch.cat([style_transfer(frames[:, y:y + 64, x:x + 64], style, method="adain", network=pair)
                                  for x in range(0, 290, 64)], 2) for y in range(0, 203, 64)], 1)
    assert (naive - full).abs().max() > 0.05


def test_fast_network_tiles_are_exact_with_staged_statistics():
    """A fast network normalises with whole-frame statistics 15 layers deep: tiled runs measure them in staged
    tile passes (equal to ``norm_stats`` of the whole frames) and then render tiles with a 64-pixel margin, so
    the result equals the untiled one, per-frame and with pooled (consistency) statistics. Full-resolution
    layers never see more than a tile plus its margins."""
    from models.style.tiles import FAST_HALO, fast_stats_tiled

    net = _lively(TransformerNet((4, 8, 8), 2), 5)
    with torch.no_grad():
        net.deconv3.conv2d.bias.fill_(127.0)
        net.deconv3.conv2d.weight.mul_(40.0)   # outputs spread over ~[0.2, 0.8] instead of ~0.5 +- 0.005
        for name, p in net.named_parameters():
            if name.startswith("in") or ".in" in name:
                p.uniform_(0.5, 1.5) if name.endswith("weight") else p.uniform_(-0.5, 0.5)
    g = torch.Generator().manual_seed(6)
    frames = torch.rand(3, 150, 202, 3, generator=g)
    x = frames[:2].permute(0, 3, 1, 2)[..., :148, :200].contiguous()
    stats, z = fast_stats_tiled(net, x, 64)
    want = net.norm_stats(x)
    assert set(stats) == set(want) and len(want) == 3 + 2 * 2 + 2
    for key, (mean, var) in want.items():
        assert torch.allclose(stats[key][0], mean, atol=1e-4, rtol=1e-4), key
        assert torch.allclose(stats[key][1], var, atol=1e-3, rtol=1e-4), key
    assert z.shape == (2, 8, 37, 50)

    full_res = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: full_res.append(out.shape[-2] * out.shape[-1]))
             for m in (net.conv1.conv2d, net.deconv3.conv2d)]
    try:
        for consistency in (False, True):
            whole = style_transfer(frames, method="fast", network=net, consistency=consistency, batch_size=1)
            full_res.clear()
            tiled = style_transfer(frames, method="fast", network=net, consistency=consistency, tile_size=64)
            assert tiled.shape == whole.shape == frames.shape
            err = (tiled - whole).abs().max()
            assert err < 1e-4, (consistency, float(err))
            assert max(full_res) <= (64 + 2 * FAST_HALO) ** 2, max(full_res)
    finally:
        for h in hooks:
            h.remove()
    # statistics of each tile alone (what a naive tiler would use) give visibly different pixels
    naive = style_transfer(frames[:, :75, :101], method="fast", network=net)
    assert (naive - whole[:, :75, :101]).abs().max() > 0.05


def test_tiled_runs_report_progress_per_tile_and_counts_are_exact():
    """Tiled runs move the progress bar once per tile, and the tile counts the bar is sized by are exact:
    the reported steps run 1, 2, ..., total without a gap or a step back (a count that is off would jump at
    the end of a frame or stall below it)."""
    enc = _lively(AdaINEncoder([4, 4, 8, 8, 8, 8, 8, 8, 8]), 2)
    dec = _lively(AdaINDecoder(8, [8, 8, 8, 8, 8, 8, 4, 4, 3]), 3)
    pair = AdaIN(enc, dec)
    fast = _lively(TransformerNet((4, 8, 8), 1), 1)
    frames = _frames(3, 150, 131)
    cases = [dict(method="adain", network=pair, style=_frames(1, 40, 40), consistency=True),
             dict(method="adain", network=pair, style=_frames(3, 140, 100, seed=3), consistency=False),
             dict(method="fast", network=fast, consistency=True),
             dict(method="fast", network=fast, consistency=False)]
    for case in cases:
        seen = []
        style = case.pop("style", None)
        style_transfer(frames, style, tile_size=64, batch_size=2, progress=lambda d, t, _: seen.append((d, t)),
                       **case)
        totals = {t for _, t in seen}
        assert len(totals) == 1, (case["method"], totals)
        total = totals.pop()
        steps = [d for d, _ in seen]
        assert total > 3 * 4 and steps[-1] == total, (case["method"], total, steps[-5:])
        assert all(b >= a for a, b in zip(steps, steps[1:])), (case["method"], steps)
        assert sorted(set(steps)) == list(range(1, total + 1)), (case["method"], total, sorted(set(steps))[-5:])
