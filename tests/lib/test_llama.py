"""Tests for llmcourse.llama, piece by piece, on small random models (fast, no files).

References: ``F.rms_norm``; the rotary formula written with complex numbers (each channel pair is
a complex number multiplied by e^(i * position * frequency)); ``F.scaled_dot_product_attention``
with ``enable_gqa``; SwiGLU with three separate matrices; the model's own uncached forward for
the KV cache; exact probability tables for sampling. The real SmolLM2 against Hugging Face is in
test_smollm2.py.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from llmcourse.llama import (
    Attention,
    KVCache,
    Llama,
    LlamaConfig,
    RMSNorm,
    SwiGLU,
    apply_rotary,
    grouped_query_attention,
    rotary_tables,
    sample_next,
)

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def tiny(**kw) -> LlamaConfig:
    base = dict(vocab_size=61, block_size=48, n_layer=2, n_head=6, n_kv_head=2, n_embd=48, hidden=80)
    base.update(kw)
    return LlamaConfig(**base)


def random_model(seed: int = 0, **kw) -> Llama:
    torch.manual_seed(seed)
    model = Llama(tiny(**kw)).eval()
    with torch.no_grad():  # non-trivial norm gains, so that a missing gain would show
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.5, 1.5)
    return model


# ----------------------------------------------------------------------------------------------
# config


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(n_kv_head=4), "multiple of n_kv_head"),
        (dict(n_embd=50), "not divisible"),
        (dict(n_embd=18, n_head=6, n_kv_head=2), "even"),
        (dict(n_layer=0), "positive int"),
        (dict(rope_theta=0.5), "rope_theta"),
    ],
)
def test_config_rejects_bad_shapes(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny(**bad)


# ----------------------------------------------------------------------------------------------
# the parts


@pytest.mark.parametrize("shape", [(5,), (2, 7, 16), (3, 1, 4, 32)])
@pytest.mark.parametrize("eps", [1e-5, 1e-2])
def test_rmsnorm_equals_torch(shape, eps):
    torch.manual_seed(1)
    norm = RMSNorm(shape[-1], eps)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(shape) * 3
    ref = F.rms_norm(x, (shape[-1],), norm.weight, eps)
    assert (norm(x) - ref).abs().max().item() < 1e-6


def test_rotary_tables_match_the_formula():
    hd, n, theta = 16, 40, 10000.0
    cos, sin = rotary_tables(hd, n, theta)
    assert cos.shape == sin.shape == (n, hd)
    for pos in (0, 1, 7, 39):
        for i in range(hd // 2):
            angle = pos * theta ** (-2 * i / hd)
            for c in (i, i + hd // 2):  # both channels of pair i share the angle
                assert abs(cos[pos, c].item() - math.cos(angle)) < 1e-5
                assert abs(sin[pos, c].item() - math.sin(angle)) < 1e-5


def test_apply_rotary_is_a_complex_rotation():
    # channel pair (i, i + hd/2) as the complex number x_i + j x_{i+hd/2}, times e^(j angle)
    torch.manual_seed(2)
    hd, T = 8, 11
    x = torch.randn(2, 3, T, hd, dtype=torch.float64)
    cos, sin = rotary_tables(hd, T, 500.0)
    got = apply_rotary(x, cos.double(), sin.double())
    z = torch.complex(x[..., : hd // 2], x[..., hd // 2 :])
    pos = torch.arange(T, dtype=torch.float64)[:, None]
    freq = 500.0 ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    rotated = z * torch.polar(torch.ones(T, hd // 2, dtype=torch.float64), pos * freq)
    want = torch.cat([rotated.real, rotated.imag], dim=-1)
    assert (got - want).abs().max().item() < 1e-5  # the tables are float32


def test_rotary_scores_depend_only_on_the_offset():
    torch.manual_seed(3)
    hd = 16
    q, k = torch.randn(hd), torch.randn(hd)
    cos, sin = rotary_tables(hd, 64)

    def score(m, n):
        return (apply_rotary(q, cos[m], sin[m]) @ apply_rotary(k, cos[n], sin[n])).item()

    assert score(5, 2) == pytest.approx(score(40, 37), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)


@pytest.mark.parametrize("H, Hkv", [(6, 2), (4, 4), (8, 1)])
@pytest.mark.parametrize("past", [0, 5])
def test_grouped_query_attention_equals_torch(H, Hkv, past):
    torch.manual_seed(4)
    B, T, hd = 2, 7, 16
    q = torch.randn(B, H, T, hd)
    k, v = torch.randn(B, Hkv, past + T, hd), torch.randn(B, Hkv, past + T, hd)
    got = grouped_query_attention(q, k, v, past)
    # the reference: query t is position past + t and sees keys 0 .. past + t
    mask = torch.arange(past + T)[None, :] <= (past + torch.arange(T))[:, None]
    want = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=True)
    assert (got - want).abs().max().item() < 1e-5


def test_attention_module_is_the_written_out_formula():
    torch.manual_seed(5)
    config = tiny()
    attn = Attention(config)
    B, T, C, H, Hkv, hd = 2, 9, config.n_embd, config.n_head, config.n_kv_head, config.head_dim
    x = torch.randn(B, T, C)
    cos, sin = rotary_tables(hd, T, config.rope_theta)
    W = attn.qkv_proj.weight
    q = (x @ W[: H * hd].T).view(B, T, H, hd).transpose(1, 2)
    k = (x @ W[H * hd : (H + Hkv) * hd].T).view(B, T, Hkv, hd).transpose(1, 2)
    v = (x @ W[(H + Hkv) * hd :].T).view(B, T, Hkv, hd).transpose(1, 2)
    y = grouped_query_attention(apply_rotary(q, cos, sin), apply_rotary(k, cos, sin), v)
    want = y.transpose(1, 2).reshape(B, T, H * hd) @ attn.o_proj.weight.T
    got = attn(x, cos[:, None], sin[:, None])
    assert (got - want).abs().max().item() < 1e-5


def test_swiglu_equals_three_matrices():
    torch.manual_seed(6)
    config = tiny()
    mlp = SwiGLU(config)
    W_gate, W_up = mlp.gate_up_proj.weight.chunk(2)
    x = torch.randn(3, 5, config.n_embd)
    want = (F.silu(x @ W_gate.T) * (x @ W_up.T)) @ mlp.down_proj.weight.T
    assert (mlp(x) - want).abs().max().item() < 1e-6


def test_kv_cache_is_preallocated_and_bounded():
    cache = KVCache(1, 2, 5, 4)
    buffer = cache.k.data_ptr()
    k, v = cache.append(torch.ones(1, 2, 3, 4), torch.ones(1, 2, 3, 4))
    assert k.shape == (1, 2, 3, 4) and cache.length == 3
    cache.append(torch.ones(1, 2, 2, 4), torch.ones(1, 2, 2, 4))
    assert cache.k.data_ptr() == buffer  # written in place, never reallocated
    with pytest.raises(ValueError, match="holds 5 positions"):
        cache.append(torch.ones(1, 2, 1, 4), torch.ones(1, 2, 1, 4))


# ----------------------------------------------------------------------------------------------
# the model


def test_tied_and_untied_heads():
    tied, untied = random_model(tie_embeddings=True), random_model(tie_embeddings=False)
    assert tied.lm_head.weight is tied.embed.weight
    assert untied.lm_head.weight is not untied.embed.weight
    assert untied.num_params() - tied.num_params() == tied.config.vocab_size * tied.config.n_embd
    assert not any(name.endswith("bias") for name, _ in untied.named_parameters())


def test_cached_forward_in_chunks_equals_the_full_forward():
    model = random_model()
    idx = torch.randint(0, model.config.vocab_size, (2, 20))
    with torch.inference_mode():
        full = model.lm_head(model.hidden_states(idx))  # (B, T, V)
        caches = model.new_caches(2, 20)
        pieces = [
            model.lm_head(model.hidden_states(idx[:, a:b], caches)) for a, b in [(0, 7), (7, 8), (8, 15), (15, 20)]
        ]
    assert (torch.cat(pieces, dim=1) - full).abs().max().item() < 1e-5


def test_loss_is_cross_entropy():
    model = random_model()
    idx = torch.randint(0, model.config.vocab_size, (2, 10))
    logits, loss = model(idx[:, :-1], idx[:, 1:])
    assert loss.item() == pytest.approx(F.cross_entropy(logits.reshape(-1, 61), idx[:, 1:].reshape(-1)).item())


@pytest.mark.parametrize("tie", [True, False])
def test_generate_cached_equals_uncached(tie):
    model = random_model(tie_embeddings=tie)
    prompt = torch.randint(0, model.config.vocab_size, (2, 5))
    cached = model.generate(prompt, 30, greedy=True)
    plain = model.generate(prompt, 30, greedy=True, use_cache=False)
    assert cached.shape == (2, 35)
    assert torch.equal(cached, plain)
    assert torch.equal(cached[:, :5], prompt)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    s1 = model.generate(prompt, 20, temperature=0.9, top_k=10, top_p=0.9, generator=g1)
    s2 = model.generate(prompt, 20, temperature=0.9, top_k=10, top_p=0.9, generator=g2, use_cache=False)
    assert torch.equal(s1, s2)


def test_generate_stops_at_stop_tokens():
    model = random_model()
    prompt = torch.randint(0, model.config.vocab_size, (1, 4))
    full = model.generate(prompt, 20, greedy=True)
    first = full[0, 4 + 3].item()  # the fourth new token
    stopped = model.generate(prompt, 20, greedy=True, stop_tokens=[first])
    n_new = stopped.size(1) - 4
    assert n_new <= 4 and stopped[0, -1].item() == first and torch.equal(stopped, full[:, : 4 + n_new])


def test_bad_input_is_refused():
    model = random_model()
    V, ctx = model.config.vocab_size, model.config.block_size
    with pytest.raises(ValueError, match="more than the context"):
        model(torch.zeros(1, ctx + 1, dtype=torch.long))
    with pytest.raises(ValueError, match="exceed the context"):
        model.generate(torch.zeros(1, ctx - 3, dtype=torch.long), 10)
    with pytest.raises(ValueError, match="outside"):
        model(torch.tensor([[0, V]]))
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.zeros(1, 3, dtype=torch.long), 2, temperature=0)
    with pytest.raises(ValueError, match="top_p"):
        model.generate(torch.zeros(1, 3, dtype=torch.long), 2, top_p=1.5)


# ----------------------------------------------------------------------------------------------
# sampling


def test_sample_next_greedy_is_argmax():
    logits = torch.randn(4, 30)
    assert torch.equal(sample_next(logits, greedy=True), logits.argmax(-1))


def nucleus_reference(probs: list[float], top_p: float) -> set[int]:
    """The smallest set of most likely tokens whose probabilities reach top_p, by hand."""
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    kept, mass = set(), 0.0
    for i in order:
        kept.add(i)
        mass += probs[i]
        if mass >= top_p:
            break
    return kept


@pytest.mark.parametrize(
    "top_k, top_p, temperature", [(3, None, 1.0), (None, 0.6, 1.0), (5, 0.8, 0.5), (None, 0.3, 2.0)]
)
def test_sample_next_keeps_the_right_tokens_with_the_right_frequencies(top_k, top_p, temperature):
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -0.5, -1.0, 1.5, 0.2]])
    probs = (logits[0] / temperature).softmax(-1).tolist()
    allowed = set(range(8))
    if top_k is not None:
        allowed = set(sorted(range(8), key=lambda i: -probs[i])[:top_k])
    if top_p is not None:
        restricted = [p if i in allowed else 0.0 for i, p in enumerate(probs)]
        total = sum(restricted)
        allowed = nucleus_reference([p / total for p in restricted], top_p)
    want = torch.tensor([probs[i] if i in allowed else 0.0 for i in range(8)])
    want /= want.sum()
    g = torch.Generator().manual_seed(0)
    n = 20000
    draws = sample_next(logits.expand(n, 8), temperature, top_k, top_p, generator=g)
    freq = torch.bincount(draws, minlength=8).double() / n
    assert set(torch.nonzero(freq).flatten().tolist()) == allowed
    assert (freq - want).abs().max().item() < 0.015  # ~4 standard errors at n = 20000
