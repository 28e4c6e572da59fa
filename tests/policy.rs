//! The factored recurrent actor-critic: the seed bug, recurrence, checkpoints, input errors.
#![allow(clippy::needless_range_loop)] // rows and heads index several parallel arrays

use factored_rl::Error;
use factored_rl::action_space::{ActionSpace, reference};
use factored_rl::backend::default_device;
use factored_rl::burn::module::Module;
use factored_rl::burn::tensor::Tensor;
use factored_rl::nn::{LstmState, Placement};
use factored_rl::policy::{
    ActInput, ActMode, EvaluateInput, FactoredRecurrentActorCritic,
    FactoredRecurrentActorCriticConfig, Sequences, ValueMode,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// The reference action space with small widths, so tests are fast.
fn small_config() -> FactoredRecurrentActorCriticConfig {
    let mut config = FactoredRecurrentActorCriticConfig::reference();
    config.d_observation = 10;
    config
        .with_d_feature(16)
        .with_d_hidden(12)
        .with_head_hidden(vec![vec![8]; 8])
        .with_critic_hidden(vec![8])
        .with_seed(11)
}

fn observations(rng: &mut StdRng, rows: usize, d: usize) -> Vec<f32> {
    factored_rl::nn::init::normal(rows * d, 0.0, 1.0, rng)
}

fn categorical(rows: usize) -> Vec<i64> {
    (0..rows * 3).map(|i| (i as i64 % 14) - 1).collect()
}

fn all_allowed(space: &ActionSpace, rows: usize) -> Vec<Vec<bool>> {
    space
        .heads()
        .iter()
        .map(|h| vec![true; rows * h.size])
        .collect()
}

fn host(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// The defect this library exists to make impossible: the critic's op and the stored op drawn by
/// two independent draws. With a near-uniform op distribution, 1,000 stochastic acts must store
/// exactly the op the value was computed with — while an independent second draw would differ
/// most of the time (checked here too, so the test is known to have the power to catch the bug).
#[test]
fn value_op_equals_action_op_over_1000_stochastic_acts() {
    let device = default_device();
    let net = small_config().init(&device).unwrap();
    let space = net.space().clone();
    let num_ops = space.num_ops();
    let batch = 10;
    let mut rng = StdRng::seed_from_u64(5);
    let masks = all_allowed(&space, batch);
    let mut state = net.initial_state(batch);
    let mut independent_redraw_differs = 0;
    for step in 0..100 {
        let obs = observations(&mut rng, batch, 10);
        let cat = categorical(batch);
        let starts = vec![step == 0; batch];
        let input = ActInput {
            observations: &obs,
            categorical: &cat,
            masks: &masks,
            conditional_masks: &[],
            episode_starts: &starts,
        };
        let out = net
            .act(&input, &state, ActMode::Stochastic, &mut rng)
            .unwrap();
        for row in 0..batch {
            let op = out.ops[row];
            assert_eq!(out.actions[space.op_index()][row], op);
            assert_eq!(out.values[row], out.q_values[row * num_ops + op]);
            let probs = &out.op_probs[row * num_ops..(row + 1) * num_ops];
            assert!(
                probs.iter().all(|&p| (p - 1.0 / 6.0).abs() < 0.05),
                "op distribution is near-uniform"
            );
            let redraw = factored_rl::policy::select_op(
                &probs.iter().map(|p| p.ln()).collect::<Vec<_>>(),
                &[true; 6],
                Some(&mut rng),
            );
            independent_redraw_differs += usize::from(redraw != op);
        }
        state = out.state;
    }
    assert!(
        independent_redraw_differs > 700,
        "a double draw would differ often: {independent_redraw_differs}/1000"
    );
}

/// Deterministic evaluation and bootstrapping use the argmax op everywhere.
#[test]
fn bootstrap_value_is_the_deterministic_acts_value() {
    let device = default_device();
    let net = small_config().init(&device).unwrap();
    let space = net.space().clone();
    let mut rng = StdRng::seed_from_u64(9);
    let batch = 4;
    let obs = observations(&mut rng, batch, 10);
    let cat = categorical(batch);
    let masks = all_allowed(&space, batch);
    let starts = vec![true; batch];
    let input = ActInput {
        observations: &obs,
        categorical: &cat,
        masks: &masks,
        conditional_masks: &[],
        episode_starts: &starts,
    };
    let state = net.initial_state(batch);
    let det = net
        .act(&input, &state, ActMode::Deterministic, &mut rng)
        .unwrap();
    let boot = net.bootstrap_value(&input, &state).unwrap();
    assert_eq!(det.values, boot);
    for row in 0..batch {
        let probs = &det.op_probs[row * 6..(row + 1) * 6];
        let argmax = (0..6).fold(0, |b, o| if probs[o] > probs[b] { o } else { b });
        assert_eq!(det.ops[row], argmax);
        assert_eq!(boot[row], det.q_values[row * 6 + argmax]);
    }
}

/// Acting step by step — with rows that reset mid-sequence — equals one `evaluate_actions` call
/// over the whole sequence from the stored initial state.
#[test]
fn stepwise_acting_equals_one_sequence_evaluation() {
    let device = default_device();
    let config = small_config().with_num_lstm_layers(2);
    let net = config.init(&device).unwrap();
    let space = net.space().clone();
    let (batch, time) = (3, 7);
    let mut rng = StdRng::seed_from_u64(21);
    // Row 0 never resets after the start, row 1 resets at t = 3, row 2 at t = 2 and t = 5.
    let starts_at =
        |b: usize, t: usize| t == 0 || (b == 1 && t == 3) || (b == 2 && (t == 2 || t == 5));
    // Masks vary over time: the op head forbids FOSSILIZE on odd steps.
    let mask_at = |t: usize| {
        let mut m = all_allowed(&space, 1);
        m[reference::OP][reference::FOSSILIZE] = t.is_multiple_of(2);
        m
    };
    // A non-zero initial state, as a buffer would store mid-training.
    let mut state = net.initial_state(batch);
    let warmup = observations(&mut rng, batch, 10);
    let warm_cat = categorical(batch);
    let warm_masks = all_allowed(&space, batch);
    state = net
        .act(
            &ActInput {
                observations: &warmup,
                categorical: &warm_cat,
                masks: &warm_masks,
                conditional_masks: &[],
                episode_starts: &[false; 3],
            },
            &state,
            ActMode::Stochastic,
            &mut rng,
        )
        .unwrap()
        .state;
    let initial_state = state.clone();

    let rows = batch * time;
    let mut obs = vec![0.0; rows * 10];
    let mut cat = vec![0; rows * 3];
    let mut masks: Vec<Vec<bool>> = space
        .heads()
        .iter()
        .map(|h| vec![false; rows * h.size])
        .collect();
    let mut starts = vec![false; rows];
    let mut actions: Vec<Vec<usize>> = vec![vec![0; rows]; space.num_heads()];
    let mut act_log_probs: Vec<Vec<f32>> = vec![vec![0.0; rows]; space.num_heads()];
    let mut act_values = vec![0.0; rows];
    for t in 0..time {
        let step_obs = observations(&mut rng, batch, 10);
        let step_cat = categorical(batch);
        let step_masks: Vec<Vec<bool>> = (0..space.num_heads())
            .map(|h| (0..batch).flat_map(|_| mask_at(t)[h].clone()).collect())
            .collect();
        let step_starts: Vec<bool> = (0..batch).map(|b| starts_at(b, t)).collect();
        let out = net
            .act(
                &ActInput {
                    observations: &step_obs,
                    categorical: &step_cat,
                    masks: &step_masks,
                    conditional_masks: &[],
                    episode_starts: &step_starts,
                },
                &state,
                ActMode::Stochastic,
                &mut rng,
            )
            .unwrap();
        for b in 0..batch {
            let row = b * time + t;
            obs[row * 10..(row + 1) * 10].copy_from_slice(&step_obs[b * 10..(b + 1) * 10]);
            cat[row * 3..(row + 1) * 3].copy_from_slice(&step_cat[b * 3..(b + 1) * 3]);
            starts[row] = step_starts[b];
            act_values[row] = out.values[b];
            for (h, head) in space.heads().iter().enumerate() {
                let n = head.size;
                masks[h][row * n..(row + 1) * n]
                    .copy_from_slice(&step_masks[h][b * n..(b + 1) * n]);
                actions[h][row] = out.actions[h][b];
                act_log_probs[h][row] = out.log_probs[h][b];
            }
        }
        state = out.state;
    }
    let eval = net
        .evaluate_actions(
            &EvaluateInput {
                sequences: Sequences {
                    batch,
                    time,
                    observations: &obs,
                    categorical: &cat,
                    episode_starts: &starts,
                },
                masks: &masks,
                actions: &actions,
            },
            initial_state,
        )
        .unwrap();
    let close = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5);
    assert!(
        close(&act_values, &host(eval.values.clone())),
        "values differ"
    );
    for h in 0..space.num_heads() {
        assert!(
            close(&act_log_probs[h], &host(eval.log_probs[h].clone())),
            "head {h} log-probs differ"
        );
    }
    let final_act = state.hidden.into_data().try_into_vec_as::<f32>().unwrap();
    let final_eval = eval
        .state
        .hidden
        .into_data()
        .try_into_vec_as::<f32>()
        .unwrap();
    assert!(close(&final_act, &final_eval));

    // Without the resets the replay is a different computation: the test can tell.
    let no_starts: Vec<bool> = (0..rows).map(|r| r % time == 0).collect();
    let wrong = net
        .evaluate_actions(
            &EvaluateInput {
                sequences: Sequences {
                    batch,
                    time,
                    observations: &obs,
                    categorical: &cat,
                    episode_starts: &no_starts,
                },
                masks: &masks,
                actions: &actions,
            },
            state_like(&net, batch),
        )
        .unwrap();
    assert!(!close(&act_values, &host(wrong.values)));
}

fn state_like(net: &FactoredRecurrentActorCritic, batch: usize) -> LstmState {
    net.initial_state(batch)
}

#[test]
fn evaluate_actions_is_differentiable_through_every_part() {
    let device = default_device().autodiff();
    let net = small_config().init(&device).unwrap().train();
    let space = net.space().clone();
    let (batch, time) = (2, 3);
    let rows = batch * time;
    let mut rng = StdRng::seed_from_u64(1);
    let obs = observations(&mut rng, rows, 10);
    let cat = categorical(rows);
    let masks = all_allowed(&space, rows);
    let starts: Vec<bool> = (0..rows).map(|r| r % time == 0).collect();
    // GERMINATE and SET_ALPHA_TARGET leave style unrestricted, so any style is a valid stored action.
    let mut actions: Vec<Vec<usize>> = space
        .heads()
        .iter()
        .map(|h| vec![h.size - 1; rows])
        .collect();
    actions[reference::OP] = (0..rows).map(|r| 1 + r % 2).collect();
    let eval = net
        .evaluate_actions(
            &EvaluateInput {
                sequences: Sequences {
                    batch,
                    time,
                    observations: &obs,
                    categorical: &cat,
                    episode_starts: &starts,
                },
                masks: &masks,
                actions: &actions,
            },
            net.initial_state(batch),
        )
        .unwrap();
    let loss = eval
        .log_probs
        .iter()
        .fold(eval.values.clone().sum(), |acc, lp| acc + lp.clone().sum())
        + eval
            .entropies
            .iter()
            .fold(eval.values.clone().sum() * 0.0, |acc, e| {
                acc + e.clone().sum()
            });
    let grads = loss.backward();
    let mut missing = Vec::new();
    struct Check<'a> {
        grads: &'a factored_rl::burn::tensor::Gradients,
        missing: &'a mut Vec<String>,
        path: Vec<String>,
    }
    impl factored_rl::burn::module::ModuleVisitor for Check<'_> {
        fn enter_module(&mut self, name: &str, _: &str) {
            self.path.push(name.to_string());
        }
        fn exit_module(&mut self, _: &str, _: &str) {
            self.path.pop();
        }
        fn visit_float<const D: usize>(
            &mut self,
            param: &factored_rl::burn::module::Param<Tensor<D>>,
        ) {
            match param.val().grad(self.grads) {
                Some(g) => {
                    let g = g.into_data().try_into_vec_as::<f32>().unwrap();
                    if g.iter().any(|v| !v.is_finite()) || g.iter().all(|v| *v == 0.0) {
                        self.missing.push(self.path.join("."));
                    }
                }
                None => self.missing.push(self.path.join(".")),
            }
        }
    }
    net.visit(&mut Check {
        grads: &grads,
        missing: &mut missing,
        path: vec![],
    });
    // Only the null-free embedding rows and the critic's unused branches could lack gradient;
    // every module must receive some.
    assert!(
        missing.is_empty(),
        "parameters without a finite, non-zero gradient: {missing:?}"
    );
}

