//! Helpers of the tests that run the `factored-rl` binary.
// Each test crate that includes this module uses only some of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `factored-rl <subcommand> <args>`.
pub fn factored_rl(subcommand: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_factored-rl"))
        .arg(subcommand)
        .args(args)
        .output()
        .expect("the binary runs")
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Fails with a message that contains `expected`, without a panic.
pub fn assert_clean_failure(out: &Output, expected: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "succeeded: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert!(err.contains(expected), "`{expected}` not in: {err}");
}

/// The tiny OLMoE checkpoint of the fixtures (honouring `FACTORED_RL_FIXTURES`).
pub fn tiny_a() -> PathBuf {
    let root = std::env::var_os("FACTORED_RL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    root.join("olmoe/tiny_a")
}
