"""Cases for assignment 03 (autoregressive models): bigram counts and probabilities, cross-entropy,
the MLP language model, get_batch, the three samplers and the generation loop.

Visible cases are small and readable. Hidden cases add fixed edge cases (a corpus of two tokens,
tokens that never occur, logits of 1000, ignored targets, float64, ties in top-k, p = 1) and random
cases drawn from the grader's seed. Nothing here imports ``llmcourse.autoregressive`` (the answer
key, unavailable while grading): inputs are built from first principles with ``torch`` alone.

How the less obvious parts are graded (identically for the student's function and the reference):

* the samplers return filtered *logits*; they are graded on the distribution ``softmax(output)``,
  so any logits that give the same distribution pass (removed tokens must get probability 0);
* the MLP is graded as a class, like multi-head attention in assignment 04: built as
  ``MLPLanguageModel(vocab_size, block_size, n_embd, n_hidden)``, loaded with the case's seeded
  weights under the reference's parameter names, run on the case's contexts;
* ``get_batch`` and ``generate`` get a ``torch.Generator`` seeded from the case (the case shows the
  seed), so their random draws are deterministic; ``generate`` drives a small known model
  (:class:`ToyLM`) that refuses contexts longer than ``block_size``;
* cross-entropy is to be written from the log-sum-exp (``FORBIDDEN_CROSS_ENTROPY`` lists the library
  calls that would skip it), and the samplers without ``transformers``' warpers.
"""

from __future__ import annotations

import torch

from . import _kit
from ._kit import randn as _randn
from .checker import Case, Spec

# float32 arithmetic: a correct solution that rounds differently (a different order of the sum,
# log_softmax written another way) differs from the reference by ~1e-6; every real mistake (no
# max shift, a wrong mean, a wrong filter) by far more.
TOL = dict(rtol=1e-4, atol=1e-5)

# the library calls each part asks students to write themselves
FORBIDDEN_CROSS_ENTROPY = (
    "torch.nn.functional.cross_entropy",
    "torch.nn.functional.nll_loss",
    "torch.nn.CrossEntropyLoss",
    "torch.nn.NLLLoss",
    "torch.logsumexp",
    "torch.Tensor.logsumexp",
    "torch.special.logsumexp",
    "torch.log_softmax",
    "torch.nn.functional.log_softmax",
    "torch.Tensor.log_softmax",
    "torch.special.log_softmax",
    "torch.nn.LogSoftmax",
    "torch.ops.aten",
    "torch._C",
)
FORBIDDEN_SAMPLERS = ("transformers",)  # its logits warpers are what these parts re-create


def _randint(g: torch.Generator, high: int, *shape: int) -> torch.Tensor:
    return torch.randint(high, shape, generator=g)


def _ids(text: str) -> torch.Tensor:
    """Characters -> ids in sorted order of the distinct characters (a tiny character vocabulary)."""
    chars = sorted(set(text))
    return torch.tensor([chars.index(c) for c in text], dtype=torch.long)


# --------------------------------------------------------------------------- bigram counts and probabilities


def _counts_visible() -> list[Case]:
    return [
        Case((torch.tensor([0, 1, 0, 1, 2]), 3), "ids 0 1 0 1 2, vocab_size=3"),
        Case((_ids("abracadabra"), 5), '"abracadabra" as ids (a=0, b=1, c=2, d=3, r=4)'),
        Case((torch.tensor([2, 2, 2, 2]), 4), "one token repeated; tokens 0, 1 and 3 never occur"),
    ]


def _counts_hidden(seed: int) -> list[Case]:
    g = _kit.generator("autoregressive.bigram_counts", seed)
    return [
        Case((torch.tensor([1, 0]), 2), "the smallest corpus: two tokens, one pair"),
        Case((torch.tensor([3, 3]), 6), "one pair of the same token, most tokens unused"),
        Case((_ids("to be or not to be that is the question"), 13), "a short English sentence as character ids"),
        Case((_randint(g, 7, 300), 7), "random: 300 tokens of a 7-token vocabulary"),
        Case((_randint(g, 40, 2000), 50), "random: 2000 tokens, vocab_size=50 (10 never occur)"),
    ]


