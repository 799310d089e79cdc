"""Tests for llmcourse.tokenization (byte-level BPE, assignment 01's answer key).

The references are independent of the fast code under test: tiktoken itself (built offline from the
packaged cl100k ranks), worked examples, and the naive recount-every-merge trainer (in the lib as
``train_merges_naive``: the algorithm as the lecture states it, itself checked on worked examples here).
"""

from __future__ import annotations

import functools
import gzip
import json
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from llmcourse.tokenization import (
    GPT2_SPLIT_PATTERN,
    GPT4_SPLIT_PATTERN,
    Tokenizer,
    build_vocab,
    cl100k_base,
    decode,
    encode,
    get_stats,
    load_tiktoken_ranks,
    merge,
    tiktoken_encoding,
    train_merges,
    train_merges_naive,
)
from llmcourse.toolbox.data import load_shakespeare

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------------------------
# fixtures: text and tokenizers


@functools.cache
def shakespeare() -> str:
    return load_shakespeare()


@pytest.fixture(scope="module")
def cl100k():
    return cl100k_base()


@pytest.fixture(scope="module")
def reference():
    return tiktoken_encoding("cl100k_base")


@functools.cache
def trained() -> Tokenizer:
    tok = Tokenizer().train(shakespeare()[:50_000], vocab_size=400)
    tok.register_special_tokens({"<|endoftext|>": 400, "<|sep|>": 401})
    return tok


TORTURE = [
    "",
    "hello world",
    "Hello, World! HELLO?? ...  ",
    # combining marks
    "e\u0301 a\u0308\u0301 Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇ \u0301\u0301x \u0345",
    "n\u0303o\u0303 \u0915\u094d\u0937 \u0e01\u0e34\u0e19",
    # ZWJ sequences, skin tones, flags, keycaps, variation selectors
    "👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 🧑🏿‍🤝‍🧑🏻 ❤️‍🔥",
    "🇫🇷🇩🇪🇯🇵 🇺🇳 #️⃣ 1️⃣ ©️ ™",
    # CJK and friends, right-to-left scripts
    "日本語のテキストと中文、한국어 テスト。全角ＡＢＣ１２３",
    "مرحبا بالعالم، كيف حالك؟ \u200fשָׁלוֹם עולם\u200e (abc) ١٢٣",
    # astral-plane characters (valid, no surrogates)
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 𐍈𐌰𐌹 🜚 𓀀𓀁 𠜎𠜱",
    # whitespace runs
    "a    b\t\t c \n\n\n  d   ",
    "   ",
    "\n",
    "\u00a0\u2003\u3000 x\u2028y\u2029 \x0b\x0c",
    " \n \r\n\t \r \r\r\n\n",
    "word   ",
    "word \n",
    "  leading and trailing  \n  ",
    # digit runs
    "1234567890 12 123 1234 12345 ١٢٣٤٥ ⅫⅢ ²³ 3.14159 1,000,000",
    # contractions, all cases
    "I'm you're he'll she'd we've it's don't",
    "I'M YOU'RE HE'LL SHE'D WE'VE IT'S DON'T",
    "'s 't 're 've 'm 'll 'd 'S 'T 'Re 'rE 'Ve 'vE 'M 'Ll 'lL 'D 'x ''s '",
    "'ſ 'K 'ﬅ l'été O'Neill rock'n'roll",
    # line endings and tabs
    "line1\r\nline2\r\n\r\n\tindented\r\n\t\tmore\r",
    "def f(x):\n    return x**2  # comment\n\n\tif x:\n\t\tpass\n",
    # punctuation and symbols
    "!!!???... ---> <<>> {[()]} @#$%^&*_+=|\\/~` «» „“ … — –",
    "<|endoftext|> looks special but encode_ordinary treats it as text <|fim_prefix|>",
    # runs of one thing
    "a" * 300,
    " " * 200 + "x",
    "🙂" * 40,
    "\n" * 50,
    "0" * 100,
    "The Tragedy of Hamlet, Prince of Denmark.\n\nACT I\n\nSCENE I. Elsinore.\n",
]


