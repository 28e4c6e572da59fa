//! Conformance with the reference implementations (PyTorch, sb3-contrib, CleanRL, TRL,
//! transformers), driven by the fixture tree's discovery contract (`tests/fixtures/README.md`):
//! the root is `FACTORED_RL_FIXTURES` or `tests/fixtures`, every case file or folder found is
//! checked, and no case is listed here. Each case prints one line
//! `conformance <folder>/<case> ok max_abs_err=<x>` (see them with
//! `cargo test --release --test conformance -- --nocapture`).

#[path = "conformance/gae.rs"]
mod gae;
#[path = "conformance/grpo.rs"]
mod grpo;
#[path = "conformance/lstm.rs"]
mod lstm;
#[path = "conformance/masked_categorical.rs"]
mod masked_categorical;
#[path = "conformance/olmoe.rs"]
mod olmoe;
#[path = "conformance/support.rs"]
mod support;

use support::{case_name, case_paths};

/// The folders this suite knows how to check.
const CHECKED_FOLDERS: &[&str] = &["gae", "grpo", "lstm", "masked_categorical", "olmoe"];

fn run_files(folder: &str, ext: &str, check: fn(&std::path::Path, &str) -> bool) {
    let failed: Vec<String> = case_paths(folder, Some(ext))
        .into_iter()
        .filter(|path| !check(path, &case_name(path)))
        .map(|path| case_name(&path))
        .collect();
    assert!(failed.is_empty(), "{folder}: cases failed: {failed:?}");
}

#[test]
fn every_fixture_folder_is_checked() {
    let unknown: Vec<String> = support::folders()
        .into_iter()
        .filter(|f| !CHECKED_FOLDERS.contains(&f.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "fixture folders without a checker: {unknown:?}"
    );
}

#[test]
fn masked_categorical() {
    run_files("masked_categorical", "json", masked_categorical::check);
}

#[test]
fn lstm() {
    run_files("lstm", "safetensors", lstm::check);
}

#[test]
fn gae() {
    run_files("gae", "json", gae::check);
}

#[test]
fn grpo() {
    run_files("grpo", "json", grpo::check);
}

/// Entries under mask 0 (set to huge values, ±∞, NaN) change no loss, metric or gradient.
#[test]
fn grpo_masked_entries_do_not_matter() {
    run_files("grpo", "json", grpo::check_masked_entries);
}

#[test]
fn olmoe() {
    let failed: Vec<String> = case_paths("olmoe", None)
        .into_iter()
        .filter(|path| !olmoe::check(path, &case_name(path)))
        .map(|path| case_name(&path))
        .collect();
    assert!(failed.is_empty(), "olmoe: cases failed: {failed:?}");
}
