"""Cases for assignment 05 (the transformer): LayerNorm, GELU and the MLP, a pre-norm block, the GPT
forward pass and greedy generation with a KV cache.

Most graded objects here are classes. A case does not call them directly: the adapters below
(:func:`run_layernorm`, :func:`run_mlp`, :func:`run_block`, :func:`run_gpt`, :func:`run_generate`,
each ``Spec.adapter``) take the class and the case's inputs as keywords, build the class with the
case's sizes, load seeded random weights whose names are the reference's (``ln_1.weight``,
``attn.q_proj.weight``, ``mlp.fc.weight``, ...), switch to eval mode and run it. The same adapter
runs the student's class in the student's kernel and the reference class in the grader; a failure
report prints the adapter call, which a student can repeat. Weights are drawn from ``weights_seed``,
so every case is small to describe and reproducible.

Nothing here imports ``llmcourse.transformer`` (the answer key is blocked while grading): the
parameter names and shapes are written out from first principles in :func:`mlp_params`,
:func:`block_params` and :func:`gpt_params` (on the kit's :func:`~llmcourse.checks._kit.linear_params`
and :func:`~llmcourse.checks._kit.layernorm_params`).
"""

from __future__ import annotations

import inspect
import sys
import types

import torch

from . import _kit
from ._kit import Param, layernorm_params, linear_params
from .checker import Case, Spec
from .forbidden import GELU_PATHS, LAYER_NORM_PATHS

RTOL = 1e-5
ATOL = 1e-5  # float32: different but correct orders of the same arithmetic stay well inside this
# A whole GPT stacks several blocks, and a rounding difference grows on the way up. Measured: a GPT whose
# LayerNorm is F.layer_norm (the same arithmetic in another order) against the reference, 400 seeds of
# hidden cases, needed |e - g| / (1 + |e|) <= 6.8e-6; but one course seed (1463265160, "random sizes") had
# a logit off by 1.17e-5 at |e| = 0.106, just past ATOL, which cost a correct student the hidden share.
# Bugs in a GPT move logits by 1e-2 or more, so 3e-5 still tells them apart.
GPT_ATOL = 3e-5

# the fields of GPTConfig (the notebook's and the reference's); dropout is always 0 in the cases
CONFIG_FIELDS = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias")
DTYPES = {"float32": torch.float32, "float64": torch.float64}

# the library calls each part asks students to write themselves (the method form: torch.Tensor.<name>)
FORBIDDEN_LAYERNORM = LAYER_NORM_PATHS
FORBIDDEN_GELU = GELU_PATHS
FORBIDDEN_BLOCK = (
    "torch.nn.TransformerEncoderLayer",
    "torch.nn.TransformerDecoderLayer",
    "torch.nn.TransformerEncoder",
    "torch.nn.TransformerDecoder",
    "torch.nn.Transformer",
)


# --------------------------------------------------------------------------- parameter layouts


def mlp_params(prefix: str, C: int, bias: bool) -> list[Param]:
    return linear_params(f"{prefix}fc.", C, 4 * C, bias) + linear_params(f"{prefix}proj.", 4 * C, C, bias)


def block_params(prefix: str, C: int, bias: bool) -> list[Param]:
    attn = [
        p
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj")
        for p in linear_params(f"{prefix}attn.{proj}.", C, C, bias)
    ]
    return (
        layernorm_params(f"{prefix}ln_1.", C, bias)
        + attn
        + layernorm_params(f"{prefix}ln_2.", C, bias)
        + mlp_params(f"{prefix}mlp.", C, bias)
    )


def gpt_params(cfg: dict) -> list[Param]:
    """The GPT's state dict: wte and lm_head are one tied (V, C) matrix, listed under both names."""
    C, V = cfg["n_embd"], cfg["vocab_size"]
    out = [Param("wte.weight", (V, C)), Param("wpe.weight", (cfg["block_size"], C))]
    for i in range(cfg["n_layer"]):
        out += block_params(f"blocks.{i}.", C, cfg["bias"])
    return out + layernorm_params("ln_f.", C, cfg["bias"]) + [Param("lm_head.weight", (V, C), tied="wte.weight")]


