"""Model folders registered with ComfyUI's ``folder_paths``.

``models/pix2pix``, ``models/cyclegan``, ``models/stylegan`` and ``models/style_transfer`` under ComfyUI's
models directory, plus the pack's bundled defaults. Entries that ``extra_model_paths.yaml`` registered before
the pack loaded are kept: the default folder is appended to them and the extensions merged, never replaced.
"""
from __future__ import annotations

import os

import folder_paths

EXTENSIONS = {".safetensors", ".pth", ".pt", ".ckpt", ".pkl"}
FOLDERS = ("pix2pix", "cyclegan", "stylegan", "style_transfer")
PACK_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUNDLED_DIR = os.path.join(PACK_DIR, "models", "bundled")


def register_model_folders() -> None:
    for name in FOLDERS:
        default = os.path.join(folder_paths.models_dir, name)
        bundled = os.path.join(BUNDLED_DIR, name)
        entry = folder_paths.folder_names_and_paths.get(name)
        if entry is None:
            folder_paths.folder_names_and_paths[name] = ([default], set(EXTENSIONS))
        else:
            dirs, exts = entry
            if default not in dirs:
                dirs.append(default)
            folder_paths.folder_names_and_paths[name] = (dirs, set(exts) | EXTENSIONS)
        if os.path.isdir(bundled) and bundled not in folder_paths.folder_names_and_paths[name][0]:
            folder_paths.folder_names_and_paths[name][0].append(bundled)


def model_path(folder: str, name: str) -> str:
    """Full path of ``name`` in a model folder, or a ``FileNotFoundError`` that names the file and the folders
    it was looked for in, so a shared workflow tells its new owner exactly where the file goes."""
    path = folder_paths.get_full_path(folder, name)
    if path is None or not os.path.isfile(path):
        where = "\n  ".join(folder_paths.get_folder_paths(folder))
        raise FileNotFoundError(
            f"model file '{name}' not found in the '{folder}' model folders. Put it in one of:\n  {where}\n"
            f"(or register another folder for '{folder}' in extra_model_paths.yaml)")
    return path


EXAMPLE_INPUTS_DIR = os.path.join(PACK_DIR, "workflows", "inputs")


def install_example_inputs() -> None:
    """Copy the shipped workflows' example inputs into ComfyUI's input folder (never overwriting a user's
    file), so every shipped workflow runs the moment it is opened."""
    import shutil

    if not os.path.isdir(EXAMPLE_INPUTS_DIR):
        return
    target = folder_paths.get_input_directory()
    for name in sorted(os.listdir(EXAMPLE_INPUTS_DIR)):
        src = os.path.join(EXAMPLE_INPUTS_DIR, name)
        dst = os.path.join(target, name)
        if os.path.exists(dst):
            continue
        try:
            os.makedirs(target, exist_ok=True)
            if os.path.isdir(src):
                shutil.copytree(src, dst)
            else:
                shutil.copyfile(src, dst)
        except OSError:  # a read-only input folder is the user's choice; the workflows then say what is missing
            pass
