//! The rollout buffer that recurrent PPO (and GRPO's trajectory bookkeeping) consume (SPEC §6).
//!
//! Preallocated `[steps, envs, …]`, time-major. Each step stores what acting saw and decided:
//! observations, categorical inputs, per-head masks (the masks actually used, after op-conditioned
//! restrictions), actions and log-probs per head, the value, the reward, `terminated` and
//! `truncated` kept apart, the value of the true final observation where an episode was
//! truncated, the episode starts, and the **pre-step** LSTM state of every env (before the
//! episode-start reset, exactly what acting received), so that whole env sequences can be
//! replayed from their stored initial state.
//!
//! GRPO stores its completions here too (one env column per completion, one step per memory
//! operation): [`push_with`](RolloutBuffer::push_with) also records which cells hold a real step
//! (completions have different lengths and are right-padded) and the state text the policy read,
//! and [`set_completion_advantages`](RolloutBuffer::set_completion_advantages) broadcasts one
//! group-relative advantage per completion over its steps (GRPO has no value function and no GAE).

use crate::error::{Error, Result};
use crate::gae::{GaeInputs, GaeParams, compute_gae};

/// The sizes a [`RolloutBuffer`] is allocated for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutShape {
    /// Steps per rollout.
    pub num_steps: usize,
    /// Environments stepped together.
    pub num_envs: usize,
    /// Continuous observation features.
    pub d_observation: usize,
    /// Categorical observation inputs.
    pub num_categorical: usize,
    /// Head sizes, in order.
    pub head_sizes: Vec<usize>,
    /// LSTM layers.
    pub num_layers: usize,
    /// LSTM state width.
    pub d_hidden: usize,
}

/// One step of every env, as acting produced it (host data, env-major within the step).
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    /// `[envs, d_observation]`.
    pub observations: &'a [f32],
    /// `[envs, num_categorical]`.
    pub categorical: &'a [i64],
    /// `[envs]`: the observation is the first of an episode.
    pub episode_starts: &'a [bool],
    /// Per head `[envs, size_h]`: the masks acting used.
    pub masks: &'a [Vec<bool>],
    /// Per head `[envs]`.
    pub actions: &'a [Vec<usize>],
    /// Per head `[envs]`.
    pub log_probs: &'a [Vec<f32>],
    /// `[envs]`.
    pub values: &'a [f32],
    /// `[envs]`.
    pub rewards: &'a [f32],
    /// `[envs]`.
    pub terminated: &'a [bool],
    /// `[envs]`.
    pub truncated: &'a [bool],
    /// `[envs]`: value of the true final observation where truncated (ignored elsewhere).
    pub terminal_values: &'a [f32],
    /// `[num_layers, envs, d_hidden]`: `h` before the step.
    pub hidden: &'a [f32],
    /// `[num_layers, envs, d_hidden]`: `c` before the step.
    pub cell: &'a [f32],
}

/// What GRPO stores with a step besides its [`Transition`]. The default (what
/// [`RolloutBuffer::push`] uses) marks every env's step as real and stores no text.
#[derive(Debug, Clone, Copy, Default)]
pub struct StepExtras<'a> {
    /// `[envs]`: whether each env has a real step here (`None`: all do). A completion that has
    /// ended is right-padded with steps marked `false`.
    pub valid: Option<&'a [bool]>,
    /// `[envs]`: the text each env's policy read before this step (`None`: no text).
    pub state_texts: Option<&'a [String]>,
}

/// Whole sequences of some envs, batch-major (`row = b * steps + t`), ready for
/// [`EvaluateInput`](crate::policy::EvaluateInput).
#[derive(Debug, Clone, Default)]
pub struct SequenceBatch {
    /// Number of sequences (envs).
    pub batch: usize,
    /// Steps per sequence.
    pub time: usize,
    /// `[batch * time, d_observation]`.
    pub observations: Vec<f32>,
    /// `[batch * time, num_categorical]`.
    pub categorical: Vec<i64>,
    /// `[batch * time]`.
    pub episode_starts: Vec<bool>,
    /// Per head `[batch * time, size_h]`.
    pub masks: Vec<Vec<bool>>,
    /// Per head `[batch * time]`.
    pub actions: Vec<Vec<usize>>,
    /// Per head `[batch * time]`.
    pub log_probs: Vec<Vec<f32>>,
    /// `[batch * time]`.
    pub values: Vec<f32>,
    /// `[batch * time]`.
    pub advantages: Vec<f32>,
    /// `[batch * time]`.
    pub returns: Vec<f32>,
    /// Initial `h` of each sequence, `[num_layers, batch, d_hidden]`.
    pub initial_hidden: Vec<f32>,
    /// Initial `c` of each sequence, `[num_layers, batch, d_hidden]`.
    pub initial_cell: Vec<f32>,
    /// `[batch * time]`: whether the cell holds a real step (see [`StepExtras::valid`]).
    pub valid: Vec<bool>,
    /// `[batch * time]`: the state texts stored with the steps (empty where none was stored).
    pub state_texts: Vec<String>,
}

