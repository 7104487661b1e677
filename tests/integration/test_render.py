"""The headless renderer (scripts/render.py) on real ComfyUI servers: chunks spread over two servers, a server
dying mid-render, the renderer killed halfway and resumed. A cheap per-frame workflow (invert through Image
Channels) keeps it fast and gives exact expected pixels: every output frame must be 255 - its input frame."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.sequence import existing_frames, save_image_sequence
from scripts.comfy_client import ComfyClient, ComfyServer

REPO = Path(__file__).resolve().parents[2]
RENDER = REPO / "scripts" / "render.py"
FRAMES = list(range(101, 141))  # 40 frames, numbered like a shot that starts at 101


def workflow(shot: str, out: str) -> dict:
    return {
        "1": {"class_type": "GANPackLoadImageSequence",
              "inputs": {"folder": shot, "pattern": "plate_%04d.png", "first_frame": -1, "last_frame": -1, "step": 1}},
        "2": {"class_type": "GANPackImageChannels", "inputs": {"image": ["1", 0], "mode": "invert"}},
        "3": {"class_type": "GANPackSaveImageSequence",
              "inputs": {"images": ["2", 0], "frame_numbers": ["1", 1], "folder": out, "pattern": "out_%05d.png",
                         "bit_depth": "8", "skip_existing": False, "start_number": 1}},
    }


@pytest.fixture(scope="module")
def shot(comfy_server):
    """A 40-frame shot in the session server's input folder; returns (name, {frame: uint8 array})."""
    name = "render_test_shot"
    images = torch.rand(len(FRAMES), 24, 40, 3, generator=torch.Generator().manual_seed(7))
    paths = save_image_sequence(images, comfy_server.input_dir / name, "plate_%04d.png", frame_numbers=FRAMES)
    return name, {n: np.asarray(Image.open(p)) for n, p in zip(FRAMES, paths)}


def assert_complete_and_correct(folder: Path, plates: dict) -> None:
    assert existing_frames(folder, "out_%05d.png") == set(plates), "frames missing or extra"
    for n, plate in plates.items():
        out = np.asarray(Image.open(folder / f"out_{n:05d}.png").convert("RGB"))  # decodes fully or raises
        assert np.array_equal(out, 255 - plate), f"frame {n} differs from the expected pixels"
    assert not list(folder.glob(".*.tmp")), "temporary files left behind"


def run_renderer(args, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(RENDER), *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_two_servers_render_a_shot_and_survive_one_dying(comfy_server, shot, tmp_path):
    name, plates = shot
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(workflow(name, "render_two")))
    out = comfy_server.output_dir / "render_two"
    second = ComfyServer(workdir=tmp_path / "second", input_dir=comfy_server.input_dir,
                         output_dir=comfy_server.output_dir)
    second.start()
    try:
        summary = tmp_path / "summary.json"
        proc = run_renderer([wf, "--servers", f"{comfy_server.url},{second.url}", "--chunk", 2,
                             "--input-dir", comfy_server.input_dir, "--output-dir", comfy_server.output_dir,
                             "--summary-json", summary, "--retries", 3])
        # the second server dies mid-render: its chunk must be re-rendered on the first
        while len(existing_frames(out, "out_%05d.png")) < 12 and proc.poll() is None:
            time.sleep(0.02)
        os.killpg(second.proc.pid, signal.SIGKILL)
        log, _ = proc.communicate(timeout=300)
    finally:
        second.stop()
    assert proc.returncode == 0, log
    result = json.loads(summary.read_text())
    assert result["failed_frames"] == [] and result["rendered"] == len(FRAMES), log
    assert result["per_server"][comfy_server.url] > 0, result
    assert "frames/s" in log and str(out) in log
    assert_complete_and_correct(out, plates)


