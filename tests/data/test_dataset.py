"""The dataset: validation of every schema rule, the HDF5 round trip, atomic save, load errors."""

from __future__ import annotations

import copy
import dataclasses
import re

import h5py
import numpy as np
import pytest

from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import (
    SCHEMA_VERSION,
    DatasetError,
    OfflineDataset,
    dataset_fields,
    load,
    save,
)
from echelon.policies.base_stock import RequestMode
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig

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
