use burn::tensor::activation::log_softmax;
use burn::tensor::{Bool, Device, Int, Tensor, TensorData};
use rand::{Rng, RngExt};

use crate::error::{Error, Result};

/// The logit given to masked actions: finite, so no NaN appears in values or gradients, and low
/// enough that `exp` of it is exactly 0 in `f32` (sb3-contrib uses the same value).
pub const MASKED_LOGIT: f32 = -1e8;

/// A categorical distribution over `[batch, n]` logits with a per-row mask of allowed actions.
///
/// The mask is kept on the host as well as on the device, so validation (empty rows, masked or
/// out-of-range actions) and sampling never need a device read of the mask.
#[derive(Debug, Clone)]
pub struct MaskedCategorical {
    head: String,
    logits: Tensor<2>,
    log_probs: Tensor<2>,
    mask: Tensor<2, Bool>,
    mask_host: Vec<bool>,
    batch: usize,
    num_actions: usize,
}

impl MaskedCategorical {
    /// Builds the distribution of head `head` from raw `logits` and a row-major host `mask`
    /// (`true` = allowed).
    ///
    /// # Shapes
    /// - `logits`: `[batch, n]`
    /// - `mask`: `batch * n` booleans, row-major
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] when the mask length is not `batch * n`;
    /// [`Error::EmptyMask`] naming the head and the first row that allows no action.
    pub fn new(head: &str, logits: Tensor<2>, mask: &[bool]) -> Result<Self> {
        let [batch, num_actions] = logits.dims();
        if mask.len() != batch * num_actions {
            return Err(Error::ShapeMismatch {
                name: format!("mask of head `{head}`"),
                expected: vec![batch, num_actions],
                found: vec![mask.len()],
            });
        }
        if let Some(row) = first_empty_row(mask, num_actions) {
            return Err(Error::EmptyMask {
                head: head.to_string(),
                row,
            });
        }
        let device = logits.device();
        let mask_tensor = bool_tensor(mask, [batch, num_actions], &device);
        let masked_logits = logits
            .clone()
            .mask_fill(mask_tensor.clone().bool_not(), MASKED_LOGIT);
        Ok(Self {
            head: head.to_string(),
            log_probs: log_softmax(masked_logits, 1),
            logits,
            mask: mask_tensor,
            mask_host: mask.to_vec(),
            batch,
            num_actions,
        })
    }

    /// The same logits under another mask (used to apply op-conditioned rules).
    ///
    /// # Errors
    /// As [`MaskedCategorical::new`].
    pub fn with_mask(&self, mask: &[bool]) -> Result<Self> {
        Self::new(&self.head, self.logits.clone(), mask)
    }

    /// The head this distribution belongs to.
    pub fn head(&self) -> &str {
        &self.head
    }

    /// The number of rows.
    pub fn batch_size(&self) -> usize {
        self.batch
    }

    /// The number of actions per row.
    pub fn num_actions(&self) -> usize {
        self.num_actions
    }

    /// The host copy of the mask, row-major `[batch, n]`.
    pub fn mask(&self) -> &[bool] {
        &self.mask_host
    }

    /// The mask row `row`.
    pub fn mask_row(&self, row: usize) -> &[bool] {
        &self.mask_host[row * self.num_actions..(row + 1) * self.num_actions]
    }

    /// Normalized log-probabilities of every action; masked entries hold a large finite negative.
    ///
    /// # Shapes
    /// - output: `[batch, n]`
    pub fn log_probs(&self) -> Tensor<2> {
        self.log_probs.clone()
    }

    /// Probabilities of every action; masked entries are exactly 0.
    ///
    /// # Shapes
    /// - output: `[batch, n]`
    pub fn probs(&self) -> Tensor<2> {
        self.log_probs.clone().exp()
    }

    /// Log-probability of `actions` without validation: the caller guarantees they are allowed
    /// (a masked action gets a log-prob near [`MASKED_LOGIT`]). Use
    /// [`log_prob_checked`](Self::log_prob_checked) for actions that come from outside.
    ///
    /// # Shapes
    /// - `actions`: `[batch]`
    /// - output: `[batch]`
    pub fn log_prob(&self, actions: Tensor<1, Int>) -> Tensor<1> {
        self.log_probs
            .clone()
            .gather(1, actions.unsqueeze_dim(1))
            .squeeze_dim(1)
    }

    /// Log-probability of host `actions`, checked against the mask.
    ///
    /// # Shapes
    /// - `actions`: `batch` indices
    /// - output: `[batch]`
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a wrong count, [`Error::ActionOutOfRange`] or
    /// [`Error::MaskedAction`] naming the head and row.
    pub fn log_prob_checked(&self, actions: &[usize]) -> Result<Tensor<1>> {
        self.check_actions(actions)?;
        let indices = actions.iter().map(|&a| a as i64).collect::<Vec<_>>();
        let indices = Tensor::<1, Int>::from_data(
            TensorData::new(indices, [self.batch]),
            &self.log_probs.device(),
        );
        Ok(self.log_prob(indices))
    }

    /// Checks that every action is in range and allowed by its row's mask.
    ///
    /// # Errors
    /// As [`log_prob_checked`](Self::log_prob_checked).
    pub fn check_actions(&self, actions: &[usize]) -> Result<()> {
        if actions.len() != self.batch {
            return Err(Error::ShapeMismatch {
                name: format!("actions of head `{}`", self.head),
                expected: vec![self.batch],
                found: vec![actions.len()],
            });
        }
        for (row, &action) in actions.iter().enumerate() {
            if action >= self.num_actions {
                return Err(Error::ActionOutOfRange {
                    head: self.head.clone(),
                    row,
                    action,
                    size: self.num_actions,
                });
            }
            if !self.mask_host[row * self.num_actions + action] {
                return Err(Error::MaskedAction {
                    head: self.head.clone(),
                    row,
                    action,
                });
            }
        }
        Ok(())
    }

    /// Entropy in nats, `-Σ p·ln p` over the allowed actions (0 for a row with one allowed action).
    ///
    /// # Shapes
    /// - output: `[batch]`
    pub fn entropy(&self) -> Tensor<1> {
        let p_log_p = self.probs() * self.log_probs.clone();
        // Explicitly zero masked entries so that neither value nor gradient depends on the
        // finite stand-in logit.
        p_log_p
            .mask_fill(self.mask.clone().bool_not(), 0.0)
            .sum_dim(1)
            .squeeze_dim(1)
            .neg()
    }

    /// Entropy divided by `ln(number of allowed actions)`, in `[0, 1]`; exactly 0 for a row with
    /// one allowed action.
    ///
    /// # Shapes
    /// - output: `[batch]`
    pub fn normalized_entropy(&self) -> Tensor<1> {
        let scale = self
            .mask_host
            .chunks(self.num_actions)
            .map(|row| match row.iter().filter(|&&m| m).count() {
                0 | 1 => 0.0,
                n => 1.0 / (n as f32).ln(),
            })
            .collect::<Vec<_>>();
        let scale =
            Tensor::<1>::from_data(TensorData::new(scale, [self.batch]), &self.logits.device());
        self.entropy() * scale
    }

    /// The most likely allowed action of each row (the first one on ties).
    ///
    /// # Shapes
    /// - output: `batch` indices
    pub fn mode(&self) -> Vec<usize> {
        let log_probs = to_host(&self.log_probs);
        log_probs
            .chunks(self.num_actions)
            .zip(self.mask_host.chunks(self.num_actions))
            .map(|(row, mask)| argmax_allowed(row, mask))
            .collect()
    }

    /// Draws one action per row from `rng`. Never returns a masked action.
    ///
    /// # Shapes
    /// - output: `batch` indices
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<usize> {
        let probs = to_host(&self.probs());
        probs
            .chunks(self.num_actions)
            .zip(self.mask_host.chunks(self.num_actions))
            .map(|(row, mask)| sample_allowed(row, mask, rng))
            .collect()
    }
}