def _counts_small(g: torch.Generator, V: int) -> torch.Tensor:
    """Random counts 0..3, about 40% of them 0."""
    return torch.randint(4, (V, V), generator=g) * (torch.rand(V, V, generator=g) < 0.6)


def _probs_visible() -> list[Case]:
    counts = torch.tensor([[0, 2, 1], [3, 0, 0], [1, 1, 1]])
    return [
        Case((counts,), "3x3 counts, default alpha=1.0"),
        Case((counts, 0.0), "the same, no smoothing (alpha=0)"),
        Case((counts, 0.5), "the same, alpha=0.5"),
        Case((torch.tensor([[2, 2], [0, 0]]), 0.0), "a row with no counts and alpha=0: uniform"),
    ]


def _probs_hidden(seed: int) -> list[Case]:
    g = _kit.generator("autoregressive.bigram_probs", seed)
    zero_rows = _counts_small(g, 9)
    zero_rows[[2, 5]] = 0
    return [
        Case((torch.tensor([[7]]), 0.0), "V=1"),
        Case((torch.zeros(4, 4, dtype=torch.long), 1.0), "no counts at all, alpha=1"),
        Case((torch.zeros(4, 4, dtype=torch.long), 0.0), "no counts at all, alpha=0"),
        Case((_counts_small(g, 6), 2.0), "random 6x6 counts, alpha=2"),
        Case((zero_rows, 0.0), "random 9x9 counts with two empty rows, alpha=0"),
        Case((zero_rows, 0.1), "the same, alpha=0.1"),
        Case((torch.randint(1000, (30, 30), generator=g),), "random 30x30 large counts, default alpha"),
    ]


# --------------------------------------------------------------------------- cross-entropy


def _ce_visible() -> list[Case]:
    logits = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.2]])
    return [
        Case((logits, torch.tensor([0, 1])), "2 examples, V=3"),
        Case((torch.zeros(4, 5), torch.tensor([0, 1, 2, 3])), "uniform logits: the loss is log(5)"),
        Case((torch.tensor([[1000.0, 1001.0, 1002.0]]), torch.tensor([2])), "large logits: exp(1000) overflows"),
        Case((logits, torch.tensor([0, -100])), "the second target is ignore_index=-100"),
        Case(
            (torch.tensor([[[1.0, 2.0], [0.0, 3.0], [2.0, 2.0]]]), torch.tensor([[1, 0, 1]])),
            "a sequence: logits (B=1, T=3, V=2), targets (1, 3)",
        ),
    ]


def _ce_hidden(seed: int) -> list[Case]:
    g = _kit.generator("autoregressive.cross_entropy", seed)
    ninf = float("-inf")
    big = _randn(g, 6, 9, scale=500.0)
    masked = _randn(g, 5, 8)
    masked[:, 6:] = ninf  # two tokens no context may produce (never the targets)
    t_ign = _randint(g, 11, 4, 7)
    t_ign[1, :4] = 3
    return [
        Case((torch.tensor([[-1000.0, -1001.0, -999.0]]), torch.tensor([1])), "large negative logits"),
        Case((torch.tensor([[5.0]]), torch.tensor([0])), "V=1: the loss is 0"),
        Case((big, _randint(g, 9, 6)), "random logits of size ~500"),
        Case((masked, _randint(g, 6, 5)), "-inf logits on tokens that are never the target"),
        Case((_randn(g, 4, 7, 11, scale=2.0), t_ign), "(B, T, V) with ignore_index=3", {"ignore_index": 3}),
        Case(
            (_randn(g, 3, 5, 6, dtype=torch.float64), _randint(g, 6, 3, 5)),
            "float64 (B, T, V)",
        ),
        Case(
            (_randn(g, 64, 65, scale=3.0), _randint(g, 65, 64)), "random (64, 65), V=65 like Shakespeare's characters"
        ),
        Case((_randn(g, 8, 16, 50), _randint(g, 50, 8, 16)), "random (8, 16, 50)"),
    ]


