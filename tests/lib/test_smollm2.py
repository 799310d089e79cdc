"""SmolLM2-135M-Instruct read by the course's own code, against Hugging Face transformers.

The independent implementation: ``transformers`` loads the same GGUF file with its own reader,
dequantizer, tensor mapping, Llama model and tokenizer (``from_pretrained(folder, gguf_file=...)``,
offline). It is loaded once for this module (20-40 s). Expected values come only from it:
logits within 1e-4, identical token ids, 64 identical greedy tokens. Bad files are written here
with the ``gguf`` package's own writer.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported anywhere
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
import torch
from llmcourse.llama import Llama, LlamaConfig
from llmcourse.toolbox.smollm2 import (
    GGUFError,
    GGUFTokenizer,
    bytes_to_unicode,
    chat_prompt,
    load_gguf,
    permute_qk,
    read_gguf,
    smollm2_path,
    unpermute_qk,
)


@pytest.fixture(scope="module")
def ours(smollm2_ours):
    return smollm2_ours


@pytest.fixture(scope="module")
def hf(smollm2_hf):
    """(model, tokenizer) of Hugging Face transformers on the same file."""
    return smollm2_hf


LONG = (
    "Berkeley is a city on the eastern shore of San Francisco Bay in northern Alameda County, California. "
    "It is named after the 18th-century Anglo-Irish bishop and philosopher George Berkeley. It borders the "
    "cities of Oakland and Emeryville to the south and the city of Albany and the unincorporated community "
    "of Kensington to the north. Its eastern border with Contra Costa County generally follows the ridge of "
    "the Berkeley Hills. The 2020 census recorded a population of 124,321. Berkeley is home to the oldest "
    "campus in the University of California system, the University of California, Berkeley, and the Lawrence "
    "Berkeley National Laboratory, which is managed and operated by the university. It also has the Graduate "
    "Theological Union, one of the largest religious studies institutions in the United States."
)
PROMPTS = {
    "short": "The dog chased the",
    "long": LONG,
    "chat": chat_prompt([{"role": "user", "content": "What is the population of Berkeley?"}]),
}

TORTURE = [
    "",
    "hello world",
    "Hello, World! HELLO world... hello-world?",
    "  leading and trailing spaces   ",
    "tabs\tand\t\tnewlines\n\n\nand\r\nwindows\r\n",
    "          ten spaces then text",
    "x" * 300,
    "1234567890 3.14159 1,000,000 0x1F 2024-11-29 007",
    "I'm you're we've they'll she'd it's DON'T I'M",
    "naïve café résumé façade Zürich Ångström",
    "Привет, мир! Здравствуйте",
    "日本語のテキスト、中文文本，한국어 텍스트",
    "مرحبا بالعالم שלום עולם",
    "emoji 😀🎉👍🏽 family 👨‍👩‍👧‍👦 flag 🇫🇷 keycap 1️⃣",
    "math ∑∫√∞ ≤≥ ≠ x² y³ ½ Ⅻ",
    "zero\u200bwidth\u00a0nbsp\u2003emspace\u3000ideographic",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text<|endoftext|><|im_end|>",
    "not special: <|im_start |> <im_start> <|im_sta",
    "<repo_name>code<file_sep>def f(x):\n    return x ** 2  # square\n",
    "def main():\n\tif x == 1:\n\t\treturn {'a': [1, 2, 3]}\n",
    "Mixed\u0007control\u0001chars\u007f and \u0004 missing \u0006 bytes \u001d!!",
    "\U00040000 beyond plane 3 \U000e0001 tag",
    "!!!???...,,,;;;::: --- ___ *** ### @@@",
]


# ----------------------------------------------------------------------------------------------
# fidelity


@pytest.mark.parametrize("name", list(PROMPTS))
def test_logits_equal_hugging_face(ours, hf, name):
    model, tok = ours
    ids = torch.tensor([hf[1].encode(PROMPTS[name])])
    if name == "long":
        assert ids.size(1) >= 150
    with torch.inference_mode():
        got, _ = model(ids)
        want = hf[0](ids).logits
    assert got.shape == want.shape
    diff = (got - want).abs().max().item()
    assert diff <= 1e-4, f"{name}: max |logit difference| {diff:.2e}"


def test_batch_logits_equal_hugging_face(ours, hf):
    ids = torch.tensor([hf[1].encode("The cat sat on the mat"), hf[1].encode("Once upon a time, there")])
    with torch.inference_mode():
        got, _ = ours[0](ids)
        want = hf[0](ids).logits
    assert (got - want).abs().max().item() <= 1e-4


@pytest.mark.parametrize("text", TORTURE)
def test_tokenizer_ids_equal_hugging_face(ours, hf, text):
    tok = ours[1]
    assert tok.encode(text) == hf[1].encode(text, add_special_tokens=True)


def test_decode_round_trips(ours, hf):
    tok = ours[1]
    for text in TORTURE:
        ids = tok.encode(text)
        if not any(c in text for c in "\u0004\u0006\u001d\U00040000"):  # those bytes are dropped
            assert tok.decode(ids) == text
        assert tok.decode(ids) == hf[1].decode(ids, clean_up_tokenization_spaces=False)


def test_special_tokens_can_be_plain_text(ours):
    tok = ours[1]
    text = "<|im_start|>user"
    assert tok.encode(text)[0] == tok.special_tokens["<|im_start|>"]
    plain = tok.encode(text, allowed_special="none")
    assert tok.special_tokens["<|im_start|>"] not in plain and tok.decode(plain) == text


def test_chat_template_equals_the_gguf_template(ours, hf):
    tok = ours[1]
    for messages in (
        [{"role": "user", "content": "What is the population of Berkeley?"}],
        [
            {"role": "system", "content": "Answer briefly."},
            {"role": "user", "content": "2 + 2?"},
            {"role": "assistant", "content": "4"},
            {"role": "user", "content": "And 3 + 3?"},
        ],
    ):
        for gen in (True, False):
            want = hf[1].apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
            assert chat_prompt(messages, gen) == want
            assert tok.encode_chat(messages, gen) == hf[1].encode(want)


def test_greedy_64_tokens_equal_hugging_face_cached_and_uncached(ours, hf):
    model, tok = ours
    ids = torch.tensor([tok.encode(PROMPTS["short"])])
    with torch.inference_mode():
        want = hf[0].generate(ids, max_new_tokens=64, do_sample=False, attention_mask=torch.ones_like(ids))
    assert want.size(1) == ids.size(1) + 64, "Hugging Face stopped early: pick a prompt it continues"
    cached = model.generate(ids, 64, greedy=True)
    assert cached.tolist() == want.tolist()
    # Uncached: one forward pass over the whole sequence, without a cache, computes what every
    # step of uncached generation computes (causal attention: position t sees only tokens <= t);
    # its argmax at each position must be the next token generated. (test_llama.py runs
    # generate(use_cache=False) step by step on small models; here that would cost 64 passes.)
    with torch.inference_mode():
        logits, _ = model(cached[:, :-1])
    T = ids.size(1)
    assert logits[0, T - 1 :].argmax(-1).tolist() == cached[0, T:].tolist()


def test_chat_answer_stops_at_im_end(ours):
    model, tok = ours
    ids = torch.tensor([tok.encode_chat([{"role": "user", "content": "Say hello."}])])
    out = model.generate(ids, 24, greedy=True, stop_tokens=[tok.special_tokens["<|im_end|>"]])
    answer = out[0, ids.size(1) :].tolist()
    assert answer[-1] == tok.special_tokens["<|im_end|>"] or len(answer) == 24
    assert tok.decode(answer, skip_special=True).strip()


def test_unpermute_equals_hugging_face_and_inverts_llama_cpp():
    from transformers.modeling_gguf_pytorch_utils import LlamaTensorProcessor

    torch.manual_seed(0)
    for n_head in (9, 3):
        w = torch.randn(n_head * 64, 576)
        hf_proc = LlamaTensorProcessor(config={"num_attention_heads": 9, "num_key_value_heads": n_head})
        want = hf_proc._reverse_permute_weights(w.numpy(), 9, n_head)
        assert np.array_equal(unpermute_qk(w, n_head).numpy(), want)
        assert torch.equal(unpermute_qk(permute_qk(w, n_head), n_head), w)


def test_prompt_longer_than_the_context_is_refused(ours):
    model, _ = ours
    too_long = torch.zeros(1, model.config.block_size + 1, dtype=torch.long)
    with pytest.raises(ValueError, match="more than the context of 8192"):
        model.generate(too_long, 1)
    with pytest.raises(ValueError, match="exceed the context of 8192"):
        model.generate(too_long[:, :8190], 5)


# ----------------------------------------------------------------------------------------------
# bad files, written with the gguf package's own writer


def write_tiny_gguf(path, arch="llama", weight_dtype=np.float32, tokenizer_model="gpt2", seed=0) -> Llama:
    """A tiny Llama written the way llama.cpp's converter writes one (Q and K permuted)."""
    import gguf

    torch.manual_seed(seed)
    merges = ["Ġ t", "h e", "Ġt he"]
    spelling = bytes_to_unicode()
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"] + [spelling[b] for b in range(256)]
    tokens += [m.replace(" ", "") for m in merges]
    config = LlamaConfig(vocab_size=len(tokens), block_size=32, n_layer=2, n_head=4, n_kv_head=2, n_embd=32, hidden=48)
    model = Llama(config).eval()
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(config.n_layer)
    w.add_context_length(config.block_size)
    w.add_embedding_length(config.n_embd)
    w.add_feed_forward_length(config.hidden)
    w.add_head_count(config.n_head)
    w.add_head_count_kv(config.n_kv_head)
    w.add_rope_freq_base(config.rope_theta)
    w.add_layer_norm_rms_eps(config.norm_eps)
    w.add_vocab_size(config.vocab_size)
    w.add_tokenizer_model(tokenizer_model)
    w.add_tokenizer_pre("smollm")
    w.add_token_list(tokens)
    w.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
    w.add_token_merges(merges)
    w.add_eos_token_id(2)

    def put(name, t):
        w.add_tensor(name, t.detach().numpy().astype(weight_dtype))

    H, Hkv, hd = config.n_head, config.n_kv_head, config.head_dim
    put("token_embd.weight", model.embed.weight)
    put("output_norm.weight", model.norm.weight)
    for n, b in enumerate(model.blocks):
        q, k, v = b.attn.qkv_proj.weight.split([H * hd, Hkv * hd, Hkv * hd])
        put(f"blk.{n}.attn_q.weight", permute_qk(q, H))
        put(f"blk.{n}.attn_k.weight", permute_qk(k, Hkv))
        put(f"blk.{n}.attn_v.weight", v)
        put(f"blk.{n}.attn_output.weight", b.attn.o_proj.weight)
        put(f"blk.{n}.attn_norm.weight", b.attn_norm.weight)
        put(f"blk.{n}.ffn_norm.weight", b.mlp_norm.weight)
        gate, up = b.mlp.gate_up_proj.weight.chunk(2)
        put(f"blk.{n}.ffn_gate.weight", gate)
        put(f"blk.{n}.ffn_up.weight", up)
        put(f"blk.{n}.ffn_down.weight", b.mlp.down_proj.weight)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model


