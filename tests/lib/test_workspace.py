"""Students' copies in work/: made once, updated only while untouched, never overwritten once edited
(issue 10: a second ``make start`` used to erase every answer)."""

from __future__ import annotations

import shutil
import subprocess

import nbformat
import pytest
from conftest import REPO
from llmcourse.workspace import cells_hash, sync

LECTURE = "course/04_attention.ipynb"
ASSIGNMENT = "assignments/04_attention/attention.ipynb"


@pytest.fixture
def repo(tmp_path):
    """A copy of the course's notebooks standing in for a checkout that later gets `git pull`ed."""
    root = tmp_path / "repo"
    for folder in ("course", "assignments"):
        shutil.copytree(REPO / folder, root / folder)
    return root


def answer(path, text="def softmax(x, dim=-1):\n    return 'my answer'\n"):
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))
    cell.source = text
    nbformat.write(nb, path)
    return text


def upstream_edit(path, marker="A new paragraph from the instructor."):
    nb = nbformat.read(path, as_version=4)
    nb.cells.insert(0, nbformat.v4.new_markdown_cell(marker))
    nbformat.write(nb, path)


def test_first_sync_copies_every_lecture_and_assignment(repo):
    changes = sync(repo)
    copied = {c.path for c in changes if c.action == "new"}
    assert LECTURE in copied and ASSIGNMENT in copied
    assert (repo / "work" / ASSIGNMENT).read_bytes() == (repo / ASSIGNMENT).read_bytes()


def test_a_students_answers_survive_a_regenerated_release(repo):
    sync(repo)
    mine = answer(repo / "work" / ASSIGNMENT)
    upstream_edit(repo / ASSIGNMENT)  # the instructor regenerates / git pull brings a new release
    changes = {c.path: c for c in sync(repo)}
    assert changes[ASSIGNMENT].action == "kept" and ASSIGNMENT in changes[ASSIGNMENT].note
    nb = nbformat.read(repo / "work" / ASSIGNMENT, as_version=4)
    assert any(c.source == mine for c in nb.cells)
    assert {c.path: c.action for c in sync(repo)}[ASSIGNMENT] == "kept"  # and on every later run


def test_an_untouched_copy_is_updated_even_after_it_was_run(repo):
    sync(repo)
    work_lecture = repo / "work" / LECTURE
    nb = nbformat.read(work_lecture, as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    code.outputs = [nbformat.v4.new_output("stream", text="ran it\n")]  # running changes outputs only
    code.execution_count = 1
    nbformat.write(nb, work_lecture)
    upstream_edit(repo / LECTURE)
    assert {c.path: c.action for c in sync(repo)}[LECTURE] == "updated"
    assert cells_hash(work_lecture) == cells_hash(repo / LECTURE)


def test_new_notebooks_arrive_and_nothing_is_deleted(repo):
    sync(repo)
    extra = repo / "work" / "course" / "my_notes.ipynb"
    nbformat.write(nbformat.v4.new_notebook(), extra)
    shutil.copyfile(repo / LECTURE, repo / "course" / "99_new.ipynb")
    actions = {c.path: c.action for c in sync(repo)}
    assert actions["course/99_new.ipynb"] == "new"
    assert extra.exists()


def test_an_unreadable_student_notebook_is_never_overwritten(repo):
    sync(repo)
    (repo / "work" / ASSIGNMENT).write_text("{ half a notebook")
    upstream_edit(repo / ASSIGNMENT)
    assert {c.path: c.action for c in sync(repo)}[ASSIGNMENT] == "kept"  # and on every later run
    assert (repo / "work" / ASSIGNMENT).read_text() == "{ half a notebook"


def test_not_a_course_repository_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not the course repository"):
        sync(tmp_path)


def test_make_start_copies_into_work_and_never_regenerates():
    """`make start` = workspace + Lab in work/; regenerating releases is an instructor's command."""
    plan = subprocess.run(["make", "-n", "start"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert "llmcourse.workspace" in plan
    assert "generate" not in plan
    lab_line = next(line for line in plan.splitlines() if "jupyter lab" in line)
    assert "--notebook-dir=" + str(REPO / "work") in lab_line
    assert "-u MPLBACKEND" in lab_line and str(REPO / ".venv/bin") in lab_line
    assert "/work/" in (REPO / ".gitignore").read_text().split()
