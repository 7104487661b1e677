#!/usr/bin/env python3
"""Recipe of the pack's bundled Pix2Pix and CycleGAN-style default models (no downloads: the data is drawn
procedurally by this script, from its seed).

    python scripts/train_translators.py pix2pix   # -> models/bundled/pix2pix/outlines2shapes_unet5_bn.safetensors
    python scripts/train_translators.py cyclegan  # -> models/bundled/cyclegan/day2night_resnet6_in.safetensors
    python scripts/train_translators.py examples  # -> the workflows' example inputs (workflows/inputs/)

Both networks use the reference layout of junyanz/pytorch-CycleGAN-and-pix2pix (``models/networks.py``:
``UnetGenerator`` with BatchNorm, ``ResnetGenerator`` with InstanceNorm without affine parameters), so the
pack's ``load_translator`` recognises them from their keys like any user checkpoint. The modules below are
written for this recipe (same structure and parameter names as the reference, not its code).

What is trained:

* **pix2pix / outlines2shapes**: black outline drawings of circles, rectangles and triangles on white paper
  -> the same drawing with every shape filled in a colour that depends on its kind (circles red, rectangles
  blue, triangles green). U-Net, 5 downsamplings, ngf 12, BatchNorm, L1 loss only (no discriminator: the
  target is a deterministic function of the input, so L1 converges quickly and without GAN artefacts).
* **cyclegan / day2night**: procedural landscapes (sky, sun, hills, houses with windows) at day -> the same
  scene at night (dark blue sky, the sun becomes a pale moon, scenery darkened and blue-shifted, windows lit
  warm yellow). ResNet generator, 6 residual blocks, ngf 12, InstanceNorm (as every CycleGAN). Trained
  **paired/supervised with an L1 loss** for speed — the architecture is CycleGAN's, the training is not the
  unpaired cycle-consistency objective; the model card says so.

Deterministic given the seed: data comes from ``numpy.random.RandomState(seed, sample index)``, weights from
``torch.manual_seed(seed)``; training runs on the CPU with a fixed number of threads (``--threads``, 2 by
default) because the float summation order, hence the bits, depend on it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, Tuple

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "models" / "bundled"
INPUTS = REPO / "workflows" / "inputs"


# ============================================================================ procedural data
SHAPE_COLOURS = {"circle": (220, 50, 40), "rectangle": (40, 90, 220), "triangle": (40, 170, 60)}
PAPER = (255, 255, 255)
INK = (0, 0, 0)


def _place_shapes(rng: np.random.RandomState, size: Tuple[int, int], count: int):
    w, h = size
    boxes = []
    for _ in range(count * 20):
        if len(boxes) == count:
            break
        s = rng.randint(14, 32)  # absolute sizes: the same scale at any canvas size
        aspect = rng.uniform(0.7, 1.4)
        bw, bh = int(s * aspect), int(s / aspect)
        if bw >= w - 6 or bh >= h - 6:
            continue
        x0, y0 = rng.randint(3, w - bw - 3), rng.randint(3, h - bh - 3)
        box = (x0, y0, x0 + bw, y0 + bh)
        if any(not (box[2] + 4 < b[0] or b[2] + 4 < box[0] or box[3] + 4 < b[1] or b[3] + 4 < box[1]) for b in boxes):
            continue
        kind = ("circle", "rectangle", "triangle")[rng.randint(3)]
        boxes.append(box)
        yield kind, box, rng


def outline_pair(rng: np.random.RandomState, size=(128, 128), count=None) -> Tuple[Image.Image, Image.Image]:
    """(outline drawing, filled drawing) of a few non-overlapping shapes."""
    count = count or rng.randint(2, 6)
    src = Image.new("RGB", size, PAPER)
    dst = Image.new("RGB", size, PAPER)
    ds, dd = ImageDraw.Draw(src), ImageDraw.Draw(dst)
    for kind, box, rng in _place_shapes(rng, size, count):
        width = int(rng.randint(1, 3))
        fill = SHAPE_COLOURS[kind]
        x0, y0, x1, y1 = box
        if kind == "circle":
            ds.ellipse(box, outline=INK, width=width)
            dd.ellipse(box, fill=fill, outline=INK, width=width)
        elif kind == "rectangle":
            ds.rectangle(box, outline=INK, width=width)
            dd.rectangle(box, fill=fill, outline=INK, width=width)
        else:
            apex = x0 + rng.randint(0, x1 - x0 + 1)
            pts = [(apex, y0), (x1, y1), (x0, y1)]
            ds.polygon(pts, outline=INK, width=width)
            dd.polygon(pts, fill=fill, outline=INK, width=width)
    return src, dst


def _lerp(a, b, t):
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))


def _night(c):
    """The night look of a day colour: darkened, desaturated towards blue."""
    r, g, b = (v / 255 for v in c)
    lum = 0.3 * r + 0.59 * g + 0.11 * b
    out = (0.10 * r + 0.12 * lum, 0.12 * g + 0.14 * lum, 0.22 * b + 0.30 * lum + 0.06)
    return tuple(int(round(255 * min(1.0, v))) for v in out)


DAY_SKY = ((110, 170, 240), (205, 228, 250))
NIGHT_SKY = ((8, 12, 40), (30, 40, 85))
SUN, MOON = (255, 215, 60), (235, 235, 215)
LIT_WINDOW = (255, 210, 90)


def day_night_pair(rng: np.random.RandomState, size=(128, 128)) -> Tuple[Image.Image, Image.Image]:
    """(day scene, the same scene at night)."""
    w, h = size
    u = 96  # object sizes in pixels do not grow with the canvas: the scale of the training pictures
    day, night = Image.new("RGB", size), Image.new("RGB", size)
    dd, dn = ImageDraw.Draw(day), ImageDraw.Draw(night)
    horizon = int(h * rng.uniform(0.45, 0.7))
    for y in range(h):
        t = y / max(1, h - 1)
        dd.line([(0, y), (w, y)], fill=_lerp(*DAY_SKY, t))
        dn.line([(0, y), (w, y)], fill=_lerp(*NIGHT_SKY, t))
    r = int(u * rng.uniform(0.05, 0.1))
    cx, cy = rng.randint(r, w - r), rng.randint(r, max(r + 1, horizon - r))
    dd.ellipse((cx - r, cy - r, cx + r, cy + r), fill=SUN)
    dn.ellipse((cx - r, cy - r, cx + r, cy + r), fill=MOON)
    # hills: a sum of sines above the horizon line
    green = (int(rng.randint(50, 110)), int(rng.randint(140, 200)), int(rng.randint(40, 90)))
    phase, freq, amp = rng.uniform(0, 6.28), rng.uniform(1.0, 3.0), rng.uniform(0.04, 0.12) * u
    pts = [(x, horizon - amp * (1 + math.sin(phase + freq * 6.28 * x / u))) for x in range(0, w + 1, 2)]
    poly = pts + [(w, h), (0, h)]
    dd.polygon(poly, fill=green)
    dn.polygon(poly, fill=_night(green))
    # houses standing on the ground
    for _ in range(rng.randint(1, 5) * max(1, w // u)):
        hw, hh = int(u * rng.uniform(0.12, 0.25)), int(u * rng.uniform(0.12, 0.25))
        x0 = rng.randint(0, max(1, w - hw))
        base = int(min(h - 2, horizon + rng.uniform(0.05, 0.3) * (h - horizon)))
        y0 = base - hh
        wall = tuple(int(v) for v in rng.randint(150, 250, size=3))
        roof = tuple(int(v) for v in (rng.randint(120, 200), rng.randint(30, 80), rng.randint(20, 60)))
        roof_pts = [(x0 - 2, y0), (x0 + hw + 2, y0), (x0 + hw // 2, y0 - int(hh * rng.uniform(0.4, 0.8)))]
        for d, colour_of in ((dd, lambda c: c), (dn, _night)):
            d.rectangle((x0, y0, x0 + hw, base), fill=colour_of(wall))
            d.polygon(roof_pts, fill=colour_of(roof))
        ww = max(3, hw // 5)
        for i in range(2):
            for j in range(max(1, hh // (2 * ww))):
                wx = x0 + ww // 2 + i * (hw - 2 * ww) if hw > 3 * ww else x0 + (hw - ww) // 2
                wy = y0 + ww // 2 + j * 2 * ww
                if wy + ww > base - 2:
                    continue
                dd.rectangle((wx, wy, wx + ww, wy + ww), fill=(70, 90, 120))
                dn.rectangle((wx, wy, wx + ww, wy + ww), fill=LIT_WINDOW)
    return day, night


def to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> CHW float in [-1, 1] (the translators' range)."""
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)


