"""Stage: the thesis' experimental study on top of the pipeline (chapters 5-7).

- one classifier run (a teacher of chapter 1's study or a student), cached;
- the student grid: architectures x label settings (hard labels, soft targets with tau = 1
  or 4) x seeds, each run cached with its real-test curve and its test logits;
- the degradation sets: the same budget of digits from each milestone checkpoint;
- the ablation of what the thesis' code did differently: digits stored on a grey background,
  the requested class as label, early stopping on a synthetic validation split, and 100
  digits per class.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from . import artifacts, evaluate, train

LABEL_SETTINGS = {
    "hard": dict(soft=False),
    "soft_t1": dict(soft=True, temperature=1.0),
    "soft_t4": dict(soft=True, temperature=4.0),
}
LABEL_NAMES = {"hard": "hard labels", "soft_t1": "soft targets, τ=1", "soft_t4": "soft targets, τ=4"}


def label_setting_of(scfg: dict) -> str:
    """The name in :data:`LABEL_SETTINGS` of a student config's labels (``soft``, ``temperature``)."""
    for name, setting in LABEL_SETTINGS.items():
        if all(scfg[k] == v for k, v in setting.items()):
            return name
    raise ValueError(f"student labels soft={scfg['soft']}, temperature={scfg['temperature']} match none of "
                     f"{sorted(LABEL_SETTINGS)}")


def cell_config(scfg: dict, arch: str, labels: str, **overrides) -> dict:
    """The student config of one grid cell: the profile's student with another architecture
    and label setting (and any ``overrides``, e.g. ``patience``)."""
    if labels not in LABEL_SETTINGS:
        raise ValueError(f"unknown label setting {labels!r}; expected one of {sorted(LABEL_SETTINGS)}")
    return {**scfg, "arch": arch, **LABEL_SETTINGS[labels], **overrides}


def run_classifier(train_set, val_set, scfg: dict, *, seed: int, device, test, cache_path, inputs_key: str,
                desc: str = "student", select_best: bool = True, test_curve: bool = True) -> dict:
    """Train one classifier, a student or one of chapter 1's teachers (cached at ``cache_path``
    under a key of its config, seed and data).

    Returns its per-epoch ``history`` (with ``test_curve``, the real-test accuracy after each
    epoch, never used for a decision), final ``accuracy``, ``per_class_accuracy``,
    ``confusion_matrix``, ``test_logits``, ``state_dict`` and ``train_time_s``. Without
    ``test_curve`` the test set is evaluated once, at the end: on a few thousand digits a
    per-epoch pass over 10,000 test digits costs more than the training itself.
    """
    key = artifacts.fingerprint({"classifier": scfg, "seed": seed, "data": inputs_key, "select_best": select_best,
                                 "test_size": len(test[1])})
    cache_path = Path(cache_path)

    def compute():
        resume = cache_path.with_name(cache_path.stem + ".partial.pt")
        t0 = time.perf_counter()
        model, hist = train.train_student(train_set, val_set, scfg, seed=seed, device=device,
                                          report={"real_test": test} if test_curve else None,
                                          resume_path=resume, desc=desc,
                                          select_best=select_best)
        logits = evaluate.predict_logits(model, test[0], device=device)
        rep = evaluate.classification_report(logits, test[1])
        resume.unlink(missing_ok=True)
        return {"history": train.history_plain(hist), "accuracy": rep["accuracy"],
                "per_class_accuracy": rep["per_class_accuracy"], "confusion_matrix": rep["confusion_matrix"],
                "test_logits": logits.cpu(), "state_dict": {k: v.cpu() for k, v in model.state_dict().items()},
                "train_time_s": time.perf_counter() - t0}

    return artifacts.cached(cache_path, key, compute)


def per_class_subset(labels, per_class: int, seed: int) -> np.ndarray:
    """Indices of ``per_class`` digits of each class, drawn at random (sorted)."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    idx = []
    for c in range(10):
        members = np.flatnonzero(labels == c)
        if len(members) < per_class:
            raise ValueError(f"class {c} has {len(members)} digits, fewer than per_class={per_class}")
        idx.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(idx))


def thesis_background(images_uint8) -> np.ndarray:
    """The thesis' stored digits: its code mapped [-1, 1] to [0, 1] twice before writing
    uint8, so black (0) became 127 and white stayed 255: v -> 127.5 + v / 2."""
    return np.floor(127.5 + np.asarray(images_uint8, dtype=np.float32) / 2).astype(np.uint8)


# One thesis choice per variant; "all four" applies them together.
ABLATIONS = {
    "this book (hard labels)": {},
    "grey background (thesis' storage)": {"grey": True},
    "requested class as label": {"requested": True},
    "early stopping on synthetic validation": {"early_stop": True},
    "100 digits per class": {"small": True},
    "all four (the thesis' recipe)": {"grey": True, "requested": True, "early_stop": True, "small": True},
}


def ablation_data(stored: dict, variant: dict, per_class: int, thesis_per_class: int, val_fraction: float,
                  seed: int):
    """The training and validation data of one ablation variant, from a stored synthetic set
    (``synth.load_synthetic_set``): a ``per_class`` subset (``thesis_per_class`` with
    ``small``), teacher or requested labels, black or grey background."""
    idx = per_class_subset(stored["labels"], thesis_per_class if variant.get("small") else per_class, seed)
    images = stored["images"][idx]
    if variant.get("grey"):
        images = thesis_background(images)
    labels = (stored["requested"] if variant.get("requested") else stored["labels"])[idx]
    return train.synthetic_split(images, labels, stored["logits"][idx], val_fraction, seed)


def equal_update_epochs(epochs: int, per_class: int, smaller_per_class: int) -> int:
    """Epochs on a set of ``smaller_per_class`` digits per class that give about as many
    optimiser updates as ``epochs`` on ``per_class`` (a smaller set must not mean less training)."""
    return max(1, round(epochs * per_class / smaller_per_class))


def ablation_config(scfg: dict, variant: dict, per_class: int, thesis_per_class: int) -> tuple[dict, bool]:
    """The student config and ``select_best`` of a variant. The reference trains a ResNet on
    hard labels for the whole budget and keeps the final weights; ``early_stop`` stops after
    the first epoch without a lower synthetic validation loss and keeps the best epoch;
    ``small`` (``thesis_per_class`` digits per class instead of ``per_class``) trains
    proportionally more epochs, so that it makes as many updates as the reference and the
    variant measures the size of the set, not a shorter training."""
    epochs = scfg["epochs"]
    if variant.get("small"):
        epochs = equal_update_epochs(epochs, per_class, thesis_per_class)
    cfg = cell_config(scfg, scfg["arch"], "hard", epochs=epochs,
                      patience=1 if variant.get("early_stop") else epochs + 1)
    return cfg, bool(variant.get("early_stop"))
