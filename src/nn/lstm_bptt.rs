//! Backpropagation through time for [`Lstm`] written by hand on plain (non-autodiff) tensors.
//!
//! Through burn's autodiff every step's `W_hh` use produces its own `[4H, H]` weight gradient that
//! is then accumulated, and every per-step slice of the projected input allocates and fills a
//! zero tensor of the whole sequence in the backward pass: over 150 steps that is gigabytes of
//! memory traffic. Here the recurrence keeps only the per-step work that is truly sequential
//! (`dh_{t−1} = dz_t·W_hh` and the elementwise gate chain), and the weight gradients are single
//! large matmuls over all steps: `dW_hh = dZᵀ·H_prev`, `dW_ih = dZᵀ·X`, `db = Σ dZ`.
//! `tests/lstm.rs` checks the result against burn's autodiff of [`Lstm::forward`].

use burn::tensor::activation::sigmoid;
use burn::tensor::{Tensor, TensorData, s};

use super::lstm::{Lstm, LstmState};

/// What the backward pass needs from the forward pass of one layer (all plain tensors).
#[derive(Debug, Clone)]
struct LayerCache {
    /// The layer's input, `[batch * time, d_in]` (batch-major rows).
    input: Tensor<2>,
    /// `h_{t−1}` after the episode-start reset, `[batch * time, H]`.
    hidden_prev: Tensor<2>,
    /// Per step `t`: `[i | f | g | o]` activated gates, `[batch, 4H]`.
    gates: Vec<Tensor<2>>,
    /// Per step: `c_{t−1}` after the reset, `[batch, H]`.
    cell_prev: Vec<Tensor<2>>,
    /// Per step: `tanh(c_t)`, `[batch, H]`.
    tanh_cell: Vec<Tensor<2>>,
}

/// The forward pass of [`Lstm::forward_for_backward`], kept for [`Lstm::backward`].
#[derive(Debug, Clone)]
pub struct LstmTape {
    batch: usize,
    time: usize,
    /// Per step, `1 − episode_start` as `[batch, 1]`, if there are episode starts.
    keep: Option<Vec<Tensor<2>>>,
    layers: Vec<LayerCache>,
}

/// Gradients of one layer's parameters (plain tensors, PyTorch layout).
#[derive(Debug, Clone)]
pub struct LstmLayerGrads {
    /// `[4H, d_in]`.
    pub weight_ih: Tensor<2>,
    /// `[4H, H]`.
    pub weight_hh: Tensor<2>,
    /// `[4H]`; the gradient of `bias_ih` and of `bias_hh` alike.
    pub bias: Tensor<1>,
}

/// Gradients of an [`Lstm`] and of its input.
#[derive(Debug, Clone)]
pub struct LstmGrads {
    /// Per layer, first to last.
    pub layers: Vec<LstmLayerGrads>,
    /// Gradient of the input sequence, `[batch, time, d_input]`.
    pub input: Tensor<3>,
}

impl Lstm {
    /// [`forward`](Self::forward) on plain tensors, keeping what [`backward`](Self::backward)
    /// needs. Inputs carrying autodiff are detached; the outputs carry none.
    ///
    /// # Shapes
    /// As [`forward`](Self::forward).
    pub fn forward_for_backward(
        &self,
        input: Tensor<3>,
        state: LstmState,
        episode_starts: Option<Tensor<2>>,
    ) -> (Tensor<3>, LstmState, LstmTape) {
        let [batch, time, d_input] = input.dims();
        let h = self.d_hidden();
        let keep = episode_starts.map(|starts| {
            let keep = starts.inner().neg().add_scalar(1.0);
            (0..time)
                .map(|t| keep.clone().slice(s![.., t..t + 1]))
                .collect::<Vec<_>>()
        });
        let device = input.device().without_autodiff();
        // Scaling g's pre-activation by 2 lets one sigmoid serve all four gates:
        // tanh(x) = 2·σ(2x) − 1.
        let pattern = |a: f32, b: f32| {
            let mut v = vec![a; 4 * h];
            v[2 * h..3 * h].fill(b);
            Tensor::<2>::from_data(TensorData::new(v, [1, 4 * h]), &device)
        };
        let (pre_scale, post_scale, post_shift) =
            (pattern(1.0, 2.0), pattern(1.0, 2.0), pattern(0.0, -1.0));

        let mut layer_input = input.inner().reshape([batch * time, d_input]);
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut final_hidden = Vec::with_capacity(self.layers.len());
        let mut final_cell = Vec::with_capacity(self.layers.len());
        for (k, layer) in self.layers.iter().enumerate() {
            let w_ih = layer.weight_ih.val().inner();
            let w_hh_t = layer.weight_hh.val().inner().transpose();
            let bias =
                (layer.bias_ih.val().inner() + layer.bias_hh.val().inner()).unsqueeze_dim::<2>(0);
            let projected =
                (layer_input.clone().matmul(w_ih.transpose()) + bias).reshape([batch, time, 4 * h]);
            let mut hidden = state
                .hidden
                .clone()
                .inner()
                .slice(s![k..k + 1])
                .squeeze_dim::<2>(0);
            let mut cell = state
                .cell
                .clone()
                .inner()
                .slice(s![k..k + 1])
                .squeeze_dim::<2>(0);
            let mut cache = LayerCache {
                input: layer_input,
                hidden_prev: Tensor::empty([0, h], &device),
                gates: Vec::with_capacity(time),
                cell_prev: Vec::with_capacity(time),
                tanh_cell: Vec::with_capacity(time),
            };
            let mut hidden_prev = Vec::with_capacity(time);
            let mut outputs = Vec::with_capacity(time);
            for t in 0..time {
                if let Some(keep) = &keep {
                    hidden = hidden * keep[t].clone();
                    cell = cell * keep[t].clone();
                }
                let z = projected.clone().slice(s![.., t]).squeeze_dim::<2>(1)
                    + hidden.clone().matmul(w_hh_t.clone());
                let gates =
                    sigmoid(z * pre_scale.clone()) * post_scale.clone() + post_shift.clone();
                let [i, f, g, o] =
                    [0, 1, 2, 3].map(|j| gates.clone().slice(s![.., j * h..(j + 1) * h]));
                let new_cell = f * cell.clone() + i * g;
                let tanh_cell = new_cell.clone().tanh();
                hidden_prev.push(hidden);
                hidden = o * tanh_cell.clone();
                cache.gates.push(gates);
                cache.cell_prev.push(cell);
                cache.tanh_cell.push(tanh_cell);
                cell = new_cell;
                outputs.push(hidden.clone());
            }
            cache.hidden_prev = Tensor::stack::<3>(hidden_prev, 1).reshape([batch * time, h]);
            layers.push(cache);
            final_hidden.push(hidden);
            final_cell.push(cell);
            layer_input = Tensor::stack::<3>(outputs, 1).reshape([batch * time, h]);
        }
        let output = layer_input.reshape([batch, time, h]);
        let state = LstmState {
            hidden: Tensor::stack(final_hidden, 0),
            cell: Tensor::stack(final_cell, 0),
        };
        let tape = LstmTape {
            batch,
            time,
            keep,
            layers,
        };
        (output, state, tape)
    }

