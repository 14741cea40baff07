"""Import of a logged per-period history of a serial chain (CSV), and export to the same format.

A log holds one row per period of each episode; S is the chain's number of stages (stage 0 is
the retailer). Column order is free; every column named below must appear exactly once, and no
other column may:

| column                          | required | meaning                                               |
|---------------------------------|----------|-------------------------------------------------------|
| ``episode``                     | no       | episode label, a whole number >= 0; the rows of an episode are contiguous. Without it, each run of periods 0..T-1 in file order is one episode |
| ``period``                      | yes      | period index n, a whole number running 0..T-1 within each episode (T = ``chain.periods``) |
| ``on_hand_0`` .. ``on_hand_{S-1}`` | yes | on-hand inventory of each stage at the START of the period, before arrivals; checked against the simulator |
| ``order_0`` .. ``order_{S-1}``  | yes      | units each stage requested from the stage above in the period (fractions are truncated by the simulator) |
| ``demand``                      | yes      | customer demand at the retailer in the period         |

Every value is a finite number >= 0, and on-hand, orders and demand are at most the chain's unit
limit U (:func:`~echelon.data.dataset.unit_limit`: max(1e6, 100 * max(max_i(I0_i + T c_i), T *
mean demand)); a value beyond it, such as 1e300 units, is a corrupt or mis-scaled log, not a
history), and an episode label is below 2**53 (exact in float64). The file is UTF-8 text (a BOM
is skipped); the first line is the header; blank lines are skipped.

Import replays the logged orders against the logged demand through the simulator core with the
given chain, so rewards, observations, sales, shipments, unfulfilled units and end-of-period
on-hand all come from the simulator, never from the file; the logged on-hand only serves as a
check. A row is rejected with a :class:`~echelon.data.dataset.DatasetError` naming its line
(1-based; the header is line 1) and the reason: a missing, unknown or duplicate column; a
non-numeric, negative, non-finite or out-of-range value (the message gives the allowed range); a
period out of sequence; an episode with fewer than T periods; or an on-hand that differs from the
simulator's (by more than 1e-6 units plus 1e-9 relative) given the chain's initial inventory and
the episode's earlier rows.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from echelon._io import atomic_write_text
from echelon.data.dataset import (
    EXACT_SUM,
    DatasetError,
    OfflineDataset,
    from_trajectory,
    unit_limit,
)
from echelon.policies.replay import PlanReplay
from echelon.sim.config import ChainConfig
from echelon.sim.rollout import rollout

# How far a logged on-hand may be from the simulator's: logs written with a few decimals pass.
_ABSOLUTE_TOLERANCE = 1e-6
_RELATIVE_TOLERANCE = 1e-9
# Longest text of a value or column name quoted in a message: a line of garbage stays readable.
_QUOTED = 40


def _quote(text: str) -> str:
    """``repr(text)``, cut to about ``_QUOTED`` characters."""
    if len(text) <= _QUOTED:
        return repr(text)
    return f"{text[:_QUOTED]!r}... ({len(text):,} characters)"


def log_columns(stages: int, *, episode: bool = True) -> list[str]:
    """The log's columns in the order :func:`export_log` writes them.

    Args:
        stages: The chain's number of stages S.
        episode: Include the optional ``episode`` column.
    """
    return [
        *(["episode"] if episode else []),
        "period",
        *(f"on_hand_{i}" for i in range(stages)),
        *(f"order_{i}" for i in range(stages)),
        "demand",
    ]


@dataclass
class _Rows:
    """The parsed rows of a log, in file order, after the episode structure was checked."""

    lines: list[int]
    periods: list[int]
    on_hand: list[list[float]]
    orders: list[list[float]]
    demand: list[float]
    episodes: int


class _LogReader:
    """Parses and checks a log row by row, raising at the first bad line."""

    def __init__(self, path: Path, chain: ChainConfig) -> None:
        self.path = path
        self.periods = chain.periods
        self.stages = chain.stages
        self.units = unit_limit(chain)

    def fail(self, line: int, reason: str) -> DatasetError:
        return DatasetError(f"{self.path}, line {line}: {reason}")

    def header(self, names: list[str]) -> dict[str, int]:
        names = [name.strip() for name in names]
        wanted = log_columns(self.stages)
        expected = (
            f"(the chain has S = {self.stages} stages: expected period, on_hand_0..on_hand_"
            f"{self.stages - 1}, order_0..order_{self.stages - 1}, demand, and optionally episode)"
        )
        seen: dict[str, int] = {}
        for index, name in enumerate(names):
            if name in seen:
                raise self.fail(1, f"column {_quote(name)} appears more than once")
            if name not in wanted:
                raise self.fail(1, f"unknown column {_quote(name)} {expected}")
            seen[name] = index
        missing = [name for name in wanted if name not in seen and name != "episode"]
        if missing:
            raise self.fail(1, f"missing column{'s' if len(missing) > 1 else ''} "
                               f"{', '.join(missing)} {expected}")
        return seen

    def number(self, line: int, name: str, text: str, *, whole: bool = False,
               high: tuple[float, str] | None = None) -> float:
        """The value of a field, checked: finite, >= 0, whole if asked, at most ``high``.

        Args:
            high: The largest allowed value and why, or None (the caller checks the range).
        """
        text = text.strip()
        if not text:
            raise self.fail(line, f"{name} is empty")
        try:
            value = float(text)
        except ValueError:
            raise self.fail(line, f"{name} is not a number: {_quote(text)}") from None
        if not math.isfinite(value):
            raise self.fail(line, f"{name} is not finite: {_quote(text)}")
        if value < 0:
            raise self.fail(line, f"{name} is negative: {_quote(text)}")
        if whole and not value.is_integer():
            raise self.fail(line, f"{name} must be a whole number, got {_quote(text)}")
        if high is not None and value > high[0]:
            raise self.fail(line, f"{name} is {_quote(text)}, outside the allowed range "
                                  f"[0, {high[0]:.6g}] ({high[1]})")
        return value

    def quantity(self, line: int, name: str, text: str) -> float:
        """An on-hand, order or demand: a number of units in [0, U]."""
        return self.number(line, name, text, high=(
            self.units, "U, the chain's unit limit: see echelon.data.dataset.unit_limit"))

    def read(self, reader) -> _Rows:
        header = next(reader, None)
        if header is None or not any(name.strip() for name in header):
            raise self.fail(1, "no header row; expected one such as " + ",".join(
                log_columns(self.stages)))
        columns = self.header(header)
        has_episode = "episode" in columns
        on_hand_at = [columns[f"on_hand_{i}"] for i in range(self.stages)]
        order_at = [columns[f"order_{i}"] for i in range(self.stages)]
        rows = _Rows([], [], [], [], [], 0)
        label: float | None = None  # the current episode's label (its index without the column)
        labels: set[float] = set()
        count = 0  # periods of the current episode read so far
        first = 0  # its first line

        def short_episode() -> DatasetError:
            name = f"{int(label)}" if has_episode else f"{rows.episodes - 1} (in file order)"
            return self.fail(
                rows.lines[-1],
                f"episode {name} ends after {count} period{'s' if count != 1 else ''} (lines "
                f"{first}-{rows.lines[-1]}); the chain has T = {self.periods} periods, so every "
                f"episode needs periods 0..{self.periods - 1}",
            )

        for row in reader:
            line = reader.line_num
            if not any(field.strip() for field in row):
                continue
            if len(row) != len(header):
                raise self.fail(line, f"{len(row)} fields, the header has {len(header)}")
            period = self.number(line, "period", row[columns["period"]], whole=True)
            on_hand = [self.quantity(line, f"on_hand_{i}", row[j])
                       for i, j in enumerate(on_hand_at)]
            orders = [self.quantity(line, f"order_{i}", row[j]) for i, j in enumerate(order_at)]
            demand = self.quantity(line, "demand", row[columns["demand"]])
            if has_episode:
                episode = self.number(line, "episode", row[columns["episode"]], whole=True,
                                      high=(EXACT_SUM, "labels must be exact in float64"))
                starts = rows.episodes == 0 or episode != label
                if starts and episode in labels:
                    raise self.fail(line, f"episode {int(episode)} appears again after other "
                                          "episodes; the rows of an episode must be contiguous")
            else:
                episode = float(rows.episodes)
                starts = rows.episodes == 0 or count == self.periods
                if not starts and period == 0:
                    raise short_episode()
            if not starts and count == self.periods:  # only with the episode column
                raise self.fail(line, f"episode {int(episode)} already has all T = {self.periods} "
                                      f"periods (0..{self.periods - 1})")
            if starts:
                if rows.episodes and count < self.periods:
                    raise short_episode()
                label, count, first = episode, 0, line
                labels.add(episode)
                rows.episodes += 1
            if period >= self.periods:
                raise self.fail(line, f"period {period:.15g} is outside 0..{self.periods - 1}: "
                                      f"the chain has T = {self.periods} periods")
            if period != count:
                raise self.fail(line, f"period {int(period)}, expected {count}: the periods of "
                                      f"an episode run 0..{self.periods - 1} in order")
            count += 1
            rows.lines.append(line)
            rows.periods.append(int(period))
            rows.on_hand.append(on_hand)
            rows.orders.append(orders)
            rows.demand.append(demand)
        if not rows.episodes:
            raise self.fail(max(reader.line_num, 1), "no data rows after the header")
        if count < self.periods:
            raise short_episode()
        return rows


def import_log(path: str | os.PathLike, chain: ChainConfig) -> OfflineDataset:
    """Turns a CSV history of a serial chain into a dataset, replayed through the simulator.

    The format and the checks are in the module docstring (and ``docs/log-format.md``).

    Args:
        path: The CSV file.
        chain: The chain that produced the log: its costs, capacities, lead times, initial
            inventory, horizon T and lost sales (v1) or backlog (v0).

    Returns:
        The dataset, episodes renumbered 0..E-1 in file order; behaviour ids -1 (unknown), no
        behaviour policies, ``log/demand`` the logged demand, ``source`` the file name and
        ``kind: "imported"``.

    Raises:
        DatasetError: If the file is missing, a folder, unreadable or not UTF-8 text, or a line
            breaks a rule; the message gives the line number (the header is line 1), the column
            and the reason (for a value out of range, the allowed range).
    """
    path = Path(path)
    if path.is_dir():
        raise DatasetError(f"{path}: is a folder, not a log file")
    if not path.is_file():
        raise DatasetError(f"{path}: no such log file")
    try:
        with path.open(newline="", encoding="utf-8-sig") as file:
            reader = csv.reader(file)
            try:
                rows = _LogReader(path, chain).read(reader)
            except csv.Error as error:  # e.g. a field longer than csv.field_size_limit()
                raise DatasetError(
                    f"{path}, line {reader.line_num}: not valid CSV: {error}"
                ) from None
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not a UTF-8 text file: {error}") from None
    except OSError as error:
        raise DatasetError(f"{path}: cannot read the log: {error.strerror or error}") from None

    episodes, periods, stages = rows.episodes, chain.periods, chain.stages
    orders = np.array(rows.orders, dtype=np.float64).reshape(episodes, periods, stages)
    demand = np.array(rows.demand, dtype=np.float64).reshape(episodes, periods)
    trajectory = rollout(chain, PlanReplay(orders), demand, record=True).trajectory
    obs = trajectory["observation"]  # (E, T+1, D); its first S entries are the on-hand

    logged = np.array(rows.on_hand, dtype=np.float64)
    simulated = obs[:, :-1, :stages].reshape(episodes * periods, stages)
    tolerance = _ABSOLUTE_TOLERANCE + _RELATIVE_TOLERANCE * np.abs(simulated)
    wrong = np.abs(logged - simulated) > tolerance
    if wrong.any():
        row, stage = np.argwhere(wrong)[0]  # the first in file order: rows are in file order
        raise DatasetError(
            f"{path}, line {rows.lines[row]}: on_hand_{stage} does not match the simulator: "
            f"expected {float(simulated[row, stage])!r}, got {float(logged[row, stage])!r} "
            f"(period {rows.periods[row]}; simulated from the chain's initial inventory and the "
            "episode's earlier rows)"
        )

    try:
        return from_trajectory(
            chain,
            trajectory,
            np.full(episodes, -1),
            behaviour_policies=[],
            seeds={},
            source={"kind": "imported", "file": path.name, "episodes": episodes},
        )
    except DatasetError as error:  # e.g. a backlog that the replay carried beyond the unit limit
        raise DatasetError(f"{path}: the replayed log is not a valid dataset: {error}") from None


def _number(value: float) -> str:
    """The shortest text that reads back as exactly ``value`` (whole numbers without '.0')."""
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def export_log(data: OfflineDataset, path: str | os.PathLike) -> Path:
    """Writes a dataset as a CSV log that :func:`import_log` reads back to the same transitions.

    The on-hand at the start of each period is the first S entries of the observation; the
    orders are the dataset's actions. Written atomically: to a temporary file beside the
    target, then renamed.

    Args:
        data: The dataset; its demand must be observed (no NaN) and its actions >= 0, and every
            episode must run the full horizon.
        path: The CSV file to write.

    Returns:
        The path written.

    Raises:
        DatasetError: If the dataset holds what the log format cannot: unobserved demand,
            negative orders, or an episode cut short.
    """
    stages, periods = data.chain.stages, data.chain.periods
    demand = data.log["demand"]
    for what, bad in (
        ("demand is unobserved (NaN); the log format needs every period's demand",
         np.isnan(demand)),
        ("an order (action) is negative; the log format holds requested units >= 0",
         np.any(data.actions < 0, axis=1)),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DatasetError(f"cannot export: in episode {data.episode_ids[row]}, period "
                               f"{data.periods[row]}, {what}")
    lengths = np.bincount(data.episode_ids)
    if np.any(lengths != periods):
        episode = int(np.flatnonzero(lengths != periods)[0])
        raise DatasetError(
            f"cannot export: episode {episode} has {lengths[episode]} periods, the chain has "
            f"{periods}; the log format holds whole episodes only"
        )

    text = io.StringIO(newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(log_columns(stages))
    on_hand = data.observations[:, :stages]
    for row in range(len(data)):
        writer.writerow([
            str(data.episode_ids[row]),
            str(data.periods[row]),
            *(_number(float(v)) for v in on_hand[row]),
            *(_number(float(v)) for v in data.actions[row]),
            _number(float(demand[row])),
        ])
    return atomic_write_text(path, text.getvalue())
