"""Stage: studies, the thesis' experiments on top of the pipeline (chapters 1 and 5-7).

- one classifier run (a teacher of chapter 1's study or a student), cached;
- the student grid: architectures x label settings (hard labels, soft targets with tau = 1
  or 4) x seeds, each run cached with its real-test curve and its test logits;
- the degradation study: the same budget of digits from each milestone checkpoint of the
  diffusion model, and a student of each architecture trained on each set;
- the thesis' code's storage and sampler (:func:`thesis_background`, :func:`thesis_code_sampler`),
  which chapter 7's ablation of its recipe (:mod:`kr_utils.ablation`) builds on.
"""
from __future__ import annotations

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import distill, evaluate, synth, workers
from .checkpoints import load_model
from .models import build_classifier, predict_logits
from .config import ClassifierRecipe, Profile, SamplerConfig
from .data import fit_digits, to_model_range, to_uint8
from .diffusion import build_sampler, generate, sampler_label
from .runtime import levers
from .store import MISSING, artifact_dir, cached, fingerprint, is_current, lookup, plain, save_result
from .thesis import CODE as THESIS_CODE


def run_classifier(job: RunJob, recipe: ClassifierRecipe, *, device, test, select_best: bool = True,
                   test_curve: bool = True) -> dict:
    """Train one classifier, a student or one of chapter 1's teachers, as ``job`` says
    (:class:`RunJob`: cached at ``job.cache_path`` under a key of its recipe, seed and data;
    ``job.inputs_key`` is the :func:`kr_utils.store.fingerprint` of the data it learns from,
    as every cache key of the book is).

    Returns its per-epoch ``history`` (with ``test_curve``, the real-test accuracy after each
    epoch, never used for a decision), final ``accuracy``, ``per_class_accuracy``,
    ``confusion_matrix``, ``test_logits``, ``state_dict`` and ``train_time_s``. Without
    ``test_curve`` the test set is evaluated once, at the end: on a few thousand digits a
    per-epoch pass over 10,000 test digits costs more than the training itself.
    """
    return run_classifiers([job], recipe, device=device, test=test, select_best=select_best,
                           test_curve=test_curve)[0]


@dataclass(frozen=True, eq=False)
class RunJob:
    """One run of :func:`run_classifiers`: what it learns from (``train``, ``val``, and
    ``inputs_key``, the fingerprint of those data), its seed, its cache file and its label."""

    train: tuple
    val: tuple
    seed: int
    cache_path: str | Path
    inputs_key: str
    desc: str = "student"


def run_classifiers(jobs: list[RunJob], recipe: ClassifierRecipe, *, device, test, select_best: bool = True,
                    test_curve: bool = True, holdout=None) -> list[dict]:
    """:func:`run_classifier` for several runs of one recipe (a study's seeds): each found in
    its cache or trained. Where the ``group_seeds`` lever is on (a GPU), the runs not cached
    that learn from sets of one size train together as one batched model
    (:func:`kr_utils.distill.train_students`); where ``parallel_runs`` is on (a CPU of two
    cores or more), side by side in worker processes (:func:`kr_utils.workers.run_in_waves`);
    elsewhere one after another. Each run is cached on its own, under the key it has when
    trained alone, as soon as it is trained. Returns the runs in the order of ``jobs``.

    ``holdout``: the declared validation split of real training digits
    (:func:`kr_utils.pipeline.real_validation`); each run then carries ``val_real_accuracy``,
    its accuracy there, the number a chapter chooses between runs by (the test set only scores)."""
    keys = [fingerprint({"classifier": recipe, "seed": j.seed, "data": j.inputs_key, "select_best": select_best,
                         "test_size": len(test[1])}) for j in jobs]
    results = [lookup(j.cache_path, k) for j, k in zip(jobs, keys)]
    todo = [i for i, r in enumerate(results) if r is MISSING]
    lever = levers(device)
    if lever.group_seeds:
        shapes: dict = {}
        for i in todo:
            shapes.setdefault((len(jobs[i].train[0]), len(jobs[i].val[0])), []).append(i)
        groups = list(shapes.values())
    else:
        groups = [[i] for i in todo]
    options = dict(device=str(device), test=test, select_best=select_best, test_curve=test_curve)
    calls = [(([jobs[i] for i in group], [keys[i] for i in group], recipe), options) for group in groups]
    if lever.parallel_runs and not lever.group_seeds and torch.device(device).type == "cpu" and len(jobs) > 1:
        # the threads of each run follow from all the call's runs, cached ones too (the float rounding of a
        # run retrained after an interruption is then the one it first had)
        finished = workers.run_in_waves(train_group, calls, threads_each=workers.threads_per_run(len(jobs)))
    else:
        finished = ((g, train_group(*args, **kw), None, 1) for g, (args, kw) in enumerate(calls))

    def score(run):  # its accuracy on the real validation digits, where asked and not yet known
        if holdout is not None and "val_real_accuracy" not in run:
            run["val_real_accuracy"] = holdout_accuracy(build_classifier(recipe.arch, run["state_dict"]).to(device),
                                                        holdout, device)
        return run

    for g, trained, share, beside in finished:
        for i, result in zip(groups[g], trained):
            if share is not None:  # its share of its wave's wall time, and how many runs the wave held
                result["train_time_s"], result["side_by_side"] = share, beside
            results[i] = score(result)
            save_result(jobs[i].cache_path, keys[i], results[i], result["train_time_s"])
    return [score(r) for r in results]  # a run cached without it (trained before, or without a holdout) too


