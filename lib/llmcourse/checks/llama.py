"""Cases for assignment 05b (a modern decoder): RMSNorm, rotary position embeddings, the SwiGLU MLP and
grouped-query attention, the four parts that turn GPT-2 into Llama, Qwen or SmolLM.

The references live in ``llmcourse.llama`` (the answer key, blocked while grading), which
``tests/lib/test_llama.py`` holds equal to PyTorch's built-ins (``F.rms_norm``,
``F.scaled_dot_product_attention(..., enable_gqa=True)``) and to Hugging Face's Llama. The notebook's
visible test cells also compare with those built-ins directly, in front of the student.

- ``RMSNorm`` and ``SwiGLU`` are classes: :func:`run_rmsnorm` and :func:`run_swiglu` build them with the
  case's sizes, load seeded weights under the reference's parameter names (``weight``;
  ``gate_up_proj.weight``, ``down_proj.weight``) and run them. ``SwiGLU`` takes a config; the adapter
  passes a plain namespace with the two fields it reads (``n_embd``, ``hidden``).
- ``rotary_tables(head_dim, n_pos, theta)`` and ``apply_rotary(x, cos, sin)`` are functions. The
  position offset of a KV cache (new tokens at positions ``past .. past+T-1``) is the rows
  ``cos[past:past+T]``: hidden cases hand ``apply_rotary`` tables that start at such an offset. The
  tables in those inputs are written out here (:func:`_tables`) from the formula, not from the answer key.
- ``grouped_query_attention(q, k, v, past=0)`` is a function: H query heads over Hkv key/value heads,
  causal, with the first ``past`` keys already cached.
"""

from __future__ import annotations

import types

import torch

from . import _kit
from ._kit import Param, gain, linear_params
from .checker import Case, Spec
from .forbidden import ATTENTION_PATHS

RTOL = 1e-5
ATOL = 1e-5  # float32: different but correct orders of the same arithmetic stay well inside this
DTYPES = {"float32": torch.float32, "float64": torch.float64}

# the library calls each part asks students to write themselves
FORBIDDEN_RMSNORM = (
    "torch.nn.functional.rms_norm",
    "torch.nn.RMSNorm",
    "torch.rms_norm",
    "torch.ops.aten.rms_norm",
    "torch.ops.aten._fused_rms_norm",
    "transformers.models.llama.modeling_llama.LlamaRMSNorm",
)
FORBIDDEN_ROTARY = ("transformers.models.llama.modeling_llama.apply_rotary_pos_emb",)
FORBIDDEN_SWIGLU = ("transformers.models.llama.modeling_llama.LlamaMLP",)
FORBIDDEN_ATTENTION = (
    *ATTENTION_PATHS,
    "transformers.models.llama.modeling_llama.eager_attention_forward",
    "transformers.models.llama.modeling_llama.repeat_kv",
    "transformers.integrations.sdpa_attention.sdpa_attention_forward",
)


def _randn(g, shape: tuple[int, ...], dtype: str = "float32", scale: float = 1.0, offset: float = 0.0):
    return _kit.randn(g, *shape, dtype=DTYPES[dtype], scale=scale, offset=offset)


# --------------------------------------------------------------------------- the adapters


def swiglu_params(C: int, hidden: int) -> list[Param]:
    """gate and up fused in one Linear (rows: gate, then up), then down; no biases."""
    return linear_params("gate_up_proj.", C, 2 * hidden, bias=False) + linear_params(
        "down_proj.", hidden, C, bias=False
    )


@_kit.single_threaded
def run_rmsnorm(cls, *, ndim: int, eps: float, weights_seed: int, x: torch.Tensor) -> torch.Tensor:
    """``cls(ndim, eps=eps)`` with a seeded gain ``weight``, applied to ``x``."""
    state = _kit.random_state_dict([gain("weight", ndim)], _kit.seeded(weights_seed), x.dtype)
    model = _kit.build(cls, (ndim,), {"eps": eps}, state, x.dtype, f"RMSNorm({ndim}, eps={eps})")
    with torch.no_grad():
        return model(x)


