"""Small networks shared by the tests (built directly as ir.Network, seeded)."""
from __future__ import annotations

import numpy as np

from snncheck import ir


def int_csnn(seed: int = 0, reset: str = "hard", size: int = 8, channels=(4, 8)) -> ir.Network:
    """A random integer CSNN (conv-IF-pool x2, linear-IF x2) whose layers all fire at moderate rates."""
    rng = np.random.default_rng(seed)
    vr = 0.0 if reset == "hard" else None
    c1, c2 = channels
    feat = c2 * (size // 4) ** 2
    return ir.Network([
        ir.Conv2d("c1", rng.integers(-20, 21, (c1, 1, 3, 3)).astype(np.int8), rng.integers(-50, 50, c1), (1, 1), (1, 1)),
        ir.IF("n1", 300, vr),
        ir.MaxPool2d("p1"),
        ir.Conv2d("c2", rng.integers(-30, 31, (c2, c1, 3, 3)).astype(np.int8), None, (1, 1), (1, 1)),
        ir.IF("n2", 40, vr),
        ir.MaxPool2d("p2"),
        ir.Flatten("f"),
        ir.Linear("l1", rng.integers(-30, 31, (16, feat)).astype(np.int8), rng.integers(-5, 5, 16)),
        ir.IF("n3", 30, vr),
        ir.Linear("l2", rng.integers(-30, 31, (10, 16)).astype(np.int8)),
        ir.IF("n4", 20, vr),
    ], (1, size, size), name=f"int_csnn_{reset}")


def pixel_inputs(n: int, t: int, shape=(1, 8, 8), seed: int = 0) -> np.ndarray:
    """Direct-encoded 0..255 integer frames [N, T, *shape]."""
    rng = np.random.default_rng(seed)
    return np.repeat(rng.integers(0, 256, (n, 1) + tuple(shape)), t, axis=1).astype(np.float64)
