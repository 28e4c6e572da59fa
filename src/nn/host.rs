//! Small-batch dense kernels on the host, for acting.
//!
//! One acting step multiplies a handful of rows by every weight matrix of the network. A general
//! GEMM (burn's CPU backend uses the `gemm` crate) packs the whole weight matrix before using it,
//! which for 4 rows costs more than the arithmetic; measured here, `[4, 512] × [512, 2048]` took
//! 0.28 ms through burn, and 0.65 ms when the weight is a transposed view. These kernels stream each
//! weight row once and update all rows with it (AVX2/FMA when the CPU has them, chosen at run time).

/// Output columns one register tile covers (two 8-wide AVX2 vectors).
const TILE_COLUMNS: usize = 16;
/// Rows one register tile covers: 4 rows × 2 vectors of accumulators plus the weight vectors and a
/// broadcast fit AVX2's 16 registers.
const TILE_ROWS: usize = 4;

/// A `[k, n]` weight matrix stored strip by strip for [`dense`]: for each group of
/// [`TILE_COLUMNS`] output columns, its `k` rows one after the other (the last strip zero-padded).
/// Packing once per set of weights lets every product stream the weights sequentially; reading a
/// column strip out of the row-major matrix instead touches a new page at every `k` for wide `n`.
#[derive(Debug, Clone, PartialEq)]
pub struct PackedMatrix {
    k: usize,
    n: usize,
    strips: Vec<f32>,
}

impl PackedMatrix {
    /// Packs a row-major `[k, n]` matrix.
    ///
    /// # Panics
    /// When `w` does not hold `k * n` values.
    pub fn pack(w: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(w.len(), k * n, "PackedMatrix::pack: w is not [k, n]");
        let num_strips = n.div_ceil(TILE_COLUMNS);
        let mut strips = vec![0.0; num_strips * k * TILE_COLUMNS];
        for strip in 0..num_strips {
            let c0 = strip * TILE_COLUMNS;
            let width = TILE_COLUMNS.min(n - c0);
            for kk in 0..k {
                let at = (strip * k + kk) * TILE_COLUMNS;
                strips[at..at + width].copy_from_slice(&w[kk * n + c0..kk * n + c0 + width]);
            }
        }
        Self { k, n, strips }
    }

    /// Columns (the output width).
    pub fn n(&self) -> usize {
        self.n
    }

    fn view(&self) -> PackedView<'_> {
        PackedView {
            k: self.k,
            n: self.n,
            strips: &self.strips,
        }
    }
}

/// A run of whole strips of a [`PackedMatrix`]: the columns of those strips.
#[derive(Debug, Clone, Copy)]
struct PackedView<'a> {
    k: usize,
    n: usize,
    strips: &'a [f32],
}

impl<'a> PackedView<'a> {
    /// The columns of the first `strip` strips, and the rest.
    fn split_at_strip(self, strip: usize) -> (Self, Self) {
        let split = (strip * TILE_COLUMNS).min(self.n);
        let (left, right) = self.strips.split_at(strip * self.k * TILE_COLUMNS);
        (
            Self {
                k: self.k,
                n: split,
                strips: left,
            },
            Self {
                k: self.k,
                n: self.n - split,
                strips: right,
            },
        )
    }
}

/// `out[r] = bias + x[r] · w` for `rows` rows.
///
/// Every output element is `bias`, then one fused multiply-add per `k` in ascending order, so the
/// result does not depend on the tiling (nor on the instruction set, FMA being exact).
///
/// # Shapes
/// - `x`: `rows * w.k()`; `bias`: `w.n()` or empty; `out`: `rows * w.n()`
///
/// # Panics
/// When the slices do not have those lengths.
pub fn dense(x: &[f32], rows: usize, w: &PackedMatrix, bias: &[f32], out: &mut [f32]) {
    assert_eq!(x.len(), rows * w.k, "dense: x is not [rows, k]");
    assert_eq!(out.len(), rows * w.n, "dense: out is not [rows, n]");
    assert!(
        bias.is_empty() || bias.len() == w.n,
        "dense: bias is not [n]"
    );
    let view = w.view();
    let num_strips = w.n.div_ceil(TILE_COLUMNS);
    if rows * w.k * w.n < PARALLEL_MIN_MULTIPLY_ADDS || num_strips < 2 {
        dense_view(x, rows, view, bias, out);
        return;
    }
    // Two halves of the column strips on two threads (the reference machine has two cores), each
    // into its own buffer; every element is computed exactly as on one thread.
    let (left, right) = view.split_at_strip(num_strips / 2);
    let split = left.n;
    let bias_of = |range: std::ops::Range<usize>| {
        if bias.is_empty() {
            &[][..]
        } else {
            &bias[range]
        }
    };
    let mut left_out = vec![0.0; rows * left.n];
    let mut right_out = vec![0.0; rows * right.n];
    rayon::join(
        || dense_view(x, rows, left, bias_of(0..split), &mut left_out),
        || dense_view(x, rows, right, bias_of(split..w.n), &mut right_out),
    );
    for ((row, l), r) in out
        .chunks_exact_mut(w.n)
        .zip(left_out.chunks_exact(left.n))
        .zip(right_out.chunks_exact(right.n))
    {
        row[..split].copy_from_slice(l);
        row[split..].copy_from_slice(r);
    }
}

