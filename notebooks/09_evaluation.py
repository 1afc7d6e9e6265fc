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
# # 9. What the copy is worth
#
# The chapters before this one judge the copy by one number, the student's accuracy on the real test set. A
# reader who wants to copy a classifier, or to argue that a synthetic set protects the real
# digits, needs more; and the thesis makes claims it never measures. This chapter measures,
# on the artifacts of chapters 1-6 of the same profile:
#
# 1. **Fidelity**: how often the student gives the teacher's answer, and how far its
#    predictive distribution is from the teacher's, on real test digits and on inputs neither
#    has seen the like of (Fashion-MNIST clothes, pixel noise).
# 2. **Calibration**: whether the student's confidence means what the teacher's means.
# 3. **Memorisation**: whether the synthetic digits are copies of training digits, judged
#    against the real test digits, which are certainly not.
# 4. **Distribution**: how close the synthetic digits are to the real ones in the teacher's
#    features, and whether that predicts the student's accuracy.
# 5. **The thesis' open claims**: the confidence filter, the size of the synthetic set, and the
#    thesis' own sampling recipe, each feeding students.
#
# The measures are functions of tensors in `kr_utils.audit`, each tested on a case with a known
# answer; the studies around them are in `kr_utils.claims`. The real test set only scores: no
# model, setting or run is chosen on it. One reference level is read from it: the calibrated
# copy flag's threshold is the share of unseen test digits it flags (the memorisation section).

# %% tags=["remove-cell"]
import sys
if "google.colab" in sys.modules:
    # %pip install -q "kr_utils @ git+https://github.com/knowledge-replication/kr-diffusion@main"
    import kr_utils  # noqa: F401  (an install that failed stops here, under pip's message)

# %% tags=["parameters"]
profile = None  # "smoke", "cpu", "gpu", "t4" or "auto"; None reads $KR_PROFILE, else "auto" (picks by device)
dataset = None  # "mnist" (default) or "fashion-mnist"; None reads $KR_DATASET
seed = None     # overrides the profile's seed (noise images, subsets, the students' seeds come from the profile)

# %% tags=["hide-input"]
import numpy as np
import pandas as pd
import torch
from kr_utils.live import glue, glue_texts
from kr_utils import audit, checkpoints, claims, config, data, diffusion, evaluate, pipeline, plots, store, studies, thesis

ch = pipeline.open_chapter("09_evaluation", profile, dataset=dataset, seed=seed)  # its cost recorded at its end
cfg, seed, device, profile = ch.cfg, ch.seed, ch.device, ch.cfg.run
ev = cfg.evaluation

# %%
t_path = pipeline.teacher(cfg, device, seed)  # found, or built first (chapter 1)
teacher = checkpoints.load_model(t_path, "teacher", device)
split = pipeline.student_split(cfg, device, seed)  # the synthetic set, found or built (chapters 2, 4)
stored, (x_te, y_te) = split["stored"], split["test"]
grid = pipeline.student_grid(cfg, split, device)  # chapter 5's students, found or trained
main_cell, runs = grid.main_cell, grid.cells
main_id = "/".join(main_cell)

# %% [markdown]
# ## 1. Fidelity: does the student answer as the teacher does?
#
# For each student of chapter 5's grid, the **agreement** is the fraction of inputs on which
# its argmax is the teacher's, and the **KL divergence** $\mathrm{KL}(p_T \,\|\, p_S)$ (nats,
# averaged over inputs) measures how far its whole predictive distribution is from the
# teacher's (`kr_utils.audit.fidelity`). Accuracy asks whether the student is right; fidelity
# asks whether it is a copy, mistakes included. Besides the real test digits, both models see
# {glue:text}`ood_size` Fashion-MNIST test images and as many images of uniform pixel noise,
# inputs from outside anything either was trained on, where a copy made only from digits has
# no reason to agree. Model-extraction work on MNIST reports about 96-97% agreement after
# 20,000 queries; the aim set for this book is {glue:text}`fid_aim_pct` on the real test digits.

# %%
inputs = claims.fidelity_inputs(cfg, seed)
fid = claims.fidelity_table(teacher, runs, inputs, device)
fid_frame = pd.DataFrame({cell: {f"{claims.INPUT_LABELS[i]}: {m}": evaluate.format_summary(v[m], 2) if m == "agreement"
                                 else f"{v[m]['mean']:.4f}" for i, v in d.items() for m in ("agreement", "kl")}
                          for cell, d in fid.items()}).T
glue("ood_size", ev.ood_size, display=False)
fid_frame

# %%
main_fid = fid[main_id] if grid.shared else claims.fidelity_table(teacher, {main_cell: grid.main}, inputs, device)[main_id]
for i in inputs:
    glue(f"fid_{i}", evaluate.format_summary(main_fid[i]["agreement"]), display=False)
    glue(f"kl_{i}", f"{main_fid[i]['kl']['mean']:.3f}", display=False)
