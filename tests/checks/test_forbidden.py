"""Write it yourself: the static finder of forbidden library calls, and check()'s warning.

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
from llmcourse.checks.forbidden import Finding, answer_source, find_forbidden, forbidden_uses, runtime_aliases
from llmcourse.grading.assignment import Manifest

REPO = Path(__file__).resolve().parents[2]

SOFTMAX = get_spec("attention.softmax").forbidden
LAYERNORM = get_spec("transformer.LayerNorm").forbidden


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
