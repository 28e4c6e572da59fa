//! Property tests of the factored recurrent actor-critic (SPEC §5): the op is decided once, and
//! acting agrees with re-evaluation, over random configurations, masks, observations, seeds and
//! both acting modes.

use factored_rl::action_space::{ActionSpaceConfig, HeadSpec, OpMaskRule};
use factored_rl::backend::default_device;
use factored_rl::burn::tensor::{Int, Tensor, TensorData};
use factored_rl::nn::LstmState;
use factored_rl::policy::{
    ActInput, ActMode, ActOutput, CategoricalInputConfig, EvaluateInput, Evaluation,
    FactoredRecurrentActorCritic, FactoredRecurrentActorCriticConfig, SequenceOutput, Sequences,
    ValueMode,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

const TOL: f32 = 1e-5;

/// A random network and one batch of inputs for it.
#[derive(Debug, Clone)]
struct Case {
    config: FactoredRecurrentActorCriticConfig,
    batch: usize,
    observations: Vec<f32>,
    categorical: Vec<i64>,
    masks: Vec<Vec<bool>>,
    /// Env-provided op-dependent masks, per head empty or `batch * num_ops * size`.
    conditional: Vec<Vec<bool>>,
    episode_starts: Vec<bool>,
    /// Whether the initial state is random (else zero).
    state_seed: Option<u64>,
    act_seed: u64,
    mode: ActMode,
}

fn action_space() -> impl Strategy<Value = ActionSpaceConfig> {
    (
        prop::collection::vec(1usize..5, 1..5),
        any::<prop::sample::Index>(),
    )
        .prop_flat_map(|(sizes, op_pick)| {
            let num_heads = sizes.len();
            let op = op_pick.index(num_heads);
            let num_ops = sizes[op];
            let relevance =
                prop::collection::vec(prop::collection::vec(any::<bool>(), num_heads), num_ops);
            // Up to two rules on heads other than the op head.
            let rule = (
                0..num_heads,
                prop::collection::vec(any::<bool>(), num_ops),
                any::<prop::sample::Index>(),
            );
            (
                Just(sizes),
                Just(op),
                relevance,
                prop::collection::vec(rule, 0..3),
            )
        })
        .prop_map(|(sizes, op, mut relevance, rules)| {
            for row in &mut relevance {
                row[op] = true;
            }
            let heads: Vec<HeadSpec> = sizes
                .iter()
                .enumerate()
                .map(|(i, &s)| HeadSpec::new(format!("h{i}"), s))
                .collect();
            // At most one rule per head: two singleton rules on one head could together allow
            // nothing, which the library rightly reports as an empty mask.
            let mut ruled = vec![false; sizes.len()];
            let op_mask_rules = rules
                .into_iter()
                .filter(|(head, _, _)| *head != op && !std::mem::replace(&mut ruled[*head], true))
                .map(|(head, applies, keep)| OpMaskRule {
                    head: format!("h{head}"),
                    ops: applies
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| **a)
                        .map(|(i, _)| i)
                        .collect(),
                    allowed: vec![keep.index(sizes[head])],
                })
                .collect();
            ActionSpaceConfig {
                heads,
                op_head: format!("h{op}"),
                relevance,
                op_mask_rules,
            }
        })
}

fn case() -> impl Strategy<Value = Case> {
    let config = (
        action_space(),
        1usize..4,     // d_observation
        any::<bool>(), // categorical inputs
        2usize..9,     // d_hidden
        1usize..3,     // LSTM layers
        prop_oneof![
            Just(ValueMode::SelectedOp),
            Just(ValueMode::ExpectedOp),
            Just(ValueMode::StateValue)
        ],
        any::<u64>(),
    )
        .prop_map(
            |(space, d_obs, categorical, d_hidden, layers, mode, seed)| {
                let num_heads = space.heads.len();
                FactoredRecurrentActorCriticConfig::new(space, d_obs)
                    .with_categorical(categorical.then(|| CategoricalInputConfig::new(2, 3, 2)))
                    .with_d_feature(6)
                    .with_d_hidden(d_hidden)
                    .with_num_lstm_layers(layers)
                    .with_head_hidden(vec![vec![5]; num_heads])
                    .with_critic_hidden(vec![4])
                    .with_value_mode(mode)
                    .with_seed(seed)
            },
        );
    (config, 1usize..5).prop_flat_map(|(config, batch)| {
        let n_obs = batch * config.d_observation;
        let n_cat = config
            .categorical
            .as_ref()
            .map_or(0, |c| batch * c.num_inputs);
        let sizes: Vec<usize> = config.action_space.heads.iter().map(|h| h.size).collect();
        let masks = sizes
            .iter()
            .map(|&s| prop::collection::vec(any::<bool>(), batch * s))
            .collect::<Vec<_>>();
        let num_ops = sizes[config.space().unwrap().op_index()];
        let conditional = sizes
            .iter()
            .map(|&s| {
                prop_oneof![
                    Just(Vec::new()),
                    prop::collection::vec(any::<bool>(), batch * num_ops * s)
                ]
            })
            .collect::<Vec<_>>();
        (
            Just(config),
            Just(batch),
            prop::collection::vec(-3.0f32..3.0, n_obs),
            prop::collection::vec(-1i64..3, n_cat),
            (masks, conditional),
            prop::collection::vec(any::<bool>(), batch),
            prop::option::of(any::<u64>()),
            any::<u64>(),
            prop_oneof![Just(ActMode::Stochastic), Just(ActMode::Deterministic)],
        )
            .prop_map(
                |(
                    config,
                    batch,
                    observations,
                    categorical,
                    (mut masks, mut conditional),
                    episode_starts,
                    state_seed,
                    act_seed,
                    mode,
                )| {
                    make_masks_valid(&config, batch, &mut masks, &mut conditional);
                    Case {
                        config,
                        batch,
                        observations,
                        categorical,
                        masks,
                        conditional,
                        episode_starts,
                        state_seed,
                        act_seed,
                        mode,
                    }
                },
            )
    })
}

