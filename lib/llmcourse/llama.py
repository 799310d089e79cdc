"""A modern decoder: what changed between GPT-2 (2019) and Llama, Qwen or SmolLM (2023-).

The skeleton is GPT's (``transformer.GPT``): token embeddings, a stack of pre-norm residual
blocks ``x = x + attn(norm(x)); x = x + mlp(norm(x))``, a final norm and the "un-embedding" that
turns each position's vector into next-token logits. Four parts were swapped for better ones:

1. **RMSNorm** instead of LayerNorm: divide each position's C numbers by their root mean square
   and multiply by a learned gain. No mean subtraction, no bias: cheaper, and it trains as well.
2. **Rotary position embeddings (RoPE)** instead of a learned vector added at the input. Inside
   every attention layer, each query and key is cut into pairs of channels and each pair is
   *rotated* by an angle proportional to its position (one frequency per pair). A dot product
   of two rotated vectors depends only on the *difference* of their angles, so attention scores
   see relative positions, and nothing has to be learned per position. With a KV cache the new
   token sits at position ``past``, so the rotation takes a position offset.
3. **SwiGLU MLP** instead of Linear -> GELU -> Linear: ``down(silu(gate(x)) * up(x))``. The
   gate decides, channel by channel, how much of ``up(x)`` passes.
4. **Grouped-query attention (GQA)**: H query heads share n_kv_head < H key/value heads (SmolLM2:
   9 query heads, 3 key/value heads, so each K/V head serves a group of 3). Same quality, and the
   KV cache, which dominates memory at long contexts, shrinks by H / n_kv_head.

Also: no biases anywhere, and the output layer may share its weights with the token embedding
(tied, as in SmolLM2) or not (Llama).

Generation keeps a **preallocated KV cache** (:class:`KVCache`): one tensor per layer, sized for
prompt + new tokens up front, written in place. Each step then runs one position through the
stack without allocating or concatenating anything that grows with the sequence.

Read top to bottom: :class:`LlamaConfig`, :class:`RMSNorm`, :func:`rotary_tables`,
:func:`apply_rotary`, :func:`grouped_query_attention` (the idea, written out), :class:`KVCache`,
:class:`Attention`, :class:`SwiGLU`, :class:`Block`, :class:`Llama` (forward, generate) and the
sampling helper :func:`sample_next`. The real model's weights come from
``llmcourse.toolbox.smollm2`` (reading a GGUF file).

Usage::

    from llmcourse.toolbox.smollm2 import smollm2
    model, tok = smollm2()                                   # SmolLM2-135M-Instruct, offline
    ids = torch.tensor([tok.encode("The dog chased the")])   # (1, T)
    logits, _ = model(ids)                                   # (1, T, 49152)
    out = model.generate(ids, 20, greedy=True)               # (1, T + 20)
    tok.decode(out[0].tolist())
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from . import autoregressive

__all__ = [
    "LlamaConfig",
    "RMSNorm",
    "rotary_tables",
    "rotate_half",
    "apply_rotary",
    "grouped_query_attention",
    "KVCache",
    "Attention",
    "SwiGLU",
    "Block",
    "Llama",
    "sample_next",
]


@dataclass
class LlamaConfig:
    """The shape of a Llama-style decoder. Defaults: SmolLM2-135M."""

    vocab_size: int = 49152
    block_size: int = 8192  # context length: the most positions the model attends over
    n_layer: int = 30
    n_head: int = 9  # query heads
    n_kv_head: int = 3  # key/value heads; n_head must be a multiple (GQA; = n_head is plain MHA)
    n_embd: int = 576
    hidden: int = 1536  # the SwiGLU MLP's inner width
    rope_theta: float = 100000.0  # base of the rotary frequencies
    norm_eps: float = 1e-5
    tie_embeddings: bool = True  # the output layer reuses the token embedding matrix

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_kv_head", "n_embd", "hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"LlamaConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"LlamaConfig.n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.n_head % self.n_kv_head != 0:
            raise ValueError(
                f"LlamaConfig.n_head={self.n_head} is not a multiple of n_kv_head={self.n_kv_head}: "
                "each key/value head must serve a whole group of query heads"
            )
        if (self.n_embd // self.n_head) % 2 != 0:
            raise ValueError(f"the head size n_embd / n_head = {self.n_embd // self.n_head} must be even for rotary")
        if not self.rope_theta > 1.0 or not self.norm_eps > 0.0:
            raise ValueError(f"need rope_theta > 1 and norm_eps > 0, got {self.rope_theta}, {self.norm_eps}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head


# ----------------------------------------------------------------------------------------------
# the parts


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight over the last dimension. Equal to ``F.rms_norm``.

    LayerNorm also subtracts the mean and adds a bias; RMSNorm only rescales, which is what
    keeps activations at a stable size.
    """

    def __init__(self, ndim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))

    def forward(self, x: Tensor) -> Tensor:  # (..., C) -> (..., C)
        rms_inv = torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + self.eps)  # (..., 1)
        return x * rms_inv * self.weight


