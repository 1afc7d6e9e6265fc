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
# # T3. The reverse process and the loss
#
# The forward chain is fixed; the model is the reverse chain, from noise back to data,
#
# $$p_\theta(x_{0:T}) = p(x_T)\prod_{t=1}^T p_\theta(x_{t-1}\mid x_t),\qquad
#   p_\theta(x_{t-1}\mid x_t) = \mathcal N\big(x_{t-1};\ \mu_\theta(x_t, t),\ \sigma_t^2 I\big),
#   \qquad p(x_T) = \mathcal N(0, I). \tag{T3.1}$$
#
# For small $\beta_t$ the true reverse step is also close to Gaussian (Feller 1949), which is why
# this form can work. This chapter derives what $\mu_\theta$ should be trained on (`001` §3,
# concisely), checks the key formula numerically, and then compares, by experiment, the loss the
# derivation gives with the simplified one the pipeline uses.
#
# ## From the likelihood to a sum of KL terms
#
# We would like to maximise $\log p_\theta(x_0) = \log\int p_\theta(x_{0:T})\,dx_{1:T}$. Multiplying
# and dividing by the forward chain $q(x_{1:T}\mid x_0)$ and applying Jensen's inequality gives
# the evidence lower bound (ELBO),
#
# $$\log p_\theta(x_0) \ \ge\ \mathbb E_{q}\Big[\log \frac{p_\theta(x_{0:T})}{q(x_{1:T}\mid x_0)}\Big].
#   \tag{T3.2}$$
#
# (The bound is on the log-likelihood from below, so its negative, eq. T3.3, bounds
# $-\log p_\theta(x_0)$ from above. `001`, eqs. 17-18, writes the inequality the other way round
# for the log-likelihood while calling the bound an ELBO; the direction here is the one that
# follows from Jensen's inequality, as in Ho et al. eq. 3.)
#
# Expanding both chains, using Bayes' rule on each forward step *conditioned on $x_0$*,
# $q(x_t\mid x_{t-1}) = q(x_{t-1}\mid x_t, x_0)\,q(x_t\mid x_0)/q(x_{t-1}\mid x_0)$, and letting the
# telescoping ratio $\prod_t q(x_t\mid x_0)/q(x_{t-1}\mid x_0)$ collapse, the negative bound becomes
#
# $$-\text{ELBO} = \underbrace{D_\text{KL}\big(q(x_T\mid x_0)\,\|\,p(x_T)\big)}_{L_T\text{: no parameters}}
#  + \sum_{t=2}^{T}\underbrace{\mathbb E_q\, D_\text{KL}\big(q(x_{t-1}\mid x_t, x_0)\,\|\,p_\theta(x_{t-1}\mid x_t)\big)}_{L_{t-1}}
#  \ \underbrace{-\ \mathbb E_q \log p_\theta(x_0\mid x_1)}_{L_0}. \tag{T3.3}$$
#
# $L_T$ has nothing to learn. $L_0 = -\log p_\theta(x_0\mid x_1)$ is, in Ho et al. (§3.3), a
# discretised Gaussian decoder over the 256 levels of a pixel; the $t = 1$ term of the simplified
# loss below approximates it, and the sampler's last step, which adds no noise, returns that
# decoder's mean. What is left compares each reverse step with a distribution we can compute.
#
# ## The posterior of one step given the clean image
#
# By Bayes' rule it is proportional to $q(x_t\mid x_{t-1})\,q(x_{t-1}\mid x_0)$, a product of two
# Gaussians in $x_{t-1}$ (eqs. T2.1-T2.2). Completing the square,
#
# $$q(x_{t-1}\mid x_t, x_0) = \mathcal N\big(\tilde\mu_t, \tilde\beta_t I\big),\quad
#   \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\,\beta_t}{1-\bar\alpha_t}\,x_0 +
#   \frac{\sqrt{\alpha_t}\,(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}\,x_t,\quad
#   \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\,\beta_t. \tag{T3.4}$$
#
# This is eq. (6) of the pipeline, `kr_utils.diffusion.NoiseSchedule.posterior`. Substituting
# $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon)/\sqrt{\bar\alpha_t}$ from eq. (T2.2), the mean
# depends on $x_0$ only through the noise $\epsilon$:
#
# $$\tilde\mu_t = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\epsilon\Big). \tag{T3.5}$$
#
# ## The loss
#
# So we give $\mu_\theta$ the same form with a network $\epsilon_\theta(x_t, t)$ in place of
# $\epsilon$. Here $q$ has variance $\tilde\beta_t$ and $p_\theta$ has $\sigma_t^2$; the KL divergence of
# two such Gaussians in $d$ dimensions is the squared distance of the means over $2\sigma_t^2$ plus
# $C_t = \tfrac d2\big(\tilde\beta_t/\sigma_t^2 - 1 - \log(\tilde\beta_t/\sigma_t^2)\big)$, which does not depend
# on $\theta$ (Ho et al. eq. 8; `kr_utils.theory.analytic.gaussian_kl`), hence, up to $C_t$,
#
# $$L_{t-1} = \mathbb E_{x_0,\epsilon}\Big[\lambda_t\,\big\|\epsilon - \epsilon_\theta(x_t, t)\big\|^2\Big],
#   \qquad \lambda_t = \frac{\beta_t^2}{2\sigma_t^2\,\alpha_t\,(1-\bar\alpha_t)}, \tag{T3.6}$$
#
# with $x_t$ drawn by eq. (T2.2). The weights $\lambda_t$ are `kr_utils.theory.analytic.elbo_weights`
# with $\sigma_t^2 = \beta_t$, the choice of `001`. The book's sampler,
# `kr_utils.diffusion.AncestralSampler.step`, draws with $\sigma_t^2 = \tilde\beta_t$, the other choice of
# Ho et al. (they found the two give similar samples): the ELBO-weighted model below is trained on
# the bound of the $\sigma_t^2 = \beta_t$ chain and sampled with the $\tilde\beta_t$ one
# (`elbo_weights(..., sigma2="posterior")` gives the weights of the chain that is sampled). Ho et
# al. found that dropping the weights gives better samples, at some cost in log-likelihood,
#
# $$L_\text{simple} = \mathbb E_{t, x_0, \epsilon}\,\big\|\epsilon - \epsilon_\theta(x_t, t)\big\|^2, \tag{T3.7}$$
#
# which is eq. (4), `kr_utils.diffusion.diffusion_loss` (with `weights=` it computes eq. T3.6).
# Sampling then runs eq. (T3.5) with $\epsilon_\theta$ plus noise $\sigma_t z$: Algorithm 2 of Ho et
# al., `kr_utils.diffusion.AncestralSampler.step` ($\sigma_t^2 = \tilde\beta_t$; with clipping of $\hat x_0$
# it is eq. T3.4 at the clipped $\hat x_0$ instead).

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
import numpy as np
import pandas as pd
import torch
from kr_utils.live import glue
from kr_utils import diffusion, pipeline, plots, store
from kr_utils.theory import analytic, toy

