use burn::tensor::{Tensor, TensorData};
use rand::Rng;
use rand::rngs::StdRng;

use super::config::ValueMode;
use super::network::FactoredRecurrentActorCritic;
use crate::action_space::ActionSpace;
use crate::distribution::{argmax_allowed, masked_log_softmax_row, sample_allowed};
use crate::error::{Error, Result};
use crate::nn::LstmState;

/// One acting step's inputs for `batch` environments (host data, row-major).
#[derive(Debug, Clone, Copy)]
pub struct ActInput<'a> {
    /// Continuous observations, `batch * d_observation`.
    pub observations: &'a [f32],
    /// Categorical observations, `batch * num_inputs` (empty without categorical inputs).
    pub categorical: &'a [i64],
    /// One mask per head, `batch * size_h` each, `true` = allowed.
    pub masks: &'a [Vec<bool>],
    /// Op-dependent masks from the environment (see [`ConditionalMask`](crate::env::ConditionalMask)):
    /// empty, or one entry per head that is either empty (not conditioned) or
    /// `batch * num_ops * size_h` (row, op, action). Under the chosen op, a head may only take
    /// actions allowed by its mask, the space's op-conditioned rules and this row.
    pub conditional_masks: &'a [Vec<bool>],
    /// Per row: this observation starts an episode, so the row's recurrent state is zeroed first.
    pub episode_starts: &'a [bool],
}

/// Whether acting samples or takes the most likely allowed action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActMode {
    /// Sample every head (the op first) from the explicit RNG.
    Stochastic,
    /// Argmax over allowed actions everywhere: deterministic evaluation and bootstrapping.
    Deterministic,
}

/// What one acting step decided, per row; `S` is the recurrent state's type (device tensors for
/// [`FactoredRecurrentActorCritic::act`], host vectors for
/// [`HostActor::act`](super::HostActor::act)).
#[derive(Debug, Clone)]
pub struct ActOutput<S = LstmState> {
    /// `actions[head][row]`; `actions[op_index]` is [`ops`](Self::ops).
    pub actions: Vec<Vec<usize>>,
    /// `log_probs[head][row]`: log-probability of the chosen action under the mask actually used
    /// (op-conditioned rules applied).
    pub log_probs: Vec<Vec<f32>>,
    /// The masks actually used, per head `batch * size_h`: the op head's as given, every other
    /// head's restricted by the op-conditioned rules and conditional masks for the chosen op. Store
    /// these with the actions: re-evaluating with them reproduces `log_probs`.
    pub masks: Vec<Vec<bool>>,
    /// The value of each row, formed with the chosen op (see [`ValueMode`]).
    pub values: Vec<f32>,
    /// The op of each row, decided once by [`select_op`].
    pub ops: Vec<usize>,
    /// `Q(s, op)` for every op, `batch * num_ops`.
    pub q_values: Vec<f32>,
    /// `π(op | s)` for every op, `batch * num_ops` (0 for masked ops).
    pub op_probs: Vec<f32>,
    /// The recurrent state after the step.
    pub state: S,
}

/// Decides the op of one row, once (SPEC §5): a draw from `rng` when one is given (stochastic
/// mode), else the argmax over the allowed ops. The result is the stored op action, the op whose
/// log-prob is stored, and the op the value is computed with — there is no second draw anywhere.
///
/// # Shapes
/// - `op_log_probs`, `op_mask`: `num_ops`
pub fn select_op<R: Rng + ?Sized>(
    op_log_probs: &[f32],
    op_mask: &[bool],
    rng: Option<&mut R>,
) -> usize {
    match rng {
        Some(rng) => {
            let probs: Vec<f32> = op_log_probs.iter().map(|lp| lp.exp()).collect();
            sample_allowed(&probs, op_mask, rng)
        }
        None => argmax_allowed(op_log_probs, op_mask),
    }
}

impl FactoredRecurrentActorCritic {
    /// One step for a batch of environments: the trunk advances the recurrent state, the op is
    /// decided once with [`select_op`], the value is formed with that op, then every other head is
    /// chosen under the op-conditioned mask rules. Randomness comes only from `rng`.
    ///
    /// # Shapes
    /// - `input`: see [`ActInput`]
    /// - `state`: `[num_layers, batch, d_hidden]` each (the state before this step)
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for inputs or masks of the wrong size; [`Error::NonFinite`] naming
    /// the row of a NaN/infinite observation; [`Error::EmptyMask`] naming the head and row of a mask
    /// (or an op-conditioned restriction of one) that allows nothing; [`Error::Invalid`] for a
    /// categorical index out of range.
    pub fn act<R: Rng + ?Sized>(
        &self,
        input: &ActInput<'_>,
        state: &LstmState,
        mode: ActMode,
        rng: &mut R,
    ) -> Result<ActOutput> {
        match mode {
            ActMode::Stochastic => self.act_with(input, state, Some(rng)),
            ActMode::Deterministic => self.act_with::<R>(input, state, None),
        }
    }

