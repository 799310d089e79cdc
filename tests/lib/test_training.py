"""Tests for llmcourse.training (assignment 06's answer key).

References: ``tiktoken`` (streaming tokenization gives its ids), ``F.cross_entropy``,
``torch.optim.AdamW`` (100 steps on a real GPT), ``torch.nn.utils.clip_grad_norm_``, the closed form
of warm-up + cosine and torch's own ``LinearLR`` + ``CosineAnnealingLR``, the entropy rate of a
Markov chain (no model can beat it; a trained one gets close), and an uninterrupted run for resuming.
The shipped checkpoint is loaded and evaluated; its first steps are regenerated.
"""

from __future__ import annotations

import math
import random
import re
import tracemalloc
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from llmcourse.tokenization import Tokenizer, cl100k_base, tiktoken_encoding
from llmcourse.training import (
    AdamW,
    BatchSampler,
    TrainConfig,
    Trainer,
    _get_batch_loop,
    clip_grad_norm,
    cross_entropy,
    encode_corpus,
    encode_iterable,
    evaluate,
    fit,
    get_batch,
    load_checkpoint,
    load_pretrained,
    lr_at,
    param_groups,
    save_checkpoint,
    shakespeare_data,
)
from llmcourse.transformer import GPT, GPTConfig

pytestmark = pytest.mark.usefixtures("one_cpu_thread")

REPO = Path(__file__).resolve().parents[2]
CHECKPOINT = REPO / "checkpoints" / "shakespeare_gpt.pt"

TRICKY = (
    "To be, or not to be, that is the question:\n\n\n   Whether 'tis nobler  in the mind\t\tto suffer\r\n"
    "I'LL  they've   1234567 + 89 = 1234656 ... 🤖🤖 Ça marche?   \n \n  x  'S 's\n    def f(x):  return x\n   "
)


def _chunks(text: str, sizes: list[int]) -> list[str]:
    out, i = [], 0
    for n in sizes:
        out.append(text[i : i + n])
        i += n
    return out + [text[i:]]


# ----------------------------------------------------------------------------------------------
# data


@pytest.mark.parametrize("chunking", ["one char", "random"])
def test_encode_iterable_equals_tiktoken_on_whole_text(chunking):
    tok, ref = cl100k_base(), tiktoken_encoding()
    text = TRICKY * 3
    if chunking == "one char":
        chunks = list(text)
    else:
        rng = random.Random(0)
        chunks = _chunks(text, [rng.randint(0, 9) for _ in range(80)])
    assert list(encode_iterable(tok, chunks)) == ref.encode_ordinary(text)


def test_encode_iterable_streams_shakespeare_like_the_whole_string():
    from llmcourse.toolbox.data import load_shakespeare

    text = load_shakespeare("val")[:200_000]
    tok = Tokenizer().train(text[:50_000], 300)
    rng = random.Random(1)
    chunks = _chunks(text, [rng.randint(1, 5000) for _ in range(100)])
    ids = encode_corpus(tok, iter(chunks))  # a generator: it is read once
    assert ids.dtype == torch.int32
    assert ids.tolist() == tok.encode_ordinary(text)


def test_encode_iterable_memory_stays_flat():
    tok = Tokenizer().train(TRICKY * 4, 280)

    def peak(n_chunks: int) -> int:
        tracemalloc.start()
        total = sum(1 for _ in encode_iterable(tok, (TRICKY for _ in range(n_chunks))))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert total > 0
        return top

    small, large = peak(200), peak(1600)  # 40 KB of text, then 330 KB
    assert large < 1.5 * small + 20_000, (small, large)


def test_get_batch_windows_and_shifted_targets():
    data = torch.arange(1000, 1100, dtype=torch.int32)
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(data, 8, 10, g)
    assert x.shape == y.shape == (8, 10) and x.dtype == y.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:])  # the labels are the inputs, one further on
    assert torch.equal(y[:, -1], x[:, -1] + 1)  # in this data each token is its predecessor + 1
    assert int(x.min()) >= 1000 and int(y.max()) <= 1099
    # the same offsets as torch.randint on the same generator state, and the plain loop agrees
    ix = torch.randint(100 - 10, (8,), generator=torch.Generator().manual_seed(0))
    assert torch.equal(x[:, 0], data[ix].long())
    assert all(torch.equal(a, b) for a, b in zip((x, y), _get_batch_loop(data, ix, 10)))


