"""The checker: strict encoding, readable differences, trusted verification, the answer-key blocker."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from llmcourse.checks import checker
from llmcourse.checks.checker import (
    CheckFailed,
    UnsupportedOutput,
    check,
    encode,
    first_difference,
    get_spec,
    verify_record,
)
from llmcourse.grading.assignment import expected_checks


def test_encode_keeps_types_apart():
    assert encode([1, 2]) != encode((1, 2))
    assert first_difference(encode(1), encode(True)) == "output: expected int, got bool"
    assert encode(b"ab") != encode("ab")
    assert encode({(1, 2): 3}) == encode({(1, 2): 3})
    assert encode({2: 1, 1: 2}) == encode({1: 2, 2: 1})  # dict order does not matter


def test_encode_strips_subclass_tricks():
    class Liar(int):
        def __eq__(self, other):
            return True

        def __int__(self):
            return 999

    class AlwaysEqualList(list):
        def __eq__(self, other):
            return True

    assert encode(Liar(3)) == 3
    assert encode(AlwaysEqualList([1])) == [1]
    assert first_difference(encode([1, 2]), encode(AlwaysEqualList([1]))) is not None


def test_encode_refuses_objects_it_cannot_compare():
    class Anything:
        def __eq__(self, other):
            return True

    with pytest.raises(UnsupportedOutput, match="Anything"):
        encode(Anything())
    with pytest.raises(UnsupportedOutput):
        encode(np.array([object()], dtype=object))


def test_arrays_and_tensors_report_shape_dtype_and_where():
    a = encode(np.zeros((2, 3), dtype=np.float32))
    assert "shape" in first_difference(a, encode(np.zeros((3, 2), dtype=np.float32)))
    assert "dtype" in first_difference(a, encode(np.zeros((2, 3), dtype=np.float64)))
    b = np.zeros((2, 3), dtype=np.float32)
    b[1, 2] = 0.5
    msg = first_difference(a, encode(torch.from_numpy(b)))
    assert "index (1, 2)" in msg and "max abs diff 0.5" in msg
    assert first_difference(a, encode(torch.zeros(2, 3) + 1e-7), atol=1e-6) is None


def test_hidden_differences_do_not_show_values():
    msg = first_difference(encode([1, 2, 3]), encode([1, 2, 4]), show_values=False)
    assert "4" not in msg.replace("output[2]", "")


def test_check_passes_the_reference_and_explains_a_wrong_function(capsys):
    from llmcourse.tokenization import merge

    check("tokenization.merge", merge)
    assert "PASS" in capsys.readouterr().out

    def off_by_one(ids, pair, idx):
        return merge(ids, pair, idx + 1)

    with pytest.raises(CheckFailed) as info:
        check("tokenization.merge", off_by_one)
    text = str(info.value)
    assert "case 1" in text and "expected 256, got 257" in text


def test_check_reports_exceptions_with_the_students_line():
    def broken(ids, pair, idx):
        raise KeyError("oops")

    with pytest.raises(CheckFailed, match="raised KeyError"):
        check("tokenization.merge", broken)


def test_unknown_check_names_are_clear():
    with pytest.raises(ValueError, match="unknown check"):
        get_spec("tokenization.nope")
    with pytest.raises(ValueError, match="topic"):
        get_spec("nosuchtopic.fn")
    with pytest.raises(TypeError, match="your function"):
        check("tokenization.merge", "not a function")


def test_hidden_cases_depend_on_the_secret_seed():
    spec = get_spec("tokenization.train_merges")
    assert spec.cases(True, 1) == spec.cases(True, 1)
    assert spec.cases(True, 1) != spec.cases(True, 2)


def test_verify_record_trusts_nothing_in_the_record():
    from llmcourse.tokenization import get_stats

    spec = get_spec("tokenization.get_stats")
    good = {"check": spec.name, "hidden": True, "results": checker.run_cases(get_stats, spec.cases(True, 7))}
    assert verify_record(good, spec.name, True, seed=7).passed
    assert not verify_record(good, spec.name, True, seed=8).passed  # outputs for other inputs
    assert not verify_record({**good, "hidden": False}, spec.name, True, 7).passed
    assert not verify_record({**good, "results": good["results"][:-1]}, spec.name, True, 7).passed
    assert not verify_record({**good, "results": "all passed"}, spec.name, True, 7).passed
    assert not verify_record(None, spec.name, True, 7).passed
    assert not verify_record(
        {**good, "results": [{"ok": 1, "error": 2}] * len(good["results"])}, spec.name, True, 7
    ).passed


def test_the_grader_reuses_reference_outputs_only_for_a_pass(monkeypatch):
    """The trusted grader keeps the reference's outputs for the next student; a failure against them is
    confirmed against a fresh computation, so a reference output that came out wrong once (a speed ratio
    measured on a loaded machine) cannot fail every later student."""
    from llmcourse.tokenization import get_stats

    spec = get_spec("tokenization.get_stats")
    cases = spec.cases(True, 11)
    good = {"check": spec.name, "hidden": True, "results": checker.run_cases(get_stats, cases)}
    calls = []
    real = checker.expected_results
    monkeypatch.setattr(checker, "expected_results", lambda s, c: calls.append(1) or real(s, c))
    monkeypatch.setattr(checker, "_EXPECTED", {})
    assert verify_record(good, spec.name, True, seed=11).passed
    assert verify_record(good, spec.name, True, seed=11).passed
    assert len(calls) == 1  # the second student's pass used the kept outputs
    wrong = {**good, "results": [{"ok": encode({})}] + good["results"][1:]}
    assert not verify_record(wrong, spec.name, True, seed=11).passed
    assert len(calls) == 2  # the failure was confirmed against a fresh computation
    checker._EXPECTED[(spec.name, True, 11)] = [{"ok": encode({})}] * len(cases)  # outputs gone bad once
    assert verify_record(good, spec.name, True, seed=11).passed


def test_expected_checks_reads_the_test_cell_source():
    src = 'assert f(1) == 2\ncheck("tokenization.merge", merge)\n### BEGIN HIDDEN TESTS\ncheck("tokenization.merge", merge, hidden=True)\n'
    assert expected_checks(src) == [("tokenization.merge", False), ("tokenization.merge", True)]
    assert expected_checks("this is ( not python") == []


def test_grading_kernel_blocks_the_answer_key():
    code = (
        "from llmcourse.grading.kernel import install_blocker\n"
        "import llmcourse.tokenization\n"
        "install_blocker(['llmcourse.tokenization'])\n"
        "import llmcourse.toolbox.data\n"  # other lib modules stay available
        "try:\n    from llmcourse.tokenization import merge\nexcept ImportError as e:\n    print('BLOCKED', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "BLOCKED" in out.stdout and "reference solution" in out.stdout, out.stderr


def test_a_report_through_an_adapter_shows_the_call_that_happened():
    """The visible report prints the adapter call, which the student can make to reproduce it."""
    from llmcourse.checks.transformer import run_layernorm
    from llmcourse.transformer import LayerNorm

    class NoGain(LayerNorm):
        def forward(self, x):
            return super().forward(x) / self.weight  # forgets the gain

    with pytest.raises(CheckFailed) as info:
        check("transformer.LayerNorm", NoGain)
    assert "case 1 (C=8, (B, T, C) = (2, 4, 8)): run_layernorm(LayerNorm, ndim=8, bias=True, eps=1e-05" in str(
        info.value
    )
    case = get_spec("transformer.LayerNorm").cases(False, 0)[0]
    assert not torch.allclose(run_layernorm(NoGain, **case.kwargs), run_layernorm(LayerNorm, **case.kwargs))


def test_wrong_parameter_names_are_explained_for_every_module():
    """The kit's build-and-load: the same readable error in 04 as in 05."""
    from llmcourse.attention import MultiHeadAttention

    class Fused(MultiHeadAttention):
        def __init__(self, n_embd, n_head, bias=True, causal=False):
            super().__init__(n_embd, n_head, bias=bias, causal=causal)
            self.qkv = torch.nn.Linear(n_embd, 3 * n_embd)

    with pytest.raises(CheckFailed, match=r"unexpected 'qkv.weight', 'qkv.bias' \(yours has them"):
        check("attention.multi_head_attention", Fused)


def test_the_older_call_form_still_works():
    """Spec(call=(fn, case) -> output), as modules written before the kit use it."""
    spec = checker.Spec(
        "tokenization.merge",
        "llmcourse.tokenization:merge",
        lambda: [checker.Case(([1, 2, 1, 2], (1, 2), 256), "example")],
        lambda seed: [],
        call=lambda fn, case: fn(*case.args),
    )
    from llmcourse.tokenization import merge

    case = spec.cases(False, 0)[0]
    assert spec.apply(merge, case) == [256, 256]
    assert spec.call_repr(case) == "merge([1, 2, 1, 2], (1, 2), 256)"