    /// Backpropagates `d_output` (the gradient of a loss with respect to the output of
    /// [`forward_for_backward`](Self::forward_for_backward)) through time. The final state is
    /// treated as unused by the loss.
    ///
    /// # Shapes
    /// - `d_output`: `[batch, time, d_hidden]`
    pub fn backward(&self, tape: &LstmTape, d_output: Tensor<3>) -> LstmGrads {
        let (batch, time) = (tape.batch, tape.time);
        let h = self.d_hidden();
        let mut d_out = d_output.inner();
        let mut grads = Vec::with_capacity(self.layers.len());
        for (layer, cache) in self.layers.iter().zip(&tape.layers).rev() {
            let w_hh = layer.weight_hh.val().inner();
            let w_ih = layer.weight_ih.val().inner();
            let device = w_hh.device();
            let mut d_hidden_next = Tensor::<2>::zeros([batch, h], &device);
            let mut d_cell_next = Tensor::<2>::zeros([batch, h], &device);
            let mut d_gates = vec![None; time];
            for t in (0..time).rev() {
                let gates = &cache.gates[t];
                let [i, f, g, o] =
                    [0, 1, 2, 3].map(|j| gates.clone().slice(s![.., j * h..(j + 1) * h]));
                let tanh_cell = cache.tanh_cell[t].clone();
                let d_hidden = d_out.clone().slice(s![.., t]).squeeze_dim::<2>(1) + d_hidden_next;
                let d_cell = d_cell_next
                    + d_hidden.clone() * o.clone() * (tanh_cell.clone().powi_scalar(2).neg() + 1.0);
                let d_i = d_cell.clone() * g.clone() * i.clone() * (i.clone().neg() + 1.0);
                let d_f = d_cell.clone()
                    * cache.cell_prev[t].clone()
                    * f.clone()
                    * (f.clone().neg() + 1.0);
                let d_g = d_cell.clone() * i * (g.powi_scalar(2).neg() + 1.0);
                let d_o = d_hidden * tanh_cell * o.clone() * (o.neg() + 1.0);
                let d_z = Tensor::cat(vec![d_i, d_f, d_g, d_o], 1);
                d_hidden_next = d_z.clone().matmul(w_hh.clone());
                d_cell_next = d_cell * f;
                if let Some(keep) = &tape.keep {
                    d_hidden_next = d_hidden_next * keep[t].clone();
                    d_cell_next = d_cell_next * keep[t].clone();
                }
                d_gates[t] = Some(d_z);
            }
            let d_z = Tensor::stack::<3>(
                d_gates
                    .into_iter()
                    .map(|d| d.expect("every step visited"))
                    .collect(),
                1,
            )
            .reshape([batch * time, 4 * h]);
            let d_z_t = d_z.clone().transpose();
            grads.push(LstmLayerGrads {
                weight_ih: d_z_t.clone().matmul(cache.input.clone()),
                weight_hh: d_z_t.matmul(cache.hidden_prev.clone()),
                bias: d_z.clone().sum_dim(0).squeeze_dim(0),
            });
            let d_input = d_z.matmul(w_ih);
            let d_in = d_input.dims()[1];
            d_out = d_input.reshape([batch, time, d_in]);
        }
        grads.reverse();
        LstmGrads {
            layers: grads,
            input: d_out,
        }
    }
}
