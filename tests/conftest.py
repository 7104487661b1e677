"""Shared pytest configuration: the repo root on sys.path and the ../shared reference fixtures."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The reference fixtures live beside the checkout (../shared/fixtures); GAN_PACK_SHARED overrides.
SHARED = Path(os.environ.get("GAN_PACK_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"
WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))


def fixture_dir(name: str) -> Path:
    """Path of a reference fixture folder, skipping the test (with the reason) when it is absent."""
    path = FIXTURES / name
    if not path.is_dir():
        pytest.skip(f"reference fixtures not available: {path} is missing (set GAN_PACK_SHARED to the shared/ folder)")
    return path


@pytest.fixture
def pix2pix_fixtures() -> Path:
    return fixture_dir("pix2pix_cyclegan")


@pytest.fixture
def stylegan2_fixtures() -> Path:
    return fixture_dir("stylegan2_small")


@pytest.fixture
def stylegan3t_fixtures() -> Path:
    return fixture_dir("stylegan3t_small")


# ------------------------------------------------------------------ real ComfyUI server (integration, browser)




def _comfy_dir() -> Path:
    from scripts.comfy_client import default_comfy_dir

    comfy = default_comfy_dir()
    if not (comfy / "main.py").is_file():
        pytest.skip(f"no ComfyUI at {comfy}: run `python3 scripts/dev.py test` (it provisions one) or set COMFYUI_DIR")
    return comfy


@pytest.fixture(scope="session")
def models_root(tmp_path_factory) -> Path:
    """The models tree registered with the server through extra_model_paths.yaml."""
    root = tmp_path_factory.mktemp("models")
    for sub in ("pix2pix", "cyclegan", "stylegan", "style_transfer", "upscale_models", "vae_approx", "vae",
                "stylegan_directions"):
        (root / sub).mkdir()
    return root


@pytest.fixture(scope="session")
def comfy_server(tmp_path_factory, models_root):
    comfy = _comfy_dir()
    workdir = tmp_path_factory.mktemp("comfy")
    yaml = workdir / "extra_model_paths.yaml"
    lines = ["gan_pack_tests:", f"    base_path: {models_root}"]
    lines += [f"    {sub}: {sub}" for sub in sorted(os.listdir(models_root))]
    yaml.write_text("\n".join(lines) + "\n")
    from scripts.comfy_client import ComfyServer

    os.environ.setdefault("GAN_PACK_CACHE_DIR", str(workdir / "cache"))  # computed StyleGAN directions
    server = ComfyServer(comfy, workdir=workdir, extra_model_paths=[yaml])
    server.start()
    yield server
    log = server.log_text()
    server.stop()
    artifacts = REPO / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "comfyui-integration.log").write_text(log)


@pytest.fixture(scope="session")
def object_info(comfy_server):
    return comfy_server.object_info()
