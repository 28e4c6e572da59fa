//! The memory tools with the tiny_a encoder's `embed` as their embedder: the calibrated
//! `match_threshold` (0.85, `RetrievalEmbedder::Olmoe.match_threshold()`) lets `update` and
//! `delete` find the entry every correction or retraction is about, and leaves the store alone
//! for almost all small talk; with it a careful policy still succeeds.
//!
//! Measured on this machine (300 tasks, seed 7, the scripted policy): corrections and
//! retractions score 0.856–0.985 against their entry; 1 of 345 small-talk messages and 17 of 87
//! recap requests have an entry at least 0.85 close (4.2 % together, the closest at 0.890: the
//! untrained tiny encoder puts "tell me all about Alice" near "Alice lives in Rome", so no
//! threshold separates recaps without losing right matches); scripted success 0.933 on 300 other
//! tasks (0.999 with the n-gram embedder and its threshold 0.5). The assertions leave margins.

use std::path::{Path, PathBuf};

use factored_rl::backend::default_device;
use factored_rl::grpo::RetrievalEmbedder;
use factored_rl::grpo::memory_env::{
    self, MemoryEnv, MemoryEnvConfig, MemoryStep, MemoryTask, MessageKind, SUBJECTS, TextEmbedder,
    cosine_similarity,
};
use factored_rl::olmoe::OlmoeEncoder;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn tiny_a() -> PathBuf {
    let root = std::env::var_os("FACTORED_RL_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"));
    root.join("olmoe/tiny_a")
}

fn scripted_op(state_text: &str) -> factored_rl::Result<usize> {
    let message = state_text.strip_prefix("Message: ").unwrap_or(state_text);
    Ok(match message.split(':').next() {
        Some("Remember") => memory_env::OP_ADD,
        Some("Correction") => memory_env::OP_UPDATE,
        Some("Forget") => memory_env::OP_DELETE,
        Some("Question") => memory_env::OP_RETRIEVE,
        Some("Recap") => memory_env::OP_SUMMARY,
        _ => memory_env::OP_FILTER,
    })
}

/// Which fact a text is about: its person and attribute phrase.
fn fact_key(text: &str) -> Option<(&'static str, &'static str)> {
    let subject = SUBJECTS.iter().find(|s| text.contains(*s))?;
    let phrase = ["lives in", "works at", "plays", "has a pet"]
        .into_iter()
        .find(|p| text.contains(p))?;
    Some((subject, phrase))
}

#[test]
fn the_olmoe_threshold_separates_right_matches_from_misplaced_ones() {
    let threshold = RetrievalEmbedder::Olmoe.match_threshold();
    let encoder = OlmoeEncoder::load(tiny_a(), &default_device()).unwrap();
    let embedder = RetrievalEmbedder::Olmoe.build(&encoder);
    let config = MemoryEnvConfig::new().with_match_threshold(threshold);
    let mut env = MemoryEnv::new(config.clone(), embedder.clone()).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let (mut right_min, mut right_max) = (f32::INFINITY, f32::NEG_INFINITY);
    let (mut distractors, mut distractors_above, mut distractor_max) = (0, 0, f32::NEG_INFINITY);
    let (mut chatter, mut chatter_above) = (0, 0);
    for _ in 0..300 {
        let task = MemoryTask::sample(&config, &mut rng).unwrap();
        let messages = task.messages().to_vec();
        let mut text = env.reset(task);
        for message in messages {
            let store = env.store().unwrap();
            let content = embedder.embed(message.content()).unwrap();
            let similarities: Vec<(f32, &str)> = store
                .entries()
                .iter()
                .map(|e| (cosine_similarity(&content, e.embedding()), e.text()))
                .collect();
            match message.kind() {
                MessageKind::Correction | MessageKind::Retraction => {
                    let key = fact_key(message.content());
                    if let Some(right) = similarities
                        .iter()
                        .filter(|(_, entry)| fact_key(entry) == key)
                        .map(|&(s, _)| s)
                        .reduce(f32::max)
                    {
                        right_min = right_min.min(right);
                        right_max = right_max.max(right);
                    }
                }
                MessageKind::Chatter | MessageKind::Recap => {
                    if let Some(closest) = similarities.iter().map(|&(s, _)| s).reduce(f32::max) {
                        distractors += 1;
                        distractors_above += usize::from(closest >= threshold as f32);
                        distractor_max = distractor_max.max(closest);
                        if message.kind() == MessageKind::Chatter {
                            chatter += 1;
                            chatter_above += usize::from(closest >= threshold as f32);
                        }
                    }
                }
                _ => {}
            }
            match env.step(scripted_op(&text).unwrap()).unwrap() {
                MemoryStep::Next { state_text } => text = state_text,
                MemoryStep::Done { .. } => break,
            }
        }
    }
    let above = distractors_above as f64 / distractors as f64;
    let scripted =
        memory_env::evaluate(&mut env, 300, &mut StdRng::seed_from_u64(8), scripted_op).unwrap();
    println!(
        "tiny_a embed, threshold {threshold}: corrections/retractions vs their entry \
         {right_min:.3}..{right_max:.3}; small talk and recaps ≥ threshold {:.1} % of {distractors} \
         (small talk alone {chatter_above} of {chatter}; closest {distractor_max:.3}); \
         scripted success {:.3}",
        100.0 * above,
        scripted.success_rate
    );
    assert!(
        right_min >= threshold as f32,
        "a right match at {right_min}"
    );
    assert!(above <= 0.08, "{:.1} % misplaced matches", 100.0 * above);
    assert!(scripted.success_rate >= 0.9, "{scripted:?}");
}
