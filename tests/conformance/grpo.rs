//! `grpo/`: every `*.json`, each entry of its `losses`; `beta`, `use_bias_correction_kl` from the
//! entry. Compares against TRL's GRPOTrainer: advantages under the three scalings, the per-step
//! ratio / clipped ratio / KL / clip term and per-step loss at mask-1 steps, the four aggregated
//! losses, and TRL's logged KL and clip ratios. A second check perturbs the entries under mask 0
//! (to huge values, ±∞ and NaN) and requires bit-identical losses, metrics and gradients.

use std::path::Path;

use factored_rl::backend::default_device;
use factored_rl::burn::tensor::{Bool, Device, Tensor, TensorData};
use factored_rl::grpo::{
    GrpoConfig, GrpoLossInputs, GrpoLossOutput, LossType, ScaleRewards, group_advantages, grpo_loss,
};
use serde_json::Value;

use super::support::{Comparison, dims2, flat, flat_f32, read_json, report};

/// Advantages and per-step values.
const TOL_PER_TOKEN: f64 = 1e-5;
/// Aggregated losses and logged metrics.
const TOL_SCALAR: f64 = 1e-6;

/// Checks every `losses` entry of one file; returns whether all passed.
pub fn check(path: &Path, file_name: &str) -> bool {
    let json = read_json(path);
    let entries = json["losses"].as_array().expect("`losses` is an array");
    assert!(
        !entries.is_empty(),
        "{}: no `losses` entries",
        path.display()
    );
    let mut all_ok = true;
    for (i, entry) in entries.iter().enumerate() {
        let mut cmp = Comparison::default();
        run(&json, entry, &mut cmp);
        all_ok &= report("grpo", &format!("{file_name}#{i}"), &cmp);
    }
    all_ok
}

/// Checks that perturbing the entries under mask 0 changes nothing, for every `losses` entry
/// and every aggregation; returns whether all passed.
pub fn check_masked_entries(path: &Path, file_name: &str) -> bool {
    let json = read_json(path);
    let entries = json["losses"].as_array().expect("`losses` is an array");
    let mut all_ok = true;
    for (i, entry) in entries.iter().enumerate() {
        let case = Case::read(&json, entry);
        for loss_type in LossType::ALL {
            let config = case.config.clone().with_loss_type(loss_type);
            let clean =
                case.loss_with_gradient(&config, &case.new_logps, &case.old_logps, &case.ref_logps);
            let garbage = [
                1e30,
                -1e30,
                f32::INFINITY,
                f32::NEG_INFINITY,
                f32::NAN,
                f32::MAX,
            ];
            let perturb = |values: &[f32], shift: usize| -> Vec<f32> {
                values
                    .iter()
                    .zip(&case.mask)
                    .enumerate()
                    .map(|(j, (&v, &m))| {
                        if m {
                            v
                        } else {
                            garbage[(j + shift) % garbage.len()]
                        }
                    })
                    .collect()
            };
            let dirty = case.loss_with_gradient(
                &config,
                &perturb(&case.new_logps, 0),
                &perturb(&case.old_logps, 1),
                &perturb(&case.ref_logps, 2),
            );
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let same = clean.0 == dirty.0
                && bits(&clean.1) == bits(&dirty.1)
                && bits(&clean.2) == bits(&dirty.2);
            let masked_gradient_zero = dirty.2.iter().zip(&case.mask).all(|(&g, &m)| m || g == 0.0);
            if !(same && masked_gradient_zero && dirty.2.iter().all(|g| g.is_finite())) {
                println!(
                    "conformance grpo/{file_name}#{i} FAILED: mask-0 entries changed the {loss_type} \
                     loss, metrics or gradient (clean {:?}, perturbed {:?})",
                    clean.0, dirty.0
                );
                all_ok = false;
            }
        }
    }
    all_ok
}

/// One `losses` entry with its file's inputs.
struct Case {
    config: GrpoConfig,
    num_generations: usize,
    dims: [usize; 2],
    rewards: Vec<f32>,
    scale_for_loss: ScaleRewards,
    new_logps: Vec<f32>,
    old_logps: Vec<f32>,
    ref_logps: Vec<f32>,
    mask: Vec<bool>,
    num_items_in_batch: usize,
}

