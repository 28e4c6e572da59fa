//! Small-batch dense kernels on the host, for acting.
//!
//! One acting step multiplies a handful of rows by every weight matrix of the network. A general
//! GEMM (burn's CPU backend uses the `gemm` crate) packs the whole weight matrix before using it,
//! which for 4 rows costs more than the arithmetic; measured here, `[4, 512] × [512, 2048]` took
//! 0.28 ms through burn, and 0.65 ms when the weight is a transposed view. These kernels stream each
//! weight row once and update all rows with it (AVX2/FMA when the CPU has them, chosen at run time).

/// `out[r] = bias + x[r] · w` for `rows` rows.
///
/// # Shapes
/// - `x`: `rows * k`; `w`: `k * n` (row-major `[k, n]`); `bias`: `n` or empty; `out`: `rows * n`
pub fn dense(x: &[f32], rows: usize, k: usize, w: &[f32], n: usize, bias: &[f32], out: &mut [f32]) {
    debug_assert_eq!(x.len(), rows * k);
    debug_assert_eq!(w.len(), k * n);
    debug_assert_eq!(out.len(), rows * n);
    for row in out.chunks_mut(n) {
        if bias.is_empty() {
            row.fill(0.0);
        } else {
            row.copy_from_slice(bias);
        }
    }
    for (kk, w_row) in w.chunks(n).enumerate() {
        for (r, out_row) in out.chunks_mut(n).enumerate() {
            let a = x[r * k + kk];
            if a != 0.0 {
                axpy(out_row, a, w_row);
            }
        }
    }
}

/// `y += a · x`.
pub fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, the only requirement of `axpy_avx2`.
        unsafe { axpy_avx2(y, a, x) };
        return;
    }
    axpy_portable(y, a, x);
}

#[inline(always)]
fn axpy_portable(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = x.mul_add(a, *y);
    }
}

/// The portable loop compiled with AVX2 and FMA enabled, so LLVM vectorizes it with 8-wide fused
/// multiply-adds.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn axpy_avx2(y: &mut [f32], a: f32, x: &[f32]) {
    axpy_portable(y, a, x);
}

/// LayerNorm of each `d`-wide row in place: `(x − mean) / sqrt(var + eps) · gamma + beta`
/// (population variance, as burn and PyTorch).
pub fn layer_norm(values: &mut [f32], d: usize, gamma: &[f32], beta: &[f32], eps: f32) {
    for row in values.chunks_mut(d) {
        let mean = row.iter().sum::<f32>() / d as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / d as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

/// ReLU in place.
pub fn relu(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = v.max(0.0));
}

/// The logistic function.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_matches_the_definition() {
        let (rows, k, n) = (3, 5, 37);
        let x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let w: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        let bias: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
        let mut out = vec![0.0; rows * n];
        dense(&x, rows, k, &w, n, &bias, &mut out);
        for r in 0..rows {
            for j in 0..n {
                let expected: f32 =
                    bias[j] + (0..k).map(|kk| x[r * k + kk] * w[kk * n + j]).sum::<f32>();
                assert!((out[r * n + j] - expected).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn layer_norm_matches_the_definition() {
        let mut v = vec![1.0, 2.0, 4.0, 8.0];
        layer_norm(
            &mut v,
            4,
            &[1.0, 2.0, 1.0, 1.0],
            &[0.0, 0.0, 1.0, 0.0],
            1e-5,
        );
        let mean = 3.75f32;
        let var = (2.75f32.powi(2) + 1.75f32.powi(2) + 0.25f32.powi(2) + 4.25f32.powi(2)) / 4.0;
        let inv = 1.0 / (var + 1e-5).sqrt();
        let expected = [
            (1.0 - mean) * inv,
            2.0 * (2.0 - mean) * inv,
            (4.0 - mean) * inv + 1.0,
            (8.0 - mean) * inv,
        ];
        for (a, b) in v.iter().zip(expected) {
            assert!((a - b).abs() < 1e-5);
        }
    }
}
