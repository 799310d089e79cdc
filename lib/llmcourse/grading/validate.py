"""Students' self-check: run a notebook top to bottom and judge each graded part as the grader does.

Unlike ``nbgrader validate`` (which exits 0 even when validation fails) every part is reported and the
caller (``llmcourse validate``) exits non-zero on a failure. It runs the student's own kernel on their
own notebook: no course directory and no repository are needed.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import nbformat

from .course import PipelineError


@dataclasses.dataclass
class PartResult:
    grade_id: str
    points: float
    passed: bool
    lines: list


def validate(notebook: str | os.PathLike, timeout: int = 120) -> list[PartResult]:
    """Run a student's notebook top to bottom and judge each graded part the way the grader does."""
    from nbgrader import utils

    from .preprocessors import GradingExecute, judge_cell

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
    executor = GradingExecute(
        timeout=timeout, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"), run_trailing_cells=True
    )  # students see their whole notebook run
    executor.preprocess(nb, {"metadata": {"path": str(path.parent.resolve())}})
    parts = []
    for cell in nb.cells:
        if not utils.is_grade(cell):
            continue
        meta = cell.metadata["nbgrader"]
        if utils.is_solution(cell):
            continue  # manually graded answers: nothing to check automatically
        passed, lines = judge_cell(cell, seed=0, near=path.parent.resolve())
        parts.append(PartResult(meta.get("grade_id", "?"), float(meta.get("points", 0)), passed, lines))
    return parts
