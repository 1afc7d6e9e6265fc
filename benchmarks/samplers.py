"""Sampler benchmark: the thesis' 1000-step ancestral sampler against the profile's fast
sampler, on the same trained model, batch size and set size, in one run.

For each sampler: samples/s (timed around generation only, device synchronised), the
teacher's acceptance rate at the threshold, and the real-test accuracy of students (one per
seed, mean +- std) trained on a synthetic set built with it. Needs the profile's teacher.pt and
diffusion.pt (run notebooks 01 and 02 first). Writes results/<profile>/sampler_benchmark.json.

    python benchmarks/samplers.py --profile gpu --per-class 2000 --fast ddim:50 ancestral:50
    python benchmarks/samplers.py --profile gpu --per-class 500 --fast dpmpp2m:10 dpmpp2m:5 dpmpp2m:8 \
        dpmpp2m:15 dpmpp2m:20 ddim:10 ddim:20      # DPM-Solver++ (2M) against DDIM and the 1000-step chain

``--fast`` lists the fast samplers as name:steps (default: the profile's sampler); the first
is the one whose speed-up and accuracy gap are reported at the top level of the JSON. Each
student makes as many optimiser updates as the profile's main student on its full set (more
epochs on a smaller set), so a small benchmark set still gives trained students. The speed
and the set of each sampler are cached under artifacts/<profile>/sampler_benchmark/, so a
second run with more seeds does not generate again.
"""
import argparse
import dataclasses
import json
import time

import torch

import kr_utils
from kr_utils import checkpoints, data, diffusion, distill, evaluate, runtime, store, studies, synth


def timed_generation(unet, sampler, n, batch, w, device, seed):
    labels = torch.arange(10).repeat_interleave(-(-n // 10))[:n]
    gen = torch.Generator(device=device.type).manual_seed(seed)
    diffusion.generate(unet, sampler, labels[: min(batch, 64)], w, gen)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for chunk in labels.split(batch):
        diffusion.generate(unet, sampler, chunk, w, gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return n / (time.perf_counter() - t0)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="cpu")
    p.add_argument("--per-class", type=int, default=None, help="synthetic digits per class for each student")
    p.add_argument("--speed-samples", type=int, default=None, help="digits generated for the speed figure")
    p.add_argument("--fast", nargs="+", default=None,
                   help="fast samplers as name:steps, e.g. ddim:50 ancestral:50 dpmpp2m:10")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="student seeds (default: the profile's)")
    args = p.parse_args()
    cfg = kr_utils.get_config(args.profile)
    g, sc, st = cfg.sampler, cfg.synth, cfg.student
    out = store.artifact_dir(cfg.profile)
    dev = runtime.device()
    unet = checkpoints.load_model(out / "diffusion.pt", "diffusion", dev)
    teacher = checkpoints.load_model(out / "teacher.pt", "teacher", dev)
    x_te, y_te = data.test_tensors(cfg.test_subset)
    per_class = args.per_class or sc.per_class
    seeds = args.seeds or list(st.seeds)
    # as many updates as the main student on the profile's set: at cpu, 1,000 digits with its
    # 3 epochs gave 45 updates and students of 70-84% (seed std 6-8 points): no comparison
    epochs = max(st.epochs, studies.equal_update_epochs(st.epochs, sc.per_class, per_class))
    scfg = st.recipe(epochs=epochs, patience=epochs + 1)
    fast = [f.partition(":") for f in args.fast or [f"{g.sampler}:{g.num_steps}"]]
    for name, _, steps in fast:
        if name not in ("ddim", "ancestral", "dpmpp2m") or not steps.isdigit() or not 1 <= int(steps) <= 50:
            raise SystemExit(f"--fast {name}:{steps}: expected ddim, dpmpp2m or ancestral with 1 to 50 steps")
    schedule = checkpoints.load_schedule(out / "diffusion.pt")
    samplers = {"ancestral_1000": diffusion.build_sampler(g, schedule, sampler="ancestral")}
    samplers.update({f"{name}_{steps}": diffusion.build_sampler(g, schedule, sampler=name, num_steps=int(steps))
                     for name, _, steps in fast})
    report = {"profile": cfg.profile, "environment": runtime.environment(), "batch_size": g.batch_size,
              "guidance_w": g.guidance_w, "per_class": per_class, "threshold": sc.threshold,
              "student_epochs": epochs, "samplers": {}}
    for name, sampler in samplers.items():
        n_speed = args.speed_samples or min(10 * per_class, 4 * g.batch_size)

        def generate():
            sps = timed_generation(unet, sampler, n_speed, g.batch_size, g.guidance_w, dev, cfg.seed)
            r = synth.build_synthetic_set(synth.DigitSource(unet, sampler, teacher), dataclasses.replace(sc, per_class=per_class), g,
                                          seed=cfg.seed, device=dev)
            return {"samples_per_s": sps, "acceptance_rate": r["acceptance_rate"],
                    **{k: torch.as_tensor(r[k]) for k in ("images", "labels", "logits")}}

        key = store.fingerprint({"sampler": name, "generation": g, "synth": sc, "per_class": per_class,
                                     "speed_samples": n_speed, "device": report["environment"]["device"],
                                     "bf16": report["environment"]["bf16_autocast"]},
                                    out / "diffusion.pt", out / "teacher.pt")
        res = store.cached(out / "sampler_benchmark" / f"{name}_{per_class}.pt", key, generate)
        sps = res["samples_per_s"]
        syn_train, syn_val = distill.synthetic_split(res["images"], res["labels"], res["logits"],
                                                   st.val_fraction, cfg.seed)
        accs = []
        for seed in seeds:
            student, _ = distill.train_student(syn_train, syn_val, scfg, seed=seed, device=dev,
                                             desc=f"student ({name}, seed {seed})")
            accs.append(evaluate.classification_report(evaluate.predict_logits(student, x_te), y_te)["accuracy"])
        summary = evaluate.summarize_seeds(accs)
        report["samplers"][name] = {"network_passes_per_digit": len(sampler.timesteps) * (1 if g.guidance_w in (0, 1) else 2),
                                    "samples_per_s": sps, "acceptance_rate": res["acceptance_rate"],
                                    "student_accuracy": summary["mean"], "student_accuracy_seeds": summary,
                                    "set_size": int(len(res["labels"]))}
        print(name, json.dumps(report["samplers"][name]), flush=True)
    a = report["samplers"]["ancestral_1000"]
    for name, f in report["samplers"].items():
        f["speedup"] = f["samples_per_s"] / a["samples_per_s"]
        f["accuracy_gap_points"] = 100 * (a["student_accuracy"] - f["student_accuracy"])
    first = report["samplers"][f"{fast[0][0]}_{fast[0][2]}"]
    report["speedup"], report["accuracy_gap_points"] = first["speedup"], first["accuracy_gap_points"]
    dest = store.repo_root() / "results" / cfg.profile / "sampler_benchmark.json"
    store.atomic_write_text(dest, json.dumps(report, indent=2))
    print(f"speedup {report['speedup']:.1f}x, accuracy gap {report['accuracy_gap_points']:.2f} points -> {dest}")


if __name__ == "__main__":
    main()
