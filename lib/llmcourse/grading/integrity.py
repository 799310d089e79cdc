"""Similarity report: pairs of submissions with near-identical solution code, and submissions
near-identical to the reference solution.

The method is MOSS's (Schleimer, Wilkerson & Aiken, "Winnowing: local algorithms for document
fingerprinting", SIGMOD 2003):

1. **Only what the student wrote counts.** The code of the solution cells (nbgrader metadata
   ``solution: true``), without the released stub (``# YOUR CODE HERE`` / ``raise
   NotImplementedError()``). Every k-gram that also occurs in the released notebook (signatures,
   docstrings, given code) is removed, as MOSS's base-file option (``-b``) does.
2. **Normalise** and 3. **fingerprint** (:mod:`llmcourse.grading.winnowing`): comments, layout and
   identifiers' names stop mattering; every k-gram of ``k`` tokens is hashed and the minimum of each
   window of ``w`` hashes kept, so any shared run of ``k + w - 1`` tokens is found.
4. **Compare**: a pair's similarity is the share of the smaller submission's fingerprints found in
   the other; a submission's similarity to the reference is the share of its own fingerprints found
   in the reference (the solution notebook's solution cells plus, where the assignment's checks name
   them, the library functions in ``lib/llmcourse/<topic>.py`` and the private helpers they call).
   In a class of ten or more, fingerprints shared by more than half the submissions are ignored
   between pairs (MOSS's ``-m``): that is the idiom everybody writes, or a common source, which
   the reference comparison reports on its own.

A high score is a reason to look at the side-by-side excerpts, never proof: short exercises have few
ways to be written.

Why no external package: on PyPI, ``copydetect`` 0.5.0 (last release March 2024, "Beta") is the
maintained winnowing tool. It fingerprints whole files found in directories, tokenises with
Pygments and pulls numpy, matplotlib and tqdm; we need per-cell notebook code (nbgrader solution
cells only), base subtraction from a released notebook rather than a boilerplate directory, and
identifier normalisation with Python's own tokenizer. The algorithm is a few dozen lines here.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import nbformat

from .assignment import Manifest, solution_code
from .integrity_html import write_report
from .safe_files import kind, read_regular
from .winnowing import K, W, fingerprints, kgram_hashes
from .write_yourself import submission_findings

__all__ = ["Pair", "solution_code", "similarity_report", "write_report", "fingerprints"]

MIN_FINGERPRINTS = 5  # a submission with fewer fingerprints than this is too small to judge
MAX_REGIONS = 25  # excerpt pairs kept per reported pair

REFERENCE = "reference"


@dataclasses.dataclass
class Pair:
    a: str
    b: str
    similarity: float
    shared_lines: list[tuple[str, str]]  # (a's excerpt, b's excerpt), each headed by "# <cell>, lines i-j"
    shared_fingerprints: int = 0


# --------------------------------------------------------------------------- the base


def _released_code(notebook_path) -> list[str]:
    """Every code cell as a student receives it (for the base): solutions cut out of a source
    notebook the way nbgrader's ClearSolutions does, hidden tests dropped."""
    nb = nbformat.read(str(notebook_path), as_version=4)
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept, skipping = [], False
        for line in cell.source.splitlines():
            s = line.strip()
            if s in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
                skipping = True
            elif s in ("### END SOLUTION", "### END HIDDEN TESTS"):
                skipping = False
            elif not skipping:
                kept.append(line)
        out.append("\n".join(kept))
    return out


@dataclasses.dataclass
class _Doc:
    """One submission (or the reference): fingerprints with where they come from."""

    name: str
    cells: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # label -> source lines
    fps: dict[int, tuple[str, int, int]] = dataclasses.field(default_factory=dict)

    def add(self, label: str, code: str, base: set[int], k: int, w: int) -> None:
        self.cells[label] = code.splitlines()
        for h, (first, last) in fingerprints(code, k, w).items():
            if h not in base:
                self.fps.setdefault(h, (label, first, last))


# --------------------------------------------------------------------------- the reference


