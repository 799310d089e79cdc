"""Cases for assignment 01 (byte-level BPE): pair counts, merge, training, decoding, encoding.

Visible cases are small and readable. Hidden cases add the edge cases the issue names (Unicode,
emoji, empty strings, repeated characters, special tokens) and random cases drawn from the grader's
seed (:func:`~llmcourse.checks._kit.rng`). Nothing here imports ``llmcourse.tokenization``: inputs
are built from first principles. Every graded part is a plain function, called as the case says
(``merge(ids, pair, idx)``), so no adapter is needed; nothing here needs torch.
"""

from __future__ import annotations

import random

from ..toolbox.split_patterns import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN
from . import _kit
from .checker import Case, Spec

TORTURE = [
    "",
    "aaaaaaaaaaaa",
    "héllo wörld, naïve café",
    "emoji 👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷!",
    "日本語のテキストと中文",
    "مرحبا بالعالم",
    "tabs\tand\r\nnewlines\n\n\n   spaces",
    "I'm sure you'll say it's 12345 o'clock, WE'LL SEE",
]

SHAKESPEARE = (
    "To be, or not to be, that is the question:\n"
    "Whether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\n"
    "Or to take arms against a sea of troubles\n"
)


def _random_text(rng: random.Random, n: int) -> str:
    alphabet = "ab cdé\n👍日'"
    return "".join(rng.choice(alphabet) for _ in range(n))


def _random_merges(rng: random.Random, n: int) -> dict[tuple[int, int], int]:
    """A valid merge table: each new token joins two tokens that already exist."""
    merges = {}
    common = list(b"ab cde\xc3\xa9")  # bytes that the random texts actually contain
    for _ in range(n):
        pool = common + list(range(256, 256 + len(merges)))
        pair = (rng.choice(pool), rng.choice(pool))
        if pair not in merges:
            merges[pair] = 256 + len(merges)
    return merges


def _vocab(merges: dict[tuple[int, int], int], special: dict[str, int] | None = None) -> dict[int, bytes]:
    # Deliberately tiny; the graded decode must not depend on the answer key to get its input.
    vocab = {i: bytes([i]) for i in range(256)}
    for (a, b), idx in merges.items():
        vocab[idx] = vocab[a] + vocab[b]
    for tok, idx in (special or {}).items():
        vocab[idx] = tok.encode("utf-8")
    return vocab


# --------------------------------------------------------------------------- get_stats


def _stats_visible() -> list[Case]:
    return [
        Case(([1, 2, 3, 1, 2],), "example"),
        Case(([],), "empty"),
        Case(([7],), "one id"),
        Case(([5, 5, 5, 5],), "repeats"),
        Case((list(b"hello world"),), "bytes of a word"),
    ]


def _stats_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("tokenization.get_stats", seed)
    cases = [Case((list(t.encode()),), f"UTF-8 bytes of a {len(t)}-char torture string") for t in TORTURE[1:]]
    cases.append(Case(([300, 301, 300, 301, 300],), "ids above 255"))
    for n in (2, 17, 200):
        cases.append(Case(([rng.randrange(4) for _ in range(n)],), f"random ids, length {n}, many repeats"))
    return cases


# --------------------------------------------------------------------------- merge


def _merge_visible() -> list[Case]:
    return [
        Case(([5, 6, 6, 7, 5, 6], (5, 6), 256), "example"),
        Case(([1, 1, 1], (1, 1), 300), "overlapping pair: left to right"),
        Case(([], (1, 2), 256), "empty"),
        Case(([1, 2], (3, 4), 256), "pair absent"),
    ]


def _merge_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("tokenization.merge", seed)
    cases = [
        Case((list(b"aaaaa"), (97, 97), 256), "odd run of one byte"),
        Case((list("👍👍".encode()), (240, 159), 300), "emoji bytes"),
        Case(([1, 2, 3, 1, 2], (1, 2), 1000), "pair at the end"),
        Case(([9], (9, 9), 256), "single id"),
    ]
    for n in (10, 100):
        ids = [rng.randrange(3) for _ in range(n)]
        cases.append(Case((ids, (ids[0], ids[1]), 256 + n), f"random ids, length {n}"))
    return cases


# --------------------------------------------------------------------------- train_merges


def _train_visible() -> list[Case]:
    return [
        Case(("aaabdaaabac", 259, None), "Wikipedia's example, no pre-split"),
        Case(("hello world hello world", 262, GPT4_SPLIT_PATTERN), "two words, GPT-4 split"),
        Case(("", 260, GPT4_SPLIT_PATTERN), "empty text"),
        Case(("abc", 256, GPT4_SPLIT_PATTERN), "no merges requested"),
    ]


