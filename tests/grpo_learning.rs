//! GRPO learns the memory environment with the tiny_a OLMoE fixture as encoder.
//!
//! Default [`GrpoTrainerConfig`] (frozen encoder, fresh action head, OLMoE-embed retrieval,
//! 8 tasks × 16 rollouts per batch, 4 AdamW steps per batch at 1e-2, β = 0), seed 1, 40 batches.
//! Greedy success on the 200 evaluation tasks (`eval_seed`), measured on this 2-core machine:
//!
//! | policy | success rate |
//! | --- | --- |
//! | uniformly random operations | 0.145 |
//! | untrained head (argmax) | 0.080 |
//! | after 40 batches (14.1 s of training) | 0.925 |
//! | the scripted policy (reads the message tag; near the ceiling with tiny_a retrieval) | 0.960 |
//!
//! The assertions leave margins: the untrained and random levels at most 0.25, the trained
//! policy at least 0.80.

use std::path::{Path, PathBuf};

use factored_rl::backend::default_device;
use factored_rl::grpo::memory_env::{self, NUM_MEMORY_OPS};
use factored_rl::grpo::{GrpoTrainer, GrpoTrainerConfig, memory_grpo_config};
use factored_rl::olmoe::OlmoePolicy;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn tiny_a() -> PathBuf {
    let root = std::env::var_os("FACTORED_RL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    root.join("olmoe/tiny_a")
}

/// The operation a careful agent picks, read from the message tag in the state text.
fn scripted_op(state_text: &str) -> factored_rl::Result<usize> {
    let message = state_text.strip_prefix("Message: ").unwrap_or(state_text);
    Ok(match message.split(':').next() {
        Some("Remember") => memory_env::OP_ADD,
        Some("Correction") => memory_env::OP_UPDATE,
        Some("Forget") => memory_env::OP_DELETE,
        Some("Question") => memory_env::OP_RETRIEVE,
        Some("Recap") => memory_env::OP_SUMMARY,
        _ => memory_env::OP_FILTER,
    })
}

#[test]
fn grpo_raises_the_success_rate_far_above_random() {
    let seed = 1;
    let config = GrpoTrainerConfig::new()
        .with_grpo(memory_grpo_config().with_seed(seed))
        .with_eval_every(0);
    let (episodes, eval_seed) = (config.eval_episodes, config.eval_seed);
    let policy = OlmoePolicy::load(tiny_a(), Some(seed), &default_device()).unwrap();
    let mut trainer = GrpoTrainer::new(policy, config).unwrap();

    let mut env = trainer.memory_env().unwrap();
    let mut op_rng = StdRng::seed_from_u64(5);
    let random = memory_env::evaluate(
        &mut env,
        episodes,
        &mut StdRng::seed_from_u64(eval_seed),
        |_| Ok(op_rng.random_range(0..NUM_MEMORY_OPS)),
    )
    .unwrap();
    let scripted = memory_env::evaluate(
        &mut env,
        episodes,
        &mut StdRng::seed_from_u64(eval_seed),
        scripted_op,
    )
    .unwrap();
    let before = trainer.evaluate(episodes, eval_seed).unwrap();
    let start = std::time::Instant::now();
    trainer.train(40, |_, _| Ok(())).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let after = trainer.evaluate(episodes, eval_seed).unwrap();
    println!(
        "memory env, {episodes} tasks: random {:.3}, untrained head {:.3}, after 40 batches \
         ({seconds:.1} s) {:.3}, scripted {:.3}",
        random.success_rate, before.success_rate, after.success_rate, scripted.success_rate
    );
    assert!(random.success_rate <= 0.25, "random {random:?}");
    assert!(before.success_rate <= 0.25, "untrained {before:?}");
    assert!(after.success_rate >= 0.80, "trained {after:?}");
    assert!(
        after.mean_reward > before.mean_reward + 0.8,
        "{before:?} → {after:?}"
    );
}
