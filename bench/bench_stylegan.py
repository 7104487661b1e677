"""StyleGAN2 (config-f shapes at 256² and 1024²) and StyleGAN3-T (256²) generators with random weights.

Baseline ``eager``: the straightforward float32 path of the same architecture (``mapping`` + ``synthesis``,
batch 1, NCHW). StyleGAN3 has two implementations of the filtered leaky ReLU and modulated convolution in
``models/stylegan/sg3.py``: ``reference`` (reference-style: upsample, activate, downsample as separate
full-size steps) and ``fast`` (what the nodes run); both are timed, ``reference`` is the baseline there.
Shapes: StyleGAN2 config-f (z/w 512, 8 mapping layers, channel_base 32768, channel_max 512);
StyleGAN3-T as the official train.py defaults (z/w 512, 2 mapping layers, channel_base 32768,
channel_max 512). With ``--reference stylegan2=PATH`` / ``stylegan3=PATH`` (a local clone of
stylegan2-ada-pytorch / stylegan3) the clone's own ``training/networks*.py`` Generator runs the same
weights too (imported by path; nothing of it is part of this pack).
"""
from __future__ import annotations

import importlib
import sys
import time
from pathlib import Path

import torch

from bench.run import Row, emit, group, peak_memory


def sg2(resolution: int):
    from models.stylegan.sg2 import StyleGAN2Generator

    torch.manual_seed(0)
    kwargs = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                  mapping_kwargs={"num_layers": 8},
                  synthesis_kwargs={"channel_base": 32768, "channel_max": 512, "num_fp16_res": 0,
                                    "conv_clamp": None})
    return StyleGAN2Generator(**kwargs).eval(), kwargs


def sg3t(resolution: int):
    from models.stylegan.sg3 import StyleGAN3Generator

    torch.manual_seed(0)
    kwargs = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=resolution, img_channels=3,
                  mapping_kwargs={"num_layers": 2}, channel_base=32768, channel_max=512)
    return StyleGAN3Generator(**kwargs).eval(), kwargs


def generate(G, z, impl=None):
    with torch.inference_mode():
        ws = G.mapping(z, None)
        if impl is None:
            return G.synthesis(ws, noise_mode="const")
        return G.synthesis(ws, noise_mode="const", impl=impl)


def _time(fn, device, rounds):
    from bench.run import sync

    best, out = float("inf"), None
    for _ in range(rounds):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def reference_generator(repo: str, module: str, kwargs: dict, state, device):
    """The clone's Generator (``training/<module>.py``) with our weights; None (and a message) if it fails."""
    try:
        sys.path.insert(0, repo)
        mod = importlib.import_module(f"training.{module}")
        flat = dict(kwargs)
        synth = flat.pop("synthesis_kwargs", {})
        G = mod.Generator(**flat, **synth).eval().to(device)
        missing, unexpected = G.load_state_dict(state, strict=False)
        if [k for k in missing if not k.endswith(("noise_const", "w_avg"))]:
            raise RuntimeError(f"weights do not fit: missing {missing[:3]}")
        return G
    except Exception as exc:  # an unusable clone must not stop the benchmark
        print(f"  reference {repo}: not usable ({type(exc).__name__}: {exc})")
        return None
    finally:
        sys.path.remove(repo)


@group("stylegan")
def run(args, device):
    z = torch.randn(1, 512, generator=torch.Generator().manual_seed(1)).to(device)
    cases = [("stylegan2 256x256", lambda: sg2(256), "stylegan2", "networks")]
    if not args.quick:
        cases.append(("stylegan2 1024x1024", lambda: sg2(1024), "stylegan2", "networks"))
    cases.append(("stylegan3-t 256x256", lambda: sg3t(256), "stylegan3", "networks_stylegan3"))
    for label, make, ref_key, ref_module in cases:
        G, kwargs = make()
        G.to(device)
        is_sg3 = hasattr(G, "set_impl")
        paths = {"eager": lambda: generate(G, z)} if not is_sg3 else {
            "reference": lambda: generate(G, z, "reference"), "fast": lambda: generate(G, z, "fast")}
        if ref_key in args.references:
            R = reference_generator(args.references[ref_key], ref_module, kwargs, G.state_dict(), device)
            if R is not None:
                paths["ref-repo"] = lambda: R(z, None, noise_mode="const", force_fp32=True)
        big = G.img_resolution > 256
        base_name = next(iter(paths))
        base_t, base_out = None, None
        for name, fn in paths.items():
            if not big and not is_sg3:
                fn()  # warm-up (SG3 at 256² costs tens of seconds a run on a 2-core CPU: timed once, cold)
            with peak_memory(device) as mem:
                t, out = _time(fn, device, 1 if big or is_sg3 else 2)
            if base_t is None:
                base_t, base_out = t, out
            emit(Row("stylegan", label + " b1", name, 1 / t, mem["mb"], base_t / t,
                     float((out.float() - base_out.float()).abs().max()) * 127.5,
                     note=f"baseline: {base_name}" if name != base_name else ""))
        del G, paths
    batch_rows(args, device)


