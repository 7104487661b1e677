"""Validation of everything a request can send: file names, frame patterns, numbers, images and sizes.

One module, pure Python (+ torch only for the tensor checks), used by every node and script that reads or writes
files or allocates memory from a request, so a hostile or broken input gets the same clear message everywhere
and is refused *before* anything costly runs:

* **Names** (:func:`check_file_name`): length and characters are checked before anything else; folders,
  control characters, hidden names (``.x``, ``....``), empty names and names longer than a file system allows
  are refused with a sentence that says what to type instead.
* **Frame patterns** (:func:`check_frame_pattern`, :func:`check_read_pattern`, :func:`frame_name`): the pattern
  is parsed by this module (never handed to ``%`` formatting unchecked): exactly one integer field ``%d`` /
  ``%04d`` / ``####`` with a width of at most :data:`MAX_FRAME_DIGITS`, ``%%`` for a literal percent sign,
  nothing else (``%s``, ``%f``, ``%x``, a lone ``%`` are refused with a message, not a ``TypeError``).
* **Numbers** (:func:`check_finite`): NaN and infinities are refused (JSON allows ``NaN``, and ComfyUI's min/max
  checks let it through because every comparison with NaN is false).
* **Images and weights** (:func:`check_image_finite`, :func:`check_tensors_finite`): NaN/inf values are refused
  naming the input and the first bad frame (or tensor). Values outside [0, 1] are *not* refused: HDR / EXR plates
  legitimately go above 1.
* **Request sizes** (:func:`check_count`, :func:`check_memory`): totals per node (seeds, latents, grid cells,
  frames) and a memory estimate made before allocation, stating what it would need and which limit applies.

Limits can be changed by an operator through environment variables (read on every check):

``GAN_PACK_MAX_ITEMS``       latents / seeds / interpolation frames per node (default 10000)
``GAN_PACK_MAX_GRID_CELLS``  cells of a style-mixing grid (default 4096)
``GAN_PACK_MAX_MEMORY_GB``   memory one node may allocate for its result (default: half the machine's RAM)

Every refusal raises :class:`InputError` (a ``ValueError``), so callers that already catch ``ValueError`` keep
working.
"""
from __future__ import annotations

import math
import os
import re
from typing import TYPE_CHECKING, Iterable, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:  # torch is imported by the tensor checks only, so the name checks stay light
    import torch

__all__ = [
    "InputError", "MAX_NAME_BYTES", "MAX_PATTERN_CHARS", "MAX_FRAME_DIGITS", "MAX_FRAME_NUMBER",
    "check_file_name", "check_frame_pattern", "check_read_pattern", "frame_name", "frame_field",
    "check_finite", "check_finite_inputs", "check_image_finite", "check_tensors_finite", "check_count",
    "check_memory", "max_items", "max_grid_cells", "memory_limit_bytes", "format_bytes", "confined_path",
    "INPUT_CONFINE_ENV",
]


class InputError(ValueError):
    """An input a node or script refuses; the message says what is wrong and what to do instead."""


# ------------------------------------------------------------------------------------------ limits
#: longest file name written, in UTF-8 bytes. File systems allow 255; the atomic writers add a hidden
#: temporary prefix/suffix (``.<name>.<random>.tmp``, ~14 bytes) to the name, so the name itself stays below.
MAX_NAME_BYTES = 200
#: longest pattern accepted (characters), checked before the pattern is parsed or formatted
MAX_PATTERN_CHARS = 200
#: widest frame-number field: ``%09d`` / ``#########``
MAX_FRAME_DIGITS = 9
#: largest frame number (fits the widest field)
MAX_FRAME_NUMBER = 10 ** MAX_FRAME_DIGITS - 1

_DEFAULT_MAX_ITEMS = 10_000
_DEFAULT_MAX_GRID_CELLS = 4096

