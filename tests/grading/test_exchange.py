"""nbgrader's exchange cycle, the way a JupyterHub course runs it (issue 9 part 4), on assignment 04:

instructor: ``llmcourse generate`` -> ``nbgrader release_assignment`` (to a local exchange directory)
students:   ``nbgrader fetch_assignment`` -> answer -> ``nbgrader submit``, each from a home of their own
instructor: ``nbgrader collect`` -> ``llmcourse autograde`` -> ``nbgrader generate_feedback`` / ``release_feedback``
students:   ``nbgrader fetch_feedback``

Three students: one full, one partial (some parts answered, the rest untouched), one empty (the release as
fetched). Each student has their own HOME, Jupyter config/data/runtime folders and IPython folder, and an
``nbgrader_config.py`` in their own Jupyter config folder naming the course and the exchange, as a
JupyterHub image gives them. They share this machine's Unix user: separate Unix users would need
``useradd`` on the test machine, leaving accounts behind on a developer's laptop or CI box, for no
check that the exchange's own permission code does not already make on one user.

Expected points come from the assignment's point table (the manifest), never from typed numbers. Fetched
feedback is compared with the hidden-test source of solutions/. The Validate button's server handler (a
real ``jupyter server``, its REST call) must give the same PASS/FAIL per part as ``llmcourse validate``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest
from conftest import BIN, REPO, gradebook_scores, hidden_source_lines, instructor_env, manifest, run_cli, solution_code

A, NB = "04_attention", "attention"
STUDENTS = ("full", "partial", "empty")
PARTIAL_ANSWERS = ("softmax", "split_merge_heads")  # solution cells the partial student fills in


def student_env(home: Path) -> dict:
    env = dict(os.environ, HOME=str(home), PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env.pop("LLMCOURSE_COURSE_DIR", None)
    for var, sub in [
        ("JUPYTER_CONFIG_DIR", ".jupyter"),
        ("JUPYTER_DATA_DIR", ".local/share/jupyter"),
        ("JUPYTER_RUNTIME_DIR", ".local/share/jupyter/runtime"),
        ("IPYTHONDIR", ".ipython"),
    ]:
        env[var] = str(home / sub)
    return env


def nbgrader(*args: str, cwd: Path, env: dict) -> str:
    proc = subprocess.run([str(BIN / "nbgrader"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def expected_points() -> dict[str, float]:
    """From the point table: a part earns its points when every function it checks was answered."""
    m = manifest(A)
    answered = {name for gid in PARTIAL_ANSWERS for name in re.findall(r"^(?:def|class) (\w+)", _solution(gid), re.M)}
    parts = m.parts_of(NB)  # the autograded parts (written answers are graded by hand, later)
    partial = sum(p.points for p in parts if all(c.target in answered for c in p.checks))
    return {"full": sum(p.points for p in parts), "partial": partial, "empty": 0.0}


def _solution(grade_id: str) -> str:
    return solution_code(A, NB)[grade_id]


def answer(path: Path, grade_ids) -> None:
    """Fill the fetched notebook's solution cells with the solutions, as a student types them."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if cell.metadata.get("nbgrader", {}).get("solution") and gid in grade_ids:
            cell.source = _solution(gid)
    nbformat.write(nb, path)


