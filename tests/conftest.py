"""Shared pytest configuration: the repo root on sys.path and the ../shared reference fixtures."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# The reference fixtures live beside the checkout (../shared/fixtures); GAN_PACK_SHARED overrides.
SHARED = Path(os.environ.get("GAN_PACK_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures"


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
