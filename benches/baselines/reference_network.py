"""PyTorch baseline for `cargo bench --bench policy`, measured on the machine the Rust figures come from.

The reference network of SPEC §4 (FactoredRecurrentActorCritic, 3,625,314 parameters) written plainly in
PyTorch, and the two things `benches/policy.rs` times, with the same inputs:

* act, batch 4 and 64: one environment step without gradients. Trunk (embedding, Linear 126->512,
  LayerNorm, ReLU, one LSTM step, LayerNorm), the 8 heads' logits, the op sampled first (SPEC §5
  select_op), Q(s, op) for that op, then the other 7 heads sampled with the op-conditioned mask rule
  applied (style forced to SIGMOID_ADD unless op is GERMINATE or SET_ALPHA_TARGET); masks applied with
  masked_fill(-1e4), sampling with softmax + multinomial, log-probs of the chosen actions; actions,
  log-probs and values copied to numpy (the environment needs them on the host). The LSTM state is kept
  across iterations; episode starts are all false, as in the Rust bench. Two trunk variants are timed:
  `nn.LSTM` over a length-1 sequence, and the same weights through the fused `lstm_cell` kernel.
* PPO update, 4 x 150 and 32 x 150: forward with gradients over whole [envs, 150] sequences from a zero
  initial state with episode starts (row r starts an episode when r % 150 == 0, rows batch-major, i.e.
  every sequence starts at t = 0), per-head clipped surrogate (clip 0.2) averaged over the steps where
  the head is causally relevant to the stored op, value loss clipped around the old value (0.2, coefficient
  0.5), normalized-entropy bonus with head weights [1.0, 1.3, 1.2, 1.3, 1.2, 1.2, 1.2, 1.0] and global
  coefficient 0.05, the per-head approx-KL / clip-fraction statistics read back to the host, backward,
  clip_grad_norm_(1.0), Adam(lr 3e-4, eps 1e-5) step. Stored actions: every head its last action, op
  alternating GERMINATE / SET_ALPHA_TARGET; old log-probs -ln(size); advantages and returns N(0, 1);
  old values 0.

Usage (see benches/baselines/README.md):

    /tmp/baselines/venv/bin/python benches/baselines/reference_network.py            # full run, both oneDNN settings
    /tmp/baselines/venv/bin/python benches/baselines/reference_network.py --check    # consistency check only

Prints the parameter count and a table of medians in milliseconds for oneDNN (torch.backends.mkldnn)
enabled and disabled.
"""

import argparse
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

# SPEC §2: heads in order, the op head last.
HEADS = [("slot", 3), ("blueprint", 13), ("style", 4), ("tempo", 3), ("alpha_target", 3),
         ("alpha_speed", 4), ("alpha_curve", 5), ("op", 6)]
SLOT, BLUEPRINT, STYLE, TEMPO, ALPHA_TARGET, ALPHA_SPEED, ALPHA_CURVE, OP = range(8)
WAIT, GERMINATE, SET_ALPHA_TARGET, PRUNE, FOSSILIZE, ADVANCE = range(6)
NUM_OPS = 6
SIGMOID_ADD = 1
D_OBS, NUM_CATEGORICAL, VOCAB, D_EMB = 114, 3, 13, 4
D_FEATURE = D_HIDDEN = 512
MASKED_LOGIT = -1e4
EXPECTED_PARAMETERS = 3_625_314

# Causal relevance [op, head] (SPEC §2).
RELEVANCE = torch.zeros(NUM_OPS, len(HEADS))
for _op in range(NUM_OPS):
    RELEVANCE[_op, SLOT] = _op != WAIT
    RELEVANCE[_op, BLUEPRINT] = _op == GERMINATE
    RELEVANCE[_op, TEMPO] = _op == GERMINATE
    RELEVANCE[_op, STYLE] = _op in (GERMINATE, SET_ALPHA_TARGET)
    RELEVANCE[_op, ALPHA_TARGET] = _op in (GERMINATE, SET_ALPHA_TARGET)
    RELEVANCE[_op, ALPHA_SPEED] = _op in (SET_ALPHA_TARGET, PRUNE)
    RELEVANCE[_op, ALPHA_CURVE] = _op in (SET_ALPHA_TARGET, PRUNE)
    RELEVANCE[_op, OP] = 1
