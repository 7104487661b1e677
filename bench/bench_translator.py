"""Pix2Pix / CycleGAN generators: ResNet-9 (ngf 64, InstanceNorm) and U-Net-256 (ngf 64, BatchNorm)."""
from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import torch

from bench.run import Row, emit, group, peak_memory, timed

# (height, width, batches); ResNet-9 (6x the work of U-Net-256) skips 512² b4 to keep the whole benchmark
# within 10 minutes on a 2-core CPU
SIZES = [(256, 256, (1, 4)), (512, 512, (1, 4)), (1080, 1920, (1,))]
SKIP = {("resnet9", 512, 4)}


def build(arch: str):
    from models.translator.base import architecture_builder

    torch.manual_seed(0)
    if arch == "resnet9":
        net = architecture_builder("resnet")(ngf=64, n_blocks=9, norm="instance", use_dropout=False)
    else:
        net = architecture_builder("unet")(depth=8, ngf=64, norm="batch", use_dropout=True)
    # reference initialisation (normal 0, 0.02) plus non-trivial biases and BatchNorm statistics
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            torch.nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                torch.nn.init.normal_(m.bias, 0.0, 0.02)
        elif isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.normal_(m.weight, 1.0, 0.02)
            torch.nn.init.zeros_(m.bias)
            m.running_var.uniform_(0.5, 2.0)
    return net.eval()


