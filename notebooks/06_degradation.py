# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Degradation and errors: students of under-trained generators
#
# How good must the generator be? The thesis (§4.4, Figs. 19-21) built a synthetic set from its
# U-Net after 8, 17, 35, 50, 65, 80 and 100 epochs of training and reports from 22-37%
# (epoch 8) to 92-96% (epoch 80), and a small drop at epoch 100 for two of its three
# architectures. Its text describes two measures: students trained on each set and
# scored on the real test set, and (§4.4's body and the captions of Figs. 19-21, "sobre muestras
# sintéticas") a classifier trained on real digits scoring each checkpoint's synthetic digits.
# Its repository's scripts at `d968518^` do not settle which one its figures plot:
# `extract_sythetic_images.py` unpacks each checkpoint folder's stored set into images, and
# `evaluate_degraded_data.py` trains the three architectures on one hard-coded set
# (`generated_datasets/last_model`, a path one would edit per checkpoint; 30 epochs, lr 1e-3,
# batch 64, a patience counter that never counts) but scores them on *synthetic* validation
# digits, a third reading that its Table 7 (99.9% on synthetic digits) argues against for the
# figures. Both readings above are measured here, at {glue:text}`degr_n_checkpoints` of chapter
# 2's training (the thesis had seven): {glue:text}`degr_steps`.
# {glue:text}`degr_passes`
#
# Only the generator is meant to change from one checkpoint to the next. Each checkpoint draws
# {glue:text}`degr_per_class` digits of each class (the profile's sampler, {glue:text}`degr_sampler`, and its guidance).
# **One reading of §4.4:** the teacher, a classifier trained on real digits, labels the whole
# draw, and the share whose label is the requested class is the checkpoint's score; as the
# thesis reports one value per architecture, each of chapter 1's classifiers trained on real
# digits (every architecture, {glue:text}`degr_study_seeds` each; the teacher is one of them,
# and the U-Net learnt from the same digits, as the thesis' did) reads every draw too
# (`kr_utils.studies.degradation_readings`). **The students:** the
# teacher accepts the digits with confidence at or above {glue:text}`degr_threshold`, and up to
# {glue:text}`degr_kept` of them are kept, **an equal share from each requested class, labelled
# by the requested class** (hard labels, with no soft targets), as the thesis' code balanced and labelled its sets
# (`kr_utils.studies.degradation_set` with `balanced=True`). Where the scarcest requested class
# has fewer accepted digits than its share, every class gives that many (a smaller set, so the
# set's size changes too, with the checkpoint; the thesis' code lowered its threshold instead),
# and its students train proportionally more epochs with no early stopping, so that every
# checkpoint's students make about the same number of updates
# (`kr_utils.studies.equal_update_epochs`), and each is scored at its last weights, as the
# thesis' were. Each architecture trains
# {glue:text}`degr_seeds` on each set, for {glue:text}`degr_budget_how`:
# {glue:text}`degr_budget`. Each point carries the 95% interval of its mean
# {glue:text}`degr_covers`; the intervals do not resample a checkpoint's one draw. The budget is
# chosen on the last checkpoint's set alone, and the early checkpoints' students depend on the
# student's recipe far more than the late ones do (an earlier run of this chapter, with the
# teacher's soft targets and the best epoch kept, put them tens of points lower): the shape of
# the curve is measured here, its early values hold for this recipe only.
#
# The second half looks at the errors (§4.5, Figs. 22-23): the confusion matrix of an early
# student and of the final student of chapter 5, with the real test digits each gets wrong
# most confidently. The thesis took a student in its first epochs of training, at 83-84%.
# Here the early student is, among the first seed's students of the checkpoints above, the one
# whose accuracy on the real validation digits is closest to that: a student of a generator,
# not of a training, early or not (the step it comes from is glued below).

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
dataset = None  # "mnist" (default) or "fashion-mnist"; None reads $KR_DATASET
seed = None     # overrides the profile's seed

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
from kr_utils import checkpoints, data, diffusion, evaluate, pipeline, plots, store, studies, thesis
from kr_utils.live import glue, glue_texts

ch = pipeline.open_chapter("06_degradation", profile, dataset=dataset, seed=seed)  # its cost recorded at its end
cfg, seed, device, profile = ch.cfg, ch.seed, ch.device, ch.cfg.run
scfg, ecfg = cfg.student, cfg.studies
# found in the artifacts folder, or built first as chapters 1, 2 (with its milestone checkpoints) and 5 do
teacher = checkpoints.load_model(pipeline.teacher(cfg, device, seed), "teacher", device)
d_path = pipeline.diffusion_model(cfg, device, seed, with_milestones=True)
student_path = pipeline.student(cfg, device)
sampler = diffusion.build_sampler(cfg.sampler, checkpoints.load_schedule(d_path))
x_te, y_te = data.test_tensors(cfg.test_subset, cfg.dataset)
x_val, y_val = pipeline.real_validation(cfg, seed)  # the real validation digits: the early student is chosen on them
glue_texts(studies.degradation_design_texts(cfg))