def test_a_written_tiny_model_loads_back(tmp_path):
    original = write_tiny_gguf(tmp_path / "tiny.gguf")
    model, tok = load_gguf(tmp_path / "tiny.gguf")
    ids = torch.tensor([tok.encode("the the<|im_end|>")])
    # "t" then the merge "he"; " the" by the third merge; the special token
    assert ids.tolist() == [[3 + ord("t"), 3 + 256 + 1, 3 + 256 + 2, 2]]
    with torch.inference_mode():
        assert (model(ids)[0] - original(ids)[0]).abs().max().item() < 1e-6


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such GGUF file"):
        load_gguf(tmp_path / "nothing.gguf")


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 this is a zip file")
    with pytest.raises(GGUFError, match="not a GGUF file"):
        load_gguf(path)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_file(tmp_path, keep):
    write_tiny_gguf(tmp_path / "tiny.gguf")
    data = (tmp_path / "tiny.gguf").read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(GGUFError, match="corrupt or truncated"):
        load_gguf(cut)


def test_truncated_real_file(tmp_path):
    cut = tmp_path / "cut.gguf"
    with open(smollm2_path(), "rb") as f:
        cut.write_bytes(f.read(5_000_000))
    with pytest.raises(GGUFError, match="corrupt or truncated"):
        read_gguf(cut)


