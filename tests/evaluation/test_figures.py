"""Figures: structure (axes, titles, labels, artists) and atomic PNG files."""

import math

import numpy as np
import pytest
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from echelon.evaluation.figures import (
    KIND_COLOURS,
    PROFIT_LABEL,
    PolicyKind,
    inventory_trajectories,
    ladder,
    loss_curves,
    orders_against_position,
    orders_by_stage,
    policy_comparison,
    save_figure,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _metrics(seed, epochs=5, losses=("critic", "value", "actor")):
    rng = np.random.default_rng(seed)
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "step": 10 * epoch}
        for loss in losses:
            row[f"train_{loss}_loss"] = float(np.exp(-epoch) + rng.uniform(0.01, 0.1))
            row[f"val_{loss}_loss"] = str(np.exp(-epoch) + rng.uniform(0.01, 0.1))  # CSV text
        rows.append(row)
    return rows


ENTRIES = [
    {"label": "IQL", "mean": 380.0, "ci_low": 375.0, "ci_high": 385.0, "kind": "agent",
     "paper_value": 400.78},
    {"label": "best base-stock", "mean": 370.0, "ci_low": 366.0, "ci_high": 374.0,
     "kind": "best expert", "paper_value": 341.35},
    {"label": "expert 2", "mean": 320.0, "ci_low": 315.0, "ci_high": 325.0, "kind": "expert"},
    {"label": "(s, S)", "mean": 360.0, "ci_low": math.nan, "ci_high": math.nan,
     "kind": "baseline"},
    {"label": "perfect information", "mean": 420.0, "ci_low": 416.0, "ci_high": 424.0,
     "kind": "bound"},
]


def test_loss_curves_panel_per_loss_with_train_and_validation():
    metrics = {"IQL": [_metrics(0), _metrics(1), _metrics(2)],
               "BC": [_metrics(3, losses=("actor",))]}
    fig, axes = loss_curves(metrics)
    assert isinstance(fig, Figure) and len(fig.axes) == len(axes) == 3
    assert [ax.get_title() for ax in axes] == ["Q network (critic) loss", "V network (value) loss",
                                               "policy network (actor) loss"]
    critic, _, actor = axes
    assert len(critic.lines) == 2 and len(actor.lines) == 4  # IQL train/val; + BC train/val
    styles = {line.get_label(): line.get_linestyle() for line in actor.lines}
    assert styles == {"IQL training": "-", "IQL validation": "--", "BC training": "-",
                      "BC validation": "--"}
    assert len(critic.collections) == 2  # min-max bands of IQL's 3 seeds; BC's 1 seed has none
    assert all(ax.get_yscale() == "log" and ax.get_xlabel() == "epoch" for ax in axes)
    assert all(ax.get_ylabel() and ax.get_legend() is not None for ax in axes)
    assert "seed" in fig.get_suptitle()
    line = critic.lines[0]
    expected = np.mean([[row["train_critic_loss"] for row in _metrics(s)] for s in range(3)],
                       axis=0)
    np.testing.assert_allclose(line.get_xdata(), np.arange(1, 6))
    np.testing.assert_allclose(line.get_ydata(), expected)


def test_loss_curves_linear_scale_for_signed_losses_and_other_columns():
    rows = [[{"train_actor_loss": -1.0 + e, "val_actor_loss": "", "train_cql_loss": 2.0}
             for e in range(4)]]
    fig, axes = loss_curves({"CQL": rows})
    assert [ax.get_title() for ax in axes] == ["policy network (actor) loss", "cql loss"]
    assert axes[0].get_yscale() == "linear" and len(axes[0].lines) == 1  # empty val skipped
    np.testing.assert_allclose(axes[0].lines[0].get_xdata(), [1, 2, 3, 4])  # no epoch column


def test_loss_curves_without_losses_raise():
    with pytest.raises(ValueError, match="no train"):
        loss_curves({"IQL": [[{"epoch": 1, "seconds": 3.0}]]})


