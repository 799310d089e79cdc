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

import csv
import dataclasses
import hashlib
import json
import os
import secrets
import shutil
import sys
import threading
from pathlib import Path

import nbformat

from ..checks.checker import get_spec
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
    def open(
        cls, root: str | os.PathLike | None = None, db_url: str | None = None, repo: str | os.PathLike | None = None
    ) -> Course:
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


@dataclasses.dataclass
class GradingOptions:
    """Limits and switches of a grading run (defaults suit a 2-core laptop)."""

    workers: int = max(1, os.cpu_count() or 1)
    cell_timeout: int = 60  # seconds per cell
    notebook_timeout: int = 600  # seconds per notebook
    memory_mb: int = 4096  # address-space cap of the student's kernel
    output_limit: int = 1_000_000  # bytes of ordinary output kept per notebook
    sandbox: bool | None = None  # None: use the namespace sandbox when this machine supports it
    force: bool = False  # regrade students whose result is already recorded
    run_all_cells: bool = False  # also run cells after the last graded one (they cannot change a grade)


def sandbox_available() -> bool:
    """Unprivileged user + mount namespaces work here (Linux with util-linux's unshare/setpriv)."""
    if not sys.platform.startswith("linux") or not (shutil.which("unshare") and shutil.which("setpriv")):
        return False
    import subprocess

    probe = subprocess.run(["unshare", "-Urm", "--propagation", "private", "true"], capture_output=True)
    return probe.returncode == 0


def hidden_paths(course: Course, assignment: str) -> list[str]:
    """What the student's kernel must not see: answer keys, solutions, tests, history, the course."""
    import importlib.util

    from jupyter_core.paths import jupyter_runtime_dir

    paths = [
        course.root,
        course.repo / "solutions",
        course.repo / "tests",
        course.repo / ".git",
        course.repo / "bench",
        course.repo / "autograder",
        Path(jupyter_runtime_dir()),
    ]
    for module in course.blocked_modules(assignment):
        spec = importlib.util.find_spec(module)
        if spec and spec.origin:
            paths += [Path(spec.origin), Path(importlib.util.cache_from_source(spec.origin))]
    return [str(p) for p in paths if p.exists()]


def write_kernel_policies(course: Course, sandbox: bool) -> Path:
    """One grading policy per assignment (answer-key modules to block, paths to hide), read by the
    grading kernel before any student code runs (llmcourse.grading.kernel.load_policy). ``_any`` is
    the union, for a notebook outside every known assignment: when in doubt, block and hide it all.
    One kernelspec thus serves every assignment, so nbgrader's own tools (formgrader) can use it."""
    folder = course.root / ".llmcourse" / "kernel"
    folder.mkdir(parents=True, exist_ok=True)
    union: dict[str, set] = {"blocked": set(), "hide": set()}
    for assignment in course.assignments():
        policy = {
            "blocked": course.blocked_modules(assignment),
            "hide": hidden_paths(course, assignment) if sandbox else [],
        }
        for key in union:
            union[key].update(policy[key])
        _write_json(folder / f"{assignment}.json", policy)
    _write_json(folder / "_any.json", {key: sorted(values) for key, values in union.items()})
    return folder


