"""Tests for llmcourse.transformer (assignment 05's answer key).

References: ``nn.LayerNorm``, ``F.gelu``, ``nn.MultiheadAttention``, the formula of "Attention is
all you need" for sinusoidal positions, Hugging Face ``transformers.GPT2LMHeadModel`` with our GPT's
weights copied in (logits and greedy tokens, its own KV cache), Hugging Face
``transformers.BertModel`` on the real all-MiniLM-L6-v2 weights (from the installed package, never
the network), and for the KV cache the model's own uncached generation.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers is imported anywhere
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from llmcourse.attention import causal_mask
from llmcourse.transformer import (
    GPT,
    MLP,
    BertConfig,
    BertEncoder,
    Block,
    GPTConfig,
    LayerNorm,
    default_device,
    gelu,
    load_minilm,
    minilm_dir,
    sinusoidal_positions,
    to_hf_gpt2,
)

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def tiny(**kw) -> GPTConfig:
    base = dict(block_size=16, vocab_size=48, n_layer=2, n_head=4, n_embd=32)
    base.update(kw)
    return GPTConfig(**base)


# ----------------------------------------------------------------------------------------------
# the parts


def test_default_device():
    dev = default_device()
    assert isinstance(dev, torch.device)
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("eps", [1e-5, 1e-12])
def test_layernorm_matches_torch(bias, eps):
    torch.manual_seed(0)
    ours, theirs = LayerNorm(24, bias=bias, eps=eps).double(), nn.LayerNorm(24, eps=eps, bias=bias).double()
    with torch.no_grad():
        ours.weight.normal_()
        theirs.weight.copy_(ours.weight)
        if bias:
            ours.bias.normal_()
            theirs.bias.copy_(ours.bias)
    x = torch.randn(3, 5, 24, dtype=torch.float64) * 4 + 2
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-12, rtol=0)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_and_mlp_match_torch(approximate):
    x = torch.linspace(-6, 6, 1001, dtype=torch.float64)
    torch.testing.assert_close(gelu(x, approximate), F.gelu(x, approximate=approximate), atol=1e-12, rtol=0)
    torch.manual_seed(0)
    mlp = MLP(16, approximate=approximate).double()
    h = torch.randn(2, 3, 16, dtype=torch.float64)
    ref = F.linear(
        F.gelu(F.linear(h, mlp.fc.weight, mlp.fc.bias), approximate=approximate), mlp.proj.weight, mlp.proj.bias
    )
    assert mlp.fc.weight.shape == (64, 16)  # hidden = 4C by default
    torch.testing.assert_close(mlp(h), ref, atol=1e-12, rtol=0)


def test_block_matches_torch_modules():
    """Our pre-norm block == the same computation built from torch's own modules."""
    torch.manual_seed(0)
    cfg = tiny()
    block = Block(cfg).double().eval()
    with torch.no_grad():
        for p in block.parameters():
            p.normal_(0, 0.3)
    ln1, ln2 = nn.LayerNorm(32).double(), nn.LayerNorm(32).double()
    mha = nn.MultiheadAttention(32, 4, batch_first=True).double()
    with torch.no_grad():
        for ln, ours in ((ln1, block.ln_1), (ln2, block.ln_2)):
            ln.weight.copy_(ours.weight)
            ln.bias.copy_(ours.bias)
        a = block.attn
        mha.in_proj_weight.copy_(torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]))
        mha.in_proj_bias.copy_(torch.cat([a.q_proj.bias, a.k_proj.bias, a.v_proj.bias]))
        mha.out_proj.weight.copy_(a.out_proj.weight)
        mha.out_proj.bias.copy_(a.out_proj.bias)
    x = torch.randn(2, 7, 32, dtype=torch.float64)
    h = ln1(x)
    x_ref = x + mha(h, h, h, attn_mask=~causal_mask(7), need_weights=False)[0]
    x_ref = x_ref + F.linear(
        F.gelu(F.linear(ln2(x_ref), block.mlp.fc.weight, block.mlp.fc.bias)), block.mlp.proj.weight, block.mlp.proj.bias
    )
    torch.testing.assert_close(block(x), x_ref, atol=1e-10, rtol=0)


def test_sinusoidal_positions_known_values():
    pe = sinusoidal_positions(50, 8)
    assert pe.shape == (50, 8)
    assert torch.equal(pe[0], torch.tensor([0.0, 1.0] * 4))  # sin(0), cos(0)
    for pos in (1, 7, 49):
        for i in range(4):
            angle = pos / 10000 ** (2 * i / 8)
            assert pe[pos, 2 * i].item() == pytest.approx(math.sin(angle), abs=1e-6)
            assert pe[pos, 2 * i + 1].item() == pytest.approx(math.cos(angle), abs=1e-6)
    assert pe[1, 0].item() == pytest.approx(0.8414709848, abs=1e-7)  # sin(1)
    assert pe[1, 1].item() == pytest.approx(0.5403023059, abs=1e-7)  # cos(1)
    assert sinusoidal_positions(4, 5).shape == (4, 5)  # odd C: the last channel is a sine