# --------------------------------------------------------------------------- the MLP language model


def mlp_layout(V: int, T: int, C: int, H: int) -> list[_kit.Param]:
    """The reference's parameters: nn.Embedding(V, C), nn.Linear(T*C, H), nn.Linear(H, V)."""
    return [
        _kit.Param("wte.weight", (V, C)),
        *_kit.linear_params("hidden.", T * C, H, bias=True),
        *_kit.linear_params("lm_head.", H, V, bias=True),
    ]


def _mlp_case(g, V, T, C, H, B=3, dtype=torch.float32, label=""):
    kwargs = {"state_dict": _kit.random_state_dict(mlp_layout(V, T, C, H), g, dtype), "idx": _randint(g, V, B, T)}
    return Case((V, T, C, H), label or f"vocab_size={V}, block_size={T}, n_embd={C}, n_hidden={H}, B={B}", kwargs)


@_kit.single_threaded
def run_mlp_language_model(
    cls, vocab_size: int, block_size: int, n_embd: int, n_hidden: int, *, state_dict: dict, idx: torch.Tensor
):
    """``cls(vocab_size, block_size, n_embd, n_hidden)`` with ``state_dict`` loaded, in eval mode: ``forward(idx)``."""
    what = f"MLPLanguageModel({vocab_size}, {block_size}, {n_embd}, {n_hidden})"
    model = _kit.build(
        cls, (vocab_size, block_size, n_embd, n_hidden), {}, state_dict, state_dict["wte.weight"].dtype, what
    )
    with torch.no_grad():
        return model(idx)


def _mlp_visible() -> list[Case]:
    g = _kit.seeded(3)
    return [
        _mlp_case(g, 5, 2, 3, 4, B=1, label="vocab_size=5, block_size=2, n_embd=3, n_hidden=4, one context"),
        _mlp_case(g, 10, 3, 2, 8, B=4),
    ]


def _mlp_hidden(seed: int) -> list[Case]:
    g = _kit.generator("autoregressive.mlp_language_model", seed)
    return [
        _mlp_case(g, 4, 1, 2, 3, label="block_size=1 (a bigram model with a hidden layer)"),
        _mlp_case(g, 7, 4, 1, 5, label="n_embd=1"),
        _mlp_case(g, 9, 3, 4, 6, dtype=torch.float64, label="float64"),
        _mlp_case(g, 65, 8, 10, 64, B=16, label="random: vocab_size=65, block_size=8, n_embd=10, n_hidden=64"),
        _mlp_case(g, 30, 5, 6, 20, B=7, label="random: vocab_size=30, block_size=5, n_embd=6, n_hidden=20"),
    ]


# --------------------------------------------------------------------------- get_batch


def run_get_batch(get_batch, data: torch.Tensor, block_size: int, batch_size: int, *, seed: int):
    """``get_batch(data, block_size, batch_size, generator=torch.Generator().manual_seed(seed))``."""
    return get_batch(data, block_size, batch_size, generator=_kit.seeded(seed))


def _batch_visible() -> list[Case]:
    return [
        Case((torch.arange(10), 3, 2), "data 0..9, block_size=3, batch_size=2, generator seeded 0", {"seed": 0}),
        Case((torch.arange(100, 120), 5, 4), "data 100..119, block_size=5, batch_size=4, seed 1", {"seed": 1}),
        Case((torch.tensor([4, 8, 15, 16]), 3, 3), "only one window fits: data of 4 tokens, block_size=3", {"seed": 2}),
    ]


