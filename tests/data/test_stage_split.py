"""Per-stage datasets: a hand-worked split, the rewards' accounting, the files and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from echelon.cli import main
from echelon.data import export_log, import_log, load, save
from echelon.data.dataset import DatasetError, from_trajectory
from echelon.data.stage_split import (
    STAGES_FILE,
    load_stage_split,
    save_stage_split,
    split_stages,
)
from echelon.sim import ChainConfig
from echelon.sim.rollout import rollout
from echelon.sim.stage_view import stage_chain

# A two-stage chain small enough to play by hand: the retailer waits one period, the
# distributor none; the supplier ships at most 3 a period.
TINY = ChainConfig(periods=3, initial_inventory=(5.0, 4.0), price=2.0,
                   replenishment_cost=(1.5, 1.0, 0.5), unfulfilled_penalty=(0.1, 0.05, 0.02),
                   holding_cost=(0.2, 0.1), capacity=(10.0, 3.0), lead_time=(1, 0),
                   demand=(4.0, 6.0, 2.0), alpha=0.9)
ORDERS = np.array([[3.0, 5.0], [6.7, 2.0], [0.0, 4.0]])  # per period: retailer, distributor


class FixedOrders:
    reads_observation = False

    def act(self, obs, state):
        return ORDERS[state.period][None, :]


def tiny_dataset():
    played = rollout(TINY, FixedOrders(), np.array([[4.0, 6.0, 2.0]]), record=True)
    return from_trajectory(TINY, played.trajectory, np.array([-1]), behaviour_policies=[],
                           seeds={}, source={"kind": "hand"})


def test_split_of_a_hand_worked_episode():
    # Period 0: requests (3, 5); the retailer gets 3 (in transit a period), the distributor 3
    # (capacity) at once; demand 4 of on-hand 5: on-hand (1, 4), unfilled (0, 0, 2).
    # Period 1: requests (6, 2); the distributor ships its 4, the 3 of period 0 arrive; demand
    # 6 of 4: on-hand (0, 2), unfilled (2, 2, 0). Period 2: requests (0, 4); the supplier ships
    # 3; the 4 arrive, demand 2: on-hand (2, 5), unfilled (0, 0, 1).
    data = tiny_dataset()
    np.testing.assert_allclose(data.rewards, [5.86, 0.9 * 6.5, 0.81 * 1.58], rtol=1e-12)
    retailer, distributor = split_stages(data, "local")
    assert retailer.chain == stage_chain(TINY, 0) and distributor.chain == stage_chain(TINY, 1)
    # Local observations: [on-hand, own last L_i requests]; L = 1 for the retailer, 0 above.
    np.testing.assert_array_equal(retailer.observations, [[5, 0], [1, 3], [0, 6]])
    np.testing.assert_array_equal(retailer.next_observations, [[1, 3], [0, 6], [2, 0]])
    np.testing.assert_array_equal(distributor.observations, [[4], [4], [2]])
    np.testing.assert_array_equal(distributor.next_observations, [[4], [2], [5]])
    np.testing.assert_array_equal(retailer.actions, [[3.0], [6.7], [0.0]])
    np.testing.assert_array_equal(distributor.actions, [[5.0], [2.0], [4.0]])
    # -(h I + k LS) alpha^n: the retailer's LS is unfilled demand, the distributor's the
    # retailer's unfilled request.
    np.testing.assert_allclose(retailer.rewards, [-0.2, -0.2 * 0.9, -0.4 * 0.81], rtol=1e-12)
    np.testing.assert_allclose(distributor.rewards, [-0.4, -0.3 * 0.9, -0.5 * 0.81], rtol=1e-12)
    # What each stage logged of its own: the demand it faced is its customer's order.
    np.testing.assert_array_equal(retailer.log["demand"], [4, 6, 2])
    np.testing.assert_array_equal(distributor.log["demand"], [3, 6, 0])
    np.testing.assert_array_equal(retailer.log["sales"], [[4, 3], [4, 4], [2, 0]])
    np.testing.assert_array_equal(distributor.log["sales"], [[3, 3], [4, 2], [0, 3]])
    np.testing.assert_array_equal(retailer.log["shipped"], [[3], [4], [0]])
    np.testing.assert_array_equal(distributor.log["shipped"], [[3], [2], [3]])
    np.testing.assert_array_equal(retailer.log["unfulfilled"], [[0, 0], [2, 2], [0, 0]])
    np.testing.assert_array_equal(distributor.log["unfulfilled"], [[0, 2], [2, 0], [0, 1]])
    np.testing.assert_array_equal(distributor.log["on_hand"], [[4], [2], [5]])
    assert distributor.source["stage"] == 1 and distributor.source["agent"] == "stage_1"
    assert distributor.source["reward"] == "local" and distributor.source["history"] == 0

    # Profit shares: the retailer 2*4 - (1.5*3 + 0.2*1) = 3.3 ...; the distributor takes the
    # supplier's margin too (1.1 + 1.46 in period 0).
    retailer, distributor = split_stages(data, "profit")
    np.testing.assert_allclose(retailer.rewards, [3.3, 1.8 * 0.9, 3.6 * 0.81], rtol=1e-12)
    np.testing.assert_allclose(distributor.rewards, [2.56, 4.7 * 0.9, -2.02 * 0.81], rtol=1e-12)
    for stage in split_stages(data, "team"):
        np.testing.assert_array_equal(stage.rewards, data.rewards)


def test_shares_add_up_to_the_chains_reward(small_logs):
    data = load(small_logs)
    stages = split_stages(data, "profit")
    assert [s.source["agent"] for s in stages] == ["retailer", "distributor", "manufacturer"]
    np.testing.assert_allclose(sum(s.rewards for s in stages), data.rewards, rtol=1e-12, atol=1e-12)
    for i, stage in enumerate(stages):
        assert stage.observations.shape == (len(data), 1 + data.chain.lead_time[i])
        np.testing.assert_array_equal(stage.observations[:, 0], data.observations[:, i])
        assert stage.episodes == data.episodes


def test_an_imported_log_splits_like_the_collected_one(small_logs, tmp_path):
    data = load(small_logs)
    export_log(data, tmp_path / "log.csv")
    imported = import_log(tmp_path / "log.csv", data.chain)
    for mine, theirs in zip(split_stages(data), split_stages(imported), strict=True):
        np.testing.assert_array_equal(mine.observations, theirs.observations)
        np.testing.assert_array_equal(mine.rewards, theirs.rewards)
        np.testing.assert_array_equal(mine.log["demand"], theirs.log["demand"])


def test_refusals(small_logs):
    data = load(small_logs)
    with pytest.raises(ValueError, match="reward must be one of"):
        split_stages(data, "shared")
    with pytest.raises(DatasetError, match="already one stage's split"):
        split_stages(split_stages(data)[0])
    tampered = tiny_dataset()
    tampered.rewards[1] += 1.0
    with pytest.raises(DatasetError, match="row 1: the log .* does not account for its rewards"):
        split_stages(tampered)


def test_files_round_trip_and_the_manifest_is_checked(small_logs, tmp_path):
    data = load(small_logs)
    manifest = save_stage_split(split_stages(data, "profit"), tmp_path / "split",
                                source_file=small_logs)
    split = load_stage_split(tmp_path / "split")
    assert split.chain == data.chain and split.reward.value == "profit"
    assert split.names == ("retailer", "distributor", "manufacturer")
    again = split.datasets()
    np.testing.assert_array_equal(again[2].observations, split_stages(data, "profit")[2].observations)

    text = json.loads(manifest.read_text())
    swapped = dict(text, stages=[{**s, "file": "distributor.h5"} if s["stage"] == 0 else s
                                 for s in text["stages"]])
    manifest.write_text(json.dumps(swapped))
    with pytest.raises(DatasetError, match="not the data of stage 0 \\(retailer\\)"):
        load_stage_split(tmp_path / "split").dataset(0)
    manifest.write_text(json.dumps(dict(text, reward="shared")))
    with pytest.raises(DatasetError, match="reward: reward must be one of"):
        load_stage_split(tmp_path / "split")
    manifest.write_text(json.dumps(dict(text, stages=text["stages"][:2])))
    with pytest.raises(DatasetError, match="stages must be a list of 3 entries"):
        load_stage_split(tmp_path / "split")
    (tmp_path / "split" / "manufacturer.h5").unlink()
    manifest.write_text(json.dumps(text))
    with pytest.raises(DatasetError, match="manufacturer.h5: no such file"):
        load_stage_split(tmp_path / "split")
    with pytest.raises(DatasetError, match="no stages.json"):
        load_stage_split(tmp_path)


def test_the_command(small_logs, tmp_path, capsys):
    out = tmp_path / "split"
    assert main(["dataset", "split-stages", str(small_logs), "--out", str(out), "--json",
                 "--reward", "team"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["reward"] == "team" and len(printed["stages"]) == 3
    assert (out / STAGES_FILE).exists() and (out / "retailer.h5").exists()
    before = (out / "retailer.h5").read_bytes()
    # A finished split is not replaced without --overwrite; bad input is one line, exit 2.
    assert main(["dataset", "split-stages", str(small_logs), "--out", str(out)]) == 2
    assert "already holds a result" in capsys.readouterr().err
    assert (out / "retailer.h5").read_bytes() == before
    assert main(["dataset", "split-stages", str(small_logs), "--out", str(out), "--overwrite",
                 "--reward", "local"]) == 0
    assert "local reward" in capsys.readouterr().out
    assert load_stage_split(out).reward.value == "local"
    with pytest.raises(SystemExit) as exit_:
        main(["dataset", "split-stages", str(small_logs), "--out", str(out), "--reward", "x"])
    assert exit_.value.code == 2
    assert "--reward: invalid choice" in capsys.readouterr().err
    assert main(["dataset", "split-stages", str(out / "retailer.h5"), "--out",
                 str(tmp_path / "again")]) == 2
    assert "already one stage's split" in capsys.readouterr().err
