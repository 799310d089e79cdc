"""RLHF: policy search and policy gradients, from a toy you can enumerate to a real language model.

The lecture turns text generation into a Markov decision process (MDP) and then climbs it:

1. **The MDP.** The *state* is the text so far, the *action* the next token, the *transition*
   appends it ("My name" + "is" -> "My name is"), an *episode* ends after a fixed number of tokens
   and the *reward* rates the finished text. :func:`count_states` makes the lecture's
   "100,000^1,000 states" concrete: with the course BPE (512 tokens) and 64-token windows there are
   512^64 texts, a number of 174 digits. No table of values could hold them; we search over
   *policies* instead.
2. **An enumerable toy.** A softmax policy over K tokens for H steps, its logits ``theta`` of shape
   (K + 1, K): row s scores the next token after token s, row K after the start. All K^H
   trajectories can be listed (:func:`all_trajectories`), so the objective
   J(theta) = V(s0) = sum_tau p_theta(tau) R(tau) is *exact* (:func:`exact_J`), a ground truth for
   every estimate that follows.
3. **Policy search.** J estimated by sampling N trajectories, with its standard error
   (:func:`estimate_J`); hill climbing, "change theta, evaluate, keep if better" (:func:`hill_climb`);
   the gradient by finite differences (:func:`finite_difference_gradient`).
4. **Direct policy differentiation.** grad p = p grad log p turns grad J into an expectation,
   E[R(tau) grad log p(tau)], estimated from samples: REINFORCE (:func:`policy_gradient` with one
   weight per trajectory). Subtracting a baseline b changes nothing in expectation (E[grad log p] = 0)
   but shrinks the variance. The naive version differentiates with autograd; the fast one uses the
   closed form grad_theta[s] log softmax(theta[s])[a] = onehot(a) - softmax(theta[s]).
5. **Advantage and TD error.** A = Q - V says how much better an action was than usual; the TD error
   delta_t = r_t + gamma V(s_t+1) - V(s_t) (:func:`td_errors`) estimates it from one step, with
   V learned by TD(0) (:func:`td0`). GAE (:func:`gae`) mixes the k-step versions. Weighting each
   step's grad log pi by delta_t is the actor-critic gradient (:func:`policy_gradient` with one
   weight per step).
6. **Reward model.** Humans compare two replies; Bradley-Terry says P(chosen > rejected) =
   sigmoid(r(chosen) - r(rejected)), so the loss is -log sigmoid(r_c - r_r)
   (:func:`bradley_terry_loss`). On frozen sentence features f, r = w . f and the loss is a logistic
   regression on feature differences f_c - f_r (:func:`fit_reward_head`; a bias cancels).
7. **PPO with a KL leash.** The policy's new/old probability ratio, clipped to [1 - eps, 1 + eps]
   so one batch cannot move it far (:func:`ppo_clip_loss`); the reward of a sample is the reward
   model's score minus beta times the per-token KL to a frozen reference policy
   (:func:`kl_rewards`), which keeps the text close to what the pretrained model would write.
   :func:`ppo_finetune` runs it on a GPT; with beta = 0 the policy drifts wherever the reward model
   errs: reward hacking.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "count_states",
    "transition",
    "all_trajectories",
    "trajectory_log_prob",
    "exact_J",
    "sample_trajectories",
    "estimate_J",
    "hill_climb",
    "finite_difference_gradient",
    "policy_gradient_naive",
    "policy_gradient",
    "td_errors",
    "td0",
    "prefix_ids",
    "exact_values",
    "gae",
    "bradley_terry_loss",
    "fit_reward_head",
    "pairwise_accuracy",
    "kl_rewards",
    "ppo_clip_loss",
    "PPOConfig",
    "ppo_finetune",
]

# --------------------------------------------------------------------------- 1. the MDP


def count_states(vocab_size: int, length: int) -> int:
    """How many texts of exactly ``length`` tokens there are: vocab_size ** length (exact int)."""
    _check_positive_int(vocab_size, "vocab_size")
    _check_positive_int(length, "length", low=0)
    return vocab_size**length


def transition(state: tuple[int, ...], action: int) -> tuple[int, ...]:
    """The deterministic transition of text generation: append the action to the state."""
    return (*state, action)


# --------------------------------------------------------------------------- 2. the toy and exact J


def all_trajectories(K: int, H: int) -> Tensor:
    """(K**H, H) long: every sequence of H tokens from K, in lexicographic order (row i is i in base K)."""
    _check_positive_int(K, "K")
    _check_positive_int(H, "H")
    return torch.tensor(list(itertools.product(range(K), repeat=H)), dtype=torch.long).view(K**H, H)


def trajectory_log_prob(theta: Tensor, trajectories: Tensor) -> Tensor:
    """log p_theta(tau) for each row of ``trajectories`` (N, H): sum_t log softmax(theta[s_t])[a_t],
    s_0 = K (the start), s_t = a_t-1. theta (K + 1, K) -> (N,)."""
    _check_theta(theta)
    K = theta.size(1)
    _check_trajectories(trajectories, K)
    logp = F.log_softmax(theta, dim=-1)  # (K + 1, K)
    prev = torch.cat([torch.full_like(trajectories[:, :1], K), trajectories[:, :-1]], dim=1)  # (N, H)
    return logp[prev, trajectories].sum(dim=1)  # (N, H) -> (N,)


def exact_J(theta: Tensor, rewards: Tensor) -> Tensor:
    """J(theta) = sum over all K^H trajectories of p_theta(tau) R(tau); differentiable in theta.

    rewards: (K,) * H, the reward of every trajectory (rewards[a0, a1, ...])."""
    _check_theta(theta)
    K, H = theta.size(1), _check_rewards(rewards, theta.size(1))
    taus = all_trajectories(K, H)  # (K^H, H), the same order as rewards.flatten()
    p = trajectory_log_prob(theta, taus).exp()  # (K^H,)
    return (p * rewards.reshape(-1).to(p.dtype)).sum()


# --------------------------------------------------------------------------- 3. policy search


def sample_trajectories(theta: Tensor, H: int, n: int, generator: torch.Generator | None = None) -> Tensor:
    """(n, H) long: n trajectories of the policy; step t draws
    ``torch.multinomial(softmax(theta)[prev], 1, generator=generator)`` for all n at once."""
    _check_theta(theta)
    _check_positive_int(H, "H")
    _check_positive_int(n, "n")
    K = theta.size(1)
    probs = F.softmax(theta.detach(), dim=-1)  # (K + 1, K)
    prev = torch.full((n,), K, dtype=torch.long)  # everyone starts in the start state
    out = torch.empty(n, H, dtype=torch.long)
    for t in range(H):
        out[:, t] = torch.multinomial(probs[prev], 1, generator=generator)[:, 0]  # (n,)
        prev = out[:, t]
    return out


def estimate_J(theta: Tensor, rewards: Tensor, n: int, generator: torch.Generator | None = None) -> tuple[float, float]:
    """(mean, standard error) of R over n sampled trajectories: the Monte-Carlo J and its error bar,
    stderr = std (with n - 1) / sqrt(n), 0.0 when n = 1."""
    H = _check_rewards(rewards, theta.size(1) if isinstance(theta, Tensor) and theta.dim() == 2 else -1)
    taus = sample_trajectories(theta, H, n, generator)  # (n, H)
    R = rewards.to(torch.float64)[tuple(taus.T)]  # (n,)
    stderr = float(R.std() / math.sqrt(n)) if n > 1 else 0.0
    return float(R.mean()), stderr


def hill_climb(
    theta: Tensor, rewards: Tensor, steps: int, sigma: float, generator: torch.Generator | None = None
) -> tuple[Tensor, list[float]]:
    """Random-mutation hill climbing on the exact J: each step tries
    ``theta + sigma * torch.randn(theta.shape, generator=generator, dtype=theta.dtype)`` and keeps
    it if its J is strictly higher. Returns (final theta, J after each step, the start first)."""
    _check_theta(theta)
    _check_positive_int(steps, "steps", low=0)
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}")
    best = theta.detach().clone()
    best_J = float(exact_J(best, rewards))
    history = [best_J]
    for _ in range(steps):
        candidate = best + sigma * torch.randn(best.shape, generator=generator, dtype=best.dtype)
        J = float(exact_J(candidate, rewards))
        if J > best_J:  # keep if better
            best, best_J = candidate, J
        history.append(best_J)
    return best, history


def finite_difference_gradient(f: Callable[[Tensor], Tensor | float], theta: Tensor, eps: float = 1e-5) -> Tensor:
    """Central differences (f(theta + eps e_i) - f(theta - eps e_i)) / (2 eps), one entry at a time."""
    if not isinstance(theta, Tensor) or not theta.is_floating_point():
        raise TypeError("theta must be a floating point tensor")
    grad = torch.zeros_like(theta)
    flat = theta.detach().clone().reshape(-1)
    for i in range(flat.numel()):
        old = flat[i].item()
        flat[i] = old + eps
        up = float(f(flat.view_as(theta)))
        flat[i] = old - eps
        down = float(f(flat.view_as(theta)))
        flat[i] = old
        grad.view(-1)[i] = (up - down) / (2 * eps)
    return grad


# --------------------------------------------------------------------------- 4. policy gradients


def policy_gradient_naive(theta: Tensor, trajectories: Tensor, weights: Tensor) -> Tensor:
    """(1/N) sum_i sum_t w_it grad log pi(a_it | s_it), by autograd through the log-probabilities.

    weights: (N,) one per trajectory (REINFORCE: R_i - b) or (N, H) one per step (actor-critic: delta_it)."""
    _check_theta(theta)
    w = _check_weights(weights, trajectories)
    th = theta.detach().clone().requires_grad_(True)
    K = th.size(1)
    prev = torch.cat([torch.full_like(trajectories[:, :1], K), trajectories[:, :-1]], dim=1)  # (N, H)
    logp = F.log_softmax(th, dim=-1)[prev, trajectories]  # (N, H): log pi(a_t | s_t)
    (grad,) = torch.autograd.grad((logp * w.to(logp.dtype)).sum() / len(trajectories), th)
    return grad


def policy_gradient(theta: Tensor, trajectories: Tensor, weights: Tensor) -> Tensor:
    """The same as :func:`policy_gradient_naive`, in closed form: every step (s, a) adds
    w * (onehot(a) - softmax(theta[s])) to row s of the gradient. theta (K + 1, K) -> (K + 1, K)."""
    _check_theta(theta)
    w = _check_weights(weights, trajectories).to(theta.dtype)  # (N, H)
    K = theta.size(1)
    N = len(trajectories)
    prev = torch.cat([torch.full_like(trajectories[:, :1], K), trajectories[:, :-1]], dim=1)  # (N, H)
    probs = F.softmax(theta.detach(), dim=-1)  # (K + 1, K)
    step_grad = F.one_hot(trajectories, K).to(theta.dtype) - probs[prev]  # (N, H, K)
    grad = torch.zeros_like(theta.detach())
    grad.index_add_(0, prev.reshape(-1), (w[..., None] * step_grad).reshape(-1, K))  # rows = states
    return grad / N


# --------------------------------------------------------------------------- 5. TD error, TD(0), GAE


def td_errors(rewards: Tensor, values: Tensor, gamma: float = 1.0) -> Tensor:
    """delta_t = r_t + gamma V(s_t+1) - V(s_t). rewards (..., T), values (..., T + 1) (the last: the
    state after the final step, 0 if terminal) -> (..., T)."""
    _check_episode(rewards, values, gamma)
    return rewards + gamma * values[..., 1:] - values[..., :-1]


def td0(
    states: Tensor, rewards: Tensor, n_states: int, alpha: float, gamma: float = 1.0, values: Tensor | None = None
) -> Tensor:
    """Tabular TD(0): for every episode, every step t in order, V[s_t] += alpha * delta_t with
    delta_t = r_t + gamma V[s_t+1] - V[s_t]; the last state of an episode is terminal (value 0).

    states (N, T + 1) long, rewards (N, T) -> V (n_states,) float64, starting from ``values`` (zeros)."""
    if not isinstance(states, Tensor) or states.dim() != 2 or states.dtype != torch.long:
        raise TypeError("states must be a (N, T + 1) long tensor")
    _check_episode(rewards, states.to(torch.float64), gamma)
    V = torch.zeros(n_states, dtype=torch.float64) if values is None else values.detach().clone().double()
    for s, r in zip(states.tolist(), rewards.double().tolist()):
        T = len(r)
        for t in range(T):
            v_next = 0.0 if t + 1 == T else V[s[t + 1]].item()  # the end of the episode is terminal
            V[s[t]] += alpha * (r[t] + gamma * v_next - V[s[t]].item())
    return V


def prefix_ids(trajectories: Tensor, K: int) -> Tensor:
    """(N, H + 1) long: the id of every state a trajectory visits, the prefix a_0..a_t-1 read as a
    number in base K + 1 with digits a + 1 (the empty prefix, the start, is 0). All ids < (K + 1)^H."""
    N, H = trajectories.shape
    ids = torch.zeros(N, H + 1, dtype=torch.long)
    for t in range(H):
        ids[:, t + 1] = ids[:, t] * (K + 1) + trajectories[:, t] + 1
    return ids


def exact_values(theta: Tensor, rewards: Tensor) -> Tensor:
    """V(s) for every prefix s of the toy (indexed by :func:`prefix_ids`; unreachable ids 0), the
    expected final reward from s on, by enumeration. Reward only at the end, gamma = 1."""
    K, H = theta.size(1), _check_rewards(rewards, theta.size(1))
    taus = all_trajectories(K, H)
    ids = prefix_ids(taus, K)  # (K^H, H + 1)
    logp = F.log_softmax(theta.detach().double(), dim=-1)
    prev = torch.cat([torch.full_like(taus[:, :1], K), taus[:, :-1]], dim=1)
    step_logp = logp[prev, taus]  # (K^H, H)
    R = rewards.double().reshape(-1)
    V = torch.zeros((K + 1) ** H, dtype=torch.float64)
    for t in range(H + 1):
        p_rest = step_logp[:, t:].sum(1).exp()  # p(tau_t.. | s_t): each suffix's probability
        V.index_add_(0, ids[:, t], p_rest * R)  # V(s) = sum over suffixes of p * R
    return V


def gae(rewards: Tensor, values: Tensor, gamma: float = 1.0, lam: float = 0.95) -> Tensor:
    """Generalised advantage estimates: A_t = sum_k (gamma lam)^k delta_t+k, by the backward
    recursion A_t = delta_t + gamma lam A_t+1. lam = 0: the TD error; lam = 1: return - V(s_t).
    rewards (..., T), values (..., T + 1) -> (..., T)."""
    if not (isinstance(lam, (int, float)) and 0.0 <= lam <= 1.0):
        raise ValueError(f"lam must be in [0, 1], got {lam!r}")
    delta = td_errors(rewards, values, gamma)  # (..., T)
    out = torch.zeros_like(delta)
    running = torch.zeros_like(delta[..., 0])
    for t in reversed(range(delta.size(-1))):
        running = delta[..., t] + gamma * lam * running
        out[..., t] = running
    return out


# --------------------------------------------------------------------------- 6. reward model


def bradley_terry_loss(r_chosen: Tensor, r_rejected: Tensor) -> Tensor:
    """mean -log sigmoid(r_chosen - r_rejected), computed as softplus(r_rejected - r_chosen) (no
    overflow for large margins). Both (N,) -> scalar."""
    _check_scores(r_chosen, r_rejected)
    return F.softplus(r_rejected - r_chosen).mean()


def fit_reward_head(
    f_chosen: Tensor, f_rejected: Tensor, steps: int = 200, lr: float = 1.0, weight_decay: float = 0.0
) -> Tensor:
    """w (D,) of the reward r(x) = w . f(x), from frozen features (N, D) of the chosen and rejected
    replies: ``steps`` of full-batch gradient descent from w = 0 on
    bradley_terry_loss(f_c w, f_r w) + weight_decay / 2 * |w|^2, i.e. a logistic regression on
    d = f_c - f_r, whose gradient is -mean(sigmoid(-d w) d) + weight_decay w."""
    if not isinstance(f_chosen, Tensor) or not isinstance(f_rejected, Tensor):
        raise TypeError("features must be tensors")
    if f_chosen.dim() != 2 or f_chosen.shape != f_rejected.shape:
        raise ValueError(f"features must both be (N, D), got {tuple(f_chosen.shape)} and {tuple(f_rejected.shape)}")
    if len(f_chosen) == 0:
        raise ValueError("the preference set is empty: need at least one (chosen, rejected) pair")
    if not (torch.isfinite(f_chosen).all() and torch.isfinite(f_rejected).all()):
        raise ValueError("features must be finite")
    _check_positive_int(steps, "steps", low=0)
    d = f_chosen - f_rejected  # (N, D): a bias would cancel here
    w = torch.zeros(d.size(1), dtype=d.dtype)
    for _ in range(steps):
        grad = -(torch.sigmoid(-(d @ w))[:, None] * d).mean(0) + weight_decay * w  # (D,)
        w = w - lr * grad
    return w


def pairwise_accuracy(r_chosen: Tensor, r_rejected: Tensor) -> float:
    """The fraction of pairs the reward ranks right (a tie counts as wrong)."""
    _check_scores(r_chosen, r_rejected)
    return float((r_chosen > r_rejected).double().mean())


# --------------------------------------------------------------------------- 7. PPO with a KL leash


def kl_rewards(score: Tensor, logp: Tensor, logp_ref: Tensor, beta: float, mask: Tensor | None = None) -> Tensor:
    """Per-token rewards of RLHF: -beta (log pi(a_t) - log pi_ref(a_t)) at every generated token
    (a one-sample estimate of the KL to the reference), plus the reward model's ``score`` on the
    last real token. score (B,), logp and logp_ref (B, T), mask (B, T) bool (True = generated token,
    default all) -> (B, T), 0 where masked."""
    if not isinstance(score, Tensor) or score.dim() != 1:
        raise TypeError("score must be a (B,) tensor")
    if not torch.isfinite(score).all():
        raise ValueError("the reward model's score must be finite (got NaN or inf)")
    if logp.shape != logp_ref.shape or logp.dim() != 2 or logp.size(0) != score.size(0):
        raise ValueError(f"logp and logp_ref must be (B, T) with B = len(score), got {tuple(logp.shape)}")
    if not (isinstance(beta, (int, float)) and math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    mask = torch.ones_like(logp, dtype=torch.bool) if mask is None else mask.bool()
    r = -beta * (logp - logp_ref) * mask  # (B, T)
    last = (mask.long() * torch.arange(1, mask.size(1) + 1)).argmax(dim=1)  # (B,) index of the last real token
    return r.index_put((torch.arange(len(score)), last), score.to(r.dtype), accumulate=True)


def ppo_clip_loss(
    logp_new: Tensor, logp_old: Tensor, advantages: Tensor, clip_eps: float = 0.2, mask: Tensor | None = None
) -> Tensor:
    """-mean over (unmasked) tokens of min(ratio * A, clip(ratio, 1 - eps, 1 + eps) * A), ratio =
    exp(logp_new - logp_old). Where the clip is active the gradient is zero: the batch cannot push
    the ratio further. All (B, T) (or any one shape) -> scalar."""
    if not (isinstance(clip_eps, (int, float)) and 0.0 < clip_eps < 1.0):
        raise ValueError(f"clip_eps must be in (0, 1), got {clip_eps!r}")
    if logp_new.shape != logp_old.shape or logp_new.shape != advantages.shape:
        raise ValueError(
            f"logp_new, logp_old and advantages must share a shape, got {tuple(logp_new.shape)}, "
            f"{tuple(logp_old.shape)}, {tuple(advantages.shape)}"
        )
    if not torch.isfinite(advantages).all():
        raise ValueError("advantages must be finite (a NaN or inf reward?)")
    ratio = torch.exp(logp_new - logp_old.detach())
    surrogate = torch.minimum(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)
    if mask is None:
        return -surrogate.mean()
    mask = mask.to(surrogate.dtype)
    return -(surrogate * mask).sum() / mask.sum().clamp(min=1.0)


@dataclasses.dataclass
class PPOConfig:
    """Hyper-parameters of :func:`ppo_finetune` (defaults: seconds on a CPU with the course GPT)."""

    steps: int = 30  # PPO iterations (sample a batch, then `epochs` updates on it)
    batch_size: int = 16
    new_tokens: int = 12
    beta: float = 0.1  # weight of the KL penalty; 0 = no leash (reward hacking)
    clip_eps: float = 0.2
    epochs: int = 2
    lr: float = 3e-4
    temperature: float = 1.0


def _token_logp(model, ids: Tensor, start: int) -> Tensor:
    """(B, T - start) log-probability the model gives each token ids[:, start:] given what precedes it."""
    logits, _ = model(ids[:, :-1])  # (B, T - 1, V)
    logp = F.log_softmax(logits[:, start - 1 :], dim=-1)  # (B, T - start, V)
    return logp.gather(-1, ids[:, start:, None])[..., 0]


def ppo_finetune(
    policy: torch.nn.Module,
    reward_fn: Callable[[Tensor], Tensor],
    prompt: Tensor,
    config: PPOConfig | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.nn.Module, dict[str, list[float]]]:
    """RL-tune a copy of ``policy`` (a course GPT) to raise ``reward_fn`` (generated ids (B, n) ->
    scores (B,)) with a per-token KL penalty to the frozen original.

    Each step samples ``batch_size`` continuations of ``prompt`` (1-D ids), scores them, builds
    per-token rewards with :func:`kl_rewards`, advantages = reward-to-go minus its batch mean at each
    position (a baseline, no critic), and takes ``epochs`` Adam steps on :func:`ppo_clip_loss`.
    Returns (the tuned copy, history with per-step "reward" (mean score) and "kl" (mean summed KL
    per sample))."""
    cfg = config or PPOConfig()
    if not (0.0 < cfg.clip_eps < 1.0):
        raise ValueError(f"clip_eps must be in (0, 1), got {cfg.clip_eps!r}")
    ref = policy.eval()  # frozen: only ever run under no_grad
    model = copy.deepcopy(policy).train()
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start = prompt.numel()
    history: dict[str, list[float]] = {"reward": [], "kl": []}
    for _ in range(cfg.steps):
        with torch.no_grad():
            model.eval()
            ids = model.generate(
                prompt.view(1, -1).expand(cfg.batch_size, -1), cfg.new_tokens, cfg.temperature, generator=generator
            )  # (B, start + n)
            score = reward_fn(ids[:, start:]).to(torch.float32)  # (B,)
            logp_old = _token_logp(model, ids, start)  # (B, n)
            logp_ref = _token_logp(ref, ids, start)
            r = kl_rewards(score, logp_old, logp_ref, cfg.beta)  # (B, n)
            to_go = r.flip(-1).cumsum(-1).flip(-1)  # (B, n) reward from t to the end
            adv = to_go - to_go.mean(0, keepdim=True)  # baseline: the batch mean at each position
        model.train()
        for _ in range(cfg.epochs):
            loss = ppo_clip_loss(_token_logp(model, ids, start), logp_old, adv, cfg.clip_eps)
            opt.zero_grad()
            loss.backward()
            opt.step()
        history["reward"].append(float(score.mean()))
        history["kl"].append(float((logp_old - logp_ref).sum(-1).mean()))
    return model.eval(), history


# --------------------------------------------------------------------------- input checks


def _check_positive_int(v, name: str, low: int = 1) -> None:
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise ValueError(f"{name} must be an int >= {low}, got {v!r}")


def _check_theta(theta) -> None:
    if not isinstance(theta, Tensor) or not theta.is_floating_point():
        raise TypeError(f"theta must be a floating point tensor, got {type(theta).__name__}")
    if theta.dim() != 2 or theta.size(0) != theta.size(1) + 1:
        raise ValueError(f"theta must be (K + 1, K) logits (row K: the start), got shape {tuple(theta.shape)}")
    if not torch.isfinite(theta).all():
        raise ValueError("theta must be finite")


def _check_trajectories(trajectories, K: int) -> None:
    if not isinstance(trajectories, Tensor) or trajectories.dim() != 2 or trajectories.dtype != torch.long:
        raise TypeError("trajectories must be a (N, H) long tensor")
    if trajectories.numel() and (trajectories.min() < 0 or trajectories.max() >= K):
        raise ValueError(f"trajectories hold tokens outside 0..{K - 1}")


def _check_rewards(rewards, K: int) -> int:
    """The horizon H of a (K,) * H reward table."""
    if not isinstance(rewards, Tensor) or rewards.dim() == 0:
        raise TypeError("rewards must be a (K,) * H tensor: the reward of every trajectory")
    if K > 0 and any(s != K for s in rewards.shape):
        raise ValueError(f"rewards must have shape (K,) * H with K = {K}, got {tuple(rewards.shape)}")
    if not torch.isfinite(rewards.double()).all():
        raise ValueError("rewards must be finite (got NaN or inf)")
    return rewards.dim()


def _check_weights(weights, trajectories) -> Tensor:
    """weights (N,) or (N, H) -> (N, H)."""
    if not isinstance(weights, Tensor):
        weights = torch.as_tensor(weights, dtype=torch.float64)
    if not torch.isfinite(weights).all():
        raise ValueError("weights (returns, advantages) must be finite")
    N, H = trajectories.shape
    if weights.shape == (N,):
        return weights[:, None].expand(N, H)
    if weights.shape == (N, H):
        return weights
    raise ValueError(f"weights must be (N,) or (N, H) = {(N, H)}, got {tuple(weights.shape)}")


def _check_episode(rewards, values, gamma) -> None:
    if not isinstance(rewards, Tensor) or not isinstance(values, Tensor):
        raise TypeError("rewards and values must be tensors")
    if values.shape[:-1] != rewards.shape[:-1] or values.size(-1) != rewards.size(-1) + 1:
        raise ValueError(
            f"values must be (..., T + 1) for rewards (..., T), got {tuple(values.shape)} and {tuple(rewards.shape)}"
        )
    if not (torch.isfinite(rewards).all() and torch.isfinite(values).all()):
        raise ValueError("rewards and values must be finite (got NaN or inf)")
    if not (isinstance(gamma, (int, float)) and 0.0 <= gamma <= 1.0):
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")


def _check_scores(r_chosen, r_rejected) -> None:
    if not isinstance(r_chosen, Tensor) or not isinstance(r_rejected, Tensor):
        raise TypeError("rewards must be tensors")
    if r_chosen.shape != r_rejected.shape or r_chosen.dim() != 1:
        raise ValueError(
            f"r_chosen and r_rejected must both be (N,), got {tuple(r_chosen.shape)}, {tuple(r_rejected.shape)}"
        )
    if r_chosen.numel() == 0:
        raise ValueError("the preference set is empty: need at least one (chosen, rejected) pair")
    if not (torch.isfinite(r_chosen).all() and torch.isfinite(r_rejected).all()):
        raise ValueError("rewards must be finite (got NaN or inf)")
