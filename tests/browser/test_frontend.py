"""Every shipped workflow loads in the real frontend with all node types known, the pack's UI->API converter
agrees with the frontend's own ``app.graphToPrompt()``, and a workflow queued from the UI shows its output."""
from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from scripts.workflow_api import load_workflow, ui_to_api

from conftest import WORKFLOWS

LOAD_JS = """
const [wf, name, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
(async () => {
  try {
    document.querySelectorAll('.p-dialog-mask .p-dialog-close-button, .p-dialog .p-dialog-header-close')
      .forEach(b => b.click());
    await window.app.loadGraphData(wf, true, true, name);
    await new Promise(r => setTimeout(r, 800));
    const nodes = window.app.graph._nodes || window.app.graph.nodes;
    const types = window.LiteGraph.registered_node_types;
    // a combo whose value is not among its options: a model file this machine does not have (the newest
    // frontend marks such nodes with has_errors too); anything else flagged is a real error
    const values = w => { const v = w.options && w.options.values; return typeof v === 'function' ? v() : v; };
    const missingFile = n => (n.widgets || []).some(
        w => w.type === 'combo' && Array.isArray(values(w)) && !values(w).includes(w.value));
    const missing = nodes.filter(n => !types[n.type] || (n.has_errors && !missingFile(n))).map(n => n.type);
    const dialogText = Array.from(document.querySelectorAll('.p-dialog')).map(d => d.innerText).join('\\n');
    done({count: nodes.length, types: nodes.map(n => n.type), missing, dialogText});
  } catch (e) { done({error: String(e && e.stack || e)}); }
})();
"""

PROMPT_JS = """
const done = arguments[arguments.length - 1];
window.app.graphToPrompt().then(p => done(p.output)).catch(e => done({error: String(e)}));
"""


_LOADS = itertools.count()


def _load(browser, workflow_path, data=None):
    # each load opens its own workflow tab, as opening a template does (the newest frontend keeps node sizes
    # of the previous graph when another graph is loaded into the same tab under the same name)
    name = f"{Path(workflow_path).stem}-{next(_LOADS)}"
    result = browser.execute_async_script(LOAD_JS, data or load_workflow(workflow_path), name)
    assert "error" not in result, result.get("error")
    return result


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_workflow_loads_with_all_nodes_present_and_none_overlap(browser, workflow):
    result = _load(browser, workflow)
    data = load_workflow(workflow)
    assert result["count"] == len(data["nodes"])
    assert not result["missing"], f"missing node types in {workflow.name}: {result['missing']}"
    assert "missing" not in result["dialogText"].lower(), result["dialogText"]
    ours = [n["type"] for n in data["nodes"] if n["type"].startswith("GANPack")]
    assert ours and set(ours) <= set(result["types"])
    browser.save_screenshot(str(browser.artifacts / f"{workflow.stem}.png"))
    shot = np.asarray(Image.open(browser.artifacts / f"{workflow.stem}.png").convert("RGB")).astype(int)
    # the frontend draws a node with a missing type in red: no large pure-red outline may be present
    red = (shot[..., 0] > 200) & (shot[..., 1] < 60) & (shot[..., 2] < 60)
    assert red.sum() < 200, f"red (missing-node) outline pixels in the screenshot of {workflow.name}"
    # no two nodes overlap at the size this frontend draws them (pictures loaded)
    boxes = read_node_boxes(browser)
    assert len(boxes) == len(data["nodes"])
    assert_no_overlaps(boxes, f"{workflow.name} on frontend {browser.frontend_version}")


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[p.stem for p in WORKFLOWS])
def test_converter_matches_frontend_graph_to_prompt(browser, object_info, workflow):
    _load(browser, workflow)
    frontend = browser.execute_async_script(PROMPT_JS)
    assert "error" not in frontend, frontend
    ours = ui_to_api(load_workflow(workflow), object_info)
    strip = lambda p: {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in p.items()}
    assert strip(ours) == strip(frontend), json.dumps({"ours": strip(ours), "frontend": strip(frontend)}, indent=1)


def test_queue_from_the_ui_shows_the_output(browser, ui_server):
    comfy_server = ui_server
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
    browser.save_screenshot(str(browser.artifacts / "queued_from_ui.png"))
    # the output previews the run added to the nodes do not run over their neighbours
    assert_no_overlaps(read_node_boxes(browser), workflow.name + " after a run")


def test_missing_node_detection_can_fail(browser, tmp_path):
    """The check above really sees missing nodes: a workflow naming an unknown type is reported."""
    data = load_workflow(WORKFLOWS[0])
    data["nodes"][0]["type"] = "GANPackNoSuchNode"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(data))
    result = _load(browser, path)
    assert "GANPackNoSuchNode" in result["missing"]
    browser.execute_script("document.querySelectorAll('.p-dialog-close-button').forEach(b => b.click())")


