"""Stage: chapter 11, knowledge replication with the generators of seed `004`
(:mod:`kr_utils.generators`) against the diffusion model, through the same pipeline.

Each generator learns the same real training images as the U-Net (chapter 2), class
conditioned; its images pass the same teacher and the same confidence filter
(:func:`kr_utils.synth.build_synthetic_set` with the profile's threshold and labels) until
``generators.per_class`` per class are kept; the diffusion model's set of chapter 4 is cut to
the same size (:func:`disjoint_cut`); each set trains the main student's
recipe at the main student's number of updates, one student per generator seed
(:func:`seed_pairs`), scored on the real test set. Every generator and set
is cached under ``<artifacts>/<run>/generators/``.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from . import audit, claims, comparison, data, distill, evaluate, generators, pipeline, studies, synth
from .checkpoints import load_checkpoint, load_if_current, load_model, save_checkpoint
from .config import LABEL_NAMES, Profile
from .models import features
from .store import artifact_dir, fingerprint, note_reused

NAMES = {"ddpm": "diffusion model (DDPM)", "wgan_gp": "conditional WGAN-GP", "gan": "conditional GAN",
         "vae": "conditional VAE"}
KINDS = ("vae", "gan", "wgan_gp")


def steps(cfg: Profile, kind: str) -> int:
    """The generator updates of ``kind`` in chapter 11: ``generators.<kind>_steps``, or with
    ``generators.equal_images`` as many updates as make the generator's training read the U-Net's
    ``diffusion.steps`` x ``diffusion.batch_size`` real training images (rounded up): one batch
    of ``generators.batch_size`` per update, ``n_critic`` batches per WGAN-GP update (its critic
    reads them), so WGAN-GP makes ``n_critic`` times fewer generator updates."""
    g = cfg.generators
    if kind not in KINDS:
        raise ValueError(f"unknown generator {kind!r}; expected one of {KINDS}")
    if g.equal_images:
        per_update = g.batch_size * (g.n_critic if kind == "wgan_gp" else 1)
        return -(-cfg.diffusion.steps * cfg.diffusion.batch_size // per_update)
    return {"vae": g.vae_steps, "gan": g.gan_steps, "wgan_gp": g.wgan_steps}[kind]


def _name(cfg: Profile, stem: str, seed: int) -> str:
    """Cache names: the profile's seed keeps the plain name, other generator seeds add theirs."""
    return stem if seed == cfg.seed else f"{stem}_seed{seed}"


def folder(cfg: Profile) -> Path:
    return artifact_dir(cfg.run) / "generators"


def _stage_config(cfg: Profile, kind: str, seed: int) -> dict:
    return {"kind": kind, **cfg.generators.as_dict(), "steps": steps(cfg, kind), "seed": seed,
            "train_subset": cfg.diffusion.train_subset, "dataset": cfg.dataset, **data.held_out(cfg, seed)}


