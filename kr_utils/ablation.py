"""Stage: chapter 7, the thesis' recipe as its scripts ran it, then one choice undone at a time.

The recipe (:data:`kr_utils.thesis.RECIPE`, each constant from ``JoaquinBeas/TFG`` at
d968518^): a U-Net trained on [-3, 1]; digits drawn by its clipped chain (no noise at any step,
x0 clamped, guide_w = 0.5, every pixel below 0 forced black); 100 per requested class kept at
teacher confidence 0.85 and labelled by the requested class; stored on a grey background; a
ResNet student on hard labels, Adam at a constant 1e-3, batch 64, 80 epochs without early
stopping, the last weights, no augmentation, trained on 72.25% of the set (two 85% splits).

Each variant of :data:`VARIANTS` undoes one of these choices and keeps the others; every
variant trains ``studies.ablation_seeds`` students (the seed draws the student's weights, its
data order and the two splits, which the thesis' code drew unseeded). What is *not* modelled:
the thesis' U-Net (a 256-feature ContextUnet), its 400-step schedule, 120 epochs of U-Net
training and its teacher; here chapter 2's U-Net is trained ``studies.recipe_unet_steps`` more
steps on each range (the [-1, 1] control as long as the [-3, 1] one), on chapter 2's schedule,
and the chain is respaced as in chapter 3.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from . import synth
from .comparison import accuracy_interval, compare_runs
from .checkpoints import load_checkpoint, load_model, load_schedule, save_checkpoint
from .config import ClassifierRecipe, Profile, SamplerConfig
from .data import fit_digits, fit_tensors, held_out, train_val_split
from .diffusion import DiffusionOptions, NoiseSchedule, build_sampler, sampler_label, train_diffusion
from .distill import synthetic_split, val_size
from .evaluate import correct_on, counted, summarize_seeds
from .store import array_key, artifact_dir, cached, fingerprint, note_reused
from .studies import (COLLAPSE_BELOW, RunJob, collapsed_seeds, equal_update_epochs, logged, per_class_subset, run_classifiers,
                      thesis_background, thesis_code_sampler)
from .thesis import GENERATION, RECIPE, STUDENT, STUDENT_FIRST_CHECKPOINT

# the recipe, then each variant that undoes one of its choices (stable ids: metrics.json's keys)
VARIANTS = ("thesis_recipe", "value_range", "sampler", "grey", "labels", "stopping", "lr", "size")
# two choices undone together: the U-Net of [-1, 1] and its digits stored on black (each alone keeps
# the other, and both collapse a student at small scale), compared with the same digits on grey; then
# the same with the chain's per-step noise put back at the thesis' text's 0.5 (its clipped code adds
# none; x_T kept at the code's 1), compared with the noiseless chain's row; then x_T at the text's
# 0.5 as well (the text's "0.5 / 0.5"), compared with the row before it
COMBINED = ("range_on_black", "noise_on_black", "text_on_black")
SET_OF = {"range_on_black": "value_range", "noise_on_black": "range_noise",
          "text_on_black": "range_text"}  # a row's set where not its own or the recipe's
# two controls beside them: the recipe's student on real training digits (none of the validation or
# test digits), stored on black as the test digits are, then through the recipe's grey storage
CONTROLS = ("real_black", "real_grey")
AGAINST = {**{v: "thesis_recipe" for v in VARIANTS[1:]}, "range_on_black": "value_range",
           "noise_on_black": "range_on_black", "text_on_black": "noise_on_black", "real_grey": "real_black"}  # what each row is compared with
ON_BLACK = ("grey", "range_on_black", "noise_on_black", "text_on_black", "real_black")  # the rows whose digits are not stored on grey
RANGES = {"thesis": RECIPE.value_low, "book": -1.0}  # the low end of the U-Net's training range
TEXT_NOISE = GENERATION["noise_scale"]  # §3.3.4's per-step noise scale (its clipped code adds none)
TEXT_X_T = GENERATION["x_T_scale"]  # §3.3.4's starting-noise scale (its code's default: 1)
MAX_ROUNDS = 60  # the thesis' code drew until its set was full; a generator this bad is named, not looped on


def variant_labels(cfg: Profile) -> dict:
    """What each variant of :data:`VARIANTS` changes, in a reader's words, with the profile's numbers."""
    st, e = cfg.student, cfg.studies
    return {
        "thesis_recipe": "the thesis' recipe",
        "value_range": "U-Net trained on [-1, 1], not [-3, 1]",
        "sampler": f"this book's sampling as a whole ({sampler_label(cfg.sampler)}, w = {cfg.sampler.guidance_w:g}, "
                   f"no forced black)",
        "grey": "digits stored on black, not grey",
        "labels": "the teacher's label, not the requested class",
        "stopping": f"early stopping (patience {st.patience}), best weights",
        "lr": f"learning rate {st.lr:g} (this book's), not {RECIPE.student_lr:g}, constant both",
        "size": f"{e.ablation_per_class} digits per class, not {e.thesis_per_class} (equal updates)",
        "range_on_black": "both: U-Net trained on [-1, 1], digits stored on black",
        "noise_on_black": f"both, and per-step noise {TEXT_NOISE:g} (the text's; x_T at the code's 1)",
        "text_on_black": f"both, per-step noise {TEXT_NOISE:g} and x_T at {TEXT_X_T:g} (the text's 0.5 / 0.5)",
        "real_black": f"control: {e.thesis_per_class} real training digits per class, on black",
        "real_grey": "control: the same real digits, stored on grey",
    }


# what a sentence calls each variant ("... scores 2.1 points higher than the recipe")
SHORT = {"thesis_recipe": "the recipe", "value_range": "the U-Net of [-1, 1]", "sampler": "this book's sampler",
         "grey": "storing on black", "labels": "labelling by the teacher", "stopping": "early stopping",
         "lr": "this book's learning rate", "size": "the larger set",
         "range_on_black": "the U-Net of [-1, 1] with its digits on black",
         "noise_on_black": "the U-Net of [-1, 1]'s digits on black, drawn with per-step noise",
         "text_on_black": "the same with x_T at the text's 0.5",
         "real_black": "the student of real digits on black", "real_grey": "the student of real digits on grey"}


def range_unet(cfg: Profile, low: float, device):
    """Chapter 2's U-Net (``diffusion.pt``) trained ``studies.recipe_unet_steps`` more steps on
    the real training digits mapped from [-1, 1] to [``low``, 1]: ``low = -3`` is the thesis'
    range (its loader's ``Normalize(0.5, 0.5)``, then ``data * 2 - 1``), ``low = -1`` the control
    of equal training. Saved as ``ablation/unet_range<low>.pt`` (with its schedule), reused
    while chapter 2's checkpoint and the settings are unchanged; returns its path."""
    out = artifact_dir(cfg.run)
    base = out / "diffusion.pt"
    steps = cfg.studies.recipe_unet_steps
    dcfg = dataclasses.replace(cfg.diffusion, steps=steps, milestones=(steps,))
    key = fingerprint({"diffusion": dcfg, "low": low, "seed": cfg.seed, **held_out(cfg)}, base)
    path = out / "ablation" / f"unet_range{low:g}.pt"
    if path.exists():
        ckpt = load_checkpoint(path, "diffusion")
        if ckpt["config"].get("key") == key:
            note_reused(ckpt["extra"].get("train_time_s"))
            return path
    x0, y0 = fit_tensors(cfg, dcfg.train_subset)
    x = (x0 + 1) / 2 * (1 - low) + low  # [-1, 1] -> [low, 1]
    t0 = time.perf_counter()
    run = train_diffusion(load_model(base, "diffusion", device), x, y0, dcfg, seed=cfg.seed, device=device,
                          options=DiffusionOptions(save_every_s=None, desc=f"U-Net on [{low:g}, 1]"))
    extra = {"unet": run.model.config, "schedule": load_schedule(base).spec, "losses": run.losses,
             "train_time_s": time.perf_counter() - t0, "low": low}
    save_checkpoint(path, run.model, kind="diffusion", config={"key": key}, profile=cfg.run, seed=cfg.seed,
                    extra=extra)
    return path


def recipe_sampling(cfg: Profile, sampler: str) -> SamplerConfig:
    """The thesis' chain (:func:`kr_utils.studies.thesis_code_sampler`; 'thesis'), the same chain
    with noise added at each step, ``noise_scale`` times the posterior's sigma of eq. (6), at the
    thesis' text's :data:`TEXT_NOISE` ('thesis_noise'; its code adds none, and x_T stays at its
    code's scale 1), the same with x_T at the text's :data:`TEXT_X_T` ('thesis_text': the text's
    "0.5 / 0.5", which its clipped code would have run without the per-step noise), or this
    book's sampler ('book')."""
    if sampler == "thesis_noise":
        return dataclasses.replace(thesis_code_sampler(cfg), noise_scale=TEXT_NOISE)
    if sampler == "thesis_text":
        return dataclasses.replace(thesis_code_sampler(cfg), noise_scale=TEXT_NOISE, x_T_scale=TEXT_X_T)
    return thesis_code_sampler(cfg) if sampler == "thesis" else cfg.sampler


def recipe_set(cfg: Profile, teacher, *, value_range: str, sampler: str, per_class: int, device) -> dict:
    """A set built as the thesis' code built it (:func:`kr_utils.synth.thesis_code_set`: digits
    requested per class until ``per_class`` of each reach the teacher's confidence 0.85, a round
    that keeps nothing lowering it), from the U-Net of ``value_range`` (:func:`range_unet`) and
    ``sampler`` ('thesis': its chain with every pixel below 0 forced black; 'thesis_noise': the
    same with per-step noise, :func:`recipe_sampling`; 'book': the profile's sampler, nothing
    forced); cached as ``ablation/set_<range>_<sampler>_<n>.pt``."""
    out = artifact_dir(cfg.run)
    unet_path = range_unet(cfg, RANGES[value_range], device)
    sampling = recipe_sampling(cfg, sampler)
    thr = min(RECIPE.threshold, cfg.synth.threshold)  # the smoke profile's untrained generator needs less
    key = fingerprint({"sampling": sampling, "sampler": sampler, "per_class": per_class, "threshold": thr,
                       "seed": cfg.seed, "max_rounds": MAX_ROUNDS, "threshold_rule": "per batch"}, unet_path, out / "teacher.pt")

    def compute():
        t0 = time.perf_counter()
        unet = load_model(unet_path, "diffusion", device)
        chain = build_sampler(sampling, load_schedule(unet_path), num_steps=sampling.num_steps)
        r = synth.thesis_code_set(synth.DigitSource(unet, chain, teacher), sampling, per_class=per_class, threshold=thr, seed=cfg.seed,
                                  device=device, black=sampler != "book", max_rounds=MAX_ROUNDS)
        return {**{k: torch.as_tensor(v) if isinstance(v, np.ndarray) else v for k, v in r.items()},
                "num_steps": len(chain.timesteps), "time_s": time.perf_counter() - t0}

    return cached(out / "ablation" / f"set_{value_range}_{sampler}_{per_class}.pt", key, compute)


def _class_distances(images_uint8, labels, per_class: int) -> list:
    """Per class, the pixel distances (L2, pixels in [0, 1]) between its first ``per_class`` digits."""
    x = torch.as_tensor(np.asarray(images_uint8)).float().div(255).flatten(1)
    labels = np.asarray(labels)
    out = []
    for c in np.unique(labels):
        xc = x[np.flatnonzero(labels == c)[:per_class]]
        if len(xc) > 1:
            out.append(torch.cdist(xc, xc).double().numpy())
    return out


def within_class_spread(images_uint8, labels, per_class: int = 100) -> float:
    """How different the digits of one class are from one another: the mean pixel distance
    (L2, pixels in [0, 1]) between two digits of the same class, over the first ``per_class``
    of each class, averaged over the classes. A chain that draws nearly the same digit every
    time scores far below real digits."""
    return float(np.mean([d.sum() / (len(d) * (len(d) - 1)) for d in _class_distances(images_uint8, labels, per_class)]))


def spread_interval(images_uint8, labels, per_class: int = 100, draws: int = 200, seed: int = 0) -> tuple:
    """:func:`within_class_spread` with a 95% bootstrap interval over the digits: each draw
    resamples every class's digits with replacement (stratified by class) and averages the
    distances between two draws of different digits (a digit drawn twice is not compared with
    itself); percentiles of ``draws`` draws. The interval covers which digits of this set were
    looked at, not another draw of the generator. (mean, low, high)."""
    dists = _class_distances(images_uint8, labels, per_class)
    rng = np.random.default_rng(seed)
    stats = []
    for _ in range(draws):
        per = []
        for d in dists:
            i = rng.integers(0, len(d), len(d))
            other = i[:, None] != i[None, :]
            per.append(d[np.ix_(i, i)][other].mean())
        stats.append(np.mean(per))
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return within_class_spread(images_uint8, labels, per_class), float(lo), float(hi)


def agreement_per_class(source: dict, per_class: int | None = None) -> np.ndarray:
    """Per requested class, the share of a set's kept digits (the first ``per_class`` of each,
    :func:`first_per_class`; all where None) that the teacher reads as that class (its argmax
    over ``source['logits']``): where the recipe labels by the requested class, a class at 0%
    teaches the student a wrong label for every digit of it."""
    requested = np.asarray(source["requested"])
    idx = first_per_class(requested, per_class) if per_class else np.arange(len(requested))
    requested = requested[idx]
    agree = np.asarray(source["logits"])[idx].argmax(1) == requested
    return np.array([agree[requested == c].mean() if (requested == c).any() else np.nan
                     for c in range(int(requested.max()) + 1)])


def agreement_reading(agreement, below: float = 0.5) -> str:
    """Each class's agreement (:func:`agreement_per_class`) in words, naming the classes below
    ``below``."""
    each = ", ".join(f"{c}: {100 * a:.0f}%" for c, a in enumerate(agreement) if not np.isnan(a))
    low = [str(c) for c, a in enumerate(agreement) if a < below]
    if not low:
        return f"per requested class {each}"
    return (f"per requested class {each}; for {', '.join(low)} the teacher reads {'it' if len(low) == 1 else 'them'} as "
            f"another class more often than not, so by its reading most of {'that class' if len(low) == 1 else 'those classes'}' "
            "labels are wrong for the student")


def first_per_class(labels, per_class: int) -> np.ndarray:
    """The indices of the first ``per_class`` digits of each class, in the set's order (a set
    built for more digits per class holds the one built for fewer as its first ones)."""
    labels = np.asarray(labels)
    return np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]))