# ----------------------------------------------------------------------------------------------
# GPT


def formula_params(cfg: GPTConfig, non_embedding: bool) -> int:
    """Count by hand: per block 2 LayerNorms + 4 (C, C) projections + MLP (C -> 4C -> C)."""
    C, V, L = cfg.n_embd, cfg.vocab_size, cfg.n_layer
    b = 1 if cfg.bias else 0
    ln = C + b * C
    attn = 4 * (C * C + b * C)
    mlp = (C * 4 * C + b * 4 * C) + (4 * C * C + b * C)
    per_block = 2 * ln + attn + mlp  # = 12 C^2 + 13 C with biases
    wpe = cfg.block_size * C if cfg.positions == "learned" else 0
    total = V * C + wpe + L * per_block + ln  # wte (= lm_head, tied) + positions + blocks + ln_f
    return total - wpe if non_embedding else total


@pytest.mark.parametrize("kw", [{}, {"bias": False}, {"positions": "sinusoidal"}, {"n_layer": 3, "n_embd": 48}])
def test_num_params_equals_formula(kw):
    cfg = tiny(**kw)
    model = GPT(cfg)
    assert model.num_params(non_embedding=False) == formula_params(cfg, False)
    assert model.num_params() == formula_params(cfg, True)
    if cfg.bias:
        C = cfg.n_embd
        wpe = cfg.block_size * C if cfg.positions == "learned" else 0
        assert formula_params(cfg, False) == (cfg.vocab_size * C + wpe + cfg.n_layer * (12 * C * C + 13 * C) + 2 * C)


def test_weight_tying():
    model = GPT(tiny())
    assert model.wte.weight is model.lm_head.weight
    assert model.wte.weight.data_ptr() == model.lm_head.weight.data_ptr()
    # one tensor in parameters(), so the optimizer updates it once
    assert sum(p is model.wte.weight for p in model.parameters()) == 1


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
def test_loss_at_init_is_about_ln_vocab(positions):
    torch.manual_seed(0)
    cfg = tiny(vocab_size=256, positions=positions)
    model = GPT(cfg).eval()
    idx = torch.randint(0, 256, (8, 16))
    targets = torch.randint(0, 256, (8, 16))
    logits, loss = model(idx, targets)
    assert logits.shape == (8, 16, 256)
    assert loss.item() == pytest.approx(math.log(256), abs=0.1)  # a near-uniform guess
    assert model(idx)[1] is None


