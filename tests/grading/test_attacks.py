"""The attack corpus: every known way to game the grader, graded in one batch with honest controls.

Each attack targets one part of assignment 01 and must earn zero there, while the honest parts of the
same notebook (and every other student) keep their points. Faults (a killed kernel, a hang, a memory
bomb, a 1 GB print) must name their reason in the report and never turn unrun cells into passes.
Expected scores come from the assignment's point table.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

import pytest
from conftest import batch_workers, make_submission, run_cli, solution_code

A, NB = "01_tokenization", "tokenization"
POINTS = {
    "test_get_stats": 2,
    "test_merge": 2,
    "test_train_merges": 3,
    "test_decode": 2,
    "test_encode": 3,
    "test_gpt4_tokenizer": 3,
}
ORDER = list(POINTS)  # the order of the parts in the notebook
FULL = sum(POINTS.values())
# The solution's encode and GPT4Tokenizer.encode call get_stats and merge, and train_merges calls merge,
# so breaking one of those legitimately costs the parts built on it.
USES = {
    "test_get_stats": {"test_encode", "test_gpt4_tokenizer"},
    "test_merge": {"test_train_merges", "test_encode", "test_gpt4_tokenizer"},
}

WRONG_DECODE = "def decode(ids, vocab):\n    return ''\n"
WRONG_ENCODE = "def encode(text, merges, pattern=GPT4_SPLIT_PATTERN, special_tokens=None):\n    return []\n"

ATTACKS = {
    # --- using the answer key --------------------------------------------------------------
    "import_reference": (
        "test_merge",
        """
def merge(ids, pair, idx):
    from llmcourse.tokenization import merge as reference_merge
    return reference_merge(ids, pair, idx)
""",
    ),
    "import_tokenizer_class": (
        "test_train_merges",
        """
def train_merges(text, vocab_size, pattern=GPT4_SPLIT_PATTERN):
    import llmcourse.tokenization as answer_key
    return answer_key.Tokenizer(pattern).train(text, vocab_size).merges
""",
    ),
    "unblock_then_import": (
        "test_decode",
        """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "AnswerKeyBlocker"]
for name in [m for m in sys.modules if m.startswith("llmcourse.tokenization")]:
    del sys.modules[name]
from llmcourse.tokenization import decode
""",
    ),
    "exec_reference_source": (
        "test_train_merges",
        """
import os, llmcourse
_path = os.path.join(os.path.dirname(llmcourse.__file__), "tokenization.py")
_ns = {"__name__": "stolen"}
exec(compile(open(_path).read(), _path, "exec"), _ns)
train_merges = _ns["train_merges"]
""",
    ),
    "load_reference_from_file": (
        "test_encode",
        """
import importlib.util, os, llmcourse
_spec = importlib.util.spec_from_file_location("stolen", os.path.join(os.path.dirname(llmcourse.__file__), "tokenization.py"))
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
encode = _mod.encode
""",
    ),
    "read_solution_notebook": (
        "test_decode",
        """
import json, os, llmcourse
_repo = os.path.dirname(os.path.dirname(os.path.dirname(llmcourse.__file__)))
_nb = json.load(open(os.path.join(_repo, "solutions", "01_tokenization", "tokenization.ipynb")))
exec(next("".join(c["source"]) for c in _nb["cells"] if "def decode" in "".join(c["source"])))
""",
    ),
    "git_history": (
        "test_decode",
        """
import subprocess, os, llmcourse
_repo = os.path.dirname(os.path.dirname(os.path.dirname(llmcourse.__file__)))
_src = subprocess.run(["git", "-C", _repo, "show", "HEAD:lib/llmcourse/tokenization.py"], capture_output=True, text=True).stdout
_ns = {}
exec(_src, _ns)
decode = _ns["decode"]
""",
    ),
    # --- fooling the comparison --------------------------------------------------------------
    "always_equal_dict": (
        "test_get_stats",
        """
class AlwaysEqual(dict):
    def __eq__(self, other):
        return True
    def __ne__(self, other):
        return False

def get_stats(ids):
    return AlwaysEqual()
""",
    ),
    "always_equal_object": (
        "test_decode",
        """
class Anything(str):
    def __eq__(self, other):
        return True
    __hash__ = str.__hash__

def decode(ids, vocab):
    return Anything("")
""",
    ),
    "monkeypatch_checker_torch_numpy": (
        "test_encode",
        """