def _batch_hidden(seed: int) -> list[Case]:
    g = _kit.generator("autoregressive.get_batch", seed)
    s = int(torch.randint(2**31, (1,), generator=g))
    return [
        Case((torch.tensor([7, 3]), 1, 5), "the smallest corpus: 2 tokens, block_size=1", {"seed": s}),
        Case((torch.arange(50), 1, 8), "block_size=1: bigram pairs", {"seed": s + 1}),
        Case(
            (_randint(g, 65, 1000), 8, 32), "random corpus of 1000 tokens, block_size=8, batch_size=32", {"seed": s + 2}
        ),
        Case((_randint(g, 500, 300), 16, 4), "random corpus of 300 tokens, block_size=16", {"seed": s + 3}),
        Case((_randint(g, 10, 12), 11, 2), "block_size = len(data) - 1", {"seed": s + 4}),
    ]


# --------------------------------------------------------------------------- samplers (graded on distributions)


def _distribution(out):
    if not isinstance(out, torch.Tensor) or not out.is_floating_point():
        return out  # compared as is: the report says what came back instead of a float tensor
    return torch.softmax(out, dim=-1)


def distribution_after_temperature(apply_temperature, logits: torch.Tensor, temperature: float):
    """``softmax(apply_temperature(logits, temperature))``: graded on the distribution."""
    return _distribution(apply_temperature(logits, temperature))


def distribution_after_top_k(top_k_filter, logits: torch.Tensor, k: int):
    """``softmax(top_k_filter(logits, k))``: graded on the distribution."""
    return _distribution(top_k_filter(logits, k))


def distribution_after_top_p(top_p_filter, logits: torch.Tensor, p: float):
    """``softmax(top_p_filter(logits, p))``: graded on the distribution."""
    return _distribution(top_p_filter(logits, p))


def _scores() -> torch.Tensor:
    return torch.tensor([[2.0, 1.0, 0.0, -1.0, 3.0], [0.0, 0.5, 1.0, 1.5, 2.0]])


def _temperature_visible() -> list[Case]:
    return [
        Case((_scores(), 1.0), "temperature 1: unchanged"),
        Case((_scores(), 0.5), "temperature 0.5: sharper"),
        Case((_scores(), 4.0), "temperature 4: flatter"),
    ]


def _temperature_hidden(seed: int) -> list[Case]:
    g = _kit.generator("autoregressive.apply_temperature", seed)
    return [
        Case((torch.tensor([[1.0, 2.0, 3.0]]), 0.01), "temperature 0.01: almost greedy"),
        Case((torch.tensor([1.0, -2.0, 0.5, 0.0]), 1e3), "a 1-D vector, temperature 1000: almost uniform"),
        Case((_randn(g, 3, 4, 20, scale=3.0), 0.7), "random (3, 4, 20), temperature 0.7"),
        Case((_randn(g, 5, 65, dtype=torch.float64), 1.3), "random float64 (5, 65), temperature 1.3"),
        Case((_randn(g, 2, 100, scale=10.0), 2), "random (2, 100), int temperature 2"),
    ]


def _top_k_visible() -> list[Case]:
    return [
        Case((_scores(), 2), "k=2 of V=5"),
        Case((_scores(), 1), "k=1: greedy"),
        Case((_scores(), 5), "k=V: nothing removed"),
    ]


def _top_k_hidden(seed: int) -> list[Case]:
    g = _kit.generator("autoregressive.top_k_filter", seed)
    return [
        Case((torch.tensor([[3.0, 1.0, 3.0, 2.0, 1.0]]), 1), "a tie for first place, k=1: both kept"),
        Case((torch.tensor([[3.0, 1.0, 3.0, 2.0, 1.0]]), 4), "a tie at the k-th place, k=4: both kept"),
        Case((torch.tensor([0.5, -1.0, 2.0]), 2), "a 1-D vector"),
        Case((_randn(g, 4, 30, scale=2.0), 7), "random (4, 30), k=7"),
        Case((_randn(g, 2, 3, 50, dtype=torch.float64), 10), "random float64 (2, 3, 50), k=10"),
        Case((_randn(g, 6, 65), 65), "random (6, 65), k=V"),
    ]


