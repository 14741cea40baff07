"""The whole pipeline on a tiny preset: every stage, the report's sections, resuming, determinism."""

import json
from pathlib import Path

import numpy as np
import pytest

from echelon import pipeline

TINY = [
    "collect.episodes=40",
    "train.epochs=1",
    "train.seeds=[0, 1]",
    'train.sweep=["iql.expectile=0.5"]',
    "evaluate.episodes=30",
    "evaluate.paper_episodes=20",
    "evaluate.tuning_episodes=10",
    "evaluate.bootstrap=200",
    "model.plan_episodes=20",
    "model.scenarios=4",
    "model.neural_steps=3",
    "model.neural_batch=8",
    'evaluate.baselines=["paper-best", "tuned", "time-aware", "slp", "oracle"]',
    "decentralized.enabled=false",  # tests/run/test_decentralized_stage.py runs it
]


@pytest.fixture(scope="module")
def finished_run(reproduce_quick):
    return reproduce_quick(TINY)


def test_every_stage_writes_its_output(finished_run):
    run, out, report, _ = finished_run
    for name in ("config.toml", "search.json", "dataset.h5", "baselines.json", "model.json",
                 "eval.json", "report.md", "stages.json"):
        assert (out / name).is_file(), name
    for variant in ("iql", "bc", "iql-expectile0.5"):
        for seed in run.train.seeds:
            folder = out / "agents" / f"{variant}-s{seed}"
            assert (folder / "checkpoint.pt").is_file() and (folder / "metrics.csv").is_file()
    for figure in ("losses.png", "comparison.png", "inventory.png", "ladder.png",
                   "neural_inventory.png", "neural_policy.png"):
        assert (out / "figures" / figure).read_bytes().startswith(b"\x89PNG")
    resolved = pipeline.resolve(out / "config.toml")
    assert resolved == run


def test_report_has_every_section(finished_run):
    _, _, report, _ = finished_run
    text = report.read_text()
    for heading in ("## 1. The paper's Table I", "## 2. Every policy on the same held-out paths",
                    "## 3. Agents across training seeds", "## 4. From logs to a policy with a model",
                    "## 6. Figures", "## 7. The paper's claims",
                    "## 8. Exact configuration and seeds"):
        assert heading in text, heading
    assert "## 5. The decentralized view" not in text  # disabled, and no decentralized baseline
    for claim in ("Claim 1", "Claim 2", "Claim 3", "Claim 4"):
        assert claim in text
    assert "341.35" in text and "400.78" in text and "17.41" in text
    assert "perfect-information bound" in text and "shrinking-horizon LP" in text
    assert "figures/comparison.png" in text


def test_report_pairs_the_plans_against_the_tuned_time_aware_base_stock(finished_run):
    _, out, report, _ = finished_run
    text = report.read_text()
    profit = {p["name"]: np.array(p["profit"])
              for p in json.loads((out / "eval.json").read_text())["policies"]}
    section = text.split("## 4. From logs to a policy with a model")[1].split("## 6. Figures")[0]
    table = [line for line in section.splitlines() if line.startswith("| ")]
    header = next(line for line in table if line.startswith("| route |"))
    assert header.endswith("| vs tuned time-aware base-stock [95% CI] |")
    rows = [line for line in table if line.split(" | ")[0] in ("| model-based", "| reference",
                                                               "| model-free")]
    assert len(rows) == 10 and all(row.count(" | ") == header.count(" | ") for row in rows)
    reference = profit["tuned time-aware base-stock"]
    for name in ("neural mlp (fitted model)", "neural levels (fitted model)"):
        row = next(row for row in rows if row.startswith(f"| model-based | {name} |"))
        assert row.split(" | ")[-1].startswith(f"{(profit[name] - reference).mean():+.2f} [")
    sentence = next(line for line in section.splitlines() if line.startswith("Neural policies"))
    assert sentence.startswith("Neural policies from the logs against the tuned time-aware "
                               "base-stock (paired difference on the same paths, 95% CI): ")
    for name in ("neural mlp (fitted model)", "neural levels (fitted model)"):
        assert any(f"{name} {verb} it" in sentence
                   for verb in ("beats", "falls short of", "is not distinguishable from"))
    assert "true demand law, each architecture's mean profit differs" in sentence
    for architecture in ("mlp", "levels"):
        fitted = profit[f"neural {architecture} (fitted model)"]
        truth = profit[f"neural {architecture} (true demand law)"]
        gap = 100 * (fitted - truth).mean() / abs(truth.mean())
        assert f" {architecture} {gap:+.2f}% [" in sentence
    for name in ("neural_inventory.png", "neural_policy.png"):
        assert f"](figures/{name})" in text


def test_a_run_without_neural_policies_reports_without_them(finished_run, tmp_path):
    run, out, _, _ = finished_run
    import shutil

    copy = tmp_path / "no-neural"
    shutil.copytree(out, copy)  # search, collect, tune and the agents are reused
    plain = pipeline.resolve("quick", [*TINY, "model.neural=[]", "model.misspecification=false"])
    text = pipeline.reproduce(plain, copy, progress=False, log=lambda *a: None,
                              force=True).read_text()
    figures = sorted(p.name for p in (copy / "figures").iterdir())
    assert figures == ["comparison.png", "inventory.png", "ladder.png", "losses.png"]
    assert "## 4. From logs to a policy with a model" in text and "## 6. Figures" in text
    assert "vs tuned time-aware base-stock [95% CI]" in text  # the time-aware plans still have it
    assert "Neural policies" not in text and "figures/neural_" not in text
    assert not any(p["name"].startswith("neural ")
                   for p in json.loads((copy / "eval.json").read_text())["policies"])


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



