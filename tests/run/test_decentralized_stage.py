"""The decentralized view in a run: per-stage logs and agents, their evaluation and the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from echelon import pipeline
from echelon.agents.decentralized import load_decentralized
from echelon.data.stage_split import load_stage_split
from echelon.evaluation.evaluate import Kind, evaluate_policy
from echelon.run.stages import held_out_paths

TINY = [
    "collect.episodes=40",
    "train.epochs=1",
    "train.seeds=[0, 1, 2]",
    "train.sweep=[]",
    "train.ensemble=1",
    "evaluate.episodes=30",
    "evaluate.paper_episodes=20",
    "evaluate.tuning_episodes=10",
    "evaluate.bootstrap=200",
    "model.enabled=false",
    'evaluate.baselines=["paper-best", "tuned", "time-aware", "decentralized", '
    '"decentralized-time-aware", "oracle"]',
    "decentralized.enabled=true",
    "decentralized.seeds=2",
]
STAGES = ("retailer", "distributor", "manufacturer")
JOINT = [f"iql-{reward}-s{seed}" for reward in ("local", "profit", "team") for seed in (0, 1)] + [
    f"bc-any-s{seed}" for seed in (0, 1)]


@pytest.fixture(scope="module")
def finished_run(reproduce_quick):
    return reproduce_quick(TINY)


def test_each_reward_has_its_logs_and_each_seed_its_stage_agents(finished_run):
    run, out, _, lines = finished_run
    for reward in ("local", "profit", "team"):
        split = load_stage_split(out / "stages" / reward)
        assert split.reward.value == reward and split.chain == run.chain
    for name in JOINT:
        for stage in STAGES:
            assert (out / "agents" / "decentralized" / name / stage / "checkpoint.pt").is_file()
        assert (out / "agents" / "decentralized" / name / "decentralized.json").is_file()
    # BC reads no reward: trained once; the seeds are the first two of train.seeds.
    assert not (out / "agents" / "decentralized" / "bc-local-s0").exists()
    assert not (out / "agents" / "decentralized" / "iql-local-s2").exists()
    assert "[5/8] decentralized view: per-stage logs and agents: iql, bc x rewards" in "\n".join(lines)


def test_the_joint_agents_are_evaluated_on_the_run_s_paths(finished_run):
    run, out, _, _ = finished_run
    policies = json.loads((out / "eval.json").read_text())["policies"]
    joint = [p for p in policies if p["kind"] == Kind.DECENTRALIZED.value]
    assert sorted(p["name"] for p in joint) == sorted(
        [f"iql-decentralized-{r} seed {s}" for r in ("local", "profit", "team") for s in (0, 1)]
        + [f"bc-decentralized-any seed {s}" for s in (0, 1)])
    first = next(p for p in joint if p["name"] == "iql-decentralized-team seed 1")
    assert first["params"] == {"variant": "iql-decentralized-team", "algorithm": "iql",
                               "reward": "team", "seed": 1,
                               "checkpoint": "agents/decentralized/iql-team-s1"}
    again = evaluate_policy(run.chain, "again", Kind.DECENTRALIZED,
                            load_decentralized(out / first["params"]["checkpoint"], run.chain),
                            held_out_paths(run))
    np.testing.assert_array_equal(again.profit, first["profit"])
    names = {p["name"] for p in policies}
    assert {"tuned decentralized base-stock", "tuned decentralized time-aware base-stock"} <= names


def test_the_report_has_the_decentralized_view(finished_run):
    _, out, report, _ = finished_run
    text = report.read_text()
    section = text.split("## 5. The decentralized view")[1].split("## 6. Figures")[0]
    rows = [line for line in section.splitlines() if line.startswith("| iql |")
            or line.startswith("| bc |")]
    assert [row.split(" | ")[1] for row in rows] == ["local", "profit", "team", "any"]
    assert all(row.split(" | ")[2] == "2" for row in rows)  # paired on both seeds
    assert "| tuned base-stock |" in section and "| tuned time-aware base-stock |" in section
    assert "| policy | stage 0 (retailer) | stage 1 | stage 2 |" in section
    assert "| iql seed 0 (centralized) |" in section and "| bc-decentralized-any seed 0 |" in section
    assert "- iql: the " in section and "- bc: its learning reads no reward" in section
    assert "](figures/decentralized_orders.png)" in section
    assert (out / "figures" / "decentralized_orders.png").read_bytes().startswith(b"\x89PNG")
    # The comparison figure shows them as means over seeds; the ladder every result.
    assert (out / "figures" / "comparison.png").is_file()


def test_a_rerun_trains_nothing_again(finished_run, tmp_path):
    run, out, _, _ = finished_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "agents" / "decentralized" / "iql-profit-s1" / "distributor")
    (copy / "eval.json").unlink()
    lines: list[str] = []
    pipeline.reproduce(run, copy, progress=False, log=lines.append)
    text = "\n".join(lines)
    assert "per-stage logs (local reward): done earlier, skipped" in text
    assert "decentralized/iql-profit-s0/distributor: done earlier, skipped" in text
    assert "decentralized/iql-profit-s1/distributor: done earlier" not in text
    assert (copy / "eval.json").read_bytes() == (out / "eval.json").read_bytes()


def test_the_processes_executor_trains_the_same_stage_agents(finished_run, tmp_path):
    run, out, _, _ = finished_run
    pipeline.reproduce(pipeline.resolve("quick", [*TINY[:4], *TINY[5:]]), tmp_path / "pool",
                       progress=False, log=lambda *a: None, executor="processes")
    assert (tmp_path / "pool" / "eval.json").read_bytes() == (out / "eval.json").read_bytes()


@pytest.mark.parametrize("override, message", [
    ("decentralized.rewards=[\"shared\"]", r"decentralized\.rewards: reward must be one of"),
    ("decentralized.rewards=[]", r"decentralized\.rewards must list distinct rewards"),
    ("decentralized.seeds=-1", r"decentralized\.seeds must be an integer >= 0"),
    ("decentralized.algorithms=[\"td3\"]", r"decentralized\.algorithms \['td3'\] are not in "
                                          r"train\.algorithms"),
    ("decentralized.algorithms=[\"sac\"]", r"decentralized\.algorithms must list distinct"),
    ("decentralized.enabled=1", r"decentralized\.enabled must be true or false"),
])
def test_bad_settings_are_refused(override, message):
    with pytest.raises(ValueError, match=message):
        pipeline.resolve("quick", [override])


def test_the_view_follows_the_train_settings():
    run = pipeline.resolve("quick", ['train.algorithms=["bc"]', "train.seeds=[7]"])
    assert run.decentralized.chosen_algorithms(run.train) == ("bc",)
    assert run.decentralized.chosen_seeds(run.train) == (7,)
    assert pipeline.resolve("quick").decentralized.chosen_seeds(run.train) == (7,)


def test_a_split_cut_short_is_redone_and_one_of_other_inputs_is_refused(finished_run, tmp_path):
    run, out, _, _ = finished_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "stages" / "profit" / "stages.json").unlink()  # the manifest is written last
    lines: list[str] = []
    pipeline.reproduce(run, copy, progress=False, log=lines.append)
    assert f"  per-stage logs (profit reward): {copy / 'stages' / 'profit'}" in lines
    assert load_stage_split(copy / "stages" / "profit").reward.value == "profit"
    (copy / "stages" / "team" / "stage.json").write_text(json.dumps({"digest": "other"}))
    before = (copy / "stages" / "team" / "retailer.h5").read_bytes()
    with pytest.raises(pipeline.RunFolderError, match=r"stage split team finished earlier with "
                                                      r"other inputs"):
        pipeline.reproduce(run, copy, progress=False, log=lambda *a: None)
    assert (copy / "stages" / "team" / "retailer.h5").read_bytes() == before
