"""Cases for assignment 06 (pretraining): random-window batches, cross-entropy, AdamW, the
warm-up + cosine schedule, gradient clipping and the training loop itself.

Nothing here imports ``llmcourse.training`` (the answer key, unavailable while grading): token
streams, gradients and the little model the loop trains are built from first principles with
``torch`` and the kit.

* ``get_batch`` runs on a Generator seeded by the case, so the student's windows must start where
  ``torch.randint(len(data) - block_size, (batch_size,), generator=g)`` says.
* ``AdamW`` is a class: :func:`run_adamw` builds it over the case's parameters, sets their gradients
  and the learning rate step after step, and returns the parameters after every step.
* ``clip_grad_norm`` works in place on ``.grad``: :func:`run_clip_grad_norm` returns the norm and the
  clipped gradients.
* ``fit`` trains :class:`TinyLM` (a token embedding, tanh, a linear head; float64 so that correct
  loops agree to 1e-9 after every step) on a Markov chain's tokens and returns the loss of every
  step and the held-out loss. Hidden chains and weights come from the grader's seed, so the numbers
  cannot be known without training.
"""

from __future__ import annotations

import torch

from . import _kit
from .checker import Case, Spec

FLOAT32 = dict(rtol=1e-5, atol=1e-6)  # float32: a different but correct order of the same sums
FORBIDDEN_LOSS = (
    "torch.nn.functional.cross_entropy",
    "torch.nn.functional.nll_loss",
    "torch.nn.CrossEntropyLoss",
    "torch.nn.NLLLoss",
)
FORBIDDEN_OPTIM = ("torch.optim",)
FORBIDDEN_CLIP = (
    "torch.nn.utils.clip_grad_norm_",
    "torch.nn.utils.clip_grad_norm",
    "torch.nn.utils.clip_grads_with_norm_",
    "torch.nn.utils.get_total_norm",
)


def markov_tokens(g: torch.Generator, n: int, vocab_size: int, sharpness: float = 4.0) -> torch.Tensor:
    """(n,) int64 tokens of a random Markov chain: each token depends on the one before, so a model
    can learn something, and the chain is drawn from ``g`` (a new chain for every hidden seed)."""
    P = torch.rand(vocab_size, vocab_size, generator=g, dtype=torch.float64) ** sharpness  # peaked rows
    P = P / P.sum(1, keepdim=True)
    u = torch.rand(n, generator=g, dtype=torch.float64)
    cdf = P.cumsum(1)
    cdf[:, -1] = 1.0
    out = [0]
    for i in range(1, n):
        out.append(min(int(torch.searchsorted(cdf[out[-1]], u[i])), vocab_size - 1))
    return torch.tensor(out)


# --------------------------------------------------------------------------- get_batch


@_kit.single_threaded
def run_get_batch(get_batch, data: torch.Tensor, batch_size: int, block_size: int, *, seed: int):
    """``get_batch(data, batch_size, block_size, g)`` twice on one Generator seeded with ``seed``:
    the second batch shows the generator was used, and used once per batch."""
    g = _kit.seeded(seed)
    first = get_batch(data, batch_size, block_size, g)
    second = get_batch(data, batch_size, block_size, g)
    return tuple(first), tuple(second)


def _batch_visible() -> list[Case]:
    return [
        Case((torch.arange(20), 2, 4), "data 0..19, B=2, T=4", {"seed": 0}),
        Case((torch.arange(100, 110), 3, 9), "windows as long as the data allows (T = len - 1)", {"seed": 1}),
        Case((torch.tensor([5, 3, 8, 1, 9, 2, 7], dtype=torch.int32), 4, 2), "int32 ids", {"seed": 2}),
    ]


