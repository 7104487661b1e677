"""Semantic editing of StyleGAN latents: directions found in the model itself, direction files, and edits.

* :func:`sefa_directions` -- closed-form factorisation (SeFa, Shen & Zhou, CVPR 2021). The style affine of every
  modulated convolution maps w to one style value per input channel, ``s = A_l w + b_l``; moving w along ``d``
  changes the styles by ``A_l d``. Stacking the affine weights of the chosen layers (one row per style channel),
  scaling every row to unit length and taking the unit eigenvectors of ``A^T A``, largest eigenvalue first, gives
  the directions that change the styles most. No data, no sampling: a few milliseconds even for a 1024 px model.
* :func:`ganspace_directions` -- principal components of W (GANSpace, Harkonen et al., NeurIPS 2020): PCA of
  ``w = mapping(z)`` (psi 1) over seeded z, with the standard deviation along each component so a strength can be
  given in sigma units.
* :func:`edit_latent` -- ``ws + strength * direction`` on the chosen W+ layers only, optionally keeping each edited
  w at its original distance from the average w.
* :func:`load_direction` -- InterFaceGAN / encoder4editing boundary files (``.npy``, ``.pt`` read with
  ``weights_only=True``, ``.safetensors``) of shape ``[1, w_dim]`` or ``[num_ws, w_dim]``, checked against the model.
* :func:`cached_directions` / :func:`w_statistics` -- the same results stored as a small ``.safetensors`` in a cache
  folder (``$GAN_PACK_CACHE_DIR`` or ``~/.cache/comfyui-gan-pack``), keyed by a hash of the weights they depend
  on, so a changed model file is recomputed and nobody has to manage the files.

Which W+ index a layer reads: StyleGAN2 block ``b4`` reads ws[0] (conv1) and its ToRGB ws[1]; every later block
reads ws[i] (conv0), ws[i+1] (conv1) and ws[i+2] (ToRGB, shared with the next block's conv0). StyleGAN3 reads
ws[0] in the Fourier input (a rotation/translation, not a style), ws[1 + i] in layer ``L<i>`` and the last ws in
its ToRGB layer.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from .latents import parse_layers

__all__ = ["style_layers", "sefa_directions", "ganspace_directions", "sample_w", "w_statistics", "edit_latent",
           "edit_sweep", "load_direction", "direction_sigmas", "cached_directions", "directions_cache_dir",
           "DirectionFileError", "DIRECTION_EXTENSIONS", "sigma_scaled",
           "parse_direction_indices", "layer_reader_summary"]

log = logging.getLogger("comfyui-gan-pack")

DIRECTION_EXTENSIONS = (".npy", ".pt", ".pth", ".safetensors")
CACHE_VERSION = 1
LayerSpec = Union[None, str, int, Iterable[int]]


# ------------------------------------------------------------------------------------------ which layer reads which w
def style_layers(G) -> List[Tuple[int, str, torch.nn.Module, bool]]:
    """``(ws_index, module_name, affine, is_torgb)`` for every style affine of the synthesis network, in order.

    StyleGAN3's Fourier-input affine (ws[0]) is a geometric transform, not a style, and is not listed.
    """
    syn = G.synthesis
    out: List[Tuple[int, str, torch.nn.Module, bool]] = []
    if hasattr(syn, "block_resolutions"):  # StyleGAN2
        w_idx = 0
        for res in syn.block_resolutions:
            block = getattr(syn, f"b{res}")
            convs = (["conv1"] if block.in_channels == 0 else ["conv0", "conv1"])
            for j, name in enumerate(convs):
                out.append((w_idx + j, f"synthesis.b{res}.{name}", getattr(block, name).affine, False))
            if getattr(block, "num_torgb", 0):
                out.append((w_idx + block.num_conv, f"synthesis.b{res}.torgb", block.torgb.affine, True))
            w_idx += block.num_conv
    elif hasattr(syn, "layer_names"):  # StyleGAN3
        for i, name in enumerate(syn.layer_names):
            layer = getattr(syn, name)
            out.append((i + 1, f"synthesis.{name}", layer.affine, bool(layer.is_torgb)))
    else:
        raise TypeError(f"{type(G).__name__} is not a StyleGAN2/StyleGAN3 generator of this pack")
    return out


def _chosen_affines(G, layers: LayerSpec, include_torgb: bool):
    entries = style_layers(G)
    wanted = None if layers is None else set(parse_layers(layers, G.num_ws))
    chosen = [e for e in entries if (wanted is None or e[0] in wanted) and (include_torgb or not e[3])]
    if not chosen:
        readers = sorted({e[0] for e in entries if not e[3]})
        raise ValueError(f"no modulated convolution reads the chosen ws {sorted(wanted or [])}: in this model they "
                         f"are read by ToRGB layers only (or by none); the modulated convolutions read ws "
                         f"{_ranges(readers)}")
    return chosen


def layer_reader_summary(G) -> str:
    """Which W+ indices the modulated convolutions and the ToRGB layers read, e.g. for tooltips and errors."""
    entries = style_layers(G)
    convs = sorted({e[0] for e in entries if not e[3]})
    rgb = sorted({e[0] for e in entries if e[3]})
    return f"modulated convolutions read ws {_ranges(convs)}, ToRGB layers ws {_ranges(rgb)}"


def _ranges(idx: Sequence[int]) -> str:
    idx = sorted(idx)
    parts, start = [], None
    for i, v in enumerate(idx):
        if start is None:
            start = v
        if i + 1 == len(idx) or idx[i + 1] != v + 1:
            parts.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return ",".join(parts)


def _canonical_sign(vectors: torch.Tensor) -> torch.Tensor:
    """Flip each row so that its largest-magnitude entry is positive (eigenvectors are only defined up to sign)."""
    idx = vectors.abs().argmax(dim=1, keepdim=True)
    sign = torch.sign(torch.gather(vectors, 1, idx))
    sign[sign == 0] = 1
    return vectors * sign


# ------------------------------------------------------------------------------------------ SeFa
def sefa_directions(G, layers: LayerSpec = None, *, include_torgb: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """SeFa: ``(directions [k, w_dim], eigenvalues [k])``, largest eigenvalue first, ``k = w_dim``.

    ``layers``: the W+ indices whose readers are factorised (a :func:`parse_layers` spec or list; ``None`` = every
    modulated convolution). ToRGB affines are left out unless ``include_torgb``. Directions are unit rows,
    orthonormal, float32 on the CPU, with the sign chosen so each row's largest entry is positive.
    """
    chosen = _chosen_affines(G, layers, include_torgb)
    rows = torch.cat([aff.weight.detach().to("cpu", torch.float64) for _, _, aff, _ in chosen])  # [channels, w_dim]
    rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-30)
    gram = rows.t() @ rows
    values, vectors = torch.linalg.eigh(gram)  # ascending, columns are eigenvectors
    values, vectors = values.flip(0), vectors.flip(1).t()
    return _canonical_sign(vectors).float(), values.clamp_min(0).float()


# ------------------------------------------------------------------------------------------ GANSpace
def _device_of(G) -> torch.device:
    return next(iter(G.parameters())).device


def _batches(n_samples: int, batch: int):
    start = 0
    while start < n_samples:
        yield start, min(batch, n_samples - start)
        start += batch


def sample_w(G, n_samples: int, seed: int = 0, *, class_index=None, batch_size: int = 4096,
             progress: Optional[Callable[[int, int], None]] = None,
             check_interrupt: Optional[Callable[[], None]] = None) -> torch.Tensor:
    """``w = mapping(z)`` at psi 1 for ``n_samples`` z drawn from ``np.random.RandomState(seed)``: [n, w_dim] float32.

    The z rows are one stream from that generator, so the first k samples of a larger draw are the same samples.
    Conditional models: ``class_index`` (an int) for all samples, or ``None`` = classes drawn uniformly (seeded).
    """
    n_samples = int(n_samples)
    if n_samples < 1:
        raise ValueError("n_samples must be at least 1")
    return torch.cat(list(_w_batches(G, n_samples, seed, class_index, batch_size, progress, check_interrupt)))


def _w_batches(G, n_samples, seed, class_index, batch_size, progress, check_interrupt):
    rng = np.random.RandomState(int(seed))
    crng = np.random.RandomState(int(seed) + 1)
    device = _device_of(G)
    for start, n in _batches(n_samples, max(1, int(batch_size))):
        if check_interrupt is not None:
            check_interrupt()
        z = torch.from_numpy(rng.randn(n, G.z_dim)).to(device=device, dtype=torch.float32)
        c = None
        if G.c_dim:
            cls = crng.randint(0, G.c_dim, size=n) if class_index is None else np.full(n, int(class_index))
            if not (0 <= cls).all() or not (cls < G.c_dim).all():
                raise ValueError(f"class index {class_index} is out of range 0..{G.c_dim - 1}")
            c = torch.zeros(n, G.c_dim, device=device)
            c[torch.arange(n), torch.from_numpy(cls).to(device)] = 1
        with torch.no_grad():
            ws = G.mapping(z, c, truncation_psi=1.0)
        yield (ws[:, 0] if ws.ndim == 3 else ws).float().cpu()
        if progress is not None:
            progress(start + n, n_samples)


def _w_moments(G, n_samples, seed, class_index=None, batch_size=4096, progress=None, check_interrupt=None):
    """(mean [w_dim], covariance [w_dim, w_dim]) of the sampled W, float64, accumulated batch by batch (memory
    w_dim^2, any n_samples); shifted by the first batch's mean against cancellation."""
    shift = total = outer = None
    count = 0
    for w in _w_batches(G, n_samples, seed, class_index, batch_size, progress, check_interrupt):
        w = w.double()
        if shift is None:
            shift = w.mean(0)
            total = torch.zeros_like(shift)
            outer = torch.zeros(w.shape[1], w.shape[1], dtype=torch.float64)
        x = w - shift
        total += x.sum(0)
        outer += x.t() @ x
        count += w.shape[0]
    mean_x = total / count
    cov = (outer - count * torch.outer(mean_x, mean_x)) / max(count - 1, 1)
    return shift + mean_x, (cov + cov.t()) / 2


