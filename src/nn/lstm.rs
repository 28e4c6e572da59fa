//! A multi-layer LSTM with PyTorch's parameter layout and per-row episode-start resets.
//!
//! burn's own `nn::Lstm` is single-layer, keeps each gate as two separate `Linear`s (eight
//! matmuls a step, in burn's `[in, out]` layout) and cannot reset individual batch rows in the
//! middle of a sequence. Recurrent PPO needs all three: several layers, PyTorch's
//! `weight_ih_l{k}` / `weight_hh_l{k}` / `bias_ih_l{k}` / `bias_hh_l{k}` tensors (gate row blocks
//! i, f, g, o) loaded as they are, and the reset of sb3-contrib's `episode_starts` before each
//! step. So the cell is written here on burn tensor ops, with the input projection of a whole
//! sequence done in one matmul and one fused `[4H, H]` matmul per step.
//!
//! Gates: `z = x W_ihᵀ + b_ih + h W_hhᵀ + b_hh`; `c' = σ(f)·c + σ(i)·tanh(g)`;
//! `h' = σ(o)·tanh(c')` (Hochreiter & Schmidhuber, 1997; PyTorch's formulation).

use std::path::Path;

use burn::config::Config;
use burn::module::{Module, Param};
use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::{Device, Tensor, TensorData, s};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::init;
use crate::error::{Error, Result};
use crate::weights::{HostTensor, SafetensorsFile};

/// How an [`Lstm`] is initialized.
#[derive(Config, Debug, PartialEq)]
pub enum LstmInit {
    /// PyTorch's default: every weight and bias `U(-1/√H, 1/√H)`.
    PyTorchDefault,
    /// Orthogonal weights scaled by `gain`, zero biases except `forget_bias` on the forget gate
    /// (split evenly between `bias_ih` and `bias_hh`, so the effective bias is `forget_bias`).
    Orthogonal {
        /// Gain of the orthogonal matrices.
        gain: f32,
        /// Effective forget-gate bias.
        forget_bias: f32,
    },
}

/// Configuration of an [`Lstm`].
#[derive(Config, Debug)]
pub struct LstmConfig {
    /// Width of the input of the first layer.
    pub d_input: usize,
    /// Width of the hidden and cell state of every layer.
    pub d_hidden: usize,
    /// Number of stacked layers.
    #[config(default = 1)]
    pub num_layers: usize,
    /// Initialization scheme.
    #[config(default = "LstmInit::PyTorchDefault")]
    pub init: LstmInit,
    /// Seed of the initialization RNG.
    #[config(default = 0)]
    pub seed: u64,
}

/// One layer's parameters, in PyTorch's layout.
#[derive(Module, Debug)]
pub struct LstmLayer {
    /// `[4H, d_in]`, row blocks i, f, g, o.
    pub weight_ih: Param<Tensor<2>>,
    /// `[4H, H]`, row blocks i, f, g, o.
    pub weight_hh: Param<Tensor<2>>,
    /// `[4H]`.
    pub bias_ih: Param<Tensor<1>>,
    /// `[4H]`.
    pub bias_hh: Param<Tensor<1>>,
}

/// A stack of LSTM layers (see the module documentation).
#[derive(Module, Debug)]
pub struct Lstm {
    /// The layers, first to last.
    pub layers: Vec<LstmLayer>,
}

/// The recurrent state of every layer.
#[derive(Debug, Clone)]
pub struct LstmState {
    /// Hidden state `h`, `[num_layers, batch, d_hidden]`.
    pub hidden: Tensor<3>,
    /// Cell state `c`, `[num_layers, batch, d_hidden]`.
    pub cell: Tensor<3>,
}

impl LstmState {
    /// All-zero state.
    pub fn zeros(num_layers: usize, batch: usize, d_hidden: usize, device: &Device) -> Self {
        Self {
            hidden: Tensor::zeros([num_layers, batch, d_hidden], device),
            cell: Tensor::zeros([num_layers, batch, d_hidden], device),
        }
    }

    /// `[num_layers, batch, d_hidden]`.
    pub fn dims(&self) -> [usize; 3] {
        self.hidden.dims()
    }

    /// A state cut off from the autodiff graph.
    pub fn detach(self) -> Self {
        Self {
            hidden: self.hidden.detach(),
            cell: self.cell.detach(),
        }
    }
}

