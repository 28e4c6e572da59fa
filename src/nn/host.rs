//! Small-batch dense kernels on the host, for acting.
//!
//! One acting step multiplies a handful of rows by every weight matrix of the network. A general
//! GEMM (burn's CPU backend uses the `gemm` crate) packs the whole weight matrix before using it,
//! which for 4 rows costs more than the arithmetic; measured here, `[4, 512] × [512, 2048]` took
//! 0.28 ms through burn, and 0.65 ms when the weight is a transposed view. These kernels stream each
//! weight row once and update all rows with it (AVX-512 or AVX2/FMA when the CPU has them, chosen
//! at run time), and spread larger products over the cores with [`fork`].

use super::fork;

/// Output columns of one packed strip: what an AVX2 register tile covers per row (two 8-wide
/// vectors), and one 16-wide AVX-512 vector (whose tiles span several strips).
const TILE_COLUMNS: usize = 16;
/// Rows one register tile covers: 6 rows × 2 vectors of accumulators plus the two weight vectors
/// and a broadcast fill 15 of AVX2's 16 registers. Fewer rows left over go through a 4-row tile,
/// then one row at a time.
const TILE_ROWS: usize = 6;

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

    /// Packs the `[k, n]` matrix whose row-major transpose `[n, k]` is `w_t` (a weight stored
    /// `[out, in]`, as burn's and PyTorch's LSTMs store theirs), without building the transpose.
    ///
    /// # Panics
    /// When `w_t` does not hold `n * k` values.
    pub fn pack_transposed(w_t: &[f32], k: usize, n: usize) -> Self {
        assert_eq!(
            w_t.len(),
            k * n,
            "PackedMatrix::pack_transposed: w_t is not [n, k]"
        );
        let num_strips = n.div_ceil(TILE_COLUMNS);
        let mut strips = vec![0.0; num_strips * k * TILE_COLUMNS];
        for (column, row_of_t) in w_t.chunks_exact(k).enumerate() {
            let (strip, lane) = (column / TILE_COLUMNS, column % TILE_COLUMNS);
            let block = &mut strips[strip * k * TILE_COLUMNS..(strip + 1) * k * TILE_COLUMNS];
            for (slot, &value) in block
                .iter_mut()
                .skip(lane)
                .step_by(TILE_COLUMNS)
                .zip(row_of_t)
            {
                *slot = value;
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
    if column_parts(rows, w) < 2 {
        dense_view(x, rows, w.view(), bias, out);
        return;
    }
    let mut pieces = Vec::new();
    dense_in_pieces_with_bias(x, rows, w, bias, &mut pieces);
    for piece in &pieces {
        let width = piece.columns.len();
        for (row, values) in out
            .chunks_exact_mut(w.n)
            .zip(piece.values.chunks_exact(width))
        {
            row[piece.columns.clone()].copy_from_slice(values);
        }
    }
}

/// A run of output columns of [`dense_in_pieces`] and their values.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DensePiece {
    /// The output columns this piece holds.
    pub columns: std::ops::Range<usize>,
    /// `[rows, columns.len()]`, row-major.
    pub values: Vec<f32>,
}

/// `x · w` for `rows` rows as [`dense`] computes it (no bias), left in runs of output columns,
/// one per core, instead of copied into one matrix: a recurrence that reads every element once
/// (the LSTM's `h·W_hhᵀ` every step) skips that copy, which one core made while the other waited,
/// and the pieces' buffers are reused from call to call.
///
/// # Shapes
/// - `x`: `rows * w.k()`
/// - `pieces`: replaced by runs of columns covering `0..w.n()` in order
///
/// # Panics
/// When `x` is not `[rows, k]`.
pub fn dense_in_pieces(x: &[f32], rows: usize, w: &PackedMatrix, pieces: &mut Vec<DensePiece>) {
    assert_eq!(x.len(), rows * w.k, "dense: x is not [rows, k]");
    dense_in_pieces_with_bias(x, rows, w, &[], pieces);
}

/// Threads a product of `rows` rows by `w` is spread over: by column strips, at least
/// [`MIN_MULTIPLY_ADDS_PER_PART`] multiply-adds each.
fn column_parts(rows: usize, w: &PackedMatrix) -> usize {
    (rows * w.k * w.n / MIN_MULTIPLY_ADDS_PER_PART)
        .min(w.n.div_ceil(TILE_COLUMNS))
        .min(fork::threads())
        .max(1)
}

fn dense_in_pieces_with_bias(
    x: &[f32],
    rows: usize,
    w: &PackedMatrix,
    bias: &[f32],
    pieces: &mut Vec<DensePiece>,
) {
    // Consecutive runs of column strips, one per thread; every element is computed exactly as on
    // one thread.
    let parts = column_parts(rows, w);
    let num_strips = w.n.div_ceil(TILE_COLUMNS);
    let mut views = Vec::with_capacity(parts);
    let mut rest = w.view();
    let mut first_column = 0;
    pieces.resize_with(parts, DensePiece::default);
    for (part, piece) in pieces.iter_mut().enumerate() {
        let strips = (num_strips * (part + 1)) / parts - (num_strips * part) / parts;
        let (view, after) = rest.split_at_strip(strips);
        piece.columns = first_column..first_column + view.n;
        piece.values.resize(rows * view.n, 0.0);
        first_column += view.n;
        views.push(view);
        rest = after;
    }
    fork::for_each_part(pieces.iter_mut().collect(), &|part, piece| {
        let piece_bias = if bias.is_empty() {
            &[][..]
        } else {
            &bias[piece.columns.clone()]
        };
        dense_view(x, rows, views[part], piece_bias, &mut piece.values);
    });
}

/// Each thread gets at least this many multiply-adds of a product, else the product runs on fewer
/// threads. A part costs more than its arithmetic: the hand-off to a helper, the helper's own output
/// buffer and the copy back. Measured on the 2-core Xeon (`docs/performance.md`, 2026-12-05): the
/// CartPole network's `[16, 64] × [64, 256]` LSTM products (262,144) ran faster on one thread
/// (whole `train` runs 5–13 % faster), while the reference heads' `[4, 512] × [512, 256]`
/// (524,288) still gain from two parts (acting at batch 4: 0.38 ms split, 0.46 ms not). This
/// value sits between the two, away from both.
const MIN_MULTIPLY_ADDS_PER_PART: usize = 3 << 16;

fn dense_view(x: &[f32], rows: usize, w: PackedView<'_>, bias: &[f32], out: &mut [f32]) {
    dense_view_with(Kernel::best(), x, rows, w, bias, out);
}

/// The instruction sets [`dense`] has a kernel for. Every kernel computes each output element as
/// the same sequence of fused multiply-adds, so they agree bit for bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Kernel {
    /// The kernels this CPU can run, slowest first.
    fn available() -> Vec<Self> {
        #[allow(unused_mut)]
        let mut kernels = vec![Self::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                kernels.push(Self::Avx2);
            }
            if std::arch::is_x86_feature_detected!("avx512f") {
                kernels.push(Self::Avx512);
            }
        }
        kernels
    }

    /// The fastest kernel this CPU can run (detected once).
    fn best() -> Self {
        static BEST: std::sync::OnceLock<Kernel> = std::sync::OnceLock::new();
        *BEST.get_or_init(|| Self::available().last().copied().unwrap_or(Self::Portable))
    }
}

