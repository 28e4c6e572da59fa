//! Reference returns of the `lifecycle` env over the same 200 seeded episodes: a uniformly random
//! policy (lower reference), always-WAIT, a ladder of simple fixed plans (what a learner picks up
//! first), a heuristic that reads only observations, and a scripted policy that knows the hidden
//! blueprint qualities (upper reference).
//!
//! Run with `cargo run --release --example lifecycle_reference`.

use factored_rl::action_space::reference::{
    ADVANCE, ALPHA_SPEED, ALPHA_TARGET, BLUEPRINT, FOSSILIZE, GERMINATE, OP, PRUNE, SIGMOID_ADD,
    SLOT, STYLE, TEMPO, WAIT,
};
use factored_rl::env::lifecycle::observation::{NUM_GLOBAL_FEATURES, NUM_SLOT_FEATURES, slot};
use factored_rl::env::lifecycle::{
    HeuristicPolicy, Lifecycle, LifecycleConfig, LifecyclePolicy, RandomPolicy, ScriptedPolicy,
    evaluate_policy,
};
use factored_rl::env::{Env, Observation, effective_mask_row};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// A fixed plan: germinate `blueprint` (a random one when `None`) with `style`, advance and
/// fossilize as soon as allowed, and — when `prune_poor` — prune seeds whose isolated telemetry
/// mean is below 0.15 after two samples.
struct Plan {
    blueprint: Option<usize>,
    style: usize,
    prune_poor: bool,
    rng: Xoshiro256PlusPlus,
}

impl LifecyclePolicy for Plan {
    fn act(
        &mut self,
        env: &Lifecycle,
        observation: &Observation,
        masks: &[Vec<bool>],
    ) -> factored_rl::Result<Vec<usize>> {
        let space = &env.spec().action_space;
        let conditional = env.conditional_masks();
        let applies = |op: usize, s: usize| masks[OP][op] && conditional[0].by_op[op][s];
        let feature = |s: usize, k: usize| {
            observation.features[NUM_GLOBAL_FEATURES + s * NUM_SLOT_FEATURES + k]
        };
        let choose = |op: usize, choices: &[(usize, usize)]| {
            let mut action = vec![0; space.num_heads()];
            action[OP] = op;
            let mut row = Vec::new();
            for head in (0..space.num_heads()).filter(|&h| h != OP) {
                effective_mask_row(space, masks, conditional, head, op, &mut row);
                let wanted = choices.iter().find(|c| c.0 == head).map(|c| c.1);
                action[head] = match wanted {
                    Some(a) if row[a] => a,
                    _ => row.iter().position(|&m| m).unwrap_or(0),
                };
            }
            action
        };
        if self.prune_poor {
            for s in 0..3 {
                let poor = feature(s, slot::ISOLATED_COUNT) >= 0.2
                    && feature(s, slot::ISOLATED_MEAN) < 0.15;
                if poor && applies(PRUNE, s) {
                    return Ok(choose(PRUNE, &[(SLOT, s), (ALPHA_SPEED, 3)]));
                }
            }
        }
        for op in [FOSSILIZE, ADVANCE] {
            if let Some(s) = (0..3).find(|&s| applies(op, s)) {
                return Ok(choose(op, &[(SLOT, s)]));
            }
        }
        if let Some(s) = (0..3).find(|&s| applies(GERMINATE, s)) {
            let blueprint = self
                .blueprint
                .unwrap_or_else(|| self.rng.random_range(0..13));
            return Ok(choose(
                GERMINATE,
                &[
                    (SLOT, s),
                    (BLUEPRINT, blueprint),
                    (STYLE, self.style),
                    (TEMPO, 1),
                    (ALPHA_TARGET, 2),
                ],
            ));
        }
        Ok(choose(WAIT, &[]))
    }
}

/// Always WAIT (with the first allowed slot: the slot does not matter under WAIT).
struct Idle;

impl LifecyclePolicy for Idle {
    fn act(
        &mut self,
        _env: &Lifecycle,
        _observation: &Observation,
        masks: &[Vec<bool>],
    ) -> factored_rl::Result<Vec<usize>> {
        let slot = masks[SLOT].iter().position(|&m| m).unwrap_or(0);
        Ok(vec![slot, 0, SIGMOID_ADD, 0, 0, 0, 0, WAIT])
    }
}

fn plan(blueprint: Option<usize>, style: usize, prune_poor: bool) -> Box<dyn LifecyclePolicy> {
    Box::new(Plan {
        blueprint,
        style,
        prune_poor,
        rng: Xoshiro256PlusPlus::seed_from_u64(7),
    })
}

fn main() -> factored_rl::Result<()> {
    let config = LifecycleConfig::default();
    let (episodes, seed) = (200, 1000);
    let (linear_add, sigmoid_add, gated_gate, multiply) = (0, 1, 2, 3);
    let policies: Vec<(&str, Box<dyn LifecyclePolicy>)> = vec![
        ("random", Box::new(RandomPolicy::new(1))),
        ("always WAIT", Box::new(Idle)),
        (
            "plan: random blueprint, LINEAR_ADD",
            plan(None, linear_add, false),
        ),
        (
            "plan: random blueprint, GATED_GATE",
            plan(None, gated_gate, false),
        ),
        (
            "plan: random blueprint, prune poor telemetry",
            plan(None, sigmoid_add, true),
        ),
        (
            "plan: blueprint 4 (best prior), SIGMOID_ADD",
            plan(Some(4), sigmoid_add, false),
        ),
        (
            "plan: blueprint 4 (best prior), MULTIPLY",
            plan(Some(4), multiply, false),
        ),
        (
            "heuristic (observations only)",
            Box::new(HeuristicPolicy::new(&config)),
        ),
        ("scripted (knows the qualities)", Box::new(ScriptedPolicy)),
    ];
    let mut rows = Vec::new();
    for (name, mut policy) in policies {
        rows.push((
            name,
            evaluate_policy(&config, policy.as_mut(), episodes, seed)?,
        ));
    }
    let scripted = rows.last().map_or(f64::NAN, |r| r.1.mean_return);
    println!("lifecycle reference returns: {episodes} episodes, seeds {seed}..");
    for (name, eval) in rows {
        println!(
            "{name:<46} mean_return={:>7.2} std={:>6.2} collapse_rate={:.3} of_scripted={:>5.2}",
            eval.mean_return,
            eval.std_return,
            eval.collapse_rate,
            eval.mean_return / scripted
        );
    }
    Ok(())
}
