//! The architecture of an OLMoE checkpoint, read from its `config.json`.
//!
//! Both forms that Hugging Face transformers writes are accepted: transformers 5 puts the rotary
//! settings in `rope_parameters {rope_theta, rope_type}`, transformers 4 (the published
//! allenai/OLMoE-1B-7B-0924 config) has a top-level `rope_theta` and `rope_scaling`. Fields are
//! named exactly as in `config.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The OLMoE architecture (the fields of `config.json` that change the forward pass).
///
/// Fields that transformers' `OlmoeConfig` treats as optional take transformers' defaults when
/// absent (listed per field); every field that sets a size is required.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OlmoeConfig {
    /// Number of token embeddings (rows of `embed_tokens` and `lm_head`).
    pub vocab_size: usize,
    /// Width of the residual stream, H.
    pub hidden_size: usize,
    /// Width of each expert's feed-forward layer, I.
    pub intermediate_size: usize,
    /// Number of decoder layers.
    pub num_hidden_layers: usize,
    /// Number of query heads.
    pub num_attention_heads: usize,
    /// Number of key/value heads (GQA when fewer than the query heads). Absent: the number of
    /// query heads.
    pub num_key_value_heads: usize,
    /// Width of one head. Absent: `hidden_size / num_attention_heads`.
    pub head_dim: usize,
    /// The experts' activation; only `silu` is supported.
    pub hidden_act: String,
    /// Longest sequence the model was trained for; the default truncation length of the encoder.
    pub max_position_embeddings: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f64,
    /// RoPE base θ (`rope_parameters.rope_theta` or the transformers 4 top-level `rope_theta`).
    pub rope_theta: f64,
    /// Clamp of q, k and v to `±clip_qkv` after the q/k norms. Absent or null: no clamp.
    pub clip_qkv: Option<f64>,
    /// Number of experts per MoE layer, E.
    pub num_experts: usize,
    /// Experts each token is routed to, k.
    pub num_experts_per_tok: usize,
    /// Whether the top-k routing weights are divided by their sum. Absent: false.
    pub norm_topk_prob: bool,
    /// Whether `lm_head` shares `embed_tokens`' weight. Absent: false.
    pub tie_word_embeddings: bool,
    /// Padding token id, used to right-pad batches.
    pub pad_token_id: Option<u32>,
    /// Beginning-of-sequence id (the tokenizer, not the model, decides whether it is added).
    pub bos_token_id: Option<u32>,
    /// End-of-sequence id(s); a single id or a list in `config.json`.
    pub eos_token_id: Vec<u32>,
}

impl OlmoeConfig {
    /// Reads and validates `config.json` at `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Corrupt`] when it is not JSON;
    /// [`Error::InvalidConfig`] naming the field that is missing, malformed or unsupported.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_json_str(&text, path)
    }

    /// Parses and validates the text of a `config.json`; `file` is named in errors.
    ///
    /// # Errors
    /// As [`from_file`](Self::from_file).
    pub fn from_json_str(text: &str, file: &Path) -> Result<Self> {
        let value: Value = serde_json::from_str(text).map_err(|e| Error::Corrupt {
            file: file.to_path_buf(),
            reason: format!("not valid JSON: {e}"),
        })?;
        let object = value.as_object().ok_or_else(|| Error::Corrupt {
            file: file.to_path_buf(),
            reason: "expected a JSON object".to_string(),
        })?;
        Fields {
            file: file.to_path_buf(),
            object,
        }
        .config()
    }

    /// The number of query heads that share one key/value head.
    pub fn num_queries_per_kv(&self) -> usize {
        self.num_attention_heads / self.num_key_value_heads
    }

    /// Width of the query projection, `num_attention_heads · head_dim`.
    pub fn d_query(&self) -> usize {
        self.num_attention_heads * self.head_dim
    }

    /// Width of the key and value projections, `num_key_value_heads · head_dim`.
    pub fn d_key_value(&self) -> usize {
        self.num_key_value_heads * self.head_dim
    }
}

