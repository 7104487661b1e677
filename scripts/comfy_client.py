"""Start a real ComfyUI server with this pack and talk to its HTTP API (stdlib only).

Used by the tests, the demo and the headless renderer::

    with ComfyServer(comfy_dir, python) as server:
        info = server.object_info()
        prompt_id = server.queue(api_prompt)
        entry = server.wait(prompt_id)            # the /history entry, raises ComfyExecutionError on failure
        images = server.output_files(entry)       # saved files, as paths on disk

Only APIs that ComfyUI 0.3.75 and current releases share are used: POST /prompt without a client-chosen
prompt id (newer servers want UUIDs; we read back the id the server assigns), GET /history/{id}, /object_info,
/system_stats, /interrupt, /queue.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional

REPO = Path(__file__).resolve().parents[1]


class ComfyError(RuntimeError):
    pass


class ComfyPromptRejected(ComfyError):
    """The server refused the prompt at validation time (``node_errors`` holds the details)."""

    def __init__(self, message: str, body: Any):
        super().__init__(message)
        self.body = body


class ComfyExecutionError(ComfyError):
    """A queued prompt failed while executing; ``details`` is the server's execution_error message."""

    def __init__(self, message: str, details: Any):
        super().__init__(message)
        self.details = details


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_comfy_dir() -> Path:
    env = os.environ.get("COMFYUI_DIR")
    return Path(env) if env else REPO / ".comfyui" / "ComfyUI"


def default_python() -> str:
    return os.environ.get("GAN_PACK_PYTHON") or sys.executable


class ComfyClient:
    """HTTP client for one running ComfyUI server."""

    def __init__(self, url: str, timeout: float = 60.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    # -- raw http
    def _request(self, path: str, data: Optional[dict] = None, timeout: Optional[float] = None):
        body = None if data is None else json.dumps(data).encode()
        req = urllib.request.Request(self.url + path, data=body,
                                     headers={"Content-Type": "application/json"} if body else {})
        with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
            raw = resp.read()
            if resp.headers.get("Content-Type", "").startswith("application/json"):
                return json.loads(raw)
            return raw

    def get_json(self, path: str):
        return self._request(path)

    def alive(self) -> bool:
        try:
            self._request("/system_stats", timeout=2)
            return True
        except Exception:
            return False

    # -- api
    def object_info(self) -> Dict[str, Any]:
        return self._request("/object_info")

    def queue(self, prompt: Dict[str, Any], client_id: str = "gan-pack", extra_data: Optional[dict] = None) -> str:
        payload = {"prompt": prompt, "client_id": client_id}
        if extra_data:
            payload["extra_data"] = extra_data
        try:
            resp = self._request("/prompt", payload)
        except urllib.error.HTTPError as e:
            text = e.read().decode(errors="replace")
            try:
                body = json.loads(text)
            except ValueError:
                body = text
            raise ComfyPromptRejected(f"ComfyUI rejected the prompt: {summarise_rejection(body)}", body) from None
        return resp["prompt_id"]

    def history(self, prompt_id: str) -> Optional[Dict[str, Any]]:
        return self._request(f"/history/{urllib.parse.quote(prompt_id)}").get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 600.0, poll: float = 0.25) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") == "error" or not status.get("completed"):
                    details = [m[1] for m in status.get("messages", []) if m[0] == "execution_error"]
                    msg = details[0].get("exception_message", "").strip() if details else "unknown error"
                    node = details[0].get("node_type", "?") if details else "?"
                    raise ComfyExecutionError(f"prompt failed in node {node}: {msg}", details)
                return entry
            time.sleep(poll)
        raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout:.0f} s")

    def run(self, prompt: Dict[str, Any], timeout: float = 600.0) -> Dict[str, Any]:
        return self.wait(self.queue(prompt), timeout=timeout)

    def run_with_progress(self, prompt: Dict[str, Any], node: str, timeout: float = 300.0):
        """Run ``prompt`` while listening on the websocket; return its /history entry and the ``(value, max)``
        progress messages the server sent for the node with id ``node`` (needs the ``websocket-client``
        package, which ComfyUI's requirements include)."""
        import uuid

        import websocket

        cid = uuid.uuid4().hex
        ws_url = "ws" + self.url[len("http"):] + f"/ws?clientId={cid}"
        ws = websocket.create_connection(ws_url, timeout=timeout)
        try:
            pid = self.queue(prompt, client_id=cid)
            seen, deadline = [], time.monotonic() + timeout
            while time.monotonic() < deadline:
                msg = ws.recv()
                if isinstance(msg, bytes):
                    continue
                m = json.loads(msg)
                data = m.get("data") or {}
                if data.get("prompt_id") != pid:
                    continue
                if m["type"] == "progress" and data.get("node") == node:
                    seen.append((data["value"], data["max"]))
                if m["type"] == "execution_error":
                    raise ComfyExecutionError(f"prompt failed in node {data.get('node_type', '?')}: "
                                              f"{data.get('exception_message', '').strip()}", [data])
                if m["type"] == "execution_success" or (m["type"] == "executing" and data.get("node") is None):
                    return self.wait(pid, timeout=60), seen
            raise TimeoutError(f"prompt {pid} did not finish within {timeout:.0f} s")
        finally:
            ws.close()

    def interrupt(self) -> None:
        self._request("/interrupt", {})

    def wait_running(self, prompt_id: str, timeout: float = 300.0, poll: float = 0.3) -> None:
        """Block until ``prompt_id`` is the running prompt; fails if it ends (or never starts) first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if prompt_id in [item[1] for item in self.get_json("/queue")["queue_running"]]:
                return
            if self.history(prompt_id) is not None:
                raise AssertionError(f"prompt {prompt_id} ended before it could be cancelled")
            time.sleep(poll)
        raise TimeoutError(f"prompt {prompt_id} did not start within {timeout:.0f} s")

    def cancel(self, prompt_id: str, timeout: float = 60.0, poll: float = 0.5) -> Optional[Dict[str, Any]]:
        """Press Cancel until ``prompt_id`` has ended (an interrupt that lands before execution starts is reset
        by ComfyUI, so it is repeated); its /history entry, or None if it was still running after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.interrupt()
            entry = self.history(prompt_id)
            if entry is not None and entry.get("status", {}).get("completed") is not None:
                return entry
            time.sleep(poll)
        return None

    def view(self, filename: str, subfolder: str = "", type_: str = "output") -> bytes:
        q = urllib.parse.urlencode({"filename": filename, "subfolder": subfolder, "type": type_})
        return self._request(f"/view?{q}")


