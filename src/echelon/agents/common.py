"""Machinery shared by every offline RL algorithm: networks, batches, scaling, the protocol."""

from __future__ import annotations

import abc
import functools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import torch
from torch import nn


class Batch(NamedTuple):
    """A minibatch of transitions, already normalised and scaled."""

    observations: torch.Tensor
    """(B, D) normalised observations."""
    actions: torch.Tensor
    """(B, A) actions scaled so that the env's bounds map to [-1, 1]."""
    rewards: torch.Tensor
    """(B, 1) rewards times the reward scale."""
    next_observations: torch.Tensor
    """(B, D) normalised next observations."""
    terminations: torch.Tensor
    """(B, 1) 1.0 where the episode ended at this step (no bootstrapping), else 0.0."""


class Algorithm(Protocol):
    """What the trainer needs of an algorithm."""

    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient step on every network; returns the losses it minimised."""
        ...

    def losses(self, batch: Batch) -> dict[str, float]:
        """The same losses on a batch, without updating anything (validation)."""
        ...

    def act(self, observations: torch.Tensor) -> torch.Tensor:
        """(B, A) deterministic scaled actions in [-1, 1] for (B, D) normalised observations."""
        ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


Terms = Callable[[Batch, dict[str, torch.Tensor]], dict[str, torch.Tensor]]


class Phase(NamedTuple):
    """One gradient step of an update: losses, the optimizers they step, the targets that follow.

    ``terms(batch, noise)`` computes the losses (and logged scalars) of one member from its batch
    and its pre-drawn noise, as a pure function of the learner's networks: it reads their
    parameters as attributes and draws nothing, so that an ensemble can evaluate it for all its
    members at once (:mod:`echelon.agents.ensemble`).
    """

    terms: Terms
    minimise: tuple[str, ...]
    """The terms whose sum is back-propagated."""
    optimizers: tuple[str, ...]
    """The keys of ``Learner.optimizers`` that step on it."""
    soft_updates: tuple[tuple[str, str], ...] = ()
    """(target, source) module names Polyak-averaged after the step, at ``Learner.polyak``."""


class Learner(abc.ABC):
    """An algorithm written as phases (:class:`Phase`), which gives it :class:`Algorithm`.

    A subclass builds its networks and optimizers, and states:

    * ``modules()``: every network by name (trained ones and targets);
    * ``optimizers``: name -> optimizer; ``schedules``: name -> learning-rate schedule of the
      optimizer of the same name (stepped after it);
    * ``draw(batch)``: the noise one update needs, drawn from the learner's generator in a fixed
      order (none by default);
    * ``phases(step)``: the phases of update number ``step`` (1, 2, ...), or, for ``step=None``,
      those whose losses validation reports.

    ``update`` then runs the phases in order, ``losses`` evaluates them without a step and
    without moving the generator, and an ensemble of learners of one class runs the same
    phases for all its members at once.
    """

    optimizers: dict[str, torch.optim.Optimizer]
    schedules: dict[str, torch.optim.lr_scheduler.LRScheduler] = {}
    generator: torch.Generator
    polyak: float = 0.0
    steps: int = 0
    """Updates taken so far."""

    @abc.abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """Every network by name."""

    @abc.abstractmethod
    def phases(self, step: int | None) -> list[Phase]:
        """The phases of update ``step``, or for ``None`` those validation evaluates."""

    def draw(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The noise of one update (nothing by default)."""
        return {}

    def update(self, batch: Batch) -> dict[str, float]:
        noise = self.draw(batch)
        self.steps += 1
        modules = self.modules()
        logged: dict[str, torch.Tensor] = {}
        for phase in self.phases(self.steps):
            terms = phase.terms(batch, noise)
            total = terms[phase.minimise[0]]
            for name in phase.minimise[1:]:
                total = total + terms[name]
            for name in phase.optimizers:
                self.optimizers[name].zero_grad(set_to_none=True)
            total.backward()
            for name in phase.optimizers:
                self.optimizers[name].step()
                if name in self.schedules:
                    self.schedules[name].step()
            for target, source in phase.soft_updates:
                soft_update(modules[target], modules[source], self.polyak)
            logged.update(terms)
        return scalars(logged)

    @torch.no_grad()
    def losses(self, batch: Batch) -> dict[str, float]:
        state = self.generator.get_state()
        try:  # validation must not move the training noise
            noise = self.draw(batch)
            logged: dict[str, torch.Tensor] = {}
            for phase in self.phases(None):
                logged.update(phase.terms(batch, noise))
            return scalars(logged)
        finally:
            self.generator.set_state(state)


def mlp(
    in_dim: int,
    hidden: Sequence[int],
    out_dim: int,
    *,
    layer_norm: bool = False,
    output_activation: nn.Module | None = None,
) -> nn.Sequential:
    """A ReLU multilayer perceptron ``in_dim -> hidden... -> out_dim``.

    The Linear layers are built without PyTorch's default initialisation, which would draw from
    the global random state: every learner draws their weights with :func:`init_parameters`.

    Args:
        in_dim: Input size.
        hidden: Sizes of the hidden layers.
        out_dim: Output size.
        layer_norm: Add LayerNorm after each hidden linear layer.
        output_activation: Applied to the output (e.g. ``nn.Tanh()``), or None.
    """
    layers: list[nn.Module] = []
    size = in_dim
    for width in hidden:
        layers.append(nn.utils.skip_init(nn.Linear, size, width))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        size = width
    layers.append(nn.utils.skip_init(OutputLinear, size, out_dim))
    if output_activation is not None:
        layers.append(output_activation)
    return nn.Sequential(*layers)


