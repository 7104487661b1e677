"""Pixel checks of the colour-managed EXR workflow (exr_plate_translate): the EXR files the server wrote are
compared with the engine run in this process (OCIO -> bundled translator -> OCIO, then half-float round-off)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from integration.translator_reference import BUNDLED, engine_translate, nodes_of
from integration.workflow_checks import Check

REPO = Path(__file__).resolve().parents[2]


def _check_exr_plate_translate(server, prompt, files, images):
    from models.colour import convert_colourspace
    from models.io.exr import read_exr
    from models.sequence import list_image_sequence, load_image_sequence

    (load,) = nodes_of(prompt, "GANPackLoadImageSequence")
    (save,) = nodes_of(prompt, "GANPackSaveImageSequence")
    (trans,) = nodes_of(prompt, "GANPackTranslate")
    (loader,) = nodes_of(prompt, "GANPackLoadTranslator")
    to_display, to_scene = sorted(nodes_of(prompt, "GANPackColourTransform"), key=int)
    li, si = prompt[load]["inputs"], prompt[save]["inputs"]
    plate, numbers, alpha = load_image_sequence(server.input_dir / li["folder"], li["pattern"], return_alpha=True)
    assert numbers == [1001, 1002, 1003, 1004]
    assert plate.max() > 4.0, "the shipped plate should hold highlights far above display white"
    # the previews the node shows are PNGs (browsers cannot show EXR), one per frame
    assert len(files) == 4 and all(f.suffix == ".png" for f in files)
    out_dir = server.output_dir / si["folder"]
    written = list_image_sequence(out_dir, si["pattern"])
    assert [n for n, _ in written] == numbers, "frames not written under the plate's frame numbers"

    a, b = prompt[to_display]["inputs"], prompt[to_scene]["inputs"]
    display = convert_colourspace(plate, a["source"], a["target"])
    folder, name = prompt[loader]["inputs"]["model_name"].split("/", 1)
    opts = prompt[trans]["inputs"]
    night = engine_translate(BUNDLED / folder / name, display, tile_size=opts["tile_size"],
                             tile_overlap=opts["tile_overlap"], batch_size=opts["batch_size"])
    expected = convert_colourspace(night, b["source"], b["target"])
    expected_half = expected.half().float()
    for i, (n, path) in enumerate(written):
        img = read_exr(path)
        assert img.pixel_type == "half" and img.channels == ("R", "G", "B", "A"), (img.pixel_type, img.channels)
        assert np.array_equal(img.alpha, alpha[i].numpy()), f"frame {n}: alpha not passed through"
        got = torch.from_numpy(img.rgb)
        err = ((got - expected_half[i]).abs() / expected_half[i].abs().clamp(min=1.0)).max().item()
        assert err <= 2e-3, f"frame {n}: EXR differs from the engine by {err:.2e} (relative, half precision)"
    # what the workflow is for: night is much darker than the plate in scene-linear, and stays within what the
    # network can produce (display 0..1 -> ACEScg about 0..1)
    assert expected.mean() < 0.5 * plate.clamp(max=1.0).mean()
    assert float(expected.max()) <= 1.01 and float(expected.min()) >= -0.2


CHECKS = {"exr_plate_translate": Check(_check_exr_plate_translate)}
