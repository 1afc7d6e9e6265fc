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
# # T2. The forward process
#
# A diffusion model is defined by what it learns to undo: a Markov chain that adds a little
# Gaussian noise at each of $T$ steps (`001` §2, Sohl-Dickstein et al. 2015, Ho et al. 2020),
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(x_t;\ \sqrt{1-\beta_t}\,x_{t-1},\ \beta_t I\big),\qquad
#   q(x_{1:T} \mid x_0) = \prod_{t=1}^T q(x_t \mid x_{t-1}). \tag{T2.1}$$
#
# The factor $\sqrt{1-\beta_t}$ shrinks the signal while the noise grows, so that the variance stays
# bounded and the chain ends near $\mathcal N(0, I)$ whatever $x_0$ was. The variances follow the
# linear schedule of eq. (1), $\beta_t$ from $10^{-4}$ to $0.02$ over $T = 1000$ steps
# (`kr_utils.diffusion.linear_beta_schedule`).
#
# **The closed form.** Writing one step with the reparametrisation trick,
# $x_t = \sqrt{\alpha_t}\,x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon$ with $\alpha_t = 1-\beta_t$
# ($\epsilon \sim \mathcal N(0, I)$, the noise `001` calls $\xi$ in its eqs. 15-16), and
# substituting the previous step, two independent Gaussian noises add to one of variance
# $\alpha_t(1-\alpha_{t-1}) + 1 - \alpha_t = 1 - \alpha_t\alpha_{t-1}$. By induction,
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I\big),\qquad
#   \bar\alpha_t = \prod_{s=1}^t \alpha_s, \tag{T2.2}$$
#
# which is eqs. (2)-(3) of the pipeline: `kr_utils.diffusion.alphas_cumprod` and
# `kr_utils.diffusion.NoiseSchedule.q_sample`. Training can therefore jump to any $t$ in one draw, instead of
# iterating the chain (`kr_utils.theory.analytic.forward_chain`) $t$ times.

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
from kr_utils import data, diffusion, pipeline, plots, store
from kr_utils.theory import analytic, toy
from scipy import stats

ch = pipeline.open_chapter("T2", profile, seed=seed, theory=True)  # its wall time recorded at its end
cfg, seed, profile = ch.cfg, ch.seed, ch.cfg.profile
schedule = diffusion.NoiseSchedule.linear(1000)  # eqs. (1)-(2): linear_beta_schedule, alphas_cumprod
betas, ab = schedule.betas, schedule.alphas_cumprod

# %% [markdown]
# ## The schedule: how much signal survives
#
# $\sqrt{\bar\alpha_t}$ is the fraction of the original signal left in $x_t$, and the
# signal-to-noise ratio $\mathrm{SNR}(t) = \bar\alpha_t / (1-\bar\alpha_t)$
# (`kr_utils.theory.analytic.snr`) falls by eight orders of magnitude over the chain.

# %%
t_axis = np.arange(1, 1001)
snr = analytic.snr(ab).numpy()
t_half = int(np.argmax(snr < 1)) + 1
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
axes[0].plot(t_axis, betas, label=r"$\beta_t$")
axes[0].plot(t_axis, ab, label=r"$\bar\alpha_t$")
axes[0].plot(t_axis, ab.sqrt(), label=r"$\sqrt{\bar\alpha_t}$ (signal kept)")
axes[0].set_xlabel("t"); axes[0].legend(fontsize=8); axes[0].grid(alpha=0.3)
axes[1].semilogy(t_axis, snr); axes[1].axhline(1, c="0.5", ls="--"); axes[1].axvline(t_half, c="0.5", ls="--")
axes[1].set_xlabel("t"); axes[1].set_title("SNR(t)", fontsize=9); axes[1].grid(alpha=0.3)
plots.glue_figure("fig_t2_schedule", fig)
glue("t2_t_half", t_half, display=False)
glue("t2_ab_T", f"{ab[-1].item():.1e}", display=False)

# %% [markdown]
# ```{glue:figure} fig_t2_schedule
# The linear schedule of eq. (1) and what it implies (eq. T2.2). The dashed lines mark SNR = 1.
# ```
#
# The signal-to-noise ratio reaches 1 ($\bar\alpha_t = 1 - \bar\alpha_t$; equal power for data of unit
# variance) at $t =$ {glue:text}`t2_t_half`; at $t = T$ only
# $\bar\alpha_T =$ {glue:text}`t2_ab_T` of the signal's power is left, so $x_T$ is, for every
# practical purpose, a draw from $\mathcal N(0, I)$.
#
# ## The forward process on 2D points and on a digit
#
# The same eq. (T2.2) (`kr_utils.diffusion.NoiseSchedule.q_sample`) applied to the Swiss roll of `001` (5,000
# points) and to one MNIST test digit (784 pixels, scaled to $[-1, 1]$).

