"""Partial credit (grading/scoring.py) as nbgrader records it, and the grading seed kept out of the Config.

A test cell is built the way the grading kernel leaves it: the check records its outputs emitted (the
student's outputs on the spec's visible and hidden cases); TrustedChecks decides it in this process and
nbgrader's own ``determine_grade`` reads the score from the outputs, as ``SaveAutoGrades`` does.
"""

from __future__ import annotations

import json

import nbformat
import pytest
from llmcourse.checks.checker import MIME, RECORD_VERSION, get_spec, run_cases
from llmcourse.checks.dispatch import Recorder
from llmcourse.grading.course import Course
from llmcourse.grading.nbgrader_setup import tool_config
from llmcourse.grading.preprocessors import TrustedChecks
from llmcourse.grading.scoring import split_points
from nbgrader.utils import determine_grade

NAME = "attention.softmax"
SEED = 1618033988  # the course's secret in these tests: ten digits no other setting has
SOURCE = (
    f'check("{NAME}", softmax)\n### BEGIN HIDDEN TESTS\ncheck("{NAME}", softmax, hidden=True)\n### END HIDDEN TESTS'
)


def wrong(*args, **kwargs):
    raise RuntimeError("wrong on purpose")


def record(hidden: bool, fn) -> dict:
    """The record ``check()`` emits: the outputs, and (softmax is a write-it-yourself part) what ran."""
    spec = get_spec(NAME)
    assert spec.watched
    with Recorder() as recorder:
        results = run_cases(fn, spec.cases(hidden, SEED), spec)
    ran = recorder.record()
    return {
        "output_type": "display_data",
        "metadata": {},
        "data": {
            MIME: {"v": RECORD_VERSION, "check": NAME, "hidden": hidden, "results": results, **ran},
            "text/plain": "",
        },
    }


def graded_cell(tmp_path, visible_fn, hidden_fn, points=2, error: bool = False):
    """The test cell after TrustedChecks (seed read from the course's seed file), and nbgrader's grade of it."""
    right = get_spec(NAME).reference_fn()
    cell = nbformat.v4.new_code_cell(SOURCE, execution_count=3)
    cell.metadata["nbgrader"] = {
        "grade": True,
        "solution": False,
        "locked": True,
        "points": points,
        "grade_id": "test_softmax",
        "schema_version": 3,
    }
    outputs = [record(False, visible_fn or right), record(True, hidden_fn or right)]
    if error:
        outputs.append({"output_type": "error", "ename": "AssertionError", "evalue": "", "traceback": []})
    cell.outputs = [nbformat.from_dict(o) for o in outputs]
    nb = nbformat.v4.new_notebook(cells=[cell])
    (tmp_path / ".grading_seed").write_text(f"{SEED}\n")
    nb, _ = TrustedChecks(seed_file=str(tmp_path / ".grading_seed")).preprocess(nb, {})
    return nb.cells[0], determine_grade(nb.cells[0])


def text_of(cell) -> str:
    return "\n".join(o.get("text", "") + "\n".join(o.get("traceback", [])) for o in cell.outputs)


def test_all_checks_pass_earns_every_point(tmp_path):
    # the hidden cases are drawn from the seed in the file: with the trait's default seed (0) they differ
    cell, grade = graded_cell(tmp_path, None, None)
    assert grade == (2.0, 2.0)
    assert "PASS" in text_of(cell) and "PARTIAL" not in text_of(cell)


def test_right_on_visible_wrong_on_hidden_earns_the_visible_share_only(tmp_path):
    cell, grade = graded_cell(tmp_path, None, wrong, points=3)
    assert grade == (1.2, 3.0)  # 40 % of 3 points, the course's rule
    text = text_of(cell)
    assert "PARTIAL CREDIT: 1.2 of 3 points" in text and "the hidden share (1.8 points) is lost" in text
    assert "hidden case 1" in text and "raised RuntimeError" in text


def test_wrong_on_visible_earns_nothing_even_when_hidden_cases_pass(tmp_path):
    cell, grade = graded_cell(tmp_path, wrong, None)
    assert grade == (0, 2.0)
    assert cell.outputs[0].output_type == "error"


def test_an_error_in_the_cell_earns_nothing_even_when_every_check_passes(tmp_path):
    _, grade = graded_cell(tmp_path, None, None, error=True)
    assert grade == (0, 2.0)


def test_the_seed_is_read_from_the_seed_file(tmp_path):
    (tmp_path / ".grading_seed").write_text("7")  # another course's seed: other hidden random cases
    cell = nbformat.v4.new_code_cell(SOURCE, execution_count=1)
    cell.metadata["nbgrader"] = {"grade": True, "solution": False, "points": 2, "grade_id": "t", "schema_version": 3}
    right = get_spec(NAME).reference_fn()
    cell.outputs = [nbformat.from_dict(record(False, right)), nbformat.from_dict(record(True, right))]
    nb, _ = TrustedChecks(seed_file=str(tmp_path / ".grading_seed")).preprocess(
        nbformat.v4.new_notebook(cells=[cell]), {}
    )
    assert determine_grade(nb.cells[0]) == (0.8, 2.0)  # the hidden outputs answer seed SEED's cases, not 7's


@pytest.mark.parametrize("points", [1, 2, 3, 4, 5, 2.5, 10])
def test_the_two_shares_add_up_to_the_points(points):
    visible, hidden = split_points(points)
    assert visible == round(0.4 * points, 2) and visible + hidden == pytest.approx(points, abs=1e-9)
    assert split_points(points, has_hidden=False) == (points, 0.0)
    assert split_points(points, has_visible=False) == (0.0, points)


@pytest.mark.parametrize("bad", [-1, "3", True, None])
def test_split_points_rejects_what_is_not_points(bad):
    with pytest.raises(ValueError, match="points must be a number"):
        split_points(bad)


def test_the_seed_is_not_in_the_config_formgrader_shows(tmp_path):
    """Issue 10 item 7: formgrader's configuration panel displays the Config of tool_config."""
    (tmp_path / ".grading_seed").write_text(str(SEED))
    course = Course.open(tmp_path)
    config = tool_config(course)
    assert course.seed() == SEED
    shown = json.dumps(config, default=str)
    assert str(SEED) not in shown
    assert config.TrustedChecks.seed_file == str(tmp_path / ".grading_seed")
