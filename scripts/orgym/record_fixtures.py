"""Record step-by-step reference fixtures from the real OR-Gym 0.5.0.

This script runs INSIDE the throwaway OR-Gym virtual environment made by
``scripts/orgym/make_venv.sh`` (Python 3.11, numpy<2, gym 0.19.0,
or-gym 0.5.0) -- never in the project's own environment, and never in CI:

    bash scripts/orgym/make_venv.sh
    .orgym-venv/bin/python scripts/orgym/record_fixtures.py          # write
    .orgym-venv/bin/python scripts/orgym/record_fixtures.py --check  # compare

It drives OR-Gym's ``InvManagementBacklogEnv`` (registered as
``InvManagement-v0``) and ``InvManagementLostSalesEnv`` (``InvManagement-v1``)
through a fixed list of cases and writes

    tests/sim/fixtures/orgym_v0.json   (backlog)
    tests/sim/fixtures/orgym_v1.json   (lost sales)

which are committed; echelon's simulator tests compare against them with
exact float equality.

Determinism: every case uses a user-supplied demand path (``dist=5``); OR-Gym's
own random sampling (scipy.stats + the global numpy seed) is never used. The
demand paths and random action sequences are drawn here from
``np.random.default_rng(<fixed per-case seed>)`` and stored in the fixture, so
the tests never need to regenerate them. Running the script twice in the same
venv yields byte-identical files (``--check`` verifies this against the files
on disk). Both files use the same cases with the same demand and actions.

Every number is formatted by ``json.dumps`` from a Python float (json writes
``repr``, which round-trips float64 exactly); nothing is rounded. NaN/Infinity
are refused (``allow_nan=False``). The only layout choice is that arrays of
numbers are kept on one line; the result is ordinary JSON.

Schema (one file per environment)::

    {
      "generator": "scripts/orgym/record_fixtures.py",
      "orgym_version": "0.5.0",
      "gym_version": "0.19.0",
      "numpy_version": "1.26.4",
      "env": "InvManagement-v1",            # or "InvManagement-v0"
      "env_class": "InvManagementLostSalesEnv",
      "backlog": false,                     # true for v0
      "cases": [
        {
          "name": "default-capacity-clip",  # short, unique, descriptive
          "description": "what this case exercises",
          "config": {"periods": 30, "I0": [...], "p": 2.0, "r": [...],
                     "k": [...], "h": [...], "c": [...], "L": [...],
                     "alpha": 0.97},        # passed as keyword args, plus
                                            # dist=5 and user_D=demand
          "demand": [...],                  # one float per period
          "actions": [[...], ...],          # one row per period, len(I0)
                                            # entries; passed to env.step as
                                            # np.array(row, dtype=float64)
          "initial_observation": [...],     # env.reset()
          "steps": [                        # one per period n = 0..periods-1
            {"observation": [...],          # obs returned by env.step
             "reward": float,               # == env.P[n] (discounted profit)
             "done": bool,
             "on_hand": [...],              # env.I[n+1]: on-hand at start of
                                            #   period n+1, stages 0..m-2
             "pipeline": [...],             # env.T[n+1]
             "shipped": [...],              # env.R[n]: replenishment shipped
                                            #   to stages 0..m-2 (after
                                            #   capacity/availability clipping)
             "sales": [...],                # env.S[n], length m: retailer
                                            #   sales, then shipments R[n]
             "backlog": [...],              # env.B[n], length m
             "lost_sales": [...],           # env.LS[n], length m
             "demand": float,               # env.D[n]
             "action_log": [...]}           # env.action_log[n] ==
                                            #   max(action, 0).astype(int)
          ]
        }
      ]
    }

Here m = len(I0) + 1 is the number of stages (stage m-1 is the raw-material
source with unlimited supply). Observations have length
(m-1) * (max(L) + 1): on-hand inventory of stages 0..m-2 followed by the last
max(L) rows of ``action_log`` (the *requested* orders, not the shipped ones).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import gym
import numpy as np
import or_gym
from or_gym.envs.supply_chain.inventory_management import (
    InvManagementBacklogEnv,
    InvManagementLostSalesEnv,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT_DIR = REPO_ROOT / "tests" / "sim" / "fixtures"
GENERATOR = "scripts/orgym/record_fixtures.py"

DEFAULT_CHAIN = {
    "periods": 30,
    "I0": [100, 100, 200],
    "p": 2.0,
    "r": [1.5, 1.0, 0.75, 0.5],
    "k": [0.10, 0.075, 0.05, 0.025],
    "h": [0.15, 0.10, 0.05],
    "c": [100, 90, 80],
    "L": [3, 5, 10],
    "alpha": 0.97,
}

CONFIG_KEYS = ("periods", "I0", "p", "r", "k", "h", "c", "L", "alpha")


# --------------------------------------------------------------------------
# Demand and action generators (all seeded; nothing else is random)
# --------------------------------------------------------------------------


def poisson_demand(seed: int, periods: int, mu: float = 20.0) -> list[float]:
    rng = np.random.default_rng(seed)
    return [float(x) for x in rng.poisson(mu, size=periods)]


def constant_actions(periods: int, row: list[float]) -> list[list[float]]:
    return [[float(x) for x in row] for _ in range(periods)]


def pass_through_actions(demand: list[float], n_stages: int, first: float = 20.0) -> list[list[float]]:
    """Base-stock-like policy: every stage re-orders last period's demand."""
    rows = []
    prev = first
    for d in demand:
        rows.append([float(prev)] * n_stages)
        prev = d
    return rows


