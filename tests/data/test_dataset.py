"""The dataset: validation of every schema rule, the HDF5 round trip, atomic save, load errors."""

from __future__ import annotations

import copy
import dataclasses
import json
import re

import h5py
import numpy as np
import pytest

from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import (
    EXACT_SUM,
    MIN_UNIT_LIMIT,
    SCHEMA_VERSION,
    DatasetError,
    OfflineDataset,
    dataset_fields,
    reward_limit,
    unit_limit,
)
from echelon.data.dataset_file import load, save
from echelon.policies.base_stock import RequestMode
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig
from echelon.sim.demand import Poisson

EPISODES, PERIODS = 4, 30


def levels(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def make(chain: ChainConfig | None = None, episodes: int = EPISODES) -> OfflineDataset:
    chain = chain or ChainConfig()
    up = np.arange(chain.stages)
    behaviours = [
        Behaviour("raw", Family.BASE_STOCK, {"z": levels(80.5 + 100.0 * up)}, RequestMode.RAW),
        Behaviour("clip", Family.BASE_STOCK, {"z": levels(60.0 + 45.0 * up)}),
    ]
    return collect(chain, behaviours, CollectConfig(episodes=episodes, noise_std=3.0),
                   np.random.SeedSequence(5), seeds_info={"run_seed": 5})


@pytest.fixture(scope="module")
def data() -> OfflineDataset:
    return make()


def field(data: OfflineDataset, name: str) -> np.ndarray:
    return data.log[name[4:]] if name.startswith("log/") else getattr(data, name)


def assert_same(got: OfflineDataset, want: OfflineDataset) -> None:
    for name in dataset_fields():
        a, b = field(got, name), field(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert set(got.log) == set(want.log)
    assert got.chain == want.chain
    assert got.behaviour_policies == want.behaviour_policies
    assert got.seeds == want.seeds
    assert got.source == want.source


def with_field(data: OfflineDataset, name: str, value: np.ndarray) -> OfflineDataset:
    """A copy with one field replaced, validated again (``dataclasses.replace``)."""
    if name.startswith("log/"):
        return dataclasses.replace(data, log={**data.log, name[4:]: value})
    return dataclasses.replace(data, **{name: value})


def edited(data: OfflineDataset, name: str, edit) -> OfflineDataset:
    array = field(data, name).copy()
    edit(array)
    return with_field(data, name, array)


def test_fields_are_the_schema(data):
    assert dataset_fields() == [
        "observations", "actions", "rewards", "next_observations", "terminations",
        "truncations", "episode_ids", "periods", "behaviour_ids",
        "log/sales", "log/on_hand", "log/shipped", "log/unfulfilled", "log/demand",
    ]
    m, d, s = EPISODES * PERIODS, 33, 3
    shapes = {"observations": (m, d), "actions": (m, s), "rewards": (m,),
              "next_observations": (m, d), "log/sales": (m, s + 1), "log/on_hand": (m, s),
              "log/shipped": (m, s), "log/unfulfilled": (m, s + 1)}
    for name in dataset_fields():
        assert field(data, name).shape == shapes.get(name, (m,)), name
    assert len(data) == m and data.episodes == EPISODES


def test_save_load_round_trip(tmp_path, data):
    path = save(data, tmp_path / "sub" / "data.h5")
    assert path == tmp_path / "sub" / "data.h5"
    assert sorted(p.name for p in path.parent.iterdir()) == ["data.h5"]  # no temporary file left
    back = load(path)
    assert_same(back, data)
    assert back.seeds["run_seed"] == 5 and back.source["noise_std"] == 3.0
    with h5py.File(path, "r") as f:
        assert f.attrs["schema_version"] == SCHEMA_VERSION
        assert set(f) == {*dataset_fields()[:9], "log"}
        assert set(f["log"]) == {"sales", "on_hand", "shipped", "unfulfilled", "demand"}
    # Saving what was loaded gives the same bytes.
    assert save(back, tmp_path / "again.h5").read_bytes() == path.read_bytes()


def test_round_trip_of_another_chain_with_unobserved_demand(tmp_path):
    chain = ChainConfig(periods=12, initial_inventory=(50.0, 60.0),
                        replenishment_cost=(1.2, 0.9, 0.4), unfulfilled_penalty=(0.2, 0.1, 0.05),
                        holding_cost=(0.1, 0.05), capacity=(60.0, 50.0), lead_time=(0, 2), backlog=True)
    data = make(chain, episodes=3)
    demand = data.log["demand"].copy()
    demand[::5] = np.nan  # a real log sees sales only
    data = with_field(data, "log/demand", demand)
    back = load(save(data, tmp_path / "data.h5"), chain=chain)
    assert_same(back, data)
    assert np.isnan(back.log["demand"]).sum() == np.isnan(demand).sum()


def bad_shapes():
    m = EPISODES * PERIODS
    return [
        ("observations", np.zeros((m, 32)),
         rf"observations must be shaped \({m}, 33\), got \({m}, 32\) "
         r"\(the chain's observation has 33 entries\)"),
        ("next_observations", np.zeros((m, 33, 1)),
         rf"next_observations must be shaped \({m}, 33\), got \({m}, 33, 1\)"),
        ("actions", np.zeros((m, 2)),
         rf"actions must be shaped \({m}, 3\), got \({m}, 2\) \(the chain has 3 ordering stages\)"),
        ("terminations", np.zeros(m - 1, dtype=bool),
         rf"terminations must be shaped \({m},\), got \({m - 1},\)"),
        ("behaviour_ids", [0] * m, rf"behaviour_ids must be shaped \({m},\), got list"),
        ("log/sales", np.zeros((m, 3)), rf"log/sales must be shaped \({m}, 4\), got \({m}, 3\)"),
        ("log/demand", np.zeros((m, 1)), rf"log/demand must be shaped \({m},\), got \({m}, 1\)"),
        ("rewards", np.zeros((m, 1)), "rewards must be a non-empty one-dimensional array"),
        ("rewards", np.zeros(0), "rewards must be a non-empty one-dimensional array"),
    ]


@pytest.mark.parametrize(("name", "value", "message"), bad_shapes(),
                         ids=[f"{case[0]}-{i}" for i, case in enumerate(bad_shapes())])
def test_validate_names_a_wrongly_shaped_field(data, name, value, message):
    with pytest.raises(DatasetError, match=message):
        with_field(data, name, value)


@pytest.mark.parametrize(
    ("name", "dtype", "message"),
    [("episode_ids", np.int32, "episode_ids must have dtype int64, got int32"),
     ("terminations", np.int64, "terminations must have dtype bool, got int64"),
     ("rewards", np.float32, "rewards must have dtype float64, got float32"),
     ("log/on_hand", np.int64, "log/on_hand must have dtype float64, got int64")],
)
def test_validate_rejects_a_wrong_dtype(data, name, dtype, message):
    with pytest.raises(DatasetError, match=message):
        with_field(data, name, field(data, name).astype(dtype))


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("rewards", np.nan, "rewards holds NaN or infinite values"),
     ("rewards", -np.inf, "rewards holds NaN or infinite values"),
     ("observations", np.nan, "observations holds NaN or infinite values"),
     ("next_observations", np.inf, "next_observations holds NaN or infinite values"),
     ("actions", np.nan, "actions holds NaN or infinite values"),
     ("log/sales", np.nan, "log/sales holds NaN or infinite values"),
     ("log/demand", np.inf, r"log/demand must be >= 0 or NaN \(unobserved\)"),
     ("log/demand", -1.0, r"log/demand must be >= 0 or NaN \(unobserved\)")],
)
def test_validate_rejects_non_finite_values(data, name, value, message):
    def put(array):
        array.reshape(len(array), -1)[37, 0] = value
    with pytest.raises(DatasetError, match=message):
        edited(data, name, put)