# Op-conditioned mask rule (SPEC §2): style allowed actions given op, [op, 4].
STYLE_ALLOWED = torch.ones(NUM_OPS, 4, dtype=torch.bool)
for _op in (WAIT, PRUNE, FOSSILIZE, ADVANCE):
    STYLE_ALLOWED[_op] = False
    STYLE_ALLOWED[_op, SIGMOID_ADD] = True
ENTROPY_WEIGHTS = [1.0, 1.3, 1.2, 1.3, 1.2, 1.2, 1.2, 1.0]
CLIP, VALUE_CLIP, VALUE_COEF, ENTROPY_COEF = 0.2, 0.2, 0.5, 0.05


def orthogonal_linear(d_in, d_out, gain):
    layer = nn.Linear(d_in, d_out)
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(widths, hidden_gain, output_gain):
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        last = i == len(widths) - 2
        layers.append(orthogonal_linear(a, b, output_gain if last else hidden_gain))
        if not last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class FactoredRecurrentActorCritic(nn.Module):
    """SPEC §4 reference preset."""

    def __init__(self):
        super().__init__()
        sqrt2 = math.sqrt(2.0)
        # 13 blueprint values plus row 13, the learned null entry that -1 maps to.
        self.embedding = nn.Embedding(VOCAB + 1, D_EMB)
        nn.init.normal_(self.embedding.weight, 0.0, 0.02)
        self.feature = orthogonal_linear(D_OBS + NUM_CATEGORICAL * D_EMB, D_FEATURE, sqrt2)
        self.feature_norm = nn.LayerNorm(D_FEATURE)
        self.lstm = nn.LSTM(D_FEATURE, D_HIDDEN, num_layers=1, batch_first=True)
        nn.init.orthogonal_(self.lstm.weight_ih_l0, 1.0)
        nn.init.orthogonal_(self.lstm.weight_hh_l0, 1.0)
        with torch.no_grad():
            for bias in (self.lstm.bias_ih_l0, self.lstm.bias_hh_l0):
                bias.zero_()
                bias[D_HIDDEN:2 * D_HIDDEN] = 0.5  # gate order i, f, g, o: effective forget bias 1
        self.lstm_norm = nn.LayerNorm(D_HIDDEN)
        self.heads = nn.ModuleList(
            mlp([D_HIDDEN] + ([512, 256] if name == "blueprint" else [256]) + [size], sqrt2, 0.01)
            for name, size in HEADS)
        self.critic = mlp([D_HIDDEN + NUM_OPS, 256, 1], sqrt2, 1.0)

    def encode(self, obs, cat):
        """obs [..., 114] float, cat [..., 3] int in -1..12 -> [..., 512] (before the LSTM)."""
        cat = torch.where(cat < 0, torch.full_like(cat, VOCAB), cat)
        x = torch.cat([obs, self.embedding(cat).flatten(-2)], dim=-1)
        return torch.relu(self.feature_norm(self.feature(x)))

    def trunk_sequences(self, obs, cat, starts, state):
        """obs [B, T, 114], cat [B, T, 3], starts [B, T] bool, state ([1, B, H], [1, B, H]) ->
        normalized LSTM output [B, T, H] and the final state. A row's (h, c) is zeroed before each
        step where it starts an episode: the sequence is cut where any row starts, and each piece
        runs through nn.LSTM in one call (one piece when episodes only start at t = 0)."""
        x = self.encode(obs, cat)
        time_ = x.shape[1]
        cuts = [0] + (torch.nonzero(starts[:, 1:].any(0)).flatten() + 1).tolist() + [time_]
        h, c = state
        outputs = []
        for t0, t1 in zip(cuts[:-1], cuts[1:]):
            keep = (~starts[:, t0]).to(x.dtype)[None, :, None]
            out, (h, c) = self.lstm(x[:, t0:t1], (h * keep, c * keep))
            outputs.append(out)
        out = outputs[0] if len(outputs) == 1 else torch.cat(outputs, 1)
        return self.lstm_norm(out), (h, c)

    def trunk_step(self, obs, cat, starts, state, cell):
        """One acting step: obs [B, 114], cat [B, 3], starts [B] bool -> [B, H] and the new state
        (([1, B, H], [1, B, H]) for nn.LSTM, ([B, H], [B, H]) for the cell)."""
        x = self.encode(obs, cat)
        h, c = state
        if cell:
            keep = (~starts).to(x.dtype)[:, None]
            lstm = self.lstm
            h, c = torch._VF.lstm_cell(x, (h * keep, c * keep), lstm.weight_ih_l0, lstm.weight_hh_l0,
                                       lstm.bias_ih_l0, lstm.bias_hh_l0)
            return self.lstm_norm(h), (h, c)
        keep = (~starts).to(x.dtype)[None, :, None]
        out, (h, c) = self.lstm(x[:, None], (h * keep, c * keep))
        return self.lstm_norm(out[:, 0]), (h, c)

    def q(self, features, ops):
        """Q(s, op) on concat(features, one_hot(op)) -> [rows]."""
        one_hot = nn.functional.one_hot(ops, NUM_OPS).to(features.dtype)
        return self.critic(torch.cat([features, one_hot], -1)).squeeze(-1)


