"""Gaussian behaviour noise around a policy."""

import math

import numpy as np
import pytest

from echelon.policies import EchelonBaseStock, Policy, RequestMode
from echelon.policies.noise import GaussianNoise
from echelon.sim import ChainConfig, core
from echelon.sim.rollout import rollout

CONFIG = ChainConfig()
# At period 0 of the default chain (on hand [100, 100, 200], nothing in transit) these levels
# ask for 250 - 100, 400 - 200, 700 - 400 raw: far from zero, so the floor at 0 never binds.
LEVELS = [250.0, 400.0, 700.0]
RAW_ORDERS = [150.0, 200.0, 300.0]


class _OnHandEcho:
    """A policy that reads the observation: each stage orders its own on-hand stock."""

    reads_observation = True

    def act(self, obs, state):
        return obs[:, :3].copy()


def _period_zero(episodes):
    return core.reset(CONFIG, np.full((episodes, CONFIG.periods), 20.0))


def _noisy(std, seed, mode=RequestMode.RAW):
    return GaussianNoise(EchelonBaseStock(CONFIG, LEVELS, mode), std, np.random.default_rng(seed))


def test_zero_std_returns_the_wrapped_orders_exactly():
    state = _period_zero(4)
    orders = _noisy(0.0, 0).act(None, state)
    assert orders.tolist() == [RAW_ORDERS] * 4
    # Also over whole episodes: the rollout equals the noiseless one bit for bit.
    demand = CONFIG.demand.sample(np.random.default_rng(1), 8, CONFIG.periods)
    plain = rollout(CONFIG, EchelonBaseStock(CONFIG, LEVELS, RequestMode.CLIP), demand)
    wrapped = rollout(CONFIG, _noisy(0.0, 0, RequestMode.CLIP), demand)
    assert np.array_equal(plain.profit, wrapped.profit)


def test_same_seed_same_orders_different_seed_different_orders():
    state = _period_zero(16)
    first = _noisy(5.0, 42).act(None, state)
    again = _noisy(5.0, 42).act(None, state)
    other = _noisy(5.0, 43).act(None, state)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, np.array([RAW_ORDERS] * 16))


def test_same_seed_gives_the_same_noisy_rollout():
    demand = CONFIG.demand.sample(np.random.default_rng(2), 8, CONFIG.periods)
    first = rollout(CONFIG, _noisy(10.0, 7), demand, record=True)
    again = rollout(CONFIG, _noisy(10.0, 7), demand, record=True)
    other = rollout(CONFIG, _noisy(10.0, 8), demand, record=True)
    assert np.array_equal(first.trajectory["requests"], again.trajectory["requests"])
    assert np.array_equal(first.profit, again.profit)
    assert not np.array_equal(first.trajectory["requests"], other.trajectory["requests"])


def test_orders_are_never_negative():
    # A policy asking for 0 everywhere (levels far below every position): half the noise draws
    # are negative, and all of them must be floored at 0.
    state = _period_zero(2000)
    policy = GaussianNoise(EchelonBaseStock(CONFIG, [0.0, 0.0, 0.0]), 10.0,
                           np.random.default_rng(3))
    orders = policy.act(None, state)
    assert orders.min() == 0.0
    assert np.mean(orders == 0.0) == pytest.approx(0.5, abs=0.02)
    assert orders.max() > 0.0


def test_noise_has_the_given_std():
    state = _period_zero(20_000)
    orders = _noisy(5.0, 11).act(None, state)
    noise = orders - np.array(RAW_ORDERS)
    # 60,000 draws of N(0, 25): the sample std's standard error is 5 / sqrt(2 * 60,000) ~ 0.014,
    # the mean's 5 / sqrt(60,000) ~ 0.02.
    assert noise.std(ddof=1) == pytest.approx(5.0, abs=0.1)
    assert noise.mean() == pytest.approx(0.0, abs=0.1)
    # Each stage's noise alone too (the same std at every stage).
    assert noise.std(axis=0, ddof=1) == pytest.approx([5.0] * 3, abs=0.15)


@pytest.mark.parametrize("std", [-1.0, -1e-9, math.nan, math.inf])
def test_bad_std_raises(std):
    with pytest.raises(ValueError, match="noise std must be a finite number >= 0"):
        _noisy(std, 0)


@pytest.mark.parametrize(("inner", "reads"), [(EchelonBaseStock(CONFIG, LEVELS), False),
                                              (_OnHandEcho(), True)])
def test_reads_observation_follows_the_wrapped_policy(inner, reads):
    policy = GaussianNoise(inner, 1.0, np.random.default_rng(0))
    assert policy.reads_observation is reads
    assert isinstance(policy, Policy)


def test_wraps_a_policy_that_reads_the_observation():
    # The inner policy orders its on-hand [100, 100, 200] at period 0.
    state = _period_zero(3)
    policy = GaussianNoise(_OnHandEcho(), 0.0, np.random.default_rng(0))
    orders = policy.act(core.observation(CONFIG, state), state)
    assert orders.tolist() == [[100.0, 100.0, 200.0]] * 3
    # rollout hands the wrapper the observation (the inner policy would fail on None).
    demand = CONFIG.demand.sample(np.random.default_rng(4), 3, CONFIG.periods)
    wrapped = rollout(CONFIG, policy, demand)
    assert np.array_equal(wrapped.profit, rollout(CONFIG, _OnHandEcho(), demand).profit)
