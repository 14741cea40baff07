"""Size guards: a job's memory is estimated from its sizes and refused before any large array exists.

The limit is ``DEFAULT_MEMORY_LIMIT_GIB`` (4 GiB, a sixth of a 24 GiB machine, so that a refused
job leaves room for everything else) unless the environment variable ``ECHELON_MEMORY_LIMIT_GIB``
says otherwise, e.g. ``ECHELON_MEMORY_LIMIT_GIB=16 echelon collect ...``.
"""

from __future__ import annotations

import math
import os

DEFAULT_MEMORY_LIMIT_GIB = 4.0
MEMORY_LIMIT_ENV = "ECHELON_MEMORY_LIMIT_GIB"
_GIB = 1024**3


class SizeLimitError(ValueError):
    """A job whose estimated memory exceeds the limit; the message gives both and the field."""


def memory_limit() -> int:
    """The memory limit in bytes (``ECHELON_MEMORY_LIMIT_GIB``, default 4 GiB).

    Raises:
        ValueError: If the environment variable is not a positive number.
    """
    text = os.environ.get(MEMORY_LIMIT_ENV, "").strip()
    if not text:
        return int(DEFAULT_MEMORY_LIMIT_GIB * _GIB)
    try:
        gib = float(text)
    except ValueError:
        gib = math.nan
    if not math.isfinite(gib) or gib <= 0:
        raise ValueError(f"{MEMORY_LIMIT_ENV} must be a number of GiB > 0, got {text!r}")
    return int(gib * _GIB)


def format_bytes(nbytes: float) -> str:
    """``1.4 GiB``, ``512 MiB``, ``3.0 TiB``: a size for a message."""
    for unit, size in (("PiB", 1024**5), ("TiB", 1024**4), ("GiB", _GIB), ("MiB", 1024**2)):
        if nbytes >= size:
            return f"{nbytes / size:.1f} {unit}"
    return f"{max(nbytes, 0) / 1024:.1f} KiB"


def check_memory(what: str, nbytes: float, *, reduce: str = "") -> None:
    """Refuses a job whose estimated memory exceeds :func:`memory_limit`.

    Args:
        what: The job, e.g. ``"collecting 300,000 episodes"``.
        nbytes: Its estimated memory in bytes.
        reduce: The settings that size it, e.g. ``"collect.episodes"``, named in the message.

    Raises:
        SizeLimitError: With the estimate, the limit and how to proceed.
    """
    limit = memory_limit()
    if nbytes > limit:
        hint = f"reduce {reduce}, or " if reduce else ""
        raise SizeLimitError(
            f"{what} would need about {format_bytes(nbytes)} of memory, over the limit of "
            f"{format_bytes(limit)}; {hint}raise the limit with {MEMORY_LIMIT_ENV}=<GiB>"
        )