def conditioned_masks(masks, ops):
    """The masks actually used given the op: the style rule applied (SPEC §2)."""
    masks = list(masks)
    masks[STYLE] = masks[STYLE] & STYLE_ALLOWED[ops]
    return masks


@torch.no_grad()
def act(net, obs, cat, masks, starts, state, cell):
    """One stochastic acting step (SPEC §5): op sampled once, Q(s, op) for that op, then the other heads."""
    features, state = net.trunk_step(obs, cat, starts, state, cell)
    logits = [head(features) for head in net.heads]
    op_logits = logits[OP].masked_fill(~masks[OP], MASKED_LOGIT)
    op = torch.multinomial(torch.softmax(op_logits, -1), 1)[:, 0]
    value = net.q(features, op)
    used = conditioned_masks(masks, op)
    actions, log_probs = [None] * len(HEADS), [None] * len(HEADS)
    actions[OP], log_probs[OP] = op, torch.log_softmax(op_logits, -1).gather(1, op[:, None])[:, 0]
    for h in range(len(HEADS)):
        if h == OP:
            continue
        masked = logits[h].masked_fill(~used[h], MASKED_LOGIT)
        a = torch.multinomial(torch.softmax(masked, -1), 1)[:, 0]
        actions[h] = a
        log_probs[h] = torch.log_softmax(masked, -1).gather(1, a[:, None])[:, 0]
    return (torch.stack(actions, 1).numpy(), torch.stack(log_probs, 1).numpy(), value.numpy(),
            [m.numpy() for m in used], state)


def evaluate(net, obs, cat, starts, state, masks, actions):
    """Replays [B, T] sequences and scores the stored actions (rows batch-major, row = b * T + t):
    per head log-probs and normalized entropies under the conditioned masks, Q(s, stored op)."""
    envs, time_ = obs.shape[:2]
    features, _ = net.trunk_sequences(obs, cat, starts, state)
    features = features.reshape(envs * time_, D_HIDDEN)
    ops = actions[OP]
    used = conditioned_masks(masks, ops)
    log_probs, entropies = [], []
    for h, head in enumerate(net.heads):
        log_softmax = torch.log_softmax(head(features).masked_fill(~used[h], MASKED_LOGIT), -1)
        log_probs.append(log_softmax.gather(1, actions[h][:, None])[:, 0])
        entropy = -(log_softmax.exp() * log_softmax).sum(-1)  # masked probabilities are exactly 0
        allowed = used[h].sum(-1)
        entropies.append(torch.where(allowed > 1, entropy / torch.log(allowed.clamp_min(2).to(entropy.dtype)),
                                     torch.zeros_like(entropy)))
    return log_probs, entropies, net.q(features, ops), RELEVANCE[ops]


