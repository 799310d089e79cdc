"""Shared fixtures. Tests talk to the lib's public API and the ``llmcourse`` CLI, never to internals
they do not need (the cs336 "adapters" idea)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]

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


def run_cli(*args: str, course_dir: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if course_dir is not None:
        env["LLMCOURSE_COURSE_DIR"] = str(course_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "llmcourse.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=1800
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"llmcourse {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def solution_code(assignment: str, notebook: str) -> dict[str, str]:
    """grade_id -> the solution cell's code with nbgrader's markers removed."""
    nb = nbformat.read(REPO / "solutions" / assignment / f"{notebook}.ipynb", as_version=4)
    out = {}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            lines = [
                l for l in cell.source.splitlines() if "### BEGIN SOLUTION" not in l and "### END SOLUTION" not in l
            ]
            out[meta["grade_id"]] = "\n".join(lines)
    return out


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
