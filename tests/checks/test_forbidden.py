"""Write it yourself: the static finder of forbidden library calls, the run-time record's op table (measured
here again on this torch, without a kernel), and check()'s warning.

Every way of reaching ``torch.softmax`` we know of is caught (names, attribute chains, aliases,
methods on tensors, getattr with folded strings, __import__ / importlib, exec'd constants), allowed
calls are not flagged, the course's own solutions are clean, and a student's kernel hears about it.
"""

from __future__ import annotations

import inspect
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as G  # an alias only this module's globals know: check() must still see it
from llmcourse.checks.checker import CheckFailed, check, get_spec
from llmcourse.checks.dispatch import CANARY, CANARY_CALL, Recorder
from llmcourse.checks.forbidden import (
    ATEN_OPS,
    Finding,
    answer_source,
    find_forbidden,
    forbidden_uses,
    record_problem,
    runtime_aliases,
    runtime_uses,
)
from llmcourse.grading.assignment import Manifest

REPO = Path(__file__).resolve().parents[2]

SOFTMAX = get_spec("attention.softmax").forbidden
LAYERNORM = get_spec("transformer.LayerNorm").forbidden


def forbidden_of(topic: str) -> set[str]:
    import importlib

    return {p for spec in importlib.import_module(f"llmcourse.checks.{topic}").SPECS for p in spec.forbidden}


def found(source: str, forbidden=SOFTMAX, aliases=None) -> list[str]:
    return [f.name for f in find_forbidden(textwrap.dedent(source), forbidden, aliases)]


CAUGHT = {
    "torch.softmax": ("torch.softmax(x, -1)", "torch.softmax"),
    "F.softmax": ("F.softmax(x, dim=-1)", "torch.nn.functional.softmax"),
    "full path": ("torch.nn.functional.softmax(x, -1)", "torch.nn.functional.softmax"),
    "import as": ("import torch.nn.functional as G2\nG2.softmax(x, -1)", "torch.nn.functional.softmax"),
    "from import as": ("from torch import softmax as s\ns(x, -1)", "torch.softmax"),
    "from import": ("from torch.nn.functional import softmax\n", "torch.nn.functional.softmax"),
    "submodule imported": ("from torch.nn import functional\nfunctional.softmax(x, 0)", "torch.nn.functional.softmax"),
    "tensor method": ("x.softmax(-1)", "torch.Tensor.softmax"),
    "method on an expression": ("(x * 2).float().softmax(dim=-1)", "torch.Tensor.softmax"),
    "method named on Tensor": ("torch.Tensor.softmax(x, -1)", "torch.Tensor.softmax"),
    "from torch import Tensor": ("from torch import Tensor as T\nT.softmax(x, -1)", "torch.Tensor.softmax"),
    "nan_to_num trick (issue 18)": ("torch.softmax(x, dim).nan_to_num(0)", "torch.softmax"),
    "module class": ("torch.nn.Softmax(dim=-1)(x)", "torch.nn.Softmax"),
    "nn alias": ("nn.Softmax(-1)(x)", "torch.nn.Softmax"),
    "log_softmax then exp": ("F.log_softmax(x, -1).exp()", "torch.nn.functional.log_softmax"),
    "aten op": ("torch.ops.aten._softmax.default(x, -1, False)", "torch.ops.aten._softmax"),
    "assigned alias": ("sm = F.softmax\nsm(x)", "torch.nn.functional.softmax"),
    "alias of an alias": ("a = torch\nb = a.nn\nc = b.functional\nc.softmax(x)", "torch.nn.functional.softmax"),
    "getattr": ('getattr(torch, "softmax")(x, -1)', "torch.softmax"),
    "getattr, concatenated": ('getattr(F, "soft" + "max")(x, -1)', "torch.nn.functional.softmax"),
    "getattr, variable": ('name = "soft" + "max"\ngetattr(F, name)(x)', "torch.nn.functional.softmax"),
    "getattr, f-string": ('n = "max"\ngetattr(F, f"soft{n}")(x)', "torch.nn.functional.softmax"),
    "getattr, join": ('getattr(F, "".join(["so", "ft", "max"]))(x)', "torch.nn.functional.softmax"),
    "getattr, reversed": ('getattr(torch, "xamtfos"[::-1])(x, 0)', "torch.softmax"),
    "getattr, upper-lower": ('getattr(torch, "SOFTMAX".lower())(x, 0)', "torch.softmax"),
    "getattr on a tensor": ('getattr(x, "softmax")(-1)', "torch.Tensor.softmax"),
    "builtins.getattr": ('import builtins\nbuiltins.getattr(torch, "softmax")(x, 0)', "torch.softmax"),
    "__dict__": ('F.__dict__["softmax"](x, -1)', "torch.nn.functional.softmax"),
    "vars": ('vars(torch)["softmax"](x, -1)', "torch.softmax"),
    "sys.modules": ('import sys\nsys.modules["torch.nn.functional"].softmax(x)', "torch.nn.functional.softmax"),
    "__import__": ('__import__("torch").softmax(x, 0)', "torch.softmax"),
    "__import__ dotted": ('__import__("torch.nn.functional").nn.functional.softmax(x)', "torch.nn.functional.softmax"),
    "__import__ fromlist": (
        '__import__("torch.nn.functional", fromlist=["softmax"]).softmax(x)',
        "torch.nn.functional.softmax",
    ),
    "import_module": (
        'import importlib\nimportlib.import_module("torch.nn.functional").softmax(x)',
        "torch.nn.functional.softmax",
    ),
    "import_module as": (
        'from importlib import import_module as im\nm = im("tor" + "ch")\nm.softmax(x, 0)',
        "torch.softmax",
    ),
    "attrgetter": ('import operator\noperator.attrgetter("softmax")(F)(x)', "torch.nn.functional.softmax"),
    "star import": ("from torch.nn.functional import *\nsoftmax(x, -1)", "torch.nn.functional.softmax"),
    "eval": ('eval("F.softmax(x, -1)")', "torch.nn.functional.softmax"),
    "exec with an alias": ('import torch as t\nexec("y = t.softmax(x, 0)")', "torch.softmax"),
    "IPython magic": ("%time y = torch.softmax(x, 0)", "torch.softmax"),
    "a parameter may be a tensor": ("def f(F):\n    return F.softmax(1)", "torch.Tensor.softmax"),
    "inside a method": (
        "class A:\n    def forward(self, x):\n        return self.helper(x).softmax(-1)",
        "torch.Tensor.softmax",
    ),
}


