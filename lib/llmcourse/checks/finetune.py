"""Cases for assignment 07 (pre-train, then fine-tune): last-token pooling, masked mean pooling, the
classification head (forward and loss) and the training loop of the linear probe and of fine-tuning.

Nothing here imports ``llmcourse.finetune`` (the answer key, unavailable while grading): hidden
states, masks and the small backbone the head sits on are built from first principles with ``torch``
and the kit.

* Pooling cases hold masks padded on the right (what ``encode`` makes), on the left, none at all, and
  the tokenizer's form (0/1 integers instead of booleans).
* ``Classifier`` is a class: :func:`run_classifier` builds the student's ``Classifier(TinyBody(...),
  n_embd, n_classes, pooling=...)``, loads seeded weights under the names ``backbone.*`` and
  ``head.weight`` / ``head.bias``, and returns the logits and the loss.
* ``train_classifier`` runs on :class:`TinyClassifier` (a float64 model made here, so that the part is
  graded on its own, without the student's ``Classifier``): the loss of every step and every weight
  after training, which shows what was frozen and what learned.
"""

from __future__ import annotations

import torch

from . import _kit
from .checker import Case, Spec

FLOAT32 = dict(rtol=1e-5, atol=1e-6)  # float32: a different but correct order of the same sums
FLOAT64_LOOP = dict(rtol=1e-7, atol=1e-9)  # float64 training: correct loops agree to rounding


def lengths_mask(lengths: list[int], T: int, left: bool = False) -> torch.Tensor:
    """(B, T) bool: True on the first ``lengths[b]`` positions (on the last ones with ``left``)."""
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T) padded on the right
    return mask.flip(-1) if left else mask


# --------------------------------------------------------------------------- pooling


def _pool_visible() -> list[Case]:
    h = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3) / 10  # (B=2, T=4, C=3)
    return [
        Case((h, lengths_mask([4, 2], 4)), "two sentences, 4 and 2 tokens, padded on the right"),
        Case((h, lengths_mask([3, 1], 4, left=True)), "padded on the left"),
        Case((h, torch.ones(2, 4, dtype=torch.bool)), "no padding"),
        Case((h, lengths_mask([2, 3], 4).long()), "the tokenizer's mask: 0/1 integers"),
    ]


def _pool_hidden(name: str):
    def cases(seed: int) -> list[Case]:
        g, r = _kit.generator(name, seed), _kit.rng(name, seed)
        B, T, C = r.randint(3, 6), r.randint(5, 12), r.randint(2, 9)
        lengths = [r.randint(1, T) for _ in range(B)]
        lengths[0] = T
        return [
            Case((_kit.randn(g, B, T, C), lengths_mask(lengths, T)), "random sentence lengths, padded right"),
            Case((_kit.randn(g, B, T, C, scale=5.0), lengths_mask(lengths, T, left=True)), "random, padded left"),
            Case((_kit.randn(g, 4, 3, 7, scale=1e3), lengths_mask([1, 2, 3, 1], 3)), "large values"),
            Case((_kit.randn(g, 1, 1, C), torch.ones(1, 1, dtype=torch.bool)), "one sentence of one token"),
            Case((_kit.randn(g, 3, T, C, dtype=torch.float64), lengths_mask([1, T, 2], T)), "float64"),
            Case((_kit.randn(g, 2, T, C), lengths_mask([T - 1, 1], T).long()), "0/1 integer mask"),
        ]

    return cases


# --------------------------------------------------------------------------- the head


class TinyBody(torch.nn.Module):
    """The backbone the head checks use: ``forward(ids, mask) -> (B, T, C)``, each token's vector
    ``tanh(mix(wte(ids)))`` (no attention: a different vector per token is all pooling needs)."""

    def __init__(self, vocab_size: int, n_embd: int) -> None:
        super().__init__()
        self.wte = torch.nn.Embedding(vocab_size, n_embd)
        self.mix = torch.nn.Linear(n_embd, n_embd)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return torch.tanh(self.mix(self.wte(ids)))  # (B, T, C)


