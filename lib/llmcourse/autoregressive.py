"""Autoregressive language models: predict one piece at a time, append it, feed it back, repeat.

A language model gives a probability to every piece of text. It does so in five steps, each
built on the one before:

1. **The chain rule.** Any probability of a sequence factors, with no assumption at all, into one
   next-token prediction per position::

       p(x1 x2 ... xn) = p(x1) p(x2 | x1) p(x3 | x1 x2) ... p(xn | x1 ... x(n-1))
       log p(x1 ... xn) = sum_t log p(x_t | x_<t)

   So a model only has to answer one question, over and over: *given the text so far, what comes
   next?* ("The dog chased the" -> " ball" 12%, " cat" 9%, ...).

2. **Next-token prediction is V-way classification.** With a vocabulary of V tokens, each step is a
   classifier whose input is the context and whose classes are the V tokens. The model outputs V
   scores (*logits*); a softmax turns them into a distribution. It is trained with the classifier's
   usual loss, the cross-entropy ``-log p(correct class)``, averaged over positions. Computed
   naively, ``log(softmax(z))`` overflows for large logits; the log-sum-exp form
   ``logsumexp(z) - z[target]`` (subtract the max first) never does. ``exp(mean cross-entropy)`` is
   the *perplexity*: a model as unsure as a uniform choice among k tokens has perplexity k, so a
   uniform model over V tokens scores exactly V, and better models score less.

3. **Two models of the next token.** The *bigram* model looks at the last token only: the
   probability of b after a is how often b followed a in the training text, with add-alpha
   smoothing so that unseen pairs are unlikely but not impossible (an impossible pair would make
   the perplexity infinite). The *MLP* model of Bengio et al. (2003) looks at the last
   ``block_size`` tokens: each token's learned embedding, concatenated, through a tanh hidden
   layer, to V logits. Similar tokens get similar embeddings, so what it learns about one context
   carries over to similar contexts it never saw.

4. **Training data.** :func:`get_batch` cuts random windows out of the token stream: inputs
   ``x = data[i : i+T]`` and targets ``y = data[i+1 : i+T+1]``, the same window shifted by one.
   Every position t is one classification example, context ``x[:t+1]`` -> target ``y[t]``
   (:func:`context_target_pairs` lists them).

5. **Generation.** Run the chain rule forwards: predict the next token's distribution, draw a token
   from it, append it, feed the longer text back in, repeat (:func:`generate`). *How* to draw is a
   choice. Greedy (always the argmax) is repetitive; sampling from the full distribution sometimes
   picks junk from its long tail. Three knobs reshape the distribution first:
   **temperature** divides the logits (T < 1 sharpens, T > 1 flattens), **top-k** keeps the k most
   likely tokens, **top-p** (nucleus) keeps the smallest set of most likely tokens whose probability
   reaches p. Each returns logits with the removed tokens at -inf, i.e. probability exactly 0, so a
   sampler can never pick them.

Read top to bottom: :func:`cross_entropy_naive`, :func:`cross_entropy`, :func:`perplexity`,
:func:`sequence_log_prob` (the chain rule); :func:`bigram_counts_naive`, :func:`bigram_counts`,
:func:`bigram_probs`, :class:`BigramLM`; :class:`MLPLanguageModel`; :func:`get_batch`,
:func:`context_target_pairs`; :func:`apply_temperature`, :func:`top_k_filter`, :func:`top_p_filter`,
:func:`filtered_probs`, :func:`sample_next`; :func:`generate`. Input checks are at the bottom.

Usage::

    ids = torch.tensor([stoi[c] for c in text])                     # (N,) token ids
    bigram = BigramLM.fit(ids, vocab_size=V, alpha=1.0)
    perplexity(bigram(val[None, :-1]), val[None, 1:])              # next-token logits (1, T, V)
    x, y = get_batch(ids, block_size=8, batch_size=32)              # (32, 8) each
    model = MLPLanguageModel(V, block_size=8)
    loss = cross_entropy(model(x), y[:, -1])                        # the window's last target
    out = generate(model, x[:1], 100, block_size=8, temperature=0.8, top_p=0.9)

Shapes: B batch, T positions, V vocabulary size, C embedding channels (``n_embd``), H hidden units.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    "cross_entropy_naive",
    "cross_entropy",
    "perplexity",
    "sequence_log_prob",
    "bigram_counts_naive",
    "bigram_counts",
    "bigram_probs",
    "BigramLM",
    "MLPLanguageModel",
    "get_batch",
    "context_target_pairs",
    "apply_temperature",
    "top_k_filter",
    "top_p_filter",
    "filtered_probs",
    "sample_next",
    "generate",
]


# ----------------------------------------------------------------------------------------------
# next-token prediction is V-way classification: the cross-entropy loss


def cross_entropy_naive(logits: Tensor, targets: Tensor) -> Tensor:
    """-log softmax(logits)[target], averaged: the definition, read literally.

    exp(1000.0) is inf in float32 and inf / inf is nan, so this breaks on large logits;
    :func:`cross_entropy` computes the same number stably. Kept to show why.
    """
    probs = torch.exp(logits) / torch.exp(logits).sum(-1, keepdim=True)  # (..., V)
    return -torch.log(probs.gather(-1, targets.unsqueeze(-1))).mean()


def cross_entropy(logits: Tensor, targets: Tensor, ignore_index: int = -100) -> Tensor:
    """Mean negative log-likelihood of the targets: the loss of a V-way classifier.

    logits (..., V) scores of each class (token), targets (...) the correct class ids. Positions
    whose target equals ``ignore_index`` count for nothing (padding); the mean is over the others
    (0 / 0 = nan if there are none, as in ``F.cross_entropy``).

    Per position, -log softmax(z)[y] = logsumexp(z) - z[y], and logsumexp(z) = m + log sum exp(z - m)
    with m = max(z): the largest exponent is exp(0) = 1, so nothing overflows.
    """
    _check_logits_targets(logits, targets)
    logits = logits.reshape(-1, logits.size(-1))  # (N, V): one row per classification example
    targets = targets.reshape(-1)  # (N,)
    keep = targets != ignore_index  # (N,)
    if bool(keep.any()) and (int(targets[keep].min()) < 0 or int(targets[keep].max()) >= logits.size(-1)):
        raise ValueError(
            f"targets must be class ids in [0, V={logits.size(-1)}) or ignore_index={ignore_index}, got "
            f"min {int(targets[keep].min())}, max {int(targets[keep].max())}"
        )
    m = logits.detach().amax(-1, keepdim=True)  # (N, 1): shifting by a constant changes nothing
    lse = m.squeeze(-1) + torch.log(torch.exp(logits - m).sum(-1))  # (N,) log sum_v exp(z_v)
    correct = logits.gather(-1, torch.where(keep, targets, 0)[:, None]).squeeze(-1)  # (N,) z[y]
    nll = torch.where(keep, lse - correct, 0.0)  # (N,) ignored positions contribute 0 ...
    return nll.sum() / keep.sum()  # ... and are not counted


def perplexity(logits: Tensor, targets: Tensor, ignore_index: int = -100) -> float:
    """exp(mean cross-entropy): the model is as unsure as a uniform choice among this many tokens."""
    return float(torch.exp(cross_entropy(logits, targets, ignore_index)))


def sequence_log_prob(logits: Tensor, ids: Tensor) -> Tensor:
    """The chain rule: log p(x1 ... xn) = sum_t log p(x_t | x_<t).

    logits (..., T, V): row t is the model's prediction for ids[..., t] given what came before it.
    Returns (...): the log-probability of each whole sequence.
    """
    _check_logits_targets(logits, ids)
    m = logits.detach().amax(-1, keepdim=True)  # (..., T, 1)
    log_probs = logits - m - torch.log(torch.exp(logits - m).sum(-1, keepdim=True))  # (..., T, V)
    return log_probs.gather(-1, ids.unsqueeze(-1)).squeeze(-1).sum(-1)  # (..., T) -> (...)


# ----------------------------------------------------------------------------------------------
# the bigram model: count which token follows which


def bigram_counts_naive(ids: Tensor, vocab_size: int) -> Tensor:
    """(V, V) int64: counts[a, b] = how often b follows a. One Python step per pair."""
    _check_ids(ids, vocab_size, min_len=2)
    counts = torch.zeros(vocab_size, vocab_size, dtype=torch.long)
    for a, b in zip(ids[:-1].tolist(), ids[1:].tolist()):
        counts[a, b] += 1
    return counts


def bigram_counts(ids: Tensor, vocab_size: int) -> Tensor:
    """(V, V) int64: counts[a, b] = how often token b follows token a in ``ids`` (N,).

    The same as :func:`bigram_counts_naive`, in one call: the pair (a, b) gets the flat index
    a * V + b, and ``bincount`` counts all N - 1 of them at once.
    """
    _check_ids(ids, vocab_size, min_len=2)
    pair = ids[:-1] * vocab_size + ids[1:]  # (N-1,) each pair as one number
    return torch.bincount(pair, minlength=vocab_size * vocab_size).reshape(vocab_size, vocab_size)


def bigram_probs(counts: Tensor, alpha: float = 1.0) -> Tensor:
    """(V, V) float32: row a is p(next | a) = (counts[a] + alpha) / sum(counts[a] + alpha).

    alpha > 0 is add-alpha (Laplace) smoothing: a pair never seen in training gets a small
    probability instead of 0, whose log would be -inf. A row with no evidence at all (count 0
    everywhere and alpha = 0) is uniform: 1 / V for every token.
    """
    _check_counts(counts, alpha)
    smoothed = counts.to(torch.float32) + alpha  # (V, V)
    totals = smoothed.sum(-1, keepdim=True)  # (V, 1)
    uniform = torch.full_like(smoothed, 1.0 / smoothed.size(-1))
    return torch.where(totals > 0, smoothed / torch.where(totals > 0, totals, 1.0), uniform)


class BigramLM:
    """p(next | context) = p(next | last token): a (V, V) table of probabilities.

    Called on ids (B, T) it returns (B, T, V) logits (the log-probabilities), row t predicting the
    token after ids[:, t], like every model here; :func:`generate` uses the last row.
    """

    def __init__(self, probs: Tensor) -> None:
        if not isinstance(probs, Tensor) or probs.dim() != 2 or probs.size(0) != probs.size(1):
            raise ValueError("probs must be a (V, V) tensor, row a = p(next | a)")
        self.probs = probs
        self.vocab_size = probs.size(0)

    @classmethod
    def fit(cls, ids: Tensor, vocab_size: int, alpha: float = 1.0) -> BigramLM:
        """Count the pairs of ``ids`` (N,) and normalise the rows (see :func:`bigram_probs`)."""
        return cls(bigram_probs(bigram_counts(ids, vocab_size), alpha))

    def __call__(self, idx: Tensor) -> Tensor:
        _check_ids(idx, self.vocab_size, min_len=1, dims=(1, 2))
        return torch.log(self.probs[idx])  # (B, T, V): -inf where a pair has probability 0


# ----------------------------------------------------------------------------------------------
# the MLP model (Bengio et al. 2003): embeddings of the last block_size tokens -> tanh -> logits


class MLPLanguageModel(nn.Module):
    """idx (B, block_size) -> logits (B, V) of the token that comes next.

    embed each token (C numbers, learned), concatenate the block_size embeddings, a tanh hidden
    layer of H units, a linear map to V logits. (Bengio's paper also adds direct connections from
    the embeddings to the output; they are left out here.)
    """

    def __init__(self, vocab_size: int, block_size: int, n_embd: int = 16, n_hidden: int = 128) -> None:
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("block_size", block_size), ("n_embd", n_embd)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not isinstance(n_hidden, int) or n_hidden < 1:
            raise ValueError(f"n_hidden must be a positive int, got {n_hidden!r}")
        self.vocab_size, self.block_size = vocab_size, block_size
        self.wte = nn.Embedding(vocab_size, n_embd)  # token -> its C features
        self.hidden = nn.Linear(block_size * n_embd, n_hidden)
        self.lm_head = nn.Linear(n_hidden, vocab_size)

    def forward(self, idx: Tensor) -> Tensor:
        _check_ids(idx, self.vocab_size, min_len=1, dims=(2,))
        if idx.size(1) != self.block_size:
            raise ValueError(
                f"the MLP reads exactly block_size={self.block_size} tokens of context, got (B, T) = "
                f"{tuple(idx.shape)}; crop or pad the context first"
            )
        emb = self.wte(idx)  # (B, block_size, C)
        h = torch.tanh(self.hidden(emb.flatten(1)))  # (B, block_size * C) -> (B, H)
        return self.lm_head(h)  # (B, V)


# ----------------------------------------------------------------------------------------------
# training data: windows and their targets, shifted by one


def get_batch(
    data: Tensor, block_size: int, batch_size: int, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """batch_size random windows of ``data`` (N,): x (B, T) and y (B, T) with T = block_size.

    Window b starts at a random offset i (``torch.randint(N - T, (B,))``, so that y still fits):
    x[b] = data[i : i+T], y[b] = data[i+1 : i+T+1]. y[b, t] is the token that follows x[b, :t+1].
    """
    _check_ids(data, None, min_len=1)
    _check_positive_int(block_size, "block_size")
    _check_positive_int(batch_size, "batch_size")
    if data.numel() <= block_size:
        raise ValueError(
            f"the corpus has {data.numel()} tokens; a window of block_size={block_size} and its target "
            f"need at least {block_size + 1}"
        )
    ix = torch.randint(data.numel() - block_size, (batch_size,), generator=generator)  # (B,) offsets
    x = torch.stack([data[i : i + block_size] for i in ix.tolist()])  # (B, T)
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix.tolist()])  # (B, T): shifted by one
    return x, y


def context_target_pairs(x: Tensor, y: Tensor, decode: Callable[[list[int]], str] | None = None) -> list[str]:
    """The T classification examples in one window, as lines "context -> target".

    x, y (T,) from :func:`get_batch`; ``decode`` turns ids into text (default: the ids themselves).
    """
    if x.shape != y.shape or x.dim() != 1:
        raise ValueError(f"x and y must be one window each, (T,), got {tuple(x.shape)} and {tuple(y.shape)}")
    show = decode or (lambda ids: str(ids))
    return [f"{show(x[: t + 1].tolist())!r} -> {show([int(y[t])])!r}" for t in range(x.numel())]


# ----------------------------------------------------------------------------------------------
# reshaping the next-token distribution before drawing from it


def apply_temperature(logits: Tensor, temperature: float) -> Tensor:
    """logits / temperature: below 1 sharpens the distribution (towards greedy), above 1 flattens it.

    softmax(z / T): as T -> 0 all mass goes to the argmax, as T -> inf the distribution is uniform.
    """
    _check_logits(logits)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(
            f"temperature must be a number > 0, got {temperature!r} (for always picking the most likely "
            "token use greedy decoding, not temperature 0)"
        )
    return logits / temperature


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k largest logits of each row, set the rest to -inf (probability 0).

    A logit tied with the k-th largest is kept too (so more than k may survive a tie), as in
    ``transformers``' TopKLogitsWarper and nanoGPT.
    """
    _check_logits(logits)
    V = logits.size(-1)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= V:
        raise ValueError(f"top_k must be an int in [1, V={V}], got {k!r}")
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1) the k-th largest logit
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: Tensor, p: float) -> Tensor:
    """Nucleus filtering: keep the most likely tokens until their probability reaches p.

    Sort the tokens by probability, most likely first. A token is kept when the tokens before it
    hold less than p of the mass; so the most likely token is always kept, and the kept set is the
    smallest prefix whose mass is >= p. The rest get -inf. p = 1 keeps every token.
    """
    _check_logits(logits)
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"top_p must be a number in (0, 1], got {p!r}")
    if p == 1:
        return logits  # everything is kept (a float cumsum may reach 1.0 early: do not trust it here)
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)  # (..., V)
    probs = torch.softmax(sorted_logits, dim=-1)  # (..., V)
    mass_before = probs.cumsum(-1) - probs  # (..., V): probability of the more likely tokens
    remove_sorted = mass_before >= p
    remove = remove_sorted.scatter(-1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def filtered_probs(
    logits: Tensor, temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None
) -> Tensor:
    """The distribution a sampler draws from: temperature, then top-k, then top-p, then softmax.

    (The order of ``transformers``' sampling: top-p sees the tempered, top-k-truncated distribution.)
    """
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.softmax(logits, dim=-1)  # removed tokens: exp(-inf) = exactly 0


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Draw one token per row from :func:`filtered_probs`: logits (B, V) -> ids (B, 1) int64."""
    if not isinstance(logits, Tensor) or logits.dim() != 2:
        raise ValueError(f"logits must be (B, V), got {getattr(logits, 'shape', type(logits).__name__)}")
    probs = filtered_probs(logits, temperature, top_k, top_p)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


# ----------------------------------------------------------------------------------------------
# generation: predict one piece, append, feed back, repeat


@torch.no_grad()
def generate(
    model: Callable[[Tensor], Tensor],
    idx: Tensor,
    max_new_tokens: int,
    block_size: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Extend every row of ``idx`` (B, T) by max_new_tokens tokens: returns (B, T + max_new_tokens).

    Each step shows the model the last ``block_size`` tokens (all it can read), takes the logits of
    the next token, (B, V) (or the last row of (B, T, V) from a model that predicts every position),
    picks a token (the argmax if ``greedy``, else :func:`sample_next`) and appends it.
    """
    _check_ids(idx, None, min_len=1, dims=(2,))
    _check_positive_int(block_size, "block_size")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
    for _ in range(max_new_tokens):
        context = idx[:, -block_size:]  # (B, <= block_size): the model reads no further back
        logits = model(context)  # (B, V) or (B, T, V)
        if logits.dim() == 3:
            logits = logits[:, -1, :]  # (B, V): the prediction after the last token
        if greedy:
            next_id = logits.argmax(-1, keepdim=True)  # (B, 1)
        else:
            next_id = sample_next(logits, temperature, top_k, top_p, generator)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1): the new token becomes context
    return idx


