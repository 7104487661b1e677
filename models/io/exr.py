"""OpenEXR frames through ASWF's official ``OpenEXR`` bindings (PyPI ``openexr``, the ``OpenEXR.File`` API).

Reading gives scene-linear float32 exactly as stored: half samples widen to float32 without rounding, values
above 1.0 and below 0.0 are kept, nothing is clamped. One layer is read per call:

* ``layer=None`` (or ``""``, ``"rgba"``): the unprefixed ``R``, ``G``, ``B`` (and ``A``) channels; a luminance-only
  file (``Y``) is read as grey; a file whose only RGB channels live in one named layer uses that layer;
* ``layer="diffuse"`` or ``"diffuse.*"``: the channels ``diffuse.R``, ``diffuse.G``, ``diffuse.B`` (``diffuse.A``
  when present); layers of other vectors use ``X Y Z`` or ``U V`` (the missing third channel reads 0); a layer
  with one channel is read as grey;
* ``layer="depth.Z"`` (a full channel name): that one channel as grey.

Multi-part files are searched part by part; a part's name is a layer name for channels that carry no prefix.
The frame's size is its **data window**; its origin is returned so a sequence can insist on one window.

Writing makes single-part scanline files: half (``bit_depth`` 16) or float (32) channels ``R G B`` (+ ``A``),
data window = display window = the frame at (0, 0), compression ZIP by default (PIZ, DWAA, DWAB, ZIPS, RLE or
none on request). Half keeps every value a half can hold bit-exactly; finite values beyond +-65504 (the half
range) become +-inf, which is logged.
"""
from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

log = logging.getLogger("comfyui-gan-pack")
PathLike = Union[str, os.PathLike]
HALF_MAX = 65504.0

COMPRESSIONS = ("zip", "piz", "dwaa", "dwab", "zips", "rle", "none")
LOSSLESS = ("zip", "piz", "zips", "rle", "none")
_DEFAULT_LAYER = ("", "rgb", "rgba", "default", "*", "main")
_ROLES = {"r": "R", "red": "R", "g": "G", "green": "G", "b": "B", "blue": "B", "a": "A", "alpha": "A"}


class ExrError(ValueError):
    """An EXR file that cannot be read or written as asked (the message names the file and what is wrong)."""


def _openexr():
    try:
        import OpenEXR
    except ImportError as e:  # pragma: no cover - the package is a requirement
        raise ExrError("reading and writing .exr needs the 'openexr' package (pip install openexr)") from e
    return OpenEXR


@dataclass
class ExrImage:
    """One layer of one EXR frame: ``rgb`` float32 ``[H, W, 3]``, ``alpha`` float32 ``[H, W]`` or None,
    ``window`` the data window ``(xmin, ymin, xmax, ymax)``, ``channels`` the file channels read (R, G, B[, A])."""
    rgb: np.ndarray
    alpha: Optional[np.ndarray]
    window: Tuple[int, int, int, int]
    channels: Tuple[str, ...]
    pixel_type: str  # "half", "float" or "uint" (of the colour channels)


# ------------------------------------------------------------------------------------------ layers
def _split(name: str) -> Tuple[str, str]:
    """``"diffuse.R"`` -> ``("diffuse", "R")``; ``"R"`` -> ``("", "R")`` (the layer is all before the last dot)."""
    layer, dot, base = name.rpartition(".")
    return (layer, base) if dot else ("", name)


def layers(channel_names: Sequence[str]) -> Dict[str, List[str]]:
    """``{layer: [channel names]}``; the unprefixed channels are the layer ``""``."""
    out: Dict[str, List[str]] = {}
    for name in channel_names:
        out.setdefault(_split(name)[0], []).append(name)
    return out


def describe_layers(channel_names: Sequence[str]) -> str:
    """``"(default): A B G R; diffuse: diffuse.B diffuse.G diffuse.R"`` for error messages and tooltips."""
    return "; ".join(f"{layer or '(default)'}: {' '.join(sorted(names))}"
                     for layer, names in sorted(layers(channel_names).items()))


def select_channels(channel_names: Sequence[str], layer: Optional[str] = None) -> Tuple[Tuple[Optional[str], ...],
                                                                                         Optional[str]]:
    """Which file channels make the three colour channels and the alpha of ``layer``.

    Returns ``((c0, c1, c2), alpha)``: channel names, ``None`` for a colour channel that reads 0, the same name
    three times for grey. Raises :class:`ExrError` listing the file's layers when the layer does not exist or
    cannot be read as colour."""
    names = list(channel_names)
    want = (layer or "").strip()
    if want.endswith(".*"):
        want = want[:-2]
    want = want.rstrip(".")
    groups = layers(names)
    if want in names and want not in groups:  # one channel by its full name
        return (want, want, want), None
    key = "" if want.lower() in _DEFAULT_LAYER else want
    if key not in groups:
        if key == "":
            colour_layers = [l for l, ch in groups.items() if _colour(ch) is not None]
            if len(colour_layers) == 1:
                key = colour_layers[0]
            else:
                raise ExrError(f"the file has no unprefixed R, G, B channels; choose one of its layers: "
                               f"{describe_layers(names)}")
        else:
            raise ExrError(f"the file has no layer '{want}'; its layers: {describe_layers(names)}")
    found = _colour(groups[key])
    if found is None:
        raise ExrError(f"layer '{key or '(default)'}' has channels {' '.join(sorted(groups[key]))}, which do not "
                       f"form a colour (R G B, X Y Z, U V or one channel); name one channel instead, e.g. "
                       f"'{sorted(groups[key])[0]}'")
    return found


