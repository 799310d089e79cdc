"""Release: solutions/<assignment> -> nbgrader generate_assignment -> the student version.

``generate`` copies the repository's source notebooks into the course, writes the course policy (how the
assignment is graded, ``autograder/policy.md`` filled in by :mod:`.policy`) after each notebook's first cell,
lets nbgrader strip solutions and hidden tests, records the assignment in the gradebook and (by default)
copies the release into the repository's ``assignments/``. A stamp (sha256 of the source files, the policy
template and the gradebook URL) lets ``ensure_generated`` skip the seconds this costs when nothing changed;
a second one (of source/ as written) lets it keep, not overwrite, a notebook an instructor edited in the
course's source/ folder (formgrader links there).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from ..checks.expected import write_expected
from .course import Course
from .nbgrader_setup import nbgrader_api, run_nbgrader, venv_bin_on_path
from .policy import TEMPLATE, insert_policy

_SKIP = (".ipynb_checkpoints", "__pycache__")


def generate(course: Course, assignment: str, update_repo: bool = True) -> Path:
    """solutions/<a> -> nbgrader generate_assignment -> release (and the repo's assignments/<a>)."""
    course.check_assignment(assignment)
    source = course.root / "source" / assignment
    if source.exists() and not _keep_edits(course, assignment, source):
        shutil.rmtree(source)
    shutil.copytree(course.solutions / assignment, source, ignore=shutil.ignore_patterns(*_SKIP))
    template = (course.repo / TEMPLATE).read_text()
    for notebook in course.notebooks(assignment):  # how it is graded, for students to read first
        insert_policy(source / f"{notebook}.ipynb", course.manifest(assignment), template)
    api = nbgrader_api(course)
    run_nbgrader(api.generate_assignment(assignment, force=True, create=True), f"generating {assignment}")
    release = course.root / "release" / assignment
    # Students' visible checks compare with these when the answer key is not installed (design 5b).
    write_expected(release)  # the visible checks named in the release's own notebooks
    stamp_file = _stamp_file(course, assignment)
    stamp_file.parent.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(_source_stamp(course, assignment))
    _written_file(course, assignment).write_text(hash_tree(source, skip=_SKIP))
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
    """sha256 of the assignment's solution files, the policy template and the gradebook URL they were
    generated into."""
    salt = course.gradebook_url.encode() + b"\0" + (course.repo / TEMPLATE).read_bytes() + b"\0"
    return hash_tree(course.solutions / assignment, salt, skip=_SKIP)


def _stamp_file(course: Course, assignment: str) -> Path:
    return course.root / ".llmcourse" / "generated" / f"{assignment}.sha256"


def _written_file(course: Course, assignment: str) -> Path:
    """sha256 of the course's source/<assignment> as generate wrote it."""
    return course.root / ".llmcourse" / "generated" / f"{assignment}.source.sha256"


def _keep_edits(course: Course, assignment: str, source: Path) -> Path | None:
    """Move an edited source/<assignment> aside before it is replaced, and say where it went.

    formgrader links to the course's source/ folder, so an instructor may edit a notebook there; but
    ``solutions/`` is the source of truth and generate rewrites source/ from it. Nothing is lost: the
    edited copy goes to source/<assignment>.edited-<n>, with a message saying to move the edits into
    solutions/. Returns where it went, or None when source/ was as generate left it.
    """
    written = _written_file(course, assignment)
    if not written.exists() or written.read_text() == hash_tree(source, skip=_SKIP):
        return None
    n = 1
    while (kept := source.with_name(f"{assignment}.edited-{n}")).exists():
        n += 1
    shutil.move(source, kept)
    print(
        f"warning: {source} was edited after llmcourse generate wrote it (formgrader links there); the edited "
        f"copy is kept in {kept}. solutions/{assignment} is the source of truth: move your edits there.",
        file=sys.stderr,
    )
    return kept


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