best_cell = max(fid, key=lambda c: fid[c]["real_test"]["agreement"]["mean"])  # test-set report, not a choice
glue("fid_best_cell", best_cell, display=False)
glue("fid_best", evaluate.format_summary(fid[best_cell]["real_test"]["agreement"]), display=False)
aim_met = main_fid["real_test"]["agreement"]["mean"] >= claims.FIDELITY_AIM
glue("fid_aim_pct", f"{100 * claims.FIDELITY_AIM:.1f}%", display=False)
glue("fid_aim", "reaches" if aim_met else "falls short of", display=False)
glue("main_cell", main_id, display=False)

# %%
fashion_agree = main_fid["fashion_mnist"]["agreement"]["mean"]
glue("fid_fashion_verdict", "the copy is far from faithful there, since it learned the teacher only where digits are, "
     "which is not what a model extractor who wants the whole function needs." if fashion_agree < 0.9 else
     "the copy stays faithful even on clothes, which it never saw.", display=False)
noise_pred = evaluate.predict_logits(teacher, inputs["noise"], device=device).argmax(1)
glue("noise_class", int(noise_pred.mode().values), display=False)
glue("noise_share", f"{100 * (noise_pred == noise_pred.mode().values).float().mean():.1f}%", display=False)

# %% [markdown]
# The main student ({glue:text}`main_cell`) agrees with its teacher on
# {glue:text}`fid_real_test` of the real test digits (KL {glue:text}`kl_real_test` nats), which
# {glue:text}`fid_aim` the aim of {glue:text}`fid_aim_pct`; the most faithful cell of the grid is
# {glue:text}`fid_best_cell` at {glue:text}`fid_best`. Off the digits' distribution, on
# Fashion-MNIST the two agree on {glue:text}`fid_fashion_mnist` of the images (KL
# {glue:text}`kl_fashion_mnist`): {glue:text}`fid_fashion_verdict` On noise they agree on
# {glue:text}`fid_noise` (KL {glue:text}`kl_noise`), but the teacher gives
# {glue:text}`noise_share` of the noise images one class, {glue:text}`noise_class`, so
# agreement there says little beyond that both learned the same answer for "no digit".
#
# ## 2. Calibration: does the student's confidence mean what the teacher's means?
#
# The expected calibration error (ECE) is the gap between confidence and accuracy, averaged
# over {glue:text}`n_bins` equal-width confidence bins weighted by their share of the predictions
# (torchmetrics' `multiclass_calibration_error`, through `kr_utils.audit.calibration`). It is not
# a mean of per-digit terms, so its sampling error over the test digits has no simple interval,
# and the comparisons are made instead on two proper scoring rules, means over the test digits of per-digit terms
# (`kr_utils.audit.proper_scores`): the negative log-likelihood of the true class,
# $-\log p_y$, and the Brier score, $\sum_k (p_k - [k = y])^2$, each with a 95% interval over
# the seeds and the test digits. The grid of chapter 5 trained each architecture with hard
# labels and with the teacher's soft targets at $\tau = 1$ and $\tau = 4$ (eq. 8): does
# distilling with soft targets carry the teacher's calibration over?

# %%
cal = claims.calibration_table(evaluate.predict_logits(teacher, x_te, device=device), runs, y_te, claims.ECE_BINS)
glue("n_bins", claims.ECE_BINS, display=False)
cal_frame = pd.DataFrame({c: {"ECE (%)": evaluate.format_summary(v["ece"], 2),
                              **{f"{k} [95%]": f"{v[k]['mean']:.4f} [{v[k]['ci95'][0]:.4f}, {v[k]['ci95'][1]:.4f}]"
                                 for k in ("nll", "brier")}} for c, v in cal.items()}).T
arch = main_cell[0]
shown = {"teacher": cal["teacher"]["bins"], **{f"student, {config.LABEL_NAMES[lab]}": cal[f"{arch}/{lab}"]["bins"]
                                                for lab in cfg.studies.grid_labels if f"{arch}/{lab}" in cal}}
plots.glue_figure("fig_reliability", plots.reliability(shown))
cal_frame

# %% [markdown]
# ```{glue:figure} fig_reliability
# Reliability diagrams on the real test set: accuracy per confidence bin (blue), its gap to
# the bin's mean confidence (red), the diagonal of perfect calibration, and each bin's share of
# the predictions beneath (log scale). Students: the {glue:text}`main_arch` of chapter 5, first seed.
# ```

# %%
labs = [lab for lab in ("hard", "soft_t1", "soft_t4") if f"{arch}/{lab}" in cal]
glue("main_arch", arch, display=False)
ece = {lab: cal[f"{arch}/{lab}"]["ece"]["mean"] for lab in labs}
glue("ece_teacher", f"{100 * cal['teacher']['ece']['mean']:.2f}%", display=False)
glue("ece_list", "; ".join(f"{config.LABEL_NAMES[lab]}: {100 * ece[lab]:.2f}%" for lab in labs), display=False)
glue("nll_teacher", f"{cal['teacher']['nll']['mean']:.4f}", display=False)
cal_cmp = claims.calibration_comparisons(cal, arch, labs)
cal_vs_teacher = claims.calibration_comparisons(cal, arch, labs, reference="teacher")
glue("cal_vs_teacher", "; ".join(c["nll"].sentence(config.LABEL_NAMES[lab], "the teacher", 4, "NLL", points=False)
                                 for lab, c in cal_vs_teacher.items()), display=False)
