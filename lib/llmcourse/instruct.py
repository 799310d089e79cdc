"""Instruction tuning: teach a pretrained model to *answer* rather than to *continue*.

A model pretrained on the internet completes text the way the internet would. Ask it "What is the
population of Berkeley?" and it may go on like the forum post that question came from ("This question
always fascinated me!"). Supervised fine-tuning (SFT) on (instruction, response) pairs teaches it the
other behaviour: read a question, write its answer, stop. The pieces, smallest first:

1. **A chat template.** The pair becomes one text with markers the model can learn to read: ChatML, as
   SmolLM2 (and Qwen) use it, wraps each message in special tokens::

       <|im_start|>user\\nWho says 'To be, or not to be'?<|im_end|>\\n<|im_start|>assistant\\nHAMLET<|im_end|>

   :func:`format_chat` writes it. ``<|im_start|>`` and ``<|im_end|>`` are *special* tokens: one id each,
   never pieces of ordinary text. A tokenizer without them cannot use the template
   (:func:`add_chat_tokens` adds them, and rows for them, to the course's own GPT).
2. **Tokenize with a loss mask.** :func:`tokenize_example` encodes the prompt (everything up to and
   including ``<|im_start|>assistant\\n``) and the response (ending in ``<|im_end|>``, so the model learns
   to stop), and marks which tokens are the response: mask 0 for the prompt, 1 for the response. The model
   is trained to *write* responses, not to predict the questions users ask.
3. **A batch.** :func:`pad_batch` shifts by one (the target of position t is token t + 1, as in
   pretraining), pads every sequence on the right to the longest, and returns four (B, T) tensors: inputs,
   targets, the loss mask (1 where the target is a response token) and the attention mask (1 on real
   tokens). With right padding and causal attention, real tokens never look at the padding after them,
   so a GPT without an attention-mask argument gives the same logits on them as without padding.
4. **The masked loss.** :func:`masked_loss` is cross-entropy averaged over the masked-in positions only:
   ``sum(mask * nll) / sum(mask)``. The prompt positions get exactly zero gradient.
   :func:`masked_loss_naive` is the same, one position at a time.
5. **SFT.** :func:`sft_step` is one update (forward, masked loss, backward, step); :func:`sft` is the loop
   over random batches of the examples.
6. **Evaluate by exact match.** :func:`generate_responses` answers greedily (until ``<|im_end|>``),
   :func:`exact_match` counts the answers that are right to the letter, :func:`evaluate` per family.

Usage, on the course's Shakespeare GPT and the generated instructions::

    model, tok, _ = load_pretrained("checkpoints/shakespeare_gpt.pt")
    add_chat_tokens(tok, model)                                   # <|im_start|>, <|im_end|> = 512, 513
    train, held_out = split_instructions(generate_instructions(6000))
    data = tokenize_examples(tok, train, block_size=model.config.block_size)
    losses = sft(model, data, steps=200, batch_size=32, lr=2e-3, pad_id=tok.special_tokens[IM_END],
                 generator=torch.Generator().manual_seed(0))
    evaluate(model, tok, held_out)                                # {"first_word": 0.9, ...}
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import torch
import torch.nn as nn
from torch import Tensor

__all__ = [
    "IM_START",
    "IM_END",
    "IGNORE",
    "format_chat",
    "add_chat_tokens",
    "tokenize_example",
    "tokenize_examples",
    "pad_batch",
    "masked_loss_naive",
    "masked_loss",
    "sft_step",
    "sft",
    "generate_responses",
    "exact_match",
    "evaluate",
]

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
IGNORE = -1  # the course GPT's ignore index (targets of -1 are not scored)

Example = tuple[list[int], list[int]]  # (token ids, loss mask): what tokenize_example returns


# ----------------------------------------------------------------------------------------------
# 1. the chat template


def format_chat(messages: Sequence[dict[str, str]], add_generation_prompt: bool = False) -> str:
    """ChatML: each message as ``<|im_start|>{role}\\n{content}<|im_end|>\\n``, in order.

    add_generation_prompt appends ``<|im_start|>assistant\\n``: the cue after which the model writes its
    answer. Exactly the messages given (SmolLM2's own template also inserts a default system message when
    the first message is not one; pass it yourself to get SmolLM2's text).
    """
    _check_messages(messages)
    text = "".join(f"{IM_START}{m['role']}\n{m['content']}{IM_END}\n" for m in messages)
    if add_generation_prompt:
        text += f"{IM_START}assistant\n"
    return text


def add_chat_tokens(tokenizer, model: nn.Module | None = None) -> tuple[int, int]:
    """Give a course tokenizer (and its GPT) the two ChatML special tokens; returns their ids.

    The tokens get the next free ids (the vocabulary size and one more). The GPT's token embedding,
    tied to its output layer, grows by two rows, set to the mean of the existing rows (a neutral start:
    the new tokens look like an average token, and the output layer does not favour them yet).
    A tokenizer that has them already keeps their ids.
    """
    specials = getattr(tokenizer, "special_tokens", None)
    if not isinstance(specials, dict) or not hasattr(tokenizer, "register_special_tokens"):
        raise TypeError(f"add_chat_tokens needs a course Tokenizer (llmcourse.tokenization), got {type(tokenizer)}")
    if IM_START not in specials or IM_END not in specials:
        V = tokenizer.vocab_size
        tokenizer.register_special_tokens({IM_START: V, IM_END: V + 1})
    ids = specials[IM_START], specials[IM_END]
    if model is not None:
        _grow_vocab(model, max(ids) + 1)
    return ids


def _grow_vocab(model: nn.Module, vocab_size: int) -> None:
    """Give a course GPT ``vocab_size`` token rows (tied embedding and output layer)."""
    wte = model.wte.weight  # (V, C), the same Parameter as model.lm_head.weight
    V, C = wte.shape
    if vocab_size <= V:
        return
    with torch.no_grad():
        extra = wte.mean(dim=0, keepdim=True).expand(vocab_size - V, C)  # (new, C)
        weight = nn.Parameter(torch.cat([wte, extra]))  # (vocab_size, C)
    model.wte.weight = model.lm_head.weight = weight
    model.wte.num_embeddings = model.lm_head.out_features = vocab_size
    model.config.vocab_size = vocab_size


# ----------------------------------------------------------------------------------------------
# 2. tokenizing a pair, with its loss mask


def tokenize_example(
    tokenizer, instruction: str, response: str, *, system: str | None = None, block_size: int | None = None
) -> Example:
    """(ids, mask): the chat-formatted pair as token ids, and 1 on the response's tokens, 0 on the prompt's.

    prompt   = format_chat([system?, user: instruction], add_generation_prompt=True)
    response = response + "<|im_end|>"          (the model must learn to stop)
    ids      = encode(prompt) + encode(response)
    mask     = [0] * len(encode(prompt)) + [1] * len(encode(response))

    The two parts are encoded apart: the cut between prompt and response falls after the newline
    that ends ``assistant\\n``, where the split pattern cuts anyway, so the ids equal those of the whole
    text. With ``block_size``, a pair that does not fit (a training sequence of n tokens has n - 1
    inputs) is an error.
    """
    _check_chat_tokenizer(tokenizer)
    messages = ([{"role": "system", "content": system}] if system is not None else []) + [
        {"role": "user", "content": instruction}
    ]
    if not isinstance(response, str):
        raise TypeError(f"response must be a str, got {type(response).__name__}")
    prompt_ids = tokenizer.encode(format_chat(messages, add_generation_prompt=True), allowed_special="all")
    response_ids = tokenizer.encode(response + IM_END, allowed_special="all")
    ids = prompt_ids + response_ids
    if block_size is not None:
        _check_fits(len(prompt_ids), len(response_ids), block_size)
    return ids, [0] * len(prompt_ids) + [1] * len(response_ids)


def tokenize_examples(
    tokenizer, examples: Sequence, *, system: str | None = None, block_size: int | None = None, drop_long: bool = False
) -> list[Example]:
    """:func:`tokenize_example` of every ``Instruction`` (anything with ``.instruction`` and ``.response``).

    drop_long=True leaves out the pairs that do not fit ``block_size`` instead of raising.
    """
    _check_nonempty(examples, "tokenize_examples")
    out = []
    for ex in examples:
        try:
            out.append(tokenize_example(tokenizer, ex.instruction, ex.response, system=system, block_size=block_size))
        except ValueError as e:
            if not (drop_long and "context" in str(e)):
                raise
    if not out:
        raise ValueError(f"no example fits the context of {block_size} tokens")
    return out


# ----------------------------------------------------------------------------------------------
# 3. a padded batch


def pad_batch(examples: Sequence[Example], pad_id: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(inputs, targets, loss_mask, attention_mask), each (B, T) with T = the longest length - 1.

    For a sequence ``ids`` with ``mask``: ``inputs[t] = ids[t]``, ``targets[t] = ids[t + 1]`` and
    ``loss_mask[t] = mask[t + 1]`` (position t is scored when the token it predicts is a response token);
    shorter sequences are padded on the right with ``pad_id`` (targets too) and loss_mask 0;
    ``attention_mask`` is 1 on real input tokens, 0 on padding. inputs, targets: long; masks: float.
    """
    _check_nonempty(examples, "pad_batch")
    T = max(len(ids) for ids, _ in examples) - 1
    if T < 1:
        raise ValueError("pad_batch needs sequences of at least 2 tokens (an input and its target)")
    B = len(examples)
    inputs = torch.full((B, T), pad_id, dtype=torch.long)  # (B, T)
    targets = torch.full((B, T), pad_id, dtype=torch.long)  # (B, T)
    loss_mask = torch.zeros(B, T)  # (B, T)
    attention_mask = torch.zeros(B, T)  # (B, T)
    for b, (ids, mask) in enumerate(examples):
        _check_example(ids, mask)
        n = len(ids) - 1  # this sequence's positions
        inputs[b, :n] = torch.tensor(ids[:-1])
        targets[b, :n] = torch.tensor(ids[1:])
        loss_mask[b, :n] = torch.tensor(mask[1:], dtype=torch.float32)
        attention_mask[b, :n] = 1.0
    return inputs, targets, loss_mask, attention_mask


# ----------------------------------------------------------------------------------------------
# 4. the masked loss


def masked_loss_naive(logits: Tensor, targets: Tensor, loss_mask: Tensor) -> Tensor:
    """The idea, one position at a time: the mean of ``-log softmax(logits[b, t])[targets[b, t]]`` over
    the positions whose mask is 1. Slow (a Python loop); :func:`masked_loss` is the same, vectorized."""
    _check_loss_inputs(logits, targets, loss_mask)
    total, count = logits.new_zeros(()), 0
    B, T, _ = logits.shape
    for b in range(B):
        for t in range(T):
            if loss_mask[b, t] != 0:
                log_probs = logits[b, t] - torch.logsumexp(logits[b, t], dim=0)  # (V,)
                total = total - log_probs[targets[b, t]]
                count += 1
    return total / count


def masked_loss(logits: Tensor, targets: Tensor, loss_mask: Tensor) -> Tensor:
    """``sum(mask * nll) / sum(mask)``: cross-entropy averaged over the response positions only.

    logits (B, T, V), targets (B, T) long, loss_mask (B, T) of 0/1. The prompt's and the padding's
    positions are multiplied by 0, so they add nothing to the loss and get exactly zero gradient.
    Equal to ``F.cross_entropy`` on the masked-in positions alone (tested).
    """
    _check_loss_inputs(logits, targets, loss_mask)
    log_z = torch.logsumexp(logits, dim=-1)  # (B, T)
    picked = logits.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)  # (B, T): the true token's logit
    nll = log_z - picked  # (B, T)
    mask = loss_mask.to(nll.dtype)  # (B, T)
    return (nll * mask).sum() / mask.sum()


