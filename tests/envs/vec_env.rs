use factored_rl::Error;
use factored_rl::action_space::reference::{GERMINATE, OP, PRUNE, SIGMOID_ADD, SLOT, STYLE, WAIT};
use factored_rl::env::{
    CartPoleConfig, ConditionalMask, ENV_NAMES, Env, EnvConfigs, RecallConfig, VecEnv, VecStep,
    make_env, make_vec_env, random_action, validate_action, validate_masks,
};
use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

#[test]
fn first_reset_seeds_env_i_with_seed_plus_i() {
    let configs = EnvConfigs::default();
    for name in ["cartpole", "recall", "lifecycle"] {
        let mut vec_env = make_vec_env(name, &configs, 3, 40).unwrap();
        let batch = vec_env.reset().unwrap();
        let size = vec_env.spec().observation_size;
        let k = vec_env.spec().categorical_vocab.len();
        assert_eq!(batch.features.len(), 3 * size);
        assert_eq!(batch.categorical.len(), 3 * k);
        assert_eq!(batch.episode_starts, vec![true; 3]);
        for i in 0..3 {
            let mut single = make_env(name, &configs).unwrap();
            let reset = single.reset(Some(40 + i as u64));
            assert_eq!(
                &batch.features[i * size..(i + 1) * size],
                reset.observation.features.as_slice(),
                "{name} env {i}"
            );
            assert_eq!(
                &batch.categorical[i * k..(i + 1) * k],
                reset.observation.categorical.as_slice()
            );
            for (h, mask) in reset.masks.iter().enumerate() {
                let n = mask.len();
                assert_eq!(&batch.masks[h][i * n..(i + 1) * n], mask.as_slice());
            }
        }
    }
}

#[test]
fn auto_reset_keeps_the_true_final_observation_and_marks_episode_starts() {
    let configs = EnvConfigs {
        recall: RecallConfig {
            num_symbols: 3,
            gap: 2,
            mask_before_query: false,
        },
        ..EnvConfigs::default()
    };
    let mut vec_env = make_vec_env("recall", &configs, 2, 7).unwrap();
    let first = vec_env.reset().unwrap();
    // Env 0 answers right, env 1 answers wrong: read the cues from the first observations.
    let cue = |i: usize| (0..3).find(|&k| first.features[i * 4 + k] == 1.0).unwrap();
    let (cue0, cue1) = (cue(0), cue(1));
    let actions = vec![vec![cue0], vec![(cue1 + 1) % 3]];
    for t in 0..3 {
        let step = vec_env.step(&actions).unwrap();
        assert_eq!(step.next.episode_starts, vec![false; 2], "step {t}");
        assert_eq!(step.final_observations, vec![None, None]);
        assert!(step.finished.is_empty());
    }
    let end = vec_env.step(&actions).unwrap();
    assert_eq!(end.terminated, vec![true, true]);
    assert_eq!(end.truncated, vec![false, false]);
    assert_eq!(end.rewards, vec![1.0, 0.0]);
    assert_eq!(end.next.episode_starts, vec![true, true]);
    for i in 0..2 {
        // The true final observation is the query (flag set), the next one is a fresh cue.
        let last = end.final_observations[i]
            .as_ref()
            .expect("final observation");
        assert_eq!(last.features, vec![0.0, 0.0, 0.0, 1.0]);
        let next = &end.next.features[i * 4..(i + 1) * 4];
        assert_eq!(next[3], 0.0);
        assert_eq!(next[..3].iter().sum::<f32>(), 1.0);
    }
    assert_eq!(end.finished.len(), 2);
    assert_eq!(end.finished[0].env, 0);
    assert_eq!(end.finished[0].episode_return, 1.0);
    assert_eq!(end.finished[0].length, 4);
    assert_eq!(end.finished[0].success, Some(true));
    assert_eq!(end.finished[1].success, Some(false));
    // The next episodes run with fresh cues and counters.
    let after = vec_env.step(&actions).unwrap();
    assert_eq!(after.next.episode_starts, vec![false, false]);
}

