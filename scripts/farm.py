"""Render farms: hand a shot to the farm's scheduler instead of scheduling it ourselves.

``scripts/render.py WORKFLOW --submit slurm`` writes one ``sbatch`` job array for the shot (task i renders the
i-th range of ``--frames-per-task`` frames with a ComfyUI it starts itself, on the GPU SLURM gives it when it
has one) and a small follow-up job (``--dependency=afterany``) that checks every frame exists and writes the
summary JSON and the contact sheet. Only the scheduler's own tools are used (sbatch, squeue, scontrol/sacct).
Submitting the same command again after tasks failed or were cancelled submits only the tasks whose range still
has missing frames, and those render only the missing frames (frames on disk are never rendered again).

The task contract, the same for every manager (SLURM, Deadline, OpenCue, Tractor ...): one task =

    python scripts/render.py WORKFLOW --frames A-B --local-servers 1 --input-dir IN --output-dir OUT

with the exit codes in ``EXIT_CODES``. Nothing here imports torch or needs a running ComfyUI: the shot's frame
list is read from the workflow file itself (the loader's folder/pattern/range and the saver's folder/pattern).
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.render import LOADER, SAVER, RenderError, make_chunks, resolve  # noqa: E402
from scripts.workflow_api import is_api_format, load_workflow  # noqa: E402

# what a task's exit code means; the same for every farm manager
EXIT_CODES = {
    0: "the range is complete: every frame of it exists (rendered now or before)",
    1: "some frames failed to render (their errors are in the log); a retry renders only those",
    2: "workflow or setup error (bad workflow, shot folder missing, bad arguments); a retry will not help",
    3: "no ComfyUI to render on (the task's own server did not start, or no server answers); retry elsewhere",
    130: "interrupted (SIGTERM/SIGINT: cancelled, pre-empted, time limit); frames written so far are kept",
}

# the widget order of the pack's own sequence nodes in UI-format workflows (nodes/sequence.py INPUT_TYPES);
# tests/integration/test_farm.py checks it against the running server's /object_info
LOADER_WIDGETS = ("folder", "pattern", "first_frame", "last_frame", "step")
SAVER_WIDGETS = ("folder", "pattern")


# ------------------------------------------------------------------------------------------ the shot
def sequence_nodes(data: Dict) -> Tuple[Dict, Dict]:
    """(loader inputs, saver inputs) of a UI- or API-format workflow, read from the file alone."""
    if is_api_format(data):
        found = {cls: [n for n in data.values() if n.get("class_type") == cls] for cls in (LOADER, SAVER)}
        for cls, nodes in found.items():
            if len(nodes) != 1:
                raise RenderError(f"the workflow needs exactly one {cls} node (found {len(nodes)})")
        saver = found[SAVER][0]["inputs"]
        if not isinstance(saver.get("frame_numbers"), list):
            raise RenderError("connect Save Image Sequence's frame_numbers input to Load Image Sequence's "
                              "frame_numbers output: each task's frames are saved under their own numbers")
        return dict(found[LOADER][0]["inputs"]), dict(saver)
    nodes = {cls: [n for n in data.get("nodes", []) if n.get("type") == cls and n.get("mode", 0) not in (2, 4)]
             for cls in (LOADER, SAVER)}
    for cls, found in nodes.items():
        if len(found) != 1:
            raise RenderError(f"the workflow needs exactly one {cls} node (found {len(found)})")
    out = []
    for cls, names in ((LOADER, LOADER_WIDGETS), (SAVER, SAVER_WIDGETS)):
        node = nodes[cls][0]
        values = node.get("widgets_values") or []
        if isinstance(values, dict):
            inputs = {k: values[k] for k in names if k in values}
        else:
            inputs = dict(zip(names, values))
        for slot in node.get("inputs", []) or []:  # a widget turned into a linked input
            if slot.get("name") in names and slot.get("link") is not None:
                raise RenderError(f"{cls}'s {slot['name']} must be a plain value, not a link")
        if cls == SAVER:
            linked = [s for s in node.get("inputs", []) or [] if s.get("name") == "frame_numbers"]
            if not linked or linked[0].get("link") is None:
                raise RenderError("connect Save Image Sequence's frame_numbers input to Load Image Sequence's "
                                  "frame_numbers output: each task's frames are saved under their own numbers")
        out.append(inputs)
    return out[0], out[1]


@dataclass
class Shot:
    source: Path           # the input frames folder
    sequence: List[int]    # the frames the loader loads over the whole range (with its step)
    frames: List[int]      # the frames to render (the sequence, or the --frames selection of it)
    out_dir: Path
    out_pattern: str

    def done(self) -> List[int]:
        from models.sequence import existing_frames

        have = existing_frames(self.out_dir, self.out_pattern)
        return [f for f in self.frames if f in have]

    def missing(self) -> List[int]:
        have = set(self.done())
        return [f for f in self.frames if f not in have]


def plan_shot(workflow, input_dir: Optional[Path], output_dir: Optional[Path], *, first: Optional[int] = None,
              last: Optional[int] = None, frames: Optional[Sequence[int]] = None) -> Shot:
    """The shot a workflow renders, as render.py's Renderer sees it, without a ComfyUI."""
    from models.sequence import SequenceError, list_image_sequence

    data = load_workflow(workflow) if not isinstance(workflow, dict) else workflow
    li, si = sequence_nodes(data)
    source = resolve(li["folder"], input_dir, "input")
    if not source.is_dir():
        raise RenderError(f"the shot folder {source} does not exist (workflow folder '{li['folder']}')")
    lo = first if first is not None else (li.get("first_frame", -1) if li.get("first_frame", -1) >= 0 else None)
    hi = last if last is not None else (li.get("last_frame", -1) if li.get("last_frame", -1) >= 0 else None)
    try:
        sequence = [n for n, _ in list_image_sequence(source, li.get("pattern") or None, lo, hi,
                                                      int(li.get("step", 1)))]
    except SequenceError as e:
        raise RenderError(str(e)) from e
    selected = list(sequence)
    if frames is not None:
        wanted = set(frames)
        selected = [f for f in sequence if f in wanted]
    if not selected:
        raise RenderError(f"no frames to render in {source} (pattern {li.get('pattern')!r}, range {lo}..{hi})")
    return Shot(source, sequence, selected, resolve(si["folder"], output_dir, "output"), si["pattern"])


