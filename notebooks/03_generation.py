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
# # 3. Generating digits: samplers, clipping and guidance
#
# This chapter turns the trained U-Net of chapter 2 into digits and measures what the thesis
# turned when sampling (clipping, guidance, the noise scales): the teacher judges every setting,
# and the profile's sampler, which builds the synthetic set of chapter 4, is set against this
# study's respaced ancestral chain in network passes per digit. The thesis ran its knob studies
# on an unconditional model of its own (`noise_variation.py` and `evaluate_sampling_clipping.py`
# in its repository), with a 3×3 grid of noise scales; here they are run on the conditional
# U-Net, with the four combinations its text describes.
#
# **Classifier-free guidance.** At every step the network is evaluated with the class $c$ and
# with the "no class" token, in one batched pass, and the two predictions are mixed
# (`kr_utils.diffusion.guided_eps`):
#
# $$\epsilon_w = \epsilon_\theta(x_t,t,\varnothing) + w\,\big(\epsilon_\theta(x_t,t,c)-\epsilon_\theta(x_t,t,\varnothing)\big) \tag{5}$$
#
# $w=0$ ignores the class, $w=1$ is the plain conditional model, $w>1$ exaggerates the class.
# The thesis' code writes $(1+w')\epsilon_c - w'\epsilon_\varnothing$, so its `guide_w = 0.5` is
# $w = 1.5$ here.
#
# **The ancestral sampler** of the thesis (`kr_utils.diffusion.AncestralSampler`) predicts
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_w)/\sqrt{\bar\alpha_t}$, optionally clips it to
# $[-1,1]$, and draws $x_{t-1}$ from the Gaussian posterior
#
# $$\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}\hat x_0 +
#   \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\qquad
#   \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t \tag{6}$$
#
# (`NoiseSchedule.posterior`): over this book's 1,000 steps, 1,000 network passes per digit at
# $w = 1$ and twice as many with guidance ($w \ne 0, 1$ needs the conditional and the
# unconditional pass). The thesis' code ran its own 400-step chain at `guide_w = 0.5`, so 800
# passes per digit, in a clipped mode that adds no noise at any step (`kr_utils.thesis.RECIPE`,
# chapter 7). Without clipping, eq. (6) is exactly the thesis'
# $\mu_\theta = (x_t - \beta_t\epsilon/\sqrt{1-\bar\alpha_t})/\sqrt{\alpha_t}$.
#
# **DDIM** (`kr_utils.diffusion.DDIMSampler`, $\eta=0$) jumps between a few of the 1000 steps,
# deterministically:
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\,\epsilon_w,\quad t' < t \tag{7}$$
#
# **DPM-Solver++** (Lu et al. 2022; `kr_utils.diffusion.DPMSolverPPSampler`, multistep,
# second order) takes the same jumps as a solver of the sampling ODE written for $\hat x_0$.
# With $\alpha_t = \sqrt{\bar\alpha_t}$, $\sigma_t = \sqrt{1-\bar\alpha_t}$,
# $\lambda_t = \log(\alpha_t/\sigma_t)$ and $h = \lambda_{t'} - \lambda_t$,
#
# $$x_{t'} = \frac{\sigma_{t'}}{\sigma_t}\,x_t - \alpha_{t'}\big(e^{-h}-1\big)\,D_t \tag{7'}$$
#
# with
#
# $$D_t = \hat x_0^{(t)} + \frac{\hat x_0^{(t)} - \hat x_0^{(s)}}{2r},\qquad r = \frac{h_s}{h},$$
#
# where $s$ is the step before $t$ and $h_s$ its $h$; the first step and the last use
# $D_t = \hat x_0^{(t)}$ (first order: eq. 7 when $\hat x_0$ is not clipped). With one network
# pass per step it reuses the previous step's $\hat x_0$ for a second-order step, so that a
# handful of steps draw digits that serve a student as well as the 1000-step chain's (chapter
# 8's sampler benchmark). This profile builds its synthetic set (chapter 4) with
# {glue:text}`gen_set_sampler`.
#
# The samplers are objects with `set_timesteps` and `step`, like diffusers' schedulers, and
# unit tests check them against diffusers' `DDPMScheduler`, `DDIMScheduler` and
# `DPMSolverMultistepScheduler`.

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
import torch
from kr_utils.live import glue, glue_texts
from kr_utils import checkpoints, controls, evaluate, live, pipeline, plots, store, studies

