"""A Gymnasium vector env of N chains stepped together by the batched core.

:class:`InvManagementVectorEnv` is :class:`echelon.sim.env.InvManagementEnv` N times over, with
each period of the N sub-envs played by ONE call of :func:`echelon.sim.core.step`, where
Gymnasium's ``SyncVectorEnv`` steps N Python envs one after another. It equals N single envs in a
``SyncVectorEnv`` with the same seeds and actions: observations, rewards, flags and infos
(``tests/sim/test_vector_env.py``).

Sub-envs at different periods. The core's state holds one period for all its episodes, while a
vector env may reset some sub-envs and not others (``reset(options={"reset_mask": ...})``). The
sub-envs are therefore kept in groups, one :class:`~echelon.sim.core.ChainState` per group, and
all sub-envs of a group are at the same period; a step makes one core call per group. Since every
episode lasts exactly T periods, sub-envs that start together stay together, and autoreset keeps
them together: a vector that is only reset whole (and autoreset) is one group, stepped by one
core call per step. Only a partial reset splits the group; groups that come to share a period
are merged again (two groups can only do so at period 0, whose state is its demand paths, so the
merge is one ``core.reset``).

Seeding. Each sub-env draws its episode's demand path from its own generator, one
``config.demand.sample(rng, 1, T)`` call per sub-env and episode (the only loop over sub-envs, once
per T steps): this is what makes sub-env i with ``reset(seed=s)`` equal a single env reset with
seed ``s + i``, as in ``SyncVectorEnv``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from echelon.sim import core
from echelon.sim.config import ChainConfig
from echelon.sim.env import InvManagementEnv, real_array

ENTRY_POINT = "echelon.sim.vector:InvManagementVectorEnv"
_OPTIONS = ("demand", "reset_mask")


@dataclass(eq=False)
class _Group:
    """Sub-envs at the same period, stepped by one core call."""

    index: np.ndarray
    """(k,) the sub-envs of the group, in increasing order."""
    state: core.ChainState
    """Their episodes, in the order of ``index``."""


class InvManagementVectorEnv(VectorEnv):
    """N serial inventory chains stepped together by the batched core.

    ## Description

    N independent copies of ``echelon/InvManagement-v1`` (or ``-v0``), see
    :class:`~echelon.sim.env.InvManagementEnv`, with batched actions and observations. Each step
    plays one period of all N chains in one call of the core (see the module docstring for
    sub-envs reset at different times).

    ## Action Space

    ``Box(0, capacity, (N, S), float64)``, the single env's action space batched. As there,
    finite values outside the box are accepted and clipped by the dynamics; actions that are not
    N x S real numbers, or that hold NaN or infinity, raise ``ValueError``. Every sub-env's action
    is checked, also one that the step ignores because the sub-env is being reset.

    ## Observation Space

    ``Box(0, inf, (N, size), float64)``: row i is sub-env i's observation, as the single env's
    (OR-Gym's observation, then ``sales_history`` retail sales, then the ``time_feature``).

    ## Rewards

    ``(N,)`` float64: each chain's discounted profit of the period (OR-Gym's reward); 0 for a
    sub-env being autoreset in ``NEXT_STEP`` mode.

    ## Starting State

    As the single env. At reset each sub-env draws its demand path for the episode from its own
    generator: ``reset(seed=s)`` seeds sub-env i's with ``s + i``, as ``SyncVectorEnv`` does, so
    sub-env i equals ``InvManagementEnv`` reset with seed ``s + i``; ``seed=[s_0, ..., s_N-1]``
    seeds each sub-env with its own (``None`` keeps its generator). Autoresets draw the next path
    from the same generator, as a single env's reset without a seed does. Options:
    ``demand`` replays given paths, shaped (T,) (the same for every sub-env reset, as
    ``SyncVectorEnv`` passes one option to all) or (N, T) (row i for sub-env i);
    ``reset_mask``, a boolean array (N,), resets only the sub-envs it marks.

    ## Episode End

    Every episode terminates (``terminated=True``) after ``periods`` steps and is never
    truncated. What happens next is ``autoreset_mode`` (https://farama.org/Vector-Autoreset-Mode),
    all three of Gymnasium's modes being supported:

    * ``NEXT_STEP`` (default): the next step resets the ended sub-envs instead of stepping them
      and returns their first observation, reward 0 and ``terminated=False``.
    * ``SAME_STEP``: the step that ends an episode resets the sub-env at once; the returned row is
      the new episode's first observation, and ``infos["final_obs"]`` / ``infos["final_info"]``
      hold the ended episode's last observation and step info.
    * ``DISABLED``: nothing is reset; stepping an ended sub-env raises ``ValueError`` until it is
      reset with ``reset(options={"reset_mask": ...})``.

    ## Arguments

    ``gymnasium.make_vec("echelon/InvManagement-v1", num_envs=N)`` (this class is the registered
    ``vector_entry_point``) or ``InvManagementVectorEnv(N, ...)``; the other arguments are the
    single env's (``config``, ``ChainConfig`` fields or OR-Gym short names, ``time_feature``,
    ``sales_history``), plus ``autoreset_mode`` (an ``AutoresetMode`` or its value,
    ``"NextStep"``, ``"SameStep"``, ``"Disabled"``).

    ## Version History

    * v1: lost sales; v0: backlog, as the single envs.
    """

    metadata = {"render_modes": [], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(
        self,
        num_envs: int = 1,
        config: ChainConfig | None = None,
        *,
        time_feature: bool = False,
        sales_history: int = 0,
        autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP,
        **chain_params: Any,
    ) -> None:
        if (isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer))
                or num_envs < 1):
            raise ValueError(f"num_envs must be an integer >= 1, got {num_envs!r}")
        self.autoreset_mode = _autoreset_mode(autoreset_mode)
        # The single env resolves the arguments and builds the spaces, so the two cannot drift.
        single = InvManagementEnv(config, time_feature=time_feature, sales_history=sales_history,
                                  **chain_params)
        self.config = single.config
        self.time_feature = single.time_feature
        self.sales_history = single.sales_history
        self.num_envs = int(num_envs)
        self.metadata = {**self.metadata, "autoreset_mode": self.autoreset_mode}
        self.single_observation_space = single.observation_space
        self.single_action_space = single.action_space
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._generators: list[np.random.Generator | None] = [None] * self.num_envs
        self._groups: list[_Group] = []
        self._observations = np.zeros(self.observation_space.shape)
        self._ended = np.zeros(self.num_envs, dtype=bool)
        """(N,) sub-envs whose episode ended in the last step and that have not been reset."""

    @property
    def np_random(self) -> tuple[np.random.Generator, ...]:
        """The sub-envs' demand generators (as ``SyncVectorEnv.np_random``)."""
        return tuple(self._generator(i) for i in range(self.num_envs))

    def _generator(self, env: int) -> np.random.Generator:
        if self._generators[env] is None:
            self._generators[env], _ = seeding.np_random()
        return self._generators[env]

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        options = options or {}
        unknown = set(options) - set(_OPTIONS)
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; known: {list(_OPTIONS)}")
        envs = self._reset_mask(options.get("reset_mask"))
        seeds = self._seeds(seed)
        for i in envs:
            if seeds[i] is not None:
                self._generators[i], _ = seeding.np_random(seeds[i])
        state = core.reset(self.config, self._demand(envs, options.get("demand")))
        for group in self._groups:
            keep = ~np.isin(group.index, envs)
            if not keep.all():
                group.index, group.state = group.index[keep], group.state.take(np.flatnonzero(keep))
        self._groups = [group for group in self._groups if len(group.index)]
        self._start(_Group(envs, state))
        infos: dict[str, Any] = {}
        self._put_reset_info(infos, envs, state)
        return self._observations.copy(), infos

    def _reset_mask(self, mask: Any) -> np.ndarray:
        """The sub-envs a reset concerns: all, or those ``options["reset_mask"]`` marks."""
        if mask is None:
            return np.arange(self.num_envs)
        if not (isinstance(mask, np.ndarray) and mask.dtype == np.bool_
                and mask.shape == (self.num_envs,) and mask.any()):
            raise ValueError(f"options['reset_mask'] must be a boolean numpy array shaped "
                             f"({self.num_envs},) with at least one True, got {mask!r}")
        return np.flatnonzero(mask)

    def _seeds(self, seed: Any) -> list[int | None]:
        """One seed (or None) per sub-env: ``s + i`` for an int s, as ``SyncVectorEnv``."""
        if seed is None:
            return [None] * self.num_envs
        if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
            return [int(seed) + i for i in range(self.num_envs)]
        if isinstance(seed, (list, tuple)) and len(seed) == self.num_envs:
            return list(seed)
        raise ValueError(f"seed must be None, an int or a list of {self.num_envs} ints or None "
                         f"(one per sub-env), got {seed!r}")

    def _demand(self, envs: np.ndarray, given: Any) -> np.ndarray:
        """(k, T) demand paths of the sub-envs ``envs``: given, or drawn from their generators."""
        periods = self.config.periods
        if given is None:
            # One draw per sub-env from its own generator, exactly as the single env draws.
            return np.concatenate(
                [self.config.demand.sample(self._generator(i), 1, periods) for i in envs]
            )
        paths = np.asarray(given, dtype=np.float64)
        if paths.ndim == 1:
            return np.tile(paths, (len(envs), 1))
        if paths.ndim == 2 and paths.shape[0] == self.num_envs:
            return paths[envs]
        raise ValueError(f"options['demand'] must be one path of {periods} periods or one per "
                         f"sub-env, shaped ({periods},) or ({self.num_envs}, {periods}), got "
                         f"shape {paths.shape}")

    def _start(self, group: _Group) -> None:
        """Adds a group at period 0, merged with another at period 0 if there is one."""
        for other in self._groups:
            if other.state.period == 0:
                index = np.concatenate([other.index, group.index])
                order = np.argsort(index, kind="stable")
                demand = np.concatenate([other.state.demand, group.state.demand])[order]
                other.index, other.state = index[order], core.reset(self.config, demand)
                break
        else:
            self._groups.append(group)
        self._observations[group.index] = self._observe(group.state)
        self._ended[group.index] = False

    def _observe(self, state: core.ChainState) -> np.ndarray:
        """(k, size) observations of a group, as the single env's."""
        obs = core.observation(self.config, state)
        parts = [obs]
        if self.sales_history:
            parts.append(core.sales_history(state, self.sales_history))
        if self.time_feature:
            parts.append(np.full((state.episodes, 1), state.period / self.config.periods))
        return np.hstack(parts) if len(parts) > 1 else obs

    def _check_actions(self, actions: Any) -> np.ndarray:
        """The actions as a float64 array (N, S), or ValueError saying what is allowed."""
        envs, stages = self.num_envs, self.config.stages
        kinds = (f"actions must be {envs} x {stages} real numbers (int or float; not bool, "
                 f"complex or str), shaped ({envs}, {stages})")
        array = real_array(actions, kinds)
        if array.shape != (envs, stages):
            raise ValueError(f"actions must be shaped ({envs}, {stages}) (one order per stage of "
                             f"each sub-env), got shape {array.shape}")
        array = array.astype(np.float64, copy=False)
        finite = np.isfinite(array).all(axis=1)
        if not finite.all():
            raise ValueError(f"actions must hold finite numbers; got NaN or infinity for "
                             f"sub-envs {np.flatnonzero(~finite).tolist()}")
        return array

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if not self._groups:
            raise RuntimeError("call reset() before step()")
        actions = self._check_actions(actions)
        if self.autoreset_mode is AutoresetMode.DISABLED and self._ended.any():
            raise ValueError(f"sub-envs {np.flatnonzero(self._ended).tolist()} ended their "
                             "episode; with autoreset_mode DISABLED reset them first with "
                             "reset(options={'reset_mask': ...})")
        rewards = np.zeros(self.num_envs)
        terminations = np.zeros(self.num_envs, dtype=bool)
        infos: dict[str, Any] = {}
        # NEXT_STEP: groups whose episodes ended in the last step are reset instead of stepped.
        ended = [group for group in self._groups if group.state.done]
        for group in [group for group in self._groups if not group.state.done]:
            whole = len(group.index) == self.num_envs  # then index is 0 .. N-1: no gather
            group.state, out = core.step(
                self.config, group.state, actions if whole else actions[group.index]
            )
            self._observations[group.index] = self._observe(group.state)
            rewards[group.index] = out.reward
            terminations[group.index] = group.state.done
            if group.state.done and self.autoreset_mode is AutoresetMode.SAME_STEP:
                final_obs = np.empty(len(group.index), dtype=object)
                for j, env in enumerate(group.index):
                    final_obs[j] = self._observations[env].copy()
                self._put(infos, "final_obs", group.index, final_obs)
                self._put_step_info(infos.setdefault("final_info", {}), group.index, out)
                self._mark(infos, "final_info", group.index)
                ended.append(group)
            else:
                self._put_step_info(infos, group.index, out)
        if ended:
            self._groups = [group for group in self._groups if group not in ended]
            envs = np.sort(np.concatenate([group.index for group in ended]))
            state = core.reset(self.config, self._demand(envs, None))
            self._start(_Group(envs, state))
            self._put_reset_info(infos, envs, state)
        if self.autoreset_mode is not AutoresetMode.SAME_STEP:
            self._ended = terminations.copy()
        return (self._observations.copy(), rewards, terminations,
                np.zeros(self.num_envs, dtype=bool), infos)

    # Infos in Gymnasium's vector layout: infos[key] holds one row per sub-env, infos["_key"]
    # marks the sub-envs that gave the key (VectorEnv._add_info, written for a batch of rows).

    def _put(self, infos: dict[str, Any], key: str, envs: np.ndarray, values: np.ndarray) -> None:
        """Writes ``values`` (k, ...) into rows ``envs`` of ``infos[key]`` and marks them."""
        if key not in infos and len(envs) == self.num_envs:  # envs is 0 .. N-1: no scatter
            infos[key], infos[f"_{key}"] = values, np.ones(self.num_envs, dtype=bool)
            return
        if key not in infos:
            shape = (self.num_envs, *values.shape[1:])
            infos[key] = (np.full(shape, None, dtype=object) if values.dtype == object
                          else np.zeros(shape, dtype=values.dtype))
        infos[key][envs] = values
        self._mark(infos, key, envs)

    def _mark(self, infos: dict[str, Any], key: str, envs: np.ndarray) -> None:
        infos.setdefault(f"_{key}", np.zeros(self.num_envs, dtype=bool))[envs] = True

    def _put_reset_info(self, infos: dict[str, Any], envs: np.ndarray,
                        state: core.ChainState) -> None:
        """The single env's reset info: the period (0) and the demand path of each of ``envs``
        (``state`` holds their new episodes, in that order)."""
        self._put(infos, "period", envs, np.zeros(len(envs), dtype=np.int64))
        self._put(infos, "demand_path", envs, state.demand.copy())

    def _put_step_info(self, infos: dict[str, Any], envs: np.ndarray,
                       out: core.StepOutput) -> None:
        """The single env's step info: what happened in the period."""
        self._put(infos, "period", envs, np.full(len(envs), out.period, dtype=np.int64))
        # Copies of what the next state holds (demand paths, stock, backlog), so that changing
        # an info cannot change the episodes; the other arrays are the step's own.
        for key in ("demand", "backlog", "on_hand", "pipeline"):
            self._put(infos, key, envs, getattr(out, key).copy())
        for key in ("requests", "shipped", "arrivals", "sales", "lost_sales", "stage_profit"):
            self._put(infos, key, envs, getattr(out, key))


