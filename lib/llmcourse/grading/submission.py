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
import os
import sys
from pathlib import Path

import nbformat

from ..checks.expected import FILENAME as EXPECTED_FILE
from ..toolbox.packaged import write_atomic
from . import repair
from .assignment import read_cached
from .course import Course, GradingOptions, PipelineError
from .nbgrader_setup import autograder_config, nbgrader_api, run_nbgrader
from .release import hash_tree
from .safe_files import copy_plain_tree, kind, read_regular, remove_tree, set_aside, unsafe_entries

NOTEBOOK_LIMIT = 256 << 20  # bytes of a graded notebook read back (outputs are capped far below this)


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
    """Copy ``submissions/<student>/<assignment>/`` into the course's submitted/ folder: plain files and
    folders only. A link or a special file (a symbolic link to the gradebook or ``/etc/passwd``, a FIFO, a
    socket, a device) is neither followed nor copied; the student's report says so (:func:`link_notes`)."""
    submissions = Path(submissions)
    if not submissions.is_dir():
        raise PipelineError(f"submissions folder {submissions} does not exist")
    students = []
    for student_dir in sorted(submissions.iterdir()):
        src = student_dir / assignment
        if kind(student_dir) != "a folder" or not src.is_dir():
            continue  # not a student's folder (a linked folder is not followed either)
        dst = course.root / "submitted" / student_dir.name / assignment
        if kind(src) != "a folder":
            notes = [f"{assignment} is {kind(src)}: not followed, not imported"]
        elif dst.resolve() != src.resolve():
            if os.path.lexists(dst):
                remove_tree(dst)
            notes = copy_plain_tree(src, dst)
        else:  # grading the course's own submitted/ folder in place
            notes = []
        save_link_notes(course, assignment, student_dir.name, notes)
        students.append(student_dir.name)
    return students


def _link_notes_path(course: Course, assignment: str, student: str) -> Path:
    return course.root / ".llmcourse" / "links" / assignment / f"{student}.json"


def save_link_notes(course: Course, assignment: str, student: str, notes: list[str]) -> None:
    """Remember what was left out of a submission (links, special files) for its report; an import without
    any clears what an earlier one left."""
    path = _link_notes_path(course, assignment, student)
    if notes or path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, json.dumps(notes))


def link_notes(course: Course, assignment: str, student: str) -> list[str]:
    try:
        return list(json.loads(read_regular(_link_notes_path(course, assignment, student), 1 << 20)))
    except (OSError, ValueError, TypeError):
        return []


def set_aside_links(course: Course, assignment: str, student: str) -> list[str]:
    """Move links and special files out of ``submitted/<student>/<assignment>/`` (put there by hand or by
    nbgrader's exchange, not by :func:`import_submissions`) before anything reads it: nbgrader copies what is
    there and would follow them. They go to ``.llmcourse/set-aside/``; the notes join the report's."""
    folder = course.root / "submitted" / student / assignment
    aside = course.root / ".llmcourse" / "set-aside" / assignment / student
    if kind(folder.parent) not in ("a folder", "missing"):
        notes = set_aside(folder.parent, aside)
    else:
        notes = set_aside(folder, aside)
    if notes:
        save_link_notes(course, assignment, student, link_notes(course, assignment, student) + notes)
    return notes


