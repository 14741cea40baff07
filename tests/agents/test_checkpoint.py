"""Checkpoints that cannot be used are refused, naming the file and what is wrong with it.

Each case is refused by ``load_checkpoint`` and by ``AgentPolicy``, which reads through it.
"""

from __future__ import annotations

import math
import re
import types

import pytest
import torch

from echelon.agents import AgentPolicy, CheckpointError, load_checkpoint


def test_unusable_checkpoints_are_refused(checkpoint, chain, tmp_path):
    saved = torch.load(checkpoint, weights_only=True)
    broken = tmp_path / "broken.pt"

    def refused(match: str) -> None:
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(broken)
        with pytest.raises(CheckpointError, match=match):
            AgentPolicy(broken, chain)

    refused("no such checkpoint")
    broken.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
    refused(r"not a readable checkpoint \(corrupt or truncated\?\)")
    broken.write_bytes(b"this is not a checkpoint")
    refused(r"not a readable checkpoint \(corrupt or truncated\?\)")
    torch.save({"state_dict": {"weight": torch.zeros(2)}}, broken)  # someone else's torch file
    refused("not an echelon agent checkpoint")
    torch.save({**saved, "version": 99}, broken)
    refused("checkpoint version 99, this echelon reads 1")
    torch.save({**saved, "algorithm": "dqn"}, broken)
    refused("unknown algorithm 'dqn'")
    torch.save({k: v for k, v in saved.items() if k != "state"}, broken)
    refused(r"checkpoint lacks \['state'\]")
    torch.save({**saved, "state": {**saved["state"], "modules": {"actor": {}}}}, broken)
    with pytest.raises(CheckpointError, match="weights do not fit the network"):
        AgentPolicy(broken)


def _tensors(state: dict) -> dict:
    """A copy of a learner's state with every tensor cloned, to damage one of them."""
    if isinstance(state, torch.Tensor):
        return state.clone()
    if isinstance(state, dict):
        return {k: _tensors(v) for k, v in state.items()}
    return state


def _actor_weight(saved: dict) -> torch.Tensor:
    return saved["state"]["modules"]["actor"]["net.0.weight"]


def _damaged(saved: dict, edit) -> dict:
    damaged = {**saved, "state": _tensors(saved["state"]),
               "preprocessing": dict(saved["preprocessing"]),
               "algo_config": dict(saved["algo_config"]),
               "train_config": dict(saved["train_config"])}
    edit(damaged)
    return damaged


def _nan_weight(saved: dict) -> None:
    _actor_weight(saved)[0, 0] = math.nan


def _infinite_weight(saved: dict) -> None:
    _actor_weight(saved)[1, 2] = -math.inf


