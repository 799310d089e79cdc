"""Release: solutions/<assignment> -> nbgrader generate_assignment -> the student version.

``generate`` copies the repository's source notebooks into the course, lets nbgrader strip solutions and
hidden tests, records the assignment in the gradebook and (by default) copies the release into the
repository's ``assignments/``. A stamp (sha256 of the source files and the gradebook URL) lets
``ensure_generated`` skip the seconds this costs when nothing changed.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

from ..checks.expected import write_expected
from .course import Course
from .nbgrader_setup import nbgrader_api, run_nbgrader, venv_bin_on_path

_SKIP = (".ipynb_checkpoints", "__pycache__")


def generate(course: Course, assignment: str, update_repo: bool = True) -> Path:
    """solutions/<a> -> nbgrader generate_assignment -> release (and the repo's assignments/<a>)."""
    course.check_assignment(assignment)
    source = course.root / "source" / assignment
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(course.solutions / assignment, source, ignore=shutil.ignore_patterns(*_SKIP))
    api = nbgrader_api(course)
    run_nbgrader(api.generate_assignment(assignment, force=True, create=True), f"generating {assignment}")
    release = course.root / "release" / assignment
    # Students' visible checks compare with these when the answer key is not installed (design 5b).
    write_expected(release)  # the visible checks named in the release's own notebooks
    stamp_file = _stamp_file(course, assignment)
    stamp_file.parent.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(_source_stamp(course, assignment))
    if update_repo:
        target = course.repo / "assignments" / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(release, target)
    return release


def hash_tree(folder: Path, salt: bytes = b"", skip: tuple[str, ...] = ()) -> str:
    """sha256 of every file's relative path and bytes under ``folder`` (folders named in ``skip`` left out)."""
    digest = hashlib.sha256(salt)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not set(skip) & set(p.parts)):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _source_stamp(course: Course, assignment: str) -> str:
    """sha256 of the assignment's solution files and the gradebook URL they were generated into."""
    return hash_tree(course.solutions / assignment, course.gradebook_url.encode() + b"\0", skip=_SKIP)


def _stamp_file(course: Course, assignment: str) -> Path:
    return course.root / ".llmcourse" / "generated" / f"{assignment}.sha256"


def ensure_generated(course: Course, assignment: str) -> None:
    """Generate the assignment unless this course already holds a release of the same source files
    (regenerating costs seconds per grading run and changes nothing)."""
    from nbgrader.api import Gradebook, MissingEntry

    stamp_file = _stamp_file(course, assignment)
    release = course.root / "release" / assignment
    up_to_date = (
        stamp_file.exists()
        and stamp_file.read_text() == _source_stamp(course, assignment)
        and all((release / f"{nb}.ipynb").exists() for nb in course.notebooks(assignment))
    )
    if up_to_date:
        venv_bin_on_path()
        try:
            with Gradebook(course.gradebook_url) as gb:
                gb.find_assignment(assignment)
        except MissingEntry:
            up_to_date = False
    if not up_to_date:
        generate(course, assignment, update_repo=False)
