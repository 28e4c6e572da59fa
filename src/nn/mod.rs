//! Neural-network building blocks that burn does not provide with the semantics needed here.

pub mod host;
pub mod init;
mod lstm;
mod lstm_bptt;

pub use lstm::{Lstm, LstmConfig, LstmInit, LstmLayer, LstmState};
pub use lstm_bptt::{LstmGrads, LstmLayerGrads, LstmTape};
