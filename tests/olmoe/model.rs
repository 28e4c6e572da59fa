//! Forward properties on tiny_a, and the config paths tiny_a does not exercise (GQA, MQA,
//! `clip_qkv`, `norm_topk_prob`, tied embeddings, an explicit `head_dim`) against a naive f64
//! reference written from the transformers semantics in `tests/fixtures/README.md`.

use std::path::Path;

use factored_rl::Error;
use factored_rl::backend::default_device;
use factored_rl::burn::module::Param;
use factored_rl::burn::tensor::Tensor;
use factored_rl::olmoe::encoder::mean_pooled;
use factored_rl::olmoe::model::OlmoeDecoderLayer;
use factored_rl::olmoe::{
    ExpertExecution, ForwardOptions, OlmoeConfig, OlmoeEncoder, OlmoeModel, TokenBatch,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::support::*;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn tiny_a_encoder() -> OlmoeEncoder {
    OlmoeEncoder::load(tiny_a(), &default_device()).unwrap()
}

#[test]
fn sparse_and_dense_experts_agree() {
    let encoder = tiny_a_encoder();
    let sequences: Vec<Vec<u32>> = TEXTS
        .iter()
        .map(|t| encoder.token_ids(t).unwrap())
        .collect();
    let tokens = TokenBatch::right_padded(&sequences, encoder.pad_id()).unwrap();
    let run = |expert_execution| {
        let options = ForwardOptions {
            router_logits: true,
            expert_execution,
            ..ForwardOptions::default()
        };
        let out = encoder.model.forward(&tokens, options).unwrap();
        (
            host(out.last_hidden),
            out.router_logits
                .into_iter()
                .flat_map(host)
                .collect::<Vec<_>>(),
        )
    };
    let (sparse, sparse_router) = run(ExpertExecution::Sparse);
    let (dense, dense_router) = run(ExpertExecution::Dense);
    // Layer 0's router sees identical inputs; later layers see inputs that differ by rounding
    // (the experts' outputs are summed in another order).
    let diff = max_abs_diff(&sparse_router, &dense_router);
    assert!(diff < 1e-5, "router logits max |diff| {diff}");
    // Compare real positions only: dense runs padded rows through the experts (with zero
    // weights) while sparse skips them, and both leave padded rows undefined.
    let hidden = encoder.hidden_size();
    for (row, &length) in tokens.lengths().iter().enumerate() {
        let span = row * tokens.seq_len() * hidden..(row * tokens.seq_len() + length) * hidden;
        let diff = max_abs_diff(&sparse[span.clone()], &dense[span]);
        assert!(diff < 1e-5, "row {row}: sparse vs dense max |diff| {diff}");
    }
}

#[test]
fn batch_embeddings_equal_single_ones() {
    let encoder = tiny_a_encoder();
    let batch = host(encoder.encode_batch(&TEXTS).unwrap());
    let hidden = encoder.hidden_size();
    for (i, text) in TEXTS.iter().enumerate() {
        let single = host(encoder.encode(text).unwrap());
        let diff = max_abs_diff(&batch[i * hidden..(i + 1) * hidden], &single);
        assert!(diff < 1e-5, "text {i}: batch vs single max |diff| {diff}");
        assert_eq!(encoder.embed(text).unwrap(), single);
    }
    assert!(matches!(
        encoder.encode_batch(&[]),
        Err(Error::Invalid { .. })
    ));
}

#[test]
fn truncation_keeps_the_first_tokens() {
    let encoder = tiny_a_encoder();
    let text = TEXTS[1];
    let full = encoder.token_ids(text).unwrap();
    assert!(full.len() > 5);
    let truncated = tiny_a_encoder().with_max_length(5).unwrap();
    assert_eq!(truncated.token_ids(text).unwrap(), full[..5]);
    let prefix = TokenBatch::right_padded(&[full[..5].to_vec()], 1).unwrap();
    let want = host(mean_pooled(&encoder.model, &prefix).unwrap());
    let got = host(truncated.encode(text).unwrap());
    assert!(max_abs_diff(&got, &want) < 1e-6);
    assert_ne!(host(encoder.encode(text).unwrap()), got);
    for bad in [0, 129] {
        assert!(matches!(
            tiny_a_encoder().with_max_length(bad),
            Err(Error::Invalid { .. })
        ));
    }
}

#[test]
fn tokenizer_without_bos_adds_none_and_empty_text_is_an_error() {
    let dir = folder_with(|_| {});
    let path = dir.path().join("tokenizer.json");
    let mut tokenizer: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    tokenizer["post_processor"] = serde_json::Value::Null;
    std::fs::write(&path, tokenizer.to_string()).unwrap();
    let with_bos = tiny_a_encoder();
    let without_bos = OlmoeEncoder::load(dir.path(), &default_device()).unwrap();
    let ids = with_bos.token_ids("Hello world.").unwrap();
    assert_eq!(ids[0], 2);
    assert_eq!(without_bos.token_ids("Hello world.").unwrap(), ids[1..]);
    assert_eq!(with_bos.token_ids("").unwrap(), vec![2]);
    assert!(matches!(
        without_bos.token_ids(""),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(without_bos.embed(""), Err(Error::Invalid { .. })));
}

#[test]
fn out_of_vocabulary_ids_are_errors() {
    let encoder = tiny_a_encoder();
    let tokens = TokenBatch::right_padded(&[vec![2u32, 400]], 1).unwrap();
    assert!(matches!(
        encoder.model.forward(&tokens, ForwardOptions::default()),
        Err(Error::Invalid { .. })
    ));
}

// ---- naive f64 reference --------------------------------------------------------------------

fn values<const D: usize>(param: &Param<Tensor<D>>) -> Vec<f64> {
    host(param.val()).into_iter().map(f64::from).collect()
}

/// `x [rows, d_in] · w [d_in, d_out]` (burn's Linear layout).
fn matmul(x: &[f64], w: &[f64], d_in: usize) -> Vec<f64> {
    let d_out = w.len() / d_in;
    let rows = x.len() / d_in;
    let mut out = vec![0.0; rows * d_out];
    for r in 0..rows {
        for k in 0..d_in {
            let a = x[r * d_in + k];
            for c in 0..d_out {
                out[r * d_out + c] += a * w[k * d_out + c];
            }
        }
    }
    out
}

/// `x [rows, d_in] · wᵀ` for a PyTorch-layout `w [d_out, d_in]`.
fn matmul_torch(x: &[f64], w: &[f64], d_in: usize) -> Vec<f64> {
    let d_out = w.len() / d_in;
    let mut transposed = vec![0.0; w.len()];
    for o in 0..d_out {
        for k in 0..d_in {
            transposed[k * d_out + o] = w[o * d_in + k];
        }
    }
    matmul(x, &transposed, d_in)
}

fn rms_rows(x: &[f64], gamma: &[f64], eps: f64) -> Vec<f64> {
    let d = gamma.len();
    x.chunks(d)
        .flat_map(|row| {
            let scale = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / d as f64 + eps).sqrt();
            row.iter().zip(gamma).map(move |(v, g)| v * scale * g)
        })
        .collect()
}

fn softmax(x: &[f64]) -> Vec<f64> {
    let max = x.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let exps: Vec<f64> = x.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.iter().map(|e| e / sum).collect()
}

/// NeoX rotation of one head vector at `position`.
fn rope(x: &[f64], position: usize, theta: f64) -> Vec<f64> {
    let d = x.len();
    let half = d / 2;
    let mut out = vec![0.0; d];
    for i in 0..half {
        let angle = position as f64 * theta.powf(-(2.0 * i as f64) / d as f64);
        let (sin, cos) = angle.sin_cos();
        out[i] = x[i] * cos - x[i + half] * sin;
        out[i + half] = x[i + half] * cos + x[i] * sin;
    }
    out
}

fn reference_layer(layer: &OlmoeDecoderLayer, c: &OlmoeConfig, h: &mut [f64]) {
    let (hidden, d) = (c.hidden_size, c.head_dim);
    let len = h.len() / hidden;
    let attn = &layer.self_attn;
    let x = rms_rows(h, &values(&layer.input_layernorm.gamma), c.rms_norm_eps);
    let clip = |v: Vec<f64>| match c.clip_qkv {
        Some(limit) => v.into_iter().map(|x| x.clamp(-limit, limit)).collect(),
        None => v,
    };
    let q = clip(rms_rows(
        &matmul(&x, &values(&attn.q_proj.weight), hidden),
        &values(&attn.q_norm.gamma),
        c.rms_norm_eps,
    ));
    let k = clip(rms_rows(
        &matmul(&x, &values(&attn.k_proj.weight), hidden),
        &values(&attn.k_norm.gamma),
        c.rms_norm_eps,
    ));
    let v = clip(matmul(&x, &values(&attn.v_proj.weight), hidden));
    let (dq, dkv) = (c.d_query(), c.d_key_value());
    let group = c.num_attention_heads / c.num_key_value_heads;
    let mut attended = vec![0.0; len * dq];
    for head in 0..c.num_attention_heads {
        let kv = head / group;
        for i in 0..len {
            let qi = rope(
                &q[i * dq + head * d..i * dq + (head + 1) * d],
                i,
                c.rope_theta,
            );
            let scores: Vec<f64> = (0..=i)
                .map(|j| {
                    let kj = rope(
                        &k[j * dkv + kv * d..j * dkv + (kv + 1) * d],
                        j,
                        c.rope_theta,
                    );
                    qi.iter().zip(&kj).map(|(a, b)| a * b).sum::<f64>() / (d as f64).sqrt()
                })
                .collect();
            for (j, p) in softmax(&scores).into_iter().enumerate() {
                for t in 0..d {
                    attended[i * dq + head * d + t] += p * v[j * dkv + kv * d + t];
                }
            }
        }
    }
    let out = matmul(&attended, &values(&attn.o_proj.weight), dq);
    h.iter_mut().zip(out).for_each(|(a, b)| *a += b);

    let x = rms_rows(
        h,
        &values(&layer.post_attention_layernorm.gamma),
        c.rms_norm_eps,
    );
    let router = matmul(&x, &values(&layer.mlp.gate.weight), hidden);
    let e_count = c.num_experts;
    let inter = c.intermediate_size;
    for i in 0..len {
        let probs = softmax(&router[i * e_count..(i + 1) * e_count]);
        let mut order: Vec<usize> = (0..e_count).collect();
        order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
        order.truncate(c.num_experts_per_tok);
        let total: f64 = order.iter().map(|&e| probs[e]).sum();
        let xi = &x[i * hidden..(i + 1) * hidden];
        for &e in &order {
            let weight = if c.norm_topk_prob {
                probs[e] / total
            } else {
                probs[e]
            };
            let expert = &layer.mlp.experts[e];
            let gate = matmul_torch(xi, &values(&expert.gate_proj.weight), hidden);
            let up = matmul_torch(xi, &values(&expert.up_proj.weight), hidden);
            let act: Vec<f64> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = matmul_torch(&act, &values(&expert.down_proj.weight), inter);
            for t in 0..hidden {
                h[i * hidden + t] += weight * down[t];
            }
        }
    }
}

/// Last hidden state `[len, H]` and logits `[len, V]` of one sequence.
fn reference_forward(model: &OlmoeModel, ids: &[u32]) -> (Vec<f64>, Vec<f64>) {
    let c = &model.config;
    let embed = values(&model.embed_tokens.weight);
    let hidden = c.hidden_size;
    let mut h: Vec<f64> = ids
        .iter()
        .flat_map(|&id| embed[id as usize * hidden..(id as usize + 1) * hidden].to_vec())
        .collect();
    for layer in &model.layers {
        reference_layer(layer, c, &mut h);
    }
    let last = rms_rows(&h, &values(&model.norm.gamma), c.rms_norm_eps);
    let logits = match &model.lm_head {
        Some(head) => matmul(&last, &values(&head.weight), hidden),
        None => {
            let v = c.vocab_size;
            let mut transposed = vec![0.0; hidden * v];
            for r in 0..v {
                for k in 0..hidden {
                    transposed[k * v + r] = embed[r * hidden + k];
                }
            }
            matmul(&last, &transposed, hidden)
        }
    };
    (last, logits)
}

fn config(json: &str) -> OlmoeConfig {
    OlmoeConfig::from_json_str(json, Path::new("config.json")).unwrap()
}

const GQA_CLIP_RENORM_TIED: &str = r#"{
    "model_type": "olmoe", "vocab_size": 50, "hidden_size": 32, "intermediate_size": 16,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "max_position_embeddings": 64, "rms_norm_eps": 1e-5, "num_experts": 4,
    "num_experts_per_tok": 2, "norm_topk_prob": true, "clip_qkv": 1.5,
    "rope_theta": 10000.0, "rope_scaling": null, "tie_word_embeddings": true, "pad_token_id": 1
}"#;

