"""Written questions: nbgrader's manually graded answer cells, end to end.

Assignments 01, 04 and 05 ask written questions (markdown answer cells with nbgrader metadata
``solution=True, grade=True, points``; the rubric lives in the solution notebook only). Autograding
must leave an answered question waiting for a person: no automatic score, ``needs_manual_grade`` set,
the autograded total unchanged (an answer cell left as released gets 0 from nbgrader, with nothing to
grade). Then an instructor grades through formgrader itself, in a real ``jupyter server`` started from
the repository (so with its ``nbgrader_config.py``): formgrader's REST API lists the submission's
manually graded cells, shows the student's answer without the rubric, takes a score
(``PUT /formgrader/api/grade/<id>``, what its manual-grading page sends) and both ``nbgrader export``
and ``llmcourse export`` then show the new total. The server grading runs on assignment 01; 04's and
05's questions go through the same cells and the same code (their autograded totals, with the
questions at 0, are checked by test_every_assignment.py).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import BIN, REPO, formgrader, instructor_env, make_submission, run_cli, solution_code

A, NB = "01_tokenization", "tokenization"
QUESTIONS = {"question_utf8": 2.0, "question_decode": 2.0, "question_special": 1.0}  # grade_id -> points
AUTOGRADED = 18.0  # the test cells' points: parts 1-7
STUDENT = "wanda"
ANSWERS = {  # the student answers two of the three questions
    "question_utf8": "UTF-8 keeps ASCII at one byte per character: 'hello' is 5 bytes, 10 in UTF-16, 20 in UTF-32.",
    "question_decode": "An emoji is 4 bytes split over 3 tokens; decoded one by one each gives U+FFFD. Buffer bytes.",
}
pytestmark = pytest.mark.xdist_group("batch-manual-grading")
# every assignment's written questions: (assignment, notebook) -> grade_id -> points
WRITTEN = {
    (A, NB): QUESTIONS,
    ("04_attention", "attention"): {"question_memory": 2.0, "question_scale": 1.0},
    ("05_transformer", "transformer"): {"question_prenorm": 1.0, "question_flops": 2.0},
}


def manual_cells(path: Path) -> dict[str, nbformat.NotebookNode]:
    out = {}
    for cell in nbformat.read(path, as_version=4).cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade") and meta.get("solution"):
            out[meta["grade_id"]] = cell
    return out


@pytest.mark.parametrize("assignment, notebook", sorted(WRITTEN))
def test_the_questions_are_manually_graded_cells_with_a_rubric_in_the_solution_only(assignment, notebook):
    source = manual_cells(REPO / "solutions" / assignment / f"{notebook}.ipynb")
    release = manual_cells(REPO / "assignments" / assignment / f"{notebook}.ipynb")
    assert {k: float(c.metadata["nbgrader"]["points"]) for k, c in source.items()} == WRITTEN[assignment, notebook]
    for grade_id, cell in source.items():
        assert cell.cell_type == "markdown" and "Rubric" in cell.source, grade_id
        assert release[grade_id].cell_type == "markdown"
        assert release[grade_id].source.strip() == "YOUR ANSWER HERE", grade_id  # no rubric handed out
    # each answer cell follows its question, a locked markdown cell the student cannot edit
    cells = nbformat.read(REPO / "assignments" / assignment / f"{notebook}.ipynb", as_version=4).cells
    for i, cell in enumerate(cells):
        if cell.metadata.get("nbgrader", {}).get("grade_id") in source:
            question = cells[i - 1]
            assert question.cell_type == "markdown" and question.metadata["nbgrader"]["locked"], i
            assert "(written, " in question.source


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("manual")
    course, subs = tmp / "course", tmp / "subs"
    make_submission(subs, STUDENT, A, NB, {**solution_code(A, NB), **ANSWERS})
    run_cli("autograde", A, "--submissions", str(subs), course_dir=course)
    return course


def gradebook(course: Path):
    from nbgrader.api import Gradebook

    # the gradebook runs alembic from the venv's bin/ (design.md, section 6)
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    return Gradebook(f"sqlite:///{course / 'gradebook.db'}")


def exported(course: Path) -> dict[str, str]:
    out = course / "grades.csv"
    run_cli("export", "--out", str(out), course_dir=course)
    rows = [r for r in csv.DictReader(out.read_text().splitlines()) if r["student_id"] == STUDENT]
    assert len(rows) == 1, rows
    return rows[0]


def test_autograde_leaves_written_answers_to_a_person(course):
    report = {r["student"]: r for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    assert report[STUDENT]["status"] == "graded", report[STUDENT]["messages"]
    assert report[STUDENT]["score"] == AUTOGRADED  # the written answers add nothing yet
    with gradebook(course) as gb:
        submission = gb.find_submission(A, STUDENT)
        assert submission.needs_manual_grade
        assert submission.max_score == AUTOGRADED + sum(QUESTIONS.values())
        for grade_id, points in QUESTIONS.items():
            grade = gb.find_grade(grade_id, NB, A, STUDENT)
            assert grade.max_score == points
            assert grade.manual_score is None, grade_id
            if grade_id in ANSWERS:  # answered: a person decides
                assert grade.needs_manual_grade and grade.auto_score is None, grade_id
            else:  # left as released: nothing to grade, 0
                assert not grade.needs_manual_grade and grade.auto_score == 0.0, grade_id
        autograded = [g for g in gb.find_submission_notebook(NB, A, STUDENT).grades if g.name not in QUESTIONS]
        assert not any(g.needs_manual_grade for g in autograded)  # every test cell was decided
    row = exported(course)
    assert float(row["score"]) == AUTOGRADED
    assert float(row["max_score"]) == AUTOGRADED + sum(QUESTIONS.values())


def nbgrader_exported(course: Path) -> dict[str, str]:
    """``nbgrader export`` itself, from the repository (its nbgrader_config.py), into a file of ours."""
    out = course / "nbgrader_grades.csv"
    env = instructor_env(course)
    proc = subprocess.run(
        [str(BIN / "nbgrader"), "export", f"--to={out}"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [r for r in csv.DictReader(out.read_text().splitlines()) if r["student_id"] == STUDENT]
    assert len(rows) == 1, rows
    return rows[0]


def test_an_instructor_grades_a_written_answer_in_formgrader(course, tmp_path):
    with formgrader(course, tmp_path / "server.log") as call:
        submissions = call(f"/formgrader/api/submitted_notebooks/{A}/{NB}")
        mine = next(s for s in submissions if s["student"] == STUDENT)
        assert mine["needs_manual_grade"] and mine["score"] == AUTOGRADED
        grades = {g["name"]: g for g in call(f"/formgrader/api/grades?submission_id={mine['id']}")}
        waiting = {name for name, g in grades.items() if g["needs_manual_grade"]}
        assert waiting == set(ANSWERS)  # the answered questions, and nothing autograded
        assert all(grades[q]["max_score"] == points for q, points in QUESTIONS.items())
        # the page an instructor grades on shows the student's answers, never the rubric
        page = call(f"/formgrader/submissions/{mine['id']}/")
        assert all(answer.split(":")[0] in page for answer in ANSWERS.values())
        assert "Rubric" not in page
        # what formgrader's manual-grading page sends when the instructor types 1.5
        graded = call(f"/formgrader/api/grade/{grades['question_utf8']['id']}", "PUT", {"manual_score": 1.5})
        assert graded["manual_score"] == 1.5 and not graded["needs_manual_grade"]
        mine = next(s for s in call(f"/formgrader/api/submitted_notebooks/{A}/{NB}") if s["student"] == STUDENT)
        assert mine["score"] == AUTOGRADED + 1.5
        assert mine["needs_manual_grade"]  # question_decode still waits for a person
    with gradebook(course) as gb:
        assert gb.find_grade("question_utf8", NB, A, STUDENT).score == 1.5
    for row in (exported(course), nbgrader_exported(course)):
        assert float(row["score"]) == AUTOGRADED + 1.5
        assert float(row["max_score"]) == AUTOGRADED + sum(QUESTIONS.values())


def test_the_student_answer_is_what_the_instructor_grades(course):
    """formgrader shows the autograded notebook: the student's own answer is in it, the rubric is not."""
    graded = manual_cells(course / "autograded" / STUDENT / A / f"{NB}.ipynb")
    assert {k: graded[k].source for k in ANSWERS} == ANSWERS
    assert all("Rubric" not in cell.source for cell in graded.values())
