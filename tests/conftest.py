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


@pytest.fixture
def kill_on_call(monkeypatch):
    """``kill_on_call(module, name, exc, n=2)`` replaces ``module.name`` by a wrapper whose
    ``n``-th call raises ``exc`` (a kill in the middle of a training run); returns the original,
    to be put back with ``monkeypatch.setattr`` before the run is resumed."""
    def install(module, name, exc, n=2):
        real, calls = getattr(module, name), []

        def dies(*a, **k):
            calls.append(1)
            if len(calls) == n:
                raise exc
            return real(*a, **k)

        monkeypatch.setattr(module, name, dies)
        return real
    return install
