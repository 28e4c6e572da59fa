//! `gae/`: every `*.json`, each entry of its `cases`; `gamma`, `gae_lambda` from the entry.

use std::path::Path;

use factored_rl::gae::{GaeInputs, GaeParams, compute_gae};
use serde_json::Value;

use super::support::{Comparison, flat, flat_f32, read_json, report};

const TOL: f64 = 1e-5;

/// Checks every case of one file; returns whether all passed.
pub fn check(path: &Path, file_name: &str) -> bool {
    let json = read_json(path);
    let cases = json["cases"].as_array().expect("`cases` is an array");
    assert!(!cases.is_empty(), "{}: no cases", path.display());
    let mut all_ok = true;
    for (i, case) in cases.iter().enumerate() {
        let mut cmp = Comparison::default();
        // An entry may carry its own inputs; otherwise the file's are used.
        let inputs = case.get("inputs").unwrap_or(&json["inputs"]);
        run(inputs, case, &mut cmp);
        all_ok &= report("gae", &format!("{file_name}#{i}"), &cmp);
    }
    all_ok
}

fn run(inputs: &Value, case: &Value, cmp: &mut Comparison) {
    let bools = |v: &Value| flat(v).iter().map(|&x| x != 0.0).collect::<Vec<_>>();
    let rewards = flat_f32(&inputs["rewards"]);
    let values = flat_f32(&inputs["values"]);
    let terminated = bools(&inputs["terminated"]);
    let truncated = bools(&inputs["truncated"]);
    let terminal_values = flat_f32(&inputs["terminal_values"]);
    let last_values = flat_f32(&inputs["last_values"]);
    let gae_inputs = GaeInputs {
        num_envs: last_values.len(),
        rewards: &rewards,
        values: &values,
        terminated: &terminated,
        truncated: &truncated,
        terminal_values: &terminal_values,
        last_values: &last_values,
    };
    let params = GaeParams {
        gamma: case["gamma"].as_f64().expect("gamma") as f32,
        lambda: case["gae_lambda"].as_f64().expect("gae_lambda") as f32,
    };
    let mut advantages = vec![0.0; rewards.len()];
    let mut returns = vec![0.0; rewards.len()];
    if let Err(e) = compute_gae(&gae_inputs, params, &mut advantages, &mut returns) {
        cmp.fail(e.to_string());
        return;
    }
    let mut compared = 0;
    for (key, actual) in [
        ("advantages", &advantages),
        ("returns", &returns),
        ("advantages_sb3_float32", &advantages),
        ("returns_sb3_float32", &returns),
    ] {
        if let Some(expected) = case.get(key) {
            compared += 1;
            cmp.close(key, actual, &flat(expected), TOL, 0.0);
        }
    }
    if compared == 0 {
        cmp.fail("the case has no reference advantages or returns".into());
    }
}