DAMAGED_CHECKPOINTS = [
    # (what, edit of the saved dict, message after "<path>: ")
    ("preprocessing key", lambda c: c["preprocessing"].pop("obs_std"),
     "preprocessing lacks ['obs_std']"),
    ("preprocessing type", lambda c: c.update(preprocessing=[1, 2]),
     "preprocessing must be a dict, got list"),
    ("preprocessing length", lambda c: c["preprocessing"].update(obs_mean=[0.0] * 8,
                                                                  obs_std=[1.0] * 8),
     "preprocessing.obs_mean length is 8, not 9 (obs_dim)"),
    ("action bounds length", lambda c: c["preprocessing"].update(action_low=[0.0, 0.0],
                                                                 action_high=[1.0, 1.0]),
     "preprocessing.action_low length is 2, not 3 (action_dim)"),
    ("preprocessing NaN", lambda c: c["preprocessing"].update(
        obs_mean=[math.nan] + c["preprocessing"]["obs_mean"][1:]),
     "preprocessing.obs_mean must be a non-empty list of finite numbers"),
    ("preprocessing inf", lambda c: c["preprocessing"].update(action_high=[math.inf] * 3),
     "preprocessing.action_high must be a non-empty list of finite numbers"),
    ("preprocessing strings", lambda c: c["preprocessing"].update(obs_std=["1"] * 9),
     "preprocessing.obs_std must be a non-empty list of finite numbers"),
    ("zero std", lambda c: c["preprocessing"].update(obs_std=[0.0] * 9),
     "preprocessing.obs_std must be > 0, one entry per obs_mean entry"),
    ("empty action range", lambda c: c["preprocessing"].update(action_high=[0.0] * 3),
     "preprocessing.action_high must exceed action_low, stage by stage"),
    ("other action bounds", lambda c: c["preprocessing"].update(action_high=[100.0, 90.0, 300.0]),
     "preprocessing.action_high is [100.0, 90.0, 300.0], not [100.0, 90.0, 80.0] (the chain's "
     "capacities)"),
    ("negative lowest order", lambda c: c["preprocessing"].update(action_low=[-1.0, 0.0, 0.0]),
     "preprocessing.action_low is [-1.0, 0.0, 0.0], not [0.0, 0.0, 0.0] (the env's lowest "
     "orders)"),
    ("time feature of another run", lambda c: c["train_config"].update(time_feature=True),
     "preprocessing.time_feature is False, train_config.time_feature is True"),
    ("time feature", lambda c: c["preprocessing"].update(time_feature="no"),
     "preprocessing.time_feature must be true or false, got 'no'"),
    ("periods", lambda c: c["preprocessing"].update(periods=12),
     "preprocessing.periods is 12, not 10 (the chain's periods)"),
    ("NaN weight", _nan_weight, "state/modules/actor/net.0.weight holds NaN or infinite values"),
    ("infinite weight", _infinite_weight,
     "state/modules/actor/net.0.weight holds NaN or infinite values"),
    ("state type", lambda c: c.update(state=[1, 2]), "state must be a dict of weights, got list"),
    ("algo_config key", lambda c: c["algo_config"].update(depth=3),
     "algo_config has unknown settings ['depth']"),
    ("algo_config hidden type", lambda c: c["algo_config"].update(hidden="big"),
     "algo_config.hidden must be a list of integers, got 'big'"),
    ("algo_config rate type", lambda c: c["algo_config"].update(learning_rate="fast"),
     "algo_config.learning_rate must be a number, got 'fast'"),
    ("algo_config range", lambda c: c["algo_config"].update(learning_rate=-1.0),
     "bad algo_config: bc.learning_rate must be > 0, got -1.0"),
    ("algo_config type", lambda c: c.update(algo_config=[("hidden", [32])]),
     "algo_config must be a dict of settings, got list"),
    ("hidden size", lambda c: c["algo_config"].update(hidden=[0]),
     "algo_config.hidden must hold layer sizes >= 1, got [0]"),
    ("huge hidden size", lambda c: c["algo_config"].update(hidden=[2**40, 2**40]),
     "algo_config.hidden [1099511627776, 1099511627776] needs an actor of"),
    ("train_config", lambda c: c["train_config"].update(epochs="ten"),
     "train_config.epochs must be an integer, got 'ten'"),
    ("train_config key", lambda c: c["train_config"].update(optimizer="sgd"),
     "train_config has unknown settings ['optimizer']"),
    ("obs_dim zero", lambda c: c.update(obs_dim=0), "obs_dim must be an integer >= 1, got 0"),
    ("obs_dim float", lambda c: c.update(obs_dim=9.0), "obs_dim must be an integer >= 1, got 9.0"),
    ("obs_dim bool", lambda c: c.update(obs_dim=True), "obs_dim must be an integer >= 1, got True"),
    ("obs_dim other", lambda c: c.update(obs_dim=10),
     "obs_dim is 10, not 9 (the chain's observation size)"),
    ("action_dim negative", lambda c: c.update(action_dim=-3),
     "action_dim must be an integer >= 1, got -3"),
    ("action_dim other", lambda c: c.update(action_dim=2),
     "action_dim is 2, not 3 (the chain's number of stages)"),
    ("epoch", lambda c: c.update(epoch="2"), "epoch must be an integer >= 1, got '2'"),
    ("total_steps", lambda c: c.update(total_steps=None),
     "total_steps must be an integer >= 1, got None"),
    ("chain type", lambda c: c.update(chain=[10, 3]), "chain must be a dict, got list"),
    ("chain value", lambda c: c.update(chain={**c["chain"], "periods": 0}),
     "bad chain: periods must be an integer >= 1, got 0"),
    ("chain key", lambda c: c.update(chain={**c["chain"], "colour": "red"}),
     "bad chain: unknown chain parameter 'colour'"),
    ("chain value type", lambda c: c.update(chain={**c["chain"], "lead_time": {"a": 1}}),
     "bad chain: lead_time must be a sequence of numbers"),
    ("format tensor", lambda c: c.update(format=torch.zeros(3)), "not an echelon agent checkpoint"),
    ("version tensor", lambda c: c.update(version=torch.ones(2)), "checkpoint version tensor("),
    ("version bool", lambda c: c.update(version=True), "checkpoint version True, this echelon"),
    ("algorithm tensor", lambda c: c.update(algorithm=torch.ones(2)), "unknown algorithm tensor("),
]


@pytest.mark.parametrize(("what", "edit", "message"), DAMAGED_CHECKPOINTS,
                         ids=[case[0] for case in DAMAGED_CHECKPOINTS])
def test_a_damaged_checkpoint_is_refused_with_the_reason(checkpoint, tmp_path, what, edit, message):
    saved = torch.load(checkpoint, weights_only=True)
    broken = tmp_path / "checkpoint.pt"
    torch.save(_damaged(saved, edit), broken)
    for load in (load_checkpoint, AgentPolicy):
        with pytest.raises(CheckpointError, match=re.escape(f"{broken}: {message}")):
            load(broken)


def test_an_empty_file_or_dict_is_refused(tmp_path):
    broken = tmp_path / "checkpoint.pt"
    broken.write_bytes(b"")
    for load in (load_checkpoint, AgentPolicy):
        with pytest.raises(CheckpointError, match=re.escape(
                f"{broken}: not a readable checkpoint (corrupt or truncated?)")):
            load(broken)
    torch.save({}, broken)
    for load in (load_checkpoint, AgentPolicy):
        with pytest.raises(CheckpointError, match=re.escape(
                f"{broken}: not an echelon agent checkpoint")):
            load(tmp_path)  # the folder holding it


def test_a_pickle_that_is_not_plain_data_is_refused(tmp_path):
    # weights_only=True: loading must not run code, so an arbitrary object is refused.
    broken = tmp_path / "checkpoint.pt"
    torch.save({"format": "echelon-agent", "payload": types.SimpleNamespace(x=1)}, broken)
    with pytest.raises(CheckpointError, match="not a readable checkpoint.*Weights only load failed"):
        load_checkpoint(broken)
