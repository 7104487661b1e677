"""ComfyUI adapter: one module per node family, each exporting ``NODE_CLASS_MAPPINGS`` and display names.

Every node id starts with ``GANPack`` so it never collides with core or other packs (ComfyUI silently keeps
the first registration of a colliding id).
"""
from __future__ import annotations

import importlib
import logging
import pkgutil

from . import paths

paths.register_model_folders()
paths.install_example_inputs()

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}

# every module of this package except the shared services is a node family
_SERVICES = {"paths", "common"}
_FAMILIES = sorted(m.name for m in pkgutil.iter_modules(__path__)
                   if m.name not in _SERVICES and not m.name.startswith("_"))

for _family in _FAMILIES:
    try:
        _module = importlib.import_module(f".{_family}", __name__)
    except Exception:  # one broken family must not take the others down
        logging.exception("comfyui-gan-pack: could not load the %s nodes", _family)
        continue
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(getattr(_module, "NODE_DISPLAY_NAME_MAPPINGS", {}))

# every node: FLOAT inputs finite, IMAGE/MASK inputs free of NaN/inf, before it runs (nodes/_guard.py)
from . import _guard  # noqa: E402

_guard.install(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)
