"""Demand laws: shapes, seeding, moments, support, validation, serialisation and run streams."""

import math

import numpy as np
import pytest

from echelon._limits import SizeLimitError
from echelon.sim import Binomial, DemandPath, DiscreteUniform, Geometric, Poisson, run_streams
from echelon.sim.demand import check_paths, demand_bytes, demand_from_dict, demand_to_dict

LAWS = [Poisson(20.0), Poisson(0.5), Binomial(40, 0.5), Binomial(7, 0.9), DiscreteUniform(10, 31),
        DiscreteUniform(0, 2), Geometric(0.05), Geometric(0.5)]
LAW_IDS = ["poisson20", "poisson0.5", "binom40", "binom7", "uniform10-31", "uniform0-2",
           "geom0.05", "geom0.5"]


@pytest.mark.parametrize("law", LAWS + [DemandPath((3.0, 0.0, 5.0, 1.0, 2.0))],
                         ids=LAW_IDS + ["path"])
def test_sample_shape_dtype_and_whole_numbers(law):
    paths = law.sample(np.random.default_rng(0), 7, 5)
    assert paths.shape == (7, 5)
    assert paths.dtype == np.float64
    assert np.all(paths == np.floor(paths)) and np.all(paths >= 0)


@pytest.mark.parametrize("law", LAWS, ids=LAW_IDS)
def test_same_seed_same_paths_different_seed_different_paths(law):
    first = law.sample(np.random.default_rng(123), 20, 30)
    again = law.sample(np.random.default_rng(123), 20, 30)
    other = law.sample(np.random.default_rng(124), 20, 30)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


@pytest.mark.parametrize("law", LAWS, ids=LAW_IDS)
def test_sample_mean_matches_mean(law):
    paths = law.sample(np.random.default_rng(7), 400, 50)
    standard_error = math.sqrt(law.scipy().var() / paths.size)
    assert law.mean == pytest.approx(law.scipy().mean())
    assert abs(paths.mean() - law.mean) < 4 * standard_error


def test_means_by_formula():
    assert Poisson(3.5).mean == 3.5
    assert Binomial(10, 0.3).mean == pytest.approx(3.0)
    assert DiscreteUniform(10, 31).mean == 20.0
    assert Geometric(0.25).mean == 4.0
    assert DemandPath((1.0, 2.0, 6.0)).mean == 3.0


def test_support_is_respected():
    rng = np.random.default_rng(1)
    uniform = DiscreteUniform(3, 6).sample(rng, 500, 20)
    assert uniform.min() == 3 and uniform.max() == 5
    assert set(np.unique(uniform)) == {3.0, 4.0, 5.0}
    geometric = Geometric(0.6).sample(rng, 500, 20)
    assert geometric.min() == 1
    binomial = Binomial(4, 0.9).sample(rng, 500, 20)
    assert binomial.max() == 4 and binomial.min() >= 0
    assert np.all(Binomial(0, 0.5).sample(rng, 3, 3) == 0)
    assert np.all(Geometric(1.0).sample(rng, 3, 3) == 1)
    assert np.all(Poisson(0.0).sample(rng, 3, 3) == 0)


