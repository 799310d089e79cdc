"""Assignment 01, part 7 (issue 12): training merges incrementally, graded for the same merges and for
speed, through the real grading path (``llmcourse autograde``: the sandboxed kernel, TrustedChecks).

Speed is a ratio measured in the grading kernel: the student's trainer against a trainer that recounts
every merge, on the same text, one after the other (``checks/tokenization.py``); the trusted grader
compares the ratio, capped at 5, with the reference's. No test here asserts a time. What must hold:

- the incremental solution earns the part;
- part 3's algorithm (recount every pair after every merge), handed in as part 7, gives the very same
  merges and still earns nothing, and the report says why (how many times faster it was);
- freezing ``time.perf_counter`` and ``time.monotonic`` in the notebook changes nothing: the checks read
  a clock of their own.

Every other part of the three submissions is the solution's and keeps its points.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import batch_workers, make_submission, manifest, run_cli, solution_code

A, NB = "01_tokenization", "tokenization"
PART = "test_train_merges_incremental"
NAIVE = '''def train_merges_incremental(text, vocab_size, pattern=GPT4_SPLIT_PATTERN):
    """Part 3's trainer, as it is: every pair of the whole text recounted after every merge."""
    return train_merges(text, vocab_size, pattern)
'''
FROZEN_CLOCK = (
    "import time\n\n"
    "time.perf_counter = lambda: 0.0  # every timing in the notebook would read 0 s\n"
    "time.monotonic = lambda: 0.0\n"
    "time.time = lambda: 0.0\n\n"
) + NAIVE


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("incremental")
    subs, course = tmp / "subs", tmp / "course"
    good = solution_code(A, NB)
    for student, part7 in {"incremental": good["train_merges_incremental"], "naive": NAIVE,
                           "naive_frozen_clock": FROZEN_CLOCK}.items():  # fmt: skip
        make_submission(subs, student, A, NB, {**good, "train_merges_incremental": part7})
    run_cli("autograde", A, "--submissions", str(subs), *batch_workers(), course_dir=course)
    rows = json.loads((course / "reports" / f"{A}.json").read_text())
    return {r["student"]: r for r in rows} | {"course": course}


def trusted_report(course, student: str) -> str:
    """What the grader process wrote into the part's test cell (TrustedChecks), as text."""
    nb = nbformat.read(course / "autograded" / student / A / f"{NB}.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == PART)
    return "\n".join(line for out in cell.outputs for line in out.get("traceback", []) + [out.get("text", "")])


def part_scores(row: dict) -> dict[str, float]:
    assert row["status"] == "graded", row["messages"]
    return {key: score for key, (score, _) in row["parts"].items()}


def expected(part7: float) -> dict[str, float]:
    m = manifest(A)
    out = {part.key: 0.0 for part in m.manual}  # written answers: left as released, nothing to grade
    out.update({part.key: part.points for part in m.parts_of(NB)})
    key = next(part.key for part in m.parts_of(NB) if part.grade_id == PART)
    out[key] = part7
    return out


def test_the_incremental_trainer_earns_the_part(report):
    assert part_scores(report["incremental"]) == expected(part7=3.0)
    assert "PASS tokenization.train_merges_incremental: all 6 hidden cases" in trusted_report(
        report["course"], "incremental"
    )


@pytest.mark.parametrize("student", ["naive", "naive_frozen_clock"])
def test_recounting_every_merge_gives_the_same_merges_and_earns_nothing(report, student):
    assert part_scores(report[student]) == expected(part7=0.0)
    text = trusted_report(report["course"], student)
    # only the timed cases fail, and in them the merges (compared first) were equal: the speed is what failed
    assert "1 of 4 visible cases differ" in text and "1 of 6 hidden cases differ" in text, text
    visible = text.split("  - case 4 (", 1)[1].split("FAIL ", 1)[0]  # the one failing visible case, as reported
    assert "timed" in visible.split("\n")[0]
    assert "output['times faster than recounting every merge (5 needed)']: expected 5.0, got " in visible
    hidden = text.split("  - hidden case 6 (", 1)[1]
    assert "timed" in hidden.split("\n")[0] and "output[some key]" in hidden  # no hidden values shown
