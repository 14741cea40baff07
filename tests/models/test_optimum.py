"""The exact optimum by dynamic programming: known answers, the core's own expectimax, Monte
Carlo in the core, no heuristic above it, refusals, and the ``echelon optimum`` command."""

import json
import math

import numpy as np
import pytest

from echelon.cli import main
from echelon.models.optimum import (
    OptimalPolicy,
    default_caps,
    optimum_comparison,
    policy_value,
    solve_optimum,
    tuned_heuristic,
)
from echelon.policies.base_stock import EchelonBaseStock
from echelon.policies.families import Family
from echelon.sim import core
from echelon.sim.config import ChainConfig
from echelon.sim.demand import Binomial, DemandPath, MeanCurve, NegativeBinomial, Poisson
from echelon.sim.rollout import rollout

# One stage, OR-Gym's price and cost structure: price 2, the stage buys at 1.5 from a supplier
# that buys at 1.0, penalty 0.1 per unit of lost demand, holding 0.15.
_ONE_STAGE = dict(price=2.0, replenishment_cost=(1.5, 1.0), unfulfilled_penalty=(0.1, 0.075),
                  holding_cost=(0.15,), alpha=0.97)
_TWO_STAGES = ChainConfig(
    periods=8, initial_inventory=(2.0, 4.0), price=2.0, replenishment_cost=(1.5, 1.0, 0.75),
    unfulfilled_penalty=(0.1, 0.075, 0.05), holding_cost=(0.15, 0.1), capacity=(3.0, 3.0),
    lead_time=(1, 1), demand=Poisson(1.5), alpha=0.97,
)


def _one_stage(**changes) -> ChainConfig:
    return ChainConfig(**{**_ONE_STAGE, **changes})


def _monte_carlo(config: ChainConfig, policy, episodes: int, seed: int) -> tuple[float, float]:
    """Mean and standard error of the policy's episode reward in the core."""
    demand = config.demand.sample(np.random.default_rng(seed), episodes, config.periods)
    profit = rollout(config, policy, demand).profit
    return float(profit.mean()), float(profit.std(ddof=1) / math.sqrt(episodes))


# --- known answers ----------------------------------------------------------------------------


def test_one_period_value_is_the_hand_worked_newsvendor():
    # T = 1, L = 1: nothing ordered arrives, so the best request is 0 (each unit would cost the
    # supplier's 1.0) and the stage sells from its 2 units. With D ~ Poisson(1):
    # E min(2, D) = P(D>0) + P(D>1) = 2 - 3/e, E (2-D)^+ = 3/e, E (D-2)^+ = 3/e - 1, so
    # 2 (2 - 3/e) - 0.1 (3/e - 1) - 0.15 (3/e) = 4.1 - 6.75/e = 1.616814...
    config = _one_stage(periods=1, initial_inventory=(2.0,), capacity=(3.0,), lead_time=(1,),
                        demand=Poisson(1.0))
    result = solve_optimum(config)
    assert result.value == pytest.approx(4.1 - 6.75 / math.e, rel=1e-12)
    assert result.value == pytest.approx(1.616814, abs=1e-6)
    assert list(result.initial_requests) == [0]


def _expectimax(config: ChainConfig, support: np.ndarray, pmf: np.ndarray) -> dict[int, float]:
    """The value of each first request under the best history-dependent continuation.

    Brute force with the core itself and no state of our own: every node of the tree of
    requests (0 .. c+1, one past the capacity) and demands replays its whole history with
    ``core.reset`` and ``core.step`` to get the period's reward, and takes the expectation over
    demand outcomes and the maximum over requests, down to the horizon.
    """
    periods = config.periods
    choices = range(int(config.capacity[0]) + 2)
    pairs = [(q, d) for q in choices for d in support]

    def node(requests: list[int], demands: list[float]) -> dict[int, float]:
        n = len(requests)
        paths = np.array([[*demands, d, *[0.0] * (periods - n - 1)] for _, d in pairs])
        state = core.reset(config, paths)
        for m in range(n + 1):
            orders = [[requests[m] if m < n else q] for q, _ in pairs]
            state, out = core.step(config, state, np.array(orders, dtype=np.float64))
        values = dict.fromkeys(choices, 0.0)
        for (q, d), reward, p in zip(pairs, out.reward, np.tile(pmf, len(choices))):
            future = 0.0 if n == periods - 1 else max(node([*requests, q], [*demands, d]).values())
            values[q] += p * (reward + future)
        return values

    return node([], [])


