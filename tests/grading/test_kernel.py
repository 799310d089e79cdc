"""The grading kernel's pieces that need no grading run: the policy it fails closed without, the
answer-key blocker, and the stage folders the grader cleans up after finished kernels."""

from __future__ import annotations

import json
import os
import subprocess
import sys

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
    (tmp_path / f"{STAGE_PREFIX}{os.getpid()}-b").mkdir()  # alive: this process
    (tmp_path / "unrelated-1").mkdir()
    assert remove_stale_stages() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{STAGE_PREFIX}{os.getpid()}-b", "unrelated-1"])
