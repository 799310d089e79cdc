"""Autograde a class: parallel, resumable, one run per assignment at a time.

``autograde`` takes the course's lock, imports new submissions, makes sure the release is current,
skips students whose recorded result matches their files, and hands the rest to grading workers
(:mod:`llmcourse.grading.worker`): local threads by default, or Dask (a LocalCluster, or a scheduler
address for a real cluster whose workers see the course directory). Every result is written as it
arrives, and ``reports/<assignment>.json|csv`` at the end.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from .course import Course, GradingOptions, PipelineError
from .nbgrader_setup import prepare_environment
from .release import ensure_generated
from .submission import StudentResult, fingerprint, import_submissions, load_result
from .worker import Job, close_workers, run_worker

Progress = Callable[[StudentResult, int, int], None]


@contextlib.contextmanager
def grading_lock(course: Course, assignment: str) -> Iterator[None]:
    """One grading run per course and assignment at a time: a second one (a double click, a second
    terminal) would grade the same students twice over. The lock dies with its process, so a killed
    run never leaves it behind."""
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


def autograde(
    course: Course,
    assignment: str,
    submissions: Path | None = None,
    students: list[str] | None = None,
    options: GradingOptions | None = None,
    dask: str | None = None,
    progress: Progress | None = None,
) -> list[StudentResult]:
    """Grade a class in parallel; resumable; one bad submission never stops the batch.

    dask: None runs local worker threads (each grading in its own subprocess); "local" starts a Dask
    LocalCluster; any other value is a scheduler address (workers must see the course directory).
    """
    from .kernel import remove_stale_stages

    options = options or GradingOptions()
    course.check_assignment(assignment)
    with grading_lock(course, assignment):
        try:
            if submissions is not None:
                import_submissions(course, assignment, submissions)
            ensure_generated(course, assignment)  # the gradebook needs the source notebooks
            prepare_environment(course, options)
            submitted = course.root / "submitted"
            everyone = (
                sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir()) if submitted.exists() else []
            )
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
            for r in results:
                progress and progress(r, len(results), len(chosen))
            jobs = [Job(str(course.root), str(course.repo), course.db_url, assignment, s, options) for s in todo]
            for result in _grade_all(jobs, {"PATH": os.environ["PATH"]}, options.workers, dask):
                results.append(result)
                progress and progress(result, len(results), len(chosen))
            write_report(course, assignment)
            return sorted(results, key=lambda r: r.student)
        finally:
            remove_stale_stages()


def _grade_all(jobs: list[Job], env: dict, workers: int, dask: str | None) -> Iterator[StudentResult]:
    if not jobs:
        return
    if dask:
        from distributed import Client, LocalCluster, as_completed

        # Each task grades in its own worker subprocess anyway, so the local cluster's Dask workers can
        # be threads: worker processes would only add start-up time.
        cluster = (
            LocalCluster(n_workers=workers, threads_per_worker=1, processes=False, dashboard_address=None)
            if dask == "local"
            else None
        )
        with Client(cluster if cluster else dask) as client:
            futures = [client.submit(run_worker, job, env, pure=False) for job in jobs]
            for future in as_completed(futures):
                yield future.result()
        if cluster:
            cluster.close()
            close_workers()  # a LocalCluster's workers are threads of this process
        return
    from concurrent.futures import ThreadPoolExecutor, as_completed

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(run_worker, job, env) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
    close_workers()


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
