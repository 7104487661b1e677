"""Render farms (scripts/farm.py through scripts/render.py): the frame-range task contract every farm manager
uses (``--frames A-B`` and its exit codes) on the session's real ComfyUI, and a real single-node SLURM cluster
(munged + slurmctld + slurmd, see slurm_cluster.py) rendering the bundled 24-frame shot as a 3-task job array
whose tasks each start their own ComfyUI: one task is cancelled mid-run, the follow-up job reports the gap, and
a resubmission renders exactly the missing frames. Every frame is decoded and must be 255 - its input frame."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models.sequence import existing_frames
from scripts.comfy_client import free_port

from .slurm_cluster import SlurmCluster, missing_reason

REPO = Path(__file__).resolve().parents[2]
RENDER = REPO / "scripts" / "render.py"
SHOT = REPO / "workflows" / "inputs" / "gan_pack_shot"  # the bundled 24-frame shot, frame_0001..0024.png


def invert_workflow(folder: str, out: str) -> dict:
    """Bundled shot -> Image Channels invert -> Save Image Sequence: exact expected pixels, cheap per frame."""
    return {
        "1": {"class_type": "GANPackLoadImageSequence",
              "inputs": {"folder": folder, "pattern": "frame_%04d.png", "first_frame": -1, "last_frame": -1,
                         "step": 1}},
        "2": {"class_type": "GANPackImageChannels", "inputs": {"image": ["1", 0], "mode": "invert"}},
        "3": {"class_type": "GANPackSaveImageSequence",
              "inputs": {"images": ["2", 0], "frame_numbers": ["1", 1], "folder": out, "pattern": "out_%04d.png",
                         "bit_depth": "8", "skip_existing": False, "start_number": 1}},
    }


def plates(folder: Path = SHOT) -> dict:
    return {int(re.findall(r"\d+", p.stem)[-1]): np.asarray(Image.open(p).convert("RGB"))
            for p in sorted(folder.glob("frame_*.png"))}


def assert_frames_correct(folder: Path, expected: dict) -> None:
    assert existing_frames(folder, "out_%04d.png") == set(expected), "frames missing or extra"
    for n, plate in expected.items():
        with Image.open(folder / f"out_{n:04d}.png") as im:
            out = np.asarray(im.convert("RGB"))  # decodes the whole file or raises: no corrupt frame
        assert np.array_equal(out, 255 - plate), f"frame {n} differs from the expected pixels"
    assert not list(folder.glob(".*.tmp")), "temporary files left behind"


def render(args, env=None, **kw) -> subprocess.Popen:
    env = {**(env or os.environ), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(RENDER), *map(str, args)], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


# ------------------------------------------------------------------------------------------ the task contract
def test_ui_workflow_is_read_without_a_server_like_the_server_reads_it(object_info):
    """--submit/--check read the bundled keyframe workflow's loader/saver from the file alone (no ComfyUI on a
    login node): the widget order they assume must be the one the server converts with."""
    from scripts.farm import sequence_nodes
    from scripts.workflow_api import load_workflow, ui_to_api

    data = load_workflow(REPO / "workflows" / "keyframe_stylize_shot.json")
    api = ui_to_api(data, object_info)
    loader, saver = sequence_nodes(data)
    want_l = next(n["inputs"] for n in api.values() if n["class_type"] == "GANPackLoadImageSequence")
    want_s = next(n["inputs"] for n in api.values() if n["class_type"] == "GANPackSaveImageSequence")
    assert loader == {k: want_l[k] for k in loader} and len(loader) == 5, (loader, want_l)
    assert saver == {k: want_s[k] for k in saver} and set(saver) == {"folder", "pattern"}, (saver, want_s)
    assert loader["folder"] == "gan_pack_shot" and saver["folder"] == "gan_pack/keyframe_shot"


def test_frame_range_task_contract_exit_codes(comfy_server, tmp_path):
    """What Deadline/OpenCue/Tractor/SLURM run per task: `render.py WF --frames A-B ...`; exit 0 = range
    complete (also when re-run: nothing rendered again), 1 = frames failed, 2 = setup error, 3 = no ComfyUI,
    130 = interrupted (SIGTERM), frames written so far kept."""
    expected = plates()
    common = ["--servers", comfy_server.url, "--output-dir", comfy_server.output_dir, "--chunk", 1]
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps(invert_workflow(str(SHOT), "farm_contract")))
    out = comfy_server.output_dir / "farm_contract"
    summary = tmp_path / "s.json"
    for attempt in range(2):
        job = render([wf, "--frames", "5-12", *common, "--summary-json", summary])
        log, _ = job.communicate(timeout=300)
        assert job.returncode == 0, log
        result = json.loads(summary.read_text())
        assert (result["rendered"], result["skipped"]) == ((8, 0) if attempt == 0 else (0, 8)), result
    assert_frames_correct(out, {n: expected[n] for n in range(5, 13)})

    # SIGTERM (a manager cancelling/pre-empting the task) mid-range: 130, what is on disk is complete
    job = render([wf, "--frames", "13-24", *common])
    while len(existing_frames(out, "out_%04d.png")) < 9 and job.poll() is None:
        time.sleep(0.01)
    job.send_signal(signal.SIGTERM)
    log, _ = job.communicate(timeout=120)
    done = existing_frames(out, "out_%04d.png") - set(range(5, 13))
    assert job.returncode == 130 and "interrupted" in log, log
    assert 0 < len(done) < 12, f"SIGTERM did not land mid-range ({len(done)} of 12 frames):\n{log}"
    assert_frames_correct(out, {n: expected[n] for n in set(range(5, 13)) | done})

    # a frame that cannot be read: its chunk fails, the others are rendered, exit 1 names the frame
    broken = tmp_path / "broken_shot"
    broken.mkdir()
    for n in (1, 2, 3, 4):
        shutil.copy(SHOT / f"frame_{n:04d}.png", broken / f"frame_{n:04d}.png")
    (broken / "frame_0003.png").write_bytes((SHOT / "frame_0003.png").read_bytes()[:300])  # truncated
    wf2 = tmp_path / "wf2.json"
    wf2.write_text(json.dumps(invert_workflow(str(broken), "farm_broken")))
    job = render([wf2, "--frames", "1-4", *common, "--retries", 0, "--summary-json", summary])
    log, _ = job.communicate(timeout=300)
    assert job.returncode == 1, log
    assert json.loads(summary.read_text())["failed_frames"] == [3], log
    assert existing_frames(comfy_server.output_dir / "farm_broken", "out_%04d.png") == {1, 2, 4}

    # setup error: the shot folder does not exist -> 2; no ComfyUI answers -> 3
    wf3 = tmp_path / "wf3.json"
    wf3.write_text(json.dumps(invert_workflow(str(tmp_path / "no_such_shot"), "farm_none")))
    job = render([wf3, "--frames", "1-4", *common])
    log, _ = job.communicate(timeout=120)
    assert job.returncode == 2 and "no_such_shot" in log, log
    job = render([wf, "--frames", "1-4", "--servers", f"http://127.0.0.1:{free_port()}",
                  "--output-dir", comfy_server.output_dir])
    log, _ = job.communicate(timeout=120)
    assert job.returncode == 3 and "answers" in log, log


# ------------------------------------------------------------------------------------------ a real SLURM cluster
@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
    except Exception as e:
        cluster.stop()
        pytest.fail(f"the test cluster did not start: {e}")
    yield cluster
    cluster.stop()


def _slurm(cluster: SlurmCluster, *cmd: str) -> str:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=60, env=cluster.env())
    assert r.returncode == 0, (cmd, r.stdout, r.stderr)
    return r.stdout


def _wait_gone(cluster: SlurmCluster, job: str, timeout: float = 240) -> None:
    """Until the job (all its array tasks) has left the queue."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _slurm(cluster, "squeue", "-h", "-j", job, "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING").strip():
            return
        time.sleep(0.5)
    raise AssertionError(f"job {job} still queued after {timeout} s:\n"
                         + _slurm(cluster, "squeue") + cluster.logs()[-4000:])


