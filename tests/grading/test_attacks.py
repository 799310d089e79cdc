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
from pathlib import Path

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
    "test_train_merges_incremental": 3,
}
ORDER = list(POINTS)  # the order of the parts in the notebook
FULL = sum(POINTS.values())
# The solution's encode and GPT4Tokenizer.encode call get_stats and merge, train_merges and
# train_merges_incremental call merge,
# so breaking one of those legitimately costs the parts built on it.
USES = {
    "test_get_stats": {"test_encode", "test_gpt4_tokenizer"},
    "test_merge": {"test_train_merges", "test_encode", "test_gpt4_tokenizer", "test_train_merges_incremental"},
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


# --- reaching out of the sandbox ------------------------------------------------------------------------
# Each probe looks for something outside its kernel that this test made (a TCP listener on the host's
# 127.0.0.1, a process, files) and prints what it found. The part keeps its honest answer only when it found
# nothing, so a broken sandbox costs the part (and fails the test). Safe while the sandbox is broken: it
# connects only to this test's listener, signals only this test's process, reads only paths this test knows.
SANDBOX_PROBE = "SANDBOX-PROBE "
SANDBOX_ATTACKS = {
    "connect_to_loopback": """
import json, socket
_found = []
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()   # this test's listener on the host
    _found.append("127.0.0.1:{port}")
except OSError:
    pass
""",
    "walk_the_file_system": """
import json, os
_mine = os.getcwd()
_wanted = {{"tokenization.ipynb", "gradebook.db", ".git", "{planted_name}", "control_solution"}}
_found = [p for p in {paths} if os.path.lexists(p)]
_skip = {{"/proc", "/sys", "/dev", "/usr", os.path.realpath(sys.prefix), os.path.realpath(sys.base_prefix)}}
_seen = 0
for _top, _dirs, _files in os.walk("/"):
    _dirs[:] = [d for d in _dirs if os.path.join(_top, d) not in _skip and _top.count("/") < 6]
    _seen += len(_dirs) + len(_files)
    _found += [os.path.join(_top, n) for n in _dirs + _files if n in _wanted and not _top.startswith(_mine)]
    if _seen > 200_000:
        _found.append("(stopped walking: too much to see)")
        break
""",
    "signal_every_process": """
import json, os, signal
_found = []
for _name in os.listdir("/proc"):
    if not _name.isdigit() or int(_name) == os.getpid():
        continue
    try:
        _cmd = open(f"/proc/{{_name}}/cmdline", "rb").read()
    except OSError:
        continue
    try:
        os.kill(int(_name), 0)   # it may be signalled: the grader's own processes must not be seen at all
    except OSError:
        continue
    if b"{token}" in _cmd:       # the process this test started outside: killed if seen
        os.kill(int(_name), signal.SIGKILL)
        _found.append(_name + " (this test's process)")
    elif b"llmcourse.grading.kernel" not in _cmd:   # anything but its own sandbox (bwrap's init, itself)
        _found.append(_name)
""",
}


def sandbox_attack(name: str, good: str, **where) -> str:
    """The probe, then the honest answer, replaced by a wrong one if the probe found anything."""
    probe = SANDBOX_ATTACKS[name].format(**where)
    report = f"print({SANDBOX_PROBE!r} + json.dumps(_found))\n"
    wrong = "\n".join("    " + line for line in WRONG_DECODE.splitlines())
    return "import sys\n" + probe + report + good + "\nif _found:\n" + wrong + "\n"


@pytest.fixture(scope="module")
def outside(tmp_path_factory):
    """What the sandbox attacks look for: a TCP listener on 127.0.0.1, a process, a file in the host's /tmp."""
    import socket
    import subprocess
    import sys
    import uuid
    from pathlib import Path

    token = f"llmcourse-attack-target-{uuid.uuid4().hex}"
    planted = Path("/tmp") / f"{token}.txt"  # the host's /tmp itself, whatever TMPDIR says
    planted.write_text("planted by test_attacks")
    listener = socket.create_server(("127.0.0.1", 0))
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1800)", token])
    try:
        yield {"token": token, "planted": planted, "listener": listener, "process": target}
    finally:
        target.kill()
        target.wait()
        listener.close()
        planted.unlink()


