"""Presets resolved into a RunConfig: documented values, overrides, errors, TOML round trip."""

from __future__ import annotations

import json
import tomllib

import numpy as np
import pytest

from echelon import pipeline
from echelon.data.collect import CollectConfig
from echelon.policies.base_stock import RequestMode
from echelon.policies.search import Family, SearchConfig, Space
from echelon.presets import PRESETS, read_preset
from echelon.sim.config import ChainConfig
from echelon.sim.demand import Poisson


def plain(value):
    """Tuples as lists, recursively: what a TOML or JSON reader gives back."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def toml_value(value) -> str:
    """A TOML literal of the plain values ``RunConfig.to_dict`` holds (no TOML writer ships)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return json.dumps(value)  # numbers and basic strings are spelt alike in JSON and TOML
    raise TypeError(f"not a TOML value: {value!r}")


def to_toml(table: dict) -> str:
    top = [f"{k} = {toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    sections = [f"\n[{k}]\n" + "\n".join(f"{kk} = {toml_value(vv)}" for kk, vv in v.items())
                for k, v in table.items() if isinstance(v, dict)]
    return "\n".join(top) + "\n" + "\n".join(sections) + "\n"


@pytest.mark.parametrize("name", ["quick", "paper"])
def test_bundled_presets_resolve_to_their_documented_values(name):
    run = pipeline.resolve(name)
    assert run.name == name and run.seed == 0
    assert run.chain == ChainConfig()  # OR-Gym InvManagement-v1
    assert run.chain.backlog is False and run.chain.demand == Poisson(20.0)
    assert run.search == SearchConfig(space=Space.PAPER, family=Family.BASE_STOCK,
                                      mode=RequestMode.RAW, episodes=100, top_k=5)
    assert run.collect == CollectConfig(episodes=2000, noise_std=0.0)
    assert PRESETS == ("paper", "quick", "regime", "seasonal")  # every TOML file in echelon/presets
    assert pipeline.resolve() == pipeline.resolve("quick")
    # Every value the preset file states is the resolved one.
    for section, table in read_preset(name).items():
        if not isinstance(table, dict):
            assert getattr(run, section) == table, section
            continue
        resolved = run.to_dict()[section]
        for key, value in table.items():
            if key in resolved:
                assert plain(resolved[key]) == value, f"{section}.{key}"


def test_the_paper_preset_is_the_papers_setting():
    run = pipeline.resolve("paper")
    assert run.collect.episodes * run.chain.periods == 60_000
    assert (run.search.space.value, run.search.mode.value, run.search.top_k) == ("paper", "raw", 5)


def test_overrides_apply():
    run = pipeline.resolve("quick", ["seed=3", "collect.episodes=10", "search.mode=clip",
                                     "chain.L=[2,2,2]"])
    assert run.seed == 3
    assert run.collect == CollectConfig(episodes=10, noise_std=0.0)
    assert run.search.mode is RequestMode.CLIP and run.search.top_k == 5
    assert run.chain == ChainConfig(lead_time=(2, 2, 2))
    assert run.chain.observation_size == 9
    assert run.name == "quick"
    # Overrides do not leak into the next resolution of the same preset.
    fresh = pipeline.resolve("quick")
    assert (fresh.seed, fresh.collect.episodes, fresh.search.mode) == (0, 2000, RequestMode.RAW)
    assert fresh.chain == ChainConfig()


def test_override_values_are_toml():
    run = pipeline.resolve("quick", ["collect.noise_std=2.5", "chain.backlog=true", "name=mine",
                                     'search.space="wide"', "search.family=ss",
                                     "chain.demand={law = 'poisson', mu = 12.0}"])
    assert run.collect.noise_std == 2.5 and run.chain.backlog is True and run.name == "mine"
    assert run.search.space is Space.WIDE and run.search.family is Family.SS
    assert run.chain.demand == Poisson(12.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [("collect.episodes=0", r"collect\.episodes must be an integer >= 1, got 0"),
     ("collect.noise_std=-1", r"collect\.noise_std must be >= 0"),
     ("search.top_k=0", r"search\.top_k must be an integer >= 1"),
     ("search.space=grid", r"search\.space"),
     ("search.mode=bogus", r"search\.mode"),
     ("nope=1", r"unknown preset keys \['nope'\]"),
     ("collect.bogus=1", r"unknown keys in \[collect\]: \['bogus'\]"),
     ("chain.bogus=1", "unknown chain parameter 'bogus'"),
     ("chain.L=[2,2]", "lead_time must have length 3"),
     ("seed=-1", r"seed must be an integer in \[0, 2\*\*63\)"),
     ("seed.x=1", "override 'seed.x=1': seed is a value"),
     ("search=1", r"search"),
     ("noequals", "override 'noequals' must look like section.field=value"),
     ("=3", "override '=3' must look like section.field=value")],
)
def test_bad_overrides_raise_naming_the_key(override, message):
    with pytest.raises(ValueError, match=message):
        pipeline.resolve("quick", [override])


def test_search_space_paper_needs_the_base_stock_family():
    with pytest.raises(ValueError, match="search.space 'paper' is the paper's base-stock grid"):
        pipeline.resolve("quick", ["search.family=ss"])


