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
# # T9. Before diffusion: autoencoders, VAEs, GANs and WGAN-GP
#
# The last seed, `004` (slides on adversarial networks), covers the generators that came before
# diffusion models. This chapter follows it on real MNIST: the autoencoder and what its latent
# space lacks, the variational autoencoder that gives its codes a prior to draw from, the GAN
# game and the discriminator
# that wins it, and the Wasserstein critic with its gradient penalty. Chapter 11 then feeds
# class-conditional versions of the same generators through the replication pipeline, against
# the diffusion model.
#
# All the code is in `kr_utils.generators` (the losses and networks) and
# `kr_utils.theory.adversarial` (this chapter's runs); the sizes are the profile's
# `generators` section of `kr_utils.config`.
#
# **The autoencoder and the VAE.** An autoencoder maps an image $x$ to a code $z = e(x)$ and
# back, $\hat x = d(z)$, trained on the reconstruction alone. Nothing asks the codes to fill a
# known region: where the codes lie is the network's own choice, so there is no distribution
# to draw new codes from, and the autoencoder is not a generator. The VAE makes the encoder output a
# Gaussian $q(z\mid x) = \mathcal N(\mu(x), \mathrm{diag}\,\sigma^2(x))$ and maximises the
# evidence lower bound
#
# $$\log p(x) \ge \mathbb E_{q(z\mid x)}\big[\log p(x\mid z)\big] - \mathrm{KL}\big(q(z\mid x)\,\|\,\mathcal N(0, I)\big),
#   \tag{T9.1}$$
#
# whose KL term has the closed form (`kr_utils.generators.kl_divergence`)
#
# $$\mathrm{KL} = -\tfrac12 \sum_j \big(1 + \log\sigma_j^2 - \mu_j^2 - \sigma_j^2\big). \tag{T9.2}$$
#
# The expectation is estimated with one draw through the **reparameterisation**
# $z = \mu(x) + \sigma(x)\odot\varepsilon$, $\varepsilon\sim\mathcal N(0, I)$, which lets the
# gradient pass through the draw (`kr_utils.generators.VAE.forward`). For $-\log p(x\mid z)$
# the code uses the binary cross-entropy of the decoder's pixel probabilities against the grey
# pixels in $[0, 1]$ (`kr_utils.generators.vae_loss`). That is the Bernoulli log-likelihood only
# for binary pixels; on grey ones it is not a normalised density (the continuous Bernoulli would
# add a normalising term), so the quantity trained and reported below is a reconstruction
# cross-entropy plus the KL term, not a bound on $\log p(x)$ in nats, and (T9.1) is the
# motivation, not the number computed. New images are decoded from $z \sim \mathcal N(0, I)$.
#
# **Diffusion as a VAE.** The diffusion model's ELBO has the same form as (T9.1), though its
# training drops the weights of the terms (Ho et al.'s simplified loss, chapter T3): seed `001`'s Annex I
# reads the forward process as an encoder $q(x_{1:T}\mid x_0)$ with no parameters, fixed by the
# noise schedule, and the reverse chain as a decoder of $T$ latent layers; the ELBO then splits
# into one KL term per step, the $L_{t-1}$ of chapter T3. A VAE learns its encoder and keeps one
# latent layer; a diffusion model fixes its encoder and learns only the decoder.

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
from kr_utils.live import glue, glue_texts
from kr_utils import checkpoints, data, models, pipeline, plots, store
from kr_utils.theory import adversarial

ch = pipeline.open_chapter("T9", profile, seed=seed, theory=True)  # its wall time recorded at its end
cfg, seed, device, profile = ch.cfg, ch.seed, ch.device, ch.cfg.profile
g = cfg.generators
teacher = checkpoints.load_model(pipeline.teacher(cfg, device), "teacher", device)  # found, or trained as in chapter 1
test_x, test_y = data.test_tensors(cfg.test_subset, cfg.dataset)
glue("t9_latent_steps", f"{g.latent2d_steps:,d}", display=False)
glue("t9_hidden", g.vae_hidden, display=False)
glue("t9_steps", f"{g.theory_steps:,d}", display=False)
glue("t9_batch", g.batch_size, display=False)
glue("t9_n_critic", g.n_critic, display=False)
glue("t9_lambda", f"{g.gp_lambda:g}", display=False)

