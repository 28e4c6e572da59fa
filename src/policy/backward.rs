use burn::module::Param;
use burn::nn::LayerNorm;
use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use super::config::ValueMode;
use super::evaluate::{EvaluateInput, Evaluation};
use super::host_features::HostFeatureTape;
use super::host_mlp::{LinearGrads, SelectedOpCriticTape, backward_all, forward_all};
use super::network::{FactoredRecurrentActorCritic, LAYER_NORM_EPSILON};
use crate::distribution::{into_host, to_host};
use crate::error::Result;
use crate::nn::layer_norm::{
    LayerNormGrads, LayerNormTape, layer_norm_backward, layer_norm_forward,
};
use crate::nn::{LstmState, Placement};
use crate::optim::accumulate_grads;

/// Adds `grad` to what `grads` holds for `param` (registers it if nothing), unless the parameter
/// is frozen. Added, not registered over: a loss may also reach a parameter through autodiff
/// (the critic's, through `Evaluation::q_values`).
fn add_grad<const D: usize>(
    grads: &mut GradientsParams,
    param: &Param<Tensor<D>>,
    grad: Vec<f32>,
    device: &Device,
) {
    if param.is_require_grad() {
        let shape: [usize; D] = param.dims();
        let grad = Tensor::<D>::from_data(TensorData::new(grad, shape), device);
        let sum = match grads.remove::<D>(param.id) {
            Some(existing) => existing + grad,
            None => grad,
        };
        grads.register(param.id, sum);
    }
}

/// The gradient a backward pass left for `tensor` as host values, zeros where the loss did not
/// depend on it.
fn host_grad<const D: usize>(tensor: &Tensor<D>, grads: &mut burn::tensor::Gradients) -> Vec<f32> {
    match tensor.grad_remove(grads) {
        Some(grad) => into_host(grad),
        None => vec![0.0; tensor.dims().iter().product()],
    }
}

impl FactoredRecurrentActorCritic {
    /// Evaluates stored sequences like [`evaluate_actions`](Self::evaluate_actions), builds a loss
    /// from the evaluation with `loss_fn`, and returns the gradients of every parameter — with the
    /// LSTM's backward pass (and on burn's CPU backend the feature layer's, the LayerNorms', the
    /// policy heads' and, in `SelectedOp` mode, the critic's) done by hand instead of through
    /// burn's autodiff, which is several times faster over long sequences. Gradients equal
    /// those of `evaluate_actions` + `backward()` (tested).
    ///
    /// The module must live on an autodiff device and be in training mode (`.train()`).
    ///
    /// # Errors
    /// The errors of [`evaluate_actions`](Self::evaluate_actions) and of `loss_fn`.
    pub fn evaluate_with_gradients<T>(
        &self,
        input: &EvaluateInput<'_>,
        initial_state: LstmState,
        loss_fn: impl FnOnce(&Evaluation) -> Result<(Tensor<1>, T)>,
    ) -> Result<(GradientsParams, T)> {
        let placement = Placement::for_device(&self.device());
        self.evaluate_with_gradients_on(placement, input, initial_state, loss_fn)
    }