def test_policy_comparison():
    fig, ax = policy_comparison(ENTRIES)
    assert isinstance(fig, Figure) and fig.axes == [ax]
    points = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert len(points) == len(ENTRIES)
    colours = [c.lines[0].get_color() for c in points]
    assert colours == [KIND_COLOURS[PolicyKind(e["kind"])] for e in ENTRIES]
    assert colours[:2] == ["crimson", "steelblue"]
    assert points[3].has_xerr is False and points[0].has_xerr is True  # NaN interval: no bar
    assert [t.get_text() for t in ax.get_yticklabels()] == [e["label"] for e in ENTRIES]
    assert ax.get_xlabel() == PROFIT_LABEL and "95%" in ax.get_title()
    paper = [line for line in ax.lines if line.get_marker() == "D"]
    assert len(paper) == 2 and paper[0].get_xdata()[0] == 400.78
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["agent", "best expert", "expert", "baseline", "bound",
                      "paper's reported value"]


def test_policy_comparison_rejects_unknown_kind_and_empty_input():
    with pytest.raises(ValueError):
        policy_comparison([{**ENTRIES[0], "kind": "oracle"}])
    with pytest.raises(ValueError, match="at least one"):
        policy_comparison([])


def test_inventory_trajectories_with_demand():
    rng = np.random.default_rng(0)
    a, b, demand = rng.uniform(0, 50, (30, 3)), rng.uniform(0, 50, (30, 3)), rng.poisson(20, 30)
    fig, axes = inventory_trajectories(a, b, ("IQL", "base-stock"), demand=demand)
    assert isinstance(fig, Figure) and len(axes) == len(fig.axes) == 4
    assert len([p for p in axes[0].patches if isinstance(p, Rectangle)]) == 30
    assert "demand" in axes[0].get_title()
    for stage, ax in enumerate(axes[1:]):
        assert ax.get_title().startswith(f"stage {stage}") and ax.get_ylabel() == "on-hand (units)"
        solid, dashed = ax.lines
        assert (solid.get_linestyle(), dashed.get_linestyle()) == ("-", "--")
        assert (solid.get_label(), dashed.get_label()) == ("IQL", "base-stock")
        np.testing.assert_array_equal(solid.get_ydata(), a[:, stage])
        np.testing.assert_array_equal(dashed.get_ydata(), b[:, stage])
    assert axes[1].get_title() == "stage 0 (retailer)" and axes[-1].get_xlabel() == "period (day)"


def test_inventory_trajectories_without_demand_and_bad_shapes():
    fig, axes = inventory_trajectories(np.ones((5, 2)), np.zeros((5, 2)), ("a", "b"))
    assert len(axes) == len(fig.axes) == 2
    with pytest.raises(ValueError, match="equal shapes"):
        inventory_trajectories(np.ones((5, 2)), np.ones((4, 2)), ("a", "b"))
    with pytest.raises(ValueError, match="demand"):
        inventory_trajectories(np.ones((5, 2)), np.ones((5, 2)), ("a", "b"), demand=np.ones(4))


def test_inventory_trajectories_colours_follow_the_kinds():
    fig, axes = inventory_trajectories(np.ones((5, 2)), np.zeros((5, 2)), ("neural", "time-aware"),
                                       kinds=(PolicyKind.MODEL, PolicyKind.BASELINE))
    for ax in axes:
        solid, dashed = ax.lines
        assert (solid.get_color(), dashed.get_color()) == ("seagreen", "darkorange")


def _visited_states(episodes=4, periods=6, stages=3):
    """Positions falling by 10 a period from 100 x (stage + 1) plus the path's index; orders of
    an echelon base-stock policy with levels 100 x (stage + 1) + 5, so known by hand."""
    t = np.arange(periods)[None, :, None]
    path = np.arange(episodes)[:, None, None]
    level = 100.0 * (np.arange(stages) + 1)[None, None, :]
    positions = level + path - 10.0 * t
    return positions, np.maximum(level + 5.0 - positions, 0.0)


