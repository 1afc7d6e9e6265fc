"""The sentences a library function words for a chapter's prose (glued under stable names):
each reads its numbers from the results it is given, and every branch says what its numbers say."""
import dataclasses

import pytest

from kr_utils import config, replication

SMOKE, CPU = config.get_config("smoke"), config.get_config("cpu")


def _row(val, lead_verdict="higher", ci=(1.0, 3.0)):
    return {"accuracy_text": "90.00%", "acceptance_rate": 0.5, "agreement": 0.9, "images_per_s": 1234.5,
            "train_time_s": 12.0, "val_real_accuracy": {"mean": val},
            "ddpm_lead_points": {"estimate": 2.0, "ci95": list(ci) if ci else None, "verdict": lead_verdict,
                                 "covers": "over seeds"}}


def test_chapter_11_design_texts_follow_the_profile():
    t = replication.design_texts(CPU)
    assert t["c11_per_class"] == f"{CPU.generators.per_class:,d}" and t["c11_n_critic"] == CPU.generators.n_critic
    assert set(t["c11_steps"].split(", ")) == {f"{replication.NAMES[k]} {replication.steps(CPU, k):,d}"
                                               for k in replication.KINDS}
    assert len(CPU.generators.seeds) > 1 and "trained 3 times" in t["c11_seed_design"]
    one = dataclasses.replace(CPU, generators=dataclasses.replace(CPU.generators, seeds=(7,)))
    assert "trained once (seed 7)" in replication.design_texts(one)["c11_seed_design"]
    same_lr = dataclasses.replace(CPU, generators=dataclasses.replace(CPU.generators, wgan_lr=CPU.generators.gan_lr))
    assert replication.design_texts(same_lr)["c11_lr_note"].startswith("none at this profile")


def test_chapter_11_row_texts_choose_the_best_on_validation_and_word_the_lead():
    rows = {"ddpm": _row(0.99), "vae": _row(0.5), "gan": _row(0.8, "no measurable difference"), "wgan_gp": _row(0.7)}
    t = replication.row_texts(rows)
    assert t["c11_best"] == replication.NAMES["gan"] and t["c11_best_lead_verdict"] == "not measurably different from it"
    assert "c11_ddpm_lead" not in t and t["c11_vae_lead"] == "2.00 points (95% interval [1.00, 3.00], over seeds)"
    assert t["c11_vae_ips"] == "1,234" and t["c11_vae_train"] == "12 s"
    rows["gan"] = _row(0.1, "higher", ci=None) | {"train_time_s": None}
    t = replication.row_texts(rows)
    assert t["c11_best"] == replication.NAMES["wgan_gp"] and t["c11_best_lead_verdict"] == "ahead of it"
    assert t["c11_gan_lead"] == "2.00 points" and t["c11_gan_train"] == "an unrecorded time"


def _history(confident, entropy, d_fake=None):
    h = {"classes": [10, 10], "entropy": entropy, "confident": confident, "step": [100, 200]}
    return h if d_fake is None else {**h, "d_fake": d_fake}


def test_theory_9_words_each_adversarial_run_from_its_last_check():
    import types

    import numpy as np

    from kr_utils.theory import adversarial
    runs = {"gan_minimax": types.SimpleNamespace(history=_history([0.5, 0.02], [0.9, np.nan], [0.3, 0.1]), train_time_s=5.0),
            "gan": types.SimpleNamespace(history=_history([0.5, 0.8], [0.9, 0.3], [0.5, 0.4]), train_time_s=6.0),
            "wgan_gp": types.SimpleNamespace(history=_history([0.9, 0.7], [0.9, 0.95]), train_time_s=7.0)}
    summary = adversarial.run_summary(runs)
    assert summary["gan_minimax"]["min_entropy"] == 0.9 and summary["wgan_gp"]["final_d_fake"] is None
    t = adversarial.adversarial_texts(summary, {"wasserstein": [2.0, 0.5], "confident": [0.9, 0.7], "step": [100, 200]})
    assert t["t9_gan_minimax_state"].startswith("a failed run") and t["t9_gan_minimax_entropy"].startswith("undefined")
    assert t["t9_gan_state"] == "a collapse onto few classes" and t["t9_wgan_gp_state"].startswith("no collapse")
    assert "t9_wgan_gp_dfake" not in t and t["t9_gan_dfake"] == "0.40" and t["t9_minimax_verdict"] == "lower than"
    assert t["t9_wgan_w_verb"] == "fell" and t["t9_wgan_peak"] == "90% at update 100"
    assert t["t9_wgan_peak_verdict"].startswith("an intermediate optimum")
    t = adversarial.adversarial_texts(summary, {"wasserstein": [0.5, 2.0], "confident": [0.7, 0.9], "step": [100, 200]})
    assert t["t9_wgan_w_verb"] == "rose" and t["t9_wgan_peak_verdict"].startswith("its last check is its best")


