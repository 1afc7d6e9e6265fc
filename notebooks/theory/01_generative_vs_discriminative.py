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
# # T1. Generative and discriminative models
#
# Knowledge replication needs both kinds of model. The **teacher** and the **student** are
# *discriminative*: from a labelled data set $D = \{(x_i, y_i)\}$ they learn the conditional
# $p(y \mid x)$, or just a decision rule, and need no more of $x$ than what separates the classes.
# The **diffusion model** is *generative*: it learns the class-conditional $p(x \mid y)$ (or
# $p(x)$ without labels) well enough to draw new, plausible $x$; with the class frequencies
# $p(y)$, which the data give, that is the joint $p(x, y) = p(y)\,p(x \mid y)$. A generative model also
# classifies, by Bayes' rule,
#
# $$p(y \mid x) = \frac{p(x \mid y)\,p(y)}{\sum_{y'} p(x \mid y')\,p(y')}, \tag{T1.1}$$
#
# but a discriminative one cannot generate. This chapter makes the two ideas concrete in one and
# two dimensions, following the toy notebook `002`, rewritten in PyTorch/NumPy.

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
from kr_utils.live import glue, glue_texts
from kr_utils import pipeline, plots, store
from kr_utils.theory import analytic, toy

ch = pipeline.open_chapter("T1", profile, seed=seed, theory=True)  # its wall time recorded at its end
cfg, seed, device, profile = ch.cfg, ch.seed, ch.device, ch.cfg.profile
rng = np.random.default_rng(seed)

# %% [markdown]
# ## Latent variables: sampling through a hidden code
#
# A latent variable $z$ is an unobserved cause that makes a complicated $p(x)$ simple to write:
#
# $$p(x) = \sum_z p(z)\,p(x \mid z). \tag{T1.2}$$
#
# In a Gaussian mixture, $z$ says which component a point comes from. Sampling is *ancestral*:
# first $z \sim \mathrm{Categorical}(w)$, then $x \sim \mathcal N(\mu_z, \sigma_z^2)$
# (`kr_utils.theory.analytic.sample_gmm`); the density sums $z$ out (`kr_utils.theory.analytic.gmm_logpdf`). The
# mixture of `002`: weights 0.4 and 0.6, means −2 and 3, standard deviations 0.5 and 1.

# %%
W, M, S = (0.4, 0.6), (-2.0, 3.0), (0.5, 1.0)
x, z = analytic.sample_gmm(W, M, S, 2000, rng)
grid = np.linspace(-5, 7, 400)
fig, ax = plt.subplots(figsize=(6, 3.2))
for k, c in enumerate(("tab:blue", "tab:orange")):
    ax.hist(x[z == k], bins=50, range=(-5, 7), density=False, alpha=0.6, color=c,
            weights=np.full((z == k).sum(), 1 / (len(x) * 12 / 50)), label=f"drawn with z = {k}")
ax.plot(grid, np.exp(analytic.gmm_logpdf(grid, W, M, S)), "k", lw=2, label="p(x) (z summed out)")
ax.set_xlabel("x"); ax.set_ylabel("density"); ax.legend(fontsize=8)
plots.glue_figure("fig_t1_latent", fig)
glue("t1_frac_z0", f"{(z == 0).mean():.3f}", display=False)

