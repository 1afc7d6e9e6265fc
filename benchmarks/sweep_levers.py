"""Measure the levers of student accuracy at a profile's scale in one run (issue: performance).

Trains the profile's teacher and diffusion model once (or, with ``--from-artifacts``, reuses
the profile's ``teacher.pt`` and ``diffusion.pt``), then for each variant builds a synthetic
set and trains a student per seed. A choice between variants is made on the students'
accuracy on the **real validation digits** (the teacher's held-out training digits,
``data.validation_tensors``: ``val_real_accuracy``); the real-test accuracy is recorded beside
it, only to score. Writes ``sweep_<profile>.json`` to the output folder, with ``chosen``: the
variant of the highest mean validation accuracy.

    python benchmarks/sweep_levers.py --profile cpu --out results/cpu
    python benchmarks/sweep_levers.py --profile cpu --from-artifacts --w 1 2 --soft 1 --per-class 500 --seeds 0 1
    python benchmarks/sweep_levers.py --profile cpu --from-artifacts --w 1 --soft 1 --recipe profile alpha=1.0 epochs=4

Every variant of ``--soft`` and ``--recipe`` learns from the same synthetic set, drawn once per
sampler, w, size and threshold; the JSON is rewritten after every variant.
"""
import argparse
import dataclasses
import itertools
import json
import time
from pathlib import Path

import numpy as np
import torch

import kr_utils
from kr_utils import config, data, diffusion, distill, evaluate, models, runtime, store, synth


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument("--profile", default="cpu")
    p.add_argument("--out", default="results")
    p.add_argument("--diffusion-steps", type=int, nargs="*", default=[None])
    p.add_argument("--w", type=float, nargs="*", default=[1.0, 2.0])
    p.add_argument("--soft", type=int, nargs="*", default=[0, 1])
    p.add_argument("--per-class", type=int, nargs="*", default=[None])
    p.add_argument("--threshold", type=float, nargs="*", default=[None])
    p.add_argument("--sampler", nargs="*", default=[None],
                   help="samplers as name:steps (e.g. ddim:20 dpmpp2m:10; default: the profile's)")
    p.add_argument("--tag", default=None, help="written as sweep_<profile>_<tag>.json (default: sweep_<profile>.json)")
    p.add_argument("--student-epochs", type=int, default=None)
    p.add_argument("--recipe", nargs="*", default=["profile"],
                   help="student recipes, each 'profile' or key=value pairs joined by commas "
                        "(e.g. alpha=1.0 epochs=4,batch_size=128,lr=4e-3); every recipe learns from the same set")
    p.add_argument("--seeds", type=int, nargs="*", default=[None], help="student seeds (default: the profile's seed)")
    p.add_argument("--from-artifacts", action="store_true",
                   help="reuse the profile's teacher.pt and diffusion.pt instead of training them")
    args = p.parse_args(argv)
    cfg = kr_utils.get_config(args.profile)
    samplers = [None if s is None else _sampler(p, s) for s in args.sampler]
    recipes = [_recipe(p, cfg.student, r) for r in args.recipe]
    dev = runtime.device()
    seed = cfg.seed
    tr_img, tr_lbl = data.load_mnist("train")
    x_te, y_te = data.test_tensors(cfg.test_subset)
    # teacher (train once)
    tc = cfg.teacher
    tri, vai = data.train_val_split(len(tr_img), tc.val_size, seed)
    x_val, y_val = data.validation_tensors(tc.val_size, seed)  # what a choice is made on
    dc = cfg.diffusion
    t0 = time.perf_counter()
    if args.from_artifacts:
        from kr_utils import checkpoints
        art = store.artifact_dir(args.profile)
        teacher = checkpoints.load_model(art / "teacher.pt", "teacher", dev)
        if args.diffusion_steps != [None]:
            p.error("--from-artifacts uses the profile's diffusion.pt: leave --diffusion-steps out")
        unets = {dc.steps: checkpoints.load_model(art / "diffusion.pt", "diffusion", dev)}
        schedule = checkpoints.load_schedule(art / "diffusion.pt")
        wanted = [dc.steps]
    else:
        teacher, _ = distill.train_student((data.to_model_range(tr_img[tri]), torch.as_tensor(tr_lbl[tri]).long()),
                                           (data.to_model_range(tr_img[vai]), torch.as_tensor(tr_lbl[vai]).long()),
                                           tc.recipe(), seed=seed, device=dev, desc="teacher")
    teacher_acc = evaluate.classification_report(evaluate.predict_logits(teacher, x_te), y_te)["accuracy"]
    results = {"profile": args.profile, "environment": runtime.environment(), "teacher_accuracy": teacher_acc,
               "teacher_time_s": time.perf_counter() - t0, "from_artifacts": args.from_artifacts,
               "chosen_on": f"val_real_accuracy: the {len(y_val)} real validation digits", "runs": []}
    if not args.from_artifacts:
        x0, y0 = data.to_model_range(tr_img), torch.as_tensor(tr_lbl).long()
        unets = {}
        max_steps = max(s or dc.steps for s in args.diffusion_steps)
        wanted = sorted({s or dc.steps for s in args.diffusion_steps})
        t0 = time.perf_counter()

        def keep(step, ema):
            if step in wanted:
                import copy
                unets[step] = copy.deepcopy(ema)

        torch.manual_seed(seed)
        diffusion.train_diffusion(models.ConditionalUNet(**dc.unet_args()), x0, y0,
                                  dataclasses.replace(dc, steps=max_steps, milestones=tuple(wanted)), seed=seed,
                                  device=dev, options=diffusion.DiffusionOptions(after_step=keep))
        results["diffusion_time_s"] = time.perf_counter() - t0
        schedule = diffusion.NoiseSchedule.from_config(dc)
    g, sc, st = cfg.sampler, cfg.synth, cfg.student
    seeds = [seed if s is None else s for s in args.seeds]
    for steps, smp, w, pc, thr in itertools.product(wanted, samplers, args.w, args.per_class, args.threshold):
        pc, thr = pc or sc.per_class, thr or sc.threshold
        gs = g if smp is None else dataclasses.replace(g, sampler=smp[0], num_steps=smp[1])
        sampler = diffusion.build_sampler(gs, schedule)
        t0 = time.perf_counter()
        res = synth.build_synthetic_set(synth.DigitSource(unets[steps], sampler, teacher),
                                        dataclasses.replace(sc, per_class=pc, threshold=thr,
                                                            threshold_floor=min(thr, sc.threshold_floor)),
                                        dataclasses.replace(gs, guidance_w=w), seed=seed, device=dev, progress=False)
        gen_s = time.perf_counter() - t0
        for soft, (changes, label) in itertools.product(args.soft, recipes):  # one set, every student recipe
            epochs = {"epochs": args.student_epochs} if args.student_epochs else {}
            recipe = st.recipe(labels="soft_t4" if soft else "hard", **{**epochs, **changes})
            val_accs, test_accs, t0 = [], [], time.perf_counter()
            for s in seeds:
                syn_train, syn_val = distill.synthetic_split(res["images"], res["labels"], res["logits"],
                                                             st.val_fraction, s)
                student, hist = distill.train_student(syn_train, syn_val, recipe, seed=s, device=dev, desc="student")
                val_accs.append(evaluate.classification_report(evaluate.predict_logits(student, x_val), y_val)["accuracy"])
                test_accs.append(evaluate.classification_report(evaluate.predict_logits(student, x_te), y_te)["accuracy"])
            run = {"diffusion_steps": steps, "sampler": f"{gs.sampler}_{gs.num_steps}", "w": w, "soft": bool(soft),
                   "per_class": pc, "threshold": thr, "recipe": label, "student_recipe": recipe.as_dict(),
                   "acceptance_rate": res["acceptance_rate"], "generated": res["generated"],
                   "generation_s": gen_s, "student_s": time.perf_counter() - t0, "seeds": seeds,
                   "val_real_accuracy": evaluate.summarize_seeds(val_accs), "student_accuracy": float(np.mean(test_accs)),
                   "student_accuracy_seeds": evaluate.summarize_seeds(test_accs)}
            print(json.dumps(run), flush=True)
            results["runs"].append(run)
            results["chosen"] = max(results["runs"], key=lambda r: r["val_real_accuracy"]["mean"])  # on validation
            _write(args, results)  # after every run: an interrupted sweep keeps what it measured