# ----------------------------------------------------------------------------------------------
# primitives


def test_get_stats():
    assert get_stats([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert get_stats([]) == {}
    assert get_stats([7]) == {}
    assert get_stats([5, 5, 5]) == {(5, 5): 2}  # overlapping pairs are all counted


def test_get_stats_updates_counts_in_place():
    counts = {(1, 2): 10}
    out = get_stats([1, 2, 9], counts)
    assert out is counts
    assert counts == {(1, 2): 11, (2, 9): 1}


def test_merge():
    assert merge([5, 6, 6, 7, 5, 6], (5, 6), 256) == [256, 6, 7, 256]
    assert merge([1, 1, 1], (1, 1), 300) == [300, 1]  # left to right, non-overlapping
    assert merge([1, 1, 1, 1], (1, 1), 300) == [300, 300]
    assert merge([97] * 5, (97, 97), 256) == [256, 256, 97]
    assert merge([], (1, 2), 256) == []
    assert merge([1], (1, 1), 256) == [1]
    assert merge([1, 2], (3, 4), 256) == [1, 2]
    assert merge([1, 2, 3, 1, 2], (1, 2), 1000) == [1000, 3, 1000]


def test_merge_does_not_modify_input():
    ids = [1, 2, 1, 2]
    merge(ids, (1, 2), 256)
    assert ids == [1, 2, 1, 2]


# ----------------------------------------------------------------------------------------------
# training equals the naive algorithm


@pytest.mark.parametrize(
    "text, vocab_size, pattern, want",
    [
        # Wikipedia's example: aa -> Z; then ab and Za tie at 2, the smaller pair (97, 98) wins -> Y; ZY -> X
        ("aaabdaaabac", 259, None, {(97, 97): 256, (97, 98): 257, (256, 257): 258}),
        # pre-split into "ab", " ab": no pair crosses the space, and training stops when nothing is left
        ("ab ab", 300, GPT4_SPLIT_PATTERN, {(97, 98): 256, (32, 256): 257}),
        # one chunk: [256, 32, 256] has (256, 32) and (32, 256) once each, the smaller wins; then stops
        ("ab ab", 300, None, {(97, 98): 256, (32, 256): 257, (256, 257): 258}),
    ],
)
def test_naive_trainer_on_worked_examples(text, vocab_size, pattern, want):
    got = train_merges_naive(text, vocab_size, pattern)
    assert list(got.items()) == list(want.items())
    assert list(train_merges(text, 300, pattern).items())[: len(want)] == list(want.items())


TRAIN_CASES = [
    ("aaabdaaabac", 259, None),  # Wikipedia's example
    ("aaaaaaaaaaaa", 270, None),  # a run: overlaps and ties
    ("aaaaaaaaaaaa", 270, GPT4_SPLIT_PATTERN),
    ("", 300, GPT4_SPLIT_PATTERN),
    ("", 300, None),
    ("abc", 256, GPT4_SPLIT_PATTERN),
    ("x", 300, None),
    ("hello world hello world", 262, GPT4_SPLIT_PATTERN),
    ("ab ab ab ba ba ba", 300, GPT4_SPLIT_PATTERN),  # stops early: nothing left to merge
    (" ".join(TORTURE[:12]), 330, GPT4_SPLIT_PATTERN),
    (" ".join(TORTURE), 400, GPT2_SPLIT_PATTERN),
    (" ".join(TORTURE[3:10]), 350, None),
    ("👍🏽👍🏽👍🏽 👨‍👩‍👧‍👦 🇫🇷🇫🇷", 300, GPT4_SPLIT_PATTERN),
]


@pytest.mark.parametrize("text, vocab_size, pattern", TRAIN_CASES)
def test_train_merges_equals_naive(text, vocab_size, pattern):
    got = train_merges(text, vocab_size, pattern)
    want = train_merges_naive(text, vocab_size, pattern)
    assert list(got.items()) == list(want.items())  # same merges, same order, same ids
    assert len(got) <= vocab_size - 256


@pytest.mark.parametrize("pattern", [GPT4_SPLIT_PATTERN, GPT2_SPLIT_PATTERN, None], ids=["gpt4", "gpt2", "none"])
def test_train_merges_equals_naive_on_shakespeare(pattern):
    n = 20_000 if pattern is not None else 4_000  # no pre-split: one long word, slow for the naive one
    text = shakespeare()[5_000 : 5_000 + n]
    assert train_merges(text, 600, pattern) == train_merges_naive(text, 600, pattern)


@FAST
@given(st.text(alphabet="ab c\n'é👍1", max_size=80), st.integers(256, 300), st.sampled_from([GPT4_SPLIT_PATTERN, None]))
def test_train_merges_equals_naive_random(text, vocab_size, pattern):
    assert list(train_merges(text, vocab_size, pattern).items()) == list(
        train_merges_naive(text, vocab_size, pattern).items()
    )


def test_train_merges_full_size_and_ids():
    merges = train_merges(shakespeare()[:30_000], 512)
    assert list(merges.values()) == list(range(256, 512))


# ----------------------------------------------------------------------------------------------
# vocab, functional encode / decode


def test_build_vocab():
    vocab = build_vocab({(104, 101): 256, (256, 108): 257}, {"<|eot|>": 300})
    assert vocab[104] == b"h" and vocab[256] == b"he" and vocab[257] == b"hel"
    assert vocab[300] == b"<|eot|>"
    assert len(vocab) == 259


def test_encode_decode_functional():
    merges = {(104, 101): 256, (108, 108): 257, (256, 257): 258}
    assert encode("hello", {}) == list(b"hello")
    assert encode("hello hell", merges) == [258, 111, 32, 258]
    assert encode("", merges) == []
    vocab = build_vocab(merges)
    assert decode([258, 111], vocab) == "hello"
    assert decode([], vocab) == ""
    assert decode([0xE2, 0x82], vocab) == "\ufffd"  # half a character: replacement, no exception


def test_encode_functional_special_tokens_longest_match():
    special = {"<|end|>": 1000, "<|endoftext|>": 1001, "<|end|><|end|>": 1002}
    assert encode("a<|end|>b", {}, GPT4_SPLIT_PATTERN, special) == [97, 1000, 98]
    assert encode("<|end|><|end|><|end|>", {}, GPT4_SPLIT_PATTERN, special) == [1002, 1000]
    assert encode("<|endoftext|>", {}, GPT4_SPLIT_PATTERN, special) == [1001]


def test_functional_encode_matches_tokenizer():
    tok = trained()
    text = shakespeare()[100_000:110_000] + "<|endoftext|>" + " ".join(TORTURE)
    assert encode(text, tok.merges, tok.pattern, tok.special_tokens) == tok.encode(text, allowed_special="all")
    assert encode(text, tok.merges, None) == Tokenizer(None, tok.merges).encode_ordinary(text)


def test_pattern_none_encodes_whole_text():
    merges = train_merges("aaaa bbbb aaaa", 260, None)
    tok = Tokenizer(pattern=None, merges=merges)
    assert tok.decode(tok.encode("aaaa bbbb")) == "aaaa bbbb"
    assert encode("aaaa bbbb", merges, None) == tok.encode("aaaa bbbb")


# ----------------------------------------------------------------------------------------------
# cl100k: identical to tiktoken


def test_split_pattern_is_tiktokens():
    from tiktoken_ext import openai_public

    # tiktoken_ext's cl100k_base() would download the ranks; read its pat_str constant instead
    consts = [c for c in openai_public.cl100k_base.__code__.co_consts if isinstance(c, str)]
    assert GPT4_SPLIT_PATTERN in consts


def test_cl100k_identical_to_tiktoken_on_shakespeare(cl100k, reference):
    text = shakespeare()
    assert len(text) > 4_000_000
    ours = cl100k.encode_ordinary(text)
    assert ours == reference.encode_ordinary(text)
    assert cl100k.decode(ours) == text


@pytest.mark.parametrize("text", TORTURE)
def test_cl100k_identical_to_tiktoken_on_torture(cl100k, reference, text):
    assert cl100k.encode_ordinary(text) == reference.encode_ordinary(text)
    assert cl100k.encode(text, disallowed_special=()) == reference.encode(text, disallowed_special=())
    assert cl100k.decode(cl100k.encode_ordinary(text)) == text


def test_cl100k_identical_on_torture_joined(cl100k, reference):
    for sep in ("", " ", "\n", "\r\n"):
        text = sep.join(TORTURE)
        assert cl100k.encode_ordinary(text) == reference.encode_ordinary(text)


def test_cl100k_surrogates_like_tiktoken(cl100k, reference):
    for text in ["a\ud800b", "\ud83d\ude00 pair", "\udfff", "x\udc00\ud800y"]:
        assert cl100k.encode(text) == reference.encode(text)
        assert encode(text, {}) == list(text.encode("utf-16", "surrogatepass").decode("utf-16", "replace").encode())


@FAST
@given(st.text(max_size=60))
def test_cl100k_roundtrip_and_matches_tiktoken_random(text):
    tok, ref = cl100k_base(), tiktoken_encoding()
    ids = tok.encode_ordinary(text)
    assert tok.decode(ids) == text
    assert ids == ref.encode_ordinary(text)


@FAST
@given(
    st.lists(
        st.sampled_from(["a", " ", "'s", "'LL", "1", "\n", "\r\n", "\t", "é", "👍", "\u0301", "中", "!", "  "]),
        max_size=40,
    ).map("".join)
)
def test_cl100k_matches_tiktoken_on_tricky_pieces(text):
    assert cl100k_base().encode_ordinary(text) == tiktoken_encoding().encode_ordinary(text)


def test_cl100k_vocab(cl100k, reference):
    assert cl100k.vocab_size == reference.n_vocab == 100277
    assert cl100k.special_tokens == reference._special_tokens
    ids = cl100k.encode_ordinary("hello world!")
    assert cl100k.decode_tokens(ids) == reference.decode_tokens_bytes(ids)
    assert cl100k_base() is cl100k  # cached


# ----------------------------------------------------------------------------------------------
# special tokens: tiktoken's semantics

SPECIAL_TEXTS = [
    "hello <|endoftext|> world",
    "<|endoftext|><|endoftext|>",
    "a<|fim_prefix|>b<|fim_middle|>c<|fim_suffix|>d<|endofprompt|>",
    "<|endoftext|",  # almost
    "no specials at all",
    "",
    "<|endoftext|>\n\n<|fim_prefix|> x",
]
SPECIAL_ARGS = [
    {},
    {"allowed_special": "all"},
    {"allowed_special": {"<|endoftext|>"}},
    {"allowed_special": {"<|endoftext|>"}, "disallowed_special": ()},
    {"disallowed_special": ()},
    {"allowed_special": set(), "disallowed_special": {"<|fim_prefix|>"}},
    {"allowed_special": {"<|fim_prefix|>", "<|endofprompt|>"}, "disallowed_special": ()},
]


@pytest.mark.parametrize("kwargs", SPECIAL_ARGS)
@pytest.mark.parametrize("text", SPECIAL_TEXTS)
def test_special_tokens_like_tiktoken(cl100k, reference, text, kwargs):
    try:
        want = reference.encode(text, **kwargs)
    except ValueError:
        with pytest.raises(ValueError, match="allowed_special"):
            cl100k.encode(text, **kwargs)
    else:
        assert cl100k.encode(text, **kwargs) == want


def test_disallowed_error_names_the_token(cl100k):
    with pytest.raises(ValueError, match=r"'<\|endoftext\|>'.*allowed_special"):
        cl100k.encode("x <|endoftext|>")
    assert cl100k.encode(
        "x <|endoftext|>", allowed_special="none", disallowed_special="none"
    ) == cl100k.encode_ordinary("x <|endoftext|>")


def test_special_token_arguments_are_checked(cl100k):
    with pytest.raises(ValueError, match="did you mean"):
        cl100k.encode("x", allowed_special="<|endoftext|>")
    with pytest.raises(ValueError, match="not special tokens"):
        cl100k.encode("x", allowed_special={"<|nope|>"})
    with pytest.raises(TypeError):
        cl100k.encode("x", allowed_special=5)


def test_trained_tokenizer_special_tokens():
    tok = trained()
    ids = tok.encode("hi<|endoftext|>there<|sep|>", allowed_special="all")
    assert 400 in ids and ids[-1] == 401
    assert tok.decode(ids) == "hi<|endoftext|>there<|sep|>"
    with pytest.raises(ValueError, match="<|sep|>"):
        tok.encode("a <|sep|>")
    assert tok.encode("a <|sep|>", disallowed_special=()) == tok.encode_ordinary("a <|sep|>")
    with pytest.raises(ValueError, match="already taken"):
        tok.register_special_tokens({"<|other|>": 300})


# ----------------------------------------------------------------------------------------------
# round trips


@FAST
@given(st.text(max_size=200))
def test_trained_roundtrip_random(text):
    tok = trained()
    assert tok.decode(tok.encode_ordinary(text)) == text
    assert decode(encode(text, tok.merges), tok.vocab) == text


@FAST
@given(st.lists(st.sampled_from(["a", "<|endoftext|>", "<|sep|>", "<|", " ", "é", "\n"]), max_size=30).map("".join))
def test_trained_roundtrip_with_specials(text):
    tok = trained()
    assert tok.decode(tok.encode(text, allowed_special="all")) == text
    assert tok.decode(encode(text, tok.merges, tok.pattern, tok.special_tokens)) == text


def test_decode_tokens():
    tok = trained()
    ids = tok.encode_ordinary("To be, or not to be 👍")
    pieces = tok.decode_tokens(ids)
    assert len(pieces) == len(ids) and all(isinstance(p, bytes) for p in pieces)
    assert b"".join(pieces) == "To be, or not to be 👍".encode()


def test_train_returns_self_and_vocab_size():
    tok = Tokenizer(GPT2_SPLIT_PATTERN)
    assert tok.train(shakespeare()[:20_000], 300) is tok
    assert tok.vocab_size == 300 and len(tok.merges) == 44
    assert Tokenizer().vocab_size == 256


def test_train_verbose(capsys):
    Tokenizer().train("hello hello", 258, verbose=True)
    assert "merge 1/2" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# save / load


def test_save_load_roundtrip(tmp_path):
    tok = trained()
    path = tmp_path / "tok.json"
    tok.save(path)
    saved = json.loads(path.read_text(encoding="utf-8"))  # plain JSON, readable by anything
    assert saved["format"] == "llmcourse-bpe" and saved["version"] == 2
    assert saved["pattern"] == tok.pattern and saved["special_tokens"] == tok.special_tokens
    assert saved["merges"] == [[a, b, idx] for (a, b), idx in tok.merges.items()]
    again = Tokenizer.load(path)
    assert again.pattern == tok.pattern and again.merges == tok.merges
    assert list(again.merges) == list(tok.merges)
    assert again.special_tokens == tok.special_tokens and again.vocab == tok.vocab
    sample = shakespeare()[:5_000] + "<|sep|>"
    assert again.encode(sample, allowed_special="all") == tok.encode(sample, allowed_special="all")


def test_save_load_pattern_none_and_odd_specials(tmp_path):
    tok = Tokenizer(pattern=None).train("aaaa bbbb", 260)
    tok.register_special_tokens({'<| "quoted" \n token |>': 500, "<|é 🤖|>": 501})
    tok.save(tmp_path / "t")
    again = Tokenizer.load(tmp_path / "t")
    assert again.pattern is None and again.special_tokens == tok.special_tokens and again.merges == tok.merges


def test_save_load_empty_tokenizer(tmp_path):
    Tokenizer().save(tmp_path / "t")
    again = Tokenizer.load(tmp_path / "t")
    assert again.merges == {} and again.vocab_size == 256 and again.pattern == GPT4_SPLIT_PATTERN


def test_save_load_ranks(tmp_path, cl100k, reference):
    cl100k.save(tmp_path / "cl100k.json")
    again = Tokenizer.load(tmp_path / "cl100k.json")
    assert again.ranks == cl100k.ranks and again.special_tokens == cl100k.special_tokens
    text = TORTURE[2] + TORTURE[5] + " <|endoftext|>"
    assert again.encode(text, allowed_special="all") == reference.encode(text, allowed_special="all")


def test_save_replaces_a_file_whole(tmp_path):
    path = tmp_path / "tok.json"
    path.write_text("x" * 100_000)  # longer than what is saved: no tail of it may survive
    Tokenizer().train("hello hello", 258).save(path)
    # he, el, ll, lo tie at 2: the smallest pair (101, 108) 'el' wins; then h+el, 256+l, l+o tie: (104, 256)
    assert Tokenizer.load(path).merges == {(101, 108): 256, (104, 256): 257}
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]  # no temporary file left


def _saved(**fields) -> str:
    obj = {"format": "llmcourse-bpe", "version": 2, "pattern": None, "special_tokens": {}, "merges": []}
    obj.update(fields)
    return json.dumps({k: v for k, v in obj.items() if v is not _DROP})


_DROP = object()


@pytest.mark.parametrize(
    "content, match",
    [
        ("", "not JSON"),
        ('{"format": "llmcourse-bpe", "version": 2, "merges": [[97, 97, 256]', "not JSON, or truncated"),
        ("[1, 2]", "not a tokenizer file saved by llmcourse"),
        ('{"format": "minbpe"}', "not a tokenizer file saved by llmcourse"),
        (_saved(version=3), "version 3"),
        (_saved(version=_DROP), "version None"),
        (_saved(merges=_DROP), "merges or ranks"),
        (_saved(ranks=[]), "merges or ranks"),  # both
        (_saved(vocab=[]), "merges or ranks"),  # an unknown field
        (_saved(pattern=5), "pattern must be a string or null"),
        (_saved(pattern="(("), "corrupt"),
        (_saved(special_tokens=[]), "special_tokens must be an object"),
        (_saved(merges={"97 97": 256}), "merges a list"),
        (_saved(merges=[[97, 97]]), r"merges\[0\] should be \[a, b, id\]"),
        (_saved(merges=[[97, "x", 256]]), r"merges\[0\]"),
        (
            _saved(merges=[[97, 97, 256], [97, 98, 257], [97, 97, 258]]),
            r"merges\[2\]: the pair \(97, 97\) is merged twice",
        ),
        (_saved(merges=[[97, 999, 256]]), "corrupt"),  # a part no earlier merge made
        (_saved(merges=[[97, 97, 256], [98, 98, 256]]), "corrupt"),  # an id used twice
        (_saved(special_tokens={"<|a|>": 97}), "corrupt"),  # a special id that a byte has
        (_saved(special_tokens={"<|a|>": True}), "corrupt"),
        (_saved(merges=_DROP, ranks=[["YQ==", 0]]), "256 single bytes"),
        (_saved(merges=_DROP, ranks=[["!!!", 0]]), r"ranks\[0\]: invalid base64"),
        (_saved(merges=_DROP, ranks=[["YQ==", 0], ["YQ==", 1]]), r"ranks\[1\]: the token b'a' appears twice"),
        (_saved(merges=_DROP, ranks=[["YQ==", "0"]]), r"ranks\[0\] should be"),
    ],
)
def test_load_corrupt_file(tmp_path, content, match):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=match):
        Tokenizer.load(path)


