import os
from pathlib import Path

import pytest

from crack_utils.torchvision_compat import ensure_torchvision_importable
from helpers import share_cores_among_xdist_workers


# make test runs 2 xdist workers on 2 cores: each worker, and what it starts, gets its share of the cores
share_cores_among_xdist_workers()

# Tests import smp directly (cross-checks); make torchvision importable first, as crack_utils.model does.
ensure_torchvision_importable()

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_configure(config):
    """Install the study's Jupyter kernel spec once, before any test runs: under pytest-xdist (make test) two
    workers' first notebook runs would otherwise both (re)write it at the same moment."""
    if not hasattr(config, "workerinput"):  # the controller (or a plain pytest run), not an xdist worker
        from crack_utils.study.notebook_run import kernel_name

        kernel_name()


def pytest_collection_modifyitems(session, config, items):
    """The longest tests first, so that the two workers of ``make test`` finish together: the notebook tests
    by the ``seconds`` of their marker (measured under make test; the kill-and-resume test that builds the
    shared reference comes before the one that reuses it), then the other notebook tests, the real-data
    tests and the unit tests, in collection order within each. ``make test`` hands tests out one at a time
    (``--dist load --maxschedchunk 1``), so this is longest-processing-time-first scheduling, and the many
    short unit tests at the end fill in around the long ones. Before: 18 min 13 s in collection order
    (34c6082), 16 min 1 s with xdist's worksteal and the notebook tests first (05c1b14: the Dask study was
    left to the end of one worker's queue; 1,670 s of test time in all)."""
    def rank(item):
        notebooks = item.get_closest_marker("notebooks")
        if notebooks is not None:
            return 0, -notebooks.kwargs.get("seconds", 0)
        return (1 if item.get_closest_marker("realdata") else 2), 0

    items.sort(key=rank)  # stable: collection order within equal ranks


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: required in CI (CI=true), politely skipped elsewhere."""
    if not (SHARED_DATA / "SOURCES.md").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the real data is missing at {SHARED_DATA}")
        pytest.skip("../shared/data not present (real-data tests run in the project's CI)")
    return SHARED_DATA
