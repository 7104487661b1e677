"""Frame-sequence nodes for shots (engine: ``models.sequence``): numbered frames in, numbered frames out."""
from __future__ import annotations

import hashlib
import os

import folder_paths

from .. import models as engine
from ..models import sequence as seq
from .common import Progress

CATEGORY = "GAN/sequence"
FRAMES = "GAN_FRAME_NUMBERS"


def _input_folder(folder: str) -> str:
    path = folder if os.path.isabs(folder) else os.path.join(folder_paths.get_input_directory(), folder)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"frame folder '{folder}' not found (looked in {path}); put the frames in a folder "
                                f"under ComfyUI's input directory ({folder_paths.get_input_directory()}) or give an "
                                f"absolute path")
    return path


class LoadImageSequence:
    DESCRIPTION = ("Loads numbered frames (8/16-bit PNG, JPEG, TIFF) from a folder as one IMAGE batch, in frame "
                   "order, with their frame numbers so Save Image Sequence can keep them. The headless renderer "
                   "(scripts/render.py) drives first/last frame to render long shots in chunks.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", FRAMES, "INT")
    RETURN_NAMES = ("images", "frame_numbers", "count")
    OUTPUT_TOOLTIPS = ("The frames as an IMAGE batch (all frames must share one size).",
                       "The frames' numbers, parsed from the file names.",
                       "How many frames were loaded.")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "folder": ("STRING", {"default": "gan_pack_shot", "tooltip":
                       "Folder under ComfyUI's input directory (or an absolute path) holding the frames."}),
            "pattern": ("STRING", {"default": "*.png", "tooltip":
                        "Which files: a glob (*.png, shot_*.tif) or a printf pattern (frame_%04d.png)."}),
            "first_frame": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip":
                            "First frame number to load; 0 = from the first frame found."}),
            "last_frame": ("INT", {"default": 0, "min": 0, "max": 10_000_000, "tooltip":
                           "Last frame number to load (inclusive); 0 = to the last frame found."}),
            "step": ("INT", {"default": 1, "min": 1, "max": 1000, "tooltip": "Load every Nth frame."}),
        }}

    @classmethod
    def IS_CHANGED(cls, folder, pattern, first_frame, last_frame, step):
        try:
            frames = seq.list_image_sequence(_input_folder(folder), pattern or None, first=first_frame or None,
                                             last=last_frame or None, step=step)
        except Exception as e:  # let load() report it
            return str(e)
        h = hashlib.sha256()
        for n, p in frames:
            st = os.stat(p)
            h.update(f"{n}:{p}:{st.st_mtime_ns}:{st.st_size};".encode())
        return h.hexdigest()

    def load(self, folder, pattern, first_frame, last_frame, step):
        images, numbers, _paths = engine.load_image_sequence(
            _input_folder(folder), pattern or None, first=first_frame or None, last=last_frame or None, step=step)
        return (images, list(numbers), len(numbers))


class SaveImageSequence:
    DESCRIPTION = ("Saves an IMAGE batch as numbered frames (8- or 16-bit PNG) in a subfolder of ComfyUI's output "
                   "directory, keeping the source frame numbers when given. Each file is written atomically, so an "
                   "interrupted render never leaves a half-written frame; with skip existing a re-run resumes.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Frames to save."}),
            "folder": ("STRING", {"default": "gan_pack/shot", "tooltip":
                       "Subfolder of ComfyUI's output directory for the frames."}),
            "pattern": ("STRING", {"default": "frame_%05d.png", "tooltip":
                        "File name with a printf field for the frame number, e.g. frame_%05d.png."}),
            "bit_depth": (["8", "16"], {"default": "8", "tooltip": "8- or 16-bit PNG per channel."}),
            "skip_existing": ("BOOLEAN", {"default": False, "tooltip":
                              "Keep frames that already exist (resume a render) instead of overwriting them."}),
            "start_number": ("INT", {"default": 1, "min": 0, "max": 10_000_000, "tooltip":
                             "Number of the first frame when no frame numbers are connected."}),
        }, "optional": {
            "frame_numbers": (FRAMES, {"tooltip": "Frame numbers from Load Image Sequence, to keep the shot's numbering."}),
        }}

    def save(self, images, folder, pattern, bit_depth, skip_existing, start_number, frame_numbers=None):
        out_root = folder_paths.get_output_directory()
        target = os.path.abspath(os.path.join(out_root, folder))
        if os.path.commonpath([target, os.path.abspath(out_root)]) != os.path.abspath(out_root):
            raise ValueError(f"folder '{folder}' is outside ComfyUI's output directory")
        if frame_numbers is not None and len(frame_numbers) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(frame_numbers)} frame numbers")
        progress = Progress(images.shape[0])
        paths = engine.save_image_sequence(images, target, pattern=pattern, frame_numbers=frame_numbers,
                                           start=start_number, bit_depth=int(bit_depth), skip_existing=skip_existing,
                                           progress=progress)
        sub = os.path.relpath(target, out_root)
        ui = [{"filename": os.path.basename(p), "subfolder": sub, "type": "output"} for p in paths]
        return {"ui": {"images": ui}}


NODE_CLASS_MAPPINGS = {
    "GANPackLoadImageSequence": LoadImageSequence,
    "GANPackSaveImageSequence": SaveImageSequence,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GANPackLoadImageSequence": "Load Image Sequence (GAN)",
    "GANPackSaveImageSequence": "Save Image Sequence (GAN)",
}
