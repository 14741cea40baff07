"""Import of CSV logs: round trips through export_log, a hand-worked case, and every rejection."""

from __future__ import annotations

import csv
import dataclasses
import re

import numpy as np
import pytest

from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import DatasetError, OfflineDataset, dataset_fields
from echelon.data.importer import export_log, import_log, log_columns
from echelon.policies.base_stock import RequestMode
from echelon.policies.search import Family
from echelon.sim.config import ChainConfig
from echelon.sim.demand import Poisson

# A two-stage chain unlike the default in every parameter, with a zero lead time.
OTHER_CHAIN = ChainConfig(
    periods=12,
    initial_inventory=(50.0, 60.0),
    price=3.0,
    replenishment_cost=(1.2, 0.9, 0.4),
    unfulfilled_penalty=(0.2, 0.1, 0.05),
    holding_cost=(0.1, 0.05),
    capacity=(60.0, 50.0),
    lead_time=(0, 2),
    demand=Poisson(15.0),
    alpha=0.95,
)
CHAINS = {
    "v1": ChainConfig(),
    "v0": ChainConfig(backlog=True),
    "other": OTHER_CHAIN,
}


def simulated(chain: ChainConfig, episodes: int = 20) -> OfflineDataset:
    """Two base-stock behaviours, one raw (orders above capacity) and fractional levels."""
    stages = chain.stages
    behaviours = [
        Behaviour("raw", Family.BASE_STOCK, {"z": [80.5 + 40 * i for i in range(stages)]},
                  RequestMode.RAW),
        Behaviour("clip", Family.BASE_STOCK, {"z": [60.0 + 30.25 * i for i in range(stages)]}),
    ]
    return collect(chain, behaviours, CollectConfig(episodes=episodes), np.random.SeedSequence(0))


def field(data: OfflineDataset, name: str) -> np.ndarray:
    return data.log[name[4:]] if name.startswith("log/") else getattr(data, name)


