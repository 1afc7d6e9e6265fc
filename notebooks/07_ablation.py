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
# # 7. The thesis' recipe, rebuilt from its scripts, one choice at a time
#
# The thesis' student scored 94.3% on the real test set against a 99.4% teacher (§4.3.2; its
# §3.4.1 gives 94.42%). Why? This chapter rebuilds the recipe its experiment scripts ran, as
# they stood before its commit `d968518` ("Final commit") deleted them (`JoaquinBeas/TFG` at `d968518^`, above all `compare_mnist_vs_sitntetic.py`),
# and then undoes its choices one at a time. Each constant below is `kr_utils.thesis.RECIPE`, where each
# carries the file, line and text it comes from (`kr_utils.thesis.SOURCES`;
# `tests/test_thesis_recipe.py` reads every constant back from its line):
#
# 1. **Value range.** Its diffusion trainer mapped digits already in $[-1, 1]$ by the loader's
#    `Normalize(0.5, 0.5)` once more, `data * 2.0 - 1.0`: the U-Net learnt digits on
#    $[-3, 1]$, background at $-3$.
# 2. **Sampler.** Its clipped mode: an ancestral chain with no noise at any step, $\hat x_0$
#    clamped to $[-1, 1]$, `guide_w = 0.5` in $(1 + w')\,\epsilon_c - w'\,\epsilon_u$ ($w = 1.5$
#    in this book's eq. 5), and every pixel below 0 forced to black at the end.
# 3. **Grey storage.** It un-normalised the sampler's $[0, 1]$ output once more before writing
#    uint8, so black became 127 (`kr_utils.studies.thesis_background`); the real test digits
#    are on black.
# 4. **Requested class as label.** The teacher only filtered (its largest probability at or
#    above 0.85); the label was the class asked of the generator. (Its code asked each batch of
#    200 for exactly what was still missing; here each round draws 1.25 times that, so a
#    threshold lowered after a batch that kept nothing may follow another path:
#    `kr_utils.synth.thesis_code_set`.)
# 5. **80 epochs, no stopping, last weights.** The script calls `train_epoch` 80 times and
#    scores the final weights (its docstring says 30 epochs).
# 6. **Learning rate.** Adam at a constant $10^{-3}$, batch 64, hard labels, no augmentation.
# 7. **Set size.** `main.py` builds `generate_balanced_dataset(max_per_class=100)`, 1,000
#    digits, while the text speaks of 60,000; the script then keeps 85% of them for training and
#    85% of that again (two unseeded splits), 72.25%.
#
# **Which set scored 94.3% cannot be read from the code.** The comparison script reads
# `generated_datasets/last_model`, a folder no committed script writes; `main.py` writes its
# capped set one folder up (the cap marked `# test` at commit 2efde5a), and the forced black of
# the sampler came in on 2025-05-05 (343bddd). The recipe here is the scripts' last state.
#
# The recipe is run at this profile's sizes ({glue:text}`rec_sizes`), then each variant undoes
# one choice and keeps the others (`kr_utils.ablation.VARIANTS`), over {glue:text}`rec_seeds`;
# the seed draws the student's weights, its batches and the two splits. Every change against
# the recipe is worded from a 95% interval whose variance adds the seeds' and the
# {glue:text}`rec_test_n` test digits' (`kr_utils.comparison.compare_runs`), so it includes the
# test set's own sampling error;
# the intervals (seven variants, three rows undoing more than one choice, one control, one
# comparison with real digits) are not adjusted for being twelve. Each
# variant's set is one draw of one generator: the intervals do not resample the sets or the
# U-Nets. Two variants are bundles: "this book's sampling" changes the chain, its steps, the
# guidance weight and the forced black together, and "the larger set" trains on
# {glue:text}`rec_size_ratio` times the digits at the recipe's number of updates (the script's
# fixed 80 epochs would give it that many times the updates too). The recipe's digits are the
# first {glue:text}`rec_per_class` of each class of the larger set, not a set built for that
# size on its own: the two share their digits, so the comparison is paired, but the larger
# set's rounds were drawn for more digits, and the threshold, lowered after a batch that kept
# nothing, may have followed another path than in a set built for the smaller size alone.
#
# **What is not modelled.** This book's U-Net, teacher and noise schedule stand in for the
# thesis': its 256-feature ContextUnet trained 120 epochs (`main.py`; its figures show 100) on
# a 400-step schedule whose $\bar\alpha_T$ is {glue:text}`rec_abar400` (its chain starts from
# pure noise at a step whose training inputs still held about {glue:text}`rec_signal400` of the
# digit), while here chapter 2's U-Net is trained {glue:text}`rec_unet_steps` more on
# $[-3, 1]$, and as long again on $[-1, 1]$ as the control (`kr_utils.ablation.range_unet`), on
# chapter 2's 1,000-step schedule, with the chain respaced to {glue:text}`rec_chain_steps` as
# in chapter 3. A U-Net first trained on $[-1, 1]$ and then adapted may keep some of its first
# range, and {glue:text}`rec_unet_steps` of adaptation to $[-3, 1]$ may leave it short of
# convergence, so the value-range variant may under- or overstate what $[-3, 1]$ from scratch
# does.

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
dataset = None  # "mnist" (default) or "fashion-mnist"; None reads $KR_DATASET

