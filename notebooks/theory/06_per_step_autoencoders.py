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
# # T6. One small network per time step
#
# The physics thesis `001` (§5) keeps the noise model as simple as possible, so that it stays
# analysable: a **single-hidden-layer ReLU autoencoder for every time step**, each trained
# separately,
#
# $$\epsilon^{(t)}(x) = W_2^{(t)}\,\mathrm{ReLU}\big(W_1^{(t)}x + b_1^{(t)}\big) + b_2^{(t)},\qquad t = 1,\dots,T,
#   \tag{T6.1}$$
#
# instead of one large network that takes $t$ as an input. We compare the two on what `001`
# trained them on, MNIST digits 0 and 1:
#
# - `kr_utils.theory.autoencoders.PerStepAutoencoders`: $T$ networks as in eq. (T6.1), held as stacked
#   weight tensors so that all $T$ train in one batched matrix product;
# - `kr_utils.theory.autoencoders.SharedAutoencoder`: one single-hidden-layer network whose input is
#   $[x_t, \mathrm{emb}(t)]$ with the fixed sinusoidal embedding of $t$.
#
# A chain of $T = 1000$ separate networks is out of reach on two CPU cores, so this chapter uses a
# shorter chain, $T$ = {glue:text}`t6_T` with the schedule of eq. (1) rescaled by $1000/T$
# (`kr_utils.theory.autoencoders.short_schedule`), for both models. The rescaling is not
# neutral: it ends at $\bar\alpha_T =$ {glue:text}`t6_abar_T` (against
# {glue:text}`t6_abar_1000` at $T = 1000$) with a last step of $\beta_T =$
# {glue:text}`t6_beta_T`. Near the end of the chain both marginals are close to $\mathcal N(0, I)$,
# so the reverse step stays nearly Gaussian even there; the steps that strain chapter T3's
# small-step Gaussian reverse step are those of mid-chain, where $\beta_t$ is already large and
# the marginal still carries the digits' structure.
#
# **What the autoencoder outputs.** `001` lets each autoencoder output $\epsilon$ directly, with
# 1,700 hidden units for MNIST (its Table 2), wider than the 784 pixels; {glue:text}`t6_width`.
# Near $t = T$, where $\epsilon$ is almost $x_t$ itself, an identity map of 784 pixels does not
# fit through a hidden layer narrower than 784 ReLU units; at `001`'s width it can. We measure
# what the output costs below, at this profile's width. The models we keep
# output a *clean digit* $D(x_t)$ instead (a denoising autoencoder), and $\epsilon$ follows from
# eq. (T2.2): $\epsilon = (x_t - \sqrt{\bar\alpha_t}\,D(x_t))/\sqrt{1-\bar\alpha_t}$
# (`output="x0"`). They are trained on the squared error of $D$ (`kr_utils.theory.autoencoders.train_autoencoder`),
# which is $L_\text{simple}$ (T3.7) weighted by $(1-\bar\alpha_t)/\bar\alpha_t$ = 1/SNR, since
# $\|D - x_0\|^2 = \|\epsilon - \epsilon_\theta\|^2/\mathrm{SNR}$. For a per-step network the
# weight is one constant per network, and Adam's step does not depend on it.

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
seed = None     # overrides the profile's seed

# %% tags=["hide-input"]
import pandas as pd
import torch
from kr_utils.live import glue, glue_texts
from kr_utils import data, diffusion, pipeline, plots, store
from kr_utils.theory import autoencoders, toy

ch = pipeline.open_chapter("T6", profile, seed=seed, theory=True)  # its wall time recorded at its end
cfg, seed, device, profile = ch.cfg, ch.seed, ch.device, ch.cfg.profile
th = cfg.theory
torch.manual_seed(seed)
T = th.ae_T
glue("t6_T", T, display=False)
train_images, train_labels = data.load_mnist("train")
test_images, test_labels = data.load_mnist("test")
zero_one = (train_labels == 0) | (train_labels == 1)
x0 = data.to_model_range(train_images[zero_one]).flatten(1)
test01 = data.to_model_range(test_images[(test_labels == 0) | (test_labels == 1)]).flatten(1)
sampler = diffusion.AncestralSampler(autoencoders.short_schedule(T), clip_x0=True)
glue("t6_n_train", f"{len(x0):,d}", display=False)