glue("cal_cmp", "; ".join(f"{c[k].sentence(config.LABEL_NAMES[lab], config.LABEL_NAMES['hard'], 4, name, points=False)}"
                          for lab, c in cal_cmp.items() for k, name in (("nll", "NLL"), ("brier", "Brier score")))
     or "not measured at this profile (its grid lacks the label settings)", display=False)

# %% [markdown]
# The teacher's ECE is {glue:text}`ece_teacher` (NLL {glue:text}`nll_teacher`). Its
# {glue:text}`main_arch` students measure {glue:text}`ece_list` (means over seeds; the table
# gives each cell's spread), differences this section does not rank. Against the hard-label
# student, paired by seed, with intervals over the seeds and the test digits
# (`kr_utils.claims.calibration_comparisons`; lower is better): {glue:text}`cal_cmp`. Against the
# teacher itself, on the NLL: {glue:text}`cal_vs_teacher`.
#
# ## 3. Memorisation: are the synthetic digits copies of training digits?
#
# The thesis argues that the synthetic set "contains no sensitive information, nor images
# taken directly from the original dataset" (§3.3). A diffusion model can, however, reproduce
# training images (Carlini et al., 2023). Every synthetic digit is compared with every one of
# the {glue:text}`n_train` real digits the diffusion model was trained on, in pixels ($\ell_2$ in $[0, 1]$ intensities) and in the teacher's
# penultimate features (`kr_utils.claims.neighbours`, exact nearest neighbours), and so is every
# real **test** digit, the reference: a test digit is certainly no copy of a training digit,
# so whatever the test digits score is what a set of genuinely new digits scores. Three
# statistics (`kr_utils.audit.memorisation`):
#
# - **exact copies**: a synthetic digit identical to a training digit;
# - the **ratio test** of Gu et al. (2023): distance to the nearest training digit divided by
#   the distance to the second nearest; below {glue:text}`ratio_thr` the digit sits on one training digit rather
#   than among several;
# - the **calibrated $\ell_2$** of Carlini et al. (2023): distance to the nearest training
#   digit divided by half the mean distance to the {glue:text}`calib_n` nearest, flagged below the value that
#   {glue:text}`calib_q` of the real test digits fall under (`kr_utils.audit.reference_threshold`).

# %%
train_u8, train_lbl = data.fit_digits(cfg, cfg.diffusion.train_subset, seed)  # the diffusion model's training digits
test_u8 = data.load(cfg.dataset, "test")[0][: len(y_te)]
feats = {"train": evaluate.features(teacher, data.to_model_range(train_u8), device=device),
         "test": evaluate.features(teacher, x_te, device=device),
         "synthetic": evaluate.features(teacher, data.to_model_range(stored["images"]), device=device)}

# %%
audit_n = min(len(stored["labels"]), ev.audit_size or len(stored["labels"]))
audited = torch.randperm(len(stored["labels"]), generator=torch.Generator().manual_seed(seed))[:audit_n]
nn = {"test": claims.neighbours(cfg, "test", f"test{len(y_te)}", test_u8, train_u8, feats["test"], feats["train"], device),
      "synthetic": claims.neighbours(cfg, "synthetic", f"{stored['summary']['inputs_key']}:{audit_n}:{seed}",
                                     stored["images"][audited.numpy()], train_u8, feats["synthetic"][audited], feats["train"],
                                     device)}
thr = {s: audit.reference_threshold(audit.memorisation(nn["test"][s])["calibrated"], claims.FLAG_QUANTILE)
       for s in ("pixel", "feature")}
glue("ratio_thr", f"{audit.RATIO_THRESHOLD:.2f}", display=False)
glue("calib_n", audit.CALIBRATED_N, display=False)
glue("calib_q", f"{100 * claims.FLAG_QUANTILE:g}%", display=False)
glue("feat_dim", feats["train"].shape[1], display=False)

# %%
mem = {name: claims.memorisation_report(v, thr) for name, v in nn.items()}
mem_counts = {name: claims.memorisation_counts(r) for name, r in mem.items()}
pd.DataFrame(mem_counts).rename(index=lambda k: k.replace("_", " "))

# %%
order = mem["synthetic"]["pixel"]["ratio"].argsort()[:8]  # the synthetic digits closest to one training digit
syn_imgs = stored["images"][audited[order].numpy()]
pairs = np.concatenate([syn_imgs, train_u8[nn["synthetic"]["pixel_index"][order, 0].numpy()]])
titles = [f"ratio {r:.2f}" for r in mem["synthetic"]["pixel"]["ratio"][order].tolist()] + \
         [f"ℓ2 {d:.2f}" for d in mem["synthetic"]["pixel"]["nearest"][order].tolist()]
plots.glue_figure("fig_pairs", plots.mosaic(pairs, 2, titles=titles, row_labels=["synthetic", "nearest\ntraining"]))
for name, c in mem_counts.items():
    for k in ("pixel_exact", "pixel_ratio_flagged", "pixel_calibrated_flagged", "feature_ratio_flagged",
              "feature_calibrated_flagged"):
        glue(f"mem_{name}_{k}", f"{100 * c[k]:.2f}%", display=False)
    glue(f"mem_{name}_median", f"{c['pixel_nearest_median']:.2f}", display=False)
