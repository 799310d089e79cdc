"""End to end through the CLI, for every assignment in solutions/: the solution scores full marks, the
untouched release scores zero on every part, a submission wrong in exactly one part loses exactly that
part, a part right on its visible cases and wrong on its hidden ones earns exactly its visible share
(partial credit, the release's points table states it), the basic cheats earn nothing on what they
attack, and feedback for failing hidden tests says what failed but contains neither hidden test source
nor hidden inputs (nbgrader #917, #1363).
On 04 and 05 the batch also holds "write it yourself" attacks (issue 18): answers that pass every check
by calling the library function the part asks students to write, which only the grader's reading of
the answer's source can catch.

The part that is broken or attacked is the notebook's last graded part, which no other part uses.
The full attack corpus runs on assignment 01 in test_attacks.py.
"""

from __future__ import annotations

import csv
import html
import json
import re

import nbformat
import pytest
import torch
from conftest import REPO, batch_workers, hidden_source_lines, make_submission, manifest, run_cli, solution_code
from llmcourse.checks.checker import get_spec
from test_damage import write_combined_damage

ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
# the correct answers in a damaged notebook: a -Copy1 beside the untouched release, a duplicated test, a split answer
COMBINED_DAMAGE = "combined_damage"


def hidden_cases(parts, seed: int) -> list:
    """The hidden cases the grader really used: the spec's cases under the course's secret seed."""
    names = {check.name for part in parts for check in part.checks if check.hidden}
    return [case for name in sorted(names) for case in get_spec(name).cases(True, seed)]


def hidden_texts(cases) -> list[str]:
    """Text that would betray a hidden input: long strings, long id lists."""
    found = []
    for case in cases:
        for arg in list(case.args) + list(case.kwargs.values()):
            if isinstance(arg, str) and len(arg) >= 8:
                found.append(arg[:40])
            elif isinstance(arg, list) and len(arg) >= 6 and all(isinstance(x, int) for x in arg):
                found.append(repr(arg)[:40])
    return found


NUMBER = re.compile(r"-?\d+\.(\d+)(?:e[-+]?\d+)?")


def leaked_tensor_values(text: str, cases) -> list[tuple]:
    """Three consecutive numbers in the text that equal three consecutive values of a hidden float tensor,
    at the precision they were printed with (4 decimals or more: torch prints 4 by default). Any
    printing format is caught, not only torch's repr."""
    printed = [(float(m.group(0)), len(m.group(1))) for m in NUMBER.finditer(text)]
    hidden = [
        arg.detach().flatten().double().tolist()
        for case in cases
        for arg in list(case.args) + list(case.kwargs.values())
        if isinstance(arg, torch.Tensor) and arg.is_floating_point() and arg.numel() >= 3
    ]
    leaks = []
    for digits in sorted({d for _, d in printed if d >= 4}):
        triples = {
            tuple(round(v, digits) for v in values[i : i + 3]) for values in hidden for i in range(len(values) - 2)
        }
        for i in range(len(printed) - 2):
            window = printed[i : i + 3]
            if all(d == digits for _, d in window) and tuple(round(v, digits) for v, _ in window) in triples:
                leaks.append(tuple(v for v, _ in window))
    return leaks