def expected_parts(attack: str, target: str) -> dict[str, float]:
    lost = {target} | USES.get(target, set())
    if attack in STOPS_NOTEBOOK:
        lost |= set(ORDER[ORDER.index(target) :])
    return {k: (0.0 if k in lost else float(v)) for k, v in POINTS.items()}


@pytest.fixture(scope="module")
def batch(tmp_path_factory, outside):
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
    repo = Path(__file__).resolve().parents[2]
    where = {
        "port": outside["listener"].getsockname()[1],
        "token": outside["token"],
        "planted_name": outside["planted"].name,
        "paths": repr(
            [
                str(outside["planted"]),
                str(subs / "control_solution" / A / f"{NB}.ipynb"),  # another student, in --submissions
                str(course / "submitted" / "control_solution"),
                str(course / "gradebook.db"),
                str(repo / "solutions" / A / f"{NB}.ipynb"),
                str(repo / ".git"),
            ]
        ),
    }
    for name in SANDBOX_ATTACKS:
        make_submission(subs, name, A, NB, {**good, "decode": sandbox_attack(name, good["decode"], **where)})
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


@pytest.mark.parametrize("attack", sorted(SANDBOX_ATTACKS))
def test_a_cell_reaching_out_of_the_sandbox_finds_nothing(batch, outside, attack):
    """The probe ran, found nothing (no loopback service, no other process, none of the course's, the
    repository's or another student's files, not the host's /tmp), so the honest answer kept full marks."""
    import nbformat

    row = batch["report"][attack]
    graded = batch["course"] / "autograded" / attack / A / f"{NB}.ipynb"
    printed = [o.get("text", "") for c in nbformat.read(graded, as_version=4).cells for o in c.get("outputs", [])]
    probes = [line for t in printed for line in t.splitlines() if line.startswith(SANDBOX_PROBE)]
    assert probes == [SANDBOX_PROBE + "[]"], probes
    assert row["status"] == "graded" and parts(row) == {k: float(v) for k, v in POINTS.items()}, row


def test_nothing_outside_the_sandbox_was_touched(batch, outside):
    outside["listener"].setblocking(False)
    with pytest.raises(BlockingIOError):  # no kernel ever connected to the host's loopback
        outside["listener"].accept()
    assert outside["process"].poll() is None  # the process the attack looked for is alive
    assert outside["planted"].read_text() == "planted by test_attacks"


# --- a cell that kills its grader: its own small batch, run twice ------------------------------------
# It SIGKILLs every ancestor of its kernel and every process whose command line names the grader. So that it
# is safe even while the sandbox is broken, it only touches processes that carry this test's own marker
# (a fresh uuid in the environment of the `llmcourse autograde` it starts), never pid 1, never itself.
KILL_GRADER = """
import os, signal
_TAG = b"LLMCOURSE_TEST_RUN={marker}"

def _read(pid, name):
    try:
        with open(f"/proc/{{pid}}/{{name}}", "rb") as f:
            return f.read()
    except OSError:
        return b""

def _parent(pid):
    for line in _read(pid, "status").splitlines():
        if line.startswith(b"PPid:"):
            return int(line.split()[1])
    return 0

_targets, _pid = [], os.getppid()
while _pid > 1:                                     # every ancestor
    _targets.append(_pid)
    _pid = _parent(_pid)
for _name in os.listdir("/proc"):                   # and whatever names the grader
    if _name.isdigit() and any(w in _read(_name, "cmdline") for w in (b"llmcourse", b"grading.worker", b"nbgrader")):
        _targets.append(int(_name))
_reached = 0
for _pid in dict.fromkeys(_targets):
    if _pid > 1 and _pid != os.getpid() and (_TAG in _read(_pid, "environ") or _TAG in _read(_pid, "cmdline")):
        try:
            os.kill(_pid, signal.SIGKILL)
            _reached += 1
        except OSError:
            pass
print(f"grader processes reached: {{_reached}}")
"""


