"""The study helpers of chapters 1 and 5-7: result cache, label settings, ablation data,
diversity and error measures, and keeping the final weights."""
import numpy as np
import pytest
import torch


from kr_utils import config, distill, evaluate, store, studies


def test_cached_reuses_until_the_key_changes(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"acc": 0.5 + len(calls), "x": torch.arange(3)}

    path = tmp_path / "r.pt"
    a = store.cached(path, "k1", compute)
    b = store.cached(path, "k1", compute)
    assert a["acc"] == b["acc"] == 1.5 and len(calls) == 1
    assert store.cached(path, "k2", compute)["acc"] == 2.5 and len(calls) == 2
    path.write_bytes(b"torn file")  # an interrupted foreign write: recomputed, not trusted
    assert store.cached(path, "k2", compute)["acc"] == 3.5


def test_fingerprint_follows_settings_and_file_bytes(tmp_path):
    f = tmp_path / "ckpt.pt"
    f.write_bytes(b"a")
    k = store.fingerprint({"x": (1, 2)}, f)
    assert k == store.fingerprint({"x": [1, 2]}, f)  # tuples and lists are the same setting
    assert k != store.fingerprint({"x": [1, 3]}, f)
    f.write_bytes(b"b")
    assert k != store.fingerprint({"x": (1, 2)}, f)


def test_thesis_background_maps_black_to_grey():
    img = np.array([[0, 128, 255]], dtype=np.uint8)
    assert studies.thesis_background(img).tolist() == [[127, 191, 255]]


def test_per_class_subset_refuses_a_class_too_small():
    labels = np.repeat(np.arange(10), 30)
    assert len(studies.per_class_subset(labels, 20, 0)) == 200
    with pytest.raises(ValueError, match="fewer than per_class=31"):
        studies.per_class_subset(labels, 31, 0)


def test_feature_diversity():
    labels = torch.tensor([0, 0, 1, 1])
    same = torch.zeros(4, 3)
    assert evaluate.feature_diversity(same, labels) == 0.0
    spread = torch.tensor([[0.0, 0], [3, 4], [0, 0], [0, 1]])
    assert evaluate.feature_diversity(spread, labels) == pytest.approx((5 + 1) / 2)
    with pytest.raises(ValueError, match="at least two"):
        evaluate.feature_diversity(torch.zeros(2, 3), torch.tensor([0, 1]))


def test_most_confident_errors_and_format():
    logits = torch.tensor([[5.0, 0], [0, 1], [9, 0], [0, 3]])
    labels = torch.tensor([0, 0, 1, 1])
    assert evaluate.most_confident_errors(logits, labels, 5).tolist() == [2, 1]
    s = evaluate.summarize_seeds([0.99, 0.98, 0.97])
    assert evaluate.format_summary(s).startswith("98.00 ± 1.00% [")
    assert evaluate.format_summary(evaluate.summarize_seeds([0.5])) == "50.00% (1 seed)"


def test_select_best_false_keeps_the_final_weights():
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    # validation labels that disagree with training: the validation loss gets worse, so the
    # best epoch is the first, and only select_best=False returns the last weights
    yv = (y + 1) % 10
    m1, h1 = distill.train_classifier(model, (x, y), (x, yv),
                                      config.ClassifierRecipe(arch="simple_cnn", epochs=3, batch_size=16, lr=0.05, patience=5),
                                      seed=0, device="cpu", options=distill.ClassifierOptions(select_best=False))
    assert h1["best_epoch"] == 3
    m2, h2 = distill.train_classifier(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10)), (x, y),
                                    (x, yv), config.ClassifierRecipe(arch="simple_cnn", epochs=3, batch_size=16, lr=0.05, patience=5), seed=0,
                                      device="cpu")
    assert h2["best_epoch"] == int(np.argmin(h2["val_loss"])) + 1
    assert h2["best_epoch"] < 3


