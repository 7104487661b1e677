"""Numbered frame sequences on disk: list, load (8/16-bit PNG, JPEG, TIFF, OpenEXR) and save (8/16-bit PNG,
half/float OpenEXR) shots.

Frames are files whose names carry the frame number, matched by

* a printf pattern: ``frame_%04d.png`` (also ``frame_####.png``, the VFX-style padding), or
* a glob: ``*.png``, ``shot_*.tif``, ``*`` (every image file); the frame number is the last run of digits in
  the file name.

Images are ComfyUI's IMAGE layout: a float32 tensor ``[N, H, W, C]`` in ``[0, 1]`` for integer formats.
OpenEXR frames (``models.io.exr``) are scene-linear and come back exactly as stored: half widens to float32
without rounding, values above 1 and below 0 are kept, alpha can come back as a separate MASK, one named layer
can be chosen, the frame size is the data window (all frames of a sequence must share one), and NaN/inf are
refused by default (``non_finite``). Saving ``.exr`` writes half (default) or float without clamping, so a
load -> save round trip is bit-exact.

16-bit: Pillow reads 16-bit grayscale PNG/TIFF natively but reduces 16-bit RGB(A) to 8 bits, and cannot write
16-bit RGB at all. Reading therefore decodes such files twice through Pillow's own C decoder, once for the
high and once for the low byte of every sample (Pillow's 16-bit unpackers pick one byte of each sample;
swapping the byte order of the raw mode picks the other), and writing uses the small PNG encoder below
(numpy filtering + zlib), so a 16-bit frame round-trips exactly.

Saving is atomic: each frame is written to a hidden temporary file in the target folder, flushed, and moved
into place with ``os.replace``, so a render that is killed at any moment leaves either the complete frame or
no file under the frame's name, and ``skip_existing`` can safely resume.
"""
from __future__ import annotations

import fnmatch
import os
import re
import struct
import tempfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Set, Tuple, Union

if TYPE_CHECKING:  # torch is imported where tensors are made, so listing frames (the renderer) stays light
    import torch

import numpy as np

from . import validate
from ._files import apply_file_mode

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".bmp", ".exr")
PathLike = Union[str, os.PathLike]


class SequenceError(validate.InputError):
    """A frame sequence that cannot be read or written as asked (message says what and where)."""


# ------------------------------------------------------------------------------------------ patterns
# Patterns are parsed and checked by models.validate (length, folders, one field of at most 9 digits, no %s...)
# before anything is formatted; its errors are re-raised as SequenceError.
def _printf(pattern: str) -> Optional[str]:
    """The pattern as a printf format with one integer field (``####`` becomes ``%04d``), or None for a glob."""
    try:
        field = validate.frame_field(pattern)
    except validate.InputError as e:
        raise SequenceError(str(e)) from None
    return None if field is None else field.printf()


def _check_pattern(pattern: str) -> None:
    _printf(pattern)


def frame_name(pattern: str, number: int) -> str:
    """File name of frame ``number`` for a printf (``frame_%04d.png``) or hash (``frame_####.png``) pattern."""
    try:
        return validate.frame_name(pattern, number)
    except validate.InputError as e:
        raise SequenceError(str(e)) from None


def _match(pattern: str) -> Callable[[str], Optional[int]]:
    """name -> frame number when ``name`` belongs to the sequence of ``pattern``, else None."""
    try:
        field = validate.frame_field(pattern)
    except validate.InputError as e:
        raise SequenceError(str(e)) from None
    if field is not None:
        rx = re.compile(re.escape(field.prefix) + r"(\d+)" + re.escape(field.suffix) + r"\Z")

        def match_printf(name: str) -> Optional[int]:
            r = rx.match(name)
            if not r or len(r.group(1)) > validate.MAX_FRAME_DIGITS:
                return None
            n = int(r.group(1))
            return n if field.name(n) == name else None  # exact padding only: frame_%04d does not take frame_12.png

        return match_printf

    glob = pattern or "*"

    def match_glob(name: str) -> Optional[int]:
        if name.startswith("."):
            return None  # hidden files, incl. our own temporary files
        if not fnmatch.fnmatch(name, glob) or not name.lower().endswith(IMAGE_EXTENSIONS):
            return None
        digits = re.findall(r"\d+", os.path.splitext(name)[0])
        return int(digits[-1]) if digits else None

    return match_glob


