//! Behaviour of the memory environment as a whole.

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::task::{Fact, FactKey, Message};
use super::*;
use crate::error::{Error, Result};

fn env() -> MemoryEnv<NgramEmbedder> {
    MemoryEnv::new(MemoryEnvConfig::new(), NgramEmbedder::default()).unwrap()
}

/// The operation a careful agent picks, read from the state text alone.
fn scripted_op(state_text: &str) -> Result<usize> {
    let message = state_text
        .strip_prefix("Message: ")
        .expect("the state text starts with the message");
    Ok(match message.split(':').next() {
        Some("Remember") => OP_ADD,
        Some("Correction") => OP_UPDATE,
        Some("Forget") => OP_DELETE,
        Some("Question") => OP_RETRIEVE,
        Some("Recap") => OP_SUMMARY,
        _ => OP_FILTER,
    })
}

fn random_policy(seed: u64) -> impl FnMut(&str) -> Result<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    move |_| Ok(rng.random_range(0..NUM_MEMORY_OPS))
}

fn fact(subject: &'static str, attribute: Attribute, value: &'static str) -> Fact {
    Fact {
        key: FactKey { subject, attribute },
        value,
    }
}

#[test]
fn a_careful_policy_succeeds_far_more_often_than_a_random_one() {
    let mut env = env();
    let good = evaluate(&mut env, 1000, &mut StdRng::seed_from_u64(1), scripted_op).unwrap();
    let random = evaluate(
        &mut env,
        1000,
        &mut StdRng::seed_from_u64(1),
        random_policy(2),
    )
    .unwrap();
    println!(
        "memory env, 1000 episodes: scripted success {:.3} (answer {:.3}, reward {:.3}); \
         random success {:.3} (answer {:.3}, reward {:.3})",
        good.success_rate,
        good.mean_answer,
        good.mean_reward,
        random.success_rate,
        random.mean_answer,
        random.mean_reward
    );
    assert!(good.success_rate >= 0.98, "{good:?}");
    assert!(random.success_rate <= 0.35, "{random:?}");
    assert!(good.mean_reward > random.mean_reward + 0.4);
}

#[test]
fn every_tool_acts_on_the_store_as_documented() {
    let alice_city = fact("Alice", Attribute::City, "Rome");
    let bruno_job = fact("Bruno", Attribute::Employer, "Acme");
    let task = MemoryTask::from_parts(
        vec![
            Message::note(alice_city),
            Message::note(bruno_job),
            Message::chatter(CHATTER[0]),
            Message::correction(alice_city, "Oslo"),
            Message::retraction(bruno_job),
            Message::query(alice_city.key),
            Message::recap("Alice"),
        ],
        alice_city.key,
    );
    let mut env = env();
    let right = [
        OP_ADD,
        OP_ADD,
        OP_FILTER,
        OP_UPDATE,
        OP_DELETE,
        OP_RETRIEVE,
        OP_SUMMARY,
    ];
    let mut ops = right.iter();
    let episode = run_episode(&mut env, task.clone(), |_| Ok(*ops.next().unwrap())).unwrap();
    assert_eq!(episode.reward.requests_total, 3);
    assert!(episode.reward.success(), "{:?}", episode.reward);
    assert_eq!(episode.reward.memory_penalty, 0.0);
    let texts: Vec<&str> = env
        .store()
        .unwrap()
        .entries()
        .iter()
        .map(MemoryEntry::text)
        .collect();
    assert_eq!(texts, ["Alice now lives in Oslo, not Rome"]);
    assert_eq!(episode.reward.recall, 0.5);

    // Adding the correction instead of updating leaves two cities: the final question and the
    // query see a conflict, the recap disagrees, and the stale entry is junk.
    let mut wrong = right;
    wrong[3] = OP_ADD;
    let mut ops = wrong.iter();
    let episode = run_episode(&mut env, task.clone(), |_| Ok(*ops.next().unwrap())).unwrap();
    assert_eq!(episode.reward.requests_correct, 0);
    assert_eq!(episode.reward.recall, 0.0);
    assert!((episode.reward.memory_penalty - (-0.2 / 5.0)).abs() < 1e-6);

    // Keeping the small talk costs memory but no answer; filtering the query loses it.
    let mut wrong = right;
    wrong[2] = OP_ADD;
    wrong[5] = OP_FILTER;
    let mut ops = wrong.iter();
    let episode = run_episode(&mut env, task.clone(), |_| Ok(*ops.next().unwrap())).unwrap();
    assert_eq!(episode.reward.requests_correct, 2);
    assert!((episode.reward.memory_penalty - (-0.2 / 5.0)).abs() < 1e-6);

    // Never storing the note: the correction has nothing to update, the answer is unknown.
    let mut wrong = right;
    wrong[0] = OP_FILTER;
    let mut ops = wrong.iter();
    let episode = run_episode(&mut env, task, |_| Ok(*ops.next().unwrap())).unwrap();
    assert!(!episode.reward.success());
}