def _write_json(path: Path, data) -> None:
    tmp = path.with_suffix(f".tmp{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)  # a reader (a starting kernel, a resumed run) sees the old or the new file, never half


def _venv_bin_on_path() -> None:
    """nbgrader's gradebook shells out to ``alembic``, which lives next to this Python."""
    bindir = str(Path(sys.executable).parent)
    if bindir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def _prepare_environment(course: Course, assignment: str | None, options: GradingOptions | None = None) -> None:
    """nbgrader's gradebook shells out to alembic; the grading kernelspec and policies are written.

    The kernelspec lives in ``<course>/.kernels/`` and is found through ``GradingExecute.kernel_dirs``,
    not JUPYTER_PATH: a JupyterLab on the same machine must not offer the grading kernel to students
    (in it, visible tests emit records and print no PASS or FAIL)."""
    options = options or GradingOptions()
    _venv_bin_on_path()
    kernels = course.root / ".kernels"
    spec_dir = kernels / "kernels" / GRADING_KERNEL
    spec_dir.mkdir(parents=True, exist_ok=True)
    sandbox = sandbox_available() if options.sandbox is None else options.sandbox
    write_kernel_policies(course, sandbox)
    env = {
        "LLMCOURSE_GRADING": "1",
        "LLMCOURSE_GRADING_SEED": str(course.seed()),
        "LLMCOURSE_COURSE_ROOT": str(course.root),
        "LLMCOURSE_MEMORY_LIMIT_MB": str(options.memory_mb),
        "LLMCOURSE_SANDBOX": "1" if sandbox else "0",
        "LLMCOURSE_OUTPUT_LIMIT": str(options.output_limit + 1000),
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "Agg",
    }
    argv = [sys.executable, "-m", "llmcourse.grading.kernel", "-f", "{connection_file}"]
    if sandbox:
        argv = ["unshare", "-Urm", "--propagation", "private"] + argv
    spec = {"argv": argv, "display_name": "llmcourse grading", "language": "python", "env": env}
    tmp = spec_dir / f"kernel.json.{os.getpid()}"
    tmp.write_text(json.dumps(spec, indent=1))
    os.replace(tmp, spec_dir / "kernel.json")


def nbgrader_config(course: Course, options: GradingOptions | None = None):
    """The course's nbgrader Config: autograder/nbgrader_config.py plus this course's paths."""
    from traitlets.config.loader import PyFileConfigLoader

    options = options or GradingOptions()
    config = PyFileConfigLoader(AUTOGRADER_CONFIG.name, path=str(AUTOGRADER_CONFIG.parent)).load_config()
    config.CourseDirectory.root = str(course.root)
    config.CourseDirectory.db_url = course.gradebook_url
    config.TrustedChecks.seed = course.seed()
    config.GradingExecute.kernel_name = GRADING_KERNEL
    config.GradingExecute.kernel_dirs = [str(course.root / ".kernels" / "kernels")]
    config.GradingExecute.timeout = options.cell_timeout
    config.GradingExecute.notebook_timeout = options.notebook_timeout
    config.GradingExecute.output_limit = options.output_limit
    config.GradingExecute.run_trailing_cells = options.run_all_cells
    return config


_TOOLS_READY: set[str] = set()


def tool_config(course: Course | None = None):
    """The Config that nbgrader's own tools (formgrader, the ``nbgrader`` command) load from the
    repository's root ``nbgrader_config.py``: the same course directory, gradebook, preprocessors,
    sandboxed grading kernel and secret seed as ``llmcourse``, so a grade never depends on the tool."""
    course = course or Course.open()
    if str(course.root) not in _TOOLS_READY:  # formgrader reloads its config on every page
        _prepare_environment(course, None)
        _TOOLS_READY.add(str(course.root))
    return nbgrader_config(course)


def _api(course: Course, assignment: str | None = None, options: GradingOptions | None = None, prepare: bool = True):
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    if prepare:
        _prepare_environment(course, assignment, options)
    config = nbgrader_config(course, options)
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
    shutil.copytree(
        course.solutions / assignment, source, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__")
    )
    api = _api(course, assignment)
    _run(api.generate_assignment(assignment, force=True, create=True), f"generating {assignment}")
    release = course.root / "release" / assignment
    stamp_file = _stamp_file(course, assignment)
    stamp_file.parent.mkdir(parents=True, exist_ok=True)
    stamp_file.write_text(_source_stamp(course, assignment))
    if update_repo:
        target = course.repo / "assignments" / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(release, target)
    return release


def _hash_tree(folder: Path, salt: bytes = b"", skip: tuple[str, ...] = ()) -> str:
    """sha256 of every file's relative path and bytes under ``folder`` (folders named in ``skip`` left out)."""
    digest = hashlib.sha256(salt)
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not set(skip) & set(p.parts)):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _source_stamp(course: Course, assignment: str) -> str:
    """sha256 of the assignment's solution files and the gradebook URL they were generated into."""
    return _hash_tree(
        course.solutions / assignment, course.gradebook_url.encode() + b"\0", skip=(".ipynb_checkpoints", "__pycache__")
    )


def _stamp_file(course: Course, assignment: str) -> Path:
    return course.root / ".llmcourse" / "generated" / f"{assignment}.sha256"


