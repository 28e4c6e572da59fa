//! The GRPO loop (Shao et al., "DeepSeekMath", 2024, Algorithm 1, with TRL's `GRPOTrainer`
//! semantics) for a memory-operation policy: an OLMoE encoder with a [`MemoryActionHead`]
//! (crate::olmoe::MemoryActionHead).
//!
//! One batch:
//!
//! 1. draw `tasks_per_batch` tasks and run a group of `num_generations` rollouts of each, all in
//!    lockstep, sampling operations from the current policy; every rollout is a "completion",
//!    its steps are the "tokens" and its log-probs are recorded as data (π_old);
//! 2. store the completions in the shared [`RolloutBuffer`] (one env column per completion,
//!    right-padded, with the state texts and, for a frozen encoder, the state embeddings), pay
//!    each its terminal reward and set its group-relative advantage on all its steps;
//! 3. score the chosen operations once with the frozen reference policy (data);
//! 4. take `num_iterations` AdamW steps on the GRPO loss of the whole batch, each with the
//!    log-probs recomputed by the policy (the gradient flows through them into the head and,
//!    when it is trained, the encoder), a global gradient-norm clip, and — with
//!    `sync_ref_model` — a reference re-sync every `ref_model_sync_steps` optimizer steps.
//!
//! Every random choice of batch `b` comes from RNGs seeded by `(seed, b)`, so a resumed run
//! repeats the uninterrupted one.

use std::collections::HashMap;

use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use super::advantages::group_advantages;
use super::config::GrpoConfig;
use super::loss::{GrpoLossInputs, GrpoLossOutput, GrpoMetrics, grpo_loss};
use super::memory_env::{MemoryEnv, MemoryEvaluation, MemoryTask, NUM_MEMORY_OPS};
use super::reference::mix_into;
use super::retrieval::SharedEmbedder;
use super::rollout::{Choice, Rollout, host, run_lockstep, summarize};
use super::trainer_config::GrpoTrainerConfig;
use crate::buffer::{RolloutBuffer, RolloutShape, SequenceBatch, StepExtras, Transition};
use crate::error::{Error, Result};
use crate::olmoe::OlmoePolicy;
use crate::optim::clip_grad_norm;

/// How far a run has come: what a checkpoint needs besides the networks and the optimizer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrpoProgress {
    /// Batches completed.
    pub batches: usize,
    /// AdamW steps taken (`batches · num_iterations`); the reference re-sync counts these.
    pub optimizer_steps: usize,
    /// Rollouts collected.
    pub episodes: usize,
}

/// What the rollouts of one batch achieved (sampled operations, not the greedy policy).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RolloutStats {
    /// Rollouts in the batch.
    pub num_completions: usize,
    /// Mean terminal reward.
    pub mean_reward: f32,
    /// Standard deviation of the rewards over the batch (Bessel-corrected).
    pub reward_std: f32,
    /// Fraction of rollouts in which every request was answered.
    pub success_rate: f32,
    /// Mean `answer` term.
    pub mean_answer: f32,
    /// Mean rollout length in steps.
    pub mean_length: f32,
    /// Mean entropy (nats) of the sampling distribution over the steps.
    pub entropy: f32,
    /// Fraction of groups whose rewards are all equal (no learning signal; TRL's
    /// `frac_reward_zero_std`).
    pub frac_reward_zero_std: f32,
}

