//! `factored-rl encode` end to end on the tiny_a fixture.

mod common;

use std::process::Output;

use common::tiny_a;
use serde_json::Value;

fn encode(args: &[&str]) -> Output {
    common::factored_rl("encode", args)
}

/// The fixture's reference embedding `text_{i}.mean` and ids.
fn reference(i: usize) -> (Vec<u64>, Vec<f32>) {
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_a().join("expected.json")).unwrap())
            .unwrap();
    let ids = meta["token_ids"][i]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    let file =
        factored_rl::weights::SafetensorsFile::open(tiny_a().join("expected.safetensors")).unwrap();
    (ids, file.read(&format!("text_{i}.mean")).unwrap().values)
}

#[test]
fn json_output_is_one_object_with_ids_and_embeddings() {
    let model = tiny_a();
    let out = encode(&[
        "--model",
        model.to_str().unwrap(),
        "--json",
        "Hello world.",
        "  The agent\n\tlearns  fast!  ",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "more than one line: {stdout}"
    );
    let json: Value = serde_json::from_str(&stdout).unwrap();
    let object = json.as_object().unwrap();
    let mut keys: Vec<&String> = object.keys().collect();
    keys.sort();
    assert_eq!(keys, ["hidden_size", "results"]);
    assert_eq!(json["hidden_size"], 64);
    let results = json["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (result, (text, case)) in results
        .iter()
        .zip([("Hello world.", 1), ("  The agent\n\tlearns  fast!  ", 4)])
    {
        let mut keys: Vec<&String> = result.as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["embedding", "text", "token_ids"]);
        assert_eq!(result["text"], text);
        let (ids, mean) = reference(case);
        let got_ids: Vec<u64> = result["token_ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .collect();
        assert_eq!(got_ids, ids);
        let embedding: Vec<f64> = result["embedding"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(embedding.len(), 64);
        for (a, &b) in embedding.iter().zip(&mean) {
            let b = f64::from(b);
            assert!((a - b).abs() <= 1e-4 + 1e-4 * b.abs(), "{a} vs {b}");
        }
    }
}

#[test]
fn max_length_truncates_the_ids() {
    let model = tiny_a();
    let out = encode(&[
        "--model",
        model.to_str().unwrap(),
        "--max-length",
        "3",
        "--json",
        "Hello world.",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (ids, _) = reference(1);
    assert_eq!(json["results"][0]["token_ids"], serde_json::json!(ids[..3]));
}

#[test]
fn plain_output_has_a_line_per_text() {
    let model = tiny_a();
    let out = encode(&["--model", model.to_str().unwrap(), "a", "b"]);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().filter(|l| l.contains("tokens")).count(),
        2,
        "{stdout}"
    );
}

fn assert_fails_naming(out: &Output, what: &str) {
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("error:") && stderr.contains(what),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn missing_folder_fails_with_a_message() {
    let out = encode(&["--model", "/nonexistent/olmoe-checkpoint", "--json", "hi"]);
    assert_fails_naming(&out, "/nonexistent/olmoe-checkpoint");
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_checkpoint_fails_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["config.json", "tokenizer.json"] {
        std::fs::copy(tiny_a().join(name), dir.path().join(name)).unwrap();
    }
    let bytes = std::fs::read(tiny_a().join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("model.safetensors"), &bytes[..1000]).unwrap();
    let out = encode(&["--model", dir.path().to_str().unwrap(), "hi"]);
    assert_fails_naming(&out, "model.safetensors");
    let out = encode(&[
        "--model",
        tiny_a().to_str().unwrap(),
        "--max-length",
        "0",
        "hi",
    ]);
    assert_fails_naming(&out, "max_length");
}
