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
from kr_utils.live import glue
from kr_utils import config, evaluate, pipeline, plots, replication, store

ch = pipeline.open_chapter("11_other_generators", profile, seed=seed)  # its cost recorded at its end
cfg, seed, device = ch.cfg, ch.seed, ch.device
g, st = cfg.generators, cfg.student
glue("c11_n_critic", g.n_critic, display=False)
glue("c11_threshold", cfg.synth.threshold, display=False)
glue("c11_per_class", f"{g.per_class:,d}", display=False)
glue("c11_recipe", f"{st.arch}, {config.LABEL_NAMES[st.recipe().labels]}, "
     f"{evaluate.counted(replication.student_epochs(cfg), 'epoch')}: as many updates as the main student's "
     f"{evaluate.counted(st.epochs, 'epoch')} on chapter 4's set", display=False)
pairs = replication.seed_pairs(cfg)
glue("c11_seed_design", (f"Each generator is trained {evaluate.counted(len(pairs), 'time')}, from seeds "
     f"{', '.join(str(s) for s, _ in pairs)}; each training draws its own set, which trains one student of the same "
     "seed, so a row's spread covers the generator's seed, its set and the student's. The diffusion model's row has "
     "one U-Net, chapter 2's (its training costs too much to repeat here): its seeds cut chapter 4's set at random, "
     "so its spread covers the set's draw and the student only." if len(pairs) > 1 else
     f"Each generator is trained once (seed {pairs[0][0]}); its set trains the student over "
     f"{evaluate.counted(len(st.seeds), 'seed')}, so a row's spread covers the student's seed only."), display=False)
glue("c11_steps", ", ".join(f"{replication.NAMES[k]} {replication.steps(cfg, k):,d}" for k in replication.KINDS), display=False)
images = cfg.diffusion.steps * cfg.diffusion.batch_size
glue("c11_budget", (f"every generator's training reads as many real training images as the U-Net's did, {images:,d} "
     f"({cfg.diffusion.steps:,d} updates of {cfg.diffusion.batch_size}; WGAN-GP's critic reads {g.n_critic} batches "
     "per generator update, so WGAN-GP makes that many times fewer updates): an equal data budget, not an equal time"
     if g.equal_images else "the updates are this profile's own per generator, not an equal budget"), display=False)
glue("c11_lr_note", (f"WGAN-GP's learning rate, {g.wgan_lr:g} against {g.gan_lr:g}, the GAN's (Gulrajani et al. use a "
     "lower one), which drew the requested class less often in as many updates (judged on the teacher's agreement "
     "with the requested class, never on the test set; the comment of the cpu profile's `generators` section in "
     "`kr_utils.config` records both runs)") if g.wgan_lr != g.gan_lr else
     f"none at this profile, whose GAN and WGAN-GP share the learning rate {g.gan_lr:g}", display=False)

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
best = max(replication.KINDS, key=lambda k: rows[k]["val_real_accuracy"]["mean"])  # chosen on real validation digits
for name, r in rows.items():
    glue(f"c11_{name}_acc", r["accuracy_text"], display=False)
    glue(f"c11_{name}_accept", f"{100 * r['acceptance_rate']:.1f}%", display=False)
    glue(f"c11_{name}_agree", f"{100 * r['agreement']:.1f}%", display=False)
    glue(f"c11_{name}_ips", f"{r['images_per_s']:,.0f}", display=False)
    glue(f"c11_{name}_train", "an unrecorded time" if r["train_time_s"] is None else f"{r['train_time_s']:.0f} s", display=False)
    if name != "ddpm":
        lead = r["ddpm_lead_points"]
        ci = "" if lead["ci95"] is None else f" (95% interval [{lead['ci95'][0]:.2f}, {lead['ci95'][1]:.2f}], {lead['covers']})"
        glue(f"c11_{name}_lead", f"{lead['estimate']:.2f} points{ci}", display=False)
glue("c11_best", replication.NAMES[best], display=False)
glue("c11_best_lead_verdict", {"higher": "ahead of it", "lower": "behind it",
                               "no measurable difference": "not measurably different from it",
                               "no interval": "without an interval against it"}[rows[best]["ddpm_lead_points"]["verdict"]],
     display=False)
store.update_metrics(cfg.run, "other_generators", {
    "per_class": g.per_class, "seed_pairs": [[gs, list(ss)] for gs, ss in replication.seed_pairs(cfg)],
    "recipe": st.recipe(epochs=replication.student_epochs(cfg)).as_dict(), "steps": {k: replication.steps(cfg, k) for k in replication.KINDS},
    "rows": {k: {kk: vv for kk, vv in r.items() if kk != "label"} for k, r in rows.items()},
    "memorisation_floor": result["memorisation_floor"]})
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
