"""Reading official StyleGAN network pickles without executing anything stored in them.

NVlabs network pickles (stylegan2-ada-pytorch, stylegan3) are plain ``pickle`` files. Loading them with
``pickle.load`` runs the ``torch_utils.persistence`` reconstruct hook, which ``exec``s the Python source stored
in the file — arbitrary code from a downloaded file. This module reads them with a restricted unpickler:

* Before unpickling, every global the stream references is listed by a static scan of the opcodes (no object
  is built). If any global is outside the allow-list, :class:`UnsafePickleError` names it and nothing runs.
* During unpickling, ``find_class`` applies the same allow-list again, and every allowed global is replaced by
  a function of this module:

  - ``torch_utils.persistence._reconstruct_persistent_obj`` -> :class:`PersistentRecord` (class name, init
    args/kwargs and the module state; the stored ``module_src`` is kept as text and never executed),
  - ``torch.storage._load_from_bytes`` -> ``torch.load(bytes, weights_only=True)``,
  - ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_parameter`` (``_with_state``) -> checked tensor rebuilds,
  - ``dnnlib.util.EasyDict`` -> a plain ``dict`` subclass (converted to ``dict`` afterwards),
  - ``collections.OrderedDict``, ``builtins.set``/``frozenset`` and a few numpy array/scalar/dtype helpers.

Pickle persistent ids and copyreg extension codes are refused too.
"""
from __future__ import annotations

import io
import pickle
import pickletools
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

import numpy as np
import torch