    /// [`evaluate_with_gradients`](Self::evaluate_with_gradients) with the hand-written passes
    /// (the LSTM's recurrence; on the host also the feature layer with the embedding table, both
    /// LayerNorms, the policy heads and, in `SelectedOp` mode, the critic) placed by the caller. Both placements compute the same gradients (to float rounding).
    ///
    /// # Errors
    /// The errors of [`evaluate_actions`](Self::evaluate_actions) and of `loss_fn`.
    pub fn evaluate_with_gradients_on<T>(
        &self,
        placement: Placement,
        input: &EvaluateInput<'_>,
        initial_state: LstmState,
        loss_fn: impl FnOnce(&Evaluation) -> Result<(Tensor<1>, T)>,
    ) -> Result<(GradientsParams, T)> {
        let sequences = &input.sequences;
        let (batch, time) = (sequences.batch, sequences.time);
        let rows = batch * time;
        let (d_feature, d_hidden) = (self.config.d_feature, self.config.d_hidden);
        self.check_sequences(sequences, &initial_state)?;
        let starts = self.episode_start_tensor(sequences);
        let device = self.device();
        let plain = device.clone().without_autodiff();
        let on_host = placement == Placement::Host;

        // The graph is differentiated in pieces, each seeded with the gradient of its output: the
        // feature layer and its LayerNorm by hand on the host (by burn's autodiff from the inputs
        // to the features the LSTM reads otherwise), the LSTM by hand, the LSTM's LayerNorm by
        // hand on the host (by autodiff otherwise), the policy heads and (in `SelectedOp` mode)
        // the critic by hand on the host, and the loss by autodiff from the normalized LSTM
        // output, the heads' logits and the critic's values, which re-enter as leaves.
        let (features, feature_pass) = if on_host {
            let (pre_norm, layer) = self.feature_forward(sequences)?;
            let (values, norm) = host_layer_norm(&self.feature_norm, pre_norm, true);
            let features =
                Tensor::<2>::from_data(TensorData::new(values, [rows, d_feature]), &plain);
            (features, FeaturePass::Host { layer, norm })
        } else {
            let inputs = self.encode_inputs(sequences.observations, sequences.categorical, rows)?;
            let features = relu(self.feature_norm.forward(self.feature.forward(inputs)));
            (features.clone(), FeaturePass::Device { features })
        };
        let (lstm_out, state, tape) = self.lstm.forward_for_backward_on(
            placement,
            features.clone().reshape([batch, time, d_feature]),
            initial_state,
            Some(starts),
        );
        let lstm_out = lstm_out.reshape([rows, d_hidden]);
        let lstm_norm = if on_host {
            let (values, tape) = host_layer_norm(&self.lstm_norm, into_host(lstm_out), false);
            LstmNormPass::Host { values, tape }
        } else {
            let lstm_out = lstm_out.autodiff().require_grad();
            let normalized = self.lstm_norm.forward(lstm_out.clone());
            LstmNormPass::Device {
                lstm_out,
                normalized,
            }
        };
        let normalized_leaf = match &lstm_norm {
            LstmNormPass::Host { values, .. } => {
                Tensor::from_data(TensorData::new(values.clone(), [rows, d_hidden]), &device)
            }
            LstmNormPass::Device { normalized, .. } => normalized.clone().detach(),
        }
        .require_grad();
        let host_heads = match &lstm_norm {
            LstmNormPass::Host { values, .. } => {
                let (logits, tapes) = forward_all(&self.heads, values, rows);
                let logits: Vec<Tensor<2>> = logits
                    .into_iter()
                    .zip(self.space.heads())
                    .map(|(logits, head)| {
                        Tensor::from_data(TensorData::new(logits, [rows, head.size]), &device)
                            .require_grad()
                    })
                    .collect();
                Some((logits, tapes))
            }
            LstmNormPass::Device { .. } => None,
        };
        let head_logits = match &host_heads {
            Some((logits, _)) => logits.clone(),
            None => self.head_logits(&normalized_leaf),
        };
        let host_critic = match &lstm_norm {
            LstmNormPass::Host { values, .. }
                if self.config.value_mode == ValueMode::SelectedOp =>
            {
                // Stored ops out of range are left to `score`, which names them in its error.
                let num_ops = self.space.num_ops();
                self.stored_ops(input)
                    .ok()
                    .filter(|ops| ops.len() == rows && ops.iter().all(|&op| op < num_ops))
                    .map(|ops| {
                        let (q, tape) =
                            SelectedOpCriticTape::forward(&self.critic, values, rows, ops);
                        let leaf = Tensor::<1>::from_data(TensorData::new(q, [rows]), &device)
                            .require_grad();
                        (leaf, tape)
                    })
            }
            _ => None,
        };
        let evaluation = self.score(
            input,
            head_logits,
            normalized_leaf.clone(),
            state.detach(),
            host_critic.as_ref().map(|(values, _)| values.clone()),
        )?;
        let (loss, output) = loss_fn(&evaluation)?;
        let mut loss_grads = loss.backward();
        let mut d_normalized = host_grad(&normalized_leaf, &mut loss_grads);
        let mut grads = GradientsParams::from_module(&mut loss_grads, self);
        if let (Some((logits, tapes)), LstmNormPass::Host { values, .. }) = (host_heads, &lstm_norm)
        {
            let d_logits = logits
                .iter()
                .map(|logits| host_grad(logits, &mut loss_grads))
                .collect();
            let head_grads = backward_all(&tapes, values, d_logits, &mut d_normalized);
            for (head, layer_grads) in self.heads.iter().zip(head_grads) {
                for (linear, LinearGrads { weight, bias }) in head.layers.iter().zip(layer_grads) {
                    add_grad(&mut grads, &linear.weight, weight, &device);
                    if let (Some(param), Some(grad)) = (&linear.bias, bias) {
                        add_grad(&mut grads, param, grad, &device);
                    }
                }
            }
        }

        if let (
            Some((values, tape)),
            LstmNormPass::Host {
                values: features, ..
            },
        ) = (host_critic, &lstm_norm)
        {
            let d_values = host_grad(&values, &mut loss_grads);
            let critic_grads = tape.backward(features, d_values, &mut d_normalized);
            for (linear, LinearGrads { weight, bias }) in
                self.critic.layers.iter().zip(critic_grads)
            {
                add_grad(&mut grads, &linear.weight, weight, &device);
                if let (Some(param), Some(grad)) = (&linear.bias, bias) {
                    add_grad(&mut grads, param, grad, &device);
                }
            }
        }

        let d_lstm_out = match lstm_norm {
            LstmNormPass::Host { tape, .. } => {
                let d_input = host_layer_norm_backward(
                    &mut grads,
                    &self.lstm_norm,
                    &tape,
                    &d_normalized,
                    &device,
                );
                Tensor::from_data(TensorData::new(d_input, [batch, time, d_hidden]), &plain)
            }
            LstmNormPass::Device {
                lstm_out,
                normalized,
            } => {
                let d_normalized =
                    Tensor::<2>::from_data(TensorData::new(d_normalized, [rows, d_hidden]), &plain);
                let mut norm_grads = (normalized * d_normalized).sum().backward();
                accumulate_grads(
                    self,
                    &mut grads,
                    GradientsParams::from_module(&mut norm_grads, self),
                );
                lstm_out
                    .grad_remove(&mut norm_grads)
                    .unwrap_or_else(|| Tensor::zeros([rows, d_hidden], &plain))
                    .reshape([batch, time, d_hidden])
            }
        };

        let lstm_grads = self.lstm.backward(tape, d_lstm_out);
        for (layer, g) in self.lstm.layers.iter().zip(lstm_grads.layers) {
            for (param_id, trainable, grad) in [
                (
                    layer.weight_ih.id,
                    layer.weight_ih.is_require_grad(),
                    g.weight_ih,
                ),
                (
                    layer.weight_hh.id,
                    layer.weight_hh.is_require_grad(),
                    g.weight_hh,
                ),
            ] {
                if trainable {
                    grads.register(param_id, grad);
                }
            }
            for bias in [&layer.bias_ih, &layer.bias_hh] {
                if bias.is_require_grad() {
                    grads.register(bias.id, g.bias.clone());
                }
            }
        }
        let d_features = lstm_grads.input.reshape([rows, d_feature]);
        match feature_pass {
            FeaturePass::Host { layer, norm } => {
                let d_pre_norm = host_layer_norm_backward(
                    &mut grads,
                    &self.feature_norm,
                    &norm,
                    &into_host(d_features),
                    &device,
                );
                let layer_grads = self.feature_backward(&layer, &d_pre_norm);
                add_grad(
                    &mut grads,
                    &self.feature.weight,
                    layer_grads.weight,
                    &device,
                );
                if let (Some(param), Some(grad)) = (&self.feature.bias, layer_grads.bias) {
                    add_grad(&mut grads, param, grad, &device);
                }
                if let (Some(embedding), Some(grad)) = (&self.embedding, layer_grads.embedding) {
                    add_grad(&mut grads, &embedding.weight, grad, &device);
                }
            }
            FeaturePass::Device { features } => {
                let mut before_lstm = (features * d_features).sum().backward();
                let before_lstm = GradientsParams::from_module(&mut before_lstm, self);
                accumulate_grads(self, &mut grads, before_lstm);
            }
        }
        Ok((grads, output))
    }
}

