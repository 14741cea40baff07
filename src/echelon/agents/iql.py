"""Implicit Q-Learning (Kostrikov, Nair and Levine, 2021, arXiv:2110.06169).

IQL never queries Q at actions outside the dataset. With expectile tau in (0.5, 1):

    L_V(psi)   = E_(s,a)~D [ L2^tau( min_j Q_target_j(s, a) - V_psi(s) ) ],
                 L2^tau(u) = |tau - 1(u < 0)| * u^2                     (expectile regression)
    L_Q(theta) = E_(s,a,r,s')~D [ (r + gamma * (1 - terminated) * V_psi(s') - Q_theta_j(s, a))^2 ]
    L_pi(phi)  = E_(s,a)~D [ -min(exp(beta * (min_j Q_target_j(s, a) - V_psi(s))), 100)
                             * log pi_phi(a | s) ]                       (advantage-weighted regression)

Twin critics with target copies updated by Polyak averaging; a Gaussian actor with a
state-independent log-std whose mean is used at evaluation.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from echelon.agents.common import (
    Batch,
    CriticEnsemble,
    Learner,
    Phase,
    actor_factor,
    constant_factor,
    init_parameters,
    mlp,
)

EXP_ADVANTAGE_MAX = 100.0  # the AWR weight is clipped here, as in the IQL paper's code


@dataclass(frozen=True)
class IQLConfig:
    """IQL hyperparameters (defaults: the IQL paper's common settings)."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of every network."""
    learning_rate: float = 3e-4
    """Adam learning rate of the critics, the value network and the actor."""
    gamma: float = 0.99
    """Discount applied on top of the logged rewards (OR-Gym's are already discounted by alpha)."""
    expectile: float = 0.7
    """tau of the value expectile, in (0, 1); 0.5 is the mean, larger approaches the max."""
    temperature: float = 3.0
    """beta of the advantage weights exp(beta * A)."""
    polyak: float = 0.005
    """Rate of the target critics' soft update."""
    actor_lr_schedule: str = "cosine"
    """``cosine`` decays the actor's rate to 0 over training, ``constant`` keeps it."""

    def __post_init__(self) -> None:
        if not 0.0 < self.expectile < 1.0:
            raise ValueError(f"iql.expectile must be in (0, 1), got {self.expectile!r}")
        if self.learning_rate <= 0 or self.temperature < 0 or not 0 < self.polyak <= 1:
            raise ValueError("iql.learning_rate must be > 0, temperature >= 0, polyak in (0, 1]")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"iql.gamma must be in [0, 1], got {self.gamma!r}")
        if self.actor_lr_schedule not in ("cosine", "constant"):
            raise ValueError("iql.actor_lr_schedule must be 'cosine' or 'constant'")


def asymmetric_l2_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """Mean of |tau - 1(u < 0)| * u^2: under-estimates (u > 0) weigh tau, over-estimates 1 - tau."""
    weight = torch.where(diff > 0, expectile, 1.0 - expectile)
    return (weight * diff.square()).mean()


def advantage_weights(advantage: torch.Tensor, temperature: float) -> torch.Tensor:
    """exp(beta * A), clipped at 100 so that a few large advantages cannot dominate."""
    return torch.exp(temperature * advantage).clamp(max=EXP_ADVANTAGE_MAX)


class GaussianActor(nn.Module):
    """A Gaussian policy: mean tanh(MLP(s)) in [-1, 1], log-std a learned constant per action."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.mean = mlp(obs_dim, hidden, action_dim, output_activation=nn.Tanh())
        self.log_std = nn.Parameter(torch.zeros(action_dim))

    def log_prob(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """(B,) log-density of the actions: sum over actions of log N(a; mu(s), sigma^2)."""
        log_std = self.log_std.clamp(-5.0, 2.0)
        z = (actions - self.mean(observations)) * torch.exp(-log_std)
        return (-0.5 * z.square() - log_std - 0.5 * math.log(2.0 * math.pi)).sum(dim=-1)


class IQL(Learner):
    """The IQL learner: ``update(batch)`` takes the value, critic and actor steps together.

    The three losses touch disjoint networks (the critic targets, the value target and the
    advantage weights are all computed without gradient), so one backward pass of their sum
    gives each network exactly its own loss's gradient, and one Adam step with a parameter
    group per network updates them all.

    Args:
        obs_dim: Observation size D.
        action_dim: Action size A.
        config: Hyperparameters.
        total_steps: Gradient steps planned (for the actor's cosine schedule).
        generator: Seeds the initial weights (IQL draws nothing else).
        device: Where the networks live.
    """

    def __init__(self, obs_dim: int, action_dim: int, config: IQLConfig, total_steps: int,
                 generator: torch.Generator, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.generator = generator  # seeds the weights; nothing else is drawn
        hidden = config.hidden
        self.critic = CriticEnsemble(obs_dim, action_dim, hidden, members=2)
        self.value = mlp(obs_dim, hidden, 1)
        self.actor = GaussianActor(obs_dim, action_dim, hidden)
        for module in (self.critic, self.value, self.actor):
            init_parameters(module, generator)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        for module in self.modules().values():
            module.to(device)
        lr = config.learning_rate
        self.optimizer = torch.optim.Adam(
            [{"params": self.critic.parameters()}, {"params": self.value.parameters()},
             {"params": self.actor.parameters()}],
            lr=lr,
            fused=True,
        )
        # Only the actor's group (index 2) follows the schedule.
        self.actor_schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, [constant_factor, constant_factor, actor_factor(config.actor_lr_schedule, total_steps)]
        )
        self.optimizers = {"adam": self.optimizer}
        self.schedules = {"adam": self.actor_schedule}
        self.polyak = config.polyak

    def modules(self) -> dict[str, nn.Module]:
        return {"critic": self.critic, "target": self.target, "value": self.value,
                "actor": self.actor}

    def _terms(self, batch: Batch, noise: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        with torch.no_grad():
            target_q = self.target(batch.observations, batch.actions).min(dim=0).values
            next_v = self.value(batch.next_observations)
            target = batch.rewards + self.config.gamma * (1.0 - batch.terminations) * next_v
        v = self.value(batch.observations)
        advantage = target_q - v
        value_loss = asymmetric_l2_loss(advantage, self.config.expectile)
        q = self.critic(batch.observations, batch.actions)
        critic_loss = (q - target).square().mean(dim=(1, 2)).sum() / 2.0
        weights = advantage_weights(advantage.detach(), self.config.temperature).squeeze(-1)
        actor_loss = -(weights * self.actor.log_prob(batch.observations, batch.actions)).mean()
        return {"value_loss": value_loss, "critic_loss": critic_loss, "actor_loss": actor_loss,
                "mean_advantage": advantage.detach().mean()}

    def phases(self, step: int | None) -> list[Phase]:
        # The three losses touch disjoint networks: one backward pass of their sum, one step.
        return [Phase(self._terms, ("value_loss", "critic_loss", "actor_loss"), ("adam",),
                      (("target", "critic"),))]

    @torch.no_grad()
    def act(self, observations: torch.Tensor) -> torch.Tensor:
        return self.actor.mean(observations)

    def state_dict(self) -> dict:
        return {
            "modules": {name: m.state_dict() for name, m in self.modules().items()},
            "optimizers": {"adam": self.optimizer.state_dict(),
                           "actor_schedule": self.actor_schedule.state_dict()},
        }

    def load_state_dict(self, state: dict) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(state["modules"][name])
        self.optimizer.load_state_dict(state["optimizers"]["adam"])
        self.actor_schedule.load_state_dict(state["optimizers"]["actor_schedule"])