glue("mem_n", f"{audit_n:,}", display=False)
glue("n_train", f"{len(train_u8):,}", display=False)
glue("mem_exact_count", mem["synthetic"]["pixel"]["exact"], display=False)

# %% [markdown]
# ```{glue:figure} fig_pairs
# Top: the eight synthetic digits with the lowest pixel ratio (nearest / second-nearest
# training digit); bottom: the nearest training digit of each, with their $\ell_2$ distance.
# ```
#
# Of the {glue:text}`mem_n` synthetic digits audited, {glue:text}`mem_exact_count` are exact
# copies of a training digit. In pixels, {glue:text}`mem_synthetic_pixel_ratio_flagged` fail
# the ratio test (the real test digits: {glue:text}`mem_test_pixel_ratio_flagged`) and
# {glue:text}`mem_synthetic_pixel_calibrated_flagged` fall under the calibrated-$\ell_2$
# threshold that {glue:text}`calib_q` of the test digits fall under; in the teacher's features,
# {glue:text}`mem_synthetic_feature_ratio_flagged` and
# {glue:text}`mem_synthetic_feature_calibrated_flagged` (test:
# {glue:text}`mem_test_feature_ratio_flagged` and {glue:text}`calib_q` by construction). The median pixel
# distance to the nearest training digit is {glue:text}`mem_synthetic_median` for a synthetic
# digit and {glue:text}`mem_test_median` for a test digit.
#
# ### Across the diffusion model's training, and with the set's size
#
# The same statistics for chapter 6's sets, drawn from the checkpoints saved during the
# diffusion model's training (each the teacher-accepted part of the same budget), and for
# growing random subsets of the synthetic set: a larger set gives a copy, if the generator
# makes them at some rate, more chances to appear.

# %%
d_path = pipeline.diffusion_model(cfg, device, seed, with_milestones=True)
sampler = diffusion.build_sampler(cfg.sampler, checkpoints.load_schedule(d_path))
steps = cfg.studies.degradation_milestones
deg_sets = studies.degradation_sets(cfg, steps, teacher, sampler, seed=seed, device=device)
deg_feats = {st: evaluate.features(teacher, data.to_model_range(s["images"].numpy()), device=device)
             for st, (_, s) in deg_sets.items() if len(s["labels"]) >= studies.MIN_SET}
deg_mem = {st: claims.memorisation_counts(claims.memorisation_report(claims.neighbours(
    cfg, f"step{st}", deg_sets[st][0], deg_sets[st][1]["images"].numpy(), train_u8, f, feats["train"], device), thr))
    for st, f in deg_feats.items()}
sizes = [n for n in (*ev.set_sizes, audit_n) if n <= audit_n]
by_size = claims.counts_by_size(nn["synthetic"], thr, sizes, seed)
show = ["n", "pixel_exact", "pixel_ratio_flagged", "pixel_calibrated_flagged", "feature_calibrated_flagged"]
pd.DataFrame({f"step {st}": {k: deg_mem[st][k] for k in show} for st in deg_mem}).T

# %%
pd.DataFrame(by_size).T.rename_axis("digits audited")

# %%
rates = {st: deg_mem[st]["pixel_ratio_flagged"] for st in deg_mem}
glue("mem_rates_steps", "; ".join(f"step {st}: {100 * r:.2f}%" for st, r in rates.items()), display=False)
glue("mem_size_counts", "; ".join(f"{n:,} digits: {v['pixel_ratio_flagged']}" for n, v in by_size.items()), display=False)
syn_c, test_c = mem_counts["synthetic"], mem_counts["test"]
excess = claims.copy_excess(syn_c, test_c)  # exact copies, and one-sided binomial tests of the flag rates
glue("privacy_verdict", ("more often than unseen real digits do " if excess["more"] else
                         "no more often than unseen real digits do, within the tests' power ")
    + f"(one-sided exact binomial tests, p = {excess['ratio']:.2g} for the pixel ratio test, "
      f"{excess['calibrated']:.2g} for the calibrated flag; {'an' if excess['exact'] else 'no'} exact copy). "
    + "This is a reading of this book's generator at this profile; the thesis' generator, of whose images it claims "
      "none is taken directly, is not tested here", display=False)

# %% [markdown]
# The share of digits failing the pixel ratio test, by checkpoint: {glue:text}`mem_rates_steps`.
# The number failing it among growing random subsets of the synthetic set:
# {glue:text}`mem_size_counts`.
#
# ## 4. Distribution: how close are synthetic digits to real ones?
#
# In the teacher's {glue:text}`feat_dim`-dimensional penultimate features (`kr_utils.evaluate.features`): the
# **Fréchet distance** between Gaussians fitted to the two sets (the FID formula of Heusel et
# al., `kr_utils.audit.frechet_distance`), and the **k-NN precision and recall** of
# Kynkäänniemi et al. (2019, $k$ = {glue:text}`knn_k`, `kr_utils.audit.precision_recall`):
# precision is the share of synthetic digits that fall inside the real digits' manifold (they
# look real), recall the share of real digits inside the synthetic digits' manifold (the
# variety of real digits is covered). Every set is compared with the declared real
# **validation** digits, which no model trained on (a generator that copied its training
# digits would otherwise score as well as real data), on equal random samples of
# {glue:text}`fd_size` (the Fréchet distance grows on small samples, so only equal sizes
# compare), and the real **test** digits against the validation digits give the floor a
# perfect generator would reach. The teacher's features come from the network that also
# filtered the set, so the filter's preferences are in both; the same measures are therefore
# also taken in a second space, the features of the teacher's architecture at random
# initialisation, a network that never saw a digit (`kr_utils.claims.untrained_features`;
# Naeem et al. 2020 found such random embeddings usable for these measures on data far from
# ImageNet).