    /// [`act`](Self::act) in [`ActMode::Deterministic`], which draws nothing and so needs no RNG.
    ///
    /// # Errors
    /// As [`act`](Self::act).
    pub fn act_deterministic(&self, input: &ActInput<'_>, state: &LstmState) -> Result<ActOutput> {
        self.act_with::<StdRng>(input, state, None)
    }

    /// The deterministic act's value, `Q(s, argmax op)` in `SelectedOp` mode: what deterministic
    /// evaluation and truncation bootstrapping use.
    ///
    /// # Errors
    /// As [`act`](Self::act).
    pub fn bootstrap_value(&self, input: &ActInput<'_>, state: &LstmState) -> Result<Vec<f32>> {
        Ok(self.act_deterministic(input, state)?.values)
    }

    fn act_with<R: Rng + ?Sized>(
        &self,
        input: &ActInput<'_>,
        state: &LstmState,
        rng: Option<&mut R>,
    ) -> Result<ActOutput> {
        let batch = input.episode_starts.len();
        check_masks(&self.space, input.masks, input.conditional_masks, batch)?;
        self.check_state(state, batch)?;
        let device = self.device();
        let inputs = self.encode_inputs(input.observations, input.categorical, batch)?;
        let starts: Vec<f32> = input
            .episode_starts
            .iter()
            .map(|&s| f32::from(u8::from(s)))
            .collect();
        let starts = Tensor::<2>::from_data(TensorData::new(starts, [batch, 1]), &device);
        let trunk = self.trunk(inputs, batch, 1, state.clone(), Some(starts));

        // Everything the host needs in one read: every head's logits, Q(s, ·) and V(s).
        let mut columns = self.head_logits(&trunk.features);
        columns.push(self.q_values(&trunk.features));
        if let Some(v) = self.state_values(&trunk.features) {
            columns.push(v.unsqueeze_dim(1));
        }
        let outputs = crate::distribution::to_host(&Tensor::cat(columns, 1));
        decide(
            &self.space,
            self.config.value_mode,
            input,
            &outputs,
            rng,
            trunk.state,
        )
    }

    /// Checks per-head mask lengths and that no row is empty.
    pub(crate) fn check_masks(&self, masks: &[Vec<bool>], rows: usize) -> Result<()> {
        check_masks(&self.space, masks, &[], rows)
    }

    pub(crate) fn check_state(&self, state: &LstmState, batch: usize) -> Result<()> {
        let expected = [self.config.num_lstm_layers, batch, self.config.d_hidden];
        for (name, dims) in [
            ("state.hidden", state.hidden.dims()),
            ("state.cell", state.cell.dims()),
        ] {
            if dims != expected {
                return Err(Error::ShapeMismatch {
                    name: name.into(),
                    expected: expected.to_vec(),
                    found: dims.to_vec(),
                });
            }
        }
        Ok(())
    }
}

