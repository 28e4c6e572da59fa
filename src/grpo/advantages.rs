//! Group-relative advantages (Shao et al., "DeepSeekMath", 2024, §4.1.2), with TRL's
//! `scale_rewards` options.

use crate::error::{Error, Result};

use super::config::ScaleRewards;

/// Added to the standard deviation before dividing (TRL's constant).
pub const STD_EPSILON: f64 = 1e-4;

/// The advantages of a batch of groups, and the standard deviations TRL logs with them.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupAdvantages {
    /// One advantage per completion, broadcast to all of its steps by the loss.
    pub advantages: Vec<f32>,
    /// The standard deviation each completion's advantage was (or, for `none`, would have been)
    /// divided by: the group's for `group` and `none`, the batch's for `batch`.
    pub std_rewards: Vec<f32>,
    /// Whether that standard deviation is zero (TRL: `isclose(std, 0)`), i.e. the group gives
    /// no learning signal.
    pub is_std_zero: Vec<bool>,
}

/// Computes `A = r − mean(group)`, divided by `std + 1e-4` unless `scale` is
/// [`ScaleRewards::None`]. Groups are contiguous runs of `num_generations` rewards.
///
/// The standard deviation is Bessel-corrected (n − 1, as `torch.std`); where it is undefined (a
/// single value) it is 0, so the advantage is 0. Sums run in `f64`: `n` equal `f32` rewards then
/// have a mean exactly equal to them, so an all-equal group gets advantages of exactly 0 (also for
/// rewards such as 0.1 that are not exact in binary).
///
/// # Shapes
/// - `rewards`: `[num_groups · num_generations]`, group-major
/// - output vectors: the same length
///
/// # Errors
/// [`Error::Invalid`] when `num_generations` is 0 or does not divide the number of rewards;
/// [`Error::NonFinite`] naming the first non-finite reward.
pub fn group_advantages(
    rewards: &[f32],
    num_generations: usize,
    scale: ScaleRewards,
) -> Result<GroupAdvantages> {
    if num_generations == 0 || !rewards.len().is_multiple_of(num_generations) {
        return Err(Error::invalid(
            "num_generations",
            format!(
                "{num_generations} does not divide the {} rewards into whole groups",
                rewards.len()
            ),
        ));
    }
    if let Some(row) = rewards.iter().position(|r| !r.is_finite()) {
        return Err(Error::NonFinite {
            name: "rewards".into(),
            row,
        });
    }
    let rewards: Vec<f64> = rewards.iter().map(|&r| f64::from(r)).collect();
    let batch_std = bessel_std(&rewards);
    let mut out = GroupAdvantages {
        advantages: Vec::with_capacity(rewards.len()),
        std_rewards: Vec::with_capacity(rewards.len()),
        is_std_zero: Vec::with_capacity(rewards.len()),
    };
    for group in rewards.chunks(num_generations) {
        let group_mean = mean(group);
        let std = match scale {
            ScaleRewards::Group | ScaleRewards::None => bessel_std(group),
            ScaleRewards::Batch => batch_std,
        };
        for &reward in group {
            let centered = reward - group_mean;
            let advantage = match scale {
                ScaleRewards::None => centered,
                ScaleRewards::Group | ScaleRewards::Batch => centered / (std + STD_EPSILON),
            };
            out.advantages.push(advantage as f32);
            out.std_rewards.push(std as f32);
            // torch.isclose(std, 0) with its default tolerances.
            out.is_std_zero.push(std.abs() <= 1e-8);
        }
    }
    Ok(out)
}

fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Bessel-corrected standard deviation; 0 (TRL's NaN → 0) for fewer than two values.
fn bessel_std(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mean = mean(values);
    let sum_sq: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (sum_sq / (values.len() - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_all_equal_group_gets_exactly_zero() {
        // 0.1, 0.3 and 1/3 are not exact in binary; their f32 sums are not n·x.
        for value in [0.1f32, 0.3, 1.0 / 3.0, 1.0, -7.25, 1e-7] {
            for num_generations in [2, 3, 4, 7, 8, 16] {
                // A second, varied group gives the batch a non-zero std.
                let mut rewards = vec![value; num_generations];
                rewards.extend((0..num_generations).map(|i| i as f32));
                for scale in ScaleRewards::ALL {
                    let out = group_advantages(&rewards, num_generations, scale).unwrap();
                    assert!(
                        out.advantages[..num_generations].iter().all(|&a| a == 0.0),
                        "{value} × {num_generations}, {scale}: {:?}",
                        out.advantages
                    );
                    assert!(out.advantages.iter().all(|a| a.is_finite()));
                    if scale != ScaleRewards::Batch {
                        assert!(out.is_std_zero[..num_generations].iter().all(|&z| z));
                    }
                }
            }
        }
    }

    #[test]
    fn closed_form_small_group() {
        // Groups [1, 3] (mean 2, Bessel std √2) and [5, 5] (std 0).
        let rewards = [1.0, 3.0, 5.0, 5.0];
        let none = group_advantages(&rewards, 2, ScaleRewards::None).unwrap();
        assert_eq!(none.advantages, vec![-1.0, 1.0, 0.0, 0.0]);
        let group = group_advantages(&rewards, 2, ScaleRewards::Group).unwrap();
        let expected = (1.0 / (2f64.sqrt() + 1e-4)) as f32;
        assert_eq!(group.advantages, vec![-expected, expected, 0.0, 0.0]);
        assert_eq!(group.is_std_zero, vec![false, false, true, true]);
        let batch = group_advantages(&rewards, 2, ScaleRewards::Batch).unwrap();
        // Batch mean 3.5, squared deviations 6.25 + 0.25 + 2.25 + 2.25 = 11, /3.
        let batch_std = (11.0f64 / 3.0).sqrt();
        let expected = (1.0 / (batch_std + 1e-4)) as f32;
        assert_eq!(batch.advantages, vec![-expected, expected, 0.0, 0.0]);
        assert_eq!(batch.std_rewards, vec![batch_std as f32; 4]);
    }

    #[test]
    fn a_single_completion_group_has_zero_advantage_not_nan() {
        for scale in ScaleRewards::ALL {
            let out = group_advantages(&[0.7, -2.0], 1, scale).unwrap();
            assert_eq!(out.advantages, vec![0.0, 0.0], "{scale}");
        }
        let out = group_advantages(&[0.7], 1, ScaleRewards::Batch).unwrap();
        assert_eq!(out.advantages, vec![0.0]);
    }

    #[test]
    fn bad_input_is_named() {
        assert!(matches!(
            group_advantages(&[1.0, 2.0, 3.0], 2, ScaleRewards::Group),
            Err(Error::Invalid { name, .. }) if name == "num_generations"
        ));
        assert!(matches!(
            group_advantages(&[1.0, 2.0], 0, ScaleRewards::Group),
            Err(Error::Invalid { .. })
        ));
        assert!(matches!(
            group_advantages(&[1.0, f32::NAN], 2, ScaleRewards::Group),
            Err(Error::NonFinite { name, row: 1 }) if name == "rewards"
        ));
    }
}