def test_orders_against_position_a_panel_per_stage_coloured_by_period():
    positions, orders = _visited_states()
    fig, axes = orders_against_position(positions, orders, "neural levels",
                                        reference_levels=[105.0, 205.0, 305.0],
                                        reference_last_order_period=[5, 3, 0],
                                        reference_label="time-aware base-stock")
    assert isinstance(fig, Figure) and len(axes) == 3 and len(fig.axes) == 4  # + the colour bar
    for stage, ax in enumerate(axes):
        (points,) = ax.collections
        np.testing.assert_array_equal(points.get_offsets()[:, 0], positions[:, :, stage].ravel())
        np.testing.assert_array_equal(points.get_offsets()[:, 1], orders[:, :, stage].ravel())
        np.testing.assert_array_equal(points.get_array(), np.tile(np.arange(1, 7), 4))  # periods
        (line,) = ax.lines  # the reference's rule: max(z - position, 0), z = 100 (stage + 1) + 5
        z = 100.0 * (stage + 1) + 5.0
        np.testing.assert_allclose(line.get_ydata(), np.maximum(z - line.get_xdata(), 0.0))
        assert line.get_xdata().min() == positions[:, :, stage].min()
        assert line.get_xdata().max() == z  # the rule is drawn until it meets zero
        assert line.get_linestyle() == "--"
        assert ax.get_ylabel() == "order (units)"
        assert "echelon inventory position" in ax.get_xlabel()
    assert axes[0].get_title() == "stage 0 (retailer)\nreference: z = 105, orders up to period 6"
    assert axes[2].get_title() == "stage 2\nreference: z = 305, orders up to period 1"
    assert fig.axes[-1].get_ylabel() == "period (day)"
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["neural levels: a state visited (colour: period)",
                      "time-aware base-stock: max(z - position, 0) while it orders, then 0"]
    assert "neural levels" in fig.get_suptitle() and "4 test paths" in fig.get_suptitle()


def test_orders_against_position_without_a_reference_and_bad_shapes():
    positions, orders = _visited_states(episodes=1, periods=3, stages=1)
    fig, axes = orders_against_position(positions, orders, "mlp")
    assert len(axes) == 1 and len(axes[0].lines) == 0
    assert axes[0].get_title() == "stage 0 (retailer)"
    assert len(fig.legends[0].get_texts()) == 1 and fig.get_suptitle().endswith("1 test path")
    with pytest.raises(ValueError, match="equal"):
        orders_against_position(positions, orders[:, :2], "mlp")
    with pytest.raises(ValueError, match="equal"):
        orders_against_position(positions[0], orders[0], "mlp")
    with pytest.raises(ValueError, match="reference_levels must have 1"):
        orders_against_position(positions, orders, "mlp", reference_levels=[1.0, 2.0])


def test_orders_by_stage_a_panel_per_stage_with_demand_and_each_policy():
    demand = np.array([3.0, 5.0, 4.0, 6.0])
    central = np.arange(12.0).reshape(4, 3)
    local = central + 1.0
    fig, axes = orders_by_stage(demand, [central, local, central * 2],
                                ["iql (centralized)", "iql (decentralized)", "bc (centralized)"],
                                [PolicyKind.AGENT, PolicyKind.DECENTRALIZED, PolicyKind.AGENT])
    assert len(axes) == 3 and axes[0].get_title() == "stage 0 (retailer)"
    lines = axes[2].get_lines()
    assert [line.get_label() for line in lines] == [
        "customer demand", "iql (centralized)", "iql (decentralized)", "bc (centralized)"]
    np.testing.assert_array_equal(lines[2].get_ydata(), local[:, 2])
    assert lines[1].get_color() == KIND_COLOURS[PolicyKind.AGENT]
    assert lines[2].get_color() == KIND_COLOURS[PolicyKind.DECENTRALIZED]
    assert lines[1].get_linestyle() != lines[3].get_linestyle()  # same kind: other style
    with pytest.raises(ValueError, match="one entry per policy"):
        orders_by_stage(demand, [central], ["a", "b"], [PolicyKind.AGENT])
    with pytest.raises(ValueError, match="T = 4 periods"):
        orders_by_stage(demand, [central[:3]], ["a"], [PolicyKind.AGENT])


