//! One seed in a slot: its stage, blend schedule and telemetry.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::config::{
    ALPHA_SPEED_STEPS, ALPHA_TARGETS, CURVE_NAMES, DEFAULT_ALPHA_CURVE, DEFAULT_ALPHA_SPEED,
    NUM_BLUEPRINTS, STYLE_GAIN_NEGATIVE, STYLE_GAIN_POSITIVE, STYLE_SHOCK, TEMPO_GAIN,
    TEMPO_MIN_TRAINING_STEPS, curve,
};
use crate::env::snapshot::{SnapshotReader, SnapshotWriter};
use crate::error::Result;

/// The lifecycle stage of a seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    /// Just planted; becomes TRAINING on its own.
    Germinated,
    /// Trains in isolation (alpha 0); ADVANCE starts blending once trained long enough.
    Training,
    /// Alpha ramps towards its target; ADVANCE moves to HOLDING once there.
    Blending,
    /// Fully blended, under probation; FOSSILIZE makes it permanent.
    Holding,
    /// Permanent part of the host (cannot be pruned).
    Fossilized,
    /// Pruned, fading out; the slot empties when alpha reaches 0.
    Pruning,
}

impl Stage {
    /// Position in the observation's stage one-hot.
    pub fn index(self) -> usize {
        match self {
            Stage::Germinated => 0,
            Stage::Training => 1,
            Stage::Blending => 2,
            Stage::Holding => 3,
            Stage::Fossilized => 4,
            Stage::Pruning => 5,
        }
    }
}

/// A running mean of noisy samples, plus the latest one.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Telemetry {
    /// The latest sample (0 before any).
    pub last: f32,
    sum: f32,
    /// The number of samples.
    pub count: usize,
}

impl Telemetry {
    /// Records a sample.
    pub fn record(&mut self, sample: f32) {
        self.last = sample;
        self.sum += sample;
        self.count += 1;
    }

    /// The mean of the samples (0 before any).
    pub fn mean(&self) -> f32 {
        if self.count == 0 {
            0.0
        } else {
            self.sum / self.count as f32
        }
    }

    fn snapshot(&self, subject: &str) -> Result<Value> {
        let mut w = SnapshotWriter::nested(subject);
        w.floats("last", &self.last)?;
        w.floats("sum", &self.sum)?;
        w.field("count", &self.count)?;
        Ok(w.finish())
    }

    fn restore(mut r: SnapshotReader<'_>) -> Result<Self> {
        let telemetry = Self {
            last: r.floats("last")?,
            sum: r.floats("sum")?,
            count: r.field("count")?,
        };
        r.finish()?;
        Ok(telemetry)
    }
}

/// A seed and everything the simulation tracks about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Seed {
    /// Its blueprint.
    pub blueprint: usize,
    /// Its blueprint's hidden quality in this episode.
    pub quality: f32,
    /// Its stage.
    pub stage: Stage,
    /// Steps spent in the current stage.
    pub steps_in_stage: usize,
    /// Steps since germination.
    pub age: usize,
    /// `tempo` head value.
    pub tempo: usize,
    /// `style` head value.
    pub style: usize,
    /// `alpha_target` head value.
    pub target: usize,
    /// `alpha_speed` head value.
    pub speed: usize,
    /// `alpha_curve` head value.
    pub curve: usize,
    /// Current blend level.
    pub alpha: f32,
    ramp_start: f32,
    ramp_end: f32,
    ramp_steps: usize,
    ramp_done: usize,
    /// Noisy samples of the seed's quality while it trains (its isolated improvement).
    pub isolated: Telemetry,
    /// Noisy samples of its contribution to the host while alpha > 0.
    pub contribution: Telemetry,
}

impl Seed {
    /// A freshly germinated seed, with the default blend schedule.
    pub fn germinate(
        blueprint: usize,
        quality: f32,
        style: usize,
        tempo: usize,
        target: usize,
    ) -> Self {
        Self {
            blueprint,
            quality,
            stage: Stage::Germinated,
            steps_in_stage: 0,
            age: 0,
            tempo,
            style,
            target,
            speed: DEFAULT_ALPHA_SPEED,
            curve: DEFAULT_ALPHA_CURVE,
            alpha: 0.0,
            ramp_start: 0.0,
            ramp_end: 0.0,
            ramp_steps: 0,
            ramp_done: 0,
            isolated: Telemetry::default(),
            contribution: Telemetry::default(),
        }
    }

    /// The quality the seed realizes in the host: its blueprint quality scaled by its tempo and
    /// by its style (differently for helpful and harmful seeds).
    pub fn effective_quality(&self) -> f32 {
        effective_quality(self.quality, self.tempo, self.style)
    }

