"""The course policy cell: how an assignment is graded, written into every release by ``llmcourse generate``.

One instructor-editable template (``autograder/policy.md``) holds the words; the facts come from where they
live, so the text can never drift from what the grader does:

- the points table with each part's visible and hidden share: the manifest and :mod:`.scoring`;
- the calls a part asks students to write themselves: each check's spec (``Spec.forbidden``);
- the answer-key modules the grading kernel blocks: the manifest;
- the limits: the defaults of :class:`~llmcourse.grading.course.GradingOptions`;
- the estimated time: the solution notebook's metadata, ``metadata.llmcourse.estimated_time``.

Placeholders are ``{{name}}``; an unknown one is an error (a typo must not reach students). The rendered
cell goes right after the notebook's first cell, with the id ``llmcourse-policy``, so regenerating gives
the same release byte for byte.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat

from ..checks.checker import get_spec
from .assignment import Manifest, Part
from .course import GradingOptions
from .scoring import VISIBLE_SHARE

TEMPLATE = Path("autograder") / "policy.md"  # relative to the repository
CELL_ID = "llmcourse-policy"
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def estimated_time(notebook: nbformat.NotebookNode) -> str:
    """``metadata.llmcourse.estimated_time`` of a solution notebook (e.g. "3 hours")."""
    value = notebook.metadata.get("llmcourse", {}).get("estimated_time")
    if value is None:
        return "not stated yet (the author sets `metadata.llmcourse.estimated_time` in the solution notebook)"
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"metadata.llmcourse.estimated_time must be a non-empty string like '3 hours', got {value!r}")
    return value.strip()


def _number(x: float) -> str:
    return f"{x:g}"


def points_table(manifest: Manifest, notebook: str) -> str:
    """The notebook's parts as a Markdown table: checks, visible share, hidden share, points."""
    rows = ["| part | test cell | checks | visible | hidden | points |", "|---|---|---|---|---|---|"]
    totals = [0.0, 0.0, 0.0]
    for i, part in enumerate(manifest.parts_of(notebook), 1):
        visible, hidden = part.shares
        names = ", ".join(dict.fromkeys(f"`{c.name}`" for c in part.checks)) or "the cell's own asserts"
        rows.append(
            f"| {i} | `{part.grade_id}` | {names} | {_number(visible)} | {_number(hidden)} | {_number(part.points)} |"
        )
        totals = [totals[0] + visible, totals[1] + hidden, totals[2] + part.points]
    for part in (p for p in manifest.manual if p.notebook == notebook):
        rows.append(f"| written | `{part.grade_id}` | graded by hand by your instructor | | | {_number(part.points)} |")
        totals[2] += part.points
    rows.append(
        f"| **total** | | | {_number(round(totals[0], 2))} | {_number(round(totals[1], 2))} | {_number(totals[2])} |"
    )
    return "\n".join(rows)


def _public(path: str) -> bool:
    """A call students would write (``torch.softmax``), not an internal alias (``torch.ops.aten._softmax``)."""
    return not path.startswith("torch.ops.") and not any(p.startswith("_") for p in path.split("."))


def write_yourself(parts: list[Part]) -> str:
    """One sentence per part whose spec names calls students must write themselves."""
    lines = []
    for i, part in enumerate(parts, 1):
        calls = sorted({path for c in part.checks for path in get_spec(c.name).forbidden})
        if not calls:
            continue
        shown = ", ".join(f"`{p}`" for p in calls if _public(p))
        internal = " (and their internal aliases)" if any(not _public(p) for p in calls) else ""
        lines.append(f"  - part {i} (`{part.grade_id}`): {shown}{internal}")
    if not lines:
        return "No part of this notebook forbids a library call; the answer key above is still blocked."
    return (
        "A part whose answer uses a library call it asks you to write yourself earns nothing for that part; "
        "the report names the call and its line:\n" + "\n".join(lines)
    )


def render(template: str, manifest: Manifest, notebook: str, source: nbformat.NotebookNode) -> str:
    """The template with this notebook's facts filled in."""
    options = GradingOptions()
    keys = manifest.blocked_modules()
    values = {
        "assignment": manifest.assignment,
        "estimated_time": estimated_time(source),
        "visible_percent": _number(round(100 * VISIBLE_SHARE)),
        "hidden_percent": _number(round(100 * (1 - VISIBLE_SHARE))),
        "points_table": points_table(manifest, notebook),
        "answer_keys": ", ".join(f"`{k}`" for k in keys) if keys else "No answer-key module",
        "write_yourself": write_yourself(manifest.parts_of(notebook)),
        "cell_timeout": str(options.cell_timeout),
        "notebook_timeout": str(options.notebook_timeout),
        "memory_mb": str(options.memory_mb),
        "output_kb": str(options.output_limit // 1000),
    }
    unknown = sorted({m.group(1) for m in PLACEHOLDER.finditer(template)} - set(values))
    if unknown:
        raise ValueError(f"the policy template uses unknown placeholders {unknown}; known: {sorted(values)}")
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template).strip() + "\n"


def insert_policy(path: str | Path, manifest: Manifest, template: str) -> None:
    """Put the rendered policy right after the first cell of the notebook at ``path`` (replacing an older one)."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if c.get("id") != CELL_ID]
    cell = nbformat.v4.new_markdown_cell(render(template, manifest, path.stem, nb))
    cell["id"] = CELL_ID
    nb.cells.insert(1 if nb.cells else 0, cell)
    nbformat.write(nb, path)