def ppo_update(net, opt, batch):
    """One PPO update on whole sequences (mirrors `ppo_loss` + `clip_grad_norm` + Adam of the Rust bench)."""
    log_probs, entropies, values, relevance = evaluate(
        net, batch["obs"], batch["cat"], batch["starts"], batch["state"], batch["masks"], batch["actions"])
    advantages, rows = batch["advantages"], values.shape[0]
    policy_loss = values.new_zeros(())
    entropy = values.new_zeros(())
    stats = []
    for h in range(len(HEADS)):
        w = relevance[:, h]
        relevant = w.sum().clamp_min(1.0)
        log_ratio = log_probs[h] - batch["old_log_probs"][h]
        ratio = log_ratio.exp()
        surrogate = -torch.min(ratio * advantages, ratio.clamp(1.0 - CLIP, 1.0 + CLIP) * advantages)
        policy_loss = policy_loss + (surrogate * w).sum() / relevant
        head_entropy = (entropies[h] * w).sum() / relevant
        entropy = entropy + ENTROPY_WEIGHTS[h] * head_entropy
        with torch.no_grad():
            r = ratio.detach()
            kl = (((r - 1.0) - log_ratio.detach()) * w).sum() / rows
            clipped = (((r - 1.0).abs() > CLIP).to(w.dtype) * w).sum()
            stats += [head_entropy.detach(), kl, clipped]
    old_values, returns = batch["old_values"], batch["returns"]
    clipped_values = old_values + (values - old_values).clamp(-VALUE_CLIP, VALUE_CLIP)
    value_loss = 0.5 * torch.max((values - returns) ** 2, (clipped_values - returns) ** 2).mean()
    loss = policy_loss + VALUE_COEF * value_loss - ENTROPY_COEF * entropy
    host_stats = torch.stack(stats + [policy_loss.detach(), value_loss.detach()]).tolist()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(net.parameters(), 1.0)
    opt.step()
    return host_stats


# ---------------------------------------------------------------------------------------------------
# Inputs as in benches/policy.rs `inputs()`.

def bench_inputs(rows, generator):
    return {
        "obs": torch.randn(rows, D_OBS, generator=generator),
        "cat": (torch.arange(rows * NUM_CATEGORICAL) % 14 - 1).reshape(rows, NUM_CATEGORICAL),
        "masks": [torch.ones(rows, size, dtype=torch.bool) for _, size in HEADS],
        "starts": torch.arange(rows) % 150 == 0,
    }


def update_batch(envs, time_, generator):
    rows = envs * time_
    x = bench_inputs(rows, generator)
    actions = [torch.full((rows,), size - 1, dtype=torch.long) for _, size in HEADS]
    actions[OP] = 1 + torch.arange(rows) % 2  # GERMINATE / SET_ALPHA_TARGET: every head relevant to one
    zeros = torch.zeros(1, envs, D_HIDDEN)
    return {
        "obs": x["obs"].reshape(envs, time_, D_OBS),
        "cat": x["cat"].reshape(envs, time_, NUM_CATEGORICAL),
        "starts": x["starts"].reshape(envs, time_),
        "state": (zeros, zeros.clone()),
        "masks": x["masks"],
        "actions": actions,
        "old_log_probs": [torch.full((rows,), -math.log(size)) for _, size in HEADS],
        "advantages": torch.randn(rows, generator=generator),
        "returns": torch.randn(rows, generator=generator),
        "old_values": torch.zeros(rows),
    }


