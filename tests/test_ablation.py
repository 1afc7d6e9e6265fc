"""Chapter 7's ablation of the thesis' recipe (kr_utils.ablation): each variant undoes one
choice of kr_utils.thesis.RECIPE and keeps the others."""
import dataclasses

import numpy as np
import pytest
import torch

from kr_utils import ablation, config, distill, thesis

CFG = config.get_config("cpu")


def _set(per_class=20, seed=0):
    rng = np.random.default_rng(seed)
    requested = np.repeat(np.arange(10), per_class)
    logits = rng.normal(size=(len(requested), 10)).astype(np.float32)
    logits[np.arange(len(requested)), (requested + (np.arange(len(requested)) % 5 == 0)) % 10] += 10  # 1 in 5 relabelled
    images = np.where(rng.random((len(requested), 28, 28)) < 0.2, 255, 0).astype(np.uint8)
    return {"images": images, "requested": requested, "logits": logits}


def test_the_recipe_is_the_scripts():
    recipe, best = ablation.recipe_classifier(CFG, "thesis_recipe")
    r = thesis.RECIPE
    assert (recipe.arch, recipe.epochs, recipe.lr, recipe.batch_size) == (r.student_arch, 80, 1e-3, 64)
    assert recipe.patience > recipe.epochs and not recipe.lr_decay and not recipe.soft and not recipe.augment
    assert best is False  # the last weights


def test_each_variant_undoes_one_choice_of_the_student():
    base, _ = ablation.recipe_classifier(CFG, "thesis_recipe")
    changed = {}
    for v in ablation.VARIANTS[1:]:
        recipe, best = ablation.recipe_classifier(CFG, v)
        changed[v] = {f.name for f in dataclasses.fields(recipe) if getattr(recipe, f.name) != getattr(base, f.name)}
        changed[v] |= {"select_best"} if best else set()
    assert changed["stopping"] == {"patience", "select_best"} and ablation.recipe_classifier(CFG, "stopping")[0].patience == 3
    assert changed["lr"] == {"lr"}  # the value alone: constant, as the recipe's
    assert changed["size"] == {"epochs"}
    for v in ("value_range", "sampler", "grey", "labels"):  # their change is in the data
        assert changed[v] == set(), v
    # the larger set trains as many updates as the recipe
    e = CFG.studies
    small = distill.optimizer_updates(10 * e.thesis_per_class, 0, 64, 80)
    big = distill.optimizer_updates(10 * e.ablation_per_class, 0, 64, ablation.recipe_classifier(CFG, "size")[0].epochs)
    assert abs(big - small) / small < 0.05


def test_recipe_data_grey_requested_and_the_two_splits():
    s = _set()
    tr, va = ablation.recipe_data(s, "thesis_recipe", 10, seed=0)
    assert len(tr[0]) + len(va[0]) == 85 and len(tr[0]) == 72  # 100 -> 85 -> 72 (+ 13 validation)
    assert tr[0].min() > -0.05  # grey: black stored as 127
    black, _ = ablation.recipe_data(s, "grey", 10, seed=0)
    assert black[0].min() == -1 and torch.equal(black[1], tr[1])
    teacher, _ = ablation.recipe_data(s, "labels", 10, seed=0)
    assert torch.equal(teacher[0], tr[0]) and not torch.equal(teacher[1], tr[1])
    assert (teacher[1] != tr[1]).float().mean() == pytest.approx(0.2, abs=0.1)
    # the first per_class of each class: a set built for more holds the smaller one first
    idx = ablation.first_per_class(s["requested"], 10)
    assert len(idx) == 100 and all((s["requested"][idx] == c).sum() == 10 for c in range(10))
    assert set(idx[s["requested"][idx] == 3]) == set(np.flatnonzero(s["requested"] == 3)[:10])
    other, _ = ablation.recipe_data(s, "thesis_recipe", 10, seed=1)
    assert not torch.equal(other[1], tr[1])  # the seed draws the splits