# %%
x_val, y_val = split["real_val"]  # the declared validation digits: no model trained on them
feats["val"] = evaluate.features(teacher, x_val, device=device)
labels = {"val": y_val, "test": y_te, "synthetic": stored["labels"]}
spaces = {"teacher": claims.floor_and_set(feats, labels, size=ev.fd_size, k=ev.knn_k, seed=seed)}
rand = claims.untrained_features(cfg.teacher.arch, seed + 1, {"val": x_val, "test": x_te, "synthetic":
                                  data.to_model_range(stored["images"])}, device)  # a second feature space
spaces["untrained network"] = claims.floor_and_set(rand, labels, size=ev.fd_size, k=ev.knn_k, seed=seed)
floor, syn_dist = spaces["teacher"]
glue("knn_k", ev.knn_k, display=False)
glue_texts(claims.distribution_texts(spaces))
claims.distribution_frame(spaces)

# %% [markdown]
# Overall, the synthetic set lies at Fréchet distance {glue:text}`fd_syn` from the validation
# digits, against {glue:text}`fd_floor` for the real test digits; its precision is
# {glue:text}`prec_syn` (floor {glue:text}`prec_floor`) and its recall {glue:text}`rec_syn`
# (floor {glue:text}`rec_floor`). In the untrained network's features (each dimension
# standardised on the validation digits; compare each distance with its floor, not across
# spaces), the Fréchet distance is
# {glue:text}`fd_syn_rand` against a floor of {glue:text}`fd_floor_rand`, precision
# {glue:text}`prec_syn_rand` (floor {glue:text}`prec_floor_rand`) and recall
# {glue:text}`rec_syn_rand` (floor {glue:text}`rec_floor_rand`). Per digit, in the teacher's features:

# %%
fig = plots.per_class_measures({"real test (floor)": floor, "synthetic": syn_dist})
plots.glue_figure("fig_per_class_distribution", fig)
worst_digit = max(syn_dist["per_class"],  # test-set report, not a choice
                  key=lambda c: syn_dist["per_class"][c]["frechet"] / floor["per_class"][c]["frechet"])
glue("fd_worst_digit", worst_digit, display=False)

# %% [markdown]
# ```{glue:figure} fig_per_class_distribution
# Per digit, on equal samples of a tenth of the overall size: Fréchet distance, precision and
# recall of the synthetic digits (blue) and of the real test digits (grey, the floor) against
# the real validation digits in the teacher's features.
# ```
#
# Relative to its floor, the synthetic set is furthest from the real digits on the digit
# **{glue:text}`fd_worst_digit`**.
#
# ### Do these measures predict the student?
#
# A student of each architecture learns from the digits drawn at each checkpoint of the
# diffusion model's training (`kr_utils.studies.degradation_students`: one seed, the profile's
# labels, a fixed budget; not chapter 6's three seeds at a budget chosen on validation; a
# checkpoint whose set is too small gets no student). The same three measures on those sets,
# at the size of the smallest set with a student (so that Fréchet distances compare), against
# each student's real-test accuracy, with Spearman's rank correlation over the checkpoints:

# %%
deg_students = studies.degradation_students(cfg, deg_sets, seed=seed, device=device, test=(x_te, y_te))
taught = {st: f for st, f in deg_feats.items() if (arch, st) in deg_students}  # the checkpoints with a student
n_deg = min(len(f) for f in taught.values())
deg_dist = {st: claims.distribution(feats["val"], y_val, f, deg_sets[st][1]["labels"], size=n_deg, k=ev.knn_k,
                                    seed=seed) for st, f in taught.items()}
pred = claims.predictiveness(deg_dist, deg_students, cfg.studies.grid_archs)  # Spearman over the checkpoints
deg_frame, rho = pred["table"].rename_axis("checkpoint step"), pred["rho"]
glue("n_deg", n_deg, display=False)
for m, short in (("frechet", "fd"), ("recall", "rec"), ("precision", "prec")):
    glue(f"rho_{short}_main", f"{rho.loc[m, arch]:+.2f}", display=False)
glue("rho_p", ", ".join(f"{m} p = {v:.2f}" for m, v in pred["p"][arch].items()), display=False)
glue("n_checkpoints", evaluate.counted(len(deg_frame), "checkpoint"), display=False)
deg_frame

# %%
rho.rename_axis("Spearman ρ with accuracy")

