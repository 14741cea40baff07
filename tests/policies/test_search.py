"""Parameter search: the paper's grid against brute force, and the wide-bounds optimiser."""

import itertools
import math

import numpy as np
import pytest

from echelon._limits import SizeLimitError
from echelon.policies import search
from echelon.policies.base_stock import (
    EchelonBaseStock,
    LocalBaseStock,
    ReorderPointOrderUpTo,
    RequestMode,
    TimeAwareBaseStock,
)
from echelon.policies.search import (
    Family,
    SearchConfig,
    evaluate,
    from_params,
    grid_search,
    make_policy,
    optimize,
    paper_grid,
    run_search,
    to_params,
    wide_bounds,
)
from echelon.sim import ChainConfig
from echelon.sim.rollout import rollout

CONFIG = ChainConfig()


def _paths(seed, episodes):
    return CONFIG.demand.sample(np.random.default_rng(seed), episodes, CONFIG.periods)


# One example vector per family, for the default chain (S = 3, T = 30).
VECTORS = {
    Family.BASE_STOCK: np.array([[80.0, 180.0, 40.0], [100.0, 220.0, 450.0], [0.0, 0.0, 0.0]]),
    # z, then last_order_period (-1 never, 29 always).
    Family.TIME_AWARE: np.array([[100.0, 220.0, 450.0, 26.0, 21.0, 8.0],
                                 [100.0, 220.0, 450.0, 29.0, 29.0, 29.0],
                                 [80.0, 180.0, 40.0, -1.0, 0.0, 15.0]]),
    # s, then the gap S - s.
    Family.SS: np.array([[60.0, 150.0, 300.0, 40.0, 60.0, 150.0],
                         [80.0, 180.0, 400.0, 0.0, 0.0, 0.0],
                         [30.0, 100.0, 200.0, 90.0, 10.0, 300.0]]),
    # local levels z of each stage's own position.
    Family.LOCAL: np.array([[80.0, 100.0, 40.0], [60.0, 120.0, 250.0], [0.0, 0.0, 0.0]]),
    # each third of the horizon's levels z1, z2, z3.
    Family.TIME_VARYING: np.array([[80.0, 180.0, 40.0, 90.0, 200.0, 40.0, 20.0, 50.0, 0.0],
                                   [100.0, 220.0, 450.0] * 3, [0.0] * 9]),
    # levels z of the position each stage sees.
    Family.DECENTRALIZED: np.array([[80.0, 100.0, 40.0], [60.0, 120.0, 250.0], [0.0, 0.0, 0.0]]),
    # z, then last_order_period.
    Family.DECENTRALIZED_TIME_AWARE: np.array([[100.0, 130.0, 220.0, 26.0, 21.0, 8.0],
                                               [100.0, 130.0, 220.0, 29.0, 29.0, 29.0],
                                               [80.0, 100.0, 40.0, -1.0, 0.0, 15.0]]),
}


# Grid search against brute force -----------------------------------------------------------------


@pytest.mark.parametrize("mode", list(RequestMode))
def test_grid_search_equals_a_brute_force_loop(mode):
    paths = _paths(0, 20)
    grid = np.array(list(itertools.product([60.0, 100.0, 140.0], [150.0, 200.0, 250.0],
                                           [0.0, 200.0, 400.0])))
    brute = []
    for index, z in enumerate(grid):
        profit = rollout(CONFIG, EchelonBaseStock(CONFIG, z, mode), paths).profit
        std = float(np.std(profit, ddof=1))
        brute.append((-float(np.mean(profit)), index, z.tolist(), std, std / math.sqrt(20)))
    brute.sort()  # by mean descending, ties by grid order (a stable sort)

    for top_k in (5, 27, 100):
        result = grid_search(CONFIG, paths, grid=grid, mode=mode, top_k=top_k)
        assert len(result.ranked) == min(top_k, 27)
        for cand, (neg_mean, _, z, std, se) in zip(result.ranked, brute):
            assert cand.params == {"z": z}
            assert cand.mean == -neg_mean
            assert cand.std == std
            assert cand.se == se
            assert cand.search_mean is None
        assert result.evaluated == 27
        assert result.search_episodes == result.rank_episodes == 20
        assert result.family is Family.BASE_STOCK and result.mode is mode
        assert result.best is result.ranked[0]
    # The means are strictly ordered here (no ties), so the top 5 are well defined.
    means = [-b[0] for b in brute]
    assert len(set(means)) == 27


