//! Settings of the lifecycle simulation and the fixed tables behind the sub-action heads.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Number of slots (the size of the reference `slot` head).
pub const NUM_SLOTS: usize = 3;
/// Number of blueprints (the size of the reference `blueprint` head).
pub const NUM_BLUEPRINTS: usize = 13;

/// `tempo` head: training steps required before a seed may leave TRAINING, for FAST, NORMAL, SLOW.
pub const TEMPO_MIN_TRAINING_STEPS: [usize; 3] = [2, 4, 6];
/// `tempo` head: how much of its quality a seed realizes, for FAST, NORMAL, SLOW (slow training is
/// more thorough).
pub const TEMPO_GAIN: [f32; 3] = [0.85, 1.0, 1.1];

/// `style` head: the factor on a positive contribution, for LINEAR_ADD, SIGMOID_ADD, GATED_GATE,
/// MULTIPLY.
pub const STYLE_GAIN_POSITIVE: [f32; 4] = [1.0, 0.95, 0.9, 1.2];
/// `style` head: the factor on a negative contribution (a gate damps a harmful seed, a
/// multiplicative blend amplifies it).
pub const STYLE_GAIN_NEGATIVE: [f32; 4] = [1.0, 0.95, 0.5, 1.6];
/// `style` head: the factor on the blending shock (a sigmoid blend is smooth).
pub const STYLE_SHOCK: [f32; 4] = [1.0, 0.5, 1.0, 1.0];

/// `alpha_target` head: the blend level a seed ramps to.
pub const ALPHA_TARGETS: [f32; 3] = [0.5, 0.75, 1.0];
/// `alpha_speed` head: the number of steps a blend (or a prune fade-out) takes.
pub const ALPHA_SPEED_STEPS: [usize; 4] = [8, 4, 2, 1];
/// The blend schedule of a freshly germinated seed until SET_ALPHA_TARGET changes it:
/// `alpha_speed` index (4 steps).
pub const DEFAULT_ALPHA_SPEED: usize = 1;
/// Names of the `alpha_curve` head's values, the shape of a ramp over its steps.
pub const CURVE_NAMES: [&str; 5] = ["LINEAR", "COSINE", "EASE_IN", "EASE_OUT", "SIGMOID"];
/// The `alpha_curve` of a freshly germinated seed (LINEAR).
pub const DEFAULT_ALPHA_CURVE: usize = 0;

/// Fraction of a ramp done after `u ∈ [0, 1]` of its steps, for each `alpha_curve` value.
pub fn curve(index: usize, u: f32) -> f32 {
    let u = u.clamp(0.0, 1.0);
    match index {
        1 => 0.5 - 0.5 * (std::f32::consts::PI * u).cos(),
        2 => u * u,
        3 => 1.0 - (1.0 - u) * (1.0 - u),
        4 => {
            // A logistic of slope 10 rescaled to pass through 0 and 1.
            let s = |v: f32| 1.0 / (1.0 + (-10.0 * (v - 0.5)).exp());
            (s(u) - s(0.0)) / (s(1.0) - s(0.0))
        }
        _ => u,
    }
}

/// The default prior quality of each blueprint: most are useless or harmful on average, two are
/// good. An episode's hidden qualities are these plus Gaussian noise.
pub const DEFAULT_BLUEPRINT_PRIORS: [f32; NUM_BLUEPRINTS] = [
    0.6, -0.4, 0.2, -0.3, 0.8, -0.5, 0.3, 0.1, -0.3, 0.4, -0.2, 0.2, -0.1,
];

/// Settings of [`Lifecycle`](super::Lifecycle). Accuracy is in points (0–100).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LifecycleConfig {
    /// The episode is truncated after this many steps.
    pub max_steps: usize,
    /// The host's accuracy at the start of an episode.
    pub initial_accuracy: f32,
    /// The host collapses (the episode terminates) when its accuracy falls below this.
    pub collapse_accuracy: f32,
    /// Subtracted from the reward of the step on which the host collapses.
    pub collapse_penalty: f32,
    /// Accuracy points a seed adds per step per unit of `alpha × effective quality`.
    pub seed_gain: f32,
    /// Reward cost per step of each seed that is not fossilized (germinated, training, blending,
    /// holding, fading out).
    pub active_rent: f32,
    /// Reward cost per step of each fossilized seed.
    pub fossil_rent: f32,
    /// Reward cost per unit of squared alpha change in one step (fast blends shock the host).
    pub shock_cost: f32,
    /// Standard deviation of every telemetry sample's noise.
    pub telemetry_noise: f32,
    /// Standard deviation of an episode's blueprint qualities around their priors.
    pub quality_noise: f32,
    /// Mean quality of each blueprint (13 values in −1..1).
    pub blueprint_priors: Vec<f32>,
    /// Steps a seed spends GERMINATED before it starts TRAINING.
    pub germination_steps: usize,
    /// Steps a seed must be HOLDING before it may be fossilized.
    pub min_holding_steps: usize,
    /// A TRAINING seed whose training is complete starts BLENDING by itself (ADVANCE can still
    /// move BLENDING → HOLDING). With it, a germination pays off (or hurts) without a further
    /// decision, which gives a policy learning from scratch a short credit-assignment path to the
    /// blueprint choice; pruning by telemetry and fossilizing remain the agent's job.
    pub auto_blend: bool,
    /// PRUNE applies only once a seed has started blending. Pruning a seed that has not touched
    /// the host only undoes the germination; under a policy still exploring at random it removes most
    /// seeds before their quality shows, which starves the blueprint choice of any signal.
    pub prune_only_blended: bool,
}

