""" "Write it yourself" at run time, through the CLI (issue 24): a built-in reached by a name built at run time
earns zero on its part, because the grader reads the record of the operators and calls the function ran while
the cases ran (checks/dispatch.py); honest answers built from allowed operators keep every point; a record
of what ran that is forged empty, stripped or switched off fails the part.

Each attack computes the right outputs and hides its call from the source reader (rot13, bytes, computed
names, a subclass, another thread), so only the run-time record can take its points. One batch per
assignment (04, 05, 06), graded once; the other parts of an attacker's notebook hold the course's solution,
which shows the record of one part never spills onto another.
"""

from __future__ import annotations

import json

import pytest
from conftest import batch_workers, make_submission, manifest, run_cli, solution_code
from llmcourse.checks.checker import check, get_spec
from llmcourse.checks.forbidden import find_forbidden, runtime_forbidden

ROT13 = "import codecs\n\n"
FUNCTIONAL = "import torch.nn.functional as F\n\n"  # importing the module is allowed; the notebooks do not

SOFTMAX = {
    # the spellings
    "rot13": ROT13 + "def softmax(x, dim=-1):\n"
    '    return getattr(torch, codecs.decode("fbsgznk", "rot13"))(x, dim).nan_to_num(0)\n',
    "categorical": "def softmax(x, dim=-1):\n"
    "    d = torch.distributions.Categorical(logits=x.movedim(dim, -1), validate_args=False)\n"
    "    return d.probs.nan_to_num(0).movedim(-1, dim)\n",
    # ten more
    "partial": FUNCTIONAL + "import functools\n\n"
    "def softmax(x, dim=-1):\n"
    '    f = functools.partial(getattr(F, "".join(map(chr, [115, 111, 102, 116, 109, 97, 120]))), dim=dim)\n'
    "    return f(x).nan_to_num(0)\n",
    "attrgetter": ROT13 + "import operator\n\n"
    "def softmax(x, dim=-1):\n"
    '    return operator.attrgetter(codecs.decode("fbsgznk", "rot13"))(torch)(x, dim).nan_to_num(0)\n',
    "eval_bytes": "def softmax(x, dim=-1):\n"
    "    f = eval(bytes([116, 111, 114, 99, 104, 46, 115, 111, 102, 116, 109, 97, 120]).decode())\n"
    "    return f(x, dim).nan_to_num(0)\n",
    "import_module": ROT13 + "import importlib\n\n"
    "def softmax(x, dim=-1):\n"
    '    m = importlib.import_module(codecs.decode("gbepu.aa.shapgvbany", "rot13"))\n'
    '    return getattr(m, codecs.decode("fbsgznk", "rot13"))(x, dim).nan_to_num(0)\n',
    "sys_modules": ROT13 + "import sys\n\n"
    "def softmax(x, dim=-1):\n"
    '    m = sys.modules[codecs.decode("gbepu.aa.shapgvbany", "rot13")]\n'
    '    return getattr(m, codecs.decode("fbsgznk", "rot13"))(x, dim=dim).nan_to_num(0)\n',
    "softmin": FUNCTIONAL + "def softmax(x, dim=-1):\n    return F.softmin(-x, dim).nan_to_num(0)\n",
    "thread": ROT13 + "import threading\n\n"
    "def softmax(x, dim=-1):\n"
    "    out = []\n"
    '    f = getattr(torch, codecs.decode("fbsgznk", "rot13"))\n'
    "    t = threading.Thread(target=lambda: out.append(f(x, dim)))\n"
    "    t.start()\n"
    "    t.join()\n"
    "    return out[0].nan_to_num(0)\n",
}
# the record itself attacked: emitted with ops emptied, without ops, or with the recording switched off
FORGE = """
import IPython.display as _d

_real_display = _d.display


def _forged(*objs, **kwargs):
    for o in objs:
        record = o.get("application/vnd.llmcourse.check+json") if isinstance(o, dict) else None
        if record is not None and record.get("check") == "attention.softmax":
            {edit}
    return _real_display(*objs, **kwargs)


_d.display = _forged
"""
SOFTMAX |= {
    "forged_empty_ops": SOFTMAX["rot13"] + FORGE.format(edit='record["ops"] = []'),
    "forged_no_ops": SOFTMAX["rot13"] + FORGE.format(edit='record.pop("ops", None)'),
    "profile_off": ROT13 + "import sys\n\n"
    "def softmax(x, dim=-1):\n"
    "    sys.setprofile(None)\n"
    '    return getattr(torch, codecs.decode("fbsgznk", "rot13"))(x, dim).nan_to_num(0)\n',
}
HONEST_SOFTMAX = {
    # allowed operators only: max, exp, sum, logsumexp, masked_fill, where
    "honest_max_masked_fill": "def softmax(x, dim=-1):\n"
    "    m = x.max(dim=dim, keepdim=True).values\n"
    "    m = m.masked_fill(~torch.isfinite(m), 0.0)\n"
    "    e = (x - m).exp()\n"
    "    s = e.sum(dim=dim, keepdim=True)\n"
    "    return e / torch.where(s == 0, torch.ones_like(s), s)\n",
    "honest_logsumexp": "def softmax(x, dim=-1):\n"
    "    lse = torch.logsumexp(x, dim=dim, keepdim=True)\n"
    "    lse = torch.where(torch.isfinite(lse), lse, torch.zeros_like(lse))\n"
    "    return torch.exp(x - lse)\n",
}

