//! `lifecycle`: a simulated stand-in for the reference workload, morphogenetic control of a network
//! under training, with the full reference 8-head action space of SPEC §2.
//!
//! A host network has an accuracy (in points, 0–100). Three slots can each host a **seed** (a small
//! module of one of 13 blueprints) that goes through stages: GERMINATED → TRAINING (in isolation,
//! alpha 0) → BLENDING (alpha ramps to its target) → HOLDING → FOSSILIZED (permanent), or is
//! PRUNED (fading out, then the slot is free again). Each blueprint has a hidden quality in −1..1,
//! drawn per episode around a fixed prior; the agent sees it only through noisy per-slot telemetry.
//! A blended seed changes the host's accuracy by `seed_gain × alpha × effective quality` every step;
//! the reward is that improvement minus a compute rent per seed and a shock cost for fast alpha
//! changes. Episodes are truncated after 150 steps and terminate when the host collapses (its
//! accuracy falls below `collapse_accuracy`, i.e. harmful seeds were blended in).
//!
//! Masks are per step: an op is allowed only when it applies to some slot, and a
//! [`ConditionalMask`] on the `slot` head allows, under each op, only the slots it applies to.
//! Heads that no mask restricts (blueprint, tempo, alpha heads) always allow everything; `style`
//! follows the space's static rule (SIGMOID_ADD unless the op is GERMINATE or SET_ALPHA_TARGET).
//! `docs/environments.md` documents the observation layout, the tables and the reference returns.

mod config;
pub mod observation;
mod policies;
mod seed;
mod snapshot;

pub use config::{
    ALPHA_SPEED_STEPS, ALPHA_TARGETS, CURVE_NAMES, DEFAULT_ALPHA_CURVE, DEFAULT_ALPHA_SPEED,
    DEFAULT_BLUEPRINT_PRIORS, LifecycleConfig, NUM_BLUEPRINTS, NUM_SLOTS, STYLE_GAIN_NEGATIVE,
    STYLE_GAIN_POSITIVE, STYLE_SHOCK, TEMPO_GAIN, TEMPO_MIN_TRAINING_STEPS, curve,
};
pub use policies::{
    HeuristicPolicy, LifecyclePolicy, PolicyEvaluation, RandomPolicy, ScriptedPolicy,
    evaluate_policy,
};
pub use seed::Stage;

use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};

use self::observation::{GlobalState, NUM_FEATURES, write_features};
use self::seed::Seed;
use super::{ConditionalMask, Env, EnvSpec, Observation, Reset, Step, validate_action};
use crate::action_space::ActionSpace;
use crate::action_space::reference::{
    ADVANCE, ALPHA_CURVE, ALPHA_SPEED, ALPHA_TARGET, BLUEPRINT, FOSSILIZE, GERMINATE, OP, PRUNE,
    SET_ALPHA_TARGET, SLOT, STYLE, TEMPO, WAIT,
};
use crate::error::{Error, Result};
use crate::rng::SnapshotRng;

/// Number of op values of the reference space.
const NUM_OPS: usize = 6;

/// The lifecycle env (see the module documentation).
#[derive(Debug, Clone)]
pub struct Lifecycle {
    spec: EnvSpec,
    config: LifecycleConfig,
    rng: SnapshotRng,
    qualities: [f32; NUM_BLUEPRINTS],
    slots: [Option<Seed>; NUM_SLOTS],
    accuracy: f32,
    steps: usize,
    running: bool,
    last_improvement: f32,
    last_reward: f32,
    last_rent: f32,
    last_shock: f32,
    germinations: usize,
    masks: Vec<Vec<bool>>,
    conditional: Vec<ConditionalMask>,
}

impl Lifecycle {
    /// A lifecycle env with `config`; call [`Env::reset`] before stepping.
    ///
    /// # Errors
    /// As [`LifecycleConfig::validate`].
    pub fn new(config: LifecycleConfig) -> Result<Self> {
        config.validate()?;
        let action_space = ActionSpace::reference();
        let masks = action_space
            .head_sizes()
            .iter()
            .map(|&n| vec![true; n])
            .collect();
        Ok(Self {
            spec: EnvSpec {
                name: "lifecycle".into(),
                observation_size: NUM_FEATURES,
                categorical_vocab: vec![NUM_BLUEPRINTS; NUM_SLOTS],
                action_space,
            },
            accuracy: config.initial_accuracy,
            config,
            rng: SnapshotRng::seed_from_u64(0),
            qualities: [0.0; NUM_BLUEPRINTS],
            slots: Default::default(),
            steps: 0,
            running: false,
            last_improvement: 0.0,
            last_reward: 0.0,
            last_rent: 0.0,
            last_shock: 0.0,
            germinations: 0,
            masks,
            conditional: vec![ConditionalMask {
                head: SLOT,
                by_op: vec![vec![true; NUM_SLOTS]; NUM_OPS],
            }],
        })
    }