#[test]
fn a_full_store_evicts_what_matters() {
    let config = MemoryEnvConfig::new().with_capacity(2).with_max_notes(2);
    let mut env = MemoryEnv::new(config, NgramEmbedder::default()).unwrap();
    let alice_city = fact("Alice", Attribute::City, "Rome");
    let task = MemoryTask::from_parts(
        vec![
            Message::note(alice_city),
            Message::chatter(CHATTER[1]),
            Message::chatter(CHATTER[2]),
        ],
        alice_city.key,
    );
    let episode = run_episode(&mut env, task.clone(), |_| Ok(OP_ADD)).unwrap();
    assert!(!episode.reward.success());
    assert_eq!(episode.reward.memory_penalty, -0.2);
    let mut ops = [OP_ADD, OP_FILTER, OP_FILTER].into_iter();
    let episode = run_episode(&mut env, task, |_| Ok(ops.next().unwrap())).unwrap();
    assert!(episode.reward.success());
}

/// The text scored for step t must be what the policy read before choosing op t, whatever op t
/// is; and no operation name may appear in any state text (SPEC §9: the chosen action leaked
/// into the state text in an earlier system).
#[test]
fn the_state_text_never_shows_the_action_being_scored() {
    let mut env = env();
    let mut task_rng = StdRng::seed_from_u64(7);
    for episode_index in 0..60 {
        let task = MemoryTask::sample(env.config(), &mut task_rng).unwrap();
        let prefix: Vec<usize> = {
            let mut policy = random_policy(episode_index);
            (0..task.num_steps()).map(|_| policy("").unwrap()).collect()
        };
        for t in 0..task.num_steps() {
            let mut texts_at_t = Vec::new();
            for op in 0..NUM_MEMORY_OPS {
                let mut step = 0;
                let episode = run_episode(&mut env, task.clone(), |_| {
                    let chosen = if step == t { op } else { prefix[step] };
                    step += 1;
                    Ok(chosen)
                })
                .unwrap();
                assert_eq!(episode.ops[t], op);
                for text in &episode.state_texts {
                    let words: Vec<String> = text
                        .split(|c: char| !c.is_alphanumeric())
                        .map(str::to_lowercase)
                        .collect();
                    for name in MEMORY_OP_NAMES {
                        assert!(
                            !words.iter().any(|w| w == name),
                            "`{name}` appears in the state text {text:?}"
                        );
                    }
                }
                texts_at_t.push(episode.state_texts[..=t].to_vec());
            }
            assert!(
                texts_at_t.windows(2).all(|w| w[0] == w[1]),
                "the text of step {t} depends on the op chosen at step {t}: {texts_at_t:?}"
            );
        }
    }
}

#[test]
fn the_state_text_shows_the_message_and_the_store() {
    let mut env = env();
    let task = MemoryTask::sample(env.config(), &mut StdRng::seed_from_u64(3)).unwrap();
    let first = env.reset(task.clone());
    assert_eq!(
        first,
        format!(
            "Message: {}\nMemory 0/5: (empty)",
            task.messages()[0].text()
        )
    );
    match env.step(OP_ADD).unwrap() {
        MemoryStep::Next { state_text } => assert_eq!(
            state_text,
            format!(
                "Message: {}\nMemory 1/5: {}",
                task.messages()[1].text(),
                task.messages()[0].content()
            )
        ),
        done => panic!("a task has more than one step: {done:?}"),
    }
}

#[test]
fn sampled_tasks_follow_the_config() {
    let config = MemoryEnvConfig::new();
    let mut rng = StdRng::seed_from_u64(11);
    for _ in 0..500 {
        let task = MemoryTask::sample(&config, &mut rng).unwrap();
        assert!(task.num_steps() <= config.max_steps());
        let kinds: Vec<MessageKind> = task.messages().iter().map(Message::kind).collect();
        let notes = kinds.iter().filter(|&&k| k == MessageKind::Note).count();
        assert!((config.min_notes..=config.max_notes).contains(&notes));
        let chatter = kinds.iter().filter(|&&k| k == MessageKind::Chatter).count();
        assert!((config.min_chatter..=config.max_chatter).contains(&chatter));
        // Facts are noted before they change, and the question asks for a noted fact.
        let first_change = kinds
            .iter()
            .position(|k| matches!(k, MessageKind::Correction | MessageKind::Retraction));
        let last_note = kinds.iter().rposition(|&k| k == MessageKind::Note).unwrap();
        assert!(first_change.is_none_or(|c| c > last_note));
        let subject = task.question().subject;
        assert!(
            task.messages()
                .iter()
                .any(|m| m.kind() == MessageKind::Note && m.content().starts_with(subject))
        );
    }
}

