use factored_rl::Error;
use factored_rl::env::{CartPole, CartPoleConfig, Env};

/// Gymnasium's CartPole-v1 step (`gymnasium/envs/classic_control/cartpole.py`, euler branch),
/// written out here so the expected values do not come from the code under test.
fn gymnasium_step(state: [f64; 4], action: usize) -> [f64; 4] {
    let (gravity, masscart, masspole, length, force_mag, tau) = (9.8, 1.0, 0.1, 0.5, 10.0, 0.02);
    let total_mass = masspole + masscart;
    let polemass_length = masspole * length;
    let [x, x_dot, theta, theta_dot] = state;
    let force = if action == 1 { force_mag } else { -force_mag };
    let costheta = f64::cos(theta);
    let sintheta = f64::sin(theta);
    let temp = (force + polemass_length * theta_dot.powi(2) * sintheta) / total_mass;
    let thetaacc = (gravity * sintheta - costheta * temp)
        / (length * (4.0 / 3.0 - masspole * costheta.powi(2) / total_mass));
    let xacc = temp - polemass_length * thetaacc * costheta / total_mass;
    [
        x + tau * x_dot,
        x_dot + tau * xacc,
        theta + tau * theta_dot,
        theta_dot + tau * thetaacc,
    ]
}

fn gymnasium_terminated(state: [f64; 4]) -> bool {
    let theta_threshold_radians = 12.0 * 2.0 * std::f64::consts::PI / 360.0;
    state[0] < -2.4
        || state[0] > 2.4
        || state[2] < -theta_threshold_radians
        || state[2] > theta_threshold_radians
}

#[test]
fn dynamics_match_gymnasium_formulas() {
    let mut env = CartPole::new(CartPoleConfig::default()).unwrap();
    let reset = env.reset(Some(3));
    let mut expected = env.state();
    assert!(expected.iter().all(|v| (-0.05..0.05).contains(v)));
    let shown: Vec<f32> = expected.iter().map(|&v| v as f32).collect();
    assert_eq!(reset.observation.features, shown);
    assert!(reset.observation.categorical.is_empty());
    // A fixed action pattern that swings the pole until it falls.
    let actions = [
        1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    ];
    let mut ended = false;
    for (t, &a) in actions.iter().cycle().take(200).enumerate() {
        expected = gymnasium_step(expected, a);
        let step = env.step(&[a]).unwrap();
        for (k, (&got, &want)) in step.observation.features.iter().zip(&expected).enumerate() {
            assert!(
                (f64::from(got) - want).abs() <= 1e-6 * want.abs().max(1.0),
                "step {t} feature {k}: {got} vs {want}"
            );
        }
        assert_eq!(
            step.reward, 1.0,
            "reward 1 on every step, the last included"
        );
        assert_eq!(step.terminated, gymnasium_terminated(expected), "step {t}");
        assert!(!step.truncated);
        if step.terminated {
            ended = true;
            break;
        }
    }
    assert!(ended, "the pattern should make the pole fall");
    assert!(matches!(env.step(&[0]), Err(Error::Invalid { .. })));
}

#[test]
fn dynamics_from_chosen_states() {
    let mut env = CartPole::new(CartPoleConfig::default()).unwrap();
    env.reset(Some(0));
    for state in [
        [0.3, -0.7, 0.1, 0.9],
        [-1.2, 1.5, -0.15, -1.1],
        [2.0, 0.1, 0.2, 0.0],
    ] {
        for action in [0, 1] {
            env.set_state(state);
            let step = env.step(&[action]).unwrap();
            let want = gymnasium_step(state, action);
            let got: Vec<f64> = env.state().to_vec();
            for k in 0..4 {
                assert!(
                    (got[k] - want[k]).abs() < 1e-12,
                    "{state:?} a={action} k={k}"
                );
            }
            assert_eq!(step.terminated, gymnasium_terminated(want));
        }
    }
}

#[test]
fn termination_thresholds() {
    let mut env = CartPole::new(CartPoleConfig::default()).unwrap();
    env.reset(Some(0));
    // x crosses 2.4 after one step of 0.02 * 1.0.
    env.set_state([2.395, 1.0, 0.0, 0.0]);
    let step = env.step(&[1]).unwrap();
    assert!(step.terminated && !step.truncated && step.reward == 1.0);
    env.reset(None);
    // theta crosses 12° (0.20944 rad).
    env.set_state([0.0, 0.0, 0.2090, 1.0]);
    let step = env.step(&[0]).unwrap();
    assert!(step.terminated && !step.truncated);
    env.reset(None);
    env.set_state([0.0, 0.0, 0.2, 0.0]);
    assert!(!env.step(&[0]).unwrap().terminated);
}

#[test]
fn step_500_truncates_without_terminating() {
    let mut env = CartPole::new(CartPoleConfig::default()).unwrap();
    env.reset(Some(1));
    for t in 1..=500 {
        // Keep the pole upright so that only the time limit can end the episode.
        env.set_state([0.0; 4]);
        let step = env.step(&[t % 2]).unwrap();
        assert!(!step.terminated, "step {t}");
        assert_eq!(step.truncated, t == 500, "step {t}");
    }
    assert!(matches!(env.step(&[0]), Err(Error::Invalid { .. })));
    // A reset starts a fresh 500-step budget.
    env.reset(None);
    env.set_state([0.0; 4]);
    assert!(!env.step(&[0]).unwrap().truncated);
}

#[test]
fn bad_actions_are_named() {
    let mut env = CartPole::new(CartPoleConfig::default()).unwrap();
    env.reset(Some(0));
    assert!(matches!(
        env.step(&[2]),
        Err(Error::ActionOutOfRange { head, action: 2, size: 2, .. }) if head == "push"
    ));
    assert!(matches!(
        env.step(&[0, 1]),
        Err(Error::WrongLength {
            expected: 1,
            found: 2,
            ..
        })
    ));
    let mut fresh = CartPole::new(CartPoleConfig::default()).unwrap();
    assert!(
        matches!(fresh.step(&[0]), Err(Error::Invalid { .. })),
        "step before reset"
    );
}

#[test]
fn same_seed_same_start_different_seed_different_start() {
    let mut a = CartPole::new(CartPoleConfig::default()).unwrap();
    let mut b = CartPole::new(CartPoleConfig::default()).unwrap();
    assert_eq!(a.reset(Some(9)), b.reset(Some(9)));
    assert_eq!(a.reset(None), b.reset(None));
    assert_ne!(a.reset(Some(9)).observation, b.reset(Some(10)).observation);
}