def real_set(cfg: Profile, seed: int) -> dict:
    """The controls' digits for one seed: ``studies.thesis_per_class`` of each class drawn by
    ``seed`` from the real training digits every model learns from
    (:func:`kr_utils.data.fit_digits`, no validation or test digit; each seed its own draw, so
    the controls' interval covers which digits were picked), in the form of :func:`recipe_set`
    ('requested' the true label, 'logits' its one-hot), so that :func:`recipe_data` treats them
    as it treats a synthetic set."""
    images, labels = fit_digits(cfg)
    idx = per_class_subset(labels, cfg.studies.thesis_per_class, seed)
    y = torch.as_tensor(labels[idx]).long()
    return {"images": images[idx], "requested": y.numpy(), "logits": torch.nn.functional.one_hot(y, cfg.num_classes).float()}


def recipe_data(source: dict, variant: str, per_class: int, seed: int):
    """The student's training and validation data of ``variant`` from a set of
    :func:`recipe_set` (or :func:`real_set`): its first ``per_class`` digits of each requested
    class, stored on grey (black for the rows of :data:`ON_BLACK`), labelled by the requested
    class (the teacher's argmax for 'labels');
    split as the thesis' code split it, 15% held out as its synthetic test set, then 15% of
    the rest for validation, so the student learns from 72.25% (each split drawn by ``seed``)."""
    idx = first_per_class(source["requested"], per_class)
    images = np.asarray(source["images"])[idx]
    if variant not in ON_BLACK:
        images = thesis_background(images)
    logits = torch.as_tensor(source["logits"])[idx].float()
    labels = logits.argmax(1) if variant == "labels" else torch.as_tensor(source["requested"])[idx].long()
    n = len(idx)
    kept, _ = train_val_split(n, val_size(n, 1 - RECIPE.split), seed)  # the thesis' 15% synthetic test set
    return synthetic_split(images[kept], labels[kept], logits[kept], 1 - RECIPE.split, seed)


