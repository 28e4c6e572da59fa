//! Loading a Hugging Face OLMoE checkpoint folder from disk (no hub access).
//!
//! A folder holds `config.json`, `tokenizer.json`, and the weights either in one
//! `model.safetensors` or in shards listed by `model.safetensors.index.json` (`weight_map`:
//! key → shard file name). F32, BF16 and F16 tensors are widened to f32.
//!
//! The weights are read through [`crate::weights::SafetensorsFile`] rather than burn-store's
//! `SafetensorsStore`: burn-store reads one file per store and knows no shard index, and its
//! apply report names the module path but not the file a bad tensor came from. Here every
//! missing key, wrong shape, unsupported dtype, truncated file or absent shard is an error that
//! names the key and the file. Shards are read one at a time, so the peak memory is the model in
//! f32 plus one shard.
//!
//! Key mapping (Hugging Face key → module path; PyTorch `[out, in]` weights marked (ᵀ) are
//! transposed to burn's `Linear` layout `[in, out]`, expert weights keep the checkpoint layout;
//! the table is repeated in `docs/olmoe.md`):
//!
//! | checkpoint key | shape | module path |
//! | --- | --- | --- |
//! | `model.embed_tokens.weight` | `[V, H]` | `embed_tokens.weight` |
//! | `model.layers.{i}.input_layernorm.weight` | `[H]` | `layers.{i}.input_layernorm.gamma` |
//! | `model.layers.{i}.self_attn.q_proj.weight` | `[heads·d, H]` | `layers.{i}.self_attn.q_proj.weight` (ᵀ) |
//! | `model.layers.{i}.self_attn.k_proj.weight` | `[kv·d, H]` | `layers.{i}.self_attn.k_proj.weight` (ᵀ) |
//! | `model.layers.{i}.self_attn.v_proj.weight` | `[kv·d, H]` | `layers.{i}.self_attn.v_proj.weight` (ᵀ) |
//! | `model.layers.{i}.self_attn.o_proj.weight` | `[H, heads·d]` | `layers.{i}.self_attn.o_proj.weight` (ᵀ) |
//! | `model.layers.{i}.self_attn.q_norm.weight` | `[heads·d]` | `layers.{i}.self_attn.q_norm.gamma` |
//! | `model.layers.{i}.self_attn.k_norm.weight` | `[kv·d]` | `layers.{i}.self_attn.k_norm.gamma` |
//! | `model.layers.{i}.post_attention_layernorm.weight` | `[H]` | `layers.{i}.post_attention_layernorm.gamma` |
//! | `model.layers.{i}.mlp.gate.weight` | `[E, H]` | `layers.{i}.mlp.gate.weight` (ᵀ) |
//! | `model.layers.{i}.mlp.experts.{e}.gate_proj.weight` | `[I, H]` | `layers.{i}.mlp.experts.{e}.gate_proj.weight` |
//! | `model.layers.{i}.mlp.experts.{e}.up_proj.weight` | `[I, H]` | `layers.{i}.mlp.experts.{e}.up_proj.weight` |
//! | `model.layers.{i}.mlp.experts.{e}.down_proj.weight` | `[H, I]` | `layers.{i}.mlp.experts.{e}.down_proj.weight` |
//! | `model.norm.weight` | `[H]` | `norm.gamma` |
//! | `lm_head.weight` (untied only) | `[V, H]` | `lm_head.weight` (ᵀ) |

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use burn::nn::Embedding;
use burn::tensor::Device;

use super::config::OlmoeConfig;
use super::model::{
    ExpertProjection, OlmoeAttention, OlmoeDecoderLayer, OlmoeExpert, OlmoeModel, OlmoeSparseMoe,
    linear_from_torch, rms_norm,
};
use crate::error::{Error, Result};
use crate::nn::init;
use crate::weights::{HostTensor, SafetensorsFile};

/// The single-file weights of a checkpoint folder.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The shard index of a sharded checkpoint folder.
pub const WEIGHTS_INDEX_FILE: &str = "model.safetensors.index.json";
/// The architecture file.
pub const CONFIG_FILE: &str = "config.json";
/// The tokenizer file.
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// Where the weights of a checkpoint folder live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WeightFiles {
    /// One `model.safetensors`.
    Single(PathBuf),
    /// Shards named by `model.safetensors.index.json`.
    Sharded {
        /// The index file.
        index: PathBuf,
        /// Tensor key → shard path.
        shard_of_key: BTreeMap<String, PathBuf>,
    },
}

/// A Hugging Face OLMoE checkpoint folder whose config has been read and whose weight files
/// have been located (no tensor is read until [`load_model`](Self::load_model)).
#[derive(Debug, Clone)]
pub struct CheckpointFolder {
    dir: PathBuf,
    config: OlmoeConfig,
    weights: WeightFiles,
}

