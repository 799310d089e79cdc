"""Word embeddings: words as points in a space where distance means similarity.

A language model cannot compute with the string "king". It gives every word of its vocabulary
(V words) a row of a matrix E (V, D): the word's *embedding*, D numbers. In steps:

1. **Lookup.** Word number i is the one-hot vector e_i (V,), and its embedding is e_i @ E, i.e.
   row i of E. A lookup *is* a matrix product with a one-hot vector (that is why the embedding
   matrix trains like any other weight); in practice we just index, ``E[ids]``.
2. **Similarity.** Two words are similar when their vectors point the same way: the cosine
   cos(u, v) = u.v / (|u| |v|), in [-1, 1], blind to vector length (which mostly tracks frequency).
3. **Neighbours.** The k words most similar to a word (itself excluded): "frog" -> "toad",
   "lizard", ... Words cluster by similarity.
4. **Analogies.** Directions mean something: king - man + woman lands near queen. 3CosAdd answers
   "a is to b as c is to ?" with the word closest to b - a + c (unit vectors); 3CosMul (Levy and
   Goldberg 2014) multiplies the similarities instead of adding them, so no single term dominates.
   The Google analogy set (19,544 questions in 14 sections) measures this, per section.
5. **Feature directions.** he - she, king - man: projecting words onto such a direction gives a
   learned "feature" (gender, royalty) that nobody engineered by hand. PCA to 2-D draws the space.
6. **Learning them: skip-gram with negative sampling** (word2vec, Mikolov et al. 2013). Slide over
   text; each word (the *center*) should predict the words around it (its *context*). With
   input vectors v (W_in) and output vectors u (W_out), one (center, context) pair costs
   ``-log s(u_o . v_c) - sum_k log s(-u_k . v_c)``, s the sigmoid, u_k for K *negative* words
   drawn from unigram counts ** 0.75. Very frequent words ("the", "and") are randomly dropped
   first (subsampling): they say little about their neighbours. Words used in similar contexts
   end up with similar vectors.
7. **Un-embedding.** A language model's last layer turns a hidden vector h (D,) back into scores
   over the vocabulary, h @ E.T (V,): the dot product with every word's embedding (often the very
   same matrix E, "weight tying").

Read top to bottom: lookup, cosine, neighbours (naive, then fast), analogies, their evaluation,
directions and PCA, then skip-gram (data, loss and gradients, one step, the training loop).
Geometry works on numpy arrays (float32 or float64); skip-gram is torch.

    >>> from llmcourse.toolbox.glove import load_glove
    >>> words, E = load_glove(30_000)
    >>> analogy(words, E, "man", "king", "woman")[0][0]
    'queen'
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "one_hot",
    "embed_one_hot",
    "embed",
    "unembed",
    "normalize",
    "cosine_similarity",
    "nearest_neighbours_naive",
    "nearest_neighbours",
    "nearest_to_vector",
    "analogy",
    "evaluate_analogies",
    "accuracy",
    "direction",
    "project",
    "pca_2d",
    "shakespeare_sentences",
    "build_vocab",
    "keep_probabilities",
    "noise_distribution",
    "skipgram_pairs",
    "sgns_loss",
    "sgns_gradients",
    "sgns_step",
    "train_sgns",
]

EPS = 1e-12  # a zero vector has no direction: its cosine with anything is 0, not nan


# ----------------------------------------------------------------------------------------------
# 1. lookup = one-hot times the matrix; un-embedding = the matrix transposed


def one_hot(ids: Tensor, V: int) -> Tensor:
    """ids (...,) int64 -> (..., V) float32, a 1 in column ``ids``."""
    _check_ids(ids, V, "ids")
    return (ids[..., None] == torch.arange(V, device=ids.device)).float()  # (..., V)


def embed_one_hot(ids: Tensor, E: Tensor) -> Tensor:
    """The definition: one_hot(ids) @ E, (...,) -> (..., D). O(V D) per word: for teaching only."""
    return one_hot(ids, E.shape[0]).to(E.dtype) @ E  # (..., V) @ (V, D) -> (..., D)


def embed(ids: Tensor, E: Tensor) -> Tensor:
    """The same rows by indexing, O(D) per word: what ``nn.Embedding`` does."""
    _check_ids(ids, E.shape[0], "ids")
    return E[ids]  # (..., D)


def unembed(h: Tensor, E: Tensor) -> Tensor:
    """Hidden vectors (..., D) -> scores over the vocabulary (..., V): the dot product with every
    word's embedding. A language model's output layer; softmax turns the scores into next-word odds."""
    return h @ E.T  # (..., D) @ (D, V) -> (..., V)


# ----------------------------------------------------------------------------------------------
# 2. cosine similarity


def normalize(X: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (a zero row stays zero). (N, D) -> (N, D), or (D,) -> (D,)."""
    X = _as_float_array(X, "X")
    norms = np.linalg.norm(X, axis=-1, keepdims=True)  # (N, 1)
    return X / np.maximum(norms, EPS).astype(X.dtype)


