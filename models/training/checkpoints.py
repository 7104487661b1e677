"""Files of a training run, in the reference's layout (``checkpoints_dir/name/``):

* ``<suffix>_net_<model>.pth`` -- each network's ``state_dict()`` (CPU tensors, reference key names, no
  ``module.`` prefix), e.g. ``latest_net_G.pth`` + ``latest_net_D.pth`` (pix2pix) or ``latest_net_G_A.pth``,
  ``latest_net_G_B.pth``, ``latest_net_D_A.pth``, ``latest_net_D_B.pth`` (CycleGAN); ``<epoch>_net_*`` every
  ``save_epoch_freq`` epochs, ``iter_<n>_net_*`` with ``save_by_iter``. They load in the reference's ``test.py``
  (``--name NAME --checkpoints_dir DIR``) and in this pack's Load Translator.
* ``train_state.pt`` -- this pack's resumable state: networks, optimisers, schedulers, image pools, random
  states, epoch / batch / iteration counters and the options (``torch.load(weights_only=True)`` loads it).
* ``train_opt.txt`` and ``loss_log.txt`` as the reference writes them; ``samples/`` with preview images.

Every file is written to a temporary name in the same folder and renamed into place, so a run killed while
saving leaves the previous complete file.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Dict, List, Mapping

import torch

STATE_FILE = "train_state.pt"
STATE_FORMAT = "gan-pack-train-state"
STATE_VERSION = 1


def atomic_torch_save(obj: Any, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        torch.save(obj, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def network_files(folder: Path, suffix: str, model_names) -> Dict[str, Path]:
    return {name: Path(folder) / f"{suffix}_net_{name}.pth" for name in model_names}


def save_networks(trainer, folder: Path, suffix: str = "latest") -> List[Path]:
    """Write every network of ``trainer`` as ``<suffix>_net_<name>.pth`` (reference layout), atomically."""
    files = network_files(folder, suffix, trainer.model_names)
    sds = trainer.state_dicts()
    return [atomic_torch_save(sds[name], path) for name, path in files.items()]


def load_networks(trainer, folder: Path, suffix: str = "latest") -> None:
    """The reference's ``--continue_train`` without a training state: weights only, from ``<suffix>_net_*.pth``."""
    files = network_files(folder, suffix, trainer.model_names)
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"cannot continue: {', '.join(missing)} not found (and no {STATE_FILE} in {folder})")
    for name, path in files.items():
        sd = torch.load(str(path), map_location="cpu", weights_only=True)
        # checkpoints of old reference versions carry InstanceNorm running statistics; the networks have none
        own = trainer.nets[name].state_dict()
        sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
        sd = {k: v for k, v in sd.items() if k in own or not k.endswith(("running_mean", "running_var",
                                                                        "num_batches_tracked"))}
        trainer.nets[name].load_state_dict(sd, strict=True)


def save_state(path: Path, trainer, *, epoch: int, batch: int, total_iters: int, extra: Mapping = None) -> Path:
    state = {"format": STATE_FORMAT, "version": STATE_VERSION, "epoch": int(epoch), "batch": int(batch),
             "total_iters": int(total_iters), "trainer": trainer.training_state(), **(dict(extra or {}))}
    return atomic_torch_save(state, path)


def load_state(path: Path) -> Dict[str, Any]:
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ValueError(f"{path}: not a readable training state ({str(exc).splitlines()[0] if str(exc) else exc})") \
            from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ValueError(f"{path}: not a training state written by this pack")
    return state
