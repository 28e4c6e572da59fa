//! Training checkpoints that resume exactly.
//!
//! A checkpoint folder holds the network (`policy.json`, `policy.bpk`), Adam's state
//! (`optimizer.bpk`) and `trainer.json`: the run's settings, its progress (iteration, env steps,
//! normalization statistics, recent episodes), the observations and recurrent state the next
//! rollout starts from, and a snapshot of every environment. Per-iteration RNGs are derived from
//! `(seed, iteration)`, so no RNG state is needed: resuming reproduces the uninterrupted run bit for
//! bit on the CPU.
//!
//! The folder is replaced as a whole: it is written under a temporary name and swapped in by
//! renames, so an interrupted write leaves the previous checkpoint intact (a reader falls back to
//! `<dir>.old` if it finds the swap half done).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::{Bytes, Device};
use serde::{Deserialize, Serialize};

use super::presets::TrainSettings;
use super::trainer::{PpoTrainer, TrainerProgress};
use crate::checkpoint::write_atomic;
use crate::env::{VecBatch, make_vec_env};
use crate::error::{Error, Result};
use crate::optim::FusedAdamConfig;
use crate::policy::{FactoredRecurrentActorCritic, HostLstmState};

/// The version of the `trainer.json` layout.
const FORMAT_VERSION: u32 = 1;
const TRAINER_FILE: &str = "trainer.json";
const OPTIMIZER_FILE: &str = "optimizer.bpk";

/// What `trainer.json` holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainerCheckpoint {
    /// Layout version.
    pub format_version: u32,
    /// The environment's name.
    pub env: String,
    /// The run's settings.
    pub settings: TrainSettings,
    /// Progress and normalization statistics.
    pub progress: TrainerProgress,
    /// The observations the next rollout starts from.
    pub batch: VecBatch,
    /// The recurrent state the next rollout starts from, `[layers, envs, d_hidden]` each (as bit
    /// patterns: decimal JSON floats do not always parse back exactly).
    #[serde(with = "crate::float_bits")]
    pub hidden: Vec<f32>,
    /// See `hidden`.
    #[serde(with = "crate::float_bits")]
    pub cell: Vec<f32>,
    /// Every environment's state.
    pub envs: serde_json::Value,
}