def test_theory_9_words_the_codes_from_a_paired_interval_and_the_grid():
    import numpy as np

    from kr_utils.theory import adversarial
    rng = np.random.default_rng(0)
    ae = {"recon": rng.normal(100, 5, 1000), "kl": np.zeros(1000)}
    per_image = {"ae": ae, "vae": {"recon": ae["recon"] + 3 + rng.normal(0, 1, 1000), "kl": np.full(1000, 4.0)}}
    t, losses = adversarial.latent_texts(per_image, {"ae": 0.5, "vae": 0.8}, grid_tol=0.05)
    assert t["t9_recon_verdict"].startswith("the VAE pays") and t["t9_prior_verdict"].startswith("The teacher's reading agrees")
    assert losses["vae"]["test_kl"] == 4.0 and losses["ae"]["test_kl"] is None and t["t9_vae_kl"] == "4.0"
    per_image["vae"]["recon"] = ae["recon"] + rng.normal(0, 1, 1000)
    t, _ = adversarial.latent_texts(per_image, {"ae": 0.5, "vae": 0.52}, grid_tol=0.05)
    assert "nothing measurable" in t["t9_recon_verdict"] and "does not tell the two apart" in t["t9_prior_verdict"]
    t, _ = adversarial.latent_texts(per_image, {"ae": 0.8, "vae": 0.5}, grid_tol=0.05)
    assert "sure of more of the autoencoder's images" in t["t9_prior_verdict"]


def test_theory_1_compares_the_two_classifiers_on_the_same_points():
    import numpy as np

    from kr_utils.theory import toy
    r = toy.generative_vs_discriminative(0, "cpu", n=300)
    assert len(r.y_test) == 600 and r.generative_right.shape == r.discriminative_right.shape == (600,)
    assert 0.9 < r.generative_right.mean() < 0.99 and 0.9 < r.discriminative_right.mean() < 0.99  # near the Bayes rate, 97.0%
    assert r.new_points.shape == (400, 2)
    w0, w1, b = r.boundary  # the line separates the two means (-2, -2) and (2, 2)
    assert np.sign(-2 * w0 - 2 * w1 + b) != np.sign(2 * w0 + 2 * w1 + b)
    t = toy.gen_disc_texts(r)
    assert t["t1_acc_gen"] == f"{100 * r.generative_right.mean():.1f}%" and t["t1_bayes"] == "97.0%"
    n_gen = int((r.generative_right & ~r.discriminative_right).sum())
    assert t["t1_disagree"].startswith(f"{n_gen} point")
    assert t["t1_reading"].endswith("loses nothing measurable") or "does worse" in t["t1_reading"]
    worse = toy.GenDisc(r.x_test, r.y_test, np.zeros(600, bool), np.ones(600, bool), r.boundary, r.new_points, 1.5,
                        r.means)
    assert "does worse" in toy.gen_disc_texts(worse)["t1_reading"]


