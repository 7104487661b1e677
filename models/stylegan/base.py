"""Common type of the StyleGAN generators (StyleGAN2-ADA, StyleGAN3-T/R) with the reference calling convention.

    ws  = G.mapping(z, c, truncation_psi=1, truncation_cutoff=None)   # [N, num_ws, w_dim]
    img = G.synthesis(ws, noise_mode='const')                          # [N, img_channels, R, R], ~[-1, 1]
    img = G(z, c, truncation_psi=1, truncation_cutoff=None, noise_mode='const')

Attributes: ``z_dim, c_dim, w_dim, num_ws, img_resolution, img_channels`` and the ``w_avg`` buffer (on the
mapping network, exposed here as a property). Modules stay in eval mode; nothing here mutates a cached model.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch
from torch import nn


class StyleGAN(nn.Module):
    """Base class; subclasses build ``self.mapping`` and ``self.synthesis`` and fill in the attributes."""

    family: str = "unknown"  # "stylegan2" | "stylegan3-t" | "stylegan3-r"
    z_dim: int
    c_dim: int
    w_dim: int
    num_ws: int
    img_resolution: int
    img_channels: int
    name: str = ""

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def config(self) -> Dict[str, Any]:
        """JSON-serialisable constructor arguments (with ``family``) that rebuild this generator."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor, c: Optional[torch.Tensor] = None, truncation_psi: float = 1.0,
                truncation_cutoff: Optional[int] = None, noise_mode: str = "const", **synthesis_kwargs) -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode, **synthesis_kwargs)
