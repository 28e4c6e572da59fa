//! Optimization helpers burn does not provide: a global gradient-norm clip, and Adam fused into
//! one pass per parameter on the CPU backend.

use std::sync::Mutex;

use burn::config::Config;
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{
    Adam, AdamConfig, AdamState, AdaptiveMomentumState, GradientsParams, LearningRate,
    ModuleOptimizer, Optimizer,
};
use burn::tensor::{DType, Device, Tensor, TensorData};

use crate::backend::is_host;
use crate::nn::fork;

/// Configuration of [`FusedAdam`]: Adam without weight decay or AMSGrad, as PPO uses it.
#[derive(Config, Debug)]
pub struct FusedAdamConfig {
    /// Decay of the first moment.
    #[config(default = 0.9)]
    pub beta_1: f32,
    /// Decay of the second moment.
    #[config(default = 0.999)]
    pub beta_2: f32,
    /// Added to the square root of the second moment (PyTorch's `eps`).
    #[config(default = 1e-5)]
    pub epsilon: f32,
}

impl FusedAdamConfig {
    /// A module optimizer that applies [`FusedAdam`] to every parameter.
    pub fn init(&self) -> ModuleOptimizer {
        ModuleOptimizer::from(FusedAdam {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            epsilon: self.epsilon,
            on_device: AdamConfig::new()
                .with_beta_1(self.beta_1)
                .with_beta_2(self.beta_2)
                .with_epsilon(self.epsilon)
                .build(),
        })
    }
}

/// burn's [`Adam`] update, bit for bit, with burn's state record ([`AdamState`]), so that its
/// checkpoints and burn's are interchangeable.
///
/// burn's Adam takes twelve tensor operations per parameter, each a pass over the parameter's
/// memory and most a new buffer: 17 ms of the 150 ms reference PPO update at 4 × 150 on the 2-core
/// development machine. On burn's CPU backend this does the same arithmetic, in the same order
/// and precision, in one pass that updates the parameter and both moments in place, split over the
/// cores. On any other backend it runs burn's Adam.
#[derive(Clone)]
pub struct FusedAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    on_device: Adam,
}

impl Optimizer for FusedAdam {
    type State<const D: usize> = AdamState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        let device = tensor.device();
        if !is_host(&device) || tensor.dtype() != DType::F32 {
            return self.on_device.step(lr, tensor, grad, state);
        }
        let shape = tensor.shape();
        let mut parameter = tensor.into_data();
        let grad = grad.into_data();
        let (time, moments) = match state {
            Some(state) => {
                let momentum = state.momentum;
                let moments = (momentum.moment_1.into_data(), momentum.moment_2.into_data());
                (momentum.time + 1, Some(moments))
            }
            None => (1, None),
        };
        // The same scalars, computed the same way, as burn's `AdaptiveMomentum::transform`.
        let bias_correction2_sqrt = (1.0 - self.beta_2.powi(time as i32)).sqrt();
        let coefficients = Coefficients {
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            combined_factor: bias_correction2_sqrt / (1.0 - self.beta_1.powi(time as i32)),
            denominator_epsilon: self.epsilon * bias_correction2_sqrt,
            learning_rate: lr as f32,
        };
        let (mut moment_1, mut moment_2) = moments.unwrap_or_else(|| {
            let zeros = || TensorData::new(vec![0.0f32; shape.num_elements()], shape.clone());
            (zeros(), zeros())
        });
        update_in_place(
            host_slice_mut(&mut parameter),
            host_slice(&grad),
            host_slice_mut(&mut moment_1),
            host_slice_mut(&mut moment_2),
            time == 1,
            &coefficients,
        );
        let upload = |data: TensorData| Tensor::<D>::from_data(data, &device);
        let state = AdamState::new(AdaptiveMomentumState::new(
            time,
            upload(moment_1),
            upload(moment_2),
        ));
        (upload(parameter), Some(state))
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        Adam::to_device(state, device)
    }
}

/// The per-step scalars of an Adam update.
struct Coefficients {
    beta_1: f32,
    beta_2: f32,
    combined_factor: f32,
    denominator_epsilon: f32,
    learning_rate: f32,
}

/// The fewest values a thread updates: a smaller part costs more to hand over than it saves.
const MIN_VALUES_PER_PART: usize = 1 << 15;

