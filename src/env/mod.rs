//! Environments: the [`Env`] trait, an auto-resetting [`VecEnv`], and the built-in tasks.
//!
//! The vocabulary follows Gymnasium and burn-rl: `reset` with a seed, `step` returning the reward and
//! whether the episode ended by a **termination** (a true end: never bootstrapped) or a
//! **truncation** (a time limit: bootstrapped from the value of the true final observation).
//! Observations are a vector of floats plus a few categorical indices (−1 = none), and every step
//! also returns one mask per action head (`true` = allowed).
//!
//! Some masks depend on the op the agent picks (in `lifecycle`, PRUNE applies to other slots than
//! GERMINATE). The static op-conditioned rules of the [`ActionSpace`] cannot express that, so an env
//! may also publish [`ConditionalMask`]s for the next decision through
//! [`Env::conditional_masks`]: under op `o`, head `h` may only take actions allowed by both
//! `masks[h]` and the conditional row for `o`. [`VecBatch::masks_given_ops`] folds them, together
//! with the static rules, into plain per-head masks once the ops are chosen.
//!
//! Built in ([`make_env`]): [`CartPole`] (Gymnasium's CartPole-v1), [`Recall`] (a memory task only a
//! recurrent policy solves) and [`Lifecycle`] (a simulated stand-in for morphogenetic control with
//! the reference 8-head action space).

mod cartpole;
mod factory;
pub mod lifecycle;
mod masks;
mod recall;
mod vec_env;

pub use cartpole::{CartPole, CartPoleConfig};
pub use factory::{ENV_NAMES, EnvConfigs, make_env, make_vec_env};
pub use lifecycle::{Lifecycle, LifecycleConfig};
pub use masks::{effective_mask_row, random_action, validate_action, validate_masks};
pub use recall::{Recall, RecallConfig};
pub use vec_env::{EpisodeRecord, VecBatch, VecEnv, VecStep};

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

/// A mask of one head that depends on the chosen op, for the next decision.
///
/// Under op `o`, head `head` may only take the actions allowed by both the head's ordinary mask
/// and `by_op[o]`. An env guarantees that, for every op its op mask allows, the intersection is
/// not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionalMask {
    /// The restricted head (never the op head).
    pub head: usize,
    /// One row per op value, each with one entry per action of `head`.
    pub by_op: Vec<Vec<bool>>,
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
    /// [`Error::MaskedAction`](crate::Error::MaskedAction) naming the head;
    /// [`Error::Invalid`](crate::Error::Invalid) when no episode is running (before the first
    /// reset, or after the episode ended).
    fn step(&mut self, action: &[usize]) -> Result<Step>;

    /// The op-dependent masks of the next decision (see [`ConditionalMask`]); none by default.
    fn conditional_masks(&self) -> &[ConditionalMask] {
        &[]
    }

    /// Whether the episode that the last step ended was a success, for tasks that have one
    /// (`recall`: the answer was right); `None` for tasks without a notion of success or while
    /// the episode is running.
    fn episode_success(&self) -> Option<bool> {
        None
    }
}
