"""Tests for llmcourse.embeddings (assignment 02's answer key).

References: gensim ``KeyedVectors`` on the same GloVe vectors (neighbours, 3CosAdd ``most_similar``,
3CosMul ``most_similar_cosmul``, ``evaluate_word_analogies``), gensim ``Word2Vec(sg=1, negative=5)``
(its vocabulary, subsampling and noise tables, and its vectors' WordSim-353 correlation), PyTorch
(``F.embedding``, ``F.one_hot``, ``F.cosine_similarity``, autograd, ``binary_cross_entropy_with_logits``)
and ``numpy.linalg.eigh`` for the PCA.

Tolerances: gensim computes in float32, so scores agree to 1e-6 (float32 epsilon 1.2e-7 times a few
ulps of a 50-term dot product); float64 torch comparisons to 1e-12.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gensim.models import KeyedVectors, Word2Vec
from llmcourse import embeddings as em
from llmcourse.checks import embeddings as spec
from llmcourse.toolbox.glove import load_analogies, load_glove, load_wordsim353
from scipy.stats import spearmanr

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

N_WORDS = 20_000  # a restricted vocabulary keeps gensim and us cheap


@pytest.fixture(scope="module")
def glove():
    words, E = load_glove(N_WORDS)
    kv = KeyedVectors(E.shape[1])
    kv.add_vectors(words, np.array(E))
    return words, E, kv


def randn(*shape, seed=0, dtype=torch.float64):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ----------------------------------------------------------------------------------------------
# lookup and un-embedding


def test_lookup_is_one_hot_times_the_matrix():
    E, ids = randn(11, 4), torch.tensor([[3, 0, 10], [3, 3, 7]])
    torch.testing.assert_close(em.one_hot(ids, 11), F.one_hot(ids, 11).float())
    torch.testing.assert_close(em.embed_one_hot(ids, E), F.embedding(ids, E), atol=1e-12, rtol=0)
    torch.testing.assert_close(em.embed(ids, E), F.embedding(ids, E), atol=0, rtol=0)
    h = randn(2, 4, seed=1)
    torch.testing.assert_close(em.unembed(h, E), F.linear(h, E), atol=1e-12, rtol=0)


def test_lookup_bad_ids():
    with pytest.raises(IndexError, match="0..10"):
        em.embed(torch.tensor([11]), randn(11, 4))
    with pytest.raises(TypeError, match="integer"):
        em.embed(torch.tensor([1.0]), randn(11, 4))


# ----------------------------------------------------------------------------------------------
# cosine similarity


def test_cosine_matches_torch_and_gensim(glove):
    A, B = randn(5, 7).numpy(), randn(9, 7, seed=1).numpy()
    expected = F.cosine_similarity(torch.from_numpy(A)[:, None], torch.from_numpy(B)[None], dim=-1).numpy()
    np.testing.assert_allclose(em.cosine_similarity(A, B), expected, atol=1e-12, rtol=0)
    np.testing.assert_allclose(em.cosine_similarity(A[0], B), expected[0], atol=1e-12, rtol=0)
    words, E, kv = glove
    got = em.cosine_similarity(E[kv.get_index("frog")], E[:100])
    np.testing.assert_allclose(got, kv.cosine_similarities(kv["frog"], E[:100]), atol=1e-6, rtol=0)
    assert got.dtype == np.float32


def test_cosine_zero_vector_is_zero_not_nan():
    sims = em.cosine_similarity(np.array([[0.0, 0.0], [1.0, 0.0]]), np.array([[3.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_array_equal(sims, [[0.0, 0.0], [1.0, 0.0]])


def test_cosine_bad_shapes():
    with pytest.raises(ValueError, match="same dimension"):
        em.cosine_similarity(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(TypeError, match="numpy array"):
        em.cosine_similarity([1.0, 2.0], np.ones((2, 2)))


# ----------------------------------------------------------------------------------------------
# neighbours and analogies against gensim


QUERIES = ["frog", "king", "paris", "computer", "beautiful", "ran", "three"]


@pytest.mark.parametrize("word", QUERIES)
def test_neighbours_match_gensim(glove, word):
    words, E, kv = glove
    ours = em.nearest_neighbours(words, E, word, k=10)
    theirs = kv.most_similar(word, topn=10)
    assert [w for w, _ in ours] == [w for w, _ in theirs]
    np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-6, rtol=0)


def test_naive_neighbours_equal_fast():
    words, E = spec.toy_vocabulary(np.random.default_rng(5), extra=40)
    for word in ("king", "apple", "w3"):
        naive, fast = em.nearest_neighbours_naive(words, E, word, 12), em.nearest_neighbours(words, E, word, 12)
        assert [w for w, _ in naive] == [w for w, _ in fast]
        np.testing.assert_allclose([s for _, s in naive], [s for _, s in fast], atol=1e-12, rtol=0)


ANALOGIES = [
    ("man", "king", "woman"),
    ("france", "paris", "japan"),
    ("big", "bigger", "small"),
    ("walking", "walked", "swimming"),
    ("good", "best", "bad"),
    ("brother", "sister", "father"),
]


@pytest.mark.parametrize("a,b,c", ANALOGIES)
def test_analogies_match_gensim(glove, a, b, c):
    words, E, kv = glove
    for method, theirs in [
        ("add", kv.most_similar(positive=[b, c], negative=[a], topn=5)),
        ("mul", kv.most_similar_cosmul(positive=[b, c], negative=[a], topn=5)),
    ]:
        ours = em.analogy(words, E, a, b, c, k=5, method=method)
        assert [w for w, _ in ours] == [w for w, _ in theirs], method
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=1e-6, rtol=0)


def test_king_man_woman_is_queen(glove):
    words, E, _ = glove
    assert em.analogy(words, E, "man", "king", "woman")[0][0] == "queen"


def test_analogy_bad_input(glove):
    words, E, _ = glove
    with pytest.raises(KeyError, match="'zzyzxq' is not in the vocabulary"):
        em.analogy(words, E, "man", "zzyzxq", "woman")
    with pytest.raises(KeyError, match="not in the vocabulary"):
        em.nearest_neighbours(words, E, "Paris")  # GloVe is lowercase: no silent folding here
    with pytest.raises(ValueError, match="larger than"):
        em.nearest_neighbours(words[:10], E[:10], "the", k=10)
    with pytest.raises(ValueError, match="larger than"):
        em.analogy(words[:10], E[:10], "the", ",", ".", k=8)
    with pytest.raises(ValueError, match="positive int"):
        em.nearest_neighbours(words, E, "the", k=0)
    with pytest.raises(ValueError, match="method"):
        em.analogy(words, E, "man", "king", "woman", method="sub")
    with pytest.raises(ValueError, match="one row per word"):
        em.nearest_neighbours(words[:5], E[:6], "the")


# ----------------------------------------------------------------------------------------------
# analogy evaluation against gensim's evaluate_word_analogies


@pytest.fixture(scope="module")
def question_subset(tmp_path_factory):
    """The first 60 questions of every section (all 14 sections, ~840 questions), as a file for gensim."""
    sections = {name: qs[:60] for name, qs in load_analogies().items()}
    path = tmp_path_factory.mktemp("analogies") / "questions.txt"
    path.write_text("".join(f": {n}\n" + "".join(" ".join(q) + "\n" for q in qs) for n, qs in sections.items()))
    return sections, path


@pytest.mark.parametrize("restrict", [3_000, N_WORDS])
def test_evaluation_matches_gensim_per_section(glove, question_subset, restrict):
    words, E, kv = glove
    sections, path = question_subset
    ours, skipped = em.evaluate_analogies(words, E, sections, restrict_vocab=restrict)
    _, theirs = kv.evaluate_word_analogies(str(path), restrict_vocab=restrict, case_insensitive=True)
    theirs = {s["section"]: (len(s["correct"]), len(s["correct"]) + len(s["incorrect"])) for s in theirs}
    total = theirs.pop("Total accuracy")
    assert ours == theirs
    assert skipped == sum(len(q) for q in sections.values()) - total[1]  # gensim's OOV count
    assert skipped > 0 and total[0] > 0


def test_evaluation_equals_one_analogy_at_a_time(glove):
    """The batched evaluation against a loop of analogy() calls, both methods, on real vectors."""
    words, E, _ = glove
    n = 5_000
    sections = {name: qs[:15] for name, qs in load_analogies().items()}
    index = {w: i for i, w in enumerate(words[:n])}
    for method in ("add", "mul"):
        expected, skipped = {}, 0
        for name, qs in sections.items():
            correct = attempted = 0
            for q in qs:
                q = [w.lower() for w in q]
                if not all(w in index for w in q):
                    skipped += 1
                    continue
                attempted += 1
                correct += em.analogy(words[:n], E[:n], *q[:3], method=method)[0][0] == q[3]
            expected[name] = (correct, attempted)
        assert em.evaluate_analogies(words, E, sections, restrict_vocab=n, method=method) == (expected, skipped)


def test_evaluation_on_the_whole_set_is_far_above_chance(glove):
    words, E, _ = glove
    results, skipped = em.evaluate_analogies(words, E, load_analogies(), restrict_vocab=N_WORDS)
    assert sum(t for _, t in results.values()) + skipped == 19544
    assert em.accuracy(results) > 0.5  # GloVe 50-d: ~0.6 on the 20k most frequent words; chance ~1e-4


def test_evaluation_bad_input(glove):
    words, E, _ = glove
    with pytest.raises(ValueError, match="4 words"):
        em.evaluate_analogies(words, E, {"s": [("a", "b", "c")]})
    with pytest.raises(ValueError, match="restrict_vocab"):
        em.evaluate_analogies(words, E, {}, restrict_vocab=N_WORDS + 1)


# ----------------------------------------------------------------------------------------------
# directions, projections, PCA


def test_gender_direction_separates_words(glove):
    words, E, kv = glove
    he_she = em.direction(kv["he"], kv["she"])
    assert np.linalg.norm(he_she) == pytest.approx(1.0)
    male = em.project(np.stack([kv[w] for w in ("king", "man", "boy", "father")]), he_she)
    female = em.project(np.stack([kv[w] for w in ("queen", "woman", "girl", "mother")]), he_she)
    assert male.min() > female.max()
    np.testing.assert_allclose(em.project(E[:50], 3 * he_she), E[:50] @ he_she, atol=1e-6)
    pairs = em.direction(np.stack([kv["he"], kv["man"]]), np.stack([kv["she"], kv["woman"]]))
    np.testing.assert_allclose(pairs, em.direction(kv["he"] + kv["man"], kv["she"] + kv["woman"]), atol=1e-6)


def test_pca_matches_eigh_of_the_covariance(glove):
    _, E, _ = glove
    X = E[:500].astype(np.float64)
    Y, comps = em.pca_2d(X)
    Xc = X - X.mean(axis=0)
    values, vectors = np.linalg.eigh(Xc.T @ Xc)  # ascending
    top = vectors[:, ::-1][:, :2].T  # (2, D)
    for i in range(2):
        assert abs(comps[i] @ top[i]) == pytest.approx(1.0, abs=1e-9)  # the same axis, up to sign
        assert comps[i][np.abs(comps[i]).argmax()] > 0  # the sign rule
    np.testing.assert_allclose(Y.var(axis=0) * len(X), values[::-1][:2], rtol=1e-9)


# ----------------------------------------------------------------------------------------------
# skip-gram with negative sampling: loss, gradients, one step


def test_sgns_loss_is_binary_cross_entropy():
    v, u_pos, u_neg = randn(6, 5), randn(6, 5, seed=1), randn(6, 3, 5, seed=2)
    logits = torch.cat([(u_pos * v).sum(-1, keepdim=True), torch.einsum("bkd,bd->bk", u_neg, v)], 1)
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1  # the real context is class 1, the noise words class 0
    bce = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / 6
    torch.testing.assert_close(em.sgns_loss(v, u_pos, u_neg), bce, atol=1e-12, rtol=0)
    big = torch.tensor([[100.0]])
    assert torch.isfinite(em.sgns_loss(big, -big, big[:, None].float()))


def test_sgns_gradients_equal_autograd():
    v, u_pos, u_neg = (t.requires_grad_() for t in (randn(6, 5), randn(6, 5, seed=1), randn(6, 3, 5, seed=2)))
    (em.sgns_loss(v, u_pos, u_neg) * 6).backward()  # the summed loss
    for ours, theirs in zip(em.sgns_gradients(v.detach(), u_pos.detach(), u_neg.detach()), (v, u_pos, u_neg)):
        torch.testing.assert_close(ours, theirs.grad, atol=1e-12, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sgns_step_is_sgd_with_autograd(dtype):
    W_in, W_out = randn(9, 4, dtype=dtype), randn(9, 4, seed=1, dtype=dtype)
    center = torch.tensor([0, 0, 3, 8, 0])  # repeated ids: their updates add up
    context = torch.tensor([1, 0, 3, 2, 2])
    negatives = torch.tensor([[2, 2], [0, 5], [3, 3], [8, 1], [4, 0]])
    new_in, new_out = em.sgns_step(W_in, W_out, center, context, negatives, lr=0.3)
    A, B = W_in.clone().requires_grad_(), W_out.clone().requires_grad_()
    (em.sgns_loss(A[center], B[context], B[negatives]) * len(center)).backward()
    atol = 1e-12 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(new_in, W_in - 0.3 * A.grad, atol=atol, rtol=0)
    torch.testing.assert_close(new_out, W_out - 0.3 * B.grad, atol=atol, rtol=0)
    assert not torch.equal(new_in, W_in)  # a copy was updated, the input was not


def test_sgns_bad_input():
    with pytest.raises(ValueError, match=r"\(B, K, D\)"):
        em.sgns_loss(randn(2, 3), randn(2, 3), randn(2, 3))
    with pytest.raises(IndexError, match="negatives"):
        em.sgns_step(randn(3, 2), randn(3, 2), torch.tensor([0]), torch.tensor([1]), torch.tensor([[3]]), 0.1)
    with pytest.raises(ValueError, match="empty"):
        em.train_sgns([])
    with pytest.raises(ValueError, match="empty vocabulary"):
        em.build_vocab([["a", "b"]], min_count=5)


# ----------------------------------------------------------------------------------------------
# skip-gram: the data, against gensim's own tables


@pytest.fixture(scope="module")
def shakespeare():
    from llmcourse.toolbox.data import load_shakespeare

    return em.shakespeare_sentences(load_shakespeare())


def test_sentences_drop_speaker_names():
    text = "HAMLET:\nTo be, or not to be: that is the question:\nWhether 'tis nobler\n\nOPHELIA:\nGood my lord,\n"
    assert em.shakespeare_sentences(text) == [
        ["to", "be", "or", "not", "to", "be", "that", "is", "the", "question", "whether", "tis", "nobler"],
        ["good", "my", "lord"],
    ]


def test_vocab_subsampling_and_noise_match_gensim(shakespeare):
    model = Word2Vec(sg=1, negative=5, min_count=5, sample=1e-3, workers=1, seed=0)
    model.build_vocab(shakespeare)
    words, counts = em.build_vocab(shakespeare, min_count=5)
    assert sorted(words) == sorted(model.wv.index_to_key)
    order = [model.wv.get_index(w) for w in words]
    np.testing.assert_array_equal(counts, [model.wv.get_vecattr(w, "count") for w in words])
    gensim_keep = np.array([model.wv.get_vecattr(w, "sample_int") for w in words]) / 2**32
    np.testing.assert_allclose(em.keep_probabilities(counts, 1e-3), gensim_keep, atol=1e-9)
    assert em.keep_probabilities(counts, 1e-3)[words.index("the")] < 0.3
    cum = model.cum_table.astype(np.float64) / model.cum_table[-1]  # gensim's noise table, cumulative
    gensim_noise = np.diff(np.concatenate([[0.0], cum]))[order]
    np.testing.assert_allclose(em.noise_distribution(counts), gensim_noise, atol=1e-9)


def test_skipgram_pairs_stay_in_the_window_and_the_sentence():
    sentences = [np.array([0, 1, 2, 3, 4]), np.array([5, 6])]
    pairs = em.skipgram_pairs(sentences, window=1, rng=np.random.default_rng(0))
    expected = {(0, 1), (1, 0), (1, 2), (2, 1), (2, 3), (3, 2), (3, 4), (4, 3), (5, 6), (6, 5)}
    assert sorted(map(tuple, pairs.tolist())) == sorted(expected)  # window 1: neighbours, never 4 -> 5
    wide = em.skipgram_pairs(sentences, window=3, rng=np.random.default_rng(0))
    position = {w: i for s in sentences for i, w in enumerate(s.tolist())}
    sentence = {w: k for k, s in enumerate(sentences) for w in s.tolist()}
    for c, o in wide.tolist():
        assert sentence[c] == sentence[o] and 1 <= abs(position[c] - position[o]) <= 3
    many = em.skipgram_pairs([np.arange(1000)], window=4, rng=np.random.default_rng(1))
    assert len(many) == pytest.approx(2 * 1000 * 2.5, rel=0.05)  # b uniform in 1..4: 2.5 words a side


# ----------------------------------------------------------------------------------------------
# skip-gram: trained on Shakespeare, against gensim Word2Vec on the same corpus

TRAIN = dict(dim=50, window=5, negative=5, min_count=5, sample=1e-3, epochs=3)
MARGIN = 0.1  # |rho(ours) - rho(gensim)|; both are ~0.2 on the ~100 WordSim pairs Shakespeare covers
RANDOM_BAR = 0.12  # random vectors: rho ~ 0 +- 0.08 over seeds on these pairs; a trained model must beat this


def wordsim_rho(words, W) -> tuple[float, int]:
    index = {w: i for i, w in enumerate(words)}
    pairs = [(a, b, s) for a, b, s in load_wordsim353() if a in index and b in index]
    sims = [float(em.cosine_similarity(W[index[a]], W[index[b]])) for a, b, _ in pairs]
    return spearmanr(sims, [s for *_, s in pairs])[0], len(pairs)


@pytest.fixture(scope="module")
def trained(shakespeare):
    ours = em.train_sgns(shakespeare, batch_size=256, seed=0, **TRAIN)
    model = Word2Vec(
        shakespeare,
        vector_size=TRAIN["dim"],
        sg=1,
        hs=0,
        **{k: TRAIN[k] for k in ("window", "negative", "min_count", "sample", "epochs")},
        workers=1,
        seed=0,
    )
    return ours, (model.wv.index_to_key, model.wv.vectors)


def test_sgns_on_shakespeare_is_as_good_as_gensim(trained):
    (words, W), (g_words, g_W) = trained
    assert sorted(words) == sorted(g_words)
    ours, n = wordsim_rho(words, W)
    theirs, _ = wordsim_rho(g_words, g_W)
    chance = [wordsim_rho(words, np.random.default_rng(s).standard_normal(W.shape))[0] for s in range(10)]
    assert n >= 90  # WordSim pairs with both words in Shakespeare's vocabulary
    assert abs(np.mean(chance)) < 0.05
    assert ours > RANDOM_BAR and theirs > RANDOM_BAR, (ours, theirs, chance)
    assert abs(ours - theirs) < MARGIN, (ours, theirs)


def test_sgns_neighbours_make_sense(trained):
    (words, W), _ = trained
    near = [w for w, _ in em.nearest_neighbours(words, W, "king", 10)]
    assert {"prince", "duke", "queen", "henry", "richard", "edward"} & set(near), near
