//! The input encoding and the feature layer (embedding lookup, concatenation, `Linear`) forward
//! and backward on host buffers, for training on burn's CPU backend.
//!
//! Through burn's autodiff this layer cost as much as the LayerNorm after it and the backward
//! pass of both together (`docs/performance.md`, 2026-12-07): the concatenation and the product's
//! output are new tensors, and the backward pass computes the gradient of the whole input,
//! observations included, to reach the embedding table. Here the forward pass is one `gemm` into
//! a buffer that starts as the bias, and the backward pass computes the weight gradient, the bias
//! gradient and only the embedding columns of the input gradient, scattered into the table.

use burn::nn::Embedding;

use super::evaluate::Sequences;
use super::host_mlp::HostLinear;
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
    /// The layer's parameters as the forward pass used them.
    layer: HostLinear,
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
        let layer = HostLinear::of(&self.feature);
        let output = layer.forward(&inputs, rows, Split::WhenLarge);
        let tape = HostFeatureTape {
            inputs,
            indices,
            layer,
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
        let (rows, layer) = (tape.rows, &tape.layer);
        let (d_input, d_feature) = (layer.d_input, layer.d_output);
        let d_out = MatrixRef::new(d_output, rows, d_feature);
        let weight = gemm::weight_gradient(MatrixRef::new(&tape.inputs, rows, d_input), d_out);
        let bias = layer
            .bias
            .as_ref()
            .map(|_| gemm::column_sums(d_output, d_feature));
        let embedding = self.embedding.as_ref().map(|embedding| {
            // Only the embedding columns of the input gradient: the observations have none to
            // receive.
            let d_observation = self.config.d_observation;
            let d_embedded = d_input - d_observation;
            let mut d_embeddings = vec![0.0; rows * d_embedded];
            gemm::matmul(
                d_out,
                MatrixRef::new(
                    &layer.weight[d_observation * d_feature..],
                    d_embedded,
                    d_feature,
                )
                .t(),
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
