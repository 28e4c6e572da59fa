//! Acting on the host: a plain-`f32` copy of the network for small batches on the CPU.
//!
//! Acting multiplies a few rows by every weight matrix once per environment step. Through burn's
//! CPU backend each of those small products pays for a general matrix multiply that packs the whole
//! weight matrix first, plus per-operation dispatch; the host copy streams each weight once
//! (`nn::host`) and needs no device round trip for the recurrent state. The
//! decisions are made by exactly the code [`FactoredRecurrentActorCritic::act`] uses, and
//! `tests/policy_properties.rs` checks both paths against each other. Build a new copy after every
//! optimizer step (the PPO trainer builds one per rollout).

use burn::module::Param;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use rand::Rng;
use rand::rngs::StdRng;

use super::act::{ActInput, ActMode, ActOutput, check_masks, decide};
use super::config::FactoredRecurrentActorCriticConfig;
use super::network::{FactoredRecurrentActorCritic, LAYER_NORM_EPSILON, Mlp, checked_inputs};
use crate::action_space::ActionSpace;
use crate::error::{Error, Result};
use crate::nn::host::{PackedMatrix, dense, layer_norm, lstm_cell, relu};

/// The recurrent state of a [`HostActor`]: `h` and `c` as `[num_layers, batch, d_hidden]` each,
/// row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostLstmState {
    /// LSTM layers.
    pub num_layers: usize,
    /// Rows (environments).
    pub batch: usize,
    /// `h`, `[num_layers, batch, d_hidden]`.
    pub hidden: Vec<f32>,
    /// `c`, `[num_layers, batch, d_hidden]`.
    pub cell: Vec<f32>,
}

impl HostLstmState {
    /// Zeros for `batch` rows.
    pub fn zeros(num_layers: usize, batch: usize, d_hidden: usize) -> Self {
        let n = num_layers * batch * d_hidden;
        Self {
            num_layers,
            batch,
            hidden: vec![0.0; n],
            cell: vec![0.0; n],
        }
    }

    /// Width of one row's state in one layer.
    pub fn d_hidden(&self) -> usize {
        self.hidden
            .len()
            .checked_div(self.num_layers * self.batch)
            .unwrap_or(0)
    }

    /// The state of some rows only, in the order given.
    ///
    /// # Shapes
    /// `[num_layers, batch, d_hidden]` → `[num_layers, rows.len(), d_hidden]`.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first row that is not below `batch`.
    pub fn select_rows(&self, rows: &[usize]) -> Result<Self> {
        if let Some(&row) = rows.iter().find(|&&row| row >= self.batch) {
            return Err(Error::Invalid {
                name: "rows".into(),
                reason: format!("row {row} of a recurrent state with {} rows", self.batch),
            });
        }
        let d_hidden = self.d_hidden();
        let expected = self.num_layers * self.batch * d_hidden;
        for (name, len) in [
            ("state.hidden", self.hidden.len()),
            ("state.cell", self.cell.len()),
        ] {
            if len != expected || (len > 0 && d_hidden == 0) {
                return Err(Error::ShapeMismatch {
                    name: name.into(),
                    expected: vec![self.num_layers, self.batch, d_hidden],
                    found: vec![len],
                });
            }
        }
        let pick = |values: &[f32]| {
            let mut out = Vec::with_capacity(self.num_layers * rows.len() * d_hidden);
            for layer in 0..self.num_layers {
                for &row in rows {
                    let start = (layer * self.batch + row) * d_hidden;
                    out.extend_from_slice(&values[start..start + d_hidden]);
                }
            }
            out
        };
        Ok(Self {
            num_layers: self.num_layers,
            batch: rows.len(),
            hidden: pick(&self.hidden),
            cell: pick(&self.cell),
        })
    }
}

#[derive(Debug, Clone)]
struct Dense {
    /// `[d_in, d_out]`.
    weight: PackedMatrix,
    bias: Vec<f32>,
}

