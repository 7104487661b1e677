"""One accuracy criterion for every low-precision path of the pack (translators, style networks, StyleGAN).

A float16/bfloat16 path of a model is used only when, on deterministic calibration frames, its output is

* **PSNR >= 50 dB** against the float32 output (images in [0, 1]), **and**
* at most **0.01 %** of the 8-bit pixels differ by **more than 2/255** (in any channel) from float32,
* and, where a family asks for it (StyleGAN), the relative L2 error stays within its limit (5e-3);

otherwise the exact float32 path runs. The verdict is measured once per model content, device and
precision, kept in memory and, across runs, in a small JSON file under the user's cache folder
(``$GAN_PACK_CACHE_DIR`` or ``$XDG_CACHE_HOME/comfyui-gan-pack`` / ``~/.cache/comfyui-gan-pack``;
``GAN_PACK_PRECISION_CACHE=0`` turns the file off). Entries are keyed by a hash of the model's weights (so a
renamed, copied or re-downloaded file is the same model, and a fine-tuned one is a new one), the device
(CPU model and flags, or GPU name), torch version, the path variant, the criterion and the calibration frames:
nothing for a user to see or manage.

:func:`calibration_frames` are procedural and deterministic -- a landscape-like smooth gradient scene, hard
edges and thin lines, and a multi-octave texture -- the kind of content real frames have; not noise.

This module also decides what a device runs natively: :func:`native_low_precision`, :func:`auto_dtypes`
(the candidates of ``precision: auto``: CUDA float16 then bfloat16; a CPU bfloat16 only with AMX-BF16;
otherwise float32) and :func:`resolve_precision` for the nodes' precision names.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
import weakref
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ["Verdict", "PSNR_MIN_DB", "MAX_FRACTION_OVER", "OVER_LEVELS", "measure", "judge",
           "calibration_frames", "calibrated_verdict", "content_hash", "cache_file", "clear_cache",
           "cpu_flags", "native_low_precision", "auto_dtypes", "resolve_precision", "dtype_name"]

# ------------------------------------------------------------------------------------------ the criterion
PSNR_MIN_DB = 50.0          # against float32, images in [0, 1]
MAX_FRACTION_OVER = 1e-4    # 0.01 % of the 8-bit pixels ...
OVER_LEVELS = 2             # ... may be off by more than 2/255
STYLEGAN_REL_ERR = 5e-3     # StyleGAN: relative L2 error of the image against float32
# bump when the calibration frames or the way verdicts are measured change (old cached verdicts then expire)
_VERSION = 1

_LOW = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class Verdict:
    """Outcome of one calibration: is ``precision`` accurate enough for this model on this device?"""

    precision: str                 # "float16" / "bfloat16"
    accepted: bool
    psnr_db: float                 # against float32 (inf = identical)
    fraction_over: float           # fraction of 8-bit pixels off by more than OVER_LEVELS/255
    max_err_255: float             # largest difference, in 1/255
    rel_err: Optional[float] = None  # relative L2 error (StyleGAN)
    source: str = "measured"       # "measured", "memory" or "disk" (where this answer came from)
    seconds: float = 0.0           # time the measurement took

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)

    def summary(self) -> str:
        psnr = "identical" if math.isinf(self.psnr_db) else f"PSNR {self.psnr_db:.1f} dB"
        rel = f", relative error {self.rel_err:.1e}" if self.rel_err is not None else ""
        return (f"{self.precision} {'accepted' if self.accepted else 'rejected'}: {psnr}, "
                f"{self.fraction_over * 100:.4f} % of pixels > {OVER_LEVELS}/255, max {self.max_err_255:.1f}/255"
                f"{rel}")


def dtype_name(dtype: Optional[torch.dtype]) -> str:
    return {torch.float16: "float16", torch.bfloat16: "bfloat16"}.get(dtype, "float32")


def measure(candidate: torch.Tensor, reference: torch.Tensor, *, channel_dim: int = 1,
            value_range: Tuple[float, float] = (0.0, 1.0)) -> Tuple[float, float, float]:
    """(PSNR dB, fraction of 8-bit pixels off by more than 2/255, max error in 1/255) of ``candidate``
    against ``reference`` (same shape; images with values in ``value_range``, clamped to it). A pixel is
    the set of values along ``channel_dim``; it counts as off when any of its channels is."""
    if candidate.shape != reference.shape:
        raise ValueError(f"shapes differ: {tuple(candidate.shape)} vs {tuple(reference.shape)}")
    lo, hi = value_range
    a = ((candidate.detach().float().cpu() - lo) / (hi - lo)).clamp_(0, 1)
    b = ((reference.detach().float().cpu() - lo) / (hi - lo)).clamp_(0, 1)
    diff = a - b
    mse = float(diff.double().square().mean()) if diff.numel() else 0.0
    psnr = math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)
    over = ((a * 255).round() - (b * 255).round()).abs() > OVER_LEVELS
    if over.dim() > 1:
        over = over.any(dim=channel_dim)
    frac = float(over.float().mean()) if over.numel() else 0.0
    max_err = float(diff.abs().max()) * 255 if diff.numel() else 0.0
    return psnr, frac, max_err


def judge(candidate: torch.Tensor, reference: torch.Tensor, precision: str, *, channel_dim: int = 1,
          value_range: Tuple[float, float] = (0.0, 1.0), rel_err_limit: Optional[float] = None) -> Verdict:
    """The criterion (module docstring) applied to one candidate/reference pair."""
    psnr, frac, max_err = measure(candidate, reference, channel_dim=channel_dim, value_range=value_range)
    rel = None
    ok = psnr >= PSNR_MIN_DB and frac <= MAX_FRACTION_OVER
    if rel_err_limit is not None:
        d = (candidate.detach().double().cpu() - reference.detach().double().cpu()).norm()
        r = reference.detach().double().cpu().norm()
        rel = float(d / r) if float(r) > 0 else (0.0 if float(d) == 0 else math.inf)
        ok = ok and rel <= rel_err_limit
    if not all(math.isfinite(v) for v in (frac, max_err)) or math.isnan(psnr):
        ok = False   # a low-precision overflow (inf/NaN) is never accepted
    return Verdict(precision=precision, accepted=bool(ok), psnr_db=psnr, fraction_over=frac,
                   max_err_255=max_err, rel_err=rel)


# ------------------------------------------------------------------------------------------ calibration frames
def _grid(side: int) -> Tuple[torch.Tensor, torch.Tensor]:
    t = (torch.arange(side, dtype=torch.float64) + 0.5) / side
    return torch.meshgrid(t, t, indexing="ij")   # y, x in (0, 1)


def _smoothstep(e0: float, e1: float, x: torch.Tensor) -> torch.Tensor:
    t = ((x - e0) / (e1 - e0)).clamp(0, 1)
    return t * t * (3 - 2 * t)


def _scene(side: int) -> torch.Tensor:
    """Landscape-like: a sky gradient, a soft sun, two layers of rolling hills, a lake with a soft shore."""
    y, x = _grid(side)
    sky = torch.stack([0.35 + 0.45 * y, 0.55 + 0.35 * y, 0.95 - 0.15 * y])
    sun = _smoothstep(0.11, 0.08, torch.hypot(x - 0.72, y - 0.22))
    img = sky + sun * torch.tensor([0.6, 0.45, 0.1], dtype=torch.float64)[:, None, None]
    for base, amp, freq, phase, colour in ((0.55, 0.06, 5.0, 0.3, (0.30, 0.45, 0.25)),
                                           (0.68, 0.05, 9.0, 1.7, (0.20, 0.33, 0.12))):
        ridge = base + amp * torch.sin(2 * math.pi * freq * x / 3 + phase) + 0.02 * torch.sin(23 * x)
        hill = _smoothstep(-0.004, 0.004, y - ridge)
        shade = 0.75 + 0.25 * (1 - (y - ridge).clamp(0, 0.3) / 0.3)
        col = torch.tensor(colour, dtype=torch.float64)[:, None, None] * shade
        img = img * (1 - hill) + col * hill
    lake = _smoothstep(0.015, -0.015, torch.hypot((x - 0.35) / 1.6, y - 0.9) - 0.12)
    water = torch.stack([0.2 + 0.1 * x, 0.35 + 0.1 * x, 0.55 + 0.05 * torch.sin(60 * y)])
    return img * (1 - lake) + water * lake


def _edges(side: int) -> torch.Tensor:
    """Hard edges: a checkerboard strip, filled shapes, thin and thick lines, fine stripes, on a grey gradient."""
    y, x = _grid(side)
    px = 1.0 / side
    img = (0.45 + 0.1 * x).expand(3, -1, -1).clone()

    def paint(mask, colour):
        nonlocal img
        col = torch.tensor(colour, dtype=torch.float64)[:, None, None]
        img = torch.where(mask[None], col, img)

    paint(y < 0.18, (0.95, 0.95, 0.95))
    paint((y < 0.18) & (((x * 8).floor() + (y * 8).floor()) % 2 == 0), (0.05, 0.05, 0.05))
    paint((x - 0.3).abs().maximum((y - 0.42).abs()) < 0.12, (0.85, 0.15, 0.1))      # square
    paint(torch.hypot(x - 0.7, y - 0.45) < 0.14, (0.1, 0.3, 0.85))                  # disc
    paint(((x - 0.5) - (y - 0.7)).abs() < 0.015, (0.0, 0.0, 0.0))                  # diagonal
    paint((y - 0.8).abs() < px, (1.0, 1.0, 1.0))                                   # 1-pixel line
    paint(((x - 0.15).abs() < 1.5 * px) & (y > 0.55), (0.9, 0.85, 0.1))           # thin vertical
    paint((y > 0.86) & (((x * side).floor() // 3) % 2 == 0), (0.15, 0.6, 0.2))    # fine stripes
    ring = torch.hypot(x - 0.72, y - 0.72)
    paint((ring > 0.07) & (ring < 0.09), (0.95, 0.6, 0.0))                          # ring
    return img


def _texture(side: int) -> torch.Tensor:
    """Multi-octave value noise (foliage/stone-like) coloured through a palette, plus a woven fabric patch."""
    g = torch.Generator().manual_seed(20261204)
    acc = torch.zeros(1, 1, side, side, dtype=torch.float64)
    amp, total = 1.0, 0.0
    for cells in (4, 8, 16, 32, 64):
        grid = torch.rand(1, 1, cells + 3, cells + 3, generator=g, dtype=torch.float64)
        up = F.interpolate(grid, size=(side + side * 3 // cells,) * 2, mode="bicubic", align_corners=False)
        acc += amp * up[..., :side, :side]
        total += amp
        amp *= 0.55
    n = (acc[0, 0] / total - 0.5) * 2.2 + 0.5
    y, x = _grid(side)
    img = torch.stack([0.25 + 0.5 * n, 0.3 + 0.55 * n * n, 0.15 + 0.3 * (1 - n)])
    weave = 0.5 + 0.25 * torch.sin(2 * math.pi * x * side / 6) * torch.sign(torch.sin(2 * math.pi * y * side / 12))
    patch = ((x > 0.6) & (y > 0.6))[None]
    fabric = torch.stack([weave * 0.8, weave * 0.5, weave * 0.6])
    return torch.where(patch, fabric, img)


_FRAMES_CACHE: Dict[Tuple[int, int], torch.Tensor] = {}


def calibration_frames(channels: int = 3, side: int = 256) -> torch.Tensor:
    """Deterministic calibration frames ``[3, channels, side, side]`` in [0, 1] (float32, CPU): a smooth
    landscape-like scene, hard edges and lines, a natural texture (see module docstring). One channel =
    luma; four = RGB plus an opaque alpha gradient."""
    key = (int(channels), int(side))
    if key not in _FRAMES_CACHE:
        rgb = torch.stack([_scene(side), _edges(side), _texture(side)]).clamp(0, 1)
        if channels == 1:
            out = (0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])
        elif channels == 3:
            out = rgb
        else:
            extra = [(0.299 * rgb[:, 0:1] + 0.587 * rgb[:, 1:2] + 0.114 * rgb[:, 2:3])] * max(0, channels - 3)
            out = torch.cat([rgb] + extra, dim=1)[:, :channels]
        _FRAMES_CACHE[key] = out.float().contiguous()
    return _FRAMES_CACHE[key].clone()


# ------------------------------------------------------------------------------------------ device support
def cpu_flags() -> frozenset:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    """The CPU's model name (part of the verdict cache key; printed by the benchmark)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def native_low_precision(device, dtype: Optional[torch.dtype]) -> bool:
    """True when ``device`` computes ``dtype`` (float16/bfloat16) convolutions natively (fast)."""
    device = torch.device(device)
    if dtype not in _LOW:
        return False
    if device.type == "cuda":
        return dtype == torch.float16 or torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        flags = cpu_flags()
        if dtype == torch.bfloat16:
            return bool({"avx512_bf16", "amx_bf16"} & flags)
        return "amx_fp16" in flags
    return False


