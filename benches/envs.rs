//! Env steps per second under a uniformly random policy, for each built-in env, stepped directly
//! and through a 16-env `VecEnv` (which adds validation, auto-reset and flat batching).
//!
//! Run with `cargo bench --bench envs`; each benchmark times 1,000 env steps (criterion's
//! `Throughput::Elements` prints steps/s).

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use factored_rl::env::{ENV_NAMES, EnvConfigs, make_env, make_vec_env, random_action};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

const STEPS: usize = 1_000;
const NUM_ENVS: usize = 16;

fn single_env(c: &mut Criterion) {
    let mut group = c.benchmark_group("env_random_policy");
    group.throughput(Throughput::Elements(STEPS as u64));
    let configs = EnvConfigs::default();
    for name in ENV_NAMES {
        let mut env = make_env(name, &configs).expect("built-in env");
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        let mut masks = env.reset(Some(0)).masks;
        group.bench_function(BenchmarkId::new("single", name), |b| {
            b.iter(|| {
                for _ in 0..STEPS {
                    let space = &env.spec().action_space;
                    let action = random_action(space, &masks, env.conditional_masks(), &mut rng)
                        .expect("masks are never empty");
                    let step = env.step(&action).expect("allowed action");
                    masks = if step.terminated || step.truncated {
                        env.reset(None).masks
                    } else {
                        step.masks
                    };
                }
            });
        });
    }
    group.finish();
}

fn vec_env(c: &mut Criterion) {
    let mut group = c.benchmark_group("env_random_policy");
    group.throughput(Throughput::Elements(STEPS as u64));
    let configs = EnvConfigs::default();
    for name in ENV_NAMES {
        let mut vec_env = make_vec_env(name, &configs, NUM_ENVS, 0).expect("built-in env");
        vec_env.reset().expect("reset");
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
        group.bench_function(BenchmarkId::new("vec16", name), |b| {
            b.iter(|| {
                for _ in 0..STEPS / NUM_ENVS {
                    let actions = vec_env.random_actions(&mut rng).expect("masks");
                    vec_env.step(&actions).expect("allowed actions");
                }
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    // No fonts on the build machines: criterion's HTML plots would fail.
    config = Criterion::default().without_plots();
    targets = single_env, vec_env
}
criterion_main!(benches);
