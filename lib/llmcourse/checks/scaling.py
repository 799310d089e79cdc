"""Cases for assignment 11 (scaling laws and emergence): the non-embedding parameter count, splitting a
compute budget, the two power-law fits, the compute-optimal model size and the pair of emergence metrics.

Nothing here imports ``llmcourse.scaling`` (the answer key, unavailable while grading). The data the
fits are checked on is made from first principles: a known law ``a N^-alpha + c`` evaluated at a few
sizes, times ``1 + noise`` drawn from the case's generator, so a hidden case's points are new for every
grading seed. The fits are compared by their parameters, so a correct answer must find the least-squares
optimum itself (to about 1e-7 relative), not merely a curve that looks right.

Adapters turn what a student returns (a tuple, a list, numpy floats) into a tuple of Python floats.
The fitting parts are to be written without ``scipy.optimize`` (``curve_fit`` would do the work).
"""

from __future__ import annotations

import numpy as np

from . import _kit
from .checker import Case, Spec

FORBIDDEN_FIT = ("scipy.optimize",)


def _floats(out, n: int, what: str) -> tuple[float, ...]:
    values = tuple(float(v) for v in out)
    if len(values) != n:
        raise ValueError(f"{what} should return {n} numbers, got {len(values)}")
    return values


def law_points(rng: np.random.Generator, a: float, alpha: float, c: float, lo: float, hi: float, n: int, noise: float):
    """(N, L): n log-spaced sizes in [lo, hi] and ``(a N^-alpha + c) * (1 + noise * z)``, z ~ N(0, 1)."""
    N = np.geomspace(lo, hi, n)
    L = (a * N**-alpha + c) * (1.0 + noise * rng.standard_normal(n))
    return N, L


# --------------------------------------------------------------------------- counting


def _params_visible() -> list[Case]:
    return [
        Case((1, 16), "one block of width 16"),
        Case((4, 96), "the shipped Shakespeare GPT of unit 06"),
        Case((2, 32), "no biases", {"bias": False}),
    ]


def _params_hidden(seed: int) -> list[Case]:
    r = _kit.rng("scaling.non_embedding_params", seed)
    cases = [
        Case((12, 768), "GPT-2 small's shape"),
        Case((96, 12288), "GPT-3's shape (an int beyond 2**31)"),
        Case((1, 1), "the smallest model"),
    ]
    for i in range(3):
        bias = i != 1
        cases.append(Case((r.randint(1, 48), 8 * r.randint(1, 256)), f"random shape {i + 1}", {"bias": bias}))
    return cases


@_kit.single_threaded
def run_allocate(allocate, *, C: float, tokens_per_param: float) -> tuple[float, ...]:
    """``allocate(C, tokens_per_param)`` as a tuple of two floats (N, D)."""
    return _floats(allocate(C, tokens_per_param), 2, "allocate")


def _allocate_visible() -> list[Case]:
    return [
        Case((), "6e12 FLOPs at 20 tokens per parameter", {"C": 6e12, "tokens_per_param": 20.0}),
        Case((), "Chinchilla's budget at 20 tokens per parameter", {"C": 5.76e23, "tokens_per_param": 20.0}),
        Case((), "one token per parameter", {"C": 600.0, "tokens_per_param": 1.0}),
    ]


def _allocate_hidden(seed: int) -> list[Case]:
    r = _kit.rng("scaling.allocate", seed)
    cases = [
        Case((), "a tiny budget, many tokens per parameter", {"C": 1.5, "tokens_per_param": 1000.0}),
        Case((), "Llama 3's ratio (hundreds of tokens per parameter)", {"C": 6.3e24, "tokens_per_param": 1875.0}),
        Case((), "fewer tokens than parameters", {"C": 1e18, "tokens_per_param": 0.25}),
    ]
    for i in range(3):
        budget = 10 ** r.uniform(6, 26)
        cases.append(Case((), f"random budget {i + 1}", {"C": budget, "tokens_per_param": r.uniform(1, 200)}))
    return cases


# --------------------------------------------------------------------------- fits


@_kit.single_threaded
def run_fit_power_law(fit_power_law, *, N, L) -> tuple[float, ...]:
    """``fit_power_law(N, L)`` as a tuple of two floats (a, alpha)."""
    return _floats(fit_power_law(N, L), 2, "fit_power_law")


def _fit_visible() -> list[Case]:
    rng = np.random.default_rng(11)
    N = np.array([1e3, 1e4, 1e5, 1e6])
    return [
        Case((), "an exact law 10 N^-0.5", {"N": N, "L": 10.0 * N**-0.5}),
        Case(
            (),
            "Kaplan's L(N) at six sizes, 1% noise",
            dict(zip("NL", law_points(rng, 11.7, 0.076, 0, 1e6, 1e9, 6, 0.01))),
        ),
        Case((), "two points", {"N": np.array([100.0, 400.0]), "L": np.array([4.0, 2.0])}),
    ]


