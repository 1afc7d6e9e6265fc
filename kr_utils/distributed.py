"""Stage: past one process (the synth stage's level). The labelled synthetic set generated in
shards over ranks, and the U-Net trained with DistributedDataParallel, both launched with
``torchrun`` (one node, several GPUs; several nodes with torchrun's usual rendezvous flags)::

    torchrun --standalone --nproc_per_node=4 -m kr_utils.distributed train --profile gpu
    torchrun --standalone --nproc_per_node=4 -m kr_utils.distributed generate --profile gpu
    torchrun --nnodes=2 --node_rank=0 --rdzv_endpoint=HOST:29500 --nproc_per_node=8 \\
        -m kr_utils.distributed generate --profile gpu

**Sharding.** Rank r of R generates, for every class, its own disjoint slice of the class quota
(:func:`shard_quota`) with its own generator seed (:func:`shard_seed`), through the one
:func:`kr_utils.synth.build_synthetic_set`; rank 0 gathers the shards and merges them
(:func:`merge_shards`: class by class, in rank order). :func:`build_sharded_set` runs the same
shards one after another in one process, and the merged set is byte for byte the same
(``tests/test_distributed.py`` runs two gloo processes on the CPU and compares the idx files).

**Training.** Each rank draws its own batches (generator seed ``seed + rank``); DDP averages the
gradients, so every rank holds the same weights; rank 0 writes the checkpoint.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np
import torch

from . import synth
from .config import SynthConfig


def shard_quota(per_class: int, rank: int, world: int) -> int:
    """Digits per class that rank ``rank`` of ``world`` generates: ``per_class`` split as evenly as
    possible, the first ``per_class % world`` ranks one more."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"rank must be in [0, world) with world >= 1, got rank={rank}, world={world}")
    return per_class // world + (1 if rank < per_class % world else 0)


def shard_seed(seed: int, rank: int) -> int:
    """The generator seed of shard ``rank``: distinct per rank, the same in any process layout."""
    return seed * 1_000_003 + rank


def build_shard(model, sampler, teacher, config: SynthConfig, sampling, *, seed: int, rank: int, world: int,
                device, progress: bool = True) -> dict | None:
    """Shard ``rank`` of the synthetic set: :func:`kr_utils.synth.build_synthetic_set` for its
    quota of every class, with its own seed (None when its quota is 0)."""
    quota = shard_quota(config.per_class, rank, world)
    if quota == 0:
        return None
    return synth.build_synthetic_set(model, sampler, teacher, dataclasses.replace(config, per_class=quota), sampling,
                                     seed=shard_seed(seed, rank), device=device, progress=progress)


def merge_shards(shards: list[dict | None]) -> dict:
    """One set from the shards (in rank order): the kept digits class by class, each class in
    rank order; the generation log concatenated; counts summed; thresholds and rates recomputed."""
    shards = [s for s in shards if s is not None]
    if not shards:
        raise ValueError("no shard to merge")
    cat = lambda key: np.concatenate([s[key] for s in shards])  # noqa: E731
    labels = cat("labels")
    order = np.argsort(labels, kind="stable")  # class-sorted, ties in rank order
    merged = {k: cat(k)[order] for k in ("images", "labels", "requested", "logits")}
    merged.update(generated_requested=cat("generated_requested"), generated_logits=cat("generated_logits"),
                  generated=int(sum(s["generated"] for s in shards)), rounds=max(s["rounds"] for s in shards),
                  thresholds=[t for s in shards for t in s["thresholds"]],
                  final_threshold=min(s["final_threshold"] for s in shards),
                  complete=all(s["complete"] for s in shards), threshold=shards[0]["threshold"],
                  label_mode=shards[0]["label_mode"], mode=shards[0]["mode"])
    conf = torch.as_tensor(merged["generated_logits"]).softmax(1).max(1).values.numpy()
    merged["acceptance_rate"] = float((conf >= merged["final_threshold"]).mean())
    merged["agreement"] = (float((merged["logits"].argmax(1) == merged["requested"]).mean())
                           if merged["mode"] == "balanced" else None)
    return merged


def build_sharded_set(model, sampler, teacher, config: SynthConfig, sampling, *, seed: int, world: int, device,
                      progress: bool = True) -> dict:
    """The set that ``world`` ranks generate, made by one process: every shard in turn, merged."""
    return merge_shards([build_shard(model, sampler, teacher, config, sampling, seed=seed, rank=r, world=world,
                                     device=device, progress=progress) for r in range(world)])


# ------------------------------------------------------------------------------- torchrun entry


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
    from . import checkpoints, diffusion, get_config, store

    cfg = get_config(args.profile)
    out = store.artifact_dir(cfg.run)
    unet = checkpoints.load_model(out / "diffusion.pt", "diffusion", device)
    teacher = checkpoints.load_model(out / "teacher.pt", "teacher", device)
    sampler = diffusion.build_sampler(cfg.sampler, checkpoints.load_schedule(out / "diffusion.pt"))
    shard = build_shard(unet, sampler, teacher, cfg.synth, cfg.sampler, seed=cfg.seed, rank=rank, world=world,
                        device=device, progress=rank == 0)
    gathered = [None] * world
    dist.all_gather_object(gathered, shard)  # plain numpy arrays and numbers
    if rank == 0:
        merged = merge_shards(gathered)
        dest = Path(args.out) if args.out else out / f"synthetic_sharded_{world}"
        synth.save_synthetic_set(dest, merged, extra={"world": world, "seed": cfg.seed})
        print(f"{len(merged['labels'])} digits from {world} ranks -> {dest}", flush=True)


def _train(args, dist, rank, world, device):
    from torch.nn.parallel import DistributedDataParallel

    from . import data, diffusion, get_config, pipeline, store
    from .checkpoints import save_checkpoint

    cfg = get_config(args.profile)
    dcfg = cfg.diffusion if args.steps is None else dataclasses.replace(cfg.diffusion, steps=args.steps,
                                                                        milestones=(args.steps,))
    x0, y0 = data.train_tensors(dcfg.train_subset)
    model = pipeline.new_unet(dcfg, cfg.seed).to(device)  # the same initial weights on every rank

    def wrap(m):
        return DistributedDataParallel(m, device_ids=[device.index] if device.type == "cuda" else None)

    run = diffusion.train_diffusion(model, x0, y0, dcfg, seed=cfg.seed + rank, device=device, wrap=wrap,
                                    desc=f"diffusion (rank {rank} of {world})", progress=rank == 0)
    if rank == 0:
        dest = Path(args.out) if args.out else store.artifact_dir(cfg.run) / f"diffusion_ddp_{world}.pt"
        save_checkpoint(dest, run.model, kind="diffusion", config={**dcfg.as_dict(), "seed": cfg.seed},
                        profile=cfg.run, seed=cfg.seed,
                        extra={"unet": run.model.config, "schedule": diffusion.NoiseSchedule.from_config(dcfg).spec,
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