def task_ranges(shot: Shot, per_task: int) -> List[List[int]]:
    """The shot's frames cut into tasks of at most ``per_task`` frames, each a run of consecutive entries of the
    loader's sequence, so ``--frames A-B`` selects exactly that task's frames. The cut depends only on the shot
    and ``per_task`` (not on what is done), so array index i means the same range in every submission."""
    if per_task < 1:
        raise RenderError("--frames-per-task must be >= 1")
    return [c.frames for c in make_chunks(shot.frames, shot.sequence, per_task)]


def range_spec(frames: Sequence[int]) -> str:
    return f"{frames[0]}-{frames[-1]}" if len(frames) > 1 else str(frames[0])


def array_spec(indices: Sequence[int], max_running: Optional[int] = None) -> str:
    """``[0, 1, 2, 5]`` -> ``0-2,5`` (``%K`` appended to run at most K at once)."""
    parts, start = [], None
    for i, n in enumerate(indices):
        if start is None:
            start = n
        if i + 1 == len(indices) or indices[i + 1] != n + 1:
            parts.append(str(start) if start == n else f"{start}-{n}")
            start = None
    spec = ",".join(parts)
    return f"{spec}%{max_running}" if max_running else spec


# ------------------------------------------------------------------------------------------ SLURM
def job_name(shot: Shot) -> str:
    """Stable per output folder, so a resubmission (and squeue --name) finds the same shot's jobs."""
    import hashlib

    tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", shot.out_dir.name)[:40] or "shot"
    digest = hashlib.sha1(str(shot.out_dir.resolve()).encode()).hexdigest()[:6]
    return f"gan-pack-{tag}-{digest}"


def default_job_dir(shot: Shot) -> Path:
    return shot.out_dir.parent / f"{shot.out_dir.name}.farm"


def _q(x) -> str:
    return shlex.quote(str(x))


