"""Executors: where the tasks of a stage (one training run per algorithm and seed group) run.

Three executors, by name in :data:`EXECUTORS` (the CLI's ``--executor`` choices):

``local``
    Runs the tasks one after another in this process; a task's exception propagates unchanged.
``processes``
    Runs them in a pool of worker processes on this machine, as many at once as its cores
    allow for the CPUs each task asks for (:class:`ProcessExecutor`).
``ray``
    Submits each task to a Ray cluster (an address given, else ``RAY_ADDRESS``, else a local
    instance sized to the machine) with the CPUs and GPUs it asks for. Ray retries a task whose
    worker died (killed, out of memory, a node lost) up to ``retries`` times; an exception raised
    by the task itself is not retried, since it would only be raised again.

Results travel back to the driver through Ray (a task's return value); files do not. The run
folder must be on storage that every worker sees (one machine's disk, or NFS and the like on a
cluster): the tasks write their checkpoints there, and a retried task resumes from the checkpoint
its dead attempt left. :class:`RayExecutor` checks this before it runs anything, by having every
node read a marker file the driver wrote in the run folder.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import secrets
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, Protocol

from echelon._io import atomic_write_text

# The probe is a file read on each node; a node that cannot do that within this long is stuck
# (a hung network mount) and the run would hang there too.
_PROBE_TIMEOUT_SECONDS = 120.0

RAY_MISSING = "the ray executor needs Ray: pip install 'echelon[ray]'"


class ExecutorError(RuntimeError):
    """A task failed for good, or the executor cannot run tasks; the message names what and why."""


class RayNotInstalled(ExecutorError):
    """The ray executor was chosen but Ray is not installed."""


class Resources(NamedTuple):
    """What one task needs of a node."""

    cpus: float = 1.0
    """CPU cores (fractions allowed); the task's PyTorch uses ``max(1, int(cpus))`` threads."""
    gpus: float = 0.0
    """GPUs (fractions let tasks share one)."""

    @classmethod
    def from_dict(cls, values: dict, *, prefix: str = "train.resources") -> Resources:
        """Resources from a config table such as ``{"cpus": 2, "gpus": 0.5}``.

        Args:
            values: Any of the fields; the others keep their defaults.
            prefix: How the user names the table, for the messages.

        Raises:
            ValueError: Naming ``prefix.field`` and its allowed range, or the unknown keys.
        """
        if not isinstance(values, dict):
            raise ValueError(f"{prefix} must be a table with cpus and gpus, got {values!r}")
        unknown = sorted(set(values) - set(cls._fields))
        if unknown:
            raise ValueError(f"unknown keys in {prefix}: {unknown}; known: {list(cls._fields)}")
        checked = {}
        for name, value in values.items():
            number = (isinstance(value, (int, float)) and not isinstance(value, bool)
                      and math.isfinite(value))
            positive = name == "cpus"  # Ray would pack any number of 0-CPU tasks on one node
            if not number or value < 0 or (positive and value == 0):
                raise ValueError(f"{prefix}.{name} must be a number {'> 0' if positive else '>= 0'}"
                                 f", got {value!r}")
            checked[name] = float(value)
        return cls(**checked)


class Task(NamedTuple):
    """One call of a module-level function, which Ray can pickle, with what it needs."""

    name: str
    """For the logs, e.g. ``iql-s0..s4``."""
    function: Callable[..., Any]
    """A module-level function (pickled by reference, so the workers must be able to import it)."""
    args: tuple
    """Its positional arguments (picklable; paths rather than datasets)."""
    resources: Resources = Resources()
    """What it needs of a node."""


class Executor(Protocol):
    """Runs a list of tasks and returns their results in the tasks' order."""

    name: str

    def run(self, tasks: list[Task], *, log: Callable[[str], Any] = print) -> list[Any]:
        """Runs every task.

        Returns:
            The tasks' return values, in the order of ``tasks``.

        Raises:
            ExecutorError: If a task failed for good (raised, or its worker died more often than
                retried), once the other tasks have finished; the message names the task.
        """
        ...

    def close(self) -> None:
        """Releases what the executor started."""
        ...


