//! Parameter initialization from an explicit RNG.
//!
//! burn's `Initializer::Orthogonal` draws from the device's process-global RNG, which every model
//! and every parallel test share; a model initialized here is reproducible from its own seed.

use burn::module::Param;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, RngExt};
use rand_distr::{Distribution, StandardNormal};

/// A `[rows, cols]` (semi-)orthogonal matrix scaled by `gain`, as `torch.nn.init.orthogonal_`:
/// the Q of a QR decomposition of a standard normal matrix, with the signs of `R`'s diagonal folded
/// into `Q` (so the distribution is Haar).
///
/// Gram-Schmidt with the signs taken that way gives exactly that Q. It runs blockwise: the columns of
/// a block are made orthogonal to every earlier block with two projection passes as matmuls on the
/// CPU backend ("twice is enough", CGS2), then to each other on the host. A column-by-column loop on
/// the host took about a second for the reference LSTM's two `[2048, 512]` matrices.
pub fn orthogonal<R: Rng + ?Sized>(rows: usize, cols: usize, gain: f32, rng: &mut R) -> Vec<f32> {
    const BLOCK: usize = 32;
    let (tall, wide) = if rows >= cols {
        (rows, cols)
    } else {
        (cols, rows)
    };
    // Column-major draws of the tall matrix, so that the same RNG stream fills the same columns
    // whatever the block size.
    let columns: Vec<f32> = (0..tall * wide)
        .map(|_| {
            let z: f64 = StandardNormal.sample(rng);
            z as f32
        })
        .collect();
    let device = crate::backend::default_device();
    // q holds the finished columns as rows ([wide, tall]), so each block is a contiguous slice.
    let mut q = vec![0.0f32; wide * tall];
    for start in (0..wide).step_by(BLOCK) {
        let end = (start + BLOCK).min(wide);
        let mut block = columns[start * tall..end * tall].to_vec();
        if start > 0 {
            let done = Tensor::<2>::from_data(
                TensorData::new(q[..start * tall].to_vec(), [start, tall]),
                &device,
            );
            let mut v =
                Tensor::<2>::from_data(TensorData::new(block, [end - start, tall]), &device);
            for _ in 0..2 {
                let coefficients = v.clone().matmul(done.clone().transpose());
                v = v - coefficients.matmul(done.clone());
            }
            block = v.into_data().try_into_vec_as::<f32>().expect("f32 data");
        }
        for j in 0..end - start {
            let (before, rest) = block.split_at_mut(j * tall);
            let column = &mut rest[..tall];
            for previous in before.chunks(tall) {
                let dot: f64 = previous
                    .iter()
                    .zip(column.iter())
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                column
                    .iter_mut()
                    .zip(previous)
                    .for_each(|(c, p)| *c -= (dot as f32) * p);
            }
            let norm = column
                .iter()
                .map(|c| f64::from(*c) * f64::from(*c))
                .sum::<f64>()
                .sqrt()
                .max(f64::MIN_POSITIVE);
            column
                .iter_mut()
                .for_each(|c| *c = (f64::from(*c) / norm) as f32);
        }
        q[start * tall..end * tall].copy_from_slice(&block);
    }
    let mut out = vec![0.0f32; rows * cols];
    for (j, column) in q.chunks(tall).enumerate() {
        for (i, &v) in column.iter().enumerate() {
            let (r, c) = if rows >= cols { (i, j) } else { (j, i) };
            out[r * cols + c] = v * gain;
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
        // 70 columns span three blocks, so the matmul projections are exercised.
        for (rows, cols, by_rows) in [
            (12, 5, false),
            (5, 12, true),
            (300, 70, false),
            (70, 300, true),
        ] {
            let m = orthogonal(rows, cols, 2.0, &mut rng);
            let n = rows.min(cols);
            let g = gram(&m, rows, cols, by_rows);
            for i in 0..n {
                for j in 0..n {
                    let expected = if i == j { 4.0 } else { 0.0 };
                    assert!(
                        (g[i * n + j] - expected).abs() < 1e-4 * 4.0,
                        "{rows}x{cols} [{i},{j}]"
                    );
                }
            }
        }
    }
}
