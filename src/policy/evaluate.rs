use burn::tensor::{Int, Tensor, TensorData};

use super::config::ValueMode;
use super::network::{FactoredRecurrentActorCritic, Mlp};
use crate::distribution::FactoredDistribution;
use crate::error::{Error, Result};
use crate::nn::LstmState;

/// Observation sequences: `batch` sequences of `time` steps, batch-major (`row = b * time + t`),
/// host data.
#[derive(Debug, Clone, Copy)]
pub struct Sequences<'a> {
    /// Number of sequences.
    pub batch: usize,
    /// Steps per sequence.
    pub time: usize,
    /// Continuous observations, `batch * time * d_observation`.
    pub observations: &'a [f32],
    /// Categorical observations, `batch * time * num_inputs`.
    pub categorical: &'a [i64],
    /// `batch * time`: the observation starts an episode (the row's state is zeroed first).
    pub episode_starts: &'a [bool],
}

/// Stored sequences to re-evaluate with their masks and actions.
#[derive(Debug, Clone, Copy)]
pub struct EvaluateInput<'a> {
    /// The observations.
    pub sequences: Sequences<'a>,
    /// One mask per head, `batch * time * size_h` each (the environment's masks, before
    /// op-conditioned rules, exactly as stored when acting).
    pub masks: &'a [Vec<bool>],
    /// The stored actions, one vector of `batch * time` per head.
    pub actions: &'a [Vec<usize>],
}

/// The raw outputs of the network over sequences (no masks applied); every tensor is
/// differentiable.
#[derive(Debug, Clone)]
pub struct SequenceOutput {
    /// Per head, the logits, `[batch * time, size_h]`.
    pub head_logits: Vec<Tensor<2>>,
    /// `Q(s, op)` for every op, `[batch * time, num_ops]`.
    pub q_values: Tensor<2>,
    /// `V(s)` in `StateValue` mode, `[batch * time]`.
    pub state_values: Option<Tensor<1>>,
    /// The recurrent state after the last step.
    pub state: LstmState,
}

/// What [`FactoredRecurrentActorCritic::evaluate_actions`] returns; every tensor is differentiable.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// Per head, the log-probability of the stored action, `[batch * time]`.
    pub log_probs: Vec<Tensor<1>>,
    /// Per head, the normalized entropy under the mask used for the stored action, `[batch * time]`.
    pub entropies: Vec<Tensor<1>>,
    /// The value for the stored op, `[batch * time]`.
    pub values: Tensor<1>,
    /// Per head, 1 where the head is causally relevant for the stored op, else 0, `batch * time`.
    pub relevance: Vec<Vec<f32>>,
    /// The recurrent state after the last step.
    pub state: LstmState,
    op_values: OpValues,
}

/// `Q(s, ·)` of an [`Evaluation`]: already computed (`ExpectedOp` values need every op), or the
/// critic and its input, to compute it from when asked.
#[derive(Debug, Clone)]
enum OpValues {
    Computed(Tensor<2>),
    Deferred {
        critic: Mlp,
        features: Tensor<2>,
        num_ops: usize,
    },
}

impl Evaluation {
    /// `Q(s, op)` for every op, `[batch * time, num_ops]`, differentiable.
    ///
    /// Only `ExpectedOp` values need every op, and that mode returns what it computed. In
    /// `SelectedOp` and `StateValue` modes the evaluation ran the critic for the stored op alone
    /// (training needs nothing else, and the other ops cost the critic's later layers `num_ops`
    /// times over); this runs it for every op when called.
    pub fn q_values(&self) -> Tensor<2> {
        match &self.op_values {
            OpValues::Computed(q_values) => q_values.clone(),
            OpValues::Deferred {
                critic,
                features,
                num_ops,
            } => critic.q_values(features, *num_ops),
        }
    }
}

