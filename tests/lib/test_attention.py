"""Tests for llmcourse.attention (assignment 04's answer key).

References are PyTorch's own: ``F.softmax``, ``F.scaled_dot_product_attention`` and
``nn.MultiheadAttention`` with our weights copied into it.

Tolerances: float64 comparisons use atol 1e-12 (the computations differ only in rounding order);
float32 comparisons use atol 1e-6 on O(1) values (float32 epsilon is 1.2e-7, and a dot product of
d = 16..64 terms accumulates a few ulps). MultiHeadAttention adds three input projections and an
output projection around the attention, so its comparisons allow 10x those (1e-11, 1e-5).
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from llmcourse.attention import (
    KVCache,
    MultiHeadAttention,
    attention_distribution,
    causal_mask,
    merge_heads,
    padding_mask,
    scaled_dot_product_attention,
    softmax,
    split_heads,
)

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


ATOL = {torch.float64: 1e-12, torch.float32: 1e-6}
DTYPES = [torch.float64, torch.float32]


def randn(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


# ----------------------------------------------------------------------------------------------
# softmax and the single-query distribution


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_matches_torch(dtype):
    x = randn(4, 5, 7, dtype=dtype) * 10
    for dim in (0, 1, -1):
        torch.testing.assert_close(softmax(x, dim=dim), F.softmax(x, dim=dim), atol=ATOL[dtype], rtol=0)


def test_softmax_is_stable_for_large_inputs():
    x = torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]])
    p = softmax(x)
    assert torch.isfinite(p).all()
    torch.testing.assert_close(p, F.softmax(x, dim=-1))


def test_softmax_all_masked_row_is_zeros_not_nan():
    x = torch.tensor([[0.0, float("-inf"), 1.0], [float("-inf")] * 3])
    p = softmax(x)
    torch.testing.assert_close(p[0], F.softmax(x[0], dim=-1))
    assert torch.equal(p[1], torch.zeros(3))
    # and the gradient through it is finite
    x = x.clone().requires_grad_()
    (softmax(x) * torch.arange(3.0)).sum().backward()
    assert torch.isfinite(x.grad).all()


def test_attention_distribution():
    query, keys = randn(3, 8), randn(3, 5, 8, seed=1)
    w = attention_distribution(query, keys)
    torch.testing.assert_close(w, F.softmax(torch.einsum("bd,btd->bt", query, keys), dim=-1))
    torch.testing.assert_close(w.sum(-1), torch.ones(3, dtype=w.dtype))
    ws = attention_distribution(query, keys, score="scaled_dot")
    torch.testing.assert_close(ws, F.softmax(torch.einsum("bd,btd->bt", query, keys) / math.sqrt(8), dim=-1))
    # a key equal to a (large) query is the relevant one: it gets the most weight
    q = torch.tensor([3.0, 0.0, 0.0])
    ks = torch.tensor([[0.0, 1.0, 0.0], [3.0, 0.0, 0.0], [-3.0, 0.0, 0.0]])
    assert attention_distribution(q, ks).argmax().item() == 1


# ----------------------------------------------------------------------------------------------
# scaled dot-product attention against F.scaled_dot_product_attention


def _reference(q, k, v, mask=None, causal=False):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("use_padding", [False, True])
def test_sdpa_matches_torch(dtype, causal, use_padding):
    B, H, T, d = 3, 4, 9, 16
    q, k, v = (randn(B, H, T, d, dtype=dtype, seed=s) for s in (1, 2, 3))
    mask = padding_mask(torch.tensor([9, 5, 1]), T) if use_padding else None
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
    ref_mask = mask
    if causal and use_padding:  # torch takes either is_causal or attn_mask: combine them by hand
        ref_mask, causal_ref = mask & causal_mask(T), False
    else:
        causal_ref = causal
    ref = _reference(q, k, v, ref_mask, causal_ref)
    assert out.shape == (B, H, T, d) and weights.shape == (B, H, T, T)
    torch.testing.assert_close(out, ref, atol=ATOL[dtype], rtol=0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, H, T, dtype=dtype), atol=ATOL[dtype], rtol=0)
    # out is the expected value of v under the weights
    torch.testing.assert_close(out, weights @ v, atol=ATOL[dtype], rtol=0)
    if causal:
        assert (weights.masked_select(~causal_mask(T)) == 0).all()
    if use_padding:
        assert (weights[1, :, :, 5:] == 0).all() and (weights[2, :, :, 1:] == 0).all()


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_without_heads_and_with_tq_ne_tk(dtype):
    q = randn(2, 3, 8, dtype=dtype)
    k, v = randn(2, 6, 8, dtype=dtype, seed=1), randn(2, 6, 5, dtype=dtype, seed=2)  # dv may differ
    out, weights = scaled_dot_product_attention(q, k, v)
    assert out.shape == (2, 3, 5) and weights.shape == (2, 3, 6)
    torch.testing.assert_close(out, _reference(q, k, v), atol=ATOL[dtype], rtol=0)


def test_sdpa_causal_with_fewer_queries_aligns_bottom_right():
    # the last Tq positions of a causal sequence: what a KV cache needs
    Tq, Tk = 3, 7
    q, k, v = randn(2, 2, Tq, 8), randn(2, 2, Tk, 8, seed=1), randn(2, 2, Tk, 8, seed=2)
    out, weights = scaled_dot_product_attention(q, k, v, causal=True)
    ref = _reference(q, k, v, mask=causal_mask(Tk)[Tk - Tq :])
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=0)
    # ... which equals the last rows of full causal attention over all Tk queries
    q_full = torch.cat([randn(2, 2, Tk - Tq, 8, seed=5), q], dim=2)
    out_full, _ = scaled_dot_product_attention(q_full, k, v, causal=True)
    torch.testing.assert_close(out, out_full[:, :, -Tq:], atol=1e-12, rtol=0)


def test_sdpa_fully_masked_rows_are_zero_like_torch():
    B, H, T, d = 2, 2, 4, 8
    q, k, v = randn(B, H, T, d), randn(B, H, T, d, seed=1), randn(B, H, T, d, seed=2)
    mask = torch.ones(B, 1, T, T, dtype=torch.bool)
    mask[0, 0, 2] = False  # query 2 of sentence 0 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert (weights[0, :, 2] == 0).all() and (out[0, :, 2] == 0).all()
    torch.testing.assert_close(out, _reference(q, k, v, mask), atol=1e-12, rtol=0)
    # a zero-length sentence: every row masked
    out, weights = scaled_dot_product_attention(q, k, v, mask=padding_mask(torch.tensor([0, 4]), T))
    assert (out[0] == 0).all() and (weights[0] == 0).all()


def test_masks():
    assert torch.equal(causal_mask(3), torch.tensor([[1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool))
    m = padding_mask(torch.tensor([2, 0, 3]), 3)
    assert m.shape == (3, 1, 1, 3) and m.dtype == torch.bool
    assert m[:, 0, 0].tolist() == [[True, True, False], [False, False, False], [True, True, True]]


def test_split_and_merge_heads():
    x = randn(2, 5, 12)
    h = split_heads(x, 3)
    assert h.shape == (2, 3, 5, 4)
    assert torch.equal(h[:, 1], x[:, :, 4:8])  # head 1 = channels 4..7
    assert torch.equal(merge_heads(h), x)


# ----------------------------------------------------------------------------------------------
# MultiHeadAttention against nn.MultiheadAttention with the same weights


def _torch_mha(C=32, H=4, bias=True, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(C, H, bias=bias, batch_first=True).to(dtype).eval()
    with torch.no_grad():  # torch zero-inits the biases: randomise them so they are tested
        for p in theirs.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return theirs


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("bias", [True, False])
def test_mha_matches_torch(dtype, bias):
    theirs = _torch_mha(bias=bias, dtype=dtype)
    ours = MultiHeadAttention.from_torch(theirs).eval()
    x = randn(3, 7, 32, dtype=dtype, seed=4)
    out, weights = ours(x)
    ref, ref_w = theirs(x, x, x, need_weights=True, average_attn_weights=False)
    _, ref_avg = theirs(x, x, x, need_weights=True, average_attn_weights=True)
    assert out.shape == (3, 7, 32) and weights.shape == (3, 4, 7, 7)
    tol = dict(atol=10 * ATOL[dtype], rtol=0)
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(weights, ref_w, **tol)
    torch.testing.assert_close(weights.mean(dim=1), ref_avg, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mha_masks_match_torch(dtype):
    theirs = _torch_mha(dtype=dtype, seed=1)
    x = randn(3, 6, 32, dtype=dtype, seed=5)
    lengths = torch.tensor([6, 4, 2])
    tol = dict(atol=10 * ATOL[dtype], rtol=0)
    # padding: torch's key_padding_mask is True where a key is *ignored*; ours is True = may attend
    ours = MultiHeadAttention.from_torch(theirs).eval()
    pad = padding_mask(lengths, 6)
    out, w = ours(x, mask=pad)
    ref, ref_w = theirs(x, x, x, key_padding_mask=~pad[:, 0, 0], average_attn_weights=False)
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(w, ref_w, **tol)
    # causal, and causal + padding
    causal = MultiHeadAttention.from_torch(theirs, causal=True).eval()
    out, w = causal(x)
    ref, ref_w = theirs(x, x, x, attn_mask=~causal_mask(6), average_attn_weights=False)
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(w, ref_w, **tol)
    out, w = causal(x, mask=pad)
    ref, ref_w = theirs(x, x, x, attn_mask=~causal_mask(6), key_padding_mask=~pad[:, 0, 0], average_attn_weights=False)
    torch.testing.assert_close(out, ref, **tol)
    torch.testing.assert_close(w, ref_w, **tol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_mha_kv_cache_step_by_step_equals_full(dtype):
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, causal=True).to(dtype).eval()
    x = randn(2, 8, 32, dtype=dtype, seed=6)
    full, _ = mha(x)
    cache = KVCache()
    first, _ = mha(x[:, :3], kv_cache=cache)  # prefill three positions
    steps = [first]
    for t in range(3, 8):  # then one position at a time
        y, w = mha(x[:, t : t + 1], kv_cache=cache)
        assert w.shape == (2, 4, 1, t + 1) and cache.length == t + 1
        steps.append(y)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=10 * ATOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("causal", [False, True])
def test_mha_without_weights_matches_torch(dtype, causal):
    """need_weights=False (PyTorch's fused kernel) gives the same out as nn.MultiheadAttention,
    with no mask, a padding mask, and both with the causal mask; weights come back as None."""
    theirs = _torch_mha(dtype=dtype, seed=2)
    ours = MultiHeadAttention.from_torch(theirs, causal=causal).eval()
    x = randn(3, 6, 32, dtype=dtype, seed=7)
    pad = padding_mask(torch.tensor([6, 4, 1]), 6)
    tol = dict(atol=10 * ATOL[dtype], rtol=0)
    attn_mask = ~causal_mask(6) if causal else None
    for mask in (None, pad):
        out, w = ours(x, mask=mask, need_weights=False)
        key_padding = None if mask is None else ~mask[:, 0, 0]
        ref = theirs(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding, need_weights=False)[0]
        assert w is None
        torch.testing.assert_close(out, ref, **tol)
        torch.testing.assert_close(out, ours(x, mask=mask)[0], **tol)  # and the explicit path


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("need_weights", [True, False])
def test_mha_kv_cache_in_chunks_equals_full(dtype, need_weights):
    """Prefill, then chunks of 1, 3 and 2 new positions (Tq < Tk: the causal rows align bottom-right)."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, causal=True).to(dtype).eval()
    x = randn(2, 9, 32, dtype=dtype, seed=8)
    full, _ = mha(x)
    for cache in (KVCache(), KVCache(max_len=9)):
        outs = []
        for a, b in ((0, 3), (3, 4), (4, 7), (7, 9)):
            y, w = mha(x[:, a:b], kv_cache=cache, need_weights=need_weights)
            assert (w is None) != need_weights and cache.length == b
            outs.append(y)
        torch.testing.assert_close(torch.cat(outs, dim=1), full, atol=10 * ATOL[dtype], rtol=0)


@pytest.mark.parametrize("bias", [True, False])
def test_packed_qkv_equals_separate_projections(bias):
    theirs = _torch_mha(bias=bias, seed=3)
    ours = MultiHeadAttention.from_torch(theirs, causal=True).eval()
    x = randn(2, 5, 32, seed=9)
    plain = ours(x)
    with ours.packed_qkv() as packed:
        assert packed is ours
        inside = ours(x)
    torch.testing.assert_close(inside[0], plain[0], atol=1e-11, rtol=0)
    torch.testing.assert_close(inside[1], plain[1], atol=1e-11, rtol=0)
    ref = theirs(x, x, x, attn_mask=~causal_mask(5), need_weights=False)[0]
    torch.testing.assert_close(inside[0], ref, atol=1e-11, rtol=0)
    # on leaving the block, the layer reads its weights again
    with torch.no_grad():
        ours.v_proj.weight.zero_()
        if bias:
            ours.v_proj.bias.zero_()
    after, _ = ours(x)  # every value is 0 now, so out is out_proj(0) = its bias
    assert torch.equal(after, ours.out_proj.bias.detach().expand_as(after) if bias else torch.zeros_like(after))
    # the packed copy is differentiable: gradients reach the three Linear layers
    with ours.packed_qkv():
        ours(x)[0].sum().backward()
    assert all(p.weight.grad is not None for p in (ours.q_proj, ours.k_proj, ours.v_proj))


def test_kv_cache_preallocates_and_returns_views():
    cache = KVCache(max_len=6)
    assert cache.length == 0 and cache.k is None and cache.v is None
    k1, v1 = randn(2, 3, 2, 4, seed=1), randn(2, 3, 2, 5, seed=2)  # dv may differ from d
    k, v = cache.append(k1, v1)
    assert torch.equal(k, k1) and torch.equal(v, v1) and cache.length == 2
    ptr = k.data_ptr()
    k2, v2 = randn(2, 3, 1, 4, seed=3), randn(2, 3, 1, 5, seed=4)
    k, v = cache.append(k2, v2)
    assert k.shape == (2, 3, 3, 4) and v.shape == (2, 3, 3, 5)
    assert torch.equal(k, torch.cat([k1, k2], dim=2)) and torch.equal(v, torch.cat([v1, v2], dim=2))
    assert k.data_ptr() == ptr  # written in place: no new tensor per step
    assert torch.equal(cache.k, k) and torch.equal(cache.v, v)
    cache.reset()
    assert cache.length == 0 and cache.k is None
    k, _ = cache.append(k2, v2)
    assert torch.equal(k, k2) and k.data_ptr() == ptr  # the buffers are reused


def test_kv_cache_grows_past_max_len_and_refuses_mismatches():
    cache = KVCache()
    parts = [randn(1, 2, n, 4, seed=n) for n in (1, 1, 3, 5, 1)]
    for part in parts:
        k, v = cache.append(part, part * 2)
    want = torch.cat(parts, dim=2)
    assert torch.equal(k, want) and torch.equal(v, want * 2) and cache.length == 11
    with pytest.raises(ValueError, match="reset"):
        cache.append(randn(2, 2, 1, 4), randn(2, 2, 1, 4))  # another batch size
    cache.reset()
    k, _ = cache.append(randn(2, 2, 1, 4, dtype=torch.float32), randn(2, 2, 1, 4, dtype=torch.float32))
    assert k.shape == (2, 2, 1, 4) and k.dtype == torch.float32  # after reset: new buffers fit
    with pytest.raises(ValueError, match="max_len"):
        KVCache(max_len=0)
    flat = KVCache()  # (B, T, d) without a head dim works too, as scaled_dot_product_attention does
    a, b = randn(2, 3, 4, seed=1), randn(2, 2, 4, seed=2)
    flat.append(a, a)
    k, _ = flat.append(b, b)
    assert torch.equal(k, torch.cat([a, b], dim=1))


def test_mha_dropout_only_in_training():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, dropout=0.5)
    x = randn(1, 5, 16, dtype=torch.float32)
    mha.eval()
    assert torch.equal(mha(x)[0], mha(x)[0])
    mha.train()
    assert not torch.equal(mha(x)[0], mha(x)[0])