#[test]
fn checkpoint_round_trip_is_bit_exact_and_mismatch_is_named() {
    let device = default_device();
    let config = small_config();
    let net = config.init(&device).unwrap();
    let dir = tempfile::tempdir().unwrap();
    net.save(dir.path()).unwrap();
    let loaded = FactoredRecurrentActorCritic::load(dir.path(), &device).unwrap();
    let bytes =
        |n: &FactoredRecurrentActorCritic| n.clone().into_record().into_bytes().unwrap().to_vec();
    assert_eq!(bytes(&net), bytes(&loaded));
    assert_eq!(loaded.config(), net.config());
    let also =
        FactoredRecurrentActorCritic::load_with_config(dir.path(), &config, &device).unwrap();
    assert_eq!(bytes(&also), bytes(&net));

    let mut other = config.clone();
    other.action_space.heads[1].size = 12;
    other.action_space.relevance = other.action_space.relevance.clone();
    let err =
        FactoredRecurrentActorCritic::load_with_config(dir.path(), &other, &device).unwrap_err();
    match &err {
        Error::CheckpointMismatch { reason, .. } => {
            assert!(reason.contains("action_space.heads[1].size"), "{reason}");
        }
        other => panic!("expected CheckpointMismatch, got {other:?}"),
    }

    // No temporary files are left behind by the atomic writes.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // A corrupt weights file is a named error, not a panic.
    std::fs::write(dir.path().join("policy.bpk"), b"not a burnpack").unwrap();
    assert!(matches!(
        FactoredRecurrentActorCritic::load(dir.path(), &device),
        Err(Error::Corrupt { .. })
    ));
    assert!(matches!(
        FactoredRecurrentActorCritic::load(dir.path().join("missing"), &device),
        Err(Error::Io { .. })
    ));
}

