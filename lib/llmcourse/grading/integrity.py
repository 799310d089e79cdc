"""Similarity report: pairs of submissions with near-identical solution code, and submissions
near-identical to the reference solution.

The method is MOSS's (Schleimer, Wilkerson & Aiken, "Winnowing: local algorithms for document
fingerprinting", SIGMOD 2003):

1. **Only what the student wrote counts.** The code of the solution cells (nbgrader metadata
   ``solution: true``), without the released stub (``# YOUR CODE HERE`` / ``raise
   NotImplementedError()``). Every k-gram that also occurs in the released notebook (signatures,
   docstrings, given code) is removed, as MOSS's base-file option (``-b``) does.
2. **Normalise** with Python's :mod:`tokenize`: comments, docstrings, blank lines and layout go;
   every identifier that is not a keyword, a builtin or an attribute becomes ``V``, so renaming
   variables changes nothing; string literals are compared by value, so quote style changes nothing.
3. **Fingerprint**: hash every k-gram of tokens (``k`` tokens) and keep the minimum hash of each
   window of ``w`` consecutive hashes (winnowing). Any shared run of at least ``k + w - 1`` tokens
   is guaranteed to share a fingerprint; runs shorter than ``k`` tokens are noise and never match.
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
import builtins
import csv
import dataclasses
import hashlib
import html
import io
import keyword
import re
import tokenize
from pathlib import Path

import nbformat

__all__ = ["Pair", "solution_code", "similarity_report", "write_report", "fingerprints"]

K = 10  # tokens per k-gram (noise threshold)
W = 5  # winnowing window: shared runs of K + W - 1 = 14 tokens always match
MIN_FINGERPRINTS = 5  # a submission with fewer fingerprints than this is too small to judge
MAX_REGIONS = 25  # excerpt pairs kept per reported pair

STUB_LINES = {"# YOUR CODE HERE", "raise NotImplementedError()", "raise NotImplementedError"}
_MARKERS = ("### BEGIN SOLUTION", "### END SOLUTION")
_BUILTINS = frozenset(dir(builtins))
REFERENCE = "reference"


@dataclasses.dataclass
class Pair:
    a: str
    b: str
    similarity: float
    shared_lines: list[tuple[str, str]]  # (a's excerpt, b's excerpt), each headed by "# <cell>, lines i-j"
    shared_fingerprints: int = 0


# --------------------------------------------------------------------------- notebook code


def solution_code(notebook_path) -> dict[str, str]:
    """grade_id -> code of the notebook's solution cells, without nbgrader's markers and stub."""
    nb = nbformat.read(str(notebook_path), as_version=4)
    out = {}
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if cell.cell_type != "code" or not meta.get("solution"):
            continue
        lines = [
            line
            for line in cell.source.splitlines()
            if line.strip() not in STUB_LINES and not any(m in line for m in _MARKERS)
        ]
        out[str(meta.get("grade_id") or f"cell{i}")] = "\n".join(lines)
    return out


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


# --------------------------------------------------------------------------- tokens and fingerprints


def _tokens(code: str) -> list[tuple[str, int]]:
    """Normalised tokens of ``code`` as (text, source line), see the module docstring."""
    lines = [
        "" if (l.lstrip().startswith(("%", "!")) or l.strip() in STUB_LINES) else l for l in code.splitlines()
    ]  # IPython magics and shell escapes are not Python
    source = "\n".join(lines) + "\n"
    try:
        raw = [
            t
            for t in tokenize.generate_tokens(io.StringIO(source).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER)
        ]
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return _fallback_tokens(lines)
    out: list[tuple[str, int]] = []
    i, prev = 0, None
    while i < len(raw):
        t = raw[i]
        statement_start = prev is None or prev.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)
        if t.type == tokenize.STRING and statement_start:  # a docstring or a bare string statement
            j = i
            while j < len(raw) and raw[j].type == tokenize.STRING:
                j += 1
            if j == len(raw) or raw[j].type == tokenize.NEWLINE:
                i, prev = j + 1, (raw[j] if j < len(raw) else t)
                continue
        out.append((_normal(t.type, t.string, prev.string if prev else ""), t.start[0]))
        prev = t
        i += 1
    return out


def _normal(kind: int, text: str, before: str) -> str:
    if kind == tokenize.NAME:
        if keyword.iskeyword(text) or text in _BUILTINS or before == ".":
            return text
        return "V"
    if kind == tokenize.STRING:
        try:
            return repr(ast.literal_eval(text))
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return text
    if kind == tokenize.NEWLINE:
        return ";"
    if kind == tokenize.INDENT:
        return "{"
    if kind == tokenize.DEDENT:
        return "}"
    return text


_CRUDE = re.compile(r"[A-Za-z_]\w*|\d+(?:\.\d+)?|\"[^\"\n]*\"|'[^'\n]*'|\S")


def _fallback_tokens(lines: list[str]) -> list[tuple[str, int]]:
    """Code that does not tokenize (a syntax error): a crude tokenizer with the same renaming."""
    out, before = [], ""
    for n, line in enumerate(lines, 1):
        for m in _CRUDE.finditer(line):
            text = m.group()
            if text == "#":
                break
            if text[0].isalpha() or text[0] == "_":
                norm = text if (keyword.iskeyword(text) or text in _BUILTINS or before == ".") else "V"
            else:
                norm = text
            out.append((norm, n))
            before = text
        if line.strip():
            out.append((";", n))
    return out


def _hash(parts) -> int:
    return int.from_bytes(
        hashlib.blake2b("\x1f".join(parts).encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )


def _kgrams(tokens, k: int) -> list[tuple[int, int, int]]:
    """(hash, first line, last line) of every k-gram."""
    texts = [t for t, _ in tokens]
    return [(_hash(texts[i : i + k]), tokens[i][1], tokens[i + k - 1][1]) for i in range(len(tokens) - k + 1)]


def _winnow(grams, w: int) -> list[int]:
    """Indices of the grams winnowing selects: each window's minimum hash, rightmost on ties."""
    if not grams:
        return []
    w = min(w, len(grams))
    chosen: list[int] = []
    for start in range(len(grams) - w + 1):
        best = start
        for j in range(start, start + w):
            if grams[j][0] <= grams[best][0]:
                best = j
        if not chosen or chosen[-1] != best:
            chosen.append(best)
    return chosen


