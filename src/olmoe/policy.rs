//! The memory-operation policy: an OLMoE encoder and, when it is trained, a
//! [`MemoryActionHead`].
//!
//! A policy without a head is an inference-only backend: it embeds texts, and asking it for
//! action logits is an error ([`Error::MissingActionHead`]) rather than a constant or a
//! zero-gradient fallback, so a GRPO run cannot silently train nothing.

use std::path::Path;

use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Tensor};

use super::encoder::OlmoeEncoder;
use super::head::{MemoryActionHead, MemoryActionHeadConfig};
use crate::error::{Error, Result};

/// An OLMoE encoder and an optional memory-action head. A burn `Module`: records, checkpoints
/// and optimizers see the encoder's and the head's parameters (paths `encoder.model.…` and
/// `head.hidden.…`, `head.output.…`).
#[derive(Module, Debug)]
pub struct OlmoePolicy {
    /// The encoder of state texts.
    pub encoder: OlmoeEncoder,
    /// The head over the six memory operations; `None` for inference only.
    pub head: Option<MemoryActionHead>,
}

impl OlmoePolicy {
    /// A policy over `encoder` with `head`.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the head's input width is not the encoder's hidden size.
    pub fn new(encoder: OlmoeEncoder, head: Option<MemoryActionHead>) -> Result<Self> {
        if let Some(head) = &head
            && head.d_input() != encoder.hidden_size()
        {
            return Err(Error::ShapeMismatch {
                name: "action head input".to_string(),
                expected: vec![encoder.hidden_size()],
                found: vec![head.d_input()],
            });
        }
        Ok(Self { encoder, head })
    }

    /// Loads a checkpoint folder onto `device` and, with `head_seed`, adds a freshly initialized
    /// action head seeded by it.
    ///
    /// # Errors
    /// As [`OlmoeEncoder::load`].
    pub fn load(dir: impl AsRef<Path>, head_seed: Option<u64>, device: &Device) -> Result<Self> {
        let encoder = OlmoeEncoder::load(dir, device)?;
        let head = head_seed
            .map(|seed| {
                MemoryActionHeadConfig::new(encoder.hidden_size())
                    .with_seed(seed)
                    .init(device)
            })
            .transpose()?;
        Self::new(encoder, head)
    }

    /// Whether the policy can produce action logits.
    pub fn has_action_head(&self) -> bool {
        self.head.is_some()
    }

    /// Stops gradients into the encoder's parameters (they keep their values; the head still
    /// trains). Undo with `policy.encoder = policy.encoder.set_require_grad(true)`.
    pub fn freeze_encoder(mut self) -> Self {
        self.encoder = self.encoder.no_grad();
        self
    }

    /// The embedding of `text`, with gradients on an autodiff device.
    ///
    /// # Shapes
    /// - output: `[hidden]`
    ///
    /// # Errors
    /// As [`OlmoeEncoder::encode`].
    pub fn encode(&self, text: &str) -> Result<Tensor<1>> {
        self.encoder.encode(text)
    }

    /// The embeddings of `texts` (right-padded batch, mean over real tokens), with gradients.
    ///
    /// # Shapes
    /// - output: `[texts.len(), hidden]`
    ///
    /// # Errors
    /// As [`OlmoeEncoder::encode_batch`].
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Tensor<2>> {
        self.encoder.encode_batch(texts)
    }

    /// The embedding of `text` as plain floats, without gradients.
    ///
    /// # Errors
    /// As [`OlmoeEncoder::embed`].
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        self.encoder.embed(text)
    }

    /// Logits over the six memory operations ([`MemoryOp::ALL`](super::MemoryOp::ALL) order).
    ///
    /// # Shapes
    /// - `embeddings`: `[batch, hidden]`
    /// - output: `[batch, 6]`
    ///
    /// # Errors
    /// [`Error::MissingActionHead`] when the policy has no head (GRPO training needs one);
    /// [`Error::ShapeMismatch`] when the embedding width is not the hidden size.
    pub fn action_logits(&self, embeddings: &Tensor<2>) -> Result<Tensor<2>> {
        let head = self.head.as_ref().ok_or(Error::MissingActionHead)?;
        let [batch, width] = embeddings.dims();
        if width != head.d_input() {
            return Err(Error::ShapeMismatch {
                name: "embeddings".to_string(),
                expected: vec![batch, head.d_input()],
                found: vec![batch, width],
            });
        }
        Ok(head.forward(embeddings.clone()))
    }

    /// Writes every parameter (encoder and head) to `path` as a burnpack record, atomically.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be written; [`Error::CheckpointMismatch`] when the
    /// record cannot be serialized.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save_record(self.clone().into_record(), path.as_ref())
    }

    /// Replaces every parameter with those saved at `path` by [`save`](Self::save). The policy
    /// must have the same structure (a head exactly when the checkpoint has one).
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::CheckpointMismatch`] when it is not
    /// a record of this policy (missing, unused or wrongly shaped tensors).
    pub fn load_checkpoint(self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let record = read_record(path)?;
        self.try_load_record(record)
            .map_err(|e| Error::CheckpointMismatch {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    }

    /// Writes only the action head's parameters to `path`, atomically (what a run with a frozen
    /// encoder needs to keep).
    ///
    /// # Errors
    /// [`Error::MissingActionHead`] without a head; as [`save`](Self::save).
    pub fn save_action_head(&self, path: impl AsRef<Path>) -> Result<()> {
        let head = self.head.clone().ok_or(Error::MissingActionHead)?;
        save_record(head.into_record(), path.as_ref())
    }

    /// Replaces the action head's parameters with those saved by
    /// [`save_action_head`](Self::save_action_head).
    ///
    /// # Errors
    /// [`Error::MissingActionHead`] without a head; as [`load_checkpoint`](Self::load_checkpoint).
    pub fn load_action_head(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let head = self.head.take().ok_or(Error::MissingActionHead)?;
        let record = read_record(path)?;
        let head = head
            .try_load_record(record)
            .map_err(|e| Error::CheckpointMismatch {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        self.head = Some(head);
        Ok(self)
    }
}

fn save_record(record: ModuleRecord, path: &Path) -> Result<()> {
    let bytes = record.into_bytes().map_err(|e| Error::CheckpointMismatch {
        path: path.to_path_buf(),
        reason: format!("cannot serialize: {e}"),
    })?;
    crate::checkpoint::write_atomic(path, &bytes)
}

fn read_record(path: &Path) -> Result<ModuleRecord> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| Error::CheckpointMismatch {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}