import numpy.testing, torch
import llmcourse.checks.checker as checker
torch.allclose = lambda *a, **k: True
numpy.testing.assert_allclose = lambda *a, **k: None
numpy.testing.assert_array_equal = lambda *a, **k: None
checker.compare_results = lambda spec, hidden, cases, e, g: checker.Outcome(spec.name, hidden, True, len(cases), [])
checker.check = lambda *a, **k: None
"""
        + WRONG_ENCODE,
    ),
    "monkeypatch_builtins": (
        "test_encode",
        """
import builtins
builtins.isinstance = lambda *a: True
builtins.AssertionError = type("NeverRaised", (Exception,), {})
"""
        + WRONG_ENCODE,
    ),
    "forged_record": (
        "test_encode",
        """
from IPython.display import display
import llmcourse.checks.checker as checker

def _forge(name, fn, hidden=False):   # claims every case passed, with made-up outputs
    cases = checker.get_spec(name).cases(hidden, 0)
    display({checker.MIME: {"v": 1, "check": name, "hidden": hidden,
                            "results": [{"ok": []} for _ in cases]}, "text/plain": ""}, raw=True)
checker.check = _forge
"""
        + WRONG_ENCODE,
    ),
    # --- tampering with files -----------------------------------------------------------------
    "write_gradebook": (
        "test_decode",
        """
import sqlite3
for _path in ["{course}/gradebook.db"]:
    try:
        _db = sqlite3.connect(_path)
        _db.execute("UPDATE grade SET auto_score = 1000")
        _db.commit()
    except Exception:
        pass
    try:
        open(_path, "w").write("corrupted")
    except Exception:
        pass
"""
        + WRONG_DECODE,
    ),
    "write_other_student": (
        "test_decode",
        """
import glob
for _path in glob.glob("{course}/submitted/*/01_tokenization/tokenization.ipynb") + glob.glob("{course}/autograded/*/01_tokenization/tokenization.ipynb"):
    try:
        open(_path, "w").write("{{}}")
    except Exception:
        pass
"""
        + WRONG_DECODE,
    ),
    # --- faults --------------------------------------------------------------------------------
    "kill_kernel": ("test_decode", "import os\nos._exit(1)\n"),
    "infinite_loop": (
        "test_train_merges",
        """
def train_merges(text, vocab_size, pattern=GPT4_SPLIT_PATTERN):
    while True:
        pass
""",
    ),
    "hang_ignoring_interrupt": (
        "test_decode",
        """
import time
def decode(ids, vocab):
    while True:
        try:
            time.sleep(0.2)
        except KeyboardInterrupt:
            pass
""",
    ),
    # Whole gibibytes at a time: the kernel's address-space cap is reached in a few allocations, so the
    # bomb ends in MemoryError at any machine load (100 MB chunks, each zeroed by hand, could take longer
    # than the cell's time limit on a busy machine and end in a timeout instead).
    "memory_bomb": ("test_decode", "_hog = []\nwhile True:\n    _hog.append(bytes(1 << 30))\n"),
}
TAMPER_TEST_CELLS = {
    "edit_test_cell": ("test_decode", {"test_decode": "check = lambda *a, **k: None  # rewritten by the student"}, ()),
    "delete_test_cell": ("test_decode", {}, ("test_decode",)),
}
# Faults that break a limit stop the notebook: every later part fails too, since it never ran.
# Patching builtins.isinstance hangs the kernel's own machinery after the cell (IPython cannot work with
# it), so that cell outlives its time limit, ignores the interrupt and stops the notebook like a hang.
STOPS_NOTEBOOK = {
    "kill_kernel",
    "hang_ignoring_interrupt",
    "infinite_loop",
    "memory_bomb",
    "output_flood",
    "monkeypatch_builtins",
}
REASON = {
    "monkeypatch_builtins": "CellTimeoutError",
    "kill_kernel": "KernelDied",
    "hang_ignoring_interrupt": "CellTimeoutError",
    "infinite_loop": "CellTimeoutError",
    "memory_bomb": "MemoryError",
    "output_flood": "OutputLimit",
}


def expected_parts(attack: str, target: str) -> dict[str, float]:
    lost = {target} | USES.get(target, set())
    if attack in STOPS_NOTEBOOK:
        lost |= set(ORDER[ORDER.index(target) :])
    return {k: (0.0 if k in lost else float(v)) for k, v in POINTS.items()}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attacks")
    subs, course = tmp / "submissions", tmp / "course"
    stages = tmp / "tmp"  # this batch's kernels stage here, apart from other batches running beside it
    stages.mkdir()
    made = stages.stat().st_mtime_ns
    good = solution_code(A, NB)
    make_submission(subs, "control_solution", A, NB, good)
    make_submission(subs, "control_release", A, NB, {})
    for name, (target, code) in ATTACKS.items():
        part = target.removeprefix("test_")
        make_submission(subs, name, A, NB, {**good, part: code.replace("{course}", str(course))})
    for name, (_target, edits, drops) in TAMPER_TEST_CELLS.items():
        make_submission(subs, name, A, NB, {**good, "decode": WRONG_DECODE}, extra_cells=edits, drop_cells=drops)
    make_submission(subs, "output_flood", A, NB, {**good, "decode": 'print("x" * 10**9)\n' + good["decode"]})
    original = hashlib.sha256((subs / "control_solution" / A / f"{NB}.ipynb").read_bytes()).hexdigest()

    run_cli("generate", A, "--no-update-repo", course_dir=course)
    run_cli(
        "autograde",
        A,
        "--submissions",
        str(subs),
        "--cell-timeout",
        "20",
        "--notebook-timeout",
        "150",
        *batch_workers(),
        course_dir=course,
        env={"TMPDIR": str(stages)},
    )
    report = {r["student"]: r for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    return {"course": course, "report": report, "original": original, "stages": stages, "stages_made": made}


def parts(row) -> dict[str, float]:
    """The autograded parts' scores (the written answers hold 0 until an instructor grades them)."""
    return {k.split(":")[1]: v[0] for k, v in row["parts"].items() if k.split(":")[1] in POINTS}


