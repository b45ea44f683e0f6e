"""Shared fixtures: a test chip with round numbers so expected values are easy to derive."""

import pytest

from podsim.specs.chips import chip_from_dict
from podsim.specs.clusters import make_cluster

SU_BW, SU_LAT = 400e9, 2e-6  # scale-up: bytes/s per direction, seconds per path
SO_BW, SO_LAT = 50e9, 5e-6  # scale-out
LAUNCH = 3e-6

TEST_CHIP = chip_from_dict(
    "test-chip",
    {
        "name": "round-number test chip",
        "vendor": "none",
        "peak_flops": {"bf16": 1e15},
        "hbm_bytes": 80e9,
        "hbm_bandwidth": 3e12,
        "scale_up_bandwidth": SU_BW,
        "scale_up_latency": SU_LAT,
        "domain_size": 8,
        "scale_out_bandwidth": SO_BW,
        "scale_out_latency": SO_LAT,
        "tdp_watts": 700,
    },
)


def cluster(devices: int, domain_size: int = 8, **overrides):
    """A cluster of the test chip at nominal link bandwidths; other fields as given."""
    links = {"scale_up_efficiency": 1.0, "scale_out_efficiency": 1.0}
    return make_cluster(
        TEST_CHIP, devices, domain_size=domain_size, launch_latency=LAUNCH, **(links | overrides)
    )


@pytest.fixture
def chip():
    return TEST_CHIP


@pytest.fixture(scope="session")
def published_cases():
    """The published training cases (tests/validation), run once per session: two modules
    read them."""
    from podsim.front.validation import case_names, run_case

    return {name: run_case(name) for name in case_names()}


@pytest.fixture(scope="session")
def dask_client():
    """One local dask cluster of two worker processes, shared by the tests that compare
    executors (starting one takes seconds)."""
    import distributed

    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,  # any free port: a test's own LocalCluster may want the default one
        distributed.Client(cluster) as client,
    ):
        yield client
