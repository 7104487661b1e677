"""The reference GAN objectives: ``GANLoss`` (vanilla / lsgan / wgangp) and the WGAN-GP gradient penalty.

* ``vanilla``: binary cross-entropy on the discriminator's logits (``BCEWithLogits``) against a target map of
  1 (real) or 0 (fake), the same shape as the prediction.
* ``lsgan``: mean squared error against the same target map.
* ``wgangp``: ``-mean(prediction)`` for real, ``+mean(prediction)`` for fake.

The reference defines the gradient penalty (``cal_gradient_penalty``) but its Pix2Pix and CycleGAN models never
add it to the discriminator loss, even with ``gan_mode wgangp``; the trainer follows that by default and adds it
only when ``lambda_gp > 0`` (an option of this pack).
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

GAN_MODES = ("vanilla", "lsgan", "wgangp")


class GANLoss(nn.Module):
    def __init__(self, gan_mode: str = "lsgan", target_real_label: float = 1.0, target_fake_label: float = 0.0):
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise ValueError(f"gan_mode must be one of {', '.join(GAN_MODES)} (got {gan_mode!r})")
        self.gan_mode = gan_mode
        self.register_buffer("real_label", torch.tensor(float(target_real_label)))
        self.register_buffer("fake_label", torch.tensor(float(target_fake_label)))

    def target(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        label = self.real_label if target_is_real else self.fake_label
        return label.to(device=prediction.device, dtype=prediction.dtype).expand_as(prediction)

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        if self.gan_mode == "lsgan":
            return F.mse_loss(prediction, self.target(prediction, target_is_real))
        if self.gan_mode == "vanilla":
            return F.binary_cross_entropy_with_logits(prediction, self.target(prediction, target_is_real))
        return -prediction.mean() if target_is_real else prediction.mean()


def gradient_penalty(netD: nn.Module, real: torch.Tensor, fake: torch.Tensor, *, kind: str = "mixed",
                     constant: float = 1.0, lambda_gp: float = 10.0,
                     generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """WGAN-GP penalty ``lambda_gp * mean((||grad D(x)||_2 - constant)^2)`` at ``x`` = the real images, the fakes,
    or (``mixed``) a random per-sample blend ``a*real + (1-a)*fake`` with ``a ~ U[0, 1)``. Returns
    ``(penalty, gradients)``; ``(0, None)`` when ``lambda_gp <= 0``. Built with ``create_graph`` so the penalty
    can be backpropagated into ``netD``."""
    if lambda_gp <= 0.0:
        return torch.zeros((), device=real.device), None
    if kind == "real":
        x = real
    elif kind == "fake":
        x = fake
    elif kind == "mixed":
        alpha = torch.rand(real.shape[0], 1, device=real.device, generator=generator)
        alpha = alpha.expand(real.shape[0], real.numel() // real.shape[0]).contiguous().view(*real.shape)
        x = alpha * real + (1 - alpha) * fake
    else:
        raise ValueError(f"gradient penalty kind must be real, fake or mixed (got {kind!r})")
    x = x.detach().requires_grad_(True)
    out = netD(x)
    grads = torch.autograd.grad(outputs=out, inputs=x, grad_outputs=torch.ones_like(out), create_graph=True,
                                retain_graph=True, only_inputs=True)[0]
    grads = grads.reshape(real.shape[0], -1)
    penalty = (((grads + 1e-16).norm(2, dim=1) - constant) ** 2).mean() * lambda_gp
    return penalty, grads
