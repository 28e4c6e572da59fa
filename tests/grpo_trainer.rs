//! The GRPO trainer over the tiny_a OLMoE fixture: setup errors, what a collected batch puts in
//! the shared rollout buffer, where the loss's gradient goes (encoder frozen or not, the KL
//! term), the frozen reference and its re-sync, deterministic evaluation, and checkpoints.

use std::path::{Path, PathBuf};

use factored_rl::Error;
use factored_rl::backend::default_device;
use factored_rl::burn::module::{Module, Param};
use factored_rl::burn::optim::GradientsParams;
use factored_rl::burn::tensor::Tensor;
use factored_rl::grpo::memory_env::{self, NUM_MEMORY_OPS};
use factored_rl::grpo::{
    GrpoTrainer, GrpoTrainerConfig, ScaleRewards, group_advantages, memory_grpo_config,
};
use factored_rl::olmoe::OlmoePolicy;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn tiny_a() -> PathBuf {
    let root = std::env::var_os("FACTORED_RL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    root.join("olmoe/tiny_a")
}

/// 2 tasks × 4 rollouts per batch: enough for groups with different rewards, and fast.
fn small_config(freeze_encoder: bool, seed: u64) -> GrpoTrainerConfig {
    GrpoTrainerConfig::new()
        .with_grpo(memory_grpo_config().with_num_generations(4).with_seed(seed))
        .with_tasks_per_batch(2)
        .with_freeze_encoder(freeze_encoder)
        .with_eval_every(0)
}

fn trainer(config: GrpoTrainerConfig) -> GrpoTrainer {
    let policy = OlmoePolicy::load(tiny_a(), Some(config.grpo.seed), &default_device()).unwrap();
    GrpoTrainer::new(policy, config).unwrap()
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn head_weights(policy: &OlmoePolicy) -> Vec<Vec<f32>> {
    let head = policy.head.as_ref().unwrap();
    vec![
        host(head.hidden.weight.val()),
        host(head.hidden.bias.as_ref().unwrap().val()),
        host(head.output.weight.val()),
        host(head.output.bias.as_ref().unwrap().val()),
    ]
}

fn grad_sum<const D: usize>(grads: &GradientsParams, param: &Param<Tensor<D>>) -> Option<f32> {
    grads
        .get::<D>(param.id)
        .map(|g| host(g).iter().map(|v| v.abs()).sum())
}

#[test]
fn setup_without_an_action_head_is_the_missing_head_error() {
    let policy = OlmoePolicy::load(tiny_a(), None, &default_device()).unwrap();
    let err = GrpoTrainer::new(policy, GrpoTrainerConfig::new()).unwrap_err();
    assert!(matches!(err, Error::MissingActionHead), "{err}");
    assert!(err.to_string().contains("action head"), "{err}");
}

#[test]
fn an_invalid_config_is_rejected_at_setup() {
    let policy = OlmoePolicy::load(tiny_a(), Some(1), &default_device()).unwrap();
    let config = GrpoTrainerConfig::new().with_tasks_per_batch(0);
    assert!(matches!(
        GrpoTrainer::new(policy, config),
        Err(Error::Invalid { name, .. }) if name == "tasks_per_batch"
    ));
}

#[test]
fn a_collected_batch_fills_the_shared_buffer() {
    let mut trainer = trainer(small_config(true, 5));
    assert!(matches!(trainer.loss(), Err(Error::Invalid { .. })));
    let stats = trainer.collect().unwrap();
    let buffer = trainer.buffer();
    let (num_completions, num_steps) = (8, trainer.config().env.max_steps());
    assert_eq!(stats.num_completions, num_completions);
    assert_eq!(buffer.shape().num_envs, num_completions);
    assert!(buffer.is_full());
    let seq = buffer
        .sequences(&(0..num_completions).collect::<Vec<_>>())
        .unwrap();
    let mut rewards = Vec::new();
    let mut total_steps = 0;
    for e in 0..num_completions {
        let row = e * num_steps..(e + 1) * num_steps;
        let valid = &seq.valid[row.clone()];
        let len = valid.iter().filter(|&&v| v).count();
        total_steps += len;
        // Right-padded: the real steps come first.
        assert!(valid[..len].iter().all(|&v| v), "completion {e}: {valid:?}");
        for t in 0..num_steps {
            let cell = e * num_steps + t;
            if t < len {
                assert!(seq.state_texts[cell].starts_with("Message: "));
                assert!(seq.actions[0][cell] < NUM_MEMORY_OPS);
                let old = seq.log_probs[0][cell];
                assert!(old.is_finite() && old <= 0.0, "old log-prob {old}");
                assert_eq!(
                    buffer.state_text(t, e),
                    Some(seq.state_texts[cell].as_str())
                );
            } else {
                assert!(seq.state_texts[cell].is_empty());
                assert_eq!(seq.advantages[cell], 0.0);
            }
        }
        // The group's rollouts play the same task: they start from the same state text.
        let first_of_group = (e / 4) * 4 * num_steps;
        assert_eq!(
            seq.state_texts[e * num_steps],
            seq.state_texts[first_of_group]
        );
        rewards.push(buffer.rewards()[e]);
    }
    // The terminal reward is broadcast to every step, and the advantage of the completion's
    // group is on every step.
    let expected = group_advantages(&rewards, 4, ScaleRewards::Group).unwrap();
    for (e, (&reward, &advantage)) in rewards.iter().zip(&expected.advantages).enumerate() {
        for t in 0..num_steps {
            let cell = e * num_steps + t;
            if seq.valid[cell] {
                assert_eq!(seq.advantages[cell], advantage);
                assert_eq!(buffer.rewards()[t * num_completions + e], reward);
            }
        }
    }
    assert!(expected.advantages.iter().any(|&a| a != 0.0));
    let mean: f32 = rewards.iter().sum::<f32>() / num_completions as f32;
    assert!((stats.mean_reward - mean).abs() < 1e-6);
    assert!((stats.mean_length - total_steps as f32 / num_completions as f32).abs() < 1e-6);

    // The old log-probs are the collecting policy's: before any update the ratio is 1.
    let out = trainer.loss().unwrap();
    let ratio = host(out.ratio);
    for (cell, r) in ratio.iter().enumerate() {
        assert!((r - 1.0).abs() < 1e-4, "cell {cell}: ratio {r}");
    }
}

#[test]
fn the_loss_gradient_reaches_the_encoder_only_when_it_is_not_frozen() {
    for freeze_encoder in [true, false] {
        let mut trainer = trainer(small_config(freeze_encoder, 3));
        trainer.collect().unwrap();
        assert!(trainer.buffer().advantages().iter().any(|&a| a != 0.0));
        let policy = trainer.policy();
        let grads = GradientsParams::from_grads(trainer.loss().unwrap().loss.backward(), policy);
        let head = policy.head.as_ref().unwrap();
        for (name, sum) in [
            ("head.hidden", grad_sum(&grads, &head.hidden.weight)),
            ("head.output", grad_sum(&grads, &head.output.weight)),
        ] {
            let sum = sum.unwrap_or_else(|| panic!("{name}: no gradient"));
            assert!(sum.is_finite() && sum > 0.0, "{name}: {sum}");
        }
        let model = &policy.encoder.model;
        let layer = &model.layers[0];
        let encoder = [
            ("embed_tokens", grad_sum(&grads, &model.embed_tokens.weight)),
            ("norm", grad_sum(&grads, &model.norm.gamma)),
            ("q_proj", grad_sum(&grads, &layer.self_attn.q_proj.weight)),
            ("router", grad_sum(&grads, &layer.mlp.gate.weight)),
        ];
        for (name, sum) in encoder {
            if freeze_encoder {
                assert!(sum.is_none(), "frozen encoder: {name} has a gradient");
            } else {
                let sum = sum.unwrap_or_else(|| panic!("{name}: no gradient"));
                assert!(sum.is_finite() && sum > 0.0, "{name}: {sum}");
            }
        }
    }
}

/// The head-weight gradient of the KL term alone (`Σ per_token_kl`), through the trainer's
/// log-probs.
fn kl_head_gradient(trainer: &GrpoTrainer) -> f32 {
    let out = trainer.loss().unwrap();
    let kl = out
        .per_token_kl
        .expect("the trainer always scores the reference");
    let grads = GradientsParams::from_grads(kl.sum().backward(), trainer.policy());
    let head = trainer.policy().head.as_ref().unwrap();
    grad_sum(&grads, &head.hidden.weight).unwrap_or(0.0)
        + grad_sum(&grads, &head.output.weight).unwrap_or(0.0)
}

#[test]
fn the_kl_term_has_gradient_to_the_head_once_the_policy_left_the_reference() {
    let config = small_config(true, 4);
    let config = config
        .clone()
        .with_grpo(config.grpo.clone().with_beta(0.04));
    let mut trainer = trainer(config);
    trainer.collect().unwrap();
    let reference_before = head_weights(trainer.reference());
    // Policy = reference: k3 and its gradient vanish (up to rounding).
    let at_start = kl_head_gradient(&trainer);
    assert!(at_start < 1e-4, "KL gradient at the start {at_start}");

    trainer.optimize().unwrap();
    assert_ne!(head_weights(trainer.policy()), reference_before);
    // The reference is frozen: the optimizer steps did not move it.
    assert_eq!(head_weights(trainer.reference()), reference_before);
    let moved = kl_head_gradient(&trainer);
    println!("KL-term head gradient (sum |g|): {at_start:e} at the start, {moved:e} after 4 steps");
    assert!(moved > 1e-2, "KL gradient after the policy moved {moved}");

    // And it reaches the loss: with beta > 0 the head gradient differs from beta = 0's.
    let grpo = trainer.config().grpo.clone();
    let gradient = |beta: f64| {
        let out = trainer.loss_with(&grpo.clone().with_beta(beta)).unwrap();
        let grads = GradientsParams::from_grads(out.loss.backward(), trainer.policy());
        host(
            grads
                .get::<2>(trainer.policy().head.as_ref().unwrap().output.weight.id)
                .unwrap(),
        )
    };
    let (with_kl, without) = (gradient(0.04), gradient(0.0));
    let difference: f32 = with_kl
        .iter()
        .zip(&without)
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(
        difference > 1e-4,
        "beta changes the gradient by {difference}"
    );
}

#[test]
fn the_reference_resyncs_every_n_optimizer_steps() {
    let config = small_config(true, 6);
    let synced = config.clone().with_grpo(
        config
            .grpo
            .clone()
            .with_sync_ref_model(true)
            .with_ref_model_sync_steps(2)
            .with_ref_model_mixup_alpha(1.0),
    );
    let mut trainer = trainer(synced);
    let initial = head_weights(trainer.reference());
    trainer.collect().unwrap();
    trainer.optimize().unwrap();
    assert_eq!(trainer.progress().optimizer_steps, 4);
    // The 4th step re-synced with α = 1: the reference is a copy of the policy.
    assert_ne!(head_weights(trainer.reference()), initial);
    assert_eq!(
        head_weights(trainer.reference()),
        head_weights(&trainer.policy().valid())
    );

    // α = 0.5 after 2 steps: halfway between the policy and the old reference.
    let half = config.clone().with_grpo(
        config
            .grpo
            .clone()
            .with_sync_ref_model(true)
            .with_ref_model_sync_steps(4)
            .with_ref_model_mixup_alpha(0.5),
    );
    let mut trainer = self::trainer(half);
    trainer.collect().unwrap();
    trainer.optimize().unwrap();
    let policy = head_weights(&trainer.policy().valid());
    for ((r, p), i) in head_weights(trainer.reference())
        .iter()
        .flatten()
        .zip(policy.iter().flatten())
        .zip(initial.iter().flatten())
    {
        assert!((r - (0.5 * p + 0.5 * i)).abs() < 1e-6);
    }
}

#[test]
fn evaluation_is_deterministic_and_matches_one_episode_at_a_time() {
    let trainer = trainer(small_config(true, 7));
    let lockstep = trainer.evaluate(40, 77).unwrap();
    assert_eq!(trainer.evaluate(40, 77).unwrap(), lockstep);
    let actor = trainer.policy().valid();
    let mut env = trainer.memory_env().unwrap();
    let one_by_one = memory_env::evaluate(&mut env, 40, &mut StdRng::seed_from_u64(77), |text| {
        let logits = host(actor.action_logits(&actor.encode_batch(&[text])?)?);
        Ok((0..NUM_MEMORY_OPS).fold(
            0,
            |best, op| {
                if logits[op] > logits[best] { op } else { best }
            },
        ))
    })
    .unwrap();
    assert_eq!(lockstep.num_episodes, 40);
    assert_eq!(lockstep.success_rate, one_by_one.success_rate);
    assert!((lockstep.mean_reward - one_by_one.mean_reward).abs() < 1e-9);
    assert!(matches!(
        trainer.evaluate(0, 1),
        Err(Error::Invalid { name, .. }) if name == "num_episodes"
    ));
}

#[test]
fn a_resumed_run_repeats_the_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let mut straight = trainer(small_config(true, 8));
    straight.step().unwrap();
    straight.step().unwrap();
    straight.save_checkpoint(&checkpoint).unwrap();
    // Saved again over the first: the folder is replaced, no temporary is left.
    straight.save_checkpoint(&checkpoint).unwrap();
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["checkpoint"]);

    let mut resumed = GrpoTrainer::resume(&checkpoint, &tiny_a(), &default_device()).unwrap();
    assert_eq!(resumed.progress(), straight.progress());
    assert_eq!(
        head_weights(resumed.policy()),
        head_weights(straight.policy())
    );
    assert_eq!(
        head_weights(resumed.reference()),
        head_weights(straight.reference())
    );
    let (a, b) = (straight.step().unwrap(), resumed.step().unwrap());
    assert_eq!(a, b);
    assert_eq!(
        head_weights(resumed.policy()),
        head_weights(straight.policy())
    );
}