def test_load_old_text_format_says_so(tmp_path):
    path = tmp_path / "old.bpe"
    path.write_text("llmcourse-bpe v1\npattern null\nspecial_tokens 0\nmerges 1\n97 97 256\n", encoding="utf-8")
    with pytest.raises(ValueError, match="old tokenizer file.*train the tokenizer again"):
        Tokenizer.load(path)


def test_load_binary_file(tmp_path):
    path = tmp_path / "bad.bpe"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(ValueError, match="not a tokenizer file"):
        Tokenizer.load(path)


# ----------------------------------------------------------------------------------------------
# tiktoken ranks files


def _tiny_ranks(seed: int = 0) -> dict[bytes, int]:
    """256 shuffled single bytes plus some multi-byte tokens, each reachable by merges."""
    rng = random.Random(seed)
    order = list(range(256))
    rng.shuffle(order)
    ranks = {bytes([b]): r for r, b in enumerate(order)}
    for word in ["th", "he", "the", " t", " the", "in", "ing", "an", "and", " and", "ll", "ell", "hell", "hello"]:
        for i in range(2, len(word) + 1):  # its prefixes too, so BPE can build it
            ranks.setdefault(word[:i].encode(), len(ranks))
    return ranks


def _write_ranks(path, ranks):
    import base64

    path.write_bytes(b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in ranks.items()))