LAYER_NORM = """class LayerNorm(nn.Module):
    def __init__(self, ndim, bias=True, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return {call}(x, self.weight.shape, self.weight, self.bias, self.eps)
"""
# assignment -> (notebook, the solution cell attacked, the parts it costs, {student: answers changed}).
# The LayerNorm attacks also cost Block and GPT: they build on the student's LayerNorm, and their specs
# forbid F.layer_norm too. Each attack computes the right outputs: graded with --forbidden flag, the
# student marked FLAG keeps full marks (the fixture regrades them so), which shows that only the
# reading of the source takes the points.
WRITE_YOURSELF = {
    "04_attention": (
        "attention",
        "softmax",
        {"test_softmax"},
        {
            "write_yourself_nan_to_num": {
                "softmax": "def softmax(x, dim=-1):\n    return torch.softmax(x, dim=dim).nan_to_num(0)\n"
            },
            "write_yourself_getattr": {
                "softmax": "def softmax(x, dim=-1):\n"
                '    return getattr(torch, "soft" + "max")(x, dim=dim).nan_to_num(0)\n'
            },
        },
    ),
    "05_transformer": (
        "transformer",
        "layernorm",
        {"test_layernorm", "test_block", "test_gpt"},
        {
            "write_yourself_layer_norm": {
                "layernorm": "import torch.nn.functional as F\n\n" + LAYER_NORM.format(call="F.layer_norm")
            },
            "write_yourself_alias": {
                "layernorm": "import torch.nn.functional as G\n\n" + LAYER_NORM.format(call="G.layer_norm")
            },
        },
    ),
}
FLAG = {"04_attention": "write_yourself_getattr", "05_transformer": "write_yourself_alias"}

# The course's partial-credit rule, as the policy states it (autograder/policy.md, issue 9): a part whose
# visible checks pass and whose hidden checks fail earns 40 % of its points.
VISIBLE_SHARE = 0.4

# Right wherever the student can see, wrong on every hidden case: the answer asks the check's own frame
# (llmcourse.checks.checker.check, argument ``hidden``) which cases it is running, and raises on the hidden
# ones. Works for any graded function or class, so every assignment's last part gets the same scenario.
RIGHT_ON_VISIBLE_ONLY = """

import sys as _sys


def _hidden_check_running():
    frame = _sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "check" and frame.f_locals.get("hidden") is True:
            return True
        frame = frame.f_back
    return False


_right_{obj} = {obj}


def {obj}(*args, **kwargs):
    if _hidden_check_running():
        raise RuntimeError("wrong on the hidden cases on purpose")
    return _right_{obj}(*args, **kwargs)
"""


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def graded(request, tmp_path_factory):
    """One batch per assignment, graded once per run (under xdist, one worker runs its tests: conftest.BATCHES)."""
    assignment = request.param
    tmp = tmp_path_factory.mktemp(assignment)
    subs, course = tmp / "subs", tmp / "course"
    m = manifest(assignment)
    plan = {}
    for nb_name in m.notebooks:
        source = nbformat.read(REPO / "solutions" / assignment / f"{nb_name}.ipynb", as_version=4)
        parts = m.parts_of(nb_name)
        last = parts[-1]
        check_name, obj = last.checks[0].name, last.target
        cell = m.cell_defining(nb_name, obj)
        module, attr = get_spec(check_name).reference.split(":")
        good = solution_code(assignment, nb_name)
        wrong = good[cell] + f"\n\ndef {obj}(*args, **kwargs):\n    raise RuntimeError('wrong on purpose')\n"
        answers = {
            "solution": good,
            "release": {},
            "wrong_last_part": {**good, cell: wrong},
            "right_on_visible_only": {**good, cell: good[cell] + RIGHT_ON_VISIBLE_ONLY.format(obj=obj)},
            "cheat_import_reference": {
                **good,
                cell: f"from {module} import {attr} as _reference\n{obj} = _reference\n",
            },
            "cheat_monkeypatch": {
                **good,
                cell: wrong
                + (
                    "\nimport numpy.testing, torch\nimport llmcourse.checks.checker as checker\n"
                    "torch.allclose = lambda *a, **k: True\nnumpy.testing.assert_allclose = lambda *a, **k: None\n"
                    "checker.check = lambda *a, **k: None\n"
                ),
            },
        }
        if assignment in WRITE_YOURSELF and WRITE_YOURSELF[assignment][0] == nb_name:
            for student, changes in WRITE_YOURSELF[assignment][3].items():
                answers[student] = {**good, **changes}
        for student, code in answers.items():
            make_submission(subs, student, assignment, nb_name, code)
        write_combined_damage(subs / COMBINED_DAMAGE / assignment, assignment, nb_name)  # issue 24, test_damage.py
        plan[nb_name] = (source, parts, last.grade_id)
    run_cli("autograde", assignment, "--submissions", str(subs), *batch_workers(), course_dir=course)
    run_cli("feedback", assignment, course_dir=course)
    report = {r["student"]: r for r in json.loads((course / "reports" / f"{assignment}.json").read_text())}
    flagged = None
    if assignment in FLAG:  # the same answer, graded by a course that only flags such calls
        run_cli(
            "autograde", assignment, "--student", FLAG[assignment], "--force", "--forbidden", "flag", course_dir=course
        )
        rows = json.loads((course / "reports" / f"{assignment}.json").read_text())
        flagged = next(r for r in rows if r["student"] == FLAG[assignment])
    return {"assignment": assignment, "course": course, "report": report, "plan": plan, "flagged": flagged}


