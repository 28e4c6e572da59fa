//! LayerNorm (optionally followed by ReLU) over the rows of a host matrix, forward and backward,
//! for the training step on burn's CPU backend.
//!
//! burn 0.22's autodiff has no LayerNorm operation of its own: it differentiates the decomposed
//! forward (mean, subtract, square, mean, add ε, square root, divide, scale, shift), one pass over
//! the whole matrix per operation in each direction. Measured on the 2-core Xeon in the 32 × 150
//! update (`docs/performance.md`, 2026-12-06), the LSTM's LayerNorm took 9 ms forward and 22 ms
//! backward that way, where PyTorch's fused kernels take about 5 ms for both LayerNorms in both
//! directions; these loops read and write each row once per direction.

use super::fork;

/// Rows per part below which a pass runs on one thread (the hand-off costs more than the rows).
const MIN_ROWS_PER_PART: usize = 64;

/// What the backward pass needs from the forward pass.
#[derive(Debug, Clone)]
pub(crate) struct LayerNormTape {
    d: usize,
    /// `x̂ = (x − mean) / sqrt(var + ε)` of every row, `rows * d`.
    normalized: Vec<f32>,
    /// `1 / sqrt(var + ε)` of every row.
    inverse_std: Vec<f32>,
    /// Whether ReLU followed the LayerNorm.
    relu: bool,
}

/// Gradients of a loss with respect to the input and the parameters of a LayerNorm.
#[derive(Debug, Clone)]
pub(crate) struct LayerNormGrads {
    /// `rows * d`.
    pub input: Vec<f32>,
    /// `d`.
    pub gamma: Vec<f32>,
    /// `d`.
    pub beta: Vec<f32>,
}

/// `y = x̂ · gamma + beta` for every `d`-wide row of `x` (population variance, as burn and
/// PyTorch), then `max(y, 0)` when `relu`; returns `y` and the tape for [`layer_norm_backward`].
///
/// # Shapes
/// - `x`: `rows * d`; `gamma`, `beta`: `d`
pub(crate) fn layer_norm_forward(
    x: &[f32],
    d: usize,
    gamma: &[f32],
    beta: &[f32],
    epsilon: f32,
    relu: bool,
) -> (Vec<f32>, LayerNormTape) {
    let rows = x.len() / d;
    let mut output = vec![0.0; rows * d];
    let mut normalized = vec![0.0; rows * d];
    let mut inverse_std = vec![0.0; rows];
    let per_part = rows_per_part(rows);
    let parts: Vec<_> = output
        .chunks_mut(per_part * d)
        .zip(normalized.chunks_mut(per_part * d))
        .zip(inverse_std.chunks_mut(per_part))
        .collect();
    fork::for_each_part(parts, &|index, ((output, normalized), inverse_std)| {
        let first = index * per_part;
        for (((row, inv), output), normalized) in x[first * d..]
            .chunks_exact(d)
            .zip(inverse_std.iter_mut())
            .zip(output.chunks_exact_mut(d))
            .zip(normalized.chunks_exact_mut(d))
        {
            let mean = lane_sum(row) / d as f32;
            for (n, &v) in normalized.iter_mut().zip(row) {
                *n = v - mean;
            }
            *inv = 1.0 / (lane_dot(normalized, normalized) / d as f32 + epsilon).sqrt();
            for (((y, n), &g), &b) in output.iter_mut().zip(normalized).zip(gamma).zip(beta) {
                *n *= *inv;
                *y = affine(*n, g, b);
            }
            if relu {
                output.iter_mut().for_each(|y| *y = y.max(0.0));
            }
        }
    });
    let tape = LayerNormTape {
        d,
        normalized,
        inverse_std,
        relu,
    };
    (output, tape)
}