def _batch_hidden(seed: int) -> list[Case]:
    g = _kit.generator("training.get_batch", seed)
    r = _kit.rng("training.get_batch", seed)
    return [
        Case((torch.arange(2), 1, 1), "two tokens, T=1", {"seed": _kit.new_seed(r)}),
        Case((torch.arange(50, 60), 16, 3), "more windows than fit side by side", {"seed": _kit.new_seed(r)}),
        Case((markov_tokens(g, 300, 11), 8, 16), "a random token stream", {"seed": _kit.new_seed(r)}),
        Case(
            (torch.randint(0, 50_000, (1000,), generator=g, dtype=torch.int32), 5, 33),
            "int32 ids up to 50k",
            {"seed": _kit.new_seed(r)},
        ),
    ]


# --------------------------------------------------------------------------- cross-entropy


def _ce_visible() -> list[Case]:
    logits = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.0]])
    return [
        Case((logits, torch.tensor([0, 1])), "two positions, three tokens"),
        Case((torch.zeros(1, 4, 10), torch.tensor([[1, 2, 3, 4]])), "uniform logits: loss = ln 10"),
        Case((logits * 500, torch.tensor([2, 1])), "large logits: softmax overflows"),
        Case((logits, torch.tensor([1, -1])), "a target of -1 is ignored"),
    ]


def _ce_hidden(seed: int) -> list[Case]:
    g = _kit.generator("training.cross_entropy", seed)
    t = torch.randint(0, 17, (3, 7), generator=g)
    t[1, 2:5] = -1
    big = _kit.randn(g, 4, 9, scale=300.0)
    return [
        Case((_kit.randn(g, 2, 5, 17, scale=3.0), torch.randint(0, 17, (2, 5), generator=g)), "random (2, 5, 17)"),
        Case((_kit.randn(g, 3, 7, 17), t), "random, some targets ignored"),
        Case((big, torch.randint(0, 9, (4,), generator=g)), "scores in the hundreds"),
        Case((-big, torch.randint(0, 9, (4,), generator=g)), "large negative scores"),
        Case((_kit.randn(g, 6, 50, dtype=torch.float64), torch.randint(0, 50, (6,), generator=g)), "float64"),
        Case(
            (_kit.randn(g, 2, 3, 8), torch.randint(0, 8, (2, 3), generator=g)),
            "ignore_index=7",
            {"ignore_index": 7},
        ),
    ]


# --------------------------------------------------------------------------- AdamW


@_kit.single_threaded
def run_adamw(
    AdamW,
    *,
    params: list[torch.Tensor],
    grads: list[list[torch.Tensor | None]],
    lrs: list[float],
    betas: tuple[float, float],
    eps: float,
    weight_decay: float,
):
    """``opt = AdamW(params, lr=lrs[0], betas=, eps=, weight_decay=)``; then for every step k: set
    ``opt.lr = lrs[k]``, each ``p.grad = grads[k][i]`` (None: no gradient), ``opt.step()``.
    Returns the parameters after every step."""
    ps = [p.clone().requires_grad_(True) for p in params]
    opt = AdamW(ps, lr=lrs[0], betas=betas, eps=eps, weight_decay=weight_decay)
    after = []
    for lr, step_grads in zip(lrs, grads):
        opt.lr = lr
        for p, grad in zip(ps, step_grads):
            p.grad = None if grad is None else grad.clone()
        opt.step()
        after.append([p.detach().clone() for p in ps])
    return after


def _adamw_case(g, shapes, steps, label, dtype=torch.float32, none_at=(), zero=False, **hyper):
    params = [_kit.randn(g, *s, dtype=dtype) for s in shapes]
    grads = []
    for k in range(steps):
        row = [(_kit.randn(g, *s, dtype=dtype, scale=0.0 if zero and i == 0 else 1.0)) for i, s in enumerate(shapes)]
        grads.append([None if (k, i) in none_at else x for i, x in enumerate(row)])
    kw = {
        "params": params,
        "grads": grads,
        "lrs": hyper.get("lrs", [1e-2] * steps),
        "betas": hyper.get("betas", (0.9, 0.999)),
        "eps": hyper.get("eps", 1e-8),
        "weight_decay": hyper.get("weight_decay", 0.01),
    }
    return Case((), label, kw)