def scores(graded, student) -> dict[str, float]:
    row = graded["report"][student]
    assert row["status"] == "graded", row["messages"]
    return {k: v[0] for k, v in row["parts"].items()}


def full(graded, zero_last=False, zero_all=False) -> dict[str, float]:
    """Expected part scores: autograded parts from the point table; written answers (graded by hand in
    formgrader) hold 0 until an instructor grades them."""
    out = {part.key: 0.0 for part in manifest(graded["assignment"]).manual}
    for _, parts, last_id in graded["plan"].values():
        for part in parts:
            out[part.key] = 0.0 if zero_all or (zero_last and part.grade_id == last_id) else part.points
    return out


def test_solution_scores_full_marks(graded):
    assert scores(graded, "solution") == full(graded)


def test_a_damaged_notebook_with_the_right_answers_scores_full_marks(graded):
    assert scores(graded, COMBINED_DAMAGE) == full(graded)
    messages = " ".join(graded["report"][COMBINED_DAMAGE]["messages"])
    assert "-Copy1.ipynb was graded as" in messages and "appeared 2 times" in messages and "Split Cell" in messages


def test_release_scores_zero_on_every_part(graded):
    assert scores(graded, "release") == full(graded, zero_all=True)


@pytest.mark.parametrize("student", ["wrong_last_part", "cheat_import_reference", "cheat_monkeypatch"])
def test_one_broken_part_loses_exactly_its_points(graded, student):
    assert scores(graded, student) == full(graded, zero_last=True)


def release_table(assignment: str, notebook: str) -> dict[str, tuple[float, float, float]]:
    """grade_id -> (visible, hidden, points) as the release's points table states them to students."""
    nb = nbformat.read(REPO / "assignments" / assignment / f"{notebook}.ipynb", as_version=4)
    rows = {}
    for cell in nb.cells:
        for m in re.finditer(r"^\| \d+ \| `(\w+)` \|[^|]*\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", cell.source, re.M):
            rows[m.group(1)] = (float(m.group(2)), float(m.group(3)), float(m.group(4)))
    return rows


def test_right_on_visible_wrong_on_hidden_earns_exactly_the_visible_share(graded):
    expected, promised = full(graded), {}
    for nb_name, (_, parts, last_id) in graded["plan"].items():
        last = next(p for p in parts if p.grade_id == last_id)
        expected[last.key] = round(VISIBLE_SHARE * last.points, 2)
        assert 0 < expected[last.key] < last.points
        promised[last.key] = release_table(graded["assignment"], nb_name).get(last_id, (None,))[0]
    assert scores(graded, "right_on_visible_only") == expected
    assert promised == {key: expected[key] for key in promised}  # what the release's points table says


def test_partial_credit_feedback_says_which_share_was_lost(graded):
    course, assignment = graded["course"], graded["assignment"]
    for nb_name in graded["plan"]:
        page = course / "feedback" / "right_on_visible_only" / assignment / f"{nb_name}.html"
        text = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))
        assert "PARTIAL CREDIT" in text and "the hidden share" in text and "is lost" in text
        assert "raised RuntimeError" in text  # the hidden failure, described generically


