"""Conservative Q-Learning (Kumar, Zhou, Tucker and Levine, 2020, arXiv:2006.04779), CQL(H) on SAC.

CQL adds to the critics' Bellman error a term that pushes Q down at actions drawn from a broad
distribution and up at the dataset's actions, so that the learned Q lower-bounds the policy's
value where the data says nothing. With conservative weight alpha_c and temperature T:

    y          = r + gamma * (1 - terminated) * min_j Q_target_j(s', a'),  a' ~ pi_phi(. | s')
    L_Q(theta) = sum_j E_(s,a,r,s')~D [ (Q_j(s, a) - y)^2 ]
                 + alpha_c * sum_j E_s~D [ T * log sum_k exp((Q_j(s, a_k) - log mu(a_k | s)) / T)
                                           - E_a~D Q_j(s, a) ]
    L_pi(phi)  = E_s~D, a~pi_phi [ alpha_H * log pi_phi(a | s) - min_j Q_j(s, a) ]
    L(alpha_H) = -E_s~D, a~pi_phi [ log alpha_H * (log pi_phi(a | s) - A) ]   (target entropy -A)

The log-sum-exp is the paper's CQL(H) regulariser, log of the integral of exp(Q(s, .)) over the
action box, estimated by importance sampling as in the authors' code (``min_q_version=3``): K =
3N actions a_k, N uniform on [-1, 1]^A (density mu = 2^-A), N from pi(. | s) and N from
pi(. | s'), all scored at s, each weighted by its proposal density; the constant -log K is
dropped, as there. The backup has no entropy term (the authors' ``backup_entropy=False``); twin
critics, the minimum in the target and the actor, Polyak-averaged targets. The actor is a
tanh-squashed Gaussian whose log-density carries the tanh change of variables; it acts with tanh
of its mean.

With ``lagrange_threshold`` tau set (the paper's Lagrangian variant), alpha_c is scaled by a
learned multiplier alpha' >= 0: the critics minimise alpha' * (alpha_c * penalty_j - tau), and
alpha' maximises it, growing while the penalty stays above tau.

Defaults are d3rlpy's ``CQLConfig`` (actor rate 1e-4, critic 3e-4, entropy rate 1e-4,
alpha_c = 5, N = 10, T = 1), in line with the authors' command for the Gym MuJoCo tasks
(``min_q_weight=5.0``, ``policy_lr=1e-4``, no Lagrange). Hidden layers (256, 256), as for the
other algorithms here, so that they compare under the same networks.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from echelon.agents.common import (
    Batch,
    CriticEnsemble,
    Learner,
    Phase,
    init_parameters,
    mlp,
)

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # SAC's clamp of the actor's log-std (Haarnoja et al., 2018)
LAGRANGE_MAX = 1e6  # alpha' is clipped here, as in the authors' code


@dataclass(frozen=True)
class CQLConfig:
    """CQL(H) hyperparameters (defaults: d3rlpy's, the authors' MuJoCo settings)."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor and the critics."""
    actor_learning_rate: float = 1e-4
    """Adam learning rate of the actor."""
    critic_learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    gamma: float = 0.99
    """Discount applied on top of the logged rewards."""
    polyak: float = 0.005
    """Rate of the target critics' soft update."""
    conservative_weight: float = 5.0
    """alpha_c: weight of the conservative penalty in the critics' loss, >= 0 (0 gives SAC)."""
    action_samples: int = 10
    """N: actions drawn from each of the three proposals per state for the log-sum-exp."""
    logsumexp_temperature: float = 1.0
    """T of the log-sum-exp, > 0; small T approaches the max over the sampled actions."""
    entropy_alpha: float = 1.0
    """alpha_H, SAC's entropy weight, > 0: fixed, or the initial value when auto-tuned."""
    auto_entropy: bool = True
    """Tune alpha_H so that the policy's entropy tracks the target -A (SAC v2)."""
    entropy_learning_rate: float = 1e-4
    """Adam learning rate of log alpha_H."""
    lagrange_threshold: float | None = None
    """tau of CQL-Lagrange: learn a multiplier on the penalty; None keeps alpha_c fixed."""
    lagrange_learning_rate: float = 1e-4
    """Adam learning rate of log alpha' (only with ``lagrange_threshold``)."""

    def __post_init__(self) -> None:
        for name in ("actor_learning_rate", "critic_learning_rate", "entropy_learning_rate",
                     "lagrange_learning_rate", "logsumexp_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"cql.{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 < self.polyak <= 1.0:
            raise ValueError("cql.gamma must be in [0, 1] and polyak in (0, 1]")
        if not self.conservative_weight >= 0:
            raise ValueError(
                f"cql.conservative_weight must be >= 0, got {self.conservative_weight!r}")
        samples = self.action_samples
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"cql.action_samples must be an integer >= 1, got {samples!r}")
        if not (self.entropy_alpha > 0 and math.isfinite(self.entropy_alpha)):
            raise ValueError(
                f"cql.entropy_alpha must be finite and > 0, got {self.entropy_alpha!r}")
        if not isinstance(self.auto_entropy, bool):
            raise ValueError(f"cql.auto_entropy must be true or false, got {self.auto_entropy!r}")
        threshold = self.lagrange_threshold
        if threshold is not None and not math.isfinite(threshold):
            raise ValueError(f"cql.lagrange_threshold must be a finite number, got {threshold!r}")


def squashed_gaussian_log_prob(pre_tanh: torch.Tensor, mean: torch.Tensor,
                               log_std: torch.Tensor) -> torch.Tensor:
    """log-density of a = tanh(u), u ~ N(mean, exp(log_std)^2), summed over the last axis.

    log pi(a) = log N(u; mean, std) - log(1 - tanh(u)^2), with the Jacobian term written as
    2 * (log 2 - u - softplus(-2u)), which stays finite where tanh(u) rounds to +-1.

    Args:
        pre_tanh: (..., A) the Gaussian sample u.
        mean: (..., A) its mean.
        log_std: (..., A) its log standard deviation.

    Returns:
        (...,) the log-density of tanh(u).
    """
    z = (pre_tanh - mean) / log_std.exp()
    gaussian = -0.5 * z.square() - log_std - 0.5 * math.log(2.0 * math.pi)
    jacobian = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
    return (gaussian - jacobian).sum(dim=-1)


def conservative_penalty(sampled_q: torch.Tensor, log_density: torch.Tensor, data_q: torch.Tensor,
                         temperature: float) -> torch.Tensor:
    """CQL(H)'s penalty: E_s[T * logsumexp_k((Q(s, a_k) - log mu(a_k)) / T)] - E_(s,a)~D[Q(s, a)].

    Args:
        sampled_q: (..., B, K) Q at K sampled actions per state.
        log_density: (B, K) log-density of each sampled action under its proposal.
        data_q: (..., B) Q at the dataset's actions.
        temperature: T > 0.

    Returns:
        (...) the penalty, one per leading index (per critic).
    """
    soft_max = temperature * torch.logsumexp((sampled_q - log_density) / temperature, dim=-1)
    return soft_max.mean(dim=-1) - data_q.mean(dim=-1)


class TanhGaussianActor(nn.Module):
    """pi(a | s): a = tanh(u), u ~ N(mean(s), std(s)^2); one MLP outputs mean and log-std."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.net = mlp(obs_dim, hidden, 2 * action_dim)

    def forward(self, observations: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, A) mean and (B, A) log-std of u."""
        mean, log_std = self.net(observations).split(self.action_dim, dim=-1)
        return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, observations: torch.Tensor, generator: torch.Generator,
               samples: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised actions and their log-densities, the noise drawn from ``generator``.

        Args:
            observations: (B, D).
            generator: The learner's generator (``rsample`` would use the global random state).
            samples: None for one action per state, or N for N each.

        Returns:
            Actions (B, A) or (B, N, A) in (-1, 1), and log-densities (B,) or (B, N).
        """
        shape = ((observations.shape[0], self.action_dim) if samples is None
                 else (observations.shape[0], samples, self.action_dim))
        noise = torch.randn(shape, generator=generator, device=observations.device)
        return self.sample_with(observations, noise)

    def sample_with(self, observations: torch.Tensor,
                    noise: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`sample` with standard normal noise given: (B, A) for one action per state,
        (B, N, A) for N each."""
        mean, log_std = self(observations)
        if noise.dim() == 3:
            shape = noise.shape
            mean, log_std = mean.unsqueeze(1).expand(shape), log_std.unsqueeze(1).expand(shape)
        pre_tanh = mean + log_std.exp() * noise
        return torch.tanh(pre_tanh), squashed_gaussian_log_prob(pre_tanh, mean, log_std)


class LogScalar(nn.Module):
    """A learned positive coefficient, stored as its logarithm."""

    def __init__(self, value: float, learned: bool) -> None:
        super().__init__()
        self.log_value = nn.Parameter(torch.tensor(math.log(value)), requires_grad=learned)

    def forward(self) -> torch.Tensor:
        return self.log_value.exp()


class CQL(Learner):
    """The CQL(H) learner: ``update(batch)`` takes the entropy, actor, critic and multiplier steps.

    The losses touch disjoint parameters (the actor's Q is read through frozen critics; targets,
    sampled actions and the coefficients inside other losses carry no gradient), so one backward
    pass of their sum gives each network exactly its own loss's gradient, and one Adam with a
    parameter group per network (each with its rate) steps them all.

    Args:
        obs_dim: Observation size D.
        action_dim: Action size A.
        config: Hyperparameters.
        total_steps: Gradient steps planned (unused: CQL keeps its rates constant).
        generator: Draws the initial weights, and every sampled action and policy noise.
        device: Where the networks live.
    """

    def __init__(self, obs_dim: int, action_dim: int, config: CQLConfig, total_steps: int,
                 generator: torch.Generator, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.generator = generator
        self.action_dim = action_dim
        self.actor = TanhGaussianActor(obs_dim, action_dim, config.hidden)
        self.critic = CriticEnsemble(obs_dim, action_dim, config.hidden, members=2)
        for module in (self.actor, self.critic):
            init_parameters(module, generator)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.entropy_alpha = LogScalar(config.entropy_alpha, learned=config.auto_entropy)
        self.lagrange = (LogScalar(1.0, learned=True) if config.lagrange_threshold is not None
                         else None)
        for module in self.modules().values():
            module.to(device)
        groups = [{"params": self.actor.parameters(), "lr": config.actor_learning_rate},
                  {"params": self.critic.parameters(), "lr": config.critic_learning_rate}]
        if config.auto_entropy:
            groups.append({"params": self.entropy_alpha.parameters(),
                           "lr": config.entropy_learning_rate})
        if self.lagrange is not None:
            groups.append({"params": self.lagrange.parameters(),
                           "lr": config.lagrange_learning_rate})
        self.optimizer = torch.optim.Adam(groups)
        self.optimizers = {"adam": self.optimizer}
        self.polyak = config.polyak

    def modules(self) -> dict[str, nn.Module]:
        modules = {"actor": self.actor, "critic": self.critic, "target": self.target,
                   "entropy_alpha": self.entropy_alpha}
        if self.lagrange is not None:
            modules["lagrange"] = self.lagrange
        return modules

    def draw(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The standard normal and uniform noise of one update, in the order it is used."""
        g, obs = self.generator, batch.observations
        size, samples, dim = obs.shape[0], self.config.action_samples, self.action_dim

        def normal(*shape: int) -> torch.Tensor:
            return torch.randn(shape, generator=g, device=obs.device)

        actor, following_one = normal(size, dim), normal(size, dim)
        uniform = torch.rand((size, samples, dim), generator=g, device=obs.device)
        return {"actor": actor, "next": following_one, "uniform": uniform,
                "current": normal(size, samples, dim), "following": normal(size, samples, dim)}

    def _terms(self, batch: Batch, noise: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        obs, next_obs = batch.observations, batch.next_observations
        size, samples, dim = obs.shape[0], c.action_samples, self.action_dim

        # SAC's actor and entropy steps; the actor's Q is read through frozen critics.
        action, log_pi = self.actor.sample_with(obs, noise["actor"])
        alpha_h = self.entropy_alpha()
        frozen_q = self.critic(obs, action, frozen=True).min(dim=0).values.squeeze(-1)
        actor_loss = (alpha_h.detach() * log_pi - frozen_q).mean()
        terms = {"actor_loss": actor_loss}
        if c.auto_entropy:
            terms["entropy_loss"] = -(self.entropy_alpha.log_value * (log_pi.detach() - dim)).mean()

        with torch.no_grad():
            next_action, _ = self.actor.sample_with(next_obs, noise["next"])
            next_q = self.target(next_obs, next_action).min(dim=0).values
            target = batch.rewards + c.gamma * (1.0 - batch.terminations) * next_q
            # The proposals of the importance-sampled log-sum-exp, all scored at s.
            uniform = noise["uniform"] * 2.0 - 1.0
            current, current_log_pi = self.actor.sample_with(obs, noise["current"])
            following, following_log_pi = self.actor.sample_with(next_obs, noise["following"])
            sampled = torch.cat([uniform, current, following], dim=1)  # (B, 3N, A)
            log_density = torch.cat(
                [torch.full((size, samples), -dim * math.log(2.0), device=obs.device),
                 current_log_pi, following_log_pi], dim=1)  # (B, 3N)
        q = self.critic(obs, batch.actions)  # (2, B, 1)
        bellman = (q - target).square().mean(dim=(1, 2))  # (2,)
        width = obs.shape[1]
        repeated = obs.unsqueeze(1).expand(size, 3 * samples, width).reshape(-1, width)
        sampled_q = self.critic(repeated, sampled.reshape(-1, dim)).view(2, size, 3 * samples)
        penalty = conservative_penalty(sampled_q, log_density, q.squeeze(-1),
                                       c.logsumexp_temperature)  # (2,)
        conservative = c.conservative_weight * penalty  # (2,)
        if self.lagrange is not None:
            multiplier = self.lagrange().clamp(0.0, LAGRANGE_MAX)
            conservative = multiplier.detach() * (conservative - c.lagrange_threshold)
            terms["lagrange_loss"] = -multiplier * (
                c.conservative_weight * penalty.detach().mean() - c.lagrange_threshold)
            terms["lagrange_multiplier"] = multiplier
        terms["critic_loss"] = (bellman + conservative).sum()
        terms["conservative_penalty"] = penalty.mean()
        terms["entropy_alpha"] = alpha_h
        return terms

    def phases(self, step: int | None) -> list[Phase]:
        # The losses touch disjoint parameters: one backward pass of their sum, one Adam step.
        minimise = ("actor_loss", "critic_loss", *(("entropy_loss",) if self.config.auto_entropy else ()),
                    *(("lagrange_loss",) if self.lagrange is not None else ()))
        return [Phase(self._terms, minimise, ("adam",), (("target", "critic"),))]

    @torch.no_grad()
    def act(self, observations: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.actor(observations)[0])

    def state_dict(self) -> dict:
        return {"modules": {name: m.state_dict() for name, m in self.modules().items()},
                "optimizers": {"adam": self.optimizer.state_dict()}}

    def load_state_dict(self, state: dict) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(state["modules"][name])
        self.optimizer.load_state_dict(state["optimizers"]["adam"])
