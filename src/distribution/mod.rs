//! Invalid-action-masked categorical distributions (SPEC §3) and their factored product over the
//! heads of an [`ActionSpace`](crate::action_space::ActionSpace).
//!
//! Masking follows Huang & Ontañón, "A Closer Look at Invalid Action Masking in Policy Gradient
//! Algorithms" (2020), as sb3-contrib's `MaskableCategorical` implements it: masked logits are
//! replaced by a large finite negative, so masked probabilities are exactly 0 and nothing is NaN.

mod factored;
mod masked;

pub use factored::FactoredDistribution;
pub use masked::{MASKED_LOGIT, MaskedCategorical, masked_log_softmax_row};
pub(crate) use masked::{
    argmax_allowed, first_empty_row, into_host, sample_allowed, to_host, with_host_values,
};
