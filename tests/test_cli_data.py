"""The dataset commands: collect, dataset inspect, import and export-minari, end to end."""

from __future__ import annotations

import json

import minari
import numpy as np
import pytest

from echelon import cli
from echelon.data import export_log, load, save
from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import OfflineDataset, dataset_fields
from echelon.policies.base_stock import RequestMode
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig


def levels(values: np.ndarray) -> list[float]:
    return [float(v) for v in values]


def make(chain: ChainConfig | None = None, episodes: int = 12) -> OfflineDataset:
    chain = chain or ChainConfig()
    up = np.arange(chain.stages)
    behaviours = [
        Behaviour("raw", Family.BASE_STOCK, {"z": levels(80.0 + 100.0 * up)}, RequestMode.RAW),
        Behaviour("clip", Family.BASE_STOCK, {"z": levels(60.5 + 45.0 * up)}),
        Behaviour("ss", Family.SS, {"s": levels(40.0 + 60.0 * up), "S": levels(90.0 + 90.0 * up)}),
    ]
    return collect(chain, behaviours, CollectConfig(episodes=episodes, noise_std=2.0),
                   np.random.SeedSequence(3))


def field(data: OfflineDataset, name: str) -> np.ndarray:
    return data.log[name[4:]] if name.startswith("log/") else getattr(data, name)


def run_json(capsys, *argv) -> dict:
    assert cli.main([*argv, "--json"]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out)


def test_collect_writes_a_loadable_dataset(tmp_path, capsys):
    out = tmp_path / "d.h5"
    report = run_json(capsys, "collect", "--preset", "quick", "--episodes", "20", "--out", str(out))
    data = load(out)
    assert len(data) == 600 and data.episodes == 20
    assert report["path"] == str(out)
    assert report["transitions"] == 600 and report["episodes"] == 20
    policies = report["behaviour_policies"]
    assert [p["id"] for p in policies] == [0, 1, 2, 3, 4]
    assert policies[0]["params"] == {"z": [80.0, 180.0, 40.0]}  # the paper's best setting
    assert [p["params"] for p in policies] == [p["params"] for p in data.behaviour_policies]
    counts = np.bincount(data.episode_behaviour(), minlength=5)
    assert [p["episodes"] for p in policies] == counts.tolist()
    assert sum(p["episodes"] for p in policies) == 20
    assert report["mean_return"] == float(data.episode_returns().mean())
    assert data.seeds["run_seed"] == 0
    # The override also reaches the seed and the noise.
    other = tmp_path / "e.h5"
    run_json(capsys, "collect", "--preset", "quick", "--episodes", "20", "--out", str(other),
             "--seed", "1", "--noise-std", "4", "--set", "search.top_k=2")
    noisy = load(other)
    assert noisy.seeds["run_seed"] == 1 and noisy.source["noise_std"] == 4.0
    assert len(noisy.behaviour_policies) == 2


