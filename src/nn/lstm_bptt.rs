//! Backpropagation through time for [`Lstm`] written by hand on plain (non-autodiff) tensors.
//!
//! Through burn's autodiff every step's `W_hh` use produces its own `[4H, H]` weight gradient that
//! is then accumulated, and every per-step slice of the projected input allocates and fills a
//! zero tensor of the whole sequence in the backward pass: over 150 steps that is gigabytes of
//! memory traffic. Here the recurrence keeps only the per-step work that is truly sequential
//! (`dh_{t−1} = dz_t·W_hh` and the elementwise gate chain), and the weight gradients are single
//! large matmuls over all steps: `dW_hh = dZᵀ·H_prev`, `dW_ih = dZᵀ·X`, `db = Σ dZ`.
//!
//! The recurrence itself (the per-step `h·W_hhᵀ`, the gates, and their backward) runs in one of
//! two places ([`Placement`]). On burn's CPU backend every one of the ≈ 45 tensor operations of a
//! step pays a dispatch and allocation overhead that dwarfs the arithmetic for the small batches of
//! PPO (8 rows × 64 units: ≈ 5 µs per operation against ≈ 0.1 µs of work), so there the
//! recurrence runs on plain host slices with the small-batch kernels of `nn::host`, and the large
//! products over all steps (input projection, weight gradients, input gradient) go straight to the
//! `gemm` crate into host buffers (`nn::gemm` says why not through burn). On a GPU backend the
//! whole pass stays on the device. `tests/lstm.rs` checks both against burn's
//! autodiff of [`Lstm::forward`].

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData, s};

use super::fork;
use super::gemm::{self, MatrixRef, Output, Split};
use super::host::{DensePiece, PackedMatrix, dense_in_pieces, lstm_cell};
use super::lstm::{Lstm, LstmState};
use crate::distribution::{into_host, to_host, with_host_values};

/// Where the hand-written passes of a training step run: the LSTM's recurrence in
/// [`Lstm::forward_for_backward_on`] and [`Lstm::backward`], and the policy heads in
/// [`evaluate_with_gradients_on`](crate::policy::FactoredRecurrentActorCritic::evaluate_with_gradients_on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// On plain host slices (one download of the input, one upload of the output), the large
    /// products straight through `gemm`: the fastest choice on a CPU backend.
    Host,
    /// As burn tensor operations on the tensors' device (the heads through burn's autodiff): the
    /// choice for GPU backends, where the operations run asynchronously.
    Device,
}

impl Placement {
    /// [`Host`](Self::Host) for burn's CPU backend (flex), [`Device`](Self::Device) otherwise.
    pub fn for_device(device: &Device) -> Self {
        if crate::backend::is_host(device) {
            Self::Host
        } else {
            Self::Device
        }
    }
}

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

/// What the backward pass needs from a host forward pass of one layer. Rows are batch-major
/// (`b * time + t`), as the input's.
#[derive(Debug, Clone)]
struct HostLayerCache {
    /// The layer's input, `[batch * time, d_in]`.
    input: Vec<f32>,
    /// `h_{t−1}` after the episode-start reset, `[batch * time, H]`.
    hidden_prev: Vec<f32>,
    /// `[i | f | g | o]` activated gates, `[batch * time, 4H]` (their gradients once the
    /// backward pass has run).
    gates: Vec<f32>,
    /// `c_{t−1}` after the reset, `[batch * time, H]`.
    cell_prev: Vec<f32>,
    /// `tanh(c_t)`, `[batch * time, H]`.
    tanh_cell: Vec<f32>,
}

#[derive(Debug, Clone)]
enum TapeLayers {
    Device {
        /// Per step, `1 − episode_start` as `[batch, 1]`, if there are episode starts.
        keep: Option<Vec<Tensor<2>>>,
        layers: Vec<LayerCache>,
    },
    Host {
        /// Per row `b * time + t`: whether the state is reset before step `t`.
        resets: Vec<bool>,
        layers: Vec<HostLayerCache>,
    },
}