LAYER_NORM = """import codecs

import torch.nn.functional as F


class LayerNorm(nn.Module):
    def __init__(self, ndim, bias=True, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        {body}
"""
LAYERNORM = {
    "rot13": "return getattr(F, codecs.decode('ynlre_abez', 'rot13'))(x, self.weight.shape, self.weight, self.bias, "
    "self.eps)",
    "instance_norm": "n = x.reshape(-1, 1, x.shape[-1])\n"
    "        y = (x - x) if x.shape[-1] == 1 else F.instance_norm(n, eps=self.eps).reshape(x.shape)\n"
    "        return y * self.weight + (self.bias if self.bias is not None else 0)",
    "group_norm": "g = getattr(F, codecs.decode('tebhc_abez', 'rot13'))\n"
    "        y = g(x.reshape(-1, 1, x.shape[-1]), 1, eps=self.eps).reshape(x.shape)\n"
    "        return y * self.weight + (self.bias if self.bias is not None else 0)",
}
HONEST_LAYERNORM = (
    "d = x - x.mean(dim=-1, keepdim=True)\n"
    "        y = d * torch.rsqrt(d.pow(2).mean(dim=-1, keepdim=True) + self.eps) * self.weight\n"
    "        return y + self.bias if self.bias is not None else y"
)
GELU_ROT13 = "import codecs\n\nimport torch.nn.functional as F\n\n\ndef gelu(x):\n    return getattr(F, codecs.decode('tryh', 'rot13'))(x)\n"
HONEST_GELU = "def gelu(x):\n    return x * 0.5 * (1.0 + torch.erf(x * 0.7071067811865476))\n"

ADAMW = {
    # the spelling, fused: torch's own kernel
    "rot13_fused": """import codecs

_Base = getattr(torch, codecs.decode("bcgvz", "rot13")).AdamW


class AdamW(_Base):
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, fused=True)

    @property
    def lr(self):
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for group in getattr(self, "param_groups", []):
            group["lr"] = value
""",
    # a subclass of torch.optim.AdamW, found through importlib; its default for-loop update dispatches
    # only the operators an honest answer uses, but runs torch.optim's code
    "subclass_forloop": """import importlib

_optim = importlib.import_module("".join(reversed("mitpo.hcrot")))


class AdamW(getattr(_optim, "Adam" + chr(87))):
    @property
    def lr(self):
        return self.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        for group in getattr(self, "param_groups", []):
            group["lr"] = value
""",
}
HONEST_ADAMW = """class AdamW:
    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        self.params, self.lr, self.betas, self.eps, self.weight_decay = list(params), lr, betas, eps, weight_decay
        self.t = {}
        self.m = {}
        self.v = {}

    def zero_grad(self):
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self):
        b1, b2 = self.betas
        for p in self.params:
            if p.grad is None:
                continue
            if p not in self.m:
                self.t[p], self.m[p], self.v[p] = 0, torch.zeros_like(p), torch.zeros_like(p)
            self.t[p] += 1
            p.mul_(1 - self.lr * self.weight_decay)
            self.m[p].lerp_(p.grad, 1 - b1)
            self.v[p].mul_(b2).addcmul_(p.grad, p.grad, value=1 - b2)
            denom = (self.v[p] / (1 - b2 ** self.t[p])).sqrt().add_(self.eps)
            p.addcdiv_(self.m[p], denom, value=-self.lr / (1 - b1 ** self.t[p]))
"""

