//! GRPO training checkpoints that resume exactly.
//!
//! A checkpoint folder holds `trainer.json` (the run's [`GrpoTrainerConfig`] and
//! [`GrpoProgress`]), AdamW's state (`optimizer.bpk`) and the policy and the reference policy:
//! with a frozen encoder only their action heads (`policy_head.bpk`, `reference_head.bpk`; the
//! encoder is the checkpoint folder the run was started from), otherwise every parameter
//! (`policy.bpk`, `reference.bpk`). Records keep parameter ids, so the optimizer state finds its
//! parameters again. Every batch's RNGs are derived from `(seed, batch)`, so resuming repeats
//! the uninterrupted run.
//!
//! Each file is written atomically, and the folder is replaced as a whole: written under a
//! temporary name and swapped in by renames, so an interrupted write leaves the previous
//! checkpoint intact (a reader falls back to `<dir>.old` when it finds the swap half done).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::trainer::{GrpoProgress, GrpoTrainer, adamw};
use super::trainer_config::GrpoTrainerConfig;
use crate::checkpoint::write_atomic;
use crate::error::{Error, Result};
use crate::olmoe::{MemoryActionHeadConfig, OlmoeEncoder, OlmoePolicy};

/// The version of the `trainer.json` layout.
const FORMAT_VERSION: u32 = 1;
const TRAINER_FILE: &str = "trainer.json";
const OPTIMIZER_FILE: &str = "optimizer.bpk";
const POLICY_FILE: &str = "policy.bpk";
const REFERENCE_FILE: &str = "reference.bpk";
const POLICY_HEAD_FILE: &str = "policy_head.bpk";
const REFERENCE_HEAD_FILE: &str = "reference_head.bpk";

/// What `trainer.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GrpoCheckpoint {
    /// Layout version.
    pub format_version: u32,
    /// The run's settings.
    pub config: GrpoTrainerConfig,
    /// How far it came.
    pub progress: GrpoProgress,
}

/// The folder a checkpoint is actually in: `dir` itself, or its `.old` twin when a swap was
/// interrupted.
///
/// # Errors
/// [`Error::Io`] naming `dir/trainer.json` when neither holds a checkpoint.
pub fn resolve_checkpoint(dir: &Path) -> Result<PathBuf> {
    if dir.join(TRAINER_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let old = with_suffix(dir, "old");
    if old.join(TRAINER_FILE).is_file() {
        return Ok(old);
    }
    Err(Error::io(
        dir.join(TRAINER_FILE),
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no GRPO training checkpoint here",
        ),
    ))
}

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

/// Reads and checks `trainer.json`.
///
/// # Errors
/// [`Error::Io`] / [`Error::Corrupt`] naming the file; [`Error::CheckpointMismatch`] for another
/// layout version; [`Error::Invalid`] for a config out of range.
pub fn read_checkpoint(dir: &Path) -> Result<GrpoCheckpoint> {
    let meta = crate::checkpoint::read_versioned_json(
        &dir.join(TRAINER_FILE),
        "GRPO training checkpoint",
        FORMAT_VERSION,
        |meta: &GrpoCheckpoint| meta.format_version,
    )?;
    meta.config.validate()?;
    Ok(meta)
}

impl GrpoTrainer {
    /// Writes a checkpoint of the run into folder `dir`, replacing the previous one.
    ///
    /// # Errors
    /// [`Error::Io`] naming the path that could not be written; [`Error::Corrupt`] when the
    /// optimizer state cannot be serialized.
    pub fn save_checkpoint(&self, dir: &Path) -> Result<()> {
        let tmp = with_suffix(dir, "tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        if self.config().freeze_encoder {
            self.policy().save_action_head(tmp.join(POLICY_HEAD_FILE))?;
            self.reference()
                .save_action_head(tmp.join(REFERENCE_HEAD_FILE))?;
        } else {
            self.policy().save(tmp.join(POLICY_FILE))?;
            self.reference().save(tmp.join(REFERENCE_FILE))?;
        }
        let optimizer = self.optimizer().into_bytes().map_err(|e| Error::Corrupt {
            file: tmp.join(OPTIMIZER_FILE),
            reason: e.to_string(),
        })?;
        write_atomic(&tmp.join(OPTIMIZER_FILE), &optimizer)?;
        let meta = GrpoCheckpoint {
            format_version: FORMAT_VERSION,
            config: self.config().clone(),
            progress: self.progress().clone(),
        };
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| {
            Error::invalid("trainer.json", format!("cannot serialize the run: {e}"))
        })?;
        write_atomic(&tmp.join(TRAINER_FILE), &json)?;
        let old = with_suffix(dir, "old");
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        if dir.exists() {
            std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
        if old.exists() {
            std::fs::remove_dir_all(&old).map_err(|e| Error::io(&old, e))?;
        }
        Ok(())
    }

    /// Restores a run saved by [`save_checkpoint`](Self::save_checkpoint) in `dir`, over the
    /// encoder checkpoint folder `model_dir` the run was started from, on `device` (its
    /// autodiff twin for the policy).
    ///
    /// # Errors
    /// As [`resolve_checkpoint`] and [`read_checkpoint`]; as [`OlmoeEncoder::load`] for
    /// `model_dir`; [`Error::Io`] / [`Error::CheckpointMismatch`] naming a record that is
    /// missing or does not fit the model; [`Error::Corrupt`] naming an unreadable optimizer
    /// state.
    pub fn resume(dir: &Path, model_dir: &Path, device: &Device) -> Result<Self> {
        let dir = resolve_checkpoint(dir)?;
        let meta = read_checkpoint(&dir)?;
        let config = meta.config;
        let mut encoder = OlmoeEncoder::load(model_dir, device)?;
        if let Some(max_length) = config.max_length {
            encoder = encoder.with_max_length(max_length)?;
        }
        // The structure to load the records into; the seed does not matter, the records
        // replace every value (and id).
        let with_head = || -> Result<OlmoePolicy> {
            let head = MemoryActionHeadConfig::new(encoder.hidden_size())
                .with_seed(config.grpo.seed)
                .init(device)?;
            OlmoePolicy::new(encoder.clone(), Some(head))
        };
        let (policy, reference) = if config.freeze_encoder {
            let policy = with_head()?.load_action_head(dir.join(POLICY_HEAD_FILE))?;
            let reference_head = with_head()?
                .load_action_head(dir.join(REFERENCE_HEAD_FILE))?
                .head;
            // The reference's encoder is the policy's: a frozen encoder never changes, and the
            // two must share parameter ids for a re-sync.
            let reference = OlmoePolicy {
                encoder: policy.encoder.clone(),
                head: reference_head,
            };
            (policy, reference)
        } else {
            (
                with_head()?.load_checkpoint(dir.join(POLICY_FILE))?,
                with_head()?.load_checkpoint(dir.join(REFERENCE_FILE))?,
            )
        };
        let optimizer_path = dir.join(OPTIMIZER_FILE);
        let bytes = std::fs::read(&optimizer_path).map_err(|e| Error::io(&optimizer_path, e))?;
        let optimizer = adamw(&config.grpo)
            .from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| Error::Corrupt {
                file: optimizer_path,
                reason: e.to_string(),
            })?;
        // Retrieval uses the encoder as loaded, as in a fresh run.
        let embedder = config.retrieval.build(&encoder);
        Self::restored(
            policy,
            reference.valid(),
            embedder,
            config,
            optimizer,
            meta.progress,
        )
    }
}