    /// The settings.
    pub fn config(&self) -> &LifecycleConfig {
        &self.config
    }

    /// The hidden quality of every blueprint in this episode. Only reference policies (the
    /// scripted upper bound) and tests may look: an agent sees telemetry only.
    pub fn hidden_qualities(&self) -> &[f32; NUM_BLUEPRINTS] {
        &self.qualities
    }

    /// The host's accuracy in points.
    pub fn accuracy(&self) -> f32 {
        self.accuracy
    }

    /// Steps taken in this episode.
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The stage of the seed in `slot`, `None` for an empty slot (or an out-of-range index).
    pub fn stage(&self, slot: usize) -> Option<Stage> {
        self.slots.get(slot)?.as_ref().map(|s| s.stage)
    }

    /// The masks of the next decision.
    pub fn masks(&self) -> &[Vec<bool>] {
        &self.masks
    }

    pub(crate) fn slots(&self) -> &[Option<Seed>; NUM_SLOTS] {
        &self.slots
    }

    /// Whether `op` applies to the seed (or emptiness) of `slot`.
    fn applies(&self, op: usize, slot: usize) -> bool {
        let seed = self.slots[slot].as_ref();
        match op {
            WAIT => true,
            GERMINATE => seed.is_none(),
            SET_ALPHA_TARGET => seed.is_some_and(Seed::can_set_alpha),
            PRUNE => seed.is_some_and(|s| s.can_prune(self.config.prune_only_blended)),
            FOSSILIZE => seed.is_some_and(|s| s.can_fossilize(self.config.min_holding_steps)),
            ADVANCE => seed.is_some_and(Seed::can_advance),
            _ => false,
        }
    }

    fn update_masks(&mut self) {
        let mut slot_union = [false; NUM_SLOTS];
        for op in 0..NUM_OPS {
            let applies: [bool; NUM_SLOTS] = std::array::from_fn(|s| self.applies(op, s));
            let any = applies.iter().any(|&a| a);
            self.masks[OP][op] = op == WAIT || any;
            let row = &mut self.conditional[0].by_op[op];
            if op != WAIT && any {
                row.copy_from_slice(&applies);
                for (u, a) in slot_union.iter_mut().zip(applies) {
                    *u |= a;
                }
            } else {
                // WAIT ignores the slot, and a disallowed op is never chosen: leave it open.
                row.fill(true);
            }
        }
        let only_wait = !slot_union.iter().any(|&u| u);
        for (m, u) in self.masks[SLOT].iter_mut().zip(slot_union) {
            *m = only_wait || u;
        }
    }

    /// The current observation.
    pub fn observation(&self) -> Observation {
        let mut features = Vec::with_capacity(NUM_FEATURES);
        let state = GlobalState {
            progress: self.steps as f32 / self.config.max_steps as f32,
            accuracy: self.accuracy,
            initial_accuracy: self.config.initial_accuracy,
            collapse_accuracy: self.config.collapse_accuracy,
            last_improvement: self.last_improvement,
            last_reward: self.last_reward,
            last_rent: self.last_rent,
            last_shock: self.last_shock,
            germinations: self.germinations,
        };
        write_features(
            &mut features,
            &state,
            &self.slots,
            self.config.max_steps,
            self.config.min_holding_steps,
            self.config.prune_only_blended,
        );
        let categorical = self
            .slots
            .iter()
            .map(|s| s.as_ref().map_or(-1, |s| s.blueprint as i64))
            .collect();
        Observation {
            features,
            categorical,
        }
    }

    fn noise(&mut self) -> f32 {
        let z: f32 = StandardNormal.sample(&mut self.rng);
        self.config.telemetry_noise * z
    }