/// The decision of every row from the network's raw outputs, on the host: [`select_op`], the
/// value for that op, then every other head under its op-conditioned masks.
///
/// # Shapes
/// - `outputs`: `batch * width`, each row `[logits of every head | Q(s, ·) | V(s) if any]`
pub(crate) fn decide<R: Rng + ?Sized, S>(
    space: &ActionSpace,
    value_mode: ValueMode,
    input: &ActInput<'_>,
    outputs: &[f32],
    mut rng: Option<&mut R>,
    state: S,
) -> Result<ActOutput<S>> {
    let batch = input.episode_starts.len();
    let sizes = space.head_sizes();
    let num_ops = space.num_ops();
    let op_index = space.op_index();
    let width = outputs.len() / batch.max(1);
    let offsets: Vec<usize> = sizes
        .iter()
        .scan(0, |acc, &s| {
            let start = *acc;
            *acc += s;
            Some(start)
        })
        .collect();
    let q_offset = sizes.iter().sum::<usize>();
    let mut out = ActOutput {
        actions: vec![Vec::with_capacity(batch); sizes.len()],
        log_probs: vec![Vec::with_capacity(batch); sizes.len()],
        masks: input.masks.to_vec(),
        values: Vec::with_capacity(batch),
        ops: Vec::with_capacity(batch),
        q_values: Vec::with_capacity(batch * num_ops),
        op_probs: Vec::with_capacity(batch * num_ops),
        state,
    };
    let mut log_probs = vec![0.0f32; *sizes.iter().max().unwrap_or(&1)];
    let mut probs = vec![0.0f32; log_probs.len()];
    for row in 0..batch {
        let values = &outputs[row * width..(row + 1) * width];
        let q = &values[q_offset..q_offset + num_ops];
        let op_mask = &input.masks[op_index][row * num_ops..(row + 1) * num_ops];
        let op_lp = &mut log_probs[..num_ops];
        masked_log_softmax_row(
            &values[offsets[op_index]..offsets[op_index] + num_ops],
            op_mask,
            op_lp,
        );
        let op = select_op(op_lp, op_mask, rng.as_deref_mut());
        let start = out.op_probs.len();
        out.op_probs.extend(
            op_lp
                .iter()
                .zip(op_mask)
                .map(|(lp, &m)| if m { lp.exp() } else { 0.0 }),
        );
        let value = match value_mode {
            ValueMode::SelectedOp => q[op],
            ValueMode::ExpectedOp => out.op_probs[start..]
                .iter()
                .zip(q)
                .map(|(p, q)| p * q)
                .sum(),
            ValueMode::StateValue => values[q_offset + num_ops],
        };
        out.q_values.extend_from_slice(q);
        out.values.push(value);
        out.ops.push(op);
        out.actions[op_index].push(op);
        out.log_probs[op_index].push(op_lp[op]);

        for (head, &size) in sizes.iter().enumerate() {
            if head == op_index {
                continue;
            }
            let mask = &mut out.masks[head][row * size..(row + 1) * size];
            space.restrict_mask_row(head, op, mask);
            if let Some(conditional) = input.conditional_masks.get(head).filter(|c| !c.is_empty()) {
                let start = (row * num_ops + op) * size;
                for (m, &c) in mask.iter_mut().zip(&conditional[start..start + size]) {
                    *m &= c;
                }
            }
            if !mask.iter().any(|&m| m) {
                return Err(Error::EmptyMask {
                    head: space.heads()[head].name.clone(),
                    row,
                });
            }
            let lp = &mut log_probs[..size];
            masked_log_softmax_row(&values[offsets[head]..offsets[head] + size], mask, lp);
            let action = match rng.as_deref_mut() {
                Some(rng) => {
                    let p = &mut probs[..size];
                    p.iter_mut().zip(lp.iter()).for_each(|(p, l)| *p = l.exp());
                    sample_allowed(p, mask, rng)
                }
                None => argmax_allowed(lp, mask),
            };
            out.actions[head].push(action);
            out.log_probs[head].push(lp[action]);
        }
    }
    Ok(out)
}

/// Checks per-head mask lengths (and that no row is empty) and the conditional masks' lengths.
pub(crate) fn check_masks(
    space: &ActionSpace,
    masks: &[Vec<bool>],
    conditional: &[Vec<bool>],
    rows: usize,
) -> Result<()> {
    if masks.len() != space.num_heads() {
        return Err(Error::WrongLength {
            what: "per-head masks".into(),
            expected: space.num_heads(),
            found: masks.len(),
        });
    }
    for (mask, head) in masks.iter().zip(space.heads()) {
        if mask.len() != rows * head.size {
            return Err(Error::ShapeMismatch {
                name: format!("mask of head `{}`", head.name),
                expected: vec![rows, head.size],
                found: vec![mask.len()],
            });
        }
        if let Some(row) = crate::distribution::first_empty_row(mask, head.size) {
            return Err(Error::EmptyMask {
                head: head.name.clone(),
                row,
            });
        }
    }
    if conditional.is_empty() {
        return Ok(());
    }
    if conditional.len() != space.num_heads() {
        return Err(Error::WrongLength {
            what: "per-head conditional masks".into(),
            expected: space.num_heads(),
            found: conditional.len(),
        });
    }
    let num_ops = space.num_ops();
    for (mask, head) in conditional.iter().zip(space.heads()) {
        if !mask.is_empty() && mask.len() != rows * num_ops * head.size {
            return Err(Error::ShapeMismatch {
                name: format!("conditional mask of head `{}`", head.name),
                expected: vec![rows, num_ops, head.size],
                found: vec![mask.len()],
            });
        }
    }
    Ok(())
}
