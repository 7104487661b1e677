#!/usr/bin/env python3
"""Headless shot renderer: run a workflow over a whole frame sequence on one or more real ComfyUI servers.

The workflow (UI or API JSON) reads frames with **Load Image Sequence (GAN)** and writes them with **Save Image
Sequence (GAN)** (its frame_numbers input connected to the loader's, so frames keep their numbers). The renderer
splits the shot into chunks of N frames and queues one prompt per chunk, setting the loader's first/last frame,
so memory stays flat however long the shot is. Frames whose output file already exists are not rendered again,
so a killed render resumes where it stopped (the save node writes every file atomically: no half-written frame
is ever taken for a finished one).

Servers: ``--servers URL,URL`` uses running ComfyUI servers (one per machine/GPU of a farm, all seeing the same
input/output storage: give it as ``--input-dir``/``--output-dir``); ``--local-servers K`` starts K local ComfyUI
servers itself (one per GPU when there are several). Chunks go to whichever server is free; a chunk that fails
(error, server gone, timeout) is retried on another server, up to ``--retries`` times.

    python scripts/render.py workflows/keyframe_stylize_shot.json --local-servers 1 --chunk 16
    python scripts/render.py shot.json --servers http://gpu1:8188,http://gpu2:8188 \\
        --input-dir /mnt/shots/input --output-dir /mnt/shots/output

On a render farm the scheduler runs the tasks (scripts/farm.py): ``--submit slurm`` submits the shot as one
SLURM job array plus a check job; for any other manager one task is ``--frames A-B --local-servers 1`` (exit code
0 = range complete, 1 = frames failed, 2 = workflow/setup error, 3 = no ComfyUI, 130 = interrupted); a re-run
task skips the frames that are already on disk.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Set, Tuple

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.comfy_client import ComfyClient, ComfyError, ComfyServer  # noqa: E402
from scripts.workflow_api import load_workflow, ui_to_api  # noqa: E402

LOADER = "GANPackLoadImageSequence"
SAVER = "GANPackSaveImageSequence"


class RenderError(RuntimeError):
    pass


class NoServerError(RenderError):
    """No ComfyUI to render on (exit code 3: a node problem, unlike a workflow error)."""


@dataclass
class Chunk:
    index: int
    frames: List[int]
    attempts: int = 0
    failed_on: Set[str] = field(default_factory=set)
    errors: List[str] = field(default_factory=list)


def parse_frames(spec: str) -> List[int]:
    """``"1-100"``, ``"1-100:2"``, ``"1,5,9-12"`` -> sorted frame numbers."""
    out: List[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        step = 1
        if ":" in part:
            part, s = part.split(":", 1)
            step = int(s)
        if "-" in part:
            a, b = part.split("-", 1)
            out += list(range(int(a), int(b) + 1, step))
        else:
            out.append(int(part))
    return sorted(set(out))


def find_node(prompt: Dict, class_type: str) -> Tuple[str, Dict]:
    found = [(k, v) for k, v in prompt.items() if v.get("class_type") == class_type]
    if len(found) != 1:
        raise RenderError(f"the workflow needs exactly one {class_type} node (found {len(found)})")
    return found[0]


def resolve(folder: str, base: Optional[Path], what: str) -> Path:
    p = Path(folder)
    if p.is_absolute():
        return p
    if base is None:
        raise RenderError(f"the workflow's {what} folder '{folder}' is relative to the servers' {what} directory: "
                          f"pass --{what}-dir (the shared storage the servers use) or use an absolute path")
    return base / p


def make_chunks(frames: Sequence[int], sequence: Sequence[int], size: int) -> List[Chunk]:
    """Group pending frames into chunks of at most ``size`` frames that are contiguous in the (stepped) sequence,
    so each chunk is exactly one first..last range of the loader."""
    position = {f: i for i, f in enumerate(sequence)}
    chunks: List[Chunk] = []
    current: List[int] = []
    for f in frames:
        if current and (len(current) >= size or position[f] != position[current[-1]] + 1):
            chunks.append(Chunk(len(chunks), current))
            current = []
        current.append(f)
    if current:
        chunks.append(Chunk(len(chunks), current))
    return chunks


def peak_rss_mb(pid: int) -> Optional[float]:
    """Peak resident memory (VmHWM) of a process in MiB, Linux only."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class LiveProgress(threading.Thread):
    """Listens to one server's websocket for node progress (``progress`` messages and the pack's progress text,
    e.g. the keyframe training's step and loss) so a long chunk is not silent. Needs aiohttp (ComfyUI's own
    dependency); without it the renderer just reports per chunk."""

    def __init__(self, url: str, client_id: str, report):
        super().__init__(daemon=True)
        self.ws_url = url.replace("http://", "ws://").replace("https://", "wss://") + f"/ws?clientId={client_id}"
        self.report = report  # report(node_id, text)
        self.connected = threading.Event()

    def run(self) -> None:
        try:
            import asyncio

            import aiohttp
        except ImportError:
            self.connected.set()
            return

        async def listen():
            try:
                async with aiohttp.ClientSession() as session:
                    async with session.ws_connect(self.ws_url, heartbeat=30) as ws:
                        self.connected.set()
                        async for msg in ws:
                            if msg.type == aiohttp.WSMsgType.TEXT:
                                data = json.loads(msg.data)
                                if data.get("type") == "progress":
                                    d = data["data"]
                                    self.report(str(d.get("node")), f"{d.get('value')}/{d.get('max')}")
                            elif msg.type == aiohttp.WSMsgType.BINARY and len(msg.data) > 8:
                                if int.from_bytes(msg.data[:4], "big") == 3:  # progress text
                                    n = int.from_bytes(msg.data[4:8], "big")
                                    node = msg.data[8:8 + n].decode(errors="replace")
                                    self.report(node, msg.data[8 + n:].decode(errors="replace"))
            except Exception:
                pass
            finally:
                self.connected.set()

        asyncio.run(listen())