def recipe_classifier(cfg: Profile, variant: str) -> tuple[ClassifierRecipe, bool]:
    """The student's recipe and ``select_best`` of ``variant``: the thesis' (ResNet, hard labels,
    Adam at a constant lr, batch 64, ``studies.recipe_epochs`` epochs (None: its 80), no
    augmentation, the last weights), with one choice undone: 'stopping' stops after the profile's
    patience without a lower validation loss and keeps the best epoch's weights; 'lr' is this
    book's learning rate, constant as the recipe's; 'size' trains proportionally fewer epochs on
    its larger set, as many updates as the recipe makes."""
    e = cfg.studies
    epochs = e.recipe_epochs or RECIPE.student_epochs
    recipe = ClassifierRecipe(arch=RECIPE.student_arch, epochs=epochs, batch_size=RECIPE.student_batch_size,
                              lr=RECIPE.student_lr, patience=epochs + 1, soft=False, augment=RECIPE.augment,
                              lr_decay=False)
    if variant == "stopping":
        return dataclasses.replace(recipe, patience=cfg.student.patience), True
    if variant == "lr":
        return dataclasses.replace(recipe, lr=cfg.student.lr), False
    if variant == "size":
        return dataclasses.replace(recipe, epochs=equal_update_epochs(epochs, e.thesis_per_class, e.ablation_per_class),
                                   patience=epochs + 1), False
    return recipe, False


