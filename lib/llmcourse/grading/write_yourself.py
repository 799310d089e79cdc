""" "Write it yourself" parts: find the library calls a part asks students to write, in their answer.

Checks compare outputs, so they cannot tell a student's softmax from ``torch.softmax``. Each check's
spec names the calls its part replaces (``Spec.forbidden``); here the trusted grader looks for them in
the student's answer, the way :func:`llmcourse.checks.forbidden.forbidden_uses` reads source (names,
attribute chains, aliases, ``getattr`` with strings), without running any of it.

The answer of a part is every solution cell that binds the object the part's checks grade (``def
layer_norm``, ``class LayerNorm``, ``layer_norm = ...``, ``from torch.nn.functional import layer_norm``),
wherever the student put it, plus the solution cells defining the helpers those cells use (a
``_normalise`` written in another cell is part of the answer too). The aliases a cell may use come from
every code cell of the notebook (``import torch.nn.functional as G`` in a set-up cell).

The source cannot show what is built at run time (``getattr(torch, codecs.decode("fbsgznk", "rot13"))``,
``Categorical(logits=x).probs``): :func:`runtime_findings` reads the record of the operators and calls the
function ran while the grader's cases ran (:mod:`llmcourse.checks.dispatch`), which each check emits
with its outputs. A finding there counts like one in the source; a record of what ran that is missing,
emptied or switched off fails the part whatever the mode, as a missing check record does.

A finding costs the part its points (``llmcourse autograde --forbidden zero``, the default) or is only
named in the report (``--forbidden flag``): :class:`~llmcourse.grading.preprocessors.TrustedChecks`
calls :func:`part_findings` on each graded test cell. The integrity report lists every finding of every
submission whatever the mode (:func:`submission_findings`).
"""

from __future__ import annotations

import ast
import os
import symtable
from collections.abc import Iterable
from pathlib import Path

import nbformat
from nbformat.notebooknode import NotebookNode

from ..checks.checker import get_spec
from ..checks.forbidden import bindings, find_forbidden, record_problem, runtime_finding, runtime_uses
from .assignment import Check, Manifest

MODES = ("zero", "flag")  # the part earns zero / keeps its points and is only reported


def _tree(source: str) -> ast.Module | None:
    try:
        return ast.parse(source)
    except SyntaxError:
        return None  # code that does not parse never ran


def bound_names(source: str, imports: bool = True) -> set[str]:
    """The names a cell binds at module level: functions, classes, assignments (and imports). Names
    local to a function are its own business, not the notebook's."""
    tree = _tree(source)
    return _bound(tree.body, imports) if tree else set()


def _bound(body: list[ast.stmt], imports: bool) -> set[str]:
    names = set()
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if imports and isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
            continue
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For, ast.AsyncFor)):
            targets = [node.target]
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            targets = [item.optional_vars for item in node.items if item.optional_vars]
        for target in targets:
            names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        # statements that hold statements (if, for, while, with, try) bind at module level too
        for field in ("body", "orelse", "finalbody"):
            names |= _bound(getattr(node, field, None) or [], imports)
        for handler in getattr(node, "handlers", None) or []:
            names |= _bound(handler.body, imports)
    return names


def used_names(source: str) -> set[str]:
    """The global names a cell reads: at module level, and inside its functions and classes the names
    that are not their own (a parameter ``x`` is not the notebook's ``x``)."""
    try:
        top = symtable.symtable(source, "<cell>", "exec")
    except SyntaxError:
        return set()
    names, tables = set(), [top]
    while tables:
        table = tables.pop()
        tables += table.get_children()
        for sym in table.get_symbols():
            if sym.is_referenced() and (table is top or sym.is_global()):
                names.add(sym.get_name())
    return names


