//! Reference policies for `lifecycle`: a random lower bound, a scripted upper bound that knows the
//! hidden qualities, and a heuristic that uses observations only (evidence that the task is
//! learnable without cheating).

use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

use super::config::{NUM_BLUEPRINTS, NUM_SLOTS};
use super::observation::{NUM_GLOBAL_FEATURES, NUM_SLOT_FEATURES, global, slot};
use super::seed::{Stage, effective_quality};
use super::{Lifecycle, LifecycleConfig};
use crate::action_space::reference::{
    ADVANCE, ALPHA_SPEED, ALPHA_TARGET, BLUEPRINT, FOSSILIZE, GERMINATE, OP, PRUNE, SLOT, STYLE,
    TEMPO, WAIT,
};
use crate::env::masks::check_mask_shapes;
use crate::env::{Env, Observation, effective_mask_row, random_action};
use crate::error::{Error, Result};

/// Index of the MULTIPLY style.
const MULTIPLY: usize = 3;
/// Index of the GATED_GATE style.
const GATED_GATE: usize = 2;
/// `alpha_target` index of a full blend (1.0).
const FULL_BLEND: usize = 2;
/// `alpha_speed` index of the fastest fade-out (1 step).
const FASTEST: usize = 3;

/// A policy for the lifecycle env that may look at the env itself (the scripted one reads the
/// hidden qualities; the others do not).
pub trait LifecyclePolicy {
    /// Called before each episode's first action.
    fn begin_episode(&mut self) {}

    /// The action for the current decision, one index per head, allowed by `masks` and by the
    /// env's conditional masks and op-conditioned rules.
    ///
    /// # Errors
    /// [`Error::EmptyMask`] when a row allows nothing; [`Error::ShapeMismatch`] or
    /// [`Error::WrongLength`] when the observation or the masks do not fit the env.
    fn act(
        &mut self,
        env: &Lifecycle,
        observation: &Observation,
        masks: &[Vec<bool>],
    ) -> Result<Vec<usize>>;
}

/// Uniform over the allowed actions: the op among the allowed ops, then every other head among
/// its actions allowed under that op (op-conditioned rules included).
#[derive(Debug, Clone)]
pub struct RandomPolicy {
    rng: Xoshiro256PlusPlus,
}

impl RandomPolicy {
    /// A random policy drawing from a generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
        }
    }
}

impl LifecyclePolicy for RandomPolicy {
    fn act(
        &mut self,
        env: &Lifecycle,
        _observation: &Observation,
        masks: &[Vec<bool>],
    ) -> Result<Vec<usize>> {
        random_action(
            &env.spec().action_space,
            masks,
            env.conditional_masks(),
            &mut self.rng,
        )
    }
}

/// Checks what a policy is given: the env's observation and mask shapes.
fn check_inputs(env: &Lifecycle, observation: &Observation, masks: &[Vec<bool>]) -> Result<()> {
    let spec = env.spec();
    if observation.features.len() != spec.observation_size {
        return Err(Error::ShapeMismatch {
            name: "observation features".into(),
            expected: vec![spec.observation_size],
            found: vec![observation.features.len()],
        });
    }
    if observation.categorical.len() != spec.categorical_vocab.len() {
        return Err(Error::ShapeMismatch {
            name: "observation categorical inputs".into(),
            expected: vec![spec.categorical_vocab.len()],
            found: vec![observation.categorical.len()],
        });
    }
    check_mask_shapes(&spec.action_space, masks)
}

/// An action with the given op and head choices; every other head takes its first action allowed
/// under the op.
fn complete(
    env: &Lifecycle,
    masks: &[Vec<bool>],
    op: usize,
    choices: &[(usize, usize)],
) -> Result<Vec<usize>> {
    let space = &env.spec().action_space;
    let mut action = vec![0; space.num_heads()];
    action[OP] = op;
    let mut row = Vec::new();
    for head in (0..space.num_heads()).filter(|&h| h != OP) {
        effective_mask_row(space, masks, env.conditional_masks(), head, op, &mut row);
        let wanted = choices.iter().find(|(h, _)| *h == head).map(|&(_, a)| a);
        action[head] = match wanted {
            Some(a) if row.get(a).copied().unwrap_or(false) => a,
            _ => row
                .iter()
                .position(|&m| m)
                .ok_or_else(|| Error::EmptyMask {
                    head: space.heads()[head].name.clone(),
                    row: 0,
                })?,
        };
    }
    Ok(action)
}

/// The tempo worth choosing with `remaining` steps left: slow training realizes 10 % more of a
/// seed's quality but delays its contribution (see `docs/environments.md`).
fn tempo_for(remaining: usize) -> usize {
    match remaining {
        r if r > 30 => 2,
        r if r > 19 => 1,
        _ => 0,
    }
}

