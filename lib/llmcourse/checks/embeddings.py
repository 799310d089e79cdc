"""Cases for assignment 02 (word embeddings): cosine similarity, nearest neighbours, analogies, analogy
evaluation, the skip-gram negative-sampling loss and one training step.

Nothing here imports ``llmcourse.embeddings`` (the answer key, unavailable while grading) and nothing
reads GloVe (a grading kernel must stay small): every vocabulary is built from first principles.
:func:`toy_vocabulary` gives words vectors made of named features (royal, male, young, fruit, ...)
plus seeded noise, so that king - man + woman really lands near queen and some analogies are right
and some wrong, as with real vectors. Hidden cases add mixed-case questions, out-of-vocabulary words,
a restricted vocabulary, zero vectors, float32, repeated word ids in a batch, large scores, and
random vocabularies drawn from the grader's seed.

Rankings must be unambiguous: every case's top k + 1 scores differ by far more than rounding (a test
checks this for many seeds), so a correct answer computed in another order ranks the same words.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _kit as kit
from .checker import Case, Spec, seeded_rng_seed

# float64 geometry agrees to ~1e-15 whatever the order of operations; float32 to ~1e-6 on values of
# size 1 (cosines, losses); a real mistake (no normalisation, a missed exclusion) is off by far more.
TOL = dict(rtol=1e-5, atol=1e-6)


def _np_rng(name: str, seed: int) -> np.random.Generator:
    return np.random.default_rng(seeded_rng_seed(name, seed))


# --------------------------------------------------------------------------- a vocabulary from features

FEATURES = ("royal", "male", "female", "young", "fruit", "animal", "colour", "plural")
TOY_WORDS = {
    "king": ("royal", "male"),
    "queen": ("royal", "female"),
    "man": ("male",),
    "woman": ("female",),
    "prince": ("royal", "male", "young"),
    "princess": ("royal", "female", "young"),
    "boy": ("male", "young"),
    "girl": ("female", "young"),
    "kings": ("royal", "male", "plural"),
    "queens": ("royal", "female", "plural"),
    "apple": ("fruit",),
    "apples": ("fruit", "plural"),
    "pear": ("fruit", "colour"),
    "cat": ("animal",),
    "cats": ("animal", "plural"),
    "kitten": ("animal", "young"),
    "red": ("colour",),
    "green": ("colour", "fruit"),
}


def toy_vocabulary(rng: np.random.Generator, noise: float = 0.25, extra: int = 0, dim: int | None = None):
    """(words, E): the toy words above, then ``extra`` random filler words, as float64 rows.

    Each toy word is the sum of its features' (random, fixed per call) directions plus its own noise.
    """
    dim = dim or 2 * len(FEATURES)
    basis = rng.standard_normal((len(FEATURES), dim))  # (F, D) one direction per feature
    rows, words = [], []
    for word, feats in TOY_WORDS.items():
        rows.append(sum(basis[FEATURES.index(f)] for f in feats) + noise * rng.standard_normal(dim))
        words.append(word)
    for i in range(extra):
        rows.append(rng.standard_normal(dim))
        words.append(f"w{i}")
    return words, np.array(rows)  # (V, D)


def _random_vocabulary(rng: np.random.Generator, V: int, D: int, dtype=np.float64):
    return [f"v{i}" for i in range(V)], rng.standard_normal((V, D)).astype(dtype)


# --------------------------------------------------------------------------- cosine similarity


def _cos_visible() -> list[Case]:
    a = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    b = np.array([[2.0, 0.0], [0.0, 5.0], [-1.0, -1.0]])
    words, E = toy_vocabulary(np.random.default_rng(2))
    return [
        Case((a, b), "2-D vectors: same direction, orthogonal, opposite"),
        Case((a, a), "every row against itself: 1 on the diagonal"),
        Case((E[:4], E), "4 toy words against all 18 (D=16)"),
        Case((a.astype(np.float32), b.astype(np.float32)), "float32 in, float32 out"),
    ]


def _cos_hidden(seed: int) -> list[Case]:
    r = _np_rng("embeddings.cosine_similarity", seed)
    zero = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 2.0]])
    return [
        Case((zero, np.array([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0]])), "zero vectors on both sides"),
        Case((np.array([[1e-3, 2e-3]]), np.array([[1e3, 2e3], [-5.0, 1.0]])), "very different lengths"),
        Case((r.standard_normal((1, 7)), r.standard_normal((9, 7))), "one row against 9"),
        Case((r.standard_normal((5, 50)), r.standard_normal((30, 50))), "random (5, 50) x (30, 50)"),
        Case(
            (r.standard_normal((6, 20)).astype(np.float32), r.standard_normal((11, 20)).astype(np.float32)),
            "random float32",
        ),
    ]


# --------------------------------------------------------------------------- neighbours and analogies


def run_nearest(fn, words: list[str], E: np.ndarray, word: str, k: int = 10) -> list[tuple[str, float]]:
    """``nearest_neighbours(words, E, word, k)`` as a list of (word, float score)."""
    return _ranking(fn(words, E, word, k))


def run_analogy(
    fn, words: list[str], E: np.ndarray, a: str, b: str, c: str, k: int = 1, *, method: str = "add"
) -> list[tuple[str, float]]:
    """``analogy(words, E, a, b, c, k, method=method)`` as a list of (word, float score)."""
    return _ranking(fn(words, E, a, b, c, k, method=method))


def _ranking(out) -> list[tuple[str, float]]:
    """A ranking as a list of (word, float score): numpy scalars become floats."""
    try:
        return [(str(w), float(s)) for w, s in out]
    except (TypeError, ValueError):
        raise TypeError(f"return a list of (word, score) pairs, got {type(out).__name__}: {str(out)[:80]}") from None


def _nn_visible() -> list[Case]:
    words, E = toy_vocabulary(np.random.default_rng(0))
    return [
        Case((words, E, "king", 3), "the toy vocabulary: king's 3 nearest words"),
        Case((words, E, "apple", 5), "apple, k=5"),
        Case((words, E, "cat", 1), "cat, k=1"),
    ]


def _nn_hidden(seed: int) -> list[Case]:
    r = _np_rng("embeddings.nearest_neighbours", seed)
    words, E = toy_vocabulary(r, extra=30)
    rw, rE = _random_vocabulary(r, 200, 24)
    return [
        Case((words, E, "girl", len(words) - 1), "k = V - 1: every other word, ranked"),
        Case((words, E * 1000.0, "kitten", 4), "long vectors (cosine ignores length)"),
        Case((words, E.astype(np.float32), "queen", 6), "float32"),
        Case((rw, rE, "v7", 10), "random 200 words, D=24"),
        Case((rw, rE, "v199", 3), "the last word of a random vocabulary"),
    ]


def _analogy_visible() -> list[Case]:
    words, E = toy_vocabulary(np.random.default_rng(0))
    return [
        Case((words, E, "man", "king", "woman"), "man : king :: woman : ?"),
        Case((words, E, "king", "kings", "queen", 3), "king : kings :: queen : ?, k=3"),
        Case((words, E, "man", "king", "woman", 3), "3CosMul", {"method": "mul"}),
    ]


def _analogy_hidden(seed: int) -> list[Case]:
    r = _np_rng("embeddings.analogy", seed)
    words, E = toy_vocabulary(r, extra=20, noise=0.4)
    rw, rE = _random_vocabulary(r, 150, 16)
    return [
        Case((words, E, "boy", "prince", "girl", 2), "3CosAdd, k=2"),
        Case((words, E, "cat", "cats", "apple", 4), "3CosMul, k=4", {"method": "mul"}),
        Case((words, E, "man", "woman", "man", 3), "a word given twice (c == a)"),
        Case((words, E.astype(np.float32), "apple", "apples", "cat", 2), "float32", {"method": "mul"}),
        Case((rw, rE, "v3", "v10", "v42", 5), "random 150 words, 3CosAdd"),
        Case((rw, rE, "v3", "v10", "v42", 5), "random 150 words, 3CosMul", {"method": "mul"}),
    ]


# --------------------------------------------------------------------------- analogy evaluation


def run_evaluation(
    fn,
    words: list[str],
    E: np.ndarray,
    sections: dict[str, list[tuple[str, str, str, str]]],
    restrict_vocab: int | None = None,
) -> tuple[dict[str, tuple[int, int]], int]:
    """``evaluate_analogies(words, E, sections, restrict_vocab=...)`` as ({section: (correct, attempted)},
    skipped) with plain ints (the part grades 3CosAdd, the default method)."""
    out = fn(words, E, sections, restrict_vocab=restrict_vocab)
    try:
        per_section, skipped = out
        return {str(k): (int(c), int(t)) for k, (c, t) in dict(per_section).items()}, int(skipped)
    except (TypeError, ValueError):
        raise TypeError(
            "return ({section: (correct, attempted)}, skipped), got " + f"{type(out).__name__}: {str(out)[:80]}"
        ) from None


TOY_SECTIONS = {
    "royalty": [
        ("man", "king", "woman", "queen"),
        ("boy", "prince", "girl", "princess"),
        ("man", "woman", "king", "queen"),
    ],
    "plural": [
        ("king", "kings", "queen", "queens"),
        ("apple", "apples", "cat", "cats"),
        ("cat", "cats", "king", "kings"),
    ],
    "young": [
        ("man", "boy", "woman", "girl"),
        ("cat", "kitten", "king", "prince"),
        ("king", "prince", "cat", "kitten"),
    ],
}


def _eval_visible() -> list[Case]:
    words, E = toy_vocabulary(np.random.default_rng(0))
    mixed = {
        "royalty": [("Man", "King", "Woman", "Queen"), ("man", "king", "woman", "empress")],
        "plural": TOY_SECTIONS["plural"],
    }
    return [
        Case((words, E, TOY_SECTIONS), "three sections of toy questions"),
        Case((words, E, mixed), "capitalised words, and 'empress' is not in the vocabulary"),
        Case((words, E, TOY_SECTIONS), "only the first 12 words", {"restrict_vocab": 12}),
    ]


def _random_sections(r: np.random.Generator, words: list[str], n_sections: int, n_questions: int):
    """Random questions; half of them the toy questions (answerable) when the toy words are there."""
    known = [q for qs in TOY_SECTIONS.values() for q in qs if all(w in words for w in q)]
    sections = {}
    for s in range(n_sections):
        qs = []
        for _ in range(n_questions):
            if known and r.random() < 0.5:
                q = list(known[r.integers(len(known))])
            else:
                q = [words[i] for i in r.choice(len(words), size=4, replace=False)]
            if r.random() < 0.3:  # case the student must fold
                q = [w.upper() if r.random() < 0.5 else w.capitalize() for w in q]
            if r.random() < 0.1:
                q[r.integers(4)] = "zzz"  # not in any vocabulary
            qs.append(tuple(q))
        sections[f"section{s}"] = qs
    return sections


def _eval_hidden(seed: int) -> list[Case]:
    r = _np_rng("embeddings.evaluate_analogies", seed)
    words, E = toy_vocabulary(r, extra=10, noise=0.5)
    rw, rE = _random_vocabulary(r, 60, 8)
    # a question whose best answer is one of its own words unless a, b, c are excluded
    own = {"own": [("king", "king", "queen", "queen"), ("cat", "cats", "cats", "kitten")], "empty": []}
    return [
        Case((words, E, own), "questions whose words repeat, and an empty section"),
        Case((words, E, TOY_SECTIONS), "restrict_vocab=5: most questions skipped", {"restrict_vocab": 5}),
        Case((words, E.astype(np.float32), _random_sections(r, words, 2, 12)), "float32, mixed case, OOV"),
        Case((rw, rE, _random_sections(r, rw, 3, 20)), "random vocabulary of 60 words"),
        Case((rw, rE, _random_sections(r, rw, 2, 25)), "random, restricted to 40", {"restrict_vocab": 40}),
    ]


# --------------------------------------------------------------------------- skip-gram: loss and one step


def _sgns_inputs(g, B: int, K: int, D: int, dtype=torch.float32, scale: float = 1.0):
    return (
        kit.randn(g, B, D, dtype=dtype, scale=scale),
        kit.randn(g, B, D, dtype=dtype, scale=scale),
        kit.randn(g, B, K, D, dtype=dtype, scale=scale),
    )


def _loss_visible() -> list[Case]:
    v = torch.tensor([[1.0, 0.0]])
    return [
        Case(
            (v, torch.tensor([[2.0, 0.0]]), torch.tensor([[[-2.0, 0.0]]])), "B=1, K=1: context and negative far apart"
        ),
        Case((v, torch.zeros(1, 2), torch.zeros(1, 3, 2)), "all scores 0: loss = 4 log 2"),
        Case(_sgns_inputs(kit.seeded(0), 4, 5, 8), "random B=4, K=5, D=8"),
        Case(_sgns_inputs(kit.seeded(1), 2, 3, 4, scale=12.0), "large scores (about +-150): keep it finite"),
    ]


def _loss_hidden(seed: int) -> list[Case]:
    g = kit.generator("embeddings.sgns_loss", seed)
    big = torch.tensor([[30.0, 0.0]])
    return [
        Case((big, -big, big[:, None].expand(1, 4, 2).contiguous()), "scores of -900: float32 sigmoid underflows"),
        Case(_sgns_inputs(g, 1, 1, 1), "B=K=D=1"),
        Case(_sgns_inputs(g, 16, 5, 20, dtype=torch.float64), "float64"),
        Case(_sgns_inputs(g, 64, 10, 50, scale=0.3), "random B=64, K=10, D=50"),
        Case(_sgns_inputs(g, 8, 2, 6, scale=15.0), "random, large scores"),
    ]


def _step_case(g, V: int, D: int, B: int, K: int, lr: float, dtype=torch.float32, repeat: bool = False, label=""):
    W_in = kit.randn(g, V, D, dtype=dtype, scale=0.5)
    W_out = kit.randn(g, V, D, dtype=dtype, scale=0.5)
    center = torch.randint(0, 2 if repeat else V, (B,), generator=g)  # repeat: ids 0 and 1 only
    context = torch.randint(0, V, (B,), generator=g)
    negatives = torch.randint(0, V, (B, K), generator=g)
    return Case((W_in, W_out, center, context, negatives, lr), label or f"V={V}, D={D}, B={B}, K={K}, lr={lr}")


def _step_visible() -> list[Case]:
    W_in = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    W_out = torch.tensor([[0.5, 0.5], [-1.0, 0.0], [0.0, 2.0]])
    one = (torch.tensor([0]), torch.tensor([1]), torch.tensor([[2]]))
    return [
        Case((W_in, W_out, *one, 0.1), "one pair, one negative: center 0, context 1, negative 2"),
        Case(
            (W_in, W_out, torch.tensor([0, 0]), torch.tensor([1, 2]), torch.tensor([[2], [1]]), 0.5),
            "word 0 is the center twice: both updates count",
        ),
        _step_case(kit.seeded(0), 10, 4, 6, 3, 0.05, label="random V=10, D=4, B=6, K=3"),
    ]


def _step_hidden(seed: int) -> list[Case]:
    g = kit.generator("embeddings.sgns_step", seed)
    W = torch.tensor([[1.0, 2.0], [3.0, -1.0]])
    return [
        Case(
            (W, W.clone(), torch.tensor([0]), torch.tensor([0]), torch.tensor([[0, 0, 1]]), 0.25),
            "the same word as center, context and twice as a negative",
        ),
        _step_case(g, 5, 3, 40, 4, 0.1, repeat=True, label="centers all 0 or 1 (many repeats)"),
        _step_case(g, 30, 8, 16, 5, 0.025, dtype=torch.float64, label="float64"),
        _step_case(g, 100, 16, 64, 5, 0.5),
        _step_case(g, 7, 5, 3, 1, 0.0, label="lr = 0: nothing moves"),
    ]


FORBIDDEN_LIBRARIES = ("gensim", "sklearn", "scipy.spatial")

SPECS = [
    Spec(
        "embeddings.cosine_similarity",
        "llmcourse.embeddings:cosine_similarity",
        _cos_visible,
        _cos_hidden,
        forbidden=FORBIDDEN_LIBRARIES + ("torch.nn.functional.cosine_similarity", "torch.cosine_similarity"),
        **TOL,
    ),
    Spec(
        "embeddings.nearest_neighbours",
        "llmcourse.embeddings:nearest_neighbours",
        _nn_visible,
        _nn_hidden,
        adapter=run_nearest,
        forbidden=FORBIDDEN_LIBRARIES,
        **TOL,
    ),
    Spec(
        "embeddings.analogy",
        "llmcourse.embeddings:analogy",
        _analogy_visible,
        _analogy_hidden,
        adapter=run_analogy,
        forbidden=FORBIDDEN_LIBRARIES,
        **TOL,
    ),
    Spec(
        "embeddings.evaluate_analogies",
        "llmcourse.embeddings:evaluate_analogies",
        _eval_visible,
        _eval_hidden,
        adapter=run_evaluation,
        forbidden=FORBIDDEN_LIBRARIES,
    ),
    Spec("embeddings.sgns_loss", "llmcourse.embeddings:sgns_loss", _loss_visible, _loss_hidden, **TOL),
    Spec("embeddings.sgns_step", "llmcourse.embeddings:sgns_step", _step_visible, _step_hidden, **TOL),
]
