"""The transformer: attention plus a few simple parts, stacked.

A transformer turns a sequence of token ids into a sequence of vectors, one per position, and
refines them layer by layer. Each layer ("block") does two things, each wrapped in a residual
connection (``x = x + f(x)``, so information and gradients have a direct path through the stack):

1. **Attention** (``attention.MultiHeadAttention``): every position gathers information from
   the other positions.
2. **MLP**: every position, on its own, transforms what it gathered (Linear C -> 4C, GELU,
   Linear 4C -> C). Most of the parameters live here.

**LayerNorm** keeps the vectors at a stable scale: each position's C numbers are shifted to mean 0
and scaled to variance 1, then a learned per-channel gain and bias are applied.

Attention by itself ignores order (shuffle the tokens and each output is unchanged, only
shuffled), so a **position embedding** is added to each token's embedding: either learned (one
vector per position, GPT-2) or fixed sinusoids ("Attention is all you need").

Two arrangements of the same parts appear in this file:

* :class:`GPT` (decoder, *pre-norm*, causal): ``x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))``.
  It predicts the next token; :meth:`GPT.generate` writes text one token at a time and uses a
  **KV cache** (``attention.KVCache``) so that each new token costs one position's work, not the
  whole sequence's.
* :class:`BertEncoder` (encoder, *post-norm*, bidirectional): ``x = LN(x + attn(x));
  x = LN(x + mlp(x))``. :func:`load_minilm` loads the real pretrained all-MiniLM-L6-v2 weights
  into it and reproduces Hugging Face ``BertModel`` exactly.

Read top to bottom: :func:`default_device`, :func:`gelu`, :class:`LayerNorm`, :class:`MLP`,
:class:`Block`, :func:`sinusoidal_positions`, :class:`GPTConfig`, :class:`GPT` (and :func:`to_hf_gpt2`,
the same network in Hugging Face's ``GPT2LMHeadModel``, to compare with), then the BERT half
(:class:`BertConfig`, :class:`BertEncoder`, :func:`load_minilm`).

Usage::

    model = GPT(GPTConfig(vocab_size=512)).to(default_device())
    logits, loss = model(idx, targets)                  # idx, targets (B, T) long
    out = model.generate(prompt, max_new_tokens=100)    # (B, T + 100)

    bert, tok = load_minilm()
    batch = tok(["The cat sat.", "A longer sentence here."], padding=True, return_tensors="pt")
    hidden_states, attentions = bert(**batch)           # lists: (B, T, 384), (B, 12, T, T)
"""

from __future__ import annotations

import json
import math
from contextlib import ExitStack
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from .attention import KVCache, MultiHeadAttention
from .toolbox.pretrained import minilm_dir

if TYPE_CHECKING:  # transformers takes seconds to import; only load_minilm and to_hf_gpt2 need it
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerBase

__all__ = [
    "default_device",
    "gelu",
    "LayerNorm",
    "MLP",
    "Block",
    "sinusoidal_positions",
    "GPTConfig",
    "GPT",
    "to_hf_gpt2",
    "BertConfig",
    "BertEncoder",
    "minilm_dir",
    "convert_hf_bert_state_dict",
    "load_minilm",
]


def default_device() -> torch.device:
    """CUDA when a GPU is present, else the CPU. Everything here runs on either."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# ----------------------------------------------------------------------------------------------
# the parts of a block


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian Error Linear Unit: x * Phi(x), Phi the standard normal CDF.

    A smooth ReLU: ~0 for very negative x, ~x for large x, slightly negative in between.
    approximate="none" is the exact erf form (BERT); "tanh" is the tanh approximation that
    GPT-2 was trained with. Equal to ``F.gelu(x, approximate=...)``, which :class:`MLP` calls:
    one fused kernel instead of the formula's five operations.
    """
    if approximate == "none":
        return 0.5 * x * (1.0 + torch.erf(x / math.sqrt(2.0)))
    if approximate == "tanh":
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


