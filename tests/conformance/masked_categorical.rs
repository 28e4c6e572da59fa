//! `masked_categorical/`: every `*.json`; `inputs`, then each reference block.

use std::path::Path;

use factored_rl::backend::default_device;
use factored_rl::burn::tensor::{Tensor, TensorData};
use factored_rl::distribution::MaskedCategorical;
use serde_json::Value;

use super::support::{Comparison, dims2, flat, flat_f32, read_json, report};

const TOL: f64 = 1e-5;

pub fn check(path: &Path, case: &str) -> bool {
    let json = read_json(path);
    let inputs = &json["inputs"];
    let [rows, cols] = dims2(&inputs["logits"]);
    let logits = Tensor::<2>::from_data(
        TensorData::new(flat_f32(&inputs["logits"]), [rows, cols]),
        &default_device(),
    );
    let mask: Vec<bool> = flat(&inputs["masks"]).iter().map(|&m| m != 0.0).collect();
    let actions: Vec<usize> = flat(&inputs["actions"])
        .iter()
        .map(|&a| a as usize)
        .collect();
    let mut cmp = Comparison::default();
    let dist = match MaskedCategorical::new("fixture", logits, &mask) {
        Ok(dist) => dist,
        Err(e) => {
            cmp.fail(format!("construction failed: {e}"));
            return report("masked_categorical", case, &cmp);
        }
    };
    let host = |t: Tensor<1>| t.into_data().try_into_vec_as::<f32>().unwrap();
    let log_prob = dist.log_prob_checked(&actions).map(host);
    let entropy = host(dist.entropy());
    let probs = dist.probs().into_data().try_into_vec_as::<f32>().unwrap();
    let log_probs_all = dist
        .log_probs()
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap();
    let mode = dist.mode();

    let blocks = json
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, v)| v.is_object() && v.get("log_prob").is_some());
    let mut seen = 0;
    for (name, block) in blocks {
        seen += 1;
        match &log_prob {
            Ok(lp) => cmp.close(
                &format!("{name}.log_prob"),
                lp,
                &flat(&block["log_prob"]),
                TOL,
                0.0,
            ),
            Err(e) => cmp.fail(format!("{name}.log_prob: {e}")),
        }
        if let Some(v) = block.get("entropy") {
            cmp.close(&format!("{name}.entropy"), &entropy, &flat(v), TOL, 0.0);
        }
        if let Some(v) = block.get("probs") {
            let expected = flat(v);
            cmp.close(&format!("{name}.probs"), &probs, &expected, TOL, 0.0);
            let masked_nonzero = probs.iter().zip(&mask).any(|(&p, &m)| !m && p != 0.0);
            if masked_nonzero {
                cmp.fail(format!(
                    "{name}.probs: a masked probability is not exactly 0"
                ));
            }
        }
        if let Some(v) = block.get("argmax") {
            let expected: Vec<usize> = flat(v).iter().map(|&a| a as usize).collect();
            cmp.exact(&format!("{name}.argmax"), &mode, &expected);
        }
        if let Some(Value::Array(triples)) = block.get("log_prob_all_valid") {
            let (actual, expected): (Vec<f32>, Vec<f64>) = triples
                .iter()
                .map(|t| {
                    let t = flat(t);
                    (log_probs_all[t[0] as usize * cols + t[1] as usize], t[2])
                })
                .unzip();
            cmp.close(
                &format!("{name}.log_prob_all_valid"),
                &actual,
                &expected,
                TOL,
                0.0,
            );
        }
    }
    if seen == 0 {
        cmp.fail("no reference block with `log_prob`".into());
    }
    report("masked_categorical", case, &cmp)
}