# The parts an attack costs: its own, and those whose checks run it under the same forbidden calls (05's
# Block and GPT are built on the student's LayerNorm and forbid F.layer_norm too; 06's fit runs the
# student's AdamW and forbids torch.optim). Switching the recording off inside softmax switches it off for
# attention and multi-head attention too, which call it.
SOFTMAX_LOSES = {"test_softmax"}
LAYERNORM_LOSES = {"test_layernorm", "test_block", "test_gpt"}
ADAMW_LOSES = {"test_adamw", "test_loop"}
ATTENTION = {"test_scaled_dot_product_attention", "test_multi_head_attention"}


def _mlp_with(gelu: str) -> str:
    """The course's MLP cell with its gelu replaced (the MLP itself calls the notebook's gelu)."""
    good = solution_code("05_transformer", "transformer")["mlp"]
    return gelu + "\n\n" + good[good.index("class MLP") :]


# assignment -> (notebook, {student: {solution cell: answer}}, {student: the parts it must lose}). Each
# student costs a kernel (about 5 s of CPU), so 05's attackers of LayerNorm also attack gelu (another part)
# and one honest student per assignment holds the allowed variants.
PLAN = {
    "04_attention": (
        "attention",
        {
            **{s: {"softmax": code} for s, code in SOFTMAX.items()},
            "honest_variant": {"softmax": HONEST_SOFTMAX["honest_max_masked_fill"]},
        },
        {
            **dict.fromkeys(SOFTMAX, SOFTMAX_LOSES),
            "profile_off": SOFTMAX_LOSES | ATTENTION,
            "honest_variant": set(),
        },
    ),
    "05_transformer": (
        "transformer",
        {
            **{
                f"layernorm_{s}": {"layernorm": LAYER_NORM.format(body=b)} for s, b in LAYERNORM.items() if s != "rot13"
            },
            "layernorm_rot13_gelu_rot13": {
                "layernorm": LAYER_NORM.format(body=LAYERNORM["rot13"]),
                "mlp": _mlp_with(GELU_ROT13),
            },
            "honest_variants": {"layernorm": LAYER_NORM.format(body=HONEST_LAYERNORM), "mlp": _mlp_with(HONEST_GELU)},
        },
        {
            **{f"layernorm_{s}": LAYERNORM_LOSES for s in LAYERNORM if s != "rot13"},
            "layernorm_rot13_gelu_rot13": LAYERNORM_LOSES | {"test_mlp"},
            "honest_variants": set(),
        },
    ),
    "06_pretraining": (
        "pretraining",
        {**{f"adamw_{s}": {"adamw": code} for s, code in ADAMW.items()}, "honest_variant": {"adamw": HONEST_ADAMW}},
        {**{f"adamw_{s}": ADAMW_LOSES for s in ADAMW}, "honest_variant": set()},
    ),
}


@pytest.fixture(scope="module", params=sorted(PLAN))
def graded(request, tmp_path_factory):
    """One batch per assignment, graded once (conftest.BATCHES)."""
    assignment = request.param
    notebook, students, _ = PLAN[assignment]
    tmp = tmp_path_factory.mktemp(assignment)
    subs, course = tmp / "subs", tmp / "course"
    good = solution_code(assignment, notebook)
    for student, changes in students.items():
        make_submission(subs, student, assignment, notebook, {**good, **changes})
    run_cli("autograde", assignment, "--submissions", str(subs), *batch_workers(), course_dir=course)
    rows = json.loads((course / "reports" / f"{assignment}.json").read_text())
    return {"assignment": assignment, "report": {r["student"]: r for r in rows}}


def scores(graded, student: str) -> dict[str, float]:
    row = graded["report"][student]
    assert row["status"] == "graded", row["messages"]
    return {k.split(":")[1]: v[0] for k, v in row["parts"].items()}


