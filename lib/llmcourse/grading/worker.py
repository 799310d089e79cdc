"""Grading workers: one long-lived process per grading thread grades one student per request.

The protocol, both halves in this file:

* **parent** (:func:`run_worker`, a thread of the local pool or a Dask task): writes a :class:`Job` as one
  JSON line to the worker's stdin and waits for one JSON result line, with a hard deadline. Past it, the
  whole process group (the worker and the student's kernel) is killed and the next job starts a fresh
  worker. The result is saved whatever happened, so one bad submission never stops the batch.
* **a worker that dies** (a student's code killed it, or killed every grading process it could reach) is
  replaced by a fresh one, and its job comes back as :data:`RETRY`: the dispatcher grades it again *alone*
  (nothing else in flight), so a second death is this submission's doing, and it is recorded as failed with
  the reason, never retried again (:func:`llmcourse.grading.submission.stopped_twice`). Each attempt is
  written down before it starts, so a batch killed outside this process does not loop on a resume either.
* **process groups**: each worker runs in a session of its own (and nbgrader starts every kernel in its
  own session), so a signal sent to a kernel's or a worker's process group never reaches this process.
* **child** (``python -m llmcourse.grading.worker --serve``, :func:`main`): reads jobs line by line and
  answers each with :func:`llmcourse.grading.submission.grade_one`'s result. Staying alive between jobs
  saves the imports (seconds) for every student after the first; ``python -m llmcourse.grading.worker
  JOB`` grades one job and exits. The student's kernel dies with its worker, and the worker with the
  grading run (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

from .course import Course, GradingOptions
from .submission import (
    Attempt,
    StudentResult,
    failed,
    fingerprint,
    grade_one,
    save_result,
    start_attempt,
    stopped_twice,
)

PARENT_ENV = "LLMCOURSE_GRADER_PID"  # the grading run a worker must die with
RETRY = "retry"  # status of a job whose worker died under it: the dispatcher grades it again, alone


@dataclasses.dataclass(frozen=True)
class Job:
    """One student to grade: everything a worker needs, as plain data (a JSON line, or a Dask argument)."""

    root: str
    repo: str
    db_url: str | None
    assignment: str
    student: str
    options: GradingOptions

    def course(self) -> Course:
        return Course(Path(self.root), Path(self.repo), self.db_url)

    def to_line(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_line(cls, line: str) -> Job:
        raw = json.loads(line)
        return cls(**{**raw, "options": GradingOptions(**raw["options"])})

    def deadline(self) -> float:
        """Seconds the whole job may take: every notebook's limit plus start-up and bookkeeping."""
        return self.options.notebook_timeout * max(1, len(self.course().notebooks(self.assignment))) + 180


# --------------------------------------------------------------------------- parent half