ch = pipeline.open_chapter("T3", profile, seed=seed, theory=True)  # its wall time recorded at its end
cfg, seed, device, profile = ch.cfg, ch.seed, ch.device, ch.cfg.profile
th = cfg.theory
sampler = diffusion.AncestralSampler(diffusion.NoiseSchedule.linear(1000), clip_x0=False)
g = torch.Generator().manual_seed(seed)

# %% [markdown]
# ## A numerical check of the posterior (T3.4)
#
# Without using the formula: draw $x_{t-1} \sim q(x_{t-1}\mid x_0)$ two million times, weight each
# draw by the likelihood $q(x_t\mid x_{t-1})$ of the observed $x_t$, and take the weighted mean
# and variance (`kr_utils.theory.analytic.posterior_monte_carlo`). Bayes' rule says this is the posterior.
# The same check is a unit test (`tests/test_theory.py`).

# %%
rows = []
for t, x0, xt in ((9, 0.5, 0.53), (99, -0.4, -0.1), (499, 0.9, 0.2)):  # code indices of t = 10, 100, 500
    mc_mean, mc_var = analytic.posterior_monte_carlo(x0, xt, t, sampler.schedule.betas, 2_000_000, g)
    c0, ct, var = sampler.schedule.posterior(t, t - 1)
    rows.append({"t": t + 1, "x0": x0, "x_t": xt, "mean: Monte Carlo": mc_mean, "mean: eq. T3.4": c0 * x0 + ct * xt,
                 "var: Monte Carlo": mc_var, "var: eq. T3.4": var})
posterior = pd.DataFrame(rows).set_index("t")
rel_var_err = ((posterior["var: Monte Carlo"] - posterior["var: eq. T3.4"]).abs() / posterior["var: eq. T3.4"]).max()
mean_err = (posterior["mean: Monte Carlo"] - posterior["mean: eq. T3.4"]).abs().max()
glue("t3_mean_err", f"{mean_err:.1e}", display=False)
glue("t3_var_err", f"{100 * rel_var_err:.1f}%", display=False)
posterior.style.format("{:.5f}")