class LocalExecutor:
    """Runs the tasks one after another in this process; a task's exception propagates unchanged.

    Args:
        address: Must be ``None``: there is no cluster to connect to.
        retries: Unused: a failure in this process is not retried.
        run_folder: Unused: this process sees its own files.
    """

    name: ClassVar[str] = "local"

    def __init__(self, *, address: str | None = None, retries: int = 3,
                 run_folder: Path | None = None) -> None:
        if address is not None:
            raise ValueError(f"an address ({address}) is for the ray executor; the local "
                             "executor runs in this process")

    def run(self, tasks: list[Task], *, log: Callable[[str], Any] = print) -> list[Any]:
        return [task.function(*task.args) for task in tasks]

    def close(self) -> None:
        pass


def _run_task(function: Callable[..., Any], args: tuple, cpus: float) -> Any:
    """A task's body in a worker (a Ray worker, or a process of :class:`ProcessExecutor`)."""
    import torch

    # A worker is free to use every core it sees; a 1-CPU task sharing a node with others must
    # not spin an OpenMP thread per core.
    torch.set_num_threads(max(1, int(cpus)))
    return function(*args)


class ProcessExecutor:
    """Runs the tasks in worker processes of this machine, as many at once as its cores allow.

    Each worker gets ``task.resources.cpus`` cores (its PyTorch that many threads) and the pool
    has ``cores // cpus`` workers (at least one). On a small CPU this is the fastest way to train
    many seeds: on two cores, four IQL seeds as one-thread tasks did 1.3 times the steps per
    second of the same seeds one after another at two threads, and more than as one ensemble
    (``benchmarks/bench_train.py --parts executors``). Results come back to this process;
    the files are written by the tasks in the run folder, which this machine sees. A worker
    that dies (killed, out of memory) breaks the pool: the tasks not finished run again in a
    new pool, up to ``retries`` times, and resume from their checkpoints. An exception raised by
    a task is not retried. ``gpus`` is not scheduled: every worker sees every GPU.

    Args:
        address: Must be ``None``.
        retries: New pools after a worker died.
        run_folder: Unused: the workers are on this machine.
    """

    name: ClassVar[str] = "processes"

    def __init__(self, *, address: str | None = None, retries: int = 3,
                 run_folder: Path | None = None) -> None:
        if address is not None:
            raise ValueError(f"an address ({address}) is for the ray executor; the processes "
                             "executor runs on this machine")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number >= 0, got {retries!r}")
        self.retries = retries

    def run(self, tasks: list[Task], *, log: Callable[[str], Any] = print) -> list[Any]:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        if not tasks:
            return []
        cores = os.cpu_count() or 1
        widest = max(task.resources.cpus for task in tasks)
        workers = max(1, min(len(tasks), int(cores // widest)))
        results: dict[int, Any] = {}
        failures: list[tuple[str, BaseException]] = []
        todo = list(range(len(tasks)))
        for attempt in range(self.retries + 1):
            broken = False
            # spawn: a fresh interpreter per worker, never a fork of this one's threads.
            with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
                pending = {pool.submit(_run_task, tasks[i].function, tasks[i].args,
                                       tasks[i].resources.cpus): i for i in todo}
                try:
                    while pending:
                        done, _ = wait(pending, return_when=FIRST_COMPLETED)
                        for future in done:
                            index = pending.pop(future)
                            task = tasks[index]
                            try:
                                results[index] = future.result()
                            except BrokenProcessPool:
                                broken = True
                            except Exception as error:  # the task's own: not retried
                                failures.append((task.name, error))
                                log(f"  failed {task.name}: {type(error).__name__}: {error}")
                            else:
                                log(f"  done {task.name} ({len(results)}/{len(tasks)})")
                except BaseException:  # interrupted: stop what has not started
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
            failed = {name for name, _ in failures}
            todo = [i for i in todo if i not in results and tasks[i].name not in failed]
            if not broken or not todo:
                break
            if attempt < self.retries:
                log(f"  a worker process died; running {len(todo)} unfinished tasks again "
                    f"(retry {attempt + 1} of {self.retries}), each from its last checkpoint")
        if todo and not failures:
            raise ExecutorError(f"task {tasks[todo[0]].name} failed: its worker process died "
                                f"(after {self.retries} retries)")
        if failures:
            raise _failed(failures) from failures[0][1]
        return [results[i] for i in range(len(tasks))]

    def close(self) -> None:
        pass


def _failed(failures: list[tuple[str, BaseException]], note: str = "") -> ExecutorError:
    """The error of a run whose tasks ``failures`` (name, cause) failed: the first named with its
    cause (and ``note``), the others listed."""
    name, cause = failures[0]
    others = (f"; {len(failures) - 1} more failed: {', '.join(n for n, _ in failures[1:])}"
              if len(failures) > 1 else "")
    return ExecutorError(f"task {name} failed: {type(cause).__name__}: {cause}{note}{others}")


def _probe(marker: str, token: str) -> tuple[bool, str]:
    """Whether this node reads ``token`` from ``marker``, and the node's host name."""
    try:
        seen = Path(marker).read_text() == token
    except OSError:
        seen = False
    return seen, socket.gethostname()


class RayExecutor:
    """Runs the tasks on a Ray cluster, each with the CPUs and GPUs it asks for.

    Args:
        address: The cluster to connect to (``host:port`` or ``ray://host:port``); ``None`` reads
            ``RAY_ADDRESS``, and without it a local instance is started with every core. If Ray is
            already initialised in this process, that instance is used as it is.
        retries: How often Ray reruns a task whose worker died; an exception the task raises is
            not retried.
        run_folder: The folder the tasks write to; checked to be visible to every node.

    Raises:
        RayNotInstalled: If Ray is not installed.
        ValueError: If ``retries`` is not a whole number >= 0.
        ExecutorError: If ``run_folder`` is not visible to every node.
    """

    name: ClassVar[str] = "ray"

    def __init__(self, *, address: str | None = None, retries: int = 3,
                 run_folder: Path | None = None) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number >= 0, got {retries!r}")
        try:
            import ray
        except ImportError:
            raise RayNotInstalled(RAY_MISSING) from None
        self._ray = ray
        self.retries = retries
        self._started = False
        if not ray.is_initialized():
            address = address or os.environ.get("RAY_ADDRESS") or None
            quiet = {"logging_level": logging.WARNING}
            if address is None:
                # "local" starts an instance even where another one runs on this machine, which
                # a plain ray.init() would join.
                ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                         **quiet)
            else:
                ray.init(address=address, **quiet)
            self._started = True
        self._remote = ray.remote(_run_task)
        if run_folder is not None:
            try:
                self.check_run_folder(run_folder)
            except BaseException:
                self.close()
                raise

    def check_run_folder(self, folder: str | os.PathLike) -> None:
        """Checks that every node of the cluster reads a file the driver writes in ``folder``.

        The marker (``.executor-probe-<random>``) is removed afterwards.

        Raises:
            ExecutorError: Naming the folder and the nodes that do not see it.
        """
        ray = self._ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        folder = Path(folder)
        token = secrets.token_hex(16)
        marker = folder / f".executor-probe-{token[:12]}"
        atomic_write_text(marker, token)
        try:
            probe = ray.remote(_probe)
            nodes = [node["NodeID"] for node in ray.nodes() if node["Alive"]]
            refs = [probe.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
                        node, soft=False)).remote(str(marker), token) for node in nodes]
            try:
                answers = ray.get(refs, timeout=_PROBE_TIMEOUT_SECONDS)
            except ray.exceptions.GetTimeoutError:
                for ref in refs:
                    ray.cancel(ref, force=True)
                raise ExecutorError(f"checking that the Ray workers see the run folder {folder} "
                                    f"took over {_PROBE_TIMEOUT_SECONDS:.0f} s; is its storage "
                                    "mounted on every node?") from None
        finally:
            marker.unlink(missing_ok=True)
        blind = sorted(host for seen, host in answers if not seen)
        if blind:
            hint = ("" if folder.is_absolute() else
                    "; a relative path is read from each worker's working folder: give an "
                    "absolute one")
            raise ExecutorError(f"the run folder {folder} is not visible to the Ray workers "
                                f"(on {', '.join(blind)}); put it on storage every node mounts "
                                f"(for example NFS){hint}")

    def run(self, tasks: list[Task], *, log: Callable[[str], Any] = print) -> list[Any]:
        ray = self._ray
        refs = [self._remote.options(
                    name=task.name, num_cpus=task.resources.cpus, num_gpus=task.resources.gpus,
                    max_retries=self.retries, retry_exceptions=False,
                ).remote(task.function, task.args, task.resources.cpus)
                for task in tasks]
        position = {ref: index for index, ref in enumerate(refs)}
        results: list[Any] = [None] * len(tasks)
        failures: list[tuple[str, BaseException]] = []
        pending = list(refs)
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    task = tasks[position[ref]]
                    finished = len(refs) - len(pending)
                    try:
                        results[position[ref]] = ray.get(ref)
                    except Exception as error:  # the task's own exception, or Ray's for a death
                        cause = self._cause(error)
                        failures.append((task.name, cause))
                        log(f"  failed {task.name} ({finished}/{len(tasks)}): "
                            f"{type(cause).__name__}: {cause}")
                    else:
                        log(f"  done {task.name} ({finished}/{len(tasks)})")
        except BaseException:  # interrupted: stop the tasks still running
            for ref in pending:
                ray.cancel(ref)
            raise
        if failures:
            cause = failures[0][1]
            # Ray's own errors (a worker or node lost) were retried; the task's were not.
            retried = (f" (after {self.retries} {'retry' if self.retries == 1 else 'retries'})"
                       if isinstance(cause, ray.exceptions.RayError) and self.retries else "")
            raise _failed(failures, retried) from cause
        return results

    def _cause(self, error: BaseException) -> BaseException:
        """The exception behind a Ray error: the task's own, or why its arguments did not load."""
        exceptions = self._ray.exceptions
        if isinstance(error, exceptions.RayTaskError) and isinstance(error.cause, BaseException):
            error = error.cause
        # A function or argument the worker could not unpickle (a module it cannot import)
        # arrives as a system error wrapping the ImportError.
        if (isinstance(error, exceptions.RaySystemError)
                and isinstance(getattr(error, "client_exc", None), BaseException)):
            error = error.client_exc
        return error

    def close(self) -> None:
        """Shuts Ray down if this executor started it (a local instance, or the connection)."""
        if self._started:
            self._ray.shutdown()
            self._started = False


