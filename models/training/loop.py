"""A whole training run from image folders: the reference ``train.py`` loop with saving, samples, progress and
exact resume. Used by ``scripts/train.py`` (farm) and the Train node (UI).

Loop: for epoch ``epoch_count .. n_epochs + n_epochs_decay``: every batch is one :meth:`GANTrainer.step`;
``total_iters`` grows by ``batch_size`` per step (the reference counts images); every ``print_freq`` a loss line
(also appended to ``loss_log.txt``); every ``display_freq`` a sample image; every ``save_latest_freq`` the
``latest_net_*.pth`` files (``iter_<n>_net_*`` with ``save_by_iter``) and the training state; every
``save_epoch_freq`` epochs ``latest`` and ``<epoch>`` files; the learning rate steps at the end of each epoch.
``max_iters`` (this pack's) stops early, saving first. The training state is also written every
``save_state_freq`` iterations when set.

``continue_train``: with ``train_state.pt`` present the run continues exactly where that state was saved (same
batches, same random draws: a killed and resumed run ends with the same weights as an uninterrupted one on the
same device); without it, like the reference, only the ``<epoch>_net_*.pth`` weights are loaded and training
starts at ``epoch_count``.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from . import options as _options
from .checkpoints import STATE_FILE, load_networks, load_state, save_networks, save_state
from .data import FolderDataset
from .trainer import GANTrainer, VISUAL_NAMES

# options whose change makes a saved state unusable (the networks or the data order differ)
_STATE_CRITICAL = ("netG", "netD", "n_layers_D", "ngf", "ndf", "norm", "no_dropout", "input_nc", "output_nc",
                   "init_type", "init_gain", "seed", "batch_size", "dataset_mode", "crop_size", "load_size",
                   "preprocess", "serial_batches", "no_flip", "direction", "gan_mode", "pool_size")


@dataclass
class TrainResult:
    folder: Path
    kind: str
    total_iters: int
    epoch: int
    losses: Dict[str, float]
    files: List[Path] = field(default_factory=list)
    finished: bool = True
    seconds: float = 0.0
    steps: int = 0
    trainer: Optional[GANTrainer] = None


def sample_grid(trainer: GANTrainer) -> torch.Tensor:
    """The first image of the last batch's visuals side by side (reference visual order), HWC float [0, 1]."""
    names = [n for n in VISUAL_NAMES[trainer.kind] if n in trainer.visuals]
    tiles = []
    for n in names:
        t = trainer.visuals[n][0].detach().float().cpu()
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
        tiles.append(t[:3])
    h = max(t.shape[1] for t in tiles)
    tiles = [torch.nn.functional.pad(t, (0, 0, 0, h - t.shape[1]), value=-1.0) for t in tiles]
    grid = torch.cat(tiles, dim=2)
    return ((grid.clamp(-1, 1) + 1) / 2).permute(1, 2, 0).contiguous()


def save_png(img_hwc: torch.Tensor, path: Path) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    arr = (img_hwc.numpy() * 255.0 + 0.5).clip(0, 255).astype(np.uint8)
    tmp = path.with_name(path.name + ".tmp.png")
    Image.fromarray(arr).save(tmp)
    os.replace(tmp, path)
    return path


def _format_opts(opts: Dict) -> str:
    lines = ["----------------- Options ---------------"]
    lines += [f"{k:>25}: {v!s:<30}" for k, v in sorted(opts.items())]
    lines.append("----------------- End -------------------")
    return "\n".join(lines) + "\n"


