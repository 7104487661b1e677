"""File helpers shared by the engine's loaders and writers.

Atomic writes go through a temporary file that ``tempfile.mkstemp`` creates with mode ``0600``; before it is
renamed into place it gets the mode a plain ``open(path, "w")`` would have given: the mode of the file it
replaces, or ``0666`` minus the process umask for a new file. So frames and models written by one user on a
render farm stay readable by the others, exactly as with core ComfyUI's Save Image.
"""
from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch

_UMASK_LOCK = threading.Lock()


def process_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: /proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _UMASK_LOCK:  # elsewhere: set and restore (other threads could see the 0o022 for an instant)
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def file_mode(path: Union[str, os.PathLike]) -> int:
    """The permission bits a plain ``open(path, "w")`` would leave: those of an existing ``path``, else
    ``0666 & ~umask``."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~process_umask()


def apply_file_mode(tmp: Union[str, os.PathLike], path: Union[str, os.PathLike], mode: Optional[int] = None) -> None:
    """Give the temporary file ``tmp`` (about to replace ``path``) the mode ``path`` should end up with."""
    try:
        os.chmod(tmp, file_mode(path) if mode is None else mode)
    except OSError:  # a file system without permissions (e.g. some network mounts): keep what it has
        pass


def save_safetensors_atomic(tensors: Mapping[str, torch.Tensor], path: Union[str, Path],
                            metadata: Dict[str, str], *, what: Optional[str] = None) -> Path:
    """Write ``tensors`` (moved to CPU, contiguous, copied) as ``.safetensors`` with ``metadata``, atomically: a
    temporary file in the same folder is renamed into place, so a crash never leaves a half-written model.

    Weights holding NaN or infinite values are refused (:class:`models.validate.InputError`) before anything
    is written: such a model only ever renders black frames. ``what`` names the model in that message."""
    from safetensors.torch import save_file

    from .validate import check_tensors_finite

    path = Path(path)
    check_tensors_finite(tensors, what or f"model {path.name}")
    data = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        save_file(data, tmp, metadata=metadata)
        apply_file_mode(tmp, path)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
