"""Cases for assignment 04 (attention): softmax, scaled dot-product attention, split/merge heads,
multi-head attention.

Visible cases are small and readable. Hidden cases add fixed edge cases (logits of 1000, -inf
entries, fully masked rows, T = 1, causal and padding masks together, float64, cross-attention
with Tq != Tk) and random cases drawn from the grader's seed. Nothing here imports
``llmcourse.attention`` (the answer key, unavailable while grading): inputs and masks are built
from first principles with ``torch`` alone.

Multi-head attention is graded as a class. The adapter :func:`run_multi_head_attention` builds the
student's (or the reference's) ``MultiHeadAttention(n_embd, n_head, bias=..., causal=...)``, loads the
case's seeded weights with the reference's parameter names (``q_proj``, ``k_proj``, ``v_proj``,
``out_proj``: ``nn.Linear`` each) and returns ``forward(x, mask=mask)``.

Each part is written by the student, so each names the library calls it replaces (``FORBIDDEN_*``).
"""

from __future__ import annotations

import math

import torch

from . import _kit
from ._kit import causal_mask as _causal
from ._kit import padding_mask as _padding
from ._kit import randn as _randn
from .checker import Case, Spec
from .forbidden import SOFTMAX_PATHS

# float32 arithmetic: a correct solution that rounds differently (logsumexp instead of the max
# trick, einsum, q scaled before the product, a fused qkv projection) differs from the reference by
# up to ~1e-5; every real mistake (no scale, a wrong mask, a wrong head layout) by far more.
TOL = dict(rtol=1e-4, atol=1e-5)


# the library calls each part asks students to write themselves (the method form: torch.Tensor.<name>)
FORBIDDEN_SOFTMAX = SOFTMAX_PATHS
FORBIDDEN_ATTENTION = (
    "torch.nn.functional.scaled_dot_product_attention",
    "torch._C._nn.scaled_dot_product_attention",
    "torch.ops.aten.scaled_dot_product_attention",
    "torch.nn.functional.multi_head_attention_forward",
    "torch.nn.MultiheadAttention",
)


# --------------------------------------------------------------------------- softmax


def _softmax_visible() -> list[Case]:
    ninf = float("-inf")
    return [
        Case((torch.tensor([1.0, 2.0, 3.0]),), "a vector of 3 scores"),
        Case((torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]]),), "two rows: uniform and increasing"),
        Case((torch.tensor([1000.0, 1001.0, 1002.0]),), "large scores: exp(1000) overflows"),
        Case((torch.tensor([[1.0, ninf, 2.0], [ninf, ninf, ninf]]),), "-inf entries and a fully -inf row"),
        Case((torch.tensor([[1.0, 2.0], [3.0, 5.0]]),), "along dim 0", {"dim": 0}),
    ]


def _softmax_hidden(seed: int) -> list[Case]:
    g = _kit.generator("attention.softmax", seed)
    ninf = float("-inf")
    cases = [
        Case((torch.tensor([-1000.0, -1001.0, -999.0]),), "large negative scores"),
        Case((torch.tensor([[1e4, -1e4, 0.0], [88.0, 89.0, 90.0]]),), "extreme scores, float32 overflow range"),
        Case((torch.tensor([ninf, 0.0, ninf]),), "one finite entry"),
        Case((torch.full((2, 3, 4), ninf),), "every row fully -inf"),
        Case((torch.tensor([[5.0]]),), "a single element"),
        Case((torch.tensor([[0.5, 1.5, -2.0]], dtype=torch.float64),), "float64"),
        Case((torch.tensor([1000.0, 1000.0, ninf, 1000.0], dtype=torch.float64),), "float64, large and -inf"),
    ]
    x = _randn(g, 2, 3, 5, 7, scale=4.0)
    x[0, 1, 2] = ninf  # one fully masked row inside a random batch
    x[1, 0, :, 3] = ninf
    cases.append(Case((x,), "random (2, 3, 5, 7) with -inf entries and a fully -inf row"))
    cases.append(Case((_randn(g, 4, 6, 3, scale=10.0),), "random (4, 6, 3) along dim 1", {"dim": 1}))
    cases.append(Case((_randn(g, 3, 8, scale=300.0),), "random large scores (3, 8)"))
    cases.append(Case((_randn(g, 5, 9, dtype=torch.float64, scale=3.0),), "random float64 (5, 9), dim=-2", {"dim": -2}))
    return cases


# --------------------------------------------------------------------------- scaled dot-product attention


def _arange(*shape: int, dtype=torch.float32, step: float = 0.1) -> torch.Tensor:
    n = math.prod(shape)
    return ((torch.arange(n, dtype=torch.float64) % 7 - 3) * step).reshape(shape).to(dtype)


