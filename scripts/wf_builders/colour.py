"""Workflows of the colour-managed VFX path: an OpenEXR plate in ACEScg through a display-referred network.

The shipped plate (``workflows/inputs/gan_pack_plate/plate.1001-1004.exr``) is made by ``scripts/make_exr_plate.py``
(written here only when it is missing).
"""
from __future__ import annotations

from typing import Dict

from scripts.build_workflows import Workflow

CYCLEGAN_MODEL = "cyclegan/day2night_resnet6_in.safetensors"
SCENE = "ACEScg"
DISPLAY = "sRGB - Display"


def exr_plate_translate(info) -> Workflow:
    from scripts.make_exr_plate import FIRST_FRAME, PLATE_FOLDER, PLATE_PATTERN, make_plate

    make_plate()
    wf = Workflow(info)
    wf.note("A VFX plate through a GAN, colour-managed. The plate is an OpenEXR sequence (half float, scene-linear "
            f"ACEScg, frames {FIRST_FRAME}-{FIRST_FRAME + 3}; the sun is about 8x display white). Colour Transform "
            f"(OCIO) converts it to {DISPLAY} for the network (display-referred 0-1), the bundled day-to-night "
            f"translator renders night, a second Colour Transform takes the result back to {SCENE}, and Save Image "
            "Sequence writes half-float EXRs with the plate's frame numbers and alpha to "
            "output/gan_pack/plate_night/plate.####.exr.\n"
            "The network only sees 0-1: plate values above display white (the sun) are clamped by it. To let it see "
            "highlights, pick the target 'sRGB - Display / ACES 2.0 - SDR 100 nits (Rec.709)' (tone mapped) and the "
            "same as the source of the second transform. Your own plates: put the EXR folder under ComfyUI's input "
            "directory; your show's config: $OCIO or ComfyUI/models/ocio. Long shots: scripts/render.py renders "
            "this workflow in chunks and resumes.")
    plate = wf.add("GANPackLoadImageSequence", title="EXR plate (ACEScg)", folder=PLATE_FOLDER, pattern=PLATE_PATTERN)
    to_display = wf.add("GANPackColourTransform", title="ACEScg -> display", images=plate[0], source=SCENE,
                        target=DISPLAY)
    model = wf.add("GANPackLoadTranslator", model_name=CYCLEGAN_MODEL, direction="auto")
    night = wf.add("GANPackTranslate", translator=model[0], image=to_display[0])
    to_scene = wf.add("GANPackColourTransform", title="display -> ACEScg", images=night[0], source=DISPLAY,
                      target=SCENE)
    wf.add("GANPackSaveImageSequence", title="EXR out (ACEScg)", images=to_scene[0], frame_numbers=plate[1],
           alpha=plate[3], folder="gan_pack/plate_night", pattern=PLATE_PATTERN, bit_depth="16")
    return wf


BUILDERS: Dict[str, object] = {"exr_plate_translate": exr_plate_translate}
