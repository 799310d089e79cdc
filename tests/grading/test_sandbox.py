"""The grading sandbox, probed from inside a real grading kernel (bubblewrap, the course's kernelspec,
GradingExecute as nbgrader runs it): its own PID namespace, a network namespace with nothing in it, an
allow-listed file system, no capabilities, the limits; and it fails closed where bubblewrap is missing.

One notebook of probe cells runs once for the module; each probe prints one JSON line that the tests read.
Every probe is safe even if the sandbox were broken: it signals only the process this module started,
connects only to the listener this module opened, and reads only files this module planted.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
from conftest import REPO

PROBES = {
    # the processes it can see; SIGKILL only for the victim this module started, found by its token
    "pids": """
import os, signal, json
seen, killed = {}, []
for name in os.listdir("/proc"):
    if name.isdigit():
        try:
            seen[name] = open(f"/proc/{name}/cmdline", "rb").read().replace(b"\\0", b" ").decode(errors="replace")
        except OSError:
            seen[name] = "?"
for pid, cmd in seen.items():
    if "{token}" in cmd:
        os.kill(int(pid), signal.SIGKILL)
        killed.append(pid)
try:
    os.kill(1, 0)
    pid1 = "signalled"
except OSError as e:
    pid1 = type(e).__name__
print(json.dumps({"me": os.getpid(), "seen": seen, "killed": killed, "pid1": pid1}))
""",
    # the listener this module opened on the host's loopback, and an address outside
    "net": """
import json, socket
out = {}
for name, addr in [("loopback", ("127.0.0.1", {port})), ("outside", ("10.255.255.1", 80))]:
    try:
        socket.create_connection(addr, timeout=3).close()
        out[name] = "connected"
    except OSError as e:
        out[name] = e.errno
out["interfaces"] = sorted(line.split(":")[0].strip() for line in open("/proc/net/dev").readlines()[2:])
print(json.dumps(out))
""",
    # files this module planted or knows: none may be visible; writes only in the working copy and /tmp
    "files": """
import json, os
found = [p for p in {paths} if os.path.lexists(p)]
writes = {{}}
for where in [os.getcwd(), "/tmp", "{venv}", "/usr", "/etc"]:
    try:
        with open(os.path.join(where, "{token}"), "w") as f:
            f.write("x")
        writes[where] = "ok"
    except OSError as e:
        writes[where] = type(e).__name__
print(json.dumps({{"found": found, "root": sorted(os.listdir("/")), "etc": sorted(os.listdir("/etc")),
                  "tmp": sorted(os.listdir("/tmp")), "writes": writes}}))
""",
    # the graded unit's answer key: not importable, its source empty, its bytecode folder empty
    "answer_key": """
import json, os, llmcourse
folder = os.path.dirname(llmcourse.__file__)
try:
    import llmcourse.attention
    imported = "imported"
except ImportError as e:
    imported = "ImportError"
print(json.dumps({"imported": imported, "source": open(os.path.join(folder, "attention.py")).read(),
                  "cache": sorted(os.listdir(os.path.join(folder, "__pycache__")))}))
""",
    # no capability left to undo a mask; the limits hold
    "privileges": """