def test_unobserved_demand_is_allowed(data):
    demand = np.full(len(data), np.nan)
    assert np.isnan(with_field(data, "log/demand", demand).log["demand"]).all()


def test_validate_rejects_a_missing_log_field(data):
    log = {k: v for k, v in data.log.items() if k != "shipped"}
    with pytest.raises(DatasetError, match=re.escape("log is missing ['shipped']")):
        dataclasses.replace(data, log=log)


def test_validate_rejects_broken_episode_structure(data):
    last = PERIODS - 1
    cases = [
        # The last step of episode 1 lost its flag: the file looks cut short.
        ("terminations", lambda a: a.__setitem__(PERIODS + last, False),
         r"episode 1 does not end with a terminated or truncated step \(is the file cut short\?\)"),
        # A terminal flag in the middle of episode 0.
        ("terminations", lambda a: a.__setitem__(10, True),
         "a terminated or truncated step is followed by a step of the same episode"),
        ("truncations", lambda a: a.__setitem__(10, True),
         "a terminated or truncated step is followed by a step of the same episode"),
        # Episode 0 continues after episode 1: not contiguous.
        ("episode_ids", lambda a: a.__setitem__(slice(2 * PERIODS, 3 * PERIODS), 0),
         r"episode_ids must run 0, 1, 2, \.\.\. in order, each episode contiguous"),
        # Episode ids skipping 2.
        ("episode_ids", lambda a: a.__setitem__(slice(2 * PERIODS, None), a[2 * PERIODS:] + 1),
         r"episode_ids must run 0, 1, 2, \.\.\. in order"),
        ("episode_ids", lambda a: a.__setitem__(slice(None), a + 1),
         "episode_ids must run 0, 1, 2"),
        # Period 5 repeated in episode 2.
        ("periods", lambda a: a.__setitem__(2 * PERIODS + 6, 5),
         "periods must increase by one within an episode"),
        ("periods", lambda a: a.__setitem__(0, 1),
         "periods must increase by one within an episode"),
        ("periods", lambda a: a.__setitem__(slice(None), a + 1), r"periods must lie in \[0, 29\]"),
        ("next_observations", lambda a: a.__setitem__((12, 0), a[12, 0] + 1),
         "next_observations must equal the following step's observations"),
        ("behaviour_ids", lambda a: a.__setitem__(slice(0, PERIODS), 2),
         r"behaviour_ids must lie in \[-1, 1\] \(2 behaviour policies\)"),
        ("behaviour_ids", lambda a: a.__setitem__(slice(0, PERIODS), -2),
         r"behaviour_ids must lie in \[-1, 1\]"),
        ("truncations", lambda a: a.__setitem__(last, True),
         "a step cannot be both terminated and truncated"),
    ]
    for name, edit, message in cases:
        with pytest.raises(DatasetError, match=message):
            edited(data, name, edit)