#[test]
fn non_finite_observation_names_the_row() {
    let device = default_device();
    let net = small_config().init(&device).unwrap();
    let space = net.space().clone();
    let batch = 3;
    let mut obs = vec![0.5; batch * 10];
    obs[2 * 10 + 4] = f32::INFINITY;
    let cat = categorical(batch);
    let masks = all_allowed(&space, batch);
    let starts = vec![false; batch];
    let input = ActInput {
        observations: &obs,
        categorical: &cat,
        masks: &masks,
        conditional_masks: &[],
        episode_starts: &starts,
    };
    let err = net
        .act(
            &input,
            &net.initial_state(batch),
            ActMode::Deterministic,
            &mut StdRng::seed_from_u64(0),
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::NonFinite { name, row: 2 } if name == "observations"),
        "{err}"
    );
    let mut nan_obs = obs.clone();
    nan_obs[2 * 10 + 4] = f32::NAN;
    let input = ActInput {
        observations: &nan_obs,
        ..input
    };
    assert!(matches!(
        net.bootstrap_value(&input, &net.initial_state(batch)),
        Err(Error::NonFinite { row: 2, .. })
    ));
}

#[test]
fn bad_masks_and_categoricals_are_named_errors() {
    let device = default_device();
    let net = small_config().init(&device).unwrap();
    let space = net.space().clone();
    let batch = 2;
    let obs = vec![0.0; batch * 10];
    let cat = categorical(batch);
    let mut masks = all_allowed(&space, batch);
    masks[reference::SLOT][3..6].fill(false);
    let starts = vec![false; batch];
    let mut input = ActInput {
        observations: &obs,
        categorical: &cat,
        masks: &masks,
        conditional_masks: &[],
        episode_starts: &starts,
    };
    let state = net.initial_state(batch);
    let mut rng = StdRng::seed_from_u64(0);
    let err = net
        .act(&input, &state, ActMode::Stochastic, &mut rng)
        .unwrap_err();
    assert!(
        matches!(&err, Error::EmptyMask { head, row: 1 } if head == "slot"),
        "{err}"
    );

    // The op-conditioned rule restricts style to SIGMOID_ADD under WAIT: forbidding SIGMOID_ADD
    // while only WAIT is allowed leaves style empty after the rule.
    let mut masks = all_allowed(&space, batch);
    masks[reference::OP]
        .iter_mut()
        .enumerate()
        .for_each(|(i, m)| *m = i % 6 == reference::WAIT);
    masks[reference::STYLE][reference::SIGMOID_ADD] = false;
    input.masks = &masks;
    let err = net
        .act(&input, &state, ActMode::Deterministic, &mut rng)
        .unwrap_err();
    assert!(
        matches!(&err, Error::EmptyMask { head, row: 0 } if head == "style"),
        "{err}"
    );

    let bad_cat = vec![0, 13, 2, 0, 0, 0];
    let masks = all_allowed(&space, batch);
    input.masks = &masks;
    input.categorical = &bad_cat;
    let err = net
        .act(&input, &state, ActMode::Deterministic, &mut rng)
        .unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { name, .. } if name.contains("row 0") && name.contains("input 1")),
        "{err}"
    );

    let short_state = net.initial_state(1);
    input.categorical = &cat;
    assert!(matches!(
        net.act(&input, &short_state, ActMode::Deterministic, &mut rng),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn reference_preset_has_the_spec_parameter_count() {
    // SPEC §4 / BASELINES.md: the reference network has 3,625,314 parameters.
    let net = FactoredRecurrentActorCriticConfig::reference()
        .init(&default_device())
        .unwrap();
    assert_eq!(net.num_params(), 3_625_314);
}

/// Runs `evaluate_with_gradients` and plain autodiff on the same inputs and loss, and checks that
/// every parameter's gradient agrees within 1e-4 of that parameter's largest gradient.
fn assert_fast_gradients_match_autodiff(
    config: FactoredRecurrentActorCriticConfig,
    masks: impl Fn(&ActionSpace, usize) -> Vec<Vec<bool>>,
) {
    use factored_rl::burn::optim::GradientsParams;
    let device = default_device().autodiff();
    let net = config.clone().init(&device).unwrap().train();
    let space = net.space().clone();
    let (batch, time) = (3, 5);
    let rows = batch * time;
    let mut rng = StdRng::seed_from_u64(2);
    let obs = observations(&mut rng, rows, 10);
    let cat = match config.categorical {
        Some(_) => categorical(rows),
        None => Vec::new(),
    };
    let masks = masks(&space, rows);
    let starts: Vec<bool> = (0..rows).map(|r| r % time == 0 || r == 7).collect();
    let mut actions: Vec<Vec<usize>> = space
        .heads()
        .iter()
        .map(|h| vec![h.size / 2; rows])
        .collect();
    actions[reference::OP] = (0..rows).map(|r| [1, 2, 3][r % 3]).collect();
    actions[reference::STYLE] = vec![reference::SIGMOID_ADD; rows];
    let input = EvaluateInput {
        sequences: Sequences {
            batch,
            time,
            observations: &obs,
            categorical: &cat,
            episode_starts: &starts,
        },
        masks: &masks,
        actions: &actions,
    };
    // Every output of an evaluation enters the loss, each with its own weight.
    let loss_of = |eval: &factored_rl::policy::Evaluation| {
        let mut loss =
            eval.values.clone().powi_scalar(2).sum() + eval.q_values().sin().sum().mul_scalar(0.3);
        for (h, (lp, e)) in eval.log_probs.iter().zip(&eval.entropies).enumerate() {
            loss = loss + lp.clone().sum().mul_scalar(h as f32 + 1.0)
                - e.clone().sum().mul_scalar(0.5 + h as f32 / 4.0);
        }
        loss
    };
    let eval = net
        .evaluate_actions(&input, net.initial_state(batch))
        .unwrap();
    let reference = GradientsParams::from_grads(loss_of(&eval).backward(), &net);
    for placement in [Placement::Host, Placement::Device] {
        let (fast, fast_values) = net
            .evaluate_with_gradients_on(placement, &input, net.initial_state(batch), |fast_eval| {
                Ok((loss_of(fast_eval), host(fast_eval.values.clone())))
            })
            .unwrap();
        for (x, y) in host(eval.values.clone()).iter().zip(&fast_values) {
            assert!((x - y).abs() <= 1e-5, "{placement:?} values: {x} vs {y}");
        }
        assert_gradients_match(&net, &reference, &fast, placement);
    }
}

/// Every parameter's gradient in `fast` agrees with `reference` within 1e-4 of the parameter's
/// largest gradient.
fn assert_gradients_match(
    net: &FactoredRecurrentActorCritic,
    reference: &factored_rl::burn::optim::GradientsParams,
    fast: &factored_rl::burn::optim::GradientsParams,
    placement: Placement,
) {
    use factored_rl::burn::optim::GradientsParams;

    struct Compare<'a> {
        a: &'a GradientsParams,
        b: &'a GradientsParams,
        placement: Placement,
        compared: usize,
    }
    impl factored_rl::burn::module::ModuleVisitor for Compare<'_> {
        fn visit_float<const D: usize>(
            &mut self,
            param: &factored_rl::burn::module::Param<Tensor<D>>,
        ) {
            let a = self
                .a
                .get::<D>(param.id)
                .map(|t| t.into_data().try_into_vec_as::<f32>().unwrap());
            let b = self
                .b
                .get::<D>(param.id)
                .map(|t| t.into_data().try_into_vec_as::<f32>().unwrap());
            let (a, b) = (a.expect("autodiff gradient"), b.expect("fast gradient"));
            let placement = self.placement;
            assert_eq!(a.len(), b.len(), "{placement:?} {:?}", param.lazy_shape());
            let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-3);
            for (x, y) in a.iter().zip(&b) {
                assert!(
                    (x - y).abs() <= 1e-4 * scale,
                    "{placement:?} {:?}: {x} vs {y}",
                    param.lazy_shape()
                );
            }
            self.compared += 1;
        }
    }
    let mut compare = Compare {
        a: reference,
        b: fast,
        placement,
        compared: 0,
    };
    net.visit(&mut compare);
    assert!(compare.compared > 20);
}