# %% [markdown]
# ## A synthetic set from each checkpoint
#
# `kr_utils.studies.degradation_set` draws the budget from one checkpoint, scores the whole
# draw against the requested classes, and keeps {glue:text}`degr_kept` of the accepted digits,
# an equal share per requested class (cached under `artifacts/<profile>/degradation/`).

# %%
milestones = ecfg.degradation_milestones
sets = studies.degradation_sets(cfg, milestones, teacher, sampler, seed=seed, device=device, balanced=True)
blank = np.zeros(cfg.data.image_shape[1:], np.uint8)  # a black square where a class has no kept digit
grid = [s["images"][s["requested"] == c][0].numpy() if (s["requested"] == c).any() else blank
        for _, s in sets.values() for c in range(cfg.num_classes)]
fig = plots.mosaic(np.stack(grid), nrow=len(sets), row_labels=[f"step {m}" for m in milestones])
plots.glue_figure("fig_degr_samples", fig)
seen = {m: np.bincount(s["logits"].argmax(1).numpy(), minlength=cfg.num_classes) for m, (_, s) in sets.items()}
fig = plots.count_heatmap(np.array(list(seen.values())), row_labels=[f"step {m}" for m in milestones],
                          xlabel="the teacher's reading of the kept digit", title="kept digits per teacher's reading")
plots.glue_figure("fig_degr_labels", fig)
one_class = [m for m, c in seen.items() if c.max() >= 0.5 * max(1, c.sum())]
glue("degr_one_class", "none" if not one_class else ", ".join(f"step {m}" for m in one_class), display=False)
glue("degr_sizes", ", ".join(f"{len(s['labels']):,d} at step {m}" + (" (too few: no student)" if s["short"] else "")
                             for m, (_, s) in sets.items()), display=False)

# %% [markdown]
# ```{glue:figure} fig_degr_samples
# One kept digit of each requested class, per checkpoint (rows: training steps of the
# diffusion model). A black square: no digit of that class was accepted.
# ```
#
# ```{glue:figure} fig_degr_labels
# How many of each checkpoint's kept digits the teacher reads as each digit. The requested
# classes, which are the students' labels, are balanced; this is what the teacher reads in the
# digits (on digits this far from its training data, its confidence is no proof of what they
# are: students trained on the requested classes can score well above what these readings
# suggest).
# ```
#
# Checkpoints where the teacher reads one digit in half of the kept set or more (whose students
# learn, for most of their labels, digits the teacher reads as another): {glue:text}`degr_one_class`;
# the kept digits of each checkpoint: {glue:text}`degr_sizes`.

# %%
budget = studies.degradation_budget(cfg, sets[milestones[-1]], seed=seed, device=device, test=(x_te, y_te),
                                    holdout=(x_val, y_val))
students = studies.degradation_seed_students(cfg, sets, budget["epochs"], device=device, test=(x_te, y_te),
                                             holdout=(x_val, y_val))
table = studies.degradation_seed_table(cfg, sets, students, y_te)
glue_texts(studies.degradation_budget_texts(cfg, budget))
studies.degradation_shown(cfg, table)

# %% tags=["hide-input"]
readings = studies.degradation_readings(cfg, pipeline.study_teachers(cfg, device, seed), seed=seed, device=device)
plots.glue_figure("fig_degradation", plots.degradation_curves(table, readings, thesis.DEGRADATION, thesis.DIFFUSION_EPOCHS))
closer = studies.closer_curve(cfg, table, readings, thesis.DEGRADATION, thesis.DIFFUSION_EPOCHS)
glue("degr_closer", studies.closer_sentence(closer) if cfg.dataset == "mnist" else
     "The thesis' values are of MNIST: no curve of this dataset is compared with them.", display=False)
glue("degr_reading_range", "; ".join(
    f"{a} {100 * r[min(r)][0]:.1f}% [{100 * r[min(r)][1]:.1f}, {100 * r[min(r)][2]:.1f}] to "
    f"{100 * r[max(r)][0]:.1f}% [{100 * r[max(r)][1]:.1f}, {100 * r[max(r)][2]:.1f}]" for a, r in readings.items()),
    display=False)
glue("degr_study_seeds", evaluate.counted(len(cfg.teacher.study_seeds), "seed"), display=False)

