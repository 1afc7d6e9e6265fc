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
# # 8. Results: this run against the thesis
#
# Every number on this page is read from the run's `metrics.json`, written by chapters 1-7 of
# the same profile; the thesis' numbers are quoted from its text (seed `000`) in
# `kr_utils.thesis`, with the section each comes from. Opened alone, before chapters 1-7 have
# run on the machine, the chapter shows the last recorded run of the profile instead
# (`kr_utils.pipeline.analysis_metrics`). The numbers below come from {glue:text}`analysis_source`.

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
dataset = None  # "mnist" (default) or "fashion-mnist"; None reads $KR_DATASET

# %% tags=["hide-input"]
import json
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from kr_utils.live import glue
from kr_utils import analysis, evaluate, pipeline, plots, store, synth, thesis

ch = pipeline.open_chapter("08_analysis", profile, dataset=dataset)  # its cost recorded at its end
cfg, profile = ch.cfg, ch.cfg.run
m, source = pipeline.analysis_metrics(profile)  # this run's, or the recorded run's when chapters 1-7 have not run here
glue("analysis_source", source, display=False)
pct = analysis.pct

# %% [markdown]
# ## Thesis against this book, number by number

# %%
discussion = analysis.thesis_comparison(m, profile)
abl, deg, syn = m["ablation"]["variants"], analysis.degradation_frame(m), m["synthetic_set"]
discussion

# %%
teacher_acc, student_acc = m["teacher"]["test_accuracy"], m["student"]["test_accuracy"]["mean"]
gap = teacher_acc - student_acc
glue("final_teacher", pct(teacher_acc), display=False)
glue("final_student", pct(student_acc), display=False)
glue("final_gap", f"{abs(100 * gap):.2f} points {'below' if gap >= 0 else 'above'} the teacher", display=False)
glue("final_thesis_gap", f"{100 * (thesis.TEACHER_USED - thesis.STUDENT['accuracy']):.2f}", display=False)
glue("final_device", m["environment"]["device"], display=False)
glue("final_profile", profile, display=False)
# compute time: wall time plus the stored cost of every cached result a rebuild reused
ct = m.get("compute_time_s", m["wall_time_s"])
total = sum(v for k, v in ct.items() if k < "08")  # chapters 1-7 (9 and 10 run after this one)
glue("final_total_min", f"{total / 60:.1f}", display=False)
glue("final_thesis_recipe", pct(abl["thesis_recipe"]["accuracy"]["mean"]), display=False)

# %% [markdown]
# At the **{glue:text}`final_profile`** profile on {glue:text}`final_device`, the teacher scores
# {glue:text}`final_teacher` and the student {glue:text}`final_student`,
# {glue:text}`final_gap`; in the thesis the student was {glue:text}`final_thesis_gap` points
# below. The student never saw a real digit (the diffusion model it learns from trained on the
# real training digits). The thesis' recipe as its scripts ran it (chapter 7: its U-Net's
# range, its sampler, grey storage, requested labels, 80 epochs at a constant learning rate,
# 100 digits per class) gives, on this book's generator and teacher, a student of
# {glue:text}`final_thesis_recipe`. Computed from scratch, chapters 1-7 take {glue:text}`final_total_min` minutes in all.
#
# ## Cost of every stage
# Compute time of each stage on the device named above and, where a stage has a natural unit of
# work, its rate. A rebuild reuses cached results (`kr_utils.store.cached`); the times here
# add the stored compute time of each reused result to the rebuild's own wall time
# (`store.StageClock`), so they say what a stage costs, not how long a rebuild took.

# %%
wt, d = ct, m["diffusion"]
knobs = m["generation"]["knobs"]
cost = {
    "1. teachers (all architectures and seeds)": (wt.get("01_teacher"), f"{len(m['teacher']['study'])} architectures"),
    "2. diffusion training": (wt.get("02_diffusion"), f"{d['steps'] * d['batch_size'] / d['train_time_s']:.0f} images/s"
                              if d.get("train_time_s") else "not recorded"),
    "3. generation knobs": (wt.get("03_generation"), "; ".join(f"{knobs[k]['label']}: {knobs[k]['samples_per_s']:.1f} digits/s"
                                                               for k in ("clip", "ddim"))),
    "4. synthetic set": (wt.get("04_synthetic_set"), f"{syn['generated_per_s']:.1f} digits/s generated and labelled"),
    "5. student grid": (wt.get("05_student"), f"{len(m['student']['grid'])} cells"),
    "6. degradation and errors": (wt.get("06_degradation"), f"{len(deg)} checkpoints"),
    "7. ablation": (wt.get("07_ablation"), f"{len(abl)} variants"),
    "theory chapters": (sum(m.get("theory_wall_time_s", {}).values()) or None,
                        f"{len(m.get('theory_wall_time_s', {}))} chapters"),
}
pd.DataFrame({"minutes": {k: None if v[0] is None else round(v[0] / 60, 1) for k, v in cost.items()},
              "rate": {k: v[1] for k, v in cost.items()}})

# %% [markdown]
# ## Per-class accuracy: teacher and student

