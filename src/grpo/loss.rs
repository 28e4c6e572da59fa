//! The GRPO loss over per-step log-probs: clipped importance ratios (Schulman et al., PPO, 2017),
//! the k3 KL estimate to a reference policy (Schulman, "Approximating KL divergence", 2020) with
//! optional importance-ratio bias correction, and TRL's four aggregations (`grpo`, `bnpo`,
//! `dr_grpo`, `dapo`). See `docs/grpo.md`.
//!
//! Entries under mask 0 never reach the arithmetic: they are replaced by 0 with a select before
//! anything is computed, so arbitrary values there — including ±∞ and NaN — change neither the
//! loss, nor the gradients, nor the metrics.

use burn::tensor::{Bool, Tensor};

use crate::error::{Error, Result};

use super::config::{GrpoConfig, LossType};

/// What the loss is computed from. A "completion" is one rollout (a row); its "tokens" are the
/// steps (columns), right-padded.
#[derive(Debug, Clone)]
pub struct GrpoLossInputs {
    /// Log-probs of the taken actions under the policy being trained; carries the gradient.
    pub log_probs: Tensor<2>,
    /// Log-probs of the same actions recorded at collection (π_old); data, no gradient.
    pub old_log_probs: Tensor<2>,
    /// Log-probs under the frozen reference policy; data. Required when `beta > 0`; when given
    /// with `beta = 0` the KL is still computed for the metrics.
    pub ref_log_probs: Option<Tensor<2>>,
    /// One advantage per completion (see [`group_advantages`](super::group_advantages)).
    pub advantages: Tensor<1>,
    /// `true` where a step exists; padding is `false`.
    pub completion_mask: Tensor<2, Bool>,
    /// The `dapo` normalizer: unmasked steps in the whole global batch (TRL's
    /// `num_items_in_batch`); `None` uses this batch's count.
    pub num_items_in_batch: Option<usize>,
}

/// The loss and what it was made of. Per-step tensors have the inputs' `[num_completions,
/// num_steps]` shape; under mask 0 they hold the values of equal log-probs (ratio 1, KL 0) and
/// `clip_term` and `per_token_loss` are 0.
#[derive(Debug, Clone)]
pub struct GrpoLossOutput {
    /// The aggregated loss, shape `[1]`, differentiable w.r.t. `log_probs`.
    pub loss: Tensor<1>,
    /// `clip_term + beta · per_token_kl`.
    pub per_token_loss: Tensor<2>,
    /// The importance ratio `exp(log_probs − old_log_probs)` (TRL's `coef_1`).
    pub ratio: Tensor<2>,
    /// The ratio clamped to `[1 − ε_low, 1 + ε_high]` (TRL's `coef_2`).
    pub clipped_ratio: Tensor<2>,
    /// `k3 = exp(ref − new) − (ref − new) − 1`, times the ratio when
    /// `use_bias_correction_kl`; `None` without reference log-probs.
    pub per_token_kl: Option<Tensor<2>>,
    /// `−min(ratio · A, clipped_ratio · A)`.
    pub clip_term: Tensor<2>,
    /// Host copies of the logged statistics.
    pub metrics: GrpoMetrics,
}

/// TRL's logged statistics of one loss computation. Means are over the unmasked steps of the
/// batch; the min/max are over completions (each completion's fraction of its own unmasked
/// steps, completions without steps left out), as TRL's gathered min/max.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GrpoMetrics {
    /// The loss value.
    pub loss: f32,
    /// Mean KL estimate (as used in the loss); `None` without reference log-probs.
    pub kl: Option<f32>,
    /// Fraction of steps clipped at the low end: ratio < 1 − ε_low with A < 0.
    pub clip_ratio_low_mean: f32,
    /// Smallest per-completion fraction of low-clipped steps.
    pub clip_ratio_low_min: f32,
    /// Fraction of steps clipped at the high end: ratio > 1 + ε_high with A > 0.
    pub clip_ratio_high_mean: f32,
    /// Largest per-completion fraction of high-clipped steps.
    pub clip_ratio_high_max: f32,
    /// Fraction of steps clipped at either end.
    pub clip_ratio_region_mean: f32,
    /// Number of unmasked steps.
    pub num_tokens: usize,
}

