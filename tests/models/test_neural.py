"""Neural policies trained through the differentiable twin: classes, training, files, commands."""

import json
import math

import numpy as np
import pytest
import torch

from echelon.cli import main
from echelon.models import load_policy
from echelon.models.neural import (
    ARCHITECTURES,
    LevelsPlanner,
    NeuralPlanDiverged,
    NeuralPolicy,
    NeuralSettings,
    build_network,
    episode_profit,
    feature_size,
    state_features,
    train_neural,
)
from echelon.policies import TimeAwareBaseStock
from echelon.sim import ChainConfig
from echelon.sim import differentiable as twin
from echelon.sim.rollout import rollout

# A short chain keeps training tests to a second or two.
SHORT = ChainConfig(periods=8, lead_time=(1, 2, 1))
TINY = NeuralSettings(steps=20, batch=32, validation_episodes=40, evaluate_every=10,
                      hidden=(16,))


def _paths(chain, n=50, seed=5):
    return chain.demand.sample(np.random.default_rng(seed), n, chain.periods)


def _weights(network):
    return {k: v.clone() for k, v in network.state_dict().items()}


@pytest.mark.parametrize("field, value, message", [
    ("architecture", "rnn", "neural.architecture must be one of"),
    ("hidden", [], "neural.hidden must be a non-empty list"),
    ("hidden", [0], "neural.hidden"),
    ("steps", 0, "neural.steps must be an integer >= 1"),
    ("batch", 2.5, "neural.batch"),
    ("learning_rate", 0.0, "neural.learning_rate must be a number in"),
    ("learning_rate", float("nan"), "neural.learning_rate"),
    ("final_lr_fraction", 1.5, "neural.final_lr_fraction"),
    ("units", "round", "neural.units must be continuous or straight-through"),
    ("seed", -1, "neural.seed"),
    ("sales_history", -2, "neural.sales_history must be an integer >= 0"),
])
def test_settings_refuse_bad_values_naming_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        NeuralSettings(**{field: value})


def test_features_hold_the_markov_state():
    chain = ChainConfig()
    demand = torch.as_tensor(_paths(chain, 3), dtype=torch.float32)
    state = twin.reset(chain, demand)
    features = state_features(chain, state, scale=20.0)
    assert features.shape == (3, feature_size(chain)) == (3, 3 + 18 + 3 + 1 + 30)
    np.testing.assert_allclose(features[0, :3].numpy(), np.array(chain.initial_inventory) / 20)
    np.testing.assert_array_equal(features[0, 3:21].numpy(), 0.0)  # nothing in transit yet
    np.testing.assert_allclose(features[0, 21:24].numpy(), np.cumsum(chain.initial_inventory) / 20)
    assert features[0, 24] == 0.0 and features[0, 25] == 1.0 and features[0, 26:].sum() == 0.0
    assert feature_size(ChainConfig(backlog=True)) == feature_size(chain) + 4


def test_the_levels_class_contains_the_time_aware_base_stock():
    """A levels table of z up to each stage's last ordering period and 0 after, with a zero
    correction, plays exactly the time-aware base-stock in the NumPy core."""
    chain = ChainConfig()
    z, last = np.array([60.0, 180.0, 40.0]), np.array([26.0, 24.0, 18.0])
    network = build_network(chain, "levels", (8,), 20.0, torch.Generator().manual_seed(0))
    assert isinstance(network, LevelsPlanner)
    periods = np.arange(chain.periods)[:, None]
    with torch.no_grad():
        network.table.copy_(torch.tensor(np.where(periods <= last, z, 0.0) / 20.0))
    paths = _paths(chain)
    neural = rollout(chain, NeuralPolicy(network, chain), paths, record=True)
    heuristic = rollout(chain, TimeAwareBaseStock(chain, z, last), paths, record=True)
    np.testing.assert_array_equal(neural.trajectory["requests"], heuristic.trajectory["requests"])
    np.testing.assert_array_equal(neural.profit, heuristic.profit)


