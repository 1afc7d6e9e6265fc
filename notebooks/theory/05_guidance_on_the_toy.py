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
# # T5. Guidance on the toy
#
# To generate a digit *of a given class* the reverse process must be steered. Two ways, compared
# here on the two clusters of chapter T4:
#
# **Classifier guidance** (Dhariwal & Nichol 2021; the toy notebook `002` §8). Bayes' rule for the
# noisy densities, $\nabla_{x_t}\log p(x_t\mid c) = \nabla_{x_t}\log p(x_t) + \nabla_{x_t}\log p(c\mid x_t)$,
# says that a class-conditional sampler needs only an unconditional $\epsilon_\theta$ plus the
# gradient of a classifier $p_\phi(c\mid x_t, t)$ trained on *noisy* points. Since
# $\epsilon_\theta \approx -\sqrt{1-\bar\alpha_t}\,\nabla\log p(x_t)$, scaling the classifier's
# gradient by $s$ gives
#
# $$\hat\epsilon = \epsilon_\theta(x_t, t, \varnothing) - s\,\sqrt{1-\bar\alpha_t}\,
#   \nabla_{x_t}\log p_\phi(c\mid x_t, t), \tag{T5.1}$$
#
# `kr_utils.theory.toy.classifier_guided_eps`; in the ancestral step it moves the mean by about
# $s\,\beta_t\,\nabla\log p_\phi$, which is `002`'s update. The classifier is
# `kr_utils.theory.toy.NoisyClassifier`, trained by `kr_utils.theory.toy.train_noisy_classifier`.
#
# **Classifier-free guidance** (Ho & Salimans 2022; the thesis' method, eq. 5 of the pipeline,
# `kr_utils.diffusion.guided_eps`). One network learns both $\epsilon_\theta(x_t, t, c)$ and
# $\epsilon_\theta(x_t, t, \varnothing)$ (the class is dropped with probability 0.2 in training),
# and
#
# $$\epsilon_w = \epsilon_\theta(x_t,t,\varnothing) + w\,\big(\epsilon_\theta(x_t,t,c) - \epsilon_\theta(x_t,t,\varnothing)\big).
#   \tag{T5.2}$$
#
# The difference $\epsilon_\theta(x_t,t,c) - \epsilon_\theta(x_t,t,\varnothing)$ plays the role of the
# classifier's gradient, with no classifier. Both methods share the same $\epsilon_\theta$ below:
# classifier guidance uses its unconditional half.
#
# The two strengths are one scale. With exact models, $\epsilon(x_t,t,c) - \epsilon(x_t,t,\varnothing)
# = -\sqrt{1-\bar\alpha_t}\,\nabla_{x_t}\log p(c\mid x_t)$ by the Bayes identity above, so (T5.1) at
# $s$ and (T5.2) at $w = s$ are the same operation. At strength 1 both sample $p(x\mid c)$, and
# landing in the requested cluster at strength 1 is the prediction, not a contest between them;
# at any other strength the score is that of $p(x_t)\,p(c\mid x_t)^s$ at every $t$, which the
# chain does not turn into samples of $p(x)\,p(c\mid x)^s$ exactly. What differs below is the
# models: a classifier's gradient against a difference of two learnt predictions.

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
from kr_utils.live import glue
from kr_utils import comparison, diffusion, fit, pipeline, plots, store
from kr_utils.theory import toy

ch = pipeline.open_chapter("T5", profile, seed=seed, theory=True)  # its wall time recorded at its end
cfg, seed, device, profile = ch.cfg, ch.seed, ch.device, ch.cfg.profile
th = cfg.theory
g = torch.Generator().manual_seed(seed)
MEANS, T = ((-2.0, -2.0), (2.0, 2.0)), 500
x, y = toy.two_gaussians(500, g, MEANS)
x_test, y_test = toy.two_gaussians(500, torch.Generator().manual_seed(seed + 100), MEANS)
model = fit.built_from_seed(lambda: toy.ToyEpsMLP(num_classes=2, hidden=th.toy_hidden), seed).to(device)
toy.train_toy_eps(model, x, y, toy.ToyRun(th.toy_steps, T, seed=seed), p_uncond=0.2)
clf = fit.built_from_seed(lambda: toy.NoisyClassifier(num_classes=2), seed).to(device)
toy.train_noisy_classifier(clf, x, y, toy.ToyRun(th.classifier_steps, T, seed=seed))
sampler = diffusion.AncestralSampler(toy.toy_schedule(T), clip_x0=False)

