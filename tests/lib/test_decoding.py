"""Tests for llmcourse.decoding (assignment 10's answer key).

Expected values come from independent implementations only:

* **exhaustive search** on a tiny vocabulary: a known model whose next-token log-probs depend on the
  whole context (a seeded table), every hypothesis enumerated and scored by hand; a beam wide enough
  to keep every hypothesis must return exactly that ranking;
* **Hugging Face transformers**' ``generate(num_beams=k, do_sample=False, length_penalty=...,
  early_stopping=..., num_return_sequences=n)`` on the same weights: the course GPT copied into a
  config-built ``GPT2LMHeadModel`` (``transformer.to_hf_gpt2``), the shipped Shakespeare GPT, and
  SmolLM2-135M-Instruct (ours read by the course's GGUF loader, theirs by transformers' own);
* plain greedy decoding (width 1) and sampling frequencies against the exact probabilities.

Scores are compared within 2e-5: both sum float32 log-probs (ours from our forward, theirs from
theirs, equal to ~1e-6 per step) over at most 16 steps.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported anywhere
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
from llmcourse.decoding import (
    beam_search,
    beam_step,
    beam_step_naive,
    decode,
    greedy,
    log_prob_fn,
    n_best,
    n_best_naive,
    sample,
)
from llmcourse.transformer import GPT, GPTConfig, to_hf_gpt2

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

SCORE_ATOL = 2e-5


class TableLM:
    """A known model: the next-token log-probs of a context are a seeded draw keyed by the whole
    context (so every beam's history matters), scaled by ``sharpness``."""

    def __init__(self, V: int, seed: int = 0, sharpness: float = 2.0, eos: int | None = None, eos_bias: float = 0.0):
        self.V, self.seed, self.sharpness, self.eos, self.eos_bias = V, seed, sharpness, eos, eos_bias
        self.calls = 0

    def row(self, context: list[int]) -> torch.Tensor:
        key = (self.seed * 1_000_003 + hash(tuple(context))) % (2**31)
        logits = torch.randn(self.V, generator=torch.Generator().manual_seed(key), dtype=torch.float64)
        logits = logits * self.sharpness
        if self.eos is not None:
            logits[self.eos] += self.eos_bias
        return torch.log_softmax(logits, -1).float()

    def __call__(self, ids: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return torch.stack([self.row(r) for r in ids.tolist()])  # (N, V)


def exhaustive(lm: TableLM, prompt: list[int], max_new: int, eos: int | None, length_penalty: float):
    """Every hypothesis (ends at its first EOS, or at max_new tokens), scored sum / len ** penalty,
    best first. Sums in float64 of the float32 log-probs."""
    out = []

    def walk(seq: list[int], total: float) -> None:
        if seq and (len(seq) == max_new or seq[-1] == eos):
            out.append((seq, total / len(seq) ** length_penalty))
            return
        row = lm.row(prompt + seq).tolist()
        for v in range(lm.V):
            walk(seq + [v], total + row[v])

    walk([], 0.0)
    return sorted(out, key=lambda h: -h[1])


def assert_same(ours, want, atol=SCORE_ATOL):
    assert [h[0] for h in ours] == [h[0] for h in want]
    for (_, a), (_, b) in zip(ours, want):
        assert math.isclose(a, b, abs_tol=atol), (a, b)


# ----------------------------------------------------------------------------------------------
# exhaustive search: a beam that keeps every hypothesis finds the exact optimum


@pytest.mark.parametrize("length_penalty", [0.0, 1.0, 2.0, -0.5])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_beam_wide_enough_is_exhaustive_search(seed, length_penalty):
    lm, prompt = TableLM(V=4, seed=seed, eos=0), [1, 2]
    want = exhaustive(lm, prompt, 3, eos=0, length_penalty=length_penalty)
    assert len(want) == 1 + 3 + 9 + 27  # EOS after 1, 2 or 3 tokens, or 3 tokens without EOS
    # width 64 >= every candidate of every step (at most 9 beams x 4 tokens): nothing is pruned
    assert_same(n_best(lm, prompt, 64, len(want), 3, eos_id=0, length_penalty=length_penalty), want)
    assert_same(n_best_naive(lm, prompt, 64, len(want), 3, eos_id=0, length_penalty=length_penalty), want)
    best = beam_search(lm, prompt, 64, 3, eos_id=0, length_penalty=length_penalty)
    assert best[0] == want[0][0] and math.isclose(best[1], want[0][1], abs_tol=SCORE_ATOL)


def test_exhaustive_without_eos():
    lm, prompt = TableLM(V=3, seed=3), [0]
    want = exhaustive(lm, prompt, 4, eos=None, length_penalty=1.0)
    assert len(want) == 81
    assert_same(n_best(lm, prompt, 81, 81, 4), want)


def test_a_narrow_beam_can_miss_the_optimum_that_a_wide_one_finds():
    # the point of the width: on some table, width 1 (greedy) is worse than the exhaustive optimum
    for seed in range(20):
        lm = TableLM(V=4, seed=seed, eos=0)
        want = exhaustive(lm, [1], 3, eos=0, length_penalty=0.0)[0]
        got = beam_search(lm, [1], 1, 3, eos_id=0, length_penalty=0.0)
        if got[1] < want[1] - 1e-6:
            assert beam_search(lm, [1], 64, 3, eos_id=0, length_penalty=0.0)[0] == want[0]
            return
    pytest.fail("greedy found the optimum on 20 tables: the table model is too easy")


# ----------------------------------------------------------------------------------------------
# width 1 is greedy; the naive and the batched search agree


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_width_one_is_greedy(seed):
    lm = TableLM(V=7, seed=seed, eos=0, eos_bias=1.0)
    g = greedy(lm, [3, 4], 8, eos_id=0)
    assert beam_search(lm, [3, 4], 1, 8, eos_id=0)[0] == g
    assert n_best_naive(lm, [3, 4], 1, 1, 8, eos_id=0)[0][0] == g


def test_greedy_is_the_argmax_at_every_step():
    lm = TableLM(V=9, seed=4)
    out = greedy(lm, [1], 6)
    for t in range(6):
        assert out[t] == int(lm.row([1] + out[:t]).argmax())


@pytest.mark.parametrize(
    "num_beams, n, lp, early", [(2, 1, 1.0, True), (3, 3, 0.0, True), (4, 2, 2.0, False), (5, 5, -1.0, False)]
)
def test_batched_equals_naive(num_beams, n, lp, early):
    for seed in range(3):
        lm = TableLM(V=11, seed=seed, eos=2, eos_bias=1.5)
        a = n_best(lm, [5, 6, 7], num_beams, n, 9, eos_id=2, length_penalty=lp, early_stopping=early)
        b = n_best_naive(lm, [5, 6, 7], num_beams, n, 9, eos_id=2, length_penalty=lp, early_stopping=early)
        assert_same(a, b, atol=1e-5)


def test_batched_calls_the_model_once_per_step():
    lm = TableLM(V=11, seed=0)
    n_best(lm, [1], 4, 1, 6)
    assert lm.calls == 6


def test_beam_step_equals_the_naive_step():
    g = torch.Generator().manual_seed(0)
    for K, V, k, eos in [(1, 5, 3, 0), (3, 7, 3, 6), (4, 10, 4, None), (2, 4, 2, 1)]:
        scores = torch.randn(K, generator=g) * 3
        log_probs = torch.log_softmax(torch.randn(K, V, generator=g) * 2, -1)
        got = beam_step(scores, log_probs, k, eos)
        want = beam_step_naive(scores.tolist(), log_probs.tolist(), k, eos)
        assert [r[:2] for r in got[0]] == [r[:2] for r in want[0]] and [f[0] for f in got[1]] == [f[0] for f in want[1]]
        assert all(math.isclose(a[-1], b[-1], abs_tol=1e-5) for a, b in zip(got[0] + got[1], want[0] + want[1]))


def test_beam_step_by_hand():
    # beam 0 (score -1): tokens 0 (EOS), 1, 2 -> -1.1, -2.0, -4.0; beam 1 (score -2): -2.5, -2.2, -3.0
    scores = torch.tensor([-1.0, -2.0])
    log_probs = torch.tensor([[-0.1, -1.0, -3.0], [-0.5, -0.2, -1.0]])
    running, finished = beam_step(scores, log_probs, 2, eos_id=0)
    # ranked: (0,0) -1.1 EOS, (0,1) -2.0, (1,1) -2.2, (1,0) -2.5 EOS (rank 3: dropped), (1,2) -3.0
    assert finished == [(0, pytest.approx(-1.1))]
    assert [(b, v) for b, v, _ in running] == [(0, 1), (1, 1)]
    assert [t for _, _, t in running] == [pytest.approx(-2.0), pytest.approx(-2.2)]


# ----------------------------------------------------------------------------------------------
# Hugging Face generate on the same weights


def sharp_gpt(seed: int, eos: int) -> GPT:
    """A random course GPT with peaked next-token distributions (top-1 ~ 0.3) and an EOS that is
    likely enough (~5%) for hypotheses to end at different lengths."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=61, block_size=48, n_layer=2, n_head=2, n_embd=32)).eval()
    with torch.no_grad():
        model.wte.weight.mul_(6.0)
        model.ln_f.bias.normal_()
        model.wte.weight[eos] += 0.05 * model.ln_f.bias
    return model


def hf_beams(hf, prompt, eos, pad, **kw):
    """transformers' n best: (generated tokens cut after the first EOS, sequence score)."""
    ids = torch.tensor([prompt])
    with torch.inference_mode():
        out = hf.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=pad,
            output_scores=True,
            return_dict_in_generate=True,
            **kw,
        )
    hyps = []
    for row, score in zip(out.sequences[:, ids.size(1) :].tolist(), out.sequences_scores.tolist()):
        hyps.append((row[: row.index(eos) + 1] if eos in row else row, score))
    return hyps


GPT_EOS = 5


@pytest.fixture(scope="module")
def gpts():
    """Two random GPTs, ours and Hugging Face's copy, in float64: beam scores sum a dozen log-probs, and
    in float32 the two implementations' sums drift apart per CPU (2.9e-5 with ATEN_CPU_CAPABILITY=default,
    8.6e-6 with avx2, against SCORE_ATOL 2e-5). In float64 only ``log_prob_fn``'s float32 log-probs are
    left (rounded once, the same on every CPU): 5.7e-6 under both, all 42 searches."""
    models = [sharp_gpt(seed, GPT_EOS).double() for seed in (0, 1)]
    return [(m, to_hf_gpt2(m).double()) for m in models]


@pytest.mark.parametrize(
    "num_beams, n, lp, early",
    [(2, 1, 1.0, True), (3, 3, 1.0, True), (4, 2, 0.0, True), (4, 4, 2.0, True), (5, 3, -1.0, True),
     (4, 4, 1.0, False), (6, 2, 0.5, False)],
)  # fmt: skip
def test_gpt_beams_equal_hugging_face(gpts, num_beams, n, lp, early):
    prompts = [[3, 17, 22], [40], [7, 7, 8, 9, 10, 11]]
    ended = 0
    for model, hf in gpts:
        step = log_prob_fn(model)
        for prompt in prompts:
            want = hf_beams(
                hf, prompt, GPT_EOS, GPT_EOS, num_beams=num_beams, num_return_sequences=n,
                length_penalty=lp, early_stopping=early, max_new_tokens=12,
            )  # fmt: skip
            got = n_best(step, prompt, num_beams, n, 12, eos_id=GPT_EOS, length_penalty=lp, early_stopping=early)
            assert_same(got, want)
            ended += sum(h[0][-1] == GPT_EOS for h in got)
    assert ended > 0, "no hypothesis ended with EOS: the EOS rules went untested"


def test_shakespeare_gpt_beams_equal_hugging_face(repo):
    """The shipped checkpoint (unit 06), a newline as the end of a line of verse."""
    from llmcourse.training import load_pretrained

    model, tok, _ = load_pretrained(repo / "checkpoints" / "shakespeare_gpt.pt")
    model = model.double()  # float64 on both sides, as in gpts()
    hf = to_hf_gpt2(model).double()
    newline = tok.encode("\n")[0]
    step = log_prob_fn(model)
    for text, k, lp in [("ROMEO:\nBut soft, what light", 4, 1.0), ("KING HENRY:\nOnce more", 3, 0.0)]:
        prompt = tok.encode(text)
        want = hf_beams(
            hf, prompt, newline, newline, num_beams=k, num_return_sequences=k,
            length_penalty=lp, early_stopping=True, max_new_tokens=16,
        )  # fmt: skip
        assert_same(n_best(step, prompt, k, k, 16, eos_id=newline, length_penalty=lp), want)


def test_smollm2_beams_equal_hugging_face(smollm2_ours, smollm2_hf):
    """SmolLM2 by the course's loader and model against transformers' GGUF loader and Llama."""
    model, tok = smollm2_ours
    hf, _ = smollm2_hf
    im_end = tok.special_tokens["<|im_end|>"]
    prompt = tok.encode_chat([{"role": "user", "content": "What is the capital of France?"}])
    want = hf_beams(
        hf, prompt, im_end, im_end, num_beams=3, num_return_sequences=3,
        length_penalty=1.0, early_stopping=True, max_new_tokens=10,
    )  # fmt: skip
    got = n_best(log_prob_fn(model), prompt, 3, 3, 10, eos_id=im_end, length_penalty=1.0)
    assert_same(got, want, atol=1e-4)  # 30 layers of float32: logits agree to ~1e-5


# ----------------------------------------------------------------------------------------------
# sampling and the one interface


def test_decode_dispatches_to_each_strategy():
    lm = TableLM(V=8, seed=5, eos=0, eos_bias=0.5)
    assert decode(lm, [1], 6) == greedy(lm, [1], 6)
    assert decode(lm, [1], 6, "beam", num_beams=3, eos_id=0) == beam_search(lm, [1], 3, 6, eos_id=0)[0]
    a = decode(lm, [1], 6, "sample", temperature=0.7, generator=torch.Generator().manual_seed(3))
    assert a == sample(lm, [1], 6, temperature=0.7, generator=torch.Generator().manual_seed(3))


def test_sampling_with_top_k_1_is_greedy():
    lm = TableLM(V=9, seed=2)
    assert sample(lm, [4], 7, top_k=1, generator=torch.Generator().manual_seed(0)) == greedy(lm, [4], 7)


def test_sampling_draws_tokens_with_their_probabilities():
    lm = TableLM(V=4, seed=1, sharpness=1.0)
    p = lm.row([2]).double().exp()
    g = torch.Generator().manual_seed(0)
    draws = torch.tensor([sample(lm, [2], 1, generator=g)[0] for _ in range(3000)])
    freq = torch.bincount(draws, minlength=4).double() / 3000
    sigma = (p * (1 - p) / 3000).sqrt()
    assert ((freq - p).abs() < 5 * sigma).all(), (freq, p)


def test_log_prob_fn_of_each_kind_of_model():
    model = sharp_gpt(0, GPT_EOS)
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    want = torch.log_softmax(model(ids)[0][:, -1], -1)
    torch.testing.assert_close(log_prob_fn(model)(ids), want)
    torch.testing.assert_close(log_prob_fn(to_hf_gpt2(model))(ids), want, atol=1e-5, rtol=0)
    torch.testing.assert_close(log_prob_fn(lambda x: model(x)[0])(ids), want)
    cropped = log_prob_fn(model, block_size=2)(ids)
    torch.testing.assert_close(cropped, torch.log_softmax(model(ids[:, -2:])[0][:, -1], -1))


# ----------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_beams=0), "num_beams"),
        (dict(num_beams=2.0), "num_beams"),
        (dict(max_new_tokens=-1), "max_new_tokens"),
        (dict(length_penalty=float("nan")), "finite"),
        (dict(length_penalty=float("inf")), "finite"),
        (dict(n=3, num_beams=2), "at least that wide"),
        (dict(eos_id=-1), "eos_id"),
        (dict(early_stopping="never"), "early_stopping"),
        (dict(prompt=[]), "at least one token"),
        (dict(prompt=torch.tensor([[1, 2], [3, 4]])), "one prompt at a time"),
        (dict(prompt=torch.tensor([1.0])), "int64"),
    ],
)
def test_bad_search_input_is_refused(kwargs, match):
    args = dict(prompt=[1], num_beams=2, n=1, max_new_tokens=3, eos_id=None, length_penalty=1.0, early_stopping=True)
    args.update(kwargs)
    lm = TableLM(V=5)
    with pytest.raises((ValueError, TypeError), match=match):
        n_best(lm, **args)


def test_bad_step_input_is_refused():
    with pytest.raises(ValueError, match=r"\(K,\) and log_probs \(K, V\)"):
        beam_step(torch.zeros(3), torch.zeros(2, 5), 3)
    with pytest.raises(ValueError, match="more than the width"):
        beam_step(torch.zeros(3), torch.zeros(3, 5), 2)
    with pytest.raises(ValueError, match="num_beams"):
        beam_step(torch.zeros(1), torch.zeros(1, 5), 0)


def test_a_model_of_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match=r"must return \(N, V\)"):
        greedy(lambda ids: torch.zeros(5), [1], 2)
    with pytest.raises(ValueError, match="strategy"):
        decode(TableLM(V=3), [1], 2, strategy="nucleus")


def test_zero_new_tokens():
    lm = TableLM(V=5)
    assert greedy(lm, [1], 0) == [] and n_best(lm, [1], 3, 1, 0) == [([], 0.0)]
