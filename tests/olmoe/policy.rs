//! Gradients through `encode` into the encoder and the head, the missing-head error, encoder
//! freezing, and bit-exact checkpoints.

use factored_rl::Error;
use factored_rl::backend::default_device;
use factored_rl::burn::module::{Module, Param, ParamId};
use factored_rl::burn::optim::{AdamConfig, GradientsParams};
use factored_rl::burn::tensor::activation::log_softmax;
use factored_rl::burn::tensor::{Device, Int, Tensor, TensorData};
use factored_rl::olmoe::{MemoryActionHeadConfig, NUM_MEMORY_OPS, OlmoePolicy};

use super::support::*;

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// −Σ log π(action | text) over the texts, for fixed actions.
fn loss(policy: &OlmoePolicy, device: &Device) -> Tensor<1> {
    let embeddings = policy.encode_batch(&TEXTS).unwrap();
    let logits = policy.action_logits(&embeddings).unwrap();
    assert_eq!(logits.dims(), [TEXTS.len(), NUM_MEMORY_OPS]);
    let actions = Tensor::<2, Int>::from_data(TensorData::new(vec![0i64, 3, 5], [3, 1]), device);
    log_softmax(logits, 1).gather(1, actions).sum().neg()
}

fn grad_norm<const D: usize>(grads: &GradientsParams, param: &Param<Tensor<D>>) -> Option<f32> {
    grads
        .get::<D>(param.id)
        .map(|g| host(g).iter().map(|v| v.abs()).sum())
}

/// Asserts that the loss's gradient reaches the encoder (embedding, attention, norms, router,
/// experts) and the head.
fn assert_gradients_reach_everything(policy: &OlmoePolicy, device: &Device) {
    let grads = GradientsParams::from_grads(loss(policy, device).backward(), policy);
    let model = &policy.encoder.model;
    let head = policy.head.as_ref().unwrap();
    let nonzero = |name: &str, norm: Option<f32>| {
        let norm = norm.unwrap_or_else(|| panic!("{name}: no gradient"));
        assert!(
            norm.is_finite() && norm > 0.0,
            "{name}: gradient norm {norm}"
        );
    };
    nonzero(
        "embed_tokens",
        grad_norm(&grads, &model.embed_tokens.weight),
    );
    nonzero("norm", grad_norm(&grads, &model.norm.gamma));
    for (i, layer) in model.layers.iter().enumerate() {
        let attn = &layer.self_attn;
        nonzero(
            &format!("layer {i} q_proj"),
            grad_norm(&grads, &attn.q_proj.weight),
        );
        nonzero(
            &format!("layer {i} k_proj"),
            grad_norm(&grads, &attn.k_proj.weight),
        );
        nonzero(
            &format!("layer {i} v_proj"),
            grad_norm(&grads, &attn.v_proj.weight),
        );
        nonzero(
            &format!("layer {i} o_proj"),
            grad_norm(&grads, &attn.o_proj.weight),
        );
        nonzero(
            &format!("layer {i} q_norm"),
            grad_norm(&grads, &attn.q_norm.gamma),
        );
        nonzero(
            &format!("layer {i} k_norm"),
            grad_norm(&grads, &attn.k_norm.gamma),
        );
        nonzero(
            &format!("layer {i} router"),
            grad_norm(&grads, &layer.mlp.gate.weight),
        );
        let trained_experts = layer
            .mlp
            .experts
            .iter()
            .filter(|e| grad_norm(&grads, &e.down_proj.weight).is_some_and(|n| n > 0.0))
            .count();
        assert!(
            trained_experts >= model.config.num_experts_per_tok,
            "layer {i}: only {trained_experts} experts got a gradient"
        );
    }
    nonzero("head.hidden", grad_norm(&grads, &head.hidden.weight));
    nonzero("head.output", grad_norm(&grads, &head.output.weight));
}

#[test]
fn gradients_reach_encoder_and_head_on_an_autodiff_device() {
    let device = default_device().autodiff();
    let policy = OlmoePolicy::load(tiny_a(), Some(5), &device).unwrap();
    assert_gradients_reach_everything(&policy, &device);
}

#[test]
fn gradients_reach_encoder_and_head_after_train() {
    let plain = default_device();
    let policy = OlmoePolicy::load(tiny_a(), Some(5), &plain)
        .unwrap()
        .train();
    assert_gradients_reach_everything(&policy, &plain.autodiff());
}

#[test]
fn action_logits_without_a_head_is_the_missing_head_error() {
    let policy = OlmoePolicy::load(tiny_a(), None, &default_device()).unwrap();
    assert!(!policy.has_action_head());
    let embeddings = policy.encode_batch(&TEXTS).unwrap();
    let err = policy.action_logits(&embeddings).unwrap_err();
    assert!(matches!(err, Error::MissingActionHead));
    assert!(err.to_string().contains("GRPO"), "{err}");
    // Embedding still works without a head.
    assert_eq!(policy.embed(TEXTS[0]).unwrap().len(), 64);
}

#[test]
fn head_width_must_match_the_encoder() {
    let device = default_device();
    let policy = OlmoePolicy::load(tiny_a(), Some(1), &device).unwrap();
    assert!(matches!(
        policy.action_logits(&Tensor::zeros([2, 63], &device)),
        Err(Error::ShapeMismatch { .. })
    ));
    let narrow = MemoryActionHeadConfig::new(32).init(&device).unwrap();
    assert!(matches!(
        OlmoePolicy::new(policy.encoder, Some(narrow)),
        Err(Error::ShapeMismatch { .. })
    ));
}