def test_chapter_5_grid_texts_word_the_budget_and_the_intervals():
    import types

    import numpy as np
    import torch

    from kr_utils import pipeline
    rng = np.random.default_rng(0)
    y = torch.as_tensor(rng.integers(0, 10, 2000))

    def run(acc):
        right = rng.random(2000) < acc
        logits = torch.nn.functional.one_hot(torch.where(torch.as_tensor(right), y, (y + 1) % 10), 10).float()
        return {"test_logits": logits, "accuracy": float(right.mean())}
    seeds = CPU.student.seeds
    grid = types.SimpleNamespace(main={s: run(0.95) for s in seeds}, main_cell=("resnet_preact", "hard"), shared=True,
                                 budget={"epochs": {"resnet_preact": max(CPU.studies.grid_epoch_choices)},
                                         "val_real_accuracy": {"resnet_preact": 0.9}})
    t = pipeline.grid_texts(CPU, grid, np.ones((1, 2000), bool), y)
    assert t["student_main_cell"] == "resnet_preact, hard labels" and t["student_labels"] == "hard labels"
    assert "chosen from" in t["grid_budget"] and "chose the largest candidate" in t["grid_budget"]
    assert t["student_gap"].startswith("the teacher") and "higher" in t["student_gap"]
    assert t["student_test_n"] == "2,000" and t["student_spread"].startswith(", ± ")
    first = grid.main[seeds[0]]["accuracy"]
    lo, hi = (float(v.strip("[]")) / 100 for v in t["student_test_interval"].split(", "))
    assert lo < 100 * first / 100 < hi
    grid.budget["val_real_accuracy"] = {}
    assert "fixed by the profile" in pipeline.grid_texts(CPU, grid, np.ones((1, 2000), bool), y)["grid_budget"]
    one = dataclasses.replace(CPU, studies=dataclasses.replace(CPU.studies, grid_seeds=(0,)))
    assert "seeds' spread is not measured" in pipeline.grid_texts(one, grid, np.ones((1, 2000), bool), y)["grid_df_sentence"]


def test_chapter_6_design_and_budget_texts_follow_the_profile(monkeypatch):
    from kr_utils import studies
    monkeypatch.setattr(studies, "fit_digits", lambda cfg, subset: (None, [0] * 50_000))
    t = studies.degradation_design_texts(CPU)
    assert t["degr_passes_short"] == f"{CPU.diffusion.steps * CPU.diffusion.batch_size / 50_000:.1f} here, 100 there"
    assert t["degr_kept"] == f"{CPU.studies.degradation_kept:,d}" and t["degr_steps"].endswith(f"of {CPU.diffusion.steps:,d} steps")
    passes = float(t["degr_passes_short"].split()[0])
    assert ("fewer than the thesis' made by its epoch 8" in t["degr_passes"]) == (passes < 8)
    assert ("is not reached" in t["degr_passes"]) == (passes < 80)
    choices = CPU.studies.degradation_epoch_choices
    b = studies.degradation_budget_texts(CPU, {"epochs": {"resnet_preact": max(choices), "simple_cnn": min(choices)}})
    assert b["degr_budget"].startswith(f"resnet_preact {max(choices)} epochs (") and "chose the largest" in b["degr_budget"]
    assert b["degr_covers"] == "over the seeds and the test digits" and "chosen for it on the real validation" in b["degr_budget_how"]
    fixed = dataclasses.replace(CPU, studies=dataclasses.replace(CPU.studies, degradation_epoch_choices=(),
                                                                  degradation_seeds=(0,)))
    b = studies.degradation_budget_texts(fixed, {"epochs": {"resnet_preact": 3}})
    assert b["degr_budget_how"].startswith("the profile's epochs") and b["degr_covers"].endswith("(one seed)")


def test_chapter_3_knob_texts_read_each_setting_and_pair():
    import types

    from kr_utils import studies
    from kr_utils.comparison import Comparison
    ids = ["clip", "no_clip", "w_0.0", "w_1.0", "w_4.0", "ddim"] + [f"xT_{a}_noise_{b}" for a, b in studies.NOISE_SCALES]
    results = {k: {"confidence": 0.9 + i / 1000, "agreement": 0.9, "accepted": 0.5 + i / 100, "diversity": 1.0 + i,
                   "samples_per_s": 10.0} for i, k in enumerate(ids)}
    knobs = {k: types.SimpleNamespace(passes=400 if k != "ddim" else 40, label=k.upper()) for k in ids}
    up = Comparison(0.05, (0.02, 0.08), 0.01, "paired bootstrap", "over the digits", (100, 100))
    comps = {p: {"accepted": up, "diversity": up} for p in studies.KNOB_PAIRS}
    t = studies.knob_texts(CPU, results, knobs, comps, real_diversity=7.5)
    assert t["knob_clip_accept"] == "51.0% → 50.0%" and t["knob_w_div"] == "3.00 → 5.00" and t["knob_real_div"] == "7.50"
    assert t["knob_noise_div"] == "7.00, 8.00, 9.00, 10.00" and "10 times fewer" in t["ddim_speedup"]
    assert t["knob_clip_cmp"].startswith("the acceptance of clipping is 5.0 points higher")
    knobs["ddim"].passes = 400
    assert "times fewer" not in studies.knob_texts(CPU, results, knobs, comps, 7.5)["ddim_speedup"]
    shown = studies.knob_shown(CPU, results, knobs, 7.5).data
    assert shown.loc["real validation digits", "diversity"] == 7.5 and "CLIP" in shown.index


