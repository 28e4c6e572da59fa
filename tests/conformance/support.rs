//! Fixture discovery and comparison helpers shared by the conformance checkers.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// The fixture root: `FACTORED_RL_FIXTURES` when set, else `tests/fixtures`.
pub fn fixture_root() -> PathBuf {
    let root = std::env::var_os("FACTORED_RL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    assert!(
        root.is_dir(),
        "fixture root {} does not exist (set FACTORED_RL_FIXTURES or copy shared/fixtures to tests/fixtures)",
        root.display()
    );
    root
}

/// The fixture folders under the root, sorted.
pub fn folders() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_root())
        .expect("fixture root is readable")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The case files of `folder` with extension `ext`, or its sub-folders when `ext` is `None`, sorted.
pub fn case_paths(folder: &str, ext: Option<&str>) -> Vec<PathBuf> {
    let dir = fixture_root().join(folder);
    assert!(
        dir.is_dir(),
        "fixture folder {} does not exist",
        dir.display()
    );
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture folder is readable")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| match ext {
            Some(ext) => p.is_file() && p.extension().is_some_and(|e| e == ext),
            None => p.is_dir(),
        })
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no cases found in {}", dir.display());
    paths
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Flattens a (nested) JSON array of numbers or booleans into f64s.
pub fn flat(value: &Value) -> Vec<f64> {
    let mut out = Vec::new();
    fn walk(v: &Value, out: &mut Vec<f64>) {
        match v {
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            Value::Number(n) => out.push(n.as_f64().expect("a finite number")),
            Value::Bool(b) => out.push(f64::from(u8::from(*b))),
            other => panic!("expected numbers, found {other}"),
        }
    }
    walk(value, &mut out);
    out
}

/// Flattens as f32 (fixture floats are exact float32 decimals).
pub fn flat_f32(value: &Value) -> Vec<f32> {
    flat(value).into_iter().map(|v| v as f32).collect()
}

/// The `[rows, cols]` of a 2-D JSON array.
pub fn dims2(value: &Value) -> [usize; 2] {
    let rows = value.as_array().expect("a 2-D array");
    [rows.len(), rows[0].as_array().expect("a 2-D array").len()]
}

/// Accumulates the worst error of a case and the first comparison that failed.
#[derive(Debug, Default)]
pub struct Comparison {
    /// The largest absolute error seen.
    pub max_abs_err: f64,
    /// Descriptions of the comparisons that failed.
    pub failures: Vec<String>,
}

impl Comparison {
    /// Compares `actual` with `expected` elementwise: `|a − b| ≤ abs_tol + rel_tol·|b|`.
    pub fn close(
        &mut self,
        what: &str,
        actual: &[f32],
        expected: &[f64],
        abs_tol: f64,
        rel_tol: f64,
    ) {
        if actual.len() != expected.len() {
            self.failures.push(format!(
                "{what}: {} values, expected {}",
                actual.len(),
                expected.len()
            ));
            return;
        }
        let mut worst: Option<(usize, f64)> = None;
        for (i, (&a, &b)) in actual.iter().zip(expected).enumerate() {
            let err = (a as f64 - b).abs();
            if !err.is_finite() {
                worst = Some((i, f64::INFINITY));
                self.max_abs_err = f64::INFINITY;
                break;
            }
            self.max_abs_err = self.max_abs_err.max(err);
            if err > abs_tol + rel_tol * b.abs() && worst.is_none_or(|(_, w)| err > w) {
                worst = Some((i, err));
            }
        }
        if let Some((i, err)) = worst {
            self.failures.push(format!(
                "{what}[{i}]: got {}, expected {}, |err| {err:.3e}",
                actual[i], expected[i]
            ));
        }
    }

    /// Requires exact equality.
    pub fn exact<T: PartialEq + std::fmt::Debug>(
        &mut self,
        what: &str,
        actual: &[T],
        expected: &[T],
    ) {
        if actual != expected {
            self.failures
                .push(format!("{what}: got {actual:?}, expected {expected:?}"));
        }
    }

    /// Records a failure.
    pub fn fail(&mut self, what: String) {
        self.failures.push(what);
    }
}

/// Prints the case line and returns whether it passed.
pub fn report(folder: &str, case: &str, comparison: &Comparison) -> bool {
    if comparison.failures.is_empty() {
        println!(
            "conformance {folder}/{case} ok max_abs_err={:.1e}",
            comparison.max_abs_err
        );
        true
    } else {
        println!(
            "conformance {folder}/{case} FAILED max_abs_err={:.1e}: {}",
            comparison.max_abs_err,
            comparison.failures.join("; ")
        );
        false
    }
}

/// The file name of a case path.
pub fn case_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}