/// A preallocated `[steps, envs, …]` rollout store.
#[derive(Debug, Clone)]
pub struct RolloutBuffer {
    shape: RolloutShape,
    len: usize,
    observations: Vec<f32>,
    categorical: Vec<i64>,
    episode_starts: Vec<bool>,
    masks: Vec<Vec<bool>>,
    actions: Vec<Vec<usize>>,
    log_probs: Vec<Vec<f32>>,
    values: Vec<f32>,
    rewards: Vec<f32>,
    terminated: Vec<bool>,
    truncated: Vec<bool>,
    terminal_values: Vec<f32>,
    hidden: Vec<f32>,
    cell: Vec<f32>,
    advantages: Vec<f32>,
    returns: Vec<f32>,
    valid: Vec<bool>,
    state_texts: Vec<String>,
}

fn check_len(name: &str, expected: &[usize], found: usize) -> Result<()> {
    if expected.iter().product::<usize>() == found {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            name: name.into(),
            expected: expected.to_vec(),
            found: vec![found],
        })
    }
}

impl RolloutBuffer {
    /// Allocates every field.
    pub fn new(shape: RolloutShape) -> Self {
        let cells = shape.num_steps * shape.num_envs;
        let state = cells * shape.num_layers * shape.d_hidden;
        Self {
            len: 0,
            observations: vec![0.0; cells * shape.d_observation],
            categorical: vec![0; cells * shape.num_categorical],
            episode_starts: vec![false; cells],
            masks: shape
                .head_sizes
                .iter()
                .map(|&s| vec![false; cells * s])
                .collect(),
            actions: vec![vec![0; cells]; shape.head_sizes.len()],
            log_probs: vec![vec![0.0; cells]; shape.head_sizes.len()],
            values: vec![0.0; cells],
            rewards: vec![0.0; cells],
            terminated: vec![false; cells],
            truncated: vec![false; cells],
            terminal_values: vec![0.0; cells],
            hidden: vec![0.0; state],
            cell: vec![0.0; state],
            advantages: vec![0.0; cells],
            returns: vec![0.0; cells],
            valid: vec![false; cells],
            state_texts: vec![String::new(); cells],
            shape,
        }
    }

    /// The sizes.
    pub fn shape(&self) -> &RolloutShape {
        &self.shape
    }

    /// Steps stored so far.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no step is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether every step is stored.
    pub fn is_full(&self) -> bool {
        self.len == self.shape.num_steps
    }

    /// Empties the buffer (keeps the allocation).
    pub fn clear(&mut self) {
        self.len = 0;
    }

    /// Stores one step of every env.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the buffer is full; [`Error::ShapeMismatch`] /
    /// [`Error::WrongLength`] naming the field of the wrong size; [`Error::NonFinite`] naming
    /// `rewards`, `values`, `log_probs[h]` or `terminal_values` and the env.
    pub fn push(&mut self, t: &Transition<'_>) -> Result<()> {
        self.push_with(t, StepExtras::default())
    }

