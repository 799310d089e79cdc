"""The grader's clock (``llmcourse.grading.timing``) in this process, without a kernel: ``measure`` gets a
``run`` that calls a trainer here and reads the clock around it, as GradingExecute does around a cell.

The trainers are 01 part 7's: the answer key's incremental trainer (fast), and part 3's algorithm written
out here (recount every pair after every merge: the baseline itself, so about 1x). The end-to-end version,
through ``llmcourse autograde`` and its sandboxed kernel, is ``test_incremental_training.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import random
import time

import pytest
from llmcourse.checks import tokenization as tk
from llmcourse.checks.checker import PROBE_MIME, encode, get_spec, verify_record
from llmcourse.grading import timing
from llmcourse.tokenization import train_merges_incremental

SPEC = get_spec("tokenization.train_merges_incremental")


def recount(text: str, vocab_size: int, pattern: str | None) -> dict:
    """Part 3's trainer: every pair of every chunk recounted after every merge."""
    words = [list(c.encode("utf-8")) for c in (tk.regex.findall(pattern, text) if pattern else [text])]
    merges = {}
    for idx in range(256, vocab_size):
        counts = {}
        for w in words:
            for p in zip(w, w[1:]):
                counts[p] = counts.get(p, 0) + 1
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        merges[pair] = idx
        words = [tk._merge(w, pair, idx) for w in words]
    return merges


def runner(train, calls: list | None = None):
    """A ``run`` for measure(): the call here, this process's clock around it, outputs as a cell has them."""

    def run(args):
        if calls is not None:
            calls.append(args)
        start = time.perf_counter()
        try:
            outputs = [{"output_type": "display_data", "data": {PROBE_MIME: {"ok": encode(train(*args))}}}]
        except Exception as e:
            outputs = [{"output_type": "error", "ename": type(e).__name__}]
        return outputs, time.perf_counter() - start

    return run


def test_the_incremental_trainer_reaches_the_bar():
    m = timing.measure(SPEC, runner(train_merges_incremental))
    assert m.ratio == tk.SPEEDUP
    assert m.line.endswith("5 times as fast as the baseline (at least 5 needed)")


@pytest.mark.parametrize("train", [recount, functools.cache(recount)], ids=["recount", "recount_cached"])
def test_recounting_is_far_from_the_bar_even_with_its_answers_cached(train):
    # about 1 on a quiet machine; the baseline's CPU time grows with load, so only the verdict is asserted
    m = timing.measure(SPEC, runner(train))
    assert m.ratio < tk.SPEEDUP, m


def test_a_close_call_is_measured_again_on_new_inputs():
    """A baseline that always takes 1 s and a call that takes 1/3.55 s: a ratio of 3.5 once rounded down,
    within 2x of the bar, so every round is used, each on inputs of its own."""
    calls = []
    spec = dataclasses.replace(
        SPEC, timing=dataclasses.replace(SPEC.timing, baseline=lambda args, budget_s: 1.0 if budget_s >= 1 else None)
    )

    def close_call(args):
        return runner(train_merges_incremental, calls)(args)[0], 1 / 3.55

    m = timing.measure(spec, close_call)
    assert len(calls) == timing.ROUNDS and len({args[0] for args in calls}) == timing.ROUNDS
    assert m.ratio == 3.5, m


def test_the_baseline_stops_once_it_proves_the_ratio():
    budgets = []
    spec = dataclasses.replace(
        SPEC, timing=dataclasses.replace(SPEC.timing, baseline=lambda args, budget_s: budgets.append(budget_s))
    )
    m = timing.measure(spec, lambda args: (runner(train_merges_incremental)(args)[0], 0.1))
    assert m.ratio == tk.SPEEDUP and budgets == [pytest.approx(tk.SPEEDUP * 0.1)]
    assert tk.recount_seconds(*timing.round_inputs(SPEC, 0, random.SystemRandom())[0], budget_s=0.0) is None


def test_the_inputs_of_a_round_are_made_once_per_grading_process():
    first = timing.round_inputs(SPEC, 0, random.SystemRandom())
    assert timing.round_inputs(SPEC, 0, random.SystemRandom()) is first
    args, expected = first
    assert expected == encode(train_merges_incremental(*args))


def test_the_grader_draws_inputs_from_the_operating_system():
    # no seed in the kernel (not even the grading seed) tells which slice of Shakespeare comes next
    texts = {tk._probe(random.SystemRandom())[0] for _ in range(5)}
    assert len(texts) == 5 and all(len(t) == tk.SHAKESPEARE_CHARS for t in texts)


@pytest.mark.parametrize(
    "train, why",
    [
        (lambda text, vocab_size, pattern: {}, "the output differs from the reference's"),
        (lambda text, vocab_size, pattern: 1 / 0, "it raised ZeroDivisionError"),
    ],
    ids=["wrong", "raises"],
)
def test_a_wrong_or_failing_call_measures_zero(train, why):
    m = timing.measure(SPEC, runner(train))
    assert m.ratio == 0.0 and why in m.line


def test_a_cell_without_exactly_one_probe_output_measures_zero():
    ok = {"output_type": "display_data", "data": {PROBE_MIME: {"ok": 1}}}
    assert timing.probe_output([ok]) == (1, "")
    assert timing.probe_output([])[0] is None
    assert timing.probe_output([ok, ok])[0] is None  # a second, forged output cannot ride along
    assert timing.probe_output([ok, {"output_type": "error", "ename": "KeyboardInterrupt"}])[0] is None


def test_the_timed_checks_of_a_test_cell():
    source = (
        'assert train_merges_incremental("aaabdaaabac", 259, pattern=None)\n'
        'check("tokenization.train_merges_incremental", train_merges_incremental)\n'
        'check("tokenization.train_merges_incremental", train_merges_incremental, hidden=True)\n'
        'check("tokenization.merge", merge)\n'
    )
    assert timing.timed_checks(source) == [(SPEC, "train_merges_incremental")]
    assert timing.timed_checks('check("tokenization.merge", merge)') == []
    code = timing.probe_source("train_merges_incremental", ("ab", 257, None))
    assert code.endswith("_llmcourse_probe(train_merges_incremental, 'ab', 257, None)")


def claimed_record(ratio: float) -> dict:
    """The visible check's record with the right merges and the speed the kernel claims."""
    cases = SPEC.cases(False, 0)
    results = []
    for case in cases:
        out = train_merges_incremental(case.kwargs["text"], case.kwargs["vocab_size"], case.kwargs["pattern"])
        results.append({"ok": encode({"merges": out, tk.SPEED_KEY: ratio} if case.kwargs.get("timed") else out)})
    return {"v": 1, "check": SPEC.name, "hidden": False, "results": results}


def test_the_grader_s_measurement_replaces_the_kernel_s_claim():
    forged = claimed_record(5.0)
    assert verify_record(forged, SPEC.name, False, 0).passed  # a student's own machine: the kernel's figure
    outcome = verify_record(forged, SPEC.name, False, 0, measured=1.2)  # graded: the grader's
    assert not outcome.passed and "expected 5.0, got 1.2" in outcome.report()
    assert verify_record(claimed_record(0.0), SPEC.name, False, 0, measured=5.0).passed
