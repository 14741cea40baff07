"""The report's neural part on hand-made results: the column paired against the tuned time-aware
base-stock, the sentence on it and on what the fitted model costs each architecture, and the
neural figures only when they were made."""

import numpy as np
import pytest

from echelon import pipeline
from echelon.evaluation.evaluate import Kind, PolicyResult
from echelon.evaluation.report import best_neural_from_logs, write_report
from echelon.policies.search import SearchResult

PATHS = 30
BASE = 185.0 + (np.arange(PATHS) - 14.5)  # the reference's profits: mean 185
REFERENCE = "tuned time-aware base-stock"
MODEL = {"fit": {"law": {"law": "poisson"}, "censored": 10, "observations": 100,
                 "params": {"mean": 19.9}, "ci": {"mean": [19.5, 20.3]}, "naive": {}},
         "laws": [{"law": "poisson", "aic": 1.0, "goodness_of_fit_p": 0.5}], "misspecification": []}


def _result(name, kind, profit, params=None):
    profit = np.asarray(profit, dtype=np.float64)
    return PolicyResult(name, kind, profit, profit, np.ones(PATHS), np.ones((PATHS, 3)), 0.0,
                        params or {})


def _neural(architecture, law, profit):
    return _result(f"neural {architecture} ({law})", Kind.MODEL, profit,
                   {"spec": {"kind": "neural", "architecture": architecture}})


def _results(mlp_offset, neural=True, reference=True):
    """The mlp from the logs makes ``mlp_offset`` more than the reference on every path and 10
    less than the mlp given the true law; the levels one from the logs makes +-1 around the
    reference's profit (mean difference 0), 2 less than its true-law twin."""
    out = [_result("best expert base-stock", Kind.BEST_EXPERT, BASE - 50.0, {"z": [80, 180, 40]}),
           _result("time-aware (fitted model)", Kind.MODEL, BASE - 1.0,
                   {"spec": {"kind": "heuristic"}}),
           _result("perfect-information bound", Kind.BOUND, BASE + 100.0)]
    if reference:
        out.append(_result(REFERENCE, Kind.BASELINE, BASE))
    if neural:
        alternating = np.where(np.arange(PATHS) % 2 == 0, 1.0, -1.0)
        out += [_neural("mlp", "fitted model", BASE + mlp_offset),
                _neural("mlp", "true demand law", BASE + mlp_offset + 10.0),
                _neural("levels", "fitted model", BASE + alternating),
                _neural("levels", "true demand law", BASE + alternating + 2.0)]
    return out


@pytest.fixture(scope="module")
def run():
    return pipeline.resolve("quick", ["evaluate.bootstrap=200"])


def _report(run, folder, results, reference=REFERENCE, **figures):
    folder.mkdir(exist_ok=True)
    (folder / "config.toml").write_text('name = "test"\n')
    search = SearchResult.from_dict({
        "family": "base-stock", "mode": "clip", "evaluated": 1, "search_episodes": 1,
        "rank_episodes": 1, "ranked": [{"params": {"z": [80, 180, 40]}, "mean": 135.0, "std": 1.0,
                                        "se": 0.1}]})
    evaluation = {"policies": [r.to_dict() for r in results]}
    return write_report(run, folder, evaluation, search, {}, [], None, MODEL, reference=reference,
                        **figures).read_text()


@pytest.mark.parametrize("offset, ruling, gap", [
    (5.0, "beats it (interval above zero): +5.00 [+5.00, +5.00]", "-5.00% [-5.00%, -5.00%]"),
    (-3.0, "falls short of it (interval below zero): -3.00 [-3.00, -3.00]",
     "-5.21% [-5.21%, -5.21%]"),  # -10 / 192
])
def test_neural_policies_paired_against_the_reference(run, tmp_path, offset, ruling, gap):
    text = _report(run, tmp_path / "run", _results(offset))
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| route |"))
    assert header.endswith("| vs tuned time-aware base-stock [95% CI] |")
    row = next(line for line in lines if line.startswith("| model-based | neural mlp (fitted"))
    assert row.endswith(f"| {offset:+.2f} [{offset:+.2f}, {offset:+.2f}] |")
    row = next(line for line in lines if line.startswith("| model-based | time-aware (fitted"))
    assert row.endswith("| -1.00 [-1.00, -1.00] |")
    assert ("Neural policies from the logs against the tuned time-aware base-stock (paired "
            "difference on the same paths, 95% CI): neural mlp (fitted model) " + ruling) in text
    assert ("neural levels (fitted model) is not distinguishable from it (interval contains "
            "zero): +0.00") in text
    assert f"mlp {gap}; levels -1.07% [-1.07%, -1.07%]." in text  # -2 / 187


def test_without_the_reference_no_column_and_a_note(run, tmp_path):
    text = _report(run, tmp_path / "absent", _results(5.0, reference=False))
    assert "vs tuned time-aware base-stock" not in text
    assert ("The tuned time-aware base-stock is not in this run, so the neural policies from the "
            "logs are not paired against it.") in text
    assert "mlp -5.00% [-5.00%, -5.00%]" in text  # the fitted model's cost needs no reference
    text = _report(run, tmp_path / "unnamed", _results(5.0), reference=None)
    assert "vs tuned" not in text and "against the tuned" not in text
    assert "paired against it" not in text


def test_without_neural_policies_no_sentence_and_no_neural_figures(run, tmp_path):
    text = _report(run, tmp_path / "run", _results(5.0, neural=False))
    assert "vs tuned time-aware base-stock [95% CI]" in text  # the column is for every plan
    assert "Neural policies" not in text and "true demand law" not in text
    assert "neural_inventory.png" not in text and "neural_policy.png" not in text
    figures = sorted(p.name for p in (tmp_path / "run" / "figures").iterdir())
    assert figures == ["comparison.png", "ladder.png"]


def test_the_neural_figures_and_their_captions_when_made(run, tmp_path):
    rng = np.random.default_rng(0)
    on_hand = rng.uniform(0, 50, (2, 30, 3))
    positions = rng.uniform(0, 300, (5, 30, 3))
    text = _report(
        run, tmp_path / "run", _results(5.0),
        neural_inventory=(on_hand[0], on_hand[1], ("neural mlp (fitted model)", REFERENCE),
                          rng.poisson(20, 30)),
        neural_orders={"positions": positions, "orders": np.maximum(200 - positions, 0),
                       "label": "neural mlp (fitted model)", "reference_levels": [90, 200, 400],
                       "reference_last_order_period": [26, 19, 8], "reference_label": REFERENCE})
    for name in ("neural_inventory.png", "neural_policy.png"):
        assert (tmp_path / "run" / "figures" / name).read_bytes().startswith(b"\x89PNG")
        assert f"](figures/{name})" in text
    assert ("the neural policy from the logs with the highest mean, neural mlp (fitted model), "
            "against the tuned time-aware base-stock") in text
    assert ("What neural mlp (fitted model) learned: per stage, its order against the echelon "
            "inventory position in every state it visited on the first 5 held-out paths, coloured "
            "by period, with the tuned time-aware base-stock's order-up-to rule dashed.") in text


def test_best_neural_from_logs():
    results = _results(5.0)
    assert best_neural_from_logs(results).name == "neural mlp (fitted model)"  # not the true law's
    assert best_neural_from_logs(_results(-3.0)).name == "neural levels (fitted model)"
    assert best_neural_from_logs(_results(5.0, neural=False)) is None