def ensure_generated(course: Course, assignment: str) -> None:
    """Generate the assignment unless this course already holds a release of the same source files
    (regenerating costs seconds per grading run and changes nothing)."""
    from nbgrader.api import Gradebook, MissingEntry

    stamp_file = _stamp_file(course, assignment)
    stamp = _source_stamp(course, assignment)
    release = course.root / "release" / assignment
    up_to_date = (
        stamp_file.exists()
        and stamp_file.read_text() == stamp
        and all((release / f"{nb}.ipynb").exists() for nb in course.notebooks(assignment))
    )
    if up_to_date:
        _venv_bin_on_path()
        try:
            with Gradebook(course.gradebook_url) as gb:
                gb.find_assignment(assignment)
        except MissingEntry:
            up_to_date = False
    if not up_to_date:
        generate(course, assignment, update_repo=False)


# --------------------------------------------------------------------------- autograde


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
    expected = {f"{name}.ipynb" for name in course.notebooks(assignment)}
    problems, notes = [], []
    extra = sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if p.is_file() and p.name not in expected and p.name != "timestamp.txt" and ".ipynb_checkpoints" not in p.parts
    )
    if extra:
        notes.append(f"extra files ignored: {', '.join(extra[:10])}" + (" ..." if len(extra) > 10 else ""))
    for name in course.notebooks(assignment):
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
        release = nbformat.read(course.root / "release" / assignment / f"{name}.ipynb", as_version=4)
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
    return _hash_tree(course.root / "submitted" / student / assignment)


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
    _write_json(path, dataclasses.asdict(result))


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


def failure_reasons(course: Course, assignment: str, student: str) -> list[str]:
    """Why cells did not run: timeouts, a dead kernel, memory, output floods (for the report)."""
    from .preprocessors import LIMIT_ERRORS

    reasons = []
    for path in sorted((course.root / "autograded" / student / assignment).glob("*.ipynb")):
        for i, cell in enumerate(nbformat.read(path, as_version=4).cells):
            for out in cell.get("outputs", []):
                if out.get("output_type") == "error" and out.get("ename") in LIMIT_ERRORS:
                    why = f"{path.stem} cell {i + 1}: {out['ename']}"
                    detail = next(
                        (line for line in out.get("traceback", []) if "raised" in line and out["ename"] in line),
                        str(out.get("evalue", "")),
                    )
                    if detail and out["ename"] != "KeyboardInterrupt":
                        why += f" ({detail.strip()[:150]})"
                    reasons.append(why)
    return reasons[:10]


def grade_one(course: Course, assignment: str, student: str, options: GradingOptions) -> StudentResult:
    """Grade one submission in this process (llmcourse.grading.worker calls it in a subprocess)."""
    stamp = fingerprint(course, assignment, student)
    problems, notes = precheck(course, assignment, student)
    if problems:
        zero_grades(course, assignment, student)
        return StudentResult(
            student, "error", 0.0, _max_score(course, assignment), messages=problems, fingerprint=stamp
        )
    api = _api(course, assignment, options, prepare=False)
    for attempt in (1, 2):
        try:
            _run(api.autograde(assignment, student, force=True, create=True), f"autograding {student}")
            break
        except PipelineError as e:
            # nbgrader itself failed, outside the notebook's cells (a kernel that could not start, a busy
            # gradebook): what a student's code does is recorded in its cells and never lands here. One
            # retry heals a passing hiccup; a real failure fails twice and is reported.
            if attempt == 2:
                zero_grades(course, assignment, student)
                return StudentResult(
                    student, "error", 0.0, _max_score(course, assignment), messages=[str(e)], fingerprint=stamp
                )
            print(f"retrying {student} once: {e}", file=sys.stderr)
            notes.append(f"graded on the second attempt; the first failed: {str(e).splitlines()[-1][:200]}")
    result = read_scores(course, assignment, student)
    result.messages += notes + failure_reasons(course, assignment, student)
    result.fingerprint = stamp
    return result