impl FactoredRecurrentActorCritic {
    /// Replays stored sequences from their stored initial state, applying episode starts, and
    /// scores the **stored** actions: per-head log-probs and normalized entropies (with the same
    /// op-conditioned rules as acting) and the value for the **stored** op. On the inputs acting
    /// saw, it reproduces acting's log-probs and values.
    ///
    /// # Shapes
    /// - `input`: see [`EvaluateInput`]
    /// - `initial_state`: `[num_layers, batch, d_hidden]` each
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] / [`Error::WrongLength`] for inputs of the wrong size;
    /// [`Error::NonFinite`] for NaN/infinite observations; [`Error::EmptyMask`],
    /// [`Error::MaskedAction`] or [`Error::ActionOutOfRange`] naming the head and row.
    pub fn evaluate_actions(
        &self,
        input: &EvaluateInput<'_>,
        initial_state: LstmState,
    ) -> Result<Evaluation> {
        let (batch, time) = (input.sequences.batch, input.sequences.time);
        let inputs = self.sequence_inputs(&input.sequences, &initial_state)?;
        let starts = self.episode_start_tensor(&input.sequences);
        let trunk = self.trunk(inputs, batch, time, initial_state, Some(starts));
        let head_logits = self.head_logits(&trunk.features);
        self.score(input, head_logits, trunk.features, trunk.state, None)
    }

    /// Scores stored actions from every head's logits and the normalized trunk features the
    /// critic reads (shared by [`evaluate_actions`](Self::evaluate_actions) and
    /// [`evaluate_with_gradients`](Self::evaluate_with_gradients), which may compute the logits
    /// on the host).
    ///
    /// In `SelectedOp` mode a caller that computed `Q(s, stored op)` itself (on the host) passes
    /// it as `selected_op_values`; otherwise it is `None` and the critic runs here.
    ///
    /// # Shapes
    /// - `head_logits`: per head `[batch * time, size_h]`
    /// - `features`: `[batch * time, d_hidden]`
    /// - `selected_op_values`: `[batch * time]`
    pub(crate) fn score(
        &self,
        input: &EvaluateInput<'_>,
        head_logits: Vec<Tensor<2>>,
        features: Tensor<2>,
        state: LstmState,
        selected_op_values: Option<Tensor<1>>,
    ) -> Result<Evaluation> {
        let rows = input.sequences.batch * input.sequences.time;
        self.check_masks(input.masks, rows)?;
        let ops = self.stored_ops(input)?;
        let dist = FactoredDistribution::new(&self.space, head_logits, input.masks)?
            .condition_on_ops(ops)?;
        let log_probs = dist.log_probs(input.actions)?;
        let entropies = dist.normalized_entropies();
        let num_ops = self.space.num_ops();
        let deferred = |features: Tensor<2>| OpValues::Deferred {
            critic: self.critic.clone(),
            features,
            num_ops,
        };
        let (values, op_values) = match self.config.value_mode {
            ValueMode::SelectedOp => {
                let values = selected_op_values.unwrap_or_else(|| {
                    let ops = ops.iter().map(|&op| op as i64).collect::<Vec<_>>();
                    let ops =
                        Tensor::<1, Int>::from_data(TensorData::new(ops, [rows]), &self.device());
                    self.critic.q_values_of(&features, num_ops, ops)
                });
                (values, deferred(features))
            }
            // π is a weight of the baseline here, not something the value loss should train.
            ValueMode::ExpectedOp => {
                let q_values = self.q_values(&features);
                let values = (dist.op().probs().detach() * q_values.clone())
                    .sum_dim(1)
                    .squeeze_dim(1);
                (values, OpValues::Computed(q_values))
            }
            ValueMode::StateValue => {
                let values = self
                    .state_values(&features)
                    .expect("StateValue mode builds a V(s) head");
                (values, deferred(features))
            }
        };
        Ok(Evaluation {
            log_probs,
            entropies,
            values,
            relevance: dist.relevance(ops),
            state,
            op_values,
        })
    }

    pub(crate) fn stored_ops<'a>(&self, input: &EvaluateInput<'a>) -> Result<&'a [usize]> {
        input
            .actions
            .get(self.space.op_index())
            .map(Vec::as_slice)
            .ok_or_else(|| Error::WrongLength {
                what: "per-head actions".into(),
                expected: self.space.num_heads(),
                found: input.actions.len(),
            })
    }

    /// Runs the network over sequences from `initial_state`, applying episode starts: every head's
    /// logits, `Q(s, ·)` and (in `StateValue` mode) `V(s)` at every step.
    ///
    /// # Shapes
    /// - `sequences`: see [`Sequences`]
    /// - `initial_state`: `[num_layers, batch, d_hidden]` each
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for inputs of the wrong size; [`Error::NonFinite`] naming the row
    /// of a NaN/infinite observation; [`Error::Invalid`] for a categorical index out of range.
    pub fn forward_sequences(
        &self,
        sequences: &Sequences<'_>,
        initial_state: LstmState,
    ) -> Result<SequenceOutput> {
        let (batch, time) = (sequences.batch, sequences.time);
        let inputs = self.sequence_inputs(sequences, &initial_state)?;
        let starts = self.episode_start_tensor(sequences);
        let trunk = self.trunk(inputs, batch, time, initial_state, Some(starts));
        Ok(self.outputs(trunk.features, trunk.state))
    }

    /// Checks the sequences against `initial_state` and uploads the observations.
    ///
    /// # Shapes
    /// - output: `[batch * time, d_input]`
    pub(crate) fn sequence_inputs(
        &self,
        sequences: &Sequences<'_>,
        initial_state: &LstmState,
    ) -> Result<Tensor<2>> {
        self.check_sequences(sequences, initial_state)?;
        let rows = sequences.batch * sequences.time;
        self.encode_inputs(sequences.observations, sequences.categorical, rows)
    }

    /// Checks `initial_state` and the episode starts against the sequences' shape (the
    /// observations are checked where they are encoded).
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] naming the state tensor or `episode_starts`.
    pub(crate) fn check_sequences(
        &self,
        sequences: &Sequences<'_>,
        initial_state: &LstmState,
    ) -> Result<()> {
        self.check_state(initial_state, sequences.batch)?;
        let rows = sequences.batch * sequences.time;
        if sequences.episode_starts.len() != rows {
            return Err(Error::ShapeMismatch {
                name: "episode_starts".into(),
                expected: vec![sequences.batch, sequences.time],
                found: vec![sequences.episode_starts.len()],
            });
        }
        Ok(())
    }

    /// `[batch, time]` episode starts as 0.0 / 1.0.
    pub(crate) fn episode_start_tensor(&self, sequences: &Sequences<'_>) -> Tensor<2> {
        let starts: Vec<f32> = sequences
            .episode_starts
            .iter()
            .map(|&s| f32::from(u8::from(s)))
            .collect();
        Tensor::<2>::from_data(
            TensorData::new(starts, [sequences.batch, sequences.time]),
            &self.device(),
        )
    }

    /// Every output head over normalized trunk features `[rows, d_hidden]`.
    pub(crate) fn outputs(&self, features: Tensor<2>, state: LstmState) -> SequenceOutput {
        SequenceOutput {
            head_logits: self.head_logits(&features),
            q_values: self.q_values(&features),
            state_values: self.state_values(&features),
            state,
        }
    }
}
