"""Keyframe stylisation benchmark: does training on 2 painted keyframes reproduce a hidden look on a shot?

Builds a procedural shot with a known stylisation (``models.shots.make_demo_shot``: colour grade +
posterisation + edge inking), trains ``train_from_keyframes`` on 2 of its frames (default settings unless
options are given) and renders the other frames. Prints, on the unseen frames:

* PSNR of the baselines: the unstyled frames, a global colour transfer from the keyframes (per-channel mean/std
  matching, and per-channel histogram matching; the better one counts) and, for information, a 3D colour LUT
  fitted on the keyframe pairs (a stronger, colour-only reference);
* PSNR of the keyframe translator and its margin over the better baseline (the bar is +8 dB);
* training seconds (wall and process CPU), and the seconds to reach a training loss;
* flicker (models.temporal.flicker) of the render vs the ground-truth stylisation, and of the render after
  ``temporal_blend``.

Usage: OMP_NUM_THREADS=2 python bench/keyframe_bench.py [--size 512] [--frames 24] [--steps N] [--opt k=v ...]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.keyframe import DEFAULT_STEPS, train_from_keyframes  # noqa: E402
from models.shots import make_demo_shot  # noqa: E402
from models.temporal import flicker, temporal_blend  # noqa: E402


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of [-1, 1] tensors measured on the [0, 1] scale, from the MSE pooled over everything."""
    mse = (((a.float() - b.float()) * 0.5) ** 2).mean().item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(1.0 / mse)).item()


