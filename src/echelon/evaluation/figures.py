"""The report's figures: loss curves, policy comparison, inventory trajectories, bound ladder.

Every function builds a :class:`matplotlib.figure.Figure` on its own Agg canvas and returns
``(fig, axes)``; none touches pyplot or matplotlib's global backend, and none shows or saves a
figure. :func:`save_figure` writes one to a PNG file atomically. Each figure is meant to be read
without the paper: it carries a title, axis labels with units and a legend.

Figures 2, 3 and 4 are the paper's (Section V): training and validation losses per epoch, mean
episode profit of the agent, the best expert and the other experts, and the on-hand inventory of
the agent and the best base-stock policy on one demand path. :func:`ladder` adds every policy's
share of the perfect-information bound, and :func:`orders_against_position` what a policy (a
trained network) orders at each echelon inventory position, period by period.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from echelon._io import atomic_write
from echelon.evaluation.kinds import PolicyKind

PROFIT_LABEL = "discounted episode profit (OR-Gym reward)"
DPI = 150


KIND_COLOURS = {
    PolicyKind.AGENT: "crimson",
    PolicyKind.DECENTRALIZED: "mediumpurple",
    PolicyKind.BEST_EXPERT: "steelblue",
    PolicyKind.EXPERT: "gray",
    PolicyKind.BASELINE: "darkorange",
    PolicyKind.MODEL: "seagreen",
    PolicyKind.BOUND: "black",
}

# Readable names of the networks behind the trainer's loss columns (IQL, TD3+BC, BC, CQL).
_LOSS_TITLES = {
    "critic_loss": "Q network (critic) loss",
    "value_loss": "V network (value) loss",
    "actor_loss": "policy network (actor) loss",
}
_SPLITS = (("train_", "training", "-"), ("val_", "validation", "--"))


def save_figure(fig: Figure, path: str | os.PathLike[str]) -> Path:
    """Writes a figure to a PNG file at 150 dpi, atomically.

    The image goes to a temporary file beside ``path`` and replaces ``path`` in one step, so a
    reader never sees a half-written file.

    Args:
        fig: The figure.
        path: Destination; its directory must exist.

    Returns:
        ``path`` as a Path.

    Raises:
        FileNotFoundError: If the directory does not exist.
    """
    target = Path(path)
    if not target.parent.is_dir():
        raise FileNotFoundError(f"{target.parent}: no such directory")
    return atomic_write(target, lambda handle: fig.savefig(handle, format="png", dpi=DPI))


def loss_curves(
    metrics_by_algo: Mapping[str, Sequence[Sequence[Mapping[str, float]]]],
) -> tuple[Figure, np.ndarray]:
    """Training and validation losses per epoch across seeds (the paper's Figure 2).

    One panel per loss, found from the ``train_*_loss`` and ``val_*_loss`` columns present (e.g.
    ``critic_loss``, ``value_loss``, ``actor_loss``). In each panel every algorithm has a colour;
    its line is the mean over seeds at each epoch and its band the min-max range across seeds;
    training is solid, validation dashed. A panel's y-axis is logarithmic when all its losses are
    positive.

    Args:
        metrics_by_algo: Algorithm name -> one list per seed of per-epoch rows, as in
            ``metrics.csv``: mappings with an optional ``epoch`` (else the row's position,
            from 1) and loss columns. Values may be strings; missing or non-finite values are
            skipped.

    Returns:
        The figure and its (n_losses,) array of axes.

    Raises:
        ValueError: If no row holds a ``train_*_loss`` or ``val_*_loss`` column.
    """
    losses = sorted(
        {column.removeprefix(prefix)
         for runs in metrics_by_algo.values() for rows in runs for row in rows for column in row
         for prefix, _, _ in _SPLITS if column.startswith(prefix) and column.endswith("_loss")},
        key=lambda name: (list(_LOSS_TITLES).index(name) if name in _LOSS_TITLES else 99, name),
    )
    if not losses:
        raise ValueError("no train_*_loss or val_*_loss column in the metrics")
    fig = _figure(figsize=(4.5 * len(losses), 4.0))
    axes = np.atleast_1d(fig.subplots(1, len(losses), squeeze=False)[0])
    colours = {algo: f"C{i}" for i, algo in enumerate(metrics_by_algo)}
    seeds = sorted({len(runs) for runs in metrics_by_algo.values()})
    for ax, loss in zip(axes, losses, strict=True):
        positive = True
        for algo, runs in metrics_by_algo.items():
            for prefix, split, style in _SPLITS:
                epochs, mean, low, high = _across_seeds(runs, prefix + loss)
                if epochs.size == 0:
                    continue
                positive &= bool(np.all(low > 0.0))
                ax.plot(epochs, mean, color=colours[algo], linestyle=style,
                        label=f"{algo} {split}")
                if len(runs) > 1:
                    ax.fill_between(epochs, low, high, color=colours[algo], alpha=0.15,
                                    linewidth=0)
        if positive and ax.lines:
            ax.set_yscale("log")
        ax.set_title(_LOSS_TITLES.get(loss, loss.replace("_", " ")))
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss (mean over the epoch's batches)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    seed_text = "/".join(str(s) for s in seeds)
    fig.suptitle(f"Training (solid) and validation (dashed) losses: mean over {seed_text} "
                 "seed(s), band = min-max across seeds")
    return fig, axes


def policy_comparison(entries: Sequence[Mapping[str, object]]) -> tuple[Figure, Axes]:
    """Mean episode profit of each policy with its 95% interval (the paper's Figure 3).

    A point per policy with a horizontal error bar, drawn in the given order from the top and
    coloured by kind (agent crimson, best expert steelblue, experts gray, baselines orange, the
    perfect-information bound black). Points, not bars from zero, so that differences of a few
    percent stay visible without a truncated bar axis.

    Args:
        entries: One mapping per policy with ``label``, ``mean``, ``ci_low``, ``ci_high`` (NaN
            for no interval) and ``kind`` (a :class:`PolicyKind` value), and optionally
            ``paper_value``, the paper's reported mean, drawn as a hollow diamond.

    Returns:
        The figure and its axes.

    Raises:
        ValueError: If there are no entries or a kind is unknown.
    """
    if not entries:
        raise ValueError("policy_comparison needs at least one entry")
    fig = _figure(figsize=(8.0, 2.0 + 0.45 * len(entries)))
    ax = fig.subplots()
    kinds: list[PolicyKind] = []
    paper_drawn = False
    for row, entry in enumerate(entries):
        kind = PolicyKind(entry["kind"])
        kinds.append(kind)
        mean = float(entry["mean"])
        low, high = float(entry["ci_low"]), float(entry["ci_high"])
        error = ([[mean - low], [high - mean]]
                 if math.isfinite(low) and math.isfinite(high) else None)
        ax.errorbar(mean, row, xerr=error, fmt="o", color=KIND_COLOURS[kind], capsize=4,
                    markersize=7)
        paper = entry.get("paper_value")
        if paper is not None:
            ax.plot(float(paper), row, marker="D", markersize=9, markerfacecolor="none",
                    markeredgecolor="black", linestyle="none",
                    label=None if paper_drawn else "paper's reported value")
            paper_drawn = True
    ax.set_yticks(range(len(entries)), [str(entry["label"]) for entry in entries])
    ax.invert_yaxis()  # first entry on top
    ax.set_xlabel(PROFIT_LABEL)
    ax.set_title("Mean episode profit on common test paths\n(error bars: 95% interval)")
    ax.grid(axis="x", alpha=0.3)
    handles = [Line2D([], [], marker="o", linestyle="none", color=KIND_COLOURS[kind],
                      label=kind.value) for kind in PolicyKind if kind in kinds]
    if paper_drawn:
        handles.append(Line2D([], [], marker="D", markerfacecolor="none", linestyle="none",
                              markeredgecolor="black", label="paper's reported value"))
    fig.legend(handles=handles, fontsize="small", loc="outside lower center",
               ncols=min(len(handles), 3))
    return fig, ax


def inventory_trajectories(
    on_hand_a: np.ndarray,
    on_hand_b: np.ndarray,
    labels: Sequence[str],
    demand: np.ndarray | None = None,
    kinds: tuple[PolicyKind, PolicyKind] = (PolicyKind.AGENT, PolicyKind.BEST_EXPERT),
) -> tuple[Figure, np.ndarray]:
    """On-hand inventory per stage of two policies on one demand path (the paper's Figure 4).

    One panel per stage (stage 0 is the retailer) with policy a solid and policy b dashed, each
    in its kind's colour (by default an agent, crimson, against the best expert, steelblue), and
    the customer demand in an extra panel on top when given.

    Args:
        on_hand_a: (T, S) on-hand inventory at the end of each period under policy a, as
            ``Rollout.trajectory["on_hand"][i]``; (T,) for one stage.
        on_hand_b: (T, S) the same under policy b on the same demand path.
        labels: The two policies' names, (a, b).
        demand: (T,) customer demand of the path, or None.
        kinds: The two policies' kinds, (a, b), which set their colours.

    Returns:
        The figure and its (S,) or, with demand, (S + 1,) array of axes, top to bottom.

    Raises:
        ValueError: If the shapes disagree or there are not two labels.
    """
    a, b = _periods_by_stages(on_hand_a), _periods_by_stages(on_hand_b)
    if a.shape != b.shape:
        raise ValueError(f"on-hand arrays must have equal shapes, got {a.shape} and {b.shape}")
    if len(labels) != 2:
        raise ValueError(f"labels must name the two policies, got {len(labels)}")
    periods, stages = a.shape
    path = None if demand is None else np.asarray(demand, dtype=np.float64).ravel()
    if path is not None and path.size != periods:
        raise ValueError(f"demand must have {periods} periods, got {path.size}")
    t = np.arange(1, periods + 1)
    panels = stages + (path is not None)
    fig = _figure(figsize=(8.0, 1.2 + 2.0 * panels))
    axes = fig.subplots(panels, 1, sharex=True, squeeze=False)[:, 0]
    stage_axes = axes[1:] if path is not None else axes
    if path is not None:
        axes[0].bar(t, path, color="0.6", label="customer demand")
        axes[0].set_title("customer demand (the same path for both policies)")
        axes[0].set_ylabel("units")
        axes[0].legend(fontsize="small")
    for stage, ax in enumerate(stage_axes):
        ax.plot(t, a[:, stage], color=KIND_COLOURS[PolicyKind(kinds[0])], linestyle="-",
                marker=".", label=labels[0])
        ax.plot(t, b[:, stage], color=KIND_COLOURS[PolicyKind(kinds[1])], linestyle="--",
                marker=".", label=labels[1])
        ax.set_title(f"stage {stage} (retailer)" if stage == 0 else f"stage {stage}")
        ax.set_ylabel("on-hand (units)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    axes[-1].set_xlabel("period (day)")
    fig.suptitle("On-hand inventory at the end of each period on one test demand path")
    return fig, axes


def orders_by_stage(
    demand: np.ndarray,
    orders: Sequence[np.ndarray],
    labels: Sequence[str],
    kinds: Sequence[PolicyKind],
) -> tuple[Figure, np.ndarray]:
    """Each stage's orders under several policies on one demand path (the bullwhip, seen).

    One panel per stage (stage 0, the retailer, on top), the customer demand drawn in grey in
    every panel so that each stage's orders can be read against what the customer asked for;
    policies of the same kind are told apart by line style.

    Args:
        demand: (T,) customer demand of the path.
        orders: One (T, S) array per policy: the requests each stage placed (after the core's
            truncation), as ``Rollout.trajectory["requests"][i]``.
        labels: The policies' names.
        kinds: The policies' kinds, which set their colours.

    Returns:
        The figure and its (S,) array of axes, top to bottom.

    Raises:
        ValueError: If the shapes disagree or the lists differ in length.
    """
    path = np.asarray(demand, dtype=np.float64).ravel()
    arrays = [_periods_by_stages(a) for a in orders]
    if not arrays or len(labels) != len(arrays) or len(kinds) != len(arrays):
        raise ValueError(f"orders, labels and kinds must have one entry per policy, got "
                         f"{len(arrays)}, {len(labels)} and {len(kinds)}")
    shape = arrays[0].shape
    if any(a.shape != shape for a in arrays) or shape[0] != path.size:
        raise ValueError(f"each policy's orders must be shaped (T, S) with T = {path.size} "
                         f"periods, got {[a.shape for a in arrays]}")
    periods, stages = shape
    t = np.arange(1, periods + 1)
    fig = _figure(figsize=(8.0, 1.2 + 2.2 * stages))
    axes = fig.subplots(stages, 1, sharex=True, squeeze=False)[:, 0]
    styles = ("-", "--", ":", "-.")
    for stage, ax in enumerate(axes):
        ax.step(t, path, where="mid", color="0.55", linewidth=2.5, alpha=0.6,
                label="customer demand")
        seen: dict[PolicyKind, int] = {}
        for values, label, kind in zip(arrays, labels, kinds, strict=True):
            kind = PolicyKind(kind)
            style = styles[seen.get(kind, 0) % len(styles)]
            seen[kind] = seen.get(kind, 0) + 1
            ax.plot(t, values[:, stage], color=KIND_COLOURS[kind], linestyle=style, marker=".",
                    label=label)
        ax.set_title(f"stage {stage} (retailer)" if stage == 0 else f"stage {stage}")
        ax.set_ylabel("units ordered")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small", ncols=2)
    axes[-1].set_xlabel("period (day)")
    fig.suptitle("Each stage's orders on one test demand path")
    return fig, axes


def robustness_heatmap(labels: Sequence[str], worlds: Sequence[str],
                       shares: np.ndarray) -> tuple[Figure, Axes]:
    """Each policy's share of the perfect-information bound (rows) in each world (columns).

    Args:
        labels: The policies, one per row.
        worlds: The worlds, one per column.
        shares: (rows, worlds) shares as fractions (1 = the bound); NaN where a policy did not
            act, drawn blank.

    Returns:
        The figure and its axes.

    Raises:
        ValueError: If the shape does not match the labels.
    """
    values = np.asarray(shares, dtype=np.float64)
    if values.shape != (len(labels), len(worlds)) or not len(labels):
        raise ValueError(f"shares must be shaped ({len(labels)}, {len(worlds)}), got "
                         f"{values.shape}")
    fig = _figure(figsize=(1.6 + 1.1 * len(worlds), 1.4 + 0.32 * len(labels)))
    ax = fig.add_subplot()
    image = ax.imshow(100.0 * values, aspect="auto", cmap="viridis", vmin=0.0, vmax=100.0)
    for (row, column), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(column, row, f"{100 * value:.0f}", ha="center", va="center", fontsize=7,
                    color="white" if value < 0.6 else "black")
    ax.set_xticks(np.arange(len(worlds)), labels=worlds, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(np.arange(len(labels)), labels=labels, fontsize=8)
    fig.colorbar(image, ax=ax, label="share of the perfect-information bound (%)")
    ax.set_title("Every policy in worlds it was not made for")
    return fig, ax


def score_profiles(panels: Mapping[str, Mapping[str, Sequence[float]]],
                   thresholds: Sequence[float]) -> tuple[Figure, list[Axes]]:
    """Performance profiles: each method's share of runs scoring above each threshold.

    Args:
        panels: ``{panel title: {method: shares, one per threshold}}``, one panel each (e.g.
            the score against the bound and against the best heuristic).
        thresholds: The normalised scores the shares are read at.

    Returns:
        The figure and its axes, one per panel.

    Raises:
        ValueError: If no panel is given, or a method's shares do not match the thresholds.
    """
    tau = np.asarray(thresholds, dtype=np.float64)
    if not panels:
        raise ValueError("score_profiles needs at least one panel")
    fig = _figure(figsize=(4.2 * len(panels), 3.2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, methods) in zip(axes, panels.items(), strict=True):
        for method, shares in methods.items():
            values = np.asarray(shares, dtype=np.float64)
            if values.shape != tau.shape:
                raise ValueError(f"{method}: {values.size} shares for {tau.size} thresholds")
            ax.step(tau, values, where="post", label=method)
        ax.set_xlabel("normalised score threshold")
        ax.set_ylabel("share of runs above it")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="best")
    return fig, list(axes)


def ladder(entries: Sequence[Mapping[str, object]]) -> tuple[Figure, Axes]:
    """Every policy's profit as a share of the perfect-information bound, sorted.

    A horizontal bar per policy, best on top, annotated with its percentage, and a vertical line
    at 100% (the bound: what a planner that knew the whole demand path in advance earns).

    Args:
        entries: Mappings with ``label`` and ``kind`` (a :class:`PolicyKind` value), and either
            ``share`` (a fraction, e.g. ``ShareOfBound.ratio_of_means``) or ``mean``. Shares not
            given are ``mean / bound mean`` with the bound the one entry of kind ``"bound"``
            (the ratio of means when all means come from the same paths); that entry is the
            100% line, not a bar.

    Returns:
        The figure and its axes.

    Raises:
        ValueError: If there is no policy to draw, a kind is unknown, or a share is needed but
            there is not exactly one bound entry with a positive mean.
    """
    bounds = [entry for entry in entries if PolicyKind(entry["kind"]) is PolicyKind.BOUND]
    policies = [entry for entry in entries if PolicyKind(entry["kind"]) is not PolicyKind.BOUND]
    if not policies:
        raise ValueError("ladder needs at least one policy besides the bound")
    bound_mean = None
    if any("share" not in entry for entry in policies):
        if len(bounds) != 1 or not float(bounds[0]["mean"]) > 0.0:
            raise ValueError("shares not given need exactly one bound entry with a positive mean")
        bound_mean = float(bounds[0]["mean"])
    rows = sorted(
        ((float(entry["share"]) if "share" in entry else float(entry["mean"]) / bound_mean,
          str(entry["label"]), PolicyKind(entry["kind"])) for entry in policies),
        key=lambda row: row[0],
    )  # ascending: barh draws the first row at the bottom, so the best ends on top
    percent = np.array([100.0 * share for share, _, _ in rows])
    fig = _figure(figsize=(8.0, 2.0 + 0.45 * len(rows)))
    ax = fig.subplots()
    ax.barh(np.arange(len(rows)), percent, color=[KIND_COLOURS[kind] for _, _, kind in rows])
    for row, value in enumerate(percent):
        ax.annotate(f"{value:.1f}%", (value, row), xytext=(4 if value >= 0 else -4, 0),
                    textcoords="offset points", va="center",
                    ha="left" if value >= 0 else "right", fontsize="small")
    bound_text = "" if bound_mean is None else f" = {bound_mean:.1f}"
    ax.axvline(100.0, color=KIND_COLOURS[PolicyKind.BOUND], linestyle="--",
               label=f"perfect-information bound{bound_text} (100%)")
    ax.set_yticks(range(len(rows)), [label for _, label, _ in rows])
    ax.set_xlim(min(0.0, percent.min() * 1.15), max(100.0, percent.max()) * 1.12)
    ax.set_xlabel(f"mean {PROFIT_LABEL} as % of the perfect-information bound")
    ax.set_title("Share of the perfect-information profit earned on the same test paths")
    ax.grid(axis="x", alpha=0.3)
    drawn = {kind for _, _, kind in rows}
    handles = [Patch(color=KIND_COLOURS[kind], label=kind.value)
               for kind in PolicyKind if kind in drawn]
    handles.append(ax.get_lines()[-1])
    fig.legend(handles=handles, fontsize="small", loc="outside lower center",
               ncols=min(len(handles), 3))
    return fig, ax


def orders_against_position(
    positions: np.ndarray,
    orders: np.ndarray,
    label: str,
    reference_levels: Sequence[float] | None = None,
    reference_last_order_period: Sequence[int] | None = None,
    reference_label: str = "base-stock",
) -> tuple[Figure, np.ndarray]:
    """What a policy orders at each echelon inventory position, period by period.

    One panel per stage (stage 0 is the retailer): a point per (path, period) visited, at the
    echelon inventory position the policy saw and the order it gave, coloured by the period (one
    colour bar for all panels). A reference's order-up-to rule ``max(z_i - position, 0)`` is
    drawn over it when its levels are given: a policy that orders like an echelon base-stock
    policy lies on that line, meeting zero at its level, and a time-aware one drops to zero
    after its last ordering period.

    Args:
        positions: (N, T, S) echelon inventory position of each stage at the start of each
            period, when the policy decided (``echelon.sim.core.echelon_inventory_position``).
        orders: (N, T, S) the policy's orders in those states, as
            ``Rollout.trajectory["action"]`` (before the core truncates and caps them).
        label: The policy's name.
        reference_levels: (S,) echelon base-stock levels [z] of the reference, or None.
        reference_last_order_period: (S,) the reference's last ordering period per stage
            (0-based, as ``TimeAwareBaseStock``'s), or None if it always orders.
        reference_label: The reference's name.

    Returns:
        The figure and its (S,) array of axes, left to right.

    Raises:
        ValueError: If the arrays are not equal (N, T, S) shapes or a reference array has not S
            entries.
    """
    x, y = np.asarray(positions, dtype=np.float64), np.asarray(orders, dtype=np.float64)
    if x.ndim != 3 or x.size == 0 or x.shape != y.shape:
        raise ValueError(f"positions and orders must be equal (N, T, S) shapes, got "
                         f"{np.shape(positions)} and {np.shape(orders)}")
    episodes, periods, stages = x.shape
    for name, values in (("reference_levels", reference_levels),
                         ("reference_last_order_period", reference_last_order_period)):
        if values is not None and np.size(values) != stages:
            raise ValueError(f"{name} must have {stages} entries, got {np.size(values)}")
    period = np.broadcast_to(np.arange(1, periods + 1)[None, :], (episodes, periods)).ravel()
    fig = _figure(figsize=(4.2 * stages + 1.0, 4.8))
    axes = np.atleast_1d(fig.subplots(1, stages, squeeze=False)[0])
    for stage, ax in enumerate(axes):
        xs, ys = x[:, :, stage].ravel(), y[:, :, stage].ravel()
        points = ax.scatter(xs, ys, c=period, cmap="viridis", vmin=1, vmax=periods, s=10,
                            alpha=0.6, linewidths=0)
        title = "stage 0 (retailer)" if stage == 0 else f"stage {stage}"
        if reference_levels is not None:
            z = float(reference_levels[stage])
            grid = np.linspace(min(xs.min(), z), max(xs.max(), z), 200)
            ax.plot(grid, np.maximum(z - grid, 0.0), color="black", linestyle="--")
            title += f"\nreference: z = {z:g}"
            if reference_last_order_period is not None:
                title += f", orders up to period {int(reference_last_order_period[stage]) + 1}"
        ax.set_title(title)
        ax.set_xlabel("echelon inventory position of "
                      + (f"stages 0..{stage}" if stage else "stage 0") + " (units)")
        ax.set_ylabel("order (units)")
        ax.grid(alpha=0.3)
    fig.colorbar(points, ax=list(axes), label="period (day)")
    handles = [Line2D([], [], marker="o", linestyle="none", color="0.4",
                      label=f"{label}: a state visited (colour: period)")]
    if reference_levels is not None:
        handles.append(Line2D([], [], color="black", linestyle="--",
                              label=f"{reference_label}: max(z - position, 0)"
                                    + (" while it orders, then 0"
                                       if reference_last_order_period is not None else "")))
    fig.legend(handles=handles, fontsize="small", loc="outside lower center", ncols=len(handles))
    fig.suptitle(f"What {label} orders at each echelon inventory position (start of the "
                 f"period), {episodes} test path{'s' * (episodes != 1)}")
    return fig, axes


def _figure(figsize: tuple[float, float]) -> Figure:
    """A figure on its own Agg canvas: no pyplot, no global backend switch."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _across_seeds(
    runs: Sequence[Sequence[Mapping[str, float]]], column: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Epochs and the mean, min and max over seeds of one column; empty if it is absent."""
    by_epoch: dict[float, list[float]] = {}
    for rows in runs:
        for position, row in enumerate(rows, start=1):
            value = _number(row.get(column))
            if value is not None:
                epoch = _number(row.get("epoch"))
                by_epoch.setdefault(position if epoch is None else epoch, []).append(value)
    epochs = np.array(sorted(by_epoch))
    values = [np.array(by_epoch[epoch]) for epoch in epochs]
    return (epochs, np.array([v.mean() for v in values]), np.array([v.min() for v in values]),
            np.array([v.max() for v in values]))


def _number(value: object) -> float | None:
    """A finite float from a metrics cell (float or CSV string), or None."""
    if value is None or value == "":
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _periods_by_stages(on_hand: np.ndarray) -> np.ndarray:
    values = np.asarray(on_hand, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2 or values.size == 0:
        raise ValueError(f"on-hand must be shaped (T, S), got {np.shape(on_hand)}")
    return values
