"""Chapters stand alone: kr_utils.pipeline finds an upstream artifact, or builds it through the
same cached calls as the chapter that owns it, saying what it builds."""
import json
from pathlib import Path

import pytest
import torch

import kr_utils
from kr_utils import checkpoints, pipeline, store

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def smoke(monkeypatch):
    monkeypatch.setenv("KR_PROFILE", "smoke")
    return kr_utils.get_config("smoke")


def test_teacher_is_built_once_then_found(smoke, mnist_dir, monkeypatch, capsys):
    monkeypatch.setenv("KR_DATA_DIR", str(mnist_dir))
    path = pipeline.teacher(smoke, "cpu")
    assert "teacher.pt is missing: building it as chapter 1 does" in capsys.readouterr().out
    ckpt = checkpoints.load_checkpoint(path, "teacher")
    assert ckpt["profile"] == "smoke" and ckpt["seed"] == smoke.seed
    # chapter 1's own cache file for the main run is the one it reuses
    assert (store.artifact_dir("smoke") / "teachers" / f"{smoke.teacher.arch}_seed0.pt").exists()
    mtime = path.stat().st_mtime_ns
    assert pipeline.teacher(smoke, "cpu") == path and path.stat().st_mtime_ns == mtime
    assert "missing" not in capsys.readouterr().out
    acc = pipeline.teacher_accuracy(smoke, "cpu")  # no metrics.json yet: measured on the test set
    assert 0.0 <= acc <= 1.0


def test_a_checkpoint_of_another_profile_is_not_used(smoke, tmp_path, monkeypatch):
    path = store.artifact_dir("smoke") / "student.pt"
    checkpoints.save_checkpoint(path, torch.nn.Linear(1, 1), kind="student", config={}, profile="cpu", seed=0)
    with pytest.raises(store.UnreadableFileError, match="profile 'cpu', expected 'smoke'.*chapter 5"):
        pipeline._found(path, "student", "smoke")
    assert pipeline._found(path, "student", "cpu")


def test_estimates_come_from_the_recorded_run():
    text = pipeline.estimate("diffusion", "cpu")
    rec = json.loads((ROOT / "results" / "cpu" / "metrics.json").read_text())
    assert f"about {round(rec['compute_time_s']['02_diffusion'] / 60)} min" in text
    assert rec["environment"]["date"] in text
    assert pipeline.estimate("teacher", "smoke") == "no recorded time at this profile"


@pytest.mark.parametrize("profile", ["cpu", "gpu"])
def test_shipped_records_equal_the_results(profile):
    """kr_utils/recorded/ (package data, for a pip-installed Colab runtime) is a copy of results/."""
    rec = ROOT / "kr_utils" / "recorded"
    assert pipeline.recorded_metrics(profile) == json.loads((ROOT / "results" / profile / "metrics.json").read_text())
    assert (rec / f"{profile}_confidence_per_class.csv").read_text() == \
        (ROOT / "results" / profile / "confidence_per_class.csv").read_text()


def test_analysis_falls_back_to_the_recorded_run(smoke):
    m, source = pipeline.analysis_metrics("cpu")  # nothing ran in this test's artifacts folder
    assert source.startswith("the recorded cpu run") and "student" in m
    assert len(m["synthetic_set"]["confidence_per_class"]["class"]) == 10
    with pytest.raises(FileNotFoundError, match="run chapters 1-7 first"):
        pipeline.analysis_metrics("smoke")


def test_thesis_comparison_of_the_recorded_run():
    from kr_utils import analysis, thesis
    m = pipeline.recorded_metrics("cpu")
    table = analysis.thesis_comparison(m, "cpu")
    row = table.loc["teacher used, real test"]
    assert row.iloc[0] == analysis.pct(thesis.TEACHER_USED) and row.iloc[1] == analysis.pct(m["teacher"]["test_accuracy"])
    assert table.loc["synthetic set size (the thesis' text)"].iloc[1] == f"{m['synthetic_set']['size']:,d}"
    assert list(analysis.degradation_frame(m)["fraction_of_training"]) == sorted(
        v["fraction_of_training"] for v in m["degradation"]["table"].values())
    assert analysis.pct(None) == "—" and analysis.pct(0.5) == "50.00%"