def _weights(layout: list[Param], weights_seed: int, dtype) -> dict[str, torch.Tensor]:
    return _kit.random_state_dict(layout, _kit.seeded(weights_seed), dtype)


# --------------------------------------------------------------------------- the adapters


def _config(cls, fields: dict):
    """The config the graded class is built with: the ``GPTConfig`` defined next to it (the
    notebook's own dataclass, or the reference module's), else a plain namespace of the fields."""
    module = sys.modules.get(getattr(cls, "__module__", None) or "")
    config_cls = getattr(module, "GPTConfig", None)
    if isinstance(config_cls, type):
        try:
            return config_cls(**fields)
        except TypeError:
            pass
    return types.SimpleNamespace(**fields)


def _full_config(cfg: dict) -> dict:
    base = {"block_size": 8, "vocab_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 8, "dropout": 0.0, "bias": True}
    return {f: cfg.get(f, base[f]) for f in CONFIG_FIELDS}


@_kit.single_threaded
def run_layernorm(cls, *, ndim: int, bias: bool, eps: float, weights_seed: int, x: torch.Tensor) -> torch.Tensor:
    """``cls(ndim, bias=, eps=)`` with seeded weights, applied to ``x``."""
    state = _weights(layernorm_params("", ndim, bias), weights_seed, x.dtype)
    model = _kit.build(cls, (ndim,), {"bias": bias, "eps": eps}, state, x.dtype, f"LayerNorm({ndim}, bias={bias})")
    with torch.no_grad():
        return model(x)


@_kit.single_threaded
def run_mlp(cls, *, n_embd: int, bias: bool, weights_seed: int, x: torch.Tensor) -> torch.Tensor:
    """``cls(n_embd, bias=)`` with seeded weights, applied to ``x``."""
    state = _weights(mlp_params("", n_embd, bias), weights_seed, x.dtype)
    model = _kit.build(cls, (n_embd,), {"bias": bias}, state, x.dtype, f"MLP({n_embd}, bias={bias})")
    with torch.no_grad():
        return model(x)


@_kit.single_threaded
def run_block(cls, *, config: dict, weights_seed: int, x: torch.Tensor) -> torch.Tensor:
    """``cls(GPTConfig(**config))`` with seeded weights, applied to ``x``."""
    cfg = _full_config(config)
    state = _weights(block_params("", cfg["n_embd"], cfg["bias"]), weights_seed, x.dtype)
    model = _kit.build(cls, (_config(cls, cfg),), {}, state, x.dtype, "Block(config)")
    with torch.no_grad():
        return model(x)


def _gpt(cls, config: dict, weights_seed: int, dtype: str):
    cfg = _full_config(config)
    state = _weights(gpt_params(cfg), weights_seed, DTYPES[dtype])
    return _kit.build(cls, (_config(cls, cfg),), {}, state, DTYPES[dtype], "GPT(config)")


@_kit.single_threaded
def run_gpt(
    cls, *, config: dict, weights_seed: int, idx: torch.Tensor, dtype: str, targets: torch.Tensor | None = None
) -> dict:
    """GPT(config) with seeded weights: (logits, loss) of forward(idx, targets) and its parameter
    count (the tied wte / lm_head matrix counts once, as ``model.parameters()`` yields it once)."""
    model = _gpt(cls, config, weights_seed, dtype)
    with torch.no_grad():
        out = model(idx, targets)
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"forward(idx, targets) should return a tuple (logits, loss), got {type(out).__name__}")
    logits, loss = out
    return {"logits": logits, "loss": loss, "number of parameters": sum(p.numel() for p in model.parameters())}


CACHE_KEY = "uses the KV cache: one new position per step after the prompt"


