"""Self-supervised pretraining: teach a GPT to predict the next token of Shakespeare.

No human labels anything here: **the labels come from the text itself**. Every window of the
corpus is an input (tokens t..t+T-1) and its own label (tokens t+1..t+T, the same window shifted by
one). A model that predicts them well has learned spelling, grammar, who speaks how, and a little
about the world, all of which later units reuse (fine-tuning, instruction tuning).

The pieces, smallest first:

1. **Data.** :func:`encode_iterable` tokenizes a corpus with the course BPE piece by piece, so memory
   stays flat however long the text; :func:`encode_corpus` collects the ids in one compact tensor.
   :func:`get_batch` cuts ``batch_size`` random windows out of it: inputs ``x`` and targets ``y``,
   both ``(B, T)``. :class:`BatchSampler` does the same with its own random generator, whose state is
   the "data position" a checkpoint saves.
2. **Loss.** :func:`cross_entropy`: minus the log-probability the model gave to the true next token,
   averaged over positions, ``logsumexp(logits) - logits[target]``.
3. **Optimizer.** :class:`AdamW` written out: running averages of the gradient (m) and of its square
   (v), bias correction for their zero start, a step of ``lr * m_hat / (sqrt(v_hat) + eps)``, and weight
   decay *decoupled* from the gradient (the weights shrink by ``lr * wd`` directly).
4. **Schedule.** :func:`lr_at`: a linear warm-up (Adam's early steps are noisy), then a cosine decay
   to ``min_lr``.
5. **Clipping.** :func:`clip_grad_norm`: if the gradient of *all* parameters, as one vector, is longer
   than ``max_norm``, shrink it to that length (one bad batch cannot throw the model far).
6. **The loop.** :func:`fit` is the whole idea in fifteen lines (the graded version).
   :class:`Trainer` is the same loop with what a real run needs: weight decay only on matrices, a
   progress bar, periodic validation (:func:`evaluate`), a loss curve (:func:`plot_history`) and
   checkpoints (:func:`save_checkpoint`, :func:`load_checkpoint`) that resume *exactly*: an
   interrupted run continues with the very same losses as one that never stopped.

The shipped checkpoint ``checkpoints/shakespeare_gpt.pt`` (a 0.5 M-parameter GPT, BPE vocabulary 512)
is made by ``python -m llmcourse.training --out checkpoints/shakespeare_gpt.pt`` (see :func:`main`).

Usage::

    tok = Tokenizer().train(text[:1_000_000], 512)
    data = encode_corpus(tok, [text])                       # (N,) int32 token ids
    model = GPT(GPTConfig(vocab_size=512, block_size=64))
    trainer = Trainer(model, train_ids, val_ids, TrainConfig(max_steps=600))
    history = trainer.run()                                 # progress bar, validation every 100 steps
    save_checkpoint("run.pt", trainer)
    trainer = load_checkpoint("run.pt", train_ids, val_ids) # ... and trainer.run() carries on
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

from .tokenization import Tokenizer, _split
from .toolbox.packaged import write_atomic
from .transformer import GPT, GPTConfig, default_device

__all__ = [
    "encode_iterable",
    "encode_corpus",
    "get_batch",
    "BatchSampler",
    "cross_entropy",
    "AdamW",
    "param_groups",
    "lr_at",
    "clip_grad_norm",
    "evaluate",
    "fit",
    "TrainConfig",
    "History",
    "Trainer",
    "save_checkpoint",
    "load_checkpoint",
    "load_pretrained",
    "plot_history",
    "main",
]

CHECKPOINT_FORMAT = "llmcourse-checkpoint v1"


# ----------------------------------------------------------------------------------------------
# 1. data: text -> token ids -> (x, y) windows


def encode_iterable(tok: Tokenizer, texts: Iterable[str]) -> Iterator[int]:
    """Token ids of the concatenation of ``texts``, yielded as they are ready.

    Equal to ``tok.encode_ordinary("".join(texts))``, but the text is never held whole: a file read
    line by line, or a generator of plays, is tokenized with memory that stays flat. The catch is the
    pre-split regex: a piece at the end of a chunk may go on in the next chunk ("Shakes" + "peare"),
    so the last pieces of what we have read wait in a small buffer until more text arrives.
    """
    if not isinstance(tok, Tokenizer):
        raise TypeError(f"tok must be an llmcourse Tokenizer, got {type(tok).__name__}")
    if isinstance(texts, str):
        texts = [texts]  # one string is one chunk, not an iterable of characters
    hold = 2  # the last piece may be cut short; the one before may depend on it (a lookahead)
    buffer = ""
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"encode_iterable: every chunk must be a str, got {type(text).__name__}")
        buffer += text
        pieces = _split(buffer, tok.pattern) if tok.pattern is not None else [buffer]
        if len(pieces) <= hold:
            continue
        ready = "".join(pieces[:-hold])
        yield from tok.encode_ordinary(ready)
        buffer = buffer[len(ready) :]
    if buffer:
        yield from tok.encode_ordinary(buffer)


def encode_corpus(tok: Tokenizer, texts: Iterable[str]) -> Tensor:
    """All ids of ``texts`` in one (N,) int32 tensor (4 bytes a token; the text itself is not kept)."""
    if tok.vocab_size > 2**31:
        raise ValueError(f"vocab_size {tok.vocab_size} does not fit in int32")
    ids = np.fromiter(encode_iterable(tok, texts), dtype=np.int32)
    return torch.from_numpy(ids)


def _get_batch_loop(data: Tensor, ix: Tensor, block_size: int) -> tuple[Tensor, Tensor]:
    """The plain version of :func:`get_batch` (the assignment's): one slice per window; tested equal."""
    x = torch.stack([data[i : i + block_size] for i in ix.tolist()])  # (B, T)
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix.tolist()])  # (B, T): shifted by one
    return x.long(), y.long()


