//! The reference network (SPEC §4) on the default CPU backend: one acting step at batch 4 and 64
//! (through burn, and through the host-side actor the trainer uses),
//! and one PPO update (forward with grad over whole sequences, factored clipped surrogate on 8 heads
//! plus value loss + entropy, backward, global grad-norm clip 1.0, Adam step) at 4 × 150 and 32 × 150.
//! `shared/BASELINES.md` has PyTorch 2.15's figures for the identical network on this machine kind.
//! Also one minibatch step of `train --env cartpole` (its preset's network and PPO settings).
//!
//! Run: `cargo bench --bench policy`. Like the `factored-rl` binary, it first calls
//! `backend::retain_freed_memory` (glibc keeps freed memory instead of remapping it).

use criterion::{Criterion, criterion_group, criterion_main};
use factored_rl::action_space::reference;
use factored_rl::backend::default_device;
use factored_rl::burn::module::Module;
use factored_rl::env::{EnvConfigs, make_env};
use factored_rl::optim::{FusedAdamConfig, clip_grad_norm};
use factored_rl::policy::{
    ActInput, ActMode, EvaluateInput, FactoredRecurrentActorCritic,
    FactoredRecurrentActorCriticConfig, Sequences,
};
use factored_rl::ppo::{PpoLossCoefficients, PpoTargets, ppo_loss, preset};
use rand::SeedableRng;
use rand::rngs::StdRng;

struct Inputs {
    observations: Vec<f32>,
    categorical: Vec<i64>,
    masks: Vec<Vec<bool>>,
    episode_starts: Vec<bool>,
}

fn inputs(net: &FactoredRecurrentActorCritic, rows: usize, rng: &mut StdRng) -> Inputs {
    Inputs {
        observations: factored_rl::nn::init::normal(rows * 114, 0.0, 1.0, rng),
        categorical: (0..rows * 3).map(|i| (i as i64 % 14) - 1).collect(),
        masks: net
            .space()
            .heads()
            .iter()
            .map(|h| vec![true; rows * h.size])
            .collect(),
        episode_starts: (0..rows).map(|r| r % 150 == 0).collect(),
    }
}

fn act(c: &mut Criterion) {
    // As the `factored-rl` binary does (see its documentation for the effect on the update).
    factored_rl::backend::retain_freed_memory();
    let net = FactoredRecurrentActorCriticConfig::reference()
        .init(&default_device())
        .unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    for batch in [4, 64] {
        let x = inputs(&net, batch, &mut rng);
        let starts = vec![false; batch];
        let input = ActInput {
            observations: &x.observations,
            categorical: &x.categorical,
            masks: &x.masks,
            conditional_masks: &[],
            episode_starts: &starts,
        };
        let mut state = net.initial_state(batch);
        c.bench_function(&format!("act/reference/batch_{batch}"), |b| {
            b.iter(|| {
                let out = net
                    .act(&input, &state, ActMode::Stochastic, &mut rng)
                    .unwrap();
                state = out.state;
            })
        });
        // The host-side copy the PPO trainer acts with (same decisions, tested).
        let host_actor = net.host_actor();
        let mut host_state = host_actor.initial_state(batch);
        c.bench_function(&format!("act_host/reference/batch_{batch}"), |b| {
            b.iter(|| {
                let out = host_actor
                    .act(&input, &host_state, ActMode::Stochastic, &mut rng)
                    .unwrap();
                host_state = out.state;
            })
        });
    }
}

/// One PPO minibatch step's inputs and settings.
struct UpdateCase {
    name: String,
    config: FactoredRecurrentActorCriticConfig,
    envs: usize,
    time: usize,
    inputs: Inputs,
    actions: Vec<Vec<usize>>,
    coefs: PpoLossCoefficients,
    max_grad_norm: f32,
    learning_rate: f64,
}

/// The reference network at `envs` × 150, as `BASELINES.md` times it.
fn reference_case(envs: usize) -> UpdateCase {
    let time = 150;
    let rows = envs * time;
    let config = FactoredRecurrentActorCriticConfig::reference();
    let net = config.init(&default_device()).unwrap();
    let space = net.space().clone();
    let mut rng = StdRng::seed_from_u64(1);
    let inputs = inputs(&net, rows, &mut rng);
    let mut actions: Vec<Vec<usize>> = space
        .heads()
        .iter()
        .map(|h| vec![h.size - 1; rows])
        .collect();
    // GERMINATE and SET_ALPHA_TARGET: every head is relevant to one of them, and style is unrestricted.
    actions[reference::OP] = (0..rows).map(|r| 1 + r % 2).collect();
    UpdateCase {
        name: format!("reference/{envs}x{time}"),
        config,
        envs,
        time,
        inputs,
        actions,
        coefs: PpoLossCoefficients {
            clip_coef: 0.2,
            value_clip: Some(0.2),
            value_coef: 0.5,
            entropy_coef: 0.05,
            head_entropy_weights: vec![1.0, 1.3, 1.2, 1.3, 1.2, 1.2, 1.2, 1.0],
        },
        max_grad_norm: 1.0,
        learning_rate: 3e-4,
    }
}

