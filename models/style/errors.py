"""The one exception the style-transfer loaders raise for unusable weight files."""
from __future__ import annotations


class StyleNetworkLoadError(ValueError):
    """A weight file or state dict is not a style network this pack can run.

    The message says what was found (another model family, VGG-16 instead of VGG-19, a truncated or
    corrupt file, a pickle that carries code, ...) and, where possible, what to use instead. Loaders
    never let a raw ``KeyError`` or shape mismatch escape.
    """