# %% tags=["hide-input"]
main = table[scfg.arch].astype(float).dropna()
step_name = lambda k: k.replace("_", " ")  # noqa: E731  (the row id step_750 reads "step 750")
glue("degr_first", f"{100 * main.iloc[0]:.1f}% at {step_name(main.index[0])}", display=False)
glue("degr_last", f"{100 * main.iloc[-1]:.1f}% at {step_name(main.index[-1])}", display=False)
glue("degr_peak", f"{100 * main.max():.1f}% at {step_name(main.idxmax())}", display=False)  # test-set report, not a choice
ra = table["requested_accuracy"].astype(float)
for i, name in ((0, "first"), (-1, "last")):
    glue(f"degr_req_{name}", f"{100 * ra.iloc[i]:.1f}% [{100 * table['requested_low'].iloc[i]:.1f}, "
                             f"{100 * table['requested_high'].iloc[i]:.1f}] at {step_name(ra.index[i])}", display=False)
glue("degr_seeds", evaluate.counted(len(ecfg.degradation_seeds), "seed"), display=False)
glue("degr_collapse_below", f"{100 * studies.COLLAPSE_BELOW:.0f}%", display=False)
glue("degr_falls", studies.degradation_falls(students, scfg.arch, y_te), display=False)

# %%
detail = {a: studies.degradation_seed_detail(students, a, y_te) for a in ecfg.grid_archs}
mine = lambda a: [r for (arch, _), runs in students.items() if arch == a for r in runs.values()]  # noqa: E731
glue("degr_collapsed", "; ".join(f"{a} {sum(r['accuracy'] < studies.COLLAPSE_BELOW for r in mine(a))} of {len(mine(a))}"
                                 for a in ecfg.grid_archs), display=False)
pd.concat(detail, names=["student", "checkpoint"])

# %% [markdown]
# ```{glue:figure} fig_degradation
# The two readings of §4.4 against the fraction of the diffusion model's training. Left:
# real-test accuracy of the students trained on each checkpoint's set (solid: the mean of
# their seeds, the band its 95% interval {glue:text}`degr_covers`; about the same updates at
# every checkpoint); black: the teacher's accuracy on each checkpoint's whole draw against the
# requested class, its band the 95% interval over the draw's digits. Right: the same reading by
# chapter 1's classifiers of each architecture, trained on real digits (dotted: the mean of
# their seeds, the band its 95% interval over the classifiers' seeds, all trained on one split,
# and the draw's digits, for this one generator). Dashed, in both:
# the thesis' values at epochs 8, 80 and 100 of 100, the only ones its text gives (Figs.
# 19-21), not a matched arm: its sampler, guidance, threshold, set size, students (this book's
# {glue:text}`degr_augment`) and its U-Net's passes over its data
# ({glue:text}`degr_passes_short`) differ.
# ```
#
# For the profile's student ({glue:text}`student_arch_name`) the curve runs from
# {glue:text}`degr_first` to {glue:text}`degr_last` (highest mean {glue:text}`degr_peak`), each point
# the mean of {glue:text}`degr_seeds`. Between neighbouring checkpoints:
# {glue:text}`degr_falls` (neighbouring pairs, each at 95%, not adjusted for being several).
# A mean can hide a collapsed seed: the table above the figure shows
# each seed, counts those that collapsed (below {glue:text}`degr_collapse_below` on the test
# set; in all, {glue:text}`degr_collapsed` students) and sets each checkpoint against the last
# with its interval (`kr_utils.studies.degradation_seed_detail`). The teacher's score of the whole draw runs from
# {glue:text}`degr_req_first` to {glue:text}`degr_req_last`: that measure sees every digit a
# checkpoint draws, the students see only what the teacher's filter kept, each labelled with
# the class it was asked for, whatever the teacher read in it (the figure above counts how
# often those differ). Read by each architecture's classifiers of real digits, the draws go
# from the first checkpoint to the last: {glue:text}`degr_reading_range`. Which curve each of
# the thesis' values lies closer to, at the checkpoints that sit at its fraction of training
# (`kr_utils.studies.closer_curve`; the thesis' values are single runs, with no interval):
# {glue:text}`degr_closer` The earliest point weighs most and is the one whose students depend
# most on the student's recipe (above), and a fraction of training is not a number of passes
# over the data ({glue:text}`degr_passes_short`): a resemblance across unmatched setups, not a
# test of which measure the thesis plotted.
#
# ## Errors of an early and of the final student

