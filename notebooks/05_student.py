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
# # 5. The student: learning from synthetic digits only
#
# The student is trained from scratch on the synthetic set of chapter 4 and nothing else: its
# validation split (for early stopping) is synthetic too. The real MNIST test set only scores:
# its final accuracy, and, for the curves below, its accuracy after each epoch. The two choices
# this chapter makes, each architecture's number of epochs in the grid and which cell of the
# grid to call the best, are made on a declared validation split of *real training* digits: the
# {glue:text}`real_val_size` digits chapter 1 held out of
# the teacher's training (`kr_utils.pipeline.real_validation`), which no model trains on: the
# diffusion model of chapter 2 learnt the same training digits as the teacher, these held out
# (`kr_utils.data.fit_digits`), and the students never see a real digit.
#
# With hard labels the loss is the cross-entropy with the teacher's argmax. With soft targets
# (`soft=True`, seed 003) it is Hinton et al.'s
#
# $$\mathcal L = \alpha\,\mathrm{CE}(z_s, y) + (1-\alpha)\,\tau^2\,
#   \mathrm{KL}\big(\mathrm{softmax}(z_t/\tau)\,\|\,\mathrm{softmax}(z_s/\tau)\big) \tag{8}$$
#
# (`kr_utils.distill.distillation_loss`), using the teacher logits saved with the set. Small random
# affine jitter of the synthetic digits (`kr_utils.distill.augment`) is on at the `cpu` and `gpu`
# profiles.

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
dataset = None  # "mnist" (default) or "fashion-mnist"; None reads $KR_DATASET
seed = None     # overrides the profile's seed (used for the data split)
soft = None     # True: soft targets (eq. 8); overrides student.soft
arch = None     # overrides student.arch: "resnet_preact", "simple_cnn" or "compressed_cnn"
epochs = None   # overrides student.epochs
grid_epochs = None  # overrides studies.epochs, the grid's (None: the student's, whose runs are then the grid's main cell)

# %% tags=["hide-input"]
import pandas as pd
from kr_utils.live import glue, glue_texts
from kr_utils import checkpoints, comparison, config, evaluate, pipeline, plots, store, thesis

ch = pipeline.open_chapter("05_student", profile, dataset=dataset, seed=seed, student__soft=soft, student__arch=arch, student__epochs=epochs,
                         studies__epochs=grid_epochs)
cfg, seed, device, out, profile = ch.cfg, ch.seed, ch.device, ch.out, ch.cfg.run
scfg = cfg.student
split = pipeline.student_split(cfg, device, seed)  # the synthetic set, found or built first (chapters 1, 2, 4)
stored, syn_train, syn_val, (x_te, y_te) = split["stored"], split["train"], split["val"], split["test"]
glue("real_val_size", f"{len(split['real_val'][1]):,d}", display=False)

# %%
# NBVAL_CHECK_OUTPUT
print(f"student {scfg.arch}: {len(syn_train[0])} synthetic training digits, "
      f"{len(syn_val[0])} synthetic validation digits")

# %% [markdown]
# ## The grid: three architectures, three kinds of labels
# The thesis (§4.3) trained its three classifiers as students with hard labels (so its code;
# its text describes soft targets), and
# scored them on *synthetic* test digits (Table 7, Fig. 16: 30 epochs) and on the real test
# set (Fig. 17: its ResNet over 80 epochs; Fig. 18: the three architectures); seed 003 describes the soft targets.
# Here each is trained with hard labels (the
# teacher's argmax) and with soft targets at $\tau = 1$ and $\tau = 4$ (eq. 8,
# $\alpha = 0.5$). The profile's student ({glue:text}`student_main_cell`)
# gets {glue:text}`student_seeds`, every other cell {glue:text}`grid_seeds_n`;
# {glue:text}`grid_budget` (the thesis: 30-100
# epochs, 10 seeds). Runs are cached under `artifacts/<profile>/students/`
# (`kr_utils.studies.run_classifier`), so an interrupted grid resumes at the run and epoch
# where it stopped.