# %% [markdown]
# ## Training the three models
#
# {glue:text}`t6_n_train` training digits (all the 0s and 1s of MNIST's training set). The
# widths and numbers of updates are the profile's (`theory` section of `kr_utils.config`); the
# per-step model sees all $T$ steps of every batch in each update, the shared model one random
# step per image. The models are built by `kr_utils.theory.autoencoders.chapter_models`, trained,
# sampled from the same starting noise and measured by `kr_utils.theory.autoencoders.compare`.

# %%
specs = autoencoders.chapter_models(T, th.ae_hidden, th.ae_shared_hidden, th.ae_steps, th.ae_shared_steps,
                                    sampler.schedule.betas)
start = autoencoders.flat_weights(specs["per-step, outputs eps"][0])  # the eps model and its ELBO copy start here
ref, second_draw = autoencoders.disjoint_draws(test01, th.ae_samples, seed)
floor = toy.energy_distance(ref, second_draw)
noise_ref = toy.energy_distance(torch.randn(th.ae_samples, 784, generator=torch.Generator().manual_seed(seed)).clamp(-1, 1), ref)
rows, samples = autoencoders.compare(specs, x0, ref, sampler, batch_size=th.ae_batch, n_samples=th.ae_samples,
                                     seed=seed, device=device)
cost = pd.DataFrame(rows).T
cost.loc["two real draws (floor)"] = {autoencoders.ED: floor}
cost.loc["Gaussian noise, clipped to [-1, 1]"] = {autoencoders.ED: noise_ref}
glue_texts(autoencoders.cost_texts(cost, floor, noise_ref))
glue_texts(autoencoders.weighting_texts(specs, start, T, th.ae_hidden))
cost.style.format("{:,.3f}", na_rep="")

# %% [markdown]
# ## What they generate

# %%
n_show = min(10, th.ae_samples)
fig = plots.mosaic(torch.cat([s[0][:n_show] for s in samples.values()]).reshape(-1, 1, 28, 28), nrow=len(samples),
                   row_labels=["per-step, x0", "per-step, eps", "per-step, eps, ELBO", "shared, x0"])
plots.glue_figure("fig_t6_samples", fig)