def generator(cfg: Profile, kind: str, device, seed: int | None = None) -> tuple[torch.nn.Module, dict]:
    """The class-conditional generator ``kind`` of this profile: found (trained with the same
    settings), or trained on the real training images the U-Net learns from. Returns the model
    (eval mode) and its ``{"history", "train_time_s", "reused"}``."""
    if kind not in KINDS:
        raise ValueError(f"unknown generator {kind!r}; expected one of {KINDS}")
    seed = cfg.seed if seed is None else seed
    path = folder(cfg) / f"{_name(cfg, kind, seed)}.pt"
    stage_cfg = _stage_config(cfg, kind, seed)
    ckpt = load_if_current(path, "generator", stage_cfg, cfg.run)
    info = cfg.data
    if ckpt is not None:
        model = generators.build(kind, cfg.generators, info.num_classes, info.image_shape)[0]
        model.load_state_dict(ckpt["state_dict"])
        note_reused(ckpt["extra"].get("train_time_s"), path)
        return model.to(device).eval(), {"history": ckpt["extra"]["history"],
                                         "train_time_s": ckpt["extra"].get("train_time_s"), "reused": True}
    x, y = data.fit_tensors(cfg, cfg.diffusion.train_subset, seed)
    job = generators.GeneratorJob(kind, steps(cfg, kind), seed, num_classes=info.num_classes,
                                  log_every=max(1, steps(cfg, kind) // 30))
    run = generators.train_generator(job, x, y, cfg.generators, device=device)
    save_checkpoint(path, run.model, kind="generator", config=stage_cfg, profile=cfg.run, seed=seed,
                    extra={"history": run.history, "train_time_s": run.train_time_s})
    return run.model, {"history": run.history, "train_time_s": run.train_time_s, "reused": False}


def generator_set(cfg: Profile, kind: str, model, device, seed: int | None = None) -> dict:
    """The filtered, teacher-labelled set of ``generators.per_class`` images per class drawn from
    ``model`` (chapter 4's filter and labels: ``synth.threshold``, ``synth.label_mode``), saved
    and reused as chapter 4's set is. Returns it as :func:`kr_utils.synth.load_synthetic_set` does."""
    seed = cfg.seed if seed is None else seed
    t_path = pipeline.teacher(cfg, device)
    out = folder(cfg) / f"{_name(cfg, kind, seed)}_set"
    synth_cfg = dataclasses.replace(cfg.synth, per_class=cfg.generators.per_class)
    key = fingerprint({**synth_cfg.as_dict(), "generator": _stage_config(cfg, kind, seed), "set_seed": seed},
                      t_path, folder(cfg) / f"{_name(cfg, kind, seed)}.pt")
    if synth.cached_summary(out, key) is None:
        teacher = load_model(t_path, "teacher", device)
        t0 = time.perf_counter()
        result = synth.build_synthetic_set(synth.DigitSource(model, None, teacher), synth_cfg, cfg.sampler, seed=seed, device=device,
                                           progress=False)
        seconds = time.perf_counter() - t0
        synth.save_synthetic_set(out, result, key=key, extra={"generation_time_s": round(seconds, 2),
                                                             "generated_per_s": result["generated"] / seconds})
        return synth.load_synthetic_set(out)
    stored = synth.load_synthetic_set(out)
    note_reused(stored["summary"]["generation_time_s"])
    return stored


def disjoint_cut(labels, per_class: int, seed: int, part: int) -> np.ndarray:
    """Indices of the ``part``-th of disjoint cuts of ``per_class`` digits of each class: each
    class's members shuffled once by ``seed`` and cut in consecutive slices (sorted), so that the
    cuts of different parts share no image."""
    labels, rng, idx = np.asarray(labels), np.random.default_rng(seed), []
    for c in range(int(labels.max()) + 1):
        members = rng.permutation(np.flatnonzero(labels == c))
        if len(members) < (part + 1) * per_class:
            raise ValueError(f"class {c} has {len(members)} digits, fewer than {part + 1} disjoint cuts of "
                             f"per_class={per_class}")
        idx.append(members[part * per_class:(part + 1) * per_class])
    return np.sort(np.concatenate(idx))


def ddpm_set(cfg: Profile, device, part: int = 0) -> dict:
    """Chapter 4's set of the diffusion model cut to ``generators.per_class`` images per class:
    the ``part``-th of disjoint random cuts (:func:`disjoint_cut`; one U-Net, chapter 2's, for
    every part), with its summary and the U-Net's training time."""
    stored = synth.load_synthetic_set(pipeline.synthetic_set(cfg, device))
    idx = disjoint_cut(stored["labels"], cfg.generators.per_class, cfg.seed, part)
    d_ckpt = load_checkpoint(pipeline.diffusion_model(cfg, device), "diffusion")
    summary = {**stored["summary"], "size": int(len(idx)), "train_time_s": d_ckpt["extra"].get("train_time_s"),
               "inputs_key": fingerprint({"set": stored["summary"]["inputs_key"], "per_class": cfg.generators.per_class,
                                          "cut": part})}
    return {**{k: stored[k][idx] for k in ("images", "labels", "logits", "requested")}, "summary": summary}


def student_epochs(cfg: Profile) -> int:
    """The students' epochs on a set of ``generators.per_class`` images per class: as many
    optimiser updates as the main student makes on chapter 4's set (``synth.per_class``), so a
    smaller set does not mean less training (:func:`kr_utils.studies.equal_update_epochs`)."""
    return studies.equal_update_epochs(cfg.student.epochs, cfg.synth.per_class, cfg.generators.per_class)


def students(cfg: Profile, name: str, stored: dict, device, test, holdout=None, seeds=None) -> dict:
    """The main student's recipe at :func:`student_epochs` over ``seeds`` (default: its own) on
    one set (split by the profile's seed into training and validation images as chapter 5
    splits its set): ``{seed: run}``, cached."""
    st = cfg.student
    seeds = st.seeds if seeds is None else tuple(seeds)
    recipe = st.recipe(epochs=student_epochs(cfg))
    train, val = distill.synthetic_split(stored["images"], stored["labels"], stored["logits"], st.val_fraction, cfg.seed)
    key = fingerprint({"set": stored["summary"]["inputs_key"], "name": name, "size": len(stored["labels"]),
                       "split_seed": cfg.seed})
    jobs = [studies.RunJob(train, val, s, folder(cfg) / "students" / f"{name}_seed{s}.pt", key, f"{name} seed {s}")
            for s in seeds]
    runs = studies.run_classifiers(jobs, recipe, device=device, test=test, test_curve=False, holdout=holdout)
    return dict(zip(seeds, runs))


def set_distribution(teacher, stored: dict, real: tuple, cfg: Profile, device) -> dict:
    """Chapter 9's Fréchet distance and k-NN precision/recall
    (:func:`kr_utils.claims.distribution`) of a set against real test images, in the teacher's
    feature space, on ``evaluation.fd_size`` images of each."""
    ev = cfg.evaluation
    real_f = features(teacher, real[0], device=device)
    fake_f = features(teacher, data.to_model_range(stored["images"]), device=device)
    out = claims.distribution(real_f, real[1], fake_f, stored["labels"], size=ev.fd_size, k=ev.knn_k, seed=cfg.seed)
    out.pop("per_class")
    return out


def set_memorisation(images_uint8, train_uint8) -> dict:
    """Chapter 9's pixel-space memorisation measures (:func:`kr_utils.audit.memorisation`) of
    images against the real training images the generators learned: ``exact`` copies, and
    ``near_copies``, the share much closer to one training image than to any other (nearest /
    second nearest below :data:`kr_utils.audit.RATIO_THRESHOLD`, Gu et al.)."""
    m = audit.memorisation(audit.nearest(images_uint8, train_uint8, k=2)[0])
    return {"exact": m["exact"], "near_copies": m["ratio_flagged"] / m["n"], "nearest_median": float(m["nearest"].median())}


def seed_pairs(cfg: Profile) -> list[tuple[int, tuple[int, ...]]]:
    """``[(generator seed, its student seeds)]``: one student of the same seed per generator
    seed, or with a single generator seed the main student's seeds on its set."""
    g, st = cfg.generators, cfg.student
    return [(g.seeds[0], st.seeds)] if len(g.seeds) == 1 else [(s, (s,)) for s in g.seeds]


def pooled(sets: list[dict]) -> dict:
    """One generator's sets over its seeds as one set (images, labels; summaries averaged)."""
    out = {k: np.concatenate([np.asarray(x[k]) for x in sets]) for k in ("images", "labels")}
    out["summary"] = {k: float(np.mean([x["summary"][k] for x in sets]))
                      for k in ("acceptance_rate", "generated", "generated_per_s") if k in sets[0]["summary"]}
    out["summary"]["agreement"] = (None if sets[0]["summary"].get("agreement") is None else
                                   float(np.mean([x["summary"]["agreement"] for x in sets])))
    return out


def study(cfg: Profile, device) -> dict:
    """Chapter 11 whole: per generator (``ddpm`` and :data:`KINDS`) and per generator seed
    (:func:`seed_pairs`; the diffusion model's seeds are random cuts of chapter 4's set from its
    one U-Net) the set and its students, and the numbers of the table over all of them; returns
    ``{"rows": {name: row}, "sets": {name: first seed's set}, "histories": {kind: first seed's
    history}, "runs": {name: {student seed: run}}, "memorisation_floor"}`` (the last:
    :func:`set_memorisation` of as many real test images, which no generator saw)."""
    test = data.test_tensors(cfg.test_subset, cfg.dataset)
    holdout = pipeline.real_validation(cfg)
    teacher = load_model(pipeline.teacher(cfg, device), "teacher", device)
    pairs = seed_pairs(cfg)
    all_sets = {"ddpm": [ddpm_set(cfg, device, part) for part in range(len(pairs))]}
    times = {"ddpm": [all_sets["ddpm"][0]["summary"]["train_time_s"]]}
    histories = {}
    for kind in KINDS:
        all_sets[kind], times[kind] = [], []
        for gs, _ in pairs:
            model, info = generator(cfg, kind, device, seed=gs)
            histories.setdefault(kind, info["history"])
            times[kind].append(info["train_time_s"])
            all_sets[kind].append(generator_set(cfg, kind, model, device, seed=gs))
    rows, runs = {}, {}
    train_uint8 = data.fit_digits(cfg, cfg.diffusion.train_subset)[0]  # what every generator learned
    real_uint8 = data.load(cfg.dataset, "test")[0][: len(all_sets["ddpm"][0]["labels"])]
    floor = set_memorisation(real_uint8, train_uint8)  # unseen real images: the measure's floor
    for name, sets in all_sets.items():
        runs[name] = {}
        for (gs, student_seeds), stored in zip(pairs, sets):
            runs[name].update(students(cfg, name, stored, device, test, holdout, seeds=student_seeds))
        acc = [r["accuracy"] for r in runs[name].values()]
        pool = pooled(sets)
        s = pool["summary"]
        known = [t for t in times[name] if t is not None]
        rows[name] = {"label": NAMES[name], "accuracy": evaluate.summarize_seeds(acc),
                      # the interval over the seeds and the test digits (comparison.accuracy_interval)
                      "accuracy_text": evaluate.format_interval(runs[name], test[1]),
                      "val_real_accuracy": evaluate.summarize_seeds([r["val_real_accuracy"] for r in runs[name].values()]),
                      "generator_seeds": [gs for gs, _ in pairs] if name != "ddpm" else [],
                      "acceptance_rate": s["acceptance_rate"], "generated": s["generated"], "size": len(sets[0]["labels"]),
                      "train_time_s": float(np.mean(known)) if known else None, "images_per_s": s["generated_per_s"],
                      "agreement": s.get("agreement"), **set_distribution(teacher, pool, test, cfg, device),
                      # pooled over the generator's seeds: exact copies and the near-copy share of all its sets
                      "memorisation": set_memorisation(pool["images"], train_uint8)}
    for name in KINDS:  # the diffusion model's lead, in points: students of other sets, on the same test digits
        c = comparison.compare_runs(evaluate.correct_on(runs["ddpm"], test[1]), evaluate.correct_on(runs[name], test[1]),
                                    paired=False)
        rows[name]["ddpm_lead_points"] = {"estimate": 100 * c.difference,
                                          "ci95": None if c.ci95 is None else [100 * v for v in c.ci95],
                                          "verdict": c.verdict, "covers": c.covers}
    return {"rows": rows, "sets": {n: v[0] for n, v in all_sets.items()}, "histories": histories, "runs": runs,
            "memorisation_floor": floor}


def table(rows: dict):
    """The chapter's table: one row per generator, display labels, percentages."""
    import pandas as pd

    out = []
    for name, r in rows.items():
        a = r["accuracy"]
        out.append({"generator": r["label"],
                    "student accuracy": r.get("accuracy_text") or evaluate.format_summary(a),
                    "accepted (%)": f"{100 * r['acceptance_rate']:.1f}",
                    "training (s)": "—" if r["train_time_s"] is None else f"{r['train_time_s']:.0f}",
                    "images/s": f"{r['images_per_s']:,.0f}", "Fréchet": f"{r['frechet']:.2f}",
                    "precision": f"{r['precision']:.2f}", "recall": f"{r['recall']:.2f}",
                    "near copies (%)": f"{100 * r['memorisation']['near_copies']:.2f}" if "memorisation" in r else "—"})
    return pd.DataFrame(out).set_index("generator")


def design_texts(cfg: Profile) -> dict:
    """Chapter 11's design in the prose's words (glued under these names): the filter, the set
    size, the students' recipe, the seeds, each generator's updates and the budget they share."""
    g, st = cfg.generators, cfg.student
    pairs = seed_pairs(cfg)
    images = cfg.diffusion.steps * cfg.diffusion.batch_size
    seeds = (f"Each generator is trained {evaluate.counted(len(pairs), 'time')}, from seeds "
             f"{', '.join(str(s) for s, _ in pairs)}; each training draws its own set, which trains one student of the "
             "same seed, so a row's spread covers the generator's seed, its set and the student's. The diffusion "
             "model's row has one U-Net, chapter 2's (its training costs too much to repeat here): its seeds cut "
             "chapter 4's set at random, so its spread covers the set's draw and the student only." if len(pairs) > 1
             else f"Each generator is trained once (seed {pairs[0][0]}); its set trains the student over "
                  f"{evaluate.counted(len(st.seeds), 'seed')}, so a row's spread covers the student's seed only.")
    budget = (f"every generator's training reads as many real training images as the U-Net's did, {images:,d} "
              f"({cfg.diffusion.steps:,d} updates of {cfg.diffusion.batch_size}; WGAN-GP's critic reads {g.n_critic} "
              "batches per generator update, so WGAN-GP makes that many times fewer updates): an equal data budget, not "
              "an equal time" if g.equal_images else "the updates are this profile's own per generator, not an equal budget")
    lr = (f"WGAN-GP's learning rate, {g.wgan_lr:g} against {g.gan_lr:g}, the GAN's (Gulrajani et al. use a lower one), "
          "which drew the requested class less often in as many updates (judged on the teacher's agreement with the "
          "requested class, never on the test set; the comment of the cpu profile's `generators` section in "
          "`kr_utils.config` records both runs)" if g.wgan_lr != g.gan_lr else
          f"none at this profile, whose GAN and WGAN-GP share the learning rate {g.gan_lr:g}")
    return {"c11_n_critic": g.n_critic, "c11_threshold": cfg.synth.threshold, "c11_per_class": f"{g.per_class:,d}",
            "c11_recipe": f"{st.arch}, {LABEL_NAMES[st.recipe().labels]}, "
                          f"{evaluate.counted(student_epochs(cfg), 'epoch')}: as many updates as the main student's "
                          f"{evaluate.counted(st.epochs, 'epoch')} on chapter 4's set",
            "c11_seed_design": seeds, "c11_steps": ", ".join(f"{NAMES[k]} {steps(cfg, k):,d}" for k in KINDS),
            "c11_budget": budget, "c11_lr_note": lr}


LEAD_WORDS = {"higher": "ahead of it", "lower": "behind it", "no measurable difference": "not measurably different from it",
              "no interval": "without an interval against it"}


def row_texts(rows: dict) -> dict:
    """Chapter 11's results in the prose's words: each row's accuracy, acceptance, agreement,
    rate, training time and the diffusion model's lead over it; the best other generator on
    the real validation digits (never the test set) and where the diffusion model stands
    against it."""
    best = max(KINDS, key=lambda k: rows[k]["val_real_accuracy"]["mean"])  # chosen on real validation digits
    out = {}
    for name, r in rows.items():
        out |= {f"c11_{name}_acc": r["accuracy_text"], f"c11_{name}_accept": f"{100 * r['acceptance_rate']:.1f}%",
                f"c11_{name}_agree": f"{100 * r['agreement']:.1f}%", f"c11_{name}_ips": f"{r['images_per_s']:,.0f}",
                f"c11_{name}_train": "an unrecorded time" if r["train_time_s"] is None else f"{r['train_time_s']:.0f} s"}
        if name != "ddpm":
            lead = r["ddpm_lead_points"]
            ci = "" if lead["ci95"] is None else f" (95% interval [{lead['ci95'][0]:.2f}, {lead['ci95'][1]:.2f}], {lead['covers']})"
            out[f"c11_{name}_lead"] = f"{lead['estimate']:.2f} points{ci}"
    return out | {"c11_best": NAMES[best], "c11_best_lead_verdict": LEAD_WORDS[rows[best]["ddpm_lead_points"]["verdict"]]}


def metrics(cfg: Profile, result: dict) -> dict:
    """What chapter 11 records in ``metrics.json`` (section ``other_generators``)."""
    st = cfg.student
    return {"per_class": cfg.generators.per_class, "seed_pairs": [[gs, list(ss)] for gs, ss in seed_pairs(cfg)],
            "recipe": st.recipe(epochs=student_epochs(cfg)).as_dict(), "steps": {k: steps(cfg, k) for k in KINDS},
            "rows": {k: {kk: vv for kk, vv in r.items() if kk != "label"} for k, r in result["rows"].items()},
            "memorisation_floor": result["memorisation_floor"]}
