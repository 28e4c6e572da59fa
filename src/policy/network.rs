use burn::module::Module;
use burn::nn::{Embedding, LayerNorm, LayerNormConfig, Linear};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Int, Tensor, TensorData, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::config::{FactoredRecurrentActorCriticConfig, ValueMode};
use crate::action_space::ActionSpace;
use crate::error::{Error, Result};
use crate::nn::{Lstm, LstmConfig, LstmInit, LstmState, init};

/// The ε of both LayerNorms (PyTorch's default).
pub(crate) const LAYER_NORM_EPSILON: f64 = 1e-5;

/// A stack of `Linear` layers with ReLU between them (none after the last).
#[derive(Module, Debug)]
pub struct Mlp {
    /// The layers, input to output.
    pub layers: Vec<Linear>,
}

impl Mlp {
    /// Orthogonally initialized layers of `widths` (input first): hidden layers with `hidden_gain`,
    /// the output layer with `output_gain`, zero biases.
    fn new(
        widths: &[usize],
        hidden_gain: f32,
        output_gain: f32,
        rng: &mut StdRng,
        device: &Device,
    ) -> Self {
        let last = widths.len() - 2;
        let layers = widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let gain = if i == last { output_gain } else { hidden_gain };
                orthogonal_linear(w[0], w[1], gain, rng, device)
            })
            .collect();
        Self { layers }
    }

    /// # Shapes
    /// - input: `[..., d_input]`
    /// - output: `[..., d_output]`
    pub fn forward<const D: usize>(&self, input: Tensor<D>) -> Tensor<D> {
        let last = self.layers.len() - 1;
        self.layers.iter().enumerate().fold(input, |x, (i, layer)| {
            let y = layer.forward(x);
            if i == last { y } else { relu(y) }
        })
    }
}

impl Mlp {
    /// The critic's first layer on `concat(features, one_hot(op))` without the concatenation: the
    /// state part `features·W_s + b`, shared by every op, and the op rows `W_op` (`[num_ops,
    /// d_out]`), one of which is added per op.
    ///
    /// # Shapes
    /// - `features`: `[rows, d_hidden]`
    /// - output: `[rows, d_out]` and `[num_ops, d_out]`
    fn critic_first_layer(&self, features: &Tensor<2>, num_ops: usize) -> (Tensor<2>, Tensor<2>) {
        let d_hidden = features.dims()[1];
        let first = &self.layers[0];
        let weight = first.weight.val();
        let state_part = features
            .clone()
            .matmul(weight.clone().slice(s![0..d_hidden]));
        let state_part = match &first.bias {
            Some(b) => state_part + b.val().unsqueeze_dim(0),
            None => state_part,
        };
        (state_part, weight.slice(s![d_hidden..d_hidden + num_ops]))
    }

    /// The layers after the critic's first, on its pre-activations.
    ///
    /// # Shapes
    /// - `pre`: `[rows, d_out]`
    /// - output: `[rows, 1]`
    fn critic_rest(&self, pre: Tensor<2>) -> Tensor<2> {
        self.layers[1..]
            .iter()
            .fold(pre, |x, layer| layer.forward(relu(x)))
    }

    /// As a critic on `concat(features, one_hot(op))`: `Q(s, op)` for every op in one batched pass,
    /// the first layer's state part computed once and each op's row of `W_op` broadcast over it.
    ///
    /// # Shapes
    /// - `features`: `[rows, d_hidden]`
    /// - output: `[rows, num_ops]`
    pub(crate) fn q_values(&self, features: &Tensor<2>, num_ops: usize) -> Tensor<2> {
        let rows = features.dims()[0];
        let (state_part, op_rows) = self.critic_first_layer(features, num_ops);
        let d_out = state_part.dims()[1];
        let pre = state_part.unsqueeze_dim::<3>(1) + op_rows.unsqueeze_dim::<3>(0);
        self.critic_rest(pre.reshape([rows * num_ops, d_out]))
            .reshape([rows, num_ops])
    }

