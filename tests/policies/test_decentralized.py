"""Decentralized base-stock: per-stage agents on local observations against the batched family."""

import numpy as np
import pytest

from echelon.policies.base_stock import (
    DecentralizedBaseStock,
    DecentralizedTimeAwareBaseStock,
    RequestMode,
)
from echelon.policies.decentralized import (
    DECENTRALIZED_FAMILIES,
    DecentralizedPolicy,
    StageBaseStock,
    decentralized_agents,
)
from echelon.policies.families import Family, HeuristicSpec, make_policy
from echelon.policies.search import (
    SearchConfig,
    Space,
    from_params,
    optimize,
    run_search,
    wide_bounds,
)
from echelon.run.baselines import BASELINES, DEFAULT_BASELINES, TUNED
from echelon.run.config import resolve
from echelon.run.stages import tune_baselines
from echelon.sim import ChainConfig, core
from echelon.sim.demand import Poisson
from echelon.sim.rollout import rollout
from echelon.sim.stage_view import local_observation, stage_chain

DEFAULT = ChainConfig()
# Two stages in v0 with a zero upstream lead time (the distributor sees only its on-hand).
TWO_STAGES_V0 = ChainConfig(
    periods=15, initial_inventory=(10.0, 50.0), price=2.5, replenishment_cost=(1.0, 0.6, 0.4),
    unfulfilled_penalty=(0.5, 0.2, 0.1), holding_cost=(0.1, 0.05), capacity=(30.0, 25.0),
    lead_time=(2, 0), backlog=True, demand=Poisson(15.0), alpha=0.99,
)
# Levels above the capacities (100, 90, 80 by default; 30, 25 above), so that clip and raw differ
# and the suppliers run short; and levels below them.
SPECS = {
    "default-high": (DEFAULT, {"z": [150.0, 300.0, 450.0], "last_order_period": [27, 21, 8]}),
    "default-low": (DEFAULT, {"z": [97.0, 172.0, 90.0], "last_order_period": [26, 20, 12]}),
    "two-stages-v0": (TWO_STAGES_V0, {"z": [70.0, 40.0], "last_order_period": [12, 13]}),
}


def _paths(config, count, seed):
    return config.demand.sample(np.random.default_rng(seed), count, config.periods)


def _spec(family, mode, params):
    keys = ("z",) if family is Family.DECENTRALIZED else ("z", "last_order_period")
    return HeuristicSpec(family, mode, {key: params[key] for key in keys})


@pytest.mark.parametrize("chain", list(SPECS))
@pytest.mark.parametrize("family", [Family.DECENTRALIZED, Family.DECENTRALIZED_TIME_AWARE])
@pytest.mark.parametrize("mode", list(RequestMode))
def test_per_stage_agents_reproduce_the_batched_family_exactly(chain, family, mode):
    config, params = SPECS[chain]
    spec = _spec(family, mode, params)
    paths = _paths(config, 200, 11)
    batched = rollout(config, spec.policy(config), paths, record=True)
    joint = decentralized_agents(config, spec)
    assert isinstance(joint, DecentralizedPolicy) and joint.reads_observation is False
    per_stage = rollout(config, joint, paths, record=True)
    assert np.array_equal(per_stage.profit, batched.profit)
    assert np.array_equal(per_stage.trajectory["action"], batched.trajectory["action"])


def test_clip_and_raw_differ_when_levels_exceed_the_capacities():
    config, params = SPECS["default-high"]
    paths = _paths(config, 50, 12)
    clip, raw = (rollout(config, _spec(Family.DECENTRALIZED, mode, params).policy(config),
                         paths, record=True) for mode in RequestMode)
    # Clipped requests never exceed the capacities; raw ones do.
    assert np.all(clip.trajectory["action"] <= np.array(config.capacity))
    assert np.any(raw.trajectory["action"] > np.array(config.capacity))
    assert not np.array_equal(clip.profit, raw.profit)


def test_per_episode_levels_act_as_one_policy_per_episode():
    config = DEFAULT
    levels = np.array([[150.0, 300.0, 450.0], [97.0, 172.0, 90.0], [60.0, 100.0, 40.0]])
    paths = _paths(config, 3, 13)
    batched = rollout(config, DecentralizedBaseStock(config, levels), paths).profit
    agents = DecentralizedPolicy(config, [StageBaseStock(levels[:, i], config.capacity[i])
                                          for i in range(config.stages)])
    assert np.array_equal(rollout(config, agents, paths).profit, batched)
    for row in range(3):
        alone = rollout(config, DecentralizedBaseStock(config, levels[row]), paths[row : row + 1])
        assert alone.profit[0] == batched[row]


