"""Atomic file writes and output checks.

A write goes to a temporary file beside the target, then a rename: a reader never sees a
half-written file, and an interrupted write leaves the old file intact. Temporary files are named
``.<target name>.<pid>-<random>.tmp``; one whose writing process is gone (killed mid-write) is
removed by the next write to the same target.

:func:`check_output` is called by every command before it writes anything: it refuses an output
that is one of the command's inputs, a folder where a file is expected (or the reverse), a path
under a file, or a finished result that would be replaced without ``--overwrite``.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

# Temporaries of our own naming: the pid of the writer, then a random part.
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]{8}\.tmp$")
# Before temporaries carried the writer's pid they were ``.<name>.<8 random chars>.tmp``; one of
# those this old is from a write that never finished (the longest write, a paper-sized dataset,
# takes seconds).
_LEGACY_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}\.tmp$")
_LEGACY_AGE_SECONDS = 3600.0


class OutputError(ValueError):
    """An output path that a command must not write; the message names it and why."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def clean_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Removes the temporaries of unfinished writes to ``target`` whose writer is gone.

    Returns:
        The files removed.
    """
    target = Path(target)
    removed = []
    try:
        entries = list(target.parent.iterdir())
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match and match["name"] == target.name:
            stale = not _pid_alive(int(match["pid"]))
        else:
            legacy = _LEGACY_TEMPORARY.match(entry.name)
            if not legacy or legacy["name"] != target.name:
                continue
            try:
                stale = now - entry.stat().st_mtime > _LEGACY_AGE_SECONDS
            except OSError:
                continue
        if stale and entry.is_file():
            entry.unlink(missing_ok=True)
            removed.append(entry)
    return removed


def _temporary(target: Path) -> Path:
    return target.parent / f".{target.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"


def atomic_write_path(path: str | os.PathLike, write: Callable[[Path], Any]) -> Path:
    """Calls ``write(temporary_path)`` for writers that need a file name (HDF5), then renames.

    Raises:
        Whatever ``write`` raises; the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    created = _make_folders(target.parent)
    clean_stale_temporaries(target)
    tmp = _temporary(target)
    try:
        write(tmp)
        set_default_mode(tmp)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        for folder in reversed(created):  # a failed write leaves no empty folders behind
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    return target


def _make_folders(folder: Path) -> list[Path]:
    """Creates ``folder`` and its missing parents; returns those created, outermost first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    created: list[Path] = []
    try:
        for path in reversed(missing):
            try:
                path.mkdir()
            except FileExistsError:
                continue
            created.append(path)
    except OSError:
        for path in reversed(created):
            path.rmdir()
        raise
    return created


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Calls ``write(handle)`` on a temporary binary file beside ``path``, then renames it.

    Raises:
        Whatever ``write`` raises; the temporary file is removed and ``path`` is untouched.
    """
    def to_file(tmp: Path) -> None:
        with open(tmp, "xb") as handle:
            write(handle)

    return atomic_write_path(path, to_file)


def set_default_mode(path: str | os.PathLike) -> None:
    """Gives a temporary file the permissions a plain ``open(path, "w")`` would (0666 minus the
    umask), not a private 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes text (UTF-8) atomically."""
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write_json(path: str | os.PathLike, data: Any, default: Callable[[Any], Any] | None = None) -> Path:
    """Writes JSON atomically."""
    return atomic_write_text(path, json.dumps(data, default=default))


def atomic_write_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> Path:
    """Writes rows of a table as CSV atomically; the columns are the rows' keys in order of
    first appearance."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(dict.fromkeys(key for row in rows for key in row)))
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, text.getvalue())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output(
    path: str | os.PathLike,
    *,
    what: str = "--out",
    folder: bool = False,
    inputs: tuple[str | os.PathLike, ...] = (),
    overwrite: bool = False,
    finished: Callable[[Path], bool] | None = None,
    example: str = "out",
) -> Path:
    """Checks, before anything is written, that a command may write ``path``.

    Args:
        path: The output: a file, or with ``folder`` a folder.
        what: How the user named it (an option or a field), for the message.
        folder: The output is a folder (files are written inside it).
        inputs: The command's input files; the output may be none of them (nor hold them, for
            a folder that would be replaced).
        example: A file name for the message when ``path`` is a folder, e.g. ``dataset.h5``.
        overwrite: An existing output file may be replaced.
        finished: For a folder, ``finished(path)`` tells whether it already holds a result that
            writing would replace; such a folder needs ``overwrite``.

    Returns:
        ``path`` as a ``Path``.

    Raises:
        OutputError: Naming the path and the problem.
    """
    target = Path(path)
    if str(path) == "":
        raise OutputError(f"{what} must not be empty")
    for given in inputs:
        source = Path(given)
        if _same_file(target, source) or target.resolve() == source.resolve():
            raise OutputError(f"{what} {target} is an input of this command; "
                              "no command writes over its inputs: choose another path")
    for parent in target.parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"{what} {target}: {parent} is a file, not a folder")
            break
    if folder:
        if target.exists() and not target.is_dir():
            raise OutputError(f"{what} {target} is a file; give a folder")
        if finished is not None and target.is_dir() and finished(target) and not overwrite:
            raise OutputError(f"{what} {target} already holds a result; choose another folder, "
                              "or pass --overwrite to replace it")
        _probe_writable(what, target)
        return target
    if target.is_dir():
        raise OutputError(f"{what} {target} is a folder; give a file path such as "
                          f"{target / example}")
    if target.exists() and not overwrite:
        raise OutputError(f"{what} {target} exists; choose another path, or pass --overwrite "
                          "to replace it")
    _probe_writable(what, target.parent)
    return target


def _probe_writable(what: str, folder: Path) -> None:
    """Creates and removes a file in ``folder`` (and the folders on the way), so that a place
    nobody may write is refused before hours of work, and leaves nothing behind."""
    try:
        created = _make_folders(folder)
    except OSError as error:
        raise OutputError(f"{what}: cannot create {error.filename or folder}: "
                          f"{error.strerror or error}") from None
    probe = _temporary(folder / "probe")
    try:
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as error:
        raise OutputError(f"{what}: cannot write in {folder}: {error.strerror or error}") from None
    finally:
        for path in reversed(created):
            try:
                path.rmdir()
            except OSError:
                break