EXECUTORS: dict[str, type] = {
    LocalExecutor.name: LocalExecutor,
    ProcessExecutor.name: ProcessExecutor,
    RayExecutor.name: RayExecutor,
}


def make_executor(name: str, *, address: str | None = None, retries: int = 3,
                  run_folder: Path | None = None) -> Executor:
    """The executor of that name (a key of :data:`EXECUTORS`).

    Args:
        name: ``local`` or ``ray``.
        address: For ``ray``: the cluster's address (default ``RAY_ADDRESS``, else a local
            instance).
        retries: For ``ray``: reruns of a task whose worker died.
        run_folder: For ``ray``: the folder the tasks write to, checked to be visible to every
            node.

    Raises:
        ValueError: If the name is unknown (the message lists the choices) or an argument does
            not fit the executor.
        RayNotInstalled: If ``ray`` is chosen and Ray is not installed.
        ExecutorError: If the run folder is not visible to the Ray workers.
    """
    if name not in EXECUTORS:
        raise ValueError(f"executor must be one of {sorted(EXECUTORS)}, got {name!r}")
    return EXECUTORS[name](address=address, retries=retries, run_folder=run_folder)


def check_executor(name: str, address: str | None = None) -> None:
    """Refuses, before anything runs, an executor that :func:`make_executor` would refuse for
    its name, its address or a missing Ray (it starts nothing).

    Raises:
        ValueError: If the name is unknown or the local executor is given an address.
        RayNotInstalled: If ``ray`` is chosen and Ray is not installed.
    """
    if name not in EXECUTORS:
        raise ValueError(f"executor must be one of {sorted(EXECUTORS)}, got {name!r}")
    if name != RayExecutor.name and address is not None:
        raise ValueError(f"an address ({address}) is for the ray executor; the {name} executor "
                         "runs on this machine")
    if name == RayExecutor.name and importlib.util.find_spec("ray") is None:
        raise RayNotInstalled(RAY_MISSING)


class LazyExecutor:
    """An executor made by :func:`make_executor` at its first task, not before: a run whose
    tasks are all done starts no cluster. Same arguments as :func:`make_executor`."""

    def __init__(self, name: str, **options: Any) -> None:
        check_executor(name, options.get("address"))
        self.name = name
        self._options = options
        self._executor: Executor | None = None

    def run(self, tasks: list[Task], *, log: Callable[[str], Any] = print) -> list[Any]:
        if not tasks:
            return []
        if self._executor is None:
            self._executor = make_executor(self.name, **self._options)
        return self._executor.run(tasks, log=log)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()
            self._executor = None