# ----------------------------------------------------------------------------------------------
# input checks: a clear message here beats an index error from deep inside torch


def _check_positive_int(v, name: str) -> None:
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ValueError(f"{name} must be a positive int, got {v!r}")


def _check_ids(ids, vocab_size: int | None, min_len: int, dims: tuple[int, ...] = (1,)) -> None:
    if not isinstance(ids, Tensor):
        raise TypeError(f"token ids must be a torch.Tensor of int64, got {type(ids).__name__}")
    if ids.dtype != torch.long:
        raise TypeError(f"token ids must have dtype torch.long (int64), got {ids.dtype}")
    if ids.dim() not in dims:
        want = " or ".join({1: "(N,)", 2: "(B, T)"}[d] for d in dims)
        raise ValueError(f"token ids must be {want}, got shape {tuple(ids.shape)}")
    if ids.size(-1) < min_len:
        if ids.numel() == 0:
            raise ValueError("the corpus is empty: there is nothing to count or learn from")
        raise ValueError(f"need at least {min_len} tokens, got {ids.size(-1)}")
    if vocab_size is not None:
        _check_positive_int(vocab_size, "vocab_size")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
            raise ValueError(
                f"token ids must lie in [0, vocab_size={vocab_size}), got min {int(ids.min())}, max {int(ids.max())}"
            )


def _check_counts(counts, alpha) -> None:
    if not isinstance(counts, Tensor) or counts.dim() != 2 or counts.size(0) != counts.size(1):
        raise ValueError(f"counts must be a (V, V) tensor, got {getattr(counts, 'shape', type(counts).__name__)}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
        raise ValueError(f"alpha (smoothing) must be a number >= 0, got {alpha!r}")
    if counts.numel() and bool((counts < 0).any()):
        raise ValueError("counts must be >= 0")


def _check_logits(logits) -> None:
    if not isinstance(logits, Tensor) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point torch.Tensor, got {getattr(logits, 'dtype', type(logits))}")
    if logits.dim() < 1 or logits.size(-1) < 1:
        raise ValueError(f"logits must be (..., V) with V >= 1, got shape {tuple(logits.shape)}")


def _check_logits_targets(logits, targets) -> None:
    _check_logits(logits)
    if not isinstance(targets, Tensor) or targets.dtype != torch.long:
        raise TypeError(f"targets must be an int64 torch.Tensor, got {getattr(targets, 'dtype', type(targets))}")
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits (..., V) and targets (...) must agree on the leading dims, got "
            f"{tuple(logits.shape)} and {tuple(targets.shape)}"
        )