# %%
ecfg = cfg.studies
grid = pipeline.student_grid(cfg, split, device)  # grid.main[seed], grid.cells[(arch, labels)][seed], cached
main_cell, runs = grid.main_cell, grid.cells
summary = {cell: evaluate.summarize_seeds([r["accuracy"] for r in rs.values()]) for cell, rs in runs.items()}
accs = evaluate.summarize_seeds([r["accuracy"] for r in grid.main.values()])
first = grid.main[scfg.seeds[0]]
pipeline.save_student(cfg, first, scfg.seeds[0])  # artifacts/<profile>/student.pt

# %%
teacher = checkpoints.load_model(pipeline.teacher(cfg, device), "teacher", device)
teacher_right = (evaluate.predict_logits(teacher, x_te, device=device).argmax(1) == y_te).numpy()[None]
glue_texts(pipeline.grid_texts(cfg, grid, teacher_right, y_te))  # one teacher, the same test digits
fig = plots.band_curves({f"{main_cell[0]}, {main_cell[1]}": [r["history"] for r in grid.main.values()]},
                        keys=("val_loss", "val_acc", "real_test_acc"))
plots.glue_figure("fig_student_curves", fig)

# %% [markdown]
# Trained on synthetic digits only, with {glue:text}`student_labels`, the student reaches
# **{glue:text}`student_acc`** on the real MNIST test set (mean over
# {glue:text}`student_seeds`{glue:text}`student_spread`). Against its teacher, on the same test
# digits: {glue:text}`student_gap` (`kr_utils.comparison.compare_runs`).
# Its 95% interval, {glue:text}`student_interval`, covers both sources of error for this one set
# (the teacher, the U-Net and the set are drawn once; `kr_utils.comparison.accuracy_interval`):
# the training seeds, and the {glue:text}`student_test_n` test digits every seed is scored on,
# whose own sampling error is {glue:text}`student_larger_part`: one seed's accuracy alone carries a 95% binomial (Wilson) interval of
# {glue:text}`student_test_interval`, about ± {glue:text}`student_test_halfwidth` points. The thesis' student reached 94.31 ± 0.06%
# (10 seeds) against a 99.55% teacher.
#
# ```{glue:figure} fig_student_curves
# Validation loss and accuracy on the synthetic validation split (used for early stopping) and
# accuracy on the real test set after each epoch (reported only); mean over seeds ± one std.
# ```

# %%
by_arch = {a: [r["history"] for r in runs[(a, main_cell[1])].values()] for a in ecfg.grid_archs
           if (a, main_cell[1]) in runs}
fig = plots.band_curves(by_arch, keys=("real_test_acc",))
plots.glue_figure("fig_student_archs", fig)
by_labels = {config.LABEL_NAMES[lab]: [r["history"] for r in runs[(main_cell[0], lab)].values()]
             for lab in ecfg.grid_labels if (main_cell[0], lab) in runs}
fig = plots.band_curves(by_labels, keys=("real_test_acc",))
plots.glue_figure("fig_student_label_curves", fig)

# %% [markdown]
# ```{glue:figure} fig_student_archs
# Real-test accuracy after each epoch of the three architectures as students
# ({glue:text}`student_labels`), mean over seeds ± one std (the thesis' Figs. 16 and 18).
# ```
#
# ```{glue:figure} fig_student_label_curves
# The same for the profile's architecture with hard labels and with soft targets.
# ```
#
# ## Final table

# %%
table = pd.DataFrame({config.LABEL_NAMES[lab]: {a: evaluate.format_interval(runs[(a, lab)], y_te)
                                                     for a in ecfg.grid_archs if (a, lab) in summary}
                      for lab in ecfg.grid_labels})
