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
    """The notebook tests first, then the real-data tests (kept together: one worker builds their manifest
    fixture), then the unit tests. ``make test`` runs xdist's ``--dist worksteal``: each of the two workers
    starts on half of this list and an idle worker takes the tail of the other's queue, so the many short
    unit tests at the end fill in around the few minute-long notebook tests (in collection order those
    came last in one worker's queue while the other sat idle: about a third of the suite's wall time)."""
    def rank(item):
        return 0 if item.get_closest_marker("notebooks") else 1 if item.get_closest_marker("realdata") else 2

    items.sort(key=rank)  # stable: collection order within each rank


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: required in CI (CI=true), politely skipped elsewhere."""
    if not (SHARED_DATA / "SOURCES.md").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the real data is missing at {SHARED_DATA}")
        pytest.skip("../shared/data not present (real-data tests run in the project's CI)")
    return SHARED_DATA
