"""A catalogue of bad inputs to every command: each one clear line, exit 2, nothing lost.

Every case runs the real ``echelon`` entry point in-process against one workspace holding a real
dataset, checkpoint, CSV log, planned policy and finished run. Each asserts the exit code, that the
one-line message names the problem, that no traceback is printed, and that every file of the
workspace is byte-identical afterwards, with nothing added.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from echelon import cli, pipeline
from echelon.agents import load_checkpoint
from echelon.data import export_log, load

COLLECT = ["--set", "collect.episodes=20", "--set", "search.top_k=2"]
# A finished run of the smallest pipeline: one BC agent, two baselines, no model route.
RUN = ["--set", "collect.episodes=20", "--set", "search.top_k=2", "--set", "train.epochs=1",
       "--set", 'train.algorithms=["bc"]', "--set", "train.seeds=[0]", "--set", "train.sweep=[]",
       "--set", "evaluate.episodes=10", "--set", "evaluate.paper_episodes=5",
       "--set", "evaluate.tuning_episodes=5", "--set", "evaluate.bootstrap=100",
       "--set", 'evaluate.baselines=["paper-best", "tuned"]', "--set", "model.enabled=false"]


def _ok(argv: list[str]) -> None:
    assert cli.main(argv) == 0, argv


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("ws")
    _ok(["collect", "--preset", "quick", *COLLECT, "--out", str(ws / "dataset.h5"), "--json"])
    _ok(["train", "bc", "--dataset", str(ws / "dataset.h5"), "--preset", "quick", "--epochs", "1",
         "--out", str(ws / "agent"), "--json"])
    _ok(["collect", "--preset", "quick", *COLLECT, "--set", "chain.backlog=true",
         "--out", str(ws / "backlog.h5"), "--json"])
    _ok(["train", "bc", "--dataset", str(ws / "backlog.h5"), "--preset", "quick", "--epochs", "1",
         "--out", str(ws / "backlog-agent"), "--json"])
    _ok(["plan", str(ws / "dataset.h5"), "--episodes", "10", "--out", str(ws / "policy"), "--json"])
    _ok(["reproduce", "--preset", "quick", *RUN, "--out", str(ws / "run"), "--quiet"])
    export_log(load(ws / "dataset.h5"), ws / "log.csv")
    shutil.copy(ws / "log.csv", ws / "log.h5")  # a CSV log whose name ends in .h5
    (ws / "notes.txt").write_text("not a dataset\n")
    (ws / "bad.toml").write_text("name = \n")
    (ws / "escape.toml").write_text('name = "../escape"\n')
    (ws / "chain-list.json").write_text("[1, 2]\n")
    (ws / "chain-bogus.json").write_text('{"bogus": 1}\n')
    small = {"periods": 4, "initial_inventory": [2], "price": 2.0, "replenishment_cost": [1.5, 1.0],
             "unfulfilled_penalty": [0.1, 0.05], "holding_cost": [0.15], "capacity": [3],
             "lead_time": [1], "demand": {"law": "poisson", "mu": 1.5}}
    (ws / "small-chain.json").write_text(json.dumps(small))
    (ws / "small-backlog.json").write_text(json.dumps({**small, "backlog": True}))
    (ws / "big-chain.json").write_text(json.dumps({**small, "capacity": [90], "lead_time": [4]}))
    (ws / "chain-broken.json").write_text("{nope\n")
    (ws / "empty.pt").write_bytes(b"")
    (ws / "other").mkdir()
    (ws / "other" / "keep.txt").write_text("a user's own file\n")
    _corrupt_copies(ws)
    _ok(["dataset", "inspect", str(ws / "dataset.h5"), "--json"])
    return ws


def _corrupt_copies(ws: Path) -> None:
    """Dataset and checkpoint files that parse but hold what the schema forbids."""
    def variant(name: str, edit) -> None:
        shutil.copy(ws / "dataset.h5", ws / name)
        with h5py.File(ws / name, "r+") as f:
            edit(f)

    variant("schema-string.h5", lambda f: f.attrs.__setitem__("schema_version", "one"))
    variant("schema-array.h5", lambda f: f.attrs.__setitem__("schema_version", np.array([1, 1])))
    variant("no-schema.h5", lambda f: f.attrs.__delitem__("schema_version"))
    variant("bad-policies.h5", lambda f: f.attrs.__setitem__("behaviour_policies", '{"a": 1}'))
    variant("bad-source.h5", lambda f: f.attrs.__setitem__("source", "[1, 2"))
    variant("bad-chain.h5", lambda f: f.attrs.__setitem__("chain", '{"lead_time": [3, 5]}'))

    def group_for_rewards(f):
        del f["rewards"]
        f.create_group("rewards")

    variant("group-rewards.h5", group_for_rewards)

    def huge(field: str, value: float):
        def edit(f):
            array = f[field][()]
            array[0] = value
            del f[field]
            f.create_dataset(field, data=array)
        return edit

    variant("huge-reward.h5", huge("rewards", 1e308))
    variant("negative-action.h5", huge("actions", -5e6))
    variant("huge-observation.h5", huge("observations", 1e300))

    saved = torch.load(ws / "agent" / "checkpoint.pt", weights_only=True)
    nan = dict(saved, state={k: _nan_weights(v) for k, v in saved["state"].items()})
    (ws / "nan-agent").mkdir()
    torch.save(nan, ws / "nan-agent" / "checkpoint.pt")
    (ws / "no-prep-agent").mkdir()
    torch.save(dict(saved, preprocessing={}), ws / "no-prep-agent" / "checkpoint.pt")
    torch.save({}, ws / "empty-dict.pt")
    lines = (ws / "log.csv").read_text().splitlines()
    header = lines[0].split(",")
    row = lines[1].split(",")
    row[header.index(next(c for c in header if c.startswith("on_hand")))] = "1e300"
    (ws / "huge.csv").write_text("\n".join([lines[0], ",".join(row), *lines[2:]]) + "\n")
    (ws / "short.csv").write_text(",".join(header[:-1]) + "\n")
    (ws / "policy-broken").mkdir()
    (ws / "policy-broken" / "policy.json").write_text('{"kind": "heuristic"}')


def _nan_weights(value):
    if isinstance(value, dict):
        return {k: _nan_weights(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return torch.full_like(value, float("nan"))
    return value


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _folders(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_dir()}


# (case id, argv with {ws} for the workspace, a regex the message must match)
CASES = [
    # simulate
    ("simulate-episodes-zero", ["simulate", "--episodes", "0"], r"--episodes.*integer >= 1"),
    ("simulate-episodes-word", ["simulate", "--episodes", "many"], r"--episodes.*integer >= 1, got 'many'"),
    ("simulate-episodes-huge", ["simulate", "--episodes", str(10**12)], r"reduce --episodes.*ECHELON_MEMORY_LIMIT_GIB"),
    ("oracle-episodes-huge", ["oracle", "--episodes", str(10**10)], r"reduce --episodes"),
    ("collect-episodes-huge", ["collect", "--episodes", "300000"], r"reduce collect\.episodes"),
    ("search-episodes-huge", ["search", "--episodes", str(10**11)], r"memory"),
    ("simulate-z-count", ["simulate", "--z", "80", "180"], r"--z needs 3 levels"),
    ("simulate-z-nan", ["simulate", "--z", "nan", "1", "1"], r"--z.*finite number"),
    ("simulate-seed-negative", ["simulate", "--seed", "-1"], r"--seed.*integer in \[0,"),
    ("simulate-seed-huge", ["simulate", "--seed", str(10**29)], r"--seed.*integer in \[0,"),
    ("simulate-mode", ["simulate", "--mode", "bogus"], r"--mode.*invalid choice"),
    ("simulate-env", ["simulate", "--env", "v9"], r"--env.*invalid choice"),
    # search and oracle
    ("search-paper-family", ["search", "--space", "paper", "--family", "ss"], r"--space paper"),
    ("search-episodes", ["search", "--episodes", "-5"], r"--episodes.*integer >= 1"),
    ("oracle-episodes", ["oracle", "--episodes", "0"], r"--episodes.*integer >= 1"),
    # collect: presets and overrides
    ("collect-preset-unknown", ["collect", "--preset", "nosuch"], r"preset must be one of"),
    ("collect-preset-malformed", ["collect", "--preset", "{ws}/bad.toml"], r"bad\.toml: malformed TOML"),
    ("collect-preset-name-escapes", ["collect", "--preset", "{ws}/escape.toml"], r"name must be a plain folder name"),
    ("collect-name-escapes", ["collect", "--set", "name=../../x"], r"name must be a plain folder name"),
    ("collect-noise-word", ["collect", "--set", "collect.noise_std=abc"], r"collect\.noise_std must be a number, got 'abc'"),
    ("collect-noise-negative", ["collect", "--noise-std", "-1"], r"collect\.noise_std must be >= 0"),
    ("collect-episodes-zero", ["collect", "--set", "collect.episodes=0"], r"collect\.episodes must be an integer >= 1"),
    ("collect-episodes-float", ["collect", "--set", "collect.episodes=1.5"], r"collect\.episodes must be an integer"),
    ("collect-demand-law-table", ["collect", "--set", "chain.demand.law.x=1"], r"demand\.law must be one of"),
    ("collect-demand-param", ["collect", "--set", "chain.demand.mu=-3"], r"mu"),
    ("collect-demand-unknown-param", ["collect", "--set", "chain.demand.sigma=3"], r"poisson.*sigma"),
    ("collect-train-seed", ["collect", "--set", "train.seed=1e29"], r"unknown keys in \[train\]: \['seed'\]"),
    ("collect-train-seeds-huge", ["collect", "--set", "train.seeds=[100000000000000000000]"], r"train\.seeds"),
    ("collect-seed-float", ["collect", "--set", "seed=1e29"], r"seed must be an integer"),
    ("collect-lead-time-long", ["collect", "--set", "chain.L=[3,5,100000]"], r"lead_time\[2\]"),
    ("collect-periods-huge", [*["collect", "--set", "chain.periods=1000000000"]], r"memory.*ECHELON_MEMORY_LIMIT_GIB"),
    ("collect-unknown-key", ["collect", "--set", "nope=1"], r"unknown preset keys \['nope'\]"),
    ("collect-unknown-field", ["collect", "--set", "collect.bogus=1"], r"unknown keys in \[collect\]"),
    ("collect-through-value", ["collect", "--set", "seed.x=1"], r"seed is a value"),
    ("collect-weights", ["collect", "--set", "collect.weights=[1, 2]"], r"collect\.weights has 2 weights"),
    ("collect-weights-word", ["collect", "--set", 'collect.weights=[1, "a"]'], r"collect\.weights must be a list of numbers"),
    ("collect-mode", ["collect", "--set", "search.mode=bogus"], r"search\.mode must be one of"),
    # collect: outputs
    ("collect-out-folder", ["collect", *COLLECT, "--out", "{ws}"], r"is a folder; give a file path"),
    ("collect-out-exists", ["collect", *COLLECT, "--out", "{ws}/dataset.h5"], r"dataset\.h5 exists.*--overwrite"),
    ("collect-out-under-file", ["collect", *COLLECT, "--out", "{ws}/notes.txt/d.h5"], r"notes\.txt is a file, not a folder"),
    ("collect-out-preset", ["collect", "--preset", "{ws}/run/config.toml", "--out", "{ws}/run/config.toml",
                            "--overwrite"], r"is an input of this command"),
    ("collect-out-unwritable", ["collect", *COLLECT, "--out", "/sys/echelon-test.h5"], r"cannot write in /sys"),
    ("collect-out-impossible", ["collect", *COLLECT, "--out", "/proc/echelon-test/d.h5"], r"cannot create /proc/echelon-test"),
    ("train-out-unwritable", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--out", "/sys/echelon-agent"],
     r"cannot create /sys/echelon-agent"),
    ("reproduce-out-impossible", ["reproduce", "--preset", "quick", *RUN, "--out", "/proc/echelon-run"],
     r"/proc/echelon-run"),
    # dataset inspect: files that are not what they claim
    ("inspect-missing", ["dataset", "inspect", "{ws}/none.h5"], r"none\.h5: no such dataset file"),
    ("inspect-text", ["dataset", "inspect", "{ws}/notes.txt"], r"notes\.txt: not a readable HDF5 file"),
    ("inspect-folder", ["dataset", "inspect", "{ws}/other"], r"other"),
    ("inspect-schema-string", ["dataset", "inspect", "{ws}/schema-string.h5"], r"schema-string\.h5.*schema"),
    ("inspect-schema-array", ["dataset", "inspect", "{ws}/schema-array.h5"], r"schema-array\.h5.*schema"),
    ("inspect-no-schema", ["dataset", "inspect", "{ws}/no-schema.h5"], r"no-schema\.h5.*schema_version"),
    ("inspect-bad-policies", ["dataset", "inspect", "{ws}/bad-policies.h5"], r"bad-policies\.h5.*behaviour_policies"),
    ("inspect-bad-source", ["dataset", "inspect", "{ws}/bad-source.h5"], r"bad-source\.h5.*source"),
    ("inspect-bad-chain", ["dataset", "inspect", "{ws}/bad-chain.h5"], r"bad-chain\.h5.*lead_time"),
    ("inspect-group", ["dataset", "inspect", "{ws}/group-rewards.h5"], r"group-rewards\.h5.*rewards"),
    ("inspect-huge-reward", ["dataset", "inspect", "{ws}/huge-reward.h5"], r"huge-reward\.h5.*rewards"),
    ("inspect-negative-action", ["dataset", "inspect", "{ws}/negative-action.h5"], r"negative-action\.h5.*actions"),
    ("inspect-huge-observation", ["dataset", "inspect", "{ws}/huge-observation.h5"], r"huge-observation\.h5.*observations"),
    # dataset import
    ("import-self", ["dataset", "import", "{ws}/log.h5"], r"is an input of this command"),
    ("import-out-is-log", ["dataset", "import", "{ws}/log.csv", "--out", "{ws}/log.csv", "--overwrite"],
     r"is an input of this command"),
    ("import-out-exists", ["dataset", "import", "{ws}/log.csv", "--out", "{ws}/dataset.h5"], r"exists.*--overwrite"),
    ("import-missing", ["dataset", "import", "{ws}/none.csv", "--out", "{ws}/x.h5"], r"none\.csv: no such log file"),
    ("import-huge-value", ["dataset", "import", "{ws}/huge.csv", "--out", "{ws}/x.h5"], r"huge\.csv.*line 2.*on_hand"),
    ("import-missing-column", ["dataset", "import", "{ws}/short.csv", "--out", "{ws}/x.h5"], r"short\.csv, line 1: missing column"),
    ("import-binary", ["dataset", "import", "{ws}/empty.pt", "--out", "{ws}/x.h5"], r"empty\.pt"),
    ("import-chain-missing", ["dataset", "import", "{ws}/log.csv", "--out", "{ws}/x.h5", "--chain", "{ws}/none.json"],
     r"--chain .*none\.json: no such file"),
    ("import-chain-broken", ["dataset", "import", "{ws}/log.csv", "--out", "{ws}/x.h5", "--chain", "{ws}/chain-broken.json"],
     r"--chain .*not a JSON file"),
    ("import-chain-list", ["dataset", "import", "{ws}/log.csv", "--out", "{ws}/x.h5", "--chain", "{ws}/chain-list.json"],
     r"--chain .*JSON object"),
    ("import-chain-bogus", ["dataset", "import", "{ws}/log.csv", "--out", "{ws}/x.h5", "--chain", "{ws}/chain-bogus.json"],
     r"unknown chain parameter 'bogus'"),
    # train
    ("train-dataset-missing", ["train", "bc", "--dataset", "{ws}/none.h5", "--out", "{ws}/t"], r"none\.h5: no such dataset file"),
    ("train-dataset-text", ["train", "bc", "--dataset", "{ws}/notes.txt", "--out", "{ws}/t"], r"not a readable HDF5"),
    *([("train-cuda", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--device", "cuda", "--out", "{ws}/t"],
        r"device 'cuda' was asked for, but torch sees no CUDA device")] if not torch.cuda.is_available() else []),
    ("train-out-file", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--out", "{ws}/notes.txt"], r"notes\.txt is a file; give a folder"),
    ("train-exists", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--out", "{ws}/agent", "--epochs", "1"], r"checkpoint\.pt exists"),
    ("train-epochs", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--epochs", "0"], r"--epochs.*integer >= 1"),
    ("train-algorithm", ["train", "nope", "--dataset", "{ws}/dataset.h5"], r"invalid choice"),
    ("train-seeds-repeated", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--seeds", "0", "0",
                              "--out", "{ws}/t"], r"--seeds must be distinct, got \[0, 0\]"),
    ("train-ensemble", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--seeds", "0", "1",
                        "--ensemble", "-1"], r"--ensemble.*integer >= 0"),
    ("train-sales-history", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--sales-history", "31",
                             "--out", "{ws}/t"], r"train\.sales_history must be at most the chain's 30 periods"),
    ("train-sales-history-word", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--sales-history", "x"],
     r"--sales-history.*integer >= 0"),
    ("train-sales-history-decentralized", ["train", "bc", "--decentralized", "{ws}", "--sales-history", "2"],
     r"--sales-history must be 0 with --decentralized"),
    ("plan-sales-history", ["plan", "{ws}/dataset.h5", "--family", "neural", "--sales-history", "31",
                            "--out", "{ws}/p"], r"neural\.sales_history must be in 0 \.\. 30"),
    ("reproduce-sales-history", ["reproduce", "--preset", "quick", *RUN, "--set", "train.sales_history=31",
                                 "--out", "{ws}/r"], r"train\.sales_history must be in 0 \.\. 30"),
    ("reproduce-sales-history-decentralized", ["reproduce", "--preset", "quick", *RUN, "--set",
                                               "train.sales_history=2", "--out", "{ws}/r"],
     r"decentralized\.enabled needs train\.sales_history = 0"),
    ("train-executor", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--executor", "spark"],
     r"invalid choice: 'spark'"),
    ("train-address-local", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--address", "10.0.0.1:6379",
                             "--out", "{ws}/t"], r"address \(10\.0\.0\.1:6379\) is for the ray executor"),
    ("train-ray-exists", ["train", "bc", "--dataset", "{ws}/dataset.h5", "--out", "{ws}/agent",
                          "--executor", "ray"], r"checkpoint\.pt exists; pass --resume"),
    # evaluate
    ("evaluate-agent-missing", ["evaluate", "--agent", "{ws}/none", "--episodes", "5"], r"none.*no such checkpoint"),
    ("evaluate-agent-text", ["evaluate", "--agent", "{ws}/notes.txt", "--episodes", "5"], r"notes\.txt: not a readable checkpoint"),
    ("evaluate-agent-empty", ["evaluate", "--agent", "{ws}/empty.pt", "--episodes", "5"], r"empty\.pt"),
    ("evaluate-agent-empty-dict", ["evaluate", "--agent", "{ws}/empty-dict.pt", "--episodes", "5"], r"empty-dict\.pt"),
    ("evaluate-agent-nan", ["evaluate", "--agent", "{ws}/nan-agent", "--episodes", "5", "--baselines", "tuned"],
     r"nan-agent.*(NaN|finite)"),
    ("evaluate-agent-no-preprocessing", ["evaluate", "--agent", "{ws}/no-prep-agent", "--episodes", "5",
                                         "--baselines", "tuned"], r"no-prep-agent.*preprocessing"),
    ("evaluate-agents-two-chains", ["evaluate", "--agent", "{ws}/agent", "{ws}/backlog-agent", "--episodes", "5",
                                    "--baselines", "tuned"], r"backlog"),
    ("evaluate-agent-other-env", ["evaluate", "--agent", "{ws}/backlog-agent", "--env", "v1", "--episodes", "5",
                                  "--baselines", "tuned"], r"backlog"),
    ("evaluate-episodes", ["evaluate", "--episodes", "1"], r"evaluate\.episodes must be an integer >= 2"),
    ("evaluate-baselines", ["evaluate", "--baselines", "bogus", "--episodes", "5"], r"evaluate\.baselines: unknown \['bogus'\]"),
    ("evaluate-policy-missing", ["evaluate", "--policy", "{ws}/none", "--episodes", "5", "--baselines", "tuned"],
     r"no such policy spec file"),
    ("evaluate-policy-broken", ["evaluate", "--policy", "{ws}/policy-broken", "--episodes", "5", "--baselines", "tuned"],
     r"policy-broken"),
    # fit-demand and plan
    ("fit-missing", ["fit-demand", "{ws}/none.h5"], r"none\.h5: no such dataset file"),
    ("fit-law", ["fit-demand", "{ws}/dataset.h5", "--law", "normal"], r"invalid choice"),
    ("plan-out-file", ["plan", "{ws}/dataset.h5", "--out", "{ws}/notes.txt"], r"notes\.txt is a file; give a folder"),
    ("plan-out-finished", ["plan", "{ws}/dataset.h5", "--out", "{ws}/policy"], r"already holds a result.*--overwrite"),
    ("plan-dataset-missing", ["plan", "{ws}/none.h5", "--out", "{ws}/p2"], r"none\.h5: no such dataset file"),
    ("plan-neural-steps", ["plan", "{ws}/dataset.h5", "--family", "neural", "--steps", "0", "--out", "{ws}/p2"],
     r"--steps.*integer >= 1"),
    ("plan-neural-architecture", ["plan", "{ws}/dataset.h5", "--family", "neural", "--architecture", "rnn",
                                  "--out", "{ws}/p2"], r"--architecture.*invalid choice"),
    ("plan-neural-option-other-family", ["plan", "{ws}/dataset.h5", "--steps", "5", "--out", "{ws}/p2"],
     r"--steps applies to --family neural only"),
    ("plan-neural-warm-start-missing", ["plan", "{ws}/dataset.h5", "--family", "neural", "--warm-start",
                                        "{ws}/none", "--out", "{ws}/p2"], r"none.*no such checkpoint"),
    ("plan-neural-warm-start-other-chain", ["plan", "{ws}/dataset.h5", "--family", "neural", "--warm-start",
                                            "{ws}/backlog-agent", "--out", "{ws}/p2"],
     r"backlog-agent: trained for another chain \(\['backlog'\]"),
    # optimum
    ("optimum-chain-missing", ["optimum", "--chain", "{ws}/none.json"], r"--chain .*none\.json: no such file"),
    ("optimum-chain-list", ["optimum", "--chain", "{ws}/chain-list.json"], r"must hold a JSON object"),
    ("optimum-chain-backlog", ["optimum", "--chain", "{ws}/small-backlog.json"], r"backlog"),
    ("optimum-chain-too-large", ["optimum", "--chain", "{ws}/big-chain.json"], r"state"),
    ("optimum-policy-other-chain", ["optimum", "--chain", "{ws}/small-chain.json", "--policy", "{ws}/policy"],
     r"policy"),
    ("optimum-agent-other-chain", ["optimum", "--chain", "{ws}/small-chain.json", "--agent", "{ws}/agent"],
     r"agent: trained for another chain"),
    # reproduce: never lose a finished run
    ("reproduce-changed-setting", ["reproduce", "--preset", "quick", *RUN, "--set", "evaluate.episodes=12",
                                   "--out", "{ws}/run"], r"evaluate\.episodes: 10 there, 12 now.*--force"),
    ("reproduce-changed-before-invalid", ["reproduce", "--preset", "quick", *RUN, "--set", "collect.episodes=-1",
                                          "--out", "{ws}/run"], r"collect\.episodes must be an integer >= 1"),
    ("reproduce-out-file", ["reproduce", "--preset", "quick", *RUN, "--out", "{ws}/notes.txt"], r"notes\.txt is a file"),
    ("reproduce-out-foreign", ["reproduce", "--preset", "quick", *RUN, "--out", "{ws}/other", "--force"],
     r"not an echelon run folder"),
    ("reproduce-algorithm", ["reproduce", "--set", 'train.algorithms=["nope"]', "--out", "{ws}/r2"], r"unknown \['nope'\]"),
    ("reproduce-ensemble", ["reproduce", "--set", "train.ensemble=-1", "--out", "{ws}/r2"],
     r"train\.ensemble must be auto or an integer >= 0 .*got -1"),
    ("reproduce-resources", ["reproduce", "--set", "train.resources.cpus=0", "--out", "{ws}/r2"],
     r"train\.resources\.cpus must be a number > 0, got 0"),
    ("reproduce-resources-key", ["reproduce", "--set", "train.resources.cpu=1", "--out", "{ws}/r2"],
     r"unknown keys in train\.resources: \['cpu'\]"),
    ("reproduce-address-local", ["reproduce", *RUN, "--address", "10.0.0.1:6379", "--out", "{ws}/r2"],
     r"is for the ray executor"),
    ("reproduce-sweep-sales", ["reproduce", "--sweep", "bc.sales_history=-1", "--out", "{ws}/r2"],
     r"sweep 'bc\.sales_history=-1': train\.sales_history must be an integer >= 0"),
    ("reproduce-sweep-sales-long", ["reproduce", "--preset", "quick", *RUN, "--set", "decentralized.enabled=false",
                                    "--sweep", "bc.sales_history=40", "--out", "{ws}/r2"],
     r"train\.sales_history must be in 0 \.\. 30 \(the chain's periods\), got 40"),
    ("reproduce-sweep-unknown", ["reproduce", "--sweep", "bc.window=3", "--out", "{ws}/r2"],
     r"bc has no setting 'window'; known: .*'sales_history'"),
    ("reproduce-sweep-word", ["reproduce", "--sweep", "iql.tau=abc", "--out", "{ws}/r2"], r"expectile must be a number, got 'abc'"),
    ("reproduce-algo-field-word", ["reproduce", "--set", "train.iql.expectile=abc", "--out", "{ws}/r2"],
     r"train\.iql\.expectile must be a number"),
    ("reproduce-algo-field-unknown", ["reproduce", "--set", "train.iql.bogus=1", "--out", "{ws}/r2"],
     r"unknown keys in \[train\.iql\]"),
    ("reproduce-algo-field-range", ["reproduce", "--set", "train.iql.expectile=2", "--out", "{ws}/r2"],
     r"iql\.expectile must be in \(0, 1\)"),
    ("reproduce-model-neural", ["reproduce", "--set", 'model.neural=["rnn"]', "--out", "{ws}/r2"],
     r"model\.neural must list distinct policy classes of \['mlp', 'levels'\]"),
    ("reproduce-model-neural-steps", ["reproduce", "--set", "model.neural_steps=0", "--out", "{ws}/r2"],
     r"model\.neural_steps must be an integer >= 1"),
]


@pytest.mark.parametrize(("argv", "pattern"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_clear_line_and_changes_nothing(workspace, capsys, argv, pattern):
    before, folders = _snapshot(workspace), _folders(workspace)
    args = [a.replace("{ws}", str(workspace)) for a in argv]
    try:
        code = cli.main(args)
    except SystemExit as stop:  # argparse's refusals of a type or a choice
        code = stop.code
    captured = capsys.readouterr()
    assert code == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err  # one line: no traceback, no usage dump, no warnings
    assert lines[0].startswith("echelon: error: "), lines[0]
    assert re.search(pattern, lines[0]), lines[0]
    assert captured.out == ""
    assert _snapshot(workspace) == before  # every file byte-identical, none added
    assert _folders(workspace) == folders  # no folder left behind


def test_the_catalogue_is_long_enough():
    assert len(CASES) >= 60
    assert len({c[0] for c in CASES}) == len(CASES)


def test_rerun_with_the_same_settings_changes_no_result(workspace, capsys):
    run = workspace / "run"
    results = {k: v for k, v in _snapshot(run).items() if not k.endswith((".md", ".png"))}
    assert cli.main(["reproduce", "--preset", "quick", *RUN, "--out", str(run), "--quiet"]) == 0
    assert "report.md" in capsys.readouterr().out
    after = {k: v for k, v in _snapshot(run).items() if not k.endswith((".md", ".png"))}
    assert after == results


def test_changed_execution_settings_rerun_nothing(workspace, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    results = {k: v for k, v in _snapshot(run).items()
               if not k.endswith((".md", ".png")) and k != "config.toml"}
    argv = ["reproduce", "--preset", "quick", *RUN, "--set", "train.resources.cpus=2",
            "--set", "train.ensemble=1", "--out", str(run)]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "execution settings changed (train.ensemble: \"auto\" there, 1 now; train.resources.cpus: " \
           "1.0 there, 2.0 now)" in out
    assert "done earlier, skipped" in out
    after = {k: v for k, v in _snapshot(run).items()
             if not k.endswith((".md", ".png")) and k != "config.toml"}
    assert after == results
    assert "cpus = 2.0" in (run / "config.toml").read_text()


def test_train_several_seeds_into_one_folder_each(workspace, tmp_path, capsys):
    argv = ["train", "bc", "--dataset", str(workspace / "dataset.h5"), "--preset", "quick",
            "--epochs", "1", "--seeds", "3", "5", "--out", str(tmp_path / "agents"), "--json"]
    assert cli.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert [row["seed"] for row in report] == [3, 5]
    for seed in (3, 5):
        checkpoint = tmp_path / "agents" / f"bc-s{seed}" / "checkpoint.pt"
        assert load_checkpoint(checkpoint)["train_config"]["seed"] == seed
    assert [Path(row["checkpoint"]) for row in report] == [
        tmp_path / "agents" / f"bc-s{seed}" / "checkpoint.pt" for seed in (3, 5)]


def test_force_moves_the_replaced_results_aside(workspace, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(workspace / "run", run)
    before = _snapshot(run)
    argv = ["reproduce", "--preset", "quick", *RUN, "--set", "evaluate.episodes=12", "--out", str(run)]
    assert cli.main([*argv, "--quiet", "--force"]) == 0
    capsys.readouterr()
    aside = run / "replaced" / "1"
    for name in ("config.toml", "eval.json", "report.md"):
        assert (aside / name).read_bytes() == before[name]
    for kept in ("dataset.h5", "search.json", "agents/bc-s0/checkpoint.pt"):
        assert (run / kept).read_bytes() == before[kept]  # unchanged stages are kept, not redone
    assert json.loads((run / "eval.json").read_text())["test_paths"]["episodes"] == 12
    assert pipeline.resolve(run / "config.toml").evaluate.episodes == 12


def test_overwrite_replaces_an_output_on_request(workspace, tmp_path, capsys):
    out = tmp_path / "dataset.h5"
    out.write_bytes(b"old")
    argv = ["dataset", "import", str(workspace / "log.csv"), "--out", str(out), "--json"]
    assert cli.main(argv) == 2
    assert out.read_bytes() == b"old"
    assert cli.main([*argv, "--overwrite"]) == 0
    assert load(out).episodes == load(workspace / "dataset.h5").episodes
    capsys.readouterr()


def test_a_bad_memory_limit_is_named(monkeypatch, capsys):
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", "lots")
    assert cli.main(["simulate", "--episodes", "10"]) == 2
    assert "ECHELON_MEMORY_LIMIT_GIB must be a number of GiB > 0, got 'lots'" in capsys.readouterr().err


def test_a_lower_memory_limit_refuses_a_collection_before_it_starts(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("ECHELON_MEMORY_LIMIT_GIB", "0.001")
    out = tmp_path / "d.h5"
    assert cli.main(["collect", "--preset", "quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "collect.episodes" in err and "over the limit of 1.0 MiB" in err
    assert not out.exists()


def test_one_episode_prints_no_nan_interval(capsys):
    assert cli.main(["simulate", "--episodes", "1"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out and "n/a (one episode)" in out
    assert cli.main(["simulate", "--episodes", "1", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)  # valid JSON: no NaN literals
    assert report["ci_low"] is None and report["std"] is None and report["n"] == 1


def test_debug_lets_the_traceback_through(monkeypatch):
    with pytest.raises(ValueError, match="--z needs 3 levels"):
        cli.main(["--debug", "simulate", "--z", "1", "2"])
    monkeypatch.setenv("ECHELON_DEBUG", "1")
    with pytest.raises(ValueError, match="--z needs 3 levels"):
        cli.main(["simulate", "--z", "1", "2"])


def _echelon(*args: str, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    env.pop("ECHELON_DEBUG", None)
    return subprocess.Popen([sys.executable, "-m", "echelon.cli", *args], env=env, text=True,
                            stderr=subprocess.PIPE, **popen)


def _default_sigint() -> None:
    # A shell starts background jobs (`make test &`, nohup) with SIGINT ignored, and Python keeps
    # an ignored SIGINT ignored: the child must get the default, as from a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_exits_130_with_one_line(tmp_path):
    process = _echelon("reproduce", "--preset", "quick", "--out", str(tmp_path / "run"),
                       stdout=subprocess.PIPE, preexec_fn=_default_sigint)
    assert process.stdout.readline().startswith("[1/8] search")  # inside the run, not the imports
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130
    assert err.strip().splitlines()[-1] == "echelon: interrupted" and "Traceback" not in err


def test_a_closed_pipe_is_quiet():
    process = _echelon("search", "--episodes", "20", "--json", stdout=subprocess.PIPE)
    process.stdout.close()  # the reader went away, like `| head` does
    err = process.stderr.read()
    process.wait(timeout=60)
    assert process.returncode == 141
    assert err == ""