def test_chapter_4_set_texts_count_what_passed_and_what_was_kept():
    from kr_utils import pipeline
    summary = {"size": 1000, "generated": 1500, "agreement": 0.97, "generation_time_s": 90.0, "generated_per_s": 16.7}
    report = {"accepted_at_threshold": 0.8, "kept_below_threshold": 0, "final_threshold": 0.9, "threshold": 0.9}
    t = pipeline.synthetic_set_texts(CPU, summary, report, "cpu")
    assert t["synth_overflow"] == "200" and t["synth_kept_share"] == "66.7%" and t["synth_time"] == "1.5"
    assert t["synth_acceptance"] == "80.0%" and t["synth_agreement"] == "97.0%" and t["synth_rate"] == "17"
    t = pipeline.synthetic_set_texts(CPU, summary | {"agreement": None}, report | {"kept_below_threshold": 300, "final_threshold": 0.85}, "cpu")
    assert "300 of the kept digits are below 0.9" in t["synth_threshold_note"]
    assert t["synth_overflow"] == "500" and t["synth_agreement"] == "n/a"  # 1,200 passed, 700 of the kept did


def test_chapter_9_distribution_texts_name_each_space_and_its_floor():
    import torch

    from kr_utils import claims
    g = torch.Generator().manual_seed(0)
    feats = {w: torch.randn(400, 8, generator=g) + (0.5 if w == "synthetic" else 0) for w in ("val", "test", "synthetic")}
    labels = {w: torch.arange(400) % 4 for w in feats}
    floor, syn = claims.floor_and_set(feats, labels, size=200, k=3, seed=0)
    assert floor["size"] == syn["size"] == 200 and syn["frechet"] > floor["frechet"]
    spaces = {"teacher": (floor, syn), "untrained network": (floor, syn)}
    t = claims.distribution_texts(spaces)
    assert t["fd_size"] == "200" and t["fd_syn"] == f"{syn['frechet']:.2f}" and t["fd_syn_rand"] == f"{syn['frechet']:.3g}"
    assert {"prec_floor", "rec_floor_rand", "prec_syn_rand"} <= set(t)
    assert list(claims.distribution_frame(spaces).columns) == ["real test (floor) (teacher)", "synthetic set (teacher)",
                                                               "real test (floor) (untrained network)",
                                                               "synthetic set (untrained network)"]


def test_chapter_10_weakest_class_texts_say_whether_the_rankings_coincide():
    import numpy as np

    from kr_utils import analysis
    names = ["T-shirt", "Trouser", "Shirt"]
    seeds = np.array([[0.9, 0.99, 0.6], [0.88, 0.98, 0.65]])
    table = analysis.per_class_table([0.95, 0.99, 0.8], seeds, names)
    assert table.loc["Shirt", "student, lowest seed"] == 0.6 and table.loc["Shirt", "student"] == 0.625
    t = analysis.weakest_texts(table, seeds, "Shirt")
    assert t["fm_worst_class"] == "Shirt (62.5%, teacher 80.0%)" and "coincidence of three rankings" in t["fm_worst_verdict"]
    assert t["fm_worst_each"] == "the weakest class of each of its seeds (2 seeds)"
    t = analysis.weakest_texts(table, np.array([[0.9, 0.99, 0.6], [0.5, 0.98, 0.65]]), "Trouser")
    assert t["fm_worst_each"] == "while the seeds' own weakest are Shirt, T-shirt"
    assert t["fm_worst_verdict"] == ("The teacher's weakest class is Shirt, and the class whose generated images it "
                                     "accepted least often Trouser.")