@pytest.mark.parametrize("form", sorted(CAUGHT))
def test_every_form_of_a_forbidden_call_is_caught(form):
    source, name = CAUGHT[form]
    assert name in found(source), form


ALLOWED = {
    "the course's softmax": """
        def softmax(x, dim=-1):
            m = x.amax(dim=dim, keepdim=True)
            m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
            e = torch.exp(x - m)
            s = e.sum(dim=dim, keepdim=True)
            return e / torch.where(s == 0, torch.ones_like(s), s)
        """,
    "max and exp": "torch.max(x, dim=-1).values.exp() + x.max() + x.exp().sum() + torch.logsumexp(x, -1)",
    "other functional calls": "F.relu(x) + F.cross_entropy(x, y) + torch.nn.functional.gelu(x)",
    "the student's own softmax": "def softmax(x):\n    return x\nsoftmax(x)\nweights = softmax(scores)",
    "the student's own method": "class A:\n    def softmax(self, x):\n        return x\n    def f(self, x):\n        return self.softmax(x)",
    "similar names": "x.softmax_temperature + torch.softmaxish + F.softmax2 + my_softmax(x)",
    "text that mentions it": '"""uses torch.softmax? no"""\n# F.softmax(x) would be cheating\nprint("torch.softmax")',
    "a local that shadows an alias": "F = features(x)\nF.relu()",
    "a string that is not a name": 'getattr(F, "relu")(x)',
    "syntax error": "def broken(:\n    torch.softmax(x)",
    "empty": "",
}


@pytest.mark.parametrize("form", sorted(ALLOWED))
def test_allowed_code_is_not_flagged(form):
    assert found(ALLOWED[form]) == [], form


def test_nothing_is_forbidden_when_the_spec_names_nothing():
    assert find_forbidden("torch.softmax(x, 0)", ()) == []


