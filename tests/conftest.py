"""Shared fixtures. Tests talk to the lib's public API and the ``llmcourse`` CLI, never to internals
they do not need (the cs336 "adapters" idea).

``make test`` runs the suite on every core (pytest-xdist, ``-n auto``). A scenario batch (a class of
submissions graded end to end, then read by many tests) is a module- or param-scoped fixture; under
xdist all its tests form one unit of work for one worker (:data:`BATCHES`, :func:`pytest_xdist_make_scheduler`),
run in file order, so the batch is graded once per run and tests that add to its course (feedback, a
regrade) never race each other. Every other test is scheduled on its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from llmcourse.grading.assignment import Manifest

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's commands: jupyter, nbgrader, llmcourse

# Jupyter and IPython state inside the work tree, never the machine's home (design.md s.6).
for var, sub in [
    ("JUPYTER_CONFIG_DIR", ".jupyter/config"),
    ("JUPYTER_DATA_DIR", ".jupyter/data"),
    ("JUPYTER_RUNTIME_DIR", ".jupyter/runtime"),
    ("IPYTHONDIR", ".ipython"),
]:
    os.environ.setdefault(var, str(REPO / sub))
os.environ.setdefault("MPLBACKEND", "Agg")
# The Shakespeare cache is built once per checkout, not in the machine's home.
os.environ.setdefault("LLMCOURSE_CACHE_DIR", str(REPO / ".cache"))


# Modules holding a scenario batch: "module" (one batch for the whole module) or "per_param" (one batch per
# value of the batch fixture's parameter, the first id in each test's brackets: one per assignment).
# A module whose module-scoped fixture writes one fixed path must be here too: on two workers each would
# run the fixture, and one would delete what the other is reading (test_site's pages did, in CI).
BATCHES = {
    "tests/test_site.py": "module",
    "tests/grading/test_attacks.py": "module",
    "tests/grading/test_links.py": "module",
    "tests/grading/test_grading.py": "module",
    "tests/grading/test_nbgrader_tools.py": "module",
    "tests/grading/test_manual_grading.py": "module",
    "tests/grading/test_bundle.py": "module",
    "tests/grading/test_incremental_training.py": "module",
    "tests/grading/test_exchange.py": "module",
    "tests/grading/test_every_assignment.py": "per_param",
    "tests/grading/test_damage.py": "module",
    "tests/grading/test_dispatch.py": "per_param",
}


def batch_of(nodeid: str) -> str | None:
    """The batch a test reads (``None``: it reads none), from its id alone (all the scheduler sees)."""
    module, _, name = nodeid.partition("::")
    kind = BATCHES.get(module)
    if kind == "per_param" and "[" in name:
        return module + "[" + name.split("[", 1)[1].rstrip("]").split("-")[0]
    return module if kind else None


@pytest.hookimpl(optionalhook=True)  # optional: `-p no:xdist` runs the suite serially
def pytest_xdist_make_scheduler(config, log):
    """xdist's scheduling by scope, the scope being a test's batch: the tests of one batch go to one
    worker, in order; every other test is a unit of its own. (``--dist loadgroup`` would do this with
    ``xdist_group`` marks, but pytest-xdist 3.8 cannot rename a test's id under pytest 9.)"""
    from xdist.scheduler import LoadScopeScheduling

    class BatchScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return batch_of(nodeid) or nodeid

    return None if config.getvalue("dist") == "each" else BatchScheduling(config, log)


def run_cli(
    *args: str, course_dir: Path | None = None, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {})}
    if course_dir is not None:
        env["LLMCOURSE_COURSE_DIR"] = str(course_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "llmcourse.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"llmcourse {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def manifest(assignment: str) -> Manifest:
    """The assignment's parts, points, checks and solution code, parsed by the grader's own parser."""
    return Manifest.load(REPO / "solutions" / assignment)


def solution_code(assignment: str, notebook: str) -> dict[str, str]:
    """grade_id -> the solution cell's code with nbgrader's markers removed."""
    return dict(manifest(assignment).solutions[notebook])


def batch_workers() -> list[str]:
    """``autograde`` options for a test's batch: one grading worker when pytest-xdist already keeps every
    core busy (a second worker would only pay its start-up again), the default (the cores) otherwise."""
    return ["--workers", "1"] if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 else []


def make_submission(
    root: Path,
    student: str,
    assignment: str,
    notebook: str,
    answers: dict[str, str],
    extra_cells: dict[str, str] | None = None,
    drop_cells: tuple[str, ...] = (),
) -> Path:
    """Fill the released notebook's solution cells the way a student would, and save it in
    nbgrader's submitted layout: root/<student>/<assignment>/<notebook>.ipynb."""
    nb = nbformat.read(REPO / "assignments" / assignment / f"{notebook}.ipynb", as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in answers:
            cell.source = answers[gid]
        if extra_cells and gid in extra_cells:  # an edit to a non-solution cell (tampering)
            cell.source = extra_cells[gid]
    nb.cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") not in drop_cells]
    path = root / student / assignment / f"{notebook}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def instructor_env(course: Path) -> dict:
    """The environment of an instructor's shell on ``course``: the venv's commands (nbgrader, jupyter,
    llmcourse) first on PATH, and the course named for the repository's nbgrader_config.py."""
    return dict(os.environ, LLMCOURSE_COURSE_DIR=str(course), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")


def gradebook_scores(course: Path) -> dict[str, float]:
    """student -> total auto score in the course's nbgrader gradebook, read with plain SQL."""
    rows = (
        sqlite3.connect(course / "gradebook.db")
        .execute(
            "SELECT s.student_id, SUM(g.auto_score) FROM grade g JOIN submitted_notebook n ON g.notebook_id = n.id "
            "JOIN submitted_assignment s ON n.assignment_id = s.id GROUP BY s.student_id"
        )
        .fetchall()
    )
    return {student: float(score or 0) for student, score in rows}


def hidden_source_lines(nb) -> list[str]:
    """The non-empty lines between nbgrader's hidden-test markers in a notebook's cells, stripped."""
    lines, inside = [], False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if "### BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "### END HIDDEN TESTS" in line:
                inside = False
            elif inside and line.strip():
                lines.append(line.strip())
    return lines


# ---------------------------------------------------------------------------------------------- servers, browsers

CHROMIUM = os.environ.get("LLMCOURSE_CHROMIUM", "/usr/bin/chromium")


def chromium() -> str:
    """Debian's headless Chromium (or LLMCOURSE_CHROMIUM), or a failure that says how to install it."""
    path = shutil.which(CHROMIUM)
    if path is None:
        pytest.fail(
            f"headless Chromium not found at {CHROMIUM}: the browser tests need it. Run the set-up "
            "first: `make setup-system` (it installs Debian's `chromium` with apt), or point "
            "LLMCOURSE_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now, for a test's own server."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_jupyter(
    url: str, server: subprocess.Popen, log: Path, seconds: float = 120, headers: dict | None = None
) -> None:
    """Wait until the Jupyter server at ``url`` answers ``/api/status``; fail with the end of its ``log``
    if it exits first or is not up within ``seconds`` (generous: the CI box has two busy cores)."""
    request = urllib.request.Request(f"{url}/api/status", headers=headers or {})
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(request, timeout=5).close()
            return
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-3000:] if log.exists() else "(no log)"
                raise AssertionError(f"the Jupyter server at {url} did not start:\n{tail}") from None
            time.sleep(0.5)


@contextlib.contextmanager
def formgrader(course: Path, log: Path):
    """A real ``jupyter server`` started from the repository (its nbgrader_config.py names the course), serving
    the folder that holds the course (formgrader requires that). Yields ``call(path, method, body, timeout)``:
    the server's answer, parsed when it is JSON (``/api/...``, ``/formgrader/api/...``), else the page's text."""
    port, token = free_port(), "llmcourse-test-token"
    url, headers = f"http://127.0.0.1:{port}", {"Authorization": f"token {token}"}
    env = instructor_env(course)
    args = ["--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1", f"--ServerApp.token={token}"]
    with open(log, "w") as out:
        server = subprocess.Popen(
            [str(BIN / "jupyter"), "server", *args, f"--ServerApp.root_dir={course.parent}"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

        def call(path: str, method: str = "GET", body: dict | None = None, timeout: float = 60):
            data = json.dumps(body).encode() if body is not None else b"" if method == "POST" else None
            request = urllib.request.Request(
                url + path, method=method, data=data, headers={**headers, "Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=timeout) as response:
                text = response.read().decode()
            # JSON, though formgrader sends it as text/html
            return json.loads(text) if path.startswith(("/api/", "/formgrader/api/")) else text

        try:
            wait_for_jupyter(url, server, log, headers=headers)
            yield call
        finally:
            server.terminate()
            server.wait(timeout=60)


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="module")
def one_cpu_thread():
    """For modules of tiny tensors: one thread beats two, whose OpenMP hand-offs dominate (badly so
    on a busy machine). Restored afterwards for the rest of the suite."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# SmolLM2-135M is read from its GGUF file by two loaders: ours (llmcourse.toolbox.smollm2) and
# transformers'. Each load dequantizes 135 M parameters, so a test process loads each one once.
# Tests only run them in eval mode under no_grad; none may change their weights.


@pytest.fixture(scope="session")
def smollm2_ours():
    """(Llama, tokenizer) by the course's own GGUF loader."""
    from llmcourse.toolbox.smollm2 import smollm2

    return smollm2()


@pytest.fixture(scope="session")
def smollm2_hf():
    """(model, tokenizer) by transformers' GGUF loader, on the same file, offline."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from llmcourse.toolbox.smollm2 import smollm2_path
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = smollm2_path()
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)
    return model.eval(), tok