def test_the_sales_history_features_are_the_last_periods_sales_over_the_scale():
    chain = SHORT
    demand = torch.tensor([[30.0, 500.0, 4.0, 9.0, 0, 0, 0, 0]])
    state = twin.reset(chain, demand)
    sales = []
    for _ in range(3):
        state, out = twin.step(chain, state, torch.zeros(1, 3))
        sales.append(out.sales[0, 0].item())
    assert sales == [30.0, 70.0, 0.0]  # the retailer's 100 units ran out in period 1
    plain, seeing = state_features(chain, state, 10.0), state_features(chain, state, 10.0, 2)
    assert seeing.shape[1] == feature_size(chain, 2) == plain.shape[1] + 2
    width = feature_size(chain) - 1 - chain.periods  # the quantities, before the clock
    np.testing.assert_array_equal(seeing[0, width:width + 2].numpy(), [7.0, 0.0])
    np.testing.assert_array_equal(torch.cat([seeing[:, :width], seeing[:, width + 2:]], 1).numpy(),
                                  plain.numpy())


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_a_network_reading_sales_plays_the_same_in_the_core_and_loads(architecture, tmp_path):
    settings = NeuralSettings(**{**TINY.to_dict(), "architecture": architecture, "steps": 2,
                                 "sales_history": 3})
    plan = train_neural(SHORT, settings, tmp_path / "plan")
    assert plan.spec["sales_history"] == 3 and plan.network.sales_history == 3
    paths = _paths(SHORT)
    in_core = rollout(SHORT, plan.policy(SHORT), paths).profit
    with torch.no_grad():
        in_twin = episode_profit(SHORT, plan.network, torch.as_tensor(paths, dtype=torch.float32),
                                 units="straight-through").numpy()
    np.testing.assert_allclose(in_twin, in_core, rtol=1e-5)
    np.testing.assert_array_equal(rollout(SHORT, load_policy(tmp_path / "plan", SHORT), paths).profit,
                                  in_core)
    with pytest.raises(ValueError, match=r"neural.sales_history must be in 0 \.\. 8"):
        train_neural(SHORT, NeuralSettings(**{**TINY.to_dict(), "sales_history": 9}), None)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_the_numpy_evaluation_equals_the_twin_on_whole_units(architecture):
    network = build_network(SHORT, architecture, (16,), 20.0, torch.Generator().manual_seed(1))
    paths = _paths(SHORT)
    in_core = rollout(SHORT, NeuralPolicy(network, SHORT), paths).profit
    with torch.no_grad():
        in_twin = episode_profit(SHORT, network, torch.as_tensor(paths, dtype=torch.float32),
                                 units="straight-through").numpy()
    np.testing.assert_allclose(in_twin, in_core, rtol=1e-5)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_training_improves_on_the_initial_network_and_is_deterministic(architecture, tmp_path):
    settings = NeuralSettings(**{**TINY.to_dict(), "architecture": architecture,
                                 "learning_rate": 1e-2})
    first = train_neural(SHORT, settings, tmp_path / "a")
    second = train_neural(SHORT, settings, tmp_path / "b")
    start = first.history[0]
    assert start["step"] == 0 and math.isnan(start["train_profit"])
    assert first.validation_profit > start["validation_profit"] and first.best_step > 0
    assert first.validation_profit > max(r["validation_profit"] for r in first.history) - 1e-9
    for key, value in _weights(first.network).items():
        assert torch.equal(value, second.network.state_dict()[key]), key
    rows = (tmp_path / "a" / "metrics.csv").read_text().splitlines()
    assert rows[0] == "step,train_profit,validation_profit,learning_rate,seconds" and len(rows) == 4


def test_a_training_that_only_makes_it_worse_keeps_the_start(tmp_path):
    """One Adam step at a learning rate of 1 drives every level of a levels network below the
    positions: the starting network (the naive table) is kept."""
    settings = NeuralSettings(**{**TINY.to_dict(), "architecture": "levels", "learning_rate": 1.0,
                                 "steps": 1, "evaluate_every": 1})
    lines = []
    plan = train_neural(SHORT, settings, tmp_path / "plan", log=lines.append)
    assert plan.best_step == 0 and plan.spec["best_step"] == 0
    assert plan.validation_profit > plan.history[1]["validation_profit"]
    assert "no step improved on the starting network" in lines[-1]
    start = build_network(SHORT, "levels", (16,), plan.spec["scale"],
                          torch.Generator().manual_seed(0))
    paths = _paths(SHORT)
    np.testing.assert_array_equal(rollout(SHORT, plan.policy(SHORT), paths).profit,
                                  rollout(SHORT, NeuralPolicy(start, SHORT), paths).profit)