def test_theory_8_thresholds_are_the_first_steps_below_each_level():
    import numpy as np

    from kr_utils import diffusion
    from kr_utils.theory import analytic
    ab = np.cumprod(1 - diffusion.linear_beta_schedule(1000).numpy())
    th = analytic.phase_thresholds(1.5, 10_000, ab)
    for level, step in ((th["ab_c"], th["t_c"]), (th["ab_b"], th["t_b"])):
        assert 0 < level < 1 and ab[step] < level <= ab[step - 1]
    assert abs(th["t_numeric"] - th["t_c"]) <= 5  # the computed potential loses its double well where (T8) says
    t = analytic.threshold_texts(th, 1.5, 10_000, 0.0, ab)
    assert t["t8_t_c"] == th["t_c"] + 1 and t["t8_n"] == "10,000" and t["t8_m_star"] == f"{th['m_star']:.3f}"
    curve = {"shift": np.linspace(0, 1, 11), "committed": np.linspace(0, 1, 11)}
    assert analytic.max_gap(curve, {**curve, "committed": curve["committed"] * 0.5}, np.linspace(0, 1, 5)) == 0.5
    assert analytic.max_gap(curve, curve, np.linspace(0, 1, 5)) == 0.0


def test_the_theory_figures_draw_what_they_are_given():
    import numpy as np
    import pandas as pd
    import torch

    from kr_utils import plots
    x = np.random.default_rng(0).normal(size=200)
    grid = np.linspace(-3, 3, 50)
    assert len(plots.density_fits(x, {"a": (grid, np.exp(-grid ** 2)), "b": (grid, grid * 0)}).axes[0].lines) == 2
    pts = torch.randn(100, 2)
    assert len(plots.sample_panels({"one": (pts, pts), "two": (pts, pts)}).axes) == 2
    sweep = pd.DataFrame({"method": ["a", "a", "b", "b"], "strength": [0, 1, 0, 1], "fraction_requested": [0.5, 0.9, 0.5, 1],
                          "spread_requested": [0.5, 0.4, 0.5, 0.3]})
    assert len(plots.guidance_panels(sweep).axes[1].lines) == 3  # two methods and the data's spread
    curve = {"shift": np.linspace(-1, 3, 5), "committed": np.linspace(0, 1, 5), "s_curvature": 0.5, "s_bimodal": 1.0}
    assert len(plots.commitment_curves({100: curve, 10_000: curve}).axes[0].lines) == 4
    fig = plots.boundary_and_draws(pts, torch.zeros(100), (1.0, 1.0, 0.0), pts)
    assert len(fig.axes) == 2


def test_theory_6_texts_read_each_model_and_the_weighting():
    import pandas as pd
    import torch

    from kr_utils.theory import autoencoders as ae
    names = list(ae.T6_KEYS.values())
    cost = pd.DataFrame({n: {ae.ED: 1.0 + i, "parameters": 1000 * (i + 1), "training time (s)": 10.0 * i}
                         for i, n in enumerate(names)}).T
    t = ae.cost_texts(cost, 0.5, 9.0)
    assert t["t6_ed_eps"] == "2.00" and t["t6_params_elbo"] == "4,000" and t["t6_time_shared"] == "20 s"
    assert t["t6_ed_floor"] == "0.50" and t["t6_ed_noise"] == "9.00"
    eps, elbo = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    start = ae.flat_weights(eps) - 1.0  # the eps model moved by 1 in every weight
    elbo.load_state_dict(eps.state_dict())
    specs = {ae.T6_KEYS["eps"]: (eps, 1, None), ae.T6_KEYS["elbo"]: (elbo, 1, torch.tensor([1.0, 50.0]))}
    assert ae.weighting_moved(specs, start) == 0.0  # the same end: the weighting did not move it
    with torch.no_grad():
        elbo.bias += 1.0
    assert 0 < ae.weighting_moved(specs, start) < 1
    w = ae.weighting_texts(specs, start, 20, 512)
    assert w["t6_elbo_ratio"] == "50" and w["t6_width"].endswith("narrower") and w["t6_hidden"] == 512


def test_theory_7_takes_test_digits_class_by_class(mnist_dir, monkeypatch):
    import torch

    from kr_utils.theory import restoration
    monkeypatch.setenv("KR_DATA_DIR", str(mnist_dir))
    x0, y = restoration.test_digits(20)
    assert y.tolist() == list(range(10)) * 2 and x0.shape == (20, 1, 28, 28)
    assert x0.min() >= -1 and x0.max() <= 1 and x0.dtype == torch.float32


