"""Behaviour cloning: a deterministic actor regressed on the logged actions.

    L_pi(phi) = E_(s,a)~D [ || pi_phi(s) - a ||^2 ]

The control for "does the offline RL algorithm add anything beyond imitation?": IQL with a
very small temperature reduces to it, and on a mixture of experts it recovers their average
behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from echelon.agents.common import (
    Batch,
    DeterministicActor,
    Learner,
    Phase,
    actor_schedule,
    init_parameters,
)


@dataclass(frozen=True)
class BCConfig:
    """Behaviour-cloning hyperparameters."""

    hidden: tuple[int, ...] = (256, 256)
    """Hidden layer sizes of the actor."""
    learning_rate: float = 3e-4
    """Adam learning rate."""
    actor_lr_schedule: str = "constant"
    """``cosine`` decays the rate to 0 over training, ``constant`` keeps it."""

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ValueError(f"bc.learning_rate must be > 0, got {self.learning_rate!r}")
        if self.actor_lr_schedule not in ("cosine", "constant"):
            raise ValueError("bc.actor_lr_schedule must be 'cosine' or 'constant'")


class BC(Learner):
    """The behaviour-cloning learner (same constructor and protocol as every algorithm)."""

    def __init__(self, obs_dim: int, action_dim: int, config: BCConfig, total_steps: int,
                 generator: torch.Generator, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.generator = generator  # seeds the weights; nothing else is drawn
        self.actor = DeterministicActor(obs_dim, action_dim, config.hidden)
        init_parameters(self.actor, generator)
        self.actor.to(device)
        self.optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.learning_rate)
        self.schedule = actor_schedule(self.optimizer, config.actor_lr_schedule, total_steps)
        self.optimizers = {"actor": self.optimizer}
        self.schedules = {"actor": self.schedule}

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"actor": self.actor}

    def _terms(self, batch: Batch, noise: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"actor_loss": (self.actor(batch.observations) - batch.actions).square().sum(dim=-1).mean()}

    def phases(self, step: int | None) -> list[Phase]:
        return [Phase(self._terms, ("actor_loss",), ("actor",))]

    @torch.no_grad()
    def act(self, observations: torch.Tensor) -> torch.Tensor:
        return self.actor(observations)

    def state_dict(self) -> dict:
        return {"modules": {"actor": self.actor.state_dict()},
                "optimizers": {"actor": self.optimizer.state_dict(),
                               "actor_schedule": self.schedule.state_dict()}}

    def load_state_dict(self, state: dict) -> None:
        self.actor.load_state_dict(state["modules"]["actor"])
        self.optimizer.load_state_dict(state["optimizers"]["actor"])
        self.schedule.load_state_dict(state["optimizers"]["actor_schedule"])
