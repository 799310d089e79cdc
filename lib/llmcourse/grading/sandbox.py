"""The grading sandbox: bubblewrap's command line for one grading kernel, and the stage folders it uses.

An allow-list, not a deny-list: the kernel starts in an empty root and sees only what is bound in.

- **Namespaces**: its own PID namespace (``/proc`` mounted for it: it sees and signals only its own
  processes), network namespace (only its own loopback: no service on the host's 127.0.0.1, no outside
  address), user, IPC, UTS and cgroup namespaces; a new session; every capability dropped, so it cannot
  unmount a mask.
- **Read-only**: ``/usr`` and the ``/lib``, ``/bin`` links, a few files of ``/etc``, the interpreter's prefix and
  the environment's packages (:func:`python_paths`), with the graded unit's answer keys masked
  (:func:`_hide_args`), and the course's own data (the policy's ``data``: ``checkpoints/``, the models the
  project trained). **Read-write**: its working copy, its stage folder, a private empty ``/tmp``.
  Nothing else: not the host's /tmp, the submissions, the course directory, home directories, the
  repository's solutions and history, nor other checkouts.
- **Stage folder**: the grader makes one per kernel (:func:`make_stage`) for the connection file and the
  Unix sockets it talks through (the kernel has no network, so ``transport="ipc"``), and removes it after.
  The kernel's working copy is a stage-named folder too (``GradingExecute``), so a killed grader's copies are
  removed with its stage folders.

Import-light (standard library only): the kernel imports it before any student code runs.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile

INSTALL_BWRAP = (
    "the grading sandbox needs bubblewrap: install the Debian/Ubuntu package `bubblewrap` "
    "(`sudo apt-get install bubblewrap`, or `make setup-system`), or grade with --no-sandbox on a machine "
    "where students are trusted"
)


# --------------------------------------------------------------------------- stage folders

# A stage folder holds one kernel's connection file and Unix sockets: the grader makes it (and removes it
# after the kernel), the sandbox binds it in. The pid in its name is the grader's, so folders left behind
# by a killed grader can be told from live ones.
STAGE_PREFIX = "llmcourse-kernel-"


def make_stage() -> str:
    """A fresh, private stage folder in the temporary directory (short: Unix socket paths hold 107 bytes)."""
    return tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-")


def stage_pid(name: str) -> int | None:
    """The grader pid in a stage folder's name (``llmcourse-kernel-<pid>-xxxx``), or None."""
    pid = name[len(STAGE_PREFIX) :].split("-")[0] if name.startswith(STAGE_PREFIX) else ""
    return int(pid) if pid.isdigit() else None


def remove_stale_stages() -> int:
    """Remove the stage folders that killed graders left in the temporary directory. Only folders of
    processes that are gone: a live grader's kernel still talks through its folder. Returns how many."""
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
        path = os.path.join(tmp, name)
        if os.path.isdir(path) and not os.path.islink(path):
            from .safe_files import remove_tree  # a kernel's working copy: whatever it left there

            remove_tree(path)
            removed += not os.path.exists(path)
    return removed


# --------------------------------------------------------------------------- the command line