def _colour(channels: Sequence[str]) -> Optional[Tuple[Tuple[Optional[str], ...], Optional[str]]]:
    by_base = {_split(c)[1].lower(): c for c in channels}
    roles = {_ROLES[b]: c for b, c in by_base.items() if b in _ROLES}
    alpha = roles.get("A")
    if all(k in roles for k in "RGB"):
        return (roles["R"], roles["G"], roles["B"]), alpha
    if all(k in by_base for k in "xyz"):
        return (by_base["x"], by_base["y"], by_base["z"]), alpha
    if "u" in by_base and "v" in by_base and len(by_base) <= 3 + (alpha is not None):
        return (by_base["u"], by_base["v"], by_base.get("w")), alpha
    colour = [c for c in channels if c != alpha]
    if len(colour) == 1:  # Y, Z, or any single channel: grey
        return (colour[0],) * 3, alpha
    return None


# ------------------------------------------------------------------------------------------ reading
def _window(header) -> Tuple[int, int, int, int]:
    (x0, y0), (x1, y1) = header["dataWindow"]
    return int(x0), int(y0), int(x1), int(y1)


def _open(path: Path, header_only: bool = False):
    OpenEXR = _openexr()
    try:
        size = path.stat().st_size
    except OSError as e:
        raise ExrError(f"cannot read EXR frame {path}: {e.strerror or e}") from e
    if size == 0:
        raise ExrError(f"cannot read EXR frame {path}: the file is empty (0 bytes; an interrupted copy?)")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"\x76\x2f\x31\x01":
        raise ExrError(f"cannot read EXR frame {path}: not an OpenEXR file (it does not start with the EXR magic "
                       f"number; was it renamed from another format?)")
    try:
        exr = OpenEXR.File(str(path), separate_channels=True, header_only=header_only)
        parts = list(exr.parts)
        if not parts:
            raise ExrError("no image part could be read")
        if not header_only:
            for p in parts:
                for c in p.channels.values():
                    if c.pixels is None:
                        raise ExrError(f"channel {c.name} has no pixels")
    except ExrError as e:
        raise ExrError(f"cannot read EXR frame {path} ({size} bytes): the file is truncated or corrupt ({e})") from e
    except Exception as e:  # the bindings raise RuntimeError/ValueError with terse texts
        if not header_only and _is_deep(path):
            raise ExrError(f"{path.name}: deep image data is not supported; flatten it to a regular scanline or "
                           f"tiled image first") from e
        raise ExrError(f"cannot read EXR frame {path} ({size} bytes): the file is truncated or corrupt "
                       f"({type(e).__name__}: {e})") from e
    return exr, parts


def _is_deep(path: Path) -> bool:
    try:
        hdr = _openexr().File(str(path), header_only=True)
        return any("deep" in str(p.header.get("type", "")).lower() for p in hdr.parts)
    except Exception:
        return False


def _part_channels(parts) -> Dict[str, Tuple[object, int]]:
    """channel name (prefixed with the part's name where it has none) -> (Channel, part index)."""
    out: Dict[str, Tuple[object, int]] = {}
    multi = len(parts) > 1
    for i, p in enumerate(parts):
        pname = p.name() if multi else ""
        for name, ch in p.channels.items():
            key = name
            if pname and "." not in name and (i > 0 or name in out):
                key = f"{pname}.{name}"
            out.setdefault(key, (ch, i))
    return out


def exr_channels(path: PathLike) -> List[str]:
    """Channel names of an EXR file (header only; multi-part names prefixed like :func:`read_exr` sees them)."""
    _, parts = _open(Path(path), header_only=True)
    names: List[str] = []
    multi = len(parts) > 1
    for i, p in enumerate(parts):
        hdr_channels = [c.name for c in p.header.get("channels", [])] or list(p.channels)
        for name in hdr_channels:
            pname = p.name() if multi else ""
            key = f"{pname}.{name}" if pname and "." not in name and (i > 0 or name in names) else name
            if key not in names:
                names.append(key)
    return names


def _pixel_type(arr: np.ndarray) -> str:
    return {np.dtype(np.float16): "half", np.dtype(np.float32): "float", np.dtype(np.uint32): "uint"}.get(
        arr.dtype, str(arr.dtype))