def test_a_toml_file_is_a_preset(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(
        'name = "mine"\nseed = 7\n\n[chain]\nbacklog = true\nL = [1, 2, 3]\n\n'
        '[search]\nspace = "wide"\nfamily = "time-aware"\nmode = "clip"\n'
        'episodes = 20\ntop_k = 2\n\n'
        '[collect]\nepisodes = 30\nnoise_std = 1.5\n'
    )
    run = pipeline.resolve(path, ["collect.episodes=40"])
    assert run.name == "mine" and run.seed == 7
    assert run.chain == ChainConfig(backlog=True, lead_time=(1, 2, 3))
    assert run.search == SearchConfig(space="wide", family="time-aware", mode="clip",
                                      episodes=20, top_k=2)
    assert run.collect == CollectConfig(episodes=40, noise_std=1.5)
    assert pipeline.resolve(str(path)) == pipeline.resolve(path, ["collect.episodes=30"])
    # Absent tables keep their defaults.
    sparse = tmp_path / "sparse.toml"
    sparse.write_text('name = "sparse"\n')
    assert pipeline.resolve(sparse) == pipeline.RunConfig(name="sparse")


def test_preset_errors(tmp_path):
    message = r"preset must be one of \['paper', 'quick', 'regime', 'seasonal'\] or a TOML file"
    with pytest.raises(ValueError, match=message):
        pipeline.resolve("quik")
    bad = tmp_path / "bad.toml"
    bad.write_text("[collect\nepisodes = 3\n")
    with pytest.raises(ValueError, match=f"{bad}: malformed TOML"):
        pipeline.resolve(bad)
    assert read_preset("paper")["collect"] == {"episodes": 2000, "noise_std": 0.0}


def none_paths(value, where=""):
    """Where a nested dict holds None, which TOML cannot write."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in none_paths(v, f"{where}.{k}".lstrip("."))]
    return [where] if value is None else []


def without_none(value):
    """What a TOML writer can keep: keys whose value is None left out."""
    if isinstance(value, dict):
        return {k: without_none(v) for k, v in value.items() if v is not None}
    return value


ROUND_TRIP = [[], ["seed=3", "chain.L=[2,2,2]", "chain.backlog=true", "search.space=wide",
                   "search.family=ss", "collect.noise_std=0.25"]]


@pytest.mark.parametrize("overrides", ROUND_TRIP, ids=["paper", "overridden"])
def test_to_dict_resolves_again_to_the_same_config(tmp_path, overrides):
    run = pipeline.resolve("paper", overrides)
    table = run.to_dict()
    assert json.loads(json.dumps(table)) == plain(table)
    text = to_toml(without_none(table))
    assert tomllib.loads(text) == plain(without_none(table))
    path = tmp_path / "config.toml"
    path.write_text(text)
    again = pipeline.resolve(path)
    assert again == run
    assert plain(again.to_dict()) == plain(table)
    assert table["search"] == {"space": run.search.space.value, "family": run.search.family.value,
                               "mode": run.search.mode.value, "episodes": 100, "top_k": 5}
    assert table["chain"]["demand"] == {"law": "poisson", "mu": 20.0}


def test_to_dict_holds_only_toml_values():
    # "A TOML-ready dict": TOML has no null, so a None makes the saved config.toml unwritable
    # by a TOML writer (tomli_w raises on None).
    for name in PRESETS:
        table = pipeline.resolve(name).to_dict()
        assert none_paths(table) == [], name
        assert tomllib.loads(to_toml(table)) == plain(table)


def test_stages_run_on_their_own_streams():
    run = pipeline.resolve("quick", ["collect.episodes=6", "search.episodes=10", "search.top_k=2"])
    result = pipeline.search_stage(run)
    assert len(result.ranked) == 2 and result.search_episodes == 10
    data = pipeline.collect_stage(run, result)
    assert data.episodes == 6 and len(data.behaviour_policies) == 2
    names = [p["name"] for p in data.behaviour_policies]
    assert names == ["paper-base-stock-1", "paper-base-stock-2"]
    assert [p["params"] for p in data.behaviour_policies] == [c.params for c in result.ranked]
    # Deterministic from the run seed; another seed gives other paths.
    again = pipeline.collect_stage(run, pipeline.search_stage(run))
    np.testing.assert_array_equal(again.rewards, data.rewards)
    other_run = pipeline.resolve("quick", ["seed=1", "collect.episodes=6", "search.episodes=10",
                                           "search.top_k=2"])
    other = pipeline.collect_stage(other_run, pipeline.search_stage(other_run))
    assert not np.array_equal(other.log["demand"], data.log["demand"])


def test_collect_weights_set_the_mixture():
    run = pipeline.resolve("quick", ["collect.episodes=400", "collect.weights=[8, 1, 1, 1, 1]"])
    data = pipeline.collect_stage(run, pipeline.search_stage(run))
    share = np.mean(data.episode_behaviour() == 0)
    assert 0.55 < share < 0.80  # 8/12 = 0.67 expected
    assert [p["weight"] for p in data.behaviour_policies] == [8.0, 1.0, 1.0, 1.0, 1.0]


def test_collect_weights_need_one_per_behaviour():
    with pytest.raises(ValueError, match="collect.weights has 2 weights"):  # before any search
        pipeline.resolve("quick", ["collect.weights=[1, 2]"])
    with pytest.raises(ValueError, match="collect.weights must all be > 0"):
        pipeline.resolve("quick", ["collect.weights=[1, 0, 1, 1, 1]"])


def test_one_demand_parameter_can_be_overridden():
    from echelon.sim.demand import Geometric, Poisson

    assert pipeline.resolve("quick", ["chain.demand.mu=25"]).chain.demand == Poisson(25.0)
    chain = pipeline.resolve("quick", ['chain.demand={law = "geometric", p = 0.05}']).chain
    assert chain.demand == Geometric(0.05)


def test_a_preset_file_without_a_name_is_named_after_the_file(tmp_path):
    preset = tmp_path / "my-run.toml"
    preset.write_text("seed = 3\n")
    assert pipeline.resolve(preset).name == "my-run"