# %% [markdown]
# ## A 2-D code: the autoencoder against the VAE
#
# The same fully connected networks (784 → {glue:text}`t9_hidden` → {glue:text}`t9_hidden` → 2
# and back), trained for {glue:text}`t9_latent_steps` updates on the real training digits, once
# as an autoencoder ($z = \mu(x)$, reconstruction only) and once as a VAE (eq. T9.1). A 2-D
# code can be drawn: each test digit is a point, coloured by its class.

# %%
runs = adversarial.latent_2d(cfg, device)
codes = {k: adversarial.latent_codes(r.model, test_x) for k, r in runs.items()}
fig, axes = plt.subplots(1, 2, figsize=(10, 4.4))
for ax, (kind, z) in zip(axes, codes.items()):
    sc = ax.scatter(z[:, 0], z[:, 1], c=test_y, cmap="tab10", s=2, alpha=0.6, vmin=-0.5, vmax=9.5)
    ax.set_title({"ae": "autoencoder", "vae": "VAE"}[kind]); ax.set_xlabel("$z_1$"); ax.set_ylabel("$z_2$")
fig.colorbar(sc, ax=axes, ticks=range(10), label="digit")
plots.glue_figure("fig_t9_codes", fig)
spread = {k: float(z.std(0).mean()) for k, z in codes.items()}
glue("t9_ae_spread", f"{spread['ae']:.1f}", display=False)
edge = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.95)))  # the prior grid's outermost quantile
outside = {k: float((z.abs() > edge).any(1).float().mean()) for k, z in codes.items()}
glue("t9_ae_outside", f"{100 * outside['ae']:.0f}%", display=False)
glue("t9_vae_outside", f"{100 * outside['vae']:.0f}%", display=False)
glue("t9_prior_outside", f"{100 * (1 - 0.9 ** 2):.0f}%", display=False)  # the prior's own draws: each axis within 0.9
glue("t9_vae_spread", f"{spread['vae']:.2f}", display=False)

# %% [markdown]
# ```{glue:figure} fig_t9_codes
# The codes $\mu(x)$ of the real test digits. The autoencoder spreads its codes over a range
# of its own choosing (mean standard deviation {glue:text}`t9_ae_spread` per axis); the VAE's KL
# term pulls them towards the prior $\mathcal N(0, I)$ ({glue:text}`t9_vae_spread`).
# ```
#
# Decoding a regular grid of the prior shows what each model generates from noise. The grid's
# points are the Gaussian's quantiles 5%-95% on each axis (`kr_utils.theory.adversarial.latent_grid`);
# the teacher then says how many of the decoded images are digits it is sure of (confidence ≥
# {glue:text}`t9_threshold`, the synthetic set's threshold).

# %%
grid_n = 15
glue("t9_threshold", cfg.synth.threshold, display=False)
fig, axes = plt.subplots(1, 2, figsize=(11, 5.6))
confident, grid_classes = {}, {}
for ax, (kind, r) in zip(axes, runs.items()):
    images = adversarial.latent_grid(r.model, grid_n)
    conf, pred = models.predict_logits(teacher, images, device=device).softmax(1).max(1)
    confident[kind] = float((conf >= cfg.synth.threshold).float().mean())
    counts = torch.bincount(pred[conf >= cfg.synth.threshold].long(), minlength=cfg.num_classes)
    grid_classes[kind] = int((counts >= 0.02 * grid_n ** 2).sum())  # the monitor's rule: 2% of all the images
    tiles = images.view(grid_n, grid_n, 28, 28).permute(0, 2, 1, 3).reshape(grid_n * 28, grid_n * 28)
    ax.imshow((tiles.numpy() + 1) / 2, cmap="gray", vmin=0, vmax=1); ax.axis("off")
    ax.set_title(f"{ {'ae': 'autoencoder', 'vae': 'VAE'}[kind]}: {100 * confident[kind]:.0f}% confident digits")
