"""The matrix products of one PPO update of the reference network, timed in PyTorch (MKL) on 2 threads.

Prints GFLOP/s (best of 8) per shape and layout. The Rust counterpart is burn's `matmul` on the same
shapes; docs/performance.md (2026-12-05 evening) compares the two, measured seconds apart.

Run: /tmp/baselines/venv/bin/python benches/baselines/matmul_shapes.py
"""
import time

import torch

torch.set_num_threads(2)
# (name, m, k, n, a is a transposed view, b is a transposed view)
SHAPES = [
    ("head fwd x.W", 4800, 512, 256, False, False),
    ("head dW", 512, 4800, 256, True, False),
    ("head dx", 4800, 256, 512, False, True),
    ("lstm proj W^T", 4800, 512, 2048, False, True),
    ("lstm dW", 2048, 4800, 512, True, False),
    ("lstm dx", 4800, 2048, 512, False, False),
    ("head fwd 600", 600, 512, 256, False, False),
    ("lstm proj W^T 600", 600, 512, 2048, False, True),
    ("lstm dW 600", 2048, 600, 512, True, False),
]
for name, m, k, n, ta, tb in SHAPES:
    a = torch.randn(k, m).t() if ta else torch.randn(m, k)
    b = torch.randn(n, k).t() if tb else torch.randn(k, n)
    best = 1e9
    for _ in range(8):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    print(f"{name:18} [{m},{k}]x[{k},{n}] torch {best * 1e3:7.2f} ms {2 * m * k * n / best / 1e9:6.1f} GFLOP/s")
