#!/usr/bin/env python3
"""Recipe of the bundled StyleGAN2 (``models/bundled/stylegan/gan_pack_islands64.safetensors``).

The bundled model exists so the StyleGAN workflows run with no download and show what style mixing does: the
coarse ws decide the layout (where the islands are, their outlines), the fine ws decide the colours.

Its weights are **constructed by formula, not trained**. Regression training of a StyleGAN2 against a procedural
renderer (with style-mixing regularisation) was tried first and did not get past blurry average colours within a
10-minute budget on two shared CPU cores, so this recipe writes the weights of a genuine StyleGAN2-ADA generator
(the pack's ``StyleGAN2Generator``: reference architecture, modulated/demodulated convolutions, skip
architecture, FIR up-sampling) directly:

* mapping: one linear layer, ``w = normalise(z)`` (identity weights), so every w dimension is a known Gaussian;
* ``b4.const`` holds 16 one-hot channels, one per pixel of the 4x4 grid; ``b4.conv1`` (ws 0) has two output
  channels whose modulated weights sum the 16 pixels with the styles ``s_p = w_p`` (dimensions 0-15): after
  demodulation they are the layout field ``f_p = w_p / ||w_0..15||`` and its negative; the leaky ReLU turns them
  into an *island* channel ``m = relu(f)`` and a *sea* channel ``n = relu(-f)``;
* every later convolution passes those two channels on unchanged (centre-tap identity kernels, constant styles;
  demodulation makes them exact identities) while the blocks up-sample them 4 -> 64 px with the reference's
  [1, 3, 3, 1] filter, so the islands get smooth outlines; ``b64.conv1`` copies them into three channels each;
* only the last ToRGB (ws 9) draws: modulated 1x1 weights give ``rgb = -1 + 2 (fg * m + bg * n) / M`` with the
  island colour ``fg`` from w dimensions 16-18 and the sea colour ``bg`` from 19-21 (``M`` normalises the island
  channel to about 1); all other ToRGB layers are zero. Coasts, where ``f`` crosses 0, are dark.

So ws 0 carries the layout and ws 9 the colour; ws 1-8 carry nothing (their styles are constants). Mixing with
the ``coarse`` preset (ws 0-1) gives the column's islands in the row's colours; ``fine`` (ws 4-9) gives the row's
islands in the column's colours; ``middle`` (ws 2-3) changes nothing. Truncation scales w towards ``w_avg`` (the
mean of the mapping over 10 000 latents): it pulls the colours towards the average and, because the layout is
normalised, leaves the islands where they are. Noise strengths are zero (const/random/none agree).

Deterministic (no randomness besides the calibration latents of ``--seed``)::

    python scripts/train_stylegan.py --out models/bundled/stylegan/gan_pack_islands64.safetensors
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
RES = 64
Z_DIM = W_DIM = 64
LAYOUT = 4  # the layout field is LAYOUT x LAYOUT (the resolution of b4)
FG_DIMS = (16, 17, 18)
BG_DIMS = (19, 20, 21)

GENERATOR_KWARGS = {
    "z_dim": Z_DIM, "c_dim": 0, "w_dim": W_DIM, "img_resolution": RES, "img_channels": 3,
    "mapping_kwargs": {"num_layers": 1, "activation": "linear", "lr_multiplier": 1.0},
    "synthesis_kwargs": {"channel_base": 512, "channel_max": 16, "num_fp16_res": 0, "conv_clamp": 1.5},
}


def build_generator():
    sys.path.insert(0, str(REPO))
    from models.stylegan.sg2 import StyleGAN2Generator

    torch.manual_seed(0)
    return StyleGAN2Generator(**json.loads(json.dumps(GENERATOR_KWARGS)))


def _constant_styles(affine) -> None:
    affine.weight.zero_()
    affine.bias.fill_(1.0)


@torch.no_grad()
def construct(G, *, island_scale: float = 1.0) -> None:
    """Write the weights described in the module docstring (``island_scale`` = M, the island channel's scale)."""
    for p in G.parameters():
        p.zero_()
    # mapping: w = normalise(z)   (FullyConnectedLayer: weight * 1/sqrt(in) with lr multiplier 1)
    fc = G.mapping.fc0
    fc.weight.copy_(torch.eye(W_DIM, Z_DIM) * math.sqrt(Z_DIM))
    syn = G.synthesis
    res_list = syn.block_resolutions
    # b4: one-hot const channels, conv1 sums them with styles w_0..15 (+ and -)
    b4 = syn.b4
    n_px = LAYOUT * LAYOUT
    assert b4.const.shape[0] >= n_px, "b4 needs at least 16 channels"
    for p in range(n_px):
        b4.const[p, p // LAYOUT, p % LAYOUT] = 1.0
    aff = b4.conv1.affine
    aff.weight[:n_px, :n_px] = torch.eye(n_px) * math.sqrt(W_DIM)  # styles s_p = w_p (weight gain 1/sqrt(w_dim))
    aff.bias.zero_()
    aff.bias[n_px:] = 1.0
    k = b4.conv1.weight.shape[-1] // 2
    b4.conv1.weight[0, :n_px, k, k] = 1.0
    b4.conv1.weight[1, :n_px, k, k] = -1.0
    # later layers: identity on channels 0 (islands) and 1 (sea)
    for res in res_list[1:]:
        block = getattr(syn, f"b{res}")
        for layer in (block.conv0, block.conv1):
            _constant_styles(layer.affine)
            c = layer.weight.shape[-1] // 2
            layer.weight[0, 0, c, c] = 1.0
            layer.weight[1, 1, c, c] = 1.0
    last = getattr(syn, f"b{res_list[-1]}")
    c = last.conv1.weight.shape[-1] // 2
    last.conv1.weight.zero_()
    for ch in range(3):
        last.conv1.weight[ch, 0, c, c] = 1.0      # islands -> channels 0, 1, 2
        last.conv1.weight[3 + ch, 1, c, c] = 1.0  # sea -> channels 3, 4, 5
    # ToRGB: only the last one draws. styles = affine(w) / sqrt(in_channels); rgb_c = s_c m + s_{3+c} n - 1
    for res in res_list:
        getattr(syn, f"b{res}").torgb.affine.bias.fill_(1.0)
    trgb = last.torgb
    in_ch = trgb.weight.shape[1]
    g_aff = 1 / math.sqrt(W_DIM)
    g_rgb = trgb.weight_gain
    for ch in range(3):
        trgb.weight[ch, ch, 0, 0] = 1.0
        trgb.weight[ch, 3 + ch, 0, 0] = 1.0
        # fg_c = 0.5 + 0.2 zn  ->  style = 2 fg_c / M ;  bg_c = 0.3 + 0.12 zn
        for dst, dim, mean, spread in ((ch, FG_DIMS[ch], 0.5, 0.2), (3 + ch, BG_DIMS[ch], 0.3, 0.12)):
            trgb.affine.weight[dst, dim] = 2 * spread / island_scale / g_rgb / g_aff
            trgb.affine.bias[dst] = 2 * mean / island_scale / g_rgb
    trgb.affine.bias[6:in_ch] = 0.0
    trgb.bias.fill_(-1.0)


@torch.no_grad()
def island_channel_scale(G, seed: int, n: int = 256) -> float:
    """99th percentile of the island channel entering the last ToRGB (calibrates M)."""
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed))
    ws = G.mapping(z, None)
    captured = {}

    def grab(module, inputs, output):
        captured["x"] = inputs[0]

    last = getattr(G.synthesis, f"b{G.synthesis.block_resolutions[-1]}")
    hook = last.torgb.register_forward_hook(grab)
    try:
        G.synthesis(ws, noise_mode="const")
    finally:
        hook.remove()
    return float(torch.quantile(captured["x"][:, 0].flatten()[:200000], 0.99))


@torch.no_grad()
def set_w_avg(G, seed: int, n: int = 10000) -> None:
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed + 1))
    G.mapping.w_avg.copy_(G.mapping(z, None)[:, 0].mean(0))


def make(seed: int = 0):
    G = build_generator()
    construct(G, island_scale=1.0)
    scale = island_channel_scale(G, seed)
    construct(G, island_scale=scale)
    set_w_avg(G, seed)
    G.eval()
    for p in G.parameters():
        p.requires_grad_(False)
    return G, scale


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(REPO / "models" / "bundled" / "stylegan" / "gan_pack_islands64.safetensors"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from models.stylegan import save_stylegan

    t0 = time.time()
    G, scale = make(args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_stylegan(G, args.out)
    print(json.dumps({"out": args.out, "island_scale": scale, "seconds": round(time.time() - t0, 2),
                      "num_ws": G.num_ws, "parameters": sum(p.numel() for p in G.parameters())}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