def test_a_truncation_at_the_horizon_is_not_a_termination(data):
    # Swapping the horizon's flag from terminated to truncated breaks the rule that the horizon
    # terminates an episode.
    terminations, truncations = data.terminations.copy(), data.truncations.copy()
    terminations[PERIODS - 1], truncations[PERIODS - 1] = False, True
    message = r"terminations must be set exactly on the last period \(29\)"
    with pytest.raises(DatasetError, match=message):
        dataclasses.replace(data, terminations=terminations, truncations=truncations)


def test_a_truncated_episode_is_valid(data):
    # Episode 3 cut after period 19 and flagged truncated: allowed (real logs may stop early).
    keep = np.arange(len(data)) < 3 * PERIODS + 20
    truncations = data.truncations.copy()
    truncations[3 * PERIODS + 19] = True
    short = dataclasses.replace(
        data,
        **{name: field(data, name)[keep] for name in dataset_fields()[:9] if name != "truncations"},
        truncations=truncations[keep], log={k: v[keep] for k, v in data.log.items()},
    )
    assert short.episodes == 4 and len(short) == 3 * PERIODS + 20
    assert short.terminations.sum() == 3 and short.truncations.sum() == 1


def test_unknown_behaviour_is_allowed(data):
    unknown = dataclasses.replace(data, behaviour_ids=np.full(len(data), -1), behaviour_policies=[])
    assert np.all(unknown.episode_behaviour() == -1)


