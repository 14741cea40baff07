"""What the networks see: the validation split, normalisation, action scaling, the fingerprint."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from echelon.agents.preprocessing import (
    Preprocessing,
    TransitionTensors,
    dataset_fingerprint,
    split_episodes,
)


def test_validation_holds_out_a_tenth_of_the_episodes():
    train_eps, val_eps = split_episodes(50, 0.1, seed=0)
    assert len(val_eps) == 5 and len(train_eps) == 45
    assert set(train_eps).isdisjoint(val_eps) and set(train_eps) | set(val_eps) == set(range(50))
    again, other = split_episodes(50, 0.1, seed=0), split_episodes(50, 0.1, seed=1)
    np.testing.assert_array_equal(again[1], val_eps)
    assert not np.array_equal(other[1], val_eps)
    assert split_episodes(1, 0.1, seed=0)[1].size == 0  # a single episode is never held out


def test_fit_normalises_the_given_rows_and_scales_orders_to_the_capacities(dataset, chain):
    rows = np.arange(20)
    prep = Preprocessing.fit(dataset, rows, time_feature=True)
    assert prep.obs_mean.shape == (chain.observation_size + 1,)
    np.testing.assert_allclose(prep.obs_mean[:-1], dataset.observations[rows].mean(axis=0))
    assert prep.obs_mean[-1] == pytest.approx(dataset.periods[rows].mean() / chain.periods)
    assert np.all(prep.obs_std >= 1e-3)
    normalised = prep.observations(dataset.observations[rows], dataset.periods[rows])
    assert normalised.dtype == np.float32
    np.testing.assert_allclose(normalised.mean(axis=0), 0.0, atol=1e-5)
    # capacities (100, 90, 80): 0 -> -1, capacity -> 1, half -> 0; orders beyond are clipped back
    orders = np.array([[0.0, 90.0, 40.0]])
    np.testing.assert_allclose(prep.scale_actions(orders), [[-1.0, 1.0, 0.0]])
    np.testing.assert_allclose(prep.unscale_actions(prep.scale_actions(orders)), orders)
    np.testing.assert_allclose(prep.unscale_actions(np.array([[-3.0, 3.0, 0.0]])),
                               [[0.0, 90.0, 40.0]])


def test_preprocessing_round_trips_through_its_dict(dataset):
    prep = Preprocessing.fit(dataset, np.arange(len(dataset)), time_feature=False)
    again = Preprocessing.from_dict(prep.to_dict())
    for field in dataclasses.fields(Preprocessing):
        np.testing.assert_array_equal(getattr(again, field.name), getattr(prep, field.name))


def test_data_scaling_maps_the_logged_range_and_plays_within_the_bounds(dataset, chain):
    rows = np.arange(60)
    prep = Preprocessing.fit(dataset, rows, time_feature=False, action_scaling="data")
    logged = dataset.actions[rows]
    np.testing.assert_array_equal(prep.action_range[0], logged.min(axis=0))
    np.testing.assert_array_equal(prep.action_range[1], logged.max(axis=0))
    np.testing.assert_array_equal(prep.action_high, chain.capacity)  # the env's bounds stay
    scaled = prep.scale_actions(logged)
    assert scaled.min(axis=0) == pytest.approx(-1.0) and scaled.max(axis=0) == pytest.approx(1.0)
    np.testing.assert_allclose(prep.unscale_actions(scaled), np.clip(logged, 0, chain.capacity),
                               atol=1e-4)
    # -1 and 1 stand for the logged extremes; what is played stays within [0, capacity]
    extremes = prep.unscale_actions(np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]))
    np.testing.assert_allclose(extremes, np.clip([logged.min(axis=0), logged.max(axis=0)], 0,
                                                 chain.capacity))
    again = Preprocessing.from_dict(prep.to_dict())
    np.testing.assert_array_equal(again.action_range[1], prep.action_range[1])
    # A dict written before the option (no scale keys) scales over the bounds, as it did.
    bounds = Preprocessing.fit(dataset, rows, time_feature=False)
    assert "scale_low" not in bounds.to_dict()
    np.testing.assert_array_equal(bounds.action_range[1], chain.capacity)
    one = {k: v for k, v in prep.to_dict().items() if k != "scale_high"}
    with pytest.raises(ValueError, match="both"):
        Preprocessing.from_dict(one)
    with pytest.raises(ValueError, match="train.action_scaling must be one of"):
        Preprocessing.fit(dataset, rows, time_feature=False, action_scaling="percentile")


def test_a_stage_whose_logged_orders_never_vary_keeps_the_bounds(dataset, chain):
    flat = dataclasses.replace(dataset, actions=dataset.actions.copy())
    flat.actions[:, 1] = 7.0
    prep = Preprocessing.fit(flat, np.arange(60), time_feature=False, action_scaling="data")
    assert (prep.action_range[0][1], prep.action_range[1][1]) == (0.0, chain.capacity[1])
    assert prep.action_range[1][0] == flat.actions[:60, 0].max()


def test_the_fingerprint_changes_with_the_transitions(dataset):
    assert dataset_fingerprint(dataset) == dataset_fingerprint(dataclasses.replace(dataset))
    changed = dataclasses.replace(dataset, rewards=dataset.rewards + 1.0)
    assert dataset_fingerprint(changed) != dataset_fingerprint(dataset)


def test_tensors_hold_a_split_and_index_batches(dataset):
    prep = Preprocessing.fit(dataset, np.arange(len(dataset)), time_feature=False)
    rows = np.array([3, 7, 11])
    split = TransitionTensors(dataset, rows, prep, reward_scale=0.5, device=torch.device("cpu"))
    assert split.size == 3
    batch = split.batch(torch.tensor([2, 0]))
    assert batch.observations.shape == (2, dataset.observations.shape[1])
    assert batch.rewards.shape == batch.terminations.shape == (2, 1)
    np.testing.assert_allclose(batch.rewards[:, 0].numpy(), dataset.rewards[[11, 3]] * 0.5,
                               rtol=1e-6)
