"""The pack inside a real ComfyUI server: registration, model folders, every shipped workflow executed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts.comfy_client import ComfyPromptRejected
from scripts.workflow_api import load_workflow, ui_to_api, workflow_node_types

from conftest import WORKFLOWS
from integration.workflow_checks import CHECKS

OUR_PREFIX = "GANPack"


def test_pack_loaded_without_import_errors(comfy_server):
    log = comfy_server.log_text()
    assert "comfyui-gan-pack" in log
    assert "IMPORT FAILED" not in log.split("comfyui-gan-pack")[-1].splitlines()[0]
    assert "could not load the" not in log, log


def test_object_info_lists_our_nodes_like_core_nodes(object_info):
    ours = {k: v for k, v in object_info.items() if k.startswith(OUR_PREFIX)}
    assert ours, "no GANPack nodes registered"
    for name, d in ours.items():
        assert d["category"].split("/")[0] == "GAN", name
        assert d["description"].strip(), f"{name} has no description"
        assert d["display_name"] and d["display_name"] != name, name
        for group in ("required", "optional"):
            for inp, spec in (d["input"].get(group) or {}).items():
                opts = spec[1] if len(spec) > 1 else {}
                assert opts.get("tooltip"), f"{name}.{inp} has no tooltip"


def test_every_node_type_used_by_a_workflow_exists(object_info):
    assert WORKFLOWS, "no workflows shipped"
    for wf in WORKFLOWS:
        missing = [t for t in workflow_node_types(load_workflow(wf)) if t not in object_info]
        assert not missing, f"{wf.name} uses unknown node types {missing}"


def test_model_folders_registered_with_extensions(comfy_server, models_root):
    (models_root / "pix2pix" / "a.safetensors").write_bytes(b"x")
    (models_root / "pix2pix" / "b.pth").write_bytes(b"x")
    (models_root / "pix2pix" / "notes.txt").write_text("not a model")
    (models_root / "stylegan" / "c.pkl").write_bytes(b"x")
    listed = comfy_server.get_json("/models/pix2pix")
    assert {"a.safetensors", "b.pth"} <= set(listed)
    assert "notes.txt" not in listed
    assert "c.pkl" in comfy_server.get_json("/models/stylegan")
    for folder in ("pix2pix", "cyclegan", "stylegan", "style_transfer"):
        assert folder in comfy_server.get_json("/models")


def test_workflow_templates_are_served(comfy_server):
    templates = comfy_server.get_json("/workflow_templates")
    assert sorted(templates.get("comfyui-gan-pack", [])) == sorted(p.stem for p in WORKFLOWS)
    served = comfy_server.get_json(f"/api/workflow_templates/comfyui-gan-pack/{WORKFLOWS[0].name}")
    served = json.loads(served) if isinstance(served, (bytes, str)) else served
    assert served == load_workflow(WORKFLOWS[0])


def test_a_broken_prompt_is_rejected_cleanly(comfy_server):
    bad = {"1": {"class_type": "GANPackImageChannels", "inputs": {"mode": "grayscale"}},
           "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x"}}}
    with pytest.raises(ComfyPromptRejected, match="Required input is missing: image"):
        comfy_server.queue(bad)
    assert comfy_server.alive()


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_runs_and_outputs_real_pixels(comfy_server, object_info, workflow):
    prompt = ui_to_api(load_workflow(workflow), object_info)
    setup = CHECKS.get(workflow.stem)
    if setup is not None and setup.prepare is not None:
        setup.prepare(comfy_server, prompt)
    entry = comfy_server.run(prompt, timeout=900)
    files = comfy_server.output_files(entry)
    assert files, f"{workflow.name} produced no images"
    images = [np.asarray(Image.open(f)) for f in files]
    for f, img in zip(files, images):
        assert img.ndim == 3 and img.shape[2] in (3, 4), f
        assert img.std() > 1.0, f"{f.name} is flat"
    assert setup is not None, f"no pixel check registered for {workflow.stem} in workflow_checks.py"
    setup.check(comfy_server, prompt, files, images)
