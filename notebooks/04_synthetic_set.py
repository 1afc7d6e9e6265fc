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
# # 4. The synthetic training set
#
# The diffusion model draws digits of each class; the teacher labels every one of them, and only
# those it labels with confidence $\max_k \mathrm{softmax}(z)_k$ of at least
# {glue:text}`synth_threshold` at this profile are kept (`kr_utils.synth.build_synthetic_set`,
# thesis §3.3.5: {glue:text}`synth_thesis_thr`). At this profile the stored label
# is {glue:text}`synth_label_mode` (the thesis' text describes the teacher's argmax, its code
# kept the requested class: `label_mode`), and we record how often the two agree. Classes are
# filled to equal quotas; when a round keeps nothing, the threshold is lowered by 0.01 (the
# thesis' code lowers it after a batch of its draws keeps nothing, here after a whole round),
# down to a floor, after which the build stops with an error that lists the per-class
# counts.
#
# The set is written in MNIST's own idx format, so any MNIST loader reads it, together with the
# teacher's probabilities and a CSV of per-class confidence. Synthetic and real digits share one
# pixel convention: uint8 on disk with a black background, $[-1, 1]$ in every model. (The
# thesis' code normalised twice and stored its digits on a grey background, while the real test
# digits are on black; we check below that our backgrounds match.)

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None     # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
dataset = None     # "mnist" (default) or "fashion-mnist"; None reads $KR_DATASET
seed = None        # overrides the profile's seed
per_class = None   # overrides synth.per_class
threshold = None   # overrides synth.threshold, in (0, 1]
label_mode = None  # "teacher" (default) or "requested"

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
from kr_utils.live import glue, glue_texts
from kr_utils import analysis, checkpoints, controls, data, diffusion, live, pipeline, plots, store, synth

ch = pipeline.open_chapter("04_synthetic_set", profile, dataset=dataset, seed=seed, synth__per_class=per_class, synth__threshold=threshold,
                          synth__label_mode=label_mode)
cfg, seed, device, out, profile = ch.cfg, ch.seed, ch.device, ch.out, ch.cfg.run
dcfg, gcfg, scfg = cfg.diffusion, cfg.sampler, cfg.synth

# %% [markdown]
# A set built from the same settings, teacher and diffusion checkpoints is reused (the
# fingerprint of `kr_utils.store.fingerprint` is stored in `summary.json`).

# %% tags=["hide-input"]
summary, reused = pipeline.make_synthetic_set(cfg, device, seed)  # teacher and diffusion model found or built first
met = synth.threshold_report(synth.load_synthetic_set(out / "synthetic"),  # at the configured threshold
                             pd.read_csv(out / "synthetic" / "confidence_per_class.csv"))
glue_texts(pipeline.synthetic_set_texts(cfg, summary, met, device))

# %%
# NBVAL_CHECK_OUTPUT
print(f"synthetic set: {summary['size']} digits, per class {summary['class_counts']}")

# %% [markdown]
# The set holds {glue:text}`synth_size` digits, kept out of {glue:text}`synth_generated` generated
# ({glue:text}`synth_kept_share`), in {glue:text}`synth_time` minutes
# ({glue:text}`synth_rate` digits/s, sampler: {glue:text}`synth_sampler`). The teacher's label
# agrees with the requested class for {glue:text}`synth_agreement` of the kept digits.
# {glue:text}`synth_acceptance` of the generated digits reached the configured threshold (the
# acceptance); the set keeps fewer because it is balanced by label: the
# {glue:text}`synth_overflow` that passed after their label's quota was full were left out.
# {glue:text}`synth_threshold_note`
# {glue:text}`synth_shards_note`
#
# ## Confidence per class
# Over every generated digit of each requested class: the teacher's mean and standard deviation
# of confidence, the fraction at or above the threshold, and how often it agrees with the request
# (saved as `confidence_per_class.csv`).

# %%
conf_table = pd.read_csv(out / "synthetic" / "confidence_per_class.csv").set_index("class")
conf_table.rename(columns=synth.CONFIDENCE_LABELS).style.format(precision=3)

# %% [markdown]
# ## Class balance
# Every class is asked for until its quota is full; classes the teacher accepts less often cost
# more generated digits.

# %%
fig = plots.grouped_bars({"generated (requested class)": conf_table["generated"],
                          "kept (teacher's label)": conf_table["kept"]}, ylabel="digits")
plots.glue_figure("fig_class_balance", fig)
hardest = int(conf_table["frac_above_threshold"].idxmin())
glue("synth_hardest_class", hardest, display=False)
glue("synth_hardest_accept", f"{100 * conf_table.loc[hardest, 'frac_above_threshold']:.1f}%", display=False)

