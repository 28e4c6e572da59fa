//! GAE over 2,048 steps × 64 envs with terminations and truncations. Baseline: numpy's loop over
//! time vectorized over envs, ≈ 8 ms on this machine kind (`shared/BASELINES.md`); measure it in the
//! same session with `python3 benches/baselines/gae_numpy.py`.
//!
//! Run: `cargo bench --bench gae`.

use criterion::{Criterion, criterion_group, criterion_main};
use factored_rl::gae::{GaeInputs, GaeParams, compute_gae};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn gae(c: &mut Criterion) {
    let (steps, envs) = (2048, 64);
    let cells = steps * envs;
    let mut rng = StdRng::seed_from_u64(0);
    let rewards = factored_rl::nn::init::normal(cells, 0.0, 1.0, &mut rng);
    let values = factored_rl::nn::init::normal(cells, 0.0, 1.0, &mut rng);
    let terminal_values = factored_rl::nn::init::normal(cells, 0.0, 1.0, &mut rng);
    let last_values = factored_rl::nn::init::normal(envs, 0.0, 1.0, &mut rng);
    let terminated: Vec<bool> = (0..cells).map(|_| rng.random::<f32>() < 0.01).collect();
    let truncated: Vec<bool> = (0..cells).map(|_| rng.random::<f32>() < 0.005).collect();
    let inputs = GaeInputs {
        num_envs: envs,
        rewards: &rewards,
        values: &values,
        terminated: &terminated,
        truncated: &truncated,
        terminal_values: &terminal_values,
        last_values: &last_values,
    };
    let params = GaeParams {
        gamma: 0.99,
        lambda: 0.95,
    };
    let mut advantages = vec![0.0; cells];
    let mut returns = vec![0.0; cells];
    c.bench_function("gae/2048x64", |b| {
        b.iter(|| compute_gae(&inputs, params, &mut advantages, &mut returns).unwrap())
    });
}

criterion_group!(benches, gae);
criterion_main!(benches);
