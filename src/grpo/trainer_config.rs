//! The settings of a GRPO run on the memory environment: the GRPO hyperparameters
//! ([`GrpoConfig`], TRL's names), the environment, and what TRL leaves to the trainer (batch
//! size in tasks, encoder freezing, evaluation, checkpoints).

use burn::config::Config;

use super::config::{GrpoConfig, LossType, ScaleRewards};
use super::memory_env::MemoryEnvConfig;
use super::retrieval::RetrievalEmbedder;
use crate::error::{Error, Result};

/// A GRPO run on the memory environment. `GrpoTrainerConfig::new()` holds defaults measured to
/// learn on this task with the tiny_a fixture (see `docs/grpo.md` §9.7); serializable as JSON.
#[derive(Config, Debug)]
pub struct GrpoTrainerConfig {
    /// The GRPO hyperparameters; defaults: [`memory_grpo_config`].
    #[config(default = "memory_grpo_config()")]
    pub grpo: GrpoConfig,
    /// The environment. Its `match_threshold` must suit `retrieval`
    /// ([`RetrievalEmbedder::match_threshold`]); the default is the value for `olmoe`.
    #[config(
        default = "MemoryEnvConfig::new().with_match_threshold(RetrievalEmbedder::Olmoe.match_threshold())"
    )]
    pub env: MemoryEnvConfig,
    /// The embeddings behind the memory tools (store, retrieval, `update`/`delete` matching).
    #[config(default = "RetrievalEmbedder::Olmoe")]
    pub retrieval: RetrievalEmbedder,
    /// Tasks per batch; each gets a group of `grpo.num_generations` rollouts.
    #[config(default = 8)]
    pub tasks_per_batch: usize,
    /// Train only the action head. The encoder then never changes, so the state embeddings
    /// computed while collecting are reused by the update instead of re-encoding the texts.
    #[config(default = true)]
    pub freeze_encoder: bool,
    /// Truncate state texts to this many tokens (`None`: the model's `max_position_embeddings`).
    pub max_length: Option<usize>,
    /// Texts per encoder forward pass.
    #[config(default = 64)]
    pub encode_batch_size: usize,
    /// Batches a run trains for unless told otherwise (the CLI's `--steps`).
    #[config(default = 80)]
    pub num_batches: usize,
    /// Tasks of each deterministic (argmax) evaluation.
    #[config(default = 200)]
    pub eval_episodes: usize,
    /// Evaluate every this many batches during training (0: never; the CLI still evaluates at
    /// the end).
    #[config(default = 10)]
    pub eval_every: usize,
    /// Seed of the evaluation tasks (the same tasks at every evaluation).
    #[config(default = 1_000_003)]
    pub eval_seed: u64,
    /// Write a checkpoint every this many batches (0: only at the end).
    #[config(default = 10)]
    pub checkpoint_every: usize,
}

/// TRL's [`GrpoConfig`] with the changes this task needs — a small head reading a frozen
/// encoder's embedding, not a language model being fine-tuned:
///
/// - `num_generations` 16 (TRL: 8): with 8 rollouts per task the policy sometimes stopped
///   sampling an operation before its reward showed (1 of 5 seeds plateaued at 0.57 greedy
///   success, never choosing `retrieve` or `delete`; 4 of 9 with DAPO's clip-higher); with 16,
///   12 of 12 seeds reached 0.95 within 60 batches (`docs/grpo.md` §9.7);
/// - `learning_rate` 1e-2 (TRL: 1e-6, far too small here; 3e-3 plateaued at 0.43–0.66 success
///   in the measurements of `docs/grpo.md` §8.6, 5e-3 with G = 8 plateaued on 2 of 5 seeds);
/// - `num_iterations` 4: four AdamW steps on each collected batch (the clipped ratio keeps them
///   close to the policy that collected it);
/// - `max_completion_length` 10, the longest task of [`MemoryEnvConfig::new`] (the `dr_grpo`
///   normalizer);
/// - `adam_epsilon` 1e-8, `beta` 0, `epsilon` 0.2, `scale_rewards` group, `loss_type` dapo,
///   `max_grad_norm` 1: TRL's values.
pub fn memory_grpo_config() -> GrpoConfig {
    GrpoConfig::new()
        .with_num_generations(16)
        .with_learning_rate(1e-2)
        .with_num_iterations(4)
        .with_max_completion_length(MemoryEnvConfig::new().max_steps())
        .with_scale_rewards(ScaleRewards::Group)
        .with_loss_type(LossType::Dapo)
}

impl GrpoTrainerConfig {
    /// Rollouts per batch: `tasks_per_batch · num_generations`.
    pub fn num_completions(&self) -> usize {
        self.tasks_per_batch * self.grpo.num_generations
    }

    /// Checks every field, and that the longest task fits `grpo.max_completion_length`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        self.grpo.validate()?;
        self.env.validate()?;
        for (name, value) in [
            ("tasks_per_batch", self.tasks_per_batch),
            ("encode_batch_size", self.encode_batch_size),
            ("eval_episodes", self.eval_episodes),
        ] {
            if value == 0 {
                return Err(Error::invalid(name, "must be at least 1"));
            }
        }
        if self.max_length == Some(0) {
            return Err(Error::invalid("max_length", "must be at least 1"));
        }
        let longest = self.env.max_steps();
        if self.grpo.max_completion_length < longest {
            return Err(Error::invalid(
                "max_completion_length",
                format!(
                    "{} is shorter than the longest task ({longest} steps)",
                    self.grpo.max_completion_length
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_fit_the_environment() {
        let config = GrpoTrainerConfig::new();
        config.validate().unwrap();
        assert_eq!(config.grpo.max_completion_length, config.env.max_steps());
        assert_eq!(
            config.env.match_threshold,
            config.retrieval.match_threshold()
        );
        assert_eq!(config.num_completions(), 128);
        let json = serde_json::to_string(&config).unwrap();
        let back: GrpoTrainerConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (
                GrpoTrainerConfig::new().with_tasks_per_batch(0),
                "tasks_per_batch",
            ),
            (
                GrpoTrainerConfig::new().with_max_length(Some(0)),
                "max_length",
            ),
            (
                GrpoTrainerConfig::new()
                    .with_grpo(memory_grpo_config().with_max_completion_length(4)),
                "max_completion_length",
            ),
            (
                GrpoTrainerConfig::new().with_grpo(memory_grpo_config().with_num_generations(1)),
                "num_generations",
            ),
            (
                GrpoTrainerConfig::new().with_env(MemoryEnvConfig::new().with_capacity(0)),
                "capacity",
            ),
        ];
        for (config, field) in cases {
            assert!(
                matches!(config.validate(), Err(Error::Invalid { ref name, .. }) if name == field),
                "{field}: {:?}",
                config.validate()
            );
        }
    }
}
