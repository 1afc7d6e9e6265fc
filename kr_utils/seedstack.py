"""Stage: several seeds as one model (the training loop's level, beside :mod:`kr_utils.fit`).

A study that trains one architecture over several seeds (chapter 1's teachers, chapter 5's
students, chapter 7's ablation) can train them together: :class:`SeedStack` holds the S
models' parameters and buffers stacked along a new first dimension and runs them with
``torch.func.vmap`` over ``functional_call``, so one network pass computes all S and a GPU
launches each kernel once instead of S times. Each seed keeps what its own run would have:

- its own initial weights (the models are built one by one, each after its seed);
- its own batches and augmentation (:class:`StackedBatcher`: one batcher, one generator per seed);
- its own BatchNorm statistics (the running buffers are stacked too, and vmap updates them per seed);
- its own optimiser state: Adam is elementwise, so one Adam over the stacked tensors is S Adams;
- its own gradient clipping (:meth:`SeedStack.clip_grad_norm_`, a norm per seed).

Dropout masks are drawn independently per seed (``randomness="different"``), but not the same
masks as a run alone would draw. ``tests/test_seedstack.py`` checks that a stacked run gives
each seed the weights of its own run within float tolerance.
"""
from __future__ import annotations

import copy

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from .data import Batcher


def _mangle(name: str) -> str:
    return name.replace(".", "__")


class SeedStack(nn.Module):
    """S models of one architecture as one module: ``forward(x)`` takes ``x`` of shape
    ``(S, B, ...)`` (seed s's batch at ``x[s]``) and returns ``(S, B, ...)``."""

    def __init__(self, models: list[nn.Module]):
        super().__init__()
        if not models:
            raise ValueError("a SeedStack needs at least one model")
        kinds = {type(m) for m in models}
        if len(kinds) > 1:
            raise ValueError(f"a SeedStack stacks one architecture, got {sorted(k.__name__ for k in kinds)}")
        params, buffers = stack_module_state(models)
        self.size = len(models)
        self._pnames, self._bnames = list(params), list(buffers)
        for name, value in params.items():
            self.register_parameter(_mangle(name), nn.Parameter(value.detach().clone()))
        for name, value in buffers.items():
            self.register_buffer(_mangle(name), value.detach().clone())
        # the architecture without weights, outside the module tree (its meta tensors are no parameters)
        object.__setattr__(self, "_template", copy.deepcopy(models[0]).to("meta"))
        object.__setattr__(self, "_call", vmap(self._one, in_dims=(0, 0, 0), randomness="different"))

    def _one(self, params, buffers, x):
        return functional_call(self._template, (params, buffers), (x,))

    def train(self, mode: bool = True):
        self._template.train(mode)
        return super().train(mode)

    def stacked_params(self) -> dict:
        return {n: getattr(self, _mangle(n)) for n in self._pnames}

    def stacked_buffers(self) -> dict:
        return {n: getattr(self, _mangle(n)) for n in self._bnames}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] != self.size:
            raise ValueError(f"a SeedStack of {self.size} seeds takes inputs of shape (S={self.size}, B, ...), "
                             f"got {tuple(x.shape)}")
        return self._call(self.stacked_params(), self.stacked_buffers(), x)

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Clip each seed's gradient to norm ``max_norm``, as ``torch.nn.utils.clip_grad_norm_``
        does for a model alone (coefficient max_norm / (norm + 1e-6), at most 1). Returns the
        S norms, without a host synchronisation."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if not grads:
            return torch.zeros(self.size)
        norms = torch.stack([g.flatten(1).float().norm(dim=1) for g in grads]).norm(dim=0)
        coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(coef.to(g.dtype).reshape(-1, *([1] * (g.ndim - 1))))
        return norms

    def state_of(self, s: int) -> dict:
        """Seed ``s``'s own state dict (the names of the model alone), on the CPU."""
        out = {n: v[s].detach().cpu().clone() for n, v in self.stacked_params().items()}
        out.update({n: v[s].detach().cpu().clone() for n, v in self.stacked_buffers().items()})
        return out

    def unstack(self, models: list[nn.Module]) -> list[nn.Module]:
        """Load each seed's weights into ``models`` (fresh instances of the architecture)."""
        if len(models) != self.size:
            raise ValueError(f"unstack needs {self.size} models, got {len(models)}")
        for s, m in enumerate(models):
            m.load_state_dict(self.state_of(s))
        return models


class StackedBatcher:
    """One :class:`kr_utils.data.Batcher` per seed, served together: ``next`` returns the S
    index batches stacked ``(S, B)``. The batchers must agree on size and batch size, so that
    their epochs end together; each keeps its own generator (its own data order)."""

    def __init__(self, batchers: list[Batcher]):
        shapes = {(b.n, b.batch_size, b.drop_last, b.replace) for b in batchers}
        if len(shapes) != 1:
            raise ValueError(f"stacked batchers must share n, batch_size, drop_last and replace; got {sorted(shapes)}")
        self.batchers = batchers

    def __iter__(self):
        return self

    def __next__(self) -> torch.Tensor:
        return torch.stack([next(b) for b in self.batchers])

    @property
    def epoch_index(self) -> int:
        return self.batchers[0].epoch_index

    def batches_per_epoch(self) -> int:
        return self.batchers[0].batches_per_epoch()

    def at_epoch_end(self) -> bool:
        return self.batchers[0].at_epoch_end()

    def state_dict(self) -> dict:
        return {"batchers": [b.state_dict() for b in self.batchers]}

    def load_state_dict(self, state: dict) -> None:
        for b, s in zip(self.batchers, state["batchers"]):
            b.load_state_dict(s)
