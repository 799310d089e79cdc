"""The spec kit: what every ``checks/<topic>.py`` builds its cases and adapters from.

A spec module describes, for each graded part, the inputs it is checked on. Four things recur in
every unit, so they live here once:

1. **Seeds.** Visible cases are fixed (students see them; they never depend on the grader's secret
   seed). Hidden cases are drawn from the secret seed, mixed with the check's name so that two checks
   never share a stream: :func:`rng` (Python ``random``), :func:`numpy_rng` and :func:`generator` (a
   torch Generator).
   :func:`seeded` is a Generator with exactly the seed given (visible cases, weight seeds).
2. **Tensors.** :func:`randn` draws in float64 and then casts, so a float32 case and a float64 case
   from the same stream hold the same numbers; :func:`token_ids`, :func:`causal_mask`,
   :func:`padding_mask` are the other inputs attention-shaped units need.
3. **Parameters.** A graded ``nn.Module`` is loaded with seeded random weights under the reference's
   parameter names. A layout is a list of :class:`Param` (name, shape, how the value is drawn);
   :func:`random_state_dict` draws it; :func:`build` constructs the student's class, loads the state
   strictly and turns a wrong name or shape into a sentence the student can act on.
4. **One thread.** The models in cases are tiny; with several OpenMP threads on a busy machine each
   matmul waits on thread hand-offs (10x slower). :func:`single_threaded` wraps an adapter.

torch is imported inside the functions that need it: text units (01) use :func:`rng` only, and a
grading kernel for them must not pay torch's start-up.

An adapter is a plain function with an explicit signature, like CS336's ``tests/adapters.py``
(``run_rmsnorm(d_model, eps, weights, in_features)``): ``adapter(graded_object, **inputs)``. The
failure report prints that very call, and a student can make it themselves to reproduce a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import random
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .checker import seeded_rng_seed

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import numpy
    import torch

# --------------------------------------------------------------------------- seeds


def rng(name: str, seed: int) -> random.Random:
    """Python ``random`` for the hidden cases of check ``name`` under the grader's ``seed``."""
    return random.Random(seeded_rng_seed(name, seed))


def numpy_rng(name: str, seed: int) -> numpy.random.Generator:
    """A numpy Generator for the hidden cases of check ``name`` under the grader's ``seed``."""
    import numpy

    return numpy.random.default_rng(seeded_rng_seed(name, seed))


def generator(name: str, seed: int) -> torch.Generator:
    """A torch Generator for the hidden cases of check ``name`` under the grader's ``seed``."""
    return seeded(seeded_rng_seed(name, seed))


def seeded(seed: int) -> torch.Generator:
    """A torch Generator seeded with exactly ``seed`` (visible cases; a weight seed from :func:`rng`)."""
    import torch

    return torch.Generator().manual_seed(seed)


def new_seed(r: random.Random) -> int:
    """A fresh 31-bit seed from ``r`` (e.g. the weights of one hidden case)."""
    return r.randrange(2**31)


# --------------------------------------------------------------------------- tensors


def randn(g: torch.Generator, *shape: int, dtype=None, scale: float = 1.0, offset: float = 0.0) -> torch.Tensor:
    """``offset + scale * N(0, 1)`` of ``shape``, drawn in float64 and cast to ``dtype`` (float32)."""
    import torch

    z = torch.randn(*shape, generator=g, dtype=torch.float64)
    if scale != 1.0:
        z = z * scale
    if offset != 0.0:
        z = offset + z
    return z.to(dtype or torch.float32)


def token_ids(g: torch.Generator, B: int, T: int, vocab_size: int) -> torch.Tensor:
    """(B, T) int64 ids in [0, vocab_size)."""
    import torch

    return torch.randint(0, vocab_size, (B, T), generator=g)


def causal_mask(T: int) -> torch.Tensor:
    """(T, T) bool, True on and below the diagonal: query i may attend to keys j <= i."""
    import torch

    return torch.ones(T, T, dtype=torch.bool).tril()


def padding_mask(lengths: list[int], T: int) -> torch.Tensor:
    """(B, 1, 1, T) bool, True where the key is a real token (sentences padded on the right)."""
    import torch

    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None])[:, None, None, :]


# --------------------------------------------------------------------------- parameter layouts


