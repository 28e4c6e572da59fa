//! Environments: the [`Env`] trait, an auto-resetting [`VecEnv`], and the built-in tasks.
//!
//! The vocabulary follows Gymnasium and burn-rl: `reset` with a seed, `step` returning the reward and
//! whether the episode ended by a **termination** (a true end: never bootstrapped) or a
//! **truncation** (a time limit: bootstrapped from the value of the true final observation).
//! Observations are a vector of floats plus a few categorical indices (−1 = none), and every step
//! also returns one mask per action head (`true` = allowed).

use crate::action_space::ActionSpace;
use crate::error::Result;

/// What an environment shows the agent.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// Continuous features, `observation_size` of them.
    pub features: Vec<f32>,
    /// Categorical inputs, one per [`EnvSpec::categorical_vocab`] entry, each in
    /// `-1..vocab` (−1 = absent).
    pub categorical: Vec<i64>,
}

/// The shapes an environment produces and consumes.
#[derive(Debug, Clone, PartialEq)]
pub struct EnvSpec {
    /// A short name (`cartpole`, `recall`, `lifecycle`).
    pub name: String,
    /// Number of continuous observation features.
    pub observation_size: usize,
    /// Vocabulary size of each categorical input (values `0..vocab`, or −1).
    pub categorical_vocab: Vec<usize>,
    /// The factored action space.
    pub action_space: ActionSpace,
}

/// The result of [`Env::reset`].
#[derive(Debug, Clone, PartialEq)]
pub struct Reset {
    /// The first observation.
    pub observation: Observation,
    /// One mask per head, `true` = allowed.
    pub masks: Vec<Vec<bool>>,
}

/// The result of [`Env::step`].
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The observation after the step (the true final observation when the episode ended).
    pub observation: Observation,
    /// The reward of the step.
    pub reward: f32,
    /// The episode reached a terminal state (no bootstrapping).
    pub terminated: bool,
    /// The episode was cut by a time limit (bootstrap from `observation`).
    pub truncated: bool,
    /// One mask per head for the next decision.
    pub masks: Vec<Vec<bool>>,
}

/// A single environment.
pub trait Env: Send {
    /// Its shapes.
    fn spec(&self) -> &EnvSpec;

    /// Starts an episode; `seed` reseeds the environment's RNG when given.
    fn reset(&mut self, seed: Option<u64>) -> Reset;

    /// Applies one action (one index per head).
    ///
    /// # Errors
    /// [`Error::WrongLength`](crate::Error::WrongLength) for a wrong number of heads,
    /// [`Error::ActionOutOfRange`](crate::Error::ActionOutOfRange) or
    /// [`Error::MaskedAction`](crate::Error::MaskedAction) naming the head.
    fn step(&mut self, action: &[usize]) -> Result<Step>;
}