/// The first row of a row-major `[rows, n]` mask with no allowed entry.
pub(crate) fn first_empty_row(mask: &[bool], num_actions: usize) -> Option<usize> {
    mask.chunks(num_actions.max(1))
        .position(|row| !row.iter().any(|&m| m))
}

/// Index of the largest allowed value; the first on ties. The row must allow something.
pub(crate) fn argmax_allowed(values: &[f32], mask: &[bool]) -> usize {
    let mut best = None::<(usize, f32)>;
    for (i, (&v, &allowed)) in values.iter().zip(mask).enumerate() {
        if allowed && best.is_none_or(|(_, b)| v > b) {
            best = Some((i, v));
        }
    }
    best.map_or(0, |(i, _)| i)
}

/// Inverse-CDF draw over the allowed entries of one row of probabilities.
pub(crate) fn sample_allowed<R: Rng + ?Sized>(probs: &[f32], mask: &[bool], rng: &mut R) -> usize {
    let total: f64 = probs
        .iter()
        .zip(mask)
        .filter(|&(_, &m)| m)
        .map(|(&p, _)| p as f64)
        .sum();
    let target = rng.random::<f64>() * total;
    let mut cumulative = 0.0;
    let mut last_allowed = 0;
    for (i, (&p, &allowed)) in probs.iter().zip(mask).enumerate() {
        if !allowed {
            continue;
        }
        last_allowed = i;
        cumulative += p as f64;
        if target < cumulative {
            return i;
        }
    }
    // Rounding can leave `target` just above the last cumulative sum.
    last_allowed
}