fn dense_view_with(
    kernel: Kernel,
    x: &[f32],
    rows: usize,
    w: PackedView<'_>,
    bias: &[f32],
    out: &mut [f32],
) {
    match kernel {
        Kernel::Portable => dense_portable(x, rows, w, bias, out),
        // SAFETY: `Kernel::available` lists `Avx2` only when the CPU supports AVX2 and FMA.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2 => unsafe { dense_avx2(x, rows, w, bias, out) },
        // SAFETY: `Kernel::available` lists `Avx512` only when the CPU supports AVX-512F.
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx512 => unsafe { dense_avx512(x, rows, w, bias, out) },
    }
}

/// What one register tile of the SIMD kernels reads, and where its rows go.
#[cfg(target_arch = "x86_64")]
struct TileOperands<'a> {
    /// Output width of the whole product.
    n: usize,
    /// The strip's first output column.
    c0: usize,
    /// The strip's real columns (fewer than [`TILE_COLUMNS`] in a zero-padded last strip).
    width: usize,
    /// The bias of the strip's columns, zero past `width` or without a bias.
    bias: [f32; TILE_COLUMNS],
    /// The strip's `k` rows of [`TILE_COLUMNS`] weights.
    weights: &'a [f32],
    /// The tile's rows of `x`, `rows * k`.
    x: &'a [f32],
}

#[cfg(target_arch = "x86_64")]
impl<'a> TileOperands<'a> {
    /// The operands of the tile of `rows` rows from `r0` over the columns of `strip`.
    ///
    /// # Panics
    /// When `x` holds fewer than `(r0 + rows) * w.k` values or `bias` is neither empty nor
    /// `w.n` long.
    #[inline(always)]
    fn new(
        x: &'a [f32],
        r0: usize,
        rows: usize,
        w: PackedView<'a>,
        strip: usize,
        bias: &[f32],
    ) -> Self {
        let k = w.k;
        let c0 = strip * TILE_COLUMNS;
        let width = TILE_COLUMNS.min(w.n - c0);
        let mut bias_tile = [0.0f32; TILE_COLUMNS];
        if !bias.is_empty() {
            bias_tile[..width].copy_from_slice(&bias[c0..c0 + width]);
        }
        Self {
            n: w.n,
            c0,
            width,
            bias: bias_tile,
            weights: &w.strips[strip * k * TILE_COLUMNS..(strip + 1) * k * TILE_COLUMNS],
            x: &x[r0 * k..(r0 + rows) * k],
        }
    }