/// The forward pass of [`Lstm::forward_for_backward`], kept for [`Lstm::backward`].
#[derive(Debug, Clone)]
pub struct LstmTape {
    batch: usize,
    time: usize,
    layers: TapeLayers,
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

/// At least this many sequences per part: a part of a few rows costs less than its hand-off.
const MIN_SEQUENCES_PER_PART: usize = 2;

/// Sequences per part (the last part may have fewer) when the per-step elementwise work of the
/// recurrence (the cell's activations forward, the gate chain backward) for `batch` sequences is
/// spread over the cores, runs of whole sequences one per part. On one thread this work was about
/// 3 % of a `perf` profile of the 32 × 150 update (some 60 ms of its LSTM's 450;
/// `docs/performance.md`, 2026-12-05 evening); every element is computed as on one thread, so the
/// split does not change any bit.
fn sequences_per_part(batch: usize) -> usize {
    let parts = (batch / MIN_SEQUENCES_PER_PART).clamp(1, fork::threads());
    batch.div_ceil(parts).max(1)
}

/// One part's rows of the forward step's state and per-row buffers.
struct CellPart<'a> {
    hidden: &'a mut [f32],
    cell: &'a mut [f32],
    gates: &'a mut [f32],
    tanh_cell: &'a mut [f32],
    output: &'a mut [f32],
    hidden_prev: &'a mut [f32],
    cell_prev: &'a mut [f32],
}

/// Begins a step of one row: zeroes its state where an episode starts, then keeps the state the
/// step reads (`h_{t−1}`, `c_{t−1}`) for the backward pass.
///
/// # Shapes
/// - every slice: `H`
fn begin_step(
    reset: bool,
    hidden: &mut [f32],
    cell: &mut [f32],
    hidden_prev: &mut [f32],
    cell_prev: &mut [f32],
) {
    if reset {
        hidden.fill(0.0);
        cell.fill(0.0);
    }
    hidden_prev.copy_from_slice(hidden);
    cell_prev.copy_from_slice(cell);
}

/// One part's rows of the backward step's buffers.
struct GatePart<'a> {
    d_step: &'a mut [f32],
    d_cell_next: &'a mut [f32],
    /// The activated gates of the part's rows, replaced step by step by their gradients.
    gates: &'a mut [f32],
}

/// `input·w_ihᵀ` for every row, in one product. The bias is added per step with the recurrent
/// term instead of written first: filling the `[rows, 4H]` buffer with it (39 MB in the 32 × 150
/// update) was one core's pass while the other waited, and the product then had to read it back.
///
/// # Shapes
/// - `input`: `[rows, d_in]`; `w_ih`: `[4H, d_in]`
/// - output: `[rows, 4H]`
fn project_inputs(input: &[f32], rows: usize, w_ih: &[f32], d_gates: usize) -> Vec<f32> {
    let d_in = input.len() / rows.max(1);
    let mut projected = vec![0.0; rows * d_gates];
    gemm::matmul(
        MatrixRef::new(input, rows, d_in),
        MatrixRef::new(w_ih, d_gates, d_in).t(),
        &mut projected,
        Output::Overwrite,
        Split::WhenLarge,
    );
    projected
}

impl Lstm {
    /// [`forward`](Self::forward) on plain tensors, keeping what [`backward`](Self::backward)
    /// needs, with the recurrence where [`Placement::for_device`] puts it for the input's device.
    /// Inputs carrying autodiff are detached; the outputs carry none.
    ///
    /// # Shapes
    /// As [`forward`](Self::forward).
    pub fn forward_for_backward(
        &self,
        input: Tensor<3>,
        state: LstmState,
        episode_starts: Option<Tensor<2>>,
    ) -> (Tensor<3>, LstmState, LstmTape) {
        let placement = Placement::for_device(&input.device());
        self.forward_for_backward_on(placement, input, state, episode_starts)
    }

    /// [`forward_for_backward`](Self::forward_for_backward) with the recurrence placed by the
    /// caller; [`backward`](Self::backward) follows the tape's choice. Both placements compute the
    /// same function (to float rounding).
    ///
    /// # Shapes
    /// As [`forward`](Self::forward).
    pub fn forward_for_backward_on(
        &self,
        placement: Placement,
        input: Tensor<3>,
        state: LstmState,
        episode_starts: Option<Tensor<2>>,
    ) -> (Tensor<3>, LstmState, LstmTape) {
        match placement {
            Placement::Host => self.forward_on_host(input, state, episode_starts),
            Placement::Device => self.forward_on_device(input, state, episode_starts),
        }
    }