__all__ = ["UnsafePickleError", "PersistentRecord", "safe_load_pickle", "scan_globals", "ALLOWED_GLOBALS"]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle references something outside the allow-list (nothing from it was executed)."""


class PersistentRecord:
    """What ``torch_utils.persistence`` stores for one module: its class name, init arguments and state.

    ``module_src`` is the stored Python source, kept only as text (it is never executed).
    """

    def __init__(self, meta: Dict[str, Any]):
        if not isinstance(meta, dict):
            raise UnsafePickleError("persistence record is not a dict")
        self.type = meta.get("type")
        self.version = meta.get("version")
        self.class_name = meta.get("class_name")
        self.module_src = meta.get("module_src")
        self.state = meta.get("state")
        if self.type != "class" or not isinstance(self.class_name, str):
            raise UnsafePickleError(f"unsupported persistence record (type={self.type!r})")

    def __setstate__(self, state):  # BUILD with a state: keep it as data, never as attributes that run code
        if state is not None:
            self.extra_state = state

    @property
    def _state(self) -> Dict[str, Any]:
        return self.state if isinstance(self.state, dict) else {}

    @property
    def init_args(self) -> tuple:
        return tuple(self._state.get("_init_args") or ())

    @property
    def init_kwargs(self) -> Dict[str, Any]:
        return to_plain(self._state.get("_init_kwargs") or {})

    def children(self) -> Dict[str, Any]:
        return dict(self._state.get("_modules") or {})

    def state_dict(self, prefix: str = "") -> "OrderedDict[str, torch.Tensor]":
        """Parameters and persistent buffers of this record and its sub-records, with nn.Module key names."""
        out: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        state = self._state
        non_persistent = set(state.get("_non_persistent_buffers_set") or ())
        for name, value in (state.get("_parameters") or {}).items():
            if isinstance(value, torch.Tensor):
                out[prefix + name] = value.detach()
        for name, value in (state.get("_buffers") or {}).items():
            if isinstance(value, torch.Tensor) and name not in non_persistent:
                out[prefix + name] = value.detach()
        for name, child in self.children().items():
            if isinstance(child, PersistentRecord):
                out.update(child.state_dict(prefix + name + "."))
            elif isinstance(child, _ModuleStub):
                out.update(child.state_dict(prefix + name + "."))
        return out

    def __repr__(self):
        return f"PersistentRecord({self.class_name!r})"


class _ModuleStub:
    """Placeholder for a plain (non-persistent) torch container module, rebuilt from its __dict__ as data."""

    state: Optional[Dict[str, Any]] = None

    def __setstate__(self, state):
        self.state = state if isinstance(state, dict) else {}

    state_dict = PersistentRecord.state_dict
    children = PersistentRecord.children
    _state = property(lambda self: self.state if isinstance(self.state, dict) else {})


class _EasyDict(dict):
    def __setstate__(self, state):
        if isinstance(state, dict):
            self.update(state)


def to_plain(obj):
    """EasyDict / OrderedDict / numpy scalars -> plain Python containers and numbers (recursive)."""
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(to_plain(v) for v in obj)
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ------------------------------------------------------------------------------------------ allowed callables

def _reconstruct_persistent_obj(meta):
    return PersistentRecord(meta)


def _load_from_bytes(data):
    if not isinstance(data, (bytes, bytearray)):
        raise UnsafePickleError("tensor storage bytes expected")
    return torch.load(io.BytesIO(bytes(data)), map_location="cpu", weights_only=True)


def _check_storage(storage):
    if not isinstance(storage, (torch.UntypedStorage, torch.storage.TypedStorage)):
        raise UnsafePickleError(f"tensor rebuild with a {type(storage).__name__} instead of a storage")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    _check_storage(storage)
    return torch._utils._rebuild_tensor_v2(storage, int(storage_offset), tuple(size), tuple(stride), False,
                                           OrderedDict())


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None, state=None):
    if not isinstance(data, torch.Tensor):
        raise UnsafePickleError("parameter rebuild without a tensor")
    return torch.nn.Parameter(data, requires_grad=False)


def _np_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise UnsafePickleError("numpy scalar with an unsupported dtype")
    if data is None:
        return dtype.type(0)
    return np.frombuffer(bytes(data) if not isinstance(data, bytes) else data, dtype=dtype, count=1)[0]


def _np_reconstruct(cls, shape, dtype_code):
    if cls is not np.ndarray:
        raise UnsafePickleError("numpy array reconstruction of a non-ndarray class")
    return np.ndarray.__new__(np.ndarray, shape, dtype_code)


_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")

ALLOWED_GLOBALS: Dict[Tuple[str, str], Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _reconstruct_persistent_obj,
    ("torch.storage", "_load_from_bytes"): _load_from_bytes,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): OrderedDict,
    ("dnnlib.util", "EasyDict"): _EasyDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
}
for _mod in _NUMPY_MODULES:
    ALLOWED_GLOBALS[(_mod, "scalar")] = _np_scalar
    ALLOWED_GLOBALS[(_mod, "_reconstruct")] = _np_reconstruct

# Known non-persistent torch containers that may appear inside records: rebuilt as inert data stubs.
for _name in ("ModuleList", "ModuleDict", "Sequential", "ParameterList", "ParameterDict"):
    ALLOWED_GLOBALS[("torch.nn.modules.container", _name)] = _ModuleStub

_HINTS = {
    "dnnlib.tflib.network": "this is a TensorFlow StyleGAN pickle; convert it to PyTorch format first "
                            "(stylegan2-ada-pytorch legacy.py) and load the result",
}


def _refusal(module: str, name: str) -> UnsafePickleError:
    hint = _HINTS.get(module)
    msg = (f"refused to load: the pickle references {module}.{name}, which is not on the allow-list of "
           f"StyleGAN network pickles (nothing from the file was executed)")
    return UnsafePickleError(msg + (f"; {hint}" if hint else ""))


# -------------------------------------------------------------------------------------------- static scan

_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}
_PUT_OPS = {"PUT", "BINPUT", "LONG_BINPUT"}
_NON_PUSH = {"MEMOIZE", "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "SETITEM", "SETITEMS", "APPEND",
             "APPENDS", "ADDITEMS", "BUILD"} | _PUT_OPS


def scan_globals(data: bytes) -> List[Tuple[str, str]]:
    """Every (module, name) global referenced by a pickle stream, found without unpickling it.

    Raises :class:`UnsafePickleError` when a ``STACK_GLOBAL`` cannot be resolved statically or the stream uses
    persistent ids, and ``pickle.UnpicklingError``/``ValueError`` when the stream is malformed or truncated.
    """
    found: List[Tuple[str, str]] = []
    memo: Dict[int, Any] = {}
    pushed: List[Any] = []  # values pushed, strings kept, other objects as None (only the last two matter)
    for op, arg, _pos in pickletools.genops(data):
        name = op.name
        if name in ("GLOBAL", "INST"):
            module, _, attr = arg.partition(" ")
            found.append((module, attr))
            pushed.append(None)
        elif name == "STACK_GLOBAL":
            if len(pushed) < 2 or not isinstance(pushed[-1], str) or not isinstance(pushed[-2], str):
                raise UnsafePickleError("refused to load: the pickle builds a global from computed values")
            found.append((pushed[-2], pushed[-1]))
            pushed.append(None)
        elif name in ("PERSID", "BINPERSID"):
            raise UnsafePickleError("refused to load: the pickle uses persistent ids")
        elif name in ("EXT1", "EXT2", "EXT4"):  # copyreg extension codes can bypass find_class via a cache
            raise UnsafePickleError("refused to load: the pickle uses copyreg extension codes")
        elif name in _STRING_OPS:
            pushed.append(arg if isinstance(arg, str) else None)
        elif name == "MEMOIZE":
            memo[len(memo)] = pushed[-1] if pushed else None
        elif name in _PUT_OPS:
            memo[int(arg)] = pushed[-1] if pushed else None
        elif name in _GET_OPS:
            pushed.append(memo.get(int(arg)))
        elif name not in _NON_PUSH:
            pushed.append(None)
        if len(pushed) > 64:
            del pushed[:-8]
    return found


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise _refusal(module, name) from None

    def persistent_load(self, pid):
        raise UnsafePickleError("refused to load: the pickle uses persistent ids")


def safe_load_pickle(data: bytes) -> Any:
    """Unpickle ``data`` with the allow-list (scan first, then restricted unpickling)."""
    for module, name in scan_globals(data):
        if (module, name) not in ALLOWED_GLOBALS:
            raise _refusal(module, name)
    obj = _RestrictedUnpickler(io.BytesIO(data)).load()
    return obj


def iter_records(obj: Any) -> Iterable[Tuple[str, PersistentRecord]]:
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, PersistentRecord):
                yield str(key), value
