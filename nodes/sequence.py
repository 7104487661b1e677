"""Frame-sequence nodes for shots (engine: ``models.sequence``): numbered frames in, numbered frames out."""
from __future__ import annotations

import hashlib
import os

import folder_paths

from ..models import sequence as seq
from ..models.io.exr import COMPRESSIONS as EXR_COMPRESSIONS
from ..models import validate
from .common import Progress

CATEGORY = "GAN/Shots"
FRAMES = "GAN_FRAME_NUMBERS"
OPEN = -1  # first/last frame value meaning "from the start" / "to the end"


MAX_FOLDER_CHARS = 1024


def input_confined() -> bool:
    """Whether the operator confined Load Image Sequence to ComfyUI's input directory
    (environment variable ``GAN_PACK_CONFINE_INPUT`` set to anything but empty/0/false/no)."""
    return os.environ.get(validate.INPUT_CONFINE_ENV, "").strip().lower() not in ("", "0", "false", "no", "off")


def check_input_folder(folder: str) -> str:
    """The folder's path, without touching the disk beyond resolving it: absolute, or relative to ComfyUI's
    input directory; with ``GAN_PACK_CONFINE_INPUT`` set, refused unless it lies inside the input directory
    (symlinks followed), like core Load Image's file list."""
    folder = (folder or "").strip()
    if len(folder) > MAX_FOLDER_CHARS or "\x00" in folder:
        raise validate.InputError(f"Load Image Sequence: folder is not a usable path ({len(folder)} characters"
                                  f"{', contains a NUL character' if chr(0) in folder else ''})")
    root = folder_paths.get_input_directory()
    path = folder if os.path.isabs(folder) else os.path.join(root, folder)
    if input_confined():
        path = validate.confined_path(path, root, node="Load Image Sequence")
    return path


def input_folder(folder: str) -> str:
    """A frame folder: absolute, or relative to ComfyUI's input directory (clear error when missing)."""
    root = folder_paths.get_input_directory()
    path = check_input_folder(folder)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"frame folder '{folder}' not found (looked in {path}). Put the frames in a folder "
                                f"under ComfyUI's input directory ({root})"
                                f"{'' if input_confined() else ' or give an absolute path'}.")
    return path


def output_folder(folder: str) -> str:
    """A subfolder of ComfyUI's output directory (never outside it)."""
    if len(folder or "") > MAX_FOLDER_CHARS or "\x00" in (folder or ""):
        raise validate.InputError(f"Save Image Sequence: folder is not a usable subfolder name "
                                  f"({len(folder)} characters{', contains a NUL character' if chr(0) in folder else ''})")
    for part in (folder or "").replace("\\", "/").split("/"):
        if len(part.encode("utf-8", "surrogatepass")) > 255:
            raise validate.InputError(f"Save Image Sequence: folder name {part[:40]!r}... is longer than a file "
                                      f"system allows (255 bytes)")
    root = os.path.abspath(folder_paths.get_output_directory())
    target = os.path.abspath(os.path.join(root, (folder or "").strip()))
    if os.path.commonpath([target, root]) != root:
        raise ValueError(f"folder '{folder}' is outside ComfyUI's output directory ({root}); give a subfolder")
    return target


def _range(first_frame: int, last_frame: int):
    return (None if first_frame < 0 else first_frame), (None if last_frame < 0 else last_frame)