def _ws(G, n, device):
    from models.stylegan import seeds_to_ws

    return seeds_to_ws(G, list(range(n)), truncation_psi=0.7)[1].to(device)


def _fast_dtype(device):
    from bench.bench_translator import fast_dtype

    return fast_dtype(device)


def _batch_case(label, G, device, batch, rounds, fast):
    """Batch-``batch`` rows of one generator: ``bare`` = ``G.synthesis`` on the batch (baseline),
    ``synthesize`` = ``models.synthesize`` (what the nodes call: the per-call overhead is the difference),
    ``fast`` = its low-precision request (the criterion's verdict in the note)."""
    from bench.run import accuracy
    from models.stylegan import stylegan_precision, synthesize

    ws = _ws(G, batch, device)

    def bare():
        with torch.no_grad():
            return G.synthesis(ws, noise_mode="const").float().cpu()

    paths = {"bare": bare, "synthesize": lambda: synthesize(G, ws.cpu(), batch_size=batch)}
    verdict = None
    if fast is not None and not hasattr(G, "set_impl"):
        dt, verdict = stylegan_precision(G, device, fast)
        if dt is not None:
            paths["fast"] = lambda: synthesize(G, ws.cpu(), batch_size=batch, dtype=fast)
    base_t = base = None
    for name, fn in paths.items():
        fn()  # warm-up
        with peak_memory(device) as mem:
            t, out = _time(fn, device, rounds)
        if base_t is None:
            base_t, base = t, out
        note = "baseline: G.synthesis" if name != "bare" else f"{1000 * t / batch:.1f} ms/img"
        if name == "fast":
            note += f"; {verdict.summary()}"
        emit(Row("stylegan", f"{label} b{batch}", name, batch / t, mem["mb"], base_t / t, note=note,
                 **accuracy(out, base, channel_dim=1, value_range=(-1, 1))))
    if verdict is not None and "fast" not in paths:
        print(f"  {label}: fast path not used ({verdict.summary()})")


def batch_rows(args, device):
    """Batch rows: StyleGAN2 ``models.synthesize`` vs a bare ``G.synthesis`` call (target: within 1.2x) and its
    low-precision path; StyleGAN3-T per image at batch 8 vs batch 1 (target: no worse); the bundled StyleGAN
    and every ``--weights`` StyleGAN file (trained weights)."""
    from models.stylegan import load_stylegan

    cuda = device.type == "cuda"
    fast = _fast_dtype(device)
    res = 1024 if cuda else 256
    G, _ = sg2(res)
    G.to(device)
    _batch_case(f"stylegan2 {res}x{res}", G, device, 8, 3 if cuda else 1, fast)
    del G
    if not args.quick:
        G, _ = sg3t(res)
        G.to(device).set_impl("fast")
        z = torch.randn(8, 512, generator=torch.Generator().manual_seed(1)).to(device)
        with torch.inference_mode():
            ws = G.mapping(z, None)
        per = {}
        for b in (1, 8):
            def fn(b=b):
                with torch.inference_mode():
                    return G.synthesis(ws[:b], noise_mode="const")
            if cuda:
                fn()
            t, _ = _time(fn, device, 3 if cuda else 1)
            per[b] = t / b
            emit(Row("stylegan", f"stylegan3-t {res}x{res} b{b}", "fast", b / t, float("nan"),
                     per[1] / per[b] if b != 1 else 1.0,
                     note=f"{1000 * per[b]:.0f} ms/img" + ("; vs baseline = per-image speed vs b1" if b != 1 else "")))
        del G
    repo = Path(__file__).resolve().parents[1]
    files = sorted((repo / "models" / "bundled" / "stylegan").glob("*.safetensors"))
    for path in files + [Path(w) for w in getattr(args, "weights", [])]:
        try:
            G = load_stylegan(path).eval().to(device)
        except Exception as exc:   # a translator file (the translator group's) or unreadable
            if path in files:
                print(f"  {path.name}: not loadable ({type(exc).__name__}: {exc})")
            continue
        _batch_case(f"{path.stem} (trained)", G, device, 8, 3 if cuda else 2, fast)
        del G