@_kit.single_threaded
def run_generate(cls, *, config: dict, weights_seed: int, idx: torch.Tensor, max_new_tokens: int, dtype: str) -> dict:
    """GPT(config) with seeded weights, then greedy ``generate`` with and without the cache.

    A pre-hook on ``blocks[0]`` records how many positions each call feeds through the first block;
    with a KV cache, every call after the first (the prompt) feeds exactly one.
    """
    model = _gpt(cls, config, weights_seed, dtype)
    generate = getattr(model, "generate", None)
    if not callable(generate):
        raise TypeError(f"{type(model).__name__} has no generate(idx, max_new_tokens, use_cache) method")
    # the reference also samples (greedy=False by default); ask it for the argmax
    extra = {"greedy": True} if "greedy" in inspect.signature(generate).parameters else {}
    fed: list[int] = []

    def count(module, args, kwargs):
        x = args[0] if args else kwargs.get("x")
        fed.append(int(x.shape[1]) if isinstance(x, torch.Tensor) and x.dim() == 3 else -1)

    n = max_new_tokens
    blocks = getattr(model, "blocks", None)
    hook = blocks[0].register_forward_pre_hook(count, with_kwargs=True) if blocks is not None and len(blocks) else None
    try:
        with torch.no_grad():
            cached = generate(idx.clone(), n, use_cache=True, **extra)
    finally:
        if hook is not None:
            hook.remove()
    with torch.no_grad():
        plain = generate(idx.clone(), n, use_cache=False, **extra)
    uses_cache = n <= 1 or (len(fed) > 0 and all(t == 1 for t in fed[1:]))
    return {"tokens, use_cache=True": cached, "tokens, use_cache=False": plain, CACHE_KEY: uses_cache}


# --------------------------------------------------------------------------- inputs


def _randn(g, shape: tuple[int, ...], dtype: str = "float32", scale: float = 1.0, offset: float = 0.0):
    return _kit.randn(g, *shape, dtype=DTYPES[dtype], scale=scale, offset=offset)


# --------------------------------------------------------------------------- LayerNorm


def _ln(ndim, x, bias=True, eps=1e-5, weights_seed=0):
    return {"ndim": ndim, "bias": bias, "eps": eps, "weights_seed": weights_seed, "x": x}


def _layernorm_visible() -> list[Case]:
    g = _kit.seeded(0)
    return [
        Case((), "C=8, (B, T, C) = (2, 4, 8)", _ln(8, _randn(g, (2, 4, 8)))),
        Case((), "C=8, one position", _ln(8, _randn(g, (1, 1, 8)), weights_seed=1)),
        Case((), "C=8, no bias", _ln(8, _randn(g, (2, 4, 8)), bias=False, weights_seed=2)),
    ]


def _layernorm_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("transformer.LayerNorm", seed)
    g = _kit.seeded(_kit.new_seed(rng))
    cases = [
        Case((), "float64", _ln(16, _randn(g, (3, 5, 16), "float64"), weights_seed=_kit.new_seed(rng))),
        Case(
            (),
            "no bias, float64",
            _ln(12, _randn(g, (2, 3, 12), "float64"), bias=False, weights_seed=_kit.new_seed(rng)),
        ),
        Case(
            (),
            "tiny inputs, where eps matters",
            _ln(8, _randn(g, (2, 4, 8), scale=1e-3), weights_seed=_kit.new_seed(rng)),
        ),
        Case(
            (),
            "a different eps (BERT's 1e-12)",
            _ln(8, _randn(g, (2, 4, 8)), eps=1e-12, weights_seed=_kit.new_seed(rng)),
        ),
        Case((), "large common offset", _ln(8, _randn(g, (2, 4, 8), offset=20.0), weights_seed=_kit.new_seed(rng))),
        Case((), "2-D input (N, C)", _ln(10, _randn(g, (7, 10)), weights_seed=_kit.new_seed(rng))),
        Case((), "C=1", _ln(1, _randn(g, (2, 3, 1)), weights_seed=_kit.new_seed(rng))),
    ]
    for _ in range(2):
        C, B, T = rng.randrange(2, 40), rng.randrange(1, 4), rng.randrange(1, 9)
        cases.append(
            Case(
                (),
                "random sizes",
                _ln(
                    C,
                    _randn(g, (B, T, C), scale=rng.uniform(0.1, 3)),
                    bias=rng.random() < 0.7,
                    weights_seed=_kit.new_seed(rng),
                ),
            )
        )
    return cases


# --------------------------------------------------------------------------- gelu


def _gelu_visible() -> list[Case]:
    return [
        Case((torch.linspace(-4, 4, 17),), "17 points in [-4, 4]"),
        Case((_randn(_kit.seeded(1), (2, 3, 5)),), "a (2, 3, 5) tensor"),
    ]


