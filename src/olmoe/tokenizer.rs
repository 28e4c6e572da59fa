//! The checkpoint's `tokenizer.json`, through the Hugging Face `tokenizers` crate.
//!
//! Special tokens are added exactly as the tokenizer's post-processor adds them (a BOS for
//! OLMoE-style templates, nothing for a tokenizer without one), which is what transformers feeds
//! the model.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// A loaded `tokenizer.json`. Cloning is cheap (the tokenizer is shared).
#[derive(Clone)]
pub struct OlmoeTokenizer {
    tokenizer: Arc<tokenizers::Tokenizer>,
    path: PathBuf,
}

impl std::fmt::Debug for OlmoeTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OlmoeTokenizer")
            .field("path", &self.path)
            .finish()
    }
}

impl OlmoeTokenizer {
    /// Reads `tokenizer.json` at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Corrupt`] when the tokenizers crate
    /// cannot parse it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let tokenizer = tokenizers::Tokenizer::from_bytes(&bytes).map_err(|e| Error::Corrupt {
            file: path.clone(),
            reason: format!("not a tokenizers tokenizer.json: {e}"),
        })?;
        Ok(Self {
            tokenizer: Arc::new(tokenizer),
            path,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The ids of `text`, with the special tokens the tokenizer adds (as transformers'
    /// `tokenizer(text)` does).
    ///
    /// # Errors
    /// [`Error::Invalid`] when the tokenizer fails on `text`.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self
            .tokenizer
            .encode(text, true)
            .map_err(|e| Error::invalid("text", format!("tokenization failed: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The id of a token string, if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }
}