def test_batch_sampler_state_restores_the_data_position():
    data = torch.randint(0, 50, (500,))
    a = BatchSampler(data, 4, 8, seed=3)
    a.next()
    state = a.state_dict()
    expected = a.next()
    b = BatchSampler(data, 4, 8, seed=99)
    b.load_state_dict(state)
    got = b.next()
    assert all(torch.equal(e, g) for e, g in zip(expected, got)) and b.batches_drawn == 2


def test_a_batch_larger_than_the_data_is_a_clear_error():
    with pytest.raises(ValueError, match="needs block_size \\+ 1 = 65 tokens.*only 40"):
        get_batch(torch.arange(40), 4, 64)
    with pytest.raises(ValueError, match="needs block_size"):
        BatchSampler(torch.arange(10), 2, 10)
    with pytest.raises(TypeError, match="1-D tensor of token ids"):
        get_batch(torch.rand(100), 4, 8)


# ----------------------------------------------------------------------------------------------
# loss


def test_cross_entropy_equals_torch():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=g, dtype=torch.float64) * 30  # large: needs logsumexp
    targets = torch.randint(0, 11, (3, 5), generator=g)
    targets[0, 1] = targets[2, 4] = -1
    expected = F.cross_entropy(logits.view(-1, 11), targets.view(-1), ignore_index=-1)
    torch.testing.assert_close(cross_entropy(logits, targets), expected, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# AdamW


def _model(seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=16, vocab_size=64, n_layer=2, n_head=2, n_embd=32))


@pytest.mark.parametrize("foreach", [False, True])
def test_adamw_100_steps_on_a_gpt_equal_torch(foreach):
    ours_model, ref_model = _model(), _model()
    kw = dict(lr=3e-3, betas=(0.9, 0.95), eps=1e-8)
    ours = AdamW(param_groups(ours_model, 0.1), weight_decay=0.0, foreach=foreach, **kw)
    ref = torch.optim.AdamW(param_groups(ref_model, 0.1), **kw)
    data = torch.randint(0, 64, (2000,), generator=torch.Generator().manual_seed(1))
    g = torch.Generator().manual_seed(2)
    for step in range(100):
        x, y = get_batch(data, 8, 16, g)
        lr = lr_at(step, max_lr=3e-3, min_lr=3e-4, warmup_steps=10, max_steps=100)
        for model, opt in ((ours_model, ours), (ref_model, ref)):
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            if opt is ours:
                opt.lr = lr
            else:
                for group in opt.param_groups:
                    group["lr"] = lr
            opt.step()
    assert ours.t == 100
    moved = 0.0
    for (name, p), q, p0 in zip(ours_model.named_parameters(), ref_model.parameters(), _model().parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
        moved = max(moved, (p - p0).abs().max().item())
    assert moved > 0.05  # the test is not vacuous: the weights travelled far


def test_adamw_state_dict_round_trip():
    model = _model()
    opt = AdamW(model.parameters(), lr=1e-2)
    _, loss = model(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))
    loss.backward()
    opt.step()
    state = opt.state_dict()
    other = AdamW(_model().parameters(), lr=5.0)
    other.load_state_dict(state)
    assert other.t == 1 and other.lr == 1e-2
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict()["v"], state["v"]))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1e-3, "0.1"])
def test_a_learning_rate_that_is_not_finite_is_a_clear_error(bad):
    with pytest.raises(ValueError, match="learning rate"):
        AdamW(_model().parameters(), lr=bad)
    opt = AdamW(_model().parameters())
    with pytest.raises(ValueError, match="learning rate"):
        opt.lr = bad
    with pytest.raises(ValueError, match="max_lr"):
        lr_at(0, max_lr=bad, min_lr=0.0, warmup_steps=1, max_steps=10)
    with pytest.raises(ValueError, match="max_lr"):
        TrainConfig(max_lr=bad)


# ----------------------------------------------------------------------------------------------
# schedule and clipping


def test_schedule_closed_form():
    kw = dict(max_lr=6e-4, min_lr=6e-5, warmup_steps=100, max_steps=1100)
    assert lr_at(0, **kw) == pytest.approx(6e-4 / 100, rel=1e-12)
    assert lr_at(99, **kw) == pytest.approx(6e-4, rel=1e-12)
    assert lr_at(100, **kw) == pytest.approx(6e-4, rel=1e-12)  # warm-up end
    assert lr_at(600, **kw) == pytest.approx((6e-4 + 6e-5) / 2, rel=1e-12)  # halfway through the cosine
    assert lr_at(350, **kw) == pytest.approx(6e-5 + (6e-4 - 6e-5) * (1 + math.cos(math.pi / 4)) / 2, rel=1e-12)
    assert lr_at(1100, **kw) == pytest.approx(6e-5, rel=1e-12)  # the end
    assert lr_at(5000, **kw) == 6e-5


