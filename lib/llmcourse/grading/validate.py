"""Students' self-check: run a notebook top to bottom and judge each graded part as the grader does.

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
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as e:
        raise PipelineError(
            f"{path} is not a valid notebook ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
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
