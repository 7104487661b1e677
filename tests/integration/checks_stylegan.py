"""Pixel checks of the StyleGAN workflows (stylegan_style_mixing, stylegan_latent_walk, stylegan_to_diffusion,
stylegan_edit_sweep).

Each recomputes the expected pixels with the engine directly in this process (``models.stylegan``: same model
file, seeds, truncation, layers, frames) and compares with what the server saved (SaveImage's 8-bit conversion
included: within 1/255), then checks what the bundled model's card promises on the decoded pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from integration.diffusion import diffusion_to_taesd, install_random_taesd
from integration.workflow_checks import REPO, Check
from integration.server_paths import models_root_of

BUNDLED_DIR = REPO / "models" / "bundled" / "stylegan"


# ------------------------------------------------------------------------------------------ helpers
def nodes_of(prompt, class_type):
    return sorted((k for k, v in prompt.items() if v["class_type"] == class_type), key=lambda k: (len(k), k))


def model_file(name: str, server=None) -> Path:
    for folder in ([models_root_of(server) / "stylegan"] if server is not None else []) + [BUNDLED_DIR]:
        if (folder / name).is_file():
            return folder / name
    raise AssertionError(f"{name} not found in the test models or {BUNDLED_DIR}")


def load(name: str, server=None):
    from models.stylegan import load_stylegan

    return load_stylegan(model_file(name, server), device="cpu")


def engine_ws(G, seeds, psi, cutoff=0):
    from models.stylegan import seeds_to_z

    with torch.no_grad():
        return G.mapping(seeds_to_z(seeds, G.z_dim), None, truncation_psi=psi,
                         truncation_cutoff=cutoff if cutoff and cutoff > 0 else None)


def engine_images(G, ws, noise_mode="const"):
    """ws -> uint8 NHWC exactly as the nodes + SaveImage produce them ((x + 1) / 2, clamp, * 255, truncate)."""
    with torch.no_grad():
        img = G.synthesis(ws, noise_mode=noise_mode)
    img = ((img[:, :3] + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    return np.clip(255.0 * img, 0, 255).astype(np.uint8)


def assert_close_8bit(out, expected, what, tol=1):
    out = np.asarray(out)[..., :3].astype(np.int16)
    expected = np.asarray(expected)[..., :3].astype(np.int16)
    assert out.shape == expected.shape, f"{what}: shape {out.shape} != {expected.shape}"
    err = np.abs(out - expected).max()
    assert err <= tol, f"{what}: max difference {err}/255 from the engine run directly"


def two_tone(img, pool=4):
    """(mask [h, w] bool, centres [2, 3]): the picture split into its two colours by 2-means on the 4x4-pooled
    pixels (pooling averages out fine detail). Which side is ``True`` is arbitrary."""
    x = img[..., :3].astype(np.float64) / 255
    h, w = x.shape[0] // pool, x.shape[1] // pool
    x = x[:h * pool, :w * pool].reshape(h, pool, w, pool, 3).mean((1, 3)).reshape(-1, 3)
    lum = x.sum(1)
    centres = np.stack([x[lum.argmin()], x[lum.argmax()]])
    for _ in range(20):
        label = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
        centres = np.stack([x[label == k].mean(0) if (label == k).any() else centres[k] for k in range(2)])
    return label.reshape(h, w).astype(bool), centres


def layout_similarity(a, b):
    """IoU of the two-tone masks, whichever way round the two colours fall (colour-blind layout match)."""
    def iou(p, q):
        return (p & q).sum() / max(1, (p | q).sum())

    return max(iou(a, b), iou(a, ~b))


def palette_distance(ca, cb):
    """Distance between two pairs of colours (the better of the two matchings)."""
    return min(np.abs(ca - cb).sum(), np.abs(ca - cb[::-1]).sum())


def mixing_scores(grid, res, rows, cols):
    """For every mixed cell of a style-mixing grid: layout similarity to the column's and the row's original,
    palette distance to the column's and the row's original."""
    def cell(r, c):
        return two_tone(grid[r * res:(r + 1) * res, c * res:(c + 1) * res])

    out = []
    for r in range(1, rows + 1):
        row_mask, row_pal = cell(r, 0)
        for c in range(1, cols + 1):
            col_mask, col_pal = cell(0, c)
            m, pal = cell(r, c)
            out.append((layout_similarity(m, col_mask), layout_similarity(m, row_mask),
                        palette_distance(pal, col_pal), palette_distance(pal, row_pal)))
    return np.array(out)


# ------------------------------------------------------------------------------------------ style mixing
def _check_style_mixing(server, prompt, files, images):
    from models.image import image_grid
    from models.stylegan import parse_layers, style_mix

    (grid_img,) = images
    (loader,) = nodes_of(prompt, "GANPackLoadStyleGAN")
    (mix,) = nodes_of(prompt, "GANPackStyleMix")
    (synth,) = nodes_of(prompt, "GANPackStyleGANSynthesize")
    G = load(prompt[loader]["inputs"]["model_name"], server)
    mi = prompt[mix]["inputs"]
    lat = {}
    for role in ("row_latent", "column_latent"):
        li = prompt[mi[role][0]]["inputs"]
        lat[role] = engine_ws(G, li["seeds"], li["truncation_psi"], li["truncation_cutoff"])
    spec = mi["custom_layers"] if mi["layers"] == "custom" else mi["layers"]
    rows_ws, cols_ws = lat["row_latent"], lat["column_latent"]
    R, C = rows_ws.shape[0], cols_ws.shape[0]
    mixed = style_mix(rows_ws, cols_ws, parse_layers(spec, G.num_ws))
    noise = prompt[synth]["inputs"]["noise_mode"]
    cells = [np.zeros((G.img_resolution, G.img_resolution, 3), np.uint8)] + list(engine_images(G, cols_ws, noise))
    row_imgs = engine_images(G, rows_ws, noise)
    for r in range(R):
        cells += [row_imgs[r]] + list(engine_images(G, mixed[r], noise))
    expected = image_grid(torch.from_numpy(np.stack(cells)), C + 1, fill=0.0)[0].numpy()
    assert grid_img.shape[:2] == ((R + 1) * G.img_resolution, (C + 1) * G.img_resolution)
    assert_close_8bit(grid_img, expected, "style-mixing grid")
    if mi["mode"] == "grid" and mi["layers"] == "coarse" and Path(model_file(
            prompt[loader]["inputs"]["model_name"], server)).parent == BUNDLED_DIR:
        # the bundled model's card: coarse layers carry the layout, fine layers the colours
        s = mixing_scores(grid_img, G.img_resolution, R, C)
        col_iou, row_iou, col_pal, row_pal = s.mean(0)
        assert col_iou > row_iou + 0.2, f"mixed cells: layout IoU with column {col_iou:.2f} vs row {row_iou:.2f}"
        assert (s[:, 0] > s[:, 1]).mean() >= 0.8, f"most mixed cells must take the column's layout: {s[:, :2]}"
        assert row_pal < 0.5 * col_pal, f"mixed cells: colour distance to row {row_pal:.3f} vs column {col_pal:.3f}"
        assert (s[:, 3] < s[:, 2]).mean() >= 0.8, f"most mixed cells must keep the row's colours: {s[:, 2:]}"


# ------------------------------------------------------------------------------------------ latent walk
def _prepare_walk(server, prompt):
    (walk,) = nodes_of(prompt, "GANPackStyleGANInterpolate")
    prompt[walk]["inputs"]["frames"] = 24  # CPU time: 24 frames still cover three keyframes and the wrap


def _check_walk(server, prompt, files, images):
    from models.stylegan import interpolate_latents

    (loader,) = nodes_of(prompt, "GANPackLoadStyleGAN")
    (walk,) = nodes_of(prompt, "GANPackStyleGANInterpolate")
    (synth,) = nodes_of(prompt, "GANPackStyleGANSynthesize")
    wi = prompt[walk]["inputs"]
    li = prompt[wi["keyframes"][0]]["inputs"]
    G = load(prompt[loader]["inputs"]["model_name"], server)
    assert wi["space"] == "w"
    keys = engine_ws(G, li["seeds"], li["truncation_psi"], li["truncation_cutoff"])
    ws = interpolate_latents(keys, wi["frames"], space="w", easing=wi["easing"], loop=wi["loop"])
    expected = engine_images(G, ws, prompt[synth]["inputs"]["noise_mode"])
    assert len(images) == wi["frames"], f"{len(images)} frames saved, expected {wi['frames']}"
    for i, (out, exp) in enumerate(zip(images, expected)):
        assert_close_8bit(out, exp, f"frame {i}")
    frames = np.stack([im[..., :3] for im in images]).astype(np.float64) / 255
    steps = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    wrap = np.abs(frames[-1] - frames[0]).mean()
    key_gap = np.mean([np.abs(expected[0].astype(float) - engine_images(G, keys[i:i + 1])[0]).mean() / 255
                       for i in range(1, keys.shape[0])])
    assert wi["loop"]
    # a loop: the last frame leads back into the first as smoothly as any other pair of frames
    assert wrap <= 1.25 * steps.max(), f"loop seam {wrap:.4f} vs largest frame step {steps.max():.4f}"
    # smooth: every step is a fraction of the distance between keyframes and none jumps
    assert steps.max() < 0.5 * key_gap, f"largest frame step {steps.max():.4f} vs keyframe distance {key_gap:.4f}"
    assert steps.max() <= 4 * steps.mean() + 1e-3, f"uneven steps: {np.round(steps, 4)}"
    assert key_gap > 0.02, "the keyframes look alike: the walk shows nothing"


# ------------------------------------------------------------------------------------------ diffusion
def _prepare_diffusion(server, prompt):
    """Random TAESD instead of the checkpoint (no download); also save the StyleGAN image and decode a different
    StyleGAN image through the same VAE, so the check proves our IMAGE is what reached VAE Encode/Decode."""
    install_random_taesd(models_root_of(server))
    diffusion_to_taesd(prompt)
    (gen,) = nodes_of(prompt, "GANPackStyleGANGenerate")
    (scale,) = nodes_of(prompt, "ImageScale")
    (enc,) = nodes_of(prompt, "VAEEncode")
    vae = prompt[enc]["inputs"]["vae"]
    other = dict(prompt[gen]["inputs"], seeds="8")
    prompt["9001"] = {"class_type": "SaveImage", "inputs": {"images": [gen, 0], "filename_prefix": "zz_stylegan"}}
    prompt["9002"] = {"class_type": "GANPackStyleGANGenerate", "inputs": other}
    prompt["9003"] = {"class_type": "ImageScale", "inputs": dict(prompt[scale]["inputs"], image=["9002", 0])}
    prompt["9004"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["9003", 0], "vae": vae}}
    prompt["9005"] = {"class_type": "VAEDecode", "inputs": {"samples": ["9004", 0], "vae": vae}}
    prompt["9006"] = {"class_type": "SaveImage", "inputs": {"images": ["9005", 0], "filename_prefix": "zz_other"}}


def _check_diffusion(server, prompt, files, images):
    by_prefix = {f.name.split("_0")[0]: img[..., :3] for f, img in zip(files, images)}
    generated, other = by_prefix.pop("zz_stylegan"), by_prefix.pop("zz_other")
    (decoded,) = by_prefix.values()
    (gen,) = [k for k in nodes_of(prompt, "GANPackStyleGANGenerate") if not k.startswith("900")]
    (scale,) = [k for k in nodes_of(prompt, "ImageScale") if not k.startswith("900")]
    gi = prompt[gen]["inputs"]
    G = load(gi["model_name"], server)
    assert_close_8bit(generated, engine_images(G, engine_ws(G, gi["seeds"], gi["truncation_psi"]))[0],
                      "StyleGAN image")
    si = prompt[scale]["inputs"]
    assert decoded.shape[:2] == other.shape[:2] == (si["height"], si["width"])
    change = np.abs(decoded.astype(np.float64) - other.astype(np.float64)).mean()
    assert change > 2.0, f"the VAE output does not depend on the StyleGAN image (mean change {change:.2f})"


# ------------------------------------------------------------------------------------------ edit sweep
def _check_edit_sweep(server, prompt, files, images):
    """The strength x direction grid equals the engine's (SeFa directions, sigma units, the sweep's strengths), the
    middle column is the unedited latent, and along every row the picture moves away monotonically: the distance
    from the first column grows at every step, and the distance from the unedited picture grows both ways."""
    from models.image import image_grid
    from models.stylegan import editing as ed

    (grid_img,) = images
    (loader,) = nodes_of(prompt, "GANPackLoadStyleGAN")
    (dirs_node,) = nodes_of(prompt, "GANPackStyleGANDirections")
    (sweep,) = nodes_of(prompt, "GANPackStyleGANEditSweep")
    (synth,) = nodes_of(prompt, "GANPackStyleGANSynthesize")
    G = load(prompt[loader]["inputs"]["model_name"], server)
    di, si = prompt[dirs_node]["inputs"], prompt[sweep]["inputs"]
    assert di["method"] == "sefa" and di["layers"] == "all" and si["units"] == "sigma"
    assert si["layers"] == "as computed" and not si["renormalize"] and si["direction_file"] == "(none)"
    li = prompt[si["latent"][0]]["inputs"]
    ws = engine_ws(G, li["seeds"], li["truncation_psi"], li["truncation_cutoff"])
    r = ed.cached_directions(G, "sefa", n_samples=di["n_samples"], seed=di["seed"], cache_dir=False)
    idx = ed.parse_direction_indices(si["direction_indices"], r["directions"].shape[0])
    S = si["steps"]
    strengths = torch.linspace(si["strength_min"], si["strength_max"], S).tolist()
    dirs = r["directions"][idx] * r["sigmas"][idx, None]
    edited = ed.edit_sweep(ws, dirs, strengths).reshape(-1, G.num_ws, G.w_dim)
    cells = engine_images(G, edited, prompt[synth]["inputs"]["noise_mode"])
    res = G.img_resolution
    rows = ws.shape[0] * len(idx)
    assert grid_img.shape[:2] == (rows * res, S * res), f"grid {grid_img.shape} for {rows} rows x {S} strengths"
    expected = image_grid(torch.from_numpy(cells), S, fill=0.0)[0].numpy()
    assert_close_8bit(grid_img, expected, "edit sweep grid")
    got = grid_img[..., :3].astype(np.float64).reshape(rows, res, S, res, 3).transpose(0, 2, 1, 3, 4)
    centre = strengths.index(0.0) if 0.0 in strengths else None
    assert centre is not None, f"a symmetric sweep shows the unedited latent: strengths {strengths}"
    assert_close_8bit(got[0, centre], engine_images(G, ws[:1])[0], "strength 0 column (the unedited latent)")
    for r_ in range(rows):
        from_first = np.array([np.abs(got[r_, j] - got[r_, 0]).mean() for j in range(S)])
        from_centre = np.array([np.abs(got[r_, j] - got[r_, centre]).mean() for j in range(S)])
        steps = np.diff(from_first)
        assert (steps > 0.5).all(), f"row {r_}: distance from the first column must grow at every step: {from_first}"
        assert (np.diff(from_centre[:centre + 1]) < -0.5).all() and (np.diff(from_centre[centre:]) > 0.5).all(), \
            f"row {r_}: distance from the unedited picture must grow both ways: {from_centre}"
        assert from_first[-1] > 10, f"row {r_}: the edit barely changes the picture ({from_first[-1]:.1f}/255)"


CHECKS = {
    "stylegan_style_mixing": Check(_check_style_mixing),
    "stylegan_latent_walk": Check(_check_walk, _prepare_walk),
    "stylegan_to_diffusion": Check(_check_diffusion, _prepare_diffusion),
    "stylegan_edit_sweep": Check(_check_edit_sweep),
}
