//! Recurrent PPO for the factored actor-critic (SPEC §6).

// mod checkpoint; (enabled once environments can be snapshotted)
mod config;
mod evaluate;
mod loss;
mod normalize;
mod presets;
mod trainer;

pub use config::PpoConfig;
pub use evaluate::{EvalReport, evaluate_deterministic};
pub use loss::{PpoLoss, PpoLossCoefficients, PpoStats, PpoTargets, explained_variance, ppo_loss};
pub use normalize::{RewardScaler, RunningMeanStd};
pub use presets::{TrainSettings, network_for, preset};
pub use trainer::{PpoTrainer, TrainerProgress, UpdateLog};