# ----------------------------------------------------------------------------------------------
# 5. supervised fine-tuning


def sft_step(model: nn.Module, optimizer, inputs: Tensor, targets: Tensor, loss_mask: Tensor) -> float:
    """One update: ``model(inputs)`` -> logits, masked loss, zero the gradients, backward, step.

    ``model(inputs)`` returns ``(logits, _)`` like the course GPT (no targets passed: the model's own
    loss would score the prompt too). Returns the loss as a float (before the update).
    """
    model.train()
    logits, _ = model(inputs)  # (B, T, V)
    loss = masked_loss(logits, targets, loss_mask)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def sft(
    model: nn.Module,
    examples: Sequence[Example],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    pad_id: int,
    generator: torch.Generator,
    weight_decay: float = 0.0,
) -> list[float]:
    """Fine-tune ``model`` on tokenized ``examples``; returns the loss of every step.

    ``opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)``; then every step
    draws ``batch_size`` examples with ``torch.randint(len(examples), (batch_size,), generator=generator)``,
    pads them (:func:`pad_batch`) and takes one :func:`sft_step`.
    """
    _check_nonempty(examples, "sft")
    _check_sft_args(steps, batch_size, lr)
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    losses = []
    for _ in range(steps):
        pick = torch.randint(len(examples), (batch_size,), generator=generator).tolist()
        inputs, targets, loss_mask, _ = pad_batch([examples[i] for i in pick], pad_id)  # (B, T) each
        losses.append(sft_step(model, optimizer, inputs.to(device), targets.to(device), loss_mask.to(device)))
    return losses


