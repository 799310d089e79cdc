"""Cases for assignment 05 (the transformer): LayerNorm, GELU and the MLP, a pre-norm block, the GPT
forward pass and greedy generation with a KV cache.

Most graded objects here are classes. A case does not call them directly: the adapters below
(:func:`_call_layernorm`, :func:`_call_mlp`, :func:`_call_block`, :func:`_call_gpt`,
:func:`_call_generate`, used as ``Spec.call``) build the class with the case's sizes, load seeded
random weights whose names are the reference's (``ln_1.weight``, ``attn.q_proj.weight``,
``mlp.fc.weight``, ...), switch to eval mode and run it. The same adapter runs the student's class
in the student's kernel and the reference class in the grader. Weights and inputs are drawn from
``torch.Generator`` seeds, so every case is small to describe and reproducible.

Nothing here imports ``llmcourse.transformer`` (the answer key is blocked while grading): the
parameter names and shapes are written out from first principles in :func:`layernorm_params`,
:func:`mlp_params`, :func:`block_params` and :func:`gpt_params`.
"""

from __future__ import annotations

import inspect
import math
import random
import sys
import types

from .checker import Case, Spec, seeded_rng_seed

RTOL = 1e-5
ATOL = 1e-5  # float32: different but correct orders of the same arithmetic stay well inside this

# the fields of GPTConfig (the notebook's and the reference's); dropout is always 0 in the cases
CONFIG_FIELDS = ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "dropout", "bias")


def _torch():
    import torch  # imported lazily: the checks registry must stay cheap to import

    return torch


def _rng(name: str, seed: int) -> random.Random:
    return random.Random(seeded_rng_seed(name, seed))


def _dtype(name: str):
    return {"float32": _torch().float32, "float64": _torch().float64}[name]


# --------------------------------------------------------------------------- parameter layouts
# (name, shape, kind): kind says how a random value is drawn (a LayerNorm gain is near 1, a Linear
# weight is scaled by 1/sqrt(fan_in) so activations keep a unit scale through the network).


def layernorm_params(prefix: str, C: int, bias: bool) -> list[tuple[str, tuple, str]]:
    out = [(f"{prefix}weight", (C,), "gain")]
    return out + ([(f"{prefix}bias", (C,), "shift")] if bias else [])


def linear_params(prefix: str, n_in: int, n_out: int, bias: bool) -> list[tuple[str, tuple, str]]:
    out = [(f"{prefix}weight", (n_out, n_in), "linear")]  # nn.Linear stores weight as (out, in)
    return out + ([(f"{prefix}bias", (n_out,), "shift")] if bias else [])


def mlp_params(prefix: str, C: int, bias: bool) -> list[tuple[str, tuple, str]]:
    return linear_params(f"{prefix}fc.", C, 4 * C, bias) + linear_params(f"{prefix}proj.", 4 * C, C, bias)


def block_params(prefix: str, C: int, bias: bool) -> list[tuple[str, tuple, str]]:
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


def gpt_params(cfg: dict) -> list[tuple[str, tuple, str]]:
    """The GPT's state dict: wte and lm_head are one tied (V, C) matrix, listed under both names."""
    C, V = cfg["n_embd"], cfg["vocab_size"]
    out = [("wte.weight", (V, C), "embedding"), ("wpe.weight", (cfg["block_size"], C), "embedding")]
    for i in range(cfg["n_layer"]):
        out += block_params(f"blocks.{i}.", C, cfg["bias"])
    return out + layernorm_params("ln_f.", C, cfg["bias"]) + [("lm_head.weight", (V, C), "tied:wte.weight")]


def random_state_dict(params: list[tuple[str, tuple, str]], seed: int, dtype) -> dict:
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    state = {}
    for name, shape, kind in params:
        if kind.startswith("tied:"):
            state[name] = state[kind[5:]]
            continue
        z = torch.randn(shape, generator=g, dtype=torch.float64)
        if kind == "gain":
            z = 1.0 + 0.3 * z
        elif kind == "shift":
            z = 0.2 * z
        elif kind == "linear":
            z = z / math.sqrt(shape[1])
        state[name] = z.to(dtype)
    return state


# --------------------------------------------------------------------------- the adapters