/// `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`, `p ← p − lr·(m·c)/(√v + ε')`, element by element
/// with each operation rounded as burn's tensor operations round it (on the first step burn
/// starts from `(1−β₁)g` and `(1−β₂)g²`, not from zero moments).
fn update_in_place(
    parameter: &mut [f32],
    grad: &[f32],
    moment_1: &mut [f32],
    moment_2: &mut [f32],
    first_step: bool,
    c: &Coefficients,
) {
    let update = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
        let (one_minus_beta_1, one_minus_beta_2) = (1.0 - c.beta_1, 1.0 - c.beta_2);
        for (((p, &g), m), v) in p.iter_mut().zip(g).zip(m.iter_mut()).zip(v.iter_mut()) {
            if first_step {
                *m = g * one_minus_beta_1;
                *v = (g * g) * one_minus_beta_2;
            } else {
                *m = *m * c.beta_1 + g * one_minus_beta_1;
                *v = *v * c.beta_2 + (g * g) * one_minus_beta_2;
            }
            let step = (*m * c.combined_factor) / (v.sqrt() + c.denominator_epsilon);
            *p -= step * c.learning_rate;
        }
    };
    let parts = (parameter.len() / MIN_VALUES_PER_PART).clamp(1, fork::threads());
    if parts == 1 {
        update(parameter, grad, moment_1, moment_2);
        return;
    }
    let chunk = parameter.len().div_ceil(parts);
    let pieces: Vec<Mutex<_>> = parameter
        .chunks_mut(chunk)
        .zip(grad.chunks(chunk))
        .zip(moment_1.chunks_mut(chunk))
        .zip(moment_2.chunks_mut(chunk))
        .map(|(((p, g), m), v)| Mutex::new((p, g, m, v)))
        .collect();
    fork::run_parts(pieces.len(), &|part| {
        let mut piece = pieces[part].lock().unwrap_or_else(|e| e.into_inner());
        let (p, g, m, v) = &mut *piece;
        update(p, g, m, v);
    });
}

/// The values of the data of an `f32` tensor (its callers check the dtype).
fn host_slice(data: &TensorData) -> &[f32] {
    data.as_slice::<f32>()
        .expect("the data of an f32 tensor is an f32 slice")
}

fn host_slice_mut(data: &mut TensorData) -> &mut [f32] {
    data.as_mut_slice::<f32>()
        .expect("the data of an f32 tensor is an f32 slice")
}

