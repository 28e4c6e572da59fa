//! Recurrent PPO for the factored actor-critic (SPEC §6).

mod loss;

pub use loss::{PpoLoss, PpoLossCoefficients, PpoStats, PpoTargets, explained_variance, ppo_loss};
