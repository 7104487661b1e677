"""Training node: Pix2Pix / CycleGAN from image folders, by the reference recipes (engine: ``models.training``).

The run's files go where the reference puts them, under ComfyUI's output folder (``output/gan_training/<name>/``:
``latest_net_*.pth``, ``train_state.pt``, ``loss_log.txt``, ``samples/``); the generators are also saved into
``models/pix2pix/<name>/latest_net_G.pth`` or ``models/cyclegan/<name>/latest_net_G_A.pth`` + ``latest_net_G_B.pth``,
so Load Translator lists them, and the node's own output is the trained generator, ready for Translate Image.
"""
from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import time

import torch

import comfy.model_management as mm
import comfy.utils
import folder_paths

from .common import offload_device, seed_input, send_text, torch_device

log = logging.getLogger("comfyui-gan-pack")

CATEGORY = "GAN/Train"
TRANSLATOR = "GAN_TRANSLATOR"
NET_G = ["default", "resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", "unet_64"]
RUNS_FOLDER = "gan_training"


def _run_name(name: str) -> str:
    name = (name or "").strip()
    if not re.fullmatch(r"[\w][\w.\-]*", name) or name.startswith(".") or ".." in name:
        raise ValueError(f"'{name}' is not a usable run name: use letters, digits, '_', '-' and '.' (no folders); "
                         "it names the folders the run is saved in")
    return name


def resolve_data_folder(data_folder: str) -> str:
    """A folder under ComfyUI's input directory (or an absolute path); the error says where it was looked for."""
    text = (data_folder or "").strip()
    if not text:
        raise ValueError("data_folder is empty: give a folder under ComfyUI's input directory (or an absolute path)")
    if os.path.isabs(text):
        if os.path.isdir(text):
            return text
        raise FileNotFoundError(f"data folder {text} does not exist")
    base = folder_paths.get_input_directory()
    path = os.path.normpath(os.path.join(base, text))
    if not path.startswith(os.path.normpath(base) + os.sep):
        raise ValueError(f"data_folder '{text}' points outside ComfyUI's input directory; give an absolute path instead")
    if not os.path.isdir(path):
        raise FileNotFoundError(f"data folder '{text}' not found in ComfyUI's input directory ({base}). Put your "
                                f"images there as {text}/train/*.png (side-by-side A|B pairs) or {text}/trainA/ + "
                                f"{text}/trainB/, or give an absolute path")
    return path


def _copy_atomic(src: str, dst: str) -> None:
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    tmp = dst + ".tmp"
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