# ----------------------------------------------------------------------------------------------
# 6. evaluation by exact match


@torch.no_grad()
def generate_responses(
    model: nn.Module,
    tokenizer,
    instructions: Sequence[str],
    *,
    system: str | None = None,
    max_new_tokens: int = 16,
    batch_size: int = 64,
) -> list[str]:
    """The model's greedy answer to every instruction: tokens after ``<|im_start|>assistant\\n`` up to
    ``<|im_end|>`` (or ``max_new_tokens``, or the end of the context).

    Prompts of equal length are answered together, as one batch without padding (a GPT without an
    attention mask cannot batch prompts of different lengths).
    """
    _check_chat_tokenizer(tokenizer)
    _check_nonempty(instructions, "generate_responses")
    end = tokenizer.special_tokens[IM_END]
    block_size = getattr(getattr(model, "config", None), "block_size", None) or math.inf
    device = next(model.parameters()).device
    sys_msg = [{"role": "system", "content": system}] if system is not None else []
    prompts = [
        tokenizer.encode(
            format_chat(sys_msg + [{"role": "user", "content": q}], add_generation_prompt=True), allowed_special="all"
        )
        for q in instructions
    ]
    by_length: dict[int, list[int]] = defaultdict(list)
    for i, p in enumerate(prompts):
        by_length[len(p)].append(i)
    answers: list[list[int]] = [[] for _ in prompts]
    was_training = model.training
    model.eval()
    for _, members in sorted(by_length.items()):
        for k in range(0, len(members), batch_size):
            group = members[k : k + batch_size]
            ids = torch.tensor([prompts[i] for i in group], device=device)  # (b, length)
            done = torch.zeros(len(group), dtype=torch.bool, device=device)  # (b,)
            for _ in range(max_new_tokens):
                if ids.size(1) >= block_size:
                    break
                logits, _ = model(ids)  # (b, t, V)
                nxt = logits[:, -1].argmax(dim=-1)  # (b,)
                for j, i in enumerate(group):
                    if not done[j] and int(nxt[j]) != end:
                        answers[i].append(int(nxt[j]))
                done |= nxt == end
                if bool(done.all()):
                    break
                ids = torch.cat([ids, nxt[:, None]], dim=1)  # (b, t + 1)
    model.train(was_training)
    return [tokenizer.decode(a) for a in answers]


