"""Runs of the whole pipeline: the config (:mod:`.config`), the run folder and its stage cache
(:mod:`.folder`), the stages (:mod:`.stages`) and :func:`reproduce` (:mod:`.reproduce`)."""

from echelon.run.config import (
    BASELINES,
    MAX_TRAIN_SEED,
    EvaluateConfig,
    ModelStageConfig,
    RunConfig,
    TrainStageConfig,
    parse_sweep,
    resolve,
    to_toml,
)
from echelon.run.folder import RunFolder, RunFolderError, config_differences, open_run_folder
from echelon.run.reproduce import reproduce
from echelon.run.stages import (
    AgentVariant,
    TrainedAgent,
    TrainJob,
    agent_variants,
    behaviours_from_search,
    check_sizes,
    collect_stage,
    evaluate_stage,
    held_out_paths,
    model_stage,
    search_stage,
    train_agents,
    train_jobs,
    tune_baselines,
)

__all__ = [
    "BASELINES",
    "MAX_TRAIN_SEED",
    "AgentVariant",
    "EvaluateConfig",
    "ModelStageConfig",
    "RunConfig",
    "RunFolder",
    "RunFolderError",
    "TrainJob",
    "TrainStageConfig",
    "TrainedAgent",
    "agent_variants",
    "behaviours_from_search",
    "check_sizes",
    "collect_stage",
    "config_differences",
    "evaluate_stage",
    "held_out_paths",
    "model_stage",
    "open_run_folder",
    "parse_sweep",
    "reproduce",
    "resolve",
    "search_stage",
    "to_toml",
    "train_agents",
    "train_jobs",
    "tune_baselines",
]
