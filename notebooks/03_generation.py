# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Generating digits: samplers, clipping and guidance
#
# **Classifier-free guidance.** At every step the network is evaluated with the class $c$ and
# with the "no class" token, in one batched pass, and the two predictions are mixed
# (`kr_utils.diffusion.guided_eps`):
#
# $$\epsilon_w = \epsilon_\theta(x_t,t,\varnothing) + w\,\big(\epsilon_\theta(x_t,t,c)-\epsilon_\theta(x_t,t,\varnothing)\big) \tag{5}$$
#
# $w=0$ ignores the class, $w=1$ is the plain conditional model, $w>1$ exaggerates the class.
# The thesis' code writes $(1+w')\epsilon_c - w'\epsilon_\varnothing$, so its `guide_w = 0.5` is
# $w = 1.5$ here.
#
# **The ancestral sampler** of the thesis (`kr_utils.diffusion.AncestralSampler`) predicts
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\epsilon_w)/\sqrt{\bar\alpha_t}$, optionally clips it to
# $[-1,1]$, and draws $x_{t-1}$ from the Gaussian posterior
#
# $$\tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t}\hat x_0 +
#   \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t}x_t,\qquad
#   \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t \tag{6}$$
#
# (`AncestralSampler.posterior`), 1000 network passes per digit. Without clipping, eq. (6) is
# exactly the thesis' $\mu_\theta = (x_t - \beta_t\epsilon/\sqrt{1-\bar\alpha_t})/\sqrt{\alpha_t}$.
#
# **DDIM** (`kr_utils.diffusion.DDIMSampler`, $\eta=0$) jumps between a few of the 1000 steps,
# deterministically:
#
# $$x_{t'} = \sqrt{\bar\alpha_{t'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{t'}}\,\epsilon_w,\quad t' < t \tag{7}$$
#
# Both samplers are objects with `set_timesteps` and `step`, like diffusers' schedulers, and
# a unit test checks them against diffusers' `DDPMScheduler` and `DDIMScheduler`.

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion"
    pass

# %% tags=["parameters"]
profile = None  # "smoke", "cpu" or "gpu"; None reads $KR_PROFILE, else "cpu"
seed = None     # overrides the profile's seed

# %%
import time
import torch
from myst_nb import glue
import kr_utils
from kr_utils import artifacts, data, diffusion, plots, synth

cfg = kr_utils.get_config(profile)
seed = cfg["seed"] if seed is None else seed
dcfg, gcfg, profile = cfg["diffusion"], cfg["generation"], cfg["profile"]
out = artifacts.artifact_dir(profile)
device = artifacts.device()
t_start = time.perf_counter()
unet = artifacts.load_model(out / "diffusion.pt", "diffusion", device)
teacher = artifacts.load_model(out / "teacher.pt", "teacher", device)
labels = torch.arange(10).repeat_interleave(gcfg["demo_per_class"])
schedule = dict(T=dcfg["T"], beta_start=dcfg["beta_start"], beta_end=dcfg["beta_end"])


KEEP = (999, 800, 600, 400, 300, 200, 100, 50, 0)  # timesteps kept for the trajectory figure
trajectories = {}


def run(sampler, w, labels=labels, name=""):
    """Generate, then report the teacher's mean confidence and agreement with the request."""
    t0 = time.perf_counter()
    x, trajectories[name] = diffusion.generate(unet, sampler, labels, w, torch.Generator().manual_seed(seed),
                                               progress=True, return_trajectory=KEEP)
    dt = time.perf_counter() - t0
    probs = synth.label_with_teacher(teacher, data.to_uint8(x), device).softmax(1)
    conf, pred = probs.max(1)
    return x, {"conf": conf.mean().item(), "agree": (pred == labels).float().mean().item(),
               "accept": (conf >= cfg["synth"]["threshold"]).float().mean().item(), "samples_per_s": len(x) / dt}


# %% [markdown]
# ## Clipping $\hat x_0$ with the thesis' ancestral sampler
# Same noise, same guidance weight, 1000 steps; left without clipping, right with it.

# %%
results = {}
w = gcfg["guidance_w"]
for clip in (False, True):
    s = diffusion.build_sampler("ancestral", **schedule, clip_x0=clip, noise_scale=gcfg["noise_scale"])
    results[f"ancestral, clip={clip}"] = run(s, w, name=f"clip={clip}")
fig = plots.mosaic(torch.cat([results["ancestral, clip=False"][0], results["ancestral, clip=True"][0]]),
                   nrow=2 * gcfg["demo_per_class"],
                   row_labels=["no clip"] * gcfg["demo_per_class"] + ["clip"] * gcfg["demo_per_class"])
plots.glue_figure("fig_clipping", fig)

# %% [markdown]
# ```{glue:figure} fig_clipping
# Ancestral sampling (1000 steps) without (top rows) and with (bottom rows) clipping of
# $\hat x_0$ to $[-1, 1]$; columns are digits 0-9.
# ```
#
# ## The fast sampler and the guidance weight
# DDIM with the profile's number of steps, for four guidance weights (one row each).

# %%
ddim = diffusion.build_sampler("ddim", **schedule, clip_x0=gcfg["clip_x0"], num_steps=gcfg["num_steps"])
rows = []
for w_ in (0.0, 1.0, 2.0, 4.0):
    x, r = run(ddim, w_, torch.arange(10))
    results[f"ddim {gcfg['num_steps']} steps, w={w_}"] = (x, r)
    rows.append(x)
fig = plots.mosaic(torch.cat(rows), nrow=4, row_labels=["w=0", "w=1", "w=2", "w=4"])
plots.glue_figure("fig_guidance", fig)
x, r = run(ddim, w)
results[f"ddim {gcfg['num_steps']} steps, w={w} (default)"] = (x, r)

# %% [markdown]
# ```{glue:figure} fig_guidance
# DDIM samples for digits 0-9 with guidance weight $w = 0$ (unconditional: the requested class
# is ignored), 1, 2 and 4.
# ```
#
# ## What the teacher thinks of them
# For each setting: the teacher's mean confidence (max softmax), how often its label agrees with
# the requested class, the fraction that would pass the 0.9 threshold of the synthetic set, and
# the speed of generation on this machine.

# %%
import pandas as pd
table = pd.DataFrame({k: v[1] for k, v in results.items()}).T
table.columns = ["teacher confidence", "agrees with request", "accepted at 0.9", "samples/s"]
glue("ddim_speedup", f"{table.iloc[-1]['samples/s'] / table.iloc[1]['samples/s']:.0f}", display=False)
table.style.format("{:.3f}")

# %% [markdown]
# The default fast sampler is {glue:text}`ddim_speedup` times faster per digit than the
# 1000-step ancestral sampler on this machine.
#
# ## A trajectory
# The state $x_t$ of one digit of each class along the clipped ancestral chain above.

# %%
traj = trajectories["clip=True"]
first = torch.arange(10) * gcfg["demo_per_class"]  # one digit per class
frames = torch.stack([traj[t][first] for t in KEEP], 1).reshape(-1, 1, 28, 28)
fig = plots.mosaic(frames, nrow=10, titles=[f"t={t}" for t in KEEP] + [""] * (len(frames) - len(KEEP)))
plots.glue_figure("fig_trajectory", fig)

# %% [markdown]
# ```{glue:figure} fig_trajectory
# From noise ($t = 999$) to a digit ($t = 0$), one row per class.
# ```

# %%
artifacts.update_metrics(profile, "generation", {k: v[1] for k, v in results.items()})
artifacts.update_metrics(profile, "wall_time_s", {"03_generation": round(time.perf_counter() - t_start, 1)})
