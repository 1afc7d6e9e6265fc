import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated_artifacts(tmp_path, monkeypatch):
    """Every test writes artifacts to its own temporary folder."""
    monkeypatch.setenv("KR_ARTIFACTS", str(tmp_path / "artifacts"))


@pytest.fixture
def mnist_dir():
    """The real MNIST folder ($KR_DATA_DIR, or ../shared/data/mnist beside the checkout)."""
    d = os.environ.get("KR_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    d = Path(d)
    if not (d / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip("no local MNIST copy (set KR_DATA_DIR)")
    return d
