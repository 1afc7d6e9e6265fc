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
# # T7. Reconstruction and inpainting
#
# A trained reverse process does more than generate from pure noise (`001` §5, Figs. 8-10).
#
# **Reconstruction.** Take a real test digit $x_0$ the model never saw, noise it to a step $t_0$
# with eq. (T2.2), and run the reverse chain from $x_{t_0}$ instead of from $x_T$
# (`kr_utils.diffusion.reconstruct`). For small $t_0$ this removes noise; for large $t_0$ the model
# must re-invent what the noise destroyed, and the result drifts away from the original.
#
# **Inpainting.** Destroy a 14×14 patch in the middle of a digit and generate only the patch: start
# from noise, and after every reverse step overwrite the known pixels with the original noised to
# that same step by eq. (T2.2) (`kr_utils.diffusion.inpaint`; RePaint, Lugmayr et al. 2022, without
# its resampling loops). The known pixels then always sit at the right noise level, and the
# network sees them at every step; but they are noised afresh, independently of the path the
# generated pixels have taken, so the two can disagree, and the seams between them are the gap
# RePaint's resampling closes.
#
# Both use the ancestral sampler with clipping of $\hat x_0$ (`kr_utils.diffusion.AncestralSampler`):
# each step is the posterior mean of eq. (T3.4) at the clipped $\hat x_0$ (eq. T3.5 holds only for
# the unclipped one) plus noise, and the pipeline's class-conditional U-Net when its
# checkpoint exists for this profile; otherwise a small one is trained here
# (`kr_utils.pipeline.theory_diffusion_model`). Each is run twice: without the class (the null token,
# the model's unconditional half) and with the digit's true class, both from the same noise, so
# that the two runs differ by the class alone.

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
seed = None     # overrides the profile's seed

# %% tags=["hide-input"]
import matplotlib.pyplot as plt
import pandas as pd
import torch
from kr_utils.live import glue, glue_texts
from kr_utils import checkpoints, diffusion, models, pipeline, plots, store
from kr_utils.theory import restoration

ch = pipeline.open_chapter("T7", profile, seed=seed, theory=True)  # its wall time recorded at its end
cfg, seed, device, profile = ch.cfg, ch.seed, ch.device, ch.cfg.profile
th, dcfg = cfg.theory, cfg.diffusion
unet, schedule, source = pipeline.theory_diffusion_model(cfg, th.recon_fallback_steps, device, seed)
glue("t7_source", source, display=False)
sampler = diffusion.AncestralSampler(schedule, clip_x0=True)
n = th.recon_digits
x0, y = restoration.test_digits(n)  # real test digits, classes 0-9 in turn
glue("t7_n", n, display=False)
null = torch.full_like(y, unet.null_class)
teacher = checkpoints.load_model(pipeline.teacher(cfg, device), "teacher", device)  # found, or trained as in chapter 1
reads = lambda x: int((models.predict_logits(teacher, x, device=device).argmax(1) == y).sum())  # noqa: E731



# %% [markdown]
# The model used here is {glue:text}`t7_source`.
#
# ## Reconstruction from four noise levels

# %%
levels = (100, 200, 400, 600)  # the equations' t; the code indexes step t at t - 1
rows, grid, class_diffs = [], [x0], {}
for t0 in levels:
    (rec_null, noised), (rec_cls, _) = [  # without and with the class, from the same noise: paired draw for draw
        diffusion.reconstruct(unet, sampler, x0, t0 - 1, labels, 1.0, torch.Generator().manual_seed(seed + t0),
                              progress=True) for labels in (null, y)]
    rows.append({"t0": t0, "noised input, clamped to [-1, 1]": restoration.pixel_mse(noised[:n].clamp(-1, 1), x0),
                 "reconstruction, no class": restoration.pixel_mse(rec_null, x0),
                 "reconstruction, with class": restoration.pixel_mse(rec_cls, x0),
                 "teacher reads the class, no class given": reads(rec_null) / n})
    grid += [noised[:n].clamp(-1, 1), rec_null]
    class_diffs[t0] = restoration.class_difference(rec_cls, rec_null, x0)  # paired digit by digit
