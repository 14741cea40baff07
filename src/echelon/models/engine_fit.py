"""What a censored fit of a demand engine (:mod:`.curve_fit`, :mod:`.regime_fit`) returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from echelon.models.observations import _json_float
from echelon.sim.demand import Demand, demand_to_dict


@dataclass(frozen=True)
class EngineFit:
    """A demand engine estimated from logs by censored maximum likelihood."""

    law: Demand
    """The fitted engine, ready for a ``ChainConfig``."""
    params: dict[str, Any]
    """Its maximum-likelihood parameters, and ``mean``, its average demand per period."""
    log_likelihood: float
    aic: float
    """2 k - 2 l (k fitted parameters), comparable with :func:`.compare_laws`' i.i.d. fits of
    the same logs."""
    observations: int
    censored: int
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Intervals of some parameters (see each fit)."""

    def to_dict(self) -> dict[str, Any]:
        return {"law": demand_to_dict(self.law),
                "params": {k: _plain(v) for k, v in self.params.items()},
                "ci": {k: [_json_float(lo), _json_float(hi)] for k, (lo, hi) in self.ci.items()},
                "log_likelihood": self.log_likelihood, "aic": self.aic,
                "observations": self.observations, "censored": self.censored}


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return _json_float(value) if isinstance(value, float) else value


__all__ = ["EngineFit"]