# ----------------------------------------------------------------------------------------------
# bad input: a clear message, not a traceback from inside torch


@pytest.mark.parametrize(
    "shapes, match",
    [
        (((2, 4, 5, 8), (2, 4, 5, 6), (2, 4, 5, 8)), "same head dim"),
        (((2, 4, 5, 8), (2, 4, 6, 8), (2, 4, 5, 8)), "same number of positions"),
        (((2, 4, 5, 8), (2, 3, 5, 8), (2, 3, 5, 8)), "leading dims"),
        (((2, 4, 5, 8), (2, 5, 8), (2, 5, 8)), "same number of dimensions"),
        (((5, 8), (5, 8), (5, 8)), r"\(B, H, T, d\) or \(B, T, d\)"),
    ],
)
def test_sdpa_shape_errors(shapes, match):
    q, k, v = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match=match):
        scaled_dot_product_attention(q, k, v)


def test_sdpa_mask_errors():
    q = k = v = torch.zeros(2, 4, 5, 8)
    with pytest.raises(TypeError, match="torch.bool"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(2, 1, 1, 5))
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(2, 1, 1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 1, 1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):  # would grow the scores
        scaled_dot_product_attention(q, k, v, mask=torch.ones(1, 2, 4, 5, 5, dtype=torch.bool))
    with pytest.raises(TypeError, match="torch.Tensor"):
        scaled_dot_product_attention(q, k, v, mask=[[True]])
    with pytest.raises(ValueError, match="at least as many keys"):
        scaled_dot_product_attention(q, k[:, :, :3], v[:, :, :3], causal=True)