/// Every row allows something, and under every op the rules and conditional masks together leave
/// something allowed (as environments guarantee).
fn make_masks_valid(
    config: &FactoredRecurrentActorCriticConfig,
    batch: usize,
    masks: &mut [Vec<bool>],
    conditional: &mut [Vec<bool>],
) {
    let space = config.space().unwrap();
    let num_ops = space.num_ops();
    conditional[space.op_index()].clear();
    for (h, head) in space.heads().iter().enumerate() {
        let n = head.size;
        for row in 0..batch {
            let m = &mut masks[h][row * n..(row + 1) * n];
            if !m.iter().any(|&x| x) {
                m[row % n] = true;
            }
            for rule in space.op_mask_rules().iter().filter(|r| r.head == h) {
                let keep = rule.allowed.iter().position(|&a| a).unwrap();
                m[keep] = true;
            }
            if conditional[h].is_empty() {
                continue;
            }
            for op in 0..num_ops {
                let mut effective = m.to_vec();
                space.restrict_mask_row(h, op, &mut effective);
                let c = &mut conditional[h][(row * num_ops + op) * n..(row * num_ops + op + 1) * n];
                if !effective.iter().zip(c.iter()).any(|(a, b)| *a && *b) {
                    c[effective.iter().position(|&a| a).unwrap()] = true;
                }
            }
        }
    }
}

struct Run {
    net: FactoredRecurrentActorCritic,
    act: ActOutput,
    eval: Evaluation,
    raw: SequenceOutput,
}

fn run(case: &Case) -> Run {
    let device = default_device();
    let net = case.config.init(&device).unwrap();
    let state = match case.state_seed {
        None => net.initial_state(case.batch),
        Some(seed) => {
            let dims = [
                case.config.num_lstm_layers,
                case.batch,
                case.config.d_hidden,
            ];
            let n = dims.iter().product();
            let mut rng = StdRng::seed_from_u64(seed);
            let mut random = || {
                let values = factored_rl::nn::init::normal(n, 0.0, 1.0, &mut rng);
                Tensor::from_data(TensorData::new(values, dims), &device)
            };
            LstmState {
                hidden: random(),
                cell: random(),
            }
        }
    };
    let input = ActInput {
        observations: &case.observations,
        categorical: &case.categorical,
        masks: &case.masks,
        conditional_masks: &case.conditional,
        episode_starts: &case.episode_starts,
    };
    let mut rng = StdRng::seed_from_u64(case.act_seed);
    let act = net.act(&input, &state, case.mode, &mut rng).unwrap();
    let sequences = Sequences {
        batch: case.batch,
        time: 1,
        observations: &case.observations,
        categorical: &case.categorical,
        episode_starts: &case.episode_starts,
    };
    let eval = net
        .evaluate_actions(
            &EvaluateInput {
                sequences,
                masks: &act.masks,
                actions: &act.actions,
            },
            state.clone(),
        )
        .unwrap();
    let raw = net.forward_sequences(&sequences, state).unwrap();
    Run {
        net,
        act,
        eval,
        raw,
    }
}

