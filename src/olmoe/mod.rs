//! OLMoE encoder adapter (Muennighoff et al., "OLMoE: Open Mixture-of-Experts Language Models",
//! 2024): loads a Hugging Face checkpoint folder from disk and supplies state embeddings to a
//! memory-operation action head.
//!
//! - [`config`]: `config.json` in its transformers 4 and 5 forms.
//! - [`loader`]: the checkpoint folder (single file or shards, F32/BF16/F16) with named errors.
//! - [`model`]: the decoder with exactly transformers' forward semantics and sparse experts.
//! - [`tokenizer`]: `tokenizer.json` through the Hugging Face `tokenizers` crate.
//! - [`encoder`]: `encode`, `encode_batch` (with gradients) and `embed` (plain floats).
//! - [`head`], [`policy`]: the memory operations, their action head, and the policy that owns
//!   the encoder and the head.
//!
//! The loader's key mapping and what real checkpoints need are in `docs/olmoe.md`.

pub mod config;
pub mod encoder;
pub mod head;
pub mod loader;
pub mod model;
pub mod policy;
pub mod tokenizer;

pub use config::OlmoeConfig;
pub use encoder::OlmoeEncoder;
pub use head::{MemoryActionHead, MemoryActionHeadConfig, MemoryOp, NUM_MEMORY_OPS};
pub use loader::CheckpointFolder;
pub use model::{ExpertExecution, ForwardOptions, OlmoeModel, OlmoeOutput, TokenBatch};
pub use policy::OlmoePolicy;
pub use tokenizer::OlmoeTokenizer;
