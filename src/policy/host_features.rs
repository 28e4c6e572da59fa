//! The input encoding and the feature layer (embedding lookup, concatenation, `Linear`) forward
//! and backward on host buffers, for training on burn's CPU backend.
//!
//! Through burn's autodiff this layer cost as much as the LayerNorm after it and the backward
//! pass of both together (`docs/performance.md`, 2026-12-07): the concatenation and the product's
//! output are new tensors, and the backward pass computes the gradient of the whole input,
//! observations included, to reach the embedding table. Here the forward pass is one `gemm` into
//! a buffer that starts as the bias, and the backward pass computes the weight gradient, the bias
//! gradient and only the embedding columns of the input gradient, scattered into the table.

use burn::nn::{Embedding, Linear};

use super::evaluate::Sequences;
use super::network::{FactoredRecurrentActorCritic, checked_inputs};
use crate::distribution::to_host;
use crate::error::Result;
use crate::nn::gemm::{self, MatrixRef, Output, Split};

/// What the backward pass of the feature layer needs from its forward pass.
#[derive(Debug, Clone)]
pub(crate) struct HostFeatureTape {
    /// The layer's input, `[rows, d_observation + num_inputs · d_embedding]`: the observations,
    /// then every categorical input's embedding.
    inputs: Vec<f32>,
    /// The embedding-table row of every categorical input, `[rows, num_inputs]`.
    indices: Vec<i64>,
    rows: usize,
}

/// Gradients of the feature layer and the embedding table (host values, the parameters' layouts).
#[derive(Debug, Clone)]
pub(crate) struct HostFeatureGrads {
    /// `[d_input, d_feature]`.
    pub weight: Vec<f32>,
    /// `[d_feature]`, if the layer has a bias.
    pub bias: Option<Vec<f32>>,
    /// `[table rows, d_embedding]`, if the network embeds categorical inputs.
    pub embedding: Option<Vec<f32>>,
}

impl FactoredRecurrentActorCritic {
    /// The feature layer's output before its LayerNorm, `inputs·W + b`, for every row of
    /// `sequences`, with what [`feature_backward`](Self::feature_backward) needs.
    ///
    /// # Shapes
    /// - output: `[batch * time, d_feature]`
    ///
    /// # Errors
    /// The input errors of [`checked_inputs`].
    pub(crate) fn feature_forward(
        &self,
        sequences: &Sequences<'_>,
    ) -> Result<(Vec<f32>, HostFeatureTape)> {
        let rows = sequences.batch * sequences.time;
        let indices = checked_inputs(
            &self.config,
            sequences.observations,
            sequences.categorical,
            rows,
        )?;
        let inputs = match &self.embedding {
            Some(embedding) => concat_embeddings(sequences.observations, &indices, rows, embedding),
            None => sequences.observations.to_vec(),
        };
        let (weight, bias, d_input, d_feature) = linear_parameters(&self.feature);
        let mut output = match bias {
            Some(bias) => bias.repeat(rows),
            None => vec![0.0; rows * d_feature],
        };
        gemm::matmul(
            MatrixRef::new(&inputs, rows, d_input),
            MatrixRef::new(&weight, d_input, d_feature),
            &mut output,
            Output::Accumulate,
            Split::WhenLarge,
        );
        let tape = HostFeatureTape {
            inputs,
            indices,
            rows,
        };
        Ok((output, tape))
    }

    /// Backpropagates `d_output`, the gradient of the feature layer's output before its LayerNorm,
    /// to the layer's parameters and the embedding table.
    ///
    /// # Shapes
    /// - `d_output`: `[rows, d_feature]`
    pub(crate) fn feature_backward(
        &self,
        tape: &HostFeatureTape,
        d_output: &[f32],
    ) -> HostFeatureGrads {
        let rows = tape.rows;
        let [d_input, d_feature] = self.feature.weight.dims();
        let d_out = MatrixRef::new(d_output, rows, d_feature);
        let weight = gemm::weight_gradient(MatrixRef::new(&tape.inputs, rows, d_input), d_out);
        let bias = self
            .feature
            .bias
            .as_ref()
            .map(|_| gemm::column_sums(d_output, d_feature));
        let embedding = self.embedding.as_ref().map(|embedding| {
            // Only the embedding columns of the input gradient: the observations have none to
            // receive.
            let d_observation = self.config.d_observation;
            let d_embedded = d_input - d_observation;
            let weight = to_host(&self.feature.weight.val().inner());
            let mut d_embeddings = vec![0.0; rows * d_embedded];
            gemm::matmul(
                d_out,
                MatrixRef::new(&weight[d_observation * d_feature..], d_embedded, d_feature).t(),
                &mut d_embeddings,
                Output::Overwrite,
                Split::WhenLarge,
            );
            scatter_embedding_grads(&d_embeddings, &tape.indices, embedding)
        });
        HostFeatureGrads {
            weight,
            bias,
            embedding,
        }
    }
}

/// `(weight [d_input, d_output], bias, d_input, d_output)` of `linear` as host values.
fn linear_parameters(linear: &Linear) -> (Vec<f32>, Option<Vec<f32>>, usize, usize) {
    let [d_input, d_output] = linear.weight.dims();
    let weight = to_host(&linear.weight.val().inner());
    let bias = linear.bias.as_ref().map(|b| to_host(&b.val().inner()));
    (weight, bias, d_input, d_output)
}

/// Every row's observations followed by the table rows of its categorical inputs.
///
/// # Shapes
/// - `observations`: `[rows, d_observation]`; `indices`: `[rows, num_inputs]`
/// - output: `[rows, d_observation + num_inputs · d_embedding]`
fn concat_embeddings(
    observations: &[f32],
    indices: &[i64],
    rows: usize,
    embedding: &Embedding,
) -> Vec<f32> {
    let [_, d_embedding] = embedding.weight.dims();
    let table = to_host(&embedding.weight.val().inner());
    let d_observation = observations.len() / rows.max(1);
    let num_inputs = indices.len() / rows.max(1);
    let mut inputs = Vec::with_capacity(rows * (d_observation + num_inputs * d_embedding));
    for row in 0..rows {
        inputs.extend_from_slice(&observations[row * d_observation..(row + 1) * d_observation]);
        for &index in &indices[row * num_inputs..(row + 1) * num_inputs] {
            let start = index as usize * d_embedding;
            inputs.extend_from_slice(&table[start..start + d_embedding]);
        }
    }
    inputs
}

/// The gradient of the embedding table: every row's gradient of its embeddings added to the
/// table rows they were read from.
///
/// # Shapes
/// - `d_embeddings`: `[rows, num_inputs · d_embedding]`; `indices`: `[rows, num_inputs]`
/// - output: `[table rows, d_embedding]`
fn scatter_embedding_grads(
    d_embeddings: &[f32],
    indices: &[i64],
    embedding: &Embedding,
) -> Vec<f32> {
    let [table_rows, d_embedding] = embedding.weight.dims();
    let mut table = vec![0.0; table_rows * d_embedding];
    for (&index, d) in indices.iter().zip(d_embeddings.chunks_exact(d_embedding)) {
        let start = index as usize * d_embedding;
        table[start..start + d_embedding]
            .iter_mut()
            .zip(d)
            .for_each(|(t, d)| *t += d);
    }
    table
}
