"""Planning in a fitted model: time-aware search, the rolling scenario LP, policy specs."""

import json

import numpy as np
import pytest

from echelon import pipeline
from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.models.demand_fit import compare_laws, fit_demand, fitted_chain
from echelon.models.planning import (
    RollingScenarioLP,
    heuristic_spec,
    load_policy,
    plan_time_aware,
    policy_from_spec,
    rolling_lp_spec,
    save_spec,
)
from echelon.policies.base_stock import RequestMode
from echelon.policies.chain_lp import ScenarioLP, _PlanningLP
from echelon.policies.families import Family, HeuristicSpec, from_params, make_policy
from echelon.policies.lp import perfect_information_bound
from echelon.policies.receding import ShrinkingHorizonLP
from echelon.sim.config import ChainConfig
from echelon.sim.demand import DemandPath, Geometric, Poisson
from echelon.sim.rollout import rollout

_TWO_STAGES_BACKLOG = ChainConfig(
    periods=12, initial_inventory=(10.0, 50.0), price=2.5, replenishment_cost=(1.0, 0.6, 0.4),
    unfulfilled_penalty=(0.5, 0.2, 0.1), holding_cost=(0.1, 0.05), capacity=(30.0, 25.0),
    lead_time=(2, 0), backlog=True, demand=Poisson(15.0), alpha=0.99,
)
# Planner settings: moderate episode counts keep each search to a few seconds.
_PLAN_EPISODES = 100
_TEST_EPISODES = 500


def _paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean and standard error of the paired difference a - b (common random numbers)."""
    diff = a - b
    return float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))


def _true_paths(chain: ChainConfig, seed: int = 99) -> np.ndarray:
    return chain.demand.sample(np.random.default_rng(seed), _TEST_EPISODES, chain.periods)


@pytest.fixture(scope="module")
def paper_logs():
    """A small paper-recipe dataset of the default chain: the grid's top 5 experts, 200 episodes."""
    run = pipeline.resolve("paper", ["collect.episodes=200"])
    return pipeline.collect_stage(run, pipeline.search_stage(run))


def test_fitted_model_planner_is_within_two_percent_of_the_true_law_planner(paper_logs):
    fit = fit_demand(paper_logs, "poisson")
    assert fit.censored > 0 and fit.ci["mu"][0] < 20.0 < fit.ci["mu"][1]
    truth = paper_logs.chain
    seed = np.random.SeedSequence(7)
    planned = plan_time_aware(fitted_chain(paper_logs, fit), seed, _PLAN_EPISODES)
    benchmark = plan_time_aware(truth, seed, _PLAN_EPISODES)
    assert planned.model.demand == fit.law
    assert planned.spec["demand"] == {"law": "poisson", "mu": fit.params["mu"]}
    paths = _true_paths(truth)
    fitted_profit = rollout(truth, planned.policy(truth), paths).profit
    true_profit = rollout(truth, benchmark.policy(truth), paths).profit
    assert fitted_profit.mean() >= 0.98 * true_profit.mean()
    # And it is a good policy: far above the dataset's behaviour (the paper's experts).
    assert fitted_profit.mean() > paper_logs.episode_returns().mean() + 100.0


def test_misspecified_law_is_flagged_and_costs_profit():
    # Geometric demand (mean 20, variance 380) logged by a lean policy, then fitted as Poisson.
    truth = ChainConfig(demand=Geometric(0.05))
    behaviour = Behaviour("lean", Family.BASE_STOCK, {"z": [60.0, 150.0, 250.0]}, RequestMode.CLIP)
    logs = collect(truth, [behaviour], CollectConfig(episodes=200), np.random.SeedSequence(1))
    poisson = fit_demand(logs, "poisson")
    assert poisson.goodness_of_fit.misspecified  # reported by the fit itself ...
    ranked = compare_laws(logs)
    assert ranked[0].name == "geometric"  # ... and by the comparison of laws
    assert not ranked[0].goodness_of_fit.misspecified
    seed = np.random.SeedSequence(7)
    paths = _true_paths(truth)
    models = {"poisson": fitted_chain(logs, poisson), "geometric": fitted_chain(logs, ranked[0]),
              "true": truth}
    profit = {}
    for name, model in models.items():
        plan = plan_time_aware(model, seed, _PLAN_EPISODES)
        profit[name] = rollout(truth, plan.policy(truth), paths).profit
    loss, se = _paired(profit["poisson"], profit["true"])
    assert loss < -5.0 * se and loss < -0.05 * profit["true"].mean()
    # The law compare_laws prefers plans about as well as the truth.
    assert profit["geometric"].mean() >= 0.98 * profit["true"].mean()


