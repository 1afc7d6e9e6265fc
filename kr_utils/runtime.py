"""Bottom layer: the run environment. The device, the arithmetic of network passes (bf16,
fp16 with a gradient scaler, or fp32) decided in one place, memory layouts, and the device
and library versions recorded beside every result.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import os
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import torch


@functools.lru_cache(maxsize=1)
def code_commit() -> str | None:
    """The short git commit of the checkout kr_utils runs from; None outside a git checkout
    (an installed package, as in Colab)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).resolve().parent,
                              capture_output=True, text=True, check=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    """Device, library versions and the code's commit, recorded beside every result."""
    import numpy
    from ._version import __version__

    dev = device()
    return {
        "device": torch.cuda.get_device_name(0) if dev.type == "cuda" else f"cpu ({os.cpu_count()} cores, "
                  f"{torch.get_num_threads()} torch threads, {platform.processor() or platform.machine()})",
        "python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
        "kr_utils": __version__, "date": time.strftime("%Y-%m-%d"), "bf16_autocast": bf16(dev),
        "precision": precision(dev), "commit": code_commit(),
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




def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Images in channels-last layout, in which the classifiers' convolutions run faster
    (``benchmarks/precision.py``, 2 CPU cores: training steps 1.4x in fp32, 1.2x in bf16);
    other tensors unchanged."""
    return x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x


def unet_memory_format(device) -> torch.memory_format:
    """The U-Net's faster layout on ``device`` (``benchmarks/precision.py``): channels-last on
    a GPU and on a CPU in float32; contiguous on a CPU under bf16, where channels-last made
    its training steps 1.8x slower on 2 EPYC cores."""
    dev = torch.device(device)
    return torch.contiguous_format if dev.type == "cpu" and bf16(dev) else torch.channels_last


# --------------------------------------------------------------------------- speed levers
LEVERS_ENV = "KR_LEVERS"


@dataclass(frozen=True)
class Levers:
    """The speed levers of the training loop and the samplers (issue: the gpu profile uses the
    GPU), decided in one place as :func:`precision` is. None of them changes what is computed
    beyond float rounding; each can be switched off, and ``benchmarks/replication.py`` measures
    each on and off.

    - ``fused_optimizer``: Adam/AdamW as one fused kernel (``fused=True``) instead of a loop of
      per-parameter kernels (:func:`kr_utils.fit.optimizer`);
    - ``foreach_ema``: the EMA of the weights as one multi-tensor ``lerp`` instead of one per
      parameter (:func:`kr_utils.fit.ema_update`);
    - ``device_batches``: each epoch's permutation copied to the device once, so no step copies
      its indices from the host, and augmentation drawn on the device (:class:`kr_utils.data.Batcher`);
    - ``compile``: ``torch.compile`` of the network (:func:`kr_utils.fit.compiled`);
    - ``cuda_graphs``: compile in ``reduce-overhead`` mode, which replays CUDA graphs (static
      shapes only: the U-Net's batches are all full);
    - ``group_seeds``: several seeds of one architecture trained as one batched model
      (:class:`kr_utils.seedstack.SeedStack`, ``torch.func.vmap``);
    - ``parallel_runs``: on a CPU, independent runs side by side, as many at once as there are
      cores, each in a worker process with its share of the threads (:mod:`kr_utils.workers`;
      ``benchmarks/parallel_runs.py``): the classifier runs of one study, and the shards of a
      set drawn in shards (``synth.shards``).

    Defaults: on a CUDA GPU the fused optimiser, the foreach EMA, device batches and grouped
    seeds; ``compile`` and ``cuda_graphs`` stay off until ``benchmarks/replication.py`` has
    measured on a GPU that they pay for their compilation (a study compiles each architecture
    anew; on 2 EPYC cores ``compile`` made 0.79x the U-Net's steps per second and 0.96x the
    teacher's, ``results/cpu/compile_lever.json``). On a CPU only ``foreach_ema`` (2 EPYC cores: three ResNets stacked by vmap took 232 ms
    a training step against 93 ms one after another) and ``parallel_runs`` where there are two
    cores or more (2 EPYC cores: two ResNet runs side by side made 1.4x the steps per second of
    one run on both cores).
    ``KR_LEVERS="compile=0,group_seeds=1"`` overrides any of them; :func:`use_levers` does so for
    a block of code (the benchmark)."""

    fused_optimizer: bool
    foreach_ema: bool
    device_batches: bool
    compile: bool
    cuda_graphs: bool
    group_seeds: bool
    parallel_runs: bool = False

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


_lever_overrides: contextvars.ContextVar[dict] = contextvars.ContextVar("kr_levers", default={})


def _parse_levers(text: str) -> dict:
    names = {f.name for f in dataclasses.fields(Levers)}
    out = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, _, value = item.partition("=")
        name, value = name.strip(), value.strip().lower()
        if name not in names:
            raise ValueError(f"{LEVERS_ENV}: unknown lever {name!r}; expected one of {sorted(names)}")
        if value not in ("0", "1", "true", "false", "on", "off"):
            raise ValueError(f"{LEVERS_ENV}: {name}={value!r}, expected 0 or 1")
        out[name] = value in ("1", "true", "on")
    return out


def cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which a container or
    ``taskset`` narrows; ``os.cpu_count`` where the platform has none)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def levers(device) -> Levers:
    """The :class:`Levers` in force on ``device``: the device's defaults, then ``KR_LEVERS``,
    then :func:`use_levers`."""
    gpu = torch.device(device).type == "cuda"
    chosen = dict(fused_optimizer=gpu, foreach_ema=True, device_batches=gpu, compile=False, cuda_graphs=False,
                  group_seeds=gpu, parallel_runs=not gpu and cores() >= 2)
    chosen.update(_parse_levers(os.environ.get(LEVERS_ENV, "")))
    chosen.update(_lever_overrides.get())
    return Levers(**chosen)


def switched_levers() -> dict:
    """The levers that :func:`use_levers` has switched here (a copy): what a worker process
    must switch too to run as this process would (:mod:`kr_utils.workers`)."""
    return dict(_lever_overrides.get())


@contextlib.contextmanager
def use_levers(**changes):
    """Switch levers for the code inside the block: ``with use_levers(compile=False): ...``."""
    names = {f.name for f in dataclasses.fields(Levers)}
    unknown = set(changes) - names
    if unknown:
        raise ValueError(f"unknown lever(s) {sorted(unknown)}; expected some of {sorted(names)}")
    token = _lever_overrides.set({**_lever_overrides.get(), **changes})
    try:
        yield
    finally:
        _lever_overrides.reset(token)