fn encoder_ids(policy: &OlmoePolicy) -> Vec<ParamId> {
    let mut ids = Vec::new();
    let model = &policy.encoder.model;
    ids.push(model.embed_tokens.weight.id);
    for layer in &model.layers {
        ids.push(layer.self_attn.q_proj.weight.id);
        ids.push(layer.mlp.gate.weight.id);
        ids.extend(layer.mlp.experts.iter().map(|e| e.up_proj.weight.id));
    }
    ids
}

#[test]
fn frozen_encoder_gets_no_gradient_while_the_head_trains() {
    let device = default_device().autodiff();
    let policy = OlmoePolicy::load(tiny_a(), Some(5), &device)
        .unwrap()
        .freeze_encoder();
    let before_encoder = host(policy.encoder.model.layers[0].self_attn.q_proj.weight.val());
    let before_head = host(policy.head.as_ref().unwrap().hidden.weight.val());
    let grads = GradientsParams::from_grads(loss(&policy, &device).backward(), &policy);
    for id in encoder_ids(&policy) {
        assert!(
            grads.get::<2>(id).is_none(),
            "frozen encoder parameter {id} has a gradient"
        );
    }
    let head = policy.head.as_ref().unwrap();
    assert!(grad_norm(&grads, &head.hidden.weight).is_some_and(|n| n > 0.0));
    let mut optimizer = AdamConfig::new().init();
    let policy = optimizer.step(1e-2, policy, grads);
    assert_eq!(
        host(policy.encoder.model.layers[0].self_attn.q_proj.weight.val()),
        before_encoder
    );
    assert_ne!(
        host(policy.head.as_ref().unwrap().hidden.weight.val()),
        before_head
    );
}

#[test]
fn checkpoint_round_trip_is_bit_exact_and_atomic() {
    let device = default_device();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("policy.bpk");
    let trained = OlmoePolicy::load(tiny_a(), Some(1), &device).unwrap();
    trained.save(&path).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "temporary file left"
    );

    let other = OlmoePolicy::load(tiny_a(), Some(2), &device).unwrap();
    let embeddings = trained.encode_batch(&TEXTS).unwrap();
    let want = host(trained.action_logits(&embeddings).unwrap());
    assert_ne!(host(other.action_logits(&embeddings).unwrap()), want);
    let restored = other.load_checkpoint(&path).unwrap();
    assert_eq!(host(restored.action_logits(&embeddings).unwrap()), want);
    let weights = |p: &OlmoePolicy| {
        let head = p.head.as_ref().unwrap();
        [
            host(head.hidden.weight.val()),
            host(head.hidden.bias.as_ref().unwrap().val()),
            host(head.output.weight.val()),
            host(head.output.bias.as_ref().unwrap().val()),
            host(
                p.encoder.model.layers[1].mlp.experts[3]
                    .down_proj
                    .weight
                    .val(),
            ),
        ]
    };
    let (got, expected) = (weights(&restored), weights(&trained));
    for (g, e) in got.iter().zip(&expected) {
        let g: Vec<u32> = g.iter().map(|v| v.to_bits()).collect();
        let e: Vec<u32> = e.iter().map(|v| v.to_bits()).collect();
        assert_eq!(g, e);
    }

    // A checkpoint with a head does not fit a policy without one, and vice versa.
    let headless = OlmoePolicy::load(tiny_a(), None, &device).unwrap();
    assert!(matches!(
        headless.load_checkpoint(&path),
        Err(Error::CheckpointMismatch { .. })
    ));
    let missing = dir.path().join("absent.bpk");
    assert!(matches!(
        trained.clone().load_checkpoint(&missing),
        Err(Error::Io { path, .. }) if path == missing
    ));
}

#[test]
fn action_head_checkpoint_round_trip() {
    let device = default_device();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("head.bpk");
    let trained = OlmoePolicy::load(tiny_a(), Some(1), &device).unwrap();
    trained.save_action_head(&path).unwrap();
    let restored = OlmoePolicy::load(tiny_a(), Some(9), &device)
        .unwrap()
        .load_action_head(&path)
        .unwrap();
    let embeddings = trained.encode_batch(&TEXTS).unwrap();
    assert_eq!(
        host(restored.action_logits(&embeddings).unwrap()),
        host(trained.action_logits(&embeddings).unwrap())
    );
    let headless = OlmoePolicy::load(tiny_a(), None, &device).unwrap();
    assert!(matches!(
        headless.save_action_head(&path),
        Err(Error::MissingActionHead)
    ));
}

#[test]
fn embed_matches_encode_and_carries_no_graph() {
    let device = default_device().autodiff();
    let policy = OlmoePolicy::load(tiny_a(), Some(5), &device).unwrap();
    let encoded = policy.encode(TEXTS[1]).unwrap();
    assert!(encoded.is_tracked(), "encode lost the autodiff graph");
    // The autodiff backend may order float operations differently: equal to rounding.
    let diff = max_abs_diff(&policy.embed(TEXTS[1]).unwrap(), &host(encoded));
    assert!(diff < 1e-5, "embed vs encode max |diff| {diff}");
}