def test_grid_search_result_to_dict():
    paths = _paths(1, 5)
    result = grid_search(CONFIG, paths, grid=[[80.0, 180.0, 40.0], [90.0, 190.0, 50.0]], top_k=1)
    out = result.to_dict()
    assert out["family"] == "base-stock" and out["mode"] == "clip" and out["space"] == "grid"
    assert out["evaluated"] == 2 and len(out["ranked"]) == 1
    assert set(out["ranked"][0]) == {"params", "mean", "std", "se"}


def test_grid_search_rejects_top_k_below_one():
    with pytest.raises(ValueError, match="top_k must be >= 1"):
        grid_search(CONFIG, _paths(0, 2), grid=[[80.0, 180.0, 40.0]], top_k=0)


def test_one_path_gives_nan_std():
    result = grid_search(CONFIG, _paths(0, 1), grid=[[80.0, 180.0, 40.0]], top_k=1)
    assert math.isnan(result.best.std) and math.isnan(result.best.se)
    assert math.isfinite(result.best.mean)


# evaluate and make_policy ------------------------------------------------------------------------


@pytest.mark.parametrize("family", list(Family))
@pytest.mark.parametrize("mode", list(RequestMode))
def test_evaluate_equals_one_rollout_per_vector(family, mode):
    paths = _paths(2, 12)
    profits = evaluate(CONFIG, family, VECTORS[family], paths, mode)
    assert profits.shape == (3, 12)
    for vector, row in zip(VECTORS[family], profits):
        alone = rollout(CONFIG, make_policy(CONFIG, family, vector, mode), paths).profit
        assert np.array_equal(row, alone)
    # Different settings do differ on common paths.
    assert not np.array_equal(profits[0], profits[1])


def test_evaluate_in_chunks_equals_one_chunk(monkeypatch):
    paths = _paths(3, 10)
    vectors = VECTORS[Family.TIME_AWARE]
    whole = evaluate(CONFIG, Family.TIME_AWARE, vectors, paths)
    # At most 25 episodes of T periods per call: two vectors (20 episodes) per chunk, so chunks
    # of 2 and 1.
    monkeypatch.setattr(search, "_VALUES_PER_CALL", 25 * CONFIG.periods)
    done = []
    chunked = evaluate(CONFIG, Family.TIME_AWARE, vectors, paths, on_chunk=done.append)
    assert done == [2, 1]
    assert np.array_equal(chunked, whole)


def test_make_policy_builds_each_family():
    base = make_policy(CONFIG, Family.BASE_STOCK, VECTORS[Family.BASE_STOCK][0], RequestMode.RAW)
    assert isinstance(base, EchelonBaseStock) and base.mode is RequestMode.RAW
    assert base.levels.tolist() == [80.0, 180.0, 40.0]
    timed = make_policy(CONFIG, Family.TIME_AWARE, VECTORS[Family.TIME_AWARE])
    assert isinstance(timed, TimeAwareBaseStock)
    assert timed.base.levels[0].tolist() == [100.0, 220.0, 450.0]
    assert timed.last_order_period[2].tolist() == [-1.0, 0.0, 15.0]
    ss = make_policy(CONFIG, Family.SS, VECTORS[Family.SS][0])
    assert isinstance(ss, ReorderPointOrderUpTo)
    # S = s + gap: 60 + 40, 150 + 60, 300 + 150.
    assert ss.reorder_point.tolist() == [60.0, 150.0, 300.0]
    assert ss.order_up_to.tolist() == [100.0, 210.0, 450.0]
    local = make_policy(CONFIG, Family.LOCAL, VECTORS[Family.LOCAL][1], RequestMode.RAW)
    assert isinstance(local, LocalBaseStock) and local.mode is RequestMode.RAW
    assert local.levels.tolist() == [60.0, 120.0, 250.0]


