//! Parameter initialization from an explicit RNG.
//!
//! burn's `Initializer::Orthogonal` draws from the device's process-global RNG, which every model
//! and every parallel test share; a model initialized here is reproducible from its own seed.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

/// A `[rows, cols]` (semi-)orthogonal matrix scaled by `gain`, as `torch.nn.init.orthogonal_`:
/// QR of a standard normal matrix with the signs of `R`'s diagonal folded into `Q`.
pub fn orthogonal<R: Rng + ?Sized>(rows: usize, cols: usize, gain: f32, rng: &mut R) -> Vec<f32> {
    // Orthonormalize the columns of a tall [tall, wide] matrix (modified Gram-Schmidt in f64,
    // which gives the same Q as Householder QR with sign(diag R) folded in), then transpose back
    // when the requested matrix is wide.
    let (tall, wide) = if rows >= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    let mut columns: Vec<Vec<f64>> = (0..wide)
        .map(|_| (0..tall).map(|_| StandardNormal.sample(rng)).collect())
        .collect();
    for j in 0..wide {
        let (done, rest) = columns.split_at_mut(j);
        let column = &mut rest[0];
        for previous in done.iter() {
            let dot: f64 = previous.iter().zip(column.iter()).map(|(a, b)| a * b).sum();
            column
                .iter_mut()
                .zip(previous)
                .for_each(|(c, p)| *c -= dot * p);
        }
        let norm = column
            .iter()
            .map(|c| c * c)
            .sum::<f64>()
            .sqrt()
            .max(f64::MIN_POSITIVE);
        column.iter_mut().for_each(|c| *c /= norm);
    }
    let mut out = vec![0.0f32; rows * cols];
    for (j, column) in columns.iter().enumerate() {
        for (i, &v) in column.iter().enumerate() {
            let (r, c) = if rows >= cols { (i, j) } else { (j, i) };
            out[r * cols + c] = (v * gain as f64) as f32;
        }
    }
    out
}

/// `n` draws of `N(mean, std)`.
pub fn normal<R: Rng + ?Sized>(n: usize, mean: f32, std: f32, rng: &mut R) -> Vec<f32> {
    (0..n)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            mean + std * z as f32
        })
        .collect()
}

/// `n` draws of `U(-bound, bound)`.
pub fn uniform<R: Rng + ?Sized>(n: usize, bound: f32, rng: &mut R) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-bound..=bound)).collect()
}

/// A trainable parameter holding `values` with `shape`.
pub fn param<const D: usize>(
    values: Vec<f32>,
    shape: [usize; D],
    device: &Device,
) -> Param<Tensor<D>> {
    Param::from_data(TensorData::new(values, shape), device)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn gram(m: &[f32], rows: usize, cols: usize, by_rows: bool) -> Vec<f64> {
        let n = if by_rows { rows } else { cols };
        let at = |i: usize, k: usize| {
            if by_rows {
                m[i * cols + k]
            } else {
                m[k * cols + i]
            }
        };
        let len = if by_rows { cols } else { rows };
        let mut g = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                g[i * n + j] = (0..len).map(|k| at(i, k) as f64 * at(j, k) as f64).sum();
            }
        }
        g
    }

    #[test]
    fn orthogonal_tall_and_wide_have_orthonormal_short_side() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (rows, cols, by_rows) in [(12, 5, false), (5, 12, true)] {
            let m = orthogonal(rows, cols, 2.0, &mut rng);
            let n = rows.min(cols);
            let g = gram(&m, rows, cols, by_rows);
            for i in 0..n {
                for j in 0..n {
                    let expected = if i == j { 4.0 } else { 0.0 };
                    assert!(
                        (g[i * n + j] - expected).abs() < 1e-4,
                        "{rows}x{cols} [{i},{j}]"
                    );
                }
            }
        }
    }
}