    /// Writes the real columns of one computed tile row into output row `row` of `out`.
    #[inline(always)]
    fn store(&self, out: &mut [f32], row: usize, values: &[f32; TILE_COLUMNS]) {
        let at = row * self.n + self.c0;
        out[at..at + self.width].copy_from_slice(&values[..self.width]);
    }
}

/// Strips one group of the AVX-512 kernel covers: the 4-row tile spans the whole group (24
/// accumulators), the 8-row tile half of it at a time (24 accumulators), so that every tile keeps
/// both FMA ports busy (each accumulator's chain has a 4-cycle latency, so 2 ports need at least 8
/// independent chains, and more hide the loads) while its weight loads stay a few per `k`.
#[cfg(target_arch = "x86_64")]
const AVX512_GROUP_STRIPS: usize = 6;

/// Rows of the AVX-512 kernel's tall tile (8 rows × 3 strips).
#[cfg(target_arch = "x86_64")]
const AVX512_TILE_ROWS: usize = 8;

/// The AVX-512 kernel: groups of [`AVX512_GROUP_STRIPS`] strips, and within a group, tiles of 8
/// rows (over 3 strips at a time), then 4 rows, then single rows (over the whole group). A group's
/// weights (`6 · 16 · k` values) stay in L2 while every row tile streams through them.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dense_avx512(x: &[f32], rows: usize, w: PackedView<'_>, bias: &[f32], out: &mut [f32]) {
    let num_strips = w.n.div_ceil(TILE_COLUMNS);
    let half = AVX512_GROUP_STRIPS / 2;
    for group in (0..num_strips).step_by(AVX512_GROUP_STRIPS) {
        let strips = AVX512_GROUP_STRIPS.min(num_strips - group);
        let mut r0 = 0;
        // SAFETY: `dense` checked the lengths of `x`, `bias` and `out` against `rows` and `w`; every
        // tile below lies inside `rows` and the strips `group..group + strips`.
        unsafe {
            while r0 + AVX512_TILE_ROWS <= rows {
                for first in (group..group + strips).step_by(half) {
                    let width = half.min(group + strips - first);
                    tile_avx512_strips::<AVX512_TILE_ROWS>(x, r0, w, first, width, bias, out);
                }
                r0 += AVX512_TILE_ROWS;
            }
            if r0 + 4 <= rows {
                tile_avx512_strips::<4>(x, r0, w, group, strips, bias, out);
                r0 += 4;
            }
            for r in r0..rows {
                tile_avx512_strips::<1>(x, r, w, group, strips, bias, out);
            }
        }
    }
}

/// [`tile_avx512`] over `strips` (1 to [`AVX512_GROUP_STRIPS`]) strips from `first`.
///
/// # Safety
/// As [`tile_avx512`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512_strips<const R: usize>(
    x: &[f32],
    r0: usize,
    w: PackedView<'_>,
    first: usize,
    strips: usize,
    bias: &[f32],
    out: &mut [f32],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match strips {
            1 => tile_avx512::<R, 1>(x, r0, w, first, bias, out),
            2 => tile_avx512::<R, 2>(x, r0, w, first, bias, out),
            3 => tile_avx512::<R, 3>(x, r0, w, first, bias, out),
            4 => tile_avx512::<R, 4>(x, r0, w, first, bias, out),
            5 => tile_avx512::<R, 5>(x, r0, w, first, bias, out),
            _ => tile_avx512::<R, 6>(x, r0, w, first, bias, out),
        }
    }
}