def random_int_actions(seed: int, periods: int, n_stages: int, low: int, high: int) -> list[list[float]]:
    rng = np.random.default_rng(seed)
    return [[float(x) for x in row] for row in rng.integers(low, high + 1, size=(periods, n_stages))]


def cycle_actions(periods: int, rows: list[list[float]]) -> list[list[float]]:
    return [[float(x) for x in rows[t % len(rows)]] for t in range(periods)]


def chain(**overrides) -> dict:
    cfg = {k: (list(v) if isinstance(v, list) else v) for k, v in DEFAULT_CHAIN.items()}
    cfg.update(overrides)
    return cfg


# --------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------


def build_cases() -> list[dict]:
    cases = []

    def add(name, description, config, demand, actions):
        assert set(config) == set(CONFIG_KEYS), name
        n = config["periods"]
        assert len(demand) == n, name
        assert len(actions) == n, name
        assert all(len(row) == len(config["I0"]) for row in actions), name
        assert max(config["L"]) >= 1, f"{name}: OR-Gym crashes when every lead time is 0"
        assert all(d >= 0 and float(d).is_integer() for d in demand), name
        cases.append(
            {
                "name": name,
                "description": description,
                "config": config,
                "demand": [float(d) for d in demand],
                "actions": [[float(a) for a in row] for row in actions],
            }
        )

    # 1. Default chain, Poisson(20) demand, base-stock-like ordering.
    cfg = chain()
    d = poisson_demand(1001, cfg["periods"])
    add(
        "default-base-stock",
        "OR-Gym default 4-stage chain, Poisson(20) demand, every stage re-orders "
        "the previous period's demand (20 in period 0).",
        cfg, d, pass_through_actions(d, 3),
    )

    # 2. Capacity clipping.
    cfg = chain()
    d = poisson_demand(1002, cfg["periods"])
    add(
        "default-capacity-clip",
        "Default chain with orders far above capacity c=[100,90,80] (150/200/500 "
        "in rotation, plus exact-capacity and below-capacity rows), so shipments "
        "are clipped to capacity (and, once upstream drains, to upstream on-hand).",
        cfg, d,
        cycle_actions(cfg["periods"], [
            [150, 200, 500], [500, 150, 200], [200, 500, 150],
            [100, 90, 80], [99, 89, 79], [101, 91, 81],
        ]),
    )

    # 3. Upstream-availability clipping.
    cfg = chain(I0=[100, 10, 5])
    d = poisson_demand(1003, cfg["periods"])
    add(
        "upstream-availability-clip",
        "Default chain with tiny upstream stock I0=[100,10,5] and orders of 60 "
        "(below every capacity) so shipments are clipped to the supplier's "
        "on-hand at the START of the period (before that period's arrivals).",
        cfg, d, constant_actions(cfg["periods"], [60, 60, 60]),
    )

    # 4. Negative and fractional actions.
    cfg = chain()
    d = poisson_demand(1004, cfg["periods"])
    rows = [
        [-5, -0.5, 3.7], [19.99, 0.2, -0.0], [0.999, 1e-9, 99.9999],
        [-1000, 20.5, 80.0], [100.0, 90.0, 80.0], [100.5, 90.9, 80.1],
        [7.49, 7.5, 7.51], [-0.2, 25.999999, 0.0], [42.0, -3.3, 1.0000001],
        [15.3, 15.7, 15.5],
    ]
    add(
        "negative-fractional-actions",
        "Default chain with negative, fractional and exact-capacity actions to "
        "exercise np.maximum(action, 0).astype(int) truncation and the >= capacity test.",
        cfg, d, cycle_actions(cfg["periods"], rows),
    )

    # 5. Demand spikes -> retailer stock-outs and unfilled upstream requests.
    cfg = chain()
    rng = np.random.default_rng(1005)
    d = [float(x) for x in rng.poisson(20, size=cfg["periods"])]
    for t, spike in zip((2, 3, 4, 9, 10, 16, 22, 23), (80, 150, 120, 100, 140, 90, 150, 110)):
        d[t] = float(spike)
    add(
        "backlog-demand-spikes",
        "Default chain with demand spikes of 80-150 and aggressive stage-0 orders "
        "[90,40,30]: the retailer stocks out and stage 1 cannot fill stage 0's "
        "requests for several periods (backlog carry-over in v0, lost sales in v1; "
        "in v0 the carried requests also hit capacity).",
        cfg, d, constant_actions(cfg["periods"], [90, 40, 30]),
    )

    # 6. Random actions and random demand.
    cfg = chain()
    rng = np.random.default_rng(1006)
    d = [float(x) for x in rng.integers(0, 61, size=cfg["periods"])]
    acts = rng.uniform(-20.0, 150.0, size=(cfg["periods"], 3)).tolist()
    add(
        "random-actions",
        "Default chain, uniform-integer demand in [0,60], uniform float actions in "
        "[-20,150) (full float64 precision).",
        cfg, d, acts,
    )

    # 7. Zero orders: the chain just drains.
    cfg = chain()
    d = poisson_demand(1007, cfg["periods"])
    add(
        "zero-orders-drain",
        "Default chain, no orders at all: on-hand drains, the retailer stays "
        "stocked out and v0 backlog grows every period.",
        cfg, d, constant_actions(cfg["periods"], [0, 0, 0]),
    )

    # 8. Zero demand: stock accumulates.
    cfg = chain()
    add(
        "zero-demand",
        "Default chain, zero demand, constant orders [30,30,30]: no sales, holding "
        "costs only, upstream stock drains into the retailer.",
        cfg, [0.0] * cfg["periods"], constant_actions(cfg["periods"], [30, 30, 30]),
    )

    # 9. Two-stage chain.
    cfg = {"periods": 30, "I0": [50], "p": 2.0, "r": [1.0, 0.5], "k": [0.1, 0.05],
           "h": [0.2], "c": [40], "L": [2], "alpha": 0.97}
    d = poisson_demand(1009, cfg["periods"], mu=15.0)
    add(
        "two-stage",
        "2-stage chain (one ordering stage, L=[2], c=[40]), Poisson(15) demand, "
        "random integer orders in [0,60] (some above capacity).",
        cfg, d, random_int_actions(1109, cfg["periods"], 1, 0, 60),
    )

    # 10. Three-stage chain with a zero lead time at the retailer.
    cfg = {"periods": 30, "I0": [30, 60], "p": 2.0, "r": [1.2, 0.8, 0.4],
           "k": [0.2, 0.1, 0.05], "h": [0.1, 0.05], "c": [50, 40], "L": [0, 2],
           "alpha": 0.97}
    d = poisson_demand(1010, cfg["periods"], mu=25.0)
    add(
        "three-stage-zero-lead",
        "3-stage chain with L=[0,2]: the retailer receives its replenishment in "
        "the same period it orders. Poisson(25) demand, random orders in [0,60].",
        cfg, d, random_int_actions(1110, cfg["periods"], 2, 0, 60),
    )

    # 11. Three-stage chain with a zero lead time upstream.
    cfg = {"periods": 30, "I0": [30, 60], "p": 2.0, "r": [1.2, 0.8, 0.4],
           "k": [0.2, 0.1, 0.05], "h": [0.1, 0.05], "c": [50, 40], "L": [2, 0],
           "alpha": 0.97}
    d = poisson_demand(1011, cfg["periods"], mu=25.0)
    add(
        "three-stage-zero-lead-upstream",
        "3-stage chain with L=[2,0]: stage 1 receives its own order immediately, "
        "the same period it may have to ship to stage 0 (shipments are still "
        "limited by stage 1's on-hand at the start of the period).",
        cfg, d, random_int_actions(1111, cfg["periods"], 2, 0, 60),
    )

    # 12. Five-stage chain.
    cfg = {"periods": 40, "I0": [80, 70, 60, 50], "p": 2.5,
           "r": [2.0, 1.5, 1.1, 0.8, 0.5], "k": [0.12, 0.09, 0.06, 0.04, 0.02],
           "h": [0.2, 0.15, 0.1, 0.05], "c": [60, 55, 50, 45], "L": [1, 2, 3, 4],
           "alpha": 0.95}
    d = poisson_demand(1012, cfg["periods"], mu=22.0)
    add(
        "five-stage",
        "5-stage chain, L=[1,2,3,4], c=[60,55,50,45], 40 periods, Poisson(22) "
        "demand, random integer orders in [0,70].",
        cfg, d, random_int_actions(1112, cfg["periods"], 4, 0, 70),
    )

    # 13. Unit lead times everywhere (smallest legal observation).
    cfg = chain(L=[1, 1, 1])
    d = poisson_demand(1013, cfg["periods"])
    add(
        "default-unit-lead-times",
        "Default chain with L=[1,1,1] (observation length 6), pass-through orders.",
        cfg, d, pass_through_actions(d, 3),
    )

    # 14. Short horizon.
    cfg = chain(periods=5)
    d = poisson_demand(1014, cfg["periods"])
    add(
        "default-short-horizon",
        "Default chain with only 5 periods (fewer than max(L)=10, so the "
        "observation never fills its pipeline window).",
        cfg, d, pass_through_actions(d, 3),
    )

    # 15. Long horizon.
    cfg = chain(periods=60)
    d = poisson_demand(1015, cfg["periods"])
    add(
        "default-long-horizon",
        "Default chain with 60 periods and pass-through orders (long run past "
        "every lead time; strong discounting at alpha=0.97).",
        cfg, d, pass_through_actions(d, 3),
    )

    # 16. No discounting.
    cfg = chain(alpha=1.0)
    d = poisson_demand(1016, cfg["periods"])
    add(
        "default-alpha-one",
        "Default chain with alpha=1.0 (undiscounted), random integer orders in [0,120].",
        cfg, d, random_int_actions(1116, cfg["periods"], 3, 0, 120),
    )

    # 17. Non-default prices and costs.
    cfg = chain(p=3.5, r=[2.25, 1.5, 1.0, 0.6], k=[0.5, 0.3, 0.2, 0.1],
                h=[0.3, 0.2, 0.1], alpha=0.9)
    d = poisson_demand(1017, cfg["periods"], mu=30.0)
    add(
        "custom-prices-costs",
        "Default chain shape with p=3.5, r=[2.25,1.5,1.0,0.6], k=[0.5,0.3,0.2,0.1], "
        "h=[0.3,0.2,0.1], alpha=0.9, Poisson(30) demand, pass-through orders.",
        cfg, d, pass_through_actions(d, 3, first=30.0),
    )

    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "case names must be unique"
    return cases


