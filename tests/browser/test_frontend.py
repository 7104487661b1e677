"""Every shipped workflow loads in the real frontend with all node types known, the pack's UI->API converter
agrees with the frontend's own ``app.graphToPrompt()``, and a workflow queued from the UI shows its output."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
from PIL import Image

from scripts.workflow_api import load_workflow, ui_to_api

from browser.conftest import ARTIFACTS
from conftest import WORKFLOWS

LOAD_JS = """
const [wf, done] = [arguments[0], arguments[arguments.length - 1]];
(async () => {
  try {
    document.querySelectorAll('.p-dialog-mask .p-dialog-close-button, .p-dialog .p-dialog-header-close')
      .forEach(b => b.click());
    await window.app.loadGraphData(wf, true, true, 'gan-pack-test');
    await new Promise(r => setTimeout(r, 800));
    const nodes = window.app.graph._nodes || window.app.graph.nodes;
    const types = window.LiteGraph.registered_node_types;
    const missing = nodes.filter(n => !types[n.type] || n.has_errors).map(n => n.type);
    const dialogText = Array.from(document.querySelectorAll('.p-dialog')).map(d => d.innerText).join('\\n');
    done({count: nodes.length, types: nodes.map(n => n.type), missing, dialogText});
  } catch (e) { done({error: String(e && e.stack || e)}); }
})();
"""

PROMPT_JS = """
const done = arguments[arguments.length - 1];
window.app.graphToPrompt().then(p => done(p.output)).catch(e => done({error: String(e)}));
"""


def _load(browser, workflow_path):
    result = browser.execute_async_script(LOAD_JS, load_workflow(workflow_path))
    assert "error" not in result, result.get("error")
    return result


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_loads_with_all_nodes_present(browser, workflow):
    result = _load(browser, workflow)
    data = load_workflow(workflow)
    assert result["count"] == len(data["nodes"])
    assert not result["missing"], f"missing node types in {workflow.name}: {result['missing']}"
    assert "missing" not in result["dialogText"].lower(), result["dialogText"]
    ours = [n["type"] for n in data["nodes"] if n["type"].startswith("GANPack")]
    assert ours and set(ours) <= set(result["types"])
    browser.save_screenshot(str(ARTIFACTS / f"{workflow.stem}.png"))
    shot = np.asarray(Image.open(ARTIFACTS / f"{workflow.stem}.png").convert("RGB")).astype(int)
    # the frontend draws a node with a missing type in red: no large pure-red outline may be present
    red = (shot[..., 0] > 200) & (shot[..., 1] < 60) & (shot[..., 2] < 60)
    assert red.sum() < 200, f"red (missing-node) outline pixels in the screenshot of {workflow.name}"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_converter_matches_frontend_graph_to_prompt(browser, object_info, workflow):
    _load(browser, workflow)
    frontend = browser.execute_async_script(PROMPT_JS)
    assert "error" not in frontend, frontend
    ours = ui_to_api(load_workflow(workflow), object_info)
    strip = lambda p: {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in p.items()}
    assert strip(ours) == strip(frontend), json.dumps({"ours": strip(ours), "frontend": strip(frontend)}, indent=1)


def test_queue_from_the_ui_shows_the_output(browser, comfy_server):
    workflow = next(p for p in WORKFLOWS if p.stem == "image_channels")
    _load(browser, workflow)
    before = set(comfy_server.get_json("/history"))
    # press the frontend's own Run/Queue button
    clicked = browser.execute_script("""
      const btns = Array.from(document.querySelectorAll('button'));
      const b = btns.find(b => /^(Run|Queue|Queue Prompt)$/i.test((b.innerText || '').trim()))
             || document.querySelector('[data-testid="queue-button"]');
      if (b) { b.click(); return (b.innerText || 'queue-button').trim(); }
      return null;""")
    if not clicked:
        browser.execute_async_script("const d=arguments[arguments.length-1]; window.app.queuePrompt(0, 1).then(()=>d(1));")
    deadline = time.monotonic() + 300
    new = set()
    while time.monotonic() < deadline and not new:
        new = set(comfy_server.get_json("/history")) - before
        time.sleep(0.5)
    assert new, "queueing from the UI produced no prompt on the server"
    entry = comfy_server.wait(new.pop(), timeout=300)
    files = comfy_server.output_files(entry)
    assert files and np.asarray(Image.open(files[0])).std() > 1
    # the SaveImage node in the UI shows the image it saved
    deadline = time.monotonic() + 30
    shown = []
    while time.monotonic() < deadline and not shown:
        shown = browser.execute_script("""
          const nodes = window.app.graph._nodes || window.app.graph.nodes;
          const n = nodes.find(n => n.type === 'SaveImage');
          const imgs = (n && (n.imgs || [])).map(i => i.src);
          const out = window.app.nodeOutputs ? Object.values(window.app.nodeOutputs) : [];
          return imgs.length ? imgs : out.flatMap(o => (o.images || []).map(i => i.filename));""")
        time.sleep(0.5)
    assert shown, "the UI did not receive the output image"
    browser.save_screenshot(str(ARTIFACTS / "queued_from_ui.png"))


def test_missing_node_detection_can_fail(browser, tmp_path):
    """The check above really sees missing nodes: a workflow naming an unknown type is reported."""
    data = load_workflow(WORKFLOWS[0])
    data["nodes"][0]["type"] = "GANPackNoSuchNode"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    result = _load(browser, path)
    assert "GANPackNoSuchNode" in result["missing"]
    browser.execute_script("document.querySelectorAll('.p-dialog-close-button').forEach(b => b.click())")
