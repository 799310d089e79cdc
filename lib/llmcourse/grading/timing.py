"""The grader's clock: a part graded for speed is timed from outside the kernel.

A speed measured inside a grading kernel is only what the kernel says. Three ways to fake it, each seen:
a trainer wrapped in ``functools.cache`` (the check timed it twice on the same text: the second run was
free), a patched ``llmcourse.checks.tokenization.speedup``, and a forged check record. So, for a test cell
whose check has a :class:`~llmcourse.checks.checker.Timing` (01 part 7), the grader (this process):

1. draws inputs of its own (``Timing.probe``) from the operating system's randomness: nothing in the
   kernel, not even the grading seed, tells what they will be, so nothing can be computed in advance;
2. sends one cell that calls the student's function on them, ``probe(train_merges_incremental, ...)``,
   and reads *its* clock before sending and after the kernel answers: the student's seconds;
3. checks the output against the reference on the same inputs: only real work gives the right merges;
4. runs the baseline on the same inputs right away, in this process, and counts its CPU seconds
   (``Timing.baseline``): a kernel that keeps every core busy slows the baseline's wall time, not its CPU
   time. The baseline stops once it has run ``bar`` times the student's time: that proves the ratio;
5. keeps ``baseline / student`` capped at ``Timing.bar``; a close call (within 2x of the bar) is measured
   again on new inputs, up to three rounds, so a busy machine does not fail a fast function.

The inputs of each round and the reference's output on them are drawn and computed once per grading process
and reused for every student it grades. That is safe because a kernel learns them only when they arrive and
no kernel can tell another: each has its own empty network and private files, and the timed cell's outputs
are not kept. Each round of one kernel still gets new ones. The baseline itself is never reused: CPU time
on this kind of shared machine still grows with load (seen: 0.39 s and 1.05 s for the same work, minutes
apart, in one CI run), so the baseline is timed next to the student's call, under the same load.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable
from typing import Any

from ..checks.checker import PROBE_MIME, Spec, encode, first_difference, get_spec
from .assignment import check_calls

ROUNDS = 3
# where TrustedChecks finds the measurements: resources[RESOURCE_KEY][cell index][check name]
RESOURCE_KEY = "llmcourse_timing"


# check name -> the inputs of round 1, 2, 3 as (args, the reference's encoded output)
_INPUTS: dict[str, list[tuple[tuple, Any]]] = {}


@dataclasses.dataclass(frozen=True)
class Measurement:
    ratio: float  # capped at the bar, rounded down to 0.1; 0 when the call failed
    line: str  # for the report (nothing about the grader's inputs)


def timed_checks(source: str) -> list[tuple[Spec, str]]:
    """(spec, the name the test cell checks) of every check in ``source`` graded for speed, once each."""
    found: dict[str, tuple[Spec, str]] = {}
    for call in check_calls(source):
        try:
            spec = get_spec(call.name)
        except ValueError:
            continue  # an unknown check fails on its own, in TrustedChecks
        if spec.timing is not None and call.target is not None and call.name not in found:
            found[call.name] = (spec, call.target)
    return list(found.values())


def probe_source(target: str, args: tuple) -> str:
    """The cell the grader sends: one call of the student's function, its output emitted."""
    return "from llmcourse.checks.checker import probe as _llmcourse_probe\n" + (
        f"_llmcourse_probe({target}, {', '.join(repr(a) for a in args)})"
    )


def probe_output(outputs: list) -> tuple[Any, str]:
    """(the probe's encoded output or None, why not) from the outputs of the probe cell."""
    for out in outputs:
        if out.get("output_type") == "error":
            return None, f"it raised {out.get('ename', 'an error')}"
    found = [
        out["data"][PROBE_MIME]
        for out in outputs
        if out.get("output_type") == "display_data" and PROBE_MIME in (out.get("data") or {})
    ]
    if len(found) != 1 or not isinstance(found[0], dict) or "ok" not in found[0]:
        return None, "it gave no output the grader could read"
    return found[0]["ok"], ""


def round_inputs(spec: Spec, i: int, rng: random.Random) -> tuple[tuple, Any]:
    """Round ``i``'s (args, the reference's encoded output on them), made once per grading process."""
    drawn = _INPUTS.setdefault(spec.name, [])
    while len(drawn) <= i:
        args = spec.timing.probe(rng)
        drawn.append((args, encode(spec.reference_fn()(*args))))
    return drawn[i]


def measure(spec: Spec, run: Callable[[tuple], tuple[list, float]], rng: random.Random | None = None) -> Measurement:
    """Time ``spec``'s graded function with the grader's clock. ``run(args)`` sends the probe cell for
    ``args`` and returns (its outputs, wall seconds measured around it in this process)."""
    timing = spec.timing
    rng = rng or random.SystemRandom()
    what = f"speed, measured by the grader on a text of its own: {{}} (at least {timing.bar:g} needed)"
    ratio = 0.0
    for i in range(ROUNDS):
        args, expected = round_inputs(spec, i, rng)
        outputs, seconds = run(args)
        got, why = probe_output(outputs)
        if got is None:
            return Measurement(0.0, what.format(f"not measured: {why}"))
        if first_difference(expected, got, spec.rtol, spec.atol):
            return Measurement(0.0, what.format("not measured: the output differs from the reference's"))
        baseline = timing.baseline(args, timing.bar * seconds)
        if baseline is None:  # the baseline had not finished after bar times the student's time
            ratio = timing.bar
            break
        ratio = max(ratio, baseline / max(seconds, 1e-9))
        if ratio < timing.bar / 2:
            break  # clearly slow: measuring again would not change the verdict
    ratio = min(timing.bar, math.floor(ratio * 10) / 10)
    return Measurement(ratio, what.format(f"{ratio:g} times as fast as the baseline"))