def _top_p_visible() -> list[Case]:
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    return [
        Case((logits, 0.6), "probabilities 0.5 0.2 0.15 0.1 0.05, p=0.6: keeps 2"),
        Case((logits, 0.9), "the same, p=0.9: keeps 4"),
        Case((logits, 0.3), "the same, p=0.3: keeps the most likely token only"),
        Case((_scores(), 0.75), "two rows, p=0.75"),
    ]


def _top_p_hidden(seed: int) -> list[Case]:
    g = _kit.generator("autoregressive.top_p_filter", seed)
    ninf = float("-inf")
    with_removed = _randn(g, 3, 20, scale=2.0)
    with_removed[:, :8] = ninf  # as after top-k: already removed tokens stay removed
    return [
        Case((torch.log(torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])), 1.0), "p=1: nothing removed"),
        Case((torch.tensor([[10.0, 0.0, 0.0, 0.0]]), 0.5), "one token holds almost all the mass"),
        Case((torch.log(torch.tensor([[0.1, 0.3, 0.05, 0.4, 0.15]])), 0.8), "unsorted probabilities, p=0.8"),
        Case((with_removed, 0.9), "random (3, 20) with -inf entries, p=0.9"),
        Case((_randn(g, 4, 30, scale=2.0), 0.5), "random (4, 30), p=0.5"),
        Case((_randn(g, 2, 3, 65, dtype=torch.float64), 0.95), "random float64 (2, 3, 65), p=0.95"),
        Case((_randn(g, 5, 100, scale=0.3), 0.1), "random nearly flat (5, 100), p=0.1"),
    ]


# --------------------------------------------------------------------------- the generation loop


class ToyLM:
    """A known next-token model: logits (B, V) = W[last token] + U[first token of the context].

    It reads the whole context (its first token matters), so a loop that forgets to crop to the last
    block_size tokens gets different logits; and it refuses a context longer than block_size.
    """

    def __init__(self, W: torch.Tensor, U: torch.Tensor, block_size: int) -> None:
        self.W, self.U, self.block_size = W, U, block_size

    def __call__(self, context: torch.Tensor) -> torch.Tensor:
        if not isinstance(context, torch.Tensor) or context.dim() != 2:
            raise ValueError("the model expects a (B, T) tensor of token ids")
        if context.size(1) > self.block_size:
            raise ValueError(f"context of {context.size(1)} tokens is longer than block_size={self.block_size}")
        return self.W[context[:, -1]] + self.U[context[:, 0]]  # (B, V)


@_kit.single_threaded
def run_generate(
    generate,
    idx: torch.Tensor,
    max_new_tokens: int,
    block_size: int,
    *,
    W: torch.Tensor,
    U: torch.Tensor,
    seed: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
):
    """``generate(ToyLM(W, U, block_size), idx, max_new_tokens, block_size, temperature=..., top_k=...,
    top_p=..., greedy=..., generator=torch.Generator().manual_seed(seed))``."""
    model = ToyLM(W, U, block_size)
    return generate(
        model,
        idx,
        max_new_tokens,
        block_size,
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        greedy=greedy,
        generator=_kit.seeded(seed),
    )


def _gen_case(g, V, prompt, n, block_size, label, scale=2.0, **sampling):
    kwargs = {
        "W": _randn(g, V, V, scale=scale),
        "U": _randn(g, V, V, scale=scale),
        "seed": int(torch.randint(10_000, (1,), generator=g)),
    }
    kwargs.update(sampling)
    return Case((prompt, n, block_size), label, kwargs)