class TrainGANFromFolders:
    DESCRIPTION = ("Trains Pix2Pix (paired images) or CycleGAN (two unpaired sets) on your own image folders with the "
                   "reference recipes of pytorch-CycleGAN-and-pix2pix: same networks, losses, optimiser, schedule "
                   "and option names. Shows the losses live and a preview of the current translations; saves the "
                   "networks and a resumable state every save_every iterations (Cancel keeps the last save; "
                   "continue_training carries on from it). The output translator goes straight into Translate "
                   "Image; the generator files are also saved in models/pix2pix/<name>/ or models/cyclegan/<name>/ "
                   "for Load Translator, and every file of the run (reference layout) in output/gan_training/<name>/. "
                   "Long runs are better done headless with scripts/train.py (same options, same files).")
    CATEGORY = CATEGORY
    RETURN_TYPES = (TRANSLATOR, "IMAGE", "STRING")
    RETURN_NAMES = ("translator", "samples", "model_name")
    OUTPUT_TOOLTIPS = ("The trained generator (pix2pix G, CycleGAN G_A: A->B) for Translate Image.",
                       "The last preview: real A, fake B, real B (CycleGAN: also reconstructions, B->A, identity).",
                       "The saved generator's name for Load Translator (e.g. pix2pix/<name>/latest_net_G.pth).")
    FUNCTION = "train"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (["pix2pix", "cyclegan"], {"tooltip":
                      "pix2pix: paired images (input -> target, e.g. plate -> cleaned plate). cyclegan: two "
                      "unpaired sets (e.g. day plates, night plates); learns both directions."}),
            "data_folder": ("STRING", {"default": "gan_pack_train_outlines", "tooltip":
                            "Folder under ComfyUI's input directory (or an absolute path). pix2pix: train/ with "
                            "side-by-side A|B images, or trainA/ + trainB/ with the same file names. cyclegan: "
                            "trainA/ and trainB/ (any counts). Any image size; see the README."}),
            "name": ("STRING", {"default": "my_model", "tooltip":
                     "Run name: files go to output/gan_training/<name>/ and models/<model>/<name>/."}),
            "iterations": ("INT", {"default": 300, "min": 1, "max": 10_000_000, "tooltip":
                           "Training iterations (batches) to run now. The reference trains 200 epochs; a few "
                           "hundred iterations show whether the data works, real results need tens of thousands "
                           "(use scripts/train.py for those)."}),
            "netG": (NET_G, {"default": "default", "tooltip":
                     "Generator. default: the reference's (pix2pix unet_256, cyclegan resnet_9blocks). U-Nets need "
                     "crop_size = their size (unet_256: 256); ResNets take any multiple of 4."}),
            "ngf": ("INT", {"default": 64, "min": 1, "max": 512, "tooltip":
                    "Generator width (reference 64). Smaller trains faster with less capacity."}),
            "ndf": ("INT", {"default": 64, "min": 1, "max": 512, "tooltip": "Discriminator width (reference 64)."}),
            "load_size": ("INT", {"default": 286, "min": 4, "max": 8192, "tooltip":
                          "Images are resized to load_size x load_size, then a random crop_size crop is taken "
                          "(the reference's resize_and_crop: 286 -> 256)."}),
            "crop_size": ("INT", {"default": 256, "min": 4, "max": 8192, "tooltip": "Training crop size."}),
            "batch_size": ("INT", {"default": 1, "min": 1, "max": 256, "tooltip": "Images per iteration."}),
            "lr": ("FLOAT", {"default": 0.0002, "min": 1e-7, "max": 0.1, "step": 1e-5, "round": False,
                             "tooltip": "Adam learning rate (reference 0.0002, beta1 0.5)."}),
            "save_every": ("INT", {"default": 100, "min": 1, "max": 1_000_000, "tooltip":
                           "Save the networks and the resumable state every N iterations (and at the end)."}),
            "preview_every": ("INT", {"default": 25, "min": 1, "max": 1_000_000, "tooltip":
                              "Show the current translations every N iterations (also saved in samples/)."}),
            "seed": seed_input("Seed of the initial weights, data order, crops, flips, image pool and dropout."),
            "continue_training": ("BOOLEAN", {"default": False, "tooltip":
                                  "on: carry on from the last saved state of this name (same options) for "
                                  "`iterations` more. off: start a new run (replacing one of the same name)."}),
        }, "optional": {
            "options": ("STRING", {"default": "", "multiline": True, "tooltip":
                        "More reference options, as on train.py's command line, e.g. "
                        "'--lambda_identity 0 --netD n_layers --n_layers_D 4 --gan_mode lsgan --no_flip "
                        "--n_epochs 50 --n_epochs_decay 50'."}),
        }, "hidden": {"unique_id": "UNIQUE_ID"}}

    @classmethod
    def IS_CHANGED(cls, model, data_folder, name, continue_training=False, **_):
        """Re-run when the data folder's files change, and (continuing) when the run's saved state changed --
        so queueing again with continue_training on trains further instead of returning the cached result."""
        import hashlib

        h = hashlib.sha256()
        try:
            root = resolve_data_folder(data_folder)
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                for f in sorted(filenames):
                    st = os.stat(os.path.join(dirpath, f))
                    h.update(f"{os.path.relpath(os.path.join(dirpath, f), root)}:{st.st_size}:{st.st_mtime_ns};".encode())
        except (OSError, ValueError):
            pass
        if continue_training:
            try:
                st = os.stat(os.path.join(folder_paths.get_output_directory(), RUNS_FOLDER, str(name), "train_state.pt"))
                h.update(f"state:{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                pass
        return h.hexdigest()

    def train(self, model, data_folder, name, iterations, netG, ngf, ndf, load_size, crop_size, batch_size, lr,
              save_every, preview_every, seed, continue_training, options="", unique_id=None):
        from ..models.training import options as O
        from ..models.training.loop import train_folders

        name = _run_name(name)
        root = resolve_data_folder(data_folder)
        extra = O.parse_option_string(options)
        opts = {"ngf": ngf, "ndf": ndf, "load_size": load_size, "crop_size": crop_size, "batch_size": batch_size,
                "lr": lr, "seed": seed, "save_latest_freq": save_every * batch_size,
                "display_freq": preview_every * batch_size, "print_freq": max(1, preview_every) * batch_size,
                "save_epoch_freq": 1_000_000, "continue_train": bool(continue_training),
                "checkpoints_dir": os.path.join(folder_paths.get_output_directory(), RUNS_FOLDER), "name": name}
        if netG != "default":
            opts["netG"] = netG
        clash = sorted(set(extra) & {"name", "checkpoints_dir", "continue_train"})
        if clash:
            raise ValueError(f"set {', '.join(clash)} with the node's own inputs, not in options")
        opts.update(extra)
        export_dir = os.path.join(folder_paths.get_folder_paths(model)[0], name)
        gens = ["G"] if model == "pix2pix" else ["G_A", "G_B"]
        main_file = f"latest_net_{gens[0]}.pth"

        bar = comfy.utils.ProgressBar(iterations)
        state = {"sent": 0.0, "preview": None, "saved": None, "sample": None}
        t0 = time.monotonic()

        def progress(info):
            done = info["step"] - state.setdefault("first", info["step"] - 1)
            preview = state.pop("preview", None)
            bar.update_absolute(min(done, iterations), iterations, preview)
            now = time.monotonic()
            if now - state["sent"] > 0.5 or done >= iterations:
                state["sent"] = now
                losses = "  ".join(f"{k} {v:.3f}" for k, v in info["losses"].items())
                saved = f"  (saved at iteration {state['saved']})" if state["saved"] is not None else ""
                send_text(unique_id, f"iteration {done}/{iterations} (total {info['total_iters']}, epoch "
                                      f"{info['epoch']})  {info['it_per_s']:.2f} it/s\n{losses}{saved}")

        def sample(total_iters, img, path):
            from PIL import Image

            arr = (img.numpy() * 255.0 + 0.5).clip(0, 255).astype("uint8")
            state["preview"] = ("PNG", Image.fromarray(arr), 1024)
            state["sample"] = img

        def on_save(files, info):
            state["saved"] = info["total_iters"]
            folder = os.path.dirname(str(files[0]))
            for g in gens:  # the generators, where Load Translator finds them
                _copy_atomic(os.path.join(folder, f"latest_net_{g}.pth"), os.path.join(export_dir, f"latest_net_{g}.pth"))

        device = torch_device()
        mm.free_memory(512 * 1024 * 1024, device)
        log.info("training %s '%s' on %s for %d iterations (%s)", model, name, root, iterations, device)
        # ComfyUI runs nodes under inference mode: training needs autograd; keep ComfyUI's global RNG untouched
        fork_devices = [device] if device.type == "cuda" else []
        with torch.inference_mode(False), torch.enable_grad(), torch.random.fork_rng(devices=fork_devices):
            result = train_folders(model, root, device=device, progress=progress, sample=sample, on_save=on_save,
                                   check_interrupt=mm.throw_exception_if_processing_interrupted,
                                   session_iters=iterations, log=lambda m: log.info("train %s: %s", name, m),
                                   **opts)
        trainer = result.trainer
        translator = copy.deepcopy(trainer.nets[gens[0]]).to(offload_device()).eval()
        for p in translator.parameters():
            p.requires_grad_(False)
        translator.name = name
        samples = state["sample"]
        if samples is None:
            from ..models.training.loop import sample_grid

            samples = sample_grid(trainer)
        del trainer, result
        mm.soft_empty_cache()
        send_text(unique_id, f"done: {iterations} iterations in {time.monotonic() - t0:.0f} s; saved "
                              f"{model}/{name}/{main_file}")
        return (translator, samples[None].float(), f"{model}/{name}/{main_file}")


NODE_CLASS_MAPPINGS = {"GANPackTrainFromFolders": TrainGANFromFolders}
NODE_DISPLAY_NAME_MAPPINGS = {"GANPackTrainFromFolders": "Train Pix2Pix / CycleGAN (folders)"}