def train_group(jobs: list[RunJob], keys: list[str], recipe: ClassifierRecipe, *, device, test, select_best: bool,
                test_curve: bool) -> list[dict]:
    """Train the runs ``jobs`` (cache keys ``keys``) of :func:`run_classifiers` together
    (:func:`kr_utils.distill.train_students`; one run alone is one model), in this process or in
    a worker; returns their results, not yet cached. An interrupted group resumes from its
    ``.partial.pt`` beside the first run's cache file."""
    first = Path(jobs[0].cache_path)
    tag = "" if len(jobs) == 1 else ".group-" + fingerprint({"keys": keys})[:10]
    resume = first.with_name(first.stem + tag + ".partial.pt")
    t0 = time.perf_counter()
    trained = distill.train_students([j.train for j in jobs], [j.val for j in jobs], recipe,
                                     seeds=[j.seed for j in jobs], device=device,
                                     report={"real_test": test} if test_curve else None, resume_path=resume,
                                     desc=[j.desc for j in jobs], select_best=select_best)
    elapsed = time.perf_counter() - t0
    out = []
    for model, hist in trained:
        logits = evaluate.predict_logits(model, test[0], device=device)
        rep = evaluate.classification_report(logits, test[1])
        out.append({"history": plain(hist), "accuracy": rep["accuracy"], "per_class_accuracy": rep["per_class_accuracy"],
                    "confusion_matrix": rep["confusion_matrix"], "test_logits": logits.cpu(),
                    "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                    "train_time_s": elapsed / len(jobs), "trained_with": len(jobs)})
    return out


def holdout_accuracy(model, holdout, device) -> float:
    """``model``'s accuracy on the real validation digits ``holdout`` = (x, y)."""
    return evaluate.classification_report(evaluate.predict_logits(model, holdout[0], device=device),
                                          holdout[1])["accuracy"]


def per_class_subset(labels, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` digits of each class (0 to the highest label), drawn at random (sorted)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    idx = []
    for c in range(int(labels.max()) + 1):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"class {c} has {len(members)} digits, fewer than per_class={per_class}")
        idx.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(idx))


def thesis_background(images_uint8) -> np.ndarray:
    """The thesis' stored digits: its code mapped [-1, 1] to [0, 1] twice before writing
    uint8, so black (0) became 127 and white stayed 255: v -> 127.5 + v / 2."""
    return np.floor(127.5 + np.asarray(images_uint8, dtype=np.float32) / 2).astype(np.uint8)


def thesis_code_sampler(cfg: Profile) -> SamplerConfig:
    """The sampler the thesis' code ran (:data:`kr_utils.thesis.RECIPE`): its clipped mode, an
    ancestral chain with no noise at any step (each step the posterior mean, eq. 6), x0 clamped,
    ``guide_w = 0.5`` (w = 1.5 here); 400 steps, respaced on this book's 1,000-step schedule,
    or the profile's ``knob_steps`` where that is fewer (the cpu profile, as in chapter 3)."""
    c = THESIS_CODE
    return dataclasses.replace(cfg.sampler, sampler="ancestral", num_steps=min(c["steps"], cfg.sampler.knob_steps),
                               clip_x0=c["clip_x0"], guidance_w=c["guidance_w"], x_T_scale=1.0,
                               noise_scale=c["noise_scale"])


def edge_note(chosen: dict, choices) -> str:
    """The sentence a budget chosen at the largest candidate needs (chapters 5 and 6):
    ``chosen`` maps each architecture to its chosen epochs among ``choices``; empty when none
    sits at the edge of the candidates."""
    edge = [a for a, n in chosen.items() if choices and n == max(choices)]
    if not edge:
        return ""
    return (f"{', '.join(edge)} chose the largest candidate, where {'its' if len(edge) == 1 else 'their'} validation "
            "accuracy was highest: a larger budget may do better still, and the gaps between architectures "
            "may shrink with it")


def equal_update_epochs(epochs: int, per_class: int, smaller_per_class: int) -> int:
    """Epochs on a set of ``smaller_per_class`` digits per class that give about as many
    optimiser updates as ``epochs`` on ``per_class`` (a smaller set must not mean less training)."""
    return max(1, round(epochs * per_class / smaller_per_class))


# ------------------------------------------------------------------------------- degradation (chapter 6)

MIN_SET = 20  # below this many kept digits a student and its validation split mean nothing


def _degradation_keys(cfg: Profile, step: int, seed: int, balanced: bool = False) -> dict:
    """The cache files and keys of checkpoint ``step``'s unfiltered draw (``pool``) and set."""
    out = artifact_dir(cfg.run)
    path = out / f"diffusion_step{step}.pt"
    pool_key = fingerprint({"gen": cfg.sampler, "n": cfg.studies.degradation_per_class, "seed": seed}, path,
                           out / "teacher.pt")
    key = fingerprint({"pool": pool_key, "kept": cfg.studies.degradation_kept, "thr": cfg.synth.threshold,
                       "labels": cfg.synth.label_mode,
                       **({"balanced": "scarcest class's share, requested labels"} if balanced else {})})
    name = f"set_step{step}" + ("_balanced" if balanced else "")
    return {"checkpoint": path, "pool": out / "degradation" / f"pool_step{step}.pt", "pool_key": pool_key,
            "set": out / "degradation" / f"{name}.pt", "key": key}


def degradation_pool(cfg: Profile, step: int, teacher, sampler, *, seed: int, device) -> dict:
    """Checkpoint ``step``'s unfiltered draw, not cached here: ``studies.degradation_per_class``
    digits of each class drawn by ``sampler`` and labelled by ``teacher``
    (:func:`kr_utils.synth.draw_labelled`); ``teacher`` None loads the profile's ``teacher.pt``."""
    if teacher is None:
        teacher = load_model(artifact_dir(cfg.run) / "teacher.pt", "teacher", device)
    t0 = time.perf_counter()
    unet = load_model(_degradation_keys(cfg, step, seed)["checkpoint"], "diffusion", device)
    pool = synth.draw_labelled(synth.DigitSource(unet, sampler, teacher),
                               np.repeat(np.arange(cfg.num_classes), cfg.studies.degradation_per_class),
                               cfg.sampler, seed=seed, device=device)
    return {**{k: torch.as_tensor(v) for k, v in pool.items()}, "time_s": time.perf_counter() - t0}


def degradation_set(cfg: Profile, step: int, teacher, sampler, *, seed: int, device,
                    balanced: bool = False) -> tuple[str, dict]:
    """The synthetic set of the milestone checkpoint ``diffusion_step<step>.pt`` (cached under
    ``degradation/``): ``studies.degradation_per_class`` digits of each class drawn by
    ``sampler`` (:func:`degradation_pool`, cached on its own: a new threshold or set size reuses
    it), the teacher's accepted ones (confidence at or above ``synth.threshold``, labelled by
    ``synth.label_mode``) counted, and ``studies.degradation_kept`` of them drawn at random by
    ``seed``, whatever their label: every checkpoint's students learn from sets of one size, so
    they make the same number of updates, and a generator that makes mostly one class gives a
    set of mostly that class (its ``label_counts`` show it). A checkpoint whose teacher accepts
    fewer digits than that keeps them all and is marked ``short``: it gets no student.

    ``balanced`` (chapter 6, as the thesis' code balanced and labelled its sets): an equal share
    of the kept digits from each *requested* class's accepted ones, labelled by the requested
    class whatever ``synth.label_mode``, the share cut to the accepted
    digits of the scarcest class where it has fewer (a smaller set, whose students
    :func:`degradation_seed_students` train for proportionally more epochs), ``short`` only
    below :data:`MIN_SET` digits. Either way ``requested_accuracy`` is the share of the
    whole unfiltered draw whose teacher's label is the requested class: a classifier trained on
    real digits scoring the checkpoint's digits (the thesis' §4.4 metric, as its Fig. 19 caption
    words it). Returns ``(key of its inputs, set)``."""
    files, kept_n = _degradation_keys(cfg, step, seed, balanced), cfg.studies.degradation_kept

    def compute():
        t0 = time.perf_counter()
        pool = cached(files["pool"], files["pool_key"],
                      lambda: degradation_pool(cfg, step, teacher, sampler, seed=seed, device=device))
        requested = np.asarray(pool["requested"]).astype(np.int64)
        logits = torch.as_tensor(pool["logits"]).float()
        conf, label = logits.softmax(1).max(1)
        if cfg.synth.label_mode == "requested" or balanced:  # balanced: as the thesis' code, the requested class
            label = torch.from_numpy(requested).long()
        accepted = torch.nonzero(conf >= cfg.synth.threshold).flatten()
        rng = np.random.default_rng(seed)
        if balanced:  # an equal share of each requested class, as large as the scarcest class allows
            per_class = [accepted[torch.from_numpy(requested[accepted.numpy()] == c)] for c in range(cfg.num_classes)]
            share = min(kept_n // cfg.num_classes, *(len(a) for a in per_class))
            short = share * cfg.num_classes < MIN_SET
            idx = torch.cat([a[np.sort(rng.choice(len(a), share, replace=False))] for a in per_class]).sort().values
        else:
            short = len(accepted) < kept_n
            idx = accepted if short else accepted[np.sort(rng.choice(len(accepted), kept_n, replace=False))]
        labels = label[idx].long()
        return {"images": torch.as_tensor(pool["images"])[idx], "labels": labels, "logits": logits[idx],
                "requested": torch.from_numpy(requested[idx.numpy()]).long(), "generated": len(requested),
                "requested_accuracy": float((logits.argmax(1).numpy() == requested).mean()),
                "accepted": len(accepted), "acceptance": len(accepted) / len(requested), "short": short,
                "label_counts": torch.bincount(labels, minlength=cfg.num_classes).tolist(),
                "time_s": pool["time_s"] + time.perf_counter() - t0}

    return files["key"], cached(files["set"], files["key"], compute)


def degradation_sets(cfg: Profile, steps, teacher, sampler, *, seed: int, device, balanced: bool = False) -> dict:
    """``{step: degradation_set(...)}`` for the checkpoints ``steps``. Where the ``parallel_runs``
    lever is on (a CPU of two cores or more), the draws that neither set nor draw caches hold are
    made first, side by side in worker processes (:func:`kr_utils.workers.run_in_waves`), each
    with the threads that all of ``steps`` share (cached ones too, so a draw made again after an
    interruption has the threads it first had), and cached here as each wave ends."""
    steps = list(steps)
    lever = levers(device)
    if lever.parallel_runs and torch.device(device).type == "cpu" and len(steps) > 1:
        files = {step: _degradation_keys(cfg, step, seed, balanced) for step in steps}
        todo = [step for step in steps if not is_current(files[step]["set"], files[step]["key"])
                and not is_current(files[step]["pool"], files[step]["pool_key"])]
        calls = [((cfg, step, None, sampler), {"seed": seed, "device": "cpu"}) for step in todo]
        for i, pool, share, _ in workers.run_in_waves(degradation_pool, calls, threads_each=workers.threads_per_run(len(steps))):
            pool["time_s"] = share  # its share of its wave's wall time: what it cost the machine
            save_result(files[todo[i]]["pool"], files[todo[i]]["pool_key"], pool, share)
    return {step: degradation_set(cfg, step, teacher, sampler, seed=seed, device=device, balanced=balanced)
            for step in steps}


def degradation_students(cfg: Profile, sets: dict, *, seed: int, device, test, holdout=None) -> dict:
    """A student of each ``studies.grid_archs`` architecture, with the profile's labels, trained
    for ``studies.degradation_epochs`` on each set of :func:`degradation_set` that is not
    ``short`` (cached); ``{(arch, step): run}``, each run with its accuracy on the real
    validation digits ``holdout`` too."""
    out, st = artifact_dir(cfg.run), cfg.student
    splits = {step: (key, distill.synthetic_split(s["images"].numpy(), s["labels"].numpy(), s["logits"].numpy(),
                                                  st.val_fraction, seed))
              for step, (key, s) in sets.items() if not s["short"] and len(s["labels"]) >= MIN_SET}
    students = {}
    for arch in cfg.studies.grid_archs:  # one call per architecture: its checkpoints' runs side by side
        jobs = [RunJob(tr, va, seed, out / "degradation" / f"{arch}_step{step}.pt", key, f"{arch} step {step}")
                for step, (key, (tr, va)) in splits.items()]
        runs = run_classifiers(jobs, st.recipe(arch=arch, epochs=cfg.studies.degradation_epochs), device=device,
                               test=test, test_curve=False, holdout=holdout) if jobs else []
        students.update({(arch, step): run for step, run in zip(splits, runs)})
    if not any(arch == st.arch for arch, _ in students):
        raise RuntimeError(f"no checkpoint of {sorted(sets)} gave {cfg.studies.degradation_kept} digits the teacher "
                           f"accepts at {cfg.synth.threshold}; raise studies.degradation_per_class or lower "
                           f"studies.degradation_kept")
    return students


def degradation_budget(cfg: Profile, final_set: tuple, *, seed: int, device, test, holdout) -> dict:
    """Each ``studies.grid_archs`` architecture's epochs for chapter 6, chosen on the real
    validation digits ``holdout``: one student (seed ``seed``) of each candidate of
    ``studies.degradation_epoch_choices`` trained on ``final_set`` (the last checkpoint's,
    ``(key, set)`` of :func:`degradation_set`), the candidate with the highest
    ``val_real_accuracy`` kept (the fewest epochs on a tie). Without candidates, every
    architecture gets ``studies.degradation_epochs``. Returns ``{"epochs": {arch: epochs},
    "val_real_accuracy": {arch: {epochs: accuracy}}}``; the test set is only scored."""
    e, st = cfg.studies, cfg.student
    if not e.degradation_epoch_choices:
        return {"epochs": {a: e.degradation_epochs for a in e.grid_archs}, "val_real_accuracy": {}}
    key, s = final_set
    tr, va = distill.synthetic_split(s["images"].numpy(), s["labels"].numpy(), s["logits"].numpy(), st.val_fraction, seed)
    out = artifact_dir(cfg.run) / "degradation"
    chosen, val_scores = {}, {}
    for arch in e.grid_archs:
        val_scores[arch] = {}
        for n in e.degradation_epoch_choices:
            job = RunJob(tr, va, seed, out / f"budget_{arch}_{n}ep.pt", key, f"{arch}, {n} epochs")
            with logged(out / "training.log"):
                run = run_classifiers([job], st.recipe(arch=arch, epochs=n, patience=n + 1, soft=False), device=device,
                                      test=test, test_curve=False, holdout=holdout, select_best=False)[0]
            val_scores[arch][n] = run["val_real_accuracy"]
        chosen[arch] = max(val_scores[arch], key=lambda n: (val_scores[arch][n], -n))
    return {"epochs": chosen, "val_real_accuracy": val_scores}


@contextlib.contextmanager
def logged(path):
    """The block's printed lines and progress bars (the students' per-epoch log) appended to
    ``path`` instead of the page, which gets a one-line summary from its caller."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        yield path


def degradation_seed_students(cfg: Profile, sets: dict, epochs: dict, *, device, test, holdout) -> dict:
    """Chapter 6's students: for each ``studies.grid_archs`` architecture, each set of
    :func:`degradation_set` that is not ``short`` and each of ``studies.degradation_seeds`` (the
    seed draws the student's weights, batches and validation split), for ``epochs[arch]``
    (:func:`degradation_budget`) on a full set of ``studies.degradation_kept`` digits and
    proportionally more on a smaller one (:func:`equal_update_epochs`: the same updates; no early
    stopping, so every run makes them, and its last weights are scored, as the thesis' were),
    trained on the set's labels alone (hard labels: the requested class), cached
    as ``degradation/<arch>_step<step>_seed<s>.pt``: ``{(arch, step): {seed: run}}``, each run
    with its ``val_real_accuracy``."""
    out, st, e = artifact_dir(cfg.run) / "degradation", cfg.student, cfg.studies
    ok = {step: (key, s) for step, (key, s) in sets.items() if not s["short"] and len(s["labels"]) >= MIN_SET}
    students = {}
    print(f"students' per-epoch log: {out / 'training.log'}")
    for arch in e.grid_archs:
        by_epochs: dict = {}  # sets of one size train with one recipe, their seeds side by side
        for step, (key, s) in ok.items():
            n = equal_update_epochs(epochs[arch], e.degradation_kept, len(s["labels"]))  # the same updates
            for seed in e.degradation_seeds:
                tr, va = distill.synthetic_split(s["images"].numpy(), s["labels"].numpy(), s["logits"].numpy(),
                                                 st.val_fraction, seed)
                by_epochs.setdefault(n, []).append(((step, seed), RunJob(
                    tr, va, seed, out / f"{arch}_step{step}_seed{seed}.pt", key, f"{arch} step {step} seed {seed}")))
        for n, items in by_epochs.items():
            with logged(out / "training.log"):  # no early stopping: every checkpoint's students make their updates
                runs = run_classifiers([j for _, j in items], st.recipe(arch=arch, epochs=n, patience=n + 1, soft=False),
                                       device=device, test=test, test_curve=False, holdout=holdout, select_best=False)
            for ((step, seed), _), run in zip(items, runs):
                students.setdefault((arch, step), {})[seed] = run
    if not any(arch == st.arch for arch, _ in students):
        raise RuntimeError(f"no checkpoint of {sorted(sets)} gave {e.degradation_kept} digits the teacher accepts at "
                           f"{cfg.synth.threshold} in every requested class; raise studies.degradation_per_class or "
                           f"lower studies.degradation_kept")
    return students


def degradation_seed_table(cfg: Profile, sets: dict, students: dict, test_labels):
    """Chapter 6's table: one row per checkpoint (``step_<N>``) with its fraction of the
    training, digits generated and accepted, the real classifier's accuracy on its unfiltered
    digits against the requested class (one reading of the thesis' §4.4), with its 95% Wilson
    interval over the draw's digits (``requested_low``, ``requested_high``), and for each architecture
    the mean real-test accuracy of its seeds with the 95% interval over seeds and test digits
    (:func:`kr_utils.comparison.accuracy_interval`; NaN: a short set, no student)."""
    import pandas as pd

    from .comparison import accuracy_interval, binomial_interval

    y = torch.as_tensor(test_labels)
    rows = {}
    for step, (_, s) in sets.items():
        k = round(s["requested_accuracy"] * s["generated"])  # the draw's digits read as their requested class
        low, high = binomial_interval(k, s["generated"])
        row = {"fraction_of_training": step / cfg.diffusion.steps, "generated": s["generated"], "accepted": s["accepted"],
               "kept": len(s["labels"]), "requested_accuracy": s["requested_accuracy"],
               "requested_low": low, "requested_high": high}
        for arch in cfg.studies.grid_archs:
            runs = students.get((arch, step))
            if runs:
                mean, lo, hi = accuracy_interval(evaluate.correct_on(runs, y))
            else:
                mean = lo = hi = np.nan
            row.update({arch: mean, f"{arch}_low": lo, f"{arch}_high": hi})
        rows[f"step_{step}"] = row
    return pd.DataFrame(rows).T


def degradation_readings(cfg: Profile, classifiers: dict, *, seed: int, device) -> dict:
    """The thesis' §4.4 metric as the captions of its Figs. 19-21 word it, one curve per
    architecture: each classifier of ``classifiers`` (``{arch: [model, ...]}``, one per seed:
    chapter 1's study teachers, trained on real digits) reads each checkpoint's whole unfiltered
    draw (:func:`degradation_pool`'s cache, which :func:`degradation_sets` fills), and the share
    it reads as the requested class is its score. Returns ``{arch: {step: (mean, low, high)}}``:
    the mean over the architecture's classifiers with the 95% interval over them and over the
    draw's digits (:func:`kr_utils.comparison.mean_interval`)."""
    from .comparison import mean_interval

    out = {arch: {} for arch in classifiers}
    for step in cfg.studies.degradation_milestones:
        files = _degradation_keys(cfg, step, seed)
        pool = lookup(files["pool"], files["pool_key"])
        if pool is MISSING:
            raise FileNotFoundError(f"{files['pool']}: checkpoint {step}'s draw is not cached (or is of other "
                                    "settings); build the degradation sets first (studies.degradation_sets)")
        x, requested = to_model_range(pool["images"]), torch.as_tensor(pool["requested"]).long()
        for arch, models in classifiers.items():
            right = [(predict_logits(m, x, device=device).argmax(1) == requested).numpy() for m in models]
            out[arch][step] = mean_interval(np.stack(right))
    return out


def closer_curve(cfg: Profile, table, readings: dict, thesis_points: dict, thesis_epochs: int) -> dict:
    """Per architecture, how far the thesis' degradation values (``thesis_points``: ``{arch:
    {epoch: accuracy}}`` of its ``thesis_epochs``) lie from this book's two curves, at each
    checkpoint that sits at the same fraction of training: its students' mean (``table``,
    :func:`degradation_seed_table`) and its real classifiers' reading of the draw (``readings``,
    :func:`degradation_readings`), in points. ``{arch: [{"epoch", "thesis", "students",
    "readings"}, ...]}``; a value without a student or a reading at its fraction is left out."""
    steps = {round(step / cfg.diffusion.steps, 6): step for step in cfg.studies.degradation_milestones}
    out = {}
    for arch, points in thesis_points.items():
        if arch not in readings or arch not in table.columns:
            continue
        rows = []
        for epoch, value in points.items():
            step = steps.get(round(epoch / thesis_epochs, 6))
            if step is None or step not in readings[arch] or not np.isfinite(float(table.loc[f"step_{step}", arch])):
                continue
            rows.append({"epoch": epoch, "thesis": value,
                         "students": abs(100 * (value - float(table.loc[f"step_{step}", arch]))),
                         "readings": abs(100 * (value - readings[arch][step][0]))})
        if rows:
            out[arch] = rows
    return out


def closer_sentence(closer: dict) -> str:
    """:func:`closer_curve` in words, point by point: at each of the thesis' epochs, which curve
    its value lies closer to and how far from each (no interval: the thesis' values are single
    runs). Fewer than two shared points in all: no comparison."""
    if sum(len(rows) for rows in closer.values()) < 2:
        return ("Fewer than two checkpoints here sit at the fractions of training of the thesis' values: no curve is "
                "compared with them.")
    parts = []
    for arch, rows in closer.items():
        said = [f"at epoch {r['epoch']} {'its students' if r['students'] < r['readings'] else 'the real classifiers'} "
                f"({r['students']:.1f} points from the students, {r['readings']:.1f} from the real classifiers)"
                for r in rows]
        parts.append(f"{arch}: " + ", ".join(said))
    return "; ".join(parts) + "."


def degradation_seed_detail(students: dict, arch: str, test_labels):
    """What a mean hides, per checkpoint of ``arch``'s students (:func:`degradation_seed_students`):
    each seed's real-test accuracy, how many seeds collapsed (:func:`collapsed_seeds`) and the
    change against the last checkpoint's students with its 95% interval over seeds and test
    digits (:func:`kr_utils.comparison.compare_runs`, unpaired: the seeds learn from other sets)."""
    import pandas as pd

    from .comparison import compare_runs

    y = torch.as_tensor(test_labels)
    steps = sorted(step for a, step in students if a == arch)
    correct = {step: evaluate.correct_on(students[(arch, step)], y) for step in steps}
    rows = {}
    for step in steps:
        runs = students[(arch, step)]
        c = None if step == steps[-1] else compare_runs(correct[step], correct[steps[-1]], paired=False)
        rows[f"step {step}"] = {
            "each seed (%)": ", ".join(f"{100 * r['accuracy']:.1f}" for r in runs.values()),
            "collapsed seeds": f"{len(collapsed_seeds(runs, y)['seeds'])} of {len(runs)}",
            "against the last checkpoint (points, 95% interval)": "" if c is None else
                f"{100 * c.difference:+.1f} [{100 * c.ci95[0]:+.1f}, {100 * c.ci95[1]:+.1f}] ({c.verdict})"}
    return pd.DataFrame(rows).T


def degradation_falls(students: dict, arch: str, test_labels) -> str:
    """Where ``arch``'s students of :func:`degradation_seed_students` change between neighbouring
    checkpoints by more than their interval over seeds and test digits allows
    (:func:`kr_utils.comparison.compare_runs`, unpaired: the seeds learn from other sets), in words."""
    from .comparison import compare_runs

    y = torch.as_tensor(test_labels)
    steps = sorted(step for a, step in students if a == arch)  # in training order
    correct = {step: evaluate.correct_on(students[(arch, step)], y) for step in steps}
    said, covers = [], "over seeds and test digits"
    for a, b in zip(steps, steps[1:]):
        c = compare_runs(correct[b], correct[a], paired=False)
        covers = c.covers
        if c.verdict in ("higher", "lower"):
            said.append(f"from step {a} to step {b} it {'rises' if c.verdict == 'higher' else 'falls'} "
                        f"{100 * abs(c.difference):.1f} points (95% interval [{100 * c.ci95[0]:+.1f}, "
                        f"{100 * c.ci95[1]:+.1f}], {c.covers})")
    return "; ".join(said) if said else f"no change that the 95% intervals ({covers}) separate"


def degradation_table(cfg: Profile, sets: dict, students: dict):
    """One row per checkpoint (index ``step_<N>``): its fraction of the training, digits
    generated, accepted and kept, acceptance, the share of the kept set its most frequent label
    takes, the optimiser updates a student makes on it, and each architecture's real-test
    accuracy (NaN: the teacher accepted too few digits)."""
    import pandas as pd

    st = cfg.student
    return pd.DataFrame({f"step_{step}": {
        "fraction_of_training": step / cfg.diffusion.steps, "generated": s["generated"], "accepted": s["accepted"],
        "kept": len(s["labels"]), "acceptance": s["acceptance"],
        "top_label_share": max(s["label_counts"]) / max(1, len(s["labels"])),
        "updates": distill.optimizer_updates(len(s["labels"]), st.val_fraction, st.batch_size,
                                             cfg.studies.degradation_epochs),
        **{arch: students[(arch, step)]["accuracy"] if (arch, step) in students else np.nan
           for arch in cfg.studies.grid_archs}}
        for step, (_, s) in sets.items()}).T


def closest_student(students: dict, arch: str, accuracy: float) -> int:
    """The checkpoint step whose ``arch`` student's accuracy on the real *validation* digits
    (``val_real_accuracy``, :func:`run_classifiers` with ``holdout``) is closest to ``accuracy``;
    the test set plays no part in the choice."""
    runs = [k for k in students if k[0] == arch]
    missing = [k for k in runs if "val_real_accuracy" not in students[k]]
    if missing:
        raise ValueError(f"students {missing} carry no val_real_accuracy: train them with holdout= "
                         f"(the real validation digits) to choose between them")
    return min(runs, key=lambda k: abs(students[k]["val_real_accuracy"] - accuracy))[1]


COLLAPSE_BELOW = 0.5  # a student below this real-test accuracy has collapsed (half the digits wrong)


def collapsed_seeds(runs: dict, test_labels) -> dict:
    """The seeds of ``{seed: run}`` whose students collapsed (real-test accuracy below
    :data:`COLLAPSE_BELOW`), and, for each, the share of the test digits its student puts in
    its most predicted class (near 1: it answers one class whatever the digit)."""
    seeds, shares = [], []
    for s, r in runs.items():
        if r["accuracy"] < COLLAPSE_BELOW:
            pred = torch.as_tensor(r["test_logits"]).argmax(1)
            seeds.append(s)
            shares.append(float(torch.bincount(pred).max()) / len(test_labels))
    return {"seeds": seeds, "top_class_share": shares}


# ------------------------------------------------------------------------------- sampling knobs (chapter 3)

GUIDANCE_WEIGHTS = (0.0, 0.5, 1.0, 2.0, 4.0)
NOISE_SCALES = ((1.0, 1.0), (1.0, 0.5), (0.5, 1.0), (0.5, 0.5))  # (x_T scale, per-step noise scale)


@dataclass(frozen=True)
class Knob:
    """One sampling setting of chapter 3's study of the thesis' knobs (§3.3.3-§3.3.4)."""

    label: str
    sampler: str
    steps: int
    clip: bool
    w: float
    x_T_scale: float = 1.0
    noise_scale: float = 1.0

    @property
    def passes(self) -> int:
        """Network passes per digit: one per step, two where guidance mixes the conditional and
        unconditional predictions (w other than 0 and 1, :func:`kr_utils.diffusion.guided_eps`)."""
        return self.steps * (1 if self.w in (0.0, 1.0) else 2)

    def drawing(self) -> tuple:
        """What the digits depend on (two names for one setting draw once)."""
        return (self.sampler, self.steps, self.clip, self.w, self.x_T_scale, self.noise_scale)


def knob_settings(sampling: SamplerConfig) -> dict[str, Knob]:
    """The settings by stable id: clipping off and on, the guidance weights, the noise scales
    (all with the ancestral chain on ``knob_steps`` steps), and the profile's own sampler."""
    w0, n = sampling.guidance_w, sampling.knob_steps
    knobs = {"no_clip": Knob("no clipping", "ancestral", n, False, w0),
             "clip": Knob("clipping", "ancestral", n, True, w0)}
    knobs.update({f"w_{w}": Knob(f"w={w}", "ancestral", n, True, w) for w in GUIDANCE_WEIGHTS})
    knobs.update({f"xT_{a}_noise_{b}": Knob(f"x_T×{a}, noise×{b}", "ancestral", n, True, w0, a, b)
                  for a, b in NOISE_SCALES})
    knobs["ddim"] = Knob(f"{sampler_label(sampling)} (the set's sampler)", sampling.sampler,
                         sampling.num_steps, sampling.clip_x0, w0, sampling.x_T_scale, 1.0)
    return knobs


def knob_labels(sampling: SamplerConfig, num_classes: int = 10) -> torch.Tensor:
    """The classes asked of every setting: ``knob_per_class`` of each of the ``num_classes``
    (the profile's :attr:`~kr_utils.config.Profile.num_classes`), in class order."""
    return torch.arange(num_classes).repeat_interleave(sampling.knob_per_class)


def knob_trajectory_steps(cfg: Profile, schedule) -> tuple[int, ...]:
    """Nine timesteps of the respaced ancestral chain at which chapter 3 keeps the state."""
    ts = build_sampler(cfg.sampler, schedule, sampler="ancestral", num_steps=cfg.sampler.knob_steps).timesteps
    return tuple(ts[torch.linspace(0, len(ts) - 1, 9).round().long()].tolist())


def knob_study(cfg: Profile, unet, teacher, schedule, *, seed: int, device) -> dict:
    """Chapter 3: the digits of every :func:`knob_settings` setting (the same classes and noise
    for each, cached under ``knobs/<id>.pt``) and what the teacher makes of them
    (:func:`kr_utils.evaluate.generation_quality`: confidence, agreement with the request,
    acceptance at ``synth.threshold``, diversity); ``{id: result}``."""
    out, sampling, threshold = artifact_dir(cfg.run), cfg.sampler, cfg.synth.threshold
    labels, keep = knob_labels(sampling, cfg.num_classes), knob_trajectory_steps(cfg, schedule)
    knobs = knob_settings(sampling)

    def run(knob_id: str, k: Knob):
        def compute():
            s = build_sampler(sampling, schedule, sampler=k.sampler, clip_x0=k.clip, noise_scale=k.noise_scale,
                              num_steps=k.steps)
            t0 = time.perf_counter()
            x, traj = generate(unet, s, labels, k.w, torch.Generator().manual_seed(seed), x_T_scale=k.x_T_scale,
                               progress=True, return_trajectory=keep)
            x = to_model_range(to_uint8(x))  # what the teacher and a student would see
            return {"images": x.half(), "samples_per_s": len(x) / (time.perf_counter() - t0),
                    "trajectory": torch.stack([traj[t][:: sampling.knob_per_class] for t in keep], 1).half()
                    if k.sampler == "ancestral" else None,
                    **evaluate.generation_quality(teacher, x, labels, threshold, device=device,
                                                  group_by_teacher=k.w == 0)}
        key = fingerprint({"setting": k.drawing(), "labels": labels.tolist(), "seed": seed, "threshold": threshold},
                          out / "diffusion.pt", out / "teacher.pt")
        return cached(out / "knobs" / f"{knob_id}.pt", key, compute)

    first = {}  # a setting listed under two ids (w = 1 is also "clip") is drawn once
    for knob_id, k in knobs.items():
        first.setdefault(k.drawing(), knob_id)
    return {knob_id: run(first[k.drawing()], knobs[first[k.drawing()]]) for knob_id, k in knobs.items()}


KNOB_COLUMNS = {"confidence": "teacher confidence", "agreement": "agrees with request", "accepted": "accepted",
                "diversity": "diversity", "samples_per_s": "digits/s"}


def knob_table(results: dict):
    """The measures of each setting, one row per id (display names: :data:`KNOB_COLUMNS` and
    the settings' labels)."""
    import pandas as pd

    return pd.DataFrame({k: {c: r[c] for c in KNOB_COLUMNS} for k, r in results.items()}).T


# Chapter 3's differences with their intervals: (setting, setting it is set against), by name.
KNOB_PAIRS = {"clipping": ("clip", "no_clip"), "guidance": ("w_4.0", "w_1.0"),
              "step_noise": ("xT_1.0_noise_0.5", "xT_1.0_noise_1.0")}


def knob_comparisons(results: dict, teacher, labels, threshold: float, *, device, seed: int = 0) -> dict:
    """Each pair of :data:`KNOB_PAIRS` compared on acceptance (the share of digits at teacher
    confidence ``threshold`` or above) and on diversity (:func:`kr_utils.evaluate.feature_diversity`
    by requested class): ``{pair: {"accepted": Comparison, "diversity": Comparison}}``, each a
    paired bootstrap over the digits, which every setting drew from the same noise
    (:func:`kr_utils.comparison.compare_draws`)."""
    from .comparison import compare_draws

    def measures(knob_id):
        x = results[knob_id]["images"].float()
        conf = evaluate.predict_logits(teacher, x, device=device).softmax(1).max(1).values
        return (conf >= threshold).cpu().numpy(), evaluate.features(teacher, x, device=device).float().cpu().numpy()

    def diversity(f, y):
        return evaluate.feature_diversity(torch.from_numpy(f), torch.from_numpy(y))

    labels = np.asarray(labels)
    out = {}
    for name, (a, b) in KNOB_PAIRS.items():
        (acc_a, f_a), (acc_b, f_b) = measures(a), measures(b)
        out[name] = {"accepted": compare_draws(lambda v, y: v.mean(), acc_a, acc_b, labels, seed=seed),
                     "diversity": compare_draws(diversity, f_a, f_b, labels, seed=seed)}
    return out


def knob_texts(cfg: Profile, results: dict, knobs: dict, comps: dict, real_diversity: float) -> dict:
    """Chapter 3's sentences on the knobs (``results``: :func:`knob_study`; ``knobs``:
    :func:`knob_settings`; ``comps``: :func:`knob_comparisons`): acceptance and diversity as
    clipping, guidance and the noise scales move them, against real digits' diversity, the
    network passes a digit costs, and each pair's difference worded from its interval."""
    r = lambda k, c: results[k][c]  # noqa: E731
    noise_ids = [f"xT_{a}_noise_{b}" for a, b in NOISE_SCALES]
    fewer = knobs["clip"].passes / knobs["ddim"].passes
    c, g, n = comps["clipping"], comps["guidance"], comps["step_noise"]
    return {"knob_clip_accept": f"{100 * r('no_clip', 'accepted'):.1f}% → {100 * r('clip', 'accepted'):.1f}%",
            "knob_w_div": f"{r('w_0.0', 'diversity'):.2f} → {r('w_4.0', 'diversity'):.2f}",
            "knob_w_accept": f"{100 * r('w_0.0', 'accepted'):.1f}% → {100 * r('w_4.0', 'accepted'):.1f}%",
            "knob_real_div": f"{real_diversity:.2f}",
            "knob_noise_conf": ", ".join(f"{r(k, 'confidence'):.3f}" for k in noise_ids),
            "knob_noise_div": ", ".join(f"{r(k, 'diversity'):.2f}" for k in noise_ids),
            "gen_set_sampler": sampler_label(cfg.sampler),
            "ddim_speedup": f"needs {knobs['ddim'].passes:,d} network passes per digit against {knobs['clip'].passes:,d} "
                            f"for the ancestral chain of this study{f', {fewer:.0f} times fewer' if fewer >= 1.5 else ''} "
                            "(the digits/s column times each setting's cached run under the load of its moment, so its "
                            "ratios are not compared)",
            "knob_clip_cmp": c["accepted"].sentence("clipping", "no clipping", 1, "acceptance"),
            "knob_w_cmp_acc": g["accepted"].sentence("w = 4", "w = 1", 1, "acceptance"),
            "knob_w_cmp_div": g["diversity"].sentence("w = 4", "w = 1", 2, "diversity", points=False),
            "knob_noise_cmp_acc": n["accepted"].sentence("per-step noise ×0.5", "per-step noise ×1", 1, "acceptance"),
            "knob_noise_cmp_div": n["diversity"].sentence("per-step noise ×0.5", "per-step noise ×1", 2, "diversity",
                                                          points=False)}


def knob_shown(cfg: Profile, results: dict, knobs: dict, real_diversity: float):
    """Chapter 3's table as the page shows it: :func:`knob_table` under the settings' labels,
    with real validation digits' diversity as the last row."""
    shown = knob_table(results).rename(index={k: v.label for k, v in knobs.items()},
                                       columns={**KNOB_COLUMNS, "accepted": f"accepted at {cfg.synth.threshold}"})
    shown.loc["real validation digits", "diversity"] = real_diversity
    return shown.style.format("{:.3f}", na_rep="")


def degradation_design_texts(cfg: Profile) -> dict:
    """Chapter 6's design in the prose's words: each checkpoint's draw and filter, the students'
    epochs and set size, the checkpoints, and how many passes over its training digits chapter
    2's U-Net makes against the thesis' epochs 8 and 80."""
    e, d = cfg.studies, cfg.diffusion
    passes = d.steps * d.batch_size / len(fit_digits(cfg, d.train_subset)[1])
    return {"degr_per_class": e.degradation_per_class, "degr_sampler": sampler_label(cfg.sampler),
            "degr_threshold": cfg.synth.threshold, "degr_epochs": evaluate.counted(e.degradation_epochs, "epoch"),
            "degr_kept": f"{e.degradation_kept:,d}",
            "degr_steps": ", ".join(f"{m:,d}" for m in e.degradation_milestones) + f" of {d.steps:,d} steps",
            "degr_passes": f"Chapter 2's U-Net makes {passes:.1f} passes over its training digits in all, "
                           + ("fewer than the thesis' made by its epoch 8" if passes < 8 else
                              "more than the thesis' made by its epoch 8")
                           + (", so the over-trained regime of its epochs 80-100, which it blamed for its last drop, is "
                              "not reached at this profile." if passes < 80 else ", as many as by its epoch 80."),
            "degr_passes_short": f"{passes:.1f} here, 100 there",
            "degr_n_checkpoints": evaluate.counted(len(e.degradation_milestones), "checkpoint"),
            "degr_augment": "augment their digits, the thesis' code did not" if cfg.student.augment
                            else "do not augment either"}


def degradation_budget_texts(cfg: Profile, budget: dict) -> dict:
    """Chapter 6's students' budget in the prose's words (``budget``: :func:`degradation_budget`):
    each architecture's epochs and optimiser updates, how they were chosen, and what the
    intervals cover."""
    e, st = cfg.studies, cfg.student
    updates = lambda n: distill.optimizer_updates(e.degradation_kept, st.val_fraction, st.batch_size, n)  # noqa: E731
    edge = edge_note(budget["epochs"], e.degradation_epoch_choices)
    return {"degr_budget": "; ".join(f"{a} {evaluate.counted(n, 'epoch')} ({evaluate.counted(updates(n), 'update')})"
                                     for a, n in budget["epochs"].items()) + (f". {edge}" if edge else ""),
            "degr_covers": "over the seeds and the test digits" if len(e.degradation_seeds) > 1
                           else "over the test digits (one seed)",
            "degr_budget_how": "the number of epochs chosen for it on the real validation digits (chapter 1's held-out "
                               "training digits, on which the teacher chose its best epoch) from "
                               f"{', '.join(map(str, e.degradation_epoch_choices))} (`kr_utils.studies.degradation_budget`: "
                               "one student of each candidate on the last checkpoint's set, so the budget suits that "
                               "checkpoint best; the test set plays no part)"
                               if e.degradation_epoch_choices else "the profile's epochs (no choice is made at this profile)"}


def degradation_shown(cfg: Profile, table):
    """Chapter 6's table as the page shows it (``table``: :func:`degradation_seed_table`): the
    draw's sizes, the teacher's reading of the draw and each architecture's students."""
    shown = table[["fraction_of_training", "generated", "accepted", "kept", "requested_accuracy", *cfg.studies.grid_archs]]
    shown = shown.rename(index=lambda k: k.replace("_", " "),
                         columns={"fraction_of_training": "fraction of training",
                                  "requested_accuracy": "teacher on the draw (one reading of §4.4)"})
    return shown.astype(float).style.format(
        {c: "{:.0f}" if c in ("generated", "accepted", "kept") else "{:.3f}" for c in shown.columns}, na_rep="no student")
