"""Dataset collection: the logged transitions are the simulator's, episode by episode."""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import stats

from echelon import pipeline
from echelon._limits import SizeLimitError
from echelon.data.collect import Behaviour, CollectConfig, collect, collect_bytes
from echelon.data.dataset import OfflineDataset, dataset_fields
from echelon.data.dataset_file import load, save
from echelon.policies.base_stock import RequestMode
from echelon.policies.families import HeuristicSpec
from echelon.policies.search import Family, paper_grid
from echelon.sim import core
from echelon.sim.config import ChainConfig
from echelon.sim.demand import Poisson, run_streams
from echelon.sim.rollout import rollout, rollout_bytes

# A two-stage chain with a zero lead time, unlike the default in every parameter.
OTHER_CHAIN = ChainConfig(
    periods=12,
    initial_inventory=(50.0, 60.0),
    price=3.0,
    replenishment_cost=(1.2, 0.9, 0.4),
    unfulfilled_penalty=(0.2, 0.1, 0.05),
    holding_cost=(0.1, 0.05),
    capacity=(60.0, 50.0),
    lead_time=(0, 2),
    demand=Poisson(15.0),
    alpha=0.95,
)
CHAINS = {"v1": ChainConfig(), "v0": ChainConfig(backlog=True), "other": OTHER_CHAIN}