# %% tags=["hide-input"]
import numpy as np
from kr_utils.live import glue_texts
import kr_utils
from kr_utils import ablation, checkpoints, data, pipeline, plots, store, studies, thesis

ch = pipeline.open_chapter("07_ablation", profile, dataset=dataset)  # its cost recorded at its end
cfg, device, out, profile = ch.cfg, ch.device, ch.out, ch.cfg.run
e = cfg.studies
teacher = checkpoints.load_model(pipeline.teacher(cfg, device), "teacher", device)  # found, or built first (chapter 1)
pipeline.diffusion_model(cfg, device)  # chapter 2's U-Net, found or built first
x_te, y_te = data.test_tensors(cfg.test_subset, cfg.dataset)
sets = ablation.recipe_sets(cfg, teacher, device=device)
glue_texts(ablation.design_texts(cfg, sets, len(y_te)))

# %% tags=["hide-input"]
first = {n: [int(np.flatnonzero(np.asarray(s["requested"]) == c)[0]) for c in range(cfg.num_classes)] for n, s in sets.items()}
test_images, test_labels = data.load(cfg.dataset, "test")
real_first = np.stack([test_images[np.flatnonzero(test_labels == c)[0]] for c in range(cfg.num_classes)])  # 0-9
rows = [studies.thesis_background(np.asarray(sets["thesis_recipe"]["images"])[first["thesis_recipe"]]),
        np.asarray(sets["thesis_recipe"]["images"])[first["thesis_recipe"]],
        np.asarray(sets["value_range"]["images"])[first["value_range"]],
        np.asarray(sets["sampler"]["images"])[first["sampler"]],
        np.asarray(sets["range_noise"]["images"])[first["range_noise"]],
        np.asarray(sets["range_text"]["images"])[first["range_text"]], real_first]
labels = ablation.variant_labels(cfg)
fig = plots.mosaic(np.concatenate(rows), nrow=7, row_labels=[
    "the recipe, as stored (grey)", "the same on black", labels["value_range"], labels["sampler"],
    f"[-1, 1], per-step noise {ablation.TEXT_NOISE:g}", f"the same, x_T at {ablation.TEXT_X_T:g}", "real test digits"])
plots.glue_figure("fig_recipe_sets", fig)
x_val, y_val = pipeline.real_validation(cfg)  # real digits of reference: the declared validation split
spreads = ablation.set_spreads(sets)  # each set's within-class spread, with its interval
glue_texts(ablation.set_texts(cfg, sets, (data.to_uint8(x_val), y_val.numpy()), spreads))