def test_every_variant_has_a_label_and_a_short_name():
    rows = set(ablation.VARIANTS + ablation.COMBINED + ablation.CONTROLS)
    assert set(ablation.variant_labels(CFG)) == rows == set(ablation.SHORT)
    assert set(ablation.AGAINST) == rows - {"thesis_recipe", "real_black"}
    assert ablation.AGAINST["real_grey"] == "real_black"  # the control isolates the storage
    # both undone: the [-1, 1] U-Net's set on black, against the same set on grey (the storage alone differs)
    assert ablation.SET_OF["range_on_black"] == "value_range" == ablation.AGAINST["range_on_black"]
    assert "range_on_black" in ablation.ON_BLACK and "value_range" not in ablation.ON_BLACK
    # the noise put back: the same U-Net, filter and storage, against the noiseless chain's row
    assert ablation.SET_OF["noise_on_black"] == "range_noise" and ablation.AGAINST["noise_on_black"] == "range_on_black"
    assert "noise_on_black" in ablation.ON_BLACK


def test_the_noise_row_changes_only_the_chains_per_step_noise():
    code, noisy = ablation.recipe_sampling(CFG, "thesis"), ablation.recipe_sampling(CFG, "thesis_noise")
    assert code.noise_scale == 0.0 and noisy.noise_scale == 0.5 == ablation.TEXT_NOISE
    assert dataclasses.replace(noisy, noise_scale=0.0) == code  # steps, guidance, clamp, x_T scale kept
    text = ablation.recipe_sampling(CFG, "thesis_text")  # the text's 0.5 / 0.5: x_T too
    assert text.x_T_scale == 0.5 == ablation.TEXT_X_T and dataclasses.replace(text, x_T_scale=1.0) == noisy
    assert ablation.AGAINST["text_on_black"] == "noise_on_black" and ablation.SET_OF["text_on_black"] == "range_text"


def test_the_controls_are_real_training_digits_stored_black_then_grey(monkeypatch):
    """real_set draws thesis_per_class digits of each class from fit_digits (the digits every
    model learns from, no validation or test digit) by the seed, labelled by their class; the
    two controls differ only in the storage."""
    cfg = config.get_config("smoke")
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 250)
    images = np.where(rng.random((250, 28, 28)) < 0.2, 255, 0).astype(np.uint8)
    images[:, 0, 0] = np.arange(250)  # each digit's own mark
    monkeypatch.setattr(ablation, "fit_digits", lambda c: (images, labels))
    real = ablation.real_set(cfg, 0)
    n = cfg.studies.thesis_per_class
    assert np.bincount(real["requested"], minlength=10).tolist() == [n] * 10
    marks = real["images"][:, 0, 0].astype(int)  # which digits were drawn: each its own mark
    assert all(labels[m] == y for m, y in zip(marks, real["requested"]))  # each keeps its true label
    other = ablation.real_set(cfg, 1)
    assert not np.array_equal(other["images"], real["images"])  # each seed its own draw
    assert np.array_equal(ablation.real_set(cfg, 0)["images"], real["images"])
    black, _ = ablation.recipe_data(real, "real_black", n, seed=0)
    grey, _ = ablation.recipe_data(real, "real_grey", n, seed=0)
    assert black[0].min() == -1 and grey[0].min() > -0.05  # black as the test digits; grey as the recipe stores
    assert torch.equal(black[1], grey[1])  # the same digits, the same split: only the storage differs
    assert torch.allclose(grey[0][black[0] == -1], torch.tensor(127 / 127.5 - 1))


def _control(black_acc, grey_acc, grey_collapsed, ci, black_interval, recipe_collapsed=()):
    from kr_utils.comparison import compare_runs
    change = compare_runs(np.array([[1] * 95 + [0] * 5]), np.array([[1] * 97 + [0] * 3]))
    change = dataclasses.replace(change, ci95=ci, difference=(ci[0] + ci[1]) / 2)
    return {"real_black": {"interval": black_interval, "collapsed": {"seeds": []}, "accuracy": {"n": 5, "mean": black_acc}},
            "real_grey": {"interval": [grey_acc - 0.01, grey_acc + 0.01], "collapsed": {"seeds": grey_collapsed},
                          "accuracy": {"n": 5, "mean": grey_acc}, "change": change},
            "thesis_recipe": {"collapsed": {"seeds": list(recipe_collapsed)}, "accuracy": {"n": 5}}}


