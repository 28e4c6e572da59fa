//! The factored PPO loss (Schulman et al., "Proximal Policy Optimization Algorithms", 2017) over
//! the heads of a factored action space, with causal relevance (SPEC §6).
//!
//! Per head `h` with relevance weights `w` (1 where the head matters for the stored op):
//!
//! ```text
//! r        = exp(log π_new(a_h) − log π_old(a_h))
//! L_clip_h = Σ w·max(−r·A, −clip(r, 1−ε, 1+ε)·A) / max(Σ w, 1)
//! H_h      = Σ w·Ĥ_h / max(Σ w, 1)                      (Ĥ: normalized entropy)
//! KL_h     = Σ w·((r − 1) − ln r) / rows               (Schulman's k3 estimator)
//! ```
//!
//! `policy_loss = Σ_h L_clip_h`, `entropy = Σ_h c_h·H_h`, `approx_kl = Σ_h KL_h` (the joint KL
//! of the factored policy per step: irrelevant heads contribute 0), value loss
//! `½·mean(max((V − R)², (V_old + clip(V − V_old, −ε_v, ε_v) − R)²))`, and
//! `loss = policy_loss + c_v·value_loss − c_e·entropy`.

use burn::tensor::{Tensor, TensorData};

use crate::error::{Error, Result};
use crate::policy::Evaluation;

/// Coefficients of the PPO loss.
#[derive(Debug, Clone, PartialEq)]
pub struct PpoLossCoefficients {
    /// Surrogate clipping ε.
    pub clip_coef: f32,
    /// Clip the value around the old value with this range (`None`: unclipped value loss).
    pub value_clip: Option<f32>,
    /// Weight of the value loss.
    pub value_coef: f32,
    /// Global weight of the entropy bonus.
    pub entropy_coef: f32,
    /// Per-head weights of the normalized entropy, in head order.
    pub head_entropy_weights: Vec<f32>,
}

/// The stored quantities a minibatch is scored against, host data per row (`rows` entries).
#[derive(Debug, Clone, Copy)]
pub struct PpoTargets<'a> {
    /// Per head, the log-prob stored when acting.
    pub old_log_probs: &'a [Vec<f32>],
    /// Advantages (already normalized if that option is on).
    pub advantages: &'a [f32],
    /// Returns (advantages + values, before normalization).
    pub returns: &'a [f32],
    /// Values stored when acting.
    pub old_values: &'a [f32],
}

/// The loss and what is logged about it.
#[derive(Debug, Clone)]
pub struct PpoLoss {
    /// The scalar to minimize, `[1]`, differentiable.
    pub total: Tensor<1>,
    /// Host statistics of this minibatch.
    pub stats: PpoStats,
}

/// Logged statistics of one minibatch.
#[derive(Debug, Clone, PartialEq)]
pub struct PpoStats {
    /// `Σ_h L_clip_h`.
    pub policy_loss: f32,
    /// The (clipped) value loss.
    pub value_loss: f32,
    /// Per head, the relevance-weighted mean normalized entropy.
    pub entropy_per_head: Vec<f32>,
    /// Per head, the k3 approximate KL summed over relevant rows / rows.
    pub approx_kl_per_head: Vec<f32>,
    /// `Σ_h approx_kl_per_head`.
    pub approx_kl: f32,
    /// Fraction of relevant (head, row) pairs whose ratio was clipped.
    pub clip_fraction: f32,
}

