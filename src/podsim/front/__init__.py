"""front: the scenario schema, the Python API, sweeps, validation and the CLI (`podsim`)."""
