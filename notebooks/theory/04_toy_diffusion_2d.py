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
# # T4. A diffusion model in two dimensions
#
# Everything of chapters T2-T3 at a scale where every point can be watched: the two Gaussian
# clusters of the toy notebook `002` (means $\pm(2, 2)$, $\sigma = 0.5$, 500 points each,
# $T = 500$) and the Swiss rolls of `001` (angles up to $2\pi$ and $3\pi$, $T = 1000$).
#
# The noise model is a small MLP, `kr_utils.theory.toy.ToyEpsMLP`: it takes $x_t \in \mathbb R^2$ and the
# sum of a sinusoidal embedding of $t$ and a learned embedding of the class, and returns
# $\epsilon_\theta(x_t, t, c) \in \mathbb R^2$. It has the same interface as the pipeline's U-Net,
# so it is trained by the same `kr_utils.diffusion.diffusion_loss` (eq. 4 = T3.7, here through
# `kr_utils.theory.toy.train_toy_eps`) and sampled by the same `kr_utils.diffusion.AncestralSampler`
# (eq. T3.5 plus noise; no clipping, since the points are not images in $[-1, 1]$). As in the
# pipeline, the class is replaced by the null token during training, so that the same network
# also models the unconditional density (used here, and for guidance in chapter T5); here with
# probability 0.2, where the pipeline's U-Net uses {glue:text}`t4_p_uncond` (`diffusion.p_uncond` of the profile).

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
seed = None     # overrides the profile's seed

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
import torch
from kr_utils.live import glue
from kr_utils import comparison, controls, diffusion, fit, live, pipeline, plots, store
from kr_utils.theory import toy

ch = pipeline.open_chapter("T4", profile, seed=seed, theory=True)  # its wall time recorded at its end
cfg, seed, device, profile = ch.cfg, ch.seed, ch.device, ch.cfg.profile
th = cfg.theory
g = torch.Generator().manual_seed(seed)
MEANS = ((-2.0, -2.0), (2.0, 2.0))
T = 500
glue("t4_p_uncond", cfg.diffusion.p_uncond, display=False)

# %% [markdown]
# ## The forward process, animated
#
# The chain (T2.1) iterated on the 1,000 points, one frame every 25 steps.

# %%
x, y = toy.two_gaussians(500, g, MEANS)
schedule = toy.toy_schedule(T)
betas, ab = schedule.betas, schedule.alphas_cumprod
frames, titles, state = [{"x_t": x}], ["forward, t = 0"], x.clone()
for t in range(T):
    state = (1 - betas[t]).sqrt().float() * state + betas[t].sqrt().float() * torch.randn(state.shape, generator=g)
    if (t + 1) % 25 == 0:
        frames.append({"x_t": state.clone()}); titles.append(f"forward, t = {t + 1}")
plots.points_animation(frames, titles, reference=x, lim=5)

# %% [markdown]
# The points (red) leave the two clusters (grey) and spread into nearly one standard normal
# blob: at $t = T$, $\sqrt{\bar\alpha_T}$ = {glue:text}`t4_signal_T` of the original position is
# left, so the two clusters' means are not quite erased (chapter T5 measures what a classifier can
# still read there).
#
# ## Training, then the reverse process, animated