def recipe_sets(cfg: Profile, teacher, *, device) -> dict:
    """The five sets the rows learn from, each built alike for ``studies.ablation_per_class``
    digits per class (the rows take the first ``thesis_per_class`` of each class, 'size' all of
    the recipe's): the recipe's (its range and chain), 'value_range' (the [-1, 1] control U-Net),
    'sampler' (this book's sampling), 'range_noise' (the [-1, 1] U-Net, the thesis' chain with
    its per-step noise put back: :func:`recipe_sampling`) and 'range_text' (the same with x_T at
    the text's scale)."""
    n = cfg.studies.ablation_per_class
    return {"thesis_recipe": recipe_set(cfg, teacher, value_range="thesis", sampler="thesis", per_class=n, device=device),
            "value_range": recipe_set(cfg, teacher, value_range="book", sampler="thesis", per_class=n, device=device),
            "sampler": recipe_set(cfg, teacher, value_range="thesis", sampler="book", per_class=n, device=device),
            "range_noise": recipe_set(cfg, teacher, value_range="book", sampler="thesis_noise", per_class=n,
                                      device=device),
            "range_text": recipe_set(cfg, teacher, value_range="book", sampler="thesis_text", per_class=n,
                                     device=device)}


def recipe_runs(cfg: Profile, sets: dict, *, device, test) -> dict:
    """Every variant of :data:`VARIANTS` and :data:`COMBINED` over ``studies.ablation_seeds``, on
    the sets of :func:`recipe_sets` (:data:`SET_OF`), then the :data:`CONTROLS` on :func:`real_set` (cached as
    ``ablation/recipe_<variant>_seed<s>.pt``): ``{variant: {seed: run}}``.
    The students' per-epoch log goes to ``ablation/recipe_training.log``, one line per variant
    to the caller's output."""
    log = artifact_dir(cfg.run) / "ablation" / "recipe_training.log"
    runs = {}
    for name in VARIANTS + COMBINED + CONTROLS:
        t0 = time.perf_counter()
        with logged(log):
            runs[name] = _variant_runs(cfg, (lambda s: real_set(cfg, s)) if name in CONTROLS
                                       else sets.get(SET_OF.get(name, name), sets["thesis_recipe"]), name,
                                       device=device, test=test)
        accs = ", ".join(f"{100 * r['accuracy']:.1f}" for r in runs[name].values())
        print(f"{name}: real-test accuracy of each seed {accs} ({time.perf_counter() - t0:.0f} s; log: {log})")
    return runs


def _variant_runs(cfg: Profile, source, name: str, *, device, test) -> dict:
    """The ``studies.ablation_seeds`` runs of one variant on ``source`` (a set, or a function
    of the seed giving each seed's set: the controls'; :func:`recipe_runs`)."""
    out, e = artifact_dir(cfg.run), cfg.studies
    per_class = e.ablation_per_class if name == "size" else e.thesis_per_class
    recipe, select_best = recipe_classifier(cfg, name)
    jobs = []
    for s in e.ablation_seeds:
        src = source(s) if callable(source) else source
        key = fingerprint({"set": array_key(src["images"], src["requested"]), "variant": name, "per_class": per_class})
        jobs.append(RunJob(*recipe_data(src, name, per_class, s), s, out / "ablation" / f"recipe_{name}_seed{s}.pt",
                           key, f"{name}, seed {s}"))
    return dict(zip(e.ablation_seeds, run_classifiers(jobs, recipe, device=device, test=test,
                                                      select_best=select_best, test_curve=False)))


def summarize(cfg: Profile, runs: dict, test_labels) -> dict:
    """Per variant of ``runs``: its label, each seed's real-test accuracy
    (:func:`kr_utils.evaluate.summarize_seeds`), the interval of its mean over seeds and test
    digits (:func:`kr_utils.comparison.accuracy_interval`), its change against the row of
    :data:`AGAINST` (:func:`kr_utils.comparison.compare_runs`, paired by seed; None for the
    recipe and the real digits on black), its collapsed seeds and the epochs each seed trained."""
    correct = {n: correct_on(rs, test_labels) for n, rs in runs.items()}
    labels = variant_labels(cfg)
    out = {}
    for n, rs in runs.items():
        mean, lo, hi = accuracy_interval(correct[n])
        out[n] = {"label": labels[n], "accuracy": summarize_seeds([r["accuracy"] for r in rs.values()]),
                  "interval": [lo, hi],
                  "against": AGAINST.get(n),
                  "change": compare_runs(correct[n], correct[AGAINST[n]]) if n in AGAINST else None,
                  "collapsed": collapsed_seeds(rs, test_labels),
                  "epochs_trained": [len(r["history"]["epoch"]) for r in rs.values()]}
    if "noise_on_black" in runs and "real_black" in runs:  # the noisy chain's digits against as many real ones
        out["noise_on_black"]["vs_real"] = compare_runs(correct["noise_on_black"], correct["real_black"])
    return out