def rotary_tables(head_dim: int, n_pos: int, theta: float = 10000.0, device=None) -> tuple[Tensor, Tensor]:
    """cos and sin, each (n_pos, head_dim): the rotation angle of every (position, channel).

    Channel pair i (channels i and i + head_dim/2, see :func:`rotate_half`) turns at frequency
    ``theta^(-2i/head_dim)`` radians per position: the first pair once every 2*pi positions,
    the last one almost never, so together they tell near and far apart.
    """
    if head_dim <= 0 or head_dim % 2 != 0 or n_pos < 0:
        raise ValueError(f"need an even head_dim > 0 and n_pos >= 0, got {head_dim}, {n_pos}")
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device).float() / head_dim)  # (hd/2,)
    angles = torch.arange(n_pos, device=device, dtype=torch.float32)[:, None] * inv_freq[None, :]  # (n_pos, hd/2)
    angles = torch.cat([angles, angles], dim=-1)  # (n_pos, hd): both channels of a pair share an angle
    return angles.cos(), angles.sin()


def rotate_half(x: Tensor) -> Tensor:
    """(x1, x2) -> (-x2, x1) on the two halves of the last dimension: a 90-degree turn of each pair."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate each channel pair (i, i + hd/2) of x by its angle: x cos + rotate_half(x) sin.

    x (..., T, hd) and cos, sin broadcastable to it (e.g. (T, hd) rows for the positions of x).
    This is the 2-D rotation (a, b) -> (a cos - b sin, a sin + b cos) of every pair at once.
    """
    return x * cos + rotate_half(x) * sin


def grouped_query_attention(q: Tensor, k: Tensor, v: Tensor, past: int = 0) -> Tensor:
    """Causal attention where H query heads share Hkv key/value heads. The idea, written out.

    q (B, H, T, hd) for the positions past .. past+T-1; k, v (B, Hkv, past+T, hd) for every
    position so far. Query head h reads key/value head h // (H / Hkv): repeating each K/V head
    H / Hkv times turns GQA into ordinary multi-head attention. :class:`Attention` computes the
    same with ``F.scaled_dot_product_attention(..., enable_gqa=True)``, which skips the copies.
    """
    H, Hkv = q.size(1), k.size(1)
    if H % Hkv != 0:
        raise ValueError(f"the {H} query heads cannot be grouped over {Hkv} key/value heads")
    k = k.repeat_interleave(H // Hkv, dim=1)  # (B, H, Tk, hd)
    v = v.repeat_interleave(H // Hkv, dim=1)  # (B, H, Tk, hd)
    T, Tk = q.size(2), k.size(2)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, T, Tk)
    visible = torch.ones(T, Tk, dtype=torch.bool, device=q.device).tril(diagonal=past)  # query t sees keys <= past+t
    scores = scores.masked_fill(~visible, float("-inf"))
    return scores.softmax(dim=-1) @ v  # (B, H, T, hd)


class KVCache:
    """Keys and values of one layer, preallocated: (B, Hkv, max_len, hd) each, filled in place.

    A growing cache (``torch.cat`` at every step) copies everything cached so far at every step;
    writing into a slice of a buffer sized once does not. ``length`` positions are filled.
    """

    def __init__(self, batch: int, n_kv_head: int, max_len: int, head_dim: int, device=None, dtype=None) -> None:
        self.k = torch.zeros(batch, n_kv_head, max_len, head_dim, device=device, dtype=dtype)
        self.v = torch.zeros(batch, n_kv_head, max_len, head_dim, device=device, dtype=dtype)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.size(2)

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """Write the new positions' (B, Hkv, T, hd) keys and values; return all cached so far."""
        start, end = self.length, self.length + k.size(2)
        if end > self.max_len:
            raise ValueError(f"the KV cache holds {self.max_len} positions; {end} do not fit")
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]  # views, no copy