@dataclass
class SlurmOptions:
    partition: Optional[str] = None
    frames_per_task: int = 50
    gpus_per_task: int = 0
    cpus_per_task: Optional[int] = None
    mem: Optional[str] = None
    time_limit: Optional[str] = None
    max_running: Optional[int] = None
    sbatch_args: Sequence[str] = ()


def _header(name: str, opts: SlurmOptions, log: str) -> List[str]:
    lines = ["#!/bin/bash", f"#SBATCH --job-name={name}", f"#SBATCH --output={log}"]
    if opts.partition:
        lines.append(f"#SBATCH --partition={opts.partition}")
    lines += [f"#SBATCH {a}" for a in opts.sbatch_args]
    return lines


def task_script(workflow: Path, shot: Shot, ranges: List[List[int]], indices: Sequence[int], job_dir: Path,
                opts: SlurmOptions, render_args: Sequence[str]) -> str:
    """The job array: task i renders ranges[i] with its own ComfyUI (render.py --local-servers 1)."""
    from scripts.comfy_client import default_comfy_dir, default_python

    lines = _header(job_name(shot), opts, str(job_dir / "logs" / "task_%a_job_%A.log"))
    lines.append(f"#SBATCH --array={array_spec(list(indices), opts.max_running)}")
    lines.append("#SBATCH --ntasks=1")
    if opts.cpus_per_task:
        lines.append(f"#SBATCH --cpus-per-task={opts.cpus_per_task}")
    if opts.gpus_per_task:
        lines.append(f"#SBATCH --gpus-per-task={opts.gpus_per_task}")
    if opts.mem:
        lines.append(f"#SBATCH --mem={opts.mem}")
    if opts.time_limit:
        lines.append(f"#SBATCH --time={opts.time_limit}")
    lines += [
        "#",
        f"# {len(shot.frames)} frames of {shot.source} -> {shot.out_dir}/{shot.out_pattern}",
        "# written by scripts/render.py --submit slurm; submitting the same command again submits only the tasks",
        "# whose range still has missing frames, and they render only those. A task's exit code:",
        *[f"#   {k:>3} = {v}" for k, v in EXIT_CODES.items()],
        "set -u",
        "RANGES=(" + " ".join(range_spec(r) for r in ranges) + ")",
        'RANGE="${RANGES[$SLURM_ARRAY_TASK_ID]}"',
        f"export COMFYUI_DIR={_q(Path(default_comfy_dir()).resolve())}",
        f"export GAN_PACK_PYTHON={_q(default_python())}",
        'export OMP_NUM_THREADS="${SLURM_CPUS_PER_TASK:-${OMP_NUM_THREADS:-1}}"',
        'echo "[farm] task $SLURM_ARRAY_TASK_ID of job $SLURM_ARRAY_JOB_ID: frames $RANGE on $(hostname)'
        ' (GPUs: ${CUDA_VISIBLE_DEVICES:-none})"',
        " ".join([f"exec {_q(sys.executable)} {_q(REPO / 'scripts' / 'render.py')} {_q(workflow)}",
                  '--frames "$RANGE" --local-servers 1',
                  f'--workdir {_q(job_dir / "work")}/task_"$SLURM_ARRAY_TASK_ID"',
                  f'--summary-json {_q(job_dir / "tasks")}/task_"$SLURM_ARRAY_TASK_ID".json',
                  *map(_q, render_args)]),
    ]
    return "\n".join(lines) + "\n"


def check_script(workflow: Path, shot: Shot, job_dir: Path, opts: SlurmOptions, render_args: Sequence[str],
                 array_job: str = "ARRAY_JOB_ID") -> str:
    """The follow-up job: after every task ended (afterany), check the shot and write summary + contact sheet."""
    log = str(job_dir / "logs" / "check_job_%j.log")
    lines = _header(job_name(shot) + "-check", opts, log)
    lines += [f"#SBATCH --dependency=afterany:{array_job}", "#SBATCH --ntasks=1", "#SBATCH --mem=2G"]
    lines += [
        "set -u",
        " ".join([f"exec {_q(sys.executable)} {_q(REPO / 'scripts' / 'render.py')} {_q(workflow)} --check",
                  f"--slurm-job {array_job} --job-dir {_q(job_dir)} --contact-sheet",
                  f"--summary-json {_q(job_dir / 'summary.json')}", *map(_q, render_args)]),
    ]
    return "\n".join(lines) + "\n"


