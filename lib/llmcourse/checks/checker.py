"""Compare a student's function with the reference implementation.

Every graded test cell in the course calls one function::

    from llmcourse.checks import check
    check("tokenization.merge", merge)                # visible cases
    check("tokenization.merge", merge, hidden=True)   # hidden cases (only in the grader's copy)

What ``check`` does depends on where it runs:

* **While you work** (a normal kernel) it runs your function on the check's cases, runs the
  reference on the same cases, and raises :class:`CheckFailed` with a readable report (which case,
  expected vs got, where they first differ) when they disagree. Students do not need the answer key:
  when the reference is not importable, visible cases are compared with the expected outputs stored
  with the release (``expected_outputs.json``, see :mod:`llmcourse.checks.expected`), with the same
  report; hidden cases then run only when the notebook is graded.
* **While grading** (``LLMCOURSE_GRADING=1``, set by the grader's kernel) the reference is not even
  importable. ``check`` only runs your function and *emits* a record of its outputs. The grader
  process, which the notebook cannot touch, recomputes the reference on its own copy of the inputs
  and decides. Monkeypatching this module, ``torch.allclose`` or ``numpy.testing`` therefore changes
  nothing, and an object whose ``__eq__`` always says True cannot survive :func:`encode`, which turns
  every output into plain JSON data before anything is compared. For a part that asks students to
  write a built-in themselves (``Spec.forbidden``), the record also says which PyTorch operators and
  Python calls the function ran (:mod:`llmcourse.checks.dispatch`), whatever their spelling; the grader
  judges that too, and a student's own ``check`` warns from it.

A check is described by a :class:`Spec` in ``llmcourse/checks/<topic>.py``: where the reference lives,
how to build visible and hidden cases, and the tolerance. Hidden random cases are drawn from a seed
that only the grader knows (``LLMCOURSE_GRADING_SEED``), so they cannot be precomputed.

A part graded for speed as well (01 part 7) has a :class:`Timing`. A speed measured inside a kernel is
only a claim (the kernel can patch the clock, forge the record, or cache answers between the runs it
times), so when graded, the grader measures it with its own clock on inputs of its own
(:mod:`llmcourse.grading.timing`) and the kernel's figure is replaced by the grader's.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import importlib
import json
import math
import os
import re
import traceback
import zlib
from collections.abc import Callable
from typing import Any

MIME = "application/vnd.llmcourse.check+json"
PROBE_MIME = "application/vnd.llmcourse.probe+json"  # one timed call's output (see Timing)
RECORD_VERSION = 1
MAX_RECORD_BYTES = 8_000_000  # a runaway output must not flood the notebook or the grader


class CheckFailed(AssertionError):
    """Raised in a normal kernel when your function disagrees with the reference."""


class UnsupportedOutput(TypeError):
    """The function returned something that cannot be compared (not plain data, array or tensor)."""


@dataclasses.dataclass(frozen=True)
class Case:
    """One call: ``fn(*args, **kwargs)``. ``label`` describes it without revealing it."""

    args: tuple
    label: str
    kwargs: dict = dataclasses.field(default_factory=dict)

    def call_repr(self, fn_name: str, limit: int = 300, first: str | None = None) -> str:
        """``fn_name(args..., key=value...)``; ``first`` is a name put before the arguments."""
        parts = [first] if first else []
        parts += [_short_repr(a, limit) for a in self.args]
        parts += [f"{k}={_short_repr(v, limit)}" for k, v in self.kwargs.items()]
        return f"{fn_name}({', '.join(parts)})"


@dataclasses.dataclass(frozen=True)
class Timing:
    """How a part graded for speed is timed by the grader, outside the kernel (:mod:`llmcourse.grading.timing`).

    key:      the key of a timed case's output (a dict) that holds the speed, as a ratio to the baseline.
              When graded, the student's value there is replaced by the grader's measurement and the
              reference's by ``bar``; the other keys (e.g. the merges) are compared as usual.
    bar:      the ratio the part asks for; a measurement is capped at it.
    probe:    ``(random.Random) -> args``: a fresh call of the graded function itself on inputs drawn by
              the grader, so the kernel can neither know them in advance nor have cached the answer.
    baseline: ``(args, budget_s) -> seconds``: the CPU seconds a trusted baseline takes on those args in
              the grader's own process, or None once it has used ``budget_s`` without finishing. CPU
              time, not wall time: a kernel that keeps the cores busy cannot slow the baseline down.
    """

    key: str
    bar: float
    probe: Callable[[Any], tuple]
    baseline: Callable[[tuple, float], float | None]


@dataclasses.dataclass(frozen=True)
class Spec:
    """How to check one graded function or class.

    name:      ``"<topic>.<name>"``, the name test cells pass to :func:`check` (rule in ``checks/__init__.py``).
    reference: ``"module:function"``, imported lazily and never inside a grading kernel.
    visible:   () -> cases the student sees.
    hidden:    (seed) -> fixed edge cases plus random cases drawn from ``seed``.
    rtol/atol: tolerance for floating point outputs (0 means exact).
    adapter:   ``adapter(graded, *case.args, **case.kwargs) -> output``: how a graded class is used on
               a case (build it, load the case's weights, run it), a function with an explicit signature
               so that a report shows the call that happened. None calls ``graded(*args, **kwargs)``.
               Used identically for the student's object and the reference.
    forbidden: dotted paths of the library calls this part asks students to write themselves
               (``"torch.nn.functional.softmax"``, ``"torch.Tensor.softmax"`` for the method); see
               :mod:`llmcourse.checks.forbidden`. :func:`check` then also records what the function ran
               (:mod:`llmcourse.checks.dispatch`), and the grader judges the record from these paths.
    call:      the older form of ``adapter``, ``(graded, case) -> output``; prefer ``adapter``.
    timing:    a part graded for speed too: how the grader times it (:class:`Timing`).
    """

    name: str
    reference: str
    visible: Callable[[], list[Case]]
    hidden: Callable[[int], list[Case]]
    rtol: float = 0.0
    atol: float = 0.0
    call: Callable[[Callable, Case], Any] | None = None
    adapter: Callable[..., Any] | None = None
    forbidden: tuple[str, ...] = ()
    timing: Timing | None = None

    def apply(self, fn: Callable, case: Case) -> Any:
        """Run ``fn`` on a private copy of the case (mutation cannot leak between cases)."""
        case = Case(copy.deepcopy(case.args), case.label, copy.deepcopy(case.kwargs))
        if self.adapter is not None:
            return self.adapter(fn, *case.args, **case.kwargs)
        return self.call(fn, case) if self.call else fn(*case.args, **case.kwargs)

    def call_repr(self, case: Case, limit: int = 300) -> str:
        """The call :meth:`apply` makes, as text: ``merge([1, 2], (1, 2), 256)`` or, through an
        adapter, ``run_layernorm(LayerNorm, ndim=8, x=tensor(...), ...)``."""
        if self.adapter is None:
            return case.call_repr(self.function_name, limit)
        return case.call_repr(self.adapter.__name__, limit, first=self.function_name)

    @property
    def function_name(self) -> str:
        return self.reference.split(":")[1]

    @property
    def watched(self) -> bool:
        """Whether :func:`check` records the operators and calls the function ran (:mod:`.dispatch`): a part
        with forbidden calls, unless it is graded for speed (a profile would skew the kernel's own timing;
        the grader times it on its own, and the source is read as for every part)."""
        return bool(self.forbidden) and self.timing is None

    def cases(self, hidden: bool, seed: int) -> list[Case]:
        return self.hidden(seed) if hidden else self.visible()

    def reference_fn(self) -> Callable:
        module, attr = self.reference.split(":")
        return getattr(importlib.import_module(module), attr)


# --------------------------------------------------------------------------- registry


def get_spec(name: str) -> Spec:
    """``"tokenization.merge"`` -> the Spec registered in ``llmcourse.checks.tokenization``."""
    if not isinstance(name, str) or "." not in name:
        raise ValueError(f"check names look like 'topic.function', got {name!r}")
    topic = name.split(".")[0]
    try:
        module = importlib.import_module(f"llmcourse.checks.{topic}")
    except ModuleNotFoundError as e:
        raise ValueError(f"unknown check topic {topic!r} (no llmcourse.checks.{topic})") from e
    specs = {s.name: s for s in module.SPECS}
    if name not in specs:
        raise ValueError(f"unknown check {name!r}; known: {sorted(specs)}")
    return specs[name]


def seeded_rng_seed(name: str, seed: int) -> int:
    """A per-check seed, stable across processes (``hash()`` is salted, crc32 is not)."""
    return (seed * 1_000_003 + zlib.crc32(name.encode())) % (2**32)


def grading_mode() -> bool:
    return os.environ.get("LLMCOURSE_GRADING") == "1"


def grading_seed() -> int:
    return int(os.environ.get("LLMCOURSE_GRADING_SEED", "0"))


# --------------------------------------------------------------------------- encoding


def encode(x: Any, _depth: int = 0) -> Any:
    """Turn an output into plain JSON data with exact types, or raise :class:`UnsupportedOutput`.

    Subclasses are reduced to their base value (``int.__int__``, ``str.__str__``) so that overridden
    ``__eq__``/``__int__`` methods play no part. Arrays and tensors keep dtype and shape.
    """
    if _depth > 50:
        raise UnsupportedOutput("output is nested more than 50 levels deep")
    if x is None or type(x) is bool:
        return x
    if isinstance(x, int) and not isinstance(x, bool):
        return int.__int__(x)
    if isinstance(x, float):
        v = float.__float__(x)
        return v if math.isfinite(v) else {"__float__": repr(v)}
    if isinstance(x, str):
        return str.__str__(x)
    if isinstance(x, (bytes, bytearray)):
        return {"__bytes__": bytes(x).hex()}
    if isinstance(x, tuple):
        return {"__tuple__": [encode(v, _depth + 1) for v in tuple.__iter__(x)]}
    if isinstance(x, list):
        return [encode(v, _depth + 1) for v in list.__iter__(x)]
    if isinstance(x, dict):
        items = [[encode(k, _depth + 1), encode(v, _depth + 1)] for k, v in dict.items(x)]
        items.sort(key=lambda kv: json.dumps(kv[0], sort_keys=True))
        return {"__dict__": items}
    if isinstance(x, (set, frozenset)):
        vals = [encode(v, _depth + 1) for v in x]
        vals.sort(key=lambda v: json.dumps(v, sort_keys=True))
        return {"__set__": vals}
    array = _as_numpy(x)
    if array is not None:
        return {
            "__array__": {
                "dtype": str(array.dtype),
                "shape": list(array.shape),
                "b64": base64.b64encode(array.tobytes()).decode("ascii"),
            }
        }
    raise UnsupportedOutput(
        f"returned a {type(x).__module__}.{type(x).__qualname__}; return plain data "
        "(int, float, str, bytes, list, tuple, dict, set), a numpy array or a torch tensor"
    )


def _as_numpy(x: Any):
    """numpy arrays, numpy scalars and torch tensors -> a C-contiguous numpy array; else None."""
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy is a pinned dependency
        return None
    if type(x).__module__ == "torch" and type(x).__name__ in ("Tensor", "Parameter"):
        import torch

        t = torch.Tensor.detach(x).cpu()
        if t.dtype == torch.bfloat16:
            t = t.float()
        return np.ascontiguousarray(t.numpy())
    if isinstance(x, (np.ndarray, np.generic)):
        if x.dtype == object:
            return None
        return np.ascontiguousarray(np.asarray(x))
    return None


def decode_array(d: dict):
    import numpy as np

    return np.frombuffer(base64.b64decode(d["b64"]), dtype=np.dtype(d["dtype"])).reshape(d["shape"])


# --------------------------------------------------------------------------- comparison


def describe(v: Any) -> str:
    """A short description of an encoded value's type and size, safe to show for hidden cases."""
    if isinstance(v, bool) or v is None:
        return type(v).__name__
    if isinstance(v, (int, float, str)):
        return f"{type(v).__name__}" + (f" of length {len(v)}" if isinstance(v, str) else "")
    if isinstance(v, list):
        return f"list of length {len(v)}"
    tag, body = next(iter(v.items()))
    if tag == "__array__":
        return f"array of shape {tuple(body['shape'])} and dtype {body['dtype']}"
    if tag == "__float__":
        return "float"
    if tag == "__bytes__":
        return f"bytes of length {len(body) // 2}"
    name = {"__tuple__": "tuple", "__dict__": "dict", "__set__": "set"}[tag]
    return f"{name} of length {len(body)}"


def first_difference(
    expected: Any, got: Any, rtol: float = 0.0, atol: float = 0.0, path: str = "output", show_values: bool = True
) -> str | None:
    """None when equal (within tolerance), else a sentence saying where and how they differ."""
    if _tag(expected) != _tag(got):
        return f"{path}: expected {describe(expected)}, got {describe(got)}"
    kind = _tag(expected)
    if kind in ("list", "__tuple__", "__set__"):
        e_items = expected if kind == "list" else expected[kind]
        g_items = got if kind == "list" else got[kind]
        for i, (e, g) in enumerate(zip(e_items, g_items)):
            diff = first_difference(e, g, rtol, atol, f"{path}[{i}]", show_values)
            if diff:
                return diff + (f" (lengths {len(e_items)} vs {len(g_items)})" if len(e_items) != len(g_items) else "")
        if len(e_items) != len(g_items):
            msg = f"{path}: expected length {len(e_items)}, got length {len(g_items)}"
            if show_values:
                msg += f"; expected {_plain(expected)}, got {_plain(got)}"
            return msg
        return None
    if kind == "__dict__":
        e_map = {json.dumps(k, sort_keys=True): (k, v) for k, v in expected[kind]}
        g_map = {json.dumps(k, sort_keys=True): (k, v) for k, v in got[kind]}
        missing = [e_map[k][0] for k in e_map if k not in g_map]
        extra = [g_map[k][0] for k in g_map if k not in e_map]
        if missing or extra:
            msg = f"{path}: dict keys differ ({len(missing)} missing, {len(extra)} unexpected"
            if show_values:
                msg += f"; e.g. missing {_plain(missing[0])}" if missing else f"; e.g. unexpected {_plain(extra[0])}"
            return msg + ")"
        for k, (key, e) in e_map.items():
            diff = first_difference(
                e,
                g_map[k][1],
                rtol,
                atol,
                f"{path}[{_plain(key)}]" if show_values else f"{path}[some key]",
                show_values,
            )
            if diff:
                return diff
        return None
    if kind == "__array__":
        return _array_difference(expected[kind], got[kind], rtol, atol, path, show_values)
    if kind == "float":
        if math.isclose(expected, got, rel_tol=rtol, abs_tol=atol):
            return None
        return f"{path}: " + (
            f"expected {expected!r}, got {got!r}" if show_values else f"floats differ by {abs(expected - got):.3g}"
        )
    if expected == got:
        return None
    return f"{path}: " + (f"expected {_plain(expected)}, got {_plain(got)}" if show_values else "values differ")


def _array_difference(e: dict, g: dict, rtol, atol, path, show_values) -> str | None:
    import numpy as np

    if e["shape"] != g["shape"]:
        return f"{path}: expected shape {tuple(e['shape'])}, got {tuple(g['shape'])}"
    if e["dtype"] != g["dtype"]:
        return f"{path}: expected dtype {e['dtype']}, got {g['dtype']}"
    a, b = decode_array(e), decode_array(g)
    if a.dtype.kind in "fc":
        close = np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=True)
    else:
        close = a == b
    if close.all():
        return None
    bad = np.argwhere(~close)
    idx = tuple(int(i) for i in bad[0])
    with np.errstate(invalid="ignore"):
        max_abs = (
            float(np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64))))
            if a.dtype.kind in "fciu"
            else float("nan")
        )
    # the essential first (expected, got, where), then the counts: a narrow dialog shows the start of a line
    where = f"at index {idx}"
    msg = f"{path}: expected {a[idx]!s}, got {b[idx]!s} {where}" if show_values else f"{path}: differs {where}"
    msg += f" ({len(bad)} of {a.size} elements differ; max abs diff {max_abs:.3g})"
    if a.dtype.kind in "fc" and bool(np.isnan(b[~close]).any()):
        msg += "; some are NaN where numbers were expected"
    return msg