/// The folder a checkpoint is actually in (the folder itself, or its `.old` twin when a swap was
/// interrupted).
pub fn resolve_checkpoint(dir: &Path) -> Result<PathBuf> {
    if dir.join(TRAINER_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    let old = with_suffix(dir, "old");
    if old.join(TRAINER_FILE).is_file() {
        return Ok(old);
    }
    let nested = dir.join("checkpoint");
    if nested.join(TRAINER_FILE).is_file() {
        return Ok(nested);
    }
    Err(Error::io(
        dir.join(TRAINER_FILE),
        std::io::Error::new(std::io::ErrorKind::NotFound, "no training checkpoint here"),
    ))
}

fn with_suffix(dir: &Path, suffix: &str) -> PathBuf {
    let mut name = dir.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    dir.with_file_name(name)
}

/// Reads `trainer.json` and the network of a checkpoint (for evaluation).
///
/// # Errors
/// [`Error::Io`] / [`Error::Corrupt`] naming the file; [`Error::CheckpointMismatch`] when the
/// network does not fit its stored configuration.
pub fn load_policy(
    dir: &Path,
    device: &Device,
) -> Result<(TrainerCheckpoint, FactoredRecurrentActorCritic)> {
    let dir = resolve_checkpoint(dir)?;
    let meta = read_meta(&dir)?;
    let policy =
        FactoredRecurrentActorCritic::load_with_config(&dir, &meta.settings.network, device)?;
    Ok((meta, policy))
}

fn read_meta(dir: &Path) -> Result<TrainerCheckpoint> {
    crate::checkpoint::read_versioned_json(
        &dir.join(TRAINER_FILE),
        "training checkpoint",
        FORMAT_VERSION,
        |meta: &TrainerCheckpoint| meta.format_version,
    )
}

impl PpoTrainer {
    /// Writes a checkpoint of the whole run into folder `dir` (replacing the previous one).
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Invalid`] when an environment does not support snapshots.
    pub fn save_checkpoint(&self, dir: &Path, env: &str, settings: &TrainSettings) -> Result<()> {
        let tmp = with_suffix(dir, "tmp");
        let _ = std::fs::remove_dir_all(&tmp);
        self.policy().save(&tmp)?;
        let optimizer = self.optimizer().into_bytes().map_err(|e| Error::Corrupt {
            file: tmp.join(OPTIMIZER_FILE),
            reason: e.to_string(),
        })?;
        write_atomic(&tmp.join(OPTIMIZER_FILE), &optimizer)?;
        let (hidden, cell) = self.recurrent_state_host();
        let meta = TrainerCheckpoint {
            format_version: FORMAT_VERSION,
            env: env.to_string(),
            settings: settings.clone(),
            progress: self.progress().clone(),
            batch: self.next_batch().clone(),
            hidden,
            cell,
            envs: self.envs().snapshot()?,
        };
        let json = serde_json::to_vec(&meta).expect("checkpoints serialize");
        write_atomic(&tmp.join(TRAINER_FILE), &json)?;
        let old = with_suffix(dir, "old");
        let _ = std::fs::remove_dir_all(&old);
        if dir.exists() {
            std::fs::rename(dir, &old).map_err(|e| Error::io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| Error::io(dir, e))?;
        let _ = std::fs::remove_dir_all(&old);
        Ok(())
    }

    /// Restores a run saved with [`save_checkpoint`](Self::save_checkpoint).
    ///
    /// # Errors
    /// As [`load_policy`]; [`Error::CheckpointMismatch`] when the checkpoint is for another env.
    pub fn resume(dir: &Path, env: &str, device: &Device) -> Result<(Self, TrainerCheckpoint)> {
        let (meta, policy) = load_policy(dir, device)?;
        let dir = resolve_checkpoint(dir)?;
        if meta.env != env {
            return Err(Error::CheckpointMismatch {
                path: dir,
                reason: format!("it is a checkpoint for env `{}`, not `{env}`", meta.env),
            });
        }
        let mut envs = make_vec_env(
            env,
            &meta.settings.env,
            meta.settings.ppo.num_envs,
            meta.settings.ppo.seed,
        )?;
        envs.restore(&meta.envs)?;
        let optimizer_path = dir.join(OPTIMIZER_FILE);
        let bytes = std::fs::read(&optimizer_path).map_err(|e| Error::io(&optimizer_path, e))?;
        let optimizer = FusedAdamConfig::new()
            .with_epsilon(meta.settings.ppo.adam_epsilon)
            .init()
            .from_bytes(Bytes::from_bytes_vec(bytes))
            .map_err(|e| Error::Corrupt {
                file: optimizer_path,
                reason: e.to_string(),
            })?;
        let pc = &meta.settings.network;
        let expected = pc.num_lstm_layers * meta.settings.ppo.num_envs * pc.d_hidden;
        if meta.hidden.len() != expected || meta.cell.len() != expected {
            return Err(Error::CheckpointMismatch {
                path: dir.join(TRAINER_FILE),
                reason: format!(
                    "recurrent state of {} and {} values, expected {expected}",
                    meta.hidden.len(),
                    meta.cell.len()
                ),
            });
        }
        let state = HostLstmState {
            num_layers: pc.num_lstm_layers,
            batch: meta.settings.ppo.num_envs,
            hidden: meta.hidden.clone(),
            cell: meta.cell.clone(),
        };
        let trainer = Self::restored(
            policy.fork(&device.clone().autodiff()),
            meta.settings.ppo.clone(),
            envs,
            optimizer,
            meta.batch.clone(),
            state,
            meta.progress.clone(),
        )?;
        Ok((trainer, meta))
    }
}