impl Dense {
    fn from_linear(linear: &Linear) -> Self {
        let [d_in, d_out] = linear.weight.dims();
        Self {
            weight: PackedMatrix::pack(&host(&linear.weight), d_in, d_out),
            bias: linear.bias.as_ref().map(host).unwrap_or_default(),
        }
    }

    fn d_out(&self) -> usize {
        self.weight.n()
    }

    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut out = vec![0.0; rows * self.d_out()];
        dense(x, rows, &self.weight, &self.bias, &mut out);
        out
    }
}

/// The layers of an MLP with ReLU between them (an MLP has at least one layer).
fn mlp_forward(layers: &[Dense], x: &[f32], rows: usize) -> Vec<f32> {
    let mut x = layers[0].forward(x, rows);
    for layer in &layers[1..] {
        relu(&mut x);
        x = layer.forward(&x, rows);
    }
    x
}

#[derive(Debug, Clone)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

impl Norm {
    fn from_layer_norm(norm: &LayerNorm) -> Self {
        let gamma = host(&norm.gamma);
        let beta = norm
            .beta
            .as_ref()
            .map(host)
            .unwrap_or_else(|| vec![0.0; gamma.len()]);
        Self { gamma, beta }
    }

    fn apply(&self, x: &mut [f32]) {
        layer_norm(
            x,
            self.gamma.len(),
            &self.gamma,
            &self.beta,
            LAYER_NORM_EPSILON as f32,
        );
    }
}

#[derive(Debug, Clone)]
struct LstmLayerHost {
    /// `[d_in, 4H]` (PyTorch's `weight_ih` transposed).
    input: PackedMatrix,
    /// `[H, 4H]`.
    recurrent: PackedMatrix,
    /// `bias_ih + bias_hh`.
    bias: Vec<f32>,
}

/// A host copy of a [`FactoredRecurrentActorCritic`] for acting (see the module documentation).
#[derive(Debug, Clone)]
pub struct HostActor {
    config: FactoredRecurrentActorCriticConfig,
    space: ActionSpace,
    embedding: Option<Vec<f32>>,
    feature: Dense,
    feature_norm: Norm,
    lstm: Vec<LstmLayerHost>,
    lstm_norm: Norm,
    heads: Vec<Vec<Dense>>,
    /// The critic's first layer split: the state rows `[H, C]` with the bias, and the op rows
    /// `[num_ops, C]`.
    critic_state: Dense,
    critic_ops: Vec<f32>,
    critic_rest: Vec<Dense>,
    state_value: Option<Vec<Dense>>,
}

fn host<const D: usize>(param: &Param<Tensor<D>>) -> Vec<f32> {
    crate::distribution::to_host(&param.val())
}

fn dense_layers(mlp: &Mlp) -> Vec<Dense> {
    mlp.layers.iter().map(Dense::from_linear).collect()
}

impl FactoredRecurrentActorCritic {
    /// A host copy for acting on the CPU (one read of every parameter).
    pub fn host_actor(&self) -> HostActor {
        let h = self.config.d_hidden;
        let num_ops = self.space.num_ops();
        let lstm = self
            .lstm
            .layers
            .iter()
            .map(|layer| {
                let [rows, d_in] = layer.weight_ih.dims();
                let bias = host(&layer.bias_ih)
                    .iter()
                    .zip(host(&layer.bias_hh))
                    .map(|(a, b)| a + b)
                    .collect();
                LstmLayerHost {
                    input: PackedMatrix::pack_transposed(&host(&layer.weight_ih), d_in, rows),
                    recurrent: PackedMatrix::pack_transposed(&host(&layer.weight_hh), h, rows),
                    bias,
                }
            })
            .collect();
        let first_layer = &self.critic.layers[0];
        let first_weight = host(&first_layer.weight);
        let c = first_layer.weight.dims()[1];
        let critic_state = Dense {
            weight: PackedMatrix::pack(&first_weight[..h * c], h, c),
            bias: first_layer.bias.as_ref().map(host).unwrap_or_default(),
        };
        HostActor {
            config: self.config.clone(),
            space: self.space.clone(),
            embedding: self.embedding.as_ref().map(|e| host(&e.weight)),
            feature: Dense::from_linear(&self.feature),
            feature_norm: Norm::from_layer_norm(&self.feature_norm),
            lstm,
            lstm_norm: Norm::from_layer_norm(&self.lstm_norm),
            heads: self.heads.iter().map(dense_layers).collect(),
            critic_ops: first_weight[h * c..(h + num_ops) * c].to_vec(),
            critic_state,
            critic_rest: self.critic.layers[1..]
                .iter()
                .map(Dense::from_linear)
                .collect(),
            state_value: self.state_value.as_ref().map(dense_layers),
        }
    }
}

