//! Learning acceptance (issue: recurrent PPO that learns). Seeds are fixed; each run takes well
//! under two minutes in release on the 2-core reference machine.

use factored_rl::backend::default_device;
use factored_rl::env::{EnvConfigs, make_env, make_vec_env};
use factored_rl::ppo::{EvalReport, PpoTrainer, TrainSettings, evaluate_deterministic, preset};

fn train(
    env: &str,
    seed: u64,
    adjust: impl FnOnce(&mut TrainSettings),
) -> (PpoTrainer, EvalReport) {
    let configs = EnvConfigs::default();
    let spec = make_env(env, &configs).unwrap().spec().clone();
    let mut settings = preset(&spec, seed).unwrap();
    adjust(&mut settings);
    let envs = make_vec_env(env, &configs, settings.ppo.num_envs, settings.ppo.seed).unwrap();
    let mut trainer = PpoTrainer::new(
        &settings.network,
        settings.ppo.clone(),
        envs,
        &default_device(),
    )
    .unwrap();
    trainer.train(settings.total_steps, |_, _| Ok(())).unwrap();
    let report = evaluate_deterministic(
        trainer.policy(),
        env,
        &configs,
        settings.eval_episodes,
        10_000 + seed,
        trainer.observation_normalizer(),
    )
    .unwrap();
    (trainer, report)
}

/// CartPole-v1: deterministic evaluation reaches a mean return of at least 475 within 100,000 env
/// steps (the rl-zoo reaches 500 at 100k). Measured: 500 over 20 episodes; 19 of seeds 1–20 reach
/// 475 (see the preset and docs/ppo.md).
#[test]
fn cartpole_reaches_475_within_100k_steps() {
    let (trainer, report) = train("cartpole", 1, |s| assert!(s.total_steps <= 100_000));
    assert!(trainer.progress().global_step <= 100_000);
    assert!(report.mean_return >= 475.0, "{report:?}");
    assert_eq!(report.masked_actions, 0);
}

/// Recall with a cue-to-answer gap of 10 blank steps: the recurrent policy answers right in at
/// least 95 % of 200 evaluation episodes, while the same trainer with the LSTM state reset every
/// step stays near chance (1 in 4). Measured: 100 % vs 25 %.
#[test]
fn recall_needs_the_recurrent_state() {
    let configs = EnvConfigs::default();
    assert!(configs.recall.gap >= 10);
    let (_, recurrent) = train("recall", 1, |_| {});
    let success = recurrent.success_rate.unwrap();
    assert!(success >= 0.95, "recurrent success {success}");

    let (_, memoryless) = train("recall", 1, |s| s.ppo.reset_state_every_step = true);
    let chance = 1.0 / configs.recall.num_symbols as f32;
    let success = memoryless.success_rate.unwrap();
    assert!(
        (success - chance).abs() < 0.1,
        "memoryless success {success} should stay near chance {chance}"
    );
}

/// Lifecycle (the reference workload's stand-in, 8 heads with op-conditioned masks): the trained
/// policy's deterministic return beats the random policy by a clear margin and reaches at least
/// 40 % of the scripted policy that knows the hidden qualities; evaluation never takes a masked
/// action. Measured (seed 1, 120k steps, 20 episodes): trained 17.6, random −11.5, scripted 36.5
/// (48 % of scripted); the observation-only heuristic scores 28.2.
#[test]
fn lifecycle_beats_random_and_reaches_a_fraction_of_scripted() {
    use factored_rl::env::lifecycle::{RandomPolicy, ScriptedPolicy, evaluate_policy};
    let (_, report) = train("lifecycle", 1, |_| {});
    assert_eq!(report.masked_actions, 0);
    let trained = f64::from(report.mean_return);
    let config = EnvConfigs::default().lifecycle;
    let random = evaluate_policy(&config, &mut RandomPolicy::new(7), 200, 1000).unwrap();
    let scripted = evaluate_policy(&config, &mut ScriptedPolicy, 200, 1000).unwrap();
    assert!(
        trained > random.mean_return + 20.0,
        "trained {trained} vs random {}",
        random.mean_return
    );
    let fraction = trained / scripted.mean_return;
    assert!(
        fraction >= 0.4,
        "trained {trained} is {:.0} % of scripted {}",
        100.0 * fraction,
        scripted.mean_return
    );
}
