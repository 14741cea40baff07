"""A run's configuration: the schema of a preset, its resolution and validation, its TOML form.

A preset (TOML) is resolved into :class:`RunConfig`, then command-line overrides
(``collect.episodes=500``) are applied, then everything is validated, before any stage runs.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

from echelon._fields import check_types, settings_dict
from echelon.agents.presets import PRESETS as AGENT_PRESETS
from echelon.agents.registry import ALGORITHMS
from echelon.data.collect import CollectConfig
from echelon.policies.search import SearchConfig
from echelon.presets import PRESETS, read_preset
from echelon.run.baselines import BASELINES, DEFAULT_BASELINES
from echelon.sim.config import ChainConfig

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
    sales_history: int = 0
    """Periods of retail sales appended to every agent's observation (0 .. T), so that agents
    can react to non-stationary demand; read from the logs' sales."""
    time_feature: bool = False
    """Append the period n/T to every agent's observation."""
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per-algorithm settings over the preset's (TOML tables ``[train.iql]`` ...)."""
    sweep: tuple[str, ...] = ()
    """Extra variants, e.g. ``iql.expectile=0.5,0.7,0.9`` (one algorithm field per item)."""
    ensemble: int | str = "auto"
    """Seeds of one variant trained together as one ensemble (stacked weights, one process):
    0 for all of them, n for at most n per ensemble, 1 for one seed at a time; ``auto`` gives
    each seed its own task on the processes and ray executors (unless the tasks ask for GPUs),
    and in this process trains all seeds together except on a CPU for networks wider than 512
    units, where the batched products measured slower (``benchmarks/bench_train.py``). Each
    member ends with its seed's solo weights to float32 tolerance, so finished agents are
    reused whatever the grouping they were trained in."""
    resources: dict[str, float] = field(default_factory=lambda: {"cpus": 1.0, "gpus": 0.0})
    """What each training task (one ensemble) asks of the executor: ``cpus`` > 0 and ``gpus``
    >= 0 (fractions share a GPU). Only the ray executor reads it."""

    def __post_init__(self) -> None:
        from echelon.run.executor import Resources

        object.__setattr__(self, "resources", Resources.from_dict(dict(self.resources))._asdict())
        ensemble = self.ensemble
        if ensemble != "auto" and (isinstance(ensemble, bool) or not isinstance(ensemble, int)
                                   or ensemble < 0):
            raise ValueError(f"train.ensemble must be auto or an integer >= 0 (0: all seeds of a "
                             f"variant together), got {ensemble!r}")
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
        depth = self.sales_history
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"train.sales_history must be an integer >= 0, got {depth!r}")
        if not isinstance(self.time_feature, bool):
            raise ValueError(f"train.time_feature must be true or false, got {self.time_feature!r}")
        for item in self.sweep:
            parse_sweep(item)

    def sales_histories(self) -> list[int]:
        """Every sales history an agent of the stage is trained with (the sweep's too)."""
        swept = [value for item in self.sweep for algorithm, name, values in [parse_sweep(item)]
                 if name == "sales_history" for value in values]
        return [self.sales_history, *swept]


# Training settings a sweep may vary besides the algorithms' own (what the agents see).
SWEEP_TRAIN_FIELDS = ("sales_history", "time_feature", "action_scaling")


def parse_sweep(item: str) -> tuple[str, str, list[Any]]:
    """``iql.expectile=0.5,0.7,0.9`` -> ("iql", "expectile", [0.5, 0.7, 0.9]).

    The field is one of the algorithm's settings, or one of :data:`SWEEP_TRAIN_FIELDS` (what the
    agent sees: ``iql.sales_history=4``).

    Raises:
        ValueError: If the item is malformed or names an unknown algorithm or field.
    """
    from echelon.agents.config import TrainConfig

    key, sep, values = item.partition("=")
    algorithm, dot, name = key.strip().partition(".")
    if not sep or not dot or not values.strip():
        raise ValueError(f"sweep {item!r} must look like algorithm.field=v1,v2,...")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"sweep {item!r}: unknown algorithm {algorithm!r}")
    cls = ALGORITHMS[algorithm].config
    fields = {f.name for f in dataclasses.fields(cls)}
    # The paper's name for IQL's expectile is tau.
    name = {"tau": "expectile", "beta": "temperature"}.get(name, name) if algorithm == "iql" else name
    if name in SWEEP_TRAIN_FIELDS:
        cls = TrainConfig
    elif name not in fields:
        raise ValueError(f"sweep {item!r}: {algorithm} has no setting {name!r}; known: "
                         f"{sorted([*fields, *SWEEP_TRAIN_FIELDS])}")
    parsed = [_parse_value(v.strip()) for v in values.split(",")]
    checked = [check_types(f"sweep {algorithm}", cls, {name: v})[name] for v in parsed]
    if cls is TrainConfig:
        for value in checked:  # TrainConfig's own checks, naming the sweep
            try:
                TrainConfig(**{name: value})
            except ValueError as error:
                raise ValueError(f"sweep {item!r}: {error}") from None
    return algorithm, name, checked