/// Products with fewer multiply-adds than this stay on the calling thread: waking the pool costs
/// more than it saves below it (measured: batch-4 acting of the reference network, 4.2M
/// multiply-adds per LSTM product, took 1.65 ms split and 1.14 ms on one thread).
const PARALLEL_MIN_MULTIPLY_ADDS: usize = 1 << 23;

fn dense_view(x: &[f32], rows: usize, w: PackedView<'_>, bias: &[f32], out: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, the only requirement of `dense_avx2`.
        unsafe { dense_avx2(x, rows, w, bias, out) };
        return;
    }
    dense_portable(x, rows, w, bias, out);
}

/// [`dense_portable`]'s tiling with AVX2 intrinsics: each register tile is two 8-wide vectors per
/// row, updated with `vfmadd` (the same fused operation as `f32::mul_add`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dense_avx2(x: &[f32], rows: usize, w: PackedView<'_>, bias: &[f32], out: &mut [f32]) {
    for strip in 0..w.n.div_ceil(TILE_COLUMNS) {
        let mut r0 = 0;
        while r0 + TILE_ROWS <= rows {
            // SAFETY: `dense` checked the lengths of `x`, `bias` and `out` against `rows` and `w`.
            unsafe { tile_avx2::<TILE_ROWS>(x, r0, w, strip, bias, out) };
            r0 += TILE_ROWS;
        }
        for r in r0..rows {
            // SAFETY: as above.
            unsafe { tile_avx2::<1>(x, r, w, strip, bias, out) };
        }
    }
}

/// One register tile: rows `r0..r0 + R`, the columns of `strip`.
///
/// # Safety
/// The CPU supports AVX2 and FMA; `x` holds `(r0 + R) * w.k` values at least, `bias` is empty or
/// `w.n` long, `out` holds `(r0 + R) * w.n` values at least.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>(
    x: &[f32],
    r0: usize,
    w: PackedView<'_>,
    strip: usize,
    bias: &[f32],
    out: &mut [f32],
) {
    use std::arch::x86_64::{_mm256_fmadd_ps, _mm256_loadu_ps, _mm256_set1_ps, _mm256_storeu_ps};
    let (k, n) = (w.k, w.n);
    let c0 = strip * TILE_COLUMNS;
    let width = TILE_COLUMNS.min(n - c0);
    let mut bias_tile = [0.0f32; TILE_COLUMNS];
    if !bias.is_empty() {
        bias_tile[..width].copy_from_slice(&bias[c0..c0 + width]);
    }
    let strip_values = &w.strips[strip * k * TILE_COLUMNS..(strip + 1) * k * TILE_COLUMNS];
    let x_block = &x[r0 * k..(r0 + R) * k];
    // SAFETY: every pointer below stays inside `bias_tile`, `strip_values` (k rows of 16) or
    // `x_block` (R rows of k), whose lengths are fixed above.
    unsafe {
        let low = _mm256_loadu_ps(bias_tile.as_ptr());
        let high = _mm256_loadu_ps(bias_tile.as_ptr().add(8));
        let mut acc_low = [low; R];
        let mut acc_high = [high; R];
        let w_ptr = strip_values.as_ptr();
        let x_ptr = x_block.as_ptr();
        for kk in 0..k {
            let w_low = _mm256_loadu_ps(w_ptr.add(kk * TILE_COLUMNS));
            let w_high = _mm256_loadu_ps(w_ptr.add(kk * TILE_COLUMNS + 8));
            for r in 0..R {
                let a = _mm256_set1_ps(*x_ptr.add(r * k + kk));
                acc_low[r] = _mm256_fmadd_ps(w_low, a, acc_low[r]);
                acc_high[r] = _mm256_fmadd_ps(w_high, a, acc_high[r]);
            }
        }
        let mut row = [0.0f32; TILE_COLUMNS];
        for r in 0..R {
            _mm256_storeu_ps(row.as_mut_ptr(), acc_low[r]);
            _mm256_storeu_ps(row.as_mut_ptr().add(8), acc_high[r]);
            let at = (r0 + r) * n + c0;
            out[at..at + width].copy_from_slice(&row[..width]);
        }
    }
}