# %% [markdown]
# ## The noisy classifier
#
# Its accuracy on held-out points diffused to each $t$, beside the best accuracy any classifier
# can reach there (`kr_utils.theory.toy.bayes_accuracy_two_gaussians`: each class is a Gaussian of
# mean $\sqrt{\bar\alpha_t}\,m_c$ and variance $\bar\alpha_t\sigma^2 + 1 - \bar\alpha_t$). `002` checks it at $t = 250$.

# %%
ts = [1, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500]  # the equations' t; the code indexes step t at t - 1
acc = [toy.noisy_accuracy(clf, x_test, y_test, t - 1, T, torch.Generator().manual_seed(seed + t)) for t in ts]
fig, ax = plt.subplots(figsize=(5, 3))
ab_t = toy.toy_schedule(T).alphas_cumprod.numpy()
bayes = [toy.bayes_accuracy_two_gaussians(MEANS, 0.5, float(ab_t[t - 1])) for t in ts]
ax.plot(ts, acc, marker="o", label="noisy classifier"); ax.plot(ts, bayes, "k--", label="Bayes limit")
ax.axhline(0.5, c="0.5", ls=":", label="chance")
ax.set_xlabel("t"); ax.set_ylabel("accuracy on x_t"); ax.grid(alpha=0.3); ax.legend(fontsize=8)
plots.glue_figure("fig_t5_classifier", fig)
glue("t5_acc_250", f"{100 * acc[ts.index(250)]:.1f}%", display=False)
lo, hi = comparison.binomial_interval(round(acc[-1] * len(y_test)), len(y_test))  # the test points' own error
glue("t5_acc_last_ci", f"[{100 * lo:.1f}, {100 * hi:.1f}]", display=False)
glue("t5_acc_last", f"{100 * acc[-1]:.1f}%", display=False)
glue("t5_bayes_last", f"{100 * bayes[-1]:.1f}%", display=False)
glue("t5_ab_last", f"{ab_t[ts[-1] - 1]:.4f}", display=False)

# %% [markdown]
# ```{glue:figure} fig_t5_classifier
# Accuracy of $p_\phi(c\mid x_t, t)$ on 1,000 held-out points noised to step $t$.
# ```
#
# At $t = 250$ the classifier is right {glue:text}`t5_acc_250` of the time. With $T = 500$ steps of
# the linear schedule the clusters are never erased: at $t = T$, $\bar\alpha_T =$
# {glue:text}`t5_ab_last`, the Bayes limit is still {glue:text}`t5_bayes_last` and the classifier
# measures {glue:text}`t5_acc_last` (95% interval over the held-out points
# {glue:text}`t5_acc_last_ci`, so a measured value above the Bayes limit is sampling error), not
# chance (50%). The chain's last state $x_T$ is therefore not
# exactly $\mathcal N(0, I)$ here, though the samplers below start from it.
#
# ## Guidance strength against the result
#
# All samples ask for class 0 (the lower-left cluster). For each strength we measure the fraction
# that land in the requested cluster and their spread per axis around its centre (the data: 0.5)
# with `kr_utils.theory.toy.cluster_stats` (the sweep: `kr_utils.theory.toy.guidance_sweep`). $s = 0$
# and $w = 0$ are both the unconditional model.

# %%
rows, shown = toy.guidance_sweep(model, clf, sampler, MEANS, th.toy_samples, seed)
sweep = pd.DataFrame(rows)[["method", "strength", "fraction_requested", "spread_requested"]]
plots.glue_figure("fig_t5_sweep", plots.guidance_panels(sweep))
for key, method in (("t5_cg_99", "classifier guidance"), ("t5_cfg_99", "classifier-free")):
    first = toy.first_strength(rows, method)
    sym = "s" if method == "classifier guidance" else "w"
    glue(key, "at none of the strengths tried" if first is None else
         f"from {sym} = {first:g} on (at that strength and every larger one tried)", display=False)
glue("t5_spread_range", f"{sweep.spread_requested.min():.2f} and {sweep.spread_requested.max():.2f}", display=False)
peaks = {m: part.loc[part.spread_requested.idxmax(), "strength"] for m, part in sweep.groupby("method")}
glue("t5_spread_peak", f"s = {peaks['classifier guidance']:g} and w = {peaks['classifier-free']:g}", display=False)
glue("t5_cfg_half", f"{100 * sweep[(sweep.method == 'classifier-free') & (sweep.strength == 0.5)].fraction_requested.item():.1f}%",
     display=False)
sweep.round(3)

