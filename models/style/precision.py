"""Low precision for the feed-forward style methods (adain, fast), gated by the pack's shared accuracy
criterion (``models.precision``): a float16/bfloat16 autocast request runs only when, on the shared calibration
frames (stylised with the third frame as the style image for adain), the output stays at PSNR >= 50 dB against
float32 with at most 0.01 % of 8-bit pixels off by more than 2/255. Otherwise -- and where the device only
emulates the precision -- float32 runs. Verdicts are cached per network content, device, method, precision and
strength (memory and the pack's cache file). Gatys always optimises in float32.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .. import precision as _precision

__all__ = ["style_precision"]

# side of the calibration frames (the networks are fully convolutional; statistics are per frame)
_SIDE = 192


def style_precision(network, method: str, device, dtype: Optional[torch.dtype], *, strength: float = 1.0
                    ) -> Tuple[Optional[torch.dtype], Optional[_precision.Verdict]]:
    """(dtype to autocast with or None = float32, verdict or None) for ``style_transfer(method=method,
    network=network)`` with a ``dtype`` request on ``device``."""
    device = torch.device(device)
    if dtype not in (torch.float16, torch.bfloat16) or method == "gatys":
        return None, None
    if not _precision.native_low_precision(device, dtype):
        return None, None
    from .transfer import style_transfer

    module = network if isinstance(network, torch.nn.Module) else None
    if module is None:
        return None, None

    def run(dt):
        frames = _precision.calibration_frames(3, _SIDE).permute(0, 2, 3, 1).to(device)
        content, style = frames[:2], frames[2:3]
        ctx = torch.autocast(device.type, dtype=dt) if dt is not None else torch.autocast(device.type, enabled=False)
        with ctx:
            return style_transfer(content, style if method == "adain" else None, method=method, network=network,
                                  strength=float(strength), device=device, batch_size=1).float()

    def measure() -> _precision.Verdict:
        ref = run(None)
        return _precision.judge(run(dtype), ref, _precision.dtype_name(dtype), channel_dim=-1)

    verdict = _precision.calibrated_verdict(
        module, {"family": "style", "method": method, "strength": round(float(strength), 4),
                 "device": _precision.device_description(device), "precision": _precision.dtype_name(dtype),
                 "variant": "autocast-v1"}, measure)
    return (dtype if verdict.accepted else None), verdict
