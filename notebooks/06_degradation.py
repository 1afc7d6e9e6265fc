# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 6. Degradation and errors: students of under-trained generators
#
# How good must the generator be? The thesis (§4.4, Figs. 19-21) built a synthetic set from its
# U-Net after 8, 17, 35, 50, 65, 80 and 100 epochs of training, trained the three students on
# each, and measured them on the real test set: from 22-37% (epoch 8) to 92-96% (epoch 80),
# with a small drop at epoch 100 that it attributed to an over-fitted generator. We repeat the
# study at those checkpoints, scaled to this profile's training (the same fractions of it),
# and at two earlier ones of ours ({glue:text}`degr_steps`), all saved by chapter 2.
#
# Only the generator may change from one checkpoint to the next. Each checkpoint draws
# {glue:text}`degr_per_class` digits of each class (the profile's sampler, {glue:text}`degr_sampler`, and its guidance).
# The teacher accepts those with confidence at or above {glue:text}`degr_threshold`, labelled
# as in chapter 4, and {glue:text}`degr_kept` of the accepted digits are drawn at random,
# **whatever their label** (`kr_utils.studies.degradation_set`). So every student learns from
# a set of one size and makes the same {glue:text}`degr_updates` optimiser updates
# ({glue:text}`degr_epochs`). A generator that makes mostly one class gives a set of
# mostly that class, and the histogram below shows it. One student of each architecture, with
# the profile's labels, learns from each set. {glue:text}`degr_updates` updates is fewer than
# the {glue:text}`degr_ch5_updates` of a student of chapter 5: the absolute level of the
# smaller students here is under-trained, and the comparison is between checkpoints.
#
# The second half looks at the errors (§4.5, Figs. 22-23): the confusion matrix of an early
# student and of the final student of chapter 5, with the real test digits each gets wrong
# most confidently. The thesis took a student in its first epochs of training, at 83-84%.
# Here the early student is, among the students of the checkpoints above, the one whose
# accuracy on the **real validation digits** (chapter 1's held-out training digits; the test
# set plays no part in the choice) is closest to that. Its errors are those of a less trained
# generator.

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
dataset = None  # "mnist" (default) or "fashion-mnist"; None reads $KR_DATASET
seed = None     # overrides the profile's seed

# %%
import matplotlib.pyplot as plt
import numpy as np
import kr_utils
from kr_utils import checkpoints, data, diffusion, distill, evaluate, pipeline, plots, runtime, store, studies, thesis
from kr_utils.live import glue

cfg = kr_utils.get_config(profile, dataset=dataset)
seed = cfg.seed if seed is None else seed
scfg, ecfg, profile = cfg.student, cfg.studies, cfg.run
device = runtime.device()
clock = store.StageClock.start(profile, "06_degradation")  # this chapter's cost, recorded at its end
print(f"profile={profile} device={device} artifacts={store.artifact_dir(profile)}")
# found in the artifacts folder, or built first as chapters 1, 2 (with its milestone checkpoints) and 5 do
teacher = checkpoints.load_model(pipeline.teacher(cfg, device, seed), "teacher", device)
d_path = pipeline.diffusion_model(cfg, device, seed, with_milestones=True)
student_path = pipeline.student(cfg, device)
sampler = diffusion.build_sampler(cfg.sampler, checkpoints.load_schedule(d_path))
x_te, y_te = data.test_tensors(cfg.test_subset, cfg.dataset)
x_val, y_val = pipeline.real_validation(cfg, seed)  # the real validation digits: the early student is chosen on them
glue("degr_per_class", ecfg.degradation_per_class, display=False)
glue("degr_sampler", diffusion.sampler_label(cfg.sampler), display=False)
glue("degr_threshold", cfg.synth.threshold, display=False)
glue("degr_epochs", evaluate.counted(ecfg.degradation_epochs, "epoch"), display=False)
glue("degr_kept", f"{ecfg.degradation_kept:,d}", display=False)
glue("degr_steps", ", ".join(f"{m:,d}" for m in ecfg.degradation_milestones) + f" of {cfg.diffusion.steps:,d} steps",
     display=False)
