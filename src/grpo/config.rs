//! GRPO hyperparameters, named and defaulted as in TRL's `GRPOConfig` (trl 1.x).

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How group-relative advantages are scaled (TRL's `scale_rewards`).
///
/// In every case the advantage is `r − mean(group)`; the scalings differ only in the divisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// Divide by the (Bessel-corrected) standard deviation of the group, plus `1e-4`
    /// (DeepSeekMath's GRPO).
    Group,
    /// Divide by the standard deviation of the whole batch, plus `1e-4`.
    Batch,
    /// Do not divide (Dr. GRPO: the group std biases the objective towards easy and hard tasks).
    None,
}

impl ScaleRewards {
    /// All scalings, in TRL's documentation order.
    pub const ALL: [ScaleRewards; 3] =
        [ScaleRewards::Group, ScaleRewards::Batch, ScaleRewards::None];

    /// TRL's name for it.
    pub fn name(self) -> &'static str {
        match self {
            ScaleRewards::Group => "group",
            ScaleRewards::Batch => "batch",
            ScaleRewards::None => "none",
        }
    }
}

impl fmt::Display for ScaleRewards {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ScaleRewards {
    type Err = Error;

    /// Parses TRL's names strictly: anything else is an error.
    fn from_str(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.name() == name)
            .ok_or_else(|| {
                Error::invalid(
                    "scale_rewards",
                    format!("`{name}` is not one of group, batch, none"),
                )
            })
    }
}

/// How the per-step losses of a batch are aggregated into one scalar (TRL's `loss_type`).
///
/// Below, `m` is the completion mask and `ℓ` the per-step loss; `docs/grpo.md` explains the
/// biases each choice removes or keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Mean over completions of each completion's mean step loss,
    /// `mean_i(Σ_t ℓ·m / max(Σ_t m, 1))` (DeepSeekMath's GRPO; favours short completions).
    Grpo,
    /// Mean over all unmasked steps of the batch, `Σ ℓ·m / max(Σ m, 1)`.
    Bnpo,
    /// `Σ ℓ·m / (num_completions · max_completion_length)` (Dr. GRPO: a constant normalizer,
    /// so no length bias).
    DrGrpo,
    /// `Σ ℓ·m / num_items_in_batch`, the number of unmasked steps of the whole global batch
    /// (DAPO's token-level loss).
    Dapo,
}

impl LossType {
    /// All aggregations, in TRL's documentation order.
    pub const ALL: [LossType; 4] = [
        LossType::Grpo,
        LossType::Bnpo,
        LossType::DrGrpo,
        LossType::Dapo,
    ];

    /// TRL's name for it.
    pub fn name(self) -> &'static str {
        match self {
            LossType::Grpo => "grpo",
            LossType::Bnpo => "bnpo",
            LossType::DrGrpo => "dr_grpo",
            LossType::Dapo => "dapo",
        }
    }
}

impl fmt::Display for LossType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for LossType {
    type Err = Error;

    /// Parses TRL's names strictly: anything else is an error.
    fn from_str(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.name() == name)
            .ok_or_else(|| {
                Error::invalid(
                    "loss_type",
                    format!("`{name}` is not one of grpo, bnpo, dr_grpo, dapo"),
                )
            })
    }
}

