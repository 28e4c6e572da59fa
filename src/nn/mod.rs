//! Neural-network building blocks that burn does not provide with the semantics needed here.

/// Fork-join over persistent helper threads, for the host kernels.
pub(crate) mod fork;
/// Large matrix products into host buffers through the `gemm` crate, for the hand-written passes.
pub(crate) mod gemm;
/// Internal small-batch kernels for the host actor; their preconditions are checked by its callers.
pub(crate) mod host;
pub mod init;
/// LayerNorm (+ ReLU) forward and backward on the host, for the training step on the CPU backend.
pub(crate) mod layer_norm;
mod lstm;
mod lstm_bptt;

pub use lstm::{Lstm, LstmConfig, LstmInit, LstmLayer, LstmState};
pub use lstm_bptt::{LstmGrads, LstmLayerGrads, LstmTape, Placement};