def exact_match(predictions: Sequence[str], references: Sequence[str]) -> float:
    """The fraction of predictions equal to their reference (surrounding whitespace ignored)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    _check_nonempty(references, "exact_match")
    return sum(p.strip() == r.strip() for p, r in zip(predictions, references)) / len(references)


def evaluate(model: nn.Module, tokenizer, examples: Sequence, **kwargs) -> dict[str, float]:
    """Exact match per family of ``Instruction`` examples, and over all of them (``"all"``)."""
    _check_nonempty(examples, "evaluate")
    answers = generate_responses(model, tokenizer, [ex.instruction for ex in examples], **kwargs)
    by_family: dict[str, list[int]] = defaultdict(list)
    for i, ex in enumerate(examples):
        by_family[ex.family].append(i)
    scores = {
        f: exact_match([answers[i] for i in idx], [examples[i].response for i in idx])
        for f, idx in sorted(by_family.items())
    }
    scores["all"] = exact_match(answers, [ex.response for ex in examples])
    return scores


# ----------------------------------------------------------------------------------------------
# input checks


def _check_messages(messages) -> None:
    if not isinstance(messages, (list, tuple)) or not messages:
        raise ValueError("messages must be a non-empty list of {'role': ..., 'content': ...} dicts")
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"each message must be a dict with str 'role' and 'content', got {m!r}")


def _check_chat_tokenizer(tokenizer) -> None:
    specials = getattr(tokenizer, "special_tokens", None)
    missing = [t for t in (IM_START, IM_END) if not isinstance(specials, dict) or t not in specials]
    if missing:
        raise ValueError(
            f"the tokenizer has no special token {' or '.join(missing)}: the chat template needs both as single "
            "tokens (for a course Tokenizer and GPT, call add_chat_tokens(tokenizer, model) first)"
        )


def _check_fits(n_prompt: int, n_response: int, block_size: int) -> None:
    if n_response > block_size:
        raise ValueError(
            f"the response is {n_response} tokens (with <|im_end|>), longer than the context of {block_size} tokens"
        )
    if n_prompt + n_response - 1 > block_size:
        raise ValueError(
            f"prompt ({n_prompt} tokens) + response ({n_response}) do not fit the context of {block_size} tokens "
            f"(a sequence of n tokens trains n - 1 positions)"
        )


def _check_nonempty(items, who: str) -> None:
    if items is None or len(items) == 0:
        raise ValueError(f"{who} got an empty instruction set")


def _check_example(ids, mask) -> None:
    if len(ids) != len(mask):
        raise ValueError(f"an example has {len(ids)} ids but {len(mask)} mask entries")


def _check_loss_inputs(logits, targets, loss_mask) -> None:
    if logits.dim() != 3 or targets.shape != logits.shape[:2] or loss_mask.shape != targets.shape:
        raise ValueError(
            f"expected logits (B, T, V), targets and loss_mask (B, T); got {tuple(logits.shape)}, "
            f"{tuple(targets.shape)}, {tuple(loss_mask.shape)}"
        )
    if not bool((loss_mask != 0).any()):
        raise ValueError("the loss mask is all zeros: the batch has no response token to learn from")


def _check_sft_args(steps, batch_size, lr) -> None:
    for name, v in (("steps", steps), ("batch_size", batch_size)):
        if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