# ============================================================================ networks (reference layout)
def _init_weights(net: nn.Module) -> None:
    """The reference's ``init_type='normal'``, gain 0.02."""
    for m in net.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


class UnetLevel(nn.Module):
    """One level of the U-Net (``model`` Sequential with the reference's indices), BatchNorm, no conv bias."""

    def __init__(self, outer: int, inner: int, sub: nn.Module | None = None, in_nc: int | None = None,
                 outermost: bool = False, dropout: bool = False):
        super().__init__()
        self.outermost = outermost
        in_nc = outer if in_nc is None else in_nc
        down = nn.Conv2d(in_nc, inner, 4, 2, 1, bias=False)
        if outermost:
            layers = [down, sub, nn.ReLU(True), nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1), nn.Tanh()]
        elif sub is None:  # innermost
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True),
                      nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
        else:
            layers = [nn.LeakyReLU(0.2, True), down, nn.BatchNorm2d(inner), sub, nn.ReLU(True),
                      nn.ConvTranspose2d(inner * 2, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


class Unet(nn.Module):
    def __init__(self, input_nc=3, output_nc=3, num_downs=6, ngf=16, dropout=False):
        super().__init__()
        level = UnetLevel(ngf * 8, ngf * 8)
        for _ in range(num_downs - 5):
            level = UnetLevel(ngf * 8, ngf * 8, level, dropout=dropout)
        level = UnetLevel(ngf * 4, ngf * 8, level)
        level = UnetLevel(ngf * 2, ngf * 4, level)
        level = UnetLevel(ngf, ngf * 2, level)
        self.model = UnetLevel(output_nc, ngf, level, in_nc=input_nc, outermost=True)

    def forward(self, x):
        return self.model(x)


class ResBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv_block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=True), nn.InstanceNorm2d(dim))

    def forward(self, x):
        return x + self.conv_block(x)