def test_select_episodes_renumbers_and_keeps_the_given_order(data):
    keep = np.array([3, 0, 2])
    chosen = data.select_episodes(keep)
    assert chosen.episodes == 3 and len(chosen) == 3 * PERIODS
    np.testing.assert_array_equal(chosen.episode_ids, np.repeat([0, 1, 2], PERIODS))
    for new, old in enumerate(keep):
        new_rows, old_rows = chosen.episode_ids == new, data.episode_ids == old
        for name in dataset_fields():
            if name != "episode_ids":
                np.testing.assert_array_equal(field(chosen, name)[new_rows],
                                              field(data, name)[old_rows], err_msg=name)
    np.testing.assert_array_equal(chosen.episode_returns(), data.episode_returns()[keep])
    np.testing.assert_array_equal(chosen.episode_behaviour(), data.episode_behaviour()[keep])
    assert chosen.behaviour_policies == data.behaviour_policies
    assert chosen.source == {**data.source, "selected_episodes": 3}
    assert data.select_episodes(np.array([1])).episodes == 1


def test_episode_returns_are_the_sums_of_rewards(data):
    returns = data.episode_returns()
    assert returns.shape == (EPISODES,)
    want = [data.rewards[data.episode_ids == e].sum() for e in range(EPISODES)]
    np.testing.assert_allclose(returns, want, rtol=1e-13)
    assert np.all(returns > 0)
    np.testing.assert_array_equal(data.episode_behaviour(), data.behaviour_ids[::PERIODS])


# --- load ---------------------------------------------------------------------------------------


def rejected(path, message: str):
    """Expects a DatasetError whose message is the path, then exactly ``message``."""
    return pytest.raises(DatasetError, match=re.escape(f"{path}: {message}"))


@pytest.fixture
def saved(tmp_path, data):
    return save(data, tmp_path / "data.h5")


def test_load_rejects_a_missing_file(tmp_path):
    with rejected(tmp_path / "absent.h5", "no such dataset file"):
        load(tmp_path / "absent.h5")
    with pytest.raises(DatasetError, match="no such dataset file"):
        load(tmp_path)  # a folder