class _WorkerProcess:
    """A long-lived ``llmcourse.grading.worker --serve`` process: it pays its imports once and grades
    one student per request. A request past its deadline kills the whole process group (the worker and
    its kernel) and the next request starts a fresh process."""

    def __init__(self, env: dict, log: Path):
        import subprocess

        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmcourse.grading.worker", "--serve"],
            env={**os.environ, **env},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "ab"),
            text=True,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def grade(self, payload: str, deadline: float) -> tuple[dict | None, str]:
        """(result, '') or (None, why)."""
        import select
        import time

        try:
            self.proc.stdin.write(payload + "\n")
            self.proc.stdin.flush()
        except OSError:
            return None, "the grading process died before it started"
        end = time.monotonic() + deadline
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                self.kill()
                return None, f"grading took longer than {deadline:.0f} s and was stopped"
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                tail = [l for l in self.log.read_text(errors="replace").splitlines() if l.strip()][-1:]
                return None, (
                    f"the grader failed on this submission (exit code {self.proc.returncode})"
                    + (f": {tail[0][:300]}" if tail else "")
                )
            try:
                return json.loads(line), ""
            except ValueError:
                continue  # not ours: stray output from a library

    def kill(self) -> None:
        import signal

        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()

    def close(self) -> None:
        if self.alive():
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except Exception:
                self.kill()


_LOCAL = threading.local()  # one worker process per grading thread (or per Dask worker thread)
_STARTED: list[_WorkerProcess] = []  # every worker process this process started, to close them at the end


def run_worker(
    root: str, db_url: str | None, repo: str, assignment: str, student: str, options: dict, env: dict
) -> dict:
    """Grade one student in this thread's worker process, with a hard deadline; never raises.

    A module-level function of plain arguments, so a Dask worker can run it as well as a thread.
    """
    course = Course(Path(root), Path(repo), db_url)
    opts = GradingOptions(**options)
    payload = json.dumps(
        {"root": root, "db_url": db_url, "repo": repo, "assignment": assignment, "student": student, "options": options}
    )
    deadline = opts.notebook_timeout * max(1, len(course.notebooks(assignment))) + 180
    worker = getattr(_LOCAL, "worker", None)
    if worker is None or not worker.alive():
        worker = _LOCAL.worker = _WorkerProcess(
            env, course.root / ".llmcourse" / "logs" / f"worker-{os.getpid()}-{threading.get_ident()}.log"
        )
        _STARTED.append(worker)
    raw, why = worker.grade(payload, deadline)
    if raw is not None:
        result = StudentResult(**raw)
    else:
        zero_grades(course, assignment, student)
        result = StudentResult(
            student,
            "error",
            0.0,
            _max_score(course, assignment),
            messages=[why],
            fingerprint=fingerprint(course, assignment, student),
        )
    save_result(course, assignment, result)
    return dataclasses.asdict(result)


def close_workers() -> None:
    """Close every worker process this process started (their threads may be gone already)."""
    while _STARTED:
        _STARTED.pop().close()


def autograde(
    course: Course,
    assignment: str,
    submissions: Path | None = None,
    students: list[str] | None = None,
    options: GradingOptions | None = None,
    dask: str | None = None,
    progress=None,
) -> list[StudentResult]:
    """Grade a class in parallel; resumable; one bad submission never stops the batch.

    dask: None runs local worker threads (each grading in its own subprocess); "local" starts a Dask
    LocalCluster; any other value is a scheduler address (workers must see the course directory).
    """
    options = options or GradingOptions()
    course.check_assignment(assignment)
    with _grading_lock(course, assignment):
        try:
            return _autograde(course, assignment, submissions, students, options, dask, progress)
        finally:
            from .kernel import remove_stale_stages

            remove_stale_stages()


def _grading_lock(course: Course, assignment: str):
    """One grading run per course and assignment at a time: a second one (a double click, a second
    terminal) would grade the same students twice over. The lock dies with its process, so a killed
    run never leaves it behind."""
    import contextlib
    import fcntl

    @contextlib.contextmanager
    def held():
        path = course.root / ".llmcourse" / f"autograde-{assignment}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                raise PipelineError(
                    f"another autograde of {assignment} is running on this course "
                    f"({f.read().strip() or 'unknown process'}); wait for it or stop it first"
                ) from None
            f.truncate(0)
            f.write(f"pid {os.getpid()}")
            f.flush()
            yield

    return held()