def _sdpa_visible() -> list[Case]:
    q = torch.tensor([[[[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]]]])  # (1, 1, 3, 4)
    k = torch.tensor([[[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]]])
    v = torch.tensor([[[[1.0, 0.0], [0.0, 1.0], [5.0, 5.0]]]])  # (1, 1, 3, 2): dv may differ from d
    k4 = _arange(2, 1, 4, 3, step=0.3)
    return [
        Case((q, k, v), "B=1, H=1, T=3, d=4, dv=2, no mask"),
        Case((q, k, v), "the same, causal", {"causal": True}),
        Case((q, k, v, torch.tensor([[True, True, False]])), "a (1, Tk) mask hiding the last key from every query"),
        Case(
            (_arange(2, 1, 4, 3), k4, _arange(2, 1, 4, 2, step=1.0), _padding([4, 2], 4)),
            "padding mask (B, 1, 1, Tk): sentence lengths 4 and 2",
        ),
        Case(
            (_arange(1, 2, 2, 3), k4[:1].expand(1, 2, 4, 3).contiguous(), _arange(1, 2, 4, 3, step=1.0)),
            "cross-attention: Tq=2 queries, Tk=4 keys, two heads",
        ),
        Case((q, k, v, torch.zeros(1, 1, 1, 3, dtype=torch.bool)), "every key masked: weights and output are zeros"),
    ]


