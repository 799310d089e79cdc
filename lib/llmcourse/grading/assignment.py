"""An assignment's manifest: what its solution notebooks say about grading, parsed once.

nbgrader keeps an assignment's grading facts in its source notebooks (``solutions/<assignment>/``):
cell metadata says which cells are solutions and which are graded tests worth how many points, and
each test cell's source names the checks it runs (``check("tokenization.merge", merge, hidden=True)``).
The kernel policy, the precheck, the report, the integrity report and the tests all need those
facts; they read them here, from one parse::

    m = Manifest.load(repo / "solutions" / "01_tokenization")
    m.notebooks          ("tokenization",)
    m.parts              (Part("tokenization", "test_get_stats", 2.0, checks=(Check(...), ...)), ...)
    m.parts[0].shares    (0.8, 1.2): the visible and hidden shares of its points (grading/scoring.py)
    m.manual             (Part("tokenization", "question_utf8", 2.0, checks=()), ...): answers graded by hand
    m.max_score          every graded cell's points (autograded tests and manually graded answers)
    m.solutions          {"tokenization": {"merge": "def merge(ids, pair, idx): ..."}}  markers removed
    m.blocked_modules()  ["llmcourse.tokenization"]: the answer key, where the checks' references live

A manifest is cached per process and re-read when a notebook file changes, so a grading worker parses
the assignment once for a whole class.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import os
import re
from pathlib import Path

import nbformat

STUB_LINES = {"# YOUR CODE HERE", "raise NotImplementedError()", "raise NotImplementedError"}
SOLUTION_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")


@dataclasses.dataclass(frozen=True)
class Check:
    """One ``check(name, target, hidden=...)`` call in a test cell."""

    name: str  # the spec in llmcourse.checks, e.g. "tokenization.merge"
    hidden: bool
    target: str | None  # the student's object handed to the check, e.g. "merge" (None: not a plain name)


@dataclasses.dataclass(frozen=True)
class Part:
    """One autograded test cell: a graded part of the assignment."""

    notebook: str
    grade_id: str
    points: float
    checks: tuple[Check, ...]

    @property
    def key(self) -> str:
        """How nbgrader's gradebook and our reports name the part: ``"<notebook>:<grade_id>"``."""
        return f"{self.notebook}:{self.grade_id}"

    @property
    def target(self) -> str | None:
        """The student's object the part grades (the first check's)."""
        return self.checks[0].target if self.checks else None

    @property
    def shares(self) -> tuple[float, float]:
        """(visible share, hidden share) of the points: what passing the visible checks earns, and what
        passing the hidden ones adds (:mod:`llmcourse.grading.scoring`)."""
        from .scoring import split_points

        if not self.checks:
            return self.points, 0.0
        has_visible, has_hidden = any(not c.hidden for c in self.checks), any(c.hidden for c in self.checks)
        return split_points(self.points, has_visible, has_hidden)


@dataclasses.dataclass(frozen=True, eq=False)
class Manifest:
    assignment: str
    notebooks: tuple[str, ...]
    parts: tuple[Part, ...]  # autograded test cells
    manual: tuple[Part, ...]  # graded solution cells: written answers an instructor grades (formgrader)
    max_score: float
    check_names: dict[str, tuple[str, ...]]  # notebook -> every check named in its code cells, in order
    solutions: dict[str, dict[str, str]]  # notebook -> grade_id -> solution code

    @classmethod
    def load(cls, folder: str | os.PathLike) -> Manifest:
        """The manifest of the source notebooks in ``folder`` (cached until one of them changes)."""
        folder = Path(folder).resolve()
        stamp = tuple((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(folder.glob("*.ipynb")))
        return _parse(folder, stamp)

    def blocked_modules(self) -> list[str]:
        """The answer-key modules: where the assignment's checks find their references."""
        from ..checks.checker import get_spec

        names = {name for per_notebook in self.check_names.values() for name in per_notebook}
        return sorted({get_spec(name).reference.split(":")[0] for name in names})

    def parts_of(self, notebook: str) -> list[Part]:
        return [p for p in self.parts if p.notebook == notebook]

    def cell_defining(self, notebook: str, name: str) -> str:
        """The grade_id of the solution cell that defines ``name`` (``def name`` or ``class name``)."""
        for grade_id, code in self.solutions.get(notebook, {}).items():
            if re.search(rf"^(def|class) {re.escape(name)}\b", code, re.M):
                return grade_id
        raise KeyError(f"no solution cell of {self.assignment}/{notebook} defines {name}")


@functools.lru_cache(maxsize=64)
def _parse(folder: Path, stamp: tuple) -> Manifest:
    notebooks, parts, manual, check_names, solutions, max_score = [], [], [], {}, {}, 0.0
    for name, _, _ in stamp:
        nb = nbformat.read(folder / name, as_version=4)
        notebook = Path(name).stem
        notebooks.append(notebook)
        names = []
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                max_score += float(meta.get("points", 0))
                if meta.get("solution"):
                    manual.append(Part(notebook, str(meta.get("grade_id")), float(meta.get("points", 0)), ()))
            if cell.cell_type != "code":
                continue
            calls = check_calls(cell.source)
            names += [c.name for c in calls]
            if meta.get("grade") and not meta.get("solution"):
                parts.append(Part(notebook, str(meta.get("grade_id")), float(meta.get("points", 0)), tuple(calls)))
        check_names[notebook] = tuple(names)
        solutions[notebook] = solution_code(nb)
    return Manifest(folder.name, tuple(notebooks), tuple(parts), tuple(manual), max_score, check_names, solutions)


def check_calls(source: str) -> list[Check]:
    """The ``check("topic.fn", fn, hidden=True)`` calls in a cell's source, in source order."""
    tree = _parse_or_none(source)
    if tree is None:
        return []
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
        if callee != "check" or not node.args or not isinstance(node.args[0], ast.Constant):
            continue
        hidden = any(
            k.arg == "hidden" and isinstance(k.value, ast.Constant) and k.value.value is True for k in node.keywords
        )
        if len(node.args) > 2 and isinstance(node.args[2], ast.Constant):
            hidden = node.args[2].value is True
        target = node.args[1].id if len(node.args) > 1 and isinstance(node.args[1], ast.Name) else None
        found.append((node.lineno, node.col_offset, Check(str(node.args[0].value), hidden, target)))
    return [check for _, _, check in sorted(found, key=lambda f: f[:2])]


def expected_checks(source: str) -> list[tuple[str, bool]]:
    """``check("topic.fn", f, hidden=True)`` calls in a test cell, as (name, hidden), in source order."""
    return [(c.name, c.hidden) for c in check_calls(source)]


def solution_code(notebook) -> dict[str, str]:
    """grade_id -> code of a notebook's solution cells, without nbgrader's markers and the released stub.

    ``notebook`` is a path or a read notebook: a source notebook, a release or a student's submission."""
    nb = notebook if isinstance(notebook, nbformat.NotebookNode) else nbformat.read(str(notebook), as_version=4)
    out = {}
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        lines = [
            line
            for line in cell.source.splitlines()
            if line.strip() not in STUB_LINES and not any(m in line for m in SOLUTION_MARKERS)
        ]
        out[str(meta.get("grade_id") or f"cell{i}")] = "\n".join(lines)
    return out


def read_cached(path: str | os.PathLike) -> nbformat.NotebookNode:
    """A notebook read once per process while the file is unchanged (the release, read for every student).
    The caller must not modify it."""
    path = Path(path)
    st = path.stat()
    return _read(str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=32)
def _read(path: str, mtime_ns: int, size: int) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _parse_or_none(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None