/// The upper reference: knows every blueprint's hidden quality, germinates the best one in every
/// free slot (with MULTIPLY, a full blend target and the tempo the remaining time favours), then
/// advances and fossilizes it as soon as the masks allow.
#[derive(Debug, Clone, Default)]
pub struct ScriptedPolicy;

impl LifecyclePolicy for ScriptedPolicy {
    fn act(
        &mut self,
        env: &Lifecycle,
        observation: &Observation,
        masks: &[Vec<bool>],
    ) -> Result<Vec<usize>> {
        check_inputs(env, observation, masks)?;
        let config = env.config();
        let remaining = config.max_steps.saturating_sub(env.steps());
        let slots = env.slots();
        let allowed = |op: usize, s: usize| {
            masks[OP][op] && env.conditional_masks()[0].by_op[op][s] && masks[SLOT][s]
        };
        for (s, seed) in slots.iter().enumerate() {
            if let Some(seed) = seed
                && seed.effective_quality() < 0.0
                && allowed(PRUNE, s)
            {
                return complete(env, masks, PRUNE, &[(SLOT, s), (ALPHA_SPEED, FASTEST)]);
            }
        }
        for op in [FOSSILIZE, ADVANCE] {
            if let Some(s) = (0..NUM_SLOTS).find(|&s| allowed(op, s)) {
                return complete(env, masks, op, &[(SLOT, s)]);
            }
        }
        if remaining >= 10
            && let Some(s) = (0..NUM_SLOTS).find(|&s| allowed(GERMINATE, s))
        {
            let tempo = tempo_for(remaining);
            let qualities = env.hidden_qualities();
            let (best, quality) = (0..NUM_BLUEPRINTS)
                .map(|b| (b, effective_quality(qualities[b], tempo, MULTIPLY)))
                .fold((0, f32::MIN), |acc, x| if x.1 > acc.1 { x } else { acc });
            if quality > 0.15 {
                return complete(
                    env,
                    masks,
                    GERMINATE,
                    &[
                        (SLOT, s),
                        (BLUEPRINT, best),
                        (STYLE, MULTIPLY),
                        (TEMPO, tempo),
                        (ALPHA_TARGET, FULL_BLEND),
                    ],
                );
            }
        }
        complete(env, masks, WAIT, &[])
    }
}

/// A non-cheating heuristic that reads only the observation: it keeps, across episodes, the mean
/// isolated telemetry it has seen for each blueprint (optimistic for untried ones), germinates the
/// most promising blueprint, prunes seeds whose telemetry is poor, and advances and fossilizes the
/// others. Its return shows what a learner can reach from observations alone.
#[derive(Debug, Clone)]
pub struct HeuristicPolicy {
    /// Per blueprint: sum and count of per-episode telemetry estimates from past episodes.
    history: [(f32, usize); NUM_BLUEPRINTS],
    /// Per blueprint: the latest isolated-telemetry mean seen in this episode, with its count.
    episode: [Option<(f32, f32)>; NUM_BLUEPRINTS],
    max_steps: usize,
}

impl HeuristicPolicy {
    /// A heuristic with no history, for episodes of `config.max_steps` steps.
    pub fn new(config: &LifecycleConfig) -> Self {
        Self {
            history: [(0.0, 0); NUM_BLUEPRINTS],
            episode: [None; NUM_BLUEPRINTS],
            max_steps: config.max_steps,
        }
    }

    fn estimate(&self, blueprint: usize) -> f32 {
        if let Some((mean, _)) = self.episode[blueprint] {
            return mean;
        }
        match self.history[blueprint] {
            // Untried blueprints look good enough to be tried once.
            (_, 0) => 0.4,
            (sum, n) => sum / n as f32 + 0.3 / (n as f32).sqrt().max(1.0) - 0.1,
        }
    }
}

/// Telemetry threshold below which a seed is not worth keeping.
const KEEP_THRESHOLD: f32 = 0.15;

impl LifecyclePolicy for HeuristicPolicy {
    fn begin_episode(&mut self) {
        for (b, seen) in self.episode.iter_mut().enumerate() {
            if let Some((mean, _)) = seen.take() {
                self.history[b].0 += mean;
                self.history[b].1 += 1;
            }
        }
    }

