//! Re-syncing the frozen reference policy (TRL's `SyncRefModelCallback`, after TR-DPO, Gorbatovski
//! et al. 2024): `ref ← α·policy + (1 − α)·ref`, parameter by parameter.
//!
//! burn has no parameter-wise interpolation of two modules; this is a [`ModuleVisitor`] that
//! reads the policy's parameters and a [`ModuleMapper`] that mixes them into the reference's,
//! matched by [`ParamId`] (the reference is a copy of the policy, so they share ids).

use std::collections::HashMap;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::tensor::Tensor;

use crate::error::{Error, Result};

/// Returns `reference` with every parameter replaced by `alpha · policy + (1 − alpha) · reference`.
/// `policy` may live on an autodiff device; the result stays on the reference's device, without
/// gradients.
///
/// # Errors
/// [`Error::Invalid`] naming the parameter when a reference parameter has no counterpart of the
/// same shape in `policy` (the reference is not a copy of it).
pub(crate) fn mix_into<M: Module>(reference: M, policy: &M, alpha: f64) -> Result<M> {
    struct Collect {
        values: HashMap<ParamId, (Vec<usize>, Tensor<1>)>,
    }
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val().detach().without_autodiff();
            let dims = value.dims().to_vec();
            let numel: usize = dims.iter().product();
            self.values.insert(param.id, (dims, value.reshape([numel])));
        }
    }
    struct Mix {
        values: HashMap<ParamId, (Vec<usize>, Tensor<1>)>,
        alpha: f32,
        missing: Option<String>,
    }
    impl ModuleMapper for Mix {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, value, mapper) = param.consume();
            let dims = value.dims();
            let mixed = match self.values.remove(&id) {
                Some((policy_dims, policy_value)) if policy_dims == dims.to_vec() => {
                    let policy_value = policy_value.to_device(&value.device()).reshape(dims);
                    policy_value.mul_scalar(self.alpha) + value.mul_scalar(1.0 - self.alpha)
                }
                _ => {
                    self.missing.get_or_insert_with(|| format!("{id} {dims:?}"));
                    value
                }
            };
            Param::from_mapped_value(id, mixed, mapper)
        }
    }
    let mut collect = Collect {
        values: HashMap::new(),
    };
    policy.visit(&mut collect);
    let mut mix = Mix {
        values: collect.values,
        alpha: alpha as f32,
        missing: None,
    };
    let mixed = reference.map(&mut mix);
    match mix.missing {
        Some(param) => Err(Error::invalid(
            "reference policy",
            format!("parameter {param} has no counterpart of the same shape in the policy"),
        )),
        None => Ok(mixed),
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};

    use super::*;
    use crate::backend::default_device;

    fn weights(linear: &Linear) -> Vec<f32> {
        linear
            .weight
            .val()
            .into_data()
            .try_into_vec_as::<f32>()
            .unwrap()
    }

    #[test]
    fn mixing_interpolates_every_parameter_and_alpha_one_copies() {
        let device = default_device();
        let reference = LinearConfig::new(3, 2).init(&device);
        // Same ids, other values: what a trained copy of the reference looks like.
        let policy = reference
            .clone()
            .map(&mut Shift)
            .fork(&device.clone().autodiff())
            .train();
        let (r, p) = (weights(&reference), weights(&policy.valid()));
        let mixed = mix_into(reference.clone(), &policy, 0.6).unwrap();
        for ((m, r), p) in weights(&mixed).iter().zip(&r).zip(&p) {
            assert!((m - (0.6 * p + 0.4 * r)).abs() < 1e-6);
        }
        let copied = mix_into(reference.clone(), &policy, 1.0).unwrap();
        assert_eq!(weights(&copied), p);
        assert!(!copied.weight.val().is_autodiff());

        let stranger = LinearConfig::new(3, 2).init(&device);
        assert!(matches!(
            mix_into(stranger, &policy, 0.5),
            Err(Error::Invalid { .. })
        ));
    }

    struct Shift;
    impl ModuleMapper for Shift {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.map(|t| t.add_scalar(1.0))
        }
    }
}
