"""PyTorch baseline for `cargo bench --bench policy`, run on the same machine.

The reference network of SPEC §4 (3,625,314 parameters) and the two things the Rust benchmark times:
one acting step at batch 4 and 64 (no grad; op sampled first, then the other heads, Q(s, op)), and one
PPO update over [envs, 150] sequences (forward with grad, per-head clipped surrogate over relevant steps,
clipped value loss, weighted normalized entropy, backward, grad-norm clip 1.0, Adam eps 1e-5) with the
same actions, targets and coefficients as `benches/policy.rs`.

    python benches/baselines/reference_network_torch.py [--threads 2] [--mkldnn on|off]

Prints medians in milliseconds.
"""

import argparse
import math
import statistics
import time

import torch
from torch import nn

HEADS = [("slot", 3), ("blueprint", 13), ("style", 4), ("tempo", 3), ("alpha_target", 3),
         ("alpha_speed", 4), ("alpha_curve", 5), ("op", 6)]
OP = 7
NUM_OPS = 6
# Causal relevance per op (WAIT, GERMINATE, SET_ALPHA_TARGET, PRUNE, FOSSILIZE, ADVANCE) and head.
RELEVANCE = torch.zeros(NUM_OPS, len(HEADS))
for op in range(NUM_OPS):
    RELEVANCE[op, 0] = op != 0
    RELEVANCE[op, 1] = op == 1
    RELEVANCE[op, 3] = op == 1
    RELEVANCE[op, 2] = op in (1, 2)
    RELEVANCE[op, 4] = op in (1, 2)
    RELEVANCE[op, 5] = op in (2, 3)
    RELEVANCE[op, 6] = op in (2, 3)
    RELEVANCE[op, 7] = 1
ENTROPY_WEIGHTS = torch.tensor([1.0, 1.3, 1.2, 1.3, 1.2, 1.2, 1.2, 1.0])


class Reference(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(14, 4)  # row 13: the learned null entry for -1
        self.feature = nn.Linear(126, 512)
        self.feature_norm = nn.LayerNorm(512)
        self.lstm = nn.LSTM(512, 512, batch_first=True)
        self.lstm_norm = nn.LayerNorm(512)
        self.heads = nn.ModuleList()
        for name, size in HEADS:
            hidden = [512, 256] if name == "blueprint" else [256]
            layers, width = [], 512
            for h in hidden:
                layers += [nn.Linear(width, h), nn.ReLU()]
                width = h
            layers.append(nn.Linear(width, size))
            self.heads.append(nn.Sequential(*layers))
        self.critic = nn.Sequential(nn.Linear(512 + NUM_OPS, 256), nn.ReLU(), nn.Linear(256, 1))

    def trunk(self, obs, cat, state):
        """obs [B, T, 114], cat [B, T, 3] in -1..12 -> normalized LSTM output [B, T, 512]."""
        cat = torch.where(cat < 0, torch.full_like(cat, 13), cat)
        x = torch.cat([obs, self.embedding(cat).flatten(2)], dim=-1)
        x = torch.relu(self.feature_norm(self.feature(x)))
        out, state = self.lstm(x, state)
        return self.lstm_norm(out), state

    def trunk_step(self, obs, cat, state):
        """One acting step through `LSTMCell` on the LSTM's own weights (faster than `nn.LSTM` on a
        length-1 sequence on this machine): obs [B, 114], cat [B, 3] -> [B, 512]."""
        cat = torch.where(cat < 0, torch.full_like(cat, 13), cat)
        x = torch.cat([obs, self.embedding(cat).flatten(1)], dim=-1)
        x = torch.relu(self.feature_norm(self.feature(x)))
        lstm = self.lstm
        h, c = torch._VF.lstm_cell(x, state, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0,
                                   lstm.bias_hh_l0)
        return self.lstm_norm(h), (h, c)

    def q(self, features, ops):
        return self.critic(torch.cat([features, nn.functional.one_hot(ops, NUM_OPS).float()], -1)).squeeze(-1)


def masked(logits, mask):
    return logits.masked_fill(~mask, -1e4)


@torch.no_grad()
def act(net, obs, cat, masks, state, cell):
    if cell:
        features, state = net.trunk_step(obs, cat, state)
    else:
        features, state = net.trunk(obs[:, None], cat[:, None], state)
        features = features[:, 0]
    logits = [masked(head(features), m) for head, m in zip(net.heads, masks)]
    op = torch.multinomial(torch.softmax(logits[OP], -1), 1)[:, 0]
    actions, log_probs = [], []
    for h, lg in enumerate(logits):
        a = op if h == OP else torch.multinomial(torch.softmax(lg, -1), 1)[:, 0]
        actions.append(a)
        log_probs.append(torch.log_softmax(lg, -1).gather(1, a[:, None])[:, 0])
    value = net.q(features, op)
    return actions, log_probs, value, state


def update(net, opt, obs, cat, masks, actions, old_log_probs, advantages, returns, old_values):
    envs, time_ = obs.shape[:2]
    features, _ = net.trunk(obs, cat, None)  # every sequence starts at t = 0 from a zero state
    features = features.reshape(envs * time_, 512)
    ops = actions[OP]
    weights = RELEVANCE[ops]  # [rows, heads]
    policy_loss = 0.0
    entropy = 0.0
    for h, head in enumerate(net.heads):
        logits = masked(head(features), masks[h])
        log_softmax = torch.log_softmax(logits, -1)
        log_prob = log_softmax.gather(1, actions[h][:, None])[:, 0]
        probs = log_softmax.exp()
        allowed = masks[h].sum(-1).float()
        ent = -(probs * log_softmax).sum(-1) / torch.log(allowed).clamp_min(1e-8)
        w = weights[:, h]
        relevant = w.sum().clamp_min(1.0)
        ratio = (log_prob - old_log_probs[h]).exp()
        surrogate = -torch.min(ratio * advantages, ratio.clamp(0.8, 1.2) * advantages)
        policy_loss = policy_loss + (surrogate * w).sum() / relevant
        entropy = entropy + ENTROPY_WEIGHTS[h] * (ent * w).sum() / relevant
    values = net.q(features, ops)
    clipped = old_values + (values - old_values).clamp(-0.2, 0.2)
    value_loss = 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2).mean()
    loss = policy_loss + 0.5 * value_loss - 0.05 * entropy
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()