def test_load_tiktoken_ranks_plain_and_gz(tmp_path):
    ranks = _tiny_ranks()
    _write_ranks(tmp_path / "r.tiktoken", ranks)
    assert load_tiktoken_ranks(tmp_path / "r.tiktoken") == ranks
    (tmp_path / "r.tiktoken.gz").write_bytes(gzip.compress((tmp_path / "r.tiktoken").read_bytes()))
    assert load_tiktoken_ranks(str(tmp_path / "r.tiktoken.gz")) == ranks


def test_rank_bpe_equals_tiktoken_on_other_ranks(tmp_path):
    import tiktoken

    ranks = _tiny_ranks(seed=3)
    ours = Tokenizer.from_tiktoken_ranks(ranks, GPT2_SPLIT_PATTERN, {"<|eot|>": len(ranks)})
    ref = tiktoken.Encoding(
        name="tiny", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks, special_tokens={"<|eot|>": len(ranks)}
    )
    text = "hello the thing and handle hell  theeee<|eot|>\n" + TORTURE[5]
    assert ours.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")
    assert ours.encode_ordinary(text) == ref.encode_ordinary(text)


@pytest.mark.parametrize(
    "content, match",
    [
        (b"", "no ranks"),
        (b"\n\n", "no ranks"),
        (b"YQ== 0\nYg== 1\nYw==\n", "line 3"),
        (b"YQ== 0\n!!notbase64 1\n", "line 2.*base64"),
        (b"YQ== 0\nYg== one\n", "line 2.*not an integer"),
        (b"YQ== 0\nYQ== 1\n", "line 2.*twice"),
        (b"YQ== 0\nYg== 0\n", "line 2.*rank 0 appears twice"),
        (b"\x1f\x8bnot really gzip", "gzip"),
    ],
)
def test_load_tiktoken_ranks_corrupt(tmp_path, content, match):
    path = tmp_path / "bad.tiktoken"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=match):
        load_tiktoken_ranks(path)