/// One AVX-512 register tile: rows `r0..r0 + R` × the `V` strips from `first`, one 16-wide
/// accumulator per row and strip.
///
/// # Safety
/// The CPU supports AVX-512F; `x` holds `(r0 + R) * w.k` values at least, strips
/// `first..first + V` exist in `w`, `bias` is empty or `w.n` long, `out` holds `(r0 + R) * w.n`
/// values at least.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<const R: usize, const V: usize>(
    x: &[f32],
    r0: usize,
    w: PackedView<'_>,
    first: usize,
    bias: &[f32],
    out: &mut [f32],
) {
    use std::arch::x86_64::{
        __m512, _mm512_fmadd_ps, _mm512_loadu_ps, _mm512_set1_ps, _mm512_storeu_ps,
    };
    let k = w.k;
    let tiles: [TileOperands<'_>; V] =
        std::array::from_fn(|v| TileOperands::new(x, r0, R, w, first + v, bias));
    // SAFETY: every pointer below stays inside a `tiles[v].bias`, `tiles[v].weights` (k rows of
    // 16) or `tiles[0].x` (R rows of k), whose lengths `TileOperands::new` fixes.
    unsafe {
        let mut acc: [[__m512; V]; R] =
            [std::array::from_fn(|v| _mm512_loadu_ps(tiles[v].bias.as_ptr())); R];
        let w_ptrs: [*const f32; V] = std::array::from_fn(|v| tiles[v].weights.as_ptr());
        let x_ptr = tiles[0].x.as_ptr();
        for kk in 0..k {
            let w_rows: [__m512; V] =
                std::array::from_fn(|v| _mm512_loadu_ps(w_ptrs[v].add(kk * TILE_COLUMNS)));
            for (r, acc_row) in acc.iter_mut().enumerate() {
                let a = _mm512_set1_ps(*x_ptr.add(r * k + kk));
                for (acc_lane, w_row) in acc_row.iter_mut().zip(&w_rows) {
                    *acc_lane = _mm512_fmadd_ps(*w_row, a, *acc_lane);
                }
            }
        }
        let mut row = [0.0f32; TILE_COLUMNS];
        for (r, acc_row) in acc.iter().enumerate() {
            for (tile, acc_lane) in tiles.iter().zip(acc_row) {
                _mm512_storeu_ps(row.as_mut_ptr(), *acc_lane);
                tile.store(out, r0 + r, &row);
            }
        }
    }
}

/// [`dense_portable`]'s tiling with AVX2 intrinsics: each register tile is two 8-wide vectors per
/// row, updated with `vfmadd` (the same fused operation as `f32::mul_add`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dense_avx2(x: &[f32], rows: usize, w: PackedView<'_>, bias: &[f32], out: &mut [f32]) {
    for_each_tile(w, rows, TILE_ROWS, |strip, r0, tile_rows| {
        // SAFETY: as in `dense_avx512`.
        unsafe {
            match tile_rows {
                TILE_ROWS => tile_avx2::<TILE_ROWS>(x, r0, w, strip, bias, out),
                4 => tile_avx2::<4>(x, r0, w, strip, bias, out),
                _ => tile_avx2::<1>(x, r0, w, strip, bias, out),
            }
        }
    });
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
    let k = w.k;
    let tile = TileOperands::new(x, r0, R, w, strip, bias);
    // SAFETY: every pointer below stays inside `tile.bias`, `tile.weights` (k rows of 16) or
    // `tile.x` (R rows of k), whose lengths `TileOperands::new` fixes.
    unsafe {
        let low = _mm256_loadu_ps(tile.bias.as_ptr());
        let high = _mm256_loadu_ps(tile.bias.as_ptr().add(8));
        let mut acc_low = [low; R];
        let mut acc_high = [high; R];
        let w_ptr = tile.weights.as_ptr();
        let x_ptr = tile.x.as_ptr();
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
            tile.store(out, r0 + r, &row);
        }
    }
}

/// Register-tiled small-batch product (the portable path; [`dense_avx2`] tiles the same way): for each strip of output columns and each block of up to
/// [`TILE_ROWS`] rows, the accumulators stay in registers while the strip is streamed once over
/// `k` (and reused from cache by the next row block).
#[inline(always)]
fn dense_portable(x: &[f32], rows: usize, w: PackedView<'_>, bias: &[f32], out: &mut [f32]) {
    for_each_tile(w, rows, TILE_ROWS, |strip, r0, tile_rows| match tile_rows {
        TILE_ROWS => tile::<TILE_ROWS>(x, r0, w, strip, bias, out),
        4 => tile::<4>(x, r0, w, strip, bias, out),
        _ => tile::<1>(x, r0, w, strip, bias, out),
    });
}

