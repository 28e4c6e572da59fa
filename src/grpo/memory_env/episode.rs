//! Running whole episodes: recording what the policy read and chose, and measuring success.

use rand::Rng;

use crate::error::{Error, Result};

use super::embedder::TextEmbedder;
use super::env::{MemoryEnv, MemoryReward, MemoryStep};
use super::task::MemoryTask;

/// One finished episode. `state_texts[t]` is exactly the text the policy read when it chose
/// `ops[t]`: the text its log-prob must be scored on.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryEpisode {
    /// The state text of each step, as read before the decision.
    pub state_texts: Vec<String>,
    /// The operation chosen at each step.
    pub ops: Vec<usize>,
    /// The terminal reward, broadcast to every step.
    pub reward: MemoryReward,
}

/// Runs `task` to its end, asking `policy` for an operation at each state text.
///
/// # Errors
/// The policy's errors and those of [`MemoryEnv::step`].
pub fn run_episode<E, P>(
    env: &mut MemoryEnv<E>,
    task: MemoryTask,
    mut policy: P,
) -> Result<MemoryEpisode>
where
    E: TextEmbedder,
    P: FnMut(&str) -> Result<usize>,
{
    let mut state_text = env.reset(task);
    let mut state_texts = Vec::new();
    let mut ops = Vec::new();
    loop {
        let op = policy(&state_text)?;
        let step = env.step(op)?;
        state_texts.push(std::mem::take(&mut state_text));
        ops.push(op);
        match step {
            MemoryStep::Next { state_text: next } => state_text = next,
            MemoryStep::Done { reward } => {
                return Ok(MemoryEpisode {
                    state_texts,
                    ops,
                    reward,
                });
            }
        }
    }
}

/// Averages over evaluation episodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MemoryEvaluation {
    /// Episodes run.
    pub num_episodes: usize,
    /// Fraction of episodes where every request was answered correctly.
    pub success_rate: f64,
    /// Mean of the `answer` term.
    pub mean_answer: f64,
    /// Mean total reward.
    pub mean_reward: f64,
}

/// Runs `num_episodes` tasks drawn from `task_rng` with `policy` and averages the outcomes.
///
/// # Errors
/// [`Error::Invalid`] for 0 episodes; those of [`MemoryTask::sample`] and [`run_episode`].
pub fn evaluate<E, P, R>(
    env: &mut MemoryEnv<E>,
    num_episodes: usize,
    task_rng: &mut R,
    mut policy: P,
) -> Result<MemoryEvaluation>
where
    E: TextEmbedder,
    P: FnMut(&str) -> Result<usize>,
    R: Rng + ?Sized,
{
    if num_episodes == 0 {
        return Err(Error::invalid("num_episodes", "must be at least 1"));
    }
    let (mut successes, mut answer, mut reward) = (0usize, 0.0f64, 0.0f64);
    for _ in 0..num_episodes {
        let task = MemoryTask::sample(env.config(), task_rng)?;
        let episode = run_episode(env, task, &mut policy)?;
        successes += usize::from(episode.reward.success());
        answer += f64::from(episode.reward.answer);
        reward += f64::from(episode.reward.total());
    }
    let n = num_episodes as f64;
    Ok(MemoryEvaluation {
        num_episodes,
        success_rate: successes as f64 / n,
        mean_answer: answer / n,
        mean_reward: reward / n,
    })
}
