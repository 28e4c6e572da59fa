//! `factored-rl grpo`: GRPO for a memory-operation policy (an OLMoE encoder with a memory action
//! head) on the text memory environment.

use std::path::{Path, PathBuf};
use std::time::Instant;

use factored_rl::backend::default_device;
use factored_rl::grpo::memory_env::MemoryEvaluation;
use factored_rl::grpo::{
    GrpoBatchLog, GrpoTrainer, GrpoTrainerConfig, RetrievalEmbedder, RolloutStats,
};
use factored_rl::olmoe::OlmoePolicy;
use factored_rl::report::{MetricsCsv, plot_curve};
use factored_rl::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};

/// The environments `grpo` trains on.
const ENVS: [&str; 1] = ["memory"];

/// Train a memory-operation policy with GRPO.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Hugging Face OLMoE checkpoint folder (config.json, tokenizer.json, model.safetensors or
    /// shards): the encoder; a fresh action head is added.
    #[arg(long)]
    pub model: PathBuf,
    /// Environment: memory.
    #[arg(long)]
    pub env: String,
    /// Batches to train, each a group of rollouts for every task of the batch followed by
    /// `num_iterations` AdamW steps (default: the config's `num_batches`, 80).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Seed of the head, the tasks and the sampling (a `--config` file's `grpo.seed` wins).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output folder (default: runs/grpo-<env>-seed<seed>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// JSON file overriding any part of the trainer config ({"grpo": {"learning_rate": …},
    /// "tasks_per_batch": …, "freeze_encoder": …, "retrieval": "ngram", …}).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Continue the run saved in <out>/checkpoint (over the same --model).
    #[arg(long)]
    pub resume: bool,
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

/// The default trainer config with `seed`, and the config file laid over it. A file that picks
/// `retrieval` without `env.match_threshold` gets that embedder's calibrated threshold.
fn settings(seed: u64, config: Option<&PathBuf>) -> Result<GrpoTrainerConfig> {
    let mut settings = GrpoTrainerConfig::new();
    settings.grpo.seed = seed;
    let Some(path) = config else {
        return Ok(settings);
    };
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let patch: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        file: path.clone(),
        reason: format!("not JSON: {e}"),
    })?;
    let picks_retrieval = patch.get("retrieval").is_some();
    let sets_threshold = patch
        .get("env")
        .and_then(|env| env.get("match_threshold"))
        .is_some();
    let mut value = serde_json::to_value(&settings)
        .map_err(|e| Error::invalid("trainer config", e.to_string()))?;
    overlay(&mut value, patch);
    let mut settings: GrpoTrainerConfig =
        serde_json::from_value(value).map_err(|e| Error::Corrupt {
            file: path.clone(),
            reason: format!("not a GRPO trainer configuration: {e}"),
        })?;
    if picks_retrieval && !sets_threshold {
        settings.env.match_threshold = settings.retrieval.match_threshold();
    }
    settings.validate()?;
    Ok(settings)
}

fn metrics_row(log: &GrpoBatchLog, elapsed: f64) -> Vec<(String, String)> {
    let r = &log.rollouts;
    let eval = |f: fn(&MemoryEvaluation) -> f64| {
        log.eval
            .as_ref()
            .map_or(String::new(), |e| format!("{:.4}", f(e)))
    };
    vec![
        ("batch".to_string(), log.batch.to_string()),
        ("optimizer_steps".into(), log.optimizer_steps.to_string()),
        ("episodes".into(), log.episodes.to_string()),
        ("elapsed_s".into(), format!("{elapsed:.2}")),
        ("mean_reward".into(), format!("{:.4}", r.mean_reward)),
        ("reward_std".into(), format!("{:.4}", r.reward_std)),
        ("success_rate".into(), format!("{:.4}", r.success_rate)),
        ("mean_answer".into(), format!("{:.4}", r.mean_answer)),
        ("mean_length".into(), format!("{:.2}", r.mean_length)),
        ("entropy".into(), format!("{:.4}", r.entropy)),
        (
            "frac_reward_zero_std".into(),
            format!("{:.4}", r.frac_reward_zero_std),
        ),
        ("loss".into(), format!("{:.6}", log.loss)),
        ("kl".into(), format!("{:.6}", log.kl)),
        (
            "clip_ratio_low_mean".into(),
            format!("{:.4}", log.clip_ratio_low_mean),
        ),
        (
            "clip_ratio_low_min".into(),
            format!("{:.4}", log.clip_ratio_low_min),
        ),
        (
            "clip_ratio_high_mean".into(),
            format!("{:.4}", log.clip_ratio_high_mean),
        ),
        (
            "clip_ratio_high_max".into(),
            format!("{:.4}", log.clip_ratio_high_max),
        ),
        (
            "clip_ratio_region_mean".into(),
            format!("{:.4}", log.clip_ratio_region_mean),
        ),
        ("grad_norm".into(), format!("{:.4}", log.grad_norm)),
        ("learning_rate".into(), format!("{:.3e}", log.learning_rate)),
        ("eval_success_rate".into(), eval(|e| e.success_rate)),
        ("eval_mean_reward".into(), eval(|e| e.mean_reward)),
    ]
}

