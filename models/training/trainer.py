"""``GANTrainer``: one reference ``optimize_parameters()`` per ``step``, for Pix2Pix and CycleGAN.

What a step does (the reference's order, which matters for BatchNorm statistics, for the image pools' random
draws and for which weights each loss sees):

**pix2pix** -- ``fake_B = G(real_A)``; discriminator step first: ``D_fake`` = GAN(D([A, fake_B].detach()), fake),
``D_real`` = GAN(D([A, B]), real), backward of ``0.5 * (D_fake + D_real)``, Adam step of D; then D is frozen and
``G_GAN`` = GAN(D([A, fake_B]), real) with the just-updated D, ``G_L1`` = λ_L1 · L1(fake_B, B), backward of the sum,
Adam step of G.

**cyclegan** -- ``fake_B = G_A(A)``, ``rec_A = G_B(fake_B)``, ``fake_A = G_B(B)``, ``rec_B = G_A(fake_A)``; generator
step first with both discriminators frozen: identity ``idt_A`` = λ_B·λ_idt · L1(G_A(B), B), ``idt_B`` =
λ_A·λ_idt · L1(G_B(A), A) (skipped when λ_idt = 0), ``G_A`` = GAN(D_A(fake_B), real), ``G_B`` = GAN(D_B(fake_A),
real), ``cycle_A`` = λ_A · L1(rec_A, A), ``cycle_B`` = λ_B · L1(rec_B, B); one backward of the sum and one Adam
step over G_A's then G_B's parameters. Then the discriminator step: ``D_A`` = 0.5·(GAN(D_A(B), real) +
GAN(D_A(pool_B(fake_B)), fake)), then ``D_B`` likewise with A and pool_A(fake_A) (the fakes of this step's
forward, not recomputed), both backward, one Adam step over D_A's then D_B's parameters.

Adam uses ``(beta1, 0.999)``, eps 1e-8, no weight decay; one scheduler per optimiser, stepped by
:meth:`update_learning_rate` at the end of every epoch. ``direction BtoA`` swaps the batch's A and B.

Non-finite input batches or initial weights are refused before the step; a non-finite loss stops with
:class:`NonFiniteLossError` (the networks have then been updated with it, so the run should go back to its last
saved state).
"""
from __future__ import annotations

import contextlib
import math
import random
from typing import Any, Dict, Mapping, Optional

import torch
import torch.nn.functional as F

from .. import validate
from . import options as _options
from .networks import define_D, define_G, init_weights, set_requires_grad
from .objectives import GANLoss, gradient_penalty
from .pool import ImagePool
from .schedules import make_scheduler, step_scheduler

LOSS_NAMES = {
    "pix2pix": ("G_GAN", "G_L1", "D_real", "D_fake"),
    "cyclegan": ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"),
}
MODEL_NAMES = {"pix2pix": ("G", "D"), "cyclegan": ("G_A", "G_B", "D_A", "D_B")}
VISUAL_NAMES = {"pix2pix": ("real_A", "fake_B", "real_B"),
                "cyclegan": ("real_A", "fake_B", "rec_A", "idt_B", "real_B", "fake_A", "rec_B", "idt_A")}


class NonFiniteLossError(FloatingPointError):
    """A loss became NaN or infinite (diverged training, or a learning rate far too large)."""


