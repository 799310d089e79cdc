"""The student distribution (``llmcourse bundle``, issue 9): what a class receives holds no secret, and works.

One bundle of units 01-05 is built through the CLI (answer keys of 01-03 released, 04 and 05 withheld) for
the whole module, with a course whose grading seed the scan must not find. Then:

- the leak scan finds nothing in it, and finds each kind of leak planted into a copy of it;
- the set-up files agree with the repository's pins;
- a fresh virtual environment with only the bundle's wheel installed (it sees the pinned packages of
  ``.venv`` through a plain path line in a ``.pth`` file, which adds that folder without running its
  ``.pth`` files, so the repository's editable ``llmcourse`` stays out): the withheld answer keys cannot be
  imported and say why, ``llmcourse validate`` passes a completed 04 notebook and fails every part of the
  untouched release, and the lectures of 01-05 run top to bottom in a kernel of that environment.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import nbformat
import pytest
import yaml
from conftest import REPO, run_cli
from llmcourse.grading.assignment import Manifest
from llmcourse.grading.bundle import needs_withheld
from llmcourse.grading.bundle_scan import scan
from llmcourse.grading.bundle_wheel import resolve_unit, units, wheel_files, write_wheel
from llmcourse.grading.course import Course

THROUGH, RELEASED = "05", ["01_tokenization", "02_embeddings", "03_autoregressive"]  # 04 and 05 withheld
HANDED_OUT = ["01_tokenization", "02_embeddings", "03_autoregressive", "04_attention", "05_transformer"]
WHEEL = "llmcourse-0.1.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, int]:
    """(the bundle folder, the course's grading seed), built once through the CLI."""
    root = tmp_path_factory.mktemp("bundle")
    seed = Course.open(root / "course", repo=REPO).seed()  # made the way the grader makes it
    out = root / "out"
    run_cli(
        "--course-dir", str(root / "course"), "bundle", str(out), "--through", THROUGH, "--release-keys", "01,02,03"
    )
    return out, seed


@pytest.fixture(scope="module")
def bundle(built) -> Path:
    return built[0]


# ------------------------------------------------------------------------------------------ content


def test_bundle_holds_the_units_handed_out_and_nothing_else(bundle):
    assert sorted(p.name for p in bundle.iterdir()) == sorted(
        ["BUNDLE.json", "README.md", "assignments", "course", "environment.yml", "postBuild", WHEEL]
        + ["requirements.txt", "requirements-nodeps.txt"]
    )
    assert sorted(p.name for p in (bundle / "assignments").iterdir()) == HANDED_OUT
    assert sorted(p.stem for p in (bundle / "course").glob("*.ipynb")) == HANDED_OUT
    for unit in HANDED_OUT:  # the releases exactly as generated
        for path in (REPO / "assignments" / unit).iterdir():
            assert (bundle / "assignments" / unit / path.name).read_bytes() == path.read_bytes()
        lecture = nbformat.read(bundle / "course" / f"{unit}.ipynb", as_version=4)
        assert all(not c.get("outputs") for c in lecture.cells if c.cell_type == "code")


def test_wheel_holds_released_keys_and_stubs_for_the_rest(bundle):
    with zipfile.ZipFile(bundle / WHEEL) as zf:
        names = set(zf.namelist())
        assert all(n.startswith(("llmcourse/", "llmcourse-0.1.0.dist-info/")) for n in names), names
        for topic in ("tokenization", "embeddings", "autoregressive"):
            assert zf.read(f"llmcourse/{topic}.py") == (REPO / "lib" / "llmcourse" / f"{topic}.py").read_bytes()
        for topic, unit in (("attention", "04"), ("transformer", "05"), ("training", "06"), ("multimodal", "12")):
            stub = zf.read(f"llmcourse/{topic}.py").decode()
            assert "raise ImportError" in stub and f"unit {unit} " in stub and len(stub) < 1000
        assert "llmcourse/grading/validate.py" in names and "llmcourse/checks/checker.py" in names
        assert "llmcourse/grading/autograde.py" not in names  # instructor commands stay home
        assert "llmcourse = llmcourse.cli:main" in zf.read("llmcourse-0.1.0.dist-info/entry_points.txt").decode()
        record = zf.read("llmcourse-0.1.0.dist-info/RECORD").decode().splitlines()
        assert sorted(line.split(",")[0] for line in record) == sorted(names)
        for path, digest, size in (line.split(",") for line in record if not line.endswith(",,")):
            data = zf.read(path)  # PEP 376: urlsafe base64 sha256 without padding, and the size
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            assert int(size) == len(data)


def test_the_same_inputs_make_the_same_wheel(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_wheel(wheel_files(REPO, ["01_tokenization"]), tmp_path / name, REPO, "same")
    assert (tmp_path / "a" / WHEEL).read_bytes() == (tmp_path / "b" / WHEEL).read_bytes()


def test_units_are_named_by_number_or_name():
    known = units(REPO)
    assert [resolve_unit(t, known) for t in ("4", "04", "04_attention", "attention", "05B")] == [
        "04_attention",
        "04_attention",
        "04_attention",
        "04_attention",
        "05b_modern_decoder",
    ]
    with pytest.raises(ValueError, match="unknown unit '13': expected a number or name of one of 01_tokenization"):
        resolve_unit("13", known)


def test_scan_finds_nothing_in_the_real_bundle(built):
    bundle, seed = built
    assert scan(bundle, REPO, seed=seed, released=RELEASED) == []


def _block(path: Path, begin: str, end: str) -> str:
    """The first block between ``begin`` and ``end`` in a source notebook (what must never ship)."""
    for cell in nbformat.read(path, as_version=4).cells:
        if begin in cell.source:
            return cell.source.split(begin, 1)[1].split(end, 1)[0]
    raise AssertionError(f"no {begin} block in {path}")


def test_scan_catches_each_planted_leak(built, tmp_path):
    bundle, seed = built
    copy = tmp_path / "leaky"
    shutil.copytree(bundle, copy)
    solution = _block(REPO / "solutions/04_attention/attention.ipynb", "### BEGIN SOLUTION", "### END SOLUTION")
    hidden = _block(REPO / "solutions/05_transformer/transformer.ipynb", "### BEGIN HIDDEN TESTS", "### END")

    def plant(path: Path, source: str, output: str | None = None) -> None:
        nb = nbformat.read(path, as_version=4)
        cell = nbformat.v4.new_code_cell("    " + source.replace("\n", "\n    "))  # re-indented: still found
        if output is not None:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output)]
        nb.cells.insert(3, cell)
        nbformat.write(nb, path)

    plant(copy / "course/04_attention.ipynb", solution)
    plant(copy / "assignments/05_transformer/transformer.ipynb", hidden)
    plant(copy / "course/02_embeddings.ipynb", "print(seed)", output=f"seed = {seed}\n")
    wheel = copy / WHEEL
    with zipfile.ZipFile(bundle / WHEEL) as src, zipfile.ZipFile(wheel, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "llmcourse/attention.py":
                data = (REPO / "lib/llmcourse/attention.py").read_bytes()
            dst.writestr(name, data)
    (copy / "solutions").mkdir()
    (copy / "solutions/notes.txt").write_text("nothing secret in the text, but the folder must not ship\n")

    found = {(leak.kind, leak.where) for leak in scan(copy, REPO, seed=seed, released=RELEASED)}
    assert found == {
        ("solution", "course/04_attention.ipynb"),
        ("hidden test", "assignments/05_transformer/transformer.ipynb"),
        ("seed", "course/02_embeddings.ipynb"),
        ("answer key", f"{WHEEL}:llmcourse/attention.py"),
        ("solution", f"{WHEEL}:llmcourse/attention.py"),  # the answer key holds 04's solutions too
        ("file", "solutions/notes.txt"),
    }


def test_setup_files_agree_with_the_repository_pins(bundle):
    for name in ("requirements.txt", "requirements-nodeps.txt"):
        assert (bundle / name).read_text() == (REPO / name).read_text()
    pins = [s.strip() for s in (REPO / "requirements.txt").read_text().splitlines() if s.strip()[:1] not in "#"]
    env = yaml.safe_load((bundle / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert [p for p in pip if not p.startswith("-")] == pins
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in pip  # torch's CPU build
    assert f"pip install --no-deps -r requirements-nodeps.txt {WHEEL}" in (bundle / "postBuild").read_text()
    readme = (bundle / "README.md").read_text()
    assert "{{" not in readme
    commands = re.search(r"## Set up \(two commands\).*?```bash\n(.*?)```", readme, re.S).group(1).splitlines()
    assert len(commands) == 2 and "--no-deps -r requirements-nodeps.txt " + WHEEL in commands[0]
    assert "download.pytorch.org/whl/cpu" in commands[0] and commands[1].endswith("jupyter lab")
    info = json.loads((bundle / "BUNDLE.json").read_text())
    assert info["units"] == HANDED_OUT and info["released_keys"] == RELEASED


def test_notebooks_that_need_a_withheld_key_are_listed(tmp_path):
    cells = {
        "a.ipynb": ["%matplotlib inline\nfrom llmcourse.transformer import GPT", "import llmcourse.tokenization"],
        "b/c.ipynb": ["from llmcourse import attention as at\nimport torch"],
        "d.ipynb": ["from llmcourse.toolbox import data\nimport llmcourse.tokenization as tk"],
    }
    for name, sources in cells.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]), tmp_path / name)
    assert needs_withheld(tmp_path, ["llmcourse.attention", "llmcourse.transformer"]) == {
        "a.ipynb": ["llmcourse.transformer"],
        "b/c.ipynb": ["llmcourse.attention"],
    }