class LayerNorm(nn.Module):
    """Normalise each position's C channels to mean 0, variance 1, then scale and shift:

        y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias     (var: the biased variance)

    Equal to ``nn.LayerNorm(ndim, eps)``; ``bias=False`` drops the shift (nanoGPT's option).
    Computed, like nanoGPT's, by ``F.layer_norm``: one fused kernel instead of the seven
    operations of the formula, which is what a one-position generation step pays for
    (assignment 05 writes the formula out).
    """

    def __init__(self, ndim: int, bias: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: Tensor) -> Tensor:  # (..., C) -> (..., C)
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, self.eps)


class MLP(nn.Module):
    """Per-position feed-forward net: Linear(C, 4C) -> GELU -> Linear(4C, C) -> dropout."""

    def __init__(
        self, n_embd: int, hidden: int | None = None, bias: bool = True, dropout: float = 0.0, approximate: str = "none"
    ) -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
        hidden = 4 * n_embd if hidden is None else hidden
        self.approximate = approximate
        self.fc = nn.Linear(n_embd, hidden, bias=bias)
        self.proj = nn.Linear(hidden, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, C) -> (B, T, C)
        x = self.fc(x)  # (B, T, 4C)
        x = F.gelu(x, approximate=self.approximate)  # = gelu(x, self.approximate), fused
        x = self.proj(x)  # (B, T, C)
        return self.dropout(x)