def _generate_visible() -> list[Case]:
    g = _kit.seeded(5)
    return [
        _gen_case(
            g,
            6,
            torch.tensor([[0], [3]]),
            5,
            4,
            "greedy, V=6, two prompts of one token, 5 new, block_size=4",
            greedy=True,
        ),
        _gen_case(
            g, 6, torch.tensor([[1, 2, 3, 4, 5]]), 4, 3, "greedy, a prompt longer than block_size=3", greedy=True
        ),
        _gen_case(g, 8, torch.tensor([[2], [2], [7]]), 6, 4, "sampling at temperature 1"),
        _gen_case(g, 8, torch.tensor([[0, 1]]), 10, 2, "sampling, temperature 0.8, top_k=3", temperature=0.8, top_k=3),
    ]


def _generate_hidden(seed: int) -> list[Case]:
    g = _kit.generator("autoregressive.generate", seed)
    return [
        _gen_case(g, 5, torch.tensor([[4]]), 0, 3, "max_new_tokens=0: the prompt itself", greedy=True),
        _gen_case(g, 5, torch.tensor([[1]]), 6, 1, "block_size=1: a bigram model", greedy=True),
        _gen_case(g, 12, _randint(g, 12, 3, 7), 9, 4, "greedy, random prompts longer than block_size", greedy=True),
        _gen_case(g, 10, _randint(g, 10, 2, 2), 12, 5, "sampling, top_p=0.7", top_p=0.7),
        _gen_case(g, 10, _randint(g, 10, 4, 1), 15, 3, "sampling, temperature 1.5, top_k=4", temperature=1.5, top_k=4),
        _gen_case(
            g,
            20,
            _randint(g, 20, 3, 3),
            20,
            6,
            "sampling, temperature 0.7, top_k=8, top_p=0.9",
            temperature=0.7,
            top_k=8,
            top_p=0.9,
        ),
        _gen_case(g, 30, _randint(g, 30, 2, 10), 25, 8, "sampling at temperature 1, random model and prompts"),
    ]


SPECS = [
    Spec("autoregressive.bigram_counts", "llmcourse.autoregressive:bigram_counts", _counts_visible, _counts_hidden),
    Spec("autoregressive.bigram_probs", "llmcourse.autoregressive:bigram_probs", _probs_visible, _probs_hidden, **TOL),
    Spec(
        "autoregressive.cross_entropy",
        "llmcourse.autoregressive:cross_entropy",
        _ce_visible,
        _ce_hidden,
        forbidden=FORBIDDEN_CROSS_ENTROPY,
        **TOL,
    ),
    Spec(
        "autoregressive.mlp_language_model",
        "llmcourse.autoregressive:MLPLanguageModel",
        _mlp_visible,
        _mlp_hidden,
        adapter=run_mlp_language_model,
        **TOL,
    ),
    Spec(
        "autoregressive.get_batch",
        "llmcourse.autoregressive:get_batch",
        _batch_visible,
        _batch_hidden,
        adapter=run_get_batch,
    ),
    Spec(
        "autoregressive.apply_temperature",
        "llmcourse.autoregressive:apply_temperature",
        _temperature_visible,
        _temperature_hidden,
        adapter=distribution_after_temperature,
        forbidden=FORBIDDEN_SAMPLERS,
        **TOL,
    ),
    Spec(
        "autoregressive.top_k_filter",
        "llmcourse.autoregressive:top_k_filter",
        _top_k_visible,
        _top_k_hidden,
        adapter=distribution_after_top_k,
        forbidden=FORBIDDEN_SAMPLERS,
        **TOL,
    ),
    Spec(
        "autoregressive.top_p_filter",
        "llmcourse.autoregressive:top_p_filter",
        _top_p_visible,
        _top_p_hidden,
        adapter=distribution_after_top_p,
        forbidden=FORBIDDEN_SAMPLERS,
        **TOL,
    ),
    Spec(
        "autoregressive.generate",
        "llmcourse.autoregressive:generate",
        _generate_visible,
        _generate_hidden,
        adapter=run_generate,
        forbidden=FORBIDDEN_SAMPLERS,
    ),
]