/// The feature layer and its LayerNorm in [`evaluate_with_gradients_on`]: host passes, or burn's
/// autodiff from the inputs.
///
/// [`evaluate_with_gradients_on`]: FactoredRecurrentActorCritic::evaluate_with_gradients_on
enum FeaturePass {
    Host {
        layer: HostFeatureTape,
        norm: LayerNormTape,
    },
    Device {
        /// The LSTM's input, `[rows, d_feature]`, differentiable.
        features: Tensor<2>,
    },
}

/// The LSTM's LayerNorm in [`evaluate_with_gradients_on`]: host loops, or burn's autodiff from the
/// LSTM output as a leaf.
///
/// [`evaluate_with_gradients_on`]: FactoredRecurrentActorCritic::evaluate_with_gradients_on
// One value per call on the stack, never stored in bulk: boxing a variant would buy nothing.
#[allow(clippy::large_enum_variant)]
enum LstmNormPass {
    Host {
        /// The normalized output, `[rows, d_hidden]`.
        values: Vec<f32>,
        tape: LayerNormTape,
    },
    Device {
        lstm_out: Tensor<2>,
        normalized: Tensor<2>,
    },
}

/// `norm`'s `gamma` and `beta` (zeros without a bias) on the host.
fn norm_parameters(norm: &LayerNorm) -> (Vec<f32>, Vec<f32>) {
    let gamma = to_host(&norm.gamma.val().inner());
    let beta = match &norm.beta {
        Some(beta) => to_host(&beta.val().inner()),
        None => vec![0.0; gamma.len()],
    };
    (gamma, beta)
}

/// `norm` (then ReLU when `relu`) over the `d`-wide rows of `values` on the host.
fn host_layer_norm(norm: &LayerNorm, values: Vec<f32>, relu: bool) -> (Vec<f32>, LayerNormTape) {
    let (gamma, beta) = norm_parameters(norm);
    layer_norm_forward(
        &values,
        gamma.len(),
        &gamma,
        &beta,
        LAYER_NORM_EPSILON as f32,
        relu,
    )
}

/// The backward pass of [`host_layer_norm`] for `d_output`: registers the gradients of `norm`'s
/// trainable parameters and returns the gradient of its input.
fn host_layer_norm_backward(
    grads: &mut GradientsParams,
    norm: &LayerNorm,
    tape: &LayerNormTape,
    d_output: &[f32],
    device: &Device,
) -> Vec<f32> {
    let (gamma, beta) = norm_parameters(norm);
    let LayerNormGrads {
        input,
        gamma: d_gamma,
        beta: d_beta,
    } = layer_norm_backward(tape, &gamma, &beta, d_output);
    add_grad(grads, &norm.gamma, d_gamma, device);
    if let Some(beta) = &norm.beta {
        add_grad(grads, beta, d_beta, device);
    }
    input
}
