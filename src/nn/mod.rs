//! Neural-network building blocks that burn does not provide with the semantics needed here.

pub mod init;
mod lstm;

pub use lstm::{Lstm, LstmConfig, LstmInit, LstmLayer, LstmState};
