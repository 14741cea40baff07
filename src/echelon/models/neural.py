"""Neural policies optimised through the chain's dynamics: back-propagating the episode profit.

The chain's dynamics are known accounting identities (min and max of linear terms); only demand is
uncertain. So a policy network can be trained by simulating whole episodes on sampled demand paths
in the differentiable twin of the core (:mod:`echelon.sim.differentiable`) and following the
gradient of the mean discounted episode profit with respect to its weights (the approach of
hindsight differentiable policy optimisation, Alvo, Russo and Kanoria 2023). The demand paths come
from a law: the true one (a reference that knows it) or the one fitted to the logs by the censored
maximum likelihood of :mod:`echelon.models.demand_fit` (the route from logs).

Two policy classes, each an entry of :data:`ARCHITECTURES`:

* ``mlp``: a multilayer perceptron over the Markov state (on-hand, units in transit by arrival
  period, echelon positions, backlog in v0, the period) whose output is made non-negative by a
  softplus and scaled to units of demand.
* ``levels``: order-up-to levels per stage and period (a table) plus a state-dependent correction
  (an MLP whose last layer starts at zero); requests are the level minus the echelon position,
  clipped at zero and to what the upstream stage can ship. With a zero correction it is a
  base-stock policy with levels per period, so it contains the time-aware base-stock (whose levels
  drop to zero after each stage's last ordering period) as a special case.

Training (:func:`train_neural`): Adam with a cosine learning-rate schedule, the best iterate chosen
by its mean profit on separate validation paths played in the exact NumPy core on whole units (as
every evaluation is; the starting network, step 0, is one of the candidates), a return to the
best iterate at half the learning rate when a step leaves no gradient at all (a levels network
whose levels all fell below the positions orders nothing and would never recover), an atomic
checkpoint per validation, exact resume, a progress bar with the running profit, and a stop
when the loss is not finite. Training paths of step t are drawn from
``SeedSequence(seed).spawn``'s training stream keyed by t, so a resumed run draws what the
uninterrupted one would have.

A trained policy is a folder::

    policy.json   {"kind": "neural", "architecture": "mlp", ..., "weights": "network.pt"}
    network.pt    the best iterate's weights (torch.save, read with weights_only=True)
    checkpoint.pt the training state, for --resume
    metrics.csv   step, running training profit, validation profit, learning rate, seconds
"""

from __future__ import annotations

import copy
import hashlib
import io
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from echelon._fields import settings_dict
from echelon._io import atomic_write, atomic_write_csv
from echelon._progress import progress as progress_bar
from echelon.agents.common import init_parameters, mlp
from echelon.models.planning import save_spec
from echelon.sim import differentiable as twin
from echelon.sim.config import ChainConfig
from echelon.sim.core import ChainState
from echelon.sim.demand import demand_to_dict
from echelon.sim.rollout import rollout

NETWORK_NAME = "network.pt"
CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.csv"
_NETWORK_FORMAT = "echelon-neural-policy"
_CHECKPOINT_FORMAT = "echelon-neural-training"
_VERSION = 1
# Training runs in float32: the profits of one episode are sums of a few hundred terms of order
# 10^3, far inside float32's 24 bits, and float32 matrix products are twice as fast on CPUs.
_DTYPE = torch.float32


class NeuralPlanDiverged(RuntimeError):
    """Training produced a loss that is not a finite number."""


# --- the policy classes ------------------------------------------------------------------------


def feature_size(config: ChainConfig, sales_history: int = 0) -> int:
    """Length F of :func:`state_features` for a chain."""
    stages = config.stages
    backlog = stages + 1 if config.backlog else 0
    return 2 * stages + sum(config.lead_time) + backlog + sales_history + 1 + config.periods


def state_features(config: ChainConfig, state: twin.TensorState, scale: float,
                   sales_history: int = 0) -> torch.Tensor:
    """The state of N episodes as network inputs, (N, F).

    On-hand (S), units in transit by arrival period (sum L_i), echelon positions (S), in v0 the
    backlog (S+1), and the retail sales of the last ``sales_history`` periods (what a policy can
    learn a non-stationary demand's course from: the state alone is Markov only for i.i.d.
    demand), all divided by ``scale`` (a typical demand); then the period as n / T and one-hot
    over the T periods (the horizon makes the optimal policy depend on the period).
    """
    n, episodes = state.period, state.on_hand.shape[0]
    parts = [state.on_hand, state.transit_flat(), twin.echelon_inventory_position(config, state)]
    if config.backlog:
        parts.append(state.backlog)
    if sales_history:
        parts.append(twin.sales_history(state, sales_history))
    quantities = torch.cat(parts, dim=1) / scale
    clock = torch.zeros(episodes, 1 + config.periods, dtype=quantities.dtype,
                        device=quantities.device)
    clock[:, 0] = n / config.periods
    clock[:, 1 + n] = 1.0
    return torch.cat([quantities, clock], dim=1)