/// Computes the GRPO loss of `config.loss_type` and its per-step parts (TRL's `_compute_loss`
/// with token-level importance sampling).
///
/// # Shapes
/// - `log_probs`, `old_log_probs`, `ref_log_probs`, `completion_mask`:
///   `[num_completions, num_steps]`
/// - `advantages`: `[num_completions]`
/// - output `loss`: `[1]`; per-step outputs `[num_completions, num_steps]`
///
/// # Errors
/// [`Error::ShapeMismatch`] naming the input whose shape differs; [`Error::Invalid`] when
/// `num_steps` exceeds `max_completion_length`, when `beta > 0` without `ref_log_probs`, when
/// `num_items_in_batch` is 0 or when the config is invalid; [`Error::NonFinite`] when the loss is
/// not finite (non-finite log-probs or advantages at unmasked steps).
pub fn grpo_loss(config: &GrpoConfig, inputs: GrpoLossInputs) -> Result<GrpoLossOutput> {
    config.validate()?;
    let GrpoLossInputs {
        log_probs,
        old_log_probs,
        ref_log_probs,
        advantages,
        completion_mask,
        num_items_in_batch,
    } = inputs;
    let dims = log_probs.dims();
    let [num_completions, num_steps] = dims;
    check_dims("old_log_probs", &old_log_probs.dims(), &dims)?;
    check_dims("completion_mask", &completion_mask.dims(), &dims)?;
    check_dims("advantages", &advantages.dims(), &[num_completions])?;
    if let Some(ref_log_probs) = &ref_log_probs {
        check_dims("ref_log_probs", &ref_log_probs.dims(), &dims)?;
    }
    if num_steps > config.max_completion_length {
        return Err(Error::invalid(
            "max_completion_length",
            format!(
                "the batch has {num_steps} steps per completion, more than max_completion_length {}",
                config.max_completion_length
            ),
        ));
    }
    if config.beta != 0.0 && ref_log_probs.is_none() {
        return Err(Error::invalid(
            "ref_log_probs",
            format!(
                "beta = {} needs the reference policy's log-probs",
                config.beta
            ),
        ));
    }
    if num_items_in_batch == Some(0) {
        return Err(Error::invalid(
            "num_items_in_batch",
            "must be at least 1 (it divides the dapo loss)",
        ));
    }

    let padding = completion_mask.clone().bool_not();
    let (clip_low, clip_high) = config.clip_range();
    let log_probs = log_probs.mask_fill(padding.clone(), 0.0);
    let old_log_probs = old_log_probs.mask_fill(padding.clone(), 0.0);
    let advantages = advantages
        .unsqueeze_dim::<2>(1)
        .expand([num_completions, num_steps]);

    let ratio = (log_probs.clone() - old_log_probs).exp();
    let clipped_ratio = ratio.clone().clamp(clip_low, clip_high);
    let clip_term = (ratio.clone() * advantages.clone())
        .min_pair(clipped_ratio.clone() * advantages.clone())
        .neg()
        .mask_fill(padding.clone(), 0.0);
    let per_token_kl = ref_log_probs.map(|ref_log_probs| {
        let ref_minus_new = ref_log_probs.mask_fill(padding.clone(), 0.0) - log_probs;
        let k3 = ref_minus_new.clone().exp() - ref_minus_new - 1.0;
        if config.use_bias_correction_kl {
            k3 * ratio.clone()
        } else {
            k3
        }
    });
    let per_token_loss = match &per_token_kl {
        // Both terms are exactly 0 under mask 0 (k3 of equal log-probs is 0).
        Some(kl) if config.beta != 0.0 => {
            clip_term.clone() + kl.clone().mul_scalar(config.beta as f32)
        }
        _ => clip_term.clone(),
    };

    let mask = completion_mask.float();
    let loss = aggregate(
        config.loss_type,
        per_token_loss.clone(),
        mask.clone(),
        config.max_completion_length,
        num_items_in_batch,
    );
    let metrics = metrics(
        &loss,
        &ratio,
        per_token_kl.as_ref(),
        &advantages,
        &mask,
        (clip_low, clip_high),
    )?;
    Ok(GrpoLossOutput {
        loss,
        per_token_loss,
        ratio,
        clipped_ratio,
        per_token_kl,
        clip_term,
        metrics,
    })
}