def test_load_rejects_a_truncated_file(saved):
    content = saved.read_bytes()
    saved.write_bytes(content[: len(content) // 2])
    with rejected(saved, "not a readable HDF5 file (truncated or corrupt?)"):
        load(saved)


def test_load_rejects_a_file_that_is_not_hdf5(tmp_path):
    path = tmp_path / "data.h5"
    path.write_text("episode,period\n0,0\n")
    with pytest.raises(DatasetError, match="not a readable HDF5 file.*file signature not found"):
        load(path)
    path.write_bytes(b"")
    with pytest.raises(DatasetError, match="not a readable HDF5 file"):
        load(path)


def test_load_rejects_an_hdf5_file_without_a_schema_version(saved):
    with h5py.File(saved, "r+") as f:
        del f.attrs["schema_version"]
    with rejected(saved, "no schema_version attribute; not an echelon dataset"):
        load(saved)


def test_load_rejects_another_schema_version(saved):
    with h5py.File(saved, "r+") as f:
        f.attrs["schema_version"] = 2
    with rejected(saved, "schema version 2, this echelon reads version 1"):
        load(saved)


@pytest.mark.parametrize("name", ["rewards", "log/demand", "log"])
def test_load_rejects_a_missing_field(saved, name):
    with h5py.File(saved, "r+") as f:
        del f[name]
    missing = "log/sales" if name == "log" else name
    with rejected(saved, f"missing field {missing}"):
        load(saved)


def test_load_rejects_a_missing_attribute(saved):
    with h5py.File(saved, "r+") as f:
        del f.attrs["seeds"]
    # h5py's KeyError carries its own wording around the name.
    with pytest.raises(DatasetError, match=f"{re.escape(str(saved))}: missing attribute .*'seeds'"):
        load(saved)


def test_load_rejects_a_bad_chain_attribute(saved):
    with h5py.File(saved, "r+") as f:
        f.attrs["chain"] = '{"periods": 0}'
    with rejected(saved, "bad chain attribute: periods must be"):
        load(saved)


def test_load_validates_the_content(saved):
    with h5py.File(saved, "r+") as f:
        f["rewards"][3] = np.nan
    with rejected(saved, "rewards holds NaN or infinite values"):
        load(saved)


def test_load_rejects_a_file_of_another_chain(saved, tmp_path):
    assert load(saved, chain=ChainConfig(backlog=True)).episodes == EPISODES  # same sizes: fine
    with rejected(saved, "observation size is 33, the env expects 6"):
        load(saved, chain=ChainConfig(lead_time=(1, 1, 1)))
    # A 3-stage file (observation size 6) read for a 2-stage env with the same observation size.
    small = save(make(ChainConfig(lead_time=(1, 1, 1)), episodes=2), tmp_path / "small.h5")
    two_stages = ChainConfig(initial_inventory=(100.0, 100.0), replenishment_cost=(1.5, 1.0, 0.5),
                             unfulfilled_penalty=(0.1, 0.05, 0.025), holding_cost=(0.15, 0.1),
                             capacity=(100.0, 90.0), lead_time=(2, 2))
    assert two_stages.observation_size == 6
    with rejected(small, "number of ordering stages is 3, the env expects 2"):
        load(small, chain=two_stages)
    with pytest.raises(DatasetError, match="observation size is 6, the env expects 33"):
        load(small, chain=ChainConfig())


# --- atomic save ----------------------------------------------------------------------------------


def test_save_into_a_file_instead_of_a_folder_leaves_nothing(tmp_path, data):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        save(data, blocker / "data.h5")
    assert [p.name for p in tmp_path.iterdir()] == ["blocker"]
    assert blocker.read_text() == "not a folder"


def test_a_save_failing_midway_leaves_the_old_file_intact(saved, data):
    # A NumPy integer in the metadata is valid content but not JSON: writing fails after the
    # temporary file was created and its first attributes written.
    before = saved.read_bytes()
    other = dataclasses.replace(data, source={**data.source, "episodes": np.int64(4)})
    with pytest.raises(TypeError, match="not JSON serializable"):
        save(other, saved)
    assert [p.name for p in saved.parent.iterdir()] == ["data.h5"]  # no temporary file left
    assert saved.read_bytes() == before
    assert_same(load(saved), data)


def test_saving_an_invalid_dataset_leaves_the_old_file_intact(saved, data):
    # The arrays of a dataset are mutable NumPy arrays: a NaN written into one after construction
    # makes the object invalid. save() must refuse it rather than replace a good file with one
    # that load() rejects.
    before = saved.read_bytes()
    broken = copy.deepcopy(data)
    broken.rewards[7] = np.nan
    with pytest.raises(DatasetError, match="rewards holds NaN or infinite values"):
        save(broken, saved)
    assert [p.name for p in saved.parent.iterdir()] == ["data.h5"]
    assert saved.read_bytes() == before
    assert_same(load(saved), data)


# --- value ranges ---------------------------------------------------------------------------------


def test_the_limits_of_the_default_chain():
    chain = ChainConfig()
    # 100 * max(I0_i + T c_i) = 100 * (100 + 30 * 100) = 310,000 is below the floor of 1e6.
    assert unit_limit(chain) == MIN_UNIT_LIMIT == 1e6
    # p + r (purchases, the supplier's included) + k + h + r_0..r_2 (the stages' sale prices)
    assert reward_limit(chain) == pytest.approx(1e6 * (2.0 + 3.75 + 0.25 + 0.3 + 3.25))
    large = ChainConfig(capacity=(1e5, 1e5, 1e5))
    assert unit_limit(large) == 100 * (200 + 30 * 1e5)  # stage 2: I0 = 200
    assert unit_limit(ChainConfig(demand=Poisson(1e6))) == 100 * 30 * 1e6  # a horizon of demand
    # Never above 2**53 / T, so that an episode's sum stays exact.
    huge = ChainConfig(periods=1000, capacity=(1e15, 1e15, 1e15))
    assert unit_limit(huge) == reward_limit(huge) == EXACT_SUM / 1000


def test_collected_data_lies_well_within_the_limits(data):
    units = unit_limit(data.chain)
    assert np.abs(data.actions).max() < units / 100
    assert data.observations.min() >= 0 and data.observations.max() < units / 100
    assert np.abs(data.rewards).max() < reward_limit(data.chain) / 1000


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("rewards", 1e308, r"rewards must lie in \[-9.55e\+06, 9.55e\+06\] \(R, a period with every "
                        r"quantity at the chain's unit limit.*\); row 37 holds 1e\+308"),
     ("rewards", -1e7, r"rewards must lie in \[-9.55e\+06, 9.55e\+06\].*row 37 holds -10000000.0"),
     ("actions", -5e6, r"actions must lie in \[-1e\+06, 1e\+06\] \(U, the chain's unit limit: "
                       r"see echelon.data.dataset.unit_limit\); row 37, column 0 holds -5000000.0"),
     ("observations", 1e300, r"observations must lie in \[0, 1e\+06\] .*row 37, column 0 holds "
                             r"1e\+300"),
     ("next_observations", -1.0, r"next_observations must lie in \[0, 1e\+06\]"),
     ("log/on_hand", -3.0, r"log/on_hand must lie in \[0, 1e\+06\].*row 37, column 0 holds -3.0"),
     ("log/unfulfilled", 2e6, r"log/unfulfilled must lie in \[0, 1e\+06\]"),
     ("log/demand", 1e12, r"log/demand must lie in \[0, 1e\+06\].*row 37 holds 1000000000000.0")],
)
def test_validate_rejects_absurd_values(data, name, value, message):
    def put(array):
        array.reshape(len(array), -1)[37, 0] = value
    with pytest.raises(DatasetError, match=message):
        edited(data, name, put)


