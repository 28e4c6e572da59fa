//! Checkpoints: an env or VecEnv restored from a snapshot (also through a JSON string) into a fresh
//! instance continues bit for bit as the original, from mid-episode, right after an (auto-)reset
//! and between an episode's end and the next reset; snapshots of another kind, other settings,
//! another number of envs or with malformed fields are named errors that leave the target
//! unchanged.
//!
//! Traces are compared through their `Debug` text: Rust prints the shortest decimal that reads back
//! as the same float, so equal text means equal bits (−0.0 included).

use factored_rl::Error;
use factored_rl::action_space::ActionSpace;
use factored_rl::env::{
    ENV_NAMES, Env, EnvConfigs, EnvSpec, LifecycleConfig, RecallConfig, Reset, Step, VecBatch,
    VecEnv, make_env, make_vec_env, random_action,
};
use factored_rl::rng::SnapshotRng;
use rand::SeedableRng;
use serde_json::Value;

/// Settings with short recall episodes, so that traces cross several episode boundaries.
fn configs() -> EnvConfigs {
    EnvConfigs {
        recall: RecallConfig {
            num_symbols: 3,
            gap: 4,
            mask_before_query: true,
        },
        lifecycle: LifecycleConfig {
            max_steps: 40,
            ..LifecycleConfig::default()
        },
        ..EnvConfigs::default()
    }
}

