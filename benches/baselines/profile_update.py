"""Where PyTorch spends one PPO update of the reference network: `torch.profiler` over 5 updates
after 3 of warm-up, operators sorted by their own CPU time (divide by 5 for per-update figures).

    python benches/baselines/profile_update.py [envs]     # envs = 32 (default) or 4; 150 steps

Run from the repository root, in the environment `benches/baselines/README.md` sets up.
`docs/performance.md` (2026-12-07) sets these figures against the Rust update's stages.
"""
import os
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_network as rn  # noqa: E402


def main():
    envs = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    torch.manual_seed(0)
    net = rn.FactoredRecurrentActorCritic()
    opt = torch.optim.Adam(net.parameters(), lr=3e-4, eps=1e-5)
    batch = rn.update_batch(envs, 150, torch.Generator().manual_seed(1))
    for _ in range(3):
        rn.ppo_update(net, opt, batch)
    start = time.perf_counter()
    for _ in range(5):
        rn.ppo_update(net, opt, batch)
    print(f"{envs} x 150: {(time.perf_counter() - start) / 5 * 1e3:.1f} ms per update, unprofiled")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(5):
            rn.ppo_update(net, opt, batch)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))


if __name__ == "__main__":
    main()
