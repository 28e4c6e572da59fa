//! # factored-rl
//!
//! Reinforcement learning on [burn](https://burn.dev) for agents that make one decision out of
//! several masked categorical sub-actions ("heads"), remember with an LSTM, and score the chosen
//! `op` with a critic Q(s, op) — trained with recurrent PPO — and for memory-operation policies
//! over an OLMoE encoder trained with GRPO.
//!
//! The behaviour contract is `SPEC.md` (shipped as `docs/`); each module cites the paper it
//! implements.
//!
//! - [`action_space`]: heads, the op head, causal relevance and op-conditioned mask rules, as data.
//! - [`distribution`]: the masked categorical distribution and its product over heads.
//! - [`rng`] and [`float_bits`]: a checkpointable generator and exact float serialization, so that
//!   a resumed run continues bit for bit.
//! - [`nn`]: a PyTorch-exact multi-layer LSTM with per-row episode-start resets.
//! - [`gae`]: generalized advantage estimation with terminations and truncations kept apart.
//! - [`grpo`]: GRPO's group-relative advantages and loss (TRL semantics), the text memory
//!   environment its memory-operation policies train on, and the trainer over an OLMoE encoder
//!   with a memory action head.
//! - [`olmoe`]: Hugging Face OLMoE checkpoints on burn (transformers-exact, sparse experts), state
//!   embeddings with gradients, and the memory-operation action head and policy.
#![warn(missing_docs)]

pub mod action_space;
pub mod backend;
pub mod buffer;
pub mod checkpoint;
pub mod distribution;
pub mod env;
pub mod error;
pub mod float_bits;
pub mod gae;
pub mod grpo;
pub mod nn;
pub mod olmoe;
pub mod optim;
pub mod policy;
pub mod ppo;
pub mod report;
pub mod rng;
pub mod weights;

pub use burn;
pub use error::{Error, Result};
