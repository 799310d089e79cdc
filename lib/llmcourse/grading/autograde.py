"""Autograde a class: parallel, resumable, one run per assignment at a time.

``autograde`` takes the course's lock, imports new submissions, makes sure the release is current,
skips students whose recorded result matches their files, and hands the rest to grading workers
(:mod:`llmcourse.grading.worker`): local threads by default, or Dask (a LocalCluster, or a scheduler
address for a real cluster whose workers see the course directory). Every result is written as it
arrives, and ``reports/<assignment>.json|csv`` at the end.

Links and special files are never followed: an import copies plain files only, links put into ``submitted/``
some other way are set aside before anything reads the folder, and each kernel works on a throwaway copy
(:mod:`llmcourse.grading.safe_files`, :class:`llmcourse.grading.execute.GradingExecute`).

No submission can end the batch or make it loop. A job whose worker died is graded again at the end,
alone; dying alone as well marks it failed with the reason (:mod:`llmcourse.grading.worker`). A run that
was itself killed leaves the attempts it had in flight written down: a resumed run grades those alone,
after everyone else, and one that was already alone when the run died is recorded as failed, not graded
a third time. Only ``--force`` (e.g. with ``--student``) grades such a submission again.
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
from .nbgrader_setup import prepare_environment, venv_bin_on_path
from .release import ensure_generated
from .submission import (
    StudentResult,
    fingerprint,
    import_submissions,
    load_result,
    save_result,
    set_aside_links,
    stopped_twice,
    unfinished_attempt,
)
from .worker import RETRY, Job, close_workers, prestart_workers, run_worker

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
            submitted = course.root / "submitted"
            everyone = (
                sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir()) if submitted.exists() else []
            )
            venv_bin_on_path()
            env = {"PATH": os.environ["PATH"]}
            if not dask:  # they import nbgrader while this process generates the release and writes policies
                prestart_workers(course, env, min(options.workers, len(students or everyone)))
            ensure_generated(course, assignment)  # the gradebook needs the source notebooks
            prepare_environment(course, options, only=assignment)
            chosen = students or everyone
            results, todo, suspects = [], [], []
            for student in chosen:
                if student not in everyone:
                    results.append(StudentResult(student, "error", messages=[f"no submission for {assignment}"]))
                    continue
                set_aside_links(course, assignment, student)  # a link is never followed, not even to hash it
                stamp = fingerprint(course, assignment, student)
                old = load_result(course, assignment, student)
                unfinished = None if options.force else unfinished_attempt(course, assignment, student)
                if old and not options.force and old.fingerprint == stamp:
                    old.status = "skipped" if old.status == "graded" else old.status
                    results.append(old)
                elif unfinished and unfinished.fingerprint == stamp and unfinished.alone:
                    why = "the grading run was killed while it graded this submission alone"
                    results.append(stopped_twice(course, assignment, student, why, stamp))
                    save_result(course, assignment, results[-1])
                elif unfinished and unfinished.fingerprint == stamp:
                    suspects.append(student)  # in flight when a run was killed: graded again, alone
                else:
                    todo.append(student)
            for r in results:
                progress and progress(r, len(results), len(chosen))

            def job(student: str) -> Job:
                return Job(str(course.root), str(course.repo), course.db_url, assignment, student, options)

            for result in _grade_all([job(s) for s in todo], [job(s) for s in suspects], env, options.workers, dask):
                results.append(result)
                progress and progress(result, len(results), len(chosen))
            write_report(course, assignment)
            return sorted(results, key=lambda r: r.student)
        finally:
            close_workers()  # started ahead but never given a job (everyone skipped), or left by an error
            remove_stale_stages()


def _grade_all(
    jobs: list[Job], suspects: list[Job], env: dict, workers: int, dask: str | None
) -> Iterator[StudentResult]:
    """Grade ``jobs`` in parallel, then, one at a time with nothing else in flight, the jobs whose worker
    died and the ``suspects`` (in flight when an earlier run was killed)."""
    if not jobs and not suspects:
        return
    with _pool(workers, dask, env) as (submit, as_completed):
        by_student = {job.student: job for job in jobs}
        again = []
        for future in as_completed([submit(job, False) for job in jobs]):
            result = future.result()
            if result.status == RETRY:
                again.append(by_student[result.student])
            else:
                yield result
        for job in again + suspects:
            yield submit(job, True).result()


@contextlib.contextmanager
def _pool(workers: int, dask: str | None, env: dict):
    """(submit(job, alone) -> future, as_completed) of local worker threads or of Dask."""
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
            yield (lambda job, alone: client.submit(run_worker, job, env, alone, pure=False)), as_completed
        if cluster:
            cluster.close()
            close_workers()  # a LocalCluster's workers are threads of this process
        return
    from concurrent.futures import ThreadPoolExecutor, as_completed

    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield (lambda job, alone: pool.submit(run_worker, job, env, alone)), as_completed
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
