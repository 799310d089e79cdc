"""The grader never follows what a student could have made (issue 24, point 1).

A kernel's cell replaces its notebook in its working folder with a symbolic link (to the gradebook, another
student's submitted or graded notebook, the course's source notebook, a file outside the course), a hard link,
a FIFO, and leaves a socket, a sparse file as big as the kernel may make and a 10,000-file tree beside it.
Before the fix the grader wrote the executed notebook back through such a link (the gradebook held notebook
JSON, every grade of the course was gone). Now the kernel works on a throwaway copy: every target stays
byte-for-byte the same, the gradebook opens and exports, every honest grade is exact and each attacker's own
honest answers earn their points. Submissions that arrive with links (``--submissions``, or put into
``submitted/`` by hand) are graded without following them. One batch, graded once, on assignment 04.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3

import nbformat
import pytest
from conftest import batch_workers, make_submission, manifest, run_cli, solution_code

A, NB = "04_attention", "attention"
POINTS = {part.grade_id: float(part.points) for part in manifest(A).parts}
FULL = sum(POINTS.values())
REPORT = "LINK-ATTACK "  # what the attacking cell did, printed for the test to read

# Each attack runs before the honest answer of the first part, in the kernel's working folder, and replaces
# the notebook there ({nb}) with something. The paths are the ones a kernel saw before the fix (its working
# folder was <course>/autograded/<student>/<assignment>/, three levels below the course).
LINK_TO = {
    "link_gradebook": "{course}/gradebook.db",
    "link_other_submitted": "{course}/submitted/control_solution/{a}/{nb}",
    "link_other_autograded": "{course}/autograded/control_solution/{a}/{nb}",
    "link_source": "{course}/source/{a}/{nb}",
    "link_outside": "{outside}",
}
ATTACK_HEAD = """
import json as _json, os as _os, socket as _socket
_did = {{"cwd": _os.getcwd()}}

def _replace(name, make):
    try:
        if _os.path.lexists(name):
            _os.unlink(name)
        make(name)
        _did[name] = "made"
    except Exception as e:
        _did[name] = f"{{type(e).__name__}}: {{e}}"
"""
ATTACK_LINK = """
_replace("{nb}", lambda n: _os.symlink("{target}", n))
# and other files a grader might write or copy: nbgrader's output folder, the timestamp, a data file
_replace("{stem}_files", lambda n: _os.symlink("{course}", n))
_replace("timestamp.txt", lambda n: _os.symlink("{target}", n))
_replace("expected_outputs.json", lambda n: _os.symlink("{target}", n))
"""
ATTACK_SPECIAL = """
def _tree(n):
    for i in range(100):
        _os.makedirs(f"{{n}}/d{{i}}")
        for j in range(100):
            open(f"{{n}}/d{{i}}/f{{j}}", "w").close()
    _os.chmod(f"{{n}}/d0", 0)        # unreadable: the grader must still remove it
    _os.chmod(n, 0o500)              # and read-only

def _sparse(n):
    with open(n, "wb") as f:
        try:
            f.truncate(100 << 30)    # 100 GB; the kernel's file-size cap may refuse it
            _did["sparse size"] = "100 GB"
        except OSError as e:
            _did["sparse 100 GB"] = f"{{type(e).__name__}}: {{e}}"
            f.truncate(255 << 20)    # just under the cap
            _did["sparse size"] = "255 MB"

_keep = _socket.socket(_socket.AF_UNIX)
_replace("{nb}", _os.mkfifo)
_replace("grades.sock", _keep.bind)
_replace("big.bin", _sparse)
_replace("tree", _tree)
# hard links: to what the kernel sees of the course (nothing: these fail), and to a file of its own copy
for _name, _target in [("hard-gradebook", "{course}/gradebook.db"), ("hard-outside", "{outside}"),
                       ("{stem}-hard.ipynb", "big.bin")]:
    _replace(_name, lambda n, t=_target: _os.link(t, n))
