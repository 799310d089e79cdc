"""Cases for assignment 10 (beam search): greedy decoding, one beam step, beam search with length
normalisation, the n-best list.

The decoders are graded on a small known model, :class:`ToyLM`: its next-token log-probs depend on
the last *two* tokens of a context (a trigram table), so a beam that carries the wrong history gets
the wrong scores. It computes in float64, so that a correct answer that sums log-probs in another
order never flips a ranking. Each case holds the model's two tables (W, U) and the adapter builds
the model, calls the student's function and turns its output into plain Python data (ints, floats,
lists, tuples), so a tensor or a list of numbers are both accepted.

Visible cases are small and readable. Hidden cases add fixed edge cases (width 1, a width as large
as the vocabulary, EOS almost certain, EOS never likely, max_new_tokens 0 and 1, negative and large
length penalties, n = num_beams) and random cases drawn from the grader's seed. Nothing here imports
``llmcourse.decoding`` (the answer key, unavailable while grading).

The parts are to be written without ``transformers`` (whose ``generate`` implements beam search).
"""

from __future__ import annotations

import torch

from . import _kit
from .checker import Case, Spec

TOL = dict(rtol=1e-6, atol=1e-6)  # float64 sums of <= 12 log-probs: any correct order agrees to ~1e-14

FORBIDDEN = ("transformers",)


class ToyLM:
    """A known next-token model: log_probs (N, V) = log_softmax(W[last token] + U[the token before]).

    A one-token context uses U[last token]. ids must be an int64 (N, T) tensor, N >= 1, T >= 1.
    """

    def __init__(self, W: torch.Tensor, U: torch.Tensor) -> None:
        self.W, self.U = W, U

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.long or 0 in ids.shape:
            got = tuple(ids.shape) if isinstance(ids, torch.Tensor) else type(ids).__name__
            raise ValueError(f"the model takes an int64 (N, T) tensor of token ids, got {got}")
        last = ids[:, -1]  # (N,)
        before = ids[:, -2] if ids.size(1) > 1 else last  # (N,)
        return torch.log_softmax(self.W[last] + self.U[before], dim=-1)  # (N, V) float64


def _tables(g: torch.Generator, V: int, scale: float = 2.0, eos: int | None = None, eos_bias: float = 0.0):
    W = _kit.randn(g, V, V, dtype=torch.float64, scale=scale)
    U = _kit.randn(g, V, V, dtype=torch.float64, scale=scale)
    if eos is not None:
        W[:, eos] += eos_bias  # how likely the end is, after any token
    return {"W": W, "U": U}


def _plain_tokens(tokens) -> list[int]:
    return [int(t) for t in tokens]


def _plain_hypothesis(h) -> tuple[list[int], float]:
    tokens, score = h
    return _plain_tokens(tokens), float(score)


# --------------------------------------------------------------------------- greedy


@_kit.single_threaded
def run_greedy(greedy, prompt: list[int], max_new_tokens: int, *, W, U, eos_id=None):
    """``greedy(ToyLM(W, U), prompt, max_new_tokens, eos_id=eos_id)`` as a list of ints."""
    return _plain_tokens(greedy(ToyLM(W, U), prompt, max_new_tokens, eos_id=eos_id))


def _greedy_visible() -> list[Case]:
    g = _kit.seeded(10)
    return [
        Case(([0], 5), "V=4, prompt [0], 5 new tokens, no EOS", _tables(g, 4)),
        Case(([1, 2], 8), "V=6, EOS = 0 (likely): stop after it", {**_tables(g, 6, eos=0, eos_bias=2.0), "eos_id": 0}),
        Case(([3], 0), "max_new_tokens=0: nothing", _tables(g, 4)),
    ]


def _greedy_hidden(seed: int) -> list[Case]:
    g = _kit.generator("decoding.greedy", seed)
    r = _kit.rng("decoding.greedy", seed)
    cases = [
        Case(([2], 1), "one new token", _tables(g, 5)),
        Case(([1], 6), "EOS almost certain: one token", {**_tables(g, 5, eos=3, eos_bias=30.0), "eos_id": 3}),
        Case(([4, 0, 1], 10), "EOS never likely", {**_tables(g, 7, eos=6, eos_bias=-30.0), "eos_id": 6}),
    ]
    for _ in range(3):
        V = r.randint(4, 12)
        prompt = [r.randrange(V) for _ in range(r.randint(1, 4))]
        eos = r.randrange(V)
        kwargs = {**_tables(g, V, eos=eos, eos_bias=r.uniform(0.0, 2.0)), "eos_id": eos}
        cases.append(Case((prompt, r.randint(3, 12)), f"random V={V}", kwargs))
    return cases