def _autograde(
    course: Course,
    assignment: str,
    submissions: Path | None,
    students: list[str] | None,
    options: GradingOptions,
    dask: str | None,
    progress,
) -> list[StudentResult]:
    if submissions is not None:
        import_submissions(course, assignment, submissions)
    ensure_generated(course, assignment)  # the gradebook needs the source notebooks
    _prepare_environment(course, assignment, options)
    submitted = course.root / "submitted"
    everyone = sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir()) if submitted.exists() else []
    chosen = students or everyone
    results, todo = [], []
    for student in chosen:
        if student not in everyone:
            results.append(StudentResult(student, "error", messages=[f"no submission for {assignment}"]))
            continue
        old = load_result(course, assignment, student)
        if old and not options.force and old.fingerprint == fingerprint(course, assignment, student):
            old.status = "skipped" if old.status == "graded" else old.status
            results.append(old)
        else:
            todo.append(student)
    env = {"PATH": os.environ["PATH"]}
    args = (str(course.root), course.db_url, str(course.repo), assignment)
    opts = dataclasses.asdict(options)
    for r in results:
        progress and progress(r, len(results), len(chosen))
    for raw in _grade_all(todo, args, opts, env, options.workers, dask):
        results.append(StudentResult(**raw))
        progress and progress(results[-1], len(results), len(chosen))
    write_report(course, assignment)
    return sorted(results, key=lambda r: r.student)


def _grade_all(students: list[str], args: tuple, opts: dict, env: dict, workers: int, dask: str | None):
    if not students:
        return
    if dask:
        from distributed import Client, LocalCluster, as_completed

        # Each task grades in its own worker subprocess (llmcourse.grading.worker) anyway, so the local
        # cluster's Dask workers can be threads: worker processes would only add start-up time.
        cluster = (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None)
            if dask == "local"
            else None
        )
        with Client(cluster if cluster else dask) as client:
            futures = [client.submit(run_worker, *args, s, opts, env, pure=False) for s in students]
            for future in as_completed(futures):
                yield future.result()
        if cluster:
            cluster.close()
            close_workers()  # a LocalCluster's workers are threads of this process
        return
    from concurrent.futures import ThreadPoolExecutor
    from concurrent.futures import as_completed as done

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_worker, *args, s, opts, env) for s in students]
        for future in done(futures):
            yield future.result()
    close_workers()


def _max_score(course: Course, assignment: str) -> float:
    total = 0.0
    for nb_path in (course.solutions / assignment).glob("*.ipynb"):
        for cell in nbformat.read(nb_path, as_version=4).cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                total += float(meta.get("points", 0))
    return total


def write_report(course: Course, assignment: str) -> Path:
    """Every recorded result of the assignment, as JSON and CSV, in reports/."""
    folder = course.root / ".llmcourse" / "results" / assignment
    rows = [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
    out = course.root / "reports" / f"{assignment}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "status", "score", "max_score", "messages"])
        for r in rows:
            writer.writerow([r["student"], r["status"], r["score"], r["max_score"], " | ".join(r["messages"])])
    return out


# --------------------------------------------------------------------------- feedback, export


def feedback(course: Course, assignment: str, students: list[str] | None = None) -> list[Path]:
    """HTML feedback per student: grades and trusted check reports, nothing hidden."""
    course.check_assignment(assignment)
    api = _api(course, assignment)
    graded = course.root / "autograded"
    everyone = sorted(p.name for p in graded.iterdir() if (p / assignment).is_dir()) if graded.exists() else []
    paths = []
    for student in students or everyone:
        try:  # one student's failure must not cost the others their feedback
            _run(api.generate_feedback(assignment, student, force=True), f"feedback for {student}")
        except PipelineError as e:
            print(f"feedback for {student} failed: {str(e).splitlines()[-1]}", file=sys.stderr)
            continue
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
        raise PipelineError(
            f"{path} is not a valid notebook ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        ) from None
    executor = GradingExecute(
        timeout=timeout, kernel_name=nb.metadata.get("kernelspec", {}).get("name", "python3"), run_trailing_cells=True
    )  # students see their whole notebook run
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