# %% [markdown]
# ```{glue:figure} fig_t5_sweep
# Fraction of samples in the requested cluster (left) and their spread (right) as the guidance
# strength grows; the horizontal axis is linear up to 0.25 and logarithmic beyond.
# ```
#
# Classifier guidance puts at least 99% of the samples in the requested cluster
# {glue:text}`t5_cg_99`, classifier-free guidance {glue:text}`t5_cfg_99` ($w = 0.5$
# already gives {glue:text}`t5_cfg_half`). Across all strengths the spread inside the requested
# cluster stays between {glue:text}`t5_spread_range` (the data: 0.5), and it is largest at
# {glue:text}`t5_spread_peak` (why, this chapter does not measure). With clusters this far apart,
# guidance here mostly decides *which* mode a sample lands in; pipeline chapter 3 measures what
# $w \in \{0, 1, 2, 4\}$ does on digits, where the classes are not this far apart.

# %%
picked = ["classifier, s = 0", "classifier, s = 1", "classifier, s = 30",
          "classifier-free, w = 0", "classifier-free, w = 1", "classifier-free, w = 4"]
fig, axes = plt.subplots(2, 3, figsize=(9, 6))
for ax, name in zip(axes.flat, picked):
    ax.scatter(*x.T, s=1, c="0.8"); ax.scatter(*shown[name].T, s=2, c="tab:red", alpha=0.5)
    ax.set_xlim(-4.5, 4.5); ax.set_ylim(-4.5, 4.5); ax.set_aspect("equal"); ax.set_title(name, fontsize=9)
fig.tight_layout()
plots.glue_figure("fig_t5_samples", fig)

# %% [markdown]
# ```{glue:figure} fig_t5_samples
# Samples asking for class 0 (red) over the training data (grey), for three strengths of each
# kind of guidance.
# ```
#
# `002` shows the same thing as it happens: an animation of the reverse chain without guidance
# beside two guided runs, one asking for each class (classifier guidance at $s = 1$, from the same
# starting noise each time). Without guidance the points split between the two clusters (in the
# sweep above, {glue:text}`t5_unguided_frac` of them end in cluster 0); guided, they are steered
# towards the requested one while the chain is still noisy. The step from which on at least
# {glue:text}`t5_steer_level`
# of the points sit on the requested cluster's side, to the end of the chain
# (`kr_utils.theory.toy.steered_by`; without guidance, the side of cluster 0):
# {glue:text}`t5_steered`.

# %%
keep = tuple(range(0, T, 25))
glue("t5_unguided_frac", f"{100 * sweep[(sweep.method == 'classifier guidance') & (sweep.strength == 0)].fraction_requested.item():.0f}%",
     display=False)
runs = {name: toy.sample_toy(model, sampler, torch.full((th.toy_samples,), c), torch.Generator().manual_seed(seed),
                             classifier=clf, scale=s, keep=keep)[1]
        for name, c, s in (("no guidance (s = 0)", 0, 0.0), ("guided to c = 0", 0, 1.0), ("guided to c = 1", 1, 1.0))}
order = sorted(runs["guided to c = 0"], reverse=True)  # from x_T down to x_0
level = 0.9  # the share of the points that counts as committed
glue("t5_steer_level", f"{100 * level:.0f}%", display=False)
steer = {name: toy.steered_by(traj, MEANS, c, level) for (name, traj), c in zip(runs.items(), (0, 0, 1))}
glue("t5_steered", "; ".join(f"{name}: " + (f"from t = {t} of {T} on" if t is not None else "not even at the end")
                              for name, t in steer.items()), display=False)
plots.points_animation([{name: traj[t] for name, traj in runs.items()} for t in order],
                       [f"reverse, t = {t}" for t in order], reference=x, lim=4.5,
                       colors=("tab:blue", "tab:red", "tab:green"))

# %% [markdown]
# Classifier-free guidance is what the pipeline uses: it needs no second network, and a noisy
# classifier for 28×28 digits would be a model of its own to train and to trust.

# %% tags=["remove-cell"]
store.update_metrics(profile, "theory", {"T5": {"classifier_accuracy_by_t": dict(zip(ts, acc)),
                                                    "sweep": sweep.to_dict(orient="records")}})
ch.close()

# %% [markdown]
# ## What was measured
#
# The noisy classifier is right {glue:text}`t5_acc_250` of the time at $t = 250$. Classifier
# guidance puts nearly all samples in the requested cluster {glue:text}`t5_cg_99`,
# classifier-free guidance {glue:text}`t5_cfg_99`; the spread inside the cluster stays
# between {glue:text}`t5_spread_range`.