@_kit.single_threaded
def run_swiglu(cls, *, n_embd: int, hidden: int, weights_seed: int, x: torch.Tensor) -> torch.Tensor:
    """``cls(config)`` (config.n_embd, config.hidden) with seeded weights, applied to ``x``."""
    config = types.SimpleNamespace(n_embd=n_embd, hidden=hidden)
    state = _kit.random_state_dict(swiglu_params(n_embd, hidden), _kit.seeded(weights_seed), x.dtype)
    model = _kit.build(cls, (config,), {}, state, x.dtype, f"SwiGLU(config with n_embd={n_embd}, hidden={hidden})")
    with torch.no_grad():
        return model(x)


# --------------------------------------------------------------------------- RMSNorm


def _rms(ndim, x, eps=1e-5, weights_seed=0):
    return {"ndim": ndim, "eps": eps, "weights_seed": weights_seed, "x": x}


def _rmsnorm_visible() -> list[Case]:
    g = _kit.seeded(0)
    return [
        Case((), "C=8, (B, T, C) = (2, 4, 8)", _rms(8, _randn(g, (2, 4, 8)))),
        Case((), "C=8, one position", _rms(8, _randn(g, (1, 1, 8)), weights_seed=1)),
        Case((), "C=8, inputs far from zero mean", _rms(8, _randn(g, (2, 3, 8), offset=3.0), weights_seed=2)),
    ]


def _rmsnorm_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("llama.RMSNorm", seed)
    g = _kit.seeded(_kit.new_seed(rng))
    cases = [
        Case((), "float64", _rms(16, _randn(g, (3, 5, 16), "float64"), weights_seed=_kit.new_seed(rng))),
        Case(
            (),
            "tiny inputs, where eps matters",
            _rms(8, _randn(g, (2, 4, 8), scale=1e-3), weights_seed=_kit.new_seed(rng)),
        ),
        Case((), "a different eps", _rms(8, _randn(g, (2, 4, 8)), eps=1e-2, weights_seed=_kit.new_seed(rng))),
        Case((), "large common offset", _rms(8, _randn(g, (2, 4, 8), offset=20.0), weights_seed=_kit.new_seed(rng))),
        Case((), "2-D input (N, C)", _rms(10, _randn(g, (7, 10)), weights_seed=_kit.new_seed(rng))),
        Case((), "4-D input (B, H, T, C)", _rms(6, _randn(g, (2, 3, 4, 6)), weights_seed=_kit.new_seed(rng))),
        Case((), "C=1", _rms(1, _randn(g, (2, 3, 1)), weights_seed=_kit.new_seed(rng))),
        Case((), "an all-zero row", _rms(8, torch.zeros(1, 2, 8), weights_seed=_kit.new_seed(rng))),
    ]
    for _ in range(2):
        C, B, T = rng.randrange(2, 40), rng.randrange(1, 4), rng.randrange(1, 9)
        cases.append(
            Case(
                (),
                "random sizes",
                _rms(C, _randn(g, (B, T, C), scale=rng.uniform(0.1, 3)), weights_seed=_kit.new_seed(rng)),
            )
        )
    return cases


# --------------------------------------------------------------------------- rotary


