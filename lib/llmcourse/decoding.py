"""Decoding: turn a next-token model into text by searching for a likely continuation.

A language model scores one token at a time: ``log p(x_t | x_<t)``. By the chain rule the score of a
whole continuation y = y1 ... yn of a prompt is the sum of its steps' scores,
``log p(y | prompt) = sum_t log p(y_t | prompt, y_<t)``. Decoding picks a continuation. In steps:

1. **Greedy.** Take the single most likely token, append it, repeat (:func:`greedy`). Cheap, and
   short-sighted: a token that looks best now can lead only to poor continuations, while a slightly
   worse first token opens a much likelier sentence.

2. **Beam search** keeps the ``k`` best *partial* continuations (beams) instead of one. One step
   (:func:`beam_step`): every beam b with summed log-prob ``s_b`` proposes every token v, scored
   ``s_b + log p(v | beam b)``: K x V candidates. Keep the best k. A candidate that ends with the
   end-of-sequence token (EOS) is a *finished hypothesis*: it leaves the beam and joins a pool of
   finished ones, if it ranks among the top k candidates; the k best candidates that did not end
   stay in the beam. (Each beam has one EOS candidate, so at most K candidates can end: the best
   2k candidates always hold k that go on.) Width 1 is greedy search; a width of V^n (every
   hypothesis kept) is exhaustive search and finds the exact optimum.

3. **Length normalisation.** Every token adds a negative log-prob, so raw sums favour short
   hypotheses: "EOS" right away is often the likeliest "sentence". Finished hypotheses are compared
   by ``sum / length ** length_penalty`` (length = generated tokens, EOS included): 0 compares raw
   sums, 1 the mean log-prob per token, larger values favour longer output.

4. **Stopping.** With ``early_stopping=True`` search stops once k hypotheses have finished; with
   False it goes on while the best running beam, ended now, could still beat the worst of the k kept
   finished hypotheses. At ``max_new_tokens`` the k best candidates finish as they are. The
   ``n`` best finished hypotheses are the n-best list (:func:`n_best`); the best is
   :func:`beam_search`'s answer. These are Hugging Face's rules (``generate(num_beams=k,
   do_sample=False, length_penalty=..., early_stopping=...)``): the tests compare token for token.

5. **Sampling** (unit 03: temperature, top-k, top-p from ``llmcourse.autoregressive``) draws the next
   token instead of searching. :func:`decode` puts the three strategies behind one call.

Beam search finds text that is *likelier* than what sampling finds, and for open-ended writing that
is its weakness: the likeliest text is generic and repetitive (low distinct-n), while people's text
is not the likeliest (Holtzman et al. 2020, "The curious case of neural text degeneration"). For
tasks with one right answer (translation, short factual answers) beam search shines.

A model enters as a **next-token log-prob function**: ids (N, T) int64 -> (N, V) log-probs of the
token that follows each row. :func:`log_prob_fn` makes one from a course GPT, a Llama, a Hugging
Face model or any callable returning logits; small known functions (tables, n-gram models) make
exhaustive checks possible.

Read top to bottom: :func:`log_prob_fn`; :func:`greedy`; :func:`beam_step_naive` and
:func:`beam_step` (one step, Python loops then one ``topk``); :func:`length_normalized`;
:func:`n_best_naive` (one model call per beam) and :func:`n_best` (the beams batched as one tensor
dimension: one call per step on a (K, T) tensor); :func:`beam_search`; :func:`sample`; :func:`decode`.
Input checks are at the bottom.

Usage::

    step = log_prob_fn(model)                                  # GPT, Llama, HF model, or logits fn
    greedy(step, prompt_ids, max_new_tokens=20)                # [ids...]
    tokens, score = beam_search(step, prompt_ids, num_beams=4, max_new_tokens=20, eos_id=eos)
    for tokens, score in n_best(step, prompt_ids, num_beams=4, n=3, max_new_tokens=20, eos_id=eos): ...
    decode(step, prompt_ids, 20, strategy="sample", temperature=0.8, top_p=0.9, generator=g)

Shapes: K beams, V vocabulary size, T tokens so far (prompt + generated), N rows of a model call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from .autoregressive import filtered_probs

__all__ = [
    "NextLogProbs",
    "log_prob_fn",
    "greedy",
    "beam_step_naive",
    "beam_step",
    "length_normalized",
    "n_best_naive",
    "n_best",
    "beam_search",
    "sample",
    "decode",
]

NextLogProbs = Callable[[Tensor], Tensor]  # ids (N, T) int64 -> (N, V) next-token log-probs
Hypothesis = tuple[list[int], float]  # generated tokens (EOS included if it ended), normalised score
Running = list[tuple[int, int, float]]  # (parent beam, token, summed log-prob), best first
Finished = list[tuple[int, float]]  # (parent beam, summed log-prob with EOS), best first


# ----------------------------------------------------------------------------------------------
# a model as a next-token log-prob function


def log_prob_fn(model: Callable, block_size: int | None = None) -> NextLogProbs:
    """``model`` -> a function ids (N, T) -> (N, V) float32 log-probs of the next token.

    ``model(ids)`` may return logits (N, V) or (N, T, V), a ``(logits, loss)`` tuple (the course's
    GPT and Llama) or an object with ``.logits`` (Hugging Face). The course's models only compute
    the last position's logits (the only ones decoding needs). With ``block_size`` the model sees
    the last ``block_size`` tokens only. The ids go to the model's device, the log-probs come back
    to the CPU (a (N, V) table per step: small next to the forward pass).
    """
    if not callable(model):
        raise TypeError(f"model must be callable (ids -> logits), got {type(model).__name__}")
    if block_size is not None:
        _check_int(block_size, "block_size", 1)
    last_only = all(hasattr(model, a) for a in ("hidden_states", "lm_head"))  # llmcourse GPT / Llama
    params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
    device = next(params, torch.empty(0)).device  # the ids go where the weights are (CUDA when present)

    @torch.no_grad()
    def step(ids: Tensor) -> Tensor:
        if block_size is not None:
            ids = ids[:, -block_size:]  # (N, <= block_size)
        ids = ids.to(device)
        if last_only:
            logits = model.lm_head(model.hidden_states(ids)[:, -1])  # (N, V): V*C work per row, not T*V*C
        else:
            out = model(ids)
            logits = out.logits if hasattr(out, "logits") else out[0] if isinstance(out, tuple) else out
            if logits.dim() == 3:
                logits = logits[:, -1]  # (N, V): the prediction after the last token
        # (N, V) float32, as Hugging Face scores; on the CPU, where the search's bookkeeping lives
        return torch.log_softmax(logits.float(), dim=-1).cpu()

    return step


def _next(next_log_probs: NextLogProbs, ids: Tensor) -> Tensor:
    """Call the model on ids (N, T) and insist on (N, V) log-probs."""
    out = next_log_probs(ids)
    if not isinstance(out, Tensor) or out.dim() != 2 or out.size(0) != ids.size(0) or not out.is_floating_point():
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise ValueError(
            f"next_log_probs(ids of shape {tuple(ids.shape)}) must return (N, V) float log-probs, got {got}"
        )
    return out


# ----------------------------------------------------------------------------------------------
# greedy: the single most likely token, every step


@torch.no_grad()
def greedy(next_log_probs: NextLogProbs, prompt, max_new_tokens: int, eos_id: int | None = None) -> list[int]:
    """The argmax token at every step, until ``eos_id`` (kept) or ``max_new_tokens``.

    Returns the generated ids (the prompt not included). Ties go to the lower id (``argmax``).
    """
    ids = _check_prompt(prompt)
    _check_int(max_new_tokens, "max_new_tokens", 0)
    _check_eos(eos_id)
    out: list[int] = []
    for _ in range(max_new_tokens):
        token = int(_next(next_log_probs, ids)[0].argmax())  # (1, V) -> the likeliest id
        out.append(token)
        if token == eos_id:
            break
        ids = torch.cat([ids, ids.new_tensor([[token]])], dim=1)  # (1, T + 1)
    return out


# ----------------------------------------------------------------------------------------------
# one beam step: the best candidates over beams x vocabulary


def beam_step_naive(
    scores: Sequence[float], log_probs: Sequence[Sequence[float]], num_beams: int, eos_id: int | None = None
) -> tuple[Running, Finished]:
    """One step of beam search, written with Python lists: the rule itself.

    scores: K summed log-probs of the running beams; log_probs: K rows of V next-token log-probs.
    Every (beam b, token v) is a candidate scored scores[b] + log_probs[b][v]. Walk the candidates
    best first (ties: lower b * V + v first). Rank r < num_beams and v == eos_id: a finished
    hypothesis (b, total). v != eos_id: a running beam (b, v, total), until num_beams of them.
    """
    candidates = [
        (s + lp, b * len(row) + v, b, v)
        for b, (s, row) in enumerate(zip(scores, log_probs))
        for v, lp in enumerate(row)
    ]
    candidates.sort(key=lambda c: (-c[0], c[1]))
    running: Running = []
    finished: Finished = []
    for rank, (total, _, b, v) in enumerate(candidates):
        if v == eos_id:
            if rank < num_beams:  # an EOS below the top num_beams would not have survived the step
                finished.append((b, total))
        else:
            running.append((b, v, total))
            if len(running) == num_beams:
                break
    return running, finished


def beam_step(scores: Tensor, log_probs: Tensor, num_beams: int, eos_id: int | None = None) -> tuple[Running, Finished]:
    """:func:`beam_step_naive` with one ``topk`` over the flattened (K * V) candidates.

    scores (K,), log_probs (K, V). Only the best 2 * num_beams candidates can matter: at most K <=
    num_beams of them end with EOS (one per beam), so num_beams running ones are always among them.
    Returns (running, finished): [(parent, token, total)] and [(parent, total)], best first.
    """
    _check_step(scores, log_probs, num_beams, eos_id)
    K, V = log_probs.shape
    totals = (scores[:, None] + log_probs).flatten()  # (K * V,): beam b's token v at b * V + v
    best, flat = torch.topk(totals, min(2 * num_beams, K * V))  # (2k,) sorted, best first
    parents, tokens = (flat // V).tolist(), (flat % V).tolist()  # which beam, which token
    running: Running = []
    finished: Finished = []
    for rank, (b, v, total) in enumerate(zip(parents, tokens, best.tolist())):
        if v == eos_id:
            if rank < num_beams:
                finished.append((b, total))
        elif len(running) < num_beams:
            running.append((b, v, total))
    return running, finished


# ----------------------------------------------------------------------------------------------
# comparing hypotheses of different lengths


def length_normalized(total: float, length: int, length_penalty: float = 1.0) -> float:
    """total / length ** length_penalty: 0 keeps the raw sum, 1 is the mean log-prob per token."""
    return total / (length**length_penalty)


def _keep_best(pool: list[Hypothesis], num_beams: int) -> list[Hypothesis]:
    """The num_beams best finished hypotheses, best first (ties: the earlier one first)."""
    return sorted(pool, key=lambda h: -h[1])[:num_beams]


def _should_stop(pool, best_running: float | None, length: int, num_beams, length_penalty, early_stopping) -> bool:
    """Hugging Face's rule: full pool and early stopping; or full pool and the best running beam,
    ended now at ``length`` tokens, could not beat the worst kept hypothesis."""
    if len(pool) < num_beams:
        return False
    if early_stopping or best_running is None:
        return True
    return length_normalized(best_running, length, length_penalty) <= pool[-1][1]


# ----------------------------------------------------------------------------------------------
# beam search, naive: one model call per beam, Python lists


@torch.no_grad()
def n_best_naive(
    next_log_probs: NextLogProbs,
    prompt,
    num_beams: int,
    n: int,
    max_new_tokens: int,
    eos_id: int | None = None,
    length_penalty: float = 1.0,
    early_stopping: bool = True,
) -> list[Hypothesis]:
    """:func:`n_best` with one model call per beam and :func:`beam_step_naive`: slow and plain."""
    ids = _check_search(prompt, num_beams, n, max_new_tokens, eos_id, length_penalty, early_stopping)
    if max_new_tokens == 0:
        return [([], 0.0)]
    beams: list[list[int]] = [[]]  # generated tokens of each running beam
    scores: list[float] = [0.0]  # their summed log-probs
    pool: list[Hypothesis] = []
    for length in range(1, max_new_tokens + 1):
        rows = [_next(next_log_probs, torch.cat([ids, ids.new_tensor([beam])], dim=1))[0].tolist() for beam in beams]
        if length == max_new_tokens:  # the limit: the num_beams best candidates end here
            running, finished = beam_step_naive(scores, rows, num_beams, eos_id=None)
            finished = [(b, total) for b, _, total in running[:num_beams]]
            ends = [beams[b] + [v] for b, v, _ in running]
        else:
            running, finished = beam_step_naive(scores, rows, num_beams, eos_id)
            ends = [beams[b] + [eos_id] for b, _ in finished]
        pool = _keep_best(
            pool + [(end, length_normalized(t, length, length_penalty)) for end, (_, t) in zip(ends, finished)],
            num_beams,
        )
        beams, scores = [beams[b] + [v] for b, v, _ in running], [t for _, _, t in running]
        if (
            length == max_new_tokens
            or not running
            or _should_stop(pool, scores[0] if scores else None, length, num_beams, length_penalty, early_stopping)
        ):
            break
    return pool[:n]


# ----------------------------------------------------------------------------------------------
# beam search, batched: the K beams are one tensor dimension, one model call per step


@torch.no_grad()
def n_best(
    next_log_probs: NextLogProbs,
    prompt,
    num_beams: int,
    n: int,
    max_new_tokens: int,
    eos_id: int | None = None,
    length_penalty: float = 1.0,
    early_stopping: bool = True,
) -> list[Hypothesis]:
    """The n best hypotheses of a width-``num_beams`` beam search: [(tokens, score)], best first.

    tokens are the generated ids (EOS included when the hypothesis ended with it); score is the
    summed log-prob normalised by :func:`length_normalized`. n <= num_beams.
    """
    ids = _check_search(prompt, num_beams, n, max_new_tokens, eos_id, length_penalty, early_stopping)
    if max_new_tokens == 0:
        return [([], 0.0)]
    T0 = ids.size(1)
    beams = ids  # (K, T): every running beam, prompt included; K = 1 before the first step
    scores = torch.zeros(1)  # (K,) summed log-probs of the generated tokens
    pool: list[Hypothesis] = []
    for length in range(1, max_new_tokens + 1):
        log_probs = _next(next_log_probs, beams)  # (K, V): one call for all beams
        scores = scores.to(log_probs.dtype)
        last = length == max_new_tokens
        running, finished = beam_step(scores, log_probs, num_beams, None if last else eos_id)
        if last:  # the limit: the num_beams best candidates end here, as they are
            ends = [beams[b, T0:].tolist() + [v] for b, v, _ in running]
            finished = [(b, t) for b, _, t in running]
        else:
            ends = [beams[b, T0:].tolist() + [eos_id] for b, _ in finished]
        pool = _keep_best(
            pool + [(end, length_normalized(t, length, length_penalty)) for end, (_, t) in zip(ends, finished)],
            num_beams,
        )
        if last or not running:
            break
        parents = torch.tensor([b for b, _, _ in running])  # (K',) the beam each survivor extends
        tokens = beams.new_tensor([v for _, v, _ in running])  # (K',)
        beams = torch.cat([beams[parents], tokens[:, None]], dim=1)  # (K', T + 1)
        scores = torch.tensor([t for _, _, t in running], dtype=log_probs.dtype)  # (K',)
        if _should_stop(pool, float(scores[0]), length, num_beams, length_penalty, early_stopping):
            break
    return pool[:n]


def beam_search(
    next_log_probs: NextLogProbs,
    prompt,
    num_beams: int,
    max_new_tokens: int,
    eos_id: int | None = None,
    length_penalty: float = 1.0,
    early_stopping: bool = True,
) -> Hypothesis:
    """The best hypothesis of a width-``num_beams`` beam search: (generated tokens, normalised score)."""
    return n_best(next_log_probs, prompt, num_beams, 1, max_new_tokens, eos_id, length_penalty, early_stopping)[0]


# ----------------------------------------------------------------------------------------------
# sampling (unit 03's samplers) and one interface for all three


@torch.no_grad()
def sample(
    next_log_probs: NextLogProbs,
    prompt,
    max_new_tokens: int,
    eos_id: int | None = None,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """Draw each token from the reshaped distribution (``autoregressive.filtered_probs``)."""
    ids = _check_prompt(prompt)
    _check_int(max_new_tokens, "max_new_tokens", 0)
    _check_eos(eos_id)
    out: list[int] = []
    for _ in range(max_new_tokens):
        probs = filtered_probs(_next(next_log_probs, ids), temperature, top_k, top_p)  # (1, V)
        token = int(torch.multinomial(probs, 1, generator=generator))
        out.append(token)
        if token == eos_id:
            break
        ids = torch.cat([ids, ids.new_tensor([[token]])], dim=1)  # (1, T + 1)
    return out


STRATEGIES = ("greedy", "beam", "sample")


def decode(next_log_probs: NextLogProbs, prompt, max_new_tokens: int, strategy: str = "greedy", **options) -> list[int]:
    """One interface: the generated ids of ``strategy`` "greedy", "beam" (options: num_beams,
    eos_id, length_penalty, early_stopping) or "sample" (eos_id, temperature, top_k, top_p,
    generator)."""
    if strategy == "greedy":
        return greedy(next_log_probs, prompt, max_new_tokens, **options)
    if strategy == "beam":
        return beam_search(next_log_probs, prompt, max_new_tokens=max_new_tokens, **options)[0]
    if strategy == "sample":
        return sample(next_log_probs, prompt, max_new_tokens, **options)
    raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")


# ----------------------------------------------------------------------------------------------
# input checks: a clear message here beats an index error from deep inside torch


def _check_int(v, name: str, low: int) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")


def _check_eos(eos_id) -> None:
    if eos_id is not None and (isinstance(eos_id, bool) or not isinstance(eos_id, int) or eos_id < 0):
        raise ValueError(f"eos_id must be a token id (an int >= 0) or None, got {eos_id!r}")


def _check_prompt(prompt) -> Tensor:
    """A list of ids, a (T,) or a (1, T) int64 tensor -> (1, T) int64 tensor."""
    if isinstance(prompt, (list, tuple)):
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            raise TypeError("prompt must be a list of int token ids")
        prompt = torch.tensor(prompt, dtype=torch.long)
    if not isinstance(prompt, Tensor) or prompt.dtype != torch.long:
        raise TypeError(f"prompt must be a list of ids or an int64 tensor, got {getattr(prompt, 'dtype', prompt)!r}")
    if prompt.dim() == 2 and prompt.size(0) != 1:
        raise ValueError(f"decode one prompt at a time: got a batch of shape {tuple(prompt.shape)}, want (1, T)")
    if prompt.dim() not in (1, 2) or prompt.numel() == 0:
        raise ValueError(f"prompt must hold at least one token, as (T,) or (1, T); got shape {tuple(prompt.shape)}")
    if int(prompt.min()) < 0:
        raise ValueError("prompt holds a negative token id")
    return prompt.reshape(1, -1)


def _check_search(prompt, num_beams, n, max_new_tokens, eos_id, length_penalty, early_stopping) -> Tensor:
    _check_int(num_beams, "num_beams (the beam width)", 1)
    _check_int(n, "n", 1)
    if n > num_beams:
        raise ValueError(f"n={n} best hypotheses need a beam at least that wide, got num_beams={num_beams}")
    _check_int(max_new_tokens, "max_new_tokens", 0)
    _check_eos(eos_id)
    if isinstance(length_penalty, bool) or not isinstance(length_penalty, (int, float)):
        raise ValueError(f"length_penalty must be a number, got {length_penalty!r}")
    if not math.isfinite(length_penalty):
        raise ValueError(f"length_penalty must be finite, got {length_penalty!r}")
    if not isinstance(early_stopping, bool):
        raise ValueError(f"early_stopping must be True or False, got {early_stopping!r}")
    return _check_prompt(prompt)


def _check_step(scores, log_probs, num_beams, eos_id) -> None:
    _check_int(num_beams, "num_beams (the beam width)", 1)
    _check_eos(eos_id)
    if not isinstance(scores, Tensor) or not isinstance(log_probs, Tensor):
        raise TypeError("scores and log_probs must be tensors: (K,) and (K, V)")
    if scores.dim() != 1 or log_probs.dim() != 2 or scores.size(0) != log_probs.size(0) or log_probs.size(1) == 0:
        raise ValueError(
            f"scores must be (K,) and log_probs (K, V) for the same K beams, got {tuple(scores.shape)} "
            f"and {tuple(log_probs.shape)}"
        )
    if scores.size(0) > num_beams:
        raise ValueError(f"{scores.size(0)} running beams is more than the width num_beams={num_beams}")