impl LstmConfig {
    /// Builds the LSTM with freshly initialized parameters.
    pub fn init(&self, device: &Device) -> Lstm {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let h = self.d_hidden;
        let layers = (0..self.num_layers)
            .map(|k| {
                let d_in = if k == 0 { self.d_input } else { h };
                let (w_ih, w_hh, b_ih, b_hh) = match self.init {
                    LstmInit::PyTorchDefault => {
                        let bound = 1.0 / (h as f32).sqrt();
                        (
                            init::uniform(4 * h * d_in, bound, &mut rng),
                            init::uniform(4 * h * h, bound, &mut rng),
                            init::uniform(4 * h, bound, &mut rng),
                            init::uniform(4 * h, bound, &mut rng),
                        )
                    }
                    LstmInit::Orthogonal { gain, forget_bias } => {
                        let mut bias = vec![0.0; 4 * h];
                        bias[h..2 * h].fill(forget_bias / 2.0);
                        (
                            init::orthogonal(4 * h, d_in, gain, &mut rng),
                            init::orthogonal(4 * h, h, gain, &mut rng),
                            bias.clone(),
                            bias,
                        )
                    }
                };
                LstmLayer {
                    weight_ih: init::param(w_ih, [4 * h, d_in], device),
                    weight_hh: init::param(w_hh, [4 * h, h], device),
                    bias_ih: init::param(b_ih, [4 * h], device),
                    bias_hh: init::param(b_hh, [4 * h], device),
                }
            })
            .collect();
        Lstm { layers }
    }
}

impl Lstm {
    /// The number of layers.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Width of the hidden state.
    pub fn d_hidden(&self) -> usize {
        self.layers[0].weight_hh.dims()[1]
    }

    /// Width of the first layer's input.
    pub fn d_input(&self) -> usize {
        self.layers[0].weight_ih.dims()[1]
    }

    /// Runs batch-first sequences from `state`, resetting a row's state (every layer's `h` and
    /// `c`) to zero before each step where its episode starts.
    ///
    /// # Shapes
    /// - `input`: `[batch, time, d_input]`
    /// - `state`: `[num_layers, batch, d_hidden]` each
    /// - `episode_starts`: `[batch, time]`, 1.0 where a new episode starts at that step, else 0.0
    /// - output: `[batch, time, d_hidden]` (the last layer's `h` at every step) and the state after
    ///   the last step
    pub fn forward(
        &self,
        input: Tensor<3>,
        state: LstmState,
        episode_starts: Option<Tensor<2>>,
    ) -> (Tensor<3>, LstmState) {
        let [batch, time, d_input] = input.dims();
        let d_hidden = self.d_hidden();
        // keep[t] = 1 - episode_starts[:, t], as [batch, 1], for every step.
        let keep = episode_starts.map(|starts| {
            let keep = starts.neg().add_scalar(1.0);
            (0..time)
                .map(|t| keep.clone().slice(s![.., t..t + 1]))
                .collect::<Vec<_>>()
        });
        let mut layer_input = input.reshape([batch * time, d_input]);
        let mut final_hidden = Vec::with_capacity(self.layers.len());
        let mut final_cell = Vec::with_capacity(self.layers.len());
        for (k, layer) in self.layers.iter().enumerate() {
            let bias = (layer.bias_ih.val() + layer.bias_hh.val()).unsqueeze_dim::<2>(0);
            // The input projection of every step in one matmul.
            let projected = (layer_input.matmul(layer.weight_ih.val().transpose()) + bias)
                .reshape([batch, time, 4 * d_hidden]);
            let w_hh_t = layer.weight_hh.val().transpose();
            let mut h = state.hidden.clone().slice(s![k..k + 1]).squeeze_dim::<2>(0);
            let mut c = state.cell.clone().slice(s![k..k + 1]).squeeze_dim::<2>(0);
            let mut outputs = Vec::with_capacity(time);
            for t in 0..time {
                if let Some(keep) = &keep {
                    h = h * keep[t].clone();
                    c = c * keep[t].clone();
                }
                let z = projected.clone().slice(s![.., t]).squeeze_dim::<2>(1)
                    + h.matmul(w_hh_t.clone());
                (h, c) = cell_update(z, c, d_hidden);
                outputs.push(h.clone());
            }
            final_hidden.push(h);
            final_cell.push(c);
            layer_input = Tensor::stack::<3>(outputs, 1).reshape([batch * time, d_hidden]);
        }
        let output = layer_input.reshape([batch, time, d_hidden]);
        let state = LstmState {
            hidden: Tensor::stack(final_hidden, 0),
            cell: Tensor::stack(final_cell, 0),
        };
        (output, state)
    }