    /// Stores one step of every env with GRPO's extras: which cells are real steps and the state
    /// texts. Padding cells must still carry finite values (zeros are fine).
    ///
    /// # Errors
    /// As [`push`](Self::push); [`Error::ShapeMismatch`] naming `valid` or `state_texts` when
    /// they do not have one entry per env.
    pub fn push_with(&mut self, t: &Transition<'_>, extras: StepExtras<'_>) -> Result<()> {
        let s = &self.shape;
        if let Some(valid) = extras.valid {
            check_len("valid", &[s.num_envs], valid.len())?;
        }
        if let Some(texts) = extras.state_texts {
            check_len("state_texts", &[s.num_envs], texts.len())?;
        }
        let n = s.num_envs;
        if self.len == s.num_steps {
            return Err(Error::invalid(
                "rollout buffer",
                format!("full ({} steps); call clear() first", s.num_steps),
            ));
        }
        check_len("observations", &[n, s.d_observation], t.observations.len())?;
        check_len("categorical", &[n, s.num_categorical], t.categorical.len())?;
        check_len("episode_starts", &[n], t.episode_starts.len())?;
        for (name, len) in [
            ("values", t.values.len()),
            ("rewards", t.rewards.len()),
            ("terminated", t.terminated.len()),
            ("truncated", t.truncated.len()),
            ("terminal_values", t.terminal_values.len()),
        ] {
            check_len(name, &[n], len)?;
        }
        for (name, len) in [("hidden", t.hidden.len()), ("cell", t.cell.len())] {
            check_len(name, &[s.num_layers, n, s.d_hidden], len)?;
        }
        let heads = s.head_sizes.len();
        for (what, len) in [
            ("masks (one per head)", t.masks.len()),
            ("actions (one per head)", t.actions.len()),
            ("log_probs (one per head)", t.log_probs.len()),
        ] {
            if len != heads {
                return Err(Error::WrongLength {
                    what: what.into(),
                    expected: heads,
                    found: len,
                });
            }
        }
        for (h, &size) in s.head_sizes.iter().enumerate() {
            check_len(&format!("masks[{h}]"), &[n, size], t.masks[h].len())?;
            check_len(&format!("actions[{h}]"), &[n], t.actions[h].len())?;
            check_len(&format!("log_probs[{h}]"), &[n], t.log_probs[h].len())?;
            if let Some(env) = t.actions[h].iter().position(|&a| a >= size) {
                return Err(Error::ActionOutOfRange {
                    head: format!("head {h}"),
                    row: env,
                    action: t.actions[h][env],
                    size,
                });
            }
        }
        let finite = |name: String, values: &[f32]| match values.iter().position(|v| !v.is_finite())
        {
            Some(env) => Err(Error::NonFinite { name, row: env }),
            None => Ok(()),
        };
        finite("rewards".into(), t.rewards)?;
        finite("values".into(), t.values)?;
        for (h, lp) in t.log_probs.iter().enumerate() {
            finite(format!("log_probs[{h}]"), lp)?;
        }
        let bootstrapped: Vec<f32> = (0..n)
            .map(|e| {
                if t.truncated[e] && !t.terminated[e] {
                    t.terminal_values[e]
                } else {
                    0.0
                }
            })
            .collect();
        finite("terminal_values".into(), &bootstrapped)?;

        let step = self.len;
        let put = |dst: &mut [f32], src: &[f32]| {
            dst[step * src.len()..(step + 1) * src.len()].copy_from_slice(src)
        };
        put(&mut self.observations, t.observations);
        put(&mut self.values, t.values);
        put(&mut self.rewards, t.rewards);
        put(&mut self.terminal_values, &bootstrapped);
        put(&mut self.hidden, t.hidden);
        put(&mut self.cell, t.cell);
        let k = t.categorical.len();
        self.categorical[step * k..(step + 1) * k].copy_from_slice(t.categorical);
        for (dst, src) in [
            (&mut self.episode_starts, t.episode_starts),
            (&mut self.terminated, t.terminated),
            (&mut self.truncated, t.truncated),
        ] {
            dst[step * n..(step + 1) * n].copy_from_slice(src);
        }
        for h in 0..heads {
            let m = t.masks[h].len();
            self.masks[h][step * m..(step + 1) * m].copy_from_slice(&t.masks[h]);
            self.actions[h][step * n..(step + 1) * n].copy_from_slice(&t.actions[h]);
            self.log_probs[h][step * n..(step + 1) * n].copy_from_slice(&t.log_probs[h]);
        }
        let cells = step * n..(step + 1) * n;
        match extras.valid {
            Some(valid) => self.valid[cells.clone()].copy_from_slice(valid),
            None => self.valid[cells.clone()].fill(true),
        }
        for (dst, e) in self.state_texts[cells].iter_mut().zip(0..n) {
            dst.clear();
            if let Some(texts) = extras.state_texts {
                dst.push_str(&texts[e]);
            }
        }
        self.len += 1;
        Ok(())
    }