    /// Its contribution to the host this step: `alpha × effective quality`.
    pub fn contribution_now(&self) -> f32 {
        self.alpha * self.effective_quality()
    }

    /// Training steps still required before ADVANCE may start blending (0 outside TRAINING).
    pub fn training_steps_left(&self) -> usize {
        if self.stage == Stage::Training {
            TEMPO_MIN_TRAINING_STEPS[self.tempo].saturating_sub(self.steps_in_stage)
        } else {
            0
        }
    }

    /// Whether the current ramp has reached its end.
    pub fn ramp_complete(&self) -> bool {
        self.ramp_done >= self.ramp_steps
    }

    /// Fraction of the current ramp done (1 when there is none).
    pub fn ramp_progress(&self) -> f32 {
        if self.ramp_steps == 0 {
            1.0
        } else {
            self.ramp_done as f32 / self.ramp_steps as f32
        }
    }

    /// Whether ADVANCE applies: a trained TRAINING seed, or a BLENDING seed at its target.
    pub fn can_advance(&self) -> bool {
        match self.stage {
            Stage::Training => self.training_steps_left() == 0,
            Stage::Blending => self.ramp_complete(),
            _ => false,
        }
    }

    /// Whether FOSSILIZE applies.
    pub fn can_fossilize(&self, min_holding_steps: usize) -> bool {
        self.stage == Stage::Holding && self.steps_in_stage >= min_holding_steps
    }

    /// Whether PRUNE applies (with `only_blended`, not before the seed has started blending).
    pub fn can_prune(&self, only_blended: bool) -> bool {
        match self.stage {
            Stage::Germinated | Stage::Training => !only_blended,
            Stage::Blending | Stage::Holding => true,
            Stage::Fossilized | Stage::Pruning => false,
        }
    }

    /// Whether SET_ALPHA_TARGET applies.
    pub fn can_set_alpha(&self) -> bool {
        matches!(
            self.stage,
            Stage::Training | Stage::Blending | Stage::Holding
        )
    }

    /// Whether the seed still pays the active rent.
    pub fn is_active(&self) -> bool {
        self.stage != Stage::Fossilized
    }

    fn enter(&mut self, stage: Stage) {
        self.stage = stage;
        self.steps_in_stage = 0;
    }

    fn start_ramp(&mut self, end: f32, speed: usize, curve: usize) {
        self.ramp_start = self.alpha;
        self.ramp_end = end;
        self.ramp_steps = ALPHA_SPEED_STEPS[speed];
        self.ramp_done = 0;
        self.curve = curve;
    }

    /// ADVANCE: TRAINING → BLENDING (ramp to the target) or BLENDING → HOLDING.
    pub fn advance(&mut self) {
        match self.stage {
            Stage::Training => {
                self.start_ramp(ALPHA_TARGETS[self.target], self.speed, self.curve);
                self.enter(Stage::Blending);
            }
            Stage::Blending => self.enter(Stage::Holding),
            _ => {}
        }
    }

    /// SET_ALPHA_TARGET: a new style and blend schedule; a BLENDING seed re-ramps from its current
    /// alpha, a HOLDING seed whose alpha differs from the new target goes back to BLENDING.
    pub fn set_alpha(&mut self, style: usize, target: usize, speed: usize, curve: usize) {
        self.style = style;
        self.target = target;
        self.speed = speed;
        self.curve = curve;
        let end = ALPHA_TARGETS[target];
        match self.stage {
            Stage::Blending => self.start_ramp(end, speed, curve),
            Stage::Holding if self.alpha != end => {
                self.start_ramp(end, speed, curve);
                self.enter(Stage::Blending);
            }
            _ => {}
        }
    }

    /// PRUNE: fade out over `speed` steps along `curve`. Returns `true` when the seed is gone at
    /// once (it was never blended).
    pub fn prune(&mut self, speed: usize, curve: usize) -> bool {
        if self.alpha == 0.0 {
            return true;
        }
        self.start_ramp(0.0, speed, curve);
        self.enter(Stage::Pruning);
        false
    }

    /// FOSSILIZE.
    pub fn fossilize(&mut self) {
        self.enter(Stage::Fossilized);
    }

