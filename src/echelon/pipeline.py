"""The reproduction pipeline: a run's resolved configuration and its stages.

A preset (TOML) is resolved into :class:`RunConfig`, then command-line overrides
(``collect.episodes=500``) are applied, then everything is validated. Stages take the resolved
configuration and return their results; the command line decides where they are written.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import OfflineDataset
from echelon.policies.search import SearchConfig, SearchResult, run_search
from echelon.presets import read_preset
from echelon.sim.config import ChainConfig
from echelon.sim.demand import run_streams


@dataclass(frozen=True)
class RunConfig:
    """Everything one run of the pipeline needs, resolved from a preset."""

    name: str = "quick"
    """The run's name (a preset's name by default)."""
    seed: int = 0
    """The run seed; search, collection, training and test streams are spawned from it."""
    chain: ChainConfig = field(default_factory=ChainConfig)
    """The supply chain (OR-Gym InvManagement-v1 by default)."""
    search: SearchConfig = field(default_factory=SearchConfig)
    """The heuristic search whose best settings are the behaviour policies."""
    collect: CollectConfig = field(default_factory=CollectConfig)
    """How the offline dataset is collected."""

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")

    def to_dict(self) -> dict[str, Any]:
        """A TOML-ready dict of the resolved configuration."""
        def plain(value):
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                if isinstance(value, ChainConfig):
                    return value.to_dict()
                return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
            return getattr(value, "value", value)
        return plain(self)


_SECTIONS = {"chain": ChainConfig, "search": SearchConfig, "collect": CollectConfig}


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word, e.g. search.mode=clip


def resolve(preset: str | Path = "quick", overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Resolves a preset and ``key=value`` overrides into a validated :class:`RunConfig`.

    Args:
        preset: A bundled preset name (``quick``, ``paper``) or a TOML file.
        overrides: Items such as ``seed=3``, ``collect.episodes=500``, ``chain.L=[2,4,6]``;
            values are TOML (bare words are strings).

    Raises:
        ValueError: Naming the key, if an override is malformed or a value is out of range.
    """
    raw = read_preset(preset)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ValueError(f"override {item!r} must look like section.field=value")
        *sections, name = key.strip().split(".")
        table = raw
        for section in sections:
            table = table.setdefault(section, {})
            if not isinstance(table, dict):
                raise ValueError(f"override {item!r}: {section} is not a table")
        table[name] = _parse_value(text.strip())
    unknown = set(raw) - {"name", "seed", *_SECTIONS}
    if unknown:
        raise ValueError(f"unknown preset keys {sorted(unknown)}; known: name, seed, {', '.join(_SECTIONS)}")
    parts: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        table = dict(raw.get(section, {}))
        if cls is ChainConfig:
            parts[section] = ChainConfig.from_dict(table) if table else ChainConfig()
            continue
        known = {f.name for f in dataclasses.fields(cls)}
        bad = set(table) - known
        if bad:
            raise ValueError(f"unknown keys in [{section}]: {sorted(bad)}; known: {sorted(known)}")
        parts[section] = cls(**table)
    return RunConfig(name=str(raw.get("name", preset)), seed=raw.get("seed", 0), **parts)


def search_stage(run: RunConfig, *, progress: bool = False) -> SearchResult:
    """Stage 1: the heuristic search on the run's search stream."""
    return run_search(run.chain, run.search, run_streams(run.seed).search, progress=progress)


def behaviours_from_search(run: RunConfig, result: SearchResult) -> list[Behaviour]:
    """The behaviour mixture of the paper's recipe: the search's top settings, equal weights."""
    prefix = f"{run.search.space.value}-{result.family.value}"
    return [
        Behaviour(f"{prefix}-{rank}", result.family, candidate.params, result.mode)
        for rank, candidate in enumerate(result.ranked, 1)
    ]


def collect_stage(run: RunConfig, result: SearchResult) -> OfflineDataset:
    """Stage 2: the mixture-of-experts dataset on the run's collection stream."""
    return collect(
        run.chain,
        behaviours_from_search(run, result),
        run.collect,
        run_streams(run.seed).collect,
        seeds_info={"run_seed": run.seed, "stream": "collect"},
    )
