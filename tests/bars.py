"""Synthetic digits for tests that need something learnable in a few steps (tests/test_cuda.py,
tests/test_seedstack.py)."""
import torch


def bar_digits(n, seed=0):
    """Images whose class is a bright bar at a class-dependent row, their labels and random
    teacher logits: (x in [-1, 1], y, logits)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 10, (n,), generator=g)
    x = -torch.ones(n, 1, 28, 28) + 0.1 * torch.rand(n, 1, 28, 28, generator=g)
    for i, c in enumerate(y.tolist()):
        x[i, 0, 2 * c + 4, 4:24] = 1
    return x, y, torch.randn(n, 10, generator=g)
