"""End to end through the CLI: generate, autograde a small class, feedback, export.

One batch holds the honest students and every cheat, so the test also shows that one bad submission
never stops the batch. Expected scores come from the assignment's point table, not from a run.
"""
from __future__ import annotations

import csv
import html
import json
import re

import pytest

from conftest import make_submission, run_cli, solution_code

A, NB = "01_tokenization", "tokenization"
POINTS = {"test_get_stats": 2, "test_merge": 2, "test_train_merges": 3, "test_decode": 2, "test_encode": 3}
FULL = sum(POINTS.values())
# The solution's encode calls get_stats and merge, and train_merges calls merge, so breaking one of
# those legitimately costs the parts built on it; every other part must keep its points.
USES = {"test_get_stats": {"test_encode"}, "test_merge": {"test_train_merges", "test_encode"}}

IMPORT_REFERENCE = '''
def merge(ids, pair, idx):
    from llmcourse.tokenization import merge as reference_merge
    return reference_merge(ids, pair, idx)
'''
IMPORT_TOKENIZER_CLASS = '''
def train_merges(text, vocab_size, pattern=GPT4_SPLIT_PATTERN):
    import llmcourse.tokenization as answer_key
    return answer_key.Tokenizer(pattern).train(text, vocab_size).merges
'''
ALWAYS_EQUAL = '''
class AlwaysEqual(dict):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False

def get_stats(ids):
    return AlwaysEqual()
'''
ALWAYS_EQUAL_OBJECT = '''
class Anything:
    def __eq__(self, other):
        return True

def decode(ids, vocab):
    return Anything()
'''
MONKEYPATCH = '''
import numpy.testing, torch
import llmcourse.checker as checker
torch.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.testing.assert_array_equal = lambda *a, **k: None
checker.compare_results = lambda spec, hidden, cases, e, g: checker.Outcome(spec.name, hidden, True, len(cases), [])
checker.check = lambda *a, **k: None

def encode(text, merges, pattern=GPT4_SPLIT_PATTERN, special_tokens=None):
    return []
'''
FORGED_RECORD = '''
from IPython.display import display
import llmcourse.checker as checker

def encode(text, merges, pattern=GPT4_SPLIT_PATTERN, special_tokens=None):
    return list(text.encode())

def _forge(name, fn, hidden=False):   # claims every case passed, with made-up outputs
    spec = checker.get_spec(name)
    cases = spec.cases(hidden, 0)
    display({checker.MIME: {"v": 1, "check": name, "hidden": hidden,
                            "results": [{"ok": []} for _ in cases]}, "text/plain": ""}, raw=True)
checker.check = _forge
'''
WRONG_DECODE_AND_LEAK = '''
def decode(ids, vocab):
    print("LEAK", ids, vocab.get(1000))
    return b"".join(vocab[i] for i in ids).decode("utf-8")   # no errors="replace"
'''
EDIT_TEST_CELL = "check = lambda *a, **k: None  # the student rewrote the test cell"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("class")
    subs, course = tmp / "submissions", tmp / "course"
    good = solution_code(A, NB)
    students = {
        "alice_solution": {},
        "bob_release": None,
        "carol_wrong_decode": {"decode": WRONG_DECODE_AND_LEAK},
        "cheat_import_reference": {"merge": IMPORT_REFERENCE},
        "cheat_import_class": {"train_merges": IMPORT_TOKENIZER_CLASS},
        "cheat_always_equal": {"get_stats": ALWAYS_EQUAL},
        "cheat_always_equal_object": {"decode": ALWAYS_EQUAL_OBJECT},
        "cheat_monkeypatch": {"encode": MONKEYPATCH},
        "cheat_forged_record": {"encode": FORGED_RECORD},
    }
    for student, changes in students.items():
        answers = {} if changes is None else {**good, **changes}
        make_submission(subs, student, A, NB, answers)
    # Tampering with a test cell: nbgrader restores it from the gradebook before grading.
    make_submission(subs, "cheat_edit_test_cell", A, NB, {**good, "decode": "def decode(ids, vocab):\n    return ''"},
                    extra_cells={"test_decode": EDIT_TEST_CELL})
    # A file that is not a notebook must not stop the batch.
    bad = subs / "zed_not_json" / A / f"{NB}.ipynb"
    bad.parent.mkdir(parents=True)
    bad.write_text("{ this is not json")

    run_cli("generate", A, "--no-update-repo", course_dir=course)
    out = run_cli("autograde", A, "--submissions", str(subs), course_dir=course)
    report = {r["student"]: r for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    return {"course": course, "report": report, "stdout": out.stdout, "subs": subs}


def parts(report_row) -> dict[str, float]:
    return {k.split(":")[1]: v[0] for k, v in report_row["parts"].items()}


def test_solution_scores_full_marks(graded):
    row = graded["report"]["alice_solution"]
    assert row["status"] == "graded"
    assert row["score"] == FULL and row["max_score"] == FULL
    assert parts(row) == POINTS


def test_untouched_release_scores_zero_everywhere(graded):
    row = graded["report"]["bob_release"]
    assert row["status"] == "graded"
    assert row["score"] == 0
    assert set(parts(row).values()) == {0.0}


def test_one_wrong_part_loses_exactly_its_points(graded):
    row = graded["report"]["carol_wrong_decode"]
    assert parts(row) == {**POINTS, "test_decode": 0}
    assert row["score"] == FULL - POINTS["test_decode"]


@pytest.mark.parametrize("student,target", [
    ("cheat_import_reference", "test_merge"),
    ("cheat_import_class", "test_train_merges"),
    ("cheat_always_equal", "test_get_stats"),
    ("cheat_always_equal_object", "test_decode"),
    ("cheat_monkeypatch", "test_encode"),
    ("cheat_forged_record", "test_encode"),
    ("cheat_edit_test_cell", "test_decode"),
])
def test_cheats_earn_nothing_on_their_target(graded, student, target):
    row = graded["report"][student]
    assert row["status"] == "graded", row
    scores = parts(row)
    assert scores[target] == 0, scores
    # the honest parts of the same notebook keep their points: no false positives
    affected = {target} | USES.get(target, set())
    assert {k: v for k, v in scores.items() if k not in affected} == {k: v for k, v in POINTS.items() if k not in affected}


def test_broken_notebook_gets_a_clear_message_and_the_batch_goes_on(graded):
    row = graded["report"]["zed_not_json"]
    assert row["status"] == "error"
    assert "not a valid notebook" in " ".join(row["messages"])
    assert graded["report"]["alice_solution"]["score"] == FULL  # graded in the same batch


def test_feedback_hides_hidden_tests_and_inputs(graded):
    course = graded["course"]
    run_cli("feedback", A, course_dir=course)
    pages = sorted((course / "feedback").glob(f"*/{A}/{NB}.html"))
    assert len(pages) == len(graded["report"]) - 1  # everyone but the unreadable notebook
    hidden_inputs = ["outrageous fortune", "no specials here", "مرحبا", "aaaaaaaaaaaa"]
    for page in pages:
        text = html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))
        assert "BEGIN HIDDEN" not in text and "hidden=True" not in text, page
        for secret in hidden_inputs:
            assert secret not in text, (page, secret)
    carol = html.unescape((course / "feedback" / "carol_wrong_decode" / A / f"{NB}.html").read_text())
    assert "FAIL tokenization.decode" in carol            # says which check failed ...
    assert "incomplete UTF-8" in carol                     # ... on which visible case ...
    assert "hidden case" in carol and "raised UnicodeDecodeError" in carol  # ... and hidden ones, generically
    assert "LEAK" not in carol                             # nothing the student's code printed


def test_export_csv_has_every_student(graded):
    out = graded["course"] / "grades.csv"
    run_cli("export", "--out", str(out), course_dir=graded["course"])
    rows = {r["student_id"]: r for r in csv.DictReader(out.open())}
    assert float(rows["alice_solution"]["score"]) == FULL
    assert float(rows["bob_release"]["score"]) == 0
    assert set(graded["report"]) <= set(rows)


def test_regrading_skips_what_is_done(graded):
    out = run_cli("autograde", A, "--student", "alice_solution", course_dir=graded["course"])
    assert "skipped" in out.stdout
    report = json.loads((graded["course"] / "reports" / f"{A}.json").read_text())
    assert report[0]["score"] == FULL
