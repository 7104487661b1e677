"""Johnson-style feed-forward style networks in the layout of pytorch/examples ``fast_neural_style``.

``TransformerNet``: ``conv1`` (9x9, 3->32) ``in1``, ``conv2`` (3x3 s2, ->64) ``in2``, ``conv3`` (3x3 s2, ->128)
``in3``, residual blocks ``res1..res5`` (``conv1``/``in1``/``conv2``/``in2``), ``deconv1``/``deconv2`` (nearest
x2 upsampling + 3x3 conv) with ``in4``/``in5``, ``deconv3`` (9x9, ->3). Every conv is reflection-padded and
stored as ``<layer>.conv2d.weight``; instance norms are affine (``in*.weight``/``in*.bias``). The published
candy/mosaic/udnie/rain_princess files also hold ``in*.running_mean``/``running_var`` from old PyTorch: they
are dropped. The network works on RGB in [0, 255]; :class:`TransformerNet` takes and returns [0, 1].

Instance normalisation makes each frame's colours depend on the whole frame's statistics, a source of
flicker on video. :meth:`TransformerNet.norm_stats` computes the statistics of every norm layer pooled over
a batch of frames, and ``forward(x, stats=...)`` reuses them, so all frames go through the same mapping.
"""
from __future__ import annotations

import re
from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .base import StyleNetwork
from .errors import StyleNetworkLoadError

NormStats = Dict[str, Tuple[torch.Tensor, torch.Tensor]]
_RUNNING_KEY = re.compile(r"(^|\.)in\d+\.(running_mean|running_var|num_batches_tracked)$")


class _Conv(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, upsample: int = 1):
        super().__init__()
        self.upsample = upsample
        self.stride = stride
        self.conv2d = nn.Conv2d(c_in, c_out, k, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        p = self.conv2d.kernel_size[0] // 2
        return self.conv2d(F.pad(x, (p, p, p, p), mode="reflect"))


class _Norm(nn.Module):
    """Affine instance norm whose statistics can be computed per frame, pooled, or supplied."""

    def __init__(self, c: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x: torch.Tensor, key: str, stats: Optional[NormStats], record: Optional[NormStats]) -> torch.Tensor:
        if record is not None:
            var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False, keepdim=True)
            record[key] = (mean, var)
        elif stats is not None:
            mean, var = stats[key]
        else:
            return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=1e-5)
        return (x - mean) * torch.rsqrt(var + 1e-5) * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class _Residual(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1, self.in1 = _Conv(c, c, 3), _Norm(c)
        self.conv2, self.in2 = _Conv(c, c, 3), _Norm(c)

    def forward(self, x, key, stats, record):
        y = F.relu(self.in1(self.conv1(x), key + ".in1", stats, record))
        return x + self.in2(self.conv2(y), key + ".in2", stats, record)


class TransformerNet(StyleNetwork):
    """Fast neural style network (``kind="fast_style"``); RGB [0, 1] in and out (not clamped)."""

    kind = "fast_style"
    size_multiple = 4

    def __init__(self, widths: Tuple[int, int, int] = (32, 64, 128), n_residual: int = 5):
        super().__init__()
        c1, c2, c3 = (int(w) for w in widths)
        self.widths, self.n_residual = [c1, c2, c3], int(n_residual)
        self.conv1, self.in1 = _Conv(3, c1, 9), _Norm(c1)
        self.conv2, self.in2 = _Conv(c1, c2, 3, 2), _Norm(c2)
        self.conv3, self.in3 = _Conv(c2, c3, 3, 2), _Norm(c3)
        for i in range(self.n_residual):
            setattr(self, f"res{i + 1}", _Residual(c3))
        self.deconv1, self.in4 = _Conv(c3, c2, 3, upsample=2), _Norm(c2)
        self.deconv2, self.in5 = _Conv(c2, c1, 3, upsample=2), _Norm(c1)
        self.deconv3 = _Conv(c1, 3, 9)
        self.freeze()

    def config(self) -> Dict[str, object]:
        return {"kind": self.kind, "widths": list(self.widths), "n_residual": self.n_residual}

    def public_state_dict(self) -> Dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.state_dict().items()}

    def steps(self) -> List[Tuple[str, object]]:
        """The forward pass as a flat list of steps, so that a range of it can run on its own (exact tiling
        with whole-frame statistics, :mod:`.tiles`): ``("scale", f)`` / ``("div", f)``, ``("conv", module)``,
        ``("norm", key)``, ``("relu", None)``, ``("save", None)`` / ``("add", None)`` around a residual block.
        Sections: encoder (to the 1/4-scale bottleneck), residual blocks, decoder; see :meth:`sections`."""
        out: List[Tuple[str, object]] = [("scale", 255.0)]
        for conv, key in ((self.conv1, "in1"), (self.conv2, "in2"), (self.conv3, "in3")):
            out += [("conv", conv), ("norm", key), ("relu", None)]
        for i in range(self.n_residual):
            res, key = getattr(self, f"res{i + 1}"), f"res{i + 1}"
            out += [("save", None), ("conv", res.conv1), ("norm", key + ".in1"), ("relu", None),
                    ("conv", res.conv2), ("norm", key + ".in2"), ("add", None)]
        out += [("conv", self.deconv1), ("norm", "in4"), ("relu", None),
                ("conv", self.deconv2), ("norm", "in5"), ("relu", None),
                ("conv", self.deconv3), ("div", 255.0)]
        return out

    def sections(self) -> Tuple[int, int]:
        """Step indices where the residual blocks start and end (both at 1/4 scale, ``widths[2]`` channels)."""
        steps = self.steps()
        start = next(i for i, (kind, _) in enumerate(steps) if kind == "save")
        end = max(i for i, (kind, _) in enumerate(steps) if kind == "add") + 1
        return start, end

    def _norm(self, key: str) -> "_Norm":
        obj = self
        for part in key.split("."):
            obj = getattr(obj, part)
        return obj

    def run_steps(self, x: torch.Tensor, start: int = 0, stop: Optional[int] = None,
                  stats: Optional[NormStats] = None, record: Optional[NormStats] = None) -> torch.Tensor:
        """Steps ``[start, stop)`` of :meth:`steps` on ``x`` (residual blocks must lie wholly inside)."""
        skip = None
        for kind, arg in self.steps()[start:stop]:
            if kind == "scale":
                x = x * arg
            elif kind == "div":
                x = x / arg
            elif kind == "conv":
                x = arg(x)
            elif kind == "norm":
                x = self._norm(arg)(x, arg, stats, record)
            elif kind == "relu":
                x = F.relu(x)
            elif kind == "save":
                skip = x
            else:
                x = skip + x
        return x

    def _run(self, x: torch.Tensor, stats: Optional[NormStats], record: Optional[NormStats]) -> torch.Tensor:
        return self.run_steps(x, stats=stats, record=record)

    def forward(self, x: torch.Tensor, stats: Optional[NormStats] = None) -> torch.Tensor:
        """``x``: NCHW RGB [0, 1] with H, W multiples of 4. ``stats`` (from :meth:`norm_stats`) replaces the
        per-frame instance-norm statistics."""
        return self._run(x, stats, None)

    def norm_stats(self, frames: torch.Tensor) -> NormStats:
        """Instance-norm statistics of every norm layer, pooled over all ``frames`` (NCHW [0, 1])."""
        record: NormStats = {}
        self._run(frames, None, record)
        return record


