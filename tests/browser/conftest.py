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


@pytest.fixture(scope="session")
def browser(comfy_server):
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
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
