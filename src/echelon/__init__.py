"""echelon: offline learning and honest evaluation of multi-echelon inventory policies.

Importing echelon registers the Gymnasium environments ``echelon/InvManagement-v1`` (lost
sales) and ``echelon/InvManagement-v0`` (backlog), with the batched vector env as their
``vector_entry_point`` (``gymnasium.make_vec``).
"""

from echelon.sim import ChainConfig
from echelon.sim.env import InvManagementEnv, register_envs
from echelon.sim.vector import InvManagementVectorEnv, register_vector_envs

__version__ = "0.1.0"
__all__ = ["ChainConfig", "InvManagementEnv", "InvManagementVectorEnv", "__version__"]

register_envs()
register_vector_envs()