def median_ms(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), min(times), max(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mkldnn", choices=["on", "off"], default="on")
    parser.add_argument("--act-iters", type=int, default=300)
    parser.add_argument("--update-iters", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.backends.mkldnn.enabled = args.mkldnn == "on"
    torch.manual_seed(0)
    net = Reference()
    params = sum(p.numel() for p in net.parameters())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mkldnn {args.mkldnn}, {params:,} parameters")
    assert params == 3_625_314, params

    for batch in (4, 64):
        obs = torch.randn(batch, 114)
        cat = (torch.arange(batch * 3) % 14 - 1).reshape(batch, 3)
        masks = [torch.ones(batch, size, dtype=torch.bool) for _, size in HEADS]
        for cell, how in ((False, "nn.LSTM, length-1 sequence"), (True, "LSTMCell")):
            zeros = torch.zeros(batch, 512)
            state = [(zeros, zeros) if cell else (zeros[None], zeros[None])]

            def step():
                *_, state[0] = act(net, obs, cat, masks, state[0], cell)

            med, lo, hi = median_ms(step, 50, args.act_iters)
            print(f"act batch {batch} ({how}): median {med:.3f} ms (min {lo:.3f}, max {hi:.3f})")

    for envs in (4, 32):
        time_ = 150
        rows = envs * time_
        net = Reference()
        opt = torch.optim.Adam(net.parameters(), lr=3e-4, eps=1e-5)
        obs = torch.randn(envs, time_, 114)
        cat = (torch.arange(rows * 3) % 14 - 1).reshape(envs, time_, 3)
        masks = [torch.ones(rows, size, dtype=torch.bool) for _, size in HEADS]
        actions = [torch.full((rows,), size - 1) for _, size in HEADS]
        actions[OP] = 1 + torch.arange(rows) % 2
        old_log_probs = [torch.full((rows,), -math.log(size)) for _, size in HEADS]
        advantages, returns = torch.randn(rows), torch.randn(rows)
        old_values = torch.zeros(rows)
        med, lo, hi = median_ms(
            lambda: update(net, opt, obs, cat, masks, actions, old_log_probs, advantages, returns, old_values),
            3, args.update_iters)
        print(f"PPO update {envs}x{time_}: median {med:.1f} ms (min {lo:.1f}, max {hi:.1f})")


if __name__ == "__main__":
    main()
