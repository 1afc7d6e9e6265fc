"""Stage: studies. Chapter 9, what the copy is worth: the measures of :mod:`kr_utils.audit`
applied to the pipeline's artifacts, and the thesis' claims it never measured:

- fidelity of the students to the teacher, on real test digits and on inputs from outside
  the digits' distribution (Fashion-MNIST, noise): :func:`fidelity_inputs`, :func:`fidelity_table`;
- the memorisation audit, every synthetic digit against the diffusion model's training digits in pixels
  and in the teacher's features: :func:`neighbours`, :func:`memorisation_report`;
- the distribution of generated digits in the teacher's features: :func:`distribution`;
- the confidence-threshold sweep and the thesis' own sampler, from unfiltered pools of digits:
  :func:`pool`, :func:`filtered_set`, :func:`set_student`;
- the set-size curve, synthetic beside real: :func:`size_curve`.

Every result is cached under ``evaluation/`` in the profile's artifacts, keyed by what it
depends on (:func:`kr_utils.store.cached`).
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch

from . import audit, data, distill, fit, synth
from .checkpoints import load_model, load_schedule
from .config import Profile, SamplerConfig
from .diffusion import build_sampler
from .comparison import compare_runs, mean_interval
from .evaluate import correct_on, features, format_summary, summarize_seeds
from .models import build_classifier, predict_logits
from .store import array_key, artifact_dir, cached, fingerprint
from .studies import COLLAPSE_BELOW, MIN_SET, RunJob, equal_update_epochs, per_class_subset, run_classifiers
from .thesis import GENERATION as THESIS_GENERATION

FIDELITY_AIM = 0.997  # issue 15's aim for the main student's top-1 agreement on the real test set
ECE_BINS = 15  # equal-width confidence bins of the expected calibration error
FLAG_QUANTILE = 0.01  # the calibrated-l2 flag marks this share of the real test digits

INPUT_LABELS = {"real_test": "real MNIST test digits", "fashion_mnist": "Fashion-MNIST test images",
                "noise": "uniform pixel noise"}


def _folder(cfg: Profile):
    return artifact_dir(cfg.run) / "evaluation"


# ------------------------------------------------------------------------------------ fidelity


def fidelity_inputs(cfg: Profile, seed: int) -> dict[str, torch.Tensor]:
    """The inputs fidelity is measured on (model range): the real test set, the first
    ``evaluation.ood_size`` Fashion-MNIST test images, and as many images of uniform noise
    (drawn by ``seed``), stored as uint8 like every digit a classifier sees here."""
    n = cfg.evaluation.ood_size
    x_te, _ = data.test_tensors(cfg.test_subset, cfg.dataset)
    # outside the data: Fashion-MNIST for an MNIST run, MNIST for a Fashion-MNIST run
    fashion, _ = data.load(next(d for d in data.DATASETS if d != cfg.dataset), "test")
    noise = torch.randint(0, 256, (n, *fashion.shape[1:]), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return {"real_test": x_te, "fashion_mnist": data.to_model_range(fashion[:n]), "noise": data.to_model_range(noise)}


def fidelity_table(teacher, runs: dict, inputs: dict, device) -> dict:
    """For each grid cell of ``runs`` (``{(arch, labels): {seed: run}}``, chapter 5's students)
    and each input set of :func:`fidelity_inputs`: the students' agreement with the teacher and
    mean KL(teacher || student) (:func:`kr_utils.audit.fidelity`), summarised over seeds.
    Returns ``{"<arch>/<labels>": {input: {"agreement": summary, "kl": summary}}}``."""
    teacher_logits = {name: predict_logits(teacher, x, device=device) for name, x in inputs.items()}
    out = {}
    for (arch, labels), seeds in runs.items():
        per_input = {name: {"agreement": [], "kl": []} for name in inputs}
        for run in seeds.values():
            model = build_classifier(arch, run["state_dict"]).to(device)
            for name, x in inputs.items():
                logits = run["test_logits"] if name == "real_test" else predict_logits(model, x, device=device)
                f = audit.fidelity(logits, teacher_logits[name])
                per_input[name]["agreement"].append(f["agreement"])
                per_input[name]["kl"].append(f["kl"])
        out[f"{arch}/{labels}"] = {name: {k: summarize_seeds(v) for k, v in d.items()} for name, d in per_input.items()}
    return out


def calibration_table(teacher_logits, runs: dict, labels, n_bins: int = 15) -> dict:
    """Calibration on the real test set: the teacher's, and each grid cell's over its seeds.
    The expected calibration error and reliability bins (:func:`kr_utils.audit.calibration`;
    the bins of the first seed), and the NLL and Brier score
    (:func:`kr_utils.audit.proper_scores`), each with its 95% interval over the seeds and the
    test digits (:func:`kr_utils.comparison.mean_interval`). ``{"teacher": ..., "<arch>/<labels>":
    {"ece": summary, "bins": ..., "nll": {"mean", "ci95"}, "brier": ..., "per_digit": {"nll": (S, N), ...}}}``."""
    def cell(logits_by_seed):
        cals = [audit.calibration(lg, labels, n_bins) for lg in logits_by_seed.values()]
        scores = [audit.proper_scores(lg, labels) for lg in logits_by_seed.values()]
        per_digit = {k: np.stack([sc[k] for sc in scores]) for k in ("nll", "brier")}
        out = {"ece": summarize_seeds([c["ece"] for c in cals]), "bins": cals[0], "per_digit": per_digit,
               "seeds": list(logits_by_seed)}
        for k, v in per_digit.items():
            mean, lo, hi = mean_interval(v)
            out[k] = {"mean": mean, "ci95": [lo, hi]}
        return out

    out = {"teacher": cell({None: teacher_logits})}
    for (arch, lab), seeds in runs.items():
        out[f"{arch}/{lab}"] = cell({s: r["test_logits"] for s, r in seeds.items()})
    return out


def calibration_comparisons(cal: dict, arch: str, labels_list, reference: str = "hard") -> dict:
    """Each label setting of ``arch`` against ``reference`` (the hard-label student) on the NLL
    and the Brier score of :func:`calibration_table`, with an interval over the seeds and the
    test digits (:func:`kr_utils.comparison.compare_runs`), paired on the seeds the two cells
    share (:func:`shared_seeds`); ``reference="teacher"``: against the teacher, one model, so
    the interval covers the students' seeds and the digits: ``{labels: {"nll": Comparison, "brier": Comparison}}``."""
    ref = cal["teacher"] if reference == "teacher" else cal.get(f"{arch}/{reference}")
    out = {}
    for lab in labels_list:
        c = cal.get(f"{arch}/{lab}")
        if lab == reference or c is None or ref is None:
            continue
        out[lab] = {k: compare_runs(*shared_seeds(c, ref, k)) for k in ("nll", "brier")}
    return out


def shared_seeds(a: dict, b: dict, key: str) -> tuple:
    """The per-digit ``key`` rows of two cells of :func:`calibration_table` for comparison: the
    rows of the seeds both have, in one order, paired, where they share two or more; else every
    row of each, unpaired. Returns ``(rows_a, rows_b, paired)``."""
    both = [s for s in a["seeds"] if s in b["seeds"]]
    if len(both) >= 2:
        pick = lambda c: c["per_digit"][key][[c["seeds"].index(s) for s in both]]  # noqa: E731
        return pick(a), pick(b), True
    return a["per_digit"][key], b["per_digit"][key], False


# ------------------------------------------------------------------------------------ memorisation


def neighbours(cfg: Profile, name: str, key: str, images_uint8, train_uint8, query_feats, train_feats,
               device=None) -> dict:
    """The :data:`kr_utils.audit.CALIBRATED_N` nearest training digits of each image, in [0, 1]
    pixels and in the teacher's features (cached as ``evaluation/nn_<name>.pt`` under ``key``,
    which names the images). Pixel distances of the candidates are recomputed exactly, so an
    exact copy is at distance 0; the search runs on ``device``."""
    k = audit.CALIBRATED_N

    def compute():
        d_pix, i_pix = audit.nearest(np.asarray(images_uint8), np.asarray(train_uint8), k, device=device)
        d_feat, i_feat = audit.nearest(query_feats, train_feats, k, device=device)
        return {"pixel": d_pix, "pixel_index": i_pix, "feature": d_feat, "feature_index": i_feat}

    return cached(_folder(cfg) / f"nn_{name}.pt", fingerprint({"k": k, "images": key, "train": len(train_uint8)}), compute)


def memorisation_report(nn: dict, thresholds: dict | None = None) -> dict:
    """Memorisation statistics (:func:`kr_utils.audit.memorisation`) in pixels and features of a
    set's :func:`neighbours`; ``thresholds`` (``{"pixel": t, "feature": t}``, from the real test
    digits: :func:`kr_utils.audit.reference_threshold`) count the calibrated-ℓ2 flags."""
    thresholds = thresholds or {}
    return {space: audit.memorisation(nn[space], calibrated_below=thresholds.get(space)) for space in ("pixel", "feature")}


def memorisation_counts(report: dict) -> dict:
    """The counts of a :func:`memorisation_report` as fractions of the set, by stable id."""
    out = {"n": report["pixel"]["n"]}
    for space, r in report.items():
        out[f"{space}_exact"] = r["exact"] / r["n"]
        out[f"{space}_ratio_flagged"] = r["ratio_flagged"] / r["n"]
        out[f"{space}_calibrated_flagged"] = r.get("calibrated_flagged", np.nan) / r["n"]
        out[f"{space}_nearest_median"] = float(r["nearest"].median())
    return out


def copy_excess(synthetic: dict, test: dict) -> dict:
    """Whether synthetic digits are flagged as copies more often than unseen real digits, each
    as a one-sided exact binomial test at 5% (:func:`memorisation_counts` of both): the pixel
    ratio test's flags against the test digits' own rate, and the calibrated-l2 flags against
    :data:`FLAG_QUANTILE`, the share of test digits that threshold flags by construction. An
    exact copy always counts. ``{"exact", "ratio": p, "calibrated": p, "more": bool}``."""
    from scipy import stats

    n = synthetic["n"]
    k_ratio = round(synthetic["pixel_ratio_flagged"] * n)
    k_cal = round(synthetic["pixel_calibrated_flagged"] * n)
    p_ratio = float(stats.binomtest(k_ratio, n, min(max(test["pixel_ratio_flagged"], 1 / test["n"]), 1.0),
                                    alternative="greater").pvalue)
    p_cal = float(stats.binomtest(k_cal, n, FLAG_QUANTILE, alternative="greater").pvalue)
    exact = synthetic["pixel_exact"] > 0
    return {"exact": bool(exact), "ratio": p_ratio, "calibrated": p_cal,
            "more": bool(exact or p_ratio < 0.05 or p_cal < 0.05)}


def counts_by_size(nn: dict, thresholds: dict, sizes, seed: int) -> dict:
    """How many of the first ``n`` digits of a random order of the set are flagged, for each
    ``n`` of ``sizes``: the counts a larger set exposes."""
    order = torch.randperm(len(nn["pixel"]), generator=torch.Generator().manual_seed(seed))
    out = {}
    for n in sizes:
        sub = {space: nn[space][order[:n]] for space in ("pixel", "feature")}
        r = memorisation_report(sub, thresholds)
        out[n] = {f"{space}_{what}": r[space].get(what) for space in r for what in ("exact", "ratio_flagged", "calibrated_flagged")}
    return out


# ------------------------------------------------------------------------------------ distribution


def _equal_sample(n: int, size: int, seed: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size]


def distribution(real_feats, real_labels, fake_feats, fake_labels, *, size: int, k: int, seed: int) -> dict:
    """Fréchet distance and k-NN precision/recall of ``fake`` against ``real`` features on equal
    random samples of ``size`` (each capped by the smaller set), overall and per class
    (``size // 10`` per class). Fréchet distance is biased upwards on small samples: compare
    only results of the same ``size`` (the real-against-real floor is computed the same way)."""
    real_labels, fake_labels = torch.as_tensor(real_labels), torch.as_tensor(fake_labels)
    size = min(size, len(real_feats), len(fake_feats))
    r, f = _equal_sample(len(real_feats), size, seed), _equal_sample(len(fake_feats), size, seed + 1)
    out = {"size": size, "frechet": audit.frechet_distance(real_feats[r], fake_feats[f]),
           **audit.precision_recall(real_feats[r], fake_feats[f], k)}
    per_class = {}
    k_classes = int(max(real_labels.max(), fake_labels.max())) + 1
    for c in range(k_classes):
        rc, fc = real_feats[real_labels == c], fake_feats[fake_labels == c]
        m = min(size // k_classes, len(rc), len(fc))
        if m < 2 * k + 2:
            continue
        rc, fc = rc[_equal_sample(len(rc), m, seed)], fc[_equal_sample(len(fc), m, seed + 1)]
        per_class[c] = {"size": m, "frechet": audit.frechet_distance(rc, fc), **audit.precision_recall(rc, fc, k)}
    out["per_class"] = per_class
    return out


def floor_and_set(feats: dict, labels: dict, *, size: int, k: int, seed: int) -> tuple[dict, dict]:
    """:func:`distribution` of the real test digits (the floor) and of the synthetic set against
    the real validation digits, in one feature space (``feats`` and ``labels`` keyed 'val',
    'test', 'synthetic')."""
    return tuple(distribution(feats["val"], labels["val"], feats[w], labels[w], size=size, k=k, seed=seed)
                 for w in ("test", "synthetic"))


SPACES = {"teacher": "", "untrained network": "_rand"}  # the glue names' suffix of each feature space


def distribution_texts(spaces: dict) -> dict:
    """Chapter 9's numbers of each feature space (``{space: (floor, set)}`` of
    :func:`floor_and_set`, spaces named as in :data:`SPACES`): Fréchet distance, precision and
    recall of the floor and of the set; the sample size."""
    out = {"fd_size": f"{spaces['teacher'][0]['size']:,}"}
    for space, pair in spaces.items():
        fmt = "{:.2f}" if space == "teacher" else "{:.3g}"
        for who, d in zip(("floor", "syn"), pair):
            name = who + SPACES[space]
            out |= {f"fd_{name}": fmt.format(d["frechet"]), f"prec_{name}": f"{100 * d['precision']:.1f}%",
                    f"rec_{name}": f"{100 * d['recall']:.1f}%"}
    return out


def distribution_frame(spaces: dict):
    """The chapter's table of :func:`distribution_texts`' numbers, one row per set and space."""
    import pandas as pd

    return pd.DataFrame({f"{who} ({space})": {m: d[m] for m in ("frechet", "precision", "recall")}
                         for space, pair in spaces.items()
                         for who, d in zip(("real test (floor)", "synthetic set"), pair)})


SAMPLER_NAMES = {"ours": "this book's sampler", "thesis": "the thesis' text's sampler",
                 "thesis_code": "the thesis' code's sampler"}


def sampler_texts(rows: dict) -> dict:
    """Chapter 9's sentences on the three samplers' pools and students (``rows``, keyed as
    :data:`SAMPLER_NAMES`): each one's accuracy over seeds, recall, precision and acceptance,
    the thesis' two against this book's (worded from each comparison's interval), and which
    students fell below the book's collapse level (:data:`kr_utils.studies.COLLAPSE_BELOW`),
    whose mean and interval then say little."""
    out = {}
    for name, r in rows.items():
        out |= {f"sampler_{name}_acc": format_summary(r["accuracy"], seeds=True) if r["accuracy"]
                else "not measured (too few digits)", f"sampler_{name}_rec": f"{100 * r['recall']:.1f}%",
                f"sampler_{name}_prec": f"{100 * r['precision']:.1f}%",
                f"sampler_{name}_accept": f"{100 * r['acceptance']:.1f}%"}
    for name in ("thesis", "thesis_code"):
        c = rows[name].get("against_reference")
        out[f"sampler_{name}_vs_ours"] = ("not compared (too few digits on one side)" if c is None
                                          else c.sentence(SAMPLER_NAMES[name], "this book's sampler"))
    low = {n: [v for v in r["accuracy"]["values"] if v < COLLAPSE_BELOW] for n, r in rows.items() if r["accuracy"]}
    out["sampler_collapse"] = " ".join(
        f"{len(v)} of {len(rows[n]['accuracy']['values'])} students of {SAMPLER_NAMES[n]} scored below the collapse "
        f"level ({100 * COLLAPSE_BELOW:.0f}%; the lowest {100 * min(v):.1f}%, chance is 10%)"
        + (f": its pool's recall is {100 * rows[n]['recall']:.1f}%, so its digits cover little of the real ones' "
           "variety, and the low score is the set's, not a failed training." if rows[n]["recall"] < 0.2 else
           "; each seed is listed in the table.") for n, v in low.items() if v) or "No student collapsed."
    out["sampler_fd_size"] = f"{rows['ours']['distribution_size']:,}"
    return out


def untrained_features(arch: str, seed: int, images: dict, device) -> dict:
    """Penultimate features of the classifier ``arch`` at its random initialisation (weights
    from ``seed`` alone), a network that never saw a digit, for each ``{name: images in the
    model range}``: a second space for :func:`distribution`, free of the preferences of the
    teacher that filtered the set (random embeddings, Naeem et al. 2020). An untrained network's
    features are tiny and of uneven scale, so each dimension is standardised by the mean and
    standard deviation of the first entry of ``images`` (the real reference): Fréchet distances
    are then in units of the reference's spread; k-NN precision and recall do not change."""
    net = fit.built_from_seed(lambda: build_classifier(arch), seed).to(device)
    out = {name: features(net, x, device=device).double() for name, x in images.items()}
    ref = next(iter(out.values()))
    mean, std = ref.mean(0), ref.std(0).clamp_min(1e-12)
    return {name: ((f - mean) / std).float() for name, f in out.items()}


# ------------------------------------------------------------------------------------ pools, sweep, samplers


def thesis_sampler(cfg: Profile) -> SamplerConfig:
    """The thesis' sampling recipe (§3.3.4: ancestral, clipped, guide_w = 0.5 i.e. w = 1.5,
    x_T and per-step noise scaled by 0.5) on the profile's ``knob_steps`` (the thesis' 1,000 at
    the gpu profile; respaced at the cpu profile, as in chapter 3)."""
    t = THESIS_GENERATION
    return dataclasses.replace(cfg.sampler, sampler="ancestral", num_steps=cfg.sampler.knob_steps, clip_x0=t["clip_x0"],
                               guidance_w=t["guidance_w"], x_T_scale=t["x_T_scale"], noise_scale=t["noise_scale"])


def pool(cfg: Profile, name: str, sampling: SamplerConfig, per_class: int, *, seed: int, device, checkpoints: tuple,
         black: bool = False) -> dict:
    """An unfiltered pool of ``per_class`` digits of each class drawn with ``sampling`` from the
    U-Net of ``checkpoints = (diffusion.pt, teacher.pt)`` and labelled by its teacher
    (:func:`kr_utils.synth.draw_labelled`), cached as ``evaluation/pool_<name>.pt`` under a key
    of those files. ``black``: every digit forced to a black background before the teacher sees
    it, as the thesis' code ended its chain (:func:`kr_utils.synth.force_black`)."""
    d_path, t_path = checkpoints

    def compute():
        unet, teacher = load_model(d_path, "diffusion", device), load_model(t_path, "teacher", device)
        sampler = build_sampler(sampling, load_schedule(d_path), num_steps=sampling.num_steps)  # (ancestral: else all T steps)
        requested = np.repeat(np.arange(unet.null_class), per_class)
        r = synth.draw_labelled(synth.DigitSource(unet, sampler, teacher), requested, sampling, seed=seed,
                                device=device, postprocess=synth.force_black if black else None)
        return {k: torch.as_tensor(v) for k, v in r.items()}

    key = fingerprint({"sampling": sampling, "per_class": per_class, "seed": seed, "black": black}, d_path, t_path)
    return cached(_folder(cfg) / f"pool_{name}.pt", key, compute)


def acceptance(pool_: dict, thresholds) -> dict:
    """The fraction of a pool's digits whose teacher confidence reaches each threshold."""
    conf = pool_["logits"].float().softmax(1).max(1).values
    return {t: float((conf >= t).float().mean()) for t in thresholds}


def filtered_set(pool_: dict, threshold: float, per_class: int, seed: int, label_mode: str = "teacher") -> dict | None:
    """The set a confidence filter at ``threshold`` keeps from a pool, balanced to ``per_class``
    digits of each label (drawn at random by ``seed``), labelled by the teacher's argmax or,
    with ``label_mode='requested'``, by the class asked of the generator (``synth.label_mode``);
    None when a class has fewer than ``per_class`` digits at that threshold."""
    logits = pool_["logits"].float()
    conf, label = logits.softmax(1).max(1)
    if label_mode == "requested":
        label = pool_["requested"].long()
    keep = torch.nonzero(conf >= threshold).flatten()
    try:
        idx = keep[per_class_subset(label[keep].numpy(), per_class, seed)]
    except ValueError:  # a class short of per_class digits at this threshold
        return None
    return {"images": pool_["images"][idx].numpy(), "labels": label[idx].numpy(), "logits": logits[idx].numpy()}


def set_key(s: dict) -> str:
    """A hash of a set's digits, labels and soft targets (the cache key of what a student learns from)."""
    return array_key(s["images"], s["labels"], s["logits"])


def set_student(cfg: Profile, name: str, s: dict, seed: int, *, epochs: int, device, test) -> dict:
    """The profile's student recipe (its labels, augmentation) trained for ``epochs`` on a set
    ``s`` of :func:`filtered_set` or :func:`real_twin` (split as chapter 5 splits; cached as
    ``evaluation/<name>_seed<seed>.pt``)."""
    return set_students(cfg, name, {seed: s}, epochs=epochs, device=device, test=test)[seed]


def set_students(cfg: Profile, name: str, sets: dict, *, epochs: int, device, test) -> dict:
    """:func:`set_student` for ``{seed: set}`` (trained together where the ``group_seeds``
    lever is on): ``{seed: run}``."""
    jobs = []
    for seed, s in sets.items():
        train, val = distill.synthetic_split(s["images"], s["labels"], s["logits"], cfg.student.val_fraction, seed)
        jobs.append(RunJob(train, val, seed, _folder(cfg) / f"{name}_seed{seed}.pt", set_key(s), f"{name} seed {seed}"))
    runs = run_classifiers(jobs, cfg.student.recipe(epochs=epochs), device=device, test=test, test_curve=False)
    return dict(zip(sets, runs))


def real_twin(teacher, images_uint8, labels, n: int, seed: int, device) -> dict:
    """``n`` real training digits (``n // 10`` per class, drawn by ``seed``) with ``teacher``'s
    logits as soft targets and its labels: the real twin of a synthetic set of ``n`` digits."""
    idx = per_class_subset(labels, n // 10, seed)
    return relabelled(teacher, images_uint8[idx], device)


def relabelled(teacher, images_uint8, device) -> dict:
    """``images_uint8`` with ``teacher``'s logits as soft targets and its argmax as labels."""
    logits = synth.label_with_teacher(teacher, images_uint8, device).numpy()
    return {"images": np.asarray(images_uint8), "labels": logits.argmax(1), "logits": logits}


def halves(cfg: Profile, seed: int | None = None) -> tuple:
    """The real training digits the teacher learns from (:func:`kr_utils.data.fit_digits`, the
    first ``teacher.train_subset`` where the profile sets one) cut in two halves, ``(images_a, labels_a), (images_b,
    labels_b)``: the size curve's labeller
    learns from A and its real arm draws from B, so no label comes from a network that saw the
    digit it labels."""
    images, labels = data.fit_digits(cfg, cfg.teacher.train_subset, seed)  # as many as the teacher learns from
    h = len(labels) // 2
    return (images[:h], labels[:h]), (images[h:], labels[h:])


def half_teacher(cfg: Profile, device, *, test, seed: int | None = None):
    """The size curve's labeller: the profile's teacher recipe (chapter 1) trained on half A of
    :func:`halves` alone, early-stopped on the declared real validation digits, cached as
    ``evaluation/half_teacher.pt``. Returns the model (eval mode) and its run."""
    seed = cfg.seed if seed is None else seed
    (xa, ya), _ = halves(cfg, seed)
    val = data.validation_tensors(cfg.teacher.val_size, seed, cfg.dataset)
    job = RunJob((data.to_model_range(xa), torch.as_tensor(ya).long()), val, seed, _folder(cfg) / "half_teacher.pt",
                 array_key(xa, ya), "teacher on half A")
    run = run_classifiers([job], cfg.teacher.recipe(), device=device, test=test, test_curve=False)[0]
    return build_classifier(cfg.teacher.arch, run["state_dict"]).to(device).eval(), run


def size_curve(cfg: Profile, stored: dict, *, device, test) -> dict:
    """Student accuracy against set size, both arms labelled by :func:`half_teacher` (soft
    targets and labels), which learnt from half A of the real training digits: for each of
    ``evaluation.set_sizes`` and the whole synthetic set, a balanced subset of the synthetic set
    and as many real digits of half B, which no labeller saw, each with the profile's student
    recipe (its epochs: a smaller set also means fewer updates, alike for both) over
    ``evaluation.seeds``; a real size that half B cannot fill is left out. ``{"synthetic"|"real":
    {n: summary}, "correct": {"synthetic"|"real": {n: (seeds, test digits)}}, "labeller": its
    test accuracy}``."""
    ev, full = cfg.evaluation, len(stored["labels"])
    labeller, run = half_teacher(cfg, device, test=test)
    _, (xb, yb) = halves(cfg)
    syn_all = relabelled(labeller, stored["images"], device)
    out = {"synthetic": {}, "real": {}, "correct": {"synthetic": {}, "real": {}}, "labeller": run["accuracy"]}
    fits_b = min(np.bincount(yb, minlength=cfg.num_classes)) * cfg.num_classes
    for n in (*ev.set_sizes, full):
        for arm in ("synthetic", "real"):
            if arm == "real" and n > fits_b:
                continue
            runs = []
            for s in ev.seeds:
                if arm == "synthetic":
                    # balanced by the set's own labels (its filter's), labelled by the labeller
                    idx = per_class_subset(stored["labels"], n // 10, s) if n < full else np.arange(full)
                    sub = {k: v[idx] for k, v in syn_all.items()}
                else:
                    sub = real_twin(labeller, xb, yb, n, s, device)
                runs.append(set_student(cfg, f"size{n}_{arm}_half", sub, s, epochs=cfg.student.epochs, device=device,
                                        test=test))
            out[arm][n] = summarize_seeds([r["accuracy"] for r in runs])
            out["correct"][arm][n] = correct_on(runs, test[1])
    return out


def size_gaps(curve: dict) -> dict:
    """Real minus synthetic at each size of :func:`size_curve` with both arms, paired by seed,
    over the seeds and the test digits (:func:`kr_utils.comparison.compare_runs`): ``{n: Comparison}``."""
    c = curve["correct"]
    return {n: compare_runs(c["real"][n], c["synthetic"][n], paired=True) for n in c["synthetic"] if n in c["real"]}


def sweep_epochs(cfg: Profile) -> int:
    """The epochs of the sweep's students: ``evaluation.sweep_epochs``, or where it is None as
    many optimiser updates on ``sweep_per_class`` digits per class as the main student makes
    in ``student.epochs`` on the whole set (``synth.per_class`` per class;
    :func:`kr_utils.studies.equal_update_epochs`), so the filter is measured at chapter 5's budget."""
    ev = cfg.evaluation
    return ev.sweep_epochs or equal_update_epochs(cfg.student.epochs, cfg.synth.per_class, ev.sweep_per_class)


def threshold_students(cfg: Profile, name: str, pool_: dict, threshold: float, *, device, test) -> list[dict]:
    """The sweep's students at ``threshold`` (``sweep_per_class`` filtered digits per class of
    the pool ``name``, :func:`sweep_epochs`, one per ``sweep_seeds``; cached as
    ``evaluation/<name>_t<threshold>_seed<seed>.pt``), in seed order; empty when a class is short."""
    ev, sets = cfg.evaluation, {}
    for s in ev.sweep_seeds:
        kept = filtered_set(pool_, threshold, ev.sweep_per_class, s, cfg.synth.label_mode)
        if kept is None or len(kept["labels"]) < MIN_SET:
            return []
        sets[s] = kept
    runs = set_students(cfg, f"{name}_t{threshold:g}", sets, epochs=sweep_epochs(cfg), device=device, test=test)
    return [runs[s] for s in ev.sweep_seeds]


def sweep(cfg: Profile, pool_: dict, *, device, test, name: str = "ours") -> dict:
    """The confidence-threshold sweep: at each of ``evaluation.thresholds``, the pool's
    acceptance and the students (:func:`threshold_students`) trained on its filtered digits.
    ``{threshold: {"acceptance", "accuracy": summary or None, "correct": (seeds, test digits) or None}}``
    (``correct``, right or wrong on each test digit, for :func:`threshold_gain`; not for a record)."""
    accepted = acceptance(pool_, cfg.evaluation.thresholds)
    out = {}
    for t in cfg.evaluation.thresholds:
        runs = threshold_students(cfg, name, pool_, t, device=device, test=test)
        out[t] = {"acceptance": accepted[t], "accuracy": summarize_seeds([r["accuracy"] for r in runs]) if runs else None,
                  "correct": correct_on(runs, test[1]) if runs else None}
    return out


def threshold_gain(sweep_: dict, reference: float) -> dict:
    """What the filter at ``reference`` changes against the lowest threshold of a :func:`sweep`
    (0: no filter): the ``gain`` in points of mean accuracy and its :class:`Comparison`
    (``comparison``: paired by seed, over the seeds and the test digits,
    :func:`kr_utils.comparison.compare_runs`; None when either has no student), and the
    ``best`` threshold (a test-set report, not a choice)."""
    done = {t: v for t, v in sweep_.items() if v["accuracy"] is not None}
    low = min(sweep_)
    out = {"reference": reference, "lowest": low, "gain": None, "comparison": None,
           "best": max(done, key=lambda t: done[t]["accuracy"]["mean"]) if done else None}  # test-set report, not a choice
    if reference in done and low in done:
        c = compare_runs(done[reference]["correct"], done[low]["correct"], paired=True)
        out["gain"], out["comparison"] = 100 * c.difference, c
    return out


def sampler_comparison(cfg: Profile, pools: dict, teacher, real_feats, real_labels, *, device, test,
                       reference: str = "ours") -> dict:
    """For each named pool (this book's sampler, the thesis' text's and code's): the teacher's
    acceptance at ``synth.threshold``, the Fréchet distance and precision/recall against the
    real digits ``real_feats`` on equal samples (the smallest pool's size, so that the distances
    compare), and the students of the sweep's recipe (``sweep_per_class`` accepted digits per
    class, :func:`sweep_epochs`, over ``sweep_seeds``) at that threshold: for this book's pool,
    the very students of :func:`sweep`. Each other pool's students are compared with those of
    ``reference``, paired by seed, over the seeds and the test digits (``against_reference``:
    :func:`kr_utils.comparison.compare_runs`). ``{name: row}``."""
    ev, thr = cfg.evaluation, cfg.synth.threshold
    size = min(len(p["logits"]) for p in pools.values())
    rows, correct = {}, {}
    for name, p in pools.items():
        runs = threshold_students(cfg, name, p, thr, device=device, test=test)
        f = features(teacher, data.to_model_range(p["images"].numpy()), device=device)
        dist = distribution(real_feats, real_labels, f, p["logits"].argmax(1), size=size, k=ev.knn_k, seed=cfg.seed)
        correct[name] = correct_on(runs, test[1]) if runs else None
        rows[name] = {"acceptance": acceptance(p, [thr])[thr], **{m: dist[m] for m in ("frechet", "precision", "recall")},
                      "distribution_size": dist["size"],
                      "accuracy": summarize_seeds([r["accuracy"] for r in runs]) if runs else None}
    for name in rows:
        if name != reference and correct[name] is not None and correct.get(reference) is not None:
            rows[name]["against_reference"] = compare_runs(correct[name], correct[reference], paired=True)
    return rows


MEASURES = ("frechet", "precision", "recall")


def predictiveness(dists: dict, students: dict, archs) -> dict:
    """Do the distribution measures of sets predict their students? ``dists``: ``{step:
    distribution}`` of chapter 6's sets, ``students``: ``{(arch, step): run}``. Returns the
    ``table`` (one row per set: the measures, then each architecture's accuracy) and
    Spearman's ``rho`` and ``p`` of each measure against each architecture's accuracy (NaN with
    fewer than three students)."""
    import pandas as pd
    from scipy import stats

    table = pd.DataFrame({st: {**{m: d[m] for m in MEASURES},
                               **{a: students[(a, st)]["accuracy"] for a in archs if (a, st) in students}}
                          for st, d in dists.items()}).T
    rho, p = {}, {}
    for a in archs:
        ok = table[a].notna() if a in table else None
        for m in MEASURES:
            with warnings.catch_warnings():  # a constant measure has no rank correlation: NaN, said in the table
                warnings.simplefilter("ignore", stats.ConstantInputWarning)
                r = stats.spearmanr(table.loc[ok, m], table.loc[ok, a]) if ok is not None and ok.sum() > 2 else None
            rho.setdefault(a, {})[m] = float(r.statistic) if r is not None else float("nan")
            p.setdefault(a, {})[m] = float(r.pvalue) if r is not None else float("nan")
    return {"table": table, "rho": pd.DataFrame(rho), "p": pd.DataFrame(p)}