def auto_dtypes(device) -> List[torch.dtype]:
    """Low precisions ``precision: auto`` tries, in order, where ``device`` runs them at full speed: CUDA
    float16 (the more precise half type) then bfloat16; a CPU only with AMX-BF16 (AVX512-BF16 alone gains
    too little over float32 to give up bit-exactness by default). Empty: float32."""
    device = torch.device(device)
    if device.type == "cuda":
        return [torch.float16] + ([torch.bfloat16] if torch.cuda.is_bf16_supported() else [])
    if device.type == "cpu" and "amx_bf16" in cpu_flags():
        return [torch.bfloat16]
    return []


def resolve_precision(name: str, device) -> Optional[torch.dtype]:
    """A node's precision name -> the dtype to request (None = float32). ``auto`` -> the first of
    :func:`auto_dtypes` (the calibration still decides whether it runs)."""
    name = (name or "auto").lower()
    if name in ("float32", "fp32"):
        return None
    if name in ("bfloat16", "bf16"):
        return torch.bfloat16
    if name in ("float16", "fp16", "half"):
        return torch.float16
    if name != "auto":
        raise ValueError(f"unknown precision {name!r} (auto, float32, bfloat16 or float16)")
    cands = auto_dtypes(device)
    return cands[0] if cands else None


