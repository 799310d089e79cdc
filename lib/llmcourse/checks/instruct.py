"""Cases for assignment 08 (instruction tuning): the chat template, tokenizing a pair with its loss
mask, the padded batch, the masked loss, one SFT step and the SFT loop.

Nothing here imports ``llmcourse.instruct`` (the answer key, unavailable while grading). The inputs
are built from first principles:

* :class:`CharTokenizer` is a character-level tokenizer with the two ChatML special tokens (ids 0
  and 1), small enough to read in a failure report and to check by hand;
* the models that ``sft_step`` and ``sft`` train are the unit-06 checks' :class:`TinyLM` (an embedding,
  tanh, a linear head; float64, so correct code agrees to 1e-9), with seeded weights;
* tokenized examples are random ids with a prompt part (mask 0) and a response part (mask 1).

Hidden cases come from the grader's seed: new messages, alphabets, batches, weights.
"""

from __future__ import annotations

import random

import torch

from . import _kit
from .checker import Case, Spec
from .training import TinyLM, tiny_lm_layout

IM_START, IM_END = "<|im_start|>", "<|im_end|>"
FLOAT32 = dict(rtol=1e-5, atol=1e-6)
FORBIDDEN_LOSS = (
    "torch.nn.functional.cross_entropy",
    "torch.nn.functional.nll_loss",
    "torch.nn.CrossEntropyLoss",
    "torch.nn.NLLLoss",
)
# the toolbox and Hugging Face write the template: the template parts ask for your own
FORBIDDEN_TEMPLATE = (
    "llmcourse.toolbox.smollm2.chat_prompt",
    "llmcourse.toolbox.smollm2.GGUFTokenizer.encode_chat",
    "transformers.tokenization_utils_base.PreTrainedTokenizerBase.apply_chat_template",
)


class CharTokenizer:
    """One id per character of ``alphabet`` (from 2 on); ``<|im_start|>`` = 0 and ``<|im_end|>`` = 1.

    ``encode(text, allowed_special="all")`` turns the special tokens in ``text`` into their ids and every
    other character into its own; ``decode(ids)`` goes back.
    """

    def __init__(self, alphabet: str) -> None:
        self.alphabet = alphabet
        self.special_tokens = {IM_START: 0, IM_END: 1}
        self.stoi = {c: i + 2 for i, c in enumerate(alphabet)}
        self.vocab_size = len(alphabet) + 2

    def __repr__(self) -> str:
        return f"CharTokenizer({self.alphabet!r})"

    def encode(self, text: str, allowed_special="all") -> list[int]:
        ids, i = [], 0
        while i < len(text):
            for tok, idx in self.special_tokens.items():
                if allowed_special == "all" and text.startswith(tok, i):
                    ids.append(idx)
                    i += len(tok)
                    break
            else:
                ids.append(self.stoi[text[i]])
                i += 1
        return ids

    def decode(self, ids: list[int]) -> str:
        itos = {v: k for k, v in {**self.stoi, **self.special_tokens}.items()}
        return "".join(itos[int(i)] for i in ids)


# --------------------------------------------------------------------------- the template


def _msg(role: str, content: str) -> dict[str, str]:
    return {"role": role, "content": content}


def _template_visible() -> list[Case]:
    return [
        Case(([_msg("user", "Hi")],), "one user message"),
        Case(([_msg("user", "What is 2 + 2?")],), "with the generation prompt", {"add_generation_prompt": True}),
        Case(
            ([_msg("system", "Be brief."), _msg("user", "Who says 'To be'?"), _msg("assistant", "HAMLET")],),
            "system, user, assistant",
        ),
    ]


def _random_text(r: random.Random, n: int) -> str:
    return "".join(r.choice("abcdefghij klmnop?'\n,.!ÉéΩ😀") for _ in range(n))