    /// As a critic on `concat(features, one_hot(op))`: `Q(s, ops[row])` for one op per row, the
    /// same sums as [`q_values`](Self::q_values) for those ops with none of the other ops' work
    /// (training in `SelectedOp` mode needs only the stored op's value).
    ///
    /// # Shapes
    /// - `features`: `[rows, d_hidden]`; `ops`: `[rows]`, each below `num_ops`
    /// - output: `[rows]`
    pub(crate) fn q_values_of(
        &self,
        features: &Tensor<2>,
        num_ops: usize,
        ops: Tensor<1, Int>,
    ) -> Tensor<1> {
        let (state_part, op_rows) = self.critic_first_layer(features, num_ops);
        self.critic_rest(state_part + op_rows.select(0, ops))
            .squeeze_dim(1)
    }
}

fn orthogonal_linear(
    d_input: usize,
    d_output: usize,
    gain: f32,
    rng: &mut StdRng,
    device: &Device,
) -> Linear {
    Linear {
        weight: init::param(
            init::orthogonal(d_input, d_output, gain, rng),
            [d_input, d_output],
            device,
        ),
        bias: Some(init::param(vec![0.0; d_output], [d_output], device)),
    }
}

/// The factored recurrent actor-critic of SPEC §4: embeddings and a feature layer, an LSTM trunk,
/// one masked categorical head per sub-action reading the LSTM output in parallel, and a critic
/// `Q(s, op)` on `concat(lstm_out, one_hot(op))` (plus a `V(s)` head in `StateValue` mode).
///
/// Acting ([`act`](Self::act)) decides the op once — [`select_op`](super::select_op) — and uses
/// that op for the stored action, its log-prob and the value; training replays stored sequences
/// with [`evaluate_actions`](Self::evaluate_actions).
#[derive(Module, Debug)]
pub struct FactoredRecurrentActorCritic {
    pub(crate) embedding: Option<Embedding>,
    pub(crate) feature: Linear,
    pub(crate) feature_norm: LayerNorm,
    pub(crate) lstm: Lstm,
    pub(crate) lstm_norm: LayerNorm,
    pub(crate) heads: Vec<Mlp>,
    pub(crate) critic: Mlp,
    pub(crate) state_value: Option<Mlp>,
    #[module(skip)]
    pub(crate) config: FactoredRecurrentActorCriticConfig,
    #[module(skip)]
    pub(crate) space: ActionSpace,
}

impl FactoredRecurrentActorCriticConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// The errors of [`ActionSpace::new`]; [`Error::WrongLength`] when `head_hidden` is neither
    /// empty nor one list per head; [`Error::Invalid`] naming a zero width.
    pub fn validate(&self) -> Result<ActionSpace> {
        let space = self.space()?;
        if !self.head_hidden.is_empty() && self.head_hidden.len() != space.num_heads() {
            return Err(Error::WrongLength {
                what: "head_hidden (one list of widths per head)".into(),
                expected: space.num_heads(),
                found: self.head_hidden.len(),
            });
        }
        let mut widths = vec![
            ("d_observation", self.d_observation),
            ("d_feature", self.d_feature),
            ("d_hidden", self.d_hidden),
            ("num_lstm_layers", self.num_lstm_layers),
        ];
        if let Some(c) = &self.categorical {
            widths.extend([
                ("categorical.num_inputs", c.num_inputs),
                ("categorical.vocab", c.vocab),
                ("categorical.d_embedding", c.d_embedding),
            ]);
        }
        if let Some((name, _)) = widths.iter().find(|(_, w)| *w == 0) {
            return Err(Error::invalid(*name, "must be at least 1"));
        }
        let zero_hidden = self
            .head_hidden
            .iter()
            .enumerate()
            .find(|(_, h)| h.contains(&0))
            .map(|(i, _)| format!("head_hidden[{i}]"))
            .or_else(|| {
                self.critic_hidden
                    .contains(&0)
                    .then(|| "critic_hidden".to_string())
            });
        if let Some(name) = zero_hidden {
            return Err(Error::invalid(name, "hidden widths must be at least 1"));
        }
        Ok(space)
    }

    /// Builds the network with the initialization of SPEC §4: orthogonal weights (gain √2, zero
    /// bias), policy output layers gain 0.01, value output gain 1, LSTM orthogonal with forget-gate
    /// bias 1, embeddings `N(0, 0.02)`; all drawn from an RNG seeded with `seed`.
    ///
    /// # Errors
    /// The errors of [`validate`](Self::validate).
    pub fn init(&self, device: &Device) -> Result<FactoredRecurrentActorCritic> {
        let space = self.validate()?;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let sqrt2 = std::f32::consts::SQRT_2;
        let embedding = self.categorical.as_ref().map(|c| Embedding {
            weight: init::param(
                init::normal(c.num_rows() * c.d_embedding, 0.0, 0.02, &mut rng),
                [c.num_rows(), c.d_embedding],
                device,
            ),
        });
        let feature = orthogonal_linear(self.d_input(), self.d_feature, sqrt2, &mut rng, device);
        let lstm = LstmConfig::new(self.d_feature, self.d_hidden)
            .with_num_layers(self.num_lstm_layers)
            .with_init(LstmInit::Orthogonal {
                gain: 1.0,
                forget_bias: 1.0,
            })
            .with_seed(rng_seed(&mut rng))
            .init(device);
        let heads = space
            .heads()
            .iter()
            .enumerate()
            .map(|(i, head)| {
                let widths =
                    [vec![self.d_hidden], self.hidden_of_head(i), vec![head.size]].concat();
                Mlp::new(&widths, sqrt2, 0.01, &mut rng, device)
            })
            .collect();
        let critic_widths = [
            vec![self.d_hidden + space.num_ops()],
            self.critic_hidden.clone(),
            vec![1],
        ]
        .concat();
        let critic = Mlp::new(&critic_widths, sqrt2, 1.0, &mut rng, device);
        let state_value = (self.value_mode == ValueMode::StateValue).then(|| {
            let widths = [vec![self.d_hidden], self.critic_hidden.clone(), vec![1]].concat();
            Mlp::new(&widths, sqrt2, 1.0, &mut rng, device)
        });
        Ok(FactoredRecurrentActorCritic {
            embedding,
            feature,
            feature_norm: LayerNormConfig::new(self.d_feature)
                .with_epsilon(LAYER_NORM_EPSILON)
                .init(device),
            lstm,
            lstm_norm: LayerNormConfig::new(self.d_hidden)
                .with_epsilon(LAYER_NORM_EPSILON)
                .init(device),
            heads,
            critic,
            state_value,
            config: self.clone(),
            space,
        })
    }
}

fn rng_seed(rng: &mut StdRng) -> u64 {
    rand::Rng::next_u64(rng)
}

/// What the trunk and the critic produce for a batch of rows.
pub(crate) struct TrunkOutput {
    /// Normalized LSTM output, `[rows, d_hidden]`.
    pub features: Tensor<2>,
    /// State after the last step.
    pub state: LstmState,
}

impl FactoredRecurrentActorCritic {
    /// The configuration it was built from.
    pub fn config(&self) -> &FactoredRecurrentActorCriticConfig {
        &self.config
    }

    /// The action space.
    pub fn space(&self) -> &ActionSpace {
        &self.space
    }

    /// The device its parameters live on.
    pub fn device(&self) -> Device {
        self.feature.weight.val().device()
    }

    /// An all-zero recurrent state for `batch` rows.
    pub fn initial_state(&self, batch: usize) -> LstmState {
        LstmState::zeros(
            self.config.num_lstm_layers,
            batch,
            self.config.d_hidden,
            &self.device(),
        )
    }

    /// Checks and uploads observations: continuous features and categorical indices.
    ///
    /// # Shapes
    /// - `observations`: `rows * d_observation`; `categorical`: `rows * num_inputs`
    /// - output: `[rows, d_input]`
    pub(crate) fn encode_inputs(
        &self,
        observations: &[f32],
        categorical: &[i64],
        rows: usize,
    ) -> Result<Tensor<2>> {
        let indices = checked_inputs(&self.config, observations, categorical, rows)?;
        let device = self.device();
        let x = Tensor::<2>::from_data(
            TensorData::new(observations.to_vec(), [rows, self.config.d_observation]),
            &device,
        );
        let (Some(embedding), Some(cat)) = (&self.embedding, &self.config.categorical) else {
            return Ok(x);
        };
        let indices =
            Tensor::<2, Int>::from_data(TensorData::new(indices, [rows, cat.num_inputs]), &device);
        let embedded = embedding.forward(indices).reshape([rows, cat.d_output()]);
        Ok(Tensor::cat(vec![x, embedded], 1))
    }