# %% [markdown]
# ```{glue:figure} fig_t6_samples
# Samples of each model (`001` Fig. 6), one row per model, from the same starting noise.
# ```
#
# The energy distance of the samples to real test 0s and 1s (in pixel space; two real draws are
# {glue:text}`t6_ed_floor` apart) is {glue:text}`t6_ed_per` for the per-step denoising
# autoencoders ({glue:text}`t6_params_per` parameters, trained in {glue:text}`t6_time_per`),
# {glue:text}`t6_ed_shared` for the shared network ({glue:text}`t6_params_shared` parameters,
# {glue:text}`t6_time_shared`), and {glue:text}`t6_ed_eps` for per-step networks that output
# $\epsilon$ directly through the same narrow hidden layer. For comparison, Gaussian noise
# clipped to $[-1, 1]$ is at {glue:text}`t6_ed_noise` from the same digits. The per-step and
# shared models differ in width, updates and learning rate (the profile's `theory` section), with
# one seed each: a comparison of what each reaches at this profile's settings, not at equal
# budgets.
#
# **Weighted against unweighted loss** (`001` Fig. 6). The ELBO's weights (T3.6) on this chain range
# over a factor {glue:text}`t6_elbo_ratio`, and the eps-output networks trained on them reach
# {glue:text}`t6_ed_elbo` against {glue:text}`t6_ed_eps` unweighted. With one network per step the
# weight $\lambda_t$ multiplies every gradient of network $t$ by one constant, and Adam's update
# $m/\sqrt v$ cancels a constant (`tests/test_autoencoders.py` checks it): the weighted run ends
# {glue:text}`t6_weighting_moved` of its training distance away from the unweighted one, started
# from the same weights, batches and noise. That remainder is Adam's $\epsilon$: the update is
# $m/(\sqrt v + \epsilon)$, and where $\lambda_t$ is small $\sqrt v$ falls towards $\epsilon$, so the
# constant no longer cancels (`tests/test_autoencoders.py` finds the drift vanishing as
# $\epsilon \to 0$). For per-step networks the choice `001` studies in its Fig. 6 makes no
# difference under Adam beyond that; it would under plain gradient descent, and it does for a
# shared network (chapter T3). `001`'s Fig. 6 did show a difference: under Adam it can come only
# from $\epsilon$, from run-to-run noise or from its per-step learning rates.
#
# The per-step model pays in parameters ($T$ full networks) what it saves in capacity per
# network: each one only has to undo one noise level. Its appeal in `001` is analytical: a
# single-hidden-layer autoencoder with *tied* weights, $r(x) = W^\top\sigma(Wx + b) + c$, has an
# function $F$ whose gradient is its step, $\nabla F = r(x) - x$: `001` §6 shows it for linear
# hidden units, and Kamyshanska and Memisevic (2013, `001`'s reference [9]) for any elementwise
# activation $\sigma$; for ReLU, $F = \tfrac12\|\mathrm{ReLU}(Wx + b)\|^2 - \tfrac12\|x - c\|^2$. Since
# the step climbs $F$, $F$ is an unnormalised log-density, and the energy in the physicist's
# sense is $E = -F$. (`001`'s eq. 29 writes $-\tfrac12(x + b_r)^2$ where the quadratic term is
# $-\tfrac12\|x - b_r\|^2$, with $b_r$ the output bias.) For the denoisers of this chapter that
# potential is a score: a tied network $D$ that outputs $x_0$ gives, by Tweedie's formula
# $\nabla\log q_t(x) = (\sqrt{\bar\alpha_t}\,D(x) - x)/(1-\bar\alpha_t)$, the log-density
# $\log q_t(x) = [\sqrt{\bar\alpha_t}\,(\sum_j \Phi(w_j^\top x + b_j) + c^\top x) - \tfrac12\|x\|^2]/(1-\bar\alpha_t)$
# up to a constant, with $\Phi' = \sigma$ ($\Phi = \tfrac12\mathrm{ReLU}^2$ for ReLU): the analogue of
# T8's potential $V_t$ for a learnt model. The networks here have untied weights, and that
# alone is why they have none; this chapter compares what they generate, not their energies.
#
# ## The reverse trajectory
#
# Two samples of the per-step model along the chain (`001` Fig. 7).

# %%
traj = samples["per-step, outputs x0"][1]
steps_shown = sorted({min(T - 1, int(round(T * f))) for f in (0.99, 0.8, 0.6, 0.4, 0.2, 0.1, 0.05)} | {0},
                     reverse=True)  # the kept states are x_0 .. x_{T-1}
steps_shown = [t for t in steps_shown if t in traj]
frames = torch.stack([traj[t][:2] for t in steps_shown], 1).reshape(-1, 1, 28, 28)
fig = plots.mosaic(frames.clamp(-1, 1), nrow=2, titles=[f"t={t}" for t in steps_shown] * 2)
plots.glue_figure("fig_t6_trajectory", fig)

# %% [markdown]
# ```{glue:figure} fig_t6_trajectory
# $x_t$ of two samples of the per-step model, from noise (left) to $t = 0$ (right).
# ```

# %%
ids = {"per-step, outputs x0": "per_step_x0", "per-step, outputs eps": "per_step_eps",
       "per-step, outputs eps, ELBO weights": "per_step_eps_elbo",
       "shared, outputs x0": "shared_x0", "hidden units": "hidden_units", "training time (s)": "train_time_s",
       "final training loss": "final_loss", "sampling time (s)": "sampling_time_s",
       "energy distance to test 0/1": "energy_distance"}  # stable ids as keys
store.update_metrics(profile, "theory", {"T6": {"T": T, **cost.drop(["two real draws (floor)",
    "Gaussian noise, clipped to [-1, 1]"]).rename(index=ids, columns=ids).T.to_dict(), "ed_floor": floor,
    "ed_noise": noise_ref, "elbo_weighting_relative_change": autoencoders.weighting_moved(specs, start)}})
ch.close()

# %% [markdown]
# ## What was measured
#
# Trained on {glue:text}`t6_n_train` digits, the per-step autoencoders' samples are at an energy
# distance of {glue:text}`t6_ed_per` from held-out digits, the shared network's at
# {glue:text}`t6_ed_shared` (two draws of real digits: {glue:text}`t6_ed_floor`).