def _template_hidden(seed: int) -> list[Case]:
    r = _kit.rng("instruct.format_chat", seed)
    turns = [_msg(("user", "assistant")[i % 2], _random_text(r, r.randint(1, 30))) for i in range(r.randint(3, 6))]
    return [
        Case((turns,), "a random conversation of several turns"),
        Case((turns,), "the same, with the generation prompt", {"add_generation_prompt": True}),
        Case(([_msg("user", "")],), "an empty message", {"add_generation_prompt": True}),
        Case(([_msg("system", _random_text(r, 12)), _msg("user", "line one\nline two")],), "newlines inside"),
        Case(([_msg("tool", "42")],), "a role other than user and assistant"),
    ]


# --------------------------------------------------------------------------- tokenizing a pair


def run_tokenize_example(tokenize_example, *, alphabet: str, instruction: str, response: str, system: str | None):
    """``tokenize_example(CharTokenizer(alphabet), instruction, response, system=system)``, as two lists of ints."""
    ids, mask = tokenize_example(CharTokenizer(alphabet), instruction, response, system=system)
    return [int(i) for i in ids], [int(m) for m in mask]


def _pair(label: str, instruction: str, response: str, system: str | None = None, extra: str = "") -> Case:
    alphabet = "".join(sorted(set("abcdefghijklmnopqrstuvwxyz\n' ?" + instruction + response + (system or "") + extra)))
    kw = {"alphabet": alphabet, "instruction": instruction, "response": response, "system": system}
    return Case((), label, kw)


def _tokenize_visible() -> list[Case]:
    return [
        _pair("a short question", "hi?", "yo"),
        _pair("with a system message", "Who says 'To be'?", "HAMLET", system="Be brief."),
    ]


def _tokenize_hidden(seed: int) -> list[Case]:
    r = _kit.rng("instruct.tokenize_example", seed)
    return [
        _pair("a random pair", _random_text(r, 25), _random_text(r, 10)),
        _pair("an empty response (only <|im_end|> is learned)", _random_text(r, 8), ""),
        _pair("a long response", "?", _random_text(r, 60)),
        _pair("a random system message", _random_text(r, 5), _random_text(r, 5), system=_random_text(r, 15)),
    ]


# --------------------------------------------------------------------------- the padded batch


def run_pad_batch(pad_batch, examples: list, pad_id: int):
    """``pad_batch(examples, pad_id)`` -> (inputs, targets, loss_mask, attention_mask), compared as
    long, long, float32, float32 (any integer or bool dtype of yours is converted first)."""
    inputs, targets, loss_mask, attention_mask = pad_batch(examples, pad_id)
    return (
        torch.as_tensor(inputs).long(),
        torch.as_tensor(targets).long(),
        torch.as_tensor(loss_mask).float(),
        torch.as_tensor(attention_mask).float(),
    )


def random_examples(g: torch.Generator, n: int, vocab_size: int, max_prompt: int, max_response: int) -> list:
    """``n`` tokenized examples: 1..max_prompt prompt ids (mask 0), 1..max_response response ids (mask 1)."""
    out = []
    for _ in range(n):
        p = int(torch.randint(1, max_prompt + 1, (1,), generator=g))
        q = int(torch.randint(1, max_response + 1, (1,), generator=g))
        ids = torch.randint(0, vocab_size, (p + q,), generator=g).tolist()
        out.append((ids, [0] * p + [1] * q))
    return out


def _pad_visible() -> list[Case]:
    two = [([5, 6, 7, 8], [0, 0, 1, 1]), ([5, 9, 3], [0, 1, 1])]
    return [
        Case((two, 0), "two sequences, the second one token shorter"),
        Case(([([1, 2, 3, 4, 5], [0, 0, 0, 1, 1])], 9), "one sequence, no padding"),
    ]


def _pad_hidden(seed: int) -> list[Case]:
    g = _kit.generator("instruct.pad_batch", seed)
    return [
        Case((random_examples(g, 6, 50, 8, 5), 49), "six random examples"),
        Case((random_examples(g, 3, 20, 1, 1), 0), "shortest possible: one prompt and one response token"),
        Case(([([3, 4], [0, 1]), ([3, 4, 5, 6, 7, 8, 9], [0, 0, 0, 0, 1, 1, 1])], 1), "very different lengths"),
    ]