def full_marks(assignment: str) -> dict[str, float]:
    m = manifest(assignment)
    return {p.grade_id: p.points for nb in m.notebooks for p in m.parts_of(nb)}


def test_every_run_time_spelling_earns_zero_on_its_part_and_only_there(graded):
    assignment = graded["assignment"]
    _, _, lost = PLAN[assignment]
    for student, parts in lost.items():
        expected = {gid: (0.0 if gid in parts else pts) for gid, pts in full_marks(assignment).items()}
        got = {gid: s for gid, s in scores(graded, student).items() if gid in expected}
        assert got == expected, (student, graded["report"][student]["messages"])


def test_the_report_says_what_ran(graded):
    _, students, lost = PLAN[graded["assignment"]]
    for student, parts in lost.items():
        messages = " ".join(graded["report"][student]["messages"])
        if not parts:
            assert "ForbiddenCall" not in messages, (student, messages)
        elif student.startswith(("forged", "profile_off")):
            assert "tampered" in messages or "switched off" in messages, (student, messages)
        else:
            assert "which this part asks you to write yourself" in messages, (student, messages)
            assert "while the checks ran" in messages, (student, messages)


def test_the_attacks_hide_from_the_source_reader():
    """Each attack above is invisible to the static reader: only the run-time record can catch it."""
    forbidden = get_spec("attention.softmax").forbidden
    for student, code in SOFTMAX.items():
        if student == "softmin":
            continue  # softmin is allowed by name; it runs softmax
        assert find_forbidden(code, forbidden) == [], student
    forbidden = get_spec("transformer.LayerNorm").forbidden
    for student, body in LAYERNORM.items():
        assert find_forbidden(LAYER_NORM.format(body=body), forbidden) == [], student
    for student, code in ADAMW.items():
        assert find_forbidden(code, get_spec("training.AdamW").forbidden) == [], student
    assert runtime_forbidden(get_spec("training.AdamW").forbidden).prefixes  # torch.optim's code is watched


# (check, the answer's code, the object checked) for every attack on outputs (not the forged records)
IN_PROCESS = [
    *[("attention.softmax", code, "softmax") for s, code in SOFTMAX.items() if not s.startswith(("forged", "profile"))],
    *[("transformer.LayerNorm", LAYER_NORM.format(body=b), "LayerNorm") for b in LAYERNORM.values()],
    ("transformer.gelu", GELU_ROT13, "gelu"),
    *[("training.AdamW", code, "AdamW") for code in ADAMW.values()],
]
HONEST_IN_PROCESS = [
    *[("attention.softmax", code, "softmax") for code in HONEST_SOFTMAX.values()],
    ("transformer.LayerNorm", LAYER_NORM.format(body=HONEST_LAYERNORM), "LayerNorm"),
    ("transformer.gelu", HONEST_GELU, "gelu"),
    ("training.AdamW", HONEST_ADAMW, "AdamW"),
]


@pytest.mark.parametrize(("name", "code", "target"), IN_PROCESS)
def test_each_attack_is_right_so_only_the_record_takes_its_points(name, code, target, capsys):
    """In this process, with the answer key: every attack passes its visible and hidden cases, and
    check() warns from the run-time record as it would in a student's kernel."""
    import math

    import torch

    namespace = {"torch": torch, "nn": torch.nn, "math": math, "__name__": "__main__"}
    exec(compile(code, "<answer>", "exec"), namespace)
    check(name, namespace[target])
    check(name, namespace[target], hidden=True)
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out, out
    assert "at run time, whatever the spelling" in out, out


@pytest.mark.parametrize(("name", "code", "target"), HONEST_IN_PROCESS)
def test_honest_variants_pass_without_a_warning(name, code, target, capsys):
    import math

    import torch

    namespace = {"torch": torch, "nn": torch.nn, "math": math, "__name__": "__main__"}
    exec(compile(code, "<answer>", "exec"), namespace)
    check(name, namespace[target])
    check(name, namespace[target], hidden=True)
    out = capsys.readouterr().out
    assert "PASS" in out and "FAIL" not in out and "WARNING" not in out, out