class _one_thread:
    """Run a case on one CPU thread, then restore the setting. The models here are tiny: with two
    or more OpenMP threads on a busy machine, each matmul waits on thread hand-offs (10x slower)."""

    def __enter__(self):
        torch = _torch()
        self.before = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        _torch().set_num_threads(self.before)


def _one_thread_call(adapter):
    def call(cls, case: Case):
        with _one_thread():
            return adapter(cls, case)

    call.__name__ = call.__qualname__ = adapter.__name__
    call.__doc__ = adapter.__doc__
    return call


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


def _load(model, state: dict, what: str):
    """Load ``state`` into ``model`` strictly; names or shapes that differ become a readable error."""
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"{what} should be a torch.nn.Module (a class with __init__ and forward), got {type(model).__name__}"
        )
    ours = model.state_dict()
    missing = [k for k in state if k not in ours]
    unexpected = [k for k in ours if k not in state]
    if missing or unexpected:

        def few(keys):
            return ", ".join(repr(k) for k in keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")

        parts = []
        if missing:
            parts.append(f"missing {few(missing)} (the reference has them, yours does not)")
        if unexpected:
            parts.append(f"unexpected {few(unexpected)} (yours has them, the reference does not)")
        raise ValueError(
            f"{what}'s parameter names differ from the reference's: "
            + "; ".join(parts)
            + ". Use the attribute names the notebook gives; register helper tensors "
            "with persistent=False"
        )
    for k, v in state.items():
        if tuple(ours[k].shape) != tuple(v.shape):
            raise ValueError(
                f"{what}: parameter {k!r} has shape {tuple(ours[k].shape)} in yours, "
                f"{tuple(v.shape)} in the reference (nn.Linear(n_in, n_out) stores its "
                "weight as (n_out, n_in))"
            )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # pragma: no cover - the checks above catch the usual causes
        raise ValueError(f"{what}: load_state_dict failed: {e}") from None
    return model.eval()


def _build(cls, args: tuple, kwargs: dict, state: dict, dtype, what: str):
    """``cls(*args, **kwargs)`` in ``dtype`` with ``state`` loaded, in eval mode."""
    torch = _torch()
    model = cls(*args, **kwargs)
    if isinstance(model, torch.nn.Module):
        model = model.to(dtype)
    return _load(model, state, what)


@_one_thread_call
def _call_layernorm(cls, case: Case):
    k = case.kwargs
    state = random_state_dict(layernorm_params("", k["ndim"], k["bias"]), k["weights_seed"], k["x"].dtype)
    model = _build(
        cls,
        (k["ndim"],),
        {"bias": k["bias"], "eps": k["eps"]},
        state,
        k["x"].dtype,
        f"LayerNorm({k['ndim']}, bias={k['bias']})",
    )
    with _torch().no_grad():
        return model(k["x"])


@_one_thread_call
def _call_mlp(cls, case: Case):
    k = case.kwargs
    state = random_state_dict(mlp_params("", k["n_embd"], k["bias"]), k["weights_seed"], k["x"].dtype)
    model = _build(
        cls, (k["n_embd"],), {"bias": k["bias"]}, state, k["x"].dtype, f"MLP({k['n_embd']}, bias={k['bias']})"
    )
    with _torch().no_grad():
        return model(k["x"])


def _full_config(cfg: dict) -> dict:
    base = {"block_size": 8, "vocab_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 8, "dropout": 0.0, "bias": True}
    return {f: cfg.get(f, base[f]) for f in CONFIG_FIELDS}


@_one_thread_call
def _call_block(cls, case: Case):
    k = case.kwargs
    cfg = _full_config(k["config"])
    state = random_state_dict(block_params("", cfg["n_embd"], cfg["bias"]), k["weights_seed"], k["x"].dtype)
    model = _build(cls, (_config(cls, cfg),), {}, state, k["x"].dtype, "Block(config)")
    with _torch().no_grad():
        return model(k["x"])


def _gpt(cls, k: dict):
    cfg = _full_config(k["config"])
    dtype = _dtype(k.get("dtype", "float32"))
    state = random_state_dict(gpt_params(cfg), k["weights_seed"], dtype)
    return _build(cls, (_config(cls, cfg),), {}, state, dtype, "GPT(config)")


@_one_thread_call
def _call_gpt(cls, case: Case):
    """GPT(config) with seeded weights: (logits, loss) of forward(idx, targets) and its parameter
    count (the tied wte / lm_head matrix counts once, as ``model.parameters()`` yields it once)."""
    k = case.kwargs
    model = _gpt(cls, k)
    with _torch().no_grad():
        out = model(k["idx"], k.get("targets"))
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"forward(idx, targets) should return a tuple (logits, loss), got {type(out).__name__}")
    logits, loss = out
    return {"logits": logits, "loss": loss, "number of parameters": sum(p.numel() for p in model.parameters())}


CACHE_KEY = "uses the KV cache: one new position per step after the prompt"


@_one_thread_call
def _call_generate(cls, case: Case):
    """GPT(config) with seeded weights, then greedy ``generate`` with and without the cache.

    A pre-hook on ``blocks[0]`` records how many positions each call feeds through the first block;
    with a KV cache, every call after the first (the prompt) feeds exactly one.
    """
    torch = _torch()
    k = case.kwargs
    model = _gpt(cls, k)
    generate = getattr(model, "generate", None)
    if not callable(generate):
        raise TypeError(f"{type(model).__name__} has no generate(idx, max_new_tokens, use_cache) method")
    # the reference also samples (greedy=False by default); ask it for the argmax
    extra = {"greedy": True} if "greedy" in inspect.signature(generate).parameters else {}
    fed: list[int] = []

    def count(module, args, kwargs):
        x = args[0] if args else kwargs.get("x")
        fed.append(int(x.shape[1]) if isinstance(x, torch.Tensor) and x.dim() == 3 else -1)

    idx, n = k["idx"], k["max_new_tokens"]
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


def _randn(g, shape, dtype_name="float32", scale=1.0, offset=0.0):
    torch = _torch()
    return (offset + scale * torch.randn(shape, generator=g, dtype=torch.float64)).to(_dtype(dtype_name))


def _seed(rng: random.Random) -> int:
    return rng.randrange(2**31)


def _gen(seed: int):
    return _torch().Generator().manual_seed(seed)


# --------------------------------------------------------------------------- LayerNorm


def _ln(ndim, x, bias=True, eps=1e-5, weights_seed=0):
    return {"ndim": ndim, "bias": bias, "eps": eps, "weights_seed": weights_seed, "x": x}


def _layernorm_visible() -> list[Case]:
    g = _gen(0)
    return [
        Case((), "C=8, (B, T, C) = (2, 4, 8)", _ln(8, _randn(g, (2, 4, 8)))),
        Case((), "C=8, one position", _ln(8, _randn(g, (1, 1, 8)), weights_seed=1)),
        Case((), "C=8, no bias", _ln(8, _randn(g, (2, 4, 8)), bias=False, weights_seed=2)),
    ]


def _layernorm_hidden(seed: int) -> list[Case]:
    rng = _rng("transformer.LayerNorm", seed)
    g = _gen(rng.randrange(2**31))
    cases = [
        Case((), "float64", _ln(16, _randn(g, (3, 5, 16), "float64"), weights_seed=_seed(rng))),
        Case((), "no bias, float64", _ln(12, _randn(g, (2, 3, 12), "float64"), bias=False, weights_seed=_seed(rng))),
        Case((), "tiny inputs, where eps matters", _ln(8, _randn(g, (2, 4, 8), scale=1e-3), weights_seed=_seed(rng))),
        Case((), "a different eps (BERT's 1e-12)", _ln(8, _randn(g, (2, 4, 8)), eps=1e-12, weights_seed=_seed(rng))),
        Case((), "large common offset", _ln(8, _randn(g, (2, 4, 8), offset=20.0), weights_seed=_seed(rng))),
        Case((), "2-D input (N, C)", _ln(10, _randn(g, (7, 10)), weights_seed=_seed(rng))),
        Case((), "C=1", _ln(1, _randn(g, (2, 3, 1)), weights_seed=_seed(rng))),
    ]
    for _ in range(2):
        C, B, T = rng.randrange(2, 40), rng.randrange(1, 4), rng.randrange(1, 9)
        cases.append(
            Case(
                (),
                "random sizes",
                _ln(
                    C, _randn(g, (B, T, C), scale=rng.uniform(0.1, 3)), bias=rng.random() < 0.7, weights_seed=_seed(rng)
                ),
            )
        )
    return cases


# --------------------------------------------------------------------------- gelu


def _gelu_visible() -> list[Case]:
    torch = _torch()
    return [
        Case((torch.linspace(-4, 4, 17),), "17 points in [-4, 4]"),
        Case((_randn(_gen(1), (2, 3, 5)),), "a (2, 3, 5) tensor"),
    ]


def _gelu_hidden(seed: int) -> list[Case]:
    torch = _torch()
    g = _gen(_rng("transformer.gelu", seed).randrange(2**31))
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
    g = _gen(2)
    return [
        Case((), "n_embd=8, (B, T, C) = (2, 4, 8)", _mlp(8, _randn(g, (2, 4, 8)))),
        Case((), "n_embd=8, no bias", _mlp(8, _randn(g, (1, 3, 8)), bias=False, weights_seed=1)),
    ]


def _mlp_hidden(seed: int) -> list[Case]:
    rng = _rng("transformer.MLP", seed)
    g = _gen(rng.randrange(2**31))
    cases = [
        Case((), "float64", _mlp(8, _randn(g, (2, 4, 8), "float64"), weights_seed=_seed(rng))),
        Case((), "no bias, float64", _mlp(6, _randn(g, (3, 2, 6), "float64"), bias=False, weights_seed=_seed(rng))),
        Case((), "one position", _mlp(16, _randn(g, (1, 1, 16)), weights_seed=_seed(rng))),
        Case((), "large inputs", _mlp(8, _randn(g, (2, 4, 8), scale=5.0), weights_seed=_seed(rng))),
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
                    weights_seed=_seed(rng),
                ),
            )
        )
    return cases


