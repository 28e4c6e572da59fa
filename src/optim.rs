//! Optimization helpers burn does not provide.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::GradientsParams;
use burn::tensor::Tensor;

/// Scales all gradients together so that their global L2 norm is at most `max_norm`, as PyTorch's
/// `clip_grad_norm_`. Returns the norm before clipping.
///
/// burn's `GradientClippingConfig::Norm` clips each parameter tensor by its own norm, which changes
/// the direction of the update; PPO and GRPO implementations clip the global norm.
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f32 {
    struct Collect<'a> {
        grads: &'a GradientsParams,
        ids: Vec<(ParamId, usize)>,
        squares: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for Collect<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                self.squares.push(grad.powi_scalar(2).sum());
                self.ids.push((param.id, D));
            }
        }
    }
    let mut collect = Collect {
        grads,
        ids: Vec::new(),
        squares: Vec::new(),
    };
    module.visit(&mut collect);
    let Collect { ids, squares, .. } = collect;
    if squares.is_empty() {
        return 0.0;
    }
    let norm = Tensor::cat(squares, 0).sum().into_scalar::<f32>().sqrt();
    if norm.is_finite() && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        for (id, rank) in ids {
            match rank {
                1 => rescale::<1>(grads, id, scale),
                2 => rescale::<2>(grads, id, scale),
                3 => rescale::<3>(grads, id, scale),
                4 => rescale::<4>(grads, id, scale),
                _ => unreachable!("parameters of rank above 4 are not used in this crate"),
            }
        }
    }
    norm
}

/// Adds every gradient of `other` into `grads` (parameters of `module` only).
pub fn accumulate_grads<M: Module>(
    module: &M,
    grads: &mut GradientsParams,
    mut other: GradientsParams,
) {
    struct Merge<'a> {
        into: &'a mut GradientsParams,
        from: &'a mut GradientsParams,
    }
    impl ModuleVisitor for Merge<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.from.remove::<D>(param.id) {
                let sum = match self.into.remove::<D>(param.id) {
                    Some(existing) => existing + grad,
                    None => grad,
                };
                self.into.register(param.id, sum);
            }
        }
    }
    module.visit(&mut Merge {
        into: grads,
        from: &mut other,
    });
}

fn rescale<const D: usize>(grads: &mut GradientsParams, id: ParamId, scale: f32) {
    if let Some(grad) = grads.remove::<D>(id) {
        grads.register(id, grad.mul_scalar(scale));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    #[test]
    fn clips_the_global_norm_not_each_tensor() {
        let device = crate::backend::default_device().autodiff();
        let linear = LinearConfig::new(3, 2).init(&device).train();
        let x = Tensor::<2>::ones([4, 3], &device).mul_scalar(10.0);
        let loss = linear.forward(x).sum();
        let mut grads = GradientsParams::from_grads(loss.backward(), &linear);
        let weight = grads.get::<2>(linear.weight.id).unwrap();
        let bias = grads.get::<1>(linear.bias.as_ref().unwrap().id).unwrap();
        let host = |t: Tensor<1>| t.into_data().try_into_vec_as::<f32>().unwrap();
        let w: Vec<f32> = host(weight.clone().reshape([6]));
        let b: Vec<f32> = host(bias.clone());
        let expected_norm = w.iter().chain(&b).map(|v| v * v).sum::<f32>().sqrt();
        let norm = clip_grad_norm(&linear, &mut grads, 1.0);
        assert!((norm - expected_norm).abs() < 1e-3 * expected_norm);
        let w2: Vec<f32> = host(grads.get::<2>(linear.weight.id).unwrap().reshape([6]));
        let b2: Vec<f32> = host(grads.get::<1>(linear.bias.as_ref().unwrap().id).unwrap());
        let clipped_norm = w2.iter().chain(&b2).map(|v| v * v).sum::<f32>().sqrt();
        assert!((clipped_norm - 1.0).abs() < 1e-4);
        // Same direction: every component scaled by the same factor.
        assert!((w2[0] / w[0] - b2[0] / b[0]).abs() < 1e-5);
    }
}