/// The register tiles of every kernel: for each strip of output columns, blocks of `big` rows,
/// then one block of 4 if that many are left, then single rows. Calls `tile(strip, r0, rows)` with
/// `rows` one of `big`, 4 and 1.
#[inline(always)]
fn for_each_tile(
    w: PackedView<'_>,
    rows: usize,
    big: usize,
    mut tile: impl FnMut(usize, usize, usize),
) {
    for strip in 0..w.n.div_ceil(TILE_COLUMNS) {
        let mut r0 = 0;
        while r0 + big <= rows {
            tile(strip, r0, big);
            r0 += big;
        }
        if r0 + 4 <= rows {
            tile(strip, r0, 4);
            r0 += 4;
        }
        for r in r0..rows {
            tile(strip, r, 1);
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

/// One LSTM cell step for one row, in place (PyTorch's formulation, gate blocks i, f, g, o):
/// `z` (the `4H` pre-activations) becomes the activated gates, `cell` becomes `c_t`,
/// `tanh_cell` becomes `tanh(c_t)` and `hidden` becomes `h_t = o·tanh(c_t)`.
///
/// # Shapes
/// - `z`: `4H`; `cell`, `tanh_cell`, `hidden`: `H`
pub fn lstm_cell(z: &mut [f32], cell: &mut [f32], tanh_cell: &mut [f32], hidden: &mut [f32]) {
    let h = cell.len();
    let (ifg, o) = z.split_at_mut(3 * h);
    let (i_f, g) = ifg.split_at_mut(2 * h);
    sigmoid_in_place(i_f);
    tanh_in_place(g);
    sigmoid_in_place(o);
    let (i, f) = i_f.split_at(h);
    for ((((c, t), &i), &f), &g) in cell
        .iter_mut()
        .zip(tanh_cell.iter_mut())
        .zip(i)
        .zip(f)
        .zip(&*g)
    {
        *c = f * *c + i * g;
        *t = *c;
    }
    tanh_in_place(tanh_cell);
    for ((out, &o), &t) in hidden.iter_mut().zip(&*o).zip(&*tanh_cell) {
        *out = o * t;
    }
}

// Activation functions, vectorized.
//
// glibc's `tanhf` costs ≈ 24 ns a call on this machine (it goes through `expm1f`) and `expf` ≈ 5 ns;
// in a small LSTM the activations cost more than the matrix products. These are Cephes' `expf`
// and `tanhf` (S. L. Moshier), 8 lanes at a time with AVX2/FMA; the scalar versions below perform
// exactly the same fused operations in the same order, so both paths give identical bits and the
// result does not depend on the CPU. Both are within a few ulp of the exact functions (tested).

/// `exp` clamps its argument here, so that `2ⁿ` stays a normal float: `e^±87` are finite and
/// normal, and the sigmoid and tanh built on it are exact to f32 beyond that range.
const EXP_LIMIT: f32 = 87.0;
const LOG2_E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split in two, Cephes' `C1 + C2`, for an exact range reduction.
const LN2_HIGH: f32 = 0.693_359_4;
const LN2_LOW: f32 = -2.121_944_4e-4;
/// Cephes `expf`'s minimax polynomial (its decimal constants rounded to f32) for `e^r` on `|r| ≤ ln2 / 2`, highest degree first.
const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_6e-1,
    0.5,
];
/// Below this magnitude Cephes `tanhf` uses an odd polynomial instead of the exponential form,
/// which would cancel.
const TANH_SMALL: f32 = 0.625;
/// Cephes `tanhf`'s polynomial `P(x²)` in `tanh x = x + x³·P(x²)`, highest degree first.
const TANH_POLY: [f32; 5] = [
    -5.704_988_7e-3,
    2.063_908_8e-2,
    -5.373_971_5e-2,
    1.333_144_2e-1,
    -3.333_328e-1,
];

/// `e^x` (Cephes `expf`), the scalar twin of the AVX2 lanes.
fn exp_scalar(x: f32) -> f32 {
    let x = x.clamp(-EXP_LIMIT, EXP_LIMIT);
    let n = x.mul_add(LOG2_E, 0.5).floor();
    let r = (-n).mul_add(LN2_LOW, (-n).mul_add(LN2_HIGH, x));
    let mut p = EXP_POLY[0];
    for &c in &EXP_POLY[1..] {
        p = p.mul_add(r, c);
    }
    let y = p.mul_add(r * r, r) + 1.0;
    y * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The logistic function `1 / (1 + e^−x)`.
pub fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp_scalar(-x))
}

/// `tanh x` (Cephes `tanhf`).
pub fn tanh(x: f32) -> f32 {
    let a = x.abs();
    if a < TANH_SMALL {
        let s = x * x;
        let mut p = TANH_POLY[0];
        for &c in &TANH_POLY[1..] {
            p = p.mul_add(s, c);
        }
        (p * s).mul_add(x, x)
    } else {
        let t = 1.0 - 2.0 / (exp_scalar(a + a) + 1.0);
        t.copysign(x)
    }
}

/// [`sigmoid`] of every value, in place.
pub fn sigmoid_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, the only requirement.
        let rest = unsafe { avx512::sigmoid_lanes(values) };
        rest.iter_mut().for_each(|v| *v = sigmoid(*v));
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, the only requirement.
        let rest = unsafe { avx2::sigmoid_lanes(values) };
        rest.iter_mut().for_each(|v| *v = sigmoid(*v));
        return;
    }
    values.iter_mut().for_each(|v| *v = sigmoid(*v));
}