def _train_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("tokenization.train_merges", seed)
    cases = [
        Case(("aaaaaaaaaaaa", 260, None), "a run of one letter (ties, overlaps)"),
        Case((TORTURE[3], 270, GPT4_SPLIT_PATTERN), "emoji with skin tone and ZWJ"),
        Case((" ".join(TORTURE), 290, GPT4_SPLIT_PATTERN), "Unicode torture text"),
        Case((SHAKESPEARE, 300, GPT2_SPLIT_PATTERN), "Shakespeare, GPT-2 split"),
        Case((SHAKESPEARE, 300, GPT4_SPLIT_PATTERN), "Shakespeare, GPT-4 split"),
    ]
    for n in (50, 300):
        cases.append(
            Case((_random_text(rng, n), 256 + rng.randrange(5, 30), GPT4_SPLIT_PATTERN), f"random text, {n} chars")
        )
    return cases


# --------------------------------------------------------------------------- decode

_SMALL_MERGES = {(104, 101): 256, (108, 108): 257, (256, 257): 258}  # "he", "ll", "hell"


def _decode_visible() -> list[Case]:
    v = _vocab(_SMALL_MERGES)
    return [
        Case((list(b"hello"), v), "plain bytes"),
        Case(([258, 111], v), "merged tokens -> 'hello'"),
        Case(([], v), "empty"),
        Case(([0xE2, 0x82], v), "an incomplete UTF-8 sequence -> replacement character"),
    ]


def _decode_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("tokenization.decode", seed)
    special = {"<|endoftext|>": 1000}
    cases = [
        Case((list(t.encode()), _vocab({})), f"UTF-8 bytes of a {len(t)}-char torture string") for t in TORTURE[1:]
    ]
    cases.append(Case(([0xF0, 0x9F], _vocab({})), "half an emoji"))
    cases.append(Case(([258, 1000, 258], _vocab(_SMALL_MERGES, special)), "a special token"))
    merges = _random_merges(rng, 40)
    vocab = _vocab(merges)
    cases.append(Case(([rng.randrange(256 + len(merges)) for _ in range(60)], vocab), "random ids, random merges"))
    return cases


# --------------------------------------------------------------------------- encode

_SPECIAL = {"<|endoftext|>": 1000, "<|end|>": 1001}


def _encode_visible() -> list[Case]:
    return [
        Case(("hello", {}, GPT4_SPLIT_PATTERN), "no merges: raw bytes"),
        Case(("hello hell", _SMALL_MERGES, GPT4_SPLIT_PATTERN), "merges apply in order"),
        Case(("", _SMALL_MERGES, GPT4_SPLIT_PATTERN), "empty"),
        Case(("hell<|endoftext|>hello", _SMALL_MERGES, GPT4_SPLIT_PATTERN, _SPECIAL), "a special token"),
    ]


def _encode_hidden(seed: int) -> list[Case]:
    rng = _kit.rng("tokenization.encode", seed)
    aa = {(97, 97): 256, (256, 97): 257, (256, 256): 258}
    cases = [
        Case((TORTURE[1], aa, GPT4_SPLIT_PATTERN), "repeated letter with nested merges"),
        Case((TORTURE[1], aa, None), "repeated letter, no pre-split"),
        Case((TORTURE[3], {(240, 159): 256}, GPT4_SPLIT_PATTERN), "emoji"),
        Case(
            ("<|end|><|endoftext|>x<|end|>", {}, GPT4_SPLIT_PATTERN, _SPECIAL),
            "special tokens back to back, one a prefix of another",
        ),
        Case(("no specials here", aa, GPT2_SPLIT_PATTERN, _SPECIAL), "specials given but absent"),
    ]
    for n in (40, 400):
        merges = _random_merges(rng, 30)
        cases.append(
            Case((_random_text(rng, n), merges, GPT4_SPLIT_PATTERN), f"random text ({n} chars), random merges")
        )
    return cases


SPECS = [
    Spec("tokenization.get_stats", "llmcourse.tokenization:get_stats", _stats_visible, _stats_hidden),
    Spec("tokenization.merge", "llmcourse.tokenization:merge", _merge_visible, _merge_hidden),
    Spec("tokenization.train_merges", "llmcourse.tokenization:train_merges", _train_visible, _train_hidden),
    Spec("tokenization.decode", "llmcourse.tokenization:decode", _decode_visible, _decode_hidden),
    Spec("tokenization.encode", "llmcourse.tokenization:encode", _encode_visible, _encode_hidden),
]
