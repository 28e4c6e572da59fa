//! CartPole-v1 with Gymnasium's dynamics (Barto, Sutton & Anderson, "Neuronlike adaptive elements
//! that can solve difficult learning control problems", 1983; Gymnasium's `cartpole.py`).
//!
//! The state is integrated in `f64` with the explicit Euler scheme, as Gymnasium does with numpy
//! float64, and shown to the agent as `f32`.

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use super::{Env, EnvSpec, Observation, Reset, Step, validate_action};
use crate::action_space::ActionSpace;
use crate::error::{Error, Result};

const GRAVITY: f64 = 9.8;
const MASS_CART: f64 = 1.0;
const MASS_POLE: f64 = 0.1;
const TOTAL_MASS: f64 = MASS_CART + MASS_POLE;
/// Half the pole's length, as Gymnasium's `length`.
const HALF_POLE_LENGTH: f64 = 0.5;
const POLE_MASS_LENGTH: f64 = MASS_POLE * HALF_POLE_LENGTH;
const FORCE_MAG: f64 = 10.0;
const TAU: f64 = 0.02;
const X_THRESHOLD: f64 = 2.4;
const THETA_THRESHOLD_RADIANS: f64 = 12.0 * 2.0 * std::f64::consts::PI / 360.0;

/// Settings of [`CartPole`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CartPoleConfig {
    /// The time limit: the episode is truncated after this many steps (Gymnasium: 500).
    pub max_steps: usize,
}

impl Default for CartPoleConfig {
    fn default() -> Self {
        Self { max_steps: 500 }
    }
}

impl CartPoleConfig {
    /// Checks the settings.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming `cartpole.max_steps` when it is 0.
    pub fn validate(&self) -> Result<()> {
        if self.max_steps == 0 {
            return Err(Error::invalid("cartpole.max_steps", "must be at least 1"));
        }
        Ok(())
    }
}

/// Gymnasium's CartPole-v1: push the cart left (0) or right (1) to keep the pole upright.
///
/// - Observation: `[x, x_dot, theta, theta_dot]`, no categorical inputs.
/// - Action: one head `push` of size 2, always fully allowed.
/// - Reward 1 for every step, the terminating one included.
/// - Terminated when `|x| > 2.4` or `|theta| > 12°`; truncated after `max_steps` (500) steps.
#[derive(Debug, Clone)]
pub struct CartPole {
    spec: EnvSpec,
    config: CartPoleConfig,
    rng: Xoshiro256PlusPlus,
    state: [f64; 4],
    steps: usize,
    running: bool,
    masks: Vec<Vec<bool>>,
}

impl CartPole {
    /// A CartPole with `config`; call [`Env::reset`] before stepping.
    ///
    /// # Errors
    /// As [`CartPoleConfig::validate`].
    pub fn new(config: CartPoleConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            spec: EnvSpec {
                name: "cartpole".into(),
                observation_size: 4,
                categorical_vocab: vec![],
                action_space: ActionSpace::single("push", 2)?,
            },
            config,
            rng: Xoshiro256PlusPlus::seed_from_u64(0),
            state: [0.0; 4],
            steps: 0,
            running: false,
            masks: vec![vec![true, true]],
        })
    }

    /// The physical state `[x, x_dot, theta, theta_dot]` in `f64`.
    pub fn state(&self) -> [f64; 4] {
        self.state
    }

    /// Sets the physical state (for tests and demonstrations); the step counter is kept.
    pub fn set_state(&mut self, state: [f64; 4]) {
        self.state = state;
    }

    fn observation(&self) -> Observation {
        Observation {
            features: self.state.iter().map(|&v| v as f32).collect(),
            categorical: vec![],
        }
    }
}

/// One Euler step of Gymnasium's CartPole equations of motion.
fn euler_step(state: [f64; 4], push_right: bool) -> [f64; 4] {
    let [x, x_dot, theta, theta_dot] = state;
    let force = if push_right { FORCE_MAG } else { -FORCE_MAG };
    let (sin_theta, cos_theta) = theta.sin_cos();
    let temp = (force + POLE_MASS_LENGTH * theta_dot * theta_dot * sin_theta) / TOTAL_MASS;
    let theta_acc = (GRAVITY * sin_theta - cos_theta * temp)
        / (HALF_POLE_LENGTH * (4.0 / 3.0 - MASS_POLE * cos_theta * cos_theta / TOTAL_MASS));
    let x_acc = temp - POLE_MASS_LENGTH * theta_acc * cos_theta / TOTAL_MASS;
    [
        x + TAU * x_dot,
        x_dot + TAU * x_acc,
        theta + TAU * theta_dot,
        theta_dot + TAU * theta_acc,
    ]
}

fn uniform_state<R: Rng + ?Sized>(rng: &mut R) -> [f64; 4] {
    std::array::from_fn(|_| rng.random_range(-0.05..0.05))
}

impl Env for CartPole {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>) -> Reset {
        if let Some(seed) = seed {
            self.rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        }
        self.state = uniform_state(&mut self.rng);
        self.steps = 0;
        self.running = true;
        Reset {
            observation: self.observation(),
            masks: self.masks.clone(),
        }
    }

    fn step(&mut self, action: &[usize]) -> Result<Step> {
        validate_action(&self.spec.action_space, &self.masks, &[], action, 0)?;
        if !self.running {
            return Err(Error::invalid(
                "cartpole.step",
                "no episode is running: call reset first",
            ));
        }
        self.state = euler_step(self.state, action[0] == 1);
        self.steps += 1;
        let [x, _, theta, _] = self.state;
        let terminated = !(-X_THRESHOLD..=X_THRESHOLD).contains(&x)
            || !(-THETA_THRESHOLD_RADIANS..=THETA_THRESHOLD_RADIANS).contains(&theta);
        let truncated = !terminated && self.steps >= self.config.max_steps;
        self.running = !(terminated || truncated);
        Ok(Step {
            observation: self.observation(),
            reward: 1.0,
            terminated,
            truncated,
            masks: self.masks.clone(),
        })
    }
}