/// [`tanh`] of every value, in place.
pub fn tanh_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx512f") {
        // SAFETY: the CPU supports AVX-512F, the only requirement.
        let rest = unsafe { avx512::tanh_lanes(values) };
        rest.iter_mut().for_each(|v| *v = tanh(*v));
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU supports AVX2 and FMA, the only requirement.
        let rest = unsafe { avx2::tanh_lanes(values) };
        rest.iter_mut().for_each(|v| *v = tanh(*v));
        return;
    }
    values.iter_mut().for_each(|v| *v = tanh(*v));
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{EXP_LIMIT, EXP_POLY, LN2_HIGH, LN2_LOW, LOG2_E, TANH_POLY, TANH_SMALL};

    /// [`super::exp_scalar`] on 8 lanes.
    #[target_feature(enable = "avx2,fma")]
    fn exp8(x: __m256) -> __m256 {
        let x = _mm256_min_ps(
            _mm256_max_ps(x, _mm256_set1_ps(-EXP_LIMIT)),
            _mm256_set1_ps(EXP_LIMIT),
        );
        let n = _mm256_floor_ps(_mm256_fmadd_ps(
            x,
            _mm256_set1_ps(LOG2_E),
            _mm256_set1_ps(0.5),
        ));
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_HIGH), x);
        let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(LN2_LOW), r);
        let mut p = _mm256_set1_ps(EXP_POLY[0]);
        for &c in &EXP_POLY[1..] {
            p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
        }
        let y = _mm256_add_ps(
            _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r),
            _mm256_set1_ps(1.0),
        );
        let exponent = _mm256_slli_epi32::<23>(_mm256_add_epi32(
            _mm256_cvttps_epi32(n),
            _mm256_set1_epi32(127),
        ));
        _mm256_mul_ps(y, _mm256_castsi256_ps(exponent))
    }

    #[target_feature(enable = "avx2,fma")]
    fn sigmoid8(x: __m256) -> __m256 {
        let one = _mm256_set1_ps(1.0);
        let e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        _mm256_div_ps(one, _mm256_add_ps(one, e))
    }

    #[target_feature(enable = "avx2,fma")]
    fn tanh8(x: __m256) -> __m256 {
        let sign_bit = _mm256_set1_ps(-0.0);
        let a = _mm256_andnot_ps(sign_bit, x);
        let s = _mm256_mul_ps(x, x);
        let mut p = _mm256_set1_ps(TANH_POLY[0]);
        for &c in &TANH_POLY[1..] {
            p = _mm256_fmadd_ps(p, s, _mm256_set1_ps(c));
        }
        let small = _mm256_fmadd_ps(_mm256_mul_ps(p, s), x, x);
        let one = _mm256_set1_ps(1.0);
        let large = _mm256_sub_ps(
            one,
            _mm256_div_ps(
                _mm256_set1_ps(2.0),
                _mm256_add_ps(exp8(_mm256_add_ps(a, a)), one),
            ),
        );
        // copysign(large, x)
        let large = _mm256_or_ps(
            _mm256_andnot_ps(sign_bit, large),
            _mm256_and_ps(sign_bit, x),
        );
        let is_small = _mm256_cmp_ps::<_CMP_LT_OQ>(a, _mm256_set1_ps(TANH_SMALL));
        _mm256_blendv_ps(large, small, is_small)
    }

    /// Applies `f` to every whole group of 8 values; returns the rest.
    #[target_feature(enable = "avx2,fma")]
    fn lanes(values: &mut [f32], f: impl Fn(__m256) -> __m256) -> &mut [f32] {
        let whole = values.len() / 8 * 8;
        let (head, rest) = values.split_at_mut(whole);
        for chunk in head.chunks_exact_mut(8) {
            // SAFETY: `chunk` holds exactly 8 floats.
            unsafe { _mm256_storeu_ps(chunk.as_mut_ptr(), f(_mm256_loadu_ps(chunk.as_ptr()))) };
        }
        rest
    }

    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn sigmoid_lanes(values: &mut [f32]) -> &mut [f32] {
        lanes(values, |x| sigmoid8(x))
    }

    /// # Safety
    /// The CPU supports AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn tanh_lanes(values: &mut [f32]) -> &mut [f32] {
        lanes(values, |x| tanh8(x))
    }
}