    /// Moves the seed one step forward in time: stage timers, automatic transitions (with
    /// `auto_blend`, a trained seed starts blending) and the alpha ramp. Returns the shock of the
    /// alpha change (`style factor × Δalpha²`).
    pub fn tick(&mut self, germination_steps: usize, auto_blend: bool) -> f32 {
        self.age += 1;
        self.steps_in_stage += 1;
        if self.stage == Stage::Germinated && self.steps_in_stage >= germination_steps {
            self.enter(Stage::Training);
        }
        if auto_blend && self.stage == Stage::Training && self.training_steps_left() == 0 {
            self.advance();
        }
        if matches!(self.stage, Stage::Blending | Stage::Pruning) && !self.ramp_complete() {
            self.ramp_done += 1;
            let before = self.alpha;
            self.alpha = if self.ramp_complete() {
                self.ramp_end
            } else {
                let u = self.ramp_done as f32 / self.ramp_steps as f32;
                self.ramp_start + (self.ramp_end - self.ramp_start) * curve(self.curve, u)
            };
            let delta = self.alpha - before;
            return STYLE_SHOCK[self.style] * delta * delta;
        }
        0.0
    }

    /// Whether a fading seed has fully left the host.
    pub fn is_gone(&self) -> bool {
        self.stage == Stage::Pruning && self.ramp_complete()
    }

    /// Every field of the seed, floats as bit patterns, for the env's snapshot of `subject`.
    pub(crate) fn snapshot(&self, subject: &str) -> Result<Value> {
        let mut w = SnapshotWriter::nested(subject);
        w.field("blueprint", &self.blueprint)?;
        w.floats("quality", &self.quality)?;
        w.field("stage", &self.stage)?;
        w.field("steps_in_stage", &self.steps_in_stage)?;
        w.field("age", &self.age)?;
        w.field("tempo", &self.tempo)?;
        w.field("style", &self.style)?;
        w.field("target", &self.target)?;
        w.field("speed", &self.speed)?;
        w.field("curve", &self.curve)?;
        w.floats("alpha", &self.alpha)?;
        w.floats("ramp_start", &self.ramp_start)?;
        w.floats("ramp_end", &self.ramp_end)?;
        w.field("ramp_steps", &self.ramp_steps)?;
        w.field("ramp_done", &self.ramp_done)?;
        w.value("isolated", self.isolated.snapshot(subject)?);
        w.value("contribution", self.contribution.snapshot(subject)?);
        Ok(w.finish())
    }

    /// A seed read back from [`snapshot`](Self::snapshot)'s object, every table index checked
    /// against its table.
    ///
    /// # Errors
    /// [`Error::Invalid`](crate::Error::Invalid) naming the field that is missing, unknown, of
    /// the wrong type or out of range.
    pub(crate) fn restore(mut r: SnapshotReader<'_>) -> Result<Self> {
        let blueprint = r.index("blueprint", NUM_BLUEPRINTS)?;
        let quality: f32 = r.floats("quality")?;
        if !(-1.0..=1.0).contains(&quality) {
            return Err(r.error("quality", format!("{quality} is outside -1..=1")));
        }
        let stage = r.field("stage")?;
        let steps_in_stage = r.field("steps_in_stage")?;
        let age = r.field("age")?;
        let tempo = r.index("tempo", TEMPO_GAIN.len())?;
        let style = r.index("style", STYLE_SHOCK.len())?;
        let target = r.index("target", ALPHA_TARGETS.len())?;
        let speed = r.index("speed", ALPHA_SPEED_STEPS.len())?;
        let curve = r.index("curve", CURVE_NAMES.len())?;
        let alpha = r.floats("alpha")?;
        let ramp_start = r.floats("ramp_start")?;
        let ramp_end = r.floats("ramp_end")?;
        let ramp_steps: usize = r.field("ramp_steps")?;
        if ramp_steps != 0 && !ALPHA_SPEED_STEPS.contains(&ramp_steps) {
            return Err(r.error(
                "ramp_steps",
                format!("{ramp_steps} is neither 0 nor one of {ALPHA_SPEED_STEPS:?}"),
            ));
        }
        // A ramp never runs past its end: `tick` stops counting there.
        let ramp_done = r.index("ramp_done", ramp_steps + 1)?;
        let isolated = Telemetry::restore(r.object("isolated")?)?;
        let contribution = Telemetry::restore(r.object("contribution")?)?;
        r.finish()?;
        Ok(Self {
            blueprint,
            quality,
            stage,
            steps_in_stage,
            age,
            tempo,
            style,
            target,
            speed,
            curve,
            alpha,
            ramp_start,
            ramp_end,
            ramp_steps,
            ramp_done,
            isolated,
            contribution,
        })
    }
}

/// `quality` scaled by the tempo's gain and the style's gain for its sign.
pub fn effective_quality(quality: f32, tempo: usize, style: usize) -> f32 {
    let style_gain = if quality >= 0.0 {
        STYLE_GAIN_POSITIVE[style]
    } else {
        STYLE_GAIN_NEGATIVE[style]
    };
    quality * TEMPO_GAIN[tempo] * style_gain
}
