//! Building checkpoint folders from the tiny_a fixture.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// The tiny_a fixture folder (under `FACTORED_RL_FIXTURES` when set).
pub fn tiny_a() -> PathBuf {
    let root = std::env::var_os("FACTORED_RL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    let dir = root.join("olmoe/tiny_a");
    assert!(dir.is_dir(), "fixture {} is missing", dir.display());
    dir
}

/// One tensor as stored: dtype, shape, little-endian bytes.
#[derive(Debug, Clone)]
pub struct RawTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl RawTensor {
    pub fn f32(shape: Vec<usize>, values: &[f32]) -> Self {
        Self {
            dtype: Dtype::F32,
            shape,
            data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }

    pub fn values(&self) -> Vec<f32> {
        assert_eq!(self.dtype, Dtype::F32);
        self.data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// The same values narrowed to BF16 (round to nearest even).
    pub fn to_bf16(&self) -> Self {
        Self {
            dtype: Dtype::BF16,
            shape: self.shape.clone(),
            data: self
                .values()
                .iter()
                .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
                .collect(),
        }
    }

    /// The same values narrowed to F16.
    pub fn to_f16(&self) -> Self {
        Self {
            dtype: Dtype::F16,
            shape: self.shape.clone(),
            data: self
                .values()
                .iter()
                .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                .collect(),
        }
    }

    /// F32 holding exactly the values a BF16 copy widens back to.
    pub fn bf16_rounded(&self) -> Self {
        let values: Vec<f32> = self
            .values()
            .iter()
            .map(|&v| half::bf16::from_f32(v).to_f32())
            .collect();
        Self::f32(self.shape.clone(), &values)
    }
}

pub type Tensors = BTreeMap<String, RawTensor>;

pub fn read_tensors(path: &Path) -> Tensors {
    let bytes = std::fs::read(path).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            (
                name,
                RawTensor {
                    dtype: view.dtype(),
                    shape: view.shape().to_vec(),
                    data: view.data().to_vec(),
                },
            )
        })
        .collect()
}

pub fn write_tensors(path: &Path, tensors: &Tensors) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, t)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(t.dtype, t.shape.clone(), &t.data).unwrap(),
            )
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).unwrap();
}

/// A temporary copy of tiny_a's config and tokenizer; weights are written by the caller.
pub fn folder_without_weights() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "tokenizer.json"] {
        std::fs::copy(tiny_a().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// A temporary copy of tiny_a with its weights transformed by `change`.
pub fn folder_with(change: impl FnOnce(&mut Tensors)) -> tempfile::TempDir {
    let dir = folder_without_weights();
    let mut tensors = read_tensors(&tiny_a().join("model.safetensors"));
    change(&mut tensors);
    write_tensors(&dir.path().join("model.safetensors"), &tensors);
    dir
}

/// Writes `tensors` as `num_shards` shards plus `model.safetensors.index.json` into `dir`.
pub fn write_sharded(dir: &Path, tensors: &Tensors, num_shards: usize) -> Vec<PathBuf> {
    let mut shards: Vec<Tensors> = vec![Tensors::new(); num_shards];
    let mut weight_map = serde_json::Map::new();
    let names: Vec<String> = (1..=num_shards)
        .map(|s| format!("model-{s:05}-of-{num_shards:05}.safetensors"))
        .collect();
    for (i, (key, tensor)) in tensors.iter().enumerate() {
        shards[i % num_shards].insert(key.clone(), tensor.clone());
        weight_map.insert(key.clone(), names[i % num_shards].clone().into());
    }
    let paths: Vec<PathBuf> = names.iter().map(|n| dir.join(n)).collect();
    for (shard, path) in shards.iter().zip(&paths) {
        write_tensors(path, shard);
    }
    let index = serde_json::json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
    std::fs::write(
        dir.join("model.safetensors.index.json"),
        serde_json::to_string_pretty(&index).unwrap(),
    )
    .unwrap();
    paths
}

/// Edits the folder's config.json.
pub fn edit_config(
    dir: &Path,
    change: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    change(config.as_object_mut().unwrap());
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

pub const TEXTS: [&str; 3] = [
    "Hello world.",
    "When the critic is good, the actor can learn faster.",
    "  The agent\n\tlearns  fast!  ",
];