class LoadImageSequence:
    DESCRIPTION = ("Loads numbered frames (8/16-bit PNG, JPEG, TIFF, OpenEXR) from a folder as one IMAGE batch, in "
                   "frame order, with their frame numbers so Save Image Sequence keeps the shot's numbering. 16-bit "
                   "files keep their full precision; EXR plates come in scene-linear exactly as stored (values "
                   "above 1 and negative kept, one layer chosen by 'layer', alpha on the alpha output). For long "
                   "shots load a range (first/last frame) at a time: the headless renderer (scripts/render.py) does "
                   "that chunk by chunk so memory stays flat.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", FRAMES, "INT", "MASK")
    RETURN_NAMES = ("images", "frame_numbers", "count", "alpha")
    OUTPUT_TOOLTIPS = ("The frames as an IMAGE batch (all frames must share one size; EXR: one data window).",
                       "The frames' numbers, parsed from the file names (connect to Save Image Sequence).",
                       "How many frames were loaded.",
                       "The frames' alpha as a MASK (1 = opaque; all ones for frames without alpha).")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "folder": ("STRING", {"default": "gan_pack_shot", "tooltip":
                       "Folder under ComfyUI's input directory (or an absolute path) holding the frames."}),
            "pattern": ("STRING", {"default": "*.png", "tooltip":
                        "Which files: a glob (*.png, shot_*.tif: the frame number is the last number in the name) "
                        "or a printf/hash pattern (frame_%04d.png, frame_####.png)."}),
            "first_frame": ("INT", {"default": OPEN, "min": OPEN, "max": 10_000_000, "tooltip":
                            "First frame number to load; -1 = from the first frame found."}),
            "last_frame": ("INT", {"default": OPEN, "min": OPEN, "max": 10_000_000, "tooltip":
                           "Last frame number to load (inclusive); -1 = to the last frame found."}),
            "step": ("INT", {"default": 1, "min": 1, "max": 1000, "tooltip":
                     "Load every Nth frame of the range (counting the frames present)."}),
        }, "optional": {
            "layer": ("STRING", {"default": "", "tooltip":
                      "EXR only: which layer to load. Empty = the R G B (A) channels; a layer name such as "
                      "'diffuse' or 'diffuse.*' loads diffuse.R/G/B(/A); a full channel name such as 'depth.Z' "
                      "loads that channel as grey. The error lists a file's layers."}),
            "non_finite": (list(seq.NON_FINITE), {"default": "error", "tooltip":
                           "EXR only: what NaN/infinite samples do. error: refuse the frame (networks turn them "
                           "into garbage); zero: replace them by 0; keep: pass them on."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, folder=None, pattern=None):
        # before anything runs: a malformed pattern, an over-long or (when confined) outside folder
        try:
            if isinstance(pattern, str):
                validate.check_read_pattern(pattern)
            if isinstance(folder, str):
                check_input_folder(folder)
        except validate.InputError as e:
            return str(e)
        return True

    @classmethod
    def IS_CHANGED(cls, folder, pattern, first_frame, last_frame, step, layer="", non_finite="error"):
        try:
            first, last = _range(first_frame, last_frame)
            frames = seq.list_image_sequence(input_folder(folder), pattern or None, first, last, step)
        except Exception as e:  # load() reports it
            return f"error: {e}"
        h = hashlib.sha256()
        for n, p in frames:
            st = os.stat(p)
            h.update(f"{n}:{p}:{st.st_mtime_ns}:{st.st_size};".encode())
        h.update(f"{layer}:{non_finite}".encode())
        return h.hexdigest()

    def load(self, folder, pattern, first_frame, last_frame, step, layer="", non_finite="error"):
        first, last = _range(first_frame, last_frame)
        path = input_folder(folder)
        count = len(seq.list_image_sequence(path, pattern or None, first, last, step))
        progress = Progress(count)
        images, numbers, alpha = seq.load_image_sequence(
            path, pattern or None, first, last, step, layer=(layer or "").strip() or None, non_finite=non_finite,
            return_alpha=True, progress=progress, check_interrupt=Progress.check_interrupt)
        return (images, list(numbers), len(numbers), alpha)


class SaveImageSequence:
    DESCRIPTION = ("Saves an IMAGE batch as numbered frames (8- or 16-bit PNG; JPEG/TIFF, or OpenEXR half/float "
                   "by the pattern's extension) in a subfolder of ComfyUI's output directory, keeping the source "
                   "frame numbers when connected. EXR frames are written unclamped (scene-linear values above 1 "
                   "kept; a load -> save round trip is bit-exact), with the alpha input as the A channel. Each file "
                   "is written atomically, so an interrupted render never leaves a half-written frame; with skip "
                   "existing a re-run resumes where it stopped. Shows the frames as previews.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "Frames to save (any IMAGE batch)."}),
            "folder": ("STRING", {"default": "gan_pack/shot", "tooltip":
                       "Subfolder of ComfyUI's output directory for the frames."}),
            "pattern": ("STRING", {"default": "frame_%04d.png", "tooltip":
                        "File name with a frame-number field: frame_%04d.png or frame_####.png. The extension picks "
                        "the format (.png, .jpg, .tif, .exr)."}),
            "bit_depth": (["auto", "8", "16", "32"], {"default": "auto", "tooltip":
                          "Bits per channel. auto: 8 for PNG/JPEG/TIFF, 16 (half float) for EXR. 16 PNG keeps "
                          "gradients free of banding; 32 = float EXR (values beyond the half range, +-65504)."}),
            "skip_existing": ("BOOLEAN", {"default": False, "tooltip":
                              "Keep frames whose file already exists (resume a render) instead of overwriting them."}),
            "start_number": ("INT", {"default": 1, "min": 0, "max": 10_000_000, "tooltip":
                             "Number of the first frame when no frame numbers are connected."}),
        }, "optional": {
            "frame_numbers": (FRAMES, {"tooltip":
                              "Frame numbers from Load Image Sequence, to keep the shot's numbering."}),
            "alpha": ("MASK", {"tooltip": "Alpha to write as the A channel (EXR, PNG); e.g. Load Image Sequence's "
                                          "alpha output."}),
            "compression": (list(EXR_COMPRESSIONS), {"default": "zip", "tooltip":
                            "EXR only. zip (default), piz, zips, rle, none: lossless. dwaa/dwab: lossy, much smaller "
                            "(colour only; alpha stays lossless)."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, folder=None, pattern=None):
        # checked before the prompt runs, so a bad pattern is reported before an upstream render spends minutes
        return validate_save_inputs(folder, pattern)

    def save(self, images, folder, pattern, bit_depth, skip_existing, start_number, frame_numbers=None, alpha=None,
             compression="zip"):
        error = validate_save_inputs(folder, pattern)
        if error is not True:
            raise validate.InputError(error)
        out_root = os.path.abspath(folder_paths.get_output_directory())
        target = output_folder(folder)
        if frame_numbers is not None and len(frame_numbers) != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {len(frame_numbers)} frame numbers: connect the frame "
                             f"numbers of the sequence these images came from, or leave the input empty")
        if alpha is not None and alpha.ndim == 2:
            alpha = alpha[None]
        if alpha is not None and alpha.shape[0] == 1 and images.shape[0] > 1:
            alpha = alpha.expand(images.shape[0], -1, -1)
        progress = Progress(images.shape[0])
        paths = seq.save_image_sequence(images, target, pattern=pattern, frame_numbers=frame_numbers,
                                        bit_depth=None if bit_depth == "auto" else int(bit_depth),
                                        skip_existing=skip_existing, progress=progress, start=start_number,
                                        check_interrupt=Progress.check_interrupt, alpha=alpha,
                                        compression=compression)
        if paths and paths[0].suffix.lower() == ".exr":  # browsers cannot show EXR: small sRGB previews instead
            return {"ui": {"images": exr_previews(images)}}
        sub = os.path.relpath(target, out_root)
        sub = "" if sub == "." else sub
        ui = [{"filename": p.name, "subfolder": sub, "type": "output"} for p in paths]
        return {"ui": {"images": ui}}


PREVIEW_SIZE = 512  # longest side of the EXR previews


def exr_previews(images):
    """Preview PNGs (ComfyUI's temp folder) of scene-linear frames: at most PREVIEW_SIZE px, linear Rec.709
    primaries assumed, sRGB-encoded and clamped for display only (the EXR files keep every value)."""
    import numpy as np
    import torch
    from PIL import Image

    temp = folder_paths.get_temp_directory()
    os.makedirs(temp, exist_ok=True)
    prefix = f"gan_pack_exr_preview_{os.urandom(4).hex()}"
    ui = []
    for i in range(images.shape[0]):
        frame = images[i, ..., :3].detach().float().cpu()
        h, w = frame.shape[:2]
        scale = PREVIEW_SIZE / max(h, w)
        if scale < 1:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            frame = torch.nn.functional.interpolate(frame.permute(2, 0, 1)[None], size=size, mode="area")[0]
            frame = frame.permute(1, 2, 0)
        x = torch.nan_to_num(frame, nan=0.0).clamp(0.0, 1.0)
        srgb = torch.where(x <= 0.0031308, 12.92 * x, 1.055 * x.pow(1 / 2.4) - 0.055)
        name = f"{prefix}_{i:05d}.png"
        Image.fromarray((srgb.numpy() * 255).round().astype(np.uint8)).save(os.path.join(temp, name),
                                                                            compress_level=1)
        ui.append({"filename": name, "subfolder": "", "type": "temp"})
    return ui
def validate_save_inputs(folder=None, pattern=None):
    """True, or the message for a frame pattern / output folder that Save Image Sequence cannot use."""
    try:
        if isinstance(pattern, str):
            validate.check_frame_pattern(pattern, node="Save Image Sequence")
        if isinstance(folder, str):
            output_folder(folder)
    except (validate.InputError, ValueError) as e:
        return str(e)
    return True


class TemporalBlend:
    DESCRIPTION = ("Reduces flicker of a rendered shot on static regions without ghosting on moving ones: where "
                   "the source frame did not change, each output pixel is blended toward the previous blended "
                   "output; where the source changed (at or above the threshold), the rendered pixel is kept "
                   "exactly. Connect the stylised frames and the source frames they were made from (same count "
                   "and size, in frame order).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("images",)
    OUTPUT_TOOLTIPS = ("The stylised frames with the flicker on static regions reduced.",)
    FUNCTION = "blend"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE", {"tooltip": "The rendered (stylised / translated) frames of the shot, in order."}),
            "source": ("IMAGE", {"tooltip": "The source frames the render was made from: decides which pixels "
                                             "are static (same count and size as images)."}),
            "strength": ("FLOAT", {"default": 0.8, "min": 0.0, "max": 0.99, "step": 0.01, "tooltip":
                                   "How much of the previous blended output a fully static pixel keeps: 0 = off, "
                                   "0.8 averages over about 5 frames."}),
            "threshold": ("FLOAT", {"default": 0.01, "min": 0.001, "max": 1.0, "step": 0.001, "tooltip":
                                    "Source change (0-1 image units, mean over channels) at and above which a "
                                    "pixel counts as moving and is left untouched."}),
        }}

    def blend(self, images, source, strength, threshold):
        from ..models.temporal import temporal_blend

        if images.shape[0] != source.shape[0] or images.shape[1:3] != source.shape[1:3]:
            raise ValueError(f"Temporal Blend: images {tuple(images.shape)} and source {tuple(source.shape)} must "
                             f"have the same frame count and size")
        out = temporal_blend(images, source, float(strength), float(threshold), channels_last=True)
        # a blend of [0, 1] frames stays in [0, 1] (the clamp only removes float round-off); scene-linear frames
        # (EXR plates) keep their values above 1 and below 0
        in_range = float(images.min()) >= 0.0 and float(images.max()) <= 1.0
        return (out.clamp(0, 1) if in_range else out,)


NODE_CLASS_MAPPINGS = {
    "GANPackLoadImageSequence": LoadImageSequence,
    "GANPackSaveImageSequence": SaveImageSequence,
    "GANPackTemporalBlend": TemporalBlend,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "GANPackLoadImageSequence": "Load Image Sequence (GAN)",
    "GANPackSaveImageSequence": "Save Image Sequence (GAN)",
    "GANPackTemporalBlend": "Temporal Blend (reduce flicker)",
}
