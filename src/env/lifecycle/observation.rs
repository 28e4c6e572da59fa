//! The 114-float observation of the lifecycle env: 12 global features, then 34 per slot.
//! `docs/environments.md` has the same table.

use super::config::{ALPHA_TARGETS, NUM_SLOTS};
use super::seed::Seed;

/// Number of global features.
pub const NUM_GLOBAL_FEATURES: usize = 12;
/// Number of features per slot.
pub const NUM_SLOT_FEATURES: usize = 34;
/// Total number of features (the reference network's input size).
pub const NUM_FEATURES: usize = NUM_GLOBAL_FEATURES + NUM_SLOTS * NUM_SLOT_FEATURES;

/// Global feature offsets.
pub mod global {
    /// Episode progress `t / max_steps`.
    pub const PROGRESS: usize = 0;
    /// Host accuracy / 100.
    pub const ACCURACY: usize = 1;
    /// (accuracy − initial accuracy) / 10.
    pub const ACCURACY_GAIN: usize = 2;
    /// Last step's accuracy change × 10.
    pub const LAST_IMPROVEMENT: usize = 3;
    /// Last step's reward × 10.
    pub const LAST_REWARD: usize = 4;
    /// Empty slots / 3.
    pub const EMPTY_SLOTS: usize = 5;
    /// Non-fossilized seeds / 3.
    pub const ACTIVE_SEEDS: usize = 6;
    /// Fossilized seeds / 3.
    pub const FOSSILIZED_SEEDS: usize = 7;
    /// (accuracy − collapse accuracy) / 10.
    pub const COLLAPSE_MARGIN: usize = 8;
    /// Last step's rent × 10.
    pub const LAST_RENT: usize = 9;
    /// Last step's shock cost.
    pub const LAST_SHOCK: usize = 10;
    /// Seeds germinated so far / 10.
    pub const GERMINATIONS: usize = 11;
}

/// Per-slot feature offsets, relative to the slot's block.
pub mod slot {
    /// 1 when the slot hosts a seed.
    pub const OCCUPIED: usize = 0;
    /// One-hot stage: GERMINATED, TRAINING, BLENDING, HOLDING, FOSSILIZED, PRUNING (6 entries).
    pub const STAGE: usize = 1;
    /// Steps in the current stage / 10.
    pub const STEPS_IN_STAGE: usize = 7;
    /// Seed age / max_steps.
    pub const AGE: usize = 8;
    /// Current alpha.
    pub const ALPHA: usize = 9;
    /// The alpha the seed blends to.
    pub const ALPHA_TARGET: usize = 10;
    /// Fraction of the current ramp done.
    pub const RAMP_PROGRESS: usize = 11;
    /// Latest isolated-improvement telemetry sample.
    pub const ISOLATED_LAST: usize = 12;
    /// Mean of the isolated-improvement samples.
    pub const ISOLATED_MEAN: usize = 13;
    /// min(number of isolated samples, 10) / 10.
    pub const ISOLATED_COUNT: usize = 14;
    /// Latest contribution telemetry sample.
    pub const CONTRIBUTION_LAST: usize = 15;
    /// Mean of the contribution samples.
    pub const CONTRIBUTION_MEAN: usize = 16;
    /// min(number of contribution samples, 10) / 10.
    pub const CONTRIBUTION_COUNT: usize = 17;
    /// One-hot tempo (3 entries).
    pub const TEMPO: usize = 18;
    /// One-hot style (4 entries).
    pub const STYLE: usize = 21;
    /// One-hot alpha speed (4 entries).
    pub const SPEED: usize = 25;
    /// Alpha curve index / 4.
    pub const CURVE: usize = 29;
    /// 1 when ADVANCE applies to this slot.
    pub const CAN_ADVANCE: usize = 30;
    /// 1 when FOSSILIZE applies to this slot.
    pub const CAN_FOSSILIZE: usize = 31;
    /// 1 when PRUNE applies to this slot.
    pub const CAN_PRUNE: usize = 32;
    /// Training steps left before ADVANCE applies / 6.
    pub const TRAINING_LEFT: usize = 33;
}

