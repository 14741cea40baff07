"""The reproduction pipeline: a run's resolved configuration and its stages.

A preset (TOML) is resolved into :class:`RunConfig`, then command-line overrides
(``collect.episodes=500``) are applied, then everything is validated.

:func:`reproduce` runs the stages in order into a run folder::

    search   -> search.json       the paper's grid (the behaviour policies)
    collect  -> dataset.h5        the mixture-of-experts dataset
    tune     -> baselines.json    strong heuristics tuned on the search stream
    train    -> agents/<variant>-s<seed>/checkpoint.pt, metrics.csv
    evaluate -> eval.json         every policy on the same held-out test paths
    report   -> figures/*.png, report.md

Each stage's inputs are hashed; a stage whose output exists with the same hash is skipped, so an
interrupted run resumes where it stopped (a half-trained agent resumes from its last epoch).
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from echelon._fields import check_types
from echelon._io import atomic_write_json, atomic_write_text
from echelon.agents.presets import PRESETS as AGENT_PRESETS
from echelon.agents.registry import ALGORITHMS
from echelon.data.collect import Behaviour, CollectConfig, collect
from echelon.data.dataset import OfflineDataset
from echelon.policies.search import SearchConfig, SearchResult, run_search
from echelon.presets import PRESETS, read_preset
from echelon.sim.config import ChainConfig
from echelon.sim.demand import child_seeds, run_streams

BASELINES = ("paper-best", "tuned", "time-aware", "slp", "oracle")
# torch seeds are 64-bit and the trainer seeds its batch order with seed + 1.
MAX_TRAIN_SEED = 2**63 - 2


@dataclass(frozen=True)
class TrainStageConfig:
    """Which agents the pipeline trains, and how."""

    preset: str = "quick"
    """Agent preset for every algorithm: ``paper``, ``default`` or ``quick``."""
    algorithms: tuple[str, ...] = ("iql", "bc")
    """Algorithms to train (keys of ``echelon.agents.ALGORITHMS``)."""
    seeds: tuple[int, ...] = (0, 1)
    """Training seeds; every algorithm is trained once per seed."""
    epochs: int | None = None
    """Overrides the preset's epochs when set."""
    device: str = "auto"
    """``auto``, ``cpu`` or ``cuda``."""
    precision: str = "float32"
    """``float32`` or ``bfloat16`` (autocast of the hidden layers; faster, less precise)."""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-algorithm settings over the preset's (TOML tables ``[train.iql]`` ...)."""
    sweep: tuple[str, ...] = ()
    """Extra variants, e.g. ``iql.expectile=0.5,0.7,0.9`` (one algorithm field per item)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "algorithms", tuple(self.algorithms))
        object.__setattr__(self, "seeds", tuple(self.seeds))
        object.__setattr__(self, "sweep", tuple(self.sweep))
        if self.preset not in AGENT_PRESETS:
            raise ValueError(f"train.preset must be one of {list(AGENT_PRESETS)}, got {self.preset!r}")
        unknown = [a for a in (*self.algorithms, *self.overrides) if a not in ALGORITHMS]
        if unknown:
            raise ValueError(f"train.algorithms: unknown {unknown}; known: {sorted(ALGORITHMS)}")
        if not self.seeds or any(isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_TRAIN_SEED
                                 for s in self.seeds):
            raise ValueError(f"train.seeds must be a non-empty list of integers in [0, {MAX_TRAIN_SEED}], "
                             f"got {self.seeds!r}")
        if len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"train.seeds must be distinct, got {self.seeds!r}")
        if self.epochs is not None and (not isinstance(self.epochs, int) or self.epochs < 1):
            raise ValueError(f"train.epochs must be an integer >= 1, got {self.epochs!r}")
        for item in self.sweep:
            parse_sweep(item)


def parse_sweep(item: str) -> tuple[str, str, list[Any]]:
    """``iql.expectile=0.5,0.7,0.9`` -> ("iql", "expectile", [0.5, 0.7, 0.9]).

    Raises:
        ValueError: If the item is malformed or names an unknown algorithm or field.
    """
    key, sep, values = item.partition("=")
    algorithm, dot, name = key.strip().partition(".")
    if not sep or not dot or not values.strip():
        raise ValueError(f"sweep {item!r} must look like algorithm.field=v1,v2,...")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"sweep {item!r}: unknown algorithm {algorithm!r}")
    fields = {f.name for f in dataclasses.fields(ALGORITHMS[algorithm].config)}
    # The paper's name for IQL's expectile is tau.
    name = {"tau": "expectile", "beta": "temperature"}.get(name, name) if algorithm == "iql" else name
    if name not in fields:
        raise ValueError(f"sweep {item!r}: {algorithm} has no setting {name!r}; known: {sorted(fields)}")
    parsed = [_parse_value(v.strip()) for v in values.split(",")]
    cls = ALGORITHMS[algorithm].config
    return algorithm, name, [check_types(f"sweep {algorithm}", cls, {name: v})[name] for v in parsed]


@dataclass(frozen=True)
class EvaluateConfig:
    """The held-out evaluation."""

    episodes: int = 1000
    """Held-out test paths every policy faces (common random numbers), >= 2."""
    paper_episodes: int = 100
    """The paper's protocol: the first this-many test paths, compared unpaired (Welch)."""
    baselines: tuple[str, ...] = BASELINES
    """Strong baselines: paper-best, tuned, time-aware, slp, oracle."""
    tuning_episodes: int = 500
    """Paths the tuned baselines are searched on (and as many to rank on)."""
    bootstrap: int = 2000
    """Bootstrap resamples of every confidence interval."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "baselines", tuple(self.baselines))
        bad = [b for b in self.baselines if b not in BASELINES]
        if bad:
            raise ValueError(f"evaluate.baselines: unknown {bad}; known: {list(BASELINES)}")
        for name, low in (("episodes", 2), ("paper_episodes", 2), ("tuning_episodes", 1), ("bootstrap", 100)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"evaluate.{name} must be an integer >= {low}, got {value!r}")
        if self.paper_episodes > self.episodes:
            raise ValueError("evaluate.paper_episodes must be <= evaluate.episodes")


@dataclass(frozen=True)
class ModelStageConfig:
    """The model-based route: estimate demand from the logs, then plan in the known dynamics."""

    enabled: bool = True
    """Run the model-based route (and compare it with the agents)."""
    law: str = "poisson"
    """The demand law fitted by censored maximum likelihood (poisson, binomial, uniform, geometric)."""
    plan_episodes: int = 500
    """Model paths the time-aware policy is planned on (and as many to rank on), >= 1."""
    scenarios: int = 16
    """Demand scenarios of the rolling-horizon LP per period (0: no rolling LP)."""
    misspecification: bool = True
    """Also plan from logs whose demand is not what the fitted law assumes, to show the cost."""

    def __post_init__(self) -> None:
        from echelon.models.demand_fit import LAWS

        if self.law not in LAWS:
            raise ValueError(f"model.law must be one of {list(LAWS)}, got {self.law!r}")
        for name, low in (("plan_episodes", 1), ("scenarios", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"model.{name} must be an integer >= {low}, got {value!r}")


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
    train: TrainStageConfig = field(default_factory=TrainStageConfig)
    """The agents trained on the dataset."""
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    """The held-out evaluation."""
    model: ModelStageConfig = field(default_factory=ModelStageConfig)
    """The model-based route from the same logs."""

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        if self.collect.weights and len(self.collect.weights) != self.search.top_k:
            raise ValueError(f"collect.weights has {len(self.collect.weights)} weights for the "
                             f"search's {self.search.top_k} best settings (search.top_k)")
        if not isinstance(self.name, str) or not _RUN_NAME.fullmatch(self.name) or len(self.name) > 100:
            raise ValueError(
                f"name must be a plain folder name (letters, digits, '.', '_', '-', not starting "
                f"with '.' or '-', at most 100 characters), got {self.name!r}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A TOML-ready dict of the resolved configuration."""
        def plain(value):
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                if isinstance(value, ChainConfig):
                    return value.to_dict()
                fields = ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
                return {name: plain(v) for name, v in fields if v is not None}  # TOML has no null
            if isinstance(value, (tuple, list)):
                return [plain(v) for v in value]
            if isinstance(value, dict):
                return {k: plain(v) for k, v in value.items()}
            return getattr(value, "value", value)
        return plain(self)