def test_feedback_for_failing_hidden_tests_leaks_nothing(graded):
    course, assignment = graded["course"], graded["assignment"]
    for student in ("release", "wrong_last_part", "right_on_visible_only"):
        for nb_name, (source, parts, _) in graded["plan"].items():
            page = course / "feedback" / student / assignment / f"{nb_name}.html"
            text = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))
            assert "FAIL" in text and "hidden case" in text  # it says what failed ...
            assert "BEGIN HIDDEN" not in text
            for line in hidden_source_lines(source):  # ... but not how it was tested
                assert line not in text, line
            cases = hidden_cases(parts, int((course / ".grading_seed").read_text()))
            for secret in hidden_texts(cases):  # ... nor on what
                assert secret not in text, secret
            assert not leaked_tensor_values(text, cases)


def test_the_tensor_leak_detector_finds_a_printed_hidden_tensor(graded):
    """The check above can fail: a hidden tensor printed the way torch prints it is found."""
    for _nb_name, (_, parts, _) in graded["plan"].items():
        cases = hidden_cases(parts, int((graded["course"] / ".grading_seed").read_text()))
        tensors = [
            a
            for c in cases
            for a in list(c.args) + list(c.kwargs.values())
            if isinstance(a, torch.Tensor) and a.is_floating_point() and a.numel() >= 3
        ]
        if tensors:
            assert leaked_tensor_values(f"got {tensors[-1]!r} here", cases)
            assert not leaked_tensor_values(
                f"got {torch.randn(4, 5, generator=torch.Generator().manual_seed(1))!r} here", cases
            )


def write_yourself(graded):
    return WRITE_YOURSELF[graded["assignment"]]


# The write-it-yourself attacks live in the batches of the assignments that have such parts (04, 05).
on_write_yourself_batches = pytest.mark.parametrize("graded", sorted(WRITE_YOURSELF), indirect=True)


@on_write_yourself_batches
def test_write_yourself_calls_earn_zero_on_their_parts(graded):
    _, _, lost, attacks = write_yourself(graded)
    expected = {key: 0.0 if key.split(":")[1] in lost else points for key, points in full(graded).items()}
    for student in attacks:
        assert scores(graded, student) == expected, student
        messages = graded["report"][student]["messages"]
        assert any("ForbiddenCall" in m and "which this part asks you to write yourself" in m for m in messages)


@on_write_yourself_batches
def test_write_yourself_feedback_names_the_call_and_its_line(graded):
    notebook, _, _, attacks = write_yourself(graded)
    call = "torch.softmax" if graded["assignment"] == "04_attention" else "torch.nn.functional.layer_norm"
    for student in attacks:
        page = graded["course"] / "feedback" / student / graded["assignment"] / f"{notebook}.html"
        text = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))
        assert re.search(
            rf"uses {re.escape(call)}, which this part asks you to write yourself \(cell \w+, line \d+", text
        )


@on_write_yourself_batches
def test_write_yourself_calls_are_only_flagged_when_the_course_says_so(graded):
    write_yourself(graded)
    row = graded["flagged"]
    assert row["status"] == "graded" and {k: v[0] for k, v in row["parts"].items()} == full(graded)
    assert any("flagged, write it yourself:" in m for m in row["messages"]), row["messages"]
    assert not any("ForbiddenCall" in m for m in row["messages"])


@on_write_yourself_batches
def test_integrity_report_lists_write_yourself_calls(graded):
    _, _, lost, attacks = write_yourself(graded)
    out = graded["course"] / "integrity"
    run_cli("integrity", graded["assignment"], "--out", str(out), course_dir=graded["course"])
    rows = [r for r in csv.reader((out / f"integrity_{graded['assignment']}.csv").open()) if r[0] == "write_yourself"]
    assert {r[1] for r in rows} == set(attacks)  # the honest students are not listed
    assert {r[2].split(":")[1] for r in rows} == lost