def _tag(v: Any) -> str:
    if isinstance(v, dict):
        return next(iter(v))
    return type(v).__name__


def _plain(v: Any, limit: int = 200) -> str:
    """Encoded value -> readable Python-like text."""

    def back(x):
        if isinstance(x, list):
            return [back(i) for i in x]
        if isinstance(x, dict):
            tag, body = next(iter(x.items()))
            if tag == "__tuple__":
                return tuple(back(i) for i in body)
            if tag == "__bytes__":
                return bytes.fromhex(body)
            if tag == "__dict__":
                return {_hashable(back(k)): back(val) for k, val in body}
            if tag == "__set__":
                return {_hashable(back(i)) for i in body}
            if tag == "__float__":
                return float(body)
            if tag == "__array__":
                return decode_array(body)
        return x

    return _short_repr(back(v), limit)


def _hashable(x):
    return repr(x) if isinstance(x, (list, dict, set)) else x


def _short_repr(x: Any, limit: int = 300) -> str:
    if isinstance(x, (dict, list, set, tuple)) and len(x) > 24:
        return f"<{type(x).__name__} of {len(x)} items>"
    r = re.sub(r"\n\s*", " ", repr(x))  # a tensor's repr spans lines; a str's repr never has a real newline
    return r if len(r) <= limit else r[: limit - 20] + f"... ({len(r)} chars)"