def precheck(course: Course, assignment: str, student: str) -> tuple[list[str], list[str]]:
    """(problems, notes) about a submission, as plain sentences for the student's report.

    Problems make it ungradable: only a notebook with no answers anywhere in the submission (missing,
    empty, unreadable, another assignment's), each with what to do. Notes are graded anyway: every repair
    of a damaged notebook (:mod:`llmcourse.grading.repair`: a renamed copy graded under the expected name,
    split or duplicated cells, an old nbformat, a truncated file...), extra files ignored, read-only or test
    cells edited or deleted (nbgrader restores edited ones and our config re-adds deleted test cells).
    Where the expected file name is missing, the repaired notebook is written under it next to the student's
    file (nbgrader looks for that name only); nothing the student submitted is changed.
    """
    from nbgrader.utils import compute_checksum

    folder = course.root / "submitted" / student / assignment
    releases = {
        name: read_cached(course.root / "release" / assignment / f"{name}.ipynb")  # the same for every student
        for name in course.notebooks(assignment)
    }
    problems, notes = [], []
    loaded = [repair.load(p) for p in repair.candidates(folder)] if folder.is_dir() else []
    chosen = repair.choose(folder, releases, loaded)
    used = {c.path for c in chosen.values() if c.path} | {x.path for x in loaded if repair.is_stand_in(x)}
    unused = [x for x in loaded if x.path not in used and ".ipynb_checkpoints" not in x.path.parts]
    elsewhere = (
        repair.foreign(
            unused, chosen, assignment, {a: _graded_ids(course, a) for a in course.assignments() if a != assignment}
        )
        if unused
        else []
    )
    if any(c.problem for c in chosen.values()):
        problems += elsewhere
    else:
        notes += elsewhere
    named = {x.path for x in unused if any(s.startswith(x.path.name + " ") for s in elsewhere)}
    extra = sorted(
        str(p.relative_to(folder))
        for p in (folder.rglob("*") if folder.is_dir() else [])
        if p.is_file()
        and p not in used
        and p not in named
        and p.name not in {f"{name}.ipynb" for name in releases}
        and p.name
        not in ("timestamp.txt", "submission_secret.txt", EXPECTED_FILE)  # EXPECTED_FILE comes with the release
        and ".ipynb_checkpoints" not in p.parts
    )
    if extra:
        notes.append(f"extra files ignored: {', '.join(extra[:10])}" + (" ..." if len(extra) > 10 else ""))
    for name, choice in chosen.items():
        if choice.problem:
            problems.append(choice.problem)
            continue
        notes += choice.notes
        repair.write_stand_in(choice, folder)
        release = releases[name]
        locked = {
            c.metadata["nbgrader"]["grade_id"]: c for c in release.cells if c.metadata.get("nbgrader", {}).get("locked")
        }
        mine = {c.metadata.get("nbgrader", {}).get("grade_id"): c for c in choice.nb.cells}
        for gid, cell in locked.items():
            kind = "test cell" if cell.metadata["nbgrader"].get("grade") else "read-only cell"
            if gid not in mine:
                notes.append(
                    f"{name}: {kind} {gid} was deleted" + (" (put back for grading)" if kind == "test cell" else "")
                )
            elif compute_checksum(mine[gid]) != cell.metadata["nbgrader"].get("checksum"):
                notes.append(f"{name}: {kind} {gid} was edited (the original was restored for grading)")
    return problems, notes


def _graded_ids(course: Course, assignment: str) -> set[str]:
    """The grade ids of an assignment's tests and answers: what names a notebook as that assignment's."""
    m = course.manifest(assignment)
    return {p.grade_id for p in m.parts + m.manual} | {g for per in m.solutions.values() for g in per}


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
        try:  # the grader's own file; read without following a link all the same
            cells = nbformat.reads(read_regular(path, NOTEBOOK_LIMIT).decode("utf-8"), as_version=4).cells
        except (OSError, ValueError) as e:
            reasons.append(f"{path.name}: the graded notebook could not be read back ({str(e)[:200]})")
            continue
        for i, cell in enumerate(cells):
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
    set_aside_links(course, assignment, student)  # before anything reads the folder
    stamp = fingerprint(course, assignment, student)
    problems, notes = precheck(course, assignment, student)
    notes = link_notes(course, assignment, student) + notes
    if problems:
        return failed(course, assignment, student, problems + notes, stamp)
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
    graded = course.root / "autograded" / student / assignment
    if kind(graded) == "a folder" and unsafe_entries(graded):  # cannot happen: the kernel works on a copy
        return failed(course, assignment, student, [f"{graded} holds links after grading; not trusted"], stamp)
    result = read_scores(course, assignment, student)
    result.messages += notes + failure_reasons(course, assignment, student)
    result.fingerprint = stamp
    return result