plots.glue_figure("fig_t9_grid", fig)
glue("t9_ae_confident", f"{100 * confident['ae']:.0f}%", display=False)
pooled = (confident["ae"] + confident["vae"]) / 2  # two shares of grid_n^2 images: a difference within 2 se is none
grid_tol = 2 * np.sqrt(2 * pooled * (1 - pooled) / grid_n ** 2)
glue("t9_vae_confident", f"{100 * confident['vae']:.0f}%", display=False)
glue("t9_ae_grid_classes", grid_classes["ae"], display=False)
glue("t9_vae_grid_classes", grid_classes["vae"], display=False)

# %% [markdown]
# ```{glue:figure} fig_t9_grid
# A {glue:text}`t9_grid_n`×{glue:text}`t9_grid_n` grid of the prior $\mathcal N(0, I)$ decoded by each model
# (the same points for both). The teacher is confident of {glue:text}`t9_ae_confident` of the
# autoencoder's images and {glue:text}`t9_vae_confident` of the VAE's; among those, it finds
# {glue:text}`t9_ae_grid_classes` and {glue:text}`t9_vae_grid_classes` classes (a class counted
# where it holds at least 2% of all the grid's images, the rule of the coverage monitor below).
# ```
#
# A continuous code also interpolates: the straight line between the codes of two test digits,
# decoded (`kr_utils.theory.adversarial.interpolate`).

# %%
glue("t9_grid_n", grid_n, display=False)
pairs = [(int(np.flatnonzero(test_y == a)[0]), int(np.flatnonzero(test_y == b)[0])) for a, b in ((1, 7), (3, 8), (4, 9))]
rows = [adversarial.interpolate(runs["vae"].model, test_x[i], test_x[j], 10) for i, j in pairs]
fig = plots.mosaic(torch.cat(rows), nrow=len(rows), row_labels=["1 → 7", "3 → 8", "4 → 9"], scale=0.7)
plots.glue_figure("fig_t9_interpolation", fig)