def answer_cells(solutions: dict[str, str], target: str) -> dict[str, str]:
    """The solution cells (grade_id -> source) that make up the answer for ``target``: those binding it,
    then, transitively, those defining a helper the answer uses. (A cell that only imports a name the
    answer uses is not pulled in: ``import torch`` elsewhere says nothing about this part.)"""
    answer = {gid: src for gid, src in solutions.items() if target in bound_names(src)}
    defined = {gid: bound_names(src, imports=False) for gid, src in solutions.items()}
    new = dict(answer)
    while new:
        wanted = set().union(*(used_names(src) for src in new.values()))
        new = {gid: solutions[gid] for gid in solutions if gid not in answer and defined[gid] & wanted}
        answer.update(new)
    return answer


def notebook_code(nb: NotebookNode) -> tuple[dict[str, str], dict[str, str]]:
    """(solution cells grade_id -> source, the aliases every code cell binds) of a (submitted) notebook."""
    solutions, aliases = {}, {}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            solutions[str(meta.get("grade_id") or f"cell{i}")] = cell.source
        aliases.update(bindings(cell.source))
    return solutions, aliases


def part_findings(checks: Iterable[Check], solutions: dict[str, str], aliases: dict[str, str]) -> list[str]:
    """Why a part uses a call it asks students to write, one line per finding ([]: none).

    ``checks`` are the part's ``check("attention.softmax", softmax)`` calls: the specs name the calls,
    the targets name the student's objects."""
    lines, seen = [], set()
    for chk in checks:
        if not chk.target or (chk.name, chk.target) in seen:
            continue
        seen.add((chk.name, chk.target))
        try:
            forbidden = get_spec(chk.name).forbidden
        except (KeyError, ValueError):  # an unknown check fails on its own, in the check's report
            continue
        for gid, source in answer_cells(solutions, chk.target).items() if forbidden else ():
            for f in find_forbidden(source, forbidden, aliases):
                line = (
                    f"{chk.target} uses {f.name}, which this part asks you to write yourself "
                    f"(cell {gid}, line {f.line}: `{f.code[:80]}`)"
                )
                if line not in lines:
                    lines.append(line)
    return lines


def runtime_findings(checks: Iterable[Check], records: list) -> tuple[list[str], list[str]]:
    """(findings, problems) in a graded test cell's check records (``records``, as the kernel emitted them):
    a forbidden operator or call the part's function ran, and a record of what ran that cannot be trusted.

    Only the records of the cell's own checks (``check("attention.softmax", softmax)``) whose spec watches
    (``Spec.watched``) are read; a check without its record fails on its own, in the check's report."""
    findings: list[str] = []
    problems: list[str] = []
    for chk in checks:
        try:
            spec = get_spec(chk.name)
        except (KeyError, ValueError):
            continue
        if not spec.watched:
            continue
        for record in records:
            if not isinstance(record, dict) or record.get("check") != chk.name or record.get("hidden") != chk.hidden:
                continue
            problem = record_problem(spec.forbidden, record)
            if problem:
                line = f"{chk.name}: {problem}; the part earns nothing"
                if line not in problems:
                    problems.append(line)
                continue
            for what, path in runtime_uses(spec.forbidden, record)[:3]:
                line = runtime_finding(chk.target or chk.name, what, path)
                if line not in findings:
                    findings.append(line)
    return findings, problems


def submission_findings(manifest: Manifest, folder: str | os.PathLike) -> list[tuple[str, str]]:
    """(part key, finding) for every part of a submission folder (``<student>/<assignment>/``), read with
    the assignment's own test cells (the integrity report's view: whatever the course's grading mode)."""
    found = []
    for notebook in manifest.notebooks:
        path = Path(folder) / f"{notebook}.ipynb"
        try:
            nb = nbformat.read(str(path), as_version=4)
        except Exception:  # noqa: BLE001 - missing or unreadable: the similarity report says so
            continue
        solutions, aliases = notebook_code(nb)
        for part in manifest.parts_of(notebook):
            found += [(part.key, line) for line in part_findings(part.checks, solutions, aliases)]
    return found
