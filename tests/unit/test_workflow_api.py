"""The UI -> API workflow converter on hand-made graphs covering every construct it handles."""
from __future__ import annotations

import pytest

from scripts.workflow_api import WorkflowError, is_api_format, ui_to_api, widget_values

INFO = {
    "Load": {"input": {"required": {"image": [["a.png", "b.png"], {"image_upload": True}]}},
             "input_order": {"required": ["image"]}, "output": ["IMAGE", "MASK"], "display_name": "Load"},
    "Gen": {"input": {"required": {"model": ["MODEL"], "seed": ["INT", {"default": 0, "control_after_generate": True}],
                                   "steps": ["INT", {"default": 20}], "cfg": ["FLOAT", {"default": 7.0}],
                                   "mode": [["a", "b"], {}]},
                      "optional": {"image": ["IMAGE"], "text": ["STRING", {"forceInput": True}],
                                   "flag": ["BOOLEAN", {"default": False}]}},
            "input_order": {"required": ["model", "seed", "steps", "cfg", "mode"], "optional": ["image", "text", "flag"]},
            "output": ["IMAGE"]},
    "Model": {"input": {"required": {"name": [["m.pth"], {}]}}, "output": ["MODEL"]},
    "Blur": {"input": {"required": {"image": ["IMAGE"], "radius": ["INT", {"default": 1}]}}, "output": ["IMAGE"]},
    "Save": {"input": {"required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "x"}]}},
             "output": []},
}


def node(nid, ntype, widgets=None, inputs=(), mode=0, outputs=()):
    return {"id": nid, "type": ntype, "mode": mode, "widgets_values": widgets,
            "inputs": [dict(i) for i in inputs], "outputs": list(outputs)}


def test_widget_order_skips_control_and_upload_values():
    assert widget_values(node(1, "Load", ["b.png", "image"]), INFO["Load"]) == {"image": "b.png"}
    vals = widget_values(node(2, "Gen", [42, "randomize", 30, 5.5, "b", True]), INFO["Gen"])
    assert vals == {"seed": 42, "steps": 30, "cfg": 5.5, "mode": "b", "flag": True}


def test_workflow_saved_before_a_widget_was_added_keeps_its_values():
    """A node gains an optional widget at the end (as Style Transfer gained tile_size): a workflow saved
    before has one value fewer. Its values still map to the same widgets and the new one is left out, so the
    server uses its default."""
    assert widget_values(node(2, "Gen", [42, "fixed", 30, 5.5, "b"]), INFO["Gen"]) == \
        {"seed": 42, "steps": 30, "cfg": 5.5, "mode": "b"}


def test_workflow_saved_while_a_seed_had_a_control_widget():
    """The pack's seeds lost their "control after generate" widget: a workflow saved before carries one value
    more after the seed, which is skipped; a node saved with the current definition maps as it is."""
    info = {"input": {"required": {"seed": ["INT", {"default": 0, "control_after_generate": False}],
                                   "mode": [["fixed", "b"], {}], "steps": ["INT", {}]}}, "output": []}
    assert widget_values(node(1, "G", [5, "fixed", "b", 3]), info) == {"seed": 5, "mode": "b", "steps": 3}
    assert widget_values(node(1, "G", [5, "fixed", 3]), info) == {"seed": 5, "mode": "fixed", "steps": 3}


def test_dict_widget_values():
    assert widget_values(node(1, "Gen", {"seed": 3, "steps": 4, "junk": 1}), INFO["Gen"]) == {"seed": 3, "steps": 4}


def test_links_reroutes_primitives_bypass_and_mute():
    wf = {
        "nodes": [
            node(1, "Load", ["a.png", "image"]),
            node(2, "Model", ["m.pth"]),
            node(3, "Reroute", None, [{"name": "", "type": "*", "link": 2}]),
            node(4, "PrimitiveNode", [123, "fixed"]),
            node(5, "Gen", [0, "fixed", 20, 7.0, "a", False],
                 [{"name": "model", "type": "MODEL", "link": 3}, {"name": "image", "type": "IMAGE", "link": 4},
                  {"name": "seed", "type": "INT", "link": 5, "widget": {"name": "seed"}}]),
            node(6, "Blur", [2], [{"name": "image", "type": "IMAGE", "link": 6}], mode=4),  # bypassed
            node(7, "Save", ["out"], [{"name": "images", "type": "IMAGE", "link": 7}]),
            node(8, "Save", ["muted"], [{"name": "images", "type": "IMAGE", "link": 8}], mode=2),
            node(9, "Note", ["hello"]),
        ],
        "links": [[2, 2, 0, 3, 0, "MODEL"], [3, 3, 0, 5, 0, "MODEL"], [4, 1, 0, 5, 5, "IMAGE"],
                  [5, 4, 0, 5, 1, "INT"], [6, 5, 0, 6, 0, "IMAGE"], [7, 6, 0, 7, 0, "IMAGE"],
                  [8, 5, 0, 8, 0, "IMAGE"]],
    }
    api = ui_to_api(wf, INFO)
    assert set(api) == {"1", "2", "5", "7"}
    assert api["5"]["inputs"] == {"model": ["2", 0], "image": ["1", 0], "seed": 123, "steps": 20, "cfg": 7.0,
                                  "mode": "a", "flag": False}
    assert api["7"]["inputs"] == {"images": ["5", 0], "filename_prefix": "out"}  # through the bypassed Blur
    assert api["1"] == {"inputs": {"image": "a.png"}, "class_type": "Load", "_meta": {"title": "Load"}}
    assert is_api_format(api) and not is_api_format(wf)
    assert ui_to_api(api, INFO) is api


def test_missing_node_type_is_named():
    wf = {"nodes": [node(1, "NoSuchNode", []), node(2, "Save", ["x"])], "links": []}
    with pytest.raises(WorkflowError, match="NoSuchNode"):
        ui_to_api(wf, INFO)