/// What one batch logged: the rollouts, the loss metrics averaged over its `num_iterations`
/// optimizer steps (TRL's names), and the evaluation when one was due.
#[derive(Debug, Clone, PartialEq)]
pub struct GrpoBatchLog {
    /// Batches completed, this one included.
    pub batch: usize,
    /// AdamW steps taken so far.
    pub optimizer_steps: usize,
    /// Rollouts collected so far.
    pub episodes: usize,
    /// The batch's rollouts.
    pub rollouts: RolloutStats,
    /// Mean loss over the optimizer steps.
    pub loss: f32,
    /// Mean KL to the reference (k3, bias-corrected when configured) over the optimizer steps.
    pub kl: f32,
    /// Mean fraction of low-clipped steps.
    pub clip_ratio_low_mean: f32,
    /// Smallest per-completion fraction of low-clipped steps over the optimizer steps.
    pub clip_ratio_low_min: f32,
    /// Mean fraction of high-clipped steps.
    pub clip_ratio_high_mean: f32,
    /// Largest per-completion fraction of high-clipped steps over the optimizer steps.
    pub clip_ratio_high_max: f32,
    /// Mean fraction of clipped steps.
    pub clip_ratio_region_mean: f32,
    /// Mean global gradient norm before clipping.
    pub grad_norm: f32,
    /// The learning rate.
    pub learning_rate: f64,
    /// Greedy success rate on the evaluation tasks, when this batch evaluated.
    pub eval: Option<MemoryEvaluation>,
}

/// Data of the collected batch that is not in the buffer.
#[derive(Debug, Clone)]
struct CollectedBatch {
    /// Log-probs of the chosen operations under the reference policy, `[N, T]` batch-major
    /// (0 under padding).
    ref_log_probs: Vec<f32>,
}

/// GRPO over an [`OlmoePolicy`] on the memory environment (see the module documentation).
pub struct GrpoTrainer {
    config: GrpoTrainerConfig,
    /// Always `Some` between optimizer steps.
    policy: Option<OlmoePolicy>,
    /// A frozen copy of the initial policy on the plain device (no autodiff, no gradients).
    reference: OlmoePolicy,
    optimizer: ModuleOptimizer,
    embedder: SharedEmbedder,
    buffer: RolloutBuffer,
    batch: Option<CollectedBatch>,
    progress: GrpoProgress,
}

impl std::fmt::Debug for GrpoTrainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpoTrainer")
            .field("config", &self.config)
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