def cosine_similarity(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Every row of A against every row of B: (N, D), (M, D) -> (N, M). A 1-D side drops its axis:
    (D,), (M, D) -> (M,) and (D,), (D,) -> a 0-d array. Zero vectors have similarity 0."""
    A, B = _as_float_array(A, "A"), _as_float_array(B, "B")
    if A.shape[-1] != B.shape[-1]:
        raise ValueError(f"A and B must have the same dimension D, got shapes {A.shape} and {B.shape}")
    return normalize(A) @ normalize(B).T  # (N, D) @ (D, M) -> (N, M)


# ----------------------------------------------------------------------------------------------
# 3. nearest neighbours


def nearest_neighbours_naive(words: list[str], E: np.ndarray, word: str, k: int = 10) -> list[tuple[str, float]]:
    """One cosine at a time, then a full sort: easy to read, O(V D) in Python."""
    index = _index(words, E)
    i = _lookup(index, word)
    _check_k(k, len(words) - 1)
    scored = [(float(cosine_similarity(E[i], E[j])), j) for j in range(len(words)) if j != i]
    scored.sort(key=lambda sj: (-sj[0], sj[1]))  # most similar first; ties by index
    return [(words[j], s) for s, j in scored[:k]]


def nearest_to_vector(
    words: list[str], E: np.ndarray, vector: np.ndarray, k: int = 10, exclude: tuple[int, ...] = ()
) -> list[tuple[str, float]]:
    """The k words whose vectors are most similar to ``vector`` (D,), skipping row ids ``exclude``."""
    sims = cosine_similarity(vector, E).astype(np.float64)  # (V,)
    return [(words[j], float(sims[j])) for j in _top_k(sims, k, exclude)]


def nearest_neighbours(words: list[str], E: np.ndarray, word: str, k: int = 10) -> list[tuple[str, float]]:
    """The k words most similar to ``word`` (cosine), most similar first, the word itself excluded.

    One matrix-vector product for all V similarities and a partial sort (argpartition) for the top k.
    """
    index = _index(words, E)
    i = _lookup(index, word)
    _check_k(k, len(words) - 1)
    return nearest_to_vector(words, E, E[i], k, exclude=(i,))


def _top_k(scores: np.ndarray, k: int, exclude=()) -> list[int]:
    """Indices of the k largest scores, largest first (ties: smaller index first), ``exclude`` skipped."""
    scores = scores.astype(np.float64, copy=True)
    scores[list(exclude)] = -np.inf
    _check_k(k, len(scores) - len(set(exclude)))
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    return sorted(part.tolist(), key=lambda j: (-scores[j], j))


# ----------------------------------------------------------------------------------------------
# 4. analogies: a is to b as c is to ?


def analogy(
    words: list[str], E: np.ndarray, a: str, b: str, c: str, k: int = 1, method: str = "add"
) -> list[tuple[str, float]]:
    """The k best answers to "a is to b as c is to ?", as (word, score), best first; a, b, c excluded.

    ``"add"`` (3CosAdd): the score of word x is cos(x, b^ - a^ + c^) on unit vectors a^, b^, c^
    (the ranking of cos(x, b) - cos(x, a) + cos(x, c)). ``"mul"`` (3CosMul): with similarities
    shifted to [0, 1], s(x, w) = (1 + cos(x, w)) / 2, the score is s(x, b) s(x, c) / (s(x, a) + 1e-6).

    analogy(words, E, "man", "king", "woman") -> [("queen", 0.85...)]
    """
    if method not in ("add", "mul"):
        raise ValueError(f"method must be 'add' (3CosAdd) or 'mul' (3CosMul), got {method!r}")
    index = _index(words, E)
    ia, ib, ic = (_lookup(index, w) for w in (a, b, c))
    _check_k(k, len(words) - len({ia, ib, ic}))
    if method == "add":
        target = normalize(E[ib]) - normalize(E[ia]) + normalize(E[ic])  # (D,)
        return nearest_to_vector(words, E, target, k, exclude=(ia, ib, ic))
    sims = cosine_similarity(E[[ia, ib, ic]], E).astype(np.float64)  # (3, V)
    shifted = (1 + sims) / 2  # in [0, 1]: a product of negative numbers would flip signs
    scores = shifted[1] * shifted[2] / (shifted[0] + 1e-6)  # (V,)
    return [(words[j], float(scores[j])) for j in _top_k(scores, k, (ia, ib, ic))]


def evaluate_analogies(
    words: list[str],
    E: np.ndarray,
    sections: dict[str, list[tuple[str, str, str, str]]],
    restrict_vocab: int | None = None,
    method: str = "add",
) -> tuple[dict[str, tuple[int, int]], int]:
    """Answer every question "a b c d" (is the best answer to a : b :: c : ? the word d?) per section.

    * Only the first ``restrict_vocab`` words (the most frequent, if ``words`` is sorted by
      frequency) take part, as candidates and as question words: cheaper, and standard.
    * Case is folded (``"Athens"`` matches ``"athens"``); if two words fold to the same, the first
      one stands for both, and none of a question's words may be its answer.
    * A question with a word outside that vocabulary is skipped and counted, not scored wrong.

    Returns ``({section: (correct, attempted)}, skipped)``. This is gensim's
    ``evaluate_word_analogies`` (its default is 3CosAdd) without its logging.
    """
    if method not in ("add", "mul"):
        raise ValueError(f"method must be 'add' (3CosAdd) or 'mul' (3CosMul), got {method!r}")
    _index(words, E)
    n = len(words) if restrict_vocab is None else restrict_vocab
    _check_k(n, len(words), what="restrict_vocab")
    U = normalize(E[:n]).astype(np.float32)  # (n, D) unit rows
    first: dict[str, int] = {}
    for i, w in enumerate(words[:n]):
        first.setdefault(w.lower(), i)
    folded = np.array([first[w.lower()] for w in words[:n]])  # (n,) row -> its representative row
    results, skipped = {}, 0
    for name, questions in sections.items():
        ids = []
        for q in questions:
            if len(q) != 4:
                raise ValueError(f"section {name!r}: a question is 4 words (a, b, c, d), got {q!r}")
            folded_q = [first.get(w.lower()) for w in q]
            if None in folded_q:
                skipped += 1
            else:
                ids.append(folded_q)
        ids = np.array(ids, dtype=np.int64).reshape(-1, 4)  # (Q, 4)
        correct = 0
        for start in range(0, len(ids), 512):  # chunks keep the (Q, n) score matrix small
            chunk = ids[start : start + 512]
            scores = _analogy_scores(U, chunk[:, 0], chunk[:, 1], chunk[:, 2], method)  # (q, n)
            for col in range(3):  # a question's own words (in any case) cannot be its answer
                scores[folded[None, :] == chunk[:, col, None]] = -np.inf
            predicted = folded[scores.argmax(axis=1)]
            correct += int((predicted == chunk[:, 3]).sum())
        results[name] = (correct, len(ids))
    return results, skipped


def _analogy_scores(U: np.ndarray, ia, ib, ic, method: str) -> np.ndarray:
    """Scores of every candidate (rows of the unit matrix U) for a batch of questions: (q, n)."""
    if method == "add":
        return (U[ib] - U[ia] + U[ic]) @ U.T  # (q, D) @ (D, n); same ranking as cos with the target
    s = (1 + np.stack([U[ia] @ U.T, U[ib] @ U.T, U[ic] @ U.T])) / 2  # (3, q, n)
    return s[1] * s[2] / (s[0] + 1e-6)


def accuracy(results: dict[str, tuple[int, int]]) -> float:
    """Correct / attempted over all sections of an :func:`evaluate_analogies` result."""
    attempted = sum(t for _, t in results.values())
    return sum(c for c, _ in results.values()) / attempted if attempted else 0.0


# ----------------------------------------------------------------------------------------------
# 5. feature directions and a 2-D picture


def direction(plus: np.ndarray, minus: np.ndarray) -> np.ndarray:
    """The unit direction from ``minus`` to ``plus``, e.g. he - she. Several pairs (P, D) each are
    averaged first (a steadier direction than any one pair)."""
    plus, minus = _as_float_array(plus, "plus"), _as_float_array(minus, "minus")
    if plus.shape != minus.shape:
        raise ValueError(f"plus and minus must have the same shape, got {plus.shape} and {minus.shape}")
    diff = plus - minus
    return normalize(diff.mean(axis=0) if diff.ndim == 2 else diff)  # (D,)


def project(X: np.ndarray, d: np.ndarray) -> np.ndarray:
    """How far each row of X (N, D) goes along the direction d (D,): X @ d / |d|, (N,)."""
    X, d = _as_float_array(X, "X"), _as_float_array(d, "d")
    return X @ normalize(d)


def pca_2d(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Principal components: the 2 directions along which the rows of X (N, D) vary most.

    Returns (coordinates (N, 2), components (2, D)). Centre the rows, take the SVD X = U S Vt: the
    first rows of Vt are the directions. Each component's sign is fixed so that its largest
    entry (by magnitude) is positive: the same data always gives the same picture.
    """
    X = _as_float_array(X, "X")
    if X.ndim != 2 or X.shape[0] < 2 or X.shape[1] < 2:
        raise ValueError(f"X must be (N, D) with N >= 2 and D >= 2, got shape {X.shape}")
    Xc = X - X.mean(axis=0)  # (N, D)
    _, _, Vt = np.linalg.svd(Xc, full_matrices=False)
    components = Vt[:2]  # (2, D)
    signs = np.sign(components[np.arange(2), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    return Xc @ components.T, components  # (N, 2), (2, D)


# ----------------------------------------------------------------------------------------------
# 6. skip-gram with negative sampling: the data

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")


def shakespeare_sentences(text: str) -> list[list[str]]:
    """The corpus as lists of lowercase words, one list per speech (the ``NAME:`` line dropped), so
    that context windows never cross from one speaker to the next."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    sentences = []
    for speech in text.split("\n\n"):
        lines = speech.strip().split("\n")
        body = " ".join(lines[1:] if lines[0].endswith(":") else lines)
        tokens = _WORD.findall(body.lower())
        if tokens:
            sentences.append(tokens)
    return sentences


def build_vocab(sentences: list[list[str]], min_count: int = 5) -> tuple[list[str], np.ndarray]:
    """Words seen at least ``min_count`` times, most frequent first (ties alphabetical), and their counts."""
    counts = Counter(w for s in sentences for w in s)
    kept = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if not kept:
        raise ValueError(f"empty vocabulary: no word occurs {min_count} times or more (is the corpus empty?)")
    return kept, np.array([counts[w] for w in kept], dtype=np.int64)


def keep_probabilities(counts: np.ndarray, sample: float = 1e-3) -> np.ndarray:
    """Frequent-word subsampling: the probability of keeping each occurrence of each word.

    With f = count / total, word2vec keeps a word with probability (sqrt(f / t) + 1) t / f, capped at 1
    (t = ``sample``): words rarer than ~t are always kept, "the" in Shakespeare about 1 time in 5.
    """
    counts = np.asarray(counts, dtype=np.float64)
    f = counts / counts.sum()
    return np.minimum(1.0, (np.sqrt(f / sample) + 1) * sample / f)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """Where negative words are drawn from: unigram counts ** 0.75, normalised. The power flattens the
    distribution, so rare words are drawn more often than their frequency alone would give."""
    p = np.asarray(counts, dtype=np.float64) ** power
    return p / p.sum()


def skipgram_pairs(sentences_ids: list[np.ndarray], window: int, rng: np.random.Generator) -> np.ndarray:
    """All (center, context) id pairs, (P, 2). As in word2vec each center draws its own window size
    b in 1..window (nearer words are paired more often) and pairs with the words up to b away."""
    ids = np.concatenate(sentences_ids) if sentences_ids else np.zeros(0, dtype=np.int64)  # (N,)
    sent = np.repeat(np.arange(len(sentences_ids)), [len(s) for s in sentences_ids])  # (N,) sentence of each word
    reach = rng.integers(1, window + 1, size=len(ids))  # (N,) each center's window
    pairs = []
    for offset in range(1, window + 1):
        center = np.arange(len(ids) - offset)
        for c, o in ((center, center + offset), (center + offset, center)):  # context right, then left
            ok = (sent[c] == sent[o]) & (reach[c] >= offset)
            pairs.append(np.stack([ids[c[ok]], ids[o[ok]]], axis=1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.int64)


# ----------------------------------------------------------------------------------------------
# 6. skip-gram with negative sampling: loss, gradients, one step


def sgns_loss(v: Tensor, u_pos: Tensor, u_neg: Tensor) -> Tensor:
    """Mean over the batch of -log s(u_pos . v) - sum_k log s(-u_neg_k . v).

    v (B, D) center vectors (from W_in), u_pos (B, D) their context's output vectors (from W_out),
    u_neg (B, K, D) K negative words each. ``logsigmoid`` stays finite where log(sigmoid(x))
    underflows to log(0) = -inf (x < -88 in float32).
    """
    _check_sgns(v, u_pos, u_neg)
    pos = (u_pos * v).sum(-1)  # (B,)
    neg = torch.einsum("bkd,bd->bk", u_neg, v)  # (B, K)
    loss = -torch.nn.functional.logsigmoid(pos) - torch.nn.functional.logsigmoid(-neg).sum(-1)  # (B,)
    return loss.mean()


def sgns_gradients(v: Tensor, u_pos: Tensor, u_neg: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients of the *summed* loss (each pair's own gradient) by hand, since d/dx -log s(x) = s(x) - 1:

    dL/du_pos = (s(u_pos . v) - 1) v             (B, D)
    dL/du_neg_k = s(u_neg_k . v) v               (B, K, D)
    dL/dv = (s(u_pos . v) - 1) u_pos + sum_k s(u_neg_k . v) u_neg_k   (B, D)
    """
    _check_sgns(v, u_pos, u_neg)
    g_pos = torch.sigmoid((u_pos * v).sum(-1)) - 1  # (B,)
    g_neg = torch.sigmoid(torch.einsum("bkd,bd->bk", u_neg, v))  # (B, K)
    d_v = g_pos[:, None] * u_pos + torch.einsum("bk,bkd->bd", g_neg, u_neg)  # (B, D)
    return d_v, g_pos[:, None] * v, g_neg[..., None] * v[:, None, :]


def _sgd_update_(W_in: Tensor, W_out: Tensor, center: Tensor, context: Tensor, negatives: Tensor, lr: float) -> None:
    """One step in place. ``index_add_`` sums the updates of a word that occurs several times in the
    batch (plain assignment ``W[ids] -= ...`` would keep only one of them)."""
    d_v, d_pos, d_neg = sgns_gradients(W_in[center], W_out[context], W_out[negatives])
    W_in.index_add_(0, center, d_v, alpha=-lr)
    W_out.index_add_(0, context, d_pos, alpha=-lr)
    W_out.index_add_(0, negatives.reshape(-1), d_neg.reshape(-1, W_out.shape[1]), alpha=-lr)


def sgns_step(
    W_in: Tensor, W_out: Tensor, center: Tensor, context: Tensor, negatives: Tensor, lr: float
) -> tuple[Tensor, Tensor]:
    """One step of gradient descent on the batch's summed loss: word2vec's update, every pair with
    learning rate ``lr``. W_in, W_out (V, D); center, context (B,) and negatives (B, K) word ids.
    Returns the new (W_in, W_out); the inputs are not changed."""
    V = W_in.shape[0]
    if W_out.shape != W_in.shape:
        raise ValueError(f"W_in and W_out must have the same shape (V, D), got {W_in.shape} and {W_out.shape}")
    for name, ids in (("center", center), ("context", context), ("negatives", negatives)):
        _check_ids(ids, V, name)
    if negatives.dim() != 2 or center.shape != context.shape or negatives.shape[0] != center.shape[0]:
        raise ValueError(
            f"center and context must be (B,) and negatives (B, K), got {tuple(center.shape)}, "
            f"{tuple(context.shape)}, {tuple(negatives.shape)}"
        )
    W_in, W_out = W_in.clone(), W_out.clone()
    _sgd_update_(W_in, W_out, center, context, negatives, lr)
    return W_in, W_out


# ----------------------------------------------------------------------------------------------
# 6. skip-gram with negative sampling: training


def train_sgns(
    sentences: list[list[str]],
    dim: int = 50,
    window: int = 5,
    negative: int = 5,
    min_count: int = 5,
    sample: float = 1e-3,
    epochs: int = 5,
    lr: float = 0.025,
    batch_size: int = 256,
    seed: int = 0,
) -> tuple[list[str], np.ndarray]:
    """Word vectors from raw sentences: returns (vocabulary, W_in as a (V, dim) float32 array).

    The defaults are word2vec's (gensim ``Word2Vec(sg=1, negative=5)``): W_in starts uniform in
    +-0.5/dim, W_out at zero, the learning rate falls linearly to 0.0001 * lr over training.
    Each epoch subsamples the corpus afresh, pairs every kept word with its window, shuffles the
    pairs and takes SGD steps on batches of them with ``negative`` noise words per pair.
    """
    if not sentences or not any(sentences):
        raise ValueError("the corpus is empty: nothing to train on")
    words, counts = build_vocab(sentences, min_count)
    index = {w: i for i, w in enumerate(words)}
    ids = [np.array([index[w] for w in s if w in index], dtype=np.int64) for s in sentences]
    keep = keep_probabilities(counts, sample)
    noise = torch.as_tensor(noise_distribution(counts))
    rng, g = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    W_in = (torch.rand(len(words), dim, generator=g) - 0.5) / dim  # (V, D)
    W_out = torch.zeros(len(words), dim)  # (V, D)
    # the number of steps is only known after subsampling; estimate it for the learning-rate schedule
    expected = sum(keep[s].sum() for s in ids) * (window + 1) * epochs / batch_size
    step, threads = 0, torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: thread hand-offs would cost more than the arithmetic
    try:
        for _ in range(epochs):
            kept = [s[rng.random(len(s)) < keep[s]] for s in ids]
            pairs = skipgram_pairs(kept, window, rng)  # (P, 2)
            pairs = torch.from_numpy(pairs[rng.permutation(len(pairs))])  # shuffled
            for start in range(0, len(pairs), batch_size):
                batch = pairs[start : start + batch_size]
                negatives = torch.multinomial(noise, len(batch) * negative, replacement=True, generator=g)
                rate = lr * max(1e-4, 1 - step / expected)
                _sgd_update_(W_in, W_out, batch[:, 0], batch[:, 1], negatives.view(len(batch), negative), rate)
                step += 1
    finally:
        torch.set_num_threads(threads)
    return words, W_in.numpy()


# ----------------------------------------------------------------------------------------------
# input checks: a clear message here beats an IndexError from deep inside numpy


def _as_float_array(X, name: str) -> np.ndarray:
    if isinstance(X, Tensor):
        X = X.detach().cpu().numpy()
    if not isinstance(X, np.ndarray):
        raise TypeError(f"{name} must be a numpy array, got {type(X).__name__}")
    if X.dtype.kind != "f":
        X = X.astype(np.float64)
    if X.ndim not in (1, 2):
        raise ValueError(f"{name} must be (D,) or (N, D), got shape {X.shape}")
    return X


def _index(words: list[str], E: np.ndarray) -> dict[str, int]:
    """word -> row, after checking that words and E agree."""
    if not isinstance(words, (list, tuple)):
        raise TypeError(f"words must be a list of str, got {type(words).__name__}")
    E = _as_float_array(E, "E")
    if E.ndim != 2 or E.shape[0] != len(words):
        raise ValueError(f"E must be (V, D) with one row per word: {len(words)} words, E of shape {E.shape}")
    index: dict[str, int] = {}
    for i, w in enumerate(words):
        index.setdefault(w, i)
    return index


def _lookup(index: dict[str, int], word: str) -> int:
    if word not in index:
        raise KeyError(f"{word!r} is not in the vocabulary ({len(index)} words)")
    return index[word]


def _check_k(k, available: int, what: str = "k") -> None:
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"{what} must be a positive int, got {k!r}")
    if k > available:
        raise ValueError(f"{what}={k} is larger than the {available} words available")


def _check_ids(ids, V: int, name: str) -> None:
    if not isinstance(ids, Tensor) or ids.dtype not in (torch.int64, torch.int32):
        raise TypeError(f"{name} must be an integer torch.Tensor of word ids, got {getattr(ids, 'dtype', type(ids))}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= V):
        raise IndexError(f"{name} must be word ids in 0..{V - 1}, got values in {ids.min()}..{ids.max()}")


def _check_sgns(v: Tensor, u_pos: Tensor, u_neg: Tensor) -> None:
    for name, t in (("v", v), ("u_pos", u_pos), ("u_neg", u_neg)):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point torch.Tensor")
    if v.dim() != 2 or u_pos.shape != v.shape or u_neg.dim() != 3 or u_neg.shape[::2] != v.shape:
        raise ValueError(
            f"v and u_pos must be (B, D) and u_neg (B, K, D), got {tuple(v.shape)}, "
            f"{tuple(u_pos.shape)}, {tuple(u_neg.shape)}"
        )
