"""ComfyUI services shared by the node families: model dropdowns, device/offload, progress, Cancel, OOM retry.

Everything here is ComfyUI glue; the computations live in ``models/``.
"""
from __future__ import annotations

import logging
from typing import Callable, Iterable, List, Optional, Sequence

import torch

import comfy.model_management as mm
import comfy.utils
import folder_paths

from .paths import model_path

log = logging.getLogger("comfyui-gan-pack")


# ------------------------------------------------------------------------------------------ model files
def list_models(folders: Sequence[str], prefixed: bool = True) -> List[str]:
    """Files of one or more model folders for a dropdown, ``folder/name`` when several folders are merged."""
    names: List[str] = []
    for folder in folders:
        try:
            files = folder_paths.get_filename_list(folder)
        except KeyError:
            files = []
        names += [f"{folder}/{f}" if prefixed else f for f in files]
    return names


def resolve_model(choice: str, folders: Sequence[str]) -> str:
    """Path of a dropdown choice made by :func:`list_models`; the error names the file and where it goes."""
    for folder in folders:
        if choice.startswith(folder + "/"):
            return model_path(folder, choice[len(folder) + 1:])
    if len(folders) == 1:
        return model_path(folders[0], choice)
    raise FileNotFoundError(f"model '{choice}' not found: expected '<folder>/<file>' with folder one of "
                            f"{', '.join(folders)} (ComfyUI/models/<folder>/)")


# ------------------------------------------------------------------------------------------ device
CPU_MEMORY_BUDGET = 4 << 30  # on the CPU, whole frames only up to what ~4 GiB of activations allow


def torch_device() -> torch.device:
    return mm.get_torch_device()


def offload_device() -> torch.device:
    return mm.unet_offload_device()


def module_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.parameters()) + \
        sum(b.numel() * b.element_size() for b in module.buffers())


def prepare_device(module: torch.nn.Module, working_bytes: int = 0) -> torch.device:
    """Ask ComfyUI to make room (unloading its own models if needed), then move ``module`` to its device."""
    device = torch_device()
    mm.free_memory(module_bytes(module) + working_bytes, device)
    module.to(device)
    return device


def release(module: torch.nn.Module) -> None:
    """Move ``module`` back to the offload device and return cached memory, like core nodes do after use."""
    module.to(offload_device())
    mm.soft_empty_cache()


def autocast_dtype(precision: str, device: torch.device) -> Optional[torch.dtype]:
    """``auto`` picks half precision where it is fast and accurate on this device, else float32 (``None``)."""
    if precision == "float32":
        return None
    if precision == "bfloat16":
        return torch.bfloat16
    if precision == "float16":
        return torch.float16
    # auto
    if device.type == "cuda":
        return torch.bfloat16 if mm.should_use_bf16(device) else torch.float16 if mm.should_use_fp16(device) else None
    return None


# ------------------------------------------------------------------------------------------ progress / cancel
class Progress:
    """Bridges engine callbacks to ComfyUI's progress bar and Cancel button."""

    def __init__(self, total: int = 1):
        self.bar = comfy.utils.ProgressBar(max(1, int(total)))
        self.total = max(1, int(total))

    def __call__(self, done: int, total: int, *extra) -> None:
        if total and total != self.total:
            self.total = int(total)
        self.bar.update_absolute(int(done), self.total)

    @staticmethod
    def check_interrupt() -> None:
        mm.throw_exception_if_processing_interrupted()


def with_oom_retry(run: Callable[[int], torch.Tensor], tile_size: int, *, smallest: int = 64,
                   first_auto_tile: int = 1024) -> torch.Tensor:
    """Call ``run(tile_size)``; on out-of-memory free caches and retry with half the tile (0 = automatic
    starts at ``first_auto_tile``) down to ``smallest``, like ComfyUI's core upscale node."""
    tile = tile_size
    while True:
        try:
            return run(tile)
        except mm.OOM_EXCEPTION:
            mm.soft_empty_cache(True)
            tile = first_auto_tile if tile <= 0 else tile // 2
            if tile < smallest:
                raise
            log.warning("out of memory: retrying with %d px tiles", tile)


def report(node: str, unique_id, lines: Sequence[str], ignored: Sequence[str] = ()) -> dict:
    """What a node actually ran, for its UI and the console: logs one line (a warning per ignored setting),
    shows the text on the node (ComfyUI's progress text, where the server has it) and returns the ``ui`` dict
    (``{"text": [...]}``, kept in the prompt's history outputs)."""
    text = [f"{node}: {line}" if i == 0 else line for i, line in enumerate(lines)]
    text += [f"ignored: {w}" for w in ignored]
    log.info("comfyui-gan-pack %s", " | ".join(text))
    for w in ignored:
        log.warning("comfyui-gan-pack %s: %s", node, w)
    if unique_id is not None:
        try:
            from server import PromptServer  # ComfyUI's own module

            send = getattr(PromptServer.instance, "send_progress_text", None)
            if send is not None:
                send("\n".join(text), str(unique_id))
        except Exception:  # noqa: BLE001 - the report is informative; never fail the node for it
            pass
    return {"text": text}


def seed_input(tooltip: str = "Seed for everything random in this node; the same seed gives the same pixels."):
    return ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "control_after_generate": True, "tooltip": tooltip})


PRECISIONS = ["auto", "float32", "bfloat16", "float16"]


def precision_input():
    return (PRECISIONS, {"default": "auto", "tooltip":
            "Compute precision. auto: float32 on CPU (on CPUs without AMX bfloat16 is at most about 2x faster, and "
            "many models fall back to float32 anyway); on GPUs bfloat16 or float16 where the GPU runs it fast. "
            "bfloat16/float16 are used only when this model's output stays within 1/255 of float32 on calibration "
            "frames (checked once per model), otherwise it runs float32, so results stay within 2/255 of float32. "
            "float32 is bit-for-bit reproducible on one device."})
