"""Damaged notebooks, graded from the student's answers: the one place that turns a damaged submission
into a gradable one before nbgrader sees it, and names each repair in a sentence for the report.

Ordinary editing damages notebooks in ways nbgrader cannot grade (jupyter/nbgrader#1083, #1941, PR #1753):
JupyterLab's *Split Cell*, *Duplicate* and copy/paste repeat a cell's nbgrader metadata, so a grade id
appears twice and the whole notebook fails; *Save As* and *Duplicate* rename it (``attention-Copy1.ipynb``);
VS Code and Colab drop or rewrite metadata, cell ids and the nbformat minor version; a crash leaves a
truncated or empty file; a Windows editor saves it in another encoding. Each is repaired here:

**The file** (:func:`choose`): every notebook in the submitted folder (renamed, copied, in a subfolder, a
JupyterLab checkpoint as the last resort) is read as best it can be (:func:`load`: latin-1 / UTF-16,
truncated JSON cut back to its complete cells, nbformat 3 and 4.0-4.4, VS Code's ``# %%`` script) and
matched to the release notebook whose grade ids (or, when its metadata is gone, whose cells) it carries;
of several, the one with the most answers is graded. Only a notebook with no answers in it is left
ungradable, with a message that says what to do.

**The cells** (:func:`repair_cells`, given the release): metadata restored from the release or matched by
content where it was stripped, merged cells cut apart again, re-typed cells turned back, repeated grade
ids resolved (a split answer rejoined, a duplicated test kept once, a duplicated answer kept where it is
answered, other copies left to run as ordinary cells), cells put back in the release's order, cell ids
made valid and unique. Outputs are dropped: the grader runs the notebook again.

nbgrader reads a submission through :class:`RepairingExporter` (``c.Autograde.exporter_class``), so the
student's file stays byte-identical. Where the expected file name is missing altogether, nbgrader would not
look at the folder at all: :func:`write_stand_in` then adds the repaired notebook under the expected name
next to the student's file (marked, so it is never mistaken for theirs). ``precheck``
(:mod:`llmcourse.grading.submission`) and ``llmcourse validate`` report the same repairs.
"""

from __future__ import annotations

import ast
import codecs
import copy
import difflib
import json
import re
import stat
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbconvert.exporters import NotebookExporter
from nbconvert.preprocessors import Preprocessor
from nbformat.notebooknode import NotebookNode

from .assignment import STUB_LINES

MARK = "repaired_from"  # metadata.llmcourse.repaired_from of a stand-in written by the grader
MAX_BYTES = 256 << 20  # a notebook file bigger than this is not read (a sparse file, a flood of outputs)
OUTPUT_NOTE_BYTES = 5_000_000  # outputs bigger than this are named in the report when dropped
HELP = "re-download the release, copy your answers into it and submit it again"
CELL_ID = re.compile(r"^[a-zA-Z0-9-_]{1,64}$")  # nbformat 4.5's rule for cell ids


# --------------------------------------------------------------------------------------------- reading a file


@dataclass
class Loaded:
    """A file read as a notebook as far as it could be: ``nb`` is None when nothing could be recovered."""

    path: Path
    nb: NotebookNode | None
    notes: list[str] = field(default_factory=list)
    error: str = ""  # why nothing could be read


def decode(data: bytes) -> tuple[str, str]:
    """(text, note) of a file's bytes: UTF-8, or what a BOM says, or Windows-1252 (never fails)."""
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
                          (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):  # fmt: skip
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                break
            return text, "" if encoding == "utf-8-sig" else f"it was saved as {encoding.upper()}, not UTF-8"
    try:
        return data.decode("utf-8"), ""
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace"), "it was not UTF-8 (read as Windows-1252/latin-1)"


def _recover_cells(text: str) -> list | None:
    """The complete cells at the start of a notebook's JSON that was cut off (None: no cells list found)."""
    m = re.search(r'"cells"\s*:\s*\[', text)
    if not m:
        return None
    decoder, cells, i = json.JSONDecoder(), [], m.end()
    while True:
        while i < len(text) and text[i] in " \t\r\n,":
            i += 1
        try:
            cell, i = decoder.raw_decode(text, i)
        except ValueError:
            return cells
        if isinstance(cell, dict):
            cells.append(cell)


def _percent_script(text: str) -> list | None:
    """The cells of a ``# %%`` script (VS Code's and Jupytext's notebook-as-Python), or None."""
    if not re.search(r"^# %%", text, re.M):
        return None
    cells = []
    for chunk in re.split(r"^(?=# %%)", text, flags=re.M):
        head, _, body = chunk.partition("\n")
        if not head.startswith("# %%"):
            body, head = chunk, ""
        if "[markdown]" in head:
            body = "\n".join(re.sub(r"^# ?", "", line) for line in body.splitlines())
            cells.append({"cell_type": "markdown", "source": body.strip("\n"), "metadata": {}})
        elif body.strip():
            cells.append({"cell_type": "code", "source": body.strip("\n"), "metadata": {}})
    return cells