def test_a_network_left_without_gradient_goes_back_at_half_the_rate(tmp_path):
    """At a learning rate of 1 the levels fall below the positions and no gradient comes back:
    training returns to the best iterate at half the rate, as often as it takes, and ends no
    worse than its start."""
    settings = NeuralSettings(**{**TINY.to_dict(), "architecture": "levels", "learning_rate": 1.0})
    lines = []
    plan = train_neural(SHORT, settings, tmp_path / "plan", log=lines.append)
    backs = [line for line in lines if "no gradient" in line]
    assert backs and "at learning rate 0.5" in backs[0]
    if len(backs) > 1:
        assert "at learning rate 0.25" in backs[1]
    assert plan.validation_profit >= plan.history[0]["validation_profit"]
    # the metrics record the halved rate (the cosine schedule of the last step times it)
    from echelon.models.neural import _learning_rate_factor

    assert plan.history[-1]["learning_rate"] == pytest.approx(
        _learning_rate_factor(settings.steps - 1, settings) / 2 ** len(backs))


def test_resume_after_an_interruption_ends_with_the_uninterrupted_weights(tmp_path):
    whole = train_neural(SHORT, TINY, tmp_path / "whole")

    def interrupt(line):
        if "step 10:" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_neural(SHORT, TINY, tmp_path / "cut", log=interrupt)
    assert not (tmp_path / "cut" / "policy.json").exists()
    with pytest.raises(ValueError, match="resume"):
        train_neural(SHORT, TINY, tmp_path / "cut")
    resumed = train_neural(SHORT, TINY, tmp_path / "cut", resume=True)
    assert resumed.best_step == whole.best_step
    for key, value in _weights(whole.network).items():
        assert torch.equal(value, resumed.network.state_dict()[key]), key
    with pytest.raises(ValueError, match="cannot be resumed"):
        train_neural(SHORT, NeuralSettings(**{**TINY.to_dict(), "batch": 31}), tmp_path / "cut",
                     resume=True)


def test_a_loss_that_is_not_finite_stops_training_and_keeps_the_checkpoint(tmp_path):
    def interrupt(line):
        if "step 10:" in line:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_neural(SHORT, TINY, tmp_path, log=interrupt)
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for value in checkpoint["network"].values():
        value.fill_(float("nan"))
    torch.save(checkpoint, tmp_path / "checkpoint.pt")
    with pytest.raises(NeuralPlanDiverged, match="became nan at step 10.*kept in"):
        train_neural(SHORT, TINY, tmp_path, resume=True)


def test_a_trained_policy_loads_from_its_folder_and_refuses_damage(tmp_path):
    plan = train_neural(SHORT, TINY, tmp_path / "plan")
    spec = json.loads((tmp_path / "plan" / "policy.json").read_text())
    assert spec["kind"] == "neural" and spec["weights"] == "network.pt"
    paths = _paths(SHORT)
    loaded = load_policy(tmp_path / "plan", SHORT)
    np.testing.assert_array_equal(rollout(SHORT, loaded, paths).profit,
                                  rollout(SHORT, plan.policy(SHORT), paths).profit)
    # Another demand law is a world to act in; other dynamics are refused.
    load_policy(tmp_path / "plan", SHORT.replace(demand={"law": "poisson", "mu": 25.0}))
    with pytest.raises(ValueError, match="lead_time"):
        load_policy(tmp_path / "plan", ChainConfig(periods=8))
    weights = tmp_path / "plan" / "network.pt"
    weights.write_bytes(weights.read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match="sha256 mismatch"):
        load_policy(tmp_path / "plan", SHORT)
    weights.unlink()
    with pytest.raises(ValueError, match="weights are missing"):
        load_policy(tmp_path / "plan", SHORT)


