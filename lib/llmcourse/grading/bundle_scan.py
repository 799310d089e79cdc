"""Scan a student distribution for what must never be in it.

A bundle (:mod:`llmcourse.grading.bundle`) is built from an allow-list; this scan checks the result
against the secrets themselves, so a mistake anywhere (a solution pasted into a lecture, a hidden test
left in a release, the grading seed in an output, a withheld answer key copied into the wheel) is caught:

    solution      the code between ``### BEGIN SOLUTION`` / ``### END SOLUTION`` in ``solutions/*/*.ipynb``
    hidden test   the code between ``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS`` there
    seed          the course's grading seed, as a whole number anywhere in any file
    answer key    the source of an answer-key module that is withheld (``llmcourse/attention.py``)
    file          a path that has no business there (``solutions/``, ``tests/``, ``course_work/``, ...)

Text is compared as *normalised lines* (stripped, blank lines dropped), so re-indenting or re-wrapping a
notebook does not hide a copy, in windows of ``WINDOW`` consecutive lines (the whole block when shorter).
A solution or hidden-test block is found in a file when at least half of its windows are there (three
common lines such as ``opt.zero_grad()``, ``loss.backward()``, ``opt.step()`` do not make a copy). A
withheld answer key is found when ``KEY_WINDOWS`` of its windows are, counting only windows that appear
nowhere in the code students may have (the student package as built from the repository): a signature
it shares with a released module is no secret. Solutions of units whose answer keys are released are no
secret either; hidden tests always are.
Every file is read: each member of each wheel, every notebook (sources and outputs) and the rest as text.
"""

from __future__ import annotations

import dataclasses
import re
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import nbformat

from .bundle_wheel import answer_keys, wheel_files

WINDOW = 3  # lines per window
MIN_CHARS = 20  # a window shorter than this (``return x``) says nothing about where it came from
KEY_WINDOWS = 5  # windows of a withheld answer key that make a file a copy of it
FORBIDDEN_PARTS = ("solutions", "tests", "course_work", "autograder", ".git", ".grading_seed", "gradebook.db")
BLOCKS = {
    "solution": ("### BEGIN SOLUTION", "### END SOLUTION"),
    "hidden test": ("### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"),
}


@dataclasses.dataclass(frozen=True)
class Leak:
    kind: str  # solution, hidden test, seed, answer key, file
    where: str  # the file in the bundle, e.g. "llmcourse-0.1.0-py3-none-any.whl:llmcourse/attention.py"
    what: str  # where the secret comes from, e.g. "solutions/04_attention/attention.ipynb, cell softmax"

    def __str__(self) -> str:
        return f"{self.kind}: {self.what} found in {self.where}"


@dataclasses.dataclass(frozen=True)
class _Secret:
    kind: str
    what: str
    windows: frozenset[str]
    needed: int  # windows that must be present


def normalised_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def windows(lines: list[str], size: int = WINDOW) -> set[str]:
    """Every run of ``size`` consecutive lines (the whole list when shorter), long enough to mean something."""
    if len(lines) <= size:
        runs = ["\n".join(lines)] if lines else []
    else:
        runs = ["\n".join(lines[i : i + size]) for i in range(len(lines) - size + 1)]
    return {r for r in runs if len(r) >= MIN_CHARS}


def _blocks(source: str, begin: str, end: str) -> Iterator[str]:
    """The text between each ``begin`` and ``end`` marker line of a cell."""
    inside, block = False, []
    for line in source.splitlines():
        if line.strip() == begin:
            inside, block = True, []
        elif line.strip() == end and inside:
            inside = False
            yield "\n".join(block)
        elif inside:
            block.append(line)


def secrets(repo: Path, released: Iterable[str]) -> list[_Secret]:
    """What the bundle must not contain: solution blocks of unreleased units, every hidden-test block, and
    the answer keys of unreleased units (``released``: unit names such as ``01_tokenization``)."""
    released, found = set(released), []
    for path in sorted((repo / "solutions").glob("*/*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            name = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", f"#{i}")
            for kind, (begin, end) in BLOCKS.items():
                if kind == "solution" and path.parent.name in released:
                    continue
                for block in _blocks(cell.source, begin, end):
                    if w := windows(normalised_lines(block)):
                        needed = (len(w) + 1) // 2
                        found.append(_Secret(kind, f"{path.relative_to(repo)}, cell {name}", frozenset(w), needed))
    # What students may have anyway: the student package as the repository makes it, and the code every
    # release hands out (the scaffolding around the solution cells, e.g. a table of special tokens).
    keys, public = answer_keys(repo), set()
    for arcname, data in wheel_files(repo, sorted(released)).items():
        module = arcname.replace("/", ".").removesuffix(".py")
        if module not in keys or keys[module] in released:
            public |= windows(normalised_lines(data.decode()))
    for path in sorted((repo / "assignments").glob("*/*.ipynb")):
        public |= windows(normalised_lines(_notebook_text(path.read_bytes())))
    for module, unit in keys.items():
        if unit in released:
            continue
        path = repo / "lib" / (module.replace(".", "/") + ".py")
        w = windows(normalised_lines(path.read_text())) - public
        found.append(_Secret("answer key", str(path.relative_to(repo)), frozenset(w), max(1, min(KEY_WINDOWS, len(w)))))
    return found


def _notebook_text(data: bytes) -> str:
    """Sources and outputs of a notebook's cells, one after another (and the raw file if it is no notebook)."""
    try:
        nb = nbformat.reads(data.decode(), as_version=4)
    except Exception:
        return data.decode(errors="replace")
    parts = []
    for cell in nb.cells:
        parts.append(cell.source)
        for output in cell.get("outputs", []):
            parts.append(str(output.get("text", "")))
            parts += [str(v) for v in output.get("data", {}).values()]
    return "\n".join(parts)


def texts(out: Path) -> Iterator[tuple[str, str, str]]:
    """(where, raw text, code text) of every file in a bundle; each member of a wheel on its own."""
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        where = str(path.relative_to(out))
        data = path.read_bytes()
        if path.suffix == ".whl":
            with zipfile.ZipFile(path) as zf:
                for member in zf.namelist():
                    text = zf.read(member).decode(errors="replace")
                    yield f"{where}:{member}", text, text
        elif path.suffix == ".ipynb":
            yield where, data.decode(errors="replace"), _notebook_text(data)
        else:
            text = data.decode(errors="replace")
            yield where, text, text


def scan(out: str | Path, repo: str | Path, *, seed: int | None, released: Iterable[str]) -> list[Leak]:
    """Every leak in the bundle at ``out``: solution code and answer keys of units not in ``released``,
    hidden tests, the ``seed`` and forbidden paths. An empty list means the bundle is clean."""
    out, repo = Path(out), Path(repo)
    known = secrets(repo, released)
    seed_re = re.compile(rf"(?<![0-9]){seed}(?![0-9])") if seed is not None else None
    leaks = []
    for where, raw, code in texts(out):
        parts = set(re.split(r"[/:]", where))
        leaks += [Leak("file", where, f"a path under {p}/") for p in FORBIDDEN_PARTS if p in parts]
        if seed_re is not None and seed_re.search(raw):
            leaks.append(Leak("seed", where, "the course's grading seed (.grading_seed)"))
        present = windows(normalised_lines(code), 1) | windows(normalised_lines(code), 2)
        present |= windows(normalised_lines(code))
        leaks += [Leak(s.kind, where, s.what) for s in known if len(s.windows & present) >= s.needed]
    return leaks