# What of /etc the interpreter and the libraries need: the dynamic linker's cache, the time zone, user and
# group names (getpass, pwd), fontconfig for matplotlib. Nothing with a secret in it.
ETC_FILES = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group", "nsswitch.conf", "fonts")
# Environment variables the kernel keeps (prefixes); everything else (tokens, database URLs...) is dropped.
# Not JPY_PARENT_PID: in its own PID namespace the kernel's parent is the sandbox's init, and ipykernel
# would take the changed parent pid for a dead grader. PR_SET_PDEATHSIG does that job.
ENV_KEPT = ("LLMCOURSE_", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED", "PYTHONIOENCODING", "PYTHONUTF8", "LANG")
ENV_KEPT += ("LC_", "TZ", "PATH", "VIRTUAL_ENV", "MPLBACKEND", "OMP_", "MKL_", "OPENBLAS_", "TORCH_", "TERM")


def sandbox_env(**extra: str) -> dict[str, str]:
    """The kernel's environment: the harmless part of this one (:data:`ENV_KEPT`), home and temporary files in
    the private /tmp, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_KEPT)}
    env.update(HOME="/tmp", TMPDIR="/tmp", IPYTHONDIR="/tmp/ipython", MPLCONFIGDIR="/tmp/matplotlib")
    return {**env, **extra}


def bwrap() -> str | None:
    """The bubblewrap executable on PATH (the grader's PATH, which the kernel inherits), or None."""
    return shutil.which("bwrap")


@functools.cache
def _bwrap_has(option: str) -> bool:
    """Whether this bwrap knows ``option`` (older releases lack some)."""
    exe = bwrap()
    usage = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout if exe else ""
    return option in usage.split()


def python_paths() -> list[str]:
    """The interpreter, its prefix and the environment's packages: the base and venv prefixes, plus every
    folder on ``sys.path`` that a ``.pth`` file added (an editable install's ``lib/``). Not ``PYTHONPATH``
    entries and not the working directory: those are the grader's, not the environment's."""
    extra = set(filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    paths = [sys.base_prefix, sys.prefix]
    for p in sys.path:
        if not p or p in extra or not os.path.isdir(p) or os.path.realpath(p) == os.path.realpath(os.getcwd()):
            continue
        if not any(p == q or p.startswith(q.rstrip("/") + "/") for q in paths):
            paths.append(p)
    return list(dict.fromkeys(paths))


def _system_args() -> list[str]:
    """Read-only system files: /usr, the merged-/usr links (or folders), a few of /etc."""
    args = ["--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = f"/{name}"
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    for name in ETC_FILES:
        if os.path.exists(f"/etc/{name}"):
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    return args


def _under(path: str, roots: list[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _hide_args(hide: list[str], visible: list[str]) -> list[str]:
    """Mask what the sandbox would otherwise show: a file reads as empty (/dev/null: writes vanish), a
    folder is an empty read-only tmpfs. A hidden ``.py`` file also gets its ``__pycache__`` masked: the
    grader may write the answer key's bytecode there at any time, and bytecode is the answer key too.
    Paths outside every visible tree are invisible anyway."""
    args: list[str] = []
    caches = []
    for path in filter(None, hide):
        if not _under(path, visible):
            continue
        if os.path.isdir(path):
            args += ["--perms", "0555", "--tmpfs", path, "--remount-ro", path]
        elif os.path.isfile(path):
            args += ["--dev-bind", "/dev/null", path]  # a plain bind is nodev: reading it would raise
            if path.endswith(".py"):
                caches.append(os.path.join(os.path.dirname(path), "__pycache__"))
    for cache in dict.fromkeys(caches):
        try:
            os.makedirs(cache, exist_ok=True)  # so bytecode written later lands under the mask
        except OSError:
            pass
        if os.path.isdir(cache):
            args += ["--perms", "0555", "--tmpfs", cache, "--remount-ro", cache]
    return args


def sandbox_argv(command: list[str], work: str, stage: str, hide: list[str], data: list[str] = ()) -> list[str]:
    """The bwrap command line that runs ``command`` in the sandbox, in ``work`` (read-write), with ``stage``
    (read-write) for the grader's sockets and the course ``data`` folders read-only. Raises RuntimeError when
    bwrap is missing."""
    exe = bwrap()
    if exe is None:
        raise RuntimeError(INSTALL_BWRAP)
    visible = python_paths()
    args = [exe, "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    args += ["--hostname", "grading", "--proc", "/proc", "--dev", "/dev"]
    args += _system_args()
    # a private /tmp, bounded where this bwrap can (0.7+); first, so that binds below /tmp land on it
    args += (["--size", str(512 << 20)] if _bwrap_has("--size") else []) + ["--tmpfs", "/tmp"]
    for path in visible:
        args += ["--ro-bind", path, path]
    for path in data:
        if os.path.isdir(path) and not _under(path, visible):
            args += ["--ro-bind", path, path]
    args += _hide_args(hide, visible)
    args += ["--bind", work, work, "--bind", stage, stage, "--chdir", work]
    args += ["--remount-ro", "/"]  # the root bwrap builds (/etc, the folders leading to the binds) too
    return args + ["--", *command]


@functools.lru_cache(maxsize=1)
def sandbox_problem() -> str:
    """Why the sandbox cannot run here ("" when it can): starts the interpreter in it once."""
    if not sys.platform.startswith("linux"):
        return "the grading sandbox needs Linux namespaces"
    if bwrap() is None:
        return INSTALL_BWRAP
    stage = make_stage()
    try:
        argv = sandbox_argv([sys.executable, "-c", "import os; os.listdir('/tmp')"], stage, stage, [])
        probe = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as e:
        return f"bubblewrap failed to start: {e}"
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if probe.returncode != 0:
        return f"bubblewrap cannot make the sandbox here: {probe.stderr.strip()[-300:]}"
    return ""


def stage_of(connection_file: str) -> str:
    """The kernel's stage folder: the connection file's own folder, which must be a stage (a shared
    runtime folder would show other kernels' sockets and keys) and hold the sockets (transport ipc)."""
    stage = os.path.dirname(os.path.abspath(connection_file))
    try:
        with open(connection_file) as f:
            info = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"llmcourse grading kernel: cannot read the connection file ({e})") from None
    ip = os.path.abspath(str(info.get("ip", "")))
    if (
        not os.path.basename(stage).startswith(STAGE_PREFIX)
        or info.get("transport") != "ipc"
        or os.path.dirname(ip) != stage
    ):
        raise SystemExit(
            "llmcourse grading kernel: the sandboxed kernel has no network and talks over Unix sockets in its "
            "own stage folder; start it through llmcourse's GradingExecute (transport='ipc'), not a plain "
            "KernelManager"
        )
    return stage
