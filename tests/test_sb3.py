"""The Stable-Baselines3 adapter ``echelon.sb3`` against SB3's own DummyVecEnv, and a short PPO."""

import importlib
import sys

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv, VecCheckNan, VecMonitor

from echelon.sb3 import SB3_MISSING, Sb3Policy, Sb3VecEnv
from echelon.sim.env import InvManagementEnv
from echelon.sim.rollout import rollout
from echelon.sim.vector import InvManagementVectorEnv

N = 3
SHORT = {"periods": 4, "L": [1, 0, 2]}  # episodes of four periods


def test_equals_dummy_vec_env_of_single_envs():
    ours = Sb3VecEnv(N, time_feature=True, **SHORT)
    dummy = DummyVecEnv([lambda: InvManagementEnv(time_feature=True, **SHORT) for _ in range(N)])
    assert ours.observation_space == dummy.observation_space
    assert ours.action_space == dummy.action_space
    ours.seed(21)
    dummy.seed(21)
    assert np.array_equal(ours.reset(), dummy.reset())
    rng = np.random.default_rng(0)
    episodes, last = 0, None
    for _ in range(3 * SHORT["periods"] + 1):
        actions = rng.uniform(-20.0, 120.0, size=(N, 3))  # some outside the box
        obs, rewards, dones, infos = ours.step(actions)
        obs_d, rewards_d, dones_d, infos_d = dummy.step(actions)
        assert np.array_equal(obs, obs_d) and np.array_equal(dones, dones_d)
        assert rewards.dtype == rewards_d.dtype and np.array_equal(rewards, rewards_d)
        for info, info_d in zip(infos, infos_d):
            assert info["TimeLimit.truncated"] is info_d["TimeLimit.truncated"] is False
            assert ("terminal_observation" in info) == ("terminal_observation" in info_d)
            if "terminal_observation" in info:
                assert np.array_equal(info["terminal_observation"], info_d["terminal_observation"])
        if dones.all():
            episodes += 1
            # The terminal observation is the episode's last: its time feature reads T / T.
            assert all(info["terminal_observation"][-1] == 1.0 for info in infos)
            assert np.all(obs[:, -1] == 0.0)  # and the returned one the next episode's first
        else:
            last = obs
    assert episodes == 3 and last is not None


def test_terminal_observation_is_the_last_observation_of_the_episode():
    env = Sb3VecEnv(N, **SHORT)
    single = InvManagementEnv(**SHORT)
    env.seed(4)
    env.reset()
    single.reset(seed=4)  # sub-env 0
    actions = np.full((N, 3), 15.0)
    for _ in range(SHORT["periods"]):
        _, _, dones, infos = env.step(actions)
        last, *_ = single.step(actions[0])
    assert dones.all()
    assert np.array_equal(infos[0]["terminal_observation"], last)


def test_sb3_vec_env_wrappers_run_on_it():
    env = VecMonitor(VecCheckNan(Sb3VecEnv(N, **SHORT), raise_exception=True))
    env.reset()
    finished = []
    for _ in range(2 * SHORT["periods"]):
        _, _, dones, infos = env.step(np.full((N, 3), 10.0))
        finished += [info["episode"]["l"] for info in infos if "episode" in info]
    assert finished == [SHORT["periods"]] * (2 * N)
    assert env.get_attr("num_envs") == [N] * N and env.env_is_wrapped(object) == [False] * N


def test_ppo_learns_without_error_and_predicts_valid_actions():
    env = Sb3VecEnv(8, **SHORT)
    model = PPO("MlpPolicy", env, n_steps=256, batch_size=256, n_epochs=1, seed=0, device="cpu")
    model.set_logger(Logger(folder=None, output_formats=[]))  # no temp folder of SB3's
    model.learn(total_timesteps=2_048)
    assert model.num_timesteps == 2_048
    obs = env.reset()
    actions, _ = model.predict(obs, deterministic=True)
    assert actions.shape == (8, 3)
    assert all(env.action_space.contains(action.astype(np.float64)) for action in actions)
    env.step(actions)
    # As a Policy in the core's rollout it earns what its actions earn in the Gymnasium env.
    config = env.env.config
    paths = config.demand.sample(np.random.default_rng(5), 8, config.periods)
    result = rollout(config, Sb3Policy(model, config), paths)
    gym_env = InvManagementVectorEnv(8, config)
    obs, _ = gym_env.reset(options={"demand": paths})
    profit = np.zeros(8)
    for _ in range(config.periods):
        obs, rewards, *_ = gym_env.step(model.predict(obs, deterministic=True)[0])
        profit += rewards
    assert np.array_equal(result.profit, profit)
    with pytest.raises(ValueError, match="without time feature"):
        Sb3Policy(model, config.replace(lead_time=(1, 0, 3)))


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="autoreset_mode cannot be set"):
        Sb3VecEnv(2, autoreset_mode="NextStep")
    env = Sb3VecEnv(2, **SHORT)
    with pytest.raises(ValueError, match="set_attr sets an attribute of all"):
        env.set_attr("time_feature", True, indices=[0])


def test_without_sb3_the_import_error_names_the_extra(monkeypatch):
    assert SB3_MISSING.endswith("pip install 'echelon[sb3]'")
    # None in sys.modules makes `import stable_baselines3...` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, "stable_baselines3.common.vec_env", None)
    monkeypatch.delitem(sys.modules, "echelon.sb3")
    with pytest.raises(ImportError, match=r"pip install 'echelon\[sb3\]'$"):
        importlib.import_module("echelon.sb3")


def test_the_ppo_reference_writes_a_row_the_benchmark_accepts(tmp_path):
    """benchmarks/ppo_reference.py --suite: PPO on the suite's scenario, scored on its paths."""
    import dataclasses
    import json
    import subprocess
    from pathlib import Path

    from echelon.benchmark import build_suite
    from echelon.benchmark.datasets import EXPERT_SEARCH
    from echelon.benchmark.run import read_reference

    suite = tmp_path / "suite"
    manifest = build_suite(suite, scenarios=["v1"], qualities=["random"], episodes=2,
                           test_episodes=4, overrides=["search.episodes=4"],
                           expert_search=dataclasses.replace(EXPERT_SEARCH, episodes=4))
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "ppo_reference.py"
    out = tmp_path / "ppo.json"
    done = subprocess.run(
        [sys.executable, str(script), "--steps", "128", "--num-envs", "2", "--n-steps", "64",
         "--seeds", "2", "--suite", str(suite), "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1",
                                                          "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    reference = read_reference(out, manifest)
    figures = json.loads(out.read_text())["figures"]
    assert reference["scenario"] == "v1" and reference["test_episodes"] == 4
    assert reference["profits"] == [run["ppo"]["mean"] for run in figures["runs"]]
    assert [run["steps"] for run in figures["runs"]] == [128, 128]
    assert figures["spaces"] == "actions in [-1, 1], VecNormalize"
