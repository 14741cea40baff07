"""echelon: offline learning and honest evaluation of multi-echelon inventory policies.

Importing echelon registers the Gymnasium environments ``echelon/InvManagement-v1`` (lost
sales) and ``echelon/InvManagement-v0`` (backlog).
"""

from echelon.sim import ChainConfig
from echelon.sim.env import InvManagementEnv, register_envs

__version__ = "0.1.0"
__all__ = ["ChainConfig", "InvManagementEnv", "__version__"]

register_envs()