impl Case {
    fn read(json: &Value, entry: &Value) -> Self {
        let inputs = &json["inputs"];
        let number =
            |v: &Value, what: &str| v.as_f64().unwrap_or_else(|| panic!("`{what}` is a number"));
        let num_generations = number(&json["num_generations"], "num_generations") as usize;
        let num_items = number(&json["num_items_in_batch"], "num_items_in_batch");
        assert!(
            num_items.fract() == 0.0 && num_items >= 1.0,
            "num_items_in_batch {num_items}"
        );
        let config = GrpoConfig::new()
            .with_num_generations(num_generations)
            .with_max_completion_length(number(
                &json["max_completion_length"],
                "max_completion_length",
            ) as usize)
            .with_epsilon(number(&json["epsilon_low"], "epsilon_low"))
            .with_epsilon_high(Some(number(&json["epsilon_high"], "epsilon_high")))
            .with_beta(number(&entry["beta"], "beta"))
            .with_use_bias_correction_kl(
                entry["use_bias_correction_kl"]
                    .as_bool()
                    .expect("`use_bias_correction_kl` is a bool"),
            );
        let scale_for_loss = json["advantages_used_for_loss"]
            .as_str()
            .expect("`advantages_used_for_loss` is a string")
            .parse()
            .expect("a scale_rewards name");
        Self {
            config,
            num_generations,
            dims: dims2(&inputs["new_logps"]),
            rewards: flat_f32(&inputs["rewards"]),
            scale_for_loss,
            new_logps: flat_f32(&inputs["new_logps"]),
            old_logps: flat_f32(&inputs["old_logps"]),
            ref_logps: flat_f32(&inputs["ref_logps"]),
            mask: flat(&inputs["completion_mask"])
                .iter()
                .map(|&m| m != 0.0)
                .collect(),
            num_items_in_batch: num_items as usize,
        }
    }

    fn advantages(&self) -> Vec<f32> {
        group_advantages(&self.rewards, self.num_generations, self.scale_for_loss)
            .expect("fixture rewards are valid")
            .advantages
    }

    fn inputs(
        &self,
        device: &Device,
        new: &[f32],
        old: &[f32],
        reference: &[f32],
    ) -> GrpoLossInputs {
        let tensor = |values: &[f32]| {
            Tensor::<2>::from_data(TensorData::new(values.to_vec(), self.dims), device)
        };
        let advantages = self.advantages();
        GrpoLossInputs {
            log_probs: tensor(new),
            old_log_probs: tensor(old),
            ref_log_probs: Some(tensor(reference)),
            advantages: Tensor::<1>::from_data(
                TensorData::new(advantages.clone(), [advantages.len()]),
                device,
            ),
            completion_mask: Tensor::<2, Bool>::from_data(
                TensorData::new(self.mask.clone(), self.dims),
                device,
            ),
            num_items_in_batch: Some(self.num_items_in_batch),
        }
    }

    /// The loss value, the metrics flattened, and the gradient w.r.t. the new log-probs.
    fn loss_with_gradient(
        &self,
        config: &GrpoConfig,
        new: &[f32],
        old: &[f32],
        reference: &[f32],
    ) -> (f32, Vec<f32>, Vec<f32>) {
        let device = default_device().autodiff();
        let mut inputs = self.inputs(&device, new, old, reference);
        let leaf = inputs.log_probs.clone().require_grad();
        inputs.log_probs = leaf.clone();
        let out = grpo_loss(config, inputs).expect("the loss of fixture inputs");
        let grads = out.loss.backward();
        let gradient = host(leaf.grad(&grads).expect("the log-probs get a gradient"));
        let m = out.metrics;
        let metrics = vec![
            m.loss,
            m.kl.unwrap_or(f32::NAN),
            m.clip_ratio_low_mean,
            m.clip_ratio_low_min,
            m.clip_ratio_high_mean,
            m.clip_ratio_high_max,
            m.clip_ratio_region_mean,
            m.num_tokens as f32,
        ];
        let mut per_token = host(out.per_token_loss);
        per_token.extend(metrics);
        (m.loss, per_token, gradient)
    }
}

fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("f32 data")
}

