"""ComfyUI services shared by the node families: model dropdowns, device/offload, progress, Cancel, OOM retry.

Everything here is ComfyUI glue; the computations live in ``models/``.
"""
from __future__ import annotations

import functools
import inspect
import logging
import weakref
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
    """``auto`` asks for half precision where this device computes it natively (GPU: float16; CPU: bfloat16
    only with AMX), else float32 (``None``); the engine's calibration still decides whether it runs."""
    from ..models.precision import resolve_precision

    return resolve_precision(precision, device)


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


def send_text(node_id, text: str) -> None:
    """Live text on the node (ComfyUI's progress-text channel, where the server has one); never fails a node."""
    if node_id is None:
        return
    try:
        from server import PromptServer  # ComfyUI's own module

        send = getattr(PromptServer.instance, "send_progress_text", None)
        if send is not None:
            send(text, str(node_id))
    except Exception:  # noqa: BLE001 - the text is informative only
        pass


def report(node: str, unique_id, lines: Sequence[str], ignored: Sequence[str] = ()) -> dict:
    """What a node actually ran, for its UI and the console: logs one line (a warning per ignored setting),
    shows the text on the node (ComfyUI's progress text, where the server has it) and returns the ``ui`` dict
    (``{"text": [...]}``, kept in the prompt's history outputs)."""
    text = [f"{node}: {line}" if i == 0 else line for i, line in enumerate(lines)]
    text += [f"ignored: {w}" for w in ignored]
    log.info("comfyui-gan-pack %s", " | ".join(text))
    for w in ignored:
        log.warning("comfyui-gan-pack %s: %s", node, w)
    send_text(unique_id, "\n".join(text))
    return {"text": text}


def seed_input(tooltip: str = "Seed for everything random in this node; the same seed gives the same pixels."):
    # No "control after generate" widget: its default, randomize, would change the seed after every Run, so
    # ComfyUI would run the node (and everything after it) again each time. Same seed, same pixels; a user who
    # wants a variation types another seed.
    return ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFF, "control_after_generate": False,
                    "tooltip": tooltip + " Stays as set (no randomize after each run): type another number for a "
                                         "different result."})


PRECISIONS = ["auto", "float32", "bfloat16", "float16"]


def precision_input():
    return (PRECISIONS, {"default": "auto", "tooltip":
            "auto (recommended): the fastest precision that is visually identical to float32 for this model -- "
            "half precision on GPUs and on CPUs with AMX, float32 on other CPUs. float32: exact, bit-for-bit "
            "reproducible on one device; pick it when you need exact pixels. bfloat16/float16: ask for half "
            "precision anyway. The console says which precision ran. Details: half precision is used only if, "
            "on built-in calibration images, this model's output stays at PSNR >= 50 dB against float32 with at "
            "most 0.01 % of pixels off by more than 2/255 (checked once per model and device, remembered across "
            "sessions); otherwise, and where the device only emulates it (float16 on most CPUs), float32 runs."})


# ------------------------------------------------------------------------------------------ reuse
# ComfyUI re-runs a node whenever any of its widget values changes, also a seed the node's current mode does
# not use. Such nodes remember their last result and hand it back when only ignored settings changed.
class _Same:
    """What a result was computed from: tensors and objects by identity (weakly held; tensors also by their
    in-place version counter), plain values by value."""

    def __init__(self, value):
        self.kind, self.ref, self.version, self.value = "value", None, None, None
        if isinstance(value, (list, tuple)):
            self.kind, self.value = type(value).__name__, [_Same(v) for v in value]
        elif isinstance(value, dict):
            self.kind, self.value = "dict", {k: _Same(v) for k, v in value.items()}
        elif isinstance(value, (str, int, float, bool, type(None))):
            self.value = value
        else:
            self.kind = "object"
            try:
                self.ref = weakref.ref(value)
            except TypeError:
                self.ref = lambda value=value: value
            self.version = _version(value)

    def matches(self, value) -> bool:
        if self.kind in ("list", "tuple"):
            return (type(value).__name__ == self.kind and len(value) == len(self.value)
                    and all(s.matches(v) for s, v in zip(self.value, value)))
        if self.kind == "dict":
            return (isinstance(value, dict) and value.keys() == self.value.keys()
                    and all(self.value[k].matches(v) for k, v in value.items()))
        if self.kind == "value":
            return type(value) is type(self.value) and value == self.value
        if self.ref() is not value:
            return False
        return self.version is None or _version(value) == self.version


def _version(value):
    """A tensor's in-place modification counter (inference tensors, which ComfyUI passes, have none)."""
    if not isinstance(value, torch.Tensor) or value.is_inference():
        return None
    return value._version


def reuse_result_when(unused: Callable[[dict], Iterable[str]]):
    """Decorator for a node's FUNCTION: ``unused(inputs)`` names the inputs the given settings ignore (e.g.
    ``seed`` in eval mode). When the node runs again with the same upstream results (the same tensors and
    objects ComfyUI hands on from its cache) and equal values of every other input, the last result is
    returned without computing. The previous result is dropped before a new one is computed, so this holds
    no memory beyond the result ComfyUI caches anyway."""
    def wrap(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def run(self, *args, **kwargs):
            bound = sig.bind(self, *args, **kwargs)
            bound.apply_defaults()
            inputs = {k: v for k, v in list(bound.arguments.items())[1:]}
            ignored = set(unused(inputs))
            relevant = {k: v for k, v in inputs.items() if k not in ignored}
            last = self.__dict__.get("_gan_pack_last")
            if last is not None and last[0].matches(relevant):
                log.info("%s: same inputs as the last run apart from %s, which this mode does not use: reused "
                         "the last result", type(self).__name__, ", ".join(sorted(ignored)) or "nothing")
                return last[1]
            self._gan_pack_last = None
            out = fn(self, *args, **kwargs)
            self._gan_pack_last = (_Same(relevant), out)
            return out

        return run

    return wrap
