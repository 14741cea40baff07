"""The reproduction pipeline's public names in one place: ``from echelon import pipeline``.

Everything lives in :mod:`echelon.run`; this module keeps the short import that scripts and
notebooks use (``pipeline.resolve("quick")``, ``pipeline.reproduce(run, "runs/quick")``): each
name is looked up in :mod:`echelon.run` when it is first used (PEP 562).
"""

from __future__ import annotations

from typing import Any

import echelon.run as _run

__all__ = list(_run.__all__)


def __getattr__(name: str) -> Any:
    if name in _run.__all__:
        return getattr(_run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
