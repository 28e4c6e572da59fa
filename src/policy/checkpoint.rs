use std::path::Path;

use burn::config::Config;
use burn::module::Module;
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device};
use serde_json::Value;

use super::config::FactoredRecurrentActorCriticConfig;
use super::network::FactoredRecurrentActorCritic;
use crate::checkpoint::write_atomic;
use crate::error::{Error, Result};

/// File holding the network's configuration inside a checkpoint folder.
pub const CONFIG_FILE: &str = "policy.json";
/// File holding the network's parameters (burnpack) inside a checkpoint folder.
pub const WEIGHTS_FILE: &str = "policy.bpk";

impl FactoredRecurrentActorCritic {
    /// Saves the configuration and the parameters into folder `dir` (created if needed). Each file
    /// is written atomically.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path that could not be written.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let config = serde_json::to_vec_pretty(&self.config).expect("configs serialize");
        write_atomic(&dir.join(CONFIG_FILE), &config)?;
        let bytes = self
            .clone()
            .into_record()
            .into_bytes()
            .map_err(|e| Error::Corrupt {
                file: dir.join(WEIGHTS_FILE),
                reason: e.to_string(),
            })?;
        write_atomic(&dir.join(WEIGHTS_FILE), &bytes)
    }

    /// Loads a network saved with [`save`](Self::save), with the configuration stored beside it.
    ///
    /// # Errors
    /// [`Error::Io`] for a missing file, [`Error::Corrupt`] for unreadable files,
    /// [`Error::CheckpointMismatch`] when the parameters do not fit the stored configuration.
    pub fn load(dir: impl AsRef<Path>, device: &Device) -> Result<Self> {
        let dir = dir.as_ref();
        let config = read_config(dir)?;
        Self::load_weights(dir, &config, device)
    }

    /// Loads a network saved with [`save`](Self::save), requiring its configuration to equal
    /// `expected`.
    ///
    /// # Errors
    /// [`Error::CheckpointMismatch`] naming the first configuration field that differs (e.g.
    /// `action_space.heads[1].size: checkpoint 13, expected 12`); the errors of
    /// [`load`](Self::load).
    pub fn load_with_config(
        dir: impl AsRef<Path>,
        expected: &FactoredRecurrentActorCriticConfig,
        device: &Device,
    ) -> Result<Self> {
        let dir = dir.as_ref();
        let stored = read_config(dir)?;
        let (stored_json, expected_json) = (to_json(&stored), to_json(expected));
        if let Some(difference) = first_difference("", &stored_json, &expected_json) {
            return Err(Error::CheckpointMismatch {
                path: dir.to_path_buf(),
                reason: difference,
            });
        }
        Self::load_weights(dir, &stored, device)
    }

    fn load_weights(
        dir: &Path,
        config: &FactoredRecurrentActorCriticConfig,
        device: &Device,
    ) -> Result<Self> {
        let path = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let record =
            ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes)).map_err(|e| Error::Corrupt {
                file: path.clone(),
                reason: e.to_string(),
            })?;
        config
            .init(device)?
            .try_load_record(record)
            .map_err(|e| Error::CheckpointMismatch {
                path,
                reason: e.to_string(),
            })
    }
}

fn read_config(dir: &Path) -> Result<FactoredRecurrentActorCriticConfig> {
    let path = dir.join(CONFIG_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    FactoredRecurrentActorCriticConfig::load_binary(text.as_bytes()).map_err(|e| Error::Corrupt {
        file: path,
        reason: format!("not a network configuration: {e}"),
    })
}

fn to_json(config: &FactoredRecurrentActorCriticConfig) -> Value {
    serde_json::to_value(config).expect("configs serialize")
}

/// The path and values of the first place where two JSON trees differ.
fn first_difference(path: &str, stored: &Value, expected: &Value) -> Option<String> {
    match (stored, expected) {
        (Value::Object(a), Value::Object(b)) => a
            .iter()
            .find_map(|(k, va)| {
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match b.get(k) {
                    Some(vb) => first_difference(&sub, va, vb),
                    None => Some(format!(
                        "{sub}: present in the checkpoint, absent from the expected config"
                    )),
                }
            })
            .or_else(|| {
                b.keys()
                    .find(|k| !a.contains_key(*k))
                    .map(|k| format!("{path}.{k}: absent from the checkpoint"))
            }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (va, vb))| first_difference(&format!("{path}[{i}]"), va, vb)),
        (a, b) if a == b => None,
        (a, b) => Some(format!("{path}: checkpoint {a}, expected {b}")),
    }
}