# --------------------------------------------------------------------------- Block


def _blk(x, n_head=2, bias=True, weights_seed=0):
    return {"config": {"n_embd": x.shape[-1], "n_head": n_head, "bias": bias}, "weights_seed": weights_seed, "x": x}


def _block_visible() -> list[Case]:
    g = _gen(3)
    return [
        Case((), "n_embd=8, 2 heads, (B, T, C) = (1, 4, 8)", _blk(_randn(g, (1, 4, 8)))),
        Case((), "n_embd=8, 2 heads, batch of 2", _blk(_randn(g, (2, 4, 8)), weights_seed=1)),
    ]


def _block_hidden(seed: int) -> list[Case]:
    rng = _rng("transformer.Block", seed)
    g = _gen(rng.randrange(2**31))
    cases = [
        Case((), "T=1", _blk(_randn(g, (2, 1, 8)), weights_seed=_seed(rng))),
        Case((), "float64, batch 3", _blk(_randn(g, (3, 6, 12), "float64"), n_head=3, weights_seed=_seed(rng))),
        Case((), "no bias", _blk(_randn(g, (2, 5, 8)), bias=False, weights_seed=_seed(rng))),
        Case((), "one head", _blk(_randn(g, (1, 7, 8)), n_head=1, weights_seed=_seed(rng))),
        Case((), "head size 1", _blk(_randn(g, (2, 4, 4)), n_head=4, weights_seed=_seed(rng))),
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
                    weights_seed=_seed(rng),
                ),
            )
        )
    return cases


