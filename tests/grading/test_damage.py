"""Damaged notebooks are graded from the student's answers (issue 24, point 2; grading/repair.py).

A corpus of the damage students really produce, each made by a function from an honest, fully correct
notebook (the release with the solution's answers): what JupyterLab's Split / Merge / Duplicate / Save As,
classic Notebook, VS Code, Colab, Windows editors and crashes do (jupyter/nbgrader#1083 duplicated cells,
#1941 a batch broken by 15 of 300 notebooks, PR #1753), and the files a submission folder ends up with.

(a) Fast, no kernel, on every assignment in solutions/: each damaged notebook repairs to one whose graded
    and answer cells equal the undamaged one's (by grade id and source), and the repair is named.
(b) End to end through ``llmcourse autograde`` (one batch, graded once): on 04 every damage kind is a
    student of its own and earns exactly the points of the undamaged twin, the repair named in the report
    and in the feedback; a file with no answers in it is the only ``error``, with a message that says what
    to do. The combined damage on every other assignment rides in test_every_assignment's batches.
"""

from __future__ import annotations

import codecs
import copy
import html
import json
import re
from pathlib import Path

import nbformat
import pytest
from conftest import REPO, batch_workers, make_submission, manifest, run_cli, solution_code
from llmcourse.grading import repair

ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())


# ------------------------------------------------------------------------------------------------ the corpus
# Each damage: (name, correct notebook) -> {relative path: bytes}, plus the word the report's note must hold.


def gid(cell) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def kind_of(cell) -> str:
    meta = cell.metadata.get("nbgrader", {})
    return "answer" if meta.get("solution") else "test" if meta.get("grade") else "locked" if gid(cell) else ""


def first(nb, kind: str, code: bool = True) -> int:
    """Index of the first cell of a kind (an answer cell of code, by default)."""
    return next(i for i, c in enumerate(nb.cells) if kind_of(c) == kind and (c.cell_type == "code") == code)


def last(nb, kind: str) -> int:
    return max(i for i, c in enumerate(nb.cells) if kind_of(c) == kind and c.cell_type == "code")


def dump(nb, name: str, **files) -> dict[str, bytes]:
    return {f"{name}.ipynb": nbformat.writes(nb).encode(), **files}


def duplicate(nb, i: int) -> None:
    nb.cells.insert(i + 1, copy.deepcopy(nb.cells[i]))
    nb.cells[i + 1].id = nb.cells[i].id[:6] + "dd"