def test_negative_orders_within_the_limit_are_kept(data):
    # The simulator orders nothing for a negative order; a log may still hold one.
    assert edited(data, "actions", lambda a: a.__setitem__((3, 1), -2.5)).actions[3, 1] == -2.5


@pytest.mark.parametrize(
    ("change", "message"),
    [({"behaviour_policies": {"name": "a"}}, "behaviour_policies must be a list of objects, got dict"),
     ({"behaviour_policies": ["raw", "clip"]},
      r"behaviour_policies\[0\] must be an object with a string name, got str"),
     ({"behaviour_policies": [{"name": 3}, {"name": "b"}]},
      r"behaviour_policies\[0\] must be an object with a string name, got name 3"),
     ({"behaviour_policies": [{"name": "a", "params": [1]}, {"name": "b"}]},
      r"behaviour_policies\[0\].params must be an object, got list"),
     ({"seeds": [5]}, "seeds must be a dict, got list"),
     ({"source": None}, "source must be a dict, got NoneType"),
     ({"log": None}, "log must be a dict of the log/\\* arrays, got NoneType"),
     ({"chain": {"periods": 30}}, "chain must be a ChainConfig, got dict")],
)
def test_validate_rejects_metadata_of_the_wrong_type(data, change, message):
    with pytest.raises(DatasetError, match=message):
        dataclasses.replace(data, **change)


# --- damaged files --------------------------------------------------------------------------------


def _set_attribute(name, value):
    return lambda f: f.attrs.__setitem__(name, value)


def _replace(name, value):
    def edit(f):
        del f[name]
        f[name] = value
    return edit


def _sequence() -> np.ndarray:
    """A scalar variable-length sequence of integers (not a string)."""
    value = np.empty((), dtype=h5py.vlen_dtype(np.int32))
    value[()] = np.arange(3, dtype=np.int32)
    return value


def _behaviour(bad):
    return json.dumps([bad, {"name": "clip"}])


