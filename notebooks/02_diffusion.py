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
# # 2. A class-conditional diffusion model of MNIST
#
# The generator is a DDPM (Ho et al. 2020) with a linear schedule, $T = 1000$, $\beta_t$ from
# $10^{-4}$ to $0.02$: the thesis' text's. Its code's conditional model used the same $\beta$
# range over $n_T = 400$ steps, and trained on digits mapped twice to $[-3, 1]$ instead of
# $[-1, 1]$ (`kr_utils.thesis.RECIPE`; chapter 7 measures what that range does). A U-Net $\epsilon_\theta(x_t, t, c)$ learns to predict the
# noise that was added to a real digit of class $c$:
#
# $$x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\epsilon,\qquad
#   \bar\alpha_t = \prod_{s\le t}(1-\beta_s) \tag{3}$$
#
# $$\mathcal L_\text{simple} = \mathbb E_{x_0,c,\epsilon,t}\,\|\epsilon - \epsilon_\theta(x_t,t,c)\|^2 \tag{4}$$
#
# Eq. (3) is `kr_utils.diffusion.NoiseSchedule.q_sample` (with `linear_beta_schedule` and `alphas_cumprod`),
# eq. (4) is `kr_utils.diffusion.diffusion_loss`. As in the thesis, the class is replaced by a
# "no class" token with probability {glue:text}`p_uncond`, so the same network also learns the unconditional
# $\epsilon_\theta(x_t,t,\varnothing)$ needed for classifier-free guidance (chapter 3).
#
# The thesis' U-Net has 26M parameters. Our `kr_utils.models.ConditionalUNet` is sized per profile (a few hundred thousand parameters
# at the `cpu` profile) and we train it for a fixed number of steps with an exponential moving
# average (EMA) of the weights, which is what we sample from.

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
dataset = None  # "mnist" (default) or "fashion-mnist"; None reads $KR_DATASET
seed = None     # overrides the profile's seed
steps = None    # overrides diffusion.steps (training iterations)

# %% tags=["hide-input"]
import torch
from kr_utils.live import glue
from kr_utils import checkpoints, diffusion, evaluate, models, pipeline, plots, store

ch = pipeline.open_chapter("02_diffusion", profile, dataset=dataset, seed=seed)  # its cost recorded at its end
cfg, seed, device, out, profile = ch.cfg, ch.seed, ch.device, ch.out, ch.cfg.run
if steps is not None:  # a shorter run, its milestones kept inside it
    cfg = cfg.replace(diffusion__steps=steps,
                      diffusion__milestones=tuple(m for m in cfg.diffusion.milestones if m < steps) + (steps,))
dcfg = cfg.diffusion

# %% tags=["hide-input"]
unet = models.ConditionalUNet(base=dcfg.base, mults=dcfg.mults, attention=dcfg.attention)
n_params = models.count_parameters(unet)
glue("unet_params", f"{n_params:,d}", display=False)
glue("diffusion_steps", evaluate.counted(dcfg.steps, "step"), display=False)
glue("p_uncond", dcfg.p_uncond, display=False)
glue("diffusion_batch", dcfg.batch_size, display=False)
glue("diffusion_milestones", ", ".join(f"{m:,d}" for m in dcfg.milestones), display=False)

# %%
# NBVAL_CHECK_OUTPUT
print(f"U-Net: base width {dcfg.base}, widths {[dcfg.base * m for m in dcfg.mults]}, "
      f"{n_params:,d} parameters")

# %% [markdown]
# The U-Net has {glue:text}`unet_params` parameters. It is trained for
# {glue:text}`diffusion_steps` of {glue:text}`diffusion_batch` real training digits, the
# teacher's: chapter 1's validation digits held out (`kr_utils.data.fit_digits`), so the choices
# later chapters make on them are made on digits the generator never saw (AdamW, warm-up then cosine learning rate,
# gradient clipping at 1). A copy of the EMA weights
# is kept at milestone steps so that later chapters can study how the synthetic data degrade
# with an under-trained generator.

# %%
fit = pipeline.train_diffusion_model(cfg, device, seed)  # reused when artifacts/<profile>/diffusion.pt is current
ema, losses, train_time = fit["model"], fit["losses"], fit["train_time_s"]

# %%
fig = plots.loss_curve(losses)
plots.glue_figure("fig_diffusion_loss", fig)
final_loss = sum(losses[-100:]) / len(losses[-100:])
glue("diffusion_final_loss", f"{final_loss:.4f}", display=False)

# %% [markdown]
# ```{glue:figure} fig_diffusion_loss
# $\mathcal L_\text{simple}$ per training step (log scale). The mean over the last 100 steps is
# {glue:text}`diffusion_final_loss`; the thesis' curve settles between 0.045 and 0.050 after 100
# epochs with its larger U-Net.
# ```
#
# ## Samples at each milestone
# The thesis saved its U-Net after epochs 1, 3, 7, 25, 45, 65, 85 and 100 of 100 (Fig. 12),
# and studied students of its checkpoints after epochs 8, 17, 35, 50, 65, 80 and 100 (§4.4).
# This profile keeps the EMA weights at the same fractions of its training, both lists, steps
# {glue:text}`diffusion_milestones`. The checkpoints feed the degradation study of chapter 6. One row per milestone
# checkpoint, digits 0 to 9 from left to right, drawn with the default
# fast sampler of the profile (chapter 3) and the same initial noise for every row, so the rows
# differ only by the training the generator received.

# %%
gcfg = cfg.sampler
sampler = diffusion.build_sampler(gcfg, diffusion.NoiseSchedule.from_config(dcfg))  # the profile's sampler (chapter 3)
rows = []
for step in dcfg.milestones:
    m = checkpoints.load_model(out / f"diffusion_step{step}.pt", "diffusion", device)
    g = torch.Generator().manual_seed(seed)
    rows.append(diffusion.generate(m, sampler, torch.arange(cfg.num_classes), gcfg.guidance_w, g))
fig = plots.mosaic(torch.cat(rows), nrow=len(rows), row_labels=[f"step {s}" for s in dcfg.milestones])
plots.glue_figure("fig_milestones", fig)

# %% [markdown]
# ```{glue:figure} fig_milestones
# Digits 0-9 generated by the EMA weights at each milestone (rows, top to bottom).
# ```

# %% tags=["remove-cell"]
store.update_metrics(profile, "diffusion", {
    "parameters": n_params, "steps": dcfg.steps, "batch_size": dcfg.batch_size,
    "final_loss": final_loss, "reused_checkpoint": fit["reused"],
    "train_time_s": None if train_time is None else round(train_time, 1)})  # when reused: its stored time
ch.close()

# %% [markdown]
# ## What was measured
#
# A U-Net of {glue:text}`unet_params` parameters, trained for {glue:text}`diffusion_steps`,
# ends with a loss of {glue:text}`diffusion_final_loss` over its last steps. Its EMA weights were
# kept at steps {glue:text}`diffusion_milestones` for the degradation study of chapter 6, and the
# final ones generate the synthetic set.
