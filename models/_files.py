"""File helpers shared by the engine's loaders."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Dict, Mapping, Union

import torch


def save_safetensors_atomic(tensors: Mapping[str, torch.Tensor], path: Union[str, Path],
                            metadata: Dict[str, str]) -> Path:
    """Write ``tensors`` (moved to CPU, contiguous, copied) as ``.safetensors`` with ``metadata``, atomically: a
    temporary file in the same folder is renamed into place, so a crash never leaves a half-written model."""
    from safetensors.torch import save_file

    path = Path(path)
    data = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=str(path.parent))
    os.close(fd)
    try:
        save_file(data, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