def device_description(device) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        idx = device.index if device.index is not None else torch.cuda.current_device()
        cap = torch.cuda.get_device_capability(idx)
        return f"cuda:{torch.cuda.get_device_name(idx)}:sm{cap[0]}{cap[1]}"
    if device.type == "cpu":
        flags = cpu_flags()
        feats = ",".join(f for f in ("avx512_bf16", "amx_bf16", "amx_fp16") if f in flags)
        return f"cpu:{cpu_model()}:{feats}:threads{torch.get_num_threads()}"
    return device.type


# ------------------------------------------------------------------------------------------ verdict cache
_LOCK = threading.Lock()
_MEMORY: "weakref.WeakKeyDictionary[torch.nn.Module, Dict[Tuple[str, tuple], Verdict]]" = weakref.WeakKeyDictionary()
_MAX_FILE_ENTRIES = 512


def _versions(module: torch.nn.Module) -> tuple:
    out = []
    for t in list(module.parameters()) + list(module.buffers()):
        try:
            v = t._version
        except RuntimeError:
            v = -1
        out.append((t.data_ptr(), v))
    return tuple(out)


def content_hash(module: torch.nn.Module) -> str:
    """SHA-1 of the module's state (names, shapes, dtypes and bytes of every parameter and buffer)."""
    h = hashlib.sha1()
    for name, t in module.state_dict().items():
        if not isinstance(t, torch.Tensor):
            continue
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        if t.numel():
            if t.dtype in (torch.bfloat16, torch.float16):
                t = t.view(torch.int16)
            h.update(t.numpy().tobytes())
    return h.hexdigest()


