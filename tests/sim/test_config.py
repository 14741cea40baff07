"""ChainConfig: OR-Gym's defaults and short names, validation, serialisation, other lengths."""

import json
import math

import numpy as np
import pytest

from echelon.sim import ChainConfig, DemandPath, Poisson


def _chain(stages, **overrides):
    """A valid chain of the given length, with every per-stage field of the right size."""
    fields = dict(
        initial_inventory=[10.0] * stages,
        replenishment_cost=[1.0] * (stages + 1),
        unfulfilled_penalty=[0.1] * (stages + 1),
        holding_cost=[0.2] * stages,
        capacity=[50.0] * stages,
        lead_time=list(range(1, stages + 1)),
    )
    fields.update(overrides)
    return ChainConfig(**fields)


def test_defaults_are_orgym_invmanagement():
    config = ChainConfig()
    assert config.periods == 30
    assert config.initial_inventory == (100.0, 100.0, 200.0)
    assert config.price == 2.0
    assert config.replenishment_cost == (1.5, 1.0, 0.75, 0.5)
    assert config.unfulfilled_penalty == (0.10, 0.075, 0.05, 0.025)
    assert config.holding_cost == (0.15, 0.10, 0.05)
    assert config.capacity == (100.0, 90.0, 80.0)
    assert config.lead_time == (3, 5, 10)
    assert config.demand == Poisson(20.0)
    assert config.alpha == 0.97
    assert config.backlog is False
    assert config.stages == 3
    assert config.max_lead_time == 10
    assert config.observation_size == 33
    assert config.stage_price.tolist() == [2.0, 1.5, 1.0, 0.75]


def test_orgym_aliases_set_the_named_fields():
    config = ChainConfig.from_kwargs(
        L=[1, 2, 4], I0=[5, 6, 7], p=3, r=[1, 2, 3, 4], k=[0, 0, 0, 0], h=[1, 1, 1], c=[9, 8, 7]
    )
    assert config.lead_time == (1, 2, 4)
    assert config.initial_inventory == (5.0, 6.0, 7.0)
    assert config.price == 3.0
    assert config.replenishment_cost == (1.0, 2.0, 3.0, 4.0)
    assert config.unfulfilled_penalty == (0.0, 0.0, 0.0, 0.0)
    assert config.holding_cost == (1.0, 1.0, 1.0)
    assert config.capacity == (9.0, 8.0, 7.0)
    assert config == ChainConfig(
        lead_time=(1, 2, 4), initial_inventory=(5, 6, 7), price=3, replenishment_cost=(1, 2, 3, 4),
        unfulfilled_penalty=(0, 0, 0, 0), holding_cost=(1, 1, 1), capacity=(9, 8, 7),
    )


def test_field_names_and_aliases_mix():
    config = ChainConfig.from_kwargs(L=[2, 2, 2], periods=10, backlog=True)
    assert (config.lead_time, config.periods, config.backlog) == ((2, 2, 2), 10, True)
    assert config.observation_size == 9


def test_values_are_normalised_to_tuples_of_floats_and_ints():
    config = ChainConfig(lead_time=np.array([3.0, 5.0, 10.0]), capacity=np.array([100, 90, 80]),
                         periods=np.int64(7))
    assert config.lead_time == (3, 5, 10)
    assert all(type(v) is int for v in config.lead_time)
    assert all(type(v) is float for v in config.capacity)
    assert type(config.periods) is int and config.periods == 7


@pytest.mark.parametrize("name", ["replenishment_cost", "unfulfilled_penalty", "holding_cost",
                                  "capacity", "lead_time"])
def test_length_mismatch_names_the_field(name):
    wrong = list(getattr(ChainConfig(), name))[:-1]
    with pytest.raises(ValueError, match=rf"{name} must have length"):
        ChainConfig(**{name: wrong})


def test_empty_initial_inventory_is_rejected():
    with pytest.raises(ValueError, match="initial_inventory"):
        ChainConfig(initial_inventory=[], replenishment_cost=[1.0], unfulfilled_penalty=[0.0],
                    holding_cost=[], capacity=[], lead_time=[])


@pytest.mark.parametrize("name", ["initial_inventory", "replenishment_cost", "unfulfilled_penalty",
                                  "holding_cost", "capacity"])
