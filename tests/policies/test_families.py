"""The family registry and HeuristicSpec: one entry per family, one description per heuristic."""

import json

import numpy as np
import pytest

from echelon.policies.base_stock import RequestMode
from echelon.policies.families import (
    FAMILIES,
    Family,
    HeuristicSpec,
    from_params,
    make_policy,
    to_params,
    wide_bounds,
)
from echelon.sim import ChainConfig
from echelon.sim.rollout import rollout

CONFIG = ChainConfig()


@pytest.mark.parametrize("family", list(Family))
def test_every_family_has_a_consistent_entry(family):
    entry = FAMILIES[family]
    stages = CONFIG.stages
    assert family.size(stages) == entry.blocks * stages == len(entry.keys) * stages
    lower, upper = wide_bounds(CONFIG, family)
    assert lower.shape == upper.shape == (family.size(stages),) and np.all(lower <= upper)
    middle = np.round((lower + upper) / 2.0)
    params = to_params(family, middle)
    assert set(params) == set(entry.keys)
    assert all(len(values) == stages for values in params.values())
    assert from_params(family, params).tolist() == middle.tolist()
    policy = make_policy(CONFIG, family, middle)
    assert policy.reads_observation is False
    # Only base-stock has no start of its own: every search optimises base-stock levels first.
    assert (entry.start is None) == (family is Family.BASE_STOCK)


def test_the_registry_names_every_family_once():
    assert list(FAMILIES) == list(Family)
    assert [f.value for f in Family] == ["base-stock", "time-aware", "ss", "local",
                                         "decentralized", "decentralized-time-aware",
                                         "time-varying"]


# HeuristicSpec ------------------------------------------------------------------------------------


TIME_AWARE = {"z": [94.0, 214.0, 416.0], "last_order_period": [27, 21, 8]}


def test_spec_to_dict_by_hand_and_back():
    spec = HeuristicSpec(Family.TIME_AWARE, RequestMode.CLIP, TIME_AWARE)
    assert spec.to_dict() == {"family": "time-aware", "mode": "clip", "params": TIME_AWARE}
    assert list(spec.to_dict()) == ["family", "mode", "params"]  # the saved files' key order
    assert HeuristicSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    # Values are accepted for the enums, and become them.
    assert HeuristicSpec("time-aware", "clip", TIME_AWARE) == spec
    assert spec.vector().tolist() == [94.0, 214.0, 416.0, 27.0, 21.0, 8.0]


def test_spec_reads_a_baselines_entry():
    # What tune_baselines writes to baselines.json: the spec's keys and a few more.
    entry = {"family": "base-stock", "mode": "clip", "params": {"z": [81.0, 185.0, 44.0]},
             "rank_mean": 412.5, "evaluated": 311}
    spec = HeuristicSpec.from_dict(entry)
    assert spec == HeuristicSpec(Family.BASE_STOCK, RequestMode.CLIP, {"z": [81.0, 185.0, 44.0]})


def test_spec_policy_acts_as_the_family_policy():
    paths = CONFIG.demand.sample(np.random.default_rng(2), 10, CONFIG.periods)
    spec = HeuristicSpec(Family.TIME_AWARE, RequestMode.RAW, TIME_AWARE)
    direct = make_policy(CONFIG, Family.TIME_AWARE, from_params(Family.TIME_AWARE, TIME_AWARE),
                         RequestMode.RAW)
    mine = rollout(CONFIG, spec.policy(CONFIG), paths, record=True).trajectory["action"]
    theirs = rollout(CONFIG, direct, paths, record=True).trajectory["action"]
    np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"family": "magic", "mode": "clip", "params": {}}, r"heuristic family must be one of"),
        ({"family": "ss", "mode": "round", "params": {}}, r"heuristic mode must be one of"),
        ({"family": "ss", "params": {}},
         r"needs \['family', 'mode', 'params'\], missing \['mode'\]"),
        (["ss"], "must be a JSON object"),
    ],
)
def test_bad_specs_are_refused(data, message):
    with pytest.raises(ValueError, match=message):
        HeuristicSpec.from_dict(data)


def test_spec_parameters_are_checked_when_the_policy_is_built():
    spec = HeuristicSpec(Family.SS, RequestMode.CLIP, {"s": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match=r"ss parameters need \['s', 'S'\], missing \['S'\]"):
        spec.policy(CONFIG)