/// One minibatch step of `train --env cartpole` with its preset (8 sequences × 32 steps, the
/// 64-wide network): a run takes 390 of them (195 rollouts × 2 minibatches × 1 epoch), so this
/// bounds its env steps/s.
fn cartpole_case() -> UpdateCase {
    let spec = make_env("cartpole", &EnvConfigs::default())
        .unwrap()
        .spec()
        .clone();
    let settings = preset(&spec, 1).unwrap();
    let envs = settings.ppo.num_envs / settings.ppo.num_minibatches;
    let time = settings.ppo.num_steps;
    let rows = envs * time;
    let mut rng = StdRng::seed_from_u64(1);
    UpdateCase {
        name: format!("cartpole/{envs}x{time}"),
        config: settings.network,
        envs,
        time,
        inputs: Inputs {
            observations: factored_rl::nn::init::normal(
                rows * spec.observation_size,
                0.0,
                1.0,
                &mut rng,
            ),
            categorical: Vec::new(),
            masks: vec![vec![true; rows * 2]],
            // Episodes of about 20 steps, as early in training.
            episode_starts: (0..rows).map(|r| r % 20 == 0).collect(),
        },
        actions: vec![(0..rows).map(|r| (r * 7 / 3) % 2).collect()],
        coefs: PpoLossCoefficients {
            clip_coef: settings.ppo.clip_coef,
            value_clip: settings
                .ppo
                .clip_value_loss
                .then_some(settings.ppo.clip_coef),
            value_coef: settings.ppo.value_coef,
            entropy_coef: settings.ppo.entropy_coef,
            head_entropy_weights: vec![1.0],
        },
        max_grad_norm: settings.ppo.max_grad_norm,
        learning_rate: settings.ppo.learning_rate,
    }
}

fn update(c: &mut Criterion) {
    factored_rl::backend::retain_freed_memory();
    let device = default_device().autodiff();
    let mut group = c.benchmark_group("ppo_update");
    group.sample_size(10);
    for case in [reference_case(4), reference_case(32), cartpole_case()] {
        let UpdateCase {
            envs,
            time,
            inputs: x,
            actions,
            coefs,
            ..
        } = &case;
        let (envs, time, rows) = (*envs, *time, envs * time);
        let mut net = Some(case.config.init(&device).unwrap().train());
        let space = net.as_ref().unwrap().space().clone();
        let mut rng = StdRng::seed_from_u64(2);
        let old_log_probs: Vec<Vec<f32>> = space
            .heads()
            .iter()
            .map(|h| vec![-(h.size as f32).ln(); rows])
            .collect();
        let advantages = factored_rl::nn::init::normal(rows, 0.0, 1.0, &mut rng);
        let returns = factored_rl::nn::init::normal(rows, 0.0, 1.0, &mut rng);
        let old_values = vec![0.0; rows];
        let mut optimizer = FusedAdamConfig::new().with_epsilon(1e-5).init();
        group.bench_function(&case.name, |b| {
            b.iter(|| {
                let model = net.take().unwrap();
                let input = EvaluateInput {
                    sequences: Sequences {
                        batch: envs,
                        time,
                        observations: &x.observations,
                        categorical: &x.categorical,
                        episode_starts: &x.episode_starts,
                    },
                    masks: &x.masks,
                    actions,
                };
                let targets = PpoTargets {
                    old_log_probs: &old_log_probs,
                    advantages: &advantages,
                    returns: &returns,
                    old_values: &old_values,
                };
                let (mut grads, _stats) = model
                    .evaluate_with_gradients(&input, model.initial_state(envs), |eval| {
                        let loss = ppo_loss(eval, &targets, coefs)?;
                        Ok((loss.total, loss.stats))
                    })
                    .unwrap();
                clip_grad_norm(&model, &mut grads, case.max_grad_norm);
                net = Some(optimizer.step(case.learning_rate, model, grads));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, act, update);
criterion_main!(benches);
