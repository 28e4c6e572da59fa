//! A text memory environment for memory-operation policies, in the spirit of agentic memory
//! management (Mem0's add/update/delete/no-op decisions, MemGPT's self-managed memory): a stream
//! of incoming messages — new facts, corrections, retractions, requests and small talk — each
//! answered by one of six memory operations acting on a real store, then a final question whose
//! answer depends on what was kept. See `docs/grpo.md` for the state text, the tools and the
//! reward terms with their ranges.
//!
//! Operations are plain indices `0..6` in the order of SPEC §7's memory action head: add, update,
//! delete, retrieve, summary, filter ([`MEMORY_OP_NAMES`]); the policy's own operation type maps
//! onto them by position.

mod embedder;
mod env;
mod episode;
mod store;
mod task;

pub use embedder::{CachedEmbedder, NgramEmbedder, TextEmbedder, cosine_similarity};
pub use env::{MemoryEnv, MemoryEnvConfig, MemoryReward, MemoryStep};
pub use episode::{MemoryEpisode, MemoryEvaluation, evaluate, run_episode};
pub use store::{MemoryEntry, MemoryStore};
pub use task::{Attribute, CHATTER, Fact, FactKey, MemoryTask, Message, MessageKind, SUBJECTS};

/// The number of memory operations.
pub const NUM_MEMORY_OPS: usize = 6;

/// The operations' names, by index.
pub const MEMORY_OP_NAMES: [&str; NUM_MEMORY_OPS] =
    ["add", "update", "delete", "retrieve", "summary", "filter"];

/// Store the message's content as a new entry (evicting the oldest when full).
pub const OP_ADD: usize = 0;
/// Replace the entry closest to the message's content (cosine) with that content, when it is
/// at least `match_threshold` close.
pub const OP_UPDATE: usize = 1;
/// Remove the entry closest to the message's content (cosine), when it is at least
/// `match_threshold` close.
pub const OP_DELETE: usize = 2;
/// Answer a query from the `top_k` entries closest to it; the store is unchanged.
pub const OP_RETRIEVE: usize = 3;
/// Answer a recap request with a digest of the `top_k` entries closest to it; the store is
/// unchanged.
pub const OP_SUMMARY: usize = 4;
/// Discard the message; the store is unchanged.
pub const OP_FILTER: usize = 5;

#[cfg(test)]
mod tests;