def test_renderer_killed_halfway_resumes_without_losing_a_frame(comfy_server, shot, tmp_path):
    name, plates = shot
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(workflow(name, "render_resume")))
    out = comfy_server.output_dir / "render_resume"
    proc = run_renderer([wf, "--local-servers", 2, "--chunk", 2, "--workdir", tmp_path / "work",
                         "--input-dir", comfy_server.input_dir, "--output-dir", comfy_server.output_dir])
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    while len(existing_frames(out, "out_%05d.png")) < len(FRAMES) // 2 and proc.poll() is None:
        time.sleep(0.02)
    proc.kill()  # SIGKILL: no clean-up code of the renderer runs
    proc.wait()
    reader.join(timeout=10)
    log = "".join(lines)
    urls = [line.split(" at ")[1].strip() for line in log.splitlines() if line.startswith("[render] local ComfyUI")]
    assert len(urls) == 2, log
    done = existing_frames(out, "out_%05d.png")
    assert 0 < len(done) < len(FRAMES), f"the kill did not land mid-render ({len(done)} frames):\n{log}"
    # the local servers die with the renderer (watchdog), so nothing keeps writing behind our back
    deadline = time.monotonic() + 30
    while any(ComfyClient(u).alive() for u in urls) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(ComfyClient(u).alive() for u in urls), "local servers outlived the killed renderer"
    for n in done:  # what is there is complete
        assert np.array_equal(np.asarray(Image.open(out / f"out_{n:05d}.png").convert("RGB")), 255 - plates[n])
    stamps = {n: (out / f"out_{n:05d}.png").stat().st_mtime_ns for n in done}

    summary = tmp_path / "summary.json"
    resume = run_renderer([wf, "--servers", comfy_server.url, "--chunk", 4, "--input-dir", comfy_server.input_dir,
                           "--output-dir", comfy_server.output_dir, "--summary-json", summary])
    log2, _ = resume.communicate(timeout=300)
    assert resume.returncode == 0, log2
    result = json.loads(summary.read_text())
    assert result["skipped"] == len(done) and result["rendered"] == len(FRAMES) - len(done), result
    assert_complete_and_correct(out, plates)
    assert all((out / f"out_{n:05d}.png").stat().st_mtime_ns == t for n, t in stamps.items()), \
        "finished frames were rendered again"


def test_frame_range_per_farm_job_and_clear_errors(comfy_server, shot, tmp_path):
    """Two 'farm jobs' render disjoint ranges with --first/--last; a workflow without frame numbers is refused."""
    name, plates = shot
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(workflow(name, "render_jobs")))
    out = comfy_server.output_dir / "render_jobs"
    common = ["--servers", comfy_server.url, "--input-dir", comfy_server.input_dir, "--output-dir",
              comfy_server.output_dir, "--chunk", 8]
    for first, last in ((101, 120), (121, 140)):
        job = run_renderer([wf, "--first", first, "--last", last, *common])
        log, _ = job.communicate(timeout=300)
        assert job.returncode == 0, log
        assert existing_frames(out, "out_%05d.png") == set(range(101, last + 1))
    assert_complete_and_correct(out, plates)

    bad = workflow(name, "render_bad")
    del bad["3"]["inputs"]["frame_numbers"]
    wf.write_text(json.dumps(bad))
    job = run_renderer([wf, *common])
    log, _ = job.communicate(timeout=120)
    assert job.returncode == 2 and "frame_numbers" in log, log


# ------------------------------------------------------------------------------------------ the shots nodes
def _train_prompt(steps: int, folder: str = "render_test_shot") -> dict:
    """Keyframes = frames 101 and 120 of the test shot, 'painted' = inverted; Translate applies the result."""
    return {
        "1": {"class_type": "GANPackLoadImageSequence",
              "inputs": {"folder": folder, "pattern": "plate_%04d.png", "first_frame": 101, "last_frame": 120,
                         "step": 19}},
        "2": {"class_type": "GANPackImageChannels", "inputs": {"image": ["1", 0], "mode": "invert"}},
        "3": {"class_type": "GANPackTrainTranslatorFromKeyframes",
              "inputs": {"keyframes": ["1", 0], "painted_keyframes": ["2", 0], "steps": steps, "seed": 3}},
        "4": {"class_type": "GANPackTranslate", "inputs": {"translator": ["3", 0], "image": ["1", 0], "tile_size": 0,
                                                           "tile_overlap": 0, "mode": "eval", "seed": 0,
                                                           "resize_to_train_size": False, "precision": "float32",
                                                           "batch_size": 4}},
        "5": {"class_type": "GANPackSaveImageSequence",
              "inputs": {"images": ["4", 0], "frame_numbers": ["1", 1], "folder": "train_nodes",
                         "pattern": "t_%04d.png", "bit_depth": "16", "skip_existing": False, "start_number": 1}},
    }