class WorkerProcess:
    """A ``python -m llmcourse.grading.worker --serve`` process and the pipes to it."""

    def __init__(self, env: dict, log: Path):
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmcourse.grading.worker", "--serve"],
            env={**os.environ, **env, PARENT_ENV: str(os.getpid())},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(log, "ab"),
            text=True,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def grade(self, job: Job) -> tuple[dict | None, str, bool]:
        """(result, '', False), or (None, why, died): ``died`` when the process ended under the job
        (a crash, or a signal from outside), not when this side stopped it at the deadline."""
        try:
            self.proc.stdin.write(job.to_line() + "\n")
            self.proc.stdin.flush()
        except OSError:
            self.proc.wait()
            return None, f"the grading process had died before it started ({self.exit_status()})", True
        deadline = job.deadline()
        end = time.monotonic() + deadline
        while True:
            ready, _, _ = select.select([self.proc.stdout], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                self.kill()
                return None, f"grading took longer than {deadline:.0f} s and was stopped", False
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait()
                tail = [l for l in self.log.read_text(errors="replace").splitlines() if l.strip()][-1:]
                why = f"the grading process died ({self.exit_status()})"
                return None, why + (f": {tail[0][:300]}" if tail and self.proc.returncode > 0 else ""), True
            try:
                return json.loads(line), "", False
            except ValueError:
                continue  # not ours: stray output from a library

    def exit_status(self) -> str:
        code = self.proc.returncode
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit code {code}"

    def kill(self) -> None:
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
_STARTED: list[WorkerProcess] = []  # every worker process this process started, to close them at the end
_SPARE: list[WorkerProcess] = []  # started ahead by prestart_workers, taken by the first grading threads
_LOCK = threading.Lock()


def prestart_workers(course: Course, env: dict, n: int) -> None:
    """Start ``n`` worker processes now: they import nbgrader and the grading code (a second or two each)
    while this process imports the submissions, generates the release and writes the kernel policies."""
    for i in range(n):
        log = course.root / ".llmcourse" / "logs" / f"worker-{os.getpid()}-spare{i}.log"
        worker = WorkerProcess(env, log)
        with _LOCK:
            _SPARE.append(worker)
            _STARTED.append(worker)


def _worker(course: Course, env: dict) -> WorkerProcess:
    """This thread's worker process: a spare started ahead, else a fresh one when there is none yet or the
    last one died."""
    worker = getattr(_LOCAL, "worker", None)
    if worker is None or not worker.alive():
        with _LOCK:
            spares = [w for w in _SPARE if w.alive()]
            worker = spares.pop(0) if spares else None
            _SPARE[:] = spares
        if worker is None:
            log = course.root / ".llmcourse" / "logs" / f"worker-{os.getpid()}-{threading.get_ident()}.log"
            worker = WorkerProcess(env, log)
            with _LOCK:
                _STARTED.append(worker)
        _LOCAL.worker = worker
    return worker


def run_worker(job: Job, env: dict, alone: bool = False) -> StudentResult:
    """Grade one student in this thread's worker process, with a hard deadline; never raises.

    alone: nothing else is being graded meanwhile, so if the worker dies, this submission killed it.
    A worker that dies under a job that was not alone returns a :data:`RETRY` result and saves nothing:
    it may have been killed by another submission graded beside it. A module-level function of plain
    arguments, so a Dask worker can run it as well as a thread.
    """
    course = job.course()
    stamp = fingerprint(course, job.assignment, job.student)
    start_attempt(course, job.assignment, job.student, Attempt(stamp, alone))
    raw, why, died = _worker(course, env).grade(job)
    if raw is not None:
        result = StudentResult(**raw)
    elif died and not alone:
        return StudentResult(job.student, RETRY, messages=[why], fingerprint=stamp)
    elif died:
        result = stopped_twice(course, job.assignment, job.student, why, stamp)
    else:
        result = failed(course, job.assignment, job.student, [why], stamp)
    save_result(course, job.assignment, result)
    return result


def close_workers() -> None:
    """Close every worker process this process started (their threads may be gone already)."""
    with _LOCK:
        started, _STARTED[:], _SPARE[:] = list(_STARTED), [], []
    for worker in started:
        worker.close()


# --------------------------------------------------------------------------- child half


def grade(job: Job) -> dict:
    return dataclasses.asdict(grade_one(job.course(), job.assignment, job.student, job.options))


def die_with_parent(parent: int) -> None:
    """SIGKILL this worker when the grading run that started it dies (PR_SET_PDEATHSIG = 1): a worker in
    a session of its own would otherwise outlive a killed run and write a result into the gradebook
    while the resumed run grades the same student."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def warm_up() -> None:
    """Import what grading a student needs before the first job arrives (a started-ahead worker does this
    while the grading run is still setting up; otherwise the first student waits for it)."""
    import nbclient  # noqa: F401
    import nbgrader.apps.api  # noqa: F401
    import nbgrader.converters  # noqa: F401

    from . import execute, preprocessors  # noqa: F401


def main() -> int:
    if sys.platform.startswith("linux") and os.environ.get(PARENT_ENV, "").isdigit():
        die_with_parent(int(os.environ[PARENT_ENV]))
    # The grader itself is capped too: a flood that slips past the kernel's limits must crash this
    # worker (reported, batch goes on), not the machine.
    cap = (2 * GradingOptions().memory_mb + 2048) << 20
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    warnings.simplefilter("ignore")
    # Results travel on the real stdout; anything a library prints goes to stderr (the worker log).
    results = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    if sys.argv[1:] == ["--serve"]:
        warm_up()
    jobs = sys.stdin if sys.argv[1:] == ["--serve"] else [sys.argv[1]]
    for line in jobs:
        if line.strip():
            results.write(json.dumps(grade(Job.from_line(line))) + "\n")
            results.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
