"""Model-based planners as rows of a benchmark run: what a dataset's logs give when a demand
model is fitted to them and a policy is planned in it, beside the offline-RL agents.

Each planner (:data:`PLANNERS`) takes one dataset: the demand law of its scenario's run preset
(``model.law``: Poisson for ``v1``, the seasonal curve for ``seasonal``, the Markov-modulated
Poisson for ``regime``) is fitted to the censored logs by
:func:`echelon.run.stages.fit_logs`, and the planner optimises its policy in the fitted model,
on paths drawn from the model (never the test paths). The plan of a dataset is written to
``<out>/plans/<dataset file stem>/<planner>.json`` with the digest of its inputs, so a rerun
reuses it; a neural plan keeps its network in ``<out>/plans/<dataset file stem>/<planner>/``.
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Planner:
    """A model-based planner of the benchmark."""

    label: str
    """Its name in the report and the results."""
    description: str
    plan: Callable[[Any, np.random.SeedSequence, Any, Path], dict[str, Any]]
    """(fitted chain, seed, the scenario's ``ModelSettings``, a folder of its own) -> a policy
    spec (:mod:`echelon.models.planning`; a neural spec's weights relative to that folder)."""
    reads: tuple[str, ...]
    """The ``ModelSettings`` fields ``plan`` reads, besides those of the fit: with
    :data:`FIT_SETTINGS`, what a plan's digest covers (so that ``--plan-steps``, read by the
    neural planners only, leaves a time-aware plan valid)."""


def _time_aware(model: Any, seed: np.random.SeedSequence, settings: Any,
                out: Path) -> dict[str, Any]:
    from echelon.models import plan_time_aware

    return plan_time_aware(model, seed, settings.plan_episodes).spec


def _neural_levels(model: Any, seed: np.random.SeedSequence, settings: Any,
                   out: Path) -> dict[str, Any]:
    from echelon.models.neural import NETWORK_NAME, NeuralSettings, train_neural

    neural = NeuralSettings(architecture="levels", steps=settings.neural_steps,
                            batch=settings.neural_batch, seed=int(seed.generate_state(1)[0]),
                            sales_history=settings.neural_sales_history)
    # An interrupted training is not a finished result: it starts again.
    plan = train_neural(model, neural, out, replace=True)
    return {**plan.spec, "weights": NETWORK_NAME}


PLANNERS: dict[str, Planner] = {
    "time-aware": Planner(
        "time-aware (fitted model)",
        "time-aware base-stock (levels per stage and period) searched in the demand model fitted "
        "to the dataset's censored logs, on the scenario preset's model.plan_episodes paths",
        _time_aware, reads=("plan_episodes",)),
    "neural-levels": Planner(
        "neural levels (fitted model)",
        "the neural levels policy (order-up-to levels per stage and period and a state-dependent "
        "correction) trained through the dynamics of the fitted model, for the scenario "
        "preset's model.neural_steps steps",
        _neural_levels, reads=("neural_steps", "neural_batch", "neural_sales_history")),
}
"""The planners a benchmark run may add (``BenchmarkSettings.planners``), by name."""

_PLAN_TAG = 0x91A7  # the plans' branch of a scenario's run seed

FIT_SETTINGS = ("law", "season", "counts", "regimes")
"""The ``ModelSettings`` fields :func:`echelon.run.stages.fit_logs` reads (every plan's)."""


def plan_digest(data_digest: str, name: str, settings: Any) -> str:
    """The digest of a plan's inputs: the dataset, the planner and the settings it reads."""
    from echelon.run.folder import digest

    fields = (*FIT_SETTINGS, *PLANNERS[name].reads)
    return digest("plan", data_digest, name, {f: getattr(settings, f) for f in fields})


def plan_dataset(entry: dict[str, Any], data: Any, preset: str, names: tuple[str, ...],
                 folder: Any, data_digest: str, *, plan_episodes: int | None = None,
                 plan_steps: int | None = None, overwrite: bool = False,
                 log: Callable[[str], Any] = print) -> dict[str, dict[str, Any]]:
    """Each planner's spec for one dataset of a suite, planned now or read back.

    Args:
        entry: The dataset's entry in the manifest (``id``, ``file``, ``scenario``).
        data: The dataset.
        preset: Its scenario's run preset (whose ``model`` settings say what to fit).
        names: Keys of :data:`PLANNERS`.
        folder: The benchmark run's ``RunFolder``.
        data_digest: The digest of the dataset's transitions and chain.
        plan_episodes: Overrides the preset's ``model.plan_episodes``.
        plan_steps: Overrides the preset's ``model.neural_steps``.
        overwrite: Move a plan of other inputs aside and plan again, instead of refusing.
        log: Where the progress lines go.

    Returns:
        ``{planner: {"spec", "fit", "seconds", "file", "base"}}``, ``base`` the folder a neural
        spec's weights are relative to.

    Raises:
        echelon.run.folder.RunFolderError: If a plan of other inputs is there, without
            ``overwrite``.
    """
    from echelon.run import resolve
    from echelon.run.folder import RunFolderError, digest, write_json
    from echelon.run.stages import fit_logs

    settings = resolve(preset).model
    if plan_episodes is not None:
        settings = dataclasses.replace(settings, plan_episodes=plan_episodes)
    if plan_steps is not None:
        settings = dataclasses.replace(settings, neural_steps=plan_steps)
    stem = Path(entry["file"]).stem
    out: dict[str, dict[str, Any]] = {}
    fitted = None
    for name in names:
        relative = f"plans/{stem}/{name}.json"
        path = folder.path / relative
        base = folder.path / "plans" / stem / name
        inputs = plan_digest(data_digest, name, settings)
        # Plans written before the per-planner digest recorded one over every model setting.
        legacy = digest("plan", data_digest, name, settings)
        if path.is_file():
            saved = _read(path)
            same = saved is not None and saved.get("digest") in (inputs, legacy)
            spec = saved["spec"] if same else None
            weights = spec.get("weights") if isinstance(spec, dict) else None
            if same and (not isinstance(weights, str) or (base / weights).is_file()):
                out[name] = {**{k: saved[k] for k in ("spec", "fit", "seconds")},
                             "file": relative, "base": base}
                continue
            if same:
                log(f"  {name} on {entry['id']}: its network {base / str(weights)} is missing; "
                    "planning it again")
            elif not overwrite:
                raise RunFolderError(
                    f"{path} holds a plan of other inputs (another dataset or preset); nothing "
                    f"was changed. Use another --out, or --overwrite to plan again (the old plan "
                    f"moves to {folder.path / 'replaced'}/<n>/)")
            else:
                folder.set_aside(relative, str(base.relative_to(folder.path)))
        start = time.perf_counter()
        if fitted is None:
            fit, _, model = fit_logs(data, settings, log=lambda line: None)
            fitted = {"law": fit.name, "aic": float(fit.aic)}, model
        seed = np.random.SeedSequence([zlib.crc32(entry["id"].encode()), _PLAN_TAG])
        spec = PLANNERS[name].plan(fitted[1], seed, settings, base)
        seconds = time.perf_counter() - start
        write_json(path, {"digest": inputs, "dataset": entry["id"], "planner": name,
                          "spec": spec, "fit": fitted[0], "seconds": seconds})
        log(f"  planned {name} on {entry['id']} in the fitted {fitted[0]['law']} model "
            f"({seconds:.0f} s)")
        out[name] = {"spec": spec, "fit": fitted[0], "seconds": seconds, "file": relative,
                     "base": base}
    return out


def _read(path: Path) -> dict[str, Any] | None:
    import json

    try:
        saved = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(saved, dict) or not all(k in saved for k in ("spec", "fit", "seconds")):
        return None
    return saved


__all__ = ["FIT_SETTINGS", "PLANNERS", "Planner", "plan_dataset", "plan_digest"]