@pytest.fixture(scope="module")
def cycle(tmp_path_factory):
    """The whole cycle, once; returns the course directory, the students' homes and every tool's output."""
    root = tmp_path_factory.mktemp("exchange_cycle")
    course = root / "course"
    log = {}
    instructor = instructor_env(course)
    run_cli("generate", A, "--no-update-repo", course_dir=course)
    # the repository's nbgrader_config.py puts the exchange at <course>/exchange; a hub points it elsewhere
    exchange = course / "exchange"
    log["release"] = nbgrader("release_assignment", A, "--force", cwd=REPO, env=instructor)

    homes = {s: root / "home" / s for s in STUDENTS}
    answers = {"full": set(solution_code(A, NB)), "partial": set(PARTIAL_ANSWERS), "empty": set()}
    for student, home in homes.items():
        env = student_env(home)
        (home / ".jupyter").mkdir(parents=True)
        (home / ".jupyter" / "nbgrader_config.py").write_text(
            f'c = get_config()\nc.CourseDirectory.course_id = "llmcourse"\nc.Exchange.root = {str(exchange)!r}\n'
            # the Validate button warns of damage as the repository's config makes it (a hub's image adds this)
            "from llmcourse.grading.repair import validate_button_config\nc.merge(validate_button_config())\n"
        )
        log[f"fetch-{student}"] = nbgrader("fetch_assignment", A, cwd=home, env=env)
        answer(home / A / f"{NB}.ipynb", answers[student])
        log[f"submit-{student}"] = nbgrader("submit", A, f"--student={student}", cwd=home, env=env)

    log["collect"] = nbgrader("collect", A, cwd=REPO, env=instructor)
    log["autograde"] = run_cli("autograde", A, "--workers", "1", course_dir=course).stdout
    log["generate_feedback"] = nbgrader("generate_feedback", A, cwd=REPO, env=instructor)
    log["release_feedback"] = nbgrader("release_feedback", A, cwd=REPO, env=instructor)
    for student, home in homes.items():
        log[f"fetch_feedback-{student}"] = nbgrader(
            "fetch_feedback", A, f"--student={student}", cwd=home, env=student_env(home)
        )
    return {"course": course, "homes": homes, "log": log}


def test_each_student_fetched_from_their_own_home(cycle):
    for student, home in cycle["homes"].items():
        assert (home / A / f"{NB}.ipynb").exists(), cycle["log"][f"fetch-{student}"]
    collected = sorted(p.parent.parent.name for p in (cycle["course"] / "submitted").glob(f"*/{A}/{NB}.ipynb"))
    assert collected == sorted(STUDENTS), cycle["log"]["collect"]


def test_grades_follow_the_point_table(cycle):
    assert gradebook_scores(cycle["course"]) == expected_points(), cycle["log"]["autograde"]
    expected = expected_points()
    assert 0 < expected["partial"] < expected["full"]  # the partial student is really partial


def test_untouched_test_cells_raise_no_checksum_warning(cycle):
    """nbgrader's own autograde (formgrader's button runs the same) on the untouched submission: the hidden
    tests that grading puts back into each test cell are nbgrader's design, not a student's edit, so no
    "Attribute 'checksum' ... has changed!" per test cell; the grade stays the point table's."""
    out = nbgrader("autograde", A, "--force", "--student=empty", cwd=REPO, env=instructor_env(cycle["course"]))
    assert "has changed" not in out, out
    assert gradebook_scores(cycle["course"])["empty"] == expected_points()["empty"]


def feedback_html(home: Path) -> str:
    files = sorted((home / A / "feedback").glob(f"*/{NB}.html"))
    assert len(files) == 1, f"fetched feedback: {files}"
    return files[0].read_text()


def hidden_test_lines() -> list[str]:
    """Every line between ### BEGIN HIDDEN TESTS and ### END HIDDEN TESTS in the source notebook."""
    lines = hidden_source_lines(nbformat.read(REPO / "solutions" / A / f"{NB}.ipynb", as_version=4))
    assert lines, "the solution has no hidden tests to look for"
    return lines


def test_fetched_feedback_shows_the_score_and_leaks_no_hidden_test(cycle):
    import html as htmlmod

    expected = expected_points()
    for student, home in cycle["homes"].items():
        page = htmlmod.unescape(feedback_html(home))
        text = re.sub(r"\s+", " ", re.sub("<[^>]+>", " ", page))
        score = re.search(r"Score: ([\d.]+) / ([\d.]+)", text)  # the notebook's total, first on the page
        assert score and (float(score[1]), float(score[2])) == (expected[student], manifest(A).max_score), text[-3000:]
        leaked = [line for line in hidden_test_lines() if line in page]
        assert not leaked, f"{student}'s feedback shows hidden test source: {leaked}"


# ------------------------------------------------------------------------------------ the Validate button


def start_server(home: Path, env: dict):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = "validate-test"
    proc = subprocess.Popen(
        [
            str(BIN / "jupyter"),
            "server",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={home}",
        ],
        cwd=home,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(home / "server.log", "w"),
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=5)
            return proc, url, token
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, (home / "server.log").read_text()[-3000:]
            time.sleep(0.5)


