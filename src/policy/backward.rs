use burn::optim::GradientsParams;
use burn::tensor::Tensor;
use burn::tensor::activation::relu;

use super::evaluate::{EvaluateInput, Evaluation};
use super::network::FactoredRecurrentActorCritic;
use crate::error::Result;
use crate::nn::LstmState;
use crate::optim::accumulate_grads;

impl FactoredRecurrentActorCritic {
    /// Evaluates stored sequences like [`evaluate_actions`](Self::evaluate_actions), builds a loss
    /// from the evaluation with `loss_fn`, and returns the gradients of every parameter — with the
    /// LSTM's backward pass done by hand ([`Lstm::backward`](crate::nn::Lstm::backward)) instead of
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
        let sequences = &input.sequences;
        let (batch, time) = (sequences.batch, sequences.time);
        let inputs = self.sequence_inputs(sequences, &initial_state)?;
        let starts = self.episode_start_tensor(sequences);
        let features = relu(self.feature_norm.forward(self.feature.forward(inputs)));
        let d_feature = self.config.d_feature;
        let (lstm_out, state, tape) = self.lstm.forward_for_backward(
            features.clone().reshape([batch, time, d_feature]),
            initial_state,
            Some(starts),
        );
        // The LSTM output re-enters autodiff as a leaf: the graph after it is differentiated by
        // burn, the LSTM by hand, and the graph before it by a second backward pass seeded with the
        // LSTM's input gradient.
        let lstm_out = lstm_out.autodiff().require_grad();
        let normalized = self.lstm_norm.forward(
            lstm_out
                .clone()
                .reshape([batch * time, self.config.d_hidden]),
        );
        let evaluation = self.score(input, normalized, state.detach())?;
        let (loss, output) = loss_fn(&evaluation)?;
        let mut graph_grads = loss.backward();
        let d_lstm_out = lstm_out.grad_remove(&mut graph_grads).unwrap_or_else(|| {
            Tensor::zeros(
                [batch, time, self.config.d_hidden],
                &features.device().without_autodiff(),
            )
        });
        let mut grads = GradientsParams::from_module(&mut graph_grads, self);

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
        let d_features = lstm_grads.input.reshape([batch * time, d_feature]);
        let seed = (features * d_features).sum();
        let mut before_lstm = seed.backward();
        let before_lstm = GradientsParams::from_module(&mut before_lstm, self);
        accumulate_grads(self, &mut grads, before_lstm);
        Ok((grads, output))
    }
}