def test_from_tiktoken_ranks_checks():
    with pytest.raises(ValueError, match="256 single bytes"):
        Tokenizer.from_tiktoken_ranks({b"a": 0}, GPT4_SPLIT_PATTERN)
    with pytest.raises(TypeError):
        Tokenizer.from_tiktoken_ranks({"a": 0}, GPT4_SPLIT_PATTERN)
    with pytest.raises(ValueError, match="share a rank"):
        Tokenizer.from_tiktoken_ranks({bytes([i]): i % 255 for i in range(256)}, GPT4_SPLIT_PATTERN)


# ----------------------------------------------------------------------------------------------
# bad input: clear errors, never silent wrong answers


def test_bad_text_type():
    tok = trained()
    for call in [
        lambda: train_merges(b"bytes", 300),
        lambda: train_merges(None, 300),
        lambda: train_merges_naive(b"bytes", 300),
        lambda: encode(b"x", {}),
        lambda: tok.encode(["x"]),
        lambda: tok.encode_ordinary(3),
        lambda: tok.train(b"x", 300),
        lambda: cl100k_base().encode(b"x"),
    ]:
        with pytest.raises(TypeError, match="str"):
            call()


def test_bad_vocab_size():
    for train in (train_merges, train_merges_naive):
        with pytest.raises(ValueError, match="at least 256"):
            train("abc", 255)
        for bad in (300.0, "300", None, True):
            with pytest.raises(TypeError, match="vocab_size"):
                train("abc", bad)
    with pytest.raises(ValueError):
        Tokenizer().train("abc", 10)


