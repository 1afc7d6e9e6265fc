import pytest

import dataclasses

from kr_utils import config


def test_profiles_are_valid():
    for name in config.PROFILES:
        assert config.get_config(name).profile == name


def test_env_chooses_profile(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "smoke")
    assert config.get_config(None).profile == "smoke"
    assert config.get_config("gpu").profile == "gpu"


@pytest.mark.parametrize("overrides,message", [
    (dict(synth__threshold=1.5), r"synth.threshold must be in \(0, 1\], got 1.5"),
    (dict(synth__threshold=0.0), r"synth.threshold must be in \(0, 1\]"),
    (dict(synth__per_class=-3), "synth.per_class must be a positive number, got -3"),
    (dict(teacher__epochs=0), "teacher.epochs must be a positive number"),
    (dict(synth__per_class=5), "too small for a validation split"),
    (dict(sampler__num_steps=2000), "exceeds diffusion.T=1000"),
    (dict(student__arch="vgg"), r"student.arch must be one of \[.*\], got 'vgg'"),
    (dict(sampler__eta=-0.5), "sampler.eta must be a number >= 0, got -0.5"),
    (dict(diffusion__milestones=(10, 20)), "diffusion.milestones must be increasing and end at steps=3000"),
    (dict(seed=-1), "seed must be an integer >= 0"),
    (dict(synth__colour="red"), "unknown override 'synth__colour'"),
    (dict(studies__degradation_milestones=(90, 500)), r"degradation_milestones \[500\] are not diffusion.milestones"),
    (dict(studies__grid_labels=("hard", "soft_t9")), r"unknown \['soft_t9'\]"),
    (dict(studies__ablation_per_class=5000), "exceeds synth.per_class=2000"),
    (dict(teacher__study_archs=("simple_cnn",)), "must include teacher.arch"),
    (dict(sampler__knob_steps=0), "sampler.knob_steps must be a positive number"),
    (dict(evaluation__thresholds=(0.9, 0.5)), "evaluation.thresholds must be increasing"),
    (dict(evaluation__thresholds=(0.5, 1.0)), r"evaluation.thresholds must be numbers in \[0, 1\)"),
    (dict(evaluation__set_sizes=(1000, 20000)), "must stay below the full synthetic set of 20000"),
    (dict(evaluation__sweep_per_class=400), "evaluation.sweep_per_class must not exceed pool_per_class=300"),
    (dict(evaluation__seeds=()), "evaluation.seeds must not be empty"),
    (dict(synth__shards=0), "synth.shards must be a positive number, got 0"),
    (dict(synth__shards=1.5), "synth.shards must be a whole number of shards, got 1.5"),
    (dict(synth__shards=2001), r"synth.shards must be at most per_class \(2000\)"),
    (dict(studies__epochs=0), "studies.epochs must be a positive number, got 0"),
    (dict(studies__epochs=2.5), "studies.epochs must be a whole number of epochs or None, got 2.5"),
])
def test_impossible_values_are_rejected(overrides, message):
    with pytest.raises(config.ConfigError, match=message):
        config.get_config("cpu", **overrides)


def test_unknown_profile():
    with pytest.raises(config.ConfigError, match="unknown profile 'laptop'"):
        config.get_config("laptop")


def test_stage_configs_are_frozen_and_checked_on_construction():
    cfg = config.get_config("smoke")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.synth.threshold = 0.5
    with pytest.raises(config.ConfigError, match=r"teacher.val_size must be a positive number, got 0"):
        dataclasses.replace(cfg.teacher, val_size=0)
    with pytest.raises(config.ConfigError, match=r"synth.threshold_floor must be in \(0, 0.15\]"):
        dataclasses.replace(cfg.synth, threshold_floor=0.5)
    with pytest.raises(config.ConfigError, match="synth: unknown keys \\['colour'\\]"):
        config.Profile.from_dict("x", {**config.PROFILES["smoke"], "synth": {**config.PROFILES["smoke"]["synth"], "colour": 1}})
    with pytest.raises(config.ConfigError, match="label_mode must be 'teacher' with mode='unconditional'"):
        dataclasses.replace(cfg.synth, mode="unconditional", label_mode="requested")