/// Masks with about a third of the entries forbidden (never a whole row, never the stored
/// actions of the parity tests).
fn sparse_masks(space: &ActionSpace, rows: usize) -> Vec<Vec<bool>> {
    space
        .heads()
        .iter()
        .enumerate()
        .map(|(head, h)| {
            (0..rows * h.size)
                .map(|i| {
                    let (row, action) = (i / h.size, i % h.size);
                    let kept = [h.size / 2, reference::SIGMOID_ADD, 1, 2, 3];
                    kept.contains(&action) || (row + action + head) % 3 != 0
                })
                .collect()
        })
        .collect()
}

/// The hand-written BPTT path gives the gradients burn's autodiff gives for the same loss.
#[test]
fn fast_gradients_equal_autodiff_gradients() {
    assert_fast_gradients_match_autodiff(small_config().with_num_lstm_layers(2), all_allowed);
}

/// The same without categorical inputs (no embedding table, the observations alone feed the
/// feature layer).
#[test]
fn fast_gradients_equal_autodiff_gradients_without_categorical_inputs() {
    let mut config = small_config();
    config.categorical = None;
    assert_fast_gradients_match_autodiff(config, all_allowed);
}

/// The same in every value mode, with masked actions and op-conditioned rules in force, and with
/// heads, critic and `V(s)` of other depths (no hidden layer, two hidden layers).
#[test]
fn fast_gradients_equal_autodiff_gradients_in_every_value_mode_and_depth() {
    let mut head_hidden = vec![vec![8]; 8];
    head_hidden[0] = Vec::new();
    head_hidden[reference::BLUEPRINT] = vec![8, 6];
    for (value_mode, critic_hidden) in [
        (ValueMode::SelectedOp, vec![8, 5]),
        (ValueMode::SelectedOp, Vec::new()),
        (ValueMode::ExpectedOp, Vec::new()),
        (ValueMode::StateValue, vec![7]),
    ] {
        let config = small_config()
            .with_head_hidden(head_hidden.clone())
            .with_critic_hidden(critic_hidden)
            .with_value_mode(value_mode);
        assert_fast_gradients_match_autodiff(config, sparse_masks);
    }
}

