//! The policy heads' forward and backward passes on host buffers, for training on burn's CPU
//! backend.
//!
//! Through burn's autodiff every head layer allocates its product, its bias sum and its ReLU as new
//! tensors, and the backward pass allocates as many again plus one `[rows, d_hidden]` input
//! gradient per head that is then summed; with burn-flex's output copy (`nn::gemm`) that was the
//! largest part of the 32 × 150 update after the LSTM (`docs/performance.md`, 2026-12-06). Here
//! every layer is one `gemm` product into a buffer that starts as its bias, ReLU is applied in
//! place, and every head's input gradient is added by its product into one shared buffer.

use burn::nn::Linear;

use super::network::Mlp;
use crate::distribution::to_host;
use crate::nn::gemm::{self, MatrixRef, Output};

/// One `Linear` layer's parameters as host values.
#[derive(Debug, Clone)]
struct HostLinear {
    /// `[d_input, d_output]`, as burn's `Linear` holds it.
    weight: Vec<f32>,
    /// `[d_output]`, if the layer has a bias.
    bias: Option<Vec<f32>>,
    d_input: usize,
    d_output: usize,
}

impl HostLinear {
    fn of(linear: &Linear) -> Self {
        let [d_input, d_output] = linear.weight.dims();
        Self {
            weight: to_host(&linear.weight.val().inner()),
            bias: linear.bias.as_ref().map(|b| to_host(&b.val().inner())),
            d_input,
            d_output,
        }
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
    /// Runs `mlp` over `input` (ReLU between layers, none after the last) and returns its output
    /// and what the backward pass needs. Agrees with [`Mlp::forward`] to float rounding.
    ///
    /// # Shapes
    /// - `input`: `[rows, d_input]`
    /// - output: `[rows, d_output]`
    pub(crate) fn forward(mlp: &Mlp, input: &[f32], rows: usize) -> (Vec<f32>, Self) {
        let layers: Vec<HostLinear> = mlp.layers.iter().map(HostLinear::of).collect();
        let mut hidden: Vec<Vec<f32>> = Vec::with_capacity(layers.len().saturating_sub(1));
        let mut output = Vec::new();
        for (index, layer) in layers.iter().enumerate() {
            let layer_input = if index == 0 {
                input
            } else {
                &hidden[index - 1]
            };
            let mut result = match &layer.bias {
                Some(bias) => bias.repeat(rows),
                None => vec![0.0; rows * layer.d_output],
            };
            gemm::matmul(
                MatrixRef::new(layer_input, rows, layer.d_input),
                MatrixRef::new(&layer.weight, layer.d_input, layer.d_output),
                &mut result,
                Output::Accumulate,
            );
            if index + 1 < layers.len() {
                result.iter_mut().for_each(|v| *v = v.max(0.0));
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
    pub(crate) fn backward(
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
            );
            let bias = layer
                .bias
                .as_ref()
                .map(|_| gemm::column_sums(&d_output, layer.d_output));
            let weight_t = MatrixRef::new(&layer.weight, layer.d_input, layer.d_output).t();
            if index == 0 {
                gemm::matmul(d_layer_output, weight_t, d_input, Output::Accumulate);
            } else {
                let mut d_hidden = vec![0.0; rows * layer.d_input];
                gemm::matmul(d_layer_output, weight_t, &mut d_hidden, Output::Overwrite);
                // ReLU passes the gradient where its output was positive. A select, not a
                // branch: the signs are as good as random, and a mispredicted branch per element
                // was 12 % of the heads' backward pass.
                for (d, &h) in d_hidden.iter_mut().zip(layer_input) {
                    *d = if h > 0.0 { *d } else { 0.0 };
                }
                d_output = d_hidden;
            }
            grads.push(LinearGrads { weight, bias });
        }
        grads.reverse();
        grads
    }
}
