//! The recurrent PPO loop: collect a rollout of whole env sequences with the op decided once per
//! step, compute GAE with truncation bootstrapping, then optimize the factored clipped surrogate
//! over minibatches of whole sequences replayed from their stored initial state.
//!
//! Implementation details follow "The 37 Implementation Details of Proximal Policy Optimization"
//! (Huang et al., 2022) where they apply: orthogonal init, Adam ε 1e-5, optional learning-rate
//! annealing, GAE, minibatches of whole env sequences for the LSTM, advantage normalization per
//! minibatch, clipped surrogate and clipped value loss, entropy bonus, global gradient clipping,
//! approximate-KL early stopping, optional observation normalization and reward scaling.

use std::collections::VecDeque;

use burn::module::Module;
use burn::optim::ModuleOptimizer;
use burn::tensor::{Device, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::config::PpoConfig;
use super::loss::{PpoLossCoefficients, PpoStats, PpoTargets, explained_variance, ppo_loss};
use super::normalize::{RewardScaler, RunningMeanStd};
use crate::buffer::{RolloutBuffer, RolloutShape, Transition};
use crate::env::{EpisodeRecord, VecBatch, VecEnv};
use crate::error::{Error, Result};
use crate::gae::GaeParams;
use crate::nn::LstmState;
use crate::optim::{FusedAdamConfig, clip_grad_norm};
use crate::policy::{
    ActInput, ActMode, EvaluateInput, FactoredRecurrentActorCritic,
    FactoredRecurrentActorCriticConfig, HostActor, HostLstmState, Sequences,
};

/// How many recent episodes the running statistics cover.
const RECENT_EPISODES: usize = 100;

/// What one PPO iteration (rollout + update) logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateLog {
    /// 1-based iteration number.
    pub iteration: usize,
    /// Env steps collected so far.
    pub global_step: usize,
    /// Learning rate used by this update.
    pub learning_rate: f64,
    /// Mean over optimized minibatches of the policy loss.
    pub policy_loss: f32,
    /// Mean value loss.
    pub value_loss: f32,
    /// Mean approximate KL (the joint KL of the factored policy per step).
    pub approx_kl: f32,
    /// Mean fraction of clipped ratios over relevant (head, step) pairs.
    pub clip_fraction: f32,
    /// Explained variance of the rollout's values for its returns.
    pub explained_variance: f32,
    /// Mean gradient norm before clipping.
    pub grad_norm: f32,
    /// Per head (name, mean normalized entropy over relevant steps).
    pub entropy: Vec<(String, f32)>,
    /// Per head (name, mean approximate KL).
    pub head_kl: Vec<(String, f32)>,
    /// Minibatch steps taken (fewer than epochs × minibatches after an early stop).
    pub minibatch_steps: usize,
    /// Fraction of the rollout's steps that chose each op.
    pub op_fractions: Vec<f32>,
    /// Whether the KL early stop ended this update.
    pub early_stopped: bool,
    /// Episodes that ended during the rollout.
    pub episodes: usize,
    /// Mean return of the last (up to 100) finished episodes (NaN-free: 0 before any).
    pub mean_return: f32,
    /// Mean length of the last finished episodes.
    pub mean_length: f32,
    /// Success rate of the last finished episodes, for tasks with a notion of success.
    pub success_rate: Option<f32>,
}

/// A finished episode, as the running statistics keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentEpisode {
    /// Undiscounted return.
    #[serde(with = "crate::float_bits")]
    pub episode_return: f32,
    /// Steps.
    pub length: usize,
    /// Success, for tasks with a notion of it.
    pub success: Option<bool>,
}

/// The serializable progress of a run (what a checkpoint needs besides the networks). Floats are
/// stored as bit patterns so that a resumed run continues bit for bit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerProgress {
    /// Iterations completed.
    pub iteration: usize,
    /// Env steps collected.
    pub global_step: usize,
    /// Recent finished episodes.
    pub recent: VecDeque<RecentEpisode>,
    /// Observation statistics, when normalizing.
    pub obs_norm: Option<RunningMeanStd>,
    /// Reward scaling statistics, when scaling.
    pub reward_scaler: Option<RewardScaler>,
}

