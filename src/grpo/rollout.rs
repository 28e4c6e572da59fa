//! Running many memory-environment episodes in lockstep with an [`OlmoePolicy`]: at every step
//! the state texts of all live episodes are embedded in batches (each distinct text once) and
//! scored by the action head in one forward pass. Used to collect GRPO's groups (sampling) and
//! to evaluate (argmax).

use std::collections::{HashMap, HashSet};

use burn::tensor::activation::log_softmax;
use burn::tensor::{Tensor, TensorData};
use rand::RngExt;
use rand::rngs::StdRng;

use super::memory_env::{
    MemoryEnv, MemoryEnvConfig, MemoryEvaluation, MemoryReward, MemoryStep, MemoryTask,
    NUM_MEMORY_OPS,
};
use super::retrieval::SharedEmbedder;
use crate::error::{Error, Result};
use crate::olmoe::OlmoePolicy;

/// How operations are chosen.
pub(crate) enum Choice<'a> {
    /// Sample from `softmax(logits / temperature)` with a host RNG (reproducible from its seed).
    Sample {
        /// The run's RNG for this batch.
        rng: &'a mut StdRng,
        /// The sampling temperature.
        temperature: f64,
    },
    /// The most likely operation (the lowest index among ties).
    Argmax,
}

/// One finished episode: what the policy read, chose and was paid.
#[derive(Debug, Clone)]
pub(crate) struct Rollout {
    /// The text read before each decision.
    pub state_texts: Vec<String>,
    /// The embedding of each state text, `[hidden]` each.
    pub embeddings: Vec<Vec<f32>>,
    /// The chosen operation of each step.
    pub ops: Vec<usize>,
    /// Log-prob of each chosen operation under the acting policy (logits divided by the
    /// temperature, as the loss computes them).
    pub log_probs: Vec<f32>,
    /// Entropy (nats) of the acting distribution at each step.
    pub entropies: Vec<f32>,
    /// The terminal reward.
    pub reward: MemoryReward,
}

impl Rollout {
    /// Number of steps (decisions).
    pub fn len(&self) -> usize {
        self.ops.len()
    }
}

/// Runs every task to its end with `actor` (an inference snapshot), one environment per task.
///
/// # Errors
/// Encoder, head and environment errors; [`Error::NonFinite`] for non-finite logits.
pub(crate) fn run_lockstep(
    actor: &OlmoePolicy,
    env_config: &MemoryEnvConfig,
    embedder: &SharedEmbedder,
    tasks: Vec<MemoryTask>,
    mut choice: Choice<'_>,
    encode_batch_size: usize,
) -> Result<Vec<Rollout>> {
    let temperature = match &choice {
        Choice::Sample { temperature, .. } => *temperature,
        Choice::Argmax => 1.0,
    };
    let device = actor.encoder.model.device();
    let hidden = actor.encoder.hidden_size();
    let mut envs = Vec::with_capacity(tasks.len());
    let mut texts: Vec<Option<String>> = Vec::with_capacity(tasks.len());
    let mut open: Vec<Rollout> = Vec::with_capacity(tasks.len());
    for task in tasks {
        let mut env = MemoryEnv::new(env_config.clone(), embedder.clone())?;
        texts.push(Some(env.reset(task)));
        envs.push(env);
        open.push(Rollout {
            state_texts: Vec::new(),
            embeddings: Vec::new(),
            ops: Vec::new(),
            log_probs: Vec::new(),
            entropies: Vec::new(),
            reward: MemoryReward {
                answer: 0.0,
                recall: 0.0,
                memory_penalty: 0.0,
                requests_correct: 0,
                requests_total: 0,
            },
        });
    }
    // The texts of one batch repeat a lot (a group's episodes start alike): embed each once.
    let mut cache: HashMap<String, Vec<f32>> = HashMap::new();
    loop {
        let live: Vec<usize> = (0..envs.len()).filter(|&i| texts[i].is_some()).collect();
        if live.is_empty() {
            break;
        }
        let mut misses: Vec<&str> = Vec::new();
        let mut missing: HashSet<&str> = HashSet::new();
        for &i in &live {
            let text = texts[i].as_deref().expect("live");
            if !cache.contains_key(text) && missing.insert(text) {
                misses.push(text);
            }
        }
        for chunk in misses.chunks(encode_batch_size) {
            let embedded = host(actor.encode_batch(chunk)?)?;
            for (text, row) in chunk.iter().zip(embedded.chunks(hidden)) {
                cache.insert(text.to_string(), row.to_vec());
            }
        }
        let features: Vec<f32> = live
            .iter()
            .flat_map(|&i| cache[texts[i].as_deref().expect("live")].iter().copied())
            .collect();
        let features =
            Tensor::<2>::from_data(TensorData::new(features, [live.len(), hidden]), &device);
        let logits = actor
            .action_logits(&features)?
            .div_scalar(temperature as f32);
        let log_probs = host(log_softmax(logits, 1))?;
        for (row, &i) in live.iter().enumerate() {
            let row_log_probs = &log_probs[row * NUM_MEMORY_OPS..(row + 1) * NUM_MEMORY_OPS];
            if let Some(op) = row_log_probs.iter().position(|l| l.is_nan()) {
                return Err(Error::NonFinite {
                    name: format!("action log-probs (op {op})"),
                    row,
                });
            }
            let op = match &mut choice {
                Choice::Sample { rng, .. } => sample(row_log_probs, rng),
                Choice::Argmax => argmax(row_log_probs),
            };
            let text = texts[i].take().expect("live");
            let rollout = &mut open[i];
            rollout.embeddings.push(cache[&text].clone());
            rollout.state_texts.push(text);
            rollout.ops.push(op);
            rollout.log_probs.push(row_log_probs[op]);
            rollout.entropies.push(entropy(row_log_probs));
            match envs[i].step(op)? {
                MemoryStep::Next { state_text } => texts[i] = Some(state_text),
                MemoryStep::Done { reward } => rollout.reward = reward,
            }
        }
    }
    Ok(open)
}

