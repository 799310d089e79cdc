"""The grader's reading of an answer for "write it yourself" calls (grading/write_yourself.py), without
grading: which cells make up a part's answer, that honest solutions are never caught, and what the grader
makes of a check's record of what ran (findings, and records it cannot trust). The attacks
graded through the CLI are in test_every_assignment.py (the 04 and 05 batches)."""

from __future__ import annotations

import nbformat
import pytest
from conftest import REPO, manifest
from llmcourse.grading.assignment import Check
from llmcourse.grading.write_yourself import (
    answer_cells,
    bound_names,
    notebook_code,
    part_findings,
    runtime_findings,
)

ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
SOFTMAX = [Check("attention.softmax", True, "softmax")]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_honest_solutions_use_no_forbidden_call(assignment):
    m = manifest(assignment)
    for notebook in m.notebooks:
        nb = nbformat.read(REPO / "solutions" / assignment / f"{notebook}.ipynb", as_version=4)
        solutions, aliases = notebook_code(nb)
        for part in m.parts_of(notebook):
            assert part_findings(part.checks, solutions, aliases) == [], part.key


def test_the_answer_is_the_cells_binding_the_target_and_the_helpers_they_use():
    solutions = {
        "helpers": "def _shift(x):\n    return x - x.amax(-1, keepdim=True)\n",
        "softmax": "def softmax(x, dim=-1):\n    e = _shift(x).exp()\n    return e / e.sum(dim, keepdim=True)\n",
        "other": "import torch\nx = 1\n\ndef unrelated(e):\n    return torch.softmax(e, -1)\n",
    }
    assert answer_cells(solutions, "softmax") == {k: solutions[k] for k in ("softmax", "helpers")}
    # names local to a function are not the notebook's: the parameter `x` does not pull in `x = 1`
    assert bound_names(solutions["softmax"]) == {"softmax"}
    assert part_findings(SOFTMAX, solutions, {}) == []


@pytest.mark.parametrize(
    ("solutions", "name", "line"),
    [
        ({"softmax": "def softmax(x, dim=-1):\n    return torch.softmax(x, dim).nan_to_num(0)\n"}, "torch.softmax", 2),
        ({"softmax": "import torch as T\nsoftmax = getattr(T, 'soft' + 'max')\n"}, "torch.softmax", 2),
        # the helper that calls the built-in lives in another cell
        (
            {
                "a": "def _norm(x):\n    return x.softmax(-1)\n",
                "softmax": "def softmax(x, dim=-1):\n    return _norm(x)\n",
            },
            "torch.Tensor.softmax",
            2,
        ),
        # the alias comes from another cell
        (
            {
                "setup": "import torch.nn.functional as G\n",
                "softmax": "def softmax(x, dim=-1):\n    return G.softmax(x, dim)\n",
            },
            "torch.nn.functional.softmax",
            2,
        ),
    ],
)
def test_built_ins_are_found_wherever_the_answer_puts_them(solutions, name, line):
    nb = nbformat.v4.new_notebook()
    for gid, source in solutions.items():
        nb.cells.append(nbformat.v4.new_code_cell(source, metadata={"nbgrader": {"solution": True, "grade_id": gid}}))
    found = part_findings(SOFTMAX, *notebook_code(nb))
    assert len(found) == 1 and f"uses {name}, which this part asks you to write yourself" in found[0], found
    assert f"line {line}:" in found[0]


def test_allowed_calls_stay_allowed():
    solutions = {"softmax": "def softmax(x, dim=-1):\n    e = torch.exp(x - x.max())\n    return e / e.sum(dim)\n"}
    assert part_findings(SOFTMAX, solutions, {}) == []


def _record(fn, name="attention.softmax", hidden=True) -> dict:
    """A check's record as a kernel emits it, with what ``fn`` ran on the check's cases."""
    from llmcourse.checks.checker import get_spec, run_cases
    from llmcourse.checks.dispatch import Recorder

    spec = get_spec(name)
    with Recorder() as recorder:
        results = run_cases(fn, spec.cases(hidden, 0), spec)
    return {"check": name, "hidden": hidden, "results": results, **recorder.record()}


def test_the_grader_reads_what_ran_from_the_record():
    import codecs

    import torch

    def rot13(x, dim=-1):
        return getattr(torch, codecs.decode("fbsgznk", "rot13"))(x, dim).nan_to_num(0)

    def honest(x, dim=-1):
        e = (x - x.amax(dim, keepdim=True)).exp()
        return e / e.sum(dim, keepdim=True)

    findings, problems = runtime_findings(SOFTMAX, [_record(rot13)])
    assert problems == [] and len(findings) == 1
    assert findings[0].startswith("softmax dispatched aten._softmax while the checks ran")
    assert "which this part asks you to write yourself" in findings[0]
    assert runtime_findings(SOFTMAX, [_record(honest)]) == ([], [])
    # only the records of the cell's own checks, hidden or not as the call says
    assert runtime_findings(SOFTMAX, [_record(rot13, hidden=False)]) == ([], [])
    assert runtime_findings([Check("attention.split_heads", True, "split_heads")], [_record(rot13)]) == ([], [])


def test_a_record_of_what_ran_that_was_emptied_or_stripped_fails():
    import torch

    record = _record(lambda x, dim=-1: torch.softmax(x, dim))
    for forged in ({**record, "ops": []}, {k: v for k, v in record.items() if k != "ops"}, {**record, "calls": []}):
        findings, problems = runtime_findings(SOFTMAX, [forged])
        assert findings == [] and len(problems) == 1 and "the part earns nothing" in problems[0], forged.keys()
    _, problems = runtime_findings(SOFTMAX, [{**record, "intact": False}])
    assert "switched off" in problems[0]
