//! Group Relative Policy Optimization (Shao et al., "DeepSeekMath", 2024) for memory-operation
//! policies, with TRL's advantage scalings and loss aggregations (including DAPO, Yu et al. 2025,
//! and Dr. GRPO, Liu et al. 2025).
//!
//! - [`GrpoConfig`]: hyperparameters with TRL's names and defaults.
//! - [`group_advantages`]: group-relative advantages with `scale_rewards` = group | batch | none.
//! - [`grpo_loss`]: clipped ratios, k3 KL with optional bias correction, the four aggregations
//!   and TRL's logged metrics, as a differentiable burn computation.
//! - [`memory_env`]: the text memory environment the policies are trained on.
//! - [`GrpoTrainer`]: the training loop over an OLMoE encoder with a memory action head
//!   (groups of rollouts in the shared rollout buffer, frozen reference policy, AdamW), with
//!   its settings [`GrpoTrainerConfig`], deterministic evaluation and checkpoints.
//! - [`RetrievalEmbedder`]: which embeddings the environment's memory tools use.
//!
//! In a memory-operation rollout a "completion" is one trajectory of memory operations and its
//! "tokens" are the steps; the terminal reward is broadcast to all of them (SPEC §8).

mod advantages;
mod checkpoint;
mod config;
mod loss;
pub mod memory_env;
mod reference;
mod retrieval;
mod rollout;
mod trainer;
mod trainer_config;

pub use advantages::{GroupAdvantages, STD_EPSILON, group_advantages};
pub use checkpoint::{GrpoCheckpoint, read_checkpoint, resolve_checkpoint};
pub use config::{GrpoConfig, LossType, ScaleRewards};
pub use loss::{GrpoLossInputs, GrpoLossOutput, GrpoMetrics, grpo_loss};
pub use retrieval::{RetrievalEmbedder, SharedEmbedder};
pub use trainer::{GrpoBatchLog, GrpoProgress, GrpoTrainer, RolloutStats};
pub use trainer_config::{GrpoTrainerConfig, memory_grpo_config};