# %% [markdown]
# Over the {glue:text}`n_checkpoints` (samples of {glue:text}`n_deg` digits), the
# {glue:text}`main_arch` student's accuracy has a rank correlation of {glue:text}`rho_fd_main`
# with the Fréchet distance, {glue:text}`rho_prec_main` with precision and
# {glue:text}`rho_rec_main` with recall ({glue:text}`rho_p`, scipy's `spearmanr`). With so
# few points, one student each, the question is not answered here: a rank correlation over a
# handful of checkpoints is inconclusive whatever its sign. The two samplers compared below add
# two more sets with students, shown beside their measures there.
#
# ## 5. The thesis' open claims
#
# ### The confidence filter
#
# The thesis keeps a generated digit only when the teacher's confidence reaches 0.9, and states
# that this filter "raises the final accuracy by 2 percentage points" (§5), without a
# measurement. Here an unfiltered pool of {glue:text}`pool_per_class` digits per class is drawn
# with this book's sampler (`kr_utils.synth.draw_labelled`), and at each threshold (`0`: no
# filter) a student learns from {glue:text}`sweep_per_class` of the accepted digits per
# teacher label for {glue:text}`sweep_epochs`, {glue:text}`sweep_budget`
# (`kr_utils.claims.sweep_epochs`; the profile's student recipe otherwise), over {glue:text}`n_seeds`, so that only the filter changes. Their sets are
# smaller than chapter 5's, so their accuracy is lower; what matters is how it moves with the
# threshold.

# %% tags=["hide-output"]
ours = claims.pool(cfg, "ours", cfg.sampler, ev.pool_per_class, seed=seed, device=device,
                   checkpoints=(d_path, t_path))
sweep = claims.sweep(cfg, ours, device=device, test=(x_te, y_te))  # 3 seeds x 6 thresholds (their logs hidden)

# %%
sweep_frame = pd.DataFrame({t: {"acceptance": v["acceptance"], "student accuracy": None if v["accuracy"] is None
                                else evaluate.format_summary(v["accuracy"], seeds=True)} for t, v in sweep.items()}).T
for name, value in (("pool_per_class", ev.pool_per_class), ("sweep_per_class", ev.sweep_per_class),
                    ("sweep_epochs", evaluate.counted(claims.sweep_epochs(cfg), "epoch")),
                    ("n_seeds", evaluate.counted(len(ev.sweep_seeds), "seed"))):
    glue(name, value, display=False)
glue("sweep_budget", "as many optimiser updates as chapter 5's main student makes on the whole set"
     if ev.sweep_epochs is None else "a budget the profile fixes", display=False)
sweep_frame.rename_axis("threshold")

# %% tags=["hide-input"]
plots.glue_figure("fig_sweep", plots.threshold_sweep(sweep))
gain = claims.threshold_gain(sweep, cfg.synth.threshold)  # the profile's threshold against the lowest (0: no filter)
glue("sweep_gain", "an amount not measured here (too few digits at one of them)" if gain["gain"] is None
     else f"{gain['gain']:+.2f}", display=False)
glue("sweep_ref", f"{gain['reference']:g}", display=False)
glue("sweep_none", f"{gain['lowest']:g}", display=False)
glue("sweep_overlap", "There are no two sets of students to compare." if gain["comparison"] is None else
     "Against no filter: " + gain["comparison"].sentence(f"the filter at {gain['reference']:g}", "no filter") + ".", display=False)
glue("sweep_cmp", "no two sets of students to compare" if gain["comparison"] is None else
     gain["comparison"].sentence(f"the filter at {gain['reference']:g}", "no filter"), display=False)

# %% [markdown]
# ```{glue:figure} fig_sweep
# Student accuracy on the real test set (mean ± std over seeds) against the confidence
# threshold, and the share of the pool each threshold accepts.
# ```
#
# Filtering at {glue:text}`sweep_ref` rather than at {glue:text}`sweep_none` changes the
# student's accuracy by {glue:text}`sweep_gain` points (the thesis: +2). {glue:text}`sweep_overlap`
# No threshold is chosen from this sweep, and where that interval is wider than the thesis' 2
# points it cannot tell whether the filter helps by that much.
#
# ### The thesis' sampler against this book's
#
# The thesis' text and its code describe two samplers, and both are run here. Its **text**
# (§3.3.4; `kr_utils.claims.thesis_sampler`): the ancestral sampler, clipped, at guidance
# $w = 1.5$ (its `guide_w = 0.5`), with the starting noise and the per-step noise both scaled
# by 0.5, on {glue:text}`thesis_steps` at this profile (the thesis: 1,000). Its **code**
# (`kr_utils.studies.thesis_code_sampler`, chapter 7): an ancestral chain with the same guidance,
# no noise at any step and the starting noise unscaled, every pixel below the middle of the range
# forced to black at the end. Its code ran that chain on its own shorter schedule, whose last
# step still holds some of the digit, from pure noise; here it runs on this book's U-Net and its
# 1,000-step schedule respaced to {glue:text}`thesis_code_steps` (its code:
# {glue:text}`thesis_code_steps_code`), and neither pool has the code's other steps (grey
# storage, the requested class as label, a threshold of 0.85: chapter 7 runs those). A
# pool of each and this book's pool each give
# {glue:text}`thesis_per_class` digits per class at the profile's threshold, and students learn
# from them exactly as in the sweep, over {glue:text}`n_sampler_seeds` (for this book's
# sampler they are the sweep's students at that threshold). Precision and recall are measured
# on the whole of each pool.

