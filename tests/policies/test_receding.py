"""The receding-horizon base: what both LP planners share (rounding, clipping, backlog, errors)."""

import copy
import dataclasses

import numpy as np
import pytest

from echelon.models import planning
from echelon.policies import lp
from echelon.policies.chain_lp import LPSolveError
from echelon.policies.receding import RecedingHorizonLP, RollingScenarioLP, ShrinkingHorizonLP
from echelon.sim import core
from echelon.sim.config import ChainConfig


class _Failing:
    """An LP stand-in whose every solve fails."""

    horizon = 30

    def solve(self, on_hand, arrivals, backlog, demand):
        raise LPSolveError("HiGHS model status 'Infeasible'")


class _Fixed(RecedingHorizonLP):
    """Plans the given first-period shipments in every state; counts the LPs it builds."""

    label = "fixed LP"

    def __init__(self, config: ChainConfig, planned, *, lp_stand_in=None) -> None:
        super().__init__(config)
        self.planned, self.lp_stand_in, self.built = np.asarray(planned), lp_stand_in, []

    def _build(self, horizon):
        self.built.append(horizon)
        return self.lp_stand_in or horizon

    def _plan(self, lp, state, arrivals, carried):
        if self.lp_stand_in is not None:
            return self._solve(lp, state, [1], arrivals, carried, np.zeros((1, 30)))
        assert arrivals.shape == (state.episodes, self.config.periods - state.period, 3)
        return np.broadcast_to(self.planned, (state.episodes, 3))


def _start(config: ChainConfig, episodes: int = 2) -> core.ChainState:
    return core.reset(config, np.full((episodes, config.periods), 20.0))


def test_plans_are_rounded_halves_up_and_floored_at_zero():
    # Default chain: capacities (100, 90, 80), start on-hand (100, 100, 200).
    config = ChainConfig()
    requests = _Fixed(config, [19.9999999, 3.5, -2.0]).act(None, _start(config))
    np.testing.assert_array_equal(requests, [[20.0, 4.0, 0.0]] * 2)


def test_plans_are_clipped_to_capacity_and_upstream_stock():
    config = ChainConfig()
    # 150 > capacity 100 = stage 1's on-hand; 95 > capacity 90; 80.6 rounds to 81 > 80.
    requests = _Fixed(config, [150.4, 95.0, 80.6]).act(None, _start(config))
    np.testing.assert_array_equal(requests, [[100.0, 90.0, 80.0]] * 2)


def test_v0_requests_are_net_of_the_backlog_the_core_adds_again():
    config = ChainConfig(backlog=True)
    state = _start(config)
    state = dataclasses.replace(state, backlog=np.array([[0.0, 10.0, 40.0, 5.0]] * 2))
    requests = _Fixed(config, [30.0, 30.0, 30.0]).act(None, state)
    np.testing.assert_array_equal(requests, [[20.0, 0.0, 25.0]] * 2)


def test_one_lp_per_remaining_horizon_rebuilt_after_a_copy():
    config = ChainConfig(periods=4, lead_time=(1, 1, 1))
    policy = _Fixed(config, [1.0, 1.0, 1.0])
    state = _start(config)
    policy.act(None, state)
    policy.act(None, state)
    assert policy.built == [4]
    state, _ = core.step(config, state, policy.act(None, state))
    policy.act(None, state)
    assert policy.built == [4, 3]
    assert copy.deepcopy(policy)._lps == {}


def test_a_failed_solve_names_the_planner_period_and_episode():
    config = ChainConfig()
    policy = _Fixed(config, [0.0, 0.0, 0.0], lp_stand_in=_Failing())
    with pytest.raises(LPSolveError, match=r"^fixed LP of period 0, episode 1: HiGHS model status"):
        policy.act(None, _start(config))


def test_both_planners_are_receding_horizon_lps_and_keep_their_old_homes():
    assert issubclass(ShrinkingHorizonLP, RecedingHorizonLP)
    assert issubclass(RollingScenarioLP, RecedingHorizonLP)
    assert lp.ShrinkingHorizonLP is ShrinkingHorizonLP
    assert planning.RollingScenarioLP is RollingScenarioLP
    assert lp.scheduled_arrivals is core.scheduled_arrivals
