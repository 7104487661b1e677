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