def _fit_hidden(seed: int) -> list[Case]:
    rng = _kit.numpy_rng("scaling.fit_power_law", seed)
    cases = [
        Case((), "sizes over twelve decades", dict(zip("NL", law_points(rng, 50.0, 0.3, 0, 1, 1e12, 7, 0.0)))),
        Case((), "sizes not in order", {"N": np.array([1e5, 1e3, 1e4]), "L": np.array([1.0, 3.0, 2.0])}),
        Case(
            (),
            "a loss that rises with N (negative alpha)",
            dict(zip("NL", law_points(rng, 0.5, -0.2, 0, 10, 1e4, 5, 0.0))),
        ),
    ]
    for i in range(3):
        a, alpha = 10 ** rng.uniform(-1, 3), rng.uniform(0.02, 1.0)
        n = int(rng.integers(3, 12))
        N, L = law_points(rng, a, alpha, 0, 10 ** rng.uniform(2, 6), 10 ** rng.uniform(7, 11), n, 0.03)
        cases.append(Case((), f"random law with noise {i + 1}", {"N": N, "L": L}))
    return cases


@_kit.single_threaded
def run_fit_power_law_offset(fit_power_law_offset, *, N, L) -> tuple[float, ...]:
    """``fit_power_law_offset(N, L)`` as a tuple of three floats (a, alpha, c)."""
    return _floats(fit_power_law_offset(N, L), 3, "fit_power_law_offset")


def _offset_visible() -> list[Case]:
    rng = np.random.default_rng(12)
    N = np.geomspace(1e6, 1e9, 6)
    return [
        Case((), "an exact law 406.4 N^-0.34 + 1.69 (Chinchilla's)", {"N": N, "L": 406.4 * N**-0.34 + 1.69}),
        Case(
            (),
            "the same law, 0.5% noise, 8 sizes",
            dict(zip("NL", law_points(rng, 406.4, 0.34, 1.69, 1e6, 1e9, 8, 0.005))),
        ),
        Case((), "a steep law, 4 sizes", dict(zip("NL", law_points(rng, 30.0, 0.8, 1.0, 1e3, 1e5, 4, 0.002)))),
    ]


def _offset_hidden(seed: int) -> list[Case]:
    rng = _kit.numpy_rng("scaling.fit_power_law_offset", seed)
    cases = [
        Case((), "exactly three points", dict(zip("NL", law_points(rng, 5.0, 0.5, 2.0, 1e2, 1e4, 3, 0.0)))),
        Case(
            (),
            "sizes of tiny GPTs, a shallow exponent",
            dict(zip("NL", law_points(rng, 20.0, 0.25, 1.3, 3e3, 1e5, 6, 0.004))),
        ),
        Case(
            (),
            "sizes not in order",
            {"N": np.array([1e7, 1e5, 1e6, 1e4, 1e8]), "L": np.array([2.1, 2.5, 2.25, 3.1, 2.05])},
        ),
    ]
    for i in range(4):
        alpha = rng.uniform(0.15, 1.0)
        lo = 10 ** rng.uniform(2, 7)
        hi = lo * 10 ** rng.uniform(2.5, 4)
        c = rng.uniform(0.5, 3.0)
        a = c * rng.uniform(0.5, 3.0) * lo**alpha  # the smallest model sits 0.5 to 3 times c above c
        n = int(rng.integers(5, 13))
        N, L = law_points(rng, a, alpha, c, lo, hi, n, rng.uniform(0.0005, 0.003))
        cases.append(Case((), f"random law with noise {i + 1}", {"N": N, "L": L}))
    return cases


# --------------------------------------------------------------------------- the compute-optimal size


@_kit.single_threaded
def run_compute_optimal(compute_optimal, *, C: float, E: float, A: float, alpha: float, B: float, beta: float):
    """``compute_optimal(C, E, A, alpha, B, beta)`` as a tuple of three floats (N, D, L)."""
    return _floats(compute_optimal(C, E, A, alpha, B, beta), 3, "compute_optimal")


HOFFMANN = {"E": 1.69, "A": 406.4, "alpha": 0.34, "B": 410.7, "beta": 0.28}


def _optimal_visible() -> list[Case]:
    return [
        Case((), "Chinchilla's law and budget", {"C": 5.76e23, **HOFFMANN}),
        Case((), "a symmetric law: N = D", {"C": 6e10, "E": 1.0, "A": 100.0, "alpha": 0.3, "B": 100.0, "beta": 0.3}),
        Case((), "Chinchilla's law, a laptop's budget", {"C": 1e15, **HOFFMANN}),
    ]