# %% tags=["hide-output"]
thesis_cfg = claims.thesis_sampler(cfg)
n_thesis = ev.sweep_per_class
theirs = claims.pool(cfg, "thesis", thesis_cfg, n_thesis + n_thesis // 50 + 1, seed=seed,
                     device=device, checkpoints=(d_path, t_path))  # (its digits nearly all pass the threshold)
code_cfg = studies.thesis_code_sampler(cfg)
theirs_code = claims.pool(cfg, "thesis_code", code_cfg, 2 * n_thesis, seed=seed,
                          device=device, checkpoints=(d_path, t_path), black=True)
sampler_rows = claims.sampler_comparison(cfg, {"ours": ours, "thesis": theirs, "thesis_code": theirs_code}, teacher,
                                         feats["val"], y_val, device=device, test=(x_te, y_te))

# %% tags=["hide-input"]
glue("thesis_steps", evaluate.counted(thesis_cfg.num_steps, "step"), display=False)
glue("thesis_code_steps", evaluate.counted(code_cfg.num_steps, "step"), display=False)
glue("thesis_code_steps_code", f"{thesis.RECIPE.n_T:,d}", display=False)
glue("thesis_per_class", n_thesis, display=False)
glue("n_sampler_seeds", evaluate.counted(len(ev.sweep_seeds), "seed"), display=False)
pd.DataFrame({{"ours": "this book", "thesis": "thesis (text)", "thesis_code": "thesis (code)"}[n]:
              {**{k: v for k, v in r.items() if k != "against_reference"},
               "accuracy": evaluate.format_summary(r["accuracy"], seeds=True) if r["accuracy"] else "too few digits"}
              for n, r in sampler_rows.items()}).T

# %%
glue_texts(claims.sampler_texts(sampler_rows))

# %% [markdown]
# The thesis' text's sampler has the teacher accept {glue:text}`sampler_thesis_accept` of its
# digits, its code's {glue:text}`sampler_thesis_code_accept` (ours:
# {glue:text}`sampler_ours_accept`), with precision {glue:text}`sampler_thesis_prec` and
# {glue:text}`sampler_thesis_code_prec` and recall {glue:text}`sampler_thesis_rec` and
# {glue:text}`sampler_thesis_code_rec` (ours: {glue:text}`sampler_ours_prec` and
# {glue:text}`sampler_ours_rec`). The students of the text's sampler score
# {glue:text}`sampler_thesis_acc`, of its code's {glue:text}`sampler_thesis_code_acc`, this
# book's {glue:text}`sampler_ours_acc`: {glue:text}`sampler_thesis_vs_ours`, and
# {glue:text}`sampler_thesis_code_vs_ours`. {glue:text}`sampler_collapse` The distribution
# measures compare equal samples of {glue:text}`sampler_fd_size` digits of each pool. These are
# readings of this book's U-Net: the thesis' own generator is not here.
#
# ### The size of the synthetic set
#
# The thesis sets itself the objective of "determining optimal confidence thresholds and
# sample sizes" (§1) and reports neither. Students with the
# profile's recipe (as chapter 5's main student, {glue:text}`student_epochs`) learn
# from balanced random subsets of the synthetic set, and, beside each, from as many **real**
# training digits. Both arms are labelled (soft targets and labels) by one network that has
# seen neither arm's digits: the teacher's recipe trained on one half of the real training
# digits (`kr_utils.claims.half_teacher`, {glue:text}`curve_labeller` on the test set), the
# real arm drawn from the other half (`kr_utils.claims.halves`). Chapter 1's teacher, which
# learnt every real training digit, would give the real arm the sharper labels of digits it
# has fitted. Two differences remain between the arms: the synthetic digits come from a U-Net
# that learnt both halves (that is what synthetic digits are), and they passed chapter 4's
# confidence filter, applied by chapter 1's teacher, while the real digits pass none. The epochs are fixed, so a smaller set also gives fewer updates,
# for real and synthetic digits alike: the curve measures what a set of that size buys with
# this recipe, and the gap between its two lines what synthetic digits cost against real ones.

# %% tags=["hide-output"]
curve = claims.size_curve(cfg, stored, device=device, test=(x_te, y_te))
fig = plots.summary_curves({"synthetic digits": curve["synthetic"], "real digits": curve["real"]},
                           "digits in the student's set (90% trained on, 10% validation)", "real-test accuracy (%)",
                           logx=True, reference=("labeller (teacher of half A)", curve["labeller"]))

# %%
plots.glue_figure("fig_size_curve", fig)
full = max(curve["synthetic"])
small = min(curve["synthetic"])

# %% tags=["hide-input"]
glue("student_epochs", evaluate.counted(cfg.student.epochs, "epoch"), display=False)
for who in ("synthetic", "real"):
    glue(f"curve_{who}_small", evaluate.format_summary(curve[who][small]), display=False)