def test_the_corpus_is_big_enough():
    assert len(ATTACKS) + len(TAMPER_TEST_CELLS) >= 12


def test_controls_keep_their_grades(batch):
    assert parts(batch["report"]["control_solution"]) == {k: float(v) for k, v in POINTS.items()}
    assert set(parts(batch["report"]["control_release"]).values()) == {0.0}


@pytest.mark.parametrize("attack", sorted(ATTACKS) + sorted(TAMPER_TEST_CELLS))
def test_attack_earns_nothing_on_its_target(batch, attack):
    target = (ATTACKS.get(attack) or TAMPER_TEST_CELLS[attack])[0]
    row = batch["report"][attack]
    assert row["status"] == "graded", row["messages"]
    assert parts(row) == expected_parts(attack, target)
    if attack in REASON:
        assert any(REASON[attack] in m for m in row["messages"]), row["messages"]
    if attack == "edit_test_cell":
        assert any("test cell test_decode was edited" in m for m in row["messages"]), row["messages"]
    if attack == "delete_test_cell":
        assert any("test cell test_decode was deleted" in m for m in row["messages"]), row["messages"]


def test_output_flood_is_cut_and_named(batch):
    row = batch["report"]["output_flood"]
    assert any("OutputLimit" in m for m in row["messages"]), row["messages"]
    autograded = batch["course"] / "autograded" / "output_flood" / A / f"{NB}.ipynb"
    assert autograded.stat().st_size < 5_000_000  # the gigabyte never reached the graded notebook
    # the flood comes from the decode cell: the notebook stops there, so decode's and encode's tests fail
    assert parts(row) == expected_parts("output_flood", "test_decode")
    assert any("NotRun" in m and "printed more output" in m for m in row["messages"]), row["messages"]


def test_gradebook_and_other_students_are_untouched(batch):
    course = batch["course"]
    db = sqlite3.connect(course / "gradebook.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert db.execute("SELECT MAX(auto_score) FROM grade").fetchone()[0] <= max(POINTS.values())
    submitted = course / "submitted" / "control_solution" / A / f"{NB}.ipynb"
    assert hashlib.sha256(submitted.read_bytes()).hexdigest() == batch["original"]
    export = course / "grades.csv"
    run_cli("export", "--out", str(export), course_dir=course)
    rows = [line.split(",") for line in export.read_text().splitlines()[1:]]
    assert {r[3]: float(r[9]) for r in rows}["control_solution"] == FULL


def test_finished_kernels_leave_no_stage_folders(batch):
    """Each sandboxed kernel stages its files in a temporary folder it cannot delete itself; the grader
    removes the folders of finished kernels after the batch."""
    import os

    from llmcourse.grading.kernel import stage_pid

    # the batch's kernels did stage there: folders were made (and removed) in it since the fixture made it
    assert batch["stages"].stat().st_mtime_ns != batch["stages_made"]
    left = []
    for name in os.listdir(batch["stages"]):
        pid = stage_pid(name)
        if pid is not None:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                left.append(name)
    assert not left
