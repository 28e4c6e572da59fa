//! The six memory operations and the head that scores them from a state embedding.

use std::fmt;
use std::str::FromStr;

use burn::config::Config;
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::{Error, Result};
use crate::nn::init;

/// Number of memory operations, the width of the head's output.
pub const NUM_MEMORY_OPS: usize = 6;

/// A memory operation, in the head's output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MemoryOp {
    /// Store a new memory.
    Add,
    /// Change a stored memory.
    Update,
    /// Remove a stored memory.
    Delete,
    /// Read memories back.
    Retrieve,
    /// Condense memories.
    Summary,
    /// Drop memories that do not match.
    Filter,
}

impl MemoryOp {
    /// Every operation, in output order (index `i` is output column `i`).
    pub const ALL: [MemoryOp; NUM_MEMORY_OPS] = [
        MemoryOp::Add,
        MemoryOp::Update,
        MemoryOp::Delete,
        MemoryOp::Retrieve,
        MemoryOp::Summary,
        MemoryOp::Filter,
    ];

    /// The output column of this operation.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The operation of output column `index`.
    ///
    /// # Errors
    /// [`Error::ActionOutOfRange`] for an index ≥ 6.
    pub fn from_index(index: usize) -> Result<Self> {
        Self::ALL
            .get(index)
            .copied()
            .ok_or_else(|| Error::ActionOutOfRange {
                head: "memory_op".to_string(),
                row: 0,
                action: index,
                size: NUM_MEMORY_OPS,
            })
    }

    /// The lowercase name (`add`, `update`, `delete`, `retrieve`, `summary`, `filter`).
    pub fn name(self) -> &'static str {
        match self {
            MemoryOp::Add => "add",
            MemoryOp::Update => "update",
            MemoryOp::Delete => "delete",
            MemoryOp::Retrieve => "retrieve",
            MemoryOp::Summary => "summary",
            MemoryOp::Filter => "filter",
        }
    }
}

impl fmt::Display for MemoryOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for MemoryOp {
    type Err = Error;

    /// Parses the exact lowercase name; anything else is an error listing the valid names
    /// (never a default to `add`).
    fn from_str(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.name() == name)
            .ok_or_else(|| Error::UnknownMemoryOp {
                name: name.to_string(),
                valid: Self::ALL.map(MemoryOp::name).join(", "),
            })
    }
}

/// Configuration of a [`MemoryActionHead`].
#[derive(Config, Debug)]
pub struct MemoryActionHeadConfig {
    /// Width of the embeddings it reads, H (the encoder's hidden size).
    pub d_input: usize,
    /// Seed of the initialization RNG.
    #[config(default = 0)]
    pub seed: u64,
}

impl MemoryActionHeadConfig {
    /// Builds the head with PyTorch's default `nn.Linear` initialization (weights and biases
    /// `U(−1/√fan_in, 1/√fan_in)`) drawn from the seeded RNG.
    ///
    /// # Errors
    /// [`Error::Invalid`] when `d_input < 2` (the hidden layer has `d_input / 2` units).
    pub fn init(&self, device: &Device) -> Result<MemoryActionHead> {
        if self.d_input < 2 {
            return Err(Error::invalid(
                "d_input",
                format!(
                    "{} is too small for a hidden layer of d_input/2 units",
                    self.d_input
                ),
            ));
        }
        let mut rng = StdRng::seed_from_u64(self.seed);
        let d_hidden = self.d_input / 2;
        let mut linear = |d_in: usize, d_out: usize| {
            let bound = 1.0 / (d_in as f32).sqrt();
            Linear {
                weight: init::param(
                    init::uniform(d_in * d_out, bound, &mut rng),
                    [d_in, d_out],
                    device,
                ),
                bias: Some(init::param(
                    init::uniform(d_out, bound, &mut rng),
                    [d_out],
                    device,
                )),
            }
        };
        Ok(MemoryActionHead {
            hidden: linear(self.d_input, d_hidden),
            output: linear(d_hidden, NUM_MEMORY_OPS),
        })
    }
}

/// `Linear(H → H/2) → ReLU → Linear(H/2 → 6)`: logits over [`MemoryOp::ALL`].
#[derive(Module, Debug)]
pub struct MemoryActionHead {
    /// H → H/2.
    pub hidden: Linear,
    /// H/2 → 6.
    pub output: Linear,
}

impl MemoryActionHead {
    /// Width of the embeddings it reads.
    pub fn d_input(&self) -> usize {
        self.hidden.weight.dims()[0]
    }

    /// Logits over the six memory operations.
    ///
    /// # Shapes
    /// - `embeddings`: `[batch, d_input]`
    /// - output: `[batch, 6]`
    pub fn forward(&self, embeddings: Tensor<2>) -> Tensor<2> {
        self.output.forward(relu(self.hidden.forward(embeddings)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_output_order() {
        for (i, op) in MemoryOp::ALL.into_iter().enumerate() {
            assert_eq!(op.index(), i);
            assert_eq!(MemoryOp::from_index(i).unwrap(), op);
            assert_eq!(op.name().parse::<MemoryOp>().unwrap(), op);
        }
        let names: Vec<_> = MemoryOp::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            ["add", "update", "delete", "retrieve", "summary", "filter"]
        );
    }

    #[test]
    fn unknown_names_are_errors_listing_the_valid_ones() {
        for bad in ["", "ADD", "Add", "insert", "add "] {
            match bad.parse::<MemoryOp>() {
                Err(Error::UnknownMemoryOp { name, valid }) => {
                    assert_eq!(name, bad);
                    assert_eq!(valid, "add, update, delete, retrieve, summary, filter");
                }
                other => panic!("{bad:?} parsed as {other:?}"),
            }
        }
        assert!(matches!(
            MemoryOp::from_index(6),
            Err(Error::ActionOutOfRange { action: 6, .. })
        ));
    }

    #[test]
    fn head_maps_embeddings_to_six_logits() {
        let device = crate::backend::default_device();
        let head = MemoryActionHeadConfig::new(8)
            .with_seed(3)
            .init(&device)
            .unwrap();
        assert_eq!(head.d_input(), 8);
        assert_eq!(head.hidden.weight.dims(), [8, 4]);
        let logits = head.forward(Tensor::ones([5, 8], &device));
        assert_eq!(logits.dims(), [5, NUM_MEMORY_OPS]);
        assert!(matches!(
            MemoryActionHeadConfig::new(1).init(&device),
            Err(Error::Invalid { .. })
        ));
    }
}