def summarise_rejection(body: Any) -> str:
    if not isinstance(body, dict):
        return str(body)[:500]
    parts = []
    err = body.get("error")
    if isinstance(err, dict):
        parts.append(f"{err.get('message', '')} {err.get('details', '')}".strip())
    for node_id, ne in (body.get("node_errors") or {}).items():
        for e in ne.get("errors", []):
            parts.append(f"node {node_id} ({ne.get('class_type')}): {e.get('message')}: {e.get('details')}")
    return "; ".join(p for p in parts if p) or json.dumps(body)[:500]


def output_images(entry: Dict[str, Any]) -> List[Dict[str, str]]:
    """All image records (filename, subfolder, type) of a /history entry, in node order."""
    out = []
    for node_id in sorted(entry.get("outputs", {}), key=lambda k: (len(k), k)):
        for img in entry["outputs"][node_id].get("images", []):
            out.append(img)
    return out


class ComfyServer(ComfyClient):
    """A ComfyUI server process on a free loopback port, with its own input/output/temp/user folders.

    The pack must already be linked into ``<comfy_dir>/custom_nodes`` (``scripts/dev.py setup`` does that).
    """

    def __init__(self, comfy_dir: Optional[os.PathLike] = None, python: Optional[str] = None, *,
                 workdir: Optional[os.PathLike] = None, port: Optional[int] = None,
                 extra_model_paths: Optional[Iterable[os.PathLike]] = None, extra_args: Iterable[str] = (),
                 cpu: bool = True, startup_timeout: float = 180.0, env: Optional[dict] = None,
                 input_dir: Optional[os.PathLike] = None, output_dir: Optional[os.PathLike] = None):
        self.comfy_dir = Path(comfy_dir or default_comfy_dir()).resolve()
        self.python = python or default_python()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="comfy-gan-pack-"))
        self.port = port or free_port()
        self.extra_model_paths = [str(p) for p in (extra_model_paths or [])]
        self.extra_args = list(extra_args)
        self.cpu = cpu
        self.startup_timeout = startup_timeout
        self.env = env
        self._input_dir = Path(input_dir) if input_dir else None
        self._output_dir = Path(output_dir) if output_dir else None
        self.proc: Optional[subprocess.Popen] = None
        super().__init__(f"http://127.0.0.1:{self.port}")

    @property
    def input_dir(self) -> Path:
        return self._input_dir or self.workdir / "input"

    @property
    def output_dir(self) -> Path:
        return self._output_dir or self.workdir / "output"

    @property
    def log_path(self) -> Path:
        return self.workdir / "comfyui.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def start(self) -> "ComfyServer":
        if not (self.comfy_dir / "main.py").is_file():
            raise ComfyError(f"no ComfyUI at {self.comfy_dir}: run `python3 scripts/dev.py setup` or set COMFYUI_DIR")
        for d in (self.input_dir, self.output_dir, self.workdir / "temp", self.workdir / "user"):
            d.mkdir(parents=True, exist_ok=True)
        settings = self.workdir / "user" / "default" / "comfy.settings.json"
        if not settings.exists():  # a headless user: no first-run template gallery or announcement banners
            settings.parent.mkdir(parents=True, exist_ok=True)
            settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
        cmd = [self.python, "main.py", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-auto-launch", "--input-directory", str(self.input_dir),
               "--output-directory", str(self.output_dir), "--temp-directory", str(self.workdir / "temp"),
               "--user-directory", str(self.workdir / "user"),
               "--database-url", "sqlite:///:memory:"]
        if self.cpu:
            cmd.append("--cpu")
        for p in self.extra_model_paths:
            cmd += ["--extra-model-paths-config", p]
        cmd += self.extra_args
        env = dict(os.environ if self.env is None else self.env)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=self.comfy_dir, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ComfyError(f"ComfyUI exited with {self.proc.returncode} during start-up:\n"
                                 + self.log_text()[-4000:])
            if self.alive():
                return self
            time.sleep(0.5)
        self.stop()
        raise ComfyError(f"ComfyUI did not answer within {self.startup_timeout:.0f} s:\n" + self.log_text()[-4000:])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def cleanup(self) -> None:
        self.stop()
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()

    def output_files(self, entry: Dict[str, Any]) -> List[Path]:
        paths = []
        for img in output_images(entry):
            # ComfyUI puts its temp files (PreviewImage) in <--temp-directory>/temp
            base = {"output": self.output_dir, "temp": self.workdir / "temp" / "temp",
                    "input": self.input_dir}[img["type"]]
            paths.append(base / img.get("subfolder", "") / img["filename"])
        return paths