glue("curve_synthetic_full", evaluate.format_summary(curve["synthetic"][full]), display=False)
glue("curve_small", f"{small:,}", display=False)
glue("curve_full", f"{full:,}", display=False)
glue("curve_labeller", f"{100 * curve['labeller']:.2f}%", display=False)
gaps = claims.size_gaps(curve)  # real minus synthetic, paired by seed, over seeds and test digits
for which, n in (("small", small), ("full", full)):
    glue(f"curve_gap_{which}", "not measured (half B holds too few real digits)" if n not in gaps
         else gaps[n].sentence("the students of real digits", "those of synthetic ones"), display=False)
glue("curve_real_full", evaluate.format_summary(curve["real"][full]) if full in curve["real"] else "not measured", display=False)
pd.DataFrame({who: {n: evaluate.format_summary(s, seeds=True) for n, s in curve[who].items()}
              for who in ("synthetic", "real")}).rename_axis("digits")

# %% [markdown]
# ```{glue:figure} fig_size_curve
# Real-test accuracy of the same student recipe trained on n synthetic digits and on n real
# digits (mean ± std over seeds; log scale), with the accuracy of the real arm's labeller (the
# teacher trained on the other half of the training digits) dashed.
# ```
#
# With {glue:text}`curve_small` digits the student scores {glue:text}`curve_synthetic_small`
# on synthetic digits and {glue:text}`curve_real_small` on real ones: {glue:text}`curve_gap_small`.
# With {glue:text}`curve_full`, {glue:text}`curve_synthetic_full` and
# {glue:text}`curve_real_full`: {glue:text}`curve_gap_full`. Each gap's interval covers the
# seeds and the test digits (`kr_utils.claims.size_gaps`), for this generator and this recipe.

# %% tags=["remove-cell"]
store.update_metrics(profile, "evaluation", {
    "fidelity": fid, "calibration": {c: {k: v[k] for k in ("ece", "nll", "brier")} for c, v in cal.items()},
    "calibration_comparisons": cal_cmp, "calibration_against_teacher": cal_vs_teacher,
    "memorisation": {"thresholds": thr, "sets": mem_counts, "checkpoints": {f"step_{s}": v for s, v in deg_mem.items()},
                     "by_size": {str(n): v for n, v in by_size.items()}},
    "distribution": {"floor": floor, "synthetic": syn_dist,
                     "untrained_features": dict(zip(("floor", "synthetic"), spaces["untrained network"])),
                     "checkpoints": {f"step_{s}": v for s, v in deg_dist.items()},
                     "spearman": pred["rho"].to_dict(), "spearman_p": pred["p"].to_dict()},
    "threshold_sweep": {f"t_{t:g}": {k: x for k, x in v.items() if k != "correct"} for t, v in sweep.items()},
    "threshold_gain": gain,
    "samplers": sampler_rows, "size_curve": {w: {str(n): s for n, s in curve[w].items()} for w in ("synthetic", "real")},
    "size_curve_labeller_accuracy": curve["labeller"], "size_gaps": {str(n): c for n, c in gaps.items()},
    "config": ev.as_dict()})
ch.close()

# %% [markdown]
# ## What was measured
#
# - **Fidelity.** The main student agrees with the teacher on {glue:text}`fid_real_test` of the
#   real test digits, and on {glue:text}`fid_fashion_mnist` of Fashion-MNIST images and
#   {glue:text}`fid_noise` of noise images (where the teacher answers {glue:text}`noise_class`
#   to {glue:text}`noise_share` of them).
# - **Calibration.** Teacher ECE {glue:text}`ece_teacher`; students {glue:text}`ece_list`.
#   Against the hard-label student: {glue:text}`cal_cmp`.
# - **Memorisation.** {glue:text}`mem_exact_count` exact copies among {glue:text}`mem_n`
#   synthetic digits; {glue:text}`mem_synthetic_pixel_ratio_flagged` fail the pixel ratio test
#   against {glue:text}`mem_test_pixel_ratio_flagged` of real test digits, and
#   {glue:text}`mem_synthetic_pixel_calibrated_flagged` fall under the calibrated threshold
#   that {glue:text}`calib_q` of the test digits fall under. On the thesis' privacy argument: synthetic digits
#   sit on a training digit {glue:text}`privacy_verdict`. That is a statement about copies,
#   not a privacy guarantee: no differential privacy was used, and the generator was trained
#   on the real digits, which a membership-inference attack could still probe.
# - **Distribution.** Fréchet distance {glue:text}`fd_syn` (floor {glue:text}`fd_floor`),
#   precision {glue:text}`prec_syn`, recall {glue:text}`rec_syn`; across the checkpoints, the
#   rank correlation with the student's accuracy is {glue:text}`rho_fd_main` for the Fréchet
#   distance and {glue:text}`rho_rec_main` for recall.
# - **The thesis' claims.** The filter at {glue:text}`sweep_ref` changes the student by
#   {glue:text}`sweep_gain` points against no filter (the thesis: +2): {glue:text}`sweep_cmp`;
#   the thesis' text's sampler gives
#   students of {glue:text}`sampler_thesis_acc`, its code's {glue:text}`sampler_thesis_code_acc`,
#   against {glue:text}`sampler_ours_acc`; at {glue:text}`curve_full` digits, both arms
#   labelled by a network that saw neither, {glue:text}`curve_gap_full`. Every verdict is about
#   this book's generator at this profile.
