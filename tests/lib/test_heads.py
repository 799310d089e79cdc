"""Head-finding helpers (llmcourse.toolbox.heads): exact values on hand-made attention, loop references on
the real all-MiniLM-L6-v2 (6 layers x 12 heads, from the pinned package, no network), and clear
errors on bad input."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may be downloaded

from pathlib import Path

import pytest
import torch
from llmcourse.toolbox.heads import (
    PRONOUN_EXAMPLES,
    PRONOUN_PAIRS,
    hf_minilm,
    minilm_attentions,
    plot_head_scores,
    previous_token_scores,
    pronoun_antecedent_scores,
    pronoun_control_scores,
    pronoun_pair_attention,
    sentence_attention,
    special_tokens_mask,
    top_heads,
)
from llmcourse.toolbox.pretrained import minilm_dir

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "heads"

# different lengths, so the batch is padded
SENTENCES = [
    "The cat sat on the mat because it was warm.",
    "Time flies like an arrow; fruit flies like a banana.",
    "She gave the book to her brother yesterday.",
    "We walked along the river until the sun went down over the hills.",
    "Hello world.",
]


@pytest.fixture(scope="module")
def minilm():
    return minilm_attentions(SENTENCES)


def _previous_token_loop(attn, mask, special=None) -> torch.Tensor:
    """The definition, written as loops: mean over every (b, t) with t, t-1 both real and not special."""
    L, (B, H, T, _) = len(attn), attn[0].shape
    out = torch.zeros(L, H, dtype=torch.float64)
    n = 0
    for b in range(B):
        for t in range(1, T):
            ok = all(bool(mask[b, s]) and not (special is not None and bool(special[b, s])) for s in (t, t - 1))
            if ok:
                n += 1
                for l in range(L):
                    for h in range(H):
                        out[l, h] += float(attn[l][b, h, t, t - 1])
    return (out / n).float()


# ----------------------------------------------------------------------------------------------
# previous-token score: hand-made attention


def _shift(T: int) -> torch.Tensor:
    """A perfect previous-token pattern: row t puts all its weight on t-1 (row 0 on itself)."""
    a = torch.zeros(T, T)
    a[0, 0] = 1
    a[torch.arange(1, T), torch.arange(T - 1)] = 1
    return a


def test_previous_token_exact_values():
    T = 7
    uniform = torch.full((T, T), 1 / T)
    causal = torch.tril(torch.ones(T, T))
    causal = causal / causal.sum(-1, keepdim=True)
    layer = torch.stack([_shift(T), uniform, causal, torch.eye(T)])[None]  # (1, 4, T, T)
    s = previous_token_scores([layer, layer.flip(1)])
    assert s.shape == (2, 4)
    causal_expected = sum(1 / (t + 1) for t in range(1, T)) / (T - 1)
    torch.testing.assert_close(s[0], torch.tensor([1.0, 1 / T, causal_expected, 0.0]))
    torch.testing.assert_close(s[1], s[0].flip(0))


def test_previous_token_skips_padding_and_special_tokens():
    T = 6
    # head 0 looks back only at real tokens; on the padding (positions 4, 5) it looks at itself
    a = _shift(T)
    a[4:] = torch.eye(T)[4:]
    attn = [a[None, None]]
    mask = torch.tensor([[1, 1, 1, 1, 0, 0]])
    assert previous_token_scores(attn, mask)[0, 0] == pytest.approx(1.0)
    assert previous_token_scores(attn)[0, 0] == pytest.approx(3 / 5)  # without the mask, pads count
    # marking the last real token special leaves the pairs (1, 0) and (2, 1)
    special = torch.tensor([[0, 0, 0, 1, 0, 0]])
    a2 = a.clone()
    a2[3] = torch.eye(T)[3]  # ... and what the special token does no longer matters
    assert previous_token_scores([a2[None, None]], mask, special_tokens_mask=special)[0, 0] == pytest.approx(1.0)


# ----------------------------------------------------------------------------------------------
# the real MiniLM


def test_minilm_shapes(minilm):
    attn, mask, tokens = minilm
    B, T = mask.shape
    assert len(attn) == 6 and B == len(SENTENCES)
    assert all(a.shape == (B, 12, T, T) for a in attn)
    assert [len(t) for t in tokens] == mask.sum(1).tolist()  # tokens come without padding
    assert all(t[0] == "[CLS]" and t[-1] == "[SEP]" for t in tokens)
    assert int(mask.sum(1).min()) < T  # the batch really is padded
    rows = attn[0].sum(-1).transpose(1, 2)[mask.bool()]  # (real tokens, heads): each row a distribution
    torch.testing.assert_close(rows, torch.ones(int(mask.sum()), 12))


def test_minilm_has_a_previous_token_head(minilm):
    attn, mask, tokens = minilm
    special = special_tokens_mask(tokens, mask)
    for sp in (None, special):
        s = previous_token_scores(attn, mask, special_tokens_mask=sp)
        assert s.shape == (6, 12)
        assert float(s.min()) >= 0 and float(s.max()) <= 1
        torch.testing.assert_close(s, _previous_token_loop(attn, mask, sp), atol=1e-5, rtol=1e-5)
        best = top_heads(s, 3)
        assert best[0][2] > 0.5, f"no previous-token head in MiniLM: best {best}"
    fig = plot_head_scores(s, "previous-token score (MiniLM)")
    assert fig.axes[0].images[0].get_array().shape == (6, 12)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    fig.savefig(ARTIFACTS / "previous_token_scores.png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_sentence_attention_strips_padding(minilm):
    attn, mask, tokens = minilm
    i = len(SENTENCES) - 1  # the shortest sentence: the most padding
    one = sentence_attention(attn, mask, i)
    n = len(tokens[i])
    assert len(one) == 6 and all(a.shape == (1, 12, n, n) for a in one)
    alone, _, alone_tokens = minilm_attentions([SENTENCES[i]])  # no padding at all
    assert alone_tokens[0] == tokens[i]
    for a, b in zip(one, alone):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_special_tokens_mask(minilm):
    _, mask, tokens = minilm
    sp = special_tokens_mask(tokens, mask)
    assert sp.shape == mask.shape and sp.dtype == torch.bool
    assert sp.sum(1).tolist() == [2] * len(tokens)  # [CLS] and [SEP]; padding lies beyond the tokens


# ----------------------------------------------------------------------------------------------
# pronoun -> antecedent


def test_pronoun_examples_are_well_formed():
    assert len(PRONOUN_EXAMPLES) >= 10
    for sentence, pronoun, antecedent in PRONOUN_EXAMPLES:
        low = sentence.lower()
        assert antecedent.lower() in low and f" {pronoun} " in f" {low.replace('.', ' ')} "
        assert low.index(antecedent.lower()) < low.rindex(f" {pronoun}")


def test_pronoun_set_is_counterbalanced_minimal_pairs():
    """Each pair differs in exactly one word; in one half the pronoun means the first-mentioned noun,
    in the other the second, so a head that always looks at one position or noun cannot win."""
    assert len(PRONOUN_PAIRS) >= 10
    assert PRONOUN_EXAMPLES == [ex for sa, sb, p, a, b in PRONOUN_PAIRS for ex in ((sa, p, a), (sb, p, b))]
    for sa, sb, pronoun, a, b in PRONOUN_PAIRS:
        wa, wb = sa.split(), sb.split()
        assert len(wa) == len(wb) and sum(x != y for x, y in zip(wa, wb)) == 1, (sa, sb)
        for sentence in (sa, sb):
            low = sentence.lower()
            assert low.index(a.lower()) < low.index(b.lower())  # A is mentioned first
            assert low.index(b.lower()) < low.index(f" {pronoun} ")  # both before the pronoun


class _LooksAtPosition:
    """A fake one-layer, one-head model whose every token attends to one fixed position: the
    "head that always attends to the subject / position 2" the control must unmask."""

    training = False

    def __init__(self, position: int):
        self.position = position

    def __call__(self, input_ids, attention_mask, output_attentions):
        B, T = input_ids.shape
        a = torch.zeros(B, 1, T, T)
        a[..., self.position] = 1.0
        return {"attentions": [a]}


def test_a_positional_head_scores_the_same_on_control_and_chance_on_pairs():
    model, tok = hf_minilm()
    fake = _LooksAtPosition(2)  # [CLS] The <noun>: the subject of most pairs' first half
    pron = pronoun_antecedent_scores(fake, tok)
    ctrl = pronoun_control_scores(fake, tok)
    # it "scores" as a pronoun head: 1 for every example whose antecedent is token 2, else 0 ...
    at_2 = [tok(sent).char_to_token(sent.lower().index(a.lower())) == 2 for sent, _, a in PRONOUN_EXAMPLES]
    assert pron.shape == (1, 1) and float(pron) == pytest.approx(sum(at_2) / len(at_2)) and sum(at_2) >= 5
    assert torch.equal(pron, ctrl)  # ... and exactly as high from a name in the pronoun's place
    x = pronoun_pair_attention(fake, tok)[..., 0, 0]  # (P, 2, 2)
    right = torch.cat([x[:, 0, 0] > x[:, 0, 1], x[:, 1, 1] > x[:, 1, 0]])
    assert int(right.sum()) <= len(PRONOUN_PAIRS)  # at most one half of each pair


def test_pronoun_scores_on_minilm_with_control_and_pairs():
    """What lecture 04 shows: the best pronoun head's score is far above its control (it attends from
    pronouns, not from any token there); the pair scores are the same numbers, split by half."""
    model, tok = hf_minilm()
    s = pronoun_antecedent_scores(model, tok)  # default: PRONOUN_EXAMPLES
    c = pronoun_control_scores(model, tok)
    assert s.shape == c.shape == (6, 12)
    assert float(s.min()) >= 0 and float(s.max()) <= 1 and float(c.min()) >= 0 and float(c.max()) <= 1
    (l, h, best), *_ = top_heads(s, 1)
    assert best > 3 * float(c[l, h]), f"best pronoun head L{l}H{h}: {best:.3f}, control {float(c[l, h]):.3f}"
    x = pronoun_pair_attention(model, tok)
    assert x.shape == (len(PRONOUN_PAIRS), 2, 2, 6, 12)
    torch.testing.assert_close(torch.cat([x[:, 0, 0], x[:, 1, 1]]).mean(0), s, atol=1e-6, rtol=0)


def test_control_scores_match_a_loop():
    model, tok = hf_minilm()
    examples = PRONOUN_EXAMPLES[:3]
    c = pronoun_control_scores(model, tok, examples, control_word="Tom")
    ref = torch.zeros(6, 12)
    for sentence, pronoun, antecedent in examples:
        start = sentence.lower().index(antecedent.lower())
        at = sentence.index(f" {pronoun} ", start)
        control = sentence[: at + 1] + "Tom" + sentence[at + 1 + len(pronoun) :]
        attn, _, (toks,) = minilm_attentions([control])
        a = toks.index(tok.tokenize(antecedent)[0])
        q = toks.index("tom")
        ref += torch.stack([layer[0, :, q, a] for layer in attn])
    torch.testing.assert_close(c, ref / len(examples), atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="one token"):
        pronoun_control_scores(model, tok, examples, control_word="Bartholomew-Smythe")


def test_pronoun_scores_match_a_loop():
    model, tok = hf_minilm()
    examples = PRONOUN_EXAMPLES[:4]
    s = pronoun_antecedent_scores(model, tok, examples)  # one padded batch
    # reference: one sentence at a time (no padding), the tokens found by position in the token list
    ref = torch.zeros(6, 12)
    for sentence, pronoun, antecedent in examples:
        attn, _, (toks,) = minilm_attentions([sentence])
        a = toks.index(tok.tokenize(antecedent)[0])
        p = toks.index(pronoun.lower(), a + 1)
        ref += torch.stack([layer[0, :, p, a] for layer in attn])
    ref /= len(examples)
    torch.testing.assert_close(s, ref, atol=1e-5, rtol=1e-4)


def test_pronoun_bad_examples():
    model, tok = hf_minilm()
    with pytest.raises(ValueError, match="antecedent 'dragon'"):
        pronoun_antecedent_scores(model, tok, [("The trophy did not fit because it was big.", "it", "dragon")])
    with pytest.raises(ValueError, match="pronoun 'she'"):
        pronoun_antecedent_scores(model, tok, [("The trophy did not fit because it was big.", "she", "trophy")])
    with pytest.raises(ValueError, match=r"\(sentence, pronoun, antecedent\)"):
        pronoun_antecedent_scores(model, tok, [("only a sentence",)])
    with pytest.raises(ValueError, match="no examples"):
        pronoun_antecedent_scores(model, tok, [])
    with pytest.raises(ValueError, match="no pairs"):
        pronoun_pair_attention(model, tok, [])
    with pytest.raises(ValueError, match=r"\(sentence_a, sentence_b, pronoun, a, b\)"):
        pronoun_pair_attention(model, tok, [("a", "b", "it")])


# ----------------------------------------------------------------------------------------------
# top_heads and bad input


def test_top_heads_order():
    s = torch.tensor([[0.1, 0.9, 0.3], [0.9, 0.2, 0.5]])
    assert top_heads(s, 3) == [(0, 1, pytest.approx(0.9)), (1, 0, pytest.approx(0.9)), (1, 2, pytest.approx(0.5))]
    assert [x[:2] for x in top_heads(s, 100)] == [(0, 1), (1, 0), (1, 2), (0, 2), (1, 1), (0, 0)]
    assert all(isinstance(v, float) for *_, v in top_heads(s))
    assert len(top_heads(s)) == 5


@pytest.mark.parametrize(
    "bad, match",
    [
        ([], "empty"),
        ([torch.rand(4, 5, 5)], r"expected \(batch, heads, T, T\)"),
        ([torch.rand(1, 4, 5, 6)], r"expected \(batch, heads, T, T\)"),
        ([torch.rand(1, 4, 5, 5), torch.rand(1, 3, 5, 5)], "same shape"),
        (torch.rand(2, 4, 5, 5), r"\(layers, batch, heads, T, T\)"),
        ("attention", "list of per-layer tensors"),
        ([[[0.5]]], "not a tensor"),
    ],
)
def test_previous_token_bad_shapes(bad, match):
    with pytest.raises(ValueError, match=match):
        previous_token_scores(bad)


def test_bad_masks_and_scores():
    attn = [torch.rand(2, 3, 5, 5)]
    with pytest.raises(ValueError, match=r"attention_mask has shape \(5,\)"):
        previous_token_scores(attn, torch.ones(5))
    with pytest.raises(ValueError, match="special_tokens_mask"):
        previous_token_scores(attn, torch.ones(2, 5), special_tokens_mask=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="no .* pair"):
        previous_token_scores(attn, torch.tensor([[1, 0, 1, 0, 0], [1, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"scores must be \(layers, heads\)"):
        top_heads(torch.rand(12))
    with pytest.raises(ValueError, match="positive integer"):
        top_heads(torch.rand(2, 3), k=0)
    with pytest.raises(ValueError, match=r"scores must be \(layers, heads\)"):
        plot_head_scores(torch.rand(2, 3, 4), "x")
    with pytest.raises(ValueError, match="out of range"):
        sentence_attention(attn, None, 2)


def test_minilm_is_loaded_once():
    assert hf_minilm() is hf_minilm()
    assert minilm_dir().joinpath("model.safetensors").is_file()