# %%
lo = min(m["teacher"]["per_class_accuracy"] + m["student"]["per_class_accuracy"])
fig = plots.grouped_bars({"teacher": 100 * np.array(m["teacher"]["per_class_accuracy"]),
                          "student": 100 * np.array(m["student"]["per_class_accuracy"])},
                         ylabel="accuracy on real test (%)", ylim=(max(0, 100 * lo - 2), 100.2))
plots.glue_figure("fig_per_class", fig)

# %% [markdown]
# ```{glue:figure} fig_per_class
# Accuracy per digit on the real test set.
# ```
#
# ## Does the teacher's confidence on synthetic digits predict the student's weak classes?

# %%
conf = pd.DataFrame(m["synthetic_set"]["confidence_per_class"]).set_index("class")
conf["student accuracy"] = m["student"]["per_class_accuracy"]
corr = np.corrcoef(conf["frac_above_threshold"], conf["student accuracy"])[0, 1]
glue("conf_corr", f"{corr:.2f}", display=False)
conf[["conf_mean", "frac_above_threshold", "teacher_agrees", "student accuracy"]].rename(
    columns=synth.CONFIDENCE_LABELS).style.format("{:.3f}")

# %% [markdown]
# Across the ten classes, the correlation between the fraction of generated digits the teacher
# accepts and the student's real-test accuracy is {glue:text}`conf_corr`.
#
# ## Where the time goes

# %%
wt = pd.Series(ct).sort_index()
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(wt.index, wt.values / 60); ax.set_xlabel("compute time (minutes)"); ax.invert_yaxis()
fig.tight_layout()
plots.glue_figure("fig_wall_time", fig)

# %% [markdown]
# ```{glue:figure} fig_wall_time
# Compute time of each pipeline chapter (the table above groups the same numbers by stage).
# ```

# %% [markdown]
# ## Recorded runs of other profiles
# Runs made on other machines (a lent GPU, Colab) are committed under `results/<profile>/` with
# the device, date and code commit; their headline numbers, read from those files:

# %%
rows = {}
for path in sorted((store.repo_root() / "results").glob("*/metrics.json")):
    r = json.loads(path.read_text())
    rows[path.parent.name] = {
        "device": r["environment"]["device"], "date": r["environment"]["date"],
        # the code's commit; runs recorded before commits were stored: the commit that added them
        "commit": r["environment"].get("commit") or f"{r['environment'].get('recorded_in_commit', '?')} (recorded in)",
        "teacher acc.": f"{100 * r['teacher']['test_accuracy']:.2f}%",
        "student acc. (mean of seeds)": f"{100 * r['student']['test_accuracy']['mean']:.2f}%",
        "seeds": r["student"]["test_accuracy"]["n"], "synthetic set": r["synthetic_set"]["size"],
        "acceptance": f"{100 * r['synthetic_set']['acceptance_rate']:.1f}%",
        "generation (s)": r["synthetic_set"]["generation_time_s"],
        # compute time where recorded (older runs: wall time)
        "chapters (min)": round(sum((r.get("compute_time_s") or r["wall_time_s"]).values()) / 60, 1)}
pd.DataFrame(rows).T if rows else "no recorded runs"

# %% [markdown]
# ## Cost of sampling: the thesis' sampler against the fast ones
# `benchmarks/samplers.py` generates with the 1000-step ancestral sampler and with fast samplers
# of at most 50 steps (DDIM, and the ancestral chain respaced) from the same model, at the same
# batch size, builds a set of the same size with each, and trains students on each set (one per
# seed, mean ± std, each with as many optimiser updates as the main student of chapter 5). Its
# recorded runs (`results/<profile>/sampler_benchmark.json`, device and date inside):

# %%
bench = {}
for path in sorted((store.repo_root() / "results").glob("*/sampler_benchmark.json")):
    r = json.loads(path.read_text())
    for name, s in r["samplers"].items():
        bench[(path.parent.name, name)] = {
            "device": r["environment"]["device"], "date": r["environment"]["date"],
            "network passes / digit": s["network_passes_per_digit"], "digits/s": round(s["samples_per_s"], 2),
            "speed-up": f"{s['samples_per_s'] / r['samplers']['ancestral_1000']['samples_per_s']:.1f}x",
            "acceptance": f"{100 * s['acceptance_rate']:.1f}%", "set size": s["set_size"],
            "student acc.": evaluate.format_summary(s["student_accuracy_seeds"]) if "student_accuracy_seeds" in s
            else f"{100 * s['student_accuracy']:.2f}% (1 seed)",
            "below ancestral 1000 (points)": round(100 * (r["samplers"]["ancestral_1000"]["student_accuracy"]
                                                          - s["student_accuracy"]), 2)}
pd.DataFrame(bench).T if bench else "no recorded sampler benchmark"

# %% tags=["remove-cell"]
ch.close()

# %% [markdown]
# ## What was measured
#
# In this run ({glue:text}`analysis_source`) the teacher scores {glue:text}`final_teacher` and the
# student {glue:text}`final_student`, {glue:text}`final_gap`; in the thesis the student was
# {glue:text}`final_thesis_gap` points below. The thesis' recipe on this book's generator gives
# {glue:text}`final_thesis_recipe`, and chapters 1-7 cost {glue:text}`final_total_min` minutes
# from scratch.