def train_folders(kind: str, dataroot, *, device=None, progress: Optional[Callable[[Dict], None]] = None,
                  sample: Optional[Callable[[int, torch.Tensor, Path], None]] = None,
                  on_save: Optional[Callable[[List[Path], Dict], None]] = None,
                  check_interrupt: Optional[Callable[[], None]] = None,
                  stop_requested: Optional[Callable[[], bool]] = None, session_iters: int = 0,
                  log: Optional[Callable[[str], None]] = print, **options) -> TrainResult:
    """Train ``kind`` on the images under ``dataroot`` (see the module docstring); options by the reference's
    names plus ``seed``, ``amp``, ``lambda_gp``, ``max_iters``, ``save_state_freq``.

    Callbacks: ``progress(info)`` after every step (``info``: epoch, epoch_iter, total_iters, step, steps_total,
    losses, lr, seconds, it_per_s); ``sample(total_iters, image_hwc, path)`` when a sample is written;
    ``on_save(files, info)`` after every save; ``check_interrupt()`` before every step (raise to stop: nothing is
    saved then, the last saved files stay as they were); ``stop_requested()`` before every step (True: save the
    networks and the training state at this iteration and return with ``finished`` False -- how a farm job
    stops on SIGTERM so that ``continue_train`` carries on exactly)."""
    log = log or (lambda s: None)
    opts = _options.resolve(kind, options, "all")
    device = torch.device(device) if device is not None else torch.device("cpu")
    folder = Path(opts["checkpoints_dir"]) / opts["name"]
    mode = options.get("dataset_mode") or None  # not given: detected from the folder layout
    data = FolderDataset(dataroot, kind=kind, dataset_mode=None if mode == "auto" else mode,
                         phase=opts["phase"], load_size=opts["load_size"], crop_size=opts["crop_size"],
                         preprocess=opts["preprocess"], no_flip=opts["no_flip"], serial_batches=opts["serial_batches"],
                         max_dataset_size=opts["max_dataset_size"], input_nc=opts["input_nc"],
                         output_nc=opts["output_nc"], direction=opts["direction"], seed=opts["seed"])
    opts["dataset_mode"] = data.mode
    model_opts = {k: opts[k] for k in _options.MODEL_OPTIONS}
    trainer = GANTrainer(kind, device=device, train_size=opts["crop_size"], seed=opts["seed"], amp=opts["amp"],
                         lambda_gp=opts["lambda_gp"], **model_opts)
    _check_size(trainer, opts)
    bs = opts["batch_size"]
    per_epoch = data.batches_per_epoch(bs)
    last_epoch = opts["n_epochs"] + opts["n_epochs_decay"]
    state_path = folder / STATE_FILE
    epoch, start_batch, total_iters = opts["epoch_count"], 0, 0
    if opts["continue_train"] and state_path.is_file():
        state = load_state(state_path)
        saved = state.get("options", {})
        changed = [k for k in _STATE_CRITICAL if k in saved and saved[k] != opts[k]]
        if state["trainer"]["kind"] != kind or changed:
            raise ValueError(f"{state_path} was saved by a {state['trainer']['kind']} run with different options "
                             f"({', '.join(f'{k}: {saved[k]} -> {opts[k]}' for k in changed) or 'kind'}); "
                             "continue with the same options, or start a new --name")
        trainer.load_training_state(state["trainer"])
        epoch, start_batch, total_iters = state["epoch"], state["batch"], state["total_iters"]
        log(f"continuing {folder.name} from {state_path.name}: epoch {epoch}, iteration {total_iters}")
    else:
        if opts["continue_train"]:
            load_networks(trainer, folder, opts["epoch"])
            log(f"continuing from {opts['epoch']}_net_*.pth (weights only; no {STATE_FILE}), epoch {epoch}")
        elif state_path.is_file():
            state_path.unlink()  # a fresh run must never be resumed from an older run's state
        torch.manual_seed(opts["seed"])  # dropout; the data, pools and initial weights have their own generators
        if device.type == "cuda":
            torch.cuda.manual_seed(opts["seed"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train_opt.txt").write_text(_format_opts({**opts, "model": kind, "dataroot": str(dataroot)}))
    log(f"{kind}: {data.describe()}; {per_epoch} iterations per epoch, epochs {epoch}..{last_epoch}, "
        f"device {device}; saving to {folder}")
    max_iters = opts["max_iters"]
    steps_total = (last_epoch - opts["epoch_count"] + 1) * per_epoch
    if max_iters:
        steps_total = min(steps_total, math.ceil(max_iters / bs))
    steps_done = (total_iters // bs) if total_iters else 0
    if session_iters > 0:
        steps_total = min(steps_total, steps_done + session_iters)
    result = TrainResult(folder, kind, total_iters, epoch, dict(trainer.losses))
    save_state_freq = opts["save_state_freq"] or opts["save_latest_freq"]
    t0 = time.perf_counter()
    session_steps = 0
    log_file = folder / "loss_log.txt"

    def save(reason: str, suffixes=("latest",), nxt_epoch=None, nxt_batch=None, with_state=True) -> List[Path]:
        files: List[Path] = []
        for s in suffixes:
            files += save_networks(trainer, folder, s)
        if with_state:
            files.append(save_state(state_path, trainer, epoch=nxt_epoch, batch=nxt_batch, total_iters=total_iters,
                                    extra={"options": dict(opts)}))
        result.files = files
        if on_save is not None:
            on_save(files, {"reason": reason, "total_iters": total_iters, "epoch": epoch})
        return files

    stop = False
    while epoch <= last_epoch and not stop:
        epoch_start = time.perf_counter()
        batch_no = start_batch
        for batch in data.batches(epoch, bs, start_batch):
            if max_iters and total_iters >= max_iters:
                stop = True
                break
            if check_interrupt is not None:
                check_interrupt()
            if stop_requested is not None and stop_requested():
                save("stopped", ("latest",), epoch, batch_no)
                log(f"stopped at epoch {epoch}, iteration {total_iters}: state saved, continue with continue_train")
                result.finished = False
                stop = True
                break
            t_step = time.perf_counter()
            losses = trainer.step(batch)
            prev = total_iters
            total_iters += bs
            batch_no += 1
            steps_done += 1
            session_steps += 1
            now = time.perf_counter()
            info = {"epoch": epoch, "epoch_iter": batch_no * bs, "total_iters": total_iters, "step": steps_done,
                    "steps_total": steps_total, "losses": losses, "lr": trainer.lr, "seconds": now - t0,
                    "step_seconds": now - t_step, "it_per_s": session_steps / max(1e-9, now - t0)}
            if progress is not None:
                progress(info)
            crossed = lambda f: f > 0 and total_iters // f > prev // f  # noqa: E731
            if crossed(opts["print_freq"]):
                line = (f"(epoch: {epoch}, iters: {batch_no * bs}, time: {(now - t_step) / bs:.3f}, data: 0.000) "
                        + " ".join(f"{k}: {v:.3f}" for k, v in losses.items()))
                log(line)
                with open(log_file, "a") as f:
                    f.write(line + "\n")
            if crossed(opts["display_freq"]):
                img = sample_grid(trainer)
                path = save_png(img, folder / "samples" / f"epoch{epoch:03d}_iter{total_iters:08d}.png")
                if sample is not None:
                    sample(total_iters, img, path)
            reached = (bool(max_iters) and total_iters >= max_iters) or \
                (session_iters > 0 and session_steps >= session_iters)
            if crossed(opts["save_latest_freq"]) or reached:
                suffix = f"iter_{total_iters}" if opts["save_by_iter"] and not reached else "latest"
                save("latest" if not reached else "max_iters", (suffix,) if suffix == "latest" else (suffix, "latest"),
                     epoch, batch_no)
                log(f"saving the latest model (epoch {epoch}, total_iters {total_iters})")
            elif crossed(save_state_freq):
                save("state", ("latest",), epoch, batch_no)
            if reached:
                stop = True
                break
        start_batch = 0
        if stop:
            break
        lr_old = trainer.lr
        lr = trainer.update_learning_rate()
        done_epoch, epoch = epoch, epoch + 1
        if done_epoch % opts["save_epoch_freq"] == 0:
            log(f"saving the model at the end of epoch {done_epoch}, iters {total_iters}")
            save("epoch", ("latest", str(done_epoch)), epoch, 0)
        if lr != lr_old:
            log(f"learning rate {lr_old:.7f} -> {lr:.7f}")
        log(f"End of epoch {done_epoch} / {last_epoch} \t Time Taken: {time.perf_counter() - epoch_start:.0f} sec")
    if not stop and session_steps and last_epoch % opts["save_epoch_freq"] != 0:
        save("done", ("latest",), epoch, 0)
    result.total_iters, result.epoch, result.losses = total_iters, epoch, dict(trainer.losses)
    result.seconds = time.perf_counter() - t0
    result.steps = session_steps
    result.trainer = trainer
    return result


def _check_size(trainer: GANTrainer, opts: Dict) -> None:
    """Refuse crop sizes the generator cannot take before training starts (not after minutes of data loading)."""
    if opts["preprocess"] == "none" or "crop" not in opts["preprocess"]:
        return
    for name, g in trainer.generators().items():
        m = getattr(g, "size_multiple", 1)
        if opts["crop_size"] % m or opts["crop_size"] < getattr(g, "min_size", 1):
            raise ValueError(f"crop_size {opts['crop_size']} does not suit netG {opts['netG']}: it needs a multiple "
                             f"of {m} of at least {getattr(g, 'min_size', m)} (e.g. unet_256 needs 256, unet_128 "
                             "128; resnet generators any multiple of 4)")