/// GRPO hyperparameters. Names and defaults are TRL's `GRPOConfig` (and the `TrainingArguments`
/// it inherits) so that a TRL recipe carries over unchanged.
///
/// In a memory-operation rollout a "completion" is one trajectory of memory operations and its
/// "tokens" are the steps (see `docs/grpo.md`).
#[derive(Config, Debug)]
pub struct GrpoConfig {
    /// Completions sampled per task (the group size G). TRL requires at least 2.
    #[config(default = 8)]
    pub num_generations: usize,
    /// The longest completion, in steps; the `dr_grpo` normalizer and the width limit of a batch.
    #[config(default = 512)]
    pub max_completion_length: usize,
    /// Sampling temperature of the policy during collection.
    #[config(default = 1.0)]
    pub temperature: f64,
    /// Weight of the KL penalty to the reference policy; 0 disables it (and the reference
    /// policy is then not needed).
    #[config(default = 0.0)]
    pub beta: f64,
    /// Optimizer steps on each collected batch (μ in DeepSeekMath); the old log-probs are those
    /// recorded at collection.
    #[config(default = 1)]
    pub num_iterations: usize,
    /// Lower clip range ε_low: the ratio is clipped below at `1 − epsilon`; also the upper range
    /// when `epsilon_high` is not set.
    #[config(default = 0.2)]
    pub epsilon: f64,
    /// Upper clip range ε_high: the ratio is clipped above at `1 + epsilon_high` (DAPO's
    /// "clip-higher" uses 0.28); `None` means `epsilon`.
    pub epsilon_high: Option<f64>,
    /// How advantages are scaled.
    #[config(default = "ScaleRewards::Group")]
    pub scale_rewards: ScaleRewards,
    /// How per-step losses are aggregated.
    #[config(default = "LossType::Dapo")]
    pub loss_type: LossType,
    /// Multiply the k3 KL estimate by the importance ratio π/π_old, which makes it unbiased when
    /// the samples come from π_old (DeepSeek-V3.2).
    #[config(default = true)]
    pub use_bias_correction_kl: bool,
    /// Update the reference policy from the trained one every `ref_model_sync_steps` steps.
    #[config(default = false)]
    pub sync_ref_model: bool,
    /// The mix when syncing: `ref ← α·policy + (1 − α)·ref` (1 copies the policy).
    #[config(default = 0.6)]
    pub ref_model_mixup_alpha: f64,
    /// Optimizer steps between two reference syncs.
    #[config(default = 512)]
    pub ref_model_sync_steps: usize,
    /// AdamW learning rate.
    #[config(default = 1e-6)]
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    #[config(default = 0.0)]
    pub weight_decay: f64,
    /// AdamW β₁.
    #[config(default = 0.9)]
    pub adam_beta1: f64,
    /// AdamW β₂.
    #[config(default = 0.999)]
    pub adam_beta2: f64,
    /// AdamW ε (PyTorch's default; burn's own default is 1e-5).
    #[config(default = 1e-8)]
    pub adam_epsilon: f64,
    /// Clip the global gradient norm to this value (one norm over all parameters, as PyTorch's
    /// `clip_grad_norm_`).
    #[config(default = 1.0)]
    pub max_grad_norm: f64,
    /// Seed of every random choice of a run.
    #[config(default = 42)]
    pub seed: u64,
}

impl GrpoConfig {
    /// The effective ε_high: `epsilon_high`, or `epsilon` when it is not set.
    pub fn epsilon_high_or_low(&self) -> f64 {
        self.epsilon_high.unwrap_or(self.epsilon)
    }

    /// The clip interval of the importance ratio, `(1 − ε_low, 1 + ε_high)`, in `f32` as the
    /// loss uses it.
    pub fn clip_range(&self) -> (f32, f32) {
        (
            (1.0 - self.epsilon) as f32,
            (1.0 + self.epsilon_high_or_low()) as f32,
        )
    }