def test_schedule_equals_torch_schedulers():
    W, N, hi, lo = 7, 40, 1.0, 0.1
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=hi)
    warm = torch.optim.lr_scheduler.LinearLR(opt, start_factor=1 / W, end_factor=1.0, total_iters=W - 1)
    cos = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=N - W, eta_min=lo)
    sched = torch.optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[W])
    for step in range(N + 1):
        assert lr_at(step, max_lr=hi, min_lr=lo, warmup_steps=W, max_steps=N) == pytest.approx(
            opt.param_groups[0]["lr"], rel=1e-9
        ), step
        opt.step()
        sched.step()


@pytest.mark.parametrize("max_norm", [0.05, 1e6])
def test_clipping_equals_clip_grad_norm_(max_norm):
    ours, ref = _model(), _model()
    x = torch.randint(0, 64, (4, 16), generator=torch.Generator().manual_seed(0))
    for m in (ours, ref):
        m(x, x)[1].backward()
    n_ours = clip_grad_norm(ours.parameters(), max_norm)
    n_ref = torch.nn.utils.clip_grad_norm_(ref.parameters(), max_norm)
    torch.testing.assert_close(n_ours, n_ref, rtol=0, atol=0)
    assert (n_ref > max_norm) == (max_norm == 0.05)  # one case clips, the other does not
    for p, q in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0)


# ----------------------------------------------------------------------------------------------
# the loop


def _markov(n: int, seed: int, V: int = 8) -> tuple[torch.Tensor, float]:
    """Tokens from a Markov chain with a sparse random transition matrix, and its entropy rate
    (nats per token): the lowest loss any model can reach, in closed form."""
    g = torch.Generator().manual_seed(0)
    P = torch.rand(V, V, generator=g, dtype=torch.float64) ** 4
    P = P / P.sum(1, keepdim=True)
    pi = torch.full((V,), 1 / V, dtype=torch.float64)
    for _ in range(500):
        pi = pi @ P  # the stationary distribution
    H = float(-(pi[:, None] * P * P.log()).sum())
    rng = torch.Generator().manual_seed(seed)
    out = [0]
    for _ in range(n - 1):
        out.append(int(torch.multinomial(P[out[-1]], 1, generator=rng)))
    return torch.tensor(out), H


