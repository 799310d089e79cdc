"""Tests for llmcourse.toolbox.glove: the packaged GloVe vectors and the evaluation sets, read as
gensim reads them."""

from __future__ import annotations

import numpy as np
import pytest
from gensim.models import KeyedVectors
from llmcourse.toolbox.glove import GLOVE_DIM, load_analogies, load_glove, load_wordsim353


def test_glove_restricted_is_a_prefix_of_the_full_matrix():
    words, E = load_glove(5000)
    all_words, all_E = load_glove()
    assert len(all_words) == 400_000 and all_E.shape == (400_000, GLOVE_DIM) and E.dtype == np.float32
    assert words == all_words[:5000] and np.array_equal(E, all_E[:5000])
    assert words[:4] == ["the", ",", ".", "of"]  # sorted by frequency
    assert len(set(all_words)) == len(all_words)
    assert not E.flags.writeable  # shared by every caller


def test_glove_knows_king_queen():
    words, E = load_glove(20_000)
    kv = KeyedVectors(GLOVE_DIM)
    kv.add_vectors(words, np.array(E))
    assert kv.most_similar(positive=["king", "woman"], negative=["man"], topn=1)[0][0] == "queen"


@pytest.mark.parametrize("n", [0, -1, 400_001, 2.5])
def test_glove_bad_sizes(n):
    with pytest.raises(ValueError, match="n_words"):
        load_glove(n)


def test_analogy_set_as_gensim_reads_it():
    sections = load_analogies()
    assert len(sections) == 14 and sum(len(q) for q in sections.values()) == 19544
    assert sections["capital-common-countries"][0] == ("Athens", "Greece", "Baghdad", "Iraq")
    assert sections["family"][0] == ("boy", "girl", "brother", "sister")


def test_wordsim353():
    pairs = load_wordsim353()
    assert len(pairs) == 353 and pairs[0] == ("love", "sex", 6.77)
    assert all(0 <= s <= 10 for _, _, s in pairs)