/// Recurrent PPO over a [`VecEnv`] (see the module documentation).
pub struct PpoTrainer {
    config: PpoConfig,
    /// Always `Some` between optimizer steps.
    policy: Option<FactoredRecurrentActorCritic>,
    optimizer: ModuleOptimizer,
    envs: VecEnv,
    buffer: RolloutBuffer,
    batch: VecBatch,
    /// The recurrent state the next rollout starts from (acting runs on the host).
    state: HostLstmState,
    entropy_weights: Vec<f32>,
    progress: TrainerProgress,
}

impl std::fmt::Debug for PpoTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PpoTrainer")
            .field("config", &self.config)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// A deterministic per-iteration seed, so that no RNG state needs to be checkpointed.
fn iteration_seed(seed: u64, iteration: usize) -> u64 {
    // SplitMix64 of the pair.
    let mut z = seed ^ (iteration as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl PpoTrainer {
    /// A trainer for a fresh network built from `policy_config` on `device` (an autodiff device is
    /// made from it).
    ///
    /// # Errors
    /// [`Error::Invalid`] / [`Error::ShapeMismatch`] when the configs are invalid or the network
    /// does not fit the environment (observation width, categorical inputs, action space).
    pub fn new(
        policy_config: &FactoredRecurrentActorCriticConfig,
        config: PpoConfig,
        envs: VecEnv,
        device: &Device,
    ) -> Result<Self> {
        let policy = policy_config.init(&device.clone().autodiff())?.train();
        Self::with_policy(policy, config, envs)
    }

    /// A trainer for an existing network (moved to training mode on its autodiff device).
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_policy(
        policy: FactoredRecurrentActorCritic,
        config: PpoConfig,
        mut envs: VecEnv,
    ) -> Result<Self> {
        let optimizer = FusedAdamConfig::new()
            .with_epsilon(config.adam_epsilon)
            .init();
        let batch = envs.reset()?;
        let state = policy.host_actor().initial_state(config.num_envs);
        let progress = TrainerProgress {
            iteration: 0,
            global_step: 0,
            recent: VecDeque::new(),
            obs_norm: config
                .normalize_observations
                .then(|| RunningMeanStd::new(envs.spec().observation_size)),
            reward_scaler: config
                .scale_rewards
                .then(|| RewardScaler::new(config.num_envs, config.gamma)),
        };
        Self::restored(policy, config, envs, optimizer, batch, state, progress)
    }

    /// A trainer from every part of a run (what a checkpoint restores).
    pub(crate) fn restored(
        policy: FactoredRecurrentActorCritic,
        config: PpoConfig,
        envs: VecEnv,
        optimizer: ModuleOptimizer,
        batch: VecBatch,
        state: HostLstmState,
        progress: TrainerProgress,
    ) -> Result<Self> {
        config.validate()?;
        if envs.num_envs() != config.num_envs {
            return Err(Error::invalid(
                "num_envs",
                format!(
                    "the config asks for {} envs, the VecEnv has {}",
                    config.num_envs,
                    envs.num_envs()
                ),
            ));
        }
        check_fits(&policy, &envs)?;
        let device = policy.device();
        let policy = if device.is_autodiff() {
            policy.train()
        } else {
            policy.fork(&device.autodiff()).train()
        };
        let spec = envs.spec().clone();
        let entropy_weights = spec
            .action_space
            .heads()
            .iter()
            .map(|h| {
                config
                    .head_entropy_weights
                    .iter()
                    .find(|(name, _)| *name == h.name)
                    .map_or(1.0, |(_, w)| *w)
            })
            .collect();
        let pc = policy.config();
        let buffer = RolloutBuffer::new(RolloutShape {
            num_steps: config.num_steps,
            num_envs: config.num_envs,
            d_observation: spec.observation_size,
            num_categorical: spec.categorical_vocab.len(),
            head_sizes: spec.action_space.head_sizes(),
            num_layers: pc.num_lstm_layers,
            d_hidden: pc.d_hidden,
        });
        Ok(Self {
            config,
            policy: Some(policy),
            optimizer,
            envs,
            buffer,
            batch,
            state,
            entropy_weights,
            progress,
        })
    }

    pub(crate) fn optimizer(&self) -> &ModuleOptimizer {
        &self.optimizer
    }

    pub(crate) fn envs(&self) -> &VecEnv {
        &self.envs
    }

    pub(crate) fn next_batch(&self) -> &VecBatch {
        &self.batch
    }

    /// The recurrent state the next rollout starts from, on the host.
    pub(crate) fn recurrent_state_host(&self) -> (Vec<f32>, Vec<f32>) {
        (self.state.hidden.clone(), self.state.cell.clone())
    }

    /// The configuration.
    pub fn config(&self) -> &PpoConfig {
        &self.config
    }

    /// The network being trained (on its autodiff device).
    pub fn policy(&self) -> &FactoredRecurrentActorCritic {
        self.policy
            .as_ref()
            .expect("the policy is present between steps")
    }

    /// The progress so far.
    pub fn progress(&self) -> &TrainerProgress {
        &self.progress
    }

    /// Observation statistics, when normalizing (evaluation must normalize the same way).
    pub fn observation_normalizer(&self) -> Option<&RunningMeanStd> {
        self.progress.obs_norm.as_ref()
    }

    /// Runs `total_steps / steps_per_rollout` iterations (at least one; never more env steps than
    /// `total_steps` unless one rollout is larger), calling `on_update` after each.
    ///
    /// # Errors
    /// The errors of [`iterate`](Self::iterate) and of `on_update`.
    pub fn train(
        &mut self,
        total_steps: usize,
        mut on_update: impl FnMut(&Self, &UpdateLog) -> Result<()>,
    ) -> Result<()> {
        // CleanRL's schedule: whole rollouts that fit in the budget (at least one), so a run never
        // takes more env steps than it was given.
        let total_iterations = (total_steps / self.config.steps_per_rollout()).max(1);
        while self.progress.iteration < total_iterations {
            let log = self.iterate(total_iterations)?;
            on_update(self, &log)?;
        }
        Ok(())
    }

    /// One rollout and one update. `total_iterations` sets the learning-rate and clip-range
    /// annealing schedules.
    ///
    /// # Errors
    /// Environment errors, and [`Error::NonFinite`] when a loss or gradient is not finite.
    pub fn iterate(&mut self, total_iterations: usize) -> Result<UpdateLog> {
        let iteration = self.progress.iteration + 1;
        let mut rng = StdRng::seed_from_u64(iteration_seed(self.config.seed, iteration));
        let episodes = self.collect(&mut rng)?;
        let remaining = 1.0 - (iteration - 1) as f64 / total_iterations.max(1) as f64;
        let learning_rate = if self.config.anneal_lr {
            self.config.learning_rate * remaining
        } else {
            self.config.learning_rate
        };
        let clip_coef = if self.config.anneal_clip {
            self.config.clip_coef * remaining as f32
        } else {
            self.config.clip_coef
        };
        let mut log = self.update(&mut rng, learning_rate, clip_coef)?;
        let space = &self.envs.spec().action_space;
        let ops = self.buffer.actions(space.op_index());
        log.op_fractions = (0..space.num_ops())
            .map(|op| ops.iter().filter(|&&o| o == op).count() as f32 / ops.len().max(1) as f32)
            .collect();
        self.progress.iteration = iteration;
        log.iteration = iteration;
        log.global_step = self.progress.global_step;
        log.episodes = episodes;
        let recent = &self.progress.recent;
        let n = recent.len().max(1) as f32;
        log.mean_return = recent.iter().map(|r| r.episode_return).sum::<f32>() / n;
        log.mean_length = recent.iter().map(|r| r.length as f32).sum::<f32>() / n;
        let successes: Vec<bool> = recent.iter().filter_map(|r| r.success).collect();
        log.success_rate = (!successes.is_empty())
            .then(|| successes.iter().filter(|&&s| s).count() as f32 / successes.len() as f32);
        Ok(log)
    }

    fn normalized(&self, features: &[f32]) -> Vec<f32> {
        let mut features = features.to_vec();
        if let Some(norm) = &self.progress.obs_norm {
            norm.normalize(&mut features, 10.0);
        }
        features
    }

    /// Collects one rollout into the buffer and computes advantages; returns the number of
    /// episodes that ended.
    fn collect(&mut self, rng: &mut StdRng) -> Result<usize> {
        // Acting runs on a host copy of the network, whatever the training device: a few rows per
        // step are faster there than through a device's general matmuls (see `policy::HostActor`).
        let actor = self.policy().host_actor();
        let n = self.config.num_envs;
        let space = self.envs.spec().action_space.clone();
        let num_heads = space.num_heads();
        self.buffer.clear();
        let mut episodes = 0;
        for _ in 0..self.config.num_steps {
            if let Some(norm) = &mut self.progress.obs_norm {
                norm.update(&self.batch.features);
            }
            let observations = self.normalized(&self.batch.features);
            if self.config.reset_state_every_step {
                self.batch.episode_starts.fill(true);
            }
            let hidden = self.state.hidden.clone();
            let cell = self.state.cell.clone();
            let input = ActInput {
                observations: &observations,
                categorical: &self.batch.categorical,
                masks: &self.batch.masks,
                conditional_masks: &self.batch.conditional_masks,
                episode_starts: &self.batch.episode_starts,
            };
            let out = actor.act(&input, &self.state, ActMode::Stochastic, rng)?;
            let env_actions: Vec<Vec<usize>> = (0..n)
                .map(|e| (0..num_heads).map(|h| out.actions[h][e]).collect())
                .collect();
            let step = self.envs.step(&env_actions)?;
            let mut rewards = step.rewards.clone();
            if let Some(scaler) = &mut self.progress.reward_scaler {
                let done: Vec<bool> = step
                    .terminated
                    .iter()
                    .zip(&step.truncated)
                    .map(|(a, b)| *a || *b)
                    .collect();
                scaler.scale(&mut rewards, &done);
            }
            let terminal_values = self.truncation_values(&actor, &step, &out.state)?;
            self.buffer.push(&Transition {
                observations: &observations,
                categorical: &self.batch.categorical,
                episode_starts: &self.batch.episode_starts,
                masks: &out.masks,
                actions: &out.actions,
                log_probs: &out.log_probs,
                values: &out.values,
                rewards: &rewards,
                terminated: &step.terminated,
                truncated: &step.truncated,
                terminal_values: &terminal_values,
                hidden: &hidden,
                cell: &cell,
            })?;
            for EpisodeRecord {
                episode_return,
                length,
                success,
                ..
            } in &step.finished
            {
                if self.progress.recent.len() == RECENT_EPISODES {
                    self.progress.recent.pop_front();
                }
                self.progress.recent.push_back(RecentEpisode {
                    episode_return: *episode_return,
                    length: *length,
                    success: *success,
                });
                episodes += 1;
            }
            self.progress.global_step += n;
            self.batch = step.next;
            self.state = out.state;
        }
        let observations = self.normalized(&self.batch.features);
        if self.config.reset_state_every_step {
            self.batch.episode_starts.fill(true);
        }
        let last_values = actor.bootstrap_value(
            &ActInput {
                observations: &observations,
                categorical: &self.batch.categorical,
                masks: &self.batch.masks,
                conditional_masks: &self.batch.conditional_masks,
                episode_starts: &self.batch.episode_starts,
            },
            &self.state,
        )?;
        self.buffer.compute_returns_and_advantage(
            &last_values,
            GaeParams {
                gamma: self.config.gamma,
                lambda: self.config.gae_lambda,
            },
        )?;
        Ok(episodes)
    }

    /// The deterministic value of each truncated env's true final observation, from the state the
    /// step produced (before any reset); 0 elsewhere.
    fn truncation_values(
        &self,
        actor: &HostActor,
        step: &crate::env::VecStep,
        state_after: &HostLstmState,
    ) -> Result<Vec<f32>> {
        let n = self.config.num_envs;
        let mut values = vec![0.0; n];
        let rows: Vec<usize> = (0..n)
            .filter(|&e| step.truncated[e] && !step.terminated[e])
            .collect();
        if rows.is_empty() {
            return Ok(values);
        }
        let mut features = Vec::new();
        let mut categorical = Vec::new();
        let mut masks: Vec<Vec<bool>> = vec![Vec::new(); self.envs.spec().action_space.num_heads()];
        for &e in &rows {
            let missing = |what: &str| {
                Error::invalid(
                    "vec_env.step",
                    format!("env {e} truncated without its final {what}"),
                )
            };
            let obs = step.final_observations[e]
                .as_ref()
                .ok_or_else(|| missing("observation"))?;
            let final_masks = step.final_masks[e]
                .as_ref()
                .ok_or_else(|| missing("masks"))?;
            features.extend_from_slice(&obs.features);
            categorical.extend_from_slice(&obs.categorical);
            for (m, fm) in masks.iter_mut().zip(final_masks) {
                m.extend_from_slice(fm);
            }
        }
        let features = self.normalized(&features);
        let state = state_after.select_rows(&rows)?;
        let bootstrap = actor.bootstrap_value(
            &ActInput {
                observations: &features,
                categorical: &categorical,
                masks: &masks,
                conditional_masks: &[],
                episode_starts: &vec![self.config.reset_state_every_step; rows.len()],
            },
            &state,
        )?;
        for (&e, v) in rows.iter().zip(bootstrap) {
            values[e] = v;
        }
        Ok(values)
    }

    /// Optimizes the factored PPO loss over minibatches of whole env sequences.
    fn update(
        &mut self,
        rng: &mut StdRng,
        learning_rate: f64,
        clip_coef: f32,
    ) -> Result<UpdateLog> {
        let n = self.config.num_envs;
        let per_minibatch = n / self.config.num_minibatches;
        let heads: Vec<String> = self
            .envs
            .spec()
            .action_space
            .heads()
            .iter()
            .map(|h| h.name.clone())
            .collect();
        let coefs = PpoLossCoefficients {
            clip_coef,
            // The value clip keeps the configured range: SB3 schedules `clip_range_vf` apart from
            // `clip_range`, CleanRL never anneals it.
            value_clip: self.config.clip_value_loss.then_some(self.config.clip_coef),
            value_coef: self.config.value_coef,
            entropy_coef: self.config.entropy_coef,
            head_entropy_weights: self.entropy_weights.clone(),
        };
        let device = self.policy().device();
        let mut sums: Option<PpoStats> = None;
        let mut grad_norm_sum = 0.0;
        let mut steps = 0usize;
        let mut early_stopped = false;
        let mut envs: Vec<usize> = (0..n).collect();
        'epochs: for _ in 0..self.config.update_epochs {
            envs.shuffle(rng);
            for group in envs.chunks(per_minibatch) {
                let seq = self.buffer.sequences(group)?;
                let mut advantages = seq.advantages.clone();
                if self.config.normalize_advantages {
                    normalize(&mut advantages);
                }
                let layers = self.policy().config().num_lstm_layers;
                let d_hidden = self.policy().config().d_hidden;
                let state = LstmState {
                    hidden: Tensor::from_data(
                        TensorData::new(seq.initial_hidden.clone(), [layers, seq.batch, d_hidden]),
                        &device,
                    ),
                    cell: Tensor::from_data(
                        TensorData::new(seq.initial_cell.clone(), [layers, seq.batch, d_hidden]),
                        &device,
                    ),
                };
                let input = EvaluateInput {
                    sequences: Sequences {
                        batch: seq.batch,
                        time: seq.time,
                        observations: &seq.observations,
                        categorical: &seq.categorical,
                        episode_starts: &seq.episode_starts,
                    },
                    masks: &seq.masks,
                    actions: &seq.actions,
                };
                let targets = PpoTargets {
                    old_log_probs: &seq.log_probs,
                    advantages: &advantages,
                    returns: &seq.returns,
                    old_values: &seq.values,
                };
                let (mut grads, stats) =
                    self.policy()
                        .evaluate_with_gradients(&input, state, |eval| {
                            let loss = ppo_loss(eval, &targets, &coefs)?;
                            Ok((loss.total, loss.stats))
                        })?;
                if !(stats.policy_loss.is_finite() && stats.value_loss.is_finite()) {
                    return Err(Error::NonFinite {
                        name: "ppo loss".into(),
                        row: steps,
                    });
                }
                if let Some(target) = self.config.target_kl
                    && stats.approx_kl > 1.5 * target
                {
                    early_stopped = true;
                    accumulate(&mut sums, &stats);
                    break 'epochs;
                }
                let grad_norm =
                    clip_grad_norm(self.policy(), &mut grads, self.config.max_grad_norm);
                if !grad_norm.is_finite() {
                    return Err(Error::NonFinite {
                        name: "gradient norm".into(),
                        row: steps,
                    });
                }
                grad_norm_sum += grad_norm;
                // Moved (not cloned) through the optimizer, so Adam can update tensors in place.
                let policy = self
                    .policy
                    .take()
                    .expect("the policy is present between steps");
                self.policy = Some(self.optimizer.step(learning_rate, policy, grads));
                accumulate(&mut sums, &stats);
                steps += 1;
            }
        }
        let count = (steps + usize::from(early_stopped)).max(1) as f32;
        let stats = sums.unwrap_or(PpoStats {
            policy_loss: 0.0,
            value_loss: 0.0,
            entropy_per_head: vec![0.0; heads.len()],
            approx_kl_per_head: vec![0.0; heads.len()],
            approx_kl: 0.0,
            clip_fraction: 0.0,
        });
        Ok(UpdateLog {
            iteration: 0,
            global_step: 0,
            learning_rate,
            policy_loss: stats.policy_loss / count,
            value_loss: stats.value_loss / count,
            approx_kl: stats.approx_kl / count,
            clip_fraction: stats.clip_fraction / count,
            explained_variance: explained_variance(self.buffer.values(), self.buffer.returns()),
            grad_norm: grad_norm_sum / steps.max(1) as f32,
            entropy: heads
                .iter()
                .cloned()
                .zip(stats.entropy_per_head.iter().map(|e| e / count))
                .collect(),
            head_kl: heads
                .into_iter()
                .zip(stats.approx_kl_per_head.iter().map(|k| k / count))
                .collect(),
            minibatch_steps: steps,
            op_fractions: Vec::new(),
            early_stopped,
            episodes: 0,
            mean_return: 0.0,
            mean_length: 0.0,
            success_rate: None,
        })
    }
}

fn accumulate(sums: &mut Option<PpoStats>, stats: &PpoStats) {
    match sums {
        None => *sums = Some(stats.clone()),
        Some(s) => {
            s.policy_loss += stats.policy_loss;
            s.value_loss += stats.value_loss;
            s.approx_kl += stats.approx_kl;
            s.clip_fraction += stats.clip_fraction;
            s.entropy_per_head
                .iter_mut()
                .zip(&stats.entropy_per_head)
                .for_each(|(a, b)| *a += b);
            s.approx_kl_per_head
                .iter_mut()
                .zip(&stats.approx_kl_per_head)
                .for_each(|(a, b)| *a += b);
        }
    }
}

/// Zero mean, unit standard deviation (sample std + 1e-8, as CleanRL).
fn normalize(values: &mut [f32]) {
    let n = values.len() as f64;
    if n < 2.0 {
        return;
    }
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / (n - 1.0);
    let std = var.sqrt() + 1e-8;
    values
        .iter_mut()
        .for_each(|v| *v = ((*v as f64 - mean) / std) as f32);
}

/// Checks that the network's inputs and heads fit the environment.
fn check_fits(policy: &FactoredRecurrentActorCritic, envs: &VecEnv) -> Result<()> {
    let spec = envs.spec();
    let pc = policy.config();
    if pc.d_observation != spec.observation_size {
        return Err(Error::ShapeMismatch {
            name: format!("d_observation (env `{}`)", spec.name),
            expected: vec![spec.observation_size],
            found: vec![pc.d_observation],
        });
    }
    let cat = pc.categorical.as_ref().map_or(0, |c| c.num_inputs);
    if cat != spec.categorical_vocab.len() {
        return Err(Error::ShapeMismatch {
            name: format!("categorical inputs (env `{}`)", spec.name),
            expected: vec![spec.categorical_vocab.len()],
            found: vec![cat],
        });
    }
    if policy.space() != &spec.action_space {
        return Err(Error::invalid(
            "action_space",
            format!("the network's action space is not env `{}`'s", spec.name),
        ));
    }
    Ok(())
}