syn_val_acc = {cell: pipeline.kept_synthetic_val(rs) for cell, rs in runs.items()}  # as the thesis' Table 7 scored
table["synthetic validation (main labels)"] = [f"{100 * syn_val_acc[(a, main_cell[1])]:.2f}%" for a in table.index]
table["thesis, real test (§4.4, final)"] = [f"{100 * thesis.STUDENTS_REAL_FINAL[a]:.1f}%" for a in table.index]
table["thesis, synthetic test (Table 7)"] = [f"{100 * thesis.STUDENTS_ON_SYNTHETIC[a]:.2f}%" for a in table.index]
best, best_val = grid.best_on_validation()  # chosen on the real validation digits; the test set only scores it
glue("grid_best", f"{best[0]} with {config.LABEL_NAMES[best[1]]}", display=False)
glue("grid_best_val", f"{100 * best_val['mean']:.2f}%", display=False)
glue("grid_best_test", evaluate.format_interval(runs[best], y_te), display=False)
pair = grid.soft_vs_hard(y_te)  # over the seeds and the test digits
glue("grid_soft_vs_hard", "not measured at this profile (one of the two cells is not in its grid)" if pair is None
     else pair.sentence("soft targets at τ=4", "hard labels"), display=False)
glue("syn_val_main", f"{100 * pipeline.kept_synthetic_val(grid.main):.2f}%", display=False)
table

# %% [markdown]
# Real-test accuracy of every cell: the mean over its seeds [95% interval over the training
# seeds and the test digits, `kr_utils.comparison.accuracy_interval`], then each seed's value.
# {glue:text}`grid_df_sentence` Each architecture's budget was chosen on its cell of the main
# labels, and that cell's first seed is the very run that chose it, so the main labels' cells
# are slightly favoured on the validation digits, in the choice of the best cell too. The best cell, chosen on the real validation digits
# ({glue:text}`grid_best_val` there), is {glue:text}`grid_best`; on the test set it scores
# {glue:text}`grid_best_test`. For the profile's architecture, {glue:text}`grid_soft_vs_hard`:
# the interval adds the training seeds' variance and the test digits' (`kr_utils.comparison.compare_runs`),
# so it covers both another seed of each recipe and another draw of test digits.
#
# The thesis' Table 7 reported 99.9% for its students, measured on *synthetic* test digits
# (the distribution they were trained on). The column "synthetic validation" is that
# measurement here, on each student's synthetic validation digits at its kept epoch (the
# profile's student: {glue:text}`syn_val_main`). Those digits also chose its early stopping
# epoch, so the number is slightly optimistic. Every other number of this book is on the real
# test set, where the thesis' students reached 91-96%.

# %% tags=["remove-cell"]
_, s_lo, s_hi = comparison.accuracy_interval(evaluate.correct_on(grid.main, y_te))  # seeds and test digits
store.update_metrics(profile, "student", {
    "arch": scfg.arch, "soft": scfg.soft, "augment": scfg.augment, "test_accuracy": accs,
    "test_accuracy_interval_seeds_and_digits": [s_lo, s_hi],
    "per_class_accuracy": first["per_class_accuracy"],
    "epochs_run": [len(r["history"]["epoch"]) for r in grid.main.values()], "grid_epochs": grid.budget["epochs"],
    "grid_budget_val_real_accuracy": grid.budget["val_real_accuracy"],
    "train_size": len(syn_train[0]), "val_size": len(syn_val[0]),
    "grid": {f"{a}/{lab}": v for (a, lab), v in summary.items()},
    "grid_real_validation": {f"{a}/{lab}": v for (a, lab), v in grid.validation_summaries().items()},
    "grid_synthetic_validation": {f"{a}/{lab}": v for (a, lab), v in syn_val_acc.items()},
    "best_cell_on_validation": f"{best[0]}/{best[1]}", "grid_main_labels": main_cell[1], "real_validation_size": len(split["real_val"][1]),
    "train_time_s": grid.train_time_s()})
ch.close()

# %% [markdown]
# ## What was measured
#
# The student ({glue:text}`student_main_cell`), trained on synthetic digits only, reaches
# **{glue:text}`student_acc`** on the real test set (mean over
# {glue:text}`student_seeds`{glue:text}`student_spread`; 95% interval over seeds and test digits
# {glue:text}`student_interval`); against its teacher, {glue:text}`student_gap`. The best cell of the
# grid on the real validation digits is {glue:text}`grid_best` ({glue:text}`grid_best_test` on
# the test set). For the main architecture, {glue:text}`grid_soft_vs_hard`.