/// Backpropagates `d_output` (the gradient with respect to the output of
/// [`layer_norm_forward`]) through the ReLU, if any, and the LayerNorm.
///
/// Every input row's gradient is `(g − mean(g) − x̂ · mean(g · x̂)) / sqrt(var + ε)` with
/// `g = d_y · gamma`; `d_gamma = Σ_rows d_y · x̂` and `d_beta = Σ_rows d_y`, each summed over the rows
/// in order, so the result does not depend on the number of threads.
///
/// # Shapes
/// - `d_output`: `rows * d`; `gamma`, `beta`: `d`
pub(crate) fn layer_norm_backward(
    tape: &LayerNormTape,
    gamma: &[f32],
    beta: &[f32],
    d_output: &[f32],
) -> LayerNormGrads {
    let d = tape.d;
    let rows = tape.inverse_std.len();
    // `d_y`: `d_output`, zero where ReLU cut the output off (a select per element, not a branch:
    // the signs are as good as random).
    let mut d_y = vec![0.0; rows * d];
    let mut input = vec![0.0; rows * d];
    let per_part = rows_per_part(rows);
    let parts: Vec<_> = input
        .chunks_mut(per_part * d)
        .zip(d_y.chunks_mut(per_part * d))
        .collect();
    fork::for_each_part(parts, &|index, (input, d_y)| {
        let first = index * per_part;
        for ((((d_x, d_y), normalized), d_out), &inv) in input
            .chunks_exact_mut(d)
            .zip(d_y.chunks_exact_mut(d))
            .zip(tape.normalized[first * d..].chunks_exact(d))
            .zip(d_output[first * d..].chunks_exact(d))
            .zip(&tape.inverse_std[first..])
        {
            if tape.relu {
                for ((((dy, &out), &n), &g), &b) in d_y
                    .iter_mut()
                    .zip(d_out)
                    .zip(normalized)
                    .zip(gamma)
                    .zip(beta)
                {
                    *dy = if affine(n, g, b) > 0.0 { out } else { 0.0 };
                }
            } else {
                d_y.copy_from_slice(d_out);
            }
            for ((g_value, &dy), &g) in d_x.iter_mut().zip(&*d_y).zip(gamma) {
                *g_value = dy * g;
            }
            let mean_g = lane_sum(d_x) / d as f32;
            let mean_g_normalized = lane_dot(d_x, normalized) / d as f32;
            for (g_value, &n) in d_x.iter_mut().zip(normalized) {
                *g_value = (*g_value - mean_g - n * mean_g_normalized) * inv;
            }
        }
    });
    let mut d_gamma = vec![0.0; d];
    let mut d_beta = vec![0.0; d];
    let columns_per_part = d.div_ceil(fork::threads().min(rows / MIN_ROWS_PER_PART).max(1));
    let parts: Vec<_> = d_gamma
        .chunks_mut(columns_per_part)
        .zip(d_beta.chunks_mut(columns_per_part))
        .collect();
    fork::for_each_part(parts, &|index, (d_gamma, d_beta)| {
        let columns = index * columns_per_part..index * columns_per_part + d_gamma.len();
        for (d_y, normalized) in d_y.chunks_exact(d).zip(tape.normalized.chunks_exact(d)) {
            for (((d_g, d_b), &dy), &n) in d_gamma
                .iter_mut()
                .zip(d_beta.iter_mut())
                .zip(&d_y[columns.clone()])
                .zip(&normalized[columns.clone()])
            {
                *d_g += dy * n;
                *d_b += dy;
            }
        }
    });
    LayerNormGrads {
        input,
        gamma: d_gamma,
        beta: d_beta,
    }
}

/// Lanes of the partial sums in [`lane_sum`] and [`lane_dot`]: independent accumulators the
/// compiler keeps in vector registers, where one running sum is a chain of dependent additions.
const LANES: usize = 16;

/// `Σ values`, summed in [`LANES`] interleaved partial sums.
fn lane_sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        lanes.iter_mut().zip(chunk).for_each(|(l, &v)| *l += v);
    }
    lanes.iter().sum::<f32>() + tail
}