    /// Loads PyTorch-named weights (`{prefix}weight_ih_l{k}`, `{prefix}weight_hh_l{k}`,
    /// `{prefix}bias_ih_l{k}`, `{prefix}bias_hh_l{k}`) from a safetensors file into this LSTM.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] or [`Error::ShapeMismatch`] naming the key and file.
    pub fn load_pytorch_safetensors(self, path: impl AsRef<Path>, prefix: &str) -> Result<Self> {
        let file = SafetensorsFile::open(path)?;
        self.load_pytorch_tensors(&file, prefix)
    }

    /// As [`load_pytorch_safetensors`](Self::load_pytorch_safetensors), from an opened file.
    ///
    /// # Errors
    /// As [`load_pytorch_safetensors`](Self::load_pytorch_safetensors).
    pub fn load_pytorch_tensors(mut self, file: &SafetensorsFile, prefix: &str) -> Result<Self> {
        for (k, layer) in self.layers.iter_mut().enumerate() {
            let read = |name: &str, shape: Vec<usize>| {
                file.read_shaped(&format!("{prefix}{name}_l{k}"), &shape)
            };
            let [rows, d_in] = layer.weight_ih.dims();
            let h = rows / 4;
            let w_ih = read("weight_ih", vec![rows, d_in])?;
            let w_hh = read("weight_hh", vec![rows, h])?;
            let b_ih = read("bias_ih", vec![rows])?;
            let b_hh = read("bias_hh", vec![rows])?;
            replace(&mut layer.weight_ih, w_ih);
            replace(&mut layer.weight_hh, w_hh);
            replace(&mut layer.bias_ih, b_ih);
            replace(&mut layer.bias_hh, b_hh);
        }
        Ok(self)
    }

    /// Builds an LSTM whose sizes and layer count are read from PyTorch-named tensors in `file`.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] when `{prefix}weight_ih_l0` is absent; the errors of
    /// [`load_pytorch_tensors`](Self::load_pytorch_tensors).
    pub fn from_pytorch_tensors(
        file: &SafetensorsFile,
        prefix: &str,
        device: &Device,
    ) -> Result<Self> {
        let (shape, _) = file.info(&format!("{prefix}weight_ih_l0"))?;
        let (hh_shape, _) = file.info(&format!("{prefix}weight_hh_l0"))?;
        if shape.len() != 2 || hh_shape.len() != 2 || shape[0] % 4 != 0 {
            return Err(Error::ShapeMismatch {
                name: format!("{prefix}weight_ih_l0 in {}", file.path().display()),
                expected: vec![4 * hh_shape.get(1).copied().unwrap_or(0), 0],
                found: shape,
            });
        }
        let num_layers = (0..)
            .take_while(|k| file.contains(&format!("{prefix}weight_ih_l{k}")))
            .count();
        LstmConfig::new(shape[1], shape[0] / 4)
            .with_num_layers(num_layers)
            .init(device)
            .load_pytorch_tensors(file, prefix)
    }
}

/// One LSTM cell update from the gate pre-activations `z = [i | f | g | o]`.
///
/// # Shapes
/// - `z`: `[batch, 4 * d_hidden]`; `cell`: `[batch, d_hidden]`
/// - output: the new `(h, c)`, `[batch, d_hidden]` each
fn cell_update(z: Tensor<2>, cell: Tensor<2>, d_hidden: usize) -> (Tensor<2>, Tensor<2>) {
    let [i, f, g, o] =
        [0, 1, 2, 3].map(|k| z.clone().slice(s![.., k * d_hidden..(k + 1) * d_hidden]));
    let cell = sigmoid(f) * cell + sigmoid(i) * tanh(g);
    let hidden = sigmoid(o) * tanh(cell.clone());
    (hidden, cell)
}

/// Replaces a parameter's value, keeping its id and training state.
pub(crate) fn replace<const D: usize>(param: &mut Param<Tensor<D>>, values: HostTensor) {
    let shape: [usize; D] = values
        .shape
        .try_into()
        .expect("shape checked by read_shaped");
    let taken = std::mem::replace(
        param,
        Param::from_tensor(Tensor::empty(shape, &Device::default())),
    );
    *param = taken.map(|old| {
        let tensor = Tensor::from_data(TensorData::new(values.values, shape), &old.device());
        if old.is_require_grad() {
            tensor.require_grad()
        } else {
            tensor
        }
    });
}
