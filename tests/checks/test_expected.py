"""Visible checks without the answer key: the stored expected outputs equal the reference's, a solution
passes against them with its answer key blocked, a wrong answer gets the reference's report, and a stale
or missing file is named as such."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import textwrap

import nbformat
import pytest
import torch
from conftest import REPO
from llmcourse.checks import checker
from llmcourse.checks.checker import Case, CheckFailed, check, expected_results, get_spec
from llmcourse.checks.expected import (
    FILENAME,
    ExpectedUnavailable,
    expected_table,
    load_expected,
    table_differences,
    visible_checks,
    write_expected,
)
from llmcourse.grading.assignment import Manifest

ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
NO_KEY = "llmcourse.no_such_answer_key:softmax"  # a reference that cannot be imported: a student's install


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_stored_outputs_are_the_references(assignment, tmp_path):
    names = visible_checks(REPO / "solutions" / assignment)
    assert names, "every assignment has visible checks"
    # The release's notebooks (what a student runs) name the same visible checks as the solutions.
    assert visible_checks(REPO / "assignments" / assignment) == names
    write_expected(tmp_path, names)
    stored = json.loads((tmp_path / FILENAME).read_text())
    assert sorted(stored["checks"]) == sorted(names)
    for name in names:
        spec = get_spec(name)
        cases = spec.visible()
        assert [e["label"] for e in stored["checks"][name]] == [c.label for c in cases]
        assert load_expected(spec, cases, tmp_path) == expected_results(spec, cases)


# A student's kernel: the notebook's own answer key is blocked as in the grading kernel, the notebook's code
# cells run in order up to its last graded test cell (the demos after it are not checks).
RUN_WITHOUT_KEY = textwrap.dedent(
    """
    import importlib, json, sys
    from llmcourse.grading.kernel import install_blocker

    blocked, cells = json.loads(sys.stdin.read())
    install_blocker(blocked)
    for module in blocked:
        try:
            importlib.import_module(module)
        except ImportError:
            pass
        else:
            raise SystemExit(f"{module} was importable: the test would not test anything")
    namespace = {"__name__": "__main__"}
    for source in cells:
        exec(compile(source, "<cell>", "exec"), namespace)
    print("ALL CELLS RAN")
    """
)


def run_without_key(cells: list[str], blocked: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", RUN_WITHOUT_KEY],
        input=json.dumps([blocked, cells]),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )


def cells_through_last_test(path) -> list[str]:
    code = [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    last = max(i for i, c in enumerate(code) if _is_test(c))
    return [c.source for c in code[: last + 1]]


def _is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade")) and not meta.get("solution")


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_passes_its_visible_checks_without_the_answer_key(assignment, tmp_path):
    folder = REPO / "solutions" / assignment
    manifest = Manifest.load(folder)
    write_expected(tmp_path, visible_checks(folder))
    work = tmp_path / "notebook"  # the file is found in a folder above the kernel's working directory
    work.mkdir()
    for notebook in manifest.notebooks:
        run = run_without_key(cells_through_last_test(folder / f"{notebook}.ipynb"), manifest.blocked_modules(), work)
        assert run.returncode == 0 and "ALL CELLS RAN" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
        for part in manifest.parts_of(notebook):
            for c in part.checks:
                if c.hidden:
                    assert f"SKIP {c.name}: hidden cases run only when the notebook is graded" in run.stdout
                else:
                    assert f"PASS {c.name}: all " in run.stdout, f"{c.name}\n{run.stdout[-3000:]}"


WRONG_SOFTMAX = """
import torch

def softmax(x, dim=-1):
    return torch.softmax(2 * x, dim=dim)  # wrong: a temperature of 1/2
"""


def test_a_wrong_answer_gets_the_references_report_without_the_answer_key(tmp_path):
    namespace: dict = {}
    exec(WRONG_SOFTMAX, namespace)
    with pytest.raises(CheckFailed) as with_key:
        check("attention.softmax", namespace["softmax"])
    assert "FAIL attention.softmax" in str(with_key.value) and "expected" in str(with_key.value)

    write_expected(tmp_path, ["attention.softmax"])
    cells = [
        WRONG_SOFTMAX,
        "from llmcourse.checks import CheckFailed, check\n"
        "try:\n"
        "    check('attention.softmax', softmax)\n"
        "except CheckFailed as e:\n"
        "    print('REPORT<<' + str(e) + '>>')\n",
    ]
    run = run_without_key(cells, ["llmcourse.attention"], tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"REPORT<<{with_key.value}>>" in run.stdout, run.stdout


@pytest.fixture
def keyless_softmax(monkeypatch, tmp_path):
    """attention.softmax as a student's install sees it (its reference not importable), in ``tmp_path``."""
    spec = dataclasses.replace(get_spec("attention.softmax"), reference=NO_KEY)
    monkeypatch.setattr(checker, "get_spec", lambda name: spec)
    monkeypatch.chdir(tmp_path)
    return spec