/// Typed access to the fields of a parsed `config.json`, with errors naming field and file.
struct Fields<'a> {
    file: PathBuf,
    object: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn error(&self, field: &str, reason: impl Into<String>) -> Error {
        Error::InvalidConfig {
            file: self.file.clone(),
            field: field.to_string(),
            reason: reason.into(),
        }
    }

    /// The value of `field`, treating JSON null as absent.
    fn get(&self, field: &str) -> Option<&Value> {
        self.object.get(field).filter(|v| !v.is_null())
    }

    fn usize_at(&self, field: &str, value: &Value) -> Result<usize> {
        value
            .as_u64()
            .and_then(|v| usize::try_from(v).ok())
            .ok_or_else(|| {
                self.error(
                    field,
                    format!("expected a non-negative integer, found {value}"),
                )
            })
    }

    fn positive(&self, field: &str) -> Result<usize> {
        let value = self
            .get(field)
            .ok_or_else(|| self.error(field, "missing (required)"))?;
        let n = self.usize_at(field, value)?;
        if n == 0 {
            return Err(self.error(field, "must be positive"));
        }
        Ok(n)
    }

    fn optional_positive(&self, field: &str) -> Result<Option<usize>> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.positive(field).map(Some),
        }
    }

    fn f64_at(&self, field: &str, value: &Value) -> Result<f64> {
        value
            .as_f64()
            .filter(|v| v.is_finite())
            .ok_or_else(|| self.error(field, format!("expected a finite number, found {value}")))
    }

    fn positive_f64(&self, field: &str) -> Result<f64> {
        let value = self
            .get(field)
            .ok_or_else(|| self.error(field, "missing (required)"))?;
        let x = self.f64_at(field, value)?;
        if x <= 0.0 {
            return Err(self.error(field, format!("must be positive, found {x}")));
        }
        Ok(x)
    }

    fn bool_or(&self, field: &str, absent: bool) -> Result<bool> {
        match self.get(field) {
            None => Ok(absent),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.error(field, format!("expected true or false, found {v}"))),
        }
    }

    fn token_id(&self, field: &str) -> Result<Option<u32>> {
        match self.get(field) {
            None => Ok(None),
            Some(v) => self.id_at(field, v).map(Some),
        }
    }

    fn id_at(&self, field: &str, value: &Value) -> Result<u32> {
        value
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| self.error(field, format!("expected a token id, found {value}")))
    }

    fn token_ids(&self, field: &str) -> Result<Vec<u32>> {
        match self.get(field) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items.iter().map(|v| self.id_at(field, v)).collect(),
            Some(v) => Ok(vec![self.id_at(field, v)?]),
        }
    }

    /// Checks a RoPE type: only the unscaled ("default") rotary embedding is implemented.
    fn check_rope_type(&self, field: &str, value: Option<&Value>) -> Result<()> {
        match value {
            None => Ok(()),
            Some(Value::String(t)) if t == "default" => Ok(()),
            Some(other) => Err(self.error(
                field,
                format!("unsupported rope type {other} (supported: \"default\")"),
            )),
        }
    }

    /// `rope_theta` from `rope_parameters` (transformers 5) or the top level (transformers 4),
    /// rejecting any RoPE scaling.
    fn rope_theta(&self) -> Result<f64> {
        let nested = match self.get("rope_parameters") {
            None => None,
            Some(Value::Object(params)) => {
                let rope_type = params.get("rope_type").or_else(|| params.get("type"));
                self.check_rope_type("rope_parameters.rope_type", rope_type)?;
                let theta = params
                    .get("rope_theta")
                    .ok_or_else(|| self.error("rope_parameters.rope_theta", "missing"))?;
                Some(self.f64_at("rope_parameters.rope_theta", theta)?)
            }
            Some(other) => {
                return Err(self.error(
                    "rope_parameters",
                    format!("expected an object, found {other}"),
                ));
            }
        };
        match self.get("rope_scaling") {
            None => {}
            Some(Value::Object(scaling)) => {
                let rope_type = scaling.get("rope_type").or_else(|| scaling.get("type"));
                self.check_rope_type("rope_scaling.rope_type", rope_type)?;
            }
            Some(other) => {
                return Err(
                    self.error("rope_scaling", format!("expected an object, found {other}"))
                );
            }
        }
        let top = match self.get("rope_theta") {
            None => None,
            Some(v) => Some(self.f64_at("rope_theta", v)?),
        };
        let theta = match (nested, top) {
            (Some(a), Some(b)) if a != b => {
                return Err(self.error(
                    "rope_theta",
                    format!("{b} disagrees with rope_parameters.rope_theta {a}"),
                ));
            }
            (Some(theta), _) | (None, Some(theta)) => theta,
            (None, None) => {
                return Err(self.error(
                    "rope_parameters.rope_theta",
                    "missing (neither rope_parameters.rope_theta nor rope_theta is set)",
                ));
            }
        };
        if theta <= 1.0 {
            return Err(self.error("rope_theta", format!("must exceed 1, found {theta}")));
        }
        Ok(theta)
    }

    fn config(&self) -> Result<OlmoeConfig> {
        if let Some(model_type) = self.get("model_type")
            && model_type.as_str() != Some("olmoe")
        {
            return Err(self.error(
                "model_type",
                format!("expected \"olmoe\", found {model_type}"),
            ));
        }
        let hidden_act = match self.get("hidden_act") {
            None => "silu".to_string(),
            Some(Value::String(act)) if act == "silu" => act.clone(),
            Some(other) => {
                return Err(self.error(
                    "hidden_act",
                    format!("unsupported activation {other} (supported: \"silu\")"),
                ));
            }
        };
        if self.bool_or("attention_bias", false)? {
            return Err(self.error(
                "attention_bias",
                "true is not supported (OLMoE projections have no bias)",
            ));
        }
        let hidden_size = self.positive("hidden_size")?;
        let num_attention_heads = self.positive("num_attention_heads")?;
        let num_key_value_heads = self
            .optional_positive("num_key_value_heads")?
            .unwrap_or(num_attention_heads);
        if num_attention_heads % num_key_value_heads != 0 {
            return Err(self.error(
                "num_key_value_heads",
                format!("{num_key_value_heads} does not divide num_attention_heads {num_attention_heads}"),
            ));
        }
        let head_dim = match self.optional_positive("head_dim")? {
            Some(d) => d,
            None => {
                if hidden_size % num_attention_heads != 0 {
                    return Err(self.error(
                        "num_attention_heads",
                        format!("{num_attention_heads} does not divide hidden_size {hidden_size}"),
                    ));
                }
                hidden_size / num_attention_heads
            }
        };
        if head_dim % 2 != 0 {
            return Err(self.error(
                "head_dim",
                format!("RoPE needs an even head width, found {head_dim}"),
            ));
        }
        let num_experts = self.positive("num_experts")?;
        let num_experts_per_tok = self.positive("num_experts_per_tok")?;
        if num_experts_per_tok > num_experts {
            return Err(self.error(
                "num_experts_per_tok",
                format!("{num_experts_per_tok} exceeds num_experts {num_experts}"),
            ));
        }
        let clip_qkv = match self.get("clip_qkv") {
            None => None,
            Some(v) => {
                let clip = self.f64_at("clip_qkv", v)?;
                if clip <= 0.0 {
                    return Err(self.error("clip_qkv", format!("must be positive, found {clip}")));
                }
                Some(clip)
            }
        };
        let vocab_size = self.positive("vocab_size")?;
        let pad_token_id = self.token_id("pad_token_id")?;
        if let Some(pad) = pad_token_id
            && pad as usize >= vocab_size
        {
            return Err(self.error(
                "pad_token_id",
                format!("{pad} is outside the vocabulary (vocab_size {vocab_size})"),
            ));
        }
        Ok(OlmoeConfig {
            vocab_size,
            hidden_size,
            intermediate_size: self.positive("intermediate_size")?,
            num_hidden_layers: self.positive("num_hidden_layers")?,
            num_attention_heads,
            num_key_value_heads,
            head_dim,
            hidden_act,
            max_position_embeddings: self.positive("max_position_embeddings")?,
            rms_norm_eps: self.positive_f64("rms_norm_eps")?,
            rope_theta: self.rope_theta()?,
            clip_qkv,
            num_experts,
            num_experts_per_tok,
            norm_topk_prob: self.bool_or("norm_topk_prob", false)?,
            tie_word_embeddings: self.bool_or("tie_word_embeddings", false)?,
            pad_token_id,
            bos_token_id: self.token_id("bos_token_id")?,
            eos_token_id: self.token_ids("eos_token_id")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSFORMERS_5: &str = r#"{
        "model_type": "olmoe", "vocab_size": 400, "hidden_size": 64, "intermediate_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
        "max_position_embeddings": 128, "rms_norm_eps": 1e-05, "num_experts": 8,
        "num_experts_per_tok": 2, "norm_topk_prob": false, "clip_qkv": null,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "tie_word_embeddings": false, "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 0
    }"#;

    /// The shape of allenai/OLMoE-1B-7B-0924's config.json (transformers 4), at tiny sizes.
    const TRANSFORMERS_4: &str = r#"{
        "model_type": "olmoe", "vocab_size": 400, "hidden_size": 64, "intermediate_size": 32,
        "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
        "max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "num_experts": 8,
        "num_experts_per_tok": 2, "norm_topk_prob": true, "clip_qkv": 8.0,
        "rope_theta": 500000.0, "rope_scaling": null, "attention_bias": false,
        "hidden_act": "silu", "tie_word_embeddings": true, "pad_token_id": 1,
        "eos_token_id": 50279, "torch_dtype": "bfloat16"
    }"#;

    fn parse(text: &str) -> Result<OlmoeConfig> {
        OlmoeConfig::from_json_str(text, Path::new("config.json"))
    }

    fn edit(text: &str, change: impl FnOnce(&mut Map<String, Value>)) -> String {
        let mut value: Value = serde_json::from_str(text).unwrap();
        change(value.as_object_mut().unwrap());
        value.to_string()
    }

    fn invalid_field(result: Result<OlmoeConfig>) -> String {
        match result {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn transformers_5_form() {
        let c = parse(TRANSFORMERS_5).unwrap();
        assert_eq!(c.rope_theta, 10000.0);
        assert_eq!((c.head_dim, c.num_key_value_heads), (16, 4));
        assert_eq!((c.clip_qkv, c.norm_topk_prob), (None, false));
        assert_eq!((c.pad_token_id, c.bos_token_id), (Some(1), Some(2)));
        assert_eq!(c.eos_token_id, vec![0]);
    }

    #[test]
    fn transformers_4_form_with_gqa_clip_and_renormalization() {
        let c = parse(TRANSFORMERS_4).unwrap();
        assert_eq!(c.rope_theta, 500000.0);
        assert_eq!((c.num_key_value_heads, c.num_queries_per_kv()), (2, 2));
        assert_eq!((c.d_query(), c.d_key_value()), (64, 32));
        assert_eq!(c.clip_qkv, Some(8.0));
        assert!(c.norm_topk_prob && c.tie_word_embeddings);
        assert_eq!(c.bos_token_id, None);
    }

    #[test]
    fn unknown_rope_type_names_the_field() {
        let text = edit(TRANSFORMERS_5, |o| {
            o["rope_parameters"]["rope_type"] = "yarn".into();
        });
        assert_eq!(invalid_field(parse(&text)), "rope_parameters.rope_type");
        let text = edit(TRANSFORMERS_4, |o| {
            o.insert(
                "rope_scaling".into(),
                serde_json::json!({"type": "linear", "factor": 2.0}),
            );
        });
        assert_eq!(invalid_field(parse(&text)), "rope_scaling.rope_type");
    }

    #[test]
    fn missing_or_bad_fields_are_named() {
        let text = edit(TRANSFORMERS_5, |o| {
            o.remove("hidden_size");
        });
        assert_eq!(invalid_field(parse(&text)), "hidden_size");
        let text = edit(TRANSFORMERS_5, |o| {
            o.remove("rope_parameters");
        });
        assert_eq!(invalid_field(parse(&text)), "rope_parameters.rope_theta");
        let text = edit(TRANSFORMERS_5, |o| {
            o["num_key_value_heads"] = 3.into();
        });
        assert_eq!(invalid_field(parse(&text)), "num_key_value_heads");
        let text = edit(TRANSFORMERS_5, |o| {
            o["num_experts_per_tok"] = 9.into();
        });
        assert_eq!(invalid_field(parse(&text)), "num_experts_per_tok");
        let text = edit(TRANSFORMERS_5, |o| {
            o.insert("hidden_act".into(), "gelu".into());
        });
        assert_eq!(invalid_field(parse(&text)), "hidden_act");
        let text = edit(TRANSFORMERS_5, |o| {
            o["model_type"] = "llama".into();
        });
        assert_eq!(invalid_field(parse(&text)), "model_type");
        let text = edit(TRANSFORMERS_5, |o| {
            o["clip_qkv"] = (-1.0).into();
        });
        assert_eq!(invalid_field(parse(&text)), "clip_qkv");
    }

    #[test]
    fn not_json_is_corrupt() {
        assert!(matches!(parse("{"), Err(Error::Corrupt { .. })));
    }
}