# %% [markdown]
# ```{glue:figure} fig_recipe_sets
# Digits 0-9 of each set: the recipe's as its code stored them (grey) and the same on black;
# the recipe with the U-Net of $[-1, 1]$; the recipe with this book's sampler; the U-Net of
# $[-1, 1]$ with the thesis' chain and per-step noise put back; the same starting from $x_T$ at
# the text's scale; real test digits.
# ```
#
# What the teacher's filter passed of each draw (its largest probability at the threshold):
# the recipe's {glue:text}`rec_set_thesis_recipe`; with the U-Net of $[-1, 1]$
# {glue:text}`rec_set_value_range`; with this book's sampler {glue:text}`rec_set_sampler`; with
# the U-Net of $[-1, 1]$ and the chain's noise put back {glue:text}`rec_set_range_noise`; the
# same from $x_T$ at the text's scale {glue:text}`rec_set_range_text`.
# How different two kept digits of one class are (`kr_utils.ablation.within_class_spread`: the
# mean pixel distance between two digits of a class, pixels in $[0, 1]$, first 100 of each
# class): the recipe's set {glue:text}`rec_spread_thesis_recipe`, with the U-Net of $[-1, 1]$
# {glue:text}`rec_spread_value_range`, with this book's sampler {glue:text}`rec_spread_sampler`,
# with the U-Net of $[-1, 1]$ and the chain's noise put back {glue:text}`rec_spread_range_noise`,
# the same from $x_T$ at the text's scale {glue:text}`rec_spread_range_text`, real validation
# digits {glue:text}`rec_spread_real` (each with a 95% bootstrap interval over the digits
# looked at, resampled within class: `kr_utils.ablation.spread_interval`; it does not cover
# another draw of the generator). The thesis' chain takes the ancestral step's mean and adds no
# noise at any step; DDIM's deterministic step, by contrast, is built to keep the data's
# marginals. A set far less spread than real digits holds nearly the same digit again and
# again, whatever the filter passes.
#
# The recipe labels each digit by the class it asked for; how often the teacher reads a kept
# digit as that class (`kr_utils.ablation.agreement_per_class`, over the
# {glue:text}`rec_per_class` of each class the students learn from): in the recipe's set,
# {glue:text}`rec_agree_thesis_recipe`; with the U-Net of $[-1, 1]$,
# {glue:text}`rec_agree_value_range`; with this book's sampler, {glue:text}`rec_agree_sampler`;
# with the chain's noise put back, {glue:text}`rec_agree_range_noise`; from $x_T$ at the text's
# scale as well, {glue:text}`rec_agree_range_text`.

# %%
runs = ablation.recipe_runs(cfg, sets, device=device, test=(x_te, y_te))
summary = ablation.summarize(cfg, runs, y_te)
ablation.table(summary)

# %% [markdown]
# Real-test accuracy of the recipe and of each variant: the mean of its seeds, the 95%
# interval of that mean over seeds and test digits (`kr_utils.comparison.accuracy_interval`), each seed,
# and the change against the row it is set against (the "against" column: the recipe for the
# single choices; for the row undoing two choices, the U-Net of $[-1, 1]$'s row; for the noise
# put back, that row; for $x_T$ at the text's scale, the noise row; for the real digits on
# grey, the real digits on black), paired by seed, with its interval. A seed has
# *collapsed* when its student scores below {glue:text}`rec_collapse_below`.

# %% tags=["hide-input"]
fig = plots.seed_bars({s["label"]: [100 * a for a in s["accuracy"]["values"]] for s in summary.values()},
                      reference_line=(100 * thesis.STUDENT["accuracy"], f"the thesis' student ({100 * thesis.STUDENT['accuracy']:.2f}%)"),
                      colors=["tab:red"] + ["tab:orange"] * (len(ablation.VARIANTS) - 1) + ["tab:purple"] * len(ablation.COMBINED)
                      + ["tab:gray"] * len(ablation.CONTROLS))
plots.glue_figure("fig_recipe_ablation", fig)
glue_texts(ablation.result_texts(cfg, summary, spreads=spreads))
cost = ablation.gpu_estimate(kr_utils.get_config("gpu"), pipeline.recorded_metrics("gpu"), sets["thesis_recipe"]["pass_rate"])
glue_texts(ablation.cost_texts(cost))

