"""Training of Pix2Pix and CycleGAN by the reference recipes (junyanz/pytorch-CycleGAN-and-pix2pix), written
for this pack: same objectives, networks, key layout, option names and defaults.

Modules: ``options`` (the reference's option names and defaults), ``networks`` (generators by name, PatchGAN
discriminators, weight init), ``objectives`` (GAN losses, gradient penalty), ``pool`` (image pool),
``schedules`` (learning-rate policies), ``trainer`` (``GANTrainer``: one reference step at a time), ``data``
(image folders, reference preprocessing), ``checkpoints`` (reference-layout network files, resumable state),
``loop`` (``train_folders``: a whole run with saving, samples, progress, resume).
"""
from __future__ import annotations

from .data import DataFolderError, FolderDataset
from .loop import TrainResult, train_folders
from .trainer import GANTrainer, NonFiniteLossError

__all__ = ["GANTrainer", "NonFiniteLossError", "train_folders", "TrainResult", "FolderDataset", "DataFolderError"]