def initial_state(batch, cell):
    zeros = torch.zeros(batch, D_HIDDEN) if cell else torch.zeros(1, batch, D_HIDDEN)
    return zeros, zeros.clone()


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    return {"median": statistics.median(times), "p25": q[0], "p75": q[2], "min": times[0], "n": len(times)}


def bench_act(net, batch, cell, args):
    g = torch.Generator().manual_seed(0)
    x = bench_inputs(batch, g)
    starts = torch.zeros(batch, dtype=torch.bool)  # the Rust bench acts with no episode starts
    state = [initial_state(batch, cell)]

    def step():
        *_, state[0] = act(net, x["obs"], x["cat"], x["masks"], starts, state[0], cell)

    return timed(step, args.act_warmup, args.act_iters)


def bench_update(envs, args):
    torch.manual_seed(args.seed)
    net = FactoredRecurrentActorCritic()
    opt = torch.optim.Adam(net.parameters(), lr=3e-4, eps=1e-5)
    batch = update_batch(envs, 150, torch.Generator().manual_seed(1))
    return timed(lambda: ppo_update(net, opt, batch), args.update_warmup, args.update_iters)


def check(net):
    """Acting then replaying the same sequences reproduces log-probs and values (SPEC §5), with
    episode starts in the middle of sequences, in both act variants and both oneDNN settings."""
    envs, time_ = 3, 12
    g = torch.Generator().manual_seed(7)
    obs = torch.randn(envs, time_, D_OBS, generator=g)
    cat = torch.randint(-1, VOCAB, (envs, time_, NUM_CATEGORICAL), generator=g)
    starts = torch.rand(envs, time_, generator=g) < 0.2
    starts[:, 0] = True
    worst = 0.0
    for mkldnn in (True, False):
        torch.backends.mkldnn.enabled = mkldnn
        for cell in (False, True):
            state = initial_state(envs, cell)
            masks_t = []
            for t in range(time_):
                masks = [torch.rand(envs, size, generator=g) < 0.7 for _, size in HEADS]
                for m in masks:
                    m[torch.arange(envs), torch.randint(0, m.shape[1], (envs,), generator=g)] = True
                masks[STYLE][:, SIGMOID_ADD] = True  # the op-conditioned rule never empties the row
                a, lp, v, used, state = act(net, obs[:, t], cat[:, t], masks, starts[:, t], state, cell)
                masks_t.append((masks, a, lp, v, used))
            # Rows batch-major: row = b * T + t.
            masks = [torch.stack([m[0][h] for m in masks_t], 1).reshape(envs * time_, -1)
                     for h in range(len(HEADS))]
            actions = [torch.from_numpy(np.stack([m[1][:, h] for m in masks_t], 1).reshape(-1))
                       for h in range(len(HEADS))]
            acted_lp = np.stack([m[2] for m in masks_t], 1).reshape(envs * time_, len(HEADS))
            acted_v = np.stack([m[3] for m in masks_t], 1).reshape(-1)
            for m in masks_t:  # no masked action chosen
                for h in range(len(HEADS)):
                    assert m[4][h][np.arange(envs), m[1][:, h]].all(), "a masked action was sampled"
            with torch.no_grad():
                lps, ents, values, _ = evaluate(net, obs, cat, starts, initial_state(envs, False), masks, actions)
            err = max(float(np.abs(torch.stack(lps, 1).numpy() - acted_lp).max()),
                      float(np.abs(values.numpy() - acted_v).max()))
            assert all(torch.isfinite(e).all() for e in ents)
            print(f"check: oneDNN {'on ' if mkldnn else 'off'}, act via {'lstm_cell' if cell else 'nn.LSTM  '}: "
                  f"max |replayed - acted| (log-probs, values) = {err:.2e}")
            worst = max(worst, err)
    assert worst < 1e-4, worst
    print("check passed")