# %% [markdown]
# ```{glue:figure} fig_recipe_ablation
# Real-test accuracy of the thesis' recipe (red), of each variant that undoes one of its
# choices (orange), of the rows undoing more than one (purple) and of the two controls on
# real digits (grey): the bar at the mean over seeds, a point per seed; dashed: the thesis'
# student.
# ```
#
# **The recipe** scores {glue:text}`rec_recipe` (collapsed seeds:
# {glue:text}`rec_collapsed_thesis_recipe`); {glue:text}`rec_reached`. The standard
# deviation of its seeds: {glue:text}`rec_std`; the thesis': {glue:text}`thesis_std`;
# {glue:text}`rec_spread_reading`. One choice undone at a time, against the recipe:
#
# 1. {glue:text}`rec_says_value_range`;
# 2. {glue:text}`rec_says_sampler`;
# 3. {glue:text}`rec_says_grey`;
# 4. {glue:text}`rec_says_labels`;
# 5. {glue:text}`rec_says_stopping`;
# 6. {glue:text}`rec_says_lr`;
# 7. {glue:text}`rec_says_size`.
#
# Seeds collapsed in each variant, in that order: {glue:text}`rec_collapsed_value_range`,
# {glue:text}`rec_collapsed_sampler`, {glue:text}`rec_collapsed_grey`,
# {glue:text}`rec_collapsed_labels`, {glue:text}`rec_collapsed_stopping`,
# {glue:text}`rec_collapsed_lr` and {glue:text}`rec_collapsed_size`.
#
# **Two choices undone together.** Each row above undoes one choice and keeps the others, the
# value range or the grey storage among them, and either may collapse a student on its own. One
# more row undoes both (`kr_utils.ablation.COMBINED`): the U-Net of $[-1, 1]$, its digits
# stored on black, the rest of the recipe kept. It scores {glue:text}`rec_both`; against the
# same digits stored on grey, {glue:text}`rec_says_range_on_black`. {glue:text}`rec_both_reading`
#
# **The chain's noise put back.** Both rows above still draw with the thesis' noiseless chain.
# Its text (§3.3.4) says the set was generated in the clipped mode "with noise 0.5 / 0.5": the
# starting noise $x_T$ and the noise of each step both scaled by {glue:text}`rec_text_noise`.
# Its code's clipped mode scales $x_T$ but adds no noise at any step, and its set-building
# script passed neither scale (so $x_T$ at 1): run through the code, the text's setting is a
# noiseless chain from $x_T$ at 0.5. These two rows were added after the noiseless rows above
# collapsed, to ask whether the missing noise is what they lack. The first keeps everything of
# the row above (the U-Net of $[-1, 1]$, the chain's steps, clamp and guidance, forced black,
# the filter at {glue:text}`rec_threshold`, storage on black) and adds at each step
# {glue:text}`rec_text_noise` times the noise of the ancestral step, eq. (6)
# (`kr_utils.ablation.recipe_sampling`), with $x_T$ at the code's scale 1: a chain neither the
# text nor the code ran, changing one factor. It scores {glue:text}`rec_noise`; against the
# noiseless chain's row, {glue:text}`rec_says_noise_on_black`. {glue:text}`rec_noise_reading`
# The second starts from $x_T$ at the text's {glue:text}`rec_text_x_T` as well (the text's
# "0.5 / 0.5" with the per-step noise the clipped code lacks): it scores {glue:text}`rec_text`;
# against the row before it, {glue:text}`rec_says_text_on_black`. {glue:text}`rec_text_reading`
# Each row is one generated set: its interval covers the seeds and the test digits, not another
# draw of the set.
#
# **A control: real digits through the same storage.** Whether grey storage, rather than the
# generated digits, collapses a student can be asked of real digits. The recipe's student,
# unchanged, learns from {glue:text}`rec_per_class` real training digits of each class, drawn
# anew for each seed (digits the teacher and the U-Net also learnt from; none of the validation
# or test digits; `kr_utils.ablation.real_set`), neither forced black nor filtered, split as the recipe splits its set: stored on black,
# as the test digits are, it scores {glue:text}`rec_real_black`; stored through the recipe's
# grey background, {glue:text}`rec_real_grey` (collapsed seeds:
# {glue:text}`rec_collapsed_real_grey`). Against real digits on black,
# {glue:text}`rec_says_real_grey`. {glue:text}`rec_control_reading`
#
# **What stays unexplained, and what would settle it.** {glue:text}`rec_unexplained_runs` The
# set size behind 94.3% cannot be
# read from the code (its `main.py` caps at 100 per class; the text says 60,000 and 6 hours),
# and its U-Net, schedule and teacher are not this book's. Two runs would settle it at the gpu
# profile, by the rates of its last recorded run: the thesis' U-Net training of 120 epochs of
# 51,000 digits at batch 64 ({glue:text}`rec_gpu_unet`, its larger ContextUnet slower still),
# and a 60,000-digit set through its 400-step chain of two network passes a step at this
# chapter's pass rate ({glue:text}`rec_gpu_set`), then the recipe's students on it.

# %% tags=["remove-cell"]
store.update_metrics(profile, "ablation", {"seeds": list(e.ablation_seeds), **ablation.metrics(summary, sets)})
ch.close()

# %% [markdown]
# ## What was measured
#
# The thesis' recipe, rebuilt from its scripts on this book's generator and teacher, scores
# {glue:text}`rec_recipe`; {glue:text}`rec_reached`. Each choice undone alone is worded above
# from its interval over {glue:text}`rec_seeds` and the {glue:text}`rec_test_n` test digits.
# With the U-Net of $[-1, 1]$ and its digits on black the students score {glue:text}`rec_both`;
# with the chain's per-step noise put back as well, {glue:text}`rec_noise`; from $x_T$ at the
# text's scale too, {glue:text}`rec_text`.
