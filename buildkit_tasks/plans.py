"""The build plan as text, JSON or Graphviz dot (what ``image.graph`` prints)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .graph import ImageGraph

if TYPE_CHECKING:
    from .images import Explanation

FORMATS = ("text", "json", "dot")
EXPLAIN_FORMATS = ("text", "json")


def as_dict(graph: ImageGraph, root: Path) -> dict[str, Any]:
    """``{"images": [{"name", "context", "dockerfile", "depends_on"}], "order": [...]}``."""
    order = graph.order()
    return {
        "images": [
            {
                "name": name,
                "context": _rel(graph.nodes[name].spec.context, root),
                "dockerfile": _rel(
                    graph.nodes[name].spec.dockerfile, graph.nodes[name].spec.context
                ),
                "depends_on": list(graph.nodes[name].depends_on),
            }
            for name in order
        ],
        "order": order,
    }


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path, base)).as_posix()


def render(graph: ImageGraph, root: Path, fmt: str) -> str:
    """The plan in ``fmt`` (one of :data:`FORMATS`)."""
    data = as_dict(graph, root)
    if fmt == "json":
        return json.dumps(data, indent=2)
    if fmt == "dot":
        lines = ["digraph images {", "  rankdir=LR;"]
        for img in data["images"]:
            lines.append(f'  "{img["name"]}";')
            lines += [f'  "{dep}" -> "{img["name"]}";' for dep in img["depends_on"]]
        return "\n".join([*lines, "}"])
    width = max((len(n) for n in data["order"]), default=0)
    lines = [f"{len(data['order'])} images, in build order:"]
    for i, img in enumerate(data["images"], 1):
        deps = ", ".join(img["depends_on"]) or "-"
        only = ", build-only" if not graph.nodes[img["name"]].spec.push else ""
        lines.append(f"  {i:>3}. {img['name']:<{width}}  needs: {deps}  ({img['context']}{only})")
    return "\n".join(lines)


def explanation_lines(explanations: list[Explanation]) -> list[str]:
    """``<image>  <decision>  <reason>; <reason>`` per image, then the counts."""
    width = max((len(e.name) for e in explanations), default=0)
    lines = [f"{e.name:<{width}}  {e.decision:<6}  {'; '.join(e.reasons)}" for e in explanations]
    counts = {d: sum(e.decision == d for e in explanations) for d in ("build", "cached", "skip")}
    lines.append(f"{counts['build']} to build, {counts['cached']} cached, {counts['skip']} skipped")
    return lines


def render_explanations(explanations: list[Explanation], fmt: str) -> str:
    """``image.plan`` output: text lines, or ``{"images": [{"name", "decision", "reasons",
    "key", "held", "held_key"}]}``."""
    if fmt == "json":
        return json.dumps({"images": [e.as_dict() for e in explanations]}, indent=2)
    return "\n".join(explanation_lines(explanations))
