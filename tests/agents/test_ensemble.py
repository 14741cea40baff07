"""Seeds as a batch axis: an ensemble's members against the same seeds trained alone."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest
import torch

from echelon.agents import ALGORITHMS, AgentPolicy, TrainConfig, algorithm_config, load_checkpoint, train
from echelon.agents.preprocessing import split_episodes
from echelon.agents.trainer import train_ensemble
from echelon.data.dataset_file import load, save
from echelon.sim.rollout import rollout

TINY = {"hidden": (32, 32)}
SEEDS = (0, 1, 2)
# Members run their matrix products batched, which rounds differently from one member's
# products alone: after these 15 epochs of 5 steps (75 Adam steps) the weights agree to this.
WEIGHT_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def settings(seed: int, epochs: int = 15) -> TrainConfig:
    return TrainConfig(epochs=epochs, batch_size=64, seed=seed, device="cpu")


def weights(checkpoint) -> dict[str, dict[str, torch.Tensor]]:
    return load_checkpoint(checkpoint)["state"]["modules"]


def assert_close_states(got, want, **tolerance):
    assert got.keys() == want.keys()
    for name in want:
        assert got[name].keys() == want[name].keys()
        for key in want[name]:
            torch.testing.assert_close(got[name][key], want[name][key], **tolerance)


@pytest.mark.parametrize("algorithm", sorted(ALGORITHMS))
def test_each_member_ends_with_the_weights_of_its_seed_trained_alone(algorithm, dataset, chain,
                                                                      tmp_path):
    config = algorithm_config(algorithm, TINY)
    configs = [settings(seed) for seed in SEEDS]
    together = train_ensemble(dataset, algorithm, config, configs,
                              [tmp_path / f"ensemble-s{seed}" for seed in SEEDS])
    paths = chain.demand.sample(np.random.default_rng(5), 20, chain.periods)
    profits = []
    for seed, member in zip(SEEDS, together, strict=True):
        alone = train(dataset, algorithm, config, settings(seed), tmp_path / f"alone-s{seed}")
        assert member.checkpoint == tmp_path / f"ensemble-s{seed}" / "checkpoint.pt"
        assert_close_states(weights(member.checkpoint), weights(alone.checkpoint), **WEIGHT_TOLERANCE)
        # The same metrics file, epoch for epoch, to the same tolerance.
        assert len(member.metrics) == len(alone.metrics) == 15
        for got, want in zip(member.metrics, alone.metrics, strict=True):
            assert got.keys() == want.keys()
            for key in got:
                if key != "seconds":
                    assert got[key] == pytest.approx(want[key], rel=1e-3, abs=1e-4), key
        # An ordinary checkpoint: the agent loads and plays as its solo twin (to the rounding
        # of an order at a boundary, which these tiny networks do not reach).
        played = rollout(chain, AgentPolicy(member.checkpoint), paths).profit
        np.testing.assert_allclose(played, rollout(chain, AgentPolicy(alone.checkpoint), paths).profit,
                                   rtol=1e-6)
        profits.append(played.mean())
    assert len(set(profits)) == len(SEEDS)  # the members are three different agents


def test_one_config_is_the_solo_trainer_exactly(dataset, tmp_path):
    config = algorithm_config("iql", TINY)
    [one] = train_ensemble(dataset, "iql", config, [settings(4, epochs=3)], [tmp_path / "a"])
    alone = train(dataset, "iql", config, settings(4, epochs=3), tmp_path / "b")
    assert_close_states(weights(one.checkpoint), weights(alone.checkpoint), rtol=0, atol=0)


CHILD = """
import sys
from echelon.agents import TrainConfig, algorithm_config
from echelon.agents.preprocessing import split_episodes
from echelon.agents.trainer import train_ensemble
from echelon.data.dataset_file import load
seeds = (0, 1, 2)
train_ensemble(load(sys.argv[1]), "td3bc", algorithm_config("td3bc", {settings!r}),
               [TrainConfig(epochs={epochs}, batch_size=16, seed=s, device="cpu") for s in seeds],
               [sys.argv[2] + f"/s{{s}}" for s in seeds])