# --------------------------------------------------------------------------- the masked loss


def _mask(g: torch.Generator, B: int, T: int) -> torch.Tensor:
    """(B, T) float 0/1: a prompt of random length, then response, then padding, per row."""
    m = torch.zeros(B, T)
    for b in range(B):
        start = int(torch.randint(0, T - 1, (1,), generator=g))
        end = int(torch.randint(start + 1, T + 1, (1,), generator=g))
        m[b, start:end] = 1.0
    return m


def _loss_visible() -> list[Case]:
    logits = torch.tensor([[[2.0, 0.5, -1.0], [0.0, 1.0, 3.0], [1.0, 1.0, 1.0]]])  # (1, 3, 3)
    targets = torch.tensor([[0, 2, 1]])
    g = _kit.seeded(8)
    return [
        Case((logits, targets, torch.tensor([[0.0, 1.0, 1.0]])), "the first position is prompt"),
        Case((logits, targets, torch.tensor([[1.0, 1.0, 1.0]])), "no position masked: plain cross-entropy"),
        Case((_kit.randn(g, 2, 5, 7), torch.randint(0, 7, (2, 5), generator=g), _mask(g, 2, 5)), "random (2, 5, 7)"),
    ]


def _loss_hidden(seed: int) -> list[Case]:
    g = _kit.generator("instruct.masked_loss", seed)
    one = torch.zeros(3, 6)
    one[1, 4] = 1.0
    return [
        Case((_kit.randn(g, 4, 9, 13, scale=2.0), torch.randint(0, 13, (4, 9), generator=g), _mask(g, 4, 9)), "random"),
        Case((_kit.randn(g, 3, 6, 5), torch.randint(0, 5, (3, 6), generator=g), one), "a single response token"),
        Case(
            (_kit.randn(g, 2, 4, 6, scale=400.0), torch.randint(0, 6, (2, 4), generator=g), _mask(g, 2, 4)),
            "logits in the hundreds",
        ),
        Case(
            (
                _kit.randn(g, 3, 7, 11, dtype=torch.float64),
                torch.randint(0, 11, (3, 7), generator=g),
                _mask(g, 3, 7).bool(),
            ),
            "float64 logits, a boolean mask",
        ),
    ]


# --------------------------------------------------------------------------- one SFT step


def _tiny(vocab_size: int, n_embd: int, weights_seed: int) -> TinyLM:
    model = TinyLM(vocab_size, n_embd).double()
    model.load_state_dict(
        _kit.random_state_dict(tiny_lm_layout(vocab_size, n_embd), _kit.seeded(weights_seed), torch.float64)
    )
    return model


