"""Stage: past one process, the torchrun entry (above the pipeline, whose U-Net it builds). The
labelled synthetic set generated in shards over ranks, and the U-Net trained with
DistributedDataParallel, both launched with ``torchrun`` (one node, several GPUs; several nodes
with torchrun's usual rendezvous flags)::

    torchrun --standalone --nproc_per_node=4 -m kr_utils.distributed train --profile gpu
    torchrun --standalone --nproc_per_node=4 -m kr_utils.distributed generate --profile gpu
    torchrun --nnodes=2 --node_rank=0 --rdzv_endpoint=HOST:29500 --nproc_per_node=8 \\
        -m kr_utils.distributed generate --profile gpu

**Sharding** is the synth stage's (:func:`kr_utils.synth.build_shard`): rank r of R generates,
for every class, its own disjoint slice of the class quota (:func:`kr_utils.synth.shard_quota`)
with its own generator seed (:func:`kr_utils.synth.shard_seed`); rank 0 gathers the shards and
merges them (:func:`kr_utils.synth.merge_shards`: class by class, in rank order).
:func:`kr_utils.synth.build_sharded_set` runs the same shards one after another in one process,
and the merged set is byte for byte the same (``tests/test_distributed.py`` runs two gloo
processes on the CPU and compares the idx files).

**Training.** Each rank draws its own batches (generator seed ``seed + rank``); DDP averages the
gradients, so every rank holds the same weights; rank 0 writes the checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import torch

from . import checkpoints, data, diffusion, pipeline, store, synth
from .config import get_config


def _init():
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    rank, world = dist.get_rank(), dist.get_world_size()
    local = int(os.environ.get("LOCAL_RANK", 0))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)
        return dist, rank, world, torch.device("cuda", local)
    return dist, rank, world, torch.device("cpu")


def _generate(args, dist, rank, world, device):
    cfg = get_config(args.profile)
    out = store.artifact_dir(cfg.run)
    unet = checkpoints.load_model(out / "diffusion.pt", "diffusion", device)
    teacher = checkpoints.load_model(out / "teacher.pt", "teacher", device)
    sampler = diffusion.build_sampler(cfg.sampler, checkpoints.load_schedule(out / "diffusion.pt"))
    shard = synth.build_shard(synth.DigitSource(unet, sampler, teacher), cfg.synth, cfg.sampler, seed=cfg.seed, rank=rank, world=world,
                              device=device, progress=rank == 0)
    gathered = [None] * world
    dist.all_gather_object(gathered, shard)  # plain numpy arrays and numbers
    if rank == 0:
        merged = synth.merge_shards(gathered)
        dest = Path(args.out) if args.out else out / f"synthetic_sharded_{world}"
        synth.save_synthetic_set(dest, merged, extra={"world": world, "seed": cfg.seed})
        print(f"{len(merged['labels'])} digits from {world} ranks -> {dest}", flush=True)


def _train(args, dist, rank, world, device):
    from torch.nn.parallel import DistributedDataParallel

    cfg = get_config(args.profile)
    dcfg = cfg.diffusion if args.steps is None else dataclasses.replace(cfg.diffusion, steps=args.steps,
                                                                        milestones=(args.steps,))
    x0, y0 = data.fit_tensors(cfg, dcfg.train_subset)
    model = pipeline.new_unet(dcfg, cfg.seed).to(device)  # the same initial weights on every rank

    def wrap(m):
        return DistributedDataParallel(m, device_ids=[device.index] if device.type == "cuda" else None)

    run = diffusion.train_diffusion(model, x0, y0, dcfg, seed=cfg.seed + rank, device=device,
                                    options=diffusion.DiffusionOptions(wrap=wrap, desc=f"diffusion (rank {rank} of {world})",
                                                                       progress=rank == 0))
    if rank == 0:
        dest = Path(args.out) if args.out else store.artifact_dir(cfg.run) / f"diffusion_ddp_{world}.pt"
        checkpoints.save_checkpoint(
            dest, run.model, kind="diffusion", config={**dcfg.as_dict(), "seed": cfg.seed}, profile=cfg.run,
            seed=cfg.seed, extra={"unet": run.model.config, "schedule": diffusion.NoiseSchedule.from_config(dcfg).spec,
                                  "losses": run.losses, "world": world})
        print(f"trained on {world} ranks -> {dest}", flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description="Launch with torchrun: see the module's docstring.")
    p.add_argument("command", choices=("generate", "train"))
    p.add_argument("--profile", default=None)
    p.add_argument("--out", default=None, help="the set's folder (generate) or the checkpoint (train)")
    p.add_argument("--steps", type=int, default=None, help="train: U-Net steps instead of the profile's")
    args = p.parse_args(argv)
    dist, rank, world, device = _init()
    try:
        (_generate if args.command == "generate" else _train)(args, dist, rank, world, device)
        dist.barrier()
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