def _gelu_hidden(seed: int) -> list[Case]:
    g = _kit.seeded(_kit.new_seed(_kit.rng("transformer.gelu", seed)))
    return [
        Case((torch.linspace(-3, 3, 101, dtype=torch.float64),), "float64, where tanh and erf forms differ"),
        Case((torch.tensor([-30.0, -10.0, -6.0, 0.0, 6.0, 10.0, 30.0]),), "large magnitudes"),
        Case((torch.zeros(0),), "an empty tensor"),
        Case((_randn(g, (4, 8, 16), scale=2.0),), "random (4, 8, 16)"),
    ]


# --------------------------------------------------------------------------- MLP


def _mlp(n_embd, x, bias=True, weights_seed=0):
    return {"n_embd": n_embd, "bias": bias, "weights_seed": weights_seed, "x": x}


def _mlp_visible() -> list[Case]:
    g = _kit.seeded(2)
    return [
        Case((), "n_embd=8, (B, T, C) = (2, 4, 8)", _mlp(8, _randn(g, (2, 4, 8)))),
        Case((), "n_embd=8, no bias", _mlp(8, _randn(g, (1, 3, 8)), bias=False, weights_seed=1)),
    ]


def _mlp_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("transformer.MLP", seed)
    g = _kit.seeded(_kit.new_seed(rng))
    cases = [
        Case((), "float64", _mlp(8, _randn(g, (2, 4, 8), "float64"), weights_seed=_kit.new_seed(rng))),
        Case(
            (),
            "no bias, float64",
            _mlp(6, _randn(g, (3, 2, 6), "float64"), bias=False, weights_seed=_kit.new_seed(rng)),
        ),
        Case((), "one position", _mlp(16, _randn(g, (1, 1, 16)), weights_seed=_kit.new_seed(rng))),
        Case((), "large inputs", _mlp(8, _randn(g, (2, 4, 8), scale=5.0), weights_seed=_kit.new_seed(rng))),
    ]
    for _ in range(2):
        C = rng.randrange(1, 33)
        cases.append(
            Case(
                (),
                "random sizes",
                _mlp(
                    C,
                    _randn(g, (rng.randrange(1, 4), rng.randrange(1, 9), C)),
                    bias=rng.random() < 0.7,
                    weights_seed=_kit.new_seed(rng),
                ),
            )
        )
    return cases


# --------------------------------------------------------------------------- Block


def _blk(x, n_head=2, bias=True, weights_seed=0):
    return {"config": {"n_embd": x.shape[-1], "n_head": n_head, "bias": bias}, "weights_seed": weights_seed, "x": x}


def _block_visible() -> list[Case]:
    g = _kit.seeded(3)
    return [
        Case((), "n_embd=8, 2 heads, (B, T, C) = (1, 4, 8)", _blk(_randn(g, (1, 4, 8)))),
        Case((), "n_embd=8, 2 heads, batch of 2", _blk(_randn(g, (2, 4, 8)), weights_seed=1)),
    ]


def _block_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("transformer.Block", seed)
    g = _kit.seeded(_kit.new_seed(rng))
    cases = [
        Case((), "T=1", _blk(_randn(g, (2, 1, 8)), weights_seed=_kit.new_seed(rng))),
        Case((), "float64, batch 3", _blk(_randn(g, (3, 6, 12), "float64"), n_head=3, weights_seed=_kit.new_seed(rng))),
        Case((), "no bias", _blk(_randn(g, (2, 5, 8)), bias=False, weights_seed=_kit.new_seed(rng))),
        Case((), "one head", _blk(_randn(g, (1, 7, 8)), n_head=1, weights_seed=_kit.new_seed(rng))),
        Case((), "head size 1", _blk(_randn(g, (2, 4, 4)), n_head=4, weights_seed=_kit.new_seed(rng))),
    ]
    for _ in range(2):
        H = rng.randrange(1, 5)
        C = H * rng.randrange(1, 9)
        cases.append(
            Case(
                (),
                "random sizes",
                _blk(
                    _randn(g, (rng.randrange(1, 4), rng.randrange(1, 17), C)),
                    n_head=H,
                    bias=rng.random() < 0.7,
                    weights_seed=_kit.new_seed(rng),
                ),
            )
        )
    return cases