def fingerprints(code: str, k: int = K, w: int = W) -> dict[int, tuple[int, int]]:
    """hash -> (first line, last line) of the winnowed fingerprints of one piece of code."""
    grams = _kgrams(_tokens(code), k)
    out: dict[int, tuple[int, int]] = {}
    for i in _winnow(grams, w):
        out.setdefault(grams[i][0], grams[i][1:])
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


def _all_hashes(codes, k: int) -> set[int]:
    return {h for code in codes for h, _, _ in _kgrams(_tokens(code), k)}


# --------------------------------------------------------------------------- the reference


def _reference_functions(solution_nb: Path, repo_root: Path) -> list[tuple[str, str]]:
    """(label, source) of the library functions the notebook's checks compare with, plus the
    module-level helpers they call (two levels), read from ``repo_root/lib`` without importing."""
    from .preprocessors import expected_checks

    nb = nbformat.read(str(solution_nb), as_version=4)
    targets: list[tuple[str, str]] = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for name, _ in expected_checks(cell.source):
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
    base = _all_hashes(base_codes, k)

    reference = _Doc(REFERENCE)
    for nb_path in solution_nbs:
        for gid, code in solution_code(nb_path).items():
            reference.add(f"solution {nb_path.stem}:{gid}", code, base, k, w)
        for label, code in _reference_functions(nb_path, repo_root):
            reference.add(label, code, base, k, w)

    docs: list[_Doc] = []
    submitted = course_root / "submitted"
    for student_dir in sorted(p for p in submitted.iterdir() if p.is_dir()) if submitted.is_dir() else []:
        folder = student_dir / assignment
        if not folder.is_dir():
            continue
        doc = _Doc(student_dir.name)
        for nb in notebooks:
            path = folder / f"{nb}.ipynb"
            if not path.exists():
                continue
            try:
                cells = solution_code(path)
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


# --------------------------------------------------------------------------- output


def write_report(report: dict, out_dir) -> tuple[Path, Path]:
    """Write ``integrity_<assignment>.csv`` (one row per flagged pair) and a self-contained
    ``integrity_<assignment>.html`` with side-by-side excerpts (every piece of student text escaped)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "integrity" + (f"_{report['assignment']}" if report.get("assignment") else "")
    rows = [("reference", p) for p in report.get("reference_matches", [])] + [
        ("pair", p) for p in report.get("pairs", [])
    ]

    csv_path = out_dir / f"{stem}.csv"
    with open(csv_path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["kind", "a", "b", "similarity", "shared_fingerprints", "shared_regions"])
        for kind, p in rows:
            writer.writerow(
                [kind, _cell(p.a), _cell(p.b), f"{p.similarity:.3f}", p.shared_fingerprints, len(p.shared_lines)]
            )

    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{e(stem)}</title><style>",
        "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}",
        "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:left}",
        "pre{margin:0;white-space:pre-wrap;font-size:12px}.side td{width:50%}h3{margin-top:2em}",
        "</style></head><body>",
        f"<h1>Similarity report: {e(str(report.get('assignment', '')))}</h1>",
        f"<p>{len(report.get('students', []))} submissions compared; threshold "
        f"{float(report.get('threshold', 0)):.0%}; winnowing with k={e(str(report.get('k', K)))} tokens, "
        f"window {e(str(report.get('w', W)))}. Only solution-cell code counts, after removing everything "
        "in the released notebook; identifiers are renamed and comments dropped before comparing. "
        "A high score is a reason to read the excerpts, not proof of copying.</p>",
    ]
    if report.get("skipped"):
        parts.append("<p>Not compared:</p><ul>" + "".join(f"<li>{e(s)}</li>" for s in report["skipped"]) + "</ul>")
    parts.append(
        "<h2>Summary</h2><table><tr><th>kind</th><th>a</th><th>b</th><th>similarity</th>"
        "<th>shared fingerprints</th></tr>"
    )
    for n, (kind, p) in enumerate(rows):
        parts.append(
            f"<tr><td>{e(kind)}</td><td><a href='#m{n}'>{e(p.a)}</a></td><td>{e(p.b)}</td>"
            f"<td>{p.similarity:.0%}</td><td>{p.shared_fingerprints}</td></tr>"
        )
    if not rows:
        parts.append("<tr><td colspan='5'>nothing at or above the threshold</td></tr>")
    parts.append("</table>")
    for n, (_kind, p) in enumerate(rows):
        parts.append(f"<h3 id='m{n}'>{e(p.a)} &harr; {e(p.b)}: {p.similarity:.0%}</h3>")
        parts.append(f"<table class='side'><tr><th>{e(p.a)}</th><th>{e(p.b)}</th></tr>")
        for xa, xb in p.shared_lines:
            parts.append(f"<tr><td><pre>{e(xa)}</pre></td><td><pre>{e(xb)}</pre></td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    html_path = out_dir / f"{stem}.html"
    html_path.write_text("\n".join(parts), encoding="utf-8")
    return csv_path, html_path


def _cell(text: str) -> str:
    """Spreadsheets run cells that start with = + - @ as formulas."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
