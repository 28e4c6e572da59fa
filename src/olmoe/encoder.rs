//! State-text embeddings from an OLMoE checkpoint: the mean of the last hidden state (after the
//! final norm) over the tokens of a text.

use std::path::Path;

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::config::OlmoeConfig;
use super::loader::CheckpointFolder;
use super::model::{ForwardOptions, OlmoeModel, TokenBatch};
use super::tokenizer::OlmoeTokenizer;
use crate::error::{Error, Result};

/// An OLMoE model and its tokenizer, producing one `[hidden]` embedding per text.
///
/// A burn `Module`: its parameters are the model's; the tokenizer and the truncation length are
/// not parameters.
#[derive(Module, Debug)]
pub struct OlmoeEncoder {
    /// The decoder.
    pub model: OlmoeModel,
    #[module(skip)]
    tokenizer: OlmoeTokenizer,
    #[module(skip)]
    max_length: usize,
}

impl OlmoeEncoder {
    /// Loads a checkpoint folder (config, weights, tokenizer) onto `device`. Texts are truncated
    /// to `max_position_embeddings` tokens until [`with_max_length`](Self::with_max_length) says
    /// otherwise. On an autodiff device (`device.autodiff()`) the encoder is trainable.
    ///
    /// # Errors
    /// As [`CheckpointFolder::open`], [`CheckpointFolder::load_model`] and
    /// [`OlmoeTokenizer::from_file`].
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let folder = CheckpointFolder::open(dir)?;
        let tokenizer = OlmoeTokenizer::from_file(folder.tokenizer_path())?;
        let model = folder.load_model(device)?;
        Ok(Self::new(model, tokenizer))
    }

    /// An encoder from a model and a tokenizer, truncating at `max_position_embeddings`.
    pub fn new(model: OlmoeModel, tokenizer: OlmoeTokenizer) -> Self {
        let max_length = model.config.max_position_embeddings;
        Self {
            model,
            tokenizer,
            max_length,
        }
    }

    /// Truncates texts to their first `max_length` tokens (special tokens included).
    ///
    /// # Errors
    /// [`Error::Invalid`] when `max_length` is 0 or exceeds `max_position_embeddings`.
    pub fn with_max_length(mut self, max_length: usize) -> Result<Self> {
        let limit = self.model.config.max_position_embeddings;
        if max_length == 0 || max_length > limit {
            return Err(Error::invalid(
                "max_length",
                format!("{max_length} is outside 1..={limit} (max_position_embeddings)"),
            ));
        }
        self.max_length = max_length;
        Ok(self)
    }

    /// The truncation length in tokens.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// The architecture.
    pub fn config(&self) -> &OlmoeConfig {
        &self.model.config
    }

    /// Width of an embedding, H.
    pub fn hidden_size(&self) -> usize {
        self.model.config.hidden_size
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &OlmoeTokenizer {
        &self.tokenizer
    }

    /// The id that right-pads batches: `pad_token_id`, else the first `eos_token_id`, else 0.
    /// Which id it is does not change any result: padded positions are masked out of attention
    /// and excluded from the mean.
    pub fn pad_id(&self) -> u32 {
        let config = &self.model.config;
        config
            .pad_token_id
            .or(config.eos_token_id.first().copied())
            .unwrap_or(0)
    }

    /// The model input for `text`: its token ids, truncated to [`max_length`](Self::max_length).
    ///
    /// # Errors
    /// [`Error::Invalid`] when tokenization fails or yields no token (an empty text with a
    /// tokenizer that adds no BOS).
    pub fn token_ids(&self, text: &str) -> Result<Vec<u32>> {
        let mut ids = self.tokenizer.encode(text)?;
        ids.truncate(self.max_length);
        if ids.is_empty() {
            return Err(Error::invalid(
                "text",
                format!("{text:?} has no tokens (the tokenizer adds no BOS), so it has no mean"),
            ));
        }
        Ok(ids)
    }

    /// The embedding of `text`: the mean over all its positions of the last hidden state. Keeps
    /// the autodiff graph when the encoder is on an autodiff device.
    ///
    /// # Shapes
    /// - output: `[hidden]`
    ///
    /// # Errors
    /// As [`token_ids`](Self::token_ids) and [`OlmoeModel::forward`].
    pub fn encode(&self, text: &str) -> Result<Tensor<1>> {
        let hidden = self.hidden_size();
        Ok(self.encode_batch(&[text])?.reshape([hidden]))
    }

    /// The embeddings of `texts`, right-padded into one batch; each is the mean over that text's
    /// real tokens only. Keeps the autodiff graph.
    ///
    /// # Shapes
    /// - output: `[texts.len(), hidden]`
    ///
    /// # Errors
    /// [`Error::Invalid`] for an empty slice; as [`encode`](Self::encode).
    pub fn encode_batch(&self, texts: &[&str]) -> Result<Tensor<2>> {
        let sequences = texts
            .iter()
            .map(|text| self.token_ids(text))
            .collect::<Result<Vec<_>>>()?;
        let tokens = TokenBatch::right_padded(&sequences, self.pad_id())?;
        mean_pooled(&self.model, &tokens)
    }

    /// The embedding of `text` as plain floats, computed without an autodiff graph.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    pub fn embed(&self, text: &str) -> Result<Vec<f32>> {
        let model = self.model.valid();
        let tokens = TokenBatch::right_padded(&[self.token_ids(text)?], self.pad_id())?;
        let pooled = mean_pooled(&model, &tokens)?;
        pooled
            .into_data()
            .try_into_vec_as::<f32>()
            .map_err(|e| Error::invalid("embedding", format!("cannot read back: {e:?}")))
    }
}

/// The mean of the last hidden state over each row's real tokens.
///
/// # Shapes
/// - output: `[batch, hidden]`
///
/// # Errors
/// As [`OlmoeModel::forward`].
pub fn mean_pooled(model: &OlmoeModel, tokens: &TokenBatch) -> Result<Tensor<2>> {
    let output = model.forward(tokens, ForwardOptions::default())?;
    let device = output.last_hidden.device();
    let [batch, seq_len, hidden] = output.last_hidden.dims();
    let mask = tokens.mask_tensor(&device);
    let counts = mask.clone().sum_dim(1); // [batch, 1], ≥ 1 (no empty rows in a TokenBatch)
    let summed = (output.last_hidden * mask.reshape([batch, seq_len, 1]))
        .sum_dim(1)
        .reshape([batch, hidden]);
    Ok(summed / counts)
}