    /// Feature layer, LSTM and output LayerNorm over `[batch, time]` rows (batch-major).
    ///
    /// # Shapes
    /// - `inputs`: `[batch * time, d_input]`
    /// - `episode_starts`: `[batch, time]`
    /// - output features: `[batch * time, d_hidden]`
    pub(crate) fn trunk(
        &self,
        inputs: Tensor<2>,
        batch: usize,
        time: usize,
        state: LstmState,
        episode_starts: Option<Tensor<2>>,
    ) -> TrunkOutput {
        let features = relu(self.feature_norm.forward(self.feature.forward(inputs)));
        let features = features.reshape([batch, time, self.config.d_feature]);
        let (output, state) = self.lstm.forward(features, state, episode_starts);
        let output = output.reshape([batch * time, self.config.d_hidden]);
        TrunkOutput {
            features: self.lstm_norm.forward(output),
            state,
        }
    }

    /// Logits of every head.
    ///
    /// # Shapes
    /// - `features`: `[rows, d_hidden]`
    /// - output: one `[rows, size_h]` per head
    pub(crate) fn head_logits(&self, features: &Tensor<2>) -> Vec<Tensor<2>> {
        self.heads
            .iter()
            .map(|h| h.forward(features.clone()))
            .collect()
    }

    /// `Q(s, op)` for every op in one batched pass (see [`Mlp::q_values`]).
    ///
    /// # Shapes
    /// - `features`: `[rows, d_hidden]`
    /// - output: `[rows, num_ops]`
    pub(crate) fn q_values(&self, features: &Tensor<2>) -> Tensor<2> {
        self.critic.q_values(features, self.space.num_ops())
    }

    /// `V(s)` in `StateValue` mode.
    ///
    /// # Shapes
    /// - `features`: `[rows, d_hidden]`
    /// - output: `[rows]`
    pub(crate) fn state_values(&self, features: &Tensor<2>) -> Option<Tensor<1>> {
        self.state_value
            .as_ref()
            .map(|v| v.forward(features.clone()).squeeze_dim(1))
    }
}

/// Checks observations (size, finiteness) and categorical inputs (size, range) and returns the
/// embedding-table row of every categorical input (−1 mapped to the null row).
///
/// # Shapes
/// - `observations`: `rows * d_observation`; `categorical`: `rows * num_inputs`
/// - output: `rows * num_inputs`
pub(crate) fn checked_inputs(
    config: &FactoredRecurrentActorCriticConfig,
    observations: &[f32],
    categorical: &[i64],
    rows: usize,
) -> Result<Vec<i64>> {
    let d_obs = config.d_observation;
    if observations.len() != rows * d_obs {
        return Err(Error::ShapeMismatch {
            name: "observations".into(),
            expected: vec![rows, d_obs],
            found: vec![observations.len()],
        });
    }
    if let Some(i) = observations.iter().position(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            name: "observations".into(),
            row: i / d_obs,
        });
    }
    let Some(cat) = &config.categorical else {
        if !categorical.is_empty() {
            return Err(Error::ShapeMismatch {
                name: "categorical (this network has no categorical inputs)".into(),
                expected: vec![rows, 0],
                found: vec![categorical.len()],
            });
        }
        return Ok(Vec::new());
    };
    if categorical.len() != rows * cat.num_inputs {
        return Err(Error::ShapeMismatch {
            name: "categorical".into(),
            expected: vec![rows, cat.num_inputs],
            found: vec![categorical.len()],
        });
    }
    categorical
        .iter()
        .enumerate()
        .map(|(i, &v)| match v {
            -1 if cat.null_entry => Ok(cat.vocab as i64),
            v if (0..cat.vocab as i64).contains(&v) => Ok(v),
            v => Err(Error::invalid(
                format!(
                    "categorical[row {}][input {}]",
                    i / cat.num_inputs,
                    i % cat.num_inputs
                ),
                format!(
                    "{v} is outside 0..{}{}",
                    cat.vocab,
                    if cat.null_entry { " (or -1)" } else { "" }
                ),
            )),
        })
        .collect()
}