def cache_file() -> Optional[Path]:
    """The persistent verdict file, or None when disabled (``GAN_PACK_PRECISION_CACHE=0``)."""
    if os.environ.get("GAN_PACK_PRECISION_CACHE", "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    base = os.environ.get("GAN_PACK_CACHE_DIR")
    if base:
        root = Path(base)
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "comfyui-gan-pack"
    return root / "precision-verdicts.json"


def _read_file(path: Path) -> Dict[str, dict]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_entry(path: Path, key: str, verdict: Verdict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = _read_file(path)   # merge: other processes may have added entries
        entry = verdict.as_dict()
        entry.pop("source", None)
        entry["stored"] = time.time()
        data[key] = entry
        if len(data) > _MAX_FILE_ENTRIES:   # drop the oldest
            for k in sorted(data, key=lambda k: data[k].get("stored", 0))[:len(data) - _MAX_FILE_ENTRIES]:
                data.pop(k, None)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data, indent=0, sort_keys=True))
        os.replace(tmp, path)
    except OSError:
        pass   # a read-only home: the verdict stays in memory only


def _file_key(parts: Dict[str, object], content: str) -> str:
    full = dict(parts, content=content, torch=torch.__version__, version=_VERSION,
                criterion=[PSNR_MIN_DB, MAX_FRACTION_OVER, OVER_LEVELS])
    return hashlib.sha1(json.dumps(full, sort_keys=True, default=str).encode()).hexdigest()


