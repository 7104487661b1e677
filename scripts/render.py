#!/usr/bin/env python3
"""Headless shot renderer: run a workflow over a whole frame sequence on one or more real ComfyUI servers.

The workflow (UI or API JSON) reads frames with **Load Image Sequence (GAN)** and writes them with
**Save Image Sequence (GAN)**. The renderer splits the shot into chunks of N frames and queues one prompt per
chunk, overriding the loader's first/last frame, so memory stays flat however long the shot is. Frames whose
output file already exists are not rendered again, so a killed render resumes where it stopped (the save node
writes each file atomically: no half-written frame is ever taken for a finished one).

Servers: ``--server URL`` (repeatable) uses running ComfyUI servers — one per machine/GPU of a render farm,
all seeing the same input/output storage; ``--local-servers N`` starts N local servers itself. Chunks are
handed to whichever server is free; a chunk that fails (server error, server gone) is retried on another
server, up to ``--retries`` times.

    python scripts/render.py workflows/keyframe_stylise_shot.json --chunk 16 --local-servers 1
    python scripts/render.py shot.json --server http://gpu1:8188 --server http://gpu2:8188 \\
        --input-dir /mnt/shots/input --output-dir /mnt/shots/output

From a farm manager's job script, render one slice per job with ``--frames 1-100``; every job skips what
another job already finished.
"""
from __future__ import annotations

import argparse
import copy
import json
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.comfy_client import ComfyClient, ComfyError, ComfyServer  # noqa: E402
from scripts.workflow_api import load_workflow, ui_to_api  # noqa: E402

LOADER = "GANPackLoadImageSequence"
SAVER = "GANPackSaveImageSequence"


@dataclass
class Chunk:
    index: int
    frames: List[int]
    attempts: int = 0
    errors: List[str] = field(default_factory=list)