# %%
g = torch.Generator().manual_seed(seed)
roll = toy.swiss_roll(5000, g, max_angle=3 * np.pi)
test_images, test_labels = data.load_mnist("test")
digit = data.to_model_range(test_images[:1])                     # the first test digit
shown = (0, 49, 99, 199, 399, 999)  # code indices: the equations' t = 1, 50, 100, 200, 400, 1000
fig, axes = plt.subplots(2, len(shown), figsize=(2 * len(shown), 4.2))
for ax_pt, ax_im, t in zip(axes[0], axes[1], shown):
    tt = torch.full((len(roll),), t)
    pts = schedule.q_sample(roll, tt, torch.randn(roll.shape, generator=g))
    ax_pt.scatter(*pts.T, s=1, alpha=0.4); ax_pt.set_xlim(-3.5, 3.5); ax_pt.set_ylim(-3.5, 3.5)
    ax_pt.set_aspect("equal"); ax_pt.set_title(f"t = {t + 1}", fontsize=9); ax_pt.set_xticks([]); ax_pt.set_yticks([])
    img = schedule.q_sample(digit, torch.tensor([t]), torch.randn(digit.shape, generator=g))
    ax_im.imshow(img[0, 0], cmap="gray", vmin=-1.5, vmax=1.5); ax_im.set_xticks([]); ax_im.set_yticks([])
fig.tight_layout()
plots.glue_figure("fig_t2_forward", fig)

# %% [markdown]
# ```{glue:figure} fig_t2_forward
# Forward trajectories (`001` Fig. 1): the Swiss roll (top) and a test digit (bottom) at
# increasing $t$. The structure is gone long before $t = T$.
# ```
#
# ## Histograms before and after
#
# As in `001` Fig. 2: the distribution of the roll's coordinates (all points) and of one digit's
# pixel values, at $t = 0$ and at $t = T$, against the standard normal density.

# %%
t_end = torch.full((len(roll),), 999)
roll_T = schedule.q_sample(roll, t_end, torch.randn(roll.shape, generator=g))
digit_T = schedule.q_sample(digit, torch.tensor([999]), torch.randn(digit.shape, generator=g))
grid = np.linspace(-4, 4, 200)
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for ax, before, after, name in ((axes[0], roll, roll_T, "Swiss roll, both coordinates"),
                                (axes[1], digit, digit_T, "one digit, 784 pixels")):
    ax.hist(before.flatten().numpy(), bins=60, range=(-4, 4), density=True, alpha=0.5, label="t = 0")
    ax.hist(after.flatten().numpy(), bins=60, range=(-4, 4), density=True, alpha=0.5, label="t = T")
    ax.plot(grid, np.exp(-grid ** 2 / 2) / np.sqrt(2 * np.pi), "k", lw=1, label="N(0, 1)")
    ax.set_title(name, fontsize=9); ax.legend(fontsize=8)
plots.glue_figure("fig_t2_histograms", fig)
glue("t2_digit_T_moments", f"mean {digit_T.mean().item():.3f}, standard deviation {digit_T.std().item():.3f}",
     display=False)

# %% [markdown]
# ```{glue:figure} fig_t2_histograms
# Before the forward process the digit's pixels are almost all $-1$ (black background) or near
# $+1$; after it they are standard normal ({glue:text}`t2_digit_T_moments`).
# ```
#
# ## Checking the closed form against the chain
#
# Eq. (T2.2) is only as good as its derivation, so we check it: from three fixed values of $x_0$,
# iterate the chain (T2.1) step by step 200,000 times in parallel up to $t = 300$
# (`kr_utils.theory.analytic.forward_chain`), and compare the empirical mean and variance with
# $\sqrt{\bar\alpha_t}\,x_0$ and $1-\bar\alpha_t$, and with one-jump draws from
# `kr_utils.diffusion.NoiseSchedule.q_sample`. The unit test `tests/test_theory.py` repeats this check.

# %%
t_check, n = 299, 200_000
x0 = torch.tensor([0.8, -0.3, 0.0], dtype=torch.float64)
chain = analytic.forward_chain(x0.repeat(n, 1), betas, t_check, g)
jump = schedule.q_sample(x0.repeat(n, 1), torch.full((n,), t_check), torch.randn((n, 3), generator=g,
                                                                                  dtype=torch.float64))
