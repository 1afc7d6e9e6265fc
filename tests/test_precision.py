"""Device and precision decided in one place (kr_utils.runtime.precision), with the GPU's
capability mocked: bf16 only where the hardware has it natively, fp16 with a gradient scaler on
older GPUs (a T4), fp32 as the fallback."""
import pytest
import torch

from kr_utils import distill, models, runtime


@pytest.fixture
def fake_cuda(monkeypatch):
    """A CUDA device of a chosen compute capability and native-bf16 answer."""
    def make(capability, native_bf16):
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: capability)

        def is_bf16_supported(including_emulation=True):
            return True if including_emulation else native_bf16  # emulation answers yes everywhere
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    monkeypatch.delenv("KR_PRECISION", raising=False)
    monkeypatch.delenv("KR_BF16", raising=False)
    return make


@pytest.mark.parametrize("capability, native, expected", [
    ((9, 0), True, "bf16"),    # H100
    ((8, 0), True, "bf16"),    # A100
    ((7, 5), False, "fp16"),   # T4: Colab's free GPU
    ((7, 0), False, "fp16"),   # V100
])
def test_cuda_precision_follows_native_support(fake_cuda, capability, native, expected):
    fake_cuda(capability, native)
    assert runtime.precision("cuda") == expected
    assert runtime.bf16("cuda") is (expected == "bf16")


@pytest.fixture
def recorded(monkeypatch):
    """Record what autocast and GradScaler are asked for (no CUDA here to build them)."""
    monkeypatch.setattr(torch, "autocast", lambda device_type, dtype=None, enabled=True: (device_type, dtype, enabled))
    monkeypatch.setattr(torch.amp, "GradScaler", lambda device="cuda", enabled=True: (device, enabled))


def test_t4_gets_fp16_autocast_and_an_active_scaler(fake_cuda, recorded):
    fake_cuda((7, 5), False)
    assert runtime.autocast("cuda") == ("cuda", torch.float16, True)
    assert runtime.grad_scaler("cuda") == ("cuda", True)


def test_h100_gets_bf16_and_no_scaler(fake_cuda, recorded):
    fake_cuda((9, 0), True)
    assert runtime.autocast("cuda") == ("cuda", torch.bfloat16, True)
    assert runtime.grad_scaler("cuda") == ("cuda", False)


def test_cpu_without_native_bf16_is_fp32(monkeypatch):
    monkeypatch.delenv("KR_PRECISION", raising=False)
    monkeypatch.delenv("KR_BF16", raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert runtime.precision("cpu") == "fp32"
    assert not runtime.autocast("cpu")._enabled
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert runtime.precision("cpu") == "bf16"


def test_environment_overrides(monkeypatch, fake_cuda):
    fake_cuda((9, 0), True)
    monkeypatch.setenv("KR_BF16", "0")
    assert runtime.precision("cuda") == "fp32"
    monkeypatch.setenv("KR_PRECISION", "fp16")
    assert runtime.precision("cpu") == "fp16"
    monkeypatch.setenv("KR_PRECISION", "half")
    with pytest.raises(ValueError, match="KR_PRECISION"):
        runtime.precision("cpu")


def test_fp16_training_step_runs_with_the_scaler(monkeypatch):
    """The classifier loop under fp16 autocast with the scaler (CPU autocast supports float16)."""
    from kr_utils import config
    monkeypatch.setenv("KR_PRECISION", "fp16")
    monkeypatch.setattr(torch.amp, "GradScaler", lambda *a, enabled=True, **k: torch.amp.grad_scaler.GradScaler(
        "cpu", enabled=enabled))
    x, y = torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))
    model, hist = distill.train_classifier(models.build_classifier("simple_cnn"), (x, y), (x[:8], y[:8]),
                                           config.ClassifierRecipe(arch="simple_cnn", epochs=1, batch_size=16, lr=0.001, patience=2),
                                           seed=0, device="cpu")
    assert len(hist["train_loss"]) == 1 and torch.isfinite(torch.tensor(hist["train_loss"])).all()