class Attention(nn.Module):
    """Grouped-query causal self-attention with rotary positions, no biases.

    One fused Linear computes q, k and v together ((H + 2 Hkv) * hd outputs): one matrix product
    instead of three, which matters when each step processes a single token.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.n_kv_head, config.head_dim
        self.qkv_proj = nn.Linear(config.n_embd, (config.n_head + 2 * config.n_kv_head) * config.head_dim, bias=False)
        self.o_proj = nn.Linear(config.n_head * config.head_dim, config.n_embd, bias=False)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        B, T, C = x.shape
        H, Hkv, hd = self.n_head, self.n_kv_head, self.head_dim
        qkv = self.qkv_proj(x).view(B, T, H + 2 * Hkv, hd)  # (B, T, H + 2Hkv, hd)
        qk = apply_rotary(qkv[:, :, : H + Hkv], cos, sin)  # (B, T, H + Hkv, hd): q and k rotated together
        q = qk[:, :, :H].transpose(1, 2)  # (B, H, T, hd)
        k = qk[:, :, H:].transpose(1, 2)  # (B, Hkv, T, hd)
        v = qkv[:, :, H + Hkv :].transpose(1, 2)  # (B, Hkv, T, hd)
        past = 0
        if kv_cache is not None:
            past = kv_cache.length
            k, v = kv_cache.append(k, v)  # (B, Hkv, past + T, hd)
        if T == 1:  # one new token sees every cached position: no mask
            y = F.scaled_dot_product_attention(q, k, v, enable_gqa=True)
        elif past == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
        else:  # several new tokens after a cached prefix: is_causal would align the mask wrongly
            visible = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=visible, enable_gqa=True)
        y = y.transpose(1, 2).reshape(B, T, H * hd)  # (B, T, H*hd): heads side by side again
        return self.o_proj(y)  # (B, T, C)


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)); gate and up fused in one Linear (C -> 2 * hidden)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.gate_up_proj = nn.Linear(config.n_embd, 2 * config.hidden, bias=False)
        self.down_proj = nn.Linear(config.hidden, config.n_embd, bias=False)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, C)
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)  # (B, T, hidden) each
        return self.down_proj(F.silu(gate) * up)


class Block(nn.Module):
    """One pre-norm layer: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.attn = Attention(config)
        self.mlp_norm = RMSNorm(config.n_embd, config.norm_eps)
        self.mlp = SwiGLU(config)

    def forward(self, x: Tensor, cos: Tensor, sin: Tensor, kv_cache: KVCache | None = None) -> Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, kv_cache)  # (B, T, C)
        x = x + self.mlp(self.mlp_norm(x))  # (B, T, C)
        return x


# ----------------------------------------------------------------------------------------------
# the model