fn run(json: &Value, entry: &Value, cmp: &mut Comparison) {
    let case = Case::read(json, entry);

    for scale in ScaleRewards::ALL {
        let out = match group_advantages(&case.rewards, case.num_generations, scale) {
            Ok(out) => out,
            Err(e) => return cmp.fail(format!("advantages.{scale}: {e}")),
        };
        cmp.close(
            &format!("advantages.{scale}"),
            &out.advantages,
            &flat(&json["advantages"][scale.name()]),
            TOL_PER_TOKEN,
            0.0,
        );
        let std = &json["std_rewards"][scale.name()];
        cmp.close(
            &format!("std_rewards.{scale}"),
            &out.std_rewards,
            &flat(&std["std_rewards"]),
            TOL_PER_TOKEN,
            0.0,
        );
        let is_std_zero: Vec<bool> = flat(&std["is_std_zero"])
            .iter()
            .map(|&z| z != 0.0)
            .collect();
        cmp.exact(
            &format!("is_std_zero.{scale}"),
            &out.is_std_zero,
            &is_std_zero,
        );
    }

    let device = default_device();
    let expected_losses = &entry["loss"];
    let mut compared_losses = 0;
    for loss_type in LossType::ALL {
        let config = case.config.clone().with_loss_type(loss_type);
        let inputs = case.inputs(&device, &case.new_logps, &case.old_logps, &case.ref_logps);
        let out = match grpo_loss(&config, inputs) {
            Ok(out) => out,
            Err(e) => return cmp.fail(format!("loss {loss_type}: {e}")),
        };
        if let Some(expected) = expected_losses.get(loss_type.name()) {
            compared_losses += 1;
            cmp.close(
                &format!("loss.{loss_type}"),
                &host(out.loss.clone()),
                &[expected.as_f64().expect("a loss value")],
                TOL_SCALAR,
                0.0,
            );
        }
        if loss_type == LossType::Grpo {
            compare_per_token(&case, json, entry, &out, cmp);
            compare_metrics(entry, &out, cmp);
        }
    }
    if compared_losses != LossType::ALL.len() {
        cmp.fail(format!(
            "`loss` has {compared_losses} of the four aggregations"
        ));
    }
}

fn compare_per_token(
    case: &Case,
    json: &Value,
    entry: &Value,
    out: &GrpoLossOutput,
    cmp: &mut Comparison,
) {
    let at_mask = |values: Vec<f32>| -> Vec<f32> {
        values
            .into_iter()
            .zip(&case.mask)
            .filter(|(_, m)| **m)
            .map(|(v, _)| v)
            .collect()
    };
    let at_mask_f64 = |values: Vec<f64>| -> Vec<f64> {
        values
            .into_iter()
            .zip(&case.mask)
            .filter(|(_, m)| **m)
            .map(|(v, _)| v)
            .collect()
    };
    let per_token = &json["per_token"];
    let coef_1 = flat(&per_token["coef_1"]);
    // The fixture's per_token_kl is k3 without the correction; TRL's loss multiplies it by coef_1.
    let mut expected_kl = flat(&per_token["per_token_kl"]);
    if case.config.use_bias_correction_kl {
        expected_kl
            .iter_mut()
            .zip(&coef_1)
            .for_each(|(kl, r)| *kl *= r);
    }
    let Some(kl) = out.per_token_kl.clone() else {
        return cmp.fail("per_token_kl missing although ref log-probs were given".into());
    };
    for (name, actual, expected) in [
        ("coef_1", out.ratio.clone(), coef_1.clone()),
        (
            "coef_2",
            out.clipped_ratio.clone(),
            flat(&per_token["coef_2"]),
        ),
        ("per_token_kl", kl, expected_kl),
        (
            "clip_term",
            out.clip_term.clone(),
            flat(&per_token["clip_term"]),
        ),
        (
            "per_token_loss",
            out.per_token_loss.clone(),
            flat(&entry["per_token_loss"]),
        ),
    ] {
        cmp.close(
            name,
            &at_mask(host(actual)),
            &at_mask_f64(expected),
            TOL_PER_TOKEN,
            0.0,
        );
    }
    let padding_values: Vec<f32> = host(out.per_token_loss.clone())
        .into_iter()
        .chain(host(out.clip_term.clone()))
        .zip(case.mask.iter().chain(&case.mask))
        .filter(|(_, m)| !**m)
        .map(|(v, _)| v)
        .collect();
    cmp.exact(
        "per_token_loss and clip_term under mask 0",
        &padding_values,
        &vec![0.0; padding_values.len()],
    );
}

fn compare_metrics(entry: &Value, out: &GrpoLossOutput, cmp: &mut Comparison) {
    let logged = entry["trl_logged_metrics"]
        .as_object()
        .expect("`trl_logged_metrics` is an object");
    let m = &out.metrics;
    for (key, value) in logged {
        let actual = match key.as_str() {
            "kl" => m.kl.unwrap_or(f32::NAN),
            "clip_ratio/low_mean" => m.clip_ratio_low_mean,
            "clip_ratio/low_min" => m.clip_ratio_low_min,
            "clip_ratio/high_mean" => m.clip_ratio_high_mean,
            "clip_ratio/high_max" => m.clip_ratio_high_max,
            "clip_ratio/region_mean" => m.clip_ratio_region_mean,
            other => return cmp.fail(format!("unknown logged metric `{other}`")),
        };
        cmp.close(
            key,
            &[actual],
            &[value.as_f64().expect("a metric value")],
            TOL_SCALAR,
            0.0,
        );
    }
}
