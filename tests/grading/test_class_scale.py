"""Class-scale grading: an interrupted batch resumes to exactly the grades of a clean run; grading on a
real Dask cluster (a scheduler and two worker processes on loopback) with the gradebook at another
SQLAlchemy URL; the gradebook on a real PostgreSQL server; LMS zip collection and the integrity report
through the CLI."""

from __future__ import annotations

import csv
import glob
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, make_submission, manifest, run_cli, solution_code

A, NB = "01_tokenization", "tokenization"
FULL = sum(part.points for part in manifest(A).parts)  # the point table of the solution notebook's test cells
DECODE = 2.0
WRONG_DECODE = "def decode(ids, vocab):\n    return ''\n"


def make_class(root, n_solution, n_release, n_wrong) -> dict[str, float]:
    """Students whose grades follow from the point table: solution 15, release 0, wrong decode 13."""
    good = solution_code(A, NB)
    expected = {}
    for i in range(n_solution):
        make_submission(root, f"s{i:02d}_solution", A, NB, good)
        expected[f"s{i:02d}_solution"] = FULL
    for i in range(n_release):
        make_submission(root, f"r{i:02d}_release", A, NB, {})
        expected[f"r{i:02d}_release"] = 0.0
    for i in range(n_wrong):
        make_submission(root, f"w{i:02d}_wrong", A, NB, {**good, "decode": WRONG_DECODE})
        expected[f"w{i:02d}_wrong"] = FULL - DECODE
    return expected


def exported(course) -> dict[str, float]:
    out = course / "grades.csv"
    run_cli("export", "--out", str(out), course_dir=course)
    rows = list(csv.DictReader(out.open()))
    students = [r["student_id"] for r in rows]
    assert len(students) == len(set(students)), "a student was counted twice"
    return {r["student_id"]: float(r["score"]) for r in rows}


def test_interrupted_batch_resumes_to_the_same_grades(tmp_path):
    subs, course = tmp_path / "subs", tmp_path / "course"
    expected = make_class(subs, 10, 5, 5)
    run_cli("generate", A, "--no-update-repo", course_dir=course)
    env = dict(os.environ, LLMCOURSE_COURSE_DIR=str(course))
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmcourse.cli", "autograde", A, "--submissions", str(subs), "--workers", "2"],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = course / ".llmcourse" / "results" / A
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list(results.glob("*.json"))) < 5 and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, "the batch finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)  # the grader, its workers and their kernels: all at once
    proc.wait()
    done_before = len(list(results.glob("*.json")))
    assert 5 <= done_before < len(expected)

    out = run_cli("autograde", A, course_dir=course)  # no --force: resume
    report = {r["student"]: r for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    assert {s: r["score"] for s, r in report.items()} == expected
    assert all(r["status"] == "graded" for r in report.values())
    assert out.stdout.count(" skipped ") >= done_before  # finished work was not redone
    assert exported(course) == expected
    db = sqlite3.connect(course / "gradebook.db")
    assert db.execute("SELECT COUNT(*) FROM submitted_assignment").fetchone()[0] == len(expected)


def test_resubmission_is_regraded(tmp_path):
    subs, course = tmp_path / "subs", tmp_path / "course"
    make_class(subs, 0, 1, 0)
    run_cli("autograde", A, "--submissions", str(subs), course_dir=course)
    make_submission(subs, "r00_release", A, NB, solution_code(A, NB))  # the student fixed it
    run_cli("autograde", A, "--submissions", str(subs), course_dir=course)
    assert exported(course) == {"r00_release": FULL}


def _processes() -> dict[int, tuple[int, str, bytes]]:
    """pid -> (parent pid, command line, environment) of every process this user can read."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                ppid = int(next(line.split()[1] for line in f if line.startswith("PPid:")))
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{name}/environ", "rb") as f:
                environ = f.read()
        except (OSError, StopIteration, ValueError):
            continue
        out[int(name)] = (ppid, cmdline, environ)
    return out


def _grade_watching(args, course, marker, kill_at=(), kill_run=False) -> tuple[int, list[int]]:
    """Run ``llmcourse autograde`` (marked with ``marker`` in its environment, so only its own processes are
    ever touched) and watch its grading workers start kernels; when the n-th kernel (n in ``kill_at``)
    appears, SIGKILL the worker that started it, as a student's cell that signals its grader would (or,
    ``kill_run``, the ``llmcourse autograde`` process itself). Returns (exit code, the kernels' pids in order
    of appearance)."""
    env = dict(os.environ, LLMCOURSE_COURSE_DIR=str(course), LLMCOURSE_TEST_RUN=marker)
    cmd = [sys.executable, "-m", "llmcourse.cli", "autograde", A, *args]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    tag = f"LLMCOURSE_TEST_RUN={marker}".encode()
    kernels: list[int] = []
    due: dict[int, float] = {}  # worker pid -> when to kill it: 2 s into its kernel, while that kernel runs
    deadline = time.monotonic() + 900
    while proc.poll() is None and time.monotonic() < deadline:
        procs = _processes()
        workers = {pid for pid, (_, cmd, env) in procs.items() if tag in env and "llmcourse.grading.worker" in cmd}
        for pid, (ppid, cmd, _) in sorted(procs.items()):
            if ppid in workers and "llmcourse.grading.kernel" in cmd and pid not in kernels:
                kernels.append(pid)
                if len(kernels) in kill_at:
                    due[ppid] = time.monotonic() + 2
        for worker, when in list(due.items()):
            if time.monotonic() >= when:
                os.kill(proc.pid if kill_run else worker, signal.SIGKILL)
                del due[worker]
        time.sleep(0.1)
    if proc.poll() is None:
        proc.kill()
    return proc.wait(), kernels


def _victim_class(tmp_path: Path) -> tuple[Path, Path, str]:
    """(submissions, course, marker): a_victim (an honest notebook: only the kills make it fail), b_solution
    and c_wrong (decode wrong), the release generated, and a marker naming this test's grading runs."""
    import uuid

    subs, course = tmp_path / "subs", tmp_path / "course"
    good = solution_code(A, NB)
    make_submission(subs, "a_victim", A, NB, good)
    make_submission(subs, "b_solution", A, NB, good)
    make_submission(subs, "c_wrong", A, NB, {**good, "decode": WRONG_DECODE})
    run_cli("generate", A, "--no-update-repo", course_dir=course)
    return subs, course, uuid.uuid4().hex