def test_scenario_lp_with_identical_scenarios_is_the_planning_lp():
    rng = np.random.default_rng(3)
    for chain in (ChainConfig(), ChainConfig(backlog=True), _TWO_STAGES_BACKLOG):
        horizon = chain.periods - 4
        demand = rng.poisson(chain.demand.mean, horizon).astype(np.float64)
        on_hand = np.asarray(chain.initial_inventory) * 0.5
        arrivals = np.zeros((horizon, chain.stages))
        arrivals[1, 0] = 12.0
        value, solution = _PlanningLP(chain, horizon).solve(on_hand, arrivals, 4.0, demand)
        first = solution[: chain.stages]
        for scenarios in (1, 4):
            lp = ScenarioLP(chain, horizon, scenarios)
            same = np.tile(demand, (scenarios, 1))
            joint_value, joint_first = lp.solve(on_hand, arrivals, 4.0, same)
            assert joint_value == pytest.approx(value, abs=1e-6)
            np.testing.assert_allclose(joint_first, first, atol=1e-6)


def test_scenario_lp_value_is_between_mean_scenario_bounds():
    # Sharing the first period can only cost profit against planning each scenario alone.
    chain = ChainConfig()
    horizon = 10
    demand = np.random.default_rng(1).poisson(20.0, (5, horizon)).astype(np.float64)
    on_hand, arrivals = np.asarray(chain.initial_inventory), np.zeros((horizon, 3))
    single = _PlanningLP(chain, horizon)
    alone = np.mean([single.solve(on_hand, arrivals, 0.0, d)[0] for d in demand])
    shared, _ = ScenarioLP(chain, horizon, 5).solve(on_hand, arrivals, 0.0, demand)
    assert shared <= alone + 1e-6
    with pytest.raises(ValueError, match=r"shaped \(K, H\) = \(5, 10\)"):
        ScenarioLP(chain, horizon, 5).solve(on_hand, arrivals, 0.0, demand[:2])


def test_rolling_scenario_lp_respects_the_constraints_and_beats_the_mean_forecast_lp():
    chain = ChainConfig()
    paths = chain.demand.sample(np.random.default_rng(11), 8, chain.periods)
    policy = RollingScenarioLP(chain, np.random.default_rng(0), scenarios=8)
    result = rollout(chain, policy, paths, record=True)
    action, shipped = result.trajectory["action"], result.trajectory["shipped"]
    assert np.all(action == np.floor(action)) and np.all(action >= 0)
    assert np.all(action <= np.asarray(chain.capacity))
    # Whole, within capacity and within the upstream stages' start-of-period stock: all filled.
    np.testing.assert_array_equal(action, shipped)
    mean_forecast = rollout(chain, ShrinkingHorizonLP(chain), paths).profit
    assert result.profit.mean() > mean_forecast.mean()
    assert np.all(result.profit <= perfect_information_bound(chain, paths) + 1e-6)


def test_rolling_scenario_lp_runs_with_backlog():
    chain = _TWO_STAGES_BACKLOG
    paths = chain.demand.sample(np.random.default_rng(2), 4, chain.periods)
    result = rollout(chain, RollingScenarioLP(chain, np.random.default_rng(1), scenarios=4), paths,
                     record=True)
    action = result.trajectory["action"]
    assert np.all(action == np.floor(action)) and np.all(action >= 0)
    assert np.all(result.trajectory["unfulfilled"][:, :, 1:] == 0)  # its requests are filled
    assert np.all(result.profit <= perfect_information_bound(chain, paths) + 1e-6)


@pytest.mark.parametrize("backlog", [False, True])
def test_rolling_scenario_lp_with_a_known_path_realises_the_perfect_information_bound(backlog):
    path = np.random.default_rng(5).poisson(20.0, 30).astype(np.float64)
    chain = ChainConfig(demand=DemandPath(tuple(path)), backlog=backlog)
    policy = RollingScenarioLP(chain, np.random.default_rng(0), scenarios=2)
    profit = rollout(chain, policy, path[None]).profit
    np.testing.assert_allclose(profit, perfect_information_bound(chain, path[None]), atol=1e-6)


