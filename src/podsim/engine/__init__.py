"""engine: runs programs on the C++ core (podsim._core): timelines, noise, the failures Monte
Carlo; `podsim.engine.reference` is the pure-Python engine the tests use as an oracle."""
