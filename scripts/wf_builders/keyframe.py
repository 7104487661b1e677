"""Workflows of the shots family: keyframe stylisation of a frame sequence.

The bundled demo shot (``workflows/inputs/gan_pack_shot/``) and its painted keyframes are made by
:func:`make_demo_inputs` from ``models.shots.make_demo_shot``: a moving procedural scene, and a hidden "painted
look" (colour grade + posterisation + edge inking) applied to two of its frames, as an artist would paint them.
``python scripts/build_workflows.py keyframe_stylize_shot`` rewrites them only when they are missing
(``--force-inputs`` in :func:`make_demo_inputs` regenerates them).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

from scripts.build_workflows import Workflow

REPO = Path(__file__).resolve().parents[2]
INPUTS = REPO / "workflows" / "inputs"

# the bundled shot: 24 frames (1 s at 24 fps) of 256x256, numbered from 1
DEMO_SHOT = {"num_frames": 24, "size": 256, "seed": 4}
SHOT_FOLDER = "gan_pack_shot"
SHOT_PATTERN = "frame_%04d.png"
KEYFRAMES = (6, 19)  # frame numbers an artist painted


def keyframe_file(n: int) -> str:
    return f"gan_pack_keyframe_{n:04d}.png"


def painted_file(n: int) -> str:
    return f"gan_pack_keyframe_{n:04d}_painted.png"


def demo_input_paths(root: Path = INPUTS) -> List[Path]:
    paths = [root / SHOT_FOLDER / (SHOT_PATTERN % (i + 1)) for i in range(DEMO_SHOT["num_frames"])]
    for n in KEYFRAMES:
        paths += [root / keyframe_file(n), root / painted_file(n)]
    return paths


def painted_look(frames_nhwc):
    """The hidden stylisation applied to 8-bit frames (NHWC [0, 1]) -> NHWC [0, 1]."""
    from models.image import gan_to_image, image_to_gan
    from models.shots import demo_stylisation

    return gan_to_image(demo_stylisation(image_to_gan(frames_nhwc)))


def make_demo_inputs(root: Path = INPUTS, force: bool = False) -> List[Path]:
    """Write the demo shot (8-bit PNG) and the keyframes + painted keyframes; deterministic."""
    import numpy as np
    import torch
    from PIL import Image

    from models.image import gan_to_image
    from models.sequence import save_image_sequence
    from models.shots import render_demo_scene

    paths = demo_input_paths(root)
    if not force and all(p.is_file() for p in paths):
        return paths
    frames = gan_to_image(render_demo_scene(DEMO_SHOT["num_frames"], DEMO_SHOT["size"], DEMO_SHOT["seed"]))
    frames = torch.round(frames * 255) / 255  # what the PNGs hold: the look is painted on exactly those pixels
    save_image_sequence(frames, root / SHOT_FOLDER, SHOT_PATTERN, start=1, compress_level=9)
    painted = painted_look(frames[[n - 1 for n in KEYFRAMES]])
    for k, n in enumerate(KEYFRAMES):
        for name, img in ((keyframe_file(n), frames[n - 1]), (painted_file(n), painted[k])):
            arr = (img.numpy() * 255).round().clip(0, 255).astype(np.uint8)
            Image.fromarray(arr).save(root / name, optimize=True)
    return paths


def keyframe_stylize_shot(info) -> Workflow:
    make_demo_inputs()
    wf = Workflow(info)
    wf.note("Keyframe stylisation of a shot. An artist painted two frames of the shot (here: frames 6 and 19 of "
            "the bundled 24-frame demo shot, painted with a colour grade, posterisation and inked edges). Train "
            "Translator from Keyframes learns that look from the pairs in a few minutes (CPU) and Translate Image "
            "applies it to every frame; Save Image Sequence writes output/gan_pack/keyframe_shot/frame_####.png "
            "with the shot's frame numbers, and Save Translator keeps the look as models/pix2pix/"
            "gan_pack_demo_look.safetensors for Load Translator.\n"
            "Your own shot: put its frames in a folder under ComfyUI's input directory, paint one or more frames, "
            "and load the originals and the painted versions below (same order; Batch Images (GAN) takes up to "
            "eight). Long shots: render headless with "
            "scripts/render.py, which runs this workflow chunk by chunk and resumes.")
    shot = wf.add("GANPackLoadImageSequence", title="Shot frames", folder=SHOT_FOLDER, pattern=SHOT_PATTERN)
    originals = [wf.add("LoadImage", title=f"Keyframe {n}", image=keyframe_file(n)) for n in KEYFRAMES]
    painted = [wf.add("LoadImage", title=f"Keyframe {n} painted", image=painted_file(n)) for n in KEYFRAMES]
    keys = wf.add("GANPackBatchImages", title="Keyframes", image1=originals[0][0], image2=originals[1][0],
                  sizes="must match")
    looks = wf.add("GANPackBatchImages", title="Painted keyframes", image1=painted[0][0], image2=painted[1][0],
                   sizes="must match")
    trained = wf.add("GANPackTrainTranslatorFromKeyframes", keyframes=keys[0], painted_keyframes=looks[0], seed=0)
    styled = wf.add("GANPackTranslate", translator=trained[0], image=shot[0])
    wf.add("GANPackSaveImageSequence", images=styled[0], frame_numbers=shot[1], folder="gan_pack/keyframe_shot",
           pattern=SHOT_PATTERN)
    wf.add("GANPackSaveTranslator", translator=trained[0], filename="gan_pack_demo_look")
    return wf


BUILDERS: Dict[str, object] = {"keyframe_stylize_shot": keyframe_stylize_shot}