ch = pipeline.open_chapter("03_generation", profile, dataset=dataset, seed=seed)  # its cost recorded at its end
cfg, seed, device, out, profile = ch.cfg, ch.seed, ch.device, ch.out, ch.cfg.run
gcfg = cfg.sampler
# found in the artifacts folder, or built first as chapters 1 and 2 do (kr_utils.pipeline)
d_path = pipeline.diffusion_model(cfg, device, seed)
unet, schedule = checkpoints.load_model(d_path, "diffusion", device), checkpoints.load_schedule(d_path)
teacher = checkpoints.load_model(pipeline.teacher(cfg, device, seed), "teacher", device)
labels = studies.knob_labels(gcfg)
glue("knob_steps", gcfg.knob_steps, display=False)
glue("knob_n", len(labels), display=False)
glue("knob_per_class", gcfg.knob_per_class, display=False)

# %% [markdown]
# ## The knobs of the thesis, measured
# The thesis' text discusses four things that shape the samples (§3.3.3-§3.3.4, Figs. 7-8):
# clipping of $\hat x_0$, the guidance weight, the scale of the initial noise $x_T$
# (`x_T_scale`) and of the noise added at each ancestral step (`noise_scale`, the
# $\sigma_t z$ term of eq. 6). Its code fixed them when it built its set: a 400-step chain in
# its clipped mode, which adds no noise at any step, with `guide_w=0.5` throughout (chapter 7
# lists what else its code did). The study below varies them one at a time on this book's
# generator. Each setting
# below draws the same {glue:text}`knob_n` digits ({glue:text}`knob_per_class` per class, same
# seed) with the ancestral sampler. At this profile its chain is respaced to
# {glue:text}`knob_steps` steps (`AncestralSampler.set_timesteps`: eq. 6 between the kept steps,
# with $\beta = 1-\bar\alpha_t/\bar\alpha_{t'}$, checked against diffusers' `DDPMScheduler`); at
# the `gpu` profile it runs all 1000. For every setting the teacher reports
# (`kr_utils.evaluate.generation_quality`) its mean confidence, how often its label is the
# requested class, the fraction accepted at the synthetic set's threshold, and a **diversity**:
# the mean distance between two digits of the same class in the teacher's 64-dimensional
# feature space (`evaluate.feature_diversity`), beside the same measure on real validation digits
# (at $w=0$ the class is ignored, so there digits are grouped by the teacher's label). The
# distance also grows when digits are ambiguous, so it compares variety best between settings
# of similar confidence.
# Each setting is cached under `artifacts/<profile>/knobs/`.

# %%
knobs = studies.knob_settings(gcfg)
results = studies.knob_study(cfg, unet, teacher, schedule, seed=seed, device=device)
x_real, y_real = pipeline.real_validation(cfg)  # the declared validation digits: the test set only scores
real_pick = torch.cat([torch.nonzero(y_real == c).flatten()[: gcfg.knob_per_class] for c in range(cfg.num_classes)])
real_diversity = evaluate.feature_diversity(evaluate.features(teacher, x_real[real_pick], device=device),
                                            y_real[real_pick])

# %%
def knob_mosaic(ids):
    """One digit per class (columns) per setting (rows), labelled by the settings' names."""
    first = torch.arange(cfg.num_classes) * gcfg.knob_per_class
    return plots.mosaic(torch.cat([results[k]["images"][first].float() for k in ids]), nrow=len(ids),
                        row_labels=[knobs[k].label for k in ids])


plots.glue_figure("fig_clipping", knob_mosaic(["no_clip", "clip"]))
plots.glue_figure("fig_guidance", knob_mosaic([f"w_{w}" for w in studies.GUIDANCE_WEIGHTS]))
noise_ids = [f"xT_{a}_noise_{b}" for a, b in studies.NOISE_SCALES]
plots.glue_figure("fig_noise", knob_mosaic(noise_ids))

# %% [markdown]
# ```{glue:figure} fig_clipping
# Ancestral sampling without (top) and with (bottom) clipping of $\hat x_0$ to $[-1, 1]$, same
# noise, digits 0-9 (the thesis' Figs. 7 and 8).
# ```
#
# ```{glue:figure} fig_guidance
# Guidance weight $w$ = 0 (the class is ignored), 0.5, 1 (plain conditional), 2 and 4.
# ```
#
# ```{glue:figure} fig_noise
# The four combinations of initial-noise scale and per-step noise scale of §3.3.3.
# ```