def _adamw_visible() -> list[Case]:
    g = _kit.seeded(6)
    return [
        _adamw_case(g, [(3,)], 1, "one step of one vector (bias correction makes it lr-sized)"),
        _adamw_case(g, [(2, 3), (3,)], 5, "five steps, two tensors", weight_decay=0.0),
        _adamw_case(g, [(4,)], 3, "weight decay 0.5, lr 0.1", lrs=[0.1] * 3, weight_decay=0.5),
        _adamw_case(g, [(2,), (3,)], 3, "the first tensor has no gradient at step 1", none_at={(0, 0)}),
    ]


def _adamw_hidden(seed: int) -> list[Case]:
    g = _kit.generator("training.AdamW", seed)
    r = _kit.rng("training.AdamW", seed)
    lrs = [r.uniform(1e-4, 3e-2) for _ in range(12)]
    return [
        _adamw_case(g, [(5, 4), (4,), (7,)], 12, "twelve steps, a learning rate that changes", lrs=lrs),
        _adamw_case(g, [(3, 3)], 4, "betas (0.8, 0.95), eps 1e-3", betas=(0.8, 0.95), eps=1e-3),
        _adamw_case(g, [(6,), (2, 2)], 4, "a parameter without gradient at some steps", none_at={(0, 0), (2, 0)}),
        _adamw_case(g, [(4,), (5,)], 3, "one gradient all zeros", zero=True),
        _adamw_case(g, [(3, 5)], 6, "float64, strong weight decay", dtype=torch.float64, weight_decay=0.3),
    ]


# --------------------------------------------------------------------------- the schedule


def run_lr_at(
    lr_at, *, steps: list[int], max_lr: float, min_lr: float, warmup_steps: int, max_steps: int
) -> list[float]:
    """``[lr_at(s, max_lr=, min_lr=, warmup_steps=, max_steps=) for s in steps]``."""
    kw = {"max_lr": max_lr, "min_lr": min_lr, "warmup_steps": warmup_steps, "max_steps": max_steps}
    return [float(lr_at(s, **kw)) for s in steps]


def _schedule(steps, max_lr, min_lr, warmup, max_steps, label) -> Case:
    kw = {"steps": steps, "max_lr": max_lr, "min_lr": min_lr, "warmup_steps": warmup, "max_steps": max_steps}
    return Case((), label, kw)


def _lr_visible() -> list[Case]:
    return [
        _schedule([0, 1, 4, 9, 10], 1.0, 0.1, 10, 110, "the warm-up and its end"),
        _schedule([10, 35, 60, 85, 110], 1.0, 0.1, 10, 110, "the cosine: start, quarter, middle, 3/4, end"),
        _schedule([110, 111, 500], 6e-4, 6e-5, 10, 110, "after max_steps: min_lr"),
    ]


def _lr_hidden(seed: int) -> list[Case]:
    r = _kit.rng("training.lr_at", seed)
    hi = r.uniform(1e-4, 1e-2)
    lo = hi * r.uniform(0.0, 0.3)
    warm = r.randint(2, 50)
    end = warm + r.randint(10, 500)
    every = sorted({0, warm - 1, warm, end - 1, end, end + 7} | {r.randint(0, end + 20) for _ in range(20)})
    return [
        _schedule(every, hi, lo, warm, end, "random sizes, steps across the whole run"),
        _schedule([0, 1, 2, 3], 3e-3, 3e-4, 1, 4, "warm-up of one step"),
        _schedule([0, 3, 5, 8], 2e-3, 2e-3, 3, 8, "min_lr = max_lr"),
        _schedule([0, 2, 5, 7, 9], 1e-3, 0.0, 0, 9, "no warm-up, decay to zero"),
    ]


# --------------------------------------------------------------------------- clipping


