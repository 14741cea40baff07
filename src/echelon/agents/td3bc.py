"""TD3+BC (Fujimoto and Gu, 2021, arXiv:2106.06860), and plain TD3 with the BC term off.

Twin critics regress on clipped double-Q targets with target-policy smoothing:

    y = r + gamma * (1 - terminated) * min_j Q_target_j(s', clip(pi_target(s') + eps, -1, 1)),
        eps = clip(N(0, sigma^2), -c, c)
    L_Q(theta) = E [ (Q_theta_j(s, a) - y)^2 ]

and every ``policy_delay`` steps the actor maximises Q, kept near the data by a BC term:

    L_pi(phi) = E [ -lambda * Q_1(s, pi(s)) + (pi(s) - a)^2 ],  lambda = alpha / mean |Q_1(s, a)|

``bc_weight`` 1 is TD3+BC; 0 leaves plain off-policy TD3, which maximises Q at actions the data
never tried and shows the "winner's curse" of offline RL (Fujimoto, Meger and Precup, 2019).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from echelon.agents.common import (
    Batch,
    Critic,
    DeterministicActor,
    Learner,
    Phase,
    init_parameters,
)


@dataclass(frozen=True)
class TD3BCConfig:
    """TD3+BC hyperparameters (defaults: the TD3+BC paper's)."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor and critics."""
    learning_rate: float = 3e-4
    """Adam learning rate of the actor and the critics."""
    gamma: float = 0.99
    """Discount applied on top of the logged rewards."""
    alpha: float = 2.5
    """alpha of lambda = alpha / mean |Q|: how strongly the actor follows Q against the data."""
    bc_weight: float = 1.0
    """Weight of the BC term: 1 for TD3+BC, 0 for plain TD3."""
    policy_noise: float = 0.2
    """sigma of the target-policy smoothing noise, in scaled action units."""
    noise_clip: float = 0.5
    """c: the smoothing noise is clipped to [-c, c]."""
    policy_delay: int = 2
    """The actor and the targets are updated every this many critic steps."""
    polyak: float = 0.005
    """Rate of the targets' soft update."""

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.alpha < 0 or self.bc_weight < 0:
            raise ValueError("td3bc.learning_rate must be > 0, alpha and bc_weight >= 0")
        if self.policy_delay < 1 or not 0 < self.polyak <= 1 or not 0 <= self.gamma <= 1:
            raise ValueError("td3bc.policy_delay must be >= 1, polyak in (0, 1], gamma in [0, 1]")


class TD3BC(Learner):
    """The TD3+BC learner; with ``bc_weight = 0``, plain TD3."""

    def __init__(self, obs_dim: int, action_dim: int, config: TD3BCConfig, total_steps: int,
                 generator: torch.Generator, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.generator = generator
        self.polyak = config.polyak
        self.actor = DeterministicActor(obs_dim, action_dim, config.hidden)
        self.critic1 = Critic(obs_dim, action_dim, config.hidden)
        self.critic2 = Critic(obs_dim, action_dim, config.hidden)
        for module in (self.actor, self.critic1, self.critic2):
            init_parameters(module, generator)
        self.actor_target = copy.deepcopy(self.actor)
        self.target1, self.target2 = copy.deepcopy(self.critic1), copy.deepcopy(self.critic2)
        for module in self.modules().values():
            module.to(device)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.learning_rate)
        self.critic_optimizer = torch.optim.Adam(
            [*self.critic1.parameters(), *self.critic2.parameters()], lr=config.learning_rate
        )
        self.optimizers = {"actor": self.actor_optimizer, "critic": self.critic_optimizer}
        self.steps = 0

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"actor": self.actor, "critic1": self.critic1, "critic2": self.critic2,
                "actor_target": self.actor_target, "target1": self.target1, "target2": self.target2}

    def draw(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The target-policy smoothing noise, unclipped and unscaled."""
        return {"smoothing": torch.randn(batch.actions.shape, generator=self.generator,
                                         device=batch.actions.device)}

    def _critic_terms(self, batch: Batch, noise: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        c = self.config
        with torch.no_grad():
            smoothing = noise["smoothing"] * c.policy_noise
            next_action = (self.actor_target(batch.next_observations)
                           + smoothing.clamp(-c.noise_clip, c.noise_clip)).clamp(-1.0, 1.0)
            next_q = torch.minimum(self.target1(batch.next_observations, next_action),
                                   self.target2(batch.next_observations, next_action))
            target = batch.rewards + c.gamma * (1.0 - batch.terminations) * next_q
        q1 = self.critic1(batch.observations, batch.actions)
        q2 = self.critic2(batch.observations, batch.actions)
        return {"critic_loss": (q1 - target).square().mean() + (q2 - target).square().mean()}

    def _actor_terms(self, batch: Batch, noise: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        action = self.actor(batch.observations)
        q = self.critic1(batch.observations, action)
        scale = self.config.alpha / q.abs().mean().detach().clamp(min=1e-6)
        bc = (action - batch.actions).square().sum(dim=-1).mean()
        return {"actor_loss": -scale * q.mean() + self.config.bc_weight * bc}

    def phases(self, step: int | None) -> list[Phase]:
        phases = [Phase(self._critic_terms, ("critic_loss",), ("critic",))]
        # The actor and the targets follow every policy_delay critic steps (and validation
        # reports both losses).
        if step is None or step % self.config.policy_delay == 0:
            phases.append(Phase(self._actor_terms, ("actor_loss",), ("actor",),
                                (("actor_target", "actor"), ("target1", "critic1"),
                                 ("target2", "critic2"))))
        return phases

    @torch.no_grad()
    def act(self, observations: torch.Tensor) -> torch.Tensor:
        return self.actor(observations)

    def state_dict(self) -> dict:
        return {"modules": {name: m.state_dict() for name, m in self.modules().items()},
                "optimizers": {"actor": self.actor_optimizer.state_dict(),
                               "critic": self.critic_optimizer.state_dict()},
                "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        for name, module in self.modules().items():
            module.load_state_dict(state["modules"][name])
        self.actor_optimizer.load_state_dict(state["optimizers"]["actor"])
        self.critic_optimizer.load_state_dict(state["optimizers"]["critic"])
        self.steps = int(state["steps"])
