"""The whole pipeline on a tiny preset: every stage, the report's sections, resuming, determinism."""

import json
from pathlib import Path

import pytest

from echelon import pipeline

TINY = [
    "collect.episodes=40",
    "train.epochs=1",
    'train.sweep=["iql.expectile=0.5"]',
    "evaluate.episodes=30",
    "evaluate.paper_episodes=20",
    "evaluate.tuning_episodes=10",
    "evaluate.bootstrap=200",
    "model.plan_episodes=20",
    "model.scenarios=4",
    'evaluate.baselines=["paper-best", "tuned", "time-aware", "slp", "oracle"]',
]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    lines: list[str] = []
    run = pipeline.resolve("quick", TINY)
    report = pipeline.reproduce(run, out, progress=False, log=lines.append)
    return run, out, report, lines


def test_every_stage_writes_its_output(finished_run):
    run, out, report, _ = finished_run
    for name in ("config.toml", "search.json", "dataset.h5", "baselines.json", "model.json",
                 "eval.json", "report.md", "stages.json"):
        assert (out / name).is_file(), name
    for variant in ("iql", "bc", "iql-expectile0.5"):
        for seed in run.train.seeds:
            folder = out / "agents" / f"{variant}-s{seed}"
            assert (folder / "checkpoint.pt").is_file() and (folder / "metrics.csv").is_file()
    for figure in ("losses.png", "comparison.png", "inventory.png", "ladder.png"):
        assert (out / "figures" / figure).read_bytes().startswith(b"\x89PNG")
    resolved = pipeline.resolve(out / "config.toml")
    assert resolved == run


def test_report_has_every_section(finished_run):
    _, _, report, _ = finished_run
    text = report.read_text()
    for heading in ("## 1. The paper's Table I", "## 2. Every policy on the same held-out paths",
                    "## 3. Agents across training seeds", "## 4. From logs to a policy with a model",
                    "## 5. Figures", "## 6. The paper's claims", "## 7. Exact configuration and seeds"):
        assert heading in text, heading
    for claim in ("Claim 1", "Claim 2", "Claim 3", "Claim 4"):
        assert claim in text
    assert "341.35" in text and "400.78" in text and "17.41" in text
    assert "perfect-information bound" in text and "shrinking-horizon LP" in text
    assert "figures/comparison.png" in text


def test_every_policy_faces_the_same_paths(finished_run):
    run, out, _, _ = finished_run
    evaluation = json.loads((out / "eval.json").read_text())
    assert evaluation["test_paths"]["episodes"] == 30
    names = [p["name"] for p in evaluation["policies"]]
    assert len(names) == len(set(names))
    assert all(len(p["profit"]) == 30 for p in evaluation["policies"])
    bound = next(p for p in evaluation["policies"] if p["kind"] == "bound")
    for policy in evaluation["policies"]:  # no policy beats the bound on any path
        assert all(a <= b + 1e-6 for a, b in zip(policy["profit"], bound["profit"]))


def test_a_second_run_redoes_nothing(finished_run):
    run, out, _, _ = finished_run
    before = {name: (out / name).stat().st_mtime_ns for name in ("search.json", "dataset.h5", "eval.json")}
    lines: list[str] = []
    pipeline.reproduce(run, out, progress=False, log=lines.append)
    after = {name: (out / name).stat().st_mtime_ns for name in before}
    assert before == after
    assert _stages_skipped(lines) == 5  # search, collect, tune, model, evaluate
    assert _agents_skipped(lines) == len(run.train.seeds) * 3  # and every agent


def test_identical_inputs_give_identical_eval_json(finished_run, tmp_path):
    run, out, _, _ = finished_run
    lines: list[str] = []
    pipeline.reproduce(run, tmp_path / "again", progress=False, log=lines.append)
    assert (tmp_path / "again" / "eval.json").read_bytes() == (out / "eval.json").read_bytes()


def _stages_skipped(lines):
    return sum(line == "  done earlier, skipped" for line in lines)


def _agents_skipped(lines):
    return sum(line.endswith(": done earlier, skipped") and "-s" in line for line in lines)


def _same_results(a, b):
    return a.read_bytes() == b.read_bytes()


def test_an_interrupted_run_resumes_only_what_is_missing(finished_run, tmp_path):
    run, out, _, _ = finished_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "eval.json").unlink()
    shutil.rmtree(copy / "agents" / "bc-s1")
    lines: list[str] = []
    pipeline.reproduce(run, copy, progress=False, log=lines.append)
    text = "\n".join(lines)
    assert "bc-s1: " in text and "bc-s1: done earlier" not in text
    assert "iql-s0: done earlier, skipped" in text
    assert _stages_skipped(lines) == 4  # search, collect, tune, model; evaluate reruns
    assert _same_results(out / "eval.json", copy / "eval.json")


def test_changing_an_input_reruns_its_stage_and_those_after(finished_run, tmp_path):
    run, out, _, _ = finished_run
    import shutil

    copy = tmp_path / "changed"
    shutil.copytree(out, copy)
    changed = pipeline.resolve("quick", [*TINY, "evaluate.episodes=25"])
    before = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    with pytest.raises(pipeline.RunFolderError, match=r"evaluate\.episodes: 30 there, 25 now"):
        pipeline.reproduce(changed, copy, progress=False, log=lambda *a: None)
    after = {p.relative_to(copy): p.read_bytes() for p in copy.rglob("*") if p.is_file()}
    assert after == before  # refused before anything was written
    lines: list[str] = []
    pipeline.reproduce(changed, copy, progress=False, log=lines.append, force=True)
    assert _stages_skipped(lines) == 3  # search, collect and tune; the model's test paths changed
    assert _agents_skipped(lines) == len(run.train.seeds) * 3
    assert json.loads((copy / "eval.json").read_text())["test_paths"]["episodes"] == 25
    aside = copy / "replaced" / "1"  # what the rerun replaced, byte for byte
    for name in ("config.toml", "eval.json", "model.json", "report.md"):
        assert (aside / name).read_bytes() == before[Path(name)]
    assert (copy / "dataset.h5").read_bytes() == before[Path("dataset.h5")]


def test_the_tiny_run_reproduces_its_pinned_profits(finished_run):
    """Every per-path profit of every policy of the tiny run, as made before the pipeline was
    split into echelon.run (tests/fixtures/tiny_run_profits.json): refactors must keep them."""
    _, out, _, _ = finished_run
    pinned = json.loads((Path(__file__).parent / "fixtures" / "tiny_run_profits.json").read_text())
    policies = json.loads((out / "eval.json").read_text())["policies"]
    assert [p["name"] for p in policies] == list(pinned)
    for policy in policies:
        assert policy["kind"] == pinned[policy["name"]]["kind"]
        assert policy["profit"] == pinned[policy["name"]]["profit"], policy["name"]
