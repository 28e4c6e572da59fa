//! Which embeddings the memory environment's tools use: the OLMoE encoder's `embed` (SPEC §7;
//! the "cosine top-k over `embed` vectors") or the character n-gram embedder.
//!
//! The store ranks entries by cosine similarity, and `update` / `delete` act only on an entry at
//! least `match_threshold` close, so the threshold belongs to the embedder: see
//! [`RetrievalEmbedder::match_threshold`] and `docs/grpo.md` for the measurements behind it.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::memory_env::{CachedEmbedder, NgramEmbedder, TextEmbedder};
use crate::error::{Error, Result};
use crate::olmoe::OlmoeEncoder;

/// The embedder the environment's store and retrieval use, shared by every environment of a run.
pub type SharedEmbedder = Arc<dyn TextEmbedder + Send + Sync>;

impl TextEmbedder for OlmoeEncoder {
    /// [`OlmoeEncoder::embed`]: the mean of the last hidden state over the text's tokens, as
    /// plain floats (no autodiff graph).
    fn embed(&self, text: &str) -> Result<Vec<f32>> {
        OlmoeEncoder::embed(self, text)
    }
}

/// The embeddings behind the memory tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RetrievalEmbedder {
    /// The policy's OLMoE encoder as loaded (a frozen copy: retrieval does not drift while the
    /// encoder trains), through [`OlmoeEncoder::embed`], cached per text.
    Olmoe,
    /// [`NgramEmbedder::default`]: hashed character trigrams, independent of the model.
    Ngram,
}

impl RetrievalEmbedder {
    /// Both choices.
    pub const ALL: [RetrievalEmbedder; 2] = [RetrievalEmbedder::Olmoe, RetrievalEmbedder::Ngram];

    /// The name used in configs.
    pub fn name(self) -> &'static str {
        match self {
            RetrievalEmbedder::Olmoe => "olmoe",
            RetrievalEmbedder::Ngram => "ngram",
        }
    }

    /// The `match_threshold` calibrated for this embedder (measured with the scripted policy
    /// over 300–500 tasks on this machine; `docs/grpo.md` §8.3, `tests/grpo_retrieval.rs`):
    ///
    /// - `olmoe`, with the tiny_a fixture: a correction or retraction scores 0.854–0.985 against
    ///   the entry it is about; the closest entry to small talk scores below 0.85 in 99.7 % of
    ///   cases, to a recap request in about 80 % (at most 0.89). 0.85 keeps every right match;
    ///   no value also rejects every recap. A real checkpoint has its own similarity scale and
    ///   needs its own value.
    /// - `ngram`: 0.5 (corrections and retractions ≥ 0.575, small talk ≤ 0.382, recaps ≤ 0.475).
    pub fn match_threshold(self) -> f64 {
        match self {
            RetrievalEmbedder::Olmoe => 0.85,
            RetrievalEmbedder::Ngram => 0.5,
        }
    }

    /// Builds the embedder, cached per text; `encoder` is used for [`Olmoe`](Self::Olmoe) (an
    /// inference copy is taken).
    pub fn build(self, encoder: &OlmoeEncoder) -> SharedEmbedder {
        match self {
            RetrievalEmbedder::Olmoe => {
                let frozen: OlmoeEncoder = burn::module::Module::valid(encoder);
                Arc::new(CachedEmbedder::new(frozen))
            }
            RetrievalEmbedder::Ngram => Arc::new(CachedEmbedder::new(NgramEmbedder::default())),
        }
    }
}

impl fmt::Display for RetrievalEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RetrievalEmbedder {
    type Err = Error;

    /// Parses `olmoe` or `ngram` strictly.
    fn from_str(name: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.name() == name)
            .ok_or_else(|| {
                Error::invalid("retrieval", format!("`{name}` is not one of olmoe, ngram"))
            })
    }
}