def test_keyless_check_compares_with_the_file(keyless_softmax, tmp_path, capsys):
    from llmcourse.attention import softmax  # the real answer, handed in as if a student wrote it

    write_expected(tmp_path, ["attention.softmax"])
    check("attention.softmax", softmax)
    assert "PASS attention.softmax: all 5 visible cases match the reference" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match=r"FAIL attention\.softmax: \d+ of 5 visible cases differ"):
        check("attention.softmax", lambda x, dim=-1: softmax(2 * x, dim=dim))


def test_no_key_and_no_file_says_so(keyless_softmax, tmp_path):
    with pytest.raises(
        ExpectedUnavailable, match=rf"answer key \(llmcourse.no_such_answer_key\) is not installed.*{FILENAME}"
    ):
        check("attention.softmax", lambda x, dim=-1: torch.softmax(x, dim=dim))


def test_hidden_cases_without_the_key_run_only_when_graded(keyless_softmax, capsys):
    check("attention.softmax", lambda x, dim=-1: torch.softmax(x, dim=dim), hidden=True)
    assert "SKIP attention.softmax: hidden cases run only when the notebook is graded" in capsys.readouterr().out


def test_a_file_without_the_check_says_so(keyless_softmax, tmp_path):
    write_expected(tmp_path, ["attention.split_heads"])
    with pytest.raises(ExpectedUnavailable, match="has no expected outputs for it"):
        check("attention.softmax", lambda x, dim=-1: torch.softmax(x, dim=dim))


def test_a_stale_file_is_detected(tmp_path):
    spec = get_spec("attention.softmax")
    write_expected(tmp_path, [spec.name])
    cases = spec.visible()
    changed = [Case(cases[0].args, cases[0].label + " (changed)", cases[0].kwargs), *cases[1:]]
    with pytest.raises(ExpectedUnavailable, match=r"is stale, case 1 .* has changed since the file was written"):
        load_expected(spec, changed, tmp_path)
    other_input = [Case((cases[0].args[0] + 1,), cases[0].label, cases[0].kwargs), *cases[1:]]
    with pytest.raises(ExpectedUnavailable, match=r"is stale, case 1 .* has changed"):
        load_expected(spec, other_input, tmp_path)
    with pytest.raises(ExpectedUnavailable, match=rf"is stale, it has {len(cases)} cases and the check now has"):
        load_expected(spec, cases[:-1], tmp_path)
    assert load_expected(spec, cases, tmp_path) == expected_results(spec, cases)  # unchanged: no complaint


def test_table_differences_uses_the_tolerance_and_sees_changes(tmp_path):
    made = expected_table(["attention.softmax"])
    assert table_differences(made, json.loads(json.dumps(made))) == []
    edited = json.loads(json.dumps(made))
    edited["checks"]["attention.softmax"][0]["expected"] = {"ok": [1, 2, 3]}
    problems = table_differences(made, edited)
    assert len(problems) == 1 and problems[0].startswith("attention.softmax case 1 (")
    assert problems[0].endswith("output: expected array of shape (3,) and dtype float32, got list of length 3")


def test_self_check_verifies_a_record_against_the_file_but_the_grader_never_does(keyless_softmax, tmp_path):
    from llmcourse.attention import softmax

    write_expected(tmp_path, ["attention.softmax"])
    cases = keyless_softmax.visible()
    record = {
        "check": "attention.softmax",
        "hidden": False,
        "results": checker.run_cases(softmax, cases, keyless_softmax),
    }
    assert checker.verify_record(record, "attention.softmax", False, 0, near=tmp_path).passed
    wrong = checker.run_cases(lambda x, dim=-1: softmax(2 * x, dim=dim), cases, keyless_softmax)
    assert not checker.verify_record({**record, "results": wrong}, "attention.softmax", False, 0, near=tmp_path).passed
    hidden = checker.verify_record({**record, "hidden": True}, "attention.softmax", True, 0, near=tmp_path)
    assert not hidden.passed and "run only when the notebook is graded" in hidden.report()
    with pytest.raises(ImportError):  # the grader passes no folder: a forged file in a submission is never read
        checker.verify_record(record, "attention.softmax", False, 0)