M = EPISODES * PERIODS
DAMAGED_FILES = [
    # (what, edit with h5py, message after "<path>: ")
    ("version array", _set_attribute("schema_version", np.arange(3)),
     "schema_version must be an integer, got an array of shape (3,)"),
    ("version string", _set_attribute("schema_version", "1"),
     "schema_version must be an integer, got str '1'"),
    ("version float", _set_attribute("schema_version", 1.5),
     "schema_version must be an integer, got float64"),
    ("version whole float", _set_attribute("schema_version", 1.0),
     "schema_version must be an integer, got float64"),
    ("version bool", _set_attribute("schema_version", True),
     "schema_version must be an integer, got bool"),
    ("chain not a string", _set_attribute("chain", 5),
     "bad chain attribute: must be a JSON string, got int64"),
    ("chain not JSON", _set_attribute("chain", "{periods: 30"), "bad chain attribute: not valid JSON"),
    ("chain a list", _set_attribute("chain", "[1, 2]"),
     "bad chain attribute: must be an object, got list [1, 2]"),
    ("chain a number", _set_attribute("chain", "3"),
     "bad chain attribute: must be an object, got int 3"),
    ("chain nested too deep", _set_attribute("chain", "[" * 100_000 + "]" * 100_000),
     "bad chain attribute: not valid JSON: maximum recursion depth exceeded"),
    ("chain unknown key", _set_attribute("chain", json.dumps({"colour": "red"})),
     "bad chain attribute: unknown chain parameter 'colour'"),
    ("chain wrong type", _set_attribute("chain", json.dumps({"price": [2.0]})),
     "bad chain attribute: price must be a finite number >= 0, got [2.0]"),
    ("chain huge integer", _set_attribute("chain", json.dumps({"capacity": [10**400, 1, 1]})),
     "bad chain attribute: int too large to convert to float"),
    ("chain demand", _set_attribute("chain", json.dumps({"demand": {"law": "poisson", "mu": "x"}})),
     "bad chain attribute: demand.mu must be a finite number, got 'x'"),
    ("behaviour not a list", _set_attribute("behaviour_policies", '{"name": "raw"}'),
     "bad behaviour_policies attribute: must be a list, got dict"),
    ("behaviour not an object", _set_attribute("behaviour_policies", _behaviour(3)),
     "behaviour_policies[0] must be an object with a string name, got int"),
    ("behaviour without a name", _set_attribute("behaviour_policies", _behaviour({"family": "x"})),
     "behaviour_policies[0] must be an object with a string name, got name None"),
    ("behaviour params", _set_attribute("behaviour_policies",
                                        _behaviour({"name": "raw", "params": "z=1"})),
     "behaviour_policies[0].params must be an object, got str"),
    ("seeds a list", _set_attribute("seeds", "[5]"), "bad seeds attribute: must be an object, got list"),
    ("source not JSON", _set_attribute("source", "kind: simulated"),
     "bad source attribute: not valid JSON"),
    ("source not UTF-8", _set_attribute("source", np.bytes_(b"\xff\xfe")),
     "bad source attribute: not UTF-8 text"),
    ("source an array", _set_attribute("source", np.array([1.0, 2.0])),
     "bad source attribute: must be a JSON string, got an array of shape (2,)"),
    ("chain a sequence", lambda f: f.attrs.create("chain", data=_sequence(),
                                                  dtype=h5py.vlen_dtype(np.int32)),
     "bad chain attribute: must be a JSON string, got an HDF5 vlen attribute"),
    ("seeds a compound", _set_attribute("seeds", np.zeros((), dtype=[("a", "f8")])),
     "bad seeds attribute: must be a JSON string, got an HDF5 compound attribute"),
    ("group for a dataset", lambda f: (f.__delitem__("rewards"), f.create_group("rewards")),
     "rewards must be a dataset in the file, got a group"),
    ("group in the log", lambda f: (f.__delitem__("log/shipped"), f.create_group("log/shipped")),
     "log/shipped must be a dataset in the file, got a group"),
    ("dataset for the log", lambda f: (f.__delitem__("log"), f.create_dataset("log", data=[1.0])),
     "log must be a group in the file, got a dataset"),
    ("strings", _replace("observations", np.full((M, 33), b"x")),
     "observations must have dtype float64, got |S1"),
    ("variable-length strings", _replace("rewards", np.array(["1.0"] * M, dtype=object)),
     "rewards must have dtype float64, got object"),
    ("compound", _replace("log/demand", np.zeros(M, dtype=[("value", "f8"), ("seen", "?")])),
     "log/demand must have dtype float64, got [('value', '<f8'), ('seen', '?')]"),
    ("unsigned 64-bit", _replace("periods", np.zeros(M, dtype=np.uint64)),
     "periods must have dtype int64, got uint64"),
    ("integers for flags", _replace("terminations", np.zeros(M, dtype=np.int8)),
     "terminations must have dtype bool, got int8"),
    ("bool for numbers", _replace("actions", np.zeros((M, 3), dtype=bool)),
     "actions must have dtype float64, got bool"),
    ("integers for numbers", _replace("rewards", np.zeros(M, dtype=np.int64)),
     "rewards must have dtype float64, got int64"),
    ("rewards two-dimensional", _replace("rewards", np.zeros((M, 2))),
     f"rewards must be a non-empty one-dimensional array, got shape ({M}, 2)"),
    ("rewards a scalar", _replace("rewards", 3.0),
     "rewards must be a non-empty one-dimensional array, got shape ()"),
    ("rewards without data", _replace("rewards", h5py.Empty("f8")),
     "rewards must be a non-empty one-dimensional array, got shape None"),
    ("a field of other rows", _replace("log/sales", np.zeros((M - 1, 4))),
     f"log/sales must be shaped ({M}, 4), got ({M - 1}, 4)"),
    ("observations of another chain", _replace("observations", np.zeros((M, 6))),
     f"observations must be shaped ({M}, 33), got ({M}, 6) (the chain's observation has 33 entries)"),
    ("rewards of 1e308", lambda f: f["rewards"].__setitem__(3, 1e308),
     "rewards must lie in [-9.55e+06, 9.55e+06]"),
    ("actions of -5e6", lambda f: f["actions"].__setitem__((3, 1), -5e6),
     "actions must lie in [-1e+06, 1e+06] (U, the chain's unit limit: see "
     "echelon.data.dataset.unit_limit); row 3, column 1 holds -5000000.0"),
    ("observations of 1e300", lambda f: f["observations"].__setitem__((3, 4), 1e300),
     "observations must lie in [0, 1e+06]"),
]