# %%
glue("t4_signal_T", f"{ab[-1].sqrt().item():.3f}", display=False)
model = fit.built_from_seed(lambda: toy.ToyEpsMLP(num_classes=2, hidden=th.toy_hidden), seed).to(device)
losses = toy.train_toy_eps(model, x, y, toy.ToyRun(th.toy_steps, T, seed=seed), p_uncond=0.2)
sampler = diffusion.AncestralSampler(schedule, clip_x0=False)
n = th.toy_samples
labels = torch.arange(2).repeat_interleave(n // 2)
keep = tuple(range(0, T, 25))
samples, traj = toy.sample_toy(model, sampler, labels, torch.Generator().manual_seed(seed), w=1.0, keep=keep)
order = sorted(traj, reverse=True)
frames = [{"asked c = 0": traj[t][labels == 0], "asked c = 1": traj[t][labels == 1]} for t in order]
plots.points_animation(frames, [f"reverse, t = {t}" for t in order], reference=x, lim=5)

# %% [markdown]
# From $x_T \sim \mathcal N(0, I)$ the reverse chain (eq. T3.5 with the trained
# $\epsilon_\theta$ plus noise) splits the cloud: points asked for class 0 (red) go to the
# lower-left cluster, class 1 (green) to the upper right.
#
# For live use (in Jupyter or Colab, where widgets run) the cell below gives a slider over $t$
# for the same trajectory (`kr_utils.controls.trajectory_controls`); the static page shows the animation
# above instead. `kr_utils.live.show_controls` builds the slider only where a person is looking:
# a headless run (papermill, nbval, the book's runner) never creates a widget.

# %% tags=["remove-output"]
widget = live.show_controls(lambda: controls.trajectory_controls(traj, labels, reference=x, lim=5))

# %% [markdown]
# ## Measuring the samples
#
# Eyeballing is not enough. For the unconditional model ($w = 0$: the class token is "none") we
# measure the fraction of samples in each cluster (nearest centre; the data have 1/2 each), their
# spread around the centre (the data: 0.5 per axis) with `kr_utils.theory.toy.cluster_stats`, and the
# energy distance to {glue:text}`t4_n_test` held-out points (`kr_utils.theory.toy.energy_distance`). Two reference
# values frame the last number: two independent draws of real data (the floor the model can at
# best reach) and $\mathcal N(0, I)$ (no learning at all).

# %%
x_test, y_test = toy.two_gaussians(max(n // 2, 500), torch.Generator().manual_seed(seed + 100), MEANS)
glue("t4_n_test", f"{len(x_test):,d}", display=False)
uncond = toy.sample_toy(model, sampler, torch.zeros(n, dtype=torch.long), torch.Generator().manual_seed(seed + 1), w=0.0)
cond = toy.cluster_stats(samples, MEANS, labels)
stats = toy.cluster_stats(uncond, MEANS)
x_ref, _ = toy.two_gaussians(max(n // 2, 500), torch.Generator().manual_seed(seed + 200), MEANS)
table = pd.DataFrame({
    "energy distance to held-out": [toy.energy_distance(uncond, x_test), toy.energy_distance(x_ref, x_test),
                                    toy.energy_distance(torch.randn(n, 2, generator=g), x_test)],
    "fraction in cluster 0": [stats["fraction_cluster_0"], toy.cluster_stats(x_ref, MEANS)["fraction_cluster_0"], None],
    "spread per axis": [stats["spread"], toy.cluster_stats(x_ref, MEANS)["spread"], None],
}, index=["diffusion model, w = 0", "real data (second draw)", "N(0, I)"])
lo, hi = comparison.binomial_interval(round(stats["fraction_cluster_0"] * n), n)  # over the n samples drawn
glue("t4_frac0", f"{stats['fraction_cluster_0']:.3f} (95% interval [{lo:.3f}, {hi:.3f}] over its {n:,d} samples)",
     display=False)
glue("t4_cond_frac", f"{100 * cond['fraction_requested']:.1f}%", display=False)
glue("t4_ed_model", f"{table.iloc[0, 0]:.4f}", display=False)
glue("t4_ed_floor", f"{table.iloc[1, 0]:.4f}", display=False)
glue("t4_ed_noise", f"{table.iloc[2, 0]:.3f}", display=False)
table.round(4)

# %% [markdown]
# The unconditional model puts a fraction {glue:text}`t4_frac0` of its samples in cluster 0 (the
# data: 0.5; an interval that holds 0.5 finds no imbalance), and its energy distance to held-out data is {glue:text}`t4_ed_model`, against
# {glue:text}`t4_ed_floor` between two real draws and {glue:text}`t4_ed_noise` for pure noise.
# Asked for a class ($w = 1$), {glue:text}`t4_cond_frac` of the samples land in the requested
# cluster.
#
# ## The Swiss rolls of `001`
#
# A harder target: a thin curve with no volume. The same MLP, unconditional, $T = 1000$, trained
# once on a $2\pi$ roll and once on a $3\pi$ roll (5,000 points each). Besides the energy distance,
# the median distance from a sample to the nearest held-out point measures how far off the curve
# the samples fall.

# %%
T_roll = 1000
roll_sampler = diffusion.AncestralSampler(toy.toy_schedule(T_roll), clip_x0=False)
rows, roll_samples, roll_traj = {}, {}, None
for name, angle in (("2π", 2 * np.pi), ("3π", 3 * np.pi)):
    data = toy.swiss_roll(5000, g, max_angle=angle)
    held_out = toy.swiss_roll(n, g, max_angle=angle)
    m = fit.built_from_seed(lambda: toy.ToyEpsMLP(num_classes=1, hidden=th.toy_hidden), seed).to(device)
    toy.train_toy_eps(m, data, None, toy.ToyRun(th.toy_steps, T_roll, seed=seed))
    s, roll_traj = toy.sample_toy(m, roll_sampler, torch.zeros(n, dtype=torch.long),
                                  torch.Generator().manual_seed(seed), keep=tuple(range(0, T_roll, 50)))
    roll_samples[name] = (s, held_out)
    rows[name] = {"energy distance": toy.energy_distance(s, held_out),
                  "floor (two real draws)": toy.energy_distance(toy.swiss_roll(n, g, max_angle=angle), held_out),
                  "median distance to roll": toy.distance_to_data(s, held_out).median().item(),
                  "same, real points": toy.distance_to_data(toy.swiss_roll(n, g, max_angle=angle), held_out).median().item()}
rolls = pd.DataFrame(rows).T
plots.glue_figure("fig_t4_rolls", plots.sample_panels({f"Swiss roll {k}": v for k, v in roll_samples.items()}))
glue("t4_roll3_dist", f"{rolls.loc['3π', 'median distance to roll']:.3f}", display=False)
glue("t4_roll3_real", f"{rolls.loc['3π', 'same, real points']:.3f}", display=False)
rolls.round(4)

# %% [markdown]
# ```{glue:figure} fig_t4_rolls
# Samples from the two roll models (red, `001` Fig. 5) over held-out data (grey).
# ```
#
# On the $3\pi$ roll the median distance from a sample to the nearest held-out point is
# {glue:text}`t4_roll3_dist`, against {glue:text}`t4_roll3_real` for real points (the roll's own
# noise and gaps). `001` trained its rolls with the settings of its Table 2, set beside this
# chapter's below; its models are one autoencoder per step (chapter T6), this chapter's one
# shared network, so the two are not one recipe at two sizes:

# %%
pd.DataFrame({"001, roll 2π": {"T": 1000, "variance reached (ξ)": 0.1, "β from, to": "1e-4, 0.02", "learning rate": "0.01",
                               "training": "20 epochs (2,000 updates)", "hidden units": 900, "batch": 100,
                               "training points": 10000},
              "001, roll 3π": {"T": 1000, "variance reached (ξ)": 1, "β from, to": "1e-4, 0.02", "learning rate": "0.005",
                               "training": "30 epochs (12,000 updates)", "hidden units": 1000, "batch": 50,
                               "training points": 20000},
              "this chapter": {"T": T_roll, "variance reached (ξ)": 1, "β from, to": "1e-4, 0.02",
                               "learning rate": "2e-3, cosine decay", "training": f"{th.toy_steps:,d} updates",
                               "hidden units": th.toy_hidden, "batch": 256, "training points": len(data)}}).T

# %% [markdown]
# The reverse trajectory of the $3\pi$ roll:

# %%
order = sorted(roll_traj, reverse=True)
plots.points_animation([{"x_t": roll_traj[t]} for t in order], [f"reverse, t = {t}" for t in order],
                       reference=roll_samples["3π"][1], lim=3)

# %%
ids = {"diffusion model, w = 0": "model_w0", "real data (second draw)": "real_second_draw", "2π": "roll_2pi",
       "3π": "roll_3pi", "energy distance to held-out": "energy_distance", "fraction in cluster 0": "fraction_cluster_0",
       "spread per axis": "spread", "energy distance": "energy_distance", "floor (two real draws)": "energy_distance_floor",
       "median distance to roll": "median_distance", "same, real points": "median_distance_real"}  # stable ids as keys
store.update_metrics(profile, "theory", {"T4": {"two_gaussians": table.iloc[:2].rename(index=ids, columns=ids).to_dict(),
                                                "conditional": cond, "rolls": rolls.rename(index=ids, columns=ids).to_dict()}})
ch.close()

# %% [markdown]
# ## What was measured
#
# Asked for a class, {glue:text}`t4_cond_frac` of the samples land in its cluster. Unconditional
# samples put {glue:text}`t4_frac0` of their points in cluster 0, at an energy distance of
# {glue:text}`t4_ed_model` from held-out data (real against real: {glue:text}`t4_ed_floor`; pure
# noise: {glue:text}`t4_ed_noise`).