import ctypes, json, os, resource
status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
libc = ctypes.CDLL(None, use_errno=True)
path = os.path.join(os.path.dirname(__import__("llmcourse").__file__), "attention.py").encode()
umount = libc.umount2(path, 2)  # MNT_DETACH
print(json.dumps({"cap_eff": status["CapEff"].strip(), "cap_bnd": status["CapBnd"].strip(),
                  "umount": [umount, ctypes.get_errno()], "as": resource.getrlimit(resource.RLIMIT_AS)[0],
                  "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0]}))
""",
}


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """Run every probe in one sandboxed grading kernel; returns {probe: its JSON line} and the set-up."""
    from llmcourse.grading.course import Course, GradingOptions
    from llmcourse.grading.execute import GradingExecute
    from llmcourse.grading.nbgrader_setup import nbgrader_config, prepare_environment

    tmp = tmp_path_factory.mktemp("sandbox")
    course = Course.open(tmp / "course", repo=REPO)
    options = GradingOptions(sandbox=True, memory_mb=3000)
    prepare_environment(course, options)
    work = course.root / "submitted" / "probe" / "04_attention"
    work.mkdir(parents=True)
    other = course.root / "submitted" / "someone_else" / "04_attention" / "attention.ipynb"
    other.parent.mkdir(parents=True)
    other.write_text("{}")
    submissions = tmp / "submissions" / "a_student" / "04_attention" / "attention.ipynb"
    submissions.parent.mkdir(parents=True)
    submissions.write_text("{}")
    token = f"llmcourse-sandbox-victim-{uuid.uuid4().hex}"
    planted = Path("/tmp") / f"{token}.txt"  # the host's /tmp itself, whatever TMPDIR says
    planted.write_text("planted")
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", token])
    listener = socket.create_server(("127.0.0.1", 0))
    paths = [
        str(planted),
        str(other),
        str(submissions),
        str(course.root / "gradebook.db"),
        str(course.root / ".grading_seed"),
        str(course.root / ".llmcourse"),
        str(REPO / ".git"),
        str(REPO / "solutions" / "04_attention"),
        str(REPO / "tests"),
        str(REPO / "README.md"),
        str(Path.home() / ".bash_history"),
        os.environ["JUPYTER_RUNTIME_DIR"],
    ]
    code = {
        "pids": PROBES["pids"].replace("{token}", token),
        "net": PROBES["net"].replace("{port}", str(listener.getsockname()[1])),
        "files": PROBES["files"].format(paths=repr(paths), venv=sys.prefix, token=f"written-{token}"),
        "answer_key": PROBES["answer_key"],
        "privileges": PROBES["privileges"],
    }
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in code.values()])
    try:
        out, _ = GradingExecute(config=nbgrader_config(course, options)).preprocess(
            nb, {"metadata": {"path": str(work)}}
        )
        lines = {}
        for name, cell in zip(code, out.cells):
            texts = [o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream"]
            assert texts, f"probe {name} printed nothing: {cell.outputs}"
            lines[name] = json.loads(texts[-1].strip().splitlines()[-1])
        listener.setblocking(False)
        try:
            listener.accept()
            reached = True
        except BlockingIOError:
            reached = False
        yield {"out": lines, "victim": victim.poll(), "reached": reached, "work": work, "token": token}
    finally:
        victim.kill()
        victim.wait()
        listener.close()
        planted.unlink()


def test_the_kernel_sees_and_signals_only_its_own_processes(probe):
    pids = probe["out"]["pids"]
    assert probe["victim"] is None  # the process this module started outside is alive
    assert pids["killed"] == []
    assert pids["me"] <= 3  # its own PID namespace: bwrap's init is 1, the kernel right after
    assert len(pids["seen"]) <= 3, pids["seen"]  # init, the kernel (and nothing of the host)
    assert all("llmcourse.grading.kernel" in cmd for cmd in pids["seen"].values()), pids["seen"]
    assert pids["pid1"] == "signalled"  # pid 1 is the sandbox's own init, not the machine's


def test_no_loopback_service_and_no_outside_address_is_reachable(probe):
    import errno

    net = probe["out"]["net"]
    assert not probe["reached"]  # the listener on the host's 127.0.0.1 never saw a connection
    assert net["loopback"] == errno.ECONNREFUSED  # the kernel's own loopback, with nothing on it
    assert net["outside"] == errno.ENETUNREACH
    assert net["interfaces"] == ["lo"]


def test_the_file_system_is_an_allow_list(probe):
    files = probe["out"]["files"]
    assert files["found"] == []  # planted /tmp file, other students, submissions, gradebook, .git, solutions...
    top = {p.split("/")[1] for p in (sys.base_prefix, sys.prefix, str(REPO / "lib"), str(probe["work"]))}
    system = {"bin", "sbin", "lib", "lib32", "lib64", "libx32", "usr", "etc", "proc", "dev", "tmp"}
    assert set(files["root"]) <= system | top, files["root"]
    assert set(files["etc"]) <= {"ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "passwd", "group"} | {
        "nsswitch.conf",
        "fonts",
    }
    # /tmp is private: the kernel's stage folder and what lies on the way to its working copy, nothing else
    from llmcourse.grading.sandbox import STAGE_PREFIX

    # (and what lies on the way to the read-only binds: a checkout under /tmp shows its lib/ and checkpoints/)
    binds = (sys.base_prefix, sys.prefix, str(REPO / "lib"), str(REPO / "checkpoints"), str(probe["work"]))
    on_the_way = {Path(b).relative_to("/tmp").parts[0] for b in binds if b.startswith("/tmp/")}
    kernel_own = {f"written-{probe['token']}", "ipython", "matplotlib", *on_the_way}
    assert [n for n in files["tmp"] if n not in kernel_own and not n.startswith(STAGE_PREFIX)] == [], files["tmp"]
    # read-write: its own throwaway copy of the notebook's folder (never the folder itself, issue 24) and its
    # private /tmp (not the host's); read-only: everything else
    written = f"written-{probe['token']}"
    cwd = next(iter(files["writes"]))
    assert files["writes"][cwd] == "ok" and cwd != str(probe["work"]) and not (probe["work"] / written).exists()
    assert files["writes"]["/tmp"] == "ok" and not (Path("/tmp") / written).exists()
    assert {w: files["writes"][w] for w in (sys.prefix, "/usr", "/etc")} == dict.fromkeys(
        (sys.prefix, "/usr", "/etc"), "OSError"
    )


def test_the_answer_key_is_unreadable_and_not_importable(probe):
    key = probe["out"]["answer_key"]
    assert key == {"imported": "ImportError", "source": "", "cache": []}


def test_no_capability_is_left_to_undo_the_masks(probe):
    import errno

    priv = probe["out"]["privileges"]
    assert int(priv["cap_eff"], 16) == 0 and int(priv["cap_bnd"], 16) == 0
    assert priv["umount"] == [-1, errno.EPERM]
    assert priv["as"] == 3000 << 20 and priv["fsize"] == 256 << 20


def test_the_stage_folder_goes_with_its_kernel(probe):
    """The grader made one stage folder for the kernel's sockets and removed it after the kernel."""
    import tempfile

    from llmcourse.grading.sandbox import STAGE_PREFIX

    mine = [n for n in os.listdir(tempfile.gettempdir()) if n.startswith(f"{STAGE_PREFIX}{os.getpid()}-")]
    assert mine == []


def _no_bwrap_env(tmp_path: Path) -> dict:
    """This environment with a PATH where no bwrap lies (the tests start this interpreter by its full path)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = dict(os.environ, PATH=str(bindir))
    assert shutil.which("bwrap", path=env["PATH"]) is None
    return env


def test_without_bubblewrap_the_sandbox_is_reported_missing_and_never_skipped(tmp_path):
    """No bwrap on PATH: ``sandbox_available()`` says so (with how to install it), asking for the sandbox
    explicitly is refused, and a grading kernel told to sandbox itself refuses to start."""
    env = _no_bwrap_env(tmp_path)
    script = f"""
import sys
from llmcourse.grading.sandbox import sandbox_problem
from llmcourse.grading.nbgrader_setup import sandbox_available, prepare_environment
from llmcourse.grading.course import Course, GradingOptions, PipelineError
print(sandbox_available())
print(sandbox_problem())
try:
    prepare_environment(Course.open({str(tmp_path / "course")!r}, repo={str(REPO)!r}), GradingOptions(sandbox=True))
    print("prepared")
except PipelineError as e:
    print("refused:", e)
"""
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    available, problem, prepared = proc.stdout.strip().splitlines()[-3:]
    assert available == "False"
    assert "bubblewrap" in problem and "apt-get install bubblewrap" in problem
    assert prepared.startswith("refused: cannot grade in the sandbox") and "bubblewrap" in prepared

    policies = tmp_path / "course" / ".llmcourse" / "kernel"
    policies.mkdir(parents=True, exist_ok=True)
    (policies / "_any.json").write_text(json.dumps({"blocked": [], "hide": []}))
    marker = tmp_path / "student-code-ran"
    kernel = subprocess.run(
        [sys.executable, "-m", "llmcourse.grading.kernel", "-f", str(tmp_path / "kernel.json")],
        env={**env, "LLMCOURSE_SANDBOX": "1", "LLMCOURSE_COURSE_ROOT": str(tmp_path / "course")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert kernel.returncode != 0 and "bubblewrap" in kernel.stderr and "Traceback" not in kernel.stderr
    assert not marker.exists()


def test_a_sandboxed_kernel_refuses_a_connection_file_outside_a_stage_folder(tmp_path):
    """A plain KernelManager (TCP, the shared runtime folder) cannot start the sandboxed kernel: it would
    be unreachable behind its empty network, and a shared folder would show it other kernels' sockets."""
    policies = tmp_path / "course" / ".llmcourse" / "kernel"
    policies.mkdir(parents=True)
    (policies / "_any.json").write_text(json.dumps({"blocked": [], "hide": []}))
    connection = tmp_path / "kernel-1.json"
    connection.write_text(json.dumps({"transport": "tcp", "ip": "127.0.0.1", "shell_port": 1, "key": "k"}))
    proc = subprocess.run(
        [sys.executable, "-m", "llmcourse.grading.kernel", "-f", str(connection)],
        env={**os.environ, "LLMCOURSE_SANDBOX": "1", "LLMCOURSE_COURSE_ROOT": str(tmp_path / "course")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "transport='ipc'" in proc.stderr and "Traceback" not in proc.stderr