@pytest.mark.parametrize("bad", [(1, 2), "12", None, [1.0, 2.0], [1, "2"], [True, 2], {1: 2}])
def test_bad_ids(bad):
    vocab = build_vocab({})
    for call in [
        lambda: get_stats(bad),
        lambda: merge(bad, (1, 2), 256),
        lambda: decode(bad, vocab),
        lambda: trained().decode(bad),
        lambda: trained().decode_tokens(bad),
    ]:
        with pytest.raises(TypeError, match="list of ints"):
            call()


@pytest.mark.parametrize("bad", [[1, 2], (1,), (1, 2, 3), (1.0, 2), "ab", None])
def test_bad_pair(bad):
    with pytest.raises(TypeError, match="pair"):
        merge([1, 2], bad, 256)


def test_unknown_id():
    with pytest.raises(ValueError, match="99999"):
        decode([1, 99999], build_vocab({}))
    with pytest.raises(ValueError, match="123456"):
        cl100k_base().decode([1, 123456])


def test_bad_merges_and_specials():
    with pytest.raises(ValueError, match="no earlier merge"):
        build_vocab({(256, 1): 257})
    with pytest.raises(ValueError, match="used twice"):
        build_vocab({(1, 2): 256, (3, 4): 256})
    with pytest.raises(ValueError, match="used twice"):
        build_vocab({(1, 2): 100})  # collides with a byte
    with pytest.raises(TypeError):
        build_vocab([((1, 2), 256)])
    with pytest.raises(ValueError, match="already uses"):
        build_vocab({(1, 2): 256}, {"<|x|>": 256})
    with pytest.raises(TypeError, match="special"):
        encode("x", {}, GPT4_SPLIT_PATTERN, {"<|x|>": "300"})
    with pytest.raises(TypeError, match="special"):
        Tokenizer(special_tokens={"": 300})
    with pytest.raises(ValueError, match="no UTF-8 encoding"):
        Tokenizer(special_tokens={"<|\ud800|>": 300})