def test_metrics_are_keyed_by_stable_ids():
    """metrics.json (here the recorded cpu run shipped with the package, migrated to the ids) names
    things by ids; display labels live only in figures, tables and the values of "label" fields.
    (The recorded gpu run predates chapters 3 and 6 as they are now, and keeps its own layout.)"""
    import re
    bad = []

    def walk(obj, where):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if not re.fullmatch(r"[A-Za-z0-9_./-]+", str(k)):
                    bad.append(f"{where}/{k}")
                walk(v, f"{where}/{k}")

    m = pipeline.recorded_metrics("cpu")
    walk({k: v for k, v in m.items() if k != "environment"}, "cpu")
    assert not bad, bad[:10]


def test_shards_note_says_how_the_set_is_drawn():
    """Chapters 4 and 10 say how _draw_set draws the set: in one go, or in shards side by side
    only where worker processes draw them (parallel_runs on a CPU), else one after another."""
    from kr_utils import runtime
    one = kr_utils.get_config("cpu", synth__shards=1)
    two = kr_utils.get_config("cpu", synth__shards=3)
    assert pipeline.shards_note(one, "cpu") == "The set is drawn in one go."
    with runtime.use_levers(parallel_runs=True):
        note = pipeline.shards_note(two, "cpu")
    assert note.startswith("The set is drawn as 3 shards") and "side by side in worker processes" in note
    with runtime.use_levers(parallel_runs=False):
        assert "one after another" in pipeline.shards_note(two, "cpu")


def test_estimates_are_scaled_on_a_machine_of_another_precision(monkeypatch):
    """A run recorded in bf16 read on a float32 machine: the estimate says so and is scaled by
    the measured ratio; without a measured ratio it says the times may not hold; in the
    recorded precision it is the recorded time."""
    rec = {"compute_time_s": {"02_diffusion": 600.0}, "environment": {"precision": "bf16", "device": "d", "date": "x"},
           "other_precisions": {"fp32": {"factor": 2.5, "device": "a 2-core AVX2 CPU", "date": "2026-12-02",
                                         "measured": "chapters 1 and 2"}}}
    monkeypatch.setattr(pipeline, "recorded_metrics", lambda profile: rec)
    monkeypatch.setenv("KR_PRECISION", "fp32")
    scale, why = pipeline.recorded_scale("cpu", "cpu")
    assert scale == 2.5 and "in bf16, this machine computes in fp32" in why and "chapters 1 and 2 took 2.50x" in why
    assert "about 10 min in the recorded run" in pipeline.estimate("diffusion", "cpu", "cpu")
    assert "about 25 min here" in pipeline.estimate("diffusion", "cpu", "cpu")
    monkeypatch.setenv("KR_PRECISION", "bf16")
    assert pipeline.recorded_scale("cpu", "cpu") == (1.0, "")
    assert "here" not in pipeline.estimate("diffusion", "cpu", "cpu")
    monkeypatch.setenv("KR_PRECISION", "fp16")
    scale, why = pipeline.recorded_scale("cpu", "cpu")
    assert scale == 1.0 and "may not hold" in why


def test_the_runner_scales_its_estimates(monkeypatch, tmp_path, capsys):
    """The book runner says why and prints the scaled time left (papermill replaced by a no-op)."""
    import papermill
    from kr_utils import book
    monkeypatch.setattr(pipeline, "recorded_scale", lambda profile, device: (3.0, "because"))
    monkeypatch.setattr(pipeline, "recorded_metrics", lambda profile: {"compute_time_s": {"01_teacher": 600.0}})
    monkeypatch.setattr(papermill, "execute_notebook", lambda *a, **k: None)
    book.run_notebooks("cpu", tmp_path, only=["01_teacher"])
    out = capsys.readouterr().out
    assert "Note: because." in out and "about 30 min left from scratch" in out