/// The row of batch 0: only the evaluation columns are filled.
fn initial_row(eval: &MemoryEvaluation) -> Vec<(String, String)> {
    let mut row = metrics_row(
        &GrpoBatchLog {
            batch: 0,
            optimizer_steps: 0,
            episodes: 0,
            rollouts: RolloutStats {
                num_completions: 0,
                mean_reward: 0.0,
                reward_std: 0.0,
                success_rate: 0.0,
                mean_answer: 0.0,
                mean_length: 0.0,
                entropy: 0.0,
                frac_reward_zero_std: 0.0,
            },
            loss: 0.0,
            kl: 0.0,
            clip_ratio_low_mean: 0.0,
            clip_ratio_low_min: 0.0,
            clip_ratio_high_mean: 0.0,
            clip_ratio_high_max: 0.0,
            clip_ratio_region_mean: 0.0,
            grad_norm: 0.0,
            learning_rate: 0.0,
            eval: Some(*eval),
        },
        0.0,
    );
    for (name, value) in &mut row {
        if !matches!(
            name.as_str(),
            "batch" | "optimizer_steps" | "episodes" | "eval_success_rate" | "eval_mean_reward"
        ) {
            value.clear();
        }
    }
    row
}

fn plot(csv: &MetricsCsv, path: &Path, title: &str) -> Result<()> {
    plot_curve(
        path,
        title,
        "batch",
        "success rate / mean reward",
        &[
            (
                "greedy success (eval)",
                csv.points("batch", "eval_success_rate")?,
            ),
            (
                "sampled success (train)",
                csv.points("batch", "success_rate")?,
            ),
            ("mean reward (train)", csv.points("batch", "mean_reward")?),
        ],
    )
}

/// Runs `grpo`.
pub fn run(args: Args) -> Result<()> {
    if !ENVS.contains(&args.env.as_str()) {
        return Err(Error::invalid(
            "--env",
            format!(
                "unknown environment `{}` for grpo (valid: {})",
                args.env,
                ENVS.join(", ")
            ),
        ));
    }
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("runs/grpo-{}-seed{}", args.env, args.seed)));
    let checkpoint = out.join("checkpoint");
    let device = default_device();
    let mut trainer = if args.resume {
        if args.config.is_some() {
            return Err(Error::invalid(
                "--config",
                "a resumed run keeps the config saved in its checkpoint",
            ));
        }
        GrpoTrainer::resume(&checkpoint, &args.model, &device)?
    } else {
        let config = settings(args.seed, args.config.as_ref())?;
        let policy = OlmoePolicy::load(&args.model, Some(config.grpo.seed), &device)?;
        GrpoTrainer::new(policy, config)?
    };
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let config = trainer.config().clone();
    let num_batches = args.steps.unwrap_or(config.num_batches);
    let retrieval = match config.retrieval {
        RetrievalEmbedder::Olmoe => "the encoder's embed",
        RetrievalEmbedder::Ngram => "character trigrams",
    };
    eprintln!(
        "grpo on {}: {} tasks × {} rollouts per batch, {} AdamW steps per batch (lr {:e}), \
         encoder {}, retrieval by {retrieval} (match_threshold {})",
        args.env,
        config.tasks_per_batch,
        config.grpo.num_generations,
        config.grpo.num_iterations,
        config.grpo.learning_rate,
        if config.freeze_encoder {
            "frozen"
        } else {
            "trained"
        },
        config.env.match_threshold,
    );
    let mut csv = MetricsCsv::create(out.join("metrics.csv"), args.resume)?;
    if trainer.progress().batches == 0 {
        // Row 0: the untrained policy, so that the curve starts where learning starts.
        let before = trainer.evaluate(config.eval_episodes, config.eval_seed)?;
        eprintln!(
            "before training: eval success_rate={:.3} mean_reward={:.3}",
            before.success_rate, before.mean_reward
        );
        csv.append(&initial_row(&before))?;
    }
    let bar = ProgressBar::new(num_batches as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} batches  {per_sec}  {msg}")
            .map_err(|e| Error::invalid("progress bar template", e.to_string()))?,
    );
    bar.set_position(trainer.progress().batches as u64);
    let start = Instant::now();
    trainer.train(num_batches, |trainer, log| {
        bar.set_position(log.batch as u64);
        let eval = log.eval.as_ref().map_or(String::new(), |e| {
            format!("  eval success {:.0}%", 100.0 * e.success_rate)
        });
        bar.set_message(format!(
            "reward {:.2}  sampled success {:.0}%{eval}",
            log.rollouts.mean_reward,
            100.0 * log.rollouts.success_rate
        ));
        csv.append(&metrics_row(log, start.elapsed().as_secs_f64()))?;
        if config.checkpoint_every > 0 && log.batch.is_multiple_of(config.checkpoint_every) {
            trainer.save_checkpoint(&checkpoint)?;
        }
        Ok(())
    })?;
    bar.finish();
    trainer.save_checkpoint(&checkpoint)?;
    plot(
        &csv,
        &out.join("curve.png"),
        &format!("{}: GRPO, seed {}", args.env, config.grpo.seed),
    )?;
    let report = trainer.evaluate(config.eval_episodes, config.eval_seed)?;
    eprintln!(
        "after {} batches: eval mean_reward={:.3} over {} tasks; metrics, curve and checkpoint in {}",
        trainer.progress().batches,
        report.mean_reward,
        report.num_episodes,
        out.display()
    );
    println!("eval success_rate={:.3}", report.success_rate);
    Ok(())
}
