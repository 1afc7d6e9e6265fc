"""The ``parallel_runs`` lever on a CPU: independent classifier runs side by side in worker
processes (:mod:`kr_utils.workers`) against one after another with all the threads.

Two measures, both on this machine:

1. **steps**: training steps per second of each classifier architecture (batch 64, bf16 where
   the profile uses it), one process with all the torch threads against ``k`` processes of
   ``threads // k`` threads each, started together (the total over the processes);
2. **stages** (chapter 10's): the teacher's training steps (the ResNet, batch 64) and the U-Net's
   (batch 128), in the proportion of the cpu profile's runs (6 epochs of 55,000 images against
   3,000 steps), each ``1/--stage-scale`` of it, side by side in two 1-thread processes against
   one after another with all the threads (measured, not adopted: the U-Net with one thread is
   the longer run, and the pair took longer than the two one after another); and the synthetic
   set's draw (the profile's sampler, batch 500, a random U-Net: images per second), two shards
   side by side against one draw with all the threads (``synth.shards``, adopted);
3. **runs**: :func:`kr_utils.studies.run_classifiers` on ``--runs`` seeds of the cpu profile's
   student recipe (a ResNet, soft targets) on ``--items`` random images for ``--epochs``
   epochs, the lever on against off: wall time, and the largest difference of their accuracies
   and weights. The images and labels are random, so the runs learn nothing and their small
   differences of rounding (one thread against two) grow over the epochs; that the runs are the
   same up to rounding is checked on a short run by ``tests/test_workers.py``.

    python benchmarks/parallel_runs.py --out results/cpu/parallel_runs_benchmark.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def child(arch: str, threads: int, steps: int) -> None:
    """One process: ``steps`` timed training steps of ``arch`` with ``threads`` threads."""
    import torch

    from kr_utils import models, runtime
    from kr_utils.distill import distillation_loss

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    dev = torch.device("cpu")
    m = models.build_classifier(arch).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    x = runtime.channels_last(torch.randn(64, 1, 28, 28))
    y = torch.randint(0, 10, (64,))

    def step():
        with runtime.autocast(dev):
            out = m(x).float()
        loss = distillation_loss(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(10):
        step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = time.perf_counter() - t0
    print(json.dumps({"s_per_step": seconds / steps, "seconds": seconds}))


def unet_child(mode: str, threads: int, steps: int) -> None:
    """One process: ``steps`` timed U-Net training steps (``mode`` "unet") or batches of 500
    drawn images ("draw") with ``threads`` threads; prints its wall seconds."""
    import torch

    from kr_utils import diffusion, get_config, pipeline, runtime

    torch.set_num_threads(threads)
    cfg = get_config("cpu")
    dev, model = torch.device("cpu"), pipeline.new_unet(cfg.diffusion, 0, cfg)
    schedule = diffusion.NoiseSchedule.from_config(cfg.diffusion)
    g = torch.Generator().manual_seed(0)
    if mode == "unet":
        opt = torch.optim.AdamW(model.parameters(), cfg.diffusion.lr)
        x, y = torch.randn(cfg.diffusion.batch_size, 1, 28, 28), torch.randint(0, 10, (cfg.diffusion.batch_size,))

        def step():
            with runtime.autocast(dev):
                loss = diffusion.diffusion_loss(model, x, y, schedule, cfg.diffusion.p_uncond, generator=g)
            opt.zero_grad()
            loss.float().backward()
            opt.step()
    else:
        model.eval()
        sampler = diffusion.build_sampler(cfg.sampler, schedule)
        labels = torch.arange(cfg.sampler.batch_size) % 10

        def step():
            with torch.no_grad():
                diffusion.generate(model, sampler, labels, cfg.sampler.guidance_w, g)
    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def _started(args: list[list[str]]) -> list[float]:
    """Wall seconds of each child, all started together."""
    procs = [subprocess.Popen([sys.executable, __file__, *a], stdout=subprocess.PIPE, text=True) for a in args]
    outs = [p.communicate(timeout=1800)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a timing process of {args} failed")
    return [json.loads(o.strip().splitlines()[-1])["seconds"] for o in outs]


def stages(threads: int, scale: int) -> dict:
    """Chapter 10's teacher beside its U-Net, and its set in two shards, against one after another."""
    teacher_steps, unet_steps = max(1, 6 * 55_000 // 64 // scale), max(1, 3000 // scale)
    alone = {"teacher": _started([["--timed", "resnet_preact", str(threads), str(teacher_steps)]])[0],
             "unet": _started([["--unet", "unet", str(threads), str(unet_steps)]])[0]}
    side = _started([["--timed", "resnet_preact", "1", str(teacher_steps)], ["--unet", "unet", "1", str(unet_steps)]])
    batches = max(4, 240 // scale)  # 12 batches of 500 at the default scale (2 of each shard were too few to time)
    one_draw = _started([["--unet", "draw", str(threads), str(batches)]])[0]
    shards = _started([["--unet", "draw", "1", str(batches // 2)], ["--unet", "draw", "1", str(batches - batches // 2)]])
    return {"scale": scale, "teacher_steps": teacher_steps, "unet_steps": unet_steps,
            "teacher_then_unet_s": alone["teacher"] + alone["unet"], "teacher_alone_s": alone["teacher"],
            "unet_alone_s": alone["unet"], "side_by_side_s": max(side), "side_by_side_each_s": side,
            "teacher_and_unet_speedup": (alone["teacher"] + alone["unet"]) / max(side),
            "draw_images": 500 * batches, "one_draw_s": one_draw, "two_shards_s": max(shards),
            "one_draw_images_per_s": 500 * batches / one_draw, "two_shards_images_per_s": 500 * batches / max(shards),
            "shards_speedup": one_draw / max(shards)}


def steps_side_by_side(arch: str, k: int, threads: int, steps: int) -> float:
    """Training steps per second in all of ``k`` processes of ``threads // k`` threads each."""
    procs = [subprocess.Popen([sys.executable, __file__, "--child", arch, str(max(1, threads // k)), str(steps)],
                              stdout=subprocess.PIPE, text=True) for _ in range(k)]
    outs = [p.communicate(timeout=900)[0] for p in procs]
    if any(p.returncode for p in procs):
        raise RuntimeError(f"a timing process of {arch} failed")
    return sum(1 / json.loads(o.strip().splitlines()[-1])["s_per_step"] for o in outs)


def runs(n_runs: int, items: int, epochs: int) -> dict:
    import torch

    from kr_utils import get_config, runtime, studies
    from kr_utils.studies import RunJob

    recipe = get_config("cpu").student.recipe(epochs=epochs)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(items, 1, 28, 28, generator=g) * 2 - 1
    y, logits = torch.randint(0, 10, (items,), generator=g), torch.randn(items, 10, generator=g)
    n_val = items // 10
    train, val = (x[n_val:], y[n_val:], logits[n_val:]), (x[:n_val], y[:n_val], logits[:n_val])
    test = (x[:n_val], y[:n_val])
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for on in (True, False):
            jobs = [RunJob(train, val, s, Path(tmp) / f"{on}_{s}.pt", "bench", f"seed {s}") for s in range(n_runs)]
            with runtime.use_levers(parallel_runs=on):
                t0 = time.perf_counter()
                out[on] = (studies.run_classifiers(jobs, recipe, device="cpu", test=test, test_curve=False),
                           time.perf_counter() - t0)
    (side, t_on), (alone, t_off) = out[True], out[False]
    diff = max((a["state_dict"][k].float() - b["state_dict"][k].float()).abs().max().item()
               for a, b in zip(side, alone) for k in a["state_dict"])
    return {"recipe": recipe.as_dict(), "runs": n_runs, "items": items, "side_by_side_s": t_on,
            "one_after_another_s": t_off, "speedup": t_off / t_on,
            "max_accuracy_difference": max(abs(a["accuracy"] - b["accuracy"]) for a, b in zip(side, alone)),
            "max_weight_difference": diff}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", nargs="+", default=["resnet_preact", "simple_cnn", "compressed_cnn"])
    p.add_argument("--steps", type=int, default=300, help="timed training steps per process")
    p.add_argument("--runs", type=int, default=3, help="runs of the end-to-end measure")
    p.add_argument("--items", type=int, default=3000, help="images each run learns from")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--stage-scale", type=int, default=20, help="the stages measure runs 1/this of chapter 10's")
    p.add_argument("--only", choices=["steps", "stages", "runs"], nargs="+", default=["steps", "stages", "runs"])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if min(args.steps, args.runs, args.items, args.epochs, args.stage_scale) < 1:
        p.error("--steps, --runs, --items, --epochs and --stage-scale must be positive")
    import torch

    from kr_utils import runtime, store

    threads, n_cores = torch.get_num_threads(), runtime.cores()
    # a measure not run now keeps its last figures; each measure carries the environment it ran in
    previous = json.loads(args.out.read_text()) if args.out and args.out.exists() else {}
    report = {**previous, "environment": runtime.environment(), "cores": n_cores, "threads": threads}
    report["measured_in"] = {**previous.get("measured_in", {k: previous["environment"] for k in ("steps", "runs")
                                                             if k in previous}),
                             **{k: runtime.environment() for k in args.only}}
    if "steps" in args.only:
        report["steps"] = {}
    for arch in args.archs if "steps" in args.only else ():
        one = steps_side_by_side(arch, 1, threads, args.steps)
        side = {k: steps_side_by_side(arch, k, threads, args.steps) for k in range(2, n_cores + 2)}
        report["steps"][arch] = {"one_process_steps_per_s": one,
                                 **{f"{k}_processes_steps_per_s": v for k, v in side.items()},
                                 **{f"{k}_processes_speedup": v / one for k, v in side.items()}}
        print(arch, json.dumps({k: round(v, 2) for k, v in report["steps"][arch].items()}), flush=True)
    if "stages" in args.only:
        report["stages"] = stages(threads, args.stage_scale)
        print("stages", json.dumps(report["stages"]), flush=True)
    if "runs" in args.only:
        report["runs"] = runs(args.runs, args.items, args.epochs)
        print("runs", json.dumps({k: v for k, v in report["runs"].items() if k != "recipe"}), flush=True)
    if args.out:
        store.atomic_write_text(args.out, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] in ("--child", "--timed"):
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) == 5 and sys.argv[1] == "--unet":
        unet_child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
