use burn::module::Param;
use burn::optim::GradientsParams;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use super::evaluate::{EvaluateInput, Evaluation};
use super::host_mlp::{HostMlpTape, LinearGrads};
use super::network::FactoredRecurrentActorCritic;
use crate::distribution::{into_host, to_host};
use crate::error::Result;
use crate::nn::{LstmState, Placement};
use crate::optim::accumulate_grads;

/// Registers `grad` for `param` unless the parameter is frozen.
fn register<const D: usize>(
    grads: &mut GradientsParams,
    param: &Param<Tensor<D>>,
    grad: Vec<f32>,
    device: &Device,
) {
    if param.is_require_grad() {
        let shape: [usize; D] = param.dims();
        grads.register(
            param.id,
            Tensor::<D>::from_data(TensorData::new(grad, shape), device),
        );
    }
}

/// The gradient a backward pass left for `tensor` as host values, zeros where the loss did not
/// depend on it.
fn host_grad(tensor: &Tensor<2>, grads: &mut burn::tensor::Gradients) -> Vec<f32> {
    match tensor.grad_remove(grads) {
        Some(grad) => into_host(grad),
        None => vec![0.0; tensor.dims().iter().product()],
    }
}

impl FactoredRecurrentActorCritic {
    /// Evaluates stored sequences like [`evaluate_actions`](Self::evaluate_actions), builds a loss
    /// from the evaluation with `loss_fn`, and returns the gradients of every parameter — with the
    /// LSTM's backward pass (and on burn's CPU backend the policy heads') done by hand instead of
    /// through burn's autodiff, which is several times faster over long sequences. Gradients equal
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
    /// (the LSTM's recurrence, the policy heads) placed by the caller. Both placements compute
    /// the same gradients (to float rounding).
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
        let inputs = self.sequence_inputs(sequences, &initial_state)?;
        let starts = self.episode_start_tensor(sequences);
        let features = relu(self.feature_norm.forward(self.feature.forward(inputs)));
        let (lstm_out, state, tape) = self.lstm.forward_for_backward_on(
            placement,
            features.clone().reshape([batch, time, d_feature]),
            initial_state,
            Some(starts),
        );
        // The graph is differentiated in four pieces, each seeded with the gradient of its output:
        // the loss (burn's autodiff) from the normalized LSTM output, which re-enters as a leaf,
        // and from the heads' logits, also leaves when the heads run on the host; the heads (by
        // hand, on the host); the LSTM's LayerNorm (autodiff); the LSTM (by hand); and the graph
        // before it (autodiff).
        let lstm_out = lstm_out.autodiff().require_grad();
        let normalized = self
            .lstm_norm
            .forward(lstm_out.clone().reshape([rows, d_hidden]));
        let normalized_leaf = normalized.clone().detach().require_grad();
        let device = self.device();
        let host_heads = (placement == Placement::Host).then(|| {
            let values = to_host(&normalized.clone().inner());
            let (logits, tapes): (Vec<_>, Vec<_>) = self
                .heads
                .iter()
                .map(|head| HostMlpTape::forward(head, &values, rows))
                .unzip();
            let logits: Vec<Tensor<2>> = logits
                .into_iter()
                .zip(self.space.heads())
                .map(|(logits, head)| {
                    Tensor::from_data(TensorData::new(logits, [rows, head.size]), &device)
                        .require_grad()
                })
                .collect();
            (values, logits, tapes)
        });
        let head_logits = match &host_heads {
            Some((_, logits, _)) => logits.clone(),
            None => self.head_logits(&normalized_leaf),
        };
        let evaluation = self.score(input, head_logits, normalized_leaf.clone(), state.detach())?;
        let (loss, output) = loss_fn(&evaluation)?;
        let mut loss_grads = loss.backward();
        let mut d_normalized = host_grad(&normalized_leaf, &mut loss_grads);
        let mut grads = GradientsParams::from_module(&mut loss_grads, self);
        if let Some((values, logits, tapes)) = host_heads {
            for ((head, tape), logits) in self.heads.iter().zip(&tapes).zip(&logits) {
                let d_logits = host_grad(logits, &mut loss_grads);
                let layer_grads = tape.backward(&values, d_logits, &mut d_normalized);
                for (linear, LinearGrads { weight, bias }) in head.layers.iter().zip(layer_grads) {
                    register(&mut grads, &linear.weight, weight, &device);
                    if let (Some(param), Some(grad)) = (&linear.bias, bias) {
                        register(&mut grads, param, grad, &device);
                    }
                }
            }
        }

        let d_normalized = Tensor::<2>::from_data(
            TensorData::new(d_normalized, [rows, d_hidden]),
            &device.clone().without_autodiff(),
        );
        let mut norm_grads = (normalized * Tensor::from_inner(d_normalized))
            .sum()
            .backward();
        let d_lstm_out = lstm_out.grad_remove(&mut norm_grads).unwrap_or_else(|| {
            Tensor::zeros([batch, time, d_hidden], &device.clone().without_autodiff())
        });
        accumulate_grads(
            self,
            &mut grads,
            GradientsParams::from_module(&mut norm_grads, self),
        );

        let lstm_grads = self.lstm.backward(&tape, d_lstm_out);
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
        let seed = (features * d_features).sum();
        let mut before_lstm = seed.backward();
        let before_lstm = GradientsParams::from_module(&mut before_lstm, self);
        accumulate_grads(self, &mut grads, before_lstm);
        Ok((grads, output))
    }
}
