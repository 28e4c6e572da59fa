//! Deterministic evaluation: argmax everywhere, one episode per environment copy.

use serde::{Deserialize, Serialize};

use super::normalize::RunningMeanStd;
use crate::env::{EnvConfigs, make_vec_env};
use crate::error::{Error, Result};
use crate::policy::{ActInput, FactoredRecurrentActorCritic};

/// The outcome of [`evaluate_deterministic`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Mean undiscounted return.
    pub mean_return: f32,
    /// Episodes played.
    pub episodes: usize,
    /// Mean episode length.
    pub mean_length: f32,
    /// Fraction of successful episodes, for tasks with a notion of success.
    pub success_rate: Option<f32>,
    /// Actions that the environment's mask forbade (checked independently of the network; always 0
    /// unless something is broken, and the environment rejects such a step anyway).
    pub masked_actions: usize,
    /// Every episode's return, in env order.
    pub returns: Vec<f32>,
}

/// Plays `episodes` episodes of env `name` with deterministic acting (the argmax op and argmax
/// actions under the masks), env `i` seeded with `seed + i`, observations normalized with
/// `obs_norm` when given.
///
/// # Errors
/// Environment and network errors; [`Error::Invalid`] for zero episodes.
pub fn evaluate_deterministic(
    policy: &FactoredRecurrentActorCritic,
    name: &str,
    configs: &EnvConfigs,
    episodes: usize,
    seed: u64,
    obs_norm: Option<&RunningMeanStd>,
) -> Result<EvalReport> {
    if episodes == 0 {
        return Err(Error::invalid("episodes", "must be at least 1"));
    }
    let policy = policy.host_actor();
    let mut envs = make_vec_env(name, configs, episodes, seed)?;
    let space = envs.spec().action_space.clone();
    let mut batch = envs.reset()?;
    let mut state = policy.initial_state(episodes);
    let mut returns: Vec<Option<(f32, usize, Option<bool>)>> = vec![None; episodes];
    let mut masked_actions = 0;
    while returns.iter().any(Option::is_none) {
        let mut observations = batch.features.clone();
        if let Some(norm) = obs_norm {
            norm.normalize(&mut observations, 10.0);
        }
        let out = policy.act_deterministic(
            &ActInput {
                observations: &observations,
                categorical: &batch.categorical,
                masks: &batch.masks,
                conditional_masks: &batch.conditional_masks,
                episode_starts: &batch.episode_starts,
            },
            &state,
        )?;
        for (h, head) in space.heads().iter().enumerate() {
            for e in 0..episodes {
                let action = out.actions[h][e];
                masked_actions += usize::from(!batch.masks[h][e * head.size + action]);
            }
        }
        let actions: Vec<Vec<usize>> = (0..episodes)
            .map(|e| (0..space.num_heads()).map(|h| out.actions[h][e]).collect())
            .collect();
        let step = envs.step(&actions)?;
        for record in &step.finished {
            returns[record.env].get_or_insert((
                record.episode_return,
                record.length,
                record.success,
            ));
        }
        batch = step.next;
        state = out.state;
    }
    let returns: Vec<(f32, usize, Option<bool>)> = returns.into_iter().flatten().collect();
    let n = returns.len() as f32;
    let successes: Vec<bool> = returns.iter().filter_map(|r| r.2).collect();
    Ok(EvalReport {
        mean_return: returns.iter().map(|r| r.0).sum::<f32>() / n,
        episodes,
        mean_length: returns.iter().map(|r| r.1 as f32).sum::<f32>() / n,
        success_rate: (!successes.is_empty())
            .then(|| successes.iter().filter(|&&s| s).count() as f32 / successes.len() as f32),
        masked_actions,
        returns: returns.iter().map(|r| r.0).collect(),
    })
}