#[test]
fn misuse_is_a_named_error() {
    let mut env = env();
    assert!(matches!(env.step(OP_ADD), Err(Error::Invalid { .. })));
    let task = MemoryTask::sample(env.config(), &mut StdRng::seed_from_u64(5)).unwrap();
    env.reset(task.clone());
    assert!(matches!(
        env.step(6),
        Err(Error::ActionOutOfRange { head, row: 0, action: 6, size: 6 }) if head == "memory_op"
    ));
    run_episode(&mut env, task, |_| Ok(OP_FILTER)).unwrap();
    assert!(matches!(env.step(OP_ADD), Err(Error::Invalid { .. })));
    assert!(matches!(
        MemoryEnv::new(MemoryEnvConfig::new().with_max_notes(9), NgramEmbedder::default()),
        Err(Error::Invalid { name, .. }) if name == "max_notes"
    ));
    let mut rng = StdRng::seed_from_u64(0);
    assert!(matches!(
        MemoryTask::sample(&MemoryEnvConfig::new().with_min_notes(0), &mut rng),
        Err(Error::Invalid { name, .. }) if name == "min_notes"
    ));
    assert!(matches!(
        MemoryTask::sample(&MemoryEnvConfig::new().with_query_prob(1.5), &mut rng),
        Err(Error::Invalid { name, .. }) if name == "query_prob"
    ));
    assert!(matches!(
        evaluate(&mut env, 0, &mut rng, scripted_op),
        Err(Error::Invalid { name, .. }) if name == "num_episodes"
    ));
}

/// An embedder whose width depends on the text, or that returns NaN.
struct BrokenEmbedder {
    nan: bool,
}

impl TextEmbedder for BrokenEmbedder {
    fn embed(&self, text: &str) -> Result<Vec<f32>> {
        if self.nan {
            Ok(vec![f32::NAN; 4])
        } else {
            Ok(vec![1.0; 1 + text.len() % 2])
        }
    }
}

#[test]
fn bad_embeddings_are_named_errors() {
    let alice = fact("Alice", Attribute::City, "Rome");
    let bruno = fact("Bruno", Attribute::Sport, "golf");
    let task = MemoryTask::from_parts(
        vec![
            Message::note(alice),
            Message::note(bruno),
            Message::query(alice.key),
        ],
        alice.key,
    );
    let mut env = MemoryEnv::new(MemoryEnvConfig::new(), BrokenEmbedder { nan: false }).unwrap();
    let result = run_episode(&mut env, task.clone(), |_| Ok(OP_ADD));
    assert!(
        matches!(&result, Err(Error::ShapeMismatch { name, .. }) if name.contains("Bruno")),
        "{result:?}"
    );
    let mut env = MemoryEnv::new(MemoryEnvConfig::new(), BrokenEmbedder { nan: true }).unwrap();
    let result = run_episode(&mut env, task, |_| Ok(OP_ADD));
    assert!(
        matches!(result, Err(Error::NonFinite { row: 0, .. })),
        "{result:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Each reward term stays in its documented range whatever the policy does.
    #[test]
    fn reward_terms_stay_in_their_ranges(
        seed in any::<u64>(),
        ops in proptest::collection::vec(0..NUM_MEMORY_OPS, 12),
        capacity in 4usize..8,
        weight in 0.0f64..=1.0,
        recall_weight in 0.0f64..=1.0,
    ) {
        let config = MemoryEnvConfig::new()
            .with_capacity(capacity)
            .with_memory_penalty_weight(weight)
            .with_recall_weight(recall_weight);
        let mut env = MemoryEnv::new(config.clone(), NgramEmbedder::default()).unwrap();
        let task = MemoryTask::sample(&config, &mut StdRng::seed_from_u64(seed)).unwrap();
        prop_assert!(task.num_steps() <= ops.len());
        let mut step = 0;
        let episode = run_episode(&mut env, task, |_| {
            step += 1;
            Ok(ops[step - 1])
        }).unwrap();
        let reward = episode.reward;
        let w = weight as f32;
        prop_assert!((0.0..=1.0).contains(&reward.answer), "answer {}", reward.answer);
        prop_assert!((-w..=0.0).contains(&reward.memory_penalty), "penalty {}", reward.memory_penalty);
        prop_assert!((0.0..=recall_weight as f32).contains(&reward.recall), "recall {}", reward.recall);
        let (low, high) = config.reward_range();
        prop_assert!((low..=high).contains(&reward.total()), "total {}", reward.total());
        prop_assert!(reward.requests_total >= 1 && reward.requests_correct <= reward.requests_total);
        prop_assert_eq!(reward.success(), reward.answer == 1.0);
    }
}

#[test]
fn update_and_delete_leave_unrelated_entries_alone() {
    let alice_city = fact("Alice", Attribute::City, "Rome");
    let task = MemoryTask::from_parts(
        vec![
            Message::note(alice_city),
            Message::chatter(CHATTER[3]),
            Message::recap("Alice"),
            Message::retraction(alice_city),
        ],
        alice_city.key,
    );
    let mut env = env();
    for op in [OP_UPDATE, OP_DELETE] {
        let mut ops = [OP_ADD, op, op].into_iter();
        env.reset(task.clone());
        for _ in 0..3 {
            env.step(ops.next().unwrap()).unwrap();
        }
        let texts: Vec<&str> = env
            .store()
            .unwrap()
            .entries()
            .iter()
            .map(MemoryEntry::text)
            .collect();
        assert_eq!(texts, ["Alice lives in Rome"], "{}", MEMORY_OP_NAMES[op]);
        // The retraction is about the stored fact: delete removes it.
        env.step(OP_DELETE).unwrap();
        assert!(env.store().unwrap().is_empty());
    }
}
