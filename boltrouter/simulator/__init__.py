"""The built-in BoltOdds simulator: the same protocol on loopback, with no API key.

``start_simulator(options)`` starts it; see docs/simulator.md.
"""

from .server import SimulatorServer, start_simulator
from .world import World

__all__ = ["SimulatorServer", "World", "start_simulator"]