    fn forward_on_device(
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
            layers: TapeLayers::Device { keep, layers },
        };
        (output, state, tape)
    }

    fn forward_on_host(
        &self,
        input: Tensor<3>,
        state: LstmState,
        episode_starts: Option<Tensor<2>>,
    ) -> (Tensor<3>, LstmState, LstmTape) {
        let [batch, time, d_input] = input.dims();
        let h = self.d_hidden();
        let rows = batch * time;
        let resets: Vec<bool> = match episode_starts {
            Some(starts) => to_host(&starts.inner()).iter().map(|&s| s != 0.0).collect(),
            None => vec![false; rows],
        };
        let device = input.device().without_autodiff();
        let initial_hidden = to_host(&state.hidden.inner());
        let initial_cell = to_host(&state.cell.inner());

        let mut layer_input = into_host(input.inner().reshape([rows, d_input]));
        let mut layers = Vec::with_capacity(self.layers.len());
        let mut final_hidden = Vec::with_capacity(self.layers.len() * batch * h);
        let mut final_cell = Vec::with_capacity(self.layers.len() * batch * h);
        for (k, layer) in self.layers.iter().enumerate() {
            let bias = to_host(&(layer.bias_ih.val().inner() + layer.bias_hh.val().inner()));
            // The projection becomes the gates in place: each step adds `h·W_hhᵀ` and the bias to
            // its rows and activates them, so no second `[rows, 4H]` buffer is written.
            let mut gates = with_host_values(layer.weight_ih.val().inner(), |w_ih| {
                project_inputs(&layer_input, rows, w_ih, 4 * h)
            });
            // `h·W_hhᵀ` takes `W_hhᵀ` as `[H, 4H]`.
            let recurrent_weight = with_host_values(layer.weight_hh.val().inner(), |w_hh| {
                PackedMatrix::pack_transposed(w_hh, h, 4 * h)
            });
            let mut hidden = initial_hidden[k * batch * h..(k + 1) * batch * h].to_vec();
            let mut cell = initial_cell[k * batch * h..(k + 1) * batch * h].to_vec();
            let mut hidden_prev = vec![0.0; rows * h];
            let mut cell_prev = vec![0.0; rows * h];
            let mut tanh_cell = vec![0.0; rows * h];
            let mut output = vec![0.0; rows * h];
            let mut recurrent = Vec::new();
            // The first step begins here; every later one at the end of the step before it.
            for b in (0..batch).filter(|_| time > 0) {
                let (state, row) = (b * h..(b + 1) * h, b * time);
                begin_step(
                    resets[row],
                    &mut hidden[state.clone()],
                    &mut cell[state],
                    &mut hidden_prev[row * h..(row + 1) * h],
                    &mut cell_prev[row * h..(row + 1) * h],
                );
            }
            let sequences = sequences_per_part(batch);
            for t in 0..time {
                dense_in_pieces(&hidden, batch, &recurrent_weight, &mut recurrent);
                // Each part owns whole sequences: its rows of the state and of every per-row
                // buffer (rows are batch-major, so a run of sequences is one contiguous range).
                // A part also begins its rows' next step (reset, `h_{t−1}` and `c_{t−1}` kept), so
                // that no pass over the rows runs on one core between the steps.
                let parts: Vec<CellPart<'_>> = hidden
                    .chunks_mut(sequences * h)
                    .zip(cell.chunks_mut(sequences * h))
                    .zip(gates.chunks_mut(sequences * time * 4 * h))
                    .zip(tanh_cell.chunks_mut(sequences * time * h))
                    .zip(output.chunks_mut(sequences * time * h))
                    .zip(hidden_prev.chunks_mut(sequences * time * h))
                    .zip(cell_prev.chunks_mut(sequences * time * h))
                    .map(
                        |(
                            (((((hidden, cell), gates), tanh_cell), output), hidden_prev),
                            cell_prev,
                        )| {
                            CellPart {
                                hidden,
                                cell,
                                gates,
                                tanh_cell,
                                output,
                                hidden_prev,
                                cell_prev,
                            }
                        },
                    )
                    .collect();
                fork::for_each_part(parts, &|index, part| {
                    let first = index * sequences;
                    for local in 0..part.hidden.len() / h {
                        let (b, at) = (first + local, local * time + t);
                        let gates = &mut part.gates[at * 4 * h..(at + 1) * 4 * h];
                        for piece in &recurrent {
                            let width = piece.columns.len();
                            for ((z, &r), &bias_value) in gates[piece.columns.clone()]
                                .iter_mut()
                                .zip(&piece.values[b * width..(b + 1) * width])
                                .zip(&bias[piece.columns.clone()])
                            {
                                *z += r + bias_value;
                            }
                        }
                        let state = local * h..(local + 1) * h;
                        lstm_cell(
                            gates,
                            &mut part.cell[state.clone()],
                            &mut part.tanh_cell[at * h..(at + 1) * h],
                            &mut part.hidden[state.clone()],
                        );
                        part.output[at * h..(at + 1) * h]
                            .copy_from_slice(&part.hidden[state.clone()]);
                        if t + 1 < time {
                            let next = at + 1;
                            begin_step(
                                resets[b * time + t + 1],
                                &mut part.hidden[state.clone()],
                                &mut part.cell[state],
                                &mut part.hidden_prev[next * h..(next + 1) * h],
                                &mut part.cell_prev[next * h..(next + 1) * h],
                            );
                        }
                    }
                });
            }
            let cache = HostLayerCache {
                input: layer_input,
                hidden_prev,
                gates,
                cell_prev,
                tanh_cell,
            };
            layers.push(cache);
            final_hidden.extend_from_slice(&hidden);
            final_cell.extend_from_slice(&cell);
            layer_input = output;
        }
        let num_layers = self.layers.len();
        let output = Tensor::from_data(TensorData::new(layer_input, [batch, time, h]), &device);
        let state = LstmState {
            hidden: Tensor::from_data(
                TensorData::new(final_hidden, [num_layers, batch, h]),
                &device,
            ),
            cell: Tensor::from_data(TensorData::new(final_cell, [num_layers, batch, h]), &device),
        };
        let tape = LstmTape {
            batch,
            time,
            layers: TapeLayers::Host { resets, layers },
        };
        (output, state, tape)
    }

    /// Backpropagates `d_output` (the gradient of a loss with respect to the output of
    /// [`forward_for_backward`](Self::forward_for_backward)) through time. The final state is
    /// treated as unused by the loss.
    ///
    /// The tape is consumed: on the host each layer's gradients of the gates are written over
    /// its activated gates, which the backward pass reads once per step, so that no second
    /// `[batch · time, 4H]` buffer is allocated and written.
    ///
    /// # Shapes
    /// - `d_output`: `[batch, time, d_hidden]`
    pub fn backward(&self, tape: LstmTape, d_output: Tensor<3>) -> LstmGrads {
        match tape.layers {
            TapeLayers::Device { keep, layers } => {
                self.backward_on_device(tape.batch, tape.time, keep.as_deref(), &layers, d_output)
            }
            TapeLayers::Host { resets, layers } => {
                self.backward_on_host(tape.batch, tape.time, &resets, layers, d_output)
            }
        }
    }

    fn backward_on_host(
        &self,
        batch: usize,
        time: usize,
        resets: &[bool],
        caches: Vec<HostLayerCache>,
        d_output: Tensor<3>,
    ) -> LstmGrads {
        let h = self.d_hidden();
        let rows = batch * time;
        let device = d_output.device().without_autodiff();
        let mut d_input = into_host(d_output.inner());
        let mut grads = Vec::with_capacity(self.layers.len());
        for (layer, mut cache) in self.layers.iter().zip(caches).rev() {
            let d_out = d_input;
            // `dz·W_hh` takes `W_hh` as it is, `[4H, H]`.
            let recurrent_weight = with_host_values(layer.weight_hh.val().inner(), |w_hh| {
                PackedMatrix::pack(w_hh, 4 * h, h)
            });
            let mut d_gates_step = vec![0.0; batch * 4 * h];
            // `dh_{t+1}·∂h_{t+1}/∂h_t`, in the column pieces `dense_in_pieces` leaves it in.
            let mut d_hidden_next = vec![DensePiece {
                columns: 0..h,
                values: vec![0.0; batch * h],
            }];
            let mut d_cell_next = vec![0.0; batch * h];
            let sequences = sequences_per_part(batch);
            for t in (0..time).rev() {
                // As in the forward pass, each part owns whole sequences.
                let parts: Vec<GatePart<'_>> = d_gates_step
                    .chunks_mut(sequences * 4 * h)
                    .zip(d_cell_next.chunks_mut(sequences * h))
                    .zip(cache.gates.chunks_mut(sequences * time * 4 * h))
                    .map(|((d_step, d_cell_next), gates)| GatePart {
                        d_step,
                        d_cell_next,
                        gates,
                    })
                    .collect();
                let d_hidden_incoming = &d_hidden_next;
                let (tanh_cells, cells_prev) = (&cache.tanh_cell, &cache.cell_prev);
                fork::for_each_part(parts, &|index, part| {
                    let first = index * sequences;
                    for local in 0..part.d_cell_next.len() / h {
                        let (b, at) = (first + local, local * time + t);
                        let row = b * time + t;
                        let gates = &mut part.gates[at * 4 * h..(at + 1) * 4 * h];
                        let d_step = &mut part.d_step[local * 4 * h..(local + 1) * 4 * h];
                        let d_cell_next = &mut part.d_cell_next[local * h..(local + 1) * h];
                        for piece in d_hidden_incoming {
                            let width = piece.columns.len();
                            let incoming = &piece.values[b * width..(b + 1) * width];
                            for (j, &d_next) in piece.columns.clone().zip(incoming) {
                                let (i, f, g, o) =
                                    (gates[j], gates[h + j], gates[2 * h + j], gates[3 * h + j]);
                                let tanh_cell = tanh_cells[row * h + j];
                                let d_hidden = d_out[row * h + j] + d_next;
                                let d_cell =
                                    d_cell_next[j] + d_hidden * o * (1.0 - tanh_cell * tanh_cell);
                                d_step[j] = d_cell * g * i * (1.0 - i);
                                d_step[h + j] = d_cell * cells_prev[row * h + j] * f * (1.0 - f);
                                d_step[2 * h + j] = d_cell * i * (1.0 - g * g);
                                d_step[3 * h + j] = d_hidden * tanh_cell * o * (1.0 - o);
                                d_cell_next[j] = d_cell * f;
                            }
                        }
                        // The step's gates are read for the last time: their gradients replace them.
                        gates.copy_from_slice(d_step);
                    }
                });
                dense_in_pieces(&d_gates_step, batch, &recurrent_weight, &mut d_hidden_next);
                for b in (0..batch).filter(|&b| resets[b * time + t]) {
                    for piece in &mut d_hidden_next {
                        let width = piece.columns.len();
                        piece.values[b * width..(b + 1) * width].fill(0.0);
                    }
                    d_cell_next[b * h..(b + 1) * h].fill(0.0);
                }
            }
            let d_in = cache.input.len() / rows;
            let d_gates = &cache.gates;
            let d_z = MatrixRef::new(d_gates, rows, 4 * h);
            // `dZᵀ·input` and `dZᵀ·h_{t−1}` over all steps: `[4H, d_in]` and `[4H, H]`.
            let weight_ih = gemm::weight_gradient(d_z, MatrixRef::new(&cache.input, rows, d_in));
            let weight_hh = gemm::weight_gradient(d_z, MatrixRef::new(&cache.hidden_prev, rows, h));
            let mut d_layer_input = vec![0.0; rows * d_in];
            with_host_values(layer.weight_ih.val().inner(), |w_ih| {
                let w_ih = MatrixRef::new(w_ih, 4 * h, d_in);
                gemm::matmul(
                    d_z,
                    w_ih,
                    &mut d_layer_input,
                    Output::Overwrite,
                    Split::WhenLarge,
                );
            });
            let tensor = |values: Vec<f32>, shape: [usize; 2]| {
                Tensor::<2>::from_data(TensorData::new(values, shape), &device)
            };
            grads.push(LstmLayerGrads {
                weight_ih: tensor(weight_ih, [4 * h, d_in]),
                weight_hh: tensor(weight_hh, [4 * h, h]),
                bias: Tensor::from_data(
                    TensorData::new(gemm::column_sums(d_gates, 4 * h), [4 * h]),
                    &device,
                ),
            });
            d_input = d_layer_input;
        }
        grads.reverse();
        let d_in = d_input.len() / rows.max(1);
        LstmGrads {
            layers: grads,
            input: Tensor::from_data(TensorData::new(d_input, [batch, time, d_in]), &device),
        }
    }

    fn backward_on_device(
        &self,
        batch: usize,
        time: usize,
        keep: Option<&[Tensor<2>]>,
        caches: &[LayerCache],
        d_output: Tensor<3>,
    ) -> LstmGrads {
        let h = self.d_hidden();
        let mut d_out = d_output.inner();
        let mut grads = Vec::with_capacity(self.layers.len());
        for (layer, cache) in self.layers.iter().zip(caches).rev() {
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
                if let Some(keep) = keep {
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