class MLPPlanner(nn.Module):
    """Orders = scale x softplus(MLP(Markov state)): any non-negative function of the state."""

    def __init__(self, config: ChainConfig, hidden: tuple[int, ...], scale: float,
                 sales_history: int = 0) -> None:
        super().__init__()
        self.config, self.scale, self.sales_history = config, float(scale), sales_history
        self.net = mlp(feature_size(config, sales_history), hidden, config.stages)

    def forward(self, state: twin.TensorState) -> torch.Tensor:
        features = state_features(self.config, state, self.scale, self.sales_history)
        return self.scale * nn.functional.softplus(self.net(features))

    def imitation(self, state: twin.TensorState,
                  requests: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What :func:`imitate` fits to a teacher's requests: the orders themselves."""
        return self(state), requests


class LevelsPlanner(nn.Module):
    """Order up to a level per stage and period, corrected by the state.

    ``level[n] = scale x (table[n] + MLP(state))``; requests are ``max(level - echelon position,
    0)`` clipped to the upstream capacity and on-hand. The table starts at a naive base-stock level
    (mean demand over each echelon's lead time plus one period) and the correction at zero.
    """

    def __init__(self, config: ChainConfig, hidden: tuple[int, ...], scale: float,
                 sales_history: int = 0) -> None:
        super().__init__()
        self.config, self.scale, self.sales_history = config, float(scale), sales_history
        cumulative = np.cumsum(config.lead_time) + 1.0 + np.arange(config.stages)
        start = config.demand.mean * cumulative / self.scale
        self.table = nn.Parameter(torch.tensor(np.tile(start, (config.periods, 1)), dtype=_DTYPE))
        self.correction = mlp(feature_size(config, sales_history), hidden, config.stages)

    def reset_correction(self) -> None:
        """Zeroes the correction's output layer, so that the policy starts as the table alone."""
        last = self.correction[-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def levels(self, state: twin.TensorState) -> torch.Tensor:
        """(N, S) the order-up-to levels of the echelons in this state."""
        features = state_features(self.config, state, self.scale, self.sales_history)
        return self.scale * (self.table[state.period] + self.correction(features))

    def forward(self, state: twin.TensorState) -> torch.Tensor:
        position = twin.echelon_inventory_position(self.config, state)
        requests = torch.relu(self.levels(state) - position)
        return twin.clip_requests(self.config, state, requests)

    def imitation(self, state: twin.TensorState,
                  requests: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What :func:`imitate` fits to a teacher's requests: the levels, to the position plus the
        request (the level that would have made it). Fitting the clipped orders instead pushes
        levels below the positions, where the ReLU passes no gradient and training never
        recovers (measured: a profit of -372 after a BC warm start on the v1 defaults)."""
        position = twin.echelon_inventory_position(self.config, state)
        return self.levels(state), position + requests


@dataclass(frozen=True)
class Architecture:
    """One policy class: how to build its network, and what it is."""

    build: Callable[[ChainConfig, tuple[int, ...], float, int], nn.Module]
    """(chain, hidden sizes, scale, sales history) -> a network."""
    description: str
    learning_rate: float
    """Adam's default initial rate for this class (a table of levels in units of mean demand
    moves well at 1e-2; an MLP's weights need 1e-3)."""


ARCHITECTURES: dict[str, Architecture] = {
    "mlp": Architecture(MLPPlanner, "an MLP over the Markov state with a non-negative output",
                        learning_rate=1e-3),
    "levels": Architecture(LevelsPlanner, "order-up-to levels per stage and period plus a "
                                          "state-dependent correction (contains time-aware "
                                          "base-stock)", learning_rate=1e-2),
}


def build_network(config: ChainConfig, architecture: str, hidden: tuple[int, ...], scale: float,
                  generator: torch.Generator, sales_history: int = 0) -> nn.Module:
    """A freshly initialised network of an architecture, its weights drawn from ``generator``."""
    network = ARCHITECTURES[architecture].build(config, tuple(hidden), scale, sales_history)
    init_parameters(network, generator)
    if isinstance(network, LevelsPlanner):
        network.reset_correction()
    return network.to(_DTYPE)


class NeuralPolicy:
    """A trained network acting in the NumPy core (the :class:`~echelon.policies.base.Policy`
    protocol): the core's state is read as the twin's, the network gives continuous orders, and
    the core truncates them to whole units like any other policy's."""

    reads_observation = False

    def __init__(self, network: nn.Module, chain: ChainConfig) -> None:
        differences = [key for key, _, _ in network.config.differences(chain) if key != "demand"]
        if differences:
            raise ValueError(f"the neural policy was trained for another chain: {differences} "
                             "differ (only the demand law may)")
        self.network, self.chain = network.eval(), chain

    def act(self, obs: np.ndarray | None, state: ChainState) -> np.ndarray:
        tensors = twin.from_chain_state(self.chain, state, dtype=_DTYPE)
        with torch.no_grad():
            orders = self.network(tensors)
        return orders.double().numpy()


# --- settings and training --------------------------------------------------------------------


@dataclass(frozen=True)
class NeuralSettings:
    """How a neural policy is trained."""

    architecture: str = "levels"
    """The policy class, a key of ``ARCHITECTURES`` (levels, mlp)."""
    hidden: tuple[int, ...] = (128, 128)
    """Hidden layer sizes of the network (of the correction, for levels)."""
    steps: int = 800
    """Adam steps, >= 1 (on the v1 defaults the validation profit levels off after 400-700)."""
    batch: int = 1024
    """Demand paths per step, >= 1."""
    learning_rate: float | None = None
    """Adam's initial learning rate in (0, 1] (None: the architecture's default); a cosine
    schedule takes it to ``final_lr_fraction`` of it."""
    final_lr_fraction: float = 0.05
    """Where the cosine schedule ends, as a fraction of the initial rate, in [0, 1]."""
    units: str = "straight-through"
    """Requests in training: straight-through (floored forward as the core floors them, the
    identity's gradient backward), or continuous (not floored; the policy then loses about half
    a unit per order to the core's truncation: 1 to 2 of profit on the v1 defaults)."""
    max_grad_norm: float = 10.0
    """Gradients are clipped to this norm (0: no clipping), >= 0."""
    validation_episodes: int = 1000
    """Validation paths (drawn from the training law, never the test paths), >= 1."""
    evaluate_every: int = 100
    """Steps between validations (and checkpoints), >= 1."""
    warm_start_steps: int = 300
    """With a teacher policy (``train_neural(teacher=...)``, e.g. the BC actor trained on the same
    logs): Adam steps fitting the network's orders to the teacher's before training, >= 1."""
    seed: int = 0
    """Seeds the weights, the training paths and the validation paths, >= 0."""
    sales_history: int = 0
    """Retail sales of the last k periods among the network's inputs, 0 .. T: with
    non-stationary demand (regimes, log-AR(1)) the recent sales say where demand is heading."""

    def __post_init__(self) -> None:
        if self.architecture not in ARCHITECTURES:
            raise ValueError(f"neural.architecture must be one of {list(ARCHITECTURES)}, got "
                             f"{self.architecture!r}")
        hidden = self.hidden
        if isinstance(hidden, (int, np.integer)) and not isinstance(hidden, bool):
            hidden = (hidden,)
        if not isinstance(hidden, (tuple, list)) or not hidden or any(
                isinstance(h, bool) or not isinstance(h, (int, np.integer)) or not 1 <= h <= 4096
                for h in hidden):
            raise ValueError(f"neural.hidden must be a non-empty list of layer sizes in [1, 4096], "
                             f"got {self.hidden!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        if self.learning_rate is None:
            object.__setattr__(self, "learning_rate", ARCHITECTURES[self.architecture].learning_rate)
        for name, low in (("steps", 1), ("batch", 1), ("validation_episodes", 1),
                          ("evaluate_every", 1), ("warm_start_steps", 1), ("seed", 0),
                          ("sales_history", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"neural.{name} must be an integer >= {low}, got {value!r}")
        for name, low, high in (("learning_rate", 0.0, 1.0), ("final_lr_fraction", 0.0, 1.0),
                                ("max_grad_norm", 0.0, math.inf)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not low <= value <= high or not math.isfinite(value) \
                    or (name == "learning_rate" and value == 0):
                interval = f"({low}, {high}]" if name == "learning_rate" else f"[{low}, {high}]"
                raise ValueError(f"neural.{name} must be a number in {interval}, got {value!r}")
        if self.units not in ("continuous", "straight-through"):
            raise ValueError(f"neural.units must be continuous or straight-through, got {self.units!r}")

    def to_dict(self) -> dict[str, Any]:
        return {**settings_dict(self, later=("sales_history",)), "hidden": list(self.hidden)}


@dataclass(frozen=True)
class NeuralPlan:
    """The result of :func:`train_neural`."""

    spec: dict[str, Any]
    """The policy's ``policy.json``."""
    network: nn.Module
    """The best iterate's network."""
    folder: Path | None
    """Where it was written (None: kept in memory only)."""
    validation_profit: float
    """Mean profit of the best iterate on the validation paths (the training law)."""
    best_step: int
    """The step of the best iterate."""
    seconds: float
    """Training time of this call (a resumed run counts only its own)."""
    history: list[dict[str, float]] = field(default_factory=list)
    """One row per validation: step, train_profit, validation_profit, learning_rate, seconds."""

    def policy(self, chain: ChainConfig) -> NeuralPolicy:
        """The trained policy acting in ``chain`` (the chain it was trained for, up to demand)."""
        return NeuralPolicy(self.network, chain)


def _scale(chain: ChainConfig) -> float:
    """The network's unit of quantity: the mean demand per period (at least one unit)."""
    return max(1.0, float(chain.demand.mean))


def _streams(seed: int) -> tuple[int, np.random.SeedSequence, np.random.SeedSequence]:
    weights, training, validation = np.random.SeedSequence([seed, 0x4E7A]).spawn(3)
    return int(weights.generate_state(1, np.uint64)[0] >> np.uint64(1)), training, validation


def _training_paths(chain: ChainConfig, stream: np.random.SeedSequence, step: int,
                    batch: int) -> torch.Tensor:
    """The demand paths of one step: a function of the stream and the step alone (exact resume)."""
    rng = np.random.default_rng(np.random.SeedSequence(stream.entropy,
                                                       spawn_key=(*stream.spawn_key, step)))
    return torch.as_tensor(chain.demand.sample(rng, batch, chain.periods), dtype=_DTYPE)


def episode_profit(chain: ChainConfig, network: nn.Module, demand: torch.Tensor,
                   units: str = "continuous") -> torch.Tensor:
    """(N,) discounted episode profit of the network's policy on demand paths, in the twin."""
    state = twin.reset(chain, demand)
    total = torch.zeros(demand.shape[0], dtype=demand.dtype)
    for _ in range(chain.periods):
        state, out = twin.step(chain, state, network(state), units=units)
        total = total + out.reward
    return total


def _optimizer(network: nn.Module, learning_rate: float) -> torch.optim.Adam:
    """Adam over all the network's parameters; ``base_lr`` is what the schedule scales."""
    return torch.optim.Adam([{"params": list(network.parameters()), "lr": learning_rate,
                              "base_lr": learning_rate}])


def _no_gradient(network: nn.Module) -> bool:
    """Whether the last backward pass left every parameter's gradient zero (or none)."""
    return not any(p.grad is not None and bool(torch.any(p.grad != 0.0))
                   for p in network.parameters())


def _learning_rate_factor(step: int, settings: NeuralSettings) -> float:
    progress = min(step, settings.steps) / settings.steps
    floor = settings.final_lr_fraction
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def _checkpoint_header(chain: ChainConfig, settings: NeuralSettings,
                       extra: dict[str, Any]) -> dict[str, Any]:
    return {"format": _CHECKPOINT_FORMAT, "version": _VERSION, "chain": chain.to_dict(),
            "settings": settings.to_dict(), "extra": extra}


def _save_network(path: Path, network: nn.Module) -> str:
    """Writes the weights atomically; returns their SHA-256."""
    buffer = io.BytesIO()
    torch.save({"format": _NETWORK_FORMAT, "version": _VERSION,
                "state": {k: v.detach().clone() for k, v in network.state_dict().items()}}, buffer)
    data = buffer.getvalue()
    atomic_write(path, lambda handle: handle.write(data))
    return hashlib.sha256(data).hexdigest()


def train_neural(
    chain: ChainConfig,
    settings: NeuralSettings,
    out: str | os.PathLike | None,
    *,
    resume: bool = False,
    replace: bool = False,
    progress: bool = False,
    log: Callable[[str], Any] = lambda line: None,
    extra_spec: dict[str, Any] | None = None,
    teacher: Any = None,
) -> NeuralPlan:
    """Trains a neural policy on demand paths from ``chain.demand`` and writes it to ``out``.

    Args:
        chain: The chain to plan for, with the demand law to draw training and validation paths
            from (the true law, or :func:`~echelon.models.demand_fit.fitted_chain`'s).
        settings: Architecture, optimiser, sizes and seed.
        out: The policy's folder (created), or None to keep it in memory only (no checkpoints,
            no resume).
        resume: Continue from ``out/checkpoint.pt`` (exactly where it stopped), if it is there.
        replace: Start afresh even if ``out`` holds a checkpoint (it is replaced).
        progress: Show a progress bar with the running profit on stderr.
        log: Receives a line per validation (after its checkpoint is written).
        extra_spec: Recorded in ``policy.json`` (e.g. the demand fit it was planned in).
        teacher: A policy to start from (the BC actor of the same logs, say): before training,
            the network is fitted to its orders on the states it visits (:func:`imitate`).

    Returns:
        The policy's spec and folder, and its training history.

    Raises:
        ValueError: If ``out`` holds a checkpoint and neither ``resume`` nor ``replace`` is on,
            or the checkpoint to resume is damaged or of another run.
        NeuralPlanDiverged: If the loss stops being finite (the last checkpoint is kept).
    """
    from echelon._limits import check_memory
    from echelon.sim.core import reset_bytes

    if settings.sales_history > chain.periods:
        raise ValueError(f"neural.sales_history must be in 0 .. {chain.periods} (the chain's "
                         f"periods), got {settings.sales_history}")
    folder = None if out is None else Path(out)
    if resume and folder is None:
        raise ValueError("resume needs the folder of the run to resume")
    # The twin keeps the whole episode's graph for the backward pass: about twenty (N, S)-sized
    # tensors a period besides the network's activations.
    hidden = max(settings.hidden)
    check_memory(f"training on batches of {settings.batch:,} paths of {chain.periods} periods",
                 settings.batch * chain.periods * 4 * (40 * (chain.stages + 1) + 6 * hidden)
                 + reset_bytes(chain, settings.validation_episodes),
                 reduce="neural.batch or neural.hidden")
    checkpoint_path = None if folder is None else folder / CHECKPOINT_NAME
    if folder is not None:
        if checkpoint_path.exists() and not (resume or replace):
            raise ValueError(f"{checkpoint_path} exists; resume (--resume) to continue that "
                             "training, or choose another folder")
        folder.mkdir(parents=True, exist_ok=True)
    weights_seed, training, validation = _streams(settings.seed)
    network = build_network(chain, settings.architecture, settings.hidden, _scale(chain),
                            torch.Generator().manual_seed(weights_seed), settings.sales_history)
    optimizer = _optimizer(network, settings.learning_rate)
    header = _checkpoint_header(chain, settings, dict(extra_spec or {}))
    step, history = 0, []
    best: dict[str, Any] = {"step": -1, "profit": -math.inf, "state": None}
    if resume and checkpoint_path.exists():
        saved = _load_training(checkpoint_path, header)
        network.load_state_dict(saved["network"])
        optimizer.load_state_dict(saved["optimizer"])
        step, history = int(saved["step"]), list(saved["history"])
        best = {"step": int(saved["best_step"]), "profit": float(saved["best_profit"]),
                "state": saved["best"]}
    validation_paths = chain.demand.sample(np.random.default_rng(validation),
                                           settings.validation_episodes, chain.periods)
    if teacher is not None and step == 0:  # a resumed run started from the teacher already
        imitate(chain, network, teacher, settings.warm_start_steps, settings.learning_rate,
                np.random.default_rng(np.random.SeedSequence([settings.seed, 0x7EAC])))
        optimizer = _optimizer(network, settings.learning_rate)

    def validate() -> float:
        policy = NeuralPolicy(network, chain)
        profit = float(rollout(chain, policy, validation_paths).profit.mean())
        network.train()
        return profit

    start, running = time.perf_counter(), math.nan
    name = f"neural {settings.architecture}"
    if step == 0:
        # The starting network is a candidate too: a training that only makes it worse (a levels
        # network whose correction drives every level below the positions, where no gradient
        # flows back) keeps it rather than its last, worse iterate.
        checked = validate()
        best = {"step": 0, "profit": checked, "state": copy.deepcopy(network.state_dict())}
        history.append({"step": 0, "train_profit": math.nan, "validation_profit": checked,
                        "learning_rate": settings.learning_rate,
                        "seconds": time.perf_counter() - start})
        log(f"  {name} step 0 (the start): validation {checked:.2f}")
    bar = progress_bar(total=settings.steps, desc=name, unit="step", initial=step, enabled=progress)
    try:
        while step < settings.steps:
            factor = _learning_rate_factor(step, settings)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * factor
            profit = episode_profit(chain, network, _training_paths(chain, training, step,
                                                                    settings.batch),
                                    settings.units).mean()
            if not torch.isfinite(profit):
                kept = (f"the last checkpoint (step {history[-1]['step']}) is kept in "
                        f"{checkpoint_path}" if history else "no checkpoint was written")
                raise NeuralPlanDiverged(f"{name}: the training profit became {profit.item()} at "
                                         f"step {step}; {kept}. Lower neural.learning_rate.")
            optimizer.zero_grad(set_to_none=True)
            (-profit).backward()
            if _no_gradient(network):
                # Nothing the network does changes the profit of these paths: a levels network
                # whose levels all fell below the positions orders nothing and gets no gradient
                # back, ever. Back to the best iterate so far, at half the learning rate.
                rate = optimizer.param_groups[0]["base_lr"] / 2.0
                network.load_state_dict(best["state"])
                optimizer = _optimizer(network, rate)
                log(f"  {name} step {step + 1}: no gradient (the policy orders nothing whatever "
                    f"its weights); back to the best iterate (step {best['step']}) at learning "
                    f"rate {rate:.3g}")
            else:
                if settings.max_grad_norm:
                    nn.utils.clip_grad_norm_(network.parameters(), settings.max_grad_norm)
                optimizer.step()
            step += 1
            value = profit.item()
            running = value if math.isnan(running) else 0.95 * running + 0.05 * value
            bar.update(1)
            bar.set_postfix({"profit": f"{running:.1f}", "best": f"{best['profit']:.1f}"})
            if step % settings.evaluate_every == 0 or step == settings.steps:
                checked = validate()
                if checked > best["profit"]:
                    best = {"step": step, "profit": checked,
                            "state": copy.deepcopy(network.state_dict())}
                history.append({"step": step, "train_profit": running,
                                "validation_profit": checked,
                                "learning_rate": optimizer.param_groups[0]["lr"],
                                "seconds": time.perf_counter() - start})
                if folder is not None:
                    state = {**header, "step": step, "network": network.state_dict(),
                             "optimizer": optimizer.state_dict(), "history": history,
                             "best": best["state"], "best_step": best["step"],
                             "best_profit": best["profit"]}
                    atomic_write(checkpoint_path, lambda handle: torch.save(state, handle))
                    atomic_write_csv(folder / METRICS_NAME, history)
                log(f"  {name} step {step}: training {running:.2f}, validation {checked:.2f} "
                    f"(best {best['profit']:.2f} at step {best['step']})")
    finally:
        bar.close()
    network.load_state_dict(best["state"])
    network.eval()
    if best["step"] == 0:
        log(f"  {name}: no step improved on the starting network (validation "
            f"{best['profit']:.2f}); it is kept")
    spec = {"kind": "neural", "architecture": settings.architecture,
            "hidden": list(settings.hidden), "scale": _scale(chain),
            "sales_history": settings.sales_history, "chain": chain.to_dict(),
            "demand": demand_to_dict(chain.demand), "weights": NETWORK_NAME,
            "sha256": _save_network(folder / NETWORK_NAME, network) if folder else None,
            "settings": settings.to_dict(), "best_step": best["step"],
            "validation_profit": best["profit"], **(extra_spec or {})}
    if folder is not None:
        save_spec(spec, folder)
    return NeuralPlan(spec, network, folder, best["profit"], best["step"],
                      time.perf_counter() - start, history)


def imitate(chain: ChainConfig, network: nn.Module, teacher: Any, steps: int,
            learning_rate: float, rng: np.random.Generator, episodes: int = 256) -> float:
    """Fits a network's orders to a teacher policy's on the states the teacher visits.

    The teacher plays ``episodes`` paths of ``chain.demand`` in the NumPy core; the network is
    then fitted by Adam to the requests the core made of the teacher's orders (after capping and
    truncation), in units of ``network.scale``, over every (state, period) visited: its orders,
    or what its class makes them from (``network.imitation``: a levels network fits its levels).

    Returns:
        The final mean squared error, in squared units of the scale.
    """
    from echelon.sim import core

    paths = chain.demand.sample(rng, episodes, chain.periods)
    state, states, targets = core.reset(chain, paths), [], []
    for _ in range(chain.periods):
        obs = core.observation(chain, state) if teacher.reads_observation else None
        orders = teacher.act(obs, state)
        states.append(twin.from_chain_state(chain, state, dtype=_DTYPE))
        state, out = core.step(chain, state, orders)
        targets.append(torch.as_tensor(out.requests, dtype=_DTYPE))
    optimizer = _optimizer(network, learning_rate)
    network.train()
    loss = torch.tensor(math.nan)
    for _ in range(steps):
        pairs = (network.imitation(s, t) for s, t in zip(states, targets))
        loss = sum(nn.functional.mse_loss(output / network.scale, target / network.scale)
                   for output, target in pairs) / len(states)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return float(loss.item())


def _load_training(path: Path, header: dict[str, Any]) -> dict[str, Any]:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a damaged file
        raise ValueError(f"{path}: not a readable checkpoint (corrupt or truncated?): {error}") from None
    if not isinstance(saved, dict) or saved.get("format") != _CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a neural planner checkpoint")
    for key in ("version", "chain", "settings", "extra"):
        if saved.get(key) != header[key]:
            raise ValueError(f"{path}: its {key} differs from this run's; it cannot be resumed")
    missing = [k for k in ("step", "network", "optimizer", "history", "best", "best_step",
                           "best_profit") if k not in saved]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {missing}")
    return saved


# --- loading -----------------------------------------------------------------------------------


def neural_policy(spec: dict[str, Any], chain: ChainConfig, base: str | os.PathLike | None) -> NeuralPolicy:
    """The policy a ``{"kind": "neural"}`` spec describes, its weights read from ``base``.

    Raises:
        ValueError: If a field is missing or bad, the weights file is missing, altered (its
            SHA-256 differs) or unreadable, or the chain differs from the one trained for.
    """
    if base is None:
        raise ValueError("a neural policy spec needs the folder its weights are in")
    missing = [k for k in ("architecture", "hidden", "scale", "chain", "weights", "sha256")
               if k not in spec]
    if missing:
        raise ValueError(f"a 'neural' policy spec needs its {missing}")
    if spec["architecture"] not in ARCHITECTURES:
        raise ValueError(f"neural architecture must be one of {list(ARCHITECTURES)}, got "
                         f"{spec['architecture']!r}")
    weights = Path(base) / str(spec["weights"])
    if not weights.is_file():
        raise ValueError(f"{weights}: the neural policy's weights are missing")
    data = weights.read_bytes()
    if hashlib.sha256(data).hexdigest() != spec["sha256"]:
        raise ValueError(f"{weights}: the weights differ from those policy.json was written with "
                         "(sha256 mismatch)")
    try:
        saved = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        trained_for = ChainConfig.from_dict(spec["chain"])
        network = ARCHITECTURES[spec["architecture"]].build(
            trained_for, tuple(int(h) for h in spec["hidden"]), float(spec["scale"]),
            int(spec.get("sales_history", 0)))
        network.load_state_dict(saved["state"])
    except Exception as error:  # a damaged file or spec: torch and the config raise many types
        raise ValueError(f"{weights}: not a readable neural policy ({type(error).__name__}: "
                         f"{error})") from None
    return NeuralPolicy(network.to(_DTYPE), chain)


__all__ = [
    "ARCHITECTURES",
    "LevelsPlanner",
    "MLPPlanner",
    "NeuralPlan",
    "NeuralPlanDiverged",
    "NeuralPolicy",
    "NeuralSettings",
    "episode_profit",
    "feature_size",
    "imitate",
    "neural_policy",
    "state_features",
    "train_neural",
]
