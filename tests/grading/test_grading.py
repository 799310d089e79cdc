"""End to end through the CLI: generate, autograde a small class, feedback, export.

The honest paths of a small class (the attack corpus is in test_attacks.py). A broken file in the same
batch shows that one bad submission never stops it. Expected scores come from the assignment's point
table, not from a run.
"""

from __future__ import annotations

import csv
import html
import json
import re

import pytest
from conftest import REPO, batch_workers, make_submission, run_cli, solution_code

A, NB = "01_tokenization", "tokenization"
POINTS = {
    "test_get_stats": 2,
    "test_merge": 2,
    "test_train_merges": 3,
    "test_decode": 2,
    "test_encode": 3,
    "test_gpt4_tokenizer": 3,
    "test_train_merges_incremental": 3,
}
FULL = sum(POINTS.values())
WRITTEN = 5  # three written answers (2 + 2 + 1 points), graded by hand in formgrader

WRONG_DECODE_AND_LEAK = """
def decode(ids, vocab):
    print("LE" + "AK", ids, vocab.get(1000))   # what a student's own code prints must not reach feedback
    return b"".join(vocab[i] for i in ids).decode("utf-8")   # no errors="replace"
"""


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class")
    subs, course = tmp / "submissions", tmp / "course"
    good = solution_code(A, NB)
    students = {
        "alice_solution": {},
        "bob_release": None,
        "carol_wrong_decode": {"decode": WRONG_DECODE_AND_LEAK},
    }
    for student, changes in students.items():
        answers = {} if changes is None else {**good, **changes}
        make_submission(subs, student, A, NB, answers)
    # Extra files are ignored (and reported); a notebook of another assignment is refused clearly.
    make_submission(subs, "dan_extra_files", A, NB, good)
    (subs / "dan_extra_files" / A / "scratch.txt").write_text("notes")
    other = make_submission(tmp / "other", "eve", "04_attention", "attention", {})
    (subs / "eve_wrong_assignment" / A).mkdir(parents=True)
    (subs / "eve_wrong_assignment" / A / f"{NB}.ipynb").write_bytes(other.read_bytes())
    # A file that is not a notebook must not stop the batch.
    bad = subs / "zed_not_json" / A / f"{NB}.ipynb"
    bad.parent.mkdir(parents=True)
    bad.write_text("{ this is not json")

    run_cli("generate", A, "--no-update-repo", course_dir=course)
    out = run_cli("autograde", A, "--submissions", str(subs), *batch_workers(), course_dir=course)
    report = {r["student"]: r for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    return {"course": course, "report": report, "stdout": out.stdout, "subs": subs}


def parts(report_row) -> dict[str, float]:
    """The autograded parts' scores."""
    return {k.split(":")[1]: v[0] for k, v in report_row["parts"].items() if k.split(":")[1] in POINTS}


def written(report_row) -> dict[str, float]:
    """The written answers' scores: 0 until an instructor grades them in formgrader."""
    return {k.split(":")[1]: v[0] for k, v in report_row["parts"].items() if k.split(":")[1] not in POINTS}


def test_solution_scores_full_marks(graded):
    row = graded["report"]["alice_solution"]
    assert row["status"] == "graded"
    assert row["score"] == FULL and row["max_score"] == FULL + WRITTEN
    assert parts(row) == POINTS
    assert written(row) == {"question_utf8": 0.0, "question_decode": 0.0, "question_special": 0.0}


def test_untouched_release_scores_zero_everywhere(graded):
    row = graded["report"]["bob_release"]
    assert row["status"] == "graded"
    assert row["score"] == 0
    assert set(parts(row).values()) == {0.0}


def test_one_wrong_part_loses_exactly_its_points(graded):
    row = graded["report"]["carol_wrong_decode"]
    assert parts(row) == {**POINTS, "test_decode": 0}
    assert row["score"] == FULL - POINTS["test_decode"]


def test_broken_notebook_gets_a_clear_message_and_the_batch_goes_on(graded):
    row = graded["report"]["zed_not_json"]
    assert row["status"] == "error"
    assert "not a valid notebook" in " ".join(row["messages"])
    assert graded["report"]["alice_solution"]["score"] == FULL  # graded in the same batch


def test_feedback_hides_hidden_tests_and_inputs(graded):
    course = graded["course"]
    run_cli("feedback", A, course_dir=course)
    pages = sorted((course / "feedback").glob(f"*/{A}/{NB}.html"))
    assert len(pages) == sum(r["status"] == "graded" for r in graded["report"].values())  # every graded student
    hidden_inputs = ["outrageous fortune", "no specials here", "مرحبا", "aaaaaaaaaaaa"]
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))
        assert "BEGIN HIDDEN" not in text and "hidden=True" not in text, page
        for secret in hidden_inputs:
            assert secret not in text, (page, secret)
    carol = html.unescape((course / "feedback" / "carol_wrong_decode" / A / f"{NB}.html").read_text())
    assert "FAIL tokenization.decode" in carol  # says which check failed ...
    assert "incomplete UTF-8" in carol  # ... on which visible case ...
    assert "hidden case" in carol and "raised UnicodeDecodeError" in carol  # ... and hidden ones, generically
    assert "LEAK" not in carol  # nothing the student's code printed


