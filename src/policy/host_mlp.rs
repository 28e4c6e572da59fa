//! The policy heads' forward and backward passes on host buffers, for training on burn's CPU
//! backend.
//!
//! Through burn's autodiff every head layer allocates its product, its bias sum and its ReLU as new
//! tensors, and the backward pass allocates as many again plus one `[rows, d_hidden]` input
//! gradient per head that is then summed; with burn-flex's output copy (`nn::gemm`) that was the
//! largest part of the 32 × 150 update after the LSTM (`docs/performance.md`, 2026-12-06). Here
//! every layer is one `gemm` product into a buffer that starts as its bias, ReLU is applied in
//! place, and every head's input gradient is added by its product into one buffer per core.
//!
//! The heads are spread over the cores whole ([`forward_all`], [`backward_all`]), each product on
//! one thread, rather than each product split over the cores: the passes between the products
//! (bias, ReLU, its gradient mask, bias gradients) then run in parallel too, and no product waits
//! for the slowest core at its end.

use burn::nn::Linear;

use super::network::Mlp;
use crate::distribution::to_host;
use crate::nn::fork;
use crate::nn::gemm::{self, MatrixRef, Output, Split};
use crate::nn::host::relu;

/// One `Linear` layer's parameters as host values.
#[derive(Debug, Clone)]
pub(crate) struct HostLinear {
    /// `[d_input, d_output]`, as burn's `Linear` holds it.
    pub weight: Vec<f32>,
    /// `[d_output]`, if the layer has a bias.
    pub bias: Option<Vec<f32>>,
    pub d_input: usize,
    pub d_output: usize,
}

impl HostLinear {
    pub(crate) fn of(linear: &Linear) -> Self {
        let [d_input, d_output] = linear.weight.dims();
        Self {
            weight: to_host(&linear.weight.val().inner()),
            bias: linear.bias.as_ref().map(|b| to_host(&b.val().inner())),
            d_input,
            d_output,
        }
    }

    /// `input·W + b` for every row, in one product into a buffer that starts as the bias. An input
    /// narrower than the layer meets the first rows of `W` only (the critic's state part, without
    /// its one-hot op columns).
    ///
    /// # Shapes
    /// - `input`: `[rows, d]` with `d ≤ d_input`
    /// - output: `[rows, d_output]`
    pub(crate) fn forward(&self, input: &[f32], rows: usize, split: Split) -> Vec<f32> {
        let d = input.len() / rows.max(1);
        let mut output = match &self.bias {
            Some(bias) => bias.repeat(rows),
            None => vec![0.0; rows * self.d_output],
        };
        gemm::matmul(
            MatrixRef::new(input, rows, d),
            MatrixRef::new(&self.weight[..d * self.d_output], d, self.d_output),
            &mut output,
            Output::Accumulate,
            split,
        );
        output
    }
}

/// The ReLU gradient mask: `d` passes where the ReLU's `output` was positive. A select, not a
/// branch: the signs are as good as random, and a mispredicted branch per element was 12 % of the
/// heads' backward pass.
fn relu_backward(d: &mut [f32], output: &[f32]) {
    for (d, &h) in d.iter_mut().zip(output) {
        *d = if h > 0.0 { *d } else { 0.0 };
    }
}

/// Gradients of one `Linear` layer (host values, the parameters' layouts).
#[derive(Debug, Clone)]
pub(crate) struct LinearGrads {
    /// `[d_input, d_output]`.
    pub weight: Vec<f32>,
    /// `[d_output]`, if the layer has a bias.
    pub bias: Option<Vec<f32>>,
}

/// An [`Mlp`]'s forward pass over some rows, kept for [`HostMlpTape::backward`].
#[derive(Debug, Clone)]
pub(crate) struct HostMlpTape {
    layers: Vec<HostLinear>,
    /// The ReLU outputs of the hidden layers (the inputs of every layer after the first),
    /// `[rows, d_output]` each.
    hidden: Vec<Vec<f32>>,
    rows: usize,
}