def _reference_functions(check_names, repo_root: Path) -> list[tuple[str, str]]:
    """(label, source) of the library functions the named checks compare with, plus the module-level
    helpers they call (two levels), read from ``repo_root/lib`` without importing."""
    targets: list[tuple[str, str]] = []
    for name in check_names:
        ref = _reference_of(name)
        if ref and ref not in targets:
            targets.append(ref)
    out, seen = [], set()
    for module, function in targets:
        path = repo_root / "lib" / Path(*module.split("."))
        path = path.with_suffix(".py") if not (path / "__init__.py").exists() else path / "__init__.py"
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (OSError, SyntaxError, ValueError):
            continue
        defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        todo = [(function, 0)]
        while todo:
            fname, depth = todo.pop(0)
            node = defs.get(fname)
            if node is None or (path, fname) in seen:
                continue
            seen.add((path, fname))
            label = f"{path.relative_to(repo_root).as_posix()}:{fname}"
            out.append((label, "\n".join(source.splitlines()[node.lineno - 1 : node.end_lineno])))
            if depth < 2:
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in defs:
                        todo.append((sub.func.id, depth + 1))
    return out


def _reference_of(check_name: str) -> tuple[str, str] | None:
    """``"tokenization.merge"`` -> ("llmcourse.tokenization", "merge"), from the check registry
    when it knows the name, else by the naming convention."""
    try:
        from ..checks.checker import get_spec

        module, function = get_spec(check_name).reference.split(":")
        return module, function
    except Exception:  # an unknown topic or a registry that does not import: fall back on the convention
        if check_name.count(".") == 1 and all(p.isidentifier() for p in check_name.split(".")):
            topic, function = check_name.split(".")
            return f"llmcourse.{topic}", function
        return None


# --------------------------------------------------------------------------- the report


