//! Checks a backend against the default CPU backend (flex) on the reference network (SPEC §4):
//! built from the same seed, both must give the same deterministic decisions, the same values and
//! log-probs when acting, the same re-evaluation of stored sequences, and the same PPO-loss
//! gradients, within float tolerance. Then it times one act and one update on each.
//!
//! Run: `cargo run --release --features cuda --example backend_check -- cuda [ENVS]` (or `wgpu`,
//! `tch` with their features; `flex` checks the CPU backend against itself). `ENVS` is the number
//! of sequences of 150 steps the update replays (default 4). It exits with status 1 when a
//! difference is beyond tolerance.

use std::time::Instant;

use factored_rl::action_space::reference;
use factored_rl::backend::{default_device, device_by_name};
use factored_rl::burn::module::{Module, ModuleVisitor, Param};
use factored_rl::burn::optim::GradientsParams;
use factored_rl::burn::tensor::{Device, Tensor};
use factored_rl::policy::{
    ActInput, ActMode, EvaluateInput, FactoredRecurrentActorCritic,
    FactoredRecurrentActorCriticConfig, Sequences,
};
use factored_rl::ppo::{PpoLossCoefficients, PpoTargets, ppo_loss};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Relative tolerance of every comparison: float32 sums in another order, over products of
/// 512-wide rows and 150 LSTM steps.
const TOLERANCE: f32 = 2e-3;

struct Batch {
    observations: Vec<f32>,
    categorical: Vec<i64>,
    masks: Vec<Vec<bool>>,
    episode_starts: Vec<bool>,
    actions: Vec<Vec<usize>>,
}

fn batch(net: &FactoredRecurrentActorCritic, rows: usize, time: usize) -> Batch {
    let mut rng = StdRng::seed_from_u64(1);
    let space = net.space();
    let mut actions: Vec<Vec<usize>> = space
        .heads()
        .iter()
        .map(|h| vec![h.size - 1; rows])
        .collect();
    actions[reference::OP] = (0..rows).map(|r| 1 + r % 2).collect();
    Batch {
        observations: factored_rl::nn::init::normal(rows * 114, 0.0, 1.0, &mut rng),
        categorical: (0..rows * 3).map(|i| (i as i64 % 14) - 1).collect(),
        masks: space
            .heads()
            .iter()
            .map(|h| vec![true; rows * h.size])
            .collect(),
        episode_starts: (0..rows).map(|r| r % time == 0 || r % 37 == 5).collect(),
        actions,
    }
}

/// What one backend computed, on the host.
struct Results {
    act_values: Vec<f32>,
    act_log_probs: Vec<f32>,
    act_actions: Vec<Vec<usize>>,
    eval_values: Vec<f32>,
    eval_log_probs: Vec<f32>,
    gradients: Vec<Vec<f32>>,
    act_seconds: f64,
    update_seconds: f64,
}

fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor.into_data().try_into_vec_as::<f32>().unwrap()
}

/// Every parameter's gradient, in module order.
struct Collect<'a> {
    grads: &'a GradientsParams,
    out: Vec<Vec<f32>>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.out
            .push(self.grads.get::<D>(param.id).map(host).unwrap_or_default());
    }
}

