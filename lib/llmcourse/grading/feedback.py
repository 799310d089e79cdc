"""After grading: HTML feedback per student, and every grade as CSV.

Feedback goes through nbgrader's ``generate_feedback`` with the preprocessors of
``autograder/nbgrader_config.py``: hidden tests cleared, a student's own outputs dropped, trusted check
reports kept, so it says which check failed and why without showing hidden source or inputs. A graded
folder that holds a link or a special file (it cannot, unless someone put one there by hand) gets no feedback:
nbgrader would copy what it points to.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .course import Course, PipelineError
from .nbgrader_setup import nbgrader_api, prepare_environment, run_nbgrader
from .safe_files import kind, unsafe_entries


def feedback(course: Course, assignment: str, students: list[str] | None = None) -> list[Path]:
    """HTML feedback per student: grades and trusted check reports, nothing hidden."""
    course.check_assignment(assignment)
    api = nbgrader_api(course)
    graded = course.root / "autograded"
    everyone = sorted(p.name for p in graded.iterdir() if (p / assignment).is_dir()) if graded.exists() else []
    paths = []
    for student in students or everyone:
        folder = graded / student / assignment
        odd = unsafe_entries(folder) if kind(folder) == "a folder" else [(assignment, kind(folder))]
        if odd:  # nbgrader would copy what they point to into the student's feedback
            print(f"feedback for {student} skipped: {odd[0][0]} in {graded} is {odd[0][1]}", file=sys.stderr)
            continue
        try:  # one student's failure must not cost the others their feedback
            run_nbgrader(api.generate_feedback(assignment, student, force=True), f"feedback for {student}")
        except PipelineError as e:
            print(f"feedback for {student} failed: {str(e).splitlines()[-1]}", file=sys.stderr)
            continue
        paths += sorted((course.root / "feedback" / student / assignment).glob("*.html"))
    return paths


def export(course: Course, out: Path) -> Path:
    """All grades as CSV (nbgrader's CSV exporter on our gradebook)."""
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    prepare_environment(course)
    plugin = CsvExportPlugin()
    plugin.to = str(out)
    with Gradebook(course.gradebook_url) as gb:
        plugin.export(gb)
    return Path(out)
