"""The run folder: its stage cache, and the rules that keep a finished result from being lost.

Each stage's inputs are hashed (:func:`digest`); a stage whose output exists with the same hash
is skipped, so an interrupted run resumes where it stopped. A folder holding a run with other
settings is refused, or with ``force`` the results that would be replaced are moved aside.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import os
import time
import tomllib
from pathlib import Path
from typing import Any

from echelon._io import atomic_write_json, atomic_write_text, check_output
from echelon.run.config import RunConfig, to_toml

def digest(*parts: Any) -> str:
    """A short hash of a stage's inputs (configs, other digests, numbers)."""
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
    """The dotted keys whose values differ between two resolved configs, as
    ``key: A there, B now`` (``old`` is the folder's, ``new`` this run's)."""
    a, b = _flatten(json.loads(json.dumps(old))), _flatten(json.loads(json.dumps(new)))
    missing = object()
    lines = []
    for key in sorted(set(a) | set(b)):
        before, after = a.get(key, missing), b.get(key, missing)
        if before != after:
            show = lambda v: "(unset)" if v is missing else json.dumps(v)  # noqa: E731
            lines.append(f"{key}: {show(before)} there, {show(after)} now")
    return lines


# Keys that say how a run is executed, not what it computes: a rerun that changes only these
# reuses every result (an ensemble's members equal their solo trainings to float32 tolerance).
EXECUTION_SETTINGS = ("train.resources.", "train.ensemble:")


def open_run_folder(run: RunConfig, out: str | os.PathLike, *, force: bool = False,
                    log=print) -> RunFolder:
    """Checks the run folder before anything is written, then opens it.

    Keys that only say how the run executes (:data:`EXECUTION_SETTINGS`) do not count as other
    settings. A new or empty folder starts a run. A folder holding a run with the same resolved config
    resumes it (finished stages are skipped). A folder holding a run with another config is
    refused, naming the differing keys, unless ``force``: then the stages whose inputs changed
    run again, and every result they would replace (the old ``config.toml`` and report
    included) is first moved to ``<out>/replaced/<n>/`` under its own name, never deleted;
    unchanged stages are kept. A non-empty folder without ``config.toml`` is not a run folder and
    is always refused.

    Raises:
        RunFolderError: If the folder may not be used as asked.
        OutputError: If ``out`` is a file, lies under a file, or cannot be written.
    """
    path = check_output(out, folder=True)  # a folder, under folders, that can be written
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
        execution = [line for line in differences if line.startswith(EXECUTION_SETTINGS)]
        differences = [line for line in differences if not line.startswith(EXECUTION_SETTINGS)]
        if execution and not differences:
            log(f"execution settings changed ({'; '.join(execution)}): no result depends on "
                "them; config.toml records the new ones")
            atomic_write_text(config_file, text)
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

    def cached(self, stage: str, digest: str, output: str, compute, write, read, log=print,
               needs=None):
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
            needs: ``(result) -> [file, ...]``: further files a finished result refers to
                (relative to the run folder, e.g. a neural plan's weights). If one is missing,
                the stage runs again.

        Raises:
            RunFolderError: If ``output`` is a finished result of other inputs (without ``force``).
        """
        path = self.path / output
        if self.done(stage, digest, output):
            result = read(path)
            missing = [f for f in (needs(result) if needs else ()) if not (self.path / f).exists()]
            if not missing:
                log("  done earlier, skipped")
                return result
            log(f"  done earlier, but {self.path / missing[0]} is missing: running it again")
        self.clear(stage, digest, output)
        start = time.perf_counter()
        result = compute()
        write(path, result)
        self.mark(stage, digest)
        log(f"  ({time.perf_counter() - start:.1f} s)")
        return result


def read_json(path: Path) -> Any:
    """Reads a JSON file."""
    return json.loads(path.read_text())


def stage_digest(path: Path) -> str | None:
    """The input digest an agent folder's ``stage.json`` records (None if absent or damaged)."""
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return recorded.get("digest") if isinstance(recorded, dict) else None
