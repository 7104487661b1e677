"""The plan of one ``translate`` call: computed once, printable, testable; :mod:`.infer` executes it.

:func:`plan_translation` decides everything that does not depend on pixel values -- padding, whole frame or
tiles (tile size, overlap per pass), the passes over the tiles (statistics passes, stored activations, flat
residual blocks, U-Net strips), the precision that really runs (after calibration, :mod:`.speed`), the device,
the number of progress steps and an estimate of the peak memory -- and returns a :class:`TranslationPlan`.
``str(plan)`` is the one-line report the node shows ("what actually ran"); ``plan.as_dict()`` the details.

Tiled ResNets: passes over tiles collect each normalisation layer's whole-frame statistics, stopping at the
layer; small activations (the bottleneck, ``_CHECKPOINT_ELEMENTS_PER_PIXEL``) are kept frame-sized in host
memory so later passes start from them; residual blocks on a kept activation run flat (:mod:`.flat`): every
convolution output computed once, statistics summed as it is produced. A 9-block generator then costs about
1.1 forwards of convolution work instead of ~2.5.
"""
from __future__ import annotations

import contextlib
import math
import weakref
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from .base import Translator

def _round_up(v: int, m: int) -> int:
    return -(-int(v) // m) * m


def _pad_frame(x: torch.Tensor, ph: int, pw: int) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Pad NCHW ``x`` to ``ph x pw`` (centred); reflection where possible, edge replication otherwise."""
    h, w = x.shape[-2:]
    top, left = (ph - h) // 2, (pw - w) // 2
    bottom, right = ph - h - top, pw - w - left
    if top == bottom == left == right == 0:
        return x, (0, 0)
    if max(top, bottom) < h and max(left, right) < w:
        return F.pad(x, (left, right, top, bottom), mode="reflect"), (top, left)
    return F.pad(x, (left, right, top, bottom), mode="replicate"), (top, left)


class _Axis:
    """Tile layout along one axis: starts, owned segments [b0, b1) and blend weights."""

    def __init__(self, length: int, tile: int, overlap: int, multiple: int, hard: bool = False):
        if length <= tile:
            self.starts, self.size = [0], length
            self.bounds = [0, length]
            self.ramps = [0.0, 0.0]
            return
        step = max(multiple, tile - overlap)
        n = math.ceil((length - tile) / step) + 1
        # the n tiles shrink to what covers the axis with the requested overlap: a 1080-row frame in 512-row
        # tiles is 3 tiles of 376 rows, not 3 of 512 overlapping by 200 (42 % more work than the frame)
        tile = min(tile, max(2 * multiple, -(-(-(-(length + (n - 1) * overlap) // n)) // multiple) * multiple))
        if tile >= length:   # pragma: no cover - n >= 2 tiles of at most the length each
            tile = length
        self.size = tile
        starts = sorted({int(round((length - tile) * i / (n - 1) / multiple)) * multiple for i in range(n)})
        self.starts = starts
        bounds, ramps = [0], [0.0]
        for a, b in zip(starts, starts[1:]):
            end_a = a + tile
            # owned segments meet mid-overlap; tile starts are multiples of the architecture's multiple, so
            # every feature scale splits a boundary the same way from both sides (see FrameContext)
            mid = (b + end_a) // 2
            bounds.append(mid)
            # hard: no ramp (each pixel from the one tile owning it); for passes whose overlap covers twice
            # their receptive radius plus a feature pixel, so both sides of every cut are exact
            ramps.append(0.0 if hard else max(0.0, min((end_a - b) / 4.0, mid - b, end_a - mid)))
        bounds.append(length)
        ramps.append(0.0)
        # neighbouring ramps must not overlap, or the weights would no longer sum to one
        for i in range(1, len(bounds) - 1):
            ramps[i] = min(ramps[i], (bounds[i] - bounds[i - 1]) / 2.0, (bounds[i + 1] - bounds[i]) / 2.0)
        self.bounds, self.ramps = bounds, ramps

    def __len__(self) -> int:
        return len(self.starts)

    def weights(self, i: int, samples: Optional[int] = None) -> torch.Tensor:
        """Blend weights of tile ``i`` at ``samples`` evenly spaced positions (default: one per pixel)."""
        s = self.starts[i]
        samples = samples or self.size
        p = s + (torch.arange(samples, dtype=torch.float64) + 0.5) * (self.size / samples)
        w = torch.ones_like(p)
        lo, hi = self.bounds[i], self.bounds[i + 1]
        r_lo, r_hi = self.ramps[i], self.ramps[i + 1]
        if i > 0:
            w *= ((p - (lo - r_lo)) / (2 * r_lo)).clamp(0, 1) if r_lo > 0 else (p >= lo).double()
        if i < len(self.starts) - 1:
            w *= (((hi + r_hi) - p) / (2 * r_hi)).clamp(0, 1) if r_hi > 0 else (p < hi).double()
        return w.float()

    def owned(self, i: int) -> Tuple[int, int]:
        s = self.starts[i]
        return self.bounds[i] - s, self.bounds[i + 1] - s


# elements per input pixel up to which an intermediate activation is kept frame-sized (on the images'
# device) so later statistics passes start from it instead of from the input; e.g. a ResNet bottleneck
# (4 ngf channels at 1/4 resolution) is 16 per pixel for ngf=64
_CHECKPOINT_ELEMENTS_PER_PIXEL = 16


def _stages(translator: Translator) -> List[torch.nn.Module]:
    fn = getattr(translator, "frame_stages", None)
    return list(fn()) if callable(fn) else [translator]


def _probe_run(translator: Translator, stages: Sequence[torch.nn.Module], size: int, device
           ) -> List[Tuple[int, float, bool]]:
    """(channels, scale, proportional) of every stage's output, from tiny plain forwards at two sizes: scale =
    input side / feature side; proportional = the output so far is a pure rescaling of the input (False after
    a padding layer, whose output is a few pixels larger whatever the input: no place to store an activation
    for later tile passes, whose tile geometry assumes a pure scale)."""
    size = max(16, int(size))
    sides = []
    with torch.inference_mode():
        for s in (size, 2 * size):
            h = torch.zeros((1, translator.input_nc, s, s), device=device)
            out = []
            for st in stages:
                h = st(h)
                out.append((int(h.shape[1]), int(h.shape[-2])))
            sides.append(out)
    return [(c, size / float(a), b == 2 * a) for (c, a), (_, b) in zip(*sides)]


_PROBES: "weakref.WeakKeyDictionary[torch.nn.Module, Dict[int, list]]" = weakref.WeakKeyDictionary()


def _probe(translator: Translator, stages: Sequence[torch.nn.Module], size: int, device
           ) -> List[Tuple[int, float, bool]]:
    """:func:`_probe_run` once per network and size (a render plans every frame; the two tiny forwards cost
    a kernel set-up per shape on some backends)."""
    per = _PROBES.setdefault(translator, {})
    key = (int(size), len(stages))
    if key not in per:
        per[key] = _probe_run(translator, stages, size, device)
    return per[key]


def _plan(stat_counts: Sequence[int], shapes: Sequence[Tuple[int, float, bool]],
          flat: Optional[Sequence[bool]] = None) -> List[Tuple[str, int, int]]:
    """Passes over the tiles: ("collect", first, last) stops at the next unknown statistics layer,
    ("advance", first, last) stores the output of stages[first:last] frame-sized, ("block", j, j + 1) runs
    the residual block stages[j] flat on the stored activation (``flat[j]``: it can), ("final", first, end)."""
    flat = list(flat) if flat is not None else [False] * len(stat_counts)

    def storable(i: int) -> bool:   # the input of stage i (output of stage i - 1) may be kept frame-sized
        c, scale, proportional = shapes[i - 1]
        return proportional and c / (scale * scale) <= _CHECKPOINT_ELEMENTS_PER_PIXEL

    plan: List[Tuple[str, int, int]] = []
    cur, end = 0, len(stat_counts)
    for j, count in enumerate(stat_counts):
        if j < cur:
            continue
        if flat[j] and j > 0 and (j == cur or storable(j)):
            if j > cur:
                plan.append(("advance", cur, j))
            plan.append(("block", j, j + 1))
            cur = j + 1
            continue
        if not count:
            continue
        best = cur
        for i in range(cur + 1, j + 1):
            if storable(i):
                best = i
        if best > cur:
            plan.append(("advance", cur, best))
            cur = best
        plan += [("collect", cur, j + 1)] * count   # a collect pass stops inside stage j
    plan.append(("final", cur, end))
    return plan


def _stages_radius(stages: Sequence[torch.nn.Module], scale: float) -> float:
    """Receptive radius, in input pixels of the frame, of ``stages`` run on an activation whose pixels are
    ``scale`` frame pixels wide: each convolution adds half its extent at the scale it runs at, strides and
    poolings coarsen the scale, transposed convolutions and upsampling refine it (layers in module order,
    which is execution order for this pack's architectures)."""
    r = 0.0
    for st in stages:
        for m in st.modules():
            if isinstance(m, torch.nn.Conv2d):
                r += math.ceil(m.dilation[0] * (m.kernel_size[0] - 1) / 2) * scale
                scale *= m.stride[0]
            elif isinstance(m, torch.nn.ConvTranspose2d):
                scale /= m.stride[0]
                r += math.ceil(m.dilation[0] * (m.kernel_size[0] - 1) / 2) * scale
            elif isinstance(m, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
                k = m.kernel_size if isinstance(m.kernel_size, int) else m.kernel_size[0]
                st_ = m.stride if isinstance(m.stride, int) else m.stride[0]
                r += (k - 1) / 2 * scale
                scale *= st_ or k
            elif isinstance(m, torch.nn.Upsample):
                f = m.scale_factor if not isinstance(m.scale_factor, tuple) else m.scale_factor[0]
                scale /= float(f or 1)
    return r


def auto_tile_overlap(translator: Translator, tile_size: int) -> int:
    """Overlap used for ``tile_overlap=0``: twice the receptive radius (capped at half the tile), rounded up
    to the architecture's multiple. When the receptive field is wider than the tile anyway (U-Nets, whose
    innermost layer sees everything), a quarter of the tile: the far context contributes little."""
    m = int(getattr(translator, "size_multiple", 1) or 1)
    radius = int(getattr(translator, "receptive_radius", 32))
    if 2 * radius > tile_size:
        return max(m, _round_up(tile_size // 4, m))
    return min(_round_up(2 * radius, m), max(m, _round_up(tile_size // 2, m)))



def activation_bytes_per_pixel(translator: Translator, dtype: Optional[torch.dtype] = None) -> float:
    """Rough peak activation memory of one forward, in bytes per input pixel per image (with a safety margin).

    ResNets peak at full resolution (input, ``ngf``-channel conv output and its normalised copy); U-Nets also
    keep every skip connection alive, about ``4 * ngf`` values per pixel. Architectures may override with an
    ``activation_elements_per_pixel`` attribute.
    """
    per = getattr(translator, "activation_elements_per_pixel", None)
    if per is None:
        ngf = int(getattr(translator, "ngf", 64) or 64)
        per = (4 if getattr(translator, "arch", "") == "unet" else 3) * ngf + translator.input_nc
    size = 2 if dtype in (torch.float16, torch.bfloat16) else 4
    return float(per) * size * 1.5


def auto_tile_size(translator: Translator, height: int, width: int, *, free_bytes: int, batch_size: int = 1,
                   dtype: Optional[torch.dtype] = None) -> int:
    """Tile size for ``translate(tile_size=...)`` that fits half of ``free_bytes`` of device memory: 0 (no
    tiling) when the whole ``batch_size`` x ``height`` x ``width`` batch fits, else the largest square tile
    (a multiple of the architecture's multiple, at least two of them) whose estimate fits."""
    m = int(getattr(translator, "size_multiple", 1) or 1)
    per_px = activation_bytes_per_pixel(translator, dtype) * max(1, int(batch_size))
    budget = max(0.0, float(free_bytes) * 0.5)
    ph, pw = _round_up(height, m), _round_up(width, m)
    if ph * pw * per_px <= budget:
        return 0
    side = int(math.sqrt(budget / per_px)) // m * m
    floor = max(2 * m, _round_up(int(getattr(translator, "min_size", m) or m), m))
    return max(side, floor)


def _device_of(module: torch.nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None or dtype == torch.float32:
        return contextlib.nullcontext()
    if dtype not in (torch.float16, torch.bfloat16):
        raise ValueError(f"dtype must be None, torch.float32, torch.float16 or torch.bfloat16 (got {dtype})")
    return torch.autocast(device_type=device.type, dtype=dtype)


def available_memory(device) -> int:
    """Bytes a translation may use on ``device`` now: CUDA's free memory (driver) plus what torch has cached;
    on the CPU the system's available memory (``MemAvailable``: free plus reclaimable caches)."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        stats = torch.cuda.memory_stats(device)
        return int(free + stats.get("reserved_bytes.all.current", 0) - stats.get("active_bytes.all.current", 0))
    try:
        import psutil  # noqa: PLC0415 - optional
        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil missing: read /proc/meminfo
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30


_DTYPE_NAMES = {None: "float32", torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"}


def dtype_name(dtype: Optional[torch.dtype]) -> str:
    return _DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", ""))


def _mb(b: float) -> str:
    return f"{b / 2 ** 30:.1f} GB" if b >= 2 ** 30 else f"{b / 2 ** 20:.0f} MB"


@dataclass
class PlanPass:
    """One pass over the frame: ``kind`` "whole" (one forward), "collect" (a statistics pass stopping at a
    normalisation layer), "advance" (stores the output of ``stages[first:last]`` frame-sized), "block" (a
    residual block run flat on the stored activation), "final" (the rest of the network, blended output) or
    "stream" (a U-Net strip pass). ``steps``: progress steps per batch chunk (tile forwards, strips or, for a
    whole frame, convolutions); ``overlap``: its tile overlap in input pixels."""

    kind: str
    first: int
    last: int
    steps: int
    overlap: int = 0
    axes: Any = field(default=None, repr=False, compare=False)


@dataclass
class TranslationPlan:
    """What one ``translate`` call will do (see the module docstring). Sizes are ``height x width`` pixels."""

    frames: int
    height: int
    width: int
    work_size: Tuple[int, int]
    padded: Tuple[int, int]
    layout: str                       # "whole frame" | "tiles" | "strips"
    tile: int                         # 0 = whole frame
    overlap: int                      # the tiles' overlap (largest pass)
    tiles: Tuple[int, int]            # tile rows x columns per frame (1 x 1 untiled)
    passes: List[PlanPass]
    batch_size: int
    chunks: int
    mode: str
    device: torch.device
    requested_dtype: Optional[torch.dtype]
    dtype: Optional[torch.dtype]      # the precision that runs (None = float32)
    steps: int                        # progress steps of the whole call
    peak_bytes: int                   # estimated peak memory of the device running the network
    host_bytes: int                   # estimated frame-sized tensors kept in host memory (tiled runs)
    arch: str = ""
    notes: List[str] = field(default_factory=list)   # requested settings that do not apply, and why
    # execution details (not part of the report)
    net: Any = field(default=None, repr=False, compare=False)
    stages: Any = field(default=None, repr=False, compare=False)
    levels: Any = field(default=None, repr=False, compare=False)
    use_cl: bool = field(default=False, repr=False, compare=False)
    strip_rows: int = field(default=0, repr=False, compare=False)
    resize: bool = field(default=False, repr=False, compare=False)
    input_nc: int = field(default=3, repr=False, compare=False)
    conv_steps: int = field(default=1, repr=False, compare=False)

    @property
    def precision(self) -> str:
        return dtype_name(self.dtype)

    @property
    def tiled(self) -> bool:
        return self.layout != "whole frame"

    def layout_text(self) -> str:
        if self.layout == "whole frame":
            return "whole frame"
        if self.layout == "strips":
            return f"exact U-Net row strips of ~{self.tile}x{self.tile} px"
        kinds = [p.kind for p in self.passes]
        n_tiles = self.tiles[0] * self.tiles[1]
        text = (f"{n_tiles} tiles ({self.tiles[0]}x{self.tiles[1]}) of at most {self.tile} px, overlap up to "
                f"{self.overlap} px")
        extra = []
        if kinds.count("collect"):
            extra.append(f"{kinds.count('collect')} statistics passes")
        if kinds.count("block"):
            extra.append(f"{kinds.count('block')} residual blocks run flat")
        return text + (", " + ", ".join(extra) if extra else "")

    def __str__(self) -> str:
        n = f" x{self.frames}" if self.frames > 1 else ""
        req = ""
        if self.requested_dtype not in (None, torch.float32) and self.requested_dtype != self.dtype:
            req = f" ({dtype_name(self.requested_dtype)} requested)"
        mem = f"est. peak {_mb(self.peak_bytes)}"
        if self.tiled and self.host_bytes:
            mem += f" + {_mb(self.host_bytes)} kept in host memory"
        return (f"{self.width}x{self.height}{n}: {self.layout_text()}; {self.precision}{req} on {self.device}; "
                f"{self.mode} mode; {mem}")

    def as_dict(self) -> Dict[str, Any]:
        return {"frames": self.frames, "size": [self.width, self.height], "padded": list(self.padded[::-1]),
                "layout": self.layout, "tile": self.tile, "overlap": self.overlap, "tiles": list(self.tiles),
                "passes": [(p.kind, p.first, p.last, p.steps, p.overlap) for p in self.passes],
                "batch_size": self.batch_size, "chunks": self.chunks, "mode": self.mode,
                "device": str(self.device), "precision": self.precision,
                "requested_precision": dtype_name(self.requested_dtype), "steps": self.steps,
                "peak_bytes": self.peak_bytes, "host_bytes": self.host_bytes, "notes": list(self.notes)}


_MODES = ("eval", "reference")
_CONV_TYPES = (torch.nn.Conv2d, torch.nn.ConvTranspose2d)


def plan_translation(translator: Translator, shape: Sequence[int], *, tile_size: int = 0, tile_overlap: int = 0,
                     mode: str = "eval", resize_to_train_size: bool = False, batch_size: int = 4, device=None,
                     dtype: Optional[torch.dtype] = None) -> TranslationPlan:
    """The :class:`TranslationPlan` of ``translate(translator, images, ...)`` for images of ``shape``
    ``[N, H, W, C]`` (same keywords; ``tile_size`` 0 = whole frame). Prepares the inference copy (and the
    precision calibration) on ``device``; moves ``translator`` there when ``device`` is given."""
    from .layers import FrameContext, frame_context, frame_stat_layers
    from .speed import inference_copy
    from .stream import stream_passes, unet_levels

    if len(shape) == 3:
        shape = (1, *shape)
    n, h, w = int(shape[0]), int(shape[1]), int(shape[2])
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES} (got {mode!r})")
    batch_size = max(1, int(batch_size))
    if device is not None:
        device = torch.device(device)
        if _device_of(translator) != device:
            translator.to(device)
    device = _device_of(translator)
    _autocast(device, dtype)  # validates dtype early
    translator.eval()
    # a cached inference copy ``net`` (models/translator/speed.py): BatchNorm folded in eval mode,
    # channels_last weights, native low-precision conv weights when calibrated accurate enough; ``use_cl``:
    # feed channels_last input; ``amp``: the dtype the copy really runs (None = float32)
    net, use_cl, amp = inference_copy(translator, device, dtype, mode)
    notes: List[str] = []
    if dtype not in (None, torch.float32) and amp != dtype:
        from .speed import effective_precision
        notes.append(f"{dtype_name(dtype)} requested but ran float32: "
                     f"{effective_precision(translator, device, dtype, mode)['reason']}")

    m = int(getattr(translator, "size_multiple", 1) or 1)
    min_size = _round_up(max(int(getattr(translator, "min_size", m) or m), m), m)
    if resize_to_train_size:
        ts = int(translator.train_size or 256)
        fh = fw = ts
    else:
        fh, fw = h, w
    ph, pw = max(_round_up(fh, m), min_size), max(_round_up(fw, m), min_size)
    tiled = bool(tile_size and tile_size > 0 and (ph > tile_size or pw > tile_size))
    tile, overlap = 0, 0
    if tiled:
        # at least two multiples, so neighbouring tiles can overlap (a U-Net-256 tiles in 512s)
        tile = max(_round_up(int(tile_size), m), min_size, 2 * m)
        overlap = int(tile_overlap) if tile_overlap and tile_overlap > 0 else auto_tile_overlap(translator, tile)
        # at most three quarters of the tile: tiles then advance by at least a quarter tile, so an overlap near
        # the tile size cannot multiply the tile count (a 200 px frame in 64 px tiles with a 2048 px overlap
        # would otherwise advance 4 px at a time: 1,156 tiles instead of at most 100)
        overlap = min(overlap, max(m, (tile * 3 // 4) // m * m))
        ay, ax = _Axis(ph, tile, overlap, m), _Axis(pw, tile, overlap, m)
    else:
        if tile_size and tile_size > 0:
            notes.append(f"tile_size {tile_size}: the {fw}x{fh} frame fits in one tile (whole frame)")
        ay, ax = _Axis(ph, ph, 0, m), _Axis(pw, pw, 0, m)
    staged = len(ay) * len(ax) > 1
    bs = min(batch_size, n) if n else batch_size
    chunks = math.ceil(n / batch_size) if n else 0

    stages = _stages(net)
    levels = unet_levels(net) if staged else None
    with frame_context(net, FrameContext(mode=mode)):
        stat_counts = [frame_stat_layers(st) for st in stages]
        stream_steps = stream_passes(levels) if levels else 0
    per_px = activation_bytes_per_pixel(translator, amp)
    passes: List[PlanPass] = []
    host = 0
    strip_rows = 0
    conv_steps = max(1, sum(1 for mod in net.modules() if isinstance(mod, _CONV_TYPES)))
    if not staged:
        layout = "whole frame"
        passes.append(PlanPass("whole", 0, len(stages), conv_steps))
        peak = int(ph * pw * per_px * bs)
    elif levels:
        layout = "strips"
        passes = [PlanPass("stream", 0, 0, 1) for _ in range(stream_steps)]
        peak = int(2 * tile * tile * per_px * bs)
        host = int(ph * pw * bs * 4 * (2 * translator.input_nc + 2 * int(getattr(translator, "ngf", 64) or 64)))
    else:
        from .flat import block_segments, flat_strips

        layout = "tiles"
        flat = [block_segments(st) is not None for st in stages]
        if sum(stat_counts) or any(flat):
            shapes = _probe(net, stages, min_size, device)
            steps_plan = _plan(stat_counts, shapes, flat)
        else:
            shapes, steps_plan = None, [("final", 0, len(stages))]
        kept = 0.0
        for kind, first, last in steps_plan:
            if kind == "block":
                c, scale, _ = shapes[first - 1]
                hb = int(round(ph / scale))
                wb = int(round(pw / scale))
                # a strip holds about as many values as a tile's first full-resolution activation
                ngf = int(getattr(translator, "ngf", 0) or max(1, c // 4))
                strip_rows = max(4, int(tile * tile * ngf / max(1, c) / max(1, wb)))
                per_conv = len(flat_strips(hb, strip_rows))
                passes.append(PlanPass("block", first, last, per_conv * len(block_segments(stages[first])[0])))
                kept = max(kept, 2 * c / (scale * scale))
                continue
            pay, pax = ay, ax
            if shapes is not None and not (tile_overlap and tile_overlap > 0):
                # automatic overlap: each pass only needs the context of the stages it runs (a pass from the
                # stored bottleneck needs a few pixels, not the whole network's radius), so its tiles overlap
                # by twice that radius -- never more than the whole-network overlap
                radius = _stages_radius(stages[first:last], shapes[first - 1][1] if first > 0 else 1.0)
                # tiles are cut (no blending ramp) mid-overlap, where each side has at least the pass's
                # radius plus one output pixel of context on both sides: exact up to round-off
                pixel = shapes[last - 1][1]
                ov = min(overlap, max(m, _round_up(int(math.ceil(2 * radius + 2 * pixel + 2)), m)))
                pay, pax = _Axis(ph, tile, ov, m, hard=True), _Axis(pw, tile, ov, m, hard=True)
            else:
                ov = overlap
            passes.append(PlanPass(kind, first, last, len(pay) * len(pax), ov, (pay, pax)))
            if kind == "advance":
                c, scale, _ = shapes[last - 1]
                kept = max(kept, c / (scale * scale))
        overlap = max([p.overlap for p in passes if p.kind != "block"] or [overlap])
        tiled_passes = [p for p in passes if p.axes is not None]
        if tiled_passes:
            ay, ax = max((p.axes for p in tiled_passes), key=lambda a: len(a[0]) * len(a[1]))
        peak = int(tile * tile * per_px * bs)
        # kept activations, the padded input frame and the blended output, float32
        host = int(ph * pw * bs * 4 * (kept + translator.input_nc + int(getattr(translator, "output_nc", 3) or 3)))
    if device.type == "cpu":
        peak += host   # the host is the device
    if not staged and tile_overlap and tile_overlap > 0 and not (tile_size and tile_size > 0):
        notes.append("tile_overlap is unused without tiles (tile_size 0)")
    steps = chunks * sum(p.steps for p in passes)
    arch = str(getattr(translator, "arch", type(translator).__name__))
    return TranslationPlan(
        frames=n, height=h, width=w, work_size=(fh, fw), padded=(ph, pw), layout=layout, tile=tile,
        overlap=overlap if staged else 0, tiles=(len(ay), len(ax)), passes=passes, batch_size=batch_size,
        chunks=chunks, mode=mode, device=device, requested_dtype=dtype, dtype=amp, steps=steps,
        peak_bytes=int(peak), host_bytes=int(host), arch=arch, notes=notes, net=net, stages=stages,
        levels=levels, use_cl=use_cl, strip_rows=strip_rows, resize=bool(resize_to_train_size),
        input_nc=int(translator.input_nc), conv_steps=conv_steps)
