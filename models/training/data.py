"""Training data from image folders, with the reference's preprocessing.

Layouts (``dataset_mode``; detected from the folder when not given):

* ``aligned`` (the reference's pix2pix layout): every image is an ``A|B`` pair side by side, A the left half
  (``int(width/2)`` pixels), B the rest. Images in ``DATA/<phase>/`` (``DATA/train/``), or in ``DATA/`` itself.
* ``paired`` (this pack's): ``DATA/<phase>A/`` and ``DATA/<phase>B/`` (or ``DATA/A/`` and ``DATA/B/``) holding
  files with the same names (stems; extensions may differ) -- pairs matched by name, e.g. plates and cleaned
  plates rendered with the same frame numbers.
* ``unaligned`` (CycleGAN): ``DATA/trainA/`` and ``DATA/trainB/`` (or ``A/``, ``B/``), any counts, no pairing; an
  epoch is ``max(len A, len B)`` samples, A in order (or shuffled), each with a B drawn at random (or ``i % len B``
  with ``serial_batches``).

Preprocessing (``preprocess``): ``resize_and_crop`` (the default: resize to ``load_size`` square with bicubic
filtering, then a random ``crop_size`` crop), ``crop`` (random crop at the original size), ``scale_width``
(width to ``load_size``, height by the aspect ratio but at least ``crop_size``), ``scale_width_and_crop``, ``none``
(only rounding the size to a multiple of 4, as the reference). Then a random horizontal flip unless
``no_flip``. Images become RGB (or grey when that side has 1 channel) float32 in [-1, 1]. Paired and aligned
samples use one crop/flip for both halves. Any image size and aspect works; with ``preprocess none`` and
``batch_size`` > 1 all images must share one size.

Randomness: the order of an epoch is a permutation drawn from ``(seed, epoch)``; each sample's crop, flip and
(unaligned) partner from ``(seed, epoch, position)``. A run's data is thus a pure function of the seed, and a
resumed run sees exactly the batches it would have seen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".tif", ".tiff", ".webp")
MODES = ("aligned", "paired", "unaligned")
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


class DataFolderError(ValueError):
    """A data folder that does not hold a usable training set; the message says what was expected where."""


def list_images(folder: Path) -> List[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not p.name.startswith("."))


def _side_dirs(root: Path, phase: str) -> Optional[Tuple[Path, Path]]:
    for a, b in ((f"{phase}A", f"{phase}B"), ("A", "B")):
        if (root / a).is_dir() and (root / b).is_dir():
            return root / a, root / b
    return None


def _expected(kind_hint: str, root: Path, phase: str) -> str:
    return (f"expected one of: {root / phase}/ (or {root}/) with side-by-side A|B images (aligned); "
            f"{root / (phase + 'A')}/ and {root / (phase + 'B')}/ with images of the same names (paired, pix2pix) "
            f"or any images (unaligned, cyclegan)")


@dataclass
class Sample:
    A: torch.Tensor
    B: torch.Tensor
    A_path: str
    B_path: str


class FolderDataset:
    """The images of a data folder and the reference preprocessing (see the module docstring)."""

    def __init__(self, root, *, kind: str = "pix2pix", dataset_mode: Optional[str] = None, phase: str = "train",
                 load_size: int = 286, crop_size: int = 256, preprocess: str = "resize_and_crop",
                 no_flip: bool = False, serial_batches: bool = False, max_dataset_size: float = math.inf,
                 input_nc: int = 3, output_nc: int = 3, direction: str = "AtoB", seed: int = 0):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataFolderError(f"data folder not found: {self.root}")
        if preprocess not in PREPROCESS:
            raise DataFolderError(f"preprocess must be one of {', '.join(PREPROCESS)} (got {preprocess!r})")
        self.load_size, self.crop_size, self.preprocess = int(load_size), int(crop_size), preprocess
        self.no_flip, self.serial, self.seed = bool(no_flip), bool(serial_batches), int(seed)
        # the folder's A side is the model's input unless direction is BtoA (the trainer swaps A and B)
        self.nc_A, self.nc_B = (input_nc, output_nc) if direction == "AtoB" else (output_nc, input_nc)
        mode = dataset_mode or self._detect(kind, phase)
        if mode not in MODES:
            raise DataFolderError(f"dataset_mode must be one of {', '.join(MODES)} (got {mode!r})")
        self.mode = mode
        limit = int(max_dataset_size) if math.isfinite(max_dataset_size) else None
        if mode == "aligned":
            folder = self.root / phase if list_images(self.root / phase) else self.root
            self.A_paths = list_images(folder)[:limit]
            self.B_paths = self.A_paths
            if not self.A_paths:
                raise DataFolderError(f"no images in {folder}: {_expected(kind, self.root, phase)}")
        else:
            sides = _side_dirs(self.root, phase)
            if sides is None:
                raise DataFolderError(f"{self.root} has no {phase}A/ and {phase}B/ (or A/ and B/) folders: "
                                      + _expected(kind, self.root, phase))
            a, b = list_images(sides[0]), list_images(sides[1])
            for side, files in ((sides[0], a), (sides[1], b)):
                if not files:
                    raise DataFolderError(f"no images in {side} (extensions: {', '.join(IMAGE_EXTENSIONS)})")
            if mode == "paired":
                by_stem = {p.stem: p for p in b}
                missing = [p.name for p in a if p.stem not in by_stem]
                if missing:
                    raise DataFolderError(
                        f"{len(missing)} image(s) in {sides[0]} have no partner of the same name in {sides[1]} "
                        f"(first: {missing[0]}); paired data needs one B per A with the same file name")
                a = a[:limit]
                b = [by_stem[p.stem] for p in a]
            else:
                a, b = a[:limit], b[:limit]
            self.A_paths, self.B_paths = a, b
        self.size = len(self.A_paths) if mode != "unaligned" else max(len(self.A_paths), len(self.B_paths))

    def _detect(self, kind: str, phase: str) -> str:
        sides = _side_dirs(self.root, phase)
        if kind == "cyclegan":
            if sides is None:
                raise DataFolderError(f"CycleGAN needs two folders of images, {self.root / (phase + 'A')}/ and "
                                      f"{self.root / (phase + 'B')}/ (any counts, no pairing)")
            return "unaligned"
        if sides is not None:
            return "paired"
        if list_images(self.root / phase) or list_images(self.root):
            return "aligned"
        raise DataFolderError(f"no training images found in {self.root}: {_expected(kind, self.root, phase)}")

    def __len__(self) -> int:
        return self.size

    def describe(self) -> str:
        if self.mode == "unaligned":
            return f"{len(self.A_paths)} A + {len(self.B_paths)} B images (unaligned) in {self.root}"
        return f"{self.size} {self.mode} pairs in {self.root}"

    # ------------------------------------------------------------------ order and randomness
    def order(self, epoch: int) -> np.ndarray:
        if self.serial:
            return np.arange(self.size)
        return np.random.default_rng([self.seed, 0x5EED, int(epoch)]).permutation(self.size)

    def sample_rng(self, epoch: int, position: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(epoch), int(position)])

    # ------------------------------------------------------------------ loading
    @staticmethod
    def _open(path: Path, channels: int) -> Image.Image:
        try:
            with Image.open(path) as im:
                im.load()
                return im.convert("L" if channels == 1 else "RGB")
        except Exception as exc:
            raise DataFolderError(f"cannot read training image {path}: {exc}") from None

    def _params(self, size: Tuple[int, int], rng: np.random.Generator) -> Dict:
        w, h = size
        new_w, new_h = w, h
        if self.preprocess == "resize_and_crop":
            new_w = new_h = self.load_size
        elif self.preprocess == "scale_width_and_crop":
            new_w, new_h = self.load_size, self.load_size * h // w
        x = int(rng.integers(0, max(0, new_w - self.crop_size) + 1))
        y = int(rng.integers(0, max(0, new_h - self.crop_size) + 1))
        flip = bool(rng.random() > 0.5)
        return {"crop_pos": (x, y), "flip": flip}

    def _transform(self, img: Image.Image, params: Dict) -> torch.Tensor:
        p = self.preprocess
        if "resize" in p:
            img = img.resize((self.load_size, self.load_size), Image.BICUBIC)
        elif "scale_width" in p:
            ow, oh = img.size
            if not (ow == self.load_size and oh >= self.crop_size):
                w = self.load_size
                h = int(max(self.load_size * oh / ow, self.crop_size))
                img = img.resize((w, h), Image.BICUBIC)
        if "crop" in p:
            ow, oh = img.size
            x, y = params["crop_pos"]
            if ow < self.crop_size or oh < self.crop_size:
                raise DataFolderError(f"image of {ow}x{oh} is smaller than crop_size {self.crop_size}; use a smaller "
                                      "crop_size or preprocess resize_and_crop / scale_width_and_crop")
            img = img.crop((x, y, x + self.crop_size, y + self.crop_size))
        if p == "none":
            ow, oh = img.size
            w, h = max(4, int(round(ow / 4) * 4)), max(4, int(round(oh / 4) * 4))
            if (w, h) != (ow, oh):
                img = img.resize((w, h), Image.BICUBIC)
        if not self.no_flip and params["flip"]:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        a = np.asarray(img, dtype=np.uint8)
        if a.ndim == 2:
            a = a[:, :, None]
        t = torch.from_numpy(a.copy()).permute(2, 0, 1).to(torch.float32).div_(255.0)
        return t.sub_(0.5).div_(0.5)  # the reference's ToTensor + Normalize((0.5,), (0.5,))

    def get(self, epoch: int, position: int, index: int) -> Sample:
        rng = self.sample_rng(epoch, position)
        if self.mode == "aligned":
            path = self.A_paths[index]
            img = self._open(path, 3 if max(self.nc_A, self.nc_B) == 3 else 1)
            w, h = img.size
            w2 = int(w / 2)
            if w2 < 1:
                raise DataFolderError(f"{path} is {w}x{h}: an aligned image holds A and B side by side")
            A, B = img.crop((0, 0, w2, h)), img.crop((w2, 0, w, h))
            if self.nc_A == 1:
                A = A.convert("L")
            if self.nc_B == 1:
                B = B.convert("L")
            params = self._params(A.size, rng)
            return Sample(self._transform(A, params), self._transform(B, params), str(path), str(path))
        if self.mode == "paired":
            pa, pb = self.A_paths[index], self.B_paths[index]
            A, B = self._open(pa, self.nc_A), self._open(pb, self.nc_B)
            if A.size != B.size:
                raise DataFolderError(f"paired images differ in size: {pa} is {A.size[0]}x{A.size[1]}, {pb} is "
                                      f"{B.size[0]}x{B.size[1]}")
            params = self._params(A.size, rng)
            return Sample(self._transform(A, params), self._transform(B, params), str(pa), str(pb))
        pa = self.A_paths[index % len(self.A_paths)]
        ib = index % len(self.B_paths) if self.serial else int(rng.integers(0, len(self.B_paths)))
        pb = self.B_paths[ib]
        A, B = self._open(pa, self.nc_A), self._open(pb, self.nc_B)
        pa_params = self._params(A.size, rng)
        pb_params = self._params(B.size, rng)
        return Sample(self._transform(A, pa_params), self._transform(B, pb_params), str(pa), str(pb))

    def batches(self, epoch: int, batch_size: int, start_batch: int = 0) -> Iterator[Dict]:
        """The batches of ``epoch`` (the last one may be smaller), from batch number ``start_batch`` on."""
        order = self.order(epoch)
        for bi in range(start_batch, math.ceil(self.size / batch_size)):
            positions = range(bi * batch_size, min(self.size, (bi + 1) * batch_size))
            samples = [self.get(epoch, pos, int(order[pos])) for pos in positions]
            try:
                A = torch.stack([s.A for s in samples])
                B = torch.stack([s.B for s in samples])
            except RuntimeError:
                shapes = sorted({tuple(s.A.shape[1:]) for s in samples} | {tuple(s.B.shape[1:]) for s in samples})
                raise DataFolderError(
                    f"images of one batch have different sizes ({shapes}): with preprocess "
                    f"{self.preprocess!r} use batch_size 1 or a cropping preprocess") from None
            yield {"A": A, "B": B, "A_paths": [s.A_path for s in samples], "B_paths": [s.B_path for s in samples]}

    def batches_per_epoch(self, batch_size: int) -> int:
        return math.ceil(self.size / batch_size)
