"""Which weight files each method needs, where they come from, and how to recognise them.

Nothing is downloaded: users place the files in ComfyUI's ``models/style_transfer/`` folder and the node
layer uses :func:`required_files` / :func:`missing_files` to say exactly which file goes where.

Checksums: torchvision (and torch.hub / model_zoo) name weight files ``<name>-<hash>.pth`` where ``<hash>``
is the first 8+ hex digits of the SHA-256 of the file (documented for ``torch.hub.load_state_dict_from_url``
``check_hash``), so ``sha256_prefix`` is given for such names. No full SHA-256 published for any of these
files could be confirmed from public text, so ``sha256`` is ``None`` everywhere; do not invent one.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, List, Optional, Tuple

FOLDER = "style_transfer"


@dataclass(frozen=True)
class RequiredFile:
    filename: str                   # the name the loaders and nodes expect (any name works, this is the usual one)
    kind: str                       # load_style_network kind the file loads as
    role: str                       # what it is used for
    source: str                     # project / page it is published by
    sha256: Optional[str] = None    # full SHA-256 when confirmed from public text (none are)
    sha256_prefix: Optional[str] = None  # leading hex digits of the SHA-256 embedded in the file name
    note: str = ""
    alternatives: Tuple[str, ...] = ()  # other file names accepted for the same role

    def as_dict(self) -> Dict[str, object]:
        return asdict(self)


_VGG_TORCHVISION = RequiredFile(
    filename="vgg19-dcbb9e9d.pth", kind="vgg19", role="VGG-19 feature extractor (Gatys optimisation)",
    source="torchvision (PyTorch) ImageNet weights of torchvision.models.vgg19 (VGG19_Weights.IMAGENET1K_V1)",
    sha256_prefix="dcbb9e9d",
    note="The file name embeds the first 8 hex digits of its SHA-256 (torch.hub naming convention). "
         "Input convention detected as torchvision (RGB, ImageNet mean/std).",
    alternatives=("vgg19-d01eb7cb.pth", "vgg_normalised.pth"))

_VGG_CAFFE = RequiredFile(
    filename="vgg19-d01eb7cb.pth", kind="vgg19", role="VGG-19 feature extractor, caffe-converted (Gatys optimisation)",
    source="jcjohnson/pytorch-vgg conversion of the original Caffe VGG-19 (used by ProGamerGov/neural-style-pt)",
    sha256_prefix="d01eb7cb",
    note="Hash prefix refers to the original upload; neural-style-pt's download script re-saves it under the same "
         "name with renamed classifier keys, so that copy's SHA-256 differs. Input convention caffe (BGR 0-255 "
         "minus mean), detected from the classifier keys or the file name; pass convention='caffe' if renamed.")

_ADAIN_VGG = RequiredFile(
    filename="vgg_normalised.pth", kind="adain_encoder", role="AdaIN encoder (normalised VGG-19 to relu4_1); "
    "also usable as the VGG for Gatys",
    source="naoto0804/pytorch-AdaIN (converted from xunhuang1995/AdaIN-style's vgg_normalised.t7)")

_ADAIN_DECODER = RequiredFile(
    filename="decoder.pth", kind="adain_decoder", role="AdaIN decoder (relu4_1 features -> image)",
    source="naoto0804/pytorch-AdaIN (converted from xunhuang1995/AdaIN-style's decoder.t7)",
    note="Must be paired with vgg_normalised.pth from the same release.")

_FAST = tuple(
    RequiredFile(filename=f"{name}.pth", kind="fast_style", role=f"fast style network '{name}' (one style per file)",
                 source="pytorch/examples fast_neural_style saved models (download_saved_models.py)",
                 note="Any one is enough; networks trained with that example's TransformerNet load too. "
                      "Legacy in*.running_mean/var keys are dropped automatically.")
    for name in ("candy", "mosaic", "rain_princess", "udnie"))


def required_files(method: Optional[str] = None) -> Dict[str, List[RequiredFile]] | List[RequiredFile]:
    """For each method (``"gatys"``, ``"adain"``, ``"fast"``) the files to place in ``models/style_transfer/``.

    ``"gatys"`` needs ONE VGG-19 (torchvision, caffe or AdaIN's vgg_normalised); ``"adain"`` needs BOTH its
    files; ``"fast"`` needs ONE style network. With ``method`` given, returns just that list.
    """
    table = {"gatys": [_VGG_TORCHVISION, _VGG_CAFFE, _ADAIN_VGG], "adain": [_ADAIN_VGG, _ADAIN_DECODER],
             "fast": list(_FAST)}
    if method is None:
        return table
    try:
        return table[method]
    except KeyError:
        raise ValueError(f"unknown method {method!r} (known: {', '.join(table)})") from None


_NEEDS_ALL = {"gatys": False, "adain": True, "fast": False}


def missing_files(method: str, available: Iterable[str]) -> List[RequiredFile]:
    """Files still to be placed for ``method`` given the names present in ``models/style_transfer/``.

    Empty when the method can run (for gatys/fast any one listed file, matched by name, suffices - a
    ``.safetensors`` conversion with the same stem counts)."""
    stems = {name.rsplit("/", 1)[-1].rsplit(".", 1)[0] for name in available}
    files = required_files(method)
    have = [f for f in files if f.filename.rsplit(".", 1)[0] in stems]
    if _NEEDS_ALL[method]:
        return [f for f in files if f not in have]
    return [] if have else list(files)
