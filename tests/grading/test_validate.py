"""``llmcourse validate`` as a student reads it (issue 10 item 7): on the 04 release with one wrong answer
(softmax forgets its ``dim``) and every other part untouched.

- no "TCP without encryption" warning heads the run (the kernel talks over IPC);
- the failing report is printed once, and never a second time cut at 300 characters mid-number;
- "expected ... got ..." comes near the start of its own line (a narrow dialog still shows it);
- a part not started says "not answered yet", not "... or the check was tampered with".
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import REPO

A, NB = "04_attention", "attention"
WRONG_SOFTMAX = """def softmax(x, dim=-1):
    m = x.amax(dim=-1, keepdim=True)  # forgets `dim`: right on rows, wrong on columns
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    s = e.sum(dim=-1, keepdim=True)
    return e / torch.where(s == 0, torch.ones_like(s), s)"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("validate") / A
    shutil.copytree(REPO / "assignments" / A, folder)
    path = folder / f"{NB}.ipynb"
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "softmax"]
    cell.source = WRONG_SOFTMAX
    nbformat.write(nb, path)
    llmcourse = Path(sys.executable).parent / "llmcourse"
    return subprocess.run(
        [str(llmcourse), "validate", f"{NB}.ipynb"], cwd=folder, capture_output=True, text=True, timeout=900
    )


def test_it_fails_and_says_so(run):
    assert run.returncode == 1, run.stdout + run.stderr
    assert "[FAIL] test_softmax" in run.stdout


def test_no_tcp_warning(run):
    assert "without encryption" not in run.stderr + run.stdout, run.stderr


def test_the_failing_report_is_printed_once_and_whole(run):
    assert run.stdout.count("along dim 0") == 1, run.stdout
    assert "the cell raised CheckFailed" not in run.stdout, run.stdout


def test_expected_and_got_come_first_on_a_short_line(run):
    (line,) = [line for line in run.stdout.splitlines() if "expected" in line and "got" in line]
    assert line.index("expected") < 70 and line.index("got") < 100, line
    # the softmax of column 0 of [[1, 2], [3, 5]] is e^1 / (e^1 + e^3): the reference's number, in float32
    assert re.search(r"expected 0\.1192029\d*, got 0\.26894\d*", line), line


def test_parts_not_started_say_not_answered_yet(run):
    report = run.stdout.split("[FAIL] test_scaled_dot_product_attention", 1)[1]
    assert "tampered" not in run.stdout, run.stdout
    assert report.count("not answered yet") == 4, report  # sdpa, split_heads, merge_heads, multi_head_attention
