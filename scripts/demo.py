"""The pack's main job on its bundled defaults, headless (README command 1).

Renders the shipped workflow ``workflows/keyframe_stylize_shot.json`` over the bundled 24-frame shot through a
real ComfyUI, using the headless renderer (``scripts/render.py``): the network learns the painted look from
two painted keyframes, then every frame of the shot is stylised and written as a numbered PNG. Writes to
``output/demo/``:

* ``frames/frame_0001.png`` ... the stylised shot,
* ``contact_sheet.png``: original (top) and stylised (bottom) frames side by side, keyframes marked,
* ``preview.gif``: the shot animated, original | stylised,
* ``summary.json``: timings and the quality figures printed at the end (PSNR of the unseen frames against
  the hidden ground-truth look, against the unstyled frames as a baseline; flicker).

Run it through ``python3 scripts/dev.py demo`` (which provisions ComfyUI first). The trained look is also saved
as ``models/pix2pix/gan_pack_demo_look.safetensors`` of that ComfyUI.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts import render  # noqa: E402
from scripts.wf_builders.keyframe import KEYFRAMES, SHOT_FOLDER, SHOT_PATTERN  # noqa: E402

WORKFLOW = REPO / "workflows" / "keyframe_stylize_shot.json"
TRAIN_NODE = "GANPackTrainTranslatorFromKeyframes"


def psnr(a, b) -> float:
    import torch

    mse = torch.mean((a.double() - b.double()) ** 2).item()
    return float("inf") if mse == 0 else 10 * torch.log10(torch.tensor(1.0 / mse)).item()


def evaluate(shot_dir: Path, frames_dir: Path) -> dict:
    """Quality of the rendered shot against the hidden look the keyframes were painted with."""
    import torch

    from models.sequence import load_image_sequence
    from models.temporal import flicker
    from scripts.wf_builders.keyframe import painted_look

    src, numbers = load_image_sequence(shot_dir, SHOT_PATTERN)
    out, out_numbers = load_image_sequence(frames_dir, SHOT_PATTERN)
    if out_numbers != numbers:
        raise RuntimeError(f"rendered frames {out_numbers} do not match the shot's {numbers}")
    truth = painted_look(src)
    unseen = torch.tensor([n not in KEYFRAMES for n in numbers])
    return {
        "psnr_unseen_db": round(psnr(out[unseen], truth[unseen]), 2),
        "psnr_unstyled_baseline_db": round(psnr(src[unseen], truth[unseen]), 2),
        "psnr_keyframes_db": round(psnr(out[~unseen], truth[~unseen]), 2),
        "flicker": round(flicker(out, src), 4),
        "flicker_ground_truth": round(flicker(truth, src), 4),
    }


def previews(shot_dir: Path, frames_dir: Path, out: Path, thumb: int = 192) -> tuple:
    """contact_sheet.png (originals over stylised, keyframes marked) and preview.gif (original | stylised)."""
    from PIL import Image, ImageDraw

    from models.sequence import list_image_sequence

    src = dict(list_image_sequence(shot_dir, SHOT_PATTERN))
    dst = dict(list_image_sequence(frames_dir, SHOT_PATTERN))
    numbers = sorted(dst)

    def pair(n: int) -> tuple:
        a = Image.open(src[n]).convert("RGB")
        b = Image.open(dst[n]).convert("RGB")
        a.thumbnail((thumb, thumb))
        b.thumbnail((thumb, thumb))
        return a, b

    columns = min(8, len(numbers))
    picks = sorted(set([numbers[round(i * (len(numbers) - 1) / max(1, columns - 1))] for i in range(columns)])
                   | {n for n in KEYFRAMES if n in dst})
    w, h = pair(picks[0])[0].size
    sheet = Image.new("RGB", (len(picks) * (w + 4) + 4, 2 * (h + 4) + 24), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    for i, n in enumerate(picks):
        a, b = pair(n)
        x = 4 + i * (w + 4)
        sheet.paste(a, (x, 22))
        sheet.paste(b, (x, 26 + h))
        label = f"{n}" + (" (painted keyframe)" if n in KEYFRAMES else "")
        draw.text((x + 2, 4), label, fill=(255, 210, 80) if n in KEYFRAMES else (230, 230, 230))
    sheet_path = out / "contact_sheet.png"
    sheet.save(sheet_path)
    frames = []
    for n in numbers:
        a, b = pair(n)
        f = Image.new("RGB", (2 * w + 4, h), (24, 24, 24))
        f.paste(a, (0, 0))
        f.paste(b, (w + 4, 0))
        frames.append(f.convert("P", palette=Image.ADAPTIVE))
    gif_path = out / "preview.gif"
    frames[0].save(gif_path, save_all=True, append_images=frames[1:], duration=1000 // 12, loop=0)
    return sheet_path, gif_path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=str(REPO / "output" / "demo"), help="where the results go (default output/demo)")
    ap.add_argument("--steps", type=int, help="training steps (default: the workflow's)")
    ap.add_argument("--chunk", type=int, default=8, help="frames per prompt (default 8)")
    ap.add_argument("--resume", action="store_true", help="keep frames of a previous run and render only the rest")
    ns = ap.parse_args(argv)
    out = Path(ns.out).resolve()
    frames_dir = out / "frames"
    if frames_dir.exists() and not ns.resume:
        shutil.rmtree(frames_dir)
    out.mkdir(parents=True, exist_ok=True)
    workdir = out / ".comfyui"  # the local server's own input/user/temp folders
    input_dir = workdir / "input"
    # the demo's private input folder always holds the shipped inputs (the pack never overwrites a user's files,
    # so a stale copy from an older checkout would otherwise stay)
    shutil.copytree(REPO / "workflows" / "inputs", input_dir, dirs_exist_ok=True)

    def setup(prompt: dict) -> None:
        saver = next(v for v in prompt.values() if v["class_type"] == render.SAVER)
        saver["inputs"]["folder"] = "frames"
        if ns.steps:
            for node in prompt.values():
                if node["class_type"] == TRAIN_NODE:
                    node["inputs"]["steps"] = ns.steps

    t0 = time.monotonic()
    print(f"[demo] keyframe stylisation of the bundled shot with {WORKFLOW.relative_to(REPO)} on a headless ComfyUI "
          f"(training takes a few minutes on a CPU) ...", flush=True)
    summary = render.render(WORKFLOW, local_servers=1, input_dir=input_dir, output_dir=out, workdir=workdir,
                            chunk=ns.chunk, prompt_hook=setup)
    if summary["failed_frames"]:
        print(f"[demo] FAILED: frames {summary['failed_frames']}: {summary['errors'][-1:]}", file=sys.stderr)
        return 1
    shot_dir = input_dir / SHOT_FOLDER
    quality = evaluate(shot_dir, frames_dir)
    sheet, gif = previews(shot_dir, frames_dir, out)
    summary.update(quality, total_seconds=round(time.monotonic() - t0, 1), contact_sheet=str(sheet), preview=str(gif))
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print(f"[demo] unseen frames: PSNR {quality['psnr_unseen_db']} dB against the painted look "
          f"(unstyled frames: {quality['psnr_unstyled_baseline_db']} dB); flicker {quality['flicker']} "
          f"(ground truth {quality['flicker_ground_truth']})")
    print(f"[demo] done in {summary['total_seconds']:.0f} s:\n"
          f"  frames:        {frames_dir}/frame_0001.png ... ({summary['rendered'] + summary['skipped']} frames)\n"
          f"  contact sheet: {sheet}\n"
          f"  preview:       {gif}\n"
          f"  summary:       {out / 'summary.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