class Renderer:
    """Schedules a shot's chunks over ComfyUI clients; ``run()`` returns a summary dict."""

    def __init__(self, prompt: Dict, clients: List[ComfyClient], input_dir: Optional[Path],
                 output_dir: Optional[Path], *, chunk: int = 16, frames: Optional[Sequence[int]] = None,
                 first: Optional[int] = None, last: Optional[int] = None, retries: int = 2,
                 timeout: float = 3600, verify: bool = True, quiet: bool = False, live_every: float = 10.0):
        from models.sequence import existing_frames, list_image_sequence

        if chunk < 1:
            raise RenderError("--chunk must be >= 1")
        if not clients:
            raise RenderError("no ComfyUI servers to render on")
        self.prompt = prompt
        self.clients = clients
        self.loader_id, loader = find_node(prompt, LOADER)
        self.saver_id, saver = find_node(prompt, SAVER)
        li, si = loader["inputs"], saver["inputs"]
        if not isinstance(si.get("frame_numbers"), list):
            raise RenderError("connect Save Image Sequence's frame_numbers input to Load Image Sequence's "
                              "frame_numbers output: chunks are saved under their own frame numbers")
        for name in ("folder", "pattern", "step", "first_frame", "last_frame"):
            if isinstance(li.get(name), list):
                raise RenderError(f"Load Image Sequence's {name} must be a plain value, not a link")
        self.source = resolve(li["folder"], input_dir, "input")
        if not self.source.is_dir():
            raise RenderError(f"the shot folder {self.source} does not exist (workflow folder '{li['folder']}')")
        lo = first if first is not None else (li.get("first_frame", -1) if li.get("first_frame", -1) >= 0 else None)
        hi = last if last is not None else (li.get("last_frame", -1) if li.get("last_frame", -1) >= 0 else None)
        # the frames the loader would load for the whole range (its step counts from the range's first frame);
        # a chunk is a run of consecutive entries of this list, so the loader's first..last with the same step
        # loads exactly the chunk
        self.sequence = [n for n, _ in list_image_sequence(self.source, li.get("pattern") or None, lo, hi,
                                                            int(li.get("step", 1)))]
        self.frames = list(self.sequence)
        if frames is not None:
            wanted = set(frames)
            self.frames = [f for f in self.frames if f in wanted]
        if not self.frames:
            raise RenderError(f"no frames to render in {self.source} (pattern {li.get('pattern')!r}, "
                              f"range {lo}..{hi})")
        self.out_dir = resolve(si["folder"], output_dir, "output")
        self.out_pattern = si["pattern"]
        done = existing_frames(self.out_dir, self.out_pattern)
        self.skipped = [f for f in self.frames if f in done]
        pending = [f for f in self.frames if f not in done]
        self.chunks = make_chunks(pending, self.sequence, chunk)
        self.retries = retries
        self.timeout = timeout
        self.verify = verify
        self.quiet = quiet
        self.rendered = 0
        self.failed: List[Chunk] = []
        self.lock = threading.Lock()
        self.per_server: Dict[str, int] = {c.url: 0 for c in clients}
        self._unfinished = len(self.chunks)
        self._dead: Set[str] = set()
        self._current: Dict[str, tuple] = {}
        self._last_live: Dict[str, float] = {}
        self._texts: Dict[tuple, str] = {}
        self.live_every = live_every
        self._existing_frames = existing_frames

    # -- prompts
    def chunk_prompt(self, chunk: Chunk) -> Dict:
        p = copy.deepcopy(self.prompt)
        li = p[self.loader_id]["inputs"]
        li["first_frame"], li["last_frame"] = chunk.frames[0], chunk.frames[-1]
        p[self.saver_id]["inputs"]["skip_existing"] = True
        return p

    # -- reporting
    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def _bar(self, t0: float) -> None:
        total = len(self.frames) - len(self.skipped)
        elapsed = time.monotonic() - t0
        fps = self.rendered / elapsed if elapsed > 0 else 0.0
        eta = (total - self.rendered) / fps if fps > 0 else 0.0
        width = 30
        filled = int(width * self.rendered / max(1, total))
        self.log(f"[render] |{'#' * filled}{'.' * (width - filled)}| {self.rendered}/{total} frames  "
                 f"{fps:.2f} frames/s  ETA {eta:.0f} s")

    # -- scheduling
    def _missing(self, chunk: Chunk) -> List[int]:
        if not self.verify:
            return []
        have = self._existing_frames(self.out_dir, self.out_pattern)
        return [f for f in chunk.frames if f not in have]

    def _live(self, client_id: str, node: str, text: str) -> None:
        """Progress inside a chunk, printed at most every ``live_every`` seconds per server."""
        current = self._current.get(client_id)
        now = time.monotonic()
        if "/" not in text or not text.replace("/", "").isdigit():  # a node's own status text (e.g. loss)
            self._texts[(client_id, node)] = text
        elif (client_id, node) in self._texts:
            text = self._texts[(client_id, node)]
        if current is None or now - self._last_live.get(client_id, 0.0) < self.live_every:
            return
        self._last_live[client_id] = now
        url, chunk, prompt = current
        title = prompt.get(node, {}).get("_meta", {}).get("title") or prompt.get(node, {}).get("class_type", node)
        self.log(f"[render]   {url} frames {chunk.frames[0]}-{chunk.frames[-1]}: {title}: {text}")

    def _worker(self, client: ComfyClient, work: "queue.Queue[Chunk]", t0: float) -> None:
        import uuid

        client_id = f"gan-pack-render-{uuid.uuid4().hex[:12]}"
        if not self.quiet and self.live_every > 0:
            listener = LiveProgress(client.url, client_id, lambda node, text: self._live(client_id, node, text))
            listener.start()
            listener.connected.wait(timeout=10)
        while True:
            with self.lock:
                if self._unfinished <= 0:
                    return
            try:
                chunk = work.get(timeout=0.2)
            except queue.Empty:
                continue
            if client.url in chunk.failed_on and self._others_alive(client):
                work.put(chunk)  # retry it elsewhere first
                time.sleep(0.2)
                continue
            try:
                prompt = self.chunk_prompt(chunk)
                self._current[client_id] = (client.url, chunk, prompt)
                try:
                    client.wait(client.queue(prompt, client_id=client_id), timeout=self.timeout)
                finally:
                    self._current.pop(client_id, None)
                missing = self._missing(chunk)
                if missing:
                    raise RenderError(f"the server reported success but frames {missing[:5]} are not in "
                                      f"{self.out_dir} (does the server write to that folder?)")
            except (ComfyError, OSError, TimeoutError, RenderError) as e:
                if isinstance(e, TimeoutError):
                    try:
                        client.interrupt()
                    except Exception:
                        pass
                chunk.attempts += 1
                chunk.failed_on.add(client.url)
                chunk.errors.append(f"{client.url}: {e}")
                self.log(f"[render] chunk {chunk.frames[0]}-{chunk.frames[-1]} failed on {client.url}: "
                         f"{str(e).splitlines()[0] if str(e) else type(e).__name__}")
                if chunk.attempts <= self.retries:
                    work.put(chunk)
                else:
                    with self.lock:
                        self.failed.append(chunk)
                        self._unfinished -= 1
                if not client.alive():
                    self.log(f"[render] {client.url} is not answering; it gets no more chunks")
                    with self.lock:
                        self._dead.add(client.url)
                    return
                continue
            with self.lock:
                self.rendered += len(chunk.frames)
                self.per_server[client.url] += len(chunk.frames)
                self._unfinished -= 1
                self._bar(t0)

    def _others_alive(self, client: ComfyClient) -> bool:
        with self.lock:
            return any(c.url != client.url and c.url not in self._dead for c in self.clients)

    def run(self) -> Dict:
        t0 = time.monotonic()
        self.log(f"[render] {len(self.frames)} frames of {self.source}: {len(self.skipped)} already done, "
                 f"{len(self.frames) - len(self.skipped)} to render in {len(self.chunks)} chunks on "
                 f"{len(self.clients)} server(s) -> {self.out_dir}")
        work: "queue.Queue[Chunk]" = queue.Queue()
        for c in self.chunks:
            work.put(c)
        threads = [threading.Thread(target=self._worker, args=(c, work, t0), daemon=True) for c in self.clients]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(timeout=0.5)
        while not work.empty():  # every server died: what is left failed
            self.failed.append(work.get())
        elapsed = time.monotonic() - t0
        failed = sorted(f for c in self.failed for f in c.frames)
        summary = {"frames": len(self.frames), "rendered": self.rendered, "skipped": len(self.skipped),
                   "failed_frames": failed, "errors": [e for c in self.failed for e in c.errors],
                   "seconds": round(elapsed, 2),
                   "frames_per_second": round(self.rendered / elapsed, 3) if elapsed > 0 else 0.0,
                   "per_server": dict(self.per_server), "output": str(self.out_dir), "pattern": self.out_pattern}
        self.log(f"[render] done: {self.rendered} rendered, {len(self.skipped)} skipped, {len(failed)} failed in "
                 f"{elapsed:.1f} s ({summary['frames_per_second']} frames/s) -> {self.out_dir}")
        for c in self.failed:
            self.log(f"[render] FAILED frames {c.frames[0]}-{c.frames[-1]}: {c.errors[-1] if c.errors else 'no server left'}")
        return summary