recon = pd.DataFrame(rows).set_index("t0")
glue_texts(restoration.class_texts(class_diffs))
fig = plots.mosaic(torch.cat(grid), nrow=1 + 2 * len(levels),
                   row_labels=["original"] + [f"{k} t={t}" for t in levels for k in ("noised", "rebuilt")])
plots.glue_figure("fig_t7_reconstruction", fig)
glue_texts(restoration.recon_texts(recon, n))
recon.round(4)

# %% [markdown]
# ```{glue:figure} fig_t7_reconstruction
# {glue:text}`t7_n` test digits, the classes 0-9 in turn (top), noised to $t_0$ and rebuilt by the
# reverse process without being told the class (`001` Figs. 8-9).
# ```
#
# Reconstruction error (mean squared error per pixel, pixels in $[0, 1]$) against $t_0$:

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
for col in recon.columns:
    ax.plot(recon.index, recon[col], marker="o", label=col)
ax.set_xlabel("t0 (noise level the reverse process starts from)"); ax.set_ylabel("MSE vs original")
ax.legend(fontsize=8); ax.grid(alpha=0.3)
plots.glue_figure("fig_t7_error", fig)

# %% [markdown]
# ```{glue:figure} fig_t7_error
# Error of the noised input and of the two reconstructions, by starting step.
# ```
#
# Without the class, the error grows from {glue:text}`t7_mse_100` at $t_0 = 100$ to
# {glue:text}`t7_mse_200`, {glue:text}`t7_mse_400` and {glue:text}`t7_mse_600`. Whether the
# reconstruction is still the same digit is what chapter 1's teacher reads: it finds the
# original class in {glue:text}`t7_reads` of them at the four levels, in that order. Told the
# class, from the same noise, the reconstruction's error minus the one without it, paired digit
# by digit (mean and 95% interval over the {glue:text}`t7_n` digits of one noise draw each,
# `kr_utils.theory.restoration.class_difference`): {glue:text}`t7_class_diffs`; so
# {glue:text}`t7_class_reading`.
#
# ## Inpainting a 14×14 and an 18×18 hole
#
# `kr_utils.theory.restoration.inpainting_study` destroys a centred square and generates it back,
# without and with the class; `001`'s Fig. 10c uses the larger hole.

# %%
inpaint, patches = {}, {}
for size in (14, 18):
    inpaint[size], patches[size] = restoration.inpainting_study(unet, sampler, x0, y, size, seed)
fig = plots.mosaic(torch.cat([x0] + [patches[s][k] for s in (14, 18) for k in ("damaged", "no class", "with class")]),
                   nrow=7, row_labels=["original"] + [f"{k}, {s}x{s}" for s in (14, 18)
                                                      for k in ("damaged", "no class", "with class")])
plots.glue_figure("fig_t7_inpainting", fig)
for size, tag in ((14, ""), (18, "18_")):
    for key, col in (("black", "hole left black"), ("null", "inpainted, no class"), ("cls", "inpainted, with class")):
        glue(f"t7_hole_{tag}{key}", f"{inpaint[size][col]:.4f}", display=False)
    for key in ("damaged", "no class", "with class"):
        inpaint[size][f"teacher reads the class, {key}"] = reads(patches[size][key]) / n
        glue(f"t7_read_{tag}{key.replace(' ', '_')}", f"{reads(patches[size][key])} of {n}", display=False)
diffs = {(size, key): restoration.hole_difference(patches[size][key], patches[size]["damaged"], x0, size)
         for size in (14, 18) for key in ("no class", "with class")}  # paired over the digits; above 0: worse than black
