"""Exact conformance with OR-Gym 0.5.0, on fixtures recorded by scripts/orgym/record_fixtures.py.

Every comparison is exact equality: observations, rewards and internal arrays, bit for bit.
"""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import echelon  # noqa: F401  (registers the environments)
from echelon.sim import ChainConfig, core

FIXTURES = Path(__file__).parent / "fixtures"


def _cases(version):
    data = json.loads((FIXTURES / f"orgym_{version}.json").read_text())
    assert data["orgym_version"] == "0.5.0"
    return [pytest.param(data["backlog"], case, id=f"{version}-{case['name']}") for case in data["cases"]]


CASES = _cases("v0") + _cases("v1")


def _config(backlog, case):
    return ChainConfig.from_kwargs(backlog=backlog, **case["config"])


def test_fixtures_cover_every_clip():
    """The recorded cases exercise capacity, upstream stock, truncation and backlog carry-over."""
    seen = {"capacity": False, "upstream": False, "negative": False, "fraction": False, "carry": False}
    for param in CASES:
        backlog, case = param.values
        cap = np.asarray(case["config"]["c"], dtype=float)
        actions = np.asarray(case["actions"], dtype=float)
        seen["negative"] |= bool(np.any(actions < 0))
        seen["fraction"] |= bool(np.any(actions != np.trunc(actions)))
        for n, step in enumerate(case["steps"]):
            shipped = np.asarray(step["shipped"])
            seen["capacity"] |= bool(np.any((shipped == cap) & (actions[n] > cap)))
            prev_on_hand = np.asarray(case["steps"][n - 1]["on_hand"] if n else case["config"]["I0"])
            upstream = np.append(prev_on_hand[1:], np.inf)
            seen["upstream"] |= bool(np.any((shipped == upstream) & (shipped < np.maximum(actions[n], 0))))
            seen["carry"] |= backlog and n > 0 and any(case["steps"][n - 1]["backlog"])
    assert all(seen.values()), seen


@pytest.mark.parametrize(("backlog", "case"), CASES)
def test_core_matches_orgym_exactly(backlog, case):
    config = _config(backlog, case)
    state = core.reset(config, np.asarray(case["demand"], dtype=float))
    assert core.observation(config, state)[0].tolist() == case["initial_observation"]
    for n, (action, want) in enumerate(zip(case["actions"], case["steps"])):
        state, out = core.step(config, state, np.asarray([action], dtype=float))
        assert out.reward[0] == want["reward"], f"reward at period {n}"
        assert core.observation(config, state)[0].tolist() == want["observation"], f"obs at {n}"
        assert out.on_hand[0].tolist() == want["on_hand"]
        assert out.pipeline[0].tolist() == want["pipeline"]
        assert out.shipped[0].tolist() == want["shipped"]
        assert out.sales[0].tolist() == want["sales"]
        assert out.backlog[0].tolist() == want["backlog"]
        assert out.lost_sales[0].tolist() == want["lost_sales"]
        assert out.demand[0] == want["demand"]
        assert out.requests[0].tolist() == want["action_log"]
        assert state.done == want["done"]


@pytest.mark.parametrize(("backlog", "case"), CASES)
def test_env_matches_orgym_exactly(backlog, case):
    env = gym.make(
        f"echelon/InvManagement-{'v0' if backlog else 'v1'}", **case["config"]
    ).unwrapped
    obs, _ = env.reset(seed=0, options={"demand": case["demand"]})
    assert obs.tolist() == case["initial_observation"]
    for action, want in zip(case["actions"], case["steps"]):
        obs, reward, terminated, truncated, info = env.step(np.asarray(action, dtype=float))
        assert reward == want["reward"]
        assert obs.tolist() == want["observation"]
        assert terminated == want["done"] and truncated is False
        assert info["on_hand"].tolist() == want["on_hand"]
        assert info["pipeline"].tolist() == want["pipeline"]
        assert info["demand"] == want["demand"]
        key = "backlog" if backlog else "lost_sales"
        assert info[key].tolist() == want[key]


def test_batched_core_equals_cases_run_together():
    """All default-chain v1 cases stepped as one batch give each case's recorded rewards."""
    cases = [p.values[1] for p in _cases("v1") if p.values[1]["config"] == _cases("v1")[0].values[1]["config"]]
    assert len(cases) >= 3
    config = _config(False, cases[0])
    state = core.reset(config, np.array([c["demand"] for c in cases], dtype=float))
    for n in range(config.periods):
        orders = np.array([c["actions"][n] for c in cases], dtype=float)
        state, out = core.step(config, state, orders)
        assert out.reward.tolist() == [c["steps"][n]["reward"] for c in cases]
