//! Large matrix products on host slices, straight through the `gemm` crate.
//!
//! burn's CPU backend multiplies with the same crate, but on burn-flex 0.22.1 every product's
//! output is made by `FlexTensor::empty`: a zero-filled `Vec<u8>` that cubecl's
//! `Bytes::from_bytes_vec` then copies into a 16-byte-aligned buffer (it checks the vector's
//! declared alignment, 1, not the pointer's). A host caller pays a third pass getting the values
//! out. On the 2-core Xeon the LSTM input projection of the 32 × 150 update took 61.9 ms through
//! burn's `matmul` and 43.9 ms through `gemm` called directly (`docs/performance.md`, 2026-12-05
//! night), which is what MKL takes on the same shape. burn has no way to multiply into a buffer
//! the caller owns, or to add a product to one, so the training step's hand-written passes call
//! `gemm` here.

use super::fork;

/// A read-only row-major matrix, or the transpose of one (no copy).
///
/// # Shapes
/// Element `(i, j)` is `data[i * row_stride + j * column_stride]`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MatrixRef<'a> {
    data: &'a [f32],
    rows: usize,
    columns: usize,
    row_stride: usize,
    column_stride: usize,
}

impl<'a> MatrixRef<'a> {
    /// A row-major `[rows, columns]` matrix.
    ///
    /// # Panics
    /// When `data` does not hold `rows * columns` values (a bug in the caller, not bad input).
    pub(crate) fn new(data: &'a [f32], rows: usize, columns: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * columns,
            "gemm::MatrixRef: {} values are not [{rows}, {columns}]",
            data.len()
        );
        Self {
            data,
            rows,
            columns,
            row_stride: columns,
            column_stride: 1,
        }
    }

    /// Rows `range` of a row-major (not transposed) matrix.
    fn row_range(self, range: std::ops::Range<usize>) -> Self {
        debug_assert_eq!(self.column_stride, 1, "row_range of a transpose");
        Self::new(
            &self.data[range.start * self.columns..range.end * self.columns],
            range.len(),
            self.columns,
        )
    }

    /// The transpose.
    pub(crate) fn t(self) -> Self {
        Self {
            rows: self.columns,
            columns: self.rows,
            row_stride: self.column_stride,
            column_stride: self.row_stride,
            ..self
        }
    }
}

/// What a product does with what the output already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Output {
    /// `C = A·B`; what `C` held is never read.
    Overwrite,
    /// `C = C + A·B`: a bias the caller put there, or another product's sum.
    Accumulate,
}

/// Whether a product may split over the cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Split {
    /// Over the cores (rayon's pool) from [`MIN_MULTIPLY_ADDS_TO_SPLIT`] multiply-adds on.
    WhenLarge,
    /// On the calling thread: the caller runs several products at once, one per core.
    Never,
}

/// Below this many multiply-adds a product runs on the calling thread: burn-flex's threshold, so
/// a product splits over the cores exactly when burn's `matmul` would split it.
const MIN_MULTIPLY_ADDS_TO_SPLIT: usize = 192 * 192 * 192;