# %% [markdown]
# ```{glue:figure} fig_t1_latent
# 2,000 draws from the mixture, coloured by the latent $z$ that produced them, and the density
# $p(x)$ of eq. (T1.2). A fraction {glue:text}`t1_frac_z0` of the draws came from $z = 0$
# (weight 0.4).
# ```
#
# ## Kinds of generative model
#
# `002` lists the families that matter here. They differ in whether the density $p(x)$ can be
# evaluated and in how a sample is drawn:
#
# | family | $p(x)$ | a sample | in this book |
# |---|---|---|---|
# | autoregressive (PixelCNN, Transformers) | exact, a product of conditionals | one variable at a time | not used |
# | variational autoencoder | a lower bound (the ELBO) | one decoder pass from a latent $z$ | T9, chapter 11 |
# | generative adversarial network | none (implicit model) | one generator pass | T9, chapter 11 |
# | normalising flow | exact, through an invertible map | one pass of the inverse map | not used |
# | diffusion / score-based | a lower bound (T3), or the score $\nabla_x \log p(x)$ | many denoising steps | T2-T8, the pipeline |
#
# The last row is the generator of this book: it trades sampling speed (many network passes per
# digit, chapter 3) for stable training and samples good enough to teach a student.
#
# ## Tractability against flexibility
#
# A single Gaussian is *tractable*: its maximum-likelihood fit is the sample mean and standard
# deviation, in closed form, and its density is exact. But it is not *flexible*: it cannot have two
# modes. A two-component mixture can, at the price of an iterative fit (expectation-maximisation,
# `kr_utils.theory.analytic.fit_gmm_1d`) and a likelihood with a non-convex landscape. Richer models
# $p(x) = \phi(x)/Z$ are more flexible still, but their normaliser $Z = \int \phi(x)\,dx$ is
# intractable; diffusion models avoid computing $Z$ altogether by learning to *undo noise*
# (chapters T2-T4).
#
# We fit both models to bimodal data (`002`: 200 points from $\mathcal N(-3, 1)$, 300 from
# $\mathcal N(4, 1.5^2)$) and compare their mean log-likelihood on 5,000 fresh points from the same
# source, so that flexibility is judged on data the fit has not seen.

# %%
def bimodal(n_scale):
    return np.concatenate([rng.normal(-3, 1.0, 200 * n_scale), rng.normal(4, 1.5, 300 * n_scale)])


train_x, held_out = bimodal(1), bimodal(10)
g1 = dict(weights=[1.0], means=[train_x.mean()], stds=[train_x.std()])
g2 = analytic.fit_gmm_1d(train_x, k=2)
ll = {name: analytic.gmm_logpdf(held_out, m["weights"], m["means"], m["stds"]).mean()
      for name, m in (("one Gaussian", g1), ("mixture of two", g2))}
grid = np.linspace(-8, 10, 400)
plots.glue_figure("fig_t1_flexibility", plots.density_fits(train_x, {
    f"{name}: held-out log-lik. {ll[name]:.3f}": (grid, np.exp(analytic.gmm_logpdf(grid, m["weights"], m["means"], m["stds"])))
    for name, m in (("one Gaussian", g1), ("mixture of two", g2))}))
glue("t1_ll_gauss", f"{ll['one Gaussian']:.3f}", display=False)
glue("t1_ll_gmm", f"{ll['mixture of two']:.3f}", display=False)
glue("t1_gmm_fit", ", ".join(f"{w:.2f}·N({m:.2f}, {s:.2f}²)" for w, m, s in zip(g2["weights"], g2["means"],
                                                                              g2["stds"])), display=False)
glue("t1_gmm_iters", g2["iters"], display=False)

# %% [markdown]
# ```{glue:figure} fig_t1_flexibility
# A single Gaussian against a two-component mixture, fitted to the same 500 points.
# ```
#
# The mixture's held-out mean log-likelihood is {glue:text}`t1_ll_gmm` nats per point against
# {glue:text}`t1_ll_gauss` for the single Gaussian. EM converged in {glue:text}`t1_gmm_iters`
# iterations to {glue:text}`t1_gmm_fit` (the source is 0.4·N(−3, 1²) + 0.6·N(4, 1.5²)).
#
# ## The same data, seen by both kinds of model
#
# On two clusters like those of `002` (means $\pm(2, 2)$, used again in chapters T4-T5) but
# wider, $\sigma =$ {glue:text}`t1_sigma` instead of 0.5, so that they overlap and even the best
# possible rule errs (`002`'s clusters are separable: any sensible classifier gets every point right), a
# *generative* classifier fits $p(x \mid y)$ as one Gaussian per class and classifies with
# eq. (T1.1); a *discriminative* one, logistic regression, fits $p(y \mid x)$ directly. Only the
# first can also produce new points.

# %%
gd = toy.generative_vs_discriminative(seed, device)  # one draw; both classifiers; new points from the generative one
glue_texts(toy.gen_disc_texts(gd))
acc = {"generative": float(gd.generative_right.mean()), "discriminative": float(gd.discriminative_right.mean())}
plots.glue_figure("fig_t1_gen_disc", plots.boundary_and_draws(gd.x_test, gd.y_test, gd.boundary, gd.new_points))