class Block(nn.Module):
    """One pre-norm GPT layer: x + attn(ln_1(x)), then x + mlp(ln_2(x)). Attention is causal.

    Normalising the *input* of each sub-layer (pre-norm, GPT-2) rather than the sum (post-norm,
    the original transformer and BERT) leaves the residual path untouched, which trains deep
    stacks more stably.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        C = config.n_embd
        self.ln_1 = LayerNorm(C, bias=config.bias)
        self.attn = MultiHeadAttention(C, config.n_head, bias=config.bias, causal=True, dropout=config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)  # on the attention branch's output
        self.ln_2 = LayerNorm(C, bias=config.bias)
        self.mlp = MLP(C, bias=config.bias, dropout=config.dropout)

    def forward(self, x: Tensor, kv_cache: KVCache | None = None) -> Tensor:  # (B, T, C) -> (B, T, C)
        # the block only needs attention's output: no (B, H, T, T) weights, PyTorch's fused kernel
        a, _ = self.attn(self.ln_1(x), kv_cache=kv_cache, need_weights=False)
        x = x + self.resid_dropout(a)
        x = x + self.mlp(self.ln_2(x))
        return x


def sinusoidal_positions(T: int, C: int) -> Tensor:
    """(T, C) fixed position encodings of "Attention is all you need" (s.3.5):

        PE[pos, 2i]   = sin(pos / 10000^(2i/C))
        PE[pos, 2i+1] = cos(pos / 10000^(2i/C))

    Each pair of channels is a clock at its own frequency, from one turn per 2*pi positions down
    to one per 10000*2*pi, so every position gets a distinct pattern, and PE[pos + k] is a fixed
    linear function (a rotation) of PE[pos], which makes relative offsets easy to attend to.
    """
    if not isinstance(T, int) or not isinstance(C, int) or T < 0 or C <= 0:
        raise ValueError(f"T and C must be ints with T >= 0 and C > 0, got T={T!r}, C={C!r}")
    pos = torch.arange(T, dtype=torch.float64)[:, None]  # (T, 1)
    two_i = torch.arange(0, C, 2, dtype=torch.float64)  # (ceil(C/2),)
    angle = pos / 10000.0 ** (two_i / C)  # (T, ceil(C/2))
    pe = torch.zeros(T, C, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle[:, : C // 2])  # odd C: the last sine has no cosine partner
    return pe.to(torch.get_default_dtype())


# ----------------------------------------------------------------------------------------------
# GPT


@dataclass
class GPTConfig:
    block_size: int = 128  # the longest context the model sees (number of positions)
    vocab_size: int = 1024  # e.g. a byte-level BPE tokenizer trained to 1024 tokens (assignment 01)
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True  # biases in Linear layers and LayerNorms
    positions: str = "learned"  # "learned" (GPT-2) or "sinusoidal" (fixed, no parameters)

    def __post_init__(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive int, got {value!r}")
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"GPTConfig.n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.positions not in ("learned", "sinusoidal"):
            raise ValueError(f"GPTConfig.positions must be 'learned' or 'sinusoidal', got {self.positions!r}")


class GPT(nn.Module):
    """A GPT-2-style language model: token ids (B, T) -> next-token logits (B, T, vocab_size)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"config must be a GPTConfig, got {type(config).__name__}")
        self.config = config
        C = config.n_embd
        self.wte = nn.Embedding(config.vocab_size, C)  # token embeddings
        if config.positions == "learned":
            self.wpe = nn.Embedding(config.block_size, C)  # one learned vector per position
        else:
            self.wpe = None
            # a buffer, not a parameter: moves with .to(device) but is never trained or saved
            self.register_buffer("pe", sinusoidal_positions(config.block_size, C), persistent=False)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = LayerNorm(C, bias=config.bias)
        self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
        # Weight tying: the input embedding and the output layer share one (V, C) matrix. A token
        # that the model reads as vector e is predicted when the final hidden state points along
        # e. It saves V*C parameters and helps small models (Press & Wolf 2017).
        self.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2: scale the layers that write into the residual stream by 1/sqrt(2 * n_layer), so
        # the stream's variance does not grow with depth (each block adds two such writes).
        for block in self.blocks:
            for proj in (block.attn.out_proj, block.mlp.proj):
                nn.init.normal_(proj.weight, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = True) -> int:
        """Number of parameters (the tied embedding / lm_head matrix counted once).

        non_embedding=True leaves out the position embeddings, as nanoGPT does. The token
        embedding stays in because, tied, it is also the output layer's weight.
        """
        n = sum(p.numel() for p in self.parameters())  # parameters() yields a shared tensor once
        if non_embedding and self.wpe is not None:
            n -= self.wpe.weight.numel()
        return n

    def _check_idx(self, idx, name: str = "idx") -> None:
        if not isinstance(idx, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(idx).__name__}")
        if idx.dtype not in (torch.int64, torch.int32):
            raise TypeError(f"{name} must hold integer token ids (torch.long), got {idx.dtype}")
        if idx.dim() != 2 or idx.size(1) == 0:
            raise ValueError(f"{name} must be (B, T) with T >= 1, got shape {tuple(idx.shape)}")
        V = self.config.vocab_size
        if int(idx.min()) < 0 or int(idx.max()) >= V:
            raise ValueError(
                f"{name} holds ids outside [0, vocab_size={V}): min {int(idx.min())}, max {int(idx.max())}"
            )

    def _hidden(self, idx: Tensor, kv_caches: list[KVCache] | None = None) -> Tensor:
        """(B, T) ids -> (B, T, C) final hidden states (after ln_f).

        With kv_caches (one per block) the T tokens are taken to follow the cached positions:
        their position ids start at the cache length, and their keys/values are appended.
        """
        B, T = idx.shape
        past = kv_caches[0].length if kv_caches is not None else 0
        if past + T > self.config.block_size:
            what = f"{T}" if past == 0 else f"{past + T} (cached {past} + new {T})"
            raise ValueError(
                f"sequence length {what} exceeds block_size={self.config.block_size}; "
                f"crop the input to its last {self.config.block_size} tokens"
            )
        table = self.wpe.weight if self.wpe is not None else self.pe  # (block_size, C)
        pos_emb = table[past : past + T]  # (T, C): positions past .. past+T-1, a view, no lookup
        x = self.drop(self.wte(idx) + pos_emb)  # (B, T, C) + (T, C) -> (B, T, C)
        for i, block in enumerate(self.blocks):
            x = block(x, kv_cache=kv_caches[i] if kv_caches is not None else None)
        return self.ln_f(x)

    def hidden_states(self, idx: Tensor, kv_caches: list[KVCache] | None = None) -> Tensor:
        """idx (B, T) long -> (B, T, C): the model without its language-model head, what a classifier
        head or a probe reads (unit 07) and what beam search turns into the last position's logits. With
        ``kv_caches`` (one per block) the tokens follow the cached ones (unit 10)."""
        self._check_idx(idx)
        return self._hidden(idx, kv_caches)

    def forward(self, idx: Tensor, targets: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """idx (B, T) long -> (logits (B, T, V), loss or None).

        logits[b, t] scores every vocabulary entry as the token after idx[b, :t+1]. With targets
        (B, T) (usually idx shifted left by one; -1 = ignore), loss is the mean cross-entropy.
        """
        x = self.hidden_states(idx)  # (B, T, C)
        logits = self.lm_head(x)  # (B, T, V)
        loss = None
        if targets is not None:
            if not isinstance(targets, Tensor) or targets.shape != idx.shape:
                got = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
                raise ValueError(f"targets must be a tensor shaped like idx {tuple(idx.shape)}, got {got}")
            loss = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1).long(), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def attention_maps(self, idx: Tensor) -> list[Tensor]:
        """Per layer, the attention weights (B, H, T, T) for idx (B, T): what bertviz draws."""
        self._check_idx(idx)
        maps: list[Tensor] = []

        def need_weights(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            return args, {**kwargs, "need_weights": True}  # Block asks for none: ask for them here

        hooks = [b.attn.register_forward_pre_hook(need_weights, with_kwargs=True) for b in self.blocks]
        hooks += [b.attn.register_forward_hook(lambda mod, inp, out: maps.append(out[1])) for b in self.blocks]
        try:
            self._hidden(idx)
        finally:
            for h in hooks:
                h.remove()
        return maps

    @torch.no_grad()
    def generate(
        self,
        idx: Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        greedy: bool = False,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """Extend idx (B, T) by max_new_tokens tokens, one at a time; returns (B, T + max_new_tokens).

        Each step turns the last position's logits into a distribution (divide by temperature,
        keep the top_k largest, softmax) and samples from it with ``generator`` (which must live
        on the model's device), or takes the argmax if greedy. Call ``model.eval()`` first:
        dropout would make every step random.

        use_cache=True: the first step runs the whole prompt and fills one KVCache per block;
        every later step feeds only the newest token, whose queries attend to the cached keys
        and values. Same tokens as use_cache=False, but a step computes projections and MLP for
        one position (plus attention over the T cached keys) instead of for all T positions.

        Longer than block_size: the model only ever sees the last block_size tokens (like
        nanoGPT). Once the window is full, every step drops the oldest token, so every token's
        position (0 .. block_size-1) shifts by one, and the cached keys and values, computed at
        the old positions, are wrong. We then rebuild the cache from the cropped window at each
        step: still exactly the tokens use_cache=False gives, without its speed-up.

        A step of cached generation does little arithmetic (one position), so what it costs is
        the number of operations, not their size. Nothing is allocated that could be reused:
        the output tensor is allocated once and filled (no ``torch.cat`` per step), the caches
        are preallocated to block_size (``KVCache(max_len)``), and each attention layer packs its
        q, k, v projections into one matmul for the whole call (``packed_qkv``).
        """
        self._check_idx(idx)
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
        block_size = self.config.block_size
        if idx.size(1) > block_size:
            raise ValueError(
                f"prompt of length {idx.size(1)} exceeds block_size={block_size}; "
                f"pass at most the last {block_size} tokens"
            )
        if not greedy and not temperature > 0:
            raise ValueError(f"temperature must be > 0 (or use greedy=True), got {temperature}")
        if top_k is not None and (not isinstance(top_k, int) or top_k <= 0):
            raise ValueError(f"top_k must be a positive int or None, got {top_k!r}")

        if max_new_tokens == 0:
            return idx
        B, T = idx.shape
        out = torch.empty(B, T + max_new_tokens, dtype=torch.long, device=idx.device)  # filled step by step
        out[:, :T] = idx
        caches = [KVCache(max_len=block_size) for _ in self.blocks] if use_cache else None
        with ExitStack() as packed:
            for block in self.blocks:  # q, k, v as one matmul per layer, for this call
                packed.enter_context(block.attn.packed_qkv())
            for t in range(T, T + max_new_tokens):  # out[:, :t] is known, out[:, t] is next
                window = out[:, max(0, t - block_size) : t]  # the last block_size tokens
                if caches is None:
                    x = self._hidden(window)  # the whole window, every step
                elif 0 < caches[0].length < block_size:
                    x = self._hidden(out[:, t - 1 : t], caches)  # only the newest token: (B, 1, C)
                else:  # first step, or the window slid: refill the cache from the window
                    for cache in caches:
                        cache.reset()
                    x = self._hidden(window, caches)
                logits = self.lm_head(x[:, -1, :])  # (B, V): only the last position predicts
                out[:, t : t + 1] = self._sample(logits, temperature, top_k, greedy, generator)  # (B, 1)
        return out

    @staticmethod
    def _sample(
        logits: Tensor, temperature: float, top_k: int | None, greedy: bool, generator: torch.Generator | None
    ) -> Tensor:
        """(B, V) logits -> (B, 1) next token ids."""
        if greedy:
            return logits.argmax(dim=-1, keepdim=True)
        logits = logits / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]  # (B, 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = F.softmax(logits, dim=-1)
        return torch.multinomial(probs, num_samples=1, generator=generator)


@torch.no_grad()
def to_hf_gpt2(model: GPT) -> GPT2LMHeadModel:
    """The same network as Hugging Face's ``GPT2LMHeadModel``, our weights copied in, in eval mode.

    An independent implementation to compare with (logits, greedy tokens, speed of ``generate``).
    The layouts differ in three ways: GPT-2 packs q, k, v into one ``c_attn``; its ``Conv1D``
    layers store weights as (in, out), the transpose of ``nn.Linear``'s; and it always has biases
    (``bias=False`` becomes zero biases). Our exact GELU is its ``activation_function="gelu"``;
    fixed sinusoidal positions become its (learned) position table, holding the same values.
    """
    from transformers import GPT2Config, GPT2LMHeadModel  # imported here: it takes seconds to import

    if not isinstance(model, GPT):
        raise TypeError(f"model must be a GPT, got {type(model).__name__}")
    cfg = model.config
    hf = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=cfg.vocab_size,
            n_positions=cfg.block_size,
            n_embd=cfg.n_embd,
            n_layer=cfg.n_layer,
            n_head=cfg.n_head,
            activation_function="gelu",
            resid_pdrop=cfg.dropout,
            embd_pdrop=cfg.dropout,
            attn_pdrop=cfg.dropout,
            layer_norm_epsilon=1e-5,
            bos_token_id=None,  # GPT-2's own 50256 lies outside a small vocabulary: no special ids
            eos_token_id=None,
            pad_token_id=None,
        )
    )
    C = cfg.n_embd

    def bias(b: Tensor | None, n: int) -> Tensor:
        return b if b is not None else torch.zeros(n, dtype=model.wte.weight.dtype, device=model.wte.weight.device)

    state = {
        "transformer.wte.weight": model.wte.weight,
        "transformer.wpe.weight": model.wpe.weight if model.wpe is not None else model.pe,
        "transformer.ln_f.weight": model.ln_f.weight,
        "transformer.ln_f.bias": bias(model.ln_f.bias, C),
        "lm_head.weight": model.lm_head.weight,
    }
    for i, block in enumerate(model.blocks):
        a, h = block.attn, f"transformer.h.{i}."
        qkv = (a.q_proj, a.k_proj, a.v_proj)
        state.update(
            {
                h + "ln_1.weight": block.ln_1.weight,
                h + "ln_1.bias": bias(block.ln_1.bias, C),
                h + "attn.c_attn.weight": torch.cat([p.weight for p in qkv]).T,  # (C, 3C)
                h + "attn.c_attn.bias": torch.cat([bias(p.bias, C) for p in qkv]),
                h + "attn.c_proj.weight": a.out_proj.weight.T,
                h + "attn.c_proj.bias": bias(a.out_proj.bias, C),
                h + "ln_2.weight": block.ln_2.weight,
                h + "ln_2.bias": bias(block.ln_2.bias, C),
                h + "mlp.c_fc.weight": block.mlp.fc.weight.T,  # (C, 4C)
                h + "mlp.c_fc.bias": bias(block.mlp.fc.bias, 4 * C),
                h + "mlp.c_proj.weight": block.mlp.proj.weight.T,
                h + "mlp.c_proj.bias": bias(block.mlp.proj.bias, C),
            }
        )
    hf.to(device=model.wte.weight.device, dtype=model.wte.weight.dtype)
    hf.load_state_dict({k: v.contiguous() for k, v in state.items()}, strict=True)
    return hf.eval()


