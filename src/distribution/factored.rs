use burn::tensor::Tensor;

use super::MaskedCategorical;
use crate::action_space::ActionSpace;
use crate::error::{Error, Result};

/// The product of one [`MaskedCategorical`] per head of an [`ActionSpace`].
///
/// Built from the environment's masks; once the op of every row is known,
/// [`condition_on_ops`](Self::condition_on_ops) applies the space's op-conditioned mask rules to
/// the other heads. Acting and re-evaluating stored actions both go through this type, so the
/// rules — and therefore the log-probs — agree.
#[derive(Debug, Clone)]
pub struct FactoredDistribution<'a> {
    space: &'a ActionSpace,
    heads: Vec<MaskedCategorical>,
    ops: Option<Vec<usize>>,
}

impl<'a> FactoredDistribution<'a> {
    /// One distribution per head from per-head `logits` and row-major host `masks`.
    ///
    /// # Shapes
    /// - `logits[h]`: `[batch, size_h]`
    /// - `masks[h]`: `batch * size_h` booleans
    ///
    /// # Errors
    /// [`Error::WrongLength`] when the number of logits or masks is not the number of heads;
    /// [`Error::ShapeMismatch`] when a head's logits do not have its size or the batch differs;
    /// [`Error::EmptyMask`] naming the head and row.
    pub fn new<M: AsRef<[bool]>>(
        space: &'a ActionSpace,
        logits: Vec<Tensor<2>>,
        masks: &[M],
    ) -> Result<Self> {
        let num_heads = space.num_heads();
        for (what, found) in [("head logits", logits.len()), ("head masks", masks.len())] {
            if found != num_heads {
                return Err(Error::WrongLength {
                    what: what.into(),
                    expected: num_heads,
                    found,
                });
            }
        }
        let batch = logits[0].dims()[0];
        let heads = logits
            .into_iter()
            .zip(masks)
            .zip(space.heads())
            .map(|((logits, mask), spec)| {
                let dims = logits.dims();
                if dims != [batch, spec.size] {
                    return Err(Error::ShapeMismatch {
                        name: format!("logits of head `{}`", spec.name),
                        expected: vec![batch, spec.size],
                        found: dims.to_vec(),
                    });
                }
                MaskedCategorical::new(&spec.name, logits, mask.as_ref())
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            space,
            heads,
            ops: None,
        })
    }

    /// The action space.
    pub fn space(&self) -> &ActionSpace {
        self.space
    }

    /// The number of rows.
    pub fn batch_size(&self) -> usize {
        self.heads[0].batch_size()
    }

    /// The distribution of head `index` (after op conditioning, once applied).
    pub fn head(&self, index: usize) -> &MaskedCategorical {
        &self.heads[index]
    }

    /// All head distributions, in order.
    pub fn heads(&self) -> &[MaskedCategorical] {
        &self.heads
    }

    /// The op head's distribution.
    pub fn op(&self) -> &MaskedCategorical {
        &self.heads[self.space.op_index()]
    }

    /// The ops this distribution was conditioned on, if any.
    pub fn ops(&self) -> Option<&[usize]> {
        self.ops.as_deref()
    }

    /// Applies the op-conditioned rules given the chosen op of every row.
    ///
    /// # Errors
    /// [`Error::ShapeMismatch`] for a wrong count; [`Error::ActionOutOfRange`] or
    /// [`Error::MaskedAction`] when an op is not allowed by the op mask;
    /// [`Error::EmptyMask`] when a rule leaves a row of another head with no allowed action.
    pub fn condition_on_ops(mut self, ops: &[usize]) -> Result<Self> {
        self.op().check_actions(ops)?;
        for head in 0..self.heads.len() {
            if !self.space.has_rules_for(head) {
                continue;
            }
            let dist = &self.heads[head];
            let mut mask = dist.mask().to_vec();
            let n = dist.num_actions();
            let mut changed = false;
            for (row, &op) in ops.iter().enumerate() {
                changed |=
                    self.space
                        .restrict_mask_row(head, op, &mut mask[row * n..(row + 1) * n]);
            }
            if changed {
                self.heads[head] = dist.with_mask(&mask)?;
            }
        }
        self.ops = Some(ops.to_vec());
        Ok(self)
    }

    /// Per-head relevance weights of each row (1 where the head matters for the row's op).
    ///
    /// # Shapes
    /// - `ops`: `batch` op values
    /// - output: `num_heads` vectors of `batch` weights
    pub fn relevance(&self, ops: &[usize]) -> Vec<Vec<f32>> {
        (0..self.heads.len())
            .map(|head| {
                ops.iter()
                    .map(|&op| f32::from(u8::from(self.space.is_relevant(op, head))))
                    .collect()
            })
            .collect()
    }

    /// Log-probabilities of stored per-head actions, checked against the (conditioned) masks.
    ///
    /// # Shapes
    /// - `actions[h]`: `batch` indices
    /// - output: `num_heads` tensors `[batch]`
    ///
    /// # Errors
    /// [`Error::WrongLength`] for a wrong number of heads; the errors of
    /// [`MaskedCategorical::log_prob_checked`].
    pub fn log_probs<A: AsRef<[usize]>>(&self, actions: &[A]) -> Result<Vec<Tensor<1>>> {
        if actions.len() != self.heads.len() {
            return Err(Error::WrongLength {
                what: "per-head actions".into(),
                expected: self.heads.len(),
                found: actions.len(),
            });
        }
        self.heads
            .iter()
            .zip(actions)
            .map(|(dist, a)| dist.log_prob_checked(a.as_ref()))
            .collect()
    }

    /// Normalized entropy of every head.
    ///
    /// # Shapes
    /// - output: `num_heads` tensors `[batch]`
    pub fn normalized_entropies(&self) -> Vec<Tensor<1>> {
        self.heads
            .iter()
            .map(MaskedCategorical::normalized_entropy)
            .collect()
    }
}
