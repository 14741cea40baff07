"""Export to Minari: what minari.load_dataset reads back is our episodes, exactly."""

from __future__ import annotations

import os
import sys

import minari
import numpy as np
import pytest

from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import OfflineDataset
from echelon.data.minari_export import MinariNotInstalledError, export_minari
from echelon.policies.base_stock import RequestMode
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig
from echelon.sim.env import InvManagementEnv


def simulated(chain: ChainConfig, episodes: int = 20, noise_std: float = 0.0) -> OfflineDataset:
    behaviours = [
        Behaviour("raw", Family.BASE_STOCK, {"z": [80.5, 300.0, 600.0]}, RequestMode.RAW),
        Behaviour("clip", Family.BASE_STOCK, {"z": [60.0, 90.25, 120.0]}),
    ]
    return collect(chain, behaviours, CollectConfig(episodes=episodes, noise_std=noise_std),
                   np.random.SeedSequence(0))


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    return tmp_path / "minari"


def assert_episodes_match(loaded, data: OfflineDataset) -> None:
    assert loaded.total_episodes == data.episodes
    assert loaded.total_steps == len(data)
    for episode in loaded.iterate_episodes():
        rows = data.episode_ids == episode.id
        last = np.flatnonzero(rows)[-1]
        observations = np.concatenate([data.observations[rows], data.next_observations[[last]]])
        for name, got, want in (
            ("observations", episode.observations, observations),
            ("actions", episode.actions, data.actions[rows]),
            ("rewards", episode.rewards, data.rewards[rows]),
            ("terminations", episode.terminations, data.terminations[rows]),
            ("truncations", episode.truncations, data.truncations[rows]),
        ):
            assert got.dtype == want.dtype, name
            np.testing.assert_array_equal(got, want, err_msg=f"episode {episode.id}: {name}")


@pytest.mark.parametrize("backlog", [False, True], ids=["v1", "v0"])
def test_round_trip_through_load_dataset(root, backlog):
    # Noisy, fractional orders, some above capacity (outside the env's action box), survive.
    data = simulated(ChainConfig(backlog=backlog), noise_std=5.0)
    assert np.any(data.actions > np.asarray(data.chain.capacity))
    path = export_minari(data, "echelon/test/noisy-v0", author="tests")
    assert path == os.path.join(root, "echelon/test/noisy-v0")
    loaded = minari.load_dataset("echelon/test/noisy-v0")
    assert_episodes_match(loaded, data)
    assert [e.id for e in loaded.iterate_episodes()] == list(range(20))
    assert loaded.observation_space.dtype == np.float64
    assert loaded.observation_space.shape == (data.chain.observation_size,)
    assert loaded.action_space.shape == (3,)
    assert loaded.env_spec.id == f"echelon/InvManagement-{'v0' if backlog else 'v1'}"
    metadata = loaded.storage.metadata
    assert metadata["author"] == {"tests"}
    assert metadata["echelon"]["chain"] == data.chain.to_dict()
    assert metadata["echelon"]["behaviour_policies"] == data.behaviour_policies
    assert "echelon/test/noisy-v0" in minari.list_local_datasets()
    behaviour = [m["behaviour_id"] for m in loaded.storage.get_episode_metadata(range(20))]
    np.testing.assert_array_equal(behaviour, data.episode_behaviour())


def test_recovered_env_replays_the_episodes(root):
    chain = ChainConfig(lead_time=(2, 3, 4), capacity=(60.0, 50.0, 40.0), periods=12, backlog=True)
    behaviours = [Behaviour("z", Family.BASE_STOCK, {"z": [40.0, 80.0, 120.0]})]
    data = collect(chain, behaviours, CollectConfig(episodes=4), np.random.SeedSequence(1))
    export_minari(data, "echelon/replay-v3")
    loaded = minari.load_dataset("echelon/replay-v3")
    env = loaded.recover_environment()
    assert isinstance(env.unwrapped, InvManagementEnv)
    assert env.unwrapped.config == chain
    for episode, meta in zip(loaded.iterate_episodes(),
                             loaded.storage.get_episode_metadata(range(4))):
        obs, _ = env.reset(options=meta["options"])
        observations, rewards = [obs], []
        for action in episode.actions:
            obs, reward, terminated, truncated, _ = env.step(action)
            observations.append(obs)
            rewards.append(reward)
        assert terminated and not truncated
        np.testing.assert_array_equal(np.array(observations), episode.observations)
        np.testing.assert_array_equal(np.array(rewards), episode.rewards)


def test_data_path_argument_leaves_the_environment_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("MINARI_DATASETS_PATH", raising=False)
    data = simulated(ChainConfig(), episodes=2)
    path = export_minari(data, "echelon/here-v0", data_path=tmp_path)
    assert "MINARI_DATASETS_PATH" not in os.environ
    assert path == str(tmp_path / "echelon/here-v0")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    assert_episodes_match(minari.load_dataset("echelon/here-v0"), data)


@pytest.mark.parametrize(
    "dataset_id",
    ["name-v0", "echelon/name", "echelon/name-v", "echelon/name-vx", "/name-v0", "echelon/../x-v0",
     "echelon/na me-v0", "echelon//name-v0", ""],
)
def test_invalid_ids_are_refused(root, dataset_id):
    with pytest.raises(ValueError, match="invalid Minari dataset id"):
        export_minari(simulated(ChainConfig(), episodes=1), dataset_id)
    assert not root.exists() or not any(root.iterdir())


def test_an_existing_id_is_kept_unless_overwrite(root):
    first = simulated(ChainConfig(), episodes=3)
    second = simulated(ChainConfig(backlog=True), episodes=5)
    export_minari(first, "echelon/same-v1")
    # The message names the keyword and the CLI flag, for whichever way the export was called.
    with pytest.raises(ValueError, match=r"already exists.*pass overwrite=True \(echelon dataset "
                                         r"export-minari --overwrite\)"):
        export_minari(second, "echelon/same-v1")
    assert_episodes_match(minari.load_dataset("echelon/same-v1"), first)
    export_minari(second, "echelon/same-v1", overwrite=True)
    assert_episodes_match(minari.load_dataset("echelon/same-v1"), second)
    # No leftovers beside it: the replaced dataset was removed.
    assert sorted(p.name for p in (root / "echelon").iterdir()) == [
        "namespace_metadata.json", "same-v1"
    ]


def test_overwrite_does_not_remove_what_is_not_a_dataset(root):
    (root / "echelon" / "folder-v0").mkdir(parents=True)
    with pytest.raises(ValueError, match="is not a Minari dataset"):
        export_minari(simulated(ChainConfig(), episodes=1), "echelon/folder-v0", overwrite=True)
    assert (root / "echelon" / "folder-v0").is_dir()


def test_missing_minari_says_how_to_install(root, monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # what `import minari` meets when absent
    with pytest.raises(MinariNotInstalledError, match=r"pip install 'echelon\[minari\]'"):
        export_minari(simulated(ChainConfig(), episodes=1), "echelon/none-v0")