check = pd.DataFrame({"x0": x0.numpy(),
                      "mean: chain": chain.mean(0).numpy(), "mean: q_sample": jump.mean(0).double().numpy(),
                      "mean: sqrt(ab) x0": (ab[t_check].sqrt() * x0).numpy(),
                      "var: chain": chain.var(0).numpy(), "var: q_sample": jump.var(0).double().numpy(),
                      "var: 1 - ab": (1 - ab[t_check]).expand(3).numpy()})
err = max((check["mean: chain"] - check["mean: sqrt(ab) x0"]).abs().max(),
          (check["var: chain"] - check["var: 1 - ab"]).abs().max())
glue("t2_chain_err", f"{err:.4f}", display=False)
check.round(4)

# %% [markdown]
# The largest difference between the iterated chain and the closed form is
# {glue:text}`t2_chain_err`, the size of the Monte Carlo error with 200,000 chains
# ($\approx 1/\sqrt{n}$).

# %% [markdown]
# ## The continuous-time view: Ornstein-Uhlenbeck, the score and the reverse process
#
# `001` (§2) starts from physics. The diffusion equation $\partial_t K = D\,\Delta K$ spreads a
# density forever and has no stationary state; adding a restoring force gives the
# Ornstein-Uhlenbeck process, $dx = -x\,ds + \sqrt 2\,dW$ ($\theta = D = 1$), whose density obeys the
# Fokker-Planck equation $\partial_s p = \partial_x(x\,p) + \partial_x^2 p$ and relaxes to $\mathcal N(0, 1)$.
# From $x_0$ its state at time $s$ is $e^{-s}x_0 + \sqrt{1 - e^{-2s}}\,\epsilon$, which is eq. (T2.2) at
#
# $$s_t = -\tfrac12 \sum_{i \le t} \log(1 - \beta_i), \qquad \sqrt{\bar\alpha_t} = e^{-s_t} \tag{T2.3}$$
#
# (`kr_utils.theory.analytic.ou_time`; `001` writes $\log(\beta_t - 1)$ for $\log(1 - \beta_t)$). The
# forward chain is the Ornstein-Uhlenbeck process looked at at the times $s_t$: the unit test
# integrates the SDE itself (`kr_utils.theory.analytic.ou_euler`) and recovers the marginal of (T2.2).
#
# The **score** of the noised data, $\nabla\log q(x_t)$, is what the reverse process needs. For
# $q(x_t) = \int q(x_0)\,q(x_t\mid x_0)\,dx_0$ (`001` eq. 23),
#
# $$\nabla\log q(x_t) = -\frac{x_t - \sqrt{\bar\alpha_t}\,\mathbb E[x_0\mid x_t]}{1 - \bar\alpha_t}
#   = -\frac{\mathbb E[\epsilon\mid x_t]}{\sqrt{1 - \bar\alpha_t}}, \tag{T2.4}$$
#
# so a network that predicts the noise, $\epsilon_\theta(x_t, t) \approx \mathbb E[\epsilon\mid x_t]$, is a score
# model up to the factor $-1/\sqrt{1 - \bar\alpha_t}$. Anderson (1982) showed that the forward SDE
# has a reverse-time twin. Written in the reverse time $\tau = s_T - s$, which runs forward from
# the noise to the data, with $y_\tau = x_{s_T - \tau}$ and a Brownian motion $\bar W_\tau$ of its own,
#
# $$dy = \big[\,y + 2\nabla\log q_{s_T - \tau}(y)\,\big]\,d\tau + \sqrt 2\,d\bar W_\tau \tag{T2.5}$$
#
# (`001` eq. 25 writes the same with $-dy$ and $ds$, time running backwards): the forward drift
# $-y$ turns into $+y$, the score term $2\nabla\log q$ pulls towards the data, and run from
# $\mathcal N(0, 1)$ with the true score it ends in the data's distribution. Below, for a
# 1-D data set of two Gaussians (means $\pm 2$, std 0.5), the score in closed form
# (`kr_utils.theory.analytic.mixture_score`) is checked against (T2.4) with $\mathbb E[x_0\mid x_t]$ by
# Monte Carlo (`kr_utils.theory.analytic.posterior_mean_x0`), and the reverse SDE is run with it
# (`kr_utils.theory.analytic.reverse_ou`).
#
# `001`'s Annex II adds a warning: a **linear** noise model $\epsilon_\theta(x_t) = a_t(x_t - b_t)$ makes every
# reverse step affine in $x_t$ plus Gaussian noise, so from a Gaussian $x_T$ it can only return a
# Gaussian, whatever it is trained on. The best linear model of these data
# (`kr_utils.theory.analytic.linear_eps_model`, least squares) is run through the ancestral chain
# (`kr_utils.theory.analytic.linear_reverse_samples`) beside it.