# --------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------


def _floats(a) -> list:
    return [float(x) for x in np.asarray(a, dtype=np.float64).ravel().tolist()]


def run_case(env_cls, case: dict) -> dict:
    cfg = case["config"]
    env = env_cls(
        periods=cfg["periods"],
        I0=list(cfg["I0"]),
        p=cfg["p"],
        r=list(cfg["r"]),
        k=list(cfg["k"]),
        h=list(cfg["h"]),
        c=list(cfg["c"]),
        L=list(cfg["L"]),
        alpha=cfg["alpha"],
        dist=5,
        user_D=list(case["demand"]),
    )
    obs = env.reset()
    initial = _floats(obs)
    steps = []
    for n, row in enumerate(case["actions"]):
        obs, reward, done, info = env.step(np.array(row, dtype=np.float64))
        assert info == {}
        assert env.period == n + 1
        steps.append(
            {
                "observation": _floats(obs),
                "reward": float(reward),
                "done": bool(done),
                "on_hand": _floats(env.I[n + 1]),
                "pipeline": _floats(env.T[n + 1]),
                "shipped": _floats(env.R[n]),
                "sales": _floats(env.S[n]),
                "backlog": _floats(env.B[n]),
                "lost_sales": _floats(env.LS[n]),
                "demand": float(env.D[n]),
                "action_log": _floats(env.action_log[n]),
            }
        )
    assert steps[-1]["done"] and not any(s["done"] for s in steps[:-1])
    out = dict(case)
    out["initial_observation"] = initial
    out["steps"] = steps
    return out


