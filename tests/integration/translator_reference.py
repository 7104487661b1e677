"""Helpers shared by the translator pixel checks and integration tests: the engine run directly in the test
process on what a ComfyUI node received, with SaveImage's 8-bit round-off."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps
from integration.server_paths import models_root_of  # noqa: F401  (re-exported to the translator checks)

REPO = Path(__file__).resolve().parents[2]
INPUTS = REPO / "workflows" / "inputs"
BUNDLED = REPO / "models" / "bundled"


def load_image(path) -> torch.Tensor:
    """A file as core LoadImage gives it: [1, H, W, 3] float32 in [0, 1]."""
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]


def to_png8(images: torch.Tensor) -> np.ndarray:
    """What SaveImage writes for an IMAGE batch: clip(255 * x) truncated to uint8."""
    return np.clip(255.0 * images.detach().cpu().numpy(), 0, 255).astype(np.uint8)


def engine_translate(model_file, images: torch.Tensor, **options) -> torch.Tensor:
    import models

    translator = models.load_translator(str(model_file), device="cpu")
    with torch.no_grad():
        return models.translate(translator, images, **options)


def assert_close_8bit(saved: np.ndarray, expected: np.ndarray, tol: int = 1, what: str = "") -> int:
    assert saved.shape == expected.shape, f"{what}: shape {saved.shape} != {expected.shape}"
    diff = int(np.abs(saved.astype(np.int16) - expected.astype(np.int16)).max())
    assert diff <= tol, f"{what}: node output differs from the engine by {diff}/255 (allowed {tol}/255)"
    return diff


def recipe():
    from scripts import train_translators

    return train_translators


def nodes_of(prompt, class_type):
    return [k for k, v in prompt.items() if v["class_type"] == class_type]
