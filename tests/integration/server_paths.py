"""Where the test server keeps things (a leaf module: the check modules import it, it imports none of them)."""
from __future__ import annotations

import re
from pathlib import Path


def models_root_of(server) -> Path:
    """The ``base_path`` of the test models tree, read back from the server's extra_model_paths.yaml."""
    for yaml in server.extra_model_paths:
        m = re.search(r"base_path:\s*(\S+)", Path(yaml).read_text())
        if m:
            return Path(m.group(1))
    raise AssertionError("the test server has no extra_model_paths.yaml with a base_path")
