//! `factored-rl grpo` end to end on the tiny_a fixture: artifacts, the final line, resuming, and
//! bad input ending in a message and a non-zero exit, never a panic.

mod common;

use std::path::Path;
use std::process::Output;

use common::{assert_clean_failure, stderr, tiny_a};

fn grpo(args: &[&str]) -> Output {
    common::factored_rl("grpo", args)
}

fn rows(out_dir: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(out_dir.join("metrics.csv"))
        .unwrap()
        .lines()
        .map(|l| l.split(',').map(String::from).collect())
        .collect()
}

fn column(rows: &[Vec<String>], name: &str) -> Vec<String> {
    let index = rows[0].iter().position(|h| h == name).unwrap();
    rows[1..].iter().map(|r| r[index].clone()).collect()
}

#[test]
fn trains_writes_metrics_curve_checkpoint_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("run");
    let (model, out_path) = (tiny_a(), out_dir.to_str().unwrap().to_string());
    let model = model.to_str().unwrap();
    let out = grpo(&[
        "--model", model, "--env", "memory", "--steps", "3", "--seed", "2", "--out", &out_path,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8(out.stdout.clone()).unwrap();
    let last = stdout.trim().lines().last().unwrap();
    let rate: f64 = last
        .strip_prefix("eval success_rate=")
        .unwrap_or_else(|| panic!("last line: {last}"))
        .parse()
        .unwrap();
    assert!((0.0..=1.0).contains(&rate));
    assert!(stderr(&out).contains("before training: eval success_rate="));

    let table = rows(&out_dir);
    for name in [
        "loss",
        "kl",
        "clip_ratio_low_mean",
        "clip_ratio_high_mean",
        "clip_ratio_region_mean",
        "mean_reward",
        "success_rate",
        "grad_norm",
        "eval_success_rate",
    ] {
        assert!(table[0].iter().any(|h| h == name), "no column {name}");
    }
    // Row 0 is the untrained policy's evaluation, then one row per batch.
    assert_eq!(column(&table, "batch"), ["0", "1", "2", "3"]);
    assert_eq!(column(&table, "optimizer_steps"), ["0", "4", "8", "12"]);
    assert!(
        column(&table, "eval_success_rate")[0]
            .parse::<f64>()
            .is_ok()
    );
    for loss in &column(&table, "loss")[1..] {
        assert!(loss.parse::<f64>().unwrap().is_finite(), "loss {loss}");
    }
    let png = std::fs::read(out_dir.join("curve.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("checkpoint/trainer.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["progress"]["batches"], 3);
    assert_eq!(meta["config"]["grpo"]["seed"], 2);

    // Resume to 5 batches: two more rows, the checkpoint moves on.
    let out = grpo(&[
        "--model", model, "--env", "memory", "--steps", "5", "--seed", "2", "--out", &out_path,
        "--resume",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        column(&rows(&out_dir), "batch"),
        ["0", "1", "2", "3", "4", "5"]
    );
    let meta: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("checkpoint/trainer.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["progress"]["batches"], 5);

    // A damaged checkpoint is an error naming the file.
    std::fs::write(out_dir.join("checkpoint/optimizer.bpk"), b"garbage").unwrap();
    let out = grpo(&[
        "--model", model, "--env", "memory", "--steps", "6", "--out", &out_path, "--resume",
    ]);
    assert_clean_failure(&out, "optimizer.bpk");
}

#[test]
fn a_config_file_overrides_the_defaults_and_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_a();
    let model = model.to_str().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        r#"{"tasks_per_batch": 2, "grpo": {"num_generations": 4}, "retrieval": "ngram",
            "eval_episodes": 10}"#,
    )
    .unwrap();
    let out_dir = dir.path().join("run");
    let out = grpo(&[
        "--model",
        model,
        "--env",
        "memory",
        "--steps",
        "1",
        "--out",
        out_dir.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("2 tasks × 4 rollouts"), "{err}");
    // Choosing the n-gram embedder brings its calibrated threshold.
    assert!(err.contains("match_threshold 0.5"), "{err}");

    std::fs::write(&config, r#"{"tasks_per_batch": 0}"#).unwrap();
    let out = grpo(&[
        "--model",
        model,
        "--env",
        "memory",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, "tasks_per_batch");
    std::fs::write(&config, "{ not json").unwrap();
    let out = grpo(&[
        "--model",
        model,
        "--env",
        "memory",
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_clean_failure(&out, "config.json");
}

#[test]
fn bad_input_is_a_message_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny_a();
    let model = model.to_str().unwrap();
    let out_path = dir.path().join("run");
    let out_path = out_path.to_str().unwrap();

    let out = grpo(&["--model", model, "--env", "cartpole", "--out", out_path]);
    assert_clean_failure(&out, "valid: memory");
    let missing = dir.path().join("no-such-model");
    let out = grpo(&[
        "--model",
        missing.to_str().unwrap(),
        "--env",
        "memory",
        "--out",
        out_path,
    ]);
    assert_clean_failure(&out, "no-such-model");
    // Nothing to resume from.
    let out = grpo(&[
        "--model", model, "--env", "memory", "--out", out_path, "--resume",
    ]);
    assert_clean_failure(&out, "trainer.json");
    // Flags clap rejects.
    assert_clean_failure(
        &grpo(&["--model", model, "--env", "memory", "--stepz", "3"]),
        "--stepz",
    );
    assert_clean_failure(
        &grpo(&["--model", model, "--env", "memory", "--steps", "many"]),
        "many",
    );
    assert_clean_failure(&grpo(&["--env", "memory"]), "--model");
}