    fn act(
        &mut self,
        env: &Lifecycle,
        observation: &Observation,
        masks: &[Vec<bool>],
    ) -> Result<Vec<usize>> {
        check_inputs(env, observation, masks)?;
        let f = &observation.features;
        let remaining = ((1.0 - f[global::PROGRESS]) * self.max_steps as f32)
            .round()
            .max(0.0) as usize;
        let slot_feature = |s: usize, k: usize| f[NUM_GLOBAL_FEATURES + s * NUM_SLOT_FEATURES + k];
        let stage_of = |s: usize| {
            (0..6)
                .find(|&k| slot_feature(s, slot::STAGE + k) > 0.5)
                .map(|k| {
                    [
                        Stage::Germinated,
                        Stage::Training,
                        Stage::Blending,
                        Stage::Holding,
                        Stage::Fossilized,
                        Stage::Pruning,
                    ][k]
                })
        };
        for s in 0..NUM_SLOTS {
            let Ok(b) = usize::try_from(observation.categorical[s]) else {
                continue;
            };
            let count = slot_feature(s, slot::ISOLATED_COUNT) * 10.0;
            if count >= 1.0 && stage_of(s) != Some(Stage::Pruning) {
                let mean = slot_feature(s, slot::ISOLATED_MEAN);
                let known = self.episode[b].map_or(0.0, |(_, n)| n);
                if count >= known {
                    self.episode[b] = Some((mean, count));
                }
            }
        }
        let allowed = |op: usize, s: usize| {
            masks[OP][op] && env.conditional_masks()[0].by_op[op][s] && masks[SLOT][s]
        };
        for s in 0..NUM_SLOTS {
            let count = slot_feature(s, slot::ISOLATED_COUNT) * 10.0;
            let mean = slot_feature(s, slot::ISOLATED_MEAN);
            let poor = count >= 2.0 && mean < KEEP_THRESHOLD;
            let harmful = slot_feature(s, slot::CONTRIBUTION_COUNT) * 10.0 >= 2.0
                && slot_feature(s, slot::CONTRIBUTION_MEAN) < 0.0;
            if (poor || harmful) && allowed(PRUNE, s) {
                return complete(env, masks, PRUNE, &[(SLOT, s), (ALPHA_SPEED, FASTEST)]);
            }
        }
        for op in [FOSSILIZE, ADVANCE] {
            if let Some(s) = (0..NUM_SLOTS).find(|&s| allowed(op, s)) {
                return complete(env, masks, op, &[(SLOT, s)]);
            }
        }
        if remaining >= 10
            && let Some(s) = (0..NUM_SLOTS).find(|&s| allowed(GERMINATE, s))
        {
            let (best, score) = (0..NUM_BLUEPRINTS)
                .map(|b| (b, self.estimate(b)))
                .fold((0, f32::MIN), |acc, x| if x.1 > acc.1 { x } else { acc });
            if score > KEEP_THRESHOLD {
                let style = if self.episode[best].is_some() {
                    MULTIPLY
                } else {
                    GATED_GATE
                };
                return complete(
                    env,
                    masks,
                    GERMINATE,
                    &[
                        (SLOT, s),
                        (BLUEPRINT, best),
                        (STYLE, style),
                        (TEMPO, tempo_for(remaining)),
                        (ALPHA_TARGET, FULL_BLEND),
                    ],
                );
            }
        }
        complete(env, masks, WAIT, &[])
    }
}

/// Summary of [`evaluate_policy`].
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyEvaluation {
    /// Number of episodes.
    pub episodes: usize,
    /// Mean undiscounted return.
    pub mean_return: f64,
    /// Standard deviation of the returns.
    pub std_return: f64,
    /// Mean episode length.
    pub mean_length: f64,
    /// Fraction of episodes that ended with the host collapsing.
    pub collapse_rate: f64,
}

/// Runs `policy` for `episodes` episodes of a fresh lifecycle env; episode `k` is reset with seed
/// `seed + k`, so two policies evaluated with the same seed face the same hidden qualities.
///
/// # Errors
/// As [`Lifecycle::new`]; [`Error::Invalid`] naming `episodes` when it is 0; the env's errors when
/// the policy takes a masked action.
pub fn evaluate_policy(
    config: &LifecycleConfig,
    policy: &mut dyn LifecyclePolicy,
    episodes: usize,
    seed: u64,
) -> Result<PolicyEvaluation> {
    if episodes == 0 {
        return Err(Error::invalid("episodes", "must be at least 1"));
    }
    let mut env = Lifecycle::new(config.clone())?;
    let mut returns = Vec::with_capacity(episodes);
    let mut total_length = 0usize;
    let mut collapses = 0usize;
    for k in 0..episodes {
        let reset = env.reset(Some(seed.wrapping_add(k as u64)));
        let (mut observation, mut masks) = (reset.observation, reset.masks);
        policy.begin_episode();
        let mut episode_return = 0.0f64;
        loop {
            let action = policy.act(&env, &observation, &masks)?;
            let step = env.step(&action)?;
            episode_return += f64::from(step.reward);
            total_length += 1;
            if step.terminated || step.truncated {
                collapses += usize::from(step.terminated);
                break;
            }
            observation = step.observation;
            masks = step.masks;
        }
        returns.push(episode_return);
    }
    let n = episodes as f64;
    let mean_return = returns.iter().sum::<f64>() / n;
    let variance = returns
        .iter()
        .map(|r| (r - mean_return).powi(2))
        .sum::<f64>()
        / n;
    Ok(PolicyEvaluation {
        episodes,
        mean_return,
        std_return: variance.sqrt(),
        mean_length: total_length as f64 / n,
        collapse_rate: collapses as f64 / n,
    })
}