# --------------------------------------------------------------------------- one beam step


@_kit.single_threaded
def run_beam_step(beam_step, scores, log_probs, num_beams: int, eos_id=None):
    """``beam_step(scores, log_probs, num_beams, eos_id)`` as ([(parent, token, total)], [(parent, total)])."""
    running, finished = beam_step(scores, log_probs, num_beams, eos_id)
    running = [(int(b), int(v), float(t)) for b, v, t in running]
    finished = [(int(b), float(t)) for b, t in finished]
    return running, finished


def _step_case(g, K, V, num_beams, eos, label, eos_bias=0.0):
    scores = _kit.randn(g, K, dtype=torch.float64, scale=2.0, offset=-3.0)
    logits = _kit.randn(g, K, V, dtype=torch.float64, scale=2.0)
    if eos is not None:
        logits[:, eos] += eos_bias
    return Case((scores, torch.log_softmax(logits, -1), num_beams, eos), label)


def _step_visible() -> list[Case]:
    log_probs = torch.tensor([[-0.1, -1.0, -3.0], [-0.5, -0.2, -1.0]], dtype=torch.float64).log_softmax(-1)
    g = _kit.seeded(11)
    return [
        Case((torch.tensor([-1.0, -2.0], dtype=torch.float64), log_probs, 2, 0), "K=2 beams, V=3, EOS = 0"),
        Case((torch.tensor([0.0], dtype=torch.float64), log_probs[:1], 2, None), "the first step: one beam, no EOS"),
        _step_case(g, 3, 6, 3, 5, "K=3, V=6, num_beams=3, EOS = 5 (likely)", eos_bias=2.0),
    ]


def _step_hidden(seed: int) -> list[Case]:
    g = _kit.generator("decoding.beam_step", seed)
    r = _kit.rng("decoding.beam_step", seed)
    probs = torch.tensor([[0.55, 0.35, 0.06, 0.04], [0.5, 0.1, 0.1, 0.3]], dtype=torch.float64)  # an EOS at rank 3
    cases = [
        Case((torch.tensor([0.0, -1.0], dtype=torch.float64), probs.log(), 2, 3), "EOS only below the top num_beams"),
        _step_case(g, 1, 5, 1, 0, "width 1"),
        _step_case(g, 4, 6, 4, 2, "EOS the best token of every beam", eos_bias=30.0),
        _step_case(g, 2, 4, 3, None, "fewer beams than the width (K=2, num_beams=3)"),
        _step_case(g, 1, 3, 4, 1, "fewer candidates than 2 * num_beams"),
    ]
    for _ in range(4):
        k = r.randint(1, 5)
        K, V = r.randint(1, k), r.randint(2 * k, 20)
        eos = r.choice([None, r.randrange(V)])
        cases.append(_step_case(g, K, V, k, eos, f"random K={K}, V={V}, num_beams={k}", eos_bias=r.uniform(0, 3)))
    return cases


# --------------------------------------------------------------------------- beam search and n-best


@_kit.single_threaded
def run_beam_search(
    beam_search, prompt: list[int], num_beams: int, max_new_tokens: int, *, W, U, eos_id=None, length_penalty=1.0
):
    """``beam_search(ToyLM(W, U), prompt, num_beams, max_new_tokens, eos_id=, length_penalty=)``."""
    model = ToyLM(W, U)
    out = beam_search(model, prompt, num_beams, max_new_tokens, eos_id=eos_id, length_penalty=length_penalty)
    return _plain_hypothesis(out)


@_kit.single_threaded
def run_n_best(
    n_best, prompt: list[int], num_beams: int, n: int, max_new_tokens: int, *, W, U, eos_id=None, length_penalty=1.0
):
    """``n_best(ToyLM(W, U), prompt, num_beams, n, max_new_tokens, eos_id=, length_penalty=)``."""
    model = ToyLM(W, U)
    out = n_best(model, prompt, num_beams, n, max_new_tokens, eos_id=eos_id, length_penalty=length_penalty)
    return [_plain_hypothesis(h) for h in out]


