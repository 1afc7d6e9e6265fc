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
# # 11. Other generators: a VAE, a GAN and WGAN-GP in place of the diffusion model
#
# The thesis chose a diffusion model to replicate the teacher's knowledge; theory chapter T9
# introduced the generators that came before it. This chapter asks whether the choice matters:
# each of three class-conditional generators of `kr_utils.generators` takes the diffusion
# model's place in the same pipeline, and nothing else changes:
#
# - **conditional VAE** (`kr_utils.generators.VAE`): the label joins the encoder's and the decoder's input;
# - **conditional GAN**: a DCGAN generator whose noise is scaled by a class embedding, against a
#   projection discriminator (Miyato & Koyama), non-saturating loss (eq. T9.4);
# - **conditional WGAN-GP**: the same networks, the critic's loss with gradient penalty (eq. T9.7),
#   {glue:text}`c11_n_critic` critic updates per generator update.
#
# Each learns the same real training images as the U-Net; its images pass the same teacher and
# the same confidence filter (≥ {glue:text}`c11_threshold`, labelled by the teacher) until
# {glue:text}`c11_per_class` per class are kept; the diffusion model's set of chapter 4 is cut to
# the same size at random; every set trains the main student's recipe ({glue:text}`c11_recipe`),
# scored on the real test set (`kr_utils.replication.study`). {glue:text}`c11_seed_design`

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
from kr_utils import pipeline, plots, replication, store

ch = pipeline.open_chapter("11_other_generators", profile, seed=seed)  # its cost recorded at its end
cfg, seed, device = ch.cfg, ch.seed, ch.device
g = cfg.generators
glue_texts(replication.design_texts(cfg))  # the design in the prose's words

# %% [markdown]
# ## Training the generators and drawing their sets
#
# Generator updates of {glue:text}`c11_batch` images: {glue:text}`c11_steps`
# (`kr_utils.replication.steps`; WGAN-GP's updates each hide {glue:text}`c11_n_critic` critic
# updates). Budget: {glue:text}`c11_budget`.
# The diffusion model is chapter 2's, found on disk or trained again.

# %%
glue("c11_batch", g.batch_size, display=False)
glue("c11_wgan_lr", f"{g.wgan_lr:g}", display=False)
glue("c11_gan_lr", f"{g.gan_lr:g}", display=False)
result = replication.study(cfg, device)
rows, sets = result["rows"], result["sets"]
classes = list(cfg.data.class_names)
rng = np.random.default_rng(seed)  # six kept images per class at random
pick = lambda s: np.concatenate([rng.choice(np.flatnonzero(s["labels"] == c), 6, replace=False)  # noqa: E731
                                 for c in range(cfg.num_classes)])
fig = plots.mosaic_panels({replication.NAMES[n]: s["images"][pick(s)] for n, s in sets.items()}, row_labels=classes)
plots.glue_figure("fig_c11_mosaics", fig)

# %% [markdown]
# ```{glue:figure} fig_c11_mosaics
# Six kept images per class of each set, drawn at random, labelled by the teacher (the class on the left).
# ```
#

# %%
hist = result["histories"]
fig, axes = plt.subplots(1, 3, figsize=(13, 3.2))
axes[0].plot(hist["vae"]["step"], hist["vae"]["loss"]); axes[0].set_title("conditional VAE: negative ELBO")
axes[1].plot(hist["gan"]["step"], hist["gan"]["d_real"], label="D(real)"); axes[1].plot(hist["gan"]["step"], hist["gan"]["d_fake"], label="D(G(z))")
axes[1].set_title("conditional GAN: discriminator"); axes[1].legend(fontsize=8); axes[1].set_ylim(0, 1)
axes[2].plot(hist["wgan_gp"]["step"], hist["wgan_gp"]["wasserstein"], label="Wasserstein estimate")
axes[2].plot(hist["wgan_gp"]["step"], hist["wgan_gp"]["gp"], label="penalty"); axes[2].legend(fontsize=8)
axes[2].set_title("conditional WGAN-GP: critic")
for ax in axes:
    ax.set_xlabel("generator update")
fig.tight_layout()
plots.glue_figure("fig_c11_curves", fig)