@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, -math.inf])
def test_negative_or_non_finite_values_name_the_field(name, bad):
    values = list(getattr(ChainConfig(), name))
    values[1] = bad
    with pytest.raises(ValueError, match=rf"{name}\[1\] must be finite"):
        ChainConfig(**{name: values})


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf])
def test_bad_price_is_rejected(bad):
    with pytest.raises(ValueError, match="price"):
        ChainConfig(price=bad)


def test_non_numeric_sequence_names_the_field():
    with pytest.raises(ValueError, match="holding_cost must be a sequence of numbers"):
        ChainConfig(holding_cost=["a", "b", "c"])
    with pytest.raises(ValueError, match="capacity must be one-dimensional"):
        ChainConfig(capacity=[[1, 2, 3]])


@pytest.mark.parametrize("bad", [0.0, -5.0])
def test_capacity_must_be_positive(bad):
    with pytest.raises(ValueError, match=r"capacity\[0\] must be finite and > 0"):
        ChainConfig(capacity=[bad, 90, 80])


def test_zero_costs_and_zero_stock_are_allowed():
    config = ChainConfig(initial_inventory=[0, 0, 0], replenishment_cost=[0] * 4,
                         unfulfilled_penalty=[0] * 4, holding_cost=[0] * 3, price=0)
    assert config.initial_inventory == (0.0, 0.0, 0.0) and config.price == 0.0


def test_lead_time_must_be_whole_and_non_negative():
    with pytest.raises(ValueError,
                       match=r"lead_time\[2\] must be a whole number of periods in \[0, 30\]"):
        ChainConfig(lead_time=[3, 5, -1])
    with pytest.raises(ValueError, match="lead_time must hold whole numbers"):
        ChainConfig(lead_time=[3, 5.5, 10])
    with pytest.raises(ValueError, match="lead_time must hold whole numbers"):
        ChainConfig(lead_time=[3, math.nan, 10])
    assert ChainConfig(lead_time=[0, 0, 0]).observation_size == 3


def test_lead_time_may_not_exceed_the_horizon_or_orgyms_longest_default():
    # L = 100,000 over 30 periods once made 1.4 GB of observations for 3 episodes.
    with pytest.raises(ValueError, match=r"lead_time\[2\] must be a whole number of periods in "
                                         r"\[0, 30\].*got 100000"):
        ChainConfig(lead_time=[3, 5, 100_000])
    with pytest.raises(ValueError, match=r"lead_time\[0\] .* in \[0, 40\].*got 41"):
        ChainConfig(periods=40, lead_time=[41, 1, 1])
    assert ChainConfig(periods=40, lead_time=[40, 1, 1]).max_lead_time == 40
    # OR-Gym's default chain stays valid over any horizon (a conformance fixture plays 5 periods).
    assert ChainConfig(periods=1).lead_time == (3, 5, 10)
    with pytest.raises(ValueError, match=r"lead_time\[1\] .* in \[0, 10\].*got 11"):
        ChainConfig(periods=5, lead_time=[3, 11, 10])


@pytest.mark.parametrize("bad", [0, -3, 2.5, "30", True, None])
def test_periods_must_be_an_integer_at_least_one(bad):
    with pytest.raises(ValueError, match="periods must be an integer >= 1"):
        ChainConfig(periods=bad)


@pytest.mark.parametrize("bad", [0.0, -0.5, 1.0001, math.nan, math.inf])
def test_alpha_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\]"):
        ChainConfig(alpha=bad)


def test_alpha_one_is_allowed():
    assert ChainConfig(alpha=1).alpha == 1.0


def test_backlog_must_be_a_bool():
    with pytest.raises(ValueError, match="backlog must be True or False"):
        ChainConfig(backlog="yes")


def test_unknown_parameter_names_the_key():
    with pytest.raises(ValueError, match="unknown chain parameter 'lead_times'"):
        ChainConfig.from_kwargs(lead_times=[1, 2, 3])
    with pytest.raises(ValueError, match="unknown chain parameter 'mu'"):
        ChainConfig().replace(mu=3)