def _search_kwargs(g, V, eos, eos_bias, length_penalty):
    return {**_tables(g, V, eos=eos, eos_bias=eos_bias), "eos_id": eos, "length_penalty": length_penalty}


def _beam_visible() -> list[Case]:
    g = _kit.seeded(12)
    return [
        Case(([0], 2, 4), "V=5, width 2, 4 new tokens, no EOS", _tables(g, 5)),
        Case(([1, 2], 3, 6), "V=6, width 3, EOS = 0, length_penalty 1", _search_kwargs(g, 6, 0, 1.0, 1.0)),
        Case(([3], 3, 6), "the same kind, length_penalty 0 (raw sums)", _search_kwargs(g, 6, 0, 1.0, 0.0)),
        Case(([2], 1, 5), "width 1 (greedy)", _search_kwargs(g, 6, 0, 1.0, 1.0)),
    ]


def _beam_cases(name: str, seed: int, with_n: bool) -> list[Case]:
    g = _kit.generator(name, seed)
    r = _kit.rng(name, seed)

    def case(prompt, k, n, max_new, label, kwargs):
        return Case((prompt, k, n, max_new) if with_n else (prompt, k, max_new), label, kwargs)

    cases = [
        case([1], 1, 1, 6, "width 1", _search_kwargs(g, 6, 0, 1.0, 1.0)),
        case([2, 3], 4, 4, 5, "EOS almost certain", _search_kwargs(g, 8, 2, 30.0, 1.0)),
        case([0], 3, 2, 7, "EOS never likely", _search_kwargs(g, 7, 6, -30.0, 1.0)),
        case([4], 3, 1, 1, "max_new_tokens=1", _search_kwargs(g, 7, 1, 1.0, 1.0)),
        case([1, 1], 4, 3, 8, "length_penalty 2 (favours long)", _search_kwargs(g, 9, 0, 1.5, 2.0)),
        case([5], 3, 3, 8, "length_penalty -1 (favours short)", _search_kwargs(g, 9, 0, 0.5, -1.0)),
        case(
            [2], 4, 4, 6, "width = V / 2: the first step keeps every non-EOS token", _search_kwargs(g, 8, 3, 1.0, 1.0)
        ),
    ]
    for _ in range(4):
        k = r.randint(2, 5)
        V = r.randint(2 * k, 16)
        eos = r.randrange(V)
        prompt = [r.randrange(V) for _ in range(r.randint(1, 3))]
        lp = r.choice([0.0, 0.5, 1.0, 1.5])
        n = r.randint(1, k)
        kwargs = _search_kwargs(g, V, eos, r.uniform(0.0, 2.5), lp)
        case_ = case(prompt, k, n, r.randint(4, 10), f"random V={V}, width {k}, length_penalty {lp}", kwargs)
        cases.append(case_)
    return cases


def _nbest_visible() -> list[Case]:
    g = _kit.seeded(13)
    return [
        Case(
            (
                [0],
                3,
                3,
                5,
            ),
            "V=6, width 3, all 3 hypotheses, EOS = 0",
            _search_kwargs(g, 6, 0, 1.0, 1.0),
        ),
        Case(([1, 4], 4, 2, 6), "V=8, width 4, the best 2, length_penalty 0", _search_kwargs(g, 8, 0, 1.0, 0.0)),
    ]


SPECS = [
    Spec(
        "decoding.greedy",
        "llmcourse.decoding:greedy",
        _greedy_visible,
        _greedy_hidden,
        adapter=run_greedy,
        forbidden=FORBIDDEN,
    ),
    Spec(
        "decoding.beam_step",
        "llmcourse.decoding:beam_step",
        _step_visible,
        _step_hidden,
        adapter=run_beam_step,
        forbidden=FORBIDDEN,
        **TOL,
    ),
    Spec(
        "decoding.beam_search",
        "llmcourse.decoding:beam_search",
        _beam_visible,
        lambda seed: _beam_cases("decoding.beam_search", seed, with_n=False),
        adapter=run_beam_search,
        forbidden=FORBIDDEN,
        **TOL,
    ),
    Spec(
        "decoding.n_best",
        "llmcourse.decoding:n_best",
        _nbest_visible,
        lambda seed: _beam_cases("decoding.n_best", seed, with_n=True),
        adapter=run_n_best,
        forbidden=FORBIDDEN,
        **TOL,
    ),
]
