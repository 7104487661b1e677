"""StyleGAN nodes inside a real ComfyUI server: registration, user model files, unsafe and missing files."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from scripts.comfy_client import ComfyExecutionError, ComfyPromptRejected

import integration.workflow_checks  # noqa: F401  (imports checks_stylegan itself: avoids a circular import)
from integration.checks_stylegan import assert_close_8bit, engine_images, engine_ws

OUR_NODES = ["GANPackLoadStyleGAN", "GANPackStyleGANLatent", "GANPackStyleMix", "GANPackStyleGANSynthesize",
             "GANPackStyleGANImageGrid", "GANPackStyleGANInterpolate", "GANPackStyleGANProject",
             "GANPackStyleGANGenerate", "GANPackConvertStyleGAN"]


def _generate_prompt(model_name, seeds="3,4", psi=0.7):
    return {"1": {"class_type": "GANPackStyleGANGenerate",
                  "inputs": {"model_name": model_name, "seeds": seeds, "truncation_psi": psi}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "sg_test"}}}


def _small_generator():
    from models.stylegan.sg2 import StyleGAN2Generator

    torch.manual_seed(3)
    G = StyleGAN2Generator(z_dim=16, c_dim=0, w_dim=16, img_resolution=16, img_channels=3,
                           mapping_kwargs={"num_layers": 2},
                           synthesis_kwargs={"channel_base": 256, "channel_max": 16})
    with torch.no_grad():
        G.mapping.w_avg.normal_()
    return G


def test_stylegan_nodes_listed_with_tooltips(object_info):
    for name in OUR_NODES:
        d = object_info[name]
        assert d["category"] == "GAN/StyleGAN", name
        assert d["description"].strip() and d["display_name"] != name
        for inp, spec in d["input"]["required"].items():
            assert len(spec) > 1 and spec[1].get("tooltip"), f"{name}.{inp} has no tooltip"
    bundled = object_info["GANPackLoadStyleGAN"]["input"]["required"]["model_name"][0]
    assert "gan_pack_islands64.safetensors" in bundled


def test_user_safetensors_is_listed_and_runs(comfy_server, models_root, object_info):
    from models.stylegan import save_stylegan

    G = _small_generator()
    save_stylegan(G, models_root / "stylegan" / "user_small.safetensors")
    info = comfy_server.get_json("/object_info/GANPackStyleGANGenerate")
    assert "user_small.safetensors" in info["GANPackStyleGANGenerate"]["input"]["required"]["model_name"][0]
    entry = comfy_server.run(_generate_prompt("user_small.safetensors"), timeout=300)
    files = comfy_server.output_files(entry)
    assert len(files) == 2
    expected = engine_images(G, engine_ws(G, "3,4", 0.7))
    for f, exp in zip(files, expected):
        out = np.asarray(Image.open(f))
        assert out.shape[:2] == (16, 16)
        assert_close_8bit(out, exp, f.name)


class _Payload:
    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.path}",))


def test_malicious_pickle_is_refused_and_nothing_runs(comfy_server, models_root, tmp_path):
    marker = tmp_path / "payload_ran"
    (models_root / "stylegan" / "evil.pkl").write_bytes(pickle.dumps({"G_ema": _Payload(marker)}, protocol=4))
    with pytest.raises(ComfyExecutionError) as err:
        comfy_server.run(_generate_prompt("evil.pkl"), timeout=300)
    msg = str(err.value)
    assert "evil.pkl" in msg and "refused" in msg and "system" in msg, msg
    assert not marker.exists(), "the pickle's payload was executed"
    assert comfy_server.alive()
    # the server keeps serving: a good model still runs afterwards
    entry = comfy_server.run(_generate_prompt("gan_pack_islands64.safetensors", seeds="1"), timeout=300)
    assert comfy_server.output_files(entry)


def test_missing_model_file_names_file_and_folder(comfy_server):
    with pytest.raises(ComfyPromptRejected) as err:
        comfy_server.queue(_generate_prompt("shared_by_a_colleague.pkl"))
    msg = str(err.value)
    assert "shared_by_a_colleague.pkl" in msg and "stylegan" in msg and "Put it in" in msg, msg
    assert comfy_server.alive()


def test_project_image_reconstructs_a_generated_image(comfy_server, models_root):
    """Project Image (with the user model from above): the latent it finds renders closer to the target than the
    model's average image does, and its reconstruction output is those pixels."""
    from models.stylegan import save_stylegan

    G = _small_generator()
    path = models_root / "stylegan" / "user_small.safetensors"
    if not path.exists():
        save_stylegan(G, path)
    target = engine_images(G, engine_ws(G, "5", 1.0))[0]
    Image.fromarray(target).save(comfy_server.input_dir / "sg_project_target.png")
    prompt = {
        "1": {"class_type": "GANPackLoadStyleGAN", "inputs": {"model_name": "user_small.safetensors"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": "sg_project_target.png"}},
        "3": {"class_type": "GANPackStyleGANProject", "inputs": {"stylegan": ["1", 0], "image": ["2", 0],
                                                                 "steps": 60, "seed": 0}},
        "4": {"class_type": "GANPackStyleGANSynthesize", "inputs": {"stylegan": ["1", 0], "latent": ["3", 0],
                                                                    "noise_mode": "const", "seed": 0,
                                                                    "batch_size": 4}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "sg_proj_synth"}},
        "6": {"class_type": "SaveImage", "inputs": {"images": ["3", 1], "filename_prefix": "sg_proj_recon"}},
    }
    entry = comfy_server.run(prompt, timeout=300)
    files = {f.name.split("_0")[0]: np.asarray(Image.open(f))[..., :3] for f in comfy_server.output_files(entry)}
    synth, recon = files["sg_proj_synth"], files["sg_proj_recon"]
    assert_close_8bit(recon, synth, "reconstruction output vs synthesis of the projected latent")
    average = engine_images(G, engine_ws(G, "5", 0.0))[0]
    err = np.abs(recon.astype(float) - target).mean()
    err_avg = np.abs(average.astype(float) - target).mean()
    assert err < 0.6 * err_avg, f"projection error {err:.1f} vs average image {err_avg:.1f} (8-bit units)"


def test_convert_node_writes_a_bit_exact_safetensors(comfy_server, models_root):
    """A bare reference-layout state dict (.pt) converted by the node: the .safetensors lands in the stylegan
    folder, appears in the dropdowns, and holds exactly the same tensors."""
    from models.stylegan import load_stylegan

    G = _small_generator()
    torch.save(G.state_dict(), models_root / "stylegan" / "colleague_bare.pt")
    prompt = {"1": {"class_type": "GANPackConvertStyleGAN",
                    "inputs": {"model_name": "colleague_bare.pt", "output_name": "colleague_safe",
                               "overwrite": True}}}
    comfy_server.run(prompt, timeout=300)
    out = models_root / "stylegan" / "colleague_safe.safetensors"
    assert out.is_file()
    info = comfy_server.get_json("/object_info/GANPackLoadStyleGAN")
    assert "colleague_safe.safetensors" in info["GANPackLoadStyleGAN"]["input"]["required"]["model_name"][0]
    a, b = load_stylegan(models_root / "stylegan" / "colleague_bare.pt").state_dict(), load_stylegan(out).state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_z_walk_pairwise_mix_and_random_noise(comfy_server):
    """Interpolate in z (not looping: the first and last frames are the keyframes), pairwise Style Mix, and the
    random noise mode, on the bundled model, against the engine run directly."""
    from models.stylegan import load_stylegan, style_mix

    from integration.checks_stylegan import BUNDLED_DIR

    name = "gan_pack_islands64.safetensors"
    prompt = {
        "1": {"class_type": "GANPackLoadStyleGAN", "inputs": {"model_name": name}},
        "2": {"class_type": "GANPackStyleGANLatent", "inputs": {"stylegan": ["1", 0], "seeds": "1,2",
                                                                "truncation_psi": 0.8, "truncation_cutoff": 0,
                                                                "class_index": 0}},
        "3": {"class_type": "GANPackStyleGANInterpolate", "inputs": {"stylegan": ["1", 0], "keyframes": ["2", 0],
                                                                     "frames": 5, "space": "z", "easing": "linear",
                                                                     "loop": False}},
        "4": {"class_type": "GANPackStyleGANSynthesize", "inputs": {"stylegan": ["1", 0], "latent": ["3", 0],
                                                                    "noise_mode": "random", "seed": 3,
                                                                    "batch_size": 2}},
        "5": {"class_type": "SaveImage", "inputs": {"images": ["4", 0], "filename_prefix": "sg_zwalk"}},
        "6": {"class_type": "GANPackStyleGANLatent", "inputs": {"stylegan": ["1", 0], "seeds": "7,8",
                                                                "truncation_psi": 0.8, "truncation_cutoff": 0,
                                                                "class_index": 0}},
        "7": {"class_type": "GANPackStyleMix", "inputs": {"stylegan": ["1", 0], "row_latent": ["2", 0],
                                                          "column_latent": ["6", 0], "layers": "custom",
                                                          "custom_layers": "0", "mode": "pairwise"}},
        "8": {"class_type": "GANPackStyleGANSynthesize", "inputs": {"stylegan": ["1", 0], "latent": ["7", 0],
                                                                    "noise_mode": "const", "seed": 0,
                                                                    "batch_size": 8}},
        "9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0], "filename_prefix": "sg_pairs"}},
    }
    entry = comfy_server.run(prompt, timeout=300)
    files = comfy_server.output_files(entry)
    walk = [np.asarray(Image.open(f)) for f in files if f.name.startswith("sg_zwalk")]
    pairs = [np.asarray(Image.open(f)) for f in files if f.name.startswith("sg_pairs")]
    assert len(walk) == 5 and len(pairs) == 2
    G = load_stylegan(BUNDLED_DIR / name)
    keys = engine_ws(G, "1,2", 0.8)
    assert_close_8bit(walk[0], engine_images(G, keys[:1])[0], "z walk first frame")
    assert_close_8bit(walk[-1], engine_images(G, keys[1:])[0], "z walk last frame")
    assert np.abs(walk[2].astype(float) - walk[0]).mean() > 1.0, "the walk does not move"
    mixed = style_mix(keys, engine_ws(G, "7,8", 0.8), [0])
    for i in range(2):
        assert_close_8bit(pairs[i], engine_images(G, mixed[i, i:i + 1])[0], f"pair {i}")