def _autoreset_mode(mode: Any) -> AutoresetMode:
    """``mode`` as an AutoresetMode, or ValueError listing the modes."""
    if isinstance(mode, AutoresetMode):
        return mode
    try:
        return AutoresetMode(mode)
    except ValueError:
        raise ValueError(f"autoreset_mode must be one of {[m.value for m in AutoresetMode]} "
                         f"(or an AutoresetMode), got {mode!r}") from None


def make_vector_env(num_envs: int = 1, **kwargs: Any) -> InvManagementVectorEnv:
    """``InvManagementVectorEnv(num_envs, **kwargs)``, the vector env without the registry."""
    return InvManagementVectorEnv(num_envs, **kwargs)


def register_vector_envs() -> None:
    """Makes :class:`InvManagementVectorEnv` the ``vector_entry_point`` of the registered
    ``echelon/InvManagement-v1`` and ``-v0`` (idempotent), so that ``gymnasium.make_vec(id,
    num_envs=N)`` builds it (``vectorization_mode="sync"`` still gives ``SyncVectorEnv``)."""
    for version in ("v1", "v0"):
        spec = gym.registry.get(f"echelon/InvManagement-{version}")
        if spec is not None and spec.vector_entry_point is None:
            spec.vector_entry_point = ENTRY_POINT
