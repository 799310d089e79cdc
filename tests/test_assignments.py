"""Every assignment: the committed release is exactly what the generator makes, solution notebooks are
well formed (markers, metadata, checks in every test cell), the solution passes its own tests and the
untouched release fails them, through the same pipeline students use (``llmcourse validate``)."""

from __future__ import annotations

import json

import nbformat
import pytest
from conftest import REPO, run_cli
from llmcourse.checks.checker import get_spec
from llmcourse.grading.assignment import expected_checks

ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
NOTEBOOKS = [(a, nb.stem) for a in ASSIGNMENTS for nb in sorted((REPO / "solutions" / a).glob("*.ipynb"))]


def cells(path):
    return nbformat.read(path, as_version=4).cells


@pytest.mark.parametrize("assignment,notebook", NOTEBOOKS)
def test_solution_notebook_is_well_formed(assignment, notebook):
    graded = 0
    for cell in cells(REPO / "solutions" / assignment / f"{notebook}.ipynb"):
        meta = cell.metadata.get("nbgrader", {})
        assert not cell.get("outputs") and not cell.get("execution_count"), "commit notebooks without outputs"
        if meta.get("solution"):
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source, meta["grade_id"]
        if meta.get("grade") and not meta.get("solution"):
            graded += 1
            assert meta["locked"] and meta["points"] > 0
            found = expected_checks(cell.source)
            assert any(not h for _, h in found), f"{meta['grade_id']}: no visible check"
            assert any(h for _, h in found), f"{meta['grade_id']}: no hidden check"
            assert "### BEGIN HIDDEN TESTS" in cell.source
            for name, _ in found:
                get_spec(name)  # every named check exists
    assert graded > 0


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_committed_release_is_what_the_generator_makes(assignment, tmp_path):
    run_cli("generate", assignment, "--no-update-repo", course_dir=tmp_path)
    made = sorted(
        p.relative_to(tmp_path / "release" / assignment)
        for p in (tmp_path / "release" / assignment).rglob("*")
        if p.is_file()
    )
    committed = sorted(
        p.relative_to(REPO / "assignments" / assignment)
        for p in (REPO / "assignments" / assignment).rglob("*")
        if p.is_file()
    )
    assert made == committed, "run `llmcourse generate` and commit assignments/"
    from llmcourse.checks.expected import FILENAME, table_differences

    assert FILENAME in {str(r) for r in made}, "generate writes the visible checks' expected outputs"
    for rel in made:
        a = (tmp_path / "release" / assignment / rel).read_bytes()
        b = (REPO / "assignments" / assignment / rel).read_bytes()
        if rel.name == FILENAME:  # floats compared within each check's tolerance, not byte for byte
            problems = table_differences(json.loads(a), json.loads(b))
            assert not problems, f"assignments/{assignment}/{rel} is stale: {problems[:3]}"
            continue
        if rel.suffix == ".ipynb":
            a, b = json.loads(a), json.loads(b)
        assert a == b, f"assignments/{assignment}/{rel} differs from the generator's output"


@pytest.mark.parametrize("assignment,notebook", NOTEBOOKS)
def test_release_has_no_solutions_or_hidden_tests(assignment, notebook):
    text = (REPO / "assignments" / assignment / f"{notebook}.ipynb").read_text()
    assert "BEGIN SOLUTION" not in text and "BEGIN HIDDEN TESTS" not in text and "hidden=True" not in text


@pytest.mark.parametrize("assignment,notebook", NOTEBOOKS)
def test_validate_passes_the_solution_and_fails_the_release(assignment, notebook):
    ok = run_cli("validate", f"solutions/{assignment}/{notebook}.ipynb", check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "FAIL" not in ok.stdout
    bad = run_cli("validate", f"assignments/{assignment}/{notebook}.ipynb", check=False)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "[PASS]" not in bad.stdout
    assert "NotImplementedError" in bad.stdout


def test_validate_gives_a_clear_error_for_bad_input(tmp_path):
    missing = run_cli("validate", str(tmp_path / "nope.ipynb"), check=False)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    corrupt = tmp_path / "corrupt.ipynb"
    corrupt.write_text("{ not json")
    out = run_cli("validate", str(corrupt), check=False)
    assert out.returncode == 2 and "not a valid notebook" in out.stderr and "Traceback" not in out.stderr