/// Register-tiled small-batch product (the portable path; [`dense_avx2`] tiles the same way): for each strip of output columns and each block of up to
/// [`TILE_ROWS`] rows, the accumulators stay in registers while the strip is streamed once over
/// `k` (and reused from cache by the next row block).
#[inline(always)]
fn dense_portable(x: &[f32], rows: usize, w: PackedView<'_>, bias: &[f32], out: &mut [f32]) {
    for strip in 0..w.n.div_ceil(TILE_COLUMNS) {
        let mut r0 = 0;
        while r0 + TILE_ROWS <= rows {
            tile::<TILE_ROWS>(x, r0, w, strip, bias, out);
            r0 += TILE_ROWS;
        }
        for r in r0..rows {
            tile::<1>(x, r, w, strip, bias, out);
        }
    }
}

#[inline(always)]
fn tile<const R: usize>(
    x: &[f32],
    r0: usize,
    w: PackedView<'_>,
    strip: usize,
    bias: &[f32],
    out: &mut [f32],
) {
    let (k, n) = (w.k, w.n);
    let c0 = strip * TILE_COLUMNS;
    let width = TILE_COLUMNS.min(n - c0);
    let mut acc = [[0.0f32; TILE_COLUMNS]; R];
    if !bias.is_empty() {
        for row in acc.iter_mut() {
            row[..width].copy_from_slice(&bias[c0..c0 + width]);
        }
    }
    let x_rows: [&[f32]; R] = std::array::from_fn(|r| &x[(r0 + r) * k..(r0 + r + 1) * k]);
    let strip_values = &w.strips[strip * k * TILE_COLUMNS..(strip + 1) * k * TILE_COLUMNS];
    for (kk, w_row) in strip_values.chunks_exact(TILE_COLUMNS).enumerate() {
        for r in 0..R {
            let a = x_rows[r][kk];
            for c in 0..TILE_COLUMNS {
                acc[r][c] = w_row[c].mul_add(a, acc[r][c]);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        out[(r0 + r) * n + c0..(r0 + r) * n + c0 + width].copy_from_slice(&row[..width]);
    }
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
        dense(&x, rows, &PackedMatrix::pack(&w, k, n), &bias, &mut out);
        for r in 0..rows {
            for j in 0..n {
                let expected: f32 =
                    bias[j] + (0..k).map(|kk| x[r * k + kk] * w[kk * n + j]).sum::<f32>();
                assert!((out[r * n + j] - expected).abs() < 1e-5);
            }
        }
    }

    /// Every element equals the sequential fused sum (bias first, then `k` ascending), whatever
    /// the shape: full tiles, partial row blocks, tail columns, no bias, split over threads.
    #[test]
    fn dense_is_the_sequential_fused_sum_for_every_tiling() {
        for (rows, k, n, with_bias) in [
            (1, 3, 16, true),
            (4, 7, 32, true),
            (6, 9, 53, false),
            (64, 5, 18, true),
            (2, 1, 5, true),
            // Large enough to be split over two threads.
            (16, 512, 1100, true),
            (17, 700, 1000, false),
        ] {
            let x: Vec<f32> = (0..rows * k).map(|i| (i as f32 * 0.37).sin()).collect();
            let w: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
            let bias: Vec<f32> = if with_bias {
                (0..n).map(|i| i as f32 * 0.01).collect()
            } else {
                vec![]
            };
            let mut out = vec![f32::NAN; rows * n];
            dense(&x, rows, &PackedMatrix::pack(&w, k, n), &bias, &mut out);
            for r in 0..rows {
                for j in 0..n {
                    let mut expected = if with_bias { bias[j] } else { 0.0 };
                    for kk in 0..k {
                        expected = w[kk * n + j].mul_add(x[r * k + kk], expected);
                    }
                    assert_eq!(
                        out[r * n + j].to_bits(),
                        expected.to_bits(),
                        "{rows}x{k}x{n} at ({r}, {j})"
                    );
                }
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
