//! `factored-rl eval`: deterministic evaluation of a training checkpoint.

use std::path::PathBuf;

use factored_rl::backend::device_by_name;
use factored_rl::ppo::{evaluate_deterministic, load_policy};
use factored_rl::{Error, Result};

use super::train::EVAL_SEED;

/// Evaluate a checkpoint with deterministic acting.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A run folder (holding `checkpoint/`) or a checkpoint folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Environment: must be the one the checkpoint was trained on.
    #[arg(long)]
    pub env: String,
    /// Episodes to play.
    #[arg(long, default_value_t = 20)]
    pub episodes: usize,
    /// Where the checkpoint is loaded: flex (the CPU, default) or a GPU backend compiled in with
    /// its cargo feature.
    #[arg(long, default_value = "flex")]
    pub backend: String,
}

/// Runs `eval`.
pub fn run(args: Args) -> Result<()> {
    let (meta, policy) = load_policy(&args.checkpoint, &device_by_name(&args.backend)?)?;
    if meta.env != args.env {
        return Err(Error::CheckpointMismatch {
            path: args.checkpoint,
            reason: format!("it was trained on env `{}`, not `{}`", meta.env, args.env),
        });
    }
    let report = evaluate_deterministic(
        &policy,
        &args.env,
        &meta.settings.env,
        args.episodes,
        EVAL_SEED,
        meta.progress.obs_norm.as_ref(),
    )?;
    println!(
        "eval mean_return={:.3} episodes={}",
        report.mean_return, report.episodes
    );
    Ok(())
}