def test_value_and_first_request_equal_the_cores_expectimax():
    config = _one_stage(periods=3, initial_inventory=(1.0,), capacity=(2.0,), lead_time=(1,),
                        unfulfilled_penalty=(0.5, 0.2), demand=Binomial(3, 0.5))
    support = np.arange(4.0)
    values = _expectimax(config, support, Binomial(3, 0.5).scipy().pmf(support))
    best = max(values, key=values.get)
    assert sorted(values.values())[-2] < values[best] - 1e-3  # a unique best first request
    result = solve_optimum(config)
    assert result.value == pytest.approx(values[best], rel=1e-12)
    assert list(result.initial_requests) == [best]
    assert best == 2 and values[3] < values[2]  # the request past the capacity only costs


# --- the core agrees --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lead_two():
    config = _one_stage(periods=12, initial_inventory=(4.0,), capacity=(4.0,), lead_time=(2,),
                        demand=Poisson(2.0))
    return config, solve_optimum(config)


def test_optimal_policy_in_the_core_earns_the_value(lead_two):
    config, result = lead_two
    mean, se = _monte_carlo(config, OptimalPolicy(result), 20_000, seed=11)
    assert abs(mean - result.value) < 4 * se
    assert policy_value(config, OptimalPolicy(result), caps=result.caps) == pytest.approx(
        result.value, rel=1e-12)


def test_exact_value_of_a_base_stock_policy_matches_the_core(lead_two):
    config, result = lead_two
    policy = EchelonBaseStock(config, np.array([7.0]))
    exact = policy_value(config, policy, caps=result.caps)
    mean, se = _monte_carlo(config, policy, 20_000, seed=12)
    assert abs(mean - exact) < 4 * se
    assert exact < result.value - 0.1


def test_no_tuned_heuristic_beats_the_optimum(lead_two):
    config, result = lead_two
    for family in (Family.BASE_STOCK, Family.TIME_AWARE):
        spec = tuned_heuristic(config, family, np.random.SeedSequence(5), episodes=50)
        policy = spec.policy(config)
        mean, se = _monte_carlo(config, policy, 5_000, seed=13)
        assert mean <= result.value + 3 * se
        assert policy_value(config, policy, caps=result.caps) <= result.value + 1e-9


def test_two_stage_chain_solves_and_its_policy_earns_the_value():
    result = solve_optimum(_TWO_STAGES)
    assert result.states == math.prod(
        (cap + 1) * 4 for cap in result.caps)  # on-hand 0..M_i and one slot of 0..3 per stage
    assert all(p < cap for p, cap in zip(result.max_position, result.caps))
    mean, se = _monte_carlo(_TWO_STAGES, OptimalPolicy(result), 20_000, seed=14)
    assert abs(mean - result.value) < 4 * se
    base_stock = policy_value(_TWO_STAGES, EchelonBaseStock(_TWO_STAGES, np.array([4.0, 7.0])),
                              caps=result.caps)
    assert base_stock < result.value


def test_over_dispersed_demand_solves_and_its_policy_earns_the_value():
    config = _one_stage(periods=10, initial_inventory=(4.0,), capacity=(8.0,), lead_time=(1,),
                        demand=NegativeBinomial(mu=3.0, dispersion=1.5))
    result = solve_optimum(config)
    mean, se = _monte_carlo(config, OptimalPolicy(result), 20_000, seed=15)
    assert abs(mean - result.value) < 4 * se
    # The same mean with Poisson counts is easier to serve: over-dispersion costs profit.
    assert solve_optimum(config.replace(demand=Poisson(3.0))).value > result.value


def test_a_binding_cap_is_raised_until_it_binds_nowhere(lead_two):
    config, result = lead_two
    small = solve_optimum(config, caps=(4,))
    assert small.rounds > 1 and small.caps[0] > 4
    assert small.value == pytest.approx(result.value, rel=1e-12)


# --- refusals ---------------------------------------------------------------------------------


def test_refuses_backlog_demand_paths_and_fractions():
    with pytest.raises(ValueError, match="backlog"):
        solve_optimum(_TWO_STAGES.replace(backlog=True))
    with pytest.raises(ValueError, match="i.i.d. demand law"):
        solve_optimum(_TWO_STAGES.replace(demand=DemandPath((1.0,) * 8)))
    with pytest.raises(ValueError, match="i.i.d. demand law"):
        solve_optimum(_TWO_STAGES.replace(demand=MeanCurve(level=1.5, season=4, amplitude=0.5)))
    with pytest.raises(ValueError, match="capacity must hold whole units"):
        solve_optimum(_TWO_STAGES.replace(capacity=(3.5, 3.0)))