def _submit(cluster: SlurmCluster, args) -> tuple:
    job = render(args, env=cluster.env())
    log, _ = job.communicate(timeout=120)
    assert job.returncode == 0, log
    m = re.search(r"ARRAY_JOB=(\d+) CHECK_JOB=(\d+)", log)
    assert m, log
    return m.group(1), m.group(2), log


def test_slurm_job_array_cancel_and_resubmit_renders_only_missing_frames(slurm, tmp_path):
    inputs, outputs = tmp_path / "input", tmp_path / "output"
    shutil.copytree(SHOT, inputs / "shot_sh010")
    expected = plates()
    wf = tmp_path / "sh010.json"
    wf.write_text(json.dumps(invert_workflow("shot_sh010", "sh010")))
    out = outputs / "sh010"
    job_dir = outputs / "sh010.farm"
    submit = [wf, "--submit", "slurm", "--partition", slurm.partition, "--frames-per-task", 8, "--max-running", 2,
              "--cpus-per-task", 1, "--mem", "2G", "--chunk", 1, "--cpu",
              "--input-dir", inputs, "--output-dir", outputs]
    array, check, log = _submit(slurm, submit)
    assert f"submitted job array {array}: 3 of 3 tasks (24 of 24 frames missing)" in log, log
    assert (job_dir / "job.sbatch").is_file() and (job_dir / "check.sbatch").is_file()
    # while the shot's tasks are queued or running, submitting it again is refused (no double rendering)
    again = render(submit, env=slurm.env())
    log, _ = again.communicate(timeout=120)
    assert again.returncode == 2 and "still pending or running" in log, log

    # cancel task 1 (frames 9-16) once it has written its first frame
    deadline = time.monotonic() + 180
    while not existing_frames(out, "out_%04d.png") & set(range(9, 17)):
        assert time.monotonic() < deadline, _slurm(slurm, "squeue") + slurm.logs()[-4000:]
        time.sleep(0.01)
    _slurm(slurm, "scancel", f"{array}_1")
    _wait_gone(slurm, array)
    _wait_gone(slurm, check)
    done = existing_frames(out, "out_%04d.png")
    assert set(range(1, 9)) | set(range(17, 25)) <= done, sorted(done)
    cut = set(range(9, 17)) - done
    assert 0 < len(cut) < 8, f"the cancel did not land mid-task ({8 - len(cut)} of 8 frames done)"
    # the follow-up job ran after the array (afterany) and reported exactly the gap and the cancelled task
    summary = json.loads((job_dir / "summary.json").read_text())
    assert summary["complete"] is False and summary["missing_frames"] == sorted(cut), summary
    assert summary["slurm_tasks"]["1"]["state"] == "CANCELLED", summary
    assert summary["slurm_tasks"]["0"]["state"] == summary["slurm_tasks"]["2"]["state"] == "COMPLETED", summary
    assert_frames_correct(out, {n: expected[n] for n in done})
    stamps = {n: (out / f"out_{n:04d}.png").stat().st_mtime_ns for n in done}

    # the same command again: only task 1 is submitted, and it renders only the missing frames
    array2, check2, log = _submit(slurm, submit)
    assert f"1 of 3 tasks ({len(cut)} of 24 frames missing)" in log, log
    assert "#SBATCH --array=1%2" in (job_dir / "job.sbatch").read_text()
    _wait_gone(slurm, array2)
    _wait_gone(slurm, check2)
    task1 = json.loads((job_dir / "tasks" / "task_1.json").read_text())
    assert (task1["rendered"], task1["skipped"]) == (len(cut), 8 - len(cut)), task1
    assert all((out / f"out_{n:04d}.png").stat().st_mtime_ns == t for n, t in stamps.items()), \
        "frames that were already there were rendered again"
    assert_frames_correct(out, expected)
    summary = json.loads((job_dir / "summary.json").read_text())
    assert summary["complete"] is True and summary["present"] == 24 and summary["missing_frames"] == [], summary
    assert summary["slurm_job"] == array2 and summary["slurm_tasks"]["1"]["state"] == "COMPLETED", summary
    assert Path(summary["contact_sheet"]).is_file()
    with Image.open(summary["contact_sheet"]) as sheet:
        assert sheet.size[0] >= 6 * 200  # 24 thumbnails of the 256-pixel frames, 6 columns
    # each task ran its own ComfyUI on the node and reported its peak memory
    assert summary["peak_task_memory_mb"] and summary["peak_task_memory_mb"] > 200, summary
    print(f"peak memory of a task (ComfyUI + renderer): {summary['peak_task_memory_mb']} MiB")
    logs = sorted((job_dir / "logs").glob("task_*_job_*.log"))
    assert len(logs) == 4 and all("frames" in f.read_text() for f in logs), logs

    # everything is on disk: a third submission submits nothing
    job = render(submit, env=slurm.env())
    log, _ = job.communicate(timeout=120)
    assert job.returncode == 0 and "nothing to submit" in log, log
