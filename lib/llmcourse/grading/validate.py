"""Students' self-check: run a notebook top to bottom and judge each graded part as the grader does.

A damaged notebook (a split or duplicated cell, a re-typed answer, a truncated file...) is validated as the
grader will grade it, repaired (:mod:`llmcourse.grading.repair`), and :func:`damage_warnings` says what was
found, what the grader does about it and how to fix it.

Unlike ``nbgrader validate`` (which exits 0 even when validation fails) every part is reported and the
caller (``llmcourse validate``) exits non-zero on a failure. It runs the student's own kernel on their
own notebook: no course directory and no repository are needed.

The report is for a student, so it says things once and in their words: a part whose answer still raises
the release's ``NotImplementedError`` is "not answered yet" (not a check that "did not run ... or was
tampered with"), and the kernel's own CheckFailed, which repeats the trusted report (cut at 300
characters), is left out. The kernel talks to us over IPC sockets, not TCP on localhost (ipykernel warns
about unencrypted TCP on every start, and a student's self-check has no reason to open a port).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import nbformat
from traitlets.config import Config

from .course import PipelineError

NOT_RUN = "this check did not run"  # judge_cell's words for a check whose record is missing
STUB = "NotImplementedError"  # what the release's answer cells raise until they are answered


@dataclasses.dataclass
class PartResult:
    grade_id: str
    points: float
    passed: bool
    lines: list


def validate(notebook: str | os.PathLike, timeout: int = 120) -> list[PartResult]:
    """Run a student's notebook top to bottom and judge each graded part the way the grader does."""
    from nbgrader import utils

    from .execute import GradingExecute
    from .preprocessors import judge_cell

    path = Path(notebook)
    if not path.exists():
        raise PipelineError(f"{path} does not exist")
    nb, problems = repaired(path)  # what the grader grades: a split or duplicated cell is judged once
    if nb is None:
        raise PipelineError(problems[0])
    # IPC sockets are files named <ip>-<port>; the default ip, "kernel-ipc", would leave them in the
    # notebook's folder when a kernel dies, so they live in a private folder removed afterwards
    with tempfile.TemporaryDirectory(prefix="llmcourse-validate-") as sockets:
        executor = GradingExecute(
            timeout=timeout,
            kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"),
            run_trailing_cells=True,  # students see their whole notebook run
            time_parts=False,  # no answer key here to check a timed call against: the kernel's own timing stands
            config=Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(sockets, "kernel")}})
            if os.name == "posix"  # Windows has no IPC transport in ZeroMQ
            else Config(),
        )
        executor.preprocess(nb, {"metadata": {"path": str(path.parent.resolve())}})
    parts = []
    for cell in nb.cells:
        if not utils.is_grade(cell):
            continue
        meta = cell.metadata["nbgrader"]
        if utils.is_solution(cell):
            continue  # manually graded answers: nothing to check automatically
        passed, lines = judge_cell(cell, seed=0, near=path.parent.resolve())
        parts.append(PartResult(meta.get("grade_id", "?"), float(meta.get("points", 0)), passed, readable(cell, lines)))
    return parts


def repaired(path: str | os.PathLike) -> tuple[nbformat.NotebookNode | None, list[str]]:
    """(the notebook as the grader will read it, a warning per damage it repairs): split, duplicated or re-typed
    cells, an old nbformat, a truncated or non-UTF-8 file... (:mod:`llmcourse.grading.repair`). The release is
    the repository's when this runs in one, else the notebook's own nbgrader metadata stands in for it."""
    from .course import find_repo
    from .repair import check_before_submitting

    try:
        repo = find_repo(Path(path).resolve().parent)
    except Exception:  # a student's machine: no repository
        repo = None
    return check_before_submitting(Path(path), repo)


def damage_warnings(path: str | os.PathLike) -> list[str]:
    """``llmcourse validate``'s warnings about a damaged notebook, before the student submits it."""
    return repaired(path)[1]


def readable(cell, lines: list[str]) -> list[str]:
    """judge_cell's report lines, said once and in a student's words (see the module docstring)."""
    errors = [o.get("ename", "") for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    out = []
    for line in lines:
        if STUB in errors and NOT_RUN in line:
            name = line.split(" ", 2)[1]  # "FAIL attention.softmax (visible cases): ..."
            line = f"FAIL {name}: not answered yet (the code it checks still raises {STUB})"
        elif line == f"the cell raised {STUB}":
            continue  # said above, per check
        elif line.startswith("the cell raised CheckFailed") and any(
            l.startswith("FAIL ") and NOT_RUN not in l for l in lines
        ):
            continue  # the kernel's copy of the trusted report above
        out.append(line)
    return out
