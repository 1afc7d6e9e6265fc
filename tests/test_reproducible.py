"""Same seed, same bytes: on the CPU, two builds of the teacher, the diffusion model (with its
milestone checkpoints) and the synthetic set at the smoke profile give byte-identical
checkpoints and idx files. Wall-clock times live in JSON sidecars, not in the checkpoints."""
import hashlib
from pathlib import Path

import kr_utils
from kr_utils import checkpoints, pipeline


def _build(root: Path, monkeypatch) -> dict:
    monkeypatch.setenv("KR_ARTIFACTS", str(root))
    cfg = kr_utils.get_config("smoke")
    pipeline.make_synthetic_set(cfg, "cpu", cfg.seed)  # teacher and diffusion model first
    out = root / "smoke"
    files = sorted(out.glob("*.pt")) + sorted((out / "synthetic").glob("*.gz")) + \
        sorted((out / "synthetic").glob("*.npy"))
    return {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_same_seed_same_bytes(tmp_path, monkeypatch, mnist_dir):
    monkeypatch.setenv("KR_DATA_DIR", str(mnist_dir))
    first, second = _build(tmp_path / "a", monkeypatch), _build(tmp_path / "b", monkeypatch)
    assert {"teacher.pt", "diffusion.pt", "synthetic/train-images-synthetic-idx3-ubyte.gz"} <= set(first)
    assert len([k for k in first if k.startswith("diffusion_step")]) == 2
    assert first == second, {k for k in first if first[k] != second.get(k)}


def test_times_live_beside_the_checkpoint(tmp_path):
    import torch
    path = tmp_path / "m.pt"
    checkpoints.save_checkpoint(path, torch.nn.Linear(1, 1), kind="student", config={}, profile="smoke", seed=0,
                              extra={"train_time_s": 1.5, "history": {"val_acc": [0.5], "epoch_time_s": [0.7]}})
    raw = torch.load(path, weights_only=True)
    assert "train_time_s" not in raw["extra"] and "epoch_time_s" not in raw["extra"]["history"]
    ckpt = checkpoints.load_checkpoint(path, "student")
    assert ckpt["extra"] == {"train_time_s": 1.5, "history": {"val_acc": [0.5], "epoch_time_s": [0.7]}}