#: environment variable that confines Load Image Sequence to ComfyUI's input directory (any value but 0/empty)
INPUT_CONFINE_ENV = "GAN_PACK_CONFINE_INPUT"


def _env_number(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        return default
    return value if math.isfinite(value) and value > 0 else default


def max_items() -> int:
    """Most seeds / latents / interpolation frames one node makes (``GAN_PACK_MAX_ITEMS``, default 10000)."""
    return int(_env_number("GAN_PACK_MAX_ITEMS", _DEFAULT_MAX_ITEMS))


def max_grid_cells() -> int:
    """Most cells of a style-mixing grid (``GAN_PACK_MAX_GRID_CELLS``, default 4096 = 64 x 64)."""
    return int(_env_number("GAN_PACK_MAX_GRID_CELLS", _DEFAULT_MAX_GRID_CELLS))


def _physical_memory() -> int:
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return 16 << 30


def memory_limit_bytes() -> int:
    """Memory one node may allocate for a result (``GAN_PACK_MAX_MEMORY_GB``; default half the machine's RAM)."""
    gb = _env_number("GAN_PACK_MAX_MEMORY_GB", 0.0)
    return int(gb * (1 << 30)) if gb > 0 else _physical_memory() // 2


def format_bytes(n: float) -> str:
    n = float(n)
    for unit, size in (("TB", 1 << 40), ("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def _who(node: Optional[str], name: Optional[str]) -> str:
    if node and name:
        return f"{node}: {name}"
    return node or name or "input"


def check_count(n: int, limit: int, what: str, *, node: Optional[str] = None, hint: str = "") -> int:
    """Refuse ``n`` items above ``limit`` (``what`` names them: "seeds", "grid cells" ...)."""
    n = int(n)
    if n > limit:
        raise InputError(f"{_who(node, None)}: {n} {what} requested, more than the limit of {limit} per node"
                         f"{'; ' + hint if hint else ''}")
    return n


def check_memory(needed_bytes: float, what: str, *, node: Optional[str] = None, limit: Optional[int] = None) -> int:
    """Refuse to allocate ``needed_bytes`` (an estimate made before allocation) above the memory limit."""
    limit = memory_limit_bytes() if limit is None else int(limit)
    needed = int(needed_bytes)
    if needed > limit:
        raise InputError(
            f"{_who(node, None)}: {what} would need {format_bytes(needed)} of memory, more than the limit of "
            f"{format_bytes(limit)} (half the machine's RAM unless GAN_PACK_MAX_MEMORY_GB says otherwise); "
            f"process fewer or smaller items at a time")
    return needed


# ------------------------------------------------------------------------------------------ names
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(1, 10)} | {f"lpt{i}" for i in range(1, 10)}
_BAD_NAME_CHARS = set('<>:"|?*')


def _name_problem(name: str) -> Optional[str]:
    """Why ``name`` (a complete file name) cannot be written, or None."""
    if not name or not name.strip():
        return "it is empty"
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"it is {len(name.encode('utf-8', 'surrogatepass'))} bytes long (at most {MAX_NAME_BYTES})"
    if "/" in name or "\\" in name:
        return "it contains a folder separator (give a plain file name; the folder is chosen by the node)"
    if _CONTROL.search(name):
        return "it contains control characters"
    if name.startswith("."):
        return "it starts with '.', which makes a hidden file that model lists and file browsers do not show"
    if not name.strip(". "):
        return "it consists of dots and spaces only"
    if name != name.strip() or name.endswith("."):
        return "it begins or ends with a space or ends with a dot (Windows cannot keep such names)"
    bad = sorted(set(name) & _BAD_NAME_CHARS)
    if bad:
        return f"it contains {' '.join(repr(c) for c in bad)}, which Windows file systems do not allow"
    if name.split(".")[0].lower() in _WINDOWS_RESERVED:
        return f"'{name.split('.')[0]}' is a reserved device name on Windows"
    return None


def check_file_name(name: str, *, what: str = "file name", extension: Optional[str] = None,
                    node: Optional[str] = None) -> str:
    """A plain file name to write into a folder the node chooses, or :class:`InputError`.

    ``extension`` (e.g. ``".safetensors"``) is appended when the name does not already end with it (case
    insensitive); the complete name is checked. Surrounding whitespace is stripped.
    """
    if not isinstance(name, str):
        raise InputError(f"{_who(node, what)} must be text, not {type(name).__name__}")
    if len(name) > 4 * MAX_NAME_BYTES:  # before any other work on a huge string
        raise InputError(f"{_who(node, what)} is {len(name)} characters long (at most {MAX_NAME_BYTES} bytes)")
    name = name.strip()
    full = name
    if extension and not name.lower().endswith(extension.lower()):
        full = name + extension
    stem = full[: -len(extension)] if extension and full.lower().endswith(extension.lower()) else full
    problem = (_name_problem(stem) if extension and stem != full else None) or _name_problem(full)
    if problem:
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise InputError(f"{_who(node, what)} {shown!r} is not usable: {problem}. Use letters, digits, '_', '-', "
                         f"'.' and spaces (not first), at most {MAX_NAME_BYTES} bytes")
    return full


# ------------------------------------------------------------------------------------------ patterns
# a printf conversion: flags, width, precision, conversion character (or a lone % at the end)
_CONVERSION = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\d*)(?:\.(?P<prec>\d*))?(?P<conv>[a-zA-Z%]?)")
_HASHES = re.compile(r"#+")


class _Field:
    """The frame-number field of a pattern: ``prefix`` + number padded to ``width`` digits + ``suffix``."""

    __slots__ = ("prefix", "width", "suffix")

    def __init__(self, prefix: str, width: int, suffix: str):
        self.prefix, self.width, self.suffix = prefix, width, suffix

    def name(self, number: int) -> str:
        return f"{self.prefix}{int(number):0{max(self.width, 1)}d}{self.suffix}"

    def printf(self) -> str:
        esc = lambda s: s.replace("%", "%%")  # noqa: E731
        return f"{esc(self.prefix)}%0{self.width}d{esc(self.suffix)}" if self.width > 1 else \
            f"{esc(self.prefix)}%d{esc(self.suffix)}"


def _shown(pattern: str) -> str:
    return repr(pattern if len(pattern) <= 80 else pattern[:77] + "...")


def frame_field(pattern: str, *, what: str = "pattern", node: Optional[str] = None) -> Optional[_Field]:
    """Parse a frame pattern into its number field, or None when it has no field (a glob, or a fixed name).

    Raises :class:`InputError` for anything ``%`` formatting would reject or turn into a huge or odd name:
    more than one field, a field wider than :data:`MAX_FRAME_DIGITS`, ``%s``/``%f``/``%x``..., a lone ``%``,
    flags other than ``0``, a precision, folders, control characters, a pattern longer than
    :data:`MAX_PATTERN_CHARS`. ``####`` is accepted when the pattern has no ``%`` field.
    """
    who = _who(node, what)
    if not isinstance(pattern, str):
        raise InputError(f"{who} must be text, not {type(pattern).__name__}")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise InputError(f"{who} is {len(pattern)} characters long (at most {MAX_PATTERN_CHARS})")
    if "/" in pattern or "\\" in pattern:
        raise InputError(f"{who} {_shown(pattern)} must be a file name pattern without folders "
                         f"(put the folder in the folder input)")
    if _CONTROL.search(pattern):
        raise InputError(f"{who} {_shown(pattern)} contains control characters")
    fields = []
    for m in _CONVERSION.finditer(pattern):
        conv = m.group("conv")
        if conv == "%" and m.group(0) == "%%":
            continue
        if conv in ("d", "i", "u"):
            flags, width, prec = m.group("flags"), m.group("width"), m.group("prec")
            if flags.replace("0", "") or prec is not None or (m.group("width") and not flags):
                raise InputError(
                    f"{who} {_shown(pattern)}: frame-number field {m.group(0)!r} may only be padded with zeros "
                    f"(write %04d, not %4d); signs, spaces, left alignment and precisions are not allowed")
            w = int(width) if width else 0
            if w > MAX_FRAME_DIGITS or len(width) > 3:
                raise InputError(
                    f"{who} {_shown(pattern)}: frame-number width {width} is too wide (at most "
                    f"{MAX_FRAME_DIGITS} digits, e.g. %0{MAX_FRAME_DIGITS}d)")
            fields.append((m.start(), m.end(), w))
            continue
        bad = m.group(0) if conv else "%"
        raise InputError(
            f"{who} {_shown(pattern)}: {bad!r} is not a frame-number field. A pattern takes one integer field "
            f"(%04d, %d or ####) and nothing else; write %% for a literal percent sign")
    if len(fields) > 1:
        raise InputError(f"{who} {_shown(pattern)} has {len(fields)} frame-number fields; use exactly one")
    if fields:
        start, end, w = fields[0]
        # hashes beside a % field are literal characters (only a pattern without % fields uses ####)
        return _Field(pattern[:start].replace("%%", "%"), w, pattern[end:].replace("%%", "%"))
    hashes = list(_HASHES.finditer(pattern))
    if "%" in pattern.replace("%%", ""):
        raise InputError(f"{who} {_shown(pattern)}: lone '%'; write %% for a literal percent sign")
    if not hashes:
        return None
    if len(hashes) > 1:
        raise InputError(f"{who} {_shown(pattern)} has {len(hashes)} runs of '#'; use exactly one frame-number field")
    m = hashes[0]
    if len(m.group()) > MAX_FRAME_DIGITS:
        raise InputError(f"{who} {_shown(pattern)}: frame-number field of {len(m.group())} '#' is too wide (at most "
                         f"{MAX_FRAME_DIGITS} digits)")
    return _Field(pattern[:m.start()].replace("%%", "%"), len(m.group()), pattern[m.end():].replace("%%", "%"))


def frame_name(pattern_or_field, number: int, *, what: str = "pattern", node: Optional[str] = None) -> str:
    """File name of frame ``number`` (0..MAX_FRAME_NUMBER) under a validated pattern (or a parsed field)."""
    field = pattern_or_field if isinstance(pattern_or_field, _Field) else frame_field(pattern_or_field, what=what,
                                                                                      node=node)
    if field is None:
        raise InputError(f"{_who(node, what)} {_shown(str(pattern_or_field))} needs a frame-number field such as "
                         f"%04d or #### to name frames")
    number = int(number)
    if not 0 <= number <= MAX_FRAME_NUMBER:
        raise InputError(f"{_who(node, 'frame number')} {number} is outside 0..{MAX_FRAME_NUMBER}")
    return field.name(number)


def check_frame_pattern(pattern: str, *, extensions: Optional[Sequence[str]] = None, what: str = "pattern",
                        node: Optional[str] = None) -> _Field:
    """A pattern to *write* frames with: one frame-number field, a usable resulting name for every frame number
    (not hidden, not empty, not too long) and, with ``extensions``, one of those extensions. Returns the field."""
    who = _who(node, what)
    field = frame_field(pattern, what=what, node=node)
    if field is None:
        raise InputError(f"{who} {_shown(pattern)} needs a frame-number field such as %04d or #### (e.g. "
                         f"frame_%04d.png) to name frames")
    for sample in (0, MAX_FRAME_NUMBER):
        problem = _name_problem(field.name(sample))
        if problem:
            raise InputError(f"{who} {_shown(pattern)} gives file names like {field.name(sample)!r}, which cannot "
                             f"be used: {problem}")
    if extensions is not None:
        ext = os.path.splitext(field.name(0))[1].lower()
        if ext not in [e.lower() for e in extensions]:
            raise InputError(f"{who} {_shown(pattern)}: unsupported file type {ext or '(no extension)'}; end the "
                             f"pattern with one of {', '.join(extensions)}")
    return field


def check_read_pattern(pattern: Optional[str], *, what: str = "pattern", node: Optional[str] = None) -> str:
    """A pattern to *read* frames with: a glob (``*.png``) or a frame pattern; same limits as for writing
    (length, folders, control characters, well-formed fields). Empty means ``*``."""
    pattern = pattern or "*"
    frame_field(pattern, what=what, node=node)
    return pattern


# ------------------------------------------------------------------------------------------ paths
def confined_path(path: str, root: str, *, what: str = "folder", node: Optional[str] = None) -> str:
    """``path`` resolved (symlinks followed) and refused unless it lies inside ``root``."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    try:
        inside = os.path.commonpath([real, real_root]) == real_root
    except ValueError:  # different drives
        inside = False
    if not inside:
        raise InputError(f"{_who(node, what)} '{path}' is outside {real_root}; this server confines reading to "
                         f"that folder ({INPUT_CONFINE_ENV} is set)")
    return real


# ------------------------------------------------------------------------------------------ numbers
def check_finite(value, name: str, *, node: Optional[str] = None) -> float:
    """``float(value)``, refused when NaN or infinite (or not a number at all)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{_who(node, name)} must be a number, got {value!r}") from None
    if not math.isfinite(f):
        raise InputError(f"{_who(node, name)} is {value!r}; give a finite number")
    return f


def check_finite_inputs(values: Mapping[str, object], *, node: Optional[str] = None) -> None:
    """:func:`check_finite` for every entry of ``values`` (name -> number)."""
    for name, value in values.items():
        check_finite(value, name, node=node)


def _nonfinite_frames(t: "torch.Tensor", limit: int = 3) -> Tuple[list, int]:
    """Indices (along dim 0) of the first ``limit`` slices holding NaN/inf, and the total count of bad values."""
    import torch

    bad_frames, total = [], 0
    for i in range(t.shape[0]):
        frame = t[i]
        s = frame.sum()
        if bool(torch.isfinite(s)):
            continue  # fast path: a finite sum means no NaN/inf (values ~1e38 could overflow; then we look closer)
        n = int((~torch.isfinite(frame)).sum())
        if n:
            total += n
            if len(bad_frames) < limit:
                bad_frames.append(i)
    return bad_frames, total


def check_image_finite(image: "torch.Tensor", name: str = "image", *, node: Optional[str] = None,
                       frame_numbers: Optional[Sequence[int]] = None) -> None:
    """Refuse an IMAGE / MASK / NCHW batch holding NaN or infinite values, naming the input and the first frames.

    Values outside [0, 1] are accepted (HDR and EXR plates go above 1, and nodes clamp where they must). A
    float tensor is checked frame by frame, so no copy of the batch is made.
    """
    import torch

    if not isinstance(image, torch.Tensor) or not torch.is_floating_point(image) or image.numel() == 0:
        return
    t = image if image.ndim >= 2 else image.reshape(1, -1)
    if bool(torch.isfinite(t.sum())):  # one pass; the common case
        return
    frames, total = _nonfinite_frames(t)
    if not total:
        return
    labels = [str(frame_numbers[i]) if frame_numbers is not None and i < len(frame_numbers) else str(i)
              for i in frames]
    plural = "s" if len(labels) > 1 else ""
    if frame_numbers is not None:
        where = f"frame{plural} {', '.join(labels)}"
    else:
        where = f"frame{plural} {', '.join(labels)} of the batch (counting from 0, of {t.shape[0]})"
    raise InputError(
        f"{_who(node, name)}: {total} NaN or infinite value{'s' if total != 1 else ''} in {where}. Such pixels would poison what comes next (black frames, a NaN model); fix the source "
        f"(e.g. a float TIFF/EXR with NaNs) or clamp it first. Values above 1 are fine, NaN/inf are not")


def check_tensors_finite(tensors: Mapping[str, "torch.Tensor"] | Iterable[Tuple[str, "torch.Tensor"]], what: str,
                         *, node: Optional[str] = None) -> None:
    """Refuse weights (name -> tensor) holding NaN/inf, naming the first bad tensors and the count."""
    import torch

    items = tensors.items() if isinstance(tensors, Mapping) else tensors
    bad, total, count = [], 0, 0
    for key, t in items:
        if not isinstance(t, torch.Tensor) or not torch.is_floating_point(t):
            continue
        count += t.numel()
        if bool(torch.isfinite(t.detach().float().sum())):
            continue
        n = int((~torch.isfinite(t.detach())).sum())
        if n:
            total += n
            if len(bad) < 3:
                bad.append(str(key))
    if total:
        raise InputError(f"{_who(node, what)}: {total} of {count} weights are NaN or infinite (e.g. in "
                         f"{', '.join(bad)}); such a model renders black or garbage frames, so it is not written. "
                         f"Train again from clean inputs")


# ------------------------------------------------------------------------------------------ pickles
# globals a weights-only checkpoint legitimately references (torch's tensor rebuilding, containers, numbers)
_DATA_MODULES = ("torch", "collections", "numpy", "_codecs")
_DATA_BUILTINS = {"set", "frozenset", "bytearray", "bytes", "dict", "list", "tuple", "int", "float", "complex",
                  "bool", "str", "slice", "range"}


def _is_data_global(module: str, name: str) -> bool:
    if module in ("builtins", "__builtin__"):
        return name in _DATA_BUILTINS
    if module.split(".")[0] not in _DATA_MODULES:
        return False
    # torch.* / numpy.* functions that run code would still be refused by torch.load(weights_only=True);
    # here we only look for the global to *name* in the message
    return not any(bad in name for bad in ("system", "eval", "exec", "load", "compile", "popen", "call"))


def pickle_streams(path: "os.PathLike | str", limit: int = 64 << 20) -> list:
    """The pickle streams of a checkpoint file: the file itself, or the ``*.pkl`` members of a torch zip."""
    import zipfile

    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04":
        out = []
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename.endswith(".pkl") and info.file_size <= limit:
                    out.append(zf.read(info))
        return out
    if os.path.getsize(path) > limit:
        with open(path, "rb") as f:
            return [f.read(limit)]
    with open(path, "rb") as f:
        return [f.read()]


def unsafe_pickle_global(path: "os.PathLike | str") -> Optional[str]:
    """``module.name`` of the first global in the file's pickle(s) that is not part of a weights-only
    checkpoint (e.g. ``posix.system``), found by a static scan of the opcodes (nothing is unpickled), or None."""
    try:
        streams = pickle_streams(path)
    except Exception:  # noqa: BLE001 - unreadable: the caller's own message applies
        return None
    for data in streams:
        for module, name in _scan_globals(data):
            if module is None:
                return name
            if not _is_data_global(module, name):
                return f"{module}.{name}"
    return None


def _scan_globals(data: bytes) -> list:
    """(module, name) of every global a pickle stream references, read from its opcodes without unpickling
    (stops quietly at a truncated or malformed stream). Torch's persistent ids (storages) are data here; a
    global built from computed values is reported as ``(None, description)``."""
    import pickletools

    found, pushed, memo = [], [], {}
    try:
        for op, arg, _pos in pickletools.genops(data):
            name = op.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append((module, attr))
                pushed.append(None)
            elif name == "STACK_GLOBAL":
                if len(pushed) >= 2 and isinstance(pushed[-1], str) and isinstance(pushed[-2], str):
                    found.append((pushed[-2], pushed[-1]))
                else:
                    found.append((None, "a global built from computed values"))
                pushed.append(None)
            elif name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                          "BINSTRING", "STRING"):
                pushed.append(arg if isinstance(arg, str) else None)
            elif name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg)] = pushed[-1] if pushed else None
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                pushed.append(memo.get(int(arg)))
            elif name not in ("PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "SETITEM", "SETITEMS", "APPEND",
                              "APPENDS", "ADDITEMS", "BUILD"):
                pushed.append(None)
            if len(pushed) > 64:
                del pushed[:-8]
    except Exception:  # noqa: BLE001 - truncated/garbage: report what was found before
        pass
    return found