def failing_parts_of_nbgrader_result(result, nb_path: Path) -> set[str]:
    """nbgrader's Validator names failing cells by their source: map them back to grade ids."""
    nb = nbformat.read(nb_path, as_version=4)
    graded = {
        c.source.strip(): c.metadata["nbgrader"]["grade_id"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    failed = result.get("failed", []) if isinstance(result, dict) else []
    return {graded[f["source"].strip()] for f in failed if f.get("source", "").strip() in graded}


def test_the_validate_button_agrees_with_llmcourse_validate(cycle):
    """POST /assignments/validate (what Lab's Validate button sends) vs ``llmcourse validate``, per part."""
    m = manifest(A)
    all_parts = {p.grade_id for p in m.parts_of(NB)}
    for student in ("partial", "empty"):  # "full" passes both ways; these two have parts that fail
        home = cycle["homes"][student]
        env = student_env(home)
        proc, url, token = start_server(home, env)
        try:
            request = urllib.request.Request(
                f"{url}/assignments/validate",
                data=json.dumps({"path": f"{A}/{NB}.ipynb"}).encode(),
                method="POST",
                headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=900) as response:
                answer_ = json.loads(response.read())
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        assert answer_["success"], answer_
        lab_failed = failing_parts_of_nbgrader_result(answer_["value"], home / A / f"{NB}.ipynb")
        cli = subprocess.run(
            [str(BIN / "llmcourse"), "validate", f"{A}/{NB}.ipynb"],
            cwd=home,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        cli_failed = set(re.findall(r"^\[FAIL\] (\S+)", cli.stdout, re.M))
        cli_passed = set(re.findall(r"^\[PASS\] (\S+)", cli.stdout, re.M))
        assert cli_failed | cli_passed == all_parts, cli.stdout
        # nbgrader's Validate also lists unanswered written answers (graded by hand): compare the autograded parts
        assert lab_failed & all_parts == cli_failed, (student, answer_["value"], cli.stdout)
        assert cli.returncode == 1


def test_the_validate_button_warns_of_damage_as_llmcourse_validate_does(cycle):
    """A duplicated test cell and a split answer: the Validate dialog lists the same warnings that ``llmcourse
    validate`` prints, in a failed cell of their own, and validates the repaired notebook (each part once)."""
    from test_damage import duplicate, first, split

    home = cycle["homes"]["partial"]
    env = student_env(home)
    nb = nbformat.read(home / A / f"{NB}.ipynb", as_version=4)
    duplicate(nb, first(nb, "test"))
    split(nb, first(nb, "answer"))
    damaged = f"{A}/{NB}_damaged.ipynb"
    nbformat.write(nb, home / damaged)
    proc, url, token = start_server(home, env)
    try:
        request = urllib.request.Request(
            f"{url}/assignments/validate",
            data=json.dumps({"path": damaged}).encode(),
            method="POST",
            headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=900) as response:
            answer_ = json.loads(response.read())
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    cli = subprocess.run(
        [str(BIN / "llmcourse"), "validate", damaged], cwd=home, env=env, capture_output=True, text=True, timeout=900
    )
    warnings = re.findall(r"^WARNING .+$", cli.stdout, re.M)
    assert any("test_softmax appeared 2 times" in w for w in warnings), cli.stdout
    assert answer_["success"], answer_
    failed = [f["source"] for f in answer_["value"].get("failed", [])]
    assert failed and failed[0].startswith("# Your notebook was changed in ways the grader repairs"), answer_
    for warning in warnings:
        assert f"# {warning}" in failed[0].splitlines(), (warning, failed[0])
    test_source = nb.cells[first(nb, "test")].source.strip()
    assert failed.count(test_source) <= 1, failed  # the duplicated test cell is validated once, as graded
    lab_failed = failing_parts_of_nbgrader_result(answer_["value"], home / A / f"{NB}.ipynb")
    assert lab_failed & {p.grade_id for p in manifest(A).parts_of(NB)} == set(
        re.findall(r"^\[FAIL\] (\S+)", cli.stdout, re.M)
    ), (answer_["value"], cli.stdout)


def test_the_exchange_files_are_not_reported_as_extra(cycle):
    """nbgrader's submit adds its own files (timestamp.txt, submission_secret.txt): not the student's doing."""
    report = json.loads((cycle["course"] / "reports" / f"{A}.json").read_text())
    notes = {row["student"]: row["messages"] for row in report}
    assert sorted(notes) == sorted(STUDENTS)
    assert not any("extra files" in m for messages in notes.values() for m in messages), notes