# %% [markdown]
# ```{glue:figure} fig_t1_gen_disc
# Left: the logistic-regression boundary on held-out points. Right: 400 new points sampled from
# the generative model's class-conditional Gaussians.
# ```
#
# On held-out points the generative classifier is right {glue:text}`t1_acc_gen` of the time and
# logistic regression {glue:text}`t1_acc_disc`, against {glue:text}`t1_bayes` for the best
# possible rule (`kr_utils.theory.toy.bayes_accuracy_two_gaussians`), each measured on
# held-out points whose own sampling error is about ± {glue:text}`t1_halfwidth` points. The two
# classify the same points, so they are compared where they disagree ({glue:text}`t1_disagree`;
# `kr_utils.comparison.mcnemar`): {glue:text}`t1_mcnemar`. {glue:text}`t1_reading` (one
# training draw, large enough that both rules sit near the Bayes rate).
#
# ## How many points each route needs
#
# Ng and Jordan ("On discriminative vs. generative classifiers", NIPS 2002) showed that a
# generative classifier can approach its (possibly worse) limit with far fewer training points
# than logistic regression needs to approach its own. Theirs was naive Bayes; the
# Gaussians here each estimate a full covariance, five parameters a class against the three of
# logistic regression in all, so at the smallest sizes they have more to estimate. The same two
# classifiers are trained on {glue:text}`t1_curve_draws` of each size
# ({glue:text}`t1_curve_sizes` points a class) and scored on one large held-out draw
# (`kr_utils.theory.toy.gen_disc_curve`; each difference paired by draw and by point, its
# interval over both; the intervals of the sizes are not adjusted for being several, so one
# narrow verdict among them may be chance).

# %%
curve = toy.gen_disc_curve(toy.CURVE_SIZES, cfg.theory.t1_draws, seed)
glue_texts(toy.curve_texts(curve, cfg.theory.t1_draws))
plots.glue_figure("fig_t1_curve", plots.learning_curves(
    {name: {n: r[name] for n, r in curve.items()} for name in ("generative", "discriminative")},
    (toy.bayes_accuracy_two_gaussians(gd.means, gd.sigma, 1.0), "Bayes rate")))

# %% [markdown]
# ```{glue:figure} fig_t1_curve
# Held-out accuracy of the two classifiers against the number of training points per class:
# the mean over the training draws, the band its 95% interval over the draws and the held-out
# points; dashed: the best possible rule.
# ```
#
# Measured: {glue:text}`t1_curve_reading`; {glue:text}`t1_curve_small`. Ng and Jordan's head
# start comes from naive Bayes' few parameters; a generative model that has more to estimate
# than its discriminative rival has no such start.
# The rest of the book makes the generative side work for images, where no single Gaussian
# per class will do: the diffusion model learns $p(x \mid y)$ for 784-pixel digits, and the
# teacher only needs $p(y \mid x)$.

# %% tags=["remove-cell"]
store.update_metrics(profile, "theory", {"T1": {"loglik_gaussian": ll["one Gaussian"],
                                                    "loglik_mixture": ll["mixture of two"], **acc,
                                                    "curve": {str(n): {"generative": r["generative"],
                                                                       "discriminative": r["discriminative"],
                                                                       "difference": r["difference"]} for n, r in curve.items()},
                                                    "bayes": toy.bayes_accuracy_two_gaussians(gd.means, gd.sigma, 1.0)}})
ch.close()

# %% [markdown]
# ## What was measured
#
# On the overlapping two-cluster data the generative classifier is right {glue:text}`t1_acc_gen`
# of the time and logistic regression {glue:text}`t1_acc_disc` (the Bayes rule: {glue:text}`t1_bayes`); only the first can also draw new points. On
# bimodal data a mixture of two Gaussians ({glue:text}`t1_gmm_fit`, after {glue:text}`t1_gmm_iters`
# EM iterations) has a held-out log-likelihood of {glue:text}`t1_ll_gmm`, against
# {glue:text}`t1_ll_gauss` for one Gaussian.