def table(summary: dict):
    """The chapter's table: one row per variant, its accuracy, each seed, the interval over
    seeds and test digits, the change against the row it is compared with (:data:`AGAINST`)
    with its interval, collapsed seeds."""
    import pandas as pd

    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    rows = {}
    for n, s in summary.items():
        ch = s["change"]
        rows[s["label"]] = {
            "real-test accuracy (mean of seeds)": pct(s["accuracy"]["mean"]) + "%",
            "95% interval (seeds and test digits)": f"[{pct(s['interval'][0])}, {pct(s['interval'][1])}]",
            "each seed (%)": ", ".join(f"{100 * a:.1f}" for a in s["accuracy"]["values"]),
            "change (points, 95% interval)": "" if ch is None else
                f"{100 * ch.difference:+.2f} [{100 * ch.ci95[0]:+.2f}, {100 * ch.ci95[1]:+.2f}]",
            "against": "" if ch is None else SHORT[s["against"]],
            "collapsed seeds": f"{len(s['collapsed']['seeds'])} of {s['accuracy']['n']}",
            "epochs trained": ", ".join(map(str, sorted(set(s["epochs_trained"])))),
        }
    return pd.DataFrame(rows).T


def row_text(row: dict) -> str:
    """One row of :func:`summarize` as the chapter's sentences quote it: the mean over seeds and
    the 95% interval over seeds and test digits (the one its comparisons use), e.g. '94.13%
    [90.90, 97.36] over seeds and test digits'."""
    lo, hi = row["interval"]
    over = "over seeds and test digits" if row["accuracy"]["n"] > 1 else "over the test digits (one seed)"
    return f"{100 * row['accuracy']['mean']:.2f}% [{100 * lo:.2f}, {100 * hi:.2f}] {over}"


def reached(summary: dict, thesis_accuracy: float) -> str:
    """Whether the recipe reaches the thesis' student, worded from the recipe's interval."""
    lo, hi = summary["thesis_recipe"]["interval"]
    where = f"[{100 * lo:.2f}, {100 * hi:.2f}]%"
    if lo <= thesis_accuracy <= hi:
        return (f"the thesis' {100 * thesis_accuracy:.2f}% lies inside the recipe's interval {where}: consistent "
                f"with it (which is not a proof of equality)")
    side = "above" if thesis_accuracy > hi else "below"
    return f"the thesis' {100 * thesis_accuracy:.2f}% lies {side} the recipe's interval {where}: not reached"


def consistent_with(summary: dict, thesis_accuracy: float) -> list[str]:
    """The variants (the recipe included) whose interval over seeds and test digits holds the
    thesis' accuracy, in ``summary``'s order."""
    return [n for n, s in summary.items() if s["interval"][0] <= thesis_accuracy <= s["interval"][1]]


def mostly_collapsed(summary: dict) -> list[str]:
    """The variants more than half of whose seeds collapsed (:func:`kr_utils.studies.collapsed_seeds`)."""
    return [n for n, s in summary.items() if len(s["collapsed"]["seeds"]) > s["accuracy"]["n"] / 2]


def control_reading(summary: dict) -> str:
    """What the two controls say, worded from their runs for every outcome: whether grey storage
    collapses, costs, helps or leaves alone a student of real digits (the change of 'real_grey'
    against 'real_black' and its interval), what a collapse means beside the thesis' first
    checkpoint near 89% (under its Fig. 17), and where real digits of the recipe's size stand
    against the thesis' 94.31%. Claims on generated digits are left to the variants' rows."""
    black, grey, recipe = summary["real_black"], summary["real_grey"], summary["thesis_recipe"]
    mostly = lambda s: len(s["collapsed"]["seeds"]) > s["accuracy"]["n"] / 2  # noqa: E731
    if mostly(black):
        return ("The control itself collapses at this profile's size (real digits on black): it cannot tell the "
                "storage's part from the set's.")
    ch = grey["change"]
    if mostly(grey):
        n_down, n = len(grey["collapsed"]["seeds"]), grey["accuracy"]["n"]
        out = (f"Grey storage alone costs a student of real digits, scored on black test digits, {-100 * ch.ci95[1]:.0f} "
               f"to {-100 * ch.ci95[0]:.0f} points, {n_down} of its {n} seeds below the collapse level, at this set's "
               f"size. At that size, the thesis' student, near {100 * STUDENT_FIRST_CHECKPOINT:.0f}% after its first "
               "epoch (under its Fig. 17), is hard to reconcile with grey-stored digits unless its set was stored on "
               "black (as its commit 90527a2 stored it): its script's real test digits are on black. ")
    elif ch.ci95[1] < 0:
        out = (f"Grey storage costs real digits {-100 * ch.ci95[1]:.1f} to {-100 * ch.ci95[0]:.1f} points without "
               "collapsing most seeds; what it costs generated digits is the row \"storing on black\" above. ")
    elif ch.ci95[0] > 0:
        out = "Grey storage measurably helps real digits here; what it does to generated digits is the row above. "
    else:
        out = "Grey storage makes no measurable difference to real digits"
        out += ("; the recipe's students, which collapsed in most seeds, are then not collapsed by the storage alone but "
                "by the generated digits stored that way. " if mostly(recipe) else ". ")
    lo, hi = black["interval"]
    where = f"[{100 * lo:.2f}, {100 * hi:.2f}]%"
    target = f"{100 * STUDENT['accuracy']:.2f}%"
    if lo <= STUDENT["accuracy"] <= hi:
        return out + (f"Real digits of the recipe's size, on black, are consistent with the thesis' {target} (their "
                      f"interval {where}, which is not a proof of equality).")
    side = "below" if hi < STUDENT["accuracy"] else "above"
    return out + f"Real digits of the recipe's size, on black, score {where}, {side} the thesis' {target}."