impl CheckpointFolder {
    /// Reads `dir/config.json` and locates the weights (`model.safetensors`, else the shard
    /// index).
    ///
    /// # Errors
    /// [`Error::Io`] naming the folder or file that is missing; [`Error::InvalidConfig`] for a
    /// bad config field; [`Error::Corrupt`] for an unreadable shard index.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        if !dir.is_dir() {
            return Err(Error::io(
                &dir,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "checkpoint folder does not exist or is not a folder",
                ),
            ));
        }
        let config = OlmoeConfig::from_file(dir.join(CONFIG_FILE))?;
        let single = dir.join(WEIGHTS_FILE);
        let index = dir.join(WEIGHTS_INDEX_FILE);
        let weights = if single.is_file() {
            WeightFiles::Single(single)
        } else if index.is_file() {
            read_index(&index)?
        } else {
            return Err(Error::io(
                &single,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("neither {WEIGHTS_FILE} nor {WEIGHTS_INDEX_FILE} is in the folder"),
                ),
            ));
        };
        Ok(Self {
            dir,
            config,
            weights,
        })
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The architecture read from `config.json`.
    pub fn config(&self) -> &OlmoeConfig {
        &self.config
    }

    /// Where the weights are.
    pub fn weight_files(&self) -> &WeightFiles {
        &self.weights
    }

    /// The path of `tokenizer.json`.
    pub fn tokenizer_path(&self) -> PathBuf {
        self.dir.join(TOKENIZER_FILE)
    }

    /// Reads every tensor the model needs and builds it on `device` (an autodiff device gives
    /// a trainable model).
    ///
    /// # Errors
    /// [`Error::MissingTensor`] (key and file, or the index when no shard lists the key),
    /// [`Error::ShapeMismatch`] (key and file), [`Error::UnsupportedDtype`] (key, dtype, file),
    /// [`Error::Corrupt`] for a truncated or corrupt file, [`Error::Io`] naming a shard that the
    /// index lists but the folder lacks.
    pub fn load_model(&self, device: &Device) -> Result<OlmoeModel> {
        let mut tensors = self.read_tensors()?;
        build_model(&self.config, &mut tensors, device)
    }

    /// Reads the needed tensors, grouped by file so each file is read once.
    fn read_tensors(&self) -> Result<Tensors> {
        let expected = expected_tensors(&self.config);
        let mut by_file: BTreeMap<PathBuf, Vec<(String, Vec<usize>)>> = BTreeMap::new();
        match &self.weights {
            WeightFiles::Single(path) => {
                by_file.insert(path.clone(), expected);
            }
            WeightFiles::Sharded {
                index,
                shard_of_key,
            } => {
                for (key, shape) in expected {
                    let shard = shard_of_key.get(&key).ok_or_else(|| Error::MissingTensor {
                        key: key.clone(),
                        file: index.clone(),
                    })?;
                    by_file.entry(shard.clone()).or_default().push((key, shape));
                }
            }
        }
        let mut tensors = Tensors::default();
        for (path, keys) in by_file {
            if !path.is_file() {
                return Err(Error::io(
                    &path,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("shard listed in {WEIGHTS_INDEX_FILE} is missing"),
                    ),
                ));
            }
            let file = SafetensorsFile::open(&path)?;
            for (key, shape) in keys {
                let tensor = file.read_shaped(&key, &shape)?;
                tensors.by_key.insert(key, tensor);
            }
        }
        Ok(tensors)
    }
}

/// Parses `model.safetensors.index.json`.
fn read_index(index: &Path) -> Result<WeightFiles> {
    let corrupt = |reason: String| Error::Corrupt {
        file: index.to_path_buf(),
        reason,
    };
    let text = std::fs::read_to_string(index).map_err(|e| Error::io(index, e))?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| corrupt(format!("not valid JSON: {e}")))?;
    let map = value
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| corrupt("no `weight_map` object".to_string()))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let mut shard_of_key = BTreeMap::new();
    for (key, file) in map {
        let name = file
            .as_str()
            .ok_or_else(|| corrupt(format!("`weight_map.{key}` is not a file name")))?;
        // Shards live in the folder itself; a path would let an index point anywhere.
        if name.is_empty() || name.contains(['/', '\\']) || name == ".." {
            return Err(corrupt(format!(
                "`weight_map.{key}` = `{name}` is not a plain file name"
            )));
        }
        shard_of_key.insert(key.clone(), dir.join(name));
    }
    Ok(WeightFiles::Sharded {
        index: index.to_path_buf(),
        shard_of_key,
    })
}

