//! OLMoE encoder benchmarks (`cargo bench --bench olmoe`):
//!
//! - `olmoe_encode/tiny_a`: `encode_batch` throughput (tokens/s) on the tiny_a fixture.
//! - `olmoe_layer_1b7b/*`: one decoder layer at OLMoE-1B-7B sizes (hidden 2048, 16 heads of 128,
//!   64 experts top-8, expert FFN 1024) on random weights for 128 tokens, with sparse and dense
//!   experts, its attention and sparse-MoE halves alone, next to a `[128, 2048] × [2048, 1024]`
//!   matmul as the machine's baseline.
//!
//! FLOPs for 128 tokens (2 per multiply-add): attention projections 4.3 G, attention scores
//! 0.13 G, router 0.03 G; experts sparse 12.9 G (8 of 64 per token), dense 103 G. A layer is
//! ≈ 17.4 GFLOP sparse and ≈ 107.5 GFLOP dense; the baseline matmul is 0.537 GFLOP.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use factored_rl::backend::default_device;
use factored_rl::burn::tensor::{Tensor, TensorData};
use factored_rl::nn::init;
use factored_rl::olmoe::model::{OlmoeDecoderLayer, SequenceContext};
use factored_rl::olmoe::{ExpertExecution, OlmoeConfig, OlmoeEncoder};
use rand::SeedableRng;
use rand::rngs::StdRng;

const TEXTS: [&str; 8] = [
    "Hello world.",
    "The agent stored the user's address and now must decide whether to update it.",
    "Recurrent networks keep a hidden state across time steps.",
    "When the critic is good, the actor can learn faster.",
    "Retrieve every memory about the meeting on Tuesday.",
    "Summarize what was said about the budget so far.",
    "Delete the note that contradicts the latest instruction.",
    "  The agent\n\tlearns  fast!  ",
];

fn encode(c: &mut Criterion) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/olmoe/tiny_a");
    let encoder = OlmoeEncoder::load(&dir, &default_device()).expect("tiny_a loads");
    let tokens: usize = TEXTS
        .iter()
        .map(|t| encoder.token_ids(t).unwrap().len())
        .sum();
    let mut group = c.benchmark_group("olmoe_encode");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(tokens as u64));
    group.bench_function("tiny_a/batch8", |b| {
        b.iter(|| {
            let embeddings = encoder.encode_batch(black_box(&TEXTS)).unwrap();
            embeddings.into_data()
        })
    });
    group.finish();
}

const OLMOE_1B_7B: &str = r#"{
    "model_type": "olmoe", "vocab_size": 50304, "hidden_size": 2048, "intermediate_size": 1024,
    "num_hidden_layers": 16, "num_attention_heads": 16, "num_key_value_heads": 16,
    "max_position_embeddings": 4096, "rms_norm_eps": 1e-05, "num_experts": 64,
    "num_experts_per_tok": 8, "norm_topk_prob": false, "clip_qkv": null,
    "rope_theta": 10000.0, "rope_scaling": null, "tie_word_embeddings": false
}"#;

fn layer(c: &mut Criterion) {
    let device = default_device();
    let config = OlmoeConfig::from_json_str(OLMOE_1B_7B, Path::new("OLMoE-1B-7B config.json"))
        .expect("valid config");
    let num_tokens = 128;
    let mut rng = StdRng::seed_from_u64(0);
    let layer = OlmoeDecoderLayer::random(&config, 0.02, &mut rng, &device);
    let hidden = Tensor::<3>::from_data(
        TensorData::new(
            init::normal(num_tokens * config.hidden_size, 0.0, 1.0, &mut rng),
            [1, num_tokens, config.hidden_size],
        ),
        &device,
    );
    let context = SequenceContext::new(&config, &[num_tokens], num_tokens, &device);
    let lhs = Tensor::<2>::from_data(
        TensorData::new(
            init::normal(num_tokens * 2048, 0.0, 1.0, &mut rng),
            [num_tokens, 2048],
        ),
        &device,
    );
    let rhs = Tensor::<2>::from_data(
        TensorData::new(init::normal(2048 * 1024, 0.0, 1.0, &mut rng), [2048, 1024]),
        &device,
    );

    let mut group = c.benchmark_group("olmoe_layer_1b7b");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    group.bench_function("baseline_matmul_128x2048x1024", |b| {
        b.iter(|| lhs.clone().matmul(rhs.clone()).into_data())
    });
    group.throughput(Throughput::Elements(num_tokens as u64));
    for (name, execution) in [
        ("sparse_128_tokens", ExpertExecution::Sparse),
        ("dense_128_tokens", ExpertExecution::Dense),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let (out, _) = layer
                    .forward(black_box(hidden.clone()), &context, execution, 0)
                    .unwrap();
                out.into_data()
            })
        });
    }
    // The two halves of the sparse layer, to see where its time goes.
    group.bench_function("attention_only_128_tokens", |b| {
        b.iter(|| {
            layer
                .self_attn
                .forward(black_box(hidden.clone()), &context)
                .into_data()
        })
    });
    let rows = hidden.clone().reshape([num_tokens, config.hidden_size]);
    let all_rows = vec![true; num_tokens];
    group.bench_function("sparse_moe_only_128_tokens", |b| {
        b.iter(|| {
            let (out, _) = layer
                .mlp
                .forward(
                    black_box(rows.clone()),
                    &all_rows,
                    ExpertExecution::Sparse,
                    0,
                )
                .unwrap();
            out.into_data()
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    // No plots: the plotters backend needs system fonts that CI machines may lack.
    config = Criterion::default().without_plots();
    targets = encode, layer
}
criterion_main!(benches);