    /// Checks every field.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first field out of range.
    pub fn validate(&self) -> Result<()> {
        let check = |ok: bool, name: &str, reason: String| {
            if ok {
                Ok(())
            } else {
                Err(Error::invalid(name, reason))
            }
        };
        check(
            self.num_generations >= 2,
            "num_generations",
            format!(
                "{} (a group needs at least 2 completions for a relative advantage)",
                self.num_generations
            ),
        )?;
        check(
            self.max_completion_length >= 1,
            "max_completion_length",
            "must be at least 1".into(),
        )?;
        check(
            self.temperature.is_finite() && self.temperature > 0.0,
            "temperature",
            format!("{} (must be finite and > 0)", self.temperature),
        )?;
        check(
            self.beta.is_finite() && self.beta >= 0.0,
            "beta",
            format!("{} (must be finite and ≥ 0)", self.beta),
        )?;
        check(
            self.num_iterations >= 1,
            "num_iterations",
            "must be at least 1".into(),
        )?;
        check(
            self.epsilon.is_finite() && (0.0..1.0).contains(&self.epsilon),
            "epsilon",
            format!("{} (must be in [0, 1))", self.epsilon),
        )?;
        let high = self.epsilon_high_or_low();
        check(
            high.is_finite() && high >= 0.0,
            "epsilon_high",
            format!("{high} (must be finite and ≥ 0)"),
        )?;
        check(
            (0.0..=1.0).contains(&self.ref_model_mixup_alpha),
            "ref_model_mixup_alpha",
            format!("{} (must be in [0, 1])", self.ref_model_mixup_alpha),
        )?;
        check(
            !self.sync_ref_model || self.ref_model_sync_steps >= 1,
            "ref_model_sync_steps",
            "must be at least 1 when sync_ref_model is set".into(),
        )?;
        check(
            self.learning_rate.is_finite() && self.learning_rate > 0.0,
            "learning_rate",
            format!("{} (must be finite and > 0)", self.learning_rate),
        )?;
        check(
            self.weight_decay.is_finite() && self.weight_decay >= 0.0,
            "weight_decay",
            format!("{} (must be finite and ≥ 0)", self.weight_decay),
        )?;
        for (name, beta) in [
            ("adam_beta1", self.adam_beta1),
            ("adam_beta2", self.adam_beta2),
        ] {
            check(
                (0.0..1.0).contains(&beta),
                name,
                format!("{beta} (must be in [0, 1))"),
            )?;
        }
        check(
            self.adam_epsilon.is_finite() && self.adam_epsilon > 0.0,
            "adam_epsilon",
            format!("{} (must be finite and > 0)", self.adam_epsilon),
        )?;
        check(
            self.max_grad_norm.is_finite() && self.max_grad_norm > 0.0,
            "max_grad_norm",
            format!("{} (must be finite and > 0)", self.max_grad_norm),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_trls() {
        let config = GrpoConfig::new();
        assert_eq!(config.num_generations, 8);
        assert_eq!(config.max_completion_length, 512);
        assert_eq!(config.beta, 0.0);
        assert_eq!(config.epsilon, 0.2);
        assert_eq!(config.epsilon_high, None);
        assert_eq!(config.scale_rewards, ScaleRewards::Group);
        assert_eq!(config.loss_type, LossType::Dapo);
        assert!(config.use_bias_correction_kl);
        assert_eq!(config.learning_rate, 1e-6);
        assert_eq!(config.max_grad_norm, 1.0);
        assert!(config.validate().is_ok());
        assert_eq!(config.clip_range(), (0.8, 1.2));
        let asymmetric = GrpoConfig::new().with_epsilon_high(Some(0.28));
        assert_eq!(asymmetric.clip_range(), (0.8, 1.28));
    }

    #[test]
    fn names_parse_strictly_and_round_trip() {
        for loss_type in LossType::ALL {
            assert_eq!(loss_type.name().parse::<LossType>().unwrap(), loss_type);
        }
        for scale in ScaleRewards::ALL {
            assert_eq!(scale.name().parse::<ScaleRewards>().unwrap(), scale);
        }
        assert!(matches!(
            "GRPO".parse::<LossType>(),
            Err(Error::Invalid { name, .. }) if name == "loss_type"
        ));
        assert!(matches!(
            "std".parse::<ScaleRewards>(),
            Err(Error::Invalid { name, .. }) if name == "scale_rewards"
        ));
        let json = serde_json::to_string(&GrpoConfig::new().with_loss_type(LossType::DrGrpo))
            .expect("serializable");
        assert!(json.contains("\"loss_type\":\"dr_grpo\""), "{json}");
    }

    #[test]
    fn out_of_range_fields_are_named() {
        let cases = [
            (GrpoConfig::new().with_num_generations(1), "num_generations"),
            (GrpoConfig::new().with_beta(-0.1), "beta"),
            (GrpoConfig::new().with_epsilon(1.0), "epsilon"),
            (
                GrpoConfig::new().with_epsilon_high(Some(f64::NAN)),
                "epsilon_high",
            ),
            (
                GrpoConfig::new().with_max_completion_length(0),
                "max_completion_length",
            ),
            (GrpoConfig::new().with_num_iterations(0), "num_iterations"),
            (GrpoConfig::new().with_max_grad_norm(0.0), "max_grad_norm"),
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
