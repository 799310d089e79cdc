"""generate (grading/release.py): solutions/ is the source of truth, and nothing an instructor edits is lost.

formgrader links each assignment to the course's source/ folder, which ``llmcourse generate`` rewrites
from solutions/. An edit made there is moved aside, with a message, never overwritten silently.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from llmcourse.grading.course import Course
from llmcourse.grading.release import generate

REPO = Path(__file__).resolve().parents[2]
ASSIGNMENT = "04_attention"


def test_an_edit_in_the_course_source_folder_is_kept_aside_with_a_warning(tmp_path, capsys):
    course = Course.open(tmp_path / "course", repo=REPO)
    generate(course, ASSIGNMENT, update_repo=False)
    source = course.root / "source" / ASSIGNMENT
    notebook = next(source.glob("*.ipynb"))

    generate(course, ASSIGNMENT, update_repo=False)  # nothing edited: replaced quietly, nothing kept aside
    assert "was edited" not in capsys.readouterr().err
    assert not list(source.parent.glob(f"{ASSIGNMENT}.edited-*"))

    nb = nbformat.read(notebook, as_version=4)
    nb.cells[0].source += "\n\nAn instructor's note, typed in formgrader."
    nbformat.write(nb, notebook)
    generate(course, ASSIGNMENT, update_repo=False)

    err = capsys.readouterr().err
    kept = source.parent / f"{ASSIGNMENT}.edited-1"
    assert "was edited" in err and str(kept) in err and f"solutions/{ASSIGNMENT}" in err
    assert "An instructor's note" in (kept / notebook.name).read_text()
    assert "An instructor's note" not in notebook.read_text()  # source/ is solutions/ again
