"""Browser tier: headless Debian Chromium drives the real ComfyUI frontend served by a real server."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
ARTIFACTS = REPO / "test-artifacts" / "browser"


FRONTENDS = ["bundled", "newest"]


@pytest.fixture(scope="session", params=FRONTENDS)
def ui_server(request, tmp_path_factory, models_root):
    """The server the browser talks to: the integration server with the frontend ComfyUI 0.3.75 pins
    (``bundled``), or a second one serving the newest frontend on the registry (``newest``, unpacked by
    ``scripts/dev.py`` into a cache outside the checkout and passed with ``--front-end-root``). pytest runs
    all tests of one frontend before starting the other, so only one extra server runs at a time."""
    if request.param == "bundled":
        server = request.getfixturevalue("comfy_server")
        server.frontend_label = "bundled"
        yield server
        return
    import os

    from scripts.comfy_client import ComfyServer

    static = Path(os.environ.get("GAN_PACK_NEWEST_FRONTEND", ""))
    if not (static / "index.html").is_file():
        pytest.skip("the newest frontend is not unpacked (scripts/dev.py test fetches it; or set "
                    "GAN_PACK_NEWEST_FRONTEND to a comfyui_frontend_package/static folder)")
    comfy = request.getfixturevalue("comfy_server")
    workdir = tmp_path_factory.mktemp("comfy-newest-frontend")
    server = ComfyServer(comfy.comfy_dir, workdir=workdir, extra_model_paths=comfy.extra_model_paths,
                         extra_args=["--front-end-root", str(static)])
    server.frontend_label = "newest"
    server.start()
    yield server
    (ARTIFACTS.parent / "comfyui-newest-frontend.log").parent.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS.parent / "comfyui-newest-frontend.log").write_text(server.log_text())
    server.stop()


@pytest.fixture(scope="session")
def browser(ui_server):
    comfy_server = ui_server
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian chromium + chromium-driver are not installed (scripts/dev.py test installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gan-pack-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--disable-quic", "--window-size=1600,1000", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_script_timeout(120)
    try:
        driver.get(comfy_server.url)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            ready = driver.execute_script(
                "return !!(window.app && window.app.graph && window.LiteGraph && "
                "window.LiteGraph.registered_node_types && "
                "Object.keys(window.LiteGraph.registered_node_types).length > 50)")
            if ready:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the ComfyUI frontend did not come up in Chromium within 120 s")
        driver.artifacts = ARTIFACTS / comfy_server.frontend_label
        driver.artifacts.mkdir(parents=True, exist_ok=True)
        driver.frontend_version = driver.execute_script("return window.__COMFYUI_FRONTEND_VERSION__ || '?'")
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