def test_extra_files_and_wrong_notebooks_get_clear_messages(graded):
    dan = graded["report"]["dan_extra_files"]
    assert dan["score"] == FULL and any("extra files ignored: scratch.txt" in m for m in dan["messages"])
    eve = graded["report"]["eve_wrong_assignment"]
    assert eve["status"] == "error" and eve["score"] == 0
    assert any("does not belong to 01_tokenization" in m for m in eve["messages"])


def test_export_csv_has_every_student(graded):
    out = graded["course"] / "grades.csv"
    run_cli("export", "--out", str(out), course_dir=graded["course"])
    rows = {r["student_id"]: r for r in csv.DictReader(out.open())}
    assert float(rows["alice_solution"]["score"]) == FULL
    assert float(rows["bob_release"]["score"]) == 0
    assert set(graded["report"]) <= set(rows)


def test_regrading_skips_what_is_done(graded):
    out = run_cli("autograde", A, "--student", "alice_solution", course_dir=graded["course"])
    assert "skipped" in out.stdout
    report = json.loads((graded["course"] / "reports" / f"{A}.json").read_text())
    assert report[0]["score"] == FULL


def _last_code_cell(course, student):
    import nbformat

    nb = nbformat.read(course / "autograded" / student / A / f"{NB}.ipynb", as_version=4)
    return [c for c in nb.cells if c.cell_type == "code"][-1]


def test_cells_after_the_last_graded_cell_are_not_run_unless_asked(graded):
    course = graded["course"]
    demo = _last_code_cell(course, "alice_solution")  # the ungraded Shakespeare demo
    assert demo.execution_count is None
    assert "not run while grading" in demo.outputs[0]["text"]
    run_cli("autograde", A, "--student", "alice_solution", "--force", "--run-all-cells", course_dir=course)
    demo = _last_code_cell(course, "alice_solution")
    assert demo.execution_count is not None
    assert any("first merges" in o.get("text", "") for o in demo.outputs)  # the demo ran
    report = {r["student"]: r for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    assert report["alice_solution"]["score"] == FULL


def test_autograde_regenerates_only_when_the_source_changed(tmp_path):
    """A grading run regenerates the assignment (seconds) only when solutions/ or the gradebook changed."""
    import shutil

    import nbformat
    from llmcourse.grading.course import Course
    from llmcourse.grading.release import ensure_generated

    repo = tmp_path / "repo"
    shutil.copytree(REPO / "solutions" / A, repo / "solutions" / A)
    shutil.copytree(REPO / "autograder", repo / "autograder")
    course = Course.open(tmp_path / "course", repo=repo)
    release = course.root / "release" / A / f"{NB}.ipynb"
    ensure_generated(course, A)
    first = release.stat().st_mtime_ns
    ensure_generated(course, A)
    assert release.stat().st_mtime_ns == first  # unchanged source: not regenerated
    source = repo / "solutions" / A / f"{NB}.ipynb"
    nb = nbformat.read(source, as_version=4)
    nb.cells[0].source += "\n\nA new sentence."
    nbformat.write(nb, source)
    ensure_generated(course, A)
    assert "A new sentence." in release.read_text()  # changed source: regenerated
    (course.root / "gradebook.db").unlink()
    second = release.stat().st_mtime_ns
    ensure_generated(course, A)
    assert release.stat().st_mtime_ns != second  # gradebook lost: regenerated
