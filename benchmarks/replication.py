"""One replication, end to end, in one process: teacher -> diffusion model -> labelled synthetic
digits -> student, at a profile's sizes (the gpu profile's: 60,000 digits), timed per stage.

For each stage it records the seconds, the throughput (images/s for the classifiers, steps/s
for the U-Net, digits/s for generation), and the teacher's and student's accuracy on the real
test set. Then the speed levers of :func:`kr_utils.runtime.levers`, each flipped in turn against
the device's defaults (on to off, off to on), and all off, on short runs of the U-Net and the teacher, with kernel launches (or CPU
operator calls) per step and, on a GPU, the fraction of a step the GPU is busy and the peak
GPU memory; and the ``group_seeds`` lever as several teachers trained together against one
after another. The JSON is written after every stage (device and date inside), so an
interrupted run keeps what it measured.

    python benchmarks/replication.py --profile gpu          # -> results/gpu/replication.json
    python benchmarks/replication.py --profile smoke --out /tmp/r.json --lever-steps 4

Nothing is read from or written to the artifacts folder: the models are trained here.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import kr_utils  # noqa: E402
from kr_utils import data, diffusion, distill, evaluate, pipeline, runtime, store, synth  # noqa: E402


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class Stopwatch:
    """Wall seconds around a block, the device synchronised at both ends."""

    def __init__(self, device):
        self.device, self.seconds = device, None

    def __enter__(self):
        _sync(self.device)
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        _sync(self.device)
        self.seconds = time.perf_counter() - self.t0


def peak_memory(device) -> dict:
    if device.type != "cuda":
        return {"peak_gpu_memory_gib": None}
    return {"peak_gpu_memory_gib": torch.cuda.max_memory_allocated(device) / 2 ** 30}


def _reset_peak(device):
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def step_profile(prof, steps: int, wall_s: float, device) -> dict:
    """Kernel launches (a GPU) or operator calls (a CPU) per step from a torch.profiler run
    over ``steps`` steps, and on a GPU the fraction of the wall time its kernels took."""
    try:
        events = prof.key_averages()
        if device.type == "cuda":
            kernels = [e for e in events if str(getattr(e, "device_type", "")).endswith("CUDA")]
            busy_us = sum(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) for e in kernels)
            return {"kernel_launches_per_step": sum(e.count for e in kernels) / steps,
                    "gpu_busy_fraction": busy_us / 1e6 / wall_s if wall_s else None}
        top = [e for e in events if e.key.startswith("aten::")]
        return {"cpu_op_calls_per_step": sum(e.count for e in top) / steps}
    except Exception as err:  # a profiler that reports otherwise: say so in the JSON, keep the run
        return {"profile_error": repr(err)}


def timed_steps(train, timed: int, warm: int, profile_steps: int, device) -> dict:
    """Run ``train(steps, after_step)``, a training run of at least ``warm + timed +
    profile_steps`` steps: the first ``warm`` are not timed (compilation, first calls), the
    next ``timed`` are, and the last ``profile_steps`` run under torch.profiler."""
    marks = {}
    activities = [torch.profiler.ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    prof = torch.profiler.profile(activities=activities)
    total = warm + timed + profile_steps

    def after_step(step, _model):
        if step == warm:
            _sync(device); marks["t0"] = time.perf_counter()
        if step == warm + timed:
            _sync(device); marks["t1"] = time.perf_counter()
            if profile_steps:
                prof.start()
        if step == total and profile_steps:
            _sync(device); prof.stop(); marks["p1"] = time.perf_counter()

    start = time.perf_counter()
    train(total, after_step)
    out = {"timed_steps": timed, "warm_up_steps": warm, "warm_up_s": marks["t0"] - start,
           "steps_per_s": timed / (marks["t1"] - marks["t0"])}
    if profile_steps:
        out.update(step_profile(prof, profile_steps, marks["p1"] - marks["t1"], device))
    return out


def sampler_profile(unet, sampler, sampling, seed: int, device) -> dict:
    """Kernel launches (GPU) or operator calls (CPU) per reverse step, and the GPU-busy fraction,
    over one batch of the profile's sampler (after a warm-up batch)."""
    labels = torch.arange(10).repeat_interleave(-(-sampling.batch_size // 10))[:sampling.batch_size]
    gen = torch.Generator(device=device.type).manual_seed(seed)
    diffusion.generate(unet, sampler, labels, sampling.guidance_w, gen)  # warm-up
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.profiler.profile(activities=activities) as prof, Stopwatch(device) as sw:
        diffusion.generate(unet, sampler, labels, sampling.guidance_w, gen)
    return {"steps": len(sampler.timesteps), "batch_size": len(labels),
            **step_profile(prof, len(sampler.timesteps), sw.seconds, device)}


def unet_steps(cfg, x, y, timed: int, warm: int, profile_steps: int, device) -> dict:
    def train(steps, after_step):
        dcfg = dataclasses.replace(cfg.diffusion, steps=steps, milestones=(steps,))
        diffusion.train_diffusion(pipeline.new_unet(dcfg, cfg.seed), x, y, dcfg, seed=cfg.seed, device=device,
                                  options=diffusion.DiffusionOptions(after_step=after_step, save_every_s=None))
    r = timed_steps(train, timed, warm, profile_steps, device)
    r["images_per_s"] = r["steps_per_s"] * cfg.diffusion.batch_size
    return r


def classifier_steps(cfg, split, timed: int, warm: int, profile_steps: int, device) -> dict:
    """The teacher's recipe on its real training digits, for as many epochs as the steps need."""
    base = cfg.teacher.recipe()

    def train(steps, after_step):
        per_epoch = -(-len(split["train"][0]) // base.batch_size)
        epochs = -(-steps // per_epoch)
        recipe = dataclasses.replace(base, epochs=epochs, patience=epochs + 1)
        val = tuple(t[:base.batch_size] for t in split["val"])
        distill.train_student(split["train"], val, recipe, seed=cfg.seed, device=device, desc="teacher steps",
                              after_step=after_step)
    r = timed_steps(train, timed, warm, profile_steps, device)
    r["images_per_s"] = r["steps_per_s"] * base.batch_size
    return r


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="gpu")
    p.add_argument("--out", default=None, help="the JSON to write (default results/<profile>/replication.json)")
    p.add_argument("--lever-steps", type=int, default=200, help="U-Net and teacher steps per lever setting")
    p.add_argument("--warm-steps", type=int, default=30, help="steps before timing starts (compilation)")
    p.add_argument("--profile-steps", type=int, default=10, help="steps under the profiler")
    p.add_argument("--group-seeds", type=int, default=3, help="teachers trained together for the group_seeds lever")
    p.add_argument("--levers", nargs="*", default=None,
                   help="the levers to flip one at a time against the defaults (default: all but group_seeds, "
                        "which is measured on several teachers)")
    p.add_argument("--set", nargs="*", default=[], metavar="SECTION__KEY=VALUE",
                   help="profile overrides, e.g. student__batch_size=512 student__lr=0.004 (batch-size tuning)")
    p.add_argument("--skip-levers", action="store_true", help="only the end-to-end replication")
    p.add_argument("--skip-replication", action="store_true", help="only the levers")
    args = p.parse_args(argv)
    if min(args.lever_steps, args.warm_steps, args.group_seeds) < 1 or args.profile_steps < 0:
        raise SystemExit("--lever-steps, --warm-steps and --group-seeds must be >= 1, --profile-steps >= 0")
    known = {f.name for f in dataclasses.fields(runtime.Levers)}
    if args.levers is not None and not set(args.levers) <= known:
        raise SystemExit(f"--levers {sorted(set(args.levers) - known)}: unknown; expected some of {sorted(known)}")
    overrides = {}
    for item in args.set:
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"--set {item!r}: expected SECTION__KEY=VALUE")
        try:
            overrides[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            overrides[key] = value
    cfg = kr_utils.get_config(args.profile, **overrides)  # an unknown key or an impossible value is refused here
    dev = runtime.device()
    dest = Path(args.out) if args.out else ROOT / "results" / cfg.profile / "replication.json"
    report = {"profile": cfg.profile, "overrides": overrides, "environment": runtime.environment(), "levers": runtime.levers(dev).as_dict(),
              "stages": {}, "lever_runs": {}}

    def write():
        store.atomic_write_text(dest, json.dumps(report, indent=2))

    split = pipeline.teacher_data(cfg, cfg.seed)
    x_te, y_te = split["test"]
    if not args.skip_replication:
        t_all = time.perf_counter()
        tr = cfg.teacher.recipe()
        _reset_peak(dev)
        with Stopwatch(dev) as sw:
            teacher, hist = distill.train_student(split["train"], split["val"], tr, seed=cfg.seed, device=dev,
                                                  desc="teacher")
        acc = evaluate.classification_report(evaluate.predict_logits(teacher, x_te, device=dev), y_te)["accuracy"]
        epochs = len(hist["epoch"])
        report["stages"]["teacher"] = {"seconds": sw.seconds, "epochs": epochs, "test_accuracy": acc,
                                       "images_per_s": epochs * len(split["train"][0]) / sw.seconds, **peak_memory(dev)}
        write()

        x0, y0 = data.fit_tensors(cfg, cfg.diffusion.train_subset)
        _reset_peak(dev)
        with Stopwatch(dev) as sw:
            run = diffusion.train_diffusion(pipeline.new_unet(cfg.diffusion, cfg.seed), x0, y0, cfg.diffusion,
                                            seed=cfg.seed, device=dev,
                                            options=diffusion.DiffusionOptions(save_every_s=None))
        report["stages"]["diffusion"] = {"seconds": sw.seconds, "steps": cfg.diffusion.steps,
                                         "batch_size": cfg.diffusion.batch_size,
                                         "steps_per_s": cfg.diffusion.steps / sw.seconds, **peak_memory(dev)}
        write()

        sampler = diffusion.build_sampler(cfg.sampler, diffusion.NoiseSchedule.from_config(cfg.diffusion))
        _reset_peak(dev)
        with Stopwatch(dev) as sw:
            s = synth.build_synthetic_set(synth.DigitSource(run.model, sampler, teacher), cfg.synth, cfg.sampler, seed=cfg.seed,
                                          device=dev)
        report["stages"]["synthetic_set"] = {"seconds": sw.seconds, "kept": int(len(s["labels"])),
                                             "generated": int(s["generated"]), "digits_per_s": s["generated"] / sw.seconds,
                                             "labelled_digits_per_s": len(s["labels"]) / sw.seconds,
                                             "sampler": f"{cfg.sampler.sampler}-{len(sampler.timesteps)}",
                                             "guidance_w": cfg.sampler.guidance_w, "batch_size": cfg.sampler.batch_size,
                                             **peak_memory(dev)}
        if args.profile_steps:  # one batch of the sampler under the profiler: launches per reverse step
            report["stages"]["synthetic_set"]["per_sampler_step"] = sampler_profile(
                run.model, sampler, cfg.sampler, cfg.seed, dev)
        write()

        st = cfg.student.recipe()
        train, val = distill.synthetic_split(s["images"], s["labels"], s["logits"], cfg.student.val_fraction, cfg.seed)
        _reset_peak(dev)
        with Stopwatch(dev) as sw:
            student, hist = distill.train_student(train, val, st, seed=cfg.student.seeds[0], device=dev, desc="student")
        acc = evaluate.classification_report(evaluate.predict_logits(student, x_te, device=dev), y_te)["accuracy"]
        report["stages"]["student"] = {"seconds": sw.seconds, "epochs": len(hist["epoch"]), "labels": st.labels,
                                       "test_accuracy": acc,
                                       "images_per_s": len(hist["epoch"]) * len(train[0]) / sw.seconds,
                                       **peak_memory(dev)}
        report["end_to_end_s"] = time.perf_counter() - t_all
        write()
        print(json.dumps({k: round(v["seconds"], 2) for k, v in report["stages"].items()}), flush=True)

    if not args.skip_levers:
        x0, y0 = data.fit_tensors(cfg, cfg.diffusion.train_subset)
        names = [f.name for f in dataclasses.fields(runtime.Levers)]
        defaults = runtime.levers(dev)
        flip = [n for n in names if n != "group_seeds" and (args.levers is None or n in args.levers)]
        settings = {"defaults": {},
                    **{f"{n}_{'off' if getattr(defaults, n) else 'on'}": {n: not getattr(defaults, n)} for n in flip},
                    "all_off": {n: False for n in names}}
        steps, warm = args.lever_steps, args.warm_steps
        for label, changes in settings.items():
            with runtime.use_levers(**changes):
                _reset_peak(dev)
                entry = {"levers": runtime.levers(dev).as_dict(),
                         "unet": {**unet_steps(cfg, x0, y0, steps, warm, args.profile_steps, dev), **peak_memory(dev)}}
                _reset_peak(dev)
                entry["teacher"] = {**classifier_steps(cfg, split, steps, warm, args.profile_steps, dev), **peak_memory(dev)}
            report["lever_runs"][label] = entry
            write()
            print(label, json.dumps({k: entry[k].get("steps_per_s") for k in ("unet", "teacher")}), flush=True)
        # several teachers together against one after another: one epoch each on the same digits
        recipe = dataclasses.replace(cfg.teacher.recipe(), epochs=1, patience=2)
        seeds = list(range(args.group_seeds))
        group = {}
        for together in (True, False):
            with runtime.use_levers(group_seeds=together), Stopwatch(dev) as sw:
                if together:
                    distill.train_students([split["train"]] * len(seeds), [split["val"]] * len(seeds), recipe,
                                           seeds=seeds, device=dev, desc="grouped teachers")
                else:
                    for s in seeds:
                        distill.train_student(split["train"], split["val"], recipe, seed=s, device=dev,
                                              desc=f"teacher seed {s}")
            group["together_s" if together else "one_after_another_s"] = sw.seconds
        group.update(seeds=len(seeds), epochs=1, speedup=group["one_after_another_s"] / group["together_s"])
        report["group_seeds"] = group
        write()
        print("group_seeds", json.dumps(group), flush=True)
    print(f"-> {dest}")
    return report


if __name__ == "__main__":
    main()