def test_the_controls_reading_follows_their_runs():
    """Every branch: the storage collapses, costs, helps or leaves real digits alone; the
    generated digits' part is claimed only where the recipe itself collapsed."""
    collapsed = ablation.control_reading(_control(0.95, 0.3, [0, 1, 2], (-0.7, -0.6), [0.94, 0.96]))
    assert "costs a student of real digits" in collapsed and "89%" in collapsed and "hard to reconcile" in collapsed
    assert "consistent with the thesis' 94.31%" in collapsed and "60 to 70 points, 3 of its 5 seeds" in collapsed
    costs = ablation.control_reading(_control(0.95, 0.9, [1], (-0.07, -0.03), [0.95, 0.97]))
    assert "costs real digits 3.0 to 7.0 points" in costs and "above the thesis' 94.31%" in costs
    helps = ablation.control_reading(_control(0.95, 0.97, [], (0.01, 0.03), [0.90, 0.92]))
    assert "helps" in helps and "below the thesis' 94.31%" in helps
    none = ablation.control_reading(_control(0.95, 0.95, [], (-0.01, 0.01), [0.90, 0.92]))
    assert "no measurable difference" in none and "generated digits" not in none  # the recipe did not collapse
    none_collapsed = ablation.control_reading(_control(0.95, 0.95, [], (-0.01, 0.01), [0.90, 0.92], [0, 1, 2]))
    assert "by the generated digits stored that way" in none_collapsed
    both = _control(0.1, 0.1, [0, 1, 2], (-0.01, 0.01), [0.08, 0.12])
    both["real_black"]["collapsed"]["seeds"] = [0, 1, 2]
    assert "cannot tell" in ablation.control_reading(both)


def _row(label, interval, collapsed=()):
    return {"label": label, "interval": list(interval), "collapsed": {"seeds": list(collapsed)}, "accuracy": {"n": 5}}


def test_what_stays_unexplained_is_worded_from_the_rows():
    rows = {n: _row(n, (0.1, 0.3), (0, 1, 2)) for n in ablation.VARIANTS}
    rows["grey"] = _row("on black", (0.93, 0.95))
    said = ablation.unexplained(rows, 0.9431)
    assert said.startswith("The thesis' 94.31% lies inside the interval of on black ([93.00, 95.00]%).")
    assert "collapsed in most seeds, and so did those of value_range" in said and "still collapsed" in said
    rows["grey"] = _row("on black", (0.5, 0.99), (3,))
    assert "says little" in ablation.unexplained(rows, 0.9431)
    fine = {n: _row(n, (0.95, 0.97)) for n in ablation.VARIANTS}
    fine["lr"] = _row("lr", (0.1, 0.3), (0, 1, 2))  # a variant collapses, the recipe does not: no blame sentence
    said = ablation.unexplained(fine, 0.9431)
    assert said.startswith("No variant's interval holds") and "still collapsed" not in said


def test_the_spread_is_worded_from_both_spreads():
    assert "hint that its set was larger" in ablation.spread_reading(0.01, 0.0006, 723)
    assert ablation.spread_reading(0.0008, 0.0006, 723) == "the two spreads are comparable"
    assert "says nothing about the size" in ablation.spread_reading(0.05, 0.0006, 723, collapsed=True)
    assert "one seed measures no spread" in ablation.spread_reading(None, 0.0006, 723)


def test_reached_is_worded_from_the_recipes_interval():
    summ = {"thesis_recipe": {"interval": [0.93, 0.95]}}
    assert "consistent with it" in ablation.reached(summ, 0.9431) and "inside" in ablation.reached(summ, 0.9431)
    assert "above" in ablation.reached({"thesis_recipe": {"interval": [0.5, 0.9]}}, 0.9431)
    assert "below" in ablation.reached({"thesis_recipe": {"interval": [0.96, 0.99]}}, 0.9431)


