"""Learning-rate policies of the reference (``--lr_policy``), stepped once per epoch.

* ``linear`` (default): the initial rate for ``n_epochs`` epochs, then linearly towards zero over
  ``n_epochs_decay`` epochs. After ``k`` scheduler steps the factor is
  ``1 - max(0, k + epoch_count - n_epochs) / (n_epochs_decay + 1)``; the training loop steps the scheduler at the end
  of every epoch, so with the defaults (100 + 100, ``epoch_count`` 1) epochs 1-100 run at ``lr`` and epoch
  ``100 + j`` at ``lr * (1 - j/101)``.
* ``step``: multiply by 0.1 every ``lr_decay_iters`` epochs.
* ``plateau``: ``ReduceLROnPlateau(mode=min, factor=0.2, threshold=0.01, patience=5)`` fed a metric of 0, as the
  reference does.
* ``cosine``: cosine annealing to 0 over ``n_epochs`` epochs.
"""
from __future__ import annotations

from torch.optim import lr_scheduler

LR_POLICIES = ("linear", "step", "plateau", "cosine")


class LinearDecay:
    """Factor of the ``linear`` policy as a callable object (so it is saved with the scheduler's state)."""

    def __init__(self, n_epochs: int, n_epochs_decay: int, epoch_count: int = 1):
        self.n_epochs, self.n_epochs_decay, self.epoch_count = int(n_epochs), int(n_epochs_decay), int(epoch_count)

    def __call__(self, epoch: int) -> float:
        return 1.0 - max(0, epoch + self.epoch_count - self.n_epochs) / float(self.n_epochs_decay + 1)


def make_scheduler(optimizer, *, lr_policy: str = "linear", n_epochs: int = 100, n_epochs_decay: int = 100,
                   epoch_count: int = 1, lr_decay_iters: int = 50):
    if lr_policy == "linear":
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=LinearDecay(n_epochs, n_epochs_decay, epoch_count))
    if lr_policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=int(lr_decay_iters), gamma=0.1)
    if lr_policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    if lr_policy == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=int(n_epochs), eta_min=0)
    raise ValueError(f"lr_policy must be one of {', '.join(LR_POLICIES)} (got {lr_policy!r})")


def step_scheduler(scheduler, metric: float = 0.0) -> None:
    if isinstance(scheduler, lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metric)
    else:
        scheduler.step()