    fn apply(&mut self, action: &[usize]) {
        let slot = action[SLOT];
        let op = action[OP];
        if op == GERMINATE {
            let blueprint = action[BLUEPRINT];
            self.slots[slot] = Some(Seed::germinate(
                blueprint,
                self.qualities[blueprint],
                action[STYLE],
                action[TEMPO],
                action[ALPHA_TARGET],
            ));
            self.germinations += 1;
            return;
        }
        let Some(seed) = self.slots[slot].as_mut() else {
            return;
        };
        match op {
            SET_ALPHA_TARGET => seed.set_alpha(
                action[STYLE],
                action[ALPHA_TARGET],
                action[ALPHA_SPEED],
                action[ALPHA_CURVE],
            ),
            PRUNE if seed.prune(action[ALPHA_SPEED], action[ALPHA_CURVE]) => {
                // Never blended: the seed is gone at once.
                self.slots[slot] = None;
            }
            FOSSILIZE => seed.fossilize(),
            ADVANCE => seed.advance(),
            _ => {}
        }
    }
}

impl Env for Lifecycle {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, seed: Option<u64>) -> Reset {
        if let Some(seed) = seed {
            self.rng = SnapshotRng::seed_from_u64(seed);
        }
        for (q, &prior) in self.qualities.iter_mut().zip(&self.config.blueprint_priors) {
            let z: f32 = StandardNormal.sample(&mut self.rng);
            *q = (prior + self.config.quality_noise * z).clamp(-1.0, 1.0);
        }
        self.slots = Default::default();
        self.accuracy = self.config.initial_accuracy;
        self.steps = 0;
        self.running = true;
        self.last_improvement = 0.0;
        self.last_reward = 0.0;
        self.last_rent = 0.0;
        self.last_shock = 0.0;
        self.germinations = 0;
        self.update_masks();
        Reset {
            observation: self.observation(),
            masks: self.masks.clone(),
        }
    }

    fn step(&mut self, action: &[usize]) -> Result<Step> {
        validate_action(
            &self.spec.action_space,
            &self.masks,
            &self.conditional,
            action,
            0,
        )?;
        if !self.running {
            return Err(Error::invalid(
                "lifecycle.step",
                "no episode is running: call reset first",
            ));
        }
        self.apply(action);

        let mut shock = 0.0;
        let mut contribution = 0.0;
        for s in 0..NUM_SLOTS {
            let Some(seed) = self.slots[s].as_mut() else {
                continue;
            };
            shock += seed.tick(self.config.germination_steps, self.config.auto_blend);
            let now = seed.contribution_now();
            contribution += now;
            let trains = matches!(
                seed.stage,
                Stage::Training | Stage::Blending | Stage::Holding
            );
            let blended = seed.alpha > 0.0;
            let isolated = seed.quality * TEMPO_GAIN[seed.tempo];
            if trains {
                let sample = isolated + self.noise();
                if let Some(seed) = self.slots[s].as_mut() {
                    seed.isolated.record(sample);
                }
            }
            if blended {
                let sample = now + self.noise();
                if let Some(seed) = self.slots[s].as_mut() {
                    seed.contribution.record(sample);
                }
            }
            if self.slots[s].as_ref().is_some_and(Seed::is_gone) {
                self.slots[s] = None;
            }
        }

        let before = self.accuracy;
        self.accuracy = (self.accuracy + self.config.seed_gain * contribution).clamp(0.0, 100.0);
        let improvement = self.accuracy - before;
        let (active, fossilized) = self.slots.iter().flatten().fold((0, 0), |(a, f), s| {
            if s.is_active() {
                (a + 1, f)
            } else {
                (a, f + 1)
            }
        });
        let rent =
            self.config.active_rent * active as f32 + self.config.fossil_rent * fossilized as f32;
        let shock_cost = self.config.shock_cost * shock;
        let mut reward = improvement - shock_cost - rent;
        self.steps += 1;
        let terminated = self.accuracy < self.config.collapse_accuracy;
        if terminated {
            reward -= self.config.collapse_penalty;
        }
        let truncated = !terminated && self.steps >= self.config.max_steps;
        self.running = !(terminated || truncated);
        self.last_improvement = improvement;
        self.last_reward = reward;
        self.last_rent = rent;
        self.last_shock = shock_cost;
        self.update_masks();
        Ok(Step {
            observation: self.observation(),
            reward,
            terminated,
            truncated,
            masks: self.masks.clone(),
        })
    }

    fn conditional_masks(&self) -> &[ConditionalMask] {
        &self.conditional
    }

    fn snapshot(&self) -> Result<serde_json::Value> {
        snapshot::snapshot(self)
    }

    fn restore(&mut self, snapshot: &serde_json::Value) -> Result<()> {
        snapshot::restore(self, snapshot)
    }
}
