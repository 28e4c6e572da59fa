use burn::config::Config;

use crate::error::{Error, Result};

/// Every hyperparameter of recurrent PPO, with the reference defaults of SPEC §6.
///
/// Load from JSON with `PpoConfig::load(path)` (burn `Config`); every field is optional there.
#[derive(Config, Debug, PartialEq)]
pub struct PpoConfig {
    /// Environments stepped together.
    #[config(default = 8)]
    pub num_envs: usize,
    /// Steps per env per rollout (the length of the replayed sequences).
    #[config(default = 128)]
    pub num_steps: usize,
    /// Adam learning rate.
    #[config(default = 3e-4)]
    pub learning_rate: f64,
    /// Anneal the learning rate linearly to 0 over the run (CleanRL's `anneal_lr`).
    #[config(default = false)]
    pub anneal_lr: bool,
    /// Adam ε.
    #[config(default = 1e-5)]
    pub adam_epsilon: f32,
    /// Discount γ.
    #[config(default = 0.99)]
    pub gamma: f32,
    /// GAE λ.
    #[config(default = 0.95)]
    pub gae_lambda: f32,
    /// Minibatches per epoch; each holds `num_envs / num_minibatches` whole env sequences.
    #[config(default = 4)]
    pub num_minibatches: usize,
    /// Passes over the rollout per update.
    #[config(default = 4)]
    pub update_epochs: usize,
    /// Surrogate clipping ε.
    #[config(default = 0.2)]
    pub clip_coef: f32,
    /// Anneal the policy clip range linearly to 0 over the run, like the learning rate (SB3's
    /// `clip_range: lin_0.2`, the rl-zoo CartPole setting).
    #[config(default = false)]
    pub anneal_clip: bool,
    /// Clip the value around the old value (with `clip_coef`).
    #[config(default = true)]
    pub clip_value_loss: bool,
    /// Weight of the value loss.
    #[config(default = 0.5)]
    pub value_coef: f32,
    /// Global weight of the normalized-entropy bonus.
    #[config(default = 0.05)]
    pub entropy_coef: f32,
    /// Per-head entropy weights, by head name; heads not listed get 1.0.
    #[config(default = "Vec::new()")]
    pub head_entropy_weights: Vec<(String, f32)>,
    /// Global gradient-norm clip.
    #[config(default = 0.5)]
    pub max_grad_norm: f32,
    /// Approximate-KL target: a minibatch whose KL exceeds 1.5× the target is skipped and the
    /// update stops (`None`: no early stop).
    #[config(default = "Some(0.015)")]
    pub target_kl: Option<f32>,
    /// Normalize advantages per minibatch.
    #[config(default = true)]
    pub normalize_advantages: bool,
    /// Normalize observations by a running mean and variance (clipped to ±10).
    #[config(default = false)]
    pub normalize_observations: bool,
    /// Scale rewards by a running standard deviation of discounted returns (no mean subtraction).
    #[config(default = false)]
    pub scale_rewards: bool,
    /// Ablation: zero the LSTM state before every step (acting and replay alike), which turns the
    /// recurrent policy into a feedforward one. A task that needs memory must then fail.
    #[config(default = false)]
    pub reset_state_every_step: bool,
    /// Seed of the environments, the acting RNG and the minibatch shuffling.
    #[config(default = 1)]
    pub seed: u64,
}

impl PpoConfig {
    /// The reference per-head entropy weights of SPEC §6 (op 1.0, slot 1.0, blueprint 1.3,
    /// style 1.2, tempo 1.3, alpha heads 1.2).
    pub fn reference_head_entropy_weights() -> Vec<(String, f32)> {
        [
            ("op", 1.0),
            ("slot", 1.0),
            ("blueprint", 1.3),
            ("style", 1.2),
            ("tempo", 1.3),
            ("alpha_target", 1.2),
            ("alpha_speed", 1.2),
            ("alpha_curve", 1.2),
        ]
        .into_iter()
        .map(|(n, w)| (n.to_string(), w))
        .collect()
    }

    /// Env steps per rollout.
    pub fn steps_per_rollout(&self) -> usize {
        self.num_envs * self.num_steps
    }

    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("num_envs", self.num_envs),
            ("num_steps", self.num_steps),
            ("num_minibatches", self.num_minibatches),
            ("update_epochs", self.update_epochs),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(Error::invalid(*name, "must be at least 1"));
        }
        if !self.num_envs.is_multiple_of(self.num_minibatches) {
            return Err(Error::invalid(
                "num_minibatches",
                format!(
                    "must divide num_envs ({}): minibatches are whole env sequences",
                    self.num_envs
                ),
            ));
        }
        let unit = [("gamma", self.gamma), ("gae_lambda", self.gae_lambda)];
        if let Some((name, v)) = unit.iter().find(|(_, v)| !(0.0..=1.0).contains(v)) {
            return Err(Error::invalid(*name, format!("{v} is outside [0, 1]")));
        }
        let non_negative = [
            ("clip_coef", self.clip_coef),
            ("value_coef", self.value_coef),
            ("entropy_coef", self.entropy_coef),
            ("max_grad_norm", self.max_grad_norm),
            ("adam_epsilon", self.adam_epsilon),
            ("learning_rate", self.learning_rate as f32),
        ];
        if let Some((name, v)) = non_negative
            .iter()
            .find(|(_, v)| !v.is_finite() || *v < 0.0)
        {
            return Err(Error::invalid(
                *name,
                format!("{v} must be finite and non-negative"),
            ));
        }
        Ok(())
    }
}