def test_bundle_refuses_bad_requests(bundle, tmp_path):
    proc = run_cli("bundle", str(tmp_path / "a"), "--through", "13", check=False)
    assert proc.returncode == 2 and "unknown unit '13'" in proc.stderr
    proc = run_cli("bundle", str(tmp_path / "b"), "--through", "02", "--release-keys", "04", check=False)
    assert proc.returncode == 2 and "after --through 02_embeddings: 04_attention" in proc.stderr
    proc = run_cli("bundle", str(bundle.parent), "--through", "01", check=False)  # not empty, not a bundle
    assert proc.returncode == 2 and "is not empty" in proc.stderr and "--force" not in proc.stderr
    previous = tmp_path / "previous"
    shutil.copytree(bundle, previous)
    proc = run_cli("bundle", str(previous), "--through", "01", "--release-keys", "01", check=False)
    assert proc.returncode == 2 and "use --force to replace a previous bundle" in proc.stderr
    run_cli("bundle", str(previous), "--through", "01", "--release-keys", "tokenization", "--force")
    assert sorted(p.name for p in (previous / "assignments").iterdir()) == ["01_tokenization"]


# ------------------------------------------------------------------------------------------ a student's machine


@pytest.fixture(scope="module")
def student(bundle, tmp_path_factory) -> dict:
    """A fresh virtual environment with only the bundle's wheel installed; the pinned packages come from
    .venv's site-packages through a plain path line (no editable llmcourse). Returns python, env, home."""
    root = tmp_path_factory.mktemp("student")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--quiet"]
    subprocess.run([*pip, str(bundle / WHEEL)], check=True, timeout=300)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True
    ).stdout.strip()
    (Path(site) / "course_pins.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LLMCOURSE_", "JUPYTER", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{venv / 'bin'}:{env['PATH']}",
        HOME=str(home),
        JUPYTER_CONFIG_DIR=str(root / "jupyter/config"),
        JUPYTER_DATA_DIR=str(root / "jupyter/data"),
        JUPYTER_RUNTIME_DIR=str(root / "jupyter/runtime"),
        IPYTHONDIR=str(root / "ipython"),
        MPLBACKEND="Agg",
        LLMCOURSE_CACHE_DIR=str(REPO / ".cache"),  # the Shakespeare cache: derived data, built once per checkout
    )
    subprocess.run(
        [python, "-m", "ipykernel", "install", "--prefix", str(venv), "--name", "llmcourse-student"],
        check=True,
        env=env,
        capture_output=True,
    )
    return {"python": python, "venv": venv, "env": env, "home": home}