def _scan(folder: Path, pattern: str) -> List[Tuple[int, Path]]:
    match = _match(pattern)
    found = {}
    with os.scandir(folder) as it:
        for entry in it:
            n = match(entry.name)
            if n is None or not entry.is_file():
                continue
            if n in found:
                raise SequenceError(f"frame {n} appears twice in {folder}: {found[n].name} and {entry.name}; "
                                    f"use a pattern that selects one of them (e.g. 'frame_%04d.png' or '*.png')")
            found[n] = Path(entry.path)
    return sorted(found.items())


def list_image_sequence(folder: PathLike, pattern: Optional[str] = "*", first: Optional[int] = None,
                        last: Optional[int] = None, step: int = 1) -> List[Tuple[int, Path]]:
    """``[(frame_number, path)]`` of the frames of ``folder`` matching ``pattern``, in frame order.

    ``first``/``last`` (inclusive, None = open) select a frame range; ``step`` keeps every step-th frame of
    that range, counted from its first frame (gaps in the numbering are skipped, not counted).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise SequenceError(f"frame folder {folder} does not exist")
    if step < 1:
        raise SequenceError(f"step must be >= 1 (got {step})")
    frames = [(n, p) for n, p in _scan(folder, pattern or "*")
              if (first is None or n >= first) and (last is None or n <= last)]
    return frames[::step]


def existing_frames(folder: PathLike, pattern: str) -> Set[int]:
    """Frame numbers already present in ``folder`` under ``pattern`` (empty when the folder does not exist).
    Temporary files of an interrupted write are never counted."""
    folder = Path(folder)
    if not folder.is_dir():
        return set()
    return {n for n, _ in _scan(folder, pattern)}


# ------------------------------------------------------------------------------------------ reading
def _swap_byte_order(args):
    def swap(raw: str) -> str:
        return raw.replace("16B", "16\0").replace("16L", "16B").replace("16\0", "16L")

    if isinstance(args, str):
        return swap(args)
    if isinstance(args, tuple) and args and isinstance(args[0], str):
        return (swap(args[0]),) + args[1:]
    return None


def _read_deep_rgb(path: Path, im) -> Optional[np.ndarray]:
    """uint16 [H, W, C] of a 16-bit RGB(A) file that Pillow would reduce to 8 bits, else None."""
    from PIL import Image

    if im.mode not in ("RGB", "RGBA") or not im.tile:
        return None
    raws = [t.args if isinstance(t.args, str) else (t.args[0] if isinstance(t.args, tuple) and t.args else None)
            for t in im.tile]
    if not all(isinstance(r, str) and re.search(r";16[BL]$", r) for r in raws):
        return None
    low_tiles = [t._replace(args=_swap_byte_order(t.args)) for t in im.tile]
    high = np.asarray(im)  # Pillow keeps the most significant byte of each sample
    try:
        with Image.open(path) as im2:
            im2.tile = low_tiles
            low = np.asarray(im2)
    except Exception as e:  # a codec that does not honour the raw mode: keep 8 significant bits, say so
        import logging

        logging.getLogger("comfyui-gan-pack").warning("%s: 16-bit samples read with 8-bit precision (%s)", path, e)
        return high.astype(np.uint16) * 257
    return (high.astype(np.uint16) << 8) | low.astype(np.uint16)


def _is_exr(path: PathLike) -> bool:
    return str(path).lower().endswith(".exr")


NON_FINITE = ("error", "zero", "keep")


def _finite(arr: np.ndarray, path: Path, non_finite: str) -> np.ndarray:
    """NaN/inf in a float frame: refused (``error``), replaced by 0 (``zero``) or kept (``keep``)."""
    if non_finite == "keep":
        return arr
    bad = ~np.isfinite(arr)
    if not bad.any():
        return arr
    if non_finite == "zero":
        arr[bad] = 0.0
        return arr
    if non_finite != "error":
        raise SequenceError(f"non_finite must be one of {', '.join(NON_FINITE)} (got {non_finite!r})")
    nan = int(np.isnan(arr).sum())
    y, x = (int(v) for v in np.argwhere(bad.reshape(arr.shape[0], arr.shape[1], -1).any(axis=2))[0])
    raise SequenceError(f"frame {path} holds {nan} NaN and {int(bad.sum()) - nan} infinite sample(s) (first at "
                        f"x={x}, y={y}); networks turn them into garbage. Fix the plate, or load with "
                        f"non_finite='zero' (replace them by 0) or 'keep'")


def read_exr_frame(path: PathLike, layer: Optional[str] = None, non_finite: str = "error"):
    """An EXR frame as (rgb float32 ``[H, W, 3]``, alpha float32 ``[H, W]`` or None, data window), values as
    stored (see ``models.io.exr.read_exr``)."""
    from .io.exr import ExrError, read_exr

    path = Path(path)
    try:
        img = read_exr(path, layer)
    except ExrError as e:
        raise SequenceError(str(e) if str(path.name) in str(e) else f"{path}: {e}") from e
    _finite(img.rgb, path, non_finite)
    if img.alpha is not None:
        _finite(img.alpha, path, non_finite)
    return img.rgb, img.alpha, img.window


def read_image(path: PathLike, channels: int = 3, *, layer: Optional[str] = None,
               non_finite: str = "error") -> np.ndarray:
    """One frame as float32 ``[H, W, channels]`` (channels 3 = RGB, 4 = RGBA with opaque alpha added when the
    file has none): in [0, 1] for PNG/JPEG/TIFF (16-bit files keep their full precision); scene-linear values as
    stored for OpenEXR (``layer`` picks an EXR layer; ``non_finite`` says what NaN/inf do)."""
    from PIL import Image, ImageOps

    path = Path(path)
    if channels not in (3, 4):
        raise SequenceError(f"channels must be 3 or 4 (got {channels})")
    if _is_exr(path):
        rgb, alpha, _ = read_exr_frame(path, layer, non_finite)
        if channels == 3:
            return rgb
        return np.concatenate([rgb, (alpha if alpha is not None else np.ones(rgb.shape[:2], np.float32))[..., None]],
                              axis=2)
    if layer:
        raise SequenceError(f"{path.name}: layers ('{layer}') exist in OpenEXR files only; clear the layer input")
    try:
        with Image.open(path) as im:
            deep = _read_deep_rgb(path, im)
            if deep is not None:
                arr = deep.astype(np.float32) / 65535.0
            else:
                if im.format in ("JPEG", "TIFF", "WEBP", "MPO"):
                    im = ImageOps.exif_transpose(im)
                if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                    a = np.asarray(im).astype(np.float32)
                    arr = np.clip(a / 65535.0, 0, 1)[..., None]
                elif im.mode == "F":
                    arr = np.clip(np.asarray(im, dtype=np.float32), 0, 1)[..., None]
                else:
                    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or \
                        (im.mode == "P" and "transparency" in im.info)
                    im = im.convert("RGBA" if has_alpha else "RGB")
                    arr = np.asarray(im).astype(np.float32) / 255.0
    except SequenceError:
        raise
    except Exception as e:  # PIL's own messages do not say which frame
        raise SequenceError(f"cannot read frame {path}: {e}") from e
    c = arr.shape[2]
    if c == 1:
        arr = np.repeat(arr, 3, axis=2)
    if channels == 3:
        return np.ascontiguousarray(arr[..., :3])
    if channels == 4:
        if arr.shape[2] == 3:
            arr = np.concatenate([arr, np.ones_like(arr[..., :1])], axis=2)
        return arr
    raise SequenceError(f"channels must be 3 or 4 (got {channels})")


def _check_batch_memory(first: Path, count: int, channels: int) -> None:
    """The whole batch is allocated at once: refuse before reading any pixels (the first frame's header gives
    the size), saying what it would take and which limit applies."""
    from PIL import Image

    try:
        with Image.open(first) as im:
            w, h = im.size
    except Exception:  # noqa: BLE001 - read_image reports unreadable frames with their name
        return
    try:
        validate.check_memory(count * w * h * channels * 4, f"loading {count} frames of {w}x{h}",
                              node="Load Image Sequence")
    except validate.InputError as e:
        raise SequenceError(f"{e} (load a frame range at a time with first/last frame)") from None


def load_image_sequence(folder: PathLike, pattern: Optional[str] = "*", first: Optional[int] = None,
                        last: Optional[int] = None, step: int = 1, *, channels: int = 3,
                        layer: Optional[str] = None, non_finite: str = "error", return_alpha: bool = False,
                        progress: Optional[Callable[[int, int], None]] = None,
                        check_interrupt: Optional[Callable[[], None]] = None):
    """Load frames as one IMAGE batch ``[N, H, W, channels]`` float32 and their frame numbers.

    PNG/JPEG/TIFF frames are in [0, 1]; OpenEXR frames are scene-linear values exactly as stored (``layer``
    chooses an EXR layer such as ``"diffuse"``; ``non_finite`` = ``"error"`` (default) / ``"zero"`` / ``"keep"``
    says what NaN/inf samples do). All frames must have one size, and EXR frames one data window (the error
    names the first frame that differs). With ``return_alpha`` the result is ``(images [N, H, W, 3], numbers,
    alpha [N, H, W])`` (alpha 1 where a frame has none), else ``(images, numbers)``.
    Memory is one batch, allocated once; render long shots in chunks through ``first``/``last``.
    """
    import torch

    if channels not in (3, 4):
        raise SequenceError(f"channels must be 3 or 4 (got {channels})")
    if non_finite not in NON_FINITE:
        raise SequenceError(f"non_finite must be one of {', '.join(NON_FINITE)} (got {non_finite!r})")
    frames = list_image_sequence(folder, pattern, first, last, step)
    if not frames:
        rng = f" in frames {first if first is not None else 'start'}..{last if last is not None else 'end'}" \
            if first is not None or last is not None else ""
        raise SequenceError(f"no frames matching {pattern or '*'!r}{rng} in {folder}")
    out = alpha_out = None
    first_window = None
    for i, (n, path) in enumerate(frames):
        if check_interrupt is not None:
            check_interrupt()
        if i == 0:
            _check_batch_memory(path, len(frames), 3 if return_alpha else channels)
        if _is_exr(path):
            rgb, alpha, window = read_exr_frame(path, layer, non_finite)
            if first_window is None:
                first_window = (n, path, window)
            elif window != first_window[2]:
                raise SequenceError(
                    f"frame {n} ({path.name}) has the data window {_window_text(window)} but frame "
                    f"{first_window[0]} ({first_window[1].name}) has {_window_text(first_window[2])}: every frame "
                    f"of a sequence must share one data window (reformat or crop the plate to one window)")
        else:
            rgb = read_image(path, 4 if (return_alpha or channels == 4) else 3, layer=layer)
            rgb, alpha = (rgb[..., :3], rgb[..., 3]) if rgb.shape[2] == 4 else (rgb, None)
        want = (len(frames),) + rgb.shape[:2] + ((3,) if return_alpha else (channels,))
        if out is None:
            out = torch.empty(want, dtype=torch.float32)
            if return_alpha:
                alpha_out = torch.empty(want[:3], dtype=torch.float32)
        elif tuple(want) != tuple(out.shape):
            raise SequenceError(
                f"frame {n} ({path.name}) is {rgb.shape[1]}x{rgb.shape[0]} but frame {frames[0][0]} "
                f"({frames[0][1].name}) is {out.shape[2]}x{out.shape[1]}: every frame of a sequence must have one size")
        out[i, ..., :3] = torch.from_numpy(np.ascontiguousarray(rgb))
        a = out[i, ..., 3] if (channels == 4 and not return_alpha) else (alpha_out[i] if return_alpha else None)
        if a is not None:
            if alpha is None:
                a.fill_(1.0)
            else:
                a.copy_(torch.from_numpy(np.ascontiguousarray(alpha)))
        if progress is not None:
            progress(i + 1, len(frames))
    numbers = [n for n, _ in frames]
    return (out, numbers, alpha_out) if return_alpha else (out, numbers)


def _window_text(w: Tuple[int, int, int, int]) -> str:
    return f"({w[0]},{w[1]})-({w[2]},{w[3]}) = {w[2] - w[0] + 1}x{w[3] - w[1] + 1}"


# ------------------------------------------------------------------------------------------ writing
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _filter_rows(rows: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """PNG adaptive filtering of a block of rows (uint8 ``[R, stride]``; ``prev`` is the row above the block):
    every row gets the filter (None, Sub, Up, Average, Paeth) with the smallest sum of absolute signed
    residuals, the usual heuristic. Returns ``[R, 1 + stride]`` with the filter byte first."""
    x = rows.astype(np.int16)
    up = np.concatenate([prev[None].astype(np.int16), x[:-1]], axis=0)
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = up[:, :-bpp]
    p = left + up - upleft
    pa, pb, pc = np.abs(p - left), np.abs(p - up), np.abs(p - upleft)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, upleft))
    cands = np.stack([x, x - left, x - up, x - ((left + up) >> 1), x - paeth]).astype(np.uint8)  # mod 256
    cost = np.abs(cands.view(np.int8).astype(np.int32)).sum(axis=2)  # [5, R]
    best = cost.argmin(axis=0)
    chosen = cands[best, np.arange(x.shape[0])]
    return np.concatenate([best.astype(np.uint8)[:, None], chosen], axis=1)


def encode_png(array: np.ndarray, *, compress_level: int = 6) -> bytes:
    """PNG bytes of a uint8 or uint16 ``[H, W]`` / ``[H, W, 1..4]`` array (16-bit RGB(A) included)."""
    a = np.asarray(array)
    if a.ndim == 2:
        a = a[..., None]
    if a.dtype not in (np.uint8, np.uint16) or a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise SequenceError(f"cannot encode an array of shape {a.shape} and type {a.dtype} as PNG")
    h, w, c = a.shape
    depth = 8 if a.dtype == np.uint8 else 16
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = np.ascontiguousarray(a.astype(">u2") if depth == 16 else a).view(np.uint8).reshape(h, w * c * depth // 8)
    bpp = c * depth // 8
    comp = zlib.compressobj(compress_level)
    idat = []
    prev = np.zeros(raw.shape[1], dtype=np.uint8)
    block = max(1, (1 << 20) // max(1, raw.shape[1]))  # ~1 MB of rows at a time bounds the temporaries
    for y in range(0, h, block):
        rows = raw[y:y + block]
        idat.append(comp.compress(_filter_rows(rows, prev, bpp).tobytes()))
        prev = rows[-1]
    idat.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(idat)) + \
        _png_chunk(b"IEND", b"")


def _to_uint(frame, bit_depth: int) -> np.ndarray:
    if hasattr(frame, "detach"):  # a torch tensor (torch is imported only by the callers that have tensors)
        frame = frame.detach().cpu().float().numpy()
    f = np.clip(np.nan_to_num(np.asarray(frame, dtype=np.float32)), 0.0, 1.0)
    if f.ndim == 2:
        f = f[..., None]
    scale = 255.0 if bit_depth == 8 else 65535.0
    return np.rint(f * scale).astype(np.uint8 if bit_depth == 8 else np.uint16)


def _encode(frame: np.ndarray, ext: str, bit_depth: int, compress_level: int) -> bytes:
    if ext == ".png" and bit_depth == 16:
        return encode_png(frame, compress_level=compress_level)
    if bit_depth != 8:
        raise SequenceError(f"16-bit frames are written as PNG only; use a .png pattern (got {ext})")
    import io

    from PIL import Image

    im = Image.fromarray(frame[..., 0] if frame.shape[2] == 1 else frame)
    buf = io.BytesIO()
    if ext == ".png":
        im.save(buf, format="PNG", compress_level=compress_level)
    elif ext in (".jpg", ".jpeg"):
        im.convert("RGB").save(buf, format="JPEG", quality=95)
    elif ext in (".tif", ".tiff"):
        im.save(buf, format="TIFF", compression="tiff_deflate")
    elif ext == ".webp":
        im.save(buf, format="WEBP", lossless=True)
    else:
        raise SequenceError(f"cannot write frames as {ext}; use .png, .jpg, .tif or .webp")
    return buf.getvalue()


def write_atomic(path: PathLike, data: bytes, *, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` so that ``path`` never exists half-written: a hidden temporary file in the
    same folder, flushed (and fsync'ed), then renamed over ``path`` in one step."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        apply_file_mode(tmp, path)  # the mode a plain open() would give (mkstemp makes files 0600)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _remove_stale_temporaries(folder: Path, name: str) -> None:
    """Temporary files that a killed writer of frame ``name`` left behind."""
    for stale in folder.glob(f".{glob_escape(name)}.*.tmp"):
        try:
            stale.unlink()
        except OSError:
            pass


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _to_float(frame) -> np.ndarray:
    if hasattr(frame, "detach"):
        frame = frame.detach().cpu().float().numpy()
    f = np.asarray(frame, dtype=np.float32)
    return f[..., None] if f.ndim == 2 else f


def save_image_sequence(images, folder: PathLike, pattern: str = "frame_%04d.png",
                        frame_numbers: Optional[Sequence[int]] = None, bit_depth: Optional[int] = None,
                        skip_existing: bool = False, progress: Optional[Callable[[int, int], None]] = None, *,
                        start: int = 1, compress_level: int = 4, fsync: bool = True,
                        check_interrupt: Optional[Callable[[], None]] = None, alpha=None,
                        compression: str = "zip") -> List[Path]:
    """Write an IMAGE batch (``[N, H, W, C]``, tensor or array) as numbered frames.

    Frame ``i`` is named ``pattern % frame_numbers[i]`` (``start + i`` without frame numbers); the pattern's
    extension picks the format. PNG/JPEG/TIFF: values clamped to [0, 1], ``bit_depth`` 8 (default) or 16 (PNG
    only). OpenEXR (``.exr``): values written as they are (no clamping), ``bit_depth`` 16 = half (default) or
    32 = float, channels R G B (+ A), ``compression`` zip (default), piz, dwaa, dwab, zips, rle or none.
    ``alpha`` (``[N, H, W]``, e.g. a MASK) is written as the alpha channel. Every file is written atomically;
    with ``skip_existing`` frames whose file is already there are left untouched (resume). Returns the paths of
    all N frames, written or skipped.
    """
    try:  # before any folder or file is made: length, one field of at most 9 digits, a usable name
        validate.check_frame_pattern(pattern)
    except validate.InputError as e:
        raise SequenceError(str(e)) from None
    n = int(images.shape[0])
    if frame_numbers is None:
        frame_numbers = list(range(int(start), int(start) + n))
    frame_numbers = [int(f) for f in frame_numbers]
    if len(frame_numbers) != n:
        raise SequenceError(f"{n} images but {len(frame_numbers)} frame numbers")
    if len(set(frame_numbers)) != n:
        raise SequenceError("frame numbers must be unique")
    ext = os.path.splitext(frame_name(pattern, 0))[1].lower()
    if ext not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".exr"):
        raise SequenceError(f"pattern {pattern!r}: unsupported file type {ext or '(none)'}; use .png, .jpg, .tif "
                            f"or .exr")
    exr = ext == ".exr"
    if bit_depth is None:
        bit_depth = 16 if exr else 8
    if exr and bit_depth not in (16, 32):
        raise SequenceError(f"EXR frames are half (bit_depth 16) or float (32), not {bit_depth}-bit")
    if not exr and bit_depth not in (8, 16):
        raise SequenceError(f"bit_depth must be 8 or 16 for {ext} (got {bit_depth}; 32-bit float is .exr only)")
    if exr:
        from .io.exr import COMPRESSIONS

        if (compression or "zip").lower() not in COMPRESSIONS:
            raise SequenceError(f"unknown EXR compression {compression!r}; use one of {', '.join(COMPRESSIONS)}")
    if alpha is not None and (int(alpha.shape[0]) != n or tuple(alpha.shape[1:3]) != tuple(images.shape[1:3])):
        raise SequenceError(f"alpha of shape {tuple(alpha.shape)} does not match the images {tuple(images.shape)}: "
                            f"one [H, W] mask per frame")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths: List[Path] = []
    for i, number in enumerate(frame_numbers):
        if check_interrupt is not None:
            check_interrupt()
        path = folder / frame_name(pattern, number)
        paths.append(path)
        if not (skip_existing and path.is_file()):
            if hasattr(images, "dtype"):  # NaN/inf would be written as black pixels without a word
                try:
                    validate.check_image_finite(images[i:i + 1], "images", node="Save Image Sequence",
                                                frame_numbers=[number])
                except validate.InputError as e:
                    raise SequenceError(str(e)) from None
            _remove_stale_temporaries(folder, path.name)
            a = None if alpha is None else _to_float(alpha[i])[..., 0]
            if exr:
                from .io.exr import ExrError, encode_exr

                try:
                    data = encode_exr(_to_float(images[i]), a, bit_depth=bit_depth, compression=compression,
                                      name=path.name)
                except ExrError as e:
                    raise SequenceError(str(e)) from e
            else:
                frame = _to_uint(images[i], bit_depth)
                if a is not None:
                    frame = np.concatenate([frame[..., :3] if frame.shape[2] != 1 else np.repeat(frame, 3, axis=2),
                                            _to_uint(a, bit_depth)], axis=2)
                data = _encode(frame, ext, bit_depth, compress_level)
            write_atomic(path, data, fsync=fsync)
        if progress is not None:
            progress(i + 1, n)
    return paths