def _pca_from_moments(mean, cov, n_samples):
    values, vectors = torch.linalg.eigh(cov)
    values, vectors = values.flip(0), vectors.flip(1).t()
    k = min(max(int(n_samples) - 1, 1), cov.shape[0])
    return _canonical_sign(vectors[:k]).float(), values[:k].clamp_min(0).sqrt().float(), mean.float()


def ganspace_directions(G, n_samples: int, seed: int = 0, *, class_index=None, batch_size: int = 4096,
                        progress=None, check_interrupt=None) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """GANSpace: ``(components [k, w_dim], stds [k], mean [w_dim])`` -- PCA of W over :func:`sample_w`'s samples.

    Components are orthonormal rows, largest variance first (``k = min(n_samples - 1, w_dim)``); ``stds`` the
    standard deviation of W along each (sample covariance, ``n - 1``); ``mean`` the sample mean of W. Sign as in
    :func:`sefa_directions`. Memory does not grow with ``n_samples`` (moments are accumulated batch by batch).
    """
    if int(n_samples) < 2:
        raise ValueError("GANSpace needs at least 2 samples (PCA of W); thousands give stable components")
    mean, cov = _w_moments(G, n_samples, seed, class_index, batch_size, progress, check_interrupt)
    return _pca_from_moments(mean, cov, n_samples)