def test_demand_path_replays_the_same_values_in_every_episode():
    path = DemandPath([4, 0, 9])
    assert path.values == (4.0, 0.0, 9.0)
    paths = path.sample(np.random.default_rng(0), 3, 3)
    assert paths.tolist() == [[4.0, 0.0, 9.0]] * 3
    paths[0, 0] = 99.0  # the sample is a fresh array, not a view of the law's values
    assert path.sample(np.random.default_rng(0), 1, 3).tolist() == [[4.0, 0.0, 9.0]]
    with pytest.raises(ValueError, match="demand path has 3 periods, the chain needs 4"):
        path.sample(np.random.default_rng(0), 2, 4)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Poisson(-0.1), r"demand\.mu"),
        (lambda: Poisson(math.nan), r"demand\.mu"),
        (lambda: Poisson(math.inf), r"demand\.mu"),
        (lambda: Binomial(-1, 0.5), r"demand\.n"),
        (lambda: Binomial(2.5, 0.5), r"demand\.n"),
        (lambda: Binomial(True, 0.5), r"demand\.n"),
        (lambda: Binomial(10, -0.1), r"demand\.p"),
        (lambda: Binomial(10, 1.1), r"demand\.p"),
        (lambda: Binomial(10, math.nan), r"demand\.p"),
        (lambda: DiscreteUniform(-1, 5), r"demand\.low"),
        (lambda: DiscreteUniform(1.5, 5), r"demand\.low"),
        (lambda: DiscreteUniform(5, 5), r"demand\.high"),
        (lambda: DiscreteUniform(5, 3), r"demand\.high"),
        (lambda: Geometric(0.0), r"demand\.p"),
        (lambda: Geometric(1.5), r"demand\.p"),
        (lambda: Geometric(-0.2), r"demand\.p"),
        (lambda: DemandPath(()), r"demand\.values"),
        (lambda: DemandPath((1.0, -1.0)), r"demand\.values"),
        (lambda: DemandPath((1.0, math.inf)), r"demand\.values"),
        (lambda: DemandPath((math.nan,)), r"demand\.values"),
    ],
)
def test_bad_parameters_name_the_parameter(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize(
    ("spec", "law"),
    [
        ({"law": "poisson", "mu": 20.0}, Poisson(20.0)),
        ({"law": "binomial", "n": 40, "p": 0.5}, Binomial(40, 0.5)),
        ({"law": "uniform", "low": 10, "high": 31}, DiscreteUniform(10, 31)),
        ({"law": "geometric", "p": 0.05}, Geometric(0.05)),
        ({"law": "path", "values": [1.0, 2.0, 3.0]}, DemandPath((1.0, 2.0, 3.0))),
    ],
)
def test_demand_dict_round_trip(spec, law):
    assert demand_from_dict(spec) == law
    assert demand_to_dict(law) == spec
    assert demand_from_dict(demand_to_dict(law)) == law


def test_demand_from_dict_rejects_unknown_law_and_parameters():
    with pytest.raises(ValueError, match=r"demand\.law must be one of"):
        demand_from_dict({"law": "gamma", "shape": 2})
    with pytest.raises(ValueError, match=r"demand\.law must be one of"):
        demand_from_dict({"mu": 2})
    with pytest.raises(ValueError, match="bad parameters for demand law 'binomial'"):
        demand_from_dict({"law": "binomial", "n": 4, "q": 0.5})
    with pytest.raises(ValueError, match=r"demand\.mu"):
        demand_from_dict({"law": "poisson", "mu": -3})


def test_demand_to_dict_rejects_foreign_laws():
    class Constant:
        mean = 1.0

        def sample(self, rng, episodes, periods):
            return np.ones((episodes, periods))

    with pytest.raises(ValueError, match="unknown demand law Constant"):
        demand_to_dict(Constant())


def test_check_paths_accepts_one_or_many_paths_and_rejects_bad_ones():
    assert check_paths([1, 2, 3], 3).tolist() == [[1.0, 2.0, 3.0]]
    assert check_paths(np.zeros((4, 3), dtype=int), 3).dtype == np.float64
    with pytest.raises(ValueError, match=r"demand must be shaped \(N, 3\)"):
        check_paths([1, 2], 3)
    with pytest.raises(ValueError, match=r"demand must be shaped \(N, 3\)"):
        check_paths(np.zeros((2, 3, 1)), 3)
    with pytest.raises(ValueError, match="demand must be finite and >= 0"):
        check_paths([1, -1, 0], 3)
    with pytest.raises(ValueError, match="demand must be finite and >= 0"):
        check_paths([1, math.nan, 0], 3)


def test_run_streams_are_four_independent_deterministic_seed_sequences():
    streams = run_streams(42)
    assert streams._fields == ("search", "collect", "train", "test")
    assert all(isinstance(s, np.random.SeedSequence) for s in streams)
    states = [tuple(s.generate_state(4)) for s in streams]
    assert len(set(states)) == 4
    assert [tuple(s.generate_state(4)) for s in run_streams(42)] == states
    assert [tuple(s.generate_state(4)) for s in run_streams(43)] != states
    assert len({s.spawn_key for s in streams}) == 4


def test_test_stream_paths_differ_from_collect_stream_paths():
    streams = run_streams(0)
    law = Poisson(20.0)
    test = law.sample(np.random.default_rng(streams.test), 100, 30)
    collect = law.sample(np.random.default_rng(streams.collect), 100, 30)
    assert not np.array_equal(test, collect)
    # Not a shifted copy either: no test path appears among the collection paths.
    assert not (set(map(tuple, test)) & set(map(tuple, collect)))
    again = law.sample(np.random.default_rng(run_streams(0).test), 100, 30)
    assert np.array_equal(test, again)


@pytest.mark.parametrize("bad", [-1, 1.5, "0", True])
def test_run_streams_rejects_bad_seeds(bad):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        run_streams(bad)


def test_a_parameter_given_as_a_string_names_the_parameter():
    with pytest.raises(ValueError, match="demand.mu"):
        Poisson(mu="20")


@pytest.mark.parametrize("law", LAWS + [DemandPath((3.0,) * 30)], ids=LAW_IDS + ["path"])
def test_sample_refuses_sizes_over_the_memory_limit_before_drawing(law, monkeypatch):
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", "4")
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    with pytest.raises(SizeLimitError, match=r"drawing 1,000,000,000,000 demand paths of 30 "
                                             r"periods would need about .* TiB of memory, over the "
                                             r"limit of 4\.0 GiB; reduce episodes or periods"):
        law.sample(rng, 10**12, 30)
    assert rng.bit_generator.state == state  # nothing was drawn
    assert issubclass(SizeLimitError, ValueError)


def test_the_memory_limit_follows_the_environment(monkeypatch):
    law = Poisson(20.0)
    assert demand_bytes(100, 30) == 16 * 100 * 30  # int64 draws and their float64 copy
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", str(40_000 / 2**30))
    assert law.sample(np.random.default_rng(0), 50, 50).shape == (50, 50)  # exactly 40,000 bytes
    with pytest.raises(SizeLimitError, match=r"reduce episodes or periods, or raise the limit "
                                             r"with ECHELON_MEMORY_LIMIT_GIB=<GiB>"):
        law.sample(np.random.default_rng(0), 51, 50)


@pytest.mark.parametrize(("episodes", "periods", "match"),
                         [(-1, 3, "episodes must be an integer >= 0, got -1"),
                          (2.0, 3, "episodes must be an integer >= 0, got 2.0"),
                          (2, True, "periods must be an integer >= 0, got True")])
def test_sample_refuses_sizes_that_are_not_counts(episodes, periods, match):
    with pytest.raises(ValueError, match=match):
        Poisson(20.0).sample(np.random.default_rng(0), episodes, periods)
