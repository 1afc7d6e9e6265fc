"""The ``parallel_runs`` lever on a CPU: independent classifier runs side by side in worker
processes (:mod:`kr_utils.workers`) against one after another with all the threads.

Two measures, both on this machine:

1. **steps**: training steps per second of each classifier architecture (batch 64, bf16 where
   the profile uses it), one process with all the torch threads against ``k`` processes of
   ``threads // k`` threads each, started together (the total over the processes);
2. **runs**: :func:`kr_utils.studies.run_classifiers` on ``--runs`` seeds of the cpu profile's
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
    print(json.dumps({"s_per_step": (time.perf_counter() - t0) / steps}))


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
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if min(args.steps, args.runs, args.items, args.epochs) < 1:
        p.error("--steps, --runs, --items and --epochs must be positive")
    import torch

    from kr_utils import runtime, store, workers

    threads, n_cores = torch.get_num_threads(), workers.cores()
    report = {"environment": runtime.environment(), "cores": n_cores, "threads": threads, "steps": {}}
    for arch in args.archs:
        one = steps_side_by_side(arch, 1, threads, args.steps)
        side = {k: steps_side_by_side(arch, k, threads, args.steps) for k in range(2, n_cores + 2)}
        report["steps"][arch] = {"one_process_steps_per_s": one,
                                 **{f"{k}_processes_steps_per_s": v for k, v in side.items()},
                                 **{f"{k}_processes_speedup": v / one for k, v in side.items()}}
        print(arch, json.dumps({k: round(v, 2) for k, v in report["steps"][arch].items()}), flush=True)
    report["runs"] = runs(args.runs, args.items, args.epochs)
    print("runs", json.dumps({k: v for k, v in report["runs"].items() if k != "recipe"}), flush=True)
    if args.out:
        store.atomic_write_text(args.out, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        main()
