//! A cue-recall memory task that only a policy with memory can solve (the "T-maze"/copy-task family
//! used to test recurrent agents, e.g. Bakker, "Reinforcement Learning with Long Short-Term Memory",
//! 2001).
//!
//! The first observation shows one of `num_symbols` cues; `gap` blank observations follow; then a
//! query observation asks the agent to name the cue. A memoryless policy sees identical query
//! observations whatever the cue, so it succeeds with probability `1 / num_symbols` at best.

use rand::RngExt;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use super::{Env, EnvSpec, Observation, Reset, Step, validate_action};
use crate::action_space::ActionSpace;
use crate::error::{Error, Result};

/// Settings of [`Recall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecallConfig {
    /// Number of distinct cues `K` (and of answers); chance success is `1 / K`.
    pub num_symbols: usize,
    /// Number of blank steps between the cue and the query: the answer is given `gap + 1` steps
    /// after the cue was shown, and an episode lasts `gap + 2` steps.
    pub gap: usize,
    /// When `true`, only answer 0 is allowed before the query, so the steps where the answer does
    /// not matter carry no choice (and no policy-gradient noise). Off by default: every answer is
    /// always allowed.
    pub mask_before_query: bool,
}

impl Default for RecallConfig {
    fn default() -> Self {
        Self {
            num_symbols: 4,
            gap: 10,
            mask_before_query: false,
        }
    }
}

impl RecallConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `recall.num_symbols` (fewer than 2) or `recall.gap` (0: the cue
    /// would be followed by the query at once).
    pub fn validate(&self) -> Result<()> {
        if self.num_symbols < 2 {
            return Err(Error::invalid("recall.num_symbols", "must be at least 2"));
        }
        if self.gap == 0 {
            return Err(Error::invalid("recall.gap", "must be at least 1"));
        }
        Ok(())
    }
}

/// The cue-recall task.
///
/// - Observation (`num_symbols + 1` floats, no categorical input): the one-hot cue at step 0 (zeros
///   afterwards), then a query flag (1 only at the last step).
/// - Action: one head `answer` of size `num_symbols`.
/// - Reward: at the query step, 1 when the answer names the cue and 0 otherwise; 0 at every other
///   step whatever the action. The episode terminates after the answer (never truncated).
/// - [`Env::episode_success`]: whether the answer was right.
#[derive(Debug, Clone)]
pub struct Recall {
    spec: EnvSpec,
    config: RecallConfig,
    rng: Xoshiro256PlusPlus,
    cue: usize,
    /// Index of the observation the agent is looking at (0 = the cue).
    position: usize,
    running: bool,
    success: Option<bool>,
    masks: Vec<Vec<bool>>,
}

impl Recall {
    /// A recall task with `config`; call [`Env::reset`] before stepping.
    ///
    /// # Errors
    /// As [`RecallConfig::validate`].
    pub fn new(config: RecallConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            spec: EnvSpec {
                name: "recall".into(),
                observation_size: config.num_symbols + 1,
                categorical_vocab: vec![],
                action_space: ActionSpace::single("answer", config.num_symbols)?,
            },
            masks: vec![vec![true; config.num_symbols]],
            config,
            rng: Xoshiro256PlusPlus::seed_from_u64(0),
            cue: 0,
            position: 0,
            running: false,
            success: None,
        })
    }

    /// The cue of the current episode.
    pub fn cue(&self) -> usize {
        self.cue
    }

    fn query_position(&self) -> usize {
        self.config.gap + 1
    }

    fn observation(&self) -> Observation {
        let mut features = vec![0.0; self.config.num_symbols + 1];
        if self.position == 0 {
            features[self.cue] = 1.0;
        }
        if self.position == self.query_position() {
            features[self.config.num_symbols] = 1.0;
        }
        Observation {
            features,
            categorical: vec![],
        }
    }

    fn update_masks(&mut self) {
        let open = !self.config.mask_before_query || self.position == self.query_position();
        let row = &mut self.masks[0];
        for (a, m) in row.iter_mut().enumerate() {
            *m = open || a == 0;
        }
    }
}

impl Env for Recall {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>) -> Reset {
        if let Some(seed) = seed {
            self.rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        }
        self.cue = self.rng.random_range(0..self.config.num_symbols);
        self.position = 0;
        self.running = true;
        self.success = None;
        self.update_masks();
        Reset {
            observation: self.observation(),
            masks: self.masks.clone(),
        }
    }

    fn step(&mut self, action: &[usize]) -> Result<Step> {
        validate_action(&self.spec.action_space, &self.masks, &[], action, 0)?;
        if !self.running {
            return Err(Error::invalid(
                "recall.step",
                "no episode is running: call reset first",
            ));
        }
        let answered = self.position == self.query_position();
        let (reward, terminated) = if answered {
            let right = action[0] == self.cue;
            self.success = Some(right);
            self.running = false;
            (if right { 1.0 } else { 0.0 }, true)
        } else {
            self.position += 1;
            (0.0, false)
        };
        self.update_masks();
        Ok(Step {
            // The final observation of an answered episode is the query observation again: nothing
            // follows the answer, and it is never bootstrapped (the episode terminated).
            observation: self.observation(),
            reward,
            terminated,
            truncated: false,
            masks: self.masks.clone(),
        })
    }

    fn episode_success(&self) -> Option<bool> {
        self.success
    }
}