def split(nb, i: int, midline: bool = False, between: bool = False) -> None:
    """JupyterLab's Split Cell: both halves keep the metadata, the newlines at the cut are trimmed. At a line
    half-way down the answer, or inside a word (a key pressed while typing)."""
    src = nb.cells[i].source
    lines = src.splitlines(keepends=True)
    cut = sum(map(len, lines[: max(1, len(lines) // 2)]))
    if midline:
        cut = [m.start() + 3 for m in re.finditer(r"\(\w{4}", src)][-1]  # inside brackets: only the glued join parses
    top, bottom = copy.deepcopy(nb.cells[i]), copy.deepcopy(nb.cells[i])
    top.source, bottom.source = src[:cut].rstrip("\n"), src[cut:].lstrip("\n")
    bottom.id = top.id[:6] + "sp"
    extra = [nbformat.v4.new_markdown_cell("my notes while answering")] if between else []
    nb.cells[i : i + 1] = [top, *extra, bottom]


def d_duplicated_test(nb, name):
    duplicate(nb, first(nb, "test"))
    return dump(nb, name)


def d_duplicated_answer(nb, name):
    duplicate(nb, first(nb, "answer"))
    return dump(nb, name)


def d_duplicated_stub_first(nb, name, release):
    i = first(nb, "answer")
    duplicate(nb, i)
    nb.cells[i].source = release.cells[i].source  # Duplicate on the stub, the answer written in the copy
    return dump(nb, name)


def d_split_answer(nb, name):
    split(nb, first(nb, "answer"))
    return dump(nb, name)


def d_split_midline(nb, name):
    split(nb, first(nb, "answer"), midline=True)
    return dump(nb, name)


def d_split_separated(nb, name):
    split(nb, last(nb, "answer"), between=True)
    return dump(nb, name)


def d_split_test(nb, name):
    split(nb, first(nb, "test"))
    return dump(nb, name)


def d_merged_answer_and_test(nb, name):
    i = first(nb, "answer")
    j = next(k for k in range(i + 1, len(nb.cells)) if kind_of(nb.cells[k]) == "test")
    assert j == i + 1
    nb.cells[i].source += "\n\n" + nb.cells[j].source  # JupyterLab's Merge: the first cell's metadata stays
    del nb.cells[j]
    return dump(nb, name)


def d_merged_markdown_and_answer(nb, name):
    i = last(nb, "answer")
    assert nb.cells[i - 1].cell_type == "markdown"
    nb.cells[i - 1].source += "\n\n" + nb.cells[i].source
    del nb.cells[i]
    return dump(nb, name)


def d_answer_turned_markdown(nb, name):
    c = nb.cells[first(nb, "answer")]
    c.cell_type = "markdown"
    del c["outputs"], c["execution_count"]
    return dump(nb, name)


def d_answer_turned_raw(nb, name):
    c = nb.cells[last(nb, "answer")]
    c.cell_type = "raw"
    del c["outputs"], c["execution_count"]
    return dump(nb, name)


def d_answer_metadata_stripped(nb, name):
    del nb.cells[first(nb, "answer")].metadata["nbgrader"]  # VS Code / copy-paste into a new cell
    return dump(nb, name)


def d_all_metadata_stripped(nb, name):
    for c in nb.cells:  # every cell pasted into a fresh notebook
        c.metadata = {}
    return dump(nb, name)


def d_nbgrader_metadata_damaged(nb, name):
    for c in nb.cells:  # an old nbgrader / a hand edit: keys missing
        if kind_of(c) == "answer":
            c.metadata["nbgrader"] = {"grade_id": gid(c), "solution": True}
    return dump(nb, name)


def d_answer_below_its_test(nb, name):
    i = first(nb, "answer")
    nb.cells.insert(i + 1, nb.cells.pop(i))  # dragged below its test: run out of order by hand
    return dump(nb, name)


def d_deleted_test(nb, name):
    del nb.cells[first(nb, "test")]
    return dump(nb, name)


def d_foreign_cell(nb, name):
    cell = nbformat.v4.new_code_cell("x = 1", metadata={"nbgrader": {"grade_id": "test_from_elsewhere", "grade": True,
        "locked": True, "points": 1, "solution": False, "schema_version": 3}})  # fmt: skip
    nb.cells.append(cell)
    return dump(nb, name)


def _minor(nb, minor: int) -> dict:
    raw = json.loads(nbformat.writes(nb))
    raw["nbformat_minor"] = minor
    for c in raw["cells"]:
        c.pop("id", None)
    return raw


def d_nbformat_4_0(nb, name):
    return {f"{name}.ipynb": json.dumps(_minor(nb, 0)).encode()}


def d_nbformat_4_4(nb, name):
    return {f"{name}.ipynb": json.dumps(_minor(nb, 4), indent=1).encode()}


def d_ids_missing_in_4_5(nb, name):
    raw = _minor(nb, 5)
    return {f"{name}.ipynb": json.dumps(raw).encode()}


def d_duplicate_ids(nb, name):
    for c in nb.cells:
        c.id = "same-id"
    return {f"{name}.ipynb": json.dumps(nb).encode()}


def d_invalid_ids(nb, name):
    for k, c in enumerate(nb.cells):
        c.id = f"cell {k} with spaces and far too long " + "x" * 70
    return {f"{name}.ipynb": json.dumps(nb).encode()}


def d_outputs_over_limits(nb, name):
    c = nb.cells[first(nb, "answer")]
    c.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * 6_000_000)]
    c.outputs.append({"output_type": "display_data", "data": {"text/plain": 5}})  # not valid nbformat
    return {f"{name}.ipynb": json.dumps(nb).encode()}


def d_utf8_bom(nb, name):
    return {f"{name}.ipynb": codecs.BOM_UTF8 + nbformat.writes(nb).encode()}


def d_utf16(nb, name):
    return {f"{name}.ipynb": nbformat.writes(nb).encode("utf-16")}  # with a BOM, as Notepad's "Unicode"


def d_latin1(nb, name):
    nb.cells[0].source += "\n\nNotes: café, naïve"
    return {f"{name}.ipynb": nbformat.writes(nb).encode("cp1252", errors="replace")}


def d_truncated(nb, name):
    nb.cells.append(nbformat.v4.new_code_cell("print('a scratch cell of mine, after every graded one')"))
    text = json.dumps(nb, indent=1)  # the write stopped inside that last cell (a full disk, a crash)
    return {f"{name}.ipynb": text[: text.rindex("a scratch cell")].encode()}


def d_text_after_the_end(nb, name):
    return {f"{name}.ipynb": nbformat.writes(nb).encode() + b"\n<<<<<<< HEAD\n"}


def d_python_script(nb, name):
    parts = []
    for c in nb.cells:
        if c.cell_type == "code":
            parts.append("# %%\n" + c.source)
        else:
            parts.append("# %% [markdown]\n" + "\n".join("# " + line for line in c.source.splitlines()))
    return {f"{name}.ipynb": "\n\n".join(parts).encode()}  # VS Code's "Export as Python", saved as .ipynb


def d_copy1_alone(nb, name):
    return {f"{name}-Copy1.ipynb": nbformat.writes(nb).encode()}


def d_copy1_beside_original(nb, name, release):
    return {f"{name}-Copy1.ipynb": nbformat.writes(nb).encode(), f"{name}.ipynb": nbformat.writes(release).encode()}


def d_untitled(nb, name):
    return {"Untitled.ipynb": nbformat.writes(nb).encode()}


def d_browser_download(nb, name, release):
    return {f"{name} (1).ipynb": nbformat.writes(nb).encode(), f"{name}.ipynb": nbformat.writes(release).encode()}


def d_in_a_subfolder(nb, name):
    return {f"work/{name}.ipynb": nbformat.writes(nb).encode()}


def d_empty_beside_checkpoint(nb, name):
    return {f"{name}.ipynb": b"", f".ipynb_checkpoints/{name}-checkpoint.ipynb": nbformat.writes(nb).encode()}


# name -> (function, a word the note names the repair with)
DAMAGE = {
    "duplicated_test": (d_duplicated_test, "appeared 2 times"),
    "duplicated_answer": (d_duplicated_answer, "appeared 2 times"),
    "duplicated_stub_first": (d_duplicated_stub_first, "answered copy"),
    "split_answer": (d_split_answer, "Split Cell"),
    "split_midline": (d_split_midline, "Split Cell"),
    "split_separated": (d_split_separated, "Split Cell"),
    "split_test": (d_split_test, "Split Cell"),
    "merged_answer_and_test": (d_merged_answer_and_test, "Merge Cells"),
    "merged_markdown_and_answer": (d_merged_markdown_and_answer, "Merge Cells"),
    "answer_turned_markdown": (d_answer_turned_markdown, "turned back into code"),
    "answer_turned_raw": (d_answer_turned_raw, "turned back into code"),
    "answer_metadata_stripped": (d_answer_metadata_stripped, "lost its nbgrader metadata"),
    "all_metadata_stripped": (d_all_metadata_stripped, "lost its nbgrader metadata"),
    "nbgrader_metadata_damaged": (d_nbgrader_metadata_damaged, "metadata of answer cell"),
    "answer_below_its_test": (d_answer_below_its_test, "release's order"),
    "deleted_test": (d_deleted_test, "was deleted"),
    "foreign_cell": (d_foreign_cell, "ordinary cell"),
    "nbformat_4_0": (d_nbformat_4_0, "nbformat 4.0"),
    "nbformat_4_4": (d_nbformat_4_4, "nbformat 4.4"),
    "ids_missing_in_4_5": (d_ids_missing_in_4_5, "cell ids"),
    "duplicate_ids": (d_duplicate_ids, "cell ids"),
    "invalid_ids": (d_invalid_ids, "cell ids"),
    "outputs_over_limits": (d_outputs_over_limits, "outputs"),
    "utf16": (d_utf16, "UTF-16"),
    "latin1": (d_latin1, "not UTF-8"),
    "truncated": (d_truncated, "cut off"),
    "text_after_the_end": (d_text_after_the_end, "after the notebook's end"),
    "python_script": (d_python_script, "Python script"),
    "copy1_alone": (d_copy1_alone, "-Copy1.ipynb was graded as"),
    "copy1_beside_original": (d_copy1_beside_original, "-Copy1.ipynb was graded as"),
    "untitled": (d_untitled, "Untitled.ipynb was graded as"),
    "browser_download": (d_browser_download, "(1).ipynb was graded as"),
    "in_a_subfolder": (d_in_a_subfolder, "was graded as"),
    "empty_beside_checkpoint": (d_empty_beside_checkpoint, "last checkpoint"),
}
# No answers anywhere: the only error left, each with what to do.
UNGRADABLE = {
    "empty_file": lambda nb, name: {f"{name}.ipynb": b""},
    "not_json": lambda nb, name: {f"{name}.ipynb": b"<html>This page could not be saved</html>"},
    "cut_before_any_cell": lambda nb, name: {f"{name}.ipynb": nbformat.writes(nb).encode()[:40]},
}


def correct(assignment: str, notebook: str):
    """(release, the release with the solution's answers): an honest, fully correct notebook."""
    release = nbformat.read(REPO / "assignments" / assignment / f"{notebook}.ipynb", as_version=4)
    answers = solution_code(assignment, notebook)
    nb = copy.deepcopy(release)
    for c in nb.cells:
        if kind_of(c) == "answer" and gid(c) in answers and c.cell_type == "code":
            c.source = answers[gid(c)]
    return release, nb


def damaged(kind: str, assignment: str, notebook: str) -> dict[str, bytes]:
    release, nb = correct(assignment, notebook)
    fn = DAMAGE[kind][0] if kind in DAMAGE else UNGRADABLE[kind]
    return fn(nb, notebook, release) if fn.__code__.co_argcount == 3 else fn(nb, notebook)


def write(folder: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)


def graded_cells(nb) -> dict[str, tuple[str, str]]:
    """grade id -> (cell type, source) of the answer and test cells; blank lines aside (JupyterLab's Split Cell
    trims those at its cut)."""
    return {
        gid(c): (c.cell_type, "\n".join(line.rstrip() for line in c.source.splitlines() if line.strip()))
        for c in nb.cells
        if kind_of(c) in ("answer", "test")
    }


# ------------------------------------------------------------------------------------ (a) fast, every assignment


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_every_damage_repairs_to_the_undamaged_answers(assignment, tmp_path):
    (notebook,) = manifest(assignment).notebooks
    release, good = correct(assignment, notebook)
    want = graded_cells(good)
    for kind, (_, word) in DAMAGE.items():
        folder = tmp_path / kind
        write(folder, damaged(kind, assignment, notebook))
        before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        choice = repair.choose(folder, {notebook: release})[notebook]
        assert not choice.problem, (kind, choice.problem)
        got = graded_cells(choice.nb)
        if kind == "deleted_test":  # nbgrader puts a deleted test back from its gradebook
            want_here = {k: v for k, v in want.items() if k in got}
            assert len(want_here) == len(want) - 1
        else:
            want_here = want
        assert got == want_here, (kind, {k: v for k, v in got.items() if want_here.get(k) != v})
        nbformat.validate(choice.nb)
        if kind != "deleted_test":  # named by precheck (it compares with the release's locked cells)
            assert any(word in note for note in choice.notes), (kind, choice.notes)
        assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == before  # nothing of theirs changed


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_a_file_with_no_answers_is_the_only_error_and_says_what_to_do(assignment, tmp_path):
    (notebook,) = manifest(assignment).notebooks
    for kind in UNGRADABLE:
        folder = tmp_path / kind
        write(folder, damaged(kind, assignment, notebook))
        choice = repair.choose(folder, {notebook: correct(assignment, notebook)[0]})[notebook]
        assert choice.nb is None and "re-download the release, copy your answers into it" in choice.problem, kind


def test_the_release_itself_is_graded_not_an_error(tmp_path):
    """An untouched release has no answers but is a notebook: it is graded (zero), as before."""
    release, _ = correct("04_attention", "attention")
    write(tmp_path, {"attention.ipynb": nbformat.writes(release).encode()})
    choice = repair.choose(tmp_path, {"attention": release})["attention"]
    assert choice.nb is not None and not choice.problem and not choice.notes


# Damage inside the notebook file itself, which ``llmcourse validate`` sees before the student submits (the file
# names are the grader's business). Without the repository at hand (a student's machine) the notebook's own
# nbgrader metadata stands in for the release: metadata that is gone can only be matched with the release.
NEEDS_THE_RELEASE = {
    "answer_metadata_stripped",
    "all_metadata_stripped",
    "deleted_test",
    "python_script",
    "merged_answer_and_test",
    "merged_markdown_and_answer",
    "answer_below_its_test",
    "foreign_cell",
}
IN_THE_FILE = [
    k
    for k in DAMAGE
    if set(damaged(k, A := "04_attention", "attention")) == {"attention.ipynb"} and k not in NEEDS_THE_RELEASE
]


def test_validate_warns_about_the_same_damage_before_submitting(tmp_path):
    from llmcourse.grading.validate import damage_warnings, repaired

    path = tmp_path / "attention.ipynb"
    write(tmp_path, {path.name: nbformat.writes(correct("04_attention", "attention")[1]).encode()})
    assert damage_warnings(path) == []
    want = graded_cells(correct("04_attention", "attention")[1])
    for kind in IN_THE_FILE:
        write(tmp_path, damaged(kind, "04_attention", "attention"))
        nb, warnings = repaired(path)
        assert any(DAMAGE[kind][1] in w and "better fix it in your notebook" in w for w in warnings), (kind, warnings)
        assert graded_cells(nb) == want, kind  # validate runs what the grader will grade
    write(tmp_path, {path.name: b""})
    assert "re-download the release" in damage_warnings(path)[0]


# ------------------------------------------------------------------------ (b) end to end, one batch on 04

A, NB = "04_attention", "attention"
TWIN = "undamaged"


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every damage kind as a student of its own, the undamaged twin, and the files with no answers: one batch."""
    tmp = tmp_path_factory.mktemp("damage")
    subs, course = tmp / "subs", tmp / "course"
    make_submission(subs, TWIN, A, NB, solution_code(A, NB))
    sent = {}
    for kind in [*DAMAGE, *UNGRADABLE]:
        sent[kind] = damaged(kind, A, NB)
        write(subs / kind / A, sent[kind])
    run_cli("autograde", A, "--submissions", str(subs), *batch_workers(), course_dir=course)
    run_cli("feedback", A, course_dir=course)
    report = {r["student"]: r for r in json.loads((course / "reports" / f"{A}.json").read_text())}
    return {"course": course, "report": report, "sent": sent}


def feedback_text(graded, student: str) -> str:
    page = graded["course"] / "feedback" / student / A / f"{NB}.html"
    return html.unescape(re.sub(r"<[^>]+>", " ", page.read_text()))


def test_the_twin_earns_every_autograded_point(graded):
    row = graded["report"][TWIN]
    assert row["status"] == "graded" and row["score"] == sum(p.points for p in manifest(A).parts), row["messages"]


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_notebook_earns_its_twins_points_and_names_the_repair(graded, kind):
    row, twin = graded["report"][kind], graded["report"][TWIN]
    assert row["status"] == "graded", row["messages"]
    assert row["parts"] == twin["parts"], row["messages"]
    word = DAMAGE[kind][1]
    assert any(word in m for m in row["messages"]), row["messages"]
    if kind != "deleted_test":  # nbgrader itself puts a deleted test back; the report says so
        text = feedback_text(graded, kind)
        assert repair.BANNER in text and word in text


def test_the_students_files_are_kept_as_they_sent_them(graded):
    for kind, files in graded["sent"].items():
        folder = graded["course"] / "submitted" / kind / A
        for rel, data in files.items():
            assert (folder / rel).read_bytes() == data, (kind, rel)
        added = {p.relative_to(folder).as_posix() for p in folder.rglob("*.ipynb")} - set(files)
        for rel in added:  # only where the expected name was missing: the repaired notebook, marked as the grader's
            assert (
                rel == f"{NB}.ipynb" and repair.MARK in json.loads((folder / rel).read_text())["metadata"]["llmcourse"]
            )


@pytest.mark.parametrize("kind", UNGRADABLE)
def test_only_a_file_with_no_answers_is_an_error_and_it_says_what_to_do(graded, kind):
    row = graded["report"][kind]
    assert row["status"] == "error" and row["score"] == 0
    assert any("re-download the release, copy your answers into it" in m for m in row["messages"]), row["messages"]
    assert not any("traceback" in m for m in row["messages"])


def test_nothing_else_is_an_error(graded):
    assert {s for s, r in graded["report"].items() if r["status"] == "error"} == set(UNGRADABLE)


def write_combined_damage(folder: Path, assignment: str, notebook: str) -> None:
    """What test_every_assignment grades on every assignment: the correct answers as ``<notebook>-Copy1.ipynb``
    with a duplicated test cell and a split answer, beside the untouched release (earns full marks)."""
    release, nb = correct(assignment, notebook)
    duplicate(nb, first(nb, "test"))
    split(nb, last(nb, "answer"))
    write(folder, d_copy1_beside_original(nb, notebook, release))


def test_another_assignments_notebook_is_named_as_such(tmp_path):
    release, _ = correct("01_tokenization", "tokenization")
    write(tmp_path, {"tokenization.ipynb": nbformat.writes(correct("04_attention", "attention")[1]).encode()})
    loaded = [repair.load(p) for p in repair.candidates(tmp_path)]
    chosen = repair.choose(tmp_path, {"tokenization": release}, loaded)
    assert "re-download the release" in chosen["tokenization"].problem
    ids = {p.grade_id for p in manifest("04_attention").parts}
    (sentence,) = repair.foreign(loaded, chosen, "01_tokenization", {"04_attention": ids})
    assert "does not belong to 01_tokenization: it is a notebook of 04_attention" in sentence