fn host1(t: Tensor<1>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

fn host2(t: Tensor<2>) -> Vec<f32> {
    t.into_data().try_into_vec_as::<f32>().unwrap()
}

/// Masked softmax computed independently of the library.
fn masked_probs(logits: &[f32], mask: &[bool]) -> Vec<f32> {
    let max = logits
        .iter()
        .zip(mask)
        .filter(|(_, m)| **m)
        .map(|(l, _)| *l)
        .fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits
        .iter()
        .zip(mask)
        .map(|(l, m)| if *m { (l - max).exp() } else { 0.0 })
        .collect();
    let sum: f32 = exp.iter().sum();
    exp.iter().map(|e| e / sum).collect()
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 256,
        // Integration tests have no lib.rs beside them to anchor regression files.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    /// (a) The value act returns is the value for the op it stored, recomputed by evaluate_actions.
    #[test]
    fn value_is_for_the_stored_op(case in case()) {
        let r = run(&case);
        let space = r.net.space();
        let num_ops = space.num_ops();
        let eval_values = host1(r.eval.values.clone());
        let q = host2(r.eval.q_values());
        for row in 0..case.batch {
            prop_assert_eq!(r.act.ops[row], r.act.actions[space.op_index()][row]);
            prop_assert!((r.act.values[row] - eval_values[row]).abs() <= TOL);
            if case.config.value_mode == ValueMode::SelectedOp {
                prop_assert!((r.act.values[row] - q[row * num_ops + r.act.ops[row]]).abs() <= TOL);
            }
        }
    }

    /// (b) Deterministic acting takes the argmax of the masked op logits and values Q(s, argmax op).
    #[test]
    fn deterministic_op_is_masked_argmax(case in case()) {
        let case = Case { mode: ActMode::Deterministic, ..case };
        let r = run(&case);
        let space = r.net.space();
        let num_ops = space.num_ops();
        let logits = host2(r.raw.head_logits[space.op_index()].clone());
        let q = host2(r.raw.q_values.clone());
        for row in 0..case.batch {
            let mask = &case.masks[space.op_index()][row * num_ops..(row + 1) * num_ops];
            let l = &logits[row * num_ops..(row + 1) * num_ops];
            let best = (0..num_ops)
                .filter(|&o| mask[o])
                .fold(None::<usize>, |b, o| match b { Some(b) if l[b] >= l[o] => Some(b), _ => Some(o) })
                .unwrap();
            prop_assert_eq!(r.act.ops[row], best);
            if case.config.value_mode == ValueMode::SelectedOp {
                prop_assert!((r.act.values[row] - q[row * num_ops + best]).abs() <= TOL);
            }
            prop_assert!((r.act.q_values[row * num_ops + best] - q[row * num_ops + best]).abs() <= TOL);
        }
    }

    /// (c) No head ever returns an action its mask — or its conditional mask under the chosen
    /// op — forbids; and the masks act reports are exactly those restrictions.
    #[test]
    fn no_masked_action(case in case()) {
        let r = run(&case);
        let space = r.net.space();
        let num_ops = space.num_ops();
        for (h, head) in space.heads().iter().enumerate() {
            let n = head.size;
            for row in 0..case.batch {
                let op = r.act.ops[row];
                let mut expected = case.masks[h][row * n..(row + 1) * n].to_vec();
                if h != space.op_index() {
                    space.restrict_mask_row(h, op, &mut expected);
                    if !case.conditional[h].is_empty() {
                        let c = &case.conditional[h][(row * num_ops + op) * n..(row * num_ops + op + 1) * n];
                        expected.iter_mut().zip(c).for_each(|(e, c)| *e &= c);
                    }
                }
                prop_assert_eq!(&r.act.masks[h][row * n..(row + 1) * n], expected.as_slice());
                let a = r.act.actions[h][row];
                prop_assert!(a < n);
                prop_assert!(expected[a], "head {} row {} took masked {}", head.name, row, a);
            }
        }
    }

    /// (d) Op-conditioned rules always hold.
    #[test]
    fn op_conditioned_rules_hold(case in case()) {
        let r = run(&case);
        for rule in r.net.space().op_mask_rules() {
            for row in 0..case.batch {
                if rule.applies[r.act.ops[row]] {
                    prop_assert!(rule.allowed[r.act.actions[rule.head][row]]);
                }
            }
        }
    }

    /// (e) Per-head log-probs from acting equal those from evaluate_actions.
    #[test]
    fn act_log_probs_equal_evaluation(case in case()) {
        let r = run(&case);
        for (h, lp) in r.eval.log_probs.iter().enumerate() {
            let eval = host1(lp.clone());
            prop_assert_eq!(eval.len(), case.batch);
            for (row, (a, e)) in r.act.log_probs[h].iter().zip(&eval).enumerate() {
                prop_assert!((a - e).abs() <= TOL, "head {} row {}: act {} eval {}", h, row, a, e);
            }
        }
        // And the state after the step is the one evaluation reaches.
        let a = host_state(&r.act.state);
        let e = host_state(&r.eval.state);
        prop_assert!(a.iter().zip(&e).all(|(x, y)| (x - y).abs() <= TOL));
    }

    /// (f) The three value modes agree with their definitions computed by hand from Q(s, ·) and π.
    #[test]
    fn value_modes_match_their_definitions(case in case()) {
        let r = run(&case);
        let space = r.net.space();
        let num_ops = space.num_ops();
        let logits = host2(r.raw.head_logits[space.op_index()].clone());
        let q = host2(r.raw.q_values.clone());
        for row in 0..case.batch {
            let mask = &case.masks[space.op_index()][row * num_ops..(row + 1) * num_ops];
            let pi = masked_probs(&logits[row * num_ops..(row + 1) * num_ops], mask);
            let q_row = &q[row * num_ops..(row + 1) * num_ops];
            let expected = match case.config.value_mode {
                ValueMode::SelectedOp => q_row[r.act.ops[row]],
                ValueMode::ExpectedOp => pi.iter().zip(q_row).map(|(p, q)| p * q).sum(),
                ValueMode::StateValue => host1(r.raw.state_values.clone().unwrap())[row],
            };
            prop_assert!((r.act.values[row] - expected).abs() <= TOL,
                "{:?} row {}: act {} by hand {}", case.config.value_mode, row, r.act.values[row], expected);
            for (o, p) in pi.iter().enumerate() {
                prop_assert!((r.act.op_probs[row * num_ops + o] - p).abs() <= TOL);
            }
        }
    }
}

proptest! {
    #![proptest_config(config())]

    /// (g) The host actor (acting on the CPU without burn) decides exactly what the burn path
    /// decides, with the same log-probs, values and next state.
    #[test]
    fn host_actor_acts_like_the_network(case in case()) {
        let r = run(&case);
        let host_actor = r.net.host_actor();
        let mut state = host_actor.initial_state(case.batch);
        if case.state_seed.is_some() {
            // The same random initial state the burn path used.
            let dims = [case.config.num_lstm_layers, case.batch, case.config.d_hidden];
            let n: usize = dims.iter().product();
            let mut rng = StdRng::seed_from_u64(case.state_seed.unwrap());
            state.hidden = factored_rl::nn::init::normal(n, 0.0, 1.0, &mut rng);
            state.cell = factored_rl::nn::init::normal(n, 0.0, 1.0, &mut rng);
        }
        let input = ActInput {
            observations: &case.observations,
            categorical: &case.categorical,
            masks: &case.masks,
            conditional_masks: &case.conditional,
            episode_starts: &case.episode_starts,
        };
        let mut rng = StdRng::seed_from_u64(case.act_seed);
        let out = host_actor.act(&input, &state, case.mode, &mut rng).unwrap();
        prop_assert_eq!(&out.actions, &r.act.actions);
        prop_assert_eq!(&out.masks, &r.act.masks);
        let close = |a: &[f32], b: &[f32]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= TOL);
        prop_assert!(close(&out.values, &r.act.values));
        prop_assert!(close(&out.q_values, &r.act.q_values));
        prop_assert!(close(&out.op_probs, &r.act.op_probs));
        for (a, b) in out.log_probs.iter().zip(&r.act.log_probs) {
            prop_assert!(close(a, b));
        }
        let burn_state = host_state(&r.act.state);
        let host_next: Vec<f32> = out.state.hidden.iter().chain(&out.state.cell).copied().collect();
        prop_assert!(close(&host_next, &burn_state));

        // Selecting rows (as truncation bootstrapping does) picks the same rows as burn's select.
        let rows: Vec<usize> = (0..case.batch).rev().step_by(2).collect();
        let picked = out.state.select_rows(&rows).unwrap();
        prop_assert_eq!(picked.batch, rows.len());
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [rows.len()]),
            &r.act.state.hidden.device(),
        );
        let burn_picked = host_state(&LstmState {
            hidden: r.act.state.hidden.clone().select(1, index.clone()),
            cell: r.act.state.cell.clone().select(1, index),
        });
        let host_picked: Vec<f32> = picked.hidden.iter().chain(&picked.cell).copied().collect();
        prop_assert!(close(&host_picked, &burn_picked));
    }
}

fn host_state(state: &LstmState) -> Vec<f32> {
    let mut v = state.hidden.to_data().try_into_vec_as::<f32>().unwrap();
    v.extend(state.cell.to_data().try_into_vec_as::<f32>().unwrap());
    v
}
