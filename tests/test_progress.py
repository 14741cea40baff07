"""Progress on stderr: a bar on a terminal, a bounded number of plain lines in a log."""

from __future__ import annotations

import io

import pytest
from tqdm.std import tqdm as std_tqdm

from echelon import _progress
from echelon._progress import LineProgress, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_tqdm_bar():
    stream = Terminal()
    with progress(total=5, desc="grid", unit="cfg", file=stream) as bar:
        assert isinstance(bar, std_tqdm)
        bar.update(5)
    assert "grid" in stream.getvalue()


def test_a_log_gets_a_first_and_a_last_line():
    stream = io.StringIO()
    with progress(total=1000, desc="iql", unit="step", file=stream) as bar:
        assert isinstance(bar, LineProgress)
        for _ in range(1000):
            bar.update(1)
            bar.set_postfix({"critic_loss": "597"}, actor_loss=1.5)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "iql: step 0/1000"
    assert len(lines) == 2  # under a minute: nothing in between
    assert lines[1].startswith("iql: step 1000/1000 (100%) 00:0")
    assert lines[1].endswith(", done, critic_loss=597, actor_loss=1.5")


def test_a_long_task_writes_a_line_per_tenth_at_most(monkeypatch):
    monkeypatch.setattr(_progress, "_LINE_SECONDS", 0.0)  # as if each update took a minute
    stream = io.StringIO()
    with progress(total=1000, desc="search", file=stream) as bar:
        for _ in range(1000):
            bar.update(1)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11  # the start, 10%, ..., 90%, and the end
    assert [line.split()[2] for line in lines[1:-1]] == [f"{n}/1000" for n in range(100, 1000, 100)]
    assert "(50%)" in lines[5] and lines[-1].endswith("done")


def test_without_a_total_lines_come_once_a_minute(monkeypatch):
    stream = io.StringIO()
    with progress(desc="search", unit="cfg", file=stream) as bar:
        bar.update(7)  # under a minute: no line
        monkeypatch.setattr(_progress, "_LINE_SECONDS", 0.0)
        bar.update(3)
    assert stream.getvalue().splitlines()[0] == "search: cfg 0"
    assert stream.getvalue().splitlines()[1].startswith("search: cfg 10 ")
    assert stream.getvalue().splitlines()[2].endswith(", done")


def test_iteration_counts_each_item_and_closes():
    stream = io.StringIO()
    assert list(progress(range(4), desc="grid", unit="cfg", file=stream)) == [0, 1, 2, 3]
    lines = stream.getvalue().splitlines()
    assert lines[0] == "grid: cfg 0/4" and lines[-1].startswith("grid: cfg 4/4 (100%)")
    with pytest.raises(TypeError, match="no iterable"):
        iter(progress(total=3, file=stream)).__next__()


def test_a_task_stopped_early_says_so_once_and_resumed_work_counts():
    stream = io.StringIO()
    bar = progress(total=10, initial=4, desc="td3", unit="step", file=stream)
    bar.update(2)
    bar.close()
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "td3: step 4/10" and len(lines) == 2
    assert lines[1].startswith("td3: step 6/10 (60%)") and lines[1].endswith(", stopped")


def test_disabled_writes_nothing_even_on_a_terminal():
    for stream in (io.StringIO(), Terminal()):
        with progress(total=3, enabled=False, file=stream) as bar:
            bar.update(3)
            bar.set_postfix(loss=1)
        assert stream.getvalue() == ""