def _sdpa_hidden(seed: int) -> list[Case]:
    g = _kit.generator("attention.scaled_dot_product_attention", seed)
    cases = []
    q = torch.tensor([[[[30.0, 30.0], [-30.0, 30.0]]]])
    k = torch.tensor([[[[30.0, 30.0], [30.0, -30.0], [-30.0, 0.0]]]])
    v = torch.tensor([[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])
    cases.append(Case((q, k, v), "scores of about 1000: the softmax must be stable"))
    cases.append(Case((q, k, v), "large scores, middle key masked", {"mask": torch.tensor([[True, False, True]])}))
    cases.append(Case((q[:, :, :1].expand(1, 1, 3, 2).contiguous(), k, v), "large scores, causal", {"causal": True}))
    one = _randn(g, 2, 3, 1, 4)
    cases.append(Case((one, _randn(g, 2, 3, 1, 4), _randn(g, 2, 3, 1, 5)), "T=1", {"causal": True}))
    B, H, T, d = 3, 2, 5, 4
    qq, kk, vv = _randn(g, B, H, T, d), _randn(g, B, H, T, d), _randn(g, B, H, T, d)
    cases.append(
        Case(
            (qq, kk, vv, _padding([5, 3, 0], T)),
            "causal + padding together, one sentence of length 0",
            {"causal": True},
        )
    )
    cases.append(Case((qq, kk, vv, _padding([2, 5, 1], T) & _causal(T)), "padding & causal passed as one mask"))
    cases.append(Case((qq.double(), kk.double(), vv.double()), "float64, causal", {"causal": True}))
    cases.append(Case((qq[:, 0], kk[:, 0], vv[:, 0]), "no head dim: (B, T, d)", {"causal": True}))
    cases.append(
        Case(
            (qq[:, :, :2], kk, vv, torch.ones(B, 1, 2, T, dtype=torch.bool)),
            "cross-attention Tq=2, Tk=5 with an all-True mask",
        )
    )
    head_mask = torch.tensor([True, False])[None, :, None, None].expand(B, H, T, T)
    cases.append(Case((qq, kk, vv, head_mask.contiguous()), "head 1 fully masked (B, H, Tq, Tk) mask"))
    for B, H, Tq, Tk, d, dv, causal in [
        (2, 4, 16, 16, 8, 8, True),
        (1, 3, 7, 11, 16, 5, False),
        (4, 2, 9, 9, 32, 32, False),
    ]:
        m = torch.rand(B, 1, Tq, Tk, generator=g) < 0.8 if not causal else None
        cases.append(
            Case(
                (_randn(g, B, H, Tq, d, scale=2.0), _randn(g, B, H, Tk, d, scale=2.0), _randn(g, B, H, Tk, dv), m),
                f"random B={B} H={H} Tq={Tq} Tk={Tk} d={d} dv={dv}" + (", causal" if causal else ", random mask"),
                {"causal": causal},
            )
        )
    return cases


# --------------------------------------------------------------------------- split / merge heads


def _split_visible() -> list[Case]:
    return [
        Case((torch.arange(12.0).reshape(1, 2, 6), 2), "B=1, T=2, C=6, H=2: head 0 gets channels 0..2"),
        Case((torch.arange(12.0).reshape(1, 2, 6), 3), "the same with H=3"),
        Case((torch.arange(24.0).reshape(2, 3, 4), 1), "H=1: one head with every channel"),
    ]


def _split_hidden(seed: int) -> list[Case]:
    g = _kit.generator("attention.split_heads", seed)
    return [
        Case((torch.arange(16.0).reshape(1, 1, 16), 16), "T=1, one channel per head"),
        Case((torch.arange(60.0, dtype=torch.float64).reshape(3, 5, 4), 2), "float64"),
        Case((_randn(g, 4, 7, 24), 6), "random (4, 7, 24), H=6"),
        Case((_randn(g, 2, 33, 64), 8), "random (2, 33, 64), H=8"),
    ]


def _merge_visible() -> list[Case]:
    return [
        Case((torch.arange(12.0).reshape(1, 2, 2, 3),), "B=1, H=2, T=2, d=3"),
        Case((torch.arange(24.0).reshape(2, 1, 3, 4),), "H=1"),
    ]


def _merge_hidden(seed: int) -> list[Case]:
    g = _kit.generator("attention.merge_heads", seed)
    transposed = _randn(g, 2, 5, 3, 4).transpose(1, 2)  # (2, 3, 5, 4), not contiguous
    return [
        Case((torch.arange(8.0).reshape(1, 8, 1, 1),), "T=1, d=1, eight heads"),
        Case((torch.arange(60.0, dtype=torch.float64).reshape(3, 2, 5, 2),), "float64"),
        Case((transposed,), "a non-contiguous input (the output of a transpose)"),
        Case((_randn(g, 4, 6, 7, 4),), "random (4, 6, 7, 4)"),
    ]


# --------------------------------------------------------------------------- multi-head attention

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")


def mha_layout(C: int, bias: bool) -> list[_kit.Param]:
    """The reference's parameters, each projection an ``nn.Linear(C, C)``; weights of scale 1/sqrt(C)."""
    layout = []
    for name in PROJECTIONS:
        layout.append(_kit.Param(f"{name}.weight", (C, C), scale=1 / math.sqrt(C)))
        if bias:
            layout.append(_kit.Param(f"{name}.bias", (C,), scale=0.1))
    return layout


def _mha_case(g, C, H, T, B=2, bias=True, causal=False, mask=None, dtype=torch.float32, label=""):
    kwargs = {
        "bias": bias,
        "causal": causal,
        "state_dict": _kit.random_state_dict(mha_layout(C, bias), g, dtype),
        "x": _randn(g, B, T, C, dtype=dtype),
        "mask": mask,
    }
    return Case((C, H), label or f"n_embd={C}, n_head={H}, B={B}, T={T}", kwargs)


@_kit.single_threaded
def run_multi_head_attention(
    cls,
    n_embd: int,
    n_head: int,
    *,
    bias: bool,
    causal: bool,
    state_dict: dict[str, torch.Tensor],
    x: torch.Tensor,
    mask: torch.Tensor | None,
):
    """``cls(n_embd, n_head, bias=, causal=)`` with ``state_dict`` loaded, in eval mode: ``forward(x, mask=mask)``."""
    layer = _kit.build(
        cls,
        (n_embd, n_head),
        {"bias": bias, "causal": causal},
        state_dict,
        x.dtype,
        f"MultiHeadAttention({n_embd}, {n_head}, bias={bias}, causal={causal})",
    )
    with torch.no_grad():
        out, weights = layer(x, mask=mask)
    return out, weights


def _mha_visible() -> list[Case]:
    g = _kit.seeded(4)
    return [
        _mha_case(g, 4, 2, 3, B=1, label="n_embd=4, n_head=2, B=1, T=3"),
        _mha_case(g, 8, 2, 5, causal=True, label="causal, n_embd=8, n_head=2, B=2, T=5"),
        _mha_case(g, 6, 3, 4, bias=False, mask=_padding([4, 2], 4), label="no biases, padding mask (lengths 4 and 2)"),
    ]


def _mha_hidden(seed: int) -> list[Case]:
    g = _kit.generator("attention.multi_head_attention", seed)
    return [
        _mha_case(g, 8, 1, 4, label="a single head"),
        _mha_case(g, 8, 8, 4, causal=True, label="one channel per head, causal"),
        _mha_case(g, 6, 2, 1, B=3, causal=True, label="T=1, causal"),
        _mha_case(
            g,
            16,
            4,
            6,
            B=3,
            causal=True,
            mask=_padding([6, 3, 0], 6),
            label="causal + padding, one sentence of length 0",
        ),
        _mha_case(g, 12, 3, 5, dtype=torch.float64, causal=True, label="float64, causal"),
        _mha_case(g, 32, 4, 17, B=2, label="random n_embd=32, n_head=4, T=17"),
        _mha_case(
            g,
            24,
            6,
            9,
            B=3,
            bias=False,
            causal=True,
            mask=_padding([9, 4, 7], 9),
            label="random, no biases, causal + padding",
        ),
    ]


SPECS = [
    Spec(
        "attention.softmax",
        "llmcourse.attention:softmax",
        _softmax_visible,
        _softmax_hidden,
        forbidden=FORBIDDEN_SOFTMAX,
        **TOL,
    ),
    Spec(
        "attention.scaled_dot_product_attention",
        "llmcourse.attention:scaled_dot_product_attention",
        _sdpa_visible,
        _sdpa_hidden,
        forbidden=FORBIDDEN_ATTENTION,
        **TOL,
    ),
    Spec("attention.split_heads", "llmcourse.attention:split_heads", _split_visible, _split_hidden),
    Spec("attention.merge_heads", "llmcourse.attention:merge_heads", _merge_visible, _merge_hidden),
    Spec(
        "attention.multi_head_attention",
        "llmcourse.attention:MultiHeadAttention",
        _mha_visible,
        _mha_hidden,
        adapter=run_multi_head_attention,
        forbidden=FORBIDDEN_ATTENTION,
        **TOL,
    ),
]
