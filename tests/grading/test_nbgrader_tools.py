"""nbgrader's own tools on our course. The `nbgrader` command and the formgrader (in a real Jupyter
server) read the repository's root nbgrader_config.py and must grade exactly as `llmcourse autograde`
does: the sandboxed grading kernel, the answer key blocked, checks decided in the grader process.
Expected scores come from the assignment's point table."""

from __future__ import annotations

import subprocess

import pytest
from conftest import BIN, REPO, formgrader, gradebook_scores, instructor_env, make_submission, run_cli, solution_code

A, NB = "01_tokenization", "tokenization"
FULL, DECODE, ENCODE = 18.0, 2.0, 3.0
CHANGES = {
    "solution": {},
    "wrong_decode": {"decode": "def decode(ids, vocab):\n    return ''\n"},
    "import_reference": {"encode": "from llmcourse.tokenization import encode\n"},  # the answer key: blocked
}
EXPECTED = {"solution": FULL, "wrong_decode": FULL - DECODE, "import_reference": FULL - ENCODE}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """A course directory inside the folder a Jupyter server will serve (formgrader requires that)."""
    served = tmp_path_factory.mktemp("served")
    course = served / "course"
    run_cli("generate", A, "--no-update-repo", course_dir=course)
    good = solution_code(A, NB)
    for student, changes in CHANGES.items():
        make_submission(course / "submitted", student, A, NB, {**good, **changes})
    return course


def test_the_nbgrader_command_grades_like_llmcourse(course):
    proc = subprocess.run(
        [str(BIN / "nbgrader"), "autograde", A, "--force"],
        cwd=REPO,
        env=instructor_env(course),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert gradebook_scores(course) == EXPECTED
    graded = (course / "autograded" / "import_reference" / A / f"{NB}.ipynb").read_text()
    assert "is the reference solution for this assignment and is not available while grading" in graded


def test_the_formgrader_grades_like_llmcourse(course, tmp_path):
    """Autograde one submission through formgrader's REST API, as its "autograde" button does."""
    good = solution_code(A, NB)
    make_submission(course / "submitted", "eve_formgrader", A, NB, {**good, **CHANGES["import_reference"]})
    with formgrader(course, tmp_path / "server.log") as call:
        assert A in [a["name"] for a in call("/formgrader/api/assignments")]
        result = call(f"/formgrader/api/submission/{A}/eve_formgrader/autograde", method="POST", timeout=600)
        assert result["success"], result.get("log", "")[-3000:]
        # the grading kernel is never offered in the launcher: in it, visible tests print no PASS or FAIL
        assert "llmcourse-grading" not in call("/api/kernelspecs")["kernelspecs"]
    assert gradebook_scores(course)["eve_formgrader"] == FULL - ENCODE
