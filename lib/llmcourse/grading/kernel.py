"""The IPython kernel that runs student notebooks while grading.

A grading kernel is untrusted code. It differs from a normal ``python3`` kernel in what that code can reach.
What to block depends on the assignment: the kernel reads the policy the pipeline wrote for it
(``<course>/.llmcourse/kernel/<assignment>.json``, the assignment being the name of the folder nbgrader runs
the notebook in) before any student code runs; see :func:`load_policy`.

1. **Answer key unavailable.** The assignment's reference modules (the policy's ``blocked``, e.g.
   ``llmcourse.tokenization``) cannot be imported, and inside the sandbox their source and bytecode files
   read as empty (the policy's ``hide``), so wrapping or exec-ing the reference earns nothing.
2. **Sandbox** (``LLMCOURSE_SANDBOX=1``): stage 1 (trusted code, before any student code) re-executes the
   kernel under bubblewrap (:mod:`llmcourse.grading.sandbox`): its own PID namespace (it sees and signals
   only its own processes), a network namespace with nothing in it (no service on 127.0.0.1: the grader
   talks to it over Unix sockets in its stage folder), no capabilities, and an allow-listed file system
   (system files, the interpreter and packages read-only; its working copy, its stage folder and a private
   /tmp read-write; nothing else: not the host's /tmp, the submissions, the course, home directories, the
   repository's solutions and history). No ``bwrap``, or a kernel started without its stage folder: the
   kernel refuses to start. It never runs student code unsandboxed when the sandbox was asked for.
3. **Limits**: an address-space cap (``LLMCOURSE_MEMORY_LIMIT_MB``) turns a memory bomb into a MemoryError in
   that cell, a file-size cap stops disk floods, printed output is capped, and the kernel dies with the
   grader (``PR_SET_PDEATHSIG``; bwrap's ``--die-with-parent``) so nothing outlives a killed batch.

``LLMCOURSE_GRADING=1`` tells :func:`llmcourse.checks.checker.check` to emit records and compare nothing.

Usage (kernelspec argv; the grader passes a connection file inside a fresh stage folder)::

    python -m llmcourse.grading.kernel -f {connection_file}
"""

from __future__ import annotations

import ctypes
import importlib.abc
import json
import os
import resource
import signal
import sys

# the grader cleans up stage folders through this module (autograde.py, the tests)
from .sandbox import (
    INSTALL_BWRAP,
    STAGE_PREFIX,
    bwrap,
    remove_stale_stages,
    sandbox_argv,
    sandbox_env,
    stage_of,
    stage_pid,
)

__all__ = ["AnswerKeyBlocker", "STAGE_PREFIX", "load_policy", "main", "remove_stale_stages", "stage_pid"]


class AnswerKeyBlocker(importlib.abc.MetaPathFinder):
    """Refuses to import the answer-key modules, with a message that says why."""

    def __init__(self, blocked: list[str]):
        self.blocked = [b for b in blocked if b]

    def find_spec(self, fullname, path=None, target=None):
        for b in self.blocked:
            if fullname == b or fullname.startswith(b + "."):
                raise ImportError(
                    f"{fullname} is the reference solution for this assignment and is not available "
                    "while grading; your notebook must implement the graded functions itself"
                )
        return None


def install_blocker(blocked: list[str]) -> None:
    for name in list(sys.modules):
        if any(name == b or name.startswith(b + ".") for b in blocked if b):
            del sys.modules[name]
    sys.meta_path.insert(0, AnswerKeyBlocker(blocked))


def load_policy() -> dict:
    """{"blocked": [module, ...], "hide": [path, ...], "data": [path, ...]} for the assignment in the working
    directory (``data``: course files shown read-only, e.g. ``checkpoints/``).

    A notebook outside every known assignment gets ``_any`` (everything blocked and hidden); no policy
    at all stops the kernel: it must never run student code unguarded.
    """
    root = os.environ.get("LLMCOURSE_COURSE_ROOT", "")
    folder = os.path.join(root, ".llmcourse", "kernel")
    path = os.path.join(folder, os.path.basename(os.getcwd()) + ".json")
    if not os.path.isfile(path):
        path = os.path.join(folder, "_any.json")
    try:
        with open(path) as f:
            policy = json.load(f)
        return {"blocked": list(policy["blocked"]), "hide": list(policy["hide"]), "data": list(policy.get("data", []))}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(
            f"llmcourse grading kernel: no grading policy at {path} ({e}); "
            "grade through `llmcourse autograde`, which writes it"
        ) from None


