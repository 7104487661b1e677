"""Keyframe training: seconds to a given training loss on the demo shot.

Uses the keyframe helper's ``bench/keyframe_bench.py`` (a procedural shot from ``models.shots.make_demo_shot``,
``train_from_keyframes`` on 2 of its frames) when present, with a short step budget so the whole benchmark
stays within minutes; else a minimal measurement straight from ``models.train_from_keyframes`` +
``models.shots.make_demo_shot``; skipped with a message when neither exists in this checkout.
"""
from __future__ import annotations

import importlib
import time

import torch

from bench.run import Row, emit, group, peak_memory

LOSS_TARGET = 0.15   # reached within ~100 steps at 256² with the default options (0.10 after 200)


def _minimal(size: int, frames: int, steps: int) -> dict:
    from models import train_from_keyframes
    from models.shots import make_demo_shot

    shot, truth = make_demo_shot(frames, size, 0)
    keys = [frames // 4, (3 * frames) // 4]
    trace = []
    t0 = time.perf_counter()
    train_from_keyframes(shot[keys], truth[keys], steps=steps, seed=0, device="cpu",
                         progress=lambda s, n, loss: trace.append((time.perf_counter() - t0, loss)))
    wall = time.perf_counter() - t0
    ema, reach = None, None
    for t, loss in trace:
        ema = loss if ema is None else 0.9 * ema + 0.1 * loss
        if reach is None and ema <= LOSS_TARGET:
            reach = t
    return {"steps": len(trace), "train_wall_s": wall, "seconds_to_loss_target": reach, "final_loss_ema": ema}


@group("keyframe")
def run(args, device):
    # the test: 2 painted keyframes, DEFAULT settings, PSNR on the unseen frames vs the baselines
    # (--quick: a short smoke run that only shows the loss curve)
    size, frames = (256, 6) if args.quick else (512, 12)
    steps = 40 if args.quick else None
    try:
        kb = importlib.import_module("bench.keyframe_bench")
    except ImportError as exc:
        kb = None
        why = exc
    with peak_memory(torch.device("cpu")) as mem:
        if kb is not None:
            fig = kb.main(["--size", str(size), "--frames", str(frames), "--loss-target", str(LOSS_TARGET)]
                          + (["--steps", str(steps)] if steps else []))
            how = "bench/keyframe_bench.py"
        else:
            try:
                fig = _minimal(size, frames, steps or 120)
            except ImportError as exc:
                print(f"  keyframe: skipped -- keyframe training is not in this checkout ({why}; {exc})")
                return
            how = "train_from_keyframes"
    reach = fig.get("seconds_to_loss_target")
    steps_done = int(fig.get("steps") or steps or 0)
    note = (f"{steps_done} steps at {size}x{size}: loss (EMA) {LOSS_TARGET} "
            + (f"reached after {reach:.0f} s" if reach is not None else
               f"not reached in {fig['train_wall_s']:.0f} s (final {fig.get('final_loss_ema') or float('nan'):.3f})")
            + f" [{how}]")
    if fig.get("psnr_keyframe") is not None:
        note += f"; unseen-frame PSNR {fig['psnr_keyframe']:.1f} dB"
    if fig.get("margin_db") is not None:
        note += f", {fig['margin_db']:+.1f} dB over the best baseline (bar +8)"
    emit(Row("keyframe", f"train 2 keys {size}x{size}", "train", steps_done / fig["train_wall_s"], mem["mb"],
             note=note, extra={"seconds_to_loss": reach if reach is not None else float("nan"),
                               "train_wall_s": fig["train_wall_s"]}))