def get_batch(
    data: Tensor, batch_size: int, block_size: int, generator: torch.Generator | None = None, device=None
) -> tuple[Tensor, Tensor]:
    """``batch_size`` random windows of ``data``: inputs x and targets y, both (B, T) long.

    Window b starts at ``ix[b] = torch.randint(len(data) - block_size, (batch_size,), generator)``;
    ``x[b] = data[ix[b] : ix[b] + T]`` and ``y[b] = data[ix[b] + 1 : ix[b] + T + 1]``: the label of every
    position is simply the next token. One gather over a (B, T + 1) index does all windows at once.
    """
    _check_data(data, block_size, "get_batch")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"get_batch: batch_size must be a positive int, got {batch_size!r}")
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = ix[:, None] + torch.arange(block_size + 1)  # (B, T + 1)
    windows = data[offsets].long()  # (B, T + 1)
    x, y = windows[:, :-1], windows[:, 1:]  # (B, T) each
    if device is not None:
        x, y = x.to(device), y.to(device)
    return x, y


class BatchSampler:
    """Random windows from a private generator: its state is the data position a checkpoint keeps.

    ``state_dict()`` / ``load_state_dict()`` save and restore the generator and the number of batches
    drawn, so a resumed run draws exactly the batches the uninterrupted run would have drawn.
    """

    def __init__(self, data: Tensor, batch_size: int, block_size: int, seed: int = 0) -> None:
        _check_data(data, block_size, "BatchSampler")
        self.data, self.batch_size, self.block_size = data, batch_size, block_size
        self.generator = torch.Generator().manual_seed(seed)
        self.batches_drawn = 0

    def next(self, device=None) -> tuple[Tensor, Tensor]:
        self.batches_drawn += 1
        return get_batch(self.data, self.batch_size, self.block_size, self.generator, device)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "batches_drawn": self.batches_drawn}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.batches_drawn = int(state["batches_drawn"])


# ----------------------------------------------------------------------------------------------
# 2. the loss