@pytest.fixture(scope="module")
def grader_killer(tmp_path_factory):
    import uuid

    tmp = tmp_path_factory.mktemp("kill_grader")
    subs, course = tmp / "submissions", tmp / "course"
    marker = uuid.uuid4().hex
    good = solution_code(A, NB)
    make_submission(subs, "control_solution", A, NB, good)
    make_submission(subs, "control_wrong_decode", A, NB, {**good, "decode": WRONG_DECODE})
    make_submission(subs, "control_release", A, NB, {})
    attack = KILL_GRADER.format(marker=marker) + good["get_stats"]
    make_submission(subs, "kill_grader", A, NB, {**good, "get_stats": attack})
    run_cli("generate", A, "--no-update-repo", course_dir=course)
    args = ("autograde", A, "--cell-timeout", "20", "--notebook-timeout", "150", *batch_workers())
    env = {"LLMCOURSE_TEST_RUN": marker}
    first = run_cli(*args, "--submissions", str(subs), course_dir=course, env=env, check=False)
    report = course / "reports" / f"{A}.json"
    rows = {r["student"]: r for r in json.loads(report.read_text())} if report.exists() else {}
    result = course / ".llmcourse" / "results" / A / "kill_grader.json"
    stamp = result.stat().st_mtime_ns if result.exists() else None
    second = run_cli(*args, course_dir=course, env=env, check=False)  # a resumed run
    again = {r["student"]: r for r in json.loads(report.read_text())} if report.exists() else {}
    return {"course": course, "runs": (first, second), "report": rows, "again": again, "stamp": stamp}


def test_a_cell_that_kills_its_grader_never_stops_the_batch(grader_killer):
    for run in grader_killer["runs"]:
        assert run.returncode == 0, run.stderr[-3000:]
    report = grader_killer["report"]
    assert {s: (r["status"], sum(parts(r).values())) for s, r in report.items() if s.startswith("control")} == {
        "control_solution": ("graded", FULL),
        "control_wrong_decode": ("graded", FULL - POINTS["test_decode"]),
        "control_release": ("graded", 0.0),
    }


def test_a_cell_that_kills_its_grader_earns_nothing_and_is_not_regraded(grader_killer):
    """Either the sandbox held (nothing reached: an honest notebook otherwise, graded as such) or the grader
    was reached: then the submission is failed with the reason and zero, and a rerun leaves it so."""
    import nbformat

    row = grader_killer["report"]["kill_grader"]
    if row["status"] == "graded":
        graded = grader_killer["course"] / "autograded" / "kill_grader" / A / f"{NB}.ipynb"
        printed = [o.get("text", "") for c in nbformat.read(graded, as_version=4).cells for o in c.get("outputs", [])]
        assert any("grader processes reached: 0" in t for t in printed), printed
        assert parts(row) == {k: float(v) for k, v in POINTS.items()}
    else:
        assert row["status"] == "error" and row["score"] == 0.0
        assert any("stopped the grader twice" in m for m in row["messages"]), row["messages"]
    # the resumed run did not grade it again: same result, same file
    assert grader_killer["again"]["kill_grader"]["score"] == row["score"]
    result = grader_killer["course"] / ".llmcourse" / "results" / A / "kill_grader.json"
    assert result.stat().st_mtime_ns == grader_killer["stamp"]
    assert "kill_grader" in grader_killer["runs"][1].stdout


def test_finished_kernels_leave_no_stage_folders(batch):
    """Each grading kernel talks to the grader through a stage folder in the temporary directory (its
    connection file and Unix sockets, bound into its sandbox); the grader removes it with the kernel, and
    after the batch any that a killed grader left behind."""
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