"""
ATTACK_TAIL = "print({report!r} + _json.dumps(_did))\n"
ATTACKERS = [*LINK_TO, "special_files"]


def attack(student: str, course, outside) -> str:
    where = {"course": course, "outside": outside, "a": A, "nb": f"{NB}.ipynb", "stem": NB, "report": REPORT}
    body = ATTACK_SPECIAL if student == "special_files" else ATTACK_LINK
    target = LINK_TO.get(student, "").format(**where)
    return (ATTACK_HEAD + body + ATTACK_TAIL).format(target=target, **where)


def sha(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def disk_bytes(folder) -> int:
    """Bytes really on disk under ``folder`` (blocks, so a sparse file counts what it holds)."""
    total = 0
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            total += os.lstat(os.path.join(top, name)).st_blocks * 512
    return total


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("links")
    subs, course, stages = tmp / "submissions", tmp / "course", tmp / "tmp"
    stages.mkdir()
    outside = tmp / "outside" / "precious.txt"  # a file of the instructor's, outside the course
    outside.parent.mkdir()
    outside.write_text("the instructor's file\n")
    good = solution_code(A, NB)
    first = next(iter(good))  # the first answer cell: the attack runs before its honest code
    make_submission(subs, "control_solution", A, NB, good)
    make_submission(subs, "control_release", A, NB, {})
    for student in ATTACKERS:
        make_submission(subs, student, A, NB, {**good, first: attack(student, course, outside) + good[first]})

    # A submissions folder that holds links: to /etc/passwd, to the gradebook, a FIFO, a linked folder, and
    # a notebook that is itself a link to another student's.
    linked = make_submission(subs, "import_links", A, NB, good).parent
    (linked / "passwd").symlink_to("/etc/passwd")
    (linked / "grades.db").symlink_to(course / "gradebook.db")
    os.mkfifo(linked / "pipe")
    (linked / "data").mkdir()
    (linked / "data" / "course").symlink_to(course, target_is_directory=True)
    (linked / "data" / "notes.txt").write_text("kept\n")
    borrowed = subs / "notebook_link" / A
    borrowed.mkdir(parents=True)
    (borrowed / f"{NB}.ipynb").symlink_to(subs / "control_solution" / A / f"{NB}.ipynb")

    run_cli("generate", A, "--no-update-repo", course_dir=course)
    # Links put straight into submitted/ (by hand, or an exchange), not through --submissions.
    direct = make_submission(course / "submitted", "direct_links", A, NB, good).parent
    (direct / "passwd").symlink_to("/etc/passwd")
    os.mkfifo(direct / "pipe")
    (direct / "grades.db").symlink_to(course / "gradebook.db")

    source = course / "source" / A / f"{NB}.ipynb"
    targets = {
        "source": source,
        "outside": outside,
        "submissions/control_solution": subs / "control_solution" / A / f"{NB}.ipynb",
        "/etc/passwd": "/etc/passwd",
    }
    before = {name: sha(path) for name, path in targets.items()}
    run_cli(
        "autograde",
        A,
        "--submissions",
        str(subs),
        "--cell-timeout",
        "60",
        *batch_workers(),
        course_dir=course,
        env={"TMPDIR": str(stages)},
    )
    targets["submitted/control_solution"] = course / "submitted" / "control_solution" / A / f"{NB}.ipynb"
    report = {r["student"]: r for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    return {
        "course": course,
        "subs": subs,
        "stages": stages,
        "outside": outside,
        "report": report,
        "targets": targets,
        "before": before,
        "after": {name: sha(path) for name, path in targets.items()},
    }


def parts(row) -> dict[str, float]:
    return {k.split(":")[1]: v[0] for k, v in row["parts"].items() if k.split(":")[1] in POINTS}


def printed(course, student) -> list[dict]:
    """What the attacking cell reported it did, from the graded notebook."""
    nb = nbformat.read(course / "autograded" / student / A / f"{NB}.ipynb", as_version=4)
    lines = [line for c in nb.cells for o in c.get("outputs", []) for line in o.get("text", "").splitlines()]
    return [json.loads(line[len(REPORT) :]) for line in lines if line.startswith(REPORT)]


def test_every_target_is_byte_for_byte_unchanged(batch):
    changed = {name for name in batch["before"] if batch["before"][name] != batch["after"][name]}
    assert not changed
    # submitted/ was made by the import: the same bytes as the student's own file
    assert batch["after"]["submitted/control_solution"] == batch["before"]["submissions/control_solution"]
    assert batch["outside"].read_text() == "the instructor's file\n"


def test_the_gradebook_opens_and_exports(batch):
    course = batch["course"]
    assert os.path.isfile(course / "gradebook.db") and not os.path.islink(course / "gradebook.db")
    db = sqlite3.connect(course / "gradebook.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    out = course / "grades.csv"
    run_cli("export", "--out", str(out), course_dir=course)
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    assert {r[3]: float(r[9]) for r in rows}["control_solution"] == FULL


def test_honest_grades_are_exact(batch):
    report = batch["report"]
    assert parts(report["control_solution"]) == POINTS
    assert set(parts(report["control_release"]).values()) == {0.0}
    graded = nbformat.read(batch["course"] / "autograded" / "control_solution" / A / f"{NB}.ipynb", as_version=4)
    assert not any(REPORT in o.get("text", "") for c in graded.cells for o in c.get("outputs", []))


@pytest.mark.parametrize("student", ATTACKERS)
def test_the_attacker_is_graded_on_its_answers(batch, student):
    """Its cell ran (it reported what it made) and its honest answers kept every point."""
    row = batch["report"][student]
    assert row["status"] == "graded", row["messages"]
    assert parts(row) == POINTS, row
    did = printed(batch["course"], student)
    assert len(did) == 1 and did[0][f"{NB}.ipynb"] == "made", did
    assert not did[0]["cwd"].startswith(str(batch["course"])), did  # it never worked in the course


def test_special_files_cost_neither_disk_nor_leftovers(batch):
    did = printed(batch["course"], "special_files")[0]
    for name in ("grades.sock", "big.bin", "tree", f"{NB}-hard.ipynb"):
        assert did[name] == "made", did
    # across the sandbox's mounts a hard link to the course or the outside file cannot even be made
    assert did["hard-gradebook"] != "made" and did["hard-outside"] != "made", did
    course, stages = batch["course"], batch["stages"]
    assert disk_bytes(course) < 100 << 20
    assert disk_bytes(stages) < 10 << 20
    assert not [n for n in os.listdir(stages) if n.startswith("llmcourse-kernel-")]  # working copies gone
    graded = course / "autograded" / "special_files" / A
    assert sorted(os.listdir(graded)) == sorted(os.listdir(course / "autograded" / "control_solution" / A))


def test_graded_folders_hold_plain_files_only(batch):
    from llmcourse.grading.safe_files import unsafe_entries

    for folder in ("autograded", "submitted"):
        assert unsafe_entries(batch["course"] / folder) == []


def test_an_imported_folder_with_links_is_copied_without_them(batch):
    course = batch["course"]
    row = batch["report"]["import_links"]
    assert row["status"] == "graded" and parts(row) == POINTS, row
    imported = course / "submitted" / "import_links" / A
    assert sorted(p.name for p in imported.rglob("*")) == sorted([f"{NB}.ipynb", "data", "notes.txt"])
    said = " ".join(row["messages"])
    for name in ("passwd", "grades.db", "pipe", "data/course"):
        assert f"{name} is a" in said, row["messages"]
    assert "/etc/passwd" in said and "symbolic link" in said and "FIFO" in said


def test_a_notebook_that_is_a_link_is_not_graded_as_anyones(batch):
    row = batch["report"]["notebook_link"]
    assert row["status"] == "error" and row["score"] == 0.0, row
    assert any(f"{NB}.ipynb is a symbolic link" in m for m in row["messages"]), row["messages"]


def test_links_put_into_submitted_are_set_aside_not_followed(batch):
    course = batch["course"]
    row = batch["report"]["direct_links"]
    assert row["status"] == "graded" and parts(row) == POINTS, row
    assert sorted(os.listdir(course / "submitted" / "direct_links" / A)) == [f"{NB}.ipynb"]
    aside = course / ".llmcourse" / "set-aside" / A / "direct_links"
    assert os.readlink(aside / "passwd") == "/etc/passwd"  # moved, still the same link: nothing lost
    assert sum("set aside" in m for m in row["messages"]) == 3, row["messages"]


def test_a_socket_or_fifo_in_a_submission_never_blocks_a_read(tmp_path):
    """The helpers themselves, on the file kinds the batch plants (fast; no kernel)."""
    from llmcourse.grading.safe_files import NotPlainFile, read_regular, write_new

    os.mkfifo(tmp_path / "pipe")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "sock"))
    (tmp_path / "target").write_text("unchanged")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    os.link(tmp_path / "target", tmp_path / "hard")
    for name in ("pipe", "sock", "link"):
        with pytest.raises(NotPlainFile):
            read_regular(tmp_path / name)
    with pytest.raises(NotPlainFile):
        read_regular("/dev/zero")
    for name in ("link", "hard", "pipe"):
        write_new(tmp_path / name, b"new")
        assert (tmp_path / name).read_bytes() == b"new" and not (tmp_path / name).is_symlink()
    assert (tmp_path / "target").read_text() == "unchanged"
    server.close()


def test_an_lms_zip_never_writes_through_a_link(tmp_path):
    """collect: a zip entry recorded as a FIFO is not written, and a student folder in submitted/ that is a link
    to another student's is not written through (it stays inside submitted/, so only the folder kind tells)."""
    import stat
    import zipfile

    from llmcourse.grading.collect import collect_zip

    notebook = nbformat.writes(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("# mine")]))
    fifo = zipfile.ZipInfo(f"carol/{NB}.ipynb", (2024, 3, 1, 12, 0, 0))
    fifo.create_system, fifo.external_attr = 3, (stat.S_IFIFO | 0o644) << 16
    path = tmp_path / "lms.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(fifo, notebook)
        zf.writestr(f"bob/{NB}.ipynb", notebook)
    course = tmp_path / "course"
    alice = course / "submitted" / "alice" / A / f"{NB}.ipynb"
    alice.parent.mkdir(parents=True)
    alice.write_text("alice's notebook")
    (course / "submitted" / "bob").symlink_to(course / "submitted" / "alice", target_is_directory=True)
    report = collect_zip(path, course, A, [NB], force=True)
    assert report.imported == {}, report
    assert alice.read_text() == "alice's notebook"
    assert any("carol" in p and "FIFO" in p for p in report.problems), report.problems
    assert any("bob" in p and "not written" in p for p in report.problems), report.problems
