"""EXR plates on a real ComfyUI server: a 4K (3840x2160) half-float 10-frame plate numbered from 1001 rendered by
scripts/render.py in chunks through Load Image Sequence -> Colour Transform (OCIO) -> Save Image Sequence, with
the server's memory measured; a broken EXR frame gives a clear error and the server keeps serving (and a named
layer round-trips through the nodes bit-exactly)."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

OpenEXR = pytest.importorskip("OpenEXR")
pytest.importorskip("PyOpenColorIO")

from models.colour import convert_colourspace  # noqa: E402
from models.io.exr import encode_exr, read_exr  # noqa: E402
from models.sequence import existing_frames, save_image_sequence  # noqa: E402
from scripts.comfy_client import ComfyExecutionError, ComfyPromptRejected  # noqa: E402

W, H = 3840, 2160
FRAMES = list(range(1001, 1011))
CHUNK = 2
PLANE = W * H * 4  # bytes of one float32 channel of a frame (33.2 MB)


def plate_frame(n: int):
    """A procedural scene-linear 4K frame (values from -0.5 to ~16) and its alpha, different for every frame."""
    y = torch.linspace(0, 1, H)[:, None]
    x = torch.linspace(0, 1, W)[None, :]
    t = (n - FRAMES[0]) / len(FRAMES)
    r = 16 * torch.exp(-((x - t) ** 2 + (y - 0.3) ** 2) * 40) + x
    g = y.expand(H, W) * 2 - 0.5 * x
    b = torch.sin((x + y + t) * 20) * 0.5
    rgb = torch.stack([r, g.expand(H, W), b], -1).half().float()
    alpha = (x * y + t).clamp(0, 1).expand(H, W).half().float()
    return rgb, alpha


def memory_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


class PeakRSS:
    """Peak resident memory of a process during a block: the kernel's high-water mark reset at the start
    (/proc/PID/clear_refs "5"), with 20 ms sampling of VmRSS as a fallback where the reset is not allowed."""

    def __init__(self, pid: int):
        self.pid, self.samples, self.stop = pid, [], threading.Event()

    def __enter__(self):
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.baseline = memory_kb(self.pid, "VmRSS")
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self):
        while not self.stop.is_set():
            self.samples.append(memory_kb(self.pid, "VmRSS"))
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        peak = max(self.samples + [self.baseline])
        if self.hwm_reset:
            peak = max(peak, memory_kb(self.pid, "VmHWM"))
        self.peak = peak
        self.increase_mb = (peak - self.baseline) / 1024


def workflow(shot: str, out: str) -> dict:
    return {
        "1": {"class_type": "GANPackLoadImageSequence",
              "inputs": {"folder": shot, "pattern": "plate.%04d.exr", "first_frame": -1, "last_frame": -1, "step": 1,
                         "layer": "", "non_finite": "error"}},
        "2": {"class_type": "GANPackColourTransform",
              "inputs": {"images": ["1", 0], "source": "ACEScg", "target": "ACES2065-1",
                         "config": "ocio://studio-config-latest"}},
        "3": {"class_type": "GANPackSaveImageSequence",
              "inputs": {"images": ["2", 0], "frame_numbers": ["1", 1], "alpha": ["1", 3], "folder": out,
                         "pattern": "plate.####.exr", "bit_depth": "16", "skip_existing": False, "start_number": 1,
                         "compression": "zip"}},
    }


def test_4k_plate_renders_in_chunks_with_bounded_server_memory(comfy_server, capsys):
    from scripts.render import render

    shot, out_name = "exr_plate_4k", "exr_plate_4k_out"
    for n in FRAMES:  # one frame at a time: the test process stays small too
        rgb, alpha = plate_frame(n)
        save_image_sequence(rgb[None], comfy_server.input_dir / shot, "plate.%04d.exr", frame_numbers=[n],
                            alpha=alpha[None])
    pid = comfy_server.proc.pid
    with PeakRSS(pid) as mem:
        summary = render(workflow(shot, out_name), servers=[comfy_server.url], input_dir=comfy_server.input_dir,
                         output_dir=comfy_server.output_dir, chunk=CHUNK, quiet=True, timeout=600)
    out = comfy_server.output_dir / out_name
    assert summary["rendered"] == len(FRAMES) and not summary["failed_frames"], summary
    assert existing_frames(out, "plate.####.exr") == set(FRAMES)
    assert not list(out.glob(".*.tmp"))
    # bounded memory: a chunk holds per frame the plate (3 planes), its alpha (1) and the converted frame (3);
    # ComfyUI keeps the previous prompt's outputs until the next one replaces them, so at most two chunks are
    # resident, plus one frame's decode/encode buffers. Loading the whole plate would need 70 planes (2.3 GB).
    per_frame = 7 * PLANE / 2**20
    bound = 2 * CHUNK * per_frame + 6 * PLANE / 2**20
    with capsys.disabled():
        print(f"\n[exr 4k] server RSS {mem.baseline / 1024:.0f} MiB before, peak +{mem.increase_mb:.0f} MiB over "
              f"{len(FRAMES)} frames in chunks of {CHUNK} (bound {bound:.0f} MiB; whole plate "
              f"{len(FRAMES) * per_frame:.0f} MiB; peak reset: {mem.hwm_reset}); {summary['seconds']} s")
    assert mem.increase_mb < bound, f"server memory grew by {mem.increase_mb:.0f} MiB (bound {bound:.0f} MiB)"
    # the pixels: first and last frame equal the engine's OCIO conversion, rounded to half; alpha bit-exact
    for n in (FRAMES[0], FRAMES[-1]):
        rgb, alpha = plate_frame(n)
        img = read_exr(out / f"plate.{n:04d}.exr")
        assert img.pixel_type == "half" and img.rgb.shape == (H, W, 3)
        expected = convert_colourspace(rgb, "ACEScg", "ACES2065-1").half().float().numpy()
        assert np.array_equal(img.rgb, expected), f"frame {n}: max diff {np.abs(img.rgb - expected).max()}"
        assert np.array_equal(img.alpha, alpha.numpy())
    # resume: a second run finds every frame on disk and renders nothing
    again = render(workflow(shot, out_name), servers=[comfy_server.url], input_dir=comfy_server.input_dir,
                   output_dir=comfy_server.output_dir, chunk=CHUNK, quiet=True)
    assert again["rendered"] == 0 and again["skipped"] == len(FRAMES)


def _load_save(folder: str, out: str, last: int = -1, layer: str = "") -> dict:
    return {
        "1": {"class_type": "GANPackLoadImageSequence",
              "inputs": {"folder": folder, "pattern": "plate.####.exr", "first_frame": -1, "last_frame": last,
                         "step": 1, "layer": layer, "non_finite": "error"}},
        "2": {"class_type": "GANPackSaveImageSequence",
              "inputs": {"images": ["1", 0], "frame_numbers": ["1", 1], "alpha": ["1", 3], "folder": out,
                         "pattern": "plate.####.exr", "bit_depth": "auto", "skip_existing": False,
                         "start_number": 1}},
    }


def test_broken_exr_is_a_clear_error_and_the_server_keeps_serving(comfy_server):
    folder = comfy_server.input_dir / "exr_broken_plate"
    folder.mkdir()
    rng = np.random.default_rng(5)
    h, w = 90, 160
    layers = {c: (rng.standard_normal((h, w)) * 20).astype(np.float16) for c in ("R", "G", "B", "A")}
    layers.update({f"diffuse.{c}": (rng.standard_normal((h, w)) * 50).astype(np.float16) for c in "RGB"})
    OpenEXR.File({"compression": OpenEXR.PIZ_COMPRESSION, "type": OpenEXR.scanlineimage},
                 dict(layers)).write(str(folder / "plate.1001.exr"))
    good = encode_exr(rng.random((h, w, 3)).astype(np.float32))
    (folder / "plate.1002.exr").write_bytes(good[:len(good) * 2 // 3])  # a copy that stopped two thirds in
    with pytest.raises(ComfyExecutionError, match=r"plate\.1002\.exr.*truncated or corrupt"):
        comfy_server.run(_load_save("exr_broken_plate", "exr_broken_out"), timeout=120)
    assert comfy_server.alive()
    # the server still works: the good frame's diffuse layer (and the file's alpha) through the nodes, bit-exact
    entry = comfy_server.run(_load_save("exr_broken_plate", "exr_layer_out", last=1001, layer="diffuse"),
                             timeout=120)
    assert entry["status"]["status_str"] == "success"
    got = OpenEXR.File(str(comfy_server.output_dir / "exr_layer_out" / "plate.1001.exr"),
                       separate_channels=True).channels()
    assert sorted(got) == ["A", "B", "G", "R"]
    for c in "RGB":
        assert got[c].pixels.dtype == np.float16
        assert np.array_equal(got[c].pixels.view(np.uint16), layers[f"diffuse.{c}"].view(np.uint16))
    assert np.all(got["A"].pixels == 1.0), "the diffuse layer has no alpha: opaque"


def test_unknown_colour_space_is_refused_before_running(comfy_server):
    prompt = workflow("exr_broken_plate", "never_written")
    prompt["2"]["inputs"]["source"] = "ACEScgg"
    with pytest.raises(ComfyPromptRejected, match=r"'ACEScgg' is neither a colour space.*Did you mean 'ACEScg'"):
        comfy_server.queue(prompt)
    prompt["2"]["inputs"].update(source="ACEScg", config="no_such_show/config.ocio")
    with pytest.raises(ComfyPromptRejected, match=r"(?s)OCIO config .no_such_show/config.ocio. not found.*models/ocio"):
        comfy_server.queue(prompt)
