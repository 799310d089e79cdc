"""The assignment manifest: one parse of the solution notebooks that the grader, the kernel policy, the
integrity report and the tests all read; and the grading policy that ``llmcourse generate`` writes from it
into every release (points table with the visible and hidden shares, what the grader blocks)."""

from __future__ import annotations

import re

import nbformat
import pytest
from conftest import REPO, manifest
from llmcourse.checks.checker import get_spec
from llmcourse.grading.assignment import STUB_LINES, Manifest, check_calls, expected_checks, solution_code
from llmcourse.grading.policy import render

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
        "test_train_merges_incremental",
    ]
    assert [p.points for p in m.parts] == [2, 2, 3, 2, 3, 3, 3]
    assert [p.shares for p in m.parts][:3] == [(0.8, 1.2), (0.8, 1.2), (1.2, 1.8)]  # 40 % visible, 60 % hidden
    assert [(p.grade_id, p.points) for p in m.manual] == [
        ("question_utf8", 2),
        ("question_decode", 2),
        ("question_special", 1),
    ]
    assert m.max_score == 18 + 5 and not any(p.checks for p in m.manual)
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


# --------------------------------------------------------------------------- the policy in every release

ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
VISIBLE_SHARE = 0.4  # the course's partial-credit rule as autograder/policy.md states it (issue 9)
ROW = re.compile(r"^\| (\d+) \| `(\w+)` \| ([^|]*) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", re.M)


def notebooks(assignment: str) -> list[str]:
    return [p.stem for p in sorted((REPO / "solutions" / assignment).glob("*.ipynb"))]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_release_states_the_grading_policy_right_after_its_introduction(assignment):
    m = manifest(assignment)
    for nb_name in notebooks(assignment):
        release = nbformat.read(REPO / "assignments" / assignment / f"{nb_name}.ipynb", as_version=4)
        source = nbformat.read(REPO / "solutions" / assignment / f"{nb_name}.ipynb", as_version=4)
        policy = release.cells[1]
        assert policy.get("id") == "llmcourse-policy" and policy.cell_type == "markdown"
        assert release.cells[0].source == source.cells[0].source  # the introduction stays first
        text = policy.source
        # the points table: every part, with 40 % of its points visible and the rest hidden
        rows = [m.groups() for m in ROW.finditer(text)]
        parts = m.parts_of(nb_name)
        assert [(int(r[0]), r[1]) for r in rows] == [(i, p.grade_id) for i, p in enumerate(parts, 1)]
        for row, part in zip(rows, parts):
            visible, hidden, points = float(row[3]), float(row[4]), float(row[5])
            assert points == part.points and visible == round(VISIBLE_SHARE * part.points, 2)
            assert visible + hidden == pytest.approx(points, abs=1e-9)
            assert all(f"`{c.name}`" in row[2] for c in part.checks)
            for call in get_spec(part.checks[0].name).forbidden:  # what the grader blocks, from the spec
                if not call.startswith("torch.ops.") and not any(s.startswith("_") for s in call.split(".")):
                    assert f"`{call}`" in text, call
        flat = " ".join(text.split())  # sentences, whatever the line breaks
        for key in m.blocked_modules():
            assert f"`{key}` cannot be imported while grading" in flat
        for part in (p for p in m.manual if p.notebook == nb_name):
            assert f"| written | `{part.grade_id}` |" in text
        assert "visible share (40 %)" in flat and "hidden share (60 %)" in flat
        assert "Each cell may run 60 s" in flat and "4096 MB of memory" in flat  # the limits
        assert "[INSTRUCTOR:" in text  # the collaboration rule, a placeholder the instructor edits
        stated = re.search(r"\*\*Estimated time:\*\* (.+)\.\n", text).group(1)
        assert stated == source.metadata["llmcourse"]["estimated_time"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_the_introductions_points_table_agrees_with_the_grader(assignment):
    """The hand-written table in each solution's first cell (part number, ..., points) must not contradict the
    generated policy, and the introduction sends students to it."""
    m = manifest(assignment)
    for nb_name in notebooks(assignment):
        intro = nbformat.read(REPO / "solutions" / assignment / f"{nb_name}.ipynb", as_version=4).cells[0].source
        stated = {int(i): float(p) for i, p in re.findall(r"^\| (\d+) \|[^\n]*\| (\d+(?:\.\d+)?) \|$", intro, re.M)}
        parts = m.parts_of(nb_name)
        assert all(stated[i] == parts[i - 1].points for i in stated), (stated, [p.points for p in parts])
        assert "course policy right after this introduction" in intro


def test_the_policy_template_rejects_unknown_placeholders_and_bad_times():
    m, source = manifest(A), nbformat.read(REPO / "solutions" / A / f"{NB}.ipynb", as_version=4)
    with pytest.raises(ValueError, match="unknown placeholders \\['colaboration'\\]"):
        render("{{ colaboration }}", m, NB, source)
    source.metadata["llmcourse"] = {"estimated_time": 3}
    with pytest.raises(ValueError, match="estimated_time must be a non-empty string"):
        render("{{estimated_time}}", m, NB, source)
    source.metadata["llmcourse"] = {"estimated_time": "2 hours"}
    assert render("about {{estimated_time}}, {{visible_percent}} %", m, NB, source) == "about 2 hours, 40 %\n"
