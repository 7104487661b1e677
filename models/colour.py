"""Colour management with OpenColorIO (PyPI ``opencolorio``): convert images between the colour spaces of a config.

The config is, in this order: the ``config`` argument (a path to a ``config.ocio``/``.ocioz``, an ``ocio://``
URI of a built-in config, or a ``PyOpenColorIO.Config``), the user's ``$OCIO``, or OCIO's built-in
``ocio://studio-config-latest`` (ACEScg, ACES2065-1, ACEScct, Linear Rec.709 (sRGB), sRGB - Display,
camera log spaces, ...).

``source`` and ``target`` name colour spaces of the config (names, aliases and roles such as ``scene_linear``
all work). Either may also be a display/view pair written ``"<display> / <view>"``, e.g.
``"sRGB - Display / ACES 2.0 - SDR 100 nits (Rec.709)"``: as the target it applies the view transform (tone
mapping) from ``source``; as the source its inverse, back to ``target``.

Values outside [0, 1]: every transform is OCIO's own CPU processor, unclamped. Scene-linear -> a display colour
space (``sRGB - Display``) is colorimetric: scene 1.0 is display white, brighter values stay above 1.0 and
out-of-gamut colours go negative; the networks of this pack clamp their input to [0, 1], so that is what they
cannot see. A display/view with tone mapping (ACES 2.0 views) compresses highlights into [0, 1) instead, so the
network sees them. On the way back to scene-linear nothing is clipped: the inverse of the colour space or view is
applied to exactly the values given (display white 1.0 -> scene 1.0 for the colorimetric spaces; -> about 128 for
the ACES 2.0 SDR view, whose inverse is steep near white).

The alpha channel (a fourth image channel, or ``alpha``) is never converted. With ``premultiplied=True`` colour is
divided by alpha before a transform and multiplied back after (where alpha > 0), as EXR stores colour
premultiplied; without it the transform sees the stored values.
"""
from __future__ import annotations

import difflib
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

DEFAULT_CONFIG = "ocio://studio-config-latest"
VIEW_SEPARATOR = " / "
ROWS_PER_TASK = 64  # rows of a frame per processor call: small temporaries, parallel over threads


class ColourError(ValueError):
    """A config or colour space that cannot be used (the message says which and what exists)."""


def _ocio():
    try:
        import PyOpenColorIO as OCIO
    except ImportError as e:  # pragma: no cover - the package is a requirement
        raise ColourError("colour management needs the 'opencolorio' package (pip install opencolorio)") from e
    return OCIO


# ------------------------------------------------------------------------------------------ configs
_configs: Dict[Tuple[str, float], object] = {}
_processors: Dict[Tuple, object] = {}
_lock = threading.Lock()


def config_source(config: Union[None, str, os.PathLike] = None) -> str:
    """What :func:`load_config` will read: the argument, else ``$OCIO``, else the built-in studio config."""
    if config is not None and str(config).strip():
        return str(config).strip()
    env = os.environ.get("OCIO", "").strip()
    return env or DEFAULT_CONFIG


def load_config(config=None):
    """A ``PyOpenColorIO.Config`` (cached per file and modification time; see the module docstring)."""
    OCIO = _ocio()
    if config is not None and not isinstance(config, (str, os.PathLike)):
        return config  # already a Config
    src = config_source(config)
    mtime = 0.0
    if not src.startswith("ocio://"):
        path = Path(src).expanduser()
        if not path.is_file():
            where = "the OCIO environment variable" if config is None else "the config argument"
            raise ColourError(f"OCIO config '{src}' (from {where}) does not exist; give a config.ocio file or a "
                              f"built-in config such as {DEFAULT_CONFIG}")
        src, mtime = str(path.resolve()), path.stat().st_mtime
    key = (src, mtime)
    with _lock:
        cfg = _configs.get(key)
    if cfg is None:
        try:
            cfg = OCIO.Config.CreateFromFile(src)
        except Exception as e:
            raise ColourError(f"cannot load the OCIO config '{src}': {e}") from e
        with _lock:
            _configs[key] = cfg
    return cfg


def colourspaces(config=None) -> List[str]:
    """The colour space names of a config, in its order."""
    return [cs.getName() for cs in load_config(config).getColorSpaces()]


def display_views(config=None) -> List[str]:
    """``"<display> / <view>"`` for every display and view of a config."""
    cfg = load_config(config)
    return [f"{d}{VIEW_SEPARATOR}{v}" for d in cfg.getDisplays() for v in cfg.getViews(d)]


def list_colourspaces(config=None, *, views: bool = True) -> List[str]:
    """Everything :func:`convert_colourspace` accepts from a config: colour spaces, then display/views."""
    return colourspaces(config) + (display_views(config) if views else [])