# ----------------------------------------------------------------------------------------------
# BERT: the same parts, post-norm and bidirectional, with real pretrained weights


@dataclass
class BertConfig:
    """The fields of a Hugging Face BERT config.json that the model needs (MiniLM's defaults)."""

    vocab_size: int = 30522
    hidden_size: int = 384
    num_hidden_layers: int = 6
    num_attention_heads: int = 12
    intermediate_size: int = 1536
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    hidden_act: str = "gelu"
    pad_token_id: int = 0

    @classmethod
    def from_dict(cls, d: dict) -> BertConfig:
        """Keep the known fields of a config.json dict; refuse the variants we do not implement."""
        if d.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(f"only absolute position embeddings are supported, got {d['position_embedding_type']!r}")
        if d.get("hidden_act", "gelu") not in _BERT_GELU:
            raise ValueError(f"unsupported hidden_act {d['hidden_act']!r}; known: {sorted(_BERT_GELU)}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# Hugging Face activation names -> our gelu's `approximate`
_BERT_GELU = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}


class BertEmbeddings(nn.Module):
    """word + position + token type (sentence A/B) embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        C = config.hidden_size
        self.word = nn.Embedding(config.vocab_size, C, padding_idx=config.pad_token_id)
        self.position = nn.Embedding(config.max_position_embeddings, C)
        self.token_type = nn.Embedding(config.type_vocab_size, C)
        self.ln = LayerNorm(C, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:  # (B, T) -> (B, T, C)
        pos = torch.arange(input_ids.size(1), device=input_ids.device)  # (T,)
        x = self.word(input_ids) + self.position(pos) + self.token_type(token_type_ids)
        return self.dropout(self.ln(x))


class BertLayer(nn.Module):
    """One post-norm encoder layer: x = LN(x + attn(x)); x = LN(x + mlp(x)). Not causal."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        C, eps = config.hidden_size, config.layer_norm_eps
        self.attn = MultiHeadAttention(
            C, config.num_attention_heads, bias=True, causal=False, dropout=config.attention_probs_dropout_prob
        )
        self.resid_dropout = nn.Dropout(config.hidden_dropout_prob)  # on the attention output
        self.ln_1 = LayerNorm(C, eps=eps)
        self.mlp = MLP(
            C,
            hidden=config.intermediate_size,
            dropout=config.hidden_dropout_prob,
            approximate=_BERT_GELU[config.hidden_act],
        )
        self.ln_2 = LayerNorm(C, eps=eps)

    def forward(self, x: Tensor, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """x (B, T, C), mask (B, 1, 1, T) -> (x (B, T, C), attention weights (B, H, T, T))."""
        a, weights = self.attn(x, mask=mask)
        x = self.ln_1(x + self.resid_dropout(a))
        x = self.ln_2(x + self.mlp(x))
        return x, weights


class BertEncoder(nn.Module):
    """A BERT encoder without the pooler: token ids -> one contextual vector per token, per layer."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"config must be a BertConfig, got {type(config).__name__}")
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, token_type_ids: Tensor | None = None
    ) -> tuple[list[Tensor], list[Tensor]]:
        """input_ids (B, T) -> (hidden_states, attentions).

        attention_mask (B, T): 1 for real tokens, 0 for padding (what the tokenizer returns);
        padding keys get attention weight 0. token_type_ids (B, T): sentence A (0) or B (1).
        hidden_states: num_hidden_layers + 1 tensors (B, T, C), the embeddings' output first
        (like Hugging Face's ``output_hidden_states``); attentions: one (B, H, T, T) per layer.
        """
        if not isinstance(input_ids, Tensor) or input_ids.dtype not in (torch.int64, torch.int32):
            raise TypeError("input_ids must be an integer torch.Tensor (B, T)")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (B, T), got shape {tuple(input_ids.shape)}")
        B, T = input_ids.shape
        if T > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence length {T} exceeds max_position_embeddings={self.config.max_position_embeddings}"
            )
        if int(input_ids.min()) < 0 or int(input_ids.max()) >= self.config.vocab_size:
            raise ValueError(f"input_ids outside [0, vocab_size={self.config.vocab_size})")
        for name, t in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids)):
            if t is not None and (not isinstance(t, Tensor) or t.shape != input_ids.shape):
                raise ValueError(f"{name} must be a tensor shaped like input_ids {(B, T)}")
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        mask = None
        if attention_mask is not None:
            mask = attention_mask.bool()[:, None, None, :]  # (B, 1, 1, T): hide padding keys

        x = self.embeddings(input_ids, token_type_ids)  # (B, T, C)
        hidden_states, attentions = [x], []
        for layer in self.layers:
            x, weights = layer(x, mask=mask)
            hidden_states.append(x)
            attentions.append(weights)
        return hidden_states, attentions


def convert_hf_bert_state_dict(hf: dict[str, Tensor], num_layers: int) -> dict[str, Tensor]:
    """Rename Hugging Face ``BertModel`` weights to :class:`BertEncoder`'s names.

    The pooler and the ``position_ids`` buffer are dropped (we have no pooler). Missing or
    unexpected names surface in ``load_state_dict(strict=True)``.
    """
    hf = {k.removeprefix("bert."): v for k, v in hf.items()}  # BertFor*-style checkpoints
    names = {
        "embeddings.word_embeddings.weight": "embeddings.word.weight",
        "embeddings.position_embeddings.weight": "embeddings.position.weight",
        "embeddings.token_type_embeddings.weight": "embeddings.token_type.weight",
        "embeddings.LayerNorm.weight": "embeddings.ln.weight",
        "embeddings.LayerNorm.bias": "embeddings.ln.bias",
    }
    per_layer = {
        "attention.self.query": "attn.q_proj",
        "attention.self.key": "attn.k_proj",
        "attention.self.value": "attn.v_proj",
        "attention.output.dense": "attn.out_proj",
        "attention.output.LayerNorm": "ln_1",
        "intermediate.dense": "mlp.fc",
        "output.dense": "mlp.proj",
        "output.LayerNorm": "ln_2",
    }
    for i in range(num_layers):
        for theirs, ours in per_layer.items():
            for p in ("weight", "bias"):
                names[f"encoder.layer.{i}.{theirs}.{p}"] = f"layers.{i}.{ours}.{p}"
    return {ours: hf[theirs] for theirs, ours in names.items() if theirs in hf}


def load_minilm(
    device: torch.device | str | None = None,
) -> tuple[BertEncoder, PreTrainedTokenizerBase]:
    """The pretrained all-MiniLM-L6-v2 (6 layers x 12 heads, C=384) as a :class:`BertEncoder` in
    eval mode on ``device`` (default: :func:`default_device`), and its tokenizer.

    The tokenizer is Hugging Face's BERT tokenizer (backed by ``tokenizers``), read from the same
    folder, no network: ``tok(sentences, padding=True, return_tensors="pt")`` gives input_ids,
    token_type_ids and attention_mask, which ``model(**batch)`` accepts directly.
    """
    from safetensors.torch import load_file
    from transformers import AutoTokenizer  # imported here: it takes seconds to import

    path = minilm_dir()
    config = BertConfig.from_dict(json.loads((path / "config.json").read_text()))
    model = BertEncoder(config)
    hf_state = load_file(str(path / "model.safetensors"))
    state = convert_hf_bert_state_dict(hf_state, config.num_hidden_layers)
    model.load_state_dict(state, strict=True)
    model.eval().to(default_device() if device is None else device)
    tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return model, tokenizer