def build_document(env_id: str, env_cls, backlog: bool, cases: list[dict]) -> dict:
    recorded = [run_case(env_cls, c) for c in cases]
    return {
        "generator": GENERATOR,
        "orgym_version": or_gym.__version__,
        "gym_version": gym.__version__,
        "numpy_version": np.__version__,
        "env": env_id,
        "env_class": env_cls.__name__,
        "backlog": backlog,
        "cases": recorded,
    }


def _dumps(obj, indent: int = 0) -> str:
    """json.dumps, but lists of scalars stay on one line (smaller, diffable).

    Every scalar is still formatted by json.dumps itself (float repr), so the
    output parses back to exactly the same values as plain json.dump would.
    """
    pad = " " * indent
    inner = " " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(str(k))}: {_dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, list):
        if all(not isinstance(x, (dict, list)) for x in obj):
            return json.dumps(obj, allow_nan=False)
        items = [inner + _dumps(x, indent + 1) for x in obj]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(obj, allow_nan=False)


def serialize(doc: dict) -> str:
    text = _dumps(doc) + "\n"
    assert json.loads(text) == doc  # same values as plain json.dump
    assert text == _dumps(json.loads(text)) + "\n"  # stable round trip
    return text


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                    help="where to write orgym_v0.json / orgym_v1.json (default: %(default)s)")
    ap.add_argument("--check", action="store_true",
                    help="do not write; exit 1 if the files on disk differ from a fresh recording")
    args = ap.parse_args(argv)

    if or_gym.__version__ != "0.5.0":
        print(f"warning: expected or_gym 0.5.0, found {or_gym.__version__}", file=sys.stderr)

    cases = build_cases()
    targets = [
        ("orgym_v0.json", "InvManagement-v0", InvManagementBacklogEnv, True),
        ("orgym_v1.json", "InvManagement-v1", InvManagementLostSalesEnv, False),
    ]
    status = 0
    for fname, env_id, env_cls, backlog in targets:
        text = serialize(build_document(env_id, env_cls, backlog, cases))
        path = args.out_dir / fname
        if args.check:
            same = path.exists() and path.read_text(encoding="utf-8") == text
            print(f"{path}: {'up to date' if same else 'DIFFERS'}")
            status |= 0 if same else 1
        else:
            write_atomic(path, text)
            print(f"wrote {path} ({len(text.encode())} bytes, {len(cases)} cases)")
    return status


if __name__ == "__main__":
    sys.exit(main())