/// Stored actions the masks forbid are the same named errors in `evaluate_with_gradients` as in
/// `evaluate_actions`.
#[test]
fn fast_gradients_name_a_masked_stored_action() {
    let device = default_device().autodiff();
    let net = small_config().init(&device).unwrap().train();
    let space = net.space().clone();
    let (batch, time) = (2, 3);
    let rows = batch * time;
    let mut rng = StdRng::seed_from_u64(3);
    let obs = observations(&mut rng, rows, 10);
    let cat = categorical(rows);
    let mut masks = all_allowed(&space, rows);
    let blueprint_size = space.heads()[reference::BLUEPRINT].size;
    masks[reference::BLUEPRINT][4 * blueprint_size] = false;
    let starts = vec![false; rows];
    let mut actions: Vec<Vec<usize>> = space.heads().iter().map(|_| vec![0; rows]).collect();
    actions[reference::OP] = vec![reference::GERMINATE; rows];
    let input = EvaluateInput {
        sequences: Sequences {
            batch,
            time,
            observations: &obs,
            categorical: &cat,
            episode_starts: &starts,
        },
        masks: &masks,
        actions: &actions,
    };
    let fast = net
        .evaluate_with_gradients(&input, net.initial_state(batch), |eval| {
            Ok((eval.values.clone().sum(), ()))
        })
        .map(|_| ());
    let plain = net
        .evaluate_actions(&input, net.initial_state(batch))
        .map(|_| ());
    for result in [fast, plain] {
        match result {
            Err(Error::MaskedAction { head, row, action }) => {
                assert_eq!((head.as_str(), row, action), ("blueprint", 4, 0));
            }
            other => panic!("expected Error::MaskedAction, got {other:?}"),
        }
    }
}