def _write(args, results):
    out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
    name = f"sweep_{args.profile}_{args.tag}.json" if args.tag else f"sweep_{args.profile}.json"
    store.atomic_write_text(out / name, json.dumps(results, indent=2))


def _recipe(parser, student, text: str) -> tuple[dict, str]:
    """``"alpha=1.0,epochs=4"`` as ``({"alpha": 1.0, "epochs": 4}, text)``, each value of the
    type of the recipe's field; ``"profile"`` is no change. A key the recipe lacks or a value
    the recipe refuses is the parser's error, before any training."""
    if text == "profile":
        return {}, text
    fields = {k: type(v) for k, v in student.recipe().as_dict().items()}
    changes = {}
    for pair in text.split(","):
        key, _, value = pair.partition("=")
        if key not in fields or key in ("soft", "temperature") or not value:
            parser.error(f"--recipe {text!r}: expected key=value with keys of {sorted(set(fields) - {'soft', 'temperature'})}")
        kind = fields[key]
        try:
            changes[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
        except ValueError:
            parser.error(f"--recipe {text!r}: {key} must be of type {kind.__name__}, got {value!r}")
    try:
        student.recipe(**changes)
    except config.ConfigError as err:
        parser.error(f"--recipe {text!r}: {err}")
    return changes, text


def _sampler(parser, text: str) -> tuple[str, int]:
    """``"ddim:20"`` as ``("ddim", 20)``; a malformed one is the parser's error, before any training."""
    name, _, steps = text.partition(":")
    if name not in diffusion.SAMPLERS or not steps.isdigit() or int(steps) < 1:
        parser.error(f"--sampler {text!r}: expected name:steps, name one of {sorted(diffusion.SAMPLERS)}")
    return name, int(steps)


if __name__ == "__main__":
    main()