def test_a_stage_agent_is_a_policy_of_its_one_stage_chain():
    # Its OR-Gym observation there is its local observation: the same orders as in the chain's
    # first period, and a rollout of the one-stage chain runs.
    config = DEFAULT
    agent = StageBaseStock(120.0, config.capacity[1])
    state = core.reset(config, _paths(config, 4, 14))
    obs = local_observation(config, state, 1)
    assert obs.shape == (4, 1 + config.lead_time[1])
    assert agent.act(obs, state).tolist() == [[20.0]] * 4  # 120 - 100 on hand, nothing ordered yet
    alone = stage_chain(config, 1)
    result = rollout(alone, agent, _paths(alone, 5, 15), record=True)
    assert result.trajectory["action"].shape == (5, alone.periods, 1)


# A hand-worked case ------------------------------------------------------------------------------

# Two stages, lead times of one period, capacities of 10, the distributor starting with 5 units,
# no demand: the distributor cannot fill the retailer's first request.
TINY = ChainConfig(periods=3, initial_inventory=(0.0, 5.0), price=2.0,
                   replenishment_cost=(1.0, 0.5, 0.25), unfulfilled_penalty=(0.2, 0.1, 0.05),
                   holding_cost=(0.1, 0.05), capacity=(10.0, 10.0), lead_time=(1, 1),
                   demand=[0.0] * 3)


def _actions(policy):
    return rollout(TINY, policy, np.zeros((1, 3)), record=True).trajectory["action"][0].tolist()


@pytest.mark.parametrize("joint", [False, True])
def test_known_answer_the_unfilled_request_still_looks_in_transit(joint):
    # Levels z = [8, 5].
    # Period 0: the retailer sees 0 on hand and no requests: it asks 8; the distributor sees 5:
    #   nothing. The distributor ships the 5 it has; 3 go unfilled (lost, v1).
    # Period 1: the retailer sees 0 on hand + its request of 8 = 8: nothing (it cannot know that
    #   only 5 are coming); the distributor sees 0: it asks 5.
    # Period 2: the retailer sees its 5 units and no recent request: it asks 3; the distributor
    #   sees 0 + its request of 5: nothing.
    spec = HeuristicSpec(Family.DECENTRALIZED, RequestMode.CLIP, {"z": [8.0, 5.0]})
    policy = decentralized_agents(TINY, spec) if joint else spec.policy(TINY)
    assert _actions(policy) == [[8.0, 0.0], [0.0, 5.0], [3.0, 0.0]]
    # Raw requests are the same here (none exceeds the capacity).
    raw = HeuristicSpec(Family.DECENTRALIZED, RequestMode.RAW, {"z": [8.0, 5.0]})
    assert _actions(decentralized_agents(TINY, raw) if joint else raw.policy(TINY)) == [
        [8.0, 0.0], [0.0, 5.0], [3.0, 0.0]]
    # Local base-stock (raw) sees the shipments: in period 1 its position is the 5 in transit,
    # and it asks the missing 3 (the distributor, empty, ships none of them).
    local = HeuristicSpec(Family.LOCAL, RequestMode.RAW, {"z": [8.0, 5.0]}).policy(TINY)
    assert _actions(local) == [[8.0, 0.0], [3.0, 5.0], [3.0, 0.0]]


def test_known_answer_clip_counts_what_was_requested_not_the_shortfall():
    # z = [12, 5]: the shortfall 12 is above the capacity 10. Clip asks 10 and then sees 10 of
    # 12 (asks 2 more); raw asks 12 and then sees all 12 (nothing). The last period: the
    # retailer holds the 5 shipped and sees its last request: clip 5 + 2, asks 5; raw 5 + 0,
    # asks 7. The distributor as before.
    clip = HeuristicSpec(Family.DECENTRALIZED, RequestMode.CLIP, {"z": [12.0, 5.0]})
    raw = HeuristicSpec(Family.DECENTRALIZED, RequestMode.RAW, {"z": [12.0, 5.0]})
    assert _actions(clip.policy(TINY)) == [[10.0, 0.0], [2.0, 5.0], [5.0, 0.0]]
    assert _actions(raw.policy(TINY)) == [[12.0, 0.0], [0.0, 5.0], [7.0, 0.0]]
    # The time-aware variant stops each stage after its last ordering period.
    timed = HeuristicSpec(Family.DECENTRALIZED_TIME_AWARE, RequestMode.CLIP,
                          {"z": [12.0, 5.0], "last_order_period": [1, -1]})
    assert _actions(timed.policy(TINY)) == [[10.0, 0.0], [2.0, 0.0], [0.0, 0.0]]
    assert _actions(decentralized_agents(TINY, timed)) == [[10.0, 0.0], [2.0, 0.0], [0.0, 0.0]]