# A run's name is the folder under runs/ its results go to: never a path.
_RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")

_SECTIONS = {"chain": ChainConfig, "search": SearchConfig, "collect": CollectConfig,
             "train": TrainStageConfig, "evaluate": EvaluateConfig, "model": ModelStageConfig}


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
        for depth, section in enumerate(sections):
            table = table.setdefault(section, {})
            if not isinstance(table, dict):
                where = ".".join(sections[:depth + 1])
                raise ValueError(f"override {item!r}: {where} is a value ({table!r}), not a table "
                                 f"with fields; set it with {where}=VALUE")
        if not name:
            raise ValueError(f"override {item!r} must look like section.field=value")
        table[name] = _parse_value(text.strip())
    unknown = set(raw) - {"name", "seed", *_SECTIONS}
    if unknown:
        raise ValueError(f"unknown preset keys {sorted(unknown)}; known: name, seed, {', '.join(_SECTIONS)}")
    parts: dict[str, Any] = {}
    for section, cls in _SECTIONS.items():
        if not isinstance(raw.get(section, {}), dict):
            raise ValueError(f"{section} must be a table ([{section}]), got {raw[section]!r}")
        table = dict(raw.get(section, {}))
        if cls is ChainConfig:
            parts[section] = _chain_from_table(table)
            continue
        known = {f.name for f in dataclasses.fields(cls)}
        if cls is TrainStageConfig:  # [train.iql] tables are per-algorithm overrides
            overrides = dict(table.pop("overrides", {}))
            overrides.update({k: table.pop(k) for k in list(table) if k in ALGORITHMS})
            table["overrides"] = _algorithm_overrides(overrides)
        bad = set(table) - known
        if bad:
            raise ValueError(f"unknown keys in [{section}]: {sorted(bad)}; known: {sorted(known)}")
        parts[section] = cls(**check_types(section, cls, table))
    default_name = preset if str(preset) in PRESETS else Path(preset).stem
    return RunConfig(name=raw.get("name", default_name), seed=raw.get("seed", 0), **parts)


