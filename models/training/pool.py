"""The reference's image pool: discriminators see a mix of the newest fakes and older ones (Shrivastava et al.).

While fewer than ``pool_size`` images are stored, every new fake is stored and returned as it is. Once full,
for each new image a coin is drawn with ``rng.uniform(0, 1)``: above 0.5 a stored image chosen by
``rng.randint(0, pool_size - 1)`` is returned (a copy) and the new image takes its place; otherwise the new image
is returned and the pool is unchanged. The reference draws from Python's global ``random``; here ``rng`` is any
object with ``uniform``/``randint`` (a ``random.Random`` shared by the model's pools, seeded, saved with the
training state), so a run is reproducible and resumable. ``pool_size 0`` disables the pool.
"""
from __future__ import annotations

import random
from typing import Any, Dict, List, Optional

import torch


class ImagePool:
    def __init__(self, pool_size: int, rng: Optional[random.Random] = None):
        if pool_size < 0:
            raise ValueError(f"pool_size must be >= 0 (got {pool_size})")
        self.pool_size = int(pool_size)
        self.rng = rng if rng is not None else random.Random(0)
        self.images: List[torch.Tensor] = []

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.pool_size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image)
                out.append(image)
            elif self.rng.uniform(0, 1) > 0.5:
                i = self.rng.randint(0, self.pool_size - 1)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self) -> Dict[str, Any]:
        return {"pool_size": self.pool_size, "images": [t.detach().cpu().clone() for t in self.images]}

    def load_state_dict(self, state: Dict[str, Any], device=None) -> None:
        self.pool_size = int(state["pool_size"])
        self.images = [t.to(device) if device is not None else t for t in state["images"]]
