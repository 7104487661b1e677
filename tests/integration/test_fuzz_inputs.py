"""A small seeded fuzz test through the real server: a few hundred prompts, each one of the pack's nodes with
random-but-typed values for every input (taken from ``/object_info``: combos, INT/FLOAT edges, NaN, hostile
strings; IMAGE/MASK/model/latent inputs wired to small providers). The server must answer every request, keep
serving, end (or cancel) every prompt, and write nothing outside ``output/``, its temp/user folders and the model
folders. Bounded count and per-prompt time, so it runs in about a minute."""
from __future__ import annotations

import math
import os
import random
from pathlib import Path


from scripts.comfy_client import ComfyExecutionError, ComfyPromptRejected

REPO = Path(__file__).resolve().parents[2]
PROMPTS = 200
PER_PROMPT_S = 4.0   # then Cancel is pressed, which must end the prompt
SEED = 1212

HOSTILE_STRINGS = [
    "", " ", "../../../etc/passwd", "/etc", "/", "..", "....", ".hidden", "%s%04d.png", "f_%0200000000d.png",
    "f_%09d.png", "frame_%04d.png", "frame_####.png", "*.png", "*", "x" * 5000, "a\x00b", "ü/ß", "con", "1-4",
    "0-99999999", "0-99999,100000-199999", "coarse", "0-6", "-1", "NaN", "{}", "\\\\server\\share", "~/x", "a:b",
    "%n%n%n", "{0.__class__}", "$(touch /tmp/gan_pack_fuzz_pwned)", "\n", "1e308",
]
# outputs whose type the fuzz can consume downstream (anything else must be an output node itself)
SINK_FOR = {"IMAGE": "PreviewImage", "MASK": "MaskPreview", "GAN_TRANSLATOR": "GANPackTranslate",
            "STYLEGAN_LATENT": "GANPackStyleGANSynthesize", "STYLEGAN": "GANPackStyleGANGenerate"}


def _snapshot(roots, skip):
    found = {}
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip
                           and d not in ("__pycache__", ".pytest_cache", ".git")]
            for f in filenames:
                p = os.path.join(dirpath, f)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                found[p] = (st.st_mtime_ns, st.st_size)
    return found


def _int_value(rng, name, opts):
    lo = int(opts.get("min", 0)) if math.isfinite(opts.get("min", 0)) else 0
    hi = int(opts.get("max", lo + 100)) if math.isfinite(opts.get("max", lo + 100)) else lo + 100
    if "seed" in name:
        return rng.choice([lo, hi, rng.randint(lo, hi)])
    costly = any(k in name for k in ("steps", "iterations", "frames", "batch"))
    small_hi = min(hi, max(lo, 0) + (6 if costly else 24))
    choices = [lo, min(lo + 1, hi), rng.randint(lo, max(lo, small_hi)), lo - 1]
    default = opts.get("default")
    if isinstance(default, int) and default <= (8 if costly else 50):
        choices.append(default)
    if hi <= 64:
        choices.append(hi)
    return rng.choice(choices)


def _float_value(rng, opts):
    lo, hi = float(opts.get("min", -10.0)), float(opts.get("max", 10.0))
    return rng.choice([lo, hi, float(opts.get("default", lo)), rng.uniform(lo, hi), float("nan"), float("inf"),
                       -float("inf"), hi * 10])


def _value(rng, name, spec):
    kind = spec[0]
    opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
    if isinstance(kind, list):
        return rng.choice(kind) if kind and rng.random() < 0.9 else rng.choice(HOSTILE_STRINGS[:12])
    if kind == "COMBO":
        options = opts.get("options") or []
        return rng.choice(options) if options else ""
    if kind == "INT":
        return _int_value(rng, name, opts)
    if kind == "FLOAT":
        return _float_value(rng, opts)
    if kind == "BOOLEAN":
        return rng.random() < 0.5
    if kind == "STRING":
        return rng.choice(HOSTILE_STRINGS) if rng.random() < 0.7 else opts.get("default", "")
    return None


def _providers(rng, prompt, kind):
    """Node id (creating it) of a small provider of ``kind``, or None when the fuzz has none."""
    key = f"p_{kind}"
    if key in prompt:
        return [key, 0]
    if kind == "IMAGE":
        prompt[key] = {"class_type": "EmptyImage", "inputs": {
            "width": rng.choice([1, 2, 7, 16, 33, 64]), "height": rng.choice([1, 3, 16, 40, 64]),
            "batch_size": rng.choice([1, 2, 3]), "color": rng.randint(0, 0xFFFFFF)}}
    elif kind == "MASK":
        prompt[key] = {"class_type": "SolidMask", "inputs": {"value": rng.random(), "width": 16, "height": 16}}
    elif kind == "GAN_TRANSLATOR":
        prompt[key] = {"class_type": "GANPackLoadTranslator", "inputs": {
            "model_name": rng.choice(["cyclegan/day2night_resnet6_in.safetensors",
                                      "pix2pix/outlines2shapes_unet5_bn.safetensors"]), "direction": "auto"}}
    elif kind == "STYLEGAN":
        prompt[key] = {"class_type": "GANPackLoadStyleGAN", "inputs": {"model_name": "gan_pack_islands64.safetensors"}}
    elif kind == "STYLEGAN_LATENT":
        g = _providers(rng, prompt, "STYLEGAN")
        prompt[key] = {"class_type": "GANPackStyleGANLatent", "inputs": {
            "stylegan": g, "seeds": rng.choice(["1", "1-3", "7,9"]), "truncation_psi": 0.7,
            "truncation_cutoff": 0, "class_index": 0}}
    else:
        return None
    return [key, 0]