# Against local base-stock ------------------------------------------------------------------------


def test_equals_local_base_stock_when_no_request_is_cut_short():
    # Stock and capacities far above any request: every request is filled in full, so what a
    # stage requested in its last L_i periods is exactly what is in transit to it.
    config = ChainConfig(initial_inventory=(1000.0, 1000.0, 1000.0), capacity=(1e6, 1e6, 1e6))
    paths = _paths(config, 100, 16)
    for mode in RequestMode:
        levels = np.array([120.0, 180.0, 260.0])
        local = rollout(config, make_policy(config, Family.LOCAL, levels, mode), paths, record=True)
        mine = rollout(config, make_policy(config, Family.DECENTRALIZED, levels, mode), paths,
                       record=True)
        assert np.array_equal(mine.trajectory["action"], local.trajectory["action"])
        assert np.array_equal(mine.profit, local.profit)


def test_differs_from_local_base_stock_when_the_supplier_runs_short():
    paths = _paths(DEFAULT, 100, 17)
    levels = np.array([97.0, 172.0, 90.0])
    local = rollout(DEFAULT, make_policy(DEFAULT, Family.LOCAL, levels), paths)
    mine = rollout(DEFAULT, make_policy(DEFAULT, Family.DECENTRALIZED, levels), paths)
    assert not np.array_equal(mine.profit, local.profit)


# Validation --------------------------------------------------------------------------------------


def test_the_family_policies_and_their_parameters():
    policy = make_policy(DEFAULT, Family.DECENTRALIZED_TIME_AWARE,
                         np.array([100.0, 130.0, 220.0, 26.0, 21.0, 8.0]), RequestMode.RAW)
    assert isinstance(policy, DecentralizedTimeAwareBaseStock)
    assert isinstance(policy.base, DecentralizedBaseStock) and policy.base.mode is RequestMode.RAW
    assert policy.last_order_period.tolist() == [26.0, 21.0, 8.0]
    with pytest.raises(ValueError, match="last_order_period must lie in"):
        make_policy(DEFAULT, Family.DECENTRALIZED_TIME_AWARE,
                    np.array([100.0, 130.0, 220.0, 30.0, 21.0, 8.0]))
    with pytest.raises(ValueError, match="levels has 2 rows"):
        state = core.reset(DEFAULT, _paths(DEFAULT, 3, 0))
        DecentralizedBaseStock(DEFAULT, np.ones((2, 3))).act(None, state)


def test_stage_agents_refuse_bad_inputs():
    state = core.reset(DEFAULT, _paths(DEFAULT, 2, 0))
    with pytest.raises(ValueError, match="level has 3 values"):
        StageBaseStock(np.ones(3), 10.0).act(np.zeros((2, 4)), state)
    with pytest.raises(ValueError, match="capacity must be >= 0"):
        StageBaseStock(1.0, float("nan"))
    with pytest.raises(ValueError, match="level must be finite"):
        StageBaseStock(float("inf"), 10.0)
    with pytest.raises(ValueError, match="one agent and one name per stage"):
        DecentralizedPolicy(DEFAULT, [StageBaseStock(1.0, 10.0)])
    with pytest.raises(ValueError, match="the retailer's agent must return"):
        DecentralizedPolicy(DEFAULT, [_Wide()] * 3).act(None, state)
    with pytest.raises(ValueError, match="per-stage agents are made of"):
        decentralized_agents(DEFAULT, HeuristicSpec(Family.LOCAL, "clip", {"z": [1, 2, 3]}))


class _Wide:
    """A stage agent that wrongly orders for every stage."""

    def act(self, obs, state):
        return np.zeros((len(obs), 3))


def test_a_stage_agent_with_a_history_sees_that_many_requests():
    class Seen:
        history = 2

        def act(self, obs, state):
            assert obs.shape[1] == 3  # on-hand and two requests
            return obs[:, :1] * 0.0

    policy = DecentralizedPolicy(DEFAULT, [Seen(), StageBaseStock(1.0, 1.0),
                                           StageBaseStock(1.0, 1.0)])
    assert policy.histories == (2, 5, 10)
    rollout(DEFAULT, policy, _paths(DEFAULT, 2, 0))