impl HostMlpTape {
    /// Runs the layers over `input` (ReLU between layers, none after the last) on the calling
    /// thread and returns the output and what the backward pass needs. Agrees with
    /// [`Mlp::forward`] to float rounding.
    ///
    /// # Shapes
    /// - `input`: `[rows, d_input]`
    /// - output: `[rows, d_output]`
    fn forward(layers: Vec<HostLinear>, input: &[f32], rows: usize) -> (Vec<f32>, Self) {
        let mut hidden: Vec<Vec<f32>> = Vec::with_capacity(layers.len().saturating_sub(1));
        let mut output = Vec::new();
        for (index, layer) in layers.iter().enumerate() {
            let layer_input = if index == 0 {
                input
            } else {
                &hidden[index - 1]
            };
            let mut result = layer.forward(layer_input, rows, Split::Never);
            if index + 1 < layers.len() {
                relu(&mut result);
                hidden.push(result);
            } else {
                output = result;
            }
        }
        let tape = Self {
            layers,
            hidden,
            rows,
        };
        (output, tape)
    }

    /// Backpropagates `d_output` through the layers: returns every layer's gradients (first
    /// layer first) and adds the gradient of the input to `d_input`.
    ///
    /// # Shapes
    /// - `input`: `[rows, d_input]`, the input of [`forward`](Self::forward)
    /// - `d_output`: `[rows, d_output]`
    /// - `d_input`: `[rows, d_input]`, added to
    fn backward(
        &self,
        input: &[f32],
        mut d_output: Vec<f32>,
        d_input: &mut [f32],
    ) -> Vec<LinearGrads> {
        let rows = self.rows;
        let mut grads = Vec::with_capacity(self.layers.len());
        for (index, layer) in self.layers.iter().enumerate().rev() {
            let layer_input = if index == 0 {
                input
            } else {
                &self.hidden[index - 1]
            };
            let d_layer_output = MatrixRef::new(&d_output, rows, layer.d_output);
            let mut weight = vec![0.0; layer.d_input * layer.d_output];
            gemm::matmul(
                MatrixRef::new(layer_input, rows, layer.d_input).t(),
                d_layer_output,
                &mut weight,
                Output::Overwrite,
                Split::Never,
            );
            let bias = layer
                .bias
                .as_ref()
                .map(|_| gemm::column_sums(&d_output, layer.d_output));
            let weight_t = MatrixRef::new(&layer.weight, layer.d_input, layer.d_output).t();
            if index == 0 {
                gemm::matmul(
                    d_layer_output,
                    weight_t,
                    d_input,
                    Output::Accumulate,
                    Split::Never,
                );
            } else {
                let mut d_hidden = vec![0.0; rows * layer.d_input];
                gemm::matmul(
                    d_layer_output,
                    weight_t,
                    &mut d_hidden,
                    Output::Overwrite,
                    Split::Never,
                );
                relu_backward(&mut d_hidden, layer_input);
                d_output = d_hidden;
            }
            grads.push(LinearGrads { weight, bias });
        }
        grads.reverse();
        grads
    }
}

/// The critic `Q(s, op)` on `concat(features, one_hot(op))` for one op per row, forward and
/// backward on host buffers: the first layer's state part is one `gemm`, the op part one row of
/// its weight added per row (the one-hot product without the concatenation), as
/// [`Mlp::q_values_of`] computes it through burn.
#[derive(Debug, Clone)]
pub(crate) struct SelectedOpCriticTape {
    /// The first layer, `[d_hidden + num_ops, d_out]`.
    first: HostLinear,
    /// The stored op of every row.
    ops: Vec<usize>,
    /// `max(pre, 0)` of the first layer, `[rows, d_out]`, when more layers follow.
    hidden: Vec<f32>,
    /// The layers after the first, if any.
    rest: Option<HostMlpTape>,
    rows: usize,
}

impl SelectedOpCriticTape {
    /// `Q(s, ops[row])` for every row, and what [`backward`](Self::backward) needs.
    ///
    /// # Shapes
    /// - `features`: `[rows, d_hidden]`; `ops`: `[rows]`, each below the critic's op rows
    /// - output: `[rows]`
    pub(crate) fn forward(
        critic: &Mlp,
        features: &[f32],
        rows: usize,
        ops: &[usize],
    ) -> (Vec<f32>, Self) {
        let first = HostLinear::of(&critic.layers[0]);
        let d_out = first.d_output;
        let d_hidden = features.len() / rows.max(1);
        let mut pre = first.forward(features, rows, Split::WhenLarge);
        for (row, &op) in pre.chunks_exact_mut(d_out).zip(ops) {
            let op_row = &first.weight[(d_hidden + op) * d_out..(d_hidden + op + 1) * d_out];
            row.iter_mut().zip(op_row).for_each(|(p, w)| *p += w);
        }
        let (values, hidden, rest) = if critic.layers.len() == 1 {
            (pre, Vec::new(), None)
        } else {
            relu(&mut pre);
            let layers = critic.layers[1..].iter().map(HostLinear::of).collect();
            let (values, rest) = HostMlpTape::forward(layers, &pre, rows);
            (values, pre, Some(rest))
        };
        let tape = Self {
            first,
            ops: ops.to_vec(),
            hidden,
            rest,
            rows,
        };
        (values, tape)
    }

