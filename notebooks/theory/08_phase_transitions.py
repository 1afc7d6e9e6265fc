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
# # T8. A note on phase transitions
#
# `001` (§6) ends with a question from statistical physics: can the reverse process break a
# symmetry, the way a magnet picks one of two directions as it cools? Following Biroli & Mézard
# (2023), take as data the Curie-Weiss model of $N$ spins $x_i = \pm 1$ at inverse temperature
# $\beta > 1$ (its ferromagnetic phase): every configuration has a magnetisation close to $+m^*$ or
# $-m^*$, the two roots of $m = \tanh(\beta m)$ (`kr_utils.theory.analytic.curie_weiss_magnetisation`).
# Diffuse it with the forward process of chapter T2. For the rescaled total magnetisation
# $\mu = \sum_i x_i/\sqrt N$ of the noisy state, the reverse dynamics follows the potential
#
# $$V_t(\mu) = \frac{\mu^2}{2} - 2\log\cosh\Big[m^*\big(h + \sqrt N\,\mu\,\sqrt{\bar\alpha_t}\big)\Big],
#   \tag{T8.1}$$
#
# (`001` eq. 28; `kr_utils.theory.analytic.curie_weiss_potential`), with $h$ an external field. Its two
# limits:
#
# - **short times** ($\bar\alpha_t \approx 1$): $\log\cosh a \approx |a|$ and
#   $V \approx \mu^2/2 - 2m^*\sqrt N\sqrt{\bar\alpha_t}\,|\mu|$, two wells, one per phase;
# - **long times** ($\bar\alpha_t \to 0$): the cosh term flattens and $V$ is a single quadratic well,
#   the standard normal of pure noise.
#
# At $h = 0$, $V_t''(0) = 1 - 2m^{*2}N\bar\alpha_t$, so the two wells appear when
# $\bar\alpha_t > 1/(2m^{*2}N)$ (`kr_utils.theory.analytic.symmetry_breaking_alpha_bar`): a *speciation*
# time, $\bar\alpha_t \sim 1/N$, at which a reverse trajectory commits to one of the two phases.
# Before it (in the reverse direction) nothing distinguishes them; after it the choice is made.
# For digits the same happens with classes: the trajectory figure of pipeline chapter 3 shows
# the class becoming visible only at an intermediate $t$.

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
beta = 1.5      # inverse temperature of the Curie-Weiss data (> 1: two phases)
n_spins = 100   # N
h = 0.0         # external field

# %%
import time
import matplotlib.pyplot as plt
import numpy as np
from kr_utils.live import glue
import kr_utils
from kr_utils import diffusion, plots, store
from kr_utils.theory import analytic

cfg = kr_utils.get_config(profile)
profile = cfg.profile
t_start = time.perf_counter()
ab = diffusion.alphas_cumprod(diffusion.linear_beta_schedule(1000)).numpy()
m_star = analytic.curie_weiss_magnetisation(beta)
ab_c = analytic.symmetry_breaking_alpha_bar(m_star, n_spins)
t_c = int(np.argmax(ab < ab_c))  # first step (0-based) where alpha_bar falls below the threshold
width = 2 * m_star * np.sqrt(n_spins) + 5  # the short-time wells sit at +-2 m* sqrt(N)
mu = np.linspace(-width, width, 4001)
minima = np.array([analytic.count_minima(analytic.curie_weiss_potential(mu, a, m_star, n_spins, h)) for a in ab])
t_numeric = int(np.argmax(minima < 2))
glue("t8_m_star", f"{m_star:.3f}", display=False)
glue("t8_t_c", t_c, display=False)
glue("t8_t_numeric", t_numeric, display=False)
glue("t8_ab_c", f"{ab_c:.4f}", display=False)

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
for t in (0, 200, 400, t_c - 20, t_c + 20, 999):
    v = analytic.curie_weiss_potential(mu, ab[t], m_star, n_spins, h)
    axes[0].plot(mu, v - v.min(), label=f"t = {t}")
axes[0].set_ylim(0, 60); axes[0].set_xlabel(r"$\mu$"); axes[0].set_ylabel(r"$V_t(\mu) - \min V_t$")
axes[0].legend(fontsize=8); axes[0].set_title("eq. (T8.1) along the chain", fontsize=9)
t_short, t_long = 100, 999
for t, style in ((t_short, "-"), (t_long, "--")):
    exact = analytic.curie_weiss_potential(mu, ab[t], m_star, n_spins, h)
    approx = (0.5 * mu ** 2 - 2 * m_star * np.sqrt(n_spins * ab[t]) * np.abs(mu) if t == t_short
              else 0.5 * (mu - m_star * np.tanh(h * m_star) * np.sqrt(n_spins * ab[t])) ** 2)
    axes[1].plot(mu, exact - exact.min(), "k" + style, label=f"exact, t = {t}")
    axes[1].plot(mu, approx - approx.min(), "tab:red", ls=style, label=f"{'short' if t == t_short else 'long'}-time limit")
axes[1].set_ylim(0, 60); axes[1].set_xlabel(r"$\mu$"); axes[1].legend(fontsize=8)
axes[1].set_title("the two limits (seed 001, Fig. 11)", fontsize=9)
fig.tight_layout()
plots.glue_figure("fig_t8_potential", fig)

# %% [markdown]
# ```{glue:figure} fig_t8_potential
# Left: the potential (T8.1) at several steps of the linear schedule, $N = 100$, $\beta = 1.5$,
# $h = 0$. Right: the exact potential against its short- and long-time approximations.
# ```
#
# With $\beta = 1.5$, $m^* =$ {glue:text}`t8_m_star`. The threshold
# $\bar\alpha_t = 1/(2m^{*2}N) =$ {glue:text}`t8_ab_c` is crossed at $t =$ {glue:text}`t8_t_c` of
# the linear schedule; counting the minima of the computed potential step by step, the double
# well disappears at $t =$ {glue:text}`t8_t_numeric`. Larger $N$ moves the threshold to a
# smaller $\bar\alpha_t$, that is to a larger $t$ of the forward process. The reverse process
# runs from $t = T$ down to 0, so it meets that $t$ sooner: in high dimension the symmetry
# breaks early in the reverse run, while the noise is still large, and the rest of the run
# refines a sample on the side already chosen.

# %%
store.update_metrics(profile, "theory", {"T8": {"m_star": m_star, "alpha_bar_c": ab_c, "t_c_analytic": t_c,
                                                    "t_c_numeric": t_numeric}})
store.update_metrics(profile, "theory_wall_time_s", {"T8": round(time.perf_counter() - t_start, 1)})

# %% [markdown]
# ## What was measured
#
# With $\beta = 1.5$ the magnetisation is $m^* =$ {glue:text}`t8_m_star`; the threshold
# $\bar\alpha_t =$ {glue:text}`t8_ab_c` falls at $t =$ {glue:text}`t8_t_c` of the linear
# schedule, and counting the minima of the computed potential the double well disappears at
# $t =$ {glue:text}`t8_t_numeric`.