#[test]
fn a_trained_encoder_is_checkpointed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let mut config = small_config(false, 9);
    config.grpo.num_iterations = 1;
    let mut trainer = trainer(config);
    trainer.step().unwrap();
    assert!(trainer.buffer().advantages().iter().any(|&a| a != 0.0));
    trainer.save_checkpoint(&checkpoint).unwrap();
    let resumed = GrpoTrainer::resume(&checkpoint, &tiny_a(), &default_device()).unwrap();
    let q_proj = |p: &OlmoePolicy| host(p.encoder.model.layers[1].self_attn.q_proj.weight.val());
    let fresh = OlmoePolicy::load(tiny_a(), None, &default_device()).unwrap();
    assert_ne!(
        q_proj(trainer.policy()),
        q_proj(&fresh),
        "the encoder trained"
    );
    assert_eq!(q_proj(resumed.policy()), q_proj(trainer.policy()));
    assert_eq!(q_proj(resumed.reference()), q_proj(&fresh));
    assert_eq!(
        head_weights(resumed.policy()),
        head_weights(trainer.policy())
    );
}

#[test]
fn bad_checkpoints_are_named_errors() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let device = default_device();
    assert!(matches!(
        GrpoTrainer::resume(&checkpoint, &tiny_a(), &device),
        Err(Error::Io { path, .. }) if path.ends_with("trainer.json")
    ));
    let trainer = trainer(small_config(true, 10));
    trainer.save_checkpoint(&checkpoint).unwrap();

    let corrupt = |file: &str, bytes: &[u8]| {
        let copy = dir.path().join(format!("copy-{file}"));
        std::fs::create_dir_all(&copy).unwrap();
        for entry in std::fs::read_dir(&checkpoint).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
        }
        std::fs::write(copy.join(file), bytes).unwrap();
        GrpoTrainer::resume(&copy, &tiny_a(), &device).unwrap_err()
    };
    let err = corrupt("trainer.json", b"{ not json");
    assert!(
        matches!(&err, Error::Corrupt { file, .. } if file.ends_with("trainer.json")),
        "{err}"
    );
    let err = corrupt("policy_head.bpk", b"garbage");
    assert!(
        matches!(&err, Error::CheckpointMismatch { path, .. } if path.ends_with("policy_head.bpk")),
        "{err}"
    );
    let err = corrupt("optimizer.bpk", b"garbage");
    assert!(
        matches!(&err, Error::Corrupt { file, .. } if file.ends_with("optimizer.bpk")),
        "{err}"
    );
    let text = std::fs::read_to_string(checkpoint.join("trainer.json")).unwrap();
    let err = corrupt(
        "trainer.json",
        text.replace("\"format_version\": 1", "\"format_version\": 99")
            .as_bytes(),
    );
    assert!(matches!(err, Error::CheckpointMismatch { .. }), "{err}");
    // A trained-encoder checkpoint is expected, but only heads were saved.
    let err = corrupt(
        "trainer.json",
        text.replace("\"freeze_encoder\": true", "\"freeze_encoder\": false")
            .as_bytes(),
    );
    assert!(
        matches!(&err, Error::Io { path, .. } if path.ends_with("policy.bpk")),
        "{err}"
    );
    // The model folder must exist.
    let missing = dir.path().join("no-model");
    assert!(GrpoTrainer::resume(&checkpoint, &missing, &device).is_err());
}
