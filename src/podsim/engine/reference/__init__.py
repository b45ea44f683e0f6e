"""The pure-Python reference engine: small, readable, and the oracle for the C++ core.

It follows docs/engine.md and nothing else; differential tests compare the two engines.
"""

from podsim.engine.reference.collectives import collective_time
from podsim.engine.reference.engine import simulate
from podsim.engine.reference.topology import Topology

__all__ = ["Topology", "collective_time", "simulate"]
