"""VFX plates: reading/writing one 4K (3840x2160) half-float RGBA EXR frame and converting it with OCIO.

Baselines measured in the same run: for EXR writing and reading, the same frame as a 16-bit RGBA PNG (the pack's
deepest integer format, display-clamped); for colour conversion, OCIO's processor called once on the whole frame
in this process (what ``convert_colourspace`` adds: the copy that leaves the input untouched, row blocks over
threads). ``peak MB`` is the resident-memory high-water mark above the level before the case, i.e. what one
frame costs in the process (``--quick``: 1920x1080).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.run import Row, emit, group, peak_memory

VIEW = "sRGB - Display / ACES 2.0 - SDR 100 nits (Rec.709)"


def _frame(w: int, h: int):
    y = torch.linspace(0, 1, h)[:, None]
    x = torch.linspace(0, 1, w)[None, :]
    r = 16 * torch.exp(-((x - 0.6) ** 2 + (y - 0.3) ** 2) * 40) + x
    g = (y * 2 - 0.5 * x).expand(h, w)
    b = (torch.sin((x + y) * 40) * 0.5 + 0.5).expand(h, w)
    rgb = torch.stack([r.expand(h, w), g, b], -1).half().float()
    alpha = (x * y).expand(h, w).half().float()
    return rgb[None], alpha[None]


def _best_of(fn, repeats: int):
    best, out = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


@group("exr")
def run(args, device):
    import PyOpenColorIO as OCIO

    from models.colour import colour_processor, convert_colourspace
    from models.sequence import load_image_sequence, save_image_sequence

    w, h = (1920, 1080) if args.quick else (3840, 2160)
    repeats = 1 if args.quick else 2
    cpu = torch.device("cpu")
    rgb, alpha = _frame(w, h)
    size = f"{w}x{h}"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # baseline: 16-bit RGBA PNG of the same frame (clamped to [0, 1]: PNG cannot hold scene-linear)
        with peak_memory(cpu) as mem:
            png_w, _ = _best_of(lambda: save_image_sequence(rgb.clamp(0, 1), tmp / "png", "f_%04d.png", bit_depth=16,
                                                            alpha=alpha), repeats)
        png_mb = (tmp / "png" / "f_0001.png").stat().st_size / 2**20
        emit(Row("exr", f"write {size} PNG16 RGBA", "baseline", 1 / png_w, mem["mb"], 1.0,
                 note=f"{png_mb:.1f} MB file"))
        for comp in ("zip", "piz", "dwaa", "none"):
            with peak_memory(cpu) as mem:
                t, _ = _best_of(lambda: save_image_sequence(rgb, tmp / comp, "f.####.exr", alpha=alpha,
                                                            compression=comp), repeats)
            mb = (tmp / comp / "f.0001.exr").stat().st_size / 2**20
            emit(Row("exr", f"write {size} half RGBA {comp}", "pack", 1 / t, mem["mb"], png_w / t,
                     note=f"{mb:.1f} MB file" + (" (lossy)" if comp == "dwaa" else "")))
        with peak_memory(cpu) as mem:
            png_r, _ = _best_of(lambda: load_image_sequence(tmp / "png", "f_%04d.png", return_alpha=True), repeats)
        emit(Row("exr", f"read {size} PNG16 RGBA", "baseline", 1 / png_r, mem["mb"], 1.0,
                 note="IMAGE + MASK float32"))
        for comp in ("zip", "piz"):
            with peak_memory(cpu) as mem:
                t, (img, _, a) = _best_of(lambda: load_image_sequence(tmp / comp, "f.####.exr", return_alpha=True),
                                          repeats)
            held = (img.numel() + a.numel()) * 4 / 2**20
            exact = torch.equal(img, rgb) and torch.equal(a, alpha)
            emit(Row("exr", f"read {size} half RGBA {comp}", "pack", 1 / t, mem["mb"], png_r / t,
                     note=f"IMAGE + MASK hold {held:.0f} MB; bit-exact: {exact}"))
            del img, a
    # colour conversion: the engine against OCIO's processor called directly on the same pixels
    for target in ("sRGB - Display", VIEW):
        proc = colour_processor("ACEScg", target)
        flat = rgb[0].numpy()

        def raw():
            buf = flat.copy()
            proc.applyRGB(buf)
            return buf

        t_raw, ref = _best_of(raw, repeats)
        with peak_memory(cpu) as mem:
            t, out = _best_of(lambda: convert_colourspace(rgb, "ACEScg", target), repeats)
        err = float(np.abs(out[0].numpy() - ref).max())
        emit(Row("exr", f"OCIO ACEScg -> {target.split(' / ')[-1][:18]} {size}", "pack", 1 / t, mem["mb"],
                 t_raw / t, note=f"{os.cpu_count()} threads; max |diff| vs OCIO {err:.1e} "
                                 f"(OCIO {OCIO.__version__}, one call: {t_raw:.2f} s)"))
