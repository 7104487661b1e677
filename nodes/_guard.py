"""Input checks applied to every node of the pack before it runs (installed by ``nodes/__init__.py``).

ComfyUI checks a FLOAT against its min/max, but every comparison with NaN is false, so ``NaN`` (valid JSON for
the server) reaches the node; and IMAGE batches can carry NaN/inf pixels from float TIFF/EXR files or an
upstream node. Both would silently turn into black frames or a NaN model. The guard wraps each node's function:
before it runs, every FLOAT input must be finite and every IMAGE/MASK input free of NaN/inf (values above 1,
e.g. EXR plates, pass). The message names the node, the input and the first bad frames
(``models.validate``). A node that wants non-finite pixels for an input lists it in ``NONFINITE_OK``.
"""
from __future__ import annotations

import functools
from typing import Dict, Tuple

from ..models import validate

_CHECKED_TYPES = ("FLOAT", "IMAGE", "MASK")


def _input_kinds(cls) -> Dict[str, str]:
    """input name -> FLOAT / IMAGE / MASK for the inputs the guard checks (computed once per class)."""
    kinds = cls.__dict__.get("_gan_pack_input_kinds")
    if kinds is None:
        kinds = {}
        try:
            spec = cls.INPUT_TYPES()
        except Exception:  # noqa: BLE001 - a node whose INPUT_TYPES fails is reported by ComfyUI itself
            spec = {}
        for group in ("required", "optional"):
            for name, entry in (spec.get(group) or {}).items():
                kind = entry[0] if isinstance(entry, (tuple, list)) and entry else None
                if isinstance(kind, str) and kind in _CHECKED_TYPES:
                    kinds[name] = kind
        allowed = set(getattr(cls, "NONFINITE_OK", ()) or ())
        kinds = {k: v for k, v in kinds.items() if k not in allowed}
        cls._gan_pack_input_kinds = kinds
    return kinds


def check_inputs(cls, node_name: str, inputs: Dict[str, object]) -> None:
    for name, kind in _input_kinds(cls).items():
        value = inputs.get(name)
        if value is None:
            continue
        if kind == "FLOAT":
            if isinstance(value, (int, float)):
                validate.check_finite(value, name, node=node_name)
        else:
            validate.check_image_finite(value, name, node=node_name)


def install(mappings: Dict[str, type], display_names: Dict[str, str]) -> Tuple[str, ...]:
    """Wrap the FUNCTION of every node class in ``mappings`` (once); returns the node ids guarded."""
    done = []
    for node_id, cls in mappings.items():
        if cls.__dict__.get("_gan_pack_guarded"):
            continue
        fn_name = getattr(cls, "FUNCTION", None)
        original = getattr(cls, fn_name, None) if fn_name else None
        if original is None:
            continue
        node_name = display_names.get(node_id, node_id)

        def make(original=original, cls=cls, node_name=node_name):
            @functools.wraps(original)
            def guarded(self, *args, **kwargs):
                check_inputs(cls, node_name, kwargs)
                return original(self, *args, **kwargs)
            return guarded

        setattr(cls, fn_name, make())
        cls._gan_pack_guarded = True
        done.append(node_id)
    return tuple(done)
