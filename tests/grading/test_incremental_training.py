"""Assignment 01, part 7 (issue 12): training merges incrementally, graded for the same merges and for
speed, through the real grading path (``llmcourse autograde``: the sandboxed kernel, TrustedChecks).

Speed is a ratio: the student's trainer against a trainer that recounts every merge, on the same text.
When graded, the grader measures it itself (``llmcourse.grading.timing``): it sends a cell that calls the
student's trainer on a slice of Shakespeare it drew, reads its own clock around that cell, checks the
merges and runs the baseline in its own process. No test here asserts a time. What must hold:

- the incremental solution earns the part;
- part 3's algorithm (recount every pair after every merge), handed in as part 7, gives the very same
  merges and still earns nothing, and the report says why (how many times faster it was);
- and so do four ways of faking the speed, each of which earned the part when the kernel timed itself:
  freezing ``time.perf_counter`` and friends, wrapping the slow trainer in ``functools.cache`` (the
  kernel timed it a second time on the same text), rewriting the check so that its record claims 5x, and
  keeping every core busy while the baseline runs (the grader counts the baseline's CPU seconds).

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
MEMOIZED = ("import functools\n\n\n@functools.cache  # a timed run on a text seen before costs nothing\n") + NAIVE
CLAIMS_SPEED = (
    NAIVE
    + """

import llmcourse.checks.tokenization as _t
from llmcourse.checks.checker import get_spec as _get_spec


def _claim(train, *, text, vocab_size, pattern, timed=False):
    merges = train(text, vocab_size, pattern)
    return {"merges": merges, _t.SPEED_KEY: 5.0} if timed else merges


object.__setattr__(_get_spec("tokenization.train_merges_incremental"), "adapter", _claim)
"""
)
# Two processes that spin for at most 60 s: inside the grading sandbox they share the machine's cores with
# the grader, and they die with the kernel (its PID namespace) when the notebook is done.
BURNS_CORES = (
    NAIVE
    + """

import subprocess as _sp
import sys as _sys

_burners = [
    _sp.Popen([_sys.executable, "-c", "import time\\nt = time.time()\\nwhile time.time() - t < 60: pass"])
    for _ in range(2)
]
"""
)
SLOW = {
    "naive": NAIVE,
    "naive_frozen_clock": FROZEN_CLOCK,
    "naive_memoized": MEMOIZED,
    "naive_claims_speed": CLAIMS_SPEED,
    "naive_burns_cores": BURNS_CORES,
}


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("incremental")
    subs, course = tmp / "subs", tmp / "course"
    good = solution_code(A, NB)
    for student, part7 in {"incremental": good["train_merges_incremental"], **SLOW}.items():
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
    text = trusted_report(report["course"], "incremental")
    assert "PASS tokenization.train_merges_incremental: all 6 hidden cases" in text
    assert "speed, measured by the grader on a text of its own: 5 times as fast as the baseline" in text


@pytest.mark.parametrize("student", list(SLOW))
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
    # the grader's own measurement, on its own text: the same algorithm as the baseline (about 1x) misses 5x
    measured = text.split("speed, measured by the grader on a text of its own: ", 1)[1].split(" times as fast")[0]
    assert float(measured) < 5, text