def test_a_finding_says_where_and_what():
    source = "import torch\n\n\ndef f(x):\n    return torch.softmax(x, -1)\n"
    assert find_forbidden(source, SOFTMAX) == [Finding("torch.softmax", 5, "torch.softmax(x, -1)")]
    assert str(find_forbidden(source, SOFTMAX)[0]) == "line 5: `torch.softmax(x, -1)` uses torch.softmax"


def test_one_finding_per_use():
    assert found("torch.ops.aten._softmax.default(x)\nF.softmax(torch.softmax(x, 0), 1)") == [
        "torch.ops.aten._softmax",
        "torch.nn.functional.softmax",
        "torch.softmax",
    ]


def test_layer_norm_forms():
    assert found("self.ln = nn.LayerNorm(C)", LAYERNORM) == ["torch.nn.LayerNorm"]
    assert found("return F.layer_norm(x, (C,), self.weight, self.bias)", LAYERNORM) == [
        "torch.nn.functional.layer_norm"
    ]
    assert found("torch.layer_norm(x, x.shape[-1:])", LAYERNORM) == ["torch.layer_norm"]
    assert found("(x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps)", LAYERNORM) == []


def test_the_grader_entry_reads_the_spec():
    assert [f.name for f in forbidden_uses("attention.softmax", "y = F.softmax(x, -1)")] == [
        "torch.nn.functional.softmax"
    ]
    assert forbidden_uses("attention.split_heads", "y = F.softmax(x, -1)") == []  # nothing forbidden there
    assert [f.name for f in forbidden_uses("attention.multi_head_attention", "nn.MultiheadAttention(8, 2)")] == [
        "torch.nn.MultiheadAttention"
    ]
    assert forbidden_uses("transformer.gelu", "G.gelu(x)") == []  # no alias known: the caller passes cells
    setup = "import torch\nimport torch.nn.functional as G\nfrom torch import softmax as s\n"
    assert [f.name for f in forbidden_uses("transformer.gelu", "G.gelu(x)", context=setup)] == [
        "torch.nn.functional.gelu"
    ]
    assert [f.name for f in forbidden_uses("attention.softmax", "s(x, 0)", context=setup)] == ["torch.softmax"]
    assert forbidden_uses("transformer.gelu", "y = 0.5 * x", context=setup + "G.gelu(t)") == []  # context unsearched
    assert [f.name for f in forbidden_uses("transformer.gelu", "import torch.nn.functional as G\nG.gelu(x)")] == [
        "torch.nn.functional.gelu"
    ]


def test_every_solution_is_clean():
    """The course's own answers use none of the calls their parts forbid (else honest students would
    be flagged for doing what the solution does)."""
    checked = 0
    for assignment in ("01_tokenization", "04_attention", "05_transformer"):
        m = Manifest.load(REPO / "solutions" / assignment)
        for part in m.parts:
            for c in part.checks:
                if c.target is None or not get_spec(c.name).forbidden:
                    continue
                source = m.solutions[part.notebook][m.cell_defining(part.notebook, c.target)]
                assert forbidden_uses(c.name, source) == [], (assignment, c.name)
                checked += 1
    assert checked >= 6


# --------------------------------------------------------------------------- check() in a student's kernel


def cheating_softmax(x, dim=-1):
    return torch.softmax(x, dim).nan_to_num(0)  # issue 18's full-marks cheat


def _helper(x, dim):
    return G.softmax(x, dim)  # G: this module's alias, unknown to the source alone


def softmax_via_a_helper(x, dim=-1):
    return _helper(x, dim).nan_to_num(0)


def honest_softmax(x, dim=-1):
    m = x.amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))
    e = torch.exp(x - m)
    s = e.sum(dim=dim, keepdim=True)
    return e / torch.where(s == 0, torch.ones_like(s), s)


def test_check_warns_when_an_answer_uses_a_forbidden_call(capsys):
    check("attention.softmax", cheating_softmax)
    out = capsys.readouterr().out
    assert "PASS attention.softmax" in out  # outputs alone cannot tell; the warning does
    assert "WARNING attention.softmax" in out and "`torch.softmax(x, dim)` uses torch.softmax" in out


