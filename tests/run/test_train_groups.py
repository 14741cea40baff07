"""How the training stage groups a run's seeds into ensembles."""

from __future__ import annotations

from pathlib import Path

import pytest

from echelon import pipeline
from echelon.run.stages import _groups, agent_variants, ensemble_size, train_jobs


def jobs_of(overrides: list[str]):
    run = pipeline.resolve("quick", overrides)
    return run, train_jobs(agent_variants(run), run.train.seeds, Path("run"), "digest")


def names(groups) -> list[list[str]]:
    return [[job.folder.name for job in group] for group in groups]


def test_auto_trains_each_variants_seeds_together_at_the_quick_width():
    run, jobs = jobs_of(["train.seeds=[0, 1, 2]", 'train.sweep=[]', "train.device=cpu"])
    assert run.train.ensemble == "auto"
    assert names(_groups(jobs, "auto")) == [["iql-s0", "iql-s1", "iql-s2"],
                                            ["bc-s0", "bc-s1", "bc-s2"]]


def test_auto_trains_wide_networks_one_seed_at_a_time_on_a_cpu():
    _, jobs = jobs_of(["train.seeds=[0, 1]", 'train.sweep=[]', "train.device=cpu",
                       "train.preset=paper"])  # 1024 units
    assert ensemble_size(jobs[0].variant, "auto") == 1
    assert names(_groups(jobs, "auto")) == [["iql-s0"], ["iql-s1"], ["bc-s0"], ["bc-s1"]]
    # An explicit size is taken as it is.
    assert names(_groups(jobs, 0)) == [["iql-s0", "iql-s1"], ["bc-s0", "bc-s1"]]


@pytest.mark.parametrize(("ensemble", "sizes"), [(0, [5, 5]), (1, [1] * 10), (2, [2, 2, 1, 2, 2, 1])])
def test_an_explicit_ensemble_size_chunks_each_variant(ensemble, sizes):
    _, jobs = jobs_of(["train.seeds=[0, 1, 2, 3, 4]", 'train.sweep=[]'])
    groups = _groups(jobs, ensemble)
    assert [len(g) for g in groups] == sizes
    assert all(len({job.variant.name for job in g}) == 1 for g in groups)
    assert [job for g in groups for job in g] == jobs  # every job once, in order


def test_a_sweep_of_the_action_scaling_trains_a_variant_beside_the_plain_agent():
    run, jobs = jobs_of(["train.seeds=[0]", 'train.sweep=["iql.action_scaling=data,bounds"]',
                         "train.algorithms=[\"iql\"]"])
    variants = agent_variants(run)
    assert [v.name for v in variants] == ["iql", "iql-action_scaling-data"]
    assert [v.train_config.action_scaling for v in variants] == ["bounds", "data"]
    with pytest.raises(ValueError, match="train.action_scaling must be bounds or data"):
        agent_variants(pipeline.resolve("quick", ['train.sweep=["iql.action_scaling=logged"]']))