word = lambda d: "worse than" if d[1] > 0 else "better than" if d[2] < 0 else "not measurably different from"  # noqa: E731
glue("t7_hole_verdict", f"is {word(diffs[18, 'no class'])} leaving the hole black in squared error", display=False)
glue("t7_hole_diffs", "; ".join(f"{size}×{size}, {key}: {d[0]:+.4f} [{d[1]:+.4f}, {d[2]:+.4f}]"
                                for (size, key), d in diffs.items()), display=False)
pd.DataFrame(inpaint).round(5)

# %% [markdown]
# ```{glue:figure} fig_t7_inpainting
# A centred 14×14 and an 18×18 patch destroyed ("damaged") and generated back, without and with
# the class (`001` Fig. 10).
# ```
#
# Inside the 14×14 hole the error is {glue:text}`t7_hole_null` without the class and
# {glue:text}`t7_hole_cls` with it, against {glue:text}`t7_hole_black` for leaving the hole black;
# inside the 18×18 hole {glue:text}`t7_hole_18_null` and {glue:text}`t7_hole_18_cls`, against
# {glue:text}`t7_hole_18_black`. The known pixels come back exactly (the row "known pixels
# changed"). Without the class, the 18×18 fill {glue:text}`t7_hole_verdict`: each fill's
# in-hole error minus the black hole's, paired digit by digit, mean and 95% interval over the
# {glue:text}`t7_n` digits of one seed (`kr_utils.theory.restoration.hole_difference`),
# {glue:text}`t7_hole_diffs`. Where a fill loses, that is what squared error does to sampled
# fills: any fill drawn independently of the true hole given the known pixels pays at least
# the posterior variance of $p(\text{hole}\mid\text{rest})$ (the posterior mean attains it); an
# exact posterior sample and the true hole are two independent draws from it, so their
# expected squared distance is twice that variance; ours (RePaint without resampling) is not an
# exact sample and may pay more or less; and a black hole, much of which is background, pays
# only for the stroke it misses. The teacher reads the original class in
# {glue:text}`t7_read_18_damaged` of the damaged digits, {glue:text}`t7_read_18_no_class` of
# those inpainted without the class and {glue:text}`t7_read_18_with_class` of those inpainted
# with it (14×14: {glue:text}`t7_read_damaged`, {glue:text}`t7_read_no_class` and
# {glue:text}`t7_read_with_class`): the measure of whether the fill is the right digit, which
# the squared error is not. The reads with the class say whether the conditioning worked
# (the class was given), not how well the hole was restored. Whether the
# patch joins its border without a seam is not measured here.

# %%
ids = {'hole left black': 'hole_black',
       'inpainted, no class': 'inpainted_null',
       'inpainted, with class': 'inpainted_class',
       'known pixels changed': 'known_pixels_changed',
       'noised input, clamped to [-1, 1]': 'noised_input',
       'reconstruction, no class': 'reconstruction_null',
       'reconstruction, with class': 'reconstruction_class',
       'teacher reads the class, no class given': 'teacher_reads_class_null',
       'teacher reads the class, damaged': 'teacher_reads_class_damaged',
       'teacher reads the class, no class': 'teacher_reads_class_inpainted_null',
       'teacher reads the class, with class': 'teacher_reads_class_inpainted_class'}  # stable ids as keys
store.update_metrics(profile, "theory", {"T7": {"model": source, "reconstruction_mse": recon.rename(columns=ids).to_dict(),
                                                "inpainting_mse": inpaint[14].rename(index=ids).to_dict(),
                                                "inpainting_mse_18": inpaint[18].rename(index=ids).to_dict()}})
ch.close()

# %% [markdown]
# ## What was measured
#
# The model used is {glue:text}`t7_source`. Inside the inpainted hole the error is
# {glue:text}`t7_hole_null` without the class and {glue:text}`t7_hole_cls` with it, against
# {glue:text}`t7_hole_black` for leaving the hole black.