def test_rolling_scenario_lp_rejects_bad_arguments():
    with pytest.raises(ValueError, match="scenarios must be an integer >= 1"):
        RollingScenarioLP(ChainConfig(), np.random.default_rng(0), scenarios=0)
    with pytest.raises(ValueError, match="numpy.random.Generator"):
        RollingScenarioLP(ChainConfig(), 0)


def _actions(chain: ChainConfig, policy, paths: np.ndarray) -> np.ndarray:
    return rollout(chain, policy, paths, record=True).trajectory["action"]


def test_heuristic_spec_round_trip_gives_the_same_actions(tmp_path):
    chain = ChainConfig()
    params = {"z": [94.0, 214.0, 416.0], "last_order_period": [27, 21, 8]}
    spec = heuristic_spec(Family.TIME_AWARE, params, RequestMode.CLIP, demand=Poisson(19.9))
    # The saved JSON is the HeuristicSpec's, with the kind first and the law planned for last.
    assert list(spec) == ["kind", "family", "mode", "params", "demand"]
    assert spec == {"kind": "heuristic",
                    **HeuristicSpec(Family.TIME_AWARE, RequestMode.CLIP, params).to_dict(),
                    "demand": {"law": "poisson", "mu": 19.9}}
    path = save_spec(spec, tmp_path / "plan")
    assert path == tmp_path / "plan" / "policy.json"
    assert json.loads(path.read_text()) == spec
    paths = chain.demand.sample(np.random.default_rng(4), 20, chain.periods)
    direct = make_policy(chain, Family.TIME_AWARE, from_params(Family.TIME_AWARE, params))
    np.testing.assert_array_equal(_actions(chain, load_policy(tmp_path / "plan", chain), paths),
                                  _actions(chain, direct, paths))
    np.testing.assert_array_equal(_actions(chain, load_policy(path, chain), paths),
                                  _actions(chain, direct, paths))


def test_rolling_lp_spec_round_trip_gives_the_same_actions(tmp_path):
    chain = ChainConfig()
    spec = rolling_lp_spec(Poisson(19.8), scenarios=4, seed=5)
    save_spec(spec, tmp_path)
    paths = chain.demand.sample(np.random.default_rng(4), 3, chain.periods)
    loaded = load_policy(tmp_path, chain)
    assert isinstance(loaded, RollingScenarioLP) and loaded.demand == Poisson(19.8)
    np.testing.assert_array_equal(_actions(chain, loaded, paths),
                                  _actions(chain, policy_from_spec(spec, chain), paths))


def test_plan_result_spec_loads_as_the_planned_policy(tmp_path):
    chain = ChainConfig(periods=10, lead_time=(1, 2, 3))
    result = plan_time_aware(chain, np.random.SeedSequence(0), 20, top_k=1)
    assert result.spec["kind"] == "heuristic" and result.spec["params"] == result.params
    save_spec(result.spec, tmp_path)
    paths = chain.demand.sample(np.random.default_rng(1), 10, chain.periods)
    np.testing.assert_array_equal(_actions(chain, load_policy(tmp_path, chain), paths),
                                  _actions(chain, result.policy(chain), paths))
    assert json.loads(json.dumps(result.to_dict()))["spec"] == result.spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"kind": "oracle"}, "kind must be one of"),
        ({"kind": "heuristic", "family": "time-aware", "mode": "clip"}, r"missing \['params'\]"),
        ({"kind": "heuristic", "family": "magic", "mode": "clip", "params": {}}, "bad heuristic"),
        ({"kind": "rolling-lp", "demand": {"law": "poisson", "mu": 20}, "scenarios": 4, "seed": -1},
         "seed must be an integer >= 0"),
        ({"kind": "rolling-lp", "demand": {"law": "zipf"}, "scenarios": 4, "seed": 0},
         "demand.law must be one of"),
    ],
)
def test_bad_specs_are_rejected(tmp_path, spec, message):
    (tmp_path / "policy.json").write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=message):
        load_policy(tmp_path, ChainConfig())


def test_missing_spec_file_is_named(tmp_path):
    with pytest.raises(ValueError, match="no such policy spec file"):
        load_policy(tmp_path / "nothing", ChainConfig())
    with pytest.raises(ValueError, match="kind must be one of"):
        save_spec({"family": "time-aware"}, tmp_path)
