"""comfyui-gan-pack: Pix2Pix, CycleGAN, StyleGAN2/3 and style transfer as ComfyUI nodes.

ComfyUI imports this file as the pack's package. Nodes are registered the classic way
(``NODE_CLASS_MAPPINGS``), which every ComfyUI release loads; see the README's developer section for why.
The engine lives in ``models/`` (pure PyTorch, importable without ComfyUI); ``nodes/`` adapts it.
"""
try:  # inside ComfyUI
    import folder_paths  # noqa: F401  (ComfyUI's module; absent when the repo is imported on its own)
except ImportError:  # imported outside ComfyUI (e.g. by a test runner): expose nothing
    NODE_CLASS_MAPPINGS = {}
    NODE_DISPLAY_NAME_MAPPINGS = {}
else:
    from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

WEB_DIRECTORY = "./web"  # one small frontend extension: web/gan_pack_seed_values.js
__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