# ------------------------------------------------------------------------------------------ layout
BOXES_JS = """
const done = arguments[arguments.length - 1];
(async () => {
  const sleep = ms => new Promise(r => setTimeout(r, ms));
  const nodes = () => window.app.graph._nodes || window.app.graph.nodes;
  // Load Image nodes show their picture once it has loaded, which can make them taller: wait for it
  for (let t = 0; t < 60; t++) {
    const waiting = nodes().filter(n => n.type === 'LoadImage' && !(n.imgs && n.imgs.length && n.imgs[0].complete));
    if (!waiting.length) break;
    await sleep(100);
  }
  for (let i = 0; i < 3; i++) {
    window.app.graph.setDirtyCanvas(true, true);
    window.app.canvas.draw(true, true);
    await new Promise(r => requestAnimationFrame(() => r()));
  }
  await sleep(300);
  done(nodes().map(n => {
    const b = n.boundingRect ? Array.from(n.boundingRect) : n.getBounding();
    return {id: n.id, type: n.type, title: n.title, box: Array.from(b)};
  }));
})();
"""


def read_node_boxes(browser):
    """Every node's rendered bounding box [x, y, w, h] in graph units (title bar included)."""
    return browser.execute_async_script(BOXES_JS)


def assert_no_overlaps(boxes, what: str) -> None:
    overlaps = []
    for i, a in enumerate(boxes):
        ax, ay, aw, ah = a["box"]
        for b in boxes[i + 1:]:
            bx, by, bw, bh = b["box"]
            if ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah:
                overlaps.append(f"{a['title']} #{a['id']} {[round(v) for v in a['box']]} and "
                                f"{b['title']} #{b['id']} {[round(v) for v in b['box']]}")
    assert not overlaps, f"{what}: nodes overlap at their rendered size: " + "; ".join(overlaps)


def test_overlap_check_can_fail(browser):
    data = load_workflow(next(p for p in WORKFLOWS if p.stem == "pix2pix_image"))
    a, b = [n for n in data["nodes"] if n["type"] != "Note"][:2]
    b["pos"] = [a["pos"][0] + 40, a["pos"][1] + 40]
    _load(browser, "moved", data)
    with pytest.raises(AssertionError, match="overlap"):
        assert_no_overlaps(read_node_boxes(browser), "moved node")


# ------------------------------------------------------------------------------------------ templates
def test_templates_listed_with_thumbnails(browser, ui_server):
    """The template browser lists every shipped workflow under this pack and loads
    /api/workflow_templates/<pack>/<name>.jpg for its card: each must be served as a decodable JPEG."""
    import io
    import urllib.request

    listing = ui_server.get_json("/workflow_templates")
    (pack,) = [k for k, names in listing.items() if "keyframe_stylize_shot" in names]
    assert sorted(listing[pack]) == sorted(p.stem for p in WORKFLOWS)
    for name in listing[pack]:
        with urllib.request.urlopen(f"{ui_server.url}/api/workflow_templates/{pack}/{name}.jpg") as r:
            assert r.status == 200 and r.headers.get_content_type() == "image/jpeg", name
            img = Image.open(io.BytesIO(r.read()))
            img.load()
        assert img.format == "JPEG" and min(img.size) >= 128, (name, img.size)
        assert np.asarray(img.convert("L")).std() > 10, f"{name}.jpg is (nearly) blank"


def test_new_pack_nodes_have_no_randomising_seed_widget(browser):
    """A Translate Image (or any pack node with a seed) added from the node library must not get
    "control after generate: randomize", which would change the seed and re-run the node on every Run."""
    found = browser.execute_script("""
      const out = {};
      for (const [type, cls] of Object.entries(window.LiteGraph.registered_node_types)) {
        if (!type.startsWith('GANPack')) continue;
        const node = window.LiteGraph.createNode(type);
        const names = (node.widgets || []).map(w => w.name);
        if (names.includes('seed')) out[type] = (node.widgets || []).filter(
            w => w.name && w.name.includes('control')).map(w => w.name + '=' + w.value);
      }
      return out;""")
    assert "GANPackTranslate" in found and len(found) >= 5, found
    assert not any(found.values()), f"seed control widgets on pack nodes: {found}"


def test_workflow_saved_while_seeds_had_a_control_widget(browser, object_info):
    """Workflows saved before the pack's seeds lost their "control after generate" widget carry one more value
    after each seed ("fixed"). Loaded in the frontend they must still give every widget its own value."""
    path = next(p for p in WORKFLOWS if p.stem == "pix2pix_image")
    current = load_workflow(path)
    old = json.loads(json.dumps(current))
    (node,) = [n for n in old["nodes"] if n["type"] == "GANPackTranslate"]
    names = [s[0] for s in object_info["GANPackTranslate"]["input"]["required"].items() if s[0] != "translator"
             and s[0] != "image"]
    node["widgets_values"].insert(names.index("seed") + 1, "fixed")
    _load(browser, "saved-before", old)
    frontend = browser.execute_async_script(PROMPT_JS)
    expected = ui_to_api(current, object_info)
    nid = str(node["id"])
    assert frontend[nid]["inputs"] == expected[nid]["inputs"], (frontend[nid]["inputs"], expected[nid]["inputs"])
