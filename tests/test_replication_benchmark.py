"""benchmarks/replication.py at the smoke profile on the CPU: one replication end to end and
the levers on and off, written as JSON with device and date (the GPU figures come from a GPU run)."""
import importlib.util
import json
from pathlib import Path

import pytest

from kr_utils import get_config

ROOT = Path(__file__).resolve().parents[1]


def _benchmark():
    spec = importlib.util.spec_from_file_location("replication", ROOT / "benchmarks" / "replication.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_one_replication_at_smoke_writes_every_stage_and_lever(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("KR_DATA_DIR", str(mnist_dir))  # real MNIST, never a download
    out = tmp_path / "replication.json"
    _benchmark().main(["--profile", "smoke", "--out", str(out), "--lever-steps", "3", "--warm-steps", "1",
                       "--profile-steps", "2", "--group-seeds", "2", "--levers", "foreach_ema", "fused_optimizer"])
    r = json.loads(out.read_text())
    assert r["profile"] == "smoke" and r["environment"]["date"] and r["environment"]["device"]
    stages = r["stages"]
    assert list(stages) == ["teacher", "diffusion", "synthetic_set", "student"]
    assert all(s["seconds"] > 0 for s in stages.values())
    assert 0.0 <= stages["teacher"]["test_accuracy"] <= 1.0 and 0.0 <= stages["student"]["test_accuracy"] <= 1.0
    smoke = get_config("smoke")
    assert stages["synthetic_set"]["kept"] == 10 * smoke.synth.per_class
    assert stages["diffusion"]["steps_per_s"] > 0 and stages["synthetic_set"]["digits_per_s"] > 0
    per_step = stages["synthetic_set"]["per_sampler_step"]
    assert per_step["steps"] == smoke.sampler.num_steps and per_step["cpu_op_calls_per_step"] > 0
    assert r["end_to_end_s"] >= sum(s["seconds"] for s in stages.values())
    # each lever asked for is measured flipped against the defaults (on by default on a CPU:
    # the foreach EMA; off: the fused optimiser), and all of them off
    assert set(r["lever_runs"]) == {"defaults", "all_off", "foreach_ema_off", "fused_optimizer_on"}
    assert r["lever_runs"]["fused_optimizer_on"]["levers"]["fused_optimizer"]
    for run in r["lever_runs"].values():
        for stage in ("unet", "teacher"):
            assert run[stage]["steps_per_s"] > 0 and run[stage]["cpu_op_calls_per_step"] > 0
    assert not any(r["lever_runs"]["all_off"]["levers"].values())
    assert r["group_seeds"]["together_s"] > 0 and r["group_seeds"]["one_after_another_s"] > 0


def test_impossible_benchmark_arguments_are_refused_before_any_training(tmp_path):
    with pytest.raises(SystemExit, match="lever-steps"):
        _benchmark().main(["--profile", "smoke", "--out", str(tmp_path / "r.json"), "--lever-steps", "0"])
    with pytest.raises(SystemExit, match="unknown"):
        _benchmark().main(["--profile", "smoke", "--out", str(tmp_path / "r.json"), "--levers", "turbo"])
    with pytest.raises(ValueError, match="batch_sz"):
        _benchmark().main(["--profile", "smoke", "--out", str(tmp_path / "r.json"), "--set", "student__batch_sz=512"])
    assert not (tmp_path / "r.json").exists()