/// `Σ a·b`, summed in [`LANES`] interleaved partial sums.
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in a_chunks.zip(b_chunks) {
        for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *l += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// `x̂ · gamma + beta`, the same expression in both directions, so that the backward pass finds
/// exactly the outputs the forward pass cut off. Not `mul_add`: without FMA in the compile-time
/// target it is a call into libm per element.
#[inline(always)]
fn affine(normalized: f32, gamma: f32, beta: f32) -> f32 {
    normalized * gamma + beta
}

fn rows_per_part(rows: usize) -> usize {
    let parts = (rows / MIN_ROWS_PER_PART).clamp(1, fork::threads());
    rows.div_ceil(parts).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The LayerNorm (+ ReLU) of one row in f64, straight from the definition.
    fn reference_row(x: &[f32], gamma: &[f32], beta: &[f32], epsilon: f64, relu: bool) -> Vec<f64> {
        let d = x.len() as f64;
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / d;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / d;
        x.iter()
            .zip(gamma)
            .zip(beta)
            .map(|((&v, &g), &b)| {
                let y = (v as f64 - mean) / (var + epsilon).sqrt() * g as f64 + b as f64;
                if relu { y.max(0.0) } else { y }
            })
            .collect()
    }

    fn inputs(rows: usize, d: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = (0..rows * d)
            .map(|i| (i as f32 * 0.37).sin() * 2.0 + (i / d) as f32 * 0.1)
            .collect();
        let gamma = (0..d).map(|j| 0.5 + (j as f32 * 0.7).cos()).collect();
        let beta = (0..d).map(|j| (j as f32 * 0.3).sin() * 0.2).collect();
        let d_out = (0..rows * d).map(|i| (i as f32 * 0.11).cos()).collect();
        (x, gamma, beta, d_out)
    }

    #[test]
    fn forward_matches_the_definition() {
        for (rows, d, relu) in [(3, 5, false), (200, 37, true)] {
            let (x, gamma, beta, _) = inputs(rows, d);
            let (y, _) = layer_norm_forward(&x, d, &gamma, &beta, 1e-5, relu);
            for r in 0..rows {
                let expected = reference_row(&x[r * d..(r + 1) * d], &gamma, &beta, 1e-5, relu);
                for (j, e) in expected.iter().enumerate() {
                    assert!((y[r * d + j] as f64 - e).abs() < 1e-5, "row {r} column {j}");
                }
            }
        }
    }

    /// The backward pass against central differences of `L = Σ d_out · y` in f64, over the input
    /// and both parameters, with and without ReLU, on one thread and split over rows.
    #[test]
    fn backward_matches_finite_differences() {
        for (rows, d, relu) in [(2, 6, false), (3, 7, true), (150, 9, true)] {
            let (x, gamma, beta, d_out) = inputs(rows, d);
            let (_, tape) = layer_norm_forward(&x, d, &gamma, &beta, 1e-5, relu);
            let grads = layer_norm_backward(&tape, &gamma, &beta, &d_out);
            let loss = |x: &[f32], gamma: &[f32], beta: &[f32]| {
                (0..rows)
                    .map(|r| {
                        reference_row(&x[r * d..(r + 1) * d], gamma, beta, 1e-5, relu)
                            .iter()
                            .zip(&d_out[r * d..(r + 1) * d])
                            .map(|(y, &g)| y * g as f64)
                            .sum::<f64>()
                    })
                    .sum::<f64>()
            };
            let h = 1e-3f32;
            let numeric = |values: &[f32], at: usize, f: &dyn Fn(&[f32]) -> f64| {
                let (mut up, mut down) = (values.to_vec(), values.to_vec());
                up[at] += h;
                down[at] -= h;
                (f(&up) - f(&down)) / (up[at] - down[at]) as f64
            };
            let close = |analytic: f32, numeric: f64, what: &str| {
                assert!(
                    (analytic as f64 - numeric).abs() < 2e-3 * (1.0 + numeric.abs()),
                    "{what}: {analytic} vs {numeric} ({rows}x{d}, relu {relu})"
                );
            };
            for at in (0..rows * d).step_by(7) {
                let n = numeric(&x, at, &|x| loss(x, &gamma, &beta));
                close(grads.input[at], n, &format!("input {at}"));
            }
            for j in 0..d {
                let n = numeric(&gamma, j, &|g| loss(&x, g, &beta));
                close(grads.gamma[j], n, &format!("gamma {j}"));
                let n = numeric(&beta, j, &|b| loss(&x, &gamma, b));
                close(grads.beta[j], n, &format!("beta {j}"));
            }
        }
    }
}