def _chain_from_table(table: dict[str, Any]) -> ChainConfig:
    """The ``[chain]`` table as a config; a ``[chain.demand]`` table without ``law`` changes the
    default law's parameters (``chain.demand.mu=25``)."""
    from echelon.sim.demand import demand_to_dict

    demand = table.get("demand")
    if isinstance(demand, dict) and "law" not in demand:
        table["demand"] = {**demand_to_dict(ChainConfig().demand), **demand}
    try:
        return ChainConfig.from_dict(table) if table else ChainConfig()
    except ValueError as error:
        raise ValueError(f"chain: {error}") from None
    except TypeError as error:  # a table where the chain expects a number, say
        raise ValueError(f"chain: {error}") from None


def _algorithm_overrides(overrides: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``[train.iql]`` tables, each field checked against the algorithm's config."""
    out = {}
    for algorithm, values in overrides.items():
        if algorithm not in ALGORITHMS:
            raise ValueError(f"train.overrides: unknown algorithm {algorithm!r}; known: {sorted(ALGORITHMS)}")
        if not isinstance(values, dict):
            raise ValueError(f"train.{algorithm} must be a table of {algorithm} settings, got {values!r}")
        cls = ALGORITHMS[algorithm].config
        known = {f.name for f in dataclasses.fields(cls)}
        bad = set(values) - known
        if bad:
            raise ValueError(f"unknown keys in [train.{algorithm}]: {sorted(bad)}; known: {sorted(known)}")
        out[algorithm] = check_types(f"train.{algorithm}", cls, values)
    return out


def check_sizes(run: RunConfig) -> None:
    """Refuses a run whose collection or evaluation would not fit in memory, before any stage
    (the search comes first and would otherwise run in vain).

    Raises:
        SizeLimitError: Naming the setting to reduce.
    """
    from echelon._limits import check_memory
    from echelon.data.collect import collect_bytes
    from echelon.sim.demand import demand_bytes
    from echelon.sim.rollout import rollout_bytes

    chain, episodes = run.chain, run.collect.episodes
    check_memory(f"collecting {episodes:,} episodes of {chain.periods:,} periods",
                 collect_bytes(chain, episodes), reduce="collect.episodes or chain.periods")
    tests = run.evaluate.episodes
    check_memory(f"evaluating on {tests:,} held-out paths of {chain.periods:,} periods",
                 demand_bytes(tests, chain.periods) + rollout_bytes(chain, tests),
                 reduce="evaluate.episodes or chain.periods")


def search_stage(run: RunConfig, *, progress: bool = False) -> SearchResult:
    """Stage 1: the heuristic search on the run's search stream."""
    return run_search(run.chain, run.search, run_streams(run.seed).search, progress=progress)


def behaviours_from_search(run: RunConfig, result: SearchResult) -> list[Behaviour]:
    """The behaviour mixture: the search's top settings, with ``collect.weights`` (the paper's
    recipe: equal weights).

    Raises:
        ValueError: If ``collect.weights`` does not have one weight per top setting.
    """
    prefix = f"{run.search.space.value}-{result.family.value}"
    weights = run.collect.weights or (1.0,) * len(result.ranked)
    if len(weights) != len(result.ranked):
        raise ValueError(f"collect.weights has {len(weights)} weights for the search's "
                         f"{len(result.ranked)} best settings (search.top_k)")
    return [
        Behaviour(f"{prefix}-{rank}", result.family, candidate.params, result.mode, weight)
        for rank, (candidate, weight) in enumerate(zip(result.ranked, weights), 1)
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


# --- agents -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentVariant:
    """One algorithm configuration the pipeline trains (once per training seed)."""

    name: str
    """Folder-safe label, e.g. ``iql`` or ``iql-expectile0.5``."""
    algorithm: str
    algo_config: Any
    train_config: Any
    """``TrainConfig`` without the seed (set per run)."""

    def for_seed(self, seed: int) -> tuple[str, Any]:
        return f"{self.name}-s{seed}", dataclasses.replace(self.train_config, seed=seed)


def agent_variants(run: RunConfig) -> list[AgentVariant]:
    """The algorithms of ``run.train`` with their overrides, then the sweep's extra variants."""
    from echelon.agents.presets import agent_preset

    stage = run.train
    extra = {"device": stage.device, "precision": stage.precision,
             **({"epochs": stage.epochs} if stage.epochs else {})}
    variants: list[AgentVariant] = []

    def base(algorithm: str):
        algo, train = agent_preset(algorithm, stage.preset, **extra)
        return dataclasses.replace(algo, **_tuples(stage.overrides.get(algorithm, {}))), train

    for algorithm in stage.algorithms:
        algo, train = base(algorithm)
        variants.append(AgentVariant(algorithm, algorithm, algo, train))
    for item in stage.sweep:
        algorithm, name, values = parse_sweep(item)
        algo, train = base(algorithm)
        for value in values:
            variant = dataclasses.replace(algo, **{name: value})
            if any(v.algorithm == algorithm and v.algo_config == variant for v in variants):
                continue  # the sweep point is already trained (e.g. the preset's own value)
            variants.append(AgentVariant(f"{algorithm}-{name}{value:g}" if isinstance(value, float)
                                         else f"{algorithm}-{name}{value}", algorithm, variant, train))
    return variants


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


# --- the run folder ---------------------------------------------------------------------------


def _digest(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=_jsonable)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def write_json(path: Path, data: Any) -> None:
    """Writes JSON atomically (temp file beside it, then rename)."""
    atomic_write_json(path, data, default=_jsonable)


def to_toml(data: dict[str, Any]) -> str:
    """A small TOML writer for the resolved config (tables, scalars, lists; None omitted)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items() if x is not None) + "}"
        raise ValueError(f"cannot write {v!r} as TOML")

    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    for key, v in data.items():
        if isinstance(v, dict):
            tables.append((key, v))
        elif v is not None:
            lines.append(f"{key} = {value(v)}")
    for name, table in tables:
        lines.append(f"\n[{name}]")
        for key, v in table.items():
            if v is not None:
                lines.append(f"{key} = {value(v)}")
    return "\n".join(lines) + "\n"


class RunFolderError(ValueError):
    """A run folder that a run must not write into as asked; the message says how to proceed."""


def _flatten(table: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(table, dict):
        return {prefix: table}
    out: dict[str, Any] = {}
    for key, value in table.items():
        out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """The dotted keys whose values differ between two resolved configs, as ``key: A -> B``."""
    a, b = _flatten(json.loads(json.dumps(old))), _flatten(json.loads(json.dumps(new)))
    missing = object()
    lines = []
    for key in sorted(set(a) | set(b)):
        before, after = a.get(key, missing), b.get(key, missing)
        if before != after:
            show = lambda v: "(unset)" if v is missing else json.dumps(v)  # noqa: E731
            lines.append(f"{key}: {show(before)} there, {show(after)} now")
    return lines


def open_run_folder(run: RunConfig, out: str | os.PathLike, *, force: bool = False,
                    log=print) -> RunFolder:
    """Checks the run folder before anything is written, then opens it.

    A new or empty folder starts a run. A folder holding a run with the same resolved config
    resumes it (finished stages are skipped). A folder holding a run with another config is
    refused, naming the differing keys, unless ``force``: then the stages whose inputs changed
    run again, and every result they would replace (the old ``config.toml`` and report
    included) is first moved to ``<out>/replaced/<n>/`` under its own name, never deleted;
    unchanged stages are kept. A non-empty folder without ``config.toml`` is not a run folder and
    is always refused.

    Raises:
        RunFolderError: If the folder may not be used as asked.
    """
    path = Path(out)
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise RunFolderError(f"--out {path}: {parent} is a file, not a folder")
            break
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"--out {path} is a file; give a folder for the run")
    config_file = path / "config.toml"
    text = to_toml(run.to_dict())
    differences: list[str] = []
    if path.is_dir() and any(path.iterdir()):
        if not config_file.is_file():
            raise RunFolderError(f"--out {path} holds files but no config.toml: it is not an echelon "
                                 "run folder, and nothing in it is touched; choose another --out")
        try:
            old = tomllib.loads(config_file.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise RunFolderError(f"{config_file}: unreadable ({error}); choose another --out") from None
        differences = config_differences(old, tomllib.loads(text))
        if differences and not force:
            shown = "; ".join(differences[:8]) + (f"; and {len(differences) - 8} more"
                                                  if len(differences) > 8 else "")
            raise RunFolderError(
                f"--out {path} holds a run with other settings ({shown}); nothing was changed. "
                "Use --out for a new folder, or --force to rerun the changed stages here (what "
                f"they replace moves to {path / 'replaced'}/<n>/; nothing is deleted)"
            )
    folder = RunFolder(path, force=force)
    if differences:
        log(f"settings changed ({'; '.join(differences)}): the stages whose inputs changed run "
            f"again, and what they replace moves to {path / 'replaced'}/")
        folder.set_aside("config.toml", "report.md", "figures")
    if not config_file.exists():
        atomic_write_text(config_file, text)
    return folder


class RunFolder:
    """A run's folder and the input hashes of its finished stages (``stages.json``).

    Args:
        path: The folder (created).
        force: A finished result whose stage must run again is moved aside to
            ``replaced/<n>/`` instead of refusing the run.

    Raises:
        RunFolderError: If ``stages.json`` is damaged.
    """

    def __init__(self, path: str | os.PathLike, *, force: bool = False) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.force = force
        self._aside: Path | None = None
        self._file = self.path / "stages.json"
        try:
            stages = json.loads(self._file.read_text()) if self._file.exists() else {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            stages = None
        if not isinstance(stages, dict):
            raise RunFolderError(f"{self._file}: not a table of stage digests; choose another --out")
        self.stages: dict[str, str] = stages

    def done(self, stage: str, digest: str, *outputs: str) -> bool:
        """Whether the stage ran with these inputs and its outputs are all there."""
        return self.stages.get(stage) == digest and all((self.path / o).exists() for o in outputs)

    def set_aside(self, *outputs: str) -> None:
        """Moves outputs (relative to the folder) to ``replaced/<n>/``, keeping their names; one
        ``n`` per run, the first free."""
        for output in outputs:
            source = self.path / output
            if not source.exists():
                continue
            if self._aside is None:
                n = 1
                while (self.path / "replaced" / str(n)).exists():
                    n += 1
                self._aside = self.path / "replaced" / str(n)
            target = self._aside / output
            target.parent.mkdir(parents=True, exist_ok=True)
            source.rename(target)

    def clear(self, stage: str, digest: str, *outputs: str, recorded: str | None = None) -> None:
        """Clears the way for a stage that must run: finished outputs made with other inputs
        are moved aside with ``force``, and refused without.

        Outputs without a recorded digest are leftovers of this run's own interrupted stage,
        and are redone in place.

        Args:
            stage: The stage's name.
            digest: The hash of its inputs now.
            outputs: Its outputs, relative to the folder.
            recorded: The digest its outputs were made with (default: from ``stages.json``).

        Raises:
            RunFolderError: Without ``force``, if a finished output would be replaced.
        """
        recorded = self.stages.get(stage) if recorded is None else recorded
        present = [o for o in outputs if (self.path / o).exists()]
        if recorded is None or recorded == digest or not present:
            return
        if not self.force:
            raise RunFolderError(
                f"{self.path / present[0]}: {stage} finished earlier with other inputs (made by "
                "another echelon version?) and is not replaced. Use --out for a new folder, or "
                f"--force to run it again here (the old result moves to {self.path / 'replaced'}/<n>/)"
            )
        self.set_aside(*present)

    def mark(self, stage: str, digest: str) -> None:
        self.stages[stage] = digest
        write_json(self._file, self.stages)

    def cached(self, stage: str, digest: str, output: str, compute, write, read, log=print):
        """The stage's result: read from ``output`` if it ran with these inputs, else computed,
        written and marked done.

        Args:
            stage: The stage's name in ``stages.json``.
            digest: The hash of its inputs.
            output: Its output file, relative to the run folder.
            compute: ``() -> result``.
            write: ``(path, result) -> None``.
            read: ``(path) -> result``.
            log: Where progress lines go.

        Raises:
            RunFolderError: If ``output`` is a finished result of other inputs (without ``force``).
        """
        path = self.path / output
        if self.done(stage, digest, output):
            log("  done earlier, skipped")
            return read(path)
        self.clear(stage, digest, output)
        start = time.perf_counter()
        result = compute()
        write(path, result)
        self.mark(stage, digest)
        log(f"  ({time.perf_counter() - start:.1f} s)")
        return result


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def _stage_digest(path: Path) -> str | None:
    """The input digest an agent folder's ``stage.json`` records (None if absent or damaged)."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return recorded.get("digest") if isinstance(recorded, dict) else None


# --- reproduce --------------------------------------------------------------------------------


def tune_baselines(run: RunConfig, *, progress: bool = False) -> dict[str, Any]:
    """The strong heuristics, tuned on the run's search stream (never on test paths)."""
    from echelon.policies.base_stock import RequestMode
    from echelon.policies.search import Family, Space

    # Children 0 and 1 of the search stream serve the behaviour search; 2 and 3 these.
    streams = child_seeds(run_streams(run.seed).search, 4)[2:]
    wanted = {"tuned": Family.BASE_STOCK, "time-aware": Family.TIME_AWARE}
    out: dict[str, Any] = {}
    for (name, family), stream in zip(wanted.items(), streams):
        if name not in run.evaluate.baselines:
            continue
        settings = SearchConfig(space=Space.WIDE, family=family, mode=RequestMode.CLIP,
                                episodes=run.evaluate.tuning_episodes, top_k=1)
        result = run_search(run.chain, settings, stream, progress=progress)
        out[name] = {"family": family.value, "mode": "clip", "params": result.best.params,
                     "rank_mean": result.best.mean, "evaluated": result.evaluated}
    return out


def model_stage(run: RunConfig, data: OfflineDataset, search: SearchResult, *,
                progress: bool = False, log=print) -> dict[str, Any]:
    """The model-based route: fit demand to the logs, plan in the fitted model.

    Plans use the run's training stream (they learn from the logs, as the agents do): the
    fitted-model time-aware policy, the same planner given the true law (the benchmark of a
    perfect model), and the rolling-horizon scenario LP drawing from the fitted law. With
    ``misspecification``, two more logs are made with the same behaviour policies where the
    Poisson assumption fails: a geometric (over-dispersed) demand of the same mean, and a demand
    that was 50% higher when logged than when the plan is used.

    Returns:
        What ``model.json`` holds: the fits, the policy specs, and the misspecification study.
    """
    from echelon.models import (
        compare_laws,
        fit_demand,
        fitted_chain,
        plan_time_aware,
        policy_from_spec,
        rolling_lp_spec,
    )
    from echelon.sim.demand import Geometric, Poisson
    from echelon.sim.rollout import rollout

    settings = run.model
    plan_seed, true_seed, rolling_seed, logs_seed = child_seeds(
        child_seeds(run_streams(run.seed).train, 2)[1], 4
    )
    fit = fit_demand(data, settings.law)
    laws = [{"law": f.name, "aic": f.aic, "mean": f.params["mean"],
             "goodness_of_fit_p": f.goodness_of_fit.p_value} for f in compare_laws(data)]
    log(f"  fitted {fit.name} mean {fit.params['mean']:.2f} (naive "
        f"{fit.naive.params['mean'] if fit.naive else float('nan'):.2f}); {fit.censored:,} of "
        f"{fit.observations:,} periods censored")
    model = fitted_chain(data, fit)
    planned = plan_time_aware(model, plan_seed, settings.plan_episodes, progress=progress)
    truth = plan_time_aware(run.chain, true_seed, settings.plan_episodes, progress=progress)
    policies = {"time-aware (fitted model)": planned.spec,
                "time-aware (true demand law)": truth.spec}
    if settings.scenarios:
        seed = int(rolling_seed.generate_state(1)[0])
        policies["rolling scenario LP (fitted model)"] = rolling_lp_spec(model.demand, settings.scenarios, seed)
    out: dict[str, Any] = {"fit": fit.to_dict(), "laws": laws, "policies": policies,
                           "fitted_chain": model.to_dict(), "misspecification": []}
    if not settings.misspecification:
        return out
    paths = held_out_paths(run)
    worlds = [
        ("geometric demand of mean 20, Poisson fitted", run.chain.replace(demand=Geometric(0.05)),
         run.chain.replace(demand=Geometric(0.05))),
        ("logged at Poisson(30), used at Poisson(20)", run.chain.replace(demand=Poisson(30.0)),
         run.chain),
    ]
    behaviours = behaviours_from_search(run, search)
    for (label, logged, used), seed in zip(worlds, child_seeds(logs_seed, len(worlds))):
        collect_seed, plan_a, plan_b, test_seed = child_seeds(seed, 4)
        logs = collect(logged, behaviours, run.collect, collect_seed)
        case_fit = fit_demand(logs, settings.law)
        best_law = compare_laws(logs)[0].name
        fitted = plan_time_aware(fitted_chain(logs, case_fit), plan_a, settings.plan_episodes)
        known = plan_time_aware(used, plan_b, settings.plan_episodes)
        test = used.demand.sample(np.random.default_rng(test_seed), len(paths), used.periods)
        profit_fitted = rollout(used, policy_from_spec(fitted.spec, used), test).profit
        profit_known = rollout(used, policy_from_spec(known.spec, used), test).profit
        out["misspecification"].append({
            "case": label,
            "fitted_mean": case_fit.params["mean"],
            "true_mean_when_used": used.demand.mean,
            "goodness_of_fit_p": case_fit.goodness_of_fit.p_value,
            "flagged": bool(case_fit.goodness_of_fit.p_value < 0.01),
            "best_law_by_aic": best_law,
            "profit_fitted_plan": float(profit_fitted.mean()),
            "profit_true_law_plan": float(profit_known.mean()),
            "gap_percent": float(100.0 * (profit_fitted.mean() - profit_known.mean())
                                 / abs(profit_known.mean())),
            "paths": int(len(test)),
        })
        log(f"  misspecified: {label}: {out['misspecification'][-1]['gap_percent']:+.1f}% "
            f"against planning with the true law")
    return out


def held_out_paths(run: RunConfig) -> np.ndarray:
    """The run's held-out test paths (its test stream; never used to search, collect or train)."""
    rng = np.random.default_rng(run_streams(run.seed).test)
    return run.chain.demand.sample(rng, run.evaluate.episodes, run.chain.periods)


def evaluate_stage(run: RunConfig, folder: Path, search: SearchResult, baselines: dict[str, Any],
                   agents: list[tuple[str, str, int, Path]], *, models: dict[str, Any] | None = None,
                   log=print) -> dict[str, Any]:
    """Every policy on the same test paths; returns what ``eval.json`` holds.

    ``models`` maps the names of model-based policies to their specs (``model.json``).
    """
    from echelon.agents.trainer import AgentPolicy
    from echelon.evaluation.evaluate import Kind, evaluate_bound, evaluate_policy
    from echelon.policies.lp import ShrinkingHorizonLP
    from echelon.policies.search import Family, from_params, make_policy

    paths = held_out_paths(run)
    results = []
    for rank, behaviour in enumerate(behaviours_from_search(run, search)):
        kind = Kind.BEST_EXPERT if rank == 0 else Kind.EXPERT
        label = f"best expert {behaviour.name}" if rank == 0 else f"expert {behaviour.name}"
        results.append(evaluate_policy(run.chain, label, kind, behaviour.policy(run.chain), paths,
                                       {"family": behaviour.family.value, "mode": behaviour.mode.value,
                                        **behaviour.params}))
    for name, spec in baselines.items():
        family = Family(spec["family"])
        policy = make_policy(run.chain, family, from_params(family, spec["params"]), spec["mode"])
        label = {"tuned": "tuned base-stock", "time-aware": "tuned time-aware base-stock"}[name]
        results.append(evaluate_policy(run.chain, label, Kind.BASELINE, policy, paths,
                                       {"family": family.value, "mode": spec["mode"], **spec["params"]}))
    if "slp" in run.evaluate.baselines:
        log("  shrinking-horizon LP on the test paths ...")
        results.append(evaluate_policy(run.chain, "shrinking-horizon LP", Kind.BASELINE,
                                       ShrinkingHorizonLP(run.chain), paths, {"forecast": "mean"}))
    for variant, algorithm, seed, path in agents:
        results.append(evaluate_policy(run.chain, f"{variant} seed {seed}", Kind.AGENT,
                                       AgentPolicy(path, run.chain, device="cpu"), paths,
                                       {"variant": variant, "algorithm": algorithm, "seed": seed,
                                        "checkpoint": os.path.relpath(path, folder)}))
    for name, spec in (models or {}).items():
        from echelon.models import policy_from_spec

        log(f"  {name} on the test paths ...")
        results.append(evaluate_policy(run.chain, name, Kind.MODEL, policy_from_spec(spec, run.chain),
                                       paths, {"spec": spec}))
    if "oracle" in run.evaluate.baselines:
        log("  perfect-information bound on the test paths ...")
        results.append(evaluate_bound(run.chain, paths))
    return {
        "test_paths": {"seed": run.seed, "stream": "test", "episodes": int(len(paths)),
                       "paper_episodes": run.evaluate.paper_episodes},
        "policies": [r.to_dict() for r in results],
    }


def reproduce(
    run: RunConfig, out: str | os.PathLike, *, progress: bool = True, log=print,
    force: bool = False,
) -> Path:
    """Runs every stage into ``out``, skipping those already done with the same inputs.

    Nothing is written before the whole configuration is valid; a folder holding a run with
    other settings is refused, or moved aside with ``force`` (see :func:`open_run_folder`).

    Returns:
        The path of ``report.md``.

    Raises:
        RunFolderError: If ``out`` holds another run (and not ``force``) or is no run folder.
    """
    from echelon.agents.trainer import CHECKPOINT_NAME, load_checkpoint, train
    from echelon.data.dataset import load, save

    variants = agent_variants(run)  # validates every algorithm setting before anything is written
    check_sizes(run)
    folder = open_run_folder(run, out, force=force, log=log)
    started = time.perf_counter()
    jobs = [(v, seed) for v in variants for seed in run.train.seeds]
    stages = 7

    def header(index: int, name: str, detail: str = "") -> None:
        log(f"[{index}/{stages}] {name}{': ' + detail if detail else ''} "
            f"(run time so far {_minutes(time.perf_counter() - started)})")

    # 1. search
    search_digest = _digest("search", run.chain, run.search, run.seed)
    header(1, "search", f"{run.search.space.value} {run.search.family.value} "
           f"({run.search.mode.value}) on {run.search.episodes} paths")

    def run_search_stage() -> SearchResult:
        result = search_stage(run, progress=progress)
        log(f"  best {result.best.params} mean {result.best.mean:.2f}")
        return result

    search = folder.cached("search", search_digest, "search.json", run_search_stage,
                           lambda path, result: write_json(path, result.to_dict()),
                           lambda path: SearchResult.from_dict(_read_json(path)), log)

    # 2. collect
    collect_digest = _digest("collect", search_digest, run.collect)
    header(2, "collect", f"{run.collect.episodes} episodes of the top {len(search.ranked)}")
    data = folder.cached("collect", collect_digest, "dataset.h5",
                         lambda: collect_stage(run, search), lambda path, d: save(d, path), load, log)

    # 3. tune the strong baselines
    tune_digest = _digest("tune", run.chain, run.seed, run.evaluate.tuning_episodes,
                          sorted(set(run.evaluate.baselines) & {"tuned", "time-aware"}))
    header(3, "tune baselines", f"wide searches on {run.evaluate.tuning_episodes} paths")

    def run_tune_stage() -> dict[str, Any]:
        tuned = tune_baselines(run, progress=progress)
        log("  " + ", ".join(f"{k} {v['rank_mean']:.2f}" for k, v in tuned.items()))
        return tuned

    baselines = folder.cached("tune", tune_digest, "baselines.json", run_tune_stage, write_json,
                              _read_json, log)

    # 4. train
    train_started = time.perf_counter()
    header(4, "train", f"{len(jobs)} agents: {', '.join(v.name for v in variants)} x seeds "
               f"{list(run.train.seeds)} ({run.train.preset} preset)")
    agents: list[tuple[str, str, int, Path]] = []
    agent_digests: list[str] = []
    rates: dict[str, float] = {}  # measured steps per second of each algorithm, for estimates
    remaining = [(v.algorithm, _planned_steps(len(data), v.train_config)) for v, _ in jobs]
    for index, (variant, seed) in enumerate(jobs, 1):
        name, config = variant.for_seed(seed)
        path = folder.path / "agents" / name
        digest = _digest("train", collect_digest, variant.algorithm, variant.algo_config, config)
        agent_digests.append(digest)
        agents.append((variant.name, variant.algorithm, seed, path / CHECKPOINT_NAME))
        steps = _planned_steps(len(data), config)
        known = [s / rates[a] for a, s in remaining if a in rates]
        estimate = (f", about {_minutes(sum(known))} left for the agents of algorithms timed so far"
                    if known else "")
        stage_file = path / "stage.json"
        same_inputs = _stage_digest(stage_file) == digest
        finished = (same_inputs and (path / CHECKPOINT_NAME).exists()
                    and load_checkpoint(path / CHECKPOINT_NAME)["epoch"] == config.epochs)
        if finished:
            log(f"  [{index}/{len(jobs)}] {name}: done earlier, skipped")
        else:
            resume = same_inputs
            if not resume and (path / CHECKPOINT_NAME).exists():  # trained with other inputs
                folder.clear(f"agent {name}", digest, f"agents/{name}", recorded="other inputs")
            log(f"  [{index}/{len(jobs)}] {name}: {steps:,} steps"
                f"{' (resuming)' if resume and (path / CHECKPOINT_NAME).exists() else ''}{estimate}")
            write_json(stage_file, {"digest": digest})
            result = train(data, variant.algorithm, variant.algo_config, config, path,
                           resume=resume, progress=progress)
            if not resume:
                rates[variant.algorithm] = result.steps / max(result.seconds, 1e-9)
        remaining.pop(0)
    train_digest = _digest("agents", agent_digests)
    log(f"  ({time.perf_counter() - train_started:.1f} s)")

    # 5. the model-based route
    model_digest = _digest("model", collect_digest, run.model, run.evaluate.episodes)
    header(5, "model-based route", f"fit {run.model.law} demand to the logs, plan in the model"
           if run.model.enabled else "disabled")
    models: dict[str, Any] = {}
    if run.model.enabled:
        model = folder.cached("model", model_digest, "model.json",
                              lambda: model_stage(run, data, search, progress=progress, log=log),
                              write_json, _read_json, log)
        models = model["policies"]

    # 6. evaluate
    eval_digest = _digest("evaluate", search_digest, tune_digest, train_digest, model_digest,
                          run.evaluate, run.chain, run.seed)
    header(6, "evaluate", f"every policy on {run.evaluate.episodes} held-out paths")

    def run_evaluate_stage() -> dict[str, Any]:
        evaluation = evaluate_stage(run, folder.path, search, baselines, agents, models=models,
                                    log=log)
        log(f"  {len(evaluation['policies'])} policies")
        return evaluation

    evaluation = folder.cached("evaluate", eval_digest, "eval.json", run_evaluate_stage,
                               write_json, _read_json, log)

    # 7. figures and report (cheap: always redone)
    header(7, "figures and report")
    from echelon.agents.trainer import AgentPolicy
    from echelon.evaluation.report import write_report
    from echelon.sim.rollout import rollout

    inventory = None
    iql = [a for a in agents if a[0] == "iql"]
    if iql:  # Figure 4: the first IQL seed and the best expert on the first test path
        path = held_out_paths(run)[:1]
        policies = (AgentPolicy(iql[0][3], run.chain, device="cpu"),
                    behaviours_from_search(run, search)[0].policy(run.chain))
        on_hand = [rollout(run.chain, p, path, record=True).trajectory["on_hand"][0] for p in policies]
        inventory = (on_hand[0], on_hand[1], (f"iql seed {iql[0][2]}", "best expert"), path[0])
    report = write_report(run, folder.path, evaluation, search, baselines, agents, inventory,
                          model if run.model.enabled else None)
    log(f"done in {_minutes(time.perf_counter() - started)}: {report}")
    return report


def _planned_steps(transitions: int, config: Any) -> int:
    train_rows = transitions * (1.0 - config.validation_fraction)
    return config.epochs * int(np.ceil(train_rows / config.batch_size))


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
