"""Artifacts shared between notebooks: one folder per profile, atomic writes,
checkpoints that carry their config, and the metrics JSON the book's prose reads.
"""
from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

ARTIFACTS_ENV = "KR_ARTIFACTS"


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def artifact_dir(profile: str) -> Path:
    """``$KR_ARTIFACTS/<profile>`` or ``<repo>/artifacts/<profile>``, created if missing."""
    base = Path(os.environ.get(ARTIFACTS_ENV) or repo_root() / "artifacts")
    path = base / profile
    path.mkdir(parents=True, exist_ok=True)
    return path


def atomic_write_bytes(path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: a reader never sees
    half a file, and an interrupted run leaves the previous version intact."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_torch_save(obj, path) -> None:
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


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
    from . import __version__

    clean, times = _split_times(_plain(extra or {}))
    atomic_torch_save({
        "kind": kind, "state_dict": model.state_dict(), "config": _plain(config),
        "profile": profile, "seed": seed, "kr_utils_version": __version__,
        "torch_version": str(torch.__version__), "extra": clean,
    }, path)
    atomic_write_text(times_path(path), json.dumps(times, sort_keys=True))


# which chapter writes each kind of checkpoint, for the advice of an error
REBUILT_BY = {"teacher": "chapter 1 (01_teacher), or any later chapter opened alone",
              "diffusion": "chapter 2 (02_diffusion), or any later chapter opened alone",
              "student": "chapter 5 (05_student), or chapter 6 opened alone"}


class UnreadableFileError(ValueError):
    """A checkpoint or cached file that cannot be used: the message names the file, says what
    it holds, and what to do."""


def _what_it_holds(path: Path, err: Exception) -> str:
    """A plain description of a file torch could not load (never torch's own advice, which
    suggests ``weights_only=False``: loading an untrusted pickle runs whatever it holds)."""
    size = path.stat().st_size if path.exists() else 0
    head = path.read_bytes()[:4] if size else b""
    if size == 0:
        return "the file is empty (a copy that never finished?)"
    weights_only = "weights only" in str(err).lower() or "weights_only" in str(err)
    pickled = head[:1] == b"\x80" or head == b"PK\x03\x04"  # a pickle, or torch's zip archive
    if weights_only and pickled:
        return ("it holds pickled objects other than tensors and plain values, so it is not a file "
                "kr_utils wrote; it was not loaded, and must not be")
    if head == b"PK\x03\x04":
        return f"it is a torch archive of {size:,d} bytes that is cut short or damaged (a half-synced copy?)"
    return f"it is not a torch file ({size:,d} bytes starting with {head!r})"


def read_torch_file(path, what: str, remedy: str = "") -> object:
    """``torch.load(path, weights_only=True)`` of a file kr_utils wrote; any failure (truncated,
    half-synced, another format, a pickle that needs more than weights) raises
    :class:`UnreadableFileError` naming the file, what it holds and ``remedy``."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - every failure gets the same clear message
        raise UnreadableFileError(f"{path} cannot be read as {what}: {_what_it_holds(path, err)}. "
                                  f"{remedy}".strip()) from None


def load_checkpoint(path, kind: str | None = None, profile: str | None = None) -> dict:
    """Load a checkpoint safely (``weights_only=True``), with errors that name the file, what it
    holds and which chapter rebuilds it: missing, unreadable, another kind, another profile."""
    path = Path(path)
    remedy = f"Delete it and run {REBUILT_BY.get(kind, 'the chapter that writes it')}, which rebuilds it."
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
    return ckpt if ckpt["config"] == _plain(config) and ckpt["profile"] == profile else None


def fingerprint(config: dict, *paths) -> str:
    """A hash of what a result depends on: its settings and the bytes of the files (checkpoints,
    datasets) it was made from. A changed setting or input gives a new key, so a cached result
    (:func:`cached`, the synthetic set's ``summary.json``) is rebuilt only when it must be."""
    import hashlib

    h = hashlib.sha256(json.dumps(_plain(config), sort_keys=True).encode())
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def cached(path, key: str, compute):
    """``compute()`` once per ``key``: the result (tensors, numbers, strings, lists, dicts) is
    saved atomically at ``path`` and reused while the key is unchanged, so a second build
    re-runs only what changed and an interrupted study keeps every finished run. An unreadable
    file is recomputed, never trusted."""
    path = Path(path)
    if path.exists():
        try:
            stored = read_torch_file(path, "a cached result")
            if not isinstance(stored, dict) or not {"key", "value"} <= set(stored):
                raise UnreadableFileError(f"{path} holds no cached result (a {type(stored).__name__})")
        except UnreadableFileError as err:  # a torn or foreign file: say so, then redo the work
            print(f"rebuilding {path.name}: {err}")
        else:
            if stored["key"] == key:
                if str(path) not in _computed_here:
                    note_reused(stored.get("compute_s"))
                return stored["value"]
    t0 = time.perf_counter()
    value = compute()
    atomic_torch_save({"key": key, "value": value, "compute_s": time.perf_counter() - t0}, path)
    _computed_here.add(str(path))
    return value


def _plain(obj):
    """JSON/torch-safe plain Python (tuples become lists)."""
    return json.loads(json.dumps(obj, default=str))


def read_metrics(profile: str) -> dict:
    path = artifact_dir(profile) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def update_metrics(profile: str, section: str, values: dict) -> None:
    """Merge ``values`` into ``metrics.json[section]`` (atomic read-modify-write).

    Returns nothing, so that a notebook cell ending with it prints nothing."""
    metrics = read_metrics(profile)
    metrics.setdefault(section, {}).update(_plain(values))
    metrics["environment"] = environment()
    atomic_write_text(artifact_dir(profile) / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))


def environment() -> dict:
    """Device and library versions, recorded beside every result."""
    import numpy
    from . import __version__

    dev = device()
    return {
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else f"cpu ({os.cpu_count()} cores, "
                  f"{torch.get_num_threads()} torch threads, {platform.processor() or platform.machine()})",
        "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
        "kr_utils": __version__, "date": time.strftime("%Y-%m-%d"), "bf16_autocast": bf16(dev),
        "precision": precision(dev),
    }


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


BF16_ENV = "KR_BF16"
PRECISION_ENV = "KR_PRECISION"
PRECISIONS = ("bf16", "fp16", "fp32")


def precision(device) -> str:
    """The arithmetic of network passes on ``device``, decided here and nowhere else:

    - ``"bf16"`` (bfloat16 autocast) where the hardware runs it natively: a CUDA GPU of compute
      capability >= 8.0 (A100, H100, RTX 30/40; ``torch.cuda.is_bf16_supported`` without
      emulation), and a CPU with AVX512-BF16 or AMX, where it measured faster
      (``benchmarks/precision.py`` on 2 EPYC cores: ResNet training steps 1.9x, U-Net training
      steps 1.8x, inference 2.2x-4.6x);
    - ``"fp16"`` (float16 autocast with a gradient scaler, :func:`grad_scaler`) on older GPUs
      (T4, V100: Colab's free GPU has tensor cores for fp16 but emulates bf16);
    - ``"fp32"`` elsewhere (a CPU without native bf16, where emulated bf16 is slower).

    ``KR_PRECISION`` (bf16, fp16, fp32) forces a choice; ``KR_BF16=0`` means fp32. Weights,
    optimiser state, losses and the samplers' arithmetic stay float32 in every case."""
    forced = os.environ.get(PRECISION_ENV, "").strip().lower()
    if forced:
        if forced not in PRECISIONS:
            raise ValueError(f"{PRECISION_ENV}={forced!r}: expected one of {PRECISIONS}")
        return forced
    if os.environ.get(BF16_ENV, "1") == "0":
        return "fp32"
    dev = torch.device(device)
    if dev.type == "cuda":
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        major, _ = torch.cuda.get_device_capability(index)
        try:
            native_bf16 = major >= 8 and torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # a torch without the argument answers for native support only
            native_bf16 = major >= 8 and torch.cuda.is_bf16_supported()
        return "bf16" if native_bf16 else "fp16"
    native = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    if dev.type == "cpu" and any(getattr(torch.cpu, f, lambda: False)() for f in native):
        return "bf16"
    return "fp32"


def bf16(device) -> bool:
    """Whether network passes on ``device`` run under bfloat16 autocast (:func:`precision`)."""
    return precision(device) == "bf16"


def autocast(device):
    """The autocast context of :func:`precision` for ``device`` (a no-op in fp32)."""
    dev = torch.device(device)
    mode = precision(dev)
    dtype = torch.float16 if mode == "fp16" else torch.bfloat16
    return torch.autocast(dev.type, dtype=dtype, enabled=mode != "fp32")


def grad_scaler(device):
    """A gradient scaler, active only under fp16 autocast (its small exponent range would
    underflow small gradients); under bf16 and fp32 it passes through. Use as
    ``scaler.scale(loss).backward(); scaler.unscale_(opt); ...; scaler.step(opt); scaler.update()``."""
    dev = torch.device(device)
    return torch.amp.GradScaler(dev.type, enabled=precision(dev) == "fp16")


# Compute seconds of the cached results this process reused (one notebook = one kernel): a
# rebuild's wall time says what the rebuild cost, this says what its stages cost to compute.
_reused_s = [0.0]
_computed_here: set[str] = set()  # results computed by this process: reusing them costs nothing extra


def note_reused(seconds) -> None:
    """Count the stored compute time of a cached result that was reused instead of redone."""
    _reused_s[0] += float(seconds or 0.0)


def record_stage_time(profile: str, stage: str, t_start: float) -> None:
    """Record a chapter's cost in ``metrics.json``: ``wall_time_s[stage]``, the time since
    ``t_start`` (``time.perf_counter()``), and ``compute_time_s[stage]``, that wall time plus
    the compute time of every cached result it reused (what the stage costs from scratch)."""
    wall = time.perf_counter() - t_start
    update_metrics(profile, "wall_time_s", {stage: round(wall, 1)})
    update_metrics(profile, "compute_time_s", {stage: round(wall + _reused_s[0], 1)})


def load_model(path, kind: str, device=None, profile: str | None = None) -> torch.nn.Module:
    """Rebuild a saved model (``kind`` 'teacher', 'student' or 'diffusion') in eval mode."""
    from . import models

    ckpt = load_checkpoint(path, kind, profile)
    if kind == "diffusion":
        model = models.ConditionalUNet(**ckpt["extra"]["unet"])
    else:
        model = models.build_classifier(ckpt["extra"]["arch"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device or "cpu").eval()