@dataclasses.dataclass(frozen=True)
class Param:
    """One entry of a module's state dict and how its seeded random value is drawn.

    value = (offset + scale * N(0, 1)) / sqrt(fan_in)  (fan_in: nn.Linear's scale, so activations
    keep a unit size through a network), or the very tensor named by ``tied`` (weight tying).
    """

    name: str
    shape: tuple[int, ...]
    scale: float = 1.0
    offset: float = 0.0
    fan_in: int | None = None
    tied: str | None = None


def gain(name: str, C: int) -> Param:
    """A LayerNorm-style gain: near 1."""
    return Param(name, (C,), scale=0.3, offset=1.0)


def shift(name: str, n: int) -> Param:
    """A bias: near 0."""
    return Param(name, (n,), scale=0.2)


def linear_params(prefix: str, n_in: int, n_out: int, bias: bool) -> list[Param]:
    """``nn.Linear(n_in, n_out)``: weight (n_out, n_in), as nn.Linear stores it, then the bias."""
    weight = Param(f"{prefix}weight", (n_out, n_in), fan_in=n_in)
    return [weight] + ([shift(f"{prefix}bias", n_out)] if bias else [])


def layernorm_params(prefix: str, C: int, bias: bool) -> list[Param]:
    return [gain(f"{prefix}weight", C)] + ([shift(f"{prefix}bias", C)] if bias else [])


def random_state_dict(layout: list[Param], g: torch.Generator, dtype) -> dict[str, torch.Tensor]:
    """Draw every :class:`Param` of ``layout`` from ``g``, in order, as ``dtype``."""
    state: dict[str, torch.Tensor] = {}
    for p in layout:
        if p.tied is not None:
            state[p.name] = state[p.tied]
            continue
        value = randn(g, *p.shape, dtype=_float64(), scale=p.scale, offset=p.offset)
        if p.fan_in is not None:
            value = value / math.sqrt(p.fan_in)
        state[p.name] = value.to(dtype)
    return state


def _float64():
    import torch

    return torch.float64


# --------------------------------------------------------------------------- build and load


def build(cls: Callable, args: tuple, kwargs: dict, state: dict, dtype, what: str):
    """``cls(*args, **kwargs)`` cast to ``dtype``, ``state`` loaded strictly, in eval mode.

    ``what`` names the call in errors (e.g. ``"LayerNorm(8, bias=True)"``).
    """
    import torch

    model = cls(*args, **kwargs)
    if isinstance(model, torch.nn.Module):
        model = model.to(dtype)
    return load(model, state, what)


def load(model: Any, state: dict, what: str):
    """Load ``state`` into ``model`` strictly; names or shapes that differ become a readable error."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"{what} should be a torch.nn.Module (a class with __init__ and forward), got {type(model).__name__}"
        )
    ours = model.state_dict()
    missing = [k for k in state if k not in ours]
    unexpected = [k for k in ours if k not in state]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)} (the reference has them, yours does not)")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)} (yours has them, the reference does not)")
        raise ValueError(
            f"{what}'s parameter names differ from the reference's: "
            + "; ".join(parts)
            + ". Use the attribute names the notebook gives; register helper tensors "
            "with persistent=False"
        )
    for k, v in state.items():
        if tuple(ours[k].shape) != tuple(v.shape):
            raise ValueError(
                f"{what}: parameter {k!r} has shape {tuple(ours[k].shape)} in yours, "
                f"{tuple(v.shape)} in the reference (nn.Linear(n_in, n_out) stores its "
                "weight as (n_out, n_in))"
            )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:  # pragma: no cover - the checks above catch the usual causes
        raise ValueError(f"{what}: load_state_dict failed: {e}") from None
    return model.eval()


def _few(keys: list[str]) -> str:
    return ", ".join(repr(k) for k in keys[:6]) + (f" and {len(keys) - 6} more" if len(keys) > 6 else "")


# --------------------------------------------------------------------------- one thread


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run the body on one CPU thread, then restore the setting."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def single_threaded(adapter: Callable) -> Callable:
    """An adapter that runs on one thread; its name and signature stay the adapter's own."""

    @functools.wraps(adapter)
    def run(*args, **kwargs):
        with one_thread():
            return adapter(*args, **kwargs)

    return run
