"""Replay of fixed order plans: one class for logged histories and perfect-information plans."""

import numpy as np

from echelon.data import importer
from echelon.evaluation import evaluate
from echelon.policies.replay import PlanReplay
from echelon.sim import ChainConfig
from echelon.sim.rollout import rollout


def test_replay_plays_each_episodes_orders_period_by_period():
    config = ChainConfig(periods=4)
    orders = np.arange(2 * 4 * 3, dtype=np.int64).reshape(2, 4, 3)  # whole units, any dtype
    demand = np.full((2, 4), 5.0)
    result = rollout(config, PlanReplay(orders), demand, record=True)
    np.testing.assert_array_equal(result.trajectory["requests"], orders.astype(np.float64))
    replay = PlanReplay(orders)
    assert replay.orders.dtype == np.float64 and not replay.reads_observation


def test_importer_and_evaluation_replay_with_the_same_class():
    assert importer.PlanReplay is PlanReplay
    assert evaluate.PlanReplay is PlanReplay  # its old import path
