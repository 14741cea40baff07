"""The named agent presets: the paper's settings written out, and every algorithm under each."""

from __future__ import annotations

import dataclasses

import pytest

from echelon.agents import ALGORITHMS, TrainConfig, algorithm_config
from echelon.agents.presets import AGENT_PRESETS, PRESETS, agent_preset


def test_the_paper_preset_is_the_papers_iql():
    algo, train = agent_preset("iql", "paper")
    assert (algo.hidden, algo.learning_rate, algo.gamma, algo.expectile, algo.temperature,
            algo.actor_lr_schedule) == ((1024, 1024), 3e-6, 0.99, 0.7, 1.0, "constant")
    assert (train.epochs, train.batch_size) == (100, 512)


def test_the_paper_preset_gives_every_algorithm_the_papers_network():
    for algorithm in ALGORITHMS:
        algo, train = agent_preset(algorithm, "paper")
        assert algo.hidden == (1024, 1024) and train == TrainConfig(epochs=100, batch_size=512)
    cql, _ = agent_preset("cql", "paper")
    assert (cql.actor_learning_rate, cql.critic_learning_rate) == (3e-6, 3e-6)
    # the entropy weight keeps its own rate
    assert cql.entropy_learning_rate == algorithm_config("cql").entropy_learning_rate
    assert agent_preset("td3", "paper")[0].bc_weight == 0.0  # still plain TD3


@pytest.mark.parametrize("preset", list(AGENT_PRESETS))
@pytest.mark.parametrize("algorithm", list(ALGORITHMS))
def test_every_algorithm_has_every_preset(algorithm, preset):
    algo, train = agent_preset(algorithm, preset, seed=3, device="cpu")
    assert isinstance(algo, ALGORITHMS[algorithm].config)
    assert (train.seed, train.device) == (3, "cpu")
    assert (train.epochs, train.batch_size) == (AGENT_PRESETS[preset].epochs,
                                                AGENT_PRESETS[preset].batch_size)
    if not AGENT_PRESETS[preset].paper_settings:
        assert algo == algorithm_config(algorithm)


def test_default_and_quick_differ_only_in_epochs():
    for algorithm in ALGORITHMS:
        (algo, default), (again, quick) = (agent_preset(algorithm, name)
                                           for name in ("default", "quick"))
        assert algo == again and dataclasses.replace(default, epochs=20) == quick


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match=r"agent preset must be one of \['paper', 'default', "
                                         r"'quick'\], got 'fast'"):
        agent_preset("iql", "fast")
    with pytest.raises(ValueError, match="agent preset must be one of"):
        agent_preset("iql", ["paper"])
    with pytest.raises(ValueError, match="algorithm must be one of"):
        agent_preset("dqn", "paper")


def test_the_old_name_lists_the_presets():
    assert PRESETS == tuple(AGENT_PRESETS) == ("paper", "default", "quick")