# ------------------------------------------------------------------------------------------ previews
def _preview(path: Path):
    """A frame as an 8-bit RGB PIL image; EXR (scene-linear) frames are shown sRGB-encoded and clamped, as
    linear Rec.709 (a preview only, not colour-managed)."""
    from PIL import Image

    if path.suffix.lower() != ".exr":
        with Image.open(path) as im:
            return im.convert("RGB")
    import numpy as np

    from models.sequence import read_image

    x = np.clip(np.nan_to_num(read_image(path, non_finite="keep")), 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return Image.fromarray((srgb * 255).round().astype(np.uint8))


def contact_sheet(folder: Path, pattern: str, dest: Path, columns: int = 6, count: int = 24, thumb: int = 256,
                  gif: Optional[Path] = None, gif_frames: int = 120, fps: int = 24) -> Path:
    """A grid of evenly sampled frames, labelled with their numbers (and optionally an animated GIF preview)."""
    from PIL import Image, ImageDraw

    from models.sequence import list_image_sequence

    frames = list_image_sequence(folder, pattern)
    if not frames:
        raise RenderError(f"no frames in {folder} to make a contact sheet from")
    k = min(count, len(frames))
    picks = [frames[round(i * (len(frames) - 1) / max(1, k - 1))] for i in range(k)]
    thumbs = []
    for n, path in picks:
        im = _preview(path)
        im.thumbnail((thumb, thumb))
        ImageDraw.Draw(im).text((4, 2), str(n), fill=(255, 255, 255), stroke_width=2, stroke_fill=(0, 0, 0))
        thumbs.append(im)
    w, h = max(t.width for t in thumbs), max(t.height for t in thumbs)
    columns = min(columns, len(thumbs))
    rows = (len(thumbs) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * h), (24, 24, 24))
    for i, t in enumerate(thumbs):
        sheet.paste(t, ((i % columns) * w, (i // columns) * h))
    dest.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dest)
    if gif is not None:
        every = max(1, -(-len(frames) // gif_frames))
        anim = []
        for _, path in frames[::every]:
            im = _preview(path)
            im.thumbnail((thumb * 2, thumb * 2))
            anim.append(im.convert("P", palette=Image.ADAPTIVE))
        anim[0].save(gif, save_all=True, append_images=anim[1:], duration=max(20, 1000 * every // fps), loop=0)
    return dest


# ------------------------------------------------------------------------------------------ local servers
def _reaper(pid: int) -> subprocess.Popen:
    """A watchdog that terminates a local server's process group when this renderer dies in any way (even
    SIGKILL): it waits for its stdin pipe, which only this process holds, to close."""
    code = ("import os, signal, sys\nsys.stdin.buffer.read()\n"
            "try:\n    os.killpg(int(sys.argv[1]), signal.SIGTERM)\nexcept OSError:\n    pass\n")
    return subprocess.Popen([sys.executable, "-c", code, str(pid)], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def probe_accelerator(python: Optional[str] = None) -> Tuple[bool, List[str]]:
    """(does the servers' torch see an accelerator, CUDA device ids to spread local servers over), asked in a
    child process with the servers' Python so this renderer never imports torch. Without an accelerator the
    local servers get --cpu (ComfyUI stops at start-up on a CUDA build of torch without a GPU otherwise)."""
    from scripts.comfy_client import default_python

    code = ("import torch, json\n"
            "cuda = torch.cuda.is_available()\n"
            "mps = bool(getattr(torch.backends, 'mps', None) and torch.backends.mps.is_available())\n"
            "xpu = bool(hasattr(torch, 'xpu') and torch.xpu.is_available())\n"
            "print(json.dumps([cuda or mps or xpu, torch.cuda.device_count() if cuda else 0]))\n")
    try:
        out = subprocess.run([python or default_python(), "-c", code], capture_output=True, text=True, timeout=300,
                             env={**os.environ, "OMP_NUM_THREADS": "1"}).stdout.strip().splitlines()
        accel, count = json.loads(out[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return False, []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [v.strip() for v in visible.split(",") if v.strip()] if visible else [str(i) for i in range(count)]
    return bool(accel), ids[:count]


def start_local_servers(count: int, workdir: Path, input_dir: Path, output_dir: Path, *, cpu: bool,
                        extra_model_paths: Sequence[str] = (), log=print) -> List[Tuple[ComfyServer, subprocess.Popen]]:
    if not cpu:
        accelerated, gpus = probe_accelerator()
        cpu = not accelerated
    else:
        gpus = []
    started: List[Tuple[ComfyServer, subprocess.Popen]] = []
    threads, errors = [], []

    def boot(i: int) -> None:
        env = dict(os.environ)
        if len(gpus) > 1:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        s = ComfyServer(workdir=workdir / f"server{i}", input_dir=input_dir, output_dir=output_dir,
                        cpu=cpu, env=env, extra_model_paths=extra_model_paths)
        try:
            s.start()
        except Exception as e:
            errors.append(e)
            return
        started.append((s, _reaper(s.proc.pid)))
        log(f"[render] local ComfyUI {i} at {s.url}" + (f" on GPU {gpus[i % len(gpus)]}" if len(gpus) > 1 else ""))

    for i in range(count):  # start in parallel: start-up is most of a short render
        t = threading.Thread(target=boot, args=(i,), daemon=True)
        t.start()
        threads.append(t)
    for t in threads:
        t.join()
    if errors:
        stop_local_servers(started)
        raise errors[0]
    return started


def stop_local_servers(servers: List[Tuple[ComfyServer, subprocess.Popen]]) -> Dict[str, Optional[float]]:
    """Stop them; returns each server's peak resident memory (MiB) read just before."""
    peaks: Dict[str, Optional[float]] = {}
    for s, reaper in servers:
        if s.proc is not None:
            peaks[s.url] = peak_rss_mb(s.proc.pid)
        s.stop()
        try:
            reaper.stdin.close()
            reaper.wait(timeout=10)
        except Exception:
            pass
    return peaks


def _terminate_as_interrupt(signum, frame):  # SIGTERM from a farm manager: clean up like Ctrl-C
    raise KeyboardInterrupt(f"signal {signum}")


# ------------------------------------------------------------------------------------------ main
def render(workflow, *, servers: Sequence[str] = (), local_servers: int = 0, input_dir: Optional[Path] = None,
           output_dir: Optional[Path] = None, workdir: Optional[Path] = None, chunk: int = 16,
           first: Optional[int] = None, last: Optional[int] = None, frames: Optional[Sequence[int]] = None,
           retries: int = 2, timeout: float = 3600, cpu: bool = False, extra_model_paths: Sequence[str] = (),
           verify: bool = True, quiet: bool = False, prompt_hook=None) -> Dict:
    """Render ``workflow`` (a path or a loaded UI/API dict); the library form of the command line.
    ``prompt_hook(prompt)`` may edit the API prompt (e.g. set the output folder) before rendering."""
    if not servers and local_servers <= 0:
        local_servers = 1
    workdir = Path(workdir or REPO / "output" / "render")
    if local_servers:
        input_dir = Path(input_dir or workdir / "input")
        output_dir = Path(output_dir or workdir / "output")
    local: List[Tuple[ComfyServer, subprocess.Popen]] = []
    log = (lambda m: None) if quiet else (lambda m: print(m, flush=True))
    peaks: Dict[str, Optional[float]] = {}
    try:
        if local_servers:
            log(f"[render] starting {local_servers} local ComfyUI server(s) ...")
            local = start_local_servers(local_servers, workdir, input_dir, output_dir, cpu=cpu,
                                        extra_model_paths=extra_model_paths, log=log)
        clients: List[ComfyClient] = [s for s, _ in local] + [ComfyClient(u) for u in servers]
        alive = [c for c in clients if c.alive()]
        if not alive:
            raise NoServerError("none of the ComfyUI servers answers: " + ", ".join(c.url for c in clients))
        for c in clients:
            if c not in alive:
                log(f"[render] {c.url} does not answer; rendering without it")
        data = load_workflow(workflow) if not isinstance(workflow, dict) else workflow
        prompt = ui_to_api(data, alive[0].object_info())
        if prompt_hook is not None:
            prompt_hook(prompt)
        renderer = Renderer(prompt, alive, input_dir, output_dir, chunk=chunk, frames=frames, first=first,
                            last=last, retries=retries, timeout=timeout, verify=verify, quiet=quiet)
        summary = renderer.run()
    finally:
        peaks = stop_local_servers(local)
    summary["server_peak_rss_mb"] = peaks
    summary["renderer_peak_rss_mb"] = peak_rss_mb(os.getpid())
    return summary


def add_farm_arguments(ap: argparse.ArgumentParser) -> None:
    """Submitting to a farm scheduler instead of rendering here (scripts/farm.py)."""
    g = ap.add_argument_group("render farm (scripts/farm.py)")
    g.add_argument("--submit", choices=["slurm"], help="submit the shot to this scheduler as one job array (each "
                   "task renders --frames-per-task frames with its own ComfyUI) plus a follow-up check job")
    g.add_argument("--partition", help="SLURM partition")
    g.add_argument("--frames-per-task", type=int, default=50, help="frames per array task (default 50)")
    g.add_argument("--gpus-per-task", type=int, default=0, help="GPUs per task (default 0: none requested)")
    g.add_argument("--cpus-per-task", type=int, help="CPU cores per task")
    g.add_argument("--mem", help="memory per task, SLURM syntax (e.g. 6G)")
    g.add_argument("--time", dest="time_limit", help="time limit per task, SLURM syntax (e.g. 2:00:00)")
    g.add_argument("--max-running", type=int, help="run at most this many tasks at once")
    g.add_argument("--sbatch-arg", action="append", default=[],
                   help="extra sbatch option for both jobs, e.g. --sbatch-arg=--account=show1 (repeatable)")
    g.add_argument("--job-dir", help="job scripts, logs and task summaries (default: <frames folder>.farm beside "
                   "the frames; must be on storage the nodes see)")
    g.add_argument("--dry-run", action="store_true", help="print the job scripts instead of submitting them")
    g.add_argument("--force", action="store_true", help="submit even while jobs of this shot are still queued")
    g.add_argument("--check", action="store_true", help="render nothing: check that every frame exists, write "
                   "--summary-json (and --contact-sheet); exit 0 when complete, 1 otherwise")
    g.add_argument("--slurm-job", help=argparse.SUPPRESS)  # --check: the array job whose task states to report


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workflow", help="UI-format or API-format workflow JSON")
    ap.add_argument("--first", type=int, help="first frame number to render (default: the loader's / the shot's)")
    ap.add_argument("--last", type=int, help="last frame number to render (inclusive)")
    ap.add_argument("--frames", help="explicit frame list, e.g. 1-100,200-210 (within --first/--last)")
    ap.add_argument("--chunk", type=int, default=16, help="frames per prompt; memory is bounded by this (default 16)")
    ap.add_argument("--servers", default="", help="comma-separated URLs of running ComfyUI servers")
    ap.add_argument("--server", action="append", default=[], help="URL of a running ComfyUI (repeatable)")
    ap.add_argument("--local-servers", type=int, default=0,
                    help="start this many local ComfyUI servers (default 1 when no --servers)")
    ap.add_argument("--input-dir", help="the servers' input folder (default with local servers: <workdir>/input)")
    ap.add_argument("--output-dir", help="the servers' output folder (default with local servers: <workdir>/output)")
    ap.add_argument("--workdir", help="state of local servers (default: <repo>/output/render)")
    ap.add_argument("--extra-model-paths", action="append", default=[],
                    help="extra_model_paths.yaml for local servers (repeatable)")
    ap.add_argument("--retries", type=int, default=2, help="retries of a failed chunk, on another server first")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds one chunk may take")
    ap.add_argument("--cpu", action="store_true", help="local servers run on the CPU (default when there is no GPU)")
    ap.add_argument("--no-verify", action="store_true",
                    help="do not check that each chunk's frames appear in --output-dir (no shared storage)")
    ap.add_argument("--contact-sheet", action="store_true", help="write contact_sheet.png + preview.gif beside the frames")
    ap.add_argument("--summary-json", help="write the summary here as JSON")
    ap.add_argument("--quiet", action="store_true", help="print only the summary")
    add_farm_arguments(ap)
    ns = ap.parse_args(argv)
    if ns.submit or ns.check:
        from scripts.farm import farm_main

        return farm_main(ns)

    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    servers = [u.strip() for u in ns.servers.split(",") if u.strip()] + ns.server
    try:
        summary = render(ns.workflow, servers=servers, local_servers=ns.local_servers,
                         input_dir=Path(ns.input_dir) if ns.input_dir else None,
                         output_dir=Path(ns.output_dir) if ns.output_dir else None,
                         workdir=Path(ns.workdir) if ns.workdir else None, chunk=ns.chunk, first=ns.first,
                         last=ns.last, frames=parse_frames(ns.frames) if ns.frames else None, retries=ns.retries,
                         timeout=ns.timeout, cpu=ns.cpu, extra_model_paths=ns.extra_model_paths,
                         verify=not ns.no_verify, quiet=ns.quiet)
    except NoServerError as e:
        print(f"[render] error: {e}", file=sys.stderr)
        return 3
    except ComfyError as e:  # a local server that did not start
        print(f"[render] error: {e}", file=sys.stderr)
        return 3
    except RenderError as e:
        print(f"[render] error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("[render] interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    if ns.contact_sheet and summary["rendered"] + summary["skipped"] > 0:
        out = Path(summary["output"])
        sheet = contact_sheet(out, summary["pattern"], out / "contact_sheet.png", gif=out / "preview.gif")
        summary["contact_sheet"] = str(sheet)
        print(f"[render] contact sheet: {sheet}\n[render] preview: {out / 'preview.gif'}")
    if ns.summary_json:
        Path(ns.summary_json).write_text(json.dumps(summary, indent=1))
    if ns.quiet:
        print(json.dumps(summary))
    return 1 if summary["failed_frames"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