def _victim_failed_others_graded(course: Path) -> dict:
    """The report by student, checked: a_victim failed with zero, the others graded exactly."""
    report = {r["student"]: r for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    assert {s: (r["status"], r["score"]) for s, r in report.items()} == {
        "a_victim": ("error", 0.0),
        "b_solution": ("graded", FULL),
        "c_wrong": ("graded", FULL - DECODE),
    }
    return report


def test_a_submission_whose_grading_kills_its_worker_twice_is_failed_not_looped(tmp_path):
    """A worker killed under a submission is replaced and the batch goes on; the submission is graded once
    more, alone, and when its worker dies again it is recorded as failed with the reason (zero in the
    gradebook). A rerun leaves it so without starting a kernel; ``--student X --force`` grades it again."""
    subs, course, marker = _victim_class(tmp_path)
    # One worker grades in name order: a_victim (kernel 1, killed), b_solution (2), c_wrong (3), then
    # a_victim again, alone (kernel 4, killed): exactly four kernels, never a fifth.
    rc, kernels = _grade_watching(["--submissions", str(subs), "--workers", "1"], course, marker, kill_at=(1, 4))
    assert rc == 0
    assert len(kernels) == 4
    report = _victim_failed_others_graded(course)
    why = report["a_victim"]["messages"]
    assert len(why) == 1 and "stopped the grader twice" in why[0] and "killed by SIGKILL" in why[0], why
    assert "--student a_victim --force" in why[0]
    assert exported(course) == {"a_victim": 0.0, "b_solution": FULL, "c_wrong": FULL - DECODE}

    rc, kernels = _grade_watching([], course, marker)  # resume: nothing to grade, no kernel started
    assert rc == 0 and kernels == []
    again = {r["student"]: r for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    assert again == report

    rc, kernels = _grade_watching(["--student", "a_victim", "--force"], course, marker)  # asked explicitly
    assert rc == 0 and len(kernels) == 1
    assert exported(course) == {"a_victim": FULL, "b_solution": FULL, "c_wrong": FULL - DECODE}


def test_a_submission_graded_when_the_whole_run_died_twice_is_failed_not_looped(tmp_path):
    """The ``llmcourse autograde`` process itself is killed while one submission is graded (its workers and
    kernels die with it). The resumed run grades everyone else, then that submission alone; killed again,
    the third run records it as failed with the reason without starting a kernel."""
    subs, course, marker = _victim_class(tmp_path)
    one = ["--workers", "1"]
    rc, kernels = _grade_watching(["--submissions", str(subs), *one], course, marker, kill_at=(1,), kill_run=True)
    assert rc == -signal.SIGKILL and len(kernels) == 1
    # resumed: b_solution (kernel 1), c_wrong (2), then a_victim alone (3), when the run is killed again
    rc, kernels = _grade_watching(one, course, marker, kill_at=(3,), kill_run=True)
    assert rc == -signal.SIGKILL and len(kernels) == 3
    time.sleep(1)  # the killed run's workers and kernels die with it
    assert not [pid for pid, (_, _, env) in _processes().items() if f"LLMCOURSE_TEST_RUN={marker}".encode() in env]
    rc, kernels = _grade_watching(one, course, marker)
    assert rc == 0 and kernels == []
    report = _victim_failed_others_graded(course)
    why = report["a_victim"]["messages"]
    assert len(why) == 1 and "stopped the grader twice" in why[0] and "killed while it graded" in why[0], why
    assert exported(course) == {"a_victim": 0.0, "b_solution": FULL, "c_wrong": FULL - DECODE}


def _start(cmd, log):
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)


@pytest.fixture
def dask_cluster(tmp_path):
    """A real Dask scheduler and two single-threaded worker processes on 127.0.0.1."""
    bindir = os.path.dirname(sys.executable)
    sched_file = tmp_path / "scheduler.json"
    log = open(tmp_path / "dask.log", "w")
    procs = [
        _start(
            [
                f"{bindir}/dask",
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(sched_file),
            ],
            log,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            procs.append(
                _start(
                    [
                        f"{bindir}/dask",
                        "worker",
                        address,
                        "--nworkers",
                        "1",
                        "--nthreads",
                        "1",
                        "--host",
                        "127.0.0.1",
                        "--no-dashboard",
                        "--name",
                        f"w{len(procs)}",
                    ],
                    log,
                )
            )
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            assert len(client.scheduler_info()["workers"]) == 2
        yield address
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        log.close()


def test_grading_on_a_dask_cluster_with_another_database(tmp_path, dask_cluster):
    subs, course = tmp_path / "subs", tmp_path / "course"
    expected = make_class(subs, 2, 1, 1)
    db = tmp_path / "elsewhere" / "grades.db"
    db.parent.mkdir()
    url = f"sqlite:///{db}"
    run_cli("--db", url, "autograde", A, "--submissions", str(subs), "--dask", dask_cluster, course_dir=course)
    report = {r["student"]: r["score"] for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    assert report == expected
    assert not (course / "gradebook.db").exists()  # everything went to the URL we gave
    rows = (
        sqlite3.connect(db)
        .execute(
            "SELECT s.student_id, SUM(g.auto_score) FROM grade g JOIN submitted_notebook n ON g.notebook_id = n.id "
            "JOIN submitted_assignment s ON n.assignment_id = s.id GROUP BY s.student_id"
        )
        .fetchall()
    )
    assert {s: float(v) for s, v in rows} == expected


# A cell that connects to the Dask scheduler of the run grading it and asks a Dask worker to run code there,
# outside the sandbox: it would write the marker file and keep a wrong answer. Safe while the sandbox is
# broken: it only reaches this test's own cluster and writes only this test's file.
DASK_ATTACK = """
_found = []
try:
    import distributed
    with distributed.Client("{address}", timeout=5) as _client:
        _found.append("scheduler reached")
        _client.run(lambda: open("{marker}", "w").write("ran on a Dask worker, outside the sandbox"))
        _found.append("code ran on a worker")
except Exception as _e:
    print("no Dask:", type(_e).__name__)
print("DASK-PROBE", _found)
"""


def test_a_kernel_cannot_reach_the_dask_scheduler_of_its_run(tmp_path, dask_cluster):
    """With ``--dask tcp://...`` the kernel shares no network with the scheduler: nothing reached, no code
    ran on a worker, and the honest answer after the probe keeps full marks (a wrong one replaces it if the
    probe reached anything)."""
    import nbformat

    subs, course = tmp_path / "subs", tmp_path / "course"
    marker = tmp_path / "ran-on-a-dask-worker"
    good = solution_code(A, NB)
    attack = DASK_ATTACK.format(address=dask_cluster, marker=marker)
    wrong = "\n".join("    " + line for line in WRONG_DECODE.splitlines())
    make_submission(subs, "control_solution", A, NB, good)
    make_submission(subs, "dask_attack", A, NB, {**good, "decode": attack + good["decode"] + "\nif _found:\n" + wrong})
    run_cli("autograde", A, "--submissions", str(subs), "--dask", dask_cluster, course_dir=course)
    assert not marker.exists()
    report = {r["student"]: r["score"] for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    assert report == {"control_solution": FULL, "dask_attack": FULL}
    graded = course / "autograded" / "dask_attack" / A / f"{NB}.ipynb"
    printed = [o.get("text", "") for c in nbformat.read(graded, as_version=4).cells for o in c.get("outputs", [])]
    assert any("DASK-PROBE []" in t for t in printed), printed


@pytest.fixture
def postgres():
    """A throw-away PostgreSQL server (Debian's package, installed by `make test`) on a Unix socket only.

    Yields an SQLAlchemy URL. Run as the `postgres` system user when we are root (the server refuses root).
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb")) or [shutil.which("initdb")]
    assert found[-1], (
        "PostgreSQL is not installed: `make setup-system` (part of `make test`) installs Debian's postgresql"
    )
    bindir = Path(found[-1]).parent
    home = Path(tempfile.mkdtemp(prefix="llmcourse-pg-"))  # not under pytest's root-only tmp dir
    as_server = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        as_server = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:  # a free port number names the socket file
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = home / "data"

    def pg(*cmd):
        subprocess.run([*as_server, *map(str, cmd)], check=True, capture_output=True, timeout=120)

    pg(bindir / "initdb", "-D", data, "--auth=trust", "-U", "grader", "--no-sync")
    pg(
        bindir / "pg_ctl",
        "-D",
        data,
        "-l",
        home / "server.log",
        "-w",
        "-o",
        f"-k {home} -p {port} -c listen_addresses=''",
        "start",
    )
    try:
        pg(bindir / "createdb", "-h", home, "-p", port, "-U", "grader", "gradebook")
        yield f"postgresql+psycopg://grader@/gradebook?host={home}&port={port}"
    finally:
        pg(bindir / "pg_ctl", "-D", data, "-m", "immediate", "stop")
        shutil.rmtree(home, ignore_errors=True)


def test_gradebook_on_a_postgresql_server(tmp_path, postgres):
    """The "big course" set-up: parallel workers writing to a real database server, then a rerun."""
    import psycopg

    subs, course = tmp_path / "subs", tmp_path / "course"
    expected = make_class(subs, 2, 1, 1)
    run_cli("--db", postgres, "autograde", A, "--submissions", str(subs), "--workers", "2", course_dir=course)
    again = run_cli("--db", postgres, "autograde", A, course_dir=course)
    assert again.stdout.count(" skipped ") == len(expected)
    assert not (course / "gradebook.db").exists()  # everything went to the server
    out = tmp_path / "grades.csv"
    run_cli("--db", postgres, "export", "--out", str(out), course_dir=course)
    assert {r["student_id"]: float(r["score"]) for r in csv.DictReader(out.open())} == expected
    # read the server directly, not through nbgrader
    conninfo = postgres.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT s.student_id, SUM(g.auto_score) FROM grade g JOIN submitted_notebook n ON g.notebook_id = n.id "
            "JOIN submitted_assignment s ON n.assignment_id = s.id GROUP BY s.student_id"
        ).fetchall()
    assert {s: float(v) for s, v in rows} == expected


def test_collect_an_lms_zip_then_integrity_report(tmp_path):
    course = tmp_path / "course"
    good = solution_code(A, NB)
    staging = tmp_path / "staging"
    for student in ("ada", "ben"):
        make_submission(staging, student, A, NB, good)  # two students hand in the same code
    make_submission(staging, "cy", A, NB, {})
    export = tmp_path / "canvas.zip"
    with zipfile.ZipFile(export, "w") as z:
        for student in ("ada", "ben", "cy"):
            z.write(staging / student / A / f"{NB}.ipynb", f"{student}_1234_5678_{NB}.ipynb")
        z.writestr("readme.txt", "not a submission")
    out = run_cli("collect", A, str(export), course_dir=course)
    for student in ("ada", "ben", "cy"):
        assert (course / "submitted" / student / A / f"{NB}.ipynb").exists()
    assert "readme.txt" in out.stdout  # reported as unmatched

    out = run_cli("integrity", A, course_dir=course)
    report = (course / "reports").glob("integrity_*.csv")
    text = next(report).read_text()
    assert "ada" in text and "ben" in text
    assert "near the reference" in out.stdout

    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    failed = run_cli("collect", A, str(bad), course_dir=course, check=False)
    assert failed.returncode == 2 and "Traceback" not in failed.stderr


def test_a_second_concurrent_run_is_refused_clearly(tmp_path):
    """While one autograde holds the course's lock, another one stops with a message, not a traceback."""
    import fcntl

    course = tmp_path / "course"
    make_class(tmp_path / "subs", 0, 1, 0)
    run_cli("generate", A, "--no-update-repo", course_dir=course)
    lock = course / ".llmcourse" / f"autograde-{A}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as held:
        held.write("pid 4242")
        held.flush()
        fcntl.flock(held, fcntl.LOCK_EX)  # as a running grader holds it
        second = run_cli("autograde", A, "--submissions", str(tmp_path / "subs"), course_dir=course, check=False)
    assert second.returncode == 2 and "another autograde of 01_tokenization is running" in second.stderr
    assert "pid 4242" in second.stderr and "Traceback" not in second.stderr
    assert not (course / "submitted").exists()  # it touched nothing
    run_cli("autograde", A, "--submissions", str(tmp_path / "subs"), course_dir=course)  # lock released: runs
    assert exported(course) == {"r00_release": 0.0}
