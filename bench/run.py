#!/usr/bin/env python3
"""Speed and memory benchmark: every figure is measured in this run, next to a baseline measured in the same
run on the same weights and inputs.

    python3 scripts/dev.py bench                 # everything (about 10 minutes on a 2-core CPU)
    python3 scripts/dev.py bench --only translator,stylegan
    python3 scripts/dev.py bench --reference pix2pix=/src/pytorch-CycleGAN-and-pix2pix \
                                 --reference stylegan2=/src/stylegan2-ada-pytorch

Baseline ("eager"): a straightforward float32 forward of the same architecture, the way the reference scripts
run it (``model.eval()``, ``torch.no_grad()``, NCHW, no channels_last, no autocast, no compilation), on the
whole frame. ``quality`` and ``fast`` are the pack's own paths (what the nodes run): ``quality`` is float32
(channels_last, inference mode, no per-frame Python overhead), ``fast`` is bfloat16 where the CPU/GPU has
native support. ``max err`` is the largest difference of any output pixel from the eager float32 result, in
1/255 steps of the 8-bit image the user would save; ``PSNR`` (dB) and ``> 2/255`` (fraction of 8-bit pixels off
by more than 2/255) are the two measures of the pack's accuracy criterion (``models/precision.py``: a fast path
runs only at PSNR >= 50 dB and <= 0.01 %). ``fast`` requests what ``precision: auto`` asks for on the device
(CUDA float16, AMX CPUs bfloat16; other AVX512-BF16 CPUs bfloat16 for the figures) and the note says what ran
and the calibration's verdict; ``autocast`` is the naive ``torch.autocast`` eager forward for comparison.
Trained checkpoints: the bundled translators and StyleGAN, and every ``--weights PATH`` file, on a real example
frame.

On a GPU (``python3 bench/run.py --device cuda``, or ``scripts/dev.py bench --device cuda``) the translator group
runs 512² b1/b8, 1080p and 4K untiled plus the 1080p tiled path, eager vs the pack's paths side by side; the
StyleGAN group runs StyleGAN2 1024² b8 (bare ``G.synthesis`` vs ``models.synthesize`` vs fast) and StyleGAN3-T
1024² b1 vs b8.

With ``--reference NAME=PATH`` (or ``GAN_PACK_REFERENCE_<NAME>=PATH``) the reference code of a local clone is
timed too, on the same weights; nothing from a reference repository is part of this pack.

Output: a table on stdout (Markdown, pasted into the README's performance table) and
``bench-results/bench-<machine>.json``.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from models.precision import cpu_flags, cpu_model  # noqa: E402

if __name__ == "__main__":  # the group modules import ``bench.run``: let them find this very module
    import bench  # noqa: E402

    sys.modules["bench.run"] = sys.modules[__name__]


# ------------------------------------------------------------------------------------------ machine
def cpu_features() -> List[str]:
    flags = cpu_flags()
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags]


def machine() -> Dict[str, object]:
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_features": cpu_features(), "torch": torch.__version__, "gpu": None}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ------------------------------------------------------------------------------------------ measuring
def _rss_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1])
    return 0


@contextlib.contextmanager
def peak_memory(device: torch.device):
    """Peak memory above the level at entry, in MB: CUDA allocator peak on GPU, resident-set high-water mark on
    CPU (reset through /proc/self/clear_refs, so each case is measured on its own)."""
    out = {"mb": float("nan")}
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        yield out
        torch.cuda.synchronize()
        out["mb"] = (torch.cuda.max_memory_allocated() - start) / 2**20
        return
    try:
        Path("/proc/self/clear_refs").write_text("5")
        resettable = True
    except OSError:
        resettable = False
    start = _rss_kb("VmRSS")
    yield out
    if resettable:
        out["mb"] = max(0, _rss_kb("VmHWM") - start) / 1024


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn: Callable[[], object], device: torch.device, *, repeats: int, warmup: int = 1):
    """Median seconds per call of ``fn`` and its last result."""
    result = None
    for _ in range(warmup):
        result = fn()
    sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2], result


@dataclass
class Row:
    group: str
    case: str
    path: str
    items_per_s: float
    peak_mb: float
    ratio: Optional[float] = None         # items/s divided by the eager baseline's
    max_err_255: Optional[float] = None   # max |out - eager fp32| in 1/255 units
    note: str = ""
    extra: Dict[str, float] = field(default_factory=dict)
    psnr_db: Optional[float] = None       # PSNR against the eager float32 output (dB; inf = identical)
    frac_over: Optional[float] = None     # fraction of 8-bit pixels off by more than 2/255 from it


ROWS: List[Row] = []


def emit(row: Row) -> None:
    ROWS.append(row)
    ratio = f"{row.ratio:.2f}x" if row.ratio is not None else "-"
    err = f"{row.max_err_255:.2f}" if row.max_err_255 is not None else "-"
    acc = ""
    if row.psnr_db is not None:
        acc = f"  PSNR {_psnr(row.psnr_db):>5} dB  >2/255 {_frac(row.frac_over):>8}"
    print(f"  {row.group:<11} {row.case:<28} {row.path:<10} {row.items_per_s:9.3f}/s  peak {row.peak_mb:7.0f} MB"
          f"  ratio {ratio:>6}  max err {err:>5}/255{acc}  {row.note}", flush=True)


def _psnr(v: Optional[float]) -> str:
    return "" if v is None else ("inf" if v == float("inf") else f"{v:.1f}")


def _frac(v: Optional[float]) -> str:
    return "" if v is None else f"{v * 100:.4f}%"


def accuracy(out: torch.Tensor, base: torch.Tensor, *, channel_dim: int = -1, value_range=(0.0, 1.0)) -> Dict:
    """Row fields ``max_err_255``, ``psnr_db`` and ``frac_over`` of ``out`` against ``base`` (the shared
    accuracy measures of ``models/precision.py``; NHWC [0, 1] images by default)."""
    from models.precision import measure

    psnr, frac, err = measure(out, base, channel_dim=channel_dim, value_range=value_range)
    return {"max_err_255": err, "psnr_db": psnr, "frac_over": frac}


def max_err_255(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference of images in [-1, 1] (NCHW) or [0, 1] (NHWC, flagged by last dim <= 4), in 1/255."""
    a, b = a.detach().float().cpu(), b.detach().float().cpu()
    scale = 255.0 if a.shape[-1] <= 4 and a.dim() == 4 and a.shape[1] > 4 else 127.5
    return float((a - b).abs().max()) * scale