/// Every tensor key the model needs, with its checkpoint (PyTorch) shape.
pub fn expected_tensors(config: &OlmoeConfig) -> Vec<(String, Vec<usize>)> {
    let (v, h, i) = (
        config.vocab_size,
        config.hidden_size,
        config.intermediate_size,
    );
    let (dq, dkv) = (config.d_query(), config.d_key_value());
    let mut keys = vec![("model.embed_tokens.weight".to_string(), vec![v, h])];
    for layer in 0..config.num_hidden_layers {
        let p = format!("model.layers.{layer}");
        keys.push((format!("{p}.input_layernorm.weight"), vec![h]));
        keys.push((format!("{p}.self_attn.q_proj.weight"), vec![dq, h]));
        keys.push((format!("{p}.self_attn.k_proj.weight"), vec![dkv, h]));
        keys.push((format!("{p}.self_attn.v_proj.weight"), vec![dkv, h]));
        keys.push((format!("{p}.self_attn.o_proj.weight"), vec![h, dq]));
        keys.push((format!("{p}.self_attn.q_norm.weight"), vec![dq]));
        keys.push((format!("{p}.self_attn.k_norm.weight"), vec![dkv]));
        keys.push((format!("{p}.post_attention_layernorm.weight"), vec![h]));
        keys.push((format!("{p}.mlp.gate.weight"), vec![config.num_experts, h]));
        for e in 0..config.num_experts {
            let q = format!("{p}.mlp.experts.{e}");
            keys.push((format!("{q}.gate_proj.weight"), vec![i, h]));
            keys.push((format!("{q}.up_proj.weight"), vec![i, h]));
            keys.push((format!("{q}.down_proj.weight"), vec![h, i]));
        }
    }
    keys.push(("model.norm.weight".to_string(), vec![h]));
    if !config.tie_word_embeddings {
        keys.push(("lm_head.weight".to_string(), vec![v, h]));
    }
    keys
}

/// The tensors read so far, by key.
#[derive(Default)]
struct Tensors {
    by_key: HashMap<String, HostTensor>,
}

impl Tensors {
    /// Removes `key` (each is used once, and dropping it early bounds the peak memory).
    fn take(&mut self, key: &str) -> Result<Vec<f32>> {
        self.by_key
            .remove(key)
            .map(|tensor| tensor.values)
            .ok_or_else(|| Error::MissingTensor {
                key: key.to_string(),
                file: PathBuf::from("(not read)"),
            })
    }
}

fn build_model(config: &OlmoeConfig, tensors: &mut Tensors, device: &Device) -> Result<OlmoeModel> {
    let (v, h, i) = (
        config.vocab_size,
        config.hidden_size,
        config.intermediate_size,
    );
    let (dq, dkv) = (config.d_query(), config.d_key_value());
    let eps = config.rms_norm_eps;
    let embed_tokens = Embedding {
        weight: init::param(tensors.take("model.embed_tokens.weight")?, [v, h], device),
    };
    let mut layers = Vec::with_capacity(config.num_hidden_layers);
    for layer in 0..config.num_hidden_layers {
        let p = format!("model.layers.{layer}");
        let mut linear = |key: &str, d_output: usize, d_input: usize| -> Result<_> {
            Ok(linear_from_torch(
                tensors.take(&format!("{p}.{key}"))?,
                d_output,
                d_input,
                device,
            ))
        };
        let q_proj = linear("self_attn.q_proj.weight", dq, h)?;
        let k_proj = linear("self_attn.k_proj.weight", dkv, h)?;
        let v_proj = linear("self_attn.v_proj.weight", dkv, h)?;
        let o_proj = linear("self_attn.o_proj.weight", h, dq)?;
        let gate = linear("mlp.gate.weight", config.num_experts, h)?;
        let mut expert = |key: String, d_output: usize, d_input: usize| -> Result<_> {
            Ok(ExpertProjection::from_torch(
                tensors.take(&format!("{p}.{key}"))?,
                d_output,
                d_input,
                device,
            ))
        };
        let experts = (0..config.num_experts)
            .map(|e| {
                Ok(OlmoeExpert {
                    gate_proj: expert(format!("mlp.experts.{e}.gate_proj.weight"), i, h)?,
                    up_proj: expert(format!("mlp.experts.{e}.up_proj.weight"), i, h)?,
                    down_proj: expert(format!("mlp.experts.{e}.down_proj.weight"), h, i)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut norm = |key: &str| -> Result<_> {
            Ok(rms_norm(tensors.take(&format!("{p}.{key}"))?, eps, device))
        };
        layers.push(OlmoeDecoderLayer {
            self_attn: OlmoeAttention {
                q_proj,
                k_proj,
                v_proj,
                o_proj,
                q_norm: norm("self_attn.q_norm.weight")?,
                k_norm: norm("self_attn.k_norm.weight")?,
                num_heads: config.num_attention_heads,
                num_kv_heads: config.num_key_value_heads,
                head_dim: config.head_dim,
                clip_qkv: config.clip_qkv,
            },
            mlp: OlmoeSparseMoe {
                gate,
                experts,
                top_k: config.num_experts_per_tok,
                norm_topk_prob: config.norm_topk_prob,
            },
            input_layernorm: norm("input_layernorm.weight")?,
            post_attention_layernorm: norm("post_attention_layernorm.weight")?,
        });
    }
    let norm = rms_norm(tensors.take("model.norm.weight")?, eps, device);
    let lm_head = if config.tie_word_embeddings {
        None
    } else {
        Some(linear_from_torch(
            tensors.take("lm_head.weight")?,
            v,
            h,
            device,
        ))
    };
    Ok(OlmoeModel {
        embed_tokens,
        layers,
        norm,
        lm_head,
        config: config.clone(),
    })
}