/// Scales all gradients together so that their global L2 norm is at most `max_norm`, as PyTorch's
/// `clip_grad_norm_`. Returns the norm before clipping.
///
/// burn's `GradientClippingConfig::Norm` clips each parameter tensor by its own norm, which changes
/// the direction of the update; PPO and GRPO implementations clip the global norm.
///
/// The norm is summed tensor by tensor with burn's operations. Keep that order: summing the same
/// squares in another order (tried: in `f64` on the host) rounds differently, and that alone sent
/// CartPole runs elsewhere (`docs/ppo.md`), so the documented results would no longer reproduce.
pub fn clip_grad_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: f32) -> f32 {
    struct SumSquares<'a> {
        grads: &'a GradientsParams,
        squares: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for SumSquares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.get::<D>(param.id) {
                self.squares.push(grad.powi_scalar(2).sum());
            }
        }
    }
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        scale: f32,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(grad) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, grad.mul_scalar(self.scale));
            }
        }
    }
    let mut sum = SumSquares {
        grads,
        squares: Vec::new(),
    };
    module.visit(&mut sum);
    if sum.squares.is_empty() {
        return 0.0;
    }
    let norm = Tensor::cat(sum.squares, 0)
        .sum()
        .into_scalar::<f32>()
        .sqrt();
    if norm.is_finite() && norm > max_norm {
        let scale = max_norm / (norm + 1e-6);
        module.visit(&mut Scale { grads, scale });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distribution::into_host;
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
        let w: Vec<f32> = into_host(weight.clone().reshape([6]));
        let b: Vec<f32> = into_host(bias.clone());
        let expected_norm = w.iter().chain(&b).map(|v| v * v).sum::<f32>().sqrt();
        let norm = clip_grad_norm(&linear, &mut grads, 1.0);
        assert!((norm - expected_norm).abs() < 1e-3 * expected_norm);
        let w2: Vec<f32> = into_host(grads.get::<2>(linear.weight.id).unwrap().reshape([6]));
        let b2: Vec<f32> = into_host(grads.get::<1>(linear.bias.as_ref().unwrap().id).unwrap());
        let clipped_norm = w2.iter().chain(&b2).map(|v| v * v).sum::<f32>().sqrt();
        assert!((clipped_norm - 1.0).abs() < 1e-4);
        // Same direction: every component scaled by the same factor.
        assert!((w2[0] / w[0] - b2[0] / b[0]).abs() < 1e-5);
    }

    /// A 300 × 300 layer (enough values for the update to be split over threads) and the
    /// gradients of a loss that differs at every step.
    fn layer_and_grads(
        device: &Device,
    ) -> (
        burn::nn::Linear,
        impl Fn(&burn::nn::Linear, usize) -> GradientsParams,
    ) {
        let linear = LinearConfig::new(300, 300).init(device).train();
        let device = device.clone();
        let grads = move |linear: &burn::nn::Linear, step: usize| {
            let x = Tensor::<2>::from_data(
                TensorData::new(
                    (0..2 * 300)
                        .map(|i| ((i * 7 + step * 13) % 23) as f32 / 11.0 - 1.0)
                        .collect::<Vec<_>>(),
                    [2, 300],
                ),
                &device,
            );
            let loss = linear.forward(x).powi_scalar(2).sum();
            GradientsParams::from_grads(loss.backward(), linear)
        };
        (linear, grads)
    }

    #[test]
    fn fused_adam_equals_burns_adam_bit_for_bit_and_shares_its_state() {
        let device = crate::backend::default_device().autodiff();
        let (linear, grads) = layer_and_grads(&device);
        let mut burns = AdamConfig::new()
            .with_beta_2(0.99)
            .with_epsilon(1e-5)
            .init();
        let mut fused = FusedAdamConfig::new().with_beta_2(0.99).init();
        let (mut a, mut b) = (linear.clone(), linear);
        for step in 0..4 {
            let lr = 1e-3 * (step + 1) as f64;
            let before = into_host(b.weight.val());
            a = burns.step(lr, a.clone(), grads(&a, step));
            b = fused.step(lr, b.clone(), grads(&b, step));
            let (wa, wb) = (into_host(a.weight.val()), into_host(b.weight.val()));
            let differ = wa
                .iter()
                .zip(&wb)
                .filter(|(x, y)| x.to_bits() != y.to_bits());
            assert_eq!(differ.count(), 0, "weights differ after step {step}");
            assert_ne!(wb, before, "step {step} changed nothing");
        }
        // Each optimizer's state continues the other's run exactly.
        let mut fused_from_burns = FusedAdamConfig::new()
            .with_beta_2(0.99)
            .init()
            .load_record(burns.to_record());
        let mut burns_from_fused = AdamConfig::new()
            .with_beta_2(0.99)
            .with_epsilon(1e-5)
            .init()
            .load_record(fused.to_record());
        let c = fused_from_burns.step(1e-3, a.clone(), grads(&a, 9));
        let d = burns_from_fused.step(1e-3, b.clone(), grads(&b, 9));
        let e = burns.step(1e-3, a.clone(), grads(&a, 9));
        let bits = |l: &burn::nn::Linear| -> Vec<u32> {
            into_host(l.weight.val())
                .iter()
                .map(|v| v.to_bits())
                .collect()
        };
        assert_eq!(bits(&c), bits(&e));
        assert_eq!(bits(&d), bits(&e));
    }

    #[test]
    fn clipping_uses_burns_norm_and_scales_every_gradient_exactly() {
        let device = crate::backend::default_device().autodiff();
        let (linear, grads) = layer_and_grads(&device);
        let mut clipped = grads(&linear, 0);
        let original = grads(&linear, 0);
        let weight = into_host(original.get::<2>(linear.weight.id).unwrap());
        let bias = into_host(original.get::<1>(linear.bias.as_ref().unwrap().id).unwrap());
        let expected: f64 = weight
            .iter()
            .chain(&bias)
            .map(|&g| f64::from(g) * f64::from(g))
            .sum::<f64>()
            .sqrt();
        let norm = clip_grad_norm(&linear, &mut clipped, 0.5);
        // Summed as earlier releases summed it, so that training runs reproduce to the bit.
        let burns_norm = Tensor::cat(
            vec![
                original
                    .get::<2>(linear.weight.id)
                    .unwrap()
                    .powi_scalar(2)
                    .sum(),
                original
                    .get::<1>(linear.bias.as_ref().unwrap().id)
                    .unwrap()
                    .powi_scalar(2)
                    .sum(),
            ],
            0,
        )
        .sum()
        .into_scalar::<f32>()
        .sqrt();
        assert_eq!(norm.to_bits(), burns_norm.to_bits());
        assert!(
            (f64::from(norm) - expected).abs() < 1e-5 * expected,
            "norm {norm}, expected {expected}"
        );
        assert!(expected > 0.5, "the test needs a norm above the clip");
        let scale = 0.5 / (norm + 1e-6);
        let after = into_host(clipped.get::<2>(linear.weight.id).unwrap());
        for (row, (&g, &c)) in weight.iter().zip(&after).enumerate() {
            assert_eq!(c.to_bits(), (g * scale).to_bits(), "weight gradient {row}");
        }
        // Below the limit nothing changes.
        let mut unclipped = grads(&linear, 0);
        clip_grad_norm(&linear, &mut unclipped, 2.0 * norm);
        assert_eq!(
            into_host(unclipped.get::<2>(linear.weight.id).unwrap()),
            weight
        );
    }
}
