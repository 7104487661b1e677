"""Training options by the reference's names (``options/base_options.py``, ``train_options.py`` and each model's
``modify_commandline_options``), with the reference's defaults per model.

``MODEL_OPTIONS`` configure :class:`~models.training.GANTrainer` (networks, losses, optimisers, schedules);
``LOOP_OPTIONS`` the training run (data, epochs, saving); ``EXTRA_OPTIONS`` are this pack's additions.
:func:`parse_option_string` reads ``"--ngf 32 --no_dropout --gan_mode lsgan"`` as the reference's command line
would, for the node's free-form options field.
"""
from __future__ import annotations

import math
import shlex
from typing import Any, Dict, Mapping

KINDS = ("pix2pix", "cyclegan")

# option -> (default for pix2pix, default for cyclegan)
_MODEL = {
    "netG": ("unet_256", "resnet_9blocks"),
    "netD": ("basic", "basic"),
    "n_layers_D": (3, 3),
    "ngf": (64, 64),
    "ndf": (64, 64),
    "norm": ("batch", "instance"),
    "no_dropout": (False, True),
    "gan_mode": ("vanilla", "lsgan"),
    "lambda_A": (10.0, 10.0),
    "lambda_B": (10.0, 10.0),
    "lambda_identity": (0.5, 0.5),
    "lambda_L1": (100.0, 100.0),
    "pool_size": (0, 50),
    "lr": (0.0002, 0.0002),
    "beta1": (0.5, 0.5),
    "input_nc": (3, 3),
    "output_nc": (3, 3),
    "direction": ("AtoB", "AtoB"),
    "init_type": ("normal", "normal"),
    "init_gain": (0.02, 0.02),
    # learning-rate schedule (needed by the trainer's schedulers)
    "lr_policy": ("linear", "linear"),
    "n_epochs": (100, 100),
    "n_epochs_decay": (100, 100),
    "epoch_count": (1, 1),
    "lr_decay_iters": (50, 50),
}
_LOOP = {
    "dataset_mode": ("aligned", "unaligned"),
    "phase": ("train", "train"),
    "batch_size": (1, 1),
    "load_size": (286, 286),
    "crop_size": (256, 256),
    "preprocess": ("resize_and_crop", "resize_and_crop"),
    "no_flip": (False, False),
    "serial_batches": (False, False),
    "max_dataset_size": (math.inf, math.inf),
    "print_freq": (100, 100),
    "display_freq": (400, 400),
    "save_latest_freq": (5000, 5000),
    "save_epoch_freq": (5, 5),
    "save_by_iter": (False, False),
    "continue_train": (False, False),
    "epoch": ("latest", "latest"),
    "checkpoints_dir": ("./checkpoints", "./checkpoints"),
    "name": ("experiment_name", "experiment_name"),
}
# this pack's additions
_EXTRA = {
    "lambda_gp": (0.0, 0.0),      # WGAN-GP penalty weight (the reference defines it but never applies it)
    "seed": (0, 0),               # initial weights, data order and augmentation, image pools, dropout
    "amp": (False, False),        # float16 autocast + gradient scaling on CUDA
    "max_iters": (0, 0),          # stop after this many iterations (0 = the full epoch schedule)
    "save_state_freq": (0, 0),    # resumable training state every N iterations (0 = save_latest_freq)
}

MODEL_OPTIONS = tuple(_MODEL)
LOOP_OPTIONS = tuple(_LOOP)
EXTRA_OPTIONS = tuple(_EXTRA)
BOOL_OPTIONS = tuple(k for k, v in {**_MODEL, **_LOOP, **_EXTRA}.items() if isinstance(v[0], bool))


def _kind_index(kind: str) -> int:
    if kind not in KINDS:
        raise ValueError(f"kind must be 'pix2pix' or 'cyclegan' (got {kind!r})")
    return KINDS.index(kind)


def defaults(kind: str, which: str = "all") -> Dict[str, Any]:
    """The reference's defaults for ``kind`` (``which``: "model", "loop", "extra" or "all")."""
    i = _kind_index(kind)
    tables = {"model": [_MODEL], "loop": [_LOOP], "extra": [_EXTRA], "all": [_MODEL, _LOOP, _EXTRA]}[which]
    return {k: v[i] for t in tables for k, v in t.items()}