glue("degr_updates", f"{distill.optimizer_updates(ecfg.degradation_kept, scfg.val_fraction, scfg.batch_size, ecfg.degradation_epochs):,d}",
     display=False)
glue("degr_ch5_updates", f"{distill.optimizer_updates(cfg.num_classes * cfg.synth.per_class, scfg.val_fraction, scfg.batch_size, scfg.epochs):,d}",
     display=False)

# %% [markdown]
# ## A synthetic set from each checkpoint
#
# `kr_utils.studies.degradation_set` draws the budget from one checkpoint and keeps a random
# {glue:text}`degr_kept` of what the teacher accepts (cached under `artifacts/<profile>/degradation/`).

# %%
milestones = ecfg.degradation_milestones
sets = studies.degradation_sets(cfg, milestones, teacher, sampler, seed=seed, device=device)  # side by side on a CPU
blank = np.zeros(cfg.data.image_shape[1:], np.uint8)  # a black square where a class has no kept digit
grid = [s["images"][s["labels"] == c][0].numpy() if (s["labels"] == c).any() else blank
        for _, s in sets.values() for c in range(cfg.num_classes)]
fig = plots.mosaic(np.stack(grid), nrow=len(sets), row_labels=[f"step {m}" for m in milestones])
plots.glue_figure("fig_degr_samples", fig)
counts = np.array([s["label_counts"] for _, s in sets.values()])
fig = plots.count_heatmap(counts, row_labels=[f"step {m}" for m in milestones], xlabel="label of the kept digit",
                          title="kept digits per label")
plots.glue_figure("fig_degr_labels", fig)
one_class = [m for m, (_, s) in sets.items() if max(s["label_counts"]) >= 0.5 * max(1, len(s["labels"]))]
glue("degr_one_class", "none" if not one_class else ", ".join(f"step {m}" for m in one_class), display=False)

# %% [markdown]
# ```{glue:figure} fig_degr_samples
# One kept digit of each label, per checkpoint (rows: training steps of the diffusion model).
# A black square: no kept digit has that label.
# ```
#
# ```{glue:figure} fig_degr_labels
# How many of each checkpoint's kept digits carry each label (the teacher's, or the requested
# class with `synth.label_mode="requested"`). Every row sums to the same set size, except a
# checkpoint whose teacher accepted fewer digits (it gets no student).
# ```
#
# Checkpoints where one label takes half of the kept set or more: {glue:text}`degr_one_class`.
# A student of such a set can score no more than that label's share of the test set, plus
# chance.

# %%
students = studies.degradation_students(cfg, sets, seed=seed, device=device, test=(x_te, y_te), holdout=(x_val, y_val))
table = studies.degradation_table(cfg, sets, students)
shown = table.rename(index=lambda k: k.replace("_", " "),
                     columns={"fraction_of_training": "fraction of training", "top_label_share": "top label's share"})
shown.style.format({c: "{:.3f}" for c in ["fraction of training", "acceptance", "top label's share", *ecfg.grid_archs]} |
                   {"generated": "{:.0f}", "accepted": "{:.0f}", "kept": "{:.0f}", "updates": "{:.0f}"},
                   na_rep="too few digits")

# %%
fig, ax = plt.subplots(figsize=(6.5, 3.6))
for arch in ecfg.grid_archs:
    line, = ax.plot(table["fraction_of_training"], 100 * table[arch], marker="o", label=f"{arch} (this book)")
    th = thesis.DEGRADATION[arch]
    ax.plot([e / thesis.DIFFUSION_EPOCHS for e in th], [100 * v for v in th.values()], ls="--", marker="x",
            color=line.get_color(), alpha=0.6, label=f"{arch} (thesis)")
