//! Running statistics for observation normalization and reward scaling, as Stable-Baselines3's
//! `VecNormalize`: a parallel-update mean/variance (Chan et al.), observations clipped to ±10
//! after normalization, rewards divided by the running standard deviation of the discounted
//! return without subtracting a mean.

use serde::{Deserialize, Serialize};

/// Running mean and variance of `dim` features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunningMeanStd {
    /// Per-feature mean.
    pub mean: Vec<f64>,
    /// Per-feature (population) variance.
    pub var: Vec<f64>,
    /// Number of samples seen (starts at a tiny ε, as SB3).
    pub count: f64,
}

impl RunningMeanStd {
    /// Zero mean, unit variance, count ε.
    pub fn new(dim: usize) -> Self {
        Self {
            mean: vec![0.0; dim],
            var: vec![1.0; dim],
            count: 1e-4,
        }
    }

    /// Folds in a batch of `rows` samples (row-major `[rows, dim]`).
    pub fn update(&mut self, batch: &[f32]) {
        let dim = self.mean.len();
        if dim == 0 || batch.is_empty() {
            return;
        }
        let rows = batch.len() / dim;
        let n = rows as f64;
        let mut batch_mean = vec![0.0f64; dim];
        for row in batch.chunks(dim) {
            batch_mean
                .iter_mut()
                .zip(row)
                .for_each(|(m, &x)| *m += x as f64);
        }
        batch_mean.iter_mut().for_each(|m| *m /= n);
        let mut batch_var = vec![0.0f64; dim];
        for row in batch.chunks(dim) {
            batch_var
                .iter_mut()
                .zip(row)
                .zip(&batch_mean)
                .for_each(|((v, &x), m)| *v += (x as f64 - m).powi(2));
        }
        batch_var.iter_mut().for_each(|v| *v /= n);
        let total = self.count + n;
        for i in 0..dim {
            let delta = batch_mean[i] - self.mean[i];
            let m2 = self.var[i] * self.count
                + batch_var[i] * n
                + delta * delta * self.count * n / total;
            self.mean[i] += delta * n / total;
            self.var[i] = m2 / total;
        }
        self.count = total;
    }

    /// `clip((x − mean) / sqrt(var + 1e-8), ±clip)` in place (row-major `[rows, dim]`).
    pub fn normalize(&self, values: &mut [f32], clip: f32) {
        let dim = self.mean.len();
        if dim == 0 {
            return;
        }
        for row in values.chunks_mut(dim) {
            for ((x, m), v) in row.iter_mut().zip(&self.mean).zip(&self.var) {
                *x = (((*x as f64 - m) / (v + 1e-8).sqrt()) as f32).clamp(-clip, clip);
            }
        }
    }
}

/// Reward scaling by the running standard deviation of each env's discounted return.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RewardScaler {
    /// Statistics of the discounted returns.
    pub returns: RunningMeanStd,
    /// Each env's running discounted return.
    pub running: Vec<f64>,
    /// Discount of the running return.
    pub gamma: f64,
}

impl RewardScaler {
    /// A scaler for `num_envs` envs.
    pub fn new(num_envs: usize, gamma: f32) -> Self {
        Self {
            returns: RunningMeanStd::new(1),
            running: vec![0.0; num_envs],
            gamma: gamma as f64,
        }
    }

    /// Updates the statistics with this step's rewards and scales them in place, clipped to ±10;
    /// `done[e]` resets env `e`'s running return after the step.
    pub fn scale(&mut self, rewards: &mut [f32], done: &[bool]) {
        let returns: Vec<f32> = self
            .running
            .iter_mut()
            .zip(rewards.iter())
            .map(|(ret, &r)| {
                *ret = *ret * self.gamma + r as f64;
                *ret as f32
            })
            .collect();
        self.returns.update(&returns);
        let std = (self.returns.var[0] + 1e-8).sqrt();
        for r in rewards.iter_mut() {
            *r = ((*r as f64 / std) as f32).clamp(-10.0, 10.0);
        }
        for (ret, &d) in self.running.iter_mut().zip(done) {
            if d {
                *ret = 0.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_statistics_match_the_batch_statistics() {
        let data: Vec<f32> = (0..200)
            .map(|i| ((i * 37) % 23) as f32 * 0.5 - 3.0)
            .collect();
        let mut rms = RunningMeanStd::new(2);
        for chunk in data.chunks(20) {
            rms.update(chunk);
        }
        for d in 0..2 {
            let column: Vec<f64> = data.iter().skip(d).step_by(2).map(|&x| x as f64).collect();
            let mean = column.iter().sum::<f64>() / column.len() as f64;
            let var = column.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / column.len() as f64;
            assert!((rms.mean[d] - mean).abs() < 1e-4, "mean {d}");
            assert!((rms.var[d] - var).abs() < 1e-3 * var.max(1.0), "var {d}");
        }
        let mut x = vec![1000.0, -1000.0];
        rms.normalize(&mut x, 10.0);
        assert_eq!(x, vec![10.0, -10.0]);
    }

    #[test]
    fn reward_scaling_divides_by_return_std_without_centering() {
        let mut scaler = RewardScaler::new(1, 0.0);
        // With γ = 0 the "returns" are the rewards themselves.
        for _ in 0..1000 {
            scaler.scale(&mut [4.0], &[false]);
            scaler.scale(&mut [6.0], &[false]);
        }
        let mut r = [5.0];
        scaler.scale(&mut r, &[true]);
        // std of {4, 6} is 1: a reward of 5 stays 5 (no mean subtraction).
        assert!((r[0] - 5.0).abs() < 0.05, "{}", r[0]);
    }
}