def read_exr(path: PathLike, layer: Optional[str] = None) -> ExrImage:
    """Read one layer of an EXR frame (see the module docstring for how ``layer`` chooses channels)."""
    path = Path(path)
    exr, parts = _open(path)
    deep = [p.name() or str(i) for i, p in enumerate(parts) if "deep" in str(p.header.get("type", "")).lower()]
    if deep:
        raise ExrError(f"{path.name}: deep image data (part {deep[0]}) is not supported; flatten it to a regular "
                       f"scanline or tiled image first")
    channels = _part_channels(parts)
    try:
        (c0, c1, c2), a = select_channels(list(channels), layer)
    except ExrError as e:
        raise ExrError(f"{path.name}: {e}") from None
    used = [c for c in (c0, c1, c2, a) if c is not None]
    part_ids = {channels[c][1] for c in used}
    windows = {_window(parts[i].header) for i in part_ids}
    if len(windows) > 1:
        raise ExrError(f"{path.name}: the channels {' '.join(used)} lie in parts with different data windows "
                       f"{sorted(windows)}")
    window = windows.pop()
    w, h = window[2] - window[0] + 1, window[3] - window[1] + 1
    arrays: Dict[str, np.ndarray] = {}
    for c in used:
        ch = channels[c][0]
        if ch.xSampling != 1 or ch.ySampling != 1:
            raise ExrError(f"{path.name}: channel {c} is subsampled ({ch.xSampling}x{ch.ySampling}; e.g. a "
                           f"luminance/chroma RY BY file), which is not supported; convert it to full-resolution "
                           f"RGB")
        px = np.asarray(ch.pixels)
        if px.shape != (h, w):
            raise ExrError(f"{path.name}: channel {c} holds {px.shape[1]}x{px.shape[0]} pixels but the data window "
                           f"{window} is {w}x{h}; the file is corrupt")
        arrays[c] = px
    rgb = np.empty((h, w, 3), dtype=np.float32)
    for k, c in enumerate((c0, c1, c2)):
        if c is None:
            rgb[..., k] = 0.0
        else:
            rgb[..., k] = arrays[c]  # half -> float32 is exact
    alpha = arrays[a].astype(np.float32) if a is not None else None
    return ExrImage(rgb, alpha, window, tuple(used), _pixel_type(arrays[c0]))


# ------------------------------------------------------------------------------------------ writing
def _compression(OpenEXR, name: str):
    key = (name or "zip").strip().lower()
    table = {"zip": "ZIP_COMPRESSION", "piz": "PIZ_COMPRESSION", "dwaa": "DWAA_COMPRESSION",
             "dwab": "DWAB_COMPRESSION", "zips": "ZIPS_COMPRESSION", "rle": "RLE_COMPRESSION",
             "none": "NO_COMPRESSION"}
    if key not in table:
        raise ExrError(f"unknown EXR compression '{name}'; use one of {', '.join(COMPRESSIONS)}")
    return getattr(OpenEXR, table[key])


def encode_exr(image: np.ndarray, alpha: Optional[np.ndarray] = None, *, bit_depth: int = 16,
               compression: str = "zip", name: str = "frame") -> bytes:
    """EXR file bytes of one float frame ``[H, W, C]`` (C = 1 -> ``Y``, 3 -> ``R G B``, 4 -> ``R G B A``) with an
    optional alpha ``[H, W]`` (it replaces a fourth channel). ``bit_depth`` 16 = half, 32 = float. Values are
    written as they are: no clamping; NaN stays NaN."""
    OpenEXR = _openexr()
    if bit_depth not in (16, 32):
        raise ExrError(f"EXR frames are written as half (bit_depth 16) or float (32), not {bit_depth}")
    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 2:
        img = img[..., None]
    if img.ndim != 3 or img.shape[2] not in (1, 3, 4):
        raise ExrError(f"cannot write an image of shape {img.shape} as EXR: expected [H, W, 1|3|4]")
    h, w, c = img.shape
    names = {1: ["Y"], 3: ["R", "G", "B"], 4: ["R", "G", "B", "A"]}[c]
    planes = [img[..., k] for k in range(c)]
    if alpha is not None:
        a = np.asarray(alpha, dtype=np.float32)
        if a.shape != (h, w):
            raise ExrError(f"alpha of shape {a.shape} does not match the {w}x{h} image")
        if c == 4:
            planes[3] = a
        else:
            names.append("A")
            planes.append(a)
    dtype = np.float16 if bit_depth == 16 else np.float32
    out = {}
    overflow = 0
    for n, p in zip(names, planes):
        if dtype is np.float16:
            with np.errstate(over="ignore"):
                q = p.astype(np.float16)
            overflow += int(np.count_nonzero(np.isinf(q) & np.isfinite(p)))
        else:
            q = p
        out[n] = np.ascontiguousarray(q)
    if overflow:
        log.warning("%s: %d sample(s) beyond the half-float range (+-65504) were written as +-inf; save with "
                    "bit_depth 32 (float) to keep them", name, overflow)
    header = {"compression": _compression(OpenEXR, compression), "type": OpenEXR.scanlineimage}
    buf = io.BytesIO()
    try:
        OpenEXR.File(header, out).write(buf)
    except Exception as e:
        raise ExrError(f"cannot encode {name} as EXR: {type(e).__name__}: {e}") from e
    return buf.getvalue()