/// The AVX2 activations on 16 lanes: the same fused operations in the same order, so the bits
/// equal the scalar ones (tested), at half the instructions per value.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{EXP_LIMIT, EXP_POLY, LN2_HIGH, LN2_LOW, LOG2_E, TANH_POLY, TANH_SMALL};

    /// Rounding toward −∞ without raising exceptions: `floor`.
    const FLOOR: i32 = _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC;

    /// [`super::exp_scalar`] on 16 lanes.
    #[target_feature(enable = "avx512f")]
    fn exp16(x: __m512) -> __m512 {
        let x = _mm512_min_ps(
            _mm512_max_ps(x, _mm512_set1_ps(-EXP_LIMIT)),
            _mm512_set1_ps(EXP_LIMIT),
        );
        let n = _mm512_roundscale_ps::<FLOOR>(_mm512_fmadd_ps(
            x,
            _mm512_set1_ps(LOG2_E),
            _mm512_set1_ps(0.5),
        ));
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_HIGH), x);
        let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(LN2_LOW), r);
        let mut p = _mm512_set1_ps(EXP_POLY[0]);
        for &c in &EXP_POLY[1..] {
            p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
        }
        let y = _mm512_add_ps(
            _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r),
            _mm512_set1_ps(1.0),
        );
        let exponent = _mm512_slli_epi32::<23>(_mm512_add_epi32(
            _mm512_cvttps_epi32(n),
            _mm512_set1_epi32(127),
        ));
        _mm512_mul_ps(y, _mm512_castsi512_ps(exponent))
    }

    #[target_feature(enable = "avx512f")]
    fn sigmoid16(x: __m512) -> __m512 {
        let one = _mm512_set1_ps(1.0);
        let e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), x));
        _mm512_div_ps(one, _mm512_add_ps(one, e))
    }

    #[target_feature(enable = "avx512f")]
    fn tanh16(x: __m512) -> __m512 {
        // AVX-512F has the bitwise operations on integers only (the float ones are AVX-512DQ).
        let sign_bit = _mm512_set1_epi32(i32::MIN);
        let x_bits = _mm512_castps_si512(x);
        let a = _mm512_castsi512_ps(_mm512_andnot_si512(sign_bit, x_bits));
        let s = _mm512_mul_ps(x, x);
        let mut p = _mm512_set1_ps(TANH_POLY[0]);
        for &c in &TANH_POLY[1..] {
            p = _mm512_fmadd_ps(p, s, _mm512_set1_ps(c));
        }
        let small = _mm512_fmadd_ps(_mm512_mul_ps(p, s), x, x);
        let one = _mm512_set1_ps(1.0);
        let large = _mm512_sub_ps(
            one,
            _mm512_div_ps(
                _mm512_set1_ps(2.0),
                _mm512_add_ps(exp16(_mm512_add_ps(a, a)), one),
            ),
        );
        // copysign(large, x)
        let large = _mm512_castsi512_ps(_mm512_or_si512(
            _mm512_andnot_si512(sign_bit, _mm512_castps_si512(large)),
            _mm512_and_si512(sign_bit, x_bits),
        ));
        let is_small = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, _mm512_set1_ps(TANH_SMALL));
        _mm512_mask_blend_ps(is_small, large, small)
    }

    /// Applies `f` to every whole group of 16 values; returns the rest.
    #[target_feature(enable = "avx512f")]
    fn lanes(values: &mut [f32], f: impl Fn(__m512) -> __m512) -> &mut [f32] {
        let whole = values.len() / 16 * 16;
        let (head, rest) = values.split_at_mut(whole);
        for chunk in head.chunks_exact_mut(16) {
            // SAFETY: `chunk` holds exactly 16 floats.
            unsafe { _mm512_storeu_ps(chunk.as_mut_ptr(), f(_mm512_loadu_ps(chunk.as_ptr()))) };
        }
        rest
    }

    /// # Safety
    /// The CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn sigmoid_lanes(values: &mut [f32]) -> &mut [f32] {
        lanes(values, |x| sigmoid16(x))
    }

    /// # Safety
    /// The CPU supports AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tanh_lanes(values: &mut [f32]) -> &mut [f32] {
        lanes(values, |x| tanh16(x))
    }
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
    fn packing_the_transpose_equals_packing_the_matrix() {
        for (k, n) in [(3, 16), (5, 37), (64, 2)] {
            let w: Vec<f32> = (0..k * n).map(|i| i as f32).collect();
            let w_t: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
            assert_eq!(
                PackedMatrix::pack_transposed(&w_t, k, n),
                PackedMatrix::pack(&w, k, n),
                "{k}x{n}"
            );
        }
    }

    #[test]
    fn dense_is_the_sequential_fused_sum_for_every_tiling() {
        // One set of pieces for every shape: `dense_in_pieces` reshapes what it is given.
        let mut pieces = Vec::new();
        for (rows, k, n, with_bias) in [
            (1, 3, 16, true),
            (4, 7, 32, true),
            (6, 9, 53, false),
            (64, 5, 18, true),
            (2, 1, 5, true),
            // Every remainder of the 8-, 6- and 4-row tiles.
            (13, 11, 40, true),
            (15, 4, 16, false),
            // AVX-512 strip groups: a full group with a partial last strip, a group and a single
            // strip, two groups with an uneven second half, and each with 8-, 4- and 1-row tiles.
            (13, 6, 83, true),
            (9, 5, 112, false),
            (21, 3, 177, true),
            (12, 4, 80, true),
            // Large enough to be split over the helper threads.
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
            let packed = PackedMatrix::pack(&w, k, n);
            let mut outputs = vec![("dense (threads)".to_string(), vec![f32::NAN; rows * n])];
            dense(&x, rows, &packed, &bias, &mut outputs[0].1);
            for kernel in Kernel::available() {
                let mut out = vec![f32::NAN; rows * n];
                dense_view_with(kernel, &x, rows, packed.view(), &bias, &mut out);
                outputs.push((format!("{kernel:?}"), out));
            }
            if !with_bias {
                dense_in_pieces(&x, rows, &packed, &mut pieces);
                let mut out = vec![f32::NAN; rows * n];
                let mut next_column = 0;
                for piece in &pieces {
                    assert_eq!(piece.columns.start, next_column, "pieces in column order");
                    next_column = piece.columns.end;
                    let width = piece.columns.len();
                    assert_eq!(piece.values.len(), rows * width);
                    for r in 0..rows {
                        out[r * n + piece.columns.start..r * n + piece.columns.end]
                            .copy_from_slice(&piece.values[r * width..(r + 1) * width]);
                    }
                }
                assert_eq!(next_column, n, "pieces cover every column");
                outputs.push((format!("dense_in_pieces ({} pieces)", pieces.len()), out));
            }
            for (name, out) in &outputs {
                for r in 0..rows {
                    for j in 0..n {
                        let mut expected = if with_bias { bias[j] } else { 0.0 };
                        for kk in 0..k {
                            expected = w[kk * n + j].mul_add(x[r * k + kk], expected);
                        }
                        assert_eq!(
                            out[r * n + j].to_bits(),
                            expected.to_bits(),
                            "{name}: {rows}x{k}x{n} at ({r}, {j})"
                        );
                    }
                }
            }
        }
    }

    fn grid() -> Vec<f32> {
        let mut xs: Vec<f32> = (-200_000..=200_000).map(|i| i as f32 * 5e-4).collect();
        xs.extend([
            0.0,
            -0.0,
            1e-30,
            -1e-30,
            1e-8,
            0.624_999_9,
            0.625,
            86.9,
            87.0,
            88.0,
            200.0,
        ]);
        xs.extend([-86.9, -87.0, -88.0, -200.0, f32::MAX, f32::MIN]);
        xs
    }

    #[test]
    fn activations_are_within_a_few_ulp_of_the_exact_functions() {
        for x in grid() {
            let xd = f64::from(x);
            let sig = 1.0 / (1.0 + (-xd).exp());
            let got = f64::from(sigmoid(x));
            assert!(
                (got - sig).abs() <= 4.0 * f64::from(f32::EPSILON) * sig.abs() + 1e-37,
                "sigmoid({x}) = {got}, exact {sig}"
            );
            let th = xd.tanh();
            let got = f64::from(tanh(x));
            assert!(
                (got - th).abs() <= 4.0 * f64::from(f32::EPSILON) * th.abs(),
                "tanh({x}) = {got}, exact {th}"
            );
        }
    }

    /// The vector lanes and the scalar tail compute identical bits.
    #[test]
    fn vectorized_activations_equal_the_scalar_ones() {
        let xs = grid();
        let mut sig = xs.clone();
        sigmoid_in_place(&mut sig);
        let mut th = xs.clone();
        tanh_in_place(&mut th);
        assert_equal_to_scalar(&xs, &sig, &th, "dispatched");
    }

    /// Every SIMD width this CPU has, called directly (the dispatch above picks only the widest).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_simd_width_computes_the_scalar_bits() {
        let xs = grid();
        type Lanes = unsafe fn(&mut [f32]) -> &mut [f32];
        let mut widths: Vec<(&str, Lanes, Lanes)> = Vec::new();
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            widths.push(("avx2", avx2::sigmoid_lanes, avx2::tanh_lanes));
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            widths.push(("avx512", avx512::sigmoid_lanes, avx512::tanh_lanes));
        }
        for (name, sigmoid_lanes, tanh_lanes) in widths {
            let (mut sig, mut th) = (xs.clone(), xs.clone());
            // SAFETY: only the kernels whose features this CPU reports are in `widths`.
            unsafe {
                sigmoid_lanes(&mut sig)
                    .iter_mut()
                    .for_each(|v| *v = sigmoid(*v));
                tanh_lanes(&mut th).iter_mut().for_each(|v| *v = tanh(*v));
            }
            assert_equal_to_scalar(&xs, &sig, &th, name);
        }
    }

    fn assert_equal_to_scalar(xs: &[f32], sig: &[f32], th: &[f32], kernel: &str) {
        for ((x, s), t) in xs.iter().zip(sig).zip(th) {
            assert_eq!(s.to_bits(), sigmoid(*x).to_bits(), "{kernel}: sigmoid({x})");
            assert_eq!(t.to_bits(), tanh(*x).to_bits(), "{kernel}: tanh({x})");
        }
    }

    #[test]
    fn lstm_cell_matches_the_definition() {
        let h = 11;
        let mut z: Vec<f32> = (0..4 * h).map(|i| (i as f32 * 0.7).sin() * 3.0).collect();
        let zs = z.clone();
        let mut cell: Vec<f32> = (0..h).map(|i| (i as f32 * 0.3).cos()).collect();
        let c0 = cell.clone();
        let (mut tanh_cell, mut hidden) = (vec![0.0; h], vec![0.0; h]);
        lstm_cell(&mut z, &mut cell, &mut tanh_cell, &mut hidden);
        let s = |x: f32| 1.0 / (1.0 + (-f64::from(x)).exp());
        for j in 0..h {
            let (i, f, g, o) = (
                s(zs[j]),
                s(zs[h + j]),
                f64::from(zs[2 * h + j]).tanh(),
                s(zs[3 * h + j]),
            );
            let c = f * f64::from(c0[j]) + i * g;
            assert!((f64::from(cell[j]) - c).abs() < 1e-6);
            assert!((f64::from(tanh_cell[j]) - c.tanh()).abs() < 1e-6);
            assert!((f64::from(hidden[j]) - o * c.tanh()).abs() < 1e-6);
            assert!((f64::from(z[3 * h + j]) - o).abs() < 1e-6);
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