# %% [markdown]
# The Monte Carlo means agree with eq. (T3.4) to {glue:text}`t3_mean_err` and the variances to
# {glue:text}`t3_var_err` (relative).
#
# ## What the ELBO weights do
#
# The weights $\lambda_t$ of eq. (T3.6) fall steeply from the smallest $t$, where $x_t$ is nearly
# clean, to their least near $t =$ {glue:text}`t3_weight_argmin`, and rise only gently towards $T$
# (the figure's log scale). The first 10 steps carry {glue:text}`t3_weight_first10` of the
# total weight, the first 200 {glue:text}`t3_weight_first200`. $L_\text{simple}$
# weights every step equally.

# %%
lam = analytic.elbo_weights(sampler.schedule.betas)
fig, ax = plt.subplots(figsize=(5.5, 3))
ax.semilogy(np.arange(1, 1001), lam / lam.mean(), label=r"$\lambda_t$ / mean (eq. T3.6)")
ax.axhline(1, c="tab:orange", label=r"$L_\mathrm{simple}$ (eq. T3.7)")
ax.set_xlabel("t"); ax.legend(fontsize=8); ax.grid(alpha=0.3)
plots.glue_figure("fig_t3_weights", fig)
glue("t3_weight_ratio", f"{(lam[0] / lam[-1]).item():.0f}", display=False)
glue("t3_weight_argmin", int(lam.argmin()) + 1, display=False)  # the figure's t runs from 1
glue("t3_weight_first200", f"{100 * (lam[:200].sum() / lam.sum()).item():.0f}%", display=False)
glue("t3_weight_first10", f"{100 * (lam[:10].sum() / lam.sum()).item():.0f}%", display=False)

# %% [markdown]
# ```{glue:figure} fig_t3_weights
# The ELBO's weight on each step's noise-prediction error, normalised to mean 1. The first step
# weighs {glue:text}`t3_weight_ratio` times the last.
# ```
#
# ## Weighted against simplified loss, by experiment
#
# The same small MLP (`kr_utils.theory.toy.ToyEpsMLP`) is trained twice per seed on the 3π Swiss roll of
# `001`, once on eq. (T3.6) (weights rescaled to mean 1; under Adam, whose step does not depend
# on a constant factor of the loss, this changes only the printed loss, up to Adam's $\epsilon$) and once on eq. (T3.7),
# from the same initial weights (drawn from the seed alone: `kr_utils.fit.built_from_seed`), with the
# same data, batches, steps and optimiser (`kr_utils.theory.toy.train_toy_eps`). We then sample with the 1000-step ancestral sampler and measure
# two things on held-out points: the **energy distance** to the data
# (`kr_utils.theory.toy.energy_distance`; 0 means the same distribution) and the median distance from a
# sample to the nearest data point (`kr_utils.theory.toy.distance_to_data`; how far off the roll it
# fell). We also measure each model's noise-prediction error per range of $t$ on held-out points
# (`kr_utils.theory.toy.noise_error_by_t`; the whole experiment: `kr_utils.theory.toy.compare_weightings`).

# %%
roll = toy.swiss_roll(5000, g, max_angle=3 * np.pi)
held_out = toy.swiss_roll(th.toy_samples, g, max_angle=3 * np.pi)
band = toy.real_band(lambda: toy.swiss_roll(th.toy_samples, g, max_angle=3 * np.pi), held_out)  # data against data
noise_seed = seed + 100  # one draw of t and noise for both models and the floor: errors paired point by point
names = {"simple": "L_simple (T3.7)", "elbo": "ELBO weights (T3.6)"}
rows, samples, per_t, per_point = toy.compare_weightings(th, roll, held_out, sampler, {names["simple"]: None,
                                                         names["elbo"]: lam}, (seed, seed + 1),
                                                         noise_seed=noise_seed, device=device)
bayes = toy.bayes_noise_error(sampler.schedule, held_out, torch.Generator().manual_seed(noise_seed),
                              max_angle=3 * np.pi, per_point=True)  # no network does better, on the same draws
said, measured = toy.weighting_readings(rows, band, per_point, bayes, names)
for name, text in said.items():
    glue(name, text, display=False)
pd.DataFrame(rows).round(4)


# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
for ax, (name, x) in zip(axes, samples.items()):
    ax.scatter(*held_out.T, s=1, c="0.8"); ax.scatter(*x.T, s=1, c="tab:red")
    ax.set_xlim(-3, 3); ax.set_ylim(-3, 3); ax.set_aspect("equal"); ax.set_title(name, fontsize=9)
