"""Checkpoints: weights saved with the config, profile, seed and version that made them, loaded
with ``weights_only=True`` and errors that name the file, what it holds and which chapter
rebuilds it. Wall-clock times go to a JSON sidecar so that a seed gives the same bytes.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from . import models
from .store import UnreadableFileError, plain, atomic_torch_save, atomic_write_text, read_torch_file


def _is_time(key) -> bool:
    return isinstance(key, str) and key.endswith("time_s")


def _split_times(obj):
    """``(obj without its wall-clock entries, those entries)``: every key ending in ``time_s``
    (``train_time_s``, a history's ``epoch_time_s``), at any depth of nested dicts."""
    if not isinstance(obj, dict):
        return obj, {}
    clean, times = {}, {}
    for k, v in obj.items():
        if _is_time(k):
            times[k] = v
        else:
            clean[k], sub = _split_times(v)
            if sub:
                times[k] = sub
    return clean, times


def _merge(obj: dict, times: dict) -> dict:
    for k, v in times.items():
        if isinstance(v, dict) and isinstance(obj.get(k), dict):
            _merge(obj[k], v)
        else:
            obj[k] = v
    return obj


def times_path(path) -> Path:
    """The sidecar of a checkpoint holding its wall-clock times (``teacher.pt.times.json``)."""
    path = Path(path)
    return path.with_name(path.name + ".times.json")


def save_checkpoint(path, model: torch.nn.Module, *, kind: str, config: dict, profile: str,
                    seed: int, extra: dict | None = None) -> None:
    """Save weights with what is needed to rebuild and audit them. Wall-clock times in ``extra``
    (keys ending in ``time_s``) go to a JSON sidecar (:func:`times_path`), so that the same seed
    gives the same checkpoint bytes; :func:`load_checkpoint` puts them back."""
    from ._version import __version__

    clean, times = _split_times(plain(extra or {}))
    atomic_torch_save({
        "kind": kind, "state_dict": model.state_dict(), "config": plain(config),
        "profile": profile, "seed": seed, "kr_utils_version": __version__,
        "torch_version": str(torch.__version__), "extra": clean,
    }, path)
    atomic_write_text(times_path(path), json.dumps(times, sort_keys=True))


# which chapter writes each kind of checkpoint, for the advice of an error
REBUILT_BY = {"teacher": "chapter 1 (01_teacher), or any later chapter opened alone",
              "diffusion": "chapter 2 (02_diffusion), or any later chapter opened alone",
              "student": "chapter 5 (05_student), or chapter 6 opened alone",
              "generator": "chapter 11 (11_other_generators)"}


def _remedy(kind) -> str:
    return f"Delete it and run {REBUILT_BY.get(kind, 'the chapter that writes it')}, which rebuilds it."


def load_checkpoint(path, kind: str | None = None, profile: str | None = None) -> dict:
    """Load a checkpoint safely (``weights_only=True``), with errors that name the file, what it
    holds and which chapter rebuilds it: missing, unreadable, another kind, another profile."""
    path = Path(path)
    remedy = _remedy(kind)
    if not path.exists():
        writer = REBUILT_BY.get(kind, "the notebook that produces it")
        raise FileNotFoundError(f"checkpoint not found: {path} (run {writer} first, with the same profile)")
    ckpt = read_torch_file(path, f"a {kind or 'kr_utils'} checkpoint", remedy)
    if not isinstance(ckpt, dict) or not {"kind", "state_dict", "profile"} <= set(ckpt):
        raise UnreadableFileError(f"{path} holds no kr_utils checkpoint (a {type(ckpt).__name__} without the "
                                  f"kind, state_dict and profile entries). {remedy}")
    if kind is not None and ckpt.get("kind") != kind:
        raise UnreadableFileError(f"{path} holds a {ckpt.get('kind')!r} checkpoint, expected {kind!r}. {remedy}")
    if profile is not None and ckpt.get("profile") != profile:
        raise UnreadableFileError(f"{path} holds a checkpoint of profile {ckpt.get('profile')!r}, expected "
                                  f"{profile!r} (copied from another profile's folder?). {remedy}")
    try:  # the wall-clock times, kept beside the checkpoint; a torn sidecar only loses them
        _merge(ckpt.setdefault("extra", {}), json.loads(times_path(path).read_text()))
    except (OSError, ValueError):
        pass
    return ckpt


def load_if_current(path, kind: str, config: dict, profile: str):
    """The checkpoint at ``path`` if it was made with this exact config and profile,
    else None: the artifact cache that lets a second build skip unchanged stages."""
    path = Path(path)
    if not path.exists():
        return None
    ckpt = load_checkpoint(path, kind)
    return ckpt if ckpt["config"] == plain(config) and ckpt["profile"] == profile else None


def load_model(path, kind: str, device=None, profile: str | None = None) -> torch.nn.Module:
    """Rebuild a saved model (``kind`` 'teacher', 'student' or 'diffusion') in eval mode."""
    ckpt = load_checkpoint(path, kind, profile)
    if kind == "diffusion":
        model = models.ConditionalUNet(**ckpt["extra"]["unet"])
    else:
        model = models.build_classifier(ckpt["extra"]["arch"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device or "cpu").eval()


def load_schedule(path):
    """The noise schedule a diffusion checkpoint was trained with
    (:class:`kr_utils.diffusion.NoiseSchedule`, built from the ``schedule`` it carries)."""
    from .diffusion import NoiseSchedule

    ckpt = load_checkpoint(path, "diffusion")
    spec = ckpt["extra"].get("schedule")
    if spec is None:
        raise UnreadableFileError(f"{path} carries no noise schedule (written by an older kr_utils). "
                                  f"{_remedy('diffusion')}")
    return NoiseSchedule(**spec)