impl HostActor {
    /// The action space.
    pub fn space(&self) -> &ActionSpace {
        &self.space
    }

    /// An all-zero recurrent state for `batch` rows.
    pub fn initial_state(&self, batch: usize) -> HostLstmState {
        HostLstmState::zeros(self.config.num_lstm_layers, batch, self.config.d_hidden)
    }

    /// As [`FactoredRecurrentActorCritic::act`], on the host.
    ///
    /// # Errors
    /// As [`FactoredRecurrentActorCritic::act`].
    pub fn act<R: Rng + ?Sized>(
        &self,
        input: &ActInput<'_>,
        state: &HostLstmState,
        mode: ActMode,
        rng: &mut R,
    ) -> Result<ActOutput<HostLstmState>> {
        match mode {
            ActMode::Stochastic => self.act_with(input, state, Some(rng)),
            ActMode::Deterministic => self.act_with::<R>(input, state, None),
        }
    }

    /// [`act`](Self::act) in [`ActMode::Deterministic`].
    ///
    /// # Errors
    /// As [`FactoredRecurrentActorCritic::act`].
    pub fn act_deterministic(
        &self,
        input: &ActInput<'_>,
        state: &HostLstmState,
    ) -> Result<ActOutput<HostLstmState>> {
        self.act_with::<StdRng>(input, state, None)
    }

    /// The deterministic act's value (see [`FactoredRecurrentActorCritic::bootstrap_value`]).
    ///
    /// # Errors
    /// As [`FactoredRecurrentActorCritic::act`].
    pub fn bootstrap_value(&self, input: &ActInput<'_>, state: &HostLstmState) -> Result<Vec<f32>> {
        Ok(self.act_deterministic(input, state)?.values)
    }

    fn act_with<R: Rng + ?Sized>(
        &self,
        input: &ActInput<'_>,
        state: &HostLstmState,
        rng: Option<&mut R>,
    ) -> Result<ActOutput<HostLstmState>> {
        let batch = input.episode_starts.len();
        check_masks(&self.space, input.masks, input.conditional_masks, batch)?;
        let expected = self.config.num_lstm_layers * batch * self.config.d_hidden;
        for (name, len) in [
            ("state.hidden", state.hidden.len()),
            ("state.cell", state.cell.len()),
        ] {
            if state.batch != batch
                || state.num_layers != self.config.num_lstm_layers
                || len != expected
            {
                return Err(Error::ShapeMismatch {
                    name: name.into(),
                    expected: vec![self.config.num_lstm_layers, batch, self.config.d_hidden],
                    found: vec![len],
                });
            }
        }
        let indices = checked_inputs(&self.config, input.observations, input.categorical, batch)?;
        let (outputs, state) = self.forward(input, &indices, state);
        decide(
            &self.space,
            self.config.value_mode,
            input,
            &outputs,
            rng,
            state,
        )
    }