# %%
glue("student_arch_name", scfg.arch, display=False)
every = {(a, (step, s)): run for (a, step), runs in students.items() for s, run in runs.items()}  # all seeds
early_step, early_seed = studies.closest_student(every, scfg.arch, thesis.EARLY_STUDENT_ACCURACY)  # on validation
early = every[(scfg.arch, (early_step, early_seed))]
glue("errors_early_val", f"{100 * early['val_real_accuracy']:.2f}%", display=False)
glue("errors_early_seed", early_seed, display=False)
final_model = checkpoints.load_model(student_path, "student", device)
final_logits = evaluate.predict_logits(final_model, x_te, device=device)
errors = {}
for name, logits in (("early", early["test_logits"]), ("final", final_logits)):
    err = errors[name] = evaluate.error_analysis(logits, y_te)
    plots.glue_figure(f"fig_confusion_{name}", plots.confusion(
        err["confusion_matrix"], f"{name} student ({100 * err['accuracy']:.1f}%): real test set"))
    plots.glue_figure(f"fig_errors_{name}", plots.error_mosaic(x_te, y_te, logits, err["worst"]))
    glue(f"errors_{name}_top", ", ".join(f"{t}→{p} ({n})" for t, p, n in err["top_confusions"]), display=False)
    glue(f"errors_{name}_acc", f"{100 * err['accuracy']:.2f}%", display=False)
glue("errors_early_step", early_step, display=False)
glue("final_student_seed", scfg.seeds[0], display=False)
glue("thesis_early_top", ", ".join(f"{t}→{p} ({n})" for t, p, n in thesis.EARLY_CONFUSIONS), display=False)

# %% [markdown]
# The early student is the {glue:text}`student_arch_name` trained on the set of step
# {glue:text}`errors_early_step` (seed {glue:text}`errors_early_seed`), the one of all checkpoints
# and seeds closest to the thesis' 83-84% on the real validation
# digits ({glue:text}`errors_early_val` there). On the test set it scores
# {glue:text}`errors_early_acc`. Its most frequent confusions (true→predicted, count):
# {glue:text}`errors_early_top`; the thesis' early student: {glue:text}`thesis_early_top`.
# The final student of chapter 5 ({glue:text}`errors_final_acc`, seed {glue:text}`final_student_seed`): {glue:text}`errors_final_top`.
#
# ```{glue:figure} fig_confusion_early
# Confusion matrix of the early student on the real test set (rows: true digit; the thesis'
# Fig. 22).
# ```
#
# ```{glue:figure} fig_errors_early
# The 16 real test digits the early student gets wrong with the highest confidence
# (true→predicted, confidence; the thesis' Fig. 23).
# ```
#
# ```{glue:figure} fig_confusion_final
# Confusion matrix of the final student.
# ```
#
# ```{glue:figure} fig_errors_final
# The 16 real test digits the final student gets wrong with the highest confidence.
# ```

# %% tags=["remove-cell"]
store.update_metrics(profile, "degradation", {
    "per_class_budget": ecfg.degradation_per_class, "kept": ecfg.degradation_kept, "milestones": list(milestones),
    "balanced_by": "requested class", "seeds": list(ecfg.degradation_seeds), "budget": budget,
    "label_counts": {f"step_{m}": s["label_counts"] for m, (_, s) in sets.items()},
    "requested_accuracy": {f"step_{m}": s["requested_accuracy"] for m, (_, s) in sets.items()},
    "val_real_accuracy": {f"{a}/step_{m}/seed{sd}": r["val_real_accuracy"] for (a, m), runs in students.items() for sd, r in runs.items()},
    "table": table.to_dict(orient="index"),
    # the section 4.4 reading per architecture: mean and 95% interval over its classifiers and the draw's digits
    "real_classifier_readings": {a: {f"step_{m}": list(v) for m, v in r.items()} for a, r in readings.items()},
    "closer_to_thesis": closer,
    "early_student": {"step": early_step, **{k: v for k, v in errors["early"].items() if k != "worst"}},
    "final_student": {k: v for k, v in errors["final"].items() if k != "worst"}})
ch.close()

# %% [markdown]
# ## What was measured
#
# Students of the profile's architecture, {glue:text}`degr_seeds` on each checkpoint's set
# (balanced by and labelled with the requested class, the same updates everywhere, trained for
# {glue:text}`degr_budget_how`), go
# from {glue:text}`degr_first` to {glue:text}`degr_last` (highest mean {glue:text}`degr_peak`); the
# teacher's score of each checkpoint's whole draw goes from {glue:text}`degr_req_first`
# to {glue:text}`degr_req_last`. The early student (step {glue:text}`errors_early_step`) scores {glue:text}`errors_early_acc` and the
# final student of chapter 5 {glue:text}`errors_final_acc`.