def test_ladder_shares_of_the_bound():
    fig, ax = ladder(ENTRIES)
    assert isinstance(fig, Figure) and fig.axes == [ax]
    bars = list(ax.containers[0])
    assert len(bars) == len(ENTRIES) - 1  # the bound is the 100% line, not a bar
    widths = [bar.get_width() for bar in bars]
    assert widths == sorted(widths)  # best on top
    assert widths[-1] == pytest.approx(100 * 380 / 420)
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "expert 2", "(s, S)", "best base-stock", "IQL"]
    assert [t.get_text() for t in ax.texts] == [f"{w:.1f}%" for w in widths]
    assert [bar.get_facecolor() for bar in bars][-1][:3] == pytest.approx((0.863, 0.078, 0.235),
                                                                          abs=1e-3)  # crimson
    vertical = [line for line in ax.lines if list(line.get_xdata()) == [100.0, 100.0]]
    assert len(vertical) == 1 and "bound" in vertical[0].get_label()
    assert "%" in ax.get_xlabel() and ax.get_title()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["agent", "best expert", "expert", "baseline",
                      "perfect-information bound = 420.0 (100%)"]


def test_ladder_with_given_shares_and_without_a_bound():
    fig, ax = ladder([{"label": "a", "share": 0.5, "kind": "agent"},
                      {"label": "b", "share": -0.1, "kind": "baseline"}])
    assert [bar.get_width() for bar in ax.containers[0]] == pytest.approx([-10.0, 50.0])
    with pytest.raises(ValueError, match="bound"):
        ladder([{"label": "a", "mean": 1.0, "kind": "agent"}])


def test_save_figure_writes_a_png_atomically(tmp_path):
    fig, _ = policy_comparison(ENTRIES)
    path = save_figure(fig, tmp_path / "comparison.png")
    data = path.read_bytes()
    assert path == tmp_path / "comparison.png"
    assert data.startswith(PNG_SIGNATURE) and len(data) > 10_000
    assert [p.name for p in tmp_path.iterdir()] == ["comparison.png"]
    # 150 dpi: the PNG header's width is 150 px per inch of the figure.
    width = int.from_bytes(data[16:20], "big")
    assert width == round(fig.get_figwidth() * 150)
    save_figure(fig, str(path))  # replaces an existing file
    assert [p.name for p in tmp_path.iterdir()] == ["comparison.png"]


def test_save_figure_into_a_missing_directory_raises(tmp_path):
    fig, _ = ladder(ENTRIES)
    with pytest.raises(FileNotFoundError):
        save_figure(fig, tmp_path / "missing" / "ladder.png")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    fig, _ = ladder(ENTRIES)

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(fig, "savefig", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        save_figure(fig, tmp_path / "ladder.png")
    assert list(tmp_path.iterdir()) == []


def test_figures_leave_pyplot_and_the_backend_alone():
    import sys

    import matplotlib

    pyplot_loaded = "matplotlib.pyplot" in sys.modules
    backend = dict.__getitem__(matplotlib.rcParams, "backend")  # raw: resolving it would set it
    loss_curves({"IQL": [_metrics(0)]})
    ladder(ENTRIES)
    orders_against_position(*_visited_states(), "mlp", reference_levels=[1.0, 2.0, 3.0])
    assert ("matplotlib.pyplot" in sys.modules) == pyplot_loaded
    assert dict.__getitem__(matplotlib.rcParams, "backend") == backend