impl Default for LifecycleConfig {
    fn default() -> Self {
        Self {
            max_steps: 150,
            initial_accuracy: 50.0,
            collapse_accuracy: 35.0,
            collapse_penalty: 5.0,
            seed_gain: 0.08,
            active_rent: 0.02,
            fossil_rent: 0.005,
            shock_cost: 1.0,
            telemetry_noise: 0.3,
            quality_noise: 0.35,
            blueprint_priors: DEFAULT_BLUEPRINT_PRIORS.to_vec(),
            germination_steps: 1,
            auto_blend: true,
            prune_only_blended: true,
            min_holding_steps: 2,
        }
    }
}

impl LifecycleConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the `lifecycle.*` field (a non-finite or negative cost or noise, a
    /// zero `max_steps` or `germination_steps`, a collapse level not below the initial accuracy,
    /// accuracies outside 0–100, priors outside −1..1); [`Error::WrongLength`] when
    /// `blueprint_priors` does not have 13 values.
    pub fn validate(&self) -> Result<()> {
        if self.max_steps == 0 {
            return Err(Error::invalid("lifecycle.max_steps", "must be at least 1"));
        }
        if self.germination_steps == 0 {
            return Err(Error::invalid(
                "lifecycle.germination_steps",
                "must be at least 1",
            ));
        }
        for (name, value) in [
            ("collapse_penalty", self.collapse_penalty),
            ("seed_gain", self.seed_gain),
            ("active_rent", self.active_rent),
            ("fossil_rent", self.fossil_rent),
            ("shock_cost", self.shock_cost),
            ("telemetry_noise", self.telemetry_noise),
            ("quality_noise", self.quality_noise),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(Error::invalid(
                    format!("lifecycle.{name}"),
                    format!("must be finite and non-negative, got {value}"),
                ));
            }
        }
        for (name, value) in [
            ("initial_accuracy", self.initial_accuracy),
            ("collapse_accuracy", self.collapse_accuracy),
        ] {
            if !(0.0..=100.0).contains(&value) {
                return Err(Error::invalid(
                    format!("lifecycle.{name}"),
                    format!("must be within 0..=100, got {value}"),
                ));
            }
        }
        if self.collapse_accuracy >= self.initial_accuracy {
            return Err(Error::invalid(
                "lifecycle.collapse_accuracy",
                "must be below initial_accuracy",
            ));
        }
        if self.blueprint_priors.len() != NUM_BLUEPRINTS {
            return Err(Error::WrongLength {
                what: "lifecycle.blueprint_priors (one per blueprint)".into(),
                expected: NUM_BLUEPRINTS,
                found: self.blueprint_priors.len(),
            });
        }
        if let Some(b) = self
            .blueprint_priors
            .iter()
            .position(|p| !(-1.0..=1.0).contains(p))
        {
            return Err(Error::invalid(
                format!("lifecycle.blueprint_priors[{b}]"),
                format!("must be within -1..=1, got {}", self.blueprint_priors[b]),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_curve_runs_from_0_to_1_monotonically() {
        for (index, name) in CURVE_NAMES.iter().enumerate() {
            assert!(curve(index, 0.0).abs() < 1e-6, "{name}");
            assert!((curve(index, 1.0) - 1.0).abs() < 1e-6, "{name}");
            let samples: Vec<f32> = (0..=20).map(|k| curve(index, k as f32 / 20.0)).collect();
            assert!(
                samples.windows(2).all(|w| w[1] >= w[0]),
                "{name}: {samples:?}"
            );
        }
        // The shapes differ where it matters: ease-in lags, ease-out leads.
        assert!(curve(2, 0.5) < 0.5 && curve(3, 0.5) > 0.5);
        assert!((curve(1, 0.5) - 0.5).abs() < 1e-6 && (curve(4, 0.5) - 0.5).abs() < 1e-6);
    }

    #[test]
    fn tables_match_the_reference_head_sizes() {
        let sizes = crate::action_space::ActionSpace::reference().head_sizes();
        assert_eq!(sizes[0], NUM_SLOTS);
        assert_eq!(sizes[1], NUM_BLUEPRINTS);
        assert_eq!(sizes[2], STYLE_SHOCK.len());
        assert_eq!(sizes[3], TEMPO_GAIN.len());
        assert_eq!(sizes[4], ALPHA_TARGETS.len());
        assert_eq!(sizes[5], ALPHA_SPEED_STEPS.len());
        assert_eq!(sizes[6], CURVE_NAMES.len());
        LifecycleConfig::default().validate().unwrap();
    }
}