@_kit.single_threaded
def run_sft_step(
    sft_step, *, vocab_size: int, n_embd: int, weights_seed: int, batches: list, lr: float
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """A float64 :class:`TinyLM` with seeded weights and ``opt = torch.optim.SGD(model.parameters(), lr=lr)``;
    ``sft_step(model, opt, inputs, targets, loss_mask)`` once per batch of ``batches``. Returns (the losses,
    the parameters after)."""
    model = _tiny(vocab_size, n_embd, weights_seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = [float(sft_step(model, opt, inputs, targets, loss_mask)) for inputs, targets, loss_mask in batches]
    return torch.tensor(losses, dtype=torch.float64), [p.detach().clone() for p in model.parameters()]


def _step_case(
    g: torch.Generator, r: random.Random, label: str, V: int = 10, C: int = 8, n: int = 2, B: int = 3, T: int = 6
):
    batches = [
        (torch.randint(0, V, (B, T), generator=g), torch.randint(0, V, (B, T), generator=g), _mask(g, B, T).double())
        for _ in range(n)
    ]
    return Case(
        (), label, {"vocab_size": V, "n_embd": C, "weights_seed": _kit.new_seed(r), "batches": batches, "lr": 0.5}
    )


def _step_visible() -> list[Case]:
    return [_step_case(_kit.seeded(9), random.Random(9), "two steps of plain SGD (lr 0.5) on (3, 6) batches")]


def _step_hidden(seed: int) -> list[Case]:
    g, r = _kit.generator("instruct.sft_step", seed), _kit.rng("instruct.sft_step", seed)
    return [
        _step_case(g, r, "three steps, a wider vocabulary", V=30, C=12, n=3),
        _step_case(g, r, "batch of one", B=1, T=9),
    ]


# --------------------------------------------------------------------------- the SFT loop


@_kit.single_threaded
def run_sft(
    sft,
    *,
    vocab_size: int,
    n_embd: int,
    weights_seed: int,
    examples: list,
    steps: int,
    batch_size: int,
    lr: float,
    pad_id: int,
    batch_seed: int,
):
    """A float64 :class:`TinyLM` with seeded weights, trained by ``sft(model, examples, steps=, batch_size=,
    lr=, pad_id=, generator=Generator(batch_seed))``: (the losses as a tensor, the parameters after)."""
    model = _tiny(vocab_size, n_embd, weights_seed)
    losses = sft(
        model,
        examples,
        steps=steps,
        batch_size=batch_size,
        lr=lr,
        pad_id=pad_id,
        generator=_kit.seeded(batch_seed),
    )
    return torch.tensor([float(x) for x in losses], dtype=torch.float64), [
        p.detach().clone() for p in model.parameters()
    ]


def _sft_case(g, r, label, V=12, C=16, n=40, steps=12, B=4, lr=1e-2) -> Case:
    kw = {
        "vocab_size": V,
        "n_embd": C,
        "weights_seed": _kit.new_seed(r),
        "examples": random_examples(g, n, V, 6, 4),
        "steps": steps,
        "batch_size": B,
        "lr": lr,
        "pad_id": V - 1,
        "batch_seed": _kit.new_seed(r),
    }
    return Case((), label, kw)


def _sft_visible() -> list[Case]:
    return [_sft_case(_kit.seeded(10), random.Random(10), "12 steps on 40 random examples")]


def _sft_hidden(seed: int) -> list[Case]:
    g, r = _kit.generator("instruct.sft", seed), _kit.rng("instruct.sft", seed)
    return [
        _sft_case(g, r, "20 steps, batches of 8", steps=20, B=8),
        _sft_case(g, r, "three examples, batches larger than the set", n=3, B=5, steps=6, lr=3e-2),
    ]


SPECS = [
    Spec(
        "instruct.format_chat",
        "llmcourse.instruct:format_chat",
        _template_visible,
        _template_hidden,
        forbidden=FORBIDDEN_TEMPLATE,
    ),
    Spec(
        "instruct.tokenize_example",
        "llmcourse.instruct:tokenize_example",
        _tokenize_visible,
        _tokenize_hidden,
        adapter=run_tokenize_example,
        forbidden=FORBIDDEN_TEMPLATE,
    ),
    Spec("instruct.pad_batch", "llmcourse.instruct:pad_batch", _pad_visible, _pad_hidden, adapter=run_pad_batch),
    Spec(
        "instruct.masked_loss",
        "llmcourse.instruct:masked_loss",
        _loss_visible,
        _loss_hidden,
        forbidden=FORBIDDEN_LOSS,
        **FLOAT32,
    ),
    Spec(
        "instruct.sft_step",
        "llmcourse.instruct:sft_step",
        _step_visible,
        _step_hidden,
        adapter=run_sft_step,
        forbidden=FORBIDDEN_LOSS,
        rtol=1e-9,
        atol=1e-12,
    ),
    Spec(
        "instruct.sft",
        "llmcourse.instruct:sft",
        _sft_visible,
        _sft_hidden,
        adapter=run_sft,
        forbidden=FORBIDDEN_LOSS,
        rtol=1e-7,
        atol=1e-9,
    ),
]