# --------------------------------------------------------------------------- GPT forward


def _idx(g, B, T, V):
    return _kit.token_ids(g, B, T, V)


def _gpt_case(config, idx, targets=None, dtype="float32", weights_seed=0):
    k = {"config": config, "weights_seed": weights_seed, "idx": idx, "dtype": dtype}
    if targets is not None:
        k["targets"] = targets
    return k


SMALL = {"block_size": 8, "vocab_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 8, "bias": True}


def _gpt_visible() -> list[Case]:
    g = _kit.seeded(4)
    idx = _idx(g, 1, 4, 16)
    return [
        Case((), "n_embd=8, 2 heads, 2 layers, (B, T) = (1, 4), no targets", _gpt_case(SMALL, idx)),
        Case((), "the same with targets", _gpt_case(SMALL, idx, _idx(g, 1, 4, 16))),
        Case((), "batch of 2", _gpt_case(SMALL, _idx(g, 2, 4, 16), _idx(g, 2, 4, 16), weights_seed=1)),
    ]


def _gpt_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("transformer.GPT", seed)
    g = _kit.seeded(_kit.new_seed(rng))
    cfg = dict(SMALL)
    ignore = _idx(g, 2, 6, 16)
    ignore[0, :2] = -1
    ignore[1, -1] = -1
    cases = [
        Case((), "T=1", _gpt_case(cfg, _idx(g, 3, 1, 16), _idx(g, 3, 1, 16), weights_seed=_kit.new_seed(rng))),
        Case((), "T=block_size", _gpt_case(cfg, _idx(g, 2, 8, 16), _idx(g, 2, 8, 16), weights_seed=_kit.new_seed(rng))),
        Case(
            (),
            "float64, batch 3",
            _gpt_case(
                {**cfg, "n_embd": 12, "n_head": 3},
                _idx(g, 3, 5, 16),
                _idx(g, 3, 5, 16),
                dtype="float64",
                weights_seed=_kit.new_seed(rng),
            ),
        ),
        Case(
            (),
            "no bias",
            _gpt_case({**cfg, "bias": False}, _idx(g, 2, 5, 16), _idx(g, 2, 5, 16), weights_seed=_kit.new_seed(rng)),
        ),
        Case(
            (),
            "targets with ignored positions (-1)",
            _gpt_case(cfg, _idx(g, 2, 6, 16), ignore, weights_seed=_kit.new_seed(rng)),
        ),
        Case(
            (),
            "one layer, no targets",
            _gpt_case({**cfg, "n_layer": 1}, _idx(g, 2, 3, 16), weights_seed=_kit.new_seed(rng)),
        ),
    ]
    for _ in range(2):
        H = rng.randrange(1, 4)
        rc = {
            "block_size": rng.randrange(2, 17),
            "vocab_size": rng.randrange(2, 60),
            "n_layer": rng.randrange(1, 4),
            "n_head": H,
            "n_embd": H * rng.randrange(2, 9),
            "bias": rng.random() < 0.7,
        }
        B, T = rng.randrange(1, 4), rng.randrange(1, rc["block_size"] + 1)
        cases.append(
            Case(
                (),
                "random sizes",
                _gpt_case(
                    rc,
                    _idx(g, B, T, rc["vocab_size"]),
                    _idx(g, B, T, rc["vocab_size"]),
                    weights_seed=_kit.new_seed(rng),
                ),
            )
        )
    return cases


# --------------------------------------------------------------------------- generation


def _gen_case(config, idx, max_new_tokens, dtype="float32", weights_seed=0):
    return {
        "config": config,
        "weights_seed": weights_seed,
        "idx": idx,
        "max_new_tokens": max_new_tokens,
        "dtype": dtype,
    }


GEN = {"block_size": 16, "vocab_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 8, "bias": True}


def _generate_visible() -> list[Case]:
    g = _kit.seeded(5)
    return [
        Case((), "n_embd=8, 2 heads, 2 layers, a 4-token prompt, 6 new tokens", _gen_case(GEN, _idx(g, 1, 4, 16), 6)),
        Case((), "batch of 2", _gen_case(GEN, _idx(g, 2, 3, 16), 5, weights_seed=1)),
    ]


def _generate_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("transformer.generate", seed)
    g = _kit.seeded(_kit.new_seed(rng))
    cases = [
        Case((), "a 1-token prompt", _gen_case(GEN, _idx(g, 1, 1, 16), 8, weights_seed=_kit.new_seed(rng))),
        Case((), "no new tokens", _gen_case(GEN, _idx(g, 2, 5, 16), 0, weights_seed=_kit.new_seed(rng))),
        Case((), "one new token", _gen_case(GEN, _idx(g, 2, 5, 16), 1, weights_seed=_kit.new_seed(rng))),
        Case(
            (),
            "prompt + new tokens fill block_size exactly",
            _gen_case(GEN, _idx(g, 2, 6, 16), 10, weights_seed=_kit.new_seed(rng)),
        ),
        Case(
            (),
            "float64, batch 3",
            _gen_case(
                {**GEN, "n_embd": 12, "n_head": 3},
                _idx(g, 3, 4, 16),
                7,
                dtype="float64",
                weights_seed=_kit.new_seed(rng),
            ),
        ),
        Case(
            (),
            "no bias, 3 layers",
            _gen_case({**GEN, "bias": False, "n_layer": 3}, _idx(g, 1, 3, 16), 9, weights_seed=_kit.new_seed(rng)),
        ),
    ]
    for _ in range(2):
        H = rng.randrange(1, 4)
        rc = {
            "block_size": rng.randrange(4, 25),
            "vocab_size": rng.randrange(2, 60),
            "n_layer": rng.randrange(1, 4),
            "n_head": H,
            "n_embd": H * rng.randrange(2, 9),
            "bias": rng.random() < 0.7,
        }
        T = rng.randrange(1, rc["block_size"] // 2 + 1)
        n = rng.randrange(0, rc["block_size"] - T + 1)
        cases.append(
            Case(
                (),
                "random sizes",
                _gen_case(
                    rc,
                    _idx(g, rng.randrange(1, 4), T, rc["vocab_size"]),
                    n,
                    dtype="float64" if rng.random() < 0.5 else "float32",
                    weights_seed=_kit.new_seed(rng),
                ),
            )
        )
    return cases


SPECS = [
    Spec(
        "transformer.LayerNorm",
        "llmcourse.transformer:LayerNorm",
        _layernorm_visible,
        _layernorm_hidden,
        rtol=RTOL,
        atol=GPT_ATOL,
        adapter=run_layernorm,
        forbidden=FORBIDDEN_LAYERNORM,
    ),
    Spec(
        "transformer.gelu",
        "llmcourse.transformer:gelu",
        _gelu_visible,
        _gelu_hidden,
        rtol=RTOL,
        atol=GPT_ATOL,
        forbidden=FORBIDDEN_GELU,
    ),
    Spec(
        "transformer.MLP",
        "llmcourse.transformer:MLP",
        _mlp_visible,
        _mlp_hidden,
        rtol=RTOL,
        atol=GPT_ATOL,
        adapter=run_mlp,
        forbidden=FORBIDDEN_GELU,
    ),
    Spec(
        "transformer.Block",
        "llmcourse.transformer:Block",
        _block_visible,
        _block_hidden,
        rtol=RTOL,
        atol=GPT_ATOL,
        adapter=run_block,
        forbidden=FORBIDDEN_LAYERNORM + FORBIDDEN_BLOCK,
    ),
    Spec(
        "transformer.GPT",
        "llmcourse.transformer:GPT",
        _gpt_visible,
        _gpt_hidden,
        rtol=RTOL,
        atol=GPT_ATOL,
        adapter=run_gpt,
        forbidden=FORBIDDEN_LAYERNORM + FORBIDDEN_BLOCK,
    ),
    Spec(
        "transformer.generate",
        "llmcourse.transformer:GPT",
        _generate_visible,
        _generate_hidden,
        rtol=RTOL,
        atol=GPT_ATOL,
        adapter=run_generate,
    ),
]
