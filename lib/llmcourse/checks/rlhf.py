"""Cases for assignment 09 (RLHF): the enumerable toy policy (log-probabilities, exact and sampled J,
hill climbing), the policy gradient, TD errors and GAE, the Bradley-Terry reward model, and PPO's
clipped objective with a KL penalty.

Nothing here imports ``llmcourse.rlhf`` (the answer key, unavailable while grading): policies,
reward tables, trajectories, episodes and features are drawn from first principles with ``torch``
and the kit.

* The toy: K tokens, H steps, logits ``theta`` of shape (K + 1, K) (row K: the start), a reward
  table of shape (K,) * H. Cases are float64 so that correct answers agree to 1e-9.
* ``estimate_J`` and ``hill_climb`` draw random numbers: :func:`run_estimate_J` and
  :func:`run_hill_climb` hand them a Generator seeded by the case, so the student's draws must be the
  ones the notebook prescribes.
"""

from __future__ import annotations

import torch

from . import _kit
from .checker import Case, Spec

F64 = dict(rtol=1e-7, atol=1e-10)  # float64: a different but correct order of the same sums


def toy(g: torch.Generator, K: int, H: int, scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(theta (K + 1, K), rewards (K,) * H), float64."""
    theta = _kit.randn(g, K + 1, K, dtype=torch.float64, scale=scale)
    rewards = _kit.randn(g, *([K] * H), dtype=torch.float64)
    return theta, rewards


def trajectories(g: torch.Generator, K: int, H: int, n: int) -> torch.Tensor:
    return torch.randint(0, K, (n, H), generator=g)


# --------------------------------------------------------------------------- part 1: log p and exact J


def _logp_visible() -> list[Case]:
    g = _kit.seeded(90)
    theta = torch.zeros(3, 2, dtype=torch.float64)
    return [
        Case((theta, torch.tensor([[0, 1], [1, 1]])), "uniform policy over 2 tokens: every step has log(1/2)"),
        Case((_kit.randn(g, 4, 3, dtype=torch.float64), trajectories(g, 3, 4, 5)), "K=3, H=4, five trajectories"),
    ]


def _logp_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.trajectory_log_prob", seed)
    return [
        Case((_kit.randn(g, 6, 5, dtype=torch.float64, scale=3.0), trajectories(g, 5, 3, 20)), "K=5, H=3"),
        Case((_kit.randn(g, 3, 2, dtype=torch.float64), trajectories(g, 2, 1, 4)), "one step"),
        Case((_kit.randn(g, 5, 4, dtype=torch.float64, scale=30.0), trajectories(g, 4, 6, 8)), "very peaked policy"),
    ]


def _J_visible() -> list[Case]:
    g = _kit.seeded(91)
    return [
        Case(
            (torch.zeros(3, 2, dtype=torch.float64), torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)),
            "uniform policy, one rewarded trajectory of four",
        ),
        Case(toy(g, 3, 3), "K=3, H=3, random rewards"),
    ]


def _J_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.exact_J", seed)
    return [
        Case(toy(g, 4, 3), "K=4, H=3"),
        Case(toy(g, 2, 5, scale=3.0), "K=2, H=5"),
        Case(toy(g, 5, 1), "one step"),
    ]


# --------------------------------------------------------------------------- part 2: sampling, hill climbing


def run_estimate_J(estimate_J, theta: torch.Tensor, rewards: torch.Tensor, n: int, *, seed: int):
    """``estimate_J(theta, rewards, n, torch.Generator().manual_seed(seed))`` as two floats."""
    mean, stderr = estimate_J(theta, rewards, n, _kit.seeded(seed))
    return float(mean), float(stderr)


def _est_visible() -> list[Case]:
    g = _kit.seeded(92)
    theta, rewards = toy(g, 3, 3)
    return [
        Case((theta, rewards, 50), "K=3, H=3, 50 samples", {"seed": 0}),
        Case((theta, rewards, 1), "one sample: no error bar", {"seed": 1}),
    ]


def _est_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.estimate_J", seed)
    r = _kit.rng("rlhf.estimate_J", seed)
    return [
        Case((*toy(g, 4, 3), 200), "K=4, H=3, 200 samples", {"seed": _kit.new_seed(r)}),
        Case((*toy(g, 2, 6, scale=2.0), 37), "K=2, H=6", {"seed": _kit.new_seed(r)}),
        Case((*toy(g, 5, 2), 2), "two samples", {"seed": _kit.new_seed(r)}),
    ]


def run_hill_climb(hill_climb, theta: torch.Tensor, rewards: torch.Tensor, steps: int, sigma: float, *, seed: int):
    """``hill_climb(theta, rewards, steps, sigma, torch.Generator().manual_seed(seed))``: (theta, J history)."""
    best, history = hill_climb(theta, rewards, steps, sigma, _kit.seeded(seed))
    return best, [float(j) for j in history]


def _hill_visible() -> list[Case]:
    g = _kit.seeded(93)
    theta, rewards = toy(g, 3, 2)
    return [
        Case((theta, rewards, 10, 0.5), "ten steps", {"seed": 0}),
        Case((theta, rewards, 0, 0.5), "zero steps: the start", {"seed": 0}),
    ]


def _hill_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.hill_climb", seed)
    r = _kit.rng("rlhf.hill_climb", seed)
    return [
        Case((*toy(g, 4, 3), 30, 0.3), "K=4, H=3, 30 steps", {"seed": _kit.new_seed(r)}),
        Case((*toy(g, 2, 4), 15, 2.0), "large mutations", {"seed": _kit.new_seed(r)}),
    ]


# --------------------------------------------------------------------------- part 3: the policy gradient


def _pg_visible() -> list[Case]:
    g = _kit.seeded(94)
    theta = _kit.randn(g, 4, 3, dtype=torch.float64)
    taus = trajectories(g, 3, 2, 6)
    return [
        Case((theta, taus, torch.ones(6, dtype=torch.float64)), "REINFORCE, every return 1"),
        Case((theta, taus, _kit.randn(g, 6, dtype=torch.float64)), "REINFORCE, random returns"),
        Case((theta, taus, _kit.randn(g, 6, 2, dtype=torch.float64)), "one weight per step (actor-critic)"),
    ]


def _pg_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.policy_gradient", seed)
    theta = _kit.randn(g, 6, 5, dtype=torch.float64, scale=2.0)
    return [
        Case((theta, trajectories(g, 5, 4, 40), _kit.randn(g, 40, dtype=torch.float64)), "K=5, H=4, 40 trajectories"),
        Case((theta, trajectories(g, 5, 3, 7), _kit.randn(g, 7, 3, dtype=torch.float64)), "per-step weights"),
        Case((theta, trajectories(g, 5, 1, 1), torch.tensor([2.5], dtype=torch.float64)), "one trajectory, one step"),
        Case((theta, trajectories(g, 5, 3, 9), torch.zeros(9, dtype=torch.float64)), "all weights zero"),
    ]


# --------------------------------------------------------------------------- part 4: TD errors and GAE


def _episode(g, shape, T):
    rewards = _kit.randn(g, *shape, T, dtype=torch.float64)
    values = _kit.randn(g, *shape, T + 1, dtype=torch.float64)
    return rewards, values


def _td_visible() -> list[Case]:
    g = _kit.seeded(95)
    return [
        Case((torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.5, 0.5, 0.8, 0.0])), "reward at the end, gamma 1"),
        Case((*_episode(g, (), 5), 0.9), "random episode, gamma 0.9"),
        Case((*_episode(g, (3,), 4), 0.99), "a batch of three episodes"),
    ]


def _td_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.td_errors", seed)
    return [
        Case((*_episode(g, (2, 3), 6), 0.95), "(2, 3) batch of episodes"),
        Case((*_episode(g, (), 1), 0.5), "one step"),
        Case((*_episode(g, (4,), 7), 0.0), "gamma 0"),
    ]


def _gae_visible() -> list[Case]:
    g = _kit.seeded(96)
    return [
        Case((torch.tensor([0.0, 0.0, 1.0]), torch.tensor([0.5, 0.5, 0.8, 0.0]), 1.0, 0.0), "lam 0: the TD errors"),
        Case((*_episode(g, (), 5), 0.9, 1.0), "lam 1: return minus value"),
        Case((*_episode(g, (3,), 4), 0.99, 0.95), "a batch, lam 0.95"),
    ]


def _gae_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.gae", seed)
    r = _kit.rng("rlhf.gae", seed)
    return [
        Case((*_episode(g, (2, 3), 8), r.uniform(0.8, 1.0), r.uniform(0.5, 1.0)), "(2, 3) batch, random gamma and lam"),
        Case((*_episode(g, (), 1), 0.9, 0.9), "one step"),
        Case((*_episode(g, (5,), 12), 1.0, 0.0), "lam 0, long episodes"),
    ]


# --------------------------------------------------------------------------- part 5: the reward model


def _bt_visible() -> list[Case]:
    g = _kit.seeded(97)
    return [
        Case((torch.tensor([1.0, 0.0]), torch.tensor([1.0, 0.0])), "ties: loss log 2"),
        Case((_kit.randn(g, 8, dtype=torch.float64), _kit.randn(g, 8, dtype=torch.float64)), "eight random pairs"),
        Case((torch.tensor([100.0, -100.0]), torch.tensor([-100.0, 100.0])), "huge margins: no overflow"),
    ]


def _bt_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.bradley_terry_loss", seed)
    return [
        Case((_kit.randn(g, 50, scale=3.0), _kit.randn(g, 50, scale=3.0)), "50 pairs, float32"),
        Case((_kit.randn(g, 1, dtype=torch.float64), _kit.randn(g, 1, dtype=torch.float64)), "one pair"),
        Case((_kit.randn(g, 6, scale=400.0), _kit.randn(g, 6, scale=400.0)), "margins in the hundreds"),
    ]


def features(g: torch.Generator, N: int, D: int, noise: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(f_chosen, f_rejected) (N, D) float64: the chosen replies lie further along a hidden direction."""
    direction = _kit.randn(g, D, dtype=torch.float64)
    f_c = _kit.randn(g, N, D, dtype=torch.float64) + 0.5 * direction
    f_r = _kit.randn(g, N, D, dtype=torch.float64, scale=noise)
    return f_c, f_r


def _fit_visible() -> list[Case]:
    g = _kit.seeded(98)
    return [
        Case(features(g, 20, 4), "20 pairs, 4 features", {"steps": 50, "lr": 0.5, "weight_decay": 0.0}),
        Case(features(g, 10, 3), "with weight decay", {"steps": 30, "lr": 1.0, "weight_decay": 0.1}),
        Case(features(g, 5, 2), "zero steps", {"steps": 0, "lr": 1.0, "weight_decay": 0.0}),
    ]


def _fit_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.fit_reward_head", seed)
    r = _kit.rng("rlhf.fit_reward_head", seed)
    return [
        Case(features(g, 60, 8), "60 pairs, 8 features", {"steps": 80, "lr": r.uniform(0.2, 2.0), "weight_decay": 0.0}),
        Case(features(g, 7, 12, 2.0), "more features than pairs", {"steps": 40, "lr": 1.0, "weight_decay": 0.05}),
        Case(features(g, 1, 3), "one pair", {"steps": 5, "lr": 0.3, "weight_decay": 0.0}),
    ]


# --------------------------------------------------------------------------- part 6: PPO and the KL penalty


def _kl_visible() -> list[Case]:
    g = _kit.seeded(99)
    logp, ref = -_kit.randn(g, 2, 4, dtype=torch.float64).abs(), -_kit.randn(g, 2, 4, dtype=torch.float64).abs()
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    return [
        Case((torch.tensor([1.0, -1.0], dtype=torch.float64), logp, ref, 0.0), "beta 0: only the score, at the end"),
        Case((torch.tensor([1.0, -1.0], dtype=torch.float64), logp, ref, 0.1), "beta 0.1"),
        Case(
            (torch.tensor([0.5, 2.0], dtype=torch.float64), logp, ref, 0.2),
            "a mask: the second reply is shorter",
            {"mask": mask},
        ),
    ]


def _kl_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.kl_rewards", seed)
    B, T = 5, 7
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    mask = torch.arange(T)[None, :] < lengths[:, None]
    lp = lambda: -_kit.randn(g, B, T, dtype=torch.float64).abs()  # noqa: E731
    return [
        Case((_kit.randn(g, B, dtype=torch.float64), lp(), lp(), 0.05), "five replies"),
        Case(
            (_kit.randn(g, B, dtype=torch.float64), lp(), lp(), 0.3), "masked replies of random length", {"mask": mask}
        ),
        Case(
            (
                _kit.randn(g, 1, dtype=torch.float64),
                -_kit.randn(g, 1, 1, dtype=torch.float64).abs(),
                -_kit.randn(g, 1, 1, dtype=torch.float64).abs(),
                1.0,
            ),
            "one token",
        ),
    ]


def _ppo_visible() -> list[Case]:
    old = torch.log(torch.tensor([[0.5, 0.5, 0.5, 0.5]], dtype=torch.float64))
    new = torch.log(torch.tensor([[0.5, 0.7, 0.3, 0.9]], dtype=torch.float64))
    g = _kit.seeded(100)
    return [
        Case((new, old, torch.tensor([[1.0, 1.0, -1.0, -1.0]], dtype=torch.float64)), "ratios 1, 1.4, 0.6, 1.8"),
        Case((new, old, torch.tensor([[1.0, 1.0, -1.0, -1.0]], dtype=torch.float64), 0.5), "clip_eps 0.5"),
        Case(
            (
                -_kit.randn(g, 3, 5, dtype=torch.float64).abs(),
                -_kit.randn(g, 3, 5, dtype=torch.float64).abs(),
                _kit.randn(g, 3, 5, dtype=torch.float64),
            ),
            "random (3, 5)",
        ),
    ]


def _ppo_hidden(seed: int) -> list[Case]:
    g = _kit.generator("rlhf.ppo_clip_loss", seed)
    mask = torch.rand(4, 6, generator=g) < 0.7
    mask[:, 0] = True
    lp = lambda *s: -_kit.randn(g, *s, dtype=torch.float64).abs()  # noqa: E731
    return [
        Case((lp(4, 6), lp(4, 6), _kit.randn(g, 4, 6, dtype=torch.float64)), "(4, 6), clip_eps 0.2"),
        Case(
            (lp(4, 6), lp(4, 6), _kit.randn(g, 4, 6, dtype=torch.float64), 0.1), "a mask, clip_eps 0.1", {"mask": mask}
        ),
        Case((lp(10), lp(10), _kit.randn(g, 10, dtype=torch.float64), 0.3), "1-D, clip_eps 0.3"),
    ]


SPECS = [
    Spec("rlhf.trajectory_log_prob", "llmcourse.rlhf:trajectory_log_prob", _logp_visible, _logp_hidden, **F64),
    Spec("rlhf.exact_J", "llmcourse.rlhf:exact_J", _J_visible, _J_hidden, **F64),
    Spec("rlhf.estimate_J", "llmcourse.rlhf:estimate_J", _est_visible, _est_hidden, adapter=run_estimate_J, **F64),
    Spec("rlhf.hill_climb", "llmcourse.rlhf:hill_climb", _hill_visible, _hill_hidden, adapter=run_hill_climb, **F64),
    Spec("rlhf.policy_gradient", "llmcourse.rlhf:policy_gradient", _pg_visible, _pg_hidden, **F64),
    Spec("rlhf.td_errors", "llmcourse.rlhf:td_errors", _td_visible, _td_hidden, **F64),
    Spec("rlhf.gae", "llmcourse.rlhf:gae", _gae_visible, _gae_hidden, **F64),
    Spec("rlhf.bradley_terry_loss", "llmcourse.rlhf:bradley_terry_loss", _bt_visible, _bt_hidden, rtol=1e-5, atol=1e-7),
    Spec("rlhf.fit_reward_head", "llmcourse.rlhf:fit_reward_head", _fit_visible, _fit_hidden, **F64),
    Spec("rlhf.kl_rewards", "llmcourse.rlhf:kl_rewards", _kl_visible, _kl_hidden, **F64),
    Spec("rlhf.ppo_clip_loss", "llmcourse.rlhf:ppo_clip_loss", _ppo_visible, _ppo_hidden, **F64),
]