# %% [markdown]
# ```{glue:figure} fig_t9_interpolation
# The VAE's decodings along straight lines between the codes of a test 1 and 7, 3 and 8, 4 and 9.
# ```
#
# ## The GAN game, and the discriminator that wins
#
# A GAN trains a generator $G(z)$ against a discriminator $D(x) \in (0, 1)$ that labels real
# images 1 and generated ones 0:
#
# $$\min_G \max_D\; \mathbb E_{x\sim p_\text{data}}\big[\log D(x)\big] + \mathbb E_{z}\big[\log\big(1 - D(G(z))\big)\big].
#   \tag{T9.3}$$
#
# The discriminator's side is a binary cross entropy; the generator's, in the **minimax** form,
# minimises $\log(1 - D(G(z)))$, whose gradient vanishes exactly when the discriminator wins
# ($D(G(z)) \to 0$ early in training, when the fakes are poor). The **non-saturating** loss
# that Goodfellow et al. use in practice maximises $\log D(G(z))$ instead, the same fixed point
# with a strong gradient there (`kr_utils.generators.gan_losses`, `saturating=True` for the
# minimax one):
#
# $$\mathcal L_G = -\mathbb E_z\big[\log D(G(z))\big]. \tag{T9.4}$$
#
# **What the game minimises** (seed `004`). For a fixed generator with image density $p_g$, the
# discriminator's objective in (T9.3) is $\int p(x)\log D(x) + p_g(x)\log(1 - D(x))\,dx$; at
# each $x$, $a\log D + b\log(1 - D)$ is largest at $D = a/(a + b)$, so the best discriminator
# is
#
# $$D^*(x) = \frac{p(x)}{p(x) + p_g(x)}, \tag{T9.5}$$
#
# and putting it back, the value of the game is
# $\mathbb E_p\big[\log\tfrac{p}{p + p_g}\big] + \mathbb E_{p_g}\big[\log\tfrac{p_g}{p + p_g}\big]
# = 2\,\mathrm{JSD}(p\,\|\,p_g) - \log 4$: against a perfect discriminator the generator
# minimises the Jensen-Shannon divergence, zero only at $p_g = p$ ($D^*$ always exists, as the
# density of $p$ with respect to $p + p_g$). The trouble is elsewhere: where $p$ and $p_g$ have
# (nearly) disjoint supports, as thin sets of images do, a discriminator can be perfect, the JSD
# sits at its maximum $\log 2$ and its gradient vanishes, which is the minimax loss's trouble above. The
# non-saturating loss (T9.4) does not minimise the JSD: at $D^*$ it minimises
# $\mathrm{KL}(p_g\,\|\,p) - 2\,\mathrm{JSD}(p\,\|\,p_g)$ (Arjovsky and Bottou 2017, Thm 2.5), whose
# reverse KL punishes fakes where there are no real images far more than missing real modes,
# one account of mode collapse.
#
# **WGAN-GP.** The Wasserstein-1 distance is an optimal-transport cost: the least mean distance
# over couplings $\gamma$ of the two distributions (joint laws whose marginals are $p$ and $p_g$),
#
# $$W_1(p, p_g) = \inf_{\gamma\in\Pi(p, p_g)} \mathbb E_{(x, y)\sim\gamma}\,\|x - y\|, \tag{T9.6}$$
#
# finite and continuous in $p_g$ even where the two do not overlap. The Kantorovich-Rubinstein
# duality turns it into a supremum over 1-Lipschitz functions,
# $W_1 = \sup_{\|f\|_L\le1} \mathbb E_p[f(x)] - \mathbb E_{p_g}[f(y)]$: the Wasserstein GAN
# replaces the discriminator by such a critic $f$, with no sigmoid, and labels $+1$ for real
# images and $-1$ for generated ones in seed `004`'s words. Any 1-Lipschitz critic gives a
# value below $W_1$, but a penalised critic is only near 1-Lipschitz, and its value is a
# minibatch estimate of a critic fitted to those batches: it is not guaranteed to bound $W_1$
# in either direction. Gulrajani et al. keep $f$ near 1-Lipschitz with
# a **gradient penalty** on points $\hat x = \epsilon x + (1-\epsilon)G(z)$,
# $\epsilon \sim U(0, 1)$, on the segments between real and generated images: the optimal
# critic has gradient norm 1 on the lines joining the points that the optimal coupling pairs,
# so that is where the constraint matters; pairs drawn independently, as here, stand in for the
# coupling's:
#
# $$\mathcal L_f = \mathbb E\big[f(G(z))\big] - \mathbb E\big[f(x)\big]
#   + \lambda\, \mathbb E_{\hat x}\big[(\|\nabla_{\hat x} f(\hat x)\|_2 - 1)^2\big],\qquad
#   \mathcal L_G = -\mathbb E\big[f(G(z))\big], \tag{T9.7}$$
#
# with $\lambda$ = {glue:text}`t9_lambda` and {glue:text}`t9_n_critic` critic updates per
# generator update (`kr_utils.generators.wgan_losses`, `kr_utils.generators.gradient_penalty`).
#
# The seed's experiment (a GAN against WGAN-GP on the Dog Breed images) is redone here on MNIST:
# three unconditional generators with the same DCGAN networks (`kr_utils.generators.Generator`,
# `kr_utils.generators.Critic`), the same real training digits and the same
# {glue:text}`t9_steps` generator updates of {glue:text}`t9_batch` images: the minimax GAN, the
# non-saturating GAN and WGAN-GP (which makes {glue:text}`t9_n_critic` times as many critic
# updates, and costs that much more), one training seed each: a demonstration of the three
# behaviours, not a comparison with an interval (chapter 11 compares generators over seeds).
# Along the way, the teacher classifies {glue:text}`t9_coverage_n` images of each generator (the
# same noise each time) and counts the classes among those it is sure of (confidence at least
# {glue:text}`t9_threshold`, the synthetic set's filter; `kr_utils.theory.adversarial.coverage_monitor`):
# **mode collapse** is confident images of few classes. A generator whose images the teacher is
# not sure of covers no class at all: that is a failed run, not a collapse. The images are drawn
# in evaluation mode (BatchNorm's running statistics, as for the final samples), which can lag a
# generator that is still changing fast.

