"""benchmarks/sweep_levers.py: its student recipes are read and checked before any training."""
import argparse
import importlib.util
from pathlib import Path

import pytest

from kr_utils import get_config

ROOT = Path(__file__).resolve().parents[1]


def _sweep():
    spec = importlib.util.spec_from_file_location("sweep_levers", ROOT / "benchmarks" / "sweep_levers.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ValueError(message)


@pytest.fixture
def recipe():
    student = get_config("cpu").student
    return lambda text: _sweep()._recipe(_Parser(), student, text)


def test_recipe_values_take_the_type_of_their_field(recipe):
    assert recipe("profile") == ({}, "profile")
    changes, label = recipe("alpha=1,epochs=4,augment=false,lr=4e-3")
    assert changes == {"alpha": 1.0, "epochs": 4, "augment": False, "lr": 4e-3} and label == "alpha=1,epochs=4,augment=false,lr=4e-3"
    assert isinstance(changes["alpha"], float) and isinstance(changes["epochs"], int)


@pytest.mark.parametrize("text,message", [
    ("colour=red", "expected key=value with keys of"),
    ("epochs", "expected key=value"),
    ("temperature=2", "expected key=value"),  # a label setting: --soft chooses it
    ("epochs=four", "epochs must be of type int, got 'four'"),
    ("alpha=1.5", r"student.alpha must be in \[0, 1\]|classifier.alpha must be in \[0, 1\]"),
    ("epochs=0", "must be a positive number"),
])
def test_a_bad_recipe_is_the_parsers_error(recipe, text, message):
    with pytest.raises(ValueError, match=message):
        recipe(text)