def test_check_follows_helpers_and_the_kernels_aliases(capsys):
    check("attention.softmax", softmax_via_a_helper)
    out = capsys.readouterr().out
    line = inspect.getsourcelines(_helper)[1] + 1
    assert f"_helper, line {line}: `G.softmax(x, dim)` uses torch.nn.functional.softmax" in out


def test_check_stays_quiet_for_an_honest_answer(capsys):
    check("attention.softmax", honest_softmax)
    assert "WARNING" not in capsys.readouterr().out


class CheatingLayerNorm(torch.nn.Module):
    def __init__(self, ndim, bias=True, eps=1e-5):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(ndim))
        self.bias = torch.nn.Parameter(torch.zeros(ndim)) if bias else None
        self.eps = eps

    def forward(self, x):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


def test_a_failing_check_carries_the_warning_too():
    def wrong(x, dim=-1):
        return torch.softmax(x, dim)  # NaN on fully -inf rows: fails, and is flagged

    with pytest.raises(CheckFailed) as info:
        check("attention.softmax", wrong)
    assert "FAIL" in str(info.value) and "WARNING attention.softmax" in str(info.value)


def test_a_class_is_read_method_by_method(capsys):
    check("transformer.LayerNorm", CheatingLayerNorm)
    out = capsys.readouterr().out
    assert "PASS transformer.LayerNorm" in out and "uses torch.nn.functional.layer_norm" in out
    [(name, source, first)] = answer_source(CheatingLayerNorm)
    assert name == "CheatingLayerNorm" and first == inspect.getsourcelines(CheatingLayerNorm)[1]
    assert source.startswith("class CheatingLayerNorm(torch.nn.Module):")


def test_runtime_aliases_name_modules_and_forbidden_objects():
    aliases = runtime_aliases(_helper, SOFTMAX)
    assert aliases["G"] == "torch.nn.functional" and aliases["torch"] == "torch"
    namespace = {"s": torch.softmax, "torch": torch}
    exec("def f(x):\n    return s(x, 0)\n", namespace)
    assert runtime_aliases(namespace["f"], SOFTMAX)["s"] == "torch.softmax"


# --------------------------------------------------------------------------- at run time: the op table, the record

X = torch.randn(3, 6, generator=torch.Generator().manual_seed(0))
X3 = torch.randn(2, 3, 8, generator=torch.Generator().manual_seed(1))
X4 = torch.randn(2, 2, 3, 4, generator=torch.Generator().manual_seed(2))
TARGETS = torch.tensor([0, 1, 2])


def _adamw(**kw):
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.ones(3)
    torch.optim.AdamW([p], lr=0.1, **kw).step()


