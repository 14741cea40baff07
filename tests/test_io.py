"""Atomic writes, the clean-up of killed writes' temporaries, and the checks of outputs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from echelon._io import OutputError, atomic_write, atomic_write_text, check_output


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid  # exited and reaped: no process has it now (until the pid is reused)


def test_a_killed_writes_temporary_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "eval.json"
    stale = tmp_path / f".eval.json.{_dead_pid()}-0123abcd.tmp"
    alive = tmp_path / f".eval.json.{os.getpid()}-0123abcd.tmp"  # a write in progress: ours
    other = tmp_path / f".other.json.{_dead_pid()}-0123abcd.tmp"  # another target's
    legacy_old, legacy_new = tmp_path / ".eval.json.abcd1234.tmp", tmp_path / ".eval.json.wxyz9876.tmp"
    for path in (stale, alive, other, legacy_old, legacy_new):
        path.write_text("partial")
    hours_ago = time.time() - 2 * 3600
    os.utime(legacy_old, (hours_ago, hours_ago))
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}"
    assert not stale.exists() and not legacy_old.exists()
    assert alive.exists() and other.exists() and legacy_new.exists()


def test_a_failed_write_leaves_the_old_file_and_no_new_folders(tmp_path):
    target = tmp_path / "a" / "b" / "out.bin"

    def fail(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert list(tmp_path.iterdir()) == []
    existing = tmp_path / "out.bin"
    existing.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        atomic_write(existing, fail)
    assert existing.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_written_files_get_the_usual_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "report.md", "x")
    finally:
        os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(("make", "kwargs", "message"), [
    (lambda p: p / "in.csv", {"inputs": ("{p}/in.csv",)}, "is an input of this command"),
    (lambda p: p, {}, "is a folder; give a file path such as"),
    (lambda p: p / "in.csv" / "x.h5", {}, "in.csv is a file, not a folder"),
    (lambda p: p / "in.csv", {}, "exists; choose another path, or pass --overwrite"),
    (lambda p: p / "in.csv", {"folder": True}, "is a file; give a folder"),
    (lambda p: p / "done", {"folder": True, "finished": lambda f: True}, "already holds a result"),
])
def test_bad_outputs_are_refused_before_anything_is_written(tmp_path, make, kwargs, message):
    (tmp_path / "in.csv").write_text("period\n")
    (tmp_path / "done").mkdir()
    kwargs = {k: tuple(v.replace("{p}", str(tmp_path)) for v in val) if k == "inputs" else val
              for k, val in kwargs.items()}
    before = sorted(p.name for p in tmp_path.rglob("*"))
    with pytest.raises(OutputError, match=message):
        check_output(make(tmp_path), **kwargs)
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_a_good_output_leaves_nothing_behind(tmp_path):
    target = tmp_path / "new" / "deeper" / "dataset.h5"
    assert check_output(target) == target
    assert list(tmp_path.iterdir()) == []  # the write probe and its folders are gone
    assert check_output(tmp_path / "in.csv", overwrite=True) == tmp_path / "in.csv"