def _resolve(cfg, name: str) -> Tuple[str, Optional[Tuple[str, str]]]:
    """``(colour space name, None)`` or ``(None, (display, view))`` for a user's name, else a clear error."""
    name = (name or "").strip()
    cs = cfg.getColorSpace(name) if name else None
    if cs is not None:
        return cs.getName(), None
    if VIEW_SEPARATOR in name:
        display, view = (p.strip() for p in name.split(VIEW_SEPARATOR, 1))
        if display in list(cfg.getDisplays()) and view in list(cfg.getViews(display)):
            return None, (display, view)
    known = [c.getName() for c in cfg.getColorSpaces()] + \
        [f"{d}{VIEW_SEPARATOR}{v}" for d in cfg.getDisplays() for v in cfg.getViews(d)]
    close = difflib.get_close_matches(name, known, n=4, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ColourError(f"'{name}' is neither a colour space nor a '<display>{VIEW_SEPARATOR}<view>' of the OCIO config "
                      f"'{cfg.getName() or 'config'}'.{hint} It has {len(list(cfg.getColorSpaces()))} colour spaces, "
                      f"e.g. {', '.join(known[:8])}")


def colour_processor(source: str, target: str, config=None):
    """OCIO's CPU processor (``getDefaultCPUProcessor``) from ``source`` to ``target`` (cached)."""
    OCIO = _ocio()
    cfg = load_config(config)
    key = (id(cfg), cfg.getCacheID(), source, target)
    with _lock:
        proc = _processors.get(key)
    if proc is not None:
        return proc
    src, src_view = _resolve(cfg, source)
    dst, dst_view = _resolve(cfg, target)
    try:
        if src_view is None and dst_view is None:
            p = cfg.getProcessor(src, dst)
        elif src_view is None:
            p = cfg.getProcessor(OCIO.DisplayViewTransform(src=src, display=dst_view[0], view=dst_view[1]))
        elif dst_view is None:
            p = cfg.getProcessor(OCIO.DisplayViewTransform(src=dst, display=src_view[0], view=src_view[1],
                                                           direction=OCIO.TRANSFORM_DIR_INVERSE))
        else:  # display/view -> display/view through the scene-linear role
            group = OCIO.GroupTransform()
            group.appendTransform(OCIO.DisplayViewTransform(src=OCIO.ROLE_SCENE_LINEAR, display=src_view[0],
                                                            view=src_view[1], direction=OCIO.TRANSFORM_DIR_INVERSE))
            group.appendTransform(OCIO.DisplayViewTransform(src=OCIO.ROLE_SCENE_LINEAR, display=dst_view[0],
                                                            view=dst_view[1]))
            p = cfg.getProcessor(group)
        proc = p.getDefaultCPUProcessor()
    except Exception as e:
        raise ColourError(f"OCIO cannot convert '{source}' to '{target}': {e}") from e
    with _lock:
        if len(_processors) > 64:
            _processors.clear()
        _processors[key] = proc
    return proc


# ------------------------------------------------------------------------------------------ conversion
def _default_threads() -> int:
    return max(1, min(8, os.cpu_count() or 1))


def convert_colourspace(images, source: str, target: str, *, config=None, alpha=None, premultiplied: bool = False,
                        threads: Optional[int] = None, progress: Optional[Callable[[int, int], None]] = None,
                        check_interrupt: Optional[Callable[[], None]] = None):
    """Convert ``images`` (``[N, H, W, C]``, ``[H, W, C]`` or ``[P, C]``, C = 3 or 4, tensor or numpy array) from the
    colour space ``source`` to ``target`` of an OCIO config; returns the same kind of array (float32, on the
    input's device). A fourth channel, or ``alpha`` (``[N, H, W]``), is alpha: passed through untouched and,
    with ``premultiplied``, used to unpremultiply around the transform. Values are never clamped; the result
    equals OCIO's own processor (:func:`colour_processor`) applied to the float32 pixels."""
    proc = colour_processor(source, target, config)
    is_torch = hasattr(images, "detach")
    if is_torch:
        import torch

        device = images.device
        src = images.detach().to("cpu", torch.float32).numpy()
    else:
        src = np.asarray(images, dtype=np.float32)
    shape = src.shape
    if src.ndim in (2, 3):  # a pixel list [P, C] or one image [H, W, C]
        src = src.reshape((1,) * (4 - src.ndim) + src.shape)
    if src.ndim != 4 or src.shape[-1] not in (3, 4):
        raise ColourError(f"expected images [N, H, W, 3|4] (or [H, W, C], [P, C]), got shape {tuple(shape)}")
    n, h, w, c = src.shape
    a_all = None
    if alpha is not None:
        a_all = alpha.detach().to("cpu").float().numpy() if hasattr(alpha, "detach") else np.asarray(alpha, np.float32)
        if a_all.shape != tuple(shape[:-1]) and a_all.shape != (n, h, w):
            raise ColourError(f"alpha of shape {a_all.shape} does not match the images {tuple(shape)}")
        a_all = a_all.reshape(n, h, w)
    elif c == 4:
        a_all = src[..., 3]
    out = np.empty_like(src)
    if proc.isNoOp():
        out[...] = src
        return _wrap(out.reshape(shape), is_torch, images)
    workers = threads or _default_threads()
    pool = ThreadPoolExecutor(workers) if workers > 1 and h > ROWS_PER_TASK else None

    def run_rows(i: int, y0: int, y1: int) -> None:
        block = np.array(src[i, y0:y1, :, :3], dtype=np.float32, order="C", copy=True)  # the input is never changed
        a = a_all[i, y0:y1, :, None] if (premultiplied and a_all is not None) else None
        if a is not None:
            safe = a > 0
            block = np.where(safe, block / np.where(safe, a, 1.0), block).astype(np.float32)
        proc.applyRGB(block)
        if a is not None:
            block = np.where(safe, block * a, block)
        out[i, y0:y1, :, :3] = block

    try:
        for i in range(n):
            if check_interrupt is not None:
                check_interrupt()
            spans = [(y, min(h, y + ROWS_PER_TASK)) for y in range(0, h, ROWS_PER_TASK)]
            if pool is None:
                for y0, y1 in spans:
                    run_rows(i, y0, y1)
            else:
                list(pool.map(lambda s: run_rows(i, *s), spans))
            if c == 4:
                out[i, ..., 3] = src[i, ..., 3]
            if progress is not None:
                progress(i + 1, n)
    finally:
        if pool is not None:
            pool.shutdown()
    return _wrap(out.reshape(shape), is_torch, images)


def _wrap(arr: np.ndarray, is_torch: bool, like):
    if not is_torch:
        return arr
    import torch

    return torch.from_numpy(arr).to(like.device)