# forbidden path -> a call of it on CPU; its row of ATEN_OPS must hold an operator this call dispatches
MEASURED = {
    "torch.softmax": lambda: torch.softmax(X, -1),
    "torch.nn.functional.softmax": lambda: G.softmax(X, -1),
    "torch.Tensor.softmax": lambda: X.softmax(-1),
    "torch.special.softmax": lambda: torch.special.softmax(X, -1),
    "torch.nn.Softmax": lambda: torch.nn.Softmax(-1)(X),
    "torch._softmax": lambda: torch._softmax(X, -1, False),
    "torch.ops.aten._softmax": lambda: torch.ops.aten._softmax(X, -1, False),
    "torch.log_softmax": lambda: torch.log_softmax(X, -1),
    "torch.nn.functional.log_softmax": lambda: G.log_softmax(X, -1),
    "torch.nn.LogSoftmax": lambda: torch.nn.LogSoftmax(-1)(X),
    "torch.nn.functional.layer_norm": lambda: G.layer_norm(X3, (8,)),
    "torch.nn.LayerNorm": lambda: torch.nn.LayerNorm(8)(X3),
    "torch.layer_norm": lambda: torch.layer_norm(X3, (8,)),
    "torch.nn.functional.group_norm": lambda: G.group_norm(X3, 3),
    "torch.nn.GroupNorm": lambda: torch.nn.GroupNorm(1, 3)(X3),
    "torch.nn.functional.gelu": lambda: G.gelu(X),
    "torch.nn.GELU": lambda: torch.nn.GELU("tanh")(X),
    "torch.nn.functional.scaled_dot_product_attention": lambda: G.scaled_dot_product_attention(X4, X4, X4),
    "torch.nn.MultiheadAttention": lambda: torch.nn.MultiheadAttention(8, 2)(X3, X3, X3, need_weights=False),
    "torch.nn.functional.cross_entropy": lambda: G.cross_entropy(X, TARGETS),
    "torch.nn.functional.nll_loss": lambda: G.nll_loss(X, TARGETS),
    "torch.nn.CrossEntropyLoss": lambda: torch.nn.CrossEntropyLoss()(X3, torch.zeros(2, 8, dtype=torch.long)),
    "torch.logsumexp": lambda: torch.logsumexp(X, -1),
    "torch.nn.functional.mse_loss": lambda: G.mse_loss(X, X + 1),
    "torch.nn.functional.unfold": lambda: G.unfold(X4, 2, stride=2),
    "torch.Tensor.unfold": lambda: X4.unfold(-1, 2, 2),
    "torch.nn.functional.conv2d": lambda: G.conv2d(X4, torch.ones(1, 2, 2, 2)),
    "torch.optim": lambda: _adamw(fused=True),
}
# the same operators, whatever the spelling: composite operators arrive decomposed
RUN_TIME_SPELLINGS = {
    "softmin": (lambda: G.softmin(X, -1), "torch.softmax"),
    "Categorical(...).probs": (lambda: torch.distributions.Categorical(logits=X).probs, "torch.softmax"),
    "log_softmax then exp": (lambda: torch.log_softmax(X, -1).exp(), "torch.softmax"),
    "instance_norm on a reshape": (lambda: G.instance_norm(X3.reshape(-1, 1, 8)), "torch.nn.functional.layer_norm"),
    "batch_norm": (lambda: G.batch_norm(X3, None, None, training=True), "torch.nn.functional.layer_norm"),
    "sdpa on 3-d inputs": (
        lambda: G.scaled_dot_product_attention(X3, X3, X3),
        "torch.nn.functional.scaled_dot_product_attention",
    ),
    "multi-head attention, eval": (
        lambda: torch.no_grad()(torch.nn.MultiheadAttention(8, 2).eval())(X3, X3, X3),
        "torch.nn.MultiheadAttention",
    ),
    "cross_entropy with label smoothing": (
        lambda: G.cross_entropy(X, TARGETS, label_smoothing=0.1),
        "torch.nn.functional.cross_entropy",
    ),
}
# honest code, allowed operators only: never found, under any of the course's forbidden lists
HONEST = {
    "softmax": lambda: (lambda e: e / e.sum(-1, keepdim=True))((X - X.amax(-1, keepdim=True)).exp()),
    "softmax with max and masked_fill": lambda: (X - X.max(-1, keepdim=True).values).masked_fill(X < -9, 0).exp(),
    "layer norm": lambda: (X3 - X3.mean(-1, keepdim=True)) / torch.sqrt(X3.var(-1, keepdim=True) + 1e-5),
    "layer norm with rsqrt and pow": lambda: X3 * torch.rsqrt(X3.pow(2).mean(-1, keepdim=True) + 1e-5),
    "gelu": lambda: 0.5 * X * (1 + torch.tanh(0.79788456 * (X + 0.044715 * X**3))) + torch.erf(X),
    "attention": lambda: torch.where(X > 0, X, 0.0) @ X.T,
    "cross entropy": lambda: (torch.logsumexp(X, -1) - X.gather(1, TARGETS[:, None])[:, 0]).mean(),
    "adamw": lambda: (
        torch.ones(3)
        .mul_(0.9)
        .lerp_(X[0, :3], 0.1)
        .addcmul_(X[1, :3], X[2, :3])
        .add_(1)
        .addcdiv_(X[0, :3], X[1, :3].abs().sqrt() / 2 + 1)
    ),
}
ALL_FORBIDDEN = tuple(
    sorted({p for t in ("attention", "transformer", "llama", "training", "multimodal") for p in forbidden_of(t)})
)


def recorded(fn) -> dict:
    with Recorder() as recorder:
        fn()
    return recorder.record()


@pytest.mark.parametrize("path", sorted(MEASURED))
def test_the_op_table_is_what_torch_dispatches(path):
    ops = set(recorded(MEASURED[path])["ops"])
    assert ops & set(ATEN_OPS[path]), (path, sorted(ops))
    assert runtime_uses((path,), recorded(MEASURED[path])), path