def test_run_classifier_caches_and_evaluates(tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(60, 1, 28, 28, generator=g) * 2 - 1
    y = torch.arange(60) % 10
    train_set, val_set, test = (x[:40], y[:40]), (x[40:50], y[40:50]), (x[50:], y[50:])
    scfg = config.ClassifierRecipe(arch="compressed_cnn", epochs=2, batch_size=16, lr=1e-3, patience=3)
    kw = dict(device="cpu", test=test)
    job = lambda seed, name: studies.RunJob(train_set, val_set, seed, tmp_path / name, "toy")  # noqa: E731
    with_curve = studies.run_classifier(job(0, "a.pt"), scfg, **kw)
    assert len(with_curve["history"]["real_test_acc"]) == 2
    assert with_curve["accuracy"] == pytest.approx((with_curve["test_logits"].argmax(1) == test[1]).float().mean().item())
    again = studies.run_classifier(job(0, "a.pt"), scfg, **kw)
    assert again["train_time_s"] == with_curve["train_time_s"]  # read back, not retrained
    other_seed = studies.run_classifier(job(1, "a.pt"), scfg, **kw)
    assert other_seed["train_time_s"] != with_curve["train_time_s"]
    no_curve = studies.run_classifier(job(0, "b.pt"), scfg, test_curve=False, **kw)
    assert "real_test_acc" not in no_curve["history"] and len(no_curve["history"]["epoch"]) == 2
    assert torch.equal(no_curve["test_logits"], with_curve["test_logits"])  # same seed, same model


def test_knob_settings_have_stable_ids_and_share_draws():
    smoke = config.get_config("smoke").sampler
    knobs = studies.knob_settings(smoke)
    assert list(knobs)[:2] == ["no_clip", "clip"] and "ddim" in knobs and "w_4.0" in knobs
    assert all(k.replace(".", "").replace("_", "").isalnum() for k in knobs)  # ids, not display labels
    assert knobs["ddim"].sampler == smoke.sampler and knobs["ddim"].steps == smoke.num_steps
    assert knobs["no_clip"].clip is False and knobs["xT_0.5_noise_1.0"].x_T_scale == 0.5
    # the clipped chain at the profile's w is the same drawing as the w row with that weight
    assert knobs["clip"].drawing() == knobs[f"w_{smoke.guidance_w}"].drawing()
    assert len(studies.knob_labels(smoke)) == 10 * smoke.knob_per_class
    # network passes per digit: two per step where guidance mixes both predictions
    assert knobs["w_1.0"].passes == smoke.knob_steps and knobs["w_0.0"].passes == smoke.knob_steps
    assert knobs["w_2.0"].passes == 2 * smoke.knob_steps and knobs["w_0.5"].passes == 2 * smoke.knob_steps


def test_threshold_note_names_the_lowered_threshold():
    from kr_utils import analysis
    assert analysis.threshold_note({"threshold": 0.9, "final_threshold": 0.9, "kept_below_threshold": 0},
                                   "digits") == "Every kept digit reached it."
    note = analysis.threshold_note({"threshold": 0.9, "final_threshold": 0.87, "kept_below_threshold": 12}, "digits")
    assert "0.87" in note and "12 of the kept digits are below 0.9" in note


def _deg_set(labels, generated=100, accepted=None):
    labels = torch.as_tensor(labels)
    accepted = len(labels) if accepted is None else accepted
    return {"labels": labels, "generated": generated, "accepted": accepted, "acceptance": accepted / generated,
            "short": False, "label_counts": torch.bincount(labels, minlength=10).tolist()}


def test_degradation_table_and_closest_student():
    cfg = config.get_config("smoke")
    sets = {10: ("k", _deg_set(torch.arange(30) % 10, accepted=60)),
            30: ("k", _deg_set(torch.zeros(5, dtype=torch.long)))}
    students = {("resnet_preact", 10): {"accuracy": 0.4, "val_real_accuracy": 0.45},
                ("simple_cnn", 10): {"accuracy": 0.2, "val_real_accuracy": 0.25}}
    table = studies.degradation_table(cfg, sets, students)
    assert list(table.index) == ["step_10", "step_30"] and table.loc["step_10", "kept"] == 30
    assert table.loc["step_10", "accepted"] == 60 and table.loc["step_10", "top_label_share"] == pytest.approx(0.1)
    assert table.loc["step_30", "top_label_share"] == 1.0  # a one-class set says so
    assert table.loc["step_30", "fraction_of_training"] == 1.0 and np.isnan(table.loc["step_30", "resnet_preact"])
    # the choice is made on the real validation digits: the test accuracy (0.85 / 0.4) plays no part
    students[("resnet_preact", 30)] = {"accuracy": 0.85, "val_real_accuracy": 0.30}
    assert studies.closest_student(students, "resnet_preact", 0.83) == 10
    assert studies.closest_student(students, "resnet_preact", 0.3) == 30
    del students[("resnet_preact", 30)]["val_real_accuracy"]
    with pytest.raises(ValueError, match="val_real_accuracy"):
        studies.closest_student(students, "resnet_preact", 0.83)


def test_degradation_set_has_one_size_whatever_its_labels(tmp_path, monkeypatch):
    # a generator that makes only "7"s the teacher accepts half of: the kept set is
    # degradation_kept digits whatever the labels (no cap per label), and says it is all 7s
    monkeypatch.setenv("KR_ARTIFACTS", str(tmp_path))
    cfg = config.get_config("smoke", synth__label_mode="teacher")  # 10 per class drawn, 40 kept
    n = 10 * cfg.studies.degradation_per_class

    def fake_draw(source, requested, sampling, *, seed, device, progress=True):
        logits = np.full((len(requested), 10), -10.0, np.float32)
        logits[:, 7] = np.where(np.arange(len(requested)) % 2 == 0, 10.0, -10.0)  # every other one confident
        return {"images": np.zeros((len(requested), 28, 28), np.uint8), "requested": requested, "logits": logits}

    monkeypatch.setattr(studies.synth, "draw_labelled", fake_draw)
    monkeypatch.setattr(studies, "load_model", lambda *a, **k: None)
    (tmp_path / "smoke").mkdir(exist_ok=True)
    (tmp_path / "smoke" / "diffusion_step10.pt").write_bytes(b"x")
    (tmp_path / "smoke" / "teacher.pt").write_bytes(b"t")
    _, s = studies.degradation_set(cfg, 10, None, None, seed=0, device="cpu")
    assert s["generated"] == n and s["accepted"] == n // 2 and not s["short"]
    assert len(s["labels"]) == cfg.studies.degradation_kept and s["label_counts"][7] == cfg.studies.degradation_kept
    tight = cfg.replace(studies__degradation_kept=n // 2 + 1)
    _, s2 = studies.degradation_set(tight, 10, None, None, seed=0, device="cpu")
    assert s2["short"] and len(s2["labels"]) == n // 2  # fewer accepted than the size: all kept, no student


def _fake_checkpoint(tmp_path, monkeypatch, confident_every=2, label_of=lambda req: 7):
    monkeypatch.setenv("KR_ARTIFACTS", str(tmp_path))

    def fake_draw(source, requested, sampling, *, seed, device, progress=True):
        logits = np.full((len(requested), 10), -10.0, np.float32)
        i = np.arange(len(requested))
        logits[i, [label_of(r) for r in requested]] = 10.0
        logits[i % confident_every != 0] = 0.0  # no class preferred: confidence 1/10, below every threshold
        return {"images": np.zeros((len(requested), 28, 28), np.uint8), "requested": requested, "logits": logits}

    monkeypatch.setattr(studies.synth, "draw_labelled", fake_draw)
    monkeypatch.setattr(studies, "load_model", lambda *a, **k: None)
    (tmp_path / "smoke").mkdir(parents=True, exist_ok=True)
    (tmp_path / "smoke" / "diffusion_step10.pt").write_bytes(b"x")
    (tmp_path / "smoke" / "teacher.pt").write_bytes(b"t")


def test_a_balanced_degradation_set_takes_an_equal_share_of_each_requested_class(tmp_path, monkeypatch):
    # every digit looks like a 7 to the teacher: balanced by *requested* class, labelled 7
    _fake_checkpoint(tmp_path, monkeypatch, confident_every=1)
    cfg = config.get_config("smoke", synth__label_mode="teacher")  # 10 per class drawn, 40 kept
    _, s = studies.degradation_set(cfg, 10, None, None, seed=0, device="cpu", balanced=True)
    assert np.bincount(s["requested"].numpy(), minlength=10).tolist() == [4] * 10 and not s["short"]
    assert s["label_counts"] == [4] * 10 and (s["logits"].argmax(1) == 7).all()  # labelled by request, as the thesis
    assert s["requested_accuracy"] == pytest.approx(0.1)  # only the requested 7s are 7s: the 4.4 measure
    # a class with fewer accepted digits than its share: every class gives that many (a smaller set)
    _fake_checkpoint(tmp_path / "half", monkeypatch, confident_every=2)  # half of each class accepted: 5 of 10
    tight = cfg.replace(studies__degradation_kept=60)
    _, s2 = studies.degradation_set(tight, 10, None, None, seed=0, device="cpu", balanced=True)
    assert not s2["short"] and np.bincount(s2["requested"].numpy(), minlength=10).tolist() == [5] * 10
    # fewer than MIN_SET digits in all: short, no student
    _fake_checkpoint(tmp_path / "rare", monkeypatch, confident_every=10)  # 1 of each class accepted
    _, s4 = studies.degradation_set(tight, 10, None, None, seed=0, device="cpu", balanced=True)
    assert s4["short"] and len(s4["labels"]) == 10 < studies.MIN_SET
    _fake_checkpoint(tmp_path, monkeypatch, confident_every=1)
    # the unbalanced set of the same draw is cached apart
    _, s3 = studies.degradation_set(cfg, 10, None, None, seed=0, device="cpu")
    assert not torch.equal(s3["requested"], s["requested"]) or len(s3["requested"]) != len(s["requested"])


def _runs(accs_by_seed, n=200):
    y = torch.arange(n) % 10
    out = {}
    for seed, acc in accs_by_seed.items():
        logits = torch.nn.functional.one_hot(y, 10).float()
        wrong = torch.arange(n) >= int(acc * n)
        logits[wrong] = torch.nn.functional.one_hot((y[wrong] + 1) % 10, 10).float()
        out[seed] = {"accuracy": acc, "test_logits": logits, "val_real_accuracy": acc}
    return out, y


def test_a_smaller_degradation_set_trains_more_epochs_for_the_same_updates(monkeypatch):
    cfg = config.get_config("smoke", studies__degradation_kept=40, studies__degradation_seeds=(0, 1),
                            student__soft=True)  # as at cpu: the degradation students must still train on hard labels
    calls = []

    def fake_runs(jobs, recipe, **kw):
        # the thesis' students: the set's labels alone (hard), the last weights scored
        assert recipe.soft is False and kw["select_best"] is False
        calls.append((recipe.arch, recipe.epochs, [j.cache_path.name for j in jobs]))
        return [{"accuracy": 0.5, "val_real_accuracy": 0.5} for _ in jobs]

    monkeypatch.setattr(studies, "run_classifiers", fake_runs)

    def set_of(n):
        return ("k", {"images": torch.zeros(n, 28, 28, dtype=torch.uint8), "labels": torch.arange(n) % 10,
                      "logits": torch.zeros(n, 10), "short": False})

    students = studies.degradation_seed_students(cfg, {10: set_of(40), 30: set_of(20)}, {"resnet_preact": 2,
                                                 "simple_cnn": 3}, device="cpu", test=None, holdout=None)
    by = {(a, e): names for a, e, names in calls}
    assert by[("resnet_preact", 2)] == ["resnet_preact_step10_seed0.pt", "resnet_preact_step10_seed1.pt"]
    assert by[("resnet_preact", 4)] == ["resnet_preact_step30_seed0.pt", "resnet_preact_step30_seed1.pt"]
    assert ("simple_cnn", 6) in by and set(students[("simple_cnn", 30)]) == {0, 1}
    assert studies.equal_update_epochs(20, 900, 450) == 40


def test_degradation_falls_are_worded_from_intervals():
    good, y = _runs({0: 0.9, 1: 0.91, 2: 0.92})
    bad, _ = _runs({0: 0.3, 1: 0.32, 2: 0.31})
    students = {("resnet_preact", 10): bad, ("resnet_preact", 30): good, ("simple_cnn", 10): good}
    said = studies.degradation_falls(students, "resnet_preact", y)
    assert said.startswith("from step 10 to step 30 it rises") and "test digits" in said
    same = studies.degradation_falls({("resnet_preact", 10): good, ("resnet_preact", 30): good}, "resnet_preact", y)
    assert same.startswith("no change") and "training seeds and the 200 test digits" in same


def test_degradation_detail_shows_each_seed_the_collapsed_and_the_change_against_the_last():
    """Where seeds collapse a mean hides it: the detail shows each seed, counts the collapsed
    ones and words each checkpoint against the last from its interval."""
    mixed, y = _runs({0: 0.95, 1: 0.2, 2: 0.94})
    good, _ = _runs({0: 0.97, 1: 0.96, 2: 0.975})
    same, _ = _runs({0: 0.97, 1: 0.96, 2: 0.975})
    d = studies.degradation_seed_detail({("resnet_preact", 10): mixed, ("resnet_preact", 20): same,
                                         ("resnet_preact", 30): good, ("simple_cnn", 10): good}, "resnet_preact", y)
    assert list(d.index) == ["step 10", "step 20", "step 30"]
    assert d.loc["step 10", "each seed (%)"] == "95.0, 20.0, 94.0" and d.loc["step 10", "collapsed seeds"] == "1 of 3"
    assert d.loc["step 30", "collapsed seeds"] == "0 of 3" and d.loc["step 30"].iloc[2] == ""
    assert d.loc["step 10"].iloc[2].startswith("-27.2 [") and d.loc["step 20"].iloc[2] == "+0.0 [-1.7, +1.7] (no measurable difference)"


def test_the_teachers_reading_of_a_draw_carries_its_interval():
    cfg = config.get_config("smoke")
    sets = {10: ("k", {"generated": 1000, "accepted": 500, "labels": torch.zeros(300), "requested_accuracy": 0.5})}
    row = studies.degradation_seed_table(cfg, sets, {}, torch.zeros(10)).loc["step_10"]
    assert row["requested_low"] == pytest.approx(0.4691, abs=1e-3) and row["requested_high"] == pytest.approx(0.5309, abs=1e-3)


def test_the_degradation_budget_is_chosen_on_the_real_validation_digits(monkeypatch):
    cfg = config.get_config("smoke", studies__degradation_epoch_choices=(1, 2, 3), student__soft=True)
    # the validation digits prefer 2 epochs, the test set 3: the choice follows validation
    val = {1: 0.5, 2: 0.9, 3: 0.8}
    test = {1: 0.5, 2: 0.6, 3: 0.99}

    def fake_runs(jobs, recipe, **kw):
        assert kw["holdout"] is not None and recipe.soft is False and kw["select_best"] is False
        return [{"val_real_accuracy": val[recipe.epochs], "accuracy": test[recipe.epochs]}]

    monkeypatch.setattr(studies, "run_classifiers", fake_runs)
    s = {"images": torch.zeros(40, 28, 28, dtype=torch.uint8), "labels": torch.arange(40) % 10,
         "logits": torch.zeros(40, 10)}
    b = studies.degradation_budget(cfg, ("k", s), seed=0, device="cpu", test=None, holdout=("x", "y"))
    assert b["epochs"] == {a: 2 for a in cfg.studies.grid_archs}
    assert studies.degradation_budget(config.get_config("smoke"), ("k", s), seed=0, device="cpu", test=None,
                                      holdout=None)["epochs"] == {a: 1 for a in cfg.studies.grid_archs}


def test_collapsed_seeds_names_them_and_measures_why():
    y = torch.arange(100) % 10
    one_class = torch.full((100, 10), -5.0); one_class[:, 3] = 5.0  # answers 3 whatever the digit
    good = torch.nn.functional.one_hot(y, 10).float() * 5
    runs = {0: {"accuracy": 0.1, "test_logits": one_class}, 1: {"accuracy": 0.97, "test_logits": good}}
    c = studies.collapsed_seeds(runs, y)
    assert c["seeds"] == [0] and c["top_class_share"] == [1.0]
    assert studies.collapsed_seeds({1: runs[1]}, y) == {"seeds": [], "top_class_share": []}


def test_a_budget_at_the_largest_candidate_is_said():
    assert studies.edge_note({"resnet_preact": 40, "simple_cnn": 20}, (10, 20, 40, 80)) == ""
    said = studies.edge_note({"resnet_preact": 80, "simple_cnn": 20, "compressed_cnn": 80}, (10, 20, 40, 80))
    assert said.startswith("resnet_preact, compressed_cnn chose the largest candidate, where their")
    assert "its validation" in studies.edge_note({"simple_cnn": 80}, (10, 80)) and studies.edge_note({"a": 3}, ()) == ""


class _Reads(torch.nn.Module):
    """A classifier that reads the class written in an image's first pixel (``constant``: always that class)."""

    def __init__(self, constant=None):
        super().__init__()
        self.constant = constant

    def forward(self, x):
        k = torch.round((x[:, 0, 0, 0].float() + 1) * 127.5 / 20).long()
        k = torch.full_like(k, self.constant) if self.constant is not None else k
        return torch.nn.functional.one_hot(k, 10).float() * 10


def test_degradation_readings_score_each_classifier_on_the_whole_draw(monkeypatch):
    cfg = config.get_config("smoke")
    requested = np.tile(np.arange(10), 2)
    images = np.zeros((20, 28, 28), np.uint8)
    images[:, 0, 0] = requested * 20  # the class each digit was asked for, written where _Reads looks
    out_dir = store.artifact_dir(cfg.run)
    for name in ["teacher.pt"] + [f"diffusion_step{m}.pt" for m in cfg.studies.degradation_milestones]:
        (out_dir / name).write_bytes(b"stand-in")  # the draws' cache keys hash these files
    seen = []
    monkeypatch.setattr(studies, "lookup", lambda path, key: seen.append(path) or {"images": images, "requested": requested})
    out = studies.degradation_readings(cfg, {"both": [_Reads(), _Reads(constant=3)], "right": [_Reads()]},
                                       seed=0, device="cpu")
    steps = cfg.studies.degradation_milestones
    assert set(out) == {"both", "right"} and set(out["both"]) == set(steps) and len(seen) == len(steps)
    assert out["right"][steps[0]][0] == 1.0
    mean, lo, hi = out["both"][steps[0]]
    assert mean == pytest.approx((1.0 + 0.1) / 2) and lo < mean < hi  # the seeds' spread in the interval
    monkeypatch.setattr(studies, "lookup", lambda path, key: studies.MISSING)
    with pytest.raises(FileNotFoundError, match="degradation_sets"):
        studies.degradation_readings(cfg, {"right": [_Reads()]}, seed=0, device="cpu")


def test_closer_curve_measures_both_curves_at_the_thesis_fractions():
    import pandas as pd

    cfg = config.get_config("cpu")  # checkpoints at 8%, 80% and 100% of 3,000 steps, as the thesis' epochs 8, 80, 100
    table = pd.DataFrame({"a": {"step_240": 0.60, "step_2400": 0.97, "step_3000": 0.97, "step_510": 0.8}})
    readings = {"a": {240: (0.25, 0, 0), 2400: (0.90, 0, 0), 3000: (0.92, 0, 0)}}
    thesis_points = {"a": {8: 0.26, 80: 0.957, 100: 0.934}, "b": {8: 0.2}}
    out = studies.closer_curve(cfg, table, readings, thesis_points, 100)
    assert set(out) == {"a"} and [r["epoch"] for r in out["a"]] == [8, 80, 100]  # "b" has neither curve
    assert out["a"][0]["students"] == pytest.approx(34) and out["a"][0]["readings"] == pytest.approx(1)
    said = studies.closer_sentence(out)
    assert said.startswith("a: at epoch 8 the real classifiers (34.0 points from the students, 1.0 from the real")
    assert "at epoch 80 its students (1.3 points from the students, 5.7 from the real classifiers)" in said
    assert studies.closer_sentence({"a": out["a"][:1]}).startswith("Fewer than two checkpoints")