def _prompt(rng, node_type, info):
    prompt = {}
    inputs = {}
    for group in ("required", "optional"):
        for name, spec in (info["input"].get(group) or {}).items():
            kind = spec[0]
            if isinstance(kind, str) and kind not in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"):
                link = _providers(rng, prompt, kind)
                if link is None:
                    if group == "required":
                        return None
                    continue
                inputs[name] = link
            elif group == "required" or rng.random() < 0.5:
                inputs[name] = _value(rng, name, spec)
    prompt["n"] = {"class_type": node_type, "inputs": inputs}
    if not info.get("output_node"):
        sinks = [(i, SINK_FOR[t]) for i, t in enumerate(info.get("output") or []) if t in SINK_FOR]
        if not sinks:
            return None
        i, sink = rng.choice(sinks)
        link = ["n", i]
        if sink == "GANPackTranslate":
            prompt["t"] = {"class_type": sink, "inputs": {
                "translator": link, "image": _providers(rng, prompt, "IMAGE"), "tile_size": 0, "tile_overlap": 0,
                "mode": "eval", "seed": 0, "resize_to_train_size": False, "precision": "auto", "batch_size": 2}}
            link, sink = ["t", 0], "PreviewImage"
        elif sink == "GANPackStyleGANSynthesize":
            prompt["s"] = {"class_type": sink, "inputs": {
                "stylegan": _providers(rng, prompt, "STYLEGAN"), "latent": link, "noise_mode": "const", "seed": 0,
                "batch_size": 4}}
            link, sink = ["s", 0], "PreviewImage"
        elif sink == "GANPackStyleGANGenerate":  # a loaded model: render one seed with its own synthesis node
            prompt["l"] = {"class_type": "GANPackStyleGANLatent", "inputs": {
                "stylegan": link, "seeds": "3", "truncation_psi": 0.5, "truncation_cutoff": 0, "class_index": 0}}
            prompt["s"] = {"class_type": "GANPackStyleGANSynthesize", "inputs": {
                "stylegan": link, "latent": ["l", 0], "noise_mode": "const", "seed": 0, "batch_size": 4}}
            link, sink = ["s", 0], "PreviewImage"
        prompt["sink"] = {"class_type": sink, "inputs": {"images" if sink == "PreviewImage" else "mask": link}}
    return prompt


def test_fuzz_every_node_input(comfy_server, object_info, models_root):
    ours = {k: v for k, v in object_info.items() if k.startswith("GANPack")}
    assert len(ours) >= 15
    rng = random.Random(SEED)
    comfy_dir = Path(comfy_server.comfy_dir)
    allowed = [comfy_server.output_dir, comfy_server.workdir / "temp", comfy_server.workdir / "user", models_root]
    roots = [comfy_dir, comfy_server.workdir, REPO, comfy_server.input_dir]
    skip = {str(p) for p in allowed} | {str(REPO / ".comfyui"), str(REPO / "test-artifacts"),
                                        str(comfy_dir / "user"), str(comfy_dir / "custom_nodes")}
    before = _snapshot(roots, skip)

    outcomes = {"rejected": 0, "failed": 0, "ran": 0, "cancelled": 0}
    bugs = []
    probe = random.Random(0)
    names = sorted(n for n in ours if _prompt(probe, n, ours[n]) is not None)   # nodes the fuzz can wire
    assert len(names) >= 12, sorted(set(ours) - set(names))
    slow = []
    for i in range(PROMPTS):
        node_type = names[i % len(names)]
        prompt = _prompt(rng, node_type, ours[node_type])
        try:
            pid = comfy_server.queue(prompt)
        except ComfyPromptRejected:
            outcomes["rejected"] += 1
            continue
        try:
            comfy_server.wait(pid, timeout=PER_PROMPT_S, poll=0.05)
            outcomes["ran"] += 1
        except ComfyExecutionError as e:
            outcomes["failed"] += 1
            kind = (e.details[0] if e.details else {}).get("exception_type", "")
            if kind.split(".")[-1] in ("TypeError", "AttributeError", "KeyError", "IndexError", "ZeroDivisionError",
                                       "UnboundLocalError", "NameError", "OverflowError", "RecursionError"):
                bugs.append((node_type, kind, str(e)[:300], prompt["n"]["inputs"]))
        except TimeoutError:
            outcomes["cancelled"] += 1
            slow.append((node_type, prompt["n"]["inputs"]))
            assert comfy_server.cancel(pid, timeout=60) is not None, f"{node_type} could not be cancelled: {prompt}"
        if i % 50 == 49:
            assert comfy_server.alive()
    assert comfy_server.alive()
    assert len(comfy_server.object_info()) == len(object_info)
    print(f"fuzz outcomes: {outcomes}; not wired: {sorted(set(ours) - set(names))}; cancelled: {slow}")

    after = _snapshot(roots, skip)
    changed = sorted(p for p, sig in after.items() if before.get(p) != sig and not p.endswith(("comfyui.log",)))
    assert not changed, f"files written outside output/ and the model folders: {changed[:10]}"
    assert not os.path.exists("/tmp/gan_pack_fuzz_pwned")
    assert outcomes["ran"] + outcomes["failed"] >= 30, outcomes     # the fuzz reaches the nodes, not only validation
    assert not bugs, "unhandled Python errors (not clear messages):\n" + "\n".join(map(str, bugs[:8]))