def assert_same_transitions(got: OfflineDataset, want: OfflineDataset) -> None:
    for name in dataset_fields():
        if name == "behaviour_ids":
            continue
        a, b = field(got, name), field(want, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.mark.parametrize("name", sorted(CHAINS))
def test_round_trip_gives_the_same_transitions(tmp_path, name):
    chain = CHAINS[name]
    data = simulated(chain)
    path = export_log(data, tmp_path / "log.csv")
    assert [p.name for p in tmp_path.iterdir()] == ["log.csv"]  # no temporary file left
    back = import_log(path, chain)
    assert_same_transitions(back, data)
    assert back.chain == chain
    assert np.all(back.behaviour_ids == -1)
    assert back.behaviour_policies == []
    assert back.source == {"kind": "imported", "file": "log.csv", "episodes": 20}
    # The levels are fractional: the import kept the requests, not what the core truncated.
    assert np.any(back.actions != np.floor(back.actions))


def test_round_trip_without_the_episode_column(tmp_path):
    data = simulated(ChainConfig(backlog=True), episodes=5)
    with_episode = export_log(data, tmp_path / "with.csv")
    with with_episode.open(newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "episode"
    without = tmp_path / "without.csv"
    with without.open("w", newline="") as f:
        csv.writer(f).writerows(row[1:] for row in rows)
    back = import_log(without, data.chain)
    assert_same_transitions(back, data)
    assert back.episodes == 5


def test_episode_labels_are_renumbered_in_file_order(tmp_path):
    data = simulated(OTHER_CHAIN, episodes=3)
    path = export_log(data, tmp_path / "log.csv")
    text = path.read_text().splitlines()
    relabel = {"0": "7", "1": "3", "2": "12"}
    lines = [text[0]] + [relabel[line.split(",", 1)[0]] + "," + line.split(",", 1)[1]
                         for line in text[1:]]
    path.write_text("\n".join(lines) + "\n")
    back = import_log(path, OTHER_CHAIN)
    assert_same_transitions(back, data)


def test_columns_may_come_in_any_order_with_blank_lines(tmp_path):
    data = simulated(OTHER_CHAIN, episodes=2)
    path = export_log(data, tmp_path / "log.csv")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    order = list(reversed(range(len(rows[0]))))
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        for i, row in enumerate(rows):
            writer.writerow([row[j] for j in order])
            if i == 5:
                writer.writerow([])
    assert_same_transitions(import_log(path, OTHER_CHAIN), data)


# One stage, T = 3, lead time 1, alpha = 0.5: small enough to work out by hand.
ONE_STAGE = ChainConfig(
    periods=3,
    initial_inventory=(10.0,),
    price=2.0,
    replenishment_cost=(1.0, 0.5),
    unfulfilled_penalty=(0.1, 0.05),
    holding_cost=(0.2,),
    capacity=(100.0,),
    lead_time=(1,),
    alpha=0.5,
)
HEADER = "period,on_hand_0,order_0,demand"
EPISODE = ["0,10,5,4", "1,6,0,9", "2,2,3,5"]


def write(tmp_path, lines: list[str], name: str = "log.csv"):
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return path


def test_hand_worked_one_stage_log(tmp_path):
    # Period 0: 5 ordered and shipped (arrives in period 1), 4 of 10 sold, 6 left.
    #   retailer 2*4 - 1*5 - 0.2*6 = 1.8; supplier 1*5 - 0.5*5 = 2.5; reward 4.3.
    # Period 1: 5 arrive, 9 of 11 sold, 2 left: 2*9 - 0.2*2 = 17.6, discounted by 0.5: 8.8.
    # Period 2: 3 ordered, 2 of 2 sold, 3 customers lost:
    #   retailer 2*2 - 1*3 - 0.1*3 = 0.7; supplier 3 - 1.5 = 1.5; 2.2 * 0.25 = 0.55.
    data = import_log(write(tmp_path, [HEADER, *EPISODE, *EPISODE]), ONE_STAGE)
    assert data.episodes == 2
    np.testing.assert_allclose(data.rewards, [4.3, 8.8, 0.55] * 2, rtol=1e-12)
    np.testing.assert_allclose(data.episode_returns(), [13.65, 13.65], rtol=1e-12)
    # Observation: on-hand, then the last period's request (max lead time 1).
    np.testing.assert_array_equal(data.observations[:3], [[10, 0], [6, 5], [2, 0]])
    np.testing.assert_array_equal(data.next_observations[:3], [[6, 5], [2, 0], [0, 3]])
    np.testing.assert_array_equal(data.actions[:3], [[5], [0], [3]])
    np.testing.assert_array_equal(data.log["sales"][:3], [[4, 5], [9, 0], [2, 3]])
    np.testing.assert_array_equal(data.log["unfulfilled"][:3], [[0, 0], [0, 0], [3, 0]])
    np.testing.assert_array_equal(data.log["on_hand"][:3], [[6], [2], [0]])
    np.testing.assert_array_equal(data.log["shipped"][:3], [[5], [0], [3]])
    np.testing.assert_array_equal(data.log["demand"], [4, 9, 5] * 2)
    np.testing.assert_array_equal(data.terminations, [False, False, True] * 2)
    np.testing.assert_array_equal(data.episode_ids, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(data.periods, [0, 1, 2] * 2)


def test_backlog_carries_unmet_demand(tmp_path):
    # 12 demanded of 10 on hand, then 1 and 0 with nothing left. Lost sales (v1): 2 and 1 unmet
    # units, each charged once. Backlog (v0): 2, then 2 + 1, then 3 still owed.
    path = write(tmp_path, [HEADER, "0,10,0,12", "1,0,0,1", "2,0,0,0"])
    lost = import_log(path, ONE_STAGE)
    owed = import_log(path, ONE_STAGE.replace(backlog=True))
    np.testing.assert_array_equal(lost.log["unfulfilled"][:, 0], [2, 1, 0])
    np.testing.assert_array_equal(owed.log["unfulfilled"][:, 0], [2, 3, 3])
    np.testing.assert_allclose(lost.rewards, [19.8, -0.05, 0.0], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(owed.rewards, [19.8, -0.15, -0.075], rtol=1e-12)


def test_exported_one_stage_log_reads_back_as_written(tmp_path):
    data = import_log(write(tmp_path, ["episode," + HEADER] + [f"0,{row}" for row in EPISODE]),
                      ONE_STAGE)
    path = export_log(data, tmp_path / "again.csv")
    assert path.read_text().splitlines() == [",".join(log_columns(1))] + [
        f"0,{row}" for row in EPISODE
    ]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["period,on_hand_0,order_0", "0,10,5"], "line 1: missing column demand"),
        (["period,order_0,demand"], r"line 1: missing column on_hand_0 \(the chain has S = 1"),
        (["period"], "line 1: missing columns on_hand_0, order_0, demand"),
        ([HEADER + ",price"], "line 1: unknown column 'price'"),
        (["period,on_hand_0,on_hand_1,order_0,demand"], "line 1: unknown column 'on_hand_1'.*S = 1 stages"),
        ([HEADER + ",period"], "line 1: column 'period' appears more than once"),
        ([], "line 1: no header row; expected one such as episode,period,on_hand_0"),
        (["", HEADER, *EPISODE], "line 1: no header row"),
        ([HEADER], "line 1: no data rows after the header"),
        ([HEADER, EPISODE[0], "1,6,abc,9", EPISODE[2]], "line 3: order_0 is not a number: 'abc'"),
        ([HEADER, EPISODE[0], EPISODE[1], "2,2,3,-5"], "line 4: demand is negative: '-5'"),
        ([HEADER, "0,nan,5,4", *EPISODE[1:]], "line 2: on_hand_0 is not finite: 'nan'"),
        ([HEADER, EPISODE[0], "1,6,inf,9", EPISODE[2]], "line 3: order_0 is not finite: 'inf'"),
        ([HEADER, EPISODE[0], "1,6,,9", EPISODE[2]], "line 3: order_0 is empty"),
        ([HEADER, EPISODE[0], "1,6,0", EPISODE[2]], "line 3: 3 fields, the header has 4"),
        ([HEADER, EPISODE[0], "1.5,6,0,9", EPISODE[2]], "line 3: period must be a whole number, got '1.5'"),
        ([HEADER, "1,10,5,4", *EPISODE[1:]], "line 2: period 1, expected 0"),
        ([HEADER, EPISODE[0], EPISODE[2]], "line 3: period 2, expected 1"),
        ([HEADER, EPISODE[0], EPISODE[1], "3,2,3,5"], "line 4: period 3 is outside 0..2: the chain has T = 3 periods"),
        ([HEADER, *EPISODE, "1,10,5,4"], "line 5: period 1, expected 0"),
        # Fewer than T periods: at the end of the file, and when the next episode starts.
        ([HEADER, *EPISODE, *EPISODE[:2]],
         r"line 6: episode 1 \(in file order\) ends after 2 periods \(lines 5-6\); the chain has T = 3"),
        ([HEADER, *EPISODE[:2], *EPISODE],
         r"line 3: episode 0 \(in file order\) ends after 2 periods"),
        (["episode," + HEADER, "7,0,10,5,4", "7,1,6,0,9", "8,0,10,5,4", "8,1,6,0,9", "8,2,2,3,5"],
         r"line 3: episode 7 ends after 2 periods \(lines 2-3\)"),
        (["episode," + HEADER, *(f"4,{row}" for row in EPISODE), "4,0,10,5,4"],
         "line 5: episode 4 already has all T = 3 periods"),
        (["episode," + HEADER, *(f"0,{row}" for row in EPISODE), *(f"1,{row}" for row in EPISODE),
          *(f"0,{row}" for row in EPISODE)],
         "line 8: episode 0 appears again after other episodes"),
        (["episode," + HEADER, "-1,0,10,5,4"], "line 2: episode is negative"),
        (["episode," + HEADER, "x,0,10,5,4"], "line 2: episode is not a number: 'x'"),
        # Finite but absurd: 1e300 units would give returns of -1e299 and beyond.
        ([HEADER, "0,1e300,5,4", *EPISODE[1:]],
         re.escape("line 2: on_hand_0 is '1e300', outside the allowed range [0, 1e+06] (U, the "
                   "chain's unit limit: see echelon.data.dataset.unit_limit)")),
        ([HEADER, EPISODE[0], "1,6,1e300,9", EPISODE[2]],
         re.escape("line 3: order_0 is '1e300', outside the allowed range [0, 1e+06]")),
        ([HEADER, EPISODE[0], EPISODE[1], "2,2,3,2e6"],
         re.escape("line 4: demand is '2e6', outside the allowed range [0, 1e+06]")),
        (["episode," + HEADER, "1e20,0,10,5,4"],
         re.escape("line 2: episode is '1e20', outside the allowed range [0, 9.0072e+15] (labels "
                   "must be exact in float64)")),
        ([HEADER, "1e300,10,5,4"], "line 2: period 1e[+]300 is outside 0..2"),
        ([HEADER, "0,10,5," + "1" * 1000],
         re.escape("line 2: demand is not finite: '" + "1" * 40 + "'... (1,000 characters)")),
        ([HEADER + "," + "x" * 5000], re.escape("line 1: unknown column '" + "x" * 40 + "'... "
                                                "(5,000 characters)")),
        # On-hand that the simulator does not reach: at the start, and after earlier rows.
        ([HEADER, "0,11,5,4", *EPISODE[1:]],
         "line 2: on_hand_0 does not match the simulator: expected 10.0, got 11.0"),
        ([HEADER, *EPISODE, EPISODE[0], "1,7,0,9", EPISODE[2]],
         "line 6: on_hand_0 does not match the simulator: expected 6.0, got 7.0"),
    ],
)
def test_rejections_name_the_line_and_the_reason(tmp_path, lines, message):
    with pytest.raises(DatasetError, match=message):
        import_log(write(tmp_path, lines), ONE_STAGE)


def test_on_hand_within_tolerance_is_accepted(tmp_path):
    data = import_log(write(tmp_path, [HEADER, "0,10.0000001,5,4", *EPISODE[1:]]), ONE_STAGE)
    assert data.observations[0, 0] == 10.0  # the simulator's value, not the log's


def test_the_first_wrong_on_hand_in_file_order_is_reported(tmp_path):
    data = simulated(ChainConfig(), episodes=3)
    path = export_log(data, tmp_path / "log.csv")
    lines = path.read_text().splitlines()
    # Corrupt episode 2, period 1 (line 63) and episode 0, period 20 (line 22), stage 2.
    for line in (63, 22):
        cells = lines[line - 1].split(",")
        cells[4] = str(float(cells[4]) + 1)
        lines[line - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    want = float(data.observations[20, 2])
    with pytest.raises(DatasetError, match=re.escape(
        f"line 22: on_hand_2 does not match the simulator: expected {want!r}, got {want + 1!r}"
    )):
        import_log(path, ChainConfig())


def test_missing_file(tmp_path):
    with pytest.raises(DatasetError, match="no such log file"):
        import_log(tmp_path / "absent.csv", ONE_STAGE)


def test_a_log_of_another_chain_is_rejected(tmp_path):
    path = export_log(simulated(ChainConfig(), episodes=1), tmp_path / "log.csv")
    with pytest.raises(DatasetError, match="line 1: unknown column 'on_hand_2'"):
        import_log(path, OTHER_CHAIN)
    with pytest.raises(DatasetError, match="line 2: on_hand_0 does not match"):
        import_log(path, ChainConfig(initial_inventory=(90.0, 100.0, 200.0)))


def test_export_refuses_what_the_format_cannot_hold(tmp_path):
    data = simulated(OTHER_CHAIN, episodes=2)
    actions = data.actions.copy()
    actions[14, 1] = -0.5
    with pytest.raises(DatasetError, match="episode 1, period 2, an order .* is negative"):
        export_log(dataclasses.replace(data, actions=actions), tmp_path / "log.csv")
    demand = data.log["demand"].copy()
    demand[3] = np.nan
    with pytest.raises(DatasetError, match="episode 0, period 3, demand is unobserved"):
        export_log(dataclasses.replace(data, log={**data.log, "demand": demand}), tmp_path / "log.csv")
    cut = data.select_episodes(np.array([0, 1]))
    rows = np.arange(len(cut)) != 23  # drop the last period of episode 1, and mark it truncated
    truncations = cut.truncations.copy()
    truncations[22] = True
    short = dataclasses.replace(
        cut,
        **{name: getattr(cut, name)[rows] for name in
           ("observations", "actions", "rewards", "next_observations", "terminations",
            "episode_ids", "periods", "behaviour_ids")},
        truncations=truncations[rows],
        log={k: v[rows] for k, v in cut.log.items()},
    )
    with pytest.raises(DatasetError, match="episode 1 has 11 periods, the chain has 12"):
        export_log(short, tmp_path / "log.csv")
    assert not any(tmp_path.iterdir())  # nothing written


# --- files that are no log at all ----------------------------------------------------------------


def test_odd_files_are_refused_with_the_file_named(tmp_path):
    path = tmp_path / "log.csv"
    rng = np.random.default_rng(0)

    def refused(content: bytes, message: str) -> None:
        path.write_bytes(content)
        with pytest.raises(DatasetError, match=re.escape(f"{path}") + message):
            import_log(path, ONE_STAGE)

    refused(rng.bytes(4096), ": not a UTF-8 text file")
    refused(b"\x00\x01\x02," * 100 + b"\n" + b"\x00\n" * 3, ", line 1: unknown column")
    refused(b"", ", line 1: no header row")
    refused(b"\n\n\n", ", line 1: no header row")
    refused(f"{HEADER}\n".encode(), ", line 1: no data rows after the header")
    refused(f"{HEADER}\n0,10,{'9' * 200_000},4\n".encode(),
            re.escape(", line 2: not valid CSV: field larger than field limit (131072)"))
    refused("\n".join([HEADER, *EPISODE]).encode("utf-16"), ": not a UTF-8 text file")
    with pytest.raises(DatasetError, match=re.escape(f"{tmp_path}: is a folder, not a log file")):
        import_log(tmp_path, ONE_STAGE)


def test_a_byte_order_mark_is_skipped(tmp_path):
    plain = write(tmp_path, [HEADER, *EPISODE], "plain.csv")
    marked = tmp_path / "marked.csv"
    marked.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    assert_same_transitions(import_log(marked, ONE_STAGE), import_log(plain, ONE_STAGE))


def test_a_backlog_replayed_beyond_the_unit_limit_is_refused(tmp_path):
    # Each period's demand is within the limit (1e6), but in v0 the unmet demand adds up.
    path = write(tmp_path, [HEADER, "0,10,0,900000", "1,0,0,900000", "2,0,0,900000"])
    assert import_log(path, ONE_STAGE).log["unfulfilled"].max() == 900_000  # lost sales: fine
    with pytest.raises(DatasetError, match=re.escape(
            f"{path}: the replayed log is not a valid dataset: log/unfulfilled must lie in "
            "[0, 1e+06] (U, the chain's unit limit: see echelon.data.dataset.unit_limit); row 1, "
            "column 0 holds 1799990.0")):
        import_log(path, ONE_STAGE.replace(backlog=True))