def test_unsupported_tensor_type(tmp_path):
    write_tiny_gguf(tmp_path / "tiny.gguf", weight_dtype=np.int8)  # stored as I8: no dequantizer
    with pytest.raises(GGUFError, match="stored as I8, which this loader does not dequantize"):
        load_gguf(tmp_path / "tiny.gguf")


def test_unsupported_architecture(tmp_path):
    write_tiny_gguf(tmp_path / "tiny.gguf", arch="gpt2")
    with pytest.raises(GGUFError, match="holds a 'gpt2' model"):
        load_gguf(tmp_path / "tiny.gguf")


def test_unsupported_tokenizer(tmp_path):
    write_tiny_gguf(tmp_path / "tiny.gguf", tokenizer_model="llama")
    with pytest.raises(GGUFError, match="only byte-level BPE"):
        GGUFTokenizer.from_gguf(read_gguf(tmp_path / "tiny.gguf"))


def test_hf_smollm2_hands_the_same_weights_to_hugging_faces_llama(ours):
    """hf_smollm2 (the lectures' loader: our reading of the file, Hugging Face's model) gives our
    Llama's logits: the same weights in the same places, q/k rows and fused matrices split right."""
    from llmcourse.toolbox.smollm2 import hf_smollm2

    model, tok = ours
    hf, hf_tok, hp = hf_smollm2()
    ids = torch.tensor([tok.encode("The dog chased the ball across the")])  # (1, T)
    with torch.no_grad():
        want, _ = model(ids)  # (1, T, V)
        got = hf(ids).logits  # (1, T, V)
    assert hp["n_layer"] == len(hf.model.layers) and hf_tok.vocab_size == hp["vocab_size"]
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