def test_adamw_steps_lower_the_loss():
    torch.manual_seed(0)
    model = GPT(tiny(vocab_size=16))
    seq = torch.arange(8).repeat(5)[None, :17]  # 0 1 2 ... 7 0 1 ...: the next token is predictable
    x, y = seq[:, :-1], seq[:, 1:]
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        _, loss = model(x, y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model(x, y)[1].item() < 0.5 * first


@pytest.mark.parametrize("positions", ["learned", "sinusoidal"])
@pytest.mark.parametrize("device", DEVICES)
def test_cached_and_uncached_greedy_generation_agree(positions, device):
    """Identical tokens, float64 so that rounding can never flip a near-tie between the two paths.
    Prompt 9 + 20 new tokens crosses block_size=16: the sliding window is exercised too."""
    torch.manual_seed(0)
    model = GPT(tiny(positions=positions)).double().to(device).eval()
    g = torch.Generator().manual_seed(1)
    prompts = [
        torch.randint(0, 48, (1, 1), generator=g),
        torch.randint(0, 48, (3, 4), generator=g),
        torch.randint(0, 48, (2, 9), generator=g),
        torch.randint(0, 48, (1, 16), generator=g),
    ]
    for prompt in prompts:
        prompt = prompt.to(device)
        cached = model.generate(prompt, 20, greedy=True, use_cache=True)
        plain = model.generate(prompt, 20, greedy=True, use_cache=False)
        assert cached.shape == (prompt.size(0), prompt.size(1) + 20)
        assert torch.equal(cached[:, : prompt.size(1)], prompt)
        assert torch.equal(cached, plain)


def test_cached_and_uncached_sampling_agree_and_top_k_1_is_greedy():
    torch.manual_seed(0)
    model = GPT(tiny()).double().eval()
    prompt = torch.randint(0, 48, (2, 3))
    a = model.generate(prompt, 12, temperature=0.8, top_k=10, generator=torch.Generator().manual_seed(5))
    b = model.generate(
        prompt, 12, temperature=0.8, top_k=10, use_cache=False, generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(a, b)
    assert torch.equal(model.generate(prompt, 8, top_k=1), model.generate(prompt, 8, greedy=True))


def test_attention_maps_are_causal_distributions():
    model = GPT(tiny()).eval()
    maps = model.attention_maps(torch.randint(0, 48, (2, 6)))
    assert len(maps) == 2 and maps[0].shape == (2, 4, 6, 6)
    for w in maps:
        assert (w.masked_select(~causal_mask(6)) == 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, 6))


# ----------------------------------------------------------------------------------------------
# GPT against Hugging Face's GPT-2 with the same weights


def random_gpt(cfg: GPTConfig, dtype=torch.float32, seed: int = 0) -> GPT:
    """A GPT whose every parameter is random at a scale that keeps activations O(1): logits then
    spread over a few units, so that a wrong layout would show (at init they are all ~0)."""
    torch.manual_seed(seed)
    model = GPT(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:  # Linear (out, in) and embeddings (V or T, C)
                p.normal_(0.0, 1.0 / math.sqrt(p.size(1)))
            elif name.endswith("weight"):  # LayerNorm gains
                p.normal_(1.0, 0.2)
            else:  # biases
                p.normal_(0.0, 0.2)
    return model.to(dtype)  # drawn in float32 first: the same weights in either dtype


@pytest.mark.parametrize("kw", [{}, {"bias": False}, {"positions": "sinusoidal"}])
def test_gpt_logits_equal_hf_gpt2(kw):
    """float32: the same network computed by Hugging Face agrees to 1e-5 on O(1) logits."""
    model = random_gpt(tiny(block_size=32, vocab_size=64, **kw))
    hf = to_hf_gpt2(model)
    assert type(hf).__name__ == "GPT2LMHeadModel"
    idx = torch.randint(0, 64, (3, 32), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(idx)[0], hf(idx, output_hidden_states=True)
    assert ours.abs().max() > 1.0  # not the near-zero logits of an untrained model
    torch.testing.assert_close(ours, theirs.logits, atol=1e-5, rtol=0)
    # without the head: HF's last hidden state is after ln_f, as ours is
    torch.testing.assert_close(model.hidden_states(idx), theirs.hidden_states[-1], atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="vocab_size"):
        model.hidden_states(idx + 64)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_greedy_tokens_equal_hf_gpt2_generate(dtype):
    """Ours cached, ours uncached and Hugging Face's generate (its own KV cache): the same tokens."""
    model = random_gpt(tiny(block_size=48, vocab_size=64), dtype=dtype, seed=2)
    hf = to_hf_gpt2(model)
    g = torch.Generator().manual_seed(3)
    for prompt in (torch.randint(0, 64, (1, 1), generator=g), torch.randint(0, 64, (2, 7), generator=g)):
        cached = model.generate(prompt, 40, greedy=True)
        plain = model.generate(prompt, 40, greedy=True, use_cache=False)
        theirs = hf.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=40, do_sample=False)
        assert cached.shape == (prompt.size(0), prompt.size(1) + 40)
        assert torch.equal(cached, theirs)
        assert torch.equal(plain, theirs)
        assert len(set(cached[:, prompt.size(1) :].flatten().tolist())) > 3  # not one token repeated


def test_to_hf_gpt2_refuses_other_models():
    with pytest.raises(TypeError, match="must be a GPT"):
        to_hf_gpt2(nn.Linear(2, 2))


def test_generate_keeps_int32_prompts_and_zero_new_tokens():
    model = GPT(tiny()).eval()
    prompt = torch.randint(0, 48, (2, 3), dtype=torch.int32)
    assert model.generate(prompt, 0) is prompt
    out = model.generate(prompt, 4, greedy=True)
    assert out.dtype == torch.long and torch.equal(out[:, :3], prompt.long())
    assert torch.equal(out, model.generate(prompt.long(), 4, greedy=True))


def test_generate_leaves_no_packed_weights_behind():
    """generate packs q, k, v for its own duration only: a weight changed afterwards is used at once."""
    model = GPT(tiny()).double().eval()
    model.generate(torch.randint(0, 48, (1, 4)), 3, greedy=True)
    attn = model.blocks[0].attn
    with torch.no_grad():
        attn.q_proj.weight.mul_(2.0)
    mha = nn.MultiheadAttention(32, 4, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([attn.q_proj.weight, attn.k_proj.weight, attn.v_proj.weight]))
        mha.in_proj_bias.copy_(torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]))
        mha.out_proj.weight.copy_(attn.out_proj.weight)
        mha.out_proj.bias.copy_(attn.out_proj.bias)
        x = torch.randn(2, 5, 32, dtype=torch.float64)
        ours, _ = attn(x, need_weights=False)
        theirs = mha(x, x, x, attn_mask=~causal_mask(5), need_weights=False)[0]
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)