def test_which_variants_hold_the_thesis_and_which_collapsed():
    summ = {"thesis_recipe": {"interval": [0.10, 0.30], "collapsed": {"seeds": [0, 1, 2]}, "accuracy": {"n": 5}},
            "grey": {"interval": [0.93, 0.95], "collapsed": {"seeds": []}, "accuracy": {"n": 5}},
            "lr": {"interval": [0.12, 0.40], "collapsed": {"seeds": [4, 1]}, "accuracy": {"n": 5}}}
    assert ablation.consistent_with(summ, 0.9431) == ["grey"]
    assert ablation.mostly_collapsed(summ) == ["thesis_recipe"]  # 2 of 5 is not more than half


def test_the_gpu_estimate_from_a_record():
    rec = {"diffusion": {"steps": 4000, "train_time_s": 120.0}, "synthetic_set": {"generated_per_s": 1000.0}}
    est = ablation.gpu_estimate(config.get_config("gpu"), rec, acceptance=0.5)
    assert est["unet_steps"] == 120 * 51000 // 64 and est["unet_min"] == pytest.approx(95625 / (4000 / 120) / 60)
    g = config.get_config("gpu").sampler
    passes = g.num_steps * (1 if g.guidance_w in (0, 1) else 2)
    assert est["set_min"] == pytest.approx(60000 / 0.5 * 800 / (1000 * passes) / 60)
    assert ablation.gpu_estimate(config.get_config("gpu"), {}, 0.5)["unet_min"] is None


def test_the_value_range_unet_learns_the_mapped_digits(tmp_path, monkeypatch):
    """The [-3, 1] U-Net trains on the real digits mapped there (and the control on [-1, 1])."""
    seen = {}

    def fake_train(model, images, labels, dcfg, **kw):
        seen[kw["options"].desc] = (float(images.min()), float(images.max()), dcfg.steps)
        from kr_utils.fit import FitResult
        return FitResult(model=model, losses=[0.1], steps=dcfg.steps)

    cfg = config.get_config("smoke")
    from kr_utils import checkpoints, models, store
    out = store.artifact_dir(cfg.run)
    unet = models.ConditionalUNet(base=8, mults=(1, 2), attention=False)
    checkpoints.save_checkpoint(out / "diffusion.pt", unet, kind="diffusion", config={}, profile=cfg.run, seed=0,
                                extra={"unet": unet.config, "schedule": {"T": 10, "beta_start": 1e-4, "beta_end": 0.02}})
    monkeypatch.setattr(ablation, "fit_tensors", lambda *a: (torch.rand(20, 1, 28, 28) * 2 - 1, torch.zeros(20).long()))
    monkeypatch.setattr(ablation, "train_diffusion", fake_train)
    p3 = ablation.range_unet(cfg, -3.0, "cpu")
    ablation.range_unet(cfg, -1.0, "cpu")
    lo3, hi3, steps = seen["U-Net on [-3, 1]"]
    assert lo3 >= -3 and lo3 < -2.5 and hi3 <= 1 and steps == cfg.studies.recipe_unet_steps
    assert seen["U-Net on [-1, 1]"][0] >= -1
    seen.clear()
    assert ablation.range_unet(cfg, -3.0, "cpu") == p3 and not seen  # reused while its inputs hold


def test_both_undone_is_worded_from_its_row():
    rows = {"thesis_recipe": _row("recipe", (0.1, 0.3), (0, 1, 2)), "range_on_black": _row("both", (0.93, 0.95))}
    said = ablation.both_reading(rows, 0.9431)
    assert "do not collapse, where the recipe's did" in said and "holds the thesis' 94.31%" in said
    rows["range_on_black"] = _row("both", (0.80, 0.90))
    assert "lies below the thesis' 94.31%" in ablation.both_reading(rows, 0.9431)
    rows["thesis_recipe"] = _row("recipe", (0.96, 0.98))
    assert "where the recipe's did" not in ablation.both_reading(rows, 0.9431)
    rows["range_on_black"] = _row("both", (0.1, 0.2), (0, 1, 2))
    assert "something else in the recipe" in ablation.both_reading(rows, 0.9431)
    rows["real_black"] = _row("real", (0.91, 0.97))  # real digits through the same recipe reach the thesis
    said = ablation.both_reading(rows, 0.9431)
    assert "below the collapse level" in said and "[91.00, 97.00]%" in said and "is the generated digits" in said
    rows["real_black"] = _row("real", (0.80, 0.90))  # they do not: the digits cannot be blamed alone
    assert "something else in the recipe" in ablation.both_reading(rows, 0.9431)