/// Averages finished episodes as [`memory_env::evaluate`](super::memory_env::evaluate) does.
pub(crate) fn summarize(rollouts: &[Rollout]) -> MemoryEvaluation {
    let n = rollouts.len().max(1) as f64;
    MemoryEvaluation {
        num_episodes: rollouts.len(),
        success_rate: rollouts.iter().filter(|r| r.reward.success()).count() as f64 / n,
        mean_answer: rollouts
            .iter()
            .map(|r| f64::from(r.reward.answer))
            .sum::<f64>()
            / n,
        mean_reward: rollouts
            .iter()
            .map(|r| f64::from(r.reward.total()))
            .sum::<f64>()
            / n,
    }
}

/// Inverse-CDF sampling from log-probs with one uniform draw.
fn sample(log_probs: &[f32], rng: &mut StdRng) -> usize {
    let u: f64 = rng.random();
    let mut cumulative = 0.0f64;
    let mut last_possible = 0;
    for (op, &l) in log_probs.iter().enumerate() {
        let p = f64::from(l).exp();
        if p > 0.0 {
            last_possible = op;
        }
        cumulative += p;
        if u < cumulative {
            return op;
        }
    }
    // The probabilities sum to 1 up to rounding: a draw above their sum takes the last possible op.
    last_possible
}

fn argmax(log_probs: &[f32]) -> usize {
    let mut best = 0;
    for (op, &l) in log_probs.iter().enumerate() {
        if l > log_probs[best] {
            best = op;
        }
    }
    best
}

fn entropy(log_probs: &[f32]) -> f32 {
    -log_probs
        .iter()
        .filter(|l| l.is_finite())
        .map(|&l| l.exp() * l)
        .sum::<f32>()
}

pub(crate) fn host<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::invalid("policy output", format!("cannot read back: {e:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn sampling_follows_the_probabilities_and_never_picks_an_impossible_op() {
        let probs = [0.5f32, 0.0, 0.3, 0.2, 0.0, 0.0];
        let log_probs: Vec<f32> = probs.iter().map(|p| p.ln()).collect();
        let mut rng = StdRng::seed_from_u64(3);
        let mut counts = [0usize; 6];
        for _ in 0..20_000 {
            counts[sample(&log_probs, &mut rng)] += 1;
        }
        for (op, &p) in probs.iter().enumerate() {
            let freq = counts[op] as f32 / 20_000.0;
            assert!((freq - p).abs() < 0.015, "op {op}: {freq} vs {p}");
        }
        assert_eq!(counts[1] + counts[4] + counts[5], 0);
        assert_eq!(argmax(&log_probs), 0);
        assert_eq!(argmax(&[0.0; 6].map(|x: f32| x - 1.0)), 0);
        let h = entropy(&log_probs);
        let expected: f32 = -probs
            .iter()
            .filter(|&&p| p > 0.0)
            .map(|p| p * p.ln())
            .sum::<f32>();
        assert!((h - expected).abs() < 1e-6);
    }
}