/// Aggregates a per-step loss that is already 0 under mask 0.
fn aggregate(
    loss_type: LossType,
    per_token_loss: Tensor<2>,
    mask: Tensor<2>,
    max_completion_length: usize,
    num_items_in_batch: Option<usize>,
) -> Tensor<1> {
    let [num_completions, _] = per_token_loss.dims();
    match loss_type {
        LossType::Grpo => {
            let per_completion = per_token_loss.sum_dim(1) / mask.sum_dim(1).clamp_min(1.0);
            per_completion.mean()
        }
        LossType::Bnpo => per_token_loss.sum() / mask.sum().clamp_min(1.0),
        LossType::DrGrpo => per_token_loss
            .sum()
            .div_scalar((num_completions * max_completion_length) as f32),
        LossType::Dapo => match num_items_in_batch {
            Some(count) => per_token_loss.sum().div_scalar(count as f32),
            None => per_token_loss.sum() / mask.sum().clamp_min(1.0),
        },
    }
}

/// Reads the loss and the per-completion clip/KL sums back and reduces them on the host.
fn metrics(
    loss: &Tensor<1>,
    ratio: &Tensor<2>,
    per_token_kl: Option<&Tensor<2>>,
    advantages: &Tensor<2>,
    mask: &Tensor<2>,
    (clip_low, clip_high): (f32, f32),
) -> Result<GrpoMetrics> {
    let ratio = ratio.clone().detach();
    let advantages = advantages.clone().detach();
    let low_clipped = ratio
        .clone()
        .lower_elem(clip_low)
        .float()
        .mul(advantages.clone().lower_elem(0.0).float())
        .mul(mask.clone());
    let high_clipped = ratio
        .greater_elem(clip_high)
        .float()
        .mul(advantages.greater_elem(0.0).float())
        .mul(mask.clone());
    let mut columns = vec![
        mask.clone().sum_dim(1),
        low_clipped.sum_dim(1),
        high_clipped.sum_dim(1),
    ];
    if let Some(kl) = per_token_kl {
        columns.push(kl.clone().detach().sum_dim(1));
    }
    let width = columns.len();
    let per_completion = Tensor::cat(columns, 1);
    let values = read_f32(per_completion)?;
    let loss_value = read_f32(loss.clone().detach())?[0];
    if !loss_value.is_finite() {
        return Err(Error::NonFinite {
            name: "grpo loss (non-finite log-probs or advantages at unmasked steps)".into(),
            row: 0,
        });
    }

    let rows: Vec<&[f32]> = values.chunks(width).collect();
    let num_tokens: f32 = rows.iter().map(|r| r[0]).sum();
    let batch_mean =
        |column: usize| rows.iter().map(|r| r[column]).sum::<f32>() / num_tokens.max(1.0);
    let per_completion_fractions = |column: usize| {
        rows.iter()
            .filter(|r| r[0] > 0.0)
            .map(move |r| r[column] / r[0])
    };
    let low_sum: f32 = rows.iter().map(|r| r[1]).sum();
    let high_sum: f32 = rows.iter().map(|r| r[2]).sum();
    Ok(GrpoMetrics {
        loss: loss_value,
        kl: (width == 4).then(|| batch_mean(3)),
        clip_ratio_low_mean: batch_mean(1),
        clip_ratio_low_min: per_completion_fractions(1).reduce(f32::min).unwrap_or(0.0),
        clip_ratio_high_mean: batch_mean(2),
        clip_ratio_high_max: per_completion_fractions(2).reduce(f32::max).unwrap_or(0.0),
        // Low and high clipping exclude each other (opposite advantage signs).
        clip_ratio_region_mean: (low_sum + high_sum) / num_tokens.max(1.0),
        num_tokens: num_tokens as usize,
    })
}

fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .map_err(|e| Error::invalid("grpo loss tensor", format!("cannot read back: {e:?}")))
}

fn check_dims(name: &str, found: &[usize], expected: &[usize]) -> Result<()> {
    if found == expected {
        Ok(())
    } else {
        Err(Error::ShapeMismatch {
            name: name.into(),
            expected: expected.to_vec(),
            found: found.to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::module::Module;
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::GradientsParams;
    use burn::tensor::activation::log_softmax;
    use burn::tensor::{Device, Int, TensorData};
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::backend::default_device;
    use crate::grpo::{ScaleRewards, group_advantages};

    fn tensor2(values: Vec<f32>, dims: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(values, dims), device)
    }

    fn tensor1(values: Vec<f32>, device: &Device) -> Tensor<1> {
        let len = values.len();
        Tensor::from_data(TensorData::new(values, [len]), device)
    }

    fn mask_tensor(mask: &[bool], dims: [usize; 2], device: &Device) -> Tensor<2, Bool> {
        Tensor::from_data(TensorData::new(mask.to_vec(), dims), device)
    }

    fn host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
        tensor.into_data().try_into_vec_as::<f32>().unwrap()
    }

    /// A right-padded mask with 1..=num_steps steps per row.
    fn random_mask(rng: &mut StdRng, num_rows: usize, num_steps: usize) -> Vec<bool> {
        (0..num_rows)
            .flat_map(|_| {
                let len = rng.random_range(1..=num_steps);
                (0..num_steps).map(move |t| t < len)
            })
            .collect()
    }

    #[test]
    fn beta_zero_ratio_one_whole_groups_give_a_zero_grpo_loss() {
        let device = default_device();
        let mut rng = StdRng::seed_from_u64(0);
        let (num_generations, num_groups, num_steps) = (4, 3, 5);
        let num_rows = num_generations * num_groups;
        let dims = [num_rows, num_steps];
        for trial in 0..20 {
            let rewards: Vec<f32> = (0..num_rows).map(|_| rng.random_range(-1.0..2.0)).collect();
            let mask = random_mask(&mut rng, num_rows, num_steps);
            let log_probs: Vec<f32> = (0..num_rows * num_steps)
                .map(|_| rng.random_range(-3.0..0.0))
                .collect();
            let lengths_differ = mask.chunks(num_steps).any(|row| row != &mask[..num_steps]);
            for scale in ScaleRewards::ALL {
                let advantages = group_advantages(&rewards, num_generations, scale)
                    .unwrap()
                    .advantages;
                let losses: Vec<f32> = LossType::ALL
                    .iter()
                    .map(|&loss_type| {
                        let config = GrpoConfig::new()
                            .with_num_generations(num_generations)
                            .with_max_completion_length(num_steps)
                            .with_loss_type(loss_type);
                        let inputs = GrpoLossInputs {
                            log_probs: tensor2(log_probs.clone(), dims, &device),
                            old_log_probs: tensor2(log_probs.clone(), dims, &device),
                            ref_log_probs: None,
                            advantages: tensor1(advantages.clone(), &device),
                            completion_mask: mask_tensor(&mask, dims, &device),
                            num_items_in_batch: None,
                        };
                        grpo_loss(&config, inputs).unwrap().metrics.loss
                    })
                    .collect();
                // Per completion the mean step loss is −A; the A of a whole group sum to 0.
                assert!(
                    losses[0].abs() < 1e-6,
                    "trial {trial}, {scale}: grpo loss {}",
                    losses[0]
                );
                // The token-level aggregations weight completions by length: not 0 in general.
                if lengths_differ && scale == ScaleRewards::None {
                    assert!(
                        losses[1].abs() > 1e-6,
                        "trial {trial}: bnpo loss {}",
                        losses[1]
                    );
                }
            }
        }
    }

    /// Log-probs of fixed actions through a small Linear head over fixed features, so that
    /// gradients can be followed to the head's weights.
    struct Head {
        linear: Linear,
        features: Tensor<2>,
        actions: Tensor<2, Int>,
        dims: [usize; 2],
    }

    impl Head {
        fn new(device: &Device, seed: u64) -> Self {
            let mut rng = StdRng::seed_from_u64(seed);
            let (num_rows, num_steps, d_features, num_ops) = (4, 3, 8, 6);
            let features: Vec<f32> = (0..num_rows * num_steps * d_features)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect();
            let actions: Vec<i64> = (0..num_rows * num_steps)
                .map(|_| rng.random_range(0..num_ops as i64))
                .collect();
            Self {
                linear: LinearConfig::new(d_features, num_ops).init(device).train(),
                features: tensor2(features, [num_rows * num_steps, d_features], device),
                actions: Tensor::from_data(
                    TensorData::new(actions, [num_rows * num_steps, 1]),
                    device,
                ),
                dims: [num_rows, num_steps],
            }
        }

        fn log_probs(&self) -> Tensor<2> {
            let logits = self.linear.forward(self.features.clone());
            log_softmax(logits, 1)
                .gather(1, self.actions.clone())
                .reshape(self.dims)
        }
    }

    /// With zero advantages the clip term is constant, so any gradient comes from the KL term.
    fn kl_only_loss(head: &Head, beta: f64, bias_correction: bool, ref_shift: f32) -> Tensor<1> {
        let device = head.features.device();
        let log_probs = head.log_probs();
        let old = log_probs.clone().detach();
        let reference = old.clone().add_scalar(ref_shift);
        let [num_rows, num_steps] = head.dims;
        let mut mask = vec![true; num_rows * num_steps];
        mask[num_steps - 1] = false;
        let config = GrpoConfig::new()
            .with_beta(beta)
            .with_use_bias_correction_kl(bias_correction)
            .with_loss_type(LossType::Grpo);
        let inputs = GrpoLossInputs {
            log_probs,
            old_log_probs: old,
            ref_log_probs: Some(reference),
            advantages: tensor1(vec![0.0; num_rows], &device),
            completion_mask: mask_tensor(&mask, head.dims, &device),
            num_items_in_batch: None,
        };
        grpo_loss(&config, inputs).unwrap().loss
    }

    fn weight_gradient(head: &Head, loss: Tensor<1>) -> Vec<f32> {
        let grads = GradientsParams::from_grads(loss.backward(), &head.linear);
        grads
            .get::<2>(head.linear.weight.id)
            .map(host)
            .expect("the head's weight gets a gradient")
    }

    #[test]
    fn the_kl_term_has_gradient_to_the_head() {
        let device = default_device().autodiff();
        for bias_correction in [false, true] {
            let head = Head::new(&device, 1);
            let gradient = weight_gradient(&head, kl_only_loss(&head, 0.04, bias_correction, 0.3));
            assert!(gradient.iter().all(|g| g.is_finite()));
            let norm: f32 = gradient.iter().map(|g| g * g).sum::<f32>().sqrt();
            assert!(
                norm > 1e-4,
                "bias correction {bias_correction}: gradient norm {norm}"
            );

            // Controls: no KL weight, or a reference equal to the policy, give no gradient.
            let head = Head::new(&device, 1);
            let gradient = weight_gradient(&head, kl_only_loss(&head, 0.0, bias_correction, 0.3));
            assert!(gradient.iter().all(|&g| g == 0.0), "beta 0: {gradient:?}");
            let head = Head::new(&device, 1);
            let gradient = weight_gradient(&head, kl_only_loss(&head, 0.04, bias_correction, 0.0));
            assert!(
                gradient.iter().all(|g| g.abs() < 1e-7),
                "ref = policy: {gradient:?}"
            );
        }
    }

    #[test]
    fn the_kl_gradient_wrt_log_probs_is_its_closed_form() {
        // d/dnew [β·k3(ref − new)] / num_steps = β·(1 − exp(ref − new)) / num_steps (grpo
        // aggregation, one completion, no bias correction, zero advantage).
        let device = default_device().autodiff();
        let new = [-1.0f32, -0.5, -2.0];
        let reference = [-1.5f32, -0.5, -0.2];
        let beta = 0.1;
        let leaf = tensor2(new.to_vec(), [1, 3], &device).require_grad();
        let config = GrpoConfig::new()
            .with_beta(beta)
            .with_use_bias_correction_kl(false)
            .with_loss_type(LossType::Grpo);
        let inputs = GrpoLossInputs {
            log_probs: leaf.clone(),
            old_log_probs: tensor2(new.to_vec(), [1, 3], &device),
            ref_log_probs: Some(tensor2(reference.to_vec(), [1, 3], &device)),
            advantages: tensor1(vec![0.0], &device),
            completion_mask: mask_tensor(&[true; 3], [1, 3], &device),
            num_items_in_batch: None,
        };
        let out = grpo_loss(&config, inputs).unwrap();
        let gradient = host(leaf.grad(&out.loss.backward()).unwrap());
        for t in 0..3 {
            let expected = beta as f32 * (1.0 - (reference[t] - new[t]).exp()) / 3.0;
            assert!(
                (gradient[t] - expected).abs() < 1e-6,
                "step {t}: {} vs {expected}",
                gradient[t]
            );
        }
        assert_eq!(gradient[1], 0.0);
    }

    #[test]
    fn bad_inputs_are_named_errors() {
        let device = default_device();
        let dims = [2, 3];
        let inputs = |old_dims: [usize; 2], num_advantages: usize, with_ref: bool| GrpoLossInputs {
            log_probs: tensor2(vec![0.0; 6], dims, &device),
            old_log_probs: tensor2(vec![0.0; old_dims[0] * old_dims[1]], old_dims, &device),
            ref_log_probs: with_ref.then(|| tensor2(vec![0.0; 6], dims, &device)),
            advantages: tensor1(vec![0.0; num_advantages], &device),
            completion_mask: mask_tensor(&[true; 6], dims, &device),
            num_items_in_batch: None,
        };
        let config = GrpoConfig::new();
        assert!(matches!(
            grpo_loss(&config, inputs([3, 2], 2, false)),
            Err(Error::ShapeMismatch { name, .. }) if name == "old_log_probs"
        ));
        assert!(matches!(
            grpo_loss(&config, inputs(dims, 3, false)),
            Err(Error::ShapeMismatch { name, .. }) if name == "advantages"
        ));
        assert!(matches!(
            grpo_loss(&config.clone().with_beta(0.04), inputs(dims, 2, false)),
            Err(Error::Invalid { name, .. }) if name == "ref_log_probs"
        ));
        assert!(matches!(
            grpo_loss(&config.clone().with_max_completion_length(2), inputs(dims, 2, true)),
            Err(Error::Invalid { name, .. }) if name == "max_completion_length"
        ));
        let mut zero_items = inputs(dims, 2, true);
        zero_items.num_items_in_batch = Some(0);
        assert!(matches!(
            grpo_loss(&config, zero_items),
            Err(Error::Invalid { name, .. }) if name == "num_items_in_batch"
        ));
        let mut nan_advantage = inputs(dims, 2, true);
        nan_advantage.advantages = tensor1(vec![f32::NAN, 0.0], &device);
        assert!(matches!(
            grpo_loss(&config, nan_advantage),
            Err(Error::NonFinite { .. })
        ));
    }
}