    /// Backpropagates `d_values`: returns every layer's gradients (first layer first) and adds
    /// the gradient of `features` to `d_features`.
    ///
    /// # Shapes
    /// - `features`: `[rows, d_hidden]`, the input of [`forward`](Self::forward)
    /// - `d_values`: `[rows]`
    /// - `d_features`: `[rows, d_hidden]`, added to
    pub(crate) fn backward(
        &self,
        features: &[f32],
        d_values: Vec<f32>,
        d_features: &mut [f32],
    ) -> Vec<LinearGrads> {
        let (rows, d_out) = (self.rows, self.first.d_output);
        let d_hidden = features.len() / rows.max(1);
        let (d_pre, mut grads) = match &self.rest {
            None => (d_values, Vec::new()),
            Some(rest) => {
                let mut d_pre = vec![0.0; rows * d_out];
                let grads = rest.backward(&self.hidden, d_values, &mut d_pre);
                relu_backward(&mut d_pre, &self.hidden);
                (d_pre, grads)
            }
        };
        let d_pre_matrix = MatrixRef::new(&d_pre, rows, d_out);
        let mut weight =
            gemm::weight_gradient(MatrixRef::new(features, rows, d_hidden), d_pre_matrix);
        weight.resize(self.first.d_input * d_out, 0.0);
        let op_rows = &mut weight[d_hidden * d_out..];
        for (d_row, &op) in d_pre.chunks_exact(d_out).zip(&self.ops) {
            op_rows[op * d_out..(op + 1) * d_out]
                .iter_mut()
                .zip(d_row)
                .for_each(|(w, d)| *w += d);
        }
        let bias = self
            .first
            .bias
            .as_ref()
            .map(|_| gemm::column_sums(&d_pre, d_out));
        gemm::matmul(
            d_pre_matrix,
            MatrixRef::new(&self.first.weight[..d_hidden * d_out], d_hidden, d_out).t(),
            d_features,
            Output::Accumulate,
            Split::WhenLarge,
        );
        grads.insert(0, LinearGrads { weight, bias });
        grads
    }
}

/// Each of `mlps` over the same `input` (as [`Mlp::forward`], to float rounding), the MLPs spread
/// over the cores; returns every MLP's output and the tapes for [`backward_all`].
///
/// # Shapes
/// - `input`: `[rows, d_input]`, every MLP's input width
/// - output: per MLP `[rows, d_output]`
pub(crate) fn forward_all(
    mlps: &[Mlp],
    input: &[f32],
    rows: usize,
) -> (Vec<Vec<f32>>, Vec<HostMlpTape>) {
    let layers: Vec<Vec<HostLinear>> = mlps
        .iter()
        .map(|mlp| mlp.layers.iter().map(HostLinear::of).collect())
        .collect();
    let groups = spread_over_cores(&layers);
    let no_state = (0..groups.len()).map(|_| ()).collect();
    map_grouped(&groups, layers, no_state, &|_, _, layers| {
        HostMlpTape::forward(layers, input, rows)
    })
    .into_iter()
    .unzip()
}

