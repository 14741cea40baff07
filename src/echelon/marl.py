"""The multi-agent chain: one PettingZoo agent per inventory stage.

The public entry point of the decentralized formulation (the paper's Section III-B.2). Each
inventory stage is an agent of a ``pettingzoo.ParallelEnv`` that sees its own stock and its own
recent requests, orders from the stage above and earns a local, profit-share or team reward,
over the same core as the Gymnasium env::

    from echelon import marl

    env = marl.parallel_env(L=[2, 4, 6], reward="local")
    observations, infos = env.reset(seed=0)
    while env.agents:
        actions = {agent: env.action_space(agent).sample() for agent in env.agents}
        observations, rewards, terminations, truncations, infos = env.step(actions)

Needs the ``marl`` extra (``pip install 'echelon[marl]'``). The decentralized view without the
env, :mod:`echelon.sim.stage_view` (whose main names are re-exported here), needs no PettingZoo.
"""

from echelon.sim.marl import InvManagementParallelEnv, ObservedHistory, parallel_env
from echelon.sim.stage_view import StageReward, agent_names, local_observation, stage_chain

__all__ = [
    "InvManagementParallelEnv",
    "ObservedHistory",
    "StageReward",
    "agent_names",
    "local_observation",
    "parallel_env",
    "stage_chain",
]
