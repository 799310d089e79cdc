"""The grading kernel's pieces that need no grading run: the policy it fails closed without, the
answer-key blocker, the stage folders the grader cleans up after killed graders, and the sandbox's command
line (what it binds, what it masks). tests/grading/test_sandbox.py probes the sandbox from inside."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from llmcourse.grading.kernel import STAGE_PREFIX, AnswerKeyBlocker, load_policy, remove_stale_stages, stage_pid


def test_the_grading_kernel_fails_closed_without_its_policy(tmp_path, monkeypatch):
    """No policy: the kernel refuses to start (it never runs student code unguarded). A folder that is
    no known assignment: the union policy (every answer key blocked, everything hidden)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLMCOURSE_")}
    proc = subprocess.run(
        [sys.executable, "-m", "llmcourse.grading.kernel", "-f", str(tmp_path / "c.json")],
        env={**env, "LLMCOURSE_COURSE_ROOT": str(tmp_path / "nowhere")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "no grading policy" in proc.stderr and "Traceback" not in proc.stderr
    policies = tmp_path / "course" / ".llmcourse" / "kernel"
    policies.mkdir(parents=True)
    (policies / "_any.json").write_text(
        json.dumps({"blocked": ["llmcourse.tokenization", "llmcourse.attention"], "hide": ["/x"]})
    )
    (policies / "01_tokenization.json").write_text(json.dumps({"blocked": ["llmcourse.tokenization"], "hide": []}))
    monkeypatch.setenv("LLMCOURSE_COURSE_ROOT", str(tmp_path / "course"))
    for folder, blocked in [
        ("01_tokenization", ["llmcourse.tokenization"]),
        ("somewhere_else", ["llmcourse.tokenization", "llmcourse.attention"]),
    ]:
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        assert load_policy()["blocked"] == blocked


def test_a_broken_policy_file_stops_the_kernel_too(tmp_path, monkeypatch):
    policies = tmp_path / ".llmcourse" / "kernel"
    policies.mkdir(parents=True)
    (policies / "_any.json").write_text('{"blocked": ["llmcourse.tokenization"]}')  # no "hide"
    monkeypatch.setenv("LLMCOURSE_COURSE_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="no grading policy"):
        load_policy()


def test_the_blocker_refuses_the_answer_key_and_its_submodules_only():
    blocker = AnswerKeyBlocker(["llmcourse.tokenization", ""])
    for name in ("llmcourse.tokenization", "llmcourse.tokenization.sub"):
        with pytest.raises(ImportError, match="reference solution for this assignment"):
            blocker.find_spec(name)
    assert blocker.find_spec("llmcourse.tokenization_extra") is None
    assert blocker.find_spec("llmcourse.checks") is None


def test_stage_pid_reads_only_our_folder_names():
    assert stage_pid(f"{STAGE_PREFIX}1234-abcd") == 1234
    assert stage_pid(f"{STAGE_PREFIX}x12-abcd") is None
    assert stage_pid("tmp1234") is None


def test_remove_stale_stages_removes_dead_kernels_folders_only(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f"{STAGE_PREFIX}{dead_pid}-a").mkdir()
    (tmp_path / f"{STAGE_PREFIX}{dead_pid}-a" / "kernel.json").write_text("{}")  # a killed grader's leftovers
    (tmp_path / f"{STAGE_PREFIX}{os.getpid()}-b").mkdir()  # alive: this process
    (tmp_path / "unrelated-1").mkdir()
    assert remove_stale_stages() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{STAGE_PREFIX}{os.getpid()}-b", "unrelated-1"])


def test_the_sandbox_binds_the_allow_list_and_nothing_else(tmp_path):
    """Every path bwrap binds is a system path, the interpreter's prefixes or packages, the working copy or
    the stage; the answer key is masked; the namespaces, the dropped capabilities and the read-only root
    are asked for."""
    from llmcourse.grading import sandbox

    work, stage = tmp_path / "work", tmp_path / f"{STAGE_PREFIX}1-x"
    key = Path(sandbox.python_paths()[-1]) / "llmcourse" / "attention.py"
    outside = tmp_path / "secret.py"
    argv = sandbox.sandbox_argv(["true"], str(work), str(stage), [str(key), str(outside), str(tmp_path)])
    assert argv[-4:] == ["--remount-ro", "/", "--", "true"]  # the root bwrap builds is read-only too
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert argv[argv.index("--cap-drop") + 1] == "ALL" and argv[argv.index("--proc") + 1] == "/proc"
    binds = [
        (argv[i], argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a in ("--bind", "--ro-bind", "--dev-bind")
    ]
    allowed = ["/usr", *(f"/etc/{n}" for n in sandbox.ETC_FILES), *sandbox.python_paths()]
    for kind, source, dest in binds:
        if kind == "--bind":
            assert source == dest and source in (str(work), str(stage))
        elif kind == "--dev-bind":
            assert (source, dest) == ("/dev/null", str(key))  # the answer key reads as empty
        else:
            assert source == dest and source in allowed, source
    # its bytecode folder is an empty tmpfs; what lies outside every bound tree needs no mask
    assert str(key.parent / "__pycache__") in argv
    assert str(outside) not in argv and str(tmp_path) not in [argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"]


def test_the_sandboxed_kernel_keeps_no_secret_from_the_environment(monkeypatch):
    from llmcourse.grading.sandbox import sandbox_env

    monkeypatch.setenv("PGPASSWORD", "hunter2")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    monkeypatch.setenv("JPY_PARENT_PID", "123")  # the kernel's parent is the sandbox's init, not the grader
    monkeypatch.setenv("LLMCOURSE_MEMORY_LIMIT_MB", "512")
    env = sandbox_env(EXTRA="1")
    assert {"PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "JPY_PARENT_PID"}.isdisjoint(env)
    assert env["LLMCOURSE_MEMORY_LIMIT_MB"] == "512" and env["EXTRA"] == "1" and env["HOME"] == "/tmp"