def test_gpt_errors():
    model = GPT(tiny())
    with pytest.raises(ValueError, match="exceeds block_size=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="exceeds block_size=16"):
        model.generate(torch.zeros(1, 17, dtype=torch.long), 1)
    with pytest.raises(TypeError, match="integer token ids"):
        model(torch.zeros(1, 4))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[1, 2, 3]])
    with pytest.raises(ValueError, match=r"outside \[0, vocab_size=48\)"):
        model(torch.tensor([[1, 48]]))
    with pytest.raises(ValueError, match=r"\(B, T\)"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="targets must be"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.zeros(1, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="temperature"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 3, temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        model.generate(torch.zeros(1, 2, dtype=torch.long), 3, top_k=0)
    with pytest.raises(ValueError, match="not divisible"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="positions"):
        GPTConfig(positions="rotary")
    with pytest.raises(ValueError, match="positive int"):
        GPTConfig(block_size=0)


# ----------------------------------------------------------------------------------------------
# BERT on the real MiniLM weights against Hugging Face


SENTENCES = [
    "The cat sat on the mat.",
    "Hello!",
    "The bank of the river was muddy, so we walked to the other bank to deposit our money.",
    "She said that he would come, but he never did.",
]


@pytest.fixture(scope="module")
def minilm_pair():
    """Ours and Hugging Face's BERT on the same MiniLM weights, both in float64.

    The claim is that the two compute the same function, so it is checked where rounding cannot hide a
    difference or invent one: in float32 the two sum in different orders, and PyTorch's kernels round
    differently per CPU (hidden state 5 differed by 1.05e-4 on an AVX-512 EPYC against 6e-5 here). In
    float64 they agree to 6e-14 (hidden states) and 4e-15 (attentions) here, so 1e-10 leaves a margin
    of 10^3 for any summation order, while a real mistake (a missing scale, the wrong LayerNorm eps,
    GELU's tanh form) moves hidden states by 1e-3 or more."""
    from transformers import BertModel

    device = default_device()
    ours, tok = load_minilm(device=device)
    theirs = (
        BertModel.from_pretrained(str(minilm_dir()), attn_implementation="eager", local_files_only=True)
        .to(device)
        .eval()
    )
    return ours.double(), theirs.double(), tok, device


def test_minilm_matches_hf_bert(minilm_pair):
    ours, theirs, tok, device = minilm_pair
    assert not ours.training
    batch = tok(SENTENCES, padding=True, return_tensors="pt").to(device)
    assert (batch["attention_mask"] == 0).any()  # several lengths: the batch is padded
    with torch.no_grad():
        hidden, attentions = ours(**batch)
        ref = theirs(**batch, output_hidden_states=True, output_attentions=True)
    assert len(hidden) == 7 and len(attentions) == 6
    B, T = batch["input_ids"].shape
    for i, (h, r) in enumerate(zip(hidden, ref.hidden_states)):
        assert h.shape == (B, T, 384)
        assert h.dtype == torch.float64
        torch.testing.assert_close(h, r, atol=1e-10, rtol=0, msg=lambda m, i=i: f"hidden state {i}: {m}")
    for i, (a, r) in enumerate(zip(attentions, ref.attentions)):
        assert a.shape == (B, 12, T, T)
        torch.testing.assert_close(a, r, atol=1e-10, rtol=0, msg=lambda m, i=i: f"attention layer {i}: {m}")
    # padding keys get no attention at all
    pad = batch["attention_mask"] == 0  # (B, T)
    assert (attentions[0].permute(0, 3, 1, 2)[pad] == 0).all()


def test_minilm_sentence_pair_token_types(minilm_pair):
    ours, theirs, tok, device = minilm_pair
    batch = tok(
        ["Is it raining?", "A question"], ["Yes, it is.", "and its answer here"], padding=True, return_tensors="pt"
    ).to(device)
    assert (batch["token_type_ids"] == 1).any()
    with torch.no_grad():
        hidden, _ = ours(**batch)
        ref = theirs(**batch, output_hidden_states=True)
    torch.testing.assert_close(hidden[-1], ref.hidden_states[-1], atol=1e-10, rtol=0)


def test_bert_errors():
    with pytest.raises(ValueError, match="absolute"):
        BertConfig.from_dict({"position_embedding_type": "relative_key"})
    cfg = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=8,
    )
    model = BertEncoder(cfg).eval()
    ids = torch.ones(2, 5, dtype=torch.long)
    with pytest.raises(ValueError, match="attention_mask must be a tensor shaped like input_ids"):
        model(ids, attention_mask=torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="max_position_embeddings=8"):
        model(torch.ones(1, 9, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        model(ids.float())