# %%
MIX = ((0.5, 0.5), (-2.0, 2.0), (0.5, 0.5))  # weights, means, stds
rng = np.random.default_rng(seed)
score_err = max(abs((xv + (1 - a) * float(analytic.mixture_score(np.array([xv]), a, *MIX)[0])) / np.sqrt(a)
                    - analytic.posterior_mean_x0(xv, a, *MIX, 200_000, rng))
                for a in (0.9, 0.3) for xv in (-2.5, -0.5, 1.0))
s_T = float(analytic.ou_time(betas.numpy())[-1])
rev = analytic.reverse_ou(lambda y, s: analytic.mixture_score(y, np.exp(-2 * s), *MIX), s_T, 20_000, 2000, rng)
lin = analytic.linear_reverse_samples(betas.numpy(), 0.0, 4.25, 20_000, rng)  # the data's mean 0, variance 4.25

# %%
grid = np.linspace(-4.5, 4.5, 400)
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(grid, np.exp(analytic.gmm_logpdf(grid, *MIX)), "k-", label="data")
ax.hist(rev, bins=120, range=(-4.5, 4.5), density=True, alpha=0.5, label="reverse SDE, true score")
ax.hist(lin, bins=120, range=(-4.5, 4.5), density=True, alpha=0.5, label="ancestral chain, linear eps model")
ax.set_xlabel("x_0"); ax.legend(fontsize=8)
plots.glue_figure("fig_t2_reverse", fig)
glue("t2_s_T", f"{s_T:.2f}", display=False)
glue("t2_score_err", f"{score_err:.3f}", display=False)
glue("t2_rev_modes", f"{100 * np.mean(rev > 0):.1f}%", display=False)
glue("t2_rev_abs", f"{np.abs(rev).mean():.2f}", display=False)
glue("t2_lin_var", f"{lin.var():.2f}", display=False)
glue("t2_lin_kurt", f"{stats.kurtosis(lin):+.2f}", display=False)
glue("t2_data_kurt", f"{stats.kurtosis(analytic.sample_gmm(*MIX, 200_000, rng)[0]):+.2f}", display=False)

# %% [markdown]
# ```{glue:figure} fig_t2_reverse
# From $\mathcal N(0, 1)$ back to the data: the reverse SDE with the exact score, and the ancestral
# chain with the best linear noise model, against the data's density.
# ```
#
# The linear schedule ends at Ornstein-Uhlenbeck time $s_T =$ {glue:text}`t2_s_T`. The closed-form
# score and (T2.4) with Monte Carlo posterior means agree to {glue:text}`t2_score_err` (in
# $\mathbb E[x_0\mid x_t]$). With the exact score the reverse SDE puts {glue:text}`t2_rev_modes` of
# its samples in the right-hand mode, at a mean distance {glue:text}`t2_rev_abs` from zero (the
# data: 50%, 2). The linear model's samples have the data's variance ({glue:text}`t2_lin_var`
# against 4.25), as they must: the best linear noise predictor is the exact score of the
# Gaussian with the data's mean and variance, so only their shape is evidence, and it is wrong:
# their excess kurtosis is {glue:text}`t2_lin_kurt`, a Gaussian's 0, where the two-mode data have
# {glue:text}`t2_data_kurt`.

# %% tags=["remove-cell"]
store.update_metrics(profile, "theory", {"T2": {"t_snr_1": t_half, "chain_vs_closed_form_max_err": err,
                                                "ou_time_T": s_T, "score_vs_posterior_mean_max_err": score_err,
                                                "reverse_sde_fraction_right_mode": float(np.mean(rev > 0)),
                                                "linear_model_excess_kurtosis": float(stats.kurtosis(lin))}})
ch.close()

# %% [markdown]
# ## What was measured
#
# The signal-to-noise ratio reaches 1 at $t =$ {glue:text}`t2_t_half` of the linear schedule, and
# the closed form $q(x_t \mid x_0)$ matches the chain iterated step by step to within
# {glue:text}`t2_chain_err`, the size of the Monte Carlo error. Run backwards with the exact
# score, the reverse SDE recovers a two-mode data set ({glue:text}`t2_rev_modes` in the right-hand
# mode); the best linear noise model returns a Gaussian (excess kurtosis {glue:text}`t2_lin_kurt`).
