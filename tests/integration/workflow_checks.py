"""What each shipped workflow must produce, checked on the decoded output pixels.

Every workflow in ``workflows/`` needs an entry (the integration test fails otherwise): ``prepare`` may
put models/inputs in place or shrink the prompt for CPU tests; ``check`` asserts on the real output pixels.
Each node family keeps its checks in ``tests/integration/checks_<family>.py`` with a ``CHECKS`` dict; this
module merges them.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "workflows" / "inputs" / "gan_pack_example.png"


@dataclass
class Check:
    check: Callable
    prepare: Optional[Callable] = None


def _check_image_channels(server, prompt, files, images):
    src = np.asarray(Image.open(EXAMPLE).convert("RGB")).astype(np.float64) / 255
    (out,) = images
    assert out.shape[:2] == src.shape[:2]
    out = out[..., :3].astype(np.float64) / 255
    # grayscale: all channels equal and equal to the BT.601 luma of the input (8-bit round-off)
    assert np.abs(out[..., 0] - out[..., 1]).max() <= 1 / 255
    assert np.abs(out[..., 0] - out[..., 2]).max() <= 1 / 255
    luma = src @ np.array([0.299, 0.587, 0.114])
    assert np.abs(out[..., 0] - luma).max() <= 1.01 / 255


CHECKS = {
    "image_channels": Check(_check_image_channels),
}


def _collect() -> None:
    import importlib
    import pkgutil

    here = Path(__file__).parent
    for mod in sorted(pkgutil.iter_modules([str(here)]), key=lambda m: m.name):
        if not mod.name.startswith("checks_"):
            continue
        module = importlib.import_module(f"{__package__}.{mod.name}")
        for name, check in module.CHECKS.items():
            if name in CHECKS:
                raise ValueError(f"two pixel checks for workflow {name}")
            CHECKS[name] = check


_collect()
