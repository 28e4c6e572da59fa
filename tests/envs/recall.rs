use factored_rl::Error;
use factored_rl::env::{Env, Recall, RecallConfig};

fn one_hot(k: usize, n: usize) -> Vec<f32> {
    (0..n).map(|i| if i == k { 1.0 } else { 0.0 }).collect()
}

#[test]
fn cue_only_first_then_blanks_then_query() {
    let config = RecallConfig {
        num_symbols: 5,
        gap: 12,
        mask_before_query: false,
    };
    let mut env = Recall::new(config).unwrap();
    assert_eq!(env.spec().observation_size, 6);
    for seed in 0..20 {
        let reset = env.reset(Some(seed));
        let cue = env.cue();
        let mut first = one_hot(cue, 5);
        first.push(0.0);
        assert_eq!(reset.observation.features, first);
        assert_eq!(reset.masks, vec![vec![true; 5]]);
        for t in 1..=12 {
            // Any answer before the query is ignored.
            let step = env.step(&[(t + cue + 1) % 5]).unwrap();
            assert_eq!(step.reward, 0.0);
            assert!(!step.terminated && !step.truncated);
            assert_eq!(step.observation.features, vec![0.0; 6], "blank step {t}");
            assert_eq!(env.episode_success(), None);
        }
        let query = env.step(&[cue]).unwrap();
        assert_eq!(query.observation.features, {
            let mut q = vec![0.0; 6];
            q[5] = 1.0;
            q
        });
        assert!(!query.terminated);
        // The answer: step gap + 2 of the episode.
        let answer = if seed % 2 == 0 { cue } else { (cue + 1) % 5 };
        let end = env.step(&[answer]).unwrap();
        assert!(end.terminated && !end.truncated);
        assert_eq!(end.reward, if seed % 2 == 0 { 1.0 } else { 0.0 });
        assert_eq!(env.episode_success(), Some(seed % 2 == 0));
        assert!(matches!(env.step(&[0]), Err(Error::Invalid { .. })));
    }
}

#[test]
fn a_memoryless_answer_succeeds_at_chance() {
    let mut env = Recall::new(RecallConfig::default()).unwrap();
    let episodes = 4000;
    let mut successes = 0;
    for seed in 0..episodes {
        env.reset(Some(seed));
        loop {
            let step = env.step(&[0]).unwrap();
            if step.terminated {
                successes += usize::from(env.episode_success() == Some(true));
                break;
            }
        }
    }
    let rate = successes as f64 / episodes as f64;
    // Chance is 1/4; 4000 episodes put 3 standard deviations at ±0.021.
    assert!((rate - 0.25).abs() < 0.025, "success rate {rate}");
}

#[test]
fn default_gap_is_at_least_ten_and_episodes_last_gap_plus_two() {
    let config = RecallConfig::default();
    assert!(config.gap >= 10);
    let mut env = Recall::new(config.clone()).unwrap();
    env.reset(Some(0));
    let mut length = 0;
    loop {
        length += 1;
        if env.step(&[0]).unwrap().terminated {
            break;
        }
    }
    assert_eq!(length, config.gap + 2);
}

#[test]
fn masking_before_the_query_leaves_one_answer() {
    let config = RecallConfig {
        num_symbols: 3,
        gap: 2,
        mask_before_query: true,
    };
    let mut env = Recall::new(config).unwrap();
    let reset = env.reset(Some(4));
    assert_eq!(reset.masks, vec![vec![true, false, false]]);
    assert!(matches!(
        env.step(&[1]),
        Err(Error::MaskedAction { head, action: 1, .. }) if head == "answer"
    ));
    let blank = env.step(&[0]).unwrap();
    assert_eq!(blank.masks, vec![vec![true, false, false]]);
    env.step(&[0]).unwrap();
    let query = env.step(&[0]).unwrap();
    assert_eq!(query.observation.features[3], 1.0);
    assert_eq!(
        query.masks,
        vec![vec![true; 3]],
        "all answers open at the query"
    );
}

#[test]
fn bad_configs_are_named() {
    for (config, field) in [
        (
            RecallConfig {
                num_symbols: 1,
                ..RecallConfig::default()
            },
            "recall.num_symbols",
        ),
        (
            RecallConfig {
                gap: 0,
                ..RecallConfig::default()
            },
            "recall.gap",
        ),
    ] {
        assert!(matches!(Recall::new(config), Err(Error::Invalid { name, .. }) if name == field));
    }
}