    /// Sets the advantages of GRPO completions: `advantages[e]` (one per env column, e.g. from
    /// [`group_advantages`](crate::grpo::group_advantages)) on every real step of env `e`, 0 on
    /// padding. Returns are left as they are (GRPO has no value function).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming `advantages` when there is not one per env;
    /// [`Error::NonFinite`] naming the first non-finite one.
    pub fn set_completion_advantages(&mut self, advantages: &[f32]) -> Result<()> {
        let n = self.shape.num_envs;
        check_len("advantages", &[n], advantages.len())?;
        if let Some(env) = advantages.iter().position(|a| !a.is_finite()) {
            return Err(Error::NonFinite {
                name: "advantages".into(),
                row: env,
            });
        }
        let stored = self.len * n;
        for (cell, (advantage, &valid)) in self.advantages[..stored]
            .iter_mut()
            .zip(&self.valid[..stored])
            .enumerate()
        {
            *advantage = if valid { advantages[cell % n] } else { 0.0 };
        }
        Ok(())
    }

    /// Time-major `[steps, envs]`: whether a cell holds a real step (every pushed cell unless
    /// [`push_with`](Self::push_with) said otherwise).
    pub fn valid(&self) -> &[bool] {
        &self.valid[..self.len * self.shape.num_envs]
    }

    /// The state text stored for env `env` at step `step`; `None` outside the stored steps or
    /// where no text was stored.
    pub fn state_text(&self, step: usize, env: usize) -> Option<&str> {
        let n = self.shape.num_envs;
        if step >= self.len || env >= n {
            return None;
        }
        Some(self.state_texts[step * n + env].as_str()).filter(|t| !t.is_empty())
    }

    /// GAE over the stored rollout (see [`crate::gae`]), bootstrapping the last step from
    /// `last_values` (`V` of the observation after the last step).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the buffer is not full; the errors of
    /// [`compute_gae`](crate::gae::compute_gae).
    pub fn compute_returns_and_advantage(
        &mut self,
        last_values: &[f32],
        params: GaeParams,
    ) -> Result<()> {
        if !self.is_full() {
            return Err(Error::invalid(
                "rollout buffer",
                format!("holds {} of {} steps", self.len, self.shape.num_steps),
            ));
        }
        let inputs = GaeInputs {
            num_envs: self.shape.num_envs,
            rewards: &self.rewards,
            values: &self.values,
            terminated: &self.terminated,
            truncated: &self.truncated,
            terminal_values: &self.terminal_values,
            last_values,
        };
        compute_gae(&inputs, params, &mut self.advantages, &mut self.returns)
    }

    /// Time-major `[steps, envs]` advantages (set by
    /// [`compute_returns_and_advantage`](Self::compute_returns_and_advantage) or
    /// [`set_completion_advantages`](Self::set_completion_advantages)).
    pub fn advantages(&self) -> &[f32] {
        &self.advantages
    }

    /// Time-major `[steps, envs]` returns.
    pub fn returns(&self) -> &[f32] {
        &self.returns
    }

    /// Time-major `[steps, envs]` values stored when acting.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// Time-major `[steps, envs]` actions of head `head` (empty for an unknown head).
    pub fn actions(&self, head: usize) -> &[usize] {
        let cells = self.len * self.shape.num_envs;
        self.actions.get(head).map_or(&[], |a| &a[..cells])
    }

    /// Time-major `[steps, envs]` rewards.
    pub fn rewards(&self) -> &[f32] {
        &self.rewards
    }