def _tiny_split() -> dict:
    """A synthetic set of 60 random images, split as chapter 5 splits (its test set: 20 of them)."""
    import numpy as np
    from kr_utils import distill

    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (60, 28, 28), generator=g, dtype=torch.uint8).numpy()
    labels = np.arange(60) % 10
    train, val = distill.synthetic_split(imgs, labels, np.eye(10, dtype=np.float32)[labels] * 5, 0.2, seed=0)
    return {"train": train, "val": val, "test": (train[0][:20], train[1][:20]), "key": "tiny"}


def _grid_cfg(**changes):
    changes.setdefault("studies__grid_epoch_choices", ())  # the budget is tested on its own below
    return kr_utils.get_config("smoke").replace(student__arch="compressed_cnn", studies__grid_archs=("compressed_cnn",),
                                                studies__grid_labels=("hard", "soft_t4"), **changes)


def test_the_grid_budget_is_chosen_on_the_real_validation_digits(monkeypatch):
    """Each architecture gets the candidate epochs whose student scores best on the real
    validation digits (the fewest on a tie), and its grid cells train for them; the test set
    does not enter the choice."""
    cfg = kr_utils.get_config("smoke").replace(student__arch="compressed_cnn", student__epochs=1,
                                               studies__grid_archs=("compressed_cnn", "simple_cnn"),
                                               studies__grid_labels=("hard", "soft_t4"), studies__grid_epoch_choices=(1, 2, 3))
    val = {("compressed_cnn", 1): 0.5, ("compressed_cnn", 2): 0.9, ("compressed_cnn", 3): 0.7,
           ("simple_cnn", 1): 0.8, ("simple_cnn", 2): 0.8, ("simple_cnn", 3): 0.6}
    calls = []

    def fake_runs(cfg_, split, arch, labels, seeds, device, epochs=None):
        epochs = cfg_.student.epochs if epochs is None else epochs
        calls.append((arch, labels, epochs))
        test_acc = 1.0 - val.get((arch, epochs), 0.5)  # the test set would choose the opposite
        return {s: {"val_real_accuracy": val.get((arch, epochs), 0.5), "accuracy": test_acc} for s in seeds}

    monkeypatch.setattr(pipeline, "student_runs", fake_runs)
    budget = pipeline.grid_budget(cfg, {}, "cpu")
    assert budget["epochs"] == {"compressed_cnn": 2, "simple_cnn": 1}
    grid = pipeline.student_grid(cfg, {}, "cpu")
    assert grid.budget == budget
    assert ("simple_cnn", "soft_t4", 1) in calls and ("compressed_cnn", "soft_t4", 2) in calls
    assert not grid.shared  # the main student's 1 epoch is not its architecture's chosen 2


def test_the_grid_shares_the_main_student_when_it_trains_as_long():
    cfg = _grid_cfg(student__epochs=2)
    assert cfg.studies.epochs is None and cfg.study_epochs == 2
    grid = pipeline.student_grid(cfg, _tiny_split(), "cpu")
    assert grid.main_cell == ("compressed_cnn", "hard") and grid.shared and grid.cells[grid.main_cell] is grid.main
    assert list(grid.cells) == [("compressed_cnn", "hard"), ("compressed_cnn", "soft_t4")]
    assert all(len(r["history"]["epoch"]) == 2 for rs in grid.cells.values() for r in rs.values())
    names = sorted(p.name for p in (store.artifact_dir(cfg.run) / "students").glob("*.pt"))
    assert names == ["compressed_cnn_hard_seed0.pt", "compressed_cnn_soft_t4_seed0.pt"]
    assert grid.train_time_s() == pytest.approx(sum(r["train_time_s"] for rs in grid.cells.values() for r in rs.values()))