labels = [f"{lo + 1}-{hi}" for lo, hi in zip(toy.ERROR_BINS[:-1], toy.ERROR_BINS[1:])]
for name, errs in per_t.items():
    axes[2].plot(labels, np.mean(errs, 0), marker="o", label=name)
axes[2].plot(labels, [b.mean().item() for b in bayes], "k--", label="Bayes floor (toy.bayes_noise_error)")
axes[2].set_yscale("log"); axes[2].set_xlabel("t range"); axes[2].set_title("held-out noise error", fontsize=9)
axes[2].legend(fontsize=8); axes[2].grid(alpha=0.3)
fig.tight_layout()
plots.glue_figure("fig_t3_weighted_vs_simple", fig)

# %% [markdown]
# ```{glue:figure} fig_t3_weighted_vs_simple
# Samples (red) of the model trained on $L_\text{simple}$ (left) and on the ELBO-weighted loss
# (middle) over held-out data (grey), last seed; right: held-out noise-prediction error by range of
# $t$, mean over both seeds, and the error of the best possible predictor (dashed).
# ```
#
# The energy distance to held-out data (unbiased: two samples of one distribution give 0 on
# average, and a small value may be negative) is {glue:text}`t3_ed_simple` with
# $L_\text{simple}$ and {glue:text}`t3_ed_elbo` with the ELBO weights; {glue:text}`t3_band_n`
# fresh draws of real data against the same held-out points give values
# {glue:text}`t3_band_ed` (95% of them; `kr_utils.theory.toy.real_band`): against that band,
# {glue:text}`t3_ed_reading`. The median distance of a sample to the roll is
# {glue:text}`t3_dist_simple` against {glue:text}`t3_dist_elbo`, and real draws give
# {glue:text}`t3_band_dist`. The error curves show where the two differ, but not directly:
# part of each error is irreducible. For small $t$ the noise $\sqrt{1-\bar\alpha_t}\,\epsilon$
# is no larger than the roll's own jitter (0.05), and little of it can be predicted. The best
# possible predictor, $\mathbb{E}[\epsilon \mid x_t]$, is computable here because the roll's
# distribution is known: given the angle $\theta$ on the spiral, $x_t$ is Gaussian, and
# averaging over $\theta$'s posterior by quadrature gives the Bayes floor
# (`kr_utils.theory.toy.bayes_noise_error`, checked against a Monte Carlo posterior over drawn
# points). For $t \le 10$ that floor is {glue:text}`t3_bayes_small`, against total errors of
# {glue:text}`t3_total_small` ($L_\text{simple}$ and ELBO weights); for $201 \le t \le 500$ it is
# {glue:text}`t3_bayes_noisy` against {glue:text}`t3_total_noisy`. What capacity buys is the
# error *above* the floor, point by point on the same draws of $t$ and noise: for $t \le 10$
# it is {glue:text}`t3_excess_small` ($L_\text{simple}$ against ELBO weights, each the mean
# with its 95% interval over the two seeds and the held-out points,
# `kr_utils.theory.toy.excess`), for $201 \le t \le 500$ {glue:text}`t3_excess_noisy`; an
# interval that holds 0 is not told apart from the floor. The floor cancels from the
# point-by-point difference of the two models' errors: weighted minus simple, it is
# {glue:text}`t3_pair_small` for $t \le 10$ and {glue:text}`t3_pair_noisy` for
# $201 \le t \le 500$ (`kr_utils.theory.toy.paired_difference`, the seeds' spread included).
# The ELBO's weights are largest at the smallest $t$, so one expects (nothing guarantees it)
# that they put the model's capacity where the points are almost clean; its error for
# $t \le 10$ is {glue:text}`t3_err_reading`. One reason it need not help: there, most of each
# step's loss is the irreducible floor, so weights of tens multiply a gradient that is mostly
# noise. The pipeline, like Ho et al. and the thesis, trains on eq. (4).

# %% tags=["remove-cell"]
store.update_metrics(profile, "theory", {"T3": {"posterior_mean_max_err": mean_err,
                                                "posterior_var_max_rel_err": rel_var_err,
                                                "weighted_vs_simple": measured}})  # stable ids: simple, elbo
ch.close()

# %% [markdown]
# ## What was measured
#
# The posterior's formula matches Bayes' rule by Monte Carlo to within {glue:text}`t3_mean_err`
# (mean) and {glue:text}`t3_var_err` (variance). On the Swiss roll the energy distance to held-out
# data is {glue:text}`t3_ed_simple` with $L_\text{simple}$ and {glue:text}`t3_ed_elbo` with the
# ELBO weights (real draws against the same points: {glue:text}`t3_band_ed`; {glue:text}`t3_ed_reading`).