"""


def test_a_killed_ensemble_resumes_to_the_same_weights(dataset, tmp_path, kill_after_epochs):
    epochs, kill_after = 60, 3
    path = save(dataset, tmp_path / "data.h5")
    data = load(path)
    config = algorithm_config("td3bc", TINY)
    configs = [TrainConfig(epochs=epochs, batch_size=16, seed=s, device="cpu") for s in SEEDS]
    whole = train_ensemble(data, "td3bc", config, configs, [tmp_path / "whole" / f"s{s}" for s in SEEDS])

    killed = tmp_path / "killed"
    kill_after_epochs(CHILD.format(settings=TINY, epochs=epochs), [str(path), str(killed)],
                      killed / "s2" / "metrics.csv", kill_after)
    reached = [load_checkpoint(killed / f"s{s}")["epoch"] for s in SEEDS]
    assert all(kill_after <= epoch < epochs for epoch in reached)

    resumed = train_ensemble(data, "td3bc", config, configs, [killed / f"s{s}" for s in SEEDS],
                             resume=True)
    for seed, member, reference in zip(SEEDS, resumed, whole, strict=True):
        a, b = load_checkpoint(reference.checkpoint), load_checkpoint(member.checkpoint)
        assert b["epoch"] == epochs
        if len(set(reached)) == 1:  # killed between epochs, not between two members' writes
            assert_close_states(b["state"]["modules"], a["state"]["modules"], rtol=0, atol=0)
            for key in ("algo", "data"):
                assert torch.equal(a["rng"][key], b["rng"][key]), seed
        else:
            assert_close_states(b["state"]["modules"], a["state"]["modules"], **WEIGHT_TOLERANCE)


def test_members_at_different_epochs_catch_up_before_training_together(dataset, tmp_path):
    config = algorithm_config("bc", TINY)
    configs = [settings(seed, epochs=6) for seed in SEEDS]
    whole = train_ensemble(dataset, "bc", config, configs, [tmp_path / f"whole-s{s}" for s in SEEDS])
    # Member 0 is finished, member 1 stopped after 2 epochs, member 2 never started.
    outs = [tmp_path / f"mixed-s{s}" for s in SEEDS]
    train(dataset, "bc", config, configs[0], outs[0])
    assert load_checkpoint(_stopped_after(dataset, config, configs[1], outs[1], epochs=2))["epoch"] == 2

    results = train_ensemble(dataset, "bc", config, configs, outs, resume=True)
    for member, reference in zip(results, whole, strict=True):
        assert load_checkpoint(member.checkpoint)["epoch"] == 6
        assert len(member.metrics) == 6
        assert_close_states(weights(member.checkpoint), weights(reference.checkpoint),
                            **WEIGHT_TOLERANCE)


def _stopped_after(dataset, config, train_config, out, *, epochs: int):
    """The checkpoint a run of ``train_config`` killed after ``epochs`` epochs leaves: the
    trainer's own epochs, stopped there."""
    from echelon.agents import trainer

    member = trainer._Member.prepare(dataset, "bc", config, train_config, out, False,
                                     torch.device("cpu"))
    bar = trainer.progress_bar(total=1, enabled=False)
    trainer._train_group([member], "bc", 1, epochs, torch.device("cpu"), bar, time.perf_counter())
    bar.close()
    return member.checkpoint_path


def test_ensembles_refuse_configs_that_differ_in_more_than_the_seed(dataset, tmp_path):
    config = algorithm_config("bc", TINY)
    with pytest.raises(ValueError, match="every training setting but the seed"):
        train_ensemble(dataset, "bc", config, [settings(0), settings(1, epochs=2)],
                       [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="distinct seeds"):
        train_ensemble(dataset, "bc", config, [settings(0), settings(0)],
                       [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match="one folder per config"):
        train_ensemble(dataset, "bc", config, [settings(0), settings(1)], [tmp_path / "a"])
    assert list(tmp_path.iterdir()) == []  # nothing was created


def uneven(data):
    """``data`` with every third episode cut after period 6 (ended by truncation there)."""
    keep = ~((data.episode_ids % 3 == 0) & (data.periods >= 7))
    fields = {f.name: getattr(data, f.name)[keep] for f in dataclasses.fields(data)
              if isinstance(getattr(data, f.name), np.ndarray)}
    fields["log"] = {name: values[keep] for name, values in data.log.items()}
    last = np.r_[fields["episode_ids"][1:] != fields["episode_ids"][:-1], True]
    fields["truncations"] = fields["truncations"] | (last & ~fields["terminations"].astype(bool))
    return dataclasses.replace(data, **fields)


def test_members_whose_splits_differ_in_size_train_apart_and_still_match_alone(dataset, tmp_path):
    data = uneven(dataset)
    seeds = (0, 1, 2, 3)
    sizes = {int(np.isin(data.episode_ids, split_episodes(data.episodes, 0.1, seed)[0]).sum())
             for seed in seeds}
    assert len(sizes) > 1  # the case: not every member can share one batch order
    config = algorithm_config("iql", TINY)
    together = train_ensemble(data, "iql", config, [settings(s, epochs=4) for s in seeds],
                              [tmp_path / f"e{s}" for s in seeds])
    for seed, member in zip(seeds, together, strict=True):
        alone = train(data, "iql", config, settings(seed, epochs=4), tmp_path / f"a{seed}")
        assert member.steps == alone.steps
        assert_close_states(weights(member.checkpoint), weights(alone.checkpoint),
                            **WEIGHT_TOLERANCE)
