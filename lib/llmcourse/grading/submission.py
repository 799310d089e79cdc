"""One submission: import it, check it can be graded, grade it, record the result.

:func:`grade_one` is what a grading worker (:mod:`llmcourse.grading.worker`) does per student:

1. **precheck**: the notebooks are there, are notebooks and belong to this assignment; extra files and
   edited or deleted test cells are noted (nbgrader restores those before grading);
2. **autograde** through nbgrader's API (the preprocessors of ``autograder/nbgrader_config.py`` decide);
3. **read the scores** back from the gradebook, with the reasons cells failed to run.

A result is saved last and atomically, with a fingerprint of the submitted files: a resumed run skips
students whose result matches their files, and redoes the rest.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import sys
from pathlib import Path

import nbformat

from ..checks.expected import FILENAME as EXPECTED_FILE
from ..toolbox.packaged import write_atomic
from .assignment import read_cached
from .course import Course, GradingOptions, PipelineError
from .nbgrader_setup import autograder_config, nbgrader_api, run_nbgrader
from .release import hash_tree


@dataclasses.dataclass
class StudentResult:
    student: str
    status: str  # "graded", "skipped" (already graded), "error"
    score: float = 0.0
    max_score: float = 0.0
    parts: dict = dataclasses.field(default_factory=dict)  # "notebook:grade_id" -> [score, max]
    messages: list = dataclasses.field(default_factory=list)
    fingerprint: str = ""  # of the submitted files this result belongs to


def import_submissions(course: Course, assignment: str, submissions: Path) -> list[str]:
    """Copy ``submissions/<student>/<assignment>/`` into the course's submitted/ folder."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise PipelineError(f"submissions folder {submissions} does not exist")
    students = []
    for student_dir in sorted(p for p in submissions.iterdir() if p.is_dir()):
        src = student_dir / assignment
        if not src.is_dir():
            continue
        dst = course.root / "submitted" / student_dir.name / assignment
        if dst.resolve() != src.resolve():
            if dst.exists():
                shutil.rmtree(dst)
            shutil.copytree(src, dst)
        students.append(student_dir.name)
    return students


def precheck(course: Course, assignment: str, student: str) -> tuple[list[str], list[str]]:
    """(problems, notes) about a submission, as plain sentences for the student's report.

    Problems make it ungradable (missing notebook, not JSON, a notebook of another assignment);
    notes are graded anyway (extra files ignored, read-only or test cells edited or deleted: nbgrader
    restores edited ones and our config re-adds deleted test cells before grading).
    """
    from nbgrader.utils import compute_checksum

    folder = course.root / "submitted" / student / assignment
    notebooks = course.notebooks(assignment)
    expected = {f"{name}.ipynb" for name in notebooks}
    problems, notes = [], []
    extra = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file()
        and p.name not in expected
        and p.name
        not in ("timestamp.txt", "submission_secret.txt", EXPECTED_FILE)  # EXPECTED_FILE comes with the release
        and ".ipynb_checkpoints" not in p.parts
    )
    if extra:
        notes.append(f"extra files ignored: {', '.join(extra[:10])}" + (" ..." if len(extra) > 10 else ""))
    for name in notebooks:
        path = folder / f"{name}.ipynb"
        if not path.exists():
            problems.append(f"{name}.ipynb is missing from the submission")
            continue
        try:
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
        except Exception as e:  # JSON errors, schema errors: all mean "not a notebook"
            problems.append(
                f"{name}.ipynb is not a valid notebook ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
            )
            continue
        release = read_cached(course.root / "release" / assignment / f"{name}.ipynb")  # the same for every student
        locked = {
            c.metadata["nbgrader"]["grade_id"]: c for c in release.cells if c.metadata.get("nbgrader", {}).get("locked")
        }
        mine = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in nb.cells}
        graded = [gid for gid, c in locked.items() if c.metadata["nbgrader"].get("grade")]
        if graded and not any(gid in mine for gid in graded):
            problems.append(
                f"{name}.ipynb does not belong to {assignment}: none of its graded cells are in it "
                "(a notebook of another assignment?)"
            )
            continue
        for gid, cell in locked.items():
            kind = "test cell" if cell.metadata["nbgrader"].get("grade") else "read-only cell"
            if gid not in mine:
                notes.append(
                    f"{name}: {kind} {gid} was deleted" + (" (put back for grading)" if kind == "test cell" else "")
                )
            elif compute_checksum(mine[gid]) != cell.metadata["nbgrader"].get("checksum"):
                notes.append(f"{name}: {kind} {gid} was edited (the original was restored for grading)")
    return problems, notes


def fingerprint(course: Course, assignment: str, student: str) -> str:
    """sha256 of the submitted files: a resubmission invalidates an earlier result."""
    return hash_tree(course.root / "submitted" / student / assignment)


def _result_path(course: Course, assignment: str, student: str) -> Path:
    return course.root / ".llmcourse" / "results" / assignment / f"{student}.json"


def load_result(course: Course, assignment: str, student: str) -> StudentResult | None:
    path = _result_path(course, assignment, student)
    try:
        return StudentResult(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def save_result(course: Course, assignment: str, result: StudentResult) -> None:
    """Written last and atomically: a run killed before this line left no result, so it is redone."""
    path = _result_path(course, assignment, result.student)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(dataclasses.asdict(result), indent=1))
    end_attempt(course, assignment, result.student)  # the attempt finished: its result is saved


# --------------------------------------------------------------------------- attempts
# A submission whose grading kills its grader (the worker, or the whole batch) leaves no result. So that
# a resumed batch cannot loop on it, every attempt is written down *before* it starts and removed when
# its result is saved: a record found at the start of a run is an attempt that never finished.

STOPPED_TWICE = "grading this submission stopped the grader twice"