# %%
coverage_n = 500  # images the teacher classifies at each check
glue("t9_coverage_n", coverage_n, display=False)
adv = adversarial.adversarial_runs(cfg, teacher, device, coverage_n=coverage_n)
names = adversarial.ADVERSARIAL_NAMES
fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
for name, r in adv.items():
    h = r.history
    if "d_fake" in h:
        axes[0].plot(h["step"], h["d_fake"], label=f"{names[name]}: D(G(z))")
    axes[2].plot(h["step"], h["entropy"], label=names[name])
axes[0].set_title("discriminator's output on generated images"); axes[0].set_ylim(0, 1); axes[0].legend(fontsize=8)
hw = adv["wgan_gp"].history
axes[1].plot(hw["step"], hw["wasserstein"], label="Wasserstein estimate"); axes[1].plot(hw["step"], hw["gp"], label="penalty")
axes[1].set_title("WGAN-GP critic"); axes[1].legend(fontsize=8)
axes[2].set_title(f"class entropy of the confident images of {coverage_n}"); axes[2].set_ylim(0, 1.05)
axes[2].legend(fontsize=8, loc="center right")
for ax in axes:
    ax.set_xlabel("generator update")
fig.tight_layout()
plots.glue_figure("fig_t9_curves", fig)

# %%
mosaic = torch.cat([r.model.sample(torch.zeros(12, dtype=torch.long), torch.Generator().manual_seed(seed)) for r in adv.values()])
plots.glue_figure("fig_t9_samples", plots.mosaic(mosaic, nrow=len(adv), row_labels=[names[n] for n in adv], scale=0.7))
summary = adversarial.run_summary(adv)
def entropy_text(v):  # undefined where too few images were confident: a failed run, not a collapse
    return "—" if np.isnan(v) else f"{v:.2f}"


frame = pd.DataFrame({names[n]: {"confident images at the end": f"{100 * s['final_confident']:.0f}%",
                                 "classes at the end": int(s["final_classes"]),
                                 "class entropy at the end": entropy_text(s["final_entropy"]),
                                 "lowest class entropy": entropy_text(s["min_entropy"]), "training (s)": f"{s['train_time_s']:.0f}"}
                      for n, s in summary.items()}).T
frame

# %% [markdown]
# ```{glue:figure} fig_t9_curves
# Left: the discriminator's mean output on generated images over training (real images are
# labelled 1, fakes 0). Middle: the WGAN-GP critic's Wasserstein estimate and its gradient
# penalty. Right: the normalised entropy of the teacher's classes among the images of
# {glue:text}`t9_coverage_n` that it is sure of (1: uniform; 0: one class, or none).
# ```
#
# ```{glue:figure} fig_t9_samples
# Twelve images of each generator after {glue:text}`t9_steps` updates (the same noise for all).
# ```