class Llama(nn.Module):
    """A Llama-style language model: token ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        if not isinstance(config, LlamaConfig):
            raise TypeError(f"config must be a LlamaConfig, got {type(config).__name__}")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.norm = RMSNorm(config.n_embd, config.norm_eps)
        # The "un-embedding": scores every vocabulary entry against the final hidden state.
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.init_rope()
        self.apply(self._init_weights)

    def init_rope(self) -> None:
        """(Re)compute the rotation angles of every position, once, on the model's device.

        Buffers follow .to(device) but are not saved: they are a function of the config. A
        loader that builds the model on the meta device calls this after loading the weights.
        """
        c = self.config
        device = self.embed.weight.device
        cos, sin = rotary_tables(
            c.head_dim, c.block_size, c.rope_theta, device="cpu" if device.type == "meta" else device
        )
        self.register_buffer("rope_cos", cos[:, None, :], persistent=False)  # (block_size, 1, hd)
        self.register_buffer("rope_sin", sin[:, None, :], persistent=False)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Number of parameters, a tied embedding / output matrix counted once."""
        return sum(p.numel() for p in self.parameters())

    def _check_idx(self, idx, name: str = "idx") -> None:
        if not isinstance(idx, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(idx).__name__}")
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{name} must hold integer token ids (torch.long), got {idx.dtype}")
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError(f"{name} must be (B, T) with T >= 1, got shape {tuple(idx.shape)}")
        V = self.config.vocab_size
        if int(idx.min()) < 0 or int(idx.max()) >= V:
            raise ValueError(f"{name} holds ids outside [0, {V}): min {int(idx.min())}, max {int(idx.max())}")
        if idx.size(1) > self.config.block_size:
            raise ValueError(
                f"{name} has {idx.size(1)} tokens, more than the context of {self.config.block_size}; "
                f"keep the last {self.config.block_size} (idx[:, -{self.config.block_size}:])"
            )

    def _hidden(self, idx: Tensor, kv_caches: list[KVCache] | None = None) -> Tensor:
        """(B, T) ids -> (B, T, C) final hidden states. With caches the T tokens follow the
        cached positions: their rotation starts at the cache length and their keys/values are
        written into the caches."""
        T = idx.size(1)
        past = kv_caches[0].length if kv_caches is not None else 0
        if past + T > self.config.block_size:
            raise ValueError(f"{past} cached + {T} new tokens exceed the context of {self.config.block_size}")
        cos, sin = self.rope_cos[past : past + T], self.rope_sin[past : past + T]  # (T, 1, hd)
        x = self.embed(idx)  # (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, kv_caches[i] if kv_caches is not None else None)
        return self.norm(x)

    def hidden_states(self, idx: Tensor, kv_caches: list[KVCache] | None = None) -> Tensor:
        """idx (B, T) long -> (B, T, C) after the final norm: the model without its language-model head
        (a classifier head or a probe reads these: unit 07). With ``kv_caches`` (one per block) the
        tokens follow the cached ones."""
        self._check_idx(idx)
        return self._hidden(idx, kv_caches)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) long -> (logits (B, T, V), mean cross-entropy against targets, or None)."""
        logits = self.lm_head(self.hidden_states(idx))  # (B, T, V)
        loss = None
        if targets is not None:
            if not isinstance(targets, Tensor) or targets.shape != idx.shape:
                got = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
                raise ValueError(f"targets must be a tensor shaped like idx {tuple(idx.shape)}, got {got}")
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten().long(), ignore_index=-1)
        return logits, loss

    def new_caches(self, batch: int, max_len: int) -> list[KVCache]:
        """One empty preallocated :class:`KVCache` per layer, for max_len positions."""
        c, p = self.config, self.embed.weight
        return [KVCache(batch, c.n_kv_head, max_len, c.head_dim, p.device, p.dtype) for _ in range(c.n_layer)]

    @torch.inference_mode()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        greedy: bool = False,
        use_cache: bool = True,
        stop_tokens: tuple[int, ...] | list[int] = (),
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Extend idx (B, T) by up to max_new_tokens tokens; returns (B, T + n).

        Each step samples from the last position's distribution (:func:`sample_next`: temperature,
        top-k, top-p) or takes its argmax (greedy). With use_cache the prompt runs once and fills
        the preallocated caches; each later step runs only the newest token. Generation stops
        early when every row has produced one of ``stop_tokens`` (e.g. ``<|im_end|>``); rows that
        finished first keep generating tokens the caller should cut at their stop token.
        The whole sequence must fit the context (block_size): rotary models are not slid.
        """
        self._check_idx(idx)
        if not isinstance(max_new_tokens, int) or isinstance(max_new_tokens, bool) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
        B, T = idx.shape
        if T + max_new_tokens > self.config.block_size:
            raise ValueError(
                f"prompt ({T} tokens) + max_new_tokens ({max_new_tokens}) exceed the context of "
                f"{self.config.block_size} tokens; shorten the prompt or ask for fewer tokens"
            )
        _check_sampling(temperature, top_k, top_p, greedy)
        stop = torch.tensor(list(stop_tokens), dtype=idx.dtype, device=idx.device)

        out = torch.empty(B, T + max_new_tokens, dtype=idx.dtype, device=idx.device)  # written in place
        out[:, :T] = idx
        caches = self.new_caches(B, T + max_new_tokens) if use_cache else None
        n = T
        for _ in range(max_new_tokens):
            if caches is None:
                x = self._hidden(out[:, :n])  # the whole sequence, every step
            elif caches[0].length == 0:
                x = self._hidden(out[:, :n], caches)  # the prompt: fills the caches
            else:
                x = self._hidden(out[:, n - 1 : n], caches)  # only the newest token: (B, 1, C)
            logits = self.lm_head(x[:, -1])  # (B, V): only the last position predicts
            out[:, n] = sample_next(logits, temperature, top_k, top_p, greedy, generator)
            n += 1
            if len(stop) and torch.isin(out[:, T:n], stop).any(dim=1).all():
                break
        return out[:, :n]


# ----------------------------------------------------------------------------------------------
# sampling


def _check_sampling(temperature, top_k, top_p, greedy) -> None:
    """Checked once before generating, so a bad setting fails before the prompt is run."""
    if not greedy and not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature must be > 0 (or use greedy=True), got {temperature!r}")
    if top_k is not None and (not isinstance(top_k, int) or isinstance(top_k, bool) or top_k <= 0):
        raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")
    if top_p is not None and not (isinstance(top_p, (int, float)) and 0.0 < top_p <= 1.0):
        raise ValueError(f"top_p must be in (0, 1] or None, got {top_p!r}")


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
) -> Tensor:
    """(B, V) logits -> (B,) next token ids.

    greedy: the argmax. Otherwise unit 03's sampler (:func:`llmcourse.autoregressive.sample_next`):
    divide by temperature, keep the top_k most likely tokens (all of them when top_k >= V), then the
    smallest set whose probabilities sum to at least top_p, renormalise and draw.
    """
    _check_sampling(temperature, top_k, top_p, greedy)
    if greedy:
        return logits.argmax(dim=-1)
    top_k = None if top_k is None else min(top_k, logits.size(-1))
    return autoregressive.sample_next(logits, temperature, top_k, top_p, generator).squeeze(-1)  # (B,)