class GANTrainer:
    """Reference Pix2Pix / CycleGAN training, one step at a time.

    ``kind``: "pix2pix" or "cyclegan". ``init``: initial state dicts in the reference layout (``{"G", "D"}`` or
    ``{"G_A", "G_B", "D_A", "D_B"}``); without it the networks are initialised by ``init_type``/``init_gain`` from
    ``seed``. ``options``: the reference's option names (see :mod:`models.training.options`) plus ``seed``,
    ``lambda_gp``, ``amp``. ``device``: where to train (default CPU). ``train_size``: recorded in the generators
    (the crop size), used by inference helpers. ``dtype``: parameter precision (float32 as the reference;
    float64 for verification).
    """

    def __init__(self, kind: str, *, init: Optional[Mapping[str, Mapping[str, torch.Tensor]]] = None,
                 device=None, train_size: Optional[int] = None, dtype: torch.dtype = torch.float32, **options):
        allowed = set(_options.MODEL_OPTIONS) | {"seed", "lambda_gp", "amp"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise TypeError(f"unknown GANTrainer option(s) {', '.join(unknown)}; known: {', '.join(sorted(allowed))}")
        self.kind = kind
        self.opt = _options.resolve(kind, options, "all")
        o = self.opt
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        self.loss_names = LOSS_NAMES[kind]
        self.model_names = MODEL_NAMES[kind]
        # building the layers draws PyTorch's default initialisation from the global RNG; keep that RNG (which
        # drives dropout during the steps) untouched, so the masks follow whatever seed the caller set
        with torch.random.fork_rng(devices=[]):
            nets = self._build(kind, o, train_size)
        if init is not None:
            self._load_init(nets, init)
        self.dtype = dtype
        self.nets = {k: v.to(self.device, dtype).train() for k, v in nets.items()}
        self.criterion = GANLoss(o["gan_mode"]).to(self.device)
        betas = (o["beta1"], 0.999)
        gens = [self.nets[k] for k in self.model_names if k.startswith("G")]
        discs = [self.nets[k] for k in self.model_names if k.startswith("D")]
        self.optimizer_G = torch.optim.Adam([p for n in gens for p in n.parameters()], lr=o["lr"], betas=betas)
        self.optimizer_D = torch.optim.Adam([p for n in discs for p in n.parameters()], lr=o["lr"], betas=betas)
        self.optimizers = [self.optimizer_G, self.optimizer_D]
        sched = {k: o[k] for k in ("lr_policy", "n_epochs", "n_epochs_decay", "epoch_count", "lr_decay_iters")}
        self.schedulers = [make_scheduler(opt, **sched) for opt in self.optimizers]
        # the reference's pools draw from Python's global `random`; here one seeded generator shared by both
        self.rng = random.Random(int(o["seed"]))
        self.pools = {}
        if kind == "cyclegan":
            self.pools = {"fake_A": ImagePool(o["pool_size"], self.rng), "fake_B": ImagePool(o["pool_size"], self.rng)}
        self.amp = bool(o["amp"]) and self.device.type == "cuda"
        self.scalers = [torch.amp.GradScaler("cuda") for _ in self.optimizers] if self.amp else []
        self.losses: Dict[str, float] = {k: 0.0 for k in self.loss_names}
        self.visuals: Dict[str, torch.Tensor] = {}
        self.steps = 0

    # ------------------------------------------------------------------ construction helpers
    @staticmethod
    def _build(kind: str, o: Mapping[str, Any], train_size: Optional[int]) -> Dict[str, torch.nn.Module]:
        dropout = not o["no_dropout"]
        nc_in, nc_out = o["input_nc"], o["output_nc"]
        if kind == "pix2pix":
            nets = {"G": define_G(nc_in, nc_out, o["ngf"], o["netG"], o["norm"], dropout, train_size),
                    "D": define_D(nc_in + nc_out, o["ndf"], o["netD"], o["n_layers_D"], o["norm"])}
        else:
            if o["lambda_identity"] > 0 and nc_in != nc_out:
                raise ValueError(f"identity loss needs input_nc == output_nc (got {nc_in} and {nc_out}); "
                                 "set lambda_identity 0")
            nets = {"G_A": define_G(nc_in, nc_out, o["ngf"], o["netG"], o["norm"], dropout, train_size),
                    "G_B": define_G(nc_out, nc_in, o["ngf"], o["netG"], o["norm"], dropout, train_size),
                    "D_A": define_D(nc_out, o["ndf"], o["netD"], o["n_layers_D"], o["norm"]),
                    "D_B": define_D(nc_in, o["ndf"], o["netD"], o["n_layers_D"], o["norm"])}
        gen = torch.Generator().manual_seed(int(o["seed"]))
        for name in MODEL_NAMES[kind]:  # the reference's order: generators, then discriminators
            init_weights(nets[name], o["init_type"], o["init_gain"], generator=gen)
        return nets

    def _load_init(self, nets, init) -> None:
        missing = [k for k in self.model_names if k not in init]
        extra = [k for k in init if k not in self.model_names]
        if missing or extra:
            raise KeyError(f"{self.kind} init needs state dicts for {', '.join(self.model_names)}"
                           + (f"; missing {', '.join(missing)}" if missing else "")
                           + (f"; unexpected {', '.join(extra)}" if extra else ""))
        for name in self.model_names:
            sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in init[name].items()}
            validate.check_tensors_finite(sd, f"init[{name!r}]", node="GANTrainer")
            try:
                nets[name].load_state_dict(sd, strict=True)
            except RuntimeError as exc:
                raise ValueError(f"init[{name!r}] does not match the {name} network built from the options "
                                 f"(netG/netD/ngf/ndf/norm/no_dropout...): {exc}") from None

    # ------------------------------------------------------------------ public API
    def state_dicts(self) -> Dict[str, Dict[str, torch.Tensor]]:
        """Every network's state dict in the reference layout (CPU copies; BatchNorm statistics included)."""
        return {name: {k: v.detach().to("cpu").clone() for k, v in self.nets[name].state_dict().items()}
                for name in self.model_names}

    def generators(self) -> Dict[str, torch.nn.Module]:
        return {k: v for k, v in self.nets.items() if k.startswith("G")}

    @property
    def lr(self) -> float:
        return float(self.optimizers[0].param_groups[0]["lr"])

    def update_learning_rate(self) -> float:
        """One scheduler step for both optimisers (the reference calls it once per epoch); returns the new rate."""
        for s in self.schedulers:
            step_scheduler(s, 0.0)
        return self.lr

    def step(self, batch: Mapping[str, torch.Tensor]) -> Dict[str, float]:
        """One training iteration on ``batch`` = ``{"A": NCHW, "B": NCHW}`` in [-1, 1]; returns the losses."""
        if "A" not in batch or "B" not in batch:
            raise KeyError("a training batch is a dict with 'A' and 'B' image tensors (NCHW, [-1, 1])")
        a, b = batch["A"], batch["B"]
        for name, t in (("A", a), ("B", b)):
            if t.ndim != 4:
                raise ValueError(f"batch[{name!r}] must be NCHW, got shape {tuple(t.shape)}")
            if not torch.is_floating_point(t):
                raise TypeError(f"batch[{name!r}] must be a floating-point tensor, got {t.dtype}")
            validate.check_image_finite(t, f"batch[{name!r}]", node="GANTrainer")
        if self.opt["direction"] == "BtoA":
            a, b = b, a
        real_A = a.to(self.device, self.dtype)
        real_B = b.to(self.device, self.dtype)
        if real_A.shape[1] != self.opt["input_nc"] or real_B.shape[1] != self.opt["output_nc"]:
            raise ValueError(f"the batch has {real_A.shape[1]} -> {real_B.shape[1]} channels but the networks take "
                             f"input_nc {self.opt['input_nc']} -> output_nc {self.opt['output_nc']}")
        if self.kind == "pix2pix":
            if real_A.shape[0] != real_B.shape[0] or real_A.shape[2:] != real_B.shape[2:]:
                raise ValueError(f"pix2pix pairs must have the same size: A {tuple(real_A.shape)}, "
                                 f"B {tuple(real_B.shape)}")
            losses = self._step_pix2pix(real_A, real_B)
        else:
            losses = self._step_cyclegan(real_A, real_B)
        self.steps += 1
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            raise NonFiniteLossError(
                f"non-finite loss after training step {self.steps}: "
                + ", ".join(f"{k}={losses[k]}" for k in bad)
                + " -- the training diverged (learning rate too high, or broken data); resume from the last "
                  "saved state with a lower --lr")
        self.losses = losses
        return dict(losses)

    # ------------------------------------------------------------------ steps
    def _autocast(self):
        if self.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    def _backward_step(self, loss: torch.Tensor, which: int) -> None:
        opt = self.optimizers[which]
        if self.amp:
            scaler = self.scalers[which]
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()

    def _d_loss(self, netD, real, fake) -> tuple:
        with self._autocast():
            loss_real = self.criterion(netD(real), True)
            loss_fake = self.criterion(netD(fake.detach()), False)
        return loss_real, loss_fake

    def _penalty(self, netD, real, fake) -> torch.Tensor:
        if self.opt["gan_mode"] != "wgangp" or self.opt["lambda_gp"] <= 0:
            return None
        gp, _ = gradient_penalty(netD, real, fake.detach(), lambda_gp=self.opt["lambda_gp"])
        return gp

    def _step_pix2pix(self, real_A, real_B) -> Dict[str, float]:
        G, D = self.nets["G"], self.nets["D"]
        with self._autocast():
            fake_B = G(real_A)
        # discriminator
        set_requires_grad([D], True)
        self.optimizer_D.zero_grad()
        with self._autocast():
            fake_AB = torch.cat((real_A, fake_B), 1)
            loss_D_fake = self.criterion(D(fake_AB.detach()), False)
            real_AB = torch.cat((real_A, real_B), 1)
            loss_D_real = self.criterion(D(real_AB), True)
            loss_D = (loss_D_fake + loss_D_real) * 0.5
        gp = self._penalty(D, real_AB, fake_AB)
        if gp is not None:
            loss_D = loss_D + gp
        self._backward_step(loss_D, 1)
        # generator
        set_requires_grad([D], False)
        self.optimizer_G.zero_grad()
        with self._autocast():
            loss_G_GAN = self.criterion(D(torch.cat((real_A, fake_B), 1)), True)
            loss_G_L1 = F.l1_loss(fake_B, real_B) * self.opt["lambda_L1"]
            loss_G = loss_G_GAN + loss_G_L1
        self._backward_step(loss_G, 0)
        set_requires_grad([D], True)
        self.visuals = {"real_A": real_A.detach(), "fake_B": fake_B.detach(), "real_B": real_B.detach()}
        return {"G_GAN": _item(loss_G_GAN), "G_L1": _item(loss_G_L1), "D_real": _item(loss_D_real),
                "D_fake": _item(loss_D_fake)}

    def _step_cyclegan(self, real_A, real_B) -> Dict[str, float]:
        o = self.opt
        G_A, G_B, D_A, D_B = (self.nets[k] for k in ("G_A", "G_B", "D_A", "D_B"))
        with self._autocast():
            fake_B = G_A(real_A)
            rec_A = G_B(fake_B)
            fake_A = G_B(real_B)
            rec_B = G_A(fake_A)
        # generators, discriminators frozen
        set_requires_grad([D_A, D_B], False)
        self.optimizer_G.zero_grad()
        lam_idt, lam_A, lam_B = o["lambda_identity"], o["lambda_A"], o["lambda_B"]
        with self._autocast():
            if lam_idt > 0:
                idt_A = G_A(real_B)
                loss_idt_A = F.l1_loss(idt_A, real_B) * lam_B * lam_idt
                idt_B = G_B(real_A)
                loss_idt_B = F.l1_loss(idt_B, real_A) * lam_A * lam_idt
            else:
                idt_A = idt_B = None
                loss_idt_A = loss_idt_B = 0
            loss_G_A = self.criterion(D_A(fake_B), True)
            loss_G_B = self.criterion(D_B(fake_A), True)
            loss_cycle_A = F.l1_loss(rec_A, real_A) * lam_A
            loss_cycle_B = F.l1_loss(rec_B, real_B) * lam_B
            loss_G = loss_G_A + loss_G_B + loss_cycle_A + loss_cycle_B + loss_idt_A + loss_idt_B
        self._backward_step(loss_G, 0)
        # discriminators
        set_requires_grad([D_A, D_B], True)
        self.optimizer_D.zero_grad()
        pooled_B = self.pools["fake_B"].query(fake_B)
        real, fake = self._d_loss(D_A, real_B, pooled_B)
        loss_D_A = (real + fake) * 0.5
        gp = self._penalty(D_A, real_B, pooled_B)
        if gp is not None:
            loss_D_A = loss_D_A + gp
        pooled_A = self.pools["fake_A"].query(fake_A)
        real, fake = self._d_loss(D_B, real_A, pooled_A)
        loss_D_B = (real + fake) * 0.5
        gp = self._penalty(D_B, real_A, pooled_A)
        if gp is not None:
            loss_D_B = loss_D_B + gp
        if self.amp:  # one scaled backward per loss, one optimiser step for both
            scaler = self.scalers[1]
            scaler.scale(loss_D_A).backward()
            scaler.scale(loss_D_B).backward()
            scaler.step(self.optimizer_D)
            scaler.update()
        else:
            loss_D_A.backward()
            loss_D_B.backward()
            self.optimizer_D.step()
        self.visuals = {"real_A": real_A.detach(), "fake_B": fake_B.detach(), "rec_A": rec_A.detach(),
                        "real_B": real_B.detach(), "fake_A": fake_A.detach(), "rec_B": rec_B.detach()}
        if idt_A is not None:
            self.visuals["idt_A"] = idt_A.detach()
            self.visuals["idt_B"] = idt_B.detach()
        return {"D_A": _item(loss_D_A), "G_A": _item(loss_G_A), "cycle_A": _item(loss_cycle_A),
                "idt_A": _item(loss_idt_A), "D_B": _item(loss_D_B), "G_B": _item(loss_G_B),
                "cycle_B": _item(loss_cycle_B), "idt_B": _item(loss_idt_B)}

    # ------------------------------------------------------------------ resumable state
    def training_state(self) -> Dict[str, Any]:
        """Everything needed to continue this trainer exactly: networks, optimisers, schedulers, pools, the pool
        RNG, the torch RNG states and the step count (CPU tensors, loadable with ``weights_only=True``)."""
        state = {
            "kind": self.kind,
            "options": dict(self.opt),
            "steps": self.steps,
            "nets": self.state_dicts(),
            "optimizers": [_to_cpu(o.state_dict()) for o in self.optimizers],
            "schedulers": [_plain_scheduler_state(s) for s in self.schedulers],
            "pools": {k: p.state_dict() for k, p in self.pools.items()},
            "python_rng": _rng_state_to_list(self.rng.getstate()),
            "torch_rng": torch.get_rng_state(),
            "scalers": [s.state_dict() for s in self.scalers],
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_training_state(self, state: Mapping[str, Any]) -> None:
        if state.get("kind") != self.kind:
            raise ValueError(f"training state is for {state.get('kind')!r}, not {self.kind!r}")
        for name in self.model_names:
            self.nets[name].load_state_dict(state["nets"][name])
        for opt, sd in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(sd)
        for s, sd in zip(self.schedulers, state["schedulers"]):
            s.load_state_dict(sd)
        for k, p in self.pools.items():
            p.load_state_dict(state["pools"][k], self.device)
        self.rng.setstate(_rng_state_from_list(state["python_rng"]))
        torch.set_rng_state(state["torch_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        for s, sd in zip(self.scalers, state.get("scalers", [])):
            s.load_state_dict(sd)
        self.steps = int(state["steps"])


def _item(x) -> float:
    return float(x.detach().item()) if isinstance(x, torch.Tensor) else float(x)


def _to_cpu(obj):
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu").clone()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _plain_scheduler_state(s) -> Dict[str, Any]:
    sd = s.state_dict()
    # LambdaLR keeps callable objects' __dict__ (plain ints here); drop anything that is not plain data
    return {k: v for k, v in sd.items() if isinstance(v, (int, float, str, bool, list, dict, type(None)))}


def _rng_state_to_list(state) -> list:
    version, internal, gauss = state
    return [int(version), list(internal), gauss]


def _rng_state_from_list(state) -> tuple:
    version, internal, gauss = state
    return (int(version), tuple(int(x) for x in internal), gauss)