def test_the_noise_row_is_worded_from_its_change():
    from kr_utils.comparison import Comparison
    rows = {"noise_on_black": _row("noise", (0.92, 0.96))}
    rows["noise_on_black"]["change"] = Comparison(0.5, (0.45, 0.55), None, "t", "seeds", (5, 5))
    said = ablation.noise_reading(rows, 0.9431)
    assert "raises the students by +45.0 to +55.0 points" in said and "holds the thesis' 94.31%" in said
    rows["noise_on_black"]["change"] = Comparison(0.0, (-0.02, 0.03), None, "t", "seeds", (5, 5))
    rows["noise_on_black"]["interval"] = [0.35, 0.42]
    said = ablation.noise_reading(rows, 0.9431)
    assert "no measurable difference" in said and "lies below the thesis' 94.31%" in said
    rows["noise_on_black"]["vs_real"] = Comparison(-0.07, (-0.1, -0.04), 0.001, "t", "over seeds and digits", (5, 5))
    said = ablation.noise_reading(rows, 0.9431)
    assert said.endswith("scores 7.00 points lower than the student of real digits on black (95% interval [-10.00, "
                         "-4.00], over seeds and digits; t, p = 0.001).")
    rows["noise_on_black"] = _row("noise", (0.1, 0.2), (0, 1, 2))
    assert "still score below the collapse level" in ablation.noise_reading(rows, 0.9431)


def test_within_class_spread_is_zero_for_copies_and_grows_with_difference():
    one = np.zeros((4, 28, 28), np.uint8)
    labels = np.array([0, 0, 1, 1])
    assert ablation.within_class_spread(one, labels) == 0.0  # the same digit drawn again and again
    other = one.copy()
    other[1, :10, :10] = 255  # one digit of class 0 differs by 100 pixels at full ink: distance 10
    assert ablation.within_class_spread(other, labels) == pytest.approx(5.0)  # class 0: 10, class 1: 0


def test_row_text_quotes_the_interval_over_seeds_and_digits():
    row = {"accuracy": {"mean": 0.9413, "n": 5}, "interval": [0.9090, 0.9736]}
    assert ablation.row_text(row) == "94.13% [90.90, 97.36] over seeds and test digits"
    row["accuracy"]["n"] = 1  # the smoke profile's one seed: the test digits' error alone
    assert ablation.row_text(row) == "94.13% [90.90, 97.36] over the test digits (one seed)"


def test_spread_interval_holds_its_estimate_and_narrows_with_more_digits():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 40)
    images = (rng.random((120, 28, 28)) < 0.3).astype(np.uint8) * 255
    m, lo, hi = ablation.spread_interval(images, labels, per_class=40, draws=100)
    assert m == pytest.approx(ablation.within_class_spread(images, labels, 40))
    assert lo < m < hi and hi - lo < 0.1 * m
    copies = np.repeat(images[:1], 120, 0)  # one digit again and again: no spread, no width
    assert ablation.spread_interval(copies, labels, 40, draws=20) == (0.0, 0.0, 0.0)
    few = ablation.spread_interval(images, labels, per_class=5, draws=100)
    assert few[2] - few[1] > hi - lo


