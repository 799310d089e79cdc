"""Attention: pay more attention to the tokens that are relevant.

A word's meaning depends on its neighbours ("bank" next to "river" vs next to "loan"). Attention
lets every position look at the other positions and take what it needs from them, in three steps:

1. **Score.** A *query* vector ``q`` (what am I looking for?) is compared with the *key* ``k_t`` of
   every input position t (what do I contain?) by a score function ``g(q, k_t)``. The simplest
   score is the dot product ``q . k_t``: large when the two point the same way.

2. **Distribution.** A softmax turns the T scores into weights ``a_t >= 0`` that sum to 1: a
   probability distribution over the inputs. Relevant positions get most of the mass.

3. **Expected value.** The output is the expected *value* under that distribution,
   ``sum_t a_t v_t``: a weighted average of the value vectors, dominated by the relevant ones.

Everything in a transformer's attention is this idea made fast and flexible:

* **Scaled dot product.** With d-dimensional random vectors the dot product has variance ~d, so
  for large d the softmax saturates (one weight ~1, the rest ~0) and its gradients vanish.
  Dividing the scores by sqrt(d) keeps their variance ~1 ("Attention is all you need", s.3.2.1).
* **Matrices.** Stacking the T queries, keys and values as rows of Q, K, V computes every
  position's output at once: ``softmax(Q K^T / sqrt(d)) V``.
* **Masks.** A boolean mask says which (query, key) pairs may interact (True = may attend). A
  *causal* mask stops position t from seeing the future (t' > t), which a language model that
  predicts the next token must not see; a *padding* mask hides the filler tokens that make
  sentences of different lengths fit in one batch. Masked scores become -inf, i.e. weight 0.
* **Multiple heads.** Split the C channels into H heads of C/H channels, attend in each head
  separately (each can look for something different: the previous word, the subject of the verb)
  and concatenate. Same cost as one big head, more kinds of relation.

Read top to bottom: :func:`softmax`, :func:`attention_distribution` (one query, the idea itself),
:func:`scaled_dot_product_attention` (all queries, with masks), :func:`causal_mask`,
:func:`padding_mask`, :func:`split_heads` / :func:`merge_heads`, and :class:`MultiHeadAttention`,
the layer a transformer uses. :class:`KVCache` keeps past keys and values so that generating text
one token at a time does not recompute them (see ``transformer.GPT.generate``).

Usage::

    q = k = v = torch.randn(2, 4, 10, 16)              # (B, H, T, d)
    out, weights = scaled_dot_product_attention(q, k, v, causal=True)
    mha = MultiHeadAttention(n_embd=64, n_head=4, causal=True)
    y, weights = mha(torch.randn(2, 10, 64))           # (B, T, C), (B, H, T, T)

Shapes follow nanoGPT's names: B batch, H heads, T sequence length (Tq queries, Tk keys),
C = n_embd channels, d = C / H channels per head.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "softmax",
    "attention_distribution",
    "scaled_dot_product_attention",
    "causal_mask",
    "padding_mask",
    "split_heads",
    "merge_heads",
    "KVCache",
    "MultiHeadAttention",
]


# ----------------------------------------------------------------------------------------------
# input checks: a clear message here beats a shape error from deep inside torch


def _check_tensor(x, name: str, floating: bool = True) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    for name, t in (("q", q), ("k", k), ("v", v)):
        _check_tensor(t, name)
        if t.dim() not in (3, 4):
            raise ValueError(f"{name} must be (B, H, T, d) or (B, T, d), got shape {tuple(t.shape)}")
    if not q.dim() == k.dim() == v.dim():
        raise ValueError(
            f"q, k, v must have the same number of dimensions, got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if not q.shape[:-2] == k.shape[:-2] == v.shape[:-2]:
        lead = "(B, H)" if q.dim() == 4 else "(B,)"
        raise ValueError(
            f"q, k, v must agree on the leading dims {lead}, got shapes "
            f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}"
        )
    if k.size(-2) != v.size(-2):
        raise ValueError(
            f"k and v must have the same number of positions Tk, got k {tuple(k.shape)} and v {tuple(v.shape)}"
        )
    if q.size(-1) != k.size(-1):
        raise ValueError(
            f"q and k must have the same head dim d (the dot product needs it), got "
            f"q {tuple(q.shape)} and k {tuple(k.shape)}"
        )
    if not q.dtype == k.dtype == v.dtype:
        raise TypeError(f"q, k, v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not q.device == k.device == v.device:
        raise ValueError(f"q, k, v must be on one device, got {q.device}, {k.device}, {v.device}")


def _check_mask(mask, scores_shape: torch.Size, device: torch.device) -> None:
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor of dtype bool, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        raise TypeError(
            f"mask must have dtype torch.bool (True = may attend), got {mask.dtype}; "
            "an additive float mask (0 / -inf) is not accepted, use mask.bool() or "
            "(mask == 0) as appropriate"
        )
    want = tuple(scores_shape)
    try:
        ok = mask.dim() <= len(want) and torch.broadcast_shapes(mask.shape, want) == want
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the attention "
            f"scores' shape {want} (B, H, Tq, Tk); e.g. a padding mask is (B, 1, 1, Tk), "
            f"a causal mask (Tq, Tk)"
        )
    if mask.device != device:
        raise ValueError(f"mask is on {mask.device} but q is on {device}")


# ----------------------------------------------------------------------------------------------
# the idea: a softmax distribution over the inputs


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """exp(x) / sum(exp(x)) along ``dim``, computed without overflow.

    exp(1000) is inf in floating point, so we subtract each row's maximum first: softmax(x - m)
    equals softmax(x) for any constant m, and now the largest exponent is exp(0) = 1.
    A row that is entirely -inf (every position masked) has no distribution; we return zeros
    for it rather than NaN, which is also what ``F.scaled_dot_product_attention`` does (since
    PyTorch 2.5); ``torch.softmax`` itself returns NaN for such a row (0 / 0).
    """
    _check_tensor(x, "x")
    m = x.detach().amax(dim=dim, keepdim=True)
    m = torch.where(torch.isfinite(m), m, torch.zeros_like(m))  # all -inf row: shift by 0
    e = torch.exp(x - m)
    s = e.sum(dim=dim, keepdim=True)
    return e / torch.where(s == 0, torch.ones_like(s), s)  # all -inf row: 0 / 1 = 0


def attention_distribution(query: Tensor, keys: Tensor, score: str = "dot") -> Tensor:
    """How much one query attends to each of T keys: softmax_t g(query, keys[t]).

    query (..., d), keys (..., T, d) -> weights (..., T), non-negative, summing to 1.
    ``score`` picks g: "dot" is ``q . k``; "scaled_dot" is ``q . k / sqrt(d)``.
    This is the teaching version for a single query; :func:`scaled_dot_product_attention`
    does all queries at once.
    """
    _check_tensor(query, "query")
    _check_tensor(keys, "keys")
    if keys.dim() < 2:
        raise ValueError(f"keys must be (..., T, d), got shape {tuple(keys.shape)}")
    if query.size(-1) != keys.size(-1):
        raise ValueError(
            f"query and keys must have the same last dim d, got query {tuple(query.shape)} and keys {tuple(keys.shape)}"
        )
    if score not in ("dot", "scaled_dot"):
        raise ValueError(f"score must be 'dot' or 'scaled_dot', got {score!r}")
    scores = (keys @ query.unsqueeze(-1)).squeeze(-1)  # (..., T, d) @ (..., d, 1) -> (..., T)
    if score == "scaled_dot":
        scores = scores / math.sqrt(query.size(-1))
    return softmax(scores, dim=-1)


# ----------------------------------------------------------------------------------------------
# all queries at once, with masks


def causal_mask(T: int, device=None) -> Tensor:
    """(T, T) bool, True on and below the diagonal: position t may attend to positions <= t."""
    return torch.ones(T, T, dtype=torch.bool, device=device).tril()


def _causal_rows(Tq: int, Tk: int, device=None) -> Tensor | None:
    """The last Tq rows of causal_mask(Tk) (queries are the newest positions), or None if nothing is hidden.

    Built directly, O(Tq * Tk) rather than O(Tk^2). A single query is the newest position: it may
    see every key, so no mask at all (the common case when generating with a KV cache).
    """
    if Tq > Tk:
        raise ValueError(f"causal attention needs at least as many keys as queries, got Tq={Tq}, Tk={Tk}")
    if Tq == 1:
        return None
    rows = torch.arange(Tk - Tq, Tk, device=device)[:, None]  # (Tq, 1)
    return torch.arange(Tk, device=device)[None, :] <= rows  # (Tq, Tk)


def padding_mask(lengths: Tensor, T: int) -> Tensor:
    """(B, 1, 1, T) bool, True where the key position is a real token (index < its sentence's length).

    The two singleton dims broadcast over heads and queries: every query of sentence b ignores
    the padding keys of sentence b.
    """
    _check_tensor(lengths, "lengths", floating=False)
    if lengths.dim() != 1 or lengths.dtype == torch.bool or lengths.is_floating_point():
        raise TypeError(
            f"lengths must be a 1-D integer tensor (B,), got {lengths.dtype} of shape {tuple(lengths.shape)}"
        )
    if lengths.numel() and (int(lengths.min()) < 0 or int(lengths.max()) > T):
        raise ValueError(f"lengths must lie in [0, T={T}], got {lengths.tolist()}")
    positions = torch.arange(T, device=lengths.device)  # (T,)
    return (positions[None, :] < lengths[:, None])[:, None, None, :]  # (B, 1, 1, T)


def scaled_dot_product_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    mask: Tensor | None = None,
    causal: bool = False,
    dropout_p: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """softmax(q k^T / sqrt(d)) v, with optional masks.

    q (B, H, Tq, d), k (B, H, Tk, d), v (B, H, Tk, dv); (B, T, d) without a head dim works too.
    mask: bool, True = may attend, broadcastable to (B, H, Tq, Tk), e.g. :func:`padding_mask`.
    causal: query i may attend to key j only if j <= i + (Tk - Tq). When Tq == Tk that is the
    usual lower triangle; when Tq < Tk the queries are taken to be the *last* Tq positions (as
    with a KV cache: the new tokens come after the cached ones). Note that ``is_causal`` in
    ``F.scaled_dot_product_attention`` aligns the triangle top-left instead; the two agree
    whenever Tq == Tk.
    dropout_p: dropout on the attention weights (training only; pass 0.0 in eval).

    Returns (out (B, H, Tq, dv), weights (B, H, Tq, Tk)). ``weights`` is the distribution before
    dropout; each row sums to 1, except a fully masked row, which is all zeros (and so is its out).
    """
    _check_qkv(q, k, v)
    d = q.size(-1)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)  # (B, H, Tq, d) @ (B, H, d, Tk) -> (B, H, Tq, Tk)
    if causal:
        allowed = _causal_rows(*scores.shape[-2:], device=scores.device)  # (Tq, Tk) or None
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
    if mask is not None:
        _check_mask(mask, scores.shape, scores.device)
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = softmax(scores, dim=-1)  # (B, H, Tq, Tk): a distribution over the keys, per query
    attn = F.dropout(weights, p=dropout_p) if dropout_p > 0 else weights
    out = attn @ v  # (B, H, Tq, Tk) @ (B, H, Tk, dv) -> (B, H, Tq, dv): the expected value
    return out, weights


# ----------------------------------------------------------------------------------------------
# heads


def split_heads(x: Tensor, n_head: int) -> Tensor:
    """(B, T, C) -> (B, H, T, C/H): head h gets channels [h*C/H, (h+1)*C/H)."""
    _check_tensor(x, "x")
    if x.dim() != 3:
        raise ValueError(f"split_heads expects (B, T, C), got shape {tuple(x.shape)}")
    B, T, C = x.shape
    if not isinstance(n_head, int) or n_head <= 0 or C % n_head != 0:
        raise ValueError(f"n_head must be a positive int dividing C={C}, got {n_head!r}")
    return x.reshape(B, T, n_head, C // n_head).transpose(1, 2)  # (B, T, H, d) -> (B, H, T, d)


def merge_heads(x: Tensor) -> Tensor:
    """(B, H, T, d) -> (B, T, H*d): the inverse of :func:`split_heads` (heads side by side)."""
    _check_tensor(x, "x")
    if x.dim() != 4:
        raise ValueError(f"merge_heads expects (B, H, T, d), got shape {tuple(x.shape)}")
    B, H, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d)  # (B, T, H, d) -> (B, T, C)


class KVCache:
    """The keys and values one attention layer has seen so far, each (B, H, T_past, d).

    When a language model generates, step t needs the keys and values of positions 0..t. Those of
    positions < t were already computed at earlier steps and do not change (causal attention: a
    position never looks ahead, so its keys and values do not depend on later tokens). Keeping them
    here means each step computes q, k, v for the one new token only.

    The cache writes into two buffers (B, H, capacity, d) and hands out views of their filled part,
    so a step copies one position in instead of concatenating (which copies the whole past, every
    step). ``max_len`` sizes the buffers up front (a generator knows it: block_size); without it
    they start at the first append's size and double when full, so appends still cost O(1) each
    on average.
    """

    def __init__(self, max_len: int | None = None) -> None:
        if max_len is not None and (not isinstance(max_len, int) or max_len <= 0):
            raise ValueError(f"max_len must be a positive int or None, got {max_len!r}")
        self.max_len = max_len
        self.length = 0  # how many positions are cached (T_past)
        self._k: Tensor | None = None  # (B, H, capacity, d), filled up to self.length
        self._v: Tensor | None = None

    @property
    def k(self) -> Tensor | None:
        """The cached keys (B, H, T_past, d), or None when empty."""
        return None if self.length == 0 else self._k.narrow(-2, 0, self.length)

    @property
    def v(self) -> Tensor | None:
        """The cached values (B, H, T_past, dv), or None when empty."""
        return None if self.length == 0 else self._v.narrow(-2, 0, self.length)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Add the new positions' (B, H, T_new, d) keys and values; return all of them."""
        start, end = self.length, self.length + k.size(-2)
        if self._k is None or end > self._k.size(-2) or not self._fits(k, v):
            self._grow(k, v, end)
        # into the free slots, no new tensor; narrow(dim, start, n) is self._k[:, :, start:end], cheaper
        self._k.narrow(-2, start, end - start).copy_(k)  # (B, H, T_new, d)
        self._v.narrow(-2, start, end - start).copy_(v)
        self.length = end
        return self._k.narrow(-2, 0, end), self._v.narrow(-2, 0, end)  # views (B, H, T_past + T_new, d)

    def _fits(self, k: Tensor, v: Tensor) -> bool:
        """Do the new keys and values match the buffers (batch, heads, head dim, dtype, device)?"""
        ck, cv = self._k, self._v
        return (
            k.shape[:-2] == ck.shape[:-2]
            and k.size(-1) == ck.size(-1)
            and v.size(-1) == cv.size(-1)
            and k.dtype == ck.dtype
            and k.device == ck.device
        )

    def _grow(self, k: Tensor, v: Tensor, needed: int) -> None:
        """New buffers holding at least ``needed`` positions; the cached ones are copied over."""
        old = self._k.size(-2) if self._k is not None else 0
        capacity = max(needed, self.max_len or 0, 2 * old)
        new_k = k.new_empty(*k.shape[:-2], capacity, k.size(-1))  # (B, H, capacity, d)
        new_v = v.new_empty(*v.shape[:-2], capacity, v.size(-1))
        if self.length:
            if not self._fits(k, v):
                raise ValueError(
                    f"new keys {tuple(k.shape)} / values {tuple(v.shape)} ({k.dtype}) do not match the "
                    f"cached ones {tuple(self.k.shape)} / {tuple(self.v.shape)} ({self._k.dtype}); "
                    "reset() the cache first"
                )
            new_k.narrow(-2, 0, self.length).copy_(self.k)
            new_v.narrow(-2, 0, self.length).copy_(self.v)
        self._k, self._v = new_k, new_v

    def reset(self) -> None:
        """Forget the cached positions; the buffers stay allocated for the next sequence."""
        self.length = 0


# ----------------------------------------------------------------------------------------------
# the layer


class MultiHeadAttention(nn.Module):
    """Multi-head self-attention: project x to queries, keys, values; attend per head; project back.

    q_proj, k_proj, v_proj and out_proj are separate (C, C) Linear layers so each is easy to find
    and inspect; :meth:`load_packed_qkv` and :meth:`from_torch` copy weights from the packed
    (3C, C) layout used by ``torch.nn.MultiheadAttention`` (and GPT-2's ``c_attn``).

    Two switches make it lean where speed matters (generation), with the same outputs up to
    rounding: ``need_weights=False`` skips materialising the (B, H, T, T) weights and calls
    PyTorch's fused ``F.scaled_dot_product_attention``; inside ``with layer.packed_qkv():`` the
    three projections run as one (3C, C) matmul.
    """

    def __init__(self, n_embd: int, n_head: int, bias: bool = True, causal: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        if not isinstance(n_embd, int) or not isinstance(n_head, int) or n_embd <= 0 or n_head <= 0:
            raise ValueError(f"n_embd and n_head must be positive ints, got {n_embd!r}, {n_head!r}")
        if n_embd % n_head != 0:
            raise ValueError(
                f"n_embd={n_embd} is not divisible by n_head={n_head}: each head gets n_embd / n_head channels"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.n_embd, self.n_head, self.causal, self.dropout = n_embd, n_head, causal, dropout
        self.q_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.k_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.v_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.out_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self._qkv: tuple[Tensor, Tensor | None] | None = None  # (3C, C) weight and bias, see packed_qkv

    def forward(
        self, x: Tensor, mask: Tensor | None = None, kv_cache: KVCache | None = None, need_weights: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """x (B, T, C) -> (out (B, T, C), weights (B, H, T, T_total), or None if not need_weights).

        mask: bool, True = may attend, broadcastable to (B, H, T, T_total) (e.g. a padding mask
        (B, 1, 1, T)); used together with the causal mask if the layer is causal.
        kv_cache: if given, this call's keys and values are appended to it and the queries attend
        to all cached positions too (T_total = cached + T); the new tokens are taken to come
        after the cached ones.
        need_weights=False: the same out from ``F.scaled_dot_product_attention``, which never
        stores the weights (a model that only wants out: faster, and O(T) memory, not O(T^2)).
        """
        _check_tensor(x, "x")
        if x.dim() != 3 or x.size(-1) != self.n_embd:
            raise ValueError(f"x must be (B, T, C={self.n_embd}), got shape {tuple(x.shape)}")
        if self._qkv is not None:  # inside packed_qkv(): one matmul, then three views
            q, k, v = F.linear(x, *self._qkv).split(self.n_embd, dim=-1)  # (B, T, 3C) -> 3 x (B, T, C)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)  # (B, T, C) each
        q, k, v = (split_heads(t, self.n_head) for t in (q, k, v))  # (B, H, T, d) each
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)  # (B, H, T_total, d)
        p = self.dropout if self.training else 0.0
        if need_weights:
            y, weights = scaled_dot_product_attention(q, k, v, mask=mask, causal=self.causal, dropout_p=p)
        else:
            y, weights = self._fused_attention(q, k, v, mask, p), None
        y = self.out_proj(merge_heads(y))  # (B, H, T, d) -> (B, T, C) -> (B, T, C)
        return y, weights

    def _fused_attention(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None, dropout_p: float) -> Tensor:
        """:func:`scaled_dot_product_attention`'s out (B, H, Tq, d), by ``F.scaled_dot_product_attention``.

        Its ``is_causal`` aligns the triangle top-left, ours bottom-right (the queries are the
        newest positions), so it is used only when the two agree (Tq == Tk); otherwise the
        bottom-right rows go in as an explicit mask. Fully masked rows give zeros in both.
        """
        Tq, Tk = q.size(-2), k.size(-2)
        if mask is not None:
            _check_mask(mask, (*q.shape[:-2], Tq, Tk), q.device)
        is_causal = self.causal and Tq == Tk and Tq > 1 and mask is None
        if self.causal and not is_causal:
            allowed = _causal_rows(Tq, Tk, device=q.device)  # (Tq, Tk), None for a single query
            if allowed is not None:
                mask = allowed if mask is None else mask & allowed
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)

    @contextmanager
    def packed_qkv(self) -> Iterator[MultiHeadAttention]:
        """Within the ``with`` block, compute q, k, v with one (3C, C) matmul instead of three (C, C) ones.

        The weights stay three separate Linear layers (their names and shapes are the layer's
        interface); this concatenates them once, on entry, into the packed layout GPT-2 stores.
        One matmul instead of three saves two kernel launches per layer, which is what a step of
        cached generation (one position, small matrices) spends its time on. The packed copy is
        taken on entry: do not change the weights inside the block (generation does not).
        """
        proj = (self.q_proj, self.k_proj, self.v_proj)
        weight = torch.cat([p.weight for p in proj])  # (3C, C): rows q, then k, then v
        bias = torch.cat([p.bias for p in proj]) if self.q_proj.bias is not None else None  # (3C,)
        self._qkv = (weight, bias)
        try:
            yield self
        finally:
            self._qkv = None

    @torch.no_grad()
    def load_packed_qkv(self, weight: Tensor, bias: Tensor | None = None) -> None:
        """Copy q, k, v projections from one packed (3C, C) weight (rows: q, then k, then v)."""
        C = self.n_embd
        if tuple(weight.shape) != (3 * C, C):
            raise ValueError(f"packed weight must be (3C, C) = {(3 * C, C)}, got {tuple(weight.shape)}")
        if (bias is None) != (self.q_proj.bias is None):
            raise ValueError("bias mismatch: one side has projection biases and the other does not")
        for i, proj in enumerate((self.q_proj, self.k_proj, self.v_proj)):
            proj.weight.copy_(weight[i * C : (i + 1) * C])
            if bias is not None:
                proj.bias.copy_(bias[i * C : (i + 1) * C])

    @classmethod
    def from_torch(cls, mha: nn.MultiheadAttention, causal: bool = False) -> MultiHeadAttention:
        """A copy of ``torch.nn.MultiheadAttention`` (same outputs, same weights per head).

        Only the common configuration is supported: kdim == vdim == embed_dim, no bias_k/bias_v,
        no add_zero_attn. ``batch_first`` does not change the weights; our layer is always
        batch-first.
        """
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"expected torch.nn.MultiheadAttention, got {type(mha).__name__}")
        if not mha._qkv_same_embed_dim or mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("only kdim == vdim == embed_dim, no bias_k/bias_v and no add_zero_attn are supported")
        ours = cls(mha.embed_dim, mha.num_heads, bias=mha.in_proj_bias is not None, causal=causal, dropout=mha.dropout)
        ours.to(device=mha.in_proj_weight.device, dtype=mha.in_proj_weight.dtype)
        ours.load_packed_qkv(mha.in_proj_weight, mha.in_proj_bias)
        with torch.no_grad():
            ours.out_proj.weight.copy_(mha.out_proj.weight)
            if mha.out_proj.bias is not None:
                ours.out_proj.bias.copy_(mha.out_proj.bias)
        return ours

    def extra_repr(self) -> str:
        return f"n_embd={self.n_embd}, n_head={self.n_head}, causal={self.causal}, dropout={self.dropout}"