# Search and baselines ----------------------------------------------------------------------------


SMALL = dict(coarse_budget=27, starts=2, top_k=3)


@pytest.fixture(scope="module")
def searched():
    search_paths, rank_paths = _paths(DEFAULT, 30, 7), _paths(DEFAULT, 30, 8)
    return {family: optimize(DEFAULT, family, search_paths, rank_paths, **SMALL)
            for family in (Family.DECENTRALIZED, Family.DECENTRALIZED_TIME_AWARE)}


def test_the_decentralized_search_finds_sensible_levels(searched):
    result = searched[Family.DECENTRALIZED]
    lower, upper = wide_bounds(DEFAULT, Family.DECENTRALIZED)
    assert result.family is Family.DECENTRALIZED and len(result.ranked) == 3
    for cand in result.ranked:
        levels = from_params(Family.DECENTRALIZED, cand.params)
        assert np.all(levels >= lower) and np.all(levels <= upper)
    # The retailer holds about its demand over its lead time and a period (20 x 4 = 80) and
    # more; the best earns more than ordering nothing and a fixed guess.
    best = np.array(result.best.params["z"])
    assert 60.0 <= best[0] <= 200.0 and np.all(best > 0.0)
    paths = _paths(DEFAULT, 30, 8)
    nothing = rollout(DEFAULT, make_policy(DEFAULT, Family.DECENTRALIZED, np.zeros(3)), paths)
    guess = rollout(DEFAULT, make_policy(DEFAULT, Family.DECENTRALIZED,
                                         np.array([80.0, 100.0, 40.0])), paths)
    assert result.best.mean > max(nothing.profit.mean(), guess.profit.mean())


def test_the_time_aware_search_does_at_least_as_well_as_the_decentralized_one(searched):
    # Ordering to the end, its family is the decentralized one, and its start runs the
    # decentralized search first: on the search paths it can only do better.
    timed, plain = searched[Family.DECENTRALIZED_TIME_AWARE], searched[Family.DECENTRALIZED]
    assert max(c.search_mean for c in timed.ranked) >= max(c.search_mean for c in plain.ranked)
    lower, upper = wide_bounds(DEFAULT, Family.DECENTRALIZED_TIME_AWARE)
    for cand in timed.ranked:
        assert all(isinstance(v, int) and -1 <= v <= 29 for v in cand.params["last_order_period"])
        vector = from_params(Family.DECENTRALIZED_TIME_AWARE, cand.params)
        assert np.all(vector >= lower) and np.all(vector <= upper)


@pytest.mark.parametrize("family", [Family.DECENTRALIZED, Family.DECENTRALIZED_TIME_AWARE])
def test_run_search_of_each_family_on_a_few_episodes(family):
    settings = SearchConfig(space=Space.WIDE, family=family, mode=RequestMode.CLIP, episodes=5,
                            top_k=2)
    result = run_search(TWO_STAGES_V0, settings, np.random.SeedSequence(3))
    assert result.family is family and len(result.ranked) == 2
    assert len(result.best.params["z"]) == 2


def test_the_baselines_are_registered_off_by_default():
    assert BASELINES["decentralized"].tuned_family == "decentralized"
    assert BASELINES["decentralized-time-aware"].tuned_family == "decentralized-time-aware"
    assert not {"decentralized", "decentralized-time-aware"} & set(DEFAULT_BASELINES)
    # Appended after the others: each tuned baseline keeps its child of the search stream.
    assert TUNED[:4] == ["tuned", "time-aware", "decentralized", "decentralized-time-aware"]

def test_tune_baselines_tunes_the_decentralized_heuristics():
    run = resolve("quick", ["evaluate.tuning_episodes=5",
                            'evaluate.baselines=["decentralized", "decentralized-time-aware"]'])
    tuned = tune_baselines(run)
    assert list(tuned) == ["decentralized", "decentralized-time-aware"]
    for name, saved in tuned.items():
        spec = HeuristicSpec.from_dict(saved)
        assert spec.family in DECENTRALIZED_FAMILIES and spec.mode is RequestMode.CLIP
        # The saved heuristic is the per-stage agents' too.
        paths = _paths(run.chain, 5, 18)
        agents = decentralized_agents(run.chain, spec)
        assert np.array_equal(rollout(run.chain, spec.policy(run.chain), paths).profit,
                              rollout(run.chain, agents, paths).profit)