def test_the_neural_baseline_trains_on_the_true_law():
    from echelon.run.baselines import BASELINES, DEFAULT_BASELINES

    baseline = BASELINES["neural"]
    assert "neural" not in DEFAULT_BASELINES and baseline.planner is not None
    chain = ChainConfig(periods=3, lead_time=(1,), initial_inventory=(10.0,), capacity=(30.0,),
                        replenishment_cost=(1.0, 0.5), unfulfilled_penalty=(0.5, 0.1),
                        holding_cost=(0.2,), price=2.0, demand={"law": "poisson", "mu": 5.0})
    policy = baseline.planner(chain)
    profit = rollout(chain, policy, _paths(chain, 200)).profit.mean()
    idle = rollout(chain, TimeAwareBaseStock(chain, [0.0], [-1.0]), _paths(chain, 200)).profit.mean()
    assert profit >= idle


# --- the command -------------------------------------------------------------------------------


@pytest.fixture
def logs(small_logs):
    return small_logs


def test_plan_neural_then_evaluate_it(capsys, logs, tmp_path):
    out = str(tmp_path / "neural")
    argv = ["plan", str(logs), "--family", "neural", "--architecture", "levels", "--steps", "4",
            "--batch", "16", "--out", out, "--json"]
    assert main(argv) == 0
    planned = json.loads(capsys.readouterr().out)
    assert planned["spec"]["architecture"] == "levels"
    assert planned["spec"]["demand"]["mu"] == pytest.approx(planned["fit"]["params"]["mean"])
    assert main(argv) == 2  # a finished plan is not replaced without --overwrite
    assert "already holds a result" in capsys.readouterr().err
    assert main([*argv, "--overwrite"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--policy", out, "--baselines", "oracle", "--episodes", "6",
                 "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["policies"]}
    assert rows["planned neural"]["kind"] == "model-based"
    assert rows["planned neural"]["mean"] <= rows["perfect-information bound"]["mean"]


def test_plan_refuses_neural_options_for_other_families(capsys, logs, tmp_path):
    assert main(["plan", str(logs), "--family", "time-aware", "--architecture", "mlp",
                 "--out", str(tmp_path / "p")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--architecture applies to --family neural only" in err
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_imitation_fits_the_network_to_a_teacher(architecture):
    from echelon.models.neural import imitate

    teacher = TimeAwareBaseStock(SHORT, [40.0, 60.0, 40.0], [6.0, 5.0, 6.0])
    network = build_network(SHORT, architecture, (32,), 20.0, torch.Generator().manual_seed(2))
    before = imitate(SHORT, network, teacher, 1, 1e-3, np.random.default_rng(0))
    after = imitate(SHORT, network, teacher, 300, 1e-2, np.random.default_rng(0))
    assert after < 0.2 * before
    paths = _paths(SHORT)
    close = rollout(SHORT, NeuralPolicy(network, SHORT), paths).profit.mean()
    target = rollout(SHORT, teacher, paths).profit.mean()
    assert abs(close - target) < 0.05 * abs(target)


def test_plan_neural_warm_started_from_a_bc_agent(capsys, logs, tmp_path):
    assert main(["train", "bc", "--dataset", str(logs), "--preset", "quick", "--epochs", "1",
                 "--out", str(tmp_path / "bc"), "--device", "cpu", "--json"]) == 0
    capsys.readouterr()
    assert main(["plan", str(logs), "--family", "neural", "--steps", "2", "--batch", "8",
                 "--warm-start", str(tmp_path / "bc"), "--out", str(tmp_path / "p"),
                 "--json"]) == 0
    spec = json.loads(capsys.readouterr().out)["spec"]
    assert spec["warm_start"] == str((tmp_path / "bc").resolve())
    assert main(["plan", str(logs), "--family", "time-aware", "--warm-start", str(tmp_path / "bc"),
                 "--out", str(tmp_path / "q")]) == 2
    assert "--warm-start applies to --family neural only" in capsys.readouterr().err