def unexplained(summary: dict, thesis_accuracy: float) -> str:
    """Chapter 7's "what stays unexplained", worded from the variants' rows: which intervals
    hold the thesis' accuracy (each printed, wide where seeds partly collapsed), and, only where
    the recipe's own students mostly collapsed, why rows that still collapse cannot show their
    choice's effect."""
    variants = {n: summary[n] for n in VARIANTS}
    near = consistent_with(variants, thesis_accuracy)
    target = f"{100 * thesis_accuracy:.2f}%"
    if not near:
        out = f"No variant's interval holds the thesis' {target}, so no single choice undone here explains it."
    else:
        rows = [f"{variants[n]['label']} ([{100 * variants[n]['interval'][0]:.2f}, "
                f"{100 * variants[n]['interval'][1]:.2f}]%)" for n in near]
        mixed = [n for n in near if variants[n]["collapsed"]["seeds"]]
        out = (f"The thesis' {target} lies inside the interval of {', '.join(rows)}"
               + ("; where some seeds of a row collapsed, its interval is wide and says little." if mixed else "."))
    down = [n for n in mostly_collapsed(variants) if n != "thesis_recipe"]
    if "thesis_recipe" in mostly_collapsed(variants) and down:
        out += (" The recipe's own students collapsed in most seeds, and so did those of "
                + ", ".join(variants[n]["label"] for n in down) + ": where a choice kept in place collapses the "
                "student, undoing another one alone cannot show its own effect, so those rows say \"still collapsed\", "
                "not \"this choice does not matter\".")
    return out


def both_reading(summary: dict, thesis_accuracy: float) -> str:
    """What the row of :data:`COMBINED` says, worded from its interval: whether the recipe's
    student, with the U-Net of [-1, 1] and its digits stored on black (the rest of the recipe
    kept), collapsed, and where it stands against the thesis' accuracy; where the recipe's own
    students mostly collapsed and these did not, that the two choices together account for it."""
    s = summary["range_on_black"]
    lo, hi = s["interval"]
    where = f"[{100 * lo:.2f}, {100 * hi:.2f}]%"
    target = f"{100 * thesis_accuracy:.2f}%"
    collapsed = lambda row: len(row["collapsed"]["seeds"]) > row["accuracy"]["n"] / 2  # noqa: E731
    if collapsed(s):
        real = summary.get("real_black")
        if real is not None and not collapsed(real) and real["interval"][1] >= thesis_accuracy:
            rlo, rhi = real["interval"]
            return (f"With both undone the students still score below the collapse level in most seeds (interval "
                    f"{where}), while as many real digits through the same student, on black (neither forced black "
                    f"nor filtered), score [{100 * rlo:.2f}, {100 * rhi:.2f}]%: once both are undone, what is left "
                    "between the recipe and the thesis' "
                    f"{target} here is the generated digits (this book's U-Net with the thesis' noiseless chain).")
        return (f"With both undone the students still score below the collapse level in most seeds (interval {where}): "
                "something else in "
                f"the recipe, or this book's stand-ins for its U-Net and teacher, keeps it from the thesis' {target}.")
    out = "With both undone the students do not collapse"
    out += (", where the recipe's did: the two choices together account for the collapse. "
            if collapsed(summary["thesis_recipe"]) else ". ")
    if lo <= thesis_accuracy <= hi:
        return out + f"Their interval {where} holds the thesis' {target}."
    return out + f"Their interval {where} lies {'below' if hi < thesis_accuracy else 'above'} the thesis' {target}."


def _against_thesis(row: dict, thesis_accuracy: float, who: str) -> str:
    """Where ``row``'s interval stands against the thesis' accuracy, in one sentence."""
    lo, hi = row["interval"]
    where, target = f"[{100 * lo:.2f}, {100 * hi:.2f}]%", f"{100 * thesis_accuracy:.2f}%"
    if lo <= thesis_accuracy <= hi:
        return (f"{who} interval {where} holds the thesis' {target}: consistent with it (which is not a proof that the "
                "thesis ran so).")
    return f"{who} interval {where} lies {'below' if hi < thesis_accuracy else 'above'} the thesis' {target}."


def noise_reading(summary: dict, thesis_accuracy: float, spreads: dict | None = None) -> str:
    """What the row 'noise_on_black' says against 'range_on_black' (the same U-Net, chain, filter
    and storage, per-step noise put back at the thesis' text's scale), worded from the change's
    interval (over paired seeds and test digits; each arm is one generated set, whose own draw
    the interval does not cover) and the row's own: how much of the noiseless row's distance to
    as many real digits the noise makes up, whether the row then holds the thesis' accuracy, and
    how it stands against those real digits (``vs_real`` of :func:`summarize`, paired by seed;
    the real digits are neither forced black nor filtered, labelled by their class and drawn
    anew for each seed). ``spreads`` (``{"value_range": (mean, low, high), "range_noise": ...}``,
    :func:`spread_interval`): the sets' within-class spreads, named as the mechanism only where
    their intervals part."""
    s = summary["noise_on_black"]
    ch = s.get("change")
    if len(s["collapsed"]["seeds"]) > s["accuracy"]["n"] / 2:
        lo, hi = s["interval"]
        return (f"With the noise put back the students still score below the collapse level in most seeds (interval "
                f"[{100 * lo:.2f}, {100 * hi:.2f}]%): the noiseless chain alone does not account for the rows above.")
    step = "" if ch is None else f"{100 * ch.ci95[0]:+.1f} to {100 * ch.ci95[1]:+.1f} points, {ch.covers}"
    if ch is None or ch.ci95[0] <= 0 <= ch.ci95[1]:
        out = f"Putting the noise back makes no measurable difference ({step}). "
    elif ch.ci95[0] > 0:
        out = f"Putting the noise back raises the students by {step}"
        real, base = summary.get("real_black"), summary.get("range_on_black")
        if real is not None and base is not None and real["accuracy"]["mean"] > base["accuracy"]["mean"]:
            gap = 100 * (real["accuracy"]["mean"] - base["accuracy"]["mean"])
            out += (f": {100 * ch.difference:.0f} of the {gap:.0f} points between the noiseless row and as many real "
                    "digits, in this draw of each set")
        if spreads and spreads["range_noise"][1] > spreads["value_range"][2]:
            out += (f"; its digits also spread more within a class ({spreads['range_noise'][0]:.2f} against "
                    f"{spreads['value_range'][0]:.2f}), so the noiseless chain's narrow set is the likely reason")
        out += ". "
    else:
        out = f"Putting the noise back lowers the students by {-100 * ch.ci95[1]:.1f} to {-100 * ch.ci95[0]:.1f} points. "
    out += _against_thesis(s, thesis_accuracy, "Their")
    real = s.get("vs_real")
    if real is not None:
        out += (" Against as many real training digits through the same student, on black (neither forced black nor "
                "filtered, labelled by their class, drawn anew for each seed, where the generated arm is one set): "
                + real.sentence(SHORT["noise_on_black"], SHORT["real_black"]) + ".")
    return out