def test_a_deleted_neural_plan_is_trained_again_to_the_same_weights(finished_run, tmp_path):
    """model.json refers to its neural plans' weights: a run missing one redoes the model stage
    (the other plans are reused) instead of failing when the weights are loaded."""
    run, out, _, _ = finished_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    model = json.loads((out / "model.json").read_text())
    weights = sorted(spec["weights"] for spec in model["policies"].values() if "weights" in spec)
    assert len(weights) == 4  # mlp and levels, fitted and on the true law
    removed = Path(weights[0]).parent
    shutil.rmtree(copy / removed)
    lines: list[str] = []
    pipeline.reproduce(run, copy, progress=False, log=lines.append)
    text = "\n".join(lines)
    assert f"{copy / weights[0]} is missing: running it again" in text
    assert sum(f"{Path(w).parent.name}: done earlier, skipped" in text for w in weights) == 3
    for name in (*weights, "model.json", "eval.json"):
        assert _same_results(out / name, copy / name), name


def _reference(path, run, **changes):
    from echelon.benchmark.run import REFERENCE_KIND

    row = {"kind": REFERENCE_KIND, "name": "online stand-in", "description": "known profits",
           "scenario": "v1", "run_seed": run.seed, "test_episodes": run.evaluate.episodes,
           "profits": [1.0], **changes}
    path.write_text(json.dumps(row))
    return path


def test_a_reference_row_joins_the_report_and_stays(finished_run, tmp_path):
    """``--reference``: a row made outside the run, on its paths, is listed in the report, kept
    for later reruns, and a different list sets the old one aside."""
    run, out, _, _ = finished_run
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    policies = json.loads((out / "eval.json").read_text())["policies"]
    bound = next(np.mean(p["profit"]) for p in policies if p["kind"] == "bound")
    expert = next(np.mean(p["profit"]) for p in policies if p["kind"] == "best expert")
    reference = _reference(tmp_path / "ref.json", run, profits=[bound, bound])
    pipeline.reproduce(run, copy, progress=False, log=lambda *a: None, references=[reference])
    row = f"| online stand-in | 2 | {bound:.2f}, {bound:.2f} | {bound:.2f} | 100.0% | " \
          f"{bound - expert:+.2f} |"
    assert row in (copy / "report.md").read_text()
    assert "- online stand-in: known profits" in (copy / "report.md").read_text()
    kept = (copy / "references.json").read_bytes()
    pipeline.reproduce(run, copy, progress=False, log=lambda *a: None)
    assert row in (copy / "report.md").read_text()
    other = _reference(tmp_path / "other.json", run, name="another")
    pipeline.reproduce(run, copy, progress=False, log=lambda *a: None, references=[other])
    assert (copy / "replaced" / "1" / "references.json").read_bytes() == kept
    report = (copy / "report.md").read_text()
    assert "| another | 1 |" in report and "online stand-in" not in report
    for name in ("eval.json", "model.json"):
        assert _same_results(out / name, copy / name)



def test_the_reference_make_reproduce_lists_is_of_the_quick_runs_paths():
    """``make reproduce`` passes the committed PPO row: it must be of the quick run's paths."""
    from echelon.benchmark.run import read_run_reference

    path = Path(__file__).resolve().parents[1] / "benchmarks/results/ppo_reference_v1.json"
    assert str(path.relative_to(path.parents[2])) in (path.parents[2] / "Makefile").read_text()
    row = read_run_reference(path, pipeline.resolve("quick"))
    assert row["scenario"] == "v1" and len(row["profits"]) == 3

@pytest.mark.parametrize("change, message", [
    ({"test_episodes": 500}, "test_episodes 500 is not this run's 30"),
    ({"run_seed": 7}, "run_seed 7 is not this run's 0"),
    ({"scenario": "seasonal"}, "seasonal scenario's chain, which is not this run's"),
    ({"scenario": "arctic"}, "scenario 'arctic' is not one of"),
    ({"profits": ["a"]}, "profits must be a non-empty list"),
])
def test_a_bad_reference_is_refused_before_the_run_starts(change, message, finished_run,
                                                          tmp_path, capsys):
    from echelon.cli import main

    run, _, _, _ = finished_run
    reference = _reference(tmp_path / "ref.json", run, **change)
    overrides = [arg for o in TINY for arg in ("--set", o)]
    assert main(["reproduce", "--preset", "quick", *overrides, "--out", str(tmp_path / "run"),
                 "--reference", str(reference)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "--reference" in err[0]
    assert not (tmp_path / "run").exists()

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
    split into echelon.run (tests/fixtures/tiny_run_profits.json): refactors must keep them.
    The neural policies came later; they are held to their validation profit instead."""
    _, out, _, _ = finished_run
    pinned = json.loads((Path(__file__).parent / "fixtures" / "tiny_run_profits.json").read_text())
    every = json.loads((out / "eval.json").read_text())["policies"]
    policies = [p for p in every if not p["name"].startswith("neural ")]
    assert [p["name"] for p in policies] == list(pinned)
    for policy in policies:
        assert policy["kind"] == pinned[policy["name"]]["kind"]
        assert policy["profit"] == pinned[policy["name"]]["profit"], policy["name"]