def test_a_longer_main_student_leaves_the_grid_its_own_budget():
    cfg = _grid_cfg(student__epochs=2, studies__epochs=1, student__seeds=(0, 1))
    assert cfg.study_epochs == 1
    grid = pipeline.student_grid(cfg, _tiny_split(), "cpu")
    assert not grid.shared and set(grid.main) == {0, 1} and set(grid.cells[grid.main_cell]) == {0}
    assert all(len(r["history"]["epoch"]) == 2 for r in grid.main.values())
    assert all(len(r["history"]["epoch"]) == 1 for rs in grid.cells.values() for r in rs.values())
    # the main student and the grid's run of its cell are cached apart, so neither replaces the other
    names = sorted(p.name for p in (store.artifact_dir(cfg.run) / "students").glob("*.pt"))
    assert names == ["compressed_cnn_hard_1ep_seed0.pt", "compressed_cnn_hard_seed0.pt", "compressed_cnn_hard_seed1.pt",
                     "compressed_cnn_soft_t4_1ep_seed0.pt"]
    again = pipeline.student_grid(cfg, _tiny_split(), "cpu")  # every run found in the cache
    assert again.main[0]["accuracy"] == grid.main[0]["accuracy"]
    assert torch.equal(again.cells[grid.main_cell][0]["test_logits"], grid.cells[grid.main_cell][0]["test_logits"])
    runs = [*grid.main.values(), *(r for rs in grid.cells.values() for r in rs.values())]
    assert len(runs) == 4 and grid.train_time_s() == pytest.approx(sum(r["train_time_s"] for r in runs))


def _grid_run(val_real, test_acc, correct=None, kept_epoch=1, val_acc=(0.4, 0.5, 0.3)):
    """A cached run as chapter 5 reads it: real-validation and test accuracy, test logits whose
    argmax is right where ``correct`` says, and a history whose kept epoch is ``kept_epoch``."""
    correct = torch.ones(6, dtype=torch.bool) if correct is None else torch.as_tensor(correct).bool()
    y = torch.arange(6) % 2
    logits = torch.nn.functional.one_hot(torch.where(correct, y, 1 - y), 2).float()
    return {"val_real_accuracy": val_real, "accuracy": test_acc, "test_logits": logits,
            "history": {"epoch": [0, 1, 2], "val_acc": list(val_acc), "best_epoch": kept_epoch}}


def test_the_grid_picks_its_best_cell_on_the_validation_digits_not_the_test_set():
    cells = {("resnet_preact", "hard"): {0: _grid_run(0.97, 0.99), 1: _grid_run(0.96, 0.99)},
             ("resnet_preact", "soft_t4"): {0: _grid_run(0.98, 0.90), 1: _grid_run(0.99, 0.91)},
             ("simple_cnn", "hard"): {0: _grid_run(0.95, 0.995)}}
    grid = pipeline.StudentGrid(main_cell=("resnet_preact", "soft_t4"), main=cells[("resnet_preact", "soft_t4")],
                                cells=cells)
    best, summary = grid.best_on_validation()
    assert best == ("resnet_preact", "soft_t4")  # the test set would pick simple_cnn
    assert summary["mean"] == pytest.approx(0.985) and summary["n"] == 2
    assert set(grid.validation_summaries()) == set(cells)