@pytest.mark.parametrize(
    ("demand", "match"),
    [
        ({"law": "poisson", "mu": -1.0}, r"demand\.mu"),
        ({"law": "binomial", "n": 10, "p": 1.5}, r"demand\.p"),
        ({"law": "uniform", "low": 5, "high": 5}, r"demand\.high"),
        ({"law": "geometric", "p": 0.0}, r"demand\.p"),
        ({"law": "normal", "mu": 3.0}, r"demand\.law"),
        ({"law": "poisson", "lam": 3.0}, r"bad parameters for demand law 'poisson'"),
        ("poisson", "demand must be a demand law or a path"),
        (np.ones((2, 30)), "demand must be a demand law or a path"),
    ],
)
def test_bad_demand_is_rejected(demand, match):
    with pytest.raises(ValueError, match=match):
        ChainConfig(demand=demand)


def test_demand_path_length_must_equal_periods():
    with pytest.raises(ValueError, match="demand path has 4 periods, periods is 5"):
        ChainConfig(periods=5, demand=DemandPath((1, 2, 3, 4)))
    with pytest.raises(ValueError, match="demand path has 4 periods, periods is 5"):
        ChainConfig(periods=5, demand=[1, 2, 3, 4])
    with pytest.raises(ValueError, match=r"demand\.values must be finite and >= 0"):
        ChainConfig(periods=2, demand=[1, -2])


def test_demand_given_as_list_or_dict_becomes_a_law():
    assert ChainConfig(periods=3, demand=[4, 5, 6]).demand == DemandPath((4.0, 5.0, 6.0))
    assert ChainConfig(demand={"law": "poisson", "mu": 7}).demand == Poisson(7)


def test_config_is_frozen():
    with pytest.raises(AttributeError):
        ChainConfig().periods = 5


def test_replace_revalidates():
    with pytest.raises(ValueError, match="periods"):
        ChainConfig().replace(periods=0)
    assert ChainConfig().replace(c=[1, 2, 3]).capacity == (1.0, 2.0, 3.0)


@pytest.mark.parametrize(
    "config",
    [
        ChainConfig(),
        ChainConfig(backlog=True, alpha=1.0, lead_time=(0, 0, 0)),
        ChainConfig(periods=3, demand=DemandPath((1.0, 0.0, 7.0))),
        ChainConfig(demand={"law": "binomial", "n": 12, "p": 0.25}),
        ChainConfig(demand={"law": "uniform", "low": 2, "high": 9}),
        ChainConfig(demand={"law": "geometric", "p": 0.2}),
        _chain(1),
        _chain(5),
    ],
    ids=["default", "v0", "path", "binomial", "uniform", "geometric", "S1", "S5"],
)
def test_to_dict_from_dict_round_trip_through_json(config):
    data = config.to_dict()
    assert set(data) == {
        "periods", "initial_inventory", "price", "replenishment_cost", "unfulfilled_penalty",
        "holding_cost", "capacity", "lead_time", "backlog", "demand", "alpha",
    }
    assert ChainConfig.from_dict(data) == config
    assert ChainConfig.from_dict(json.loads(json.dumps(data))) == config


def test_from_dict_rejects_unknown_keys():
    data = ChainConfig().to_dict()
    data["discount"] = 0.9
    with pytest.raises(ValueError, match="unknown chain parameter 'discount'"):
        ChainConfig.from_dict(data)


@pytest.mark.parametrize(("stages", "lead_time", "size"), [(1, [4], 5), (2, [1, 3], 8),
                                                         (5, [0, 2, 0, 1, 6], 35)])
def test_other_chain_lengths(stages, lead_time, size):
    config = _chain(stages, lead_time=lead_time)
    assert config.stages == stages
    assert config.max_lead_time == max(lead_time)
    assert config.observation_size == size
    assert config.stage_price.shape == (stages + 1,)
    assert config.stage_price[0] == config.price
    assert config.stage_price[1:].tolist() == list(config.replenishment_cost[:-1])


def test_a_field_given_twice_through_its_alias_is_an_error():
    with pytest.raises(ValueError, match="lead_time is given twice"):
        ChainConfig.from_kwargs(L=[1, 1, 1], lead_time=[2, 2, 2])


def test_a_demand_class_instead_of_an_instance_is_an_error():
    with pytest.raises(ValueError, match="demand must be a demand law instance"):
        ChainConfig(demand=Poisson)


@pytest.mark.parametrize("field", ["price", "alpha"])
def test_numbers_given_as_strings_are_rejected(field):
    with pytest.raises(ValueError, match=field):
        ChainConfig(**{field: "0.5"})