#[test]
fn time_limit_is_a_truncation_with_the_pre_reset_observation() {
    let configs = EnvConfigs {
        cartpole: CartPoleConfig { max_steps: 5 },
        ..EnvConfigs::default()
    };
    let mut vec_env = make_vec_env("cartpole", &configs, 4, 0).unwrap();
    vec_env.reset().unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut last = None;
    for t in 1..=5 {
        let actions = vec_env.random_actions(&mut rng).unwrap();
        let step = vec_env.step(&actions).unwrap();
        assert_eq!(step.terminated, vec![false; 4], "step {t}");
        assert_eq!(step.truncated, vec![t == 5; 4], "step {t}");
        last = Some(step);
    }
    let last = last.unwrap();
    assert_eq!(last.next.episode_starts, vec![true; 4]);
    for i in 0..4 {
        let final_obs = last.final_observations[i].as_ref().unwrap();
        let reset_obs = &last.next.features[i * 4..(i + 1) * 4];
        assert_ne!(final_obs.features.as_slice(), reset_obs);
        // A reset state lies in ±0.05; after 5 pushes the cart moves faster than that.
        assert!(reset_obs.iter().all(|v| v.abs() < 0.05));
        assert!(final_obs.features.iter().any(|v| v.abs() > 0.05));
    }
    let lengths: Vec<usize> = last.finished.iter().map(|r| r.length).collect();
    assert_eq!(lengths, vec![5; 4]);
    assert!(
        last.finished
            .iter()
            .all(|r| r.episode_return == 5.0 && r.success.is_none())
    );
}

fn run(name: &str, seed: u64, action_seed: u64, steps: usize) -> Vec<VecStep> {
    let mut vec_env = make_vec_env(name, &EnvConfigs::default(), 3, seed).unwrap();
    vec_env.reset().unwrap();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(action_seed);
    (0..steps)
        .map(|_| {
            let actions = vec_env.random_actions(&mut rng).unwrap();
            vec_env.step(&actions).unwrap()
        })
        .collect()
}

