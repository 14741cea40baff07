"""The executors: the same results locally and on Ray, failures named by task, a killed worker
retried and resumed to the same weights, the registry and the resources' validation, the run
folder probe. The Ray tests share one real local instance, started by the ray executor."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
import ray.cloudpickle
import torch

from echelon import pipeline
from echelon.agents import TrainConfig, algorithm_config, load_checkpoint
from echelon.models.neural import NeuralSettings
from echelon.run.stages import train_group, train_plan
from echelon.sim.config import ChainConfig
from echelon.run.executor import (
    EXECUTORS,
    ExecutorError,
    LocalExecutor,
    RayExecutor,
    RayNotInstalled,
    Resources,
    Task,
    make_executor,
)

# pytest imports this file from tests/run, which is not on the workers' path: send its functions
# to them by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

EPOCHS = 60  # about a second of IQL on the small dataset: the kill lands well before the end


def square_after(x: int, delay: float) -> int:
    time.sleep(delay)
    return x * x


def torch_threads() -> int:
    return torch.get_num_threads()


def record_call_and_fail(calls: str) -> None:
    with open(calls, "a") as handle:
        handle.write("called\n")
    raise ValueError("no stock to ship")


def die() -> None:
    os._exit(1)


def _die_after_first_epoch(out: Path) -> None:
    while True:
        try:
            if load_checkpoint(out / "checkpoint.pt")["epoch"] >= 1:
                os._exit(1)  # as when the machine goes: no cleanup, no exception
        except Exception:  # not written yet
            pass
        time.sleep(0.005)


def train_or_die(data_path: str, outs: list[str], marker: str | None) -> list[int]:
    """The training stage's task (IQL, seeds 0, 1, ... as one ensemble); with a ``marker`` not yet
    there, kills its own worker once the first epoch is checkpointed.

    Returns:
        The epoch each member resumed from (0 for a fresh start).
    """
    if marker is not None and not os.path.exists(marker):
        Path(marker).touch()
        threading.Thread(target=_die_after_first_epoch, args=(Path(outs[-1]),), daemon=True).start()
    resumed_from = [load_checkpoint(Path(out))["epoch"] if (Path(out) / "checkpoint.pt").exists()
                    else 0 for out in outs]
    train_group(data_path, "iql", algorithm_config("iql", {"hidden": (16, 16)}),
                [TrainConfig(epochs=EPOCHS, batch_size=256, seed=seed, device="cpu")
                 for seed in range(len(outs))], outs)
    return resumed_from


def assert_identical(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_identical(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_identical(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b)
    else:
        assert a == b


@pytest.fixture(scope="module")
def ray_executor():
    executor = make_executor("ray")
    yield executor
    executor.close()
    assert not ray.is_initialized()


def squares() -> list[Task]:
    # The first task finishes late: the results must still come back in the tasks' order.
    delays = [0.6, 0.0, 0.3, 0.1]
    return [Task(f"square-{x}", square_after, (x, delay), Resources(cpus=1))
            for x, delay in enumerate(delays)]


def test_local_and_ray_give_the_same_results_in_order(ray_executor):
    lines: list[str] = []
    assert LocalExecutor().run(squares(), log=lines.append) == [0, 1, 4, 9]
    assert lines == []  # the local executor logs nothing, as before executors
    assert ray_executor.run(squares(), log=lines.append) == [0, 1, 4, 9]
    assert_progress(lines, [f"square-{x}" for x in range(4)])


def assert_progress(lines: list[str], names: list[str]) -> None:
    """One line per task as it finished, counting up."""
    assert [line.rsplit(" ", 1)[1] for line in lines] == [f"({k}/{len(names)})"
                                                         for k in range(1, len(names) + 1)]
    assert sorted(line.split()[1] for line in lines) == sorted(names)


def test_a_task_uses_as_many_torch_threads_as_its_cpus(ray_executor):
    tasks = [Task("one", torch_threads, (), Resources(cpus=1)),
             Task("two", torch_threads, (), Resources(cpus=2))]
    assert ray_executor.run(tasks, log=lambda line: None) == [1, 2]


def test_a_raising_task_fails_by_name_after_the_others_without_retry(ray_executor, tmp_path):
    calls = tmp_path / "calls"
    tasks = [Task("slow", square_after, (3, 0.5), Resources(cpus=1)),
             Task("bc-s0..s4", record_call_and_fail, (str(calls),), Resources(cpus=1))]
    lines: list[str] = []
    with pytest.raises(ExecutorError, match=r"^task bc-s0..s4 failed: ValueError: no stock to "
                                            r"ship$") as raised:
        ray_executor.run(tasks, log=lines.append)
    assert isinstance(raised.value.__cause__, ValueError)
    assert lines == ["  failed bc-s0..s4 (1/2): ValueError: no stock to ship", "  done slow (2/2)"]
    assert calls.read_text() == "called\n"  # the exception was not retried

    calls.unlink()
    with pytest.raises(ValueError, match="no stock to ship"):  # locally: unchanged
        LocalExecutor().run(tasks[1:])


def test_a_worker_that_dies_every_time_fails_by_name(ray_executor):
    executor = make_executor("ray", retries=1)  # joins the running instance
    tasks = [Task("doomed", die, ()), Task("fine", square_after, (2, 0.0))]
    with pytest.raises(ExecutorError, match=r"^task doomed failed: WorkerCrashedError: .*"
                                            r" \(after 1 retry\)$"):
        executor.run(tasks, log=lambda line: None)


def test_a_function_the_workers_cannot_import_is_named(ray_executor, tmp_path, monkeypatch):
    (tmp_path / "only_on_the_driver.py").write_text("def one():\n    return 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    from only_on_the_driver import one

    with pytest.raises(ExecutorError, match=r"^task lost failed: ModuleNotFoundError: No module "
                                            r"named 'only_on_the_driver'$"):
        ray_executor.run([Task("lost", one, ())], log=lambda line: None)


def test_a_killed_worker_is_retried_and_resumes_to_the_same_weights(ray_executor, small_logs,
                                                                    tmp_path):
    marker = tmp_path / "died"
    killed = [str(tmp_path / "killed" / f"s{seed}") for seed in (0, 1)]
    whole = [str(tmp_path / "whole" / f"s{seed}") for seed in (0, 1)]
    tasks = [Task("iql-killed", train_or_die, (str(small_logs), killed, str(marker)), Resources(cpus=1)),
             Task("iql-whole", train_or_die, (str(small_logs), whole, None), Resources(cpus=1))]
    lines: list[str] = []
    resumed_from, fresh = ray_executor.run(tasks, log=lines.append)

    assert marker.exists()  # the first attempt ran, and its worker died
    assert all(1 <= epoch < EPOCHS for epoch in resumed_from), \
        "the retry should resume a run killed part-way"
    assert fresh == [0, 0]
    assert_progress(lines, ["iql-killed", "iql-whole"])
    for a_out, b_out in zip(whole, killed, strict=True):
        a, b = load_checkpoint(Path(a_out)), load_checkpoint(Path(b_out))
        assert b["epoch"] == EPOCHS
        if len(set(resumed_from)) == 1:  # killed between epochs, not between two members' writes
            assert_identical(a["state"], b["state"])
            assert_identical(a["rng"], b["rng"])
        else:  # the member behind caught up alone first: equal to float32 tolerance
            for name, module in a["state"]["modules"].items():
                for key, value in module.items():
                    torch.testing.assert_close(b["state"]["modules"][name][key], value,
                                               rtol=1e-4, atol=1e-5)


TINY_RUN = [
    "collect.episodes=40",
    "train.epochs=2",
    "train.seeds=[0, 1, 2]",
    'train.sweep=[]',
    "evaluate.episodes=30",
    "evaluate.paper_episodes=20",
    "evaluate.tuning_episodes=10",
    "evaluate.bootstrap=200",
    "model.plan_episodes=20",
    "model.scenarios=4",
    "model.misspecification=false",
    'model.neural=["levels"]',
    "model.neural_reference=false",
    "model.neural_steps=3",
    "model.neural_batch=8",
    'evaluate.baselines=["paper-best", "tuned"]',
    "decentralized.enabled=false",  # tests/run/test_decentralized_stage.py runs it on processes
]


def test_a_tiny_reproduction_on_ray_writes_the_local_runs_eval_json(ray_executor, tmp_path):
    # Each task gets this machine's two cores, so that its PyTorch uses as many threads as the
    # local run's: the products then round alike and the files can be compared byte for byte.
    run = pipeline.resolve("quick", [*TINY_RUN, "train.resources.cpus=2", "train.ensemble=0"])
    local_lines: list[str] = []
    ray_lines: list[str] = []
    pipeline.reproduce(run, tmp_path / "local", progress=False, log=local_lines.append)
    pipeline.reproduce(run, tmp_path / "ray", progress=False, log=ray_lines.append, executor="ray")
    assert any("tasks on the ray executor" in line for line in ray_lines)
    # iql and bc (their 3 seeds as one ensemble each), and the neural policy
    assert [line.split()[1] for line in ray_lines if line.startswith("  done ")] == [
        "iql-s0..2", "bc-s0..2", "plan"]
    for name in ("eval.json", "model.json", "search.json", "baselines.json"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    agents = sorted(p.name for p in (tmp_path / "ray" / "agents").iterdir())
    assert agents == sorted(p.name for p in (tmp_path / "local" / "agents").iterdir())
    assert len(agents) == 6
    # A rerun on either executor finds every agent done.
    again: list[str] = []
    pipeline.reproduce(run, tmp_path / "ray", progress=False, log=again.append, executor="ray")
    assert sum(line.endswith(": done earlier, skipped") for line in again) == 6


def test_the_registry_and_its_refusals():
    assert set(EXECUTORS) == {"local", "processes", "ray"}
    assert EXECUTORS["ray"] is RayExecutor
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(ValueError,
                       match=r"executor must be one of \['local', 'processes', 'ray'\], got 'spark'"):
        make_executor("spark")
    with pytest.raises(ValueError, match="an address .* is for the ray executor"):
        make_executor("local", address="10.0.0.1:6379")
    with pytest.raises(ValueError, match="retries must be a whole number >= 0, got -1"):
        make_executor("ray", retries=-1)


def test_a_missing_ray_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` raises ImportError for
    with pytest.raises(RayNotInstalled, match=r"^the ray executor needs Ray: pip install "
                                              r"'echelon\[ray\]'$") as raised:
        make_executor("ray")
    assert isinstance(raised.value, ExecutorError)


@pytest.mark.parametrize(("values", "message"), [
    ({"cpus": 0}, r"train.resources.cpus must be a number > 0, got 0"),
    ({"cpus": -1.5}, r"train.resources.cpus must be a number > 0, got -1.5"),
    ({"cpus": "2"}, r"train.resources.cpus must be a number > 0, got '2'"),
    ({"cpus": float("nan")}, r"train.resources.cpus must be a number > 0, got nan"),
    ({"gpus": -1}, r"train.resources.gpus must be a number >= 0, got -1"),
    ({"gpus": True}, r"train.resources.gpus must be a number >= 0, got True"),
    ({"cpu": 2}, r"unknown keys in train.resources: \['cpu'\]; known: \['cpus', 'gpus'\]"),
    ([2, 0], r"train.resources must be a table with cpus and gpus, got \[2, 0\]"),
])
def test_resources_refuse_what_no_node_has(values, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Resources.from_dict(values)


def test_resources_from_a_table():
    assert Resources.from_dict({}) == Resources(cpus=1.0, gpus=0.0)
    assert Resources.from_dict({"cpus": 4, "gpus": 0.5}) == Resources(cpus=4.0, gpus=0.5)
    assert Resources.from_dict({"gpus": 0}) == Resources(cpus=1.0, gpus=0.0)


def test_a_visible_run_folder_passes_and_is_left_clean(ray_executor, tmp_path):
    (tmp_path / "keep").touch()
    ray_executor.check_run_folder(tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep"]

    # an executor made while Ray runs reuses that instance, and leaves it running when closed
    executor = make_executor("ray", run_folder=tmp_path)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep"]
    assert executor.run([Task("square", square_after, (5, 0.0))], log=lambda line: None) == [25]
    executor.close()
    assert ray.is_initialized()


def test_echelon_train_spreads_its_seeds_over_ray(ray_executor, small_logs, tmp_path, capsys):
    from echelon import cli

    argv = ["train", "bc", "--dataset", str(small_logs), "--preset", "quick", "--epochs", "2",
            "--seeds", "0", "1", "2", "--ensemble", "2", "--out", str(tmp_path / "ray"),
            "--executor", "ray", "--json"]
    assert cli.main(argv) == 0
    on_ray = json.loads(capsys.readouterr().out)
    local = ["train", "bc", "--dataset", str(small_logs), "--preset", "quick", "--epochs", "2",
             "--seeds", "0", "1", "2", "--ensemble", "2", "--out", str(tmp_path / "local"), "--json"]
    assert cli.main(local) == 0
    here = json.loads(capsys.readouterr().out)
    assert [row["seed"] for row in on_ray] == [row["seed"] for row in here] == [0, 1, 2]
    for a, b in zip(on_ray, here, strict=True):
        assert a["steps"] == b["steps"]
        # Two tasks (seeds 0 and 1 as one ensemble, seed 2 alone), each resumable alone.
        assert_identical(load_checkpoint(Path(a["checkpoint"]))["state"]["modules"],
                         load_checkpoint(Path(b["checkpoint"]))["state"]["modules"])


def test_the_processes_executor_spreads_the_seeds_and_writes_the_same_files(tmp_path):
    # auto: one task per seed on the pool's two one-thread workers, against the same seeds
    # trained one at a time in this process with two threads.
    run = pipeline.resolve("quick", [*TINY_RUN, "train.ensemble=1"])
    local_lines: list[str] = []
    pool_lines: list[str] = []
    pipeline.reproduce(run, tmp_path / "local", progress=False, log=local_lines.append)
    spread = pipeline.resolve("quick", TINY_RUN)
    pipeline.reproduce(spread, tmp_path / "pool", progress=False, log=pool_lines.append,
                       executor="processes")
    done = [line.split()[1] for line in pool_lines if line.startswith("  done ")]
    assert sorted(done[:6]) == sorted(f"{v}-s{s}" for v in ("iql", "bc") for s in (0, 1, 2))
    assert done[6:] == ["plan"]
    for name in ("eval.json", "model.json"):
        assert (tmp_path / "pool" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_a_killed_worker_process_is_replaced_and_its_task_resumes(small_logs, tmp_path):
    marker = tmp_path / "died"
    killed = [str(tmp_path / "killed" / f"s{seed}") for seed in (0, 1)]
    whole = [str(tmp_path / "whole" / f"s{seed}") for seed in (0, 1)]
    lines: list[str] = []
    tasks = [Task("iql-killed", train_or_die, (str(small_logs), killed, str(marker))),
             Task("bc-beside", train_or_die, (str(small_logs), [str(tmp_path / "beside")], None))]
    resumed_from, _ = make_executor("processes").run(tasks, log=lines.append)
    # The uninterrupted reference, trained here.
    assert LocalExecutor().run([Task("iql-whole", train_or_die, (str(small_logs), whole, None))]) == [[0, 0]]
    assert marker.exists()
    assert any("a worker process died" in line for line in lines)
    assert all(1 <= epoch < EPOCHS for epoch in resumed_from)
    for a_out, b_out in zip(whole, killed, strict=True):
        a, b = load_checkpoint(Path(a_out)), load_checkpoint(Path(b_out))
        assert b["epoch"] == EPOCHS
        for name, module in a["state"]["modules"].items():
            for key, value in module.items():
                torch.testing.assert_close(b["state"]["modules"][name][key], value,
                                           rtol=1e-4, atol=1e-5)


def _die_after_a_neural_checkpoint(out: Path) -> None:
    while True:
        try:
            if torch.load(out / "checkpoint.pt", weights_only=True)["step"] >= 20:
                os._exit(1)  # no cleanup, no exception
        except Exception:  # not written yet
            pass
        time.sleep(0.005)


def plan_or_die(chain: dict, settings, out: str, marker: str | None) -> tuple[int, dict]:
    """The model stage's neural task; with a ``marker`` not yet there, kills its own worker once
    a checkpoint past step 20 is written.

    Returns:
        The step resumed from (0 for a fresh start) and the task's result.
    """
    if marker is not None and not os.path.exists(marker):
        Path(marker).touch()
        threading.Thread(target=_die_after_a_neural_checkpoint, args=(Path(out),), daemon=True).start()
    checkpoint = Path(out) / "checkpoint.pt"
    resumed_from = (torch.load(checkpoint, weights_only=True)["step"] if checkpoint.exists() else 0)
    return resumed_from, train_plan(chain, settings, out)


def test_a_neural_plan_whose_worker_died_resumes_to_the_same_weights(tmp_path):
    chain = ChainConfig(periods=8, lead_time=(1, 2, 1)).to_dict()
    settings = NeuralSettings(steps=300, batch=32, validation_episodes=40, evaluate_every=10,
                              hidden=(16,))
    marker = tmp_path / "died"
    lines: list[str] = []
    [(resumed_from, killed)] = make_executor("processes").run(
        [Task("plan killed", plan_or_die, (chain, settings, str(tmp_path / "killed"), str(marker)))],
        log=lines.append)
    [(_, whole)] = LocalExecutor().run(
        [Task("plan whole", plan_or_die, (chain, settings, str(tmp_path / "whole"), None))])
    assert marker.exists() and any("a worker process died" in line for line in lines)
    assert 20 <= resumed_from < 300  # the retry continued from the dead attempt's checkpoint
    assert killed["best_step"] == whole["best_step"]
    a = torch.load(tmp_path / "whole" / "network.pt", weights_only=True)
    b = torch.load(tmp_path / "killed" / "network.pt", weights_only=True)
    assert_identical(a, b)