def test_soft_against_hard_compares_the_main_architecture_over_seeds_and_test_digits():
    """soft minus hard on the test digits, paired by seed: seed 3's soft student right on all 6
    digits and its hard one on 3, seed 4's both right on all: a difference of 0.25, with an
    interval that counts both seeds' spread and the digits'. The other architecture is ignored."""
    y = torch.arange(6) % 2
    hard = {3: _grid_run(0.9, 0.5, [1, 1, 1, 0, 0, 0]), 4: _grid_run(0.9, 1.0)}
    soft = {3: _grid_run(0.9, 1.0, [1, 1, 1, 1, 1, 1]), 4: _grid_run(0.9, 1.0)}
    cells = {("resnet_preact", "hard"): hard, ("resnet_preact", "soft_t4"): soft,
             ("simple_cnn", "hard"): {3: _grid_run(0.9, 0.0, [0] * 6)}, ("simple_cnn", "soft_t4"): {3: _grid_run(0.9, 1.0)}}
    grid = pipeline.StudentGrid(main_cell=("resnet_preact", "hard"), main=hard, cells=cells)
    c = grid.soft_vs_hard(y)
    assert c.difference == pytest.approx(0.25)
    assert c.n == (2, 2) and "paired training seeds and the 6 test digits" in c.covers
    # seeds: the per-seed differences 0.5 and 0, variance 0.125 / 2 (1 df); digits: the
    # seed-averaged differences (0, 0, 0, .5, .5, .5), variance 0.075 / 6 (5 df). Their
    # Welch-Satterthwaite degrees of freedom (1.4) would give an interval narrower than the
    # seeds' part alone at 1 df, so Student's t at the seeds' 1 df (comparison.interval_df)
    from scipy import stats

    vs, vd = 0.125 / 2, 0.075 / 6
    welch = (vs + vd) ** 2 / (vs ** 2 / 1 + vd ** 2 / 5)
    assert stats.t.ppf(0.975, welch) * (vs + vd) ** 0.5 < stats.t.ppf(0.975, 1) * vs ** 0.5  # the case of the rule
    assert (c.ci95[1] - c.ci95[0]) / 2 == pytest.approx(stats.t.ppf(0.975, 1) * (vs + vd) ** 0.5, rel=1e-6)
    del cells[("resnet_preact", "soft_t4")]
    assert grid.soft_vs_hard(y) is None


def test_the_synthetic_validation_score_is_the_kept_epochs():
    runs = {0: _grid_run(0.9, 0.9, kept_epoch=1, val_acc=(0.4, 0.5, 0.3)),
            1: _grid_run(0.9, 0.9, kept_epoch=2, val_acc=(0.4, 0.5, 0.7))}
    assert pipeline.kept_synthetic_val(runs) == pytest.approx((0.5 + 0.7) / 2)


def test_open_chapter_is_every_chapters_set_up(capsys):
    """The one set-up call: the config carries the seed and the overrides, the clock records the
    chapter's cost in its run's (or record_in's) metrics, a theory chapter gets no clock."""
    from kr_utils import store
    ch = pipeline.open_chapter("01_teacher", "smoke", seed=7, teacher__epochs=3)
    assert ch.cfg.seed == ch.seed == 7 and ch.cfg.teacher.epochs == 3 and ch.out == store.artifact_dir("smoke")
    assert "profile=smoke" in capsys.readouterr().out
    ch.close()
    assert "01_teacher" in store.read_metrics("smoke")["wall_time_s"]
    assert pipeline.open_chapter("x", "smoke").seed == pipeline.open_chapter(None, "smoke").cfg.seed  # None: the profile's
    assert pipeline.open_chapter(None, "smoke").clock is None
    pipeline.open_chapter("T4", "smoke", theory=True).close()  # a theory chapter's wall time, in its own section
    m = store.read_metrics("smoke")
    assert "T4" in m["theory_wall_time_s"] and "T4" not in m["wall_time_s"]
    fm = pipeline.open_chapter("10_fashion_mnist", "smoke", dataset="fashion-mnist", record_in="smoke")
    fm.close()
    assert "10_fashion_mnist" in store.read_metrics("smoke")["wall_time_s"]
    assert "10_fashion_mnist" not in store.read_metrics(fm.cfg.run).get("wall_time_s", {})
