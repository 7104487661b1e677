#!/usr/bin/env python3
"""Train Pix2Pix or CycleGAN on your own image folders, headless (a farm job, a terminal, a CI box).

    python scripts/train.py pix2pix  /data/plates2clean --name plates2clean
    python scripts/train.py cyclegan /data/day2night    --name day2night --netG resnet_6blocks
    python scripts/train.py cyclegan /data/day2night    --name day2night --continue_train   # carry on

Options are the reference's (junyanz/pytorch-CycleGAN-and-pix2pix ``train.py``) with the same names and
defaults: ``--netG --netD --n_layers_D --ngf --ndf --norm --no_dropout --gan_mode --lambda_A --lambda_B
--lambda_identity --lambda_L1 --pool_size --lr --beta1 --lr_policy --n_epochs --n_epochs_decay --epoch_count
--input_nc --output_nc --direction --init_type --init_gain --batch_size --load_size --crop_size --preprocess
--no_flip --serial_batches --max_dataset_size --dataset_mode --phase --print_freq --display_freq
--save_latest_freq --save_epoch_freq --save_by_iter --continue_train --epoch --checkpoints_dir --name``, plus
``--seed --max_iters --save_state_freq --lambda_gp --amp --device --deterministic --torch_threads``. The data folder layouts
are described in ``models/training/data.py`` (aligned A|B images in ``train/``, or ``trainA/`` + ``trainB/``).

Writes ``<checkpoints_dir>/<name>/``: ``latest_net_G.pth`` (pix2pix) or ``latest_net_G_A.pth`` /
``latest_net_G_B.pth`` (CycleGAN) and the discriminators in the reference layout, ``<epoch>_net_*.pth`` every
``save_epoch_freq`` epochs, ``train_state.pt`` (resumable state), ``loss_log.txt``, ``train_opt.txt`` and
``samples/`` (a preview every ``display_freq`` iterations).

Exit codes: 0 finished (or ``--max_iters`` reached); 1 training failed (non-finite loss: lower ``--lr``, resume
from the last state); 2 bad options or data (nothing trained); 130 stopped by SIGINT/SIGTERM -- the networks and
the training state were saved at the current iteration, so the same command with ``--continue_train`` carries on
exactly where it stopped (a farm manager can requeue the job as it is).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    from models.training import options as O

    ap = argparse.ArgumentParser(prog="train.py", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Defaults shown are CycleGAN's where the two models differ; pix2pix uses "
                                        "netG unet_256, norm batch, dropout on, gan_mode vanilla, pool_size 0.")
    ap.add_argument("model", choices=O.KINDS, help="pix2pix (paired) or cyclegan (unpaired)")
    ap.add_argument("dataroot", help="the data folder (see models/training/data.py for the layouts)")
    cyc = O.defaults("cyclegan")
    for name in O.MODEL_OPTIONS + O.LOOP_OPTIONS + O.EXTRA_OPTIONS:
        d = cyc[name]
        if isinstance(d, bool):
            ap.add_argument(f"--{name}", action="store_true", default=None)
        else:
            ap.add_argument(f"--{name}", default=None, metavar=type(d).__name__.upper(),
                            help=f"(default: {d})" if name not in ("dataset_mode",) else
                            "aligned | paired | unaligned (default: detected from the folder)")
    ap.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1 ...")
    ap.add_argument("--gpu_ids", default=None, help="the reference's form: -1 = CPU, 0 = cuda:0 (one GPU)")
    ap.add_argument("--deterministic", action="store_true",
                    help="deterministic CUDA kernels (bit-exact reruns and resumes on a GPU; slower)")
    ap.add_argument("--torch_threads", type=int, default=0, help="CPU threads for PyTorch (0 = its default)")
    ap.add_argument("--summary_json", default=None, help="write the final summary here as JSON")
    ap.add_argument("--quiet", action="store_true", help="no progress bar (loss lines every print_freq only)")
    return ap


def _device(ns):
    import torch

    if ns.gpu_ids is not None:
        first = ns.gpu_ids.split(",")[0].strip()
        return "cpu" if first.startswith("-") else f"cuda:{int(first)}"
    if ns.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return ns.device


class _Bar:
    """One status line rewritten in place on a terminal; silent otherwise (the loop prints loss lines)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.last = 0.0

    def __call__(self, info) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.25 and info["step"] < info["steps_total"]:
            return
        self.last = now
        done, total = info["step"], max(1, info["steps_total"])
        rate = info["it_per_s"]
        eta = (total - done) / rate if rate > 0 else math.inf
        width = 24
        fill = int(width * done / total)
        losses = " ".join(f"{k} {v:.3f}" for k, v in info["losses"].items())
        line = (f"\r[{'#' * fill}{'.' * (width - fill)}] {done}/{total} ep {info['epoch']} "
                f"{rate:.2f} it/s eta {eta / 60:.1f} min | {losses}")
        sys.stdout.write(line[:200])
        sys.stdout.flush()

    def newline(self) -> None:
        if self.enabled:
            sys.stdout.write("\n")
            sys.stdout.flush()


def main(argv=None) -> int:
    ap = build_parser()
    ns = ap.parse_args(argv)
    if ns.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # before CUDA starts
    import torch

    if ns.deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False

    from models.training import DataFolderError, NonFiniteLossError, train_folders

    from models.training import options as O

    opts = {k: getattr(ns, k) for k in O.MODEL_OPTIONS + O.LOOP_OPTIONS + O.EXTRA_OPTIONS
            if getattr(ns, k) is not None}
    if ns.torch_threads > 0:
        torch.set_num_threads(ns.torch_threads)
    stop = {"signal": None}

    def on_signal(signum, frame):
        if stop["signal"] is not None:  # a second signal: stop now, the last saved state stays
            raise KeyboardInterrupt
        stop["signal"] = signum
        print(f"\n[train] {signal.Signals(signum).name}: saving the state at the end of this iteration ...",
              file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    bar = _Bar(sys.stdout.isatty() and not ns.quiet)

    def log(msg: str) -> None:
        bar.newline() if bar.enabled else None
        print(f"[train] {msg}", flush=True)

    try:
        device = _device(ns)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"--device {device}: no CUDA device is available (use --device cpu)")
        result = train_folders(ns.model, ns.dataroot, device=device, progress=bar, log=log,
                               stop_requested=lambda: stop["signal"] is not None, **opts)
    except (DataFolderError, ValueError, TypeError, FileNotFoundError) as exc:
        bar.newline()
        print(f"[train] error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except NonFiniteLossError as exc:
        bar.newline()
        print(f"[train] failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        bar.newline()
        print("[train] interrupted; the last saved state stays (continue with --continue_train)", file=sys.stderr)
        return EXIT_STOPPED
    bar.newline()
    summary = {"model": ns.model, "folder": str(result.folder), "total_iters": result.total_iters,
               "epoch": result.epoch, "finished": result.finished, "seconds": round(result.seconds, 2),
               "iterations_per_second": round(result.steps / result.seconds, 4) if result.seconds else None,
               "losses": result.losses, "files": [str(p) for p in result.files]}
    if ns.summary_json:
        Path(ns.summary_json).write_text(json.dumps(summary, indent=1))
    print(f"[train] {'done' if result.finished else 'stopped'}: {result.total_iters} iterations, "
          f"{summary['iterations_per_second']} it/s; files in {result.folder}", flush=True)
    return EXIT_OK if result.finished else EXIT_STOPPED


if __name__ == "__main__":
    raise SystemExit(main())