def refused_pickle_message(file_name: str, global_name: Optional[str], fix: str) -> str:
    """One wording for every loader: what the pickle asked for, that nothing ran, and what to do."""
    what = f"the pickle references {global_name}" if global_name else \
        "the pickle references Python objects or code, not just tensors"
    return (f"{file_name}: refused to load: {what}, which a weights-only checkpoint never needs (nothing from the "
            f"file was executed). {fix}")


# ------------------------------------------------------------------------------------------ declared architectures
#: config entries that multiply the number of layers; each layer has at least one tensor in the file
_LAYER_COUNT_KEYS = ("n_blocks", "depth", "n_downsampling", "num_layers", "n_layers", "num_blocks")
_MAX_DECLARED_WIDTH = 1 << 16


def _walk_config(config, prefix=""):
    if isinstance(config, Mapping):
        for k, v in config.items():
            yield from _walk_config(v, f"{prefix}{k}.")
    else:
        yield prefix[:-1], config


def check_declared_architecture(build, config: Mapping, tensors: Mapping[str, "torch.Tensor"], what: str) -> None:
    """Check an architecture declared in a file's metadata against the file's own tensors *before* the network
    is built for real: ``build()`` runs on PyTorch's ``meta`` device (shapes only, no memory), after the layer
    counts and widths in ``config`` were bounded by the tensors present. A 400-byte file claiming ``ngf 384``
    is refused here instead of allocating gigabytes first. Raises :class:`InputError` naming the first tensor
    that does not fit."""
    import torch

    n_tensors = len(tensors)
    largest = max((int(t.numel()) for t in tensors.values()), default=0)
    for key, value in _walk_config(config):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        leaf = key.rsplit(".", 1)[-1]
        if leaf in _LAYER_COUNT_KEYS and value > n_tensors:
            raise InputError(f"{what}: the metadata declares {leaf} = {value}, but the file holds only {n_tensors} "
                             f"tensors; the metadata does not describe these weights (damaged or forged file)")
        if not math.isfinite(float(value)) or (leaf not in ("lr_multiplier", "w_avg_beta", "conv_clamp")
                                                and abs(value) > max(_MAX_DECLARED_WIDTH, largest)):
            raise InputError(f"{what}: the metadata declares {key} = {value}, more than any tensor in the file "
                             f"could hold; the metadata does not describe these weights")
    try:
        with torch.device("meta"):
            model = build()
    except InputError:
        raise
    except Exception:  # noqa: BLE001 - a builder that needs real data: the real build checks shapes itself
        return
    own = model.state_dict()
    missing = [k for k in own if k not in tensors]
    unexpected = [k for k in tensors if k not in own]
    if missing or unexpected:
        raise InputError(f"{what}: the weights do not fit the architecture its metadata declares (missing "
                         f"{missing[:4]}{'...' if len(missing) > 4 else ''}, unexpected "
                         f"{unexpected[:4]}{'...' if len(unexpected) > 4 else ''})")
    for key, t in own.items():
        if tuple(t.shape) != tuple(tensors[key].shape):
            raise InputError(f"{what}: the metadata declares an architecture whose {key} has shape {tuple(t.shape)}, "
                             f"but the file's tensor is {tuple(tensors[key].shape)}; the metadata does not describe "
                             f"these weights (damaged or forged file)")