def classifier_layout(vocab_size: int, n_embd: int, n_classes: int) -> list[_kit.Param]:
    return (
        [_kit.Param("backbone.wte.weight", (vocab_size, n_embd))]
        + _kit.linear_params("backbone.mix.", n_embd, n_embd, True)
        + _kit.linear_params("head.", n_embd, n_classes, True)
    )


@_kit.single_threaded
def run_classifier(
    Classifier,
    *,
    vocab_size: int,
    n_embd: int,
    n_classes: int,
    pooling: str,
    weights_seed: int,
    ids: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
):
    """``model = Classifier(TinyBody(vocab_size, n_embd), n_embd, n_classes, pooling=pooling)`` with
    seeded weights; returns ``model(ids, mask, labels)`` (logits, loss) and ``model(ids, mask)[1] is None``."""
    layout = classifier_layout(vocab_size, n_embd, n_classes)
    state = _kit.random_state_dict(layout, _kit.seeded(weights_seed), torch.float32)
    what = f"Classifier(TinyBody({vocab_size}, {n_embd}), {n_embd}, {n_classes}, pooling={pooling!r})"
    model = _kit.build(
        Classifier, (TinyBody(vocab_size, n_embd), n_embd, n_classes), {"pooling": pooling}, state, torch.float32, what
    )
    with torch.no_grad():
        logits, loss = model(ids, mask, labels)
        _, no_loss = model(ids, mask)
    return logits, loss, no_loss is None


def _head_case(g, r, label: str, B: int, T: int, n_classes: int, pooling: str, left: bool = False) -> Case:
    V, C = 11, 6
    lengths = [r.randint(1, T) for _ in range(B)]
    kw = {
        "vocab_size": V,
        "n_embd": C,
        "n_classes": n_classes,
        "pooling": pooling,
        "weights_seed": _kit.new_seed(r),
        "ids": _kit.token_ids(g, B, T, V),
        "mask": lengths_mask(lengths, T, left=left),
        "labels": torch.randint(0, n_classes, (B,), generator=g),
    }
    return Case((), label, kw)


def _head_visible() -> list[Case]:
    g, r = _kit.seeded(70), _kit.rng("finetune.classifier.visible", 0)
    return [
        _head_case(g, r, "decoder style: last-token pooling, 2 classes", 3, 5, 2, "last"),
        _head_case(g, r, "encoder style: mean pooling, 2 classes", 3, 5, 2, "mean"),
        _head_case(g, r, "3 classes, mean pooling", 4, 6, 3, "mean"),
    ]


def _head_hidden(seed: int) -> list[Case]:
    g, r = _kit.generator("finetune.classifier", seed), _kit.rng("finetune.classifier", seed)
    return [
        _head_case(g, r, "random batch, last-token pooling", 6, 9, 2, "last"),
        _head_case(g, r, "random batch, mean pooling", 6, 9, 2, "mean"),
        _head_case(g, r, "padded on the left, last-token pooling", 5, 7, 2, "last", left=True),
        _head_case(g, r, "5 classes", 7, 4, 5, "last"),
        _head_case(g, r, "one sentence", 1, 3, 2, "mean"),
    ]


# --------------------------------------------------------------------------- probe / fine-tune loop


class TinyClassifier(torch.nn.Module):
    """What ``train_classifier`` is run on: ``backbone`` (a :class:`TinyBody`), ``head``, ``n_classes``;
    ``forward(ids, mask, labels=None) -> (logits, loss)`` with mean pooling and mean cross-entropy."""

    def __init__(self, vocab_size: int, n_embd: int, n_classes: int = 2) -> None:
        super().__init__()
        self.backbone = TinyBody(vocab_size, n_embd)
        self.head = torch.nn.Linear(n_embd, n_classes)
        self.n_classes = n_classes

    def forward(self, ids, mask, labels=None):
        h = self.backbone(ids, mask)  # (B, T, C)
        m = mask.to(h.dtype)[..., None]  # (B, T, 1)
        logits = self.head((h * m).sum(1) / m.sum(1))  # (B, K)
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return logits, loss


