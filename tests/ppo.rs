//! The PPO trainer: exact resume, KL early stop, configuration errors.

use factored_rl::Error;
use factored_rl::backend::default_device;
use factored_rl::burn::module::{Module, ModuleVisitor, Param};
use factored_rl::burn::tensor::Tensor;
use factored_rl::env::{EnvConfigs, make_env, make_vec_env};
use factored_rl::ppo::{PpoConfig, PpoTrainer, TrainSettings, UpdateLog, preset};

fn small_lifecycle() -> TrainSettings {
    let spec = make_env("lifecycle", &EnvConfigs::default())
        .unwrap()
        .spec()
        .clone();
    let mut settings = preset(&spec, 3).unwrap();
    settings.network = factored_rl::ppo::network_for(&spec, 16, 16, 8).with_seed(3);
    settings.ppo = settings
        .ppo
        .with_num_envs(4)
        .with_num_steps(20)
        .with_num_minibatches(2)
        .with_update_epochs(2)
        .with_normalize_observations(true)
        .with_scale_rewards(true)
        .with_anneal_lr(true);
    settings.total_steps = 4 * 4 * 20;
    settings
}

fn trainer(settings: &TrainSettings) -> PpoTrainer {
    let envs = make_vec_env(
        "lifecycle",
        &settings.env,
        settings.ppo.num_envs,
        settings.ppo.seed,
    )
    .unwrap();
    PpoTrainer::new(
        &settings.network,
        settings.ppo.clone(),
        envs,
        &default_device(),
    )
    .unwrap()
}

/// Every parameter value, in module order (parameter ids are not compared: a loaded module may
/// carry new ones).
fn weights(trainer: &PpoTrainer) -> Vec<u32> {
    struct Collect(Vec<u32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param.val().into_data().try_into_vec_as::<f32>().unwrap();
            self.0.extend(values.iter().map(|v| v.to_bits()));
        }
    }
    let mut collect = Collect(Vec::new());
    trainer.policy().visit(&mut collect);
    collect.0
}

/// Two iterations, a checkpoint, a resume into a fresh process state, two more iterations: the
/// same weights, statistics and logs as four uninterrupted iterations, bit for bit — with
/// observation normalization, reward scaling, learning-rate annealing and the lifecycle env's
/// op-conditioned masks all in play.
#[test]
fn resume_reproduces_the_uninterrupted_run_bit_for_bit() {
    let settings = small_lifecycle();
    let mut straight = trainer(&settings);
    let mut straight_logs: Vec<UpdateLog> = Vec::new();
    straight
        .train(settings.total_steps, |_, log| {
            straight_logs.push(log.clone());
            Ok(())
        })
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    let mut first = trainer(&settings);
    let mut logs: Vec<UpdateLog> = Vec::new();
    let stop = "stop after two iterations";
    let interrupted = first.train(settings.total_steps, |_, log| {
        logs.push(log.clone());
        if log.iteration == 2 {
            return Err(Error::invalid("test", stop));
        }
        Ok(())
    });
    assert!(matches!(interrupted, Err(Error::Invalid { reason, .. }) if reason == stop));
    first
        .save_checkpoint(&checkpoint, "lifecycle", &settings)
        .unwrap();
    drop(first);

    let (mut resumed, meta) =
        PpoTrainer::resume(&checkpoint, "lifecycle", &default_device()).unwrap();
    assert_eq!(meta.settings, settings);
    resumed
        .train(settings.total_steps, |_, log| {
            logs.push(log.clone());
            Ok(())
        })
        .unwrap();
    assert_eq!(logs, straight_logs);
    assert_eq!(resumed.progress(), straight.progress());
    assert_eq!(weights(&resumed), weights(&straight));
}

#[test]
fn resuming_a_checkpoint_of_another_env_or_a_missing_one_is_a_named_error() {
    let settings = small_lifecycle();
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint");
    trainer(&settings)
        .save_checkpoint(&checkpoint, "lifecycle", &settings)
        .unwrap();
    let err = PpoTrainer::resume(&checkpoint, "cartpole", &default_device()).unwrap_err();
    assert!(
        matches!(&err, Error::CheckpointMismatch { reason, .. } if reason.contains("lifecycle")),
        "{err}"
    );
    assert!(matches!(
        PpoTrainer::resume(&dir.path().join("nothing"), "lifecycle", &default_device()),
        Err(Error::Io { .. })
    ));
    std::fs::write(checkpoint.join("trainer.json"), b"{ not json").unwrap();
    assert!(matches!(
        PpoTrainer::resume(&checkpoint, "lifecycle", &default_device()),
        Err(Error::Corrupt { .. })
    ));
}

/// A KL target that one optimizer step exceeds stops the update after that step: the first
/// minibatch scores the acting policy itself (KL at rounding level), the next one sees the step.
#[test]
fn kl_early_stop_skips_the_step() {
    let mut settings = small_lifecycle();
    settings.ppo = settings
        .ppo
        .with_target_kl(Some(1e-6))
        .with_learning_rate(1e-2);
    let mut stopped = trainer(&settings);
    let before = weights(&stopped);
    let log = stopped.iterate(4).unwrap();
    assert!(log.early_stopped, "{log:?}");
    assert_eq!(log.minibatch_steps, 1, "{log:?}");
    assert_ne!(weights(&stopped), before);
    let unlimited = {
        let mut settings = small_lifecycle();
        settings.ppo = settings.ppo.with_target_kl(None);
        trainer(&settings).iterate(4).unwrap()
    };
    assert!(!unlimited.early_stopped);
    assert_eq!(unlimited.minibatch_steps, 2 * 2);
}

#[test]
fn configuration_errors_are_named() {
    let settings = small_lifecycle();
    let envs = || make_vec_env("lifecycle", &settings.env, 4, 1).unwrap();
    let bad = PpoConfig::new().with_num_envs(4).with_num_minibatches(3);
    let err = PpoTrainer::new(&settings.network, bad, envs(), &default_device()).unwrap_err();
    assert!(
        matches!(&err, Error::Invalid { name, .. } if name == "num_minibatches"),
        "{err}"
    );
    let wrong_count = PpoConfig::new().with_num_envs(8).with_num_minibatches(4);
    assert!(matches!(
        PpoTrainer::new(&settings.network, wrong_count, envs(), &default_device()),
        Err(Error::Invalid { name, .. }) if name == "num_envs"
    ));
    let cartpole = make_env("cartpole", &EnvConfigs::default())
        .unwrap()
        .spec()
        .clone();
    let wrong_net = factored_rl::ppo::network_for(&cartpole, 8, 8, 8);
    let err =
        PpoTrainer::new(&wrong_net, settings.ppo.clone(), envs(), &default_device()).unwrap_err();
    assert!(
        matches!(&err, Error::ShapeMismatch { name, .. } if name.contains("d_observation")),
        "{err}"
    );
}
