"""Convert a ComfyUI UI-format workflow (what the frontend saves) into the API prompt the server executes.

The server's ``/prompt`` only accepts the API format ``{node_id: {"class_type", "inputs", "_meta"}}``; the
UI format keeps widget values as a positional list and links as a table. Mapping one onto the other needs the
node definitions (``/object_info``) for the order of widget inputs, the same way the frontend's
``app.graphToPrompt()`` does it. The browser tests check this converter against the frontend for every shipped
workflow.

Handled: widget values (list or dict form) including the frontend-only extra values that follow seed widgets
(``control_after_generate``) and upload combos (``image_upload``), links (incl. widgets converted to inputs),
``Reroute`` chains, ``PrimitiveNode`` values, muted (mode 2) and bypassed (mode 4) nodes, notes and groups.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

VIRTUAL_TYPES = {"Reroute", "PrimitiveNode", "Note", "MarkdownNote"}
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload", "upload")
CONTROL_MODES = ("fixed", "increment", "decrement", "randomize", "increment-wrap")
MODE_MUTED = 2
MODE_BYPASS = 4


class WorkflowError(ValueError):
    pass


def is_api_format(data: Dict[str, Any]) -> bool:
    return "nodes" not in data and all(isinstance(v, dict) and "class_type" in v for v in data.values())


def load_workflow(path) -> Dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _input_specs(node_def: Dict[str, Any]) -> List[Tuple[str, Any, Dict[str, Any]]]:
    """(name, type, options) of every input in definition order (required, then optional)."""
    specs = []
    order = node_def.get("input_order") or {}
    for group in ("required", "optional"):
        inputs = node_def.get("input", {}).get(group, {}) or {}
        names = order.get(group) or list(inputs)
        for name in names:
            spec = inputs[name]
            typ = spec[0]
            opts = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            specs.append((name, typ, opts))
    return specs


def _is_widget(typ: Any, opts: Dict[str, Any]) -> bool:
    if opts.get("forceInput"):
        return False
    return isinstance(typ, list) or typ in WIDGET_TYPES


def _has_control_widget(name: str, typ: Any, opts: Dict[str, Any]) -> bool:
    if "control_after_generate" in opts:
        return bool(opts["control_after_generate"])
    return typ == "INT" and name in ("seed", "noise_seed")


def widget_values(node: Dict[str, Any], node_def: Dict[str, Any]) -> Dict[str, Any]:
    """Widget input name -> value for one UI node."""
    values = node.get("widgets_values")
    if values is None:
        return {}
    specs = [s for s in _input_specs(node_def) if _is_widget(s[1], s[2])]
    if isinstance(values, dict):
        return {name: values[name] for name, _, _ in specs if name in values}
    out: Dict[str, Any] = {}
    i = 0
    expected = sum(1 + _has_control_widget(n, t, o) + any(o.get(k) for k in UPLOAD_OPTIONS) for n, t, o in specs)
    extra = len(values) - expected  # control values saved by an older definition that had the widget
    for name, typ, opts in specs:
        if i >= len(values):
            break
        out[name] = values[i]
        i += 1
        if _has_control_widget(name, typ, opts):
            i += 1  # the frontend-only "control after generate" value
        elif extra > 0 and typ == "INT" and i < len(values) and values[i] in CONTROL_MODES:
            i += 1
            extra -= 1
        if any(opts.get(k) for k in UPLOAD_OPTIONS):
            i += 1  # the upload button widget's value
    return out


class _Graph:
    def __init__(self, workflow: Dict[str, Any]):
        self.nodes = {str(n["id"]): n for n in workflow.get("nodes", [])}
        self.links: Dict[int, Tuple[str, int, str, int, Any]] = {}
        for link in workflow.get("links", []):
            if isinstance(link, dict):
                lid, src, sslot, dst, dslot, typ = (link["id"], link["origin_id"], link["origin_slot"],
                                                    link["target_id"], link["target_slot"], link.get("type"))
            else:
                lid, src, sslot, dst, dslot, typ = link[:6]
            self.links[int(lid)] = (str(src), int(sslot), str(dst), int(dslot), typ)

    def resolve(self, link_id: Optional[int], want_type: Any = None, _depth: int = 0):
        """Follow a link back through reroutes and bypassed nodes to (node_id, slot) of a real output, or
        ("value", v) for a PrimitiveNode, or None when it ends nowhere (a muted source)."""
        if link_id is None or _depth > 100:
            return None
        if int(link_id) not in self.links:
            return None
        src, slot, _, _, typ = self.links[int(link_id)]
        node = self.nodes.get(src)
        if node is None:
            return None
        ntype = node.get("type")
        mode = node.get("mode", 0)
        if ntype == "Reroute":
            inp = (node.get("inputs") or [{}])[0]
            return self.resolve(inp.get("link"), want_type or typ, _depth + 1)
        if ntype == "PrimitiveNode":
            vals = node.get("widgets_values") or []
            return ("value", vals[0]) if vals else None
        if mode == MODE_MUTED:
            return None
        if mode == MODE_BYPASS:
            out_type = None
            outs = node.get("outputs") or []
            if slot < len(outs):
                out_type = outs[slot].get("type")
            want = want_type or typ or out_type
            for inp in node.get("inputs") or []:
                if inp.get("link") is not None and (inp.get("type") == want or want in (None, "*")):
                    return self.resolve(inp["link"], want, _depth + 1)
            return None
        return (src, slot)


def ui_to_api(workflow: Dict[str, Any], object_info: Dict[str, Any]) -> Dict[str, Any]:
    """Convert a UI-format workflow to an API prompt. Raises ``WorkflowError`` naming missing node types."""
    if is_api_format(workflow):
        return workflow
    if workflow.get("definitions", {}).get("subgraphs"):
        raise WorkflowError("workflows with subgraphs are not supported by this converter; unpack them first")
    graph = _Graph(workflow)
    missing = sorted({n.get("type") for n in graph.nodes.values()
                      if n.get("type") not in VIRTUAL_TYPES and n.get("type") not in object_info
                      and n.get("mode", 0) not in (MODE_MUTED, MODE_BYPASS)})
    if missing:
        raise WorkflowError("the workflow uses node types this server does not have: " + ", ".join(missing))
    prompt: Dict[str, Any] = {}
    for node_id, node in sorted(graph.nodes.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else 0):
        ntype = node.get("type")
        if ntype in VIRTUAL_TYPES or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASS):
            continue
        node_def = object_info[ntype]
        inputs: Dict[str, Any] = dict(widget_values(node, node_def))
        for inp in node.get("inputs") or []:
            link = inp.get("link")
            if link is None:
                continue
            src = graph.resolve(link, inp.get("type"))
            name = inp.get("name") or (inp.get("widget") or {}).get("name")
            if src is None:
                inputs.pop(name, None)
                continue
            if src[0] == "value":
                inputs[name] = src[1]
            else:
                inputs[name] = [src[0], src[1]]
        entry = {"inputs": inputs, "class_type": ntype}
        title = node.get("title") or node_def.get("display_name") or ntype
        entry["_meta"] = {"title": title}
        prompt[node_id] = entry
    return prompt


def workflow_node_types(workflow: Dict[str, Any]) -> List[str]:
    if is_api_format(workflow):
        return sorted({v["class_type"] for v in workflow.values()})
    return sorted({n["type"] for n in workflow.get("nodes", []) if n.get("type") not in VIRTUAL_TYPES})


def main(argv=None) -> int:
    import argparse
    import urllib.request

    ap = argparse.ArgumentParser(description="Convert a UI-format ComfyUI workflow to an API prompt.")
    ap.add_argument("workflow")
    ap.add_argument("--server", default="http://127.0.0.1:8188", help="ComfyUI server to read /object_info from")
    ap.add_argument("--object-info", help="a saved /object_info JSON instead of a server")
    ns = ap.parse_args(argv)
    if ns.object_info:
        info = json.loads(Path(ns.object_info).read_text())
    else:
        with urllib.request.urlopen(ns.server.rstrip("/") + "/object_info") as r:
            info = json.loads(r.read())
    print(json.dumps(ui_to_api(load_workflow(ns.workflow), info), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
