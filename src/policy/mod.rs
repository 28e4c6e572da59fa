//! The factored recurrent actor-critic (SPEC §4–§5): an LSTM trunk, one masked categorical head
//! per sub-action, and a critic `Q(s, op)` conditioned on the op head.
//!
//! The op is decided once per step ([`select_op`]) and that single op is the stored action, the op
//! whose log-prob is stored, and the op the value is computed with. See `docs/select_op.md`.

mod act;
mod backward;
mod checkpoint;
mod config;
mod evaluate;
mod host_actor;
mod host_features;
mod host_mlp;
mod network;

pub use act::{ActInput, ActMode, ActOutput, select_op};
pub use config::{CategoricalInputConfig, FactoredRecurrentActorCriticConfig, ValueMode};
pub use evaluate::{EvaluateInput, Evaluation, SequenceOutput, Sequences};
pub use host_actor::{HostActor, HostLstmState};
pub use network::{FactoredRecurrentActorCritic, Mlp};