/// Backpropagates every MLP's `d_output` through its tape, the MLPs spread over the cores as in
/// [`forward_all`]: returns each MLP's layer gradients (first layer first) and adds the gradient
/// of the shared input to `d_input`.
///
/// # Shapes
/// - `input`: `[rows, d_input]`, the input of [`forward_all`]
/// - `d_outputs`: per MLP `[rows, d_output]`
/// - `d_input`: `[rows, d_input]`, added to
pub(crate) fn backward_all(
    tapes: &[HostMlpTape],
    input: &[f32],
    d_outputs: Vec<Vec<f32>>,
    d_input: &mut [f32],
) -> Vec<Vec<LinearGrads>> {
    let layers: Vec<&[HostLinear]> = tapes.iter().map(|tape| &tape.layers[..]).collect();
    let groups = spread_over_cores(&layers);
    // The first group adds into `d_input`, every other group into a buffer of its own, added after.
    let mut extra: Vec<Vec<f32>> = (1..groups.len())
        .map(|_| vec![0.0; d_input.len()])
        .collect();
    let d_inputs: Vec<&mut [f32]> = std::iter::once(&mut *d_input)
        .chain(extra.iter_mut().map(Vec::as_mut_slice))
        .collect();
    let grads = map_grouped(&groups, d_outputs, d_inputs, &|d_input, m, d_output| {
        tapes[m].backward(input, d_output, d_input)
    });
    for buffer in &extra {
        d_input.iter_mut().zip(buffer).for_each(|(d, e)| *d += e);
    }
    grads
}

/// `job(state, index, item)` for every one of `items`, each group of indices on one core with that
/// group's `state`; returns the results in the order of `items`.
///
/// # Panics
/// When an item is in no group (a bug in the caller).
fn map_grouped<T: Send, S: Send, R: Send>(
    groups: &[Vec<usize>],
    items: Vec<T>,
    states: Vec<S>,
    job: &(dyn Fn(&mut S, usize, T) -> R + Sync),
) -> Vec<R> {
    let mut items: Vec<Option<T>> = items.into_iter().map(Some).collect();
    let parts: Vec<(S, Vec<(usize, T)>)> = groups
        .iter()
        .zip(states)
        .map(|(group, state)| {
            let members = group
                .iter()
                .filter_map(|&m| items[m].take().map(|item| (m, item)))
                .collect();
            (state, members)
        })
        .collect();
    let mut results: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for part in fork::map_parts(parts, &|_, (mut state, members)| {
        members
            .into_iter()
            .map(|(m, item)| (m, job(&mut state, m, item)))
            .collect::<Vec<_>>()
    }) {
        for (m, result) in part {
            results[m] = Some(result);
        }
    }
    results
        .into_iter()
        .map(|result| result.expect("every item is in one group"))
        .collect()
}

/// Indices of `mlps` in one group per core (fewer when there are fewer MLPs), with about the same
/// multiply-adds per group: the costliest MLP first, each onto the group with the fewest so far.
fn spread_over_cores<L: AsRef<[HostLinear]>>(mlps: &[L]) -> Vec<Vec<usize>> {
    let cost = |layers: &L| -> usize {
        layers
            .as_ref()
            .iter()
            .map(|layer| layer.d_input * layer.d_output)
            .sum()
    };
    let mut order: Vec<usize> = (0..mlps.len()).collect();
    order.sort_by_key(|&m| std::cmp::Reverse(cost(&mlps[m])));
    let mut groups: Vec<(usize, Vec<usize>)> =
        vec![(0, Vec::new()); fork::threads().min(mlps.len()).max(1)];
    for m in order {
        let lightest = groups
            .iter_mut()
            .min_by_key(|(load, _)| *load)
            .expect("at least one group");
        lightest.0 += cost(&mlps[m]);
        lightest.1.push(m);
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layers(shapes: &[(usize, usize)]) -> Vec<HostLinear> {
        shapes
            .iter()
            .map(|&(d_input, d_output)| HostLinear {
                weight: vec![0.0; d_input * d_output],
                bias: None,
                d_input,
                d_output,
            })
            .collect()
    }

    /// The reference heads (7 of `512 → 256 → n`, the blueprint `512 → 512 → 256 → 13`): every
    /// head in exactly one group, and on two cores the blueprint with two heads against five.
    #[test]
    fn heads_are_spread_whole_and_evenly() {
        let mut heads: Vec<Vec<HostLinear>> = (0..7)
            .map(|h| layers(&[(512, 256), (256, 3 + h)]))
            .collect();
        heads.insert(4, layers(&[(512, 512), (512, 256), (256, 13)]));
        let groups = spread_over_cores(&heads);
        assert_eq!(groups.len(), fork::threads().min(heads.len()));
        let mut seen: Vec<usize> = groups.concat();
        seen.sort_unstable();
        assert_eq!(seen, (0..heads.len()).collect::<Vec<_>>());
        if groups.len() == 2 {
            let with_blueprint = groups.iter().find(|g| g.contains(&4)).expect("blueprint");
            assert_eq!(with_blueprint.len(), 3, "{groups:?}");
        }
    }
}
