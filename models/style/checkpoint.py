"""Reading weight files safely: ``.safetensors`` or ``torch.load(weights_only=True)`` checkpoints.

Everything here returns plain ``{name: tensor}`` dicts plus the file's string metadata, and turns every
failure (missing, empty, truncated, random bytes, pickles that would run code) into
:class:`StyleNetworkLoadError` with a sentence a user can act on.
"""
from __future__ import annotations

import os
import pickle
import re
import struct
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch

from ..validate import refused_pickle_message, unsafe_pickle_global
from .errors import StyleNetworkLoadError

StateDict = Dict[str, torch.Tensor]
Source = Union[str, os.PathLike, Mapping[str, Any]]

# containers some training scripts wrap the weights in
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "params", "params_ema", "net", "weights", "decoder")


def _is_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= size and head[8:9] == b"{"


def _load_safetensors(path: Path, size: int) -> Tuple[StateDict, Dict[str, str]]:
    from safetensors import safe_open

    try:
        tensors: StateDict = {}
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = dict(f.metadata() or {})
            for key in f.keys():
                tensors[key] = f.get_tensor(key)
        return tensors, meta
    except Exception as exc:  # safetensors raises its own SafetensorError / OSError types
        raise StyleNetworkLoadError(
            f"{path.name}: truncated or corrupt .safetensors file ({size} bytes; {type(exc).__name__}: {exc}); "
            "download it again") from None


def _torch_load(path: Path, size: int, head: bytes) -> Any:
    is_zip = head[:4] == b"PK\x03\x04"
    if is_zip:
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip() if size < 64 * 2**20 else None
        except zipfile.BadZipFile:
            raise StyleNetworkLoadError(
                f"{path.name}: truncated or corrupt PyTorch checkpoint ({size} bytes; the zip archive's "
                "central directory is missing or damaged); download it again") from None
        if bad is not None:
            raise StyleNetworkLoadError(f"{path.name}: corrupt PyTorch checkpoint (member {bad!r} fails its CRC)")
    elif head[:1] != b"\x80":
        raise StyleNetworkLoadError(
            f"{path.name}: not a PyTorch checkpoint or .safetensors file (unrecognised content, first bytes "
            f"{head[:8].hex()}){' - Lua Torch .t7 files must be converted first' if path.suffix == '.t7' else ''}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # garbage announces odd pickle protocols; the error below says it
            try:
                return torch.load(str(path), map_location="cpu", weights_only=True, mmap=is_zip)
            except RuntimeError as exc:
                if is_zip and "mmap" in str(exc):
                    return torch.load(str(path), map_location="cpu", weights_only=True)
                raise
    except pickle.UnpicklingError as exc:
        text = str(exc)
        m = re.search(r"GLOBAL (\S+)", text)
        global_name = unsafe_pickle_global(path) or (m.group(1) if m else None)
        if global_name:
            raise StyleNetworkLoadError(refused_pickle_message(
                path.name, global_name, "Only plain state dicts are read (weights_only=True); if you trust the "
                "file, re-save its model.state_dict() or convert it to .safetensors.")) from None
        raise StyleNetworkLoadError(f"{path.name}: not a valid PyTorch checkpoint - corrupt or not a weight file "
                                    "(unreadable pickle)") from None
    except (EOFError, zipfile.BadZipFile):
        raise StyleNetworkLoadError(f"{path.name}: truncated PyTorch checkpoint ({size} bytes); download it again") from None
    except RuntimeError as exc:
        text = str(exc)
        if any(s in text for s in ("central directory", "failed reading", "PytorchStreamReader", "unexpected EOF",
                                    "file size", "storage has wrong")):
            raise StyleNetworkLoadError(
                f"{path.name}: truncated or corrupt PyTorch checkpoint ({size} bytes); download it again") from None
        raise StyleNetworkLoadError(f"{path.name}: could not be read as a PyTorch checkpoint ({text.splitlines()[0][:200]})") from None
    except Exception as exc:  # garbage that happens to start like a pickle trips the unpickler in many ways
        raise StyleNetworkLoadError(f"{path.name}: not a valid PyTorch checkpoint - corrupt or not a weight file "
                                    f"({type(exc).__name__})") from None


def _flatten(obj: Any, name: str) -> StateDict:
    """Pick the tensor dict out of a loaded object (unwrapping common containers and ``module.`` prefixes)."""
    if not isinstance(obj, Mapping):
        raise StyleNetworkLoadError(f"{name}: the checkpoint holds a {type(obj).__name__}, not a state dict of tensors")
    tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    if not tensors:
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                return _flatten(inner, name)
        raise StyleNetworkLoadError(f"{name}: no tensors found (top-level keys: {sorted(map(str, obj))[:8]})")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def read_state_dict(source: Source) -> Tuple[StateDict, Dict[str, str], str]:
    """``(tensors, metadata, name)`` from a path (``.safetensors``/``.pth``/``.pt``/``.ckpt``) or a mapping.

    ``metadata`` is the safetensors header metadata (empty for pickled checkpoints unless the mapping had a
    ``"__metadata__"`` dict of strings); ``name`` is the file name (or ``"<state dict>"``).
    """
    if isinstance(source, Mapping):
        meta = source.get("__metadata__") if isinstance(source.get("__metadata__"), Mapping) else {}
        return _flatten(source, "<state dict>"), {str(k): str(v) for k, v in meta.items()}, "<state dict>"
    if not isinstance(source, (str, os.PathLike)):
        raise StyleNetworkLoadError(f"expected a file path or a state dict, got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise StyleNetworkLoadError(f"{path}: file not found")
    size = path.stat().st_size
    if size == 0:
        raise StyleNetworkLoadError(f"{path.name}: empty file (0 bytes); download it again")
    with open(path, "rb") as f:
        head = f.read(64)
    if _is_safetensors(head, size):
        tensors, meta = _load_safetensors(path, size)
        if not tensors:
            raise StyleNetworkLoadError(f"{path.name}: the .safetensors file holds no tensors")
        return tensors, meta, path.name
    obj = _torch_load(path, size, head)
    meta: Dict[str, str] = {}
    if isinstance(obj, Mapping) and isinstance(obj.get("__metadata__"), Mapping):
        meta = {str(k): str(v) for k, v in obj["__metadata__"].items()}
    return _flatten(obj, path.name), meta, path.name


def save_state_dict(tensors: Mapping[str, torch.Tensor], path: Union[str, os.PathLike],
                    metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write ``tensors`` as ``.safetensors`` (with string ``metadata``) or, for other suffixes, ``torch.save``."""
    path = Path(path)
    data = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(data, str(path), metadata=dict(metadata or {}))
    else:
        if metadata:
            data = dict(data)
            data["__metadata__"] = dict(metadata)  # type: ignore[assignment]
        torch.save(data, str(path))
