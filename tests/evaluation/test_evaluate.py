"""Evaluation on common test paths: blocked heuristics equal one batch, and memory refusals."""

import numpy as np
import pytest

from echelon._limits import SizeLimitError
from echelon.evaluation.evaluate import Kind, blockable, evaluate_bound, evaluate_policy
from echelon.policies.base_stock import (
    DecentralizedBaseStock,
    DecentralizedTimeAwareBaseStock,
    EchelonBaseStock,
    LocalBaseStock,
    ReorderPointOrderUpTo,
    RequestMode,
    TimeAwareBaseStock,
)
from echelon.policies.lp import ShrinkingHorizonLP, plan_bytes
from echelon.policies.mixture import Mixture
from echelon.policies.noise import GaussianNoise
from echelon.sim import ChainConfig
from echelon.sim.rollout import DEFAULT_BLOCK_SIZE, rollout, rollout_bytes

CONFIG = ChainConfig()
LEVELS = np.array([80.0, 180.0, 40.0])


def _heuristics(config):
    return [
        EchelonBaseStock(config, LEVELS, RequestMode.RAW),
        LocalBaseStock(config, [60.0, 90.0, 120.0]),
        TimeAwareBaseStock(config, LEVELS, [25, 20, 12]),
        ReorderPointOrderUpTo(config, [50.0, 120.0, 30.0], [90.0, 200.0, 60.0], RequestMode.RAW),
        DecentralizedBaseStock(config, [150.0, 300.0, 450.0], RequestMode.RAW),
        DecentralizedTimeAwareBaseStock(config, [97.0, 172.0, 90.0], [26, 20, 12]),
    ]


def _fields(result):
    return (result.profit, result.undiscounted_profit, result.service_level, result.mean_on_hand)


@pytest.mark.parametrize("backlog", [False, True])
def test_blocked_heuristics_equal_one_batch_bit_for_bit(backlog):
    config = CONFIG.replace(backlog=backlog)
    # Two full blocks and three episodes more, with fractional demand, so that any change in
    # the order of a sum would show.
    episodes = 2 * DEFAULT_BLOCK_SIZE + 3
    paths = np.random.default_rng(1).uniform(0.0, 45.0, size=(episodes, config.periods))
    for policy in _heuristics(config):
        assert blockable(policy)
        result = evaluate_policy(config, "h", Kind.BASELINE, policy, paths)
        whole = rollout(config, policy, paths)
        want = (whole.profit, whole.undiscounted_profit, whole.service_level, whole.mean_on_hand)
        for got, expected in zip(_fields(result), want):
            assert np.array_equal(got, expected), type(policy).__name__


def test_policies_that_depend_on_their_batch_are_not_blocked():
    rng = np.random.default_rng(0)
    per_episode = EchelonBaseStock(CONFIG, np.tile(LEVELS, (4, 1)))
    assert not blockable(per_episode)
    assert not blockable(TimeAwareBaseStock(CONFIG, LEVELS, np.tile([25, 20, 12], (4, 1))))
    assert not blockable(Mixture([EchelonBaseStock(CONFIG, LEVELS)], np.zeros(4)))
    assert not blockable(GaussianNoise(EchelonBaseStock(CONFIG, LEVELS), 2.0, rng))
    assert not blockable(ShrinkingHorizonLP(CONFIG))

    class Subclass(EchelonBaseStock):  # may keep state of its own
        pass

    assert not blockable(Subclass(CONFIG, LEVELS))


def test_over_the_limit_heuristics_stream_and_other_policies_are_refused(monkeypatch):
    paths = CONFIG.demand.sample(np.random.default_rng(2), 300, CONFIG.periods)
    policy = EchelonBaseStock(CONFIG, LEVELS)
    whole = evaluate_policy(CONFIG, "h", Kind.BASELINE, policy, paths)
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", str(rollout_bytes(CONFIG, 100) / 2**30))
    streamed = evaluate_policy(CONFIG, "h", Kind.BASELINE, policy, paths)
    for got, expected in zip(_fields(streamed), _fields(whole)):
        assert np.array_equal(got, expected)
    mixture = Mixture([policy], np.zeros(300))
    with pytest.raises(SizeLimitError, match=r"evaluating 'mix' on 300 test paths of 30 periods "
                                             r"would need .*reduce evaluate\.episodes"):
        evaluate_policy(CONFIG, "mix", Kind.EXPERT, mixture, paths)


def test_the_bound_is_refused_over_the_limit_before_any_lp(monkeypatch):
    paths = CONFIG.demand.sample(np.random.default_rng(3), 4, CONFIG.periods)
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", str(plan_bytes(CONFIG, 4) / 2**30))
    with pytest.raises(SizeLimitError, match=r"the perfect-information bound on 4 test paths"):
        evaluate_bound(CONFIG, paths)