def test_refuses_a_state_space_over_max_states_naming_its_size():
    config = ChainConfig(capacity=(30.0, 30.0, 30.0), lead_time=(3, 3, 3))
    caps = default_caps(config)
    states = math.prod((cap + 1) * 31**3 for cap in caps)
    with pytest.raises(ValueError, match="over max_states") as error:
        solve_optimum(config)
    assert f"{states * 31**3:,} state-action pairs" in str(error.value)
    assert "capacity" in str(error.value) and "lead_time" in str(error.value)


def test_optimal_policy_refuses_states_outside_its_table(lead_two):
    config, result = lead_two
    state = core.reset(config.replace(initial_inventory=(200.0,)), np.zeros((1, config.periods)))
    with pytest.raises(ValueError, match="outside the solved table"):
        OptimalPolicy(result).act(None, state)
    in_transit = np.zeros((1, 2, 1))
    assert list(result.requests(0, [[4.0]], in_transit)[0]) == list(result.initial_requests)
    with pytest.raises(ValueError, match="on-hand is 1.5, not whole units"):
        result.requests(0, [[1.5]], in_transit)


# --- the comparison and the command -----------------------------------------------------------


def test_comparison_takes_extra_policies_on_the_same_paths(lead_two):
    config, result = lead_two
    extra = {"z=7": EchelonBaseStock(config, np.array([7.0]))}
    report = optimum_comparison(config, 2_000, seed=3, extra=extra, result=result,
                                families=(), search_episodes=20)
    rows = report["policies"]
    assert list(rows) == ["optimal", "z=7"]
    assert rows["optimal"]["share_ci"][0] <= 1.0 <= rows["optimal"]["share_ci"][1]
    assert rows["z=7"]["difference"] < 0 and rows["z=7"]["share"] < 1.0
    assert report["perfect_information"]["share"] > 1.0
    with pytest.raises(ValueError, match="built in"):
        optimum_comparison(config, 10, extra={"optimal": extra["z=7"]}, result=result)


def _chain_file(tmp_path, **changes) -> str:
    config = _one_stage(periods=6, initial_inventory=(3.0,), capacity=(3.0,), lead_time=(1,),
                        demand=Poisson(1.5)).replace(**changes)
    path = tmp_path / "chain.json"
    path.write_text(json.dumps(config.to_dict()))
    return str(path)


def test_cli_optimum_prints_the_optimum_and_each_share(tmp_path, capsys):
    chain = _chain_file(tmp_path)
    assert main(["optimum", "--chain", chain, "--episodes", "400", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    value = report["optimum"]["value"]
    assert value == pytest.approx(solve_optimum(ChainConfig.from_dict(
        json.loads((tmp_path / "chain.json").read_text()))).value)
    assert set(report["policies"]) == {"optimal", "base-stock", "time-aware"}
    for row in report["policies"].values():
        assert row["mean"] <= value + 3 * row["se"]
        assert row["share"] == pytest.approx(row["mean"] / value)
    assert report["perfect_information"]["share"] > 1.0
    assert main(["optimum", "--chain", chain, "--episodes", "50"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"exact optimum of {chain}: expected discounted profit {value:.3f}")
    assert "perfect information" in out


def test_cli_optimum_refuses_bad_chains_in_one_line(tmp_path, capsys):
    for chain, message in ((_chain_file(tmp_path, backlog=True), "backlog"),
                           (str(tmp_path / "missing.json"), "no such file")):
        assert main(["optimum", "--chain", chain]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("echelon: error:") and message in err


def test_cli_optimum_scores_saved_policies_on_the_same_paths(tmp_path, capsys):
    from echelon.models.neural import NeuralSettings, train_neural

    chain = _chain_file(tmp_path)
    config = ChainConfig.from_dict(json.loads((tmp_path / "chain.json").read_text()))
    train_neural(config, NeuralSettings(architecture="levels", steps=30, batch=64, hidden=(8,),
                                        validation_episodes=50), tmp_path / "levels")
    assert main(["optimum", "--chain", chain, "--episodes", "300", "--policy",
                 str(tmp_path / "levels"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    row = report["policies"]["planned levels"]
    assert row["mean"] <= report["optimum"]["value"] + 3 * row["se"]
    assert row["share"] == pytest.approx(row["mean"] / report["optimum"]["value"])
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**config.to_dict(), "lead_time": [2]}))
    assert main(["optimum", "--chain", str(other), "--policy", str(tmp_path / "levels")]) == 2
    assert "lead_time" in capsys.readouterr().err