def test_training_is_cached_and_cancellable_and_16bit_frames_are_saved(comfy_server, shot):
    name, plates = shot
    log_before = len(comfy_server.log_text())
    entry = comfy_server.run(_train_prompt(40), timeout=300)
    files = comfy_server.output_files(entry)
    assert [f.name for f in files] == ["t_0101.png", "t_0120.png"]  # step 19 from 101: 101, 120
    with Image.open(files[0]) as im:
        assert im.mode == "RGB" and im.tile[0].args.endswith(";16B")  # a 16-bit PNG
    from models.sequence import read_image

    out = read_image(files[0])
    values = np.unique(np.rint(out * 65535).astype(np.int64) % 257)
    assert len(values) > 1  # not 8-bit values scaled up: real 16-bit precision
    # another prompt evicts ComfyUI's own cache of the training node; the pack's cache still holds it
    comfy_server.run(workflow(name, "evict_cache"), timeout=120)
    t = time.monotonic()
    again = comfy_server.run(_train_prompt(40), timeout=300)
    assert "reused the cached translator" in comfy_server.log_text()[log_before:]
    assert [np.asarray(read_image(f)) for f in comfy_server.output_files(again)][0].tolist() == out.tolist()
    assert time.monotonic() - t < 30

    # Cancel: a long training stops at the interrupt, and the server keeps working
    from scripts.comfy_client import ComfyExecutionError

    prompt_id = comfy_server.queue(_train_prompt(100_000))
    time.sleep(4)
    t = time.monotonic()
    comfy_server.interrupt()
    with pytest.raises(ComfyExecutionError):
        comfy_server.wait(prompt_id, timeout=120)
    assert time.monotonic() - t < 60
    assert comfy_server.alive()


def test_missing_frame_folder_is_a_clear_error(comfy_server):
    from scripts.comfy_client import ComfyExecutionError

    bad = workflow("no_such_shot_folder", "never")
    with pytest.raises(ComfyExecutionError, match="frame folder 'no_such_shot_folder' not found"):
        comfy_server.run(bad, timeout=60)


def test_temporal_blend_node_reduces_flicker_without_touching_moving_pixels(comfy_server):
    """Temporal Blend on a shot with a static plate and a moving square, rendered with per-frame noise (the
    flicker a per-frame network adds): flicker falls, the moving square's pixels are kept exactly, and the node
    gives what the engine gives."""
    from models.temporal import flicker, temporal_blend

    n, h, w = 10, 32, 48
    g = torch.Generator().manual_seed(3)
    plate = torch.rand(1, h, w, 3, generator=g).expand(n, h, w, 3).clone()
    for t in range(n):
        plate[t, 8:20, 2 + 4 * t:14 + 4 * t] = torch.tensor([1.0, 0.2, 0.1])
    rendered = (plate * 0.8 + 0.1 + 0.06 * torch.randn(n, h, w, 3, generator=g)).clamp(0, 1)
    src_paths = save_image_sequence(plate, comfy_server.input_dir / "blend_src", "f_%03d.png")
    out_paths = save_image_sequence(rendered, comfy_server.input_dir / "blend_rendered", "f_%03d.png")
    load = lambda i: torch.from_numpy(np.stack([np.asarray(Image.open(p).convert("RGB")) for p in i])).float() / 255
    src, ren = load(src_paths), load(out_paths)  # what the loader gives (8-bit)
    prompt = {
        "1": {"class_type": "GANPackLoadImageSequence",
              "inputs": {"folder": "blend_src", "pattern": "f_%03d.png", "first_frame": -1, "last_frame": -1, "step": 1}},
        "2": {"class_type": "GANPackLoadImageSequence",
              "inputs": {"folder": "blend_rendered", "pattern": "f_%03d.png", "first_frame": -1, "last_frame": -1,
                         "step": 1}},
        "3": {"class_type": "GANPackTemporalBlend",
              "inputs": {"images": ["2", 0], "source": ["1", 0], "strength": 0.8, "threshold": 0.01}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "temporal_blend"}},
    }
    entry = comfy_server.run(prompt, timeout=120)
    files = sorted(comfy_server.output_files(entry))
    out = torch.from_numpy(np.stack([np.asarray(Image.open(f).convert("RGB")) for f in files])).float() / 255
    assert out.shape == ren.shape
    expected = temporal_blend(ren, src, 0.8, 0.01, channels_last=True).clamp(0, 1)
    assert (out - expected).abs().max().item() <= 1.01 / 255
    assert flicker(out, src) < 0.6 * flicker(ren, src), (flicker(out, src), flicker(ren, src))
    changed = (src[1:] - src[:-1]).abs().mean(-1) >= 0.01  # pixels whose source changed: the moving edges
    assert changed.sum() > 100
    assert (out[1:] - ren[1:])[changed].abs().max().item() <= 1.01 / 255, "moving pixels must be kept"