def test_non_tensor_and_dtype_errors():
    x = torch.zeros(2, 5, 8)
    with pytest.raises(TypeError, match="q must be a torch.Tensor, got list"):
        scaled_dot_product_attention([[0.0]], x, x)
    with pytest.raises(TypeError, match="floating-point"):
        scaled_dot_product_attention(x.long(), x, x)
    with pytest.raises(TypeError, match="share a dtype"):
        scaled_dot_product_attention(x, x.double(), x)
    with pytest.raises(TypeError, match="torch.Tensor"):
        softmax([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        softmax(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="same last dim"):
        attention_distribution(torch.zeros(4), torch.zeros(3, 5))
    with pytest.raises(ValueError, match="'dot' or 'scaled_dot'"):
        attention_distribution(torch.zeros(4), torch.zeros(3, 4), score="cosine")
    with pytest.raises(TypeError, match="integer"):
        padding_mask(torch.tensor([1.0, 2.0]), 3)
    with pytest.raises(ValueError, match=r"\[0, T=3\]"):
        padding_mask(torch.tensor([1, 4]), 3)


def test_head_errors():
    with pytest.raises(ValueError, match="not divisible"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="dividing C=30"):
        split_heads(torch.zeros(1, 2, 30), 4)
    with pytest.raises(ValueError, match=r"\(B, T, C\)"):
        split_heads(torch.zeros(2, 30), 3)
    with pytest.raises(ValueError, match=r"\(B, H, T, d\)"):
        merge_heads(torch.zeros(2, 3, 4))
    mha = MultiHeadAttention(32, 4)
    with pytest.raises(ValueError, match=r"C=32"):
        mha(torch.zeros(2, 5, 16))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        mha("hello")
    with pytest.raises(TypeError, match="nn.MultiheadAttention"):
        MultiHeadAttention.from_torch(nn.Linear(4, 4))