@dataclasses.dataclass
class Attempt:
    fingerprint: str  # of the submitted files being graded
    alone: bool  # graded with nothing else in flight: if the grader died, this submission did it
    why: str = ""  # how the previous attempt ended, when it is known


def _attempt_path(course: Course, assignment: str, student: str) -> Path:
    return course.root / ".llmcourse" / "attempts" / assignment / f"{student}.json"


def start_attempt(course: Course, assignment: str, student: str, attempt: Attempt) -> None:
    path = _attempt_path(course, assignment, student)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(dataclasses.asdict(attempt)))


def unfinished_attempt(course: Course, assignment: str, student: str) -> Attempt | None:
    """The attempt a killed run left behind for this student, if any."""
    try:
        return Attempt(**json.loads(_attempt_path(course, assignment, student).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def end_attempt(course: Course, assignment: str, student: str) -> None:
    _attempt_path(course, assignment, student).unlink(missing_ok=True)


def stopped_twice(course: Course, assignment: str, student: str, why: str, stamp: str) -> StudentResult:
    """The recorded result of a submission whose grading killed the grader twice, the second time alone:
    zero points and the reason; later runs skip it until the instructor regrades it explicitly."""
    return failed(
        course,
        assignment,
        student,
        [
            f"{STOPPED_TWICE}, the second time with nothing else running ({why}); it is not retried: "
            f"regrade it explicitly with `llmcourse autograde {assignment} --student {student} --force`"
        ],
        stamp,
    )


def read_scores(course: Course, assignment: str, student: str) -> StudentResult:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.gradebook_url) as gb:
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return StudentResult(student, "error", messages=["no grades recorded"])
        parts = {}
        for nb in sub.notebooks:
            for grade in nb.grades:
                parts[f"{nb.name}:{grade.name}"] = [float(grade.score or 0.0), float(grade.max_score)]
        return StudentResult(student, "graded", float(sub.score or 0.0), float(sub.max_score), parts)


def zero_grades(course: Course, assignment: str, student: str) -> None:
    """A submission that could not be graded keeps no points from an earlier run."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.gradebook_url) as gb:
        gb.update_or_create_student(student)
        try:
            sub = gb.find_submission(assignment, student)
        except MissingEntry:
            return
        for nb in sub.notebooks:
            for grade in nb.grades:
                grade.auto_score, grade.manual_score = 0.0, None
        gb.db.commit()


def failed(course: Course, assignment: str, student: str, messages: list[str], stamp: str) -> StudentResult:
    """The result of a submission that could not be graded: zero points, and why."""
    zero_grades(course, assignment, student)
    return StudentResult(
        student, "error", 0.0, course.manifest(assignment).max_score, messages=messages, fingerprint=stamp
    )


def failure_reasons(course: Course, assignment: str, student: str) -> list[str]:
    """Why cells did not run or parts earned nothing (timeouts, a dead kernel, memory, output floods, a
    call the part asks students to write), and the calls only flagged, for the report."""
    from .preprocessors import FLAGGED, FORBIDDEN_CALL, LIMIT_ERRORS

    reasons = []
    for path in sorted((course.root / "autograded" / student / assignment).glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error" and out.get("ename") in LIMIT_ERRORS | {FORBIDDEN_CALL}:
                    why = f"{path.stem} cell {i + 1}: {out['ename']}"
                    detail = next(
                        (line for line in out.get("traceback", []) if "raised" in line and out["ename"] in line),
                        str(out.get("evalue", "")),
                    )
                    if detail and out["ename"] != "KeyboardInterrupt":
                        why += f" ({detail.strip()[:200]})"
                    reasons.append(why)
                elif out.get("output_type") == "stream":
                    flagged = [line for line in str(out.get("text", "")).splitlines() if line.startswith(FLAGGED)]
                    reasons += [f"{path.stem} cell {i + 1}: {line[:250]}" for line in flagged]
    return reasons[:10]


def _api(course: Course, options: GradingOptions):
    """nbgrader's API for a course and options, made once per grading worker (it reads the config file);
    made again when the seed or ``autograder/nbgrader_config.py`` changed (a long-lived Dask worker)."""
    key = (course.seed(), autograder_config(course).stat().st_mtime_ns, dataclasses.astuple(options))
    return _cached_api(course.root, course.repo, course.db_url, key)


@functools.lru_cache(maxsize=8)
def _cached_api(root: Path, repo: Path, db_url: str | None, key: tuple):
    return nbgrader_api(Course(root, repo, db_url), GradingOptions(*key[-1]), prepare=False)


def grade_one(course: Course, assignment: str, student: str, options: GradingOptions) -> StudentResult:
    """Grade one submission in this process (llmcourse.grading.worker calls it in a subprocess)."""
    stamp = fingerprint(course, assignment, student)
    problems, notes = precheck(course, assignment, student)
    if problems:
        return failed(course, assignment, student, problems, stamp)
    api = _api(course, options)
    for attempt in (1, 2):
        try:
            run_nbgrader(api.autograde(assignment, student, force=True, create=True), f"autograding {student}")
            break
        except PipelineError as e:
            # nbgrader itself failed, outside the notebook's cells (a kernel that could not start, a busy
            # gradebook): what a student's code does is recorded in its cells and never lands here. One
            # retry heals a passing hiccup; a real failure fails twice and is reported.
            if attempt == 2:
                return failed(course, assignment, student, [str(e)], stamp)
            print(f"retrying {student} once: {e}", file=sys.stderr)
            notes.append(f"graded on the second attempt; the first failed: {str(e).splitlines()[-1][:200]}")
    result = read_scores(course, assignment, student)
    result.messages += notes + failure_reasons(course, assignment, student)
    result.fingerprint = stamp
    return result