# --------------------------------------------------------------------------- stage 1: into the sandbox


def _connection_file(argv: list[str]) -> int:
    return argv.index("-f") + 1


def enter_sandbox(argv: list[str], policy: dict) -> None:
    """Stage 1 (no student code yet): exec stage 2 inside bubblewrap. Does not return."""
    if bwrap() is None:
        raise SystemExit(f"llmcourse grading kernel: {INSTALL_BWRAP}")
    stage = stage_of(argv[_connection_file(argv)])
    # stage 2 learns the policy from its environment: the policy file is not in the sandbox
    env = sandbox_env(LLMCOURSE_SANDBOX="entered", LLMCOURSE_BLOCKED_MODULES=",".join(policy["blocked"]))
    command = [sys.executable, "-m", "llmcourse.grading.kernel", *argv]
    full = sandbox_argv(command, os.getcwd(), stage, policy["hide"], policy["data"])
    # bwrap's --die-with-parent takes effect only once bwrap has started; a grader killed before that would
    # leave bwrap and its kernel orphaned. PR_SET_PDEATHSIG (= 1) survives execve, so set it now, then make
    # sure the grader did not die before it was set.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    parent = os.environ.get("JPY_PARENT_PID", "")
    if parent.isdigit() and os.getppid() != int(parent):
        raise SystemExit("llmcourse grading kernel: the grader that started it is gone")
    os.execve(full[0], full, env)


# --------------------------------------------------------------------------- stage 2: the kernel


def apply_limits() -> None:
    megabytes = int(os.environ.get("LLMCOURSE_MEMORY_LIMIT_MB", "0") or 0)
    if megabytes:
        resource.setrlimit(resource.RLIMIT_AS, (megabytes << 20, megabytes << 20))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails instead of killing
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 << 20, 256 << 20))
    try:  # die with the grader: PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the grader's timeouts still apply
        pass
    # The kernel's own stdout/stderr go to the grader's pipes: a flood must not land there.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)


def main() -> None:
    argv = sys.argv[1:]
    if os.environ.get("LLMCOURSE_SANDBOX") == "entered":  # stage 2: stage 1 passed the policy on
        blocked = os.environ.get("LLMCOURSE_BLOCKED_MODULES", "").split(",")
    else:
        policy = load_policy()
        if os.environ.get("LLMCOURSE_SANDBOX") == "1":
            enter_sandbox(argv, policy)  # does not return
        blocked = policy["blocked"]
    apply_limits()
    install_blocker(blocked)
    # No debugger in a grading kernel: ipykernel imports debugpy when it can (a sixth of the kernel's
    # start-up CPU, paid per student) and would listen for a debugger client nobody runs.
    sys.modules["debugpy"] = None
    from ipykernel.kernelapp import IPKernelApp

    app = IPKernelApp.instance()
    app.initialize(argv)
    limit = int(os.environ.get("LLMCOURSE_OUTPUT_LIMIT", "0") or 0)
    if limit:
        cap_output(limit)
    app.start()


def cap_output(limit: int) -> None:
    """Stop sending printed text once ``limit`` characters went out: a 1 GB print must not travel.

    The grader enforces its own budget as well; this only saves it from receiving the flood.
    """
    sent = {"n": 0}
    for stream in (sys.stdout, sys.stderr):
        write = stream.write

        def capped(text, _write=write):
            if not isinstance(text, str):
                return _write(text)
            room = limit - sent["n"]
            sent["n"] += len(text)
            if room <= 0:
                return len(text)
            if len(text) > room:
                _write(text[:room])
                return _write(f"\n[output limit of {limit} characters reached: the rest is dropped]\n")
            return _write(text)

        stream.write = capped


if __name__ == "__main__":
    main()