fn through_string(snapshot: &Value) -> Value {
    let text = serde_json::to_string(snapshot).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// An env with the episode bookkeeping of a driver: the masks to act on and whether an episode
/// runs.
struct Driver {
    env: Box<dyn Env>,
    masks: Vec<Vec<bool>>,
    running: bool,
}

impl Driver {
    fn reset(&mut self, seed: Option<u64>) -> Reset {
        let reset = self.env.reset(seed);
        self.masks = reset.masks.clone();
        self.running = true;
        reset
    }

    fn step(&mut self, action: &[usize]) -> Step {
        let step = self.env.step(action).unwrap();
        self.masks = step.masks.clone();
        self.running = !(step.terminated || step.truncated);
        step
    }

    fn random_action(&self, rng: &mut SnapshotRng) -> Vec<usize> {
        let space = &self.env.spec().action_space;
        random_action(space, &self.masks, self.env.conditional_masks(), rng).unwrap()
    }

    /// `num_steps` random decisions (a reset where no episode runs), returning the actions
    /// taken (`None` = a reset) and the trace of everything the env returned.
    fn run_random(
        &mut self,
        num_steps: usize,
        rng: &mut SnapshotRng,
    ) -> (Vec<Option<Vec<usize>>>, String) {
        let mut decisions = Vec::with_capacity(num_steps);
        let mut trace = String::new();
        for _ in 0..num_steps {
            let decision = self.running.then(|| self.random_action(rng));
            trace += &self.apply(decision.as_deref());
            decisions.push(decision);
        }
        (decisions, trace)
    }

    /// Applies recorded decisions, returning the trace.
    fn replay(&mut self, decisions: &[Option<Vec<usize>>]) -> String {
        decisions.iter().map(|d| self.apply(d.as_deref())).collect()
    }

    fn apply(&mut self, decision: Option<&[usize]>) -> String {
        match decision {
            Some(action) => {
                let step = self.step(action);
                format!(
                    "step {action:?} -> {step:?} conditional {:?} success {:?}\n",
                    self.env.conditional_masks(),
                    self.env.episode_success()
                )
            }
            None => {
                let reset = self.reset(None);
                format!(
                    "reset -> {reset:?} conditional {:?}\n",
                    self.env.conditional_masks()
                )
            }
        }
    }
}

fn driver(name: &str) -> Driver {
    Driver {
        env: make_env(name, &configs()).unwrap(),
        masks: Vec::new(),
        running: false,
    }
}

/// Where a snapshot is taken.
#[derive(Debug, Clone, Copy)]
enum Moment {
    MidEpisode,
    RightAfterReset,
    EpisodeEndedBeforeReset,
}

/// Runs env `name` to `moment`, snapshots it, runs 300 more random decisions, then checks that a
/// fresh env (and a used one) restored from the snapshot, directly and through a string, replays
/// them identically and ends in the same state.
fn check_env_resumes(name: &str, moment: Moment, seed: u64) {
    let mut original = driver(name);
    let mut rng = SnapshotRng::seed_from_u64(seed ^ 0x5eed);
    original.reset(Some(seed));
    for _ in 0..23 {
        let decision = original.running.then(|| original.random_action(&mut rng));
        original.apply(decision.as_deref());
    }
    match moment {
        Moment::MidEpisode => {
            if !original.running {
                original.reset(None);
            }
            let action = original.random_action(&mut rng);
            original.step(&action);
            while !original.running {
                original.reset(None);
                let action = original.random_action(&mut rng);
                original.step(&action);
            }
        }
        Moment::RightAfterReset | Moment::EpisodeEndedBeforeReset => {
            while original.running {
                let action = original.random_action(&mut rng);
                original.step(&action);
            }
            if matches!(moment, Moment::RightAfterReset) {
                original.reset(None);
            }
        }
    }
    let snapshot = original.env.snapshot().unwrap();
    let (masks, running) = (original.masks.clone(), original.running);
    let (decisions, expected) = original.run_random(300, &mut rng);
    assert!(
        expected.matches("reset").count() >= 2,
        "{name}: the trace should cross episodes"
    );
    let final_state = original.env.snapshot().unwrap();

    let mut used = driver(name);
    used.reset(Some(seed + 1000));
    let mut other_rng = SnapshotRng::seed_from_u64(1);
    used.run_random(37, &mut other_rng);
    for (label, mut target, snapshot) in [
        ("fresh", driver(name), snapshot.clone()),
        (
            "fresh, through a string",
            driver(name),
            through_string(&snapshot),
        ),
        ("used", used, snapshot.clone()),
    ] {
        target.env.restore(&snapshot).unwrap();
        target.masks = masks.clone();
        target.running = running;
        let trace = target.replay(&decisions);
        assert!(
            trace == expected,
            "{name} {moment:?} ({label}): the restored env diverged"
        );
        assert_eq!(
            target.env.snapshot().unwrap(),
            final_state,
            "{name} {moment:?} ({label})"
        );
    }
}

#[test]
fn every_env_resumes_bit_for_bit_mid_episode() {
    for name in ENV_NAMES {
        for seed in [3, 11] {
            check_env_resumes(name, Moment::MidEpisode, seed);
        }
    }
}

#[test]
fn every_env_resumes_bit_for_bit_right_after_a_reset() {
    for name in ENV_NAMES {
        check_env_resumes(name, Moment::RightAfterReset, 5);
    }
}

#[test]
fn every_env_resumes_bit_for_bit_between_an_episode_end_and_the_reset() {
    for name in ENV_NAMES {
        check_env_resumes(name, Moment::EpisodeEndedBeforeReset, 8);
        // The ended episode stays ended: stepping it is still refused.
        let mut env = driver(name);
        env.reset(Some(8));
        let mut rng = SnapshotRng::seed_from_u64(0);
        while env.running {
            let action = env.random_action(&mut rng);
            env.step(&action);
        }
        let mut restored = driver(name);
        restored.env.restore(&env.env.snapshot().unwrap()).unwrap();
        // Allowed by the final masks: stepping is refused because the episode ended.
        let action = env.random_action(&mut rng);
        assert!(
            matches!(restored.env.step(&action), Err(Error::Invalid { .. })),
            "{name}"
        );
    }
}

#[test]
fn a_never_reset_env_restores_as_never_reset() {
    for name in ENV_NAMES {
        let fresh = driver(name);
        let snapshot = fresh.env.snapshot().unwrap();
        let mut target = driver(name);
        target.reset(Some(4));
        // An action that the masks of a never-reset env (everything allowed) accept: stepping is
        // refused because no episode runs, not because of the action.
        let space = &fresh.env.spec().action_space;
        let all_allowed: Vec<Vec<bool>> =
            space.head_sizes().iter().map(|&n| vec![true; n]).collect();
        let action =
            random_action(space, &all_allowed, &[], &mut SnapshotRng::seed_from_u64(0)).unwrap();
        target.env.restore(&through_string(&snapshot)).unwrap();
        assert!(
            matches!(target.env.step(&action), Err(Error::Invalid { .. })),
            "{name}"
        );
        assert_eq!(target.env.reset(Some(9)), driver(name).env.reset(Some(9)));
    }
}

/// `num_steps` random steps of `vec_env`: the actions and the trace of every `VecStep`.
fn run_vec(
    vec_env: &mut VecEnv,
    rng: &mut SnapshotRng,
    num_steps: usize,
) -> (Vec<Vec<Vec<usize>>>, String) {
    let mut actions = Vec::with_capacity(num_steps);
    let mut trace = String::new();
    for _ in 0..num_steps {
        let action = vec_env.random_actions(rng).unwrap();
        trace += &format!("{:?}\n", vec_env.step(&action).unwrap());
        actions.push(action);
    }
    (actions, trace)
}

fn replay_vec(vec_env: &mut VecEnv, actions: &[Vec<Vec<usize>>]) -> String {
    actions
        .iter()
        .map(|a| format!("{:?}\n", vec_env.step(a).unwrap()))
        .collect()
}

/// Runs a VecEnv of `name` until `after_auto_reset` holds (some env just auto-reset) or not,
/// snapshots it with its current batch, and checks that a fresh VecEnv restored from the snapshot
/// (directly and through a string) replays 250 more steps identically.
fn check_vec_env_resumes(name: &str, after_auto_reset: bool) {
    let mut original = make_vec_env(name, &configs(), 3, 21).unwrap();
    let mut rng = SnapshotRng::seed_from_u64(77);
    original.reset().unwrap();
    for _ in 0..17 {
        let actions = original.random_actions(&mut rng).unwrap();
        original.step(&actions).unwrap();
    }
    let batch = loop {
        let actions = original.random_actions(&mut rng).unwrap();
        let step = original.step(&actions).unwrap();
        if step.finished.is_empty() != after_auto_reset {
            break step.next;
        }
    };
    assert_eq!(
        batch.episode_starts.iter().any(|&s| s),
        after_auto_reset,
        "{name}"
    );
    let snapshot = original.snapshot().unwrap();
    let batch_text = serde_json::to_string(&batch).unwrap();
    let (actions, expected) = run_vec(&mut original, &mut rng, 250);
    assert!(expected.contains("finished: [EpisodeRecord"), "{name}");
    let final_state = original.snapshot().unwrap();

    for (label, snapshot) in [
        ("direct", snapshot.clone()),
        ("through a string", through_string(&snapshot)),
    ] {
        let mut restored = make_vec_env(name, &configs(), 3, 21).unwrap();
        restored.restore(&snapshot).unwrap();
        let restored_batch: VecBatch = serde_json::from_str(&batch_text).unwrap();
        assert!(
            format!("{restored_batch:?}") == format!("{batch:?}"),
            "{name} ({label}): the batch changed"
        );
        // The batch's masks are the VecEnv's: the next actions are validated against them.
        let first = restored.random_actions(&mut SnapshotRng::seed_from_u64(0));
        assert!(first.is_ok(), "{name} ({label})");
        let trace = replay_vec(&mut restored, &actions);
        assert!(
            trace == expected,
            "{name} ({label}): the restored VecEnv diverged"
        );
        assert_eq!(
            restored.snapshot().unwrap(),
            final_state,
            "{name} ({label})"
        );
    }
}

#[test]
fn vec_env_resumes_bit_for_bit_mid_episode() {
    for name in ENV_NAMES {
        check_vec_env_resumes(name, false);
    }
}

#[test]
fn vec_env_resumes_bit_for_bit_right_after_an_auto_reset() {
    for name in ENV_NAMES {
        check_vec_env_resumes(name, true);
    }
}

#[test]
fn a_never_reset_vec_env_must_be_reset_after_restoring() {
    let fresh = make_vec_env("recall", &configs(), 2, 5).unwrap();
    let snapshot = fresh.snapshot().unwrap();
    let mut used = make_vec_env("recall", &configs(), 2, 9).unwrap();
    used.reset().unwrap();
    used.restore(&snapshot).unwrap();
    assert!(matches!(
        used.step(&[vec![0], vec![0]]),
        Err(Error::Invalid { .. })
    ));
    // It seeds `5 + i` again, as the fresh one would.
    let mut reference = make_vec_env("recall", &configs(), 2, 5).unwrap();
    assert_eq!(used.reset().unwrap(), reference.reset().unwrap());
}

// ---------------------------------------------------------------------------------------------
// Errors

fn invalid(result: Result<(), Error>) -> (String, String) {
    match result {
        Err(Error::Invalid { name, reason }) => (name, reason),
        other => panic!("expected Error::Invalid, got {other:?}"),
    }
}

/// A snapshot of `name` after a few random steps.
fn snapshot_of(name: &str, steps: usize) -> Value {
    let mut env = driver(name);
    env.reset(Some(2));
    env.run_random(steps, &mut SnapshotRng::seed_from_u64(2));
    env.env.snapshot().unwrap()
}

/// Checks that restoring `snapshot` into env `name` fails with a name containing `field`, and
/// leaves the env as it was.
fn check_rejected(name: &str, snapshot: &Value, field: &str) -> String {
    let mut env = driver(name);
    env.reset(Some(6));
    env.run_random(5, &mut SnapshotRng::seed_from_u64(6));
    let before = env.env.snapshot().unwrap();
    let (error_name, reason) = invalid(env.env.restore(snapshot));
    assert!(
        error_name.contains(&format!("env `{name}`")) && error_name.contains(field),
        "{name}: error `{error_name}: {reason}` should name `{field}`"
    );
    assert_eq!(
        env.env.snapshot().unwrap(),
        before,
        "{name}: changed by a failed restore"
    );
    reason
}

#[test]
fn a_snapshot_of_another_env_kind_is_rejected() {
    for from in ENV_NAMES {
        for into in ENV_NAMES.into_iter().filter(|&n| n != from) {
            let reason = check_rejected(into, &snapshot_of(from, 3), "");
            assert!(reason.contains(&format!("`{from}`")), "{reason}");
        }
    }
}

#[test]
fn a_snapshot_taken_with_other_settings_names_the_setting() {
    let mut configs = configs();
    configs.recall.gap = 7;
    configs.lifecycle.telemetry_noise = 0.5;
    configs.cartpole.max_steps = 200;
    for (name, setting) in [
        ("recall", "gap"),
        ("lifecycle", "telemetry_noise"),
        ("cartpole", "max_steps"),
    ] {
        let mut env = make_env(name, &configs).unwrap();
        env.reset(Some(1));
        let snapshot = env.snapshot().unwrap();
        let reason = check_rejected(name, &snapshot, "");
        assert!(reason.contains(&format!("`{setting}`")), "{name}: {reason}");
    }
}

/// `snapshot` with `edit` applied to the object at `path` (keys separated by `/`).
fn edited(
    mut snapshot: Value,
    path: &str,
    edit: impl FnOnce(&mut serde_json::Map<String, Value>),
) -> Value {
    let mut node = &mut snapshot;
    for key in path.split('/').filter(|k| !k.is_empty()) {
        node = match key.parse::<usize>() {
            Ok(i) => &mut node[i],
            Err(_) => &mut node[key],
        };
    }
    edit(node.as_object_mut().unwrap());
    snapshot
}

/// `snapshot` with `key` of the object at `path` set to `value`.
fn set(snapshot: &Value, path: &str, key: &str, value: impl Into<Value>) -> Value {
    edited(snapshot.clone(), path, |o| {
        o.insert(key.into(), value.into());
    })
}

/// `snapshot` without `key` in the object at `path`.
fn without(snapshot: &Value, path: &str, key: &str) -> Value {
    edited(snapshot.clone(), path, |o| {
        o.remove(key);
    })
}

#[test]
fn malformed_fields_are_named() {
    for name in ENV_NAMES {
        let snapshot = snapshot_of(name, 4);
        let cases: Vec<(Value, &str)> = vec![
            (without(&snapshot, "", "running"), "running"),
            (set(&snapshot, "", "running", Value::from("yes")), "running"),
            (set(&snapshot, "", "surplus", Value::from(1)), "surplus"),
            (
                set(&snapshot, "rng", "s", serde_json::json!([0, 0, 0, 0])),
                "rng",
            ),
            (
                set(&snapshot, "", "masks", serde_json::json!([[true]])),
                "masks",
            ),
            (set(&snapshot, "", "config", Value::from(3)), "config"),
        ];
        for (bad, field) in cases {
            check_rejected(name, &bad, &format!("`{field}`"));
        }
        for not_an_object in [Value::Null, serde_json::json!([1, 2]), "cartpole".into()] {
            check_rejected(name, &not_an_object, "snapshot");
        }
    }
}

#[test]
fn out_of_range_and_non_finite_values_are_named() {
    let cartpole = snapshot_of("cartpole", 4);
    let nan = f64::NAN.to_bits();
    let bad = set(&cartpole, "", "state", serde_json::json!([0, nan, 0, 0]));
    check_rejected("cartpole", &bad, "`state`");
    let bad = set(&cartpole, "", "state", serde_json::json!([0, 0, 0]));
    check_rejected("cartpole", &bad, "`state`");
    let recall = snapshot_of("recall", 2);
    let reason = check_rejected("recall", &set(&recall, "", "cue", 3), "`cue`");
    assert!(reason.contains("out of range"), "{reason}");
    let recall = set(&recall, "", "position", 6);
    check_rejected("recall", &recall, "`position`");

    // A lifecycle state with a seed in some slot.
    let snapshot = (1..40)
        .map(|steps| snapshot_of("lifecycle", steps))
        .find(|s| {
            s["slots"]
                .as_array()
                .unwrap()
                .iter()
                .any(|slot| !slot.is_null())
        })
        .expect("random play germinates a seed");
    let k = snapshot["slots"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| !s.is_null())
        .unwrap();
    for (key, value) in [
        ("style", Value::from(4)),
        ("tempo", Value::from(3)),
        ("blueprint", Value::from(13)),
        ("stage", Value::from("Withering")),
        ("alpha", Value::from(f32::INFINITY.to_bits())),
        ("ramp_steps", Value::from(5)),
    ] {
        let bad = set(&snapshot, &format!("slots/{k}"), key, value);
        check_rejected("lifecycle", &bad, &format!("`slots[{k}].{key}`"));
    }
    let bad = without(&snapshot, &format!("slots/{k}/isolated"), "count");
    check_rejected("lifecycle", &bad, &format!("`slots[{k}].isolated.count`"));
    let bad = set(&snapshot, "", "slots", serde_json::json!([null, null]));
    check_rejected("lifecycle", &bad, "`slots`");
    let bad = set(&snapshot, "", "conditional_masks", serde_json::json!([]));
    check_rejected("lifecycle", &bad, "`conditional_masks`");
    let bad = set(&snapshot, "", "accuracy", Value::from(150.0f32.to_bits()));
    check_rejected("lifecycle", &bad, "`accuracy`");
}

/// An env without checkpoint support: the trait's defaults.
struct Opaque {
    spec: EnvSpec,
}

impl Env for Opaque {
    fn spec(&self) -> &EnvSpec {
        &self.spec
    }

    fn reset(&mut self, _seed: Option<u64>) -> Reset {
        Reset {
            observation: factored_rl::env::Observation {
                features: vec![0.0],
                categorical: vec![],
            },
            masks: vec![vec![true, true]],
        }
    }

    fn step(&mut self, _action: &[usize]) -> factored_rl::Result<Step> {
        Err(Error::invalid("opaque", "never steps"))
    }
}

fn opaque() -> Box<dyn Env> {
    Box::new(Opaque {
        spec: EnvSpec {
            name: "opaque".into(),
            observation_size: 1,
            categorical_vocab: vec![],
            action_space: ActionSpace::single("a", 2).unwrap(),
        },
    })
}

#[test]
fn envs_without_checkpoint_support_say_so() {
    let mut env = opaque();
    for result in [env.snapshot().map(|_| ()), env.restore(&Value::Null)] {
        let (name, reason) = invalid(result);
        assert_eq!(name, "env `opaque`");
        assert_eq!(reason, "does not support checkpoints");
    }
    let vec_env = VecEnv::new(vec![opaque(), opaque()], 0).unwrap();
    let (name, reason) = invalid(vec_env.snapshot().map(|_| ()));
    assert!(
        name.contains("env `opaque`") && name.contains("env 0"),
        "{name}"
    );
    assert_eq!(reason, "does not support checkpoints");
}

/// A VecEnv of `name` with 3 envs after `steps` random steps.
fn used_vec_env(name: &str, seed: u64, steps: usize) -> VecEnv {
    let mut vec_env = make_vec_env(name, &configs(), 3, seed).unwrap();
    vec_env.reset().unwrap();
    run_vec(&mut vec_env, &mut SnapshotRng::seed_from_u64(seed), steps);
    vec_env
}

fn check_vec_rejected(target: &mut VecEnv, snapshot: &Value, field: &str) -> String {
    let before = target.snapshot().unwrap();
    let (name, reason) = invalid(target.restore(snapshot));
    assert!(
        name.contains(field),
        "error `{name}: {reason}` should name `{field}`"
    );
    assert_eq!(
        target.snapshot().unwrap(),
        before,
        "changed by a failed restore"
    );
    reason
}

#[test]
fn vec_env_rejects_another_kind_or_number_of_envs() {
    let snapshot = used_vec_env("recall", 1, 6).snapshot().unwrap();
    let mut two = make_vec_env("recall", &configs(), 2, 1).unwrap();
    two.reset().unwrap();
    let reason = check_vec_rejected(&mut two, &snapshot, "vec_env of `recall`");
    assert!(
        reason.contains("3 envs") && reason.contains("has 2"),
        "{reason}"
    );
    let mut cartpoles = used_vec_env("cartpole", 1, 6);
    let reason = check_vec_rejected(&mut cartpoles, &snapshot, "vec_env of `cartpole`");
    assert!(reason.contains("`recall`"), "{reason}");
    let mut other_settings = {
        let mut configs = configs();
        configs.recall.num_symbols = 5;
        make_vec_env("recall", &configs, 3, 1).unwrap()
    };
    let reason = check_vec_rejected(&mut other_settings, &snapshot, "env 0");
    assert!(reason.contains("`num_symbols`"), "{reason}");
}

#[test]
fn vec_env_names_malformed_fields_and_rolls_back_envs_already_restored() {
    let snapshot = used_vec_env("lifecycle", 1, 9).snapshot().unwrap();
    let mut target = used_vec_env("lifecycle", 2, 14);
    for (bad, field) in [
        (
            set(&snapshot, "", "lengths", serde_json::json!([1, 2])),
            "`lengths`",
        ),
        (
            set(
                &snapshot,
                "",
                "returns",
                serde_json::json!([0, 0, f64::NAN.to_bits()]),
            ),
            "`returns`",
        ),
        (without(&snapshot, "", "seeded"), "`seeded`"),
        (
            set(&snapshot, "", "masks", serde_json::json!([[], [], []])),
            "`masks[0]`",
        ),
        (set(&snapshot, "", "envs", serde_json::json!([])), "`envs`"),
        // Envs 0 and 1 are restored before env 2 fails: they must be rolled back.
        (
            set(&snapshot, "envs/2", "steps", Value::from("many")),
            "env 2",
        ),
    ] {
        check_vec_rejected(&mut target, &bad, field);
    }
    // The rejected snapshots left it usable, and the good one still restores.
    target.restore(&snapshot).unwrap();
    assert_eq!(target.snapshot().unwrap(), snapshot);
}