def load(path: Path) -> Loaded:
    """A file read as a notebook, recovering what can be recovered; each recovery named in ``notes``."""
    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):  # a link or a special file is never followed (issue 24, point 1)
            return Loaded(path, None, error="is not a plain file (a link or a special file)")
        if st.st_size > MAX_BYTES:
            return Loaded(path, None, error=f"is {st.st_size / 1e6:.0f} MB, more than a notebook can be")
        data = path.read_bytes()
    except OSError as e:
        return Loaded(path, None, error=f"could not be read ({type(e).__name__})")
    if not data.strip():
        return Loaded(path, None, error="is empty")
    text, note = decode(data)
    notes = [note] if note else []
    try:
        raw, end = json.JSONDecoder().raw_decode(text.lstrip())
        if text.lstrip()[end:].strip():
            notes.append("it had text after the notebook's end (ignored)")
    except ValueError:
        cells = _recover_cells(text)
        if cells:
            raw = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
            notes.append(
                f"it was cut off (not complete JSON): the {len(cells)} complete cells at its start were graded"
            )
        elif (cells := _percent_script(text)) is not None:
            raw = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
            notes.append("it was a Python script (# %% cells), not a notebook: its cells were graded")
        else:
            return Loaded(path, None, notes, error="is not a valid notebook (not JSON)")
    if not isinstance(raw, dict) or not isinstance(raw.get("cells", raw.get("worksheets")), list):
        return Loaded(path, None, notes, error="is not a valid notebook (JSON without cells)")
    try:
        nb, more = normalize(raw)
    except Exception as e:  # a notebook too broken to convert
        return Loaded(path, None, notes, error=f"is not a valid notebook ({type(e).__name__})")
    return Loaded(path, nb, notes + more)


def normalize(raw: dict) -> tuple[NotebookNode, list[str]]:
    """nbformat 4.5 as nbgrader expects it, from any v3/v4 dict: cells complete, valid unique ids, no outputs."""
    notes = []
    if raw.get("nbformat") == 3 or "worksheets" in raw:
        raw = nbformat.v4.upgrade(nbformat.from_dict(raw), from_version=3, from_minor=raw.get("nbformat_minor", 0))
        notes.append("it was in the old nbformat 3: converted to nbformat 4")
    minor = raw.get("nbformat_minor")
    if raw.get("nbformat", 4) == 4 and isinstance(minor, int) and minor < 5:
        notes.append(f"it was nbformat 4.{minor} (an older Jupyter or editor): upgraded to 4.5")
    cells, seen, ids_fixed, out_bytes, bad_outputs = [], set(), 0, 0, False
    for c in raw.get("cells", []):
        if not isinstance(c, dict):
            continue
        source = c.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        kind = c.get("cell_type") if c.get("cell_type") in ("code", "markdown", "raw") else None
        kind = kind or ("code" if "outputs" in c else "markdown")
        meta = c.get("metadata") if isinstance(c.get("metadata"), dict) else {}
        outputs = c.get("outputs")
        if outputs:
            try:
                out_bytes += len(json.dumps(outputs))
                probe = nbformat.v4.new_code_cell(outputs=outputs)
                nbformat.validate(nbformat.v4.new_notebook(cells=[nbformat.from_dict(probe)]))
            except Exception:
                bad_outputs = True
        cell_id = c.get("id")
        if not (isinstance(cell_id, str) and CELL_ID.match(cell_id)) or cell_id in seen:
            ids_fixed += cell_id is not None or not (isinstance(minor, int) and minor < 5)  # 4.0-4.4 had no ids
            cell_id = uuid.uuid4().hex[:8]
            while cell_id in seen:
                cell_id = uuid.uuid4().hex[:8]
        seen.add(cell_id)
        new = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}.get(
            kind, nbformat.v4.new_raw_cell
        )(source=source, metadata=copy.deepcopy(meta))
        new["id"] = cell_id
        if kind != "code" and c.get("attachments"):
            new["attachments"] = c["attachments"]
        cells.append(new)
    nb = nbformat.v4.new_notebook(
        cells=cells, metadata=raw.get("metadata") if isinstance(raw.get("metadata"), dict) else {}
    )
    if ids_fixed:
        notes.append(f"{ids_fixed} cell ids were missing, invalid or repeated: new ids were given")
    if bad_outputs:
        notes.append("some outputs were not valid nbformat (an editor's own format): outputs dropped, they are re-run")
    elif out_bytes > OUTPUT_NOTE_BYTES:
        notes.append(f"its outputs were {out_bytes / 1e6:.0f} MB: dropped (the grader runs every cell again)")
    return nb, notes


