//! `factored-rl train`: recurrent PPO on a built-in environment.

use std::path::PathBuf;
use std::time::Instant;

use factored_rl::backend::device_by_name;
use factored_rl::env::{EnvConfigs, make_env, make_vec_env};
use factored_rl::ppo::{PpoTrainer, TrainSettings, UpdateLog, evaluate_deterministic, preset};
use factored_rl::report::{MetricsCsv, plot_curve};
use factored_rl::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// Train an agent with recurrent PPO.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Environment: cartpole, recall or lifecycle.
    #[arg(long)]
    pub env: String,
    /// Env steps to train for (default: the environment's preset).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of the network, the environments and every random choice.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (default: runs/<env>-seed<seed>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// JSON file overriding any part of the preset ({"network": …, "ppo": …, "total_steps": …,
    /// "eval_episodes": …}).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run saved in the output folder.
    #[arg(long)]
    pub resume: bool,
    /// Where the network trains: flex (the CPU, default) or a GPU backend compiled in with its
    /// cargo feature (wgpu, cuda, tch). Acting always runs on a host copy.
    #[arg(long, default_value = "flex")]
    pub backend: String,
}

/// Overlays `patch` onto `base`, recursively for objects.
fn overlay(base: &mut serde_json::Value, patch: serde_json::Value) {
    match (base, patch) {
        (serde_json::Value::Object(b), serde_json::Value::Object(p)) => {
            for (k, v) in p {
                overlay(b.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (b, p) => *b = p,
    }
}

/// The preset for the env, with the config file laid over it.
pub fn settings(
    env: &str,
    seed: u64,
    config: Option<&PathBuf>,
    env_configs: &EnvConfigs,
) -> Result<TrainSettings> {
    let spec = make_env(env, env_configs)?.spec().clone();
    let preset = preset(&spec, seed)?;
    let Some(path) = config else {
        return Ok(preset);
    };
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let patch: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        file: path.clone(),
        reason: format!("not JSON: {e}"),
    })?;
    let mut value = serde_json::to_value(&preset).expect("settings serialize");
    overlay(&mut value, patch);
    serde_json::from_value(value).map_err(|e| Error::Corrupt {
        file: path.clone(),
        reason: format!("not a training configuration: {e}"),
    })
}

fn metrics_row(log: &UpdateLog, elapsed: f64, steps_this_session: usize) -> Vec<(String, String)> {
    let mut row = vec![
        ("iteration".to_string(), log.iteration.to_string()),
        ("global_step".into(), log.global_step.to_string()),
        ("elapsed_s".into(), format!("{elapsed:.2}")),
        (
            "steps_per_s".into(),
            format!("{:.1}", steps_this_session as f64 / elapsed.max(1e-9)),
        ),
        ("episodes".into(), log.episodes.to_string()),
        ("mean_return".into(), format!("{:.4}", log.mean_return)),
        ("mean_length".into(), format!("{:.2}", log.mean_length)),
        (
            "success_rate".into(),
            log.success_rate
                .map_or(String::new(), |s| format!("{s:.4}")),
        ),
        ("learning_rate".into(), format!("{:.3e}", log.learning_rate)),
        ("policy_loss".into(), format!("{:.5}", log.policy_loss)),
        ("value_loss".into(), format!("{:.5}", log.value_loss)),
        ("approx_kl".into(), format!("{:.5}", log.approx_kl)),
        ("clip_fraction".into(), format!("{:.4}", log.clip_fraction)),
        (
            "explained_variance".into(),
            format!("{:.4}", log.explained_variance),
        ),
        ("grad_norm".into(), format!("{:.4}", log.grad_norm)),
        ("minibatch_steps".into(), log.minibatch_steps.to_string()),
        (
            "early_stopped".into(),
            u8::from(log.early_stopped).to_string(),
        ),
    ];
    for (head, e) in &log.entropy {
        row.push((format!("entropy_{head}"), format!("{e:.4}")));
    }
    for (head, k) in &log.head_kl {
        row.push((format!("kl_{head}"), format!("{k:.5}")));
    }
    for (op, f) in log.op_fractions.iter().enumerate() {
        row.push((format!("op_frac_{op}"), format!("{f:.4}")));
    }
    row
}

/// Iterations between checkpoints (a checkpoint is also written at the end).
const CHECKPOINT_EVERY: usize = 10;

/// Runs `train`.
pub fn run(args: Args) -> Result<()> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/{}-seed{}", args.env, args.seed)));
    let checkpoint_dir = out.join("checkpoint");
    let device = device_by_name(&args.backend)?;
    let (mut trainer, mut settings) = if args.resume {
        let (trainer, meta) = PpoTrainer::resume(&checkpoint_dir, &args.env, &device)?;
        (trainer, meta.settings)
    } else {
        let settings = settings(
            &args.env,
            args.seed,
            args.config.as_ref(),
            &EnvConfigs::default(),
        )?;
        std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
        let envs = make_vec_env(
            &args.env,
            &settings.env,
            settings.ppo.num_envs,
            settings.ppo.seed,
        )?;
        let trainer = PpoTrainer::new(&settings.network, settings.ppo.clone(), envs, &device)?;
        (trainer, settings)
    };
    // The run's length is part of its settings (learning-rate annealing depends on it): a resumed
    // run keeps the stored length unless --steps changes it.
    settings.total_steps = args.steps.unwrap_or(settings.total_steps);
    let total_steps = settings.total_steps;
    let mut csv = MetricsCsv::create(out.join("metrics.csv"), args.resume)?;

    let bar = ProgressBar::new(total_steps as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} env steps  {per_sec}  {msg}")
            .expect("a valid template"),
    );
    bar.set_position(trainer.progress().global_step as u64);
    let start = Instant::now();
    let resumed_at = trainer.progress().global_step;
    trainer.train(total_steps, |trainer, log| {
        bar.set_position(log.global_step as u64);
        let success = log
            .success_rate
            .map_or(String::new(), |s| format!(" success {:.0}%", 100.0 * s));
        bar.set_message(format!("mean return {:.2}{success}", log.mean_return));
        let elapsed = start.elapsed().as_secs_f64();
        csv.append(&metrics_row(log, elapsed, log.global_step - resumed_at))?;
        if log.iteration % CHECKPOINT_EVERY == 0 {
            trainer.save_checkpoint(&checkpoint_dir, &args.env, &settings)?;
        }
        Ok(())
    })?;
    trainer.save_checkpoint(&checkpoint_dir, &args.env, &settings)?;
    bar.finish();

    let steps = csv.column("global_step")?;
    let returns = csv.column("mean_return")?;
    let points = steps.into_iter().zip(returns).collect();
    plot_curve(
        &out.join("curve.png"),
        &format!("{}: recurrent PPO, seed {}", args.env, settings.ppo.seed),
        "env steps",
        "mean return (last 100 episodes)",
        &[("train", points)],
    )?;
    let report = evaluate_deterministic(
        trainer.policy(),
        &args.env,
        &settings.env,
        settings.eval_episodes,
        EVAL_SEED,
        trainer.observation_normalizer(),
    )?;
    println!(
        "eval mean_return={:.3} episodes={}",
        report.mean_return, report.episodes
    );
    Ok(())
}

/// Seed of the evaluation environments (fixed, so runs and `eval` are comparable).
pub const EVAL_SEED: u64 = 1_000_000;