/// `out = a·b` or `out += a·b` (row-major `[a.rows, b.columns]`).
///
/// # Panics
/// When the shapes do not chain or `out` is not `[a.rows, b.columns]` (a bug in the caller).
pub(crate) fn matmul(
    a: MatrixRef<'_>,
    b: MatrixRef<'_>,
    out: &mut [f32],
    output: Output,
    split: Split,
) {
    let (m, k, n) = (a.rows, a.columns, b.columns);
    assert_eq!(b.rows, k, "gemm::matmul: [{m}, {k}]·[{}, {n}]", b.rows);
    assert_eq!(out.len(), m * n, "gemm::matmul: output is not [{m}, {n}]");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if output == Output::Overwrite {
            out.fill(0.0);
        }
        return;
    }
    let large = m.saturating_mul(n).saturating_mul(k) >= MIN_MULTIPLY_ADDS_TO_SPLIT;
    let parallelism = if split == Split::WhenLarge && large {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let stride = |s: usize| s as isize;
    // SAFETY: `MatrixRef::new` checked that each operand's slice holds `rows * columns` values,
    // and with strides (columns, 1) or their transpose every element the product reads,
    // `(i, j) ↦ i * row_stride + j * column_stride` for `i < rows`, `j < columns`, lies inside
    // it; `out` was checked to hold `m * n` values, written with strides (n, 1). `out` is a
    // unique borrow, so it aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            stride(n),
            output == Output::Accumulate,
            a.data.as_ptr(),
            stride(a.column_stride),
            stride(a.row_stride),
            b.data.as_ptr(),
            stride(b.column_stride),
            stride(b.row_stride),
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// `inputᵀ·d_output`, `[d_in, d_out]`: the gradient of a weight that multiplies every row of
/// `input`, summed over the rows.
///
/// The rows are split over the cores ([`fork`]), each part's sum one product on its own core,
/// and the parts' sums are then added in order. `gemm`'s own split of this shape — a small output
/// and a long sum — ran at half the speed in the 32 × 150 update (the critic's `512 × 256`
/// gradient over 4,800 rows: 7.5 ms, and 3.8 ms split by rows; `docs/performance.md`,
/// 2026-12-07).
///
/// # Shapes
/// - `input`: `[rows, d_in]`; `d_output`: `[rows, d_out]`, both row-major (not transposed)
/// - output: `[d_in, d_out]`
///
/// # Panics
/// When the row counts differ or an operand is a transpose (a bug in the caller).
pub(crate) fn weight_gradient(input: MatrixRef<'_>, d_output: MatrixRef<'_>) -> Vec<f32> {
    let (rows, d_in, d_out) = (input.rows, input.columns, d_output.columns);
    assert!(
        d_output.rows == rows && input.column_stride == 1 && d_output.column_stride == 1,
        "gemm::weight_gradient: [{rows}, {d_in}] and [{}, {d_out}] are not row-major with \
         the same rows",
        d_output.rows
    );
    let large = rows.saturating_mul(d_in).saturating_mul(d_out) >= MIN_MULTIPLY_ADDS_TO_SPLIT;
    let parts = if large { fork::threads().min(rows) } else { 1 };
    let ranges: Vec<std::ops::Range<usize>> = (0..parts)
        .map(|p| rows * p / parts..rows * (p + 1) / parts)
        .collect();
    let partial_sums = fork::map_parts(ranges, &|_, range| {
        let mut sum = vec![0.0; d_in * d_out];
        matmul(
            input.row_range(range.clone()).t(),
            d_output.row_range(range),
            &mut sum,
            Output::Overwrite,
            Split::Never,
        );
        sum
    });
    let mut partial_sums = partial_sums.into_iter();
    let mut total = partial_sums
        .next()
        .unwrap_or_else(|| vec![0.0; d_in * d_out]);
    for sum in partial_sums {
        total.iter_mut().zip(&sum).for_each(|(t, s)| *t += s);
    }
    total
}

/// At least this many values before [`column_sums`] spreads its columns over the cores.
const MIN_VALUES_TO_SPLIT_SUMS: usize = 1 << 18;

/// The sum of the rows of a row-major `[rows, width]` matrix: the gradient of a bias added to
/// every row.
///
/// Large matrices are split by columns over the cores ([`fork`]): every sum still adds the rows
/// in order, so the result does not depend on the split. (The LSTM's bias gradient reads the
/// whole `[rows, 4H]` gate gradient, 39 MB in the 32 × 150 update.)
///
/// # Shapes
/// - `values`: `[rows, width]`
/// - output: `[width]`
pub(crate) fn column_sums(values: &[f32], width: usize) -> Vec<f32> {
    let mut sums = vec![0.0; width];
    if width == 0 {
        return sums;
    }
    let parts = if values.len() >= MIN_VALUES_TO_SPLIT_SUMS {
        fork::threads().min(width)
    } else {
        1
    };
    let per_part = width.div_ceil(parts);
    fork::for_each_part(sums.chunks_mut(per_part).collect(), &|index, part| {
        let columns = index * per_part..index * per_part + part.len();
        for row in values.chunks_exact(width) {
            part.iter_mut()
                .zip(&row[columns.clone()])
                .for_each(|(s, v)| *s += v);
        }
    });
    sums
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7919 + seed * 104_729) % 211) as f32 / 50.0 - 2.0)
            .collect()
    }

    /// The product, summed in f64 the obvious way.
    fn naive(a: MatrixRef<'_>, b: MatrixRef<'_>) -> Vec<f64> {
        let at = |m: &MatrixRef<'_>, i: usize, j: usize| {
            f64::from(m.data[i * m.row_stride + j * m.column_stride])
        };
        let mut out = vec![0.0; a.rows * b.columns];
        for i in 0..a.rows {
            for j in 0..b.columns {
                out[i * b.columns + j] = (0..a.columns).map(|p| at(&a, i, p) * at(&b, p, j)).sum();
            }
        }
        out
    }

    #[test]
    fn products_of_every_transposition_match_the_naive_sum() {
        // One shape below the split threshold, one above it.
        for (m, k, n) in [(7, 5, 3), (150, 200, 260)] {
            let a_data = values(m * k, 1);
            let b_data = values(k * n, 2);
            for (transpose_a, transpose_b) in [(false, false), (true, false), (false, true)] {
                let a = if transpose_a {
                    MatrixRef::new(&a_data, k, m).t()
                } else {
                    MatrixRef::new(&a_data, m, k)
                };
                let b = if transpose_b {
                    MatrixRef::new(&b_data, n, k).t()
                } else {
                    MatrixRef::new(&b_data, k, n)
                };
                let expected = naive(a, b);
                let mut out = vec![f32::NAN; m * n];
                matmul(a, b, &mut out, Output::Overwrite, Split::WhenLarge);
                let start = |i: usize| (i % 17) as f32 - 8.0;
                let mut accumulated: Vec<f32> = (0..m * n).map(start).collect();
                matmul(a, b, &mut accumulated, Output::Accumulate, Split::Never);
                for (i, e) in expected.iter().enumerate() {
                    let tolerance = 1e-4 * (1.0 + e.abs());
                    let what = format!("[{m}, {k}, {n}] {transpose_a} {transpose_b} element {i}");
                    assert!((f64::from(out[i]) - e).abs() <= tolerance, "{what}");
                    let with_start = e + f64::from(start(i));
                    assert!(
                        (f64::from(accumulated[i]) - with_start).abs() <= tolerance + 1e-3,
                        "{what} accumulated"
                    );
                }
            }
        }
    }

    /// The weight gradient equals `inputᵀ·d_output` summed the obvious way, below the split
    /// threshold (one part) and above it with a row count the parts do not divide evenly.
    #[test]
    fn weight_gradients_match_the_naive_sum() {
        for (rows, d_in, d_out) in [(9, 4, 3), (301, 160, 150)] {
            let input = values(rows * d_in, 3);
            let d_output = values(rows * d_out, 4);
            let expected = naive(
                MatrixRef::new(&input, rows, d_in).t(),
                MatrixRef::new(&d_output, rows, d_out),
            );
            let got = weight_gradient(
                MatrixRef::new(&input, rows, d_in),
                MatrixRef::new(&d_output, rows, d_out),
            );
            assert_eq!(got.len(), d_in * d_out);
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!(
                    (f64::from(*g) - e).abs() <= 1e-4 * (1.0 + e.abs()),
                    "[{rows}, {d_in}, {d_out}] element {i}: {g} vs {e}"
                );
            }
        }
        // No rows: a zero gradient of the weight's shape.
        let none = weight_gradient(MatrixRef::new(&[], 0, 3), MatrixRef::new(&[], 0, 2));
        assert_eq!(none, vec![0.0; 6]);
    }

    /// Column sums add every row in order, split over the cores or not (bit for bit), and an
    /// empty matrix sums to zeros.
    #[test]
    fn column_sums_add_the_rows_in_order() {
        for (rows, width) in [(5, 3), (700, 513)] {
            let data = values(rows * width, 5);
            let mut expected = vec![0.0f32; width];
            for row in data.chunks_exact(width) {
                expected.iter_mut().zip(row).for_each(|(e, v)| *e += v);
            }
            assert_eq!(column_sums(&data, width), expected, "[{rows}, {width}]");
        }
        assert_eq!(column_sums(&[], 4), vec![0.0; 4]);
        assert!(column_sums(&[], 0).is_empty());
    }

    #[test]
    fn an_empty_inner_dimension_gives_zero_or_leaves_the_output() {
        let mut out = vec![f32::NAN; 6];
        matmul(
            MatrixRef::new(&[], 2, 0),
            MatrixRef::new(&[], 0, 3),
            &mut out,
            Output::Overwrite,
            Split::WhenLarge,
        );
        assert_eq!(out, vec![0.0; 6]);
        let mut kept = vec![1.5; 6];
        matmul(
            MatrixRef::new(&[], 2, 0),
            MatrixRef::new(&[], 0, 3),
            &mut kept,
            Output::Accumulate,
            Split::WhenLarge,
        );
        assert_eq!(kept, vec![1.5; 6]);
    }
}