class Resnet(nn.Module):
    """ResNet generator with InstanceNorm (no affine, no running stats): convs carry biases."""

    def __init__(self, input_nc=3, output_nc=3, ngf=16, n_blocks=6):
        super().__init__()
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, 7, bias=True), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(2):
            m = 2 ** i
            layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, 2, 1, bias=True), nn.InstanceNorm2d(ngf * m * 2), nn.ReLU(True)]
        layers += [ResBlock(ngf * 4) for _ in range(n_blocks)]
        for i in range(2):
            m = 2 ** (2 - i)
            layers += [nn.ConvTranspose2d(ngf * m, ngf * m // 2, 3, 2, 1, output_padding=1, bias=True),
                       nn.InstanceNorm2d(ngf * m // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


# ============================================================================ recipes
RECIPES: Dict[str, dict] = {
    "pix2pix": dict(
        folder="pix2pix", file="outlines2shapes_unet5_bn.safetensors",
        build=lambda: Unet(3, 3, num_downs=5, ngf=12), arch="unet_5 (5 downsamplings), ngf 12, BatchNorm, no dropout",
        samples="drawings", pair=outline_pair, train_size=96, steps=5000, batch=6, lr=1e-3, seed=1,
        title="Outlines to filled shapes (Pix2Pix U-Net)",
        what=("Turns black outline drawings of circles, rectangles and triangles on white paper into the same "
              "drawing with each shape filled by kind: circles red, rectangles blue, triangles green."),
        data=("Drawn by the recipe (PIL), one fresh random drawing per sample: 2-5 non-overlapping shapes, about 10-45 px, "
              "outline width 1-2 px, 96x96 px, white paper. Target: the same drawing with the shapes filled."),
        loss="L1 only (no discriminator)",
        use=("Feed black-on-white outline drawings. Works at any size (the node pads to a multiple of 32); shapes "
             "about 10-45 px wide match the training data best."),
    ),
    "cyclegan": dict(
        folder="cyclegan", file="day2night_resnet6_in.safetensors",
        build=lambda: Resnet(3, 3, ngf=12, n_blocks=6), arch="resnet_6blocks, ngf 12, InstanceNorm (no affine), no dropout",
        samples="scenes", pair=day_night_pair, train_size=64, steps=2000, batch=6, lr=1e-3, seed=2,
        title="Day to night (CycleGAN-style ResNet generator)",
        what=("Turns procedural day landscapes (sky, sun, hills, houses) into night: dark blue sky, the sun "
              "becomes a pale moon, the scenery darkens and shifts to blue, house windows light up warm yellow."),
        data=("Drawn by the recipe (PIL), one fresh random scene per sample on a 64x64 px canvas (objects sized as in the 96 px scenes of the examples): gradient sky, sun, "
              "sine hills, 1-4 houses with roofs and windows, and the same scene rendered at night."),
        loss=("L1 on PAIRED day/night images (supervised). The generator architecture is CycleGAN's, but it was "
              "NOT trained with CycleGAN's unpaired adversarial + cycle-consistency objective (that takes hours); "
              "only the A->B generator (G_A) exists"),
        use=("Feed daylight scenes like the example frames. Any size (the node pads to a multiple of 4); "
             "InstanceNorm statistics are taken over the whole frame, also when it is tiled."),
    ),
}


def batch_at(recipe: dict, step: int) -> Tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for i in range(recipe["batch"]):
        rng = np.random.RandomState([recipe["seed"], step, i])
        a, b = recipe["pair"](rng, (recipe["train_size"], recipe["train_size"]))
        xs.append(to_tensor(a))
        ys.append(to_tensor(b))
    return torch.stack(xs), torch.stack(ys)


def held_out(recipe: dict, n: int = 16) -> Tuple[torch.Tensor, torch.Tensor]:
    xs, ys = [], []
    for i in range(n):
        rng = np.random.RandomState([recipe["seed"] + 1000, 0, i])
        a, b = recipe["pair"](rng, (recipe["train_size"], recipe["train_size"]))
        xs.append(to_tensor(a))
        ys.append(to_tensor(b))
    return torch.stack(xs), torch.stack(ys)


def train(name: str, steps: int | None = None, threads: int = 2, out_dir: Path | None = None,
          log: Callable[[str], None] = print) -> Path:
    recipe = dict(RECIPES[name])
    if steps:
        recipe["steps"] = steps
    torch.set_num_threads(threads)
    torch.manual_seed(recipe["seed"])
    net = recipe["build"]()
    _init_weights(net)
    opt = torch.optim.Adam(net.parameters(), lr=recipe["lr"], betas=(0.5, 0.999))
    total = recipe["steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 if s < total // 2 else 1.0 - (s - total // 2) / (total - total // 2 + 1))
    t0 = time.time()
    losses = []
    net.train()
    for step in range(total):
        x, y = batch_at(recipe, step)
        loss = (net(x) - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == total - 1:
            log(f"{name} step {step + 1}/{total} L1 {np.mean(losses[-50:]):.4f} ({time.time() - t0:.0f}s)")
    seconds = time.time() - t0
    net.eval()
    hx, hy = held_out(recipe)
    with torch.no_grad():
        held = (net(hx) - hy).abs().mean().item()
    return save(name, recipe, net, dict(seconds=seconds, final_l1=float(np.mean(losses[-50:])), held_out_l1=held,
                                         threads=threads, torch=torch.__version__), out_dir or BUNDLED / recipe["folder"])


def save(name: str, recipe: dict, net: nn.Module, stats: dict, out_dir: Path) -> Path:
    """Write the weights (reference key layout, as a gan-pack translator file when the engine is importable)
    and the model card."""
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / recipe["file"]
    state = {k: v.detach().contiguous() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    meta = {"gan_pack_recipe": json.dumps({"recipe": name, "seed": recipe["seed"], "steps": recipe["steps"],
                                           "train_size": recipe["train_size"], **stats})}
    engine = _engine()
    if engine is not None:
        translator = engine.load_translator(state, name=path.stem, train_size=recipe["train_size"])
        x, _ = held_out(recipe, 2)
        with torch.no_grad():
            err = (translator.eval()(x) - net(x)).abs().max().item()
        if err > 1e-5:
            raise RuntimeError(f"the engine's rebuild of {name} differs from the trained net by {err}")
        engine.save_translator(translator, str(path), metadata=meta)
    else:
        save_file(state, str(path), metadata=meta)
    size_mb = path.stat().st_size / 1e6
    if size_mb > 5:
        raise RuntimeError(f"{path} is {size_mb:.1f} MB (limit 5 MB)")
    card = out_dir / (path.stem + ".md")
    card.write_text(model_card(name, recipe, net, stats, path), encoding="utf-8")
    return path


def _engine():
    """``models`` of this repo when it has the translator engine, else ``None``."""
    sys.path.insert(0, str(REPO))
    try:
        import models

        models.load_translator  # noqa: B018 - resolves the lazy attribute
        return models
    except Exception:  # engine not available: the file is a plain reference-layout state dict
        return None


def model_card(name: str, recipe: dict, net: nn.Module, stats: dict, path: Path) -> str:
    params = sum(p.numel() for p in net.parameters())
    return f"""# {recipe['title']}

File: `{path.name}` ({path.stat().st_size / 1e6:.2f} MB, float32, {params:,} parameters), in
`models/bundled/{recipe['folder']}/`; listed in the Load Translator node as `{recipe['folder']}/{path.name}`.

**What it does.** {recipe['what']}

**How to use.** {recipe['use']} It only knows the procedural pictures it was trained on; on photographs it
does something arbitrary. It exists so the shipped workflows run with no download and show what the nodes do.

**Architecture.** {recipe['arch']} — the reference layout of junyanz/pytorch-CycleGAN-and-pix2pix, so it also
loads as a user checkpoint would. Trained at {recipe['train_size']}x{recipe['train_size']} px.

**Data.** {recipe['data']} Nothing downloaded.

**Training.** {recipe['loss']}. {recipe['steps']} steps, batch {recipe['batch']}, Adam (lr {recipe['lr']},
betas 0.5/0.999, linear decay over the second half), seed {recipe['seed']}, CPU with {stats['threads']}
thread{'s' if stats['threads'] != 1 else ''}, torch {stats['torch']}: {stats['seconds'] / 60:.1f} minutes. Final training L1 (mean of the last 50
steps, images in [-1, 1]): {stats['final_l1']:.4f}; held-out L1 on 16 unseen {recipe['samples']}: {stats['held_out_l1']:.4f}.

**Reproduce.** `python scripts/train_translators.py {name}` (deterministic for a given seed, thread count and
torch build).
"""


# ============================================================================ example inputs
def write_examples() -> None:
    """The shipped workflows' example inputs (unseen seeds; larger and non-square to show any-size inference)."""
    INPUTS.mkdir(parents=True, exist_ok=True)
    src, _ = outline_pair(np.random.RandomState([7, 1]), (320, 256), count=14)
    src.save(INPUTS / "gan_pack_outlines.png", optimize=True)
    for i in range(3):
        day, _ = day_night_pair(np.random.RandomState([11, i]), (256, 160))
        day.save(INPUTS / f"gan_pack_day_{i:02d}.png", optimize=True)


def rewrite_card(name: str) -> Path:
    """Regenerate a model card from the statistics stored in its weight file (after editing the card text)."""
    from safetensors import safe_open

    recipe = dict(RECIPES[name])
    path = BUNDLED / recipe["folder"] / recipe["file"]
    with safe_open(str(path), "pt") as f:
        stats = json.loads(f.metadata()["gan_pack_recipe"])
    recipe["steps"] = stats["steps"]
    card = path.with_suffix(".md")
    card.write_text(model_card(name, recipe, recipe["build"](), stats, path), encoding="utf-8")
    return card


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("what", choices=["pix2pix", "cyclegan", "examples"])
    ap.add_argument("--card-only", action="store_true", help="only rewrite the model card from the weight file")
    ap.add_argument("--steps", type=int, help="override the recipe's step count (the card records it)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="output folder (default: models/bundled/<folder>)")
    ns = ap.parse_args(argv)
    if ns.what == "examples":
        write_examples()
        return 0
    if ns.card_only:
        print(f"wrote {rewrite_card(ns.what)}")
        return 0
    path = train(ns.what, ns.steps, ns.threads, ns.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
