"""The assignment manifest: one parse of the solution notebooks that the grader, the kernel policy, the
integrity report and the tests all read."""

from __future__ import annotations

import nbformat
from conftest import REPO, manifest
from llmcourse.grading.assignment import STUB_LINES, Manifest, check_calls, expected_checks, solution_code

A, NB = "01_tokenization", "tokenization"


def test_check_calls_reads_names_hidden_flags_and_targets_in_source_order():
    src = (
        'check("tokenization.merge", merge)\n'
        "### BEGIN HIDDEN TESTS\n"
        'check("tokenization.merge", merge, hidden=True)\n'
        'checker.check("tokenization.decode", lambda ids: b"", True)\n'
    )
    calls = check_calls(src)
    assert [(c.name, c.hidden, c.target) for c in calls] == [
        ("tokenization.merge", False, "merge"),
        ("tokenization.merge", True, "merge"),
        ("tokenization.decode", True, None),
    ]
    assert expected_checks(src) == [(c.name, c.hidden) for c in calls]
    assert check_calls("def broken(:") == []


def test_manifest_of_01_matches_its_notebook():
    m = manifest(A)
    assert m.notebooks == (NB,)
    assert [p.grade_id for p in m.parts] == [
        "test_get_stats",
        "test_merge",
        "test_train_merges",
        "test_decode",
        "test_encode",
        "test_gpt4_tokenizer",
    ]
    assert [p.points for p in m.parts] == [2, 2, 3, 2, 3, 3]
    assert [(p.grade_id, p.points) for p in m.manual] == [
        ("question_utf8", 2),
        ("question_decode", 2),
        ("question_special", 1),
    ]
    assert m.max_score == 15 + 5 and not any(p.checks for p in m.manual)
    assert m.parts[1].key == "tokenization:test_merge" and m.parts[1].target == "merge"
    assert all(any(c.hidden for c in p.checks) and any(not c.hidden for c in p.checks) for p in m.parts)
    assert m.blocked_modules() == ["llmcourse.tokenization"]
    assert m.cell_defining(NB, "merge") == "merge"
    assert "def merge" in m.solutions[NB]["merge"] and "BEGIN SOLUTION" not in m.solutions[NB]["merge"]


def test_every_assignment_has_parts_points_and_an_answer_key():
    for folder in sorted((REPO / "solutions").iterdir()):
        m = Manifest.load(folder)
        assert m.parts and m.max_score == sum(p.points for p in m.parts + m.manual), folder.name
        keys = m.blocked_modules()  # topic modules (answer keys), never the toolbox or the checker
        assert keys and all((REPO / "lib" / (k.replace(".", "/") + ".py")).is_file() for k in keys), (folder, keys)


def test_the_manifest_is_parsed_again_when_a_notebook_changes(tmp_path):
    folder = tmp_path / A
    folder.mkdir()
    source = REPO / "solutions" / A / f"{NB}.ipynb"
    (folder / f"{NB}.ipynb").write_bytes(source.read_bytes())
    first = Manifest.load(folder)
    assert Manifest.load(folder) is first  # cached
    nb = nbformat.read(folder / f"{NB}.ipynb", as_version=4)
    test_cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_merge")
    test_cell.metadata["nbgrader"]["points"] = 5
    nbformat.write(nb, folder / f"{NB}.ipynb")
    assert Manifest.load(folder).max_score == first.max_score + 3


def test_solution_code_drops_markers_and_the_released_stub():
    path = REPO / "assignments" / A / f"{NB}.ipynb"
    release = solution_code(path)
    assert set(release) == set(manifest(A).solutions[NB])
    assert "# YOUR CODE HERE" in path.read_text() and "raise NotImplementedError()" in path.read_text()
    lines = [line.strip() for code in release.values() for line in code.splitlines()]
    assert not set(lines) & STUB_LINES