# %%
comps = studies.knob_comparisons(results, teacher, labels, cfg.synth.threshold, device=device, seed=seed)
glue_texts(studies.knob_texts(cfg, results, knobs, comps, real_diversity))
studies.knob_shown(cfg, results, knobs, real_diversity)

# %% [markdown]
# Read from the table: clipping moves the fraction accepted at the threshold from
# {glue:text}`knob_clip_accept`. Raising the guidance weight from 0 to 4 moves acceptance
# {glue:text}`knob_w_accept` while the diversity within a class goes {glue:text}`knob_w_div`
# (real digits: {glue:text}`knob_real_div`). The teacher's mean confidence for the four noise
# combinations, in the order of the figure, is {glue:text}`knob_noise_conf`, and their
# diversity {glue:text}`knob_noise_div`; the thesis reported that confidence falls as the noise
# grows.
#
# Every setting drew the same classes from the same noise, so each difference below is paired
# digit by digit, its interval a bootstrap over the {glue:text}`knob_n` digits, resampled within
# each class (`kr_utils.studies.knob_comparisons`, `kr_utils.comparison.compare_draws`); it
# covers the sampling error of this draw, not that of another U-Net:
#
# - {glue:text}`knob_clip_cmp`;
# - {glue:text}`knob_w_cmp_acc`, and {glue:text}`knob_w_cmp_div`;
# - {glue:text}`knob_noise_cmp_acc`, and {glue:text}`knob_noise_cmp_div` (the thesis reported that
#   confidence falls as the noise grows; these are its per-step noise, at one x_T scale).
#
# The sampler that builds the synthetic set
# (chapter 4), {glue:text}`gen_set_sampler`, {glue:text}`ddim_speedup`.
#
# ## A trajectory
# The state $x_t$ of one digit of each class along the clipped ancestral chain.

# %%
traj = results["clip"]["trajectory"].float()
keep = studies.knob_trajectory_steps(cfg, schedule)
fig = plots.mosaic(traj.reshape(-1, 1, 28, 28), nrow=10, titles=[f"t={t}" for t in keep] + [""] * (traj.numel() // 784 - len(keep)))
plots.glue_figure("fig_trajectory", fig)

# %% [markdown]
# ```{glue:figure} fig_trajectory
# From noise to a digit, one row per class: the state after the step at the timestep named
# above each column (the last column is the finished digit).
# ```

# %% [markdown]
# ## Try it
# In a live notebook (Jupyter, or Colab from the launch button above) the cell below gives
# controls over one class's digits from the trained U-Net: the digit, the guidance weight $w$
# (eq. 5), the sampler and its number of steps, clipping of $\hat x_0$, and the seed
# (`kr_utils.controls.sampling_controls`; seconds per draw on a GPU). The static page shows
# the same grid at this profile's settings for the digit 3.

# %%
start = controls.SamplingKnobs(digit=3, w=gcfg.guidance_w, sampler=gcfg.sampler, steps=gcfg.num_steps,
                               clip=gcfg.clip_x0, seed=seed)
widget = live.show_controls(lambda: controls.sampling_controls(unet, schedule, start),
                            static=controls.sampling_frame(unet, schedule, start))

# %% tags=["remove-cell"]
store.update_metrics(profile, "generation", {"knobs": {k: {"label": knobs[k].label, **v}
                                                       for k, v in studies.knob_table(results).to_dict(orient="index").items()},
                                                 "real_diversity": real_diversity,
                                                 "knob_sampler_steps": gcfg.knob_steps,
                                                 "knob_comparisons": comps})  # store.plain writes each Comparison
ch.close()

# %% [markdown]
# ## What was measured
#
# Clipping $\hat x_0$ moves the fraction of digits the teacher accepts from
# {glue:text}`knob_clip_accept`. Across the guidance weights of the study, acceptance moves
# {glue:text}`knob_w_accept` while the diversity within a class goes {glue:text}`knob_w_div`
# (real digits: {glue:text}`knob_real_div`). The sampler that builds the synthetic set
# {glue:text}`ddim_speedup`.