def cross_entropy(logits: Tensor, targets: Tensor, ignore_index: int = -1) -> Tensor:
    """Mean of ``-log softmax(logits)[target]`` over positions whose target is not ``ignore_index``.

    logits (..., V), targets (...) long. ``-log p[y] = logsumexp(logits) - logits[y]``: computing it
    this way never forms the probabilities, so large logits cannot overflow. Equal to
    ``F.cross_entropy(logits.view(-1, V), targets.view(-1), ignore_index=ignore_index)``.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} must be targets {tuple(targets.shape)} plus a vocabulary dim")
    logits = logits.reshape(-1, logits.size(-1))  # (N, V)
    targets = targets.reshape(-1)  # (N,)
    keep = targets != ignore_index  # (N,)
    logits, targets = logits[keep], targets[keep]
    log_z = torch.logsumexp(logits, dim=-1)  # (N,)
    picked = logits.gather(1, targets[:, None].long())[:, 0]  # (N,): the true token's logit
    return (log_z - picked).mean()


# ----------------------------------------------------------------------------------------------
# 3. the optimizer


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), written out.

    For each parameter p with gradient g, at step t = 1, 2, ...::

        p <- p * (1 - lr * weight_decay)          decay the weight itself, not via the gradient
        m <- beta1 * m + (1 - beta1) * g          running mean of the gradient
        v <- beta2 * v + (1 - beta2) * g^2        running mean of its square
        m_hat = m / (1 - beta1^t)                 m and v start at 0: undo that bias
        v_hat = v / (1 - beta2^t)
        p <- p - lr * m_hat / (sqrt(v_hat) + eps)

    Every coordinate moves by about ``lr`` whatever the gradient's scale. ``params`` is an iterable of
    tensors, or of groups ``{"params": [...], "weight_decay": wd}`` (see :func:`param_groups`). The
    learning rate is one attribute, ``opt.lr``, which a schedule sets before every step.
    ``foreach=True`` updates all tensors with one ``torch._foreach_*`` call per operation (fast);
    ``foreach=False`` loops over them (readable). Both equal ``torch.optim.AdamW`` (tested).
    """

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        foreach: bool = True,
    ) -> None:
        self.lr = lr  # checked by the setter
        beta1, beta2 = betas
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not (isinstance(b, (int, float)) and 0.0 <= b < 1.0):
                raise ValueError(f"AdamW: {name} must be in [0, 1), got {b!r}")
        self.betas = (float(beta1), float(beta2))
        self.eps = _check_finite(eps, "AdamW eps")
        params = list(params)
        if not params:
            raise ValueError("AdamW got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        self.param_groups = []
        for group in params:
            wd = _check_finite(group.get("weight_decay", weight_decay), "AdamW weight_decay")
            tensors = list(group["params"])
            if not all(isinstance(p, Tensor) for p in tensors):
                raise TypeError("AdamW: params must be tensors (e.g. model.parameters())")
            self.param_groups.append({"params": tensors, "weight_decay": wd})
        self.foreach = foreach
        self.t = 0  # calls of step()
        # per parameter: its step count, m and v (torch's "step", "exp_avg", "exp_avg_sq"), made at its first update
        self.state: dict[Tensor, dict[str, Tensor]] = {}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value: float) -> None:
        self._lr = _check_finite(value, "AdamW learning rate")

    def zero_grad(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient (the others are skipped entirely)."""
        beta1, beta2 = self.betas
        self.t += 1
        for group in self.param_groups:
            ps = [p for p in group["params"] if p.grad is not None]
            if not ps:
                continue
            for p in ps:
                if p not in self.state:
                    self.state[p] = {"step": 0, "m": torch.zeros_like(p), "v": torch.zeros_like(p)}
                self.state[p]["step"] += 1  # per parameter, as torch counts: one skipped keeps its count
            gs = [p.grad for p in ps]
            ms = [self.state[p]["m"] for p in ps]
            vs = [self.state[p]["v"] for p in ps]
            steps = [self.state[p]["step"] for p in ps]
            step_sizes = [self.lr / (1 - beta1**t) for t in steps]  # lr / bias correction of m
            bc2_sqrts = [(1 - beta2**t) ** 0.5 for t in steps]  # sqrt of the bias correction of v
            wd = group["weight_decay"]
            if self.foreach:
                if wd != 0:
                    torch._foreach_mul_(ps, 1 - self.lr * wd)
                torch._foreach_lerp_(ms, gs, 1 - beta1)  # m + (1 - beta1) (g - m)
                torch._foreach_mul_(vs, beta2)
                torch._foreach_addcmul_(vs, gs, gs, value=1 - beta2)
                denom = torch._foreach_sqrt(vs)
                torch._foreach_div_(denom, bc2_sqrts)
                torch._foreach_add_(denom, self.eps)
                torch._foreach_addcdiv_(ps, ms, denom, [-s for s in step_sizes])
            else:
                for p, g, m, v, step_size, bc2_sqrt in zip(ps, gs, ms, vs, step_sizes, bc2_sqrts):
                    if wd != 0:
                        p.mul_(1 - self.lr * wd)
                    m.lerp_(g, 1 - beta1)
                    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
                    denom = (v.sqrt() / bc2_sqrt).add_(self.eps)
                    p.addcdiv_(m, denom, value=-step_size)

    def state_dict(self) -> dict:
        """Plain data: the step counts, the learning rate and m, v of every parameter, in order."""
        params = [p for group in self.param_groups for p in group["params"]]
        state = [self.state.get(p) for p in params]
        return {
            "t": self.t,
            "lr": self.lr,
            "step": [0 if s is None else s["step"] for s in state],
            "m": [None if s is None else s["m"] for s in state],
            "v": [None if s is None else s["v"] for s in state],
        }

    def load_state_dict(self, state: dict) -> None:
        params = [p for group in self.param_groups for p in group["params"]]
        if len(state["m"]) != len(params):
            raise ValueError(f"optimizer state has {len(state['m'])} parameters, this optimizer {len(params)}")
        self.t, self.lr = int(state["t"]), float(state["lr"])
        self.state = {}
        for p, step, m, v in zip(params, state["step"], state["m"], state["v"]):
            if m is not None:
                if m.shape != p.shape:
                    raise ValueError(f"optimizer state of shape {tuple(m.shape)} for a parameter {tuple(p.shape)}")
                self.state[p] = {"step": int(step), "m": m.to(p).clone(), "v": v.to(p).clone()}


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay the matrices (Linear weights, embeddings); leave biases and LayerNorm gains alone
    (shrinking a gain towards 0 is not "simpler", it is just wrong). nanoGPT's rule: dim >= 2."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


# ----------------------------------------------------------------------------------------------
# 4. the learning-rate schedule


def lr_at(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, max_steps: int) -> float:
    """Linear warm-up to ``max_lr``, then a cosine down to ``min_lr`` at ``max_steps``.

        step < warmup_steps:                 max_lr * (step + 1) / warmup_steps
        warmup_steps <= step <= max_steps:   min_lr + (max_lr - min_lr) * (1 + cos(pi * progress)) / 2,
                                             progress = (step - warmup_steps) / (max_steps - warmup_steps)
        step > max_steps:                    min_lr

    So step ``warmup_steps - 1`` and step ``warmup_steps`` both get ``max_lr``, the middle of the decay
    gets the average of the two rates, and ``max_steps`` gets ``min_lr``.
    """
    _check_schedule(step, max_lr, min_lr, warmup_steps, max_steps)
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step >= max_steps:
        return min_lr
    progress = (step - warmup_steps) / (max_steps - warmup_steps)  # 0 -> 1
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


# ----------------------------------------------------------------------------------------------
# 5. gradient clipping


def clip_grad_norm(parameters: Iterable[Tensor], max_norm: float) -> Tensor:
    """Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    The global norm is the length of every gradient laid end to end: ``sqrt(sum ||g_i||^2)``, here
    computed as the norm of the per-tensor norms, as ``torch.nn.utils.clip_grad_norm_`` does. The
    scale is ``min(1, max_norm / (norm + 1e-6))``; the direction never changes. Returns the norm
    before clipping (worth logging: spikes show trouble).
    """
    max_norm = _check_finite(max_norm, "max_norm")
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    norms = torch.stack([torch.linalg.vector_norm(g.detach()) for g in grads])  # (n_tensors,)
    total = torch.linalg.vector_norm(norms)  # ()
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.detach().mul_(scale)
    return total


# ----------------------------------------------------------------------------------------------
# 6. the loop


@torch.no_grad()
def evaluate(model: nn.Module, data: Tensor, block_size: int, batch_size: int = 32, max_windows: int | None = None):
    """Mean next-token loss over non-overlapping windows of ``data`` (the model in eval mode).

    Deterministic, so two evaluations of one model agree: every window ``data[i*T : (i+1)*T]`` with its
    targets one further on, or ``max_windows`` of them spread evenly over the data.
    """
    _check_data(data, block_size, "evaluate")
    n = (len(data) - 1) // block_size
    starts = torch.arange(n) * block_size  # (n,)
    if max_windows is not None and max_windows < n:
        starts = starts[torch.linspace(0, n - 1, max_windows).long()]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for chunk in starts.split(batch_size):
        offsets = chunk[:, None] + torch.arange(block_size + 1)  # (b, T + 1)
        windows = data[offsets].long().to(device)
        logits, _ = model(windows[:, :-1])  # (b, T, V)
        loss = cross_entropy(logits, windows[:, 1:])
        total += loss.item() * chunk.numel()
        count += chunk.numel()
    model.train(was_training)
    return total / count


def fit(
    model: nn.Module,
    train_data: Tensor,
    val_data: Tensor,
    *,
    steps: int,
    batch_size: int,
    block_size: int,
    max_lr: float,
    min_lr: float,
    warmup_steps: int,
    weight_decay: float,
    grad_clip: float,
    generator: torch.Generator,
) -> tuple[list[float], float]:
    """The training loop, nothing else: returns (the loss of every step, the held-out loss after).

    Every step: set the learning rate, draw a batch, forward, loss, backward, clip, update.
    """
    opt = AdamW(model.parameters(), lr=max_lr, weight_decay=weight_decay)
    model.train()
    losses = []
    for step in range(steps):
        opt.lr = lr_at(step, max_lr=max_lr, min_lr=min_lr, warmup_steps=warmup_steps, max_steps=steps)
        x, y = get_batch(train_data, batch_size, block_size, generator)  # (B, T) each
        logits, _ = model(x)  # (B, T, V)
        loss = cross_entropy(logits, y)
        opt.zero_grad()
        loss.backward()
        clip_grad_norm(model.parameters(), grad_clip)
        opt.step()
        losses.append(loss.item())
    return losses, evaluate(model, val_data, block_size)


@dataclass
class TrainConfig:
    batch_size: int = 32
    max_steps: int = 600
    max_lr: float = 3e-3
    min_lr: float = 3e-4
    warmup_steps: int = 50
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)  # a shorter memory for v than Adam's 0.999: steadier for LMs
    grad_clip: float = 1.0
    eval_interval: int = 100  # validate every this many steps (and at the end)
    eval_windows: int = 256  # windows of the validation set used by the periodic validation
    seed: int = 1337

    def __post_init__(self) -> None:
        for name in ("batch_size", "max_steps", "eval_interval", "eval_windows"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"TrainConfig.{name} must be a positive int, got {value!r}")
        _check_schedule(0, self.max_lr, self.min_lr, self.warmup_steps, self.max_steps)
        _check_finite(self.weight_decay, "TrainConfig.weight_decay")
        _check_finite(self.grad_clip, "TrainConfig.grad_clip")
        self.betas = tuple(self.betas)


@dataclass
class History:
    """What a run measured: per step (loss, learning rate, gradient norm) and per validation."""

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0  # time spent in training steps
    tokens: int = 0  # tokens trained on


class Trainer:
    """A pretraining run that can stop and resume exactly.

    Everything that decides the next loss lives here and goes into a checkpoint: the model, the
    optimizer (m, v, step count), the step (which sets the learning rate), the batch sampler's
    generator (the data position) and torch's global RNG (dropout).
    """

    def __init__(self, model: nn.Module, train_data: Tensor, val_data: Tensor, config: TrainConfig) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        block_size = model.config.block_size
        _check_data(val_data, block_size, "Trainer (validation data)")
        self.model, self.val_data, self.config = model, val_data, config
        self.sampler = BatchSampler(train_data, config.batch_size, block_size, seed=config.seed)
        self.optimizer = AdamW(
            param_groups(model, config.weight_decay), lr=config.max_lr, betas=config.betas, weight_decay=0.0
        )
        self.step = 0
        self.history = History()

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def lr(self, step: int) -> float:
        c = self.config
        return lr_at(step, max_lr=c.max_lr, min_lr=c.min_lr, warmup_steps=c.warmup_steps, max_steps=c.max_steps)

    def train_step(self) -> float:
        """One optimizer step; returns its loss."""
        self.model.train()
        self.optimizer.lr = self.lr(self.step)
        x, y = self.sampler.next(self.device)  # (B, T) each
        _, loss = self.model(x, y)  # the model's fused cross-entropy (equal to ours, faster)
        self.optimizer.zero_grad()
        loss.backward()
        norm = clip_grad_norm(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        h = self.history
        h.step.append(self.step)
        h.loss.append(loss.item())
        h.lr.append(self.optimizer.lr)
        h.grad_norm.append(norm.item())
        h.tokens += x.numel()
        self.step += 1
        return h.loss[-1]

    def validate(self, max_windows: int | None = -1) -> float:
        """Held-out loss; ``max_windows=None`` uses the whole validation set."""
        windows = self.config.eval_windows if max_windows == -1 else max_windows
        loss = evaluate(self.model, self.val_data, self.model.config.block_size, max_windows=windows)
        self.history.val_step.append(self.step)
        self.history.val_loss.append(loss)
        return loss

    def run(self, steps: int | None = None, progress: bool = True) -> History:
        """Train until ``max_steps`` (or ``steps`` more steps), validating every ``eval_interval``."""
        from tqdm import tqdm

        end = self.config.max_steps if steps is None else min(self.config.max_steps, self.step + steps)
        bar = tqdm(total=end - self.step, disable=not progress, desc="training", unit="step", leave=True)
        while self.step < end:
            t0 = time.perf_counter()
            loss = self.train_step()
            self.history.seconds += time.perf_counter() - t0
            bar.update(1)
            if self.step % self.config.eval_interval == 0 or self.step == self.config.max_steps:
                self.validate()
                bar.set_postfix(loss=f"{loss:.3f}", val=f"{self.history.val_loss[-1]:.3f}")
            elif self.step % 10 == 0:
                bar.set_postfix(loss=f"{loss:.3f}")
        bar.close()
        return self.history

    # -- checkpoints

    def state_dict(self, optimizer: bool = True) -> dict:
        state = {
            "format": CHECKPOINT_FORMAT,
            "model_config": dataclasses.asdict(self.model.config),
            "model": self.model.state_dict(),
            "train_config": dataclasses.asdict(self.config),
            "step": self.step,
            "history": dataclasses.asdict(self.history),
        }
        if optimizer:  # what resuming needs, and three times the model's size
            state["optimizer"] = self.optimizer.state_dict()
            state["sampler"] = self.sampler.state_dict()
            state["torch_rng"] = torch.get_rng_state()
        return state


def save_checkpoint(
    path: str | Path, trainer: Trainer, *, optimizer: bool = True, tokenizer: Tokenizer | None = None, **meta
) -> None:
    """Write ``trainer``'s state to ``path`` atomically (a crash mid-write leaves the old file).

    ``optimizer=False`` keeps only what inference needs (the model, its config, the history): the
    small file to ship. ``tokenizer`` stores its pattern and merges so the file decodes on its own;
    ``meta`` adds plain data (e.g. ``command=...``).
    """
    state = trainer.state_dict(optimizer=optimizer)
    if tokenizer is not None:
        state["tokenizer"] = {
            "pattern": tokenizer.pattern,
            "merges": [[a, b, i] for (a, b), i in tokenizer.merges.items()],
        }
    state["meta"] = dict(meta)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    write_atomic(path, buffer.getvalue())


def _read(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)  # plain tensors and data only
    except Exception as e:  # not a torch file, truncated, or holding code: all one answer to the user
        raise ValueError(f"{path} is not a readable llmcourse checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not an llmcourse checkpoint ({CHECKPOINT_FORMAT})")
    return state


def load_checkpoint(path: str | Path, train_data: Tensor, val_data: Tensor, model: nn.Module | None = None) -> Trainer:
    """A Trainer in exactly the state ``path`` was saved in; ``run()`` continues the run.

    ``model``: load into this model (its config must be the checkpoint's), else build a GPT from
    the saved config on the default device.
    """
    state = _read(path)
    if "optimizer" not in state:
        raise ValueError(f"{path} holds a model only (saved with optimizer=False): it cannot resume training")
    saved = GPTConfig(**state["model_config"])
    if model is None:
        model = GPT(saved).to(default_device())
    elif dataclasses.asdict(model.config) != state["model_config"]:
        ours = dataclasses.asdict(model.config)
        diff = {
            k: (state["model_config"].get(k), ours.get(k)) for k in ours if ours.get(k) != state["model_config"].get(k)
        }
        raise ValueError(
            f"{path} was saved from a model of another configuration; differing fields (checkpoint, this model): {diff}"
        )
    model.load_state_dict(state["model"])
    cfg = dict(state["train_config"])
    cfg["betas"] = tuple(cfg["betas"])
    trainer = Trainer(model, train_data, val_data, TrainConfig(**cfg))
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.sampler.load_state_dict(state["sampler"])
    torch.set_rng_state(state["torch_rng"])
    trainer.step = int(state["step"])
    trainer.history = History(**state["history"])
    return trainer


def load_pretrained(path: str | Path) -> tuple[GPT, Tokenizer, dict]:
    """(model in eval mode, tokenizer, the whole checkpoint) from a shipped checkpoint."""
    state = _read(path)
    model = GPT(GPTConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    tok = state.get("tokenizer")
    if tok is None:
        raise ValueError(f"{path} holds no tokenizer")
    tokenizer = Tokenizer(tok["pattern"], merges={(a, b): i for a, b, i in tok["merges"]})
    return model.eval(), tokenizer, state


def plot_history(history: History, *, title: str | None = None, ax=None):
    """Training loss per step and validation loss at its checkpoints, on one axis."""
    from .toolbox.viz import plot_lines

    xs = {"train": history.step, "validation": history.val_step}
    series = {"train": history.loss, "validation": history.val_loss}
    return plot_lines(xs, series, xlabel="step", ylabel="loss (nats / token)", title=title, marker="", ax=ax)


# ----------------------------------------------------------------------------------------------
# the shipped checkpoint: python -m llmcourse.training --out checkpoints/shakespeare_gpt.pt

SHAKESPEARE_MODEL = dict(block_size=64, vocab_size=512, n_layer=4, n_head=4, n_embd=96)
SHAKESPEARE_TOKENIZER_CHARS = 1_000_000  # the BPE learns its merges from the first 1 MB of train


def shakespeare_data(vocab_size: int = 512) -> tuple[Tokenizer, Tensor, Tensor]:
    """(tokenizer, train ids, val ids): the course BPE trained on Shakespeare, both splits encoded."""
    from .toolbox.data import load_shakespeare

    train_text = load_shakespeare("train")
    tok = Tokenizer().train(train_text[:SHAKESPEARE_TOKENIZER_CHARS], vocab_size)
    step = 1 << 16  # fed as a stream of 64 KB slices, as a file read piece by piece would be
    train_ids = encode_corpus(tok, (train_text[i : i + step] for i in range(0, len(train_text), step)))
    val_ids = encode_corpus(tok, [load_shakespeare("val")])
    return tok, train_ids, val_ids


def train_and_save(
    model: GPT,
    tokenizer: Tokenizer | None,
    train_ids: Tensor,
    val_ids: Tensor,
    config: TrainConfig,
    out: str | Path,
    command: str,
    *,
    steps: int | None = None,
    optimizer: bool = False,
    progress: bool = True,
    prep_seconds: float | None = None,
) -> float:
    """Pretrain ``model``, measure it on all the held-out tokens and write its checkpoint (with ``command``,
    the line that remakes it); prints what was written. The course's checkpoint commands all end this way
    (``python -m llmcourse.training``, ``python -m llmcourse.toolbox.reviews``). Returns the validation loss.

    steps: stop after this many (the schedule stays ``config.max_steps`` long); optimizer: also save the
    optimizer and RNG state, so that training can resume (3x larger); prep_seconds: data preparation time,
    recorded in the checkpoint.
    """
    trainer = Trainer(model, train_ids, val_ids, config)
    history = trainer.run(steps=steps, progress=progress)
    val_loss = evaluate(model, val_ids, model.config.block_size)
    extra = {} if prep_seconds is None else {"prep_seconds": prep_seconds}
    save_checkpoint(
        out,
        trainer,
        optimizer=optimizer,
        tokenizer=tokenizer,
        command=command,
        val_loss=val_loss,
        train_tokens=len(train_ids),
        val_tokens=len(val_ids),
        seconds=history.seconds,
        **extra,
    )
    size = Path(out).stat().st_size / 1e6
    prep = "" if prep_seconds is None else f"data {prep_seconds:.0f} s, "
    print(
        f"wrote {out} ({size:.1f} MB): {model.num_params():,} parameters; {prep}{trainer.step} steps in "
        f"{history.seconds:.0f} s ({history.tokens / history.seconds:,.0f} tokens/s); validation loss "
        f"{val_loss:.4f} on all {len(val_ids):,} held-out tokens"
    )
    return val_loss


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m llmcourse.training", description="Pretrain a tiny GPT on Shakespeare (a few CPU minutes)."
    )
    parser.add_argument("--out", required=True, help="checkpoint to write, e.g. checkpoints/shakespeare_gpt.pt")
    parser.add_argument("--steps", type=int, default=TrainConfig.max_steps)
    parser.add_argument("--stop-after", type=int, default=None, help="stop after this many steps (same schedule)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (results vary slightly with it)")
    parser.add_argument("--resumable", action="store_true", help="also save the optimizer and RNG (3x larger)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tok, train_ids, val_ids = shakespeare_data(SHAKESPEARE_MODEL["vocab_size"])
    command = f"python -m llmcourse.training --out {args.out}" + (f" --steps {args.steps}" if args.steps != 600 else "")
    train_and_save(
        GPT(GPTConfig(**SHAKESPEARE_MODEL)),
        tok,
        train_ids,
        val_ids,
        TrainConfig(max_steps=args.steps),
        args.out,
        command,
        steps=args.stop_after,
        optimizer=args.resumable,
        progress=not args.quiet,
    )


# ----------------------------------------------------------------------------------------------
# input checks: bad input fails here, loudly, not as a silently wrong run later


def _check_data(data, block_size: int, who: str) -> None:
    if not isinstance(data, Tensor) or data.dim() != 1 or data.dtype.is_floating_point:
        got = f"{data.dtype} tensor of shape {tuple(data.shape)}" if isinstance(data, Tensor) else type(data).__name__
        raise TypeError(f"{who}: data must be a 1-D tensor of token ids, got a {got}")
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"{who}: block_size must be a positive int, got {block_size!r}")
    if len(data) < block_size + 1:
        raise ValueError(
            f"{who}: a window needs block_size + 1 = {block_size + 1} tokens (inputs and the targets one "
            f"further on), but the data holds only {len(data)}; use more text or a smaller block_size"
        )


def _check_finite(value, name: str, low: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
        raise ValueError(f"{name} must be a finite number >= {low}, got {value!r}")
    return float(value)


def _check_schedule(step, max_lr, min_lr, warmup_steps, max_steps) -> None:
    for name, value in (("step", step), ("warmup_steps", warmup_steps), ("max_steps", max_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"lr_at: {name} must be an int >= 0, got {value!r}")
    _check_finite(max_lr, "max_lr (the learning rate)")
    _check_finite(min_lr, "min_lr")
    if min_lr > max_lr:
        raise ValueError(f"lr_at: min_lr={min_lr} is above max_lr={max_lr}")
    if warmup_steps >= max_steps and max_steps > 0:
        raise ValueError(f"lr_at: warmup_steps={warmup_steps} must be below max_steps={max_steps}")


if __name__ == "__main__":
    main()