    /// One step of the network for every row: the per-row `[head logits | Q(s, ·) | V(s)]` and the
    /// new recurrent state.
    fn forward(
        &self,
        input: &ActInput<'_>,
        indices: &[i64],
        state: &HostLstmState,
    ) -> (Vec<f32>, HostLstmState) {
        let batch = input.episode_starts.len();
        let c = &self.config;
        // Observation features followed by the flattened embeddings.
        let d_input = c.d_input();
        let mut x = Vec::with_capacity(batch * d_input);
        for row in 0..batch {
            x.extend_from_slice(
                &input.observations[row * c.d_observation..(row + 1) * c.d_observation],
            );
            if let (Some(table), Some(cat)) = (&self.embedding, &c.categorical) {
                for &index in &indices[row * cat.num_inputs..(row + 1) * cat.num_inputs] {
                    let start = index as usize * cat.d_embedding;
                    x.extend_from_slice(&table[start..start + cat.d_embedding]);
                }
            }
        }
        let mut features = self.feature.forward(&x, batch);
        self.feature_norm.apply(&mut features);
        relu(&mut features);

        let h = c.d_hidden;
        let mut next = HostLstmState {
            num_layers: state.num_layers,
            batch,
            hidden: state.hidden.clone(),
            cell: state.cell.clone(),
        };
        let mut layer_input = features;
        for (k, layer) in self.lstm.iter().enumerate() {
            let hidden = &mut next.hidden[k * batch * h..(k + 1) * batch * h];
            let cell = &mut next.cell[k * batch * h..(k + 1) * batch * h];
            for (row, &start) in input.episode_starts.iter().enumerate() {
                if start {
                    hidden[row * h..(row + 1) * h].fill(0.0);
                    cell[row * h..(row + 1) * h].fill(0.0);
                }
            }
            let mut z = vec![0.0; batch * 4 * h];
            dense(&layer_input, batch, &layer.input, &layer.bias, &mut z);
            let mut recurrent = vec![0.0; batch * 4 * h];
            dense(hidden, batch, &layer.recurrent, &[], &mut recurrent);
            let mut tanh_cell = vec![0.0; h];
            for row in 0..batch {
                let z = &mut z[row * 4 * h..(row + 1) * 4 * h];
                for (z, r) in z.iter_mut().zip(&recurrent[row * 4 * h..(row + 1) * 4 * h]) {
                    *z += r;
                }
                lstm_cell(
                    z,
                    &mut cell[row * h..(row + 1) * h],
                    &mut tanh_cell,
                    &mut hidden[row * h..(row + 1) * h],
                );
            }
            layer_input = hidden.to_vec();
        }
        let mut trunk = layer_input;
        self.lstm_norm.apply(&mut trunk);

        let num_ops = self.space.num_ops();
        let logits: Vec<Vec<f32>> = self
            .heads
            .iter()
            .map(|head| mlp_forward(head, &trunk, batch))
            .collect();
        // Q(s, ·): the state part of the first critic layer once, each op's row added to it.
        let state_part = self.critic_state.forward(&trunk, batch);
        let width_c = self.critic_state.d_out();
        let mut per_op = Vec::with_capacity(batch * num_ops * width_c);
        for row in 0..batch {
            for op in 0..num_ops {
                let s = &state_part[row * width_c..(row + 1) * width_c];
                let w = &self.critic_ops[op * width_c..(op + 1) * width_c];
                per_op.extend(s.iter().zip(w).map(|(a, b)| a + b));
            }
        }
        let q = if self.critic_rest.is_empty() {
            per_op
        } else {
            relu(&mut per_op);
            mlp_forward(&self.critic_rest, &per_op, batch * num_ops)
        };
        let v = self
            .state_value
            .as_ref()
            .map(|layers| mlp_forward(layers, &trunk, batch));

        let sizes = self.space.head_sizes();
        let width = sizes.iter().sum::<usize>() + num_ops + usize::from(v.is_some());
        let mut outputs = Vec::with_capacity(batch * width);
        for row in 0..batch {
            for (head, &size) in logits.iter().zip(&sizes) {
                outputs.extend_from_slice(&head[row * size..(row + 1) * size]);
            }
            outputs.extend_from_slice(&q[row * num_ops..(row + 1) * num_ops]);
            if let Some(v) = &v {
                outputs.push(v[row]);
            }
        }
        (outputs, next)
    }
}
