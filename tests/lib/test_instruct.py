"""llmcourse.instruct against independent references: Hugging Face's chat template on SmolLM2's own
tokenizer, F.cross_entropy on the response tokens alone, autograd, a hand-written SGD step; and the
acceptance run (the course's Shakespeare GPT learns to answer held-out generated instructions)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from llmcourse.instruct import (
    IM_END,
    IM_START,
    add_chat_tokens,
    evaluate,
    exact_match,
    format_chat,
    generate_responses,
    masked_loss,
    masked_loss_naive,
    pad_batch,
    sft,
    sft_step,
    tokenize_example,
    tokenize_examples,
)
from llmcourse.tokenization import Tokenizer
from llmcourse.toolbox.instructions import Instruction, generate_instructions, split_instructions
from llmcourse.transformer import GPT, GPTConfig

SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


@pytest.fixture(scope="module")
def gguf_tok():
    from llmcourse.toolbox.smollm2 import GGUFTokenizer, read_gguf, smollm2_path

    return GGUFTokenizer.from_gguf(read_gguf(smollm2_path()))


@pytest.fixture(scope="module")
def hf_tok():
    from llmcourse.toolbox.smollm2 import smollm2_path
    from transformers import AutoTokenizer

    path = smollm2_path()
    return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name, local_files_only=True)


def _hf_ids(hf_tok, messages, add_generation_prompt):
    out = hf_tok.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=True)
    return list(out["input_ids"] if isinstance(out, dict) or hasattr(out, "keys") else out)


# ----------------------------------------------------------------------------------------------
# the template


CONVERSATIONS = [
    [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "What is population of Berkeley?"}],
    [
        {"role": "system", "content": "Answer in one word."},
        {"role": "user", "content": "Who says 'To be, or not to be'?"},
        {"role": "assistant", "content": "HAMLET"},
        {"role": "user", "content": "In which play does PROSPERO speak?\nBe brief."},
    ],
]


@pytest.mark.parametrize("conversation", CONVERSATIONS)
@pytest.mark.parametrize("add_generation_prompt", [False, True])
def test_template_ids_equal_hugging_face(gguf_tok, hf_tok, conversation, add_generation_prompt):
    ours = gguf_tok.encode(format_chat(conversation, add_generation_prompt))
    assert ours == _hf_ids(hf_tok, conversation, add_generation_prompt)


def test_template_text():
    text = format_chat([{"role": "user", "content": "Hi"}], add_generation_prompt=True)
    assert text == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"


def test_tokenized_pair_equals_hugging_face(gguf_tok, hf_tok):
    system, q, a = "Be brief.", "Who says 'To be, or not to be'?", "HAMLET"
    ids, mask = tokenize_example(gguf_tok, q, a, system=system)
    full = _hf_ids(
        hf_tok,
        [{"role": "system", "content": system}, {"role": "user", "content": q}, {"role": "assistant", "content": a}],
        False,
    )
    prompt = _hf_ids(hf_tok, [{"role": "system", "content": system}, {"role": "user", "content": q}], True)
    # our sequence ends at <|im_end|>; the template adds a newline after it
    assert ids == full[:-1] and hf_tok.decode(full[-1:]) == "\n"
    assert mask == [0] * len(prompt) + [1] * (len(full) - 1 - len(prompt))
    assert hf_tok.decode([i for i, m in zip(ids, mask) if m]) == a + IM_END


# ----------------------------------------------------------------------------------------------
# batch, masked loss, gradients


def _random_batch(seed=0, B=4, T=7, V=11):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, T, V, generator=g, dtype=torch.float64) * 3
    targets = torch.randint(0, V, (B, T), generator=g)
    mask = torch.zeros(B, T)
    for b, (s, e) in enumerate([(2, 5), (0, 7), (6, 7), (3, 4)][:B]):
        mask[b, s:e] = 1
    return logits, targets, mask


def test_masked_loss_equals_cross_entropy_on_response_tokens_alone():
    logits, targets, mask = _random_batch()
    keep = mask.bool()
    expected = F.cross_entropy(logits[keep], targets[keep])  # only the response positions exist here
    torch.testing.assert_close(masked_loss(logits, targets, mask), expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(masked_loss_naive(logits, targets, mask), expected, rtol=1e-12, atol=1e-12)


def test_prompt_positions_get_exactly_zero_gradient():
    logits, targets, mask = _random_batch(1)
    logits.requires_grad_(True)
    masked_loss(logits, targets, mask).backward()
    grad = logits.grad  # (B, T, V)
    assert torch.count_nonzero(grad[~mask.bool()]) == 0
    assert bool((grad[mask.bool()].abs().sum(-1) > 0).all())


def test_prompt_tokens_cannot_change_the_loss_through_their_targets():
    logits, targets, mask = _random_batch(2)
    other = targets.clone()
    other[~mask.bool()] = (other[~mask.bool()] + 3) % 11  # rewrite every prompt target
    assert masked_loss(logits, targets, mask) == masked_loss(logits, other, mask)


def test_pad_batch_layout():
    inputs, targets, loss_mask, attn = pad_batch([([5, 6, 7, 8], [0, 0, 1, 1]), ([5, 9, 3], [0, 1, 1])], pad_id=0)
    assert inputs.tolist() == [[5, 6, 7], [5, 9, 0]]
    assert targets.tolist() == [[6, 7, 8], [9, 3, 0]]
    assert loss_mask.tolist() == [[0, 1, 1], [1, 1, 0]]
    assert attn.tolist() == [[1, 1, 1], [1, 1, 0]]


def test_right_padding_leaves_real_positions_unchanged():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=20, n_layer=2, n_head=2, n_embd=16)).eval()
    examples = [([1, 2, 3, 4, 5, 6, 7], [0, 0, 0, 1, 1, 1, 1]), ([8, 9, 10], [0, 1, 1])]
    inputs, _, _, attn = pad_batch(examples, pad_id=19)
    padded, _ = model(inputs)
    for b, (ids, _) in enumerate(examples):
        alone, _ = model(torch.tensor([ids[:-1]]))
        n = int(attn[b].sum())
        torch.testing.assert_close(padded[b, :n], alone[0], rtol=1e-5, atol=1e-6)


def test_sft_step_is_one_sgd_step_on_the_response_loss():
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=8)).double()
    ref = GPT(GPTConfig(block_size=8, vocab_size=13, n_layer=1, n_head=2, n_embd=8)).double()
    ref.load_state_dict(model.state_dict())
    inputs, targets, mask = torch.randint(0, 13, (3, 6)), torch.randint(0, 13, (3, 6)), torch.zeros(3, 6)
    mask[:, 3:] = 1
    loss = sft_step(model, torch.optim.SGD(model.parameters(), lr=0.1), inputs, targets, mask)
    # the reference: F.cross_entropy on the response positions alone, autograd, p - lr * grad by hand
    logits, _ = ref(inputs)
    keep = mask.bool()
    ref_loss = F.cross_entropy(logits[keep], targets[keep])
    grads = torch.autograd.grad(ref_loss, list(ref.parameters()))
    assert loss == pytest.approx(ref_loss.item(), rel=1e-12)
    for p, q, g in zip(model.parameters(), ref.parameters(), grads):
        torch.testing.assert_close(p, q - 0.1 * g, rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# the course GPT learns to answer (acceptance)


@pytest.fixture(scope="module")
def shakespeare():
    from llmcourse.training import load_pretrained

    model, tok, _ = load_pretrained("checkpoints/shakespeare_gpt.pt")
    return model, tok


def test_add_chat_tokens(shakespeare):
    import copy

    model, tok = (copy.deepcopy(x) for x in shakespeare)
    assert add_chat_tokens(tok, model) == (512, 513)
    assert model.wte.weight is model.lm_head.weight and model.wte.weight.shape[0] == 514
    assert tok.encode(f"{IM_START}user\nhi{IM_END}", allowed_special="all")[0] == 512
    logits, _ = model(torch.tensor([[512, 1, 513]]))
    assert logits.shape == (1, 3, 514)
    assert add_chat_tokens(tok, model) == (512, 513)  # a second call changes nothing


# SFT of the Shakespeare GPT on one family (what is the first word of '...'?), as in the assignment
SFT_BAR = 0.4


def test_exact_match_rises_from_zero_to_the_bar(shakespeare):
    import copy

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, tok = (copy.deepcopy(x) for x in shakespeare)
        add_chat_tokens(tok, model)
        train, held_out = split_instructions(generate_instructions(3000, seed=0, families=("first_word",)))
        held_out = held_out[:100]
        before = evaluate(model, tok, held_out)["all"]
        data = tokenize_examples(tok, train, block_size=model.config.block_size, drop_long=True)
        sft(
            model,
            data,
            steps=75,
            batch_size=32,
            lr=3e-3,
            pad_id=tok.special_tokens[IM_END],
            generator=torch.Generator().manual_seed(0),
        )
        after = evaluate(model, tok, held_out)["all"]
    finally:
        torch.set_num_threads(threads)
    assert before <= 0.02, before
    assert after >= SFT_BAR, after


# ----------------------------------------------------------------------------------------------
# exact match and bad input


def test_exact_match():
    assert exact_match(["HAMLET", " 7\n", "x"], ["HAMLET", "7", "y"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="2 predictions for 1"):
        exact_match(["a", "b"], ["a"])


def test_empty_instruction_set_is_an_error():
    tok = Tokenizer(special_tokens={IM_START: 256, IM_END: 257})
    model = GPT(GPTConfig(block_size=8, vocab_size=258, n_layer=1, n_head=1, n_embd=8))
    for call in (
        lambda: sft(model, [], steps=1, batch_size=1, lr=1e-3, pad_id=0, generator=torch.Generator()),
        lambda: tokenize_examples(tok, []),
        lambda: pad_batch([], 0),
        lambda: generate_responses(model, tok, []),
        lambda: split_instructions([]),
    ):
        with pytest.raises(ValueError, match="empty instruction set"):
            call()


def test_response_longer_than_the_context_is_an_error():
    tok = Tokenizer(special_tokens={IM_START: 256, IM_END: 257})
    with pytest.raises(ValueError, match="response is 31 tokens .* longer than the context of 16"):
        tokenize_example(tok, "q", "x" * 30, block_size=16)
    with pytest.raises(ValueError, match="do not fit the context"):
        tokenize_example(tok, "a long question " * 3, "yes", block_size=16)
    long = [Instruction("q?", "x" * 30, "capitals"), Instruction("q?", "ok", "capitals")]
    assert len(tokenize_examples(tok, long, block_size=32, drop_long=True)) == 1


def test_template_without_special_tokens_is_an_error():
    with pytest.raises(ValueError, match=r"no special token <\|im_start\|> or <\|im_end\|>.*add_chat_tokens"):
        tokenize_example(Tokenizer(), "Who says 'To be'?", "HAMLET")
    with pytest.raises(ValueError, match=r"no special token <\|im_end\|>"):
        tokenize_example(Tokenizer(special_tokens={IM_START: 256}), "q", "a")
    with pytest.raises(ValueError, match="non-empty list"):
        format_chat([])
    with pytest.raises(ValueError, match="all zeros"):
        masked_loss(torch.zeros(1, 2, 3), torch.zeros(1, 2, dtype=torch.long), torch.zeros(1, 2))