const MQA_WIDE_HEADS_UNTIED: &str = r#"{
    "model_type": "olmoe", "vocab_size": 50, "hidden_size": 32, "intermediate_size": 24,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 12,
    "max_position_embeddings": 64, "rms_norm_eps": 1e-6, "num_experts": 6,
    "num_experts_per_tok": 3, "norm_topk_prob": false, "clip_qkv": null,
    "rope_parameters": {"rope_theta": 500.0, "rope_type": "default"},
    "tie_word_embeddings": false, "pad_token_id": 0
}"#;

fn check_against_reference(config: &OlmoeConfig, seed: u64) {
    let device = default_device();
    let mut rng = StdRng::seed_from_u64(seed);
    let model = OlmoeModel::random(config, 0.2, &mut rng, &device);
    let sequences: Vec<Vec<u32>> = [9, 4]
        .iter()
        .map(|&len| (0..len).map(|_| rng.random_range(0..50u32)).collect())
        .collect();
    let tokens = TokenBatch::right_padded(&sequences, 1).unwrap();
    let out = model
        .forward(
            &tokens,
            ForwardOptions {
                logits: true,
                ..ForwardOptions::default()
            },
        )
        .unwrap();
    let last = host(out.last_hidden);
    let logits = host(out.logits.unwrap());
    let (hidden, vocab, seq_len) = (config.hidden_size, config.vocab_size, tokens.seq_len());
    for (row, ids) in sequences.iter().enumerate() {
        let (want_last, want_logits) = reference_forward(&model, ids);
        let check = |what: &str, got: &[f32], want: &[f64]| {
            for (i, (&a, &b)) in got.iter().zip(want).enumerate() {
                let err = (f64::from(a) - b).abs();
                assert!(
                    err <= 1e-4 + 1e-4 * b.abs(),
                    "{what} row {row}[{i}]: got {a}, reference {b}"
                );
            }
        };
        let start = row * seq_len;
        check(
            "last_hidden",
            &last[start * hidden..(start + ids.len()) * hidden],
            &want_last,
        );
        check(
            "logits",
            &logits[start * vocab..(start + ids.len()) * vocab],
            &want_logits,
        );
    }
}