# --------------------------------------------------------------------------- running cases


def run_cases(fn: Callable, cases: list[Case], spec: Spec | None = None) -> list[dict]:
    """Call ``fn`` on every case (on deep copies, so mutation cannot leak between cases)."""
    results = []
    for case in cases:
        try:
            out = spec.apply(fn, case) if spec else fn(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
            results.append({"ok": encode(out)})
        except Exception as e:  # the student's error is data for the report, not a crash
            results.append({"error": {"type": type(e).__name__, "message": str(e)[:500], "where": _student_frame(e)}})
    return results


def _student_frame(e: BaseException) -> str:
    """The innermost frame outside the lib, e.g. 'line 7, in merge', to point the student at it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "llmcourse" not in f.filename]
    return f"line {frames[-1].lineno}, in {frames[-1].name}" if frames else ""


@dataclasses.dataclass
class Outcome:
    name: str
    hidden: bool
    passed: bool
    n_cases: int
    failures: list[str]

    def report(self) -> str:
        kind = "hidden" if self.hidden else "visible"
        if self.passed:
            return f"PASS {self.name}: all {self.n_cases} {kind} cases match the reference"
        if not self.n_cases:
            return f"FAIL {self.name} ({kind} cases): {self.failures[0]}"
        head = f"FAIL {self.name}: {len(self.failures)} of {self.n_cases} {kind} cases differ from the reference"
        shown = self.failures[:3]
        more = [f"  ... and {len(self.failures) - 3} more"] if len(self.failures) > 3 else []
        return "\n".join([head] + [f"  - {f}" for f in shown] + more)


def compare_results(spec: Spec, hidden: bool, cases: list[Case], expected: list[dict], got: list[dict]) -> Outcome:
    """The one comparison used both in a student's kernel and in the trusted grader."""
    failures = []
    if len(got) != len(cases):
        failures.append(f"expected results for {len(cases)} cases, the record has {len(got)}")
        return Outcome(spec.name, hidden, False, len(cases), failures)
    for i, (case, exp, res) in enumerate(zip(cases, expected, got)):
        # visible: the call the student can rerun, then (on a line of its own, below) what differs
        where = (
            f"hidden case {i + 1} ({case.label})" if hidden else f"case {i + 1} ({case.label}): {spec.call_repr(case)}"
        )
        sep = ": " if hidden else "\n    "  # report() indents a failure by 2 + "- "
        if not isinstance(res, dict) or not ({"ok"} == set(res) or {"error"} == set(res)):
            failures.append(f"{where}{sep}malformed result")
            continue
        if "error" in res:
            err = res["error"] if isinstance(res["error"], dict) else {}
            etype, msg, loc = str(err.get("type", "Exception")), str(err.get("message", "")), str(err.get("where", ""))
            text = f"{where}{sep}raised {etype}" + (f" ({loc})" if loc else "")
            if not hidden and msg:
                text += f": {msg}"
            failures.append(text)
            continue
        diff = first_difference(exp["ok"], res["ok"], spec.rtol, spec.atol, show_values=not hidden)
        if diff:
            failures.append(f"{where}{sep}{diff}")
    return Outcome(spec.name, hidden, not failures, len(cases), failures)


def expected_results(spec: Spec, cases: list[Case]) -> list[dict]:
    """Reference outputs. An error here is a bug in the course, so it propagates loudly."""
    ref = spec.reference_fn()
    return [{"ok": encode(spec.apply(ref, c))} for c in cases]


# (check name, hidden, seed) -> the reference's outputs, kept by a grading process for the next student: the
# grader computed them for every student (a fifth of a second per student on 01, more where references
# train). Only a pass uses them: a failure is confirmed against a fresh computation, so a reference output
# that varies (01 part 7's speed ratio, measured on a loaded machine) can never fail a student for good.
_EXPECTED: dict[tuple[str, bool, int], list[dict]] = {}


def verify_record(
    record: Any,
    name: str,
    hidden: bool,
    seed: int,
    near: str | os.PathLike | None = None,
    measured: float | None = None,
) -> Outcome:
    """Trusted side: check a record emitted by a (possibly hostile) kernel.

    ``near``: where a student's own self-check (``llmcourse validate``) may find the release's expected
    outputs when the answer key is not installed. The grader never passes it: a submission folder could
    hold a forged file, so grading always computes the reference.
    ``measured``: for a part with a :class:`Timing`, the speed the grader measured with its own clock; it
    replaces the figure in the record (None: the record's own figure stands, as on a student's machine).
    """
    spec = get_spec(name)
    cases = spec.cases(hidden, seed)
    if not isinstance(record, dict) or record.get("check") != name or record.get("hidden") != hidden:
        return Outcome(name, hidden, False, len(cases), ["the check's record is missing or malformed"])
    results = record.get("results")
    if not isinstance(results, list):
        return Outcome(name, hidden, False, len(cases), ["the check's record is malformed"])
    timed = spec.timing is not None and measured is not None

    def compare(expected: list[dict]) -> Outcome:
        if not timed:
            return compare_results(spec, hidden, cases, expected, results)
        return compare_results(
            spec,
            hidden,
            cases,
            [_with_speed(e, spec.timing.key, spec.timing.bar) for e in expected],
            [_with_speed(r, spec.timing.key, float(measured)) for r in results],
        )

    if near is None:
        key = (name, hidden, seed)
        if key in _EXPECTED:  # the fast path: a pass against the reference's outputs computed earlier
            outcome = compare(_EXPECTED[key])
            if outcome.passed:
                return outcome
        expected = expected_results(spec, cases)  # a failure is always confirmed against a fresh computation
        _EXPECTED[key] = expected
        return compare(expected)
    from .expected import ExpectedUnavailable

    try:
        expected = reference_outputs(spec, hidden, cases, near)
    except ExpectedUnavailable as e:
        return Outcome(name, hidden, False, 0, [str(e)])
    if expected is None:
        return Outcome(name, hidden, False, 0, [HIDDEN_ONLY_WHEN_GRADED])
    return compare(expected)


def _with_speed(result: Any, key: str, value: float) -> Any:
    """A case's result (``{"ok": encoded output}``) with the speed under ``key`` set to ``value``, where
    the output is a dict that has that key (a timed case); any other result is returned as it is."""
    if not isinstance(result, dict) or not isinstance(result.get("ok"), dict):
        return result
    items = result["ok"].get("__dict__")
    if not isinstance(items, list) or not any(isinstance(kv, list) and kv[:1] == [key] for kv in items):
        return result
    return {"ok": {"__dict__": [[key, value] if isinstance(kv, list) and kv[:1] == [key] else kv for kv in items]}}


HIDDEN_ONLY_WHEN_GRADED = "hidden cases run only when the notebook is graded (the answer key is not installed here)"


def reference_outputs(spec: Spec, hidden: bool, cases: list[Case], near: str | os.PathLike | None = None):
    """Expected outputs outside grading: the reference's when it is importable, else (visible cases) the
    release's stored ones, found in ``near`` (default: the working directory) or a folder above it.

    Returns None for hidden cases without the reference; raises
    :class:`llmcourse.checks.expected.ExpectedUnavailable` when no usable stored outputs are found.
    """
    try:
        spec.reference_fn()
    except ImportError:  # a student's install: the answer key is not there (or blocked)
        if hidden:
            return None
        from .expected import load_expected

        return load_expected(spec, cases, near)
    return expected_results(spec, cases)


# --------------------------------------------------------------------------- the notebook API


def check(name: str, fn: Callable, hidden: bool = False) -> None:
    """Check ``fn`` against the reference ``name`` (see the module docstring).

    Raises CheckFailed (outside grading) when any case differs, with a report of the first few, and
    :class:`llmcourse.checks.expected.ExpectedUnavailable` when neither the answer key nor the release's
    expected outputs are there to compare with.
    """
    if not callable(fn):
        raise TypeError(f"check({name!r}, ...) needs your function as its second argument, got {type(fn).__name__}")
    spec = get_spec(name)
    seed = grading_seed()
    cases = spec.cases(hidden, seed)
    ran: dict[str, Any] = {}
    if spec.watched:  # what the function really ran, whatever its spelling (dispatch.py)
        from .dispatch import Recorder

        with Recorder() as recorder:
            results = run_cases(fn, cases, spec)
        ran = recorder.record()
    else:
        results = run_cases(fn, cases, spec)
    record = {"v": RECORD_VERSION, "check": name, "hidden": bool(hidden), "results": results, **ran}
    payload = json.dumps(record)
    if len(payload) > MAX_RECORD_BYTES:
        record["results"] = [{"error": {"type": "OutputTooLarge", "message": "", "where": ""}}] * len(cases)
    _emit(record)
    if grading_mode():
        return  # the grader decides; nothing computed here is trusted
    expected = reference_outputs(spec, hidden, cases)
    if expected is None:
        print(f"SKIP {name}: {HIDDEN_ONLY_WHEN_GRADED}")
        return
    outcome = compare_results(spec, hidden, cases, expected, results)
    warning = _forbidden_warning(spec, fn, record)
    if not outcome.passed:
        raise CheckFailed(outcome.report() + (f"\n{warning}" if warning else ""))
    print(outcome.report())
    if warning:
        print(warning)


def _forbidden_warning(spec: Spec, fn: Callable, record: dict | None = None) -> str:
    """Tell the student, while they work, that the answer uses a call the part asks them to write: in its
    source, or in the ``record`` of what it ran (the same record the grader judges).

    Only a hint: the trusted grader runs its own scan (:func:`llmcourse.checks.forbidden.forbidden_uses`).
    """
    if not spec.forbidden:
        return ""
    from .forbidden import forbidden_report, runtime_report

    reports = []
    for make in (
        lambda: forbidden_report(spec.name, spec.forbidden, fn),
        lambda: runtime_report(spec.name, spec.forbidden, record) if spec.watched and record else "",
    ):
        try:
            reports.append(make())
        except Exception:  # noqa: BLE001 - a hint must never break the check itself (code without source...)
            pass
    return "\n".join(r for r in reports if r)


def probe(fn: Callable, *args: Any) -> None:
    """One call the grader times from outside (:class:`Timing`): ``fn(*args)``, its output emitted encoded.

    The grader sends this as a cell of its own and reads its clock around it; nothing here is trusted
    except the output, which must equal the reference's on inputs the kernel could not know in advance."""
    out = encode(fn(*args))
    from IPython.display import display

    display({PROBE_MIME: {"ok": out}, "text/plain": ""}, raw=True)


def _emit(record: dict) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:  # plain Python: nothing to emit to
        return
    if get_ipython() is not None:
        display({MIME: record, "text/plain": ""}, raw=True)
