import os
from pathlib import Path

import pytest

from crack_utils.torchvision_compat import ensure_torchvision_importable

# Tests import smp directly (cross-checks); make torchvision importable first, as crack_utils.model does.
ensure_torchvision_importable()

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: required in CI (CI=true), politely skipped elsewhere."""
    if not (SHARED_DATA / "SOURCES.md").is_file():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but the real data is missing at {SHARED_DATA}")
        pytest.skip("../shared/data not present (real-data tests run in the project's CI)")
    return SHARED_DATA