def _slurm(cmd: List[str], timeout: float = 60) -> subprocess.CompletedProcess:
    exe = shutil.which(cmd[0])
    if exe is None:
        raise RenderError(f"{cmd[0]} not found: run on a machine that can submit to the SLURM cluster "
                          f"(a login node) or put the SLURM client tools on PATH")
    return subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout)


def active_jobs(name: str) -> List[str]:
    """Ids of this shot's array tasks still pending or running (squeue)."""
    r = _slurm(["squeue", "-h", "--name", name, "-t", "PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED",
                "-o", "%i"])
    return [line.strip() for line in r.stdout.splitlines() if line.strip()] if r.returncode == 0 else []


def sbatch(script: Path, *extra: str) -> str:
    r = _slurm(["sbatch", "--parsable", *extra, str(script)])
    if r.returncode != 0:
        raise RenderError(f"sbatch refused {script}: {r.stderr.strip() or r.stdout.strip()}")
    return r.stdout.strip().split(";")[0]


def parse_sacct(text: str, array_job: str) -> Dict[int, Dict[str, str]]:
    """``sacct -X -n -P -o JobID,State,ExitCode`` lines -> {array index: {"state", "exit_code"}} (pending
    ranges such as ``4711_[3-5%2]`` are not tasks yet and are left out)."""
    states: Dict[int, Dict[str, str]] = {}
    for line in text.splitlines():
        jid, state, code = (line.split("|") + ["", "", ""])[:3]
        m = re.match(rf"^{re.escape(array_job)}_(\d+)$", jid.strip())
        if m and state.strip():
            states[int(m.group(1))] = {"state": state.split()[0], "exit_code": code.strip()}
    return states


def parse_scontrol(text: str, array_job: str) -> Dict[int, Dict[str, str]]:
    """``scontrol show job -o ARRAY`` (one line per array task) -> {array index: {"state", "exit_code"}}."""
    states: Dict[int, Dict[str, str]] = {}
    for line in text.splitlines():
        fields = dict(tok.split("=", 1) for tok in line.split() if "=" in tok)
        if fields.get("ArrayJobId") == array_job and fields.get("ArrayTaskId", "").isdigit():
            states[int(fields["ArrayTaskId"])] = {"state": fields.get("JobState", "?"),
                                                  "exit_code": fields.get("ExitCode", "?")}
    return states


def task_states(array_job: str) -> Dict[int, Dict[str, str]]:
    """{array index: {"state", "exit_code"}} from sacct (accounting), else scontrol (recent jobs in memory)."""
    for cmd, parse in ((["sacct", "-j", array_job, "-X", "-n", "-P", "-o", "JobID,State,ExitCode"], parse_sacct),
                       (["scontrol", "show", "job", "-o", array_job], parse_scontrol)):
        try:
            r = _slurm(cmd)
        except (RenderError, OSError, subprocess.SubprocessError):
            continue
        states = parse(r.stdout, array_job) if r.returncode == 0 else {}
        if states:
            return states
    return {}


