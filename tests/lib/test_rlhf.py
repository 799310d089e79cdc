"""Unit 09 (RLHF) against independent computations: exact enumeration in plain Python, autograd,
finite differences, scipy's optimizer, hand-built PPO cases; the reward model and PPO on real data."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from llmcourse import rlhf
from llmcourse.toolbox import preferences as prefs
from scipy.optimize import minimize

torch.set_num_threads(1)


def toy(seed: int, K: int = 3, H: int = 3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(K + 1, K, generator=g, dtype=torch.float64), torch.randn(
        *([K] * H), generator=g, dtype=torch.float64
    )


def py_prob(theta, tau) -> float:
    """p(tau) by hand: a product of softmax entries, in plain Python."""
    rows = theta.tolist()
    prev, p = len(rows) - 1, 1.0
    for a in tau:
        z = [math.exp(v) for v in rows[prev]]
        p *= z[a] / sum(z)
        prev = a
    return p


def py_J(theta, rewards) -> float:
    K, H = theta.shape[1], rewards.dim()
    return sum(py_prob(theta, tau) * float(rewards[tau]) for tau in itertools.product(range(K), repeat=H))


# --------------------------------------------------------------------------- the MDP and the toy


def test_count_states_and_transition():
    assert rlhf.count_states(100_000, 1000) == 10**5000  # the lecture's 100,000^1,000
    assert len(str(rlhf.count_states(512, 64))) == 174
    assert rlhf.transition(("My", "name"), "is") == ("My", "name", "is")


def test_log_prob_and_exact_J_equal_plain_enumeration():
    theta, rewards = toy(0, K=3, H=4)
    taus = rlhf.all_trajectories(3, 4)
    assert taus.shape == (81, 4) and len({tuple(t) for t in taus.tolist()}) == 81
    p = rlhf.trajectory_log_prob(theta, taus).exp()
    assert p.sum().item() == pytest.approx(1.0, abs=1e-12)
    assert p.tolist() == pytest.approx([py_prob(theta, tuple(t)) for t in taus.tolist()], rel=1e-12)
    assert float(rlhf.exact_J(theta, rewards)) == pytest.approx(py_J(theta, rewards), rel=1e-12)


def test_estimate_J_error_bars_cover_the_exact_value():
    theta, rewards = toy(1)
    exact = py_J(theta, rewards)
    for n, seed in ((400, 0), (4000, 1)):
        mean, stderr = rlhf.estimate_J(theta, rewards, n, torch.Generator().manual_seed(seed))
        assert abs(mean - exact) < 4 * stderr
    # the error bar shrinks as 1 / sqrt(N)
    _, small = rlhf.estimate_J(theta, rewards, 100, torch.Generator().manual_seed(2))
    _, big = rlhf.estimate_J(theta, rewards, 10_000, torch.Generator().manual_seed(2))
    assert 5 < small / big < 20


def test_sampled_trajectories_follow_the_policy():
    theta, _ = toy(2, K=2, H=2)
    taus = rlhf.sample_trajectories(theta, 2, 20_000, torch.Generator().manual_seed(0))
    for tau in itertools.product(range(2), repeat=2):
        freq = (taus == torch.tensor(tau)).all(1).double().mean().item()
        p = py_prob(theta, tau)
        assert abs(freq - p) < 4 * math.sqrt(p * (1 - p) / 20_000)


def test_hill_climb_only_goes_up():
    theta, rewards = toy(3)
    best, history = rlhf.hill_climb(theta, rewards, 60, 0.5, torch.Generator().manual_seed(0))
    assert history[0] == pytest.approx(py_J(theta, rewards), rel=1e-12)
    assert all(b >= a for a, b in zip(history, history[1:]))
    assert history[-1] == pytest.approx(py_J(best, rewards), rel=1e-12) and history[-1] > history[0] + 0.1


# --------------------------------------------------------------------------- gradients


def test_finite_differences_agree_with_autograd():
    theta, rewards = toy(4)
    th = theta.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(rlhf.exact_J(th, rewards), th)
    fd = rlhf.finite_difference_gradient(lambda t: rlhf.exact_J(t, rewards), theta, 1e-5)
    torch.testing.assert_close(fd, auto, rtol=1e-6, atol=1e-8)


def test_policy_gradient_closed_form_equals_autograd_on_fixed_trajectories():
    theta, _ = toy(5, K=4, H=3)
    g = torch.Generator().manual_seed(0)
    taus = torch.randint(0, 4, (25, 3), generator=g)
    for w in (torch.randn(25, generator=g, dtype=torch.float64), torch.randn(25, 3, generator=g, dtype=torch.float64)):
        torch.testing.assert_close(
            rlhf.policy_gradient(theta, taus, w), rlhf.policy_gradient_naive(theta, taus, w), rtol=1e-12, atol=1e-12
        )


def test_reinforce_is_unbiased_and_the_baseline_cuts_its_variance():
    theta, rewards = toy(6)
    rewards = rewards + 3.0  # a large common offset: what a baseline removes
    th = theta.clone().requires_grad_(True)
    (exact,) = torch.autograd.grad(rlhf.exact_J(th, rewards), th)
    b = float(rlhf.exact_J(theta, rewards))
    per_seed = {0.0: [], b: []}
    for seed in range(300):
        taus = rlhf.sample_trajectories(theta, 3, 20, torch.Generator().manual_seed(seed))
        R = rewards[tuple(taus.T)]
        for base in per_seed:
            per_seed[base].append(rlhf.policy_gradient(theta, taus, R - base))
    for base, grads in per_seed.items():
        G = torch.stack(grads)  # (300, K + 1, K)
        stderr = G.std(0) / math.sqrt(len(G))
        assert ((G.mean(0) - exact).abs() <= 4.5 * stderr + 1e-12).all(), f"baseline {base}: biased"
    assert torch.stack(per_seed[b]).var(0).sum() < 0.5 * torch.stack(per_seed[0.0]).var(0).sum()


# --------------------------------------------------------------------------- TD error, TD(0), GAE


def py_values(theta, rewards) -> dict[tuple, float]:
    """V(prefix) by enumeration of the suffixes, in plain Python."""
    K, H = theta.shape[1], rewards.dim()
    V = {}
    for t in range(H + 1):
        for prefix in itertools.product(range(K), repeat=t):
            total = 0.0
            for suffix in itertools.product(range(K), repeat=H - t):
                rows, prev, p = theta.tolist(), (prefix[-1] if prefix else K), 1.0
                for a in suffix:
                    z = [math.exp(v) for v in rows[prev]]
                    p, prev = p * z[a] / sum(z), a
                total += p * float(rewards[prefix + suffix])
            V[prefix] = total
    return V


def test_exact_values_and_td_error_is_the_advantage():
    theta, rewards = toy(7)
    V = rlhf.exact_values(theta, rewards)
    ref = py_values(theta, rewards)
    taus = rlhf.all_trajectories(3, 3)
    ids = rlhf.prefix_ids(taus, 3)
    for tau, row in zip(taus.tolist(), ids.tolist()):
        for t in range(4):
            assert V[row[t]].item() == pytest.approx(ref[tuple(tau[:t])], rel=1e-10, abs=1e-12)
    # E[delta_t] over sampled trajectories = E[A_t] = 0 under the policy, and per (s, a) delta = Q - V
    samples = rlhf.sample_trajectories(theta, 3, 5000, torch.Generator().manual_seed(0))
    sid = rlhf.prefix_ids(samples, 3)
    r = torch.zeros(5000, 3, dtype=torch.float64)
    r[:, -1] = rewards[tuple(samples.T)]
    values = V[sid].clone()
    values[:, -1] = 0.0  # terminal
    delta = rlhf.td_errors(r, values)
    assert abs(delta.mean().item()) < 4 * delta.std().item() / math.sqrt(delta.numel())


def test_td_errors_and_gae_by_hand():
    r = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    v = torch.tensor([0.5, 0.2, 0.7, 0.0], dtype=torch.float64)
    gamma, lam = 0.9, 0.8
    delta = [r[t].item() + gamma * v[t + 1].item() - v[t].item() for t in range(3)]
    assert rlhf.td_errors(r, v, gamma).tolist() == pytest.approx(delta)
    adv = [sum((gamma * lam) ** k * delta[t + k] for k in range(3 - t)) for t in range(3)]
    assert rlhf.gae(r, v, gamma, lam).tolist() == pytest.approx(adv)
    ret = [sum(gamma**k * r[t + k].item() for k in range(3 - t)) - v[t].item() for t in range(3)]
    assert rlhf.gae(r, v, gamma, 1.0).tolist() == pytest.approx(ret)
    assert rlhf.gae(r, v, gamma, 0.0).tolist() == pytest.approx(delta)


def test_td0_learns_the_exact_values():
    theta, rewards = toy(8, K=2, H=3)
    taus = rlhf.sample_trajectories(theta, 3, 20_000, torch.Generator().manual_seed(0))
    states = rlhf.prefix_ids(taus, 2)
    r = torch.zeros(20_000, 3, dtype=torch.float64)
    r[:, -1] = rewards[tuple(taus.T)]
    V = rlhf.td0(states, r, 3**3 + 1, alpha=0.01)
    exact = rlhf.exact_values(theta, rewards)
    assert abs(V[0].item() - exact[0].item()) < 0.05  # the start; alpha 0.01 leaves a small wobble


# --------------------------------------------------------------------------- reward model


def test_bradley_terry_loss_by_hand():
    rc, rr = torch.tensor([2.0, -1.0, 300.0]), torch.tensor([0.0, 1.0, -300.0])
    expected = np.mean([-math.log(1 / (1 + math.exp(-(c - r)))) for c, r in [(2, 0), (-1, 1)]] + [0.0])
    assert float(rlhf.bradley_terry_loss(rc, rr)) == pytest.approx(expected, rel=1e-6)
    assert rlhf.pairwise_accuracy(rc, rr) == pytest.approx(2 / 3)


def test_fit_reward_head_equals_a_logistic_regression_by_scipy():
    g = torch.Generator().manual_seed(0)
    fc = torch.randn(80, 5, generator=g, dtype=torch.float64) + 0.3
    fr = torch.randn(80, 5, generator=g, dtype=torch.float64)
    wd = 0.05
    w = rlhf.fit_reward_head(fc, fr, steps=3000, lr=1.0, weight_decay=wd)
    d = (fc - fr).numpy()

    def objective(x):
        z = d @ x
        return np.mean(np.logaddexp(0.0, -z)) + wd / 2 * x @ x

    ref = minimize(objective, np.zeros(5), method="BFGS", options={"gtol": 1e-12}).x
    np.testing.assert_allclose(w.numpy(), ref, rtol=1e-6, atol=1e-8)


def test_preferences_are_seeded_and_verifiable():
    a, b = prefs.make_preferences(50, seed=3), prefs.make_preferences(50, seed=3)
    assert a == b and a != prefs.make_preferences(50, seed=4)
    assert all(prefs.annotate(p) for p in a)
    assert {p.kind for p in a} == set(prefs.KINDS)
    lecture = prefs.lecture_pairs()
    assert [(p.chosen, p.rejected) for p in lecture] == [
        ("It is 117,145.", "It is 5."),
        ("It is 117,145.", "Destroy all humans."),
    ]
    assert prefs.correct_reply(prefs.LECTURE_PROMPT) == "It is 117,145."


@pytest.fixture(scope="module")
def reward_model():
    """A reward head on frozen MiniLM features, trained on 160 generated pairs, tested on 80 others."""
    pairs = prefs.lecture_pairs() + prefs.make_preferences(
        240, seed=0, kinds=("fact", "truncated", "evasive", "hostile")
    )
    fc = prefs.text_features([prefs.pair_text(p.prompt, p.chosen) for p in pairs]).double()
    fr = prefs.text_features([prefs.pair_text(p.prompt, p.rejected) for p in pairs]).double()
    w = rlhf.fit_reward_head(fc[:162], fr[:162], steps=300, lr=10.0)
    return w, rlhf.pairwise_accuracy(fc[162:] @ w, fr[162:] @ w)


def test_reward_model_ranks_held_out_pairs(reward_model):
    assert reward_model[1] >= 0.90


def test_ppo_raises_the_learned_reward_with_bounded_kl(reward_model):
    from llmcourse.training import load_pretrained

    w, _ = reward_model
    gpt, tok, _ = load_pretrained(Path(__file__).resolve().parents[2] / "checkpoints" / "shakespeare_gpt.pt")
    question = "What kind of play is Hamlet?"
    prompt = torch.tensor(tok.encode(prefs.pair_text(question, "")))

    def reward_fn(ids):
        texts = [prefs.pair_text(question, tok.decode(r.tolist())) for r in ids]
        return (prefs.text_features(texts).double() @ w).float() * 10

    torch.manual_seed(0)
    cfg = rlhf.PPOConfig(steps=12, batch_size=16, beta=1.0, lr=1e-3)
    _, h = rlhf.ppo_finetune(gpt, reward_fn, prompt, cfg, generator=torch.Generator().manual_seed(0))
    first, last = np.mean(h["reward"][:3]), np.mean(h["reward"][-3:])
    assert last > first + 1.0, h["reward"]
    assert max(h["kl"]) < 15.0, h["kl"]  # nats per 12-token reply; without the leash it passes 50


# --------------------------------------------------------------------------- PPO


def test_ppo_clip_loss_by_hand_and_zero_gradient_where_clipped():
    old = torch.log(torch.tensor([0.5, 0.5, 0.5, 0.5], dtype=torch.float64))
    new = torch.log(torch.tensor([0.5, 0.7, 0.3, 0.9], dtype=torch.float64)).requires_grad_(True)
    A = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    # ratios 1, 1.4, 0.6, 1.8 with eps 0.2: min(1, 1) , min(1.4, 1.2), min(-0.6, -0.8), min(-1.8, -1.2)
    expected = -np.mean([1.0, 1.2, -0.8, -1.8])
    loss = rlhf.ppo_clip_loss(new, old, A, 0.2)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-12)
    (grad,) = torch.autograd.grad(loss, new)
    # d/dlogp of -ratio*A/4 = -ratio*A/4 where unclipped; zero where the clipped term is the min
    assert grad.tolist() == pytest.approx([-0.25, 0.0, 0.0, 0.45])


def test_kl_rewards_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-0.3, -0.1, -4.0]], dtype=torch.float64)
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-0.2, -0.6, -1.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, True], [True, True, False]])
    out = rlhf.kl_rewards(torch.tensor([3.0, -2.0], dtype=torch.float64), logp, ref, 0.5, mask)
    expected = [[-0.25, 0.5, 0.0 + 3.0], [0.05, -0.25 - 2.0, 0.0]]
    assert out.tolist() == [pytest.approx(row) for row in expected]


# --------------------------------------------------------------------------- bad input


def test_bad_input_has_clear_errors():
    with pytest.raises(ValueError, match="empty"):
        rlhf.fit_reward_head(torch.zeros(0, 3), torch.zeros(0, 3))
    with pytest.raises(ValueError, match="empty"):
        rlhf.bradley_terry_loss(torch.zeros(0), torch.zeros(0))
    with pytest.raises(ValueError, match="finite"):
        rlhf.bradley_terry_loss(torch.tensor([float("nan")]), torch.tensor([0.0]))
    with pytest.raises(ValueError, match="finite"):
        rlhf.kl_rewards(torch.tensor([float("inf")]), torch.zeros(1, 2), torch.zeros(1, 2), 0.1)
    theta, rewards = toy(0)
    with pytest.raises(ValueError, match="finite"):
        rlhf.exact_J(theta, rewards * float("nan"))
    for eps in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"clip_eps must be in \(0, 1\)"):
            rlhf.ppo_clip_loss(torch.zeros(2), torch.zeros(2), torch.ones(2), eps)
    with pytest.raises(ValueError, match=r"\(K \+ 1, K\)"):
        rlhf.exact_J(torch.zeros(3, 3), rewards)