@_kit.single_threaded
def run_clip_grad_norm(clip_grad_norm, *, grads: list[torch.Tensor | None], max_norm: float):
    """Parameters whose ``.grad`` are ``grads`` (None: no gradient); returns
    ``(float(clip_grad_norm(params, max_norm)), [p.grad for p in params])``."""
    ps = []
    for grad in grads:
        p = torch.zeros(1 if grad is None else grad.shape, dtype=torch.float32 if grad is None else grad.dtype)
        p.requires_grad_(True)
        p.grad = None if grad is None else grad.clone()
        ps.append(p)
    norm = clip_grad_norm(ps, max_norm)
    return float(norm), [None if p.grad is None else p.grad.detach().clone() for p in ps]


def _clip_visible() -> list[Case]:
    return [
        Case((), "norm 5 clipped to 1", {"grads": [torch.tensor([3.0]), torch.tensor([0.0, 4.0])], "max_norm": 1.0}),
        Case((), "norm 5 below max_norm 10: unchanged", {"grads": [torch.tensor([3.0, 4.0])], "max_norm": 10.0}),
        Case((), "a parameter without gradient", {"grads": [torch.ones(2, 2), None], "max_norm": 0.5}),
    ]


def _clip_hidden(seed: int) -> list[Case]:
    g = _kit.generator("training.clip_grad_norm", seed)
    shapes = [(8, 4), (4,), (16, 8), (8,)]
    grads = [_kit.randn(g, *s, scale=3.0) for s in shapes]
    return [
        Case((), "a model's gradients, clipped", {"grads": grads, "max_norm": 1.0}),
        Case((), "a model's gradients, not clipped", {"grads": grads, "max_norm": 1e4}),
        Case((), "huge gradients", {"grads": [_kit.randn(g, 5, 5, scale=1e6), _kit.randn(g, 3)], "max_norm": 0.25}),
        Case((), "float64", {"grads": [_kit.randn(g, 6, dtype=torch.float64), None], "max_norm": 0.1}),
        Case((), "all gradients zero", {"grads": [torch.zeros(3), torch.zeros(2, 2)], "max_norm": 1.0}),
    ]


# --------------------------------------------------------------------------- the loop


class TinyLM(torch.nn.Module):
    """The model the loop check trains: logits = head(tanh(wte(idx))), a bigram model with one hidden
    layer. ``forward(idx, targets=None) -> (logits, loss)`` like the course GPT (loss: mean
    cross-entropy, -1 ignored, None without targets)."""

    def __init__(self, vocab_size: int, n_embd: int) -> None:
        super().__init__()
        self.wte = torch.nn.Embedding(vocab_size, n_embd)
        self.head = torch.nn.Linear(n_embd, vocab_size)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        logits = self.head(torch.tanh(self.wte(idx)))  # (B, T, V)
        if targets is None:
            return logits, None
        V = logits.size(-1)
        return logits, torch.nn.functional.cross_entropy(logits.view(-1, V), targets.reshape(-1), ignore_index=-1)


def tiny_lm_layout(vocab_size: int, n_embd: int) -> list[_kit.Param]:
    return [_kit.Param("wte.weight", (vocab_size, n_embd))] + _kit.linear_params("head.", n_embd, vocab_size, True)


@_kit.single_threaded
def run_fit(
    fit,
    *,
    vocab_size: int,
    n_embd: int,
    weights_seed: int,
    train_data: torch.Tensor,
    val_data: torch.Tensor,
    steps: int,
    batch_size: int,
    block_size: int,
    max_lr: float,
    min_lr: float,
    warmup_steps: int,
    weight_decay: float,
    grad_clip: float,
    batch_seed: int,
):
    """A float64 :class:`TinyLM` with seeded weights, trained by
    ``fit(model, train_data, val_data, steps=, batch_size=, block_size=, max_lr=, min_lr=, warmup_steps=,
    weight_decay=, grad_clip=, generator=Generator(batch_seed))``: (the losses as a tensor, the held-out loss)."""
    model = TinyLM(vocab_size, n_embd).double()
    state = _kit.random_state_dict(tiny_lm_layout(vocab_size, n_embd), _kit.seeded(weights_seed), torch.float64)
    model.load_state_dict(state)
    losses, val_loss = fit(
        model,
        train_data,
        val_data,
        steps=steps,
        batch_size=batch_size,
        block_size=block_size,
        max_lr=max_lr,
        min_lr=min_lr,
        warmup_steps=warmup_steps,
        weight_decay=weight_decay,
        grad_clip=grad_clip,
        generator=_kit.seeded(batch_seed),
    )
    return torch.tensor([float(x) for x in losses], dtype=torch.float64), float(val_loss)


