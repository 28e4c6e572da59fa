//! `factored-rl train` and `eval` end to end: a short run prints the evaluation line and leaves a
//! checkpoint that `eval` reads; a backend this build lacks, or a checkpoint of another env, ends
//! in a message and a non-zero exit, never a panic.

mod common;

use std::process::Output;

use common::{assert_clean_failure, stderr};

fn factored_rl(args: &[&str]) -> Output {
    common::factored_rl(args[0], &args[1..])
}

fn eval_line(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout.lines().last().unwrap_or_default().trim().to_string()
}

#[test]
fn a_short_run_on_the_named_backend_is_evaluated_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out_path = out_dir.to_str().unwrap();
    let train = factored_rl(&[
        "train",
        "--env",
        "cartpole",
        "--steps",
        "512",
        "--seed",
        "3",
        "--backend",
        "flex",
        "--out",
        out_path,
    ]);
    assert!(train.status.success(), "{}", stderr(&train));
    let line = eval_line(&train);
    assert!(line.starts_with("eval mean_return="), "{line}");
    assert!(line.ends_with("episodes=20"), "{line}");

    let eval = factored_rl(&[
        "eval",
        "--checkpoint",
        out_path,
        "--env",
        "cartpole",
        "--episodes",
        "20",
        "--backend",
        "cpu",
    ]);
    assert!(eval.status.success(), "{}", stderr(&eval));
    // The same deterministic evaluation as the one that ended the run.
    assert_eq!(eval_line(&eval), line);

    let other_env = factored_rl(&["eval", "--checkpoint", out_path, "--env", "recall"]);
    assert_clean_failure(&other_env, "cartpole");
}

#[test]
fn a_backend_this_build_lacks_is_a_named_error() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let out_path = out_dir.to_str().unwrap();
    let train = factored_rl(&[
        "train",
        "--env",
        "cartpole",
        "--steps",
        "512",
        "--backend",
        "nosuch",
        "--out",
        out_path,
    ]);
    assert_clean_failure(&train, "`nosuch` is not available");
    assert!(!out_dir.exists(), "a failed start left {out_path} behind");
    let eval = factored_rl(&[
        "eval",
        "--checkpoint",
        out_path,
        "--env",
        "cartpole",
        "--backend",
        "nosuch",
    ]);
    assert_clean_failure(&eval, "available: flex");
}