    /// Gathers the whole sequences of `envs` (every stored step), batch-major, with each
    /// sequence's initial recurrent state (the pre-step state of its first step).
    ///
    /// # Errors
    /// [`Error::Invalid`] naming an env index out of range.
    pub fn sequences(&self, envs: &[usize]) -> Result<SequenceBatch> {
        let s = &self.shape;
        let (n, time, batch) = (s.num_envs, self.len, envs.len());
        if let Some(&e) = envs.iter().find(|&&e| e >= n) {
            return Err(Error::invalid(
                "envs",
                format!("env {e} out of range (envs: {n})"),
            ));
        }
        let mut out = SequenceBatch {
            batch,
            time,
            masks: s
                .head_sizes
                .iter()
                .map(|&size| Vec::with_capacity(batch * time * size))
                .collect(),
            actions: vec![Vec::with_capacity(batch * time); s.head_sizes.len()],
            log_probs: vec![Vec::with_capacity(batch * time); s.head_sizes.len()],
            ..SequenceBatch::default()
        };
        for &e in envs {
            for t in 0..time {
                let cell = t * n + e;
                let d = s.d_observation;
                out.observations
                    .extend_from_slice(&self.observations[cell * d..(cell + 1) * d]);
                let k = s.num_categorical;
                out.categorical
                    .extend_from_slice(&self.categorical[cell * k..(cell + 1) * k]);
                out.episode_starts.push(self.episode_starts[cell]);
                out.values.push(self.values[cell]);
                out.advantages.push(self.advantages[cell]);
                out.returns.push(self.returns[cell]);
                out.valid.push(self.valid[cell]);
                out.state_texts.push(self.state_texts[cell].clone());
                for (h, &size) in s.head_sizes.iter().enumerate() {
                    out.masks[h].extend_from_slice(&self.masks[h][cell * size..(cell + 1) * size]);
                    out.actions[h].push(self.actions[h][cell]);
                    out.log_probs[h].push(self.log_probs[h][cell]);
                }
            }
        }
        // Initial state of each sequence: step 0's pre-step state, [layers, batch, d_hidden].
        let (layers, d) = (s.num_layers, s.d_hidden);
        let state_len = layers * n * d;
        for (src, dst) in [
            (&self.hidden, &mut out.initial_hidden),
            (&self.cell, &mut out.initial_cell),
        ] {
            let step0 = &src[..state_len];
            for l in 0..layers {
                for &e in envs {
                    let start = (l * n + e) * d;
                    dst.extend_from_slice(&step0[start..start + d]);
                }
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> RolloutShape {
        RolloutShape {
            num_steps: 3,
            num_envs: 2,
            d_observation: 2,
            num_categorical: 1,
            head_sizes: vec![2, 3],
            num_layers: 1,
            d_hidden: 2,
        }
    }

    struct Step {
        obs: Vec<f32>,
        cat: Vec<i64>,
        masks: Vec<Vec<bool>>,
        actions: Vec<Vec<usize>>,
        log_probs: Vec<Vec<f32>>,
        state: Vec<f32>,
    }

    fn step(t: usize) -> Step {
        let t = t as f32;
        Step {
            obs: vec![t, t + 0.5, 10.0 + t, 10.5 + t],
            cat: vec![t as i64, -1],
            masks: vec![vec![true; 4], vec![true; 6]],
            actions: vec![vec![0, 1], vec![2, 0]],
            log_probs: vec![vec![-0.5, -0.7], vec![-1.0, -1.1]],
            state: vec![t, t, 100.0 + t, 100.0 + t],
        }
    }

    fn transition<'a>(s: &'a Step, rewards: &'a [f32]) -> Transition<'a> {
        Transition {
            observations: &s.obs,
            categorical: &s.cat,
            episode_starts: &[false, false],
            masks: &s.masks,
            actions: &s.actions,
            log_probs: &s.log_probs,
            values: &[0.0, 0.0],
            rewards,
            terminated: &[false, false],
            truncated: &[false, false],
            terminal_values: &[0.0, 0.0],
            hidden: &s.state,
            cell: &s.state,
        }
    }

    #[test]
    fn sequences_are_batch_major_with_step_zero_state() {
        let mut buffer = RolloutBuffer::new(shape());
        let steps: Vec<Step> = (0..3).map(step).collect();
        for s in &steps {
            buffer.push(&transition(s, &[1.0, 2.0])).unwrap();
        }
        assert!(buffer.is_full());
        buffer
            .compute_returns_and_advantage(
                &[0.0, 0.0],
                GaeParams {
                    gamma: 1.0,
                    lambda: 1.0,
                },
            )
            .unwrap();
        let seq = buffer.sequences(&[1]).unwrap();
        assert_eq!(seq.observations, vec![10.0, 10.5, 11.0, 11.5, 12.0, 12.5]);
        assert_eq!(seq.categorical, vec![-1, -1, -1]);
        assert_eq!(seq.initial_hidden, vec![100.0, 100.0]);
        assert_eq!(seq.actions[1], vec![0, 0, 0]);
        // Undiscounted returns of env 1: 6, 4, 2.
        assert_eq!(seq.returns, vec![6.0, 4.0, 2.0]);
        assert!(matches!(
            buffer.push(&transition(&steps[0], &[1.0, 2.0])),
            Err(Error::Invalid { .. })
        ));
    }

    /// Two completions of 3 and 1 steps in a 3-step buffer, with texts.
    #[test]
    fn grpo_completions_are_right_padded_with_texts_and_broadcast_advantages() {
        let mut buffer = RolloutBuffer::new(RolloutShape {
            num_steps: 3,
            num_envs: 2,
            d_observation: 0,
            num_categorical: 0,
            head_sizes: vec![6],
            num_layers: 0,
            d_hidden: 0,
        });
        let lengths = [3, 1];
        for t in 0..3 {
            let valid: Vec<bool> = lengths.iter().map(|&len| t < len).collect();
            let texts: Vec<String> = (0..2)
                .map(|e| {
                    if valid[e] {
                        format!("env {e} step {t}")
                    } else {
                        String::new()
                    }
                })
                .collect();
            let transition = Transition {
                observations: &[],
                categorical: &[],
                episode_starts: &[t == 0, t == 0],
                masks: &[vec![true; 12]],
                actions: &[vec![t, 5]],
                log_probs: &[vec![-0.5, -1.0]],
                values: &[0.0, 0.0],
                rewards: &[0.7, 0.0],
                terminated: &[t == 2, t == 0],
                truncated: &[false, false],
                terminal_values: &[0.0, 0.0],
                hidden: &[],
                cell: &[],
            };
            let extras = StepExtras {
                valid: Some(&valid),
                state_texts: Some(&texts),
            };
            buffer.push_with(&transition, extras).unwrap();
        }
        assert_eq!(buffer.valid(), [true, true, true, false, true, false]);
        assert_eq!(buffer.state_text(1, 0), Some("env 0 step 1"));
        assert_eq!(buffer.state_text(1, 1), None);
        assert_eq!(buffer.state_text(3, 0), None);
        buffer.set_completion_advantages(&[1.5, -2.0]).unwrap();
        assert_eq!(buffer.advantages(), [1.5, -2.0, 1.5, 0.0, 1.5, 0.0]);
        let seq = buffer.sequences(&[1, 0]).unwrap();
        assert_eq!(seq.valid, [true, false, false, true, true, true]);
        assert_eq!(seq.advantages, [-2.0, 0.0, 0.0, 1.5, 1.5, 1.5]);
        assert_eq!(seq.state_texts[0], "env 1 step 0");
        assert_eq!(seq.state_texts[1], "");
        assert_eq!(seq.state_texts[5], "env 0 step 2");
        assert_eq!(seq.actions[0], [5, 5, 5, 0, 1, 2]);

        assert!(matches!(
            buffer.set_completion_advantages(&[1.0]),
            Err(Error::ShapeMismatch { name, .. }) if name == "advantages"
        ));
        assert!(matches!(
            buffer.set_completion_advantages(&[1.0, f32::INFINITY]),
            Err(Error::NonFinite { name, row: 1 }) if name == "advantages"
        ));
    }

    #[test]
    fn plain_push_marks_every_cell_valid_and_extras_are_checked() {
        let mut buffer = RolloutBuffer::new(shape());
        let s = step(0);
        let err = buffer
            .push_with(
                &transition(&s, &[1.0, 1.0]),
                StepExtras {
                    valid: Some(&[true]),
                    state_texts: None,
                },
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::ShapeMismatch { name, .. } if name == "valid"),
            "{err}"
        );
        let err = buffer
            .push_with(
                &transition(&s, &[1.0, 1.0]),
                StepExtras {
                    valid: None,
                    state_texts: Some(&["only one".to_string()]),
                },
            )
            .unwrap_err();
        assert!(
            matches!(&err, Error::ShapeMismatch { name, .. } if name == "state_texts"),
            "{err}"
        );
        assert!(buffer.is_empty());
        buffer.push(&transition(&s, &[1.0, 1.0])).unwrap();
        assert_eq!(buffer.valid(), [true, true]);
        assert_eq!(buffer.state_text(0, 0), None);
    }

    #[test]
    fn wrong_shapes_and_non_finite_rewards_name_the_field() {
        let mut buffer = RolloutBuffer::new(shape());
        let s = step(0);
        let err = buffer.push(&transition(&s, &[1.0, f32::NAN])).unwrap_err();
        assert!(
            matches!(&err, Error::NonFinite { name, row: 1 } if name == "rewards"),
            "{err}"
        );
        let err = buffer.push(&transition(&s, &[1.0])).unwrap_err();
        assert!(
            matches!(&err, Error::ShapeMismatch { name, .. } if name == "rewards"),
            "{err}"
        );
        let mut bad = step(0);
        bad.masks[1].pop();
        let err = buffer.push(&transition(&bad, &[1.0, 1.0])).unwrap_err();
        assert!(
            matches!(&err, Error::ShapeMismatch { name, .. } if name == "masks[1]"),
            "{err}"
        );
        let mut bad = step(0);
        bad.state.pop();
        let err = buffer.push(&transition(&bad, &[1.0, 1.0])).unwrap_err();
        assert!(
            matches!(&err, Error::ShapeMismatch { name, .. } if name == "hidden"),
            "{err}"
        );
        assert!(buffer.is_empty());
    }
}