def direction_sigmas(direction: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Standard deviation of W along each row of ``direction`` [k, w_dim] (unit-normalised): sqrt(u^T C u)."""
    d = torch.as_tensor(direction, dtype=torch.float64)
    u = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    var = ((u @ torch.as_tensor(cov, dtype=torch.float64)) * u).sum(-1)
    return var.clamp_min(0).sqrt().float()


def sigma_scaled(direction: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Each row of ``direction`` as a unit vector times the standard deviation of W along it, so that a strength
    of 1 moves a latent by one sigma of the model's own latent distribution (rows of zeros stay zero)."""
    d = torch.as_tensor(direction, dtype=torch.float32)
    u = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-30)
    return u * direction_sigmas(d, cov).unsqueeze(-1)


def parse_direction_indices(spec: Union[str, int, Iterable[int]], count: int) -> List[int]:
    """Direction indices in the order given: ``"0-3"``, ``"0,2,5"``, ``"all"`` (validated against ``count``)."""
    from .latents import _parse_int_list

    count = int(count)
    if isinstance(spec, str) and spec.strip().lower() == "all":
        return list(range(count))
    if isinstance(spec, str):
        return _parse_int_list(spec, "direction index", 0, count - 1)
    out = [int(spec)] if isinstance(spec, (int, np.integer)) else [int(i) for i in spec]
    for i in out:
        if not 0 <= i < count:
            raise ValueError(f"direction index {i} is out of range 0..{count - 1}")
    if not out:
        raise ValueError("no direction indices given")
    return out


