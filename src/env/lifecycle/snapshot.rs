//! The checkpoint of a [`Lifecycle`] env: its settings, random generator, hidden qualities, slots,
//! host accuracy, counters, last-step telemetry and masks.

use serde_json::Value;

use super::config::{NUM_BLUEPRINTS, NUM_SLOTS};
use super::seed::Seed;
use super::{Lifecycle, NUM_OPS};
use crate::action_space::reference::SLOT;
use crate::env::snapshot::{SnapshotReader, SnapshotWriter};
use crate::error::Result;

/// The snapshot of `env` (see [`Env::snapshot`](crate::env::Env::snapshot)).
pub(super) fn snapshot(env: &Lifecycle) -> Result<Value> {
    let subject = format!("env `{}`", env.spec.name);
    let mut w = SnapshotWriter::new(&subject, &env.spec.name);
    w.field("config", &env.config)?;
    w.field("rng", &env.rng)?;
    w.floats("qualities", &env.qualities)?;
    let slots = env
        .slots
        .iter()
        .map(|slot| match slot {
            Some(seed) => seed.snapshot(&subject),
            None => Ok(Value::Null),
        })
        .collect::<Result<Vec<_>>>()?;
    w.value("slots", Value::Array(slots));
    w.floats("accuracy", &env.accuracy)?;
    w.field("steps", &env.steps)?;
    w.field("running", &env.running)?;
    w.floats("last_improvement", &env.last_improvement)?;
    w.floats("last_reward", &env.last_reward)?;
    w.floats("last_rent", &env.last_rent)?;
    w.floats("last_shock", &env.last_shock)?;
    w.field("germinations", &env.germinations)?;
    w.field("masks", &env.masks)?;
    w.field("conditional_masks", &env.conditional)?;
    Ok(w.finish())
}

/// Replaces `env`'s state by `snapshot`, or leaves it unchanged on error (see
/// [`Env::restore`](crate::env::Env::restore)).
pub(super) fn restore(env: &mut Lifecycle, snapshot: &Value) -> Result<()> {
    let subject = format!("env `{}`", env.spec.name);
    let mut r = SnapshotReader::open(snapshot, &subject, &env.spec.name)?;
    r.config("config", &env.config)?;
    let rng = r.field("rng")?;
    let qualities: [f32; NUM_BLUEPRINTS] = r.floats("qualities")?;
    if let Some(b) = qualities.iter().position(|q| !(-1.0..=1.0).contains(q)) {
        return Err(r.error(
            "qualities",
            format!("quality {b} ({}) is outside -1..=1", qualities[b]),
        ));
    }
    let mut slots: [Option<Seed>; NUM_SLOTS] = Default::default();
    for (slot, reader) in slots
        .iter_mut()
        .zip(r.optional_objects("slots", NUM_SLOTS)?)
    {
        *slot = reader.map(Seed::restore).transpose()?;
    }
    let accuracy: f32 = r.floats("accuracy")?;
    if !(0.0..=100.0).contains(&accuracy) {
        return Err(r.error("accuracy", format!("{accuracy} is outside 0..=100")));
    }
    let steps = r.field("steps")?;
    let running = r.field("running")?;
    let last_improvement = r.floats("last_improvement")?;
    let last_reward = r.floats("last_reward")?;
    let last_rent = r.floats("last_rent")?;
    let last_shock = r.floats("last_shock")?;
    let germinations = r.field("germinations")?;
    let (masks, conditional) =
        r.masks("masks", Some("conditional_masks"), &env.spec.action_space)?;
    // The env and its policies read the slot restriction as the one conditional mask.
    if conditional.len() != 1
        || conditional[0].head != SLOT
        || conditional[0].by_op.len() != NUM_OPS
    {
        return Err(r.error(
            "conditional_masks",
            "expected exactly one conditional mask, on the `slot` head",
        ));
    }
    r.finish()?;
    env.rng = rng;
    env.qualities = qualities;
    env.slots = slots;
    env.accuracy = accuracy;
    env.steps = steps;
    env.running = running;
    env.last_improvement = last_improvement;
    env.last_reward = last_reward;
    env.last_rent = last_rent;
    env.last_shock = last_shock;
    env.germinations = germinations;
    env.masks = masks;
    env.conditional = conditional;
    Ok(())
}