def test_every_operator_in_the_table_exists_in_this_torch():
    for path, ops in ATEN_OPS.items():
        for op in ops:
            namespace, name = op.split(".")
            assert hasattr(getattr(torch.ops, namespace), name), (path, op)


@pytest.mark.parametrize("spelling", sorted(RUN_TIME_SPELLINGS))
def test_a_run_time_spelling_dispatches_a_forbidden_operator(spelling):
    fn, path = RUN_TIME_SPELLINGS[spelling]
    assert path in {p for _, p in runtime_uses((path,), recorded(fn))}, spelling


@pytest.mark.parametrize("code", sorted(HONEST))
def test_honest_operators_are_never_found(code):
    assert runtime_uses(ALL_FORBIDDEN, recorded(HONEST[code])) == [], code


def test_python_calls_catch_what_atens_operators_cannot_tell():
    """torch.optim's for-loop AdamW dispatches the operators an honest answer does; its code is what tells."""
    loop = recorded(lambda: _adamw(foreach=False))
    honest = recorded(HONEST["adamw"])
    bookkeeping = {"profiler._record_function_enter_new", "profiler._record_function_exit", "aten.zeros_like"}
    bookkeeping |= {"aten._local_scalar_dense", "aten.lift_fresh", "aten.ones"}
    assert set(loop["ops"]) - bookkeeping <= set(honest["ops"])
    assert [p for _, p in runtime_uses(("torch.optim",), loop)] == ["torch.optim"]
    sub = recorded(lambda: type("Mine", (torch.optim.AdamW,), {})([torch.nn.Parameter(torch.ones(2))]).step())
    assert [p for _, p in runtime_uses(("torch.optim",), sub)] == ["torch.optim"]  # a subclass runs its code
    # F.rms_norm decomposes on CPU; the call to torch.rms_norm does not
    rms = recorded(lambda: G.rms_norm(X, (6,)))
    assert "aten._fused_rms_norm" not in rms["ops"] and runtime_uses(("torch.rms_norm",), rms)
    cos = recorded(lambda: G.cosine_similarity(X, X))
    assert runtime_uses(("torch.nn.functional.cosine_similarity",), cos)


def test_paths_every_program_runs_through_say_nothing_at_run_time():
    assert runtime_uses(("torch._C", "torch.ops.aten"), recorded(HONEST["softmax"])) == []


def test_a_record_is_trusted_only_whole():
    record = recorded(HONEST["softmax"])
    assert record["intact"] and CANARY in record["ops"] and CANARY_CALL in record["calls"]
    assert record_problem(SOFTMAX, record) is None
    assert "PyTorch operators" in record_problem(SOFTMAX, {**record, "ops": []})
    assert "PyTorch operators" in record_problem(SOFTMAX, {k: v for k, v in record.items() if k != "ops"})
    assert "PyTorch operators" in record_problem(SOFTMAX, {**record, "ops": "aten.exp"})
    assert "Python calls" in record_problem(SOFTMAX, {**record, "calls": []})
    assert "switched off" in record_problem(SOFTMAX, {**record, "intact": "yes"})
    assert record_problem(("tiktoken",), {**record, "ops": None}) is None  # no operators to watch there


def test_the_recorder_notices_being_switched_off():
    import sys

    assert not recorded(lambda: sys.setprofile(None))["intact"]
    from torch.utils._python_dispatch import _pop_mode

    assert not recorded(_pop_mode)["intact"]


def test_a_thread_the_answer_starts_is_watched():
    import threading

    def in_a_thread():
        t = threading.Thread(target=torch.softmax, args=(X, -1))
        t.start()
        t.join()

    assert [p for _, p in runtime_uses(SOFTMAX, recorded(in_a_thread))] == ["torch.softmax"]


def test_check_warns_from_the_run_time_record(capsys):
    import codecs

    def rot13_softmax(x, dim=-1):
        return getattr(torch, codecs.decode("fbsgznk", "rot13"))(x, dim).nan_to_num(0)

    check("attention.softmax", rot13_softmax)
    out = capsys.readouterr().out
    assert "PASS attention.softmax" in out and "at run time, whatever the spelling" in out
    assert "dispatched aten._softmax" in out
