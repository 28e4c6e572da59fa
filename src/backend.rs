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

/// Whether tensors on `device` (with or without autodiff) live in host memory, on burn's CPU
/// backend, where the crate's host-side paths (the LSTM recurrence, Adam) apply.
pub fn is_host(device: &Device) -> bool {
    device.clone().without_autodiff() == Device::flex()
}

/// Makes the C allocator keep freed memory for reuse instead of handing large blocks back to the
/// operating system after every use; returns whether it applied (Linux with glibc only).
///
/// burn's CPU backend allocates a new buffer for most tensor operations. glibc serves blocks above
/// its mmap threshold (128 KiB at start) with a fresh mapping each time, and the kernel zeroes every
/// page of it on first touch: the reference PPO update at 4 × 150 took about 300,000 page faults in
/// 6 s. This raises the threshold to glibc's maximum (32 MiB) and keeps freed memory at the top of
/// the heap (trim threshold 1 GiB). Measured on the 2-core machine with the update's phases timed
/// in-process, median per update: 236–249 ms as glibc starts, 162 ms with these settings.
///
/// It changes process-wide allocator settings, so the library never calls it by itself: the
/// `factored-rl` binary and the benchmarks call it at startup, and a program that embeds the
/// library can do the same (or install a caching global allocator).
pub fn retain_freed_memory() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: `mallopt` only sets allocator parameters; glibc allows calling it at any time.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20) == 1
                && libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30) == 1
        }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retaining_freed_memory_applies_exactly_where_glibc_is_the_allocator() {
        assert_eq!(
            retain_freed_memory(),
            cfg!(all(target_os = "linux", target_env = "gnu"))
        );
    }
}