#[test]
fn same_seed_gives_identical_trajectories() {
    for name in ENV_NAMES {
        // 400 steps end several episodes of every env, so auto-resets are covered.
        let a = run(name, 11, 5, 400);
        let b = run(name, 11, 5, 400);
        assert_eq!(a, b, "{name}");
        assert!(
            a.iter().map(|s| s.finished.len()).sum::<usize>() >= 6,
            "{name}"
        );
        let c = run(name, 12, 5, 400);
        assert_ne!(a, c, "{name}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    /// Long random rollouts through the VecEnv of every env: it checks every mask row (and every
    /// row once an allowed op is chosen) on every step, and so does this test.
    #[test]
    fn masks_are_never_empty_in_random_rollouts(seed in any::<u64>()) {
        for name in ENV_NAMES {
            let mut vec_env = make_vec_env(name, &EnvConfigs::default(), 2, seed).unwrap();
            vec_env.reset().unwrap();
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed.rotate_left(17));
            let space = vec_env.spec().action_space.clone();
            for _ in 0..600 {
                for i in 0..2 {
                    let env = vec_env.env(i).unwrap();
                    let masks = vec_env.env_masks(i).unwrap();
                    prop_assert!(validate_masks(&space, masks, env.conditional_masks(), i).is_ok());
                }
                let actions = vec_env.random_actions(&mut rng).unwrap();
                prop_assert!(vec_env.step(&actions).is_ok());
            }
        }
    }
}

#[test]
fn bad_actions_are_named_and_leave_every_env_untouched() {
    let mut vec_env = make_vec_env("lifecycle", &EnvConfigs::default(), 3, 1).unwrap();
    let mut twin = make_vec_env("lifecycle", &EnvConfigs::default(), 3, 1).unwrap();
    assert!(matches!(
        vec_env.step(&vec![vec![0; 8]; 3]),
        Err(Error::Invalid { .. })
    ));
    vec_env.reset().unwrap();
    twin.reset().unwrap();
    let wait = vec![0, 0, SIGMOID_ADD, 0, 0, 0, 0, WAIT];
    assert!(matches!(
        vec_env.step(&[wait.clone(), wait.clone()]),
        Err(Error::WrongLength {
            expected: 3,
            found: 2,
            ..
        })
    ));
    let mut short = wait.clone();
    short.pop();
    assert!(matches!(
        vec_env.step(&[wait.clone(), short, wait.clone()]),
        Err(Error::WrongLength {
            expected: 8,
            found: 7,
            ..
        })
    ));
    let mut out_of_range = wait.clone();
    out_of_range[OP] = 6;
    assert!(matches!(
        vec_env.step(&[wait.clone(), wait.clone(), out_of_range]),
        Err(Error::ActionOutOfRange { head, row: 2, action: 6, size: 6 }) if head == "op"
    ));
    // Nothing to prune in an empty host.
    let mut prune = wait.clone();
    prune[OP] = PRUNE;
    assert!(matches!(
        vec_env.step(&[wait.clone(), wait.clone(), prune]),
        Err(Error::MaskedAction { head, row: 2, action }) if head == "op" && action == PRUNE
    ));
    // The static rule: under WAIT, style must be SIGMOID_ADD.
    let mut styled = wait.clone();
    styled[STYLE] = 0;
    assert!(matches!(
        vec_env.step(&[styled, wait.clone(), wait.clone()]),
        Err(Error::MaskedAction { head, row: 0, action: 0 }) if head == "style"
    ));
    // None of the failed calls moved any env.
    let mut rng_a = Xoshiro256PlusPlus::seed_from_u64(2);
    let mut rng_b = Xoshiro256PlusPlus::seed_from_u64(2);
    for _ in 0..20 {
        let a = vec_env.random_actions(&mut rng_a).unwrap();
        let b = twin.random_actions(&mut rng_b).unwrap();
        assert_eq!(vec_env.step(&a).unwrap(), twin.step(&b).unwrap());
    }
}

#[test]
fn masks_given_ops_fold_in_conditional_masks_and_static_rules() {
    // The manual mechanics, where a freshly germinated seed can be pruned.
    let mut configs = EnvConfigs::default();
    configs.lifecycle.prune_only_blended = false;
    configs.lifecycle.auto_blend = false;
    let mut vec_env = make_vec_env("lifecycle", &configs, 2, 3).unwrap();
    let batch = vec_env.reset().unwrap();
    let space = vec_env.spec().action_space.clone();
    // Env 0 germinates in slot 1; env 1 waits.
    let mut germinate = vec![1, 4, 0, 1, 2, 0, 0, GERMINATE];
    germinate[SLOT] = 1;
    let wait = vec![0, 0, SIGMOID_ADD, 0, 0, 0, 0, WAIT];
    let masks = batch.masks_given_ops(&space, &[GERMINATE, WAIT]).unwrap();
    assert_eq!(
        &masks[STYLE][..4],
        &[true; 4],
        "GERMINATE keeps every style"
    );
    assert_eq!(&masks[STYLE][4..], &[false, true, false, false]);
    let step = vec_env.step(&[germinate, wait]).unwrap();
    let next = step.next;
    assert_eq!(next.conditional_masks[SLOT].len(), 2 * 6 * 3);
    // Env 0: PRUNE applies only to slot 1, GERMINATE only to slots 0 and 2.
    let masks = next.masks_given_ops(&space, &[PRUNE, WAIT]).unwrap();
    assert_eq!(&masks[SLOT][..3], &[false, true, false]);
    let masks = next
        .masks_given_ops(&space, &[GERMINATE, GERMINATE])
        .unwrap();
    assert_eq!(&masks[SLOT][..3], &[true, false, true]);
    assert_eq!(&masks[SLOT][3..], &[true, true, true]);
    // Env 1 has nothing to prune.
    assert!(matches!(
        next.masks_given_ops(&space, &[PRUNE, PRUNE]),
        Err(Error::MaskedAction { row: 1, .. })
    ));
    assert!(matches!(
        next.masks_given_ops(&space, &[WAIT]),
        Err(Error::ShapeMismatch { .. })
    ));
}

#[test]
fn envs_of_different_kinds_cannot_share_a_vec_env() {
    let configs = EnvConfigs::default();
    let envs: Vec<Box<dyn Env>> = vec![
        make_env("cartpole", &configs).unwrap(),
        make_env("recall", &configs).unwrap(),
    ];
    assert!(matches!(VecEnv::new(envs, 0), Err(Error::Invalid { name, .. }) if name == "envs"));
    assert!(matches!(VecEnv::new(vec![], 0), Err(Error::Invalid { .. })));
}

#[test]
fn malformed_masks_are_errors_not_panics() {
    let mut vec_env = make_vec_env("lifecycle", &EnvConfigs::default(), 2, 3).unwrap();
    let batch = vec_env.reset().unwrap();
    let space = vec_env.spec().action_space.clone();
    let mut short = batch.clone();
    short.masks[SLOT].pop();
    assert!(matches!(
        short.masks_given_ops(&space, &[WAIT, WAIT]),
        Err(Error::ShapeMismatch { name, .. }) if name.contains("slot")
    ));
    let mut missing = batch.clone();
    missing.conditional_masks.clear();
    assert!(matches!(
        missing.masks_given_ops(&space, &[WAIT, WAIT]),
        Err(Error::WrongLength { .. })
    ));
    let masks = vec_env.env_masks(0).unwrap().to_vec();
    let wait = vec![0, 0, SIGMOID_ADD, 0, 0, 0, 0, WAIT];
    let mut bad = masks.clone();
    bad[STYLE] = vec![true; 2];
    assert!(matches!(
        validate_action(&space, &bad, &[], &wait, 0),
        Err(Error::ShapeMismatch { name, .. }) if name.contains("style")
    ));
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    assert!(matches!(
        random_action(&space, &masks[..7], &[], &mut rng),
        Err(Error::WrongLength {
            expected: 8,
            found: 7,
            ..
        })
    ));
    let odd = ConditionalMask {
        head: SLOT,
        by_op: vec![vec![true; 3]; 2],
    };
    assert!(matches!(
        validate_masks(&space, &masks, &[odd], 0),
        Err(Error::WrongLength {
            expected: 6,
            found: 2,
            ..
        })
    ));
}
