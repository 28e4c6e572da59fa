//! Reading named tensors from safetensors files, with errors that name the key and the file.
//!
//! F32, BF16 and F16 tensors are accepted and widened to `f32` (every weight this crate loads is
//! used in `f32`).

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use safetensors::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A safetensors file read into memory.
pub struct SafetensorsFile {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl std::fmt::Debug for SafetensorsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SafetensorsFile")
            .field("path", &self.path)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// One tensor widened to `f32`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// The dimensions.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub values: Vec<f32>,
}

impl HostTensor {
    /// Moves the values to `device` as a rank-`D` tensor.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the rank is not `D`.
    pub fn to_tensor<const D: usize>(&self, name: &str, device: &Device) -> Result<Tensor<D>> {
        if self.shape.len() != D {
            return Err(Error::ShapeMismatch {
                name: name.to_string(),
                expected: vec![0; D],
                found: self.shape.clone(),
            });
        }
        let shape: [usize; D] = self.shape.clone().try_into().expect("rank checked above");
        Ok(Tensor::from_data(
            TensorData::new(self.values.clone(), shape),
            device,
        ))
    }
}

impl SafetensorsFile {
    /// Reads and validates the header of `path`.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; [`Error::Corrupt`] when it is not a valid
    /// safetensors file (truncated, bad header).
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        SafeTensors::deserialize(&bytes).map_err(|e| Error::Corrupt {
            file: path.clone(),
            reason: format!("not a valid safetensors file: {e}"),
        })?;
        Ok(Self { path, bytes })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parsed(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("validated when opened")
    }

    /// The tensor names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .parsed()
            .names()
            .into_iter()
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    /// Whether the file holds `key`.
    pub fn contains(&self, key: &str) -> bool {
        self.parsed().tensor(key).is_ok()
    }

    /// The shape and dtype name of `key`, without converting its data.
    ///
    /// # Errors
    /// [`Error::MissingTensor`] naming the key and file.
    pub fn info(&self, key: &str) -> Result<(Vec<usize>, String)> {
        let view = self.parsed().tensor(key).map_err(|_| self.missing(key))?;
        Ok((view.shape().to_vec(), format!("{:?}", view.dtype())))
    }

    /// Reads `key` as `f32`.
    ///
    /// # Errors
    /// [`Error::MissingTensor`], or [`Error::UnsupportedDtype`] for a dtype other than
    /// F32, BF16 and F16.
    pub fn read(&self, key: &str) -> Result<HostTensor> {
        let tensors = self.parsed();
        let view = tensors.tensor(key).map_err(|_| self.missing(key))?;
        let data = view.data();
        let values = match view.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::UnsupportedDtype {
                    key: key.to_string(),
                    dtype: format!("{other:?}"),
                    file: self.path.clone(),
                });
            }
        };
        Ok(HostTensor {
            shape: view.shape().to_vec(),
            values,
        })
    }

    /// Reads `key` and checks that its shape is `expected`.
    ///
    /// # Errors
    /// As [`read`](Self::read), and [`Error::ShapeMismatch`] naming the key and file.
    pub fn read_shaped(&self, key: &str, expected: &[usize]) -> Result<HostTensor> {
        let tensor = self.read(key)?;
        if tensor.shape != expected {
            return Err(Error::ShapeMismatch {
                name: format!("{key} in {}", self.path.display()),
                expected: expected.to_vec(),
                found: tensor.shape,
            });
        }
        Ok(tensor)
    }

    fn missing(&self, key: &str) -> Error {
        Error::MissingTensor {
            key: key.to_string(),
            file: self.path.clone(),
        }
    }
}

/// Writes `tensors` (name, shape, f32 values) as an F32 safetensors file, atomically.
///
/// # Errors
/// [`Error::Io`] when the file cannot be written; [`Error::ShapeMismatch`] when a tensor's
/// values do not fill its shape.
pub fn write_f32_safetensors(
    path: impl AsRef<Path>,
    tensors: &[(String, HostTensor)],
) -> Result<()> {
    let mut raw = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        if t.shape.iter().product::<usize>() != t.values.len() {
            return Err(Error::ShapeMismatch {
                name: name.clone(),
                expected: t.shape.clone(),
                found: vec![t.values.len()],
            });
        }
        let bytes: Vec<u8> = t.values.iter().flat_map(|v| v.to_le_bytes()).collect();
        raw.push((name.clone(), t.shape.clone(), bytes));
    }
    let views = raw
        .iter()
        .map(|(name, shape, bytes)| {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, shape.clone(), bytes)
                .expect("shape and byte length agree");
            (name.clone(), view)
        })
        .collect::<Vec<_>>();
    let bytes = safetensors::serialize(views, None).map_err(|e| Error::Corrupt {
        file: path.as_ref().to_path_buf(),
        reason: format!("cannot serialize: {e}"),
    })?;
    crate::checkpoint::write_atomic(path.as_ref(), &bytes)
}