def submit_slurm(workflow, shot: Shot, opts: SlurmOptions, render_args: Sequence[str], *,
                 job_dir: Optional[Path] = None, dry_run: bool = False, force: bool = False,
                 check_args: Optional[Sequence[str]] = None, log=print) -> Dict:
    """Submit the shot's incomplete ranges as one job array plus the follow-up check job."""
    workflow = Path(workflow).resolve()
    job_dir = Path(job_dir or default_job_dir(shot)).resolve()
    ranges = task_ranges(shot, opts.frames_per_task)
    done = set(shot.done())
    todo = [i for i, r in enumerate(ranges) if any(f not in done for f in r)]
    result = {"job_name": job_name(shot), "job_dir": str(job_dir), "tasks": len(ranges), "submitted_tasks": todo,
              "missing_frames": len(shot.frames) - len(done), "array_job": None, "check_job": None}
    if not todo and not dry_run:
        log(f"[farm] every one of the {len(shot.frames)} frames is already in {shot.out_dir}: nothing to submit "
            f"(render.py --check writes the summary and contact sheet)")
        return result
    if not todo:
        todo = list(range(len(ranges)))  # a dry run shows the whole job
    array = task_script(workflow, shot, ranges, todo, job_dir, opts, render_args)
    if dry_run:
        check = check_script(workflow, shot, job_dir, opts, check_args or ())
        log(f"# ---- {job_dir / 'job.sbatch'}  (sbatch --parsable job.sbatch)\n{array}")
        log(f"# ---- {job_dir / 'check.sbatch'}  (sbatch --parsable check.sbatch, after the array)\n{check}")
        return result
    running = active_jobs(job_name(shot))
    if running and not force:
        raise RenderError(f"jobs of this shot are still pending or running ({', '.join(running[:6])}): wait for "
                          f"them (squeue --name {job_name(shot)}) or scancel them, then submit again")
    for sub in ("logs", "tasks", "work"):
        (job_dir / sub).mkdir(parents=True, exist_ok=True)
    (job_dir / "job.sbatch").write_text(array)
    array_job = sbatch(job_dir / "job.sbatch")
    check = check_script(workflow, shot, job_dir, opts, check_args or (), array_job=array_job)
    (job_dir / "check.sbatch").write_text(check)
    try:
        check_job = sbatch(job_dir / "check.sbatch")
    except RenderError as e:
        log(f"[farm] warning: the follow-up check job was not submitted ({e}); run render.py --check later")
        check_job = None
    result.update(array_job=array_job, check_job=check_job)
    history = job_dir / "submissions.json"
    past = json.loads(history.read_text()) if history.is_file() else []
    past.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "array_job": array_job, "check_job": check_job,
                 "tasks": {str(i): range_spec(ranges[i]) for i in todo},
                 "missing_frames": result["missing_frames"]})
    history.write_text(json.dumps(past, indent=1))
    log(f"[farm] submitted job array {array_job}: {len(todo)} of {len(ranges)} tasks "
        f"({result['missing_frames']} of {len(shot.frames)} frames missing), {opts.frames_per_task} frames per task"
        + (f", at most {opts.max_running} at once" if opts.max_running else ""))
    if not opts.mem:
        log("[farm] note: no --mem, so the partition's default memory per task applies; a task needs its ComfyUI's "
            "peak plus ~50 MiB (README: Render farms, memory per task)")
    log(f"[farm] follow-up check job {check_job} (after the array): {job_dir / 'summary.json'}")
    log(f"[farm] follow it: squeue -j {array_job},{check_job} ; logs in {job_dir / 'logs'}")
    log(f"ARRAY_JOB={array_job} CHECK_JOB={check_job}")
    return result


# ------------------------------------------------------------------------------------------ the check
def check_shot(shot: Shot, *, job_dir: Optional[Path] = None, array_job: Optional[str] = None,
               contact: bool = False) -> Dict:
    """Is every frame there? Plus what the tasks reported (rendered, skipped, peak memory) and their states."""
    from scripts.render import contact_sheet

    missing = shot.missing()
    summary: Dict = {"frames": len(shot.frames), "present": len(shot.frames) - len(missing),
                     "missing_frames": missing, "complete": not missing, "output": str(shot.out_dir),
                     "pattern": shot.out_pattern}
    if job_dir is not None:
        tasks = []
        for f in sorted(Path(job_dir, "tasks").glob("task_*.json"), key=lambda p: int(re.sub(r"\D", "", p.stem))):
            try:
                t = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            peaks = [v for v in (t.get("server_peak_rss_mb") or {}).values() if v]
            tasks.append({"task": int(re.sub(r"\D", "", f.stem)), "rendered": t.get("rendered"),
                          "skipped": t.get("skipped"), "failed_frames": t.get("failed_frames"),
                          "seconds": t.get("seconds"), "server_peak_rss_mb": max(peaks) if peaks else None,
                          "renderer_peak_rss_mb": t.get("renderer_peak_rss_mb")})
        summary["tasks"] = tasks
        summary["rendered"] = sum(t["rendered"] or 0 for t in tasks)
        mem = [(t["server_peak_rss_mb"] or 0) + (t["renderer_peak_rss_mb"] or 0) for t in tasks]
        summary["peak_task_memory_mb"] = round(max(mem), 1) if mem else None
    if array_job:
        summary["slurm_job"] = array_job
        summary["slurm_tasks"] = {str(k): v for k, v in sorted(task_states(array_job).items())}
    if contact and summary["present"]:
        sheet = contact_sheet(shot.out_dir, shot.out_pattern, shot.out_dir / "contact_sheet.png")
        summary["contact_sheet"] = str(sheet)
    return summary