# ------------------------------------------------------------------------------------------ edits
def _as_direction(direction, num_ws: int, w_dim: int) -> torch.Tensor:
    d = torch.as_tensor(np.asarray(direction) if not isinstance(direction, torch.Tensor) else direction)
    while d.ndim > 2 and d.shape[0] == 1:
        d = d[0]
    if d.ndim == 1:
        d = d.unsqueeze(0)
    if d.ndim != 2 or d.shape[1] != w_dim or d.shape[0] not in (1, num_ws):
        raise ValueError(f"direction of shape {list(d.shape)} does not fit these latents ({num_ws} ws of size "
                         f"{w_dim}): expected [{w_dim}], [1, {w_dim}] or [{num_ws}, {w_dim}]")
    return d


def edit_latent(ws: torch.Tensor, direction, strength, layers: LayerSpec = None, *, renormalize: bool = False,
                center: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``ws + strength * direction`` on the chosen W+ layers only (all by default); a new tensor.

    ``ws``: ``[num_ws, w_dim]`` or ``[N, num_ws, w_dim]``. ``direction``: ``[w_dim]``, ``[1, w_dim]`` (the same for
    every layer) or ``[num_ws, w_dim]`` (one row per layer). ``strength``: a number, or one per latent ``[N]``.
    ``layers``: a :func:`parse_layers` spec or index list; the other layers are returned unchanged, bit for bit.
    ``renormalize``: keep each edited w at its original distance from ``center`` (the model's ``w_avg``), so a
    long edit turns the latent instead of pushing it out to where the model has never been. A strength of 0
    returns the latents unchanged, bit for bit.
    """
    ws = torch.as_tensor(ws)
    if ws.ndim not in (2, 3):
        raise ValueError(f"ws must be [num_ws, w_dim] or [N, num_ws, w_dim], got {list(ws.shape)}")
    single = ws.ndim == 2
    x = ws.unsqueeze(0) if single else ws
    n, num_ws, w_dim = x.shape
    d = _as_direction(direction, num_ws, w_dim).to(device=x.device, dtype=x.dtype)
    s = torch.as_tensor(strength, dtype=x.dtype, device=x.device).reshape(-1)
    if s.numel() not in (1, n):
        raise ValueError(f"strength must be one number or one per latent ({n}), got {s.numel()}")
    s = s.expand(n) if s.numel() == 1 else s
    idx = list(range(num_ws)) if layers is None else parse_layers(layers, num_ws)
    rows = d.expand(num_ws, -1)[idx]  # [L, w_dim]
    old = x[:, idx]
    new = old + s.view(n, 1, 1) * rows.unsqueeze(0)
    if renormalize:
        if center is None:
            raise ValueError("renormalize needs center: the model's average w (G.w_avg)")
        c = torch.as_tensor(center).to(device=x.device, dtype=x.dtype)
        c = (c.reshape(1, w_dim).expand(num_ws, w_dim) if c.numel() == w_dim else c.reshape(num_ws, w_dim))[idx]
        r_old = (old - c).norm(dim=-1, keepdim=True)
        r_new = (new - c).norm(dim=-1, keepdim=True)
        new = c + (new - c) * (r_old / r_new.clamp_min(1e-12))
    new = torch.where((s == 0).view(n, 1, 1), old, new)  # strength 0: the input, not a round-trip of it
    out = x.clone()
    out[:, idx] = new
    return out[0] if single else out


def edit_sweep(ws: torch.Tensor, directions, strengths: Sequence[float], layers: LayerSpec = None, *,
               renormalize: bool = False, center=None) -> torch.Tensor:
    """Every latent along every direction at every strength: ``[N, D, S, num_ws, w_dim]``.

    ``directions``: ``[D, w_dim]`` (one row per direction, applied to every chosen layer), ``[D, num_ws, w_dim]``
    or a list of directions each accepted by :func:`edit_latent`.
    """
    ws = torch.as_tensor(ws)
    if ws.ndim == 2:
        ws = ws.unsqueeze(0)
    strengths = torch.as_tensor(list(strengths), dtype=ws.dtype)
    if strengths.numel() < 1:
        raise ValueError("no strengths given")
    if isinstance(directions, torch.Tensor):
        if directions.ndim not in (2, 3):
            raise ValueError(f"directions must be [D, w_dim] or [D, num_ws, w_dim], got {list(directions.shape)}")
        directions = list(directions)
    if not directions:
        raise ValueError("no directions given")
    n, S = ws.shape[0], strengths.numel()
    rows = []
    for i in range(n):
        rep = ws[i:i + 1].expand(S, -1, -1)
        rows.append(torch.stack([edit_latent(rep, d, strengths, layers, renormalize=renormalize, center=center)
                                 for d in directions]))
    return torch.stack(rows)


# ------------------------------------------------------------------------------------------ direction files
class DirectionFileError(ValueError):
    """A direction file that cannot be read or does not fit the model; the message says which and why."""


def _read_tensor(path: Path) -> torch.Tensor:
    ext = path.suffix.lower()
    name = path.name
    if ext == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise DirectionFileError(f"direction file '{name}' holds Python objects, not a plain array (refused: "
                                     f"pickled data can run code): {e}") from None
        except OSError as e:
            raise DirectionFileError(f"direction file '{name}' is not a readable .npy array: {e}") from None
        if arr.dtype.kind not in "fiu":
            raise DirectionFileError(f"direction file '{name}' holds {arr.dtype} values, not numbers")
        return torch.from_numpy(np.array(arr, dtype=np.float32))
    if ext in (".pt", ".pth"):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  (weights_only refuses anything but tensors and plain containers)
            raise DirectionFileError(f"direction file '{name}' could not be read safely as tensors (loaded with "
                                     f"weights_only=True; files with code or custom objects are refused): "
                                     f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
        return _pick_tensor(obj, name)
    if ext == ".safetensors":
        from safetensors.torch import load_file

        try:
            return _pick_tensor(load_file(str(path)), name)
        except DirectionFileError:
            raise
        except Exception as e:  # noqa: BLE001
            raise DirectionFileError(f"direction file '{name}' is not a readable .safetensors file: {e}") from None
    raise DirectionFileError(f"direction file '{name}': unsupported type '{ext}' "
                             f"(use {', '.join(DIRECTION_EXTENSIONS)})")


_DIRECTION_KEYS = ("direction", "boundary", "latent", "w", "dir")


def _pick_tensor(obj, name: str) -> torch.Tensor:
    if isinstance(obj, np.ndarray):
        obj = torch.from_numpy(obj)
    if isinstance(obj, torch.Tensor):
        return obj.detach().float().cpu()
    if isinstance(obj, (list, tuple)) and len(obj) == 1:
        return _pick_tensor(obj[0], name)
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, (torch.Tensor, np.ndarray))}
        for key in _DIRECTION_KEYS:
            if key in tensors:
                return _pick_tensor(tensors[key], name)
        if len(tensors) == 1:
            return _pick_tensor(next(iter(tensors.values())), name)
        raise DirectionFileError(f"direction file '{name}' holds {len(tensors)} tensors "
                                 f"({', '.join(map(str, list(tensors)[:6]))}); store one, or name it 'direction'")
    raise DirectionFileError(f"direction file '{name}' holds a {type(obj).__name__}, not a tensor")


def load_direction(path: Union[str, os.PathLike], num_ws: Optional[int] = None,
                   w_dim: Optional[int] = None) -> torch.Tensor:
    """A direction file (InterFaceGAN / encoder4editing boundary) as float32 ``[1, w_dim]`` or ``[num_ws, w_dim]``.

    ``.npy`` (read with ``allow_pickle=False``), ``.pt``/``.pth`` (``torch.load(weights_only=True)``: a tensor, or a
    dict with one tensor or a ``direction``/``boundary`` entry), ``.safetensors``. Leading axes of size 1 are dropped
    (``[1, 1, 512]``, ``[1, 18, 512]``), a bare ``[w_dim]`` becomes ``[1, w_dim]``. With ``num_ws``/``w_dim`` the
    shape is checked against the model; a mismatch raises :class:`DirectionFileError` saying what fits.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"direction file '{path}' not found")
    d = _read_tensor(path)
    shape = list(d.shape)
    while d.ndim > 2 and d.shape[0] == 1:
        d = d[0]
    if d.ndim == 1:
        d = d.unsqueeze(0)
    if d.ndim != 2 or d.numel() == 0:
        raise DirectionFileError(f"direction file '{path.name}' has shape {shape}; a direction is [1, w_dim] (one "
                                 f"for all layers) or [num_ws, w_dim] (one row per layer)")
    if not torch.isfinite(d).all():
        raise DirectionFileError(f"direction file '{path.name}' contains NaN or infinite values")
    if w_dim is not None and num_ws is not None:
        if d.shape[1] != int(w_dim) or d.shape[0] not in (1, int(num_ws)):
            raise DirectionFileError(
                f"direction file '{path.name}' has shape {shape}, but this model's latents are {num_ws} ws of size "
                f"{w_dim}: it needs [1, {w_dim}] (one direction for all layers) or [{num_ws}, {w_dim}] (one row "
                f"per layer). The file was made for another model (e.g. a 1024 px FFHQ boundary is [1, 512] or "
                f"[18, 512]).")
    if float(d.abs().max()) == 0.0:
        raise DirectionFileError(f"direction file '{path.name}' is all zeros: it would change nothing")
    return d.contiguous()


# ------------------------------------------------------------------------------------------ cache
def directions_cache_dir() -> Path:
    """Where computed directions are kept: ``$GAN_PACK_CACHE_DIR``, else ``$XDG_CACHE_HOME`` or ``~/.cache``,
    then ``comfyui-gan-pack/stylegan_directions``. Files are small (a few w_dim x w_dim tensors) and can be deleted
    at any time."""
    root = os.environ.get("GAN_PACK_CACHE_DIR")
    if root:
        return Path(root) / "stylegan_directions"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "comfyui-gan-pack" / "stylegan_directions"


def _weights_hash(tensors: Iterable[Tuple[str, torch.Tensor]]) -> str:
    h = hashlib.sha256()
    for name, t in tensors:
        t = t.detach().to("cpu", torch.float32).contiguous()
        h.update(name.encode())
        h.update(str(list(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def _mapping_hash(G) -> str:
    return _weights_hash(sorted(G.mapping.state_dict().items()))


def _affine_hash(G) -> str:
    return _weights_hash((name, aff.weight) for _, name, aff, _ in style_layers(G))


def _cached(kind: str, key: Dict, compute: Callable[[], Dict[str, torch.Tensor]],
            cache_dir: Union[None, str, os.PathLike, bool]) -> Dict[str, torch.Tensor]:
    if cache_dir is False:
        return compute()
    folder = Path(cache_dir) if cache_dir not in (None, True) else directions_cache_dir()
    text = json.dumps({"kind": kind, "version": CACHE_VERSION, **key}, sort_keys=True)
    path = folder / f"{kind}-{hashlib.sha256(text.encode()).hexdigest()[:32]}.safetensors"
    if path.is_file():
        try:
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                if (f.metadata() or {}).get("key") == text:
                    return {k: f.get_tensor(k) for k in f.keys()}
        except Exception as e:  # noqa: BLE001  (a damaged cache file is recomputed)
            log.warning("ignoring unreadable directions cache %s: %s", path, e)
    result = compute()
    try:
        from .._files import save_safetensors_atomic

        save_safetensors_atomic(result, path, {"key": text})
    except OSError as e:
        log.warning("could not write the directions cache %s (%s); results are not kept", path, e)
    return result


def w_statistics(G, n_samples: int = 10000, seed: int = 0, *, class_index=None, cache_dir=None, progress=None,
                 check_interrupt=None) -> Tuple[torch.Tensor, torch.Tensor]:
    """(mean [w_dim], covariance [w_dim, w_dim]) of W = mapping(z) over :func:`sample_w`'s samples, float64,
    cached per mapping network (``cache_dir=False``: no cache)."""
    key = {"mapping": _mapping_hash(G), "n": int(n_samples), "seed": int(seed),
           "class": None if class_index is None else int(class_index)}

    def compute():
        mean, cov = _w_moments(G, n_samples, seed, class_index, progress=progress, check_interrupt=check_interrupt)
        return {"mean": mean, "cov": cov}

    r = _cached("wstats", key, compute, cache_dir)
    return r["mean"], r["cov"]


def cached_directions(G, method: str = "sefa", *, layers: LayerSpec = None, n_samples: int = 10000, seed: int = 0,
                      class_index=None, cache_dir=None, progress=None,
                      check_interrupt=None) -> Dict[str, torch.Tensor]:
    """Directions of ``G`` with everything an editor needs, from the cache when the same weights were seen before.

    Returns ``{"directions" [k, w_dim], "values" [k] (SeFa eigenvalues / GANSpace stds), "sigmas" [k] (std of W
    along each direction, for strengths in sigma units), "mean" [w_dim] (GANSpace mean / W sample mean)}``. The W
    statistics use ``n_samples`` seeded samples for both methods.
    """
    if method not in ("sefa", "ganspace"):
        raise ValueError(f"method must be 'sefa' or 'ganspace', got {method!r}")
    mean, cov = w_statistics(G, n_samples, seed, class_index=class_index, cache_dir=cache_dir, progress=progress,
                             check_interrupt=check_interrupt)
    if method == "ganspace":
        if int(n_samples) < 2:
            raise ValueError("GANSpace needs at least 2 samples (PCA of W); thousands give stable components")
        comps, stds, mean32 = _pca_from_moments(mean, cov, n_samples)
        return {"directions": comps, "values": stds, "sigmas": stds.clone(), "mean": mean32}
    idx = None if layers is None else parse_layers(layers, G.num_ws)
    key = {"affines": _affine_hash(G), "layers": idx}

    def compute():
        d, v = sefa_directions(G, idx)
        return {"directions": d, "values": v}

    r = _cached("sefa", key, compute, cache_dir)
    return {"directions": r["directions"], "values": r["values"], "sigmas": direction_sigmas(r["directions"], cov),
            "mean": mean.float()}