@dataclass(frozen=True)
class EvaluateConfig:
    """The held-out evaluation."""

    episodes: int = 1000
    """Held-out test paths every policy faces (common random numbers), >= 2."""
    paper_episodes: int = 100
    """The paper's protocol: the first this-many test paths, compared unpaired (Welch)."""
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    """Strong baselines: keys of ``echelon.run.baselines.BASELINES`` (paper-best, tuned,
    time-aware, slp, oracle by default; neural: a network trained on the true law)."""
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


# The engines the model route fits besides the i.i.d. laws.
_ENGINE_FITS = ("curve", "regimes")


@dataclass(frozen=True)
class ModelStageConfig:
    """The model-based route: estimate demand from the logs, then plan in the known dynamics."""

    enabled: bool = True
    """Run the model-based route (and compare it with the agents)."""
    law: str = "poisson"
    """The demand law fitted by censored maximum likelihood (poisson, binomial, uniform,
    geometric, negative-binomial), or an engine: ``curve`` (a level, a season of ``season``
    periods and a trend, with ``counts`` counts) or ``regimes`` (``regimes`` hidden regimes)."""
    season: int = 0
    """With ``law = "curve"``: the season's length in periods, >= 2 (0: none)."""
    counts: str = "poisson"
    """With ``law = "curve"``: ``poisson`` or ``negative-binomial`` counts around the curve."""
    regimes: int = 0
    """With ``law = "regimes"``: the number of hidden regimes K, in [2, 6] (0 otherwise)."""
    plan_episodes: int = 500
    """Model paths the time-aware policy is planned on (and as many to rank on), >= 1."""
    scenarios: int = 16
    """Demand scenarios of the rolling-horizon LP per period (0: no rolling LP)."""
    misspecification: bool = True
    """Also plan from logs whose demand is not what the fitted law assumes, to show the cost."""
    neural: tuple[str, ...] = ("mlp", "levels")
    """Neural policy classes trained through the fitted model's dynamics (keys of
    ``echelon.models.neural.ARCHITECTURES``; [] for none)."""
    neural_reference: bool = True
    """Also train each neural policy class on the true demand law (a reference that knows it)."""
    neural_steps: int = 800
    """Adam steps of each neural policy, >= 1."""
    neural_batch: int = 1024
    """Demand paths per step of each neural policy, >= 1."""
    neural_sales_history: int = 0
    """Periods of retail sales among each neural policy's inputs, 0 .. T (for non-stationary
    demand: the recent sales say where it is heading)."""

    def __post_init__(self) -> None:
        from echelon.models.demand_fit import LAWS
        from echelon.models.neural import ARCHITECTURES

        from echelon.models.curve_fit import COUNT_LAWS

        if self.law not in (*LAWS, *_ENGINE_FITS):
            raise ValueError(f"model.law must be one of {[*LAWS, *_ENGINE_FITS]}, got "
                             f"{self.law!r}")
        if self.counts not in COUNT_LAWS:
            raise ValueError(f"model.counts must be one of {list(COUNT_LAWS)}, got {self.counts!r}")
        if isinstance(self.season, bool) or not isinstance(self.season, int) or self.season == 1 \
                or self.season < 0:
            raise ValueError(f"model.season must be an integer >= 2 (0: none), got {self.season!r}")
        if self.law != "curve" and (self.season or self.counts != "poisson"):
            raise ValueError("model.season and model.counts apply to model.law = \"curve\" only")
        regimes = self.regimes
        if isinstance(regimes, bool) or not isinstance(regimes, int) or not (
                regimes == 0 or 2 <= regimes <= 6):
            raise ValueError(f"model.regimes must be an integer in [2, 6] (0: unused), got "
                             f"{regimes!r}")
        if (self.law == "regimes") != (regimes != 0):
            raise ValueError("model.regimes goes with model.law = \"regimes\", which needs it")
        if self.law in _ENGINE_FITS and self.misspecification:
            raise ValueError(f"model.misspecification fits i.i.d. laws to other logs: set it to "
                             f"false with model.law = \"{self.law}\"")
        object.__setattr__(self, "neural", tuple(self.neural))
        bad = [a for a in self.neural if a not in ARCHITECTURES]
        if bad or len(set(self.neural)) != len(self.neural):
            raise ValueError(f"model.neural must list distinct policy classes of "
                             f"{list(ARCHITECTURES)}, got {list(self.neural)}")
        for name, low in (("plan_episodes", 1), ("scenarios", 0), ("neural_steps", 1),
                          ("neural_batch", 1), ("neural_sales_history", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"model.{name} must be an integer >= {low}, got {value!r}")


    def to_dict(self) -> dict[str, Any]:
        """The settings as a dict (later fields only when set: see ``settings_dict``)."""
        return settings_dict(self, later=("neural_sales_history",))


@dataclass(frozen=True)
class DecentralizedConfig:
    """The decentralized view: one agent per stage, each trained on its own per-stage log (the
    split of the run's dataset), beside the centralized agent of the same algorithm."""

    enabled: bool = False
    """Train and evaluate decentralized agents (and report the decentralized view)."""
    algorithms: tuple[str, ...] = ()
    """Algorithms trained per stage, each with the settings of its centralized variant in
    ``[train]`` (preset, epochs, overrides): some of ``train.algorithms`` (empty: all)."""
    rewards: tuple[str, ...] = ("local", "profit", "team")
    """Stage rewards to train with (``echelon.sim.stage_view.StageReward`` values); algorithms
    that ignore rewards (behaviour cloning) are trained once."""
    seeds: int = 0
    """How many of ``train.seeds``, the first ones, to train with (0: all of them)."""

    def __post_init__(self) -> None:
        from echelon.sim.stage_view import parse_reward

        if not isinstance(self.enabled, bool):
            raise ValueError(f"decentralized.enabled must be true or false, got {self.enabled!r}")
        for name in ("algorithms", "rewards"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        unknown = [a for a in self.algorithms if a not in ALGORITHMS]
        if unknown or len(set(self.algorithms)) != len(self.algorithms):
            raise ValueError(f"decentralized.algorithms must list distinct algorithms of "
                             f"{sorted(ALGORITHMS)}, got {list(self.algorithms)}")
        if not self.rewards or len(set(self.rewards)) != len(self.rewards):
            raise ValueError(f"decentralized.rewards must list distinct rewards, got "
                             f"{list(self.rewards)}")
        for reward in self.rewards:
            try:
                parse_reward(reward)
            except ValueError as error:
                raise ValueError(f"decentralized.rewards: {error}") from None
        if isinstance(self.seeds, bool) or not isinstance(self.seeds, int) or self.seeds < 0:
            raise ValueError(f"decentralized.seeds must be an integer >= 0 (how many of "
                             f"train.seeds; 0: all), got {self.seeds!r}")

    def chosen_algorithms(self, train: TrainStageConfig) -> tuple[str, ...]:
        """The algorithms trained per stage: ``algorithms``, or all of ``train.algorithms``."""
        return self.algorithms or train.algorithms

    def chosen_seeds(self, train: TrainStageConfig) -> tuple[int, ...]:
        """The seeds trained per stage: the first ``seeds`` of ``train.seeds`` (0: all)."""
        return train.seeds[: self.seeds] if self.seeds else train.seeds


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
    decentralized: DecentralizedConfig = field(default_factory=DecentralizedConfig)
    """The decentralized view: per-stage agents trained on per-stage logs."""

    def __post_init__(self) -> None:
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise ValueError(f"seed must be an integer in [0, 2**63), got {self.seed!r}")
        if self.collect.weights and len(self.collect.weights) != self.search.top_k:
            raise ValueError(f"collect.weights has {len(self.collect.weights)} weights for the "
                             f"search's {self.search.top_k} best settings (search.top_k)")
        if self.model.neural_sales_history > self.chain.periods:
            raise ValueError(f"model.neural_sales_history must be in 0 .. {self.chain.periods} "
                             f"(the chain's periods), got {self.model.neural_sales_history}")
        if max(self.train.sales_histories()) > self.chain.periods:
            raise ValueError(f"train.sales_history must be in 0 .. {self.chain.periods} (the "
                             f"chain's periods), got {max(self.train.sales_histories())}")
        view = self.decentralized
        if view.enabled and self.train.sales_history:
            raise ValueError("decentralized.enabled needs train.sales_history = 0: its per-stage "
                             "agents take the centralized settings, and a stage does not see the "
                             "retail sales")
        missing = [a for a in view.algorithms if a not in self.train.algorithms]
        if view.enabled and missing:
            raise ValueError(f"decentralized.algorithms {missing} are not in train.algorithms "
                             f"{list(self.train.algorithms)}: each is compared with the "
                             "centralized agent of the same algorithm")
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
             "train": TrainStageConfig, "evaluate": EvaluateConfig, "model": ModelStageConfig,
             "decentralized": DecentralizedConfig}


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


def to_toml(data: dict[str, Any]) -> str:
    """The resolved config as TOML text (``RunConfig.to_dict()``; :func:`resolve` reads it back)."""
    return tomli_w.dumps(data)