/// Builds the PPO loss of a minibatch from a differentiable [`Evaluation`].
///
/// # Errors
/// [`Error::ShapeMismatch`] / [`Error::WrongLength`] naming the field that does not fit the
/// evaluation's rows and heads.
pub fn ppo_loss(
    eval: &Evaluation,
    targets: &PpoTargets<'_>,
    coefs: &PpoLossCoefficients,
) -> Result<PpoLoss> {
    let num_heads = eval.log_probs.len();
    let rows = eval.values.dims()[0];
    for (name, len) in [
        ("advantages", targets.advantages.len()),
        ("returns", targets.returns.len()),
        ("old_values", targets.old_values.len()),
    ] {
        if len != rows {
            return Err(Error::ShapeMismatch {
                name: name.into(),
                expected: vec![rows],
                found: vec![len],
            });
        }
    }
    for (what, len) in [
        ("old_log_probs (one per head)", targets.old_log_probs.len()),
        (
            "head_entropy_weights (one per head)",
            coefs.head_entropy_weights.len(),
        ),
    ] {
        if len != num_heads {
            return Err(Error::WrongLength {
                what: what.into(),
                expected: num_heads,
                found: len,
            });
        }
    }
    let device = eval.values.device();
    let vector = |values: &[f32]| {
        Tensor::<1>::from_data(TensorData::new(values.to_vec(), [values.len()]), &device)
    };
    let advantages = vector(targets.advantages);
    let eps = coefs.clip_coef;

    let mut policy_loss = Tensor::<1>::zeros([1], &device);
    let mut entropy = Tensor::<1>::zeros([1], &device);
    let mut stats_terms = Vec::with_capacity(3 * num_heads + 2);
    for h in 0..num_heads {
        let old = &targets.old_log_probs[h];
        if old.len() != rows {
            return Err(Error::ShapeMismatch {
                name: format!("old_log_probs[{h}]"),
                expected: vec![rows],
                found: vec![old.len()],
            });
        }
        let weights = &eval.relevance[h];
        let relevant = weights.iter().sum::<f32>().max(1.0);
        let w = vector(weights);
        let log_ratio = eval.log_probs[h].clone() - vector(old);
        let ratio = log_ratio.clone().exp();
        let unclipped = ratio.clone() * advantages.clone();
        let clipped = ratio.clone().clamp(1.0 - eps, 1.0 + eps) * advantages.clone();
        let surrogate = unclipped.min_pair(clipped).neg();
        policy_loss = policy_loss + (surrogate * w.clone()).sum().div_scalar(relevant);
        let head_entropy = (eval.entropies[h].clone() * w.clone())
            .sum()
            .div_scalar(relevant);
        entropy = entropy
            + head_entropy
                .clone()
                .mul_scalar(coefs.head_entropy_weights[h]);

        let ratio = ratio.detach();
        let kl = ((ratio.clone() - 1.0) - log_ratio.detach()) * w.clone();
        let clipped_rows = (ratio - 1.0).abs().greater_elem(eps).float() * w;
        stats_terms.push(head_entropy.detach());
        stats_terms.push(kl.sum().div_scalar(rows as f32));
        stats_terms.push(clipped_rows.sum());
    }

    let returns = vector(targets.returns);
    let values = eval.values.clone();
    let value_error = (values.clone() - returns.clone()).powi_scalar(2);
    let value_loss = match coefs.value_clip {
        Some(range) => {
            let old = vector(targets.old_values);
            let clipped = old.clone() + (values - old).clamp(-range, range);
            value_error.max_pair((clipped - returns).powi_scalar(2))
        }
        None => value_error,
    }
    .mean()
    .mul_scalar(0.5);

    let total = policy_loss.clone() + value_loss.clone().mul_scalar(coefs.value_coef)
        - entropy.mul_scalar(coefs.entropy_coef);
    stats_terms.push(policy_loss.detach());
    stats_terms.push(value_loss.detach());
    let host = Tensor::cat(stats_terms, 0)
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("float stats");
    let relevant_pairs: f32 = eval.relevance.iter().flatten().sum::<f32>().max(1.0);
    let entropy_per_head = (0..num_heads).map(|h| host[3 * h]).collect();
    let approx_kl_per_head: Vec<f32> = (0..num_heads).map(|h| host[3 * h + 1]).collect();
    let clipped: f32 = (0..num_heads).map(|h| host[3 * h + 2]).sum();
    Ok(PpoLoss {
        total,
        stats: PpoStats {
            policy_loss: host[3 * num_heads],
            value_loss: host[3 * num_heads + 1],
            entropy_per_head,
            approx_kl: approx_kl_per_head.iter().sum(),
            approx_kl_per_head,
            clip_fraction: clipped / relevant_pairs,
        },
    })
}

/// Fraction of the variance of `returns` that `values` explain, `1 − Var(R − V) / Var(R)`
/// (NaN-free: 0 when the returns have no variance).
pub fn explained_variance(values: &[f32], returns: &[f32]) -> f32 {
    let n = returns.len().max(1) as f64;
    let mean = |x: &mut dyn Iterator<Item = f64>| x.sum::<f64>() / n;
    let var = |x: &[f64]| {
        let m = mean(&mut x.iter().copied());
        mean(&mut x.iter().map(|v| (v - m) * (v - m)))
    };
    let r: Vec<f64> = returns.iter().map(|&v| v as f64).collect();
    let residual: Vec<f64> = returns
        .iter()
        .zip(values)
        .map(|(&r, &v)| (r - v) as f64)
        .collect();
    let var_r = var(&r);
    if var_r <= f64::EPSILON {
        0.0
    } else {
        (1.0 - var(&residual) / var_r) as f32
    }
}