@pytest.mark.parametrize(("what", "edit", "message"), DAMAGED_FILES,
                         ids=[case[0] for case in DAMAGED_FILES])
def test_load_refuses_a_damaged_file_with_the_reason(saved, what, edit, message):
    with h5py.File(saved, "r+") as f:
        edit(f)
    with rejected(saved, message):
        load(saved)


def test_load_widens_narrower_types_of_the_same_kind(saved, data, tmp_path):
    # Another tool may write float32, int32 or big-endian arrays: the values are the same.
    with h5py.File(saved, "r+") as f:
        _replace("episode_ids", data.episode_ids.astype(np.int32))(f)
        _replace("periods", data.periods.astype(np.uint8))(f)
        _replace("observations", data.observations.astype(np.float32))(f)  # whole units: exact
        _replace("actions", data.actions.astype(">f8"))(f)
        f.attrs["source"] = np.bytes_(json.dumps(data.source).encode())  # a fixed-length string
    assert_same(load(saved), data)


def test_load_refuses_a_string_type_that_libhdf5_would_crash_on(saved):
    # The chain attribute's datatype message: version 1 and class 9 (variable-length), then the
    # class bits whose low nibble says "string" (1). A reserved value (3) makes libhdf5 read the
    # attribute as a sequence and crash (segfault) when it reads the value; load refuses it first.
    content = bytearray(saved.read_bytes())
    name = content.index(b"chain\x00\x00\x00")
    bits = content.index(b"\x19\x01", name) + 1
    content[bits] = 3
    saved.write_bytes(bytes(content))
    with rejected(saved, "bad chain attribute: must be a JSON string, got an HDF5 vlen attribute"):
        load(saved)


def test_load_refuses_a_damaged_global_heap_that_libhdf5_would_loop_on(saved):
    # The attributes' strings live in a global heap collection: "GCOL", version 1, then its size.
    # Claiming more than the collection holds sends libhdf5 past it into bytes that never reach
    # the claimed end; reading an attribute would never return.
    content = bytearray(saved.read_bytes())
    heap = content.index(b"GCOL\x01\x00\x00\x00")
    size = int.from_bytes(content[heap + 8 : heap + 16], "little")
    content[heap + 8 : heap + 16] = (size + 8 * 4096).to_bytes(8, "little")
    saved.write_bytes(bytes(content))
    with rejected(saved, f"the global heap collection at byte {heap} is damaged"):
        load(saved)
    content[heap + 8 : heap + 16] = (len(content)).to_bytes(8, "little")
    saved.write_bytes(bytes(content))
    with rejected(saved, f"a global heap collection at byte {heap} runs past the end of the file"):
        load(saved)