#[test]
fn gqa_clip_renormalized_tied_model_matches_the_reference() {
    check_against_reference(&config(GQA_CLIP_RENORM_TIED), 7);
}

#[test]
fn mqa_wide_heads_untied_model_matches_the_reference() {
    check_against_reference(&config(MQA_WIDE_HEADS_UNTIED), 11);
}

#[test]
fn clip_and_renormalization_change_the_output() {
    // Guards the reference test: both settings are active on its random model.
    let device = default_device();
    let base = config(GQA_CLIP_RENORM_TIED);
    let run = |c: &OlmoeConfig| {
        let model = OlmoeModel::random(c, 0.2, &mut StdRng::seed_from_u64(7), &device);
        let tokens = TokenBatch::right_padded(&[vec![3u32, 14, 15, 9, 2, 6]], 1).unwrap();
        host(
            model
                .forward(&tokens, ForwardOptions::default())
                .unwrap()
                .last_hidden,
        )
    };
    let reference = run(&base);
    let mut no_clip = base.clone();
    no_clip.clip_qkv = None;
    let mut no_renorm = base.clone();
    no_renorm.norm_topk_prob = false;
    assert!(max_abs_diff(&reference, &run(&no_clip)) > 1e-3);
    assert!(max_abs_diff(&reference, &run(&no_renorm)) > 1e-3);
}

#[test]
fn layer_rejects_a_context_of_another_shape() {
    use factored_rl::olmoe::model::SequenceContext;
    let device = default_device();
    let c = config(GQA_CLIP_RENORM_TIED);
    let layer = OlmoeDecoderLayer::random(&c, 0.2, &mut StdRng::seed_from_u64(1), &device);
    let context = SequenceContext::new(&c, &[3], 3, &device);
    let hidden = Tensor::<3>::zeros([1, 4, c.hidden_size], &device);
    assert!(matches!(
        layer.forward(hidden, &context, ExpertExecution::Sparse, 0),
        Err(Error::ShapeMismatch { .. })
    ));
    let rows = Tensor::<2>::zeros([4, c.hidden_size], &device);
    assert!(matches!(
        layer
            .mlp
            .forward(rows, &[true; 3], ExpertExecution::Sparse, 0),
        Err(Error::ShapeMismatch { .. })
    ));
}