def text_reading(summary: dict, thesis_accuracy: float) -> str:
    """What the row 'text_on_black' (x_T at the text's 0.5 too) says: its change against
    'noise_on_black' is the loop's sentence; here, where it stands against the thesis."""
    s = summary["text_on_black"]
    if len(s["collapsed"]["seeds"]) > s["accuracy"]["n"] / 2:
        return "With x_T at 0.5 as well the students score below the collapse level in most seeds."
    return _against_thesis(s, thesis_accuracy, "Its")


def spread_reading(recipe_std: float | None, thesis_std: float, n_train: int, collapsed: bool = False) -> str:
    """The recipe's seed spread against the thesis' (standard deviations, fractions), worded;
    None: one seed, no spread measured; ``collapsed``: the recipe's students collapsed in most
    seeds, whose spread is then that of collapsed runs and says nothing of the set."""
    if recipe_std is None:
        return "one seed measures no spread, so the two cannot be compared"
    if collapsed:
        return ("the recipe's students collapsed in most seeds, so their spread is that of collapsed runs and says "
                "nothing about the size of the thesis' set")
    if recipe_std > 2 * thesis_std:
        return (f"the thesis' spread is far smaller than this recipe's over students of about {n_train:,d} digits split "
                "at random each run, a hint that its set was larger than its code's cap")
    return "the two spreads are comparable"


def metrics(summary: dict, sets: dict) -> dict:
    """What chapter 7 records in ``metrics.json`` (section ``ablation``)."""
    return {"variants": {n: {"label": s["label"], "accuracy": s["accuracy"], "interval_seeds_and_digits": s["interval"],
                             "against": s["against"],
                             "change_points": None if s["change"] is None else 100 * s["change"].difference,
                             "change_ci95_points": None if s["change"] is None else [100 * x for x in s["change"].ci95],
                             "verdict": None if s["change"] is None else s["change"].verdict,
                             "collapsed_seeds": s["collapsed"]["seeds"], "epochs_trained": s["epochs_trained"],
                             **({"vs_real_points": 100 * s["vs_real"].difference,
                                 "vs_real_ci95_points": [100 * x for x in s["vs_real"].ci95]} if s.get("vs_real") else {})}
                         for n, s in summary.items()},
            "sets": {n: {"generated": int(v["generated"]), "kept_of_drawn": float(v["acceptance_rate"]),
                         "pass_rate": float(v["pass_rate"]),
                         "final_threshold": float(v["final_threshold"]), "steps": int(v["num_steps"]),
                         "time_s": float(v["time_s"])} for n, v in sets.items()}}


def gpu_estimate(gpu: Profile, recorded: dict, acceptance: float, set_size: int = 60000) -> dict:
    """Minutes, at the rates of the last recorded gpu run (``recorded``: its metrics.json), of
    the two runs that chapter 7 cannot afford: the thesis' U-Net training (``main.py``: 120
    epochs of the 85% of 60,000 training digits its loader kept, batch 64, at the recorded
    U-Net's steps per second, measured at its own batch size and network: a rough figure, not
    a bound) and its 60,000-digit set through its chain (``n_T`` steps of two network passes,
    at the recorded generation's network passes per second, measured at its own batch size, and
    ``acceptance``, the share of drawn digits that pass the filter). None where the record lacks
    the rate."""
    d, s = recorded.get("diffusion", {}), recorded.get("synthetic_set", {})
    out = {"unet_steps": RECIPE.unet_epochs * int(RECIPE.split * set_size) // RECIPE.unet_batch_size,
           "unet_min": None, "set_min": None, "device": recorded.get("environment", {}).get("device")}
    if d.get("train_time_s") and d.get("steps"):
        out["unet_min"] = out["unet_steps"] / (d["steps"] / d["train_time_s"]) / 60
    if s.get("generated_per_s"):
        passes = gpu.sampler.num_steps * (1 if gpu.sampler.guidance_w in (0.0, 1.0) else 2)
        out["set_min"] = set_size / acceptance * 2 * RECIPE.n_T / (s["generated_per_s"] * passes) / 60
    return out


