import pytest
import torch

from kr_utils import artifacts, models


def test_checkpoint_roundtrip_and_cache(tmp_path):
    m = models.CompressedCNN()
    p = tmp_path / "t.pt"
    artifacts.save_checkpoint(p, m, kind="teacher", config={"a": (1, 2)}, profile="cpu", seed=3,
                              extra={"arch": "compressed_cnn"})
    ck = artifacts.load_checkpoint(p, "teacher")
    assert ck["seed"] == 3 and ck["profile"] == "cpu" and ck["config"] == {"a": [1, 2]}
    assert artifacts.load_if_current(p, "teacher", {"a": (1, 2)}, "cpu") is not None
    assert artifacts.load_if_current(p, "teacher", {"a": (1, 3)}, "cpu") is None
    again = artifacts.load_model(p, "teacher")
    for a, b in zip(again.state_dict().values(), m.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="holds a 'teacher' checkpoint, expected 'student'"):
        artifacts.load_checkpoint(p, "student")


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*nope.pt"):
        artifacts.load_checkpoint(tmp_path / "nope.pt")


def test_metrics_merge():
    artifacts.update_metrics("smoke", "teacher", {"acc": 0.9})
    artifacts.update_metrics("smoke", "teacher", {"epochs": 2})
    m = artifacts.read_metrics("smoke")
    assert m["teacher"] == {"acc": 0.9, "epochs": 2} and "device" in m["environment"]
