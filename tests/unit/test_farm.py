"""scripts/farm.py without a scheduler: how a shot is cut into array tasks (also stepped and selected shots),
what is resubmitted, the printed job scripts (--dry-run), the workflow read from the file alone, and --check.
The real cluster runs are in tests/integration/test_farm.py."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts.farm import (EXIT_CODES, array_spec, plan_shot, range_spec, sequence_nodes, task_ranges)
from scripts.render import RenderError, parse_frames

REPO = Path(__file__).resolve().parents[2]


def api_workflow(folder="shot", step=1, first=-1, last=-1) -> dict:
    return {
        "1": {"class_type": "GANPackLoadImageSequence",
              "inputs": {"folder": folder, "pattern": "plate.%04d.png", "first_frame": first, "last_frame": last,
                         "step": step}},
        "2": {"class_type": "GANPackSaveImageSequence",
              "inputs": {"images": ["1", 0], "frame_numbers": ["1", 1], "folder": "out", "pattern": "o.%04d.png",
                         "bit_depth": "8", "skip_existing": False, "start_number": 1}},
    }


@pytest.fixture
def storage(tmp_path):
    """input/shot/plate.1001..1020.png (a shot numbered from 1001, tiny frames) and an empty output/."""
    shot = tmp_path / "input" / "shot"
    shot.mkdir(parents=True)
    for n in range(1001, 1021):
        Image.fromarray(np.full((4, 4, 3), n % 256, np.uint8)).save(shot / f"plate.{n:04d}.png")
    (tmp_path / "output").mkdir()
    return tmp_path


def test_array_spec():
    assert array_spec([0, 1, 2]) == "0-2"
    assert array_spec([1], 2) == "1%2"
    assert array_spec([0, 1, 2, 5, 7, 8], 3) == "0-2,5,7-8%3"


def test_tasks_cut_the_loaders_sequence_and_each_range_selects_exactly_its_frames(storage):
    shot = plan_shot(api_workflow(step=2), storage / "input", storage / "output")
    assert shot.sequence == list(range(1001, 1021, 2))
    ranges = task_ranges(shot, 4)
    assert ranges == [[1001, 1003, 1005, 1007], [1009, 1011, 1013, 1015], [1017, 1019]]
    for r in ranges:  # what a task does with --frames A-B: the sequence's frames within A..B
        assert [f for f in shot.sequence if f in set(parse_frames(range_spec(r)))] == r
    # a --frames selection with a gap: no task spans the gap (it would render the frames in between)
    picked = plan_shot(api_workflow(), storage / "input", storage / "output",
                       frames=parse_frames("1001-1005,1013-1016"))
    assert task_ranges(picked, 4) == [[1001, 1002, 1003, 1004], [1005], [1013, 1014, 1015, 1016]]
    # the workflow's own first/last frame limit the shot
    assert plan_shot(api_workflow(first=1010, last=1012), storage / "input", storage / "output").frames == \
        [1010, 1011, 1012]
    with pytest.raises(RenderError, match="frames-per-task"):
        task_ranges(shot, 0)


def test_workflow_errors_are_clear_without_a_server(storage):
    wf = api_workflow()
    del wf["2"]["inputs"]["frame_numbers"]
    with pytest.raises(RenderError, match="frame_numbers"):
        sequence_nodes(wf)
    with pytest.raises(RenderError, match="does not exist"):
        plan_shot(api_workflow(folder="nope"), storage / "input", storage / "output")
    with pytest.raises(RenderError, match="--input-dir"):
        plan_shot(api_workflow(), None, storage / "output")
    ui = json.loads((REPO / "workflows" / "keyframe_stylize_shot.json").read_text())
    saver = next(n for n in ui["nodes"] if n["type"] == "GANPackSaveImageSequence")
    for slot in saver["inputs"]:
        if slot["name"] == "frame_numbers":
            slot["link"] = None
    with pytest.raises(RenderError, match="frame_numbers"):
        sequence_nodes(ui)


def _render(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "scripts" / "render.py"), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_dry_run_prints_the_job_array_and_the_check_job_for_the_bundled_shot(tmp_path):
    r = _render(REPO / "workflows" / "keyframe_stylize_shot.json", "--submit", "slurm", "--dry-run",
                "--frames-per-task", 8, "--max-running", 2, "--partition", "gpu", "--gpus-per-task", 1,
                "--mem", "6G", "--time", "1:00:00", "--sbatch-arg=--account=show1",
                "--input-dir", REPO / "workflows" / "inputs", "--output-dir", tmp_path)
    assert r.returncode == 0, r.stderr
    for line in ("#SBATCH --array=0-2%2", "#SBATCH --partition=gpu", "#SBATCH --gpus-per-task=1",
                 "#SBATCH --mem=6G", "#SBATCH --time=1:00:00", "#SBATCH --account=show1",
                 "RANGES=(1-8 9-16 17-24)", '--frames "$RANGE" --local-servers 1',
                 "#SBATCH --dependency=afterany:ARRAY_JOB_ID", "--check", f"frame_%04d.png"):
        assert line in r.stdout, f"{line!r} not in:\n{r.stdout}"
    assert r.stdout.count("#SBATCH --gpus-per-task") == 1, "the check job needs no GPU"
    for code in EXIT_CODES:
        assert f"#   {code:>3} = " in r.stdout
    assert not (tmp_path / "gan_pack").exists(), "a dry run must not write the job folder"


def test_done_ranges_are_not_resubmitted_and_check_reports_the_gap(storage):
    wf = storage / "wf.json"
    wf.write_text(json.dumps(api_workflow()))
    out = storage / "output" / "out"
    out.mkdir()
    for n in list(range(1001, 1006)) + [1007]:  # task 0 (1001-1005) complete, task 1 (1006-1010) partly
        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(out / f"o.{n:04d}.png")
    io = ["--input-dir", storage / "input", "--output-dir", storage / "output"]
    r = _render(wf, "--submit", "slurm", "--dry-run", "--frames-per-task", 5, *io)
    assert r.returncode == 0, r.stderr
    assert "#SBATCH --array=1-3\n" in r.stdout and "RANGES=(1001-1005 1006-1010 1011-1015 1016-1020)" in r.stdout

    summary = storage / "summary.json"
    r = _render(wf, "--check", "--summary-json", summary, *io)
    assert r.returncode == 1 and "INCOMPLETE" in r.stdout, r.stdout + r.stderr
    result = json.loads(summary.read_text())
    assert result["complete"] is False and result["present"] == 6
    assert result["missing_frames"] == [1006] + list(range(1008, 1021))
    r = _render(wf, "--check", "--frames", "1001-1005", "--contact-sheet", "--summary-json", summary, *io)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(summary.read_text())["complete"] is True and (out / "contact_sheet.png").is_file()
    r = _render(wf, "--submit", "slurm", "--servers", "http://127.0.0.1:1", *io)
    assert r.returncode == 2 and "own ComfyUI" in r.stderr


def test_task_states_from_sacct_and_scontrol_output():
    from scripts.farm import parse_sacct, parse_scontrol

    sacct = "4711_0|COMPLETED|0:0\n4711_1|CANCELLED by 0|130:0\n4711_2|FAILED|1:0\n4711_[3-5%2]|PENDING|0:0\n" \
            "4712|COMPLETED|0:0\n"
    assert parse_sacct(sacct, "4711") == {0: {"state": "COMPLETED", "exit_code": "0:0"},
                                          1: {"state": "CANCELLED", "exit_code": "130:0"},
                                          2: {"state": "FAILED", "exit_code": "1:0"}}
    scontrol = ("JobId=4713 ArrayJobId=4711 ArrayTaskId=2 JobName=gan-pack-sh010 JobState=FAILED "
                "Reason=NonZeroExitCode ExitCode=1:0 RunTime=00:00:12\n"
                "JobId=4711 ArrayJobId=4711 ArrayTaskId=0 JobName=gan-pack-sh010 JobState=COMPLETED ExitCode=0:0\n"
                "JobId=4714 ArrayJobId=4711 ArrayTaskId=3-5%2 JobState=PENDING ExitCode=0:0\n")
    assert parse_scontrol(scontrol, "4711") == {0: {"state": "COMPLETED", "exit_code": "0:0"},
                                                2: {"state": "FAILED", "exit_code": "1:0"}}
