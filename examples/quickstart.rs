//! A tour of the building blocks: the reference factored action space, masked categorical heads
//! with an op-conditioned rule, and the PyTorch-layout LSTM with episode-start resets.
//!
//! Run with `cargo run --release --example quickstart`.

use factored_rl::action_space::{ActionSpace, reference};
use factored_rl::backend::default_device;
use factored_rl::burn::tensor::{Distribution, Tensor};
use factored_rl::distribution::FactoredDistribution;
use factored_rl::nn::{LstmConfig, LstmInit, LstmState};
use rand::SeedableRng;

fn main() -> factored_rl::Result<()> {
    let device = default_device();
    let space = ActionSpace::reference();
    let (batch, time, d_obs, d_hidden) = (2, 5, 8, 16);

    // An LSTM over a short batch of sequences; row 1 starts a new episode at step 3.
    let lstm = LstmConfig::new(d_obs, d_hidden)
        .with_init(LstmInit::Orthogonal {
            gain: 2f32.sqrt(),
            forget_bias: 1.0,
        })
        .init(&device);
    let observations = Tensor::<3>::random(
        [batch, time, d_obs],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let mut starts = vec![0.0f32; batch * time];
    starts[time + 3] = 1.0;
    let starts = Tensor::<1>::from_floats(starts.as_slice(), &device).reshape([batch, time]);
    let (features, _state) = lstm.forward(
        observations,
        LstmState::zeros(1, batch, d_hidden, &device),
        Some(starts),
    );
    let last = features
        .slice([0..batch, time - 1..time])
        .reshape([batch, d_hidden]);

    // One random linear readout per head, masks that forbid some actions, then the op decides
    // which style is allowed.
    let logits: Vec<Tensor<2>> = space
        .heads()
        .iter()
        .map(|head| {
            let w = Tensor::<2>::random(
                [d_hidden, head.size],
                Distribution::Normal(0.0, 0.5),
                &device,
            );
            last.clone().matmul(w)
        })
        .collect();
    let mut masks: Vec<Vec<bool>> = space
        .heads()
        .iter()
        .map(|h| vec![true; batch * h.size])
        .collect();
    masks[reference::OP][reference::FOSSILIZE] = false; // row 0 may not fossilize
    let dist = FactoredDistribution::new(&space, logits, &masks)?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let ops = dist.op().sample(&mut rng);
    let dist = dist.condition_on_ops(&ops)?;
    for (row, &op) in ops.iter().enumerate() {
        println!("row {row}: op {}", reference::OP_NAMES[op]);
        for (h, head) in space.heads().iter().enumerate() {
            let action = dist.head(h).sample(&mut rng)[row];
            let relevant = if space.is_relevant(op, h) {
                ""
            } else {
                " (irrelevant)"
            };
            println!("  {:<12} {action}{relevant}", head.name);
        }
    }
    let entropies = dist.normalized_entropies();
    let op_entropy = entropies[reference::OP].clone().into_data();
    println!("normalized op entropy per row: {op_entropy}");
    Ok(())
}
