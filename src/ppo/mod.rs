//! Recurrent PPO for the factored actor-critic (SPEC §6).

mod config;
mod loss;
mod normalize;
mod trainer;

pub use config::PpoConfig;
pub use loss::{PpoLoss, PpoLossCoefficients, PpoStats, PpoTargets, explained_variance, ppo_loss};
pub use normalize::{RewardScaler, RunningMeanStd};
pub use trainer::{PpoTrainer, TrainerProgress, UpdateLog};
