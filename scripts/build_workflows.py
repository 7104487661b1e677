"""Build the UI-format workflows shipped in ``workflows/`` from short Python descriptions.

Run it (it starts a real ComfyUI with the pack to read the node definitions)::

    python3 scripts/dev.py setup && .venv/bin/python scripts/build_workflows.py

The output is what the frontend saves (format version 0.4): nodes with positions, ``widgets_values`` in the
frontend's widget order (including the frontend-only values after seed and upload widgets), and the link
table. Each workflow is laid out left to right by graph depth.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.workflow_api import UPLOAD_OPTIONS, _has_control_widget, _input_specs, _is_widget  # noqa: E402

WORKFLOWS = REPO / "workflows"
# Nodes that show pictures are taller than their widgets: Load Image draws its picture under the widgets (the
# frontends make it at least 314 px tall), the save/preview nodes show their results after a run. Reserved
# here so no node is drawn over another (checked in the browser tests on both frontends).
MIN_HEIGHTS = {"LoadImage": 340, "SaveImage": 300, "PreviewImage": 300, "GANPackSaveImageSequence": 340}


class Out:
    """A node output socket, used as an input value to link nodes."""

    def __init__(self, node: "Node", slot: int):
        self.node, self.slot = node, slot


class Node:
    def __init__(self, wf: "Workflow", nid: int, ntype: str, title: Optional[str]):
        self.wf, self.id, self.type, self.title = wf, nid, ntype, title
        self.inputs: Dict[str, Any] = {}

    def __getitem__(self, slot: int) -> Out:
        return Out(self, slot)


class Workflow:
    def __init__(self, object_info: Dict[str, Any]):
        self.info = object_info
        self.nodes: List[Node] = []
        self.notes: List[str] = []

    def add(self, ntype: str, title: Optional[str] = None, **inputs) -> Node:
        if ntype not in self.info:
            raise KeyError(f"node type {ntype} is not known to the server")
        node = Node(self, len(self.nodes) + 1, ntype, title)
        node.inputs = inputs
        self.nodes.append(node)
        return node

    def note(self, text: str) -> None:
        self.notes.append(text)

    def to_ui(self) -> Dict[str, Any]:
        links: List[list] = []
        depth: Dict[int, int] = {}
        for n in self.nodes:
            srcs = [v.node.id for v in n.inputs.values() if isinstance(v, Out)]
            depth[n.id] = 1 + max((depth[s] for s in srcs), default=-1)
        out_links: Dict[tuple, List[int]] = {}
        ui_nodes = []
        rows: Dict[int, int] = {}
        for order, n in enumerate(self.nodes):
            d = self.info[n.type]
            specs = _input_specs(d)
            known = {s[0] for s in specs}
            unknown = set(n.inputs) - known
            if unknown:
                raise KeyError(f"{n.type} has no inputs {sorted(unknown)}")
            ui_inputs, widgets = [], []
            for name, typ, opts in specs:
                val = n.inputs.get(name)
                widget = _is_widget(typ, opts)
                if isinstance(val, Out):
                    lid = len(links) + 1
                    src_type = self.info[val.node.type]["output"][val.slot]
                    links.append([lid, val.node.id, val.slot, n.id, len(ui_inputs), src_type])
                    out_links.setdefault((val.node.id, val.slot), []).append(lid)
                    entry = {"name": name, "type": "COMBO" if isinstance(typ, list) else typ, "link": lid}
                    if widget:
                        entry["widget"] = {"name": name}
                    ui_inputs.append(entry)
                    val = opts.get("default", typ[0] if isinstance(typ, list) and typ else None)
                elif not widget:
                    if name in n.inputs:
                        raise ValueError(f"{n.type}.{name} is a socket; link it to an output")
                    ui_inputs.append({"name": name, "type": typ, "link": None})
                    continue
                if widget:
                    if val is None:
                        val = opts.get("default")
                        if val is None and isinstance(typ, list):
                            val = typ[0] if typ else ""
                        if val is None:
                            val = {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(typ)
                    widgets.append(val)
                    if _has_control_widget(name, typ, opts):
                        widgets.append("fixed")
                    if any(opts.get(k) for k in UPLOAD_OPTIONS):
                        widgets.append("image")
            col = depth[n.id]
            row = rows.get(col, 0)
            height = max(60 + 26 * (len(widgets) + max(len(ui_inputs), len(d["output"]))),
                         MIN_HEIGHTS.get(n.type, 0))
            rows[col] = row + height + 60
            ui_nodes.append({
                "id": n.id, "type": n.type, "pos": [60 + 380 * col, 80 + row], "size": [320, height],
                "flags": {}, "order": order, "mode": 0, "inputs": ui_inputs, "outputs": [],
                "properties": {"Node name for S&R": n.type}, "widgets_values": widgets,
                **({"title": n.title} if n.title else {}),
            })
        for ui, n in zip(ui_nodes, self.nodes):
            d = self.info[n.type]
            names = d.get("output_name") or d["output"]
            ui["outputs"] = [{"name": names[i], "type": t, "links": out_links.get((n.id, i), []), "slot_index": i}
                             for i, t in enumerate(d["output"])]
        nodes = ui_nodes
        next_id = len(nodes) + 1
        for i, text in enumerate(self.notes):
            bottom = max((n["pos"][1] + n["size"][1] for n in ui_nodes), default=0)
            nodes.append({"id": next_id + i, "type": "Note", "pos": [60 + 560 * i, bottom + 60], "size": [520, 160],
                          "flags": {}, "order": len(nodes), "mode": 0, "inputs": [], "outputs": [],
                          "properties": {}, "widgets_values": [text], "color": "#432", "bgcolor": "#653"})
        return {"last_node_id": len(nodes), "last_link_id": len(links), "nodes": nodes, "links": links,
                "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [40, 60]}}, "version": 0.4}

    def save(self, name: str) -> Path:
        path = WORKFLOWS / f"{name}.json"
        path.write_text(json.dumps(self.to_ui(), indent=1) + "\n", encoding="utf-8")
        return path


# --------------------------------------------------------------------------------------- the workflows
def collect_builders() -> Dict[str, Any]:
    """``{workflow name: build(object_info) -> Workflow}`` from every module in ``scripts/wf_builders/``
    (one module per node family, each with a ``BUILDERS`` dict)."""
    import importlib
    import pkgutil

    import scripts.wf_builders as pkg

    builders: Dict[str, Any] = {}
    for mod in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"scripts.wf_builders.{mod.name}")
        for name, build in getattr(module, "BUILDERS", {}).items():
            if name in builders:
                raise ValueError(f"workflow {name} is built by two modules")
            builders[name] = build
    return builders


def main() -> int:
    from scripts.comfy_client import ComfyServer

    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="workflows to build (default: all)")
    args = ap.parse_args()
    builders = collect_builders()
    unknown = set(args.names) - set(builders)
    if unknown:
        ap.error(f"unknown workflows {sorted(unknown)}; known: {sorted(builders)}")
    with ComfyServer() as server:
        info = server.object_info()
    for name, build in builders.items():
        if args.names and name not in args.names:
            continue
        print("wrote", build(info).save(name).relative_to(REPO))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