/// Selecting rows of a host recurrent state: a row past the batch, or a state whose buffers do not
/// match its declared shape, is a named error rather than a panic or a silent wrong pick.
#[test]
fn host_state_row_selection_rejects_bad_rows_and_shapes() {
    use factored_rl::policy::HostLstmState;
    let mut state = HostLstmState::zeros(2, 3, 4);
    state
        .hidden
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = i as f32);
    let picked = state.select_rows(&[2, 0]).unwrap();
    // Layer 0 row 2, layer 0 row 0, layer 1 row 2, layer 1 row 0 (4 values each).
    let expected: Vec<f32> = [8, 0, 20, 12]
        .iter()
        .flat_map(|&start| (start..start + 4).map(|v| v as f32))
        .collect();
    assert_eq!(picked.hidden, expected);
    assert_eq!((picked.num_layers, picked.batch), (2, 2));

    match state.select_rows(&[1, 3]) {
        Err(Error::Invalid { name, reason }) => {
            assert_eq!(name, "rows");
            assert!(reason.contains("row 3"), "{reason}");
        }
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
    state.cell.pop();
    match state.select_rows(&[0]) {
        Err(Error::ShapeMismatch { name, .. }) => assert_eq!(name, "state.cell"),
        other => panic!("expected Error::ShapeMismatch, got {other:?}"),
    }
}
