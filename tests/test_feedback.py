"""Feedback for failing hidden tests, on every assignment: it says which check failed, and contains
neither hidden test source nor hidden inputs (nbgrader #917, #1363)."""
from __future__ import annotations

import html
import re

import nbformat
import pytest
import torch

from conftest import REPO, make_submission, run_cli
from llmcourse.checker import get_spec
from llmcourse.grading.preprocessors import expected_checks

ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())


def hidden_source_lines(nb) -> list[str]:
    lines, inside = [], False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if "### BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "### END HIDDEN TESTS" in line:
                inside = False
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


def hidden_inputs(nb) -> list[str]:
    """Text that would betray a hidden input: long strings, long id lists, leading tensor values."""
    found = []
    names = {name for c in nb.cells if c.cell_type == "code" for name, hidden in expected_checks(c.source) if hidden}
    for name in names:
        for case in get_spec(name).cases(True, 0):
            for arg in list(case.args) + list(case.kwargs.values()):
                if isinstance(arg, str) and len(arg) >= 8:
                    found.append(arg[:40])
                elif isinstance(arg, list) and len(arg) >= 6 and all(isinstance(x, int) for x in arg):
                    found.append(repr(arg)[:40])
                elif isinstance(arg, torch.Tensor) and arg.numel() >= 4 and arg.is_floating_point():
                    v = arg.flatten()[:2].tolist()
                    if all(abs(x) > 0.01 and abs(x) < 1e6 for x in v):  # as torch prints them: "0.1234, -1.5678"
                        found.append(f"{v[0]:.4f}, {v[1]:.4f}")
    return found


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_feedback_for_failing_hidden_tests_leaks_nothing(assignment, tmp_path):
    subs, course = tmp_path / "subs", tmp_path / "course"
    notebooks = sorted(p.stem for p in (REPO / "solutions" / assignment).glob("*.ipynb"))
    for nb in notebooks:
        make_submission(subs, "student", assignment, nb, {})  # the release: every check fails
    run_cli("autograde", assignment, "--submissions", str(subs), "--cell-timeout", "60", course_dir=course)
    run_cli("feedback", assignment, course_dir=course)
    for nb_name in notebooks:
        page = course / "feedback" / "student" / assignment / f"{nb_name}.html"
        text = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))
        source = nbformat.read(REPO / "solutions" / assignment / f"{nb_name}.ipynb", as_version=4)
        assert "FAIL" in text and "hidden case" in text  # it says what failed ...
        assert "BEGIN HIDDEN" not in text
        for line in hidden_source_lines(source):  # ... but not how it was tested
            assert line not in text, line
        for secret in hidden_inputs(source):      # ... nor on what
            assert secret not in text, secret