def test_recipes_and_label_settings():
    st = config.get_config("cpu").student
    assert st.recipe().labels == "soft_t4" and st.recipe().augment
    cell = st.recipe(arch="simple_cnn", labels="hard", epochs=7)
    assert (cell.arch, cell.soft, cell.epochs, cell.labels) == ("simple_cnn", False, 7, "hard")
    assert st.recipe(labels="soft_t1").temperature == 1.0
    with pytest.raises(config.ConfigError, match="unknown label setting 'soft_t2'"):
        st.recipe(labels="soft_t2")
    with pytest.raises(config.ConfigError, match="match none of"):
        dataclasses.replace(st, temperature=2.0)
    teacher = config.get_config("cpu").teacher.recipe("simple_cnn")
    assert (teacher.arch, teacher.soft, teacher.augment) == ("simple_cnn", False, False)


def test_overrides_and_plain_view():
    cfg = config.get_config("cpu", synth__threshold=0.8, seed=3)
    assert cfg.synth.threshold == 0.8 and cfg.seed == 3
    assert config.get_config("cpu", sampler__num_steps=None).sampler.num_steps == 20  # None: unset parameter
    plain = cfg.as_dict()
    assert plain["diffusion"]["mults"] == [1, 2, 4] and plain["profile"] == "cpu"
    # lists from papermill become tuples again, and the profile built from its plain view is the same
    again = config.Profile.from_dict("cpu", {k: v for k, v in plain.items() if k != "profile"})
    assert again == cfg


def test_classifier_names_match_the_models():
    from kr_utils import models
    assert set(config.CLASSIFIER_NAMES) == set(models.CLASSIFIERS)


def _readme_row(profile: str) -> str:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "book" / "reproduce.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith(f"| `{profile}`")]
    assert len(rows) == 1, f"the reproduce page has {len(rows)} table rows for profile {profile!r}"
    return rows[0]


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu", "t4"])
def test_reproduce_page_profile_rows_state_no_sizes(profile):
    """The reproduce page's table of profiles went stale once (degradation checkpoints, ablation
    seeds, milestones) when the config changed: it now says what each profile is for in words, and
    each chapter glues its own sizes from the profile, so no size may creep back into a row."""
    import re

    row = _readme_row(profile)
    words = re.sub(r"\b(A100|H100|T4|t4|2-core)\b", "", row)  # device and profile names are not sizes
    assert not re.search(r"\d", words), f"a size in the {profile} row: {row}"


def test_the_studies_train_as_long_as_the_main_student_unless_told():
    cfg = config.get_config("cpu")
    assert cfg.studies.epochs is None and cfg.study_epochs == cfg.student.epochs
    longer = config.get_config("cpu", student__epochs=5, studies__epochs=3)
    assert (longer.student.epochs, longer.study_epochs) == (5, 3)


def test_every_decision_the_profiles_name_is_recorded():
    """The profiles name their measured choices by id; book/decisions.csv (shown on the reproduce
    page) holds each with its alternative, metric, figure, source and date."""
    import csv
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    rows = list(csv.DictReader((root / "book" / "decisions.csv").open()))
    assert rows and all(all(r[k].strip() for k in ("id", "setting", "alternative", "metric", "figure", "source", "date"))
                        for r in rows)
    assert all(re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["date"]) for r in rows)
    ids = {r["id"] for r in rows}
    named = set(re.findall(r"\b((?:cpu|fm)_[a-z_0-9]+)\b", (root / "kr_utils" / "config.py").read_text()))
    named |= {i for i in ids if i.startswith("fm_")} if "decisions fm_*" in (root / "kr_utils" / "config.py").read_text() else set()
    assert named - ids == set(), f"config.py names decisions the record lacks: {sorted(named - ids)}"
    assert "2026-" not in (root / "kr_utils" / "config.py").read_text(), "dated measurements belong in the decisions record"
