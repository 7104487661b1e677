"""Tests cannot download a diffusion checkpoint. The shipped diffusion workflows name the standard files
(e.g. ``v1-5-pruned-emaonly.safetensors``); for the executed variant we create a randomly initialised TAESD
(ComfyUI's tiny autoencoder, listed as the VAE ``taesd`` once ``vae_approx/taesd_{encoder,decoder}`` exist)
and rewrite the prompt: the checkpoint's VAE becomes that TAESD and KSampler becomes a latent operation, so the
tensors still flow IMAGE -> VAE Encode -> latent op -> VAE Decode -> IMAGE through ComfyUI's own nodes."""
from __future__ import annotations

import subprocess
from pathlib import Path

from scripts.comfy_client import default_comfy_dir, default_python

MAKE_TAESD = r"""
import sys, torch
sys.argv = [sys.argv[0], '--cpu']
sys.path.insert(0, {comfy!r})
import comfy.options
comfy.options.enable_args_parsing()  # else ComfyUI ignores --cpu and probes for CUDA
from comfy.taesd.taesd import Encoder, Decoder
import comfy.utils
torch.manual_seed(0)
for name, net in (('taesd_encoder', Encoder()), ('taesd_decoder', Decoder())):
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.05)
    comfy.utils.save_torch_file(net.state_dict(), {out!r} + '/' + name + '.safetensors')
"""


def install_random_taesd(models_root: Path) -> None:
    out = models_root / "vae_approx"
    if (out / "taesd_decoder.safetensors").exists():
        return
    out.mkdir(exist_ok=True)
    code = MAKE_TAESD.format(comfy=str(default_comfy_dir()), out=str(out))
    subprocess.run([default_python(), "-c", code], check=True, cwd=default_comfy_dir(), capture_output=True)


def diffusion_to_taesd(prompt: dict) -> dict:
    """Rewrite checkpoint + KSampler graphs to TAESD + a latent op (in place; returns the prompt)."""
    ckpts = [k for k, v in prompt.items() if v["class_type"] == "CheckpointLoaderSimple"]
    for ck in ckpts:
        vae_id = f"{ck}000"
        prompt[vae_id] = {"class_type": "VAELoader", "inputs": {"vae_name": "taesd"}}
        for node in prompt.values():
            for name, val in node["inputs"].items():
                if isinstance(val, list) and val[0] == ck and val[1] == 2:
                    node["inputs"][name] = [vae_id, 0]
        del prompt[ck]
    for k, v in list(prompt.items()):
        if v["class_type"] in ("KSampler", "KSamplerAdvanced"):
            prompt[k] = {"class_type": "LatentUpscaleBy",
                         "inputs": {"samples": v["inputs"]["latent_image"], "upscale_method": "bilinear",
                                    "scale_by": 1.0}}
    for k, v in list(prompt.items()):
        if v["class_type"] == "CLIPTextEncode":
            del prompt[k]
    return prompt
