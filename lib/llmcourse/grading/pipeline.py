"""The grading pipeline: one code path for the CLI, the notebooks' self-check and the tests.

Layout of a course directory (nbgrader's own, so instructors can still use plain ``nbgrader``)::

    <course>/source/<assignment>/        copied from the repo's solutions/
    <course>/release/<assignment>/       nbgrader's student version (copied to the repo's assignments/)
    <course>/submitted/<student>/<assignment>/<notebook>.ipynb
    <course>/autograded/...  <course>/feedback/...  <course>/gradebook.db

What we add on top of nbgrader: the trusted checks (grades decided outside the student's kernel),
a grading kernel without the answer key, a secret seed for hidden random cases, per-student
isolation (one broken submission never stops the batch) and feedback that leaks nothing hidden.
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
import sys
from pathlib import Path

import nbformat

from ..checker import get_spec
from .preprocessors import expected_checks

REPO = Path(__file__).resolve().parents[3]
AUTOGRADER_CONFIG = REPO / "autograder" / "nbgrader_config.py"
GRADING_KERNEL = "llmcourse-grading"


class PipelineError(RuntimeError):
    """A clear, user-facing failure (bad path, unknown assignment, nbgrader refused)."""


# --------------------------------------------------------------------------- course directory

@dataclasses.dataclass
class Course:
    root: Path
    repo: Path = REPO
    db_url: str | None = None

    @classmethod
    def open(cls, root: str | os.PathLike | None = None, db_url: str | None = None,
             repo: str | os.PathLike | None = None) -> "Course":
        root = Path(root or os.environ.get("LLMCOURSE_COURSE_DIR") or (REPO / "course_work")).resolve()
        root.mkdir(parents=True, exist_ok=True)
        return cls(root=root, repo=Path(repo).resolve() if repo else REPO, db_url=db_url)

    @property
    def solutions(self) -> Path:
        return self.repo / "solutions"

    @property
    def gradebook_url(self) -> str:
        return self.db_url or f"sqlite:///{self.root / 'gradebook.db'}"

    def assignments(self) -> list[str]:
        return sorted(p.name for p in self.solutions.iterdir() if p.is_dir() and list(p.glob("*.ipynb")))

    def notebooks(self, assignment: str) -> list[str]:
        return sorted(p.stem for p in (self.solutions / assignment).glob("*.ipynb"))

    def check_assignment(self, assignment: str) -> None:
        if assignment not in self.assignments():
            raise PipelineError(f"unknown assignment {assignment!r}; known: {', '.join(self.assignments())}")

    def seed(self) -> int:
        """The secret seed of hidden random cases: made once per course, never committed."""
        path = self.root / ".grading_seed"
        if not path.exists():
            path.write_text(str(secrets.randbelow(2**31)))
        return int(path.read_text().strip())

    def blocked_modules(self, assignment: str) -> list[str]:
        """The answer-key modules of an assignment: where its checks' references live."""
        modules = set()
        for nb_path in (self.solutions / assignment).glob("*.ipynb"):
            for cell in nbformat.read(nb_path, as_version=4).cells:
                if cell.cell_type == "code":
                    for name, _ in expected_checks(cell.source):
                        modules.add(get_spec(name).reference.split(":")[0])
        return sorted(modules)


# --------------------------------------------------------------------------- nbgrader plumbing

