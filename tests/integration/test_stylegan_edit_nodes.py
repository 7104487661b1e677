"""StyleGAN editing nodes inside a real ComfyUI server: direction files from models/stylegan_directions (both
shapes, wrong shapes, missing files), Edit Latent on a projected photo, against the engine run directly."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.comfy_client import ComfyExecutionError, ComfyPromptRejected

import integration.workflow_checks  # noqa: F401  (imports checks_stylegan itself: avoids a circular import)
from integration.checks_stylegan import BUNDLED_DIR, assert_close_8bit, engine_images, engine_ws

NAME = "gan_pack_islands64.safetensors"
EDIT_NODES = ["GANPackStyleGANDirections", "GANPackStyleGANEditLatent", "GANPackStyleGANEditSweep"]


def _edit_prompt(direction_file, strength, layers="all", units="raw", seeds="3,4"):
    return {
        "1": {"class_type": "GANPackLoadStyleGAN", "inputs": {"model_name": NAME}},
        "2": {"class_type": "GANPackStyleGANLatent", "inputs": {"stylegan": ["1", 0], "seeds": seeds,
                                                                "truncation_psi": 1.0, "truncation_cutoff": 0,
                                                                "class_index": 0}},
        "3": {"class_type": "GANPackStyleGANEditLatent",
              "inputs": {"stylegan": ["1", 0], "latent": ["2", 0], "direction_index": 0, "strength": strength,
                         "direction_file": direction_file, "units": units, "layers": layers,
                         "custom_layers": "0-3", "renormalize": False}},
        "4": {"class_type": "GANPackStyleGANSynthesize", "inputs": {"stylegan": ["1", 0], "latent": ["3", 0],
                                                                    "noise_mode": "const", "seed": 0,
                                                                    "batch_size": 8}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "sg_edit"}},
    }


def test_edit_nodes_listed_with_tooltips(object_info):
    for name in EDIT_NODES:
        d = object_info[name]
        assert d["category"] == "GAN/StyleGAN", name
        assert d["description"].strip() and d["display_name"] != name
        for inp, spec in {**d["input"]["required"], **d["input"].get("optional", {})}.items():
            assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{inp} has no tooltip"
    assert object_info["GANPackStyleGANDirections"]["display_name"] == "StyleGAN Directions (SeFa/GANSpace)"
    assert object_info["GANPackStyleGANDirections"]["output"][0] == "STYLEGAN_DIRECTIONS"


def test_direction_files_of_both_shapes_through_the_server(comfy_server, models_root):
    from models.stylegan import load_stylegan

    G = load_stylegan(BUNDLED_DIR / NAME)
    rng = np.random.RandomState(7)
    one = rng.randn(1, G.w_dim).astype(np.float32)
    one /= np.linalg.norm(one)
    per_layer = (rng.randn(G.num_ws, G.w_dim) / np.sqrt(G.w_dim)).astype(np.float32)
    folder = models_root / "stylegan_directions"
    np.save(folder / "test_boundary.npy", one)
    torch.save(torch.from_numpy(per_layer), folder / "test_per_layer.pt")
    info = comfy_server.get_json("/object_info/GANPackStyleGANEditLatent")
    choices = info["GANPackStyleGANEditLatent"]["input"]["required"]["direction_file"][0]
    assert "test_boundary.npy" in choices and "test_per_layer.pt" in choices and choices[0] == "(none)"
    ws = engine_ws(G, "3,4", 1.0)
    coarse_edit = ws.clone()
    coarse_edit[:, :4] += 6.0 * torch.from_numpy(per_layer[:4])  # row l of the file on layer l, layers 0-3 only
    cases = [("test_boundary.npy", 4.0, "all", ws + 4.0 * torch.from_numpy(one)),
             ("test_per_layer.pt", 6.0, "custom", coarse_edit)]
    for fname, strength, layers, exp_ws in cases:
        entry = comfy_server.run(_edit_prompt(fname, strength, layers), timeout=300)
        files = comfy_server.output_files(entry)
        assert len(files) == 2
        expected = engine_images(G, exp_ws)
        unedited = engine_images(G, ws)
        for f, exp, orig in zip(files, expected, unedited):
            out = np.asarray(Image.open(f))
            assert_close_8bit(out, exp, f"{fname}: {f.name}")
            assert np.abs(out[..., :3].astype(float) - orig).mean() > 2.0, f"{fname}: the edit changed nothing"


def test_wrong_and_missing_direction_files(comfy_server, models_root):
    np.save(models_root / "stylegan_directions" / "ffhq_age.npy", np.ones((18, 512), np.float32))
    with pytest.raises(ComfyExecutionError) as err:
        comfy_server.run(_edit_prompt("ffhq_age.npy", 1.0), timeout=300)
    msg = str(err.value)
    assert "ffhq_age.npy" in msg and "[18, 512]" in msg and "[1, 64]" in msg and "[10, 64]" in msg, msg
    with pytest.raises(ComfyPromptRejected) as err:
        comfy_server.queue(_edit_prompt("from_a_colleague.npy", 1.0))
    msg = str(err.value)
    assert "from_a_colleague.npy" in msg and "stylegan_directions" in msg and "Put it in" in msg, msg
    assert comfy_server.alive()


def test_edit_a_projected_photo(comfy_server):
    """Project Image -> Edit Latent (SeFa direction 0 of the coarse layers, 'as computed') -> Synthesize: strength 0
    gives the projection's own reconstruction; +3 sigma changes only what the coarse layers carry."""
    from models.stylegan import load_stylegan

    G = load_stylegan(BUNDLED_DIR / NAME)
    target = engine_images(G, engine_ws(G, "9", 1.0))[0]
    Image.fromarray(target).save(comfy_server.input_dir / "sg_edit_photo.png")
    prompt = {
        "1": {"class_type": "GANPackLoadStyleGAN", "inputs": {"model_name": NAME}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "sg_edit_photo.png"}},
        "3": {"class_type": "GANPackStyleGANProject", "inputs": {"stylegan": ["1", 0], "image": ["2", 0],
                                                                 "steps": 8, "seed": 0}},
        "4": {"class_type": "GANPackStyleGANDirections", "inputs": {"stylegan": ["1", 0], "method": "sefa",
                                                                    "layers": "coarse", "custom_layers": "0-3",
                                                                    "n_samples": 2000, "seed": 0}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["3", 1], "filename_prefix": "sg_pe_recon"}},
    }
    for key, strength, prefix in (("10", 0.0, "sg_pe_zero"), ("20", 3.0, "sg_pe_three")):
        prompt[key] = {"class_type": "GANPackStyleGANEditLatent",
                       "inputs": {"stylegan": ["1", 0], "latent": ["3", 0], "directions": ["4", 0],
                                  "direction_index": 0, "strength": strength, "direction_file": "(none)",
                                  "units": "sigma", "layers": "as computed", "custom_layers": "0-3",
                                  "renormalize": False}}
        prompt[key + "1"] = {"class_type": "GANPackStyleGANSynthesize",
                             "inputs": {"stylegan": ["1", 0], "latent": [key, 0], "noise_mode": "const", "seed": 0,
                                        "batch_size": 4}}
        prompt[key + "2"] = {"class_type": "SaveImage", "inputs": {"images": [key + "1", 0],
                                                                   "filename_prefix": prefix}}
    entry = comfy_server.run(prompt, timeout=600)
    out = {f.name.split("_0")[0]: np.asarray(Image.open(f))[..., :3] for f in comfy_server.output_files(entry)}
    recon, same, edited = out["sg_pe_recon"], out["sg_pe_zero"], out["sg_pe_three"]
    assert_close_8bit(same, recon, "strength 0 edit of the projected latent vs its reconstruction")
    change = np.abs(edited.astype(float) - recon).mean()
    assert change > 5.0, f"a 3-sigma coarse edit changed the picture by only {change:.1f}/255"
    # coarse SeFa directions of the bundled model move the layout, not the colours: the two colours stay
    from scripts.stylegan_directions import land_sea

    _, land_a, sea_a = land_sea(recon / 255.0)
    mask_b, land_b, sea_b = land_sea(edited / 255.0)
    assert np.abs(land_a - land_b).max() < 0.08 and np.abs(sea_a - sea_b).max() < 0.08, \
        f"colours changed: land {land_a} -> {land_b}, sea {sea_a} -> {sea_b}"
