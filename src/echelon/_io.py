"""Atomic file writes: a temporary file beside the target, then a rename.

A reader never sees a half-written file, and an interrupted write leaves the old file intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Calls ``write(handle)`` on a temporary binary file beside ``path``, then renames it.

    Raises:
        Whatever ``write`` raises; the temporary file is removed and ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        set_default_mode(tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def set_default_mode(path: str | os.PathLike) -> None:
    """Gives a temporary file the permissions a plain ``open(path, "w")`` would (0666 minus the
    umask), instead of mkstemp's private 0600."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Writes text (UTF-8) atomically."""
    return atomic_write(path, lambda handle: handle.write(text.encode()))


def atomic_write_json(path: str | os.PathLike, data: Any, default: Callable[[Any], Any] | None = None) -> Path:
    """Writes JSON atomically."""
    return atomic_write_text(path, json.dumps(data, default=default))