def test_pattern_that_drops_text_is_refused():
    tok = Tokenizer(pattern=r"\w+")
    with pytest.raises(ValueError, match="cover"):
        tok.encode_ordinary("hello, world")
    with pytest.raises(ValueError, match="cover"):
        encode("hello, world", {}, r"\w+")


def test_tiktoken_encoding_name():
    with pytest.raises(ValueError, match="cl100k_base"):
        tiktoken_encoding("gpt2")


def test_part_6_builds_the_students_tokenizer_once_and_a_tokenizer_with_state_fails():
    """The part 6 check uses one tokenizer for every case, as tiktoken's Encoding is used (building
    GPT4Tokenizer() per case cost most of the check's time): built once per class, so state that one
    call leaves behind shows in the next case's output."""
    from llmcourse.checks.checker import compare_results, expected_results, get_spec, run_cases

    spec = get_spec("tokenization.tiktoken_encoding")
    cases = spec.cases(False, 0)
    expected = expected_results(spec, cases)
    built = []

    class Honest:
        def __init__(self):
            built.append(self)
            self.encoding = tiktoken_encoding()

        def encode(self, text, allowed_special=frozenset()):
            return self.encoding.encode(text, allowed_special=allowed_special)

        def decode(self, ids):
            return self.encoding.decode(ids)

    class Counting(Honest):
        calls = 0

        def encode(self, text, allowed_special=frozenset()):
            self.calls += 1  # state that outlives a call: right the first time only
            ids = super().encode(text, allowed_special)
            return ids if self.calls == 1 else ids + [self.calls]

    assert compare_results(spec, False, cases, expected, run_cases(Honest, cases, spec)).passed
    assert len(built) == 1
    outcome = compare_results(spec, False, cases, expected, run_cases(Counting, cases, spec))
    assert not outcome.passed and len(built) == 2
    assert outcome.failures and "two words" not in " ".join(outcome.failures)  # its first case was right
