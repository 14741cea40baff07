"""The batched vector env as a Stable-Baselines3 ``VecEnv``, for online RL references::

    from stable_baselines3 import PPO
    from echelon.sb3 import Sb3VecEnv

    env = Sb3VecEnv(num_envs=16, periods=30)
    model = PPO("MlpPolicy", env, seed=0, device="cpu").learn(100_000)

:class:`Sb3VecEnv` runs :class:`echelon.sim.vector.InvManagementVectorEnv` in Gymnasium's
same-step autoreset mode, which is SB3's own convention: when a sub-env's episode ends, ``done``
is True, the returned observation is the next episode's first, and the ended episode's last
observation is ``infos[i]["terminal_observation"]``. It equals SB3's ``DummyVecEnv`` over N
single ``InvManagementEnv`` with the same seeds (``tests/test_sb3.py``). :class:`Sb3Policy` turns
a trained model back into a :class:`~echelon.policies.base.Policy`, to evaluate it on the common
held-out paths with every other policy.

Stable-Baselines3 is an optional extra (``pip install 'echelon[sb3]'``); without it, importing
this module raises an ImportError that says so. It lives outside :mod:`echelon.sim`, which does
not import torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from echelon.sim import core
from echelon.sim.config import ChainConfig
from echelon.sim.vector import InvManagementVectorEnv

SB3_MISSING = "the Stable-Baselines3 adapter needs stable-baselines3: pip install 'echelon[sb3]'"

try:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecEnv
    from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices
except ImportError as error:  # an optional extra: say which one, not just the module's name
    raise ImportError(SB3_MISSING) from error


class Sb3VecEnv(VecEnv):
    """N inventory chains stepped by the batched core, behind SB3's ``VecEnv`` interface.

    Args:
        num_envs: Number N of sub-envs.
        **env_kwargs: Arguments of :class:`~echelon.sim.vector.InvManagementVectorEnv` (a
            ``config``, ``ChainConfig`` fields or OR-Gym short names, ``time_feature``,
            ``sales_history``); its ``autoreset_mode`` is SB3's, same-step, and cannot be set.

    Rewards are float32, as ``DummyVecEnv``'s. ``infos[i]`` holds only what SB3 reads:
    ``"TimeLimit.truncated"`` (always False: episodes end by their horizon, so SB3 never
    bootstraps across it) and, when ``done[i]``, ``"terminal_observation"``; the per-period
    details (sales, shipments, ...) are the Gymnasium env's infos. Attributes and methods asked
    of the sub-envs (``get_attr``, ``env_method``) are the vector env's, the same for each.

    Raises:
        ValueError: If ``autoreset_mode`` is given, or an argument of the vector env is bad.
    """

    def __init__(self, num_envs: int = 1, **env_kwargs: Any) -> None:
        if "autoreset_mode" in env_kwargs:
            raise ValueError("Sb3VecEnv resets sub-envs in SB3's way (same-step autoreset); "
                             "autoreset_mode cannot be set")
        self.env = InvManagementVectorEnv(
            num_envs, autoreset_mode=AutoresetMode.SAME_STEP, **env_kwargs
        )
        self.render_mode = None
        super().__init__(
            self.env.num_envs, self.env.single_observation_space, self.env.single_action_space
        )
        self._actions: np.ndarray | None = None

    def reset(self) -> np.ndarray:
        # SB3 passes seeds (from seed()) and options (set_options()) to the next reset only.
        seeds = self._seeds if any(seed is not None for seed in self._seeds) else None
        options = self._options[0] if self._options and self._options[0] else None
        if any(option != self._options[0] for option in self._options):
            raise ValueError("Sb3VecEnv takes the same reset options for every sub-env; "
                             "for one demand path per sub-env pass {'demand': (N, T) paths}")
        obs, infos = self.env.reset(seed=seeds, options=options)
        self.reset_infos = [{key: infos[key][i] for key in ("period", "demand_path")}
                            for i in range(self.num_envs)]
        self._reset_seeds()
        self._reset_options()
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        if self._actions is None:
            raise RuntimeError("call step_async() before step_wait()")
        obs, rewards, terminations, truncations, infos = self.env.step(self._actions)
        self._actions = None
        dones = terminations | truncations
        step_infos = [{"TimeLimit.truncated": bool(truncations[i] and not terminations[i])}
                      for i in range(self.num_envs)]
        for i in np.flatnonzero(dones):
            step_infos[i]["terminal_observation"] = infos["final_obs"][i]
        return obs, rewards.astype(np.float32), dones, step_infos

    def close(self) -> None:
        self.env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name) if attr_name == "render_mode" else getattr(self.env,
                                                                                     attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        if list(self._get_indices(indices)) != list(range(self.num_envs)):
            raise ValueError("the sub-envs share one vector env: set_attr sets an attribute of "
                             "all of them (indices=None), not of some")
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        result = getattr(self.env, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]


class Sb3Policy:
    """A trained SB3 model as a :class:`~echelon.policies.base.Policy`, acting deterministically.

    Args:
        model: A model trained on OR-Gym's observation (an :class:`Sb3VecEnv` without
            ``time_feature`` or ``sales_history``) of a chain like ``config``.
        config: The chain it acts in.

    Raises:
        ValueError: If the model's observation or action space does not fit the chain.
    """

    reads_observation = True

    def __init__(self, model: BaseAlgorithm, config: ChainConfig) -> None:
        if model.observation_space.shape != (config.observation_size,):
            raise ValueError(f"the model observes {model.observation_space.shape}, not OR-Gym's "
                             f"({config.observation_size},) of this chain: a policy acts on the "
                             "core's observation, without time feature or sales history")
        if model.action_space.shape != (config.stages,):
            raise ValueError(f"the model orders for {model.action_space.shape} stages, the "
                             f"chain has {config.stages}")
        self.model = model

    def act(self, obs: np.ndarray | None, state: core.ChainState) -> np.ndarray:
        """(N, S) orders: the model's deterministic action for each (N, obs_size) observation."""
        actions, _ = self.model.predict(obs, deterministic=True)
        return np.asarray(actions, dtype=np.float64)