def _fit_case(g, seed_rng, label, V=12, C=16, steps=30, B=8, T=16, clip=1.0, **kw) -> Case:
    args = {
        "vocab_size": V,
        "n_embd": C,
        "weights_seed": _kit.new_seed(seed_rng),
        "train_data": markov_tokens(g, 1500, V),
        "val_data": markov_tokens(g, 400, V),
        "steps": steps,
        "batch_size": B,
        "block_size": T,
        "max_lr": kw.get("max_lr", 3e-2),
        "min_lr": kw.get("min_lr", 3e-3),
        "warmup_steps": kw.get("warmup_steps", 5),
        "weight_decay": kw.get("weight_decay", 0.1),
        "grad_clip": clip,
        "batch_seed": _kit.new_seed(seed_rng),
    }
    return Case((), label, args)


def _fit_visible() -> list[Case]:
    g, r = _kit.seeded(60), _kit.rng("training.fit.visible", 0)
    return [
        _fit_case(g, r, "30 steps on a Markov chain of 12 tokens"),
        _fit_case(g, r, "tight clipping (max_norm 0.05) and no weight decay", clip=0.05, weight_decay=0.0),
    ]


def _fit_hidden(seed: int) -> list[Case]:
    g, r = _kit.generator("training.fit", seed), _kit.rng("training.fit", seed)
    return [
        _fit_case(g, r, "a random chain, 40 steps", steps=40),
        _fit_case(g, r, "batch of 1, short windows", B=1, T=4, steps=20),
        _fit_case(g, r, "strong weight decay, high learning rate", max_lr=0.1, min_lr=0.0, weight_decay=0.5),
        _fit_case(g, r, "24 tokens, warm-up of one step", V=24, warmup_steps=1, steps=25),
    ]


SPECS = [
    Spec("training.get_batch", "llmcourse.training:get_batch", _batch_visible, _batch_hidden, adapter=run_get_batch),
    Spec(
        "training.cross_entropy",
        "llmcourse.training:cross_entropy",
        _ce_visible,
        _ce_hidden,
        forbidden=FORBIDDEN_LOSS,
        **FLOAT32,
    ),
    Spec(
        "training.AdamW",
        "llmcourse.training:AdamW",
        _adamw_visible,
        _adamw_hidden,
        adapter=run_adamw,
        forbidden=FORBIDDEN_OPTIM,
        **FLOAT32,
    ),
    Spec(
        "training.lr_at",
        "llmcourse.training:lr_at",
        _lr_visible,
        _lr_hidden,
        adapter=run_lr_at,
        forbidden=FORBIDDEN_OPTIM,
        rtol=1e-9,
        atol=1e-15,
    ),
    Spec(
        "training.clip_grad_norm",
        "llmcourse.training:clip_grad_norm",
        _clip_visible,
        _clip_hidden,
        adapter=run_clip_grad_norm,
        forbidden=FORBIDDEN_CLIP,
        **FLOAT32,
    ),
    Spec(
        "training.fit",
        "llmcourse.training:fit",
        _fit_visible,
        _fit_hidden,
        adapter=run_fit,
        forbidden=FORBIDDEN_OPTIM + FORBIDDEN_CLIP,
        rtol=1e-7,
        atol=1e-9,
    ),
]