ax.set_xlabel("fraction of the diffusion model's training"); ax.set_ylabel("student accuracy, real test (%)")
ax.grid(alpha=0.3); ax.legend(fontsize=7)
fig.tight_layout()
plots.glue_figure("fig_degradation", fig)
main = table[scfg.arch].dropna()
step_name = lambda k: k.replace("_", " ")  # noqa: E731  (the row id step_750 reads "step 750")
glue("degr_first", f"{100 * main.iloc[0]:.1f}% at {step_name(main.index[0])}", display=False)
glue("degr_last", f"{100 * main.iloc[-1]:.1f}% at {step_name(main.index[-1])}", display=False)
glue("degr_peak", f"{100 * main.max():.1f}% at {step_name(main.idxmax())}", display=False)  # test-set report, not a choice
# where the curve falls by more than 5 points from one checkpoint to the next (one seed each)
drops = [(a, b) for a, b in zip(main.index[:-1], main.index[1:]) if main[b] < main[a] - 0.05]
glue("degr_drops", "nowhere" if not drops else "; ".join(
    f"from {100 * main[a]:.1f}% at {step_name(a)} to {100 * main[b]:.1f}% at {step_name(b)}" for a, b in drops),
    display=False)

# %% [markdown]
# ```{glue:figure} fig_degradation
# Real-test accuracy of students trained on the set of each checkpoint (one seed each, the
# same set size and updates), against the fraction of the diffusion model's training (solid),
# with the thesis' endpoints and peak (dashed: epochs 8, 80 and 100 of 100, the only values its
# text gives; Figs. 19-21).
# ```
#
# For the profile's student ({glue:text}`student_arch_name`) the curve runs from
# {glue:text}`degr_first` to {glue:text}`degr_last` (peak {glue:text}`degr_peak`). Each point
# is one student, one training seed. The curve falls by more than 5 points between neighbouring
# checkpoints {glue:text}`degr_drops`. With one seed per checkpoint such a fall cannot be told
# from the spread of training on {glue:text}`degr_kept` digits, so it is not evidence of a worse
# generator. The
# teacher's filter keeps only digits it is confident about, but whether an early generator's
# kept digits are *correctly* labelled is not measured here: nothing but the teacher labels
# them. The low scores of the early students say only that such a set teaches little, whether
# for lack of digits, of variety, or of correct labels.
#
# ## Errors of an early and of the final student

# %%
glue("student_arch_name", scfg.arch, display=False)
early_step = studies.closest_student(students, scfg.arch, thesis.EARLY_STUDENT_ACCURACY)  # on the real validation digits
glue("errors_early_val", f"{100 * students[(scfg.arch, early_step)]['val_real_accuracy']:.2f}%", display=False)
early = students[(scfg.arch, early_step)]
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
# {glue:text}`errors_early_step`, the one closest to the thesis' 83-84% on the real validation
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

# %%
store.update_metrics(profile, "degradation", {
    "per_class_budget": ecfg.degradation_per_class, "kept": ecfg.degradation_kept, "milestones": list(milestones),
    "label_counts": {f"step_{m}": s["label_counts"] for m, (_, s) in sets.items()},
    "val_real_accuracy": {f"{a}/step_{m}": r["val_real_accuracy"] for (a, m), r in students.items()},
    "table": table.to_dict(orient="index"),
    "early_student": {"step": early_step, **{k: v for k, v in errors["early"].items() if k != "worst"}},
    "final_student": {k: v for k, v in errors["final"].items() if k != "worst"}})
clock.record()

# %% [markdown]
# ## What was measured
#
# Students of the profile's architecture, trained on sets of one size with the same number of
# updates from each checkpoint, go from {glue:text}`degr_first` to {glue:text}`degr_last` (peak {glue:text}`degr_peak`). The
# early student (step {glue:text}`errors_early_step`) scores {glue:text}`errors_early_acc` and the
# final student of chapter 5 {glue:text}`errors_final_acc`.