# ----------------------------------------------------------------------------------------- the release's cells


def grade_id(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    return str(meta["grade_id"]) if isinstance(meta, dict) and meta.get("grade_id") else None


def _squash(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


class Release:
    """What a release notebook says about its cells: tagged cells in order, their kind and source."""

    def __init__(self, nb: NotebookNode):
        self.nb = nb
        self.order = [grade_id(c) for c in nb.cells if grade_id(c)]
        self.cells = {grade_id(c): c for c in nb.cells if grade_id(c)}
        self.plain = {_squash(c.source) for c in nb.cells if not grade_id(c) and c.source.strip()}

    def is_answer(self, gid: str) -> bool:
        return bool(self.cells[gid].metadata["nbgrader"].get("solution"))

    def is_test(self, gid: str) -> bool:
        meta = self.cells[gid].metadata["nbgrader"]
        return bool(meta.get("grade")) and not meta.get("solution")

    def answered(self, gid: str, source: str) -> bool:
        """Whether an answer cell's source differs from the release's stub (and is not just the stub's lines)."""
        if _squash(source) == _squash(self.cells[gid].source) or not source.strip():
            return False
        if "# YOUR CODE HERE" in source and re.search(r"^\s*raise NotImplementedError", source, re.M):
            return False  # the stub is still there: the code raises before any answer

        rest = [line for line in source.splitlines() if line.strip() and line.strip() not in STUB_LINES]
        return bool(rest) and not all(line.strip() in ("YOUR ANSWER HERE",) for line in rest)


def answers(nb: NotebookNode, release: Release) -> int:
    """How many of the release's answer cells hold an answer in ``nb`` (tagged cells only)."""
    return len(
        {
            grade_id(c)
            for c in nb.cells
            if grade_id(c) in release.cells
            and release.is_answer(grade_id(c))
            and release.answered(grade_id(c), c.source)
        }
    )


# ------------------------------------------------------------------------------------------ repairing the cells


def _names(source: str) -> set[str]:
    """Top-level names a code cell defines (def, class, assignment)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set(re.findall(r"^(?:def|class)\s+(\w+)", source, re.M))
    out = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.Assign):
            out |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return out


def _parses(source: str) -> bool:
    try:
        ast.parse(source)
        return True
    except SyntaxError:
        return False


def _tag(cell, release: Release, gid: str) -> None:
    """Give a cell the release's metadata and type for ``gid``."""
    ref = release.cells[gid]
    cell.metadata["nbgrader"] = copy.deepcopy(ref.metadata["nbgrader"])
    _retype(cell, ref.cell_type)


def _retype(cell, kind: str) -> None:
    if cell.cell_type == kind:
        return
    cell.cell_type = kind
    if kind == "code":
        cell.outputs, cell.execution_count = [], None
    else:
        cell.pop("outputs", None)
        cell.pop("execution_count", None)


def _new_cell(kind: str, source: str) -> NotebookNode:
    maker = {"code": nbformat.v4.new_code_cell, "markdown": nbformat.v4.new_markdown_cell}.get(
        kind, nbformat.v4.new_raw_cell
    )
    return maker(source=source)


def _label(release: Release, gid: str) -> str:
    return ("test cell" if release.is_test(gid) else "answer cell" if release.is_answer(gid) else "cell") + f" {gid}"


def repair_cells(nb: NotebookNode, release: Release) -> list[str]:
    """Make ``nb``'s cells gradable against the release, in place; one sentence per repair."""
    notes: list[str] = []
    _restore_metadata(nb, release, notes)
    _explode_merged(nb, release, notes)
    _match_stripped(nb, release, notes)
    _resolve_repeats(nb, release, notes)
    _retype_cells(nb, release, notes)
    _reorder(nb, release, notes)
    for cell in nb.cells:  # outputs never reach a grade: nbgrader clears and re-runs them
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    _fresh_ids(nb)
    return notes


def _restore_metadata(nb, release: Release, notes: list[str]) -> None:
    """Tagged cells get the release's nbgrader metadata; a grade id the release does not know is untagged."""
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        gid = grade_id(cell)
        if gid in release.cells:
            if not isinstance(meta, dict) or meta.get("schema_version") != 3 or "solution" not in meta:
                notes.append(f"the nbgrader metadata of {_label(release, gid)} was damaged: restored from the release")
            cell.metadata["nbgrader"] = copy.deepcopy(release.cells[gid].metadata["nbgrader"])
        else:
            del cell.metadata["nbgrader"]
            if gid:
                notes.append(
                    f"a cell tagged {gid!r}, which this notebook's release does not have, was graded as an ordinary cell"
                )


def _present(nb) -> set[str]:
    return {grade_id(c) for c in nb.cells if grade_id(c)}


def _explode_merged(nb, release: Release, notes: list[str]) -> None:
    """Cut apart cells merged by Merge Cells: a cell holding the text of release cells the student cannot
    change (locked cells, the release's own markdown and code) next to other text. The release text becomes
    its cell again; text between release cells becomes the answer cell the release has there (when that
    answer is missing), else an ordinary cell where it was."""
    out = []
    for cell in nb.cells:
        pieces = _split_merged(cell, release, _present(nb))
        if pieces is None:
            out.append(cell)
            continue
        for k, (index, text) in enumerate(pieces):
            ref = release.nb.cells[index] if index is not None else None
            new = _new_cell(ref.cell_type if ref is not None else cell.cell_type, text)
            if ref is not None and grade_id(ref):
                _tag(new, release, grade_id(ref))
            elif ref is None and grade_id(cell) and release.is_answer(grade_id(cell)) and k == 0:
                _tag(new, release, grade_id(cell))  # the merge kept the first cell's metadata: its own text
            out.append(new)
        found = [grade_id(release.nb.cells[i]) for i, _ in pieces if i is not None and grade_id(release.nb.cells[i])]
        notes.append(
            "cells had been merged into one (Merge Cells): cut apart again"
            + (f" ({', '.join(found)})" if found else "")
        )
    nb.cells = out


def _split_merged(cell, release: Release, present: set[str]) -> list[tuple[int | None, str]] | None:
    """[(release cell index or None, text)] of a merged cell, or None when it is not a merge of release cells.
    An answer text found between release cells gets the index of the release's answer cell there."""
    own = grade_id(cell)
    if own and _squash(cell.source) == _squash(release.cells[own].source):
        return None
    spans = []
    for index, ref in enumerate(release.nb.cells):
        gid = grade_id(ref)
        if (gid and (release.is_answer(gid) or (gid in present and gid != own))) or len(ref.source.strip()) < 20:
            continue
        text = ref.source.strip()
        at = cell.source.find(text)
        if at >= 0 and not (_squash(cell.source) == _squash(text)):
            spans.append((at, at + len(text), index))
    if not spans:
        return None
    spans.sort()
    pieces, pos = [], 0
    for start, end, index in spans:
        if start < pos:
            continue
        if cell.source[pos:start].strip():
            pieces.append((None, cell.source[pos:start].strip("\n")))
        pieces.append((index, release.nb.cells[index].source))
        pos = end
    if cell.source[pos:].strip():
        pieces.append((None, cell.source[pos:].strip("\n")))
    if len(pieces) < 2:
        return None
    result, taken = [], set(present)
    for k, (index, text) in enumerate(pieces):
        if index is None:
            before = next((i for i, _ in reversed(pieces[:k]) if i is not None), -1)
            after = next((i for i, _ in pieces[k + 1 :] if i is not None), len(release.nb.cells))
            slots = [
                i
                for i in range(before + 1, after)
                if grade_id(release.nb.cells[i])
                and release.is_answer(grade_id(release.nb.cells[i]))
                and grade_id(release.nb.cells[i]) not in taken
            ]
            if len(slots) == 1 and not (k == 0 and own and release.is_answer(own)):
                index = slots[0]
                taken.add(grade_id(release.nb.cells[index]))
        result.append((index, text))
    return result


def _match_stripped(nb, release: Release, notes: list[str]) -> None:
    """Give back the metadata of cells that lost it (VS Code, Colab, copy/paste into a new notebook): a locked
    cell by its text, an answer cell by its place between the cells around it and the names it defines."""
    present = _present(nb)
    for gid in release.order:
        if gid in present or release.is_answer(gid):
            continue
        ref = _squash(release.cells[gid].source)
        for cell in nb.cells:
            if not grade_id(cell) and _squash(cell.source) == ref:
                _tag(cell, release, gid)
                present.add(gid)
                if release.is_test(gid):
                    notes.append(
                        f"{_label(release, gid)} had lost its nbgrader metadata: matched to the release by its text"
                    )
                break
    for gid in release.order:
        if gid in present or not release.is_answer(gid):
            continue
        ref = release.cells[gid]
        k = release.order.index(gid)
        before = next((g for g in reversed(release.order[:k]) if g in present), None)
        after = next((g for g in release.order[k + 1 :] if g in present), None)
        positions = {grade_id(c): i for i, c in enumerate(nb.cells) if grade_id(c)}
        lo = positions[before] + 1 if before else 0
        hi = positions[after] if after else len(nb.cells)
        window = [
            c
            for c in nb.cells[lo:hi]
            if not grade_id(c) and c.source.strip() and _squash(c.source) not in release.plain
        ]
        if ref.cell_type == "code":
            window = [c for c in window if c.cell_type == "code" or _parses(c.source)]
            wanted = _names(ref.source)
            best = [c for c in window if wanted and wanted <= _names(c.source)]
        else:
            best = [c for c in window if c.cell_type == "markdown"]
        anchored = before is not None and after is not None  # a guess by place needs the cells around it
        if not best and anchored and len(window) == 1:
            best = window
        if not best and anchored and window:
            score = [difflib.SequenceMatcher(None, ref.source, c.source).ratio() for c in window]
            best = [window[score.index(max(score))]] if max(score) > 0.5 else []
        if best:
            _tag(best[0], release, gid)
            present.add(gid)
            notes.append(f"{_label(release, gid)} had lost its nbgrader metadata: matched to the release by its place")


def _resolve_repeats(nb, release: Release, notes: list[str]) -> None:
    """One cell per grade id: a split answer rejoined, a duplicated test kept once (the first), a duplicated
    answer graded where it is answered; answered copies beyond it run as ordinary cells in their places."""
    groups: dict[str, list[int]] = {}
    for i, cell in enumerate(nb.cells):
        if grade_id(cell):
            groups.setdefault(grade_id(cell), []).append(i)
    drop: set[int] = set()
    for gid, where in groups.items():
        if len(where) < 2:
            continue
        cells = [nb.cells[i] for i in where]
        if not release.is_answer(gid):
            drop |= set(where[1:])
            pieces = [c.source for c in cells]
            if _squash(release.cells[gid].source) in {_squash("\n".join(pieces)), _squash("".join(pieces))}:
                cells[0].source = release.cells[gid].source
                notes.append(f"{_label(release, gid)} was split in {len(where)} (Split Cell): rejoined into one")
            else:
                notes.append(
                    f"{_label(release, gid)} appeared {len(where)} times (duplicated or copied): the first was kept"
                )
            continue
        keep, seen = [], set()
        for i, cell in zip(where, cells):
            if _squash(cell.source) in seen:
                drop.add(i)
            else:
                seen.add(_squash(cell.source))
                keep.append(i)
        answered = [i for i in keep if release.answered(gid, nb.cells[i].source)]
        if answered:
            drop |= set(keep) - set(answered)
            keep = answered
        first = nb.cells[keep[0]]
        joined = _join([nb.cells[i].source for i in keep], first.cell_type)
        if len(keep) > 1 and (first.cell_type != "code" or _parses(joined)):
            # pieces run one after the other, as in the student's kernel: one cell runs them the same way
            first.source = joined
            drop |= set(keep[1:])
            notes.append(
                f"{_label(release, gid)} was split or duplicated into {len(keep)} cells (Split Cell, Duplicate): "
                "joined again in order into one"
            )
        elif len(keep) > 1:  # together they do not parse: the first is the answer, the others run where they are
            for i in keep[1:]:
                del nb.cells[i].metadata["nbgrader"]
            notes.append(
                f"{_label(release, gid)} appeared {len(where)} times: the first answered copy is graded as the answer, "
                "the later ones run as ordinary cells where they are"
            )
        else:
            notes.append(
                f"{_label(release, gid)} appeared {len(where)} times (duplicated or copied): the answered copy was graded"
            )
    nb.cells = [c for i, c in enumerate(nb.cells) if i not in drop]


def _join(sources: list[str], kind: str) -> str:
    """Split Cell's pieces put together again. JupyterLab trims the newlines at a cut: pieces cut between
    lines are joined by one newline; pieces cut inside a line by nothing, when only that parses."""
    if kind != "code":
        return "\n\n".join(s.strip("\n") for s in sources)
    by_line = "\n".join(s.rstrip("\n") for s in sources)
    in_line = "".join(sources)
    return in_line if not _parses(by_line) and _parses(in_line) else by_line


def _retype_cells(nb, release: Release, notes: list[str]) -> None:
    for cell in nb.cells:
        gid = grade_id(cell)
        kind = release.cells[gid].cell_type if gid else None
        if kind and cell.cell_type != kind:
            if release.is_answer(gid):
                notes.append(
                    f"{_label(release, gid)} had been turned into a {cell.cell_type} cell: turned back into {kind}"
                )
            _retype(cell, kind)


def _reorder(nb, release: Release, notes: list[str]) -> None:
    """Tagged cells back in the release's order, each ordinary cell travelling with the tagged cell before it."""
    tagged = [grade_id(c) for c in nb.cells if grade_id(c)]
    if tagged == sorted(tagged, key=release.order.index):
        return
    head, groups = [], []
    for cell in nb.cells:
        if grade_id(cell):
            groups.append([cell])
        elif groups:
            groups[-1].append(cell)
        else:
            head.append(cell)
    groups.sort(key=lambda g: release.order.index(grade_id(g[0])))
    nb.cells = head + [c for g in groups for c in g]
    notes.append("cells had been moved out of the release's order: graded in the release's order")


def _fresh_ids(nb) -> None:
    seen = set()
    for cell in nb.cells:
        if not (isinstance(cell.get("id"), str) and CELL_ID.match(cell["id"])) or cell["id"] in seen:
            cell["id"] = uuid.uuid4().hex[:8]
        seen.add(cell["id"])


# --------------------------------------------------------------------------------------- choosing the file


@dataclass
class Choice:
    """What is graded for one expected notebook: ``nb`` (repaired), from ``path``, and why."""

    name: str
    path: Path | None = None
    nb: NotebookNode | None = None
    notes: list[str] = field(default_factory=list)
    problem: str = ""  # set when nothing gradable was found


def candidates(folder: Path) -> list[Path]:
    """Every plain .ipynb file in a submitted folder, checkpoints last; never a link, never our stand-ins."""
    found = []
    for p in sorted(folder.rglob("*.ipynb")):
        if p.is_symlink() or not p.is_file() or any(part.startswith(".") and part != ".ipynb_checkpoints"
                                                       for part in p.relative_to(folder).parts):  # fmt: skip
            continue
        found.append(p)
    return sorted(found, key=lambda p: ".ipynb_checkpoints" in p.parts)


def is_stand_in(loaded: Loaded) -> bool:
    return loaded.nb is not None and MARK in loaded.nb.metadata.get("llmcourse", {})


def _belongs(before: NotebookNode, after: NotebookNode, release: Release) -> int:
    """How sure it is that a notebook is this release's (0: not at all): its test and answer cells tagged as
    the student sent them, and its test cells found by their text. An answer matched only by its place is no
    evidence (ids such as "intro" or "setup" recur in other assignments)."""
    sent = {g for g in _present(before) & set(release.order) if release.is_test(g) or release.is_answer(g)}
    return len(sent | {g for g in _present(after) & set(release.order) if release.is_test(g)})


def choose(folder: Path, releases: dict[str, NotebookNode], loaded: list[Loaded] | None = None) -> dict[str, Choice]:
    """For each expected notebook name, the submitted file to grade (repaired) and the notes that say why."""
    folder = Path(folder)
    loaded = loaded if loaded is not None else [load(p) for p in candidates(folder)]
    loaded = [x for x in loaded if not is_stand_in(x)]
    rel = {name: Release(nb) for name, nb in releases.items()}
    fits: dict[str, list[tuple[tuple, Loaded, NotebookNode, list[str]]]] = {name: [] for name in releases}
    for item in loaded:
        if item.nb is None:
            continue
        best = None
        for name, release in rel.items():
            nb = copy.deepcopy(item.nb)
            notes = repair_cells(nb, release)
            held = _belongs(item.nb, nb, release)
            if held and (best is None or held > best[0]):
                best = (held, name, nb, notes)
        if best:
            held, name, nb, notes = best
            checkpoint = ".ipynb_checkpoints" in item.path.parts
            n = answers(nb, rel[name])
            key = (n > 0, not checkpoint, n, item.path == folder / f"{name}.ipynb", -len(item.path.name))
            fits[name].append((key, item, nb, notes))
    out = {}
    for name in releases:
        expected = folder / f"{name}.ipynb"
        choice = Choice(name)
        if not fits[name]:
            mine = next((x for x in loaded if x.path == expected), None)
            why = (
                f"{name}.ipynb " + (mine.error or "holds none of this notebook's cells")
                if mine
                else f"{name}.ipynb is missing"
            )
            choice.problem = f"{why}, and no other notebook in your submission holds its answers: {HELP}"
            out[name] = choice
            continue
        fits[name].sort(key=lambda f: f[0], reverse=True)
        key, item, nb, notes = fits[name][0]
        choice.path, choice.nb = item.path, nb
        rel_path = item.path.relative_to(folder)
        if item.path != expected:
            others = [f"{f[1].path.relative_to(folder)} ({answers(f[2], rel[name])} answers)" for f in fits[name][1:]]
            mine = next((x for x in loaded if x.path == expected), None)
            if mine is not None and mine.nb is None:
                why = f"{name}.ipynb {mine.error}"
            elif others:
                why = f"it holds the most answers ({answers(nb, rel[name])}; also found: {', '.join(others)})"
            else:
                why = f"{name}.ipynb is missing"
            where = "your last checkpoint " if ".ipynb_checkpoints" in item.path.parts else ""
            choice.notes.append(f"{where}{rel_path} was graded as {name}.ipynb: {why}")
        choice.notes += [f"{rel_path}: {n}" for n in item.notes] + [f"{name}: {n}" for n in notes]
        out[name] = choice
    return out


def foreign(loaded: list[Loaded], chosen: dict[str, Choice], assignment: str, others: dict[str, set[str]]) -> list[str]:
    """Sentences naming submitted notebooks that belong to another assignment than ``assignment`` (``others``:
    assignment -> its graded grade ids)."""
    used = {c.path for c in chosen.values() if c.path}
    out = []
    for item in loaded:
        if item.nb is None or item.path in used:
            continue
        ids = {grade_id(c) for c in item.nb.cells if grade_id(c)}
        hits = {a: len(ids & g) for a, g in others.items() if ids & g}
        if hits:
            out.append(
                f"{item.path.name} does not belong to {assignment}: it is a notebook of {max(hits, key=hits.get)} "
                "(not graded)"
            )
    return out


def stand_in(choice: Choice, folder: Path) -> NotebookNode:
    """The repaired notebook as written under the expected name, marked as the grader's."""
    nb = copy.deepcopy(choice.nb)
    nb.metadata.setdefault("llmcourse", {})[MARK] = str(choice.path.relative_to(folder))
    return nb


def write_stand_in(choice: Choice, folder: Path) -> bool:
    """Where the expected file name is missing, put the repaired notebook there (nbgrader looks for that name
    only); the student's own file stays as it is. True when a stand-in was written."""
    target = folder / f"{choice.name}.ipynb"
    if choice.nb is None or target.exists() or target.is_symlink():
        return False
    nbformat.write(stand_in(choice, folder), str(target))
    return True


# ------------------------------------------------------------------------------------ where nbgrader reads it


class RepairingExporter(NotebookExporter):
    """nbgrader's notebook exporter, reading a submitted notebook through :func:`choose`: the file with the
    student's answers, repaired. Anything else (the autograde pass reading nbgrader's own copy) is read as
    nbconvert reads it. Set as ``c.Autograde.exporter_class``."""

    def from_filename(self, filename, resources=None, **kw):
        nb = self._repaired(Path(filename), resources or {})
        if nb is None:
            return super().from_filename(filename, resources, **kw)
        resources = super()._init_resources(resources)
        resources.setdefault("metadata", {})
        resources["metadata"].update(name=Path(filename).stem, path=str(Path(filename).parent))
        return self.from_notebook_node(nb, resources, **kw)

    def _repaired(self, path: Path, resources: dict) -> NotebookNode | None:
        coursedir = getattr(self.parent, "coursedir", None)
        info = resources.get("nbgrader", {})
        if coursedir is None or not info.get("student"):
            return None
        student, assignment = info["student"], info["assignment"]
        submitted = Path(coursedir.format_path(coursedir.submitted_directory, student, assignment))
        if path.parent.resolve() != submitted.resolve():
            return None  # nbgrader's own copy, already repaired
        released = Path(coursedir.format_path(coursedir.release_directory, ".", assignment))
        try:
            releases = {p.stem: nbformat.read(str(p), as_version=4) for p in sorted(released.glob("*.ipynb"))}
            choice = choose(submitted, releases)[path.stem]
        except Exception:  # never worse than nbgrader alone: read the file as it is
            self.log.warning("could not repair %s", path, exc_info=True)
            return None
        if choice.nb is not None and choice.notes:  # the feedback says what was repaired, first
            choice.nb.cells.insert(0, banner(choice.notes))
        return choice.nb


BANNER = "Repaired before grading"


def banner(notes: list[str]) -> NotebookNode:
    """The markdown cell that heads a repaired notebook's graded copy (and so its feedback)."""
    cell = nbformat.v4.new_markdown_cell(
        f"**{BANNER}.** Your notebook was damaged; it was graded from your answers:\n\n"
        + "\n".join(f"- {n}" for n in notes)
        + "\n\nNext time, run `llmcourse validate` (or the Validate button) before you submit."
    )
    cell.metadata["llmcourse"] = {"repairs": True}
    return cell


# ----------------------------------------------------------------------------------- before the student submits


def own_release(nb: NotebookNode) -> NotebookNode:
    """A stand-in release made from a student's own notebook, where the real one is not at hand (a student's
    machine): each grade id's first cell, its type from nbgrader's record of it, answers as the release's stub."""
    cells, pieces = [], {}
    for cell in nb.cells:  # a locked cell split in pieces: its text is theirs together
        if grade_id(cell) and cell.source not in pieces.setdefault(grade_id(cell), []):
            pieces[grade_id(cell)].append(cell.source)
    for cell in nb.cells:
        gid = grade_id(cell)
        meta = cell.metadata.get("nbgrader", {})
        if not gid or gid not in pieces or not isinstance(meta, dict):
            continue
        kind = meta.get("cell_type", cell.cell_type)
        stub = "YOUR ANSWER HERE" if kind == "markdown" else "# YOUR CODE HERE\nraise NotImplementedError()"
        new = _new_cell(kind, stub if meta.get("solution") else "\n".join(pieces.pop(gid)))
        new.metadata["nbgrader"] = {"schema_version": 3, "solution": False, **meta}
        cells.append(new)
    return nbformat.v4.new_notebook(cells=cells)


def find_release(nb: NotebookNode, repo: Path | None) -> NotebookNode:
    """The release a student's notebook comes from (``assignments/*/`` of the repository, matched by grade ids),
    else :func:`own_release`."""
    ids = {grade_id(c) for c in nb.cells if grade_id(c)}
    for path in sorted(Path(repo).glob("assignments/*/*.ipynb")) if repo else []:
        release = nbformat.read(str(path), as_version=4)
        if ids and len(ids & {grade_id(c) for c in release.cells if grade_id(c)}) * 2 > len(ids):
            return release
    return own_release(nb)


def check_before_submitting(path: Path, repo: Path | None = None) -> tuple[NotebookNode | None, list[str]]:
    """(the notebook as the grader will grade it, a warning per damage) for ``llmcourse validate``: each says what
    the notebook has, what the grader will do, and how to fix it."""
    loaded = load(Path(path))
    if loaded.nb is None:
        return None, [f"{Path(path).name} {loaded.error}: the grader cannot grade it; {HELP}"]
    nb = loaded.nb
    return nb, _warnings(loaded.notes + repair_cells(nb, Release(find_release(nb, repo))))


def _warnings(notes: list[str]) -> list[str]:
    fix = "the grader repairs this the same way, but better fix it in your notebook before you submit"
    return [f"your notebook: {note}; {fix}" for note in notes]


def check_notebook(nb: NotebookNode, repo: Path | None = None) -> tuple[NotebookNode, list[str]]:
    """:func:`check_before_submitting` for a notebook already read (nbgrader's Validator read it): the same
    normalizing and cell repairs, so the same warnings; ``nb`` itself is left as it is."""
    fixed, notes = normalize(json.loads(json.dumps(nb)))
    return fixed, _warnings(notes + repair_cells(fixed, Release(find_release(fixed, repo))))


WARNINGS_ID = "llmcourse-damage-warnings"  # grade id of the cell that carries them to the Validate dialog


def warnings_cell(warnings: list[str]) -> NotebookNode:
    """A graded code cell (0 points) that fails: nbgrader's Validator lists it as "The following cell failed:"
    with its source, so the dialog shows each warning exactly as ``llmcourse validate`` prints it."""
    lines = [
        "# Your notebook was changed in ways the grader repairs (llmcourse validate warns the same).",
        "# It was validated as the grader will grade it; fix these before you submit:",
        *(f"# WARNING {w}".replace("\n", "\n#   ") for w in warnings),
        'raise RuntimeError("your notebook is damaged: see the warnings above this line")',
    ]
    cell = nbformat.v4.new_code_cell("\n".join(lines))
    cell.metadata["nbgrader"] = {"schema_version": 3, "grade": True, "solution": False, "locked": False,
                                 "grade_id": WARNINGS_ID, "points": 0}  # fmt: skip
    return cell


class WarnOfRepairs(Preprocessor):
    """The Validate button's first step (``c.Validator.preprocessors``, see :func:`validate_button_config`).
    nbgrader's Validator reads a notebook as it is: a duplicated test cell stops it (a grade id twice), a split
    answer fails in pieces. This repairs it as the grader will (:func:`check_notebook`) and, where there was
    damage, heads it with :func:`warnings_cell`. A healthy notebook passes through untouched."""

    def preprocess(self, nb, resources):
        from .course import find_repo

        try:  # the Validator runs its preprocessors in the notebook's folder (it gives them no path)
            repo = find_repo(Path.cwd())
        except Exception:  # a student's machine: no repository, the notebook's own metadata stands in
            repo = None
        try:
            fixed, warnings = check_notebook(nb, repo)
        except Exception:  # never worse than nbgrader alone
            self.log.warning("could not check the notebook for damage", exc_info=True)
            return nb, resources
        if not warnings:
            return nb, resources
        fixed.cells.insert(0, warnings_cell(warnings))
        return fixed, resources


def validate_button_config():
    """The Config that makes nbgrader's Validate button (its ``Validator``) run :class:`WarnOfRepairs` first, then
    nbgrader's own preprocessors. nbgrader forgot to make ``Validator.preprocessors`` configurable (no
    ``config=True``), so it is tagged here; merge this into an ``nbgrader_config.py`` (``tool_config`` does)."""
    from nbgrader.preprocessors import CheckCellMetadata, ClearOutput, Execute
    from nbgrader.validator import Validator
    from traitlets.config import Config

    Validator.class_traits()["preprocessors"].tag(config=True)
    config = Config()
    config.Validator.preprocessors = [WarnOfRepairs, CheckCellMetadata, ClearOutput, Execute]  # nbgrader's default
    return config
