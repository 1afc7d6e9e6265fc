"""kr_utils: the library behind "Knowledge Replication with Diffusion Models".

One module per pipeline stage, each importing only the stages below it (no two in a loop:
``tests/test_layers.py``):

- bottom: ``config`` (a frozen dataclass per stage and the ``Profile`` that holds them),
  ``data`` (MNIST idx files, the one ``Batcher``), ``store`` (artifact folders, atomic writes,
  cache keys, the result cache, metrics JSON), ``runtime`` (device, precision, memory
  layouts, the speed levers), ``workers`` (runs side by side on a CPU's cores), ``live``
  (widgets and progress bars only where a person is looking);
- ``models`` (classifiers and U-Net), ``checkpoints`` (save and load with their config),
  ``fit`` (the one training loop);
- ``diffusion`` (noise schedule, loss, samplers, U-Net training), ``synth`` (the labelled
  synthetic set, whole or in shards), ``distill`` (teacher and student training, the distillation loss),
  ``evaluate`` (real-test metrics, intervals over seeds), ``comparison`` (comparisons worded from their
  intervals: Welch, paired, McNemar, the test set's binomial error), ``audit`` (fidelity, memorisation,
  distribution and calibration measures);
- ``studies`` (the thesis' experiments: runs, knobs, degradation), ``ablation`` (its recipe), ``claims``
  (chapter 9: the audit of the pipeline's artifacts, the thesis' open claims), ``analysis`` (chapter 8's
  comparison with the thesis), ``pipeline`` (each
  chapter's artifacts found or rebuilt) and above it ``distributed`` (the torchrun entry: DDP
  training, the set generated in shards over ranks; not imported here), ``plots``, ``controls``,
  ``thesis`` (the thesis' numbers), ``theory`` (the theory chapters' code), and ``book`` (the runner).
"""
from ._version import __version__  # noqa: E402,F401

TORCH_FLOOR = (2, 4)  # pyproject.toml's floor: a Colab runtime keeps its own newer torch


def _check_torch(version: str) -> None:
    import re

    found = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    if found < TORCH_FLOOR:
        raise ImportError(f"kr_utils needs torch >= {'.'.join(map(str, TORCH_FLOOR))}, found {version}: "
                          f"pip install -U 'torch>={'.'.join(map(str, TORCH_FLOOR))}' torchvision")


import torch as _torch  # noqa: E402

_check_torch(_torch.__version__)

from .config import get_config  # noqa: E402,F401

# the stages load when first used (``kr_utils.studies`` or ``from kr_utils import studies``), so
# that ``import kr_utils`` costs little more than torch itself
_LAZY = ("ablation", "analysis", "audit", "checkpoints", "claims", "comparison", "config", "controls", "data",
         "diffusion", "distill", "evaluate", "fit", "generators", "live", "models", "pipeline", "plots",
         "replication", "runtime", "seedstack", "store", "studies", "synth", "theory", "thesis", "workers")


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'kr_utils' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