class Critic(nn.Module):
    """Q(s, a): an MLP on the concatenated observation and action, output (B, 1)."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = mlp(obs_dim + action_dim, hidden, 1)

    def forward(self, observations: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([observations, actions], dim=-1))


class OutputLinear(nn.Linear):
    """A network's output layer: always computed in float32, even under bfloat16 autocast.

    Values and Q-values are differences of large numbers (an advantage of 0.1 on a Q of 300);
    bfloat16 keeps 8 bits of mantissa, so the layer that produces them stays in full precision
    while the wide hidden layers may run in bfloat16 (``TrainConfig.precision``).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return nn.functional.linear(x.float(), self.weight, self.bias)


class EnsembleLinear(nn.Module):
    """E independent linear layers applied at once with one batched matmul: (E, B, in) -> (E, B, out).

    With ``full_precision`` the layer ignores bfloat16 autocast (see :class:`OutputLinear`).
    """

    def __init__(self, members: int, in_features: int, out_features: int,
                 full_precision: bool = False) -> None:
        super().__init__()
        self.in_features = in_features
        self.full_precision = full_precision
        self.weight = nn.Parameter(torch.empty(members, in_features, out_features))
        self.bias = nn.Parameter(torch.empty(members, 1, out_features))

    def forward(self, x: torch.Tensor, frozen: bool = False) -> torch.Tensor:
        """With ``frozen``, no gradient reaches the weights (it still reaches ``x``)."""
        weight, bias = (self.weight.detach(), self.bias.detach()) if frozen else (self.weight, self.bias)
        if self.full_precision:
            with torch.autocast(x.device.type, enabled=False):
                return torch.baddbmm(bias, x.float(), weight)
        return torch.baddbmm(bias, x, weight)


class CriticEnsemble(nn.Module):
    """E critics Q_j(s, a) evaluated together (twin critics: E = 2), output (E, B, 1).

    Each member is an MLP on the concatenated observation and action; the members share no
    weights, but run as batched matmuls, which halves the per-step overhead of twin critics.
    """

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int], members: int = 2) -> None:
        super().__init__()
        sizes = [obs_dim + action_dim, *hidden, 1]
        self.members = members
        self.layers = nn.ModuleList(
            EnsembleLinear(members, a, b, full_precision=b == 1)
            for a, b in zip(sizes[:-1], sizes[1:])
        )

    def forward(self, observations: torch.Tensor, actions: torch.Tensor,
                frozen: bool = False) -> torch.Tensor:
        """With ``frozen``, Q is differentiable in the inputs only (an actor's loss)."""
        x = torch.cat([observations, actions], dim=-1).expand(self.members, -1, -1)
        for i, layer in enumerate(self.layers):
            x = layer(x, frozen)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class DeterministicActor(nn.Module):
    """pi(s) = tanh(MLP(s)), scaled actions in [-1, 1]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        self.net = mlp(obs_dim, hidden, action_dim, output_activation=nn.Tanh())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(observations)


@torch.no_grad()
def init_parameters(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation of every Linear layer, drawn from ``generator``.

    Weights are Kaiming-uniform with a = sqrt(5), biases uniform in +-1/sqrt(fan_in), as
    ``nn.Linear.reset_parameters`` does, but from an explicit Generator instead of the global
    random state.
    """
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
            bound = 1.0 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
        elif isinstance(layer, EnsembleLinear):
            # Same law per member: U(+-1/sqrt(fan_in)) is what kaiming_uniform(a=sqrt(5)) gives.
            bound = 1.0 / math.sqrt(layer.in_features)
            nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
            nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def actor_factor(kind: str, total_steps: int):
    """The learning-rate factor of a step: ``cosine`` decays from 1 to 0 over ``total_steps``
    (as ``CosineAnnealingLR``), ``constant`` stays 1."""
    total = max(1, total_steps)
    if kind == "cosine":
        return functools.partial(_cosine_factor, total=total)
    return constant_factor


def _cosine_factor(step: int, total: int) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * min(step, total) / total))


def constant_factor(step: int) -> float:
    """A learning-rate factor of 1 at every step."""
    return 1.0


def actor_schedule(optimizer: torch.optim.Optimizer, kind: str, total_steps: int):
    """A scheduler applying :func:`actor_factor` to every group of ``optimizer``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, actor_factor(kind, total_steps))


@torch.no_grad()
def soft_update(target: nn.Module, source: nn.Module, rate: float) -> None:
    """Polyak averaging: target <- (1 - rate) * target + rate * source."""
    # Tensor.lerp_, public, rather than the private torch._foreach_lerp_: both evaluate ATen's
    # one lerp formula, so the weights are the same bit for bit (on CUDA at the cost of one
    # kernel launch per parameter instead of one per batch of them).
    for target_parameter, source_parameter in zip(target.parameters(), source.parameters(),
                                                  strict=True):
        target_parameter.lerp_(source_parameter, rate)


def scalars(losses: dict[str, torch.Tensor]) -> dict[str, float]:
    """Detached Python floats of a dict of scalar tensors."""
    return {name: float(value.detach()) for name, value in losses.items()}
