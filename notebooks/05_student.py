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
# # 5. The student: learning from synthetic digits only
#
# The student is trained from scratch on the synthetic set of chapter 4 and nothing else: its
# validation split (for early stopping) is synthetic too. The real MNIST test set is used only
# to report its score, and, for the curve below, its accuracy after each epoch, which plays no
# part in any decision.
#
# With hard labels the loss is the cross-entropy with the teacher's argmax. With soft targets
# (`soft=True`, seed 003) it is Hinton et al.'s
#
# $$\mathcal L = \alpha\,\mathrm{CE}(z_s, y) + (1-\alpha)\,\tau^2\,
#   \mathrm{KL}\big(\mathrm{softmax}(z_t/\tau)\,\|\,\mathrm{softmax}(z_s/\tau)\big) \tag{8}$$
#
# (`kr_utils.train.distillation_loss`), using the teacher logits saved with the set. Small random
# affine jitter of the synthetic digits (`kr_utils.train.augment`) is on at the `cpu` and `gpu`
# profiles.

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion"
    pass

# %% tags=["parameters"]
profile = None  # "smoke", "cpu" or "gpu"; None reads $KR_PROFILE, else "cpu"
seed = None     # overrides the profile's seed (used for the data split)
soft = None     # True: soft targets (eq. 8); overrides student.soft
arch = None     # overrides student.arch: "resnet_preact", "simple_cnn" or "compressed_cnn"
epochs = None   # overrides student.epochs

# %%
import time
import numpy as np
import torch
from myst_nb import glue
import kr_utils
from kr_utils import artifacts, data, evaluate, plots, synth, train

cfg = kr_utils.get_config(profile, student__soft=soft, student__arch=arch, student__epochs=epochs)
seed = cfg["seed"] if seed is None else seed
scfg, profile = cfg["student"], cfg["profile"]
out = artifacts.artifact_dir(profile)
device = artifacts.device()
t_start = time.perf_counter()
stored = synth.load_synthetic_set(out / "synthetic")
syn_train, syn_val = train.synthetic_split(stored["images"], stored["labels"], stored["logits"],
                                           scfg["val_fraction"], seed)
x_te, y_te = data.test_tensors(cfg["test_subset"])

# %%
# NBVAL_CHECK_OUTPUT
print(f"student {scfg['arch']}: {len(syn_train[0])} synthetic training digits, "
      f"{len(syn_val[0])} synthetic validation digits")

# %%
runs = {}
for s in scfg["seeds"]:
    student, hist = train.train_student(
        syn_train, syn_val, scfg, seed=s, device=device, report={"real_test": (x_te, y_te)},
        resume_path=out / f"student_seed{s}.partial.pt", desc=f"student seed {s}")
    rep = evaluate.classification_report(evaluate.predict_logits(student, x_te, device=device), y_te)
    runs[s] = {"model": student, "history": train.history_plain(hist), "report": rep}
    (out / f"student_seed{s}.partial.pt").unlink(missing_ok=True)
accs = evaluate.summarize_seeds([r["report"]["accuracy"] for r in runs.values()])
first = runs[scfg["seeds"][0]]
artifacts.save_checkpoint(out / "student.pt", first["model"], kind="student", config=cfg["student"],
                          profile=profile, seed=scfg["seeds"][0],
                          extra={"arch": scfg["arch"], "history": first["history"]})

# %%
teacher_acc = artifacts.read_metrics(profile)["teacher"]["test_accuracy"]
glue("student_acc", f"{100 * accs['mean']:.2f}%", display=False)
gap = 100 * (teacher_acc - accs["mean"])
glue("student_gap", f"{abs(gap):.2f} points {'below' if gap >= 0 else 'above'}", display=False)
glue("student_seeds", accs["n"], display=False)
glue("student_spread", "" if accs["std"] is None else
     f" (± {100 * accs['std']:.2f} std, 95% CI [{100 * accs['ci95'][0]:.2f}, {100 * accs['ci95'][1]:.2f}])",
     display=False)
glue("student_labels", "soft targets" if scfg["soft"] else "hard labels", display=False)
fig = plots.curves({f"seed {s}": r["history"] for s, r in runs.items()},
                   keys=("val_loss", "val_acc", "real_test_acc"))
plots.glue_figure("fig_student_curves", fig)

# %% [markdown]
# Trained on synthetic digits only, with {glue:text}`student_labels`, the student reaches
# **{glue:text}`student_acc`** on the real MNIST test set (mean over {glue:text}`student_seeds`
# seed(s){glue:text}`student_spread`), {glue:text}`student_gap` its teacher. The
# thesis' student reached 94.31% against a 99.55% teacher.
#
# ```{glue:figure} fig_student_curves
# Validation loss and accuracy on the synthetic validation split (used for early stopping) and
# accuracy on the real test set after each epoch (reported only).
# ```
#
# ## Where the student errs

# %%
rep = first["report"]
fig = plots.confusion(rep["confusion_matrix"], "student: confusion matrix on the real test set")
plots.glue_figure("fig_student_confusion", fig)
top = evaluate.top_confusions(rep["confusion_matrix"], 5)
glue("student_top_confusions", ", ".join(f"{t}→{p} ({n})" for t, p, n in top), display=False)
probs = evaluate.predict_logits(first["model"], x_te, device=device).softmax(1)
conf, pred = probs.max(1)
wrong = torch.nonzero(pred != y_te).flatten()
worst = wrong[conf[wrong].argsort(descending=True)[:16]]
fig = plots.mosaic(x_te[worst], nrow=2, titles=[f"{int(y_te[i])}→{int(pred[i])} ({conf[i]:.2f})" for i in worst])
plots.glue_figure("fig_student_errors", fig)

# %% [markdown]
# ```{glue:figure} fig_student_confusion
# The student's confusion matrix on the real test set. Most frequent confusions (true→predicted):
# {glue:text}`student_top_confusions`.
# ```
#
# ```{glue:figure} fig_student_errors
# The 16 real test digits the student gets wrong with the highest confidence
# (true→predicted, confidence).
# ```

# %%
artifacts.update_metrics(profile, "student", {
    "arch": scfg["arch"], "soft": scfg["soft"], "augment": scfg["augment"], "test_accuracy": accs,
    "per_class_accuracy": rep["per_class_accuracy"], "top_confusions": top,
    "epochs_run": [len(r["history"]["epoch"]) for r in runs.values()],
    "train_size": len(syn_train[0]), "val_size": len(syn_val[0])})
artifacts.update_metrics(profile, "wall_time_s", {"05_student": round(time.perf_counter() - t_start, 1)})
