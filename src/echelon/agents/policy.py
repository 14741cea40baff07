"""A trained agent as a batched policy: the checkpoint's actor, behind the preprocessing."""

from __future__ import annotations

import os

import numpy as np
import torch

from echelon.agents.checkpoint import STATE_LOAD_ERRORS, CheckpointError, load_checkpoint
from echelon.agents.config import resolve_device
from echelon.agents.preprocessing import Preprocessing
from echelon.agents.registry import ALGORITHMS, algorithm_config
from echelon.sim import core
from echelon.sim.config import ChainConfig


class AgentPolicy:
    """A trained checkpoint as a batched :class:`~echelon.policies.Policy`.

    The actor's deterministic action (the Gaussian mean for IQL) is mapped back to orders and
    clipped to the env's bounds.

    Args:
        checkpoint: A ``checkpoint.pt`` or the folder holding it.
        chain: If given, the chain the policy will act in; it must equal the chain the agent was
            trained on in every field (costs, capacities, lead times, backlog, demand law, ...).
        device: Where to run the actor.

    Raises:
        CheckpointError: If the checkpoint is corrupt (see :func:`load_checkpoint`), its weights
            do not fit the network, or it was trained on another chain than ``chain``; the
            message names the differing fields with both values.
    """

    reads_observation = True

    def __init__(self, checkpoint: str | os.PathLike, chain: ChainConfig | None = None,
                 device: str = "cpu") -> None:
        saved = load_checkpoint(checkpoint)
        self.checkpoint = checkpoint
        self.algorithm = saved["algorithm"]
        self.preprocessing = Preprocessing.from_dict(saved["preprocessing"])
        self.chain = ChainConfig.from_dict(saved["chain"])
        if chain is not None:
            _check_same_chain(checkpoint, self.chain, chain)
        self.device = resolve_device(device)
        config = algorithm_config(self.algorithm, dict(saved["algo_config"]))
        try:
            self.learner = ALGORITHMS[self.algorithm].learner(
                saved["obs_dim"], saved["action_dim"], config, saved.get("total_steps", 1),
                torch.Generator(device=self.device), self.device,
            )
            self.learner.load_state_dict(saved["state"])
        except STATE_LOAD_ERRORS as error:
            raise CheckpointError(f"{checkpoint}: weights do not fit the network: {error}") from None
        self.epoch = saved["epoch"]

    def act(self, obs: np.ndarray | None, state) -> np.ndarray:
        """(N, S) orders for (N, obs_size) observations at ``state.period``.

        Raises:
            CheckpointError: If the actor's output is NaN (finite but damaged weights can
                overflow inside the network); orders are never NaN.
        """
        prep = self.preprocessing
        sales = core.sales_history(state, prep.sales_history) if prep.sales_history else None
        inputs = torch.as_tensor(prep.observations(obs, state.period, sales), device=self.device)
        scaled = self.learner.act(inputs).cpu().numpy()
        if np.isnan(scaled).any():
            raise CheckpointError(f"{self.checkpoint}: the actor's output is NaN for these "
                                  "observations (damaged weights?)")
        return self.preprocessing.unscale_actions(scaled)


def _check_same_chain(checkpoint: str | os.PathLike, trained: ChainConfig, here: ChainConfig) -> None:
    """Raises CheckpointError naming every field in which the two chains differ."""
    differ = [f"{name} {then!r} when trained, {now!r} here"
              for name, then, now in trained.differences(here)]
    if differ:
        sizes = ""
        if (trained.observation_size, trained.stages) != (here.observation_size, here.stages):
            sizes = (f" (observation size {trained.observation_size} and {trained.stages} stages "
                     f"there, {here.observation_size} and {here.stages} here)")
        raise CheckpointError(f"{checkpoint}: trained on a different chain{sizes}: "
                              f"{'; '.join(differ)}")