/// A deterministic seed per `(seed, batch, stream)` (SplitMix64), so that no RNG state needs to
/// be checkpointed.
fn batch_seed(seed: u64, batch: usize, stream: u64) -> u64 {
    let mut z = seed
        ^ (batch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The AdamW of a config (burn's, with TRL's hyperparameter names mapped onto it).
pub(crate) fn adamw(grpo: &GrpoConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_beta_1(grpo.adam_beta1 as f32)
        .with_beta_2(grpo.adam_beta2 as f32)
        .with_epsilon(grpo.adam_epsilon as f32)
        .with_weight_decay(grpo.weight_decay as f32)
        .init()
}

impl GrpoTrainer {
    /// A trainer for `policy`, which must have an action head. The policy is moved to its
    /// device's autodiff twin and to training mode; its encoder is frozen when
    /// `config.freeze_encoder` (and made trainable otherwise). The reference policy is a frozen
    /// copy of it as given, and the environment's embedder is built from its encoder as given.
    ///
    /// # Errors
    /// [`Error::MissingActionHead`] when the policy has no action head (GRPO would have nothing
    /// to train); [`Error::Invalid`] naming a config field out of range.
    pub fn new(policy: OlmoePolicy, config: GrpoTrainerConfig) -> Result<Self> {
        if !policy.has_action_head() {
            return Err(Error::MissingActionHead);
        }
        config.validate()?;
        let mut policy = policy;
        if let Some(max_length) = config.max_length {
            policy.encoder = policy.encoder.with_max_length(max_length)?;
        }
        let embedder = config.retrieval.build(&policy.encoder);
        let reference = policy.valid();
        let optimizer = adamw(&config.grpo);
        Self::restored(
            policy,
            reference,
            embedder,
            config,
            optimizer,
            GrpoProgress::default(),
        )
    }

    /// A trainer from every part of a run (what a checkpoint restores).
    pub(crate) fn restored(
        policy: OlmoePolicy,
        reference: OlmoePolicy,
        embedder: SharedEmbedder,
        config: GrpoTrainerConfig,
        optimizer: ModuleOptimizer,
        progress: GrpoProgress,
    ) -> Result<Self> {
        if !policy.has_action_head() || !reference.has_action_head() {
            return Err(Error::MissingActionHead);
        }
        config.validate()?;
        let device = policy.encoder.model.device();
        let mut policy = if device.is_autodiff() {
            policy.train()
        } else {
            policy.fork(&device.autodiff()).train()
        };
        policy.encoder = policy.encoder.set_require_grad(!config.freeze_encoder);
        let reference = if reference.encoder.model.device().is_autodiff() {
            reference.valid()
        } else {
            reference
        };
        let hidden = policy.encoder.hidden_size();
        let buffer = RolloutBuffer::new(RolloutShape {
            num_steps: config.env.max_steps(),
            num_envs: config.num_completions(),
            // The frozen encoder's state embeddings are stored as the observations.
            d_observation: if config.freeze_encoder { hidden } else { 0 },
            num_categorical: 0,
            head_sizes: vec![NUM_MEMORY_OPS],
            num_layers: 0,
            d_hidden: 0,
        });
        Ok(Self {
            config,
            policy: Some(policy),
            reference,
            optimizer,
            embedder,
            buffer,
            batch: None,
            progress,
        })
    }

    /// The settings.
    pub fn config(&self) -> &GrpoTrainerConfig {
        &self.config
    }

    /// The policy being trained (on its autodiff device).
    pub fn policy(&self) -> &OlmoePolicy {
        self.policy
            .as_ref()
            .expect("the policy is present between optimizer steps")
    }

    /// The frozen reference policy (plain device, no gradients).
    pub fn reference(&self) -> &OlmoePolicy {
        &self.reference
    }

    /// The rollout buffer holding the last collected batch.
    pub fn buffer(&self) -> &RolloutBuffer {
        &self.buffer
    }

    /// The progress so far.
    pub fn progress(&self) -> &GrpoProgress {
        &self.progress
    }

    pub(crate) fn optimizer(&self) -> &ModuleOptimizer {
        &self.optimizer
    }

    /// A memory environment with the run's settings and embedder (to evaluate other policies
    /// on the same footing, e.g. a random one).
    ///
    /// # Errors
    /// As [`MemoryEnv::new`].
    pub fn memory_env(&self) -> Result<MemoryEnv<SharedEmbedder>> {
        MemoryEnv::new(self.config.env.clone(), self.embedder.clone())
    }

    /// Runs batches until `num_batches` are done, calling `on_batch` after each.
    ///
    /// # Errors
    /// Those of [`step`](Self::step) and of `on_batch`.
    pub fn train(
        &mut self,
        num_batches: usize,
        mut on_batch: impl FnMut(&Self, &GrpoBatchLog) -> Result<()>,
    ) -> Result<()> {
        while self.progress.batches < num_batches {
            let log = self.step()?;
            on_batch(self, &log)?;
        }
        Ok(())
    }

    /// One batch: collect, optimize `num_iterations` times, and evaluate when due.
    ///
    /// # Errors
    /// Those of [`collect`](Self::collect), [`optimize`](Self::optimize) and
    /// [`evaluate`](Self::evaluate).
    pub fn step(&mut self) -> Result<GrpoBatchLog> {
        let rollouts = self.collect()?;
        let metrics = self.optimize()?;
        self.progress.batches += 1;
        self.progress.episodes += rollouts.num_completions;
        let eval = if self.config.eval_every > 0
            && self.progress.batches.is_multiple_of(self.config.eval_every)
        {
            Some(self.evaluate(self.config.eval_episodes, self.config.eval_seed)?)
        } else {
            None
        };
        let n = metrics.len().max(1) as f32;
        let mean = |f: fn(&(GrpoMetrics, f32)) -> f32| metrics.iter().map(f).sum::<f32>() / n;
        Ok(GrpoBatchLog {
            batch: self.progress.batches,
            optimizer_steps: self.progress.optimizer_steps,
            episodes: self.progress.episodes,
            rollouts,
            loss: mean(|m| m.0.loss),
            kl: mean(|m| m.0.kl.unwrap_or(0.0)),
            clip_ratio_low_mean: mean(|m| m.0.clip_ratio_low_mean),
            clip_ratio_low_min: metrics
                .iter()
                .map(|m| m.0.clip_ratio_low_min)
                .fold(f32::INFINITY, f32::min),
            clip_ratio_high_mean: mean(|m| m.0.clip_ratio_high_mean),
            clip_ratio_high_max: metrics
                .iter()
                .map(|m| m.0.clip_ratio_high_max)
                .fold(0.0, f32::max),
            clip_ratio_region_mean: mean(|m| m.0.clip_ratio_region_mean),
            grad_norm: mean(|m| m.1),
            learning_rate: self.config.grpo.learning_rate,
            eval,
        })
    }

    /// Collects the next batch into the buffer: groups of rollouts sampled from the current
    /// policy, their old log-probs, rewards, group-relative advantages and reference log-probs.
    ///
    /// # Errors
    /// Encoder, head and environment errors; those of [`group_advantages`] and of the buffer.
    pub fn collect(&mut self) -> Result<RolloutStats> {
        let config = self.config.clone();
        let grpo = &config.grpo;
        let batch = self.progress.batches;
        let mut task_rng = StdRng::seed_from_u64(batch_seed(grpo.seed, batch, 0));
        let mut sample_rng = StdRng::seed_from_u64(batch_seed(grpo.seed, batch, 1));
        let mut tasks = Vec::with_capacity(config.num_completions());
        for _ in 0..config.tasks_per_batch {
            let task = MemoryTask::sample(&config.env, &mut task_rng)?;
            tasks.extend(std::iter::repeat_n(task, grpo.num_generations));
        }
        let actor = self.policy().valid();
        let rollouts = run_lockstep(
            &actor,
            &config.env,
            &self.embedder,
            tasks,
            Choice::Sample {
                rng: &mut sample_rng,
                temperature: grpo.temperature,
            },
            config.encode_batch_size,
        )?;
        let rewards: Vec<f32> = rollouts.iter().map(|r| r.reward.total()).collect();
        let advantages = group_advantages(&rewards, grpo.num_generations, grpo.scale_rewards)?;
        self.fill_buffer(&rollouts)?;
        self.buffer
            .set_completion_advantages(&advantages.advantages)?;

        let seq = self.sequences()?;
        let plain = self.reference.encoder.model.device();
        let features = self.features(&self.reference, &seq, &plain)?;
        let reference = chosen_log_probs(&self.reference, features, &seq, grpo.temperature)?;
        let mut ref_log_probs = host(reference)?;
        for (value, &valid) in ref_log_probs.iter_mut().zip(&seq.valid) {
            if !valid {
                *value = 0.0;
            }
        }
        let stats = rollout_stats(
            &rollouts,
            &rewards,
            &advantages.is_std_zero,
            grpo.num_generations,
        );
        self.batch = Some(CollectedBatch { ref_log_probs });
        Ok(stats)
    }

    /// Stores the rollouts step by step: completion `e` is env column `e`; its terminal reward
    /// is broadcast to each of its steps (SPEC §8) and its last step is `terminated`.
    fn fill_buffer(&mut self, rollouts: &[Rollout]) -> Result<()> {
        let n = rollouts.len();
        let num_steps = self.buffer.shape().num_steps;
        let d_observation = self.buffer.shape().d_observation;
        if let Some(longest) = rollouts.iter().map(Rollout::len).max()
            && longest > num_steps
        {
            return Err(Error::invalid(
                "max_steps",
                format!("a rollout has {longest} steps, the buffer holds {num_steps}"),
            ));
        }
        self.buffer.clear();
        for t in 0..num_steps {
            let valid: Vec<bool> = rollouts.iter().map(|r| t < r.len()).collect();
            let mut observations = vec![0.0; n * d_observation];
            let mut texts = vec![String::new(); n];
            let mut actions = vec![0; n];
            let mut log_probs = vec![0.0; n];
            let mut rewards = vec![0.0; n];
            let mut terminated = vec![false; n];
            for (e, rollout) in rollouts.iter().enumerate().filter(|(e, _)| valid[*e]) {
                if d_observation > 0 {
                    observations[e * d_observation..(e + 1) * d_observation]
                        .copy_from_slice(&rollout.embeddings[t]);
                }
                texts[e].clone_from(&rollout.state_texts[t]);
                actions[e] = rollout.ops[t];
                log_probs[e] = rollout.log_probs[t];
                rewards[e] = rollout.reward.total();
                terminated[e] = t + 1 == rollout.len();
            }
            let starts = vec![t == 0; n];
            let zeros = vec![0.0; n];
            let transition = Transition {
                observations: &observations,
                categorical: &[],
                episode_starts: &starts,
                masks: &[vec![true; n * NUM_MEMORY_OPS]],
                actions: &[actions],
                log_probs: &[log_probs],
                values: &zeros,
                rewards: &rewards,
                terminated: &terminated,
                truncated: &vec![false; n],
                terminal_values: &zeros,
                hidden: &[],
                cell: &[],
            };
            self.buffer.push_with(
                &transition,
                StepExtras {
                    valid: Some(&valid),
                    state_texts: Some(&texts),
                },
            )?;
        }
        Ok(())
    }

    /// Every stored completion, batch-major.
    fn sequences(&self) -> Result<SequenceBatch> {
        let all: Vec<usize> = (0..self.buffer.shape().num_envs).collect();
        self.buffer.sequences(&all)
    }

    /// The state embedding of every cell, batch-major `[N·T, hidden]`, on `device`: the stored
    /// embeddings when the encoder is frozen, otherwise the stored texts encoded by `policy`
    /// (each distinct text once, with gradients on an autodiff device). Padding cells get an
    /// arbitrary row; the loss masks them.
    fn features(
        &self,
        policy: &OlmoePolicy,
        seq: &SequenceBatch,
        device: &Device,
    ) -> Result<Tensor<2>> {
        let hidden = policy.encoder.hidden_size();
        let cells = seq.batch * seq.time;
        if self.config.freeze_encoder {
            return Ok(Tensor::from_data(
                TensorData::new(seq.observations.clone(), [cells, hidden]),
                device,
            ));
        }
        let mut unique: Vec<&str> = Vec::new();
        let mut index: HashMap<&str, i64> = HashMap::new();
        let rows: Vec<i64> = seq
            .state_texts
            .iter()
            .zip(&seq.valid)
            .map(|(text, &valid)| {
                if !valid {
                    return 0;
                }
                *index.entry(text.as_str()).or_insert_with(|| {
                    unique.push(text.as_str());
                    unique.len() as i64 - 1
                })
            })
            .collect();
        if unique.is_empty() {
            return Err(Error::invalid(
                "rollout buffer",
                "the batch has no steps to encode",
            ));
        }
        let embeddings = unique
            .chunks(self.config.encode_batch_size)
            .map(|chunk| policy.encode_batch(chunk))
            .collect::<Result<Vec<_>>>()?;
        let embeddings = Tensor::cat(embeddings, 0);
        let rows =
            Tensor::<1, Int>::from_data(TensorData::new(rows, [cells]), &embeddings.device());
        Ok(embeddings.select(0, rows))
    }

    /// The GRPO loss of the collected batch under the run's [`GrpoConfig`], with gradients to
    /// the policy through its recomputed log-probs.
    ///
    /// # Errors
    /// As [`loss_with`](Self::loss_with).
    pub fn loss(&self) -> Result<GrpoLossOutput> {
        self.loss_with(&self.config.grpo)
    }

    /// The GRPO loss of the collected batch under `grpo` (e.g. another `beta`): the policy's
    /// log-probs of the stored operations (recomputed, differentiable), the old log-probs
    /// recorded at collection and the reference's (data), the advantages and completion mask
    /// from the buffer.
    ///
    /// # Errors
    /// [`Error::Invalid`] before the first [`collect`](Self::collect); encoder and head errors;
    /// those of [`grpo_loss`].
    pub fn loss_with(&self, grpo: &GrpoConfig) -> Result<GrpoLossOutput> {
        let batch = self.batch.as_ref().ok_or_else(|| {
            Error::invalid(
                "grpo trainer",
                "no batch collected yet: call collect() first",
            )
        })?;
        let policy = self.policy();
        let head = policy.head.as_ref().ok_or(Error::MissingActionHead)?;
        let device = head.hidden.weight.device();
        let seq = self.sequences()?;
        let features = self.features(policy, &seq, &device)?;
        let log_probs = chosen_log_probs(policy, features, &seq, grpo.temperature)?;
        let dims = [seq.batch, seq.time];
        let data =
            |values: Vec<f32>| Tensor::<2>::from_data(TensorData::new(values, dims), &device);
        // Every completion has a first step, and its advantage is on all of its steps.
        let advantages: Vec<f32> = (0..seq.batch)
            .map(|e| seq.advantages[e * seq.time])
            .collect();
        grpo_loss(
            grpo,
            GrpoLossInputs {
                log_probs,
                old_log_probs: data(seq.log_probs[0].clone()),
                ref_log_probs: Some(data(batch.ref_log_probs.clone())),
                advantages: Tensor::from_data(TensorData::new(advantages, [seq.batch]), &device),
                completion_mask: Tensor::<2, Bool>::from_data(
                    TensorData::new(seq.valid.clone(), dims),
                    &device,
                ),
                num_items_in_batch: None,
            },
        )
    }

    /// `num_iterations` AdamW steps on the collected batch; returns each step's metrics and
    /// gradient norm before clipping.
    ///
    /// # Errors
    /// Those of [`loss`](Self::loss); [`Error::NonFinite`] when the gradient norm is not finite
    /// (the step is not taken).
    pub fn optimize(&mut self) -> Result<Vec<(GrpoMetrics, f32)>> {
        let grpo = self.config.grpo.clone();
        let mut out = Vec::with_capacity(grpo.num_iterations);
        for _ in 0..grpo.num_iterations {
            let loss = self.loss()?;
            let policy = self.policy();
            let mut grads = GradientsParams::from_grads(loss.loss.backward(), policy);
            let grad_norm = clip_grad_norm(policy, &mut grads, grpo.max_grad_norm as f32);
            if !grad_norm.is_finite() {
                return Err(Error::NonFinite {
                    name: "grpo gradient norm".into(),
                    row: self.progress.optimizer_steps,
                });
            }
            let policy = self.policy.take().expect("present between steps");
            self.policy = Some(self.optimizer.step(grpo.learning_rate, policy, grads));
            self.progress.optimizer_steps += 1;
            if grpo.sync_ref_model
                && self
                    .progress
                    .optimizer_steps
                    .is_multiple_of(grpo.ref_model_sync_steps)
            {
                self.sync_reference()?;
            }
            out.push((loss.metrics, grad_norm));
        }
        Ok(out)
    }

    /// `ref ← α·policy + (1 − α)·ref` with `α = ref_model_mixup_alpha`. With a frozen encoder
    /// only the heads differ, so only the head is mixed.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the reference is not a copy of the policy.
    pub fn sync_reference(&mut self) -> Result<()> {
        let alpha = self.config.grpo.ref_model_mixup_alpha;
        let policy = self.policy.as_ref().expect("present between steps");
        let (Some(reference_head), Some(policy_head)) =
            (self.reference.head.take(), policy.head.as_ref())
        else {
            return Err(Error::MissingActionHead);
        };
        self.reference.head = Some(mix_into(reference_head, policy_head, alpha)?);
        if !self.config.freeze_encoder {
            let encoder = self.reference.encoder.clone();
            self.reference.encoder = mix_into(encoder, &policy.encoder, alpha)?;
        }
        Ok(())
    }

    /// Deterministic evaluation: `num_episodes` tasks drawn from `StdRng::seed_from_u64(seed)`,
    /// the most likely operation at every step.
    ///
    /// # Errors
    /// [`Error::Invalid`] for 0 episodes; encoder, head and environment errors.
    pub fn evaluate(&self, num_episodes: usize, seed: u64) -> Result<MemoryEvaluation> {
        if num_episodes == 0 {
            return Err(Error::invalid("num_episodes", "must be at least 1"));
        }
        let mut rng = StdRng::seed_from_u64(seed);
        let tasks = (0..num_episodes)
            .map(|_| MemoryTask::sample(&self.config.env, &mut rng))
            .collect::<Result<Vec<_>>>()?;
        let rollouts = run_lockstep(
            &self.policy().valid(),
            &self.config.env,
            &self.embedder,
            tasks,
            Choice::Argmax,
            self.config.encode_batch_size,
        )?;
        Ok(summarize(&rollouts))
    }
}

/// Log-probs of the stored operations, `[N, T]`, from `softmax(logits / temperature)`.
fn chosen_log_probs(
    policy: &OlmoePolicy,
    features: Tensor<2>,
    seq: &SequenceBatch,
    temperature: f64,
) -> Result<Tensor<2>> {
    let cells = seq.batch * seq.time;
    let logits = policy
        .action_logits(&features)?
        .div_scalar(temperature as f32);
    let actions: Vec<i64> = seq.actions[0].iter().map(|&a| a as i64).collect();
    let actions =
        Tensor::<2, Int>::from_data(TensorData::new(actions, [cells, 1]), &logits.device());
    Ok(log_softmax(logits, 1)
        .gather(1, actions)
        .reshape([seq.batch, seq.time]))
}

fn rollout_stats(
    rollouts: &[Rollout],
    rewards: &[f32],
    is_std_zero: &[bool],
    num_generations: usize,
) -> RolloutStats {
    let n = rollouts.len().max(1) as f32;
    let mean_reward = rewards.iter().sum::<f32>() / n;
    let reward_std = if rewards.len() > 1 {
        (rewards
            .iter()
            .map(|r| (r - mean_reward) * (r - mean_reward))
            .sum::<f32>()
            / (rewards.len() - 1) as f32)
            .sqrt()
    } else {
        0.0
    };
    let num_steps: usize = rollouts.iter().map(Rollout::len).sum();
    let num_groups = (rollouts.len() / num_generations).max(1);
    RolloutStats {
        num_completions: rollouts.len(),
        mean_reward,
        reward_std,
        success_rate: rollouts.iter().filter(|r| r.reward.success()).count() as f32 / n,
        mean_answer: rollouts.iter().map(|r| r.reward.answer).sum::<f32>() / n,
        mean_length: num_steps as f32 / n,
        entropy: rollouts
            .iter()
            .flat_map(|r| r.entropies.iter())
            .sum::<f32>()
            / num_steps.max(1) as f32,
        frac_reward_zero_std: is_std_zero
            .iter()
            .step_by(num_generations)
            .filter(|&&z| z)
            .count() as f32
            / num_groups as f32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_seeds_differ_by_batch_and_stream() {
        let seeds = [
            batch_seed(1, 0, 0),
            batch_seed(1, 0, 1),
            batch_seed(1, 1, 0),
            batch_seed(2, 0, 0),
        ];
        for i in 0..seeds.len() {
            for j in i + 1..seeds.len() {
                assert_ne!(seeds[i], seeds[j]);
            }
        }
        assert_eq!(batch_seed(1, 5, 1), batch_seed(1, 5, 1));
    }
}