@pytest.mark.parametrize(("family", "size"), [(Family.BASE_STOCK, 3), (Family.TIME_AWARE, 6),
                                              (Family.SS, 6), (Family.LOCAL, 3),
                                              (Family.DECENTRALIZED, 3),
                                              (Family.DECENTRALIZED_TIME_AWARE, 6)])
def test_make_policy_rejects_wrong_vector_length(family, size):
    assert family.size(CONFIG.stages) == size
    with pytest.raises(ValueError, match=f"need {size} values for 3 stages"):
        make_policy(CONFIG, family, np.zeros(size + 1))


# Parameter names ---------------------------------------------------------------------------------


def test_to_params_by_hand():
    assert to_params(Family.BASE_STOCK, np.array([80.0, 180.0, 40.0])) == {"z": [80.0, 180.0, 40.0]}
    timed = to_params(Family.TIME_AWARE, VECTORS[Family.TIME_AWARE][0])
    assert timed == {"z": [100.0, 220.0, 450.0], "last_order_period": [26, 21, 8]}
    assert all(type(v) is int for v in timed["last_order_period"])
    # s and gap [40, 60, 150] -> S = [100, 210, 450].
    assert to_params(Family.SS, VECTORS[Family.SS][0]) == {
        "s": [60.0, 150.0, 300.0], "S": [100.0, 210.0, 450.0]}


@pytest.mark.parametrize("family", list(Family))
def test_params_round_trip(family):
    for vector in VECTORS[family]:
        back = from_params(family, to_params(family, vector))
        assert back.dtype == np.float64
        assert back.tolist() == vector.tolist()


@pytest.mark.parametrize(
    ("family", "params", "missing"),
    [
        (Family.BASE_STOCK, {"s": [1.0]}, "['z']"),
        (Family.TIME_AWARE, {"z": [1.0, 2.0, 3.0]}, "['last_order_period']"),
        (Family.SS, {"S": [1.0, 2.0, 3.0]}, "['s']"),
        (Family.SS, {}, "['s', 'S']"),
        (Family.LOCAL, {"S": [1.0]}, "['z']"),
    ],
)
def test_from_params_missing_key_raises(family, params, missing):
    with pytest.raises(ValueError, match=rf"{family.value} parameters need .*missing {missing}"
                       .replace("[", r"\[").replace("]", r"\]")):
        from_params(family, params)


# Grids and bounds --------------------------------------------------------------------------------


def test_paper_grid_has_the_papers_2744_settings():
    grid = paper_grid(3)
    assert grid.shape == (2744, 3)  # 14 levels per stage, 14^3
    assert len({tuple(row) for row in grid}) == 2744
    for column in grid.T:
        assert np.unique(column).tolist() == [float(v) for v in range(40, 301, 20)]
    assert grid.min() == 40.0 and grid.max() == 300.0


def test_wide_bounds_by_hand():
    # Cumulative lead times + 1: [4, 9, 19]; 3 * 20 * [4, 9, 19] + max(I0) = 200.
    high = [440.0, 740.0, 1340.0]
    lower, upper = wide_bounds(CONFIG, Family.BASE_STOCK)
    assert lower.tolist() == [0.0, 0.0, 0.0] and upper.tolist() == high  # 0: never order
    lower, upper = wide_bounds(CONFIG, Family.TIME_AWARE)
    assert lower.tolist() == [0.0, 0.0, 0.0, -1.0, -1.0, -1.0]
    assert upper.tolist() == high + [29.0, 29.0, 29.0]
    lower, upper = wide_bounds(CONFIG, Family.SS)
    assert lower.tolist() == [0.0] * 6 and upper.tolist() == high + high
    lower, upper = wide_bounds(CONFIG, Family.LOCAL)
    assert lower.tolist() == [0.0, 0.0, 0.0] and upper.tolist() == high


def test_paper_grid_lies_within_the_wide_bounds():
    lower, upper = wide_bounds(CONFIG, Family.BASE_STOCK)
    grid = paper_grid(CONFIG.stages)
    assert np.all(grid >= lower) and np.all(grid <= upper)


# optimize ----------------------------------------------------------------------------------------

