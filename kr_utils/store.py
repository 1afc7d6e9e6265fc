"""Bottom layer: where results live. One folder per profile, atomic writes, cache keys from
a config's hash, the result cache, and the metrics JSON the book's prose reads.
"""
from __future__ import annotations

import contextvars
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from .runtime import environment

ARTIFACTS_ENV = "KR_ARTIFACTS"


def repo_root() -> Path:
    return Path(__file__).resolve().parent.parent


def artifact_dir(profile: str) -> Path:
    """``$KR_ARTIFACTS/<profile>`` or ``<repo>/artifacts/<profile>``, created if missing (``profile``: a
    run's name, :attr:`kr_utils.config.Profile.run`, e.g. ``cpu`` or ``cpu-fashion-mnist``)."""
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


def fingerprint(config: dict, *paths) -> str:
    """A hash of what a result depends on: its settings and the bytes of the files (checkpoints,
    datasets) it was made from. A changed setting or input gives a new key, so a cached result
    (:func:`cached`, the synthetic set's ``summary.json``) is rebuilt only when it must be."""
    import hashlib

    h = hashlib.sha256(json.dumps(plain(config), sort_keys=True).encode())
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def array_key(*arrays) -> str:
    """A hash of the bytes of arrays or tensors, in order (the cache key of data held in memory)."""
    import hashlib

    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(np.asarray(a)).tobytes())
    return h.hexdigest()


MISSING = object()  # what :func:`lookup` returns when nothing current is cached


def lookup(path, key: str):
    """The result cached at ``path`` under ``key``, or :data:`MISSING` (no file, another key,
    or a file that cannot be read, which is said and then recomputed, never trusted)."""
    path = Path(path)
    if not path.exists():
        return MISSING
    try:
        stored = read_torch_file(path, "a cached result")
        if not isinstance(stored, dict) or not {"key", "value"} <= set(stored):
            raise UnreadableFileError(f"{path} holds no cached result (a {type(stored).__name__})")
    except UnreadableFileError as err:  # a torn or foreign file: say so, then redo the work
        print(f"rebuilding {path.name}: {err}")
        return MISSING
    if stored["key"] != key:
        return MISSING
    note_reused(stored.get("compute_s"), path)
    return stored["value"]


def is_current(path, key: str) -> bool:
    """Whether ``path`` holds a result cached under ``key``, looked at without using it (nothing
    is charged to the running chapter; an unreadable file is not current)."""
    path = Path(path)
    if not path.exists():
        return False
    try:
        stored = read_torch_file(path, "a cached result")
    except UnreadableFileError:
        return False
    return isinstance(stored, dict) and stored.get("key") == key


def save_result(path, key: str, value, compute_s: float) -> None:
    """Cache ``value`` at ``path`` under ``key`` (atomically), charged to the running chapter."""
    atomic_torch_save({"key": key, "value": value, "compute_s": compute_s}, path)
    clock = _clock.get()
    if clock is not None:
        clock.computed.add(str(path))


def cached(path, key: str, compute):
    """``compute()`` once per ``key``: the result (tensors, numbers, strings, lists, dicts) is
    saved atomically at ``path`` and reused while the key is unchanged, so a second build
    re-runs only what changed and an interrupted study keeps every finished run. An unreadable
    file is recomputed, never trusted."""
    value = lookup(path, key)
    if value is not MISSING:
        return value
    t0 = time.perf_counter()
    value = compute()
    save_result(path, key, value, time.perf_counter() - t0)
    return value


def plain(obj):
    """JSON/torch-safe plain Python: config objects as dicts, tuples as lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        obj = obj.as_dict() if hasattr(obj, "as_dict") else dataclasses.asdict(obj)
    return json.loads(json.dumps(obj, default=lambda o: plain(o) if dataclasses.is_dataclass(o) else str(o)))


def read_metrics(profile: str) -> dict:
    path = artifact_dir(profile) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else {}


def update_metrics(profile: str, section: str, values: dict) -> None:
    """Merge ``values`` into ``metrics.json[section]`` (atomic read-modify-write).

    Returns nothing, so that a notebook cell ending with it prints nothing."""
    metrics = read_metrics(profile)
    metrics.setdefault(section, {}).update(plain(values))
    metrics["environment"] = environment()
    atomic_write_text(artifact_dir(profile) / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))


class StageClock:
    """What one chapter costs: the wall time since it started, and the stored compute time of
    every cached result it reused instead of redoing (so a rebuild that reuses everything still
    reports what its stage costs from scratch). A chapter starts one (:meth:`start`) in its
    setup cell and calls :meth:`record` at its end; :func:`cached` and :func:`note_reused`
    charge the clock that is running (a context variable: one per notebook kernel)."""

    def __init__(self, profile: str, stage: str, section: str | None = None):
        self.profile, self.stage, self.section = profile, stage, section
        self.t0 = time.perf_counter()
        self.reused_s = 0.0
        self.computed: set[str] = set()  # cache files computed under this clock: reusing them costs nothing

    @classmethod
    def start(cls, profile: str, stage: str, section: str | None = None) -> "StageClock":
        clock = cls(profile, stage, section)
        _clock.set(clock)
        return clock

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def record(self) -> None:
        """``wall_time_s[stage]`` and ``compute_time_s[stage]`` (wall plus reused) in ``metrics.json``;
        a clock of a ``section`` (the theory chapters': ``theory_wall_time_s``) records its wall time there."""
        wall = self.elapsed()
        if self.section:
            update_metrics(self.profile, self.section, {self.stage: round(wall, 1)})
            return
        update_metrics(self.profile, "wall_time_s", {self.stage: round(wall, 1)})
        update_metrics(self.profile, "compute_time_s", {self.stage: round(wall + self.reused_s, 1)})


_clock: contextvars.ContextVar[StageClock | None] = contextvars.ContextVar("kr_stage_clock", default=None)


def note_reused(seconds, path=None) -> None:
    """Charge the running :class:`StageClock` with the stored compute time of a reused result
    (nothing when none runs, or when the result was computed under the same clock)."""
    clock = _clock.get()
    if clock is not None and (path is None or str(path) not in clock.computed):
        clock.reused_s += float(seconds or 0.0)