def test_chapter_9_names_students_below_the_books_collapse_level():
    from kr_utils import claims
    from kr_utils.evaluate import summarize_seeds

    def row(values):
        return {"accuracy": summarize_seeds(values), "recall": 0.5, "precision": 0.9, "acceptance": 0.8,
                "distribution_size": 1030}
    rows = {"ours": row([0.94, 0.95, 0.93]), "thesis": row([0.81, 0.80, 0.79]), "thesis_code": row([0.33, 0.49, 0.39])}
    t = claims.sampler_texts(rows)
    assert t["sampler_collapse"].startswith("3 of 3 students of the thesis' code's sampler scored below the collapse "
                                            "level (50%; the lowest 33.0%")
    assert t["sampler_collapse"].endswith("; each seed is listed in the table.")  # recall 50%: not the pool's fault
    rows["thesis_code"]["recall"] = 0.001
    assert "pool's recall is 0.1%" in claims.sampler_texts(rows)["sampler_collapse"]
    assert "the thesis' text's" not in t["sampler_collapse"] and t["sampler_fd_size"] == "1,030"
    assert t["sampler_thesis_vs_ours"] == "not compared (too few digits on one side)"
    rows["thesis_code"] = row([0.6, 0.7, 0.65])
    assert claims.sampler_texts(rows)["sampler_collapse"] == "No student collapsed."


def test_theory_1_curve_fits_each_draw_as_the_single_fit_does():
    import numpy as np
    import torch

    from kr_utils.theory import toy
    curve = toy.gen_disc_curve((8, 64), 3, 0, held_out=500)
    g = torch.Generator().manual_seed(1)
    xt, yt = toy.two_gaussians(500, g, std=1.5)
    data = [toy.two_gaussians(8, g, std=1.5) for _ in range(3)]
    one_by_one = np.stack([toy._right(*toy._fit_both(x, y, d, "cpu"), xt, yt) for d, (x, y) in enumerate(data)], 1)
    assert curve[8]["generative"][0] == one_by_one[0].mean() and curve[8]["discriminative"][0] == one_by_one[1].mean()
    assert "held-out points" in curve[64]["difference"].covers
    t = toy.curve_texts(curve, 3)
    assert t["t1_curve_sizes"] == "8, 64" and t["t1_curve_reading"].startswith("the generative classifier is ")
    assert t["t1_curve_small"].startswith("at 8 points a class, ")


def test_theory_8_words_the_gap_from_the_gaps_sampling_alone_makes():
    from kr_utils.theory import analytic
    said = analytic.gap_reading(0.02, [0.01, 0.03, 0.04, 0.025])
    assert said.startswith("no larger than sampling alone makes (0.010 to 0.040 over 4 pairs") and "75%" in said
    assert analytic.gap_reading(0.05, [0.01, 0.03]).startswith("larger than every gap that sampling alone makes")


def test_theory_7_class_difference_is_paired_digit_by_digit():
    import pandas as pd
    import torch

    from kr_utils.theory import restoration
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(10, 1, 4, 4, generator=g) * 2 - 1
    near, far = x0 + 0.1, x0 + 0.5
    m, lo, hi = restoration.class_difference(near, far, x0)
    assert hi < 0 and m == pytest.approx((0.05 ** 2) - (0.25 ** 2))
    t = restoration.class_texts({100: (m, lo, hi), 400: (0.0, -0.01, 0.01), 600: (0.02, 0.01, 0.03)})
    assert t["t7_class_reading"] == ("the class brings the rebuilt digit measurably closer to the original at t0 = 100; "
                                     "moves it measurably further from the original at t0 = 600; makes no measurable "
                                     "difference at t0 = 400")
    recon = pd.DataFrame({"reconstruction, no class": [0.01, 0.2], "teacher reads the class, no class given": [0.9, 0.3]},
                         index=pd.Index([100, 600], name="t0"))
    assert restoration.recon_texts(recon, 10) == {"t7_mse_100": "0.0100", "t7_mse_600": "0.2000", "t7_reads": "9 of 10, 3 of 10"}
