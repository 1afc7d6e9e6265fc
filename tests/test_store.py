import pytest
import torch

from kr_utils import checkpoints, diffusion, models, runtime, store


def test_checkpoint_roundtrip_and_cache(tmp_path):
    m = models.CompressedCNN()
    p = tmp_path / "t.pt"
    checkpoints.save_checkpoint(p, m, kind="teacher", config={"a": (1, 2)}, profile="cpu", seed=3,
                              extra={"arch": "compressed_cnn"})
    ck = checkpoints.load_checkpoint(p, "teacher")
    assert ck["seed"] == 3 and ck["profile"] == "cpu" and ck["config"] == {"a": [1, 2]}
    assert checkpoints.load_if_current(p, "teacher", {"a": (1, 2)}, "cpu") is not None
    assert checkpoints.load_if_current(p, "teacher", {"a": (1, 3)}, "cpu") is None
    again = checkpoints.load_model(p, "teacher")
    for a, b in zip(again.state_dict().values(), m.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="holds a 'teacher' checkpoint, expected 'student'"):
        checkpoints.load_checkpoint(p, "student")


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*nope.pt"):
        checkpoints.load_checkpoint(tmp_path / "nope.pt")


def test_metrics_merge():
    store.update_metrics("smoke", "teacher", {"acc": 0.9})
    store.update_metrics("smoke", "teacher", {"epochs": 2})
    m = store.read_metrics("smoke")
    assert m["teacher"] == {"acc": 0.9, "epochs": 2} and "device" in m["environment"]


def test_compute_time_counts_reused_cache_results(tmp_path):
    import time

    slow = lambda: (time.sleep(0.2), {"acc": 0.5})[1]  # noqa: E731
    clock = store.StageClock.start("smoke", "stage_x")
    assert store.cached(tmp_path / "r.pt", "k", slow) == {"acc": 0.5}
    assert store.cached(tmp_path / "r.pt", "k", slow) == {"acc": 0.5}
    assert clock.reused_s == 0.0  # computed under this clock, then reused under it: counted once
    clock = store.StageClock.start("smoke", "stage_x")  # as in the next build's kernel
    assert store.cached(tmp_path / "r.pt", "k", lambda: pytest.fail("recomputed")) == {"acc": 0.5}
    assert clock.reused_s >= 0.2
    clock.record()
    m = store.read_metrics("smoke")
    assert m["wall_time_s"]["stage_x"] < 0.2 <= m["compute_time_s"]["stage_x"]
    store._clock.set(None)
    store.note_reused(5.0)  # no clock running: nothing to charge, no error


def test_bf16_switch(monkeypatch):
    monkeypatch.setenv(runtime.BF16_ENV, "0")
    assert not runtime.bf16("cuda") and not runtime.bf16("cpu")
    with runtime.autocast("cpu"):
        assert torch.nn.Linear(4, 4)(torch.randn(2, 4)).dtype == torch.float32
    monkeypatch.delenv(runtime.BF16_ENV)
    # on CUDA the answer depends on the GPU: tests/test_precision.py mocks its capability
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not runtime.bf16("cpu")  # emulated bf16 is slower: float32 there
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert runtime.bf16("cpu")
    with runtime.autocast("cpu"):
        y = torch.nn.Linear(4, 4)(torch.randn(2, 4))
    assert y.dtype == torch.bfloat16


def test_unet_layout_follows_bf16(monkeypatch):

    monkeypatch.setenv(runtime.BF16_ENV, "0")
    assert diffusion.unet_memory_format("cpu") == torch.channels_last
    monkeypatch.delenv(runtime.BF16_ENV)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert diffusion.unet_memory_format("cpu") == torch.contiguous_format
    assert diffusion.unet_memory_format("cuda") == torch.channels_last