# A small search: the default chain on 30 search and 30 ranking paths, a 3^3 coarse grid.
SMALL = dict(coarse_budget=27, starts=2, top_k=3)


@pytest.fixture(scope="module")
def paths():
    return _paths(7, 30), _paths(8, 30)


@pytest.fixture(scope="module")
def base_results(paths):
    search_paths, rank_paths = paths
    return {mode: optimize(CONFIG, Family.BASE_STOCK, search_paths, rank_paths, mode=mode, **SMALL)
            for mode in RequestMode}


@pytest.mark.parametrize("mode", list(RequestMode))
def test_optimize_base_stock_beats_the_paper_grid_on_the_search_paths(paths, base_results, mode):
    search_paths, _ = paths
    lower, upper = wide_bounds(CONFIG, Family.BASE_STOCK)
    grid = paper_grid(CONFIG.stages)
    assert np.all(grid >= lower) and np.all(grid <= upper)  # the wide space contains the grid
    grid_best = evaluate(CONFIG, Family.BASE_STOCK, grid, search_paths, mode).mean(axis=1).max()
    best_found = max(c.search_mean for c in base_results[mode].ranked)
    assert best_found >= grid_best


@pytest.mark.parametrize("mode", list(RequestMode))
def test_optimize_ranks_its_finalists_on_the_ranking_paths(paths, base_results, mode):
    search_paths, rank_paths = paths
    result = base_results[mode]
    assert len(result.ranked) == 3
    assert result.search_episodes == 30 and result.rank_episodes == 30
    assert result.info == {"space": "wide"} and result.mode is mode
    means = [c.mean for c in result.ranked]
    assert means == sorted(means, reverse=True)
    vectors = np.array([from_params(Family.BASE_STOCK, c.params) for c in result.ranked])
    assert len({tuple(v) for v in vectors}) == 3
    lower, upper = wide_bounds(CONFIG, Family.BASE_STOCK)
    assert np.all(vectors >= lower) and np.all(vectors <= upper)
    on_rank = evaluate(CONFIG, Family.BASE_STOCK, vectors, rank_paths, mode)
    on_search = evaluate(CONFIG, Family.BASE_STOCK, vectors, search_paths, mode)
    for cand, rank_row, search_row in zip(result.ranked, on_rank, on_search):
        assert cand.mean == rank_row.mean()
        assert cand.std == rank_row.std(ddof=1)
        assert cand.se == rank_row.std(ddof=1) / math.sqrt(30)
        assert cand.search_mean is not None
        assert cand.search_mean == search_row.mean()
    # The ranking paths are not the search paths: the means differ.
    assert all(c.mean != c.search_mean for c in result.ranked)
    # The pattern search went beyond the 27 points of the coarse grid.
    assert result.evaluated > 27
    assert "search_mean" in result.to_dict()["ranked"][0]


def test_optimize_is_deterministic(paths, base_results):
    search_paths, rank_paths = paths
    again = optimize(CONFIG, Family.BASE_STOCK, search_paths, rank_paths, mode=RequestMode.CLIP,
                     **SMALL)
    assert again.to_dict() == base_results[RequestMode.CLIP].to_dict()


@pytest.mark.parametrize("family", [Family.TIME_AWARE, Family.SS])
@pytest.mark.parametrize("mode", list(RequestMode))
def test_richer_families_do_at_least_as_well_as_base_stock(paths, base_results, family, mode):
    # Both contain base-stock (time-aware with last_order_period = T-1, (s, S) with s = S) and
    # start from the best base-stock levels of the same search, so on the search paths they
    # can only do better.
    search_paths, rank_paths = paths
    result = optimize(CONFIG, family, search_paths, rank_paths, mode=mode, **SMALL)
    base_best = max(c.search_mean for c in base_results[mode].ranked)
    assert max(c.search_mean for c in result.ranked) >= base_best
    lower, upper = wide_bounds(CONFIG, family)
    for cand in result.ranked:
        vector = from_params(family, cand.params)
        assert np.all(vector >= lower) and np.all(vector <= upper)
    if family is Family.TIME_AWARE:
        for cand in result.ranked:
            last = cand.params["last_order_period"]
            assert all(isinstance(v, int) and -1 <= v <= 29 for v in last)
    else:
        for cand in result.ranked:
            assert all(big >= small for small, big in zip(cand.params["s"], cand.params["S"]))