def cpu_name():
    try:
        info = open("/proc/cpuinfo").read().split("\n\n")[0]
        fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        flags = fields.get("flags", "").split()
        simd = "+".join(f for f in ("avx2", "fma", "avx512f") if f in flags)
        return (f"{fields.get('model name', '?')} (family {fields.get('cpu family', '?')} model "
                f"{fields.get('model', '?')}, {simd}), {os.cpu_count()} logical CPUs")
    except OSError:
        return platform.processor()


def fmt(r):
    if not r:
        return "-"
    d = 3 if r["median"] < 20 else 1
    return f"{r['median']:.{d}f} ({r['p25']:.{d}f}-{r['p75']:.{d}f})"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mkldnn", choices=["on", "off", "both"], default="both")
    parser.add_argument("--act-iters", type=int, default=300)
    parser.add_argument("--act-warmup", type=int, default=50)
    parser.add_argument("--update-iters", type=int, default=15)
    parser.add_argument("--update-warmup", type=int, default=3)
    parser.add_argument("--only", choices=["act", "update"], default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="only check act/replay consistency, time nothing")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = FactoredRecurrentActorCritic()
    params = sum(p.numel() for p in net.parameters())
    print(f"Python {platform.python_version()}, torch {torch.__version__}, numpy {np.__version__}, "
          f"{torch.get_num_threads()} torch threads, CPU capability {torch.backends.cpu.get_cpu_capability()}")
    print(f"CPU: {cpu_name()}")
    print(f"reference network (SPEC §4): {params:,} parameters", flush=True)
    assert params == EXPECTED_PARAMETERS, f"expected {EXPECTED_PARAMETERS:,} parameters, got {params:,}"
    if args.check:
        check(net)
        return

    settings = {"on": [True], "off": [False], "both": [True, False]}[args.mkldnn]
    results = {}  # (name, variant) -> {mkldnn: result}
    for mkldnn in settings:
        torch.backends.mkldnn.enabled = mkldnn
        if args.only in (None, "act"):
            for batch in (4, 64):
                for cell, variant in ((False, "nn.LSTM, T=1"), (True, "lstm_cell")):
                    r = bench_act(net, batch, cell, args)
                    results.setdefault((f"act, batch {batch}", variant), {})[mkldnn] = r
                    print(f"  oneDNN {'on ' if mkldnn else 'off'} act batch {batch:2d} {variant:13s} "
                          f"median {r['median']:.3f} ms over {r['n']}", flush=True)
        if args.only in (None, "update"):
            for envs in (4, 32):
                r = bench_update(envs, args)
                results.setdefault((f"PPO update, {envs} x 150", "nn.LSTM"), {})[mkldnn] = r
                print(f"  oneDNN {'on ' if mkldnn else 'off'} PPO update {envs:2d} x 150 "
                      f"median {r['median']:.1f} ms over {r['n']}", flush=True)

    print()
    print("median ms (interquartile range); act: "
          f"{args.act_iters} iterations after {args.act_warmup} warm-up, update: "
          f"{args.update_iters} after {args.update_warmup}")
    print(f"| {'benchmark':20s} | {'trunk':13s} | {'oneDNN on':24s} | {'oneDNN off':24s} |")
    print(f"| {'-' * 20} | {'-' * 13} | {'-' * 24} | {'-' * 24} |")
    for (name, variant), by in results.items():
        print(f"| {name:20s} | {variant:13s} | {fmt(by.get(True)):24s} | {fmt(by.get(False)):24s} |")
    print()
    print("best per benchmark (the baseline to quote):")
    best = {}
    for (name, variant), by in results.items():
        for mkldnn, r in by.items():
            if name not in best or r["median"] < best[name][0]:
                best[name] = (r["median"], variant, mkldnn)
    for name, (median, variant, mkldnn) in best.items():
        print(f"  {name:20s} {median:9.3f} ms  ({variant}, oneDNN {'on' if mkldnn else 'off'})")


if __name__ == "__main__":
    sys.exit(main())
