"""The IPython kernel that runs student notebooks while grading.

It differs from a normal ``python3`` kernel in what the student's code can reach:

What to block and hide depends on the assignment: the kernel reads the policy the pipeline wrote for
it (``<course>/.llmcourse/kernel/<assignment>.json``, the assignment being the name of the folder
nbgrader runs the notebook in) before any student code runs; see :func:`load_policy`.

1. **Answer key unavailable.** The assignment's reference modules (the policy's ``blocked``,
   e.g. ``llmcourse.tokenization``) cannot be imported, so wrapping the reference earns nothing.
2. **Sandbox** (``LLMCOURSE_SANDBOX=1``, Linux): the kernel starts inside its own user and mount
   namespaces (``unshare -Urm``, no privileges needed). There it hides paths
   (the policy's ``hide``: the reference source files, solutions, tests, git history, the whole course
   directory with the gradebook and other students' work), makes the file system read-only except
   its own working copy and a private /tmp, then drops every capability, so it cannot undo any of it.
   Reading the reference source from disk, writing into the gradebook or into another student's
   folder all fail.
3. **Limits**: an address-space cap (``LLMCOURSE_MEMORY_LIMIT_MB``) turns a memory bomb into a
   MemoryError in that cell, a file-size cap stops disk floods, and the kernel dies with the grader
   (``PR_SET_PDEATHSIG``) so nothing outlives a killed batch.

``LLMCOURSE_GRADING=1`` tells :func:`llmcourse.checks.checker.check` to emit records and compare nothing.

Usage (kernelspec argv)::

    unshare -Urm --propagation private python -m llmcourse.grading.kernel -f {connection_file}
"""

from __future__ import annotations

import ctypes
import importlib.abc
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile


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
    """{"blocked": [module, ...], "hide": [path, ...]} for the assignment in the working directory.

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
        return {"blocked": list(policy["blocked"]), "hide": list(policy["hide"])}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(
            f"llmcourse grading kernel: no grading policy at {path} ({e}); "
            "grade through `llmcourse autograde`, which writes it"
        ) from None


# --------------------------------------------------------------------------- stage 1: the sandbox

STAGE_PREFIX = "llmcourse-kernel-"


def stage_pid(name: str) -> int | None:
    """The kernel pid in a stage folder's name (``llmcourse-kernel-<pid>-xxxx``), or None."""
    pid = name[len(STAGE_PREFIX) :].split("-")[0] if name.startswith(STAGE_PREFIX) else ""
    return int(pid) if pid.isdigit() else None


def remove_stale_stages() -> int:
    """Remove the empty stage folders that finished kernels left in the temporary directory (a kernel
    cannot remove its own: its file system is read-only). Only folders of processes that are gone:
    removing a live kernel's mount point would detach its mounts. Returns how many were removed."""
    removed = 0
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        pid = stage_pid(name)
        if pid is None:
            continue
        try:
            os.kill(pid, 0)
            continue  # still running (or the pid was reused: leave it)
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        try:
            os.rmdir(os.path.join(tmp, name))
            removed += 1
        except OSError:
            pass
    return removed


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def _read_only_everywhere(except_under: str) -> None:
    """Remount every mount read-only (one remount covers one mount), except the kernel's own stage."""
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1].encode().decode("unicode_escape") for line in f]
    for target in targets:
        if target == except_under or target.startswith(except_under + "/"):
            continue
        subprocess.run(["mount", "-o", "remount,bind,ro", target], capture_output=True)
    # the root must be read-only, or nothing above means anything
    _mount("-o", "remount,bind,ro", "/")


def _connection_file(argv: list[str]) -> int:
    return argv.index("-f") + 1


def enter_sandbox(argv: list[str], policy: dict) -> None:
    """Runs as root of a fresh user+mount namespace; ends by exec'ing stage 2 without privileges."""
    work = os.getcwd()
    i = _connection_file(argv)
    connection = open(argv[i]).read()
    stage = tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-")  # the pid lets the grader clean up
    _mount("--make-rprivate", "/")
    _mount("-t", "tmpfs", "-o", "size=512m", "tmpfs", stage)
    os.makedirs(f"{stage}/work")
    os.makedirs(f"{stage}/tmp")
    _mount("--bind", work, f"{stage}/work")
    for path in filter(None, policy["hide"]):
        if os.path.isdir(path):
            _mount("-t", "tmpfs", "-o", "size=1m,mode=0555", "tmpfs", path)
        elif os.path.exists(path):
            _mount("--bind", "/dev/null", path)
    _read_only_everywhere(except_under=stage)
    argv = list(argv)
    argv[i] = f"{stage}/tmp/connection.json"
    with open(argv[i], "w") as f:
        f.write(connection)
    os.chdir(f"{stage}/work")
    env = dict(
        os.environ,
        TMPDIR=f"{stage}/tmp",
        IPYTHONDIR=f"{stage}/tmp/ipython",
        MPLCONFIGDIR=f"{stage}/tmp/matplotlib",
        LLMCOURSE_SANDBOX="entered",
        LLMCOURSE_BLOCKED_MODULES=",".join(policy["blocked"]),
    )  # the policy file is hidden now
    os.execvpe(
        "setpriv",
        [
            "setpriv",
            "--bounding-set=-all",
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--no-new-privs",
            "--",
            sys.executable,
            "-m",
            "llmcourse.grading.kernel",
            *argv,
        ],
        env,
    )


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