def _run(student: dict, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(args), cwd=student["home"], env=student["env"], capture_output=True, text=True, timeout=timeout
    )


def test_student_venv_has_the_wheel_not_the_repository(student):
    proc = _run(student, str(student["python"]), "-c", "import llmcourse, torch; print(llmcourse.__file__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().startswith(str(student["venv"])), proc.stdout


@pytest.mark.parametrize(("module", "unit"), [("attention", "04"), ("transformer", "05")])
def test_withheld_answer_key_does_not_import(student, module, unit):
    for statement in (f"import llmcourse.{module}", f"from llmcourse import {module}"):
        proc = _run(student, str(student["python"]), "-c", statement)
        assert proc.returncode != 0
        last = proc.stderr.strip().splitlines()[-1]
        assert last.startswith("ImportError: ") and f"answer key of unit {unit}" in last
        assert "not part of the student package" in last and "after the assignment's due date" in last


def test_released_answer_key_imports(student):
    code = "import llmcourse.tokenization as t; print(t.__file__); print(t.merge([1, 2, 1, 2], (1, 2), 9))"
    proc = _run(student, str(student["python"]), "-c", code)
    assert proc.returncode == 0, proc.stderr
    where, merged = proc.stdout.splitlines()
    assert where.startswith(str(student["venv"])) and merged == "[9, 9]"


PROBE = "import json, sys, llmcourse\njson.dump([sys.executable, llmcourse.__file__], open('probe.json', 'w'))"


def _student_copy(student: dict, bundle: Path, completed: bool) -> Path:
    """The 04 release in the student's home, completed with the solutions as a student would, or untouched;
    a first cell records which Python and which llmcourse the kernel used."""
    folder = student["home"] / ("done" if completed else "fresh") / "04_attention"
    shutil.copytree(bundle / "assignments/04_attention", folder)
    path = folder / "attention.ipynb"
    nb = nbformat.read(path, as_version=4)
    if completed:
        solutions = {
            c.metadata["nbgrader"]["grade_id"]: c.source
            for c in nbformat.read(REPO / "solutions/04_attention/attention.ipynb", as_version=4).cells
            if c.metadata.get("nbgrader", {}).get("solution")
        }
        for cell in nb.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("solution") and cell.cell_type == "code":
                lines = solutions[meta["grade_id"]].splitlines()
                cell.source = "\n".join(
                    line for line in lines if "### BEGIN SOLUTION" not in line and "### END" not in line
                )
    nb.cells.insert(0, nbformat.v4.new_code_cell(PROBE))
    nbformat.write(nb, path)
    return path


def _parts(path: Path) -> int:
    nb = nbformat.read(path, as_version=4)
    return sum(
        1
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade") and not c.metadata["nbgrader"].get("solution")
    )


def _probe(student: dict, path: Path) -> None:
    executable, package = json.loads((path.parent / "probe.json").read_text())
    assert executable.startswith(str(student["venv"])) and package.startswith(str(student["venv"]))


def test_validate_passes_the_completed_04_notebook(student, bundle):
    path = _student_copy(student, bundle, completed=True)
    proc = _run(student, str(student["venv"] / "bin/llmcourse"), "validate", str(path))
    _probe(student, path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    n = _parts(path)
    assert n == len(Manifest.load(REPO / "solutions/04_attention").parts) > 0
    assert proc.stdout.count("[PASS]") == n and "[FAIL]" not in proc.stdout
    total = re.search(r"visible tests: (\S+) / (\S+) points pass", proc.stdout)
    assert total and total.group(1) == total.group(2)


def test_validate_fails_each_part_of_the_untouched_release(student, bundle):
    path = _student_copy(student, bundle, completed=False)
    proc = _run(student, str(student["venv"] / "bin/llmcourse"), "validate", str(path))
    _probe(student, path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    n = _parts(path)
    assert proc.stdout.count("[FAIL]") == n and "[PASS]" not in proc.stdout
    for block in proc.stdout.split("[FAIL]")[1:]:  # each part says why, in words a student can act on
        report = block.split("\n[", 1)[0]
        assert "NotImplementedError" in report or "did not run" in report, report


def test_instructor_commands_are_not_in_the_student_package(student):
    proc = _run(student, str(student["venv"] / "bin/llmcourse"), "autograde", "04_attention")
    assert proc.returncode == 2 and "not part of the student package" in proc.stderr


RUN_LECTURE = """
import sys, nbformat
from pathlib import Path
from nbclient import NotebookClient
nb = nbformat.read(sys.argv[1], as_version=4)
nb.cells.insert(0, nbformat.v4.new_code_cell(sys.argv[2]))
where = {"metadata": {"path": str(Path(sys.argv[1]).parent)}}
NotebookClient(nb, kernel_name="llmcourse-student", timeout=600, resources=where).execute()
"""


@pytest.mark.parametrize("unit", HANDED_OUT)
def test_lecture_runs_in_the_student_venv(student, bundle, unit):
    folder = student["home"] / "course"  # the student's copy of the bundle's lectures, run where they lie
    if not folder.exists():
        shutil.copytree(bundle / "course", folder)
    lecture = folder / f"{unit}.ipynb"
    probe = PROBE.replace("probe.json", f"probe_{unit}.json")
    proc = _run(student, str(student["python"]), "-c", RUN_LECTURE, str(lecture), probe, timeout=900)
    assert proc.returncode == 0, re.sub(r"\x1b\[[0-9;]*m", "", proc.stderr)[-4000:]  # without terminal colours
    executable, package = json.loads((folder / f"probe_{unit}.json").read_text())
    assert executable.startswith(str(student["venv"])) and package.startswith(str(student["venv"]))