def _prepare_environment(course: Course, assignment: str | None) -> None:
    """nbgrader's gradebook shells out to alembic, and our kernelspec must be findable."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    kernels = course.root / ".kernels"
    spec_dir = kernels / "kernels" / GRADING_KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    env = {"LLMCOURSE_GRADING": "1", "LLMCOURSE_GRADING_SEED": str(course.seed()),
           "LLMCOURSE_BLOCKED_MODULES": ",".join(course.blocked_modules(assignment) if assignment else []),
           "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}
    spec = {"argv": [sys.executable, "-m", "llmcourse.grading.kernel", "-f", "{connection_file}"],
            "display_name": "llmcourse grading", "language": "python", "env": env}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))
    paths = os.environ.get("JUPYTER_PATH", "").split(os.pathsep)
    if str(kernels) not in paths:
        os.environ["JUPYTER_PATH"] = os.pathsep.join([str(kernels)] + [p for p in paths if p])


def nbgrader_config(course: Course, grading: bool = True):
    """The course's nbgrader Config: autograder/nbgrader_config.py plus this course's paths."""
    from traitlets.config.loader import PyFileConfigLoader
    config = PyFileConfigLoader(AUTOGRADER_CONFIG.name, path=str(AUTOGRADER_CONFIG.parent)).load_config()
    config.CourseDirectory.root = str(course.root)
    config.CourseDirectory.db_url = course.gradebook_url
    config.TrustedChecks.seed = course.seed()
    if grading:
        config.GradingExecute.kernel_name = GRADING_KERNEL
    return config


def _api(course: Course, assignment: str | None = None):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    _prepare_environment(course, assignment)
    config = nbgrader_config(course)
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def _run(result: dict, what: str) -> None:
    """NbGraderAPI reports failure only in its result dict; turn that into an exception."""
    if not result.get("success"):
        detail = (result.get("error") or result.get("log") or "").strip().splitlines()[-15:]
        raise PipelineError(f"{what} failed:\n" + "\n".join(detail))


# --------------------------------------------------------------------------- generate

def generate(course: Course, assignment: str, update_repo: bool = True) -> Path:
    """solutions/<a> -> nbgrader generate_assignment -> release (and the repo's assignments/<a>)."""
    course.check_assignment(assignment)
    source = course.root / "source" / assignment
    if source.exists():
        shutil.rmtree(source)
    shutil.copytree(course.solutions / assignment, source,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    api = _api(course, assignment)
    _run(api.generate_assignment(assignment, force=True, create=True), f"generating {assignment}")
    release = course.root / "release" / assignment
    if update_repo:
        target = course.repo / "assignments" / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(release, target)
    return release


# --------------------------------------------------------------------------- autograde

@dataclasses.dataclass
class StudentResult:
    student: str
    status: str                       # "graded", "skipped" (already graded), "error"
    score: float = 0.0
    max_score: float = 0.0
    parts: dict = dataclasses.field(default_factory=dict)   # grade_id -> (score, max)
    messages: list = dataclasses.field(default_factory=list)


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


def precheck(course: Course, assignment: str, student: str) -> list[str]:
    """Problems that would make nbgrader crash or grade the wrong thing, as plain sentences."""
    folder = course.root / "submitted" / student / assignment
    problems = []
    for name in course.notebooks(assignment):
        path = folder / f"{name}.ipynb"
        if not path.exists():
            problems.append(f"{name}.ipynb is missing from the submission")
            continue
        try:
            nbformat.validate(nbformat.read(path, as_version=4))
        except Exception as e:  # JSON errors, schema errors: all mean "not a notebook"
            problems.append(f"{name}.ipynb is not a valid notebook ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
    return problems


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
                parts[f"{nb.name}:{grade.name}"] = (float(grade.score or 0.0), float(grade.max_score))
        return StudentResult(student, "graded", float(sub.score or 0.0), float(sub.max_score), parts)


def autograde(course: Course, assignment: str, submissions: Path | None = None,
              students: list[str] | None = None, force: bool = False,
              progress=None) -> list[StudentResult]:
    """Grade every student's submission; one bad submission never stops the batch."""
    course.check_assignment(assignment)
    if submissions is not None:
        import_submissions(course, assignment, submissions)
    generate(course, assignment, update_repo=False)  # the gradebook needs the source notebooks
    submitted = course.root / "submitted"
    everyone = sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir()) if submitted.exists() else []
    todo = students or everyone
    api = _api(course, assignment)
    results = []
    for student in todo:
        results.append(grade_one(course, api, assignment, student, force))
        if progress:
            progress(results[-1])
    write_report(course, assignment, results)
    return results


def grade_one(course: Course, api, assignment: str, student: str, force: bool) -> StudentResult:
    if not (course.root / "submitted" / student / assignment).is_dir():
        return StudentResult(student, "error", messages=[f"no submission for {assignment}"])
    problems = precheck(course, assignment, student)
    if problems:
        _record_zero(course, assignment, student)
        return StudentResult(student, "error", 0.0, _max_score(course, assignment), messages=problems)
    done = course.root / "autograded" / student / assignment
    if done.exists() and not force:
        result = read_scores(course, assignment, student)
        if result.status == "graded":
            result.status = "skipped"
            return result
    try:
        _run(api.autograde(assignment, student, force=True, create=True), f"autograding {student}")
    except PipelineError as e:
        return StudentResult(student, "error", 0.0, _max_score(course, assignment), messages=[str(e)])
    return read_scores(course, assignment, student)


def _max_score(course: Course, assignment: str) -> float:
    total = 0.0
    for nb_path in (course.solutions / assignment).glob("*.ipynb"):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                total += float(meta.get("points", 0))
    return total


def _record_zero(course: Course, assignment: str, student: str) -> None:
    """A submission that cannot be graded still appears in the gradebook (with no score)."""
    from nbgrader.api import Gradebook
    with Gradebook(course.gradebook_url) as gb:
        gb.update_or_create_student(student)


def write_report(course: Course, assignment: str, results: list[StudentResult]) -> Path:
    out = course.root / "reports" / f"{assignment}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1))
    return out


# --------------------------------------------------------------------------- feedback, export

def feedback(course: Course, assignment: str, students: list[str] | None = None) -> list[Path]:
    """HTML feedback per student: grades and trusted check reports, nothing hidden."""
    course.check_assignment(assignment)
    api = _api(course, assignment)
    graded = course.root / "autograded"
    todo = students or sorted(p.name for p in graded.iterdir() if (p / assignment).is_dir()) if graded.exists() else []
    paths = []
    for student in todo:
        _run(api.generate_feedback(assignment, student, force=True), f"feedback for {student}")
        paths += sorted((course.root / "feedback" / student / assignment).glob("*.html"))
    return paths


def export(course: Course, out: Path) -> Path:
    """All grades as CSV (nbgrader's CSV exporter on our gradebook)."""
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin
    _prepare_environment(course, None)
    plugin = CsvExportPlugin()
    plugin.to = str(out)
    with Gradebook(course.gradebook_url) as gb:
        plugin.export(gb)
    return Path(out)


# --------------------------------------------------------------------------- validate (students)

@dataclasses.dataclass
class PartResult:
    grade_id: str
    points: float
    passed: bool
    lines: list


def validate(notebook: str | os.PathLike, timeout: int = 120) -> list[PartResult]:
    """Run a student's notebook top to bottom and judge each graded part the way the grader does.

    Unlike ``nbgrader validate`` this reports every part and the caller can exit non-zero on failure.
    """
    from nbgrader import utils
    from .preprocessors import GradingExecute, judge_cell
    path = Path(notebook)
    if not path.exists():
        raise PipelineError(f"{path} does not exist")
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as e:
        raise PipelineError(f"{path} is not a valid notebook ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
    executor = GradingExecute(timeout=timeout, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"))
    executor.preprocess(nb, {"metadata": {"path": str(path.parent.resolve())}})
    parts = []
    for cell in nb.cells:
        if not utils.is_grade(cell):
            continue
        meta = cell.metadata["nbgrader"]
        if utils.is_solution(cell):
            continue  # manually graded answers: nothing to check automatically
        passed, lines = judge_cell(cell, seed=0)
        parts.append(PartResult(meta.get("grade_id", "?"), float(meta.get("points", 0)), passed, lines))
    return parts