def _tables(head_dim: int, start: int, n: int, theta: float, dtype: str = "float32"):
    """cos, sin (n, head_dim) of positions start .. start+n-1, from the formula (angle of position p,
    pair i: p * theta^(-2i/head_dim), the same angle on channels i and i + head_dim/2), in float64."""
    i = torch.arange(head_dim // 2, dtype=torch.float64)
    p = torch.arange(start, start + n, dtype=torch.float64)
    angles = p[:, None] * theta ** (-2 * i / head_dim)[None, :]  # (n, hd/2)
    angles = torch.cat([angles, angles], dim=-1)  # (n, hd)
    return angles.cos().to(DTYPES[dtype]), angles.sin().to(DTYPES[dtype])


def _tables_visible() -> list[Case]:
    return [
        Case((), "head_dim=8, 6 positions, theta=10000", {"head_dim": 8, "n_pos": 6, "theta": 10000.0}),
        Case((), "head_dim=4, 3 positions, theta=100", {"head_dim": 4, "n_pos": 3, "theta": 100.0}),
    ]


def _tables_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("llama.rotary_tables", seed)
    cases = [
        Case((), "head_dim=2 (one pair)", {"head_dim": 2, "n_pos": 5, "theta": 10000.0}),
        Case((), "one position", {"head_dim": 8, "n_pos": 1, "theta": 10000.0}),
        Case((), "no positions", {"head_dim": 8, "n_pos": 0, "theta": 10000.0}),
        Case((), "SmolLM2's head size and theta", {"head_dim": 64, "n_pos": 32, "theta": 100000.0}),
    ]
    for _ in range(2):
        hd = 2 * rng.randrange(1, 17)
        theta = rng.choice([500.0, 10000.0, 500000.0])
        cases.append(Case((), "random sizes", {"head_dim": hd, "n_pos": rng.randrange(2, 48), "theta": theta}))
    return cases


def _rot(x, start: int, theta: float = 10000.0, broadcast_heads: bool = False):
    """apply_rotary's inputs: x (..., T, hd) at positions start .. start+T-1. With broadcast_heads, x is
    laid out (B, T, H, hd), as a decoder holds it before the heads move forward, and the tables are (T, 1, hd)."""
    T = x.shape[-3] if broadcast_heads else x.shape[-2]
    cos, sin = _tables(x.shape[-1], start, T, theta, str(x.dtype).removeprefix("torch."))
    if broadcast_heads:
        cos, sin = cos[:, None, :], sin[:, None, :]
    return (x, cos, sin)


def _apply_visible() -> list[Case]:
    g = _kit.seeded(1)
    return [
        Case(_rot(_randn(g, (1, 2, 4, 8)), 0), "(B, H, T, hd) = (1, 2, 4, 8), positions 0..3"),
        Case(_rot(_randn(g, (1, 2, 1, 8)), 5), "one new token at position 5 (after a 5-token cache)"),
    ]


def _apply_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("llama.apply_rotary", seed)
    g = _kit.seeded(_kit.new_seed(rng))
    cases = [
        Case(_rot(_randn(g, (2, 3, 6, 8), "float64"), 0), "float64"),
        Case(_rot(_randn(g, (1, 2, 3, 8)), 7), "three new tokens after a cache"),
        Case(_rot(_randn(g, (2, 5, 3, 8)), 0, broadcast_heads=True), "(B, T, H, hd) with (T, 1, hd) tables"),
        Case(_rot(_randn(g, (1, 1, 4, 2)), 0), "head_dim=2"),
        Case(_rot(_randn(g, (2, 2, 5, 16)), 100, theta=100000.0), "a large offset, another theta"),
        Case(_rot(_randn(g, (3, 8)), 2), "2-D input (T, hd)"),
    ]
    for _ in range(2):
        hd = 2 * rng.randrange(1, 9)
        shape = (rng.randrange(1, 3), rng.randrange(1, 4), rng.randrange(1, 7), hd)
        cases.append(Case(_rot(_randn(g, shape), rng.randrange(0, 30)), "random sizes and offset"))
    return cases


# --------------------------------------------------------------------------- SwiGLU


def _swi(n_embd, hidden, x, weights_seed=0):
    return {"n_embd": n_embd, "hidden": hidden, "weights_seed": weights_seed, "x": x}


def _swiglu_visible() -> list[Case]:
    g = _kit.seeded(2)
    return [
        Case((), "n_embd=8, hidden=12, (B, T, C) = (2, 4, 8)", _swi(8, 12, _randn(g, (2, 4, 8)))),
        Case((), "n_embd=6, hidden=16, one position", _swi(6, 16, _randn(g, (1, 1, 6)), weights_seed=1)),
    ]


def _swiglu_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("llama.SwiGLU", seed)
    g = _kit.seeded(_kit.new_seed(rng))
    cases = [
        Case((), "float64", _swi(8, 20, _randn(g, (2, 4, 8), "float64"), weights_seed=_kit.new_seed(rng))),
        Case((), "hidden narrower than n_embd", _swi(12, 4, _randn(g, (2, 3, 12)), weights_seed=_kit.new_seed(rng))),
        Case((), "large inputs", _swi(8, 16, _randn(g, (2, 4, 8), scale=5.0), weights_seed=_kit.new_seed(rng))),
        Case((), "2-D input (N, C)", _swi(8, 16, _randn(g, (5, 8)), weights_seed=_kit.new_seed(rng))),
    ]
    for _ in range(2):
        C, Hd = rng.randrange(1, 33), rng.randrange(1, 65)
        x = _randn(g, (rng.randrange(1, 4), rng.randrange(1, 9), C))
        cases.append(Case((), "random sizes", _swi(C, Hd, x, weights_seed=_kit.new_seed(rng))))
    return cases


# --------------------------------------------------------------------------- grouped-query attention


def _qkv(g, B, H, Hkv, T, hd, past=0, dtype="float32"):
    """q (B, H, T, hd) for the T newest positions; k, v (B, Hkv, past + T, hd) for all of them."""
    q = _randn(g, (B, H, T, hd), dtype)
    k = _randn(g, (B, Hkv, past + T, hd), dtype)
    v = _randn(g, (B, Hkv, past + T, hd), dtype)
    return (q, k, v), ({"past": past} if past else {})


def _gqa(label, g, *sizes, **kw) -> Case:
    args, kwargs = _qkv(g, *sizes, **kw)
    return Case(args, label, kwargs)


def _gqa_visible() -> list[Case]:
    g = _kit.seeded(3)
    return [
        _gqa("4 query heads over 2 key/value heads, T=5, hd=4", g, 1, 4, 2, 5, 4),
        _gqa("SmolLM2's grouping: 9 over 3, batch of 2", g, 2, 9, 3, 3, 4),
        _gqa("one new token after 4 cached (past=4)", g, 1, 4, 2, 1, 4, past=4),
    ]


def _gqa_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("llama.grouped_query_attention", seed)
    g = _kit.seeded(_kit.new_seed(rng))
    cases = [
        _gqa("multi-query: one key/value head", g, 2, 4, 1, 6, 8),
        _gqa("plain multi-head: as many key/value heads as query heads", g, 1, 3, 3, 5, 4),
        _gqa("T=1, nothing cached", g, 2, 4, 2, 1, 4),
        _gqa("several new tokens after a cache", g, 1, 6, 2, 3, 4, past=5),
        _gqa("float64", g, 2, 4, 2, 7, 8, dtype="float64"),
        _gqa("head size 1", g, 1, 2, 1, 4, 1),
        _gqa("large scores", g, 1, 4, 2, 4, 64),
    ]
    for _ in range(2):
        Hkv = rng.randrange(1, 4)
        H = Hkv * rng.randrange(1, 4)
        sizes = (rng.randrange(1, 3), H, Hkv, rng.randrange(1, 8), rng.randrange(1, 17))
        cases.append(_gqa("random sizes", g, *sizes, past=rng.choice([0, 0, rng.randrange(1, 10)])))
    return cases


SPECS = [
    Spec(
        "llama.RMSNorm",
        "llmcourse.llama:RMSNorm",
        _rmsnorm_visible,
        _rmsnorm_hidden,
        rtol=RTOL,
        atol=ATOL,
        adapter=run_rmsnorm,
        forbidden=FORBIDDEN_RMSNORM,
    ),
    Spec(
        "llama.rotary_tables",
        "llmcourse.llama:rotary_tables",
        _tables_visible,
        _tables_hidden,
        rtol=RTOL,
        atol=ATOL,
        forbidden=FORBIDDEN_ROTARY,
    ),
    Spec(
        "llama.apply_rotary",
        "llmcourse.llama:apply_rotary",
        _apply_visible,
        _apply_hidden,
        rtol=RTOL,
        atol=ATOL,
        forbidden=FORBIDDEN_ROTARY,
    ),
    Spec(
        "llama.SwiGLU",
        "llmcourse.llama:SwiGLU",
        _swiglu_visible,
        _swiglu_hidden,
        rtol=RTOL,
        atol=ATOL,
        adapter=run_swiglu,
        forbidden=FORBIDDEN_SWIGLU,
    ),
    Spec(
        "llama.grouped_query_attention",
        "llmcourse.llama:grouped_query_attention",
        _gqa_visible,
        _gqa_hidden,
        rtol=RTOL,
        atol=ATOL,
        forbidden=FORBIDDEN_ATTENTION,
    ),
]