def design_texts(cfg: Profile, sets: dict, n_test: int) -> dict:
    """Chapter 7's design in the prose's words: the thesis' schedule at its last step (how much
    of the digit its chain's start still held), the U-Nets' adaptation, the chain's steps, the
    seeds, the test digits, the set sizes and the recipe's student (``sets``: :func:`recipe_sets`)."""
    e = cfg.studies
    abar = float(NoiseSchedule.linear(RECIPE.n_T, RECIPE.beta_start, RECIPE.beta_end).alpha_bar(RECIPE.n_T - 1))
    chain = counted(int(sets["thesis_recipe"]["num_steps"]), "step")
    recipe, _ = recipe_classifier(cfg, "thesis_recipe")
    return {"rec_abar400": f"{abar:.3f}", "rec_signal400": f"{abar ** 0.5:.2f}",
            "rec_unet_steps": counted(e.recipe_unet_steps, "step"), "rec_chain_steps": chain,
            "rec_seeds": counted(len(e.ablation_seeds), "seed"), "rec_test_n": f"{n_test:,d}",
            "rec_per_class": f"{e.thesis_per_class:,d}", "rec_size_ratio": f"{e.ablation_per_class / e.thesis_per_class:g}",
            "rec_sizes": f"{e.thesis_per_class} digits per requested class, {counted(recipe.epochs, 'epoch')}, teacher "
                         f"confidence {min(RECIPE.threshold, cfg.synth.threshold):g}, a chain of {chain}"}


def set_texts(cfg: Profile, sets: dict, real_val, spreads: dict | None = None) -> dict:
    """Chapter 7's sentences on each set (``sets``: :func:`recipe_sets`): what the filter passed,
    its within-class spread with its interval (``spreads``, :func:`set_spreads`, computed here
    where None), the teacher's agreement with the requested class per class
    (:func:`agreement_per_class`, over the digits the students learn from), and the spread of
    ``real_val`` (uint8 images, labels) for reference."""
    spreads = spreads or set_spreads(sets)
    out = {}
    for n, s in sets.items():
        out[f"rec_set_{n}"] = (f"{100 * s['pass_rate']:.1f}% of {int(s['generated']):,d} drawn digits passed, confidence "
                               f"{s['final_threshold']:g} at the end, {s['time_s']:.0f} s")
        out[f"rec_spread_{n}"] = "{:.2f} [{:.2f}, {:.2f}]".format(*spreads[n])
        out[f"rec_agree_{n}"] = agreement_reading(agreement_per_class(s, cfg.studies.thesis_per_class))
    out["rec_spread_real"] = "{:.2f} [{:.2f}, {:.2f}]".format(*spread_interval(*real_val))
    return out


def set_spreads(sets: dict) -> dict:
    """Each set's :func:`spread_interval` (mean, low, high)."""
    return {n: spread_interval(v["images"], v["requested"]) for n, v in sets.items()}


def result_texts(cfg: Profile, summary: dict, thesis_accuracy: float = STUDENT["accuracy"],
                 spreads: dict | None = None) -> dict:
    """Chapter 7's sentences on its rows (``summary``: :func:`summarize`), each worded from its
    interval: the recipe against the thesis' accuracy, what stays unexplained, each change
    against the row it is set against, the collapsed seeds, the seeds' spread against the
    thesis', the controls, the row undoing two choices and the row with the noise put back."""
    rec_sd = summary["thesis_recipe"]["accuracy"]["std"]
    n_train = round(cfg.num_classes * cfg.studies.thesis_per_class * RECIPE.train_fraction)  # each recipe student's
    out = {"rec_recipe": row_text(summary["thesis_recipe"]), "rec_reached": reached(summary, thesis_accuracy),
           "rec_unexplained_runs": unexplained(summary, thesis_accuracy),
           "rec_collapse_below": f"{100 * COLLAPSE_BELOW:.0f}%",
           "rec_std": "not measured (one seed)" if rec_sd is None else f"{100 * rec_sd:.2f} points",
           "thesis_std": f"{100 * STUDENT['std']:.2f} points over {STUDENT['seeds']} runs",
           "rec_spread_reading": spread_reading(rec_sd, STUDENT["std"], n_train,
                                                "thesis_recipe" in mostly_collapsed(summary))}
    adapted = (f" (a U-Net adapted {counted(cfg.studies.recipe_unet_steps, 'step')} from chapter 2's, not trained from "
               "scratch on each range; one U-Net per range)")
    for n, s in summary.items():
        if s["change"] is not None:
            out[f"rec_says_{n}"] = (s["change"].sentence(SHORT[n], SHORT[s["against"]])
                                    + (adapted if n == "value_range" else ""))
        out[f"rec_collapsed_{n}"] = f"{len(s['collapsed']['seeds'])} of {s['accuracy']['n']}"
    return out | {"rec_real_black": row_text(summary["real_black"]), "rec_real_grey": row_text(summary["real_grey"]),
                  "rec_control_reading": control_reading(summary), "rec_both": row_text(summary["range_on_black"]),
                  "rec_both_reading": both_reading(summary, thesis_accuracy),
                  "rec_noise": row_text(summary["noise_on_black"]),
                  "rec_noise_reading": noise_reading(summary, thesis_accuracy, spreads), "rec_text_noise": f"{TEXT_NOISE:g}",
                  "rec_text": row_text(summary["text_on_black"]), "rec_text_reading": text_reading(summary, thesis_accuracy),
                  "rec_text_x_T": f"{TEXT_X_T:g}", "rec_threshold": f"{min(RECIPE.threshold, cfg.synth.threshold):g}"}


def cost_texts(cost: dict) -> dict:
    """The two runs chapter 7 cannot afford, in the prose's words (``cost``: :func:`gpu_estimate`)."""
    return {"rec_gpu_unet": f"{cost['unet_steps']:,d} steps, roughly {cost['unet_min']:.0f} min on {cost['device']} at "
                            "the recorded U-Net's rate, measured at another batch size and on a smaller network"
                            if cost["unet_min"] else f"{cost['unet_steps']:,d} steps",
            "rec_gpu_set": f"about {cost['set_min']:.0f} min" if cost["set_min"] else "not estimated (no gpu record)"}