def test_collect_human_summary(tmp_path, capsys):
    out = tmp_path / "d.h5"
    assert cli.main(["collect", "--preset", "quick", "--episodes", "10", "--out", str(out),
                     "--set", "search.episodes=10"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"wrote {out}: 300 transitions, 10 episodes")
    assert "returns per behaviour policy:" in text and "action range:" in text


def test_collect_with_a_bad_override_is_an_error(tmp_path, capsys):
    assert cli.main(["collect", "--preset", "quick", "--set", "collect.bogus=1",
                     "--out", str(tmp_path / "d.h5"), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "echelon: error:" in captured.err and "bogus" in captured.err
    assert not any(tmp_path.iterdir())


def test_inspect_json_has_the_numbers_of_the_dataset(tmp_path, capsys):
    data = make()
    path = save(data, tmp_path / "data.h5")
    report = run_json(capsys, "dataset", "inspect", str(path))
    returns, behaviour = data.episode_returns(), data.episode_behaviour()
    assert report["path"] == str(path)
    assert report["transitions"] == len(data) == 360 and report["episodes"] == 12
    assert report["observation_size"] == 33 and report["action_size"] == 3
    assert report["mean_return"] == float(returns.mean())
    assert report["action_min"] == data.actions.min(axis=0).tolist()
    assert report["action_max"] == data.actions.max(axis=0).tolist()
    assert report["observation_min"] == data.observations.min(axis=0).tolist()
    assert report["observation_max"] == data.observations.max(axis=0).tolist()
    assert report["source"] == data.source
    assert len(report["behaviour_policies"]) == 3
    for k, entry in enumerate(report["behaviour_policies"]):
        mine = returns[behaviour == k]
        assert len(mine) >= 2, k
        assert entry["id"] == k and entry["name"] == data.behaviour_policies[k]["name"]
        assert entry["params"] == data.behaviour_policies[k]["params"]
        assert entry["episodes"] == len(mine)
        assert entry["mean_return"] == float(mine.mean())
        assert entry["std_return"] == float(mine.std(ddof=1))


def test_inspect_human_output_lists_returns_and_ranges(tmp_path, capsys):
    data = make()
    path = save(data, tmp_path / "data.h5")
    assert cli.main(["dataset", "inspect", str(path)]) == 0
    text = capsys.readouterr().out
    returns, behaviour = data.episode_returns(), data.episode_behaviour()
    assert text.startswith(f"{path}: schema v1\n")
    assert "  360 transitions in 12 episodes; observation size 33, 3 actions; " in text
    assert f"mean return {returns.mean():.2f}" in text
    for k, spec in enumerate(load(path).behaviour_policies):  # params as the file holds them
        mine = returns[behaviour == k]
        assert (f"    [{k}] {spec['name']} {spec['params']}: {len(mine)} episodes, "
                f"mean {mine.mean():.2f}  std {mine.std(ddof=1):.2f}") in text
    low = ", ".join(f"{x:g}" for x in data.actions.min(axis=0))
    high = ", ".join(f"{x:g}" for x in data.actions.max(axis=0))
    assert f"  action range: min [{low}]  max [{high}]" in text


def test_inspect_of_an_imported_dataset_has_one_unknown_behaviour(tmp_path, capsys):
    data = make(episodes=3)
    csv = export_log(data, tmp_path / "log.csv")
    out = tmp_path / "log.h5"
    run_json(capsys, "dataset", "import", str(csv))  # default --out: the CSV's name with .h5
    report = run_json(capsys, "dataset", "inspect", str(out))
    assert report["behaviour_policies"] == [{
        "id": -1, "name": "unknown", "params": None, "episodes": 3,
        "mean_return": float(data.episode_returns().mean()),
        "std_return": float(data.episode_returns().std(ddof=1)),
    }]


@pytest.mark.parametrize("content", [b"not an hdf5 file", b""], ids=["garbage", "empty"])
def test_inspect_of_a_corrupt_file_exits_2_naming_the_file(tmp_path, capsys, content):
    path = tmp_path / "corrupt.h5"
    path.write_bytes(content)
    assert cli.main(["dataset", "inspect", str(path), "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"echelon: error: {path}: not a readable HDF5 file")


def test_inspect_of_a_truncated_or_missing_file_exits_2(tmp_path, capsys):
    path = save(make(episodes=2), tmp_path / "data.h5")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert cli.main(["dataset", "inspect", str(path)]) == 2
    assert f"{path}: not a readable HDF5 file (truncated or corrupt?)" in capsys.readouterr().err
    assert cli.main(["dataset", "inspect", str(tmp_path / "absent.h5")]) == 2
    assert f"{tmp_path / 'absent.h5'}: no such dataset file" in capsys.readouterr().err


@pytest.mark.parametrize("env", ["v1", "v0"])
def test_import_of_an_exported_log_gives_the_same_transitions(tmp_path, capsys, env):
    data = make(ChainConfig(backlog=env == "v0"))
    csv = export_log(data, tmp_path / "log.csv")
    out = tmp_path / "imported.h5"
    report = run_json(capsys, "dataset", "import", str(csv), "--env", env, "--out", str(out))
    assert report["path"] == str(out) and report["transitions"] == len(data)
    back = load(out)
    assert back.chain == data.chain
    for name in dataset_fields():
        if name != "behaviour_ids":
            np.testing.assert_array_equal(field(back, name), field(data, name), err_msg=name)
    assert np.all(back.behaviour_ids == -1)
    assert back.source["kind"] == "imported"


def test_import_with_a_chain_file(tmp_path, capsys):
    chain = ChainConfig(periods=12, initial_inventory=(50.0, 60.0),
                        replenishment_cost=(1.2, 0.9, 0.4), unfulfilled_penalty=(0.2, 0.1, 0.05),
                        holding_cost=(0.1, 0.05), capacity=(60.0, 50.0), lead_time=(0, 2), alpha=0.95)
    data = make(chain, episodes=4)
    csv = export_log(data, tmp_path / "log.csv")
    chain_file = tmp_path / "chain.json"
    chain_file.write_text(json.dumps(chain.to_dict()))
    out = tmp_path / "imported.h5"
    assert cli.main(["dataset", "import", str(csv), "--chain", str(chain_file),
                     "--out", str(out)]) == 0
    assert f"imported {csv} into {out}" in capsys.readouterr().out
    back = load(out, chain=chain)
    np.testing.assert_array_equal(back.rewards, data.rewards)
    np.testing.assert_array_equal(back.observations, data.observations)
    # The same log read as the default chain does not fit it: an error, not a traceback.
    assert cli.main(["dataset", "import", str(csv), "--out", str(tmp_path / "x.h5")]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"echelon: error: {csv}, line 1: missing column")
    assert not (tmp_path / "x.h5").exists()


def test_export_minari_then_load_dataset(tmp_path, capsys, monkeypatch):
    data = make(episodes=7)
    path = save(data, tmp_path / "data.h5")
    root = tmp_path / "minari"
    report = run_json(capsys, "dataset", "export-minari", str(path), "--id", "echelon/cli/test-v0",
                      "--data-path", str(root))
    assert report["episodes"] == 7 and report["id"] == "echelon/cli/test-v0"
    assert report["path"] == str(root / "echelon/cli/test-v0")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    loaded = minari.load_dataset("echelon/cli/test-v0")
    assert loaded.total_episodes == data.episodes == 7
    assert loaded.total_steps == len(data)
    episode = next(loaded.iterate_episodes([3]))
    np.testing.assert_array_equal(episode.rewards, data.rewards[data.episode_ids == 3])
    # A second export to the same id needs --overwrite.
    assert cli.main(["dataset", "export-minari", str(path), "--id", "echelon/cli/test-v0",
                     "--data-path", str(root)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli.main(["dataset", "export-minari", str(path), "--id", "echelon/cli/test-v0",
                     "--data-path", str(root), "--overwrite"]) == 0
    assert "exported 7 episodes" in capsys.readouterr().out
    assert minari.load_dataset("echelon/cli/test-v0").total_episodes == 7