def mean_std_transfer(src_in: torch.Tensor, src_out: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Per-channel mean/std matching fitted on keyframe inputs -> keyframe targets."""
    dims = (0, 2, 3)
    mi, si = src_in.mean(dims, keepdim=True), src_in.std(dims, keepdim=True) + 1e-6
    mo, so = src_out.mean(dims, keepdim=True), src_out.std(dims, keepdim=True)
    return ((frames - mi) / si * so + mo).clamp(-1, 1)


def histogram_transfer(src_in: torch.Tensor, src_out: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """Per-channel histogram matching: the CDF of the keyframe inputs mapped onto that of the targets."""
    out = torch.empty_like(frames)
    q = torch.linspace(0, 1, 1025)
    for c in range(frames.shape[1]):
        a = torch.quantile(src_in[:, c].reshape(-1)[::7].float(), q)
        b = torch.quantile(src_out[:, c].reshape(-1)[::7].float(), q)
        v = frames[:, c].reshape(-1).contiguous()
        pos = torch.searchsorted(a.contiguous(), v).clamp(1, len(a) - 1)
        lo, hi = a[pos - 1], a[pos]
        t = ((v - lo) / (hi - lo).clamp(min=1e-6)).clamp(0, 1)
        out[:, c] = (b[pos - 1] + t * (b[pos] - b[pos - 1])).view_as(frames[:, c])
    return out.clamp(-1, 1)


def lut3d_transfer(src_in: torch.Tensor, src_out: torch.Tensor, frames: torch.Tensor, bins: int = 24) -> torch.Tensor:
    """A 3D colour LUT fitted on the keyframe pairs (mean target colour per input-colour bin; empty bins fall
    back to mean/std transfer). A purely colour-to-colour map: the best any global colour transfer can do."""
    def index(t):
        q = ((t.clamp(-1, 1) + 1) * 0.5 * (bins - 1) + 0.5).long().clamp(0, bins - 1)
        return (q[:, 0] * bins + q[:, 1]) * bins + q[:, 2]
    idx = index(src_in).reshape(-1)
    tgt = src_out.permute(0, 2, 3, 1).reshape(-1, src_out.shape[1])
    sums = torch.zeros(bins ** 3, tgt.shape[1]).index_add_(0, idx, tgt)
    cnt = torch.zeros(bins ** 3).index_add_(0, idx, torch.ones_like(idx, dtype=torch.float32))
    lut = sums / cnt.clamp(min=1)[:, None]
    fallback = mean_std_transfer(src_in, src_out, frames).permute(0, 2, 3, 1).reshape(-1, tgt.shape[1])
    fi = index(frames).reshape(-1)
    have = cnt[fi] > 0
    out = torch.where(have[:, None], lut[fi], fallback)
    return out.view(frames.shape[0], frames.shape[2], frames.shape[3], -1).permute(0, 3, 1, 2).contiguous()


def plain_cnn(kin: torch.Tensor, kout: torch.Tensor, seconds: float, seed: int = 0) -> torch.nn.Module:
    """The issue's reference point: a plain five-layer CNN (3x3 convolutions, 64 channels, ReLU) trained with
    L1 on random 64 px patches of the keyframes for ``seconds`` of wall time."""
    torch.manual_seed(seed)
    layers, c = [], kin.shape[1]
    for i in range(5):
        out = kout.shape[1] if i == 4 else 64
        layers.append(torch.nn.Conv2d(c, out, 3, padding=1, padding_mode="replicate"))
        if i < 4:
            layers.append(torch.nn.ReLU())
        c = out
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    n, _, h, w = kin.shape
    p = min(64, h, w)
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        k = torch.randint(n, (8,), generator=g)
        ys = torch.randint(h - p + 1, (8,), generator=g)
        xs = torch.randint(w - p + 1, (8,), generator=g)
        xb = torch.stack([kin[k[i], :, ys[i]:ys[i] + p, xs[i]:xs[i] + p] for i in range(8)])
        yb = torch.stack([kout[k[i], :, ys[i]:ys[i] + p, xs[i]:xs[i] + p] for i in range(8)])
        loss = (net(xb) - yb).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


@torch.no_grad()
def render(model, frames: torch.Tensor, chunk: int = 2) -> torch.Tensor:
    return torch.cat([model(frames[i:i + chunk]) for i in range(0, frames.shape[0], chunk)])


def parse_value(v: str):
    try:
        return json.loads(v)
    except ValueError:
        return v


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0, help="shot seed")
    ap.add_argument("--train-seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    ap.add_argument("--keyframes", default="", help="comma-separated keyframe indices (default: 1/4 and 3/4)")
    ap.add_argument("--loss-target", type=float, default=0.06, help="report seconds to reach this smoothed loss")
    ap.add_argument("--opt", action="append", default=[], help="training option k=v (repeatable)")
    ap.add_argument("--cnn-seconds", type=float, default=0.0,
                    help="also train the plain five-layer CNN reference for this many seconds (e.g. 120)")
    ap.add_argument("--json", action="store_true", help="print one JSON line of the figures as well")
    args = ap.parse_args(argv)

    options = {}
    for kv in args.opt:
        k, _, v = kv.partition("=")
        options[k] = parse_value(v)

    frames, truth = make_demo_shot(args.frames, args.size, args.seed)
    n = frames.shape[0]
    if args.keyframes:
        keys = [int(k) for k in args.keyframes.split(",")]
    else:
        keys = [n // 4, (3 * n) // 4]
    unseen = [i for i in range(n) if i not in keys]
    kin, kout = frames[keys], truth[keys]

    trace = []
    t_wall, t_cpu = time.perf_counter(), time.process_time()

    def progress(step, steps, loss):
        trace.append((time.perf_counter() - t_wall, time.process_time() - t_cpu, loss))

    model = train_from_keyframes(kin, kout, steps=args.steps, seed=args.train_seed, progress=progress,
                                 device="cpu", **options)
    train_wall, train_cpu = time.perf_counter() - t_wall, time.process_time() - t_cpu

    t = time.perf_counter()
    out = render(model, frames)
    render_s = time.perf_counter() - t

    u_truth = truth[unseen]
    figures = {
        "size": args.size, "frames": n, "keyframes": keys, "steps": len(trace), "options": options,
        "threads": torch.get_num_threads(), "loadavg_1min": os.getloadavg()[0],
        "psnr_unstyled": psnr(frames[unseen], u_truth),
        "psnr_mean_std": psnr(mean_std_transfer(kin, kout, frames[unseen]), u_truth),
        "psnr_histogram": psnr(histogram_transfer(kin, kout, frames[unseen]), u_truth),
        "psnr_lut3d_info": psnr(lut3d_transfer(kin, kout, frames[unseen]), u_truth),
        "psnr_keyframe": psnr(out[unseen], u_truth),
        "psnr_keyframe_on_keys": psnr(out[keys], kout),
        "train_wall_s": train_wall, "train_cpu_s": train_cpu, "render_s": render_s,
        "flicker_truth": flicker(truth, frames),
        "flicker_keyframe": flicker(out, frames),
    }
    if args.cnn_seconds > 0:
        cnn = plain_cnn(kin, kout, args.cnn_seconds)
        figures["psnr_plain_cnn"] = psnr(render(cnn, frames[unseen]).clamp(-1, 1), u_truth)
    blended = temporal_blend(out, frames)
    figures["flicker_keyframe_blend"] = flicker(blended, frames)
    figures["psnr_keyframe_blend"] = psnr(blended[unseen], u_truth)
    baseline = max(figures["psnr_unstyled"], figures["psnr_mean_std"], figures["psnr_histogram"])
    figures["best_baseline"] = baseline
    figures["margin_db"] = figures["psnr_keyframe"] - baseline
    # seconds to reach the loss target, on an exponential moving average of the training loss
    ema, reach = None, None
    for wall, cpu, loss in trace:
        ema = loss if ema is None else 0.9 * ema + 0.1 * loss
        if reach is None and ema <= args.loss_target:
            reach = (wall, cpu)
    figures["loss_target"] = args.loss_target
    figures["final_loss_ema"] = ema
    figures["seconds_to_loss_target"] = None if reach is None else reach[0]
    figures["cpu_seconds_to_loss_target"] = None if reach is None else reach[1]

    f = figures
    print(f"shot: {n} frames of {args.size}x{args.size}, keyframes {keys}, {len(unseen)} unseen; "
          f"{f['threads']} threads, load average {f['loadavg_1min']:.1f}")
    print(f"PSNR unseen frames  unstyled          {f['psnr_unstyled']:6.2f} dB")
    print(f"                    mean/std transfer {f['psnr_mean_std']:6.2f} dB")
    print(f"                    histogram match   {f['psnr_histogram']:6.2f} dB")
    print(f"                    (3D LUT, info)    {f['psnr_lut3d_info']:6.2f} dB")
    print(f"                    keyframe net      {f['psnr_keyframe']:6.2f} dB  (on keyframes "
          f"{f['psnr_keyframe_on_keys']:.2f} dB)")
    if "psnr_plain_cnn" in f:
        print(f"                    plain 5-layer CNN {f['psnr_plain_cnn']:6.2f} dB  (L1, {args.cnn_seconds:.0f} s; "
              f"{f['psnr_plain_cnn'] - f['best_baseline']:+.2f} dB over the best baseline)")
    print(f"margin over best baseline: {f['margin_db']:+.2f} dB  (bar: +8 dB)")
    print(f"training: {f['steps']} steps, {train_wall:.1f} s wall, {train_cpu:.1f} s CPU; render "
          f"{render_s:.1f} s")
    if reach is None:
        print(f"loss target {args.loss_target}: not reached (final smoothed loss {ema:.4f})")
    else:
        print(f"seconds to reach smoothed loss {args.loss_target}: {reach[0]:.1f} s wall ({reach[1]:.1f} s CPU)")
    print(f"flicker: ground truth {f['flicker_truth']:.3f}, keyframe net {f['flicker_keyframe']:.3f}, "
          f"with temporal_blend {f['flicker_keyframe_blend']:.3f} (PSNR {f['psnr_keyframe_blend']:.2f} dB)")
    ok = lambda v: "met" if v <= f["flicker_truth"] else f"missed by {100 * (v / f['flicker_truth'] - 1):.2f}%"
    print(f"flicker bar (<= ground truth): render {ok(f['flicker_keyframe'])}, "
          f"render + temporal_blend {ok(f['flicker_keyframe_blend'])}")
    if args.json:
        print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