def is_transformer_layout(sd: Mapping[str, torch.Tensor]) -> bool:
    return "conv1.conv2d.weight" in sd and any(k.startswith("res1.") for k in sd)


def transformer_from_state_dict(sd: Mapping[str, torch.Tensor], name: str = "<state dict>") -> TransformerNet:
    """Build a :class:`TransformerNet`; drops the legacy ``in*.running_mean/var`` keys."""
    sd = {k: v for k, v in sd.items() if not _RUNNING_KEY.search(k)}
    try:
        c1 = sd["conv1.conv2d.weight"].shape[0]
        c2 = sd["conv2.conv2d.weight"].shape[0]
        c3 = sd["conv3.conv2d.weight"].shape[0]
    except KeyError as exc:
        raise StyleNetworkLoadError(f"{name}: fast_neural_style TransformerNet layout but {exc.args[0]!r} is missing "
                                    "(truncated or different network)") from None
    n_res = len({m.group(1) for k in sd for m in [re.match(r"res(\d+)\.", k)] if m})
    net = TransformerNet((c1, c2, c3), n_res)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        raise StyleNetworkLoadError(
            f"{name}: fast_neural_style TransformerNet layout but keys differ (missing {missing[:6]}, "
            f"unexpected {unexpected[:6]}) - truncated file or a modified architecture")
    bad = [(k, tuple(sd[k].shape), tuple(v.shape)) for k, v in expected.items() if tuple(sd[k].shape) != tuple(v.shape)]
    if bad:
        k, got, want = bad[0]
        raise StyleNetworkLoadError(f"{name}: TransformerNet tensor {k} has shape {got}, expected {want}")
    with torch.no_grad():
        for k, v in net.state_dict().items():
            v.copy_(sd[k].float())
    net.layout = "pytorch/examples fast_neural_style TransformerNet"
    return net