# %% [markdown]
# ```{glue:figure} fig_c11_curves
# The three generators' training curves (means over stretches of updates; the first training seed of each).
# ```
#
# ## The students
#
# The table: each set's student accuracy on the real test set (the mean over seeds, its 95%
# interval over the seeds and the test digits, then each seed), the share of generated images the teacher accepted, the
# generator's training time and images per second (drawing and teacher labelling together, on
# this machine), and chapter 9's distribution measures of each set against real test images in
# the teacher's feature space ({glue:text}`c11_fd_size` images each: lower Fréchet distance,
# higher precision and recall are closer to real), and its memorisation measure in pixels
# (`kr_utils.replication.set_memorisation`): the share of images much closer to one training image
# than to any other ({glue:text}`c11_floor_near` of as many real test images, which no generator saw;
# exact copies in all the sets: {glue:text}`c11_exact`).

# %%
glue("c11_fd_size", f"{rows['ddpm']['size']:,d}" if rows['ddpm']['size'] < cfg.evaluation.fd_size else f"{cfg.evaluation.fd_size:,d}",
     display=False)
glue("c11_floor_near", f"{100 * result['memorisation_floor']['near_copies']:.2f}%", display=False)
glue("c11_exact", sum(r["memorisation"]["exact"] for r in rows.values()), display=False)
frame = replication.table(rows)
frame

# %%
fig = plots.seed_bars({r["label"]: [100 * v for v in r["accuracy"]["values"]] for r in rows.values()},
                      xlabel="real-test accuracy of the student (%)")
plots.glue_figure("fig_c11_seeds", fig)

# %% [markdown]
# ```{glue:figure} fig_c11_seeds
# Each student seed's real-test accuracy, per generator.
# ```

# %%
glue_texts(replication.row_texts(rows))
store.update_metrics(cfg.run, "other_generators", replication.metrics(cfg, result))
ch.close()

# %% [markdown]
# ## What was measured
#
# On sets of {glue:text}`c11_per_class` images per class, the diffusion model's students reach
# {glue:text}`c11_ddpm_acc`; WGAN-GP's {glue:text}`c11_wgan_gp_acc`, the GAN's
# {glue:text}`c11_gan_acc` and the VAE's {glue:text}`c11_vae_acc`. The diffusion model's lead in
# points, with an interval over the runs and the test digits
# (`kr_utils.comparison.compare_runs`, unpaired: each generator's students learn from its own
# set; the diffusion side comes from one U-Net, so its share of the interval leaves out the
# U-Net's own training variance and is too narrow): {glue:text}`c11_wgan_gp_lead` over WGAN-GP,
# {glue:text}`c11_gan_lead` over the GAN, {glue:text}`c11_vae_lead` over the VAE. The best of the
# three on the real validation digits is the {glue:text}`c11_best`, and the diffusion model is
# {glue:text}`c11_best_lead_verdict`.
#
# The teacher accepted {glue:text}`c11_ddpm_accept` of the diffusion model's images,
# {glue:text}`c11_wgan_gp_accept` of WGAN-GP's, {glue:text}`c11_gan_accept` of the GAN's and
# {glue:text}`c11_vae_accept` of the VAE's. Among the images it kept, its label is the class
# that was asked for in {glue:text}`c11_ddpm_agree` of the diffusion model's,
# {glue:text}`c11_wgan_gp_agree` of WGAN-GP's, {glue:text}`c11_gan_agree` of the GAN's and
# {glue:text}`c11_vae_agree` of the VAE's: where they differ, the teacher is sure of an image
# that is not quite the digit asked for, and the student learns the teacher's label. The one-pass generators are far faster to sample:
# {glue:text}`c11_gan_ips` images per second for the GAN, {glue:text}`c11_vae_ips` for the VAE,
# against {glue:text}`c11_ddpm_ips` for the diffusion model's sampler.
#
# Budget: {glue:text}`c11_budget`. In time on this machine (a mean over the generator's seeds),
# the U-Net trained for {glue:text}`c11_ddpm_train`, the VAE for {glue:text}`c11_vae_train`, the
# GAN for {glue:text}`c11_gan_train` and WGAN-GP for {glue:text}`c11_wgan_gp_train`. The tuning
# effort is not equal, and the comparison leans towards the diffusion model: its guidance weight
# and sampler were chosen on the real validation digits (chapters 3 and 4), and the student's
# recipe and the confidence threshold were settled on sets of the diffusion model; the other
# generators keep their published settings (DCGAN's for the GAN), with one change tried:
# {glue:text}`c11_lr_note`.
#
# For orientation, Lesort et al. (2019, "Generative models from the perspective of continual
# learning") trained MNIST classifiers on the samples of several conditional generators alone,
# and found the GANs and VAEs of their study behind classifiers trained on real digits; their
# settings differ from these, so their numbers are not set beside ours.