def test_agreement_per_class_names_the_classes_whose_labels_are_wrong():
    s = _set(per_class=20)  # 1 in 5 relabelled by the teacher (the logits' argmax is the next class)
    agree = ablation.agreement_per_class(s)
    assert agree.shape == (10,) and np.allclose(agree, 0.8)
    s["logits"][s["requested"] == 4] = np.eye(10)[5] * 10  # every 4 read as a 5
    agree = ablation.agreement_per_class(s, per_class=10)
    assert agree[4] == 0 and "for 4 the teacher reads it as another class" in ablation.agreement_reading(agree)
    assert "reads" not in ablation.agreement_reading(np.full(10, 0.9))


def test_chapter_texts_cover_every_row_and_set():
    from kr_utils.comparison import Comparison
    rows = {}
    for n in ablation.VARIANTS + ablation.COMBINED + ablation.CONTROLS:
        rows[n] = _row(n, (0.1, 0.3), (0, 1, 2)) | {"accuracy": {"n": 5, "std": 0.05, "mean": 0.2},
                                                     "against": ablation.AGAINST.get(n)}
        rows[n]["change"] = Comparison(0.01, (-0.02, 0.04), 0.5, "t", "seeds and digits", (5, 5)) if n in ablation.AGAINST else None
    t = ablation.result_texts(CFG, rows)
    assert {f"rec_says_{n}" for n in ablation.AGAINST} <= set(t) and "rec_says_thesis_recipe" not in t
    assert t["rec_says_value_range"].endswith("one U-Net per range)") and t["rec_collapsed_lr"] == "3 of 5"
    assert t["rec_std"] == "5.00 points" and "collapsed runs" in t["rec_spread_reading"]
    rows["thesis_recipe"]["accuracy"]["std"] = None
    assert ablation.result_texts(CFG, rows)["rec_std"] == "not measured (one seed)"
    s = _set(per_class=20) | {"pass_rate": 0.5, "generated": 400, "final_threshold": 0.85, "time_s": 12.0, "num_steps": 100}
    texts = ablation.set_texts(CFG, {"thesis_recipe": s}, (s["images"], s["requested"]))
    assert texts["rec_set_thesis_recipe"] == "50.0% of 400 drawn digits passed, confidence 0.85 at the end, 12 s"
    assert texts["rec_spread_thesis_recipe"] == texts["rec_spread_real"]  # the same digits
    d = ablation.design_texts(CFG, {"thesis_recipe": s}, 10000)
    assert d["rec_chain_steps"] == "100 steps" and d["rec_test_n"] == "10,000" and d["rec_size_ratio"] == "2"
    assert d["rec_abar400"] == "0.017" and d["rec_signal400"] == "0.13"  # its 400-step chain starts where 13% of the digit is left
    c = ablation.cost_texts({"unet_steps": 95625, "unet_min": None, "set_min": None, "device": None})
    assert c == {"rec_gpu_unet": "95,625 steps", "rec_gpu_set": "not estimated (no gpu record)"}


def test_the_noise_reading_names_the_share_of_the_gap_and_the_spreads_only_where_they_part():
    from kr_utils.comparison import Comparison
    rows = {"noise_on_black": _row("noise", (0.84, 0.90)) | {"accuracy": {"n": 5, "mean": 0.87}},
            "range_on_black": _row("both", (0.36, 0.43)) | {"accuracy": {"n": 5, "mean": 0.39}},
            "real_black": _row("real", (0.91, 0.97)) | {"accuracy": {"n": 5, "mean": 0.94}}}
    rows["noise_on_black"]["change"] = Comparison(0.48, (0.455, 0.502), 1e-6, "t", "over seeds and digits", (5, 5))
    spreads = {"value_range": (1.47, 1.44, 1.51), "range_noise": (6.43, 6.36, 6.49)}
    said = ablation.noise_reading(rows, 0.9431, spreads)
    assert "48 of the 55 points between the noiseless row and as many real digits" in said
    assert "spread more within a class (6.43 against 1.47)" in said
    spreads["range_noise"] = (1.50, 1.45, 1.55)  # the intervals overlap: no mechanism named
    assert "spread more" not in ablation.noise_reading(rows, 0.9431, spreads)
    rows["text_on_black"] = _row("text", (0.92, 0.96))
    assert "holds the thesis' 94.31%" in ablation.text_reading(rows, 0.9431)