def test_fit_learns_a_markov_chain_down_to_its_entropy_rate():
    train, H = _markov(6000, 1)
    val, _ = _markov(2000, 2)
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=8, n_layer=1, n_head=2, n_embd=32))
    before = evaluate(model, val, 16)
    losses, after = fit(
        model,
        train,
        val,
        steps=150,
        batch_size=16,
        block_size=16,
        max_lr=1e-2,
        min_lr=1e-3,
        warmup_steps=10,
        weight_decay=0.0,
        grad_clip=1.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert len(losses) == 150
    assert before > math.log(8) - 0.1  # untrained: about uniform
    assert H - 0.05 < after < H + 0.08, (H, after)


def _tiny_run(tmp_path, stop_at: int | None):
    torch.manual_seed(0)
    data = torch.randint(0, 32, (3000,), generator=torch.Generator().manual_seed(5))
    model = GPT(GPTConfig(block_size=8, vocab_size=32, n_layer=1, n_head=2, n_embd=16, dropout=0.1))
    cfg = TrainConfig(batch_size=4, max_steps=12, warmup_steps=3, eval_interval=5, eval_windows=8)
    trainer = Trainer(model, data[:2500], data[2500:], cfg)
    if stop_at is None:
        trainer.run(progress=False)
        return trainer
    trainer.run(steps=stop_at, progress=False)
    save_checkpoint(tmp_path / "run.pt", trainer)
    torch.manual_seed(123)  # anything that happens between the two runs must not matter
    torch.rand(10)
    resumed = load_checkpoint(tmp_path / "run.pt", data[:2500], data[2500:])
    resumed.run(progress=False)
    return resumed


def test_interrupted_and_resumed_run_gives_the_same_losses(tmp_path):
    whole = _tiny_run(tmp_path, None)
    resumed = _tiny_run(tmp_path, 5)
    assert resumed.step == whole.step == 12
    assert resumed.history.loss == whole.history.loss  # exactly: same batches, dropout masks, moments
    assert resumed.history.val_loss == whole.history.val_loss and resumed.history.val_step == [5, 10, 12]
    for p, q in zip(resumed.model.parameters(), whole.model.parameters()):
        assert torch.equal(p, q)


def test_checkpoint_of_another_configuration_is_a_clear_error(tmp_path):
    data = torch.randint(0, 32, (400,))
    trainer = Trainer(
        GPT(GPTConfig(block_size=8, vocab_size=32, n_layer=1, n_head=2, n_embd=16)),
        data,
        data,
        TrainConfig(max_steps=5, warmup_steps=1),
    )
    save_checkpoint(tmp_path / "a.pt", trainer)
    other = GPT(GPTConfig(block_size=8, vocab_size=32, n_layer=2, n_head=2, n_embd=16))
    with pytest.raises(ValueError, match="another configuration.*n_layer.*\\(1, 2\\)"):
        load_checkpoint(tmp_path / "a.pt", data, data, model=other)
    save_checkpoint(tmp_path / "b.pt", trainer, optimizer=False)
    with pytest.raises(ValueError, match="cannot resume"):
        load_checkpoint(tmp_path / "b.pt", data, data)
    (tmp_path / "c.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable llmcourse checkpoint"):
        load_checkpoint(tmp_path / "c.pt", data, data)


# ----------------------------------------------------------------------------------------------
# the shipped checkpoint


@pytest.fixture(scope="module")
def shakespeare():
    return shakespeare_data(512)


def _stated_val_loss() -> float:
    text = (REPO / "checkpoints" / "README.md").read_text()
    return float(re.search(r"validation loss \*\*([0-9.]+)\*\*", text).group(1))


def test_shipped_checkpoint_loads_and_reaches_its_stated_validation_loss(shakespeare):
    tok, _, val_ids = shakespeare
    assert CHECKPOINT.stat().st_size < 4_000_000
    model, ckpt_tok, state = load_pretrained(CHECKPOINT)
    assert ckpt_tok.merges == tok.merges  # the tokenizer regenerates exactly
    loss = evaluate(model, val_ids, model.config.block_size)
    assert loss == pytest.approx(state["meta"]["val_loss"], abs=1e-4)
    assert loss == pytest.approx(_stated_val_loss(), abs=0.006)  # the README rounds to 2 decimals
    assert loss < 4.5  # well below an untrained model (ln 512 = 6.24)
    assert state["meta"]["command"] == "python -m llmcourse.training --out checkpoints/shakespeare_gpt.pt"


def test_regenerating_the_checkpoint_reproduces_its_first_steps(tmp_path):
    """The regeneration command itself (``python -m llmcourse.training --out ...``: its ``main``), stopped
    after 25 of its 600 steps, against the shipped run's history (the whole regeneration is in
    bench/bench_training.py --regenerate)."""
    from llmcourse.training import main

    _, _, shipped = load_pretrained(CHECKPOINT)
    out = tmp_path / "gpt.pt"
    threads = torch.get_num_threads()
    try:
        main(["--out", str(out), "--stop-after", "25", "--quiet"])  # sets one thread, as its --threads says
    finally:
        torch.set_num_threads(threads)
    _, _, state = load_pretrained(out)
    assert state["train_config"] == shipped["train_config"]
    assert len(state["history"]["loss"]) == 25
    assert state["history"]["loss"] == pytest.approx(shipped["history"]["loss"][:25], rel=0.02)
    assert state["meta"]["command"] == f"python -m llmcourse.training --out {out}"
    assert state["meta"]["val_tokens"] == shipped["meta"]["val_tokens"]


def test_adamw_skips_a_parameter_without_gradient_as_torch_does():
    """torch counts steps per parameter: one without a gradient keeps its count and its moments."""
    g = torch.Generator().manual_seed(0)
    start = [torch.randn(3, generator=g), torch.randn(2, 2, generator=g)]
    grads = [[torch.randn(3, generator=g), torch.randn(2, 2, generator=g)] for _ in range(4)]
    ours_p = [p.clone().requires_grad_(True) for p in start]
    ref_p = [p.clone().requires_grad_(True) for p in start]
    ours, ref = AdamW(ours_p, lr=0.05, weight_decay=0.1), torch.optim.AdamW(ref_p, lr=0.05, weight_decay=0.1)
    for k, row in enumerate(grads):
        for ps in (ours_p, ref_p):
            for i, (p, grad) in enumerate(zip(ps, row)):
                p.grad = None if (i == 0 and k in (0, 2)) else grad.clone()
        ours.step()
        ref.step()
    for p, q in zip(ours_p, ref_p):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-7)
