"""Expected outputs of the visible checks, stored with the release so students never need the answer key.

Visible cases do not depend on the grader's secret seed, so their reference outputs can be computed once,
when the instructor runs ``llmcourse generate``, and shipped next to the notebooks as one data file::

    assignments/04_attention/attention.ipynb
    assignments/04_attention/expected_outputs.json     <- written by write_expected()

The file is keyed by check name; each case keeps its label, a sha256 of its encoded inputs and the
reference's output, in the typed-JSON encoding of :func:`llmcourse.checks.checker.encode` (the grader's
own encoding, so the comparison and the report are the ones the grader makes)::

    {"format": "llmcourse-expected-outputs", "version": 1, "about": "...",
     "checks": {"attention.softmax": [{"label": "...", "inputs": {"sha256": "...", "floats": [...]}, "expected": {"ok": ...}}, ...]}}

In a student's kernel :func:`llmcourse.checks.checker.check` uses the reference when it is importable
and otherwise :func:`load_expected`, which looks for the file in the kernel's working directory (the
notebook's folder) and the folders above it. The input hashes detect a stale file: if the installed
``llmcourse.checks`` builds a case differently from the one the file was made for, the student is told
so rather than shown a bogus failure. The file is a plain name, not a dotfile, so nbgrader's
generate, release, fetch and submit carry it like any other file of the assignment (and students see it).

Hidden cases are never written here: they are drawn from the grader's seed and computed only by the grader.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import nbformat
import numpy as np

from .checker import Case, Spec, decode_array, encode, expected_results, get_spec

FILENAME = "expected_outputs.json"
FORMAT = "llmcourse-expected-outputs"
VERSION = 2  # 2: float inputs fingerprinted within INPUT_RTOL, not hashed bit for bit
ABOUT = (
    "Expected outputs of this assignment's visible checks, written by `llmcourse generate` from the answer "
    "key. check() compares your functions with them when the answer key is not installed. Do not edit: "
    "the inputs of every case are hashed, and a changed file only breaks your own checks."
)
MAX_LEVELS_UP = 3  # notebook folder -> assignment folder -> course folder: far enough, never the whole disk


class ExpectedUnavailable(RuntimeError):
    """Neither the answer key nor a usable expected-outputs file is there to compare a check with."""


# --------------------------------------------------------------------------- writing (instructors)


def visible_checks(folder: str | os.PathLike) -> list[str]:
    """The check names called without ``hidden=True`` in the code cells of ``folder``'s notebooks, in order."""
    from ..grading.assignment import check_calls

    names: list[str] = []
    for path in sorted(Path(folder).glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "code":
                names += [c.name for c in check_calls(cell.source) if not c.hidden]
    return list(dict.fromkeys(names))


# How far a case's float inputs may move between two CPUs before the file counts as written for other
# inputs. Some visible cases are built with transcendental functions (numpy's ``N ** -alpha``, torch's
# ``log_softmax`` in float64), whose vectorised kernels round differently per CPU (numpy and ATen pick
# AVX-512, AVX2 or plain code at run time): measured on the committed files, the inputs of
# ``scaling.fit_power_law`` and ``decoding.beam_step`` differ in their last bit between an AVX-512 machine
# and an AVX2 one (relative 1e-16). A changed case (another seed, size or formula) moves its sums by far
# more than this.
INPUT_RTOL = 1e-9


def case_digest(case: Case) -> dict[str, Any]:
    """What the expected output was computed from: a sha256 of the case's label and encoded inputs with
    every float left out (types, shapes, ints, strings stay exact), and a fingerprint of the floats (their
    count, sum, sum of absolute values and an index-weighted sum, in float64), compared within
    :data:`INPUT_RTOL` by :func:`same_inputs`: the last bits of a float input may differ between CPUs."""
    data = {"label": case.label, "args": encode(case.args), "kwargs": encode(case.kwargs)}
    floats: list = []
    shape = _without_floats(data, floats)
    values = np.concatenate(floats) if floats else np.zeros(0)
    finite = np.isfinite(values)
    weights = 1.0 + np.arange(values.size) % 7  # order matters too: a permuted input is another case
    return {
        "sha256": hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest(),
        "floats": [
            int(values.size),
            int((~finite).sum()),  # inf and nan are kept exactly, by count
            math.fsum(values[finite]),
            math.fsum(np.abs(values[finite])),
            math.fsum(values[finite] * weights[finite]),
        ],
    }


def same_inputs(stored: Any, made: dict[str, Any]) -> bool:
    """Whether a stored :func:`case_digest` names the same case as ``made``, floats within INPUT_RTOL."""
    if not isinstance(stored, dict) or stored.get("sha256") != made["sha256"]:
        return False
    old, new = stored.get("floats"), made["floats"]
    if not isinstance(old, list) or len(old) != len(new) or old[:2] != new[:2]:
        return False
    scale = max(abs(new[3]), 1e-300) * INPUT_RTOL
    return all(isinstance(o, (int, float)) and abs(o - n) <= scale for o, n in zip(old[2:], new[2:]))


def _without_floats(x: Any, floats: list) -> Any:
    """An encoded value with its floats moved into ``floats`` (as float64 arrays): what is left must match
    exactly; the floats only closely."""
    if isinstance(x, float):
        floats.append(np.array([x]))
        return "float"
    if isinstance(x, list):
        return [_without_floats(v, floats) for v in x]
    if isinstance(x, dict) and "__array__" in x:
        a = decode_array(x["__array__"])
        if a.dtype.kind == "f":
            floats.append(a.astype(np.float64).ravel())
            return {"__array__": {"dtype": str(a.dtype), "shape": list(a.shape)}}
        return x
    if isinstance(x, dict):
        return {k: _without_floats(v, floats) for k, v in x.items()}
    return x


def expected_table(names: Iterable[str]) -> dict[str, Any]:
    """The file's content for the checks ``names``: every visible case's reference output."""
    checks = {}
    for name in sorted(set(names)):
        spec = get_spec(name)
        cases = spec.visible()
        outputs = expected_results(spec, cases)  # imports the answer key: instructors only
        checks[name] = [
            {"label": case.label, "inputs": case_digest(case), "expected": out} for case, out in zip(cases, outputs)
        ]
    return {"format": FORMAT, "version": VERSION, "about": ABOUT, "checks": checks}


def dumps(table: dict[str, Any]) -> str:
    """Stable text (sorted keys, one trailing newline), so regenerating an unchanged assignment changes nothing."""
    return json.dumps(table, indent=1, sort_keys=True) + "\n"


def write_expected(folder: str | os.PathLike, names: Iterable[str] | None = None) -> Path:
    """Write ``folder/expected_outputs.json`` for ``names`` (default: the visible checks of its notebooks)."""
    folder = Path(folder)
    path = folder / FILENAME
    path.write_text(dumps(expected_table(visible_checks(folder) if names is None else names)))
    return path


def table_differences(made: dict[str, Any], committed: dict[str, Any]) -> list[str]:
    """Where a committed file disagrees with a freshly made one; [] when they agree.

    Outputs are compared with each spec's tolerance, not byte for byte: the reference's floating point
    results may differ in the last bits between CPUs, and those differences are within what check() accepts.
    """
    from .checker import first_difference

    problems = []
    if {k: made.get(k) for k in ("format", "version")} != {k: committed.get(k) for k in ("format", "version")}:
        problems.append("format or version differ")
    made_checks, old_checks = made.get("checks", {}), committed.get("checks", {})
    if sorted(made_checks) != sorted(old_checks):
        problems.append(f"checks differ: {sorted(made_checks)} vs {sorted(old_checks)}")
    for name in sorted(set(made_checks) & set(old_checks)):
        spec = get_spec(name)
        new, old = made_checks[name], old_checks[name]
        if [c["label"] for c in new] != [c["label"] for c in old] or not all(
            same_inputs(o["inputs"], n["inputs"]) for n, o in zip(new, old)
        ):
            problems.append(f"{name}: the cases changed")
            continue
        for i, (n, o) in enumerate(zip(new, old)):
            diff = first_difference(n["expected"]["ok"], o["expected"]["ok"], spec.rtol, spec.atol)
            if diff:
                problems.append(f"{name} case {i + 1} ({n['label']}): {diff}")
    return problems


# --------------------------------------------------------------------------- reading (students)


def find_file(start: str | os.PathLike | None = None) -> Path | None:
    """``expected_outputs.json`` in ``start`` (default: the working directory) or a few folders above it."""
    folder = Path(start if start is not None else os.getcwd()).resolve()
    for candidate in [folder, *folder.parents][: MAX_LEVELS_UP + 1]:
        if (candidate / FILENAME).is_file():
            return candidate / FILENAME
    return None


def load_expected(spec: Spec, cases: list[Case], start: str | os.PathLike | None = None) -> list[dict]:
    """The stored reference outputs of ``spec``'s visible ``cases``, or :class:`ExpectedUnavailable`
    saying what is missing or stale. ``cases`` must be ``spec.visible()``."""
    module = spec.reference.split(":")[0]
    where = Path(start if start is not None else os.getcwd()).resolve()
    path = find_file(where)
    if path is None:
        raise ExpectedUnavailable(
            f"cannot check {spec.name}: the answer key ({module}) is not installed and there is no {FILENAME} "
            f"in {where} or the folders above it. The file ships with the assignment's release: run the "
            "notebook from the assignment's folder (fetch the assignment again if the file is gone)."
        )
    try:
        table = json.loads(path.read_text())
    except (OSError, ValueError):
        table = None
    if not isinstance(table, dict) or table.get("format") != FORMAT or not isinstance(table.get("checks"), dict):
        raise ExpectedUnavailable(f"cannot check {spec.name}: {path} is not a readable {FILENAME} file")
    if table.get("version") != VERSION:
        raise ExpectedUnavailable(
            f"cannot check {spec.name}: {path} has format version {table.get('version')!r}, this llmcourse "
            f"reads version {VERSION}: fetch the assignment's release again (or ask your instructor)"
        )
    entries = table["checks"].get(spec.name)
    if entries is None:
        raise ExpectedUnavailable(
            f"cannot check {spec.name}: {path} has no expected outputs for it (is this notebook in the "
            "folder of its own assignment?)"
        )
    stale = _stale(spec, cases, entries)
    if stale:
        raise ExpectedUnavailable(
            f"cannot check {spec.name}: {path} is stale, {stale}. It was written for another version of "
            "the course's checks: fetch the assignment's release again (or ask your instructor)."
        )
    return [entry["expected"] for entry in entries]


def _stale(spec: Spec, cases: list[Case], entries: Any) -> str:
    """Why the stored entries do not belong to these cases ('' when they do)."""
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and isinstance(e.get("expected"), dict) and "ok" in e["expected"] for e in entries
    ):
        return "its entry is malformed"
    if len(entries) != len(cases):
        return f"it has {len(entries)} cases and the check now has {len(cases)}"
    for i, (case, entry) in enumerate(zip(cases, entries)):
        if entry.get("label") != case.label or not same_inputs(entry.get("inputs"), case_digest(case)):
            return f"case {i + 1} ({case.label}) has changed since the file was written"
    return ""
