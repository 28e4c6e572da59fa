"""The numpy baseline of `benches/gae.rs`: CleanRL's GAE loop, vectorized over envs, with
terminations and truncations kept apart. Run: `python3 benches/baselines/gae_numpy.py` (numpy)."""
import time

import numpy as np

T, N = 2048, 64
rng = np.random.default_rng(0)
rewards = rng.standard_normal((T, N)).astype(np.float32)
values = rng.standard_normal((T, N)).astype(np.float32)
terminated = rng.random((T, N)) < 0.01
truncated = rng.random((T, N)) < 0.005
terminal_values = rng.standard_normal((T, N)).astype(np.float32)
last_values = rng.standard_normal(N).astype(np.float32)


def gae(gamma=0.99, lam=0.95):
    advantages = np.zeros((T, N), np.float32)
    a = np.zeros(N, np.float32)
    for t in reversed(range(T)):
        v_next = last_values if t == T - 1 else values[t + 1]
        v_next = np.where(terminated[t], 0.0, np.where(truncated[t], terminal_values[t], v_next))
        done = terminated[t] | truncated[t]
        a = rewards[t] + gamma * v_next - values[t] + gamma * lam * (1.0 - done) * a
        advantages[t] = a
    return advantages, advantages + values


times = []
for _ in range(50):
    start = time.perf_counter()
    gae()
    times.append(time.perf_counter() - start)
print(f"numpy GAE {T}x{N}: median {1000 * sorted(times)[len(times) // 2]:.2f} ms")
