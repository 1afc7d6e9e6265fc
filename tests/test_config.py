import pytest

from kr_utils import config


def test_profiles_are_valid():
    for name in config.PROFILES:
        assert config.get_config(name)["profile"] == name


def test_env_chooses_profile(monkeypatch):
    monkeypatch.setenv(config.PROFILE_ENV, "smoke")
    assert config.get_config(None)["profile"] == "smoke"
    assert config.get_config("gpu")["profile"] == "gpu"


@pytest.mark.parametrize("overrides,message", [
    (dict(synth__threshold=1.5), r"synth.threshold must be in \(0, 1\], got 1.5"),
    (dict(synth__threshold=0.0), r"synth.threshold must be in \(0, 1\]"),
    (dict(synth__per_class=-3), "synth.per_class must be a positive number, got -3"),
    (dict(teacher__epochs=0), "teacher.epochs must be a positive number"),
    (dict(synth__per_class=5), "too small for a validation split"),
    (dict(generation__num_steps=2000), "exceeds diffusion.T=1000"),
    (dict(student__arch="vgg"), "unknown classifier 'vgg'"),
    (dict(synth__colour="red"), "unknown override 'synth__colour'"),
    (dict(experiments__degradation_milestones=(90, 500)), r"degradation_milestones \[500\] are not diffusion.milestones"),
    (dict(experiments__grid_labels=("hard", "soft_t9")), r"unknown \['soft_t9'\]"),
    (dict(experiments__ablation_per_class=5000), "exceeds synth.per_class=2000"),
    (dict(teacher__study_archs=("simple_cnn",)), "must include teacher.arch"),
    (dict(generation__knob_steps=0), "generation.knob_steps must be a positive number"),
])
def test_impossible_values_are_rejected(overrides, message):
    with pytest.raises(config.ConfigError, match=message):
        config.get_config("cpu", **overrides)


def test_unknown_profile():
    with pytest.raises(config.ConfigError, match="unknown profile 'laptop'"):
        config.get_config("laptop")