@_kit.single_threaded
def run_train_classifier(
    train_classifier,
    *,
    vocab_size: int,
    n_embd: int,
    n_classes: int,
    weights_seed: int,
    ids: torch.Tensor,
    mask: torch.Tensor,
    labels: torch.Tensor,
    frozen: bool,
    steps: int,
    lr: float,
    batch_size: int,
    weight_decay: float,
    batch_seed: int,
):
    """A float64 :class:`TinyClassifier` with seeded weights, trained by ``train_classifier(model, ids,
    mask, labels, regime="probe" if frozen else "finetune", steps=, lr=, batch_size=, weight_decay=,
    generator=Generator(batch_seed))``: (the losses as a tensor, every weight after training by name).
    (A flag, not the regime's name: feedback may show hidden inputs' names, never their values.)"""
    model = TinyClassifier(vocab_size, n_embd, n_classes).double()
    layout = classifier_layout(vocab_size, n_embd, n_classes)
    model.load_state_dict(_kit.random_state_dict(layout, _kit.seeded(weights_seed), torch.float64))
    losses = train_classifier(
        model,
        ids,
        mask,
        labels,
        regime="probe" if frozen else "finetune",
        steps=steps,
        lr=lr,
        batch_size=batch_size,
        weight_decay=weight_decay,
        generator=_kit.seeded(batch_seed),
    )
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return torch.tensor([float(x) for x in losses], dtype=torch.float64), weights


def _loop_case(g, r, label: str, frozen: bool, N: int = 12, steps: int = 8, **kw) -> Case:
    V, C, K, T = 13, 6, kw.get("n_classes", 2), 7
    args = {
        "vocab_size": V,
        "n_embd": C,
        "n_classes": K,
        "weights_seed": _kit.new_seed(r),
        "ids": _kit.token_ids(g, N, T, V),
        "mask": lengths_mask([r.randint(1, T) for _ in range(N)], T),
        "labels": torch.randint(0, K, (N,), generator=g),
        "frozen": frozen,
        "steps": steps,
        "lr": kw.get("lr", 1e-2),
        "batch_size": kw.get("batch_size", 4),
        "weight_decay": kw.get("weight_decay", 0.0),
        "batch_seed": _kit.new_seed(r),
    }
    return Case((), label, args)


def _loop_visible() -> list[Case]:
    g, r = _kit.seeded(71), _kit.rng("finetune.train_classifier.visible", 0)
    return [
        _loop_case(g, r, "linear probe: only the head learns", True),
        _loop_case(g, r, "full fine-tuning: everything learns", False),
        _loop_case(g, r, "fine-tuning, 4 steps, batch of 6", False, steps=4, batch_size=6),
    ]


def _loop_hidden(seed: int) -> list[Case]:
    g, r = _kit.generator("finetune.train_classifier", seed), _kit.rng("finetune.train_classifier", seed)
    return [
        _loop_case(g, r, "probe, weight decay, more steps", True, steps=15, weight_decay=0.1),
        _loop_case(g, r, "fine-tune, weight decay, 3 classes", False, weight_decay=0.05, n_classes=3),
        _loop_case(g, r, "fine-tune, batch larger than the data", False, N=3, batch_size=8),
        _loop_case(g, r, "probe, batch of one, high learning rate", True, batch_size=1, lr=0.1),
        _loop_case(g, r, "zero steps: nothing changes", False, steps=0),
    ]


SPECS = [
    Spec(
        "finetune.last_token_pool",
        "llmcourse.finetune:last_token_pool",
        _pool_visible,
        _pool_hidden("finetune.last_token_pool"),
    ),
    Spec(
        "finetune.mean_pool",
        "llmcourse.finetune:mean_pool",
        _pool_visible,
        _pool_hidden("finetune.mean_pool"),
        **FLOAT32,
    ),
    Spec(
        "finetune.classifier",
        "llmcourse.finetune:Classifier",
        _head_visible,
        _head_hidden,
        adapter=run_classifier,
        **FLOAT32,
    ),
    Spec(
        "finetune.train_classifier",
        "llmcourse.finetune:train_classifier",
        _loop_visible,
        _loop_hidden,
        adapter=run_train_classifier,
        **FLOAT64_LOOP,
    ),
]