# ------------------------------------------------------------------------------------------ groups
GROUPS: Dict[str, Callable[[argparse.Namespace, torch.device], None]] = {}


def group(name: str):
    def deco(fn):
        GROUPS[name] = fn
        return fn
    return deco


def _load_groups() -> None:
    import importlib

    for mod in sorted(p.stem for p in (REPO / "bench").glob("bench_*.py")):
        importlib.import_module(f"bench.{mod}")


def main(argv: Optional[List[str]] = None) -> int:
    _load_groups()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help=f"comma list of groups: {', '.join(GROUPS)}")
    ap.add_argument("--device", default="auto", help="cpu | cuda | auto")
    ap.add_argument("--quick", action="store_true", help="fewer sizes and repeats (a smoke run)")
    ap.add_argument("--reference", action="append", default=[], metavar="NAME=PATH",
                    help="time a local clone of a reference repository too (pix2pix, stylegan2, stylegan3)")
    ap.add_argument("--out", default=str(REPO / "bench-results"), help="folder for the JSON results")
    ap.add_argument("--weights", action="append", default=[], metavar="PATH",
                    help="also benchmark this trained checkpoint (translator or StyleGAN file), besides the "
                         "bundled ones; repeatable")
    args = ap.parse_args(argv)
    refs = {k.lower()[len("GAN_PACK_REFERENCE_"):]: v for k, v in os.environ.items()
            if k.startswith("GAN_PACK_REFERENCE_")}
    for item in args.reference:
        name, _, path = item.partition("=")
        refs[name.lower()] = path
    args.references = refs
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if args.device == "auto" else args.device))
    info = machine()
    print(f"machine: {info['cpu']} ({info['cores']} cores, torch threads {info['torch_threads']}, "
          f"features {' '.join(info['cpu_features']) or '-'}), GPU: {info['gpu'] or 'none'}, torch {info['torch']}")
    load0 = os.getloadavg()
    print(f"device: {device}; load average at start {load0[0]:.1f} (1 min), {load0[1]:.1f} (5 min)\n")
    chosen = [g for g in args.only.split(",") if g] or list(GROUPS)
    unknown = set(chosen) - set(GROUPS)
    if unknown:
        ap.error(f"unknown groups {sorted(unknown)}; known: {', '.join(GROUPS)}")
    t_all = time.perf_counter()
    for name in chosen:
        print(f"[{name}]", flush=True)
        t0 = time.perf_counter()
        try:
            GROUPS[name](args, device)
        except Exception as exc:  # one failing group must not hide the others' figures
            import traceback

            traceback.print_exc()
            print(f"  {name}: FAILED ({type(exc).__name__}: {exc})")
        print(f"  ({time.perf_counter() - t0:.0f} s)\n", flush=True)
    total = time.perf_counter() - t_all
    load1 = os.getloadavg()
    info["load_average"] = {"start_1min": load0[0], "end_1min": load1[0], "end_5min": load1[1],
                            "end_15min": load1[2]}
    info["date"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(markdown_table(info, device))
    print(f"\ntotal {total:.0f} s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tag = "gpu" if device.type == "cuda" else "cpu"
    path = out / f"bench-{tag}.json"
    path.write_text(json.dumps({"machine": info, "device": str(device), "seconds": total,
                                "rows": [asdict(r) for r in ROWS]}, indent=1))
    print(f"results: {path}")
    return 0


def markdown_table(info, device) -> str:
    lines = [f"Machine: {info['cpu']}, {info['cores']} cores" + (f", {info['gpu']}" if device.type == "cuda" else "")
             + f" ({device.type}); torch {info['torch']}, {info['torch_threads']} threads"
             + (f"; {info['date']}" if info.get("date") else "")
             + (f"; load average {info['load_average']['start_1min']:.1f} at start, "
                f"{info['load_average']['end_15min']:.1f} over the last 15 min (other jobs share the machine)"
                if info.get("load_average") else "") + ".", "",
             "| group | case | path | items/s | ms/item | peak MB | vs baseline | max err (1/255) | PSNR dB | > 2/255 "
             "| note |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in ROWS:
        ratio = f"{r.ratio:.1f}×" if r.ratio is not None else ""
        err = f"{r.max_err_255:.2f}" if r.max_err_255 is not None else ""
        ips = f"{r.items_per_s:.3f}" if r.items_per_s < 0.1 else f"{r.items_per_s:.2f}" if r.items_per_s < 10 \
            else f"{r.items_per_s:.0f}"
        peak = "" if r.peak_mb != r.peak_mb else f"{r.peak_mb:.0f}"   # NaN: not measured
        ms = f"{1000.0 / r.items_per_s:.0f}" if r.items_per_s > 0 else ""
        lines.append(f"| {r.group} | {r.case} | {r.path} | {ips} | {ms} | {peak} | {ratio} | {err} | "
                     f"{_psnr(r.psnr_db)} | {_frac(r.frac_over)} | {r.note} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