/// What the global features are computed from.
pub(crate) struct GlobalState {
    pub(crate) progress: f32,
    pub(crate) accuracy: f32,
    pub(crate) initial_accuracy: f32,
    pub(crate) collapse_accuracy: f32,
    pub(crate) last_improvement: f32,
    pub(crate) last_reward: f32,
    pub(crate) last_rent: f32,
    pub(crate) last_shock: f32,
    pub(crate) germinations: usize,
}

/// Writes the 114 features into `out` (resized) from the global state and the slots.
pub(crate) fn write_features(
    out: &mut Vec<f32>,
    state: &GlobalState,
    slots: &[Option<Seed>; NUM_SLOTS],
    max_steps: usize,
    min_holding_steps: usize,
    prune_only_blended: bool,
) {
    out.clear();
    out.resize(NUM_FEATURES, 0.0);
    let n = NUM_SLOTS as f32;
    let empty = slots.iter().filter(|s| s.is_none()).count() as f32;
    let active = slots.iter().flatten().filter(|s| s.is_active()).count() as f32;
    let fossilized = n - empty - active;
    let g = &mut out[..NUM_GLOBAL_FEATURES];
    g[global::PROGRESS] = state.progress;
    g[global::ACCURACY] = state.accuracy / 100.0;
    g[global::ACCURACY_GAIN] = (state.accuracy - state.initial_accuracy) / 10.0;
    g[global::LAST_IMPROVEMENT] = state.last_improvement * 10.0;
    g[global::LAST_REWARD] = state.last_reward * 10.0;
    g[global::EMPTY_SLOTS] = empty / n;
    g[global::ACTIVE_SEEDS] = active / n;
    g[global::FOSSILIZED_SEEDS] = fossilized / n;
    g[global::COLLAPSE_MARGIN] = (state.accuracy - state.collapse_accuracy) / 10.0;
    g[global::LAST_RENT] = state.last_rent * 10.0;
    g[global::LAST_SHOCK] = state.last_shock;
    g[global::GERMINATIONS] = state.germinations as f32 / 10.0;
    for (s, seed) in slots.iter().enumerate() {
        let start = NUM_GLOBAL_FEATURES + s * NUM_SLOT_FEATURES;
        let f = &mut out[start..start + NUM_SLOT_FEATURES];
        let Some(seed) = seed else { continue };
        f[slot::OCCUPIED] = 1.0;
        f[slot::STAGE + seed.stage.index()] = 1.0;
        f[slot::STEPS_IN_STAGE] = seed.steps_in_stage as f32 / 10.0;
        f[slot::AGE] = seed.age as f32 / max_steps as f32;
        f[slot::ALPHA] = seed.alpha;
        f[slot::ALPHA_TARGET] = ALPHA_TARGETS[seed.target];
        f[slot::RAMP_PROGRESS] = seed.ramp_progress();
        f[slot::ISOLATED_LAST] = seed.isolated.last;
        f[slot::ISOLATED_MEAN] = seed.isolated.mean();
        f[slot::ISOLATED_COUNT] = seed.isolated.count.min(10) as f32 / 10.0;
        f[slot::CONTRIBUTION_LAST] = seed.contribution.last;
        f[slot::CONTRIBUTION_MEAN] = seed.contribution.mean();
        f[slot::CONTRIBUTION_COUNT] = seed.contribution.count.min(10) as f32 / 10.0;
        f[slot::TEMPO + seed.tempo] = 1.0;
        f[slot::STYLE + seed.style] = 1.0;
        f[slot::SPEED + seed.speed] = 1.0;
        f[slot::CURVE] = seed.curve as f32 / 4.0;
        f[slot::CAN_ADVANCE] = f32::from(u8::from(seed.can_advance()));
        f[slot::CAN_FOSSILIZE] = f32::from(u8::from(seed.can_fossilize(min_holding_steps)));
        f[slot::CAN_PRUNE] = f32::from(u8::from(seed.can_prune(prune_only_blended)));
        f[slot::TRAINING_LEFT] = seed.training_steps_left() as f32 / 6.0;
    }
}