def resolve(kind: str, options: Mapping[str, Any], which: str = "all") -> Dict[str, Any]:
    """Defaults overridden by ``options``; unknown names raise ``TypeError`` listing the known ones; values are
    converted to the default's type and checked."""
    out = defaults(kind, which)
    unknown = sorted(set(options) - set(out))
    if unknown:
        raise TypeError(f"unknown {kind} option(s) {', '.join(unknown)}; known: {', '.join(sorted(out))}")
    for k, v in options.items():
        d = out[k]
        if isinstance(d, bool):
            v = _to_bool(k, v)
        elif isinstance(d, int) and not isinstance(d, bool):
            v = _to_int(k, v)
        elif isinstance(d, float):
            v = _to_float(k, v)
        else:
            v = str(v)
        out[k] = v
    check(out)
    return out


def _to_bool(k, v) -> bool:
    if isinstance(v, str):
        if v.lower() in ("1", "true", "yes", "on"):
            return True
        if v.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"option {k} must be true or false (got {v!r})")
    return bool(v)


def _to_int(k, v) -> int:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"option {k} must be an integer (got {v!r})") from None
    if not math.isfinite(f) or f != int(f):
        raise ValueError(f"option {k} must be a finite integer (got {v!r})")
    return int(f)


def _to_float(k, v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"option {k} must be a number (got {v!r})") from None
    if math.isnan(f) or (math.isinf(f) and k != "max_dataset_size"):
        raise ValueError(f"option {k} must be a finite number (got {v!r})")
    return f


_POSITIVE = ("ngf", "ndf", "lr", "input_nc", "output_nc", "batch_size", "load_size", "crop_size", "n_layers_D",
             "print_freq", "display_freq", "save_latest_freq", "save_epoch_freq", "lr_decay_iters",
             "max_dataset_size")
_NON_NEGATIVE = ("lambda_A", "lambda_B", "lambda_identity", "lambda_L1", "lambda_gp", "pool_size", "init_gain",
                 "n_epochs", "n_epochs_decay", "max_iters", "save_state_freq", "epoch_count")


def check(opts: Mapping[str, Any]) -> None:
    """Refuse values the reference would crash on (or silently misbehave with), naming the option."""
    for k in _POSITIVE:
        if k in opts and not opts[k] > 0:
            raise ValueError(f"option {k} must be > 0 (got {opts[k]})")
    for k in _NON_NEGATIVE:
        if k in opts and not opts[k] >= 0:
            raise ValueError(f"option {k} must be >= 0 (got {opts[k]})")
    if "beta1" in opts and not 0.0 <= opts["beta1"] < 1.0:
        raise ValueError(f"option beta1 must be in [0, 1) (got {opts['beta1']})")
    if "direction" in opts and opts["direction"] not in ("AtoB", "BtoA"):
        raise ValueError(f"option direction must be AtoB or BtoA (got {opts['direction']!r})")
    if "crop_size" in opts and "load_size" in opts and opts.get("preprocess", "").endswith("crop") \
            and opts["crop_size"] > opts["load_size"]:
        raise ValueError(f"crop_size {opts['crop_size']} is larger than load_size {opts['load_size']}")


def parse_option_string(text: str) -> Dict[str, Any]:
    """``"--ngf 32 --no_dropout --lr 1e-4"`` -> ``{"ngf": "32", "no_dropout": True, "lr": "1e-4"}`` (values are
    converted by :func:`resolve`). Boolean options take no value, as on the reference's command line."""
    out: Dict[str, Any] = {}
    tokens = shlex.split(text or "")
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if not tok.startswith("--") or len(tok) < 3:
            raise ValueError(f"expected an option like --ngf 32, got {tok!r}")
        key = tok[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            out[key] = value
            i += 1
            continue
        if key in BOOL_OPTIONS:
            out[key] = True
            i += 1
            continue
        if i + 1 >= len(tokens):
            raise ValueError(f"option --{key} needs a value")
        out[key] = tokens[i + 1]
        i += 2
    return out