def test_optimize_local_base_stock_improves_on_its_starting_points(paths, base_results):
    # The local search starts from the coarse grid and from the best echelon levels as local
    # ones (z_i - z_{i-1}); its pattern search can only improve on them on the search paths.
    search_paths, rank_paths = paths
    result = optimize(CONFIG, Family.LOCAL, search_paths, rank_paths, **SMALL)
    best_levels = sorted(base_results[RequestMode.CLIP].ranked, key=lambda c: -c.search_mean)
    levels = np.array([from_params(Family.BASE_STOCK, c.params) for c in best_levels[:2]])
    seeds = np.maximum(np.diff(levels, axis=1, prepend=0.0), 0.0)
    seeded = evaluate(CONFIG, Family.LOCAL, seeds, search_paths).mean(axis=1).max()
    assert max(c.search_mean for c in result.ranked) >= seeded
    assert result.family is Family.LOCAL and len(result.ranked) == 3
    lower, upper = wide_bounds(CONFIG, Family.LOCAL)
    for cand in result.ranked:
        vector = from_params(Family.LOCAL, cand.params)
        assert np.all(vector >= lower) and np.all(vector <= upper)


def test_optimize_rejects_bad_counts(paths):
    search_paths, rank_paths = paths
    with pytest.raises(ValueError, match="top_k and starts must be >= 1"):
        optimize(CONFIG, Family.BASE_STOCK, search_paths, rank_paths, top_k=0)
    with pytest.raises(ValueError, match="top_k and starts must be >= 1"):
        optimize(CONFIG, Family.BASE_STOCK, search_paths, rank_paths, starts=0)


def test_long_horizons_are_scored_in_smaller_calls_with_the_same_profits(monkeypatch):
    config = ChainConfig(periods=400)
    paths = config.demand.sample(np.random.default_rng(4), 6, config.periods)
    vectors = np.array([[80.0, 180.0, 40.0], [100.0, 220.0, 300.0], [60.0, 90.0, 120.0]])
    # Two vectors' 12 episodes of 400 periods fit in a call of 5,000 values, not three.
    monkeypatch.setattr(search, "_VALUES_PER_CALL", 5_000)
    done = []
    profits = evaluate(config, Family.BASE_STOCK, vectors, paths, on_chunk=done.append)
    assert done == [2, 1]
    for vector, row in zip(vectors, profits):
        assert np.array_equal(row, rollout(config, EchelonBaseStock(config, vector), paths).profit)


def test_scoring_is_refused_over_the_memory_limit(monkeypatch):
    paths = _paths(0, 50)
    grid = paper_grid(3)
    needed = search.search_bytes(CONFIG, len(grid), 50)
    assert needed >= 8 * len(grid) * 50  # the (K, E) profits at least
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", str(needed / 2**30 / 2))
    with pytest.raises(SizeLimitError, match=r"scoring 2,744 parameter settings on 50 demand paths "
                                             r"of 30 periods.*reduce search\.episodes"):
        evaluate(CONFIG, Family.BASE_STOCK, grid, paths)


def test_a_search_on_too_many_paths_is_refused_before_drawing(monkeypatch):
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", "4")
    for space, family in (("paper", "base-stock"), ("wide", "time-aware")):
        settings = SearchConfig(space=space, family=family, episodes=10**8)
        with pytest.raises(SizeLimitError, match=rf"a {space} search on 100,000,000 demand paths "
                                                 r"of 30 periods.*reduce search\.episodes"):
            run_search(CONFIG, settings, np.random.SeedSequence(0))


def test_the_paper_grid_of_many_stages_is_refused_before_it_is_built(monkeypatch):
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", "4")
    assert len(paper_grid(3)) == 14**3 and len(search.PAPER_LEVELS) == 14
    with pytest.raises(SizeLimitError, match=r"the paper's grid of 20,661,046,784 settings for 9 "
                                             r"stages.*reduce the number of stages"):
        paper_grid(9)