def frames(batch: int, h: int, w: int) -> torch.Tensor:
    """A deterministic smooth test image batch, NHWC in [0, 1] (what ComfyUI passes)."""
    g = torch.Generator().manual_seed(1)
    low = torch.rand(batch, 3, max(2, h // 32), max(2, w // 32), generator=g)
    img = torch.nn.functional.interpolate(low, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return img.permute(0, 2, 3, 1).contiguous()


def padded(x: torch.Tensor, multiple: int):
    """Pad NCHW ``x`` to a multiple of the architecture's, centred, by reflection -- the same placement as
    ``translate`` (a U-Net's output depends on where the padding goes) -- and return (x, top, left)."""
    from models.translator.infer import _pad_frame

    h, w = x.shape[-2:]
    x, (top, left) = _pad_frame(x, h + (-h) % multiple, w + (-w) % multiple)
    return x, top, left


def eager(net, images: torch.Tensor) -> torch.Tensor:
    """The reference scripts' way: NCHW float32, no_grad, whole frame (padded to what the net needs)."""
    x = images.permute(0, 3, 1, 2) * 2 - 1
    h, w = x.shape[-2:]
    with torch.no_grad():
        xp, top, left = padded(x, net.size_multiple)
        y = net(xp)[..., top:top + h, left:left + w]
    return ((y + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)


def reference_net(repo: str, arch: str, state):
    spec = importlib.util.spec_from_file_location("gan_pack_ref_networks", Path(repo) / "models" / "networks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    name, norm, drop = ("resnet_9blocks", "instance", False) if arch == "resnet9" else ("unet_256", "batch", True)
    net = mod.define_G(3, 3, 64, name, norm=norm, use_dropout=drop, gpu_ids=[])
    net.load_state_dict(state)
    return net.eval()


def interleaved(fns, device, *, budget_s: float, warmup: bool, max_rounds: int = 6):
    """Run the callables round-robin, starting each round at the next path (load changes on a shared machine
    and ordering effects hit every path alike), for at least one round and then more rounds while the case
    has used less than ``budget_s``; returns {name: (best seconds, peak MB, last result)}. The best of the
    rounds is the least-disturbed one; more rounds fit when the machine is quiet."""
    from bench.run import sync

    names = list(fns)
    best, peak, last = {}, {}, {}
    start = time.perf_counter()
    if warmup:
        for name in names:
            last[name] = fns[name]()
    r = 0
    while r == 0 or (r < max_rounds and (time.perf_counter() - start) * (r + 1) / r < budget_s):
        for name in names[r % len(names):] + names[:r % len(names)]:
            with peak_memory(device) as mem:
                sync(device)
                t0 = time.perf_counter()
                last[name] = fns[name]()
                sync(device)
                best[name] = min(best.get(name, float("inf")), time.perf_counter() - t0)
            peak[name] = max(peak.get(name, 0.0), mem["mb"])
        r += 1
    ROUNDS[id(fns)] = r
    return {k: (best[k], peak[k], last[k]) for k in names}


ROUNDS = {}
# seconds one case may take (at least one round always runs): more rounds when the machine is quiet
BUDGET_S = {256: 12.0, 512: 18.0, 1080: 40.0, 2160: 60.0}
# on a GPU: the sizes of the GPU-speed issue (512² b1/b8, 1080p, 4K untiled)
SIZES_CUDA = [(512, 512, (1, 8)), (1080, 1920, (1,)), (2160, 3840, (1,))]


def fast_dtype(device):
    """The low precision the ``fast`` rows request: what ``precision: auto`` asks for on this device (CUDA
    float16, an AMX CPU bfloat16), else bfloat16 where the CPU has it natively (AVX512-BF16), else None."""
    from models.precision import auto_dtypes, native_low_precision

    cands = auto_dtypes(device)
    if cands:
        return cands[0]
    return torch.bfloat16 if native_low_precision(device, torch.bfloat16) else None


def autocast_eager(net, images, dtype):
    """What a user would write for speed: the eager forward under ``torch.autocast``."""
    with torch.autocast(images.device.type, dtype=dtype):
        return eager(net, images).float()


def _accuracy(out, base):
    from bench.run import accuracy

    return accuracy(out.float(), base.float())


def _prepare(net, device, fast, label):
    """Prepared copies and calibration (once per model, outside the timings); prints what ``fast`` runs."""
    from models.translator import speed

    t0 = time.perf_counter()
    speed.effective_precision(net, device, None)
    info = speed.effective_precision(net, device, fast) if fast is not None else None
    msg = f"  {label}: prepared copies in {time.perf_counter() - t0:.1f} s"
    if info is not None:
        msg += f"; fast ({info['requested']}) runs {info['precision']}, layout {info['layout']}: {info['reason']}"
    print(msg, flush=True)
    return info


def _case_rows(label, fns, device, budget_s, warmup, info, fast):
    res = interleaved(fns, device, budget_s=budget_s, warmup=warmup)
    rounds = ROUNDS.pop(id(fns), 1)
    base_t, _, base = res["eager"]
    for name, (t, peak, out) in res.items():
        note = f"best of {rounds}"
        if name == "fast":
            note += f"; {info['precision']}"
        elif name == "autocast":
            note += f"; naive torch.autocast {str(fast).split('.')[-1]}, NCHW"
        b = out.shape[0]
        emit(Row("translator", label, name, b / t, peak, base_t / t, note=note, **_accuracy(out, base)))
    if info is not None and "fast" not in fns:   # the fast request runs the quality path: same figures
        t, peak, out = res["quality"]
        emit(Row("translator", label, "fast", out.shape[0] / t, peak, base_t / t,
                 note=f"best of {rounds}; {info['reason']}", **_accuracy(out, base)))
    return res


@group("translator")
def run(args, device):
    from models import translate

    cuda = device.type == "cuda"
    sizes = (SIZES_CUDA if cuda else SIZES)[:1 if args.quick else None]
    fast = fast_dtype(device)
    for arch in ("resnet9", "unet256"):
        net = build(arch).to(device)
        ref = None
        if "pix2pix" in args.references:
            try:
                ref = reference_net(args.references["pix2pix"], arch, net.state_dict()).to(device)
            except Exception as exc:  # a clone of another version: report, go on without it
                print(f"  reference pix2pix not usable: {type(exc).__name__}: {exc}")
        info = _prepare(net, device, fast, arch)
        for h, w, batches in sizes:
            for b in batches:
                if (arch, h, b) in SKIP and not cuda:
                    continue
                images = frames(b, h, w).to(device)
                big = h * w > 512 * 512
                label = f"{arch} {w}x{h} b{b}"
                fns = {"eager": lambda: eager(net, images)}
                if ref is not None:
                    fns["reference"] = lambda: eager(ref, images)
                fns["quality"] = lambda: translate(net, images, device=device, batch_size=b)
                if info is not None and info["precision"] != "float32":
                    fns["fast"] = lambda: translate(net, images, device=device, dtype=fast, batch_size=b)
                if fast is not None:
                    fns["autocast"] = lambda: autocast_eager(net, images, fast)
                if h >= 1080 and not (cuda and h > 1080):
                    # tiled (float32, 512 px tiles, whole-frame statistics): its max err is its exactness
                    fns["tiled 512"] = lambda: translate(net, images, device=device, tile_size=512, batch_size=b)
                _case_rows(label, fns, device, BUDGET_S[h] / (3 if args.quick else 1),
                           cuda or (not big and b == 1), info, fast)
                del images
        # 4K: tiled, bounded memory, measured in a fresh process (bench/tiled_memory.py): this process already
        # holds memory freed by the cases above, and reusing it would hide part of the peak
        if not args.quick and not cuda:
            tiled_4k(arch)
    trained(args, device, fast)


def _example(name: str, h: int, w: int, device):
    """A bundled example frame (real content) resized to ``h`` x ``w``, NHWC [0, 1]."""
    import numpy as np
    from PIL import Image

    path = Path(__file__).resolve().parents[1] / "workflows" / "inputs" / name
    img = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).float().permute(2, 0, 1)[None] / 255
    img = torch.nn.functional.interpolate(img, size=(h, w), mode="bicubic", align_corners=False).clamp(0, 1)
    return img.permute(0, 2, 3, 1).contiguous().to(device)


def trained_checkpoints(args):
    """The bundled translators plus every ``--weights`` file that loads as a translator."""
    from models.translator import load_translator

    repo = Path(__file__).resolve().parents[1]
    paths = sorted(p for folder in ("pix2pix", "cyclegan")
                   for p in (repo / "models" / "bundled" / folder).glob("*.safetensors"))
    out = []
    for p in paths + [Path(w) for w in getattr(args, "weights", [])]:
        try:
            out.append((p, load_translator(p)))
        except Exception as exc:   # a StyleGAN file (benchmarked by that group) or unreadable
            if p in paths:
                print(f"  {p.name}: not loadable ({type(exc).__name__}: {exc})")
    return out


def trained(args, device, fast):
    """Rows on real trained checkpoints: the bundled ones and ``--weights`` files, on a real example frame
    (512² on the CPU, 1080p on a GPU): eager, quality, fast (with its calibration verdict), naive autocast."""
    from models import translate

    h, w = (1080, 1920) if device.type == "cuda" else (512, 512)
    for path, net in trained_checkpoints(args):
        net = net.to(device).eval()
        info = _prepare(net, device, fast, path.name)
        frame = "gan_pack_outlines.png" if "outline" in path.name else "gan_pack_day_00.png"
        images = _example(frame, h, w, device)
        fns = {"eager": lambda: eager(net, images),
               "quality": lambda: translate(net, images, device=device)}
        if info is not None and info["precision"] != "float32":
            fns["fast"] = lambda: translate(net, images, device=device, dtype=fast)
        if fast is not None:
            fns["autocast"] = lambda: autocast_eager(net, images, fast)
        _case_rows(f"{path.stem} {w}x{h} b1 (trained)", fns, device, BUDGET_S[min(h, 1080)] / (3 if args.quick else 1),
                   True, info, fast)
        del net, images


def tiled_4k(arch: str, tile: int = 512) -> None:
    import json
    import subprocess
    import sys

    script = Path(__file__).resolve().parent / "tiled_memory.py"
    # the untiled comparison is cheap for the U-Net (seconds) and minutes for the ResNet: the unit tests cover
    # the ResNet's tiled exactness on smaller frames
    cmd = [sys.executable, str(script), "--arch", arch, "--tile", str(tile)] + (["--exact"] if arch == "unet256" else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"  {arch} 4K tiled: FAILED\n{proc.stderr[-2000:]}")
        return
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    emit(Row("translator", f"{arch} 3840x2160 tiled {tile}", "quality", 1 / r["seconds"], r["peak_mb"],
             max_err_255=r.get("max_err_255"),
             note="fresh process; peak memory (target <= 2048 MB)"
                  + ("; max err vs untiled" if "max_err_255" in r else "")))

