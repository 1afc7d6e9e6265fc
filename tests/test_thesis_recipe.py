"""The thesis' recipe (kr_utils.thesis.RECIPE) is what its scripts say: each constant is read
back from the quoted line of its source, and, where a copy of the thesis' repository is at hand
(``$KR_THESIS_REPO``, a git directory, or the session mirror), each quoted line from the file
at its commit."""
import os
import re
import subprocess
from dataclasses import fields
from pathlib import Path

import pytest

from kr_utils import thesis

NUMBER = r"([0-9][0-9.e-]*)"


def _num(pattern):
    return lambda text: float(re.search(pattern.replace("{n}", NUMBER), text).group(1))


def _value_low(text):  # the loader's Normalize(0.5, 0.5) gives [-1, 1]; then data * a - b
    a, b = map(float, re.search(r"data \* ([0-9.]+) - ([0-9.]+)", text).groups())
    return -1.0 * a - b


# what each quoted line says of its constant
READ = {
    "student_arch": lambda t: re.search(r"MNISTModelType\.(\w+)", t).group(1).lower(),
    "student_epochs": _num(r"NUM_EPOCHS_SYN\s*=\s*{n}"),
    "early_stopping": lambda t: "train_epoch(" not in t,  # one epoch at a time; train_model would stop early
    "keeps": lambda t: "last" if t.startswith("trainer_syn.model") else None,
    "student_lr": _num(r"LEARNING_RATE_SYN\s*=\s*{n}"),
    "student_batch_size": _num(r"BATCH_SIZE\s*=\s*{n}"),
    "labels": lambda t: "requested" if t.endswith("= cls") else "teacher",
    "loss": lambda t: "hard" if "CrossEntropyLoss()" in t else None,
    "augment": lambda t: not t.startswith("full_ds = TensorDataset(imgs_t,"),  # the tensors as they are, no transform
    "split": _num(r"int\({n} \*"),
    "n_T": _num(r"n_T=\s*{n}"),
    "beta_start": _num(r"betas = \({n},"),
    "beta_end": _num(r"betas = \([0-9.e-]+, {n}\)"),
    "p_uncond": _num(r"drop_prob=\s*{n}"),
    "unet_epochs": _num(r"num_epochs={n}"),
    "unet_batch_size": _num(r"batch_size={n}"),
    "value_low": _value_low,
    "guide_w": _num(r"guide_w={n}"),
    "x_T_scale": _num(r"x_t_scale: float = {n}"),
    "noise_scale": lambda t: 0.0 if "zeros_like" in t else None,
    "clip_x0": lambda t: "clamp(-1.0, 1.0)" in t,
    "force_black": lambda t: "x < 0.0" in t,
    "threshold": _num(r"confidence_threshold: float = {n}"),
    "threshold_floor": _num(r"max\(thr_frac - [0-9.]+, {n}\)"),
    "set_batch": _num(r"batch_size: int = {n}"),
    "per_class": _num(r"max_per_class={n}"),
    "grey_storage": lambda t: "img * std_cpu + mean_cpu" in t,  # the [0, 1] digit un-normalised again
}


def test_every_constant_has_a_source_and_a_reader():
    names = {f.name for f in fields(thesis.ThesisRecipe)}
    assert set(thesis.SOURCES) == names == set(READ)


@pytest.mark.parametrize("name", sorted(READ))
def test_each_constant_is_what_its_quoted_line_says(name):
    src = thesis.SOURCES[name]
    assert READ[name](src.text) == getattr(thesis.RECIPE, name), f"{name}: {src.path}@{src.commit[:7]}:{src.line}"


def test_the_derived_settings():
    assert thesis.RECIPE.guidance_w == 1.5  # (1 + 0.5) eps_c - 0.5 eps_u, our w = 1.5
    assert abs(thesis.RECIPE.train_fraction - 0.7225) < 1e-12
    assert thesis.CODE["steps"] == thesis.RECIPE.n_T and thesis.CODE["threshold"] == thesis.RECIPE.threshold


def _repository():
    here = Path(__file__).resolve().parents[1]
    for cand in (os.environ.get("KR_THESIS_REPO"), here.parent / ".mirror" / "JoaquinBeas+TFG" / "repo"):
        if cand and (Path(cand) / "HEAD").exists():
            return Path(cand)
    return None


@pytest.mark.skipif(_repository() is None, reason="no copy of the thesis' repository (set KR_THESIS_REPO)")
@pytest.mark.parametrize("name", sorted(READ))
def test_each_quoted_line_is_the_scripts_line(name):
    src = thesis.SOURCES[name]
    text = subprocess.run(["git", "--git-dir", str(_repository()), "show", f"{src.commit}:{src.path}"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    assert text[src.line - 1].strip() == src.text, f"{src.path}@{src.commit[:7]}:{src.line}"
