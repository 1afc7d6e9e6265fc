"""kr_utils: the library behind "Knowledge Replication with Diffusion Models".

One module per pipeline stage: ``config`` (profiles), ``data`` (MNIST idx files),
``models`` (classifiers and U-Net), ``diffusion`` (schedule, loss, samplers), ``train``
(classifiers, distillation, diffusion), ``synth`` (the labelled synthetic set),
``evaluate`` (real-test metrics), ``experiments`` (the thesis' studies: student grid,
degradation, ablation), ``artifacts`` (files shared between notebooks, result cache) and
``plots``. ``kr_utils.book`` runs the notebooks with papermill.
"""
__version__ = "0.1.0"

TORCH_FLOOR = (2, 4)  # pyproject.toml's floor: a Colab runtime keeps its own newer torch


def _check_torch(version: str) -> None:
    import re

    found = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
    if found < TORCH_FLOOR:
        raise ImportError(f"kr_utils needs torch >= {'.'.join(map(str, TORCH_FLOOR))}, found {version}: "
                          f"pip install -U 'torch>={'.'.join(map(str, TORCH_FLOOR))}' torchvision")


import torch as _torch  # noqa: E402

_check_torch(_torch.__version__)

from . import artifacts, config, data, diffusion, evaluate, experiments, live, models, plots, synth, train  # noqa: E402,F401
from .config import get_config  # noqa: E402,F401