# %%
glue_texts(adversarial.adversarial_texts(summary, hw))
texts, losses = adversarial.latent_texts({k: adversarial.test_reconstruction(r.model, test_x) for k, r in runs.items()},
                                         confident, grid_tol)  # real test digits, z = mu
glue_texts(texts)
store.update_metrics(profile, "theory", {"T9": {"latent_2d": {k: {**losses[k], "confident_prior_grid": confident[k],
                                                                  "code_spread": spread[k]} for k in runs},
                                                "adversarial": {k: {kk: None if isinstance(vv, float) and np.isnan(vv) else vv
                                                                    for kk, vv in v.items()} for k, v in summary.items()}}})
ch.close()

# %% [markdown]
# ## What was measured
#
# **Latent spaces.** With a 2-D code, decoded from the code mean $z = \mu(x)$, the autoencoder
# reconstructs the real test digits at a cross-entropy of {glue:text}`t9_ae_recon` per image
# (summed over pixels), the VAE at {glue:text}`t9_vae_recon` (VAE minus autoencoder, paired over
# the test digits with a 95% interval: {glue:text}`t9_recon_diff`; the VAE's KL term on the test
# digits: {glue:text}`t9_vae_kl`): {glue:text}`t9_recon_verdict`. On grey pixels that
# cross-entropy does not reach 0 even for a perfect reconstruction: its floor is the pixels' own
# entropy.
# Decoded from a grid of that prior, {glue:text}`t9_vae_confident` of the VAE's images are digits
# the teacher is sure of, of {glue:text}`t9_vae_grid_classes` classes, against
# {glue:text}`t9_ae_confident` of the autoencoder's, of {glue:text}`t9_ae_grid_classes` classes.
# {glue:text}`t9_prior_verdict`. The grid shows only the prior's region, and
# {glue:text}`t9_ae_outside` of the autoencoder's test codes lie outside its box, against
# {glue:text}`t9_vae_outside` of the VAE's and {glue:text}`t9_prior_outside` of the prior's own
# draws: nothing in the autoencoder's training says which region to draw from. In two
# dimensions the box sits inside the autoencoder's code cloud, so this test cannot show the
# gap that the prior fills; chapter 11's VAE, with more latent dimensions, is where that shows.
#
# **The GAN game.** At the end, the discriminator's mean output on generated images is
# {glue:text}`t9_gan_minimax_dfake` under the minimax loss, {glue:text}`t9_minimax_verdict` the
# {glue:text}`t9_gan_dfake` of the non-saturating GAN. The teacher is sure of
# {glue:text}`t9_gan_minimax_confident` of the minimax GAN's images and finds
# {glue:text}`t9_gan_minimax_classes` classes among them (class entropy
# {glue:text}`t9_gan_minimax_entropy`): {glue:text}`t9_gan_minimax_state`. Of the non-saturating
# GAN's it is sure of {glue:text}`t9_gan_confident`, with {glue:text}`t9_gan_classes` classes
# ({glue:text}`t9_gan_entropy`; {glue:text}`t9_gan_state`), and of WGAN-GP's
# {glue:text}`t9_wgan_gp_confident`, with {glue:text}`t9_wgan_gp_classes` classes
# ({glue:text}`t9_wgan_gp_entropy`; {glue:text}`t9_wgan_gp_state`). WGAN-GP's Wasserstein estimate {glue:text}`t9_wgan_w_verb`
# from {glue:text}`t9_wgan_w_first` to {glue:text}`t9_wgan_w_last` over training. Its critic
# updates cost time: the same generator updates took {glue:text}`t9_wgan_gp_time` against
# {glue:text}`t9_gan_time` for the non-saturating GAN. Seed `004` saw its WGAN reach a "local
# optimum" in the intermediate epochs and become unstable at the end; here the teacher's share of
# confident WGAN-GP images peaked at {glue:text}`t9_wgan_peak` (it ends at
# {glue:text}`t9_wgan_gp_confident`): {glue:text}`t9_wgan_peak_verdict`.
