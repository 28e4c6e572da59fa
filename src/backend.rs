//! Choosing where tensors live.
//!
//! The default is burn's pure-Rust CPU backend, flex (see `docs/backends.md` for why). GPU
//! backends are cargo features that are off by default: `wgpu`, `cuda`, `tch`.

use burn::tensor::Device;

use crate::error::{Error, Result};

/// The CPU device every default code path uses.
pub fn default_device() -> Device {
    Device::flex()
}

/// The backends this build can use, by name.
pub fn available_backends() -> Vec<&'static str> {
    let mut names = vec!["flex"];
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    if cfg!(feature = "tch") {
        names.push("tch");
    }
    names
}

/// The device of backend `name` (`flex`, or a GPU backend compiled in with its feature).
///
/// # Errors
/// [`Error::Invalid`] naming the backend when it is unknown or not compiled in.
pub fn device_by_name(name: &str) -> Result<Device> {
    match name {
        "flex" | "cpu" => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::default())),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(0usize)),
        #[cfg(feature = "tch")]
        "tch" => Ok(Device::libtorch()),
        other => Err(Error::invalid(
            "backend",
            format!(
                "`{other}` is not available in this build (available: {}; GPU backends need their cargo feature)",
                available_backends().join(", ")
            ),
        )),
    }
}
