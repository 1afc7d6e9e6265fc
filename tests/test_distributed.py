"""Past one process (kr_utils.distributed): two gloo processes launched by torchrun on the CPU
generate the smoke profile's synthetic set in shards, and the merged set is byte for byte the
set one process makes from the same shards and seeds; DDP trains the U-Net on two ranks."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kr_utils import checkpoints, diffusion, get_config, pipeline, synth


def test_each_rank_gets_a_disjoint_even_slice_of_every_class_quota():
    for per_class, world in ((10, 2), (10, 3), (7, 4), (3, 5)):
        quotas = [synth.shard_quota(per_class, r, world) for r in range(world)]
        assert sum(quotas) == per_class and max(quotas) - min(quotas) <= 1
    assert len({synth.shard_seed(0, r) for r in range(8)}) == 8
    with pytest.raises(ValueError, match="rank"):
        synth.shard_quota(10, 2, 2)


def _torchrun(args, env, timeout=240):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "kr_utils.distributed", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=Path(__file__).resolve().parents[1])


@pytest.fixture
def smoke_models(mnist_dir, monkeypatch):
    monkeypatch.setenv("KR_DATA_DIR", str(mnist_dir))
    cfg = get_config("smoke")
    return cfg, pipeline.teacher(cfg, "cpu"), pipeline.diffusion_model(cfg, "cpu")


def test_two_gloo_ranks_make_the_one_process_set_byte_for_byte(smoke_models, tmp_path):
    cfg, t_path, d_path = smoke_models
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = _torchrun(["generate", "--profile", "smoke", "--out", str(tmp_path / "ranks")], env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun process (float results may depend on the thread count)
    try:
        unet = checkpoints.load_model(d_path, "diffusion", "cpu")
        teacher = checkpoints.load_model(t_path, "teacher", "cpu")
        sampler = diffusion.build_sampler(cfg.sampler, checkpoints.load_schedule(d_path))
        one = synth.build_sharded_set(synth.DigitSource(unet, sampler, teacher), cfg.synth, cfg.sampler, seed=cfg.seed, world=2,
                                            device="cpu", progress=False)
    finally:
        torch.set_num_threads(threads)
    synth.save_synthetic_set(tmp_path / "one", one)
    for name in (synth.IMAGES_FILE, synth.LABELS_FILE, "teacher_logits.npy", "requested.npy"):
        assert (tmp_path / "ranks" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
    merged = synth.load_synthetic_set(tmp_path / "ranks")
    assert merged["summary"]["class_counts"] == [cfg.synth.per_class] * 10 and merged["summary"]["world"] == 2
    # two shards are two different draws, not one draw twice
    a, b = (synth.build_shard(synth.DigitSource(unet, sampler, teacher), cfg.synth, cfg.sampler, seed=cfg.seed, rank=r, world=2,
                                    device="cpu", progress=False) for r in (0, 1))
    assert not (a["images"][:5] == b["images"][:5]).all()


def test_ddp_trains_the_unet_on_two_ranks(smoke_models, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    dest = tmp_path / "ddp.pt"
    done = _torchrun(["train", "--profile", "smoke", "--steps", "4", "--out", str(dest)], env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ckpt = checkpoints.load_checkpoint(dest, "diffusion", "smoke")
    assert ckpt["extra"]["world"] == 2 and len(ckpt["extra"]["losses"]) == 4
    model = checkpoints.load_model(dest, "diffusion", "cpu")
    assert all(torch.isfinite(p).all() for p in model.parameters())