def calibrated_verdict(module: torch.nn.Module, key: Dict[str, object], compute: Callable[[], Verdict]) -> Verdict:
    """The verdict for ``module`` under ``key`` (a JSON-able dict naming family, device, precision and path
    variant): from memory (same module, weights unchanged), else from the cache file (same weights, by
    content hash), else ``compute()`` -- measured once and stored in both."""
    mem_key = (json.dumps(key, sort_keys=True, default=str), (PSNR_MIN_DB, MAX_FRACTION_OVER, OVER_LEVELS),
               _versions(module))
    with _LOCK:
        hit = _MEMORY.get(module, {}).get(mem_key)
    if hit is not None:
        return replace(hit, source="memory")
    path = cache_file()
    fkey = _file_key(key, content_hash(module)) if path is not None else None
    verdict = None
    if path is not None:
        entry = _read_file(path).get(fkey)
        if isinstance(entry, dict):
            try:
                entry = {k: v for k, v in entry.items() if k in Verdict.__dataclass_fields__}
                verdict = replace(Verdict(**entry), source="disk")
            except TypeError:
                verdict = None
    if verdict is None:
        t0 = time.perf_counter()
        verdict = replace(compute(), source="measured")
        verdict = replace(verdict, seconds=time.perf_counter() - t0)
        if path is not None:
            _write_entry(path, fkey, verdict)
    with _LOCK:
        per = _MEMORY.setdefault(module, {})
        if len(per) > 16:
            per.clear()
        per[mem_key] = verdict
    return verdict


def clear_cache(*, disk: bool = False) -> None:
    """Forget in-memory verdicts (and, with ``disk=True``, the cache file)."""
    with _LOCK:
        _MEMORY.clear()
    if disk:
        path = cache_file()
        if path is not None:
            try:
                path.unlink()
            except OSError:
                pass