def parse_frames(spec: str) -> List[int]:
    """``"1-100"``, ``"1-100:2"``, ``"1,5,9-12"`` -> frame numbers."""
    out: List[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        step = 1
        if ":" in part:
            part, s = part.split(":")
            step = int(s)
        if "-" in part[1:]:
            a, b = part.split("-", 1) if not part.startswith("-") else ("-" + part[1:].split("-")[0], part[1:].split("-", 1)[1])
            out += list(range(int(a), int(b) + 1, step))
        else:
            out.append(int(part))
    return sorted(set(out))


def find_node(prompt: Dict, class_type: str) -> Tuple[str, Dict]:
    found = [(k, v) for k, v in prompt.items() if v["class_type"] == class_type]
    if len(found) != 1:
        raise SystemExit(f"the workflow needs exactly one {class_type} node (found {len(found)})")
    return found[0]


def resolve(folder: str, base: Path) -> Path:
    p = Path(folder)
    return p if p.is_absolute() else base / p


def make_chunks(frames: List[int], all_frames: List[int], size: int) -> List[Chunk]:
    """Group pending frames into chunks of at most ``size`` frames that are contiguous in the sequence, so a
    chunk is one first..last range of the loader."""
    position = {f: i for i, f in enumerate(all_frames)}
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


class Renderer:
    def __init__(self, prompt: Dict, clients: List[ComfyClient], input_dir: Path, output_dir: Path, *,
                 chunk: int, frames: Optional[List[int]] = None, retries: int = 2, timeout: float = 3600,
                 quiet: bool = False):
        from models.sequence import existing_frames, list_image_sequence

        self.prompt = prompt
        self.clients = clients
        self.loader_id, loader = find_node(prompt, LOADER)
        self.saver_id, saver = find_node(prompt, SAVER)
        li, si = loader["inputs"], saver["inputs"]
        self.source = resolve(li["folder"], input_dir)
        self.sequence = [n for n, _ in list_image_sequence(self.source, li.get("pattern") or None,
                                                            step=li.get("step", 1))]
        if frames:
            wanted = set(frames)
            self.frames = [f for f in self.sequence if f in wanted]
        else:
            first, last = li.get("first_frame", 0), li.get("last_frame", 0)
            self.frames = [f for f in self.sequence if (first <= 0 or f >= first) and (last <= 0 or f <= last)]
        if not self.frames:
            raise SystemExit(f"no frames to render in {self.source} (pattern {li.get('pattern')!r})")
        self.out_dir = resolve(si["folder"], output_dir)
        self.out_pattern = si["pattern"]
        done = set(existing_frames(self.out_dir, self.out_pattern)) if self.out_dir.is_dir() else set()
        self.skipped = [f for f in self.frames if f in done]
        pending = [f for f in self.frames if f not in done]
        self.chunks = make_chunks(pending, self.sequence, chunk)
        self.retries = retries
        self.timeout = timeout
        self.quiet = quiet
        self.rendered = 0
        self.failed: List[Chunk] = []
        self.lock = threading.Lock()

    def chunk_prompt(self, chunk: Chunk) -> Dict:
        p = copy.deepcopy(self.prompt)
        li = p[self.loader_id]["inputs"]
        li["first_frame"], li["last_frame"] = chunk.frames[0], chunk.frames[-1]
        p[self.saver_id]["inputs"]["skip_existing"] = True
        return p

    def log(self, msg: str) -> None:
        if not self.quiet:
            print(msg, flush=True)

    def progress(self, t0: float) -> None:
        total = len(self.frames) - len(self.skipped)
        elapsed = time.monotonic() - t0
        fps = self.rendered / elapsed if elapsed > 0 else 0.0
        eta = (total - self.rendered) / fps if fps > 0 else float("nan")
        width = 30
        filled = int(width * self.rendered / max(1, total))
        self.log(f"[render] |{'#' * filled}{'.' * (width - filled)}| {self.rendered}/{total} frames "
                 f"{fps:.2f} frames/s ETA {eta:.0f} s")

    def worker(self, client: ComfyClient, work: "queue.Queue[Chunk]", t0: float) -> None:
        while True:
            try:
                chunk = work.get_nowait()
            except queue.Empty:
                return
            try:
                client.run(self.chunk_prompt(chunk), timeout=self.timeout)
            except (ComfyError, OSError, TimeoutError) as e:
                chunk.attempts += 1
                chunk.errors.append(f"{client.url}: {e}")
                self.log(f"[render] chunk {chunk.frames[0]}-{chunk.frames[-1]} failed on {client.url}: {e}")
                if chunk.attempts <= self.retries:
                    work.put(chunk)
                else:
                    with self.lock:
                        self.failed.append(chunk)
                if not client.alive():
                    self.log(f"[render] {client.url} is not answering; it gets no more chunks")
                    return
                continue
            with self.lock:
                self.rendered += len(chunk.frames)
                self.progress(t0)

    def run(self) -> Dict:
        t0 = time.monotonic()
        self.log(f"[render] {len(self.frames)} frames from {self.source}; {len(self.skipped)} already done; "
                 f"{len(self.chunks)} chunks on {len(self.clients)} server(s)")
        work: "queue.Queue[Chunk]" = queue.Queue()
        for c in self.chunks:
            work.put(c)
        threads = [threading.Thread(target=self.worker, args=(c, work, t0), daemon=True) for c in self.clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        while not work.empty():  # every server died: what is left failed
            self.failed.append(work.get())
        elapsed = time.monotonic() - t0
        summary = {"frames": len(self.frames), "rendered": self.rendered, "skipped": len(self.skipped),
                   "failed_frames": sorted(f for c in self.failed for f in c.frames),
                   "seconds": round(elapsed, 2), "frames_per_second": round(self.rendered / elapsed, 3) if elapsed else 0,
                   "output": str(self.out_dir), "pattern": self.out_pattern}
        self.log(f"[render] done: {self.rendered} rendered, {len(self.skipped)} skipped, "
                 f"{len(summary['failed_frames'])} failed in {elapsed:.1f} s "
                 f"({summary['frames_per_second']} frames/s) -> {self.out_dir}")
        return summary


def contact_sheet(folder: Path, pattern: str, dest: Path, columns: int = 6, count: int = 24, thumb: int = 256,
                  gif: Optional[Path] = None) -> Path:
    """A grid of evenly sampled frames (and optionally an animated GIF preview of the whole shot)."""
    from PIL import Image

    from models.sequence import list_image_sequence

    frames = list_image_sequence(folder, pattern)
    if not frames:
        raise SystemExit(f"no frames in {folder} to make a contact sheet from")
    picks = [frames[round(i * (len(frames) - 1) / max(1, min(count, len(frames)) - 1))]
             for i in range(min(count, len(frames)))]
    thumbs = []
    for _, path in picks:
        im = Image.open(path).convert("RGB")
        im.thumbnail((thumb, thumb))
        thumbs.append(im)
    w, h = max(t.width for t in thumbs), max(t.height for t in thumbs)
    rows = (len(thumbs) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * w, rows * h), (24, 24, 24))
    for i, t in enumerate(thumbs):
        sheet.paste(t, ((i % columns) * w, (i // columns) * h))
    dest.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(dest)
    if gif is not None:
        anim = []
        for _, path in frames:
            im = Image.open(path).convert("RGB")
            im.thumbnail((thumb * 2, thumb * 2))
            anim.append(im.convert("P", palette=Image.ADAPTIVE))
        anim[0].save(gif, save_all=True, append_images=anim[1:], duration=1000 // 24, loop=0)
    return dest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workflow", help="UI-format or API-format workflow JSON")
    ap.add_argument("--frames", help="frame numbers to render, e.g. 1-500 or 1-100:2 (default: the loader's range)")
    ap.add_argument("--chunk", type=int, default=16, help="frames per prompt (memory is bounded by this)")
    ap.add_argument("--server", action="append", default=[], help="URL of a running ComfyUI (repeatable)")
    ap.add_argument("--local-servers", type=int, default=0, help="start this many local ComfyUI servers")
    ap.add_argument("--input-dir", help="the servers' input folder (default: the local servers' own)")
    ap.add_argument("--output-dir", help="the servers' output folder (default: the local servers' own)")
    ap.add_argument("--workdir", help="folder for local servers' state (default: <repo>/output/render)")
    ap.add_argument("--retries", type=int, default=2, help="retries of a failed chunk on another server")
    ap.add_argument("--timeout", type=float, default=3600, help="seconds one chunk may take")
    ap.add_argument("--contact-sheet", action="store_true", help="write contact_sheet.png + preview.gif beside the frames")
    ap.add_argument("--summary-json", help="write the summary here as JSON")
    ap.add_argument("--cpu", action="store_true", help="local servers run on the CPU (default when no GPU)")
    ns = ap.parse_args(argv)

    if not ns.server and ns.local_servers <= 0:
        ns.local_servers = 1
    workdir = Path(ns.workdir or REPO / "output" / "render")
    input_dir = Path(ns.input_dir) if ns.input_dir else workdir / "input"
    output_dir = Path(ns.output_dir) if ns.output_dir else workdir / "output"
    servers: List[ComfyServer] = []
    try:
        import torch

        cpu = ns.cpu or not torch.cuda.is_available()
        for i in range(ns.local_servers):
            s = ComfyServer(workdir=workdir / f"server{i}", input_dir=input_dir, output_dir=output_dir, cpu=cpu)
            servers.append(s.start())
        clients: List[ComfyClient] = list(servers) + [ComfyClient(u) for u in ns.server]
        data = load_workflow(ns.workflow)
        prompt = ui_to_api(data, clients[0].object_info())
        renderer = Renderer(prompt, clients, input_dir, output_dir, chunk=ns.chunk,
                            frames=parse_frames(ns.frames) if ns.frames else None, retries=ns.retries,
                            timeout=ns.timeout)
        summary = renderer.run()
    finally:
        for s in servers:
            s.stop()
    if ns.contact_sheet:
        sheet = contact_sheet(Path(summary["output"]), summary["pattern"], Path(summary["output"]) / "contact_sheet.png",
                              gif=Path(summary["output"]) / "preview.gif")
        summary["contact_sheet"] = str(sheet)
        print(f"[render] contact sheet: {sheet}")
    if ns.summary_json:
        Path(ns.summary_json).write_text(json.dumps(summary, indent=1))
    return 1 if summary["failed_frames"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