pub(crate) fn bool_tensor<const D: usize>(
    values: &[bool],
    shape: [usize; D],
    device: &Device,
) -> Tensor<D, Bool> {
    Tensor::from_data(TensorData::new(values.to_vec(), shape), device)
}

/// The values of `tensor`, taking it. On burn's CPU backend a tensor nothing else holds is read
/// without a copy beyond the one into the vector (none when its buffer came from a `Vec<f32>`),
/// where [`to_host`] copies three times (into bytes, into an aligned buffer, into the vector).
pub(crate) fn into_host<const D: usize>(tensor: Tensor<D>) -> Vec<f32> {
    tensor
        .into_data()
        .try_into_vec_as::<f32>()
        .expect("a float tensor converts to f32")
}

/// `f` over the values of an `f32` tensor without collecting them into a vector (one copy fewer
/// than [`to_host`] for a tensor that is also held elsewhere, such as a parameter).
pub(crate) fn with_host_values<const D: usize, R>(
    tensor: Tensor<D>,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    let data = tensor
        .into_data()
        .try_cast_as::<f32>()
        .expect("a float tensor converts to f32");
    f(data.as_slice::<f32>().expect("f32 data is an f32 slice"))
}

/// The values of `tensor` (it stays usable; see [`into_host`] for a tensor that can be taken).
pub(crate) fn to_host<const D: usize>(tensor: &Tensor<D>) -> Vec<f32> {
    tensor
        .to_data()
        .try_into_vec_as::<f32>()
        .expect("a float tensor converts to f32")
}

/// Masked log-softmax of one row on the host: allowed entries get `x − logsumexp(allowed x)`,
/// masked entries [`MASKED_LOGIT`]. Agrees with [`MaskedCategorical::log_probs`] to float rounding;
/// used where a handful of rows are already on the host (acting), so no device round trip is needed.
pub fn masked_log_softmax_row(logits: &[f32], mask: &[bool], out: &mut [f32]) {
    let max = logits
        .iter()
        .zip(mask)
        .filter(|&(_, &m)| m)
        .map(|(&x, _)| x)
        .fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits
        .iter()
        .zip(mask)
        .filter(|&(_, &m)| m)
        .map(|(&x, _)| (x - max).exp())
        .sum();
    let log_sum = max + sum.ln();
    for ((o, &x), &m) in out.iter_mut().zip(logits).zip(mask) {
        *o = if m { x - log_sum } else { MASKED_LOGIT };
    }
}