def similarity_report(
    course_root, assignment, *, repo_root, threshold=0.8, k: int = K, w: int = W, common: float = 0.5
) -> dict:
    """Compare every submission in ``<course_root>/submitted/*/<assignment>/`` with every other
    and with the reference. Returns ``{"pairs": [Pair], "reference_matches": [Pair], ...}``, each
    list sorted by similarity, only those at or above ``threshold``; ``students`` lists who was
    compared and ``skipped`` what could not be read."""
    course_root, repo_root = Path(course_root), Path(repo_root)
    solutions_dir = repo_root / "solutions" / assignment
    solution_nbs = sorted(solutions_dir.glob("*.ipynb"))
    if not solution_nbs:
        raise ValueError(f"no solution notebooks in {solutions_dir}")
    notebooks = [p.stem for p in solution_nbs]
    skipped: list[str] = []

    # the base: everything a student received
    base_codes: list[str] = []
    for nb_path in solution_nbs:
        base_codes += _released_code(nb_path)
        for released in (
            course_root / "release" / assignment / nb_path.name,
            repo_root / "assignments" / assignment / nb_path.name,
        ):
            if released.exists():
                try:
                    base_codes += [
                        c.source for c in nbformat.read(str(released), as_version=4).cells if c.cell_type == "code"
                    ]
                except Exception as e:  # noqa: BLE001 - a broken release only weakens the base
                    skipped.append(f"{released}: unreadable release ({type(e).__name__})")
    base = kgram_hashes(base_codes, k)

    reference = _Doc(REFERENCE)
    manifest = Manifest.load(solutions_dir)
    for nb in manifest.notebooks:
        for gid, code in manifest.solutions[nb].items():
            reference.add(f"solution {nb}:{gid}", code, base, k, w)
        for label, code in _reference_functions(manifest.check_names[nb], repo_root):
            reference.add(label, code, base, k, w)

    docs: list[_Doc] = []
    forbidden: list[tuple[str, str, str]] = []  # (student, part, finding): calls a part asks students to write
    submitted = course_root / "submitted"
    for student_dir in sorted(p for p in submitted.iterdir() if kind(p) == "a folder") if submitted.is_dir() else []:
        folder = student_dir / assignment
        if kind(folder) != "a folder":
            continue
        # a link in place of a notebook (to another student's, to the reference) is never read as the student's
        links = [
            f"{student_dir.name}/{nb}.ipynb" for nb in notebooks if kind(folder / f"{nb}.ipynb") not in ("", "missing")
        ]
        if links:
            skipped += [f"{name}: {kind(submitted / name)}, not read" for name in links]
            continue
        doc = _Doc(student_dir.name)
        forbidden += [(student_dir.name, key, line) for key, line in submission_findings(manifest, folder)]
        for nb in notebooks:
            path = folder / f"{nb}.ipynb"
            if not path.exists():
                continue
            try:
                cells = solution_code(nbformat.reads(read_regular(path).decode("utf-8"), as_version=4))
            except Exception as e:  # noqa: BLE001 - one unreadable notebook never stops the report
                skipped.append(f"{student_dir.name}/{nb}.ipynb: not a readable notebook ({type(e).__name__})")
                continue
            if not cells:
                skipped.append(f"{student_dir.name}/{nb}.ipynb: no nbgrader solution cells (cell metadata removed?)")
            for gid, code in cells.items():
                doc.add(f"{nb}:{gid}", code, base, k, w)
        docs.append(doc)

    # reference matches: how much of the student's own code is the reference's
    reference_matches = []
    for doc in docs:
        if len(doc.fps) < MIN_FINGERPRINTS:
            continue
        shared = doc.fps.keys() & reference.fps.keys()
        sim = len(shared) / len(doc.fps)
        if sim >= threshold:
            reference_matches.append(
                Pair(doc.name, REFERENCE, round(sim, 4), _excerpts(doc, reference, shared), len(shared))
            )

    # pairs, through an inverted index (only pairs that share something are ever counted)
    index: dict[int, list[int]] = {}
    for i, doc in enumerate(docs):
        for h in doc.fps:
            index.setdefault(h, []).append(i)
    limit = common * len(docs) if len(docs) >= 10 else float("inf")
    counts: dict[tuple[int, int], int] = {}
    for _h, holders in index.items():
        if len(holders) > limit:
            continue
        for x in range(len(holders)):
            for y in range(x + 1, len(holders)):
                key = (holders[x], holders[y])
                counts[key] = counts.get(key, 0) + 1
    pairs = []
    for (i, j), n in counts.items():
        a, b = docs[i], docs[j]
        smaller = min(len(a.fps), len(b.fps))
        if smaller < MIN_FINGERPRINTS:
            continue
        sim = n / smaller
        if sim >= threshold:
            shared = {h for h in a.fps.keys() & b.fps.keys() if len(index[h]) <= limit}
            pairs.append(Pair(a.name, b.name, round(sim, 4), _excerpts(a, b, shared), len(shared)))

    order = lambda p: (-p.similarity, p.a, p.b)  # noqa: E731
    return {
        "assignment": assignment,
        "threshold": threshold,
        "k": k,
        "w": w,
        "students": [d.name for d in docs],
        "skipped": skipped,
        "pairs": sorted(pairs, key=order),
        "reference_matches": sorted(reference_matches, key=order),
        "forbidden": forbidden,
    }


def _excerpts(a: _Doc, b: _Doc, shared) -> list[tuple[str, str]]:
    """Shared fingerprints merged into runs of lines, as side-by-side excerpts."""
    spots = sorted((a.fps[h], b.fps[h]) for h in shared)
    regions: list[list] = []  # [label_a, first_a, last_a, label_b, first_b, last_b]
    for (la, fa, ea), (lb, fb, eb) in spots:
        r = regions[-1] if regions else None
        if r and r[0] == la and r[3] == lb and fa <= r[2] + 1 and fb <= r[5] + 1 and eb >= r[4] - 1:
            r[2], r[4], r[5] = max(r[2], ea), min(r[4], fb), max(r[5], eb)
        else:
            regions.append([la, fa, ea, lb, fb, eb])
    return [(_excerpt(a, la, fa, ea), _excerpt(b, lb, fb, eb)) for la, fa, ea, lb, fb, eb in regions[:MAX_REGIONS]]


def _excerpt(doc: _Doc, label: str, first: int, last: int) -> str:
    lines = doc.cells.get(label, [])
    return f"# {label}, lines {first}-{last}\n" + "\n".join(lines[first - 1 : last])