def _optimal_hidden(seed: int) -> list[Case]:
    r = _kit.rng("scaling.compute_optimal", seed)
    cases = [
        Case(
            (),
            "the replication's law (Besiroglu 2024)",
            {"C": 1e22, "E": 1.8172, "A": 482.01, "alpha": 0.3478, "B": 2085.43, "beta": 0.3658},
        ),
        Case(
            (),
            "data matters much more than size",
            {"C": 1e20, "E": 2.0, "A": 50.0, "alpha": 0.9, "B": 5000.0, "beta": 0.1},
        ),
        Case(
            (),
            "a negative E (only differences matter)",
            {"C": 1e18, "E": -1.0, "A": 300.0, "alpha": 0.4, "B": 300.0, "beta": 0.2},
        ),
    ]
    for i in range(3):
        kw = {
            "C": 10 ** r.uniform(10, 26),
            "E": r.uniform(0.5, 3.0),
            "A": 10 ** r.uniform(1, 4),
            "alpha": r.uniform(0.1, 0.8),
        }
        kw |= {"B": 10 ** r.uniform(1, 4), "beta": r.uniform(0.1, 0.8)}
        cases.append(Case((), f"random law and budget {i + 1}", kw))
    return cases


# --------------------------------------------------------------------------- emergence


@_kit.single_threaded
def run_answer_metrics(answer_metrics, *, log_probs, answers) -> tuple[float, ...]:
    """``answer_metrics(log_probs, answers)`` as a tuple of two floats (exact match, per-token probability)."""
    return _floats(answer_metrics(log_probs, answers), 2, "answer_metrics")


def _predictions(g, B: int, k: int, V: int, right: float, dtype=None):
    """log-probs (B, k, V) of random logits, and answers that are the argmax with probability ``right``."""
    import torch

    log_probs = torch.log_softmax(_kit.randn(g, B, k, V, dtype=torch.float64, scale=2.0), dim=-1).to(
        dtype or torch.float32
    )
    guess = torch.randint(0, V, (B, k), generator=g)
    keep = torch.rand(B, k, generator=g) < right
    return {"log_probs": log_probs, "answers": torch.where(keep, log_probs.argmax(-1), guess)}


def _metrics_visible() -> list[Case]:
    import torch

    lp = torch.log(torch.tensor([[[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]], [[0.5, 0.4, 0.1], [0.2, 0.3, 0.5]]]))
    return [
        Case(
            (),
            "two questions of two tokens, one exactly right",
            {"log_probs": lp, "answers": torch.tensor([[0, 1], [1, 2]])},
        ),
        Case((), "16 questions of 5 tokens, V=10", _predictions(_kit.seeded(13), 16, 5, 10, 0.8)),
        Case((), "answers of one token", _predictions(_kit.seeded(14), 8, 1, 7, 0.5)),
    ]


def _metrics_hidden(seed: int) -> list[Case]:
    g = _kit.generator("scaling.answer_metrics", seed)
    always = _predictions(g, 6, 4, 9, 1.0)
    return [
        Case((), "every answer right", always),
        Case((), "no answer right", {**always, "answers": (always["answers"] + 1) % 9}),
        Case((), "one question", _predictions(g, 1, 3, 5, 0.7)),
        Case((), "float64, long answers", _predictions(g, 40, 12, 30, 0.9, dtype=_float64())),
        Case((), "many questions, large vocabulary", _predictions(g, 200, 5, 500, 0.6)),
    ]


def _float64():
    import torch

    return torch.float64


SPECS = [
    Spec("scaling.non_embedding_params", "llmcourse.scaling:non_embedding_params", _params_visible, _params_hidden),
    Spec(
        "scaling.allocate",
        "llmcourse.scaling:allocate",
        _allocate_visible,
        _allocate_hidden,
        adapter=run_allocate,
        rtol=1e-12,
    ),
    Spec(
        "scaling.fit_power_law",
        "llmcourse.scaling:fit_power_law",
        _fit_visible,
        _fit_hidden,
        adapter=run_fit_power_law,
        forbidden=FORBIDDEN_FIT,
        rtol=1e-9,
        atol=1e-12,
    ),
    Spec(
        "scaling.fit_power_law_offset",
        "llmcourse.scaling:fit_power_law_offset",
        _offset_visible,
        _offset_hidden,
        adapter=run_fit_power_law_offset,
        forbidden=FORBIDDEN_FIT,
        rtol=1e-5,
        atol=1e-8,
    ),
    Spec(
        "scaling.compute_optimal",
        "llmcourse.scaling:compute_optimal",
        _optimal_visible,
        _optimal_hidden,
        adapter=run_compute_optimal,
        rtol=1e-10,
    ),
    Spec(
        "scaling.answer_metrics",
        "llmcourse.scaling:answer_metrics",
        _metrics_visible,
        _metrics_hidden,
        adapter=run_answer_metrics,
        rtol=1e-5,
        atol=1e-7,
    ),
]