def levels(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def behaviours(chain: ChainConfig) -> list[Behaviour]:
    """One behaviour of each family and mode, with fractional levels the core truncates."""
    up, stages = np.arange(chain.stages), chain.stages
    return [
        Behaviour("raw", Family.BASE_STOCK, {"z": levels(80.5 + 100.0 * up)}, RequestMode.RAW),
        Behaviour("clip", Family.BASE_STOCK, {"z": levels(60.25 + 45.0 * up)}),
        Behaviour("ss", Family.SS, {"s": levels(40.0 + 60.0 * up), "S": levels(90.0 + 90.0 * up)}),
        Behaviour("time-aware", Family.TIME_AWARE,
                  {"z": levels(70.0 + 80.0 * up),
                   "last_order_period": [chain.periods // 2] * stages},
                  RequestMode.RAW),
    ]


def logged(chain: ChainConfig, episodes: int = 24, noise_std: float = 0.0, seed: int = 0,
           weights: list[float] | None = None) -> OfflineDataset:
    mixture = behaviours(chain)
    if weights is not None:
        mixture = [Behaviour(b.name, b.family, b.params, b.mode, w)
                   for b, w in zip(mixture, weights)]
    return collect(chain, mixture, CollectConfig(episodes=episodes, noise_std=noise_std),
                   np.random.SeedSequence(seed))


def per_episode(data: OfflineDataset, array: np.ndarray) -> np.ndarray:
    """(M, ...) rows as (E, T, ...)."""
    return array.reshape(data.episodes, data.chain.periods, *array.shape[1:])


def replay(data: OfflineDataset) -> dict[str, np.ndarray]:
    """Steps the core by hand with the logged actions on the logged demand, flattened like the
    dataset: observations, next observations, rewards and the log arrays."""
    chain = data.chain
    actions = per_episode(data, data.actions)
    state = core.reset(chain, per_episode(data, data.log["demand"]))
    frames: dict[str, list[np.ndarray]] = {name: [] for name in (
        "observations", "next_observations", "rewards", "log/sales", "log/on_hand",
        "log/shipped", "log/unfulfilled", "log/demand")}
    while not state.done:
        frames["observations"].append(core.observation(chain, state))
        state, out = core.step(chain, state, actions[:, state.period])
        frames["next_observations"].append(core.observation(chain, state))
        frames["rewards"].append(out.reward)
        for name in ("sales", "on_hand", "shipped", "unfulfilled", "demand"):
            frames[f"log/{name}"].append(getattr(out, name))
    return {name: np.stack(frame, axis=1).reshape(len(data), *frame[0].shape[1:])
            for name, frame in frames.items()}


def field(data: OfflineDataset, name: str) -> np.ndarray:
    return data.log[name[4:]] if name.startswith("log/") else getattr(data, name)


def assert_bitwise_equal(got: np.ndarray, want: np.ndarray, name: str) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape, name
    assert np.ascontiguousarray(got).tobytes() == np.ascontiguousarray(want).tobytes(), name


@pytest.mark.parametrize("noise_std", [0.0, 7.5], ids=["noiseless", "noisy"])
@pytest.mark.parametrize("name", sorted(CHAINS))
def test_replaying_the_logged_actions_gives_the_logged_transitions(name, noise_std):
    data = logged(CHAINS[name], noise_std=noise_std)
    replayed = replay(data)
    for field_name, want in replayed.items():
        assert_bitwise_equal(field(data, field_name), want, field_name)
    # The rewards are not trivially zero and some orders were truncated or clipped by the core.
    assert np.all(data.episode_returns() != 0)
    assert np.any(data.actions != data.log["shipped"])


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_each_episode_follows_its_recorded_behaviour(tmp_path, name):
    data = load(save(logged(CHAINS[name], episodes=40), tmp_path / "data.h5"))
    demand = per_episode(data, data.log["demand"])
    actions = per_episode(data, data.actions)
    episode_behaviour = data.episode_behaviour()
    np.testing.assert_array_equal(per_episode(data, data.behaviour_ids)[:, 0], episode_behaviour)
    assert np.all(per_episode(data, data.behaviour_ids) == episode_behaviour[:, None])
    assert sorted(set(episode_behaviour)) == [0, 1, 2, 3]  # every component is exercised
    for k, spec in enumerate(data.behaviour_policies):
        # Rebuilt from the file's metadata alone: the record is enough to reproduce the policy.
        behaviour = Behaviour.from_dict(spec)
        assert behaviour == Behaviour(spec["name"], Family(spec["family"]), spec["params"],
                                      RequestMode(spec["mode"]), spec["weight"])
        mine = episode_behaviour == k
        alone = rollout(data.chain, behaviour.policy(data.chain), demand[mine], record=True)
        assert np.array_equal(alone.trajectory["action"], actions[mine]), spec["name"]
        assert np.array_equal(alone.profit, data.episode_returns()[mine]), spec["name"]
        # ... and no other component would have logged the same actions.
        for j, other in enumerate(behaviours(data.chain)):
            if j != k:
                theirs = rollout(data.chain, other.policy(data.chain), demand[mine], record=True)
                assert not np.array_equal(theirs.trajectory["action"], actions[mine])


def test_behaviour_metadata_is_recorded():
    data = logged(ChainConfig(), noise_std=2.5)
    assert data.behaviour_policies == [b.to_dict(2.5) for b in behaviours(ChainConfig())]
    assert data.behaviour_policies[0] == {
        "name": "raw", "family": "base-stock", "params": {"z": [80.5, 180.5, 280.5]},
        "mode": "raw", "weight": 1.0, "noise_std": 2.5,
    }
    assert data.source == {"kind": "simulated", "episodes": 24, "noise_std": 2.5}
    assert data.seeds["collect_entropy"] == "0"
    assert data.seeds["collect_spawn_key"] == []


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_episodes_end_at_the_horizon_without_bootstrapping_across_them(name):
    chain = CHAINS[name]
    data = logged(chain, episodes=10)
    horizon = chain.periods
    np.testing.assert_array_equal(data.terminations, np.tile(np.arange(horizon) == horizon - 1, 10))
    assert data.terminations.dtype == np.bool_ and data.truncations.dtype == np.bool_
    assert not data.truncations.any()
    np.testing.assert_array_equal(data.periods, np.tile(np.arange(horizon), 10))
    np.testing.assert_array_equal(data.episode_ids, np.repeat(np.arange(10), horizon))

    replayed = replay(data)
    initial = core.observation(chain, core.reset(chain, np.zeros((1, horizon))))[0]
    terminal = np.flatnonzero(data.terminations)
    assert len(terminal) == 10 and terminal[-1] == len(data) - 1
    # A terminal step's next observation is the one after the horizon, from the same episode.
    np.testing.assert_array_equal(data.next_observations[terminal],
                                  replayed["next_observations"][terminal])
    for row in terminal[:-1]:
        assert data.episode_ids[row + 1] == data.episode_ids[row] + 1
        assert data.periods[row + 1] == 0
        np.testing.assert_array_equal(data.observations[row + 1], initial)
        # The next episode's start is not what the terminal step leads to.
        assert not np.array_equal(data.next_observations[row], data.observations[row + 1])
    # Within an episode, each next observation is the following observation.
    inner = np.flatnonzero(~data.terminations)
    np.testing.assert_array_equal(data.next_observations[inner], data.observations[inner + 1])


def test_weights_set_the_mixture_frequencies():
    chain = ChainConfig(periods=4)  # frequencies only; short episodes keep this fast
    weights = np.array([1.0, 2.0, 5.0, 0.5])
    episodes = 1500
    counts = np.bincount(logged(chain, episodes, weights=list(weights)).episode_behaviour(),
                         minlength=4)
    assert counts.sum() == episodes
    expected = episodes * weights / weights.sum()
    assert stats.chisquare(counts, expected).pvalue > 1e-3, counts
    # Equal weights give a different, near-uniform split on the same seed.
    equal = np.bincount(logged(chain, episodes).episode_behaviour(), minlength=4)
    assert stats.chisquare(equal).pvalue > 1e-3, equal
    assert stats.chisquare(counts).pvalue < 1e-12, counts
    assert np.argmax(counts) == 2 and np.argmin(counts) == 3


def test_a_behaviour_is_a_named_weighted_heuristic_spec():
    params = {"s": [40.0, 100.0, 160.0], "S": [90.0, 180.0, 270.0]}
    behaviour = Behaviour("ss", Family.SS, params, RequestMode.RAW, 2.0)
    spec = HeuristicSpec(Family.SS, RequestMode.RAW, params)
    assert behaviour.spec == spec and behaviour == Behaviour.from_spec("ss", spec, 2.0)
    assert (behaviour.family, behaviour.params, behaviour.mode) == (Family.SS, params,
                                                                    RequestMode.RAW)
    assert Behaviour("ss", "ss", params, "raw", 2.0) == behaviour  # values become the enums
    # The dataset's metadata: the same keys in the same order as before HeuristicSpec.
    record = behaviour.to_dict(0.5)
    assert list(record) == ["name", "family", "params", "mode", "weight", "noise_std"]
    assert record == {"name": "ss", "family": "ss", "params": params, "mode": "raw",
                      "weight": 2.0, "noise_std": 0.5}
    assert Behaviour.from_dict(record) == behaviour


@pytest.mark.parametrize("weight", [0.0, -1.0, float("nan"), float("inf")])
def test_weights_must_be_positive_and_finite(weight):
    with pytest.raises(ValueError, match="behaviour 'b': weight must be > 0"):
        Behaviour("b", Family.BASE_STOCK, {"z": [80.0, 180.0, 40.0]}, weight=weight)


def test_noise_changes_the_actions_reproducibly_and_keeps_them_non_negative():
    chain = ChainConfig()
    plain = logged(chain, noise_std=0.0)
    noisy = logged(chain, noise_std=10.0)
    again = logged(chain, noise_std=10.0)
    # The demand paths and the behaviour draw come from their own streams: the noise leaves them.
    np.testing.assert_array_equal(noisy.log["demand"], plain.log["demand"])
    np.testing.assert_array_equal(noisy.behaviour_ids, plain.behaviour_ids)
    assert np.mean(noisy.actions != plain.actions) > 0.5
    assert np.all(noisy.actions >= 0.0)
    assert np.any(noisy.actions == 0.0)  # the floor at zero binds (time-aware stops ordering)
    assert np.any(noisy.actions != np.floor(noisy.actions))
    for name in dataset_fields():
        assert_bitwise_equal(field(again, name), field(noisy, name), name)
    assert not np.array_equal(logged(chain, noise_std=10.0, seed=1).actions, noisy.actions)


def test_the_same_seed_gives_a_byte_identical_file(tmp_path):
    first = save(logged(ChainConfig()), tmp_path / "first.h5")
    time.sleep(1.1)  # a timestamp in the file would now differ
    second = save(logged(ChainConfig()), tmp_path / "second.h5")
    assert first.read_bytes() == second.read_bytes()
    other = save(logged(ChainConfig(), seed=1), tmp_path / "other.h5")
    assert other.read_bytes() != first.read_bytes()


def test_a_different_seed_gives_different_episodes():
    first, other = logged(ChainConfig(), seed=0), logged(ChainConfig(), seed=1)
    assert not np.array_equal(first.log["demand"], other.log["demand"])
    assert not np.array_equal(first.behaviour_ids, other.behaviour_ids)
    assert not np.array_equal(first.rewards, other.rewards)
    assert other.seeds["collect_entropy"] == "1"


def test_reusing_a_seed_sequence_gives_the_same_dataset():
    # collect() spawns its demand, draw and noise streams from the SeedSequence it is given. It
    # must not depend on how often that object was spawned before: the dataset records only the
    # seed's entropy and spawn key, which then would not identify the data.
    seed = np.random.SeedSequence(0)
    mixture, settings = behaviours(ChainConfig()), CollectConfig(episodes=8)
    first = collect(ChainConfig(), mixture, settings, seed)
    second = collect(ChainConfig(), mixture, settings, seed)
    assert first.seeds == second.seeds
    np.testing.assert_array_equal(second.log["demand"], first.log["demand"])
    np.testing.assert_array_equal(second.behaviour_ids, first.behaviour_ids)


def test_collection_paths_are_not_the_test_paths():
    chain, episodes = ChainConfig(), 200
    streams = run_streams(0)
    data = collect(chain, behaviours(chain), CollectConfig(episodes=episodes), streams.collect)
    collected = per_episode(data, data.log["demand"])
    test = chain.demand.sample(np.random.default_rng(run_streams(0).test), episodes, chain.periods)
    search = chain.demand.sample(np.random.default_rng(run_streams(0).search.spawn(1)[0]),
                                 episodes, chain.periods)
    assert collected.shape == test.shape == (episodes, chain.periods)
    for other in (test, search):
        # No collection path equals any test or search path, even shifted to another episode.
        shared = {row.tobytes() for row in collected} & {row.tobytes() for row in other}
        assert not shared
    # Same law, though: the mean demand is about 20 in both.
    assert abs(collected.mean() - 20.0) < 0.5 and abs(test.mean() - 20.0) < 0.5


def test_collect_needs_a_behaviour():
    with pytest.raises(ValueError, match="at least one behaviour policy"):
        collect(ChainConfig(), [], CollectConfig(episodes=2), np.random.SeedSequence(0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"episodes": 0}, "collect.episodes must be an integer >= 1"),
     ({"episodes": 2.0}, "collect.episodes must be an integer >= 1"),
     ({"episodes": True}, "collect.episodes must be an integer >= 1"),
     ({"noise_std": -0.1}, "collect.noise_std must be >= 0"),
     ({"noise_std": float("nan")}, "collect.noise_std must be >= 0")],
)
def test_collect_config_is_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CollectConfig(**kwargs)


def test_the_paper_recipe():
    start = time.perf_counter()
    run = pipeline.resolve("paper")
    result = pipeline.search_stage(run)
    data = pipeline.collect_stage(run, result)
    seconds = time.perf_counter() - start
    assert seconds < 10.0
    assert data.episodes == 2000 and len(data) == 60_000
    assert data.chain == ChainConfig()
    grid = {tuple(z) for z in paper_grid(3)}
    policies = data.behaviour_policies
    assert len(policies) == 5
    assert policies[0]["params"] == {"z": [80.0, 180.0, 40.0]}  # the paper's z*
    assert [p["name"] for p in policies] == [f"paper-base-stock-{k}" for k in range(1, 6)]
    assert len({tuple(p["params"]["z"]) for p in policies}) == 5
    for p in policies:
        assert tuple(p["params"]["z"]) in grid
        assert (p["family"], p["mode"], p["weight"], p["noise_std"]) == (
            "base-stock", "raw", 1.0, 0.0)
    counts = np.bincount(data.episode_behaviour(), minlength=5)
    assert stats.chisquare(counts).pvalue > 1e-3, counts  # equal weights
    assert data.seeds["run_seed"] == 0 and data.seeds["stream"] == "collect"
    assert not data.truncations.any() and data.terminations.sum() == 2000


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_collect_bytes_covers_the_demand_the_trajectory_and_the_dataset(name):
    chain = CHAINS[name]
    data = logged(chain, episodes=24)
    arrays = [data.observations, data.actions, data.rewards, data.next_observations,
              data.terminations, data.truncations, data.episode_ids, data.periods,
              data.behaviour_ids, *data.log.values()]
    dataset = sum(a.nbytes for a in arrays)
    trajectory = rollout_bytes(chain, 24, record=True)
    demand = 8 * 24 * chain.periods
    assert collect_bytes(chain, 24) >= dataset + trajectory + demand
    assert collect_bytes(chain, 24) == 24 * collect_bytes(chain, 1)


def test_collecting_300000_episodes_of_the_default_chain_is_refused_before_drawing(monkeypatch):
    # 300,000 episodes of 30 periods: 9 million rows of 66 observation values, 6 GiB of dataset
    # alone, and about 14 GiB while it is built from the trajectory.
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", "4")
    chain = ChainConfig()
    assert collect_bytes(chain, 300_000) > 4 * 2**30
    fit = 4 * 2**30 // collect_bytes(chain, 1)
    start = time.perf_counter()
    with pytest.raises(SizeLimitError, match=rf"collecting 300,000 episodes of 30 periods would "
                                             rf"need about 14\.\d GiB.*reduce collect\.episodes "
                                             rf"\(about {fit:,} fit\)"):
        collect(chain, behaviours(chain), CollectConfig(episodes=300_000),
                np.random.SeedSequence(0))
    assert time.perf_counter() - start < 1.0  # refused from the sizes, nothing simulated
    assert 80_000 < fit < 90_000


def test_a_collection_that_fits_under_the_limit_runs(monkeypatch):
    chain = ChainConfig()
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", str(collect_bytes(chain, 30) / 2**30))
    assert logged(chain, episodes=30).episodes == 30
    with pytest.raises(SizeLimitError, match="collect.episodes"):
        logged(chain, episodes=31)