fn run(device: &Device, envs: usize) -> factored_rl::Result<Results> {
    let config = FactoredRecurrentActorCriticConfig::reference();
    let net = config.init(device)?;
    let time = 150;
    let acting = batch(&net, 4, time);
    let input = ActInput {
        observations: &acting.observations,
        categorical: &acting.categorical,
        masks: &acting.masks,
        conditional_masks: &[],
        episode_starts: &[false; 4],
    };
    let mut rng = StdRng::seed_from_u64(0);
    let act = net.act(
        &input,
        &net.initial_state(4),
        ActMode::Deterministic,
        &mut rng,
    )?;
    // The first calls on a GPU compile kernels; time the ones after.
    let started = Instant::now();
    for _ in 0..10 {
        net.act(
            &input,
            &net.initial_state(4),
            ActMode::Deterministic,
            &mut rng,
        )?;
    }
    let act_seconds = started.elapsed().as_secs_f64() / 10.0;

    let rows = envs * time;
    let stored = batch(&net, rows, time);
    let evaluate_input = EvaluateInput {
        sequences: Sequences {
            batch: envs,
            time,
            observations: &stored.observations,
            categorical: &stored.categorical,
            episode_starts: &stored.episode_starts,
        },
        masks: &stored.masks,
        actions: &stored.actions,
    };
    let eval = net.evaluate_actions(&evaluate_input, net.initial_state(envs))?;

    let trainable = config.init(&device.clone().autodiff())?.train();
    let old_log_probs: Vec<Vec<f32>> = net
        .space()
        .heads()
        .iter()
        .map(|h| vec![-(h.size as f32).ln(); rows])
        .collect();
    let mut rng = StdRng::seed_from_u64(2);
    let advantages = factored_rl::nn::init::normal(rows, 0.0, 1.0, &mut rng);
    let returns = factored_rl::nn::init::normal(rows, 0.0, 1.0, &mut rng);
    let old_values = vec![0.0; rows];
    let targets = PpoTargets {
        old_log_probs: &old_log_probs,
        advantages: &advantages,
        returns: &returns,
        old_values: &old_values,
    };
    let coefs = PpoLossCoefficients {
        clip_coef: 0.2,
        value_clip: Some(0.2),
        value_coef: 0.5,
        entropy_coef: 0.05,
        head_entropy_weights: vec![1.0; 8],
    };
    let update = || {
        trainable.evaluate_with_gradients(&evaluate_input, trainable.initial_state(envs), |eval| {
            Ok((ppo_loss(eval, &targets, &coefs)?.total, ()))
        })
    };
    let (grads, ()) = update()?;
    let started = Instant::now();
    for _ in 0..3 {
        update()?;
    }
    let update_seconds = started.elapsed().as_secs_f64() / 3.0;
    let mut collect = Collect {
        grads: &grads,
        out: Vec::new(),
    };
    trainable.visit(&mut collect);

    Ok(Results {
        act_values: act.values,
        act_log_probs: act.log_probs.concat(),
        act_actions: act.actions,
        eval_values: host(eval.values),
        eval_log_probs: eval.log_probs.into_iter().flat_map(host).collect(),
        gradients: collect.out,
        act_seconds,
        update_seconds,
    })
}

/// The largest difference relative to the largest magnitude of `expected` (at least 1).
fn relative_difference(expected: &[f32], found: &[f32]) -> f32 {
    if expected.len() != found.len() {
        return f32::INFINITY;
    }
    let scale = expected.iter().fold(1f32, |m, v| m.max(v.abs()));
    expected
        .iter()
        .zip(found)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
        / scale
}

fn main() -> factored_rl::Result<()> {
    let name = std::env::args().nth(1).unwrap_or_else(|| "flex".into());
    let envs = match std::env::args().nth(2) {
        Some(text) => text.parse().map_err(|_| {
            factored_rl::Error::invalid("ENVS", format!("`{text}` is not a number of sequences"))
        })?,
        None => 4,
    };
    let device = device_by_name(&name)?;
    let cpu = run(&default_device(), envs)?;
    let other = run(&device, envs)?;
    let mut checks = vec![
        (
            "act values",
            relative_difference(&cpu.act_values, &other.act_values),
        ),
        (
            "act log-probs",
            relative_difference(&cpu.act_log_probs, &other.act_log_probs),
        ),
        (
            "evaluate values",
            relative_difference(&cpu.eval_values, &other.eval_values),
        ),
        (
            "evaluate log-probs",
            relative_difference(&cpu.eval_log_probs, &other.eval_log_probs),
        ),
    ];
    let gradient = cpu
        .gradients
        .iter()
        .zip(&other.gradients)
        .map(|(a, b)| relative_difference(a, b))
        .fold(0.0, f32::max);
    checks.push(("gradients (worst parameter)", gradient));
    let same_actions = cpu.act_actions == other.act_actions;
    println!("backend `{name}` against flex, reference network");
    println!("  deterministic actions identical: {same_actions}; tolerance {TOLERANCE} (relative)");
    let mut ok = same_actions && cpu.gradients.len() == other.gradients.len();
    for (what, difference) in &checks {
        println!("  {what}: {difference:.2e}");
        ok &= *difference <= TOLERANCE;
    }
    println!(
        "  act batch 4: flex {:.3} ms, {name} {:.3} ms; update {envs} x 150 (forward, loss, backward): flex {:.1} ms, {name} {:.1} ms",
        cpu.act_seconds * 1e3,
        other.act_seconds * 1e3,
        cpu.update_seconds * 1e3,
        other.update_seconds * 1e3
    );
    if !ok {
        println!("  FAILED");
        std::process::exit(1);
    }
    println!("  ok");
    Ok(())
}