# ------------------------------------------------------------------------------------------ command line
def _task_args(ns, input_dir: Path, output_dir: Path) -> List[str]:
    """render.py options every task (and the check job) gets: storage, the shot's range, how to render."""
    args = ["--input-dir", str(input_dir), "--output-dir", str(output_dir)]
    if ns.first is not None:
        args += ["--first", str(ns.first)]
    if ns.last is not None:
        args += ["--last", str(ns.last)]
    return args


def _render_args(ns) -> List[str]:
    args = ["--chunk", str(ns.chunk), "--retries", str(ns.retries), "--timeout", str(ns.timeout)]
    if ns.cpu:
        args.append("--cpu")
    if ns.no_verify:
        args.append("--no-verify")
    for p in ns.extra_model_paths:
        args += ["--extra-model-paths", str(Path(p).resolve())]
    return args


def farm_main(ns) -> int:
    """render.py --submit / --check (argparse namespace of render.py's command line)."""
    from scripts.render import parse_frames

    if ns.servers or ns.server:
        print("[farm] error: --servers does not go with --submit/--check: each task starts its own ComfyUI",
              file=sys.stderr)
        return 2
    workdir = Path(ns.workdir) if ns.workdir else REPO / "output" / "render"
    input_dir = Path(ns.input_dir or workdir / "input").resolve()
    output_dir = Path(ns.output_dir or workdir / "output").resolve()
    try:
        shot = plan_shot(ns.workflow, input_dir, output_dir, first=ns.first, last=ns.last,
                         frames=parse_frames(ns.frames) if ns.frames else None)
        if ns.check:
            summary = check_shot(shot, job_dir=Path(ns.job_dir) if ns.job_dir else None, array_job=ns.slurm_job,
                                 contact=ns.contact_sheet)
            if ns.summary_json:
                Path(ns.summary_json).parent.mkdir(parents=True, exist_ok=True)
                Path(ns.summary_json).write_text(json.dumps(summary, indent=1))
            state = "complete" if summary["complete"] else f"INCOMPLETE: {len(summary['missing_frames'])} missing"
            print(f"[farm] {summary['present']}/{summary['frames']} frames in {shot.out_dir}: {state}"
                  + (f" (first missing: {summary['missing_frames'][:10]})" if summary["missing_frames"] else ""))
            for k, v in (summary.get("slurm_tasks") or {}).items():
                print(f"[farm]   task {k}: {v['state']} (exit {v['exit_code']})")
            if summary.get("contact_sheet"):
                print(f"[farm] contact sheet: {summary['contact_sheet']}")
            if ns.quiet:
                print(json.dumps(summary))
            return 0 if summary["complete"] else 1
        opts = SlurmOptions(partition=ns.partition, frames_per_task=ns.frames_per_task,
                            gpus_per_task=ns.gpus_per_task, cpus_per_task=ns.cpus_per_task, mem=ns.mem,
                            time_limit=ns.time_limit, max_running=ns.max_running, sbatch_args=ns.sbatch_arg)
        shared = _task_args(ns, input_dir, output_dir)
        job_dir = Path(ns.job_dir) if ns.job_dir else None
        # the check job must see the same shot: the same --frames selection
        sel = ["--frames", ns.frames] if ns.frames else []
        submit_slurm(ns.workflow, shot, opts, shared + _render_args(ns), job_dir=job_dir, dry_run=ns.dry_run,
                     force=ns.force, check_args=shared + sel)
    except RenderError as e:
        print(f"[farm] error: {e}", file=sys.stderr)
        return 2
    return 0
