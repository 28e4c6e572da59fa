//! Atomic file writes: a checkpoint is written to a temporary file in the same folder and renamed
//! over the target, so an interrupted run leaves either the old file or the new one, never half.

use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` atomically (temporary file, fsync, rename).
///
/// # Errors
/// [`Error::Io`] naming the path that could not be written.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| Error::invalid("path", format!("{} has no file name", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Reads a JSON trainer checkpoint (`what` says which kind, for the error) and checks that its
/// layout version is the one this build writes.
///
/// # Errors
/// [`Error::Io`] / [`Error::Corrupt`] naming the file; [`Error::CheckpointMismatch`] for another
/// layout version.
pub(crate) fn read_versioned_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    format_version: u32,
    version_of: impl Fn(&T) -> u32,
) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    let value: T = serde_json::from_str(&text).map_err(|e| Error::Corrupt {
        file: path.to_path_buf(),
        reason: format!("not a {what}: {e}"),
    })?;
    let found = version_of(&value);
    if found != format_version {
        return Err(Error::CheckpointMismatch {
            path: path.to_path_buf(),
            reason: format!("format version {found} (this build reads {format_version})"),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_and_replaces_without_leaving_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn unwritable_path_is_an_io_error_naming_it() {
        let path = Path::new("/nonexistent-dir-factored-rl/x.bin");
        let err = write_atomic(path, b"x").unwrap_err();
        assert!(
            matches!(&err, Error::Io { path: p, .. } if p == path),
            "{err}"
        );
    }
}
