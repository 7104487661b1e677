"""Render every shipped workflow through a real ComfyUI and write its template thumbnail from the real output.

ComfyUI's template browser shows ``/api/workflow_templates/<pack>/<name>.jpg`` on each template's card; the
server serves the pack's ``workflows/`` folder there, so the thumbnail is ``workflows/<name>.jpg``.

Workflows that need no download run exactly as shipped and their thumbnail shows their output (next to the
input where that tells the story: outlines -> shapes, day -> night, shot frame -> stylised frame). Workflows
that need a file this repository cannot ship (an SD 1.5 checkpoint, VGG-19, a fast-style network) run up to the
last node that works without it, and the thumbnail says so on a band: "needs ...; shows ...".

    python3 scripts/dev.py setup && .venv/bin/python scripts/make_thumbnails.py [names...]

Takes a few minutes on a CPU (the main job trains its 2000 steps). The output is deterministic up to JPEG
encoding and the trained network (same device and thread count give the same pixels).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional

from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.workflow_api import load_workflow, ui_to_api  # noqa: E402

WORKFLOWS = REPO / "workflows"
INPUTS = WORKFLOWS / "inputs"
SIZE = 384          # square cards; a few tens of KB as JPEG
GAP = 3
QUALITY = 85


@dataclass
class Spec:
    """How one workflow's thumbnail is made. ``stage``: title of the last node that runs without a download
    (the prompt is cut after it), with ``note`` saying what is missing; ``panels(outputs)`` -> rows of
    pictures."""
    panels: Callable[[List[Image.Image]], List[List[Image.Image]]]
    stage: Optional[str] = None
    note: str = ""
    fit: str = "cover"   # or "contain": the whole picture, letterboxed (grids whose edges matter)


def _input(name: str) -> Image.Image:
    return Image.open(INPUTS / name).convert("RGB")


def _pick(images: List[Image.Image], k: int) -> List[Image.Image]:
    """k evenly spaced items (first and last included)."""
    if len(images) <= k:
        return images
    return [images[round(i * (len(images) - 1) / (k - 1))] for i in range(k)]


def _wipe(before: Image.Image, after: Image.Image) -> List[List[Image.Image]]:
    """One picture, its left half before and its right half after the workflow (a before/after wipe)."""
    a, b = _cover(before.convert("RGB"), SIZE, SIZE), _cover(after.convert("RGB"), SIZE, SIZE)
    a.paste(b.crop((SIZE // 2, 0, SIZE, SIZE)), (SIZE // 2, 0))
    ImageDraw.Draw(a).line((SIZE // 2, 0, SIZE // 2, SIZE), fill=(128, 128, 128), width=2)
    return [[a]]


def _shot_frames(numbers) -> List[Image.Image]:
    return [_input(f"gan_pack_shot/frame_{n:04d}.png") for n in numbers]


SHOT_PICKS = (1, 12, 24)

SPECS: Dict[str, Spec] = {
    "keyframe_stylize_shot": Spec(lambda out: [_shot_frames(SHOT_PICKS), [out[n - 1] for n in SHOT_PICKS]]),
    "pix2pix_image": Spec(lambda out: _wipe(_input("gan_pack_outlines.png"), out[0])),
    "cyclegan_frames": Spec(lambda out: [[_input(f"gan_pack_day_0{i}.png") for i in range(3)], out[:3]]),
    "image_channels": Spec(lambda out: _wipe(_input("gan_pack_example.png"), out[0])),
    "stylegan_style_mixing": Spec(lambda out: [[out[0]]], fit="contain"),
    "stylegan_edit_sweep": Spec(lambda out: [[out[0]]], fit="contain"),
    "stylegan_latent_walk": Spec(lambda out: [row for row in zip(*[iter(_pick(out, 9))] * 3)]),
    "translator_to_diffusion": Spec(lambda out: _wipe(_input("gan_pack_day_00.png"), out[0]),
                                    stage="Translate Image (Pix2Pix/CycleGAN)",
                                    note="needs an SD 1.5 checkpoint; shows the translator stage"),
    "stylegan_to_diffusion": Spec(lambda out: [[out[0]]], stage="Upscale Image",
                                  note="needs an SD 1.5 checkpoint; shows the StyleGAN stage"),
    "style_transfer_diffusion": Spec(lambda out: [[out[0]]], stage="Style image",
                                     note="needs SD 1.5 + VGG-19; shows the style image"),
    "style_transfer_frames": Spec(lambda out: [row for row in zip(*[iter(_pick(out, 4))] * 2)],
                                  stage="Shot frames", note="needs mosaic.pth; shows the input frames"),
}


# ------------------------------------------------------------------------------------------ prompts
def cut_after(prompt: Dict, title: str) -> Dict:
    """The part of ``prompt`` that feeds the node titled ``title``, with a Save Image on its first output."""
    (target,) = [k for k, v in prompt.items() if v.get("_meta", {}).get("title") == title]
    keep, todo = set(), [target]
    while todo:
        nid = todo.pop()
        if nid in keep:
            continue
        keep.add(nid)
        todo += [v[0] for v in prompt[nid]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    cut = {k: prompt[k] for k in keep}
    cut["thumbnail"] = {"class_type": "SaveImage", "inputs": {"images": [target, 0], "filename_prefix": "thumb/x"}}
    return cut


# ------------------------------------------------------------------------------------------ pictures
def _cover(img: Image.Image, w: int, h: int) -> Image.Image:
    """Scale to cover w x h (aspect kept) and crop the centre."""
    s = max(w / img.width, h / img.height)
    resample = Image.Resampling.LANCZOS if s < 1 else Image.Resampling.NEAREST if s >= 2 else Image.Resampling.BICUBIC
    img = img.resize((max(w, round(img.width * s)), max(h, round(img.height * s))), resample)
    left, top = (img.width - w) // 2, (img.height - h) // 2
    return img.crop((left, top, left + w, top + h))


def _contain(img: Image.Image, w: int, h: int) -> Image.Image:
    """Scale to fit inside w x h (aspect kept), centred on the card's background."""
    s = min(w / img.width, h / img.height)
    resample = Image.Resampling.LANCZOS if s < 1 else Image.Resampling.NEAREST if s >= 2 else Image.Resampling.BICUBIC
    img = img.resize((max(1, round(img.width * s)), max(1, round(img.height * s))), resample)
    cell = Image.new("RGB", (w, h), (24, 24, 24))
    cell.paste(img, ((w - img.width) // 2, (h - img.height) // 2))
    return cell


def compose(rows: List[List[Image.Image]], note: str = "", fit: str = "cover") -> Image.Image:
    card = Image.new("RGB", (SIZE, SIZE), (24, 24, 24))
    rows = [list(r) for r in rows if r]
    ch = (SIZE - GAP * (len(rows) - 1)) // len(rows)
    for r, row in enumerate(rows):
        cw = (SIZE - GAP * (len(row) - 1)) // len(row)
        for c, img in enumerate(row):
            place = _contain if fit == "contain" else _cover
            card.paste(place(img.convert("RGB"), cw, ch), (c * (cw + GAP), r * (ch + GAP)))
    if note:
        draw = ImageDraw.Draw(card, "RGBA")
        font = ImageFont.load_default(size=15)
        band = 30
        draw.rectangle((0, SIZE - band, SIZE, SIZE), fill=(0, 0, 0, 200))
        draw.text((SIZE // 2, SIZE - band // 2), note, fill=(255, 255, 255), font=font, anchor="mm")
    return card


# a workflow without a recipe: its outputs as they are (one picture whole, else up to four in a grid)
DEFAULT = Spec(lambda out: [[out[0]]] if len(out) == 1 else [row for row in zip(*[iter(_pick(out, 4))] * 2)],
               fit="contain")


def render(server, name: str, info: Dict) -> Path:
    spec = SPECS.get(name, DEFAULT)
    prompt = ui_to_api(load_workflow(WORKFLOWS / f"{name}.json"), info)
    if spec.stage:
        prompt = cut_after(prompt, spec.stage)
    entry = server.run(prompt, timeout=3600)
    outputs = [Image.open(f).convert("RGB") for f in server.output_files(entry)]
    if not outputs:
        raise RuntimeError(f"{name}: the run saved no images")
    path = WORKFLOWS / f"{name}.jpg"
    compose(spec.panels(outputs), spec.note, spec.fit).save(path, quality=QUALITY, optimize=True, progressive=False)
    return path


def main(argv=None) -> int:
    from scripts.comfy_client import ComfyServer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="workflows (default: all)")
    args = ap.parse_args(argv)
    names = args.names or sorted(p.stem for p in WORKFLOWS.glob("*.json"))
    for n in names:
        if n not in SPECS:
            print(f"{n}: no recipe in SPECS, showing its outputs as they are", flush=True)
    with ComfyServer() as server:
        info = server.object_info()
        for name in names:
            path = render(server, name, info)
            print(f"wrote {path.relative_to(REPO)} ({path.stat().st_size // 1024} KB)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
