"""Training speed: iterations per second of the reference recipes at 256x256 (the reference's crop), batch 1.

Cases: pix2pix (unet_256, ngf/ndf 64, BatchNorm, dropout, vanilla GAN + L1) and CycleGAN (two resnet_9blocks
generators, two 70x70 PatchGANs, LSGAN, cycle + identity losses, image pools), the reference's defaults, one
``GANTrainer.step`` = one reference ``optimize_parameters()``. Baseline, measured in the same run: one plain
forward + backward of the same generator with an L1 loss (the irreducible core of an iteration); ``ratio`` is
iterations/s over that baseline's, i.e. how many generator passes' worth an iteration costs (the reference's
recipe: pix2pix ~1 G pass + 3 D passes, CycleGAN 6 G passes + 8 D passes). With ``--reference
pix2pix=PATH`` nothing more is timed here (the reference trainer needs its own data pipeline).
"""
from __future__ import annotations

import torch

from bench.run import Row, emit, group, peak_memory, timed


def _case(kind: str, device, repeats: int, size: int = 256):
    from models.training import GANTrainer

    t = GANTrainer(kind, device=device, seed=0)
    g = torch.Generator().manual_seed(0)
    batch = {"A": torch.rand(1, 3, size, size, generator=g) * 2 - 1,
             "B": torch.rand(1, 3, size, size, generator=g) * 2 - 1}
    with peak_memory(device) as mem:
        sec, _ = timed(lambda: t.step(batch), device, repeats=repeats, warmup=1)
    G = t.nets["G" if kind == "pix2pix" else "G_A"]
    x, y = batch["A"].to(device), batch["B"].to(device)

    def core():
        G.zero_grad(set_to_none=True)
        loss = (G(x) - y).abs().mean()
        loss.backward()
        return loss

    base, _ = timed(core, device, repeats=repeats, warmup=1)
    opt = t.opt
    note = (f"{opt['netG']} ngf {opt['ngf']}, {opt['netD']} D ndf {opt['ndf']}, {opt['norm']} norm, {opt['gan_mode']}; "
            f"{sec:.2f} s/iteration, baseline G fwd+bwd {base:.2f} s")
    emit(Row("training", f"{kind} {size}x{size} b1", "train", 1.0 / sec, mem.get("mb", float("nan")),
             ratio=base / sec, note=note, extra={"seconds_per_iteration": sec, "baseline_seconds": base}))


@group("training")
def run(args, device):
    repeats = 2 if args.quick else 4
    for kind in ("pix2pix", "cyclegan"):
        _case(kind, device, repeats)