# %% [markdown]
# ```{glue:figure} fig_class_balance
# Digits generated per requested class and kept per label. The kept set is balanced by
# construction; the digit the teacher accepts least often is {glue:text}`synth_hardest_class`
# ({glue:text}`synth_hardest_accept` of its generated digits pass the threshold).
# ```

# %%
stored = synth.load_synthetic_set(out / "synthetic")  # read back through the idx reader
pick = np.concatenate([np.flatnonzero(stored["labels"] == c)[:8] for c in range(cfg.num_classes)])
fig = plots.mosaic(stored["images"][pick], nrow=cfg.num_classes, row_labels=list(cfg.data.class_names))
plots.glue_figure("fig_synth_samples", fig)

# %% [markdown]
# ```{glue:figure} fig_synth_samples
# Eight kept synthetic digits per teacher label, read back from the idx files.
# ```
#
# ## Synthetic vs real: average digit and background

# %%
real_img, real_lbl = data.load(cfg.dataset, "train")
real_mean = np.stack([real_img[real_lbl == c].mean(0) for c in range(cfg.num_classes)])
syn_mean = np.stack([stored["images"][stored["labels"] == c].mean(0) for c in range(cfg.num_classes)])
diff = np.abs(real_mean - syn_mean)
fig = plots.mosaic(np.concatenate([real_mean, syn_mean, diff]).astype(np.uint8), nrow=3,
                   row_labels=["real", "synthetic", "|diff|"])
plots.glue_figure("fig_mean_digits", fig)
bg = {"real": synth.background_level(real_img[:5000]), "synthetic": synth.background_level(stored["images"])}
glue("bg_real", f"{bg['real']:.2f}", display=False)
glue("bg_synth", f"{bg['synthetic']:.2f}", display=False)
glue("bg_reading", analysis.background_reading(bg["real"], bg["synthetic"]), display=False)
glue("mean_abs_diff", f"{diff.mean():.1f}", display=False)

# %% [markdown]
# ```{glue:figure} fig_mean_digits
# Per-class average image of the real training digits (top), of the synthetic set (middle) and
# their absolute difference (bottom, same 0-255 scale; mean {glue:text}`mean_abs_diff`).
# ```
#
# The mean pixel value of the image corners (background) is {glue:text}`bg_real` for real digits
# and {glue:text}`bg_synth` for synthetic ones, on the 0-255 scale: {glue:text}`bg_reading`
# (`kr_utils.synth.background_level`).

# %% [markdown]
# ## Try it: the confidence threshold
# A fresh batch of digits of every class, drawn with this profile's sampler, sorted by the
# teacher's confidence into those a threshold keeps and those it rejects
# (`kr_utils.controls.confidence_demo`, `kr_utils.controls.threshold_frame`). In a live notebook
# the slider below moves the threshold (`kr_utils.controls.threshold_controls`); the static
# page shows the profile's threshold, {glue:text}`synth_threshold_cfg`.

# %%
glue("synth_threshold_cfg", scfg.threshold, display=False)
unet = checkpoints.load_model(pipeline.diffusion_model(cfg, device, seed), "diffusion", device)
teacher = checkpoints.load_model(pipeline.teacher(cfg, device, seed), "teacher", device)
demo_x, demo_conf = controls.confidence_demo(unet, teacher, diffusion.NoiseSchedule.from_config(dcfg), gcfg, seed)
widget = live.show_controls(lambda: controls.threshold_controls(demo_x, demo_conf, scfg.threshold),
                            static=controls.threshold_frame(demo_x, demo_conf, scfg.threshold))

# %% tags=["remove-cell"]
store.update_metrics(profile, "synthetic_set", {**summary, "reused": reused, "accepted_at_threshold": met["accepted_at_threshold"],
                                                "background_real": bg["real"], "background_synthetic": bg["synthetic"]})
ch.close()

# %% [markdown]
# ## What was measured
#
# {glue:text}`synth_size` synthetic digits were kept out of {glue:text}`synth_generated`
# generated by {glue:text}`synth_sampler` (acceptance {glue:text}`synth_acceptance`; the teacher agrees
# with the requested class on {glue:text}`synth_agreement` of the kept digits), in
# {glue:text}`synth_time` minutes, {glue:text}`synth_rate` digits per second. The class the teacher
# accepts least often is {glue:text}`synth_hardest_class` ({glue:text}`synth_hardest_accept`).
