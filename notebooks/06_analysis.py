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
# # 6. Results: this run against the thesis
#
# Every number on this page is read from the run's `metrics.json`, written by chapters 1-5 of
# the same profile; the thesis' numbers come from its text (seed `000`, §3.4.1, §4.1, §4.3).

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion"
    pass

# %% tags=["parameters"]
profile = None  # "smoke", "cpu" or "gpu"; None reads $KR_PROFILE, else "cpu"

# %%
import numpy as np
import pandas as pd
import matplotlib.pyplot as plt
from myst_nb import glue
import kr_utils
from kr_utils import artifacts, plots

import time
t_start = time.perf_counter()
cfg = kr_utils.get_config(profile)
profile = cfg["profile"]
m = artifacts.read_metrics(profile)
missing = [k for k in ("teacher", "diffusion", "synthetic_set", "student") if k not in m]
if missing:
    raise FileNotFoundError(f"metrics.json of profile {profile!r} lacks {missing}: run chapters 1-5 first")

# Thesis figures, from its text (never computed here).
THESIS = {"teacher accuracy (real test)": 0.9955, "student accuracy (real test)": 0.9431,
          "synthetic set size": 60000, "generation time (s)": 6 * 3600}
ours = {"teacher accuracy (real test)": m["teacher"]["test_accuracy"],
        "student accuracy (real test)": m["student"]["test_accuracy"]["mean"],
        "synthetic set size": m["synthetic_set"]["size"],
        "generation time (s)": m["synthetic_set"]["generation_time_s"]}
table = pd.DataFrame({"thesis (RTX 4070)": THESIS, f"this book ({profile}: {m['environment']['device']})": ours})
table

# %%
gap = ours["teacher accuracy (real test)"] - ours["student accuracy (real test)"]
glue("final_teacher", f"{100 * ours['teacher accuracy (real test)']:.2f}%", display=False)
glue("final_student", f"{100 * ours['student accuracy (real test)']:.2f}%", display=False)
glue("final_gap", f"{abs(100 * gap):.2f} points {'below' if gap >= 0 else 'above'} the teacher", display=False)
glue("final_thesis_gap", f"{100 * (THESIS['teacher accuracy (real test)'] - THESIS['student accuracy (real test)']):.2f}",
     display=False)
glue("final_device", m["environment"]["device"], display=False)
glue("final_profile", profile, display=False)
total = sum(v for k, v in m["wall_time_s"].items() if k != "06_analysis")
glue("final_total_min", f"{total / 60:.1f}", display=False)

# %% [markdown]
# At the **{glue:text}`final_profile`** profile on {glue:text}`final_device`, the teacher scores
# {glue:text}`final_teacher` and the student, which never saw a real training digit,
# {glue:text}`final_student`, {glue:text}`final_gap`; in the thesis the student was
# {glue:text}`final_thesis_gap` points below. Chapters 1-5 took
# {glue:text}`final_total_min` minutes in all.
#
# ## Per-class accuracy: teacher and student

# %%
fig, ax = plt.subplots(figsize=(7, 3))
w = 0.4
ax.bar(np.arange(10) - w / 2, 100 * np.array(m["teacher"]["per_class_accuracy"]), w, label="teacher")
ax.bar(np.arange(10) + w / 2, 100 * np.array(m["student"]["per_class_accuracy"]), w, label="student")
lo = min(min(m["teacher"]["per_class_accuracy"]), min(m["student"]["per_class_accuracy"]))
ax.set_ylim(max(0, 100 * lo - 2), 100.2); ax.set_xticks(range(10)); ax.set_xlabel("digit")
ax.set_ylabel("accuracy on real test (%)"); ax.legend(); ax.grid(alpha=0.3, axis="y")
fig.tight_layout()
plots.glue_figure("fig_per_class", fig)

# %% [markdown]
# ```{glue:figure} fig_per_class
# Accuracy per digit on the real test set.
# ```
#
# ## Does the teacher's confidence on synthetic digits predict the student's weak classes?

# %%
conf = pd.read_csv(artifacts.artifact_dir(profile) / "synthetic" / "confidence_per_class.csv").set_index("class")
conf["student accuracy"] = m["student"]["per_class_accuracy"]
corr = np.corrcoef(conf["frac_above_threshold"], conf["student accuracy"])[0, 1]
glue("conf_corr", f"{corr:.2f}", display=False)
conf[["conf_mean", "frac_above_threshold", "teacher_agrees", "student accuracy"]].style.format("{:.3f}")

# %% [markdown]
# Across the ten classes, the correlation between the fraction of generated digits the teacher
# accepts and the student's real-test accuracy is {glue:text}`conf_corr`.
#
# ## Where the time goes

# %%
wt = pd.Series(m["wall_time_s"]).sort_index()
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(wt.index, wt.values / 60); ax.set_xlabel("wall time (minutes)"); ax.invert_yaxis()
fig.tight_layout()
plots.glue_figure("fig_wall_time", fig)
pd.DataFrame({"minutes": (wt / 60).round(2)})

# %% [markdown]
# ```{glue:figure} fig_wall_time
# Wall time of each pipeline chapter in this run.
# ```

# %% [markdown]
# ## Recorded runs of other profiles
# Runs made on other machines (a lent GPU, Colab) are committed under `results/<profile>/` with
# the device and date; their headline numbers, read from those files:

# %%
import json
rows = {}
for path in sorted((artifacts.repo_root() / "results").glob("*/metrics.json")):
    r = json.loads(path.read_text())
    rows[path.parent.name] = {
        "device": r["environment"]["device"], "date": r["environment"]["date"],
        "teacher acc.": f"{100 * r['teacher']['test_accuracy']:.2f}%",
        "student acc. (mean of seeds)": f"{100 * r['student']['test_accuracy']['mean']:.2f}%",
        "seeds": r["student"]["test_accuracy"]["n"], "synthetic set": r["synthetic_set"]["size"],
        "acceptance": f"{100 * r['synthetic_set']['acceptance_rate']:.1f}%",
        "generation (s)": r["synthetic_set"]["generation_time_s"],
        "chapters 1-5 (min)": round(sum(r["wall_time_s"].values()) / 60, 1)}
pd.DataFrame(rows).T if rows else "no recorded runs"

# %% [markdown]
# ## Cost of sampling: the thesis' sampler against the fast one
# `benchmarks/samplers.py` generates with the 1000-step ancestral sampler and with the profile's
# DDIM sampler from the same model, at the same batch size, and trains one student on a set
# built with each; its recorded runs (`results/<profile>/sampler_benchmark.json`):

# %%
bench = {}
for path in sorted((artifacts.repo_root() / "results").glob("*/sampler_benchmark.json")):
    r = json.loads(path.read_text())
    for name, s in r["samplers"].items():
        bench[(path.parent.name, name)] = {
            "device": r["environment"]["device"], "date": r["environment"]["date"],
            "network passes / digit": s["network_passes_per_digit"], "digits/s": round(s["samples_per_s"], 2),
            "acceptance": f"{100 * s['acceptance_rate']:.1f}%", "set size": s["set_size"],
            "student acc.": f"{100 * s['student_accuracy']:.2f}%"}
pd.DataFrame(bench).T if bench else "no recorded sampler benchmark"

# %%
artifacts.update_metrics(profile, "wall_time_s", {"06_analysis": round(time.perf_counter() - t_start, 1)})