# --------------------------------------------------------------------------- GPT forward


def _idx(g, B, T, V):
    return _torch().randint(0, V, (B, T), generator=g)


def _gpt_case(config, idx, targets=None, dtype="float32", weights_seed=0):
    k = {"config": config, "weights_seed": weights_seed, "idx": idx, "dtype": dtype}
    if targets is not None:
        k["targets"] = targets
    return k


SMALL = {"block_size": 8, "vocab_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 8, "bias": True}


def _gpt_visible() -> list[Case]:
    g = _gen(4)
    idx = _idx(g, 1, 4, 16)
    return [
        Case((), "n_embd=8, 2 heads, 2 layers, (B, T) = (1, 4), no targets", _gpt_case(SMALL, idx)),
        Case((), "the same with targets", _gpt_case(SMALL, idx, _idx(g, 1, 4, 16))),
        Case((), "batch of 2", _gpt_case(SMALL, _idx(g, 2, 4, 16), _idx(g, 2, 4, 16), weights_seed=1)),
    ]


def _gpt_hidden(seed: int) -> list[Case]:
    rng = _rng("transformer.GPT", seed)
    g = _gen(rng.randrange(2**31))
    cfg = dict(SMALL)
    ignore = _idx(g, 2, 6, 16)
    ignore[0, :2] = -1
    ignore[1, -1] = -1
    cases = [
        Case((), "T=1", _gpt_case(cfg, _idx(g, 3, 1, 16), _idx(g, 3, 1, 16), weights_seed=_seed(rng))),
        Case((), "T=block_size", _gpt_case(cfg, _idx(g, 2, 8, 16), _idx(g, 2, 8, 16), weights_seed=_seed(rng))),
        Case(
            (),
            "float64, batch 3",
            _gpt_case(
                {**cfg, "n_embd": 12, "n_head": 3},
                _idx(g, 3, 5, 16),
                _idx(g, 3, 5, 16),
                dtype="float64",
                weights_seed=_seed(rng),
            ),
        ),
        Case(
            (),
            "no bias",
            _gpt_case({**cfg, "bias": False}, _idx(g, 2, 5, 16), _idx(g, 2, 5, 16), weights_seed=_seed(rng)),
        ),
        Case(
            (),
            "targets with ignored positions (-1)",
            _gpt_case(cfg, _idx(g, 2, 6, 16), ignore, weights_seed=_seed(rng)),
        ),
        Case((), "one layer, no targets", _gpt_case({**cfg, "n_layer": 1}, _idx(g, 2, 3, 16), weights_seed=_seed(rng))),
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
                    rc, _idx(g, B, T, rc["vocab_size"]), _idx(g, B, T, rc["vocab_size"]), weights_seed=_seed(rng)
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
    g = _gen(5)
    return [
        Case((), "n_embd=8, 2 heads, 2 layers, a 4-token prompt, 6 new tokens", _gen_case(GEN, _idx(g, 1, 4, 16), 6)),
        Case((), "batch of 2", _gen_case(GEN, _idx(g, 2, 3, 16), 5, weights_seed=1)),
    ]


def _generate_hidden(seed: int) -> list[Case]:
    rng = _rng("transformer.generate", seed)
    g = _gen(rng.randrange(2**31))
    cases = [
        Case((), "a 1-token prompt", _gen_case(GEN, _idx(g, 1, 1, 16), 8, weights_seed=_seed(rng))),
        Case((), "no new tokens", _gen_case(GEN, _idx(g, 2, 5, 16), 0, weights_seed=_seed(rng))),
        Case((), "one new token", _gen_case(GEN, _idx(g, 2, 5, 16), 1, weights_seed=_seed(rng))),
        Case(
            (),
            "prompt + new tokens fill block_size exactly",
            _gen_case(GEN, _idx(g, 2, 6, 16), 10, weights_seed=_seed(rng)),
        ),
        Case(
            (),
            "float64, batch 3",
            _gen_case(
                {**GEN, "n_embd": 12, "n_head": 3}, _idx(g, 3, 4, 16), 7, dtype="float64", weights_seed=_seed(rng)
            ),
        ),
        Case(
            (),
            "no bias, 3 layers",
            _gen_case({**GEN, "bias": False, "n_layer": 3}, _idx(g, 1, 3, 16), 9, weights_seed=_seed(rng)),
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
                    weights_seed=_seed(rng),
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
        atol=ATOL,
        call=_call_layernorm,
    ),
    Spec("transformer.gelu", "llmcourse.transformer:gelu", _gelu_visible, _gelu_hidden, rtol=RTOL, atol=ATOL),
    Spec(
        "transformer.MLP", "llmcourse.transformer:MLP", _mlp_visible, _mlp_hidden, rtol=RTOL, atol=ATOL, call=_call_mlp
    ),
    Spec(
        "transformer.Block",
        "llmcourse.transformer:Block",
        _block_visible,
        _block_hidden,
        rtol=RTOL,
        atol=ATOL,
        call=_call_block,
    ),
    Spec(
        "transformer.GPT", "llmcourse.transformer:GPT", _gpt_visible, _gpt_hidden, rtol=RTOL, atol=ATOL, call=_call_gpt
    ),
    Spec(
        "transformer.generate",
        "llmcourse.transformer:GPT",
        _generate_visible,
        _generate_hidden,
        rtol=RTOL,
        atol=ATOL,
        call=_call_generate,
    ),
]
